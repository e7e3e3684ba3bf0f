"""
test_sender_login.py - authenticated senders may only be themselves
(issue 14, part 6; sender_login_map, auth/sender_map.c).
Covers: an AUTH user `anna` may use anna@ our domain (also with a +tag
and in other case), not ceo@ours nor spoof@bank.test (553 5.7.1 with the
text, an event=sender_login line); the null sender is allowed; the map
`ceo@example.test anna` lets her send as ceo@; an AUTH name that is an
address owns that address only; a reload picks up a changed map and a bad
map at reload keeps the old one; a bad map line is a check-config error
with its line number.
"""

from __future__ import annotations

import os

import mxlib
from mxlib import check, check_eq
from test_tls_auth import AUTH_OK, hash_line, make_cert, plain, raw

ANNA, ANNA_PW = "anna", "anna's password"
BOB, BOB_PW = "bob@example.test", "bob's password"


def not_owned(addr: str, user: str) -> str:
    return (f"553 5.7.1 <{addr}>: Sender address rejected: not owned by "
            f"user {user}")


def login_gateway(gw_factory, sender_map: str | None = None, **conf: str):
    """A submission gateway with AUTH users anna and bob@example.test and,
    if given, a sender_login_map file `senders` with that text."""
    sub_port = mxlib.free_port()
    settings = {"tls_cert": "cert.pem", "tls_key": "key.pem",
                "submission_listen": f"127.0.0.1:{sub_port}",
                "passwd_file": "passwd", "recipient_delimiter": "+"}
    if sender_map is not None:
        settings["sender_login_map"] = "file:senders"
    settings.update(conf)
    gw = gw_factory(start=False, config=settings)
    gw.cert = make_cert(gw.dir)
    gw.sub_port = sub_port
    with open(os.path.join(gw.dir, "passwd"), "w") as f:
        f.write(hash_line(gw.binary, ANNA, ANNA_PW)
                + hash_line(gw.binary, BOB, BOB_PW))
    if sender_map is not None:
        write_map(gw, sender_map)
    gw.start()
    gw.wait_log(r"event=listening addr=127\.0\.0\.1:%d listener="
                r"submission" % sub_port, since=gw.run_mark)
    return gw


def write_map(gw, text: str) -> None:
    path = os.path.join(gw.dir, "senders")
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def authed(gw, user: str, password: str) -> mxlib.Client:
    c = raw(gw, port=gw.sub_port, tls=True)
    c.expect(AUTH_OK, "AUTH PLAIN " + plain(user, password))
    return c


def may(c: mxlib.Client, addr: str) -> None:
    c.expect("250 2.1.0 Ok", f"MAIL FROM:<{addr}>")
    c.expect("250 2.0.0 *", "RSET")


def test_default_own_address_only(gw_factory):
    gw = login_gateway(gw_factory)
    mark = gw.log_mark()
    with authed(gw, ANNA, ANNA_PW) as c:
        may(c, "anna@example.test")
        may(c, "Anna@EXAMPLE.test")
        may(c, "anna+news@example.test")
        may(c, "")
        c.expect(not_owned("ceo@example.test", ANNA),
                 "MAIL FROM:<ceo@example.test>")
        c.expect("503 5.5.1 *", "RCPT TO:<bob@example.test>")
        c.expect(not_owned("spoof@bank.test", ANNA),
                 "MAIL FROM:<spoof@bank.test>")
        c.expect(not_owned("anna@bank.test", ANNA),
                 "MAIL FROM:<anna@bank.test>")
        may(c, "anna@example.test")
    ev = gw.wait_event("sender_login", since=mark, result="not_owned")
    check_eq(ev.get("user"), ANNA, "event=sender_login user")
    check_eq(ev.get("from"), "<ceo@example.test>", "event=sender_login from")


def test_unauthenticated_port_25_unchanged(gw_factory):
    gw = login_gateway(gw_factory)
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<spoof@bank.test>")


def test_map_widens(gw_factory):
    gw = login_gateway(gw_factory, sender_map=(
        "# who may send as whom\n"
        "ceo@example.test anna\n"
        "team@example.test  anna,bob@example.test\n"))
    with authed(gw, ANNA, ANNA_PW) as c:
        may(c, "ceo@example.test")
        may(c, "CEO@Example.Test")
        may(c, "team@example.test")
        c.expect(not_owned("spoof@bank.test", ANNA),
                 "MAIL FROM:<spoof@bank.test>")
    with authed(gw, BOB, BOB_PW) as c:
        may(c, "team@example.test")
        c.expect(not_owned("ceo@example.test", BOB),
                 "MAIL FROM:<ceo@example.test>")


def test_auth_name_is_an_address(gw_factory):
    gw = login_gateway(gw_factory)
    with authed(gw, BOB, BOB_PW) as c:
        may(c, "bob@example.test")
        may(c, "bob+x@EXAMPLE.TEST")
        # the name is an address: not also "bob@example.test"@domains
        c.expect(not_owned("anna@example.test", BOB),
                 "MAIL FROM:<anna@example.test>")


def test_reload_picks_up_map(gw_factory):
    gw = login_gateway(gw_factory, sender_map="other@example.test anna\n")
    with authed(gw, ANNA, ANNA_PW) as c:
        c.expect(not_owned("ceo@example.test", ANNA),
                 "MAIL FROM:<ceo@example.test>")
    write_map(gw, "ceo@example.test anna\n")
    gw.wait_event("reload", since=gw.reload(), result="ok")
    with authed(gw, ANNA, ANNA_PW) as c:
        may(c, "ceo@example.test")
        c.expect(not_owned("other@example.test", ANNA),
                 "MAIL FROM:<other@example.test>")
    write_map(gw, "ceo@example.test anna\nbroken line here\n")
    ev = gw.wait_event("reload", since=gw.reload(), result="kept_old")
    check_eq(ev.get("reason"), "tls_or_passwd", "reload refusal reason")
    with authed(gw, ANNA, ANNA_PW) as c:
        may(c, "ceo@example.test")


BAD_MAPS = {
    "no_user": ("# map\nceo@example.test anna\nceo@example.test\n",
                "senders:3: expected: address user[,user...]"),
    "bad_address": ("\n\nnot-an-address anna\n",
                    "senders:3: the address has no '@'"),
    "empty_user": ("a@example.test anna,,bob\n",
                   "senders:1: empty user name"),
}


@mxlib.params(list(BAD_MAPS), ids=list(BAD_MAPS))
def test_check_config_bad_map(ctx, param):
    text, want = BAD_MAPS[param]
    gw = ctx.gateway(start=False, config={
        "tls_cert": "cert.pem", "tls_key": "key.pem",
        "passwd_file": "passwd", "sender_login_map": "file:senders"})
    make_cert(gw.dir)
    with open(os.path.join(gw.dir, "passwd"), "w") as f:
        f.write(hash_line(ctx.binary, ANNA, ANNA_PW))
    write_map(gw, text)
    gw.port = mxlib.free_port()
    gw.write_config()
    p = ctx.run_binary(["check-config", "-c", gw.conf_path])
    err = p.stderr.decode()
    check(p.returncode != 0 and want in err,
          f"check-config: status {p.returncode}, stderr {err!r}")


def test_check_config_bad_key(ctx):
    gw = ctx.gateway(start=False, config={"sender_login_map": "senders"})
    gw.port = mxlib.free_port()
    gw.write_config()
    p = ctx.run_binary(["check-config", "-c", gw.conf_path])
    err = p.stderr.decode()
    check(p.returncode != 0 and "expected file:PATH" in err,
          f"check-config: status {p.returncode}, stderr {err!r}")
