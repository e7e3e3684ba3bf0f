"""
test_workers.py - several event loops (`workers`, issue 6 item 1): new
connections are spread over the loops; what is kept per client (the
connection limits, the harvest guard) is one count whichever loop a
connection lands on; a reload reaches every loop; a stop ends the
sessions on all of them; nothing acknowledged is lost or doubled.
The loop that serves a session is in its connect line (loop=N).
"""

from __future__ import annotations

import threading

import mxlib
from mxlib import check, check_eq

UNIFORM = b"450 4.7.1 Try again later\r\n"


def loops_of(gw: mxlib.Gateway, since: int = 0, n: int = 0) -> list[str]:
    """The loop of each session's connect line (waits for n of them:
    the log reaches the test through a pipe, a little after the reply)."""
    mxlib.wait_until(lambda: len(gw.events("connect", since=since)) >= n,
                     5.0, f"{n} connect lines")
    return [ev.get("loop", "?") for ev in gw.events("connect", since=since)]


def test_connections_spread_and_mail_arrives_once(gw_factory):
    gw = gw_factory(config={"workers": "3"})
    gw.wait_event("start", workers="3")
    nclients, per_client = 12, 5
    errors: list[str] = []

    def client(i: int) -> None:
        try:
            with mxlib.session(gw, bind=f"127.0.9.{i + 1}") as c:
                for j in range(per_client):
                    c.expect("250 2.1.0 Ok", "MAIL FROM:<s@remote.test>")
                    c.expect("250 2.1.5 Ok", "RCPT TO:<alice@example.test>")
                    c.expect("354 End data with <CR><LF>.<CR><LF>", "DATA")
                    c.send(mxlib.make_message(f"w{i}m{j}") + b".\r\n")
                    r = c.reply()
                    check(r.text.startswith("250 2.0.0 Ok: queued as "),
                          f"client {i} message {j}: {r}")
        except BaseException as e:  # reported below, in the main thread
            errors.append(f"client {i}: {e}")

    # All connected at once, so the least-busy choice has to use every loop.
    threads = [threading.Thread(target=client, args=(i,))
               for i in range(nclients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    check(not errors, f"clients failed: {errors}")
    total = nclients * per_client
    gw.wait_maildir("example.test", "alice", count=total, timeout_s=30.0)
    mxlib.wait_until(lambda: not gw.spool_files(), 10.0, "the spool to empty")
    subjects = []
    for f in gw.maildir_files("example.test", "alice"):
        with open(f, "rb") as fh:
            for line in fh:
                if line.startswith(b"Subject: "):
                    subjects.append(line.strip())
                    break
    check_eq(len(subjects), total, "messages in the Maildir")
    check_eq(len(set(subjects)), total, "distinct messages (none twice)")
    used = set(loops_of(gw, n=nclients))
    check_eq(used, {"0", "1", "2"}, "loops that served a session")


def test_client_limit_counts_across_loops(gw_factory):
    gw = gw_factory(config={"workers": "2", "max_connections_per_client": "2"})
    a = mxlib.Client(gw.port, bind="127.0.9.50")
    b = mxlib.Client(gw.port, bind="127.0.9.50")
    try:
        a.greet()
        b.greet()
        check_eq(sorted(loops_of(gw, n=2)), ["0", "1"],
                 "the two sessions are on different loops")
        with mxlib.Client(gw.port, bind="127.0.9.50") as c:
            line = c.read_line(5.0).decode("ascii", "replace")
        check(line.startswith("421 4.7.0 ") and "from you" in line,
              f"third connection from one client: {line!r}")
    finally:
        a.close()
        b.close()


def test_harvest_guard_sees_one_client_on_every_loop(gw_factory):
    gw = gw_factory(config={
        "workers": "2", "harvest_threshold": "6",
        "harvest_tarpit_after": "1000", "harvest_session_limit": "1000"})
    src = "127.0.9.60"
    # Two sessions open at once land on two loops; each tries 3 names.
    a = mxlib.session(gw, bind=src)
    b = mxlib.session(gw, bind=src)
    try:
        check_eq(sorted(loops_of(gw, n=2)), ["0", "1"],
                 "one session per loop")
        for c, tag in ((a, "a"), (b, "b")):
            c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
            for j in range(3):
                r = c.cmd(f"RCPT TO:<h{tag}{j}@example.test>")
                check(r.text.startswith("550 5.1.1 "), f"{tag}{j}: {r}")
        gw.wait_event("harvest", state="uniform", net=src)
        for c in (a, b):
            check_eq(c.cmd("RCPT TO:<alice@example.test>").raw, UNIFORM,
                     "a valid name, on either loop, once marked")
    finally:
        a.close()
        b.close()


def test_reload_reaches_every_loop(gw_factory):
    gw = gw_factory(config={"workers": "2"})
    gw.write_users(list(mxlib.DEFAULT_USERS) + ["newcomer@example.test"])
    mark = gw.log_mark()
    gw.reload()
    gw.wait_event("reload", result="ok", since=mark)
    mark = gw.log_mark()
    held = []
    try:
        for i in range(2):  # two at once: one on each loop
            c = mxlib.session(gw, bind=f"127.0.9.{70 + i}")
            held.append(c)
        check_eq(sorted(loops_of(gw, since=mark, n=2)), ["0", "1"],
                 "one session per loop")
        for c in held:
            c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
            c.expect("250 2.1.5 Ok", "RCPT TO:<newcomer@example.test>")
    finally:
        for c in held:
            c.close()


def test_stop_ends_sessions_on_every_loop(gw_factory):
    gw = gw_factory(config={"workers": "3"})
    held = [mxlib.session(gw, bind=f"127.0.9.{80 + i}") for i in range(3)]
    try:
        check_eq(sorted(loops_of(gw, n=3)), ["0", "1", "2"], "one per loop")
        rc = gw.stop()
        check_eq(rc, 0, "exit status after SIGTERM")
        check_eq(len(gw.events("disconnect")), 3, "sessions ended")
        for c in held:
            line = c.read_line(5.0)
            check(line.startswith(b"421 4.3.2 "), f"at stop: {line!r}")
            c.expect_close(5.0)
        gw.wait_event("stopped")
    finally:
        for c in held:
            c.close()
