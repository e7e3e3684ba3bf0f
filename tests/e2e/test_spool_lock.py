"""
test_spool_lock.py - one gateway per spool (issue 12, point 10).
Covers: a second `serve` on the spool of a running gateway (same config
folder, another port) exits 1 with "spool SPOOL is in use by pid N" and
changes nothing in the spool (no clean-up of the message the first one is
receiving, no recovery, the control socket left alone), while the first
finishes that message with 250 and delivers it; the lock descriptor is
close-on-exec and keeps the lock across the drop to `user` and a
SIGHUP; the lock is free again after a stop and after kill -9.
"""

from __future__ import annotations

import os
import pwd
import re
import stat

import mxlib
from mxlib import check, check_eq

IN_USE = re.compile(r"spool (\S+) is in use by pid (\d+)")
O_CLOEXEC = 0o2000000  # the flags field of /proc/PID/fdinfo is octal


def spool_state(spool: str) -> dict[str, tuple[int, int, int, int]]:
    """Every entry under the spool (and the spool itself): inode, type,
    size and modification time, which any removal, creation, rename or
    write changes."""
    def entry(p: str) -> tuple[int, int, int, int]:
        st = os.lstat(p)
        return (st.st_ino, stat.S_IFMT(st.st_mode), st.st_size,
                st.st_mtime_ns)
    out = {".": entry(spool)}
    for dirpath, dirs, names in os.walk(spool):
        for n in dirs + names:
            p = os.path.join(dirpath, n)
            out[os.path.relpath(p, spool)] = entry(p)
    return out


def lock_pid(gw) -> int:
    with open(os.path.join(gw.spool_dir, "lock")) as f:
        text = f.read()
    check(re.fullmatch(r"\d+\n", text), f"lock file holds {text!r}")
    return int(text)


def second_config(gw) -> str:
    """gw's config with another listen port, in gw's folder: every
    relative path (spool, users, Maildir) is the same."""
    with open(gw.conf_path) as f:
        text = f.read()
    port = mxlib.free_port()
    text, n = re.subn(r"^listen = .*$", f"listen = 127.0.0.1:{port}", text,
                      flags=re.M)
    check_eq(n, 1, "listen lines in the config")
    path = os.path.join(gw.dir, "second.conf")
    with open(path, "w") as f:
        f.write(text)
    return path


def check_cloexec(gw) -> None:
    """The lock's descriptor is not inherited by anything serve runs."""
    if mxlib.WRAPPER:
        return  # the process is the wrapper's; its fds are not ours
    lock = os.path.realpath(os.path.join(gw.spool_dir, "lock"))
    fd_dir = f"/proc/{gw.proc.pid}/fd"
    fds = [fd for fd in os.listdir(fd_dir)
           if os.path.realpath(os.path.join(fd_dir, fd)) == lock]
    check_eq(len(fds), 1, "descriptors of the running gateway on SPOOL/lock")
    with open(f"/proc/{gw.proc.pid}/fdinfo/{fds[0]}") as f:
        flags = re.search(r"^flags:\s+([0-7]+)$", f.read(), re.M)
    check(flags and int(flags.group(1), 8) & O_CLOEXEC,
          f"SPOOL/lock descriptor without O_CLOEXEC: {flags and flags[1]}")


def test_second_gateway_refused_during_data(ctx, gw):
    msg = mxlib.make_message("received while a second gateway starts",
                             ["line %d of the body" % i for i in range(40)])
    half = len(msg) // 2
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        c.expect("250 2.1.5 Ok", "RCPT TO:<alice@example.test>")
        c.expect("354 *", "DATA")
        c.send(msg[:half])
        c.flush()
        incoming = [p for p in gw.spool_files() if p.startswith("incoming/")]
        check_eq(len(incoming), 1, "files in incoming/ during DATA")
        check(os.path.exists(os.path.join(gw.spool_dir, "control.sock")),
              "no control socket")
        check_cloexec(gw)
        before = spool_state(gw.spool_dir)

        p = ctx.run_binary(["serve", "-c", second_config(gw)], timeout_s=30)
        out = (p.stdout + p.stderr).decode("utf-8", "replace")
        check_eq(p.returncode, 1, f"second serve's exit status ({out!r})")
        m = IN_USE.search(p.stderr.decode("utf-8", "replace"))
        check(m, f"no 'spool SPOOL is in use by pid N' on stderr: {out!r}")
        check(os.path.samefile(m.group(1), gw.spool_dir),
              f"named spool {m.group(1)!r}, not {gw.spool_dir!r}")
        check_eq(int(m.group(2)), lock_pid(gw), "pid named")
        if not mxlib.WRAPPER:
            check_eq(int(m.group(2)), gw.proc.pid, "pid of the first gateway")
        for ev in ("spool_cleanup", "journal", "control", "listening"):
            check(f"event={ev}" not in out, f"second serve logged {ev}: "
                  f"{out!r}")
        check_eq(spool_state(gw.spool_dir), before,
                 "the spool after the second serve")

        c.send(msg[half:] + b".\r\n")
        c.expect("250 2.0.0 Ok: queued as *")
    files = gw.wait_maildir("example.test", "alice")
    check_eq(len(files), 1, "Maildir files")
    with open(files[0], "rb") as f:
        check_eq(mxlib.split_received(f.read())[1],
                 mxlib.expected_delivery(msg), "delivered body")
    # the first gateway's control socket still answers
    p = ctx.run_binary(["stats", "-c", gw.conf_path])
    check_eq(p.returncode, 0, "mxgate stats on the first gateway: "
             + (p.stdout + p.stderr).decode("utf-8", "replace"))
    gw.check_alive()


def test_lock_free_after_stop_and_kill9(gw_factory):
    gw = gw_factory()
    first = lock_pid(gw)
    gw.stop()
    gw.start()
    second = lock_pid(gw)
    check(second != first, "the pid was not rewritten after a stop")
    gw.kill9()   # the kernel drops the lock with the process
    gw.start()
    check(lock_pid(gw) != second, "the pid was not rewritten after kill -9")
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        c.expect("250 2.1.5 Ok", "RCPT TO:<alice@example.test>")
        c.expect("354 *", "DATA")
        c.send(mxlib.make_message("after restarts") + b".\r\n")
        c.expect("250 2.0.0 Ok: queued as *")
    gw.wait_maildir("example.test", "alice")


def test_lock_held_across_privilege_drop_and_reload(ctx, gw_factory):
    """The descriptor, not the user, holds the lock: still refused after
    the drop to `user` and after a SIGHUP reload."""
    if os.geteuid() != 0:
        return          # only root can drop privileges
    gw = gw_factory(start=False, config={"user": "nobody"})
    for d in (os.path.dirname(gw.dir), gw.dir):
        os.chmod(d, 0o755)   # the unprivileged user must reach its folders
    gw.start()
    gw.wait_event("privileges", user="nobody")
    check_eq(os.stat(os.path.join(gw.spool_dir, "lock")).st_uid,
             pwd.getpwnam("nobody").pw_uid, "owner of SPOOL/lock")
    check_cloexec(gw)
    conf = second_config(gw)
    for when in ("after the drop", "after a reload"):
        if when == "after a reload":
            mark = gw.reload()
            gw.wait_event("reload", since=mark)
        p = ctx.run_binary(["serve", "-c", conf], timeout_s=30)
        out = (p.stdout + p.stderr).decode("utf-8", "replace")
        check_eq(p.returncode, 1, f"second serve {when} ({out!r})")
        check(IN_USE.search(out), f"second serve {when}: {out!r}")
    gw.check_alive()
