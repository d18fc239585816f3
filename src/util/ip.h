/* IP addresses and CIDR blocks, IPv4 and IPv6, for trusted proxies, deny lists and the
 * client's address. An IPv4-mapped IPv6 address (::ffff:a.b.c.d, what a socket bound to
 * [::] reports for an IPv4 client) is the IPv4 address: one client, one key. */
#ifndef SK_UTIL_IP_H
#define SK_UTIL_IP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define SK_IP_TEXT_MAX 46 /* INET6_ADDRSTRLEN */

typedef struct {
    uint8_t family; /* 4 or 6; 0: unknown (a Unix socket, say) */
    uint8_t a[16]; /* IPv4 in a[0..3], the rest zero */
} sk_ip_t;

typedef struct {
    sk_ip_t ip; /* host bits zero */
    uint8_t bits; /* prefix length: 0-32 or 0-128 */
} sk_cidr_t;

/** Parses an IPv4 or IPv6 address (n bytes, no NUL needed). Returns 0 or -1. */
int sk_ip_parse(const char *s, size_t n, sk_ip_t *out);
/** The address of a socket address (family 0 for anything but IPv4 and IPv6). */
void sk_ip_from_sockaddr(const struct sockaddr *sa, sk_ip_t *out);
/** Writes the address as text (NUL-terminated, at most SK_IP_TEXT_MAX bytes); "-" when
 *  unknown. Returns the length. */
size_t sk_ip_format(const sk_ip_t *ip, char *out);
/** Zeroes every bit after the first `bits`. */
void sk_ip_mask(sk_ip_t *ip, unsigned bits);
bool sk_ip_eq(const sk_ip_t *a, const sk_ip_t *b);
/** True for 127.0.0.0/8 and ::1. */
bool sk_ip_is_loopback(const sk_ip_t *ip);

/** Parses "ADDRESS/BITS" or a bare address (a block of one). Host bits set after the
 *  prefix are cleared (10.1.2.3/8 is 10.0.0.0/8). Returns 0 or -1. */
int sk_cidr_parse(const char *s, size_t n, sk_cidr_t *out);
bool sk_cidr_contains(const sk_cidr_t *c, const sk_ip_t *ip);
/** True when any of the n blocks holds ip. */
bool sk_cidr_list_contains(const sk_cidr_t *list, size_t n, const sk_ip_t *ip);

#endif
