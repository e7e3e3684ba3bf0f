#!/bin/sh
# run-all.sh - every test layer that `make test` runs, in order: unit tests
# (cmocka, under ASan/UBSan), end-to-end tests against build/mxgate and
# again against the ASan/UBSan build, and each fuzz target over its seed
# corpus plus a short bounded run.  Ends with one "N passed, N failed"
# line counting test cases (cmocka tests, e2e cases, fuzz targets).
cd "$(dirname "$0")/.." || exit 1
pass=0
fail=0
failed=""
log=build/run-all.log
fails=build/run-all.failures
: >"$log"
: >"$fails"
count() {	# count NAME STATUS OUTPUT-FILE: add its cases to the totals
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p; s/^e2e: \([0-9]*\) passed.*/\1/p' "$3" | tail -n 1)
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p; s/^e2e: [0-9]* passed, \([0-9]*\) failed.*/\1/p' "$3" | tail -n 1)
	[ -n "$p" ] || { [ "$2" = 0 ] && p=1 || p=0; }
	[ -n "$f" ] || { [ "$2" = 0 ] && f=0 || f=1; }
	[ "$2" != 0 ] && [ "$f" = 0 ] && f=1	# a crash counts as a failure
	pass=$((pass + p))
	fail=$((fail + f))
	[ "$2" = 0 ] || failed="$failed $1"
}
step() {	# step NAME COMMAND...
	name=$1
	shift
	echo "=== $name"
	out=build/step.out
	"$@" >"$out" 2>&1
	rc=$?
	cat "$out" >>"$log"
	tail -n 40 "$out" | grep -E '^(FAIL|\[  (PASSED|FAILED)|e2e:|===|\[  ERROR)' | tail -n 20
	[ "$rc" = 0 ] || tail -n 60 "$out"
	# every failed case, with its reason, for the summary at the end
	grep -E '^(FAIL |\[  FAILED  \] [^0-9])' "$out" | cut -c1-400 |
		sed "s|^|$name: |" >>"$fails"
	count "$name" "$rc" "$out"
}
for t in build/tests/test_*; do
	[ -x "$t" ] && step "unit:$(basename "$t")" "$t"
done
step "e2e" python3 tests/e2e/run.py --binary build/mxgate
step "e2e-asan" env ASAN_OPTIONS=detect_leaks=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	python3 tests/e2e/run.py --binary build/asan/mxgate
FUZZ_SMOKE_SECONDS=${FUZZ_SMOKE_SECONDS:-5}
for f in build/fuzz/fuzz_*; do
	[ -x "$f" ] || continue
	n=$(basename "$f")
	mkdir -p "build/fuzz/corpus/$n"
	step "fuzz:$n" "$f" -max_total_time="$FUZZ_SMOKE_SECONDS" \
		-artifact_prefix=build/fuzz/ "build/fuzz/corpus/$n" \
		"fuzz/corpus/$n"
done
echo
if [ -s "$fails" ]; then
	echo "failed cases:"
	sed 's/^/  /' "$fails"
fi
[ -n "$failed" ] && echo "failed steps:$failed (full output: $log)"
echo "tests: $pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ -z "$failed" ]
