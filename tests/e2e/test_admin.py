"""
test_admin.py - administrator commands that can be trusted (issue 12,
point 11): a users file missing or bad at start is fatal (serve exits 1
with FILE:LINE: as check-config says it; a reload keeps the old one);
`queue flush` counts and schedules each deferred message once and never
inflates its backoff; hold, release, delete and flush log one line each
with the peer's uid and pid; list and show print the last delivery
error; queue ids in any case; `harvest unmark` says what it removed;
SIGHUP opens and closes listeners and names what needs a restart.
"""

from __future__ import annotations

import os
import re
import socket

import mxlib
from mxlib import check, check_eq
from ctllib import blocked_gateway, mx, send, unblock, wait_attempted
from test_ctl_live import raw  # the raw control protocol


def serve_once(ctx, gw, timeout_s: float = 30.0):
    """Run `serve` in the foreground; it must exit on its own."""
    p = ctx.run_binary(["serve", "-c", gw.conf_path], timeout_s=timeout_s)
    return (p.returncode, p.stdout.decode("utf-8", "replace"),
            p.stderr.decode("utf-8", "replace"))


def check_config(ctx, gw):
    p = ctx.run_binary(["check-config", "-c", gw.conf_path])
    return p.returncode, p.stderr.decode("utf-8", "replace")


# ------------------------------------------------ the users file at start

@mxlib.params(["missing", "bad_line", "folder"])
def test_users_file_bad_at_start_is_fatal(ctx, param):
    gw = ctx.gateway(start=False)
    gw.port = mxlib.free_port()
    gw.write_config()
    if param == "missing":
        gw.remove_users()
        want = re.escape(gw.users_path) + r": cannot read the users file: "
        want += r"No such file or directory"
    elif param == "bad_line":
        gw.write_users(text=b"alice@example.test\n# fine\n"
                            b"not an address\nbob@example.test\n")
        want = re.escape(gw.users_path) + r":3: bad address "
    else:
        gw.remove_users()
        os.mkdir(gw.users_path)
        want = re.escape(gw.users_path) + r": cannot read the users file: "
    rc, out, err = serve_once(ctx, gw)
    check_eq(rc, 1, f"exit status of serve (stderr {err!r})")
    check(re.search("^" + want, err, re.M), f"serve's stderr: {err!r}")
    crc, cerr = check_config(ctx, gw)
    check_eq(crc, 1, "exit status of check-config")
    # The very line check-config prints.
    first = cerr.splitlines()[0]
    check(first in err.splitlines(), f"check-config said {first!r}, "
          f"serve said {err!r}")
    check(not os.path.exists(os.path.join(gw.spool_dir, "control.sock")),
          "serve left a control socket")
    with socket.socket() as s:
        check(s.connect_ex(("127.0.0.1", gw.port)) != 0,
              "something listens on the gateway's port")


def test_users_file_bad_at_reload_keeps_old(gw):
    gw.write_users(text=b"alice@example.test\nnot an address\n")
    mark = gw.reload()
    ev = gw.wait_event("reload", since=mark, result="kept_old")
    check_eq(ev["reason"], "directory", "reason")
    gw.wait_log(r"event=reload file=\S*users line=2 ", since=mark)
    gw.check_alive()
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        for who in mxlib.DEFAULT_USERS:
            c.expect("250 2.1.5 Ok", f"RCPT TO:<{who}>")
    gw.remove_users()
    mark = gw.reload()
    gw.wait_event("reload", since=mark, result="kept_old")
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        c.expect("250 2.1.5 Ok", "RCPT TO:<bob@example.test>")


# ------------------------------------------------------ harvest unmark

def test_unmark_reports_a_lifted_tarpit(ctx):
    """A tarpitted client (not marked) was unmarked with `unmarked 0
    entries`: every removed entry is told and counted, by its state."""
    gw = ctx.gateway(config={"harvest_tarpit_after": "2",
                             "harvest_tarpit_delay": "1ms",
                             "harvest_tarpit_max": "1ms",
                             "harvest_threshold": "1000",
                             "harvest_threshold_net": "1000",
                             "harvest_session_limit": "1000"})
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        for i in range(4):
            c.expect("550 5.1.1 *", f"RCPT TO:<nobody{i}@example.test>")
    out, _ = mx(ctx, gw, "harvest", "list")
    check(re.search(r"^127\.0\.0\.1 tarpit ", out, re.M),
          f"not tarpitted: {out!r}")
    mark = gw.log_mark()
    out, _ = mx(ctx, gw, "harvest", "unmark", "127.0.0.1")
    lines = out.splitlines()
    m = re.fullmatch(r"unmarked (\d+) entr(?:y|ies) \((\d+) uniform, "
                     r"(\d+) tarpit, (\d+) counted\)", lines[-1])
    check(m, f"summary {out!r}")
    n, uni, tar, cnt = (int(g) for g in m.groups())
    check(n >= 1 and tar >= 1, f"counted nothing: {out!r}")
    check_eq(uni + tar + cnt, n, f"states add up: {out!r}")
    check_eq(len(lines) - 1, n, f"one line per entry: {out!r}")
    check(any(re.fullmatch(r"127\.0\.0\.1 was=tarpit unknown=\d+ valid=\d+",
                           ln) for ln in lines), f"lines {out!r}")
    check_eq(len(gw.events("harvest", since=mark, state="unmarked")), n,
             "state=unmarked log lines")
    out, _ = mx(ctx, gw, "harvest", "list")
    check(not re.search(r"^127\.0\.0\.1 ", out, re.M), f"still: {out!r}")
    out, _ = mx(ctx, gw, "harvest", "unmark", "127.0.0.1")
    check_eq(out, "unmarked 0 entries (0 uniform, 0 tarpit, 0 counted)\n",
             "a second unmark")


# ------------------------------------------------------------ the queue

def stats(ctx, gw) -> dict[str, int]:
    out, _ = mx(ctx, gw, "stats")
    return {k: int(v) for k, v in (ln.split(" ") for ln in out.splitlines())
            if v.isdigit()}


def settled(ctx, gw, deferred: int) -> None:
    """Nothing active, `deferred` messages waiting for their timer."""
    mxlib.wait_until(lambda: (s := stats(ctx, gw)).get("queue_active") == 0
                     and s.get("queue_deferred") == deferred, 15.0,
                     f"queue_active 0, queue_deferred {deferred}", 0.05)


def show_fields(ctx, gw, qid: str) -> dict[str, str]:
    out, _ = mx(ctx, gw, "queue", "show", qid)
    head = out.partition("\n\n")[0]
    return dict(ln.split(": ", 1) for ln in head.splitlines()
                if not ln.startswith("recipient: "))


def control_lines(gw, since: int, cmd: str) -> list[dict[str, str]]:
    return gw.events("control", since=since, cmd=cmd)


def check_who(ev: dict[str, str], gw) -> None:
    check_eq(ev.get("uid"), str(os.getuid()), f"uid in {ev['line']!r}")
    check(ev.get("pid", "").isdigit() and int(ev["pid"]) > 0 and
          int(ev["pid"]) != gw.proc.pid, f"pid in {ev['line']!r}")


def test_flush_after_hold_release_delete(ctx):
    """The reported case: hold, release, flush said 3 with 2 queued, tried
    the released one twice, counted a deleted one, and every flush
    pushed the next retry out (attempts grew)."""
    gw = blocked_gateway(ctx)  # retry_min 1h: only operators retry
    q1 = send(gw, ["alice@example.test"], mxlib.make_message("one"))
    q2 = send(gw, ["bob@example.test"], mxlib.make_message("two"))
    q3 = send(gw, ["carol@example.test"], mxlib.make_message("three"))
    for q in (q1, q2, q3):
        wait_attempted(ctx, gw, q)
    settled(ctx, gw, 3)
    before = {q: show_fields(ctx, gw, q) for q in (q1, q2)}
    for q in (q1, q2):
        check_eq(before[q]["attempts"], "1", f"attempts of {q}")

    mark = gw.log_mark()
    out, _ = mx(ctx, gw, "queue", "hold", q1.lower())
    check_eq(out, f"held {q1}\n", "hold output (a lower-case id)")
    out, _ = mx(ctx, gw, "queue", "release", q1)
    check_eq(out, f"released {q1}\nscheduled {q1}\n", "release output")
    # the release is an early try: it defers again, count unchanged
    ev = gw.wait_event("deferred", since=mark, qid=q1, timeout_s=15.0)
    check_eq(ev.get("early"), "yes", f"early try: {ev['line']!r}")
    check_eq(ev.get("attempts"), "1", f"attempts: {ev['line']!r}")
    out, _ = mx(ctx, gw, "queue", "delete", q3)
    check_eq(out, f"deleted {q3}\n", "delete output")
    settled(ctx, gw, 2)

    flush_mark = gw.log_mark()
    out, _ = mx(ctx, gw, "queue", "flush")
    check_eq(out, "scheduled 2 deferred messages\n", "flush output")
    for q in (q1, q2):
        gw.wait_event("deferred", since=flush_mark, qid=q, timeout_s=15.0)
    settled(ctx, gw, 2)
    for q in (q1, q2):
        evs = gw.events("deferred", since=flush_mark, qid=q)
        check_eq(len(evs), 1, f"attempts of {q} after one flush: "
                 f"{[e['line'] for e in evs]!r}")
        check_eq(evs[0].get("early"), "yes", f"{evs[0]['line']!r}")
    check_eq(gw.events("deferred", since=flush_mark, qid=q3), [],
             "the deleted message tried")
    # a second flush: still 2, and still no backoff growth
    out, _ = mx(ctx, gw, "queue", "flush")
    check_eq(out, "scheduled 2 deferred messages\n", "second flush output")
    settled(ctx, gw, 2)
    for q in (q1, q2):
        after = show_fields(ctx, gw, q)
        check_eq(after["attempts"], "1", f"attempts of {q} after flushes")
        check_eq(after["next attempt"], before[q]["next attempt"],
                 f"next attempt of {q} after flushes")
        check(after["last error"].endswith("Not a directory"),
              f"last error of {q}: {after['last error']!r}")

    # one control line each, with who asked and which ids
    for cmd, qid in (("queue_held", q1), ("queue_released", q1),
                     ("queue_deleted", q3)):
        evs = control_lines(gw, mark, cmd)
        check_eq(len(evs), 1, f"{cmd} lines")
        check_eq(evs[0].get("qid"), qid, f"qid in {evs[0]['line']!r}")
        check_eq(evs[0].get("result"), "ok", f"{evs[0]['line']!r}")
        check_who(evs[0], gw)
    mxlib.wait_until(lambda: len(control_lines(gw, flush_mark,
                                               "queue_flush")) >= 2, 10.0,
                     "two queue_flush lines")
    evs = control_lines(gw, flush_mark, "queue_flush")
    check_eq(len(evs), 2, "queue_flush lines")
    for ev in evs:
        check_eq(sorted(ev.get("qids", "").split(",")), sorted([q1, q2]),
                 f"qids in {ev['line']!r}")
        check_eq(ev.get("scheduled"), "2", f"{ev['line']!r}")
        check_who(ev, gw)

    # once unblocked, a flush delivers both, each once
    unblock(gw)
    mx(ctx, gw, "queue", "flush")
    root = os.path.join(gw.dir, "blocked", "mail")
    gw.wait_maildir("example.test", "alice", root=root)
    gw.wait_maildir("example.test", "bob", root=root)
    mxlib.wait_until(lambda: gw.spool_files() == [], 10.0, "an empty queue")
    check_eq(len(gw.maildir_files("example.test", "alice", root=root)), 1,
             "copies for alice")


def test_notes_are_checked_and_ids_any_case(ctx):
    """The gateway believes a note only when the spool agrees."""
    gw = blocked_gateway(ctx)
    q = send(gw, ["alice@example.test"], mxlib.make_message("noted"))
    wait_attempted(ctx, gw, q)
    mark = gw.log_mark()
    for verb, want in (("held", f"{q} is in the queue"),
                       ("deleted", f"{q} is in the queue")):
        out = raw(gw, f"queue {verb} {q.lower()}\n".encode()).decode()
        check_eq(out, f"error: {want}\n", f"queue {verb} of a queued one")
        ev = gw.wait_event("control", since=mark, cmd=f"queue_{verb}")
        check_eq(ev.get("result"), "error", f"{ev['line']!r}")
        check_eq(ev.get("qid"), q, f"{ev['line']!r}")
    out, _ = mx(ctx, gw, "queue", "show", q.lower())
    check(out.startswith(f"id: {q}\n"), f"show of a lower-case id: {out!r}")
    out, _ = mx(ctx, gw, "queue", "delete", q.lower())
    check_eq(out, f"deleted {q}\n", "delete of a lower-case id")
    ev = gw.wait_event("control", since=mark, cmd="queue_deleted",
                       result="ok")
    check_eq(ev.get("qid"), q, f"{ev['line']!r}")


# ------------------------------------------------- SIGHUP and listeners

def refused(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(5.0)
        return s.connect_ex(("127.0.0.1", port)) != 0


def greets(port: int) -> bool:
    with mxlib.Client(port) as c:
        return c.greet().text.startswith("220 ")


def reload_with(gw, **settings) -> tuple[int, dict[str, str]]:
    """Rewrite the config with settings and SIGHUP; (mark, reload event)."""
    for k, v in settings.items():
        gw.settings[k] = v
    gw.write_config()
    mark = gw.reload()
    ev = gw.wait_log(r"^.*event=reload result=(ok|partial|kept_old)\b.*$",
                     since=mark)
    return mark, mxlib.parse_log_line(ev.group(0))


def test_sighup_opens_and_closes_listeners(gw_factory):
    from test_tls_auth import tls_gateway  # certificate and passwd file
    gw = tls_gateway(gw_factory, submission=False)
    p1 = gw.port
    p2, sub, tls = (mxlib.free_port() for _ in range(3))
    old = mxlib.session(gw).__enter__()
    try:
        old.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        old.expect("250 2.1.5 Ok", "RCPT TO:<alice@example.test>")
        mark, ev = reload_with(gw, listen=f"127.0.0.1:{p2}",
                               submission_listen=f"127.0.0.1:{sub}",
                               tls_required_listen=f"127.0.0.1:{tls}")
        check_eq(ev.get("result"), "ok", f"reload: {ev['line']!r}")
        for port, kind in ((p2, "smtp"), (sub, "submission"),
                           (tls, "smtp_tls_required")):
            gw.wait_log(r"event=listening addr=127\.0\.0\.1:%d listener=%s"
                        r"$" % (port, kind), since=mark)
        gw.wait_log(r"event=listen_closed addr=127\.0\.0\.1:%d "
                    r"listener=smtp$" % p1, since=mark)
        check(refused(p1), f"old port {p1} still accepts")
        gw.port = p2
        with mxlib.session(gw) as c:
            c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        with mxlib.Client(tls) as c:
            c.greet()
            c.ehlo()
            c.expect("530 5.7.0 *", "MAIL FROM:<x@remote.test>")
        with mxlib.Client(sub) as c:
            c.greet()
            check(b"STARTTLS" in c.ehlo().raw, "no STARTTLS on submission")
        # the session opened on the closed listener goes on to the end
        old.expect("354 *", "DATA")
        old.send(mxlib.make_message("old listener") + b".\r\n")
        old.expect("250 2.0.0 Ok: queued as *")
        old.expect("221 2.0.0 Bye", "QUIT")
    finally:
        old.close()
    gw.wait_maildir("example.test", "alice")
    # and back: the extra listeners close, an address moves between keys
    mark, ev = reload_with(gw, listen=f"127.0.0.1:{p2},127.0.0.1:{tls}",
                           submission_listen=None, tls_required_listen=None)
    check_eq(ev.get("result"), "ok", f"reload: {ev['line']!r}")
    gw.wait_log(r"event=listen_closed addr=127\.0\.0\.1:%d "
                r"listener=submission$" % sub, since=mark)
    gw.wait_log(r"event=listening addr=127\.0\.0\.1:%d listener=smtp$" % tls,
                since=mark)
    check(refused(sub), "submission port still accepts")
    with mxlib.Client(tls) as c:
        c.greet()
        c.ehlo()
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
    check(greets(p2), "the kept listener")


def test_sighup_partial_names_what_needs_a_restart(gw):
    p1 = gw.port
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    taken = busy.getsockname()[1]
    try:
        mark, ev = reload_with(gw, listen=f"127.0.0.1:{taken}",
                               workers="3", next_hop_concurrency="7",
                               max_recipients="2")
        check_eq(ev.get("result"), "partial", f"reload: {ev['line']!r}")
        check_eq(ev.get("level"), "warning", f"level: {ev['line']!r}")
        check_eq(sorted(ev.get("restart_needed", "").split(",")),
                 ["listen", "next_hop_concurrency", "workers"],
                 f"restart_needed in {ev['line']!r}")
        check_eq(gw.events("reload", since=mark, result="ok"), [],
                 "result=ok lines")
        gw.wait_log(r"event=listen_kept addr=127\.0\.0\.1:%d " % p1,
                    since=mark)
        # still reachable where it was; what could apply did
        with mxlib.session(gw) as c:
            c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
            c.expect("250 2.1.5 Ok", "RCPT TO:<alice@example.test>")
            c.expect("250 2.1.5 Ok", "RCPT TO:<bob@example.test>")
            c.expect("452 4.5.3 *", "RCPT TO:<carol@example.test>")
    finally:
        busy.close()
    # the file still differs from what runs (workers, next_hop_concurrency
    # are as at start); the port is free now and opens
    mark, ev = reload_with(gw)
    check_eq(ev.get("result"), "partial", f"second reload: {ev['line']!r}")
    check_eq(sorted(ev.get("restart_needed", "").split(",")),
             ["next_hop_concurrency", "workers"], f"{ev['line']!r}")
    gw.wait_log(r"event=listening addr=127\.0\.0\.1:%d listener=smtp$" %
                taken, since=mark)
    gw.wait_log(r"event=listen_closed addr=127\.0\.0\.1:%d " % p1,
                since=mark)
    check(greets(taken), "the new port")
    # back to what runs: ok
    mark, ev = reload_with(gw, workers=None, next_hop_concurrency=None)
    check_eq(ev.get("result"), "ok", f"third reload: {ev['line']!r}")
