"""
benchlib.py - what the benchmarks share: loopback ports, the Postfix
peer's master process, the file-descriptor limit, the CPU time of a
process tree read from /proc, a blocking SMTP session for timing one
command at a time, and the two-sample Kolmogorov-Smirnov test.
Standard library only; imported by bench/bench.py, bench/harvest.py and
bench/timing.py (each puts bench/ on sys.path, which Python does for a
script's own folder).
"""

from __future__ import annotations

import math
import os
import resource
import socket
import time

CLK = os.sysconf("SC_CLK_TCK")
POSTFIX_PID = "/var/spool/postfix/pid/master.pid"


class Closed(ConnectionError):
    """The server closed the connection before a whole reply."""


class SyncClient:
    """A blocking SMTP session from source address src, past EHLO and
    MAIL FROM, so that the next command is a RCPT."""

    def __init__(self, port: int, src: str, helo: str = "bench.test"):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10,
                                          source_address=(src, 0))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.s.makefile("rb")
        self.reply()
        self.cmd(f"EHLO {helo}")
        self.cmd("MAIL FROM:<x@remote.test>")

    def reply(self) -> bytes:
        out = b""
        while True:
            ln = self.f.readline()
            if not ln:
                raise Closed("closed by the server")
            out += ln
            if ln[3:4] != b"-":
                return out

    def cmd(self, line: str) -> bytes:
        self.s.sendall(line.encode() + b"\r\n")
        return self.reply()

    def timed(self, line: str) -> tuple[bytes, float]:
        """The reply to line and the microseconds from send to reply."""
        data = line.encode() + b"\r\n"
        t0 = time.perf_counter_ns()
        self.s.sendall(data)
        r = self.reply()
        return r, (time.perf_counter_ns() - t0) / 1e3

    def close(self, quit: bool = False) -> None:
        if quit:
            try:
                self.s.sendall(b"QUIT\r\n")
                self.reply()
            except OSError:
                pass
        self.f.close()
        self.s.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def postfix_master() -> int | None:
    """PID of a running Postfix master, from its pid file."""
    try:
        with open(POSTFIX_PID) as f:
            pid = int(f.read().split()[0])
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError, IndexError):
        return None


def raise_nofile(want: int) -> int:
    """Raise our RLIMIT_NOFILE towards want (the hard limit too, if we may);
    returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and want > hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
        except (ValueError, OSError):
            want = hard
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def proc_tree(root: int) -> list[int]:
    """root and every process below it."""
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    seen, stack = [], [root]
    while stack:
        p = stack.pop()
        if p not in seen:
            seen.append(p)
            stack += kids.get(p, [])
    return seen


def tree_cpu(root: int) -> float:
    """CPU seconds of a process tree (e.g. Postfix's master and its
    daemons), with what its reaped children used."""
    total = 0
    for p in proc_tree(root):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15])
        except (OSError, ValueError):
            pass
    return total / CLK


def ks_2samp(a: list[float], b: list[float]) -> float:
    """The two-sample Kolmogorov-Smirnov statistic D (ties handled)."""
    a, b = sorted(a), sorted(b)
    n, m = len(a), len(b)
    i = j = 0
    d = 0.0
    while i < n and j < m:
        x = min(a[i], b[j])
        while i < n and a[i] == x:
            i += 1
        while j < m and b[j] == x:
            j += 1
        d = max(d, abs(i / n - j / m))
    return d


def kolmogorov_sf(lam: float) -> float:
    """P(K > lam), K the Kolmogorov distribution (asymptotic)."""
    if lam <= 0.0:
        return 1.0
    if lam < 1.18:
        s = sum(math.exp(-((2 * k - 1) ** 2) * math.pi ** 2 / (8 * lam * lam))
                for k in range(1, 50))
        return max(0.0, min(1.0, 1.0 - math.sqrt(2 * math.pi) / lam * s))
    s = sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam)
            for k in range(1, 101))
    return max(0.0, min(1.0, 2.0 * s))


def ks_pvalue(d: float, n: int, m: int) -> float:
    """The asymptotic p-value of D for samples of n and m."""
    return kolmogorov_sf(math.sqrt(n * m / (n + m)) * d)
