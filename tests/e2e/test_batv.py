"""
test_batv.py - BATV (issue 14, part 5; sender/batv.c): with batv_domains
and batv_key_file, an authenticated user's mail relayed to an outside
next hop (a Python sink as relayhost) goes out with a prvs= MAIL FROM
whose tag this file computes itself (HMAC-SHA1, the README's form); a
bounce (null sender) to a signed address with a valid tag is taken and
reaches the next hop with the plain address as its envelope recipient;
without a tag, or with a bad, expired or malformed one, it gets
553 5.7.1 once batv_grace is over, and is taken (and logged) during the
grace, whose start is kept in the spool across a restart; mail with a
sender to a tagged address is delivered to the plain address; a MAIL
FROM with our valid tag is a proof for reports (batv=pass in the queue
file's P record), so a report to it is sent where an untagged one at
our domain is suppressed; key rotation through reloads (the first line
signs, every line verifies, a readable key file keeps the old config);
check-config names the line of each error.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time

import mxlib
from mxlib import check, check_eq
import test_dsn_ext as dsn
import test_metrics as met
import test_tls_auth as tls

WAIT = 10.0
KEY_ID = 1
SECRET = "e2e-batv-secret-0123456789"
KEYS = f"# BATV keys\n{KEY_ID} {SECRET}\n"


def tag(addr: str, days_ago: int = 0, key: int = KEY_ID,
        secret: str = SECRET) -> str:
    """addr signed as mxgate signs it (README, BATV), days_ago days ago."""
    local, domain = addr.rsplit("@", 1)
    day = (int(time.time()) // 86400 - days_ago + 7) % 1000
    msg = f"{key}{day:03d}{addr.lower()}".encode()
    mac = hmac.new(secret.encode(), msg, hashlib.sha1).hexdigest()[:6]
    return f"prvs={key}{day:03d}{mac}={local}@{domain}"


def write_keys(gw, text: str = KEYS, mode: int = 0o600) -> None:
    path = os.path.join(gw.dir, "batv.keys")
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def batv_gateway(gw_factory, hop, relay, grace: str = "0", **conf):
    settings = dsn.hop_config(f"smtp:127.0.0.1:{hop.port}", relay,
                              batv_domains="example.test",
                              batv_key_file="batv.keys", batv_grace=grace,
                              harvest_exempt="127.0.0.0/8")
    settings.update(conf)
    gw = gw_factory(config=settings, start=False)
    write_keys(gw)
    gw.start()
    return gw


def bounce(gw, rcpt: str, want: str, sender: str = "") -> str | None:
    """A message from sender (<> by default) to rcpt, if RCPT gets want."""
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", f"MAIL FROM:<{sender}>")
        r = c.cmd(f"RCPT TO:<{rcpt}>")
        check(r.text.startswith(want), f"RCPT TO:<{rcpt}>: {r.text!r}")
        if not want.startswith("250"):
            return r.text
        c.expect("354 *", "DATA")
        c.send(mxlib.make_message("batv", sender=sender or "mailer@x.test",
                                  to=rcpt) + b".\r\n")
        text = c.reply(WAIT).text
    check(dsn.QID.match(text), f"not queued: {text!r}")
    return text


def test_outbound_auth_mail_is_signed(ctx, gw_factory):
    with dsn.py_sink(ctx, "relay") as relay, dsn.py_sink(ctx, "hop") as hop:
        keys = ctx.write("out.keys", KEYS)
        os.chmod(keys, 0o600)
        conf = dsn.hop_config(f"smtp:127.0.0.1:{hop.port}", relay,
                              auth_on_smtp="yes", batv_domains="example.test",
                              batv_key_file=keys)
        gw = tls.tls_gateway(gw_factory, submission=False, **conf)
        sender = "alice@example.test"
        with tls.raw(gw, tls=True) as c:
            c.expect(tls.AUTH_OK, "AUTH PLAIN " +
                     tls.plain(tls.USER, tls.PASSWORD))
            c.expect("250 2.1.0 Ok", f"MAIL FROM:<{sender}>")
            c.expect("250 2.1.5 Ok", "RCPT TO:<friend@remote.test>")
            c.expect("250 2.1.5 Ok", "RCPT TO:<bob@example.test>")
            c.expect("354 *", "DATA")
            c.send(mxlib.make_message("out", sender=sender) + b".\r\n")
            c.expect("250 2.0.0 Ok: queued as *")
        rec = relay.wait_messages(1, WAIT)[0]
        check_eq(rec.rcpts, ["friend@remote.test"], "outbound recipients")
        check_eq(rec.mail_from, tag(sender), "outbound MAIL FROM")
        ev = gw.wait_event("batv", action="sign", timeout_s=WAIT)
        check_eq(ev.get("from"), f"<{sender}>", ev["line"])
        check(ev.get("mail_from", "").startswith("<prvs"), ev["line"])
        # the copy for our own domain keeps the sender as it came
        local = hop.wait_messages(1, WAIT)[0]
        check_eq((local.mail_from, local.rcpts),
                 (sender, ["bob@example.test"]), "local copy's envelope")


def test_outbound_other_domain_not_signed(ctx, gw_factory):
    """Only senders at our batv_domains, from trusted clients, are signed: a
    relay_networks client sending as a user of a domain not in
    batv_domains goes out as it came."""
    with dsn.py_sink(ctx, "relay") as relay, dsn.py_sink(ctx, "hop") as hop:
        gw = batv_gateway(gw_factory, hop, relay,
                          domains="example.test, other.test",
                          relay_networks="127.0.0.2/32")
        for sender in ("carol@other.test", "alice@example.test"):
            with mxlib.session(gw, bind="127.0.0.2") as c:
                c.expect("250 2.1.0 Ok", f"MAIL FROM:<{sender}>")
                c.expect("250 2.1.5 Ok", "RCPT TO:<friend@remote.test>")
                c.expect("354 *", "DATA")
                c.send(mxlib.make_message("out", sender=sender) + b".\r\n")
                c.expect("250 2.0.0 Ok: queued as *")
        recs = relay.wait_messages(2, WAIT)
        check_eq(sorted(r.mail_from for r in recs),
                 sorted(["carol@other.test", tag("alice@example.test")]),
                 "outbound senders")


def test_bounce_with_valid_tag_delivered_to_plain(ctx, gw_factory):
    with dsn.py_sink(ctx, "relay") as relay, dsn.py_sink(ctx, "hop") as hop:
        gw = batv_gateway(gw_factory, hop, relay)
        t = tag("alice@example.test")
        bounce(gw, t, "250 2.1.5 Ok")
        rec = hop.wait_messages(1, WAIT)[0]
        check_eq((rec.mail_from, rec.rcpts), ("", ["alice@example.test"]),
                 "the bounce's envelope at the next hop")
        ev = gw.wait_event("batv", result="pass", action="accept")
        check("alice@example.test>" in ev.get("to", ""), ev["line"])
        # the prefix in any case, and a tag made yesterday
        bounce(gw, "PRVS=" + tag("alice@example.test", 1)[5:],
               "250 2.1.5 Ok")
        recs = hop.wait_messages(2, WAIT)
        check_eq(recs[1].rcpts, ["alice@example.test"], "second bounce")
        # mail with a sender to a tagged address: the tag is removed
        bounce(gw, tag("bob@example.test", 30), "250 2.1.5 Ok",
               sender="x@remote.test")
        recs = hop.wait_messages(3, WAIT)
        check_eq((recs[2].mail_from, recs[2].rcpts),
                 ("x@remote.test", ["bob@example.test"]), "tagged, sender")
        gw.wait_event("batv", action="strip", bounce="no")


def test_bounce_without_valid_tag_refused(ctx, gw_factory):
    with dsn.py_sink(ctx, "relay") as relay, dsn.py_sink(ctx, "hop") as hop:
        keys = ctx.write("refuse.keys", KEYS)
        os.chmod(keys, 0o600)
        gw, port = met.metrics_gateway(gw_factory, **dsn.hop_config(
            f"smtp:127.0.0.1:{hop.port}", relay,
            batv_domains="example.test", batv_key_file=keys,
            batv_grace="0", harvest_exempt="127.0.0.0/8"))
        good = tag("alice@example.test")
        cases = {
            "none": "alice@example.test",
            "badsig": good[:-len("=alice@example.test") - 1] +
            ("0" if good[14] != "0" else "1") + "=alice@example.test",
            "expired": tag("alice@example.test", 9),
            "nokey": tag("alice@example.test", key=4),
            "malformed": "prvs=junk=alice@example.test",
            "other_user": tag("bob@example.test")[:16] + "alice@example.test",
        }
        for name, rcpt in cases.items():
            text = bounce(gw, rcpt, "553 5.7.1")
            check(f"<{rcpt}>" in text and "BATV" in text, f"{name}: {text}")
        want = {"none": "none", "badsig": "badsig", "expired": "expired",
                "nokey": "nokey", "malformed": "malformed",
                "other_user": "badsig"}
        mxlib.wait_until(lambda: len(gw.events("rcpt", verdict="batv",
                                               action="reject")) ==
                         len(cases), WAIT, "a rcpt decision line each")
        evs = gw.events("batv", action="reject")
        check_eq(sorted(e.get("result") for e in evs),
                 sorted(want.values()), "batv reject lines")
        s = met.samples(met.scrape(port))
        check_eq(met.value(s, "mxgate_batv_total", result="reject"),
                 float(len(cases)), "mxgate_batv_total reject")
        check_eq(met.value(s, "mxgate_rcpt_total", decision="reject",
                           reason="batv"), float(len(cases)),
                 "mxgate_rcpt_total batv")
        dsn.stays_false(lambda: hop.received() and
                        [r.rcpts for r in hop.received()], 0.5,
                        "a refused bounce delivered")


def test_grace_then_enforced_across_restart(ctx, gw_factory):
    with dsn.py_sink(ctx, "relay") as relay, dsn.py_sink(ctx, "hop") as hop:
        gw = batv_gateway(gw_factory, hop, relay, grace="7d")
        since_path = os.path.join(gw.spool_dir, "batv.since")
        bounce(gw, "alice@example.test", "250 2.1.5 Ok")
        ev = gw.wait_event("batv", action="accept_grace")
        check_eq(ev.get("result"), "none", ev["line"])
        rec = hop.wait_messages(1, WAIT)[0]
        check_eq(rec.rcpts, ["alice@example.test"], "grace bounce")
        with open(since_path) as f:
            since = f.read()
        check(abs(int(since) - time.time()) < 60, f"batv.since {since!r}")
        # a restart keeps the switch-on time (the grace does not restart)
        gw.stop()
        gw.start()
        with open(since_path) as f:
            check_eq(f.read(), since, "batv.since after a restart")
        # BATV on for 8 days: the grace is over, also after a restart
        gw.stop()
        with open(since_path, "w") as f:
            f.write(f"{int(time.time()) - 8 * 86400}\n")
        gw.start()
        bounce(gw, "alice@example.test", "553 5.7.1")
        bounce(gw, tag("alice@example.test"), "250 2.1.5 Ok")
        # switched off: the file goes, so a new switch-on starts a grace
        gw.stop()
        gw.settings["batv_domains"] = ""
        gw.start()
        mxlib.wait_until(lambda: not os.path.exists(since_path), WAIT,
                         "batv.since removed when BATV is off")
        bounce(gw, "alice@example.test", "250 2.1.5 Ok")


def test_report_to_tagged_sender_has_batv_proof(ctx, gw_factory):
    """unknown_recipient = bounce, ndr_require_auth = yes, a client not
    trusted: a report to our own domain's sender goes only when MAIL
    FROM carries our valid tag (at receipt, and from the queue file's P
    record for a later delivery failure); it reaches the plain address."""
    with dsn.py_sink(ctx, "relay") as relay, dsn.py_sink(ctx, "hop") as hop:
        hop.rcpt_reply = lambda a: ("550 5.1.1 No such user" if
                                    a.startswith("carol") else
                                    "250 2.1.5 Ok")
        gw = batv_gateway(gw_factory, hop, relay, grace="7d",
                          unknown_recipient="bounce",
                          ndr_require_auth="yes")
        t = tag("alice@example.test")
        qids = []
        for sender in ("alice@example.test", t):
            text = bounce(gw, "nobody@example.test", "250 2.1.5 Ok",
                          sender=sender)
            qids.append(dsn.QID.match(text).group(1))
        ev = gw.wait_event("dsn", qid=qids[0], ndr="suppressed",
                           timeout_s=WAIT)
        check_eq(ev.get("reason"), "forged_local_sender", ev["line"])
        ev = gw.wait_event("dsn", qid=qids[1], timeout_s=WAIT)
        check("dsn_qid" in ev, ev["line"])
        gw.wait_event("batv", result="pass", proof="yes")
        rec = hop.wait_messages(1, WAIT)[0]
        check_eq((rec.mail_from, rec.rcpts), ("", ["alice@example.test"]),
                 "report envelope")
        # a later failure: the proof is read back from the P record
        text = bounce(gw, "carol@example.test", "250 2.1.5 Ok", sender=t)
        qid = dsn.QID.match(text).group(1)
        ev = gw.wait_event("dsn", qid=qid, timeout_s=WAIT)
        check("dsn_qid" in ev, ev["line"])
        recs = hop.wait_messages(2, WAIT)
        reports = [r for r in recs if r.mail_from == ""]
        check_eq([r.rcpts for r in reports], [["alice@example.test"]] * 2,
                 "both reports to the plain address")
        check(qid in reports[1].data.decode("latin-1"),
              "the second report is not about the failed delivery")


def reload(gw) -> dict[str, str]:
    mark = gw.reload()
    ev = gw.wait_log(r"^.*event=reload result=(ok|partial|kept_old)\b.*$",
                     since=mark)
    return mxlib.parse_log_line(ev.group(0))


def test_key_rotation_by_reload(ctx, gw_factory):
    """README: the new key goes first (it signs), the old one stays (its
    tags still verify); once it is removed, its tags are refused; a key
    file made world-readable at a reload keeps the old configuration."""
    new = "new-key-secret-9876543210"
    with dsn.py_sink(ctx, "relay") as relay, dsn.py_sink(ctx, "hop") as hop:
        gw = batv_gateway(gw_factory, hop, relay,
                          relay_networks="127.0.0.2/32")
        old_tag = tag("alice@example.test")
        write_keys(gw, f"2 {new}\n{KEY_ID} {SECRET}\n")
        check_eq(reload(gw).get("result"), "ok", "reload with two keys")
        with mxlib.session(gw, bind="127.0.0.2") as c:
            c.expect("250 2.1.0 Ok", "MAIL FROM:<alice@example.test>")
            c.expect("250 2.1.5 Ok", "RCPT TO:<friend@remote.test>")
            c.expect("354 *", "DATA")
            c.send(mxlib.make_message("rot", sender="alice@example.test")
                   + b".\r\n")
            c.expect("250 2.0.0 Ok: queued as *")
        rec = relay.wait_messages(1, WAIT)[0]
        check_eq(rec.mail_from, tag("alice@example.test", key=2,
                                    secret=new), "signed with the new key")
        bounce(gw, old_tag, "250 2.1.5 Ok")
        bounce(gw, rec.mail_from, "250 2.1.5 Ok")
        write_keys(gw, f"2 {new}\n")
        check_eq(reload(gw).get("result"), "ok", "reload, old key gone")
        bounce(gw, old_tag, "553 5.7.1")
        bounce(gw, rec.mail_from, "250 2.1.5 Ok")
        write_keys(gw, f"2 {new}\n", mode=0o644)
        check_eq(reload(gw).get("result"), "kept_old", "a readable key file")
        bounce(gw, rec.mail_from, "250 2.1.5 Ok")


def test_check_config_errors(ctx):
    os.makedirs(os.path.join(ctx.tmpdir, "spool"), exist_ok=True)
    ctx.write("users", "alice@example.test\n")
    base = ("hostname = mx.example.test\nspool = spool\n"
            "domains = example.test\ndirectory = file:users\n")

    def run(extra: str):
        path = ctx.write("b.conf", base + extra)
        p = ctx.run_binary(["check-config", "-c", path])
        return p.returncode, p.stderr.decode() + p.stdout.decode()

    keys = ctx.write("batv.keys", KEYS)
    os.chmod(keys, 0o600)
    rc, out = run("batv_domains = example.test\nbatv_key_file = batv.keys\n")
    check(rc == 0, out)
    rc, out = run("batv_domains = other.test\nbatv_key_file = batv.keys\n")
    check(rc != 0 and ":5:" in out and "batv_domains" in out and
          "not listed in domains" in out, out)
    rc, out = run("batv_domains = example.test\n")
    check(rc != 0 and ":5:" in out and "needs batv_key_file" in out, out)
    os.chmod(keys, 0o644)
    rc, out = run("batv_domains = example.test\nbatv_key_file = batv.keys\n")
    check(rc != 0 and "group or others" in out, out)
    ctx.write("batv.keys", KEYS + "1 a-second-line-for-key-1\nx\n")
    os.chmod(keys, 0o600)
    rc, out = run("batv_domains = example.test\nbatv_key_file = batv.keys\n")
    check(rc != 0 and "batv.keys:3:" in out and "batv.keys:4:" in out, out)
    check(SECRET not in out, "a secret in an error message")
    rc, out = run("batv_grace = 31d\n")
    check(rc != 0 and ":5:" in out and "batv_grace" in out, out)
