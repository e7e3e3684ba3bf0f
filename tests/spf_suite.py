#!/usr/bin/python3
"""spf_suite.py - the RFC 7208 test suite (YAML) as plain lines.

Run with Debian's /usr/bin/python3 (python3-yaml).  Reads the suite and
writes, per scenario section, "Z" and then its zone and its tests, each
line tab-separated, every field with bytes outside 0x21..0x7e and "%"
written as %XX:

  Z                                  a new zone (section) starts
  R owner TYPE value...              TXT: one field per string;
                                     MX: pref name; A AAAA PTR CNAME: one;
                                     TIMEOUT: none
  T name host helo mailfrom results explanation   (results: a,b; "-")

A name with SPF records but no TXT records gets TXT copies of them, as
the suite's own header asks of drivers (RFC 7208 dropped type SPF);
"TXT: NONE" means no TXT record and no copies.  TIMEOUT at a name: a
query for a type the name has no records of times out.
Also usable as a module: load(path) gives the sections as Python data.
"""
import sys

import yaml


def esc(v):
    if isinstance(v, str):
        v = v.encode('utf-8')
    elif not isinstance(v, bytes):
        v = str(v).encode()
    out = []
    for b in v:
        if b < 0x21 or b > 0x7e or b == 0x25:
            out.append('%%%02X' % b)
        else:
            out.append(chr(b))
    return ''.join(out)


def records(zonedata):
    """[(owner, type, [values])] with the SPF-to-TXT copies added."""
    out = []
    for owner, rrs in (zonedata or {}).items():
        owner = str(owner).lower().rstrip('.')
        types = set()
        mine = []
        for rr in rrs or []:
            if isinstance(rr, str):          # TIMEOUT
                mine.append((owner, rr, []))
                types.add(rr)
                continue
            for t, v in rr.items():
                types.add(t)
                if t == 'TXT' and v == 'NONE':
                    continue            # no TXT record, and no copies
                if t in ('TXT', 'SPF'):
                    vals = v if isinstance(v, list) else [v]
                elif t == 'MX':
                    vals = [str(v[0]), str(v[1])]
                else:
                    vals = [str(v)]
                mine.append((owner, t, vals))
        if 'SPF' in types and 'TXT' not in types:
            mine += [(o, 'TXT', v) for (o, t, v) in mine if t == 'SPF']
        out += mine
    return out


def load(path):
    with open(path, 'rb') as f:
        return [d for d in yaml.safe_load_all(f) if d]


def main():
    for sec in load(sys.argv[1]):
        print('Z')
        for owner, t, vals in records(sec.get('zonedata')):
            print('\t'.join(['R', esc(owner), t] + [esc(v) for v in vals]))
        for name, tc in sec['tests'].items():
            res = tc['result']
            res = ','.join(res) if isinstance(res, list) else str(res)
            print('\t'.join(['T', esc(name), esc(tc['host']),
                             esc(tc.get('helo', '')),
                             esc(tc.get('mailfrom', '')), res,
                             esc(tc.get('explanation', '-'))]))


if __name__ == '__main__':
    main()
