"""
test_package.py - the Debian package (issue 18, part 4): `make deb`
builds it (debhelper, dpkg-buildpackage -us -uc -b, from a copy of the
tree); `dpkg -i` installs it on this machine with the service kept from
starting (policy-rc.d); the installed files are where Debian expects
them, /etc/mxgate/mxgate.conf is a conffile, the mxgate system user owns
the spool, the installed unit verifies; /usr/sbin/mxgate check-config
passes on the installed default config and a short serve from the
installed binary and users file takes and delivers mail over SMTP; then
`dpkg --purge` leaves nothing behind.  Runs as root (CI does); whatever
fails, the package is purged and policy-rc.d removed if we made it.
"""

from __future__ import annotations

import glob
import grp
import os
import pwd
import re
import stat
import subprocess

import mxlib
from mxlib import check, check_eq

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
POLICY_RC = "/usr/sbin/policy-rc.d"
PKG = "mxgate"
ENV = dict(os.environ, DEBIAN_FRONTEND="noninteractive")

INSTALLED = ["/usr/sbin/mxgate", "/etc/mxgate/mxgate.conf",
             "/etc/mxgate/users", "/usr/share/man/man8/mxgate.8.gz",
             "/usr/share/man/man5/mxgate.conf.5.gz",
             "/usr/share/doc/mxgate/examples/mxgate.conf",
             "/usr/share/doc/mxgate/examples/fail2ban-filter-mxgate.conf",
             "/usr/share/doc/mxgate/examples/fail2ban-jail-mxgate.conf"]
UNITS = ["/lib/systemd/system/mxgate.service",
         "/usr/lib/systemd/system/mxgate.service"]


def run(args: list[str], timeout_s: float = 120.0, **kw
        ) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True,
                          timeout=timeout_s, env=ENV, **kw)


def pkg_status() -> str:
    p = run(["dpkg-query", "-W", "-f=${Status}", PKG])
    return p.stdout if p.returncode == 0 else ""


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def build_deb(outdir: str) -> str:
    p = run(["make", "--no-print-directory", "-C", REPO, "deb",
             f"DEB_OUT={outdir}"], timeout_s=900.0)
    check_eq(p.returncode, 0, "make deb: " + (p.stdout + p.stderr)[-3000:])
    debs = glob.glob(os.path.join(outdir, "mxgate_*.deb"))
    check_eq(len(debs), 1, f"one .deb in {outdir}: {debs}")
    return debs[0]


def check_installed(ctx) -> None:
    check_eq(pkg_status(), "install ok installed", "dpkg status")
    for path in INSTALLED:
        check(os.path.isfile(path), f"installed: {path}")
    check(os.access("/usr/sbin/mxgate", os.X_OK), "the binary runs")
    unit = [u for u in UNITS if os.path.isfile(u)]
    check(unit, f"the unit in one of {UNITS}")
    conffiles = run(["dpkg-query", "-W", "-f=${Conffiles}", PKG]).stdout
    check(re.search(r"^ /etc/mxgate/mxgate\.conf [0-9a-f]{32}$", conffiles,
                    re.M), f"mxgate.conf is a conffile: {conffiles!r}")
    u = pwd.getpwnam("mxgate")
    check(u.pw_uid < 1000, f"a system user: uid {u.pw_uid}")
    check_eq(grp.getgrgid(u.pw_gid).gr_name, "mxgate", "its group")
    st = os.stat("/var/spool/mxgate")
    check_eq((st.st_uid, stat.S_IMODE(st.st_mode)), (u.pw_uid, 0o700),
             "the spool: owner and mode")
    # installed disabled: the example config is to be edited first
    check(not os.path.exists("/etc/systemd/system/multi-user.target.wants/"
                             "mxgate.service"), "not enabled")
    p = run(["systemd-analyze", "verify", unit[0]])
    check_eq((p.returncode, p.stderr.strip()), (0, ""),
             "systemd-analyze verify on the installed unit")
    p = run(["man", "-l", "-P", "cat", "/usr/share/man/man5/mxgate.conf.5.gz"])
    check(p.returncode == 0 and "pid_file" in p.stdout,
          f"the installed mxgate.conf(5): {p.stderr!r}")


def serve_installed(ctx) -> None:
    """check-config on the installed default, then a gateway from the
    installed binary and users file on a loopback port."""
    p = run(["/usr/sbin/mxgate", "check-config"], cwd=ctx.tmpdir)
    check_eq(p.returncode, 0, f"check-config on the default: {p.stderr}")
    check(p.stdout.startswith("/etc/mxgate/mxgate.conf: ok (1 domains, "),
          f"check-config said: {p.stdout!r}")
    p = run(["/usr/sbin/mxgate", "config", "domains", "spool"],
            cwd=ctx.tmpdir)
    check_eq(p.stdout, "domains = example.org\nspool = /var/spool/mxgate\n",
             "the installed default config")
    gw = ctx.gateway(start=False, users=None, config={
        "domains": "example.org", "directory": "file:/etc/mxgate/users",
        "hostname": mxlib.HOSTNAME})
    gw.binary = "/usr/sbin/mxgate"
    gw.start()
    with mxlib.session(gw) as c:
        c.expect("250 2.1.0 Ok", "MAIL FROM:<x@remote.test>")
        c.expect("250 2.1.5 Ok", "RCPT TO:<postmaster@example.org>")
        c.expect("550 5.1.1 *", "RCPT TO:<nobody@example.org>")
        c.expect("354 *", "DATA")
        c.send(mxlib.make_message(to="postmaster@example.org") + b".\r\n")
        c.expect("250 2.0.0 Ok: queued as *")
    gw.wait_maildir("example.org", "postmaster")
    check_eq(gw.stop(), 0, "exit status of the installed gateway")


def purge_and_check() -> list[str]:
    problems = []
    p = run(["dpkg", "--purge", PKG], timeout_s=300.0)
    if p.returncode != 0:
        problems.append(f"dpkg --purge: {p.stdout[-1000:]} {p.stderr[-1000:]}")
    if pkg_status() not in ("", "unknown ok not-installed"):
        problems.append(f"still known to dpkg: {pkg_status()!r}")
    for path in INSTALLED + UNITS + ["/etc/mxgate", "/var/spool/mxgate"]:
        if os.path.lexists(path):
            problems.append(f"left after purge: {path}")
    if user_exists("mxgate"):
        problems.append("the mxgate user is left after purge")
    return problems


@mxlib.timeout(1200)
def test_deb_builds_installs_serves_and_purges(ctx):
    check_eq(os.geteuid(), 0, "this test installs a package: run as root")
    check(pkg_status() in ("", "unknown ok not-installed"),
          f"a package named mxgate is already here ({pkg_status()!r}): "
          "the test does not touch it")
    deb = build_deb(os.path.join(ctx.tmpdir, "deb"))
    p = run(["dpkg-deb", "-f", deb, "Package", "Depends"])
    check(p.stdout.startswith("Package: mxgate\n") and "adduser" in p.stdout,
          f"control fields: {p.stdout!r}")
    made_policy = False
    if not os.path.lexists(POLICY_RC):
        with open(POLICY_RC, "w") as f:
            f.write("#!/bin/sh\n# made by tests/e2e/test_package.py\n"
                    "exit 101\n")
        os.chmod(POLICY_RC, 0o755)
        made_policy = True
    problems: list[str] = []
    try:
        p = run(["dpkg", "-i", deb], timeout_s=300.0)
        check_eq(p.returncode, 0, f"dpkg -i: {p.stdout[-2000:]} "
                 f"{p.stderr[-2000:]}")
        check_installed(ctx)
        serve_installed(ctx)
    finally:
        for gw in ctx.gateways:           # before the binary goes away
            gw.stop()
        problems = purge_and_check()
        if made_policy:
            os.unlink(POLICY_RC)
    check(not problems, "; ".join(problems))
