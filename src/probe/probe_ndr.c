/*
 * probe_ndr.c - the intrusive half of `unknown-recipient`: one message to
 * an invented person of the domain, from a sender at --ndr-domain (whose
 * MX the assessor points at --ndr-listen), and a small listener that
 * waits for the bounce.  Tells the three answers apart by evidence:
 * rejected at RCPT / accepted and bounced (a backscatter source) /
 * accepted and silently dropped.
 * Owns: the listener socket and its minimal receiving dialogue.
 * Never: sends to an address outside the tested domain; waits past
 * --timeout; keeps more than NDR_MSG_MAX octets.
 * Untrusted: every byte the bouncing server sends.  RFC 5321, 3464.
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "probe.h"

#define NDR_MSG_MAX	(256 * 1024)	/* octets of a bounce we keep */

struct ndr_peer {
	int		fd;
	uint8_t		in[PROBE_LINE_MAX + 2];
	size_t		inlen;
	int64_t		deadline;
};

static int
ndr_listen_open(const char *spec, char *err, size_t errlen)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6	*s6 = (struct sockaddr_in6 *)&ss;
	char			 host[INET6_ADDRSTRLEN + 2];
	const char		*colon = strrchr(spec, ':');
	size_t			 hl = (size_t)(colon - spec);
	unsigned long		 port;
	int			 fd, one = 1;

	memset(&ss, 0, sizeof(ss));
	port = strtoul(colon + 1, NULL, 10);
	if (spec[0] == '[' && hl > 2) {
		spec++;
		hl -= 2;
	}
	if (hl >= sizeof(host) || port == 0 || port > 65535) {
		snprintf(err, errlen, "bad --ndr-listen %.64s", spec);
		return -1;
	}
	memcpy(host, spec, hl);
	host[hl] = '\0';
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
	} else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
	} else {
		snprintf(err, errlen, "bad --ndr-listen address %s", host);
		return -1;
	}
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ==
	    -1 || bind(fd, (struct sockaddr *)&ss, ss.ss_family == AF_INET ?
	    sizeof(*s4) : sizeof(*s6)) == -1 || listen(fd, 4) == -1) {
		snprintf(err, errlen, "cannot listen on %.64s: %s", spec,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	return fd;
}

static int
ndr_wait(int fd, short ev, int64_t deadline)
{
	struct pollfd	pfd = { .fd = fd, .events = ev };
	int64_t		left = deadline - probe_now_ms();

	if (left <= 0)
		return 0;
	return poll(&pfd, 1, (int)left) == 1 ? 1 : 0;
}

static void
ndr_say(struct ndr_peer *p, struct buf *tr, const char *line)
{
	probe_note(tr, "L: S: %s", line);
	if (ndr_wait(p->fd, POLLOUT, p->deadline) == 1)
		(void)send(p->fd, line, strlen(line), MSG_NOSIGNAL);
	(void)send(p->fd, "\r\n", 2, MSG_NOSIGNAL);
}

/* The next line (without its end) into line; -1 on close or time out. */
static int
ndr_line(struct ndr_peer *p, char *line, size_t linemax, size_t *len)
{
	size_t		ll, used;
	enum parse_rc	rc;
	ssize_t		n;

	for (;;) {
		rc = probe_line_next(p->in, p->inlen, PROBE_LINE_MAX, &ll,
		    &used);
		if (rc == PARSE_TOOLONG)
			return -1;
		if (rc == PARSE_OK) {
			*len = ll < linemax - 1 ? ll : linemax - 1;
			memcpy(line, p->in, *len);
			line[*len] = '\0';
			memmove(p->in, p->in + used, p->inlen - used);
			p->inlen -= used;
			return 0;
		}
		if (ndr_wait(p->fd, POLLIN, p->deadline) != 1)
			return -1;
		n = recv(p->fd, p->in + p->inlen, sizeof(p->in) - p->inlen, 0);
		if (n <= 0)
			return -1;
		p->inlen += (size_t)n;
	}
}

/* One incoming session; true when a message mentioning token came. */
static bool
ndr_session(struct ndr_peer *p, struct buf *tr, const char *token)
{
	char		line[PROBE_LINE_MAX + 1];
	size_t		len, got = 0;
	bool		data = false, found = false;

	ndr_say(p, tr, "220 mxgate-probe-listener ESMTP");
	while (ndr_line(p, line, sizeof(line), &len) == 0) {
		if (data) {
			if (strcmp(line, ".") == 0) {
				data = false;
				probe_note(tr, "L: (message of %zu octets)",
				    got);
				ndr_say(p, tr, "250 2.0.0 Ok");
				continue;
			}
			got += len + 2;
			if (got < NDR_MSG_MAX && strstr(line, token) != NULL)
				found = true;
			continue;
		}
		probe_note(tr, "L: C: %.200s", line);
		if (strncasecmp(line, "DATA", 4) == 0) {
			data = true;
			ndr_say(p, tr, "354 go ahead");
		} else if (strncasecmp(line, "QUIT", 4) == 0) {
			ndr_say(p, tr, "221 2.0.0 Bye");
			break;
		} else
			ndr_say(p, tr, "250 Ok");
	}
	return found;
}

/* Wait for the bounce until the deadline; true if it came. */
static bool
ndr_collect(int lfd, struct buf *tr, const char *token, int64_t deadline)
{
	struct ndr_peer	p;
	bool		found = false;

	while (!found && ndr_wait(lfd, POLLIN, deadline) == 1) {
		memset(&p, 0, sizeof(p));
		if ((p.fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK |
		    SOCK_CLOEXEC)) == -1)
			continue;
		p.deadline = deadline;
		probe_note(tr, "L: -- a connection to the listener");
		found = ndr_session(&p, tr, token);
		close(p.fd);
	}
	return found;
}

static int
ndr_send(struct probe_run *run, struct probe_finding *f, const char *from,
    const char *to, const char *token, unsigned *rcode)
{
	struct probe_conn	c;
	struct buf		msg;
	int			rc = -1;

	*rcode = 0;
	if (probe_conn_open(&c, run, &f->evidence) == -1 ||
	    probe_conn_ehlo(&c) == -1 ||
	    probe_cmd(&c, "MAIL FROM:<%s>", from) == -1 ||
	    c.r.code / 100 != 2)
		goto out;
	run->nrcpts++;
	if (probe_cmd(&c, "RCPT TO:<%s>", to) == -1)
		goto out;
	*rcode = c.r.code;
	rc = 0;
	if (c.r.code / 100 != 2 || probe_cmd(&c, "DATA") == -1 ||
	    c.r.code != 354)
		goto out;
	buf_init(&msg, 1024);
	buf_addf(&msg, "From: <%s>\r\nTo: <%s>\r\nSubject: mxgate probe "
	    "%s\r\n\r\nA test by mxgate probe: does this server bounce mail "
	    "for unknown people?\r\n.\r\n", from, to, token);
	if (probe_send_raw(&c, msg.data, msg.len, NULL) == 0 &&
	    probe_read_reply(&c, &c.r) == 0 && c.r.code / 100 == 2)
		rc = 1;
	buf_free(&msg);
out:
	probe_conn_close(&c);
	return rc;
}

void
probe_rcpt_ndr(struct probe_run *run, struct probe_finding *f)
{
	char		err[256], token[32], from[PROBE_ADDR_MAX];
	char		to[PROBE_ADDR_MAX];
	unsigned	rcode;
	int		lfd, rc;

	if (!run->o.intrusive || run->o.ndr_listen[0] == '\0') {
		probe_fact(f, "NDR check: not run (needs --intrusive, "
		    "--ndr-listen and --ndr-domain)");
		return;
	}
	if ((lfd = ndr_listen_open(run->o.ndr_listen, err, sizeof(err))) ==
	    -1) {
		probe_fact(f, "NDR check: %s", err);
		return;
	}
	probe_invent(run, to, sizeof(to));
	snprintf(token, sizeof(token), "ndr-%.10s", to + 6);
	snprintf(from, sizeof(from), "%s@%s", token, run->o.ndr_domain);
	rc = ndr_send(run, f, from, to, token, &rcode);
	if (rc == -1)
		probe_fact(f, "NDR check: could not send (%s)", "see evidence");
	else if (rc == 0)
		probe_fact(f, "NDR check: rejected at RCPT (%u): no message, "
		    "no bounce", rcode);
	else if (ndr_collect(lfd, &f->evidence, token, probe_now_ms() +
	    run->o.timeout_ms)) {
		probe_fact(f, "NDR check: accepted and BOUNCED to <%s>", from);
		probe_finding_set(f, PROBE_FAIL, PROBE_SEV_HIGH, "accepted, "
		    "then bounced to the (unproven) sender: a backscatter "
		    "source");
	} else {
		probe_fact(f, "NDR check: accepted, no bounce within %u ms",
		    run->o.timeout_ms);
		probe_finding_set(f, PROBE_FAIL, PROBE_SEV_MEDIUM, "accepted "
		    "and silently dropped: no bounce within %u ms (a "
		    "mistyped sender never learns)", run->o.timeout_ms);
	}
	close(lfd);
}
