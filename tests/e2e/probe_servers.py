"""
probe_servers.py - deliberately bad and hostile SMTP servers for
tests/e2e/test_probe.py (issue 15), each on a free 127.0.0.1 port in a
thread of the test's process.
Owns: BadServer modes:
  bad      an open relay through the %-hack, VRFY that tells real names
           (250) from invented ones (550), accepts every name of its domain
           and then bounces to the sender (to bounce_to, standing for the
           sender domain's MX), honours a bare LF as end of data, and
           executes plaintext pipelined after STARTTLS inside TLS
           (CVE-2011-0411); greets with a Sendmail version
  silent   accepts and never says a word
  endless  a greeting of "220-" lines that never ends
  longline a 1 MB greeting line
  badtls   a normal server whose STARTTLS answers 220 and then sends
           bytes that are not TLS
  trickle  a greeting sent one byte every 300 ms (never a whole reply
           within a short --timeout, though bytes keep coming)
  oracle   as bad, but an invented name's RCPT is answered 40 ms later
           than a real one's (a directory look-up that costs more when
           the name is absent): a timing oracle
Never: listens outside 127.0.0.1; keeps a connection after stop().
Python 3.11+, standard library only.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time

import mxlib

DOMAIN = "example.test"
KNOWN = ("alice", "bob", "carol")
GREETING = b"220 bad.example.test ESMTP Sendmail 8.15.2/8.15.2; ready\r\n"


class BadServer:
    def __init__(self, mode: str = "bad", cert: tuple[str, str] | None = None,
                 bounce_to: int | None = None):
        self.mode = mode
        self.port = mxlib.free_port()
        self.bounce_to = bounce_to
        self.ctx = None
        if cert is not None:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(*cert)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(16)
        self.stopping = False
        self.conns: list[socket.socket] = []
        self.bounces = 0
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def __enter__(self) -> "BadServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self.stopping = True
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            for c in self.conns:
                try:
                    c.close()
                except OSError:
                    pass

    def _accept(self) -> None:
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    def _serve(self, c: socket.socket) -> None:
        try:
            getattr(self, "_mode_" + self.mode)(c)
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    # -- hostile modes

    def _mode_silent(self, c: socket.socket) -> None:
        while c.recv(4096):
            pass

    def _mode_endless(self, c: socket.socket) -> None:
        c.settimeout(30)
        while not self.stopping:
            c.sendall(b"220-still greeting you\r\n" * 50)

    def _mode_trickle(self, c: socket.socket) -> None:
        c.settimeout(30)
        for b in GREETING * 10:
            if self.stopping:
                return
            c.sendall(bytes([b]))
            time.sleep(0.3)

    def _mode_longline(self, c: socket.socket) -> None:
        c.settimeout(30)
        c.sendall(b"220 " + b"x" * (1024 * 1024) + b"\r\n")
        while c.recv(4096):
            pass

    def _mode_badtls(self, c: socket.socket) -> None:
        self._dialogue(c, badtls=True)

    def _mode_bad(self, c: socket.socket) -> None:
        self._dialogue(c)

    def _mode_oracle(self, c: socket.socket) -> None:
        self._dialogue(c)

    # -- the bad dialogue

    def _dialogue(self, c: socket.socket, badtls: bool = False) -> None:
        c.settimeout(30)
        conn = {"sock": c, "buf": b""}
        c.sendall(GREETING)
        tx = {"from": None, "rcpts": []}
        while True:
            line = self._line(conn)
            if line is None:
                return
            verb = line[:4].upper()
            arg = line[5:].strip() if len(line) > 5 else ""
            if verb in ("EHLO", "HELO"):
                ext = ["bad.example.test", "PIPELINING", "HELP"]
                if self.ctx is not None or badtls:
                    ext.insert(2, "STARTTLS")
                out = "".join(f"250-{e}\r\n" for e in ext[:-1])
                self._say(conn, out + f"250 {ext[-1]}\r\n")
            elif verb == "STAR":
                self._say(conn, "220 2.0.0 Ready to start TLS\r\n")
                if badtls:
                    conn["sock"].sendall(b"this is not TLS\r\n" * 4)
                    return
                # the flaw: conn["buf"] keeps what was pipelined in
                # plaintext and is answered inside TLS (CVE-2011-0411)
                conn["sock"] = self.ctx.wrap_socket(c, server_side=True)
            elif verb == "MAIL":
                tx = {"from": self._addr(arg), "rcpts": []}
                self._say(conn, "250 2.1.0 Ok\r\n")
            elif verb == "RCPT":
                self._say(conn, self._rcpt(tx, self._addr(arg)))
            elif verb == "VRFY" or verb == "EXPN":
                local = self._addr(arg).split("@")[0]
                if local in KNOWN:
                    self._say(conn, f"250 2.1.5 {local.title()} "
                              f"<{local}@{DOMAIN}>\r\n")
                else:
                    self._say(conn, "550 5.1.1 User unknown\r\n")
            elif verb == "DATA":
                self._say(conn, "354 go ahead\r\n")
                body = self._data(conn)
                if body is None:
                    return
                self._say(conn, "250 2.0.0 queued\r\n")
                self._maybe_bounce(tx, body)
            elif verb == "QUIT":
                self._say(conn, "221 2.0.0 Bye\r\n")
                return
            elif verb == "HELP":
                self._say(conn, "214 2.0.0 Sendmail 8.15.2 help\r\n")
            else:
                self._say(conn, "250 2.0.0 Ok\r\n")

    @staticmethod
    def _addr(arg: str) -> str:
        a = arg.split(":", 1)[-1].strip()
        if a.startswith("<"):
            a = a[1:a.find(">")] if ">" in a else a[1:]
        return a

    def _rcpt(self, tx: dict, a: str) -> str:
        local, _, dom = a.rpartition("@")
        if self.mode == "oracle" and local not in KNOWN:
            time.sleep(0.04)
        if dom.lower() in (DOMAIN, "bad.example.test"):
            tx["rcpts"].append(a)
            if "%" in local:
                return "250 2.1.5 Ok, relaying\r\n"
            return "250 2.1.5 Ok\r\n"
        return "550 5.7.1 Relaying denied\r\n"

    def _line(self, conn: dict) -> str | None:
        while b"\n" not in conn["buf"]:
            d = conn["sock"].recv(4096)
            if not d:
                return None
            conn["buf"] += d
        line, _, conn["buf"] = conn["buf"].partition(b"\n")
        return line.rstrip(b"\r").decode("latin-1")

    def _data(self, conn: dict) -> str | None:
        """Lines split on LF alone: a bare LF ends data (the flaw)."""
        lines = []
        while True:
            line = self._line(conn)
            if line is None:
                return None
            if line == ".":
                return "\n".join(lines)
            lines.append(line)

    @staticmethod
    def _say(conn: dict, text: str) -> None:
        conn["sock"].sendall(text.encode())

    def _maybe_bounce(self, tx: dict, body: str) -> None:
        """Accept, then bounce: a report for each unknown name to the
        (unproven) sender, sent to bounce_to."""
        unknown = [r for r in tx["rcpts"]
                   if r.split("@")[0] not in KNOWN]
        if not unknown or not tx["from"] or self.bounce_to is None:
            return
        subject = next((ln for ln in body.split("\n")
                        if ln.lower().startswith("subject:")), "")
        report = (f"From: MAILER-DAEMON@bad.example.test\r\n"
                  f"To: <{tx['from']}>\r\nSubject: Undelivered Mail\r\n\r\n"
                  f"{unknown[0]}: user unknown\r\n{subject}\r\n")
        threading.Thread(target=self._send_bounce,
                         args=(tx["from"], report), daemon=True).start()

    def _send_bounce(self, to: str, report: str) -> None:
        import smtplib
        try:
            with smtplib.SMTP("127.0.0.1", self.bounce_to, timeout=10) as s:
                s.sendmail("", [to], report)
            self.bounces += 1
        except (OSError, smtplib.SMTPException):
            pass


# ------------------------------------------------------------ Postfix

PF_MASTER = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
virtual   unix  - n n - - virtual
lmtp      unix  - - n - - lmtp
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""

PF_MAIN = """\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = pf.example.test
mydomain = example.test
myorigin = pf.example.test
mydestination =
# the probe's 127.0.0.1 is not trusted: no implicit trust of loopback
mynetworks = 192.0.2.1/32
relay_domains = example.test
relay_recipient_maps = inline:{{ alice@example.test=OK, bob@example.test=OK, carol@example.test=OK }}
relay_transport = discard:
default_transport = discard:
maillog_file = /dev/stdout
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_error_sleep_time = 0
alias_maps =
alias_database =
biff = no
"""

PF_QUEUE_DIRS = ("active", "bounce", "corrupt", "defer", "deferred", "flush",
                 "hold", "incoming", "private", "saved", "trace")


class Postfix:
    """A private Postfix (Debian's, run as root) in folder: its own
    main.cf and master.cf (relay_domains example.test, three recipients
    in relay_recipient_maps, everything accepted goes to discard:), on
    127.0.0.1:port; `postfix -c DIR start-fg` in its own process group,
    stopped with `postfix -c DIR stop`, then by that group."""

    def __init__(self, folder: str, extra: str = ""):
        import grp
        import os
        import pwd
        self.dir = folder
        self.port = mxlib.free_port()
        os.makedirs(os.path.join(folder, "data"), exist_ok=True)
        # the postfix user must reach its folders: the test's own temp
        # folders (0700 from mkdtemp) become 0755
        up = folder
        while up not in ("/", "/tmp"):
            if os.stat(up).st_mode & 0o005 != 0o005:
                os.chmod(up, 0o755)
            up = os.path.dirname(up)
        pf = pwd.getpwnam("postfix").pw_uid
        pd = grp.getgrnam("postdrop").gr_gid
        os.chown(os.path.join(folder, "data"), pf, -1)
        q = os.path.join(folder, "queue")
        os.makedirs(q, exist_ok=True)
        os.chmod(q, 0o755)
        for d in PF_QUEUE_DIRS:
            os.makedirs(os.path.join(q, d), exist_ok=True)
            os.chown(os.path.join(q, d), pf, -1)
            os.chmod(os.path.join(q, d), 0o700)
        os.makedirs(os.path.join(q, "pid"), exist_ok=True)
        for d, mode in (("maildrop", 0o730), ("public", 0o710)):
            os.makedirs(os.path.join(q, d), exist_ok=True)
            os.chown(os.path.join(q, d), pf, pd)
            os.chmod(os.path.join(q, d), mode)
        with open(os.path.join(folder, "main.cf"), "w") as f:
            f.write(PF_MAIN.format(dir=folder) + extra)
        with open(os.path.join(folder, "master.cf"), "w") as f:
            f.write(PF_MASTER.format(port=self.port))
        self.log = open(os.path.join(folder, "postfix.log"), "wb")
        import subprocess
        self.proc = subprocess.Popen(["postfix", "-c", folder, "start-fg"],
                                     stdout=self.log, stderr=self.log,
                                     stdin=subprocess.DEVNULL,
                                     start_new_session=True)

        def up() -> bool:
            if self.proc.poll() is not None:
                mxlib.fail(f"postfix exited: {self.log_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return True
            except OSError:
                return False
        mxlib.wait_until(up, 60, "postfix listening")

    def log_text(self) -> str:
        import os
        with open(os.path.join(self.dir, "postfix.log"), "rb") as f:
            return f.read().decode("latin-1")

    def __enter__(self) -> "Postfix":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        import os
        import signal
        import subprocess
        subprocess.run(["postfix", "-c", self.dir, "stop"],
                       capture_output=True, timeout=60)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.log.close()
