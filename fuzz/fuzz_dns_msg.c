/*
 * fuzz_dns_msg.c - libFuzzer target for src/dns/dns_msg.c.
 * Parses every input as a DNS message and checks what the parser
 * promises: kept records within DNS_MSG_RR_MAX, names NUL-terminated,
 * at most 253 characters, lower case, of '!'..'~' without '\\'; TXT text
 * within DNS_MSG_TXT_MAX and terminated; a parsed
 * question survives a build/parse round trip.  Then the input as a text
 * name goes through dns_msg_build_query and back.  Untrusted: all of it.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns/dns_msg.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
fz_require(bool ok)
{
	if (!ok)
		abort();
}

static void
fz_name(const char *name)
{
	size_t	i, len = strnlen(name, DNS_MSG_NAME_BUF);

	fz_require(len <= 253);
	for (i = 0; i < len; i++)
		fz_require(name[i] >= '!' && name[i] <= '~' &&
		    name[i] != '\\' && !(name[i] >= 'A' && name[i] <= 'Z'));
	fz_require(len == 0 || (name[0] != '.' && name[len - 1] != '.'));
}

/* Build a query for name and parse it back: the question must match. */
static void
fz_roundtrip(const char *name, const char *want, uint16_t qtype)
{
	static struct dns_msg	m;	/* large; the fuzzer is one thread */
	uint8_t			q[DNS_MSG_QUERY_MAX];
	size_t			len;

	if (dns_msg_build_query(q, sizeof(q), &len, 0x1234, name, qtype,
	    true) != PARSE_OK)
		return;
	fz_require(len <= sizeof(q));
	fz_require(dns_msg_parse(q, len, &m) == PARSE_OK);
	fz_require(m.has_question && m.qtype == qtype && m.id == 0x1234);
	fz_require(strcmp(m.qname, want) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *p, size_t len)
{
	static struct dns_msg	m;
	char			text[DNS_MSG_NAME_BUF + 8], want[sizeof(text)];
	enum parse_rc		rc;
	size_t			i, n;

	rc = dns_msg_parse(p, len, &m);
	fz_require(rc == PARSE_OK || rc == PARSE_BAD || rc == PARSE_TOOLONG);
	if (rc == PARSE_OK) {
		fz_require(len >= DNS_MSG_HDR_LEN && len <= DNS_MSG_MAX);
		fz_require(m.nan <= DNS_MSG_RR_MAX);
		fz_require(m.nan + m.an_dropped <= m.ancount);
		fz_name(m.qname);
		for (i = 0; i < m.nan; i++) {
			fz_name(m.an[i].name);
			fz_name(m.an[i].target);
			/* TXT: within its bound, terminated after txtlen */
			fz_require(m.an[i].txtlen <= DNS_MSG_TXT_MAX &&
			    m.an[i].txt[m.an[i].txtlen] == '\0');
			fz_require(!m.an[i].txtlong ||
			    m.an[i].txtlen == DNS_MSG_TXT_MAX);
		}
		if (m.has_question && m.qname[0] != '\0') {
			memcpy(want, m.qname, sizeof(m.qname));
			fz_roundtrip(want, want, m.qtype);
		}
	}

	/* the input as a name: what encodes must decode to itself */
	n = len < DNS_MSG_NAME_BUF + 7 ? len : DNS_MSG_NAME_BUF + 7;
	memcpy(text, p, n);
	text[n] = '\0';
	n = strlen(text);
	memcpy(want, text, n + 1);
	if (n > 0 && want[n - 1] == '.')
		want[--n] = '\0';
	for (i = 0; i < n; i++)
		if (want[i] >= 'A' && want[i] <= 'Z')
			want[i] += 'a' - 'A';
	fz_roundtrip(text, want, DNS_MSG_T_MX);
	return 0;
}
