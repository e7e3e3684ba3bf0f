/*
 * passwd_cli.c - `mxgate passwd USER`: read a password from standard
 * input (twice, without echo, from a terminal; one line from a pipe or a
 * file) and print the passwd_file line "USER:HASH" to add.
 * Never: writes the password file, or the password anywhere.
 * Untrusted: the password typed (bounded, wiped after use).
 */
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "passwd.h"

/* One line of at most PASSWD_PASS_MAX bytes into pw; 0, or -1 said. */
static int
passwd_cli_read(FILE *in, const char *prompt, bool tty,
    char pw[PASSWD_PASS_MAX + 2])
{
	struct termios	old, quiet;
	size_t		len;
	char		*ok;

	/*
	 * Echo goes off before the prompt shows: what is typed once the
	 * prompt is visible is never echoed, and what was typed ahead of it
	 * is dropped (TCSAFLUSH), as getpass(3) does.  Echo comes back at
	 * once (TCSANOW), without dropping what follows.
	 */
	if (tty) {
		if (tcgetattr(fileno(in), &old) == -1) {
			fprintf(stderr, "mxgate passwd: cannot read the "
			    "terminal's settings\n");
			return -1;
		}
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		quiet.c_lflag |= ECHONL;
		if (tcsetattr(fileno(in), TCSAFLUSH, &quiet) == -1) {
			fprintf(stderr, "mxgate passwd: cannot turn echo "
			    "off\n");
			return -1;
		}
		fputs(prompt, stderr);
		fflush(stderr);
	}
	ok = fgets(pw, PASSWD_PASS_MAX + 2, in);
	if (tty)
		(void)tcsetattr(fileno(in), TCSANOW, &old);
	if (ok == NULL) {
		fprintf(stderr, "mxgate passwd: no password given\n");
		return -1;
	}
	len = strcspn(pw, "\n");
	if (pw[len] != '\n' && !feof(in)) {
		fprintf(stderr, "mxgate passwd: longer than %d bytes\n",
		    PASSWD_PASS_MAX);
		return -1;
	}
	if (len > 0 && pw[len - 1] == '\r')
		len--;
	pw[len] = '\0';
	if (len == 0 || strlen(pw) != len) {
		fprintf(stderr, "mxgate passwd: empty password or NUL byte\n");
		return -1;
	}
	return 0;
}

int
passwd_cli_main(const char *user)
{
	char	pw[PASSWD_PASS_MAX + 2], again[PASSWD_PASS_MAX + 2];
	char	hash[PASSWD_HASH_MAX + 1];
	bool	tty = isatty(STDIN_FILENO);
	int	rc = 1;

	if (!passwd_user_valid(user, strlen(user))) {
		fprintf(stderr, "mxgate passwd: bad user name (1 to %d of "
		    "letters, digits and \"._%%+-@\")\n", PASSWD_USER_MAX);
		return 2;
	}
	if (passwd_cli_read(stdin, "Password: ", tty, pw) == -1)
		goto out;
	if (tty && (passwd_cli_read(stdin, "Again: ", tty, again) == -1 ||
	    strcmp(pw, again) != 0)) {
		fprintf(stderr, "mxgate passwd: the passwords differ\n");
		goto out;
	}
	if (passwd_hash(pw, hash, sizeof(hash)) == -1) {
		fprintf(stderr, "mxgate passwd: crypt(3) failed\n");
		goto out;
	}
	printf("%s:%s\n", user, hash);
	rc = fflush(stdout) == 0 ? 0 : 1;
out:
	explicit_bzero(pw, sizeof(pw));
	explicit_bzero(again, sizeof(again));
	return rc;
}
