"""
test_lifecycle.py - the process around the dialogue.
Covers: kill -9 right after a 250 (the message survives and is delivered
after a restart), SIGHUP reload of the users file (open sessions survive;
a bad file keeps the old table), check-config (exit codes, FILE:LINE:
messages), a disk that refuses writes (451 4.3.0, nothing left behind).
"""

from __future__ import annotations

import os
import re

import mxlib
from mxlib import check, check_eq


def send_raw(gw, rcpts, msg) -> str:
    """One message over a raw session; returns the end-of-DATA reply."""
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        for r in rcpts:
            c.expect("250 2.1.5 Ok", f"RCPT TO:<{r}>")
        c.expect("354 *", "DATA")
        c.send(msg + b".\r\n")
        return c.reply(10.0).text


def body_of(path: str) -> bytes:
    with open(path, "rb") as f:
        return mxlib.split_received(f.read())[1]


def test_kill9_after_250_then_delivered(gw_factory):
    gw = gw_factory(config={"retry_min": "1s"})
    msg = mxlib.make_message("survivor")
    with mxlib.session(gw) as c:
        c.send(b"MAIL FROM:<x@remote.test>\r\nRCPT TO:<alice@example.test>\r\n"
               b"DATA\r\n")
        c.expect("250 2.1.0 Ok")
        c.expect("250 2.1.5 Ok")
        c.expect("354 *")
        c.send(msg + b".\r\n")
        c.expect("250 2.0.0 Ok: queued as *")
        gw.kill9()  # at once: the 250 is all we know
    gw.start()
    files = gw.wait_maildir("example.test", "alice")
    # At-least-once: a crash between delivery and bookkeeping may duplicate.
    for p in files:
        check_eq(body_of(p), mxlib.expected_delivery(msg), p)


def test_kill9_while_next_hop_down(gw_factory):
    """The message can only be in the spool when the process dies."""
    gw = gw_factory(config={"retry_min": "1s"})
    blocker = os.path.join(gw.mail_dir, "example.test", "alice")
    os.makedirs(os.path.dirname(blocker), exist_ok=True)
    with open(blocker, "w") as f:  # a file where the Maildir should be
        f.write("not a directory\n")
    msg = mxlib.make_message("stuck")
    reply = send_raw(gw, ["alice@example.test"], msg)
    check(reply.startswith("250 2.0.0 Ok: queued as "), f"end of DATA: {reply}")
    qid = reply.rsplit(" ", 1)[1]
    gw.kill9()
    check(gw.spool_files(), "nothing in the spool after the 250")
    os.unlink(blocker)
    mark = gw.log_mark()
    gw.start()
    files = gw.wait_maildir("example.test", "alice", timeout_s=30.0)
    check_eq(body_of(files[0]), mxlib.expected_delivery(msg), "delivered")
    gw.wait_event("delivered", since=mark, qid=qid, to="alice@example.test")
    mxlib.wait_until(lambda: gw.spool_files() == [], 10.0, "an empty spool")


def test_incoming_files_removed_at_start(gw_factory):
    """A message killed in the middle of DATA was never acknowledged."""
    gw = gw_factory()
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        c.expect("250 2.1.5 Ok", "RCPT TO:<alice@example.test>")
        c.expect("354 *", "DATA")
        c.send(b"Subject: half\r\n\r\n" + b"z" * 20000 + b"\r\n")
        c.flush()
        c.expect_silence(0.2)
        gw.kill9()
    gw.start()
    mxlib.wait_until(lambda: gw.spool_files() == [], 5.0,
                     "no spool file for the unacknowledged message")
    check_eq(gw.all_mail_files(), [], "Maildir files")


def test_reload_adds_user_open_session_survives(gw):
    old = mxlib.session(gw)
    try:
        old.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        old.expect("250 2.1.5 Ok", "RCPT TO:<alice@example.test>")
        with mxlib.session(gw) as c:
            c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
            c.expect("550 5.1.1 *", "RCPT TO:<dave@example.test>")
        gw.write_users(list(mxlib.DEFAULT_USERS) + ["dave@example.test"])
        mark = gw.reload()
        gw.wait_event("reload", since=mark, result="ok")
        check_eq(gw.events("reload", since=mark, result="kept_old"), [],
                 "event=reload result=kept_old lines")
        with mxlib.session(gw) as c:
            c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
            c.expect("250 2.1.5 Ok", "RCPT TO:<dave@example.test>")
            c.expect("354 *", "DATA")
            c.send(mxlib.make_message("for dave") + b".\r\n")
            c.expect("250 2.0.0 Ok: queued as *")
        # The session opened before the reload is still there and works.
        old.expect("250 2.0.0 Ok", "NOOP")
        old.expect("250 2.1.5 Ok", "RCPT TO:<bob@example.test>")
        old.expect("354 *", "DATA")
        old.send(mxlib.make_message("old session") + b".\r\n")
        old.expect("250 2.0.0 Ok: queued as *")
        old.expect("221 2.0.0 Bye", "QUIT")
    finally:
        old.close()
    gw.wait_maildir("example.test", "dave")
    gw.wait_maildir("example.test", "alice")
    gw.wait_maildir("example.test", "bob")


@mxlib.params(["missing", "garbage", "directory"])
def test_reload_bad_users_file_keeps_old(gw, param):
    if param == "missing":
        gw.remove_users()
    elif param == "garbage":
        gw.write_users(text=b"alice@example.test\ndave@example.test\n"
                            b"this is @@ not an address\n\x00\xff\n")
    else:
        gw.remove_users()
        os.mkdir(gw.users_path)
    mark = gw.reload()
    ev = gw.wait_event("reload", since=mark, result="kept_old")
    check_eq(ev["level"], "warning", f"level of {ev['line']!r}")
    check_eq(gw.events("reload", since=mark, result="ok"), [],
             "event=reload result=ok lines")
    gw.check_alive()
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        for who in mxlib.DEFAULT_USERS:
            c.expect("250 2.1.5 Ok", f"RCPT TO:<{who}>")
        c.expect("550 5.1.1 *", "RCPT TO:<dave@example.test>")


def test_reload_twice_and_remove_user(gw):
    gw.write_users(["alice@example.test", "erin@example.test"])
    gw.wait_event("reload", since=gw.reload(), result="ok")
    gw.write_users(["alice@example.test"])
    mark = gw.reload()
    gw.wait_event("reload", since=mark, result="ok")
    check_eq(len(gw.events("reload", since=mark, result="ok")), 1,
             "event=reload result=ok lines after one SIGHUP")
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        c.expect("250 2.1.5 Ok", "RCPT TO:<alice@example.test>")
        c.expect("550 5.1.1 *", "RCPT TO:<erin@example.test>")
        c.expect("550 5.1.1 *", "RCPT TO:<bob@example.test>")


# ------------------------------------------------------------ check-config

GOOD_CONFIG = """\
# a good configuration
hostname = mx.example.test
listen = 127.0.0.1:2525
spool = spool
domains = example.test, other.example
directory = file:users
relay_networks = 127.0.0.0/8, ::1
unknown_recipient = reject
next_hop = maildir:mail
recipient_delimiter = +
max_message_size = 25M
max_recipients = 100
log_level = info
localpart_case_sensitive = no
max_errors_per_session = 20
greeting_delay = 500ms
command_timeout = 300s
data_timeout = 2s
retry_min = 60s

[domain other.example]
unknown_recipient = discard
next_hop = maildir:othermail
recipient_delimiter = -
"""


def check_config(ctx, text: str):
    path = ctx.write("test.conf", text)
    ctx.write("users", "alice@example.test\n")
    for d in ("spool", "mail", "othermail"):
        os.makedirs(os.path.join(ctx.tmpdir, d), exist_ok=True)
    p = ctx.run_binary(["check-config", "-c", path])
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    return path, p.returncode, out


def test_check_config_good(ctx):
    _, rc, out = check_config(ctx, GOOD_CONFIG)
    check_eq(rc, 0, f"check-config exit status (output: {out.strip()!r})")


BAD_LINES = [
    ("frobnicate = yes", "unknown key"),
    ("max_message_size = lots", "bad size"),
    ("max_message_size = 10", "size under 1K"),
    ("max_recipients = -5", "negative count"),
    ("max_recipients = 0", "zero recipients"),
    ("unknown_recipient = maybe", "bad policy"),
    ("relay_networks = 10.0.0.0/33", "bad CIDR"),
    ("listen = nowhere", "bad listen"),
    ("greeting_delay = 5 parsecs", "bad duration"),
    ("localpart_case_sensitive = perhaps", "bad boolean"),
    ("log_level = chatty", "bad level"),
    ("next_hop = carrier-pigeon:coop", "bad next hop"),
    ("directory = ldap-or-so", "bad directory"),
    ("no equals sign here", "syntax"),
]


@mxlib.params(BAD_LINES, ids=[b[1].replace(" ", "-") for b in BAD_LINES])
def test_check_config_bad(ctx, param):
    bad, _ = param
    # The bad line replaces the global line for its key (no duplicates).
    key = bad.split("=")[0].strip()
    lines = GOOD_CONFIG.splitlines()
    cut = lines.index("[domain other.example]")
    lines = [ln for ln in lines[:cut] if ln.split("=")[0].strip() != key] \
        + lines[cut:]
    lines.insert(4, bad)  # line 5
    path, rc, out = check_config(ctx, "\n".join(lines) + "\n")
    check_eq(rc, 1, f"check-config exit status (output: {out.strip()!r})")
    check(re.search(rf"^{re.escape(path)}:5: \S", out, re.M),
          f"no '{path}:5: message' line in {out.strip()!r}")
    check(not re.search(rf"^{re.escape(path)}:(?!5:)\d+:", out, re.M),
          f"errors on lines other than 5: {out.strip()!r}")


def test_check_config_reports_every_error(ctx):
    lines = GOOD_CONFIG.splitlines()
    lines[0] = "frobnicate = 1"          # line 1
    check(lines[11].startswith("max_recipients ="), "GOOD_CONFIG changed")
    lines[11] = "max_recipients = many"  # line 12
    n_sect = lines.index("unknown_recipient = discard")  # in the section
    lines[n_sect] = "unknown_recipient = bounce-maybe"
    path, rc, out = check_config(ctx, "\n".join(lines) + "\n")
    check_eq(rc, 1, "check-config exit status")
    for n in (1, 12, n_sect + 1):
        check(re.search(rf"^{re.escape(path)}:{n}: \S", out, re.M),
              f"no error for line {n} in {out.strip()!r}")


def test_check_config_relative_to_config_dir(ctx):
    """Relative paths resolve against the config file's folder, not cwd."""
    gw = ctx.gateway(start=False)
    gw.port = mxlib.free_port()
    gw.write_config()
    p = ctx.run_binary(["check-config", "-c", gw.conf_path])
    check_eq(p.returncode, 0, "check-config exit status: "
             + (p.stdout + p.stderr).decode("utf-8", "replace").strip())
    gw.start()  # cwd is the test folder, one level above the config
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        c.expect("250 2.1.5 Ok", "RCPT TO:<alice@example.test>")
        c.expect("354 *", "DATA")
        c.send(mxlib.make_message("relative") + b".\r\n")
        c.expect("250 2.0.0 Ok: queued as *")
    gw.wait_maildir("example.test", "alice")


def test_serve_refuses_bad_config(ctx):
    path = ctx.write("bad.conf", "hostname = mx.example.test\nbogus_key = 1\n")
    p = ctx.run_binary(["serve", "-c", path])
    check(p.returncode != 0, "serve with a bad config exited 0")
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    check(f"{path}:2:" in out, f"no '{path}:2:' in {out.strip()!r}")


def test_version(ctx):
    p = ctx.run_binary(["--version"])
    check_eq(p.returncode, 0, "mxgate --version exit status")
    check(re.search(rb"\d+\.\d+", p.stdout + p.stderr), "no version number")


# ------------------------------------------------------------ disk failure

def test_disk_write_failure(gw_factory):
    limit = 64 * 1024
    gw = gw_factory(preexec_fn=mxlib.sigxfsz_ignored_fsize_limit(limit))
    big = mxlib.make_message("too big for the disk", ["w" * 76] * 3000)
    check(len(big) > 3 * limit, "test message is not big enough")
    reply = send_raw(gw, ["alice@example.test"], big)
    check(reply.startswith("451 4.3.0 "), f"end of DATA on a full disk: {reply}")
    check_eq(gw.spool_files(), [], "spool files after the failed write")
    gw.check_alive()
    # The gateway recovers: a small message still goes through.
    small = mxlib.make_message("small enough")
    reply = send_raw(gw, ["alice@example.test"], small)
    check(reply.startswith("250 2.0.0 Ok: queued as "), f"small: {reply}")
    files = gw.wait_maildir("example.test", "alice")
    check_eq(len(files), 1, "Maildir files")
    check_eq(body_of(files[0]), mxlib.expected_delivery(small), "delivered")
