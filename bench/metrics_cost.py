#!/usr/bin/env python3
"""
metrics_cost.py - the CPU one message costs the gateway, with
metrics_listen off and on (scraped once a second while the mail flows),
and optionally for a second binary (e.g. one built without the counters)
for comparison.  Each run: a fresh gateway in a temp folder on free
loopback ports, CLIENTS sessions in parallel each sending MESSAGES
messages with one valid and one unknown recipient, delivery to Maildir;
the figure is the gateway process's user+system CPU time (from
/proc/PID/stat) over the run, divided by the messages, the medians of
RUNS runs, the kinds interleaved.  Every wait is bounded; the script
stops only the gateways it started, by PID.

Usage: metrics_cost.py --binary build/mxgate [--base OTHER_BINARY]
       [--runs 5] [--clients 8] [--messages 250]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "e2e"))
import mxlib  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def one_run(binary: str, metrics: bool, clients: int, messages: int
            ) -> float:
    tmp = tempfile.mkdtemp(prefix="mxgate-metrics-cost-")
    conf = {"log_level": "warning", "workers": "2",
            "harvest_exempt": "127.0.0.0/8", "spool_min_free": "0"}
    mport = mxlib.free_port()
    if metrics:
        conf["metrics_listen"] = f"127.0.0.1:{mport}"
    gw = mxlib.Gateway(binary, os.path.join(tmp, "gw"), cwd=tmp, config=conf)
    stop = threading.Event()
    errors: list[str] = []
    try:
        gw.port = mxlib.free_port()
        gw.write_config()
        gw.run_mark = gw.log_mark()
        gw._spawn()
        mxlib.wait_until(lambda: _connects(gw.port), 30.0, "the gateway")

        def scraper() -> None:
            while not stop.wait(1.0):
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{mport}/metrics", timeout=10) as r:
                    r.read()

        def client(i: int) -> None:
            try:
                with mxlib.session(gw, bind=f"127.0.8.{i + 1}") as c:
                    for j in range(messages):
                        c.expect("250 2.1.0 Ok", "MAIL FROM:<s@remote.test>")
                        c.expect("250 2.1.5 Ok",
                                 "RCPT TO:<alice@example.test>")
                        c.expect("550 5.1.1 *",
                                 f"RCPT TO:<nobody{j}@example.test>")
                        c.expect("354 *", "DATA")
                        c.send(mxlib.make_message(f"c{i}m{j}") + b".\r\n")
                        c.expect("250 2.0.0 Ok: queued as *")
            except BaseException as e:
                errors.append(f"client {i}: {e}")

        t0 = cpu_s(gw.proc.pid)
        threads = [threading.Thread(target=client, args=(i,))
                   for i in range(clients)]
        if metrics:
            threads.append(threading.Thread(target=scraper, daemon=True))
        for t in threads:
            t.start()
        for t in threads[:clients]:
            t.join(600)
        total = clients * messages
        if errors:
            raise RuntimeError("; ".join(errors[:3]))
        gw.wait_maildir("example.test", "alice", count=total, timeout_s=300)
        mxlib.wait_until(lambda: not gw.spool_files(), 120.0, "empty spool")
        used = cpu_s(gw.proc.pid) - t0
        if errors:
            raise RuntimeError("; ".join(errors[:3]))
        return used / total
    finally:
        stop.set()
        gw.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _connects(port: int) -> bool:
    try:
        mxlib.Client(port, timeout_s=2).close()
        return True
    except OSError:
        return False


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--base", help="another binary to compare (metrics off)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--messages", type=int, default=250)
    a = ap.parse_args()
    kinds = [("metrics off", a.binary, False), ("metrics on, scraped 1/s",
                                                a.binary, True)]
    if a.base:
        kinds.insert(0, ("base binary", a.base, False))
    got: dict[str, list[float]] = {k[0]: [] for k in kinds}
    for _ in range(a.runs):
        for name, binary, metrics in kinds:
            got[name].append(one_run(binary, metrics, a.clients, a.messages))
    print(f"{a.clients} sessions x {a.messages} messages (1 valid + 1 "
          f"unknown RCPT each), {a.runs} runs, median CPU per message:")
    for name, v in got.items():
        print(f"  {name:28s} {statistics.median(v) * 1e6:8.1f} us   "
              f"(runs: {', '.join(f'{x * 1e6:.0f}' for x in v)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
