"""
test_outbound_tls.py - outbound trust (issue 20): next_hop_tls levels
toward a next hop that is a second mxgate, and smarthost AUTH toward a
relayhost that is a third one.
Covers: may to a hop without TLS delivers in clear (and says so); none
never starts TLS; a failed handshake defers at encrypt and falls back to
clear at may; encrypt to a hop without TLS defers with 4.7.5, shown by
`queue show`; encrypt to a hop with TLS delivers unchecked; verify with
the right CA delivers (by name and by IP); a wrong CA, a wrong name and
an expired certificate each defer with OpenSSL's reason; a CA file named
by a reload is loaded (one that cannot be defers); a pinned fingerprint
delivers, a different one defers; a proxy that strips STARTTLS from the
EHLO reply makes encrypt defer and may deliver in clear; a reload to
encrypt does not reuse a clear connection; SNI is next_hop_tls_name, none
for an IP; a report (NDR) through an authenticated relayhost: good
credentials deliver it, bad ones defer it with the relay's reply logged; no password in any log, plain or base64;
check-config refuses an auth file others may read, encrypt on a Maildir
hop, relayhost_tls without relayhost, a bad level and a bad pin.
The CA and certificates are made here with the openssl CLI.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import ssl
import subprocess
import threading

import ctllib
import mxlib
from mxlib import check, check_eq

HOP_NAME = "hop.example.test"
PASSWORD = "s3cret relay pass"
WAIT = 30.0  # a bound on one delivery step (a poll, not a claim)


# ------------------------------------------------------------ certificates

def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True,
                   timeout=30)


def make_ca(folder: str, name: str) -> dict[str, str]:
    """A CA (EC P-256) that `openssl ca` can sign with: its files."""
    os.makedirs(os.path.join(folder, "newcerts"), exist_ok=True)
    ca = {"dir": folder, "key": os.path.join(folder, "ca.key"),
          "cert": os.path.join(folder, "ca.pem"),
          "cnf": os.path.join(folder, "ca.cnf")}
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-subj", f"/CN={name}", "-addext",
            "basicConstraints=critical,CA:TRUE", "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout", ca["key"], "-out", ca["cert"])
    with open(os.path.join(folder, "index.txt"), "w"):
        pass
    with open(os.path.join(folder, "serial"), "w") as f:
        f.write("1000\n")
    with open(ca["cnf"], "w") as f:
        f.write(f"""[ca]
default_ca = tca
[tca]
dir = {folder}
database = {folder}/index.txt
new_certs_dir = {folder}/newcerts
serial = {folder}/serial
default_md = sha256
policy = anything
copy_extensions = copy
unique_subject = no
[anything]
commonName = supplied
""")
    return ca


def make_leaf(ca: dict[str, str], folder: str, expired: bool = False
              ) -> tuple[str, str]:
    """cert.pem and key.pem in folder for HOP_NAME and 127.0.0.1, signed
    by ca; expired: valid for one day in 2020 only."""
    key = os.path.join(folder, "key.pem")
    cert = os.path.join(folder, "cert.pem")
    csr = os.path.join(folder, "leaf.csr")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-subj",
            f"/CN={HOP_NAME}", "-addext",
            f"subjectAltName=DNS:{HOP_NAME},IP:127.0.0.1",
            "-keyout", key, "-out", csr)
    dates = (["-startdate", "20200101000000Z", "-enddate",
              "20200102000000Z"] if expired else ["-days", "2"])
    openssl("ca", "-batch", "-notext", "-config", ca["cnf"], "-cert",
            ca["cert"], "-keyfile", ca["key"], "-in", csr, "-out", cert,
            *dates)
    return cert, key


def fingerprint(cert: str) -> str:
    """sha256:HEX of the certificate's DER, as openssl computes it."""
    p = subprocess.run(["openssl", "x509", "-in", cert, "-noout",
                        "-fingerprint", "-sha256"], check=True,
                       capture_output=True, timeout=30, text=True)
    m = re.search(r"=([0-9A-F:]+)\s*$", p.stdout)
    check(m, f"openssl fingerprint output {p.stdout!r}")
    return "sha256:" + m.group(1).replace(":", "").lower()


# ------------------------------------------------------------ gateways

def hop_gateway(ctx, ca: dict[str, str] | None, expired: bool = False,
                **conf: str) -> mxlib.Gateway:
    """The next hop: a second mxgate for example.test, with a certificate
    signed by ca (STARTTLS offered) or, ca None, without TLS."""
    settings = {}
    if ca is not None:
        settings = {"tls_cert": "cert.pem", "tls_key": "key.pem"}
    settings.update(conf)
    gw = ctx.gateway(start=False, config=settings)
    if ca is not None:
        gw.cert, _ = make_leaf(ca, gw.dir, expired)
    gw.start()
    return gw


def front_gateway(ctx, port: int, **conf: str) -> mxlib.Gateway:
    """The gateway under test: example.test goes to smtp:127.0.0.1:port;
    a deferred message waits an hour (it stays for `queue show`)."""
    settings = {"next_hop": f"smtp:127.0.0.1:{port}", "retry_min": "1h",
                "smtp_connect_timeout": "5s", "smtp_timeout": "10s",
                "relayhost": f"127.0.0.1:{mxlib.free_port()}"}
    settings.update(conf)
    return ctx.gateway(config=settings)


def send_one(gw, subject: str) -> str:
    return ctllib.send(gw, ["alice@example.test"],
                       mxlib.make_message(subject))


def delivered(front, hop, qid: str) -> dict[str, str]:
    """The message reached the hop's Maildir; front's event=delivered."""
    hop.wait_maildir("example.test", "alice", timeout_s=WAIT)
    return front.wait_event("delivered", qid=qid, timeout_s=WAIT)


def deferred(ctx, front, hop, qid: str, already: int = 0
             ) -> tuple[dict[str, str], str]:
    """Deferred with 4.7.5, nothing (more) at the hop: (event, `queue
    show`)."""
    ev = front.wait_event("deferred", qid=qid, timeout_s=WAIT)
    check_eq(ev.get("status"), "4.7.5", f"deferral status: {ev['line']}")
    show = ctllib.wait_attempted(ctx, front, qid, timeout_s=WAIT)
    check_eq(len(hop.maildir_files("example.test", "alice")), already,
             "messages at the hop (none may come without TLS)")
    return ev, show


def last_error(show: str) -> str:
    m = re.search(r"^last error: \S+Z (.*)$", show, re.M)
    check(m, f"no last error in queue show: {show!r}")
    return m.group(1)


def q(ev: dict[str, str], key: str) -> str:
    """A value of a log line, quoted (key="a b") or not."""
    m = re.search(r'(?:^| )%s=(?:"((?:[^"\\]|\\.)*)"|(\S*))' % key,
                  ev["line"])
    return "" if m is None else m.group(1) if m.group(1) is not None \
        else m.group(2)


def tls_event(front, **kv: str) -> dict[str, str]:
    return front.wait_event("client_tls", timeout_s=WAIT, **kv)


# ------------------------------------------------------------ levels

def test_may_to_hop_without_tls_delivers_in_clear(ctx):
    hop = hop_gateway(ctx, None)
    front = front_gateway(ctx, hop.port)
    qid = send_one(front, "may, no tls")
    ev = delivered(front, hop, qid)
    check_eq((ev.get("tls_required"), ev.get("tls")), ("may", "none"),
             f"delivered line: {ev['line']}")
    t = tls_event(front, encrypted="no")
    check_eq((t.get("required"), q(t, "reason")),
             ("may", "STARTTLS not offered"), f"client_tls: {t['line']}")


def test_encrypt_to_hop_without_tls_defers(ctx):
    hop = hop_gateway(ctx, None)
    front = front_gateway(ctx, hop.port, next_hop_tls="encrypt")
    qid = send_one(front, "encrypt, no tls")
    ev, show = deferred(ctx, front, hop, qid)
    check("did not offer STARTTLS" in q(ev, "reply"),
          f"deferral reason: {ev['line']}")
    check_eq((ev.get("tls_required"), ev.get("tls")), ("encrypt", "none"),
             f"deferred line: {ev['line']}")
    err = last_error(show)
    check(err.startswith("454 4.7.5 TLS required (encrypt): ") and
          "did not offer STARTTLS" in err and
          err.endswith("(tls_required=encrypt tls=none)"),
          f"queue show last error: {err!r}")
    front.wait_event("client_tls_fail", action="defer", required="encrypt")


def test_encrypt_to_hop_with_tls_delivers_unchecked(ctx):
    ca = make_ca(os.path.join(ctx.tmpdir, "ca"), "Test Hop CA")
    hop = hop_gateway(ctx, ca)
    front = front_gateway(ctx, hop.port, next_hop_tls="encrypt")
    qid = send_one(front, "encrypt")
    ev = delivered(front, hop, qid)
    check_eq((ev.get("tls_required"), ev.get("tls_verified")),
             ("encrypt", "unchecked"), f"delivered line: {ev['line']}")
    check(re.fullmatch(r"TLSv1\.[23]", ev.get("tls", "")),
          f"negotiated version: {ev['line']}")
    t = tls_event(front, encrypted="yes")
    check_eq(t.get("sha256"), fingerprint(hop.cert)[7:],
             f"client_tls fingerprint: {t['line']}")
    check_eq(q(t, "subject"), f"CN={HOP_NAME}", f"subject: {t['line']}")


def test_none_never_starts_tls(ctx):
    ca = make_ca(os.path.join(ctx.tmpdir, "ca"), "Test Hop CA")
    hop = hop_gateway(ctx, ca)
    front = front_gateway(ctx, hop.port, next_hop_tls="none")
    qid = send_one(front, "none")
    ev = delivered(front, hop, qid)
    check_eq((ev.get("tls_required"), ev.get("tls")), ("none", "none"),
             f"delivered line: {ev['line']}")
    t = tls_event(front, encrypted="no")
    check_eq(q(t, "reason"), "TLS not wanted (none)", t["line"])


@mxlib.params(["encrypt", "may"], ids=["encrypt", "may"])
def test_handshake_failure(ctx, param):
    """The hop speaks TLS 1.3 only, we TLS 1.2 only: the handshake fails.
    encrypt defers; may tries once more in clear."""
    ca = make_ca(os.path.join(ctx.tmpdir, "ca"), "Test Hop CA")
    hop = hop_gateway(ctx, ca, tls_protocols="TLSv1.3")
    front = front_gateway(ctx, hop.port, next_hop_tls=param,
                          tls_protocols="TLSv1.2")
    qid = send_one(front, f"handshake {param}")
    if param == "encrypt":
        ev, show = deferred(ctx, front, hop, qid)
        check("TLS handshake failed: " in q(ev, "reply"), ev["line"])
        check("TLS handshake failed: " in last_error(show), show)
        f = front.wait_event("client_tls_fail", action="defer")
    else:
        ev = delivered(front, hop, qid)
        check_eq(ev.get("tls"), "none", f"delivered line: {ev['line']}")
        f = front.wait_event("client_tls_fail", action="plaintext")
        t = tls_event(front, encrypted="no")
        check_eq(q(t, "reason"), "TLS handshake failed before", t["line"])
    check("TLS handshake failed: " in q(f, "reason"), f["line"])


VERIFY_OK = {
    "by_name": {"next_hop_tls_name": HOP_NAME},
    "by_ip": {},           # the host in next_hop: 127.0.0.1, an IP SAN
}


@mxlib.params(list(VERIFY_OK), ids=list(VERIFY_OK))
def test_verify_right_ca_delivers(ctx, param):
    ca = make_ca(os.path.join(ctx.tmpdir, "ca"), "Test Hop CA")
    hop = hop_gateway(ctx, ca)
    front = front_gateway(ctx, hop.port, next_hop_tls="verify",
                          next_hop_tls_ca_file=ca["cert"],
                          **VERIFY_OK[param])
    qid = send_one(front, "verify")
    ev = delivered(front, hop, qid)
    check_eq((ev.get("tls_required"), ev.get("tls_verified")),
             ("verify", "ca"), f"delivered line: {ev['line']}")
    tls_event(front, encrypted="yes", verified="ca", required="verify")


VERIFY_BAD = {
    "wrong_ca": ({}, False, "unable to get local issuer certificate"),
    "wrong_name": ({"next_hop_tls_name": "other.example.test"}, False,
                   "hostname mismatch"),
    "expired": ({"next_hop_tls_name": HOP_NAME}, True,
                "certificate has expired"),
}


@mxlib.params(list(VERIFY_BAD), ids=list(VERIFY_BAD))
def test_verify_bad_certificate_defers(ctx, param):
    conf, expired, reason = VERIFY_BAD[param]
    ca = make_ca(os.path.join(ctx.tmpdir, "ca"), "Test Hop CA")
    other = make_ca(os.path.join(ctx.tmpdir, "other"), "Other CA")
    hop = hop_gateway(ctx, ca, expired=expired)
    trusted = other if param == "wrong_ca" else ca
    front = front_gateway(ctx, hop.port, next_hop_tls="verify",
                          next_hop_tls_ca_file=trusted["cert"], **conf)
    qid = send_one(front, f"verify {param}")
    ev, show = deferred(ctx, front, hop, qid)
    check(reason in q(ev, "reply"), f"deferral reason: {ev['line']}")
    check_eq((ev.get("tls_required"), ev.get("tls_verified")),
             ("verify", "fail"), f"deferred line: {ev['line']}")
    err = last_error(show)
    check(err.startswith("454 4.7.5 TLS required (verify): certificate of ")
          and reason in err, f"queue show last error: {err!r}")
    t = tls_event(front, verified="fail")
    check_eq(q(t, "reason"), reason, f"client_tls: {t['line']}")


def test_reload_names_a_new_ca_file(ctx):
    """A CA file first named by a reload is loaded on a job, then used;
    one that cannot be loaded defers with the reason."""
    ca = make_ca(os.path.join(ctx.tmpdir, "ca"), "Test Hop CA")
    other = make_ca(os.path.join(ctx.tmpdir, "other"), "Other CA")
    hop = hop_gateway(ctx, ca)
    front = front_gateway(ctx, hop.port, next_hop_tls="verify",
                          next_hop_tls_ca_file=other["cert"])
    missing = os.path.join(ctx.tmpdir, "no-such-ca.pem")
    front.settings["next_hop_tls_ca_file"] = missing
    front.write_config()
    mark = front.reload()
    front.wait_event("reload", since=mark, result="ok")
    qid = send_one(front, "missing ca")
    ev, show = deferred(ctx, front, hop, qid)
    check(f"CA file {missing}: cannot load the CA file" in q(ev, "reply"),
          ev["line"])
    check_eq((ev.get("tls_required"), ev.get("tls")), ("verify", "none"),
             f"deferred line: {ev['line']}")
    copy = os.path.join(ctx.tmpdir, "hop-ca-copy.pem")
    with open(ca["cert"], "rb") as f, open(copy, "wb") as g:
        g.write(f.read())
    front.settings["next_hop_tls_ca_file"] = copy
    front.write_config()
    mark = front.reload()
    front.wait_event("reload", since=mark, result="ok")
    qid = send_one(front, "new ca")
    ev = delivered(front, hop, qid)
    check_eq(ev.get("tls_verified"), "ca", f"delivered line: {ev['line']}")


def test_pinned_fingerprint_delivers(ctx):
    ca = make_ca(os.path.join(ctx.tmpdir, "ca"), "Test Hop CA")
    hop = hop_gateway(ctx, ca)
    pin = fingerprint(hop.cert)
    other = "sha256:" + "ab" * 32
    front = front_gateway(ctx, hop.port, next_hop_tls="verify",
                          next_hop_tls_fingerprint=f"{other}, {pin}")
    qid = send_one(front, "pinned")
    ev = delivered(front, hop, qid)
    check_eq(ev.get("tls_verified"), "pin", f"delivered line: {ev['line']}")


def test_other_fingerprint_defers(ctx):
    ca = make_ca(os.path.join(ctx.tmpdir, "ca"), "Test Hop CA")
    hop = hop_gateway(ctx, ca)
    front = front_gateway(ctx, hop.port, next_hop_tls="verify",
                          next_hop_tls_fingerprint="sha256:" + "ab" * 32)
    qid = send_one(front, "not pinned")
    ev, show = deferred(ctx, front, hop, qid)
    check("fingerprint not pinned" in q(ev, "reply"),
          f"deferral reason: {ev['line']}")
    check("fingerprint not pinned" in last_error(show), show)


def test_reload_to_encrypt_never_reuses_a_clear_connection(ctx):
    """A connection made under may stays idle for reuse (5 s); after a
    reload to encrypt the next message must not ride it in clear."""
    hop = hop_gateway(ctx, None)
    front = front_gateway(ctx, hop.port)
    first = send_one(front, "before reload")
    delivered(front, hop, first)
    front.settings["next_hop_tls"] = "encrypt"
    front.write_config()
    mark = front.reload()
    front.wait_event("reload", since=mark, result="ok")
    qid = send_one(front, "after reload")
    ev, _ = deferred(ctx, front, hop, qid, already=1)
    check("did not offer STARTTLS" in q(ev, "reply"), ev["line"])


# ------------------------------------------------------------ a MITM

class StripProxy:
    """A TCP proxy on 127.0.0.1 that hides STARTTLS in the server's EHLO
    reply (each "250-STARTTLS" or "250 STARTTLS" line renamed)."""

    def __init__(self, upstream: int):
        self.upstream = upstream
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.stripped = 0
        self.threads: list[threading.Thread] = []
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.upstream), 10)
            for src, dst, strip in ((c, u, False), (u, c, True)):
                t = threading.Thread(target=self._pump,
                                     args=(src, dst, strip), daemon=True)
                t.start()
                self.threads.append(t)

    def _pump(self, src, dst, strip: bool) -> None:
        buf = b""
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if not strip:
                    dst.sendall(data)
                    continue
                buf += data
                lines = buf.split(b"\n")
                buf = lines.pop()
                out = []
                for ln in lines:
                    if re.match(rb"250[- ]STARTTLS\r?$", ln, re.I):
                        ln = ln[:4] + b"XSTRIPPED\r"
                        self.stripped += 1
                    out.append(ln + b"\n")
                dst.sendall(b"".join(out))
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


@mxlib.params(["encrypt", "may"], ids=["encrypt", "may"])
def test_starttls_stripped_by_mitm(ctx, param):
    ca = make_ca(os.path.join(ctx.tmpdir, "ca"), "Test Hop CA")
    hop = hop_gateway(ctx, ca)
    proxy = StripProxy(hop.port)
    try:
        front = front_gateway(ctx, proxy.port, next_hop_tls=param)
        qid = send_one(front, f"mitm {param}")
        if param == "encrypt":
            ev, show = deferred(ctx, front, hop, qid)
            check("did not offer STARTTLS" in q(ev, "reply"),
                  f"deferral reason: {ev['line']}")
            check("did not offer STARTTLS" in last_error(show), show)
        else:
            ev = delivered(front, hop, qid)
            check_eq(ev.get("tls"), "none", f"delivered: {ev['line']}")
            t = tls_event(front, encrypted="no")
            check_eq(q(t, "reason"), "STARTTLS not offered", t["line"])
        check(proxy.stripped >= 1, "the proxy saw no STARTTLS to strip")
    finally:
        proxy.close()


class SniHop:
    """A one-connection SMTP next hop in Python that offers STARTTLS and
    records the SNI name the client sent (None: none)."""

    def __init__(self, cert: str, key: str):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.sni_callback = self._sni
        self.sni: list[str | None] = []
        self.got_data = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _sni(self, sslobj, name, ctx) -> None:
        self.sni.append(name)

    def _serve(self) -> None:
        try:
            c, _ = self.sock.accept()
        except OSError:
            return
        c.settimeout(20)
        f = c.makefile("rb")
        c.sendall(b"220 sni.test ESMTP\r\n")
        try:
            while (line := f.readline()):
                cmd = line.strip().upper()
                if cmd.startswith(b"EHLO"):
                    c.sendall(b"250-sni.test\r\n250 STARTTLS\r\n")
                elif cmd == b"STARTTLS":
                    c.sendall(b"220 go ahead\r\n")
                    c = self.ctx.wrap_socket(c, server_side=True)
                    f = c.makefile("rb")
                elif cmd == b"DATA":
                    c.sendall(b"354 go\r\n")
                    while f.readline() not in (b".\r\n", b""):
                        pass
                    c.sendall(b"250 2.0.0 taken\r\n")
                    self.got_data.set()
                elif cmd == b"QUIT":
                    c.sendall(b"221 bye\r\n")
                    break
                else:
                    c.sendall(b"250 2.0.0 ok\r\n")
        except (OSError, ssl.SSLError):
            pass
        finally:
            c.close()

    def close(self) -> None:
        self.sock.close()


@mxlib.params(["name", "ip"], ids=["name", "ip"])
def test_sni(ctx, param):
    """SNI carries next_hop_tls_name; an IP next hop gets none (RFC 6066
    3)."""
    ca = make_ca(os.path.join(ctx.tmpdir, "ca"), "Test Hop CA")
    cert, key = make_leaf(ca, ctx.tmpdir)
    hop = SniHop(cert, key)
    try:
        conf = {"next_hop_tls": "encrypt"}
        if param == "name":
            conf["next_hop_tls_name"] = HOP_NAME
        front = front_gateway(ctx, hop.port, **conf)
        qid = send_one(front, f"sni {param}")
        check(hop.got_data.wait(WAIT), "the Python hop got no message")
        ev = front.wait_event("delivered", qid=qid, timeout_s=WAIT)
        check(re.fullmatch(r"TLSv1\.[23]", ev.get("tls", "")), ev["line"])
        check_eq(hop.sni, [HOP_NAME if param == "name" else None],
                 "SNI names the hop saw")
    finally:
        hop.close()


# ------------------------------------------------------------ smarthost

BOUNCE = {"unknown_recipient": "bounce", "harvest_exempt": "127.0.0.0/8"}


def hash_line(binary: str, user: str, password: str) -> str:
    p = subprocess.run([os.path.abspath(binary), "passwd", user],
                       input=(password + "\n").encode(), capture_output=True,
                       timeout=30)
    check_eq(p.returncode, 0, f"mxgate passwd exit status ({p.stderr!r})")
    return p.stdout.decode()


def relay_gateway(ctx) -> mxlib.Gateway:
    """The provider's relay: mxgate for remote.test with submission
    (STARTTLS, then AUTH) and user alice."""
    ca = make_ca(os.path.join(ctx.tmpdir, "relayca"), "Relay CA")
    sub = mxlib.free_port()
    gw = ctx.gateway(start=False, users=["x@remote.test"], config={
        "domains": "remote.test", "tls_cert": "cert.pem",
        "tls_key": "key.pem", "submission_listen": f"127.0.0.1:{sub}",
        "passwd_file": "passwd"})
    make_leaf(ca, gw.dir)
    with open(os.path.join(gw.dir, "passwd"), "w") as f:
        f.write(hash_line(gw.binary, "alice", PASSWORD))
    gw.sub_port = sub
    gw.start()
    gw.wait_log(r"event=listening addr=127\.0\.0\.1:%d listener="
                r"submission" % sub, since=gw.run_mark)
    return gw


def auth_front(ctx, relay, password: str, mode: int = 0o600
               ) -> mxlib.Gateway:
    path = os.path.join(ctx.tmpdir, "relay_auth")
    with open(path, "w") as f:
        f.write(f"# smarthost logins\n127.0.0.1:{relay.sub_port} alice "
                f"{password}\n")
    os.chmod(path, mode)
    conf = {"relayhost": f"127.0.0.1:{relay.sub_port}",
            "relayhost_auth_file": path, "retry_min": "1h",
            "smtp_timeout": "10s"}
    conf.update(BOUNCE)
    return ctx.gateway(config=conf)


def send_ndr_cause(front) -> str:
    """A message to an unknown user from x@remote.test: an NDR is due."""
    return ctllib.send(front, ["nobody@example.test"],
                       mxlib.make_message("ndr cause",
                                          sender="x@remote.test",
                                          to="nobody@example.test"))


def no_password_in_logs(*gws, password: str = PASSWORD) -> None:
    secrets = [password, base64.b64encode(password.encode()).decode(),
               base64.b64encode(f"\0alice\0{password}".encode()).decode()]
    for gw in gws:
        text = gw.log_text()
        for s in secrets:
            check(s not in text, f"a password ({s!r}) in {gw.log_path}")


def test_smarthost_auth_good_delivers_report(ctx):
    relay = relay_gateway(ctx)
    front = auth_front(ctx, relay, PASSWORD)
    qid = send_ndr_cause(front)
    ev = front.wait_event("dsn", qid=qid, timeout_s=WAIT)
    check("dsn_qid" in ev, f"no report queued: {ev['line']}")
    relay.wait_maildir("remote.test", "x", timeout_s=WAIT)
    d = front.wait_event("delivered", qid=ev["dsn_qid"], timeout_s=WAIT)
    check_eq(d.get("tls_required"), "encrypt",
             f"auth implies encrypt: {d['line']}")
    check(re.fullmatch(r"TLSv1\.[23]", d.get("tls", "")), d["line"])
    a = front.wait_event("client_auth", result="ok")
    check_eq((a.get("user"), a.get("mech")), ("alice", "PLAIN"), a["line"])
    relay.wait_event("auth", result="ok", user="alice")
    no_password_in_logs(front, relay)


def test_smarthost_auth_bad_defers_report(ctx):
    relay = relay_gateway(ctx)
    wrong = "not the password"
    front = auth_front(ctx, relay, wrong)
    qid = send_ndr_cause(front)
    ev = front.wait_event("dsn", qid=qid, timeout_s=WAIT)
    check("dsn_qid" in ev, f"no report queued: {ev['line']}")
    a = front.wait_event("client_auth", result="fail", timeout_s=WAIT)
    check_eq(q(a, "reply"), "535 5.7.8 Authentication credentials invalid",
             f"the relay's reply: {a['line']}")
    d = front.wait_event("deferred", qid=ev["dsn_qid"], timeout_s=WAIT)
    check_eq(d.get("status"), "4.7.8", f"deferred, not returned: {d['line']}")
    check("535 5.7.8 Authentication credentials invalid" in
          q(d, "reply"), d["line"])
    show = ctllib.wait_attempted(ctx, front, ev["dsn_qid"], timeout_s=WAIT)
    check(last_error(show).startswith("454 4.7.8 AUTH as alice at "), show)
    check(not front.events("failed", qid=ev["dsn_qid"]), "report failed")
    check_eq(relay.maildir_files("remote.test", "x"), [], "report arrived")
    no_password_in_logs(front, relay, password=wrong)


# ------------------------------------------------------------ check-config

def test_check_config_refuses_readable_auth_file(ctx):
    path = os.path.join(ctx.tmpdir, "relay_auth")
    with open(path, "w") as f:
        f.write("127.0.0.1:2587 alice pw\n")
    os.chmod(path, 0o640)
    gw = ctx.gateway(start=False, config={
        "relayhost": "127.0.0.1:2587", "relayhost_auth_file": path})
    gw.port = mxlib.free_port()
    gw.write_config()
    _, err = ctllib.mx(ctx, gw, "check-config", rc=1)
    check("relayhost_auth_file: mode 0640 lets group or others at the "
          "passwords; chmod 600 it" in err, f"check-config: {err!r}")
    check("alice pw" not in err, "a password in check-config's output")
    os.chmod(path, 0o600)
    out, _ = ctllib.mx(ctx, gw, "check-config")
    check("1 relayhost logins" in out, f"check-config: {out!r}")


CONF_BAD = {
    "encrypt_maildir": ({"next_hop_tls": "encrypt"},
                        "domain example.test: next_hop_tls = encrypt needs "
                        "an smtp: or lmtp:HOST:PORT next hop"),
    "relay_tls_no_relay": ({"relayhost_tls": "verify"},
                           "relayhost_tls = encrypt or verify needs "
                           "relayhost"),
    "bad_level": ({"next_hop_tls": "secure"},
                  "expected none, may, encrypt or verify"),
    "bad_pin": ({"next_hop_tls_fingerprint": "sha256:abcd"},
                "expected sha256:HEX (64 hex digits)"),
}


@mxlib.params(list(CONF_BAD), ids=list(CONF_BAD))
def test_check_config_outbound_errors(ctx, param):
    conf, want = CONF_BAD[param]
    gw = ctx.gateway(start=False, config=conf)
    gw.port = mxlib.free_port()
    gw.write_config()
    _, err = ctllib.mx(ctx, gw, "check-config", rc=1)
    check(want in err, f"check-config: {err!r}")
