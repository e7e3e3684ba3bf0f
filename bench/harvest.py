#!/usr/bin/env python3
"""
harvest.py - the directory-harvest benchmark of issue 4 (`make
bench-harvest`).  Python 3.11+, standard library only, loopback only.

An attacker (asyncio) with a wordlist of 10,000 names, 100 of them real
users, tries names against a gateway as fast as it is allowed to:
  (a) from one source address (127.1.0.1), 3 connections at once;
  (b) from 200 source addresses, each in its own /24 (127.X.Y.1), 3
      connections each;
each run bounded by --seconds (default 120).  A connection does EHLO, MAIL
FROM, then RCPT TO one name at a time (lock-step, so every reply has its
own latency); after a 421 or a close it reconnects.  Names are taken from
one shared queue; a name whose RCPT got a 4xx reply (or a 421) goes back
to the end of the queue, at most 3 tries a name.  After 452 (too many
recipients) the connection sends RSET and MAIL again.

The users and the wordlist follow the scheme of the Postfix peer
(../shared/bench: 100,000 users "user@example.test", "1user@..." ..
"99999user@..."): mxgate is given the same 100,000 users; the wordlist
draws 100 of them at random and 9,900 unknown names of the same shape
("100000user" .. "999999user"), in random order (fixed --seed).

Which names the attacker CONFIRMS as valid (decided after the run, from
the replies it kept; 421 replies are about the connection, not a name,
and are left out):
  1. by the reply: order every reply by the time its RCPT was sent; the
     context of a reply is the 101 replies around it (50 before, 50
     after).  The reply singles its name out when its class (the reply
     line with any <address> blanked) is not the most frequent class of
     its context and at most 5% of its context has that class: almost
     all names of a wordlist are unknown, so a reply that few names get,
     while most get another one, marks a name that is different, i.e.
     valid.  (Under plain `reject`,
     `250 2.1.5 Ok` among `550 5.1.1` replies.)
  2. by the latency, in the direction a verdict-keyed tarpit would show:
     on one connection, a reply that took less than half as long as both
     the reply before and the reply after it, when those two each took
     0.25 s or more (a fast answer between tarpitted ones).
A name is confirmed when any of its replies singles it out.  The report
gives how many names the attacker claims and how many of those are
really valid (the script knows the users).

Other figures: RCPTs sent; names tried (names with at least one reply
other than 421); names resolved (a 2xx or 5xx reply: what a harvester
takes as an answer); seconds per name after the first 10 resolved, i.e.
(end of run - time of the 10th resolved name) / (resolved - 10); the
same per source address, after that source's own first 10 (a name counts
for the source that resolved it first; summed over the sources with more
than 10: sum(end - its 10th) / sum(its resolved - 10)), which is what one
address pays once the first few names are behind it (with 200 sources the
first figure spreads their first few cheap names over the whole run);
connections made; 421 replies; the gateway's CPU time during the run
(utime+stime from /proc/PID/stat; for Postfix the sum over its process
tree, cutime/cstime included for smtpd processes already reaped) and its
memory (VmRSS and VmHWM from /proc/PID/status; Postfix: Pss from
/proc/PID/smaps_rollup summed over its processes, at the end of the run).

mxgate runs with its defaults (unknown_recipient = reject, the harvest
guard's defaults), started from --binary on a free loopback port with a
raised RLIMIT_NOFILE, its config, users file and spool in a temp folder,
one fresh process per run.  BENCH_POSTFIX=1 (or --postfix) adds the same
two runs against the Postfix peer of ../shared/bench (postfix/setup.sh,
run as root, installs and configures it): port 25 (Postfix defaults:
error sleep 1 s, soft limit 10, hard limit 20) and port 2525 (error sleep
0); if Postfix is not running the script starts it and stops it again.

--pad adds a run (c): one source that sends, before each guess, a RCPT
to one valid address it already knows (not in its wordlist, replies not
kept), so that unknown names never outnumber valid ones; and (d) the
same at --pad-rate guesses a minute (default 140), under the rate that
switches the domain to discard answers (harvest_global_rate, 300).

Also measured: KS, the latency of 2,000 RCPTs to valid and 2,000 to
unknown names (interleaved, fixed seed) under `discard` (client exempt
from the guard) and in uniform mode (client marked first), with a
two-sample Kolmogorov-Smirnov test; and with --idle N, N connections from
many addresses each held in a tarpitted RCPT wait: the gateway's RSS
growth per connection ((VmRSS with N waiting - VmRSS before) / N) and its
CPU time over 10 s of waiting.

Usage: bench/harvest.py --binary build/mxgate [--seconds 120] [--idle N]
       [--no-attack] [--no-ks] [--postfix] [--pad] [--keep]
       [--set KEY=VALUE ...]   (a setting for the attack runs' gateway)
Stops only the processes it started, by their pid.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import math
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from benchlib import (Closed, SyncClient, free_port,  # noqa: E402
                      kolmogorov_sf, ks_2samp, port_open, postfix_master,
                      proc_tree, raise_nofile, tree_cpu)

DOMAIN = "example.test"
NUSERS = 100_000                # the Postfix peer's table
WORDLIST = 10_000
NVALID = 100
CONC = 3                        # connections at once per source address
SOURCES_B = 200
MAX_TRIES = 3                   # a name's tries when it gets 4xx or 421
CTX_HALF = 50                   # context of a reply: 50 before, 50 after
RARE = 0.05                     # a class this rare in its context...
SLOW_S = 0.25                   # latency rule: neighbours this slow...
FAST_FRACTION = 0.5             # ... and this reply under half of them
REPLY_TIMEOUT = 70.0            # a tarpit delay is 1 minute at most
CONNECT_TIMEOUT = 30.0
KS_N = 2000
KS_SEED = 4242
CLK = os.sysconf("SC_CLK_TCK")
POSTFIX_PORTS = (25, 2525)


def user_name(i: int) -> str:
    return "user" if i == 0 else f"{i}user"


# ------------------------------------------------------------ processes

def proc_times(pid: int) -> float:
    """CPU seconds (utime + stime) of a process, all its threads."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def proc_mem(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM in KB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for ln in f:
            k, _, v = ln.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0])
    return out


def tree_pss(root: int) -> tuple[int, int]:
    """(sum of Pss in KB, process count) over a process tree: shared
    pages (libraries, the lmdb table) split between the processes."""
    total = n = 0
    for p in proc_tree(root):
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for ln in f:
                    if ln.startswith("Pss:"):
                        total += int(ln.split()[1])
            n += 1
        except (OSError, ValueError):
            pass
    return total, n


class Gateway:
    """One `mxgate serve` in its own temp folder, on a free port."""

    def __init__(self, binary: str, root: str, users_path: str,
                 conf: dict[str, str], nofile: int):
        self.binary = os.path.abspath(binary)
        self.dir = tempfile.mkdtemp(prefix="gw-", dir=root)
        self.port = free_port()
        self.conf_path = os.path.join(self.dir, "mxgate.conf")
        self.log_path = os.path.join(self.dir, "mxgate.log")
        os.makedirs(os.path.join(self.dir, "spool"))
        settings = {"hostname": "mx.example.test",
                    "listen": f"127.0.0.1:{self.port}", "spool": "spool",
                    "domains": DOMAIN, "directory": f"file:{users_path}",
                    "next_hop": "maildir:mail", "log_level": "info",
                    # SPF off: these measure the SMTP side, not DNS
                    "spf_policy": "none"}
        settings.update(conf)
        with open(self.conf_path, "w") as f:
            for k, v in settings.items():
                f.write(f"{k} = {v}\n")
        self.nofile = nofile
        self.proc: subprocess.Popen | None = None

    def _preexec(self) -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        n = min(self.nofile, hard) if hard != resource.RLIM_INFINITY \
            else self.nofile
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))

    def start(self) -> "Gateway":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.binary, "serve", "-c", self.conf_path], cwd=self.dir,
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            preexec_fn=self._preexec)
        log.close()
        want = re.compile(r"event=listening .*addr=127\.0\.0\.1:%d\b"
                          % self.port)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if want.search(self.log_text()):
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise SystemExit("mxgate did not start: "
                         + " / ".join(self.log_text().splitlines()[-5:]))

    def log_text(self) -> str:
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def ctl(self, *args: str) -> str:
        p = subprocess.run([self.binary, *args, "-c", self.conf_path],
                           capture_output=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        return p.stdout.decode("utf-8", "replace")

    def stats(self) -> dict[str, int]:
        out = {}
        for ln in self.ctl("stats").splitlines():
            m = re.fullmatch(r"(\w+) (\d+)", ln.strip())
            if m:
                out[m.group(1)] = int(m.group(2))
        return out

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


# ------------------------------------------------------------ SMTP, async

async def read_reply(reader: asyncio.StreamReader) -> tuple[int, str]:
    """One reply: (code, last line without CRLF)."""
    for _ in range(100):
        line = await reader.readline()
        if not line:
            raise Closed()
        text = line.decode("latin-1").rstrip("\r\n")
        if len(text) < 4 or text[3:4] != "-":
            return (int(text[:3]) if text[:3].isdigit() else 0), text
    raise Closed()


async def command(reader, writer, line: str) -> tuple[int, str]:
    writer.write(line.encode("latin-1") + b"\r\n")
    await writer.drain()
    return await read_reply(reader)


ADDR_RE = re.compile(r"<[^>]*>")


class Record:
    __slots__ = ("name", "conn", "src", "t_recv", "lat", "code", "cls")

    def __init__(self, name, conn, src, t_recv, lat, code, text):
        self.name, self.conn, self.t_recv, self.lat = name, conn, t_recv, lat
        self.src = src
        self.code = code
        self.cls = ADDR_RE.sub("<>", text)


class Attack:
    """The harvester: a shared queue of names, CONC workers per source."""

    def __init__(self, port: int, sources: list[str], names: list[str],
                 pad: str | None = None):
        self.port = port
        self.pad = pad
        self.pace = 0.0         # guesses a minute, all connections; 0: off
        self.pace_next = 0.0
        self.sources = sources
        self.queue = collections.deque((n, 0) for n in names)
        self.records: list[Record] = []
        self.rcpts = self.conns = self.n421 = self.connect_errors = 0
        self.next_conn = 0
        self.t0 = self.deadline = 0.0
        self.writers: set[asyncio.StreamWriter] = set()

    def left(self) -> float:
        return self.deadline - time.monotonic()

    async def io(self, aw, limit: float = REPLY_TIMEOUT):
        """Any wait of the attacker: bounded, and never past the end of
        the run (asyncio.TimeoutError then)."""
        return await asyncio.wait_for(aw, max(0.0, min(limit, self.left())))

    async def worker(self, src: str) -> None:
        while self.queue and self.left() > 0:
            try:
                reader, writer = await self.io(asyncio.open_connection(
                    "127.0.0.1", self.port, local_addr=(src, 0)),
                    CONNECT_TIMEOUT)
            except (OSError, asyncio.TimeoutError):
                self.connect_errors += self.left() > 0
                await asyncio.sleep(min(0.2, max(0.0, self.left())))
                continue
            self.conns += 1
            self.next_conn += 1
            self.writers.add(writer)
            try:
                await self.session(reader, writer, self.next_conn, src)
            except (Closed, OSError, asyncio.TimeoutError):
                pass
            finally:
                self.writers.discard(writer)
                writer.close()

    def requeue(self, name: str, tries: int) -> None:
        if tries + 1 < MAX_TRIES:
            self.queue.append((name, tries + 1))

    async def cmd(self, reader, writer, line: str) -> tuple[int, str]:
        return await self.io(command(reader, writer, line))

    async def session(self, reader, writer, conn: int, src: str) -> None:
        code, _ = await self.io(read_reply(reader))
        if code != 220:
            return
        if (await self.cmd(reader, writer, "EHLO harvester.test"))[0] != 250:
            return
        if (await self.cmd(reader, writer,
                           "MAIL FROM:<probe@harvester.test>"))[0] != 250:
            return
        probes = 0
        while self.queue and self.left() > 0:
            if self.pad is not None:
                if probes and probes % 45 == 0:    # under max_recipients
                    await self.cmd(reader, writer, "RSET")
                    await self.cmd(reader, writer,
                                   "MAIL FROM:<probe@harvester.test>")
                self.rcpts += 1
                code, _ = await self.cmd(reader, writer,
                                         f"RCPT TO:<{self.pad}@{DOMAIN}>")
                if code == 421:
                    self.n421 += 1
                    return
            if self.pace:
                # one guess every 60/pace s over all connections
                self.pace_next = max(self.pace_next, time.monotonic())
                wait = self.pace_next - time.monotonic()
                self.pace_next += 60.0 / self.pace
                if wait > 0:
                    await self.io(asyncio.sleep(wait))
            if not self.queue:
                break
            probes += 1
            name, tries = self.queue.popleft()
            t = time.monotonic()
            writer.write(f"RCPT TO:<{name}@{DOMAIN}>\r\n".encode())
            self.rcpts += 1
            try:
                await self.io(writer.drain())
                code, text = await self.io(read_reply(reader))
            except BaseException:
                self.queue.appendleft((name, tries))  # never answered
                raise
            now = time.monotonic()
            if code == 421:
                self.n421 += 1
                self.requeue(name, tries)
                return
            self.records.append(Record(name, conn, src, now - self.t0,
                                       now - t, code, text))
            if 400 <= code < 500:
                self.requeue(name, tries)
            if code == 452:
                await self.cmd(reader, writer, "RSET")
                await self.cmd(reader, writer,
                               "MAIL FROM:<probe@harvester.test>")

    async def run(self, seconds: float) -> float:
        self.t0 = time.monotonic()
        self.deadline = self.t0 + seconds
        tasks = [asyncio.create_task(self.worker(s))
                 for s in self.sources for _ in range(CONC)]
        await asyncio.wait(tasks, timeout=seconds + 1)
        elapsed = min(time.monotonic(), self.deadline) - self.t0
        # Every wait is bounded by the deadline; abort what is left anyway
        # (a cancel lost inside wait_for must not hold the run).
        for w in list(self.writers):
            w.transport.abort()
        for t in tasks:
            t.cancel()
        await asyncio.wait(tasks, timeout=10)
        return elapsed


# ------------------------------------------------------------ analysis

def singled_by_reply(recs: list[Record]) -> set[int]:
    """Indexes (into recs, ordered by arrival) of replies whose class is
    rare in its context and not the context's most frequent one."""
    out = set()
    n = len(recs)
    counts: collections.Counter = collections.Counter()
    lo = hi = 0                 # window recs[lo:hi]
    for i in range(n):
        want_lo, want_hi = max(0, i - CTX_HALF), min(n, i + CTX_HALF + 1)
        while hi < want_hi:
            counts[recs[hi].cls] += 1
            hi += 1
        while lo < want_lo:
            counts[recs[lo].cls] -= 1
            lo += 1
        size = hi - lo
        mine = counts[recs[i].cls]
        top = max(counts.values())
        if mine < top and mine <= RARE * size:
            out.add(i)
    return out


def singled_by_latency(recs: list[Record]) -> set[int]:
    by_conn: dict[int, list[int]] = collections.defaultdict(list)
    for i, r in enumerate(recs):
        by_conn[r.conn].append(i)
    out = set()
    for idx in by_conn.values():
        idx.sort(key=lambda i: recs[i].t_recv)
        for a, b, c in zip(idx, idx[1:], idx[2:]):
            la, lb, lc = recs[a].lat, recs[b].lat, recs[c].lat
            if la >= SLOW_S and lc >= SLOW_S and \
                    lb < FAST_FRACTION * min(la, lc):
                out.add(b)
    return out


def analyse(att: Attack, valid: set[str], elapsed: float) -> dict:
    # In the order the names were sent: if valid names took longer, arrival
    # order would bunch their replies (and hide them from rule 1).
    recs = sorted(att.records, key=lambda r: r.t_recv - r.lat)
    hits = singled_by_reply(recs) | singled_by_latency(recs)
    claimed = {recs[i].name for i in hits}
    tried = {r.name for r in recs}
    first: dict[str, float] = {}
    for r in recs:
        if (200 <= r.code < 300 or 500 <= r.code < 600) and \
                r.name not in first:
            first[r.name] = r.t_recv
    times = sorted(first.values())
    per_name = ((elapsed - times[9]) / (len(times) - 10)
                if len(times) > 10 else float("nan"))
    # The same per source address, after its own first 10 (a name counts
    # for the source that resolved it first): what one address pays.
    by_src: dict[str, list[float]] = collections.defaultdict(list)
    seen: set[str] = set()
    for r in sorted(recs, key=lambda r: r.t_recv):
        if (200 <= r.code < 300 or 500 <= r.code < 600) and \
                r.name not in seen:
            seen.add(r.name)
            by_src[r.src].append(r.t_recv)
    src_s = sum(elapsed - ts[9] for ts in by_src.values() if len(ts) > 10)
    src_n = sum(len(ts) - 10 for ts in by_src.values() if len(ts) > 10)
    per_name_src = src_s / src_n if src_n else float("nan")
    classes = collections.Counter(r.cls for r in recs)
    return {"rcpts": att.rcpts, "tried": len(tried),
            "resolved": len(first), "claimed": len(claimed),
            "confirmed": len(claimed & valid),
            "valid_2xx": len({r.name for r in recs if r.name in valid
                              and 200 <= r.code < 300}),
            "per_name": per_name, "nconn": CONC * len(att.sources),
            "per_name_src": per_name_src,
            "src_counted": sum(1 for ts in by_src.values() if len(ts) > 10),
            "conns": att.conns, "n421": att.n421,
            "connect_errors": att.connect_errors, "seconds": elapsed,
            "classes": classes.most_common(4)}


def attack(port: int, sources: list[str], names: list[str], valid: set[str],
           seconds: float, pad: str | None = None, pace: float = 0.0
           ) -> dict:
    att = Attack(port, sources, names, pad)
    att.pace = pace
    elapsed = asyncio.run(att.run(seconds))
    return analyse(att, valid, elapsed)


# ------------------------------------------------------------ KS

def ks_measure(port: int, src: str, valid: list[str], conns: int = 4,
               per_tx: int = 50) -> tuple[dict, dict]:
    """As tests/e2e/test_harvest.py: lock-step, pairs of one valid and one
    unknown name in random order per connection, connections in turn."""
    rng = random.Random(KS_SEED)
    # unknown names of the same lengths: "1234uzer" for "1234user"
    names = {"valid": valid[:KS_N],
             "unknown": [v.replace("user", "uzer") for v in valid[:KS_N]]}
    per_conn = []
    for _ in range(conns):
        seq = []
        for _ in range(KS_N // conns):
            pair = ["valid", "unknown"]
            rng.shuffle(pair)
            seq += pair
        per_conn.append(seq)
    it = {k: iter(v) for k, v in names.items()}
    lat = {"valid": [], "unknown": []}
    replies = {"valid": set(), "unknown": set()}
    cs = [SyncClient(port, src, "ks.test") for _ in range(conns)]
    try:
        for c in cs:
            for i in range(20):
                c.cmd(f"RCPT TO:<warm{i % 2}@{DOMAIN}>")
            c.cmd("RSET")
            c.cmd("MAIL FROM:<x@remote.test>")
        for step in range(len(per_conn[0])):
            for k, c in enumerate(cs):
                kind = per_conn[k][step]
                r, us = c.timed(f"RCPT TO:<{next(it[kind])}@{DOMAIN}>")
                lat[kind].append(us)
                replies[kind].add(r)
                if (step + 1) % per_tx == 0:
                    c.cmd("RSET")
                    c.cmd("MAIL FROM:<x@remote.test>")
    finally:
        for c in cs:
            c.close()
    return lat, replies


def ks_run(binary, root, users_path, valid, mode: str) -> str:
    src = "127.2.0.1"
    conf = {}
    if mode == "discard":
        conf.update(unknown_recipient="discard", harvest_exempt=src + "/32")
    else:
        conf.update(harvest_threshold="3", harvest_tarpit_after="1000",
                    harvest_session_limit="1000")
    gw = Gateway(binary, root, users_path, conf, 4096).start()
    try:
        if mode == "uniform":
            c = SyncClient(gw.port, src, "ks.test")
            for i in range(3):
                c.cmd(f"RCPT TO:<{800000 + i}user@{DOMAIN}>")
            c.close()
        lat, replies = ks_measure(gw.port, src, valid)
    finally:
        gw.stop()
    v, u = lat["valid"], lat["unknown"]
    d = ks_2samp(v, u)
    p = kolmogorov_sf(math.sqrt(len(v) * len(u) / (len(v) + len(u))) * d)
    if replies["valid"] == replies["unknown"] and \
            len(replies["valid"]) == 1:
        same = f"byte-identical {next(iter(replies['valid']))!r}"
    else:
        same = f"DIFFER: {replies!r}"

    def med(xs: list[float]) -> float:
        return sorted(xs)[len(xs) // 2]
    return (f"KS {mode:8s} n={len(v)}+{len(u)} D={d:.4f} p={p:.4f} "
            f"median_us valid={med(v):.1f} unknown={med(u):.1f} "
            f"replies {same}")


# ------------------------------------------------------------ idle

async def idle_conn(port, src, sem, state, stop: asyncio.Event,
                    writers: set) -> None:
    """Connect, then unknown RCPTs until one is not answered within
    0.5 s: the session sits in a tarpit wait.  When a wait ends, wait
    again (another RCPT)."""
    async with sem:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port,
                                        local_addr=(src, 0)), 30)
        except (OSError, asyncio.TimeoutError):
            state["failed"] += 1
            return
        writers.add(writer)
        try:
            await asyncio.wait_for(read_reply(reader), 30)
            await asyncio.wait_for(command(reader, writer, "EHLO idle.test"),
                                   30)
            await asyncio.wait_for(command(reader, writer,
                                           "MAIL FROM:<idle@idle.test>"), 30)
        except (Closed, OSError, asyncio.TimeoutError):
            state["failed"] += 1
            writer.close()
            return
    i = 0
    waiting = False
    try:
        while not stop.is_set():
            writer.write(f"RCPT TO:<idle{i % 3}@{DOMAIN}>\r\n".encode())
            i += 1
            await writer.drain()
            rd = asyncio.ensure_future(read_reply(reader))
            done, _ = await asyncio.wait({rd}, timeout=0.5)
            if not done:
                waiting = True
                state["waiting"] += 1
                st = asyncio.ensure_future(stop.wait())
                await asyncio.wait({rd, st},
                                   return_when=asyncio.FIRST_COMPLETED)
                state["waiting"] -= 1
                waiting = False
                if not rd.done():
                    rd.cancel()
                    break
                st.cancel()
            code, _ = rd.result()
            if code == 421:
                state["cut"] += 1
                break
    except (Closed, OSError):
        state["closed"] += 1
    finally:
        if waiting:
            state["waiting"] -= 1
        writer.close()


async def idle_main(gw: Gateway, n: int, sources: list[str], hold: float
                    ) -> dict:
    state = collections.Counter()
    stop = asyncio.Event()
    sem = asyncio.Semaphore(256)
    before = proc_mem(gw.proc.pid)["VmRSS"]
    t0 = time.monotonic()
    writers: set = set()
    tasks = [asyncio.create_task(idle_conn(gw.port, sources[i % len(sources)],
                                           sem, state, stop, writers))
             for i in range(n)]
    deadline = t0 + 120
    while time.monotonic() < deadline and \
            state["waiting"] + state["failed"] + state["cut"] < n:
        await asyncio.sleep(0.2)
    t_ready = time.monotonic() - t0
    await asyncio.sleep(1.0)
    mem = proc_mem(gw.proc.pid)
    waiting_at_rss = state["waiting"]
    stats = await asyncio.to_thread(gw.stats)
    c0 = proc_times(gw.proc.pid)
    await asyncio.sleep(hold)
    cpu = proc_times(gw.proc.pid) - c0
    waiting_after = state["waiting"]
    stop.set()
    await asyncio.wait(tasks, timeout=10)
    for w in writers:
        w.transport.abort()
    for t in tasks:
        t.cancel()
    await asyncio.wait(tasks, timeout=10)
    return {"n": n, "before_kb": before, "rss_kb": mem["VmRSS"],
            "hwm_kb": mem["VmHWM"], "waiting": waiting_at_rss,
            "waiting_after": waiting_after, "failed": state["failed"],
            "cut": state["cut"], "closed": state["closed"],
            "ready_s": t_ready, "cpu_s": cpu, "hold_s": hold,
            "gw_tarpitted": stats.get("harvest_tarpitted"),
            "gw_sessions": stats.get("sessions_open")}


def idle_run(binary, root, users_path, n: int) -> dict:
    nofile = raise_nofile(n + 1024)
    if nofile < n + 64:
        raise SystemExit(f"--idle {n}: RLIMIT_NOFILE is {nofile}")
    conf = {"harvest_tarpit_delay": "1m", "harvest_tarpit_max": "1m",
            "harvest_max_tarpitted": str(n + 100),
            "harvest_session_delay_max": "1h",
            "harvest_session_limit": "1000", "harvest_global_rate": "0",
            # room for N sessions, and under 80% of it (no stress mode)
            "max_connections": str(2 * n + 100)}
    gw = Gateway(binary, root, users_path, conf, n + 1024).start()
    nsrc = max(1, n // 20)
    sources = [f"127.{150 + i // 250}.{i % 250}.1" for i in range(nsrc)]
    try:
        time.sleep(0.5)
        res = asyncio.run(idle_main(gw, n, sources, 10.0))
    finally:
        gw.stop()
    res["conf"] = conf
    res["sources"] = nsrc
    return res


# ------------------------------------------------------------ Postfix



def postfix_start() -> bool:
    """Start Postfix if it is not running; True if we started it."""
    if postfix_master() is not None and port_open(25):
        return False
    if shutil.which("postfix") is None:
        raise SystemExit("BENCH_POSTFIX=1: postfix is not installed "
                         "(run ../shared/bench/postfix/setup.sh as root)")
    p = subprocess.run(["postconf", "-h", "relay_recipient_maps"],
                       capture_output=True, text=True)
    if "relay_recipients" not in p.stdout:
        raise SystemExit("BENCH_POSTFIX=1: Postfix is not configured as the "
                         "peer (run ../shared/bench/postfix/setup.sh)")
    subprocess.run(["postfix", "start"], check=True, timeout=60,
                   capture_output=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (port_open(25) and
                                               port_open(2525)):
        time.sleep(0.2)
    return True


# ------------------------------------------------------------ report

def fmt_row(label: str, cells: list[str], w0: int, w: int) -> str:
    return f"{label:<{w0}}" + "".join(f"{c:>{w}}" for c in cells)


def table(cols: list[tuple[str, dict]]) -> str:
    rows = [
        ("seconds run", lambda r: f"{r['seconds']:.1f}"),
        ("RCPTs sent", lambda r: str(r["rcpts"])),
        ("names tried", lambda r: str(r["tried"])),
        ("names resolved (2xx/5xx)", lambda r: str(r["resolved"])),
        ("valid names confirmed", lambda r: f"{r['confirmed']}"),
        ("  names claimed (all)", lambda r: str(r["claimed"])),
        ("  valid names given 2xx", lambda r: str(r["valid_2xx"])),
        ("s per name after 10", lambda r: "n/a" if math.isnan(r["per_name"])
         else f"{r['per_name']:.3f}"),
        ("  conn-s per name", lambda r: "n/a" if math.isnan(r["per_name"])
         else f"{r['per_name'] * r['nconn']:.1f}"),
        ("s per name, each src after its 10",
         lambda r: "n/a" if math.isnan(r["per_name_src"])
         else f"{r['per_name_src']:.3f}"),
        ("  sources with over 10", lambda r: str(r["src_counted"])),
        ("connections made", lambda r: str(r["conns"])),
        ("421 received", lambda r: str(r["n421"])),
        ("server CPU s", lambda r: f"{r['cpu']:.2f}"),
        ("server RSS MB", lambda r: r["rss"]),
        ("server HWM MB", lambda r: r["hwm"]),
    ]
    w0 = max(len(r[0]) for r in rows) + 2
    w = max(16, max(len(c[0]) for c in cols) + 2)
    out = [fmt_row("", [c[0] for c in cols], w0, w)]
    out += [fmt_row(label, [f(c[1]) for c in cols], w0, w)
            for label, f in rows]
    return "\n".join(out)


# ------------------------------------------------------------ main

def make_lists(root: str, seed: int) -> tuple[str, list[str], set[str]]:
    rng = random.Random(seed)
    users_path = os.path.join(root, "users")
    with open(users_path, "w") as f:
        for i in range(NUSERS):
            f.write(f"{user_name(i)}@{DOMAIN}\n")
    valid = [user_name(i) for i in rng.sample(range(NUSERS), NVALID)]
    unknown = [f"{i}user" for i in rng.sample(range(100_000, 1_000_000),
                                              WORDLIST - NVALID)]
    words = valid + unknown
    rng.shuffle(words)
    return users_path, words, set(valid)


def run_mxgate(args, root, users_path, words, valid, sources, pad=None,
               pace=0.0):
    gw = Gateway(args.binary, root, users_path, dict(args.set), 65536).start()
    try:
        c0 = proc_times(gw.proc.pid)
        res = attack(gw.port, sources, words, valid, args.seconds, pad, pace)
        res["cpu"] = proc_times(gw.proc.pid) - c0
        mem = proc_mem(gw.proc.pid)
        res["rss"] = f"{mem['VmRSS'] / 1024:.1f}"
        res["hwm"] = f"{mem['VmHWM'] / 1024:.1f}"
        text = gw.log_text()
        res["events"] = {s: len(re.findall(r"event=harvest state=%s\b" % s,
                                           text))
                         for s in ("tarpit", "cutoff", "uniform",
                                   "global_on", "global_off")}
    finally:
        gw.stop()
    return res


def run_postfix(args, port, words, valid, sources):
    master = postfix_master()
    c0 = tree_cpu(master)
    res = attack(port, sources, words, valid, args.seconds)
    res["cpu"] = tree_cpu(master) - c0
    pss, n = tree_pss(master)
    res["rss"] = f"{pss / 1024:.1f} PSS/{n}p"
    res["hwm"] = "n/a"
    res["events"] = {}
    return res


def setting(kv: str) -> tuple[str, str]:
    k, eq, v = kv.partition("=")
    if not eq or not k.strip():
        raise argparse.ArgumentTypeError(f"not KEY=VALUE: {kv!r}")
    return k.strip(), v.strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", default="build/mxgate")
    ap.add_argument("--seconds", type=float, default=120.0,
                    help="bound of each attack run (default 120)")
    ap.add_argument("--idle", type=int, default=0, metavar="N",
                    help="also hold N tarpitted connections (e.g. 10000)")
    ap.add_argument("--no-attack", action="store_true")
    ap.add_argument("--no-ks", action="store_true")
    ap.add_argument("--postfix", action="store_true",
                    default=os.environ.get("BENCH_POSTFIX") == "1",
                    help="also attack the Postfix peer (BENCH_POSTFIX=1)")
    ap.add_argument("--pad", action="store_true",
                    help="add a run from one source that sends, before "
                    "each guess, a RCPT to one valid address it knows")
    ap.add_argument("--pad-rate", type=float, default=140.0,
                    help="guesses a minute of the second --pad run "
                    "(default 140: under half of harvest_global_rate)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    type=setting,
                    help="a config setting for the attack runs' gateway "
                    "(default: none, mxgate's defaults); may be repeated")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()
    raise_nofile(4096)
    root = tempfile.mkdtemp(prefix="mxgate-bench-harvest-")
    started_postfix = False
    try:
        users_path, words, valid = make_lists(root, args.seed)
        # --pad: an address the attacker knows (say, from a web page),
        # valid and not in its wordlist.
        pad = next(user_name(i) for i in range(1, NUSERS)
                   if user_name(i) not in valid)
        src_a = ["127.1.0.1"]
        src_b = [f"127.{10 + i // 100}.{i % 100}.1"
                 for i in range(SOURCES_B)]
        if not args.no_attack:
            cols = []
            runs = [("mxgate 1 src", src_a, None, 0.0),
                    (f"mxgate {SOURCES_B} src", src_b, None, 0.0)]
            if args.pad:
                runs.append(("mxgate 1 src pad", src_a, pad, 0.0))
                runs.append((f"1 src pad {args.pad_rate:g}/m", src_a, pad,
                             args.pad_rate))
            for label, srcs, pad_name, pace in runs:
                print(f"== {label}: {args.seconds:g} s ...", flush=True)
                res = run_mxgate(args, root, users_path, words, valid,
                                 srcs, pad_name, pace)
                print(f"   guard events {res['events']}; reply classes "
                      f"{res['classes']}", flush=True)
                cols.append((label, res))
            if args.postfix:
                started_postfix = postfix_start()
                for port in POSTFIX_PORTS:
                    for label, srcs in ((f"pf:{port} 1 src", src_a),
                                        (f"pf:{port} {SOURCES_B} src",
                                         src_b)):
                        print(f"== {label}: {args.seconds:g} s ...",
                              flush=True)
                        res = run_postfix(args, port, words, valid, srcs)
                        print(f"   reply classes {res['classes']}",
                              flush=True)
                        cols.append((label, res))
            print()
            print(f"Harvest: wordlist {WORDLIST} names, {NVALID} valid; "
                  f"{CONC} connections per source; bound {args.seconds:g} s"
                  " per run" + (f"; mxgate settings {dict(args.set)}"
                                if args.set else "; mxgate defaults"))
            print(table(cols))
            if args.postfix:
                print("(pf:25 = Postfix defaults, error sleep 1 s, soft/hard"
                      " error limits 10/20; pf:2525 = error sleep 0; Postfix"
                      " memory: Pss summed over its processes)")
        if not args.no_ks:
            print()
            for mode in ("discard", "uniform"):
                print(ks_run(args.binary, root, users_path,
                             [user_name(i) for i in range(KS_N)], mode),
                      flush=True)
        if args.idle:
            print()
            print(f"== idle: {args.idle} tarpitted connections ...",
                  flush=True)
            r = idle_run(args.binary, root, users_path, args.idle)
            per = (r["rss_kb"] - r["before_kb"]) * 1024 / r["n"]
            print(f"idle: {r['n']} connections from {r['sources']} "
                  f"addresses; {r['waiting']} in a tarpit wait at the "
                  f"RSS reading ({r['waiting_after']} 10 s later; gateway "
                  f"stats: harvest_tarpitted={r['gw_tarpitted']} "
                  f"sessions_open={r['gw_sessions']}); failed "
                  f"{r['failed']}, cut {r['cut']}, closed {r['closed']}; "
                  f"all set up in {r['ready_s']:.1f} s")
            print(f"idle: RSS {r['before_kb']} KB before, {r['rss_kb']} KB "
                  f"with them (HWM {r['hwm_kb']} KB): "
                  f"{per:.0f} bytes per connection (target 8192)")
            print(f"idle: gateway CPU {r['cpu_s']:.2f} s (clock tick "
                  f"{1 / CLK:.2f} s) over "
                  f"{r['hold_s']:.0f} s of waiting "
                  f"({100 * r['cpu_s'] / r['hold_s']:.2f}% of a core)")
            print(f"idle: config {r['conf']}")
    finally:
        if started_postfix:
            subprocess.run(["postfix", "stop"], timeout=60,
                           capture_output=True)
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
