"""
test_bdat.py - CHUNKING/BDAT (RFC 3030) and the NUL rule, at the byte
level (raw socket client; neither smtplib nor swaks sends BDAT).
Covers: CHUNKING on EHLO (and no BINARYMIME), one chunk, many chunks,
chunks pipelined in one write, 3 MB of chunks in one write, a chunk split
across many writes, BDAT 0 LAST, the size limit (552 after the whole
chunk is read, session in step), RSET between chunks, DATA and RCPT after
BDAT (503), BDAT out of sequence (503, its octets still read), bad
arguments (501), NUL and bare CR/LF in chunks, an end-of-data mark inside
a chunk, the header-size limit, the discard policy, an acknowledged
message surviving kill -9, chunks under STARTTLS, and forwarding to a
next hop with CHUNKING (BDAT, raw), without it (DATA, dot-stuffed), and
to LMTP (DATA).
"""

from __future__ import annotations

import os
import re

import mxlib
import peers
from mxlib import check, check_eq

QUEUED = re.compile(r"^250 2\.0\.0 Ok: queued as ([0-9A-F]{16})$")
WAIT = 10.0


def dotty_message(subject: str) -> bytes:
    """Lines that DATA would have to stuff, and one lone dot."""
    return mxlib.make_message(subject, [".leading dot", "..two", ".", "x",
                                        ".\t.", "last"])


def queued_id(text: str) -> str:
    m = QUEUED.match(text)
    check(m, f"LAST chunk: expected '250 2.0.0 Ok: queued as ID', got "
             f"{text!r}")
    return m.group(1)


def delivered(gw, who: str = "alice") -> bytes:
    files = gw.wait_maildir("example.test", who)
    check_eq(len(files), 1, f"files in {who}'s Maildir")
    with open(files[0], "rb") as f:
        return mxlib.split_received(f.read())[1]


def envelope(c, rcpt: str = "alice@example.test") -> None:
    c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
    c.expect("250 2.1.5 Ok", f"RCPT TO:<{rcpt}>")


def _send_last(c, data: bytes) -> str:
    """The whole rest as one LAST chunk; the reply's text."""
    c.send(b"BDAT %d LAST\r\n" % len(data) + data)
    return c.reply().text


def chunks_of(msg: bytes, n: int) -> list[bytes]:
    step = max(1, len(msg) // n)
    return [msg[i:i + step] for i in range(0, len(msg), step)]


def test_ehlo_offers_chunking(gw):
    with mxlib.session(gw, helo=None) as c:
        r = c.cmd("EHLO client.test")
        check("250-CHUNKING" in r.lines or "250 CHUNKING" in r.lines,
              f"EHLO does not offer CHUNKING: {r}")
        check(not any("BINARYMIME" in line for line in r.lines),
              f"EHLO offers BINARYMIME: {r}")


def test_single_chunk(gw):
    msg = dotty_message("one chunk")
    with mxlib.session(gw) as c:
        envelope(c)
        c.send(b"BDAT %d LAST\r\n" % len(msg) + msg)
        qid = queued_id(c.reply().text)
        c.expect("250 2.0.0 Ok", "NOOP")
    check_eq(delivered(gw), mxlib.expected_delivery(msg),
             "message after our Received header (no unstuffing)")
    gw.wait_event("queued", qid=qid)


def test_many_chunks(gw):
    msg = dotty_message("many chunks")
    parts = chunks_of(msg, 9)
    check(len(parts) >= 9, "the message is cut into at least 9 chunks")
    with mxlib.session(gw) as c:
        envelope(c)
        for p in parts:
            c.send(b"BDAT %d\r\n" % len(p) + p)
            c.expect(f"250 2.0.0 {len(p)} octets received")
        c.send(b"BDAT 0 LAST\r\n")
        queued_id(c.reply().text)
    check_eq(delivered(gw), mxlib.expected_delivery(msg), "message")


def test_pipelined_chunks_one_write(gw):
    msg = dotty_message("pipelined")
    a, b, rest = msg[:10], msg[10:200], msg[200:]
    with mxlib.session(gw) as c:
        c.send(b"MAIL FROM:<x@remote.test>\r\nRCPT TO:<alice@example.test>\r\n"
               + b"BDAT %d\r\n" % len(a) + a + b"BDAT %d\r\n" % len(b) + b
               + b"BDAT %d LAST\r\n" % len(rest) + rest
               + b"MAIL FROM:<y@remote.test>\r\nRCPT TO:<bob@example.test>\r\n"
               + b"BDAT 5 LAST\r\nabc\r\nQUIT\r\n")
        c.expect("250 2.1.0 Ok")
        c.expect("250 2.1.5 Ok")
        c.expect(f"250 2.0.0 {len(a)} octets received")
        c.expect(f"250 2.0.0 {len(b)} octets received")
        queued_id(c.reply().text)
        c.expect("250 2.1.0 Ok")
        c.expect("250 2.1.5 Ok")
        queued_id(c.reply().text)
        c.expect("221 2.0.0 Bye")
        c.expect_close()
    check_eq(delivered(gw), mxlib.expected_delivery(msg), "alice's message")
    check_eq(delivered(gw, "bob"), b"abc\n", "bob's message")


def test_chunk_split_across_writes(gw):
    msg = mxlib.make_message("split", ["line %d of a split chunk" % i
                                       for i in range(200)])
    with mxlib.session(gw) as c:
        envelope(c)
        c.send(b"BDAT %d LAST\r\n" % len(msg))
        pos = 0
        for k, n in enumerate([1, 1, 2, 3, 500, 1, 1000, 7]):
            c.send(msg[pos:pos + n])
            pos += n
            c.flush()
            if k in (1, 4):
                c.expect_silence(0.1)  # no reply before the last octet
        for i in range(pos, len(msg) - 1, 1500):
            c.send(msg[i:min(i + 1500, len(msg) - 1)])
            c.flush()
        c.expect_silence(0.1)
        c.send(msg[-1:])
        queued_id(c.reply().text)
    check_eq(delivered(gw), mxlib.expected_delivery(msg), "message")


def test_large_chunks_pipelined(gw):
    """About 3 MB in 1 MB chunks, all in one write: streamed to the spool
    through the bounded input buffer, delivered intact."""
    lines = [b"%07d %s" % (i, b"y" * 70) for i in range(40000)]
    msg = b"Subject: large\r\n\r\n" + b"\r\n".join(lines) + b"\r\n"
    step = 1 << 20
    parts = [msg[i:i + step] for i in range(0, len(msg), step)]
    wire = b"".join(b"BDAT %d%s\r\n" % (len(p), b" LAST" if k ==
                    len(parts) - 1 else b"") + p
                    for k, p in enumerate(parts))
    with mxlib.session(gw, timeout_s=30) as c:
        envelope(c)
        c.send(wire)
        for p in parts[:-1]:
            c.expect(f"250 2.0.0 {len(p)} octets received")
        queued_id(c.reply().text)
    got, want = delivered(gw), mxlib.expected_delivery(msg)
    diff = next((i for i, (x, y) in enumerate(zip(got, want)) if x != y),
                min(len(got), len(want)))
    check(got == want, f"large message: {len(got)} bytes delivered, "
          f"{len(want)} expected, first difference at {diff}")


def test_end_of_data_mark_in_chunk_is_content(gw):
    """<CRLF>.<CRLF> means nothing inside a chunk: what follows it is
    message content, never commands (no smuggling through BDAT)."""
    msg = (b"Subject: s\r\n\r\nbody\r\n.\r\nMAIL FROM:<evil@remote.test>"
           b"\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nevil\r\n")
    with mxlib.session(gw) as c:
        envelope(c)
        queued_id(_send_last(c, msg))
        c.expect("250 2.0.0 Ok", "NOOP")
    check_eq(delivered(gw), mxlib.expected_delivery(msg), "message")
    check_eq(gw.maildir_files("example.test", "bob"), [], "bob")
    check(not gw.events("mail", **{"from": "<evil@remote.test>"}),
          "a command inside a chunk was run")


def test_discard_policy(gw_factory):
    """Under discard: a pipelined group with a discarded and a valid
    recipient, then a transaction whose only recipient is discarded
    (the same 250 with an id, nothing stored)."""
    gw = gw_factory(config={"unknown_recipient": "discard"})
    msg = dotty_message("discard")
    with mxlib.session(gw) as c:
        c.send(b"MAIL FROM:<x@remote.test>\r\nRCPT TO:<nobody@example.test>"
               b"\r\nRCPT TO:<alice@example.test>\r\n"
               + b"BDAT %d LAST\r\n" % len(msg) + msg)
        c.expect("250 2.1.0 Ok")
        c.expect("250 2.1.5 Ok")
        c.expect("250 2.1.5 Ok")
        queued_id(c.reply().text)
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        c.expect("250 2.1.5 Ok", "RCPT TO:<nobody2@example.test>")
        c.send(b"BDAT 4\r\nab\r\n")
        c.expect("250 2.0.0 4 octets received")
        qid = queued_id(_send_last(c, b"cd\r\n"))
    check_eq(delivered(gw), mxlib.expected_delivery(msg), "alice's message")
    gw.wait_event("discarded", id=qid)


def test_bdat_zero_last_alone(gw):
    with mxlib.session(gw) as c:
        envelope(c)
        queued_id(c.cmd("BDAT 0 LAST").text)
        c.expect("250 2.0.0 Ok", "NOOP")
    check_eq(delivered(gw), b"", "an empty message: our Received only")


def test_last_line_without_crlf(gw):
    with mxlib.session(gw) as c:
        envelope(c)
        c.send(b"BDAT 21 LAST\r\nSubject: x\r\n\r\nno crlf")
        queued_id(c.reply().text)
    check_eq(delivered(gw), b"Subject: x\n\nno crlf\n",
             "the last line gets its line end")


def test_oversize_chunk_then_in_sync(gw_factory):
    gw = gw_factory(config={"max_message_size": "2K"})
    with mxlib.session(gw) as c:
        envelope(c)
        first = b"Subject: big\r\n\r\n" + b"a" * 1000 + b"\r\n"
        c.send(b"BDAT %d\r\n" % len(first) + first)
        c.expect(f"250 2.0.0 {len(first)} octets received")
        # 3000 more: over the limit.  Commands hidden in the chunk must
        # not run, and nothing comes before its last octet.
        big = (b"RSET\r\nMAIL FROM:<evil@remote.test>\r\n" * 100)[:3000]
        c.send(b"BDAT 3000\r\n" + big[:2000])
        c.flush()
        c.expect_silence(0.2)
        c.send(big[2000:])
        c.expect("552 5.3.4 Message size exceeds fixed limit")
        # The transaction is over: a chunk already in the pipe is read
        # and refused (RFC 3030 3: "accept and discard").
        c.send(b"BDAT 6 LAST\r\nNOOP\r\n")
        c.expect("503 5.5.1 *")
        c.expect("250 2.0.0 Ok", "NOOP")
        envelope(c)
        queued_id(_send_last(c, b"ok\r\n"))
    gw.wait_event("data", result="too_big")
    check_eq(delivered(gw), b"ok\n", "only the second message arrives")


def test_one_chunk_over_the_limit(gw_factory):
    gw = gw_factory(config={"max_message_size": "1K"})
    with mxlib.session(gw) as c:
        envelope(c)
        c.send(b"BDAT 5000 LAST\r\n" + b"x" * 4999)
        c.flush()
        c.expect_silence(0.2)
        c.send(b"y")
        c.expect("552 5.3.4 *")
        c.expect("250 2.0.0 Ok", "NOOP")
    check_eq(gw.maildir_files("example.test", "alice"), [], "delivered")
    check(not gw.events("queued"), "a message was queued")


def test_rset_between_chunks(gw):
    with mxlib.session(gw) as c:
        envelope(c)
        c.send(b"BDAT 10\r\nSubject: a")
        c.expect("250 2.0.0 10 octets received")
        c.expect("250 2.0.0 Ok", "RSET")
        # no transaction now: the chunk is read, then refused
        c.send(b"BDAT 12 LAST\r\nQUIT\r\nQUIT\r\n")
        c.expect("503 5.5.1 Error: need MAIL command")
        envelope(c, "bob@example.test")
        queued_id(_send_last(c, b"Subject: b\r\n\r\nb\r\n"))
    check_eq(delivered(gw, "bob"), b"Subject: b\n\nb\n", "bob's message")
    check_eq(gw.maildir_files("example.test", "alice"), [], "alice (RSET)")


def test_data_and_rcpt_after_bdat(gw):
    with mxlib.session(gw) as c:
        envelope(c)
        c.send(b"BDAT 4\r\nab\r\n")
        c.expect("250 2.0.0 4 octets received")
        c.expect("503 5.5.1 *", "DATA")
        c.expect("503 5.5.1 *", "RCPT TO:<bob@example.test>")
        c.expect("250 2.0.0 Ok", "RSET")
        envelope(c)
        c.expect("354 *", "DATA")
        c.send(b"Subject: d\r\n\r\nd\r\n.\r\n")
        queued_id(c.reply().text)
    check_eq(delivered(gw), b"Subject: d\n\nd\n", "message sent with DATA")
    check_eq(gw.maildir_files("example.test", "bob"), [], "bob")


def test_bdat_out_of_sequence(gw):
    with mxlib.Client(gw.port) as c:
        c.greet()
        c.send(b"BDAT 6\r\nHELO x")  # before HELO; "HELO x" is data
        c.expect("503 5.5.1 Error: send HELO/EHLO first")
        c.ehlo()
        c.send(b"BDAT 32 LAST\r\nMAIL FROM:<evil@remote.test>\r\nXX")
        c.expect("503 5.5.1 Error: need MAIL command")
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        c.send(b"BDAT 8 LAST\r\nRSET\r\n\r\n")
        c.expect("503 5.5.1 Error: need RCPT command")
        c.expect("250 2.1.5 Ok", "RCPT TO:<alice@example.test>")
        queued_id(_send_last(c, b"Subject: s\r\n\r\ns\r\n"))
    check_eq(delivered(gw), b"Subject: s\n\ns\n", "message")
    check(not gw.events("mail", **{"from": "<evil@remote.test>"}),
          "a command inside a chunk was run")


@mxlib.params(["BDAT", "BDAT x", "BDAT -1", "BDAT 10 LAST x", "BDAT 10  LAST",
               "BDAT 10 FIRST", "BDAT 1e3", "BDAT 123456789012345678901",
               "BDAT  10", "BDAT 10 "],
              ["none", "letter", "negative", "extra", "two_blanks", "first",
               "exp", "21_digits", "leading_blank", "trailing_blank"])
def test_bad_argument(gw, param):
    with mxlib.session(gw) as c:
        envelope(c)
        c.expect("501 5.5.4 *", param)
        c.expect("250 2.0.0 Ok", "NOOP")
        queued_id(_send_last(c, b"Subject: a\r\n\r\na\r\n"))


@mxlib.params([b"a\x00b\r\n", b"\x00.\r\n", b".\x00\r\n", b"\x00"],
              ["mid_line", "nul_dot", "dot_nul", "alone"])
def test_nul_in_chunk(gw, param):
    with mxlib.session(gw) as c:
        envelope(c)
        c.send(b"BDAT 17\r\nSubject: n\r\n\r\nx\r\n")
        c.expect("250 2.0.0 17 octets received")
        c.send(b"BDAT %d LAST\r\n" % len(param) + param)
        c.expect("554 5.6.0 Message contains NUL characters")
        c.expect("250 2.0.0 Ok", "NOOP")
        envelope(c, "bob@example.test")
        queued_id(_send_last(c, b"Subject: ok\r\n\r\nok\r\n"))
    gw.wait_event("data", result="nul")
    check_eq(gw.maildir_files("example.test", "alice"), [], "alice")
    delivered(gw, "bob")


@mxlib.params([b"a\nb\r\n", b"a\rb\r\n", b"a\r\n.\n", b"end\r"],
              ["bare_lf", "bare_cr", "dot_lf", "trailing_cr"])
def test_bare_eol_in_chunk(gw, param):
    with mxlib.session(gw) as c:
        envelope(c)
        c.send(b"BDAT %d\r\n" % len(param) + param)
        c.expect(f"250 2.0.0 {len(param)} octets received")
        c.send(b"BDAT 0 LAST\r\n")
        c.expect("550 5.6.0 Message refused: bare CR or LF in message")
        c.expect("250 2.0.0 Ok", "NOOP")
    check_eq(gw.maildir_files("example.test", "alice"), [], "alice")


def test_header_size_limit(gw_factory):
    gw = gw_factory(config={"max_header_size": "1K"})
    msg = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 60)
                   for i in range(40)) + b"\r\nbody\r\n"
    with mxlib.session(gw) as c:
        envelope(c)
        c.send(b"BDAT 500\r\n" + msg[:500])
        c.expect("250 2.0.0 500 octets received")
        c.send(b"BDAT %d LAST\r\n" % (len(msg) - 500) + msg[500:])
        c.expect("552 5.3.4 *")
        c.expect("250 2.0.0 Ok", "NOOP")
    check_eq(gw.maildir_files("example.test", "alice"), [], "alice")


def test_acknowledged_survives_kill9(gw_factory):
    """250 for LAST comes after the journal sync: kill -9 at once, and
    the message is still delivered after a restart."""
    gw = gw_factory(config={"next_hop": "smtp:127.0.0.1:%d"
                            % mxlib.free_port(), "retry_min": "1s",
                            "retry_max": "1s", "smtp_connect_timeout": "1s"})
    msg = mxlib.make_message("kill9")
    with mxlib.session(gw) as c:
        envelope(c)
        c.send(b"BDAT 20\r\n" + msg[:20])
        c.expect("250 2.0.0 20 octets received")
        c.send(b"BDAT %d LAST\r\n" % (len(msg) - 20) + msg[20:])
        queued_id(c.reply().text)
        gw.kill9()
    gw.settings["next_hop"] = "maildir:mail"
    gw.write_config()
    gw.start()
    check_eq(delivered(gw), mxlib.expected_delivery(msg), "message")


def relay_gw(ctx, gw_factory, chunking: bool, lmtp: bool = False):
    name = ("lmtp" if lmtp else "smtp") + ("_chunking" if chunking else "")
    sink = peers.PySink(None, name, os.path.join(ctx.tmpdir, name), lmtp)
    sink.chunking = chunking
    sink.start()
    kind = "lmtp" if lmtp else "smtp"
    gw = gw_factory(config={"next_hop": f"{kind}:127.0.0.1:{sink.port}",
                            "retry_min": "1s", "retry_max": "2s",
                            "relayhost": "127.0.0.1:%d" % mxlib.free_port()})
    return sink, gw


def send_bdat_message(gw, msg: bytes) -> str:
    with mxlib.session(gw) as c:
        envelope(c)
        half = len(msg) // 2
        c.send(b"BDAT %d\r\n" % half + msg[:half])
        c.expect(f"250 2.0.0 {half} octets received")
        return queued_id(_send_last(c, msg[half:]))


def test_forward_with_bdat(ctx, gw_factory):
    sink, gw = relay_gw(ctx, gw_factory, True)
    try:
        msg = dotty_message("forward bdat") + b"\x80\xff 8-bit\r\n"
        send_bdat_message(gw, msg)
        rec = sink.wait_messages(1, WAIT)[0]
        check_eq(rec.verb, "BDAT", "how the next hop got the data")
        received, rest = mxlib.split_received(rec.data)
        check(received.endswith(b"\r\n"), f"Received header: {received!r}")
        check_eq(rest, msg, "message at the next hop, byte for byte")
        check_eq((rec.mail_from, rec.rcpts),
                 ("x@remote.test", ["alice@example.test"]), "envelope")
    finally:
        sink.stop()


def test_forward_without_chunking_uses_data(ctx, gw_factory):
    sink, gw = relay_gw(ctx, gw_factory, False)
    try:
        msg = dotty_message("forward data")
        send_bdat_message(gw, msg)
        rec = sink.wait_messages(1, WAIT)[0]
        check_eq(rec.verb, "DATA", "how the next hop got the data")
        check_eq(mxlib.split_received(rec.data)[1], msg,
                 "message at the next hop, after unstuffing")
        for line in (b"\r\n..leading dot\r\n", b"\r\n...two\r\n",
                     b"\r\n..\r\n", b"\r\n..\t.\r\n"):
            check(line in rec.wire, f"{line!r} not stuffed on the wire: "
                  f"{rec.wire!r}")
    finally:
        sink.stop()


def test_chunks_under_starttls(gw_factory):
    """The TLS bufferevent path: chunks pipelined after STARTTLS."""
    from test_tls_auth import raw, tls_gateway
    gw = tls_gateway(gw_factory, submission=False, users_file=False)
    msg = dotty_message("tls")
    with raw(gw, tls=True) as c:
        c.send(b"MAIL FROM:<x@remote.test>\r\nRCPT TO:<alice@example.test>\r\n"
               + b"BDAT 7\r\n" + msg[:7]
               + b"BDAT %d LAST\r\n" % (len(msg) - 7) + msg[7:])
        c.expect("250 2.1.0 Ok")
        c.expect("250 2.1.5 Ok")
        c.expect("250 2.0.0 7 octets received")
        queued_id(c.reply().text)
    check_eq(delivered(gw), mxlib.expected_delivery(msg), "message")


def test_lmtp_stays_on_data(ctx, gw_factory):
    """LMTP next hops get DATA even when they offer CHUNKING."""
    sink, gw = relay_gw(ctx, gw_factory, True, lmtp=True)
    try:
        msg = dotty_message("lmtp")
        send_bdat_message(gw, msg)
        rec = sink.wait_messages(1, WAIT)[0]
        check_eq(rec.verb, "DATA", "how the LMTP next hop got the data")
        check_eq(mxlib.split_received(rec.data)[1], msg, "message")
    finally:
        sink.stop()
