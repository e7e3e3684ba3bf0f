"""
test_probe.py - `mxgate probe`, the assessor's audit (issue 15), each run
against a real server the test starts: mxgate with unknown_recipient =
reject, discard and bounce, the harvest guard on and off, STARTTLS on; a
deliberately bad server (tests/e2e/probe_servers.py: an open relay
through the %-hack, VRFY that leaks, accept-then-bounce, bare LF taken
as end of data, plaintext pipelined after STARTTLS executed) whose every
flaw must be a high finding with evidence, and its timing-oracle variant
(the KS test finds it); a private Postfix 3.7 (its findings, then with
the fixes the probe names); bounce with ndr_require_auth (silently
dropped, told by the listener's silence); --source and --starttls;
hostile servers (silent, an endless multi-line greeting, a 1 MB line, a
byte every 300 ms, a STARTTLS that is not TLS): bounded time, exit 2 or
a report, never a crash or a hang.
The NDR check: the probe's --ndr-listen stands for the MX of
--ndr-domain; mxgate reaches it as its relayhost (every report goes
there), the bad server through its bounce_to port.
Also: the JSON document's schema (README "mxgate probe"), the HTML page
rendered by headless Chromium (text and screenshot size), arguments.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import mxlib
import probe_servers
from mxlib import check, check_eq
import test_tls_auth as tlsa

FAST = ["--rate", "500", "--timeout", "3s"]
FAST_GUARD = {"harvest_tarpit_delay": "50ms", "harvest_tarpit_max": "100ms"}
KNOWN = "alice@example.test"
BOUND_S = 150.0      # a whole run; each wait inside is --timeout
FINDING_IDS = {"banner-leak", "vrfy-expn", "open-relay", "null-sender",
               "unknown-recipient", "timing-oracle", "harvest",
               "starttls", "smuggling"}
VERDICTS = {"pass", "fail", "inconclusive", "not-measured", "error"}
SEVERITIES = {"none", "info", "low", "medium", "high"}


# ------------------------------------------------------------ helpers

def run_probe(ctx, port: int, *args: str, json_out: bool = True,
              timeout_s: float = BOUND_S):
    cmd = [os.path.abspath(ctx.binary), "probe", f"127.0.0.1:{port}",
           "--domain", "example.test"] + FAST + list(args)
    if json_out:
        cmd.append("--json")
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True,
                       timeout=timeout_s, cwd=ctx.tmpdir,
                       stdin=subprocess.DEVNULL)
    took = time.monotonic() - t0
    for mark in mxlib.SANITIZER_MARKS:
        check(mark not in p.stderr, f"sanitizer: {p.stderr[-3000:]}")
    doc = None
    if json_out:
        try:
            doc = json.loads(p.stdout)
        except ValueError as e:
            mxlib.fail(f"not JSON ({e}): {p.stdout[:2000]!r} "
                       f"{p.stderr[-500:]}")
        check_schema(doc)
    return p, doc, took


def check_schema(doc: dict) -> None:
    """The README's schema mxgate-probe/1, key by key."""
    check_eq(doc["schema"], "mxgate-probe/1", "schema")
    for k, t in (("target", dict), ("software", str), ("connections", int),
                 ("rcpts", int), ("commands", int), ("duration_ms", int),
                 ("intrusive", bool), ("high", int), ("status", int),
                 ("findings", list)):
        check(isinstance(doc[k], t), f"{k} is {type(doc[k])}")
    check(doc["error"] is None or isinstance(doc["error"], str), "error")
    check(set(doc["target"]) == {"host", "port", "domain"}, "target keys")
    for f in doc["findings"]:
        check_eq(set(f), {"id", "title", "verdict", "severity", "summary",
                          "facts", "evidence", "fix"}, "finding keys")
        check(f["verdict"] in VERDICTS, f"verdict {f['verdict']}")
        check(f["severity"] in SEVERITIES, f"severity {f['severity']}")
        check((f["severity"] == "none") == (f["verdict"] != "fail"),
              f"severity only for fail: {f}")
        check(all(isinstance(x, str) for x in f["facts"] + f["evidence"]),
              "facts and evidence are strings")
        check_eq(set(f["fix"]), {"generic", "software", "software_fix"},
                 "fix keys")
    if doc["error"] is None:
        check_eq({f["id"] for f in doc["findings"]}, FINDING_IDS, "ids")


def finding(doc: dict, fid: str) -> dict:
    for f in doc["findings"]:
        if f["id"] == fid:
            return f
    mxlib.fail(f"no finding {fid} in {[f['id'] for f in doc['findings']]}")


def verdict(doc: dict, fid: str) -> tuple[str, str]:
    f = finding(doc, fid)
    return f["verdict"], f["severity"]


def expect(doc: dict, fid: str, want_verdict: str,
           want_sev: str | None = None) -> dict:
    f = finding(doc, fid)
    got = (f["verdict"], f["severity"])
    ok = f["verdict"] == want_verdict and (want_sev is None or
                                           f["severity"] == want_sev)
    check(ok, f"{fid}: {got}, want {want_verdict} {want_sev}: "
          f"{f['summary']} facts={f['facts']}")
    return f


def has_dialogue(f: dict) -> None:
    ev = f["evidence"]
    check(any(x.startswith("C: ") for x in ev) and
          any(x.startswith("S: ") for x in ev),
          f"{f['id']}: no C:/S: evidence: {ev[:10]}")


def cert(ctx) -> tuple[str, str]:
    tlsa.make_cert(ctx.tmpdir)
    return (os.path.join(ctx.tmpdir, "cert.pem"),
            os.path.join(ctx.tmpdir, "key.pem"))


def tls_gateway(ctx, **conf: str) -> mxlib.Gateway:
    cert(ctx)
    settings = dict(FAST_GUARD)
    settings.update({"tls_cert": os.path.join(ctx.tmpdir, "cert.pem"),
                     "tls_key": os.path.join(ctx.tmpdir, "key.pem")})
    settings.update(conf)
    return ctx.gateway(config=settings)


# ------------------------------------------------------------ mxgate

@mxlib.timeout(240)
def test_mxgate_reject_starttls(ctx):
    """reject, guard on, STARTTLS with a self-signed certificate:
    nothing high, exit 0; smuggling tested and not honoured."""
    gw = tls_gateway(ctx)
    p, doc, took = run_probe(ctx, gw.port, "--known", KNOWN, "--known",
                             "bob@example.test", "--intrusive",
                             "--max-rcpt", "60")
    check_eq(p.returncode, 0, f"exit status; {p.stderr}")
    check_eq(doc["software"], "mxgate", "software")
    check_eq(doc["high"], 0, "high findings")
    for fid in ("open-relay", "vrfy-expn", "unknown-recipient",
                "null-sender", "banner-leak"):
        has_dialogue(expect(doc, fid, "pass"))
    n = finding(doc, "null-sender")
    check(any("550 5.7.1" in x for x in n["evidence"]), n["evidence"])
    s = expect(doc, "starttls", "fail", "low")   # self-signed
    check(any("self-signed: yes" in x for x in s["facts"]), s["facts"])
    check(any("CVE-2011-0411: not vulnerable" in x for x in s["facts"]),
          s["facts"])
    check(any("TLSv1.2" in x and "protocols accepted" in x
              for x in s["facts"]), s["facts"])
    sm = expect(doc, "smuggling", "pass")
    check(any("not end of data" in x for x in sm["facts"]), sm["facts"])
    t = finding(doc, "timing-oracle")
    check(any(x.startswith("p_value: ") for x in t["facts"]), t["facts"])
    check(any(x.startswith("samples: ") for x in t["facts"]), t["facts"])
    check(finding(doc, "harvest")["verdict"] in ("pass", "fail"),
          "harvest measured")
    check(doc["connections"] <= 60, f"connections {doc['connections']}")


@mxlib.timeout(240)
def test_mxgate_discard(ctx):
    """discard: invented names accepted (medium), never an open relay
    claim for forms the domain takes as local names."""
    gw = ctx.gateway(config=dict(FAST_GUARD, unknown_recipient="discard"))
    p, doc, _ = run_probe(ctx, gw.port, "--known", KNOWN,
                          "--max-rcpt", "40")
    check_eq(p.returncode, 0, f"exit status; {p.stderr}")
    expect(doc, "unknown-recipient", "fail", "medium")
    check(finding(doc, "open-relay")["verdict"] in ("pass", "inconclusive"),
          finding(doc, "open-relay"))
    expect(doc, "harvest", "pass")       # answers never differ
    expect(doc, "starttls", "fail", "medium")   # no certificate


@mxlib.timeout(240)
def test_mxgate_bounce_is_backscatter(ctx):
    """bounce without sender proof: the probe's listener (mxgate's
    relayhost here) receives the report: high, exit 1."""
    ndr = mxlib.free_port()
    gw = ctx.gateway(config=dict(FAST_GUARD, unknown_recipient="bounce",
                                 relayhost=f"127.0.0.1:{ndr}",
                                 retry_min="1s", retry_max="2s",
                                 smtp_connect_timeout="2s"))
    p, doc, _ = run_probe(ctx, gw.port, "--known", KNOWN, "--intrusive",
                          "--ndr-listen", f"127.0.0.1:{ndr}",
                          "--ndr-domain", "ndr.test", "--max-rcpt", "30",
                          "--timeout", "20s")
    check_eq(p.returncode, 1, f"exit status; {p.stderr}")
    u = expect(doc, "unknown-recipient", "fail", "high")
    check(any("BOUNCED" in x for x in u["facts"]), u["facts"])
    check(any(x.startswith("L: ") for x in u["evidence"]),
          "listener dialogue in the evidence")


@mxlib.timeout(240)
def test_mxgate_reject_ndr_check(ctx):
    """reject with --ndr-listen: rejected at RCPT, nothing sent."""
    gw = ctx.gateway(config=FAST_GUARD)
    ndr = mxlib.free_port()
    p, doc, _ = run_probe(ctx, gw.port, "--intrusive", "--ndr-listen",
                          f"127.0.0.1:{ndr}", "--ndr-domain", "ndr.test",
                          "--max-rcpt", "20")
    u = expect(doc, "unknown-recipient", "pass")
    check(any("rejected at RCPT" in x for x in u["facts"]), u["facts"])


@mxlib.timeout(240)
def test_mxgate_harvest_guard_off(ctx):
    """guard off: real names told apart after every invented one, no
    tarpit, no cut-off: a medium harvest finding."""
    gw = ctx.gateway(config={"harvest_guard": "off"})
    _, doc, _ = run_probe(ctx, gw.port, "--known", KNOWN, "--max-rcpt", "60")
    h = expect(doc, "harvest", "fail", "medium")
    check(any("cut-offs (421 or close): 0" in x for x in h["facts"]),
          h["facts"])


@mxlib.timeout(240)
def test_mxgate_harvest_guard_on(ctx):
    """guard on: the known name ends up answered like the invented ones
    (uniform mode), or at least tarpitted and cut off."""
    gw = ctx.gateway(config=dict(FAST_GUARD, harvest_threshold="10"))
    _, doc, _ = run_probe(ctx, gw.port, "--known", KNOWN, "--max-rcpt", "60")
    h = finding(doc, "harvest")
    check(h["verdict"] == "pass" or (h["verdict"], h["severity"]) ==
          ("fail", "low"), f"harvest {h['verdict']} {h['severity']}: "
          f"{h['summary']} {h['facts']}")


# ------------------------------------------------------------ bad server

@mxlib.timeout(240)
def test_bad_server_every_flaw_high(ctx):
    ndr = mxlib.free_port()
    with probe_servers.BadServer("bad", cert=cert(ctx),
                                 bounce_to=ndr) as srv:
        p, doc, _ = run_probe(ctx, srv.port, "--known", KNOWN,
                              "--intrusive", "--ndr-listen",
                              f"127.0.0.1:{ndr}", "--ndr-domain",
                              "ndr.test", "--max-rcpt", "40")
    check_eq(p.returncode, 1, f"exit status; {p.stderr}")
    check_eq(doc["software"], "Sendmail", "software")
    r = expect(doc, "open-relay", "fail", "high")
    check(any("ACCEPTED" in x and "%" in x for x in r["facts"]), r["facts"])
    check(any("RCPT TO:<relaytest%example.net@example.test>" in x
              for x in r["evidence"]), "the %-hack RCPT in the evidence")
    has_dialogue(expect(doc, "vrfy-expn", "fail", "high"))
    u = expect(doc, "unknown-recipient", "fail", "high")
    check(any("BOUNCED" in x for x in u["facts"]), u["facts"])
    sm = expect(doc, "smuggling", "fail", "high")
    check(any("HONOURED" in x for x in sm["facts"]), sm["facts"])
    has_dialogue(sm)
    st = expect(doc, "starttls", "fail", "high")
    check(any("VULNERABLE" in x for x in st["facts"]), st["facts"])
    has_dialogue(st)
    b = expect(doc, "banner-leak", "fail", "low")
    check(any("8.15.2" in x for x in b["facts"]), b["facts"])
    check(b["fix"]["software"] == "Sendmail" and
          "confSMTP_LOGIN_MSG" in b["fix"]["software_fix"], b["fix"])


@mxlib.timeout(240)
def test_bad_server_text_report(ctx):
    """The default output: the summary table, then the details."""
    with probe_servers.BadServer("bad", cert=cert(ctx)) as srv:
        p, _, _ = run_probe(ctx, srv.port, "--max-rcpt", "20",
                            json_out=False)
    check_eq(p.returncode, 1, "exit status")
    out = p.stdout
    check("FINDING            VERDICT       SEVERITY SUMMARY" in out, out)
    check("\nopen-relay         fail          high" in out, out[:3000])
    check("== open-relay: " in out and "evidence:" in out and
          "fix (Sendmail): " in out, out[-3000:])


# ------------------------------------------------------------ hostile

def hostile(ctx, mode: str, bound_s: float):
    with probe_servers.BadServer(mode) as srv:
        p, doc, took = run_probe(ctx, srv.port, "--timeout", "2s",
                                 "--max-rcpt", "10")
    check(took < bound_s, f"{mode}: {took:.1f}s, bound {bound_s}s")
    return p, doc


@mxlib.timeout(120)
def test_hostile_silent(ctx):
    p, doc = hostile(ctx, "silent", 30)
    check_eq(p.returncode, 2, "exit status")
    check("no complete reply within 2000 ms" in doc["error"], doc["error"])
    check("could not run" in p.stderr, p.stderr)


@mxlib.timeout(120)
def test_hostile_endless_multiline(ctx):
    p, doc = hostile(ctx, "endless", 30)
    check_eq(p.returncode, 2, "exit status")
    check("more than 100 lines" in doc["error"], doc["error"])


@mxlib.timeout(120)
def test_hostile_trickle(ctx):
    """A byte every 300 ms: the deadline is per reply, not per byte."""
    p, doc = hostile(ctx, "trickle", 30)
    check_eq(p.returncode, 2, "exit status")
    check("no complete reply within 2000 ms" in doc["error"], doc["error"])


@mxlib.timeout(120)
def test_hostile_long_line(ctx):
    p, doc = hostile(ctx, "longline", 30)
    check_eq(p.returncode, 2, "exit status")
    check("longer than 4096 octets" in doc["error"], doc["error"])


@mxlib.timeout(120)
def test_hostile_tls_fails(ctx):
    p, doc = hostile(ctx, "badtls", 90)
    check(p.returncode in (0, 1), f"exit status {p.returncode}")
    st = expect(doc, "starttls", "fail", "medium")
    check("TLS could not be set up" in st["summary"], st["summary"])


@mxlib.timeout(60)
def test_connect_refused_and_bad_arguments(ctx):
    port = mxlib.free_port()
    p, doc, _ = run_probe(ctx, port)
    check_eq(p.returncode, 2, "exit status")
    check("cannot connect" in doc["error"], doc["error"])
    for args, msg in ((["probe", "127.0.0.1"], "--domain is required"),
                      (["probe", "--domain", "x.test"], "HOST is required"),
                      (["probe", "h", "--domain", "x", "--rate", "0"],
                       "bad value for --rate"),
                      (["probe", "h", "--domain", "x", "--bogus", "1"],
                       "unknown option --bogus"),
                      (["probe", "h", "--domain", "x", "--ndr-listen",
                        "127.0.0.1:1"], "--ndr-listen needs --intrusive")):
        r = ctx.run_binary(args)
        check_eq(r.returncode, 2, f"{args}")
        check(msg in r.stderr.decode(), f"{args}: {r.stderr!r}")


# ------------------------------------------------------------ HTML

@mxlib.timeout(240)
def test_html_report_in_chromium(ctx):
    with probe_servers.BadServer("bad", cert=cert(ctx)) as srv:
        html = os.path.join(ctx.tmpdir, "report.html")
        p, _, _ = run_probe(ctx, srv.port, "--max-rcpt", "20", "--html",
                            html, json_out=False)
    check_eq(p.returncode, 1, "exit status")
    page = open(html, encoding="utf-8").read()
    for bad in ("http://", "https://", "src=", "<link", "@import"):
        check(bad not in page, f"external resource? {bad!r}")
    check(page.count("<details") == len(FINDING_IDS), "one fold a finding")
    png = os.path.join(ctx.tmpdir, "shot.png")
    base = ["/usr/bin/chromium", "--headless", "--no-sandbox",
            "--disable-gpu", f"--user-data-dir={ctx.tmpdir}/chr"]
    dom = subprocess.run(base + ["--dump-dom", "file://" + html],
                         capture_output=True, text=True, timeout=90)
    for fid in FINDING_IDS:
        check(fid in dom.stdout, f"{fid} not in the rendered page")
    check("open relay" in dom.stdout, "summary text rendered")
    subprocess.run(base + [f"--screenshot={png}", "--window-size=1200,1600",
                           "file://" + html],
                   capture_output=True, timeout=90)
    size = os.path.getsize(png)
    check(size > 20000, f"screenshot only {size} bytes")
    print(f"screenshot {png}: {size} bytes")


# ------------------------------------------------------------ Postfix

@mxlib.timeout(300)
def test_postfix(ctx):
    """Debian's Postfix 3.7 as configured in probe_servers.Postfix: no
    open relay; unknown names rejected at RCPT, the table named in the
    text; names harvestable (told apart, no tarpit with
    smtpd_error_sleep_time = 0); VRFY tells real names (252) from
    invented ones (550) since disable_vrfy_command = no by default; and
    smuggling as 3.7 behaves with smtpd_forbid_bare_newline = no (its
    default there): bare-LF variants end the data."""
    with probe_servers.Postfix(os.path.join(ctx.tmpdir, "pf")) as pf:
        p, doc, _ = run_probe(ctx, pf.port, "--known", KNOWN,
                              "--intrusive", "--max-rcpt", "60",
                              "--rate", "200")
        print(json.dumps([(f["id"], f["verdict"], f["severity"],
                           f["summary"]) for f in doc["findings"]],
                         indent=1))
    check_eq(doc["software"], "Postfix", "software")
    expect(doc, "open-relay", "pass")
    expect(doc, "unknown-recipient", "pass")
    b = expect(doc, "banner-leak", "fail", "low")
    check(any("table" in x for x in b["facts"]), b["facts"])
    v = expect(doc, "vrfy-expn", "fail", "high")
    check("disable_vrfy_command = yes" in v["fix"]["software_fix"], v["fix"])
    h = finding(doc, "harvest")
    check(h["verdict"] == "fail", f"harvest {h}")
    sm = expect(doc, "smuggling", "fail", "high")
    check(any("\\n.\\n: HONOURED" in x for x in sm["facts"]), sm["facts"])
    check("smtpd_forbid_bare_newline" in sm["fix"]["software_fix"],
          sm["fix"])
    check_eq(p.returncode, 1, "exit status")


@mxlib.timeout(300)
def test_postfix_fixed(ctx):
    """The fixes the probe names for Postfix, applied: VRFY and smuggling
    pass, and the exit status is 0."""
    extra = ("disable_vrfy_command = yes\n"
             "smtpd_forbid_bare_newline = normalize\n"
             "smtpd_forbid_bare_newline_exclusions =\n")
    with probe_servers.Postfix(os.path.join(ctx.tmpdir, "pf"),
                               extra) as pf:
        p, doc, _ = run_probe(ctx, pf.port, "--known", KNOWN,
                              "--intrusive", "--max-rcpt", "20",
                              "--rate", "200")
    expect(doc, "vrfy-expn", "pass")
    sm = expect(doc, "smuggling", "pass")
    check(not any("HONOURED" in x for x in sm["facts"]), sm["facts"])
    check_eq(p.returncode, 0, f"exit status {doc['high']} high")


@mxlib.timeout(240)
def test_mxgate_findings_over_tls(ctx):
    """--starttls: the findings' connections upgrade before they test."""
    gw = tls_gateway(ctx)
    p, doc, _ = run_probe(ctx, gw.port, "--starttls", "--max-rcpt", "10")
    check_eq(p.returncode, 0, f"exit status; {p.stderr}")
    for fid in ("open-relay", "banner-leak", "unknown-recipient"):
        f = expect(doc, fid, "pass")
        check(any(x.startswith("-- TLS established: TLSv1.") for x in
                  f["evidence"]), f"{fid} not over TLS: {f['evidence'][:14]}")
    check(any("tls=" in ln or "TLS" in ln for ln in gw.log_tail(400)),
          "the gateway saw TLS")


@mxlib.timeout(240)
def test_timing_oracle_found(ctx):
    """Invented names answered 40 ms later: the KS test says so."""
    with probe_servers.BadServer("oracle") as srv:
        _, doc, _ = run_probe(ctx, srv.port, "--known", KNOWN,
                              "--max-rcpt", "120")
    t = expect(doc, "timing-oracle", "fail", "medium")
    check(any(x == "samples: 15 known, 15 invented" for x in t["facts"]),
          t["facts"])
    p = [float(x.split()[1]) for x in t["facts"] if x.startswith("p_value")]
    check(p and p[0] < 0.01, t["facts"])


@mxlib.timeout(240)
def test_mxgate_bounce_with_sender_proof_required(ctx):
    """bounce with ndr_require_auth = yes: the probe's sender has no
    proof, the backscatter guard drops the report; the listener waits
    its --timeout and sees nothing: accepted and silently dropped."""
    ndr = mxlib.free_port()
    gw = ctx.gateway(config=dict(FAST_GUARD, unknown_recipient="bounce",
                                 ndr_require_auth="yes",
                                 relayhost=f"127.0.0.1:{ndr}",
                                 retry_min="1s", retry_max="2s"))
    p, doc, _ = run_probe(ctx, gw.port, "--intrusive", "--ndr-listen",
                          f"127.0.0.1:{ndr}", "--ndr-domain", "ndr.test",
                          "--max-rcpt", "10", "--timeout", "8s")
    u = expect(doc, "unknown-recipient", "fail", "medium")
    check("silently dropped" in u["summary"], u["summary"])
    gw.wait_log(r"ndr=suppressed reason=unauthenticated_sender", 10)
    check(not any(x.startswith("L: ") for x in u["evidence"]),
          "nothing reached the listener")


@mxlib.timeout(240)
def test_source_binds(ctx):
    """--source: each connection from the given address, in turn."""
    gw = ctx.gateway(config=FAST_GUARD)
    _, doc, _ = run_probe(ctx, gw.port, "--source", "127.0.0.2",
                          "--source", "127.0.0.3", "--max-rcpt", "10")
    check(doc["error"] is None, doc["error"])
    log = gw.log_text()
    check("event=connect" in log and "client=127.0.0.2 " in log and
          "client=127.0.0.3 " in log, "both sources seen")
    check("client=127.0.0.1 " not in log, "no connection from elsewhere")
