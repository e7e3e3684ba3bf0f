/*
 * ids.c - never-reused 64-bit ids (see ids.h).
 */
#include <stdatomic.h>
#include <stddef.h>
#include <time.h>

#include "ids.h"

static _Atomic uint64_t	id_last;

uint64_t
id_next(void)
{
	struct timespec	ts;
	uint64_t	now, last, next;

	clock_gettime(CLOCK_REALTIME, &ts);
	now = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	last = atomic_load(&id_last);
	do {
		next = now > last ? now : last + 1;
	} while (!atomic_compare_exchange_weak(&id_last, &last, next));
	return next;
}

void
id_format(uint64_t id, char out[ID_STRLEN + 1])
{
	static const char	hex[] = "0123456789ABCDEF";
	int			i;

	for (i = ID_STRLEN - 1; i >= 0; i--) {
		out[i] = hex[id & 15];
		id >>= 4;
	}
	out[ID_STRLEN] = '\0';
}

int
id_parse(const char *s, uint64_t *out)
{
	uint64_t	v = 0;
	size_t		i;

	for (i = 0; i < ID_STRLEN; i++) {
		char	c = s[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (uint64_t)(c - '0');
		else if (c >= 'A' && c <= 'F')
			v |= (uint64_t)(c - 'A' + 10);
		else
			return -1;
	}
	if (s[ID_STRLEN] != '\0')
		return -1;
	*out = v;
	return 0;
}
