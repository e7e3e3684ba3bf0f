#!/usr/bin/python3
"""dkim_sign.py - keys and DKIM signatures for the DKIM tests, with
Debian's python3-dkim (dkimpy) and python3-nacl; run by /usr/bin/python3.

    dkim_sign.py keygen rsa|ed25519 KEYFILE [BITS]
        writes the private key to KEYFILE, prints the key record's p=
    dkim_sign.py sign rsa|ed25519 KEYFILE DOMAIN SELECTOR HCANON/BCANON [L]
        reads a message (CRLF lines) on stdin, prints it signed; L given
        ("l"): the signature has an l= tag
"""
import base64
import subprocess
import sys

import dkim


def keygen(kind, path, bits):
    if kind == "ed25519":
        import nacl.signing
        k = nacl.signing.SigningKey.generate()
        with open(path, "wb") as f:
            f.write(base64.b64encode(bytes(k)))
        print(base64.b64encode(bytes(k.verify_key)).decode())
        return
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                    f"rsa_keygen_bits:{bits}", "-out", path], check=True,
                   stderr=subprocess.DEVNULL)
    der = subprocess.run(["openssl", "pkey", "-in", path, "-pubout",
                          "-outform", "DER"], check=True,
                         capture_output=True).stdout
    print(base64.b64encode(der).decode())


def sign(kind, path, domain, selector, canon, length):
    msg = sys.stdin.buffer.read()
    with open(path, "rb") as f:
        key = f.read()
    h, b = canon.split("/")
    alg = b"ed25519-sha256" if kind == "ed25519" else b"rsa-sha256"
    sig = dkim.sign(msg, selector.encode(), domain.encode(), key,
                    canonicalize=(h.encode(), b.encode()),
                    signature_algorithm=alg, length=length,
                    include_headers=[b"from", b"to", b"subject", b"date",
                                     b"message-id"])
    sys.stdout.buffer.write(sig + msg)


if __name__ == "__main__":
    a = sys.argv[1:]
    if a[0] == "keygen":
        keygen(a[1], a[2], int(a[3]) if len(a) > 3 else 1024)
    else:
        sign(a[1], a[2], a[3], a[4], a[5], len(a) > 6 and a[6] == "l")
