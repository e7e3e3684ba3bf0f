"""
test_metrics.py - metrics_listen (issue 18, parts 1 and 6): GET /metrics
in the Prometheus text format (checked by `promtool check metrics`, and
scraped by a real `prometheus` server this test starts, whose HTTP API
must show the RCPT counts that were sent), the alert rules (`promtool
check rules`, and loaded by that server), the HTTP endpoint's limits
(404, 405, header cap, connection cap), and the status page at /
rendered by headless Chromium (its text checked, a screenshot kept).
Every server here is started by the test in its temp folder on free
loopback ports and stopped by its PID (Chromium: its own process group).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import mxlib
from ctllib import mx
from mxlib import check, check_eq
from test_delivery_hops import hop_config, py_sink

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ALERTS = os.path.join(ROOT, "etc", "prometheus", "mxgate-alerts.yml")
NOTES_PNG = "/work/notes/status.png"  # for the coordinator to look at
BOUND_S = 60.0
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


# ------------------------------------------------------------ helpers

def metrics_gateway(gw_factory, **conf: str) -> tuple[mxlib.Gateway, int]:
    """A gateway with metrics_listen on a free port, once it listens."""
    for _ in range(3):
        port = mxlib.free_port()
        settings = {"metrics_listen": f"127.0.0.1:{port}"}
        settings.update(conf)
        gw = gw_factory(config=settings, start=False)
        try:
            gw.start()
        except mxlib.TestFailure as e:
            if "in use" in str(e).lower():
                continue        # lost a race for the metrics port
            raise
        gw.wait_event("listening", addr=f"127.0.0.1:{port}",
                      listener="metrics")
        return gw, port
    mxlib.fail("no free port for metrics_listen")
    raise AssertionError


def http_get(port: int, path: str, method: str = "GET",
             headers: dict[str, str] | None = None
             ) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                 method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def scrape(port: int) -> str:
    status, hdrs, body = http_get(port, "/metrics")
    check_eq(status, 200, "GET /metrics status")
    check(hdrs.get("Content-Type", "").startswith("text/plain; version=0.0.4"),
          f"Content-Type: {hdrs.get('Content-Type')}")
    return body.decode("utf-8")


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """name and labels -> value, for every sample line."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        check(m is not None, f"not a sample line: {line!r}")
        labels = frozenset(LABEL.findall(m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def value(s: dict, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    check(key in s, f"no sample {name}{labels}")
    return s[key]


def promtool(*args: str, stdin: str | None = None
             ) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], input=stdin, text=True,
                          capture_output=True, timeout=60)


def send_traffic(gw: mxlib.Gateway, accepted: int, unknown: int,
                 relay: int) -> None:
    """One message to `accepted` valid names (alice, bob, carol, again),
    with `unknown` unknown names and `relay` foreign ones refused."""
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<s@remote.test>")
        for i in range(accepted):
            who = mxlib.DEFAULT_USERS[i % len(mxlib.DEFAULT_USERS)]
            c.expect("250 2.1.5 Ok", f"RCPT TO:<{who}>")
        for i in range(unknown):
            c.expect("550 5.1.1 *", f"RCPT TO:<nobody{i}@example.test>")
        for i in range(relay):
            c.expect("554 5.7.1 *", f"RCPT TO:<x{i}@elsewhere.test>")
        c.expect("354 *", "DATA")
        c.send(mxlib.make_message("metrics") + b".\r\n")
        c.expect("250 2.0.0 Ok: queued as *")
        c.expect("221 2.0.0 Bye", "QUIT")


def stop_pid(p: subprocess.Popen, group: bool = False) -> None:
    """SIGTERM what we started, by PID (or its own group), then wait."""
    if p.poll() is None:
        try:
            if group:
                os.killpg(p.pid, signal.SIGTERM)
            else:
                p.send_signal(signal.SIGTERM)
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
        except ProcessLookupError:
            pass
    if group:  # children left in the group we created
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# ------------------------------------------------------------ /metrics

def test_scrape_counts_and_promtool(ctx, gw_factory):
    gw, port = metrics_gateway(gw_factory)
    before = samples(scrape(port))
    check_eq(value(before, "mxgate_rcpt_total", decision="accept",
                   reason="valid"), 0.0, "accepted before any mail")
    send_traffic(gw, accepted=2, unknown=3, relay=1)
    gw.wait_maildir("example.test", "bob")
    mxlib.wait_until(lambda: not gw.spool_files(), BOUND_S, "empty spool")
    # The session's end is counted once its free has run: wait for it.
    gw.wait_event("disconnect")
    text = mxlib.wait_until(
        lambda: (t if value(samples(t := scrape(port)),
                            "mxgate_sessions_total", result="quit") >= 1
                 else None), BOUND_S, "the session counted")
    r = promtool("check", "metrics", stdin=text)
    check(r.returncode == 0, f"promtool check metrics: {r.stdout}{r.stderr}")
    check_eq(r.stdout + r.stderr, "", "promtool lint findings")
    s = samples(text)
    check_eq(value(s, "mxgate_rcpt_total", decision="accept",
                   reason="valid"), 2.0, "accepted RCPTs")
    check_eq(value(s, "mxgate_rcpt_total", decision="reject",
                   reason="unknown"), 3.0, "unknown RCPTs")
    check_eq(value(s, "mxgate_rcpt_total", decision="reject",
                   reason="relay"), 1.0, "relay denied")
    check_eq(value(s, "mxgate_rcpt_total", decision="tarpit",
                   reason="harvest"), 0.0, "tarpitted")
    check_eq(value(s, "mxgate_messages_accepted_total"), 1.0, "messages")
    check_eq(value(s, "mxgate_delivery_total", hop="maildir",
                   result="delivered"), 2.0, "Maildir deliveries")
    check_eq(value(s, "mxgate_sessions_total", result="quit"), 1.0, "quit")
    check_eq(value(s, "mxgate_sessions_active"), 0.0, "sessions open")
    check_eq(value(s, "mxgate_queue_messages", state="active") +
             value(s, "mxgate_queue_messages", state="deferred"), 0.0,
             "queue after delivery")
    check_eq(value(s, "mxgate_queue_oldest_seconds"), 0.0, "oldest")
    check(value(s, "mxgate_journal_syncs_total") >= 1, "journal syncs")
    check(value(s, "mxgate_journal_batch_messages_count") >= 1,
          "journal batches")
    check_eq(value(s, "mxgate_rcpt_decision_seconds_count"), 6.0,
             "one decision time per RCPT")
    check_eq(value(s, "mxgate_directory_lookup_seconds_count",
                   backend="file"), 5.0, "look-ups (relay denied has none)")
    check_eq(value(s, "mxgate_directory_up", backend="file"), 1.0, "up")
    check_eq(value(s, "mxgate_build_info", version="0.1.0"), 1.0, "build")
    check_eq(value(s, "mxgate_shared_state_configured"), 0.0, "shared")
    # histogram consistency: cumulative buckets, +Inf equals _count
    inf = value(s, "mxgate_rcpt_decision_seconds_bucket", le="+Inf")
    check_eq(inf, value(s, "mxgate_rcpt_decision_seconds_count"), "+Inf")
    # no label ever carries an address or a domain
    for (name, labels) in s:
        for _, v in labels:
            check("@" not in v and "example" not in v and "127." not in v,
                  f"{name} has a peer-derived label value {v!r}")
    # the control socket's stats read the same counters
    out, _ = mx(ctx, gw, "stats")
    lines = out.splitlines()
    check("messages_queued_total 1" in lines, f"stats: {out}")
    check("sessions_total 1" in lines, f"stats: {out}")


def test_uniform_and_marked_sources(gw_factory):
    gw, port = metrics_gateway(gw_factory, harvest_threshold="3",
                               harvest_tarpit_after="1000",
                               harvest_session_limit="1000")
    src = "127.0.4.9"
    with mxlib.session(gw, bind=src) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<h@remote.test>")
        for i in range(3):
            c.expect("550 5.1.1 *", f"RCPT TO:<guess{i}@example.test>")
    gw.wait_event("harvest", state="uniform", net=src)
    with mxlib.session(gw, bind=src) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<h@remote.test>")
        c.expect("450 4.7.1 *", "RCPT TO:<alice@example.test>")
        c.expect("450 4.7.1 *", "RCPT TO:<guess9@example.test>")
    s = samples(scrape(port))
    check_eq(value(s, "mxgate_harvest_marked_sources", scope="host"), 1.0,
             "marked hosts")
    check_eq(value(s, "mxgate_harvest_marked_sources", scope="net"), 0.0,
             "marked nets")
    check_eq(value(s, "mxgate_rcpt_total", decision="uniform",
                   reason="harvest"), 2.0, "uniform answers")
    check_eq(value(s, "mxgate_rcpt_total", decision="reject",
                   reason="unknown"), 3.0, "rejected guesses")


def test_http_limits(gw_factory):
    gw, port = metrics_gateway(gw_factory)
    check_eq(http_get(port, "/nope")[0], 404, "unknown path")
    check_eq(http_get(port, "/metrics/")[0], 404, "a longer path")
    status, hdrs, _ = http_get(port, "/metrics", method="POST")
    check_eq(status, 405, "POST")
    check_eq(hdrs.get("Allow"), "GET, HEAD", "Allow header")
    check_eq(http_get(port, "/", method="DELETE")[0], 405, "DELETE")
    check_eq(http_get(port, "/metrics?x=1")[0], 200, "a query is ignored")
    status, hdrs, body = http_get(port, "/", method="HEAD")
    check_eq((status, body), (200, b""), "HEAD")
    # a request larger than the header cap is refused, not read forever
    status = http_get(port, "/metrics", headers={"X-Big": "a" * 20000})[0]
    check(status in (400, 413, 431), f"oversized headers: {status}")
    # the connection cap: 32 idle connections fill it; a 33rd waits in
    # the backlog (unanswered) until one of them closes
    idle = [socket.create_connection(("127.0.0.1", port), timeout=30)
            for _ in range(32)]
    try:
        gw.wait_event("metrics_http", state="full")
        extra = socket.create_connection(("127.0.0.1", port), timeout=30)
        extra.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        extra.settimeout(0.5)
        try:
            got = extra.recv(100)
        except socket.timeout:
            got = None
        check(got is None, f"answered past the connection cap: {got!r}")
        idle.pop().close()
        extra.settimeout(BOUND_S)
        reply = b""
        while chunk := extra.recv(65536):
            reply += chunk
        check(reply.startswith(b"HTTP/1.") and b" 200 " in reply[:20],
              f"after a slot freed: {reply[:80]!r}")
        extra.close()
    finally:
        for s in idle:
            s.close()
    # and it serves normally once they are gone
    mxlib.wait_until(lambda: http_get(port, "/metrics")[0] == 200, BOUND_S,
                     "service after the idle connections left")


def test_stop_with_connections_open(gw_factory):
    """A stop while scrapers are connected (idle, mid-request, kept
    alive) ends cleanly: exit status 0, nothing from the sanitizers (the
    runner reads both from the gateway's log)."""
    gw, port = metrics_gateway(gw_factory)
    idle = socket.create_connection(("127.0.0.1", port), timeout=30)
    partial = socket.create_connection(("127.0.0.1", port), timeout=30)
    partial.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
    kept = socket.create_connection(("127.0.0.1", port), timeout=30)
    kept.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    while b"mxgate_shared_state_configured 0\n" not in got:
        chunk = kept.recv(65536)
        check(chunk, "the kept-alive scrape was cut")
        got += chunk
    try:
        check_eq(gw.stop(), 0, "exit status with scrapers connected")
    finally:
        for s in (idle, partial, kept):
            s.close()


def test_reload_keeps_metrics_and_names_a_restart(gw_factory):
    gw, port = metrics_gateway(gw_factory)
    gw.settings["metrics_listen"] = f"127.0.0.1:{mxlib.free_port()}"
    gw.write_config()
    mark = gw.reload()
    ev = gw.wait_event("reload", since=mark, result="partial")
    check("metrics_listen" in ev.get("restart_needed", ""), ev["line"])
    check_eq(http_get(port, "/metrics")[0], 200, "the old address serves")


def test_off_by_default(gw):
    check(not gw.events("listening", listener="metrics"),
          "a metrics listener without metrics_listen")


def test_tarpit_counted_and_released(gw_factory):
    gw, port = metrics_gateway(gw_factory, harvest_tarpit_after="1",
                               harvest_tarpit_delay="200ms",
                               harvest_tarpit_max="400ms",
                               harvest_threshold="1000")
    with mxlib.session(gw, bind="127.0.4.3") as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<h@remote.test>")
        c.expect("550 5.1.1 *", "RCPT TO:<guess0@example.test>")
        c.expect("550 5.1.1 *", "RCPT TO:<guess1@example.test>")
        s = samples(scrape(port))      # the session still holds its slot
        check_eq(value(s, "mxgate_tarpitted_sessions"), 1.0, "tarpitted")
        check_eq(value(s, "mxgate_sessions_active"), 1.0, "open")
        check_eq(value(s, "mxgate_rcpt_total", decision="tarpit",
                       reason="harvest"), 1.0, "the delayed RCPT")
        check_eq(value(s, "mxgate_rcpt_total", decision="reject",
                       reason="unknown"), 1.0, "the first, undelayed")
        c.expect("221 2.0.0 Bye", "QUIT")
    gw.wait_event("disconnect")
    s = mxlib.wait_until(
        lambda: (x if value(x := samples(scrape(port)),
                            "mxgate_sessions_total", result="quit") == 1
                 else None), BOUND_S, "the session's end counted")
    check_eq(value(s, "mxgate_tarpitted_sessions"), 0.0, "slot released")


@mxlib.params(["null_sender", "forged_local_sender"])
def test_ndr_suppressed_counted(gw_factory, param):
    gw, port = metrics_gateway(gw_factory, unknown_recipient="bounce",
                               harvest_exempt="127.0.0.0/8")
    sender = "" if param == "null_sender" else "carol@example.test"
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", f"MAIL FROM:<{sender}>")
        c.expect("250 2.1.5 Ok", "RCPT TO:<nobody@example.test>")
        c.expect("354 *", "DATA")
        c.send(mxlib.make_message("ndr", sender=sender or "m@x.test",
                                  to="nobody@example.test") + b".\r\n")
        c.expect("250 2.0.0 Ok: queued as *")
    gw.wait_event("dsn", ndr="suppressed", reason=param)
    s = samples(scrape(port))
    check_eq(value(s, "mxgate_ndr_total", action="suppressed",
                   reason=param), 1.0, "suppressed")
    check_eq(sum(v for (n, l), v in s.items() if n == "mxgate_ndr_total"),
             1.0, "reports counted in all")
    check_eq(value(s, "mxgate_rcpt_total", decision="bounce",
                   reason="unknown"), 1.0, "the bounced RCPT")


def test_ndr_sent_and_delivery_kinds(ctx, gw_factory):
    """A report that goes out is counted sent; its delivery to the
    relayhost counts as smtp, the original's as maildir."""
    with py_sink(ctx, "relay") as relay:
        conf = hop_config("maildir:mail", relay, unknown_recipient="bounce",
                          harvest_exempt="127.0.0.0/8")
        gw, port = metrics_gateway(gw_factory, **conf)
        send_traffic(gw, accepted=1, unknown=0, relay=0)
        with mxlib.session(gw) as c:
            c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
            c.expect("250 2.1.5 Ok", "RCPT TO:<nobody@example.test>")
            c.expect("354 *", "DATA")
            c.send(mxlib.make_message("ndr", to="nobody@example.test") +
                   b".\r\n")
            c.expect("250 2.0.0 Ok: queued as *")
        relay.wait_messages(1)
        mxlib.wait_until(lambda: not gw.spool_files(), BOUND_S, "empty spool")
        s = mxlib.wait_until(
            lambda: (x if value(x := samples(scrape(port)),
                                "mxgate_delivery_total", hop="smtp",
                                result="delivered") == 1 else None),
            BOUND_S, "the report's delivery counted")
        check_eq(value(s, "mxgate_ndr_total", action="sent",
                       reason="failure"), 1.0, "report sent")
        check_eq(value(s, "mxgate_delivery_total", hop="maildir",
                       result="delivered"), 1.0, "the first message")


def test_deferred_queue_and_oldest(ctx, gw_factory):
    dead = mxlib.free_port()        # nothing listens there
    conf = hop_config(f"smtp:127.0.0.1:{dead}", None, retry_min="1m",
                      retry_max="1h")
    gw, port = metrics_gateway(gw_factory, **conf)
    send_traffic(gw, accepted=1, unknown=0, relay=0)
    gw.wait_event("deferred")
    s = mxlib.wait_until(
        lambda: (x if value(x := samples(scrape(port)),
                            "mxgate_queue_oldest_seconds") >= 1 else None),
        BOUND_S, "the oldest message to age")
    check_eq(value(s, "mxgate_queue_messages", state="deferred"), 1.0,
             "deferred")
    check_eq(value(s, "mxgate_delivery_total", hop="smtp",
                   result="deferred"), 1.0, "deferred attempt")
    check_eq(value(s, "mxgate_delivery_total", hop="smtp",
                   result="delivered"), 0.0, "nothing delivered")


# ------------------------------------------------------------ prometheus

def test_alert_rules_check():
    r = promtool("check", "rules", ALERTS)
    check(r.returncode == 0, f"promtool check rules: {r.stdout}{r.stderr}")
    check("SUCCESS: 5 rules found" in r.stdout, r.stdout)


@mxlib.timeout(240)
def test_prometheus_scrapes_the_gateway(gw_factory, tmpdir):
    gw, port = metrics_gateway(gw_factory)
    prom_port = mxlib.free_port()
    conf = os.path.join(tmpdir, "prometheus.yml")
    with open(conf, "w") as f:
        f.write(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"rule_files:\n  - {ALERTS}\n"
            "scrape_configs:\n  - job_name: mxgate\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{port}']\n")
    log = open(os.path.join(tmpdir, "prometheus.log"), "wb")
    p = subprocess.Popen(
        ["prometheus", f"--config.file={conf}",
         f"--storage.tsdb.path={os.path.join(tmpdir, 'tsdb')}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        cwd=tmpdir)
    api = f"http://127.0.0.1:{prom_port}"

    def get_json(path: str):
        try:
            with urllib.request.urlopen(api + path, timeout=10) as r:
                return json.load(r)
        except (OSError, ValueError):
            return None

    def query(q: str) -> dict[tuple, float] | None:
        j = get_json("/api/v1/query?query=" + urllib.parse.quote(q))
        if not j or j.get("status") != "success":
            return None
        return {(r["metric"].get("decision"), r["metric"].get("reason")):
                float(r["value"][1]) for r in j["data"]["result"]}

    try:
        mxlib.wait_until(lambda: p.poll() is not None or
                         get_json("/api/v1/status/buildinfo"), BOUND_S,
                         "prometheus to answer")
        check(p.poll() is None, "prometheus exited at start")
        send_traffic(gw, accepted=3, unknown=2, relay=1)

        def counted():
            v = query("mxgate_rcpt_total")
            if not v or v.get(("accept", "valid")) != 3.0:
                return None
            return v
        v = mxlib.wait_until(counted, BOUND_S,
                             "prometheus to have scraped the RCPTs",
                             interval=0.5)
        check_eq(v.get(("reject", "unknown")), 2.0, "rejected unknown")
        check_eq(v.get(("reject", "relay")), 1.0, "relay denied")
        # 15, reject/batv (issue 14), reject/tempfail by a milter (16)
        check_eq(len(v), 18, "series of mxgate_rcpt_total")
        t = get_json("/api/v1/targets")
        health = [a["health"] for a in t["data"]["activeTargets"]]
        check_eq(health, ["up"], "the gateway target's health")

        # the rules load and evaluate against the gateway's series
        def rules_ok():
            j = get_json("/api/v1/rules")
            if not j or j.get("status") != "success":
                return None
            rules = [r for g in j["data"]["groups"] for r in g["rules"]]
            if len(rules) == 5 and all(r.get("health") == "ok" and
                                       r.get("lastEvaluation", "").
                                       startswith("20") for r in rules):
                return rules
            return None
        rules = mxlib.wait_until(rules_ok, BOUND_S, "the rules evaluated",
                                 interval=0.5)
        firing = [r["name"] for r in rules if r.get("state") != "inactive"]
        check_eq(firing, [], "alerts pending or firing on a quiet gateway")
    finally:
        stop_pid(p)
        log.close()


# ------------------------------------------------------------ status page

def chromium(tmpdir: str, url: str, *args: str) -> bytes:
    """Run headless Chromium once in its own process group and profile;
    returns its stdout; every process left in the group is killed."""
    profile = os.path.join(tmpdir, "chromium-profile")
    cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
           f"--user-data-dir={profile}", "--no-first-run",
           "--window-size=1100,1000", *args, url]
    err = open(os.path.join(tmpdir, "chromium.log"), "ab")
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=err,
                         start_new_session=True)
    try:
        out, _ = p.communicate(timeout=120)
    finally:
        stop_pid(p, group=True)
        err.close()
    check_eq(p.returncode, 0, "chromium exit status")
    return out


def text_of(dom: str) -> str:
    """The visible text of a DOM dump: tags out, entities decoded."""
    dom = re.sub(r"(?s)<(style|title)>.*?</\1>", " ", dom)
    t = re.sub(r"<[^>]+>", " ", dom)
    for a, b in (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'),
                 ("&#39;", "'"), ("&middot;", "·"), ("&amp;", "&")):
        t = t.replace(a, b)
    return re.sub(r"\s+", " ", t)


@mxlib.timeout(300)
def test_status_page_in_chromium(gw_factory, tmpdir):
    gw, port = metrics_gateway(gw_factory, harvest_threshold="3",
                               harvest_tarpit_after="1000",
                               harvest_session_limit="1000")
    send_traffic(gw, accepted=3, unknown=2, relay=1)
    with mxlib.session(gw, bind="127.0.4.7") as c:      # a harvester
        c.expect("250 2.1.0 Ok", "MAIL FROM:<h@remote.test>")
        for i in range(3):
            c.expect("550 5.1.1 *", f"RCPT TO:<guess{i}@example.test>")
    gw.wait_event("harvest", state="uniform", net="127.0.4.7")
    mxlib.wait_until(lambda: not gw.spool_files(), BOUND_S, "empty spool")
    status, hdrs, body = http_get(port, "/")
    check_eq(status, 200, "GET /")
    check(hdrs.get("Content-Type") == "text/html; charset=utf-8",
          hdrs.get("Content-Type"))
    csp = hdrs.get("Content-Security-Policy", "")
    check("default-src 'none'" in csp, f"CSP: {csp}")
    page = body.decode("utf-8")
    for bad in ("<script", "<form", "src=", "href=", "<link", "url("):
        check(bad not in page, f"the page holds {bad}")

    url = f"http://127.0.0.1:{port}/"
    dom = chromium(tmpdir, url, "--dump-dom").decode("utf-8")
    text = text_of(dom)
    for want in ("mxgate on mx.example.test", "Uptime", "Sessions open",
                 "Messages accepted 1", "Queue 0", "Oldest message none",
                 "Harvest: marked sources 1", "1 host, 0 networks",
                 "Directory up", "file back-end, 3 entries",
                 "Shared state not configured",
                 "Recipient decisions, last hour"):
        check(want in text, f"rendered text lacks {want!r}: {text[:600]}")
    rows = dict(((d, r), (int(h), int(t))) for d, r, h, t in re.findall(
        r"(\w+) (\w+) (\d+) (\d+)",
        text.split("decision reason last hour since start", 1)[1]))
    check_eq(rows.get(("accept", "valid")), (3, 3), "accept row")
    check_eq(rows.get(("reject", "unknown")), (5, 5), "reject row")
    check_eq(rows.get(("reject", "relay")), (1, 1), "relay row")
    check(dom.count("<rect") >= 3, "the chart has bars")

    png = os.path.join(tmpdir, "status.png")
    chromium(tmpdir, url, f"--screenshot={png}")
    check(os.path.getsize(png) > 10000, "a screenshot")
    with open(png, "rb") as f:
        check(f.read(8) == b"\x89PNG\r\n\x1a\n", "a PNG")
    if os.path.isdir(os.path.dirname(NOTES_PNG)):
        shutil.copyfile(png, NOTES_PNG)
