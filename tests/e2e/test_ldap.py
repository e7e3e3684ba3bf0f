"""
test_ldap.py - directory = ldap in sync mode against a real slapd
(syncprov, RFC 4533 refreshAndPersist) started by the test.
Covers: valid, alias (mailAlternateAddress), group with mail, generated
users, unknown, RFC 4515 injection attempts all unknown; the Active
Directory filter (proxyAddresses=smtp:, disabled accounts excluded by
userAccountControl's bit 2); ldapadd/ldapdelete seen within 5 s; slapd
killed: answers from memory, then after a restart from the snapshot;
LDAP down with no snapshot: 451 4.3.0, never 550; the first URI dead:
the second used and the switch logged; a bind password file 0644
refused by check-config, 0600 binds; no file mxgate writes holds a
directory address in plaintext.
"""

from __future__ import annotations

import os
import re
import time

import ldaplib
import mxlib
from mxlib import check, check_eq

BASE = "ou=people," + ldaplib.SUFFIX
VALID = ("alice@example.test", "al@example.test", "bob@example.test",
         "BOB@example.test", "sales@example.test", "user0@example.test",
         "user999@example.test", "alice+tag@example.test")
UNKNOWN = ("nobody@example.test", "user1000@example.test",
           "*@example.test", "alice*@example.test", "a*@example.test",
           "al*ce@example.test")
# Not dot-atoms: the parser may refuse them (5xx), never accept them.
QUOTED = ("\\2a@example.test", '"a)(mail=*"@example.test', '"*)(|(mail=*"@example.test',
          '"alice)(uid=*"@example.test', '"\\\\2a"@example.test')


def stop_all(ctx, sl):
    """Gateways first: slapd waits for its persistent searches to end."""
    for g in ctx.gateways:
        g.stop()
    sl.stop()


def ldap_gw(ctx, sl, start=True, **extra):
    # many unknowns and sessions in a row: the harvest guard and the
    # connection rate limit would slow the tests down
    cfg = {"directory": "ldap", "ldap_uri": sl.uri, "ldap_base": BASE,
           "ldap_timeout": "2s", "harvest_guard": "off",
           "max_connection_rate_per_client": "0"}
    cfg.update(extra)
    return ctx.gateway(start=start, users=None, config=cfg)


def rcpt(gw, addrs):
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        return [c.cmd(f"RCPT TO:<{a}>").raw.decode() for a in addrs]


def check_answers(gw, valid, unknown):
    got = rcpt(gw, list(valid) + list(unknown))
    for a, r in zip(valid, got):
        check(r.startswith("250 2.1.5"), f"RCPT {a}: {r!r}")
    for a, r in zip(unknown, got[len(valid):]):
        check(r.startswith("550 5.1.1"), f"RCPT {a}: {r!r}")


def wait_rcpt(gw, addr, prefix, timeout_s):
    t0 = time.monotonic()
    mxlib.wait_until(lambda: rcpt(gw, [addr])[0].startswith(prefix),
                     timeout_s, f"RCPT {addr} answered {prefix}")
    return time.monotonic() - t0


def test_ldap_sync_answers(ctx):
    sl = ldaplib.slapd(ctx)
    try:
        gw = ldap_gw(ctx, sl)
        gw.wait_log(r"event=ldap .*synced=yes .*entries=1004 addresses=1005 ", 30)
        check_answers(gw, VALID, UNKNOWN)
        got = rcpt(gw, QUOTED)
        for a, r in zip(QUOTED, got):
            check(r.startswith("5"), f"RCPT {a}: {r!r}")
        p = ctx.run_binary(["directory", "lookup", "-c", gw.conf_path,
                            "al@example.test"])
        out = p.stdout.decode()
        check_eq(p.returncode, 0, f"lookup exit ({out!r} {p.stderr!r})")
        check(re.match(r"al@example\.test: valid \(back-end ldap, ", out),
              f"lookup said {out!r}")
    finally:
        stop_all(ctx, sl)


def test_ldap_ad_filter(ctx):
    sl = ldaplib.slapd(ctx)
    try:
        gw = ldap_gw(ctx, sl, ldap_filter=ldaplib.AD_FILTER)
        gw.wait_log(r"event=ldap .*synced=yes", 30)
        check_answers(gw, ("adu@example.test", "adu.alias@example.test",
                           "ADU@example.test", "sales@example.test",
                           "alice@example.test", "user5@example.test"),
                      ("dis@example.test", "al@example.test",
                       "nobody@example.test"))
        # disabling an account removes it, enabling brings it back
        sl.modify(f"dn: uid=adu,{BASE}\nchangetype: modify\n"
                  "replace: userAccountControl\nuserAccountControl: 514\n")
        wait_rcpt(gw, "adu@example.test", "550 5.1.1", 5)
        sl.modify(f"dn: uid=dis,{BASE}\nchangetype: modify\n"
                  "replace: userAccountControl\nuserAccountControl: 512\n")
        wait_rcpt(gw, "dis@example.test", "250 2.1.5", 5)
    finally:
        stop_all(ctx, sl)


def test_ldap_sync_add_delete_within_5s(ctx):
    sl = ldaplib.slapd(ctx)
    try:
        gw = ldap_gw(ctx, sl)
        gw.wait_log(r"event=ldap .*synced=yes", 30)
        check_answers(gw, (), ("newbie@example.test",))
        sl.add(ldaplib.person("newbie", "newbie@example.test",
                              alt=["nb@example.test"]))
        t_add = wait_rcpt(gw, "newbie@example.test", "250 2.1.5", 5)
        check_answers(gw, ("nb@example.test",), ())
        sl.delete(f"uid=newbie,{BASE}")
        t_del = wait_rcpt(gw, "newbie@example.test", "550 5.1.1", 5)
        check_answers(gw, (), ("nb@example.test",))
        sl.delete(f"uid=bob,{BASE}")
        wait_rcpt(gw, "bob@example.test", "550 5.1.1", 5)
        print(f"ldap add seen in {t_add:.3f}s, delete in {t_del:.3f}s")
    finally:
        stop_all(ctx, sl)


def test_ldap_killed_answers_from_memory_then_snapshot(ctx):
    sl = ldaplib.slapd(ctx)
    try:
        gw = ldap_gw(ctx, sl)
        gw.wait_log(r"event=ldap .*synced=yes", 30)
        snap = os.path.join(gw.spool_dir, "ldap.snapshot")
        mxlib.wait_until(lambda: os.path.exists(snap), 10, "the snapshot")
        sl.kill()
        gw.wait_log(r"event=ldap .*answering=synced-set", 10)
        check_answers(gw, VALID, UNKNOWN[:2])
        gw.stop()
        gw.start()
        gw.wait_log(r"event=ldap snapshot=loaded entries=\d+ age_s=\d+", 10,
                    since=gw.run_mark)
        check_answers(gw, VALID, UNKNOWN[:2])
        # nothing mxgate wrote holds a directory address in plaintext
        names = [b"alice", b"al@example", b"sales@", b"user999@", b"bob@"]
        for root, _, files in os.walk(gw.spool_dir):
            for fn in files:
                path = os.path.join(root, fn)
                if not os.path.isfile(path):
                    continue  # the control socket
                data = open(path, "rb").read().lower()
                for n in names:
                    check(n not in data, f"{n!r} in plaintext in {fn}")
        check(len(open(snap, "rb").read().splitlines()) >= 1006,
              "snapshot lines")
        # slapd back: synced again, changes seen
        sl.start()
        gw.wait_log(r"event=ldap .*synced=yes", 30, since=gw.run_mark)
        check_answers(gw, VALID, UNKNOWN[:2])
    finally:
        stop_all(ctx, sl)


def test_ldap_down_without_snapshot_is_451(ctx):
    dead = mxlib.free_port()
    gw = ctx.gateway(users=None, config={
        "directory": "ldap", "ldap_uri": f"ldap://127.0.0.1:{dead}",
        "ldap_base": BASE, "ldap_timeout": "500ms"})
    got = rcpt(gw, ["alice@example.test", "nobody@example.test"])
    for r in got:
        check(r.startswith("451 4.3.0"), f"RCPT with LDAP down: {r!r}")
    gw.wait_log(r"event=ldap .*answering=tempfail", 10)


def test_ldap_first_uri_dead_second_used(ctx):
    sl = ldaplib.slapd(ctx)
    try:
        dead = mxlib.free_port()
        gw = ldap_gw(ctx, sl, ldap_uri=f"ldap://127.0.0.1:{dead} {sl.uri}")
        gw.wait_log(r"event=ldap switch=1 from=ldap://127\.0\.0\.1:%d "
                    r"to=%s" % (dead, re.escape(sl.uri)), 30)
        gw.wait_log(r"event=ldap synced=yes uri=%s " % re.escape(sl.uri), 30)
        check_answers(gw, VALID[:3], UNKNOWN[:1])
    finally:
        stop_all(ctx, sl)


def test_ldap_bind_password_file_mode(ctx):
    sl = ldaplib.slapd(ctx)
    try:
        pw = ctx.write("bind.pw", ldaplib.ROOT_PW + "\n")
        os.chmod(pw, 0o644)
        gw = ldap_gw(ctx, sl, start=False, ldap_bind_dn=ldaplib.ROOT_DN,
                     ldap_bind_password_file=pw)
        gw.port = mxlib.free_port()
        gw.write_config()
        p = ctx.run_binary(["check-config", "-c", gw.conf_path])
        err = p.stderr.decode()
        check_eq(p.returncode, 1, f"check-config exit ({err!r})")
        check("ldap_bind_password_file" in err and "mode 0644" in err,
              f"check-config said {err!r}")
        os.chmod(pw, 0o600)
        p = ctx.run_binary(["check-config", "-c", gw.conf_path])
        check_eq(p.returncode, 0, f"check-config 0600 ({p.stderr!r})")
        gw.start()
        gw.wait_log(r"event=ldap .*bind_dn=set", 30)
        gw.wait_log(r"event=ldap .*synced=yes", 30)
        check_answers(gw, VALID[:2], UNKNOWN[:1])
        # a wrong password: refused, logged, and never a 550
        with open(pw, "w") as f:
            f.write("wrong\n")
        gw2 = ldap_gw(ctx, sl, ldap_bind_dn=ldaplib.ROOT_DN,
                      ldap_bind_password_file=pw)
        gw2.wait_log(r"event=ldap .*bind refused", 30)
        got = rcpt(gw2, ["alice@example.test", "nobody@example.test"])
        for r in got:
            check(r.startswith("451 4.3.0"), f"RCPT, bind refused: {r!r}")
    finally:
        stop_all(ctx, sl)


# ---------------------------------------------------------- lookup mode

def test_ldap_lookup_mode_answers(ctx):
    sl = ldaplib.slapd(ctx)
    try:
        gw = ldap_gw(ctx, sl, ldap_sync="no")
        gw.wait_log(r"event=ldap .*ready=yes mode=lookup", 30)
        check_answers(gw, VALID, UNKNOWN)
        got = rcpt(gw, QUOTED)
        for a, r in zip(QUOTED, got):
            check(r.startswith("5"), f"RCPT {a}: {r!r}")
        # the same again: from the cache, the same answers
        check_answers(gw, VALID, UNKNOWN)
        gw2 = ldap_gw(ctx, sl, ldap_sync="no", ldap_filter=ldaplib.AD_FILTER)
        gw2.wait_log(r"event=ldap .*ready=yes mode=lookup", 30)
        check_answers(gw2, ("adu@example.test", "adu.alias@example.test",
                            "sales@example.test", "alice@example.test"),
                      ("dis@example.test", "al@example.test",
                       "*@example.test"))
        p = ctx.run_binary(["directory", "lookup", "-c", gw.conf_path,
                            "sales@example.test"])
        out = p.stdout.decode()
        check_eq(p.returncode, 0, f"lookup exit ({out!r} {p.stderr!r})")
        check("valid (back-end ldap," in out, f"lookup said {out!r}")
    finally:
        stop_all(ctx, sl)


def test_ldap_lookup_down_is_451_then_recovers(ctx):
    sl = ldaplib.slapd(ctx)
    try:
        gw = ldap_gw(ctx, sl, ldap_sync="no", ldap_timeout="1s")
        gw.wait_log(r"event=ldap .*ready=yes mode=lookup", 30)
        check_answers(gw, ("alice@example.test",), ("nobody@example.test",))
        sl.kill()
        gw.wait_log(r"event=ldap .*connection lost", 10)
        # cached answers stay; uncached ones are 451, never 550
        check_answers(gw, ("alice@example.test",), ("nobody@example.test",))
        for i in range(6):
            r = rcpt(gw, [f"user{i}@example.test"])[0]
            check(r.startswith("451 4.3.0"), f"RCPT user{i}, LDAP down: {r!r}")
        gw.wait_log(r"event=ldap breaker=open failures=5 for_s=30", 10)
        sl.start()
        # reconnect (backoff) and the breaker's 30 s: then answered again
        wait_rcpt(gw, "user3@example.test", "250 2.1.5", 60)
        gw.wait_log(r"event=ldap breaker=closed", 10)
        check_answers(gw, ("user4@example.test",), ("user1000@example.test",))
    finally:
        stop_all(ctx, sl)


# ---------------------------------------------------------- poll mode

def test_ldap_poll_mode_pages_and_sweeps(ctx):
    sl = ldaplib.slapd(ctx)
    try:
        gw = ldap_gw(ctx, sl, ldap_sync="poll", ldap_sync_interval="1s",
                     ldap_filter=ldaplib.AD_FILTER)
        # 1004 entries in pages of 500: three pages, one refresh
        gw.wait_log(r"event=ldap synced=yes .*entries=1004 addresses=1005 "
                    r"swept=0 pages=3 ", 30)
        check_answers(gw, ("adu@example.test", "adu.alias@example.test",
                           "sales@example.test", "user999@example.test"),
                      ("dis@example.test", "nobody@example.test"))
        sl.add(ldaplib.person("polly", None,
                              proxy=["SMTP:polly@example.test"], uac=512))
        wait_rcpt(gw, "polly@example.test", "250 2.1.5", 5)
        sl.delete(f"uid=polly,{BASE}")
        wait_rcpt(gw, "polly@example.test", "550 5.1.1", 5)
        gw.wait_log(r"event=ldap synced=yes .*swept=1 ", 5)
        sl.kill()
        gw.wait_log(r"event=ldap .*answering=synced-set", 10)
        check_answers(gw, ("adu@example.test",), ("dis@example.test",))
    finally:
        stop_all(ctx, sl)


def test_chain_file_then_ldap_down(ctx):
    """The chain rule with a real failure: the users file knows alice
    (250, LDAP never needed); nobody is unknown to the file and LDAP
    cannot answer, so 451 4.3.0, not 550."""
    dead = mxlib.free_port()
    gw = ctx.gateway(users=["alice@example.test"], config={
        "directory": "file:users, ldap",
        "ldap_uri": f"ldap://127.0.0.1:{dead}", "ldap_base": BASE,
        "ldap_timeout": "500ms", "harvest_guard": "off"})
    got = rcpt(gw, ["alice@example.test", "nobody@example.test"])
    check(got[0].startswith("250 2.1.5"), f"alice (file): {got[0]!r}")
    check(got[1].startswith("451 4.3.0"), f"nobody (ldap down): {got[1]!r}")
    p = ctx.run_binary(["directory", "lookup", "-c", gw.conf_path,
                        "nobody@example.test"])
    out = p.stdout.decode()
    check_eq(p.returncode, 3, f"lookup exit ({out!r})")
    check("tempfail (back-end ldap," in out, f"lookup said {out!r}")
