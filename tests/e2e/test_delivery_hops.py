"""
test_delivery_hops.py - delivery to the organization's servers (issue 3).
Peers (peers.py, on 127.0.0.1): Postfix's smtp-sink and Dovecot LMTP as
next hops, a recording Python SMTP server as next hop or relayhost.
Covers: smtp: and lmtp: (TCP, unix socket) next hops, one result per
recipient, 4xx retry with backoff, 5xx failure and its DSN, a next hop
that is down then up, queue lifetime expiry, the bounce policy and its
backscatter guard (null sender, report loop, forged local sender, rates),
null-sender limits at RCPT, relaying for relay_networks via relayhost,
the concurrency limit, kill -9 during delivery, the retry schedule across
a restart and `mxgate queue flush`.
"""

from __future__ import annotations

import datetime
import os
import re
import time

import mxlib
import peers
from mxlib import check, check_eq, fail

QID = re.compile(r"^250 2\.0\.0 Ok: queued as ([0-9A-F]{16})$")
SENDER = "x@remote.test"
RCPT_OK = "250 2.1.5 Ok"
NULL_ONE_RCPT = ("550 5.7.1 Error: a bounce (null sender) may have one "
                 "recipient only")
NULL_RATE = "450 4.7.1 Too many bounces for this recipient, try again later"
WAIT = 30.0  # a bound on one delivery step (a poll, not a claim)


# ---------------------------------------------------------------- helpers

def hop_config(hop: str, relay: "peers.PySink | None" = None,
               **extra: str) -> dict[str, str]:
    """Fast retries; relayhost is always on loopback (a dead port when the
    test has no relay peer) so no DSN ever looks up a public MX."""
    port = relay.port if relay else mxlib.free_port()
    conf = {"next_hop": hop, "retry_min": "1s", "retry_max": "2s",
            "smtp_connect_timeout": "2s", "smtp_timeout": "5s",
            "relayhost": f"127.0.0.1:{port}"}
    conf.update(extra)
    return conf


def marked_message(subject: str, sender: str = SENDER,
                   to: str = "alice@example.test",
                   extra_headers: tuple[str, ...] = ()) -> tuple[bytes, str]:
    """A message whose body holds a unique marker line (never in a DSN)."""
    marker = f"BODY-MARKER-{subject.replace(' ', '-')}-{time.monotonic_ns()}"
    msg = mxlib.make_message(subject, ["Hello,", marker, "bye"], sender, to)
    if extra_headers:
        head, sep, body = msg.partition(b"\r\n\r\n")
        msg = head + b"".join(b"\r\n" + h.encode() for h in extra_headers) \
            + sep + body
    return msg, marker


def send(gw, sender: str, rcpts: list[str], msg: bytes,
         bind: str | None = None, rcpt_reply: str = RCPT_OK) -> str:
    """One message over a raw session; every RCPT must get rcpt_reply.
    Returns the queue id from the end-of-DATA reply."""
    with mxlib.session(gw, bind=bind) as c:
        c.expect("250 2.1.0 Ok", f"MAIL FROM:<{sender}>")
        for r in rcpts:
            c.expect(rcpt_reply, f"RCPT TO:<{r}>")
        c.expect("354 *", "DATA")
        c.send(msg + b".\r\n")
        text = c.reply(10.0).text
        c.expect("221 *", "QUIT")
    m = QID.match(text)
    check(m, f"end of DATA: expected '250 2.0.0 Ok: queued as <16 HEX>', "
             f"got {text!r}")
    return m.group(1)


def ts(ev: dict[str, str]) -> float:
    """A log line's time stamp (2026-11-28T07:40:01.120Z) in seconds."""
    t = datetime.datetime.strptime(ev["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")
    return t.replace(tzinfo=datetime.timezone.utc).timestamp()


def quoted(ev: dict[str, str], key: str) -> str:
    """A key="value with blanks" of a log line (events() splits at blanks)."""
    m = re.search(r'\b%s="((?:[^"\\]|\\.)*)"' % re.escape(key), ev["line"])
    return m.group(1) if m else ev.get(key, "")


def py_sink(ctx, name: str, port: int | None = None,
            lmtp: bool = False) -> "peers.PySink":
    """A recording SMTP (LMTP) server; what it accepts is also kept in
    TMP/NAME/ (for whoever reads a failed test's folder)."""
    return peers.PySink(port, name, os.path.join(ctx.tmpdir, name), lmtp)


def wait_spool_empty(gw, timeout_s: float = WAIT) -> None:
    mxlib.wait_until(lambda: gw.spool_files() == [], timeout_s,
                     f"an empty spool (has {gw.spool_files()})")


def stays_false(pred, seconds: float, what: str) -> None:
    """pred must stay false for this long (a negative check, polled)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        v = pred()
        if v:
            fail(f"{what}: {v}")
        time.sleep(0.05)


def dsn_event(gw, qid: str, to: str = SENDER) -> dict[str, str]:
    """The event=dsn line saying a report about qid was queued."""
    ev = gw.wait_event("dsn", qid=qid, to=to, timeout_s=WAIT)
    check("dsn_qid" in ev, f"event=dsn without dsn_qid: {ev['line']}")
    check("ndr" not in ev, f"DSN suppressed: {ev['line']}")
    return ev


def check_suppressed(ev: dict[str, str], reason: str, rcpt: str) -> None:
    """event=dsn qid=Q to=<RCPT> ndr=suppressed reason=REASON"""
    check_eq((ev.get("ndr"), ev.get("reason")), ("suppressed", reason),
             f"ndr and reason of {ev['line']!r}")
    check_eq(ev.get("to"), f"<{rcpt}>", f"to= of {ev['line']!r}")


def check_dsn(rec: "peers.Received", to: str, failed: dict[str, str],
              original: bytes, marker: str) -> "peers.Report":
    """rec is an RFC 3464 report to `to` from <>, naming each failed
    recipient with its status prefix, with the original's headers only."""
    check_eq(rec.mail_from, "", "DSN envelope sender")
    check_eq(rec.rcpts, [to], "DSN envelope recipients")
    check(marker.encode() not in rec.data,
          f"the DSN contains the original's body (marker {marker})")
    auto = rec.header("Auto-Submitted") or ""
    check(auto.lower().startswith("auto-replied"),
          f"DSN Auto-Submitted: expected auto-replied, got {auto!r}")
    rep = peers.parse_report(rec)
    by_rcpt = {}
    for f in rep.per_rcpt:
        fr = f.get("final-recipient", "")
        check(fr.lower().startswith("rfc822;"),
              f"Final-Recipient not of type rfc822: {fr!r}")
        addr = fr.split(";", 1)[1].strip()
        # RFC 3464 2.3.2 / 2.1.2: an rfc822 address is a bare addr-spec.
        check("<" not in addr and ">" not in addr,
              f"Final-Recipient address in angle brackets: {fr!r}")
        by_rcpt[addr.lower()] = f
    check_eq(sorted(by_rcpt), sorted(a.lower() for a in failed),
             "recipients named in the DSN")
    for addr, status in failed.items():
        f = by_rcpt[addr.lower()]
        check_eq(f.get("action", "").lower(), "failed", f"Action for {addr}")
        check(f.get("status", "").startswith(status),
              f"Status for {addr}: expected {status}*, "
              f"got {f.get('status')!r}")
        diag = f.get("diagnostic-code", "")
        check(not re.search(r"\b(\d{3} \d\.\d{1,3}\.\d{1,3}) \1\b", diag),
              f"Diagnostic-Code for {addr} repeats the reply code: {diag!r}")
    check("reporting-mta" in rep.per_message,
          f"no Reporting-MTA in the per-message fields: {rep.per_message}")
    head = original.split(b"\r\n\r\n", 1)[0].decode()
    for name in ("Subject", "Message-ID"):
        line = next(ln for ln in head.split("\r\n") if ln.startswith(name))
        check(line in rep.headers.replace("\r\n", "\n"),
              f"the returned headers lack {line!r}")
    return rep


# ---------------------------------------------------------------- smtp: hop

def test_smtp_hop_two_recipients(ctx, gw_factory):
    with peers.SmtpSink(os.path.join(ctx.tmpdir, "sink")) as sink:
        gw = gw_factory(config=hop_config(f"smtp:127.0.0.1:{sink.port}"))
        msg, marker = marked_message("smtp hop")
        rcpts = ["alice@example.test", "bob@example.test"]
        qid = send(gw, SENDER, rcpts, msg)
        for r in rcpts:
            ev = gw.wait_event("delivered", qid=qid, to=r, timeout_s=WAIT)
            check_eq(ev.get("status"), "2.0.0", f"status of {r}")
        gw.wait_event("removed", qid=qid, timeout_s=WAIT)
        got = [m for m in sink.wait_messages(1) if marker.encode() in m.data]
        check(got, f"smtp-sink has no message with {marker}")
        check_eq(sorted(r for m in got for r in m.rcpts), rcpts,
                 "envelope recipients seen by smtp-sink")
        for m in got:
            check_eq(m.mail_from, SENDER, "envelope sender at smtp-sink")
            check(m.data.startswith(b"Received:"),
                  f"relayed message lacks our Received: {m.data[:80]!r}")
            check(m.data.endswith(mxlib.expected_delivery(msg)),
                  "relayed message differs from the original")
        wait_spool_empty(gw)
        check_eq(gw.events("failed"), [], "failed events")


def test_next_hop_concurrency_limit(ctx, gw_factory):
    with py_sink(ctx, "hop") as hop:
        hop.data_delay = 0.3
        gw = gw_factory(config=hop_config(f"smtp:127.0.0.1:{hop.port}",
                                          next_hop_concurrency="2"))
        qids = [send(gw, SENDER, ["bob@example.test"],
                     mxlib.make_message(f"conc {i}")) for i in range(6)]
        for q in qids:
            gw.wait_event("delivered", qid=q, timeout_s=WAIT)
        check(hop.max_active <= 2,
              f"{hop.max_active} connections at once to a next hop "
              "limited to 2")
        check_eq(len(hop.received()), 6, "messages at the next hop")
        wait_spool_empty(gw)


# ---------------------------------------------------------------- lmtp: hop

@mxlib.params(["tcp", "unix"])
def test_lmtp_hop_dovecot(ctx, gw_factory, param):
    """Dovecot knows alice and bob; our users file also lists carol."""
    dv = peers.Dovecot(os.path.join(ctx.tmpdir, "dovecot"),
                       ["alice@example.test", "bob@example.test"])
    with dv, py_sink(ctx, "relay") as relay:
        hop = (f"lmtp:127.0.0.1:{dv.port}" if param == "tcp"
               else f"lmtp:unix:{dv.socket}")
        gw = gw_factory(config=hop_config(hop, relay))
        msg, marker = marked_message(f"lmtp {param}")
        qid = send(gw, SENDER, ["alice@example.test", "bob@example.test",
                                "carol@example.test"], msg)
        for who in ("alice", "bob"):
            gw.wait_event("delivered", qid=qid, to=f"{who}@example.test",
                          timeout_s=WAIT)
            files = dv.wait_mail(f"{who}@example.test")
            check_eq(len(files), 1, f"files in Dovecot's Maildir of {who}")
            with open(files[0], "rb") as f:
                data = f.read()
            check(marker.encode() in data and b"Subject: lmtp" in data,
                  f"{who}'s Dovecot mail is not our message: {data[:200]!r}")
        ev = gw.wait_event("failed", qid=qid, to="carol@example.test",
                           timeout_s=WAIT)
        check_eq(ev.get("status"), "5.1.1", "status of carol (Dovecot 550)")
        check_eq(dv.maildir_files("carol@example.test"), [],
                 "carol's Dovecot Maildir")
        dsn = dsn_event(gw, qid)
        check_eq(dsn.get("rcpts"), "1", "recipients in the DSN event")
        rec = relay.wait_messages(1)[0]
        rep = check_dsn(rec, SENDER, {"carol@example.test": "5.1.1"}, msg,
                        marker)
        diag = rep.per_rcpt[0].get("diagnostic-code", "")
        check("550" in diag, f"Diagnostic-Code lacks Dovecot's 550: {diag!r}")
        gw.wait_event("delivered", qid=dsn["dsn_qid"], to=SENDER,
                      timeout_s=WAIT)
        check_eq(gw.events("dsn", qid=dsn["dsn_qid"]), [],
                 "DSN events about the DSN itself")
        wait_spool_empty(gw)


# ---------------------------------------------------------------- 4xx / 5xx

@mxlib.params(["smtp", "lmtp"])
def test_one_result_per_recipient(ctx, gw_factory, param):
    """alice 2xx, bob 4xx, carol 5xx in one transaction: at RCPT (SMTP) or
    after DATA (LMTP).  Only bob is retried; only carol is reported."""
    answers = {"alice": "250 2.1.5 Ok", "bob": "452 4.2.2 Mailbox full",
               "carol": "550 5.2.1 Mailbox disabled"}

    def by_rcpt(addr: str) -> str:
        return answers.get(addr.split("@")[0], "250 2.0.0 Ok")
    with py_sink(ctx, "hop", lmtp=param == "lmtp") as hop, \
            py_sink(ctx, "relay") as relay:
        if param == "lmtp":
            hop.data_reply = by_rcpt
        else:
            hop.rcpt_reply = by_rcpt
        gw = gw_factory(config=hop_config(f"{param}:127.0.0.1:{hop.port}",
                                          relay))
        rcpts = [f"{u}@example.test" for u in ("alice", "bob", "carol")]
        msg, marker = marked_message(f"per rcpt {param}")
        qid = send(gw, SENDER, rcpts, msg)
        gw.wait_event("delivered", qid=qid, to=rcpts[0], timeout_s=WAIT)
        ev = gw.wait_event("deferred", qid=qid, to=rcpts[1], timeout_s=WAIT)
        check_eq((ev.get("status"), ev.get("attempts")), ("4.2.2", "1"),
                 "bob's deferral")
        ev = gw.wait_event("failed", qid=qid, to=rcpts[2], timeout_s=WAIT)
        check_eq(ev.get("status"), "5.2.1", "carol's status")
        check_eq(ev.get("dsn_qid"), None, "dsn_qid on a failed line")
        dsn = dsn_event(gw, qid)
        check_eq(dsn.get("rcpts"), "1", "recipients in the DSN")
        check_dsn(relay.wait_messages(1)[0], SENDER,
                  {"carol@example.test": "5.2.1"}, msg, marker)
        answers["bob"] = "250 2.0.0 Ok"  # the mailbox has room again
        gw.wait_event("delivered", qid=qid, to=rcpts[1], timeout_s=WAIT)
        gw.wait_event("removed", qid=qid, timeout_s=WAIT)
        got = [m.rcpts for m in hop.received() if marker.encode() in m.data]
        check_eq(got, [["alice@example.test"], ["bob@example.test"]],
                 "recipients accepted by the next hop, per transaction")
        check_eq(len(gw.events("delivered", qid=qid, to=rcpts[0])), 1,
                 "deliveries to alice")
        check_eq(len(relay.received()), 1, "DSNs at the relayhost")
        wait_spool_empty(gw)


def test_smtp_hop_4xx_retried_then_accepted(ctx, gw_factory):
    with peers.SmtpSink(os.path.join(ctx.tmpdir, "sink"),
                        options=["-r", "RCPT"]) as sink:
        gw = gw_factory(config=hop_config(f"smtp:127.0.0.1:{sink.port}"))
        qid = send(gw, SENDER, ["alice@example.test"],
                   mxlib.make_message("soft"))
        evs = []
        for n in (1, 2, 3):
            evs.append(gw.wait_event("deferred", qid=qid, attempts=str(n),
                                     to="alice@example.test", timeout_s=WAIT))
        for ev in evs:
            check(ev.get("status", "").startswith("4."),
                  f"deferred with a non-4xx status: {ev['line']}")
            check("4.3.0" in ev["line"] or "command failed" in ev["line"],
                  f"reason lacks smtp-sink's reply: {ev['line']}")
        # retry_min=1s, doubling, retry_max=2s: waits 1, 2, 2.
        check_eq([ev.get("next_attempt_s") for ev in evs], ["1", "2", "2"],
                 "next_attempt_s of attempts 1..3")
        for a, b in zip(evs, evs[1:]):
            gap, want = ts(b) - ts(a), int(a["next_attempt_s"])
            # The schedule is kept in whole seconds: allow one second less.
            check(gap >= want - 1.0,
                  f"retried {gap:.2f}s after an attempt that said "
                  f"next_attempt_s={want}")
        check_eq(gw.events("delivered", qid=qid), [], "delivered events")
        sink.restart([])
        ev = gw.wait_event("delivered", qid=qid, to="alice@example.test",
                           timeout_s=WAIT)
        check_eq(ev.get("status"), "2.0.0", "status when accepted")
        gw.wait_event("removed", qid=qid, timeout_s=WAIT)
        check(any("alice@example.test" in m.rcpts for m in sink.received()),
              "smtp-sink did not record the message")
        check_eq(gw.events("failed", qid=qid), [], "failed events")
        wait_spool_empty(gw)


@mxlib.params(["RCPT", "."], ids=["rcpt", "dot"])
def test_smtp_hop_5xx_failed_with_dsn(ctx, gw_factory, param):
    sink = peers.SmtpSink(os.path.join(ctx.tmpdir, "sink"),
                          options=["-f", param])
    with sink, py_sink(ctx, "relay") as relay:
        gw = gw_factory(config=hop_config(f"smtp:127.0.0.1:{sink.port}",
                                          relay))
        msg, marker = marked_message("hard")
        qid = send(gw, SENDER, ["alice@example.test"], msg)
        ev = gw.wait_event("failed", qid=qid, to="alice@example.test",
                           timeout_s=WAIT)
        check(ev.get("status", "").startswith("5."),
              f"failed without a 5xx status: {ev['line']}")
        check_eq(gw.events("deferred", qid=qid), [], "deferred events")
        dsn_event(gw, qid)
        rec = relay.wait_messages(1)[0]
        check_dsn(rec, SENDER, {"alice@example.test": "5."}, msg, marker)
        gw.wait_event("removed", qid=qid, timeout_s=WAIT)
        wait_spool_empty(gw)


def test_failed_dsn_gets_no_dsn(ctx, gw_factory):
    """The DSN itself is refused by the relayhost: never a DSN about it."""
    sink = peers.SmtpSink(os.path.join(ctx.tmpdir, "sink"),
                          options=["-f", "RCPT"])
    with sink, py_sink(ctx, "relay") as relay:
        relay.rcpt_reply = "550 5.1.1 No such user here"
        gw = gw_factory(config=hop_config(f"smtp:127.0.0.1:{sink.port}",
                                          relay))
        qid = send(gw, SENDER, ["alice@example.test"],
                   mxlib.make_message("loop"))
        dsn_qid = dsn_event(gw, qid)["dsn_qid"]
        gw.wait_event("failed", qid=dsn_qid, to=SENDER, timeout_s=WAIT)
        ev = gw.wait_event("dsn", qid=dsn_qid, ndr="suppressed",
                           timeout_s=WAIT)
        check(ev.get("reason") in ("null_sender", "dsn_loop"),
              f"reason for not reporting on a DSN: {ev['line']}")
        wait_spool_empty(gw)
        check_eq([e for e in gw.events("dsn") if "dsn_qid" in e
                  and e["qid"] != qid], [], "DSNs about DSNs")
        check_eq(relay.received(), [], "messages accepted by the relayhost")


# ---------------------------------------------------------------- hop down

def test_next_hop_down_then_up(ctx, gw_factory):
    port = mxlib.free_port()
    gw = gw_factory(config=hop_config(f"smtp:127.0.0.1:{port}"))
    qid = send(gw, SENDER, ["alice@example.test"],
               mxlib.make_message("down"))
    ev = gw.wait_event("deferred", qid=qid, attempts="1", timeout_s=WAIT)
    check(re.search(r"(?i)connect|refused", quoted(ev, "reply")),
          f"deferred reason does not name the connection failure: "
          f"{ev['line']}")
    check(gw.spool_files(), "the spool is empty while the hop is down")
    with peers.SmtpSink(os.path.join(ctx.tmpdir, "sink"), port=port) as sink:
        gw.wait_event("delivered", qid=qid, to="alice@example.test",
                      timeout_s=WAIT)
        gw.wait_event("removed", qid=qid, timeout_s=WAIT)
        check(any("alice@example.test" in m.rcpts for m in sink.received()),
              "smtp-sink did not record the message")
        wait_spool_empty(gw)


def test_queue_lifetime_expiry(ctx, gw_factory):
    with py_sink(ctx, "relay") as relay:
        gw = gw_factory(config=hop_config(
            f"smtp:127.0.0.1:{mxlib.free_port()}", relay,
            queue_lifetime="4s"))
        msg, marker = marked_message("expiry")
        t0 = time.time()
        qid = send(gw, SENDER, ["alice@example.test"], msg)
        ev = gw.wait_event("failed", qid=qid, to="alice@example.test",
                           timeout_s=30.0)
        check_eq(ev.get("status"), "4.4.7", "status on expiry")
        # Times on disk are whole seconds: up to one second early.
        check(ts(ev) - t0 >= 2.9,
              f"expired {ts(ev) - t0:.1f}s after queueing (lifetime 4s)")
        check(len(gw.events("deferred", qid=qid)) >= 2,
              "fewer than 2 deferred attempts before expiry")
        dsn_event(gw, qid)
        rec = relay.wait_messages(1)[0]
        check_dsn(rec, SENDER, {"alice@example.test": "4.4.7"}, msg, marker)
        wait_spool_empty(gw)


# ---------------------------------------------------------------- bounce

BOUNCE = {"unknown_recipient": "bounce", "harvest_exempt": "127.0.0.0/8"}


def test_bounce_ndr_to_external_sender(ctx, gw_factory):
    with py_sink(ctx, "relay") as relay:
        gw = gw_factory(config=hop_config("maildir:mail", relay, **BOUNCE))
        msg, marker = marked_message("ndr", to="nobody@example.test")
        with mxlib.session(gw) as c:
            c.expect("250 2.1.0 Ok", f"MAIL FROM:<{SENDER}>")
            valid = c.cmd("RCPT TO:<alice@example.test>")
            unknown = c.cmd("RCPT TO:<nobody@example.test>")
            check_eq(valid.raw, b"250 2.1.5 Ok\r\n", "RCPT reply, valid user")
            check_eq(unknown.raw, valid.raw, "RCPT reply, unknown user")
            c.expect("354 *", "DATA")
            c.send(msg + b".\r\n")
            m = QID.match(c.reply(10.0).text)
            check(m, "end of DATA not queued")
            qid = m.group(1)
        gw.wait_maildir("example.test", "alice")
        check_eq(gw.maildir_files("example.test", "nobody"), [],
                 "a Maildir for the unknown user")
        ev = dsn_event(gw, qid)
        check_eq(ev.get("rcpts"), "1", "recipients in the NDR event")
        rec = relay.wait_messages(1)[0]
        check_dsn(rec, SENDER, {"nobody@example.test": "5.1.1"}, msg, marker)
        gw.wait_event("delivered", qid=ev["dsn_qid"], to=SENDER,
                      timeout_s=WAIT)
        wait_spool_empty(gw)


@mxlib.params([("null_sender", "", ()),
               ("forged_local_sender", "carol@example.test", ()),
               ("dsn_loop", SENDER, ("Auto-Submitted: auto-replied",))],
              ids=["null_sender", "forged_local_sender", "dsn_loop"])
def test_bounce_ndr_suppressed(ctx, gw_factory, param):
    reason, sender, headers = param
    with py_sink(ctx, "relay") as relay:
        gw = gw_factory(config=hop_config("maildir:mail", relay, **BOUNCE))
        msg, _ = marked_message(f"no ndr {reason}", sender or "mailer@x.test",
                                "nobody@example.test", headers)
        qid = send(gw, sender, ["nobody@example.test"], msg)
        ev = gw.wait_event("dsn", qid=qid, ndr="suppressed", timeout_s=WAIT)
        check_suppressed(ev, reason, "nobody@example.test")
        stays_false(lambda: relay.received() or
                    [e["line"] for e in gw.events("dsn") if "dsn_qid" in e],
                    1.0, "an NDR was sent anyway")
        wait_spool_empty(gw)


def test_bounce_local_sender_from_relay_network_gets_ndr(gw_factory):
    """A sender of ours is believed when the client may relay: the NDR
    goes to that local user's Maildir."""
    gw = gw_factory(config=hop_config("maildir:mail", None,
                                      relay_networks="127.0.0.2/32",
                                      **BOUNCE))
    msg, marker = marked_message("local ndr", "carol@example.test",
                                 "nobody@example.test")
    qid = send(gw, "carol@example.test", ["nobody@example.test"], msg,
               bind="127.0.0.2")
    dsn_event(gw, qid, to="carol@example.test")
    path = gw.wait_maildir("example.test", "carol", timeout_s=WAIT)[0]
    with open(path, "rb") as f:
        data = f.read()
    check(marker.encode() not in data, "the local NDR contains the body")
    if data.startswith(b"Received:"):
        data = mxlib.split_received(data)[1]
    rec = peers.Received("", ["carol@example.test"], data)
    check_dsn(rec, "carol@example.test", {"nobody@example.test": "5.1.1"},
              msg, marker)
    wait_spool_empty(gw)


@mxlib.params([("rate_sender", ["s@remote.test"] * 3),
               ("rate_domain", ["s1@remote.test", "s2@remote.test",
                                "s3@remote.test"])],
              ids=["rate_sender", "rate_domain"])
def test_bounce_ndr_rate_limits(ctx, gw_factory, param):
    reason, senders = param
    with py_sink(ctx, "relay") as relay:
        gw = gw_factory(config=hop_config(
            "maildir:mail", relay, ndr_rate_per_sender="2",
            ndr_rate_per_domain="2" if reason == "rate_domain" else "50",
            **BOUNCE))
        qids = []
        for i, s in enumerate(senders):
            msg, _ = marked_message(f"rate {i}", s, "nobody@example.test")
            qids.append(send(gw, s, ["nobody@example.test"], msg))
            # In order: the limit is about the third report, not a race.
            gw.wait_event("dsn", qid=qids[-1], timeout_s=WAIT)
        for q, s in zip(qids[:2], senders):
            dsn_event(gw, q, to=s)
        ev = gw.wait_event("dsn", qid=qids[2], timeout_s=WAIT)
        check_suppressed(ev, reason, "nobody@example.test")
        got = relay.wait_messages(2)
        check_eq(sorted(r for m in got for r in m.rcpts), sorted(senders[:2]),
                 "NDR recipients at the relayhost")
        wait_spool_empty(gw)
        check_eq(len(relay.received()), 2, "NDRs at the relayhost")


# ---------------------------------------------------------------- null sender

def test_null_sender_one_recipient_only(gw):
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<>")
        c.expect(RCPT_OK, "RCPT TO:<alice@example.test>")
        c.expect(NULL_ONE_RCPT, "RCPT TO:<bob@example.test>")
        c.expect("354 *", "DATA")
        c.send(mxlib.make_message("one bounce", sender="mailer@remote.test")
               + b".\r\n")
        c.expect("250 2.0.0 Ok: queued as *")
    gw.wait_maildir("example.test", "alice")
    check_eq(gw.maildir_files("example.test", "bob"), [], "bob's Maildir")


def test_null_sender_rate_per_recipient(gw_factory):
    gw = gw_factory(config={"null_sender_rate": "3/10m"})
    for i in range(3):
        send(gw, "", ["alice@example.test"],
             mxlib.make_message(f"bounce {i}", sender="mailer@remote.test"))
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<>")
        c.expect(NULL_RATE, "RCPT TO:<alice@example.test>")
        c.expect("250 *", "RSET")
        c.expect("250 2.1.0 Ok", "MAIL FROM:<>")
        c.expect(RCPT_OK, "RCPT TO:<bob@example.test>")
        c.expect("250 *", "RSET")
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        c.expect(RCPT_OK, "RCPT TO:<alice@example.test>")
    gw.wait_maildir("example.test", "alice", count=3)
    wait_spool_empty(gw)
    check_eq(len(gw.maildir_files("example.test", "alice")), 3,
             "bounces in alice's Maildir")


# ---------------------------------------------------------------- relay

def test_relay_networks_via_relayhost(ctx, gw_factory):
    with py_sink(ctx, "relay") as relay:
        gw = gw_factory(config=hop_config(
            "maildir:mail", relay, relay_networks="127.0.0.2/32"))
        msg, marker = marked_message("relayed", "carol@example.test",
                                     "someone@remote.test")
        qid = send(gw, "carol@example.test", ["someone@remote.test"], msg,
                   bind="127.0.0.2", rcpt_reply="250 *")
        ev = gw.wait_event("delivered", qid=qid, to="someone@remote.test",
                           timeout_s=WAIT)
        check_eq(ev.get("status"), "2.0.0", "status at the relayhost")
        rec = relay.wait_messages(1)[0]
        check_eq((rec.mail_from, rec.rcpts),
                 ("carol@example.test", ["someone@remote.test"]),
                 "envelope at the relayhost")
        check(marker.encode() in rec.data, "relayed body lacks the marker")
        check(rec.data.endswith(msg), "relayed message differs")
        wait_spool_empty(gw)


# ---------------------------------------------------------------- crashes

@mxlib.timeout(180)
def test_kill9_during_delivery(ctx, gw_factory):
    with py_sink(ctx, "hop") as hop:
        hop.data_delay = 1.0
        gw = gw_factory(config=hop_config(f"smtp:127.0.0.1:{hop.port}",
                                          next_hop_concurrency="1"))
        subjects = [f"k9 {i}" for i in range(5)]
        qids = [send(gw, SENDER, ["alice@example.test"],
                     mxlib.make_message(s)) for s in subjects]
        mxlib.wait_until(lambda: hop.received() and hop.pending > 0, WAIT,
                         "one message delivered and the next one waiting "
                         "for its reply")
        gw.kill9()
        hop.data_delay = 0.0
        gw.start()

        def missing():
            got = {m.subject for m in hop.received()}
            return [s for s in subjects if s not in got]
        mxlib.wait_until(lambda: not missing(), 15.0,
                         "every acknowledged message at the next hop")
        wait_spool_empty(gw)
        for q in qids:
            check(gw.events("delivered", qid=q), f"no event=delivered for {q}")
        # At least once: the one in flight, and perhaps the one just
        # acknowledged before the kill, may come twice; no more.
        check(len(hop.received()) <= len(subjects) + 2,
              f"{len(hop.received())} deliveries of {len(subjects)} "
              "messages: the whole queue was sent again")


def test_kill9_keeps_a_finished_next_hop_done(ctx, gw_factory):
    """One message for two next hops: the Maildir takes its copy at once,
    the SMTP hop keeps the other waiting for its reply.  A kill -9 then
    must not bring the Maildir copy again after the restart: a group's D
    records are written when that group is done, not when the message is."""
    with py_sink(ctx, "hop") as hop:
        hop.data_delay = 60.0  # no reply before the kill
        gw = gw_factory(
            users=("alice@example.test", "bob@smtp.test"),
            config=hop_config("maildir:mail", smtp_timeout="120s",
                              domains="example.test, smtp.test"),
            sections={"smtp.test": {"next_hop": f"smtp:127.0.0.1:{hop.port}"}})
        qid = send(gw, SENDER, ["alice@example.test", "bob@smtp.test"],
                   mxlib.make_message("two hops"))
        # the message's events come when all its groups are done: the
        # sign that the Maildir group is, is its D record in the queue
        # file (queue show: "done"), written just after the Maildir file
        gw.wait_maildir("example.test", "alice", 1, timeout_s=WAIT)

        def alice_done():
            p = ctx.run_binary(["queue", "show", qid, "-c", gw.conf_path])
            return "recipient: <alice@example.test> done" in \
                p.stdout.decode("utf-8", "replace")
        mxlib.wait_until(alice_done, WAIT, "alice's D record", 0.05)
        mxlib.wait_until(lambda: hop.pending > 0, WAIT,
                         "the SMTP hop holding the message's data")
        check_eq(gw.events("delivered", qid=qid), [], "events before the "
                 "kill (smtp_timeout is longer than the test)")
        gw.kill9()
        hop.data_delay = 0.0
        mark = gw.log_mark()
        gw.start()
        gw.wait_event("delivered", qid=qid, to="bob@smtp.test",
                      timeout_s=WAIT, since=mark)
        gw.wait_event("removed", qid=qid, timeout_s=WAIT, since=mark)
        check_eq(gw.events("delivered", since=mark, to="alice@example.test"),
                 [], "Maildir deliveries after the restart")


def test_restart_keeps_retry_schedule(ctx, gw_factory):
    port = mxlib.free_port()
    gw = gw_factory(config=hop_config(f"smtp:127.0.0.1:{port}",
                                      retry_min="30s", retry_max="1h"))
    qid = send(gw, SENDER, ["alice@example.test"],
               mxlib.make_message("patience"))
    ev = gw.wait_event("deferred", qid=qid, timeout_s=WAIT)
    check_eq((ev.get("attempts"), ev.get("next_attempt_s")), ("1", "30"),
             "first deferral")
    gw.stop()
    with py_sink(ctx, "hop", port=port) as hop:  # a retry now would succeed
        mark = gw.log_mark()
        gw.start()
        stays_false(lambda: hop.received() or
                    [e["line"] for e in gw.events(since=mark, qid=qid)
                     if e["event"] in ("deferred", "delivered", "failed")],
                    2.5, "retried at once after a restart (retry_min=30s)")
        check(gw.spool_files(), "the spool is empty before the retry")
        help_text = ctx.run_binary(["--help"])
        usage = help_text.stdout + help_text.stderr
        if not re.search(rb"mxgate queue", usage):
            print("SKIP part: `mxgate queue` does not exist yet")
            return
        p = ctx.run_binary(["queue", "flush", "-c", gw.conf_path])
        check_eq(p.returncode, 0, "`mxgate queue flush` exit status "
                 f"(stderr {p.stderr!r})")
        ev = gw.wait_event("delivered", qid=qid, since=mark, timeout_s=WAIT)
        check_eq(ev.get("to"), "<alice@example.test>", "flushed recipient")
        hop.wait_messages(1)
        wait_spool_empty(gw)
