#!/usr/bin/env python3
"""
bench.py - `make bench`: mxgate as an inbound gateway, side by side with
the protocol ceiling (smtp-sink) and Postfix, in one run (issue 6).
Python 3.11+, standard library only; everything on 127.0.0.1.
Owns: one temp folder under build/bench/ (spools, configs, logs), the
smtp-sink and mxgate processes it starts, Postfix only if it started it.
Never: signals a process it did not start; listens or connects outside
127.0.0.0/8; writes Postfix's configuration (../shared/bench/postfix/
setup.sh does that, once, as root).

Sections (BENCH_SKIP, comma-separated, leaves any of them out):
  grid      throughput: Postfix's smtp-source (one connection per message,
            -N: recipients 1user.. Nuser@example.test, all valid) against
              mxgate    relaying to an smtp-sink it starts (end-to-end count
                        and spool drained checked after every run),
              ceiling   smtp-sink alone (stores nothing; skip: "ceiling"),
              postfix   the Postfix of ../shared/bench/postfix, only with
                        BENCH_POSTFIX=1 (skip: "postfix");
            workloads 1 KB / 1 rcpt, 100 KB / 1 rcpt, 1 KB / 10 rcpts, at
            concurrency 1, 10, 50; BENCH_RUNS runs of every cell,
            interleaved (run k of every target, then run k+1), medians.
  workers   if `mxgate --help` lists `workers`: the 1 KB / 1 rcpt c=50 cell
            again with workers = 1 and workers = 2 (skip: "workers").
  idle      RSS per idle connection: BENCH_IDLE (10,000) sessions that
            said EHLO and wait, from addresses spread over 127.0.0.0/8.
  users10m  time and peak RSS of `mxgate check-config` on a users file of
            BENCH_USERS (10,000,000) names (kept in build/bench/).
  verdict   RCPT verdict latency p50/p99 inside the process
            (tests/bench/rcpt_verdict.c) with 100,000 and BENCH_USERS.
  metrics   what metrics_listen costs: CPU per message with it off and on
            (scraped once a second), BENCH_RUNS runs each, interleaved
            (bench/metrics_cost.py; skip: "metrics").
  senderauth  SPF and DKIM on vs off: MAIL and end-of-data latency, 1 KB
            c=50 throughput, as ratios, answers from a DNS server on
            loopback (bench/sender_auth.py; skip: "senderauth").

Environment: BENCH_RUNS (5), BENCH_SCALE (1: messages per run times this),
BENCH_CONCS ("1,10,50"), BENCH_BUDGET (seconds for the grid, 600: runs
that would start later are skipped and counted), BENCH_IDLE, BENCH_USERS,
BENCH_LOOKUPS (1,000,000), BENCH_SKIP, BENCH_POSTFIX.  The same as options:
bench/bench.py --help.  Results: a table on stdout, every run in
build/bench/bench-DATE.json (and build/bench/last.json);
`bench/bench.py --report build/bench/last.json` prints that table again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from benchlib import (free_port, port_open, postfix_master,  # noqa: E402
                      raise_nofile, tree_cpu)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTDIR = os.path.join(ROOT, "build", "bench")
SMTP_SOURCE = "/usr/sbin/smtp-source"
SMTP_SINK = "/usr/sbin/smtp-sink"
DOMAIN = "example.test"
NUSERS = 100_000                 # the Postfix peer's table, same names
SENDER = "bench@sender.test"
CLK = os.sysconf("SC_CLK_TCK")
RUN_TIMEOUT = 120.0              # one smtp-source run, at most
DRAIN_TIMEOUT = 60.0             # relayed mail to reach the sink
START_TIMEOUT = 60.0             # a server to answer 220
POSTFIX_QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")
POSTFIX_PORT = 25                # Postfix defaults (postfix/master.cf)
POSTFIX_SINK = 2530              # its next hop (postfix/transport)

# name, label, bytes, recipients, messages per run (c > 1; c = 1 gets half)
WORKLOADS = (("1k", "1 KB, 1 rcpt", 1024, 1, 2000),
             ("100k", "100 KB, 1 rcpt", 102_400, 1, 600),
             ("1k10r", "1 KB, 10 rcpts", 1024, 10, 1000))
SINK_SCALE = 3                   # the ceiling is fast: more messages
SECTIONS = ("grid", "ceiling", "postfix", "workers", "idle", "users10m",
            "verdict", "metrics", "senderauth")


def log(msg: str) -> None:
    print(msg, flush=True)


# ------------------------------------------------------------ machine

def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def cpu_snap() -> tuple[int, int, int]:
    """Machine-wide jiffies: (all, idle + iowait, nice)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v[:8]), v[3] + v[4], v[1]


def fs_of(path: str) -> str:
    """File system type and device of the mount that holds path."""
    best, kind = "", "?"
    path = os.path.realpath(path)
    with open("/proc/mounts") as f:
        for ln in f:
            parts = ln.split()
            if len(parts) >= 3 and (path == parts[1] or path.startswith(
                    parts[1].rstrip("/") + "/")) and len(parts[1]) > len(best):
                best, kind = parts[1], f"{parts[2]} ({parts[0]} on {parts[1]})"
    return kind


def machine() -> dict:
    model = "?"
    with open("/proc/cpuinfo") as f:
        for ln in f:
            if ln.startswith("model name"):
                model = ln.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as f:
        for ln in f:
            if ln.startswith("MemTotal:"):
                mem = f"{int(ln.split()[1]) / 1048576:.1f} GiB"
    osname = "?"
    try:
        with open("/etc/os-release") as f:
            for ln in f:
                if ln.startswith("PRETTY_NAME="):
                    osname = ln.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short",
                               "HEAD"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain",
                                "src"], capture_output=True, text=True,
                               timeout=10).stdout.splitlines()
        tree = f"{head or '?'}" + (f" + {len(dirty)} changed files under "
                                   "src/" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        tree = "?"
    return {"nproc": os.cpu_count(), "cpu": model, "mem": mem,
            "tree": tree,
            "kernel": platform.release(), "os": osname,
            "python": platform.python_version(), "loadavg_start": loadavg(),
            "spool_fs": fs_of(OUTDIR),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


# ------------------------------------------------------------ processes

def proc_cpu(pid: int, children: bool = False) -> float:
    """CPU seconds (utime + stime, every thread) of a process; with
    children, what its reaped children used too."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    ticks = int(rest[11]) + int(rest[12])
    if children:
        ticks += int(rest[13]) + int(rest[14])
    return ticks / CLK


def proc_status_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for ln in f:
            if ln.startswith(key + ":"):
                return int(ln.split()[1])
    return -1


def wait_banner(port: int, proc: subprocess.Popen | None,
                timeout: float = START_TIMEOUT) -> bool:
    """Until a 220 greeting comes from 127.0.0.1:port (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port),
                                          timeout=5) as s:
                s.settimeout(5)
                if s.recv(512).startswith(b"220"):
                    s.sendall(b"QUIT\r\n")
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def stop_proc(p: subprocess.Popen | None) -> None:
    """SIGTERM, then SIGKILL after 20 s: only for processes we started."""
    if p is None or p.poll() is not None:
        return
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(20)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(10)


class Sink:
    """smtp-sink on 127.0.0.1:port, storing nothing; -c counters to a file
    give the messages it received."""

    def __init__(self, workdir: str, port: int, name: str):
        self.port, self.name = port, name
        self.out = os.path.join(workdir, f"sink-{name}.out")
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Sink":
        cmd = [SMTP_SINK, "-c", "-m", "1000"]
        if os.geteuid() == 0:
            cmd += ["-u", "nobody"]     # required as root
        cmd += [f"127.0.0.1:{self.port}", "4096"]
        with open(self.out, "wb") as f:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                         stdout=f, stderr=subprocess.STDOUT)
        if not wait_banner(self.port, self.proc, 20):
            stop_proc(self.proc)
            raise SystemExit(f"smtp-sink ({self.name}) did not start on "
                             f"127.0.0.1:{self.port}")
        return self

    def count(self) -> int:
        """Messages received so far ('.' completed)."""
        try:
            with open(self.out, "rb") as f:
                f.seek(max(0, os.fstat(f.fileno()).st_size - 4096))
                tail = f.read()
        except OSError:
            return 0
        # complete records only ("... mesg=N\r"): a read can meet a
        # record half written, and a cut number would read too low
        m = re.findall(rb"mesg=(\d+)\r", tail)
        return int(m[-1]) if m else 0

    def stop(self) -> None:
        stop_proc(self.proc)


class Gateway:
    """One `mxgate serve` in its own folder with its own spool."""

    def __init__(self, binary: str, root: str, name: str, users: str,
                 conf: dict[str, str], nofile: int = 4096):
        self.binary, self.name, self.nofile = binary, name, nofile
        self.dir = os.path.join(root, f"gw-{name}")
        os.makedirs(os.path.join(self.dir, "spool"))
        self.port = free_port()
        self.conf_path = os.path.join(self.dir, "mxgate.conf")
        self.log_path = os.path.join(self.dir, "mxgate.log")
        settings = {"hostname": "mx.example.test",
                    "listen": f"127.0.0.1:{self.port}", "spool": "spool",
                    "domains": DOMAIN, "directory": f"file:{users}",
                    "log_level": "info",
                    # SPF off: these measure the SMTP side, not DNS
                    "spf_policy": "none"}
        settings.update(conf)
        self.settings = settings
        with open(self.conf_path, "w") as f:
            for k, v in settings.items():
                f.write(f"{k} = {v}\n")
        self.proc: subprocess.Popen | None = None

    def _preexec(self) -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        n = self.nofile if hard == resource.RLIM_INFINITY else \
            min(self.nofile, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(n, soft), hard))

    def start(self) -> "Gateway":
        with open(self.log_path, "ab") as f:
            self.proc = subprocess.Popen(
                [self.binary, "serve", "-c", self.conf_path], cwd=self.dir,
                stdin=subprocess.DEVNULL, stdout=f, stderr=f,
                preexec_fn=self._preexec)
        if not wait_banner(self.port, self.proc):
            self.stop()
            raise SystemExit(f"mxgate ({self.name}) did not start: " +
                             " / ".join(self.log_tail(5)))
        return self

    def log_tail(self, n: int) -> list[str]:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, os.fstat(f.fileno()).st_size - 8192))
                return f.read().decode("utf-8", "replace").splitlines()[-n:]
        except OSError:
            return []

    def stats(self) -> dict[str, int]:
        try:
            p = subprocess.run([self.binary, "stats", "-c", self.conf_path],
                               capture_output=True, timeout=30,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return {}
        out = {}
        for ln in p.stdout.decode("utf-8", "replace").splitlines():
            m = re.fullmatch(r"(\w+) (\d+)", ln.strip())
            if m:
                out[m.group(1)] = int(m.group(2))
        return out

    def cpu(self) -> float:
        if self.proc.poll() is not None:
            raise SystemExit(f"mxgate ({self.name}) exited with status "
                             f"{self.proc.returncode}: " +
                             " / ".join(self.log_tail(5)))
        return proc_cpu(self.proc.pid)

    def stop(self) -> None:
        stop_proc(self.proc)


# ------------------------------------------------------------ smtp-source

def smtp_source(port: int, conc: int, n: int, size: int, rcpts: int,
                timeout: float = RUN_TIMEOUT) -> dict:
    """One smtp-source run: messages accepted (its -c counter), wall time,
    its CPU (from wait4), exit status and the first error line."""
    cmd = [SMTP_SOURCE, "-c", "-N", "-s", str(conc), "-m", str(n),
           "-l", str(size), "-r", str(rcpts), "-f", SENDER,
           "-t", f"user@{DOMAIN}", "-M", "client.test",
           f"127.0.0.1:{port}"]
    out = tempfile.TemporaryFile()
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                         stderr=subprocess.STDOUT)
    timer = threading.Timer(timeout, p.kill)
    timer.daemon = True
    timer.start()
    try:
        _, status, ru = os.wait4(p.pid, 0)
    except BaseException:               # a signal: leave nothing behind
        timer.cancel()
        p.kill()
        p.wait(10)
        raise
    t1 = time.monotonic()
    p.returncode = os.waitstatus_to_exitcode(status)   # before any kill
    timer.cancel()
    out.seek(0)
    text = out.read().decode("utf-8", "replace").replace("\r", "\n")
    out.close()
    nums = [ln for ln in text.split("\n") if ln.strip().isdigit()]
    errs = [ln.strip() for ln in text.split("\n")
            if ln.strip() and not ln.strip().isdigit()]
    return {"accepted": int(nums[-1]) if nums else 0, "wall_s": t1 - t0,
            "t0": t0, "t1": t1, "client_cpu_s": ru.ru_utime + ru.ru_stime,
            "rc": p.returncode, "error": errs[0][:160] if errs else "",
            "timed_out": t1 - t0 >= timeout}


def messages(wl: tuple, conc: int, scale: float, sink: bool) -> int:
    _, _, _, rcpts, base = wl
    n = base * (SINK_SCALE if sink else 1) * (0.5 if conc == 1 else 1)
    n = max(10, int(n * scale))
    return min(n, 99_999 // rcpts)    # -N numbers stay within the users


# ------------------------------------------------------------ targets

class Target:
    name = "?"

    def run(self, wl: tuple, conc: int, scale: float) -> dict:
        raise NotImplementedError


class CeilingTarget(Target):
    """smtp-source straight into smtp-sink: the protocol ceiling."""

    def __init__(self, sink: Sink):
        self.name, self.sink = "ceiling", sink

    def run(self, wl, conc, scale):
        n = messages(wl, conc, scale, sink=True)
        c0, m0 = proc_cpu(self.sink.proc.pid), self.sink.count()
        r = smtp_source(self.sink.port, conc, n, wl[2], wl[3])
        r["server_cpu_s"] = proc_cpu(self.sink.proc.pid) - c0
        r["delivered"] = None
        r["sink_received"] = self.sink.count() - m0
        r["messages"] = n
        return r


def wait_until(cond, timeout: float, step: float = 0.005) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


class MxTarget(Target):
    """mxgate relaying to a sink: accepted rate as the client sees it,
    then the wait until the sink has every message and the spool is
    empty; CPU from the start of the run to that point."""

    def __init__(self, gw: Gateway, sink: Sink, name: str = "mxgate"):
        self.name, self.gw, self.sink = name, gw, sink

    def run(self, wl, conc, scale):
        n = messages(wl, conc, scale, sink=False)
        c0, m0 = self.gw.cpu(), self.sink.count()
        r = smtp_source(self.gw.port, conc, n, wl[2], wl[3])
        want = m0 + r["accepted"]
        reached = wait_until(lambda: self.sink.count() >= want,
                             DRAIN_TIMEOUT)
        t_sink = time.monotonic()
        st = {}
        drained = wait_until(lambda: self._empty(st), 10.0, 0.05)
        r["server_cpu_s"] = self.gw.cpu() - c0
        r["delivered"] = self.sink.count() - m0
        r["e2e_s"] = t_sink - r["t0"]
        r["drained"] = reached and drained
        r["queue"] = {k: st.get(k) for k in ("queue_active",
                                              "queue_deferred")}
        r["messages"] = n
        return r

    def _empty(self, st: dict) -> bool:
        st.clear()
        st.update(self.gw.stats())
        if "queue_active" not in st:        # stats unavailable: sink only
            return True
        return st.get("queue_active", 0) + st.get("queue_deferred", 0) == 0


def postfix_queue_len() -> int:
    n = 0
    for q in POSTFIX_QUEUES:
        for _, _, files in os.walk(f"/var/spool/postfix/{q}"):
            n += len(files)
    return n


class PostfixTarget(Target):
    """The Postfix peer on port 25; CPU over its process tree until its
    queue is empty; end to end only when the sink on 2530 is ours."""

    def __init__(self, sink: Sink | None):
        self.name, self.sink = "postfix", sink

    def run(self, wl, conc, scale):
        n = messages(wl, conc, scale, sink=False)
        master = postfix_master()
        if master is None:
            raise SystemExit("Postfix stopped during the benchmark")
        m0 = self.sink.count() if self.sink else 0
        c0 = tree_cpu(master)
        r = smtp_source(POSTFIX_PORT, conc, n, wl[2], wl[3])
        drained = wait_until(lambda: postfix_queue_len() == 0,
                             DRAIN_TIMEOUT, 0.02)
        t_drain = time.monotonic()
        r["server_cpu_s"] = tree_cpu(master) - c0
        r["delivered"] = self.sink.count() - m0 if self.sink else None
        r["e2e_s"] = t_drain - r["t0"]
        r["drained"] = drained
        r["messages"] = n
        return r


# ------------------------------------------------------------ Postfix

def postfix_check(confdir: str) -> str | None:
    """Why the installed Postfix is not the peer of confdir, or None."""
    if shutil.which("postfix") is None or shutil.which("postconf") is None:
        return "postfix is not installed"
    for name in ("main.cf", "master.cf"):
        try:
            with open(os.path.join(confdir, name), "rb") as a, \
                    open(f"/etc/postfix/{name}", "rb") as b:
                if a.read() != b.read():
                    return (f"/etc/postfix/{name} differs from "
                            f"{confdir}/{name}")
        except OSError as e:
            return str(e)
    if not os.path.exists("/etc/postfix/relay_recipients.lmdb"):
        return "/etc/postfix/relay_recipients.lmdb is missing"
    if os.geteuid() != 0:
        return "needs root (postfix start/stop, its queue folders)"
    return None


def postfix_start() -> tuple[bool, str | None]:
    """(started by us, error)."""
    if postfix_master() is not None and port_open(POSTFIX_PORT):
        return False, None
    p = subprocess.run(["postfix", "start"], capture_output=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        return False, "postfix start: " + \
            (p.stdout + p.stderr).decode("utf-8", "replace")[-300:]
    if not wait_banner(POSTFIX_PORT, None, 30):
        subprocess.run(["postfix", "stop"], capture_output=True, timeout=60)
        return False, "Postfix did not answer on 127.0.0.1:25"
    return True, None


# ------------------------------------------------------------ grid

def median(xs: list[float]) -> float | None:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def run_grid(args, root: str, users: str, results: dict) -> None:
    started_pf = False
    procs: list = []
    try:
        nexthop = Sink(root, free_port(), "nexthop").start()
        procs.append(nexthop)
        base = {"next_hop": f"smtp:127.0.0.1:{nexthop.port}",
                "max_connections": "5000",
                "max_connections_per_client": "5000",
                "max_connection_rate_per_client": "0"}
        gw = Gateway(args.binary, root, "grid", users, base).start()
        procs.append(gw)
        targets: list[Target] = [MxTarget(gw, nexthop)]
        results["mxgate_conf"] = gw.settings
        if "ceiling" not in args.skip:
            ceil = Sink(root, free_port(), "ceiling").start()
            procs.append(ceil)
            targets.append(CeilingTarget(ceil))
        if args.postfix and "postfix" not in args.skip:
            why = postfix_check(args.postfix_conf)
            pf_sink = None
            if why is None:
                if port_open(POSTFIX_SINK):
                    log(f"postfix: 127.0.0.1:{POSTFIX_SINK} is served by a "
                        "sink this run did not start: Postfix relays there,"
                        " no end-to-end count for it")
                else:
                    pf_sink = Sink(root, POSTFIX_SINK, "postfix").start()
                    procs.append(pf_sink)
                started_pf, why = postfix_start()
            if why is not None:
                log(f"postfix: skipped: {why}")
                results["postfix_skipped"] = why
            else:
                if postfix_queue_len():
                    subprocess.run(["postqueue", "-f"], capture_output=True,
                                   timeout=30)
                    if not wait_until(lambda: postfix_queue_len() == 0, 30,
                                      0.1):
                        log(f"postfix: {postfix_queue_len()} files left in"
                            " its queue before the runs")
                targets.append(PostfixTarget(pf_sink))
                results["postfix"] = subprocess.run(
                    ["postconf", "-h", "mail_version"], capture_output=True,
                    text=True).stdout.strip()
                results["postfix_started_here"] = started_pf
        wk = workers_targets(args, root, users, base, nexthop, procs,
                             results)
        warm_up(targets + wk)
        grid_loop(args, targets, wk, results)
    finally:
        for p in reversed(procs):
            p.stop()
        if started_pf:
            subprocess.run(["postfix", "stop"], capture_output=True,
                           timeout=60)


def workers_targets(args, root, users, base, sink, procs,
                    results) -> list[Target]:
    if "workers" in args.skip:
        results["workers_note"] = "skipped (BENCH_SKIP)"
        return []
    helptext = subprocess.run([args.binary, "--help"], capture_output=True,
                              text=True).stdout
    if not re.search(r"^workers\s", helptext, re.M):
        results["workers_note"] = ("skipped: `mxgate --help` lists no "
                                   "`workers` key")
        log(f"workers: {results['workers_note']}")
        return []
    out = []
    for w in (1, 2):
        gw = Gateway(args.binary, root, f"workers{w}", users,
                     dict(base, workers=str(w))).start()
        procs.append(gw)
        out.append(MxTarget(gw, sink, f"mxgate workers={w}"))
    return out


def warm_up(targets: list[Target]) -> None:
    """A short unmeasured run against each (page cache, Postfix's daemons)."""
    for t in targets:
        port = POSTFIX_PORT if isinstance(t, PostfixTarget) else \
            t.sink.port if isinstance(t, CeilingTarget) else t.gw.port
        smtp_source(port, 10, 200, 1024, 1, 60)
        if isinstance(t, MxTarget):
            st: dict = {}
            wait_until(lambda: t._empty(st), 30, 0.1)
        if isinstance(t, PostfixTarget):
            wait_until(lambda: postfix_queue_len() == 0, 30, 0.05)


def fmt_run(r: dict) -> str:
    acc = r["accepted"]
    s = (f"{acc / r['wall_s']:8.0f} msg/s  accepted {acc}/{r['messages']}"
         f"  server {1000 * r['server_cpu_s'] / max(acc, 1):.2f} "
         f"client {1000 * r['client_cpu_s'] / max(acc, 1):.2f} ms CPU/msg")
    if r.get("delivered") is not None:
        s += f"  e2e {r['delivered']}"
        if "drained" in r:
            s += "" if r["drained"] else " NOT DRAINED"
    if r["rc"] != 0 or r["error"]:
        s += f"  rc={r['rc']} {r['error'][:80]}"
    return s


def grid_loop(args, targets, wk, results) -> None:
    cells = [(wl, c) for wl in WORKLOADS for c in args.concs]
    runs = results["runs"]
    t_start = time.monotonic()
    skipped = 0
    for rep in range(args.runs):
        order = targets[rep % len(targets):] + targets[:rep % len(targets)]
        for wl, c in cells:
            extra = wk if (wl[0] == "1k" and c == max(args.concs)) else []
            for t in order + extra:
                if time.monotonic() - t_start > args.budget:
                    skipped += 1
                    continue
                s0, w0 = cpu_snap(), time.monotonic()
                r = t.run(wl, c, args.scale)
                s1 = cpu_snap()
                r["run_s"] = time.monotonic() - w0
                r["machine_busy_s"] = (s1[0] - s0[0] - s1[1] + s0[1]) / CLK
                r["machine_nice_s"] = (s1[2] - s0[2]) / CLK
                r["loadavg"] = loadavg()
                r.update({"target": t.name, "workload": wl[0], "conc": c,
                          "rep": rep + 1, "size": wl[2], "rcpts": wl[3]})
                runs.append(r)
                log(f"  [{time.monotonic() - t_start:5.0f}s] {t.name:<18}"
                    f" {wl[1]:<15} c={c:<3} run {rep + 1}/{args.runs}: "
                    f"{fmt_run(r)}")
    results["grid_seconds"] = time.monotonic() - t_start
    results["grid_skipped_runs"] = skipped
    if skipped:
        log(f"WARNING: {skipped} runs skipped: BENCH_BUDGET={args.budget:g}"
            " s reached (raise it, or lower BENCH_RUNS / BENCH_SCALE)")


# ------------------------------------------------------------ summary

def cell_stats(runs: list[dict], target: str, wl: str, c: int) -> dict:
    rs = [r for r in runs if r["target"] == target and r["workload"] == wl
          and r["conc"] == c]
    if not rs:
        return {}
    ok = [r for r in rs if r["accepted"] > 0]
    return {
        "n": len(rs),
        "rate": median([r["accepted"] / r["wall_s"] for r in ok]),
        "rates": [round(r["accepted"] / r["wall_s"], 1) for r in rs],
        "lat_ms": median([1000 * r["wall_s"] * c / r["accepted"]
                          for r in ok]),
        "server_ms": median([1000 * r["server_cpu_s"] / r["accepted"]
                             for r in ok]),
        "client_ms": median([1000 * r["client_cpu_s"] / r["accepted"]
                             for r in ok]),
        "short": sum(r["accepted"] < r["messages"] for r in rs),
        "e2e_bad": sum(1 for r in rs if r.get("drained") is False or (
            r.get("delivered") is not None and
            r["delivered"] < r["accepted"])),
    }


def f0(x) -> str:
    return "-" if x is None else f"{x:,.0f}"


def f2(x) -> str:
    return "-" if x is None else f"{x:.2f}"


def ratio(a, b) -> str:
    return "-" if a is None or not b else f"{a / b:.2f}"


def grid_table(results: dict, concs: list[int]) -> list[str]:
    runs = results["runs"]
    hdr = ("workload", "c", "mxgate", "(min..max)", "ceiling", "Postfix",
           "mx/pf", "mx/ceil", "mx CPU", "pf CPU", "client", "mx e2e")
    rows = [hdr, ("", "", "msg/s", "", "msg/s", "msg/s", "", "", "ms/msg",
                  "ms/msg", "ms/msg", "")]
    notes = []
    for wl in WORKLOADS:
        for c in concs:
            mx = cell_stats(runs, "mxgate", wl[0], c)
            ce = cell_stats(runs, "ceiling", wl[0], c)
            pf = cell_stats(runs, "postfix", wl[0], c)
            if not mx and not ce and not pf:
                continue
            e2e = "-" if not mx else \
                f"{mx['n'] - mx['e2e_bad']}/{mx['n']} ok"
            spread = "-" if not mx.get("rates") else \
                f"{min(mx['rates']):.0f}..{max(mx['rates']):.0f}"
            rows.append((wl[1], str(c), f0(mx.get("rate")), spread,
                         f0(ce.get("rate")), f0(pf.get("rate")),
                         ratio(mx.get("rate"), pf.get("rate")),
                         ratio(mx.get("rate"), ce.get("rate")),
                         f2(mx.get("server_ms")), f2(pf.get("server_ms")),
                         f2(mx.get("client_ms")), e2e))
            for nm, st in (("mxgate", mx), ("ceiling", ce),
                           ("Postfix", pf)):
                if st and st["short"]:
                    notes.append(f"{nm} {wl[1]} c={c}: {st['short']} of "
                                 f"{st['n']} runs ended before every "
                                 "message was accepted (see the JSON)")
                if st and nm == "Postfix" and st["e2e_bad"]:
                    notes.append(f"Postfix {wl[1]} c={c}: {st['e2e_bad']} "
                                 "runs not drained (or not all at the "
                                 "sink) in time: its CPU is short")
    w = [max(len(r[i]) for r in rows) for i in range(len(hdr))]
    out = []
    for i, r in enumerate(rows):
        out.append("  ".join(r[j].ljust(w[j]) if j < 2 else r[j].rjust(w[j])
                             for j in range(len(hdr))).rstrip())
        if i == 1:
            out.append("  ".join("-" * x for x in w))
    return out + notes


def background_line(results: dict) -> str:
    """How much of the machine other processes took during the runs."""
    rs = [r for r in results["runs"] if "machine_busy_s" in r]
    if not rs:
        return ""
    cap = sum(r["run_s"] for r in rs) * (os.cpu_count() or 1)
    nice = sum(r["machine_nice_s"] for r in rs)
    other = sum(r["machine_busy_s"] - r["machine_nice_s"] -
                r["server_cpu_s"] - r["client_cpu_s"] for r in rs)
    loads = [float(r["loadavg"].split()[0]) for r in rs]
    return (f"during the runs: nice processes (the background fuzzer) "
            f"{100 * nice / cap:.0f}% of the machine's CPU, other processes"
            f" (this script, the next-hop sink, the kernel, other users) "
            f"{100 * max(other, 0) / cap:.0f}%; 1-min load "
            f"average {min(loads):.2f} .. {max(loads):.2f}")


def latency_lines(results: dict) -> list[str]:
    runs = results["runs"]
    out = ["c=1 latency per message (ms; connect to QUIT, one at a time):"]
    for wl in WORKLOADS:
        mx = cell_stats(runs, "mxgate", wl[0], 1)
        pf = cell_stats(runs, "postfix", wl[0], 1)
        ce = cell_stats(runs, "ceiling", wl[0], 1)
        if mx or pf:
            out.append(f"  {wl[1]:<15} mxgate {f2(mx.get('lat_ms')):>6}  "
                       f"Postfix {f2(pf.get('lat_ms')):>6}  "
                       f"ceiling {f2(ce.get('lat_ms')):>6}")
    return out if len(out) > 1 else []


def workers_lines(results: dict, concs: list[int]) -> list[str]:
    runs, c = results["runs"], max(concs)
    w1 = cell_stats(runs, "mxgate workers=1", "1k", c)
    w2 = cell_stats(runs, "mxgate workers=2", "1k", c)
    if not w1 or not w2:
        return [f"workers: {results.get('workers_note', 'skipped')}"]
    return [f"workers (1 KB, 1 rcpt, c={c}): workers=1 {f0(w1['rate'])} "
            f"msg/s (server {f2(w1['server_ms'])}, client "
            f"{f2(w1['client_ms'])} ms CPU/msg); workers=2 "
            f"{f0(w2['rate'])} msg/s (server {f2(w2['server_ms'])}, client "
            f"{f2(w2['client_ms'])}); 2/1 = {ratio(w2['rate'], w1['rate'])}"]


# ------------------------------------------------------------ idle

async def idle_conn(port: int, src: str, sem: asyncio.Semaphore,
                    state: dict, stop: asyncio.Event, held: list) -> None:
    async with sem:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port,
                                        local_addr=(src, 0)), 30)
        except (OSError, asyncio.TimeoutError):
            state["connect_failed"] += 1
            return
        held.append(writer)
        try:
            line = await asyncio.wait_for(reader.readline(), 30)
            if not line.startswith(b"220"):
                state["refused"] += 1
                return
            writer.write(b"EHLO idle.test\r\n")
            while True:
                line = await asyncio.wait_for(reader.readline(), 30)
                if not line.startswith(b"250"):
                    state["refused"] += 1
                    return
                if line[3:4] == b" ":
                    break
        except (OSError, asyncio.TimeoutError):
            state["refused"] += 1
            return
    state["idle"] += 1
    await stop.wait()


async def idle_main(gw: Gateway, n: int, settle: float) -> dict:
    state = {"idle": 0, "connect_failed": 0, "refused": 0}
    stop, held = asyncio.Event(), []
    sem = asyncio.Semaphore(256)
    nsrc = max(1, n // 20)              # 20 sessions an address
    srcs = [f"127.{100 + i // 250}.{i % 250}.{1 + i % 7}"
            for i in range(nsrc)]
    rss0 = proc_status_kb(gw.proc.pid, "VmRSS")
    t0 = time.monotonic()
    tasks = [asyncio.create_task(idle_conn(gw.port, srcs[i % nsrc], sem,
                                           state, stop, held))
             for i in range(n)]
    deadline = t0 + 180
    while time.monotonic() < deadline and \
            state["idle"] + state["connect_failed"] + state["refused"] < n:
        await asyncio.sleep(0.1)
    ready = time.monotonic() - t0
    await asyncio.sleep(settle)
    rss1 = proc_status_kb(gw.proc.pid, "VmRSS")
    hwm = proc_status_kb(gw.proc.pid, "VmHWM")
    stats = await asyncio.to_thread(gw.stats)
    c0 = gw.cpu()
    await asyncio.sleep(5)
    cpu5 = gw.cpu() - c0
    idle_after = state["idle"]
    stop.set()
    for w in held:
        w.transport.abort()
    await asyncio.wait(tasks, timeout=20)
    return dict(state, n=n, sources=nsrc, rss_before_kb=rss0,
                rss_after_kb=rss1, hwm_kb=hwm, ready_s=ready,
                sessions_open=stats.get("sessions_open"),
                cpu_5s=cpu5, idle_at_end=idle_after)


def run_idle(args, root: str, users: str, results: dict) -> None:
    n = args.idle
    have = raise_nofile(n + 2048)
    if have < n + 256:
        results["idle"] = {"skipped": f"RLIMIT_NOFILE {have}"}
        log(f"idle: skipped, RLIMIT_NOFILE is {have}")
        return
    conf = {"next_hop": "maildir:mail",
            # room for n sessions below 80% of it (no stress mode)
            "max_connections": str(2 * n + 100)}
    gw = Gateway(args.binary, root, "idle", users, conf, n + 2048).start()
    try:
        time.sleep(0.5)
        r = asyncio.run(idle_main(gw, n, 2.0))
    finally:
        gw.stop()
    r["per_conn_bytes"] = (r["rss_after_kb"] - r["rss_before_kb"]) * 1024 \
        / max(r["idle"], 1)
    results["idle"] = r
    log(f"idle: {idle_line(r)}")


def idle_line(r: dict) -> str:
    if "skipped" in r:
        return f"skipped ({r['skipped']})"
    return (f"{r['idle']} of {r['n']} sessions idle after EHLO, from "
            f"{r['sources']} addresses (gateway says sessions_open="
            f"{r['sessions_open']}; failed {r['connect_failed']}, refused "
            f"{r['refused']}; set up in {r['ready_s']:.1f} s); RSS "
            f"{r['rss_before_kb'] / 1024:.1f} -> "
            f"{r['rss_after_kb'] / 1024:.1f} MiB: "
            f"{r['per_conn_bytes']:,.0f} bytes per connection "
            f"(target 8,192); CPU while idle {r['cpu_5s']:.2f} s over 5 s")


# ------------------------------------------------------------ users

def write_users(path: str, n: int) -> None:
    """The benchmark's names, user@.. (n-1)user@example.test.  Kept between
    runs (written to a temp name, then renamed)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"user@{DOMAIN}\n")
        step = 200_000
        for lo in range(1, n, step):
            f.write("".join(f"{i}user@{DOMAIN}\n"
                            for i in range(lo, min(n, lo + step))))
    os.replace(tmp, path)


def users_file(n: int) -> str:
    path = os.path.join(OUTDIR, f"users-{n}.txt")
    expect = len(f"user@{DOMAIN}\n") + sum(
        (hi - lo) * (len(str(lo)) + len(f"user@{DOMAIN}\n"))
        for lo, hi in _digit_ranges(n))
    if not os.path.exists(path) or os.path.getsize(path) != expect:
        t0 = time.monotonic()
        write_users(path, n)
        log(f"users: wrote {n:,} names to {os.path.relpath(path, ROOT)} in "
            f"{time.monotonic() - t0:.1f} s")
    return path


def _digit_ranges(n: int):
    lo = 1
    while lo < n:
        hi = min(n, lo * 10)
        yield lo, hi
        lo = hi


# ru_maxrss keeps the high-water mark of the memory a process had before
# exec, i.e. its parent's at fork: a fresh small interpreter starts the
# command and reports the command's rusage, so the figure is the command's
# own (with a floor of that interpreter's few MiB).
RUSAGE_LAUNCHER = """
import os, sys, time
t0 = time.monotonic()
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ)
_, st, ru = os.wait4(pid, 0)
print("rusage", os.waitstatus_to_exitcode(st), ru.ru_maxrss,
      ru.ru_utime + ru.ru_stime, time.monotonic() - t0, file=sys.stderr)
"""


def check_config(binary: str, root: str, users: str, name: str) -> dict:
    conf = os.path.join(root, f"check-{name}.conf")
    with open(conf, "w") as f:
        f.write(f"hostname = mx.example.test\ndomains = {DOMAIN}\n"
                f"directory = file:{users}\nspool = spool-{name}\n")
    t0 = time.monotonic()
    try:
        p = subprocess.run([sys.executable, "-S", "-c", RUSAGE_LAUNCHER,
                            binary, "check-config", "-c", conf],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=300)
        wall = time.monotonic() - t0
        m = re.search(rb"^rusage (-?\d+) (\d+) ([\d.]+) ([\d.]+)$",
                      p.stderr, re.M)
    except subprocess.TimeoutExpired:
        wall, m, p = time.monotonic() - t0, None, None
    if m is None:
        return {"users": name, "wall_s": wall, "max_rss_kb": 0,
                "cpu_s": 0.0, "rc": -1, "output": "no result" if p is None
                else (p.stdout + p.stderr).decode("utf-8", "replace")[-300:]}
    return {"users": name, "wall_s": float(m.group(4)),
            "max_rss_kb": int(m.group(2)),
            "cpu_s": float(m.group(3)), "rc": int(m.group(1)),
            "output": (p.stdout + p.stderr[:m.start()]).decode(
                "utf-8", "replace").strip()[-300:]}


def run_users10m(args, root: str, users100k: str, results: dict) -> None:
    path = users_file(args.users)
    rs = [check_config(args.binary, root, users100k, "100k"),
          check_config(args.binary, root, path, str(args.users))]
    results["users_load"] = rs
    for r in rs:
        log(f"users load: {users_line(r)}")


def users_line(r: dict) -> str:
    return (f"check-config with {r['users']} users: {r['wall_s']:.2f} s wall,"
            f" {r['cpu_s']:.2f} s CPU, max RSS {r['max_rss_kb'] / 1024:.0f} "
            f"MiB (rc={r['rc']}: "
            f"{r['output'].splitlines()[-1].rsplit(': ', 1)[-1][:90]})")


# ------------------------------------------------------------ verdict

def run_verdict(args, users100k: str, results: dict) -> None:
    out = []
    sets = [(users100k, NUSERS)]
    if "users10m" not in args.skip or os.path.exists(
            os.path.join(OUTDIR, f"users-{args.users}.txt")):
        sets.append((users_file(args.users), args.users))
    for path, n in sets:
        p = subprocess.run([args.verdict, "-f", path, "-n", str(n), "-l",
                            str(args.lookups)], capture_output=True,
                           text=True, timeout=600, stdin=subprocess.DEVNULL)
        kv = dict(re.findall(r"(\w+)=([\d.]+)", p.stdout))
        kv = {k: float(v) if "." in v else int(v) for k, v in kv.items()}
        kv["rc"] = p.returncode
        if p.returncode != 0:
            kv["error"] = (p.stdout + p.stderr)[-300:]
        out.append(kv)
        log(f"verdict: {verdict_line(kv)}")
    results["verdict"] = out


def verdict_line(kv: dict) -> str:
    if "all_p50_ns" not in kv:
        return f"failed (rc={kv['rc']}): {kv.get('error', '')}"
    return (f"{kv['users']:,} users: p50 {kv['all_p50_ns']:,} ns, p99 "
            f"{kv['all_p99_ns']:,} ns (valid p99 {kv['valid_p99_ns']:,}, "
            f"unknown p99 {kv['unknown_p99_ns']:,}; mean "
            f"{kv['mean_ns']:,} ns) over {kv['lookups']:,} RCPTs, "
            f"{kv['valid_pct']}% valid; guard tarpit verdicts "
            f"{kv['guard_tarpit']:,}, uniform {kv['uniform']:,}, cutoff "
            f"{kv['cutoff']:,}; "
            f"wrong {kv['wrong']}" + ("" if kv["rc"] == 0 else " FAILED"))


# ------------------------------------------------------------ main

def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", default=os.path.join(ROOT, "build/mxgate"))
    ap.add_argument("--verdict",
                    default=os.path.join(ROOT, "build/bench/rcpt_verdict"))
    ap.add_argument("--runs", type=int,
                    default=int(os.environ.get("BENCH_RUNS", "5")))
    ap.add_argument("--scale", type=float,
                    default=float(os.environ.get("BENCH_SCALE", "1")))
    ap.add_argument("--concs", default=os.environ.get("BENCH_CONCS",
                                                      "1,10,50"))
    ap.add_argument("--budget", type=float,
                    default=float(os.environ.get("BENCH_BUDGET", "600")))
    ap.add_argument("--idle", type=int,
                    default=int(os.environ.get("BENCH_IDLE", "10000")))
    ap.add_argument("--users", type=int,
                    default=int(os.environ.get("BENCH_USERS", "10000000")))
    ap.add_argument("--lookups", type=int,
                    default=int(os.environ.get("BENCH_LOOKUPS", "1000000")))
    ap.add_argument("--skip", default=os.environ.get("BENCH_SKIP", ""),
                    help="comma-separated: " + ",".join(SECTIONS))
    ap.add_argument("--postfix", action="store_true",
                    default=os.environ.get("BENCH_POSTFIX") == "1")
    ap.add_argument("--postfix-conf", default=os.path.join(
        os.path.dirname(ROOT), "shared", "bench", "postfix"))
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--report", metavar="JSON",
                    help="print the summary of an earlier run and exit")
    args = ap.parse_args()
    args.skip = {x.strip() for x in args.skip.split(",") if x.strip()}
    bad = args.skip - set(SECTIONS)
    if bad:
        ap.error(f"unknown BENCH_SKIP part(s): {','.join(sorted(bad))}")
    args.concs = [int(x) for x in args.concs.split(",") if x.strip()]
    args.binary = os.path.abspath(args.binary)
    args.verdict = os.path.abspath(args.verdict)
    return args


def run_metrics_cost(args, results: dict) -> None:
    """bench/metrics_cost.py's lines: the same binary with metrics_listen
    off and on, its own gateways (bounded runs, stopped by PID)."""
    p = subprocess.run([sys.executable, os.path.join(ROOT, "bench",
                                                     "metrics_cost.py"),
                        "--binary", args.binary, "--runs", str(args.runs)],
                       capture_output=True, text=True, timeout=3600)
    results["metrics_cost"] = p.stdout if p.returncode == 0 else (
        f"failed (exit {p.returncode}): {p.stderr.strip()[-300:]}")


def run_sender_auth(args, results: dict) -> None:
    """bench/sender_auth.py's lines: SPF and DKIM on and off (its own
    gateways and DNS server, bounded runs, stopped by PID)."""
    p = subprocess.run([sys.executable, os.path.join(ROOT, "bench",
                                                     "sender_auth.py"),
                        "--binary", args.binary,
                        "--runs", str(min(args.runs, 3))],
                       capture_output=True, text=True, timeout=3600)
    results["sender_auth"] = p.stdout if p.returncode == 0 else (
        f"failed (exit {p.returncode}): {p.stderr.strip()[-300:]}")


def print_summary(args, results: dict) -> None:
    m = results["machine"]
    log("")
    log("=" * 78)
    log(f"mxgate bench  {m['date']}  nproc={m['nproc']}  cpu=\"{m['cpu']}\""
        f"  {m['mem']}  kernel {m['kernel']}  {m['os']}")
    log(f"load average: {m['loadavg_start']} at start, "
        f"{results['loadavg_end']} at end; spool on {m['spool_fs']}")
    log(f"mxgate built from {m['tree']}")
    if "grid" not in args.skip and results["runs"]:
        pf = results.get("postfix")
        log(f"throughput: medians of {args.runs} runs a cell, smtp-source "
            "one connection per message; mxgate relays to smtp-sink"
            + (f"; Postfix {pf}" if pf else "; Postfix not run"
               + (f" ({results['postfix_skipped']})"
                  if "postfix_skipped" in results else
                  " (BENCH_POSTFIX=1 adds it)")))
        conf = results.get("mxgate_conf", {})
        log("mxgate settings: " + ", ".join(
            f"{k}={v}" for k, v in conf.items() if k.startswith("max_")) +
            ", the rest defaults (workers: one loop per core unless set)")
        for ln in grid_table(results, args.concs):
            log(ln)
        for ln in latency_lines(results) + workers_lines(results,
                                                         args.concs):
            log(ln)
        log(background_line(results))
    if "idle" in results:
        log(f"idle connections: {idle_line(results['idle'])}")
    for r in results.get("users_load", []):
        log(f"users load: {users_line(r)}")
    for kv in results.get("verdict", []):
        log(f"RCPT verdict: {verdict_line(kv)}")
    for ln in results.get("metrics_cost", "").splitlines():
        log(f"metrics cost: {ln.strip()}")
    for ln in results.get("sender_auth", "").splitlines():
        log(f"SPF+DKIM: {ln.strip()}")
    log(f"total {results['seconds']:.0f} s; raw results: "
        f"{os.path.relpath(results['json'], ROOT)}")


def on_term(signum, frame) -> None:
    raise SystemExit(f"stopped by signal {signum}")   # cleanup still runs


def main() -> int:
    signal.signal(signal.SIGTERM, on_term)
    args = parse_args()
    if args.report:
        with open(args.report) as f:
            results = json.load(f)
        for k in ("runs", "concs"):
            setattr(args, k, results["args"][k])
        args.skip = set(results["args"]["skip"])
        print_summary(args, results)
        return 0
    for tool in (SMTP_SOURCE, SMTP_SINK):
        if "grid" not in args.skip and not os.access(tool, os.X_OK):
            raise SystemExit(f"{tool} is missing (Debian package postfix)")
    os.makedirs(OUTDIR, exist_ok=True)
    raise_nofile(8192)
    t0 = time.monotonic()
    results: dict = {"machine": machine(), "args": {
        k: (sorted(v) if isinstance(v, set) else v)
        for k, v in vars(args).items()}, "runs": []}
    m = results["machine"]
    log(f"machine: nproc={m['nproc']} cpu=\"{m['cpu']}\" mem={m['mem']} "
        f"kernel={m['kernel']} ({m['os']}) loadavg=\"{m['loadavg_start']}\"")
    log(f"mxgate: {args.binary}; spool and logs under "
        f"{os.path.relpath(OUTDIR, ROOT)}/ ({m['spool_fs']})")
    root = tempfile.mkdtemp(prefix="run-", dir=OUTDIR)
    try:
        users = os.path.join(root, "users-100k.txt")
        write_users(users, NUSERS)
        if "grid" not in args.skip:
            log(f"== throughput grid: {args.runs} runs a cell, concurrency "
                f"{args.concs}, scale {args.scale:g}")
            run_grid(args, root, users, results)
        if "idle" not in args.skip:
            log(f"== idle: {args.idle} connections")
            run_idle(args, root, users, results)
        if "users10m" not in args.skip:
            log(f"== users: load {args.users:,} with check-config")
            run_users10m(args, root, users, results)
        if "verdict" not in args.skip:
            log("== RCPT verdict latency")
            run_verdict(args, users, results)
        if "metrics" not in args.skip:
            log("== metrics_listen off and on: CPU per message")
            run_metrics_cost(args, results)
        if "senderauth" not in args.skip:
            log("== SPF and DKIM on and off: latency, throughput")
            run_sender_auth(args, results)
    finally:
        results["seconds"] = time.monotonic() - t0
        results["loadavg_end"] = loadavg()
        stamp = time.strftime("%Y%m%d-%H%M%S")
        results["json"] = os.path.join(OUTDIR, f"bench-{stamp}.json")
        for r in results["runs"]:
            r.pop("t0", None)
            r.pop("t1", None)
        with open(results["json"], "w") as f:
            json.dump(results, f, indent=1)
        shutil.copyfile(results["json"], os.path.join(OUTDIR, "last.json"))
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print_summary(args, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
