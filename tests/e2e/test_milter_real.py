"""
test_milter_real.py - mxgate with real milters (issue 16): rspamd (Debian
3.4) and OpenDKIM (Debian opendkim, key made by opendkim-genkey), each
started by the test on free loopback ports in its own temp folder and
stopped by its PID.
rspamd: the system's rspamd.conf with LOCAL_CONFDIR, DBDIR and RUNDIR in
the temp folder; override.d puts the proxy worker (milter mode) and the
normal worker (which scans) and the controller on free ports; no Redis;
DNS goes to a closed loopback port (nothing leaves the machine);
enable_test_patterns makes GTUBE count.  A GTUBE message is refused in
the dialogue with rspamd's reply; a clean one is delivered with the
X-Spamd-Result and X-Rspamd-Queue-Id headers rspamd asked for.
OpenDKIM: signs mail from example.test (its client, 127.0.0.1, is in
OpenDKIM's default InternalHosts); the delivered copy's DKIM-Signature
verifies with python3-dkim (tests/milter/dkim_verify.py), the public key
(opendkim-genkey's TXT record) served to it by dnsfunc; both milters in one chain.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import urllib.request

import mxlib
from mxlib import check, check_eq, fail

SYSTEM_PYTHON = "/usr/bin/python3"  # the one with python3-dkim
HERE = os.path.dirname(os.path.abspath(__file__))
DKIM_VERIFY = os.path.join(HERE, "..", "milter", "dkim_verify.py")
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)    # ours, by its PID
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Rspamd:
    def __init__(self, folder: str):
        self.dir = os.path.join(folder, "rspamd")
        for sub in ("local.d", "override.d", "db", "run"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        self.port = mxlib.free_port()
        self.normal = mxlib.free_port()
        ctl = mxlib.free_port()
        dead_dns = mxlib.free_port()
        self.log = os.path.join(self.dir, "rspamd.log")
        files = {
            "override.d/worker-proxy.inc":
                f'bind_socket = "127.0.0.1:{self.port}";\nmilter = yes;\n'
                'timeout = 120s;\nupstream "local" {\n  default = yes;\n'
                f'  hosts = "127.0.0.1:{self.normal}";\n}}\ncount = 1;\n',
            "override.d/worker-normal.inc":
                f'bind_socket = "127.0.0.1:{self.normal}";\ncount = 1;\n',
            "override.d/worker-controller.inc":
                f'bind_socket = "127.0.0.1:{ctl}";\ncount = 1;\n',
            "override.d/logging.inc":
                f'type = "file";\nfilename = "{self.log}";\n'
                'level = "info";\n',
            "local.d/options.inc":
                "enable_test_patterns = true;\ndns {\n"
                f'  nameserver = ["127.0.0.1:{dead_dns}"];\n'
                "  timeout = 0.5s;\n  retransmits = 1;\n}\n",
            "local.d/milter_headers.conf":
                'use = ["x-spamd-result", "x-rspamd-queue-id"];\n'
                "skip_local = false;\nskip_authenticated = false;\n",
        }
        for name, text in files.items():
            with open(os.path.join(self.dir, name), "w") as f:
                f.write(text)
        shutil.chown(self.dir, "_rspamd", "_rspamd")
        for root, dirs, names in os.walk(self.dir):
            for n in dirs + names:
                shutil.chown(os.path.join(root, n), "_rspamd", "_rspamd")
        self.proc = subprocess.Popen(
            ["rspamd", "-f", "-u", "_rspamd", "-g", "_rspamd",
             "-c", "/etc/rspamd/rspamd.conf",
             f"--var=LOCAL_CONFDIR={self.dir}", f"--var=DBDIR={self.dir}/db",
             f"--var=RUNDIR={self.dir}/run", f"--var=LOGDIR={self.dir}",
             "-p", f"{self.dir}/run/rspamd.pid"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT, cwd=self.dir)
        try:
            mxlib.wait_until(self._ready, 120, "rspamd answering /ping")
        except Exception:
            self.stop()
            raise

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            fail(f"rspamd exited ({self.proc.returncode}): "
                 f"{self.tail()}")
        try:
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.normal}/ping", timeout=2) as r:
                ok = r.read().strip() == b"pong"
        except OSError:
            return False
        import socket
        try:
            socket.create_connection(("127.0.0.1", self.port), 1).close()
        except OSError:
            return False
        return ok

    def tail(self) -> str:
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-2000:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        _stop(self.proc)


class OpenDkim:
    def __init__(self, folder: str, domain: str = "example.test",
                 selector: str = "test"):
        self.dir = os.path.join(folder, "opendkim")
        os.makedirs(self.dir, exist_ok=True)
        subprocess.run(["opendkim-genkey", "-D", self.dir, "-d", domain,
                        "-s", selector], check=True, timeout=60)
        with open(os.path.join(self.dir, f"{selector}.txt")) as f:
            txt = f.read()
        # the record's quoted strings, joined (RFC 6376 3.6.2.2)
        self.record = "".join(re.findall(r'"([^"]*)"', txt)).encode()
        check(b"p=" in self.record, f"a public key in {txt!r}")
        self.name = f"{selector}._domainkey.{domain}."
        self.port = mxlib.free_port()
        conf = os.path.join(self.dir, "opendkim.conf")
        with open(conf, "w") as f:
            f.write(f"Syslog no\nMode sv\nDomain {domain}\n"
                    f"Selector {selector}\n"
                    f"KeyFile {self.dir}/{selector}.private\n"
                    f"Socket inet:{self.port}@127.0.0.1\n"
                    f"PidFile {self.dir}/opendkim.pid\n"
                    "Canonicalization relaxed/simple\n"
                    # the test's folders live under /tmp (sticky, 1777)
                    "RequireSafeKeys false\n")
        self.proc = subprocess.Popen(
            ["opendkim", "-f", "-x", conf], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            cwd=self.dir)
        mxlib.wait_until(self._listening, 30, "opendkim listening")

    def _listening(self) -> bool:
        import socket
        if self.proc.poll() is not None:
            fail(f"opendkim exited ({self.proc.returncode})")
        try:
            socket.create_connection(("127.0.0.1", self.port), 1).close()
            return True
        except OSError:
            return False

    def verify(self, folder: str, data: bytes) -> bool:
        """python3-dkim's verdict on data, with our key record."""
        path = os.path.join(folder, "verify.eml")
        with open(path, "wb") as f:
            f.write(data)
        r = subprocess.run([SYSTEM_PYTHON, DKIM_VERIFY, path, self.name,
                            self.record.decode()], capture_output=True,
                           timeout=60)
        out = r.stdout.decode().strip()
        check(out in ("pass", "fail"), f"dkim_verify.py: {r!r}")
        return out == "pass"

    def stop(self) -> None:
        _stop(self.proc)


def send(c: mxlib.Client, want: str, msg: bytes,
         sender: str = "x@remote.test") -> mxlib.Reply:
    c.expect("250 2.1.0 Ok", f"MAIL FROM:<{sender}>")
    c.expect("250 2.1.5 Ok", "RCPT TO:<alice@example.test>")
    c.expect("354 *", "DATA")
    c.send(msg + b".\r\n")
    return c.expect(want, timeout_s=60)


def delivered_bytes(gw, count: int = 1) -> bytes:
    files = gw.wait_maildir("example.test", "alice", count, timeout_s=60)
    with open(files[-1], "rb") as f:
        return f.read()


def header(data: bytes, name: str) -> str | None:
    import email
    import email.policy
    m = email.message_from_bytes(data, policy=email.policy.compat32)
    return m[name]


def test_milter_rspamd(ctx, gw_factory):
    r = Rspamd(ctx.tmpdir)
    try:
        gw = gw_factory(config={"milters": f"inet:127.0.0.1:{r.port}"})
        with mxlib.session(gw) as c:
            rep = send(c, "554 5.7.1 *", mxlib.make_message(
                "gtube", body=["Hello,", "", GTUBE, ""]))
            check("Gtube pattern" in str(rep) or "rejected" in str(rep),
                  f"rspamd's text in the reply: {rep}")
            c.expect("250 2.0.0 Ok", "RSET")
            send(c, "250 2.0.0 Ok: queued as *", mxlib.make_message("clean"))
        data = delivered_bytes(gw)
        check_eq(len(gw.all_mail_files()), 1, "only the clean one delivered")
        res = header(data, "X-Spamd-Result")
        check(res is not None and "default:" in res,
              f"X-Spamd-Result: {res!r} in {data[:600]!r}")
        check(header(data, "X-Rspamd-Queue-Id") is not None,
              f"X-Rspamd-Queue-Id in {data[:600]!r}")
        check_eq(header(data, "Subject"), "clean", "Subject kept")
        gw.wait_event("milter", verdict="replycode")
    finally:
        r.stop()


def test_milter_opendkim_signs(ctx, gw_factory):
    d = OpenDkim(ctx.tmpdir)
    try:
        gw = gw_factory(config={"milters": f"inet:127.0.0.1:{d.port}"})
        with mxlib.session(gw) as c:
            send(c, "250 2.0.0 Ok: queued as *",
                 mxlib.make_message("signed", sender="x@example.test"),
                 sender="x@example.test")
        data = delivered_bytes(gw)
        sig = header(data, "DKIM-Signature")
        check(sig is not None and "d=example.test" in sig,
              f"DKIM-Signature: {sig!r} in {data[:800]!r}")
        check(d.verify(ctx.tmpdir, data),
              f"the signature verifies: {data[:1200]!r}")
        # a changed body no longer verifies: the check can fail
        check(not d.verify(ctx.tmpdir, data.replace(b"this is a test.",
                                                    b"this is a tesT.")),
              "a tampered copy fails")
    finally:
        d.stop()


def test_milter_rspamd_then_opendkim(ctx, gw_factory):
    r = Rspamd(ctx.tmpdir)
    d = OpenDkim(ctx.tmpdir)
    try:
        gw = gw_factory(config={
            "milters": f"inet:127.0.0.1:{r.port}, inet:127.0.0.1:{d.port}"})
        with mxlib.session(gw) as c:
            send(c, "250 2.0.0 Ok: queued as *",
                 mxlib.make_message("both", sender="x@example.test"),
                 sender="x@example.test")
        data = delivered_bytes(gw)
        check(header(data, "X-Spamd-Result") is not None, "rspamd's header")
        check(d.verify(ctx.tmpdir, data), "the signature verifies")
    finally:
        d.stop()
        r.stop()
