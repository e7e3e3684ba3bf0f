"""
test_protocol.py - the dialogue at the byte level (raw socket client).
Covers: RFC 2920 pipelining, SIZE at MAIL and while streaming, SMTP
smuggling (bare LF/CR in data, <LF>.<LF> and friends never end the data),
bare LF/CR and overlong command lines, the early talker, idle timeouts, the
error limit, a graceful stop with a session open.
"""

from __future__ import annotations

import time

import mxlib
from mxlib import check, check_eq


def test_ehlo_reply(gw_factory):
    gw = gw_factory(config={"max_message_size": "10M"})
    with mxlib.session(gw, helo=None) as c:
        r = c.cmd("EHLO client.test")
        check_eq(r.lines, [f"250-{mxlib.HOSTNAME}", "250-PIPELINING",
                           f"250-SIZE {10 * 1024 * 1024}", "250-8BITMIME",
                           "250-CHUNKING", "250-DSN", "250-SMTPUTF8",
                           "250 ENHANCEDSTATUSCODES"], "EHLO reply")
        c.expect(f"250 {mxlib.HOSTNAME}", "HELO client.test")


def test_pipelined_session(gw):
    msg = mxlib.make_message("pipelined")
    with mxlib.session(gw) as c:
        c.send(b"MAIL FROM:<x@remote.test>\r\n"
               b"RCPT TO:<alice@example.test>\r\n"
               b"RCPT TO:<nobody@example.test>\r\n"
               b"RCPT TO:<bob@example.test>\r\n"
               b"DATA\r\n")
        got = [c.reply().text for _ in range(5)]
        check_eq(got[:4], ["250 2.1.0 Ok", "250 2.1.5 Ok",
                           "550 5.1.1 <nobody@example.test>: Recipient "
                           "address rejected: User unknown", "250 2.1.5 Ok"],
                 "pipelined replies")
        check(got[4].startswith("354 "), f"DATA reply: {got[4]!r}")
        # Data, end of data and the next transaction in one write.
        c.send(msg + b".\r\nMAIL FROM:<y@remote.test>\r\n"
               b"RCPT TO:<carol@example.test>\r\nRSET\r\nQUIT\r\n")
        c.expect("250 2.0.0 Ok: queued as *")
        c.expect("250 2.1.0 Ok")
        c.expect("250 2.1.5 Ok")
        c.expect("250 2.0.0 Ok")
        c.expect("221 2.0.0 Bye")
        c.expect_close()
    for who in ("alice", "bob"):
        files = gw.wait_maildir("example.test", who)
        with open(files[0], "rb") as f:
            check_eq(mxlib.split_received(f.read())[1],
                     mxlib.expected_delivery(msg), who)
    check_eq(gw.maildir_files("example.test", "carol"), [], "carol (RSET)")


def test_pipelined_whole_transaction_in_one_write(gw):
    msg = mxlib.make_message("one write")
    with mxlib.Client(gw.port) as c:
        c.greet()
        c.ehlo()
        c.send(b"MAIL FROM:<x@remote.test>\r\nRCPT TO:<carol@example.test>\r\n"
               b"DATA\r\n")
        c.expect("250 2.1.0 Ok")
        c.expect("250 2.1.5 Ok")
        c.expect("354 *")
        c.send(msg + b".\r\nQUIT\r\n")
        c.expect("250 2.0.0 Ok: queued as *")
        c.expect("221 2.0.0 Bye")
        c.expect_close()
    gw.wait_maildir("example.test", "carol")


def test_size_limit_at_mail(gw_factory):
    gw = gw_factory(config={"max_message_size": "1K"})
    with mxlib.session(gw, helo=None) as c:
        r = c.cmd("EHLO client.test")
        check("250-SIZE 1024" in r.lines, f"EHLO lacks 250-SIZE 1024: {r}")
        c.expect("552 5.3.4 *", "MAIL FROM:<x@remote.test> SIZE=2000")
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test> SIZE=1000")
        c.expect("250 2.1.5 Ok", "RCPT TO:<alice@example.test>")
        c.expect("250 2.0.0 Ok", "RSET")
        c.expect("552 5.3.4 *", "MAIL FROM:<x@remote.test> SIZE=99999999999999")


def test_size_limit_while_streaming(gw_factory):
    gw = gw_factory(config={"max_message_size": "1K"})
    big = mxlib.make_message("big", ["y" * 70] * 60)  # about 4.4 KB
    small = mxlib.make_message("small")
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        c.expect("250 2.1.5 Ok", "RCPT TO:<alice@example.test>")
        c.expect("354 *", "DATA")
        c.send(big + b".\r\n")
        c.expect("552 5.3.4 *")
        c.expect("250 2.0.0 Ok", "NOOP")
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        c.expect("250 2.1.5 Ok", "RCPT TO:<alice@example.test>")
        c.expect("354 *", "DATA")
        c.send(small + b".\r\n")
        c.expect("250 2.0.0 Ok: queued as *")
    files = gw.wait_maildir("example.test", "alice")
    mxlib.wait_until(lambda: gw.spool_files() == [], 10.0, "an empty spool")
    check_eq(len(files), 1, "Maildir files (only the small message)")
    check_eq(len(gw.events("queued")), 1, "event=queued lines")


# Data that must be refused whole; after it, the real end <CRLF>.<CRLF>.
SMUGGLE_TAIL = (b"MAIL FROM:<evil@remote.test>\r\nRCPT TO:<bob@example.test>\r\n"
                b"DATA\r\nSubject: smuggled\r\n\r\nevil\r\n")
SMUGGLING = [
    b"Subject: a\r\n\r\nbare LF\nhere\r\n",
    b"Subject: a\r\n\r\nbare CR\rhere\r\n",
    b"Subject: a\r\n\r\nbody\r\n\n.\n" + SMUGGLE_TAIL,        # <LF>.<LF>
    b"Subject: a\r\n\r\nbody\r\n.\n" + SMUGGLE_TAIL,          # <CRLF>.<LF>
    b"Subject: a\r\n\r\nbody\n.\r\n" + SMUGGLE_TAIL,          # <LF>.<CRLF>
    b"Subject: a\r\n\r\nbody\r\r\n.\r\r\n" + SMUGGLE_TAIL,    # <CR>.<CR>
    b"Subject: a\r\n\r\nbody\r.\r" + SMUGGLE_TAIL,            # bare CR dot
    b"Subject: a\r\n\r\nbody\n" + SMUGGLE_TAIL,               # last bare LF
]
SMUGGLING_IDS = ["bare-lf", "bare-cr", "lf-dot-lf", "crlf-dot-lf",
                 "lf-dot-crlf", "cr-dot-cr", "bare-cr-dot", "lf-then-commands"]


@mxlib.params(SMUGGLING, ids=SMUGGLING_IDS)
def test_smuggling_refused(gw, param):
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        c.expect("250 2.1.5 Ok", "RCPT TO:<alice@example.test>")
        c.expect("354 *", "DATA")
        c.send(param + b".\r\nQUIT\r\n")
        # Exactly two replies: the refusal, then QUIT's.  A 250, 354 or
        # 503 here would mean the data was split into commands.
        c.expect("550 5.6.0 Message refused: bare CR or LF in message")
        c.expect("221 2.0.0 Bye")
        c.expect_close()
    gw.wait_event("disconnect")
    check_eq(gw.events("queued"), [], "event=queued lines")
    check_eq(gw.all_mail_files(), [], "Maildir files")
    check_eq(gw.spool_files(), [], "spool files")


def test_smuggling_then_clean_message(gw):
    """After a refused message the session goes on, and only the clean
    message is delivered."""
    clean = mxlib.make_message("clean")
    with mxlib.session(gw) as c:
        c.send(b"MAIL FROM:<x@remote.test>\r\nRCPT TO:<alice@example.test>\r\n"
               b"DATA\r\n")
        c.expect("250 2.1.0 Ok")
        c.expect("250 2.1.5 Ok")
        c.expect("354 *")
        c.send(SMUGGLING[2] + b".\r\n")
        c.expect("550 5.6.0 *")
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        c.expect("250 2.1.5 Ok", "RCPT TO:<alice@example.test>")
        c.expect("354 *", "DATA")
        c.send(clean + b".\r\n")
        c.expect("250 2.0.0 Ok: queued as *")
    files = gw.wait_maildir("example.test", "alice")
    check_eq(len(gw.events("queued")), 1, "event=queued lines")
    check_eq(gw.maildir_files("example.test", "bob"), [], "bob's Maildir")
    with open(files[0], "rb") as f:
        check_eq(mxlib.split_received(f.read())[1],
                 mxlib.expected_delivery(clean), "delivered message")


def refuse_line(c: mxlib.Client, data: bytes) -> None:
    """Send a command line holding a bare CR or LF, then NOOP.

    RFC 5321 leaves open whether a bare LF ends a line: a server may take
    it as the end of a (refused) line, or keep reading to the CRLF.  Either
    way the first reply is the refusal, nothing before the NOOP's 250 may
    succeed, and no hidden command may take effect.
    """
    c.send(data)
    c.expect("500 5.5.2 Error: bare CR or LF in command refused")
    c.send(b"NOOP\r\n")
    for _ in range(4):
        r = c.reply()
        if r.text == "250 2.0.0 Ok":
            return
        check(r.code >= 500, f"after a refused line: {r}")
    mxlib.fail("no reply to the NOOP after a refused line")


def test_bare_lf_in_commands(gw):
    with mxlib.session(gw) as c:
        refuse_line(c, b"MAIL FROM:<x@remote.test>\n\r\n")
        refuse_line(c, b"MAIL FROM:<x@remote.test>\rRCPT TO:<a@example.test>\r\n")
        refuse_line(c, b"NOOP\r\r\n")
        refuse_line(c, b"\n\r\n")
        # None of the hidden MAIL commands started a transaction.
        c.expect("503 5.5.1 Error: need MAIL command",
                 "RCPT TO:<alice@example.test>")
        c.expect("250 2.0.0 Ok", "NOOP")
    check(not gw.events("mail"), "event=mail logged for a refused line")


def test_overlong_command_line(gw):
    with mxlib.session(gw) as c:
        # 512 octets with CRLF is the limit (RFC 5321 4.5.3.1.4).
        c.expect("252 2.0.0 *", "VRFY " + "a" * 505)
        c.expect("500 5.5.2 Error: line too long", "VRFY " + "a" * 506)
        c.expect("250 2.0.0 Ok", "NOOP")
        # A very long line: one reply, the rest of it is not read as commands.
        c.send(b"NOOP " + b"x" * 5000 + b"QUIT\r\n")
        c.expect("500 5.5.2 Error: line too long")
        c.expect("250 2.0.0 Ok", "NOOP")


def test_early_talker_dropped(gw_factory):
    gw = gw_factory(config={"greeting_delay": "1s"})
    with mxlib.Client(gw.port) as c:
        c.sendline("EHLO impatient.test")
        c.expect("554 5.5.1 *", timeout_s=30.0)
        c.expect_close(30.0)
    # A patient client gets the greeting after the delay (t0 before the
    # connect: a lower bound that load cannot break).
    t0 = time.monotonic()
    with mxlib.Client(gw.port) as c:
        c.greet(timeout_s=30.0)
        waited = time.monotonic() - t0
        check(waited >= 0.8, f"greeting after {waited:.2f}s, delay is 1s")
        c.ehlo()


def test_idle_timeout(gw_factory):
    gw = gw_factory(config={"command_timeout": "1s"})
    with mxlib.session(gw, helo=None) as c:
        t0 = time.monotonic()  # before the EHLO restarts the idle timer
        c.ehlo()
        c.expect(f"421 4.4.2 {mxlib.HOSTNAME} Error: timeout exceeded",
                 timeout_s=30.0)
        waited = time.monotonic() - t0
        check(waited >= 0.8, f"timed out after {waited:.2f}s, limit is 1s")
        c.expect_close()


def test_data_timeout(gw_factory):
    gw = gw_factory(config={"data_timeout": "1s", "command_timeout": "30s"})
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        c.expect("250 2.1.5 Ok", "RCPT TO:<alice@example.test>")
        c.expect("354 *", "DATA")
        c.send(b"Subject: stalled\r\n\r\nhalf a mess")
        c.expect("421 4.4.2 *", timeout_s=25.0)  # below command_timeout
        c.expect_close(30.0)
    mxlib.wait_until(lambda: gw.spool_files() == [], 30.0, "an empty spool")
    check_eq(gw.all_mail_files(), [], "Maildir files")


def test_error_limit(gw_factory):
    gw = gw_factory(config={"max_errors_per_session": "3"})
    with mxlib.session(gw) as c:
        c.expect("500 5.5.2 *", "FOO")
        c.expect("500 5.5.2 *", "BAR baz")
        r = c.cmd("XYZZY")
        if r.code == 500:
            # The 421 follows the third error at once, or answers the
            # next command.
            try:
                r = c.reply(1.0)
            except mxlib.ConnectionClosed:
                raise
            except mxlib.TestFailure:
                r = c.cmd("NOOP")
        check(r.text.startswith("421 4.7.0 "), f"after 3 errors: {r}")
        c.expect_close()


def test_stop_with_open_session(gw):
    c = mxlib.session(gw)
    try:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        t0 = time.monotonic()
        rc = gw.stop()
        check_eq(rc, 0, "exit status after SIGTERM")
        # Far below command_timeout (5m): the open session did not hold
        # the shutdown up (how fast is the benchmarks' business).
        check(time.monotonic() - t0 < 30.0, "stop took 30 s or more")
        # The client is told (421) or simply disconnected.
        try:
            r = c.reply(2.0)
            check(r.text.startswith("421 4.3.2"), f"at shutdown: {r}")
        except mxlib.ConnectionClosed:
            pass
    finally:
        c.close()


def test_concurrent_sessions(gw):
    clients = [mxlib.session(gw) for _ in range(8)]
    try:
        for c in clients:
            c.send(b"MAIL FROM:<x@remote.test>\r\nRCPT TO:<bob@example.test>\r\n"
                   b"DATA\r\n")
        for c in clients:
            c.expect("250 2.1.0 Ok")
            c.expect("250 2.1.5 Ok")
            c.expect("354 *")
        for i, c in enumerate(clients):
            c.send(mxlib.make_message(f"concurrent {i}") + b".\r\n")
        for c in clients:
            c.expect("250 2.0.0 Ok: queued as *")
    finally:
        for c in clients:
            c.close()
    gw.wait_maildir("example.test", "bob", count=8)
