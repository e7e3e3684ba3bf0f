"""
test_milter.py - content filters through the milter protocol (issue 16),
against tests/milter/test_milter.py (python3-milter under Debian's
/usr/bin/python3) started on a free loopback port and stopped by its PID.
Covers: a clean message passes and the filter saw the envelope, macros
and headers; a replycode (multi-line) and a tempfail with text are the
DATA reply, nothing stored; reject and discard; a filter that sleeps
past milter_eom_timeout is 451 4.7.1 with a log line (and accept or
reject as its per-milter default_action); one that dies mid-body and one
that is down (nothing listens) are 451 4.7.1; header edits (add, insert
at the top, change, delete), envelope edits (addrcpt, delrcpt, chgfrom)
and body replacement reach the delivered copy; two milters in a chain;
quarantine holds the message in SPOOL/hold until `mxgate queue release`;
a bad milters value is a config error with its line.
"""

from __future__ import annotations

import email
import email.policy
import os
import signal
import subprocess
import time

import mxlib
from mxlib import check, check_eq, fail

HERE = os.path.dirname(os.path.abspath(__file__))
MILTER = os.path.join(HERE, "..", "milter", "test_milter.py")
SYSTEM_PYTHON = "/usr/bin/python3"  # the one with python3-milter
RCPT_OK = "250 2.1.5 Ok"


class TestMilter:
    """tests/milter/test_milter.py MODE on 127.0.0.1:port."""

    def __init__(self, folder: str, mode: str):
        self.port = mxlib.free_port()
        self.log = os.path.join(folder, f"milter-{mode}-{self.port}.log")
        open(self.log, "w").close()
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, MILTER, mode, str(self.port), self.log],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, cwd=folder)
        line = self.proc.stdout.readline()
        if line.strip() != b"ready":
            self.stop()
            fail(f"test_milter.py did not start: {line!r}")
        mxlib.wait_until(self._listening, 20, "the test milter listening")

    def _listening(self) -> bool:
        import socket
        try:
            socket.create_connection(("127.0.0.1", self.port), 1).close()
            return True
        except OSError:
            return False

    @property
    def spec(self) -> str:
        return f"inet:127.0.0.1:{self.port}"

    def lines(self) -> list[str]:
        with open(self.log) as f:
            return f.read().splitlines()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)   # ours, by its PID
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def send(c: mxlib.Client, want: str, subject: str = "milter",
         rcpts=("alice@example.test",), extra: bytes = b"") -> mxlib.Reply:
    c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
    for r in rcpts:
        c.expect(RCPT_OK, f"RCPT TO:<{r}>")
    c.expect("354 *", "DATA")
    msg = mxlib.make_message(subject)
    if extra:
        msg = extra + msg
    c.send(msg + b".\r\n")
    return c.expect(want)


def delivered(gw, local: str = "alice", count: int = 1):
    files = gw.wait_maildir("example.test", local, count)
    with open(files[-1], "rb") as f:
        return email.message_from_bytes(f.read(), policy=email.policy.compat32)


def with_milter(ctx, gw_factory, mode: str, **conf: str):
    m = TestMilter(ctx.tmpdir, mode)
    settings = {"milters": m.spec}
    settings.update(conf)
    return gw_factory(config=settings), m


def test_milter_pass_sees_envelope(ctx, gw_factory):
    gw, m = with_milter(ctx, gw_factory, "pass")
    try:
        with mxlib.session(gw) as c:
            send(c, "250 2.0.0 Ok: queued as *",
                 rcpts=("alice@example.test", "bob@example.test"))
        msg = delivered(gw)
        check_eq(msg["Subject"], "milter", "Subject")
        lines = m.lines()
        check(any(l.startswith("connect unknown 127.0.0.1 mx.example.test "
                               "127.0.0.1") for l in lines), lines)
        check("helo client.test" in lines, lines)
        mail = [l for l in lines if l.startswith("mail ")]
        check(len(mail) == 1 and mail[0].startswith(
            "mail <x@remote.test> x@remote.test "), mail)
        check("rcpt <alice@example.test> alice@example.test" in lines, lines)
        check("rcpt <bob@example.test> bob@example.test" in lines, lines)
        check("header Subject 'milter'" in lines, lines)
        check("eoh" in lines, lines)
        check(any(l.startswith("eom ") for l in lines), lines)
        gw.wait_event("milter", verdict="continue", stage="eom")
    finally:
        m.stop()


def test_milter_unknown_rcpt_not_shown(ctx, gw_factory):
    """Only recipients mxgate took reach the filter."""
    gw, m = with_milter(ctx, gw_factory, "pass")
    try:
        with mxlib.session(gw) as c:
            c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
            c.expect("550 5.1.1 *", "RCPT TO:<nobody@example.test>")
            c.expect(RCPT_OK, "RCPT TO:<alice@example.test>")
            c.expect("354 *", "DATA")
            c.send(mxlib.make_message("x") + b".\r\n")
            c.expect("250 2.0.0 Ok: queued as *")
        delivered(gw)
        check(not any("nobody" in l for l in m.lines()), m.lines())
    finally:
        m.stop()


def test_milter_replycode_multiline(ctx, gw_factory):
    gw, m = with_milter(ctx, gw_factory, "replycode")
    try:
        with mxlib.session(gw) as c:
            r = send(c, "550 5.7.1 second line")
            check("550-5.7.1 Rejected by the test milter" in str(r), str(r))
            # the session goes on
            c.expect("250 2.0.0 Ok", "RSET")
        check_eq(gw.all_mail_files(), [], "nothing delivered")
        gw.wait_event("milter", verdict="replycode")
        gw.wait_event("data", result="milter")
    finally:
        m.stop()


def test_milter_tempfail_text(ctx, gw_factory):
    gw, m = with_milter(ctx, gw_factory, "tempcode")
    try:
        with mxlib.session(gw) as c:
            send(c, "451 4.7.1 Greylisted by the test milter")
        check_eq(gw.all_mail_files(), [], "nothing delivered")
    finally:
        m.stop()


def test_milter_reject_and_discard(ctx, gw_factory):
    gw, m = with_milter(ctx, gw_factory, "reject")
    try:
        with mxlib.session(gw) as c:
            send(c, "550 5.7.1 *")
    finally:
        m.stop()
    m = TestMilter(ctx.tmpdir, "discard")
    try:
        gw.stop()
        gw.settings["milters"] = m.spec
        gw.start()
        with mxlib.session(gw) as c:
            send(c, "250 2.0.0 Ok: queued as *")
        gw.wait_event("discarded", by="milter")
        check_eq(gw.all_mail_files(), [], "nothing delivered")
    finally:
        m.stop()


def test_milter_timeout_tempfail(ctx, gw_factory):
    gw, m = with_milter(ctx, gw_factory, "sleep", milter_eom_timeout="1s")
    try:
        with mxlib.session(gw) as c:
            t0 = time.monotonic()
            send(c, "451 4.7.1 Content filter unavailable, try again later")
            check(time.monotonic() - t0 < 20, "answered near the deadline")
        ev = gw.wait_event("milter", error="timeout")
        check_eq((ev.get("stage"), ev.get("action")), ("eom", "tempfail"),
                 "the timeout's log line")
        check_eq(gw.all_mail_files(), [], "nothing delivered")
    finally:
        m.stop()


def test_milter_timeout_per_milter_accept(ctx, gw_factory):
    m = TestMilter(ctx.tmpdir, "sleep")
    try:
        gw = gw_factory(config={
            "milters": m.spec + "{default_action=accept, eom_timeout=1s}"})
        with mxlib.session(gw) as c:
            send(c, "250 2.0.0 Ok: queued as *")
        delivered(gw)
        gw.wait_event("milter", error="timeout", action="accept")
        gw.stop()
        gw.settings["milters"] = m.spec + "{default_action=reject, " \
            "eom_timeout=1s}"
        gw.start()
        with mxlib.session(gw) as c:
            send(c, "550 5.7.1 Message content rejected")
    finally:
        m.stop()


def test_milter_dies_mid_body(ctx, gw_factory):
    gw, m = with_milter(ctx, gw_factory, "die")
    try:
        with mxlib.session(gw) as c:
            send(c, "451 4.7.1 *")
        ev = gw.wait_event("milter", action="tempfail")
        check(ev.get("error") in ("closed", "io"), ev)
        check_eq(ev.get("stage"), "body", "where it died")
        # the gateway lives on, and a filter that is down is 451 too,
        # now at MAIL (the conversation starts there)
        with mxlib.session(gw) as c:
            c.expect("451 4.7.1 Content filter unavailable, try again "
                     "later", "MAIL FROM:<x@remote.test>")
        gw.wait_event("milter", error="connect")
        check_eq(gw.all_mail_files(), [], "nothing delivered")
    finally:
        m.stop()


def test_milter_header_edits(ctx, gw_factory):
    gw, m = with_milter(ctx, gw_factory, "headers")
    try:
        with mxlib.session(gw) as c:
            send(c, "250 2.0.0 Ok: queued as *",
                 extra=b"X-Drop: this goes\r\n")
        msg = delivered(gw)
        keys = [k for k, _ in msg.items()]
        check_eq(keys[0], "Received", "our Received stays first")
        check_eq(keys[1], "X-Test-Top", "inserted at the top of theirs")
        check_eq(keys[-1], "X-Test-Added", "added at the end")
        check_eq(msg["X-Test-Added"], "added value", "added value")
        check_eq(msg["Subject"], "changed subject", "changed Subject")
        check(msg["X-Drop"] is None, "X-Drop deleted")
        check("this is a test." in msg.get_payload(), "the body is kept")
    finally:
        m.stop()


def test_milter_rewrite_keeps_what_the_end_of_data_knows(ctx, gw_factory):
    """A message the filters edited is written anew: its copy still
    carries the Authentication-Results and Received-SPF of the original
    (here SPF temperror: dns_server is a port nobody answers on)."""
    gw, m = with_milter(ctx, gw_factory, "headers", spf_policy="tag",
                        spf_timeout="500ms",
                        dns_server=f"127.0.0.1:{mxlib.free_port()}")
    try:
        with mxlib.session(gw) as c:
            send(c, "250 2.0.0 Ok: queued as *")
        msg = delivered(gw)
        check_eq(msg["Subject"], "changed subject", "the filter's edit")
        check("spf=temperror" in (msg["Authentication-Results"] or ""),
              f"Authentication-Results: {msg['Authentication-Results']!r}")
        check((msg["Received-SPF"] or "").startswith("temperror"),
              f"Received-SPF: {msg['Received-SPF']!r}")
    finally:
        m.stop()


def test_milter_envelope_edits(ctx, gw_factory):
    gw, m = with_milter(ctx, gw_factory, "envelope")
    try:
        with mxlib.session(gw) as c:
            send(c, "250 2.0.0 Ok: queued as *")
        msg = delivered(gw, "bob")
        check_eq(msg["Subject"], "milter", "bob got it")
        check_eq(gw.maildir_files("example.test", "alice"), [],
                 "alice was removed")
        gw.wait_event("queued", **{"from": "<new@remote.test>"})
    finally:
        m.stop()


def test_milter_body_replaced(ctx, gw_factory):
    gw, m = with_milter(ctx, gw_factory, "body")
    try:
        with mxlib.session(gw) as c:
            send(c, "250 2.0.0 Ok: queued as *")
        msg = delivered(gw)
        check_eq(msg.get_payload(), "replaced body line 1\nline 2\n",
                 "the new body")
        check_eq(msg["Subject"], "milter", "headers kept")
    finally:
        m.stop()


def test_milter_chain(ctx, gw_factory):
    """Two filters: the second sees the first's edit; a reject ends it."""
    a = TestMilter(ctx.tmpdir, "headers")
    b = TestMilter(ctx.tmpdir, "pass")
    try:
        gw = gw_factory(config={"milters": f"{a.spec}, {b.spec}"})
        with mxlib.session(gw) as c:
            send(c, "250 2.0.0 Ok: queued as *")
        delivered(gw)
        check("header Subject 'changed subject'" in b.lines(), b.lines())
        check("header X-Test-Top 'at the top'" in b.lines(), b.lines())
    finally:
        a.stop()
        b.stop()
    a = TestMilter(ctx.tmpdir, "replycode")
    b = TestMilter(ctx.tmpdir, "pass")
    try:
        gw.stop()
        gw.settings["milters"] = f"{a.spec}, {b.spec}"
        gw.start()
        with mxlib.session(gw) as c:
            send(c, "550 5.7.1 second line")
        check(not any(l.startswith("eom") for l in b.lines()),
              "the second never saw the message")
    finally:
        a.stop()
        b.stop()


def test_milter_bad_config(ctx):
    path = ctx.write("bad.conf", "hostname = mx.test\ndomains = a.test\n"
                     "directory = file:users\n"
                     "milters = inet:localhost:11332\n"
                     "milter_default_action = maybe\n")
    r = ctx.run_binary(["check-config", "-c", path])
    err = r.stdout.decode() + r.stderr.decode()
    check(r.returncode != 0, err)
    check(":4: milters: expected inet:IPV4:PORT" in err, err)
    check(":5: milter_default_action: expected tempfail, accept or reject"
          in err, err)


def test_milter_quarantine_held(ctx, gw_factory):
    """quarantine: 250, then held in SPOOL/hold (never delivered) until
    `mxgate queue release`."""
    from ctllib import mx
    gw, m = with_milter(ctx, gw_factory, "quarantine")
    try:
        with mxlib.session(gw) as c:
            r = send(c, "250 2.0.0 Ok: queued as *")
        qid = str(r).split()[-1]
        gw.wait_log(f'event=quarantined qid={qid} reason="held by test"')
        check(os.path.exists(os.path.join(gw.spool_dir, "hold", qid)),
              f"{qid} in SPOOL/hold: {gw.spool_files()}")
        check_eq(gw.maildir_files("example.test", "alice"), [],
                 "not delivered")
        out, _ = mx(ctx, gw, "queue", "list")
        check(qid in out, f"`queue list` shows it: {out!r}")
        out, _ = mx(ctx, gw, "queue", "release", qid)
        check(f"released {qid}" in out, out)
        delivered(gw)
    finally:
        m.stop()


def test_milter_metrics(ctx, gw_factory):
    """Counters per filter: a continue and a timeout, and the latency."""
    import test_metrics as tm
    a = TestMilter(ctx.tmpdir, "pass")
    b = TestMilter(ctx.tmpdir, "sleep")
    try:
        gw, port = tm.metrics_gateway(
            gw_factory, milters=f"{a.spec}, {b.spec}{{eom_timeout=1s}}")
        with mxlib.session(gw) as c:
            send(c, "451 4.7.1 *")
        gw.wait_event("milter", error="timeout")
        s = tm.samples(tm.scrape(port))

        def get(name, **labels):
            return s.get((name, frozenset(labels.items())))
        check_eq(get("mxgate_milter_replies_total", milter=a.spec,
                     verdict="continue"), 1.0, "the first filter's continue")
        check_eq(get("mxgate_milter_replies_total", milter=b.spec,
                     verdict="timeout"), 1.0, "the second filter's timeout")
        check_eq(get("mxgate_milter_replies_total", milter=b.spec,
                     verdict="continue"), 0.0, "no continue from it")
        check_eq(get("mxgate_milter_seconds_count", milter=b.spec), 1.0,
                 "one conversation timed")
        # the end-of-message step: its 1 s deadline (the clock is read
        # in whole ms at both ends, so 0.999 s can show)
        took = get("mxgate_milter_seconds_sum", milter=b.spec)
        check(took >= 0.99, f"it lasted its eom_timeout: {took}")
    finally:
        a.stop()
        b.stop()


def test_milter_client_leaves_while_waiting(ctx, gw_factory):
    """The client goes while a filter thinks: the chain is dropped, nothing
    stored, and the gateway serves the next client."""
    gw, m = with_milter(ctx, gw_factory, "sleep", milter_eom_timeout="3s")
    try:
        with mxlib.session(gw) as c:
            c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
            c.expect(RCPT_OK, "RCPT TO:<alice@example.test>")
            c.expect("354 *", "DATA")
            c.send(mxlib.make_message("gone") + b".\r\n")
            mxlib.wait_until(lambda: any(l.startswith("eom") for l in
                                         m.lines()), 20, "the filter at eom")
        gw.wait_event("disconnect")
        with mxlib.session(gw) as c:
            c.expect("250 2.0.0 Ok", "RSET")
        check_eq(gw.all_mail_files(), [], "nothing delivered")
        check(not any(f.startswith("queue/") for f in gw.spool_files()),
              f"nothing queued: {gw.spool_files()}")
    finally:
        m.stop()


def test_milter_mail_and_rcpt_refusals(ctx, gw_factory):
    """A filter's refusal at MAIL is the MAIL reply; at RCPT it is that
    RCPT's reply and refuses that recipient only."""
    gw, m = with_milter(ctx, gw_factory, "mailreject")
    try:
        with mxlib.session(gw) as c:
            c.expect("550 5.7.1 sender refused by the test milter",
                     "MAIL FROM:<x@remote.test>")
            c.expect("503 *", "RCPT TO:<alice@example.test>")
        gw.wait_event("mail", result="milter")
    finally:
        m.stop()
    m = TestMilter(ctx.tmpdir, "rcptreject")
    try:
        gw.stop()
        gw.settings["milters"] = m.spec
        gw.start()
        with mxlib.session(gw) as c:
            c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
            c.expect(RCPT_OK, "RCPT TO:<alice@example.test>")
            c.expect("550 5.1.1 no such user here",
                     "RCPT TO:<bob@example.test>")
            c.expect(RCPT_OK, "RCPT TO:<carol@example.test>")
            c.expect("354 *", "DATA")
            c.send(mxlib.make_message("two of three") + b".\r\n")
            c.expect("250 2.0.0 Ok: queued as *")
        delivered(gw, "alice")
        delivered(gw, "carol")
        check_eq(gw.maildir_files("example.test", "bob"), [],
                 "bob was refused")
        ev = gw.wait_event("rcpt", action="milter")
        check_eq(ev.get("to"), "<bob@example.test>", ev["line"])
        # one conversation for the whole transaction
        check_eq(len([l for l in m.lines() if l.startswith("connect")]),
                 1, "one connection")
    finally:
        m.stop()


def test_milter_rcpt_pipelined(ctx, gw_factory):
    """Pipelined MAIL, RCPTs and DATA: the replies come in order, each
    after the filters' answer."""
    gw, m = with_milter(ctx, gw_factory, "rcptreject")
    try:
        with mxlib.session(gw) as c:
            c.send(b"MAIL FROM:<x@remote.test>\r\n"
                   b"RCPT TO:<bob@example.test>\r\n"
                   b"RCPT TO:<alice@example.test>\r\nDATA\r\n")
            c.expect("250 2.1.0 Ok")
            c.expect("550 5.1.1 no such user here")
            c.expect(RCPT_OK)
            c.expect("354 *")
            c.send(mxlib.make_message("piped") + b".\r\n")
            c.expect("250 2.0.0 Ok: queued as *")
        delivered(gw, "alice")
    finally:
        m.stop()
