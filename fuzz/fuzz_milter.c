/*
 * fuzz_milter.c - libFuzzer target for src/milter/milter_proto.c and
 * milter_msg.c.  The input is read as a stream of milter packets (as a
 * filter would send them): each frame within MILTER_PACKET_MAX is decoded
 * as an OPTNEG answer and as a reply; a decoded edit is applied to a
 * fixed message, whose rendering must then stay within its bounds.  Then
 * the input as a message: split and rendered untouched, it must come back
 * byte for byte.  A replycode that passes must start with 4 or 5.
 * Untrusted: all of it.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "milter/milter_msg.h"
#include "milter/milter_proto.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
fz_require(bool ok)
{
	if (!ok)
		abort();
}

static const char fz_msg[] = "From: <a@b>\r\nSubject: s\r\nX: 1\r\n\r\nbody\r\n";

static void
fz_frames(const uint8_t *p, size_t n)
{
	struct milter_frame	 f;
	struct milter_reply	 r;
	struct milter_neg	 neg;
	struct milter_msg	 m;
	struct buf		 out;
	const char		*rcpts[] = { "a@b" };
	size_t			 used;
	enum parse_rc		 rc;

	if (milter_msg_init(&m, (const uint8_t *)fz_msg, sizeof(fz_msg) - 1,
	    "s@x", rcpts, 1, 1 << 20) == -1)
		abort();
	while ((rc = milter_frame_parse(p, n, MILTER_PACKET_MAX, &f, &used)) ==
	    PARSE_OK) {
		fz_require(used >= 5 && used <= n && f.len + 5 == used);
		(void)milter_neg_parse(&f, MILTER_A_ALL, MILTER_P_OFFER, &neg);
		if (milter_reply_parse(&f, &r) == PARSE_OK) {
			if (r.kind == MILTER_R_REPLYCODE)
				fz_require(r.code >= 400 && r.code <= 599 &&
				    (r.text[0] == '4' || r.text[0] == '5'));
			if (r.action != 0 || r.kind == MILTER_R_QUARANTINE)
				(void)milter_msg_apply(&m, &r);
		}
		p += used;
		n -= used;
	}
	fz_require(m.nh <= MILTER_MSG_HDRS_MAX && m.nr <= MILTER_MSG_RCPTS_MAX);
	buf_init(&out, 64u << 20);
	(void)milter_msg_render(&m, &out);
	buf_free(&out);
	milter_msg_free(&m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct milter_msg	m;
	struct buf		out, v;
	size_t			i;
	unsigned		code;

	fz_frames(data, size);
	if (milter_msg_init(&m, data, size, "", NULL, 0, size + 1) == 0) {
		buf_init(&out, size + 1);
		buf_init(&v, size + 1);
		fz_require(milter_msg_render(&m, &out) == 0);
		fz_require(out.len == size &&
		    (size == 0 || memcmp(out.data, data, size) == 0));
		for (i = 0; i < m.nh; i++)
			fz_require(milter_msg_hdr_value(&m.h[i], &v) == 0 &&
			    v.len < m.h[i].len);
		buf_free(&v);
		buf_free(&out);
		milter_msg_free(&m);
	}
	if (milter_reply_code_check((const char *)data, size, &code) ==
	    PARSE_OK)
		fz_require(code >= 400 && code <= 599);
	return 0;
}
