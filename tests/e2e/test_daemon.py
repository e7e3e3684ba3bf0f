"""
test_daemon.py - running mxgate as a daemon (issue 18, part 4): the man
pages (every key of the config table in mxgate.conf(5), both rendered by
groff -ww and man -l without a warning), the systemd unit (systemd-analyze
verify, and its security score), the sd_notify datagrams (READY=1 once
the listener accepts, RELOADING=1 then READY=1 around a reload,
STOPPING=1; a path and an abstract socket), and the fail2ban filter
(fail2ban-regex finds the address the harvest guard marked, and no other,
in a log the gateway wrote).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import uuid

import mxlib
from mxlib import check, check_eq

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
UNIT = os.path.join(REPO, "etc", "systemd", "mxgate.service")
F2B_FILTER = os.path.join(REPO, "etc", "fail2ban", "filter.d", "mxgate.conf")
SECURITY_MAX = 2.0  # "OK" in systemd's words is < 4.0; this unit is ~1.4


def run(args: list[str], timeout_s: float = 120.0, **kw
        ) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True,
                          timeout=timeout_s, **kw)


def table_keys() -> list[str]:
    """The key names of src/conf/conf_keys.c, read from the source (not
    from the binary whose output is under test)."""
    with open(os.path.join(REPO, "src", "conf", "conf_keys.c")) as f:
        text = f.read()
    body = text[text.index("const struct conf_key conf_keys[] = {"):]
    body = body[:body.index("\n};")]
    keys = re.findall(r'^\t\{ "([a-z0-9_]+)",', body, re.M)
    check(len(keys) > 60, f"keys read from the table: {len(keys)}")
    return keys


def built_man_pages() -> dict[str, str]:
    """The pages as `make` builds them (mxgate.conf.5 from the table)."""
    p = run(["make", "--no-print-directory", "-C", REPO, "man"])
    check_eq(p.returncode, 0, f"make man: {p.stderr[-2000:]}")
    return {n: os.path.join(REPO, "build", "man", n)
            for n in ("mxgate.8", "mxgate.conf.5")}


# ---------------------------------------------------------------- man pages

def test_man_conf_names_every_key():
    pages = built_man_pages()
    with open(pages["mxgate.conf.5"]) as f:
        src = f.read()
    check("@KEYS@" not in src and "@VERSION@" not in src,
          "placeholders left in mxgate.conf.5")
    missing = [k for k in table_keys()
               if not re.search(r"^\.TP\n\.B %s\n" % re.escape(k), src, re.M)]
    check(not missing, f"keys missing from mxgate.conf(5): {missing}")
    # and as a reader sees it: rendered, each key at the start of an entry
    env = dict(os.environ, MANWIDTH="100", MAN_KEEP_FORMATTING="0")
    p = run(["man", "-l", "-P", "cat", pages["mxgate.conf.5"]], env=env)
    check_eq(p.returncode, 0, f"man -l mxgate.conf.5: {p.stderr}")
    text = re.sub(r".\x08", "", p.stdout)
    for k in table_keys():
        check(re.search(r"^\s+%s\b" % re.escape(k), text, re.M),
              f"rendered mxgate.conf(5) lacks an entry for {k}")
    check(re.search(r"max_message_size\s+Largest message.*\n\s+Default: 25M; "
                    r"global; size; from 1K to 2G\.", text),
          "max_message_size's entry as rendered")
    check(re.search(r"unknown_recipient\n.*\n(.*\n)*?\s+Default: reject; per "
                    r"domain; policy\.", text), "unknown_recipient's entry")



def test_readme_key_list_is_the_table(binary):
    """README's list of every key is what `mxgate --help` prints from the
    table, so it cannot drift from the keys the gateway reads."""
    p = run([os.path.abspath(binary), "--help"])
    helptext = p.stdout + p.stderr
    keys = helptext[helptext.index("keys marked per-domain):\n") +
                    len("keys marked per-domain):\n"):]
    with open(os.path.join(REPO, "README.md")) as f:
        readme = f.read()
    start = readme.index("prints the same):\n\n```\n") + \
        len("prints the same):\n\n```\n")
    block = readme[start:readme.index("```\n", start)]
    check_eq(block.splitlines(), keys.splitlines(),
             "README's key list (regenerate it from mxgate --help)")

@mxlib.params(["mxgate.8", "mxgate.conf.5"])
def test_man_pages_render_without_warnings(param):
    page = built_man_pages()[param]
    p = run(["groff", "-ww", "-man", "-Tutf8", "-z", page])
    check_eq(p.returncode, 0, f"groff -ww {param}")
    check_eq(p.stderr, "", f"groff -ww warnings for {param}")
    env = dict(os.environ, MANWIDTH="80")
    p = run(["man", "--warnings", "-l", "-P", "cat", page], env=env)
    check_eq(p.returncode, 0, f"man -l {param}: {p.stderr}")
    check_eq(p.stderr, "", f"man --warnings -l {param}")
    check(len(p.stdout.splitlines()) > 80, f"{param} renders to a page")
    if param == "mxgate.8":
        text = re.sub(r".\x08", "", p.stdout)
        for section in ("SYNOPSIS", "COMMANDS", "SIGNALS", "FILES",
                        "EXIT STATUS", "EXAMPLES"):
            check(re.search(r"^%s$" % section, text, re.M),
                  f"mxgate(8) has {section}")
        for cmd in ("serve", "check-config", "config", "reload", "stop",
                    "passwd", "SIGHUP", "MXGATE_CONF", "NOTIFY_SOCKET"):
            check(cmd in text, f"mxgate(8) tells of {cmd}")


# ---------------------------------------------------------------- systemd

def unit_copy(ctx, binary: str) -> tuple[str, dict[str, str]]:
    """The unit with every /usr/sbin/mxgate pointed at the binary under
    test, and a MANPATH holding the pages its Documentation= names."""
    with open(UNIT) as f:
        text = f.read()
    check("/usr/sbin/mxgate" in text, "the unit runs /usr/sbin/mxgate")
    path = ctx.write("mxgate.service",
                     text.replace("/usr/sbin/mxgate", os.path.abspath(binary)))
    pages = built_man_pages()
    mandir = os.path.join(ctx.tmpdir, "man")
    for sec, name in (("8", "mxgate.8"), ("5", "mxgate.conf.5")):
        os.makedirs(os.path.join(mandir, f"man{sec}"), exist_ok=True)
        shutil.copy(pages[name], os.path.join(mandir, f"man{sec}", name))
    return path, dict(os.environ, MANPATH=mandir)


def test_systemd_unit_verifies(ctx, binary):
    path, env = unit_copy(ctx, binary)
    p = run(["systemd-analyze", "verify", path], env=env)
    check_eq(p.returncode, 0, f"systemd-analyze verify: {p.stderr}")
    check_eq(p.stderr.strip(), "", "systemd-analyze verify says nothing")
    with open(UNIT) as f:
        unit = f.read()
    for want in ("Type=notify", "AmbientCapabilities=CAP_NET_BIND_SERVICE",
                 "User=mxgate", "ProtectSystem=strict",
                 "ReadWritePaths=/var/spool/mxgate", "NoNewPrivileges=yes",
                 "PrivateTmp=yes", "SystemCallFilter=@system-service",
                 "ExecReload=/usr/sbin/mxgate reload"):
        check(re.search(r"^%s$" % re.escape(want), unit, re.M),
              f"the unit sets {want}")
    # A broken unit is refused: the check above can fail.
    bad = ctx.write("mxgate-bad.service",
                    open(path).read().replace("Type=notify", "Type=notifyy"))
    p = run(["systemd-analyze", "verify", bad], env=env)
    check("notifyy" in p.stderr, f"a bad Type= is reported: {p.stderr!r}")


def test_systemd_security_score(ctx, binary):
    path, env = unit_copy(ctx, binary)
    p = run(["systemd-analyze", "security", "--offline=yes", path], env=env)
    m = re.search(r"Overall exposure level for mxgate\.service: "
                  r"([0-9.]+) (\S+)", p.stdout)
    check(m, f"a score in: {p.stdout[-500:]!r} {p.stderr!r}")
    score = float(m.group(1))
    print(f"systemd-analyze security --offline=yes: {score} {m.group(2)}")
    check(score <= SECURITY_MAX, f"exposure {score} above {SECURITY_MAX}")


# ---------------------------------------------------------------- sd_notify

class Notify:
    """The service manager's end: a datagram socket at a path or in the
    abstract namespace ("@name")."""

    def __init__(self, ctx, abstract: bool):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"mxgate-test-{os.getpid()}-{uuid.uuid4().hex[:12]}"
            self.sock.bind("\0" + name)
            self.env = "@" + name
        else:
            self.env = os.path.join(ctx.tmpdir, "notify.sock")
            self.sock.bind(self.env)

    def next(self, timeout_s: float = 30.0) -> dict[str, str]:
        self.sock.settimeout(timeout_s)
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            mxlib.fail(f"no sd_notify datagram within {timeout_s:g}s")
        return dict(line.split("=", 1)
                    for line in data.decode().split("\n") if line)

    def none_pending(self) -> bool:
        self.sock.setblocking(False)
        try:
            self.sock.recv(4096)
        except BlockingIOError:
            return True
        finally:
            self.sock.setblocking(True)
        return False


@mxlib.params(["path", "abstract"])
def test_sd_notify_ready_reload_stopping(ctx, param):
    n = Notify(ctx, abstract=(param == "abstract"))
    os.environ["NOTIFY_SOCKET"] = n.env     # this test's gateway only
    try:
        sd_notify_ready_reload_stopping(ctx, n)
    finally:
        del os.environ["NOTIFY_SOCKET"]


def sd_notify_ready_reload_stopping(ctx, n: Notify) -> None:
    gw = ctx.gateway(start=False)
    gw.port = mxlib.free_port()
    gw.write_config()
    mark = gw.log_mark()
    gw._spawn()
    ready = n.next()
    check_eq(ready.get("READY"), "1", f"first datagram {ready}")
    # READY=1 comes once the listener accepts: a client is greeted at
    # once, and the log has the listener (the log reaches its file through
    # this process's copying thread, so it is waited for, not raced).
    gw.wait_event("listening", since=mark, addr=f"127.0.0.1:{gw.port}")
    with mxlib.session(gw, helo=None):
        pass                                # greeted: 220 read
    check(n.none_pending(), "one datagram at start")
    mark = gw.reload()
    rel = n.next()
    check_eq(rel.get("RELOADING"), "1", f"reload datagram {rel}")
    check(re.fullmatch(r"[0-9]+", rel.get("MONOTONIC_USEC", "")),
          f"MONOTONIC_USEC with RELOADING=1: {rel}")
    again = n.next()
    check_eq(again.get("READY"), "1", f"after the reload {again}")
    gw.wait_event("reload", since=mark, result="ok")
    gw.proc.send_signal(15)
    stop = n.next()
    check_eq(stop.get("STOPPING"), "1", f"stop datagram {stop}")
    check_eq(gw.proc.wait(30), 0, "exit status after SIGTERM")
    gw._reap()


def test_sd_notify_unreachable_socket_is_not_fatal(ctx):
    """A NOTIFY_SOCKET nobody listens on costs a warning, not the start."""
    os.environ["NOTIFY_SOCKET"] = os.path.join(ctx.tmpdir, "nobody.sock")
    try:
        gw = ctx.gateway()
    finally:
        del os.environ["NOTIFY_SOCKET"]
    gw.wait_event("sd_notify")
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")


# ---------------------------------------------------------------- fail2ban

def test_fail2ban_filter_bans_the_marked_harvester(gw_factory):
    gw = gw_factory(config={"harvest_threshold": "6",
                            "harvest_threshold_net": "6",
                            "harvest_tarpit_after": "1000",
                            "harvest_session_limit": "1000"})
    harvester, honest = "127.0.44.7", "127.0.45.1"
    with mxlib.session(gw, bind=honest) as c:   # mostly valid: never marked
        c.expect("250 2.1.0 Ok", "MAIL FROM:<a@remote.test>")
        for who in ("alice", "bob", "carol", "alice+x", "nosuch"):
            c.cmd(f"RCPT TO:<{who}@example.test>")
    for s in range(2):
        with mxlib.session(gw, bind=harvester) as c:
            c.expect("250 2.1.0 Ok", "MAIL FROM:<h@remote.test>")
            for j in range(4):
                c.cmd(f"RCPT TO:<h{s}n{j}@example.test>")
    gw.wait_event("harvest", state="uniform", net=harvester)
    gw.wait_event("harvest", state="uniform", net="127.0.44.0/24")
    check(gw.events("rcpt", client=honest) or
          re.search(r"client=127\.0\.45\.1", gw.log_text()),
          "the honest client is in the log too")
    p = run(["fail2ban-regex", "-o", "ip", gw.log_path, F2B_FILTER])
    check_eq(p.returncode, 0, f"fail2ban-regex: {p.stderr}")
    check_eq(p.stdout.split(), [harvester],
             "addresses fail2ban would ban (not the /24, not the honest one)")
    # the jail example is a config fail2ban reads
    jail = os.path.join(REPO, "etc", "fail2ban", "jail.d", "mxgate.conf")
    with open(jail) as f:
        text = f.read()
    check(re.search(r"^\[mxgate\]$", text, re.M) and
          re.search(r"^filter\s*=\s*mxgate$", text, re.M), "jail names filter")
