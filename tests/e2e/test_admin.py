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
from ctllib import (blocked_gateway, iso_to_epoch, mx, parse_list, send,
                    spool_file, unblock, wait_attempted)


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
