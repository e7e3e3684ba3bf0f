/*
 * dir_cli.c - `mxgate directory hash` and `mxgate directory lookup`.
 *   hash --new-key --key-file KEY: a new key (32 random bytes, 0600).
 *   hash [--keep-case] --key-file KEY [USERS]: the users file (or stdin)
 *     as HMAC-SHA256(key, canonical address) lines, sorted, on stdout.
 *   lookup [-c CONF] ADDR: the verdict, the back-end that gave it and
 *     the time taken.  Exit 0 valid, 1 unknown, 3 tempfail, 2 usage.
 * Owns: the commands.  Never: prints a key.
 * Untrusted: USERS (parsed as the file back-end parses it), ADDR.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "../conf/conf.h"
#include "../lib/log.h"
#include "dir.h"
#include "dir_cli.h"
#include "dir_file.h"
#include "dir_hashed.h"

#define DIR_CLI_USERS_MAX	((size_t)1 << 32)	/* stdin bound */

static void
dir_cli_usage(void)
{
	fprintf(stderr,
	    "usage: mxgate directory hash --new-key --key-file KEY\n"
	    "       mxgate directory hash [--keep-case] --key-file KEY "
	    "[USERS] > FILE\n"
	    "       mxgate directory lookup [-c CONF] ADDR\n");
}

static void
dir_cli_err(void *arg, const char *file, unsigned line, const char *msg)
{
	unsigned	*n = arg;

	(*n)++;
	if (line > 0)
		fprintf(stderr, "%s:%u: %s\n", file, line, msg);
	else
		fprintf(stderr, "%s: %s\n", file, msg);
}

static int
dir_cli_new_key(const char *path)
{
	uint8_t	k[DIR_HASHED_NEWKEY];
	int	fd;
	bool	ok;

	if (RAND_bytes(k, sizeof(k)) != 1) {
		fprintf(stderr, "mxgate directory: no random bytes\n");
		return 1;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1) {
		fprintf(stderr, "mxgate directory: cannot create %s: %s\n",
		    path, strerror(errno));
		OPENSSL_cleanse(k, sizeof(k));
		return 1;
	}
	ok = write(fd, k, sizeof(k)) == (ssize_t)sizeof(k) && fsync(fd) == 0;
	OPENSSL_cleanse(k, sizeof(k));
	if (close(fd) != 0 || !ok) {
		unlink(path);
		fprintf(stderr, "mxgate directory: cannot write %s\n", path);
		return 1;
	}
	return 0;
}

/* The digests of a users file, gathered to be sorted. */
struct dir_cli_macs {
	const uint8_t	*key;
	size_t		 keylen;
	uint8_t		(*v)[DIR_HASHED_MAC];
	size_t		 n, cap;
	bool		 failed;
};

static void
dir_cli_one(void *arg, const char *k, size_t len)
{
	struct dir_cli_macs	*m = arg;

	if (m->n == m->cap || dir_hashed_mac(m->key, m->keylen,
	    (const uint8_t *)k, len, m->v[m->n]) == -1) {
		m->failed = true;
		return;
	}
	m->n++;
}

static int
dir_cli_mac_cmp(const void *a, const void *b)
{
	return memcmp(a, b, DIR_HASHED_MAC);
}

static uint8_t *
dir_cli_slurp(FILE *f, size_t *len)
{
	uint8_t	*b = NULL, *nb;
	size_t	 cap = 0, n;

	*len = 0;
	for (;;) {
		if (*len == cap) {
			if (cap >= DIR_CLI_USERS_MAX ||
			    (nb = realloc(b, cap ? 2 * cap : 65536)) == NULL) {
				free(b);
				return NULL;
			}
			b = nb;
			cap = cap ? 2 * cap : 65536;
		}
		if ((n = fread(b + *len, 1, cap - *len, f)) == 0)
			break;
		*len += n;
	}
	if (ferror(f)) {
		free(b);
		return NULL;
	}
	return b;
}

static int
dir_cli_hash(const char *key_path, const char *users, bool keep_case)
{
	struct dir_cli_macs	 m = { 0 };
	struct dir_file		*f;
	uint8_t			 key[DIR_HASHED_KEY_MAX], *data;
	size_t			 keylen, len, i, j;
	unsigned		 nerr = 0;
	char			 err[512];
	FILE			*in = stdin;
	int			 rc = 1;

	if (dir_hashed_key_read(key_path, key, &keylen, err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "mxgate directory: %s\n", err);
		return 1;
	}
	if (users != NULL && (in = fopen(users, "r")) == NULL) {
		fprintf(stderr, "mxgate directory: %s: %s\n", users,
		    strerror(errno));
		goto out;
	}
	data = dir_cli_slurp(in, &len);
	if (in != stdin)
		fclose(in);
	if (data == NULL) {
		fprintf(stderr, "mxgate directory: cannot read %s\n",
		    users != NULL ? users : "stdin");
		goto out;
	}
	f = dir_file_load_mem(data, len, users != NULL ? users : "stdin",
	    keep_case, dir_cli_err, &nerr);
	OPENSSL_cleanse(data, len);
	free(data);
	if (f == NULL)
		goto out;
	m.key = key;
	m.keylen = keylen;
	m.cap = dir_file_count(f);
	if (m.cap > 0 && (m.v = calloc(m.cap, DIR_HASHED_MAC)) == NULL) {
		dir_file_free(f);
		fprintf(stderr, "mxgate directory: out of memory\n");
		goto out;
	}
	dir_file_each(f, dir_cli_one, &m);
	dir_file_free(f);
	if (m.failed) {
		fprintf(stderr, "mxgate directory: HMAC failed\n");
		goto out;
	}
	/* Sorted: the order of the lines tells nothing of the users file. */
	qsort(m.v, m.n, DIR_HASHED_MAC, dir_cli_mac_cmp);
	printf("# mxgate hashed directory: HMAC-SHA256 of each canonical "
	    "address, %s local parts\n", keep_case ? "case-kept" :
	    "lower-case");
	for (i = 0; i < m.n; i++) {
		for (j = 0; j < DIR_HASHED_MAC; j++)
			printf("%02x", m.v[i][j]);
		putchar('\n');
	}
	rc = fflush(stdout) == 0 ? 0 : 1;
out:
	free(m.v);
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}

static int
dir_cli_lookup(const char *conf_path, const char *addr)
{
	const struct domain_conf	*dc;
	struct config			*c;
	struct dir			*d;
	struct dir_query		 q;
	struct timespec			 t0, t1;
	enum dir_verdict		 v;
	const char			*at, *by = "none";
	unsigned			 nerr = 0;
	double				 ms;

	if ((at = strrchr(addr, '@')) == NULL || at == addr || at[1] == '\0') {
		fprintf(stderr, "mxgate directory lookup: expected "
		    "local@domain\n");
		return 2;
	}
	if ((c = conf_load(conf_path, dir_cli_err, &nerr)) == NULL)
		return 3;
	if ((dc = conf_domain(c, at + 1, strlen(at + 1))) == NULL) {
		printf("%s: not one of our domains (RCPT would be refused "
		    "as relaying)\n", log_esc(addr, strlen(addr), 320));
		conf_unref(c);
		return 1;
	}
	if ((d = dir_open(c, dir_cli_err, &nerr)) == NULL) {
		conf_unref(c);
		return 3;
	}
	if (!dir_settle(d, 3 * c->ldap_timeout_ms))
		fprintf(stderr, "mxgate directory lookup: LDAP not synced "
		    "within %u ms\n", 3 * c->ldap_timeout_ms);
	q = (struct dir_query){ .local = addr, .llen = (size_t)(at - addr),
	    .domain = at + 1, .dlen = strlen(at + 1), .delim = dc->delim };
	clock_gettime(CLOCK_MONOTONIC, &t0);
	v = dir_lookup_by(d, &q, 0, NULL, NULL, &by);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	if (v == DIR_PENDING)	/* no loop here to wait on */
		v = DIR_TEMPFAIL;
	printf("%s: %s (back-end %s, %.3f ms; directory %s, %zu "
	    "entries)\n", log_esc(addr, strlen(addr), 320),
	    dir_verdict_name(v), by, ms, dir_name(d), dir_count(d));
	dir_unref(d);
	conf_unref(c);
	return v == DIR_VALID ? 0 : v == DIR_UNKNOWN ? 1 : 3;
}

int
dir_cli_main(int argc, char **argv)
{
	const char	*key = NULL, *conf = NULL, *arg = NULL;
	bool		 new_key = false, keep_case = false;
	int		 i;

	if (argc < 1) {
		dir_cli_usage();
		return 2;
	}
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--key-file") == 0 && i + 1 < argc)
			key = argv[++i];
		else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			conf = argv[++i];
		else if (strcmp(argv[i], "--new-key") == 0)
			new_key = true;
		else if (strcmp(argv[i], "--keep-case") == 0)
			keep_case = true;
		else if (argv[i][0] != '-' && arg == NULL)
			arg = argv[i];
		else {
			dir_cli_usage();
			return 2;
		}
	}
	if (strcmp(argv[0], "hash") == 0 && key != NULL && conf == NULL) {
		if (new_key)
			return arg == NULL && !keep_case ?
			    dir_cli_new_key(key) : (dir_cli_usage(), 2);
		return dir_cli_hash(key, arg, keep_case);
	}
	if (strcmp(argv[0], "lookup") == 0 && arg != NULL && key == NULL &&
	    !new_key && !keep_case)
		return dir_cli_lookup(conf != NULL ? conf :
		    conf_default_path(), arg);
	dir_cli_usage();
	return 2;
}
