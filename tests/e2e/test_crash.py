"""
test_crash.py - crash safety: nothing acknowledged is ever lost.
Covers: several clients sending mail without pause while the gateway is
killed with SIGKILL at random moments (at least 20 times, fixed seed) and
restarted on the same spool and Maildir; after a last clean run has
delivered everything, every message whose 250 a client saw is in the
Maildir of each of its recipients, exactly once, from the queue id of that
250, byte for byte; nothing is delivered that was never sent to its end.
A kill that falls between the Maildir link and the queue bookkeeping makes
the next run deliver again: the file name is derived from the queue id and
the recipient index, so the redelivery must land on the same name (counted
as "redelivered", never as a duplicate).  kill -9 is not a power cut: this
proves the order of the steps, not that fsync reaches the platter.
Slow: 40-60 s (the kills stop after 40 or 45 s), then the final drain.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time

import mxlib
from mxlib import check

SEED = 20261128
CLIENTS = 4  # sending threads, each from its own 127.0.5.x address
MIN_KILLS = 20
MAX_KILLS = 40
KILL_PHASE_S = 45.0  # the kills stop here (time checked before each)
DRAIN_S = 60.0  # the final clean run must empty the queue within this
USERS = ("alice", "bob", "carol")

QUEUED = re.compile(rb"^250 2\.0\.0 Ok: queued as ([0-9A-F]{16})\r\n$")
NAME = re.compile(r"^\d+\.M([0-9A-F]{16})R(\d+)\.")
TOKEN = re.compile(rb"^X-Crash-Id: (crash-\d+-\d+)$", re.M)
RECEIVED_ID = re.compile(rb" id ([0-9A-F]{16})\b")


def figures(line: str) -> None:
    """Print a result line; append it to $MXGATE_E2E_FIGURES if set."""
    print(line, flush=True)
    path = os.environ.get("MXGATE_E2E_FIGURES")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


class Sender(threading.Thread):
    """Sends one message after another until told to stop; records, for
    each unique id, its recipients, how far it got, and the queue id."""

    def __init__(self, gw: mxlib.Gateway, n: int, stop: threading.Event):
        super().__init__(daemon=True, name=f"sender{n}")
        self.gw, self.n, self.stop = gw, n, stop
        self.src = f"127.0.5.{n + 1}"
        self.rng = random.Random(SEED * 31 + n)
        self.seq = 0
        # uid -> {"rcpts": [...], "msg": bytes, "state": str, "qid": str}
        self.log: dict[str, dict] = {}
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.one_session()
        except BaseException as e:  # reported by the test, never lost
            self.error = e

    def connect(self) -> mxlib.Client | None:
        try:
            c = mxlib.Client(self.gw.port, bind=self.src, timeout_s=5.0)
        except OSError:
            self.stop.wait(0.01)  # down between a kill and a restart
            return None
        try:
            c.greet()
            c.ehlo()
            return c
        except (OSError, mxlib.TestFailure):
            c.close()
            return None

    def one_session(self) -> None:
        c = self.connect()
        if c is None:
            return
        with c:
            for _ in range(self.rng.randint(1, 5)):
                if self.stop.is_set() or not self.one_message(c):
                    return
            try:
                c.cmd("QUIT")
            except (OSError, mxlib.TestFailure):
                pass

    def one_message(self, c: mxlib.Client) -> bool:
        """One transaction; False when the session is gone."""
        self.seq += 1
        uid = f"crash-{self.n}-{self.seq}"
        k = self.rng.choice((1, 1, 2, 3))
        rcpts = [f"{u}@example.test" for u in self.rng.sample(USERS, k)]
        msg = message(uid, rcpts, self.rng.randint(0, 40))
        rec = {"rcpts": rcpts, "msg": msg, "state": "started", "qid": None}
        self.log[uid] = rec
        try:
            c.expect("250 2.1.0 Ok", "MAIL FROM:<sender@remote.test>")
            for r in rcpts:
                c.expect("250 2.1.5 Ok", f"RCPT TO:<{r}>")
            c.expect("354 *", "DATA")
            c.send(msg + b".\r\n")
            rec["state"] = "data_sent"  # delivered or not: both are fine
            r = c.reply(10.0)
        except (OSError, mxlib.TestFailure):
            return False
        m = QUEUED.match(r.raw)
        if m:
            rec["state"], rec["qid"] = "acked", m.group(1).decode()
            return True
        rec["state"] = f"refused {r.text}"
        return r.code < 400 or r.code >= 500


def message(uid: str, rcpts: list[str], lines: int) -> bytes:
    head = [f"From: <sender@remote.test>", f"To: {', '.join(rcpts)}",
            f"Subject: {uid}", f"Message-ID: <{uid}@crash.test>",
            f"X-Crash-Id: {uid}", ""]
    body = [f"{uid} line {i} " + "z" * (i % 70) for i in range(lines)]
    return ("\r\n".join(head + body) + "\r\n").encode()


def snapshot(gw: mxlib.Gateway) -> tuple[set[str], set[tuple[str, int]]]:
    """(queue ids in SPOOL/queue, (qid, index) of every Maildir file)."""
    try:
        queued = set(os.listdir(os.path.join(gw.spool_dir, "queue")))
    except FileNotFoundError:
        queued = set()
    files = set()
    for p in gw.all_mail_files():
        m = NAME.match(os.path.basename(p))
        if m and os.path.basename(os.path.dirname(p)) == "new":
            files.add((m.group(1), int(m.group(2))))
    return queued, files


def kill_moment(gw: mxlib.Gateway, rng: random.Random, mark: int) -> str:
    """Wait for a moment to kill at; returns how it was chosen."""
    mode = rng.choice(("startup", "random", "random", "random",
                       "after_queued", "after_delivered"))
    if mode == "startup":  # recovery: the queue scan, the first deliveries
        time.sleep(rng.uniform(0.0, 0.05))
        return mode
    # Traffic first: at least one message queued by this run (bounded).
    gw.wait_event("queued", timeout_s=15.0, since=mark)
    if mode == "random":
        time.sleep(rng.uniform(0.0, 2.0))
    else:
        name = "queued" if mode == "after_queued" else "delivered"
        seen = len(gw.events(name, since=mark))
        mxlib.wait_until(lambda: len(gw.events(name, since=mark)) > seen,
                         10.0, f"a new event={name}", 0.005)
        time.sleep(rng.uniform(0.0, 0.004))
    return mode


def scan_maildir(gw: mxlib.Gateway) -> dict[tuple[str, str], list[dict]]:
    """(uid, recipient) -> the delivered files holding it."""
    out: dict[tuple[str, str], list[dict]] = {}
    for p in gw.all_mail_files():
        parts = p.split(os.sep)
        if parts[-2] != "new":
            continue
        with open(p, "rb") as f:
            data = f.read()
        tok = TOKEN.search(data)
        check(tok, f"{p}: a delivered file without X-Crash-Id")
        m = NAME.match(parts[-1])
        check(m, f"{p}: file name not <time>.M<qid>R<index>.<host>")
        rcv = RECEIVED_ID.search(data.split(b"\n\n", 1)[0])
        out.setdefault((tok.group(1).decode(), f"{parts[-3]}@{parts[-4]}"),
                       []).append({"path": p, "qid": m.group(1),
                                   "index": int(m.group(2)), "data": data,
                                   "rcv_qid": rcv.group(1).decode()
                                   if rcv else None})
    return out


@mxlib.timeout(150)
def test_kill9_under_load_loses_nothing(gw_factory):
    # Reconnect storms after each restart: no per-client rate limit.
    gw = gw_factory(config={"retry_min": "1s", "retry_max": "2s",
                            "log_level": "info",
                            "max_connection_rate_per_client": "0"})
    rng = random.Random(SEED)
    stop = threading.Event()
    senders = [Sender(gw, n, stop) for n in range(CLIENTS)]
    kills, modes, in_flight, backlog = 0, {}, set(), [0, 0]
    t0 = time.monotonic()
    for s in senders:
        s.start()
    try:
        mark = gw.run_mark
        while kills < MAX_KILLS and (time.monotonic() - t0 < KILL_PHASE_S
                                     or kills < MIN_KILLS):
            check(time.monotonic() - t0 < KILL_PHASE_S + 25,
                  f"only {kills} kills in {KILL_PHASE_S + 25:g}s")
            for s in senders:
                check(s.is_alive(), f"{s.name} died: {s.error!r}")
            mode = kill_moment(gw, rng, mark)
            gw.kill9()
            kills += 1
            modes[mode] = modes.get(mode, 0) + 1
            queued, files = snapshot(gw)
            # Delivered to a Maildir, queue file still there: the kill fell
            # mid-delivery, and the next run will deliver it again.
            done = {q for q, _ in files} & queued
            in_flight |= done
            backlog[0] = max(backlog[0], len(queued))
            backlog[1] = max(backlog[1], len(done))
            gw.start()
            mark = gw.run_mark
        kill_s = time.monotonic() - t0
        # The last run is clean: senders stop, the queue drains.
        gw.wait_event("queued", timeout_s=15.0, since=mark)
    finally:
        stop.set()
        for s in senders:
            s.join(15.0)
    for s in senders:
        check(not s.is_alive(), f"{s.name} did not stop")
        check(s.error is None, f"{s.name} failed: {s.error!r}")
    mxlib.wait_until(lambda: not any(
        f.startswith(("queue/", "incoming/")) for f in gw.spool_files()),
        DRAIN_S, "the queue to drain after the last restart")
    rc = gw.stop()
    check(rc == 0, f"exit status {rc} after SIGTERM on the clean run")
    verify(gw, senders, kills, modes, len(in_flight), backlog, kill_s)


def verify(gw, senders, kills, modes, in_flight, backlog, kill_s) -> None:
    sent: dict[str, dict] = {}
    for s in senders:
        sent.update(s.log)
    delivered = scan_maildir(gw)
    acked = {u: r for u, r in sent.items() if r["state"] == "acked"}
    lost, dups, wrong, phantom, late = [], [], [], [], 0
    for (uid, rcpt), files in delivered.items():
        rec = sent.get(uid)
        if (rec is None or rec["state"] == "started"
                or rcpt not in rec["rcpts"]):
            phantom.append((uid, rcpt))  # never sent to its end, or not to it
            continue
        if len(files) > 1:
            dups.append((uid, rcpt, [f["path"] for f in files]))
        if rec["state"] != "acked":
            late += 1  # committed, but the kill beat the 250: fine
        for f in files:
            body = mxlib.split_received(f["data"])[1]
            if (body != mxlib.expected_delivery(rec["msg"])
                    or f["rcv_qid"] != f["qid"]
                    or f["index"] != rec["rcpts"].index(rcpt)
                    or (rec["qid"] and f["qid"] != rec["qid"])):
                wrong.append((uid, rcpt, f["path"], rec["qid"]))
    for uid, rec in acked.items():
        for rcpt in rec["rcpts"]:
            if (uid, rcpt) not in delivered:
                lost.append((uid, rcpt, rec["qid"]))
    pairs = sum(len(r["rcpts"]) for r in acked.values())
    redelivered = redeliveries(gw)
    tmp_left = [p for p in gw.all_mail_files()
                if p.split(os.sep)[-2] == "tmp"]
    how = ", ".join(f"{k} {v}" for k, v in sorted(modes.items()))
    figures(f"crash: kills={kills} ({how}) in {kill_s:.1f}s; "
            f"messages: sent={len(sent)} "
            f"acknowledged={len(acked)} ({pairs} recipient copies) "
            f"delivered={sum(len(v) for v in delivered.values())} files "
            f"duplicates={len(dups)} lost={len(lost)} wrong={len(wrong)} "
            f"phantom={len(phantom)}; delivered_without_250={late}; "
            f"in_flight_at_kill={in_flight} "
            f"redelivered_same_name={redelivered} "
            f"max_queue_at_kill={backlog[0]} "
            f"max_delivered_not_removed={backlog[1]} "
            f"tmp_leftovers={len(tmp_left)}")
    check(kills >= MIN_KILLS, f"only {kills} kills")
    check(len(acked) >= 10 * kills, f"only {len(acked)} messages acknowledged "
          f"over {kills} kills: the load was too light to prove anything")
    check(not lost, f"{len(lost)} acknowledged copies lost, e.g. {lost[:5]}")
    check(not dups, f"{len(dups)} copies delivered twice, e.g. {dups[:3]}")
    check(not wrong, f"{len(wrong)} files with the wrong content, name or "
          f"queue id, e.g. {wrong[:3]}")
    check(not phantom, f"{len(phantom)} deliveries of messages never sent to "
          f"their end (or to someone else), e.g. {phantom[:5]}")


def redeliveries(gw: mxlib.Gateway) -> int:
    """(qid, recipient) pairs delivered by more than one run."""
    count: dict[tuple[str, str], int] = {}
    for ev in gw.events("delivered"):
        key = (ev.get("qid", ""), ev.get("to", ""))
        count[key] = count.get(key, 0) + 1
    return sum(1 for n in count.values() if n > 1)
