#!/usr/bin/python3
"""
test_milter.py - a content filter for mxgate's milter tests, written with
python3-milter (Debian's /usr/bin/python3).  Usage: test_milter.py MODE
PORT LOG; prints "ready" once it listens on 127.0.0.1:PORT.  It writes
one line per callback to LOG (what it was told), so a test can check the
macros and the envelope.  MODE says what it does at the end of data:
  pass        continue, no edits
  replycode   550 5.7.1 with a two-line text (setreply)
  tempcode    451 4.7.1 with a text
  reject      reject (no text)
  discard     discard
  sleep       sleep 30 s in eom (past the gateway's shortened timeout)
  die         exit in the middle of the body
  headers     addheader, insheader at the top, chgheader Subject,
              delete X-Drop
  envelope    addrcpt bob, delrcpt alice, chgfrom <new@remote.test>
  body        replacebody
  quarantine  quarantine "held by test"
  rcptreject  550 5.1.1 at RCPT for bob@example.test only
  mailreject  550 5.7.1 at MAIL FROM
"""
import os
import sys
import time

import Milter

MODE, PORT, LOG = sys.argv[1], int(sys.argv[2]), sys.argv[3]


def note(*words):
    with open(LOG, "a") as f:
        f.write(" ".join(str(w) for w in words) + "\n")


class TestMilter(Milter.Base):
    def __init__(self):
        self.id = Milter.uniqueID()

    def connect(self, hostname, family, hostaddr):
        note("connect", hostname, hostaddr[0], self.getsymval("j"),
             self.getsymval("{client_addr}"))
        return Milter.CONTINUE

    def hello(self, heloname):
        note("helo", heloname)
        return Milter.CONTINUE

    def envfrom(self, mailfrom, *params):
        note("mail", mailfrom, self.getsymval("{mail_addr}"),
             self.getsymval("i"))
        if MODE == "mailreject":
            self.setreply("550", "5.7.1", "sender refused by the test milter")
            return Milter.REJECT
        return Milter.CONTINUE

    def envrcpt(self, to, *params):
        note("rcpt", to, self.getsymval("{rcpt_addr}"))
        if MODE == "rcptreject" and to.lower() == "<bob@example.test>":
            self.setreply("550", "5.1.1", "no such user here")
            return Milter.REJECT
        return Milter.CONTINUE

    def header(self, name, value):
        note("header", name, repr(value))
        return Milter.CONTINUE

    def eoh(self):
        note("eoh")
        return Milter.CONTINUE

    def body(self, chunk):
        note("body", len(chunk))
        if MODE == "die":
            os._exit(3)
        return Milter.CONTINUE

    def eom(self):
        note("eom", self.getsymval("i"))
        if MODE == "replycode":
            self.setreply("550", "5.7.1", "Rejected by the test milter",
                          "second line")
            return Milter.REJECT
        if MODE == "tempcode":
            self.setreply("451", "4.7.1", "Greylisted by the test milter")
            return Milter.TEMPFAIL
        if MODE == "reject":
            return Milter.REJECT
        if MODE == "discard":
            return Milter.DISCARD
        if MODE == "sleep":
            time.sleep(30)
        if MODE == "headers":
            self.addheader("X-Test-Added", "added value")
            self.addheader("X-Test-Top", "at the top", 0)
            self.chgheader("Subject", 1, "changed subject")
            self.chgheader("X-Drop", 1, "")
        if MODE == "envelope":
            self.addrcpt("<bob@example.test>")
            self.delrcpt("<alice@example.test>")
            self.chgfrom("<new@remote.test>")
        if MODE == "body":
            self.replacebody(b"replaced body line 1\r\nline 2\r\n")
        if MODE == "quarantine":
            self.quarantine("held by test")
        return Milter.CONTINUE

    def close(self):
        return Milter.CONTINUE


def main():
    Milter.factory = TestMilter
    Milter.set_flags(Milter.ADDHDRS | Milter.CHGHDRS | Milter.ADDRCPT |
                     Milter.DELRCPT | Milter.CHGFROM | Milter.CHGBODY |
                     Milter.QUARANTINE)
    print("ready", flush=True)
    Milter.runmilter("mxgatetest", f"inet:{PORT}@127.0.0.1", 60)


if __name__ == "__main__":
    main()
