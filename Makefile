# mxgate - SMTP edge gateway.  `make` builds build/mxgate; `make run` and
# `make test` first install what is missing (Debian packages only).

CC	?= cc
PKGS	 = libevent libevent_pthreads libevent_openssl openssl zlib libutf8proc \
	   hiredis ldap
CFLAGS	?= -O2 -g
CFLAGS	+= -std=c17 -D_GNU_SOURCE -DMXGATE_TLS -Wall -Wextra -Werror -Wshadow \
	   -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-result \
	   -fno-strict-aliasing $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS	+= $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lcrypt -lm

VERSION	 = 0.1.0
B	 = build
SRCS	 = $(sort $(wildcard src/*/*.c))
LIBSRCS	 = $(SRCS)
OBJS	 = $(LIBSRCS:src/%.c=$(B)/obj/%.o)
AOBJS	 = $(LIBSRCS:src/%.c=$(B)/asan/obj/%.o)
UNITS	 = $(sort $(wildcard tests/unit/test_*.c))
UNITBINS = $(UNITS:tests/unit/%.c=$(B)/tests/%)
FUZZS	 = $(sort $(wildcard fuzz/fuzz_*.c))
FUZZBINS = $(FUZZS:fuzz/%.c=$(B)/fuzz/%)
ASANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer \
	    -fno-sanitize-recover=undefined

# Debian packages: to build and run; and, in addition, to test.
DEPS_BUILD = gcc make pkg-config libevent-dev libssl-dev libcrypt-dev \
	     zlib1g-dev libutf8proc-dev libhiredis-dev libldap-dev
DEPS_TEST  = $(DEPS_BUILD) libcmocka-dev swaks libnet-ssleay-perl python3 clang \
	     libclang-rt-14-dev postfix dovecot-lmtpd dnsmasq openssl stress-ng \
	     groff man-db systemd debhelper build-essential adduser fail2ban \
	     prometheus chromium unbound ldnsutils \
	     python3-yaml python3-dnslib \
	     rspamd opendkim opendkim-tools python3-milter python3-dkim \
	     python3-nacl publicsuffix redis-server redis-sentinel \
	     slapd ldap-utils

.PHONY: all run test deps-build deps-test unit e2e e2e-asan fuzz man install deb \
	fuzz-smoke fuzz-coverage fuzz-long crash-test lint clean asan bench-deliver bench-harvest valgrind bench

all: $(B)/mxgate $(B)/man/mxgate.8 $(B)/man/mxgate.conf.5

$(B)/mxgate: $(OBJS) $(B)/obj/main.o
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/obj/%.o: src/%.c $(wildcard src/*/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -DMXGATE_VERSION='"$(VERSION)"' -c -o $@ $<

asan: $(B)/asan/mxgate

$(B)/asan/mxgate: $(AOBJS) $(B)/asan/obj/main.o
	$(CC) $(CFLAGS) $(ASANFLAGS) -o $@ $^ $(LDLIBS)

$(B)/asan/obj/%.o: src/%.c $(wildcard src/*/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ASANFLAGS) -DMXGATE_VERSION='"$(VERSION)"' -c -o $@ $<

# Unit tests (cmocka) link every module but main, with the sanitizers on.
$(B)/tests/%: tests/unit/%.c $(AOBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ASANFLAGS) -Isrc -o $@ $< $(AOBJS) $(LDLIBS) -lcmocka

# Fuzz targets (libFuzzer, clang) link every module but main, built once
# with coverage instrumentation.
FUZZCC	 = clang
FUZZFLAGS = -std=c17 -D_GNU_SOURCE -DMXGATE_TLS -g -O1 -Isrc \
	    $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
FUZZSAN	 = address,undefined
FOBJS	 = $(LIBSRCS:src/%.c=$(B)/fuzz/obj/%.o)
$(B)/fuzz/obj/%.o: src/%.c $(wildcard src/*/*.h)
	@mkdir -p $(dir $@)
	$(FUZZCC) $(FUZZFLAGS) -fsanitize=fuzzer-no-link,$(FUZZSAN) -c -o $@ $<
$(B)/fuzz/%: fuzz/%.c $(FOBJS)
	@mkdir -p $(dir $@)
	$(FUZZCC) $(FUZZFLAGS) -fsanitize=fuzzer,$(FUZZSAN) -o $@ $< $(FOBJS) \
	    $(LDLIBS)

# Coverage each fuzz target's corpus reaches in its parser's files
# (tools/fuzz-coverage.sh; FUZZ_CORPUS=DIR adds DIR/<target>).
fuzz-coverage: deps-test
	tools/fuzz-coverage.sh $(B) $(FUZZFLAGS) -- $(LDLIBS)

# Man pages.  mxgate.conf(5)'s key list is printed by the binary from the
# config table (`mxgate config --man`) into the hand-written template, so
# the page names every key the binary knows, with its default and bounds.
man: $(B)/man/mxgate.8 $(B)/man/mxgate.conf.5

$(B)/man/mxgate.8: man/mxgate.8 Makefile
	@mkdir -p $(dir $@)
	sed 's/@VERSION@/$(VERSION)/g' man/mxgate.8 >$@.$$$$ && mv $@.$$$$ $@

$(B)/man/mxgate.conf.5: man/mxgate.conf.5.in $(B)/mxgate Makefile
	@mkdir -p $(dir $@)
	t=$@.$$$$; $(B)/mxgate config --man >$$t.keys && \
	awk -v keys=$$t.keys -v ver=$(VERSION) \
	    '$$0 == ".\\\" @KEYS@" { while ((getline l <keys) > 0) print l; next } \
	     { gsub(/@VERSION@/, ver); print }' man/mxgate.conf.5.in >$$t && \
	grep -q '^\.TP$$' $$t && rm -f $$t.keys && mv $$t $@ || \
	{ rm -f $$t $$t.keys; exit 1; }

# make install PREFIX=/usr DESTDIR=/tmp/root: where Debian expects each
# file.  A config already in SYSCONFDIR is never overwritten.
PREFIX	?= /usr/local
SYSCONFDIR ?= /etc
SPOOLDIR ?= /var/spool/mxgate
SYSTEMDUNITDIR ?= /lib/systemd/system
DOCDIR	?= $(PREFIX)/share/doc/mxgate
MANDIR	?= $(PREFIX)/share/man
EXAMPLES = etc/daemon/mxgate.conf etc/daemon/users \
	   etc/fail2ban/filter.d/mxgate.conf etc/fail2ban/jail.d/mxgate.conf
install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(MANDIR)/man8 \
	    $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(SYSCONFDIR)/mxgate \
	    $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(DOCDIR)/examples
	install -d -m 0700 $(DESTDIR)$(SPOOLDIR)
	install -m 0755 $(B)/mxgate $(DESTDIR)$(PREFIX)/sbin/mxgate
	install -m 0644 $(B)/man/mxgate.8 $(DESTDIR)$(MANDIR)/man8/mxgate.8
	install -m 0644 $(B)/man/mxgate.conf.5 \
	    $(DESTDIR)$(MANDIR)/man5/mxgate.conf.5
	for f in mxgate.conf users; do \
	  [ -e $(DESTDIR)$(SYSCONFDIR)/mxgate/$$f ] || \
	  install -m 0644 etc/daemon/$$f $(DESTDIR)$(SYSCONFDIR)/mxgate/$$f; \
	done
	sed -e 's|/usr/sbin/mxgate|$(PREFIX)/sbin/mxgate|g' \
	    -e 's|/etc/mxgate/|$(SYSCONFDIR)/mxgate/|g' \
	    -e 's|/var/spool/mxgate|$(SPOOLDIR)|g' etc/systemd/mxgate.service \
	    >$(DESTDIR)$(SYSTEMDUNITDIR)/mxgate.service
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/mxgate.service
	install -m 0644 etc/daemon/mxgate.conf \
	    $(DESTDIR)$(DOCDIR)/examples/mxgate.conf
	install -m 0644 etc/fail2ban/filter.d/mxgate.conf \
	    $(DESTDIR)$(DOCDIR)/examples/fail2ban-filter-mxgate.conf
	install -m 0644 etc/fail2ban/jail.d/mxgate.conf \
	    $(DESTDIR)$(DOCDIR)/examples/fail2ban-jail-mxgate.conf

# The Debian package (debian/), built from a copy of the tree in a temp
# folder since dpkg-buildpackage writes to the parent folder; the .deb
# lands in $(B)/deb/.  DEB_FLAGS passes more (e.g. -d).
DEB_FLAGS ?=
DEB_OUT	?= $(B)/deb
deb:
	tools/make-deb.sh $(DEB_OUT) $(DEB_FLAGS)

run: deps-build
	@$(MAKE) --no-print-directory all
	@mkdir -p var/spool var/mail
	exec $(B)/mxgate serve -c etc/mxgate.conf

test: deps-test
	$(MAKE) lint
	$(MAKE) all asan $(UNITBINS) $(FUZZBINS)
	tests/run-all.sh

unit: $(UNITBINS)
	@for t in $(UNITBINS); do $$t || exit 1; done

e2e: $(B)/mxgate
	python3 tests/e2e/run.py --binary $(B)/mxgate

e2e-asan: $(B)/asan/mxgate
	python3 tests/e2e/run.py --binary $(B)/asan/mxgate

# Each target for FUZZ_SECONDS (default 60) over its corpus.
FUZZ_SECONDS ?= 60
fuzz: deps-test $(FUZZBINS)
	@for f in $(FUZZBINS); do n=$$(basename $$f); \
	  mkdir -p $(B)/fuzz/corpus/$$n; \
	  echo "== $$n"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=$(B)/fuzz/ \
	    $(B)/fuzz/corpus/$$n fuzz/corpus/$$n 2>&1 | tail -n 12 || exit 1; \
	done

# The crash test with CRASH_KILLS SIGKILLs (default 100; `make test` runs
# the same test with 30) at random points of receiving, journal sync and
# rotation, delivery to each next-hop kind and NDR creation; its table is
# printed (tests/e2e/test_crash.py).
CRASH_KILLS ?= 100
crash-test: deps-test
	@$(MAKE) --no-print-directory all
	CRASH_KILLS=$(CRASH_KILLS) python3 tests/e2e/run.py --binary $(B)/mxgate \
	    -k test_crash. -v

# Each target for FUZZ_S seconds (default 600) over its seeds and a
# scratch corpus, niced; a table of executions and crashes at the end;
# crashers are kept in fuzz/corpus/NAME/ (tools/fuzz-long.sh).
FUZZ_S ?= 600
fuzz-long: deps-test $(FUZZBINS)
	tools/fuzz-long.sh $(B) $(FUZZ_S)

# Delivery throughput from the spool to smtp-sink and Dovecot LMTP, e.g.
# make bench-deliver BENCH_ARGS="--hop lmtp --messages 1000".
BENCH_ARGS ?=
bench-deliver: deps-test
	@$(MAKE) --no-print-directory all
	python3 bench/deliver.py $(BENCH_ARGS)

# The harvest benchmark (issue 4): a harvester from 1 and from 200 source
# addresses, each run bounded by BENCH_SECONDS; the KS latency test;
# BENCH_IDLE tarpitted connections held (0: skip).  BENCH_POSTFIX=1 adds
# the Postfix peer of ../shared/bench (set up once, as root, by its
# postfix/setup.sh).
BENCH_SECONDS ?= 120
BENCH_IDLE    ?= 10000
bench-harvest: deps-test
	@$(MAKE) --no-print-directory all
	python3 bench/harvest.py --binary $(B)/mxgate \
	    --seconds $(BENCH_SECONDS) --idle $(BENCH_IDLE)

# Valid vs unknown RCPT reply times (issue 12): TIMING_N fresh sessions
# of each kind per mode (discard, bounce, uniform, reject), one RCPT each
# from distinct sources, the KS test per mode, TIMING_RUNS runs; then
# smtp-source at c=50 with and without rcpt_reply_floor (TIMING_TP=0:
# skip).  TIMING_ARGS passes more (e.g. --floor 0).
TIMING_N    ?= 1000
TIMING_RUNS ?= 3
TIMING_TP   ?= 1
TIMING_ARGS ?=
.PHONY: bench-timing
bench-timing: deps-test
	@$(MAKE) --no-print-directory all
	python3 bench/timing.py --binary $(B)/mxgate --n $(TIMING_N) \
	    --runs $(TIMING_RUNS) $(if $(filter 1,$(TIMING_TP)),--throughput) \
	    $(TIMING_ARGS)

# The side-by-side benchmark (issue 6, bench/README.md): mxgate, the
# smtp-sink ceiling and (BENCH_POSTFIX=1) Postfix, one table; idle
# connections, 10M users, RCPT verdict latency.  BENCH_RUNS, BENCH_SCALE,
# BENCH_SKIP (e.g. idle,users10m,postfix) make a quick run.
DEPS_BENCH = $(DEPS_BUILD) postfix python3 python3-dnslib python3-dkim
$(B)/bench/rcpt_verdict: tests/bench/rcpt_verdict.c $(OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Isrc -o $@ $< $(OBJS) $(LDLIBS)
bench:
	@tools/install-deps.sh $(DEPS_BENCH)
	@$(MAKE) --no-print-directory all $(B)/bench/rcpt_verdict
	python3 bench/bench.py --binary $(B)/mxgate \
	    --verdict $(B)/bench/rcpt_verdict

# The end-to-end suite under valgrind memcheck (slow: about 6 minutes).
valgrind: deps-test
	@tools/install-deps.sh valgrind
	@$(MAKE) --no-print-directory all
	tests/valgrind.sh $(B)/mxgate

deps-build:
	@tools/install-deps.sh $(DEPS_BUILD)

deps-test:
	@tools/install-deps.sh $(DEPS_TEST)

# Banned calls (STYLE R7) and the include layering (R3).
lint:
	@! grep -nE '#include "\.\./' src/lib/*.[ch] || \
	  { echo "lint: src/lib must not include outside src/lib"; exit 1; }
	@! grep -rnE '\b(strcpy|strcat|sprintf|vsprintf|gets|strtok|atoi|strncpy)[[:space:]]*\(' \
	  src fuzz tests/unit tests/bench || { echo "lint: banned call"; exit 1; }
	@echo "lint: ok"

clean:
	rm -rf $(B)
