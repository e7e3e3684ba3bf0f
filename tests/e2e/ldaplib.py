"""
ldaplib.py - a real OpenLDAP slapd for the directory tests.
Owns: a slapd.conf in a temp folder (mdb, the syncprov overlay, a small
schema defining mailAlternateAddress and the Active Directory attributes
proxyAddresses and userAccountControl), the LDIF loaded with slapadd,
slapd on a free loopback port, stopped by its PID; ldapadd/ldapdelete.
Never: touches a slapd it did not start.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess

import mxlib

SUFFIX = "dc=example,dc=test"
ROOT_DN = "cn=admin," + SUFFIX
ROOT_PW = "s3cret-test"
SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"

# Private test OIDs (an example arc); the AD names and syntaxes.
SCHEMA = """\
attributetype ( 1.3.6.1.4.1.55555.1.1 NAME 'mailAlternateAddress'
  EQUALITY caseIgnoreIA5Match SUBSTR caseIgnoreIA5SubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 )
attributetype ( 1.3.6.1.4.1.55555.1.2 NAME 'proxyAddresses'
  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
attributetype ( 1.3.6.1.4.1.55555.1.3 NAME 'userAccountControl'
  EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.55555.2.1 NAME 'mxTestAccount' AUXILIARY
  MAY ( mail $ mailAlternateAddress $ proxyAddresses $ userAccountControl ) )
"""

AD_FILTER = ("(&(|(mail=%s)(proxyAddresses=smtp:%s))"
             "(!(userAccountControl:1.2.840.113556.1.4.803:=2)))")


def person(uid: str, mail: str | None = None, alt: list[str] = (),
           proxy: list[str] = (), uac: int | None = None) -> str:
    lines = [f"dn: uid={uid},ou=people,{SUFFIX}", "objectClass: inetOrgPerson",
             "objectClass: mxTestAccount", f"uid: {uid}", f"cn: {uid}",
             f"sn: {uid}"]
    if mail:
        lines.append(f"mail: {mail}")
    lines += [f"mailAlternateAddress: {a}" for a in alt]
    lines += [f"proxyAddresses: {p}" for p in proxy]
    if uac is not None:
        lines.append(f"userAccountControl: {uac}")
    return "\n".join(lines) + "\n\n"


def base_ldif(generated: int = 1000) -> str:
    out = [f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\n"
           "dc: example\no: Example\n\n",
           f"dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\n"
           "ou: people\n\n",
           person("alice", "alice@example.test", alt=["al@example.test"]),
           person("bob", "Bob@Example.test"),
           person("adu", None, proxy=["SMTP:adu@example.test",
                                      "smtp:adu.alias@example.test",
                                      "X400:c=US;a= ;p=Example"], uac=512),
           person("dis", "dis@example.test",
                  proxy=["SMTP:dis@example.test"], uac=514),
           f"dn: cn=sales,ou=people,{SUFFIX}\nobjectClass: groupOfNames\n"
           "objectClass: mxTestAccount\ncn: sales\n"
           f"member: uid=alice,ou=people,{SUFFIX}\n"
           "mail: sales@example.test\n\n"]
    out += [person(f"user{i}", f"user{i}@example.test")
            for i in range(generated)]
    return "".join(out)


class Slapd:
    """One slapd on 127.0.0.1:port, its files in folder."""

    def __init__(self, folder: str, ldif: str | None = None):
        self.dir = folder
        os.makedirs(os.path.join(folder, "db"), exist_ok=True)
        self.port = mxlib.free_port()
        self.uri = f"ldap://127.0.0.1:{self.port}"
        self.conf = os.path.join(folder, "slapd.conf")
        self.log = os.path.join(folder, "slapd.log")
        self.proc: subprocess.Popen | None = None
        with open(os.path.join(folder, "mxtest.schema"), "w") as f:
            f.write(SCHEMA)
        with open(self.conf, "w") as f:
            f.write(f"""\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include {folder}/mxtest.schema
modulepath /usr/lib/ldap
sizelimit unlimited
moduleload back_mdb
moduleload syncprov
pidfile {folder}/slapd.pid
database mdb
maxsize 104857600
suffix "{SUFFIX}"
rootdn "{ROOT_DN}"
rootpw {ROOT_PW}
directory {folder}/db
index objectClass eq
index entryUUID,entryCSN eq
overlay syncprov
syncprov-checkpoint 100 10
""")
        data = os.path.join(folder, "data.ldif")
        with open(data, "w") as f:
            f.write(ldif if ldif is not None else base_ldif())
        p = subprocess.run([SLAPADD, "-f", self.conf, "-l", data, "-q"],
                           capture_output=True, timeout=120)
        mxlib.check(p.returncode == 0, f"slapadd: {p.stderr[-2000:]!r}")

    def start(self) -> "Slapd":
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [SLAPD, "-h", self.uri + "/", "-f", self.conf, "-d", "0"],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
        logf.close()

        def up():
            if self.proc.poll() is not None:
                mxlib.fail(f"slapd exited {self.proc.returncode}: "
                           + open(self.log, errors="replace").read()[-2000:])
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0
        mxlib.wait_until(up, 30, "slapd listening")
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self.proc = None

    def ldap(self, tool: str, text: str | None = None,
             args: list[str] = ()) -> None:
        p = subprocess.run([tool, "-x", "-H", self.uri, "-D", ROOT_DN,
                            "-w", ROOT_PW] + list(args),
                           input=(text or "").encode(), capture_output=True,
                           timeout=30)
        mxlib.check(p.returncode == 0, f"{tool}: {p.stderr!r}")

    def add(self, ldif: str) -> None:
        self.ldap("ldapadd", ldif)

    def delete(self, dn: str) -> None:
        self.ldap("ldapdelete", args=[dn])

    def modify(self, ldif: str) -> None:
        self.ldap("ldapmodify", ldif)


def slapd(ctx, name: str = "slapd", ldif: str | None = None) -> Slapd:
    """A started slapd; the test stops it (try/finally), and the runner
    kills the test's process group if the test cannot."""
    return Slapd(os.path.join(ctx.tmpdir, name), ldif).start()
