"""
test_dkim.py - DKIM verification at the end of data (issue 14, part 2).
Messages are signed by Debian's python3-dkim (dkimpy, through
tests/dkim_sign.py under /usr/bin/python3) with RSA and Ed25519 keys whose
TXT records tests/spf_dns.py (python3-dnslib) serves on a free loopback
port, set as dns_server.
Covers: relaxed/relaxed and simple/simple RSA and relaxed Ed25519 pass,
with "dkim=pass header.d= header.s= header.b=" in the delivered copy's
Authentication-Results (with SPF's result in the same field, above
Received) and dkim=pass on the queued log line; a body changed after
signing fails (body hash); a signed header changed fails; a selector with
no key record is permerror; an l= signature is not a pass (policy); two
signatures give two results; the DNS server down gives temperror with the
message still taken and tagged; a key server that never answers is
temperror once dkim_timeout passes; dkim_verify = no: no result, no
look-up; a bad dkim_verify value is a config error with its line;
without the Public Suffix List (public_suffix_file missing: a warning at
start) only d= equal to the MAIL FROM domain aligns, with it a subdomain
of d= does too.
"""

from __future__ import annotations

import email
import email.policy
import os
import subprocess
import time

import mxlib
from mxlib import check, check_eq, fail
import test_spf as spf

HERE = os.path.dirname(os.path.abspath(__file__))
SIGN = os.path.join(HERE, "..", "dkim_sign.py")
SYSTEM_PYTHON = "/usr/bin/python3"  # the one with python3-dkim
RCPT_OK = "250 2.1.5 Ok"


class Keys:
    """An RSA and an Ed25519 key in folder, and the zone that has them."""

    def __init__(self, folder: str):
        self.folder = folder
        self.rsa = os.path.join(folder, "rsa.key")
        self.ed = os.path.join(folder, "ed.key")
        self.rsa_p = self._gen("rsa", self.rsa)
        self.ed_p = self._gen("ed25519", self.ed)

    @staticmethod
    def _gen(kind: str, path: str) -> str:
        out = subprocess.run([SYSTEM_PYTHON, SIGN, "keygen", kind, path],
                             check=True, capture_output=True).stdout
        return out.decode().strip()

    def zone(self, extra=()) -> list:
        return [
            ("rsa._domainkey.signed.test", "TXT",
             f"v=DKIM1; k=rsa; p={self.rsa_p}"),
            ("ed._domainkey.signed.test", "TXT",
             f"v=DKIM1; k=ed25519; p={self.ed_p}"),
            ("rsa._domainkey.other.test", "TXT",
             f"v=DKIM1; p={self.rsa_p}"),
            ("slow._domainkey.signed.test", "TIMEOUT"),
        ] + list(extra)

    def sign(self, msg: bytes, kind: str = "rsa", domain: str = "signed.test",
             selector: str | None = None, canon: str = "relaxed/relaxed",
             length: bool = False) -> bytes:
        args = [SYSTEM_PYTHON, SIGN, "sign", kind,
                self.ed if kind == "ed25519" else self.rsa, domain,
                selector or ("ed" if kind == "ed25519" else "rsa"), canon]
        if length:
            args.append("l")
        out = subprocess.run(args, input=msg, check=True,
                             capture_output=True).stdout
        return out.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def dkim_gateway(ctx, gw_factory, keys: Keys, **conf: str):
    dns = spf.DnsServer(ctx.tmpdir, keys.zone())
    settings = {"dns_server": f"127.0.0.1:{dns.port}", "spf_policy": "tag"}
    settings.update(conf)
    return gw_factory(config=settings), dns


def message(subject: str, sender: str = "joe@signed.test") -> bytes:
    return mxlib.make_message(subject, sender=sender)


def send(gw, data: bytes, sender: str = "joe@signed.test") -> str:
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", f"MAIL FROM:<{sender}>")
        c.expect(RCPT_OK, "RCPT TO:<alice@example.test>")
        c.expect("354 *", "DATA")
        c.send(data + b".\r\n")
        text = c.reply(30.0).text
    check(text.startswith("250 2.0.0 Ok: queued as "), text)
    return text.split()[-1]


def delivered(gw, count: int) -> email.message.Message:
    files = sorted(gw.wait_maildir("example.test", "alice", count),
                   key=os.path.getmtime)
    with open(files[-1], "rb") as f:
        return email.message_from_bytes(f.read(), policy=email.policy.compat32)


def ar(msg) -> str:
    return " ".join(msg["Authentication-Results"].split())


def b8(signed: bytes) -> str:
    """The first 8 characters of the (first) signature's b= value."""
    head = signed.split(b"\r\n\r\n", 1)[0].decode()
    sig = head.split("DKIM-Signature:", 1)[1]
    val = "".join(sig.split("b=")[-1].split())
    return val[:8]


def hb(v: str) -> str:
    return f'"{v}"' if any(c in v for c in "/+=") else v


def test_dkim_pass_rsa_ed25519(ctx, gw_factory):
    keys = Keys(ctx.tmpdir)
    gw, dns = dkim_gateway(ctx, gw_factory, keys)
    try:
        n = 0
        for kind, canon in (("rsa", "relaxed/relaxed"),
                            ("rsa", "simple/simple"),
                            ("ed25519", "relaxed/relaxed"),
                            ("ed25519", "simple/simple")):
            signed = keys.sign(message(f"{kind} {canon}"), kind,
                               canon=canon)
            qid = send(gw, signed)
            n += 1
            msg = delivered(gw, n)
            sel = "ed" if kind == "ed25519" else "rsa"
            check_eq(ar(msg), "mx.example.test; spf=none "
                     'smtp.mailfrom="joe@signed.test"; dkim=pass '
                     f"header.d=signed.test header.s={sel} "
                     f"header.b={hb(b8(signed))}",
                     f"Authentication-Results ({kind} {canon})")
            names = [k for k, _ in msg.items()]
            check_eq(names[:3], ["Authentication-Results", "Received-SPF",
                                 "Received"], "the first header fields")
            check("DKIM-Signature" in names, "the signature is kept")
            ev = gw.wait_event("queued", qid=qid)
            check_eq((ev.get("dkim"), ev.get("dkim_sigs"),
                      ev.get("dkim_aligned")), ("pass", "1", "yes"),
                     ev["line"])
    finally:
        dns.stop()


def test_dkim_altered_and_missing_key(ctx, gw_factory):
    keys = Keys(ctx.tmpdir)
    gw, dns = dkim_gateway(ctx, gw_factory, keys)
    try:
        # the body changed after signing: the body hash differs
        signed = keys.sign(message("body"))
        send(gw, signed.replace(b"this is a test.", b"this is a fake."))
        check("dkim=fail (body hash does not match) header.d=signed.test"
              in ar(delivered(gw, 1)), ar(delivered(gw, 1)))
        # a signed header changed: b= does not verify
        signed = keys.sign(message("header"), "ed25519")
        send(gw, signed.replace(b"Subject: header", b"Subject: hijack"))
        check("dkim=fail (signature does not verify) header.d=signed.test "
              "header.s=ed" in ar(delivered(gw, 2)), ar(delivered(gw, 2)))
        # no key record at the selector
        signed = keys.sign(message("nokey"), selector="gone")
        qid = send(gw, signed)
        check("dkim=permerror (no key record) header.d=signed.test "
              "header.s=gone" in ar(delivered(gw, 3)), ar(delivered(gw, 3)))
        ev = gw.wait_event("queued", qid=qid)
        check_eq((ev.get("dkim"), ev.get("dkim_results")),
                 ("permerror", "permerror:signed.test"), ev["line"])
        # l=: valid, yet only part of the body is signed: not a pass
        signed = keys.sign(message("length"), length=True)
        qid = send(gw, signed)
        check("dkim=policy (valid, but l= signs part of the body)"
              in ar(delivered(gw, 4)), ar(delivered(gw, 4)))
        ev = gw.wait_event("queued", qid=qid)
        check_eq((ev.get("dkim"), ev.get("dkim_aligned")),
                 ("policy", "no"), ev["line"])
        # two signatures: two results, in the order of the fields
        signed = keys.sign(keys.sign(message("two")), domain="other.test")
        send(gw, signed)
        res = ar(delivered(gw, 5))
        check("dkim=pass header.d=other.test header.s=rsa" in res and
              "dkim=pass header.d=signed.test header.s=rsa" in res and
              res.index("other.test") < res.index("header.d=signed.test"),
              res)
    finally:
        dns.stop()


def test_dkim_dns_down_temperror(ctx, gw_factory):
    keys = Keys(ctx.tmpdir)
    gw, dns = dkim_gateway(ctx, gw_factory, keys, dkim_timeout="1500ms",
                           workers="1")
    try:
        # a key server that never answers: temperror at dkim_timeout,
        # and the loop serves another session meanwhile
        signed = keys.sign(message("slow"), selector="slow")
        with mxlib.session(gw) as c:
            c.expect("250 2.1.0 Ok", "MAIL FROM:<joe@signed.test>")
            c.expect(RCPT_OK, "RCPT TO:<alice@example.test>")
            c.expect("354 *", "DATA")
            t0 = time.monotonic()
            c.send(signed + b".\r\n")
            with mxlib.session(gw) as other:
                other.expect("250 2.1.0 Ok", "MAIL FROM:<>")
                served = time.monotonic() - t0
            text = c.reply(30.0).text
            took = time.monotonic() - t0
        check(text.startswith("250 2.0.0 Ok: queued as "), text)
        qid = text.split()[-1]
        check(served < 1.2, f"the other session waited ({served:.2f}s)")
        # bounds on a poll: the deadline is 1.5 s, the resolver's own
        # time-out (5 s) never came into it
        check(1.4 <= took < 4.5, f"the 250 came after {took:.2f}s")
        check("dkim=temperror (key lookup timed out) header.d=signed.test"
              in ar(delivered(gw, 1)), ar(delivered(gw, 1)))
        ev = gw.wait_event("dkim")
        check("longer than dkim_timeout" in ev["line"] and
              "level=warning" in ev["line"], ev["line"])
        ev = gw.wait_event("queued", qid=qid)
        check_eq(ev.get("dkim"), "temperror", ev["line"])
    finally:
        dns.stop()
    # the DNS server is gone: still taken, tagged temperror
    signed = keys.sign(message("down"))
    qid = send(gw, signed)
    res = ar(delivered(gw, 2))
    check("dkim=temperror (" in res and "header.d=signed.test" in res, res)
    check("spf=temperror" in res, res)
    ev = gw.wait_event("queued", qid=qid)
    check_eq(ev.get("dkim"), "temperror", ev["line"])


def test_dkim_verify_no(ctx, gw_factory):
    keys = Keys(ctx.tmpdir)
    gw, dns = dkim_gateway(ctx, gw_factory, keys, dkim_verify="no",
                           spf_policy="none")
    try:
        qid = send(gw, keys.sign(message("off")))
        msg = delivered(gw, 1)
        check(msg["Authentication-Results"] is None,
              "no Authentication-Results with SPF and DKIM off")
        ev = gw.wait_event("queued", qid=qid)
        check("dkim" not in ev, ev["line"])
    finally:
        dns.stop()


def test_dkim_verify_bad_value(ctx):
    path = ctx.write("bad.conf", "hostname = mx.example.test\n"
                     "spool = spool\ndomains = example.test\n"
                     "dkim_verify = maybe\ndirectory = file:users\n")
    ctx.write("users", "alice@example.test\n")
    os.makedirs(os.path.join(ctx.tmpdir, "spool"), exist_ok=True)
    p = ctx.run_binary(["check-config", "-c", path])
    check(p.returncode != 0, "check-config accepted dkim_verify = maybe")
    err = p.stderr.decode() + p.stdout.decode()
    check(":4:" in err and "dkim_verify" in err and
          "expected yes or no" in err, err)


def test_dkim_alignment_without_suffix_list(ctx, gw_factory):
    """public_suffix_file missing: said at start, and only d= equal to the
    MAIL FROM domain aligns; with the list, a subdomain aligns too."""
    keys = Keys(ctx.tmpdir)
    gw, dns = dkim_gateway(ctx, gw_factory, keys,
                           public_suffix_file=os.path.join(ctx.tmpdir,
                                                           "none.dat"))
    try:
        ev = gw.wait_event("public_suffix")
        check("level=warning" in ev["line"] and "none.dat" in ev["line"],
              ev["line"])
        for sender, want in (("joe@mail.signed.test", "no"),
                             ("joe@signed.test", "yes")):
            qid = send(gw, keys.sign(message("strict", sender=sender)),
                       sender=sender)
            ev = gw.wait_event("queued", qid=qid)
            check_eq((ev.get("dkim"), ev.get("dkim_aligned")),
                     ("pass", want), ev["line"])
        gw.stop()
        del gw.settings["public_suffix_file"]
        gw.start()
        ev = gw.wait_event("public_suffix", since=gw.run_mark)
        check(int(ev.get("rules", "0")) > 5000, ev["line"])
        qid = send(gw, keys.sign(message("relaxed",
                                         sender="joe@mail.signed.test")),
                   sender="joe@mail.signed.test")
        ev = gw.wait_event("queued", qid=qid, since=gw.run_mark)
        check_eq(ev.get("dkim_aligned"), "yes", ev["line"])
    finally:
        dns.stop()
