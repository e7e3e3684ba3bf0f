#!/bin/sh
# make-deb.sh OUTDIR [dpkg-buildpackage flags] - build the Debian package
# from a copy of the tree (dpkg-buildpackage writes into the parent
# folder, and builds in place): git's files plus the working changes,
# never build/ or other leftovers.  The .deb and .buildinfo go to OUTDIR.
set -eu
out=$1
shift
top=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mxgate-deb.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/mxgate"
# tracked and new (not ignored) files, as they are in the work tree
(cd "$top" && git ls-files -z --cached --others --exclude-standard |
	xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
	tar --null -T - -cf -) | tar -xf - -C "$tmp/mxgate"
(cd "$tmp/mxgate" && dpkg-buildpackage -us -uc -b "$@")
mkdir -p "$out"
cp "$tmp"/*.deb "$out"/
ls "$out"/*.deb
