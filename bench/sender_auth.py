#!/usr/bin/env python3
"""
sender_auth.py - what SPF and DKIM cost (issue 14): MAIL latency (SPF
runs there), end-of-data latency (DKIM runs there: the time from the
final "." to the 250) and 1 KB throughput at c=50, with SPF
(spf_policy = tag) and DKIM (dkim_verify = yes) on, and with both off,
and on/off as ratios.  The sender's domain has an SPF record that passes
and the message (1 KB) carries an RSA-2048 DKIM signature that passes;
both are answered by tests/spf_dns.py (python3-dnslib) on a free loopback
port with TTL 0 (nothing is cached: every message asks again).  The
message is signed once by tests/dkim_sign.py (python3-dkim) and sent as
it is.  Each run: a fresh gateway in a temp folder on free loopback
ports, delivery to Maildir; the kinds interleaved, RUNS runs, medians.
Throughput counts messages answered 250 per second of wall time (the
clients are Python threads: the same for both kinds, so the ratio is the
figure to read).  Every wait is bounded; the script stops only what it
started, by PID.

Usage: sender_auth.py --binary build/mxgate [--runs 3] [--latency 200]
       [--clients 50] [--messages 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
import mxlib  # noqa: E402
import test_spf as spf  # noqa: E402

SYSTEM_PYTHON = "/usr/bin/python3"  # the one with python3-dkim, dnslib
SIGN = os.path.join(HERE, "..", "tests", "dkim_sign.py")
SENDER = "bench@bench.test"


def make_keys(folder: str) -> tuple[str, str]:
    key = os.path.join(folder, "rsa.key")
    p = subprocess.run([SYSTEM_PYTHON, SIGN, "keygen", "rsa", key, "2048"],
                       check=True, capture_output=True, timeout=120)
    return key, p.stdout.decode().strip()


def signed_message(key: str) -> bytes:
    filler = ["x" * 70] * 12          # about 1 KB with the headers
    msg = mxlib.make_message("bench", filler, sender=SENDER)
    out = subprocess.run([SYSTEM_PYTHON, SIGN, "sign", "rsa", key,
                          "bench.test", "rsa", "relaxed/relaxed"],
                         input=msg, check=True, capture_output=True,
                         timeout=60).stdout
    return out.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def one_run(binary: str, on: bool, dns_port: int, msg: bytes,
            latency_n: int, clients: int, messages: int) -> dict:
    tmp = tempfile.mkdtemp(prefix="mxgate-sender-auth-")
    conf = {"log_level": "info", "workers": "2",
            "harvest_exempt": "127.0.0.0/8", "spool_min_free": "0",
            "max_connections_per_client": "5000",
            "max_connection_rate_per_client": "0",
            "dns_server": f"127.0.0.1:{dns_port}",
            "spf_policy": "tag" if on else "none",
            "dkim_verify": "yes" if on else "no"}
    gw = mxlib.Gateway(binary, os.path.join(tmp, "gw"), cwd=tmp, config=conf)
    errors: list[str] = []
    try:
        gw.start()
        mail_ms, eod_ms = [], []
        with mxlib.session(gw) as c:
            for _ in range(latency_n):
                t0 = time.monotonic()
                c.expect("250 2.1.0 Ok", f"MAIL FROM:<{SENDER}>")
                mail_ms.append((time.monotonic() - t0) * 1000)
                c.expect("250 2.1.5 Ok", "RCPT TO:<alice@example.test>")
                c.expect("354 *", "DATA")
                c.send(msg)
                t0 = time.monotonic()
                c.send(b".\r\n")
                c.expect("250 2.0.0 Ok: queued as *")
                eod_ms.append((time.monotonic() - t0) * 1000)

        def client(i: int) -> None:
            try:
                with mxlib.session(gw) as s:
                    for _ in range(messages):
                        s.expect("250 2.1.0 Ok", f"MAIL FROM:<{SENDER}>")
                        s.expect("250 2.1.5 Ok",
                                 "RCPT TO:<alice@example.test>")
                        s.expect("354 *", "DATA")
                        s.send(msg + b".\r\n")
                        s.expect("250 2.0.0 Ok: queued as *", timeout_s=60)
            except BaseException as e:
                errors.append(f"client {i}: {e}")

        threads = [threading.Thread(target=client, args=(i,))
                   for i in range(clients)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        wall = time.monotonic() - t0
        if errors:
            raise RuntimeError("; ".join(errors[:3]))
        if on:      # the figures are about verified mail: check it was
            line = gw.events("queued")[-1]["line"]
            if "dkim=pass" not in line:
                raise RuntimeError(f"DKIM did not pass: {line}")
        return {"mail_p50": statistics.median(mail_ms),
                "eod_p50": statistics.median(eod_ms),
                "eod_p99": sorted(eod_ms)[int(len(eod_ms) * 0.99) - 1],
                "rate": clients * messages / wall}
    finally:
        gw.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--latency", type=int, default=200,
                    help="messages timed one by one, per run")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--messages", type=int, default=20,
                    help="messages per client in the throughput part")
    a = ap.parse_args()
    folder = tempfile.mkdtemp(prefix="mxgate-sender-auth-dns-")
    dns = None
    try:
        key, p = make_keys(folder)
        msg = signed_message(key)
        dns = spf.DnsServer(folder, [
            ("bench.test", "TXT", "v=spf1 ip4:127.0.0.0/8 -all"),
            ("rsa._domainkey.bench.test", "TXT", f"v=DKIM1; k=rsa; p={p}"),
        ])
        got: dict[bool, list[dict]] = {True: [], False: []}
        for k in range(a.runs):
            for on in ((True, False) if k % 2 == 0 else (False, True)):
                got[on].append(one_run(a.binary, on, dns.port, msg,
                                       a.latency, a.clients, a.messages))
    finally:
        if dns is not None:
            dns.stop()
        shutil.rmtree(folder, ignore_errors=True)

    def med(on: bool, key: str) -> float:
        return statistics.median(r[key] for r in got[on])

    print(f"SPF pass + DKIM pass (rsa-2048, relaxed) vs both off, 1 KB, "
          f"{a.runs} runs, medians; DNS on loopback, TTL 0")
    for key, what, unit in (("mail_p50", "MAIL latency p50", "ms"),
                            ("eod_p50", "end-of-data latency p50", "ms"),
                            ("eod_p99", "end-of-data latency p99", "ms"),
                            ("rate", f"throughput c={a.clients}", "msg/s")):
        on, off = med(True, key), med(False, key)
        print(f"  {what:26s} on {on:8.2f} {unit:5s} off {off:8.2f} {unit:5s}"
              f" on/off {on / off if off else float('nan'):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
