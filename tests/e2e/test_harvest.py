"""
test_harvest.py - the harvest guard end to end (DESIGN.md 3, issue 4).
Covers: the tarpit (after harvest_tarpit_after unknown names; valid names
delayed too; a timer, not a blocked loop), one queue of delayed replies
per client address over all its connections (and its wait counted toward
a session's delay budget), the 421 cut-off, the caps on tarpitted
sessions and on a session's total delay, uniform mode per address and per
/24 (byte-identical replies, delayed like tarpitted ones) and its expiry,
distinct counting (a stale name retried counts once), harvesters padding
each guess with a valid name (in one session, or reconnecting for each),
exempt networks, an honest mailing-list sender and a provider's /24 never
slowed or marked, VRFY/EXPN as signals,
`harvest list` / `harvest unmark`, the distributed-harvest switch (discard
answers under reject, then back), and byte-identical answers for valid
and unknown names under discard and in uniform mode, with the two-sample
Kolmogorov-Smirnov statistic of their latencies printed (stdlib only).
No check here reads the clock from above: "not delayed" is read from the
log (event=tarpit), and the KS p-value is judged by the benchmarks
(`make bench-harvest`), since a timed assertion fails on a loaded machine.
Clients act as different hosts by binding to addresses in 127.0.0.0/8.
Run alone, `python3 tests/e2e/test_harvest.py --binary build/mxgate
[-k NAME]` runs these tests in this process and shows their output (the
KS statistics); run.py shows output only for failing tests.
Tests named known_gap_* (none today) are collected only by name, with -k.
"""

from __future__ import annotations

import concurrent.futures
import math
import random
import re
import time

import mxlib
from mxlib import check, check_eq

RCPT_OK = b"250 2.1.5 Ok\r\n"
UNIFORM = b"450 4.7.1 Try again later\r\n"
CUTOFF = (f"421 4.7.0 {mxlib.HOSTNAME} Error: too many unknown recipients, "
          "closing")
DELAY_S, DELAY_MAX_S = 0.2, 0.4
# Small tarpit delays so the tests stay fast.  "Delayed" is checked by
# the clock from below only: at least SLOW_S from the send (the timer
# never fires early; a loaded machine adds, never removes).  "Not
# delayed" is never a clock reading (a busy machine can stall any reply):
# the log says it, see undelayed().
FAST_CONF = {"harvest_tarpit_delay": "200ms", "harvest_tarpit_max": "400ms"}
SLOW_S = 0.19
BOUND_S = 60.0       # the bound of every wait for a reply or a log line
KS_N = 500           # RCPTs for valid names, and as many for unknown ones
KS_SEED = 4242


# ------------------------------------------------------------ helpers

def gateway(gw_factory, start: bool = True, users=mxlib.DEFAULT_USERS,
            **conf: str) -> mxlib.Gateway:
    settings = dict(FAST_CONF)
    settings.update(conf)
    return gw_factory(config=settings, users=users, start=start)


def timed(c: mxlib.Client, line: str) -> tuple[mxlib.Reply, float]:
    t0 = time.monotonic()
    r = c.cmd(line)
    return r, time.monotonic() - t0


def rcpt(c: mxlib.Client, who: str) -> tuple[mxlib.Reply, float]:
    return timed(c, f"RCPT TO:<{who}@example.test>")


def mail_session(gw, src: str) -> mxlib.Client:
    c = mxlib.session(gw, bind=src)
    try:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
    except BaseException:
        c.close()
        raise
    return c


def undelayed(gw, src: str, mark: int, what: str, end: str = "rcpt",
              **kv: str) -> None:
    """src's answer was not held by the harvest guard: between the event
    that ends it (the first event=END with kv since mark, waited for;
    default: src's event=rcpt) and src's event=rcpt before that, no
    event=tarpit of src (logged at debug when a guard delay starts,
    before the answer goes out).  A check by the log, not the clock."""
    if end == "rcpt":
        kv.setdefault("client", src)
    ev = gw.wait_event(end, BOUND_S, since=mark, **kv)
    data = gw.log_bytes()
    head = data[:mark].decode("utf-8", "replace").splitlines()
    tail = data[mark:].decode("utf-8", "replace").splitlines()
    seq = head + tail[:tail.index(ev["line"])]
    for line in reversed(seq):
        e = mxlib.parse_log_line(line)
        if e is None or e.get("client") != src:
            continue
        if e["event"] == "rcpt":
            break
        check(e["event"] != "tarpit", f"{what}: held by the guard "
              f"({e['line']}) before {ev['line']}")


def unknown_rejected(r: mxlib.Reply, who: str) -> None:
    check_eq(r.text, f"550 5.1.1 <{who}@example.test>: Recipient address "
             "rejected: User unknown", f"reply to unknown {who}")


def harvest_events(gw, since: int = 0, **kv: str) -> list[dict[str, str]]:
    return gw.events("harvest", since, **kv)


def no_harvest_events(gw, what: str) -> None:
    evs = harvest_events(gw)
    check(not evs, f"{what}: event=harvest lines: "
          + " / ".join(e["line"] for e in evs[:3]))


def replies_in_parallel(clients: list[mxlib.Client], t0: float
                        ) -> list[tuple[float, mxlib.Reply]]:
    """One reply from each client, read at once on threads: (seconds from
    t0 to its arrival, reply), in the order the replies arrived."""
    def one(c: mxlib.Client) -> tuple[float, mxlib.Reply]:
        r = c.reply(timeout_s=BOUND_S)
        return time.monotonic() - t0, r
    with concurrent.futures.ThreadPoolExecutor(len(clients)) as pool:
        got = list(pool.map(one, clients))
    return sorted(got, key=lambda x: x[0])


def blocked_maildir(gw) -> None:
    """Deliveries fail and wait an hour: no Maildir fsyncs slow the test
    (the next hop is a file where the Maildir root should be)."""
    gw.settings.update({"next_hop": "maildir:blocked/mail",
                        "retry_min": "1h"})
    with open(gw.dir + "/blocked", "w") as f:
        f.write("not a folder\n")


# ------------------------------------------------------------ tarpit

def test_tarpit_after_unknown_delays_valid_too(gw_factory):
    gw = gateway(gw_factory, harvest_tarpit_after="3",
                 harvest_session_limit="10")
    src = "127.0.1.1"
    with mail_session(gw, src) as c:
        for i in range(3):
            mark = gw.log_mark()
            r, dt = rcpt(c, f"nobody{i}")
            unknown_rejected(r, f"nobody{i}")
            undelayed(gw, src, mark, f"unknown #{i + 1} before the tarpit")
        # The 4th RCPT is a valid name: delayed like any other (the delay
        # comes from the history, not from this recipient).
        r, dt = rcpt(c, "alice")
        check_eq(r.raw, RCPT_OK, "valid recipient in the tarpit")
        check(dt >= SLOW_S, f"valid recipient answered in {dt:.3f}s, "
              f"expected the {DELAY_S}s tarpit delay")
        ev = gw.wait_event("harvest", state="tarpit", net=src)
        check_eq((ev.get("unknown"), ev.get("valid")), ("3", "0"),
                 "counts in state=tarpit")
        # The delay doubles up to the cap, for unknown and valid alike.
        times = {}
        for who in ("nobody9", "bob", "nobody10", "carol"):
            r, times[who] = rcpt(c, who)
        check(all(DELAY_MAX_S - 0.01 <= t for t in times.values()),
              f"capped delays (expected about {DELAY_MAX_S}s): {times}")
        # The gateway's own figures: each at the cap (a wait behind this
        # address's queue may add a little), none near the 1.6 s and more
        # that doubling without a cap would have reached by now.
        delays = [int(e.get("delay_ms", "0"))
                  for e in gw.events("tarpit", client=src)][-4:]
        check(len(delays) == 4 and all(
            DELAY_MAX_S * 1000 <= d < 4 * DELAY_MAX_S * 1000 for d in delays),
            f"the last four event=tarpit delay_ms (capped at "
            f"{DELAY_MAX_S * 1000:g}): {delays}")
        # A timer, not a blocked loop: another client, its session open
        # already, is served while this session waits out four pipelined
        # RCPTs (1.6 s of tarpit): the log shows its RCPT answered before
        # the last of them.
        held_names = ("alice", "bob", "carol", "dave")
        with mail_session(gw, "127.1.2.1") as other:
            mark = gw.log_mark()
            c.send("".join(f"RCPT TO:<{w}@example.test>\r\n"
                           for w in held_names))
            gw.wait_event("tarpit", BOUND_S, since=mark, client=src)
            r, dt = rcpt(other, "alice")
            check_eq(r.raw, RCPT_OK, "other client's RCPT")
            undelayed(gw, "127.1.2.1", mark, "the other client")
        for w in held_names[:3]:
            check_eq(c.reply(BOUND_S).raw, RCPT_OK, f"pipelined {w}")
        unknown_rejected(c.reply(BOUND_S), "dave")
        order = [e["client"] for e in gw.events("rcpt", since=mark)]
        check("127.1.2.1" in order[:len(held_names)],
              f"the other client was not served while the tarpit ran: "
              f"the answers in the order {order}")


def test_history_tarpits_next_session_from_first_rcpt(gw_factory):
    gw = gateway(gw_factory, harvest_tarpit_after="3")
    src = "127.0.1.3"
    for i in range(2):          # two names per session: no session trigger
        with mail_session(gw, src) as c:
            for j in range(2):
                r, dt = rcpt(c, f"n{i}x{j}")
                unknown_rejected(r, f"n{i}x{j}")
    with mail_session(gw, src) as c:
        r, dt = rcpt(c, "alice")
        check_eq(r.raw, RCPT_OK, "valid recipient")
        check(dt >= SLOW_S, f"first RCPT of a reconnecting harvester took "
              f"{dt:.3f}s, expected the tarpit")
    gw.wait_event("harvest", state="tarpit", net=src)


def test_tarpit_queue_spans_connections(gw_factory):
    """Two connections from one address ask at the same moment: the
    address's delayed replies are queued one after the other, so the
    second reply comes a whole delay after the first (a harvester gains
    nothing by opening more connections).  A client at another address
    with the same history is answered after its own delay, not after that
    queue."""
    d = 0.5
    gw = gateway(gw_factory, harvest_tarpit_after="3",
                 harvest_tarpit_delay="500ms", harvest_tarpit_max="500ms")
    src, other = "127.0.19.1", "127.0.20.1"
    for addr in (src, other):   # a history of 3 unknown names each
        with mail_session(gw, addr) as c:
            for i in range(3):
                unknown_rejected(rcpt(c, f"q{i}")[0], f"q{i}")
    a, b, o = (mail_session(gw, x) for x in (src, src, other))
    try:
        t0 = time.monotonic()
        for c, who in ((a, "qa"), (b, "qb"), (o, "qo")):
            c.sendline(f"RCPT TO:<{who}@example.test>")
        got = replies_in_parallel([a, b, o], t0)
    finally:
        for c in (a, b, o):
            c.close()
    for _, r in got:
        check_eq(r.code, 550, f"reply {r.text!r}")
    mine = [(t, r) for t, r in got if "<qo@" not in r.text]
    theirs = [t for t, r in got if "<qo@" in r.text][0]
    first, second = mine[0][0], mine[1][0]
    check(first >= d - 0.01, f"first reply of {src} after {first:.3f}s")
    # Two whole delays from the send (a lower bound: load only adds).
    check(second >= 2 * d - 0.01,
          f"second reply of {src} after {second:.3f}s, the first after "
          f"{first:.3f}s: not queued behind it")
    check(theirs >= d - 0.01, f"{other} answered after {theirs:.3f}s")
    check(theirs < second, f"{other} ({theirs:.3f}s) waited for the queue "
          f"of {src} ({second:.3f}s)")


def test_queue_wait_counts_toward_session_budget(gw_factory):
    """Three connections of one address ask at once, each with a 1 s
    budget of delay: the first waits 0.4 s, the second 0.8 s (behind it),
    the third would wait 1.2 s: 421 at once, before the others' replies."""
    gw = gateway(gw_factory, harvest_tarpit_after="3",
                 harvest_tarpit_delay="400ms", harvest_tarpit_max="400ms",
                 harvest_session_delay_max="1s")
    src = "127.0.21.1"
    with mail_session(gw, src) as c:
        for i in range(3):
            unknown_rejected(rcpt(c, f"w{i}")[0], f"w{i}")
    cs = [mail_session(gw, src) for _ in range(3)]
    try:
        t0 = time.monotonic()
        for i, c in enumerate(cs):
            c.sendline(f"RCPT TO:<w{10 + i}@example.test>")
        got = replies_in_parallel(cs, t0)
    finally:
        for c in cs:
            c.close()
    check_eq([r.code for _, r in got], [421, 550, 550],
             f"replies in their order of arrival: {got}")
    check_eq(got[0][1].text, CUTOFF, "the cut-off")
    check(got[1][0] >= 0.39 and got[2][0] >= 0.79,
          f"the two delayed replies at {got[1][0]:.3f}s, {got[2][0]:.3f}s")
    gw.wait_event("harvest", state="cutoff", net=src, reason="delay")


def test_cutoff_after_session_limit(gw_factory):
    gw = gateway(gw_factory, harvest_tarpit_after="3",
                 harvest_tarpit_delay="50ms", harvest_tarpit_max="50ms",
                 harvest_session_limit="5")
    src = "127.0.2.1"
    with mail_session(gw, src) as c:
        for i in range(5):
            r, _ = rcpt(c, f"nobody{i}")
            unknown_rejected(r, f"nobody{i}")
        # The next RCPT, valid or not, gets the 421 and the close.
        c.expect(CUTOFF, "RCPT TO:<alice@example.test>")
        c.expect_close()
    ev = gw.wait_event("harvest", state="cutoff", net=src)
    check_eq((ev.get("unknown"), ev.get("reason")), ("5", "limit"),
             "state=cutoff")
    gw.wait_event("rcpt", to="alice@example.test", verdict="cutoff",
                  action="cutoff")


def test_tarpit_caps_slots_and_total_delay(gw_factory):
    # Each client in its own /24: no net history tarpits the next one.
    gw = gateway(gw_factory, harvest_tarpit_after="1",
                 harvest_session_limit="100", harvest_threshold="100",
                 harvest_threshold_net="100", harvest_max_tarpitted="2",
                 harvest_session_delay_max="1s")
    held = []
    try:
        # Two sessions hold the two tarpit slots...
        for i in range(2):
            c = mail_session(gw, f"127.3.{i + 1}.1")
            held.append(c)
            unknown_rejected(rcpt(c, "nobody")[0], "nobody")
            r, dt = rcpt(c, "nobody2")
            unknown_rejected(r, "nobody2")
            check(dt >= SLOW_S, f"session {i + 1} not tarpitted ({dt:.3f}s)")
        # ... so a third harvester is cut off at once, not held.
        with mail_session(gw, "127.3.3.1") as c:
            unknown_rejected(rcpt(c, "nobody")[0], "nobody")
            mark = gw.log_mark()
            r, dt = rcpt(c, "nobody2")
            check_eq(r.text, CUTOFF, "past harvest_max_tarpitted")
            c.expect_close()
        undelayed(gw, "127.3.3.1", mark, "the slot cut-off", "harvest",
                  state="cutoff", net="127.3.3.1", reason="slots")
        # Total delay: 200 + 400 + 400 ms given; the next 400 would pass
        # harvest_session_delay_max (1 s): 421 at once.
        c = held[0]
        for who in ("nobody3", "nobody4"):
            r, dt = rcpt(c, who)
            unknown_rejected(r, who)
            check(dt >= DELAY_MAX_S - 0.01, f"{who}: {dt:.3f}s")
        mark = gw.log_mark()
        r, dt = rcpt(c, "nobody5")
        check_eq(r.text, CUTOFF, "past harvest_session_delay_max")
        undelayed(gw, "127.3.1.1", mark, "the delay cut-off", "harvest",
                  state="cutoff", net="127.3.1.1", reason="delay")
        # The cut session freed its slot: a new harvester is held again.
        held[0].close()
        with mail_session(gw, "127.3.4.1") as c:
            unknown_rejected(rcpt(c, "nobody")[0], "nobody")
            r, dt = rcpt(c, "nobody2")
            unknown_rejected(r, "nobody2")
            check(dt >= SLOW_S, f"after a slot was freed: {dt:.3f}s")
    finally:
        for c in held:
            c.close()


# ------------------------------------------------------------ uniform mode

def test_uniform_after_threshold_across_sessions(gw_factory):
    gw = gateway(gw_factory, harvest_threshold="6",
                 harvest_tarpit_after="1000", harvest_session_limit="1000")
    src = "127.0.4.1"
    for s in range(3):      # a harvester reconnecting, two names a time
        with mail_session(gw, src) as c:
            for j in range(2):
                unknown_rejected(rcpt(c, f"h{s}x{j}")[0], f"h{s}x{j}")
    ev = gw.wait_event("harvest", state="uniform", net=src)
    check_eq(ev.get("distinct"), "6", "distinct names at the mark")
    with mail_session(gw, src) as c:
        valid = rcpt(c, "alice")[0].raw
        unknown = rcpt(c, "nobody-new")[0].raw
        again = rcpt(c, "h0x0")[0].raw
    check_eq(valid, UNIFORM, "valid name in uniform mode")
    check_eq(unknown, valid, "unknown name vs valid name in uniform mode")
    check_eq(again, valid, "a name tried before")
    gw.wait_event("rcpt", to="alice@example.test", verdict="uniform",
                  action="uniform")
    # Another address is not affected.
    with mail_session(gw, "127.0.5.1") as c:
        check_eq(rcpt(c, "alice")[0].raw, RCPT_OK, "another client")


def test_uniform_replies_cost_the_tarpit_max(gw_factory):
    """A marked client's uniform replies, valid name or not, wait the
    longest tarpit delay: never cheaper than a tarpitted answer."""
    gw = gateway(gw_factory, harvest_threshold="4",
                 harvest_tarpit_after="3", harvest_session_limit="1000")
    src = "127.0.22.1"
    with mail_session(gw, src) as c:
        for i in range(4):
            rcpt(c, f"u{i}")
    gw.wait_event("harvest", state="uniform", net=src)
    with mail_session(gw, src) as c:
        for who in ("alice", "nobody-else"):
            r, dt = rcpt(c, who)
            check_eq(r.raw, UNIFORM, f"{who} in uniform mode")
            check(dt >= DELAY_MAX_S - 0.01, f"uniform reply to {who} after "
                  f"{dt:.3f}s, the tarpit's longest delay is {DELAY_MAX_S}s")


def test_mark_expires_after_ttl(gw_factory):
    gw = gateway(gw_factory, harvest_threshold="4", harvest_ttl="1s",
                 harvest_tarpit_after="1000", harvest_session_limit="1000")
    src = "127.0.17.1"
    with mail_session(gw, src) as c:
        for i in range(4):
            unknown_rejected(rcpt(c, f"ttl{i}")[0], f"ttl{i}")
        check_eq(rcpt(c, "alice")[0].raw, UNIFORM, "marked")
        ev = gw.wait_event("harvest", timeout_s=5.0, state="expired",
                           net=src)
        check_eq(ev.get("distinct"), "4", "distinct in state=expired")
        check_eq(rcpt(c, "alice")[0].raw, RCPT_OK, "after the mark expired")


def test_net_marked_from_addresses_in_one_24(gw_factory):
    gw = gateway(gw_factory, harvest_threshold="10",
                 harvest_threshold_net="12", harvest_tarpit_after="1000",
                 harvest_session_limit="1000")
    for h in range(1, 7):   # 6 hosts x 2 names: each host far below 10
        with mail_session(gw, f"127.0.6.{h}") as c:
            for j in range(2):
                unknown_rejected(rcpt(c, f"net{h}x{j}")[0], f"net{h}x{j}")
    ev = gw.wait_event("harvest", state="uniform", net="127.0.6.0/24")
    check_eq(ev.get("distinct"), "12", "distinct names of the /24")
    check(not harvest_events(gw, state="uniform", net="127.0.6.1"),
          "a single host was marked")
    # A fresh address of the marked /24 gets the uniform reply at once.
    with mail_session(gw, "127.0.6.200") as c:
        check_eq(rcpt(c, "alice")[0].raw, UNIFORM, "valid, marked /24")
        check_eq(rcpt(c, "nobody")[0].raw, UNIFORM, "unknown, marked /24")
    with mail_session(gw, "127.0.7.1") as c:
        check_eq(rcpt(c, "alice")[0].raw, RCPT_OK, "a neighbouring /24")


def test_same_stale_name_retried_counts_once(gw_factory):
    gw = gateway(gw_factory, harvest_threshold="3",
                 harvest_tarpit_after="2", harvest_session_limit="2")
    src = "127.0.8.1"
    # An honest MTA retrying one stale address, 20 times over 20 sessions.
    for i in range(20):
        with mail_session(gw, src) as c:
            mark = gw.log_mark()
            r, dt = rcpt(c, "Old.Employee" if i % 2 else "old.employee")
            unknown_rejected(r, "Old.Employee" if i % 2 else "old.employee")
            undelayed(gw, src, mark, f"retry {i + 1}")
    no_harvest_events(gw, "one stale name retried")
    with mail_session(gw, src) as c:
        mark = gw.log_mark()
        r, dt = rcpt(c, "alice")
        check_eq(r.raw, RCPT_OK, "then alice")
        undelayed(gw, src, mark, "then alice")


def test_exempt_network_never_tarpitted_or_marked(gw_factory):
    gw = gateway(gw_factory, harvest_exempt="127.0.9.0/24",
                 harvest_threshold="4", harvest_threshold_net="4",
                 harvest_tarpit_after="2", harvest_session_limit="3")
    for s in range(4):
        with mail_session(gw, f"127.0.9.{s + 1}") as c:
            for j in range(10):
                mark = gw.log_mark()
                r, dt = rcpt(c, f"ex{s}x{j}")
                unknown_rejected(r, f"ex{s}x{j}")
                undelayed(gw, f"127.0.9.{s + 1}", mark, "exempt client")
            c.expect("250 2.1.5 Ok", "RCPT TO:<alice@example.test>")
    for sig in ("VRFY alice", "EXPN staff"):
        with mxlib.session(gw, bind="127.0.9.5") as c:
            for _ in range(5):
                c.cmd(sig)
    no_harvest_events(gw, "exempt network")
    # The same behaviour from outside the exempt network is caught.
    with mail_session(gw, "127.0.10.1") as c:
        for j in range(3):
            rcpt(c, f"out{j}")
        c.expect(CUTOFF, "RCPT TO:<out9@example.test>")
    gw.wait_event("harvest", state="cutoff", net="127.0.10.1")


# ------------------------------------------------------------ honest senders

def test_mailing_list_sender_never_slowed(gw_factory):
    """One connection, 20 messages of 100 recipients, 5 stale in each
    (different names each time), the guard at its defaults."""
    subscribers = [f"sub{i:03d}@example.test" for i in range(95)]
    gw = gw_factory(config={}, users=subscribers, start=False)
    blocked_maildir(gw)
    gw.start()
    rng = random.Random(20)
    slow, queued = [], 0
    with mxlib.session(gw, bind="127.0.11.1") as c:
        for m in range(20):
            stale = [f"gone{m}x{k}@example.test" for k in range(5)]
            rcpts = list(subscribers)
            for pos, name in zip(sorted(rng.sample(range(100), 5)), stale):
                rcpts.insert(pos, name)
            c.expect("250 2.1.0 Ok", "MAIL FROM:<list@lists.remote.test>")
            for to in rcpts:
                r, dt = timed(c, f"RCPT TO:<{to}>")
                want = "550" if to.startswith("gone") else "250"
                check_eq(r.text[:3], want, f"message {m + 1}, RCPT {to}")
            c.expect("354 *", "DATA")
            c.send(mxlib.make_message(f"list {m}") + b".\r\n")
            c.expect("250 2.0.0 Ok: queued as *", timeout_s=BOUND_S)
            queued += 1
        c.expect("221 2.0.0 Bye", "QUIT")
    check_eq(queued, 20, "messages queued")
    gw.wait_event("disconnect", BOUND_S)
    # Not one RCPT held by the guard: the log says so (event=tarpit at
    # debug level for every guard delay), not the clock.
    slow = gw.events("tarpit", client="127.0.11.1")
    check(not slow, f"RCPTs of the list sender tarpitted: "
          + " / ".join(e["line"] for e in slow[:3]))
    check_eq(len(gw.events("rcpt", action="accept")), 20 * 95,
             "valid recipients accepted")
    no_harvest_events(gw, "mailing-list sender")


def test_provider_net_with_stale_names_never_marked(gw_factory):
    """50 addresses of one /24 with 3% stale recipients; the thresholds
    scaled down so the stale names alone pass them (60 distinct for the
    /24, 20 needed): only the majority rule keeps the provider unmarked."""
    users = [f"u{i:03d}@example.test" for i in range(200)]
    gw = gateway(gw_factory, start=False, users=users,
                 harvest_threshold="5", harvest_threshold_net="20",
                 harvest_tarpit_after="2", harvest_tarpit_delay="1s",
                 harvest_tarpit_max="1s")
    blocked_maildir(gw)
    gw.start()
    rng = random.Random(50)
    stale_n, slow = 0, []
    for h in range(1, 51):
        with mxlib.session(gw, bind=f"127.0.12.{h}") as c:
            for m in range(2):
                c.expect("250 2.1.0 Ok", "MAIL FROM:<u@provider.test>")
                rcpts = rng.sample(users, 20)
                if (h * 2 + m) % 5 < 3:     # 60 of 100 messages: 3%
                    rcpts[rng.randrange(1, 20)] = \
                        f"stale{stale_n}@example.test"
                    stale_n += 1
                for to in rcpts:
                    r, dt = timed(c, f"RCPT TO:<{to}>")
                    check_eq(r.text[:3], "550" if to.startswith("stale")
                             else "250", f"{h}/{m}: RCPT {to}")
                c.expect("354 *", "DATA")
                c.send(mxlib.make_message(f"p{h}-{m}") + b".\r\n")
                c.expect("250 2.0.0 Ok: queued as *", timeout_s=BOUND_S)
    check_eq(stale_n, 60, "stale recipients sent")
    mxlib.wait_until(lambda: len([e for e in gw.events("disconnect") if
                                  e.get("client", "").startswith("127.0.12.")])
                     >= 50, BOUND_S, "50 provider sessions logged as ended")
    slow = [e for e in gw.events("tarpit")
            if e.get("client", "").startswith("127.0.12.")]
    check(not slow, "provider RCPTs tarpitted: "
          + " / ".join(e["line"] for e in slow[:3]))
    no_harvest_events(gw, "provider /24")


# ------------------------------------------------------------ signals

def test_vrfy_expn_count_as_signals(gw_factory):
    gw = gateway(gw_factory, harvest_tarpit_after="3",
                 harvest_threshold="5", harvest_session_limit="100")
    # Three signals in a session: the next RCPT is tarpitted.
    with mail_session(gw, "127.0.13.1") as c:
        for line in ("VRFY alice", "VRFY nobody", "EXPN staff"):
            c.cmd(line)
        r, dt = rcpt(c, "alice")
        check(r.raw == RCPT_OK and dt >= SLOW_S,
              f"RCPT after 2 VRFY + 1 EXPN: {r} in {dt:.3f}s")
    gw.wait_event("harvest", state="tarpit", net="127.0.13.1")
    # Five VRFY from one address: a mark, as five unknown names would.
    with mxlib.session(gw, bind="127.0.13.2") as c:
        for i in range(5):
            c.cmd(f"VRFY user{i}")
    ev = gw.wait_event("harvest", state="uniform", net="127.0.13.2")
    check_eq(ev.get("signals"), "5", "signals at the mark")
    # And five EXPN.
    with mxlib.session(gw, bind="127.0.13.3") as c:
        for i in range(5):
            c.cmd(f"EXPN list{i}")
    gw.wait_event("harvest", state="uniform", net="127.0.13.3")
    with mail_session(gw, "127.0.13.2") as c:
        check_eq(rcpt(c, "alice")[0].raw, UNIFORM, "after 5 VRFY")


def test_padded_harvester_is_tarpitted_and_cut_off(gw_factory):
    """A harvester that pads every guess with one valid address it knows
    must not look "mostly valid": a valid name counts once per session,
    so the majority rule holds and the tarpit, then the cut-off, apply."""
    gw = gw_factory(config=dict(FAST_CONF))
    src = "127.0.18.1"
    got = []
    with mail_session(gw, src) as c:
        for i in range(40):
            r, _ = rcpt(c, "alice")
            got.append(r.code)
            if r.code == 421:
                break
            r, _ = rcpt(c, f"guess{i}")
            got.append(r.code)
            if r.code == 421:
                break
    states = {e.get("state") for e in harvest_events(gw, net=src)}
    check("tarpit" in states, f"padded harvester tarpitted: {states}")
    check(421 in got, f"padded harvester cut off: {got}")
    check(got.count(550) <= 12, f"verdicts it got before the cut-off: "
          f"{got.count(550)}")


def test_reconnecting_padded_harvester_is_marked(gw_factory):
    """A harvester that reconnects for each guess and pads every session
    with the one valid address it knows: each session is half valid, but
    the address counts that valid name once in its window, so it is
    tarpitted and then marked like any other harvester."""
    gw = gateway(gw_factory, harvest_threshold="6",
                 harvest_tarpit_after="3")
    src = "127.0.23.1"
    for i in range(8):
        with mail_session(gw, src) as c:
            check_eq(rcpt(c, "alice")[0].raw, RCPT_OK if i < 6 else UNIFORM,
                     f"session {i + 1}: the padding")
            r = rcpt(c, f"pg{i}")[0]
            if i < 6:
                unknown_rejected(r, f"pg{i}")
    ev = gw.wait_event("harvest", state="uniform", net=src)
    check_eq((ev.get("distinct"), ev.get("valid")), ("6", "1"),
             "counts at the mark")
    gw.wait_event("harvest", state="tarpit", net=src)


# ------------------------------------------------------------ operator

def ctl(ctx, gw, *args: str) -> str:
    p = ctx.run_binary(list(args) + ["-c", gw.conf_path], timeout_s=10.0)
    out = p.stdout.decode("utf-8", "replace")
    check_eq(p.returncode, 0, f"mxgate {' '.join(args)} exit status "
             f"(stdout {out!r}, stderr {p.stderr!r})")
    return out


def test_harvest_list_and_unmark(ctx):
    gw = ctx.gateway(config=dict(FAST_CONF, harvest_threshold="4",
                                 harvest_tarpit_after="1000",
                                 harvest_session_limit="1000"))
    src = "127.0.14.7"
    with mail_session(gw, src) as c:
        for i in range(4):
            rcpt(c, f"nobody{i}")
        check_eq(rcpt(c, "alice")[0].raw, UNIFORM, "marked")
    out = ctl(ctx, gw, "harvest", "list")
    mine = [ln for ln in out.splitlines() if ln.split(" ")[0] == src]
    check(len(mine) == 1 and re.fullmatch(
        re.escape(src) + r" uniform unknown=4 valid=0 expires_in=\d+s",
        mine[0]), f"harvest list: {out!r}")
    check(re.search(r"^\d+ entr(y|ies)$", out, re.M), f"summary: {out!r}")
    mark = gw.log_mark()
    out = ctl(ctx, gw, "harvest", "unmark", src)
    m = re.search(r"^unmarked (\d+) entr(y|ies) \(\d+ uniform, \d+ tarpit, "
                  r"\d+ counted\)\n\Z", out, re.M)
    check(m and int(m.group(1)) >= 1, f"harvest unmark: {out!r}")
    gw.wait_event("harvest", since=mark, state="unmarked", net=src)
    out = ctl(ctx, gw, "harvest", "list")
    check(not [ln for ln in out.splitlines() if ln.startswith(src + " ")],
          f"still listed after unmark: {out!r}")
    with mail_session(gw, src) as c:
        mark = gw.log_mark()
        r, dt = rcpt(c, "alice")
        check_eq(r.raw, RCPT_OK, "after unmark")
        undelayed(gw, src, mark, "after unmark")
        unknown_rejected(rcpt(c, "nobody0")[0], "nobody0")


# ------------------------------------------------------------ distributed

@mxlib.timeout(300)
def test_distributed_harvest_global_switch(gw_factory):
    """One or two names from each of many addresses (each in its own /24,
    far below every per-client threshold) push the domain over
    harvest_global_rate: unknown names then get the valid reply under
    reject, and sessions that ask for them are tarpitted; when the rate
    falls to half the limit (a sliding minute: about 95 s here) the
    policy is back.  The one slow test of this file."""
    gw = gateway(gw_factory, harvest_global_rate="20",
                 harvest_tarpit_after="3")
    rejected = 0
    t_start = time.monotonic()
    for i in range(1, 41):
        with mail_session(gw, f"127.{20 + i}.0.1") as c:
            r, _ = rcpt(c, f"dist{i}")
            if r.code == 550:
                rejected += 1
                continue
            check_eq(r.raw, RCPT_OK, f"unknown #{i} once the domain is hot")
            break
    else:
        mxlib.fail("40 unknown names from 40 addresses: never switched")
    check(rejected >= 20, f"switched after {rejected} unknown names "
          "(harvest_global_rate 20)")
    ev = gw.wait_event("harvest", state="global_on", domain="example.test")
    check_eq(ev.get("limit"), "20", "limit in state=global_on")
    gw.wait_event("rcpt", to="dist%d@example.test" % (rejected + 1),
                  verdict="unknown", action="discard")
    # Discard behaviour for a new client: the valid reply for both, the
    # unknown dropped; its second unknown name is tarpitted.
    with mail_session(gw, "127.99.0.1") as c:
        mark = gw.log_mark()
        r1, dt1 = rcpt(c, "ghost1")
        undelayed(gw, "127.99.0.1", mark, "the first unknown name")
        r2, dt2 = rcpt(c, "alice")
        check_eq((r1.raw, r2.raw), (RCPT_OK, RCPT_OK), "during the harvest")
        check(dt2 >= SLOW_S, f"RCPT after an unknown of a hot domain took "
              f"{dt2:.3f}s; expected the tarpit")
        c.expect("354 *", "DATA")
        c.send(mxlib.make_message("hot") + b".\r\n")
        c.expect("250 2.0.0 Ok: queued as *", timeout_s=BOUND_S)
    gw.wait_maildir("example.test", "alice", timeout_s=BOUND_S)
    check_eq(gw.maildir_files("example.test", "ghost1"), [],
             "files for the discarded unknown name")
    # No more unknown names: the rate decays; global_off within a bound.
    left = 270 - (time.monotonic() - t_start)
    ev = gw.wait_event("harvest", timeout_s=left, state="global_off",
                       domain="example.test")
    with mail_session(gw, "127.98.0.1") as c:
        unknown_rejected(rcpt(c, "after")[0], "after")
    print(f"global_off {time.monotonic() - t_start:.1f}s after the first "
          f"unknown name ({ev['line']})")


# ------------------------------------------------------------ equal answers

def ks_2samp(a: list[float], b: list[float]) -> float:
    """The two-sample Kolmogorov-Smirnov statistic D = sup |F_a - F_b|."""
    a, b = sorted(a), sorted(b)
    n, m = len(a), len(b)
    i = j = 0
    d = 0.0
    while i < n and j < m:
        x = min(a[i], b[j])
        while i < n and a[i] == x:      # ties move both ECDFs together
            i += 1
        while j < m and b[j] == x:
            j += 1
        d = max(d, abs(i / n - j / m))
    return d


def kolmogorov_sf(lam: float) -> float:
    """P(K > lam) for the Kolmogorov distribution (the asymptotic law of
    sqrt(n m / (n + m)) D).  Two series: the theta form of the CDF for
    small lam, the alternating form of the tail otherwise."""
    if lam <= 0.0:
        return 1.0
    if lam < 1.18:
        s = sum(math.exp(-((2 * k - 1) ** 2) * math.pi ** 2 / (8 * lam * lam))
                for k in range(1, 50))
        return max(0.0, min(1.0, 1.0 - math.sqrt(2 * math.pi) / lam * s))
    s = sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam)
            for k in range(1, 101))
    return max(0.0, min(1.0, 2.0 * s))


def ks_pvalue(d: float, n: int, m: int) -> float:
    return kolmogorov_sf(math.sqrt(n * m / (n + m)) * d)


def test_ks_statistic_self_check():
    """The statistic and its p-value on known cases (no gateway)."""
    for lam, want in ((0.5, 0.9639), (1.0, 0.2700), (1.1, 0.1777),
                      (1.2, 0.1122), (1.358, 0.0500), (1.628, 0.0100)):
        got = kolmogorov_sf(lam)
        check(abs(got - want) < 5e-4, f"Q_KS({lam}) = {got:.5f}, want {want}")
    rng = random.Random(1)
    same = [rng.random() for _ in range(2000)]
    check_eq(ks_2samp(same, list(same)), 0.0, "D of a sample with itself")
    shifted = [x + 0.1 for x in same]
    d = ks_2samp(same, shifted)
    check(abs(d - 0.1) < 0.03 and ks_pvalue(d, 2000, 2000) < 1e-6,
          f"a 0.1 shift of U(0,1): D={d}")
    other = [rng.random() for _ in range(2000)]
    check(ks_pvalue(ks_2samp(same, other), 2000, 2000) > 0.001,
          "two samples of one law")


def measure_rcpts(gw, src: str, names: dict[str, list[str]],
                  conns: int = 4, per_tx: int = 50
                  ) -> tuple[dict[str, list[float]], dict[str, set[bytes]]]:
    """Lock-step RCPTs of valid and unknown names interleaved in a fixed
    random order, over a few connections taking turns (RSET after per_tx
    RCPTs on one connection, not measured); the latency of each RCPT (from
    the send to the end of its reply, in microseconds), by kind, and the
    replies.  The order is drawn in pairs per connection, one name of each
    kind in random order, so a connection or a moment that is slower for
    reasons of its own weighs on both kinds alike."""
    rng = random.Random(KS_SEED)
    kinds = list(names)
    npairs = min(len(v) for v in names.values()) // conns
    per_conn = []
    for _ in range(conns):
        seq = []
        for _ in range(npairs):
            pair = list(kinds)
            rng.shuffle(pair)
            seq += pair
        per_conn.append(seq)
    order = [per_conn[i % conns][i // conns]
             for i in range(conns * len(per_conn[0]))]
    it = {k: iter(v) for k, v in names.items()}
    lat: dict[str, list[float]] = {k: [] for k in names}
    replies: dict[str, set[bytes]] = {k: set() for k in names}
    cs = [mail_session(gw, src) for _ in range(conns)]
    used = [0] * conns
    try:
        for c in cs:            # warm-up, not measured
            for i in range(20):
                c.cmd(f"RCPT TO:<{'alice' if i % 2 else 'warm'}@example.test>")
            c.expect("250 2.0.0 Ok", "RSET")
            c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        for n, kind in enumerate(order):
            k = n % conns
            c = cs[k]
            line = f"RCPT TO:<{next(it[kind])}@example.test>\r\n".encode()
            t0 = time.perf_counter_ns()
            c.send(line)
            r = c.reply()
            lat[kind].append((time.perf_counter_ns() - t0) / 1e3)
            replies[kind].add(r.raw)
            used[k] += 1
            if used[k] % per_tx == 0:
                c.expect("250 2.0.0 Ok", "RSET")
                c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
    finally:
        for c in cs:
            c.close()
    return lat, replies


def median(xs: list[float]) -> float:
    s = sorted(xs)
    return s[len(s) // 2]


def ks_report(what: str, lat: dict[str, list[float]]) -> float:
    v, u = lat["valid"], lat["unknown"]
    d = ks_2samp(v, u)
    p = ks_pvalue(d, len(v), len(u))
    print(f"KS {what}: n={len(v)}+{len(u)} D={d:.4f} p={p:.4f} "
          f"median_us valid={median(v):.1f} unknown={median(u):.1f} "
          f"(seed {KS_SEED})", flush=True)
    return p


def ks_names(users: list[str]) -> dict[str, list[str]]:
    """KS_N valid names (user0000...) and KS_N unknown ones of the same
    length (nope0000...): the RCPT lines differ only in the name."""
    valid = [u.split("@")[0] for u in users]
    return {"valid": [valid[i % len(valid)] for i in range(KS_N)],
            "unknown": [f"nope{i:04d}" for i in range(KS_N)]}


def test_indistinguishable_under_discard(gw_factory):
    users = [f"user{i:04d}@example.test" for i in range(KS_N)]
    src = "127.0.15.1"
    # rcpt_reply_floor at 1ms: 4000 lock-step RCPTs stay well inside the
    # test's time limit; bench/timing.py measures the default.
    gw = gw_factory(config={"unknown_recipient": "discard",
                            "harvest_exempt": src + "/32",
                            "rcpt_reply_floor": "1ms",
                            "log_level": "info"}, users=users)
    lat, replies = measure_rcpts(gw, src, ks_names(users))
    check_eq(replies["valid"], {RCPT_OK}, "replies to valid names")
    check_eq(replies["unknown"], {RCPT_OK}, "replies to unknown names")
    ks_report("discard", lat)  # printed; judged by the benchmarks
    no_harvest_events(gw, "exempt client")


def test_indistinguishable_in_uniform_mode(gw_factory):
    users = [f"user{i:04d}@example.test" for i in range(KS_N)]
    src = "127.0.16.1"
    gw = gw_factory(config={"harvest_threshold": "3",
                            "harvest_tarpit_after": "1000",
                            "harvest_session_limit": "1000",
                            "rcpt_reply_floor": "1ms",
                            "log_level": "info"}, users=users)
    with mail_session(gw, src) as c:
        for i in range(3):
            rcpt(c, f"mark{i}")
    gw.wait_event("harvest", state="uniform", net=src)
    lat, replies = measure_rcpts(gw, src, ks_names(users))
    check_eq(replies["valid"], {UNIFORM}, "replies to valid names")
    check_eq(replies["unknown"], {UNIFORM}, "replies to unknown names")
    ks_report("uniform", lat)  # printed; judged by the benchmarks


# ------------------------------------------------------------ standalone

def _main() -> int:
    """Run this file's tests here, output shown (run.py hides it)."""
    import argparse
    import inspect
    import shutil
    import tempfile
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("-k", dest="filter", default="")
    args = ap.parse_args()
    failed = 0
    for name, fn in sorted(globals().items()):
        # known_gap_* only when asked for by name: they fail today
        if args.filter not in name or not (name.startswith("test_") or (
                name.startswith("known_gap_") and args.filter)):
            continue
        tmp = tempfile.mkdtemp(prefix="mxgate-harvest-")
        ctx = mxlib.TestContext(args.binary, tmp)
        fixtures = {"ctx": ctx, "gw_factory": ctx.gateway,
                    "gw": None, "tmpdir": tmp, "binary": args.binary}
        kw = {p: (ctx.gateway() if p == "gw" else fixtures[p])
              for p in inspect.signature(fn).parameters}
        t0 = time.monotonic()
        try:
            fn(**kw)
            ok, why = True, ""
        except AssertionError as e:
            ok, why = False, str(e)
        problems = ctx.close()
        ok = ok and not problems
        why = "; ".join([why] * bool(why) + problems)
        print(f"{'PASS' if ok else 'FAIL'} {name} "
              f"({time.monotonic() - t0:.1f}s){': ' + why if why else ''}",
              flush=True)
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"  kept {tmp}")
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    import sys
    sys.exit(_main())
