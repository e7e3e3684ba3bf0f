"""
test_admin_cmds.py - the commands a Postfix administrator reaches for
(issue 18, part 5): `mxgate config [-n] [KEY...]` (postconf), the default
config path and MXGATE_CONF, `mxgate reload` answering what it applied
and what needs a restart, `mxgate stop` waiting for the process to be
gone, pid_file, check-config's typo suggestion, users-file warning and
refusal of 50MB, and `mxgate passwd` reading stdin, without echo on a
terminal (a pty).
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import termios
import time

import mxlib
from mxlib import check, check_eq
from ctllib import mx

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def table_keys() -> list[str]:
    with open(os.path.join(REPO, "src", "conf", "conf_keys.c")) as f:
        text = f.read()
    body = text[text.index("const struct conf_key conf_keys[] = {"):]
    return re.findall(r'^\t\{ "([a-z0-9_]+)",', body[:body.index("\n};")],
                      re.M)


def table_domain_keys() -> set[str]:
    """The keys whose row carries CK_DOMAIN: those a section may set."""
    with open(os.path.join(REPO, "src", "conf", "conf_keys.c")) as f:
        text = f.read()
    body = text[text.index("const struct conf_key conf_keys[] = {"):]
    body = body[:body.index("\n};")]
    rows = re.split(r'^\t\{ ', body, flags=re.M)[1:]
    return {re.match(r'"([a-z0-9_]+)"', r).group(1) for r in rows
            if re.match(r'"[a-z0-9_]+",[^"]*\bCK_DOMAIN\b', r)}


def run(ctx, args: list[str], env: dict[str, str] | None = None,
        stdin: bytes | None = None, timeout_s: float = 30.0
        ) -> tuple[int, str, str]:
    p = subprocess.run([os.path.abspath(ctx.binary)] + args, input=stdin,
                       capture_output=True, timeout=timeout_s,
                       cwd=ctx.tmpdir, env=env)
    return (p.returncode, p.stdout.decode("utf-8", "replace"),
            p.stderr.decode("utf-8", "replace"))


def offline(ctx, **kw) -> mxlib.Gateway:
    gw = ctx.gateway(start=False, **kw)
    gw.port = mxlib.free_port()
    gw.write_config()
    return gw


def parse_config(out: str) -> tuple[dict[str, str], dict[str, dict]]:
    """`mxgate config` output: global keys, then {domain: {key: value}}."""
    glob: dict[str, str] = {}
    sections: dict[str, dict[str, str]] = {}
    cur = glob
    for ln in out.splitlines():
        if not ln:
            continue
        m = re.fullmatch(r"\[domain (\S+)\]", ln)
        if m:
            check(m.group(1) not in sections, f"section twice: {ln}")
            cur = sections[m.group(1)] = {}
            continue
        m = re.fullmatch(r"([a-z0-9_]+) =(?: (.*))?", ln)
        check(m, f"not a 'key = value' line: {ln!r}")
        check(m.group(1) not in cur, f"key twice: {ln!r}")
        cur[m.group(1)] = m.group(2) or ""
    return glob, sections


# ------------------------------------------------------------ config

def test_config_prints_every_key(ctx):
    gw = offline(ctx, config={"max_recipients": "50",
                              "domains": "example.test, other.test"},
                 sections={"other.test": {"unknown_recipient": "discard"}})
    out, _ = mx(ctx, gw, "config")
    glob, sections = parse_config(out)
    check_eq(list(glob), table_keys(), "every key once, in table order")
    check_eq(glob["max_recipients"], "50", "a set value")
    check_eq(glob["max_message_size"], "25M", "a default")
    check_eq(glob["hostname"], mxlib.HOSTNAME, "hostname")
    check_eq(glob["domains"], "example.test, other.test", "domains")
    check_eq(list(sections), ["example.test", "other.test"], "sections")
    check_eq(sections["other.test"]["unknown_recipient"], "discard",
             "the section's own value")
    check_eq(sections["example.test"]["unknown_recipient"], "reject",
             "the global value, inherited")
    domain_keys = table_domain_keys()
    check({"unknown_recipient", "next_hop", "recipient_delimiter"}
          <= domain_keys, f"the table's per-domain keys: {domain_keys}")
    check_eq(set(sections["example.test"]), domain_keys,
             "the per-domain keys")


def test_config_n_keys_and_errors(ctx):
    gw = offline(ctx, config={"max_recipients": "100",   # the default
                              "command_timeout": "300",  # 5m: the default
                              "max_message_size": "10M",
                              "domains": "example.test, other.test"},
                 sections={"other.test": {"unknown_recipient": "discard"},
                           "example.test": {"unknown_recipient": "reject"}})
    out, _ = mx(ctx, gw, "config", "-n")
    glob, sections = parse_config(out)
    want = {"hostname": mxlib.HOSTNAME, "listen": f"127.0.0.1:{gw.port}",
            "spool": "spool", "domains": "example.test, other.test",
            "directory": "file:users", "next_hop": "maildir:mail",
            "log_level": "debug", "max_message_size": "10M",
            "spf_policy": "none",               # mxlib's base config
            "ndr_require_auth": "no"}
    check_eq(glob, want, "config -n: what differs from the defaults")
    check_eq(sections, {"other.test": {"unknown_recipient": "discard"}},
             "config -n: sections, only what differs from the global value")
    out, _ = mx(ctx, gw, "config", "max_message_size", "max_recipients")
    check_eq(out, "max_message_size = 10M\nmax_recipients = 100\n",
             "config KEY KEY")
    out, _ = mx(ctx, gw, "config", "-n", "max_recipients")
    check_eq(out, "", "config -n KEY with a default value")
    _, err = mx(ctx, gw, "config", "max_recipeints", rc=1)
    check_eq(err, "mxgate config: unknown key 'max_recipeints'; did you "
             "mean 'max_recipients'?\n", "unknown key")
    _, err = mx(ctx, gw, "config", "-x", rc=2)
    check(err.startswith("usage: mxgate "), f"usage: {err!r}")


def test_default_config_path_and_env(ctx):
    gw = offline(ctx)
    env = dict(os.environ, MXGATE_CONF=gw.conf_path)
    rc, out, err = run(ctx, ["check-config"], env=env)
    check_eq(rc, 0, f"check-config with MXGATE_CONF ({err!r})")
    check(out.startswith(gw.conf_path + ": ok ("), f"which file: {out!r}")
    rc, out, _ = run(ctx, ["config", "-n", "spool"], env=env)
    check_eq((rc, out), (0, "spool = spool\n"), "config with MXGATE_CONF")
    # -c wins over MXGATE_CONF
    other = ctx.write("other.conf", "domains = o.test\ndirectory = "
                      "file:gw0/users\nmax_recipients = 7\n")
    rc, out, _ = run(ctx, ["config", "-c", other, "max_recipients"], env=env)
    check_eq((rc, out), (0, "max_recipients = 7\n"), "-c over MXGATE_CONF")
    # neither: /etc/mxgate/mxgate.conf (named whether or not it exists)
    env = {k: v for k, v in os.environ.items() if k != "MXGATE_CONF"}
    rc, out, err = run(ctx, ["check-config"], env=env)
    check("/etc/mxgate/mxgate.conf" in out + err,
          f"the default path: {out!r} {err!r}")
    # a control command finds the spool through MXGATE_CONF too
    gw.start()
    rc, out, err = run(ctx, ["stats"], env=dict(os.environ,
                                                 MXGATE_CONF=gw.conf_path))
    check_eq(rc, 0, f"stats with MXGATE_CONF ({err!r})")
    check(re.search(r"^sessions_open 0$", out, re.M), f"stats: {out!r}")


# ------------------------------------------------------------ reload

def answer(out: str) -> dict[str, str]:
    return dict(ln.split(" ", 1) for ln in out.splitlines() if " " in ln)


def test_reload_says_what_it_applied(ctx):
    gw = ctx.gateway()
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        c.expect("550 5.1.1 *", "RCPT TO:<dave@example.test>")
    out, _ = mx(ctx, gw, "reload")
    a = answer(out)
    check_eq((a.get("result"), a.get("applied"), a.get("restart_needed")),
             ("ok", "-", "-"), f"nothing changed: {out!r}")
    gw.write_users(list(mxlib.DEFAULT_USERS) + ["dave@example.test"])
    gw.settings["max_recipients"] = "7"
    gw.settings["workers"] = "3"
    gw.sections["example.test"] = {"unknown_recipient": "discard"}
    gw.write_config()
    mark = gw.log_mark()
    out, _ = mx(ctx, gw, "reload")
    a = answer(out)
    check_eq(a.get("result"), "partial", f"answer {out!r}")
    check_eq(sorted(a["applied"].split(",")),
             ["max_recipients", "unknown_recipient[example.test]"],
             f"applied: {out!r}")
    check_eq(a.get("restart_needed"), "workers", f"restart: {out!r}")
    check_eq(a.get("users"), "4 (before 3)", f"users: {out!r}")
    gw.wait_event("reload", since=mark, result="partial",
                  restart_needed="workers")
    gw.wait_event("control", since=mark, cmd="reload", result="ok")
    with mxlib.session(gw) as c:          # the new users file is in force
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        c.expect("250 2.1.5 Ok", "RCPT TO:<dave@example.test>")
    # a broken config: refused before the gateway is asked, with the error
    good_conf = open(gw.conf_path).read()
    with open(gw.conf_path, "a") as f:
        f.write("max_recipents = 5\n")
    nlines = len(open(gw.conf_path).read().splitlines())
    mark = gw.log_mark()
    out, err = mx(ctx, gw, "reload", rc=1)
    check_eq(err, f"{gw.conf_path}:{nlines}: unknown key 'max_recipents'; "
             "did you mean 'max_recipients'?\nmxgate: reload: not asked "
             "for, the config has errors (above); the running gateway keeps "
             "its configuration\n", "stderr")
    check_eq(gw.events("reload", since=mark), [], "the gateway not asked")
    # a broken users file: the gateway answers with its first error and
    # keeps the old files
    with open(gw.conf_path, "w") as f:
        f.write(good_conf)
    gw.write_users(text=b"alice@example.test\nnot an address\n")
    out, err = mx(ctx, gw, "reload", rc=1)
    a = answer(out)
    check_eq(a.get("result"), "kept_old", f"answer {out!r}")
    check(re.fullmatch(re.escape(gw.users_path) + r":2: bad address "
                       r"'not an address': .*", a.get("reason", "")),
          f"reason: {out!r}")
    check_eq(err, "mxgate: reload failed; the old configuration stays\n",
             "stderr")
    gw.wait_event("reload", since=mark, result="kept_old")
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        c.expect("250 2.1.5 Ok", "RCPT TO:<dave@example.test>")
    # no gateway: a clear error, exit 1
    gw.stop()
    _, err = mx(ctx, gw, "reload", rc=1)
    check("no running gateway" in err, f"stderr: {err!r}")


# ------------------------------------------------------------ stop, pid

def stop_cli(ctx, gw) -> subprocess.Popen:
    return subprocess.Popen([os.path.abspath(ctx.binary), "stop", "-c",
                             gw.conf_path], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ctx.tmpdir)


@mxlib.params(["default", "pid_file"])
def test_stop_waits_and_pid_file(ctx, param):
    conf = {} if param == "default" else {"pid_file": "run/gw.pid"}
    gw = ctx.gateway(start=False, config=conf)
    pidfile = os.path.join(gw.spool_dir, "mxgate.pid")
    if param == "pid_file":
        os.makedirs(os.path.join(gw.dir, "run"))
        pidfile = os.path.join(gw.dir, "run", "gw.pid")
    gw.start()
    with open(pidfile) as f:
        check_eq(f.read(), f"{gw.proc.pid}\n", "the pid file")
    out, _ = mx(ctx, gw, "config", "pid_file")
    check_eq(out, "pid_file =" + (" run/gw.pid" if conf else "") + "\n",
             "config")
    c = mxlib.session(gw)           # an open session does not hold it up
    p = stop_cli(ctx, gw)
    # The gateway is our child: reap it, or `stop` would see a zombie.
    check_eq(gw.proc.wait(30), 0, "the gateway's exit status")
    out, err = p.communicate(timeout=40)
    check_eq(p.returncode, 0, f"mxgate stop ({err!r})")
    check(re.fullmatch(r"stopping pid %d, 1 session open\nok\nstopped\n"
                       % gw.proc.pid, out.decode()) or
          re.fullmatch(r"stopping pid %d, 1 session open\nstopped\n"
                       % gw.proc.pid, out.decode()), f"stdout {out!r}")
    c.close()
    gw._reap()
    check(not os.path.exists(pidfile), "pid file removed at exit")
    gw.wait_event("control", cmd="stop", result="ok")
    gw.wait_event("stopped")
    p = stop_cli(ctx, gw)
    out, err = p.communicate(timeout=30)
    check_eq(p.returncode, 1, "stop without a gateway")
    check(b"no running gateway" in err, f"stderr {err!r}")


def test_pid_file_that_cannot_be_written(ctx):
    gw = offline(ctx, config={"pid_file": "nowhere/gw.pid"})
    rc, out, err = run(ctx, ["serve", "-c", gw.conf_path])
    check_eq(rc, 1, "serve's exit status")
    check("cannot write the pid file " + os.path.join(gw.dir, "nowhere",
          "gw.pid") + ": No such file or directory" in out + err,
          f"the reason: {err!r}")


# ------------------------------------------------------------ check-config

def test_check_config_suggests_the_key_meant(ctx):
    gw = offline(ctx)
    with open(gw.conf_path, "a") as f:
        f.write("unknown_recipeint = reject\nfrobnicate = 1\n")
    n = len(open(gw.conf_path).read().splitlines())
    rc, _, err = run(ctx, ["check-config", "-c", gw.conf_path])
    check_eq(rc, 1, "exit status")
    check_eq(err, f"{gw.conf_path}:{n - 1}: unknown key 'unknown_recipeint'; "
             f"did you mean 'unknown_recipient'?\n"
             f"{gw.conf_path}:{n}: unknown key 'frobnicate'\n", "stderr")


def test_check_config_refuses_50MB(ctx):
    gw = offline(ctx, config={"max_message_size": "50MB"})
    n = [i for i, ln in enumerate(open(gw.conf_path).read().splitlines(), 1)
         if ln.startswith("max_message_size")][0]
    rc, _, err = run(ctx, ["check-config", "-c", gw.conf_path])
    check_eq(rc, 1, "exit status")
    check_eq(err, f"{gw.conf_path}:{n}: max_message_size: expected a size "
             "like 512K, 25M or 2G (bytes, or K, M, G, T: powers of 1024; "
             "no B, KB or MB), got '50MB'\n", "stderr")
    gw.settings["max_message_size"] = "50M"
    gw.write_config()
    out, _ = mx(ctx, gw, "check-config")
    out, _ = mx(ctx, gw, "config", "max_message_size")
    check_eq(out, "max_message_size = 50M\n", "50M is fine")


def test_check_config_warns_of_foreign_users(ctx):
    gw = offline(ctx, users=["alice@example.test", "bob@other.test",
                             "carol@other.test", "x@third.test"])
    rc, out, err = run(ctx, ["check-config", "-c", gw.conf_path])
    check_eq(rc, 0, f"only warnings: exit 0 ({err!r})")
    lines = sorted(err.splitlines(), key=lambda ln: "third" in ln)
    check_eq(len(lines), 2, f"one warning a domain: {err!r}")
    check(re.fullmatch(re.escape(gw.users_path) + r": warning: 2 entries for "
                       r"domain 'other\.test', which is not in domains, can "
                       r"never match \(e\.g\. (bob|carol)@other\.test\)",
                       lines[0]), f"other.test: {lines[0]!r}")
    check_eq(lines[1], f"{gw.users_path}: warning: 1 entry for domain "
             "'third.test', which is not in domains, can never match (e.g. "
             "x@third.test)", "third.test")
    check(out.endswith(", warnings above)\n"), f"stdout {out!r}")
    gw.write_users(["alice@example.test"])
    rc, out, err = run(ctx, ["check-config", "-c", gw.conf_path])
    check_eq((rc, err), (0, ""), "no warning for our own domain")


# ------------------------------------------------------------ passwd

HASH = re.compile(r"alice:\$[0-9a-z]+\$\S+\n")


def test_passwd_reads_stdin(ctx):
    rc, out, err = run(ctx, ["passwd", "alice"], stdin=b"s3cret pass\n")
    check_eq(rc, 0, f"exit status ({err!r})")
    check(HASH.fullmatch(out), f"the line: {out!r}")
    check_eq(err, "", "no prompt when stdin is not a terminal")
    rc, out, err = run(ctx, ["passwd", "alice"], stdin=b"")
    check_eq((rc, out), (1, ""), "no password")
    rc, out, err = run(ctx, ["--help"])
    check("read a password on stdin (no echo on" in out, "--help tells it")


def read_until(fd: int, want: bytes, timeout_s: float = 20.0) -> bytes:
    got = b""
    deadline = time.monotonic() + timeout_s
    while want not in got:
        left = deadline - time.monotonic()
        check(left > 0, f"waited for {want!r}, got {got!r}")
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                chunk = os.read(fd, 1024)
            except OSError:            # EIO: the other side closed
                break
            if not chunk:
                break
            got += chunk
    return got


@mxlib.params(["same", "differ"])
def test_passwd_prompts_without_echo_on_a_tty(ctx, param):
    master, slave = pty.openpty()
    p = subprocess.Popen([os.path.abspath(ctx.binary), "passwd", "alice"],
                         stdin=slave, stdout=subprocess.PIPE, stderr=slave,
                         cwd=ctx.tmpdir)
    os.close(slave)
    try:
        seen = read_until(master, b"Password: ")
        os.write(master, b"typed-Secret-1\n")
        seen += read_until(master, b"Again: ")
        os.write(master, b"typed-Secret-1\n" if param == "same"
                 else b"typed-Other-2\n")
        out, _ = p.communicate(timeout=20)
        seen += read_until(master, b"\n", 2.0) if param == "differ" else b""
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    try:
        while True:                      # what is left on the terminal
            r, _, _ = select.select([master], [], [], 0.2)
            if not r:
                break
            chunk = os.read(master, 1024)
            if not chunk:
                break
            seen += chunk
    except OSError:
        pass
    finally:
        os.close(master)
    check(b"typed-" not in seen, f"the password was echoed: {seen!r}")
    check(seen.count(b"Password: ") == 1 and b"Again: " in seen,
          f"the prompts: {seen!r}")
    if param == "same":
        check_eq(p.returncode, 0, "exit status")
        check(HASH.fullmatch(out.decode()), f"the line: {out!r}")
    else:
        check_eq((p.returncode, out), (1, b""), "passwords that differ")
        check(b"the passwords differ" in seen, f"the reason: {seen!r}")


def test_passwd_restores_echo(ctx):
    """Echo is off only while the password is read, then back on."""
    master, slave = pty.openpty()
    p = subprocess.Popen([os.path.abspath(ctx.binary), "passwd", "alice"],
                         stdin=slave, stdout=subprocess.PIPE, stderr=slave,
                         cwd=ctx.tmpdir)
    try:
        read_until(master, b"Password: ")
        off = mxlib.wait_until(
            lambda: not (termios.tcgetattr(slave)[3] & termios.ECHO) or None,
            10.0, "echo off while the password is read")
        check(off, "echo off")
        os.write(master, b"pw-one\n")
        read_until(master, b"Again: ")
        os.write(master, b"pw-one\n")
        p.communicate(timeout=20)
        check_eq(p.returncode, 0, "exit status")
        check(termios.tcgetattr(slave)[3] & termios.ECHO, "echo back on")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(slave)
        os.close(master)


@mxlib.timeout(300)
def control_connections(sock: str) -> int:
    """Accepted connections on the unix socket at sock (/proc/net/unix:
    an accepted socket carries the listener's path, state 03)."""
    n = 0
    with open("/proc/net/unix") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if len(fields) >= 8 and fields[7] == sock and fields[5] == "03":
                n += 1
    return n


def test_stop_while_a_reload_is_loading(ctx):
    """`mxgate stop` while `mxgate reload` waits for a large users file:
    the gateway exits 0 (nothing leaked, nothing used after it was freed:
    the ASan build checks), the reload gets an error, never a hang.  The
    reload usually is still loading when the stop arrives; if it finished
    first, it answered normally, which is as good."""
    users = "".join(f"user{i}@example.test\n" for i in range(1500000))
    gw = ctx.gateway(users=None, start=False)
    gw.write_users(text=users.encode())
    gw.start(timeout_s=120)
    rel = subprocess.Popen([os.path.abspath(ctx.binary), "reload", "-c",
                            gw.conf_path], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, cwd=ctx.tmpdir)
    # the stop goes only once the reload is connected (under load the
    # reload process may start later than the stop's)
    sock = os.path.join(gw.spool_dir, "control.sock")
    mxlib.wait_until(lambda: control_connections(sock) > 0 or
                     rel.poll() is not None, 60.0,
                     "the reload connected to the control socket")
    stop = stop_cli(ctx, gw)    # the reload takes about a second
    check_eq(gw.proc.wait(120), 0, "the gateway's exit status")
    out, err = stop.communicate(timeout=60)
    check_eq(stop.returncode, 0, f"mxgate stop ({err!r})")
    rout, rerr = rel.communicate(timeout=60)
    if rel.returncode == 0:
        check(b"result ok" in rout, f"a reload that won the race: {rout!r}")
    else:
        check_eq(rel.returncode, 1, f"reload ({rerr!r})")
        check(b"without a status line" in rerr or b"stopping" in rerr,
              f"the reload's error: {rerr!r}")
    gw._reap()
