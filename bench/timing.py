#!/usr/bin/env python3
"""
timing.py - valid vs unknown RCPT reply times, per mode (`make
bench-timing`, issue 12 point 12).  Python 3.11+, standard library only,
loopback only.

For each mode (discard, bounce, uniform, and reject for reference) a
fresh gateway, then N fresh sessions to valid names and N to unknown
names of the same length (user0001 / uzer0001), interleaved in a seeded
random order, one after the other, each from its own source address in
its own /24 across 127.0.0.0/8 (the gateway trusts none of them), each
sending exactly one RCPT.  Measured: from the client's send of the RCPT
line to the receipt of its reply (perf_counter_ns), in microseconds.
Printed per mode: the replies (byte-identical or not), the medians and
99th percentiles of both kinds, the two-sample Kolmogorov-Smirnov
statistic D and its asymptotic p-value (benchlib.ks_2samp).  The goal:
p > 0.05 wherever the replies are identical (all modes but reject).

Guard settings keep the measurement about one RCPT of a fresh client:
one RCPT per source and a /24 per source (no tarpit, no mark), no
distributed-harvest switch (harvest_global_rate = 0), no connection
limits in the way.  Uniform mode is its own mode: before the measured
sessions, another address of each /24 marks its net (threshold 1), so
each measured session is uniform from its first RCPT, untarpitted.

--throughput also runs smtp-source -c -s 50 against discard mode (all
recipients unknown, so nothing is stored and the reply time is the
whole cost) with and without the floor, alternating, and prints the
messages per second of each run and their medians.

Usage: timing.py --binary PATH [--n 1000] [--modes discard,bounce,...]
       [--floor 5ms] [--seed S] [--runs 1] [--throughput]
       (--modes "" --throughput: the throughput alone)
       [--tp-messages 5000] [--tp-runs 3]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import SyncClient, ks_2samp, ks_pvalue  # noqa: E402
from harvest import Gateway  # noqa: E402

DOMAIN = "example.test"
SMTP_SOURCE = "/usr/sbin/smtp-source"
MODES = ["discard", "bounce", "uniform", "reject"]
ALPHA = 0.05

# Each mode's settings beyond the guard's quiet ones (common below).
MODE_CONF = {
    "discard": {"unknown_recipient": "discard"},
    "bounce": {"unknown_recipient": "bounce"},
    "uniform": {"unknown_recipient": "reject", "harvest_threshold": "1",
                "harvest_threshold_net": "1"},
    "reject": {"unknown_recipient": "reject"},
}
QUIET = {"harvest_tarpit_after": "1000", "harvest_session_limit": "100000",
         "harvest_global_rate": "0", "max_connections": "100000",
         "max_connection_rate_per_client": "0"}


def source(i: int, host: int = 1) -> str:
    """The i-th client's address: 127.A.B.host, one /24 per client."""
    i += 256                    # skip 127.0.x.x (127.0.0.1 is the server)
    return f"127.{(i >> 8) & 255}.{i & 255}.{host}"


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def run_mode(args, root: str, users_path: str, mode: str,
             floor: str) -> dict:
    conf = dict(QUIET)
    conf.update(MODE_CONF[mode])
    conf["rcpt_reply_floor"] = floor
    gw = Gateway(args.binary, root, users_path, conf, 4096).start()
    rng = random.Random(args.seed)
    kinds = ["valid"] * args.n + ["unknown"] * args.n
    rng.shuffle(kinds)
    lat = {"valid": [], "unknown": []}
    replies = {"valid": set(), "unknown": set()}
    nth = {"valid": 0, "unknown": 0}
    try:
        if mode == "uniform":   # mark each /24 from another of its hosts
            for i in range(len(kinds)):
                c = SyncClient(gw.port, source(i, 250), "timing.test")
                c.cmd(f"RCPT TO:<mark{i}@{DOMAIN}>")
                c.close(quit=True)
        for i, kind in enumerate(kinds):
            k = nth[kind]
            nth[kind] += 1
            name = f"{'user' if kind == 'valid' else 'uzer'}{k:05d}"
            c = SyncClient(gw.port, source(i), "timing.test")
            r, us = c.timed(f"RCPT TO:<{name}@{DOMAIN}>")
            c.close(quit=True)
            lat[kind].append(us)
            replies[kind].add(r)
    finally:
        gw.stop()
        if not args.keep:
            shutil.rmtree(gw.dir, ignore_errors=True)
    v, u = lat["valid"], lat["unknown"]
    d = ks_2samp(v, u)
    same = len(replies["valid"]) == 1 and replies["valid"] == \
        replies["unknown"]
    return {"mode": mode, "floor": floor, "n": len(v), "d": d,
            "p": ks_pvalue(d, len(v), len(u)), "same": same,
            "replies": replies, "med_v": pct(v, 0.5), "med_u": pct(u, 0.5),
            "p99_v": pct(v, 0.99), "p99_u": pct(u, 0.99)}


def fmt(r: dict) -> str:
    if r["same"]:
        rep = "identical " + repr(next(iter(r["replies"]["valid"])))
        goal = "ok" if r["p"] > ALPHA else "FAIL"
    else:
        rep = "differ (valid %d kinds, e.g. %r; unknown %d, e.g. %r)" % (
            len(r["replies"]["valid"]), min(r["replies"]["valid"]),
            len(r["replies"]["unknown"]), min(r["replies"]["unknown"]))
        goal = "n/a"
    return (f"{r['mode']:8s} floor={r['floor']:5s} n={r['n']}+{r['n']} "
            f"median_us valid={r['med_v']:.0f} unknown={r['med_u']:.0f} "
            f"p99_us valid={r['p99_v']:.0f} unknown={r['p99_u']:.0f} "
            f"KS D={r['d']:.4f} p={r['p']:.4g} [{goal}] replies {rep}")


def throughput(args, root: str, users_path: str, floor: str) -> float:
    conf = dict(QUIET)
    conf.update(MODE_CONF["discard"])
    conf["rcpt_reply_floor"] = floor
    # smtp-source has one address and many unknown names: keep the guard
    # out of it (the floor still applies: it follows the policy)
    conf["harvest_exempt"] = "127.0.0.1/32"
    conf["max_connections_per_client"] = "1000"  # closes lag behind -s 50
    gw = Gateway(args.binary, root, users_path, conf, 4096).start()
    try:
        cmd = [SMTP_SOURCE, "-c", "-N", "-s", "50", "-m",
               str(args.tp_messages), "-l", "1024", "-r", "1",
               "-f", "bench@sender.test", "-t", f"{args.tp_rcpt}@{DOMAIN}",
               "-M", "client.test", f"127.0.0.1:{gw.port}"]
        t0 = time.monotonic()
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=600)
        wall = time.monotonic() - t0
        text = (p.stdout + p.stderr).decode("utf-8", "replace")
        nums = [ln for ln in text.replace("\r", "\n").split("\n")
                if ln.strip().isdigit()]
        n = int(nums[-1]) if nums else 0
        if p.returncode != 0 or n != args.tp_messages:
            raise SystemExit(f"smtp-source: rc={p.returncode} accepted={n}"
                             f" {text.strip()[-300:]!r}")
    finally:
        gw.stop()
        if not args.keep:
            shutil.rmtree(gw.dir, ignore_errors=True)
    return n / wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--n", type=int, default=1000,
                    help="fresh sessions of each kind per mode")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--floor", default="5ms",
                    help="rcpt_reply_floor for the KS runs (0: off)")
    ap.add_argument("--seed", type=int, default=1212)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--throughput", action="store_true")
    ap.add_argument("--tp-messages", type=int, default=5000)
    ap.add_argument("--tp-runs", type=int, default=3)
    ap.add_argument("--tp-rcpt", choices=["nobody", "tp"], default="nobody",
                    help="smtp-source's recipient, numbered: nobody "
                    "(unknown: discarded, nothing stored) or tp (valid: "
                    "stored and delivered)")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if not re.fullmatch(r"\d+\s*(ms|s)?", args.floor):
        ap.error("--floor: a duration such as 5ms")
    modes = [m for m in args.modes.split(",") if m]
    if any(m not in MODES for m in modes):
        ap.error(f"--modes: some of {','.join(MODES)} (or empty)")
    root = tempfile.mkdtemp(prefix="mxgate-timing-")
    users_path = os.path.join(root, "users")
    with open(users_path, "w") as f:
        for k in range(args.n):
            f.write(f"user{k:05d}@{DOMAIN}\n")
        for k in range(args.tp_messages + 2):    # smtp-source -N names
            f.write(f"{k}tp@{DOMAIN}\n")
    print(f"bench-timing: {args.n} fresh sessions of each kind per mode, "
          f"one RCPT each, distinct /24 sources; seed {args.seed}",
          flush=True)
    bad = 0
    try:
        for run in range(args.runs):
            for mode in modes:
                r = run_mode(args, root, users_path, mode, args.floor)
                print(f"run {run + 1} " + fmt(r), flush=True)
                bad += r["same"] and r["p"] <= ALPHA
        if args.throughput:
            rates: dict[str, list[float]] = {args.floor: [], "0": []}
            for i in range(args.tp_runs):
                for fl in (args.floor, "0"):
                    rate = throughput(args, root, users_path, fl)
                    rates[fl].append(rate)
                    print(f"throughput c=50 discard to={args.tp_rcpt} "
                          f"floor={fl:5s} "
                          f"run {i + 1}: {rate:.0f} msg/s", flush=True)
            for fl, xs in rates.items():
                print(f"throughput c=50 discard to={args.tp_rcpt} "
                      f"floor={fl:5s} median "
                      f"{pct(xs, 0.5):.0f} msg/s over {len(xs)} runs "
                      f"({args.tp_messages} messages each)", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
