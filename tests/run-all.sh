#!/bin/sh
# run-all.sh - every test layer that `make test` runs, in order: unit tests
# (cmocka, under ASan/UBSan), end-to-end tests against build/mxgate and
# again against the ASan/UBSan build, and each fuzz target over its seed
# corpus plus a short bounded run.  Ends with one "N passed, N failed" line.
cd "$(dirname "$0")/.." || exit 1
pass=0
fail=0
failed=""
step() {	# step NAME COMMAND...
	name=$1
	shift
	echo "=== $name"
	if "$@"; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1))
		failed="$failed $name"
	fi
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
	step "fuzz:$n" sh -c "'$f' -max_total_time=$FUZZ_SMOKE_SECONDS -artifact_prefix=build/fuzz/ \
		'build/fuzz/corpus/$n' 'fuzz/corpus/$n' >build/fuzz/$n.log 2>&1 \
		|| { tail -n 30 build/fuzz/$n.log; exit 1; }"
done
echo
[ -n "$failed" ] && echo "failed steps:$failed"
echo "tests: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
