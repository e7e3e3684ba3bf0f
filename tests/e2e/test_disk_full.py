"""
test_disk_full.py - a full disk loses nothing (issue 12, point 5).
Covers: spool_min_free on any file system (a reserve larger than the
disk: 452 4.3.1 at MAIL, logged once, not per command; a SIGHUP with a
small reserve: mail accepted again); on a small tmpfs mounted as the
spool, a filler file that takes the space below the reserve (452 4.3.1
at MAIL and at the end of a DATA or BDAT begun before, delivery goes on, the
filler removed: accepted again with no restart); a real ENOSPC with no
reserve (451 4.3.0 after DATA and BDAT, never 250, no file left in incoming/; space freed:
accepted again; a kill -9 and restart: every message that got 250 is
delivered, the refused one never).
The tmpfs tests need mount(2) (they run as root); where the machine
refuses the mount they pass without running and say why in the output.
"""

from __future__ import annotations

import os
import re
import subprocess

import mxlib
from mxlib import check, check_eq

MIB = 1024 * 1024
TMPFS_SIZE = "8m"


def mount_tmpfs(path: str) -> str | None:
    """Mount a small tmpfs on path; None, or why it could not be done."""
    if os.geteuid() != 0:
        return "not root: cannot mount a tmpfs"
    p = subprocess.run(["mount", "-t", "tmpfs", "-o",
                        f"size={TMPFS_SIZE},mode=0700", "tmpfs", path],
                       capture_output=True, timeout=30)
    if p.returncode != 0:
        return "mount refused: " + (p.stdout + p.stderr).decode(
            "utf-8", "replace").strip()
    return None


def unmount(path: str) -> None:
    subprocess.run(["umount", path], capture_output=True, timeout=30)
    if os.path.ismount(path):
        subprocess.run(["umount", "-l", path], capture_output=True,
                       timeout=30)


def free_bytes(path: str) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill(path: str, leave: int) -> None:
    """Write path until the file system is full, then give back all but
    about `leave` bytes (whole 4 KB pages on tmpfs)."""
    chunk = b"\0" * 65536
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while True:
            try:
                os.write(fd, chunk)
            except OSError as e:
                check(e.errno in (28,), f"filling the disk: {e}")  # ENOSPC
                break
        size = os.fstat(fd).st_size
        os.ftruncate(fd, max(0, size - leave))
    finally:
        os.close(fd)
    left = free_bytes(os.path.dirname(path))
    check(left <= leave + 64 * 1024, f"{left} bytes free after filling")


def mail_reply(gw) -> str:
    """The reply to MAIL in a fresh session."""
    with mxlib.session(gw) as c:
        return c.cmd("MAIL FROM:<x@remote.test>").text


def send(gw, msg: bytes, rcpt: str = "alice@example.test") -> str:
    """One message; the reply to MAIL if not 250, else the end of DATA's."""
    with mxlib.session(gw, timeout_s=30.0) as c:
        r = c.cmd("MAIL FROM:<x@remote.test>")
        if r.code != 250:
            return r.text
        c.expect("250 2.1.5 Ok", f"RCPT TO:<{rcpt}>")
        c.expect("354 *", "DATA")
        c.send(msg + b".\r\n")
        return c.reply(30.0).text


def send_bdat(gw, msg: bytes, rcpt: str = "alice@example.test") -> str:
    """The same in one BDAT LAST chunk (RFC 3030)."""
    with mxlib.session(gw, timeout_s=30.0) as c:
        r = c.cmd("MAIL FROM:<x@remote.test>")
        if r.code != 250:
            return r.text
        c.expect("250 2.1.5 Ok", f"RCPT TO:<{rcpt}>")
        c.send(b"BDAT %d LAST\r\n" % len(msg) + msg)
        return c.reply(30.0).text


def msgid(msg: bytes) -> bytes:
    m = re.search(rb"^Message-ID: (<[^>]+>)", msg, re.M)
    check(m, "no Message-ID")
    return m.group(1)


def delivered_ids(gw) -> list[bytes]:
    out = []
    for p in gw.all_mail_files():
        if os.sep + "new" + os.sep not in p:
            continue    # tmp/: a delivery under way
        with open(p, "rb") as f:
            m = re.search(rb"^Message-ID: (<[^>]+>)", f.read(), re.M)
        if m:
            out.append(m.group(1))
    return sorted(out)


def low_lines(gw, since: int = 0) -> list[dict[str, str]]:
    return gw.events("spool_space", since=since, state="low")


# --------------------------------------------------- the reserve, any disk

def test_reserve_larger_than_the_disk(gw_factory):
    gw = gw_factory(config={"spool_min_free": "1000T"})
    check(free_bytes(gw.spool_dir) < 1000 * 2**40, "the disk has 1000T free")
    for _ in range(5):
        check_eq(mail_reply(gw), "452 4.3.1 Insufficient system storage",
                 "MAIL below the reserve")
    ev = gw.wait_event("spool_space", state="low")
    check_eq(int(ev["min_free"]), 1000 * 2**40, "min_free logged")
    check_eq(len(low_lines(gw)), 1, "state=low lines for 5 refusals")
    # a session stays usable: RSET, NOOP, QUIT as ever
    with mxlib.session(gw) as c:
        c.expect("452 4.3.1 *", "MAIL FROM:<x@remote.test>")
        c.expect("503 *", "RCPT TO:<alice@example.test>")
        c.expect("250 *", "RSET")
    # a reload with a small reserve: accepted again, no restart
    gw.settings["spool_min_free"] = "1M"
    gw.write_config()
    mark = gw.reload()
    gw.wait_event("reload", since=mark)
    msg = mxlib.make_message("after the reserve came down")
    reply = send(gw, msg)
    check(reply.startswith("250 2.0.0 Ok: queued as "), f"after reload: {reply}")
    gw.wait_event("spool_space", state="ok", since=mark)
    gw.wait_maildir("example.test", "alice")


def test_reserve_zero_is_off(gw_factory):
    gw = gw_factory(config={"spool_min_free": "0"})
    reply = send(gw, mxlib.make_message("no reserve"))
    check(reply.startswith("250 2.0.0 Ok: queued as "), reply)
    check_eq(gw.events("spool_space"), [], "spool_space lines")


def test_check_config_spool_min_free(ctx):
    gw = ctx.gateway(start=False)
    gw.port = mxlib.free_port()
    gw.settings["spool_min_free"] = "lots"
    gw.write_config()
    p = ctx.run_binary(["check-config", "-c", gw.conf_path])
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    check_eq(p.returncode, 1, f"check-config exit status ({out!r})")
    with open(gw.conf_path) as f:
        n = [i for i, ln in enumerate(f, 1) if ln.startswith("spool_min_free")]
    check(re.search(rf":{n[0]}: spool_min_free: expected a size", out),
          f"no error on line {n[0]}: {out!r}")


# ------------------------------------------------------ a small tmpfs spool

def tmpfs_gateway(gw_factory, config: dict[str, str]):
    """A gateway whose spool is a fresh tmpfs (None, why) if refused."""
    gw = gw_factory(start=False, config=config)
    why = mount_tmpfs(gw.spool_dir)
    if why is not None:
        print(f"SKIPPED (tmpfs spool): {why}")
        return None
    return gw


def test_tmpfs_reserve_refuses_and_recovers(gw_factory):
    gw = tmpfs_gateway(gw_factory, {"spool_min_free": "4M",
                                    "retry_min": "1s"})
    if gw is None:
        return
    filler = os.path.join(gw.spool_dir, "filler")
    try:
        gw.start()
        first = mxlib.make_message("before the filler")
        check(send(gw, first).startswith("250 2.0.0 "), "first message")
        gw.wait_maildir("example.test", "alice")
        # a DATA and a BDAT begun while there was room ...
        with mxlib.session(gw) as c, mxlib.session(gw) as b:
            b.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
            b.expect("250 2.1.5 Ok", "RCPT TO:<bob@example.test>")
            chunk = mxlib.make_message("chunks below the reserve")
            b.send(b"BDAT %d\r\n" % len(chunk) + chunk)
            b.expect("250 2.0.0 *")
            c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
            c.expect("250 2.1.5 Ok", "RCPT TO:<bob@example.test>")
            c.expect("354 *", "DATA")
            c.send(mxlib.make_message("ends below the reserve")[:200])
            fill(filler, 1 * MIB)
            # ... the gateway sees the disk low within its refresh period
            mxlib.wait_until(lambda: mail_reply(gw).startswith("452 4.3.1 "),
                             10.0, "452 4.3.1 at MAIL below the reserve")
            c.send(b"\r\nrest of the body\r\n.\r\n")
            c.expect("452 4.3.1 Insufficient system storage")
            c.expect("250 *", "NOOP")
            b.send(b"BDAT 6 LAST\r\nlast\r\n")
            b.expect("452 4.3.1 Insufficient system storage")
            b.expect("250 *", "NOOP")
        for _ in range(3):
            check_eq(mail_reply(gw), "452 4.3.1 Insufficient system storage",
                     "MAIL below the reserve")
        check_eq(len(low_lines(gw)), 1, "state=low lines")
        check_eq([p for p in gw.spool_files() if p != "filler"
                  and not p.startswith("queue/")], [],
                 "incoming files after the refusal")
        check_eq(gw.maildir_files("example.test", "bob"), [], "bob's mail")
        mark = gw.log_mark()
        os.unlink(filler)
        mxlib.wait_until(lambda: mail_reply(gw).startswith("250 "), 10.0,
                         "250 at MAIL once space returned")
        gw.wait_event("spool_space", state="ok", since=mark)
        again = mxlib.make_message("after the filler")
        reply = send(gw, again, "bob@example.test")
        check(reply.startswith("250 2.0.0 Ok: queued as "), reply)
        files = gw.wait_maildir("example.test", "bob")
        with open(files[0], "rb") as f:
            check_eq(mxlib.split_received(f.read())[1],
                     mxlib.expected_delivery(again), "delivered")
        gw.check_alive()
    finally:
        gw.stop()
        unmount(gw.spool_dir)


def test_tmpfs_enospc_never_250(gw_factory):
    gw = tmpfs_gateway(gw_factory, {"spool_min_free": "0",
                                    "retry_min": "1s"})
    if gw is None:
        return
    # a file where alice's Maildir should be: her mail stays queued
    blocker = os.path.join(gw.mail_dir, "example.test", "alice")
    os.makedirs(os.path.dirname(blocker), exist_ok=True)
    with open(blocker, "w") as f:
        f.write("not a directory\n")
    filler = os.path.join(gw.spool_dir, "filler")
    acked: list[bytes] = []
    try:
        gw.start()
        for i in range(3):
            m = mxlib.make_message(f"queued {i}", ["q" * 70] * 200)
            r = send(gw, m)
            check(r.startswith("250 2.0.0 "), f"message {i}: {r}")
            acked.append(msgid(m))
        fill(filler, 96 * 1024)
        big = mxlib.make_message("larger than the room left",
                                 ["b" * 76] * (MIB // 78))
        check(len(big) > MIB, "the big message is not big enough")
        reply = send(gw, big)
        check(not reply.startswith("2"), f"a 2xx for what cannot be "
              f"stored: {reply}")
        check(reply.startswith("451 4.3.0 "), f"ENOSPC: {reply}")
        big2 = mxlib.make_message("larger still, in one chunk",
                                  ["c" * 76] * (MIB // 78))
        reply = send_bdat(gw, big2)
        check(reply.startswith("451 4.3.0 "), f"ENOSPC, BDAT: {reply}")
        check_eq([p for p in gw.spool_files() if p.startswith("incoming/")],
                 [], "incoming files after ENOSPC")
        # small messages: those that fit get 250, the rest never a 2xx (a
        # queue file is a 4 KB page at least: some 20 fit in what is left)
        n_small, refused = 0, {}
        for i in range(40):
            m = mxlib.make_message(f"small {i}", ["s" * 70] * 20)
            r = send(gw, m)
            check(r.startswith("250 2.0.0 ") or r.startswith("451 4.3.0 ")
                  or r.startswith("452 4.3.1 "), f"small {i}: {r}")
            if r.startswith("250"):
                acked.append(msgid(m))
                n_small += 1
            else:
                refused[r[:9]] = refused.get(r[:9], 0) + 1
        check(0 < n_small < 40, f"{n_small} of 40 small messages got 250")
        check_eq([p for p in gw.spool_files() if p.startswith("incoming/")],
                 [], "incoming files after the small ones")
        gw.check_alive()
        # space returns: accepted again without a restart
        os.unlink(filler)
        m = mxlib.make_message("after the space came back", ["a" * 70] * 200)
        r = send(gw, m)
        check(r.startswith("250 2.0.0 "), f"after freeing: {r}")
        acked.append(msgid(m))
        # a crash, a restart: recovery, then every 250 is delivered
        gw.kill9()
        gw.start()
        ev = gw.wait_event("journal", since=gw.run_mark)
        check_eq(ev["torn"], "0", "torn journal segments")
        check_eq(int(ev["images"]), len(acked), "live images in the journal")
        os.unlink(blocker)
        mxlib.wait_until(lambda: len(delivered_ids(gw)) >= len(acked), 30.0,
                         f"{len(acked)} messages delivered")
        got = delivered_ids(gw)
        check_eq(sorted(set(got)), sorted(acked),
                 "Message-IDs delivered (the refused one must not be)")
        check(msgid(big) not in got and msgid(big2) not in got,
              "a refused message was delivered")
        print(f"acked={len(acked)} small_acked={n_small} refused={refused} "
              f"delivered={len(got)} duplicates={len(got) - len(set(got))}")
    finally:
        gw.stop()
        unmount(gw.spool_dir)
