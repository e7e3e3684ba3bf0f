#!/usr/bin/env python3
"""
fleet-memory.py - Redis memory per tracked source under mxgate's shared
state key schema (src/fleet/fleet.h), measured on a throw-away
redis-server.  It runs the gateway's own script (read from
src/fleet/fleet.c, so it cannot drift) for N sources, as a gateway
does: NAMES distinct unknown names each (63-bit hashes), one valid
count, and a mark when --mark.  Prints INFO memory's used_memory delta
per source and MEMORY USAGE of one source's keys.

  tools/fleet-memory.py [--sources 100000] [--names 25] [--mark]
"""

import argparse
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def lua_script() -> str:
    src = open(os.path.join(HERE, "..", "src", "fleet", "fleet.c")).read()
    body = src.split("fleet_script[] =", 1)[1].split(";\n", 1)[0]
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"', body)
    return "".join(parts).encode().decode("unicode_escape")


def enc(*args) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class Conn:
    def __init__(self, port: int):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.buf = b""

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self.buf += self.s.recv(1 << 20)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t in (b"+", b":"):
            return int(rest) if t == b":" else rest.decode()
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.s.recv(1 << 20)
            d, self.buf = self.buf[:n], self.buf[n + 2:]
            return d
        if t == b"*":
            return [self.read() for _ in range(int(rest))]
        raise ValueError(line)

    def cmd(self, *args):
        self.s.sendall(enc(*args))
        return self.read()


def used(c: Conn) -> int:
    info = c.cmd("INFO", "memory").decode()
    return int(re.search(r"used_memory:(\d+)", info).group(1))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sources", type=int, default=100000)
    ap.add_argument("--names", type=int, default=25)
    ap.add_argument("--mark", action="store_true")
    ap.add_argument("--window-ms", type=int, default=3600000)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="fleet-mem-")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    p = subprocess.Popen(["redis-server", "--port", str(port), "--bind",
                          "127.0.0.1", "--save", "", "--appendonly", "no",
                          "--dir", tmp, "--daemonize", "no"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(500):
            try:
                c = Conn(port)
                if c.cmd("PING") == "PONG":
                    break
            except OSError:
                time.sleep(0.02)
        sha = c.cmd("SCRIPT", "LOAD", lua_script()).decode()
        before = used(c)
        now = int(time.time() * 1000)
        w = a.window_ms
        i = now // w
        rnd = random.Random(17)
        batch = []
        for k in range(a.sources):
            src = f"10.{k >> 16 & 255}.{k >> 8 & 255}.{k & 255}/32"
            keys = [f"mxgate:{{{src}}}:u:{i}", f"mxgate:{{{src}}}:u:{i - 1}",
                    f"mxgate:{{{src}}}:v:{i}", f"mxgate:{{{src}}}:v:{i - 1}",
                    f"mxgate:{{{src}}}:m"]
            names = [str(rnd.getrandbits(63)) for _ in range(a.names)]
            until = now + 86400000 if a.mark else 0
            batch.append(enc("EVALSHA", sha, 5, *keys, (i + 2) * w,
                             2 * max(a.names, 25), 1, until, "gw1.example",
                             *names))
            if len(batch) == 1000:
                c.s.sendall(b"".join(batch))
                for _ in batch:
                    c.read()
                batch = []
        if batch:
            c.s.sendall(b"".join(batch))
            for _ in batch:
                c.read()
        after = used(c)
        src = "10.0.0.7/32"
        per_key = {t: c.cmd("MEMORY", "USAGE", f"mxgate:{{{src}}}:{t}")
                   for t in (f"u:{i}", f"v:{i}", "m")}
        enc_u = c.cmd("OBJECT", "ENCODING", f"mxgate:{{{src}}}:u:{i}")
        ttl = c.cmd("PTTL", f"mxgate:{{{src}}}:u:{i}")
        print(f"sources={a.sources} names={a.names} mark={a.mark}")
        print(f"used_memory delta={after - before} bytes, "
              f"{(after - before) / a.sources:.0f} bytes per source")
        print(f"MEMORY USAGE one source: {per_key} "
              f"(set encoding {enc_u.decode() if enc_u else None}, "
              f"pttl {ttl} ms)")
        print(f"keys={c.cmd('DBSIZE')}")
    finally:
        p.terminate()               # ours, by its Popen handle
        p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
