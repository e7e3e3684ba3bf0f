#!/usr/bin/env bash
# fuzz-coverage.sh - how much of each parser its fuzz target's corpus
# reaches: every target is rebuilt with clang's source-based coverage
# (no sanitizers), run once over its corpus folders (-runs=0: no new
# inputs), and llvm-cov reports line, region and branch coverage of the
# source files that parser lives in.  `make fuzz-coverage` runs it over
# the checked-in seeds plus whatever `make fuzz` found (build/fuzz/corpus);
# FUZZ_CORPUS=DIR adds DIR/<target> (e.g. a longer run's corpus).
# Usage: tools/fuzz-coverage.sh BUILD_DIR CFLAGS... -- LDLIBS...
set -euo pipefail

B=$1; shift
CFLAGS=(); while [ $# -gt 0 ] && [ "$1" != "--" ]; do CFLAGS+=("$1"); shift; done
[ $# -gt 0 ] && shift
LDLIBS=("$@")
OUT=$B/fuzzcov
mkdir -p "$OUT/obj"

# target -> the files its parser lives in
declare -A SRC=(
	[fuzz_auth]="src/smtp/smtp_auth.c src/auth/passwd.c"
	[fuzz_client_reply]="src/deliver/client_proto.c"
	[fuzz_conf]="src/conf/conf.c src/conf/conf_keys.c"
	[fuzz_ctl_line]="src/ctl/ctl.c"
	[fuzz_dir_file]="src/dir/dir_file.c"
	[fuzz_dns_msg]="src/dns/dns_msg.c"
	[fuzz_dsn]="src/deliver/dsn.c"
	[fuzz_log_json]="src/obs/log_json.c src/obs/log_syslog.c"
	[fuzz_queue_rec]="src/queue/queue_rec.c src/queue/queue_file.c"
	[fuzz_report]="src/obs/report.c"
	[fuzz_smtp_data]="src/smtp/smtp_data.c"
	[fuzz_smtp_parse]="src/smtp/smtp_parse.c"
	[fuzz_spf]="src/sender/spf.c src/sender/spf_macro.c"
)
COV=(-fprofile-instr-generate -fcoverage-mapping)

objs=()
for c in $(ls src/*/*.c); do
	o=$OUT/obj/$(echo "$c" | tr / _).o
	if [ ! -f "$o" ] || [ "$c" -nt "$o" ]; then
		clang "${CFLAGS[@]}" "${COV[@]}" -fsanitize=fuzzer-no-link \
		    -c -o "$o" "$c"
	fi
	objs+=("$o")
done

printf '%-18s %-28s %8s %8s %8s %8s\n' target file inputs lines regions branches
for f in fuzz/fuzz_*.c; do
	t=$(basename "$f" .c)
	clang "${CFLAGS[@]}" "${COV[@]}" -fsanitize=fuzzer -o "$OUT/$t" "$f" \
	    "${objs[@]}" "${LDLIBS[@]}"
	dirs=()
	for d in "fuzz/corpus/$t" "$B/fuzz/corpus/$t" \
	    ${FUZZ_CORPUS:+"$FUZZ_CORPUS/$t"}; do
		[ -d "$d" ] && dirs+=("$d")
	done
	n=$(find "${dirs[@]}" -type f | wc -l)
	rm -f "$OUT/$t.profraw"
	LLVM_PROFILE_FILE=$OUT/$t.profraw "$OUT/$t" -runs=0 "${dirs[@]}" \
	    >"$OUT/$t.log" 2>&1 || { echo "$t: run failed, see $OUT/$t.log"; exit 1; }
	llvm-profdata merge -sparse -o "$OUT/$t.profdata" "$OUT/$t.profraw"
	for s in ${SRC[$t]}; do
		# columns of `llvm-cov report`: regions, missed, cover%, functions,
		# missed, executed%, lines, missed, cover%, branches, missed, cover%
		llvm-cov report "$OUT/$t" -instr-profile="$OUT/$t.profdata" "$s" |
		    awk -v t="$t" -v s="$s" -v n="$n" '
		    substr($1, length($1) - length(s) + 1) == s {
			printf "%-18s %-28s %8d %8s %8s %8s\n", t, s, n, $10, $4, $13 }'
	done
done
