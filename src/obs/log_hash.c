/*
 * log_hash.c - the key and the HMAC for hashed recipients (log_hash.h).
 * Owns: the key file in the spool.  The key is read once at start,
 * before any other thread runs, and never changes after.
 * Never: logs the key.  RFC 2104 (HMAC), FIPS 180-4 (SHA-256).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "log_hash.h"

static unsigned char	obs_key[OBS_HASH_KEY_MAX];	/* set at start */
static size_t		obs_keylen;

static int
obs_hash_read(const char *path, char *err, size_t errlen)
{
	ssize_t	n;
	int	fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "cannot open %s: %s", path,
		    strerror(errno));
		return -1;
	}
	n = read(fd, obs_key, sizeof(obs_key));
	close(fd);
	if (n < OBS_HASH_KEY_MIN) {
		snprintf(err, errlen, "%s: %s", path, n < 0 ?
		    strerror(errno) : "a hash key needs at least 16 bytes");
		return -1;
	}
	obs_keylen = (size_t)n;
	return 0;
}

/* A new key: O_EXCL, so two starts never write two keys. */
static int
obs_hash_make(const char *path, char *err, size_t errlen)
{
	unsigned char	k[32];
	int		fd;
	bool		ok;

	if (RAND_bytes(k, sizeof(k)) != 1) {
		snprintf(err, errlen, "no random bytes for a hash key");
		return -1;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1)
		return errno == EEXIST ? 0 : (snprintf(err, errlen,
		    "cannot create %s: %s", path, strerror(errno)), -1);
	ok = write(fd, k, sizeof(k)) == (ssize_t)sizeof(k) &&
	    fsync(fd) == 0;
	close(fd);
	if (!ok) {
		unlink(path);
		snprintf(err, errlen, "cannot write %s", path);
		return -1;
	}
	return 0;
}

int
obs_hash_init(const char *file, const char *spool, char *err,
    size_t errlen)
{
	char	path[4096];

	if (file != NULL)
		return obs_hash_read(file, err, errlen);
	if (snprintf(path, sizeof(path), "%s/log_hash.key", spool) >=
	    (int)sizeof(path)) {
		snprintf(err, errlen, "spool path too long");
		return -1;
	}
	if (obs_hash_make(path, err, errlen) == -1)
		return -1;
	return obs_hash_read(path, err, errlen);
}

const char *
obs_hash_rcpt(const char *s, size_t n, char out[OBS_HASH_TEXT])
{
	static const char	hex[] = "0123456789abcdef";
	unsigned char		md[EVP_MAX_MD_SIZE];
	unsigned int		mdlen = 0;
	size_t			i;

	if (obs_keylen == 0 || HMAC(EVP_sha256(), obs_key, (int)obs_keylen,
	    (const unsigned char *)s, n, md, &mdlen) == NULL || mdlen < 16)
		return "-";
	memcpy(out, "hmac:", 5);
	for (i = 0; i < 16; i++) {
		out[5 + 2 * i] = hex[md[i] >> 4];
		out[6 + 2 * i] = hex[md[i] & 15];
	}
	out[OBS_HASH_TEXT - 1] = '\0';
	return out;
}
