"""
smtpscript.py - interpreter for the dialogue transcripts tests/e2e/*.smtp.
Owns: the transcript language (below); runs one transcript against a fresh
Gateway.  Never: interprets a reply beyond the one-line glob it is given.

One directive a line; blank lines and lines starting with '#' are ignored.
  config KEY=VALUE ...           override config keys (before any dialogue)
  config domain NAME KEY=VALUE   the same inside a [domain NAME] section
  users ADDR ...                 the users file ("users -": no file at all)
  bind ADDR                      source address of the next connection
  connect                        (re)connect; done implicitly when needed
  send TEXT                      TEXT + CRLF, in one write
  sendraw TEXT                   TEXT exactly, in one write, then wait until
                                 the server host has acknowledged it
  expect PATTERN                 one reply line; '*' matches anything,
                                 '\\*' a star; "  # ..." ends it as a comment
  expect_close                   the server closes without sending more
  expect_silence MS              no byte arrives for MS milliseconds
  pause MS                       wait MS milliseconds (use with a condition)
  log REGEX                      a log line matches (waits up to 30 s)
  nolog REGEX                    no log line matches, now
  timeout SECONDS                how long each expect waits (default 30)
  repeat N { D1 ; D2 ; ... }     run directives N times, $i = 1..N
TEXT escapes: \\r \\n \\t \\\\ \\xHH, ${N*TEXT} (TEXT repeated N times),
${host} (the gateway hostname).  Trailing blanks are stripped: write \\x20.
"""

from __future__ import annotations

import re
import time

import mxlib
from mxlib import TestFailure

ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{2}|[rnt\\*])")
REPEAT_TEXT = re.compile(r"\$\{(\d+)\*([^}]*)\}")
REPEAT_BLOCK = re.compile(r"^repeat\s+(\d+)\s*\{(.*)\}\s*$")
COMMENT = re.compile(r"\s+#\s.*$")
MAX_REPEAT = 10000


def unescape(text: str, keep_star: bool = False) -> bytes:
    """Apply the TEXT escapes; with keep_star, '\\*' stays as '\\*'."""
    def rep_text(m: re.Match) -> str:
        n = int(m.group(1))
        if n > 100000:
            raise TestFailure(f"${{{n}*...}}: too long")
        return m.group(2) * n
    text = text.replace("${host}", mxlib.HOSTNAME)
    text = REPEAT_TEXT.sub(rep_text, text)

    def rep(m: re.Match) -> str:
        e = m.group(1)
        if e[0] == "x":
            return chr(int(e[1:], 16))
        if e == "*":
            return "\\*" if keep_star else "*"
        return {"r": "\r", "n": "\n", "t": "\t", "\\": "\\"}[e]
    return ESCAPE.sub(rep, text).encode("latin-1")


def glob_match(pattern: bytes, line: bytes) -> bool:
    """'*' matches any run of bytes, '\\*' a literal star; all else literal."""
    parts = re.split(rb"(\\\*|\*)", pattern)
    rx = b"".join(b".*" if p == b"*" else re.escape(b"*" if p == b"\\*" else p)
                  for p in parts)
    return re.fullmatch(rx, line, re.S) is not None


class Step:
    def __init__(self, lineno: int, op: str, arg: str):
        self.lineno, self.op, self.arg = lineno, op, arg


class Script:
    """A parsed transcript: setup (config, users) and the dialogue steps."""

    def __init__(self, path: str):
        self.path = path
        self.config: dict[str, str | None] = {}
        self.sections: dict[str, dict[str, str]] = {}
        self.users: list[str] | None = list(mxlib.DEFAULT_USERS)
        self.steps: list[Step] = []
        with open(path, encoding="utf-8") as f:
            for n, raw in enumerate(f, 1):
                self._parse_line(n, raw.rstrip("\r\n").rstrip())

    def _err(self, n: int, msg: str) -> TestFailure:
        return TestFailure(f"{self.path}:{n}: {msg}")

    def _parse_line(self, n: int, line: str) -> None:
        s = line.lstrip()
        if not s or s.startswith("#"):
            return
        op, _, arg = s.partition(" ")
        arg = arg.lstrip(" \t")
        if op.startswith("repeat"):
            m = REPEAT_BLOCK.match(s)
            if not m or int(m.group(1)) > MAX_REPEAT:
                raise self._err(n, "repeat N { D ; D } expected")
            self.steps.append(Step(n, "repeat", s))
        elif op == "config":
            self._parse_config(n, arg)
        elif op == "users":
            if self.steps:
                raise self._err(n, "users must come before the dialogue")
            self.users = None if arg == "-" else arg.split()
        elif op in ("send", "sendraw", "expect", "expect_close",
                    "expect_silence", "pause", "log", "nolog", "timeout",
                    "bind", "connect"):
            self.steps.append(Step(n, op, arg))
        else:
            raise self._err(n, f"unknown directive {op!r}")

    def _parse_config(self, n: int, arg: str) -> None:
        if self.steps:
            raise self._err(n, "config must come before the dialogue")
        words = arg.split()
        target = self.config
        if words[:1] == ["domain"]:
            if len(words) < 2:
                raise self._err(n, "config domain NAME KEY=VALUE ...")
            target = self.sections.setdefault(words[1], {})
            words = words[2:]
        for w in words:
            k, sep, v = w.partition("=")
            if not sep or not k:
                raise self._err(n, f"config: KEY=VALUE expected, got {w!r}")
            target[k] = v


class Runner:
    """Runs a Script's steps against one gateway."""

    def __init__(self, script: Script, gw: mxlib.Gateway):
        self.script, self.gw = script, gw
        self.client: mxlib.Client | None = None
        self.bind: str | None = None
        self.wait = 30.0  # a bound on each wait, not a claim of speed

    def run(self) -> None:
        try:
            for st in self.script.steps:
                self._step(st, {})
        finally:
            if self.client:
                self.client.close()

    def _conn(self) -> mxlib.Client:
        if self.client is None:
            self.client = mxlib.Client(self.gw.port, bind=self.bind,
                                       timeout_s=self.wait)
        return self.client

    def _step(self, st: Step, var: dict[str, str]) -> None:
        try:
            self._do(st, var)
        except TestFailure as e:
            raise TestFailure(f"{self.script.path}:{st.lineno}: {st.op} "
                              f"{st.arg}: {e}") from None

    def _do(self, st: Step, var: dict[str, str]) -> None:
        arg = st.arg
        for k, v in var.items():
            arg = arg.replace("$" + k, v)
        op = st.op
        if op == "repeat":
            m = REPEAT_BLOCK.match(arg)
            for i in range(1, int(m.group(1)) + 1):
                for part in m.group(2).split(";"):
                    sub_op, _, sub_arg = part.strip().partition(" ")
                    self._step(Step(st.lineno, sub_op, sub_arg.strip()),
                               {**var, "i": str(i)})
        elif op == "bind":
            self.bind = arg
        elif op == "connect":
            if self.client:
                self.client.close()
                self.client = None
            self._conn()
        elif op == "send":
            self._conn().send(unescape(arg) + b"\r\n")
        elif op == "sendraw":
            c = self._conn()
            c.send(unescape(arg))
            c.flush()
        elif op == "expect":
            self._expect(COMMENT.sub("", arg))
        elif op == "expect_close":
            self._conn().expect_close(self.wait)
        elif op == "expect_silence":
            self._conn().expect_silence(int(arg) / 1000.0)
        elif op == "pause":
            time.sleep(min(int(arg), 10000) / 1000.0)
        elif op == "log":
            self.gw.wait_log(arg, 30.0)
        elif op == "nolog":
            m = re.search(arg, self.gw.log_text(), re.M)
            if m:
                raise TestFailure(f"log has {m.group(0)!r}")
        elif op == "timeout":
            self.wait = float(arg)
            if self.client:
                self.client.timeout = self.wait
        else:
            raise TestFailure(f"unknown directive {op!r}")

    def _expect(self, pattern: str) -> None:
        want = unescape(pattern, keep_star=True)
        got = self._conn().read_line(self.wait)[:-2]
        if not glob_match(want, got):
            raise TestFailure(f"got {got.decode('latin-1')!r}")


def run_transcript(ctx: mxlib.TestContext, path: str) -> None:
    script = Script(path)
    gw = ctx.gateway(start=False, config=script.config,
                     sections=script.sections, users=script.users)
    gw.start()
    Runner(script, gw).run()
