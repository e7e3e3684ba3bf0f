/*
 * milter_proto.c - the milter protocol codec (see milter_proto.h).
 * Owns: framing, encoders, OPTNEG and reply decoding with their bounds.
 * Never: I/O, timers, globals; decoded strings are spans of the frame.
 * Untrusted: every frame a filter sends.
 */
#include <string.h>

#include "milter_proto.h"

static uint32_t
mp_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void
mp_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

enum parse_rc
milter_frame_parse(const uint8_t *in, size_t len, size_t max,
    struct milter_frame *f, size_t *used)
{
	uint32_t	n;

	if (len < 4)
		return PARSE_MORE;
	n = mp_get32(in);
	if (n == 0)
		return PARSE_BAD;
	if (n > max)
		return PARSE_TOOLONG;
	if (len - 4 < n)
		return PARSE_MORE;
	f->cmd = (char)in[4];
	f->data = in + 5;
	f->len = n - 1;
	*used = (size_t)n + 4;
	return PARSE_OK;
}

/* Start a packet of cmd with payload size n; the caller adds n bytes. */
static int
mp_head(struct buf *b, char cmd, size_t n)
{
	uint8_t	h[5];

	if (n > UINT32_MAX - 1 || b->len + 5 + n > b->max)
		return -1;
	mp_put32(h, (uint32_t)n + 1);
	h[4] = (uint8_t)cmd;
	return buf_add(b, h, sizeof(h));
}

int
milter_enc(struct buf *b, char cmd, const void *p, size_t n)
{
	size_t	mark = b->len;

	if (mp_head(b, cmd, n) == -1 || (n > 0 && buf_add(b, p, n) == -1)) {
		b->len = mark;
		return -1;
	}
	return 0;
}

int
milter_enc_optneg(struct buf *b, uint32_t version, uint32_t actions,
    uint32_t protocol)
{
	uint8_t	p[12];

	mp_put32(p, version);
	mp_put32(p + 4, actions);
	mp_put32(p + 8, protocol);
	return milter_enc(b, MILTER_C_OPTNEG, p, sizeof(p));
}

int
milter_enc_connect(struct buf *b, const char *host, char family,
    uint16_t port, const char *addr)
{
	size_t	hl = strlen(host) + 1, al = strlen(addr) + 1, mark = b->len;
	uint8_t	fp[3] = { (uint8_t)family, (uint8_t)(port >> 8),
		    (uint8_t)port };

	if (family == 'U')	/* no port, no address */
		al = 0;
	if (mp_head(b, MILTER_C_CONNECT, hl + 1 + (family == 'U' ? 0 : 2) +
	    al) == -1 || buf_add(b, host, hl) == -1 ||
	    buf_add(b, fp, family == 'U' ? 1 : 3) == -1 ||
	    (al > 0 && buf_add(b, addr, al) == -1)) {
		b->len = mark;
		return -1;
	}
	return 0;
}

int
milter_enc_strings(struct buf *b, char cmd, const char *const *args,
    size_t n)
{
	size_t	i, total = 0, mark = b->len;

	for (i = 0; i < n; i++)
		total += strlen(args[i]) + 1;
	if (mp_head(b, cmd, total) == -1)
		return -1;
	for (i = 0; i < n; i++)
		if (buf_add(b, args[i], strlen(args[i]) + 1) == -1) {
			b->len = mark;
			return -1;
		}
	return 0;
}

int
milter_enc_header(struct buf *b, const char *name, size_t nlen,
    const char *value, size_t vlen)
{
	size_t	mark = b->len;

	if (mp_head(b, MILTER_C_HEADER, nlen + vlen + 2) == -1 ||
	    buf_add(b, name, nlen) == -1 || buf_addc(b, 0) == -1 ||
	    buf_add(b, value, vlen) == -1 || buf_addc(b, 0) == -1) {
		b->len = mark;
		return -1;
	}
	return 0;
}

int
milter_enc_macros(struct buf *b, char cmd, const char *const *names,
    const char *const *values, size_t n)
{
	size_t	i, total = 1, mark = b->len;

	for (i = 0; i < n; i++)
		total += strlen(names[i]) + strlen(values[i]) + 2;
	if (mp_head(b, MILTER_C_MACRO, total) == -1 || buf_addc(b, cmd) == -1)
		goto bad;
	for (i = 0; i < n; i++)
		if (buf_add(b, names[i], strlen(names[i]) + 1) == -1 ||
		    buf_add(b, values[i], strlen(values[i]) + 1) == -1)
			goto bad;
	return 0;
bad:
	b->len = mark;
	return -1;
}

/* SETSYMLIST after the 12 bytes: (stage, "names\0")*, bounded. */
static enum parse_rc
mp_neg_macros(const uint8_t *p, size_t n, struct milter_neg *neg)
{
	uint32_t	 stage;
	const uint8_t	*z;

	while (n > 0) {
		if (n < 5)
			return PARSE_BAD;
		stage = mp_get32(p);
		p += 4;
		n -= 4;
		if (stage >= MILTER_M_STAGES || neg->macros_set[stage] ||
		    (z = memchr(p, 0, n)) == NULL)
			return PARSE_BAD;
		if ((size_t)(z - p) > MILTER_MACROS_MAX)
			return PARSE_TOOLONG;
		neg->macros[stage] = p;
		neg->macros_len[stage] = (size_t)(z - p);
		neg->macros_set[stage] = true;
		n -= (size_t)(z - p) + 1;
		p = z + 1;
	}
	return PARSE_OK;
}

enum parse_rc
milter_neg_parse(const struct milter_frame *f, uint32_t actions,
    uint32_t protocol, struct milter_neg *neg)
{
	memset(neg, 0, sizeof(*neg));
	if (f->cmd != MILTER_C_OPTNEG || f->len < 12)
		return PARSE_BAD;
	neg->version = mp_get32(f->data);
	neg->actions = mp_get32(f->data + 4);
	neg->protocol = mp_get32(f->data + 8);
	if (neg->version < 2 || neg->version > MILTER_VERSION ||
	    (neg->actions & ~actions) != 0 ||
	    (neg->protocol & ~protocol) != 0)
		return PARSE_BAD;
	if (f->len > 12 && !(neg->actions & MILTER_A_SETSYMLIST))
		return PARSE_BAD;
	return mp_neg_macros(f->data + 12, f->len - 12, neg);
}

/* A NUL-ended string at *p of the n bytes left: its span; -1 if none or
 * longer than max. */
static int
mp_str(const uint8_t **p, size_t *n, size_t max, const char **s,
    size_t *slen)
{
	const uint8_t	*z = memchr(*p, 0, *n);

	if (z == NULL || (size_t)(z - *p) > max)
		return -1;
	*s = (const char *)*p;
	*slen = (size_t)(z - *p);
	*n -= *slen + 1;
	*p = z + 1;
	return 0;
}

/* RFC 5322 3.6.8 ftext: printable US-ASCII but ':'. */
static bool
mp_hdr_name_ok(const char *s, size_t n)
{
	size_t	i;

	if (n == 0)
		return false;
	for (i = 0; i < n; i++)
		if (s[i] < 33 || s[i] > 126 || s[i] == ':')
			return false;
	return true;
}

/* A header value: no NUL (ensured), bare CR, or control byte but TAB, LF
 * (libmilter folds with LF) and CRLF. */
static bool
mp_hdr_value_ok(const char *s, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++) {
		unsigned char	c = (unsigned char)s[i];

		if (c == '\r' && (i + 1 >= n || s[i + 1] != '\n'))
			return false;
		if (c < 32 && c != '\t' && c != '\n' && c != '\r')
			return false;
		if (c == 127)
			return false;
	}
	return true;
}

static enum parse_rc
mp_header_edit(const uint8_t *p, size_t n, bool indexed,
    struct milter_reply *r)
{
	if (indexed) {
		if (n < 4)
			return PARSE_BAD;
		r->index = mp_get32(p);
		p += 4;
		n -= 4;
	}
	if (mp_str(&p, &n, MILTER_HDR_NAME_MAX, &r->name, &r->nlen) == -1 ||
	    mp_str(&p, &n, MILTER_HDR_VALUE_MAX, &r->text, &r->tlen) == -1)
		return memchr(p, 0, n) == NULL ? PARSE_BAD : PARSE_TOOLONG;
	if (n != 0 || !mp_hdr_name_ok(r->name, r->nlen) ||
	    !mp_hdr_value_ok(r->text, r->tlen))
		return PARSE_BAD;
	return PARSE_OK;
}

/* An address edit: "<addr>\0" [args "\0"]; the address without blanks,
 * controls or NUL. */
static enum parse_rc
mp_addr_edit(const uint8_t *p, size_t n, bool args, struct milter_reply *r)
{
	size_t	i;

	if (mp_str(&p, &n, MILTER_ADDR_MAX, &r->text, &r->tlen) == -1)
		return memchr(p, 0, n) == NULL ? PARSE_BAD : PARSE_TOOLONG;
	if (args && n > 0 &&
	    mp_str(&p, &n, MILTER_ADDR_MAX, &r->args, &r->alen) == -1)
		return PARSE_BAD;
	if (n != 0 || r->tlen == 0)
		return PARSE_BAD;
	for (i = 0; i < r->tlen; i++)
		if ((unsigned char)r->text[i] <= 32 ||
		    (unsigned char)r->text[i] == 127)
			return PARSE_BAD;
	for (i = 0; i < r->alen; i++)
		if ((unsigned char)r->args[i] < 32 ||
		    (unsigned char)r->args[i] == 127)
			return PARSE_BAD;
	return PARSE_OK;
}

static bool
mp_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* One line of a reply: "NNN" then SP or '-' (or the end: then SP). */
static enum parse_rc
mp_code_line(const char *s, size_t n, bool last, unsigned *code,
    bool *cont)
{
	size_t	i, j;

	if (n < 3 || !mp_digit(s[0]) || !mp_digit(s[1]) || !mp_digit(s[2]))
		return PARSE_BAD;
	*code = (unsigned)(s[0] - '0') * 100 + (unsigned)(s[1] - '0') * 10 +
	    (unsigned)(s[2] - '0');
	*cont = n > 3 && s[3] == '-';
	if (n > 3 && s[3] != ' ' && s[3] != '-')
		return PARSE_BAD;
	if (*cont == last)	/* only the last line has no '-' */
		return PARSE_BAD;
	for (i = 3; i < n; i++)
		if ((unsigned char)s[i] < 32 || (unsigned char)s[i] > 126)
			if (s[i] != '\t')
				return PARSE_BAD;
	/* RFC 3463: an enhanced code's class is the reply's class */
	if (n > 5 && mp_digit(s[4]) && s[5] == '.') {
		if (s[4] != s[0])
			return PARSE_BAD;
		for (i = 6, j = 0; i < n && (mp_digit(s[i]) || s[i] == '.');
		    i++)
			j += s[i] == '.';
		if (j != 1 || (i < n && s[i] != ' '))
			return PARSE_BAD;
	}
	return PARSE_OK;
}

enum parse_rc
milter_reply_code_check(const char *s, size_t n, unsigned *code)
{
	const char	*e = s + n, *nl;
	unsigned	 c, first = 0;
	bool		 cont;

	if (n > MILTER_REPLY_MAX)
		return PARSE_TOOLONG;
	if (n == 0 || memchr(s, 0, n) != NULL)
		return PARSE_BAD;
	while (s < e) {
		nl = memchr(s, '\r', (size_t)(e - s));
		if (nl != NULL && (nl + 1 >= e || nl[1] != '\n' || nl + 2 >= e))
			return PARSE_BAD;
		if (mp_code_line(s, (size_t)((nl ? nl : e) - s), nl == NULL,
		    &c, &cont) != PARSE_OK)
			return PARSE_BAD;
		if (first == 0)
			first = c;
		if (c != first || c < 400 || c > 599)
			return PARSE_BAD;
		s = nl ? nl + 2 : e;
	}
	*code = first;
	return PARSE_OK;
}

/* The reply commands: kind and how the payload is read. */
enum mp_shape { MP_EMPTY, MP_ANY, MP_STR, MP_HDR, MP_IHDR, MP_ADDR,
	MP_ADDRARGS, MP_CODE };

static const struct mp_kind {
	char			cmd;
	enum milter_reply_kind	kind;
	enum mp_shape		shape;
	uint32_t		action;
	const char		*name;
} mp_kinds[] = {
	{ 'c', MILTER_R_CONTINUE,   MP_EMPTY, 0, "continue" },
	{ 'a', MILTER_R_ACCEPT,     MP_EMPTY, 0, "accept" },
	{ 'r', MILTER_R_REJECT,     MP_EMPTY, 0, "reject" },
	{ 't', MILTER_R_TEMPFAIL,   MP_EMPTY, 0, "tempfail" },
	{ 'd', MILTER_R_DISCARD,    MP_EMPTY, 0, "discard" },
	{ 'y', MILTER_R_REPLYCODE,  MP_CODE,  0, "replycode" },
	{ 'q', MILTER_R_QUARANTINE, MP_STR,   MILTER_A_QUARANTINE,
	  "quarantine" },
	{ 'p', MILTER_R_PROGRESS,   MP_EMPTY, 0, "progress" },
	{ 's', MILTER_R_SKIP,       MP_EMPTY, 0, "skip" },
	{ 'h', MILTER_R_ADDHEADER,  MP_HDR,   MILTER_A_ADDHDRS, "addheader" },
	{ 'i', MILTER_R_INSHEADER,  MP_IHDR,  MILTER_A_ADDHDRS, "insheader" },
	{ 'm', MILTER_R_CHGHEADER,  MP_IHDR,  MILTER_A_CHGHDRS, "chgheader" },
	{ '+', MILTER_R_ADDRCPT,    MP_ADDR,  MILTER_A_ADDRCPT, "addrcpt" },
	{ '2', MILTER_R_ADDRCPT,    MP_ADDRARGS, MILTER_A_ADDRCPT_PAR,
	  "addrcpt" },
	{ '-', MILTER_R_DELRCPT,    MP_ADDR,  MILTER_A_DELRCPT, "delrcpt" },
	{ 'e', MILTER_R_CHGFROM,    MP_ADDRARGS, MILTER_A_CHGFROM, "chgfrom" },
	{ 'b', MILTER_R_REPLBODY,   MP_ANY,   MILTER_A_CHGBODY, "replbody" },
	{ '4', MILTER_R_SHUTDOWN,   MP_EMPTY, 0, "shutdown" },
	{ 'f', MILTER_R_CONNFAIL,   MP_EMPTY, 0, "connfail" },
};

static const struct mp_kind *
mp_kind_of(char cmd)
{
	size_t	i;

	for (i = 0; i < sizeof(mp_kinds) / sizeof(mp_kinds[0]); i++)
		if (mp_kinds[i].cmd == cmd)
			return &mp_kinds[i];
	return NULL;
}

enum parse_rc
milter_reply_parse(const struct milter_frame *f, struct milter_reply *r)
{
	const struct mp_kind	*k = mp_kind_of(f->cmd);
	const uint8_t		*p = f->data;
	size_t			 n = f->len;

	memset(r, 0, sizeof(*r));
	if (k == NULL)
		return PARSE_BAD;
	r->kind = k->kind;
	r->action = k->action;
	switch (k->shape) {
	case MP_EMPTY:
		return n == 0 ? PARSE_OK : PARSE_BAD;
	case MP_ANY:
		r->text = (const char *)p;
		r->tlen = n;
		return n <= MILTER_CHUNK_MAX + 1 ? PARSE_OK : PARSE_TOOLONG;
	case MP_STR:
		if (mp_str(&p, &n, MILTER_REPLY_MAX, &r->text, &r->tlen) == -1)
			return memchr(p, 0, n) ? PARSE_TOOLONG : PARSE_BAD;
		return n == 0 ? PARSE_OK : PARSE_BAD;
	case MP_HDR:
	case MP_IHDR:
		return mp_header_edit(p, n, k->shape == MP_IHDR, r);
	case MP_ADDR:
	case MP_ADDRARGS:
		return mp_addr_edit(p, n, k->shape == MP_ADDRARGS, r);
	case MP_CODE:
		if (mp_str(&p, &n, MILTER_REPLY_MAX, &r->text, &r->tlen) == -1)
			return memchr(p, 0, n) ? PARSE_TOOLONG : PARSE_BAD;
		if (n != 0)
			return PARSE_BAD;
		return milter_reply_code_check(r->text, r->tlen, &r->code);
	}
	return PARSE_BAD;
}

const char *
milter_reply_name(enum milter_reply_kind k)
{
	size_t	i;

	for (i = 0; i < sizeof(mp_kinds) / sizeof(mp_kinds[0]); i++)
		if (mp_kinds[i].kind == k)
			return mp_kinds[i].name;
	return "unknown";
}

uint32_t
milter_reply_action(enum milter_reply_kind k)
{
	size_t	i;

	for (i = 0; i < sizeof(mp_kinds) / sizeof(mp_kinds[0]); i++)
		if (mp_kinds[i].kind == k)
			return mp_kinds[i].action;
	return 0;
}
