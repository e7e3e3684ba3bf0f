/*
 * test_backscatter.c - src/policy/backscatter.c by script: every rule,
 * their order (the first matching rule names the reason), the per-sender
 * and per-domain hourly rates (lower-cased keys, the window sliding),
 * that only NDR_SEND counts against the rates, and the proof rule
 * (ndr_require_auth: yes, shadow, no; scripts without REQ or SHADOW run
 * with "no", so they test the rules around it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "policy/backscatter.h"

#define HOUR	3600000ULL

/* Query flags. */
#define OURS	0x1
#define TRUSTED	0x2
#define DSN	0x4
#define SPF	0x8	/* NDR_PROOF_SPF */
#define REQ	0x10	/* NDR_REQUIRE_YES */
#define SHADOW	0x20	/* NDR_REQUIRE_SHADOW */
#define BATV	0x40	/* NDR_PROOF_BATV */

struct step {
	const char		*sender;	/* NULL ends the script */
	unsigned		 flags;
	uint64_t		 now;
	enum ndr_verdict	 want;
	const char		*reason;
};

struct script {
	const char	*name;
	unsigned	 per_sender;
	unsigned	 per_domain;
	struct step	 steps[12];
};

#define SEND(s, f, t)		{ s, f, t, NDR_SEND, "ok" }
#define DENY(s, f, t, r)	{ s, f, t, NDR_SUPPRESS, r }

static const struct script scripts[] = {
	{ "null sender first", 10, 10, {
		DENY("", 0, 0, "null_sender"),
		DENY("", DSN | OURS, 0, "null_sender"),
		SEND("a@x.test", 0, 0), { NULL, 0, 0, 0, NULL } } },
	{ "dsn loop before forged sender", 10, 10, {
		DENY("a@x.test", DSN, 0, "dsn_loop"),
		DENY("a@ours.test", DSN | OURS, 0, "dsn_loop"),
		DENY("a@ours.test", DSN | OURS | TRUSTED, 0, "dsn_loop"),
		{ NULL, 0, 0, 0, NULL } } },
	{ "forged local sender", 10, 10, {
		DENY("boss@ours.test", OURS, 0, "forged_local_sender"),
		SEND("boss@ours.test", OURS | TRUSTED, 0),
		SEND("boss@x.test", TRUSTED, 0), { NULL, 0, 0, 0, NULL } } },
	/* our own valid BATV tag: our user's mail coming back, a proof */
	{ "batv tag vouches for a local sender", 10, 10, {
		SEND("prvs=1234abcdef=boss@ours.test", OURS | BATV | REQ, 0),
		DENY("boss@ours.test", OURS | SPF | REQ, 0,
		    "forged_local_sender"),
		SEND("prvs=1234abcdef=a@x.test", BATV | REQ, 0),
		DENY("a@x.test", REQ, 0, "unauthenticated_sender"),
		{ NULL, 0, 0, 0, NULL } } },
	{ "per-sender rate, any case", 2, 100, {
		SEND("a@x.test", 0, 0), SEND("A@X.TEST", 0, 10),
		DENY("a@x.Test", 0, 20, "rate_sender"),
		SEND("b@x.test", 0, 30), { NULL, 0, 0, 0, NULL } } },
	{ "per-domain rate", 100, 2, {
		SEND("a@x.test", 0, 0), SEND("b@X.test", 0, 0),
		DENY("c@x.test", 0, 0, "rate_domain"),
		SEND("c@y.test", 0, 0),
		DENY("d@X.TEST", 0, 0, "rate_domain"),
		{ NULL, 0, 0, 0, NULL } } },
	{ "sender rate checked before domain rate", 1, 1, {
		SEND("a@x.test", 0, 0),
		DENY("a@x.test", 0, 0, "rate_sender"),
		DENY("b@x.test", 0, 0, "rate_domain"),
		{ NULL, 0, 0, 0, NULL } } },
	{ "suppressed NDRs count nothing", 1, 1, {
		DENY("a@x.test", DSN, 0, "dsn_loop"),
		DENY("a@x.test", OURS, 0, "forged_local_sender"),
		SEND("a@x.test", 0, 0),
		DENY("b@x.test", 0, 0, "rate_domain"),
		DENY("b@x.test", 0, 0, "rate_domain"),
		/* a's one NDR has left the window; b was never counted */
		SEND("b@x.test", 0, 2 * HOUR),
		DENY("a@x.test", 0, 2 * HOUR, "rate_domain"),
		{ NULL, 0, 0, 0, NULL } } },
	{ "the hour slides", 2, 100, {
		SEND("a@x.test", 0, 0), SEND("a@x.test", 0, HOUR / 2),
		DENY("a@x.test", 0, HOUR - 1, "rate_sender"),
		/* previous hour weighted 1/2: 1 + 0 < 2 */
		SEND("a@x.test", 0, HOUR + HOUR / 2),
		DENY("a@x.test", 0, HOUR + HOUR / 2, "rate_sender"),
		SEND("a@x.test", 0, 3 * HOUR), { NULL, 0, 0, 0, NULL } } },
	{ "zero allows none", 0, 10, {
		DENY("a@x.test", 0, 0, "rate_sender"),
		DENY("a@x.test", TRUSTED, 0, "rate_sender"),
		{ NULL, 0, 0, 0, NULL } } },
	{ "a proof is required", 10, 10, {
		DENY("a@x.test", REQ, 0, "unauthenticated_sender"),
		SEND("a@x.test", REQ | SPF, 0),
		SEND("a@x.test", REQ | TRUSTED, 0),
		/* TRUSTED is a proof; a local sender still needs it */
		DENY("boss@ours.test", REQ | OURS | SPF, 0,
		    "forged_local_sender"),
		SEND("boss@ours.test", REQ | OURS | TRUSTED, 0),
		/* the earlier rules name the reason first */
		DENY("", REQ, 0, "null_sender"),
		DENY("a@x.test", REQ | DSN | SPF, 0, "dsn_loop"),
		{ NULL, 0, 0, 0, NULL } } },
	{ "an unproven report counts nothing", 1, 1, {
		DENY("a@x.test", REQ, 0, "unauthenticated_sender"),
		DENY("a@x.test", REQ, 0, "unauthenticated_sender"),
		SEND("a@x.test", REQ | SPF, 0),
		/* rates stay on top of proofs */
		DENY("a@x.test", REQ | SPF, 0, "rate_sender"),
		DENY("b@x.test", REQ | TRUSTED, 0, "rate_domain"),
		{ NULL, 0, 0, 0, NULL } } },
	{ "shadow sends, then the rates", 1, 10, {
		SEND("a@x.test", SHADOW, 0),
		SEND("b@x.test", SHADOW | SPF, 0),
		DENY("a@x.test", SHADOW, 0, "rate_sender"),
		{ NULL, 0, 0, 0, NULL } } },
	{ "no @: one shared empty domain", 10, 1, {
		SEND("postmaster", 0, 0),
		DENY("abuse", 0, 0, "rate_domain"),
		SEND("x@y.test", 0, 0), { NULL, 0, 0, 0, NULL } } },
};

static void
test_scripts(void **state)
{
	const struct script	*sc;
	const struct step	*st;
	struct backscatter	*b;
	struct ndr_query	 q;
	const char		*reason, *shadow, *want_shadow;
	enum ndr_verdict	 v;
	size_t			 i, j;

	(void)state;
	for (i = 0; i < sizeof(scripts) / sizeof(scripts[0]); i++) {
		sc = &scripts[i];
		assert_non_null(b = backscatter_new(sc->per_sender,
		    sc->per_domain));
		for (j = 0; sc->steps[j].sender != NULL; j++) {
			st = &sc->steps[j];
			q.sender = st->sender;
			q.sender_is_ours = (st->flags & OURS) != 0;
			q.client_trusted = (st->flags & TRUSTED) != 0;
			q.about_dsn = (st->flags & DSN) != 0;
			q.proofs = ((st->flags & SPF) ? NDR_PROOF_SPF : 0) |
			    ((st->flags & BATV) ? NDR_PROOF_BATV : 0);
			q.require = (st->flags & REQ) ? NDR_REQUIRE_YES :
			    (st->flags & SHADOW) ? NDR_REQUIRE_SHADOW :
			    NDR_REQUIRE_NO;
			reason = NULL;
			shadow = "unset";
			v = backscatter_check(b, &q, st->now, &reason, &shadow);
			if (v != st->want || reason == NULL ||
			    strcmp(reason, st->reason) != 0)
				fail_msg("%s: step %zu (%s): got %d %s, want "
				    "%d %s", sc->name, j, st->sender, (int)v,
				    reason ? reason : "(null)", (int)st->want,
				    st->reason);
			/* shadow: said exactly when the proof rule was
			 * reached with no proof */
			want_shadow = (st->flags & SHADOW) && !(st->flags &
			    (SPF | TRUSTED)) && st->sender[0] != '\0' &&
			    !(st->flags & DSN) ? "unauthenticated_sender" :
			    NULL;
			if ((shadow == NULL) != (want_shadow == NULL) ||
			    (shadow != NULL && strcmp(shadow, want_shadow)))
				fail_msg("%s: step %zu: shadow %s, want %s",
				    sc->name, j, shadow ? shadow : "(null)",
				    want_shadow ? want_shadow : "(null)");
		}
		backscatter_free(b);
	}
}

static void
test_odd_senders(void **state)
{
	struct backscatter	*b;
	struct ndr_query	 q = { .sender = NULL,
				    .proofs = NDR_PROOF_SPF };
	char			 longs[BACKSCATTER_SENDER_MAX + 2];
	const char		*reason, *shadow;

	(void)state;
	assert_non_null(b = backscatter_new(5, 5));
	assert_int_equal(backscatter_check(b, &q, 0, &reason,
	    &shadow), NDR_SUPPRESS);
	assert_string_equal(reason, "null_sender");
	memset(longs, 'a', sizeof(longs) - 1);
	longs[sizeof(longs) - 1] = '\0';
	longs[10] = '@';
	q.sender = longs;
	assert_int_equal(backscatter_check(b, &q, 0, &reason,
	    &shadow), NDR_SUPPRESS);
	assert_string_equal(reason, "bad_sender");
	longs[sizeof(longs) - 2] = '\0';	/* exactly the maximum */
	assert_int_equal(backscatter_check(b, &q, 0, &reason,
	    &shadow), NDR_SEND);
	assert_string_equal(reason, "ok");
	backscatter_free(b);
	backscatter_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scripts),
		cmocka_unit_test(test_odd_senders),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
