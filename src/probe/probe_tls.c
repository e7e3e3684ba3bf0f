/*
 * probe_tls.c - `starttls`: offered or not, the certificate's facts,
 * the protocol versions accepted, and the CVE-2011-0411 test (a command
 * pipelined after STARTTLS in plaintext must never be executed inside
 * TLS).
 * Owns: the look at the server's certificate (never trusted, only read).
 * Never: sends mail.  Untrusted: the certificate and the replies.
 * RFC 3207 4.2, 5.
 */
#include <string.h>
#include <time.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "probe.h"

#define TLS_INJECT_WAIT_MS	2000	/* for a reply nobody asked for */

static const char *const fix_tls[PROBE_MTA_N] = {
	[PROBE_MTA_POSTFIX] = "smtpd_tls_security_level = may, "
	    "smtpd_tls_chain_files = key.pem,fullchain.pem, "
	    "smtpd_tls_protocols = >=TLSv1.2 (Postfix >= 2.8.4 drops "
	    "pipelined plaintext)",
	[PROBE_MTA_EXIM] = "tls_advertise_hosts = *, tls_certificate, "
	    "openssl_options = +no_tlsv1 +no_tlsv1_1",
	[PROBE_MTA_SENDMAIL] = "define(`confSERVER_CERT', ...) and "
	    "O CipherList / ServerSSLOptions=+SSL_OP_NO_TLSv1 "
	    "+SSL_OP_NO_TLSv1_1",
	[PROBE_MTA_OPENSMTPD] = "listen on ... tls pki NAME "
	    "protocols \"tlsv1.2,tlsv1.3\"",
	[PROBE_MTA_EXCHANGE] = "a certificate bound to SMTP "
	    "(Enable-ExchangeCertificate -Services SMTP); disable TLS 1.0/1.1 "
	    "in SCHANNEL",
	[PROBE_MTA_MXGATE] = "tls_cert and tls_key (TLS 1.2 and later "
	    "only; pipelined plaintext after STARTTLS is dropped)",
};

struct tls_version {
	int		 v;
	const char	*name;
	bool		 weak;
};

static const struct tls_version tls_versions[] = {
	{ TLS1_VERSION,   "TLSv1",   true },
	{ TLS1_1_VERSION, "TLSv1.1", true },
	{ TLS1_2_VERSION, "TLSv1.2", false },
	{ TLS1_3_VERSION, "TLSv1.3", false },
};

static void
tls_cert_facts(struct probe_finding *f, struct probe_conn *c, bool *bad)
{
	X509		*x;
	char		 s[256], i[256];
	const ASN1_TIME	*na;
	int		 days = 0, secs = 0;

	if ((x = SSL_get1_peer_certificate(c->ssl)) == NULL) {
		probe_fact(f, "certificate: none");
		*bad = true;
		return;
	}
	X509_NAME_oneline(X509_get_subject_name(x), s, sizeof(s));
	X509_NAME_oneline(X509_get_issuer_name(x), i, sizeof(i));
	probe_fact(f, "subject: %s", s);
	probe_fact(f, "issuer: %s", i);
	na = X509_get0_notAfter(x);
	if (ASN1_TIME_diff(&days, &secs, NULL, na) == 1) {
		probe_fact(f, "expires in: %d days", days);
		if (days < 0 || (days == 0 && secs < 0)) {
			probe_fact(f, "certificate EXPIRED");
			*bad = true;
		}
	}
	if (X509_check_issued(x, x) == X509_V_OK) {
		probe_fact(f, "self-signed: yes");
		*bad = true;
	} else
		probe_fact(f, "self-signed: no");
	X509_free(x);
}

/* STARTTLS and NOOP in one write; a 250 inside TLS that we did not ask
 * for is the NOOP executed: CVE-2011-0411. */
static int
tls_injection(struct probe_run *run, struct probe_finding *f,
    struct probe_conn *c)
{
	static const char	two[] = "STARTTLS\r\nNOOP\r\n";
	struct probe_reply	r;
	unsigned		t;
	int			injected = 0;

	if (probe_send_raw(c, two, sizeof(two) - 1,
	    "STARTTLS\\r\\nNOOP\\r\\n (one packet)") == -1 ||
	    probe_read_reply(c, &c->r) == -1 || c->r.code != 220)
		return -1;
	if (c->inlen > 0) {
		probe_note(c->tr, "-- %zu octets after 220 in plaintext "
		    "(the NOOP answered before TLS)", c->inlen);
		c->inlen = 0;
	}
	if (probe_conn_starttls_after(c, 0) == -1)
		return -1;
	t = run->o.timeout_ms;
	run->o.timeout_ms = t < TLS_INJECT_WAIT_MS ? t : TLS_INJECT_WAIT_MS;
	probe_note(c->tr, "-- waiting %u ms for a reply we did not ask for",
	    run->o.timeout_ms);
	if (probe_read_reply(c, &r) == 0 && r.code != 0) {
		injected = 1;
		probe_fact(f, "CVE-2011-0411: VULNERABLE: the plaintext NOOP "
		    "was answered inside TLS (%u)", r.code);
	} else {
		probe_fact(f, "CVE-2011-0411: not vulnerable (no reply to "
		    "the injected NOOP)");
		c->dead = false;
		c->err[0] = '\0';
	}
	run->o.timeout_ms = t;
	return injected;
}

static void
tls_versions_run(struct probe_run *run, struct probe_finding *f,
    bool *weak)
{
	struct probe_conn	c;
	struct buf		scratch;
	size_t			i;
	char			list[128] = "";

	buf_init(&scratch, 4096);
	for (i = 0; i < sizeof(tls_versions) / sizeof(tls_versions[0]);
	    i++) {
		buf_reset(&scratch);
		if (probe_conn_open(&c, run, &scratch) == -1 ||
		    probe_cmd(&c, "EHLO %s", run->o.helo) == -1) {
			probe_conn_close(&c);
			continue;
		}
		if (probe_conn_starttls(&c, tls_versions[i].v) == 0) {
			if (tls_versions[i].weak)
				*weak = true;
			snprintf(list + strlen(list), sizeof(list) -
			    strlen(list), "%s%s", list[0] ? " " : "",
			    tls_versions[i].name);
			probe_note(&f->evidence, "-- %s: accepted",
			    tls_versions[i].name);
		} else
			probe_note(&f->evidence, "-- %s: refused",
			    tls_versions[i].name);
		probe_conn_close(&c);
	}
	buf_free(&scratch);
	probe_fact(f, "protocols accepted: %s", list[0] ? list : "none");
}

void
probe_tls_run(struct probe_run *run)
{
	struct probe_finding	*f;
	struct probe_conn	 c;
	bool			 bad = false, weak = false;
	int			 inj;

	f = probe_finding_add(run, "starttls", "STARTTLS: offered, "
	    "certificate, versions, plaintext injection");
	probe_fix(f, run, "Offer STARTTLS with a certificate from a public "
	    "CA for the MX name, TLS 1.2 and later only, and drop any "
	    "plaintext pipelined after STARTTLS.", fix_tls);
	if (probe_conn_open(&c, run, &f->evidence) == -1 ||
	    probe_cmd(&c, "EHLO %s", run->o.helo) == -1) {
		probe_finding_set(f, PROBE_ERROR, PROBE_SEV_INFO, "%s", c.err);
		probe_conn_close(&c);
		return;
	}
	if ((c.r.ext & CLIENT_EXT_STARTTLS) == 0) {
		probe_finding_set(f, PROBE_FAIL, PROBE_SEV_MEDIUM, "STARTTLS "
		    "not offered: mail to this server crosses the network in "
		    "clear");
		probe_conn_close(&c);
		return;
	}
	inj = tls_injection(run, f, &c);
	if (inj >= 0 && c.ssl != NULL) {
		probe_fact(f, "negotiated: %s %s", SSL_get_version(c.ssl),
		    SSL_get_cipher_name(c.ssl));
		tls_cert_facts(f, &c, &bad);
	}
	probe_conn_close(&c);
	if (inj == -1) {
		probe_finding_set(f, PROBE_FAIL, PROBE_SEV_MEDIUM, "STARTTLS "
		    "offered but TLS could not be set up: %s", c.err);
		return;
	}
	tls_versions_run(run, f, &weak);
	if (inj == 1)
		probe_finding_set(f, PROBE_FAIL, PROBE_SEV_HIGH, "plaintext "
		    "pipelined after STARTTLS is executed inside TLS "
		    "(CVE-2011-0411): an attacker injects commands");
	else if (weak || bad)
		probe_finding_set(f, PROBE_FAIL, PROBE_SEV_LOW, "STARTTLS "
		    "offered, but %s%s%s", weak ? "TLS 1.0/1.1 accepted" : "",
		    weak && bad ? " and " : "", bad ? "the certificate is "
		    "self-signed or expired" : "");
	else
		probe_finding_set(f, PROBE_PASS, PROBE_SEV_INFO, "STARTTLS "
		    "offered, TLS 1.2+ only, certificate from a CA, not "
		    "injectable");
}
