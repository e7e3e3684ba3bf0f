"""
test_envelope_syntax.py - envelope_syntax = strict|lenient (issue 12,
point 9).
Covers: strict (the default) as it was: a bare address refused with 501,
a blank before "<" allowed; lenient: MAIL FROM:user@dom, MAIL FROM:
user@dom, MAIL FROM: <user@dom> and the same on RCPT, delivered as if
bracketed; garbage still refused (a blank inside, parameters after a bare
address, a source route, an unbalanced "<"); a bare RCPT to an unknown
name counted by the harvest guard and a bare RCPT to another domain
denied exactly as a bracketed one; check-config on a bad value.
"""

from __future__ import annotations

import os
import re

import mxlib
from mxlib import check, check_eq

BAD_SENDER = "501 5.1.7 Bad sender address syntax"
BAD_RCPT = "501 5.1.3 Bad recipient address syntax"
RCPT_OK = "250 2.1.5 Ok"
MAIL_OK = "250 2.1.0 Ok"

FORMS = [
    ("bare", "{}"),
    ("bare_blank", " {}"),
    ("bracket_blank", " <{}>"),
    ("bracket", "<{}>"),
]


def lenient(gw_factory, **extra: str):
    conf = {"envelope_syntax": "lenient"}
    conf.update(extra)
    return gw_factory(config=conf)


def test_strict_default_as_before(gw):
    with mxlib.session(gw) as c:
        c.expect(BAD_SENDER, "MAIL FROM:x@remote.test")
        c.expect(BAD_SENDER, "MAIL FROM: x@remote.test")
        c.expect(MAIL_OK, "MAIL FROM: <x@remote.test>")  # as today
        c.expect(BAD_RCPT, "RCPT TO:alice@example.test")
        c.expect(BAD_RCPT, "RCPT TO: alice@example.test")
        c.expect(RCPT_OK, "RCPT TO: <alice@example.test>")


@mxlib.params([f[0] for f in FORMS])
def test_lenient_forms_delivered(gw_factory, param):
    form = dict(FORMS)[param]
    gw = lenient(gw_factory)
    with mxlib.session(gw) as c:
        c.expect(MAIL_OK, "MAIL FROM:" + form.format("x@remote.test"))
        c.expect(RCPT_OK, "RCPT TO:" + form.format("alice@example.test"))
        c.expect(RCPT_OK, "RCPT TO:" + form.format("bob@example.test") + "  ")
        c.expect("354 *", "DATA")
        c.send(mxlib.make_message(f"lenient {param}") + b".\r\n")
        c.expect("250 2.0.0 Ok: queued as *")
        c.expect("221 *", "QUIT")
    for who in ("alice", "bob"):
        gw.wait_maildir("example.test", who)
    ev = gw.wait_event("queued")
    check_eq((ev.get("from"), ev.get("rcpts")), ("<x@remote.test>", "2"),
             "event=queued from/rcpts")
    # the policies saw the bracketed form
    gw.wait_event("rcpt", to="<alice@example.test>", verdict="valid")


GARBAGE = [
    ("blank_inside", "MAIL FROM:a b@remote.test", BAD_SENDER),
    ("bare_with_param", "MAIL FROM:a@remote.test SIZE=10", BAD_SENDER),
    ("unbalanced", "MAIL FROM:<a@remote.test", BAD_SENDER),
    ("close_only", "MAIL FROM:a@remote.test>", BAD_SENDER),
    ("two_addrs", "MAIL FROM:a@remote.test b@remote.test", BAD_SENDER),
    ("empty", "MAIL FROM:", BAD_SENDER),
    ("no_domain", "MAIL FROM:a", BAD_SENDER),
    ("quoted_blank", 'MAIL FROM:"a b"@remote.test', BAD_SENDER),
    ("tab", "MAIL FROM:\ta@remote.test", BAD_SENDER),
    ("rcpt_route", "RCPT TO:@x:a@example.test", BAD_RCPT),
    ("rcpt_unbalanced", "RCPT TO:<alice@example.test", BAD_RCPT),
    ("rcpt_param", "RCPT TO:alice@example.test NOTIFY=NEVER", BAD_RCPT),
    ("rcpt_two_ats", "RCPT TO:a@b@example.test", BAD_RCPT),
    ("rcpt_blank_inside", "RCPT TO:ali ce@example.test", BAD_RCPT),
]


@mxlib.params(GARBAGE, ids=[g[0] for g in GARBAGE])
def test_lenient_garbage_refused(gw_factory, param):
    _, line, want = param
    gw = lenient(gw_factory)
    with mxlib.session(gw) as c:
        if line.startswith("RCPT"):
            c.expect(MAIL_OK, "MAIL FROM:x@remote.test")
        c.expect(want, line)
        c.expect("250 2.0.0 Ok", "NOOP")  # in sync
    ev = gw.wait_event("mail" if line.startswith("MAIL") else "rcpt",
                       result="syntax")
    check(ev, "no result=syntax log line")


@mxlib.params(["bare", "bracket"])
def test_lenient_rcpt_counts_for_the_harvest_guard(gw_factory, param):
    """Unknown names sent bare are counted as bracketed ones: the same
    cut-off after the same count, the same log lines."""
    form = "{}" if param == "bare" else "<{}>"
    gw = lenient(gw_factory, harvest_tarpit_after="100",
                 harvest_session_limit="4")
    with mxlib.session(gw, bind="127.0.3.1") as c:
        c.expect(MAIL_OK, "MAIL FROM:x@remote.test")
        for i in range(4):
            c.expect(f"550 5.1.1 <nobody{i}@example.test>: Recipient "
                     "address rejected: User unknown",
                     "RCPT TO:" + form.format(f"nobody{i}@example.test"))
        c.expect("421 4.7.0 *", "RCPT TO:" + form.format("alice@example.test"))
        c.expect_close()
    ev = gw.wait_event("harvest", state="cutoff", net="127.0.3.1")
    check_eq((ev.get("unknown"), ev.get("reason")), ("4", "limit"),
             "state=cutoff")
    for i in range(4):
        gw.wait_event("rcpt", to=f"<nobody{i}@example.test>",
                      verdict="unknown", action="reject")


def test_lenient_same_name_twice_is_one_name(gw_factory):
    """nobody@ bare, bracketed and after a blank is one distinct unknown
    name for the guard's window: the second distinct name marks the
    client (harvest_threshold 2), not the second spelling."""
    gw = lenient(gw_factory, harvest_tarpit_after="100",
                 harvest_session_limit="100", harvest_threshold="2")
    with mxlib.session(gw, bind="127.0.3.2") as c:
        c.expect(MAIL_OK, "MAIL FROM:x@remote.test")
        c.expect("550 5.1.1 *", "RCPT TO:nobody@example.test")
        c.expect("550 5.1.1 *", "RCPT TO:<nobody@example.test>")
        c.expect("550 5.1.1 *", "RCPT TO: nobody@example.test")
        c.expect(RCPT_OK, "RCPT TO:alice@example.test")  # not marked
        c.expect("550 5.1.1 *", "RCPT TO:other@example.test")
        c.expect("450 4.7.1 Try again later", "RCPT TO:alice@example.test")
    ev = gw.wait_event("harvest", state="uniform", net="127.0.3.2")
    check_eq(ev.get("distinct"), "2", "distinct unknown names")


RELAY = [
    ("other_domain", "user@other.test",
     "554 5.7.1 <user@other.test>: Relay access denied"),
    ("literal", "user@[192.0.2.1]",
     "554 5.7.1 <user@[192.0.2.1]>: Relay access denied"),
    ("percent_hack", "user%other.test@example.test",
     "550 5.1.1 <user%other.test@example.test>: Recipient address "
     "rejected: User unknown"),
    ("bang_path", "other.test!user@example.test",
     "550 5.1.1 <other.test!user@example.test>: Recipient address "
     "rejected: User unknown"),
]


@mxlib.params(RELAY, ids=[r[0] for r in RELAY])
def test_lenient_relay_denied_alike(gw_factory, param):
    _, addr, want = param
    gw = lenient(gw_factory)
    with mxlib.session(gw) as c:
        c.expect(MAIL_OK, "MAIL FROM:x@remote.test")
        bracketed = c.expect(want, f"RCPT TO:<{addr}>").raw
        check_eq(c.cmd(f"RCPT TO:{addr}").raw, bracketed, "bare reply")
        check_eq(c.cmd(f"RCPT TO: {addr}").raw, bracketed, "bare reply")
        c.expect("503 5.5.1 *", "DATA")


@mxlib.params(["sloppy", "LENIENT ", "per_domain"])
def test_check_config_envelope_syntax(ctx, param):
    lines = ["hostname = mx.example.test", "listen = 127.0.0.1:2525",
             "spool = spool", "domains = example.test",
             "directory = file:users", "envelope_syntax = sloppy"]
    if param == "LENIENT ":
        lines[5] = "envelope_syntax = LENIENT"
    elif param == "per_domain":
        lines[5] = "envelope_syntax = strict"
        lines += ["[domain example.test]", "envelope_syntax = lenient"]
    path = ctx.write("test.conf", "\n".join(lines) + "\n")
    ctx.write("users", "alice@example.test\n")
    os.makedirs(os.path.join(ctx.tmpdir, "spool"), exist_ok=True)
    p = ctx.run_binary(["check-config", "-c", path])
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    if param == "LENIENT ":  # words are case-insensitive, as for others
        check_eq(p.returncode, 0, f"check-config: {out.strip()!r}")
        return
    line = 6 if param == "sloppy" else 8
    check_eq(p.returncode, 1, f"check-config exit status: {out.strip()!r}")
    check(re.search(rf"^{re.escape(path)}:{line}: .*envelope_syntax", out,
                    re.M), f"no '{path}:{line}: envelope_syntax' in "
          f"{out.strip()!r}")
