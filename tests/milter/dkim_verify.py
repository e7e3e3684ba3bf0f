#!/usr/bin/python3
"""
dkim_verify.py MESSAGE NAME RECORD - verify MESSAGE's DKIM-Signature with
python3-dkim (Debian's /usr/bin/python3), the key record RECORD served
for NAME (and nothing else) through dnsfunc, so no DNS is asked.
Prints "pass" or "fail"; exit status 0 or 1.
"""
import sys

import dkim

path, name, record = sys.argv[1], sys.argv[2].rstrip("."), sys.argv[3]
with open(path, "rb") as f:
    msg = f.read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def dnsfunc(q, timeout=5):
    q = q.decode() if isinstance(q, bytes) else q
    return record.encode() if q.rstrip(".") == name else None


ok = dkim.verify(msg, dnsfunc=dnsfunc)
print("pass" if ok else "fail")
sys.exit(0 if ok else 1)
