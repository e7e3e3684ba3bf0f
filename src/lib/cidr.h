/*
 * cidr.h - IPv4/IPv6 networks: parse "ADDR[/LEN]" and match addresses.
 * Pure and bounded; knows nothing about mail.  IPv4-mapped IPv6 client
 * addresses (::ffff:a.b.c.d) match IPv4 networks.
 */
#ifndef MXGATE_CIDR_H
#define MXGATE_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

struct cidr {
	int	 family;	/* AF_INET or AF_INET6 */
	uint8_t	 addr[16];	/* network bytes, host bits cleared */
	unsigned prefix;	/* 0..32 or 0..128 */
};

struct cidr_list {
	struct cidr	*v;
	size_t		 n;
};

/* "127.0.0.2/32", "10.0.0.0/8", "::1", "2001:db8::/32"; 0 or -1. */
int	cidr_parse(const char *, size_t len, struct cidr *);
/* Comma-separated list, blanks around items allowed, empty string = empty
 * list.  0 or -1; on -1 *bad points at the offending item in s. */
int	cidr_list_parse(const char *s, struct cidr_list *, const char **bad);
void	cidr_list_free(struct cidr_list *);
bool	cidr_match(const struct cidr *, const struct sockaddr *);
bool	cidr_list_match(const struct cidr_list *, const struct sockaddr *);

#endif
