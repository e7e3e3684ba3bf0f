"""
test_dnsbl.py - DNSBL and DNSWL at connect (issue 14, part 4), through
the real resolver against tests/spf_dns.py (python3-dnslib under Debian's
/usr/bin/python3) on a free loopback port, set as dns_server.  Clients
bind addresses across 127.0.0.0/8 to be different clients.
Covers: a listed client gets 554 5.7.1 naming the list at its first
command (after the greeting) and the session closes, QUIT is still
answered 221; an unlisted client is accepted; a list that never answers
is skipped within dnsbl_timeout and mail is accepted; an IPv6 client
(::1) is asked in nibble form; an allowlist weight cancels a listing;
127.255.255.254 (a list error code) is not a listing and logs an alert;
dnsbl_action = tag adds X-DNSBL, shadow too with a would=reject line; harvest_exempt_dnswl exempts from the
tarpit (and without it the same client is tarpitted); the metrics per
list; a reload turns the lists on; a bad dnsbl_sites is a config error
naming its line.
"""

from __future__ import annotations

import os
import socket
import time
import urllib.request

import mxlib
from mxlib import check, check_eq, fail
import test_spf

RCPT_OK = "250 2.1.5 Ok"


def rev4(ip: str, zone: str) -> str:
    return ".".join(reversed(ip.split("."))) + "." + zone


def rev6(ip: str, zone: str) -> str:
    packed = socket.inet_pton(socket.AF_INET6, ip)
    nib = "".join("%02x" % b for b in packed)
    return ".".join(reversed(nib)) + "." + zone


# client addresses, each a different story
LISTED = "127.0.0.2"
ERRCODE = "127.0.0.3"
CANCELLED = "127.0.0.4"
SLOW = "127.0.0.5"
WHITE = "127.0.0.6"
CLEAN = "127.0.0.8"
FILTERED = "127.0.0.9"

ZONE = [
    (rev4(LISTED, "bl.test"), "A", "127.0.0.2"),
    (rev4(ERRCODE, "bl.test"), "A", "127.255.255.254"),
    (rev4(CANCELLED, "bl.test"), "A", "127.0.0.2"),
    (rev4(CANCELLED, "wl.test"), "A", "127.0.10.1"),
    (rev4(SLOW, "slow.test"), "TIMEOUT"),
    (rev4(WHITE, "wl.test"), "A", "127.0.10.1"),
    (rev4(FILTERED, "bl.test"), "A", "127.0.0.99"),   # outside the filter
    (rev6("::1", "bl.test"), "A", "127.0.0.3"),
]

SITES = "bl.test=127.0.0.[2..11]*2, wl.test=127.0.[0..255].[1..255]*-2"


def dnsbl_gateway(ctx, gw_factory, sites: str = SITES, start: bool = True,
                  **conf: str):
    dns = test_spf.DnsServer(ctx.tmpdir, ZONE)
    settings = {"dnsbl_sites": sites, "dnsbl_threshold": "2",
                "dns_server": f"127.0.0.1:{dns.port}"}
    settings.update(conf)
    try:
        gw = gw_factory(config=settings, start=start)
    except BaseException:
        dns.stop()
        raise
    return gw, dns


def mail_ok(c: mxlib.Client, subject: str) -> None:
    c.ehlo()
    c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
    c.expect(RCPT_OK, "RCPT TO:<alice@example.test>")
    c.expect("354 *", "DATA")
    c.send(mxlib.make_message(subject) + b".\r\n")
    c.expect("250 2.0.0 Ok: queued as *")
    c.expect("221 *", "QUIT")


def blocked_text(ip: str, sites: str) -> str:
    return (f"554 5.7.1 Service unavailable; Client host [{ip}] blocked "
            f"using {sites}")


def test_dnsbl_listed_rejected_at_first_command(ctx, gw_factory):
    gw, dns = dnsbl_gateway(ctx, gw_factory)
    try:
        with mxlib.Client(gw.port, bind=LISTED) as c:
            c.greet()           # the greeting, so the client can log why
            r = c.cmd("EHLO client.test")
            check_eq(r.text, blocked_text(LISTED, "bl.test"),
                     "the reply to the first command")
            c.expect_close()
        ev = gw.wait_event("dnsbl", client=LISTED)
        check_eq((ev["verdict"], ev["action"], ev["score"], ev["sites"]),
                 ("listed", "reject", "2", "bl.test"), "the decision line")
        gw.wait_event("disconnect", client=LISTED)
        # QUIT is never refused
        with mxlib.Client(gw.port, bind=LISTED) as c:
            c.greet()
            c.expect("221 2.0.0 Bye", "QUIT")
    finally:
        dns.stop()


def test_dnsbl_unlisted_and_filtered_accepted(ctx, gw_factory):
    gw, dns = dnsbl_gateway(ctx, gw_factory)
    try:
        for ip in (CLEAN, FILTERED):
            with mxlib.Client(gw.port, bind=ip) as c:
                c.greet()
                mail_ok(c, f"from {ip}")
            ev = gw.wait_event("dnsbl", client=ip)
            check_eq((ev["verdict"], ev["score"]), ("clean", "0"),
                     f"{ip}: the decision line")
        gw.wait_maildir("example.test", "alice", 2)
    finally:
        dns.stop()


def test_dnsbl_silent_list_skipped_within_bound(ctx, gw_factory):
    gw, dns = dnsbl_gateway(ctx, gw_factory,
                            sites=SITES + ", slow.test", dnsbl_timeout="300ms")
    try:
        with mxlib.Client(gw.port, bind=SLOW) as c:
            t0 = time.monotonic()
            c.greet()
            waited = time.monotonic() - t0
            check(waited >= 0.29, f"the greeting came after {waited:.3f}s, "
                  "before dnsbl_timeout")
            mail_ok(c, "slow list")
        ev = gw.wait_event("dnsbl", client=SLOW)
        check_eq((ev["verdict"], ev["skipped"]), ("clean", "slow.test:timeout"),
                 "the decision line")
        # decided by our bound: "timeout" (the resolver's own failure,
        # seconds later, would say "error"); the clock only from below,
        # with room for libevent's timers, which count from the loop's
        # cached time (taken when the accept woke it)
        ms = int(ev["ms"])
        check(ms >= 250, f"decided after {ms} ms, well before the bound")
        gw.wait_event("dnsbl_skip", client=SLOW, site="slow.test",
                      why="timeout")
        gw.wait_maildir("example.test", "alice", 1)
    finally:
        dns.stop()


def test_dnsbl_inflight_shared_and_leaving_client(ctx, gw_factory):
    # one loop: the cache and the questions in flight are per loop
    gw, dns = dnsbl_gateway(ctx, gw_factory, workers="1",
                            sites=SITES + ", slow.test", dnsbl_timeout="1s")
    try:
        # a client that leaves while its lists are pending
        with mxlib.Client(gw.port, bind=SLOW):
            gw.wait_event("connect", client=SLOW)
        gw.wait_event("disconnect", client=SLOW)
        mark = gw.log_mark()
        # two more clients of that address: they join the question still
        # in flight (slow.test never answers; the first client's going
        # did not drop it) and take the cached answers of the others
        c1 = mxlib.Client(gw.port, bind=SLOW)
        try:
            gw.wait_event("connect", since=mark, client=SLOW)
            with mxlib.Client(gw.port, bind=SLOW) as c2:
                c1.greet()
                c2.greet()
                mail_ok(c2, "second")
            mail_ok(c1, "first")
        finally:
            c1.close()
        evs = gw.events("dnsbl", since=mark, client=SLOW)
        check_eq(len(evs), 2, "decision lines")
        for ev in evs:
            check_eq(ev["skipped"], "slow.test:timeout", "skipped")
        n = [(int(e["asked"]), int(e["shared"]), int(e["cached"]))
             for e in evs]
        check(all(a == 0 and sh >= 1 and a + sh + ca == 3
                  for a, sh, ca in n),
              f"asked/shared/cached per session: {n}")
        gw.wait_maildir("example.test", "alice", 2)
    finally:
        dns.stop()


class Client6(mxlib.Client):
    """The raw client over IPv6 loopback (mxlib's speaks IPv4 only)."""

    def __init__(self, port: int, timeout_s: float = 30.0):
        self.timeout = timeout_s
        self.buf = b""
        self.closed = False
        self.sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(timeout_s)
        self.sock.connect(("::1", port))


def test_dnsbl_ipv6_nibble_query(ctx, gw_factory):
    gw, dns = dnsbl_gateway(ctx, gw_factory, start=False)
    try:
        gw.port = mxlib.free_port()
        gw.settings["listen"] = f"127.0.0.1:{gw.port}, [::1]:{gw.port}"
        gw.start()
        with Client6(gw.port) as c:
            c.greet()
            r = c.cmd("HELO client.test")
            check_eq(r.text, blocked_text("::1", "bl.test"),
                     "the reply to ::1, listed by its nibble name")
            c.expect_close()
        ev = gw.wait_event("dnsbl", client="::1")
        check_eq((ev["verdict"], ev["detail"]),
                 ("listed", "bl.test=127.0.0.3*2"), "the decision line")
    finally:
        dns.stop()


def test_dnsbl_allowlist_cancels_listing(ctx, gw_factory):
    gw, dns = dnsbl_gateway(ctx, gw_factory)
    try:
        with mxlib.Client(gw.port, bind=CANCELLED) as c:
            c.greet()
            mail_ok(c, "cancelled")
        ev = gw.wait_event("dnsbl", client=CANCELLED)
        check_eq((ev["verdict"], ev["score"], ev["sites"], ev["allow"]),
                 ("allowed", "0", "bl.test", "wl.test"), "the decision line")
    finally:
        dns.stop()


def test_dnsbl_error_code_not_a_listing(ctx, gw_factory):
    # no filter on bl.test: any 127/8 code would count, but not this one
    gw, dns = dnsbl_gateway(ctx, gw_factory, sites="bl.test*2")
    try:
        with mxlib.Client(gw.port, bind=ERRCODE) as c:
            c.greet()
            mail_ok(c, "error code")
        ev = gw.wait_event("dnsbl", client=ERRCODE)
        check_eq((ev["verdict"], ev["score"], ev["skipped"]),
                 ("clean", "0", "bl.test:error"), "the decision line")
        al = gw.wait_event("dnsbl_alert", client=ERRCODE)
        check_eq((al["level"], al["answers"]),
                 ("warning", "bl.test=127.255.255.254"), "the alert line")
    finally:
        dns.stop()


def test_dnsbl_tag_adds_header(ctx, gw_factory):
    gw, dns = dnsbl_gateway(ctx, gw_factory, dnsbl_action="tag")
    try:
        with mxlib.Client(gw.port, bind=LISTED) as c:
            c.greet()
            mail_ok(c, "tagged")
        msg = test_spf.delivered(gw)
        check_eq(test_spf.header_lines(msg)[:2], ["X-DNSBL", "Received"],
                 "the first header fields")
        check_eq(" ".join(msg["X-DNSBL"].split()),
                 f"listed score=2 threshold=2 client={LISTED} "
                 f"sites=bl.test ({mxlib.HOSTNAME})", "X-DNSBL")
        ev = gw.wait_event("dnsbl", client=LISTED)
        check_eq((ev["verdict"], ev["action"]), ("listed", "tag"),
                 "the decision line")
        # an unlisted client's mail has no such header
        with mxlib.Client(gw.port, bind=CLEAN) as c:
            c.greet()
            mail_ok(c, "clean")
        files = gw.wait_maildir("example.test", "alice", 2)
        with open(sorted(files, key=os.path.getmtime)[-1], "rb") as f:
            check(b"X-DNSBL" not in f.read(), "X-DNSBL on clean mail")
    finally:
        dns.stop()


def test_dnsbl_shadow_tags_and_logs(ctx, gw_factory):
    gw, dns = dnsbl_gateway(ctx, gw_factory, dnsbl_action="shadow")
    try:
        with mxlib.Client(gw.port, bind=LISTED) as c:
            c.greet()
            mail_ok(c, "shadow")
        msg = test_spf.delivered(gw)
        check(msg["X-DNSBL"] is not None, "no X-DNSBL under shadow")
        ev = gw.wait_event("dnsbl", client=LISTED, shadow="1")
        check_eq((ev["would"], ev["sites"]), ("reject", "bl.test"),
                 "the shadow line")
        ev = gw.wait_event("dnsbl", client=LISTED, verdict="listed")
        check_eq(ev["action"], "tag", "the decision line's action")
    finally:
        dns.stop()


def unknown_rcpts(gw, src: str, n: int) -> None:
    with mxlib.session(gw, bind=src) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        for i in range(n):
            c.expect("550 5.1.1 *", f"RCPT TO:<nobody{i}@example.test>")


def test_dnsbl_dnswl_exempts_from_tarpit(ctx, gw_factory):
    conf = {"harvest_tarpit_after": "1", "harvest_tarpit_delay": "200ms",
            "harvest_tarpit_max": "200ms"}
    gw, dns = dnsbl_gateway(ctx, gw_factory, harvest_exempt_dnswl="yes",
                            **conf)
    try:
        unknown_rcpts(gw, WHITE, 4)
        ev = gw.wait_event("dnsbl", client=WHITE)
        check_eq((ev["verdict"], ev.get("harvest_exempt")), ("allowed", "1"),
                 "the decision line")
        check(not gw.events("tarpit", client=WHITE),
              "the DNSWL-listed client was tarpitted")
        # the control: the same client without harvest_exempt_dnswl
        gw.stop()
        gw.settings["harvest_exempt_dnswl"] = "no"
        gw.start()
        mark = gw.run_mark
        unknown_rcpts(gw, WHITE, 4)
        gw.wait_event("tarpit", since=mark, client=WHITE)
    finally:
        dns.stop()


def test_dnsbl_metrics_per_list(ctx, gw_factory):
    port = mxlib.free_port()
    gw, dns = dnsbl_gateway(ctx, gw_factory,
                            metrics_listen=f"127.0.0.1:{port}")
    try:
        gw.wait_event("listening", addr=f"127.0.0.1:{port}",
                      listener="metrics")
        for ip in (LISTED, CLEAN):
            with mxlib.Client(gw.port, bind=ip) as c:
                c.greet()
                c.cmd("QUIT")
            gw.wait_event("dnsbl", client=ip)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                    timeout=30) as r:
            text = r.read().decode()
        for line in ('mxgate_dnsbl_total{site="bl.test",result="listed"} 1',
                     'mxgate_dnsbl_total{site="bl.test",result="unlisted"} 1',
                     'mxgate_dnsbl_total{site="wl.test",result="unlisted"} 2',
                     'mxgate_dnsbl_total{site="wl.test",result="timeout"} 0'):
            check(line in text.splitlines(), f"no {line!r} in /metrics")
    finally:
        dns.stop()


def test_dnsbl_empty_asks_nothing(ctx, gw_factory):
    gw = gw_factory(config={"dns_server": "127.0.0.1:9"})
    with mxlib.Client(gw.port, bind=LISTED) as c:
        c.greet()
        mail_ok(c, "no lists")
    check(not gw.events("dnsbl"), "a dnsbl line with dnsbl_sites empty")


def test_dnsbl_reload_turns_lists_on(ctx, gw_factory):
    gw, dns = dnsbl_gateway(ctx, gw_factory, sites="", workers="1")
    try:
        with mxlib.Client(gw.port, bind=LISTED) as c:
            c.greet()
            mail_ok(c, "before")
        check(not gw.events("dnsbl"), "a dnsbl line before the reload")
        gw.settings["dnsbl_sites"] = SITES
        gw.write_config()
        gw.wait_event("reload", since=gw.reload(), result="ok")
        with mxlib.Client(gw.port, bind=LISTED) as c:
            c.greet()
            check_eq(c.cmd("EHLO client.test").text,
                     blocked_text(LISTED, "bl.test"), "after the reload")
            c.expect_close()
    finally:
        dns.stop()


def test_dnsbl_sites_config_error(ctx):
    for bad, what in (("bl.test=127.0.0.[300]", "answer filter"),
                      ("bl.test*0", "weight"),
                      ("bl..test", "domain name")):
        path = ctx.write("bad.conf", "hostname = mx.example.test\n"
                         "spool = spool\ndomains = example.test\n"
                         f"dnsbl_sites = {bad}\ndirectory = file:users\n")
        ctx.write("users", "alice@example.test\n")
        os.makedirs(os.path.join(ctx.tmpdir, "spool"), exist_ok=True)
        p = ctx.run_binary(["check-config", "-c", path])
        check(p.returncode != 0, f"check-config accepted {bad}")
        err = p.stderr.decode() + p.stdout.decode()
        if not (":4:" in err and "dnsbl_sites" in err and what in err):
            fail(f"{bad}: {err}")
