/*
 * test_sdnotify.c - the sd_notify datagram: sent to a path and to an
 * abstract name ('@'), RELOADING=1 with MONOTONIC_USEC, nothing without
 * NOTIFY_SOCKET, errors for a bad name or a socket nobody holds.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/sdnotify.h"

/* A bound datagram socket; name is a path, or "@..." for abstract. */
static int
listener(const char *name)
{
	struct sockaddr_un	sun;
	socklen_t		len;
	int			fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, name, strlen(name));
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
	    strlen(name) + (name[0] == '/'));
	if (name[0] == '@')
		sun.sun_path[0] = '\0';
	assert_true((fd = socket(AF_UNIX, SOCK_DGRAM, 0)) >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, len), 0);
	return fd;
}

static void
receive(int fd, char *buf, size_t len)
{
	ssize_t	n = recv(fd, buf, len - 1, MSG_DONTWAIT);

	assert_true(n > 0);
	buf[n] = '\0';
}

static void
test_sdnotify_path_and_abstract(void **state)
{
	char	path[64], name[64], buf[256];
	int	fd;

	(void)state;
	snprintf(path, sizeof(path), "/tmp/sdnotify-test.%ld", (long)getpid());
	(void)unlink(path);
	fd = listener(path);
	assert_int_equal(setenv("NOTIFY_SOCKET", path, 1), 0);
	assert_int_equal(sdnotify("READY=1\nSTATUS=serving"), 1);
	receive(fd, buf, sizeof(buf));
	assert_string_equal(buf, "READY=1\nSTATUS=serving");
	assert_int_equal(sdnotify("RELOADING=1"), 1);
	receive(fd, buf, sizeof(buf));
	assert_memory_equal(buf, "RELOADING=1\nMONOTONIC_USEC=", 27);
	assert_true(strspn(buf + 27, "0123456789") == strlen(buf + 27) &&
	    strlen(buf + 27) > 0);
	close(fd);
	unlink(path);
	/* nobody holds the path now */
	assert_int_equal(sdnotify("STOPPING=1"), -1);

	snprintf(name, sizeof(name), "@sdnotify-test-%ld", (long)getpid());
	fd = listener(name);
	assert_int_equal(setenv("NOTIFY_SOCKET", name, 1), 0);
	assert_int_equal(sdnotify("STOPPING=1"), 1);
	receive(fd, buf, sizeof(buf));
	assert_string_equal(buf, "STOPPING=1");
	close(fd);
}

static void
test_sdnotify_no_socket_or_bad_name(void **state)
{
	char	longname[200];

	(void)state;
	assert_int_equal(unsetenv("NOTIFY_SOCKET"), 0);
	assert_int_equal(sdnotify("READY=1"), 0);
	assert_int_equal(setenv("NOTIFY_SOCKET", "", 1), 0);
	assert_int_equal(sdnotify("READY=1"), 0);
	assert_int_equal(setenv("NOTIFY_SOCKET", "relative.sock", 1), 0);
	errno = 0;
	assert_int_equal(sdnotify("READY=1"), -1);
	assert_int_equal(errno, EINVAL);
	memset(longname, 'a', sizeof(longname) - 1);
	longname[0] = '/';
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(setenv("NOTIFY_SOCKET", longname, 1), 0);
	assert_int_equal(sdnotify("READY=1"), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(unsetenv("NOTIFY_SOCKET"), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sdnotify_path_and_abstract),
		cmocka_unit_test(test_sdnotify_no_socket_or_bad_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
