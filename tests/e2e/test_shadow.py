"""
test_shadow.py - shadow mode per control (issue 18, part 3).
Covers, for harvest_guard = shadow: a harvester is never tarpitted, cut
off or answered uniformly, and its decision lines say what the guard would
have done (shadow=1 would=tarpit|cutoff|uniform, would_delay_ms), while the
guard still counts (its harvest lines, `mxgate report`'s shadow table, the
stats counter); harvest_guard = off: nothing counted, nothing applied.
For strict_framing = shadow: a command ended by a bare LF is taken as a
lenient server takes it, a message with bare LF and bare CR is accepted and
stored with CRLF line ends, "<LF>.<LF>" still never ends the data; the log
says shadow=1 would=reject.  Each against enforce, the default.
"""

from __future__ import annotations

import mxlib
import test_harvest as th
from mxlib import check, check_eq

# A tarpit far longer than any reply wait here: were a reply tarpitted,
# the read would time out and the test fail, whatever the machine's load.
SLOW = {"harvest_tarpit_delay": "40s", "harvest_tarpit_max": "40s",
        "harvest_tarpit_after": "2", "harvest_session_limit": "4",
        "harvest_threshold": "6", "harvest_session_delay_max": "1h"}
REPLY_S = 20.0


def decisions(gw, src: str) -> list[dict[str, str]]:
    return [e for e in gw.events("rcpt", client=src) if "action" in e]


def test_harvest_guard_shadow(ctx, gw_factory):
    gw = gw_factory(config=dict(SLOW, harvest_guard="shadow"))
    src = "127.0.6.1"
    # Session 1: past the tarpit and the cut-off; nothing is applied.
    with mxlib.session(gw, bind=src) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        for i in range(6):
            th.unknown_rejected(c.cmd(f"RCPT TO:<n{i}@example.test>",
                                      REPLY_S), f"n{i}")
        c.expect("250 2.1.5 Ok", "RCPT TO:<alice@example.test>", REPLY_S)
        c.expect("354 *", "DATA")
        c.send(mxlib.make_message("shadow") + b".\r\n")
        c.expect("250 2.0.0 Ok: queued as *", timeout_s=REPLY_S)
    gw.wait_maildir("example.test", "alice")
    # Session 2: the client is marked (6 distinct unknown names): under
    # enforce every answer would be the uniform one.
    gw.wait_event("harvest", state="uniform", net=src)
    with mxlib.session(gw, bind=src) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        c.expect("250 2.1.5 Ok", "RCPT TO:<bob@example.test>", REPLY_S)
        th.unknown_rejected(c.cmd("RCPT TO:<n9@example.test>", REPLY_S),
                            "n9")
    gw.wait_event("rcpt", client=src, to="<n9@example.test>")
    evs = decisions(gw, src)
    would = [(e["to"], e.get("shadow"), e.get("would")) for e in evs]
    check_eq(would[:2], [("<n0@example.test>", None, None),
                         ("<n1@example.test>", None, None)],
             "below the tarpit: nothing to say")
    check_eq(would[2][1:], ("1", "tarpit"), f"third unknown: {evs[2]}")
    check("would_delay_ms=40000" in evs[2]["line"], evs[2]["line"])
    check(any(w[2] == "cutoff" for w in would[:7]),
          f"past harvest_session_limit: would=cutoff in {would}")
    check_eq(would[-2:], [("<bob@example.test>", "1", "uniform"),
                          ("<n9@example.test>", "1", "uniform")],
             "a marked client")
    check_eq([e["action"] for e in evs],
             ["reject"] * 6 + ["accept", "accept", "reject"],
             "what was done: as without the guard")
    check(not gw.events("tarpit"), "no tarpit started")
    check(not gw.events("rcpt", action="uniform") and
          not gw.events("rcpt", action="cutoff"), "no uniform, no cut-off")
    out = ctx.run_binary(["stats", "-c", gw.conf_path]).stdout.decode()
    check("rcpt_shadow_total 7\n" in out, out)
    p = ctx.run_binary(["report", gw.log_path])
    rep = p.stdout.decode()
    check_eq(p.returncode, 0, "report")
    for row in ("rcpt would tarpit", "rcpt would cutoff",
                "rcpt would uniform"):
        check(row in rep, f"{row} in the report:\n{rep}")
    marked = rep.split("Harvest sources marked")[1].split("\n\n")[0]
    check(f"  {src} " in marked, f"{src} among the marked sources:\n{rep}")


def test_harvest_guard_enforce_for_comparison(gw_factory):
    """The same client under enforce: marked, then the uniform answer."""
    gw = gw_factory(config=dict(th.FAST_CONF, harvest_threshold="6",
                                harvest_tarpit_after="1000",
                                harvest_session_limit="1000"))
    src = "127.0.6.2"
    for s in range(3):
        with th.mail_session(gw, src) as c:
            for j in range(2):
                th.unknown_rejected(th.rcpt(c, f"e{s}x{j}")[0], f"e{s}x{j}")
    gw.wait_event("harvest", state="uniform", net=src)
    with th.mail_session(gw, src) as c:
        check_eq(th.rcpt(c, "alice")[0].raw, th.UNIFORM, "uniform answer")
    check(all("shadow=" not in e["line"] for e in decisions(gw, src)),
          "no shadow under enforce")


def test_harvest_guard_off(gw_factory):
    gw = gw_factory(config=dict(SLOW, harvest_guard="off"))
    src = "127.0.6.3"
    with mxlib.session(gw, bind=src) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        for i in range(8):
            th.unknown_rejected(c.cmd(f"RCPT TO:<o{i}@example.test>",
                                      REPLY_S), f"o{i}")
        c.cmd("VRFY alice", REPLY_S)
        c.expect("250 2.1.5 Ok", "RCPT TO:<alice@example.test>", REPLY_S)
    gw.wait_event("rcpt", client=src, to="<alice@example.test>")
    check(not gw.events("harvest"), "no harvest lines: nothing counted")
    check(all("shadow=" not in e["line"] for e in decisions(gw, src)),
          "off is not shadow")


# ------------------------------------------------------------ framing

def test_strict_framing_shadow_command(gw_factory):
    gw = gw_factory(config={"strict_framing": "shadow"})
    with mxlib.session(gw) as c:
        c.send(b"MAIL FROM:<x@remote.test>\n")
        c.expect("250 2.1.0 Ok")
        c.send(b"RCPT TO:<alice@example.test>\r\r\n")  # CR before CRLF
        r = c.reply()
        check(r.code >= 500, f"a CR inside the line is the parser's: {r}")
        c.expect("250 2.0.0 *", "NOOP")
    ev = gw.wait_event("bare_eol", where="command")
    check_eq((ev.get("shadow"), ev.get("would")), ("1", "reject"),
             "the log says what strict framing would have done")
    check(not gw.events("too_many_errors"), "no error counted for it")


def test_strict_framing_enforce_command(gw):
    with mxlib.session(gw) as c:
        c.send(b"MAIL FROM:<x@remote.test>\n")
        c.expect("500 5.5.2 Error: bare CR or LF in command refused")
    ev = gw.wait_event("bare_eol")
    check("shadow" not in ev, ev["line"])


def smuggle_body() -> bytes:
    return (b"From: <x@remote.test>\r\nTo: <alice@example.test>\r\n"
            b"Subject: bare\r\n\r\n"
            b"line one\nline two\rthree\r\n"
            b"\n.\nMAIL FROM:<evil@remote.test>\r\n"
            b"end\r\n")


def test_strict_framing_shadow_data(gw_factory):
    gw = gw_factory(config={"strict_framing": "shadow"})
    with mxlib.session(gw) as c:
        c.expect("250 *", "MAIL FROM:<x@remote.test>")
        c.expect("250 *", "RCPT TO:<alice@example.test>")
        c.expect("354 *", "DATA")
        c.send(smuggle_body() + b".\r\n")
        c.expect("250 2.0.0 Ok: queued as *")
        c.expect("250 2.0.0 *", "NOOP")  # nothing smuggled in between
    f = gw.wait_maildir("example.test", "alice")[0]
    _, body = mxlib.split_received(open(f, "rb").read())
    stored = (b"From: <x@remote.test>\nTo: <alice@example.test>\n"
              b"Subject: bare\n\nline one\nline two\nthree\n"
              b"\n.\nMAIL FROM:<evil@remote.test>\nend\n")
    check_eq(body, stored, "stored with CRLF for each bare CR and LF "
             "(Maildir: LF), the smuggled dot kept as text")
    ev = gw.wait_event("bare_eol", where="data")
    check_eq((ev.get("shadow"), ev.get("would")), ("1", "reject"), "log")
    check_eq(len(gw.events("queued")), 1, "one message, not two")
    check(not gw.events("mail", **{"from": "<evil@remote.test>"}),
          "the smuggled MAIL never ran")


def test_strict_framing_enforce_data(gw):
    with mxlib.session(gw) as c:
        c.expect("250 *", "MAIL FROM:<x@remote.test>")
        c.expect("250 *", "RCPT TO:<alice@example.test>")
        c.expect("354 *", "DATA")
        c.send(smuggle_body() + b".\r\n")
        c.expect("550 5.6.0 *")
    gw.wait_event("data", result="bare_eol")
    check(not gw.events("queued"), "nothing queued under enforce")
