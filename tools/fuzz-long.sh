#!/bin/sh
# fuzz-long.sh - a long libFuzzer run of every fuzz target, one after the
# other, each for SECONDS over its checked-in seeds (fuzz/corpus/NAME) and
# a scratch corpus it grows (BUILD/fuzz/long/NAME, kept between runs), and
# one table at the end: executions (libFuzzer's
# stat::number_of_executed_units from -print_final_stats=1), executions a
# second, new units, the scratch corpus size, and the verdict.  A target
# that crashes (or leaks, times out, runs out of memory) stops early; its
# artifacts (crash-*, leak-*, timeout-*, oom-*) are copied into
# fuzz/corpus/NAME/ so that the bug, once fixed, stays fixed: every later
# `make test` replays them.  Exit status 1 if any target found anything.
#
# Usage: tools/fuzz-long.sh BUILD_DIR SECONDS [TARGET...]
#        (`make fuzz-long FUZZ_S=600`; default: every BUILD_DIR/fuzz/fuzz_*)
# Environment: FUZZ_NICE  nice level of the fuzzers (default 19)
#              FUZZ_ARGS  more libFuzzer flags (e.g. -jobs=2)
cd "$(dirname "$0")/.." || exit 1
B=${1:?usage: fuzz-long.sh BUILD_DIR SECONDS [TARGET...]}
S=${2:?usage: fuzz-long.sh BUILD_DIR SECONDS [TARGET...]}
shift 2
case $S in *[!0-9]*|'') echo "fuzz-long: SECONDS must be a number" >&2; exit 2;; esac
NICE=${FUZZ_NICE:-19}
if [ $# -eq 0 ]; then
	set -- "$B"/fuzz/fuzz_*
fi
table=$B/fuzz/long/table.txt
mkdir -p "$B/fuzz/long" || exit 1
status=0
rows=""
start=$(date +%s)
for f in "$@"; do
	[ -x "$f" ] || { echo "fuzz-long: $f: not built" >&2; status=1; continue; }
	n=$(basename "$f")
	scratch=$B/fuzz/long/$n
	art=$B/fuzz/long/artifacts/$n/
	log=$B/fuzz/long/$n.log
	mkdir -p "$scratch" "$art" "fuzz/corpus/$n" || exit 1
	before=$(ls "$art" | wc -l)
	echo "== $n: ${S}s (log $log)"
	t0=$(date +%s)
	# shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
	nice -n "$NICE" "$f" -max_total_time="$S" -print_final_stats=1 \
	    -timeout=30 -artifact_prefix="$art" $FUZZ_ARGS \
	    "$scratch" "fuzz/corpus/$n" >"$log" 2>&1
	rc=$?
	secs=$(( $(date +%s) - t0 ))
	execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
	newu=$(sed -n 's/^stat::new_units_added: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
	[ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' "$log" | tail -n 1)
	[ -n "$execs" ] || execs=0
	[ -n "$newu" ] || newu=-
	size=$(ls "$scratch" | wc -l)
	found=""
	for a in "$art"crash-* "$art"leak-* "$art"timeout-* "$art"oom-*; do
		[ -f "$a" ] || continue
		found="$found $(basename "$a")"
		cp -p "$a" "fuzz/corpus/$n/" || status=1
	done
	after=$(ls "$art" | wc -l)
	if [ "$rc" -ne 0 ] || [ "$after" -gt "$before" ]; then
		verdict="FOUND:$found (rc $rc; copied to fuzz/corpus/$n/)"
		status=1
		grep -m 3 -E '^==[0-9]+==ERROR|^SUMMARY|runtime error' "$log" | sed 's/^/    /'
	else
		verdict=ok
	fi
	rate=$(( execs / (secs > 0 ? secs : 1) ))
	rows="$rows$(printf '%-18s %6ss %12s %9s/s %6s %7s  %s' "$n" "$secs" \
	    "$execs" "$rate" "$newu" "$size" "$verdict")
"
done
{
	echo "fuzz-long: ${S}s per target, $(( $(date +%s) - start ))s in all, $(date -u +%Y-%m-%dT%H:%MZ)"
	printf '%-18s %7s %12s %11s %6s %7s  %s\n' target time executions rate new corpus result
	printf '%s' "$rows"
} | tee "$table"
exit $status
