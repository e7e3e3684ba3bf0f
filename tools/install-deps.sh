#!/bin/sh
# install-deps.sh PKG... - install the Debian packages that are missing.
# Uses apt-get only, and only when something is missing.  Services that
# packages would start (postfix, dovecot, dnsmasq) are kept from starting
# during the install: tests start their own copies on loopback.
set -e
missing=""
for p in "$@"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0
echo "install-deps: installing:$missing"
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: not root; run as root or install:$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Postfix is wanted for its smtp-source/smtp-sink tools only.
echo "postfix postfix/main_mailer_type select No configuration" |
	debconf-set-selections 2>/dev/null || true
# slapd: tests write their own config; no system directory is made.
echo "slapd slapd/no_configuration boolean true" |
	debconf-set-selections 2>/dev/null || true
made_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod +x /usr/sbin/policy-rc.d
	made_policy=1
fi
rc=0
{ apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing; } || rc=$?
[ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
exit $rc
