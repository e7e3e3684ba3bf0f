"""
test_milter_raw.py - mxgate against a scripted milter written here with
sockets only (a thread of the test on a free loopback port), for what a
real filter library never sends: garbage, a huge packet, a version or
actions it may not ask for, a replycode that is not 4xx/5xx, an edit it
did not negotiate; and for the negotiation's other half: steps left out
(SMFIP_NODATA: its macros still come, the command does not) and steps
not answered (SMFIP_NR_*: mxgate sends on without waiting).  Each
failure is 451 4.7.1 under the default action, with its log line, and
the gateway lives on.  A large message reaches a filter in body chunks
of at most 65535 bytes.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time

import mxlib
from mxlib import check, check_eq

RCPT_OK = "250 2.1.5 Ok"
NODATA, NR_CONN, NR_MAIL, NR_RCPT = 0x200, 0x1000, 0x4000, 0x8000
NR_HELO = 0x2000
NR_DATA, NR_HDR, NR_EOH, NR_BODY = 0x10000, 0x80, 0x40000, 0x80000
ADDHDRS = 0x1


def pkt(cmd: bytes, data: bytes = b"") -> bytes:
    return struct.pack(">I", len(data) + 1) + cmd + data


class RawMilter:
    """Accepts connections; answers per mode; records every command."""

    def __init__(self, mode: str, unix: str | None = None):
        self.mode = mode
        self.unix = unix
        self.cmds: list[tuple[bytes, bytes]] = []
        if unix:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.bind(unix)
        else:
            self.sock = socket.socket()
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(("127.0.0.1", 0))
            self.port = self.sock.getsockname()[1]
        self.sock.listen(8)
        self.stopping = False
        self.t = threading.Thread(target=self._serve, daemon=True)
        self.t.start()

    @property
    def spec(self) -> str:
        return f"unix:{self.unix}" if self.unix else \
            f"inet:127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._conn, args=(c,), daemon=True).start()

    def _read(self, c: socket.socket) -> tuple[bytes, bytes] | None:
        h = b""
        while len(h) < 4:
            b = c.recv(4 - len(h))
            if not b:
                return None
            h += b
        n = struct.unpack(">I", h)[0]
        d = b""
        while len(d) < n:
            b = c.recv(n - len(d))
            if not b:
                return None
            d += b
        return d[:1], d[1:]

    def _conn(self, c: socket.socket) -> None:
        with c:
            while True:
                p = self._read(c)
                if p is None:
                    return
                self.cmds.append(p)
                if p[0] == b"E" and self.mode.startswith("progress"):
                    # progress every 400 ms, past a 1 s eom deadline
                    n = 4 if self.mode == "progress" else 40
                    for _ in range(n):
                        time.sleep(0.4)
                        try:
                            c.sendall(pkt(b"p"))
                        except OSError:
                            return
                out = self._answer(*p)
                if out:
                    try:
                        c.sendall(out)
                    except OSError:
                        return

    def _answer(self, cmd: bytes, data: bytes) -> bytes:
        m = self.mode
        if cmd == b"O":
            ver, acts, proto = 6, 0, 0
            if m == "badneg":
                ver = 7
            if m == "symlist":      # SETSYMLIST: stage, names
                return pkt(b"O", struct.pack(">III", 6, 0x100, 0) +
                           struct.pack(">I", 0) + b"j\0" +
                           struct.pack(">I", 2) + b"{mail_addr}\0")
            if m == "nr":
                acts = ADDHDRS
                proto = (NODATA | NR_CONN | NR_HELO | NR_MAIL | NR_RCPT |
                         NR_DATA | NR_HDR | NR_EOH | NR_BODY)
            return pkt(b"O", struct.pack(">III", ver, acts, proto))
        if cmd in (b"D", b"Q", b"A"):
            return b""          # macros, quit, abort: no answer
        if m == "nr" and cmd != b"E":
            return b""          # it said it would not answer these
        if m == "acceptmail" and cmd == b"M":
            return pkt(b"a")
        if m == "garbage":
            return b"\x00\x00\x00\x03zzz"
        if m == "zerolen":
            return b"\x00\x00\x00\x00"
        if m == "huge":
            return b"\x7f\xff\xff\xff" + b"c"
        if cmd == b"E":
            if m == "badcode":
                return pkt(b"y", b"250 2.0.0 fine\0")
            if m in ("undeclared", "nr"):
                return pkt(b"h", b"X-Raw\0edited\0") + pkt(b"c")
        return pkt(b"c")

    def stop(self) -> None:
        self.stopping = True
        self.sock.close()


def send(c: mxlib.Client, want: str, msg: bytes | None = None) -> None:
    c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
    c.expect(RCPT_OK, "RCPT TO:<alice@example.test>")
    c.expect("354 *", "DATA")
    c.send((msg or mxlib.make_message("raw")) + b".\r\n")
    c.expect(want)


TEMP = "451 4.7.1 Content filter unavailable, try again later"


# where each failure shows: at MAIL (the conversation starts there) or
# at the end of data
@mxlib.params([("garbage", "bad_reply", "mail"),
               ("zerolen", "bad_packet", "mail"),
               ("huge", "packet_too_big", "mail"),
               ("badneg", "negotiate", "mail"),
               ("badcode", "bad_reply", "eom"),
               ("undeclared", "edit_not_allowed", "eom")],
              ids=["garbage", "zerolen", "huge", "badneg", "badcode",
                   "undeclared"])
def test_milter_raw_failures(ctx, gw_factory, param):
    mode, error, where = param
    m = RawMilter(mode)
    try:
        gw = gw_factory(config={"milters": m.spec})
        with mxlib.session(gw) as c:
            if where == "mail":
                c.expect(TEMP, "MAIL FROM:<x@remote.test>")
            else:
                send(c, TEMP)
            # the session and the gateway live on
            c.expect("250 2.0.0 Ok", "RSET")
        ev = gw.wait_event("milter", error=error)
        check_eq(ev.get("action"), "tempfail", f"action: {ev['line']}")
        check_eq(gw.all_mail_files(), [], "nothing delivered")
    finally:
        m.stop()


def test_milter_raw_no_reply_steps(ctx, gw_factory):
    m = RawMilter("nr")
    try:
        gw = gw_factory(config={"milters": m.spec})
        with mxlib.session(gw) as c:
            send(c, "250 2.0.0 Ok: queued as *")
        files = gw.wait_maildir("example.test", "alice")
        with open(files[0], "rb") as f:
            data = f.read()
        check(b"\nX-Raw: edited\n" in data, f"the edit: {data[:400]!r}")
        kinds = [k for k, _ in m.cmds]
        check(b"T" not in kinds, f"DATA left out: {kinds}")
        # its macros still came
        macro_stages = [d[:1] for k, d in m.cmds if k == b"D"]
        check(b"T" in macro_stages, f"DATA's macros sent: {macro_stages}")
        for k in (b"C", b"H", b"M", b"R", b"L", b"N", b"B", b"E"):
            check(k in kinds, f"{k!r} sent: {kinds}")
        # the order of the conversation
        order = [k for k in kinds if k in (b"O", b"C", b"H", b"M", b"R",
                                           b"N", b"E")]
        check_eq(order, [b"O", b"C", b"H", b"M", b"R", b"N", b"E"],
                 "the steps in order")
        mail = [d for k, d in m.cmds if k == b"M"][0]
        check_eq(mail, b"<x@remote.test>\0", "MAIL's argument")
        rcpt_macros = [d for k, d in m.cmds if k == b"D" and d[:1] == b"R"]
        check(b"{rcpt_addr}\0alice@example.test\0" in rcpt_macros[0],
              f"{rcpt_macros}")
    finally:
        m.stop()


def test_milter_raw_body_chunks(ctx, gw_factory):
    m = RawMilter("pass")
    try:
        gw = gw_factory(config={"milters": m.spec})
        line = "x" * 78
        body = [line] * 3000            # about 240 KB
        with mxlib.session(gw) as c:
            send(c, "250 2.0.0 Ok: queued as *",
                 mxlib.make_message("big", body=body))
        gw.wait_maildir("example.test", "alice")
        chunks = [len(d) for k, d in m.cmds if k == b"B"]
        check(len(chunks) >= 4, f"several chunks: {chunks}")
        check(max(chunks) <= 65535, f"each at most 65535: {chunks}")
        check_eq(sum(chunks), 3000 * 80, "every body byte, once")
    finally:
        m.stop()


def test_milter_raw_progress(ctx, gw_factory):
    """progress extends the end-of-message deadline, up to 5 times."""
    m = RawMilter("progress")
    try:
        gw = gw_factory(config={"milters": m.spec,
                                "milter_eom_timeout": "1s"})
        with mxlib.session(gw) as c:
            t0 = time.monotonic()
            send(c, "250 2.0.0 Ok: queued as *")
            check(time.monotonic() - t0 >= 1.5, "it waited past 1 s")
    finally:
        m.stop()
    m = RawMilter("progress_forever")
    try:
        gw.stop()
        gw.settings["milters"] = m.spec
        gw.start()
        with mxlib.session(gw) as c:
            t0 = time.monotonic()
            send(c, "451 4.7.1 *")
            took = time.monotonic() - t0
            check(took < 10, f"the cap holds: {took:.1f}s")
        gw.wait_event("milter", error="timeout", stage="eom")
    finally:
        m.stop()


def test_milter_raw_unix_and_big_body(ctx, gw_factory):
    """A unix socket; a 1.5 MB body to a filter that answers no body
    chunk: mxgate waits for the socket to drain, every byte arrives."""
    path = os.path.join(ctx.tmpdir, "raw.sock")
    m = RawMilter("nr", unix=path)
    try:
        gw = gw_factory(config={"milters": m.spec,
                                "max_message_size": "4M"})
        body = ["y" * 998] * 1500
        with mxlib.session(gw) as c:
            send(c, "250 2.0.0 Ok: queued as *",
                 mxlib.make_message("big", body=body))
        check_eq([k for k, _ in m.cmds][:2], [b"O", b"D"],
                 "one negotiation, then the connect macros")
        gw.wait_maildir("example.test", "alice")
        chunks = [len(d) for k, d in m.cmds if k == b"B"]
        check_eq(sum(chunks), 1500 * 1000, "every body byte, once")
        check(max(chunks) <= 65535, "chunks at most 65535")
    finally:
        m.stop()


def test_milter_raw_symlist_and_accept(ctx, gw_factory):
    """A filter that names its macros gets those only; one that says
    accept at MAIL is asked nothing more about the transaction."""
    m = RawMilter("symlist")
    try:
        gw = gw_factory(config={"milters": m.spec})
        with mxlib.session(gw) as c:
            send(c, "250 2.0.0 Ok: queued as *")
        macros = {d[:1]: d[1:] for k, d in m.cmds if k == b"D"}
        check_eq(macros.get(b"C"), b"j\0mx.example.test\0",
                 "connect macros: j only")
        check_eq(macros.get(b"M"), b"{mail_addr}\0x@remote.test\0",
                 "mail macros: {mail_addr} only")
        check(b"R" in macros, "unnamed stages get every macro")
    finally:
        m.stop()
    m = RawMilter("acceptmail")
    try:
        gw.stop()
        gw.settings["milters"] = m.spec
        gw.start()
        with mxlib.session(gw) as c:
            send(c, "250 2.0.0 Ok: queued as *")
        gw.wait_maildir("example.test", "alice")
        kinds = [k for k, _ in m.cmds if k not in (b"D",)]
        check_eq(kinds[:4], [b"O", b"C", b"H", b"M"], "up to MAIL")
        check(not any(k in (b"R", b"T", b"L", b"B", b"E") for k in kinds),
              f"nothing after accept: {kinds}")
    finally:
        m.stop()
