"""
test_recipients.py - what RCPT TO answers, and what happens to the mail.
Covers: unknown recipients under reject and discard (byte-identical replies,
no Maildir file, no spool file), per-domain sections, routing tricks that
must never relay, relay_networks by source address, max_recipients,
VRFY/EXPN revealing nothing.
"""

from __future__ import annotations

import mxlib
from mxlib import check, check_eq

RCPT_OK = b"250 2.1.5 Ok\r\n"


def test_unknown_rejected(gw):
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        c.expect("550 5.1.1 <nobody@example.test>: Recipient address "
                 "rejected: User unknown", "RCPT TO:<nobody@example.test>")
        c.expect("503 5.5.1 *", "DATA")
    ev = gw.wait_event("rcpt", to="nobody@example.test")
    check_eq((ev.get("verdict"), ev.get("action")), ("unknown", "reject"),
             "event=rcpt verdict/action")


def test_unknown_discarded_identical_reply(gw_factory):
    gw = gw_factory(config={"unknown_recipient": "discard"})
    msg = mxlib.make_message("discard")
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        valid = c.cmd("RCPT TO:<alice@example.test>").raw
        unknown = c.cmd("RCPT TO:<nobody@example.test>").raw
        check_eq(valid, RCPT_OK, "reply to a valid recipient")
        check_eq(unknown, valid, "reply to an unknown recipient under discard")
        c.expect("354 *", "DATA")
        c.send(msg + b".\r\n")
        c.expect("250 2.0.0 Ok: queued as *")
    gw.wait_maildir("example.test", "alice")
    gw.wait_event("rcpt", to="nobody@example.test", action="discard")
    check_eq(gw.maildir_files("example.test", "nobody"), [],
             "files for the discarded recipient")
    check(not gw.events("delivered", to="nobody@example.test"),
          "event=delivered for the discarded recipient")


def test_all_discarded_leaves_no_spool_file(gw_factory):
    gw = gw_factory(config={"unknown_recipient": "discard"})
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        for who in ("nobody", "ghost"):
            check_eq(c.cmd(f"RCPT TO:<{who}@example.test>").raw, RCPT_OK,
                     f"RCPT {who}")
        c.expect("354 *", "DATA")
        c.send(mxlib.make_message("void") + b".\r\n")
        c.expect("250 2.0.0 *")
        check_eq(gw.spool_files(), [], "spool files after an all-discarded message")
        c.expect("221 *", "QUIT")
    gw.wait_event("disconnect")
    check_eq(gw.spool_files(), [], "spool files after the session")
    check_eq(gw.all_mail_files(), [], "Maildir files")
    check_eq(len(gw.events("rcpt", action="discard")), 2,
             "event=rcpt action=discard lines")


def test_domain_section_overrides(gw_factory):
    gw = gw_factory(
        config={"domains": "example.test, other.example",
                "unknown_recipient": "reject"},
        sections={"other.example": {"unknown_recipient": "discard",
                                    "next_hop": "maildir:othermail"}},
        users=list(mxlib.DEFAULT_USERS) + ["dave@other.example"])
    other_root = gw.dir + "/othermail"
    msg = mxlib.make_message("sections", to="dave@other.example")
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        c.expect("550 5.1.1 *", "RCPT TO:<nobody@example.test>")
        check_eq(c.cmd("RCPT TO:<nobody@other.example>").raw, RCPT_OK,
                 "unknown in the discard domain")
        check_eq(c.cmd("RCPT TO:<dave@other.example>").raw, RCPT_OK,
                 "valid in the discard domain")
        c.expect("354 *", "DATA")
        c.send(msg + b".\r\n")
        c.expect("250 2.0.0 Ok: queued as *")
    files = gw.wait_maildir("other.example", "dave", root=other_root)
    with open(files[0], "rb") as f:
        check_eq(mxlib.split_received(f.read())[1],
                 mxlib.expected_delivery(msg), "dave's copy")
    check_eq(gw.all_mail_files(), [], "files under the global next hop")
    gw.wait_event("rcpt", to="nobody@other.example", action="discard")
    gw.wait_event("rcpt", to="nobody@example.test", action="reject")


def test_domain_section_reject_under_global_discard(gw_factory):
    gw = gw_factory(
        config={"domains": "example.test,strict.example",
                "unknown_recipient": "discard"},
        sections={"strict.example": {"unknown_recipient": "reject"}})
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        check_eq(c.cmd("RCPT TO:<nobody@example.test>").raw, RCPT_OK,
                 "unknown under the global discard")
        c.expect("550 5.1.1 <nobody@strict.example>: Recipient address "
                 "rejected: User unknown", "RCPT TO:<nobody@strict.example>")


# (address as sent, expected reply prefix); none may ever be relayed.
TRICKS = [
    ("user@other.test", "554 5.7.1 <user@other.test>: Relay access denied"),
    ("user@other.test@example.test", "501 5.1.3 Bad recipient address syntax"),
    ("USER@EXAMPLE.TEST.", "501 5.1.3 Bad recipient address syntax"),
    ("us\xe9r@example.test", "553 5.6.7 Address is not valid UTF-8"),
    ("us\x01er@example.test", "501 5.1.3 Bad recipient address syntax"),
    ("us\x7fer@example.test", "501 5.1.3 Bad recipient address syntax"),
    ("user%other.test@example.test", "550 5.1.1 *"),
    ("alice%other.test@example.test", "550 5.1.1 *"),
    ("other.test!user@example.test", "550 5.1.1 *"),
    ('"user@other.test"@example.test', "550 5.1.1 *"),
    ('"alice@other.test"@example.test', "550 5.1.1 *"),
    ("@example.test:user@other.test", "554 5.7.1 *"),
    ("@a.example.test,@example.test:user@other.test", "554 5.7.1 *"),
    ("user@[192.0.2.1]", "554 5.7.1 *"),
    ("user@[127.0.0.1]", "554 5.7.1 *"),
    ("user@other.test.", "501 5.1.3 *"),
    ("user@example.test.other.test", "554 5.7.1 *"),
    ("user@sub.example.test", "554 5.7.1 *"),
]
TRICK_IDS = ["plain-relay", "double-at", "trailing-dot", "8bit", "ctrl",
             "del", "percent", "percent-valid-user", "bang", "quoted-at",
             "quoted-at-valid-user", "source-route", "source-route-2",
             "literal", "literal-loopback", "other-trailing-dot",
             "suffix-domain", "subdomain"]


@mxlib.params(TRICKS, ids=TRICK_IDS)
def test_routing_trick_refused(gw, param):
    addr, want = param
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        c.expect(want, f"RCPT TO:<{addr}>")
        # Nothing was accepted: there is no transaction to send data into.
        c.expect("503 5.5.1 *", "DATA")
        c.expect("221 2.0.0 Bye", "QUIT")
    check(not gw.events("rcpt", action="relay"), "event=rcpt action=relay")
    check(not gw.events("rcpt", action="accept"), "event=rcpt action=accept")


def test_relay_from_relay_network(gw_factory):
    gw = gw_factory(config={"relay_networks": "127.0.0.2/32"})
    with mxlib.session(gw, bind="127.0.0.2") as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@example.test>")
        c.expect("250 2.1.5 Ok", "RCPT TO:<someone@other.test>")
        c.expect("250 2.0.0 Ok", "RSET")
    gw.wait_event("rcpt", to="someone@other.test", action="relay")
    with mxlib.session(gw, bind="127.0.0.3") as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@example.test>")
        c.expect("554 5.7.1 <someone@other.test>: Relay access denied",
                 "RCPT TO:<someone@other.test>")
        # Our own domains still work from outside the relay network.
        c.expect("250 2.1.5 Ok", "RCPT TO:<alice@example.test>")
    gw.wait_event("rcpt", to="someone@other.test", action="relay_denied")


def test_relay_network_cidr(gw_factory):
    gw = gw_factory(config={"relay_networks": "10.0.0.0/8, 127.0.1.0/24"})
    for src, want in (("127.0.1.9", "250 2.1.5 Ok"),
                      ("127.0.2.9", "554 5.7.1 *"),
                      ("127.0.0.1", "554 5.7.1 *")):
        with mxlib.session(gw, bind=src) as c:
            c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
            c.expect(want, "RCPT TO:<someone@other.test>")


def test_too_many_recipients(gw_factory):
    gw = gw_factory(config={"max_recipients": "3"})
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        for who in ("alice", "bob", "carol"):
            c.expect("250 2.1.5 Ok", f"RCPT TO:<{who}@example.test>")
        c.expect("452 4.5.3 *", "RCPT TO:<alice+x@example.test>")
        c.expect("354 *", "DATA")
        c.send(mxlib.make_message("three") + b".\r\n")
        c.expect("250 2.0.0 Ok: queued as *")
    for who in ("alice", "bob", "carol"):
        gw.wait_maildir("example.test", who)


def test_vrfy_reveals_nothing(gw):
    with mxlib.session(gw) as c:
        replies = [c.cmd(f"VRFY {a}").raw for a in
                   ("alice@example.test", "nobody@example.test", "alice",
                    "<bob@example.test>", "someone@other.test")]
        check_eq(replies[0][:10], b"252 2.0.0 ", "VRFY reply")
        check_eq(set(replies), {replies[0]}, "VRFY replies differ")
        c.expect("502 5.5.1 *", "EXPN staff")
        c.expect("502 5.5.1 *", "EXPN alice@example.test")
        c.expect("250 2.0.0 Ok", "NOOP")
