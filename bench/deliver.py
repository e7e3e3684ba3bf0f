#!/usr/bin/env python3
"""
deliver.py - delivery throughput of mxgate from its spool to a next hop.
Owns: one private temp folder per run, a gateway (tests/e2e/mxlib.py) whose
next hop is down while N messages are injected (Postfix's smtp-source, or
smtplib threads) and deferred; then the next hop comes up (Postfix's
smtp-sink storing nothing, or Dovecot LMTP with Maildir via
tests/e2e/peers.py), `mxgate queue flush`, and the time until SPOOL/queue
is empty, with the gateway's CPU time over that phase (/proc/PID/stat).
Never: listens or connects outside 127.0.0.1; signals a process it did
not start.  Python 3.11+, standard library only.

Usage: python3 bench/deliver.py [--messages N] [--size BYTES] [--rcpts R]
           [--hop smtp|lmtp|both] [--runs K] [--concurrency C] [--keep]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))

import mxlib  # noqa: E402  (the e2e fixtures: Gateway, free_port)
import peers  # noqa: E402  (Dovecot, port_open, open_for_others)

SMTP_SOURCE = "/usr/sbin/smtp-source"
SENDER = "x@remote.test"
DOMAIN = "example.test"
SOURCE_SESSIONS = 8  # concurrent injecting connections
FILL_TIMEOUT = 600.0  # seconds to inject and defer every message
CTL_TIMEOUT = 10.0  # seconds for one `mxgate queue|stats` command
POLL_S = 0.005  # spool folder poll interval during the timed phase


# ---------------------------------------------------------------- machine

def machine() -> str:
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    return (f"nproc={os.cpu_count()} cpu=\"{model}\" "
            f"kernel={platform.release()} python={platform.python_version()} "
            f"loadavg=\"{load}\"")


def cpu_seconds(pid: int, children: bool = False) -> float:
    """utime + stime of every thread of pid so far (and of its reaped
    children, with children=True)."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    ticks = int(rest[11]) + int(rest[12])
    if children:
        ticks += int(rest[13]) + int(rest[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of pid and of its living descendants (Dovecot's lmtp
    workers), with what its dead children used."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += cpu_seconds(p, children=(p == pid))
        except (OSError, IndexError, ValueError):
            continue
        todo += peers._children_of(p)
    return total


# ---------------------------------------------------------------- users

def recipients(rcpts: int) -> list[str]:
    """What smtp-source -r R -t alice@D sends: alice, 2alice .. Ralice."""
    return [f"alice@{DOMAIN}"] + [f"{i}alice@{DOMAIN}"
                                  for i in range(2, rcpts + 1)]


# ---------------------------------------------------------------- inject

def inject_source(port: int, n: int, size: int, rcpts: int) -> None:
    cmd = [SMTP_SOURCE, "-d", "-s", str(min(SOURCE_SESSIONS, n)),
           "-m", str(n), "-l", str(size), "-r", str(rcpts),
           "-f", SENDER, "-t", f"alice@{DOMAIN}", "-M", "client.test",
           "-S", "bench", f"127.0.0.1:{port}"]
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=FILL_TIMEOUT)
    if r.returncode != 0:
        mxlib.fail(f"smtp-source exited {r.returncode}: "
                   + (r.stdout + r.stderr).decode("utf-8", "replace")[-400:])


def python_message(size: int) -> bytes:
    head = (f"From: <{SENDER}>\r\nTo: <alice@{DOMAIN}>\r\n"
            "Subject: bench\r\n\r\n").encode()
    line = b"X" * 78 + b"\r\n"
    body = line * (size // len(line)) + b"X" * (size % len(line)) + b"\r\n"
    return head + body


def inject_python(port: int, n: int, size: int, rcpts: int) -> None:
    """SOURCE_SESSIONS smtplib connections, each sending its share."""
    msg, to, errors = python_message(size), recipients(rcpts), []

    def worker(count: int) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test",
                              timeout=60) as s:
                for _ in range(count):
                    s.sendmail(SENDER, to, msg)
        except (OSError, smtplib.SMTPException) as e:
            errors.append(repr(e))
    k = min(SOURCE_SESSIONS, n)
    ts = [threading.Thread(target=worker, args=(n // k + (i < n % k),))
          for i in range(k)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(FILL_TIMEOUT)
    if errors or any(t.is_alive() for t in ts):
        mxlib.fail(f"injection failed: {errors[:3]}")


# ---------------------------------------------------------------- peers

class Sink:
    """smtp-sink on 127.0.0.1:port, storing nothing."""

    def __init__(self, port: int, workdir: str):
        self.port, self.log = port, os.path.join(workdir, "smtp-sink.log")
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Sink":
        cmd = [peers.SMTP_SINK, "-h", "sink.test"]
        if os.geteuid() == 0:
            cmd += ["-u", "nobody"]
        cmd += [f"127.0.0.1:{self.port}", "256"]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log)
        mxlib.wait_until(lambda: self.proc.poll() is not None or
                         peers.port_open(self.port), peers.PEER_START_TIMEOUT,
                         "smtp-sink to listen")
        mxlib.check(self.proc.poll() is None, "smtp-sink exited at start")
        return self

    def stop(self) -> None:
        peers._stop_process(self.proc, "smtp-sink")

    def pid(self) -> int:
        return self.proc.pid

    def delivered(self, rcpts: list[str]) -> int | None:
        return None  # it stores nothing: the gateway's log is the count


class Lmtp:
    """Dovecot LMTP on 127.0.0.1:port, Maildir under workdir/dovecot."""

    def __init__(self, port: int, workdir: str, users: list[str]):
        self.dc = peers.Dovecot(os.path.join(workdir, "dovecot"), users, port)

    def start(self) -> "Lmtp":
        self.dc.start()
        return self

    def stop(self) -> None:
        self.dc.stop()

    def pid(self) -> int:
        return self.dc.proc.pid

    def delivered(self, rcpts: list[str]) -> int:
        return sum(len(self.dc.maildir_files(r)) for r in rcpts)


# ---------------------------------------------------------------- gateway

def ctl(gw: mxlib.Gateway, *args: str) -> str:
    r = subprocess.run([gw.binary, *args, "-c", gw.conf_path],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=CTL_TIMEOUT, cwd=gw.cwd)
    out = (r.stdout + r.stderr).decode("utf-8", "replace")
    mxlib.check(r.returncode == 0, f"mxgate {' '.join(args)}: exit "
                f"{r.returncode}: {out.strip()}")
    return out


def stats(gw: mxlib.Gateway) -> dict[str, int]:
    out = {}
    for line in ctl(gw, "stats").splitlines():
        k, _, v = line.partition(" ")
        if v.strip().isdigit():
            out[k] = int(v)
    return out


def queue_count(spool: str) -> int:
    with os.scandir(os.path.join(spool, "queue")) as it:
        return sum(1 for e in it if not e.name.startswith("."))


def log_problems(gw: mxlib.Gateway, since: int) -> list[str]:
    return [ln for ln in gw.log_text(since).splitlines()
            if " level=error " in ln or " level=warning " in ln
            or " event=deferred " in ln or " event=failed " in ln]


# ---------------------------------------------------------------- one run

def run_once(args, hop: str, workdir: str) -> dict:
    binary = os.path.join(ROOT, "build", "mxgate")
    rcpts = recipients(args.rcpts)
    port = mxlib.free_port()
    conf = {"hostname": "mx.example.test", "domains": DOMAIN,
            "next_hop": f"{hop}:127.0.0.1:{port}", "log_level": "info",
            "retry_min": "1h", "retry_max": "1h",
            "smtp_connect_timeout": "5s", "smtp_timeout": "60s",
            "max_recipients": str(max(100, args.rcpts)),
            "relayhost": f"127.0.0.1:{mxlib.free_port()}"}  # never MX
    if args.concurrency:
        conf["next_hop_concurrency"] = str(args.concurrency)
    peers.open_for_others(workdir)
    gw = mxlib.Gateway(binary, os.path.join(workdir, "gw"), cwd=workdir,
                       config=conf, users=rcpts)
    peer = (Sink(port, workdir) if hop == "smtp"
            else Lmtp(port, workdir, rcpts))
    try:
        gw.start()
        t = time.monotonic()
        (inject_source if args.injector == "smtp-source"
         else inject_python)(gw.port, args.messages, args.size, args.rcpts)

        def all_deferred():
            s = stats(gw)
            return (s.get("queue_deferred") == args.messages
                    and s.get("queue_active") == 0)
        mxlib.wait_until(all_deferred, FILL_TIMEOUT,
                         f"{args.messages} deferred messages", 0.1)
        fill_s = time.monotonic() - t
        queued = len(gw.events("queued"))
        mxlib.check_eq(queued, args.messages, "event=queued lines")
        mxlib.check_eq(queue_count(gw.spool_dir), args.messages,
                       "files in SPOOL/queue")

        peer.start()
        mark = gw.log_mark()
        pid = gw.proc.pid
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        ctl(gw, "queue", "flush")
        deadline = t0 + args.timeout
        left = args.messages
        while (left := queue_count(gw.spool_dir)) > 0 and \
                time.monotonic() < deadline and gw.running:
            time.sleep(POLL_S)
        t1 = time.monotonic()
        cpu1 = cpu_seconds(pid) if gw.running else float("nan")
        peer_cpu = tree_cpu_seconds(peer.pid())  # started just before t0
        problems = log_problems(gw, mark)
        delivered = len(gw.events("delivered", since=mark))
        stored = peer.delivered(rcpts)
        s = stats(gw) if gw.running else {}
    except mxlib.TestFailure:
        print(f"  {hop}: gateway log tail ({gw.log_path}):", file=sys.stderr)
        for ln in gw.log_tail(15):
            print(f"    {ln}", file=sys.stderr)
        raise
    finally:
        peer.stop()
        gw.stop()
    return {"secs": t1 - t0, "cpu": cpu1 - cpu0, "peer_cpu": peer_cpu,
            "left": left,
            "fill_s": fill_s, "delivered": delivered, "stored": stored,
            "problems": problems + gw.problems, "stats": s}


def report_run(args, hop: str, i: int, r: dict) -> bool:
    n = args.messages
    rate = n / r["secs"] if r["secs"] > 0 else float("inf")
    r["rate"] = rate
    ok = (r["left"] == 0 and r["delivered"] == n * args.rcpts
          and r["stored"] in (None, n * args.rcpts) and not r["problems"])
    stored = "" if r["stored"] is None else f" stored={r['stored']}"
    print(f"  {hop} run {i}: {n} msgs in {r['secs']:.3f}s = {rate:.0f} msg/s"
          f" ({rate * args.rcpts:.0f} rcpt/s); gateway cpu {r['cpu']:.2f}s"
          f" ({r['cpu'] / n * 1e6:.0f} us/msg), {hop} peer cpu "
          f"{r['peer_cpu']:.2f}s; delivered={r['delivered']}"
          f"{stored} left={r['left']} fill={r['fill_s']:.1f}s"
          f"{'' if ok else '  <-- PROBLEM'}", flush=True)
    for ln in r["problems"][:8]:
        print(f"    {ln}")
    if len(r["problems"]) > 8:
        print(f"    ... {len(r['problems']) - 8} more problem lines")
    return ok


def bench_hop(args, hop: str) -> bool:
    results, all_ok = [], True
    for i in range(1, args.runs + 1):
        workdir = tempfile.mkdtemp(prefix=f"mxbench-{hop}-")
        try:
            r = run_once(args, hop, workdir)
            all_ok &= report_run(args, hop, i, r)
            results.append(r)
        finally:
            if args.keep:
                print(f"    kept {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
    rate = statistics.median(r["rate"] for r in results)
    cpu = statistics.median(r["cpu"] for r in results)
    conc = args.concurrency or "20 (default)"
    print(f"RESULT hop={hop} messages={args.messages} size={args.size} "
          f"rcpts={args.rcpts} next_hop_concurrency={conc}: median "
          f"{rate:.0f} msg/s ({rate * args.rcpts:.0f} rcpt/s) over "
          f"{args.runs} runs, gateway cpu median {cpu:.2f}s "
          f"({cpu / args.messages * 1e6:.0f} us/msg)"
          f"{'' if all_ok else '  [PROBLEMS, see above]'}", flush=True)
    return all_ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--size", type=int, default=1024,
                    help="body bytes per message (headers come on top)")
    ap.add_argument("--rcpts", type=int, default=1)
    ap.add_argument("--hop", choices=("smtp", "lmtp", "both"), default="both")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=0,
                    help="next_hop_concurrency (default: the gateway's, 20)")
    ap.add_argument("--timeout", type=float, default=300.0,
                    help="seconds allowed for the delivery phase")
    ap.add_argument("--injector", choices=("smtp-source", "python"),
                    default="smtp-source" if os.access(SMTP_SOURCE, os.X_OK)
                    else "python")
    ap.add_argument("--keep", action="store_true",
                    help="keep each run's temp folder (logs, config)")
    args = ap.parse_args()
    if min(args.messages, args.size, args.rcpts, args.runs) < 1:
        ap.error("--messages, --size, --rcpts and --runs must be >= 1")
    if not os.access(os.path.join(ROOT, "build", "mxgate"), os.X_OK):
        ap.error("build/mxgate missing: run make first")
    print(f"machine: {machine()}")
    print(f"command: {' '.join([sys.executable] + sys.argv)}  "
          f"(injector {args.injector})", flush=True)
    ok = True
    for hop in (("smtp", "lmtp") if args.hop == "both" else (args.hop,)):
        ok &= bench_hop(args, hop)
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except mxlib.TestFailure as e:
        print(f"bench: {e}", file=sys.stderr)
        sys.exit(1)
