"""
test_ctl_live.py - the control socket of a running gateway: SPOOL/
control.sock (mode 0600, removed at stop, a stale one replaced at start,
a second gateway on the same spool refused), `mxgate stats`, `queue
flush`, `queue release` telling the gateway to deliver now, hold and
delete while it runs, `harvest list|unmark`, and the raw protocol
(help, unknown commands, the 1024-byte line cap).
Needs the hooks in main.c (ctl_open, dispatch), worker.c and qmgr.c (their
handlers); the two harvest tests need the guard's handlers registered,
and test_harvest_mark_list_unmark the guard wired into the RCPT pipeline.
Kept as _test_ctl_live.py (the runner skips it) until then; rename it
test_ctl_live.py.
"""

from __future__ import annotations

import os
import re
import socket
import stat

import mxlib
from mxlib import check, check_eq
from ctllib import (blocked_gateway, mx, send, spool_file, unblock,
                      wait_attempted)


def sock_path(gw) -> str:
    return os.path.join(gw.spool_dir, "control.sock")


def raw(gw, data: bytes, timeout_s: float = 10.0) -> bytes:
    """Send bytes on the control socket; everything until EOF."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout_s)
        s.connect(sock_path(gw))
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def stats(ctx, gw) -> dict[str, int]:
    out, _ = mx(ctx, gw, "stats")
    res = {}
    for ln in out.splitlines():
        m = re.fullmatch(r"([a-z_]+) (\d+)", ln)
        check(m, f"bad stats line {ln!r}")
        res[m.group(1)] = int(m.group(2))
    return res


def wait_deferred(ctx, gw, n: int) -> None:
    """The A record is on disk a moment before the retry timer is set."""
    mxlib.wait_until(lambda: stats(ctx, gw).get("queue_deferred") == n, 10.0,
                     f"queue_deferred {n} in stats", 0.05)


# ------------------------------------------------------------ the socket

def test_socket_lifecycle(ctx):
    gw = ctx.gateway()
    st = os.lstat(sock_path(gw))
    check(stat.S_ISSOCK(st.st_mode), "control.sock is not a socket")
    check_eq(st.st_mode & 0o777, 0o600, "mode of control.sock")
    gw.stop()
    check(not os.path.exists(sock_path(gw)), "control.sock left after stop")
    gw.start()
    gw.kill9()
    check(os.path.exists(sock_path(gw)), "kill -9 removed the socket?")
    gw.start()  # the stale file is replaced
    check_eq(raw(gw, b"help\n").splitlines()[-1], b"ok", "after restart")


def test_second_gateway_on_the_same_spool(ctx):
    gw = ctx.gateway()
    other = ctx.gateway(start=False, config={"spool": gw.spool_dir})
    other.port = mxlib.free_port()
    other.write_config()
    p = ctx.run_binary(["serve", "-c", other.conf_path], timeout_s=20)
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    check_eq(p.returncode, 1, "exit status of a second gateway on a served "
             "spool")
    check(f"is in use by pid {gw.proc.pid}" in out or mxlib.WRAPPER,
          f"why not: {out.strip()!r}")
    check_eq(raw(gw, b"help\n").splitlines()[-1], b"ok",
             "the first gateway after the attempt")


def test_protocol(ctx):
    gw = ctx.gateway()
    out = raw(gw, b"help\n").decode()
    lines = out.splitlines()
    check_eq(lines[-1], "ok", "help status")
    for cmd in ("help", "stats", "reload", "queue flush", "queue schedule"):
        check(any(ln.startswith(cmd + " ") for ln in lines),
              f"help lacks {cmd!r}: {out!r}")
    check_eq(raw(gw, b"frob\n"), b"error: unknown command: frob (try help)\n",
             "unknown command")
    check_eq(raw(gw, b"x" * 1024),
             b"error: line too long (at most 1024 bytes)\n", "long line")
    check_eq(raw(gw, b"queue schedule ../x\r\n"),
             b"error: usage: queue schedule QUEUE-ID\n", "bad id")
    check_eq(raw(gw, b"", timeout_s=45.0), b"", "idle: closed, no reply")
    gw.check_alive()


# ------------------------------------------------------------ commands

def test_stats(ctx):
    gw = ctx.gateway()
    s0 = stats(ctx, gw)
    for key in ("uptime_seconds", "control_requests_total",
                "control_connections", "sessions_open", "sessions_total",
                "messages_queued_total", "queue_active", "queue_deferred",
                "spool_syncs_total", "spool_sync_calls_total",
                "spool_synced_messages_total",
                "spool_sync_microseconds_total"):
        check(key in s0, f"stats lacks {key}: {s0}")
    check_eq(s0["messages_queued_total"], 0, "queued at start")
    send(gw, ["alice@example.test"], mxlib.make_message("counted"))
    gw.wait_maildir("example.test", "alice")
    s1 = stats(ctx, gw)
    check_eq(s1["messages_queued_total"], 1, "queued after one message")
    # its commit waited for one journal sync, in one batch
    check_eq(s1["spool_synced_messages_total"], 1, "messages synced")
    check_eq(s1["spool_sync_calls_total"], 1, "batch jobs")
    check(s1["spool_syncs_total"] >= 1, f"journal syncs {s1}")
    check(s1["sessions_total"] >= 1, f"sessions_total {s1}")
    check(s1["control_requests_total"] > s0["control_requests_total"],
          "control requests are not counted")


def test_flush_delivers_deferred_now(ctx):
    gw = blocked_gateway(ctx)  # retry_min 1h: only a flush retries
    qid = send(gw, ["alice@example.test"], mxlib.make_message("flushed"))
    wait_attempted(ctx, gw, qid)
    wait_deferred(ctx, gw, 1)
    unblock(gw)
    out, _ = mx(ctx, gw, "queue", "flush")
    check_eq(out, "scheduled 1 deferred message\n", "flush output")
    root = os.path.join(gw.dir, "blocked", "mail")
    gw.wait_maildir("example.test", "alice", timeout_s=30.0, root=root)
    mxlib.wait_until(lambda: gw.spool_files() == [], 10.0, "an empty queue")
    check_eq(mx(ctx, gw, "queue", "flush")[0],
             "scheduled 0 deferred messages\n", "second flush")


def test_release_schedules_now(ctx):
    gw = blocked_gateway(ctx)
    qid = send(gw, ["alice@example.test"], mxlib.make_message("released"))
    wait_attempted(ctx, gw, qid)
    mx(ctx, gw, "queue", "hold", qid)
    unblock(gw)
    out, _ = mx(ctx, gw, "queue", "release", qid)
    check_eq(out, f"released {qid}\nscheduled {qid}\n", "release output")
    root = os.path.join(gw.dir, "blocked", "mail")
    gw.wait_maildir("example.test", "alice", timeout_s=30.0, root=root)


def test_hold_and_delete_while_running(ctx):
    gw = blocked_gateway(ctx)
    qh = send(gw, ["alice@example.test"], mxlib.make_message("hold me"))
    qd = send(gw, ["bob@example.test"], mxlib.make_message("delete me"))
    qk = send(gw, ["carol@example.test"], mxlib.make_message("keep me"))
    for q in (qh, qd, qk):
        wait_attempted(ctx, gw, q)
    mx(ctx, gw, "queue", "hold", qh)
    mx(ctx, gw, "queue", "delete", qd)
    mark = gw.log_mark()
    unblock(gw)
    out, _ = mx(ctx, gw, "queue", "flush")
    check(re.fullmatch(r"scheduled \d+ deferred messages?\n", out),
          f"flush output {out!r}")
    root = os.path.join(gw.dir, "blocked", "mail")
    gw.wait_maildir("example.test", "carol", timeout_s=30.0, root=root)
    gw.wait_event("removed", since=mark, qid=qk)
    for who in ("alice", "bob"):
        check_eq(gw.maildir_files("example.test", who, root=root), [],
                 f"{who}'s Maildir")
    check(os.path.exists(spool_file(gw, "hold", qh)), "held file gone")
    bad = [e["line"] for e in gw.events(since=mark)
           if e["level"] in ("warning", "error")
           and (qh in e["line"] or qd in e["line"])]
    check(not bad, "warnings about held/deleted messages: " + " / ".join(bad))


def test_schedule_unknown_id(ctx):
    gw = ctx.gateway()
    check_eq(raw(gw, b"queue schedule 0123456789ABCDEF\n"),
             b"error: no such message in the queue: 0123456789ABCDEF\n",
             "schedule of an unknown id")


def test_reload(ctx):
    gw = ctx.gateway()
    mark = gw.log_mark()
    gw.write_users(list(mxlib.DEFAULT_USERS) + ["dave@example.test"])
    out = raw(gw, b"reload\n").decode()
    check_eq(out.splitlines()[-1], "ok", f"reload: {out!r}")
    gw.wait_event("reload", since=mark, result="ok")
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        c.expect("250 2.1.5 Ok", "RCPT TO:<dave@example.test>")


# ------------------------------------------------------------ harvest

def test_harvest_list_empty_and_unmark_nothing(ctx):
    """Needs the guard's handlers registered (main.c, part B)."""
    gw = ctx.gateway()
    lines = raw(gw, b"help\n").decode().splitlines()
    for cmd in ("harvest list", "harvest unmark"):
        check(any(ln.startswith(cmd + " ") for ln in lines),
              f"help lacks {cmd!r}: {lines!r}")
    s = stats(ctx, gw)
    for key in ("harvest_entries", "harvest_marked"):
        check(key in s, f"stats lacks {key}: {s}")
    check_eq(mx(ctx, gw, "harvest", "list")[0], "0 entries\n", "empty list")
    check_eq(mx(ctx, gw, "harvest", "unmark", "192.0.2.1")[0],
             "unmarked 0 entries (0 uniform, 0 tarpit, 0 counted)\n",
             "unmark of a stranger")
    check_eq(mx(ctx, gw, "harvest", "unmark", "192.0.2.0/24")[0],
             "unmarked 0 entries (0 uniform, 0 tarpit, 0 counted)\n",
             "unmark of a net")


def test_harvest_mark_list_unmark(ctx):
    """Needs the guard wired into the RCPT pipeline."""
    gw = ctx.gateway(config={"harvest_threshold": "3",
                             "harvest_tarpit_after": "1000",
                             "harvest_session_limit": "1000"})
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        for i in range(6):
            c.sendline(f"RCPT TO:<nobody{i}@example.test>")
            c.reply()
    out, _ = mx(ctx, gw, "harvest", "list")
    lines = out.splitlines()
    check(re.fullmatch(r"\d+ entr(y|ies)", lines[-1]), f"summary {out!r}")
    mine = [ln for ln in lines if ln.startswith("127.0.0.1")]
    check(mine and " uniform " in mine[0], f"127.0.0.1 not uniform: {out!r}")
    check(re.fullmatch(r"127\.0\.0\.1\S* uniform unknown=\d+ valid=\d+ "
                       r"expires_in=\d+s", mine[0]), f"line {mine[0]!r}")
    out, _ = mx(ctx, gw, "harvest", "unmark", "127.0.0.1")
    m = re.search(r"^unmarked (\d+) entr(y|ies) \((\d+) uniform, \d+ "
                  r"tarpit, \d+ counted\)\n\Z", out, re.M)
    check(m and int(m.group(1)) >= 1 and int(m.group(3)) >= 1,
          f"unmark output {out!r}")
    out, _ = mx(ctx, gw, "harvest", "list")
    check(not [ln for ln in out.splitlines() if " uniform " in ln and
               ln.startswith("127.0.0.1")], f"still uniform: {out!r}")
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        c.expect("250 2.1.5 Ok", "RCPT TO:<alice@example.test>")
