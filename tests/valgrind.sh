#!/bin/sh
# valgrind.sh - the end-to-end suite with every gateway under valgrind
# (memcheck): invalid reads and writes, uses of uninitialised values, bad
# frees, and definite leaks at exit.  Each gateway writes its own valgrind
# log; at the end they are read and summed up.  A gateway stopped by
# SIGTERM with errors also exits 99, which fails its test.
#
# Usage: tests/valgrind.sh [BINARY]       (default build/mxgate)
# Environment: VG_FILTERS  run.py -k substrings, one run each (default: a
#              set that is reliable under valgrind's slowdown, see below;
#              "all" for the whole suite)
#              VG_JOBS     parallel tests (default 2)
#              VG_TIMEOUT  per-test limit in seconds (default 240)
#              VG_OUT      folder for the valgrind logs (default
#                          build/valgrind, emptied first)
# Exit status 0 only if every test passed and valgrind found nothing.
cd "$(dirname "$0")/.." || exit 1
BIN=${1:-build/mxgate}
JOBS=${VG_JOBS:-2}
TIMEOUT=${VG_TIMEOUT:-240}
OUT=${VG_OUT:-build/valgrind}
# Left out by default: test_crash (kill -9 leaves no valgrind summary,
# and the load it needs is not reached at valgrind speed) and test_hostile
# (RSS under valgrind means nothing; its time windows are sized for a
# native gateway).  Everything else runs, one run.py -k per module.
FILTERS=${VG_FILTERS:-"test_protocol. test_recipients. test_delivery. \
test_delivery_hops. test_lifecycle. test_ctl. test_ctl_live. test_harvest. \
test_limits. test_tls_auth. test_journal. .smtp"}

command -v valgrind >/dev/null 2>&1 || {
	echo "valgrind.sh: valgrind is not installed (apt-get install valgrind)"
	exit 1
}
[ -x "$BIN" ] || { echo "valgrind.sh: $BIN: not an executable"; exit 1; }
rm -rf "$OUT"
mkdir -p "$OUT" || exit 1
OUT=$(cd "$OUT" && pwd)

export MXGATE_WRAPPER="valgrind --tool=memcheck --error-exitcode=99 \
--leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite \
--num-callers=30 --log-file=$OUT/vg.%p.log"

start=$(date +%s)
status=0
[ "$FILTERS" = all ] && FILTERS=.	# every test name has a dot
for k in $FILTERS; do
	echo "=== valgrind: run.py -k $k"
	log="$OUT/run.$(printf '%s' "$k" | tr -c 'A-Za-z0-9_' _).txt"
	python3 tests/e2e/run.py --binary "$BIN" -j "$JOBS" --timeout "$TIMEOUT" \
	    -k "$k" >"$log" 2>&1 || status=1
	grep -E '^(FAIL|e2e:)' "$log"
done
secs=$(( $(date +%s) - start ))

# Each log: "ERROR SUMMARY: N errors from M contexts"; none when the
# gateway was killed (kill -9 tests) before valgrind could write it.
logs=0; clean=0; dirty=0; nosum=0; dirtylist=""
for f in "$OUT"/vg.*.log; do
	[ -e "$f" ] || continue
	logs=$((logs + 1))
	n=$(sed -n 's/^==[0-9]*== ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$f" | tail -n 1)
	if [ -z "$n" ]; then
		nosum=$((nosum + 1))
	elif [ "$n" -eq 0 ]; then
		clean=$((clean + 1))
	else
		dirty=$((dirty + 1))
		dirtylist="$dirtylist $f"
	fi
done
# Errors can also sit in a log without a summary (a killed gateway).
errlogs=$(grep -lE '^==[0-9]+== (Invalid (read|write|free)|Conditional jump|Use of uninitialised|Syscall param|Mismatched free|Source and destination overlap|[0-9,]+ bytes in [0-9,]+ blocks are definitely lost)' \
    "$OUT"/vg.*.log 2>/dev/null)
tests=$(cat "$OUT"/run.*.txt | sed -n 's/^e2e: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' |
    awk '{p += $1; f += $2} END {printf "%d passed, %d failed", p, f}')

echo
echo "valgrind: tests: $tests; gateway processes: $logs ($clean clean," \
    "$dirty with errors, $nosum killed before a summary); ${secs}s"
if [ -n "$errlogs" ]; then
	status=1
	echo "valgrind: errors found in:"
	for f in $errlogs; do
		echo "--- $f ($(grep -m1 -o 'serve -c .*' "$f"))"
		grep -E '^==[0-9]+== ' "$f" | grep -vE '^==[0-9]+== (Memcheck|Copyright|Using Valgrind|Command|Parent PID|$)' |
		    sed -n '/Invalid\|Conditional\|uninitialised\|Syscall param\|Mismatched\|overlap\|definitely lost in/,+12p' | head -n 40
	done
else
	echo "valgrind: no errors"
fi
exit $status
