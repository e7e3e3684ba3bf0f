"""
test_reply_floor.py - rcpt_reply_floor (issue 12, point 12): a RCPT reply
that hides validity (discard, bounce, uniform mode) leaves a fixed time
after its command was read, so a valid and an unknown name look the same
in time as in bytes.
Covers: the reply under discard and bounce never comes before the floor
(a lower bound the server guarantees, not timing luck), for valid and
unknown names alike; reject mode is not held; a pipelined group gets
every reply, in order, sharing one floor, and a QUIT at its end still
gets them all before the close; STARTTLS pipelined behind held replies
gets them in clear first; a tarpitted reply still waits for its tarpit;
check-config bounds for the key.  The times asserted are bounds the
server promises (reply >= floor); upper bounds are loose by seconds.
"""

from __future__ import annotations

import re
import time

import mxlib
from mxlib import check, check_eq
from test_lifecycle import GOOD_CONFIG, check_config
from test_tls_auth import STARTTLS_REPLY, client_context, tls_gateway

RCPT_OK = b"250 2.1.5 Ok\r\n"
FLOOR_S = 0.2
EPS_S = 0.002   # the client's clock starts before it sends: no slack needed


def timed_rcpt(c: mxlib.Client, rcpt: str) -> tuple[bytes, float]:
    t0 = time.monotonic()
    c.sendline(f"RCPT TO:<{rcpt}>")
    r = c.reply(timeout_s=10)
    return r.raw, time.monotonic() - t0


@mxlib.params(["discard", "bounce"])
def test_floor_holds_reply(gw_factory, param):
    gw = gw_factory(config={"unknown_recipient": param,
                            "rcpt_reply_floor": "200ms"})
    for who in ("alice", "nobody", "bob", "ghost"):
        with mxlib.session(gw) as c:
            c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
            raw, dt = timed_rcpt(c, f"{who}@example.test")
            check_eq(raw, RCPT_OK, f"reply to {who} under {param}")
            check(dt >= FLOOR_S - EPS_S,
                  f"reply to {who} after {dt * 1000:.1f} ms, before the "
                  f"{FLOOR_S * 1000:.0f} ms floor")


def test_floor_spares_reject_mode(gw_factory):
    """Three sequential RCPTs under reject with a 1 s floor: held, they
    would take 3 s at least; they are not, so they take far less (the
    bound leaves 2.5 s to a loaded machine)."""
    gw = gw_factory(config={"unknown_recipient": "reject",
                            "rcpt_reply_floor": "1s"})
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        t0 = time.monotonic()
        raw, _ = timed_rcpt(c, "alice@example.test")
        check_eq(raw, RCPT_OK, "valid name under reject")
        for who in ("nobody", "ghost"):
            raw, _ = timed_rcpt(c, f"{who}@example.test")
            check(raw.startswith(b"550 5.1.1 "), f"{who} under reject: "
                  f"{raw!r}")
        dt = time.monotonic() - t0
        check(dt < 2.5, f"3 RCPTs under reject took {dt:.2f}s: held?")


def test_floor_reject_domain_beside_discard(gw_factory):
    """Per domain: a reject section pays nothing under a global discard."""
    gw = gw_factory(config={"domains": "example.test, other.example",
                            "unknown_recipient": "discard",
                            "rcpt_reply_floor": "1s"},
                    sections={"other.example": {"unknown_recipient":
                                                "reject"}})
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        t0 = time.monotonic()
        for who in ("nobody", "ghost", "nix"):
            raw, _ = timed_rcpt(c, f"{who}@other.example")
            check(raw.startswith(b"550 5.1.1 "), f"reject section: {raw!r}")
        dt = time.monotonic() - t0
        check(dt < 2.5, f"3 RCPTs to the reject section took {dt:.2f}s")
        raw, dt = timed_rcpt(c, "nobody@example.test")
        check_eq(raw, RCPT_OK, "the discard domain beside it")
        check(dt >= 1.0 - EPS_S, f"discard domain answered after {dt:.3f}s")


def test_floor_pipelined_in_order(gw_factory):
    floor = 0.5
    gw = gw_factory(config={"unknown_recipient": "discard",
                            "rcpt_reply_floor": "500ms"})
    names = ["alice", "nobody", "bob", "ghost", "alice", "nix", "bob",
             "nada"]
    with mxlib.session(gw) as c:
        batch = "MAIL FROM:<x@remote.test>\r\n" + "".join(
            f"RCPT TO:<{n}@example.test>\r\n" for n in names) + \
            "NOOP\r\nRSET\r\nQUIT\r\n"
        t0 = time.monotonic()
        c.send(batch)   # one segment: one read, one floor
        got = [c.reply(timeout_s=10).raw for _ in range(len(names) + 4)]
        dt = time.monotonic() - t0
        want = [b"250 2.1.0 Ok\r\n"] + [RCPT_OK] * len(names) + \
            [b"250 2.0.0 Ok\r\n", b"250 2.0.0 Ok\r\n"]
        check_eq(got[:-1], want, "replies to the pipelined group, in order")
        check(got[-1].startswith(b"221 "), f"QUIT reply {got[-1]!r}")
        check(dt >= floor - EPS_S, f"group answered after {dt:.3f}s")
        # one floor for the group, not one per RCPT (8 * 0.5 s = 4 s)
        check(dt < 3.5, f"group answered after {dt:.2f}s: a floor per RCPT?")
        c.expect_close()
    gw.wait_event("disconnect")


def test_floor_tarpit_is_the_later(gw_factory):
    """A tarpitted reply waits for its tarpit, which is longer here."""
    gw = gw_factory(config={"unknown_recipient": "discard",
                            "rcpt_reply_floor": "5ms",
                            "harvest_tarpit_after": "2",
                            "harvest_tarpit_delay": "400ms",
                            "harvest_tarpit_max": "400ms"})
    with mxlib.session(gw, bind="127.9.7.1") as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        for n in ("nobody1", "nobody2"):
            check_eq(c.cmd(f"RCPT TO:<{n}@example.test>").raw, RCPT_OK, n)
        for n in ("alice", "nobody3"):
            raw, dt = timed_rcpt(c, f"{n}@example.test")
            check_eq(raw, RCPT_OK, f"{n} in the tarpit")
            check(dt >= 0.4 - EPS_S, f"{n} answered after {dt:.3f}s, "
                  "before the tarpit's 400 ms")
        c.expect("250 2.0.0 *", "NOOP")


def test_floor_held_replies_before_starttls(gw_factory):
    gw = tls_gateway(gw_factory, submission=False, users_file=False,
                     unknown_recipient="discard", rcpt_reply_floor="300ms")
    with mxlib.session(gw) as c:
        c.send("MAIL FROM:<x@remote.test>\r\nRCPT TO:<nobody@example.test>"
               "\r\nRSET\r\nSTARTTLS\r\n")
        check_eq(c.reply().raw, b"250 2.1.0 Ok\r\n", "MAIL")
        check_eq(c.reply().raw, RCPT_OK, "RCPT, in clear, before TLS")
        check_eq(c.reply().raw, b"250 2.0.0 Ok\r\n", "RSET")
        check(c.reply().raw.decode().startswith(STARTTLS_REPLY[:3]),
              "STARTTLS reply")
        check_eq(c.buf, b"", "bytes after the 220 to STARTTLS")
        c.sock = client_context(gw).wrap_socket(
            c.sock, server_hostname=mxlib.HOSTNAME)
        c.ehlo()
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        check_eq(c.cmd("RCPT TO:<alice@example.test>").raw, RCPT_OK,
                 "RCPT under TLS")


FLOOR_BAD = [("rcpt_reply_floor = 2s", "above 1s"),
             ("rcpt_reply_floor = soon", "not a duration"),
             ("rcpt_reply_floor = -5ms", "negative")]


@mxlib.params(FLOOR_BAD, ids=[b[1].replace(" ", "-") for b in FLOOR_BAD])
def test_floor_check_config_bounds(ctx, param):
    bad, _ = param
    lines = GOOD_CONFIG.splitlines()
    lines.insert(4, bad)  # line 5
    path, rc, out = check_config(ctx, "\n".join(lines) + "\n")
    check_eq(rc, 1, f"check-config exit status (output: {out.strip()!r})")
    check(re.search(rf"^{re.escape(path)}:5: .*rcpt_reply_floor", out, re.M),
          f"no '{path}:5: ... rcpt_reply_floor' line in {out.strip()!r}")


@mxlib.params(["0", "1s", "5ms"])
def test_floor_check_config_good(ctx, param):
    lines = GOOD_CONFIG.splitlines()
    lines.insert(4, f"rcpt_reply_floor = {param}")
    _, rc, out = check_config(ctx, "\n".join(lines) + "\n")
    check_eq(rc, 0, f"check-config exit status (output: {out.strip()!r})")
