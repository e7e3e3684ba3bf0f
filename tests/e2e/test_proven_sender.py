"""
test_proven_sender.py - reports only to proven senders (issue 14, part
3): with ndr_require_auth = yes an NDR or DSN goes out only with a proof,
found at receipt, that the reverse-path is real: SPF pass for MAIL FROM
(served by tests/spf_dns.py, as in test_spf.py) or a relay_networks
client; a bad value is a config error with its line.  Covers, in bounce mode (unknown_recipient = bounce) with the
reports going to a Python sink as relayhost: a forged sender at a domain
with SPF -all, a domain without SPF and a ~all softfail get no report
(logged ndr=suppressed reason=unauthenticated_sender with the envelope,
counted in mxgate_ndr_total and `mxgate stats`); an honest sender whose
SPF passes gets its report; a relay_networks client's report is sent;
shadow sends it and logs shadow=1 would=suppress; a delivery failure
(the proof read back from the queue file) follows the same rule, and an
authenticated client's auth=1 there is a proof.  The issue's "done
when": a forger sending from 50 addresses at 10 domains (SPF -all, ~all,
none; some with a DKIM signature that fails, or that passes for a domain
not aligned with MAIL FROM) gets 0 reports, while an honest SPF-pass
sender and an honest sender with no SPF whose DKIM d= has the
organizational domain of MAIL FROM (Public Suffix List) get theirs; and a
DKIM-aligned sender's delivery failure report is sent from the queue
file's P record (dkim.aligned=1).
"""

from __future__ import annotations

import os

import ctllib
import mxlib
from mxlib import check, check_eq
import test_dsn_ext as dsn
import test_metrics as met
import test_dkim as dk
import test_spf as spf

WAIT = 10.0

ZONE = [
    ("pass.test", "TXT", "v=spf1 ip4:127.0.0.0/8 -all"),
    ("fail.test", "TXT", "v=spf1 ip4:192.0.2.1 -all"),
    ("soft.test", "TXT", "v=spf1 ~all"),
    # nospf.test: no record at all (SPF none)
]


def proof_gateway(ctx, gw_factory, relay, hop="maildir:mail", **conf):
    dns = spf.DnsServer(ctx.tmpdir, ZONE)
    settings = dsn.hop_config(hop, relay, unknown_recipient="bounce",
                              harvest_exempt="127.0.0.0/8",
                              spf_policy="tag",
                              dns_server=f"127.0.0.1:{dns.port}",
                              ndr_require_auth="yes")
    settings.update(conf)
    gw, port = met.metrics_gateway(gw_factory, **settings)
    return gw, port, dns


def bounce_one(gw, sender: str, rcpt: str = "nobody@example.test",
               bind: str | None = None) -> str:
    """A message from sender to one recipient; returns its queue id."""
    with mxlib.session(gw, bind=bind) as c:
        c.expect("250 2.1.0 Ok", f"MAIL FROM:<{sender}>")
        c.expect("250 2.1.5 Ok", f"RCPT TO:<{rcpt}>")
        c.expect("354 *", "DATA")
        c.send(mxlib.make_message("proof", sender=sender, to=rcpt) +
               b".\r\n")
        text = c.reply(WAIT).text
    m = dsn.QID.match(text)
    check(m, f"not queued: {text!r}")
    return m.group(1)


def stats(ctx, gw) -> dict:
    out, _ = ctllib.mx(ctx, gw, "stats")
    return dict(ln.split(" ", 1) for ln in out.splitlines() if " " in ln)


def test_only_proven_senders_get_reports(ctx, gw_factory):
    with dsn.py_sink(ctx, "relay") as relay:
        gw, port, dns = proof_gateway(ctx, gw_factory, relay)
        try:
            forged = ["joe@fail.test", "joe@nospf.test", "joe@soft.test"]
            for sender in forged:
                qid = bounce_one(gw, sender)
                ev = gw.wait_event("dsn", qid=qid, ndr="suppressed",
                                   timeout_s=WAIT)
                check_eq((ev.get("reason"), ev.get("from"), ev.get("to")),
                         ("unauthenticated_sender", f"<{sender}>",
                          "<nobody@example.test>"), ev["line"])
            qid = bounce_one(gw, "joe@pass.test")
            ev = gw.wait_event("dsn", qid=qid, timeout_s=WAIT)
            check("dsn_qid" in ev and "shadow" not in ev, ev["line"])
            rec = relay.wait_messages(1, WAIT)[0]
            check_eq((rec.mail_from, rec.rcpts), ("", ["joe@pass.test"]),
                     "the one report's envelope")
            # the forged ones were decided (and logged) before it was
            # made: the sink has this one report and no other
            dsn.stays_false(lambda: len(relay.received()) > 1 and
                            [r.rcpts for r in relay.received()], 1.0,
                            "a report to a forged sender")
            s = met.samples(met.scrape(port))
            check_eq(met.value(s, "mxgate_ndr_total", action="suppressed",
                               reason="unauthenticated_sender"), 3.0,
                     "suppressed unauthenticated_sender")
            check_eq(met.value(s, "mxgate_ndr_total", action="sent",
                               reason="failure"), 1.0, "sent")
            st = stats(ctx, gw)
            check_eq((st.get("reports_suppressed_total"),
                      st.get("reports_sent_total")), ("3", "1"),
                     "mxgate stats")
        finally:
            dns.stop()


def test_relay_networks_client_gets_report(ctx, gw_factory):
    with dsn.py_sink(ctx, "relay") as relay:
        gw, _, dns = proof_gateway(ctx, gw_factory, relay,
                                   relay_networks="127.0.0.2/32")
        try:
            # SPF is not checked for a relay client: the network is the
            # proof, even for a sender whose SPF would fail
            qid = bounce_one(gw, "joe@fail.test", bind="127.0.0.2")
            ev = gw.wait_event("dsn", qid=qid, timeout_s=WAIT)
            check("dsn_qid" in ev, ev["line"])
            rec = relay.wait_messages(1, WAIT)[0]
            check_eq(rec.rcpts, ["joe@fail.test"], "report recipient")
            # the control: the same sender from a stranger
            qid = bounce_one(gw, "joe@fail.test", bind="127.0.0.1")
            ev = gw.wait_event("dsn", qid=qid, ndr="suppressed",
                               timeout_s=WAIT)
            check_eq(ev.get("reason"), "unauthenticated_sender", ev["line"])
        finally:
            dns.stop()


def test_shadow_sends_and_says_would_suppress(ctx, gw_factory):
    with dsn.py_sink(ctx, "relay") as relay:
        gw, port, dns = proof_gateway(ctx, gw_factory, relay,
                                      ndr_require_auth="shadow")
        try:
            qid = bounce_one(gw, "joe@fail.test")
            ev = gw.wait_event("dsn", qid=qid, timeout_s=WAIT)
            check("dsn_qid" in ev, f"no report in shadow: {ev['line']}")
            check_eq((ev.get("shadow"), ev.get("would"), ev.get("reason")),
                     ("1", "suppress", "unauthenticated_sender"), ev["line"])
            rec = relay.wait_messages(1, WAIT)[0]
            check_eq(rec.rcpts, ["joe@fail.test"], "report recipient")
            # a proven sender's report says nothing of shadow
            qid = bounce_one(gw, "joe@pass.test")
            ev = gw.wait_event("dsn", qid=qid, timeout_s=WAIT)
            check("dsn_qid" in ev and "shadow" not in ev, ev["line"])
            s = met.samples(met.scrape(port))
            check_eq(met.value(s, "mxgate_ndr_total", action="sent",
                               reason="failure"), 2.0, "both sent")
            check(("mxgate_ndr_total", frozenset(
                {"action": "suppressed",
                 "reason": "unauthenticated_sender"}.items())) not in s or
                  met.value(s, "mxgate_ndr_total", action="suppressed",
                            reason="unauthenticated_sender") == 0.0,
                  "shadow counted a suppression")
        finally:
            dns.stop()


def test_delivery_failure_reads_proof_from_queue(ctx, gw_factory):
    """A hop refuses alice: the failure report is decided later, from the
    queue file's P record (spf=pass or not)."""
    with dsn.py_sink(ctx, "hop") as hop, dsn.py_sink(ctx, "relay") as relay:
        hop.rcpt_reply = lambda a: ("550 5.1.1 No such user" if
                                    a.startswith("alice") else
                                    "250 2.1.5 Ok")
        gw, _, dns = proof_gateway(ctx, gw_factory, relay,
                                   hop=f"smtp:127.0.0.1:{hop.port}")
        try:
            qid = bounce_one(gw, "joe@soft.test", rcpt="alice@example.test")
            gw.wait_event("failed", qid=qid, timeout_s=WAIT)
            ev = gw.wait_event("dsn", qid=qid, ndr="suppressed",
                               timeout_s=WAIT)
            check_eq((ev.get("reason"), ev.get("from")),
                     ("unauthenticated_sender", "<joe@soft.test>"),
                     ev["line"])
            qid = bounce_one(gw, "joe@pass.test", rcpt="alice@example.test")
            ev = gw.wait_event("dsn", qid=qid, timeout_s=WAIT)
            check("dsn_qid" in ev, ev["line"])
            rec = relay.wait_messages(1, WAIT)[0]
            check_eq(rec.rcpts, ["joe@pass.test"], "report recipient")
            dsn.stays_false(lambda: len(relay.received()) > 1 and
                            [r.rcpts for r in relay.received()], 1.0,
                            "a report to the softfail sender")
        finally:
            dns.stop()


def test_bad_value_is_config_error(ctx):
    path = ctx.write("bad.conf", "hostname = mx.example.test\n"
                     "spool = spool\ndomains = example.test\n"
                     "ndr_require_auth = maybe\ndirectory = file:users\n")
    ctx.write("users", "alice@example.test\n")
    os.makedirs(os.path.join(ctx.tmpdir, "spool"), exist_ok=True)
    p = ctx.run_binary(["check-config", "-c", path])
    check(p.returncode != 0, "check-config accepted ndr_require_auth = maybe")
    err = p.stderr.decode() + p.stdout.decode()
    check(":4:" in err and "ndr_require_auth" in err and
          "expected yes, shadow or no" in err, err)


def test_authenticated_sender_gets_failure_report(ctx, gw_factory):
    """AUTH is a proof (auth=1 in the queue file): a hop refuses the
    recipient later, and the report still goes to the authenticated
    sender, whose SPF would fail; a stranger with the same sender gets
    none."""
    with dsn.py_sink(ctx, "hop") as hop, dsn.py_sink(ctx, "relay") as relay:
        hop.rcpt_reply = lambda a: ("550 5.1.1 No such user" if
                                    a.startswith("alice") else
                                    "250 2.1.5 Ok")
        dns = spf.DnsServer(ctx.tmpdir, ZONE)
        try:
            conf = dsn.hop_config(f"smtp:127.0.0.1:{hop.port}", relay,
                                  spf_policy="tag", auth_on_smtp="yes",
                                  dns_server=f"127.0.0.1:{dns.port}",
                                  ndr_require_auth="yes")
            # the map lets alice send as joe@fail.test (sender_login_map)
            gw = spf.tls.tls_gateway(
                gw_factory, submission=False,
                sender_login_map="file:senders",
                files={"senders": f"joe@fail.test {spf.tls.USER}\n"}, **conf)
            ids = []
            for auth in (True, False):
                with spf.tls.raw(gw, tls=True) as c:
                    if auth:
                        c.expect(spf.tls.AUTH_OK, "AUTH PLAIN " +
                                 spf.tls.plain(spf.tls.USER,
                                               spf.tls.PASSWORD))
                    c.expect("250 2.1.0 Ok", "MAIL FROM:<joe@fail.test>")
                    c.expect("250 2.1.5 Ok", "RCPT TO:<alice@example.test>")
                    c.expect("354 *", "DATA")
                    c.send(mxlib.make_message("auth", sender="joe@fail.test")
                           + b".\r\n")
                    text = c.reply(WAIT).text
                m = dsn.QID.match(text)
                check(m, f"not queued: {text!r}")
                ids.append(m.group(1))
            ev = gw.wait_event("dsn", qid=ids[0], timeout_s=WAIT)
            check("dsn_qid" in ev, ev["line"])
            ev = gw.wait_event("dsn", qid=ids[1], ndr="suppressed",
                               timeout_s=WAIT)
            check_eq(ev.get("reason"), "unauthenticated_sender", ev["line"])
            rec = relay.wait_messages(1, WAIT)[0]
            check(ids[0] in rec.data.decode("latin-1"),
                  "the report is not about the authenticated message")
            dsn.stays_false(lambda: len(relay.received()) > 1 and
                            [r.rcpts for r in relay.received()], 1.0,
                            "a report about the stranger's message")
        finally:
            dns.stop()


FORGED_DOMAINS = [f"f{i}.test" for i in range(10)]


def forger_zone(keys) -> list:
    zone = keys.zone([
        ("pass.test", "TXT", "v=spf1 ip4:127.0.0.0/8 -all"),
        ("rsa._domainkey.dkhonest.test", "TXT",
         f"v=DKIM1; k=rsa; p={keys.rsa_p}"),
        # the forger's own domain: its signatures pass, aligned with none
        # of the addresses it forges
        ("rsa._domainkey.forger.test", "TXT",
         f"v=DKIM1; k=rsa; p={keys.rsa_p}"),
        # a forged domain that publishes a key the forger does not hold
        ("rsa._domainkey.f8.test", "TXT",
         f"v=DKIM1; k=ed25519; p={keys.ed_p}"),
    ])
    for i, d in enumerate(FORGED_DOMAINS):
        if i < 3:
            zone.append((d, "TXT", "v=spf1 ip4:192.0.2.1 -all"))
        elif i < 6:
            zone.append((d, "TXT", "v=spf1 ip4:192.0.2.1 ~all"))
        # f6..f9: no SPF record at all
    return zone


def send_many(gw, items) -> list[str]:
    """One session, one transaction per (sender, data); the queue ids."""
    ids = []
    with mxlib.session(gw) as c:
        for sender, data in items:
            c.expect("250 2.1.0 Ok", f"MAIL FROM:<{sender}>")
            c.expect("250 2.1.5 Ok", "RCPT TO:<nobody@example.test>")
            c.expect("354 *", "DATA")
            c.send(data + b".\r\n")
            text = c.reply(WAIT).text
            m = dsn.QID.match(text)
            check(m, f"not taken: {text!r}")
            ids.append(m.group(1))
    return ids


def test_forger_gets_no_report_honest_senders_do(ctx, gw_factory):
    keys = dk.Keys(ctx.tmpdir)
    with dsn.py_sink(ctx, "relay") as relay:
        dns = spf.DnsServer(ctx.tmpdir, forger_zone(keys))
        try:
            settings = dsn.hop_config("maildir:mail", relay,
                                      unknown_recipient="bounce",
                                      harvest_exempt="127.0.0.0/8",
                                      spf_policy="tag",
                                      dns_server=f"127.0.0.1:{dns.port}",
                                      ndr_require_auth="yes")
            gw, port = met.metrics_gateway(gw_factory, **settings)
            forged = []
            for i, d in enumerate(FORGED_DOMAINS):
                items = []
                for j in range(5):
                    sender = f"user{j}@{d}"
                    forged.append(sender)
                    data = mxlib.make_message(f"forged {j}", sender=sender,
                                              to="nobody@example.test")
                    if j == 1:      # signed by the forger's own domain
                        data = keys.sign(data, domain="forger.test")
                    elif j == 2:    # signed as the domain, wrong key
                        data = keys.sign(data, domain=d)
                    items.append((sender, data))
                send_many(gw, items)
            wait = mxlib.wait_until(
                lambda: len(gw.events("dsn", ndr="suppressed")) >= 50,
                WAIT * 3, "50 suppressed reports")
            check(wait, "50 suppressed reports")
            sup = gw.events("dsn", ndr="suppressed")
            check_eq(sorted(e.get("from", "").strip("<>") for e in sup),
                     sorted(forged), "the suppressed reports' senders")
            check(all(e.get("reason") == "unauthenticated_sender"
                      for e in sup), [e["line"] for e in sup])
            # the honest ones: SPF pass; DKIM aligned by organizational
            # domain (mail.dkhonest.test and d=dkhonest.test), no SPF
            honest = mxlib.make_message("honest dkim",
                                        sender="bounce@mail.dkhonest.test",
                                        to="nobody@example.test")
            send_many(gw, [
                ("joe@pass.test", mxlib.make_message(
                    "honest spf", sender="joe@pass.test",
                    to="nobody@example.test")),
                ("bounce@mail.dkhonest.test",
                 keys.sign(honest, domain="dkhonest.test")),
            ])
            recs = relay.wait_messages(2, WAIT)
            check_eq(sorted(r.rcpts[0] for r in recs),
                     ["bounce@mail.dkhonest.test", "joe@pass.test"],
                     "the reports' recipients")
            dsn.stays_false(lambda: len(relay.received()) > 2 and
                            [r.rcpts for r in relay.received()], 1.0,
                            "a report to a forged sender")
            ev = gw.wait_event("discarded", dkim="pass", dkim_aligned="yes")
            check("dkim_results=pass:dkhonest.test" in ev["line"],
                  ev["line"])
            s = met.samples(met.scrape(port))
            check_eq(met.value(s, "mxgate_ndr_total", action="suppressed",
                               reason="unauthenticated_sender"), 50.0,
                     "suppressed unauthenticated_sender")
        finally:
            dns.stop()


def test_dkim_aligned_delivery_failure_report(ctx, gw_factory):
    """The DKIM proof read back from the queue file (P record)."""
    keys = dk.Keys(ctx.tmpdir)
    with dsn.py_sink(ctx, "hop") as hop, dsn.py_sink(ctx, "relay") as relay:
        hop.rcpt_reply = lambda a: ("550 5.1.1 No such user" if
                                    a.startswith("alice") else
                                    "250 2.1.5 Ok")
        dns = spf.DnsServer(ctx.tmpdir, forger_zone(keys))
        try:
            settings = dsn.hop_config(f"smtp:127.0.0.1:{hop.port}", relay,
                                      unknown_recipient="bounce",
                                      harvest_exempt="127.0.0.0/8",
                                      spf_policy="tag",
                                      dns_server=f"127.0.0.1:{dns.port}",
                                      ndr_require_auth="yes")
            gw, _ = met.metrics_gateway(gw_factory, **settings)
            ids = []
            for d in ("dkhonest.test", "forger.test"):
                sender = f"joe@{'dkhonest.test'}"
                data = keys.sign(mxlib.make_message(
                    "later", sender=sender), domain=d)
                with mxlib.session(gw) as c:
                    c.expect("250 2.1.0 Ok", f"MAIL FROM:<{sender}>")
                    c.expect("250 2.1.5 Ok", "RCPT TO:<alice@example.test>")
                    c.expect("354 *", "DATA")
                    c.send(data + b".\r\n")
                    m = dsn.QID.match(c.reply(WAIT).text)
                    check(m, "not queued")
                    ids.append(m.group(1))
            ev = gw.wait_event("dsn", qid=ids[0], timeout_s=WAIT)
            check("dsn_qid" in ev, ev["line"])
            ev = gw.wait_event("dsn", qid=ids[1], ndr="suppressed",
                               timeout_s=WAIT)
            check_eq(ev.get("reason"), "unauthenticated_sender", ev["line"])
            rec = relay.wait_messages(1, WAIT)[0]
            check_eq(rec.rcpts, ["joe@dkhonest.test"], "report recipient")
            check(ids[0] in rec.data.decode("latin-1"),
                  "the report is not about the aligned message")
        finally:
            dns.stop()
