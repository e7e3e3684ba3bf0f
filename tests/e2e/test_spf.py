"""
test_spf.py - SPF at MAIL FROM (issue 14, part 1), through the real
resolver against tests/spf_dns.py (python3-dnslib, run by Debian's
/usr/bin/python3) on a free loopback port, set as dns_server.
Covers: pass (a and ip4 mechanisms) is accepted with Received-SPF and
Authentication-Results headers above Received; fail with spf_policy =
reject is 550 5.7.23 (with the exp= text), with tag it is accepted and
tagged; SERVFAIL is 451 4.4.3 with reject and tagged temperror with tag;
a DNS server that never answers: 451 4.4.3 once spf_timeout passes (the
log says the deadline), while another session on the same loop is
served meanwhile; the HELO identity for MAIL FROM:<>; spf_policy = none:
no header, no look-up; relay_networks and authenticated clients are not
checked; pipelined RCPT and DATA wait for the MAIL reply in order; a bad
spf_policy value is a config error with its line.
"""

from __future__ import annotations

import email
import email.policy
import os
import subprocess
import time

import mxlib
from mxlib import check, check_eq, fail
import test_tls_auth as tls

HERE = os.path.dirname(os.path.abspath(__file__))
SPF_DNS = os.path.join(HERE, "..", "spf_dns.py")
SYSTEM_PYTHON = "/usr/bin/python3"  # the one with python3-dnslib
MAIL_OK = "250 2.1.0 Ok"
RCPT_OK = "250 2.1.5 Ok"

# owner, type, values: what the test's DNS server holds
ZONE = [
    ("pass.test", "TXT", "v=spf1 ip4:127.0.0.0/8 -all"),
    ("a.test", "TXT", "v=spf1 a:host.a.test -all"),
    ("host.a.test", "A", "127.0.0.1"),
    ("fail.test", "TXT", "v=spf1 ip4:192.0.2.1 -all exp=why.fail.test"),
    ("why.fail.test", "TXT", "%{i} is not a mail server of %{d}"),
    ("soft.test", "TXT", "v=spf1 ~all"),
    ("servfail.test", "SERVFAIL"),
    ("slow.test", "TIMEOUT"),
    ("helo.pass.test", "TXT", "v=spf1 ip4:127.0.0.1 -all"),
]


def esc(v: str) -> str:
    return "".join(c if 0x21 <= ord(c) <= 0x7e and c != "%" else
                   "%%%02X" % ord(c) for c in v)


class DnsServer:
    """tests/spf_dns.py on 127.0.0.1; stopped by closing its stdin."""

    def __init__(self, folder: str, zone=ZONE):
        self.port = mxlib.free_port()
        path = os.path.join(folder, "zone.txt")
        with open(path, "w") as f:
            for rec in zone:
                f.write("\t".join(["R", esc(rec[0]), rec[1]] +
                                  [esc(v) for v in rec[2:]]) + "\n")
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, SPF_DNS, str(self.port), path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=folder)
        line = self.proc.stdout.readline()
        if line.strip() != b"ready":
            self.stop()
            fail(f"spf_dns.py did not start: {line!r}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()        # ours, by its Popen handle
                self.proc.wait()


def spf_gateway(ctx, gw_factory, policy: str, **conf: str):
    dns = DnsServer(ctx.tmpdir)
    settings = {"spf_policy": policy, "dns_server": f"127.0.0.1:{dns.port}"}
    settings.update(conf)
    return gw_factory(config=settings), dns


def send(c: mxlib.Client, sender: str, subject: str) -> None:
    c.expect(RCPT_OK, "RCPT TO:<alice@example.test>")
    c.expect("354 *", "DATA")
    c.send(mxlib.make_message(subject, sender=sender or "x@remote.test")
           + b".\r\n")
    c.expect("250 2.0.0 Ok: queued as *")


def delivered(gw, count: int = 1) -> email.message.Message:
    files = gw.wait_maildir("example.test", "alice", count)
    with open(files[-1], "rb") as f:
        return email.message_from_bytes(f.read(), policy=email.policy.compat32)


def header_lines(msg) -> list[str]:
    return [k for k, _ in msg.items()]


def test_spf_pass_tagged(ctx, gw_factory):
    gw, dns = spf_gateway(ctx, gw_factory, "tag")
    try:
        with mxlib.session(gw) as c:
            c.expect(MAIL_OK, "MAIL FROM:<x@pass.test>")
            send(c, "x@pass.test", "pass")
        msg = delivered(gw)
        check_eq(header_lines(msg)[:3], ["Authentication-Results",
                                         "Received-SPF", "Received"],
                 "the first header fields")
        ar = " ".join(msg["Authentication-Results"].split())
        check_eq(ar, 'mx.example.test; spf=pass smtp.mailfrom="x@pass.test"',
                 "Authentication-Results")
        rs = " ".join(msg["Received-SPF"].split())
        check(rs.startswith("pass (mx.example.test: domain of x@pass.test "
                            "designates 127.0.0.1 as permitted sender) "
                            "client-ip=127.0.0.1; "
                            'envelope-from="x@pass.test"; '
                            'helo="client.test"; receiver=mx.example.test; '
                            "identity=mailfrom; "
                            'mechanism="ip4:127.0.0.0/8"'), rs)
        ev = gw.wait_event("mail", **{"from": "<x@pass.test>"})
        check_eq(ev.get("spf"), "pass", "spf= on the MAIL log line")
        # the a mechanism: the A look-up goes through DNS as well
        with mxlib.session(gw) as c:
            c.expect(MAIL_OK, "MAIL FROM:<y@a.test>")
            send(c, "y@a.test", "a")
        msg = delivered(gw, 2)
        check(msg["Received-SPF"].startswith("pass "), msg["Received-SPF"])
    finally:
        dns.stop()


def test_spf_fail_reject_and_tag(ctx, gw_factory):
    gw, dns = spf_gateway(ctx, gw_factory, "reject")
    try:
        with mxlib.session(gw) as c:
            c.expect("550 5.7.23 SPF validation failed: 127.0.0.1 is not a "
                     "mail server of fail.test", "MAIL FROM:<x@fail.test>")
            # the session goes on: a softfail is not refused
            c.expect(MAIL_OK, "MAIL FROM:<x@soft.test>")
            send(c, "x@soft.test", "softfail")
        msg = delivered(gw)
        check(msg["Received-SPF"].startswith("softfail "),
              msg["Received-SPF"])
        ev = gw.wait_event("mail", **{"from": "<x@fail.test>"})
        check_eq((ev.get("result"), ev.get("spf")), ("spf", "fail"),
                 "the refused MAIL's log line")
        gw.stop()
        gw.settings["spf_policy"] = "tag"
        gw.start()
        with mxlib.session(gw) as c:
            c.expect(MAIL_OK, "MAIL FROM:<x@fail.test>")
            send(c, "x@fail.test", "fail tagged")
        msg = delivered(gw, 2)
        check(msg["Received-SPF"].startswith("fail "), msg["Received-SPF"])
        check("spf=fail" in msg["Authentication-Results"],
              msg["Authentication-Results"])
    finally:
        dns.stop()


def test_spf_servfail_temperror(ctx, gw_factory):
    gw, dns = spf_gateway(ctx, gw_factory, "reject")
    try:
        with mxlib.session(gw) as c:
            c.expect("451 4.4.3 SPF check of servfail.test failed "
                     "temporarily, try again later",
                     "MAIL FROM:<x@servfail.test>")
        gw.stop()
        gw.settings["spf_policy"] = "tag"
        gw.start()
        with mxlib.session(gw) as c:
            c.expect(MAIL_OK, "MAIL FROM:<x@servfail.test>")
            send(c, "x@servfail.test", "temperror tagged")
        msg = delivered(gw)
        check(msg["Received-SPF"].startswith("temperror "),
              msg["Received-SPF"])
        check("spf=temperror" in msg["Authentication-Results"],
              msg["Authentication-Results"])
    finally:
        dns.stop()


def test_spf_dns_silent_deadline(ctx, gw_factory):
    """No answer at all: the MAIL reply waits for spf_timeout, no more,
    and the loop serves another session meanwhile."""
    gw, dns = spf_gateway(ctx, gw_factory, "reject", spf_timeout="1500ms",
                          workers="1")
    try:
        with mxlib.session(gw) as c:
            t0 = time.monotonic()
            c.sendline("MAIL FROM:<x@slow.test>")
            # while that one waits on DNS, the same loop answers others
            with mxlib.session(gw) as other:
                other.expect(MAIL_OK, "MAIL FROM:<>")
            c.expect("451 4.4.3 SPF check of slow.test failed "
                     "temporarily, try again later", timeout_s=30)
            waited = time.monotonic() - t0
        ev = gw.wait_event("mail", **{"from": "<x@slow.test>"})
        check_eq(ev.get("spf"), "temperror", "spf=")
        check('spf_why="deadline passed"' in ev["line"], ev["line"])
        # a bound on a poll, not a claim of speed: the deadline is 1.5 s,
        # the resolver's own time-out (5 s) never came into it
        check(waited >= 1.4, f"replied after {waited:.2f}s, before the "
              "deadline")
    finally:
        dns.stop()


def test_spf_helo_identity_for_null_sender(ctx, gw_factory):
    gw, dns = spf_gateway(ctx, gw_factory, "reject")
    try:
        with mxlib.session(gw, helo="helo.pass.test") as c:
            c.expect(MAIL_OK, "MAIL FROM:<>")
            send(c, "", "null sender")
        msg = delivered(gw)
        ar = " ".join(msg["Authentication-Results"].split())
        check_eq(ar, 'mx.example.test; spf=pass smtp.helo="helo.pass.test"',
                 "Authentication-Results")
        check("identity=helo" in msg["Received-SPF"], msg["Received-SPF"])
        # HELO with no SPF record at all: none, accepted
        with mxlib.session(gw, helo="nothing.test") as c:
            c.expect(MAIL_OK, "MAIL FROM:<>")
    finally:
        dns.stop()


def test_spf_none_no_header_no_lookup(ctx, gw_factory):
    gw, dns = spf_gateway(ctx, gw_factory, "none")
    dns.stop()      # nothing may be asked: a question would time out
    with mxlib.session(gw) as c:
        c.expect(MAIL_OK, "MAIL FROM:<x@fail.test>")
        send(c, "x@fail.test", "none")
    msg = delivered(gw)
    check_eq(header_lines(msg)[0], "Received", "first header field")
    check(msg["Received-SPF"] is None and
          msg["Authentication-Results"] is None, "SPF headers with none")
    ev = gw.wait_event("mail", **{"from": "<x@fail.test>"})
    check("spf" not in ev, ev["line"])


def test_spf_not_for_relay_networks(ctx, gw_factory):
    gw, dns = spf_gateway(ctx, gw_factory, "reject",
                          relay_networks="127.0.0.2/32")
    try:
        with mxlib.session(gw, bind="127.0.0.2") as c:
            c.expect(MAIL_OK, "MAIL FROM:<x@fail.test>")
            send(c, "x@fail.test", "relay client")
        msg = delivered(gw)
        check(msg["Received-SPF"] is None, "Received-SPF for a relay client")
        ev = gw.wait_event("mail", **{"from": "<x@fail.test>"})
        check_eq(ev.get("spf"), "skipped", "spf= for a relay client")
        with mxlib.session(gw, bind="127.0.0.1") as c:
            c.expect("550 5.7.23 *", "MAIL FROM:<x@fail.test>")
    finally:
        dns.stop()


def test_spf_not_for_authenticated(ctx, gw_factory):
    dns = DnsServer(ctx.tmpdir)
    try:
        # the map lets alice send as x@fail.test (sender_login_map)
        gw = tls.tls_gateway(gw_factory, submission=False,
                             auth_on_smtp="yes", spf_policy="reject",
                             dns_server=f"127.0.0.1:{dns.port}",
                             sender_login_map="file:senders",
                             files={"senders": f"x@fail.test {tls.USER}\n"})
        with tls.raw(gw, tls=True) as c:
            c.expect(tls.AUTH_OK, "AUTH PLAIN " + tls.plain(tls.USER,
                                                            tls.PASSWORD))
            c.expect(MAIL_OK, "MAIL FROM:<x@fail.test>")
        with tls.raw(gw, tls=True) as c:
            c.expect("550 5.7.23 *", "MAIL FROM:<x@fail.test>")
    finally:
        dns.stop()


def test_spf_pipelined_commands_wait(ctx, gw_factory):
    gw, dns = spf_gateway(ctx, gw_factory, "reject")
    try:
        with mxlib.session(gw) as c:
            c.send(b"MAIL FROM:<x@fail.test>\r\nRCPT TO:<alice@example.test>"
                   b"\r\nMAIL FROM:<x@pass.test>\r\n"
                   b"RCPT TO:<alice@example.test>\r\nDATA\r\n")
            c.expect("550 5.7.23 *")
            c.expect("503 *")               # RCPT without a MAIL
            c.expect(MAIL_OK)
            c.expect(RCPT_OK)
            c.expect("354 *")
            c.send(mxlib.make_message("pipelined", sender="x@pass.test")
                   + b".\r\n")
            c.expect("250 2.0.0 Ok: queued as *")
        msg = delivered(gw)
        check(msg["Received-SPF"].startswith("pass "), msg["Received-SPF"])
    finally:
        dns.stop()


def test_spf_policy_config_error(ctx):
    path = ctx.write("bad.conf", "hostname = mx.example.test\n"
                     "spool = spool\ndomains = example.test\n"
                     "spf_policy = maybe\ndirectory = file:users\n")
    ctx.write("users", "alice@example.test\n")
    os.makedirs(os.path.join(ctx.tmpdir, "spool"), exist_ok=True)
    p = ctx.run_binary(["check-config", "-c", path])
    check(p.returncode != 0, "check-config accepted spf_policy = maybe")
    err = p.stderr.decode() + p.stdout.decode()
    check(":4:" in err and "spf_policy" in err and
          "expected none, tag or reject" in err, err)
