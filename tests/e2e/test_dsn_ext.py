"""
test_dsn_ext.py - the DSN extension (RFC 3461, issue 12 point 4) with the
real binary.  Peers (peers.py, on 127.0.0.1): a recording Python SMTP
server as next hop (with or without DSN in its EHLO) and as relayhost,
where every report mxgate sends arrives.
Covers: DSN on EHLO; RET/ENVID/NOTIFY/ORCPT syntax (501 5.5.4, twice,
unknown parameters); NOTIFY=NEVER and a permanent failure (no NDR, also
under the bounce policy); NOTIFY=SUCCESS to a hop without DSN (a
"relayed" report) and to Maildir ("delivered"); a hop with DSN gets the
parameters verbatim and we send no report; delay_warning_time (one
"delayed" report, only for recipients whose NOTIFY allows it); RET=FULL
with and without ndr_return_full; a queue file without DSN records (the
old format) still loads after a restart and is delivered; the longer
command lines the parameters need (RFC 3461 3: MAIL and RCPT only, a
500-octet ORCPT passed on verbatim, 512 for every other command).
"""

from __future__ import annotations

import os
import re
import time

import mxlib
import peers
from mxlib import check, check_eq, fail

QID = re.compile(r"^250 2\.0\.0 Ok: queued as ([0-9A-F]{16})$")
SENDER = "x@remote.test"
WAIT = 10.0


def hop_config(hop: str, relay: "peers.PySink", **extra: str) -> dict:
    conf = {"next_hop": hop, "retry_min": "1s", "retry_max": "2s",
            "smtp_connect_timeout": "2s", "smtp_timeout": "5s",
            "relayhost": f"127.0.0.1:{relay.port}"}
    conf.update(extra)
    return conf


def py_sink(ctx, name: str) -> "peers.PySink":
    return peers.PySink(None, name, os.path.join(ctx.tmpdir, name))


def marked(subject: str) -> tuple[bytes, str]:
    marker = f"BODY-MARKER-{subject.replace(' ', '-')}-{time.monotonic_ns()}"
    return mxlib.make_message(subject, ["Hello,", marker, "bye"], SENDER), \
        marker


def send(gw, mail_params: str, rcpts: list[tuple[str, str]],
         msg: bytes) -> str:
    """MAIL FROM:<SENDER>mail_params, RCPT TO:<r>params for each; every
    command must be accepted.  Returns the queue id."""
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", f"MAIL FROM:<{SENDER}>{mail_params}")
        for r, p in rcpts:
            c.expect("250 2.1.5 Ok", f"RCPT TO:<{r}>{p}")
        c.expect("354 *", "DATA")
        c.send(msg + b".\r\n")
        text = c.reply(10.0).text
        c.expect("221 *", "QUIT")
    m = QID.match(text)
    check(m, f"end of DATA not queued: {text!r}")
    return m.group(1)


def stays_false(pred, seconds: float, what: str) -> None:
    """pred must stay false for this long (a negative check, polled)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        v = pred()
        if v:
            fail(f"{what}: {v}")
        time.sleep(0.05)


def wait_spool_empty(gw) -> None:
    mxlib.wait_until(lambda: gw.spool_files() == [], WAIT,
                     f"an empty spool (has {gw.spool_files()})")


def report_to_sender(relay: "peers.PySink") -> "peers.Received":
    rec = relay.wait_messages(1, WAIT)[0]
    check_eq(rec.mail_from, "", "report envelope sender")
    check_eq(rec.rcpts, [SENDER], "report envelope recipients")
    auto = rec.header("Auto-Submitted") or ""
    check(auto.lower().startswith("auto-replied"),
          f"report Auto-Submitted: {auto!r}")
    return rec


# ---------------------------------------------------------------- EHLO

def test_ehlo_offers_dsn(gw):
    with mxlib.session(gw, helo=None) as c:
        r = c.cmd("EHLO client.test")
        check("250-DSN" in r.lines, f"DSN not in the EHLO reply {r.lines}")


# ---------------------------------------------------------------- syntax

BAD_MAIL = [" RET=ALL", " RET", " RET=FULL RET=HDRS", " ENVID=a+2b",
            " ENVID=" + "x" * 101, " ENVID=a ENVID=b", " ENVID"]
BAD_RCPT = [" NOTIFY=NEVER,SUCCESS", " NOTIFY=SOMETIMES", " NOTIFY=",
            " NOTIFY=FAILURE,", " NOTIFY=DELAY NOTIFY=FAILURE",
            " ORCPT=alice@example.test", " ORCPT=rfc822;a+zz",
            " ORCPT=rfc822;a ORCPT=rfc822;b", " ORCPT=rfc822;"]


@mxlib.params(BAD_MAIL + BAD_RCPT)
def test_bad_dsn_params(gw, param):
    with mxlib.session(gw) as c:
        if param in BAD_MAIL:
            c.expect("501 5.5.4 *", f"MAIL FROM:<{SENDER}>{param}")
        else:
            c.expect("250 2.1.0 Ok", f"MAIL FROM:<{SENDER}>")
            c.expect("501 5.5.4 *", f"RCPT TO:<alice@example.test>{param}")
            # the session goes on: the same RCPT without it is fine
            c.expect("250 2.1.5 Ok", "RCPT TO:<alice@example.test>")


def test_good_and_unknown_params(gw):
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", f"MAIL FROM:<{SENDER}> RET=hdrs "
                 "ENVID=QQ+2B314 SIZE=100")
        c.expect("250 2.1.5 Ok", "RCPT TO:<alice@example.test> "
                 "NOTIFY=success,delay ORCPT=rfc822;alice+2Bx@example.test")
        c.expect("250 2.1.5 Ok", "RCPT TO:<bob@example.test> NOTIFY=NEVER")
        c.expect("555 5.5.4 *", "RCPT TO:<carol@example.test> FOO=1")
        c.expect("250 2.0.0 Ok", "RSET")
        c.expect("555 5.5.4 *", f"MAIL FROM:<{SENDER}> FOO=bar")


# ---------------------------------------------------------------- NEVER

def test_notify_never_permanent_failure_no_ndr(ctx, gw_factory):
    with py_sink(ctx, "hop") as hop, py_sink(ctx, "relay") as relay:
        hop.rcpt_reply = lambda a: ("550 5.1.1 No such user" if
                                    a.startswith("alice") else
                                    "250 2.1.5 Ok")
        gw = gw_factory(config=hop_config(f"smtp:127.0.0.1:{hop.port}",
                                          relay))
        msg, _ = marked("never")
        qid = send(gw, "", [("alice@example.test", " NOTIFY=NEVER")], msg)
        gw.wait_event("failed", qid=qid, to="alice@example.test",
                      timeout_s=WAIT)
        ev = gw.wait_event("dsn", qid=qid, ndr="suppressed", timeout_s=WAIT)
        check_eq(ev.get("reason"), "notify", f"reason in {ev['line']}")
        wait_spool_empty(gw)
        # the control: the same failure without NEVER is reported
        qid2 = send(gw, "", [("alice@example.test", "")], msg)
        ev = gw.wait_event("dsn", qid=qid2, timeout_s=WAIT)
        check("dsn_qid" in ev, f"no report for the control: {ev['line']}")
        rec = report_to_sender(relay)
        check(qid2 in rec.data.decode("latin-1"),
              "the one report is not about the control message")
        stays_false(lambda: len(relay.received()) > 1 and
                    relay.received(), 1.0, "a report about NOTIFY=NEVER")
        check_eq([e["line"] for e in gw.events("dsn", qid=qid)
                  if "dsn_qid" in e], [], "reports about the NEVER message")


def test_notify_never_bounce_policy(ctx, gw_factory):
    with py_sink(ctx, "relay") as relay:
        gw = gw_factory(config=hop_config(
            "maildir:mail", relay, unknown_recipient="bounce",
            harvest_exempt="127.0.0.0/8"))
        msg, _ = marked("never bounce")
        qid = send(gw, "", [("alice@example.test", ""),
                            ("nobody@example.test", " NOTIFY=NEVER")], msg)
        ev = gw.wait_event("dsn", qid=qid, ndr="suppressed", timeout_s=WAIT)
        check_eq((ev.get("reason"), ev.get("to")),
                 ("notify", "<nobody@example.test>"), ev["line"])
        gw.wait_maildir("example.test", "alice")
        stays_false(lambda: relay.received(), 1.0, "an NDR despite NEVER")


# ---------------------------------------------------------------- SUCCESS

def test_notify_success_relayed_without_hop_dsn(ctx, gw_factory):
    with py_sink(ctx, "hop") as hop, py_sink(ctx, "relay") as relay:
        gw = gw_factory(config=hop_config(f"smtp:127.0.0.1:{hop.port}",
                                          relay))
        msg, marker = marked("relayed")
        qid = send(gw, " ENVID=QQ+2B314 RET=FULL",
                   [("alice@example.test", " NOTIFY=SUCCESS,FAILURE "
                     "ORCPT=rfc822;Alice+2Bx@example.test"),
                    ("bob@example.test", "")], msg)
        hop.wait_messages(1, WAIT)
        rec = report_to_sender(relay)
        check(marker.encode() not in rec.data, "the report holds the body")
        check_eq(rec.subject, "Successful Mail Delivery Report", "subject")
        rep = peers.parse_report(rec)
        check_eq(rep.per_message.get("original-envelope-id"), "QQ+314",
                 f"per-message fields {rep.per_message}")
        check_eq(len(rep.per_rcpt), 1, f"recipients in {rep.per_rcpt}")
        f = rep.per_rcpt[0]
        check_eq((f.get("action"), f.get("final-recipient"),
                  f.get("original-recipient")),
                 ("relayed", "rfc822; alice@example.test",
                  "rfc822;Alice+x@example.test"), f"fields {f}")
        check(f.get("status", "").startswith("2."), f"status in {f}")
        # nothing went to the hop that does not offer DSN
        for line in hop.commands:
            check(not re.search(r"NOTIFY=|ORCPT=|RET=|ENVID=", line),
                  f"DSN parameter sent to a hop without DSN: {line!r}")
        gw.wait_event("dsn", qid=qid, timeout_s=WAIT)
        wait_spool_empty(gw)


def test_notify_success_delivered_maildir(ctx, gw_factory):
    with py_sink(ctx, "relay") as relay:
        gw = gw_factory(config=hop_config("maildir:mail", relay))
        msg, _ = marked("delivered")
        send(gw, "", [("alice@example.test", " NOTIFY=SUCCESS")], msg)
        gw.wait_maildir("example.test", "alice")
        rep = peers.parse_report(report_to_sender(relay))
        check_eq([f.get("action") for f in rep.per_rcpt], ["delivered"],
                 f"actions in {rep.per_rcpt}")


def test_hop_with_dsn_gets_params_verbatim(ctx, gw_factory):
    with py_sink(ctx, "hop") as hop, py_sink(ctx, "relay") as relay:
        hop.ehlo_extra = ["DSN"]
        gw = gw_factory(config=hop_config(f"smtp:127.0.0.1:{hop.port}",
                                          relay))
        msg, _ = marked("passed on")
        send(gw, " RET=HDRS ENVID=QQ+2B314",
             [("alice@example.test", " NOTIFY=SUCCESS,DELAY "
               "ORCPT=rfc822;Alice+2Bx@example.test"),
              ("bob@example.test", " NOTIFY=NEVER"),
              ("carol@example.test", "")], msg)
        hop.wait_messages(1, WAIT)
        mail = [ln for ln in hop.commands if ln.startswith("MAIL")]
        rcpt = [ln for ln in hop.commands if ln.startswith("RCPT")]
        check_eq(len(mail), 1, f"MAIL lines {hop.commands}")
        check(mail[0].startswith(f"MAIL FROM:<{SENDER}>") and
              mail[0].endswith(" RET=HDRS ENVID=QQ+2B314"),
              f"MAIL line {mail[0]!r}")
        check_eq(sorted(rcpt), [
            "RCPT TO:<alice@example.test> NOTIFY=SUCCESS,DELAY "
            "ORCPT=rfc822;Alice+2Bx@example.test",
            "RCPT TO:<bob@example.test> NOTIFY=NEVER",
            "RCPT TO:<carol@example.test>"], "RCPT lines")
        wait_spool_empty(gw)
        # the hop reports success itself: nothing from us
        stays_false(lambda: relay.received(), 1.0,
                    "a relayed report though the hop offers DSN")


# ---------------------------------------------------------------- DELAY

def test_delay_warning_once(ctx, gw_factory):
    with py_sink(ctx, "hop") as hop, py_sink(ctx, "relay") as relay:
        hop.rcpt_reply = "451 4.3.0 Try later"
        gw = gw_factory(config=hop_config(f"smtp:127.0.0.1:{hop.port}",
                                          relay, delay_warning_time="1s"))
        msg, marker = marked("delayed")
        qid = send(gw, " ENVID=E1",
                   [("alice@example.test", ""),
                    ("bob@example.test", " NOTIFY=FAILURE"),
                    ("carol@example.test", " NOTIFY=DELAY "
                     "ORCPT=rfc822;carol@example.test")], msg)
        rec = report_to_sender(relay)
        check(marker.encode() not in rec.data, "the warning holds the body")
        check_eq(rec.subject, "Delayed Mail (still being retried)",
                 "subject")
        rep = peers.parse_report(rec)
        got = sorted((f.get("final-recipient"), f.get("action"))
                     for f in rep.per_rcpt)
        check_eq(got, [("rfc822; alice@example.test", "delayed"),
                       ("rfc822; carol@example.test", "delayed")],
                 "recipients warned (bob asked for FAILURE only)")
        check_eq(rep.per_message.get("original-envelope-id"), "E1",
                 "Original-Envelope-Id")
        # more deferred attempts, and still one warning
        mxlib.wait_until(lambda: len(gw.events("deferred", qid=qid,
                                               to="alice@example.test")) >= 4,
                         30.0, "four deferred attempts")
        check_eq(len(relay.received()), 1, "delay warnings sent")
        # and once across a restart (the W record)
        gw.stop()
        gw.start()
        since = len(gw.events("deferred", qid=qid, to="alice@example.test"))
        mxlib.wait_until(lambda: len(gw.events(
            "deferred", qid=qid, to="alice@example.test")) >= since + 2,
            30.0, "two deferred attempts after the restart")
        check_eq(len(relay.received()), 1, "delay warnings after a restart")


def test_delay_warning_off_by_default(ctx, gw_factory):
    with py_sink(ctx, "hop") as hop, py_sink(ctx, "relay") as relay:
        hop.rcpt_reply = "451 4.3.0 Try later"
        gw = gw_factory(config=hop_config(f"smtp:127.0.0.1:{hop.port}",
                                          relay))
        qid = send(gw, "", [("alice@example.test", "")],
                   mxlib.make_message("no warning"))
        mxlib.wait_until(lambda: len(gw.events("deferred", qid=qid)) >= 3,
                         30.0, "three deferred attempts")
        check_eq(relay.received(), [], "reports without delay_warning_time")


# ---------------------------------------------------------------- RET

@mxlib.params(["no", "yes"])
def test_ret_full(ctx, gw_factory, param):
    with py_sink(ctx, "hop") as hop, py_sink(ctx, "relay") as relay:
        hop.rcpt_reply = "550 5.1.1 No such user"
        gw = gw_factory(config=hop_config(f"smtp:127.0.0.1:{hop.port}",
                                          relay, ndr_return_full=param))
        msg, marker = marked(f"ret full {param}")
        send(gw, " RET=FULL", [("alice@example.test", "")], msg)
        rec = report_to_sender(relay)
        types = [p.get_content_type() for p in rec.message().get_payload()]
        if param == "yes":
            check(marker.encode() in rec.data,
                  "RET=FULL with ndr_return_full=yes: no body returned")
            check_eq(types[-1], "message/rfc822", f"parts {types}")
        else:
            check(marker.encode() not in rec.data,
                  "RET=FULL returned the body though ndr_return_full=no")
            check_eq(types[-1], "text/rfc822-headers", f"parts {types}")


# ---------------------------------------------------------------- format

def test_queue_file_without_dsn_records_loads(ctx, gw_factory):
    """A message without DSN parameters is stored exactly in the old
    format (no M/N records); such a file loads after a restart and is
    delivered."""
    with py_sink(ctx, "hop") as hop, py_sink(ctx, "relay") as relay:
        hop.rcpt_reply = "451 4.3.0 Try later"
        gw = gw_factory(config=hop_config(f"smtp:127.0.0.1:{hop.port}",
                                          relay))
        qid = send(gw, "", [("alice@example.test", "")],
                   mxlib.make_message("old format"))
        gw.wait_event("deferred", qid=qid, timeout_s=WAIT)
        gw.stop()
        path = os.path.join(gw.spool_dir, "queue", qid)
        with open(path, "rb") as f:
            data = f.read()
        types, off = [], 0
        while off < len(data):
            n = int(data[off + 1:off + 17], 16)
            types.append(chr(data[off]))
            off += 18 + n + 1
        check(not {"M", "N", "W"} & set(types),
              f"DSN records in a message without DSN parameters: {types}")
        check_eq(types[:6], list("VITCHS"), "record order")
        hop.rcpt_reply = "250 2.1.5 Ok"
        gw.start()
        hop.wait_messages(1, 30.0)
        wait_spool_empty(gw)


# ---------------------------------------------------------------- config

@mxlib.params(["delay_warning_time = 31d", "delay_warning_time = soon",
               "ndr_return_full = perhaps"])
def test_check_config_dsn_keys(ctx, param):
    ctx.write("users", "alice@example.test\n")
    os.makedirs(os.path.join(ctx.tmpdir, "spool"), exist_ok=True)
    good = ["hostname = mx.example.test", "spool = spool",
            "domains = example.test", "directory = file:users",
            "delay_warning_time = 4h", "ndr_return_full = yes"]
    path = ctx.write("good.conf", "\n".join(good) + "\n")
    p = ctx.run_binary(["check-config", "-c", path])
    check_eq(p.returncode, 0, f"check-config of {good}: "
             f"{(p.stdout + p.stderr).decode(errors='replace')!r}")
    bad = good[:4] + [param]
    path = ctx.write("bad.conf", "\n".join(bad) + "\n")
    p = ctx.run_binary(["check-config", "-c", path])
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    check_eq(p.returncode, 1, f"check-config exit status ({out.strip()!r})")
    check(re.search(rf"^{re.escape(path)}:5: \S", out, re.M),
          f"no '{path}:5: message' line in {out.strip()!r}")


def test_bdat_keeps_dsn_params(ctx, gw_factory):
    """A message sent with BDAT (RFC 3030) carries its DSN parameters
    like one sent with DATA."""
    with py_sink(ctx, "relay") as relay:
        gw = gw_factory(config=hop_config("maildir:mail", relay))
        msg, _ = marked("bdat")
        with mxlib.session(gw) as c:
            c.expect("250 2.1.0 Ok", f"MAIL FROM:<{SENDER}> ENVID=B1")
            c.expect("250 2.1.5 Ok", "RCPT TO:<alice@example.test> "
                     "NOTIFY=SUCCESS ORCPT=rfc822;alice@example.test")
            c.send(f"BDAT {len(msg)} LAST\r\n".encode() + msg)
            check(QID.match(c.reply(10.0).text), "BDAT LAST not queued")
            c.expect("221 *", "QUIT")
        gw.wait_maildir("example.test", "alice")
        rep = peers.parse_report(report_to_sender(relay))
        check_eq(rep.per_message.get("original-envelope-id"), "B1",
                 "Original-Envelope-Id")
        check_eq([(f.get("action"), f.get("original-recipient"))
                  for f in rep.per_rcpt],
                 [("delivered", "rfc822;alice@example.test")],
                 "per-recipient fields")


# ---------------------------------------------------------------- line bounds

TOO_LONG = "500 5.5.2 Error: line too long"
MAIL_MAX, RCPT_MAX = 662, 1012  # octets with CRLF (smtp_parse.h)


def orcpt_of(n: int) -> str:
    """An ORCPT value of exactly n octets: "rfc822;" then xtext (with an
    escape, so "verbatim" means undecoded)."""
    head = "rfc822;Long+2B"
    tail = "@example.test"
    return head + "o" * (n - len(head) - len(tail)) + tail


def test_orcpt_500_passed_verbatim(ctx, gw_factory):
    """RFC 3461 3: a RCPT may be 500 octets longer with NOTIFY and ORCPT.
    One with a 500-octet ORCPT (a line past 512) is taken, arrives split
    across segments, and goes to a hop that offers DSN as it was sent."""
    with py_sink(ctx, "hop") as hop, py_sink(ctx, "relay") as relay:
        hop.ehlo_extra = ["DSN"]
        gw = gw_factory(config=hop_config(f"smtp:127.0.0.1:{hop.port}",
                                          relay))
        orcpt = orcpt_of(500)
        check_eq(len(orcpt), 500, "ORCPT length")
        rcpt = ("RCPT TO:<alice@example.test> NOTIFY=SUCCESS,FAILURE,DELAY"
                f" ORCPT={orcpt}")
        check(len(rcpt) + 2 > 512, f"the RCPT line is {len(rcpt) + 2}")
        msg, _ = marked("long orcpt")
        with mxlib.session(gw) as c:
            c.expect("250 2.1.0 Ok", f"MAIL FROM:<{SENDER}>")
            # past 512 octets before its end has come: still a RCPT
            c.send(rcpt[:600])
            c.flush()
            c.sendline(rcpt[600:])
            c.expect("250 2.1.5 Ok")
            c.expect("354 *", "DATA")
            c.send(msg + b".\r\n")
            check(QID.match(c.reply(10.0).text), "end of DATA not queued")
            c.expect("221 *", "QUIT")
        hop.wait_messages(1, WAIT)
        check_eq([ln for ln in hop.commands if ln.startswith("RCPT")],
                 [rcpt], "RCPT line at the next hop")
        wait_spool_empty(gw)


def test_line_bounds_per_verb(gw):
    """Only MAIL and RCPT get the longer bound, each its own; a line one
    octet past it gets the overlong reply, is read to its end and not
    taken as commands; every other command keeps 512 (RFC 5321
    4.5.3.1.4)."""
    with mxlib.session(gw) as c:
        # NOOP, HELO, VRFY: 513 octets with CRLF is too long
        c.expect(TOO_LONG, "NOOP " + "x" * 506)
        c.expect(TOO_LONG, "HELO " + "h" * 506)
        c.expect(TOO_LONG, "VRFY " + "v" * 506)
        c.expect("250 2.0.0 Ok", "NOOP")
        # MAIL at its bound is judged as a MAIL (an ENVID past 100)...
        head = f"MAIL FROM:<{SENDER}> ENVID="
        c.expect("501 5.5.4 *", head + "e" * (MAIL_MAX - 2 - len(head)))
        # ...one octet more is too long
        c.expect(TOO_LONG, head + "e" * (MAIL_MAX - 1 - len(head)))
        c.expect("250 2.1.0 Ok", f"MAIL FROM:<{SENDER}>")
        # RCPT likewise at 1012 and 1013
        head = "RCPT TO:<alice@example.test> ORCPT=rfc822;"
        c.expect("501 5.5.4 *", head + "r" * (RCPT_MAX - 2 - len(head)))
        c.expect(TOO_LONG, head + "r" * (RCPT_MAX - 1 - len(head)))
        # a RCPT far past its bound, then a command in the same write:
        # one reply for the long line, and its tail is not a command
        c.send((head + "r" * 3000 + "QUIT\r\nNOOP\r\n").encode())
        c.expect(TOO_LONG)
        c.expect("250 2.0.0 Ok")
        # the transaction is still there: the short RCPT is taken
        c.expect("250 2.1.5 Ok", "RCPT TO:<alice@example.test>")
        # a verb that only starts like MAIL keeps 512
        c.expect(TOO_LONG, "MAILX " + "m" * 505)
        c.expect("221 *", "QUIT")
