/*
 * fuzz_redis_url.c - redis_url_parse on arbitrary bytes (the shared_state
 * value): never reads past len, every host NUL-terminated and within its
 * bounds, ports non-zero.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/redis_url.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct redis_url	 u;
	const char		*why;
	char			*copy;
	size_t			 i;

	/* an exact-size copy, so reading past len is caught */
	if ((copy = malloc(len > 0 ? len : 1)) == NULL)
		return 0;
	memcpy(copy, data, len);
	if (redis_url_parse(copy, len, &u, &why) == 0) {
		if (u.nhosts == 0 || u.nhosts > REDIS_URL_HOSTS_MAX)
			abort();
		for (i = 0; i < u.nhosts; i++)
			if (strnlen(u.hosts[i].host, REDIS_URL_HOST_MAX + 1) >
			    REDIS_URL_HOST_MAX || u.hosts[i].port == 0)
				abort();
		if (u.db > REDIS_URL_DB_MAX)
			abort();
	} else if (why == NULL || why[0] == '\0')
		abort();
	free(copy);
	return 0;
}
