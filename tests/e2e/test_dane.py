"""
test_dane.py - DANE for mail sent by MX (issue 20, RFC 7672): a report
(NDR) goes by MX to a domain of a DNSSEC-signed test zone, through a
real validating resolver.
The world, made in the test's temp folder: a zone `dane.test.` signed
with ldns-keygen/ldns-signzone; unbound serving it (auth-zone) with the
zone's DS as its only trust anchor, so its answers carry the AD bit; the
MX hosts' addresses are one loopback address where a second mxgate (the
hop, with a self-signed certificate) listens on port 25.  The gateway
under test has dns_server = unbound and dane = may.
Covers, one recipient domain each: a TLSA 3 1 1 of the hop's key ->
delivered, tls_required=dane tls_verified=dane-ee; a TLSA 2 0 1 of the
certificate that signed the hop's (a test CA, sent in the hop's chain)
-> dane-ta; the same TLSA for an MX name the certificate does not carry
-> deferred (DANE-TA checks the name, DANE-EE does not); a TLSA that
matches nothing -> deferred 4.7.5 with the reason, shown by `queue show`,
nothing at the hop; no TLSA -> delivered at may; a TLSA whose signature
was spoiled after signing (unbound: SERVFAIL) -> deferred 4.7.5, the
hop never contacted; dane = no ignores a matching TLSA (may).
"""

from __future__ import annotations

import os
import random
import re
import socket
import struct
import subprocess
import time

import ctllib
import mxlib
import peers
from mxlib import check, check_eq

WAIT = 30.0  # a bound on one delivery step (a poll, not a claim)
ZONE = "dane.test"
# recipient domain -> its MX host (all at the hop's address)
DOMAINS = {"ok": "mx-ok", "ta": "mx-ta", "bad": "mx-bad",
           "none": "mx-none", "bogus": "mx-bogus", "taname": "mx-taname"}
NOT_IN_CERT = "mx-taname"  # the hop's certificate does not name it
BOUNCE = {"unknown_recipient": "bounce", "harvest_exempt": "127.0.0.0/8"}


def run(*args: str, stdin: bytes | None = None, cwd: str | None = None
        ) -> bytes:
    p = subprocess.run(list(args), input=stdin, capture_output=True,
                       timeout=60, cwd=cwd)
    check(p.returncode == 0, f"{args[0]} failed: {p.stderr.decode()!r}")
    return p.stdout


# ------------------------------------------------------------ certificates

def make_certs(folder: str) -> dict[str, str]:
    """A test CA and the hop's certificate signed by it (EC P-256)."""
    os.makedirs(folder, exist_ok=True)
    f = {n: os.path.join(folder, n) for n in
         ("ca.key", "ca.pem", "key.pem", "leaf.csr", "cert.pem", "ext",
          "chain.pem")}
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
        "/CN=DANE Test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout", f["ca.key"], "-out", f["ca.pem"])
    run("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
        "ec_paramgen_curve:prime256v1", "-nodes", "-subj",
        f"/CN=mx-ok.{ZONE}", "-keyout", f["key.pem"], "-out", f["leaf.csr"])
    with open(f["ext"], "w") as fh:
        fh.write("subjectAltName=" + ",".join(
            f"DNS:{h}.{ZONE}" for h in DOMAINS.values()
            if h != NOT_IN_CERT) + "\n")
    run("openssl", "x509", "-req", "-in", f["leaf.csr"], "-CA", f["ca.pem"],
        "-CAkey", f["ca.key"], "-CAcreateserial", "-days", "2",
        "-extfile", f["ext"], "-out", f["cert.pem"])
    # the hop sends its CA too: DANE-TA needs the anchor in the chain
    # (RFC 7671 8.3)
    with open(f["chain.pem"], "w") as out:
        for n in ("cert.pem", "ca.pem"):
            with open(f[n]) as inp:
                out.write(inp.read())
    return f


def spki_sha256(cert: str) -> str:
    """TLSA 3 1 1 data: sha256 of the certificate's SubjectPublicKeyInfo."""
    pub = run("openssl", "x509", "-in", cert, "-noout", "-pubkey")
    der = run("openssl", "pkey", "-pubin", "-outform", "DER", stdin=pub)
    out = run("openssl", "dgst", "-sha256", "-r", stdin=der).decode()
    return out.split()[0]


def cert_sha256(cert: str) -> str:
    """TLSA 2 0 1 data: sha256 of the certificate's DER."""
    der = run("openssl", "x509", "-in", cert, "-outform", "DER")
    return run("openssl", "dgst", "-sha256", "-r",
               stdin=der).decode().split()[0]


# ------------------------------------------------------------ zone, unbound

def free_mx_addr() -> str:
    """A loopback address whose port 25 is free (we run as root)."""
    for _ in range(50):
        addr = f"127.25.{random.randint(1, 254)}.{random.randint(1, 254)}"
        s = socket.socket()
        try:
            s.bind((addr, 25))
            return addr
        except OSError:
            continue
        finally:
            s.close()
    mxlib.fail("no free loopback address for port 25")
    return ""


def free_udp_tcp_port() -> int:
    for _ in range(50):
        port = mxlib.free_port()
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            u.close()
    mxlib.fail("no free port for unbound")
    return 0


def make_zone(folder: str, mx_addr: str, certs: dict[str, str]) -> str:
    """Write and sign the zone; spoil the TLSA signature of mx-bogus.
    Returns the path of the DS file (unbound's trust anchor)."""
    ee = spki_sha256(certs["cert.pem"])
    ta = cert_sha256(certs["ca.pem"])
    lines = [f"$ORIGIN {ZONE}.", "$TTL 300",
             f"@ IN SOA ns.{ZONE}. admin.{ZONE}. 1 3600 600 86400 300",
             f"@ IN NS ns.{ZONE}.", "ns IN A 127.0.0.1"]
    for dom, host in DOMAINS.items():
        lines += [f"{dom} IN MX 10 {host}.{ZONE}.",
                  f"{host} IN A {mx_addr}"]
    lines += [f"_25._tcp.mx-ok IN TLSA 3 1 1 {ee}",
              f"_25._tcp.mx-ta IN TLSA 2 0 1 {ta}",
              f"_25._tcp.mx-taname IN TLSA 2 0 1 {ta}",
              f"_25._tcp.mx-bad IN TLSA 3 1 1 {'ab' * 32}",
              f"_25._tcp.mx-bogus IN TLSA 3 1 1 {ee}"]
    zone = os.path.join(folder, f"{ZONE}.zone")
    with open(zone, "w") as f:
        f.write("\n".join(lines) + "\n")
    key = run("ldns-keygen", "-a", "ECDSAP256SHA256", "-k", ZONE,
              cwd=folder).decode().strip()
    run("ldns-signzone", "-f", zone + ".signed", zone, key, cwd=folder)
    with open(zone + ".signed") as f:
        signed = f.read().splitlines()
    spoiled = 0
    for i, line in enumerate(signed):
        fields = line.split()
        if (len(fields) > 5 and fields[0] == f"_25._tcp.mx-bogus.{ZONE}."
                and fields[3] == "RRSIG" and fields[4] == "TLSA"):
            sig = fields[-1]
            k = len(sig) // 2
            fields[-1] = sig[:k] + ("B" if sig[k] != "B" else "C") + \
                sig[k + 1:]
            signed[i] = "\t".join(fields)
            spoiled += 1
    check_eq(spoiled, 1, "TLSA signatures of mx-bogus spoiled")
    with open(zone + ".signed", "w") as f:
        f.write("\n".join(signed) + "\n")
    return os.path.join(folder, key + ".ds")


def dns_query(port: int, name: str, qtype: int) -> tuple[int, bool]:
    """One query with AD set (RFC 6840 5.7): (rcode, AD in the answer)."""
    qid = random.randint(0, 0xffff)
    q = struct.pack(">HHHHHH", qid, 0x0120, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack(">HH", qtype, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2.0)
    try:
        s.sendto(q, ("127.0.0.1", port))
        a = s.recv(4096)
    finally:
        s.close()
    rid, flags = struct.unpack(">HH", a[:4])
    check_eq(rid, qid, "DNS answer id")
    return flags & 0x0f, bool(flags & 0x0020)


class Unbound:
    """unbound in the foreground in folder, serving the zone, validating
    with ds as the only trust anchor; stopped by its PID."""

    def __init__(self, folder: str, zone: str, ds: str):
        self.folder = folder
        self.port = free_udp_tcp_port()
        self.conf = os.path.join(folder, "unbound.conf")
        self.log = os.path.join(folder, "unbound.log")
        with open(self.conf, "w") as f:
            f.write(f"""server:
  interface: 127.0.0.1
  port: {self.port}
  do-ip6: no
  do-daemonize: no
  chroot: ""
  username: ""
  directory: "{folder}"
  pidfile: ""
  use-syslog: no
  logfile: "{self.log}"
  verbosity: 1
  num-threads: 1
  outgoing-range: 32
  so-reuseport: no
  trust-anchor-signaling: no
  trust-anchor-file: "{ds}"
  local-zone: "test." nodefault
  val-log-level: 2
auth-zone:
  name: "{ZONE}."
  zonefile: "{zone}.signed"
  for-upstream: yes
  for-downstream: no
  fallback-enabled: no
remote-control:
  control-enable: no
""")
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Unbound":
        run("unbound-checkconf", self.conf)
        self.proc = subprocess.Popen(["unbound", "-d", "-c", self.conf],
                                     stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL,
                                     cwd=self.folder)
        peers._LIVE.add(self)

        def answers() -> bool:
            check(self.proc.poll() is None, "unbound exited: " +
                  open(self.log).read()[-500:] if os.path.exists(self.log)
                  else "unbound exited")
            try:
                return dns_query(self.port, ZONE, 6) == (0, True)
            except OSError:
                return False
        mxlib.wait_until(answers, WAIT, "unbound answering dane.test SOA "
                         "with the AD bit")
        return self

    def stop(self) -> None:
        peers._LIVE.discard(self)
        peers._stop_process(self.proc, "unbound")


# ------------------------------------------------------------ gateways

def world(ctx, **front_conf: str):
    """unbound with the signed zone, the hop on MX_ADDR:25, the gateway
    under test; returns (unbound, hop, front)."""
    certs = make_certs(os.path.join(ctx.tmpdir, "certs"))
    mx_addr = free_mx_addr()
    dns_dir = os.path.join(ctx.tmpdir, "dns")
    os.makedirs(dns_dir)
    ds = make_zone(dns_dir, mx_addr, certs)
    ub = Unbound(dns_dir, os.path.join(dns_dir, f"{ZONE}.zone"), ds).start()
    # what the validator says about each case, before mxgate asks
    for host, want in (("mx-ok", (0, True)), ("mx-none", (3, True)),
                       ("mx-bogus", (2, False))):
        got = dns_query(ub.port, f"_25._tcp.{host}.{ZONE}", 52)
        check_eq(got, want, f"unbound: TLSA of {host} (rcode, AD)")
    hop_port = mxlib.free_port()
    hop = ctx.gateway(start=False, users=[f"x@{d}.{ZONE}" for d in DOMAINS],
                      config={
        "domains": ", ".join(f"{d}.{ZONE}" for d in DOMAINS),
        "listen": f"127.0.0.1:{hop_port}, {mx_addr}:25",
        "tls_cert": certs["chain.pem"], "tls_key": certs["key.pem"]})
    hop.port = hop_port
    hop.start()
    hop.wait_log(r"event=listening addr=%s:25\b" % re.escape(mx_addr),
                 since=hop.run_mark)
    conf = {"dns_server": f"127.0.0.1:{ub.port}", "dane": "may",
            "retry_min": "1h", "smtp_connect_timeout": "5s",
            "smtp_timeout": "10s"}
    conf.update(BOUNCE)
    conf.update(front_conf)
    front = ctx.gateway(config=conf)
    return ub, hop, front


def report_to(front, dom: str) -> tuple[str, str]:
    """A message to an unknown user from x@DOM.dane.test: its NDR goes to
    that domain by MX.  Returns (qid, the report's qid)."""
    sender = f"x@{dom}.{ZONE}"
    qid = ctllib.send(front, ["nobody@example.test"],
                      mxlib.make_message("dane ndr cause", sender=sender,
                                         to="nobody@example.test"),
                      sender=sender)
    ev = front.wait_event("dsn", qid=qid, timeout_s=WAIT)
    check("dsn_qid" in ev, f"no report queued: {ev['line']}")
    return qid, ev["dsn_qid"]


def q(ev: dict[str, str], key: str) -> str:
    """A value of a log line, quoted (key="a b") or not."""
    m = re.search(r'(?:^| )%s=(?:"((?:[^"\\]|\\.)*)"|(\S*))' % key,
                  ev["line"])
    return "" if m is None else m.group(1) if m.group(1) is not None \
        else m.group(2)


def last_error(show: str) -> str:
    m = re.search(r"^last error: \S+Z (.*)$", show, re.M)
    check(m, f"no last error in queue show: {show!r}")
    return m.group(1)


def no_mail_at(hop, dom: str) -> None:
    check_eq(hop.maildir_files(f"{dom}.{ZONE}", "x"), [],
             f"reports at the hop for {dom}")


# ------------------------------------------------------------ cases

@mxlib.params(["ok", "ta"], ids=["dane-ee", "dane-ta"])
def test_matching_tlsa_delivers_verified(ctx, param):
    ub, hop, front = world(ctx)
    try:
        _, rq = report_to(front, param)
        hop.wait_maildir(f"{param}.{ZONE}", "x", timeout_s=WAIT)
        d = front.wait_event("delivered", qid=rq, timeout_s=WAIT)
        want = "dane-ee" if param == "ok" else "dane-ta"
        check_eq((d.get("tls_required"), d.get("tls_verified")),
                 ("dane", want), f"delivered line: {d['line']}")
        check(re.fullmatch(r"TLSv1\.[23]", d.get("tls", "")), d["line"])
        t = front.wait_event("client_tls", timeout_s=WAIT, required="dane")
        check_eq((t.get("encrypted"), t.get("verified")), ("yes", want),
                 f"client_tls: {t['line']}")
        e = front.wait_event("dane", timeout_s=WAIT, qid=rq)
        check_eq((e.get("host"), e.get("state"), e.get("usable")),
                 (f"{DOMAINS[param]}.{ZONE}", "dane", "1"), e["line"])
    finally:
        ub.stop()


def test_tlsa_that_does_not_match_defers(ctx):
    ub, hop, front = world(ctx)
    try:
        _, rq = report_to(front, "bad")
        d = front.wait_event("deferred", qid=rq, timeout_s=WAIT)
        check_eq(d.get("status"), "4.7.5", f"deferred line: {d['line']}")
        check_eq(d.get("tls_required"), "dane", d["line"])
        check("no TLSA record of mx-bad.dane.test matches the certificate"
              in q(d, "reply"), f"reason: {d['line']}")
        t = front.wait_event("client_tls", timeout_s=WAIT, required="dane")
        check_eq(t.get("verified"), "fail", t["line"])
        front.wait_event("client_tls_fail", action="defer",
                         required="dane", timeout_s=WAIT)
        show = ctllib.wait_attempted(ctx, front, rq, timeout_s=WAIT)
        err = last_error(show)
        check(err.startswith("454 4.7.5 TLS required (dane): ") and
              "no TLSA record of mx-bad.dane.test matches" in err, err)
        check(not front.events("failed", qid=rq), "report failed")
        no_mail_at(hop, "bad")
    finally:
        ub.stop()


def test_dane_ta_checks_the_mx_name(ctx):
    """DANE-TA (unlike DANE-EE) wants the MX host's name in the
    certificate (RFC 7672 3.2.3): the CA matches, the name does not."""
    ub, hop, front = world(ctx)
    try:
        _, rq = report_to(front, "taname")
        d = front.wait_event("deferred", qid=rq, timeout_s=WAIT)
        check_eq((d.get("status"), d.get("tls_verified")), ("4.7.5", "fail"),
                 f"deferred line: {d['line']}")
        check("DANE-TA: hostname mismatch" in q(d, "reply"), d["line"])
        no_mail_at(hop, "taname")
    finally:
        ub.stop()


def test_no_tlsa_delivers_at_may(ctx):
    ub, hop, front = world(ctx)
    try:
        _, rq = report_to(front, "none")
        hop.wait_maildir(f"none.{ZONE}", "x", timeout_s=WAIT)
        d = front.wait_event("delivered", qid=rq, timeout_s=WAIT)
        check_eq((d.get("tls_required"), d.get("tls_verified")),
                 ("may", "unchecked"), f"delivered line: {d['line']}")
        e = front.wait_event("dane", timeout_s=WAIT, qid=rq)
        check_eq((e.get("state"), q(e, "reason")),
                 ("none", "no TLSA records"), e["line"])
    finally:
        ub.stop()


def test_bogus_tlsa_defers(ctx):
    ub, hop, front = world(ctx)
    try:
        mark = hop.log_mark()
        _, rq = report_to(front, "bogus")
        d = front.wait_event("deferred", qid=rq, timeout_s=WAIT)
        check_eq((d.get("status"), d.get("tls_required"), d.get("tls")),
                 ("4.7.5", "dane", "none"), f"deferred line: {d['line']}")
        check("TLSA look-up of _25._tcp.mx-bogus.dane.test failed" in
              q(d, "reply") and "SERVFAIL" in q(d, "reply"), d["line"])
        e = front.wait_event("dane", timeout_s=WAIT, qid=rq)
        check_eq(e.get("state"), "fail", e["line"])
        show = ctllib.wait_attempted(ctx, front, rq, timeout_s=WAIT)
        check(last_error(show).startswith("454 4.7.5 TLS required "
                                          "(dane): TLSA look-up"), show)
        check(not front.events("client_tls"), "a connection was made")
        check(not hop.events("connect", since=mark),
              "the hop was contacted")
        no_mail_at(hop, "bogus")
    finally:
        ub.stop()


def test_dane_no_ignores_tlsa(ctx):
    ub, hop, front = world(ctx, dane="no")
    try:
        _, rq = report_to(front, "bad")
        hop.wait_maildir(f"bad.{ZONE}", "x", timeout_s=WAIT)
        d = front.wait_event("delivered", qid=rq, timeout_s=WAIT)
        check_eq(d.get("tls_required"), "may", f"delivered: {d['line']}")
        check(not front.events("dane"), "a dane line with dane = no")
    finally:
        ub.stop()


# ------------------------------------------------------------ check-config

DANE_CONF = {
    "no_dns_server": ({"dane": "may"}, 1),
    "remote_dns_server": ({"dane": "may", "dns_server": "192.0.2.53:53"}, 1),
    "bad_word": ({"dane": "verify"}, 1),
    "loopback_v4": ({"dane": "may", "dns_server": "127.0.0.53:5353"}, 0),
    "loopback_v6": ({"dane": "may", "dns_server": "[::1]:53"}, 0),
}


@mxlib.params(list(DANE_CONF), ids=list(DANE_CONF))
def test_check_config_dane(ctx, param):
    """dane = may trusts the AD bit only from dns_server on loopback."""
    conf, rc = DANE_CONF[param]
    gw = ctx.gateway(start=False, config=conf)
    gw.port = mxlib.free_port()
    gw.write_config()
    out, err = ctllib.mx(ctx, gw, "check-config", rc=rc)
    if param == "bad_word":
        check("expected no or may" in err, f"check-config: {err!r}")
    elif rc == 1:
        check("dane = may needs dns_server on a loopback address" in err,
              f"check-config: {err!r}")


def test_reload_to_dane_keeps_the_running_resolver(ctx):
    """A reload may turn dane = may on and name a loopback dns_server,
    but dns_server needs a restart: the resolver in use is still the one
    of the start, whose AD bit is not trusted (here a v4-mapped address,
    which the loopback rule refuses).  Until the restart, DANE stays off
    and says so; it never trusts the old resolver's AD bit."""
    ub, hop, front = world(ctx, dane="no")
    try:
        front.stop()
        front.settings["dns_server"] = f"[::ffff:127.0.0.1]:{ub.port}"
        front.start()
        from test_admin import reload_with
        _, ev = reload_with(front, dane="may",
                            dns_server=f"127.0.0.1:{ub.port}")
        check("dns_server" in ev.get("restart_needed", ev["line"]),
              f"reload: {ev['line']}")
        _, rq = report_to(front, "bad")  # its TLSA matches nothing
        hop.wait_maildir(f"bad.{ZONE}", "x", timeout_s=WAIT)
        d = front.wait_event("delivered", qid=rq, timeout_s=WAIT)
        check_eq(d.get("tls_required"), "may", f"delivered: {d['line']}")
        e = front.wait_event("dane", timeout_s=WAIT, qid=rq)
        check_eq(e.get("state"), "off", e["line"])
    finally:
        ub.stop()
