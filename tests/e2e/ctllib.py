"""
ctllib.py - helpers shared by test_ctl.py and test_ctl_live.py: run an
operator subcommand, a gateway whose Maildir root is blocked (its mail
stays queued), sending, waiting for a recorded delivery attempt, and
parsing `mxgate queue list`.  Not a test module (no test_ prefix).
"""

from __future__ import annotations

import calendar
import os
import re
import time

import mxlib
from mxlib import check, check_eq

QID_LINE = re.compile(r"^([0-9A-F]{16}) (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) "
                      r"(\d+) <(.*)> (active|held|deferred: attempts (\d+), "
                      r"next attempt (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ))$")
QUEUED = re.compile(r"^250 2\.0\.0 Ok: queued as ([0-9A-F]{16})$")


def mx(ctx, gw, *args: str, rc: int = 0, timeout_s: float = 30.0
       ) -> tuple[str, str]:
    """Run `mxgate ARGS -c CONF`; check the exit status; (stdout, stderr)."""
    p = ctx.run_binary(list(args) + ["-c", gw.conf_path], timeout_s=timeout_s)
    out = p.stdout.decode("utf-8", "replace")
    err = p.stderr.decode("utf-8", "replace")
    check_eq(p.returncode, rc, f"exit status of mxgate {' '.join(args)} "
             f"(stdout {out.strip()!r}, stderr {err.strip()!r})")
    return out, err


def offline_gateway(ctx) -> mxlib.Gateway:
    """A config and an empty spool, no process."""
    gw = ctx.gateway(start=False)
    gw.port = mxlib.free_port()
    gw.write_config()
    return gw


def blocked_gateway(ctx, **config) -> mxlib.Gateway:
    """A gateway whose Maildir root cannot be created: mail stays queued."""
    settings = {"next_hop": "maildir:blocked/mail", "retry_min": "1h"}
    settings.update(config)
    gw = ctx.gateway(start=False, config=settings)
    with open(os.path.join(gw.dir, "blocked"), "w") as f:
        f.write("a file where the Maildir root should be\n")
    gw.start()
    return gw


def unblock(gw) -> None:
    """Replace the file by a folder: the Maildir root can be made now."""
    os.unlink(os.path.join(gw.dir, "blocked"))
    os.mkdir(os.path.join(gw.dir, "blocked"))


def send(gw, rcpts, msg: bytes, sender: str = "x@remote.test",
         params: str = "") -> str:
    """One message; returns its queue id."""
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", f"MAIL FROM:<{sender}>{params}")
        for r in rcpts:
            c.expect("250 2.1.5 Ok", f"RCPT TO:<{r}>")
        c.expect("354 *", "DATA")
        c.send(msg + b".\r\n")
        text = c.reply(10.0).text
    m = QUEUED.match(text)
    check(m, f"end of DATA: {text!r}")
    return m.group(1)


def wait_attempted(ctx, gw, qid: str, timeout_s: float = 10.0) -> str:
    """Wait until the first delivery attempt is on disk; returns `show`."""
    def probe():
        p = ctx.run_binary(["queue", "show", qid, "-c", gw.conf_path])
        out = p.stdout.decode("utf-8", "replace")
        return out if p.returncode == 0 and re.search(
            r"^attempts: [1-9]", out, re.M) else None
    return mxlib.wait_until(probe, timeout_s,
                            f"a recorded delivery attempt of {qid}", 0.1)


def iso_to_epoch(s: str) -> int:
    return calendar.timegm(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ"))


def parse_list(out: str) -> tuple[list[dict], str]:
    """Messages (with their pending recipients) and the summary line."""
    lines = out.splitlines()
    check(lines, "queue list printed nothing")
    msgs: list[dict] = []
    for ln in lines[:-1]:
        if ln.startswith("  last error "):
            check(msgs and not msgs[-1]["rcpts"],
                  f"last error line out of place: {ln!r}")
            m = re.fullmatch(r"  last error (\S+Z): (.+)", ln)
            check(m, f"bad last error line {ln!r}")
            msgs[-1]["last_error_time"] = m.group(1)
            msgs[-1]["last_error"] = m.group(2)
            continue
        if ln.startswith("  "):
            check(msgs, f"recipient line before any message: {ln!r}")
            m = re.fullmatch(r"  <(.+)>", ln)
            check(m, f"bad recipient line {ln!r}")
            msgs[-1]["rcpts"].append(m.group(1))
            continue
        m = QID_LINE.match(ln)
        check(m, f"bad message line {ln!r}")
        msgs.append({"qid": m.group(1), "arrival": m.group(2),
                     "size": int(m.group(3)), "sender": m.group(4),
                     "state": m.group(5), "attempts": m.group(6),
                     "next": m.group(7), "rcpts": [],
                     "last_error": None, "last_error_time": None})
    return msgs, lines[-1]


def spool_file(gw, sub: str, qid: str) -> str:
    return os.path.join(gw.spool_dir, sub, qid)
