"""
test_limits.py - hardening limits (issue 5 items 3 to 5): connections in
total, per client and per minute; commands per session; header size and
line length in DATA; the total session time; stress mode (shorter
timeouts near max_connections); the privilege drop to `user`.
"""

from __future__ import annotations

import os
import pwd
import socket
import time

import mxlib
from mxlib import check, check_eq


def _refused(port: int, bind: str) -> str:
    """Connect and return the first line the server sends."""
    with mxlib.Client(port, bind=bind) as c:
        return c.read_line(5.0).decode("ascii", "replace").rstrip()


def test_max_connections(gw_factory):
    gw = gw_factory(config={"max_connections": "3"})
    held = []
    try:
        for i in range(3):
            c = mxlib.Client(gw.port, bind=f"127.0.4.{i + 1}")
            c.greet()
            held.append(c)
        line = _refused(gw.port, "127.0.4.9")
        check(line.startswith("421 4.7.0 ") and
              "too many connections" in line, f"4th connection: {line!r}")
        gw.wait_event("refused", reason="max_connections")
    finally:
        for c in held:
            c.close()
    # Once they are gone, a new client is served again.
    mxlib.wait_until(lambda: len(gw.events("disconnect")) >= 3, 5.0,
                     "the held sessions to end")
    with mxlib.session(gw, bind="127.0.4.9") as c:
        c.expect("250 2.0.0 Ok", "NOOP")


def test_max_connections_per_client(gw_factory):
    gw = gw_factory(config={"max_connections_per_client": "2"})
    a = mxlib.Client(gw.port, bind="127.0.5.1")
    b = mxlib.Client(gw.port, bind="127.0.5.1")
    try:
        a.greet()
        b.greet()
        line = _refused(gw.port, "127.0.5.1")
        check(line.startswith("421 4.7.0 ") and "from you" in line,
              f"3rd connection from one client: {line!r}")
        # Another client is not affected.
        with mxlib.session(gw, bind="127.0.5.2") as c:
            c.expect("250 2.0.0 Ok", "NOOP")
    finally:
        a.close()
        b.close()
    gw.wait_event("refused", reason="too_many_connections")


def test_max_connection_rate_per_client(gw_factory):
    gw = gw_factory(config={"max_connection_rate_per_client": "3"})
    for _ in range(3):
        with mxlib.session(gw, bind="127.0.6.1") as c:
            c.expect("221 2.0.0 Bye", "QUIT")
    line = _refused(gw.port, "127.0.6.1")
    check(line.startswith("421 4.7.0 ") and "per minute" in line,
          f"4th connection in a minute: {line!r}")
    gw.wait_event("refused", reason="connection_rate")
    with mxlib.session(gw, bind="127.0.6.2") as c:
        c.expect("250 2.0.0 Ok", "NOOP")


def test_max_commands_per_session(gw_factory):
    gw = gw_factory(config={"max_commands_per_session": "10"})
    with mxlib.session(gw) as c:          # EHLO is command 1
        for _ in range(9):
            c.expect("250 2.0.0 Ok", "NOOP")
        r = c.cmd("NOOP")
        check(r.text.startswith("421 4.7.0 ") and
              "too many commands" in r.text, f"11th command: {r.text}")
        c.expect_close()


def _send_data(c: mxlib.Client, body: bytes) -> mxlib.Reply:
    c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
    c.expect("250 2.1.5 Ok", "RCPT TO:<alice@example.test>")
    c.expect("354 *", "DATA")
    c.send(body + b".\r\n")
    return c.reply()


def test_header_size_limit(gw_factory):
    gw = gw_factory(config={"max_header_size": "1K"})
    with mxlib.session(gw) as c:
        big = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"y" * 60)
                       for i in range(40))
        r = _send_data(c, big + b"Subject: big\r\n\r\nbody\r\n")
        check_eq(r.text, "552 5.3.4 Message header size exceeds limit",
                 "big header")
        # A big body under a small header is fine.
        r = _send_data(c, b"Subject: small\r\n\r\n" +
                       b"".join(b"%s\r\n" % (b"z" * 70) for _ in range(100)))
        check(r.text.startswith("250 2.0.0 Ok: queued as "), r.text)
    check_eq(len(gw.wait_maildir("example.test", "alice")), 1, "delivered")


def test_line_length_limit(gw_factory):
    gw = gw_factory(config={"max_line_length": "1000"})
    with mxlib.session(gw) as c:
        r = _send_data(c, b"Subject: long\r\n\r\n" + b"a" * 999 + b"\r\n")
        check_eq(r.text, "552 5.3.4 Message line length exceeds limit",
                 "1001-octet line")
        r = _send_data(c, b"Subject: ok\r\n\r\n" + b"a" * 998 + b"\r\n")
        check(r.text.startswith("250 2.0.0 Ok: queued as "),
              f"1000-octet line: {r.text}")


def test_session_timeout(gw_factory):
    gw = gw_factory(config={"session_timeout": "1s"})
    with mxlib.session(gw) as c:
        c.expect("250 2.0.0 Ok", "NOOP")
        deadline = time.monotonic() + 60  # a bound, not the claim
        while time.monotonic() < deadline:
            r = c.cmd("NOOP", 60.0)
            if r.code == 421:
                break
            time.sleep(0.2)  # the pace of a busy client
        check(r.text.startswith("421 4.4.2 "), f"after 1s: {r.text}")
        c.expect_close()


def test_stress_mode_shortens_timeouts(gw_factory):
    gw = gw_factory(config={"max_connections": "5",
                            "command_timeout": "60s",
                            "stress_command_timeout": "1s"})
    held = []
    try:
        for i in range(4):                 # 80% of 5: stress mode
            c = mxlib.Client(gw.port, bind=f"127.0.7.{i + 1}")
            c.greet()
            held.append(c)
        gw.wait_event("stress", state="on", timeout_s=30.0)
        # Cut within 45 s: only the stress timeout (1s) can do that, not
        # command_timeout (60s); the log says it was an idle timeout.
        line = held[-1].read_line(45.0).decode()
        check(line.startswith("421 4.4.2 "), f"idle under stress: {line!r}")
        gw.wait_event("timeout", 30.0, client="127.0.7.4")
    finally:
        for c in held:
            c.close()


def test_privilege_drop(gw_factory):
    if os.geteuid() != 0:
        return          # only root can drop privileges
    nobody = pwd.getpwnam("nobody")
    gw = gw_factory(start=False, config={"user": "nobody"})
    # the unprivileged user must be able to reach its folders
    for d in (os.path.dirname(gw.dir), gw.dir):
        os.chmod(d, 0o755)
    gw.start()
    gw.wait_event("privileges", user="nobody")
    with open(f"/proc/{gw.proc.pid}/status") as f:
        uids = [ln.split()[1:] for ln in f if ln.startswith("Uid:")][0]
    check_eq(set(uids), {str(nobody.pw_uid)}, "uids after the drop")
    with mxlib.smtp_client(gw) as s:
        s.sendmail("x@remote.test", ["alice@example.test"],
                   mxlib.make_message("unprivileged"))
    files = gw.wait_maildir("example.test", "alice")
    st = os.stat(files[0])
    check_eq(st.st_uid, nobody.pw_uid, "Maildir file owner")
    check_eq(st.st_mode & 0o077, 0, "Maildir file mode (others)")
    for d in ("queue", "incoming"):
        st = os.stat(os.path.join(gw.spool_dir, d))
        check_eq((st.st_uid, st.st_mode & 0o077), (nobody.pw_uid, 0),
                 f"spool/{d} owner and mode")


def test_privilege_drop_unreachable_spool(gw_factory):
    if os.geteuid() != 0:
        return
    gw = gw_factory(start=False, config={"user": "nobody"})
    os.chmod(os.path.dirname(gw.dir), 0o700)   # nobody cannot get in
    gw.port = mxlib.free_port()
    gw.write_users()
    gw.write_config()
    import subprocess
    r = subprocess.run([gw.binary, "serve", "-c", gw.conf_path],
                       capture_output=True, timeout=10,
                       stdin=subprocess.DEVNULL)
    check(r.returncode != 0, "serve must refuse an unreachable spool")
    check(b"cannot use the spool" in r.stderr, r.stderr[-300:])


def test_root_without_user_says_so(gw):
    if os.geteuid() != 0:
        return
    gw.wait_event("privileges", user="root")
