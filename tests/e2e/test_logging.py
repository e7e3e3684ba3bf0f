"""
test_logging.py - the decision log (issue 18, part 2).
Covers: the RCPT decision line's fields; log_format = json (every line a
JSON object, peer bytes escaped, numbers typed); the queued line tying the
session id to the queue id, with the Message-ID; delivered and deferred
lines with relay, delay, attempts and the reply; queue commands taking a
queue id in either case; log_recipients = hashed; log_file reopened after
a rename and SIGHUP; log_syslog to a test-started datagram socket, in the
lines Postfix log readers match; `mxgate report` on logs made here; the
new `mxgate stats` counters; the README's log examples against real lines,
key by key.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading

import ctllib
import mxlib
import peers
from mxlib import check, check_eq

HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(HERE, "..", "..", "README.md")
ID = re.compile(r"^[0-9A-F]{16}$")
QUEUED = re.compile(r"^250 2\.0\.0 Ok: queued as ([0-9A-F]{16})$")


def qid_of(reply) -> str:
    m = QUEUED.match(reply.text if hasattr(reply, "text") else str(reply))
    check(m is not None, f"queued reply: {reply}")
    return m.group(1)


def fixed_session(gw, msgid: str = "<readme.1@remote.test>") -> str:
    """The session the README's examples come from: one valid, one
    unknown and one relayed recipient, one message.  Its queue id."""
    msg = (b"From: <x@remote.test>\r\nTo: <alice@example.test>\r\n"
           b"Subject: log example\r\nMessage-ID: " + msgid.encode() +
           b"\r\n\r\nhello\r\n")
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        c.expect("250 2.1.5 Ok", "RCPT TO:<alice@example.test>")
        c.expect("550 5.1.1 *", "RCPT TO:<nobody@example.test>")
        c.expect("554 5.7.1 *", "RCPT TO:<x@elsewhere.test>")
        c.expect("354 *", "DATA")
        c.send(msg + b".\r\n")
        qid = qid_of(c.reply())
        c.expect("221 *", "QUIT")
    gw.wait_maildir("example.test", "alice")
    return qid


def json_lines(gw, since: int = 0) -> list[dict]:
    out = []
    for line in gw.log_text(since).splitlines():
        if not line.startswith("{"):
            continue  # a sanitizer's report, if any
        out.append(json.loads(line))
    return out


def wait_json(gw, event: str, **kv) -> dict:
    def find():
        for o in json_lines(gw):
            if o.get("event") == event and all(o.get(k) == v
                                               for k, v in kv.items()):
                return o
        return None
    return mxlib.wait_until(find, 30, f"JSON line event={event} {kv}")


# ------------------------------------------------------------ text lines

def test_rcpt_decision_line(gw):
    qid = fixed_session(gw)
    ok = gw.wait_event("rcpt", to="<alice@example.test>")
    unk = gw.wait_event("rcpt", to="<nobody@example.test>")
    rel = gw.wait_event("rcpt", to="<x@elsewhere.test>")
    for ev in (ok, unk, rel):
        check_eq((ev["prefix"], ev["helo"], ev["from"], ev["client"]),
                 ("127.0.0.0/24", mxlib.CLIENT_HELO, "<x@remote.test>",
                  "127.0.0.1"), "prefix, helo, from, client")
        check(re.fullmatch(r"\d+", ev["latency_ms"]), ev["line"])
        check(ID.match(ev["sid"]), f"sid in the queue id's alphabet: {ev}")
    check_eq((ok["verdict"], ok["action"], ok["source"]),
             ("valid", "accept", "file"), "valid recipient")
    check_eq((unk["verdict"], unk["action"], unk["source"]),
             ("unknown", "reject", "file"), "unknown recipient")
    check_eq((rel["verdict"], rel["action"], rel["source"]),
             ("remote", "relay_denied", "none"), "relayed recipient")
    check('reply="550 5.1.1 <nobody@example.test>: Recipient address '
          'rejected: User unknown"' in unk["line"], unk["line"])
    check('reply="554 5.7.1 <x@elsewhere.test>: Relay access denied"'
          in rel["line"], rel["line"])
    check("shadow=" not in ok["line"], "no shadow under enforce")
    check(qid, "queued")


def test_queued_line_ties_ids_and_message_id(gw):
    # A Message-ID with a control byte and 200 bytes: escaped and capped.
    long_id = "<" + "m" * 200 + "\x01@remote.test>"
    qid = fixed_session(gw, long_id)
    q = gw.wait_event("queued", qid=qid)
    connect = gw.wait_event("connect", sid=q["sid"])
    check(connect, "the queued line's sid is the session's")
    check_eq(q["msgid"], "<" + "m" * 127 + "...", "Message-ID, capped")
    # the log reaches its file through the harness's reader thread:
    # wait for the line, do not read the file at once
    qid2 = fixed_session(gw, "<a\x01b@remote.test>")
    q2 = gw.wait_event("queued", qid=qid2)
    check_eq(q2["msgid"], r"<a\x01b@remote.test>", "Message-ID, escaped")
    d = gw.wait_event("delivered", qid=qid)
    check_eq((d["to"], d["from"], d["relay"], d["attempts"], d["status"]),
             ("<alice@example.test>", "<x@remote.test>", "maildir", "1",
              "2.0.0"), "delivered line")
    check(re.fullmatch(r"\d+", d["delay_s"]), d["line"])
    check('reply="delivered to maildir"' in d["line"], d["line"])


def test_delivered_to_smtp_names_the_relay(ctx, gw_factory):
    sink = peers.PySink(None, "relay", None)
    sink.start()
    try:
        gw = gw_factory(config={"next_hop": f"smtp:127.0.0.1:{sink.port}"})
        with mxlib.session(gw) as c:
            c.expect("250 *", "MAIL FROM:<x@remote.test>")
            c.expect("250 *", "RCPT TO:<alice@example.test>")
            c.expect("354 *", "DATA")
            c.send(mxlib.make_message("relay") + b".\r\n")
            qid = qid_of(c.reply())
        d = gw.wait_event("delivered", qid=qid)
        check_eq(d["relay"], f"127.0.0.1[127.0.0.1]:{sink.port}", "relay")
        check('reply="250 2.0.0 Ok: queued"' in d["line"], d["line"])
    finally:
        sink.stop()


def test_deferred_line_and_queue_ids_in_either_case(ctx, gw_factory):
    port = mxlib.free_port()  # nothing listens there
    gw = gw_factory(config={"next_hop": f"smtp:127.0.0.1:{port}",
                            "retry_min": "1h", "retry_max": "2h"})
    with mxlib.session(gw) as c:
        c.expect("250 *", "MAIL FROM:<x@remote.test>")
        c.expect("250 *", "RCPT TO:<bob@example.test>")
        c.expect("354 *", "DATA")
        c.send(mxlib.make_message("defer") + b".\r\n")
        qid = qid_of(c.reply())
    d = gw.wait_event("deferred", qid=qid)
    check_eq((d["to"], d["attempts"], d["next_attempt_s"]),
             ("<bob@example.test>", "1", "3600"), "deferred line")
    check(d["relay"] in (f"smtp:127.0.0.1:{port}",
                         f"127.0.0.1[127.0.0.1]:{port}"), d["line"])
    check(re.search(r'reply="[^"]*connect', d["line"]), d["line"])
    # Both spellings of the id name the same message.
    up, _ = ctllib.mx(ctx, gw, "queue", "show", qid)
    low, _ = ctllib.mx(ctx, gw, "queue", "show", qid.lower())
    check_eq(low, up, "queue show with a lower-case id")
    check(qid in up, up)


def test_stats_counters(ctx, gw):
    fixed_session(gw)
    with mxlib.session(gw) as c:
        c.expect("250 *", "MAIL FROM:<x@remote.test>")
        c.expect("550 *", "RCPT TO:<ghost@example.test>")
    gw.wait_event("delivered")
    out, _ = ctllib.mx(ctx, gw, "stats")
    st = dict(ln.split(" ", 1) for ln in out.splitlines() if " " in ln)
    want = {"rcpt_accepted_total": "1", "rcpt_rejected_unknown_total": "2",
            "rcpt_relay_denied_total": "1", "rcpt_tempfail_total": "0",
            "rcpt_shadow_total": "0", "messages_queued_total": "1",
            "delivered_total": "1", "deferred_total": "0",
            "bounced_total": "0", "reports_sent_total": "0",
            "reports_suppressed_total": "0"}
    check_eq({k: st.get(k) for k in want}, want, "stats")


# ------------------------------------------------------------ JSON

def test_json_lines(gw_factory):
    gw = gw_factory(config={"log_format": "json"})
    qid = fixed_session(gw)
    with mxlib.session(gw) as c:
        c.expect("250 *", "MAIL FROM:<x@remote.test>")
        # control bytes and bytes that are not UTF-8, echoed in the log
        c.send(b"RCPT TO:<a\x01\x80\xff\"\\b@example.test>\r\n")
        c.reply()
    # this session's end (the first one's disconnect said messages 1):
    # its lines are in the file once this one is
    wait_json(gw, "disconnect", messages=0)
    objs = json_lines(gw)  # json.loads raised if one was not JSON
    check(len(objs) > 10, f"{len(objs)} JSON lines")
    check(all({"time", "level", "event"} <= o.keys() for o in objs),
          "time, level and event in every line")
    rcpt = [o for o in objs if o["event"] == "rcpt" and "action" in o]
    check_eq([(o["to"], o["verdict"], o["action"]) for o in rcpt],
             [("<alice@example.test>", "valid", "accept"),
              ("<nobody@example.test>", "unknown", "reject"),
              ("<x@elsewhere.test>", "remote", "relay_denied")], "rcpt")
    o = rcpt[1]
    check(isinstance(o["latency_ms"], int), f"latency_ms a number: {o}")
    check_eq(sorted(o), sorted(["time", "level", "event", "sid", "client",
                                "prefix", "helo", "from", "to", "verdict",
                                "action", "source", "latency_ms", "reply"]),
             "keys of the decision object")
    bad = [o for o in objs if o["event"] == "rcpt" and "arg" in o]
    check_eq(bad[0]["arg"], 'TO:<a\x01\ufffd\ufffd"\\b@example.test>',
             "a peer's bytes: control escaped, non-UTF-8 as U+FFFD")
    raw = gw.log_text()
    check("\\u0001" in raw and "\\ufffd" in raw, "JSON escapes in the file")
    q = wait_json(gw, "queued", qid=qid)
    check_eq((q["rcpts"], q["msgid"]), (1, "<readme.1@remote.test>"),
             "queued object")
    d = wait_json(gw, "delivered", qid=qid)
    check_eq((d["relay"], d["attempts"]), ("maildir", 1), "delivered")


# ------------------------------------------------------------ hashed

HMAC = re.compile(r"^hmac:[0-9a-f]{32}$")


def test_recipients_hashed(ctx, gw_factory):
    gw = gw_factory(config={"log_recipients": "hashed"})
    fixed_session(gw)
    fixed_session(gw)
    evs = [e for e in gw.events("rcpt") if "action" in e]
    check_eq(len(evs), 6, "decision lines")
    for e in evs:
        check(HMAC.match(e["to"]), f"hashed to: {e['line']}")
    check_eq(evs[0]["to"], evs[3]["to"], "one address, one value")
    check(len({e["to"] for e in evs[:3]}) == 3, "three addresses, three")
    text = gw.log_text()
    for addr in ("alice@example.test", "nobody@example.test",
                 "x@elsewhere.test"):
        check(addr not in "\n".join(
            ln for ln in text.splitlines()
            if "event=rcpt" in ln or "event=delivered" in ln),
            f"{addr} in a decision or delivery line")
    check(HMAC.match(gw.wait_event("delivered")["to"].strip("<>")),
          "delivered line hashed too")
    key = os.path.join(gw.spool_dir, "log_hash.key")
    check_eq((os.path.getsize(key), os.stat(key).st_mode & 0o777),
             (32, 0o600), "the key made in the spool")
    first = evs[0]["to"]
    gw.stop()
    mark = gw.log_mark()
    gw.start()
    fixed_session(gw)
    again = [e for e in gw.events("rcpt", since=mark) if "action" in e]
    check_eq(again[0]["to"], first, "the same value after a restart")
    # Another key, another value; a key too short is refused at start.
    gw.stop()
    keyfile = ctx.write("other.key", b"k" * 32)
    gw.settings["log_hash_key_file"] = keyfile
    mark = gw.log_mark()
    gw.start()
    fixed_session(gw)
    other = [e for e in gw.events("rcpt", since=mark) if "action" in e]
    check(other[0]["to"] != first, "a different key, a different value")
    gw.stop()
    gw.settings["log_hash_key_file"] = ctx.write("short.key", b"k" * 8)
    gw.write_config()
    p = ctx.run_binary(["serve", "-c", gw.conf_path])
    check(p.returncode != 0, "serve with a short key")
    check(b"at least 16 bytes" in p.stdout + p.stderr, p.stderr)


# ------------------------------------------------------------ log_file

def test_log_file_reopened_after_rename_and_sighup(gw_factory):
    # The gateway writes the file the fixture reads (its log_path).
    gw = gw_factory(start=False)
    gw.settings["log_file"] = os.path.basename(gw.log_path)
    gw.start()
    with mxlib.session(gw):
        pass
    first = gw.wait_event("disconnect")
    rotated = gw.log_path + ".1"
    os.rename(gw.log_path, rotated)
    gw.proc.send_signal(signal.SIGHUP)  # gw.reload() reads the gone file
    mxlib.wait_until(lambda: os.path.exists(gw.log_path), 30,
                     "a new log file after SIGHUP")
    gw.wait_log(r"event=log msg=\"reopened\"")
    gw.wait_event("reload")
    with mxlib.session(gw):
        pass
    second = gw.wait_event("disconnect")
    check(second["sid"] != first["sid"], "a new session")
    old = open(rotated, encoding="utf-8", errors="replace").read()
    check(f"sid={first['sid']}" in old, "the old lines stay in the old file")
    check(f"sid={second['sid']}" not in old,
          "no line of the new session in the renamed file")
    check(f"sid={first['sid']}" not in gw.log_text(),
          "old lines not in the new file")


# ------------------------------------------------------------ syslog

class SyslogListener:
    """A unix datagram socket standing in for /dev/log, read by a thread
    as a syslog daemon reads it (the gateway drops a line rather than
    wait when the socket's queue is full)."""

    def __init__(self, path: str):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.lines: list[str] = []
        self.lock = threading.Lock()
        self.done = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while not self.done:
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.lines.append(d.decode("utf-8", "replace"))

    def wait(self, pred, what: str, timeout_s: float = 30.0) -> str:
        def probe():
            with self.lock:
                return next((ln for ln in self.lines if pred(ln)), None)
        try:
            return mxlib.wait_until(probe, timeout_s, what)
        except mxlib.TestFailure as e:
            with self.lock:
                mxlib.fail(f"{e}; got: " + " | ".join(self.lines[-12:]))

    def close(self) -> None:
        self.done = True
        self.thread.join(5.0)
        self.sock.close()


def test_syslog_lines_postfix_readers_match(ctx, gw_factory):
    path = os.path.join(ctx.tmpdir, "devlog")
    lst = SyslogListener(path)
    gw = gw_factory(start=False, config={"log_syslog": "mail",
                                         "log_syslog_socket": path})
    try:
        gw.port = mxlib.free_port()
        gw.write_config()
        gw._spawn()  # nothing on stderr to wait for: the socket says it
        head = r"^<(\d+)>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d mxgate"
        lst.wait(lambda ln: re.search(head + r"\[\d+\]: level=info "
                                      r"event=listening .*:%d" % gw.port,
                                      ln), "event=listening by syslog")
        fixed_session(gw)
        pid = gw.proc.pid
        pre = r"<22>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d mxgate/smtpd\[%d\]: " % pid
        want = [
            pre + r"connect from unknown\[127\.0\.0\.1\]$",
            pre + re.escape(
                "NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 550 5.1.1 "
                "<nobody@example.test>: Recipient address rejected: User "
                "unknown; from=<x@remote.test> to=<nobody@example.test> "
                "proto=ESMTP helo=<client.test>") + "$",
            pre + re.escape(
                "NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 554 5.7.1 "
                "<x@elsewhere.test>: Relay access denied; "
                "from=<x@remote.test> to=<x@elsewhere.test> proto=ESMTP "
                "helo=<client.test>") + "$",
            pre + r"disconnect from unknown\[127\.0\.0\.1\]$",
            # the rest: key=value without the timestamp; <PRI> mail.info
            pre + r"level=info event=queued sid=[0-9A-F]{16} ",
            r"^<22>.* mxgate\[%d\]: level=info event=delivered qid=" % pid,
        ]
        for rx in want:
            lst.wait(lambda ln, rx=rx: re.search(rx, ln), f"/{rx}/")
    finally:
        gw.stop()
        lst.close()


# ------------------------------------------------------------ report

def count_events(gw, event: str) -> int:
    """Lines of this event, text or JSON."""
    return len(re.findall(r'(?:event=|"event":")%s\b' % event,
                          gw.log_text()))


def report_of(ctx, path: str) -> str:
    p = ctx.run_binary(["report", path])
    check_eq(p.returncode, 0, f"mxgate report: {p.stderr!r}")
    return p.stdout.decode()


def report_rows(text: str) -> dict[str, str]:
    rows = {}
    for ln in text.splitlines():
        m = re.match(r"^  (\S.*?)\s{2,}(\d+)$", ln)
        if m:
            rows.setdefault(m.group(1), m.group(2))
    return rows


def traffic(gw) -> None:
    fixed_session(gw)
    fixed_session(gw)
    with mxlib.session(gw) as c:
        c.expect("250 *", "MAIL FROM:<y@remote.test>")
        c.expect("550 *", "RCPT TO:<ghost@example.test>")
    mxlib.wait_until(lambda: count_events(gw, "disconnect") >= 3, 30,
                     "three sessions logged")


def test_report_on_text_and_json_logs(ctx, gw_factory):
    outs = []
    for fmt in ("text", "json"):
        gw = gw_factory(config={"log_format": fmt})
        traffic(gw)
        mxlib.wait_until(lambda: count_events(gw, "delivered") >= 2, 30,
                         "two deliveries logged")
        gw.stop()
        outs.append(report_of(ctx, gw.log_path))
    for out in outs:
        rows = report_rows(out)
        want = {"messages accepted": "2", "recipients accepted": "2",
                "recipients refused": "5", "connections": "3",
                "reject (unknown)": "3", "relay_denied (remote)": "2",
                "127.0.0.1": "5", "delivered": "2"}
        check_eq({k: rows.get(k) for k in want}, want, f"report:\n{out}")
        hours = re.findall(r"^  \d{4}-\d\d-\d\dT\d\d\s+(\d+)\s+(\d+)\s+"
                           r"(\d+)\s+(\d+)$", out, re.M)
        check_eq([sum(int(h[i]) for h in hours) for i in range(4)],
                 [2, 2, 0, 5], f"per hour, summed:\n{out}")
        check(re.search(r" 0 not understood", out), out)
    # The same traffic gives the same report from either format.
    check_eq(outs[0].split("\n", 1)[1].split("Per hour")[0],
             outs[1].split("\n", 1)[1].split("Per hour")[0],
             "text and JSON reports")


def test_report_stdin_and_bad_lines(ctx):
    log = ctx.write("mixed.log", b"not a log line\n" + b"x" * 20000 +
                    b"\n{\"event\": [1]}\n"
                    b"2026-01-02T03:04:05.678Z level=info event=queued "
                    b"sid=00 client=192.0.2.1 qid=0000000000000001\n")
    p = subprocess.run([os.path.abspath(ctx.binary), "report"],
                             stdin=open(log, "rb"), capture_output=True,
                             timeout=10)
    check_eq(p.returncode, 0, "report from stdin")
    out = p.stdout.decode()
    check("1 log lines, 3 not understood" in out, out)
    check_eq(report_rows(out).get("messages accepted"), "1", out)


# ------------------------------------------------------------ README

def readme_block(tag: str) -> list[str]:
    text = open(README, encoding="utf-8").read()
    m = re.search(r"<!-- log-example:%s -->\n```\w*\n(.*?)\n```" % tag,
                  text, re.S)
    check(m is not None, f"README block log-example:{tag}")
    return m.group(1).splitlines()


def line_keys(line: str) -> tuple[str, list[str]]:
    if line.startswith("{"):
        o = json.loads(line)
        return o["event"], list(o)
    ev = mxlib.parse_log_line(line)
    check(ev is not None, f"not a log line: {line}")
    keys = [t.partition("=")[0] for t in
            re.findall(r'(\w+=(?:"[^"]*"|\S+))', line.split(" ", 1)[1])]
    return ev["event"], keys


def check_examples(tag: str, real: list[str]) -> None:
    for ex in readme_block(tag):
        event, keys = line_keys(ex)
        same = [ln for ln in real if line_keys(ln)[0] == event]
        check(same, f"README {tag}: no real line with event={event}")
        if event == "rcpt":  # the example's action picks the line
            act = (json.loads(ex)["action"] if ex.startswith("{") else
                   mxlib.parse_log_line(ex)["action"])
            same = [ln for ln in same if (json.loads(ln).get("action")
                    if ln.startswith("{") else
                    mxlib.parse_log_line(ln).get("action")) == act]
        check(any(line_keys(ln)[1] == keys for ln in same),
              f"README {tag} example for event={event}: keys {keys}, "
              f"real: {[line_keys(ln)[1] for ln in same]}")


def test_readme_log_examples_match_real_lines(gw_factory):
    for tag in ("text", "json"):
        gw = gw_factory(config={"log_format": tag})
        fixed_session(gw)
        # the delivery may be logged after the disconnect, or before
        mxlib.wait_until(lambda: all(
            count_events(gw, ev) for ev in ("disconnect", "delivered")),
            30, "disconnect and delivered logged")
        real = [ln for ln in gw.log_text().splitlines()
                if ln.startswith("{") or mxlib.parse_log_line(ln)]
        check_examples(tag, real)


# ------------------------------------------------------------ config

def test_check_config_names_bad_values(ctx, gw_factory):
    gw = gw_factory(start=False, config={
        "log_format": "xml", "log_recipients": "sha1",
        "log_syslog": "kern", "harvest_guard": "maybe",
        "strict_framing": "off"})
    gw.port = mxlib.free_port()
    gw.write_config()
    p = ctx.run_binary(["check-config", "-c", gw.conf_path])
    err = p.stderr.decode()
    check(p.returncode != 0, "check-config accepted bad values")
    lines = open(gw.conf_path).read().splitlines()
    for key, want in (("log_format", "expected text or json, got 'xml'"),
                      ("log_recipients", "expected plain or hashed"),
                      ("log_syslog", "expected mail, daemon, user, "
                       "local0..local7 or empty, got 'kern'"),
                      ("harvest_guard", "expected enforce, shadow or off"),
                      ("strict_framing", "expected enforce or shadow, got "
                       "'off'")):
        n = next(i + 1 for i, ln in enumerate(lines)
                 if ln.startswith(key + " "))
        check(f"{gw.conf_path}:{n}: {key}: {want}" in err,
              f"{key} at line {n} in: {err}")


def test_syslog_json(ctx, gw_factory):
    """log_format = json with syslog: the Postfix forms stay, the other
    lines are JSON objects after the syslog header."""
    path = os.path.join(ctx.tmpdir, "devlog")
    lst = SyslogListener(path)
    gw = gw_factory(start=False, config={"log_syslog": "local3",
                                         "log_syslog_socket": path,
                                         "log_format": "json"})
    try:
        gw.port = mxlib.free_port()
        gw.write_config()
        gw._spawn()
        lst.wait(lambda ln: '"event":"listening"' in ln and
                 f":{gw.port}" in ln, "listening, by syslog")
        qid = fixed_session(gw)
        # local3 (19) * 8 + info (6) = 158
        lst.wait(lambda ln: re.search(r"^<158>.* mxgate/smtpd\[\d+\]: "
                                      r"connect from unknown\[127\.0\.0\.1\]$",
                                      ln), "connect, Postfix form")
        ln = lst.wait(lambda ln: '"event":"delivered"' in ln, "delivered")
        o = json.loads(ln.split(": ", 1)[1])
        check_eq((o["qid"], o["relay"], o["attempts"]),
                 (qid, "maildir", 1), f"delivered object: {ln}")
    finally:
        gw.stop()
        lst.close()
