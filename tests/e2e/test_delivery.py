"""
test_delivery.py - accepted mail reaches the Maildir byte for byte.
Clients: smtplib, swaks, the raw client.  Covers: byte-exact delivery,
dot-unstuffing, 8BITMIME bodies, the Received header, address extensions,
case-insensitive addresses, several messages on one connection, the spool
being emptied after delivery.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import mxlib
from mxlib import check, check_eq, fail

QID = re.compile(r"^250 2\.0\.0 Ok: queued as ([0-9A-F]{16})$")


def queued_id(reply_text: str) -> str:
    m = QID.match(reply_text)
    check(m, f"end of DATA: expected '250 2.0.0 Ok: queued as <16 HEX>', "
             f"got {reply_text!r}")
    return m.group(1)


def delivered_body(path: str) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    check(b"\r" not in data, f"{path}: CR found (Maildir files use LF)")
    return mxlib.split_received(data)[1]


def tricky_message() -> bytes:
    """Dots to unstuff, blanks, a long line, an empty body line."""
    body = [".leading dot", "..two dots", ".", " . ", "trailing blanks   ",
            "tab\there", "", "x" * 900, "last line"]
    return mxlib.make_message("tricky", body)


def test_valid_recipient_byte_exact(gw):
    msg = tricky_message()
    with mxlib.smtp_client(gw) as s:
        s.ehlo()
        s.mail("x@remote.test")
        code, text = s.rcpt("alice@example.test")
        check_eq((code, text), (250, b"2.1.5 Ok"), "RCPT reply")
        code, text = s.data(msg)
        qid = queued_id(f"{code} {text.decode()}")
    files = gw.wait_maildir("example.test", "alice")
    check_eq(len(files), 1, "files in alice's Maildir")
    check_eq(delivered_body(files[0]), mxlib.expected_delivery(msg),
             "delivered message after our Received header")
    gw.wait_event("queued", qid=qid)
    gw.wait_event("delivered", qid=qid, to="alice@example.test")
    check_eq(gw.maildir_files("example.test", "alice", "tmp"), [],
             "files left in Maildir tmp/")


def test_8bitmime_body(gw):
    msg = (b"From: <x@remote.test>\r\nTo: <alice@example.test>\r\n"
           b"Subject: 8bit\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n\r\n"
           b"caf\xc3\xa9 \xe2\x82\xac \xff\x80 bytes\r\n")
    with mxlib.smtp_client(gw) as s:
        s.ehlo()
        check(s.has_extn("8bitmime"), "EHLO does not offer 8BITMIME")
        s.sendmail("x@remote.test", ["alice@example.test"], msg,
                   mail_options=["BODY=8BITMIME"])
    files = gw.wait_maildir("example.test", "alice")
    check_eq(delivered_body(files[0]), mxlib.expected_delivery(msg),
             "8-bit body")


def test_received_header(gw):
    msg = mxlib.make_message("received")
    with mxlib.smtp_client(gw) as s:
        s.ehlo()
        s.mail("x@remote.test")
        s.rcpt("alice@example.test")
        code, text = s.data(msg)
        qid = queued_id(f"{code} {text.decode()}")
    with open(gw.wait_maildir("example.test", "alice")[0], "rb") as f:
        hdr = mxlib.split_received(f.read())[0].decode("latin-1")
    flat = re.sub(r"\n[ \t]+", " ", hdr)
    check(f"by {mxlib.HOSTNAME}" in flat,
          f"Received lacks 'by {mxlib.HOSTNAME}': {flat!r}")
    check("127.0.0.1" in flat, f"Received lacks the client address: {flat!r}")
    check(qid in flat, f"Received lacks the queue id {qid}: {flat!r}")
    check(re.search(r";\s*\S.*\d{4}", flat), f"Received lacks a date: {flat!r}")


def test_address_extension(gw):
    msg = mxlib.make_message("extension", to="alice+news@example.test")
    with mxlib.smtp_client(gw) as s:
        s.ehlo()
        s.mail("x@remote.test")
        check_eq(s.rcpt("alice+news@example.test"), (250, b"2.1.5 Ok"),
                 "RCPT alice+news")
        code, _ = s.data(msg)
        check_eq(code, 250, "end of DATA")
    files = gw.wait_maildir("example.test", "alice")
    check_eq(delivered_body(files[0]), mxlib.expected_delivery(msg), "body")
    check_eq(gw.maildir_files("example.test", "alice+news"), [],
             "files in a Maildir named after the extension")


def test_case_insensitive_addresses(gw_factory):
    gw = gw_factory(config={"localpart_case_sensitive": "no"})
    msg = mxlib.make_message("case")
    with mxlib.smtp_client(gw) as s:
        s.ehlo()
        s.mail("x@remote.test")
        for rcpt in ("Alice@Example.TEST", "BOB@EXAMPLE.TEST"):
            check_eq(s.rcpt(rcpt), (250, b"2.1.5 Ok"), f"RCPT {rcpt}")
        check_eq(s.data(msg)[0], 250, "end of DATA")
    for who in ("alice", "bob"):
        files = gw.wait_maildir("example.test", who)
        check_eq(delivered_body(files[0]), mxlib.expected_delivery(msg), who)


def test_case_sensitive_localpart(gw_factory):
    gw = gw_factory(config={"localpart_case_sensitive": "yes"})
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        c.expect("250 2.1.5 Ok", "RCPT TO:<alice@EXAMPLE.Test>")
        c.expect("550 5.1.1 *", "RCPT TO:<ALICE@example.test>")


def test_ten_messages_one_connection(gw):
    qids = []
    with mxlib.smtp_client(gw) as s:
        s.ehlo()
        for i in range(10):
            s.mail("x@remote.test")
            check_eq(s.rcpt("bob@example.test")[0], 250, f"RCPT #{i}")
            code, text = s.data(mxlib.make_message(f"msg {i}"))
            qids.append(queued_id(f"{code} {text.decode()}"))
    check_eq(len(set(qids)), 10, "distinct queue ids")
    files = gw.wait_maildir("example.test", "bob", count=10)
    check_eq(len(files), 10, "files in bob's Maildir")
    subjects = set()
    for p in files:
        m = re.search(rb"^Subject: (msg \d+)$", delivered_body(p), re.M)
        check(m, f"{p}: no Subject")
        subjects.add(m.group(1))
    check_eq(len(subjects), 10, "distinct messages delivered")


def test_spool_empty_after_delivery(gw):
    with mxlib.smtp_client(gw) as s:
        s.sendmail("x@remote.test", ["alice@example.test", "carol@example.test"],
                   mxlib.make_message("spool"))
    gw.wait_maildir("example.test", "alice")
    gw.wait_maildir("example.test", "carol")
    mxlib.wait_until(lambda: gw.spool_files() == [], 10.0,
                     "the spool to be empty after delivery")


def test_swaks(gw):
    swaks = shutil.which("swaks")
    if swaks is None:
        fail("swaks is not installed (apt-get install swaks)")
    p = subprocess.run(
        [swaks, "--server", f"127.0.0.1:{gw.port}", "--to",
         "alice@example.test", "--from", "x@remote.test", "--helo",
         mxlib.CLIENT_HELO, "--timeout", "10", "--header",
         "Subject: swaks e2e"],
        stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    out = p.stdout.decode("utf-8", "replace")
    check(p.returncode == 0, f"swaks exited {p.returncode}: "
                             + " / ".join(out.splitlines()[-6:]))
    check(re.search(r"<[-~]\s+250 2\.0\.0 Ok: queued as [0-9A-F]{16}", out),
          "swaks transcript lacks the queued reply")
    files = gw.wait_maildir("example.test", "alice")
    check(re.search(rb"^Subject: swaks e2e$", delivered_body(files[0]), re.M),
          "swaks message not found in alice's Maildir")


def test_multiple_recipients_one_copy_each(gw):
    msg = mxlib.make_message("three")
    with mxlib.smtp_client(gw) as s:
        refused = s.sendmail("x@remote.test",
                             ["alice@example.test", "bob@example.test",
                              "carol@example.test"], msg)
        check_eq(refused, {}, "refused recipients")
    for who in ("alice", "bob", "carol"):
        files = gw.wait_maildir("example.test", who)
        mxlib.wait_until(lambda: gw.events("delivered",
                                           to=f"{who}@example.test"),
                         5.0, f"event=delivered to={who}")
        check_eq(len(files), 1, f"files for {who}")
        check_eq(delivered_body(files[0]), mxlib.expected_delivery(msg), who)


def test_null_sender_accepted(gw):
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<>")
        c.expect("250 2.1.5 Ok", "RCPT TO:<carol@example.test>")
        c.expect("354 *", "DATA")
        c.send(mxlib.make_message("bounce") + b".\r\n")
        queued_id(c.reply().text)
    gw.wait_maildir("example.test", "carol")
