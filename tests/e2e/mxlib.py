"""
mxlib.py - fixtures for the mxgate end-to-end tests (STYLE R18).
Owns: a Gateway (config + users file + spool + Maildir in a private folder,
one real `mxgate serve` process on a free loopback port, its log), a raw
byte-level SMTP client, and small helpers (waits, messages, params).
Never: sleeps without a condition, talks outside 127.0.0.0/8, signals a
process it did not start.  Python 3.11+, standard library only.
"""

from __future__ import annotations

import fcntl
import os
import re
import shlex
import signal
import smtplib
import socket
import struct
import subprocess
import termios
import threading
import time
from typing import Any, Callable, Iterable

HOSTNAME = "mx.example.test"
CLIENT_HELO = "client.test"
DEFAULT_USERS = ("alice@example.test", "bob@example.test", "carol@example.test")

# The base configuration; a test overrides keys (None removes a key).
BASE_CONFIG: dict[str, str] = {
    "hostname": HOSTNAME,
    "listen": "127.0.0.1:0",  # replaced by the chosen port
    "spool": "spool",
    "domains": "example.test",
    "directory": "file:users",
    "relay_networks": "",
    "unknown_recipient": "reject",
    "next_hop": "maildir:mail",
    "log_level": "debug",
    # SPF (default tag) would ask DNS about every sender and add headers
    # above Received; tests/e2e/test_spf.py turns it on with its own DNS.
    "spf_policy": "none",
    # Reports need a proof the sender is real (ndr_require_auth = yes);
    # without SPF there is none, so tests of reports turn it off and
    # tests/e2e/test_proven_sender.py turns it on.
    "ndr_require_auth": "no",
}

# MXGATE_WRAPPER: shell words the server command is run under, e.g.
# "valgrind --error-exitcode=99" (tests/valgrind.sh); it gets more time.
WRAPPER = shlex.split(os.environ.get("MXGATE_WRAPPER", ""))
# Every default wait below is a generous bound on a poll, never a claim
# about speed: a loaded machine must not fail a test (timing is for the
# benchmarks).
START_TIMEOUT = 60.0 if WRAPPER else 30.0  # seconds until event=listening
STOP_TIMEOUT = 60.0 if WRAPPER else 30.0  # after SIGTERM, before SIGKILL
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "WARNING: ThreadSanitizer")


class TestFailure(AssertionError):
    """A test expectation did not hold."""


class ConnectionClosed(TestFailure):
    """The server closed the connection while a reply was awaited."""


def fail(msg: str) -> None:
    raise TestFailure(msg)


def check(cond: Any, msg: str) -> None:
    if not cond:
        raise TestFailure(msg)


def check_eq(got: Any, want: Any, what: str = "value") -> None:
    if got != want:
        raise TestFailure(f"{what}: expected {want!r}, got {got!r}")


def wait_until(pred: Callable[[], Any], timeout: float, what: str,
               interval: float = 0.02) -> Any:
    """Poll pred until it returns something true; bounded by timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise TestFailure(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    """A port that was free a moment ago (bind 127.0.0.1:0, then close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- params

def params(cases: Iterable[Any], ids: Iterable[str] | None = None):
    """Run the decorated test once per case; it receives `param`."""
    cases = list(cases)
    if ids is not None:
        names = list(ids)
    elif all(isinstance(c, str) and re.fullmatch(r"[\w.-]+", c) for c in cases):
        names = list(cases)
    else:
        names = [str(i) for i in range(len(cases))]
    if len(names) != len(cases):
        raise ValueError("params: ids and cases differ in length")

    def deco(fn):
        fn.mx_params = list(zip(names, cases))
        return fn
    return deco


def timeout(seconds: float):
    """Give the decorated test its own time limit (default: the runner's)."""
    def deco(fn):
        fn.mx_timeout = seconds
        return fn
    return deco


# ---------------------------------------------------------------- messages

def make_message(subject: str = "test", body: Iterable[str] | None = None,
                 sender: str = "x@remote.test",
                 to: str = "alice@example.test") -> bytes:
    """An RFC 5322 message with CRLF line ends, ending in CRLF."""
    if body is None:
        body = ["Hello,", "", "this is a test.", "-- ", "x"]
    lines = [f"From: <{sender}>", f"To: <{to}>", f"Subject: {subject}",
             "Message-ID: <%s.%d@remote.test>" % (subject.replace(" ", "-"),
                                                  time.monotonic_ns()),
             "MIME-Version: 1.0", "Content-Type: text/plain; charset=us-ascii",
             ""]
    lines += list(body)
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def split_received(data: bytes) -> tuple[bytes, bytes]:
    """Split a delivered file into (our Received header, the rest).

    The file must start with "Received:"; continuation lines start with a
    space or a tab (RFC 5322 2.2.3 folding).
    """
    check(data.startswith(b"Received:"),
          f"delivered file does not start with Received: {data[:80]!r}")
    pos = data.find(b"\n") + 1
    check(pos > 0, "delivered file has a single unterminated line")
    while pos < len(data) and data[pos:pos + 1] in (b" ", b"\t"):
        nl = data.find(b"\n", pos)
        check(nl >= 0, "unterminated Received continuation line")
        pos = nl + 1
    return data[:pos], data[pos:]


def expected_delivery(original: bytes) -> bytes:
    """What follows our Received header in the Maildir file."""
    return original.replace(b"\r\n", b"\n")


def smtp_client(gw: "Gateway", timeout_s: float = 10.0,
                source: str | None = None) -> smtplib.SMTP:
    """An smtplib client connected to gw (EHLO not yet sent)."""
    addr = (source, 0) if source else None
    return smtplib.SMTP("127.0.0.1", gw.port, local_hostname=CLIENT_HELO,
                        timeout=timeout_s, source_address=addr)


# ---------------------------------------------------------------- raw client

class Reply:
    """One SMTP reply: one or more lines with the same code."""

    def __init__(self, lines: list[bytes]):
        self.raw_lines = lines  # each with its CRLF
        self.raw = b"".join(lines)
        self.lines = [ln[:-2].decode("latin-1") for ln in lines]
        self.code = int(self.lines[-1][:3]) if self.lines[-1][:3].isdigit() else 0
        self.text = self.lines[-1]

    def __str__(self) -> str:
        return " | ".join(self.lines)

    __repr__ = __str__


class Client:
    """A raw SMTP client: exact bytes out, reply lines in, no magic."""

    def __init__(self, port: int, bind: str | None = None,
                 host: str = "127.0.0.1", timeout_s: float = 30.0):
        check(host.startswith("127."), "tests talk to loopback only")
        self.timeout = timeout_s
        self.buf = b""
        self.closed = False
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            # Each send() leaves as its own segment: split commands stay split.
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if bind:
                check(bind.startswith("127."), "bind to loopback only")
                self.sock.bind((bind, 0))
            self.sock.settimeout(timeout_s)
            self.sock.connect((host, port))
        except OSError:
            self.sock.close()
            raise

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    # -- output

    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def sendline(self, line: bytes | str) -> None:
        if isinstance(line, str):
            line = line.encode("latin-1")
        self.send(line + b"\r\n")

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until the peer's kernel has acknowledged every byte sent.

        TIOCOUTQ (SIOCOUTQ) is the count of bytes not yet acknowledged;
        zero means what we sent so far has reached the server host.
        """
        def drained() -> bool:
            b = fcntl.ioctl(self.sock.fileno(), termios.TIOCOUTQ,
                            struct.pack("i", 0))
            return struct.unpack("i", b)[0] == 0
        wait_until(drained, timeout_s, "the send queue to drain", 0.002)

    # -- input

    def _fill(self, deadline: float) -> bool:
        """Read more bytes into buf; False on EOF."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout()
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.closed = True
            return False
        self.buf += chunk
        return True

    def read_line(self, timeout_s: float | None = None) -> bytes:
        """One reply line with its CRLF."""
        deadline = time.monotonic() + (timeout_s or self.timeout)
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                line, self.buf = self.buf[:nl + 1], self.buf[nl + 1:]
                check(line.endswith(b"\r\n"),
                      f"server sent a line without CRLF: {line!r}")
                return line
            try:
                more = self._fill(deadline)
            except socket.timeout:
                raise TestFailure(
                    f"no reply line within {timeout_s or self.timeout:g}s"
                    + (f" (partial: {self.buf!r})" if self.buf else "")) from None
            if not more:
                raise ConnectionClosed(
                    "connection closed by server while waiting for a reply"
                    + (f" (partial: {self.buf!r})" if self.buf else ""))

    def reply(self, timeout_s: float | None = None) -> Reply:
        """One (possibly multi-line) reply."""
        lines = []
        for _ in range(100):
            line = self.read_line(timeout_s)
            lines.append(line)
            check(len(line) >= 5 and line[:3].isdigit()
                  and line[3:4] in (b" ", b"-"),
                  f"malformed reply line {line!r}")
            if line[3:4] == b" ":
                return Reply(lines)
        fail("a reply of more than 100 lines")
        raise AssertionError  # not reached

    def cmd(self, line: bytes | str, timeout_s: float | None = None) -> Reply:
        self.sendline(line)
        return self.reply(timeout_s)

    def expect(self, want: str, line: bytes | str | None = None,
               timeout_s: float | None = None) -> Reply:
        """Send line (if any), read a reply, its last line must match want:
        exact text, or a prefix when want ends with '*'."""
        r = self.cmd(line, timeout_s) if line is not None else self.reply(timeout_s)
        ok = (r.text.startswith(want[:-1]) if want.endswith("*")
              else r.text == want)
        if not ok:
            sent = f" to {line!r}" if line is not None else ""
            fail(f"reply{sent}: expected {want!r}, got {str(r)!r}")
        return r

    def greet(self, timeout_s: float | None = None) -> Reply:
        return self.expect(f"220 {HOSTNAME} ESMTP mxgate", timeout_s=timeout_s)

    def ehlo(self, name: str = CLIENT_HELO) -> Reply:
        r = self.cmd(f"EHLO {name}")
        check(r.code == 250, f"EHLO: {r}")
        return r

    def expect_close(self, timeout_s: float = 30.0) -> bytes:
        """Wait for EOF; returns (and forbids) any bytes that came first."""
        deadline = time.monotonic() + timeout_s
        while not self.closed:
            try:
                if not self._fill(deadline):
                    break
            except socket.timeout:
                fail(f"connection still open after {timeout_s:g}s"
                     + (f" (got {self.buf!r})" if self.buf else ""))
        extra, self.buf = self.buf, b""
        check(extra == b"", f"unexpected bytes before close: {extra!r}")
        return extra

    def expect_silence(self, seconds: float) -> None:
        """Nothing may arrive for this long (a partial command got no reply)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.buf:
            try:
                if not self._fill(deadline):
                    fail("connection closed while expecting silence")
            except socket.timeout:
                break
        check(self.buf == b"", f"expected no reply yet, got {self.buf!r}")


def session(gw: "Gateway", bind: str | None = None, helo: str | None = CLIENT_HELO,
            timeout_s: float = 30.0) -> Client:
    """A connected raw client past the greeting (and EHLO unless helo=None)."""
    c = Client(gw.port, bind=bind, timeout_s=timeout_s)
    try:
        c.greet()
        if helo:
            c.ehlo(helo)
    except BaseException:
        c.close()
        raise
    return c


# ---------------------------------------------------------------- gateway

LOG_LINE = re.compile(r"^(\S+) level=(\S+) event=(\S+)(.*)$")


def parse_log_line(line: str) -> dict[str, str] | None:
    m = LOG_LINE.match(line)
    if not m:
        return None
    ev = {"ts": m.group(1), "level": m.group(2), "event": m.group(3),
          "line": line}
    for tok in m.group(4).split():
        k, sep, v = tok.partition("=")
        if sep:
            ev.setdefault(k, v)
    return ev


def _norm_value(v: str) -> str:
    return v[1:-1] if len(v) >= 2 and v[0] == "<" and v[-1] == ">" else v


def render_config(settings: dict[str, str | None],
                  sections: dict[str, dict[str, str]]) -> str:
    out = ["# written by tests/e2e/mxlib.py"]
    for k, v in settings.items():
        if v is not None:
            out.append(f"{k} = {v}".rstrip())
    for name, kv in sections.items():
        out += ["", f"[domain {name}]"]
        out += [f"{k} = {v}".rstrip() for k, v in kv.items()]
    return "\n".join(out) + "\n"


class Gateway:
    """One mxgate process with its own config, users file, spool and Maildir.

    Folder layout: DIR/mxgate.conf, DIR/users, DIR/spool, DIR/mail,
    DIR/mxgate.log (stdout and stderr of every run, appended).
    """

    def __init__(self, binary: str, workdir: str, cwd: str,
                 config: dict[str, str | None] | None = None,
                 sections: dict[str, dict[str, str]] | None = None,
                 users: Iterable[str] | None = DEFAULT_USERS,
                 preexec_fn: Callable[[], None] | None = None):
        self.binary = os.path.abspath(binary)
        self.dir = workdir
        self.cwd = cwd
        os.makedirs(workdir, exist_ok=True)
        self.conf_path = os.path.join(workdir, "mxgate.conf")
        self.users_path = os.path.join(workdir, "users")
        self.spool_dir = os.path.join(workdir, "spool")
        self.mail_dir = os.path.join(workdir, "mail")
        self.log_path = os.path.join(workdir, "mxgate.log")
        os.makedirs(self.spool_dir, exist_ok=True)
        os.makedirs(self.mail_dir, exist_ok=True)
        self.settings: dict[str, str | None] = dict(BASE_CONFIG)
        self.settings.update(config or {})
        self.sections = dict(sections or {})
        self.preexec_fn = preexec_fn
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.reader: threading.Thread | None = None
        self.problems: list[str] = []
        self.run_mark = 0
        self.scanned = 0  # log offset already scanned for sanitizer output
        open(self.log_path, "ab").close()
        if users is not None:
            self.write_users(users)

    # -- files

    def write_users(self, users: Iterable[str] | None = None,
                    text: bytes | None = None) -> None:
        """Replace the users file atomically (one address a line)."""
        data = text if text is not None else \
            "".join(f"{u}\n" for u in users or ()).encode()
        tmp = self.users_path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, self.users_path)

    def remove_users(self) -> None:
        try:
            os.unlink(self.users_path)
        except FileNotFoundError:
            pass

    def write_config(self) -> None:
        s = dict(self.settings)
        if s.get("listen") == "127.0.0.1:0":
            s["listen"] = f"127.0.0.1:{self.port}"
        with open(self.conf_path, "w") as f:
            f.write(render_config(s, self.sections))

    def maildir(self, domain: str, local: str, sub: str = "new",
                root: str | None = None) -> str:
        return os.path.join(root or self.mail_dir, domain, local, sub)

    def maildir_files(self, domain: str, local: str, sub: str = "new",
                      root: str | None = None) -> list[str]:
        d = self.maildir(domain, local, sub, root)
        try:
            names = sorted(os.listdir(d))
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [os.path.join(d, n) for n in names
                if os.path.isfile(os.path.join(d, n))]

    def wait_maildir(self, domain: str, local: str, count: int = 1,
                     timeout_s: float = 30.0, root: str | None = None) -> list[str]:
        """Wait until local@domain has at least count files in new/."""
        files = wait_until(
            lambda: (f if len(f := self.maildir_files(domain, local, root=root))
                     >= count else None),
            timeout_s, f"{count} file(s) in the Maildir of {local}@{domain}")
        return files

    def all_mail_files(self, root: str | None = None) -> list[str]:
        out = []
        for dirpath, _, names in os.walk(root or self.mail_dir):
            out += [os.path.join(dirpath, n) for n in names]
        return sorted(out)

    def spool_files(self) -> list[str]:
        """Every regular file under the spool, relative paths, sorted;
        not spare/ (finished files kept for reuse hold no message) nor
        journal/ (its segment is always there, the images it holds are
        checked by recovery, not here), nor the lock (one gateway per
        spool: always there once one has started) nor the pid file."""
        out = []
        for dirpath, dirs, names in os.walk(self.spool_dir):
            if dirpath == self.spool_dir:
                dirs[:] = [d for d in dirs if d not in ("spare", "journal")]
                names = [n for n in names if n not in ("lock",
                                                       "mxgate.pid")]
            for n in names:
                p = os.path.join(dirpath, n)
                if os.path.isfile(p):
                    out.append(os.path.relpath(p, self.spool_dir))
        return sorted(out)

    # -- log

    def log_bytes(self, since: int = 0) -> bytes:
        with open(self.log_path, "rb") as f:
            f.seek(since)
            return f.read()

    def log_text(self, since: int = 0) -> str:
        return self.log_bytes(since).decode("utf-8", "replace")

    def log_mark(self) -> int:
        """An offset: pass it as since= to look only at later lines."""
        return os.path.getsize(self.log_path)

    def log_tail(self, n: int = 40) -> list[str]:
        return self.log_text().splitlines()[-n:]

    def events(self, name: str | None = None, since: int = 0,
               **kv: str) -> list[dict[str, str]]:
        """Parsed log events; kv must match exactly (<> around values ignored)."""
        out = []
        for line in self.log_text(since).splitlines():
            ev = parse_log_line(line)
            if ev is None or (name is not None and ev["event"] != name):
                continue
            if all(_norm_value(ev.get(k, "\0")) == _norm_value(v)
                   for k, v in kv.items()):
                out.append(ev)
        return out

    def wait_event(self, name: str, timeout_s: float = 30.0, since: int = 0,
                   **kv: str) -> dict[str, str]:
        desc = " ".join([f"event={name}"] + [f"{k}={v}" for k, v in kv.items()])
        evs = wait_until(lambda: self.events(name, since, **kv) or
                         self._died(), timeout_s, f"log line with {desc}")
        if isinstance(evs, str):
            fail(f"{evs} while waiting for {desc}")
        return evs[0]

    def wait_log(self, regex: str, timeout_s: float = 30.0,
                 since: int = 0) -> re.Match:
        rx = re.compile(regex, re.M)

        def probe():
            return rx.search(self.log_text(since)) or self._died()
        m = wait_until(probe, timeout_s, f"log matching /{regex}/")
        if isinstance(m, str):
            fail(f"{m} while waiting for log /{regex}/")
        return m

    def _died(self) -> str | None:
        if self.proc is not None and self.proc.poll() is not None:
            return f"mxgate exited (status {self.proc.returncode})"
        return None

    # -- process

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout_s: float = START_TIMEOUT) -> "Gateway":
        check(not self.running, "start: already running")
        for attempt in range(3):
            if self.port is None:
                self.port = free_port()
            self.write_config()
            self.run_mark = self.log_mark()
            self._spawn()
            # text or log_format = json
            want = re.compile(r"event=listening .*addr=127\.0\.0\.1:%d\b|"
                              r'"event":"listening","addr":"127\.0\.0\.1:%d"'
                              % (self.port, self.port))
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if want.search(self.log_text(self.run_mark)):
                    return self
                if self.proc.poll() is not None:
                    break
                time.sleep(0.01)
            if self.proc.poll() is None:
                self.stop()
                fail(f"no event=listening for port {self.port} "
                     f"within {timeout_s:g}s")
            self._reap()
            out = self.log_text(self.run_mark)
            if attempt < 2 and re.search(r"in use|EADDRINUSE", out, re.I):
                self.port = None  # lost a race for the port; pick another
                continue
            fail(f"mxgate exited with status {self.proc.returncode} at start: "
                 + " / ".join(out.splitlines()[-5:]))
        fail("could not start mxgate")
        return self

    def _spawn(self) -> None:
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        self.proc = subprocess.Popen(
            WRAPPER + [self.binary, "serve", "-c", self.conf_path],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, cwd=self.cwd, env=env,
            preexec_fn=self.preexec_fn)
        # A thread copies the output to the log file: the file is written by
        # us, so rlimits set on the server (RLIMIT_FSIZE) never cut the log.
        self.reader = threading.Thread(target=self._copy_log,
                                       args=(self.proc.stdout,), daemon=True)
        self.reader.start()

    def _copy_log(self, pipe) -> None:
        fd = pipe.fileno()
        with open(self.log_path, "ab", buffering=0) as out:
            while True:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                out.write(chunk)
        pipe.close()

    def _reap(self) -> None:
        if self.reader is not None:
            self.reader.join(5.0)
            self.reader = None
        self._scan_sanitizer()

    def _scan_sanitizer(self) -> None:
        text = self.log_text(self.scanned)
        self.scanned = self.log_mark()
        bad = [ln.strip() for ln in text.splitlines()
               if any(m in ln for m in SANITIZER_MARKS)]
        if bad:
            self.problems.append("sanitizer report: " + " / ".join(bad[:3]))

    def stop(self, timeout_s: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, wait, SIGKILL if it hangs.  Records problems; returns rc."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            if self.reader is not None:  # not yet reaped: it died by itself
                self.problems.append(
                    f"mxgate exited on its own (status {self.proc.returncode})")
                self._reap()
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(5.0)
            self.problems.append(f"did not exit within {timeout_s:g}s of SIGTERM")
        else:
            if rc < 0:
                self.problems.append(f"died from signal {-rc} after SIGTERM")
            elif rc != 0:
                self.problems.append(f"exit status {rc} after SIGTERM")
        self._reap()
        return rc

    def kill9(self) -> None:
        check(self.running, "kill9: not running")
        self.proc.kill()
        self.proc.wait(5.0)
        self._reap()

    def reload(self) -> int:
        """SIGHUP; returns the log mark taken just before it."""
        check(self.running, "reload: not running")
        mark = self.log_mark()
        self.proc.send_signal(signal.SIGHUP)
        return mark

    def check_alive(self) -> None:
        if not self.running:
            rc = self.proc.returncode if self.proc else None
            fail(f"mxgate is not running (status {rc})")


class TestContext:
    """What a test receives: its own temp dir, the binary, gateways."""

    def __init__(self, binary: str, tmpdir: str):
        self.binary = binary
        self.tmpdir = tmpdir
        self.gateways: list[Gateway] = []

    def gateway(self, start: bool = True, **kw) -> Gateway:
        n = len(self.gateways)
        gw = Gateway(self.binary, os.path.join(self.tmpdir, f"gw{n}"),
                     cwd=self.tmpdir, **kw)
        self.gateways.append(gw)
        if start:
            gw.start()
        return gw

    def run_binary(self, args: list[str], timeout_s: float = 10.0
                   ) -> subprocess.CompletedProcess:
        return subprocess.run([os.path.abspath(self.binary)] + args,
                              stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout_s, cwd=self.tmpdir)

    def write(self, name: str, text: str | bytes) -> str:
        path = os.path.join(self.tmpdir, name)
        with open(path, "wb") as f:
            f.write(text.encode() if isinstance(text, str) else text)
        return path

    def close(self) -> list[str]:
        """Stop every gateway; returns the problems found."""
        problems = []
        for i, gw in enumerate(self.gateways):
            try:
                gw.stop()
            except Exception as e:  # keep stopping the others
                gw.problems.append(f"stop: {e!r}")
            problems += [f"gw{i}: {p}" for p in gw.problems]
        return problems


def sigxfsz_ignored_fsize_limit(limit: int) -> Callable[[], None]:
    """A preexec_fn: files may not grow past limit bytes, and writing past
    it fails with EFBIG instead of killing the process (SIGXFSZ ignored)."""
    def preexec() -> None:
        import resource
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec

