"""
test_tls_auth.py - STARTTLS (RFC 3207) and authenticated submission
(RFC 4954) end to end, issue 5 items 1 and 2.
Covers: EHLO keywords before and after TLS, on each listener; the
Received header's protocol, TLS version and cipher, and the authenticated
sender; plaintext pipelined behind STARTTLS never read (CVE-2011-0411);
STARTTLS twice, in a transaction, with an argument, without a
certificate; a failed handshake ends only its session; tls_required;
AUTH before TLS, PLAIN and LOGIN (smtplib, a raw client and swaks), relay
for an authenticated user only, a wrong password (delayed 535, a harvest
signal), bad base64, cancel, unknown mechanism, overlong lines, AUTH twice
or in a transaction; a passwd_file reload; `mxgate passwd`; check-config
of the new keys.
The test certificate is made here with the openssl CLI, never checked in.
"""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import os
import re
import shutil
import smtplib
import ssl
import subprocess
import time

import mxlib
from mxlib import check, check_eq

PASSWORD = "correct horse battery"
USER = "alice"
USER2 = "bob@example.test"
PASSWORD2 = "s3cr3t:with colon"
FAIL_DELAY_S = 0.9          # the server waits 1 s before a 535
STARTTLS_REPLY = "220 2.0.0 Ready to start TLS"
TLS_REQUIRED = "530 5.7.0 Must issue a STARTTLS command first"
AUTH_REQUIRED = "530 5.7.0 Authentication required"
AUTH_OK = "235 2.7.0 Authentication successful"
AUTH_FAILED = "535 5.7.8 Authentication credentials invalid"
AUTH_NEED_TLS = ("538 5.7.11 Encryption required for requested "
                 "authentication mechanism")


# ------------------------------------------------------------ helpers

def make_cert(folder: str) -> str:
    """A self-signed EC certificate for mx.example.test: cert.pem, key.pem."""
    cert = os.path.join(folder, "cert.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
         "-subj", f"/CN={mxlib.HOSTNAME}",
         "-addext", f"subjectAltName=DNS:{mxlib.HOSTNAME},IP:127.0.0.1",
         "-keyout", os.path.join(folder, "key.pem"), "-out", cert],
        check=True, capture_output=True, timeout=30)
    return cert


def hash_line(binary: str, user: str, password: str) -> str:
    """`mxgate passwd USER` with the password on stdin (not a tty)."""
    p = subprocess.run([os.path.abspath(binary), "passwd", user],
                       input=(password + "\n").encode(), capture_output=True,
                       timeout=30)
    check_eq(p.returncode, 0, f"mxgate passwd exit status ({p.stderr!r})")
    return p.stdout.decode()


def tls_gateway(gw_factory, submission: bool = True, users_file: bool = True,
                files: dict[str, str] | None = None,
                **conf: str) -> mxlib.Gateway:
    """A gateway with a certificate, a passwd file (alice, bob@...) and,
    unless told otherwise, a submission listener (gw.sub_port); files:
    more files (name: text) written in its folder before it starts."""
    settings = {"tls_cert": "cert.pem", "tls_key": "key.pem"}
    sub_port = mxlib.free_port() if submission else None
    if submission:
        settings["submission_listen"] = f"127.0.0.1:{sub_port}"
    if users_file:
        settings["passwd_file"] = "passwd"
    settings.update(conf)
    gw = gw_factory(start=False, config=settings)
    gw.cert = make_cert(gw.dir)
    gw.sub_port = sub_port
    if users_file:
        with open(os.path.join(gw.dir, "passwd"), "w") as f:
            f.write("# AUTH users\n" + hash_line(gw.binary, USER, PASSWORD)
                    + hash_line(gw.binary, USER2, PASSWORD2))
    for name, text in (files or {}).items():
        with open(os.path.join(gw.dir, name), "w") as f:
            f.write(text)
    gw.start()
    if submission:
        gw.wait_log(r"event=listening addr=127\.0\.0\.1:%d listener="
                    r"submission" % sub_port, since=gw.run_mark)
    return gw


def client_context(gw) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=gw.cert)
    ctx.check_hostname = True
    return ctx


def starttls(c: mxlib.Client, gw) -> None:
    """STARTTLS on a raw client, then the handshake (certificate checked)."""
    c.expect(STARTTLS_REPLY, "STARTTLS")
    check_eq(c.buf, b"", "bytes after the 220 to STARTTLS")
    c.sock = client_context(gw).wrap_socket(c.sock,
                                            server_hostname=mxlib.HOSTNAME)


def raw(gw, port: int | None = None, bind: str | None = None,
        tls: bool = False) -> mxlib.Client:
    """Greeted and EHLO'd raw client; with tls, EHLO again under TLS."""
    c = mxlib.Client(port or gw.port, bind=bind)
    try:
        c.greet()
        c.ehlo()
        if tls:
            starttls(c, gw)
            c.ehlo()
    except BaseException:
        c.close()
        raise
    return c


def b64(s: str | bytes) -> str:
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def plain(user: str, password: str, authzid: str = "") -> str:
    return b64(f"{authzid}\0{user}\0{password}")


def received_of(gw, local: str) -> str:
    files = gw.wait_maildir("example.test", local)
    with open(files[-1], "rb") as f:
        return mxlib.split_received(f.read())[0].decode()


# ------------------------------------------------------------ STARTTLS

def test_starttls_received_header(gw_factory):
    gw = tls_gateway(gw_factory, submission=False, users_file=False)
    s = mxlib.smtp_client(gw)
    try:
        s.ehlo()
        check(s.has_extn("starttls"), f"no STARTTLS in {s.esmtp_features}")
        check(not s.has_extn("auth"), "AUTH offered on port 25")
        s.starttls(context=client_context(gw))
        s.ehlo()
        check(not s.has_extn("starttls"), "STARTTLS offered under TLS")
        check(not s.has_extn("auth"), "AUTH on port 25 without "
              "auth_on_smtp")
        version = s.sock.version()
        cipher = s.sock.cipher()[0]
        s.sendmail("x@remote.test", ["alice@example.test"],
                   mxlib.make_message("tls"))
        s.quit()
    finally:
        s.close()
    hdr = received_of(gw, "alice")
    check(f"with ESMTPS ({version} {cipher})" in hdr,
          f"Received lacks ESMTPS ({version} {cipher}): {hdr!r}")
    check("Authenticated" not in hdr, f"not authenticated: {hdr!r}")
    ev = gw.wait_event("starttls", result="ok")
    check_eq((ev.get("version"), ev.get("cipher")), (version, cipher),
             "event=starttls version and cipher")


def test_plain_received_header_unchanged(gw):
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        c.expect("250 2.1.5 Ok", "RCPT TO:<bob@example.test>")
        c.expect("354 *", "DATA")
        c.send(mxlib.make_message("plain") + b".\r\n")
        c.expect("250 2.0.0 Ok: queued as *")
    hdr = received_of(gw, "bob")
    check(re.search(r"with ESMTP id [0-9A-F]{16}\r?\n", hdr),
          f"plain Received: {hdr!r}")


def test_starttls_injection_discarded(gw_factory):
    """CVE-2011-0411: a NOOP pipelined behind STARTTLS is never answered,
    neither in clear nor under TLS."""
    gw = tls_gateway(gw_factory, submission=False, users_file=False)
    with mxlib.Client(gw.port) as c:
        c.greet()
        c.ehlo()
        c.send(b"STARTTLS\r\nNOOP\r\n")
        c.expect(STARTTLS_REPLY)
        check_eq(c.buf, b"", "bytes after the 220 (a NOOP reply?)")
        c.sock = client_context(gw).wrap_socket(
            c.sock, server_hostname=mxlib.HOSTNAME)
        c.expect_silence(0.7)
        r = c.cmd("EHLO client.test")
        check_eq(r.lines[0], f"250-{mxlib.HOSTNAME}", "EHLO under TLS")
        c.expect("250 2.0.0 Ok", "NOOP")
    gw.wait_event("starttls_pipelined", bytes="6", result="dropped")


def test_starttls_resets_session(gw_factory):
    gw = tls_gateway(gw_factory, submission=False, users_file=False)
    with raw(gw) as c:
        starttls(c, gw)
        c.expect("503 5.5.1 Error: send HELO/EHLO first",
                 "MAIL FROM:<x@remote.test>")
        c.ehlo()
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")


def test_starttls_twice_in_transaction_with_argument(gw_factory):
    gw = tls_gateway(gw_factory, submission=False, users_file=False)
    with raw(gw, tls=True) as c:
        c.expect("503 5.5.1 *", "STARTTLS")
        c.expect("250 2.0.0 Ok", "NOOP")
    with raw(gw) as c:
        c.expect("501 5.5.4 *", "STARTTLS now")
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        c.expect("503 5.5.1 Error: MAIL transaction in progress", "STARTTLS")
        c.expect("250 2.1.5 Ok", "RCPT TO:<alice@example.test>")
        c.expect("503 5.5.1 *", "STARTTLS")
        c.expect("250 2.0.0 Ok", "RSET")
        starttls(c, gw)
        c.ehlo()


def test_starttls_without_certificate(gw):
    with mxlib.session(gw, helo=None) as c:
        r = c.cmd("EHLO client.test")
        check("250-STARTTLS" not in r.lines, f"STARTTLS offered: {r}")
        c.expect("502 5.5.1 *", "STARTTLS")
        c.expect("250 2.0.0 Ok", "NOOP")


def test_failed_handshake_ends_only_its_session(gw_factory):
    gw = tls_gateway(gw_factory, submission=False, users_file=False)
    with raw(gw) as other, mxlib.Client(gw.port) as bad:
        bad.greet()
        bad.ehlo()
        bad.expect(STARTTLS_REPLY, "STARTTLS")
        bad.send(b"this is not a TLS ClientHello\r\n" * 4)
        deadline = time.monotonic() + 30  # a bound, not the claim
        while not bad.closed and time.monotonic() < deadline:
            try:
                bad._fill(deadline)      # a TLS alert may come first
            except OSError:
                break
        check(bad.closed, "the failed session is still open")
        ev = gw.wait_event("starttls", result="fail")
        check(ev.get("reason"), f"no reason logged: {ev['line']}")
        other.expect("250 2.0.0 Ok", "NOOP")
        starttls(other, gw)
        other.ehlo()
        other.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
    gw.check_alive()


def test_tls_required(gw_factory):
    gw = tls_gateway(gw_factory, submission=False, users_file=False,
                     tls_required="yes")
    with raw(gw) as c:
        c.expect(TLS_REQUIRED, "MAIL FROM:<x@remote.test>")
        c.expect("503 5.5.1 *", "RCPT TO:<alice@example.test>")
        starttls(c, gw)
        c.ehlo()
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        c.expect("250 2.1.5 Ok", "RCPT TO:<alice@example.test>")


def test_tls_required_per_listener(gw_factory):
    """tls_required_listen: TLS is required there only; the listen
    address (a public MX must not require TLS, RFC 3207) stays open."""
    tls_port = mxlib.free_port()
    gw = tls_gateway(gw_factory, submission=False, users_file=False,
                     tls_required_listen=f"127.0.0.1:{tls_port}")
    gw.wait_log(r"event=listening addr=127\.0\.0\.1:%d "
                r"listener=smtp_tls_required" % tls_port, since=gw.run_mark)
    with raw(gw, port=tls_port) as c:
        c.expect(TLS_REQUIRED, "MAIL FROM:<x@remote.test>")
        starttls(c, gw)
        c.ehlo()
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        c.expect("250 2.1.5 Ok", "RCPT TO:<alice@example.test>")
    with raw(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")


# ------------------------------------------------------------ AUTH

def test_auth_before_tls_and_mail_without_auth(gw_factory):
    gw = tls_gateway(gw_factory)
    with raw(gw, port=gw.sub_port) as c:
        r = c.cmd("EHLO client.test")
        check("250-STARTTLS" in r.lines, f"no STARTTLS: {r}")
        check(not any(ln.startswith("250-AUTH") for ln in r.lines),
              f"AUTH offered before TLS: {r}")
        c.expect(AUTH_NEED_TLS, "AUTH PLAIN " + plain(USER, PASSWORD))
        c.expect(AUTH_REQUIRED, "MAIL FROM:<alice@example.test>")
        starttls(c, gw)
        r = c.ehlo()
        check("250-AUTH PLAIN LOGIN" in r.lines, f"no AUTH under TLS: {r}")
        c.expect(AUTH_REQUIRED, "MAIL FROM:<alice@example.test>")
    check(not gw.events("auth", result="ok"), "an auth succeeded")


AUTH_WAYS = {
    "plain_initial": [("AUTH PLAIN " + plain(USER, PASSWORD), AUTH_OK)],
    "plain_authzid": [("AUTH PLAIN " + plain(USER, PASSWORD, USER),
                       AUTH_OK)],
    "plain_challenge": [("AUTH PLAIN", "334 "),
                        (plain(USER, PASSWORD), AUTH_OK)],
    "login": [("AUTH LOGIN", "334 VXNlcm5hbWU6"),
              (b64(USER), "334 UGFzc3dvcmQ6"), (b64(PASSWORD), AUTH_OK)],
    "login_initial": [("AUTH login " + b64(USER), "334 UGFzc3dvcmQ6"),
                      (b64(PASSWORD), AUTH_OK)],
}


@mxlib.params(list(AUTH_WAYS), ids=list(AUTH_WAYS))
def test_auth_good_relays(gw_factory, param):
    gw = tls_gateway(gw_factory)
    with raw(gw, port=gw.sub_port, tls=True) as c:
        for line, want in AUTH_WAYS[param]:
            c.expect(want, line)
        c.expect("503 5.5.1 Error: already authenticated",
                 "AUTH PLAIN " + plain(USER, PASSWORD))
        c.expect("250 2.1.0 Ok", "MAIL FROM:<alice@example.test>")
        c.expect("250 2.1.5 Ok", "RCPT TO:<someone@elsewhere.test>")
        c.expect("250 2.1.5 Ok", "RCPT TO:<bob@example.test>")
        c.expect("503 5.5.1 *", "AUTH LOGIN")
        c.expect("354 *", "DATA")
        c.send(mxlib.make_message("auth", sender="alice@example.test",
                                  to="bob@example.test") + b".\r\n")
        c.expect("250 2.0.0 Ok: queued as *")
    ev = gw.wait_event("auth", result="ok")
    check_eq(ev.get("user"), USER, "event=auth user")
    hdr = received_of(gw, "bob")
    check(re.search(r"with ESMTPSA \(TLSv1\.[23] \S+\)\r?\n\t"
                    r"\(Authenticated sender: alice\) id ", hdr),
          f"Received: {hdr!r}")


def test_auth_smtplib_and_other_user(gw_factory):
    gw = tls_gateway(gw_factory)
    s = smtplib.SMTP("127.0.0.1", gw.sub_port, local_hostname="client.test",
                     timeout=10)
    try:
        s.starttls(context=client_context(gw))
        s.login(USER2, PASSWORD2)
        refused = s.sendmail("bob@example.test", ["x@elsewhere.test"],
                             mxlib.make_message("relay"))
        check_eq(refused, {}, "refused recipients")
        s.quit()
    finally:
        s.close()
    gw.wait_event("auth", result="ok", user=USER2)


def test_auth_swaks(gw_factory):
    if shutil.which("swaks") is None:
        mxlib.fail("swaks is not installed")
    gw = tls_gateway(gw_factory)
    for mech in ("PLAIN", "LOGIN"):
        p = subprocess.run(
            ["swaks", "--server", f"127.0.0.1:{gw.sub_port}", "--tls",
             "--tls-verify", "--tls-ca-path", gw.cert,
             "--auth", mech, "--auth-user", USER, "--auth-password", PASSWORD,
             "--from", "alice@example.test", "--to", "x@elsewhere.test",
             "--helo", "client.test", "--quit-after", "RCPT"],
            capture_output=True, timeout=60)
        out = p.stdout.decode("utf-8", "replace")
        check(p.returncode == 0 and AUTH_OK in out and
              "250 2.1.5 Ok" in out, f"swaks {mech}: {out[-600:]!r}")


def test_auth_not_on_port_25_by_default(gw_factory):
    gw = tls_gateway(gw_factory)
    with raw(gw, tls=True) as c:
        c.expect("503 5.5.1 Error: authentication not enabled",
                 "AUTH PLAIN " + plain(USER, PASSWORD))
        c.expect("250 2.1.0 Ok", "MAIL FROM:<alice@example.test>")
        c.expect("554 5.7.1 <x@elsewhere.test>: Relay access denied",
                 "RCPT TO:<x@elsewhere.test>")


def test_auth_on_smtp(gw_factory):
    gw = tls_gateway(gw_factory, submission=False, auth_on_smtp="yes")
    with raw(gw) as c:
        c.expect(AUTH_NEED_TLS, "AUTH LOGIN")
        starttls(c, gw)
        r = c.ehlo()
        check("250-AUTH PLAIN LOGIN" in r.lines, f"no AUTH: {r}")
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        c.expect("554 5.7.1 *", "RCPT TO:<x@elsewhere.test>")
        c.expect("503 5.5.1 Error: MAIL transaction in progress",
                 "AUTH PLAIN " + plain(USER, PASSWORD))
        c.expect("250 2.0.0 Ok", "RSET")
        c.expect(AUTH_OK, "AUTH PLAIN " + plain(USER, PASSWORD))
        c.expect("250 2.1.0 Ok", "MAIL FROM:<alice@example.test>")
        c.expect("250 2.1.5 Ok", "RCPT TO:<x@elsewhere.test>")


def test_auth_bad_password_delayed_and_a_harvest_signal(ctx):
    gw = tls_gateway(ctx.gateway, harvest_tarpit_after="2")
    src = "127.0.9.9"
    with raw(gw, port=gw.sub_port, bind=src, tls=True) as c:
        for line in ("AUTH PLAIN " + plain(USER, "wrong"),
                     "AUTH PLAIN " + plain("nobody", PASSWORD),
                     "AUTH PLAIN " + plain(USER, PASSWORD, "bob")):
            t0 = time.monotonic()
            c.expect(AUTH_FAILED, line)
            dt = time.monotonic() - t0
            check(dt >= FAIL_DELAY_S, f"535 after {dt:.3f}s, not delayed")
        c.expect("334 VXNlcm5hbWU6", "AUTH LOGIN")
        c.expect("334 UGFzc3dvcmQ6", b64(USER))
        c.expect(AUTH_FAILED, b64("wrong"))
        c.expect(AUTH_REQUIRED, "MAIL FROM:<alice@example.test>")
        c.expect(AUTH_OK, "AUTH PLAIN " + plain(USER, PASSWORD))
    gw.wait_event("auth", result="ok")
    fails = gw.events("auth", result="fail")
    check_eq(len(fails), 4, "event=auth result=fail lines")
    check_eq([e.get("user") for e in fails],
             [USER, "nobody", USER, USER], "users logged")
    check(all(PASSWORD not in ln and "wrong" not in ln
              for ln in gw.log_text().splitlines()), "a password logged")
    p = ctx.run_binary(["harvest", "list", "-c", gw.conf_path])
    out = p.stdout.decode()
    check(re.search(r"^" + re.escape(src) + r" tarpit ", out, re.M),
          f"failed AUTH is no harvest signal: {out!r}")


def test_auth_after_failures_too_many_errors(gw_factory):
    gw = tls_gateway(gw_factory, max_errors_per_session="3")
    with raw(gw, port=gw.sub_port, tls=True) as c:
        c.expect(AUTH_FAILED, "AUTH PLAIN " + plain(USER, "x"))
        c.expect(AUTH_FAILED, "AUTH PLAIN " + plain(USER, "y"))
        c.sendline("AUTH PLAIN " + plain(USER, "z"))
        c.expect(AUTH_FAILED)
        c.expect("421 4.7.0 *")
        c.expect_close()


def test_auth_exchange_errors(gw_factory):
    gw = tls_gateway(gw_factory)
    with raw(gw, port=gw.sub_port, tls=True) as c:
        c.expect("501 5.5.2 Error: invalid base64 data", "AUTH PLAIN !!!!")
        c.expect("334 ", "AUTH PLAIN")
        c.expect("501 5.5.2 *", "AGFsaWNl=AHg=")
        c.expect("334 VXNlcm5hbWU6", "AUTH LOGIN")
        c.expect("501 5.0.0 Authentication aborted", "*")
        c.expect("504 5.5.4 Unrecognized authentication type",
                 "AUTH CRAM-MD5")
        c.expect("501 5.5.4 *", "AUTH")
        c.expect("501 5.5.4 *", "AUTH PLAIN a b")
        # a response line over 1024 base64 bytes ends the exchange
        c.expect("334 ", "AUTH PLAIN")
        c.expect("500 5.5.6 *", "QUFB" * 300)
        c.expect("250 2.0.0 Ok", "NOOP")
        # a response split over two packets, at the bound
        c.expect("334 ", "AUTH PLAIN")
        line = plain(USER, PASSWORD).encode()
        c.send(line[:5])
        c.flush()
        c.send(line[5:] + b"\r\n")
        c.expect(AUTH_OK)
    gw.wait_event("auth", result="ok")     # the log is copied by a thread
    evs = gw.events("auth")
    check_eq([e.get("result") for e in evs],
             ["bad_base64", "bad_base64", "cancelled", "bad_mechanism",
              "syntax", "too_long", "ok"], "event=auth results")


def test_auth_before_ehlo_and_pipelined(gw_factory):
    gw = tls_gateway(gw_factory)
    with mxlib.Client(gw.sub_port) as c:
        c.greet()
        c.ehlo()
        starttls(c, gw)
        c.expect("503 5.5.1 Error: send HELO/EHLO first",
                 "AUTH PLAIN " + plain(USER, PASSWORD))
        c.ehlo()
        # AUTH with what follows in one write: answered in order
        c.send(("AUTH PLAIN " + plain(USER, PASSWORD) + "\r\n"
                "MAIL FROM:<alice@example.test>\r\n"
                "RCPT TO:<x@elsewhere.test>\r\n").encode())
        c.expect(AUTH_OK)
        c.expect("250 2.1.0 Ok")
        c.expect("250 2.1.5 Ok")


# ------------------------------------------------------------ tools

def _crypt():
    lib = ctypes.CDLL(ctypes.util.find_library("crypt") or "libcrypt.so.1")
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    return lib.crypt


def test_passwd_subcommand(ctx):
    crypt = _crypt()
    line = hash_line(ctx.binary, "carol@example.test", "pa ss:word")
    m = re.fullmatch(r"carol@example\.test:(\$(y|6)\$\S+)\n", line)
    check(m, f"mxgate passwd output: {line!r}")
    h = m.group(1)
    check_eq(crypt(b"pa ss:word", h.encode()), h.encode(), "hash verifies")
    check(crypt(b"pa ss:words", h.encode()) != h.encode(), "wrong verifies")
    check(hash_line(ctx.binary, "carol@example.test", "pa ss:word") != line,
          "two hashes of one password are equal (no salt?)")
    for args, stdin in ((["passwd", "bad user"], b"x\n"),
                        (["passwd", "carol"], b""),
                        (["passwd", "carol"], b"\n"),
                        (["passwd", "carol"], b"x" * 300 + b"\n")):
        p = subprocess.run([os.path.abspath(ctx.binary)] + args, input=stdin,
                           capture_output=True, timeout=30)
        check(p.returncode != 0 and p.stdout == b"",
              f"{args} {stdin[:10]!r}: {p.returncode} {p.stdout!r}")


CHECK_CASES = {
    "cert_without_key": ({"tls_cert": "cert.pem"}, "go together"),
    "submission_without_passwd": ({"tls_cert": "cert.pem",
                                   "tls_key": "key.pem",
                                   "submission_listen": "127.0.0.1:1"},
                                  "need passwd_file"),
    "auth_without_tls": ({"auth_on_smtp": "yes", "passwd_file": "passwd"},
                         "only under TLS"),
    "required_without_cert": ({"tls_required": "yes"}, "tls_required"),
    "required_listen_without_cert": (
        {"tls_required_listen": "127.0.0.1:1"}, "tls_required_listen needs"),
    "missing_cert": ({"tls_cert": "nope.pem", "tls_key": "key.pem"},
                     "tls_cert: cannot load"),
    "bad_protocol": ({"tls_protocols": "TLSv1.1"}, "TLSv1.2 or TLSv1.3"),
    "bad_ciphers": ({"tls_cert": "cert.pem", "tls_key": "key.pem",
                     "tls_ciphers": "NOTACIPHER"}, "no usable cipher"),
    "bad_passwd_line": ({"tls_cert": "cert.pem", "tls_key": "key.pem",
                         "auth_on_smtp": "yes", "passwd_file": "badpasswd"},
                        "badpasswd:2:"),
}


@mxlib.params(list(CHECK_CASES), ids=list(CHECK_CASES))
def test_check_config(ctx, param):
    conf, want = CHECK_CASES[param]
    gw = ctx.gateway(start=False, config=conf)
    make_cert(gw.dir)
    with open(os.path.join(gw.dir, "badpasswd"), "w") as f:
        f.write("# users\nalice:plaintext\n")
    gw.port = mxlib.free_port()
    gw.write_config()
    p = ctx.run_binary(["check-config", "-c", gw.conf_path])
    err = p.stderr.decode()
    check(p.returncode != 0 and want in err,
          f"check-config: status {p.returncode}, stderr {err!r}")


def test_check_config_ok(ctx):
    gw = ctx.gateway(start=False, config={
        "tls_cert": "cert.pem", "tls_key": "key.pem",
        "tls_protocols": "TLSv1.3", "auth_on_smtp": "yes",
        "passwd_file": "passwd"})
    gw.cert = make_cert(gw.dir)
    with open(os.path.join(gw.dir, "passwd"), "w") as f:
        f.write(hash_line(ctx.binary, USER, PASSWORD))
    gw.port = mxlib.free_port()
    gw.write_config()
    p = ctx.run_binary(["check-config", "-c", gw.conf_path])
    out = p.stdout.decode()
    check(p.returncode == 0 and "STARTTLS on, 1 AUTH users" in out,
          f"check-config: {p.returncode} {out!r} {p.stderr!r}")
    gw.start()
    with raw(gw) as c:
        starttls(c, gw)
        c.ehlo()
        check_eq(c.sock.version(), "TLSv1.3", "negotiated version")


def test_reload_passwd_file(gw_factory):
    gw = tls_gateway(gw_factory)
    path = os.path.join(gw.dir, "passwd")
    with open(path + ".tmp", "w") as f:
        f.write(hash_line(gw.binary, USER, "new password"))
    os.replace(path + ".tmp", path)
    gw.wait_event("reload", since=gw.reload(), result="ok")
    with raw(gw, port=gw.sub_port, tls=True) as c:
        c.expect(AUTH_FAILED, "AUTH PLAIN " + plain(USER, PASSWORD))
        c.expect(AUTH_OK, "AUTH PLAIN " + plain(USER, "new password"))
    with open(path, "w") as f:
        f.write("alice:not-a-hash\n")
    ev = gw.wait_event("reload", since=gw.reload(), result="kept_old")
    check_eq(ev.get("reason"), "tls_or_passwd", "reload refusal reason")
    with raw(gw, port=gw.sub_port, tls=True) as c:
        c.expect(AUTH_OK, "AUTH PLAIN " + plain(USER, "new password"))
