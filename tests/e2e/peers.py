"""
peers.py - the servers the delivery tests talk to, started on loopback.
Owns: PySink (a recording SMTP server on asyncio, told what to answer),
SmtpSink (Postfix's smtp-sink dumping each transaction to a file),
Dovecot (an LMTP server with Maildir storage, config in the test's folder),
and parsing of what they received (envelope, RFC 3464 reports and
their RFC 6533 global form).
Never: listens outside 127.0.0.1, signals a process it did not start.
Python 3.11+, standard library only.
"""

from __future__ import annotations

import asyncio
import atexit
import email
import email.message
import email.policy
import glob
import os
import pwd
import re
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import mxlib
from mxlib import check, check_eq, fail, wait_until

SMTP_SINK = "/usr/sbin/smtp-sink"
DOVECOT = "/usr/sbin/dovecot"
PEER_START_TIMEOUT = 30.0  # bounds on a poll, not claims of speed
PEER_STOP_TIMEOUT = 30.0
MAX_LINE = 1 << 16

# Peers still running; stopped at exit in case a test forgot (safety net).
_LIVE: set = set()


def _stop_leftovers() -> None:
    for p in list(_LIVE):
        try:
            p.stop()
        except Exception:
            pass


atexit.register(_stop_leftovers)


def open_for_others(path: str, mode: int = 0o711) -> None:
    """Let an unprivileged peer (smtp-sink -u nobody, Dovecot's mail user)
    traverse path (the test's private temp folder is 0700)."""
    os.chmod(path, os.stat(path).st_mode & 0o7777 | mode)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def unix_open(path: str) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(0.5)
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def _stop_process(proc: subprocess.Popen | None, name: str) -> None:
    """SIGTERM our child, SIGKILL it if it hangs; children it forked
    (Dovecot's) are its own business: the master stops them on SIGTERM."""
    if proc is None or proc.poll() is not None:
        return
    kids = _children_of(proc.pid)
    proc.terminate()
    try:
        proc.wait(PEER_STOP_TIMEOUT)
        return
    except subprocess.TimeoutExpired:
        pass
    proc.kill()
    proc.wait(PEER_STOP_TIMEOUT)
    for pid in kids:  # the master died hard: its workers are ours to end
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    fail(f"{name} (pid {proc.pid}) ignored SIGTERM")


def _children_of(pid: int) -> list[int]:
    out = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.split("/")[2]))
    return out


# ---------------------------------------------------------------- messages

@dataclass
class Received:
    """One mail transaction a peer took: the envelope and the data."""
    mail_from: str  # without <>; "" for the null sender
    rcpts: list[str]  # without <>
    data: bytes  # the message, dot-unstuffed, line ends as received
    client: str = ""
    helo: str = ""
    when: float = field(default_factory=time.monotonic)
    verb: str = "DATA"  # or "BDAT" (RFC 3030), how the data came
    wire: bytes = b""  # the data as sent, before dot-unstuffing
    mail_arg: str = ""  # the MAIL argument as sent, e.g. "FROM:<a@b> SIZE=9"

    def message(self) -> email.message.Message:
        return email.message_from_bytes(self.data,
                                        policy=email.policy.compat32)

    def header(self, name: str) -> str | None:
        v = self.message().get(name)
        return None if v is None else re.sub(r"\s+", " ", str(v)).strip()

    @property
    def subject(self) -> str | None:
        return self.header("Subject")


def _strip_path(arg: str) -> str:
    """'<a@b> SIZE=1' or 'FROM:<a@b>' -> 'a@b'."""
    m = re.search(r"<([^>]*)>", arg)
    return m.group(1) if m else arg.split(":", 1)[-1].split()[0]


@dataclass
class Report:
    """An RFC 3464 delivery report, taken apart."""
    msg: email.message.Message
    text: str  # the human-readable part
    per_message: dict[str, str]
    per_rcpt: list[dict[str, str]]  # field names lower-cased
    headers: str  # the text/rfc822-headers part
    is_global: bool = False  # RFC 6533: the message/global-* types


def _status_fields(block: str) -> dict[str, str]:
    """One field group of a delivery-status part: unfolded, names lower."""
    out: dict[str, str] = {}
    for line in re.sub(r"\r?\n[ \t]+", " ", block).splitlines():
        name, sep, value = line.partition(":")
        if sep:
            out[name.strip().lower()] = re.sub(r"\s+", " ", value).strip()
    return out


def _parse_global_report(rec: Received, msg, what: str) -> Report:
    """RFC 6533 6: the same layout with UTF-8 parts, which Python's email
    package does not take apart; read from the bytes by the boundary."""
    bnd = msg.get_boundary()
    check(bnd, f"{what}: no boundary")
    chunks = rec.data.split(b"\r\n--" + bnd.encode() + b"\r\n")
    check_eq(len(chunks), 4, f"{what}: parts")
    chunks[3] = chunks[3].split(b"\r\n--" + bnd.encode() + b"--")[0]
    heads, bodies = [], []
    for c in chunks[1:]:
        h, sep, b = c.partition(b"\r\n\r\n")
        check(sep, f"{what}: a part without a header section")
        heads.append(email.message_from_bytes(h + b"\r\n\r\n"))
        bodies.append(b.decode("utf-8"))  # strict: a global report is UTF-8
    check_eq([m.get_content_type() for m in heads],
             ["text/plain", "message/global-delivery-status",
              "message/global-headers"], f"{what}: parts")
    check_eq((heads[0].get_param("charset") or "").lower(), "utf-8",
             f"{what}: charset of the text part")
    blocks = [b for b in re.split(r"\r\n\r\n", bodies[1].strip("\r\n"))
              if b]
    check(len(blocks) >= 2, f"{what}: delivery-status has {len(blocks)} "
          "field groups, expected per-message + per-recipient")
    return Report(msg, bodies[0], _status_fields(blocks[0]),
                  [_status_fields(b) for b in blocks[1:]], bodies[2], True)


def parse_report(rec: Received) -> Report:
    """Check the RFC 3464 / RFC 6522 structure of a DSN (or its RFC 6533
    global form) and return its parts; fails with what is wrong."""
    msg = rec.message()
    what = f"DSN {rec.header('Subject')!r}"
    check(msg.get_content_type() == "multipart/report",
          f"{what}: Content-Type is {msg.get_content_type()}, "
          "not multipart/report")
    rtype = (msg.get_param("report-type") or "").lower()
    if rtype == "global-delivery-status":
        return _parse_global_report(rec, msg, what)
    check(rtype == "delivery-status",
          f"{what}: report-type is {msg.get_param('report-type')!r}")
    parts = msg.get_payload()
    check(isinstance(parts, list), f"{what}: not a multipart body")
    types = [p.get_content_type() for p in parts]
    check_eq(types, ["text/plain", "message/delivery-status",
                     "text/rfc822-headers"], f"{what}: parts")
    blocks = parts[1].get_payload()
    nblocks = len(blocks) if isinstance(blocks, list) else 0
    check(nblocks >= 2, f"{what}: delivery-status has {nblocks} field "
          "groups, expected per-message + per-recipient")

    def fields(b) -> dict[str, str]:
        return {k.lower(): re.sub(r"\s+", " ", str(v)).strip()
                for k, v in b.items()}
    text = parts[0].get_payload(decode=True).decode("utf-8", "replace")
    hdrs = parts[2].get_payload(decode=True) or b""
    return Report(msg, text, fields(blocks[0]),
                  [fields(b) for b in blocks[1:]],
                  hdrs.decode("utf-8", "replace"))


# ---------------------------------------------------------------- PySink

class PySink:
    """A small SMTP (or LMTP) server on 127.0.0.1 that records every
    transaction.

    Answers are attributes a test may change at any time:
      rcpt_reply: "250 2.1.5 Ok", or a function(addr) -> reply line
      data_reply: the reply to the final ".", or a function(addr) -> reply
                  (called once per recipient in LMTP mode, with "" in SMTP)
      data_delay: seconds to wait before that reply (a slow next hop)
      chunking: offer CHUNKING and take BDAT (RFC 3030); set before use
      ehlo_extra: more EHLO keywords to offer, e.g. ["SMTPUTF8"]
    messages: transactions answered 250 on an open connection, each
    recorded just before its reply is written (so a client that has read
    the 250 finds it); pending: how many have all their data and await
    the reply.
    """

    def __init__(self, port: int | None = None, name: str = "pysink",
                 dump_dir: str | None = None, lmtp: bool = False):
        self.port = port or mxlib.free_port()
        self.name = name
        self.lmtp = lmtp  # LHLO, and one reply per recipient after DATA
        self.dump_dir = dump_dir  # each accepted message also goes here
        if dump_dir:
            os.makedirs(dump_dir, exist_ok=True)
        self.rcpt_reply: str | Callable[[str], str] = "250 2.1.5 Ok"
        self.mail_reply = "250 2.1.0 Ok"
        self.data_reply: str | Callable[[str], str] = "250 2.0.0 Ok: queued"
        self.data_delay = 0.0
        self.chunking = False
        self.ehlo_extra: list[str] = []  # more EHLO keywords, e.g. ["DSN"]
        self.commands: list[str] = []  # every MAIL and RCPT line, verbatim
        self.lock = threading.Lock()
        self.messages: list[Received] = []
        self.refused: list[tuple[str, str]] = []  # (command, reply) 4xx/5xx
        self.pending = 0
        self.connections = 0  # accepted so far
        self.active = 0  # open now
        self.max_active = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self._stop_ev: asyncio.Event | None = None
        self._writers: set = set()
        self._error: BaseException | None = None

    def __enter__(self) -> "PySink":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- life cycle

    def start(self) -> "PySink":
        check(self.thread is None, f"{self.name}: already running")
        ready = threading.Event()
        self._error = None
        self.thread = threading.Thread(target=self._run, args=(ready,),
                                       daemon=True, name=self.name)
        self.thread.start()
        ready.wait(PEER_START_TIMEOUT)
        if self._error is not None or not ready.is_set():
            self.thread.join(1.0)
            self.thread = None
            fail(f"{self.name}: cannot listen on 127.0.0.1:{self.port}: "
                 f"{self._error!r}")
        _LIVE.add(self)
        return self

    def stop(self) -> None:
        """Close the listener and every connection (abruptly)."""
        _LIVE.discard(self)
        if self.thread is None:
            return
        if self.loop is not None and self._stop_ev is not None:
            self.loop.call_soon_threadsafe(self._stop_ev.set)
        self.thread.join(PEER_STOP_TIMEOUT)
        check(not self.thread.is_alive(), f"{self.name}: did not stop")
        self.thread = None

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        try:
            loop.run_until_complete(self._main(ready))
        except BaseException as e:  # reported by start()
            self._error = e
            ready.set()
        finally:
            loop.close()

    async def _main(self, ready: threading.Event) -> None:
        self._stop_ev = asyncio.Event()
        server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True,
            limit=MAX_LINE)
        ready.set()
        await self._stop_ev.wait()
        server.close()
        for w in list(self._writers):
            w.transport.abort()
        await asyncio.sleep(0)

    # -- the dialogue

    def _answer(self, what: str, fallback: str, arg: str) -> str:
        v = getattr(self, what)
        reply = v(arg) if callable(v) else (v or fallback)
        if reply[:1] in ("4", "5"):
            with self.lock:
                self.refused.append((what, reply))
        return reply

    async def _serve(self, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        with self.lock:
            self.connections += 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        peer = writer.get_extra_info("peername") or ("?", 0)
        st = {"from": None, "rcpts": [], "helo": "", "mail_arg": ""}

        def say(line: str) -> None:
            writer.write(line.encode("latin-1") + b"\r\n")
        try:
            say("220 pysink.test ESMTP")
            while True:
                raw = await reader.readline()
                if not raw:
                    break
                line = raw.rstrip(b"\r\n").decode("latin-1")
                verb = line.split(" ", 1)[0].upper()
                arg = line[len(verb) + 1:]
                if verb in ("MAIL", "RCPT"):
                    with self.lock:
                        self.commands.append(line)
                if verb == ("LHLO" if self.lmtp else "EHLO"):
                    st["helo"] = arg
                    say("250-pysink.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
                        + ("250-CHUNKING\r\n" if self.chunking else "")
                        + "".join(f"250-{k}\r\n" for k in self.ehlo_extra)
                        + "250-ENHANCEDSTATUSCODES\r\n250 SIZE 104857600")
                elif verb == "HELO" and not self.lmtp:
                    st["helo"] = arg
                    say("250 pysink.test")
                elif verb == "MAIL":
                    r = self._answer("mail_reply", "250 2.1.0 Ok", arg)
                    if r.startswith("2"):
                        st["from"], st["rcpts"] = _strip_path(arg), []
                        st["chunks"] = []
                        st["mail_arg"] = arg
                    say(r)
                elif verb == "RCPT":
                    addr = _strip_path(arg)
                    if st["from"] is None:
                        say("503 5.5.1 Error: need MAIL command")
                        continue
                    r = self._answer("rcpt_reply", "250 2.1.5 Ok", addr)
                    if r.startswith("2"):
                        st["rcpts"].append(addr)
                    say(r)
                elif verb == "DATA":
                    if not st["rcpts"]:
                        say("554 5.5.1 Error: no valid recipients")
                        continue
                    say("354 End data with <CR><LF>.<CR><LF>")
                    await writer.drain()
                    if not await self._take_data(reader, writer, st, peer):
                        break
                    st["from"], st["rcpts"] = None, []
                elif verb == "BDAT" and self.chunking:
                    if not await self._take_bdat(reader, writer, st, peer,
                                                 arg):
                        break
                elif verb == "RSET":
                    st["from"], st["rcpts"], st["chunks"] = None, [], []
                    say("250 2.0.0 Ok")
                elif verb == "NOOP":
                    say("250 2.0.0 Ok")
                elif verb == "QUIT":
                    say("221 2.0.0 Bye")
                    await writer.drain()
                    break
                else:
                    say("502 5.5.2 Error: command not recognized")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()
            with self.lock:
                self.active -= 1

    async def _take_data(self, reader, writer, st, peer) -> bool:
        """Read up to the final dot, record, answer; False if the client
        went away before the answer could be given."""
        lines, wire = [], []
        while True:
            raw = await reader.readline()
            if not raw:
                return False
            if raw in (b".\r\n", b".\n"):
                break
            lines.append(raw[1:] if raw.startswith(b".") else raw)
            wire.append(raw)
        rec = Received(st["from"], list(st["rcpts"]), b"".join(lines),
                       f"{peer[0]}", st["helo"], wire=b"".join(wire),
                       mail_arg=st["mail_arg"])
        return await self._reply_data(rec, reader, writer)

    async def _take_bdat(self, reader, writer, st, peer, arg) -> bool:
        """One BDAT chunk (RFC 3030): exactly n octets, raw; the LAST
        one ends the transaction like the final dot."""
        words = arg.split(" ")
        n = int(words[0])
        last = len(words) > 1 and words[1].upper() == "LAST"
        chunk = await reader.readexactly(n)
        if not st["rcpts"]:
            writer.write(b"503 5.5.1 Error: need RCPT command\r\n")
            return True
        st.setdefault("chunks", []).append(chunk)
        if not last:
            writer.write(b"250 2.0.0 %d octets received\r\n" % n)
            return True
        data = b"".join(st["chunks"])
        rec = Received(st["from"], list(st["rcpts"]), data, f"{peer[0]}",
                       st["helo"], verb="BDAT", wire=data,
                       mail_arg=st["mail_arg"])
        st["from"], st["rcpts"], st["chunks"] = None, [], []
        return await self._reply_data(rec, reader, writer)

    async def _reply_data(self, rec, reader, writer) -> bool:
        """Record rec and give the end-of-data reply(s)."""
        with self.lock:
            self.pending += 1
        try:
            if self.data_delay > 0:
                await asyncio.sleep(self.data_delay)
            if self.lmtp:
                replies = [self._answer("data_reply", "250 2.0.0 Ok", a)
                           for a in rec.rcpts]
                rec.rcpts = [a for a, r in zip(rec.rcpts, replies)
                             if r.startswith("2")]
            else:
                replies = [self._answer("data_reply", "250 2.0.0 Ok", "")]
            if reader.at_eof() or writer.is_closing():
                return False  # the client died while waiting: no answer given
            # recorded before the reply is written, as a server commits
            # before it answers: whoever has read our 250 finds it here
            if rec.rcpts and any(r.startswith("2") for r in replies):
                with self.lock:
                    self.messages.append(rec)
                    n = len(self.messages)
                self._dump(n, rec)
            writer.write(b"".join(r.encode("latin-1") + b"\r\n"
                                  for r in replies))
            await writer.drain()
            return True
        finally:
            with self.lock:
                self.pending -= 1

    def _dump(self, n: int, rec: Received) -> None:
        """A copy for the person reading a kept temp folder."""
        if not self.dump_dir:
            return
        path = os.path.join(self.dump_dir, f"{n:03d}.eml")
        with open(path, "wb") as f:
            f.write(f"X-Envelope-From: <{rec.mail_from}>\r\n".encode())
            for r in rec.rcpts:
                f.write(f"X-Envelope-To: <{r}>\r\n".encode())
            f.write(rec.data)

    # -- what arrived

    def received(self) -> list[Received]:
        with self.lock:
            return list(self.messages)

    def wait_messages(self, count: int = 1, timeout_s: float = 30.0,
                      pred: Callable[[Received], bool] | None = None
                      ) -> list[Received]:
        """Wait until at least count accepted messages (matching pred)."""
        def probe():
            got = [m for m in self.received() if pred is None or pred(m)]
            return got if len(got) >= count else None
        return wait_until(probe, timeout_s,
                          f"{count} message(s) at {self.name} "
                          f"(has {len(self.received())})")


# ---------------------------------------------------------------- smtp-sink

class SmtpSink:
    """Postfix's smtp-sink on 127.0.0.1:port, dumping each transaction.

    options: extra smtp-sink arguments, e.g. ["-r", "RCPT"] (450 to every
    RCPT), ["-f", "RCPT"] (500), ["-r", "."] (450 after the data).
    """

    def __init__(self, workdir: str, port: int | None = None,
                 options: list[str] | None = None, name: str = "smtp-sink"):
        if not os.access(SMTP_SINK, os.X_OK):
            fail(f"{SMTP_SINK} missing (apt-get install postfix)")
        self.dir = workdir
        self.name = name
        self.port = port or mxlib.free_port()
        self.options = list(options or [])
        self.dump_dir = os.path.join(workdir, "dump")
        self.log_path = os.path.join(workdir, "smtp-sink.log")
        self.proc: subprocess.Popen | None = None
        os.makedirs(self.dump_dir, exist_ok=True)
        open_for_others(os.path.dirname(workdir))
        open_for_others(workdir)
        os.chmod(self.dump_dir, 0o777)  # written by nobody

    def __enter__(self) -> "SmtpSink":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, options: list[str] | None = None) -> "SmtpSink":
        check(self.proc is None or self.proc.poll() is not None,
              f"{self.name}: already running")
        if options is not None:
            self.options = list(options)
        cmd = [SMTP_SINK, "-h", "sink.test", "-d",
               os.path.join(self.dump_dir, "%Y%m%d%H%M%S.")]
        if os.geteuid() == 0:
            cmd += ["-u", "nobody"]
        cmd += self.options + [f"127.0.0.1:{self.port}", "50"]
        with open(self.log_path, "ab") as log:
            log.write(("# " + " ".join(cmd) + "\n").encode())
            log.flush()
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log)
        _LIVE.add(self)

        def up():
            if self.proc.poll() is not None:
                return "exited"
            return port_open(self.port)
        r = wait_until(up, PEER_START_TIMEOUT, f"{self.name} to listen")
        if r == "exited":
            with open(self.log_path, "rb") as f:
                tail = f.read()[-400:].decode("utf-8", "replace")
            fail(f"{self.name} exited with {self.proc.returncode}: {tail}")
        return self

    def stop(self) -> None:
        _LIVE.discard(self)
        _stop_process(self.proc, self.name)

    def restart(self, options: list[str]) -> None:
        """Stop and start on the same port with other options."""
        self.stop()
        self.start(options)

    def received(self) -> list[Received]:
        """Every complete dumped transaction, oldest first."""
        out = []
        for path in sorted(glob.glob(os.path.join(self.dump_dir, "*"))):
            rec = self._parse_dump(path)
            if rec is not None:
                out.append(rec)
        return out

    def wait_messages(self, count: int = 1, timeout_s: float = 30.0
                      ) -> list[Received]:
        return wait_until(lambda: (r if len(r := self.received()) >= count
                                   else None), timeout_s,
                          f"{count} message(s) in {self.name}'s dump")

    @staticmethod
    def _parse_dump(path: str) -> Received | None:
        """The dump: X-Client-Addr, X-Helo-Args, X-Mail-Args, X-Rcpt-Args
        lines, a 3-line Received header, the message, an empty line."""
        with open(path, "rb") as f:
            data = f.read()
        if not data.endswith(b"\n\n"):
            return None  # still being written
        lines = data.split(b"\n")
        rec = Received("", [], b"")
        i = 0
        while i < len(lines) and not lines[i].startswith(b"Received:"):
            k, _, v = lines[i].decode("latin-1").partition(": ")
            if k == "X-Mail-Args":
                rec.mail_from = _strip_path(v)
            elif k == "X-Rcpt-Args":
                rec.rcpts.append(_strip_path(v))
            elif k == "X-Client-Addr":
                rec.client = v
            elif k == "X-Helo-Args":
                rec.helo = v
            i += 1
        i += 1
        while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
            i += 1
        rec.data = b"\n".join(lines[i:])[:-1]  # the dump's own empty line
        return rec


# ---------------------------------------------------------------- Dovecot

DOVECOT_CONF = """\
# written by tests/e2e/peers.py
protocols = lmtp
listen = 127.0.0.1
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
info_log_path = {dir}/dovecot.log
default_internal_user = {internal}
default_login_user = {login}
first_valid_uid = 1
mail_location = maildir:{dir}/mail/%d/%n
ssl = no
lmtp_save_to_detail_mailbox = no
passdb {{
  driver = passwd-file
  args = {dir}/passwd
}}
userdb {{
  driver = passwd-file
  args = {dir}/passwd
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
  unix_listener lmtp {{
    path = {dir}/lmtp.sock
    mode = 0666
  }}
}}
"""


class Dovecot:
    """Dovecot's LMTP server: TCP 127.0.0.1:port and DIR/lmtp.sock, users
    from a passwd-file, mail in DIR/mail/DOMAIN/LOCAL (Maildir)."""

    def __init__(self, workdir: str, users: list[str],
                 port: int | None = None):
        if not os.access(DOVECOT, os.X_OK) or \
                not os.path.exists("/usr/lib/dovecot/lmtp"):
            fail("Dovecot LMTP missing (apt-get install dovecot-lmtpd)")
        self.dir = workdir
        self.port = port or mxlib.free_port()
        self.users = list(users)
        self.socket = os.path.join(workdir, "lmtp.sock")
        self.mail_root = os.path.join(workdir, "mail")
        self.conf = os.path.join(workdir, "dovecot.conf")
        self.log_path = os.path.join(workdir, "dovecot.log")
        self.proc: subprocess.Popen | None = None
        for d in ("run", "state", "mail"):
            os.makedirs(os.path.join(workdir, d), exist_ok=True)
        open_for_others(os.path.dirname(workdir))
        open_for_others(workdir)
        os.chmod(self.mail_root, 0o777)  # written by the mail user

    def __enter__(self) -> "Dovecot":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _write_config(self) -> None:
        if os.geteuid() == 0:
            uid = gid = 65534  # nobody: Dovecot refuses to deliver as root
            internal = "dovecot" if _user_exists("dovecot") else "nobody"
            login = "dovenull" if _user_exists("dovenull") else "nobody"
        else:
            uid, gid = os.getuid(), os.getgid()
            internal = login = pwd.getpwuid(uid).pw_name
        with open(os.path.join(self.dir, "passwd"), "w") as f:
            for u in self.users:
                local, _, domain = u.partition("@")
                home = os.path.join(self.mail_root, domain, local)
                f.write(f"{u}::{uid}:{gid}::{home}::\n")
        with open(self.conf, "w") as f:
            f.write(DOVECOT_CONF.format(dir=self.dir, port=self.port,
                                        internal=internal, login=login))

    def start(self) -> "Dovecot":
        self._write_config()
        out = open(os.path.join(self.dir, "dovecot.out"), "ab")
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf],
                                     stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=out)
        out.close()
        _LIVE.add(self)

        def up():
            if self.proc.poll() is not None:
                return "exited"
            return port_open(self.port) and unix_open(self.socket)
        r = wait_until(up, PEER_START_TIMEOUT, "Dovecot LMTP to listen")
        if r == "exited":
            fail(f"dovecot exited with {self.proc.returncode}: "
                 + " / ".join(self.log_tail(5)))
        return self

    def stop(self) -> None:
        _LIVE.discard(self)
        _stop_process(self.proc, "dovecot")

    def log_tail(self, n: int = 20) -> list[str]:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace").splitlines()[-n:]
        except FileNotFoundError:
            return []

    def maildir_files(self, address: str) -> list[str]:
        local, _, domain = address.partition("@")
        d = os.path.join(self.mail_root, domain, local, "new")
        try:
            return sorted(os.path.join(d, n) for n in os.listdir(d))
        except FileNotFoundError:
            return []

    def wait_mail(self, address: str, count: int = 1,
                  timeout_s: float = 30.0) -> list[str]:
        return wait_until(
            lambda: (f if len(f := self.maildir_files(address)) >= count
                     else None), timeout_s,
            f"{count} message(s) in Dovecot's Maildir of {address}")


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False
