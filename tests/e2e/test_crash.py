"""
test_crash.py - crash safety: nothing acknowledged is ever lost.
Covers: several clients sending mail without pause (one of them large
messages, so the journal rotates its 16 MB segments and removes the old
ones) to three next-hop kinds at once: example.test to a Maildir, smtp.test
to an SMTP server (peers.PySink), lmtp.test to Dovecot's LMTP; some
recipients are refused for good by their next hop (550 at RCPT), so NDRs
are built and queued to a sender that passes the backscatter guard (sent on
to the relayhost, another PySink).  Meanwhile the gateway is killed with
SIGKILL CRASH_KILLS times (default 30; `make crash-test` does 100 or more)
at random moments of chosen phases and restarted on the same spool:

  startup      during recovery and the first deliveries after a restart
  receiving    while a large message is streaming in (DATA)
  commit       just after a 250 (the next group commit's journal sync)
  compaction   just after a journal segment was started or removed
  maildir      just after a delivery to the Maildir
  smtp         just after the SMTP next hop sent its 250 (before our mark)
  lmtp         just after a delivery to Dovecot
  dsn          just after an NDR was built and queued

After a last clean run has emptied the queue, each next hop is read by
Message-ID (X-Crash-Id): every recipient of a message whose 250 a client saw
got it exactly once, or once more when the kill fell between the next hop's
250 and our record of it (counted and reported as duplicated).  A message
whose delivery spans several runs can be caught so by more than one kill:
the extra copies of a recipient may not outnumber the kills that fell
while its message was queued (from its event=queued to its last
event=removed), so every extra copy is one kill's; those with more than
one extra are counted apart.  Every refused recipient of such a message
brought an NDR, and NDRs beyond the first are, likewise, each a kill's
(one that made the gateway build another, or one while an NDR was queued);
nothing arrived that was never sent to its end or not to that recipient.  The Maildir copies are byte for byte and named after
the queue id of the 250 (a redelivery lands on the same name).  kill -9 is
not a power cut: this proves the order of the steps, not that fsync reaches
the platter.  Slow: about 2-3 s a kill; figures are printed (run.py -v).
"""

from __future__ import annotations

import bisect
import datetime
import os
import random
import re
import threading
import time

import mxlib
import peers
from mxlib import check

SEED = int(os.environ.get("CRASH_SEED", "20261207"))
KILLS = max(1, int(os.environ.get("CRASH_KILLS", "30")))
CLIENTS = 4  # small messages, each from its own 127.0.5.x address
BIG = 384 * 1024  # the large sender's messages: 16 MB is ~40 of them
JOURNAL_SEG_MAX = 16 << 20  # src/queue/journal.c rotates a segment here
BOUND_S = 60.0  # the bound of every wait (a poll, not a claim of speed)
PHASES = ("startup", "receiving", "commit", "compaction", "maildir", "smtp",
          "lmtp", "dsn")
SENDER = "sender@remote.test"  # not ours: the backscatter guard lets NDRs go
MAILDIR_USERS = ("alice@example.test", "bob@example.test",
                 "carol@example.test")
SMTP_USERS = ("alice@smtp.test", "bob@smtp.test")
LMTP_USERS = ("dave@lmtp.test", "erin@lmtp.test")
BOUNCE = ("gone@smtp.test", "gone@lmtp.test")  # in our directory only
DOMAIN_OF = {"example.test": "maildir", "smtp.test": "smtp",
             "lmtp.test": "lmtp"}

QUEUED = re.compile(rb"^250 2\.0\.0 Ok: queued as ([0-9A-F]{16})\r\n$")
NAME = re.compile(r"^\d+\.M([0-9A-F]{16})R(\d+)\.")
TOKEN = re.compile(rb"^X-Crash-Id: (crash-\d+-\d+)\r?$", re.M)
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

    def __init__(self, gw: mxlib.Gateway, n: int, stop: threading.Event,
                 big: bool = False):
        super().__init__(daemon=True, name=f"sender{n}")
        self.gw, self.n, self.stop, self.big = gw, n, stop, big
        self.src = f"127.0.5.{n + 1}"
        self.rng = random.Random(SEED * 31 + n)
        self.seq = 0
        self.in_data = False  # between DATA and the reply to its end
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
            c = mxlib.Client(self.gw.port, bind=self.src, timeout_s=BOUND_S)
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

    def recipients(self) -> list[str]:
        if self.big:  # the Maildir only: the peers keep what they get
            return ["alice@example.test"]
        pool = MAILDIR_USERS + SMTP_USERS + LMTP_USERS
        rcpts = self.rng.sample(pool, self.rng.choice((1, 1, 2, 3)))
        if self.rng.random() < 0.2:  # one recipient refused for good
            rcpts.insert(self.rng.randrange(len(rcpts) + 1),
                         self.rng.choice(BOUNCE))
        return rcpts

    def one_message(self, c: mxlib.Client) -> bool:
        """One transaction; False when the session is gone."""
        self.seq += 1
        uid = f"crash-{self.n}-{self.seq}"
        rcpts = self.recipients()
        msg = message(uid, rcpts, self.rng.randint(0, 40), self.big)
        rec = {"rcpts": rcpts, "msg": msg, "state": "started", "qid": None,
               "t0": time.time()}  # before MAIL: its queue time starts later
        self.log[uid] = rec
        try:
            c.expect("250 2.1.0 Ok", f"MAIL FROM:<{SENDER}>")
            for r in rcpts:
                c.expect("250 2.1.5 Ok", f"RCPT TO:<{r}>")
            c.expect("354 *", "DATA")
            self.in_data = True
            for i in range(0, len(msg), 65536):
                c.send(msg[i:i + 65536])
            c.send(b".\r\n")
            rec["state"] = "data_sent"  # delivered or not: both are fine
            r = c.reply(BOUND_S)
        except (OSError, mxlib.TestFailure):
            return False
        finally:
            self.in_data = False
        m = QUEUED.match(r.raw)
        if m:
            rec["state"], rec["qid"] = "acked", m.group(1).decode()
            return True
        rec["state"] = f"refused {r.text}"
        return r.code < 400 or r.code >= 500


def message(uid: str, rcpts: list[str], lines: int, big: bool) -> bytes:
    head = [f"From: <{SENDER}>", f"To: {', '.join(rcpts)}",
            f"Subject: {uid}", f"Message-ID: <{uid}@crash.test>",
            f"X-Crash-Id: {uid}", ""]
    if big:
        lines = BIG // 78
    body = [f"{uid} line {i} " + "z" * (i % 70 if not big else 60)
            for i in range(lines)]
    return ("\r\n".join(head + body) + "\r\n").encode()


# ---------------------------------------------------------------- killing

class Killer:
    """Chooses a phase, waits (bounded) for a moment in it, kills."""

    def __init__(self, gw: mxlib.Gateway, smtp: peers.PySink,
                 big: Sender, rng: random.Random):
        self.gw, self.smtp, self.big, self.rng = gw, smtp, big, rng
        self.jdir = os.path.join(gw.spool_dir, "journal")

    def rotated(self, before: str) -> bool:
        """A segment newer than before was started after one had grown
        to the 16 MB that rotates it."""
        try:
            segs = sorted(n for n in os.listdir(self.jdir)
                          if n.endswith(".seg"))
            full = [n for n in segs[:-1] if os.path.getsize(
                os.path.join(self.jdir, n)) >= JOURNAL_SEG_MAX]
        except FileNotFoundError:
            return False  # a segment removed while we looked: look again
        return bool(full) and segs[-1] > before

    def newest(self) -> str:
        try:
            return max((n for n in os.listdir(self.jdir)
                        if n.endswith(".seg")), default="")
        except FileNotFoundError:
            return ""

    def new_event(self, name: str, mark: int, pred=lambda e: True) -> None:
        seen = len([e for e in self.gw.events(name, since=mark) if pred(e)])
        mxlib.wait_until(
            lambda: len([e for e in self.gw.events(name, since=mark)
                         if pred(e)]) > seen or self.gw._died(),
            BOUND_S, f"a new event={name}", 0.002)

    def moment(self, phase: str, mark: int) -> None:
        gw, rng = self.gw, self.rng
        if phase == "startup":  # recovery: the queue scan, first deliveries
            time.sleep(rng.uniform(0.0, 0.05))  # a random point, not a wait
            return
        if phase == "receiving":
            mxlib.wait_until(lambda: self.big.in_data, BOUND_S,
                             "the large sender in DATA", 0.001)
            time.sleep(rng.uniform(0.0, 0.02))
            return
        if phase == "compaction":
            # a rotation (the old segments are removed or checkpointed
            # next): past recovery, a new segment after a full one
            gw.wait_event("queued", BOUND_S, since=mark)
            before = self.newest()
            mxlib.wait_until(lambda: self.rotated(before) or gw._died(),
                             BOUND_S, "a journal segment rotated at 16 MB",
                             0.001)
        elif phase == "commit":
            self.new_event("queued", mark)
        elif phase in ("maildir", "lmtp"):
            dom = "@example.test" if phase == "maildir" else "@lmtp.test"
            self.new_event("delivered", mark,
                           lambda e: e.get("to", "").endswith(dom + ">"))
        elif phase == "smtp":
            n = len(self.smtp.received())
            mxlib.wait_until(lambda: len(self.smtp.received()) > n, BOUND_S,
                             "a new 250 from the SMTP next hop", 0.001)
        elif phase == "dsn":
            self.new_event("dsn", mark, lambda e: "dsn_qid" in e)
        time.sleep(rng.uniform(0.0, 0.004))


# ---------------------------------------------------------------- reading

def token(data: bytes, where: str) -> str:
    m = TOKEN.search(data)
    check(m, f"{where}: no X-Crash-Id")
    return m.group(1).decode()


def scan_maildir(root: str, qid_named: bool) -> dict[tuple[str, str], list]:
    """(uid, recipient) -> the files in ROOT/DOMAIN/LOCAL/new/."""
    out: dict[tuple[str, str], list] = {}
    for dirpath, _, names in os.walk(root):
        parts = dirpath.split(os.sep)
        if parts[-1] != "new":
            continue
        rcpt = f"{parts[-2]}@{parts[-3]}"
        for n in names:
            p = os.path.join(dirpath, n)
            with open(p, "rb") as f:
                data = f.read()
            info = {"path": p, "data": data}
            if qid_named:
                m = NAME.match(n)
                check(m, f"{p}: file name not <time>.M<qid>R<index>.<host>")
                rcv = RECEIVED_ID.search(data.split(b"\n\n", 1)[0])
                info.update(qid=m.group(1), index=int(m.group(2)),
                            rcv_qid=rcv.group(1).decode() if rcv else None)
            out.setdefault((token(data, p), rcpt), []).append(info)
    return out


def scan_sink(sink: peers.PySink) -> dict[tuple[str, str], list]:
    out: dict[tuple[str, str], list] = {}
    for m in sink.received():
        uid = token(m.data, f"{sink.name} message from <{m.mail_from}>")
        for r in m.rcpts:
            out.setdefault((uid, r), []).append({"data": m.data})
    return out


def scan_ndrs(relay: peers.PySink) -> dict[str, int]:
    """Original uid -> how many NDRs quoting its headers reached SENDER."""
    out: dict[str, int] = {}
    for m in relay.received():
        check(m.mail_from == "" and m.rcpts == [SENDER],
              f"relayhost got <{m.mail_from}> -> {m.rcpts}, not an NDR")
        uid = token(m.data, "an NDR")
        out[uid] = out.get(uid, 0) + 1
    return out


# ---------------------------------------------------------------- the test

@mxlib.timeout(180 + 8 * KILLS)
def test_kill9_at_random_points_loses_nothing(ctx, gw_factory):
    rng = random.Random(SEED)
    dove = peers.Dovecot(os.path.join(ctx.tmpdir, "dovecot"),
                         list(LMTP_USERS))
    smtp = peers.PySink(None, "smtp", None)
    relay = peers.PySink(None, "relay", None)
    smtp.rcpt_reply = lambda a: ("550 5.1.1 <%s>: no such user" % a
                                 if a.startswith("gone@") else "250 2.1.5 Ok")
    with dove, smtp, relay:
        gw = gw_factory(
            users=MAILDIR_USERS + SMTP_USERS + LMTP_USERS + BOUNCE,
            config={"domains": "example.test, smtp.test, lmtp.test",
                    "retry_min": "1s", "retry_max": "2s",
                    "smtp_connect_timeout": "5s", "smtp_timeout": "30s",
                    "relayhost": f"127.0.0.1:{relay.port}",
                    "ndr_rate_per_sender": "100000",
                    "ndr_rate_per_domain": "1000000",
                    "log_level": "info",
                    # reconnect storms after each restart: no rate limit
                    "max_connection_rate_per_client": "0"},
            sections={"smtp.test": {"next_hop": f"smtp:127.0.0.1:{smtp.port}"},
                      "lmtp.test": {"next_hop": f"lmtp:127.0.0.1:{dove.port}"}})
        stop = threading.Event()
        senders = [Sender(gw, n, stop) for n in range(CLIENTS)]
        big = Sender(gw, CLIENTS, stop, big=True)
        senders.append(big)
        killer = Killer(gw, smtp, big, rng)
        phases: dict[str, int] = {}
        kills_at: list[float] = []  # wall clock, as the log's time stamps
        t0 = time.monotonic()
        for s in senders:
            s.start()
        try:
            # Traffic first, so that every phase can be reached.
            gw.wait_event("dsn", BOUND_S, since=gw.run_mark)
            for k in range(KILLS):
                for s in senders:
                    check(s.is_alive(), f"{s.name} died: {s.error!r}")
                # every phase in turn, in a random order each round
                if k % len(PHASES) == 0:
                    order = list(PHASES)
                    rng.shuffle(order)
                phase = order[k % len(PHASES)]
                killer.moment(phase, gw.run_mark)
                kills_at.append(time.time())
                gw.kill9()
                phases[phase] = phases.get(phase, 0) + 1
                gw.start()
            kill_s = time.monotonic() - t0
            # The last run is clean: senders stop, the queue drains.
            gw.wait_event("queued", BOUND_S, since=gw.run_mark)
        finally:
            stop.set()
            for s in senders:
                s.join(BOUND_S)
        for s in senders:
            check(not s.is_alive(), f"{s.name} did not stop")
            check(s.error is None, f"{s.name} failed: {s.error!r}")
        mxlib.wait_until(lambda: not any(
            f.startswith(("queue/", "incoming/")) for f in gw.spool_files()),
            3 * BOUND_S, "the queue to drain after the last restart")
        rc = gw.stop()
        check(rc == 0, f"exit status {rc} after SIGTERM on the clean run")
        verify(gw, dove, smtp, relay, senders, phases, kill_s, kills_at)


def ts(ev: dict[str, str]) -> float:
    """A log line's time stamp (2026-11-28T07:40:01.120Z) in seconds."""
    t = datetime.datetime.strptime(ev["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")
    return t.replace(tzinfo=datetime.timezone.utc).timestamp()


def verify(gw, dove, smtp, relay, senders, phases, kill_s, kills_at) -> None:
    # each message's time in the queue, from the log: the kills in it
    queued: dict[str, float] = {}
    removed: dict[str, float] = {}
    for e in gw.events():
        if e["event"] in ("queued", "dsn"):
            q = e.get("dsn_qid" if e["event"] == "dsn" else "qid")
            if q:
                queued.setdefault(q, ts(e))
        elif e["event"] == "removed" and "qid" in e:
            removed[e["qid"]] = ts(e)
    kills_at = sorted(kills_at)

    def kills_while_queued(qid: str | None, t0: float | None = None) -> int:
        """Kills from its commit (event=queued, or t0 when a kill took the
        line with it: committed, killed before the 250) to its removal
        (event=removed)."""
        start = min(queued.get(qid, float("inf")), t0 or float("inf"))
        if start == float("inf"):
            return 0
        # no event=removed: a kill took that line too, and a later run
        # found every recipient done and removed it without a word
        end = removed.get(qid, float("inf"))
        return (bisect.bisect_right(kills_at, end + 0.002)
                - bisect.bisect_left(kills_at, start - 0.002))

    sent: dict[str, dict] = {}
    for s in senders:
        sent.update(s.log)
    got = {"maildir": scan_maildir(gw.mail_dir, True),
           "smtp": scan_sink(smtp),
           "lmtp": scan_maildir(dove.mail_root, False)}
    ndrs = scan_ndrs(relay)
    # Each NDR the gateway queued for a message (distinct dsn_qid): its
    # original is the event's qid; the uid is the sender's record of it.
    qid_uid = {r["qid"]: u for u, r in sent.items() if r["qid"]}
    made: dict[str, set[str]] = {}
    for e in gw.events("dsn"):
        if "dsn_qid" in e and e.get("qid") in qid_uid:
            made.setdefault(qid_uid[e["qid"]], set()).add(e["dsn_qid"])
    acked = {u: r for u, r in sent.items() if r["state"] == "acked"}
    lost, excess, wrong, phantom, twice = [], [], [], [], []
    dups = {k: 0 for k in ("maildir", "smtp", "lmtp", "ndr")}
    more = 0  # (uid, recipient) with more than one extra copy
    delivered = {k: 0 for k in dups}
    late = 0
    for kind, table in got.items():
        for (uid, rcpt), copies in table.items():
            rec = sent.get(uid)
            delivered[kind] += len(copies)
            if (rec is None or rec["state"] == "started"
                    or rcpt not in rec["rcpts"] or rcpt in BOUNCE
                    or DOMAIN_OF[rcpt.split("@")[1]] != kind):
                phantom.append((kind, uid, rcpt))
                continue
            if rec["state"] != "acked":
                late += 1  # committed, but the kill beat the 250: fine
            dups[kind] += len(copies) - 1
            more += len(copies) > 2
            if len(copies) > 1:
                m = RECEIVED_ID.search(copies[0]["data"])
                qid = rec["qid"] or (m.group(1).decode() if m else None)
                k = kills_while_queued(qid, rec["t0"])
                if len(copies) - 1 > k:
                    twice.append((kind, uid, rcpt, qid, len(copies), k))
            for f in copies:
                if kind == "maildir":
                    body = mxlib.split_received(f["data"])[1]
                    if (body != mxlib.expected_delivery(rec["msg"])
                            or f["rcv_qid"] != f["qid"]
                            or f["index"] != rec["rcpts"].index(rcpt)
                            or (rec["qid"] and f["qid"] != rec["qid"])):
                        wrong.append((uid, rcpt, f["path"], rec["qid"]))
                elif not f["data"].replace(b"\r\n", b"\n").endswith(
                        rec["msg"].split(b"\r\n\r\n", 1)[1]
                        .replace(b"\r\n", b"\n")):
                    wrong.append((kind, uid, rcpt))
    for uid, n in ndrs.items():
        rec = sent.get(uid)
        delivered["ndr"] += n
        if rec is None or rec["state"] == "started" or \
                not any(r in BOUNCE for r in rec["rcpts"]):
            phantom.append(("ndr", uid, SENDER))
        else:
            dups["ndr"] += n - 1
            more += n > 2
            ds = made.get(uid, set())
            k = sum(kills_while_queued(d) for d in ds) + max(0, len(ds) - 1)
            if rec["qid"] and n - 1 > k:
                excess.append(("ndr", uid, n, sorted(ds), k))
    copies = 0
    for uid, rec in acked.items():
        for rcpt in rec["rcpts"]:
            copies += 1
            if rcpt in BOUNCE:
                if uid not in ndrs:
                    lost.append(("ndr", uid, rcpt, rec["qid"]))
                continue
            kind = DOMAIN_OF[rcpt.split("@")[1]]
            if (uid, rcpt) not in got[kind]:
                lost.append((kind, uid, rcpt, rec["qid"]))
    kills = sum(phases.values())
    figures(f"crash: kills={kills} in {kill_s:.0f}s, by phase: "
            + " ".join(f"{p}={phases.get(p, 0)}" for p in PHASES))
    figures(f"crash: sent={len(sent)} acked={len(acked)} ({copies} "
            f"recipient copies, NDRs included) delivered: "
            + " ".join(f"{k}={v}" for k, v in delivered.items())
            + f"; lost={len(lost)} duplicated: "
            + " ".join(f"{k}={v}" for k, v in dups.items())
            + f" (total {sum(dups.values())}; copies with more than one "
            f"extra: {more}); unexplained_by_kills={len(twice) + len(excess)} "
            f"wrong={len(wrong)} phantom={len(phantom)}; "
            f"delivered_without_250={late}; restored="
            f"{len(gw.events('journal_restore'))}; seed={SEED}")
    check(kills == KILLS, f"{kills} kills of {KILLS}")
    check(len(acked) >= 5 * kills, f"only {len(acked)} messages acknowledged "
          f"over {kills} kills: the load was too light to prove anything")
    check(not lost, f"{len(lost)} acknowledged copies lost, e.g. {lost[:5]}")
    check(not twice, f"{len(twice)} recipients got more extra copies than "
          f"kills fell while the message was queued (kind, uid, rcpt, qid, "
          f"copies, kills), e.g. {twice[:3]}")
    check(not excess, f"{len(excess)} messages got more extra NDRs than "
          f"kills explain (uid, NDRs, dsn_qids, kills), e.g. {excess[:3]}")
    check(not wrong, f"{len(wrong)} copies with the wrong content, name or "
          f"queue id, e.g. {wrong[:3]}")
    check(not phantom, f"{len(phantom)} arrivals of messages never sent to "
          f"their end (or to someone else), e.g. {phantom[:5]}")
