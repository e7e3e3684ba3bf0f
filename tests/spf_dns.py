#!/usr/bin/python3
"""spf_dns.py - a small authoritative DNS server on 127.0.0.1 for the SPF
tests (tests/unit/test_spf.c and tests/e2e/test_spf.py).

Run with Debian's /usr/bin/python3 (python3-dnslib):
    spf_dns.py PORT ZONEFILE

ZONEFILE holds lines as tests/spf_suite.py writes them, "R owner TYPE
value..." (tab-separated, bytes outside 0x21..0x7e and "%" as %XX); other
lines are ignored.  TYPE is A, AAAA, MX (pref name), PTR, CNAME, TXT (one
value per string) or:
  TIMEOUT   a question for a type the name has no records of gets no answer
  SERVFAIL  such a question gets SERVFAIL
  TTL       (seconds) the TTL of the name's records, 0 when not given
A name with no records at all is NXDOMAIN; a CNAME is followed within the
zone, as a recursive server would.  Answers carry TTL 0 unless told (so
nothing is cached between scenarios) and are truncated (TC, no records) past
the payload size the question advertises.  Prints "ready" once bound;
exits when its stdin closes or on SIGTERM.
"""
import os
import socket
import sys
import threading

from dnslib import (AAAA, CNAME, MX, PTR, QTYPE, RCODE, RR, TXT, A,
                    DNSRecord, EDNS0)

TYPES = {"A": QTYPE.A, "AAAA": QTYPE.AAAA, "MX": QTYPE.MX,
         "PTR": QTYPE.PTR, "CNAME": QTYPE.CNAME, "TXT": QTYPE.TXT}


def unesc(s):
    out = bytearray()
    i = 0
    while i < len(s):
        if s[i] == "%" and len(s[i + 1:i + 3]) == 2:
            out.append(int(s[i + 1:i + 3], 16))
            i += 3
        else:
            out += s[i].encode()
            i += 1
    return bytes(out)


def load(path):
    zone = {}
    with open(path, encoding="ascii") as f:
        for line in f:
            f_ = line.rstrip("\n").split("\t")
            if f_[0] != "R":
                continue
            owner = unesc(f_[1]).decode("latin-1").lower().rstrip(".")
            zone.setdefault(owner, []).append(
                (f_[2], [unesc(v) for v in f_[3:]]))
    return zone


def rdata(t, vals):
    if t == "A":
        return A(vals[0].decode())
    if t == "AAAA":
        return AAAA(vals[0].decode())
    if t == "MX":
        return MX(vals[1].decode("latin-1"), int(vals[0]))
    if t == "PTR":
        return PTR(vals[0].decode("latin-1"))
    if t == "CNAME":
        return CNAME(vals[0].decode("latin-1"))
    if t == "TXT":
        chunks = []
        for v in vals:
            chunks += [v[i:i + 255] for i in range(0, len(v), 255)] or [b""]
        return TXT(chunks)
    raise ValueError(t)


def answer(zone, data):
    """The reply datagram, or None for no answer."""
    q = DNSRecord.parse(data)
    r = q.reply()
    name = str(q.q.qname).lower().rstrip(".")
    qtype = q.q.qtype
    for _ in range(8):                   # CNAME chain within the zone
        recs = zone.get(name)
        if recs is None:
            r.header.rcode = RCODE.NXDOMAIN
            break
        cname = [v for t, v in recs if t == "CNAME"]
        if cname and qtype != QTYPE.CNAME:
            r.add_answer(RR(name, QTYPE.CNAME, ttl=0,
                            rdata=rdata("CNAME", cname[0])))
            name = cname[0][0].decode("latin-1").lower().rstrip(".")
            continue
        have = [(t, v) for t, v in recs if TYPES.get(t) == qtype]
        ttl = ([int(v[0]) for t, v in recs if t == "TTL"] or [0])[0]
        if not have:
            kinds = {t for t, _ in recs}
            if "TIMEOUT" in kinds:
                return None
            if "SERVFAIL" in kinds:
                r.header.rcode = RCODE.SERVFAIL
        for t, v in have:
            r.add_answer(RR(name, qtype, ttl=ttl, rdata=rdata(t, v)))
        break
    limit = 512
    for ar in q.ar:
        if ar.rtype == QTYPE.OPT:
            limit = max(512, ar.rclass)
            r.add_ar(EDNS0(udp_len=1232))
    out = r.pack()
    if len(out) > limit:
        r.rr = []
        r.header.tc = 1
        out = r.pack()
    return out


def main():
    port, path = int(sys.argv[1]), sys.argv[2]
    zone = load(path)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))
    print("ready", flush=True)

    def watch_stdin():
        sys.stdin.read()
        os._exit(0)     # recvfrom in the main thread does not wake up

    threading.Thread(target=watch_stdin, daemon=True).start()
    while True:
        try:
            data, peer = s.recvfrom(4096)
        except OSError:
            return
        try:
            out = answer(zone, data)
        except Exception as e:          # a name dnslib cannot write
            print(f"error {e!r}", file=sys.stderr, flush=True)
            q = DNSRecord.parse(data)
            r = q.reply()
            r.header.rcode = RCODE.SERVFAIL
            out = r.pack()
        if out is not None:
            s.sendto(out, peer)


if __name__ == "__main__":
    main()
