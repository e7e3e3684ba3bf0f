"""
test_directory.py - the directory as a chain of back-ends, the hashed
back-end and its key, `mxgate directory hash` and `directory lookup`.
Covers: a hashed directory answers like the users file (case, delimiter)
and holds no plaintext address; file,hashed chain: the first VALID wins,
UNKNOWN only when both say so; a key file group/world can read, and a
plaintext line in a hashed file, refused by check-config; lookup's
verdict, back-end and exit status.
"""

from __future__ import annotations

import os
import re

import mxlib
from mxlib import check, check_eq

HASHED_USERS = ("alice@example.test", "Bob@Example.test", "dave@example.test")


def make_hashed(ctx, gw, users=HASHED_USERS, name="users.hashed"):
    """A key (made by --new-key) and a hashed file of users in gw.dir."""
    key = os.path.join(gw.dir, "dir.key")
    if not os.path.exists(key):
        p = ctx.run_binary(["directory", "hash", "--new-key", "--key-file",
                            key])
        check_eq(p.returncode, 0, f"--new-key ({p.stderr!r})")
    check_eq(os.stat(key).st_mode & 0o777, 0o600, "mode of the new key")
    src = os.path.join(gw.dir, "plain.txt")
    with open(src, "w") as f:
        f.write("".join(u + "\n" for u in users))
    p = ctx.run_binary(["directory", "hash", "--key-file", key, src])
    check_eq(p.returncode, 0, f"directory hash ({p.stderr!r})")
    os.unlink(src)
    out = os.path.join(gw.dir, name)
    with open(out, "wb") as f:
        f.write(p.stdout)
    return key, out


def lookup(ctx, gw, addr):
    p = ctx.run_binary(["directory", "lookup", "-c", gw.conf_path, addr])
    return p.returncode, p.stdout.decode("utf-8", "replace")


def rcpt_replies(gw, addrs):
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        return [c.cmd(f"RCPT TO:<{a}>").raw.decode() for a in addrs]


def test_hashed_directory_answers_and_leaks_nothing(ctx):
    gw = ctx.gateway(start=False, users=None)
    key, hashed = make_hashed(ctx, gw)
    gw.settings.update({"directory": "hashed:users.hashed",
                        "directory_key_file": "dir.key"})
    gw.start()
    got = rcpt_replies(gw, ["alice@example.test", "ALICE@example.TEST",
                            "bob@example.test", "dave+news@example.test",
                            "nobody@example.test", "carol@example.test"])
    for a, r in zip(["alice", "ALICE", "bob", "dave+news"], got[:4]):
        check(r.startswith("250 2.1.5"), f"RCPT {a}: {r!r}")
    for a, r in zip(["nobody", "carol"], got[4:]):
        check(r.startswith("550 5.1.1"), f"RCPT {a}: {r!r}")
    data = open(hashed, "rb").read().lower()
    for u in HASHED_USERS:
        for part in (u.lower(), u.split("@")[0].lower()):
            check(part.encode() not in data,
                  f"{part!r} in plain in the hashed file")
    lines = [ln for ln in data.splitlines() if not ln.startswith(b"#")]
    check_eq(len(lines), 3, "digest lines")
    check(all(re.fullmatch(rb"[0-9a-f]{64}", ln) for ln in lines),
          f"lines are 64 hex digits: {lines!r}")
    rc, out = lookup(ctx, gw, "Dave@example.test")
    check_eq(rc, 0, f"lookup exit status ({out!r})")
    check(re.match(r"Dave@example\.test: valid \(back-end hashed, "
                   r"[0-9.]+ ms", out), f"lookup said {out!r}")
    rc, out = lookup(ctx, gw, "zed@example.test")
    check_eq(rc, 1, f"lookup exit status ({out!r})")
    check("unknown (back-end hashed" in out, f"lookup said {out!r}")


def test_chain_first_valid_wins(ctx):
    gw = ctx.gateway(start=False, users=["alice@example.test"])
    make_hashed(ctx, gw, users=["dave@example.test"])
    gw.settings.update({"directory": "file:users, hashed:users.hashed",
                        "directory_key_file": "dir.key"})
    gw.start()
    got = rcpt_replies(gw, ["alice@example.test", "dave@example.test",
                            "nobody@example.test"])
    check(got[0].startswith("250 2.1.5"), f"alice (file): {got[0]!r}")
    check(got[1].startswith("250 2.1.5"), f"dave (hashed): {got[1]!r}")
    check(got[2].startswith("550 5.1.1"), f"nobody: {got[2]!r}")
    for addr, rc_want, want in (("alice@example.test", 0, "valid (back-end file,"),
                                ("dave@example.test", 0, "valid (back-end hashed,"),
                                ("nobody@example.test", 1, "unknown (back-end hashed,")):
        rc, out = lookup(ctx, gw, addr)
        check_eq(rc, rc_want, f"lookup {addr} exit status ({out!r})")
        check(want in out and "directory file,hashed" in out,
              f"lookup {addr} said {out!r}")
    rc, out = lookup(ctx, gw, "x@elsewhere.test")
    check_eq(rc, 1, "lookup of a foreign domain")
    check("not one of our domains" in out, f"lookup said {out!r}")


def test_key_file_readable_by_others_refused(ctx):
    gw = ctx.gateway(start=False, users=None)
    key, _ = make_hashed(ctx, gw)
    gw.settings.update({"directory": "hashed:users.hashed",
                        "directory_key_file": "dir.key"})
    gw.port = mxlib.free_port()
    gw.write_config()
    os.chmod(key, 0o644)
    p = ctx.run_binary(["check-config", "-c", gw.conf_path])
    err = p.stderr.decode()
    check_eq(p.returncode, 1, f"check-config exit status ({err!r})")
    check("mode 0644 lets group or others at the key" in err,
          f"check-config said {err!r}")
    p = ctx.run_binary(["directory", "hash", "--key-file", key])
    check_eq(p.returncode, 1, "directory hash with a 0644 key")
    os.chmod(key, 0o600)
    p = ctx.run_binary(["check-config", "-c", gw.conf_path])
    check_eq(p.returncode, 0, f"check-config with 0600 ({p.stderr!r})")


def test_hashed_file_plaintext_line_refused(ctx):
    gw = ctx.gateway(start=False, users=None)
    _, hashed = make_hashed(ctx, gw)
    with open(hashed, "a") as f:
        f.write("carol@example.test\n")
    n = len(open(hashed).read().splitlines())
    gw.settings.update({"directory": "hashed:users.hashed",
                        "directory_key_file": "dir.key"})
    gw.port = mxlib.free_port()
    gw.write_config()
    p = ctx.run_binary(["check-config", "-c", gw.conf_path])
    err = p.stderr.decode()
    check_eq(p.returncode, 1, f"check-config exit status ({err!r})")
    check(f"{hashed}:{n}: expected 64 hex digits" in err,
          f"check-config said {err!r}")


def test_hashed_without_key_refused(ctx):
    gw = ctx.gateway(start=False, users=None)
    make_hashed(ctx, gw)
    gw.settings.update({"directory": "hashed:users.hashed"})
    gw.port = mxlib.free_port()
    gw.write_config()
    p = ctx.run_binary(["check-config", "-c", gw.conf_path])
    err = p.stderr.decode()
    check_eq(p.returncode, 1, f"check-config exit status ({err!r})")
    check("needs directory_key_file" in err, f"check-config said {err!r}")
