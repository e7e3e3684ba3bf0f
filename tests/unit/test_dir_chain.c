/*
 * test_dir_chain.c - the chain rule (first VALID wins; UNKNOWN only when
 * every back-end says so; any TEMPFAIL with no VALID is TEMPFAIL) and the
 * hashed back-end: its line parser, its table, its key file's mode.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "dir/dir_chain.h"
#include "dir/dir_hashed.h"

/* Fold verdicts the way dir_lookup_by asks a chain; *asked: how many. */
static enum dir_verdict
fold(const enum dir_verdict *v, size_t n, size_t *asked)
{
	struct dir_chain_acc	a = { false, false };
	size_t			i;

	for (i = 0; i < n; i++)
		if (dir_chain_take(&a, v[i])) {
			i++;
			break;
		}
	*asked = i;
	return dir_chain_verdict(&a);
}

static void
test_chain_rule(void **state)
{
	static const struct {
		enum dir_verdict	v[3];
		size_t			n;
		enum dir_verdict	want;
		size_t			asked;
	} t[] = {
		{ { DIR_VALID }, 1, DIR_VALID, 1 },
		{ { DIR_UNKNOWN }, 1, DIR_UNKNOWN, 1 },
		{ { DIR_TEMPFAIL }, 1, DIR_TEMPFAIL, 1 },
		{ { DIR_UNKNOWN, DIR_UNKNOWN, DIR_UNKNOWN }, 3, DIR_UNKNOWN, 3 },
		{ { DIR_UNKNOWN, DIR_VALID, DIR_TEMPFAIL }, 3, DIR_VALID, 2 },
		{ { DIR_TEMPFAIL, DIR_VALID, DIR_UNKNOWN }, 3, DIR_VALID, 2 },
		{ { DIR_TEMPFAIL, DIR_UNKNOWN, DIR_UNKNOWN }, 3, DIR_TEMPFAIL, 3 },
		{ { DIR_UNKNOWN, DIR_UNKNOWN, DIR_TEMPFAIL }, 3, DIR_TEMPFAIL, 3 },
		{ { DIR_VALID, DIR_TEMPFAIL }, 2, DIR_VALID, 1 },
		/* a back-end's bug never becomes UNKNOWN (550) */
		{ { DIR_PENDING, DIR_UNKNOWN }, 2, DIR_TEMPFAIL, 2 },
		{ { (enum dir_verdict)99, DIR_UNKNOWN }, 2, DIR_TEMPFAIL, 2 },
		{ { DIR_PENDING, DIR_VALID }, 2, DIR_VALID, 2 },
	};
	size_t	i, asked;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		assert_int_equal(fold(t[i].v, t[i].n, &asked), t[i].want);
		assert_int_equal(asked, t[i].asked);
	}
}

static void
test_hashed_parse(void **state)
{
	static const char	good[] =
	    "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
	uint8_t			mac[DIR_HASHED_MAC];
	const char		*why;
	char			line[400];
	bool			empty;

	(void)state;
	assert_int_equal(dir_hashed_parse_line((const uint8_t *)good,
	    strlen(good), &empty, mac, &why), PARSE_OK);
	assert_false(empty);
	assert_int_equal(mac[0], 0x00);
	assert_int_equal(mac[1], 0x11);
	assert_int_equal(mac[31], 0xff);
	snprintf(line, sizeof(line), "  %s \r", good);
	assert_int_equal(dir_hashed_parse_line((const uint8_t *)line,
	    strlen(line), &empty, mac, &why), PARSE_OK);
	assert_int_equal(dir_hashed_parse_line((const uint8_t *)"# x", 3,
	    &empty, mac, &why), PARSE_OK);
	assert_true(empty);
	assert_int_equal(dir_hashed_parse_line((const uint8_t *)"", 0,
	    &empty, mac, &why), PARSE_OK);
	assert_true(empty);
	/* a plaintext address, one digit short, one too many, a non-digit */
	assert_int_equal(dir_hashed_parse_line((const uint8_t *)
	    "alice@example.test", 18, &empty, mac, &why), PARSE_BAD);
	assert_non_null(why);
	assert_int_equal(dir_hashed_parse_line((const uint8_t *)good, 63,
	    &empty, mac, &why), PARSE_BAD);
	snprintf(line, sizeof(line), "%s0", good);
	assert_int_equal(dir_hashed_parse_line((const uint8_t *)line,
	    strlen(line), &empty, mac, &why), PARSE_BAD);
	snprintf(line, sizeof(line), "%.63sg", good);
	assert_int_equal(dir_hashed_parse_line((const uint8_t *)line,
	    strlen(line), &empty, mac, &why), PARSE_BAD);
	memset(line, 'a', sizeof(line));
	assert_int_equal(dir_hashed_parse_line((const uint8_t *)line,
	    DIR_HASHED_LINE_MAX + 1, &empty, mac, &why), PARSE_TOOLONG);
}

static void
count_err(void *arg, const char *file, unsigned line, const char *msg)
{
	(void)file;
	(void)msg;
	((unsigned *)arg)[0]++;
	((unsigned *)arg)[1] = line;
}

static void
hexline(char *out, const uint8_t *key, size_t keylen, const char *addr)
{
	uint8_t	mac[DIR_HASHED_MAC];
	size_t	i;

	assert_int_equal(dir_hashed_mac(key, keylen, (const uint8_t *)addr,
	    strlen(addr), mac), 0);
	for (i = 0; i < DIR_HASHED_MAC; i++)
		snprintf(out + 2 * i, 3, "%02x", mac[i]);
	out[DIR_HASHED_HEX] = '\n';
	out[DIR_HASHED_HEX + 1] = '\0';
}

static void
add(char *text, size_t size, const char *s)
{
	size_t	n = strlen(text);

	assert_true(n + strlen(s) < size);
	snprintf(text + n, size - n, "%s", s);
}

static void
test_hashed_table(void **state)
{
	static const uint8_t	key[16] = "0123456789abcdef";
	static const uint8_t	other[16] = "fedcba9876543210";
	struct dir_hashed	*h;
	char			 text[1024] = "# comment\n\n", l[80];
	unsigned		 errs[2] = { 0, 0 };

	(void)state;
	hexline(l, key, sizeof(key), "alice@example.test");
	add(text, sizeof(text), l);
	hexline(l, key, sizeof(key), "bob@example.test");
	add(text, sizeof(text), l);
	add(text, sizeof(text), l);	/* twice: counted once */
	h = dir_hashed_load_mem(text, strlen(text), "t", key, sizeof(key),
	    count_err, errs);
	assert_non_null(h);
	assert_int_equal(errs[0], 0);
	assert_int_equal(dir_hashed_count(h), 2);
	assert_true(dir_hashed_has(h, (const uint8_t *)"alice@example.test",
	    18));
	assert_true(dir_hashed_has(h, (const uint8_t *)"bob@example.test",
	    16));
	assert_false(dir_hashed_has(h, (const uint8_t *)"carol@example.test",
	    18));
	assert_false(dir_hashed_has(h, (const uint8_t *)"Alice@example.test",
	    18));
	assert_false(dir_hashed_has(h, (const uint8_t *)"", 0));
	dir_hashed_free(h);
	/* the same file under another key knows no one */
	h = dir_hashed_load_mem(text, strlen(text), "t", other, sizeof(other),
	    count_err, errs);
	assert_non_null(h);
	assert_false(dir_hashed_has(h, (const uint8_t *)"alice@example.test",
	    18));
	dir_hashed_free(h);
	/* one bad line fails the load and names its line */
	add(text, sizeof(text), "carol@example.test\n");
	assert_null(dir_hashed_load_mem(text, strlen(text), "t", key,
	    sizeof(key), count_err, errs));
	assert_int_equal(errs[0], 1);
	assert_int_equal(errs[1], 6);
	/* a short key is refused */
	assert_null(dir_hashed_load_mem("", 0, "t", key, 15, count_err, errs));
}

static void
test_hashed_key_mode(void **state)
{
	char	path[] = "/tmp/test_dir_chain_keyXXXXXX", err[512];
	uint8_t	key[DIR_HASHED_KEY_MAX];
	size_t	keylen;
	int	fd;

	(void)state;
	assert_true((fd = mkstemp(path)) >= 0);
	assert_int_equal(write(fd, "0123456789abcdef!", 17), 17);
	close(fd);
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(dir_hashed_key_read(path, key, &keylen, err,
	    sizeof(err)), 0);
	assert_int_equal(keylen, 17);
	assert_memory_equal(key, "0123456789abcdef!", 17);
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(dir_hashed_key_read(path, key, &keylen, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "mode 0640"));
	assert_int_equal(chmod(path, 0604), 0);
	assert_int_equal(dir_hashed_key_read(path, key, &keylen, err,
	    sizeof(err)), -1);
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(truncate(path, 15), 0);
	assert_int_equal(dir_hashed_key_read(path, key, &keylen, err,
	    sizeof(err)), -1);
	unlink(path);
}

int
main(void)
{
	const struct CMUnitTest	tests[] = {
		cmocka_unit_test(test_chain_rule),
		cmocka_unit_test(test_hashed_parse),
		cmocka_unit_test(test_hashed_table),
		cmocka_unit_test(test_hashed_key_mode),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
