"""
test_smtputf8.py - SMTPUTF8 (RFC 6531/6532, issue 12 point 3).
Peers (peers.py, on 127.0.0.1): a recording Python SMTP server as next
hop, with and without SMTPUTF8 on its EHLO, and as relayhost for reports.
Covers: the EHLO keyword; UTF-8 addresses allowed only with MAIL ...
SMTPUTF8; invalid UTF-8 (overlong, surrogate, past U+10FFFF, C1 control,
truncated) refused with 553 5.6.7, as is 8-bit without SMTPUTF8; a local
part found in the users file in NFC and NFD alike, listed once in either
form, and delivered to one mailbox; the Received header's UTF8SMTP; a
next hop offering SMTPUTF8 gets MAIL ... SMTPUTF8; one not offering it
gets nothing and the sender a report (5.6.7), behind the backscatter
guard; an all-ASCII message received with SMTPUTF8 goes to any hop;
U-label domains in `domains`; smtplib with SMTPUTF8 over STARTTLS gets
"with UTF8SMTPS"; a report about a UTF-8 recipient is global (RFC 6533:
"utf-8;" address type, message/global-delivery-status and
message/global-headers), one about ASCII recipients as before.
"""

from __future__ import annotations

import os
import re
import unicodedata

import mxlib
import peers
from mxlib import check, check_eq

NFC = unicodedata.normalize("NFC", "jos\u00e9")
NFD = unicodedata.normalize("NFD", "jos\u00e9")
UTF8_BAD = "553 5.6.7 Address is not valid UTF-8"
UTF8_NEEDED = "553 5.6.7 Non-ASCII address needs MAIL FROM with SMTPUTF8"
QID = re.compile(r"^250 2\.0\.0 Ok: queued as ([0-9A-F]{16})$")
WAIT = 10.0

# Bytes that are not strict UTF-8 (RFC 3629 4), or a C1 control.
BAD_UTF8 = [
    ("overlong", b"\xc0\xa9"),
    ("overlong3", b"\xe0\x80\xaf"),
    ("surrogate", b"\xed\xa0\x80"),
    ("past_10ffff", b"\xf4\x90\x80\x80"),
    ("c1_control", b"\xc2\x85"),
    ("truncated", b"\xc3"),
    ("lone_continuation", b"\x80"),
    ("latin1", b"\xe9"),
    ("f5_lead", b"\xf5\x80\x80\x80"),
]


def u8(s: str) -> bytes:
    return s.encode("utf-8")


def users_with(local: str) -> bytes:
    return ("alice@example.test\n" + f"{local}@example.test\n").encode()


def hop_config(sink: "peers.PySink", relay: "peers.PySink",
               **extra: str) -> dict[str, str]:
    conf = {"next_hop": f"smtp:127.0.0.1:{sink.port}", "retry_min": "1s",
            "retry_max": "2s", "smtp_connect_timeout": "2s",
            "smtp_timeout": "5s", "relayhost": f"127.0.0.1:{relay.port}"}
    conf.update(extra)
    return conf


def sink(ctx, name: str) -> "peers.PySink":
    return peers.PySink(None, name, os.path.join(ctx.tmpdir, name))


def message(subject: str, to: str = "alice@example.test",
            header: str = "") -> bytes:
    msg = mxlib.make_message(subject, ["Hello,", f"marker-{subject}"],
                             "x@remote.test", "alice@example.test")
    if to != "alice@example.test" or header:
        head, sep, body = msg.partition(b"\r\n\r\n")
        extra = u8(f"\r\nX-To: {to}") + (u8("\r\n" + header) if header
                                           else b"")
        msg = head + extra + sep + body
    return msg


def send_utf8(gw, sender: str, rcpts: list[str], msg: bytes,
              smtputf8: bool = True) -> str:
    """One transaction (SMTPUTF8 on MAIL when asked); the queue id."""
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", u8(f"MAIL FROM:<{sender}>"
                                    + (" SMTPUTF8" if smtputf8 else "")))
        for r in rcpts:
            c.expect("250 2.1.5 Ok", u8(f"RCPT TO:<{r}>"))
        c.expect("354 *", "DATA")
        c.send(msg + b".\r\n")
        text = c.reply(10.0).text
        c.expect("221 *", "QUIT")
    m = QID.match(text)
    check(m, f"end of DATA: {text!r}")
    return m.group(1)


def latin(s: str) -> str:
    """PySink reads lines as latin-1: back to the UTF-8 text sent."""
    return s.encode("latin-1").decode("utf-8")


# ---------------------------------------------------------------- dialogue

def test_ehlo_offers_smtputf8(gw):
    with mxlib.session(gw, helo=None) as c:
        r = c.ehlo()
        check(b"250-SMTPUTF8\r\n" in r.raw, f"EHLO reply lacks SMTPUTF8: {r}")


@mxlib.params(["NFC", "NFD"])
def test_lookup_after_nfc(gw_factory, param):
    """The user is listed once (in NFC or in NFD); both spellings on the
    wire find it, land in one mailbox (the NFC name), and a near name is
    still unknown."""
    gw = gw_factory(start=False)
    gw.write_users(text=users_with(NFC if param == "NFC" else NFD))
    gw.start()
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test> SMTPUTF8")
        for local in (NFC, NFD):
            c.expect("250 2.1.5 Ok", u8(f"RCPT TO:<{local}@example.test>"))
        c.expect("550 5.1.1 *", u8("RCPT TO:<jos\u00e8@example.test>"))
        c.expect("550 5.1.1 *", u8("RCPT TO:<Jos\u00e9x@example.test>"))
        # ASCII case folding as for any local part: JOSé is josé
        c.expect("250 2.1.5 Ok", u8("RCPT TO:<JOS\u00e9@example.test>"))
        c.expect("354 *", "DATA")
        c.send(message("nfc") + b".\r\n")
        c.expect("250 2.0.0 Ok: queued as *")
        c.expect("221 *", "QUIT")
    # one recipient after normalisation: one file, in the NFC folder
    gw.wait_maildir("example.test", NFC)
    files = gw.maildir_files("example.test", NFC)
    check_eq(len(files), 1, f"files in the {NFC!r} mailbox")
    check(not os.path.exists(gw.maildir("example.test", NFD)),
          "a second mailbox for the NFD spelling")
    data = open(files[0], "rb").read()
    check(b"with UTF8SMTP id " in data.split(b"\r\n\r\n")[0],
          f"Received header without 'with UTF8SMTP': {data[:300]!r}")
    check_eq(gw.events("queued")[-1].get("rcpts"), "1", "queued rcpts")


@mxlib.params([c[0] for c in BAD_UTF8])
def test_invalid_utf8_refused(gw, param):
    bad = dict(BAD_UTF8)[param]
    with mxlib.session(gw) as c:
        # in the sender and in the recipient, with and without SMTPUTF8
        c.expect(UTF8_BAD, b"MAIL FROM:<x" + bad + b"@remote.test> SMTPUTF8")
        c.expect(UTF8_BAD, b"MAIL FROM:<x" + bad + b"@remote.test>")
        c.expect(UTF8_BAD, b"MAIL FROM:<x@remote" + bad + b".test> SMTPUTF8")
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test> SMTPUTF8")
        c.expect(UTF8_BAD, b"RCPT TO:<jos" + bad + b"@example.test>")
        c.expect(UTF8_BAD, b"RCPT TO:<\"jos" + bad + b"\"@example.test>")
        c.expect(UTF8_BAD, b"RCPT TO:<alice@exam" + bad + b"ple.test>")
        c.expect("503 5.5.1 *", "DATA")   # nothing was accepted
        c.expect("250 2.0.0 Ok", "NOOP")  # still in sync
    gw.check_alive()


def test_8bit_without_smtputf8_refused(gw_factory):
    gw = gw_factory(start=False)
    gw.write_users(text=users_with(NFC))
    gw.start()
    with mxlib.session(gw) as c:
        c.expect(UTF8_NEEDED, u8(f"MAIL FROM:<{NFC}@remote.test>"))
        c.expect(UTF8_NEEDED, u8("MAIL FROM:<x@b\u00fccher.test>"))
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        c.expect(UTF8_NEEDED, u8(f"RCPT TO:<{NFC}@example.test>"))
        c.expect(UTF8_NEEDED, u8(f"RCPT TO:<{NFD}@example.test>"))
        c.expect("250 2.1.5 Ok", "RCPT TO:<alice@example.test>")
        c.expect("250 2.0.0 Ok", "RSET")
        # SMTPUTF8 is for this transaction only (RFC 6531 3.4)
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test> SMTPUTF8")
        c.expect("250 2.1.5 Ok", u8(f"RCPT TO:<{NFC}@example.test>"))
        c.expect("250 2.0.0 Ok", "RSET")
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        c.expect(UTF8_NEEDED, u8(f"RCPT TO:<{NFC}@example.test>"))
        c.expect("250 2.0.0 Ok", "RSET")
        # a value on SMTPUTF8 is not the keyword
        c.expect("555 5.5.4 *", "MAIL FROM:<x@remote.test> SMTPUTF8=yes")
    with mxlib.session(gw, helo=None) as c:
        c.expect("250 *", "HELO client.test")  # no ESMTP: no SMTPUTF8
        c.expect("555 5.5.4 *", "MAIL FROM:<x@remote.test> SMTPUTF8")


# ---------------------------------------------------------------- next hops

def test_next_hop_with_smtputf8_gets_it(ctx, gw_factory):
    with sink(ctx, "hop") as hop, sink(ctx, "relay") as relay:
        hop.ehlo_extra = ["SMTPUTF8"]
        gw = gw_factory(start=False, config=hop_config(hop, relay))
        gw.write_users(text=users_with(NFC))
        gw.start()
        send_utf8(gw, f"{NFD}@remote.test", [f"{NFD}@example.test"],
                  message("hop-utf8", header=f"X-Name: {NFC}"))
        rec = hop.wait_messages(1, WAIT)[0]
        check(re.search(r"\sSMTPUTF8(\s|$)", rec.mail_arg),
              f"MAIL without SMTPUTF8: {rec.mail_arg!r}")
        check_eq(latin(rec.mail_from), f"{NFD}@remote.test",
                 "envelope sender (as the client wrote it)")
        check_eq([latin(r) for r in rec.rcpts], [f"{NFC}@example.test"],
                 "envelope recipient (NFC)")
        check_eq(relay.received(), [], "messages at the relayhost")


@mxlib.params(["address", "header"])
def test_next_hop_without_smtputf8_returns(ctx, gw_factory, param):
    """The message needs SMTPUTF8 (a UTF-8 recipient, or an 8-bit header)
    and the next hop does not offer it: nothing is sent there, the
    recipient fails for good and the sender gets a report (RFC 6531
    3.2), through the relayhost."""
    with sink(ctx, "hop") as hop, sink(ctx, "relay") as relay:
        gw = gw_factory(start=False, config=hop_config(hop, relay))
        gw.write_users(text=users_with(NFC))
        gw.start()
        rcpt = f"{NFC}@example.test" if param == "address" else \
            "alice@example.test"
        qid = send_utf8(gw, "x@remote.test", [rcpt],
                        message("hop-ascii", header=f"X-Name: {NFC}"))
        want = "5.6.7" if param == "address" else "5.6.9"
        ev = gw.wait_event("dsn", qid=qid, timeout_s=WAIT)
        check("ndr" not in ev, f"DSN suppressed: {ev['line']}")
        rep = relay.wait_messages(1, WAIT)[0]
        check_eq(rep.mail_from, "", "report envelope sender")
        check_eq(rep.rcpts, ["x@remote.test"], "report recipient")
        report = peers.parse_report(rep)
        status = report.per_rcpt[0].get("status", "")
        check_eq(status, want, "Status of the failed recipient")
        if param == "address":
            check(report.is_global, "a report about a UTF-8 recipient "
                  "is not global (RFC 6533)")
        check_eq(hop.received(), [], "messages at the next hop")
        check_eq(hop.connections >= 1, True, "the next hop was asked")


def test_next_hop_without_smtputf8_report_behind_guard(ctx, gw_factory):
    """A forged sender in our own domain from an untrusted client gets no
    report: the backscatter guard decides, as for any failure."""
    with sink(ctx, "hop") as hop, sink(ctx, "relay") as relay:
        gw = gw_factory(start=False, config=hop_config(hop, relay))
        gw.write_users(text=users_with(NFC))
        gw.start()
        qid = send_utf8(gw, "alice@example.test", [f"{NFC}@example.test"],
                        message("guarded"))
        ev = gw.wait_event("dsn", qid=qid, timeout_s=WAIT)
        check_eq(ev.get("ndr"), "suppressed", f"event=dsn: {ev['line']}")
        check_eq(relay.received(), [], "reports at the relayhost")
        check_eq(hop.received(), [], "messages at the next hop")


@mxlib.params(["utf8", "ascii", "ascii_8bit_header"])
def test_permanent_failure_report_types(ctx, gw_factory, param):
    """A recipient the next hop (with SMTPUTF8) refuses for good, in a
    transaction with SMTPUTF8: a UTF-8 one gets a global report (RFC 6533
    3, 6) naming it "utf-8;" in UTF-8; an ASCII one the report as ever,
    unless the header section it returns holds UTF-8: then the report is
    global too (message/global-headers), its recipient still "rfc822;"."""
    with sink(ctx, "hop") as hop, sink(ctx, "relay") as relay:
        hop.ehlo_extra = ["SMTPUTF8"]
        bad = f"{NFC}@example.test" if param == "utf8" else \
            "alice@example.test"
        good = "alice@example.test" if param == "utf8" else \
            f"{NFC}@example.test"
        hop.rcpt_reply = lambda a: ("550 5.1.1 No such user here" if
                                    latin(a) == bad else "250 2.1.5 Ok")
        gw = gw_factory(start=False, config=hop_config(hop, relay))
        gw.write_users(text=users_with(NFC))
        gw.start()
        header = f"X-Name: {NFC}" if param == "ascii_8bit_header" else ""
        qid = send_utf8(gw, "x@remote.test", [bad, good],
                        message(f"report-{param}", header=header))
        ev = gw.wait_event("dsn", qid=qid, timeout_s=WAIT)
        check("ndr" not in ev, f"DSN suppressed: {ev['line']}")
        rec = relay.wait_messages(1, WAIT)[0]
        check_eq(rec.rcpts, ["x@remote.test"], "report recipient")
        check_eq([latin(r) for r in hop.wait_messages(1, WAIT)[0].rcpts],
                 [good], "recipients the next hop took")
        rep = peers.parse_report(rec)
        check_eq(len(rep.per_rcpt), 1, f"recipients in {rep.per_rcpt}")
        f = rep.per_rcpt[0]
        check_eq((f.get("action"), f.get("status")), ("failed", "5.1.1"),
                 f"fields {f}")
        check("Subject: report-" in rep.headers,
              f"returned headers {rep.headers!r}")
        ctype = rec.header("Content-Type") or ""
        if param == "utf8":
            check(rep.is_global, f"not a global report: {ctype!r}")
            check_eq(f.get("final-recipient"), f"utf-8; {NFC}@example.test",
                     "Final-Recipient")
            check(f"<{NFC}@example.test>: failed" in rep.text,
                  f"the text part names {NFC!r}: {rep.text!r}")
        elif param == "ascii_8bit_header":
            check(rep.is_global, f"8-bit headers, not global: {ctype!r}")
            check_eq(f.get("final-recipient"), "rfc822; alice@example.test",
                     "Final-Recipient")
            check(f"X-Name: {NFC}" in rep.headers,
                  f"the UTF-8 header returned: {rep.headers!r}")
        else:
            check(not rep.is_global and "global" not in ctype,
                  f"an ASCII report became global: {ctype!r}")
            check_eq(f.get("final-recipient"), "rfc822; alice@example.test",
                     "Final-Recipient")
            check(not re.search(rb"[\x80-\xff]", rec.data),
                  "8-bit bytes in a report about ASCII only")
        check_eq(hop.received()[0].rcpts != [], True, "the hop's message")


def test_ascii_message_with_smtputf8_goes_anywhere(ctx, gw_factory):
    """SMTPUTF8 given but nothing needs it: the message goes to a next hop
    without SMTPUTF8, and without the parameter (RFC 6531 3.4)."""
    with sink(ctx, "hop") as hop, sink(ctx, "relay") as relay:
        gw = gw_factory(config=hop_config(hop, relay))
        send_utf8(gw, "x@remote.test", ["alice@example.test"],
                  message("plain"))
        rec = hop.wait_messages(1, WAIT)[0]
        check("SMTPUTF8" not in rec.mail_arg.upper(),
              f"MAIL with SMTPUTF8 to a hop without it: {rec.mail_arg!r}")
        check_eq(rec.rcpts, ["alice@example.test"], "recipients")


def test_ulabel_domain(gw_factory):
    """A domain of U-labels in `domains`, written in NFD and capitals:
    one of ours in any normal form and case, looked up and delivered
    under its NFC lower-case name; without SMTPUTF8 it is refused."""
    dom_conf = unicodedata.normalize("NFD", "B\u00dcCHER.test")
    dom = "b\u00fccher.test"
    gw = gw_factory(start=False,
                    config={"domains": f"example.test, {dom_conf}"})
    gw.write_users(text=u8(f"alice@example.test\n\u00e5sa@{dom}\n"))
    gw.start()
    with mxlib.session(gw) as c:
        c.expect(UTF8_NEEDED, u8(f"MAIL FROM:<x@{dom}>"))
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test> SMTPUTF8")
        c.expect("250 2.1.5 Ok", u8(f"RCPT TO:<\u00e5sa@{dom}>"))
        c.expect("250 2.1.5 Ok", u8("RCPT TO:<a\u030asa@B\u00dcCHER.TEST>"))
        c.expect("550 5.1.1 *", u8(f"RCPT TO:<nobody@{dom}>"))
        c.expect("554 5.7.1 *", u8("RCPT TO:<\u00e5sa@b\u00fccher.example>"))
        c.expect("354 *", "DATA")
        c.send(message("ulabel") + b".\r\n")
        c.expect("250 2.0.0 Ok: queued as *")
        c.expect("221 *", "QUIT")
    gw.wait_maildir(dom, "\u00e5sa")
    check_eq(len(gw.maildir_files(dom, "\u00e5sa")), 1, "files delivered")


def test_received_utf8smtps_over_tls(gw_factory):
    """Python's smtplib with SMTPUTF8 after STARTTLS: "with UTF8SMTPS"
    (RFC 6531 3.7.3), the UTF-8 sender kept as sent."""
    import test_tls_auth as tls
    gw = tls.tls_gateway(gw_factory, submission=False, users_file=False)
    s = mxlib.smtp_client(gw)
    try:
        s.ehlo()
        s.starttls(context=tls.client_context(gw))
        s.ehlo()
        check(s.has_extn("smtputf8"), f"no SMTPUTF8 in {s.esmtp_features}")
        s.sendmail(f"{NFC}@remote.test", ["alice@example.test"],
                   message("tls-utf8", header=f"X-Name: {NFC}"),
                   mail_options=["SMTPUTF8"])
        s.quit()
    finally:
        s.close()
    hdr = tls.received_of(gw, "alice")
    check(re.search(r"with UTF8SMTPS \(TLSv1\.[23] ", hdr),
          f"Received lacks 'with UTF8SMTPS': {hdr!r}")
    gw.wait_event("mail", smtputf8="yes")
