"""
test_fleet.py - a fleet of gateways sharing harvest state in Redis
(issue 17, src/fleet/).  Real redis-server processes on free loopback
ports in the test's folder (--save "", stopped by PID); a fake Redis in
this process for the garbage and slow cases.
Covers: a harvester alternating between two gateways is marked after as
many distinct unknown names (+-2) as against one gateway, and then both
answer it uniformly; Redis killed mid-attack: both gateways keep marking
on their local counts, log shared_state=down, honest clients are served
without waiting on Redis; Redis back: shared_state=up and the marks made
while down are in Redis; a fake Redis answering garbage or never: the
degrade path, no hang, no crash; check-config refuses a password file
others may read and a bad URL; Sentinel (one master, one replica, three
sentinels): the master killed, both gateways on the new master within
10 s, earlier marks in force; `harvest list` says scope=local or
scope=fleet by=GATEWAY.
Clients act as different hosts by binding to addresses in 127.0.0.0/8.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time

import mxlib
import test_metrics
from mxlib import check, check_eq, fail

RCPT_OK = b"250 2.1.5 Ok\r\n"
UNIFORM = b"450 4.7.1 Try again later\r\n"
BOUND_S = 60.0
THRESHOLD = 10
# A loaded machine (two cores, ASan) may answer later than the default
# 50 ms and turn a healthy Redis "down"; the fake-Redis case keeps 50 ms.
FAST = {"harvest_tarpit_delay": "100ms", "harvest_tarpit_max": "200ms",
        "shared_state_timeout": "500ms",
        "harvest_threshold": str(THRESHOLD),
        "harvest_session_limit": "1000"}


# ------------------------------------------------------------ Redis

def resp_encode(*args: str | bytes) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a.encode() if isinstance(a, str) else a
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class RespReader:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = b""

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            got = self.sock.recv(65536)
            if not got:
                raise ConnectionError("redis closed")
            self.buf += got
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n + 2:
            got = self.sock.recv(65536)
            if not got:
                raise ConnectionError("redis closed")
            self.buf += got
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ValueError(f"bad RESP line {line!r}")


class Redis:
    """A real redis-server on 127.0.0.1; stopped by its PID."""

    def __init__(self, folder: str, port: int | None = None):
        self.port = port or mxlib.free_port()
        self.dir = os.path.join(folder, f"redis-{self.port}")
        os.makedirs(self.dir, exist_ok=True)
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        log = open(os.path.join(self.dir, "redis.log"), "ab")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind",
             "127.0.0.1", "--save", "", "--appendonly", "no", "--dir",
             self.dir, "--daemonize", "no"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        mxlib.wait_until(self._pings, 30, "redis-server answers PING")

    def _pings(self) -> bool:
        if self.proc.poll() is not None:
            fail(f"redis-server exited with {self.proc.returncode}")
        try:
            return self.cmd("PING") == "PONG"
        except OSError:
            return False

    def cmd(self, *args: str):
        with socket.create_connection(("127.0.0.1", self.port),
                                      timeout=10) as s:
            s.sendall(resp_encode(*args))
            return RespReader(s).read()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()            # ours, by its Popen handle
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


class FakeRedis:
    """Accepts connections; answers every read with `answer` (garbage),
    or never answers (answer None)."""

    def __init__(self, answer: bytes | None):
        self.answer = answer
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.reads = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _serve(self, c: socket.socket) -> None:
        try:
            while not self.stopping:
                got = c.recv(65536)
                if not got:
                    return
                self.reads += 1
                if self.answer is not None:
                    c.sendall(self.answer)
        except OSError:
            return

    def _run(self) -> None:
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    def stop(self) -> None:
        self.stopping = True
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


# ------------------------------------------------------------ helpers

def fleet_gw(gw_factory, redis_port: int, **conf: str) -> mxlib.Gateway:
    settings = dict(FAST)
    settings["shared_state"] = f"redis://127.0.0.1:{redis_port}"
    settings.update(conf)
    return gw_factory(config=settings)


def mail_session(gw, src: str) -> mxlib.Client:
    c = mxlib.session(gw, bind=src)
    try:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
    except BaseException:
        c.close()
        raise
    return c


def names_until_uniform(clients: list[mxlib.Client], tag: str,
                        limit: int = 60) -> int:
    """Unknown names sent round-robin over clients until one answers
    uniformly: how many distinct names were answered otherwise."""
    for i in range(limit):
        c = clients[i % len(clients)]
        r = c.cmd(f"RCPT TO:<{tag}{i}@example.test>", timeout_s=BOUND_S)
        if r.raw == UNIFORM:
            return i
        check(r.raw.startswith(b"550 5.1.1"), f"name {i}: {r.raw!r}")
    fail(f"no uniform answer after {limit} unknown names")
    return limit


def wait_uniform(gw, src: str, what: str) -> None:
    """A fresh session of src gets the uniform answer, for a valid name,
    within a few tries (a gateway learns a mark within a second)."""
    deadline = time.monotonic() + 10
    while True:
        with mail_session(gw, src) as c:
            r = c.cmd("RCPT TO:<alice@example.test>", timeout_s=BOUND_S)
            if r.raw == UNIFORM:
                r2 = c.cmd("RCPT TO:<nobody-x@example.test>",
                           timeout_s=BOUND_S)
                check_eq(r2.raw, UNIFORM, f"{what}: unknown name")
                return
        check(time.monotonic() < deadline, f"{what}: valid name still "
              f"answered {r.raw!r}")


def harvest_line(ctx, gw, src: str) -> str:
    p = ctx.run_binary(["harvest", "list", "-c", gw.conf_path])
    out = p.stdout.decode("utf-8", "replace")
    check_eq(p.returncode, 0, f"harvest list: {p.stderr!r}")
    mine = [ln for ln in out.splitlines() if ln.split(" ")[0] == src]
    check_eq(len(mine), 1, f"lines for {src} in {out!r}")
    return mine[0]


def marks_in_redis(redis: Redis, src: str) -> bytes | None:
    return redis.cmd("GET", f"mxgate:{{{src}}}:m")


# ------------------------------------------------------------ tests

def test_fleet_alternating_harvester_marked_as_against_one(ctx, gw_factory):
    single = gw_factory(config=dict(FAST))
    with mail_session(single, "127.0.31.1") as c:
        alone = names_until_uniform([c], "solo")
    redis = Redis(ctx.tmpdir)
    try:
        a = fleet_gw(gw_factory, redis.port)
        b = fleet_gw(gw_factory, redis.port)
        for gw in (a, b):
            gw.wait_event("fleet", BOUND_S, shared_state="up")
        src = "127.0.32.1"
        with mail_session(a, src) as ca, mail_session(b, src) as cb:
            fleet = names_until_uniform([ca, cb], "alt")
        print(f"names before uniform: one gateway {alone}, "
              f"two gateways alternating {fleet}")
        check(abs(fleet - alone) <= 2, f"alternating over two gateways: "
              f"marked after {fleet} names, against one after {alone}")
        for gw, name in ((a, "a"), (b, "b")):
            wait_uniform(gw, src, f"gateway {name}")
        got = marks_in_redis(redis, src + "/32")
        check(got is not None and b" " in got, f"mark in Redis: {got!r}")
        # An honest client beside it is served on both.
        for gw in (a, b):
            with mail_session(gw, "127.0.33.1") as c:
                c.expect("250 2.1.5 Ok", "RCPT TO:<alice@example.test>")
    finally:
        redis.stop()


def metric(port: int, name: str) -> float:
    for line in test_metrics.scrape(port).splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    fail(f"no {name} in /metrics")
    return 0.0


def test_fleet_redis_killed_local_counts_enforce(ctx, gw_factory):
    redis = Redis(ctx.tmpdir)
    try:
        settings = dict(FAST)
        settings["shared_state"] = f"redis://127.0.0.1:{redis.port}"
        a, mport = test_metrics.metrics_gateway(gw_factory, **settings)
        b = fleet_gw(gw_factory, redis.port)
        for gw in (a, b):
            gw.wait_event("fleet", BOUND_S, shared_state="up")
        src = "127.0.41.1"
        with mail_session(a, src) as ca, mail_session(b, src) as cb:
            for i in range(4):
                for c in (ca, cb):
                    r = c.cmd(f"RCPT TO:<pre{i}-{id(c)}@example.test>",
                              timeout_s=BOUND_S)
                    check(r.raw.startswith(b"550"), f"before: {r.raw!r}")
        marks = [gw.log_mark() for gw in (a, b)]
        redis.kill()
        for gw, m in zip((a, b), marks):
            gw.wait_event("fleet", BOUND_S, since=m, shared_state="down")
        check_eq(metric(mport, "mxgate_shared_state_configured"), 1.0,
                 "configured")
        check_eq(metric(mport, "mxgate_shared_state_up"), 0.0, "up, down")
        check(metric(mport, "mxgate_shared_state_down_total") >= 1,
              "down_total")
        # Both keep marking on local counts: a harvester on each alone.
        for gw, s in ((a, "127.0.42.1"), (b, "127.0.43.1")):
            with mail_session(gw, s) as c:
                n = names_until_uniform([c], "down")
            check(THRESHOLD - 1 <= n <= THRESHOLD + 2,
                  f"{s} marked locally after {n} names")
            wait_uniform(gw, s, f"{s} while Redis is down")
        line = harvest_line(ctx, a, "127.0.42.1")
        check(line.startswith("127.0.42.1 uniform ") and
              line.endswith(" scope=local"), f"harvest list, down: {line!r}")
        # Honest clients are served, and no RCPT waits on Redis.
        times = []
        for gw in (a, b):
            with mail_session(gw, "127.0.44.1") as c:
                for i in range(20):
                    t0 = time.monotonic()
                    c.expect("250 2.1.5 Ok", "RCPT TO:<alice@example.test>")
                    times.append(time.monotonic() - t0)
        times.sort()
        p99 = times[int(len(times) * 0.99) - 1]
        print(f"honest RCPT while Redis is down: p99 {p99 * 1000:.1f} ms")
        check(p99 < 2.0, f"honest RCPT p99 {p99:.3f}s while Redis is down")
        for gw in (a, b):
            undelayed = [e for e in gw.events("tarpit")
                         if e.get("client") == "127.0.44.1"]
            check(not undelayed, f"honest client tarpitted: {undelayed}")
        # Redis back (empty: --save ""): the gateways reconnect and push
        # the marks made while it was down.
        marks = [gw.log_mark() for gw in (a, b)]
        redis.start()
        for gw, m in zip((a, b), marks):
            gw.wait_event("fleet", BOUND_S, since=m, shared_state="up")
        for s in ("127.0.42.1", "127.0.43.1"):
            mxlib.wait_until(lambda: marks_in_redis(redis, s + "/32"),
                             BOUND_S, f"mark of {s} pushed to Redis")
        check_eq(metric(mport, "mxgate_shared_state_up"), 1.0, "up, back")
        check(metric(mport, "mxgate_shared_state_held_marks_pushed_total")
              >= 1, "held marks pushed")
        # And state is shared again: b learns a's mark.
        wait_uniform(b, "127.0.42.1", "gateway b, a's mark made while down")
        for gw in (a, b):
            line = harvest_line(ctx, gw, "127.0.42.1")
            # by= is the marking gateway's hostname (both share one here:
            # mxlib's clients expect it in the greeting)
            check(line.endswith(f" scope=fleet by={mxlib.HOSTNAME}"),
                  f"harvest list, back: {line!r}")
    finally:
        redis.stop()


@mxlib.params([b"%%%this is not RESP\r\n", b"+OK\r\n", None],
              ids=["garbage", "wrong_type", "silent"])
def test_fleet_fake_redis_degrades(gw_factory, param):
    fake = FakeRedis(param)
    try:
        gw = fleet_gw(gw_factory, fake.port, shared_state_timeout="50ms")
        src = "127.0.51.1"
        # Traffic makes requests; each RCPT is answered without waiting.
        for k in range(3):
            with mail_session(gw, "127.0.52.1") as c:
                for i in range(5):
                    t0 = time.monotonic()
                    c.expect("250 2.1.5 Ok", "RCPT TO:<alice@example.test>")
                    check(time.monotonic() - t0 < 5.0, "RCPT answered late")
        gw.wait_event("fleet", BOUND_S, shared_state="down")
        with mail_session(gw, src) as c:
            n = names_until_uniform([c], "fake")
        check(THRESHOLD - 1 <= n <= THRESHOLD + 2,
              f"marked locally after {n} names")
        gw.check_alive()
        check(fake.reads > 0, "the fake Redis was never written to")
    finally:
        fake.stop()


def test_fleet_check_config(ctx, gw_factory):
    gw = gw_factory(start=False, config={
        "shared_state": "redis://127.0.0.1:6379",
        "shared_state_password_file": "redis.pw"})
    gw.port = mxlib.free_port()
    pw = os.path.join(gw.dir, "redis.pw")
    with open(pw, "w") as f:
        f.write("secret\n")
    os.chmod(pw, 0o644)
    gw.write_config()
    p = ctx.run_binary(["check-config", "-c", gw.conf_path])
    err = p.stderr.decode()
    check_eq(p.returncode, 1, "exit status, password file mode 0644")
    check("lets group or others at the password" in err, f"check-config said {err!r}")
    os.chmod(pw, 0o600)
    p = ctx.run_binary(["check-config", "-c", gw.conf_path])
    check_eq(p.returncode, 0, f"mode 0600: {p.stderr.decode()!r}")
    gw.settings["shared_state"] = "redis://127.0.0.1:99999"
    gw.write_config()
    p = ctx.run_binary(["check-config", "-c", gw.conf_path])
    err = p.stderr.decode()
    check_eq(p.returncode, 1, "exit status, bad port")
    line = [n for n, l in enumerate(open(gw.conf_path), 1)
            if l.startswith("shared_state ")][0]
    check(f"mxgate.conf:{line}:" in err and "port" in err,
          f"check-config named no line {line}: {err!r}")


class Sentinel:
    """A redis-sentinel watching master `mym`; stopped by its PID."""

    def __init__(self, folder: str, master_port: int):
        self.port = mxlib.free_port()
        self.dir = os.path.join(folder, f"sentinel-{self.port}")
        os.makedirs(self.dir, exist_ok=True)
        conf = os.path.join(self.dir, "sentinel.conf")
        with open(conf, "w") as f:
            f.write(f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
                    f"sentinel monitor mym 127.0.0.1 {master_port} 2\n"
                    "sentinel down-after-milliseconds mym 1000\n"
                    "sentinel failover-timeout mym 5000\n"
                    "sentinel parallel-syncs mym 1\n")
        log = open(os.path.join(self.dir, "sentinel.log"), "ab")
        self.proc = subprocess.Popen(["redis-sentinel", conf],
                                     stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=log)
        log.close()

    def cmd(self, *args: str):
        with socket.create_connection(("127.0.0.1", self.port),
                                      timeout=10) as s:
            s.sendall(resp_encode(*args))
            return RespReader(s).read()

    def master(self):
        try:
            got = self.cmd("SENTINEL", "get-master-addr-by-name", "mym")
        except OSError:
            return None
        return int(got[1]) if isinstance(got, list) else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()        # ours, by its Popen handle
                self.proc.wait()


def test_fleet_sentinel_failover(ctx, gw_factory):
    master = Redis(ctx.tmpdir)
    replica = Redis(ctx.tmpdir)
    sentinels: list[Sentinel] = []
    try:
        check_eq(replica.cmd("REPLICAOF", "127.0.0.1", str(master.port)),
                 "OK", "REPLICAOF")
        mxlib.wait_until(lambda: b"master_link_status:up" in
                         replica.cmd("INFO", "replication"), BOUND_S,
                         "replica in sync")
        sentinels = [Sentinel(ctx.tmpdir, master.port) for _ in range(3)]
        for s in sentinels:
            mxlib.wait_until(lambda: s.master() == master.port, BOUND_S,
                             "sentinel knows the master")
        # the sentinels must see each other and the replica to fail over
        mxlib.wait_until(lambda: all(
            int(dict(zip(*[iter(s.cmd("SENTINEL", "master", "mym"))] * 2))
                [b"num-other-sentinels"]) == 2 for s in sentinels),
            BOUND_S, "sentinels see each other")
        url = "redis-sentinel://" + ",".join(
            f"127.0.0.1:{s.port}" for s in sentinels) + "/mym"
        a = gw_factory(config=dict(FAST, shared_state=url))
        b = gw_factory(config=dict(FAST, shared_state=url))
        for gw in (a, b):
            gw.wait_event("fleet", BOUND_S, shared_state="up")
        src = "127.0.61.1"
        with mail_session(a, src) as c:
            names_until_uniform([c], "before")
        mxlib.wait_until(lambda: marks_in_redis(master, src + "/32"),
                         BOUND_S, "mark on the master")
        mxlib.wait_until(lambda: marks_in_redis(replica, src + "/32"),
                         BOUND_S, "mark replicated")
        marks = [gw.log_mark() for gw in (a, b)]
        master.kill()
        t0 = time.monotonic()
        mxlib.wait_until(lambda: sentinels[0].master() == replica.port,
                         BOUND_S, "failover to the replica")
        for gw, m in zip((a, b), marks):
            gw.wait_event("fleet", BOUND_S, since=m, shared_state="switch")
            gw.wait_event("fleet", BOUND_S, since=m, shared_state="up")
        up_s = time.monotonic() - t0
        check(up_s < 10, f"gateways on the new master {up_s:.1f}s after "
              "the kill")
        # Both write to the new master within 10 s of the kill, and the
        # earlier mark is still in force on both.
        src2 = "127.0.62.1"
        with mail_session(b, src2) as c:
            names_until_uniform([c], "after")
        mxlib.wait_until(lambda: marks_in_redis(replica, src2 + "/32"),
                         BOUND_S, "new mark on the new master")
        took = time.monotonic() - t0
        print(f"failover: both gateways connected to the new master "
              f"{up_s:.1f}s after the kill; a new mark written there "
              f"{took:.1f}s after it (a harvest of {THRESHOLD} names in "
              "between)")
        for gw in (a, b):
            wait_uniform(gw, src, "earlier mark after the failover")
    finally:
        for s in sentinels:
            s.stop()
        master.stop()
        replica.stop()
