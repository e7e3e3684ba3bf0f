/*
 * test_milter.c - src/milter/milter_proto.c case tables: framing (split
 * at every byte, the packet bound, length 0), encoders against bytes
 * written out by hand, OPTNEG (versions, actions and steps not offered,
 * SETSYMLIST lists), every reply kind, replycode validation (classes,
 * enhanced codes, multi-line, NUL, bare CR), edit bounds; then
 * src/milter/milter_msg.c (header split, libmilter's indexes, folding,
 * envelope and body edits) and the `milters` key (conf_milter.c).
 * Frames are copied into heap blocks of their exact length, so ASan
 * catches a read one byte too far.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "milter/milter_msg.h"
#include "milter/milter_proto.h"

/* A frame of cmd and payload p (n bytes) on the heap, exact length. */
static enum parse_rc
reply_of(char cmd, const void *p, size_t n, struct milter_reply *r,
    uint8_t **keep)
{
	struct milter_frame	f;
	uint8_t			*b = malloc(n ? n : 1);

	memcpy(b, p, n);
	f.cmd = cmd;
	f.data = b;
	f.len = n;
	*keep = b;
	return milter_reply_parse(&f, r);
}

static void
test_frame(void **state)
{
	static const uint8_t	pkt[] = { 0, 0, 0, 3, 'y', 'a', 'b', 9 };
	struct milter_frame	f;
	size_t			used, i;
	uint8_t			*b;

	(void)state;
	for (i = 0; i < 7; i++) {	/* every split before the end */
		b = malloc(i ? i : 1);
		memcpy(b, pkt, i);
		assert_int_equal(milter_frame_parse(b, i, 100, &f, &used),
		    PARSE_MORE);
		free(b);
	}
	assert_int_equal(milter_frame_parse(pkt, sizeof(pkt), 100, &f, &used),
	    PARSE_OK);
	assert_int_equal(used, 7);
	assert_int_equal(f.cmd, 'y');
	assert_int_equal(f.len, 2);
	assert_memory_equal(f.data, "ab", 2);
	assert_int_equal(milter_frame_parse(pkt, sizeof(pkt), 2, &f, &used),
	    PARSE_TOOLONG);
	assert_int_equal(milter_frame_parse((const uint8_t *)"\0\0\0\0c", 5,
	    100, &f, &used), PARSE_BAD);
	assert_int_equal(milter_frame_parse((const uint8_t *)"\xff\xff\xff\xff",
	    4, MILTER_PACKET_MAX, &f, &used), PARSE_TOOLONG);
}

static void
test_encoders(void **state)
{
	struct buf		 b;
	const char		*args[] = { "<a@b>", "SIZE=10" };
	const char		*names[] = { "j", "{client_addr}" };
	const char		*vals[] = { "mx", "1.2.3.4" };

	(void)state;
	buf_init(&b, 1024);
	assert_int_equal(milter_enc_optneg(&b, 6, 0x1ff, 0x1fffff), 0);
	assert_int_equal(b.len, 17);
	assert_memory_equal(b.data, "\0\0\0\x0dO\0\0\0\x06\0\0\x01\xff"
	    "\0\x1f\xff\xff", 17);
	buf_reset(&b);
	assert_int_equal(milter_enc_connect(&b, "host", '4', 25, "1.2.3.4"),
	    0);
	assert_memory_equal(b.data, "\0\0\0\x11" "Chost\0" "4\0\x19"
	    "1.2.3.4\0", 21);
	buf_reset(&b);
	assert_int_equal(milter_enc_connect(&b, "h", 'U', 0, ""), 0);
	assert_memory_equal(b.data, "\0\0\0\x04" "Ch\0U", 8);
	buf_reset(&b);
	assert_int_equal(milter_enc_strings(&b, 'M', args, 2), 0);
	assert_memory_equal(b.data, "\0\0\0\x0f" "M<a@b>\0SIZE=10\0", 19);
	buf_reset(&b);
	assert_int_equal(milter_enc_header(&b, "Subject", 7, "x", 1), 0);
	assert_memory_equal(b.data, "\0\0\0\x0b" "LSubject\0x\0", 15);
	buf_reset(&b);
	assert_int_equal(milter_enc_macros(&b, 'C', names, vals, 2), 0);
	assert_memory_equal(b.data, "\0\0\0\x1d" "DCj\0mx\0{client_addr}\0"
	    "1.2.3.4\0", 33);
	buf_reset(&b);
	assert_int_equal(milter_enc(&b, 'E', NULL, 0), 0);
	assert_memory_equal(b.data, "\0\0\0\x01" "E", 5);
	/* over the buffer's bound: nothing added */
	buf_free(&b);
	buf_init(&b, 10);
	assert_int_equal(milter_enc_strings(&b, 'M', args, 2), -1);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

static enum parse_rc
neg_of(const void *p, size_t n, struct milter_neg *neg)
{
	struct milter_frame	f;
	uint8_t			*b = malloc(n);
	enum parse_rc		rc;

	memcpy(b, p, n);
	f = (struct milter_frame){ 'O', b, n };
	rc = milter_neg_parse(&f, MILTER_A_ALL, MILTER_P_OFFER, neg);
	free(b);
	return rc;
}

static void
test_optneg(void **state)
{
	struct milter_neg	neg;
	static const char	ok[] = "\0\0\0\x06\0\0\0\x01\0\0\x10\x00";
	static const char	v7[] = "\0\0\0\x07\0\0\0\x01\0\0\0\0";
	static const char	v1[] = "\0\0\0\x01\0\0\0\x01\0\0\0\0";
	static const char	act[] = "\0\0\0\x06\0\0\x02\x00\0\0\0\0";
	static const char	step[] = "\0\0\0\x06\0\0\0\0\0\x10\0\0";
	static const char	rej[] = "\0\0\0\x06\0\0\0\0\0\0\x08\0";
	static const char	sym[] = "\0\0\0\x06\0\0\x01\x00\0\0\0\0"
				    "\0\0\0\x02{mail_addr} i\0"
				    "\0\0\0\x00j\0";
	static const char	symbad[] = "\0\0\0\x06\0\0\x01\x00\0\0\0\0"
				    "\0\0\0\x09x\0";
	static const char	symnoflag[] = "\0\0\0\x06\0\0\0\0\0\0\0\0"
				    "\0\0\0\x01x\0";

	(void)state;
	assert_int_equal(neg_of(ok, 12, &neg), PARSE_OK);
	assert_int_equal(neg.version, 6);
	assert_int_equal(neg.protocol, MILTER_P_NR_CONN);
	assert_int_equal(neg_of(ok, 11, &neg), PARSE_BAD);
	assert_int_equal(neg_of(v7, 12, &neg), PARSE_BAD);
	assert_int_equal(neg_of(v1, 12, &neg), PARSE_BAD);
	assert_int_equal(neg_of(act, 12, &neg), PARSE_BAD);
	assert_int_equal(neg_of(step, 12, &neg), PARSE_BAD);
	assert_int_equal(neg_of(rej, 12, &neg), PARSE_BAD);	/* RCPT_REJ */
	assert_int_equal(neg_of(sym, sizeof(sym) - 1, &neg), PARSE_OK);
	assert_true(neg.macros_set[MILTER_M_MAIL]);
	assert_int_equal(neg.macros_len[MILTER_M_MAIL], 13);
	assert_true(neg.macros_set[MILTER_M_CONNECT]);
	assert_false(neg.macros_set[MILTER_M_RCPT]);
	assert_int_equal(neg_of(symbad, sizeof(symbad) - 1, &neg), PARSE_BAD);
	assert_int_equal(neg_of(symnoflag, sizeof(symnoflag) - 1, &neg),
	    PARSE_BAD);
}

struct rc_case {
	const char	*text;
	enum parse_rc	 rc;
	unsigned	 code;
};

static const struct rc_case code_cases[] = {
	{ "550 5.7.1 Rejected", PARSE_OK, 550 },
	{ "451 4.7.1 Later", PARSE_OK, 451 },
	{ "550 no enhanced code", PARSE_OK, 550 },
	{ "550", PARSE_OK, 550 },
	{ "550-5.7.1 one\r\n550 5.7.1 two", PARSE_OK, 550 },
	{ "550-a\r\n550-b\r\n550 c", PARSE_OK, 550 },
	{ "250 2.0.0 Ok", PARSE_BAD, 0 },		/* not 4xx/5xx */
	{ "354 go", PARSE_BAD, 0 },
	{ "650 6.0.0 x", PARSE_BAD, 0 },
	{ "550 4.7.1 class differs", PARSE_BAD, 0 },
	{ "451 5.7.1 class differs", PARSE_BAD, 0 },
	{ "550 5.7 short", PARSE_BAD, 0 },
	{ "550 5.7.1x", PARSE_BAD, 0 },
	{ "550-one", PARSE_BAD, 0 },			/* last has '-' */
	{ "550 one\r\n550 two", PARSE_BAD, 0 },		/* first has ' ' */
	{ "550-one\r\n451 two", PARSE_BAD, 0 },		/* codes differ */
	{ "550-one\r\n", PARSE_BAD, 0 },		/* empty last line */
	{ "550 bare\rcr", PARSE_BAD, 0 },
	{ "550 bare\nlf", PARSE_BAD, 0 },
	{ "55 short", PARSE_BAD, 0 },
	{ "5x0 x", PARSE_BAD, 0 },
	{ "550x", PARSE_BAD, 0 },
	{ "", PARSE_BAD, 0 },
	{ "550 ctl\x01", PARSE_BAD, 0 },
};

static void
test_replycode(void **state)
{
	struct milter_reply	r;
	uint8_t			*keep;
	size_t			i;
	char			big[MILTER_REPLY_MAX + 8];
	unsigned		code;

	(void)state;
	for (i = 0; i < sizeof(code_cases) / sizeof(code_cases[0]); i++) {
		const struct rc_case	*c = &code_cases[i];
		size_t			 n = strlen(c->text) + 1;

		assert_int_equal(reply_of('y', c->text, n, &r, &keep), c->rc);
		if (c->rc == PARSE_OK) {
			assert_int_equal(r.kind, MILTER_R_REPLYCODE);
			assert_int_equal(r.code, c->code);
			assert_int_equal(r.tlen, n - 1);
		}
		free(keep);
	}
	/* a NUL inside, no NUL at the end, bytes after it */
	assert_int_equal(reply_of('y', "550 a\0b\0", 8, &r, &keep), PARSE_BAD);
	free(keep);
	assert_int_equal(reply_of('y', "550 a", 5, &r, &keep), PARSE_BAD);
	free(keep);
	assert_int_equal(milter_reply_code_check("550 a\0b", 7, &code),
	    PARSE_BAD);
	memset(big, 'a', sizeof(big));
	memcpy(big, "550 ", 4);
	assert_int_equal(milter_reply_code_check(big, sizeof(big), &code),
	    PARSE_TOOLONG);
}

struct kind_case {
	char			 cmd;
	const char		*data;
	size_t			 len;
	enum parse_rc		 rc;
	enum milter_reply_kind	 kind;
};

#define K(c, d, rc, k)	{ c, d, sizeof(d) - 1, rc, k }

static const struct kind_case kind_cases[] = {
	K('c', "", PARSE_OK, MILTER_R_CONTINUE),
	K('a', "", PARSE_OK, MILTER_R_ACCEPT),
	K('r', "", PARSE_OK, MILTER_R_REJECT),
	K('t', "", PARSE_OK, MILTER_R_TEMPFAIL),
	K('d', "", PARSE_OK, MILTER_R_DISCARD),
	K('p', "", PARSE_OK, MILTER_R_PROGRESS),
	K('s', "", PARSE_OK, MILTER_R_SKIP),
	K('c', "x", PARSE_BAD, MILTER_R_CONTINUE),	/* payload on 'c' */
	K('q', "why\0", PARSE_OK, MILTER_R_QUARANTINE),
	K('q', "why", PARSE_BAD, MILTER_R_QUARANTINE),
	K('h', "X-A\0v\0", PARSE_OK, MILTER_R_ADDHEADER),
	K('h', "X-A\0v", PARSE_BAD, MILTER_R_ADDHEADER),
	K('h', "\0v\0", PARSE_BAD, MILTER_R_ADDHEADER),	/* empty name */
	K('h', "X:A\0v\0", PARSE_BAD, MILTER_R_ADDHEADER),	/* ':' */
	K('h', "X A\0v\0", PARSE_BAD, MILTER_R_ADDHEADER),	/* blank */
	K('h', "X-A\0a\rb\0", PARSE_BAD, MILTER_R_ADDHEADER),	/* bare CR */
	K('h', "X-A\0a\n\tb\0", PARSE_OK, MILTER_R_ADDHEADER),	/* fold */
	K('h', "X-A\0v\0extra", PARSE_BAD, MILTER_R_ADDHEADER),
	K('i', "\0\0\0\x01X-A\0v\0", PARSE_OK, MILTER_R_INSHEADER),
	K('i', "\0\0\0", PARSE_BAD, MILTER_R_INSHEADER),
	K('m', "\0\0\0\x02Subject\0\0", PARSE_OK, MILTER_R_CHGHEADER),
	K('+', "<a@b>\0", PARSE_OK, MILTER_R_ADDRCPT),
	K('+', "\0", PARSE_BAD, MILTER_R_ADDRCPT),
	K('+', "<a b>\0", PARSE_BAD, MILTER_R_ADDRCPT),
	K('2', "<a@b>\0NOTIFY=NEVER\0", PARSE_OK, MILTER_R_ADDRCPT),
	K('-', "<a@b>\0", PARSE_OK, MILTER_R_DELRCPT),
	K('e', "<a@b>\0", PARSE_OK, MILTER_R_CHGFROM),
	K('e', "<a@b>\0SIZE=1\0", PARSE_OK, MILTER_R_CHGFROM),
	K('b', "any\0bytes", PARSE_OK, MILTER_R_REPLBODY),
	K('4', "", PARSE_OK, MILTER_R_SHUTDOWN),
	K('f', "", PARSE_OK, MILTER_R_CONNFAIL),
	K('Z', "", PARSE_BAD, MILTER_R_CONTINUE),
	K('O', "", PARSE_BAD, MILTER_R_CONTINUE),
};

static void
test_reply_kinds(void **state)
{
	struct milter_reply	r;
	uint8_t			*keep, *big;
	size_t			i, n;

	(void)state;
	for (i = 0; i < sizeof(kind_cases) / sizeof(kind_cases[0]); i++) {
		const struct kind_case	*c = &kind_cases[i];

		assert_int_equal(reply_of(c->cmd, c->data, c->len, &r, &keep),
		    c->rc);
		if (c->rc == PARSE_OK)
			assert_int_equal(r.kind, c->kind);
		free(keep);
	}
	assert_int_equal(reply_of('i', "\0\0\0\x07X-A\0v\0", 10, &r, &keep),
	    PARSE_OK);
	assert_int_equal(r.index, 7);
	assert_int_equal(r.nlen, 3);
	assert_int_equal(r.tlen, 1);
	assert_int_equal(r.action, MILTER_A_ADDHDRS);
	free(keep);
	assert_int_equal(reply_of('2', "<a@b>\0X\0", 8, &r, &keep), PARSE_OK);
	assert_int_equal(r.action, MILTER_A_ADDRCPT_PAR);
	assert_int_equal(r.alen, 1);
	free(keep);
	/* a header value over its bound */
	n = 4 + MILTER_HDR_VALUE_MAX + 2;
	big = calloc(1, n);
	memcpy(big, "X-A", 3);
	memset(big + 4, 'v', MILTER_HDR_VALUE_MAX + 1);
	assert_int_not_equal(reply_of('h', big, n, &r, &keep), PARSE_OK);
	free(keep);
	free(big);
}

/* ---- the message model ---- */

static const char msg_text[] =
	"From: <a@b>\r\n"
	"Subject: one\r\n"
	"X-Fold: a\r\n\tb\r\n"
	"subject: two\r\n"
	"\r\n"
	"body\r\n";

static void
msg_new(struct milter_msg *m)
{
	const char	*rcpts[] = { "alice@example.test", "bob@example.test" };

	assert_int_equal(milter_msg_init(m, (const uint8_t *)msg_text,
	    sizeof(msg_text) - 1, "x@remote.test", rcpts, 2, 1 << 20), 0);
}

static void
render_is(const struct milter_msg *m, const char *want)
{
	struct buf	out;

	buf_init(&out, 1 << 20);
	assert_int_equal(milter_msg_render(m, &out), 0);
	assert_int_equal(out.len, strlen(want));
	assert_memory_equal(out.data, want, out.len);
	buf_free(&out);
}

static void
edit(struct milter_msg *m, char cmd, const void *p, size_t n, int rc)
{
	struct milter_reply	r;
	uint8_t			*keep;

	assert_int_equal(reply_of(cmd, p, n, &r, &keep), PARSE_OK);
	assert_int_equal(milter_msg_apply(m, &r), rc);
	free(keep);
}

static void
test_msg_split(void **state)
{
	struct milter_msg	m;
	struct buf		v;

	(void)state;
	msg_new(&m);
	assert_int_equal(m.nh, 4);
	assert_true(m.sep);
	assert_int_equal(m.bodylen, 6);
	buf_init(&v, 1024);
	assert_int_equal(milter_msg_hdr_value(&m.h[2], &v), 0);
	assert_int_equal(v.len, 4);
	assert_memory_equal(v.data, "a\n\tb", 4);
	render_is(&m, msg_text);	/* untouched: byte for byte */
	buf_free(&v);
	milter_msg_free(&m);
	/* no empty line; a line that is no field starts the body */
	assert_int_equal(milter_msg_init(&m, (const uint8_t *)"A: 1\r\nnot a "
	    "field\r\n", 19, "", NULL, 0, 100), 0);
	assert_int_equal(m.nh, 1);
	assert_false(m.sep);
	assert_int_equal(m.bodylen, 13);
	milter_msg_free(&m);
}

static void
test_msg_headers(void **state)
{
	struct milter_msg	m;

	(void)state;
	msg_new(&m);
	/* the second "Subject" (any case) changes */
	edit(&m, 'm', "\0\0\0\x02Subject\0new\0", 16, 0);
	edit(&m, 'i', "\0\0\0\0X-Top\0t\0", 12, 0);
	edit(&m, 'h', "X-End\0l1\n\tl2\0", 13, 0);
	edit(&m, 'm', "\0\0\0\x01X-Fold\0\0", 12, 0);	/* delete */
	edit(&m, 'm', "\0\0\0\x05X-None\0\0", 12, 0);	/* none: nothing */
	assert_true(m.hdrs_changed);
	render_is(&m, "X-Top: t\r\nFrom: <a@b>\r\nSubject: one\r\n"
	    "Subject: new\r\nX-End: l1\r\n\tl2\r\n\r\nbody\r\n");
	/* index past the end: appended */
	edit(&m, 'i', "\0\0\0\x63X-Last\0z\0", 13, 0);
	assert_int_equal(m.nh, 6);
	assert_memory_equal(m.h[5].raw, "X-Last: z\r\n", 11);
	milter_msg_free(&m);
}

static void
test_msg_envelope_body(void **state)
{
	struct milter_msg	m;

	(void)state;
	msg_new(&m);
	edit(&m, '+', "<carol@example.test>\0", 21, 0);
	edit(&m, '+', "<CAROL@example.test>\0", 21, 0);	/* once */
	edit(&m, '-', "<alice@example.test>\0", 21, 0);
	edit(&m, '-', "<nobody@example.test>\0", 22, 0);
	edit(&m, 'e', "<new@remote.test>\0", 18, 0);
	assert_int_equal(m.nr, 2);
	assert_string_equal(m.r[0].addr, "bob@example.test");
	assert_int_equal(m.r[0].orig, 1);
	assert_string_equal(m.r[1].addr, "carol@example.test");
	assert_int_equal(m.r[1].orig, -1);
	assert_string_equal(m.sender, "new@remote.test");
	edit(&m, 'e', "<>\0", 3, 0);
	assert_string_equal(m.sender, "");
	milter_msg_body_begin(&m);
	edit(&m, 'b', "new\nbody", 8, 0);
	edit(&m, 'b', " more", 5, 0);
	render_is(&m, "From: <a@b>\r\nSubject: one\r\nX-Fold: a\r\n\tb\r\n"
	    "subject: two\r\n\r\nnew\r\nbody more\r\n");
	edit(&m, 'q', "spam\0", 5, 0);
	assert_string_equal(m.quarantine, "spam");
	milter_msg_free(&m);
}

/* The message built as the transaction goes: sender, then recipients
 * one by one, then the content. */
static void
test_msg_phases(void **state)
{
	struct milter_msg	m;

	(void)state;
	assert_int_equal(milter_msg_init(&m, NULL, 0, "s@x", NULL, 0, 1024),
	    0);
	assert_int_equal(m.nh, 0);
	assert_int_equal(m.bodylen, 0);
	assert_int_equal(milter_msg_add_rcpt(&m, "a@b"), 0);
	assert_int_equal(milter_msg_add_rcpt(&m, "c@d"), 0);
	assert_int_equal(m.nr, 2);
	assert_int_equal(m.r[1].orig, 1);
	assert_int_equal(milter_msg_set_content(&m, (const uint8_t *)msg_text,
	    sizeof(msg_text) - 1), 0);
	assert_int_equal(m.nh, 4);
	render_is(&m, msg_text);
	edit(&m, '-', "<a@b>\0", 6, 0);
	edit(&m, '+', "<e@f>\0", 6, 0);
	assert_int_equal(m.nr, 2);
	assert_int_equal(m.r[0].orig, 1);	/* c@d keeps its place */
	assert_int_equal(m.r[1].orig, -1);
	milter_msg_free(&m);
}

/* ---- the `milters` key ---- */

static void
conf_err(void *arg, const char *file, unsigned line, const char *msg)
{
	(void)file;
	(void)line;
	snprintf(arg, 512, "%s", msg);
}

static struct config *
conf_with(const char *milters, char *err)
{
	char	text[1024];

	snprintf(text, sizeof(text), "hostname = mx.test\ndomains = a.test\n"
	    "directory = file:/dev/null\nmilters = %s\n", milters);
	err[0] = '\0';
	return conf_load_mem(text, strlen(text), "t.conf", "/tmp", conf_err,
	    err);
}

static void
test_conf_milters(void **state)
{
	struct config	*c;
	char		 err[512];

	(void)state;
	c = conf_with("inet:127.0.0.1:11332{default_action=accept, "
	    "eom_timeout=2s}, unix:/run/x.sock, inet:[::1]:8891", err);
	assert_non_null(c);
	assert_int_equal(c->milters.n, 3);
	assert_string_equal(c->milters.m[0].name, "inet:127.0.0.1:11332");
	assert_int_equal(c->milters.m[0].port, 11332);
	assert_int_equal(c->milters.m[0].default_action, CONF_MILTER_ACCEPT);
	assert_int_equal(c->milters.m[0].eom_ms, 2000);
	assert_int_equal(c->milters.m[0].command_ms, 0);
	assert_int_equal(c->milters.m[1].family, AF_UNIX);
	assert_string_equal(c->milters.m[1].path, "/run/x.sock");
	assert_int_equal(c->milters.m[1].default_action, -1);
	assert_int_equal(c->milters.m[2].family, AF_INET6);
	assert_int_equal(c->milter_eom_timeout_ms, 60000);
	assert_int_equal(c->milter_default_action, CONF_MILTER_TEMPFAIL);
	conf_unref(c);
	assert_null(conf_with("inet:localhost:1", err));
	assert_non_null(strstr(err, "expected inet:IPV4:PORT"));
	assert_null(conf_with("inet:127.0.0.1:0", err));
	assert_null(conf_with("unix:relative", err));
	assert_null(conf_with("inet:127.0.0.1:1{default_action=maybe}", err));
	assert_non_null(strstr(err, "default_action"));
	assert_null(conf_with("inet:127.0.0.1:1{eom_timeout=forever}", err));
	assert_null(conf_with("inet:127.0.0.1:1{bogus=1}", err));
	assert_null(conf_with("inet:127.0.0.1:1{default_action=accept", err));
	assert_null(conf_with("inet:127.0.0.1:1,,unix:/x", err));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame),
		cmocka_unit_test(test_encoders),
		cmocka_unit_test(test_optneg),
		cmocka_unit_test(test_replycode),
		cmocka_unit_test(test_reply_kinds),
		cmocka_unit_test(test_msg_split),
		cmocka_unit_test(test_msg_headers),
		cmocka_unit_test(test_msg_envelope_body),
		cmocka_unit_test(test_msg_phases),
		cmocka_unit_test(test_conf_milters),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
