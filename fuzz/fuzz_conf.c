/*
 * fuzz_conf.c - libFuzzer target for conf_load_mem() over arbitrary bytes.
 * Besides crashes and leaks (ASan) it checks the loader's promises: a
 * NULL result always comes with an error, a config never does, every
 * error names a line of the input, and a loaded config is consistent;
 * its `mxgate config` print-out loads again to a config that differs in
 * no key (conf_diff), and a config never differs from itself.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

struct fuzz_conf_seen {
	size_t		 nerr;
	unsigned	 maxline;	/* lines in the input */
};

static void
fuzz_conf_err(void *arg, const char *file, unsigned line, const char *msg)
{
	struct fuzz_conf_seen	*s = arg;

	if (strcmp(file, "fuzz.conf") != 0 || *msg == '\0' ||
	    line > s->maxline)
		abort();
	s->nerr++;
}

static void
fuzz_conf_check(struct config *cfg)
{
	const struct domain_conf	*d;
	size_t				 i;

	if (cfg->ndomains == 0 || cfg->nlisten == 0 ||
	    cfg->spool[0] != '/' || cfg->directory.path[0] != '/' ||
	    cfg->max_recipients < 1 || cfg->max_recipients > 100000 ||
	    strlen(cfg->dflt.delim) > CONF_DELIM_MAX)
		abort();
	for (i = 0; i < cfg->ndomains; i++) {
		d = conf_domain(cfg, cfg->domains[i].name,
		    strlen(cfg->domains[i].name));
		if (d != &cfg->domains[i] || d->hop.path[0] != '/')
			abort();
	}
	for (i = 0; i < cfg->nlisten; i++)
		if (cfg->listen[i].text == NULL || cfg->listen[i].sslen == 0)
			abort();
}

static void
fuzz_conf_diff_fn(void *arg, const char *key, const char *domain)
{
	(void)key;
	(void)domain;
	(*(size_t *)arg)++;
}

/* What `mxgate config` prints is a config file meaning the same. */
static void
fuzz_conf_roundtrip(const struct config *cfg)
{
	struct config	*again;
	char		*out = NULL;
	size_t		 len = 0, ndiff = 0;
	FILE		*fp;

	conf_diff(cfg, cfg, fuzz_conf_diff_fn, &ndiff);
	if (ndiff != 0 || (fp = open_memstream(&out, &len)) == NULL)
		abort();
	conf_print(fp, cfg, false, NULL, 0);
	fclose(fp);
	again = conf_load_mem(out, len, "fuzz.conf", "/etc/mxgate", NULL, NULL);
	if (again == NULL)
		abort();
	conf_diff(cfg, again, fuzz_conf_diff_fn, &ndiff);
	if (ndiff != 0)
		abort();
	conf_unref(again);
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_conf_seen	 seen = { 0, 1 };
	struct config		*cfg;
	size_t			 i;

	for (i = 0; i < size; i++)
		seen.maxline += data[i] == '\n';
	cfg = conf_load_mem((const char *)data, size, "fuzz.conf",
	    "/etc/mxgate", fuzz_conf_err, &seen);
	if ((cfg == NULL) != (seen.nerr > 0))
		abort();
	if (cfg != NULL) {
		fuzz_conf_check(conf_ref(cfg));
		fuzz_conf_roundtrip(cfg);
		conf_unref(cfg);
		conf_unref(cfg);
	}
	return 0;
}
