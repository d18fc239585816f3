/* The deny list (--deny-file): users, IP addresses and CIDR blocks refused with 403
 * `denied`. One entry a line; blank lines and `#` comments (a whole line, or after the
 * entry and a space) are skipped. An entry that parses as an address or a block is one;
 * one that looks like a mistyped address ("10.0.0.0/33") is an error; anything else is
 * a user id. `ip:` or `user:` before the entry says which when it could be either (a
 * user named 10.0.0.1: `user:10.0.0.1`).
 *
 * A list is immutable once parsed, and shared by reference count: the API holds the
 * current one, each worker the one it uses (api.c hands a new list to the workers after
 * a reload, and the last holder frees the old one). Lookups take no lock. */
#ifndef SK_API_DENY_H
#define SK_API_DENY_H

#include <stdbool.h>
#include <stddef.h>

#include "util/ip.h"

#define SK_API_DENY_FILE_MAX (64 << 20)

typedef struct sk_api_deny sk_api_deny_t;

/** Parses a list's text (`name` labels errors). Returns the list (one reference), or
 *  NULL with "NAME line N: what is wrong" in err. */
sk_api_deny_t *sk_api_deny_parse(const char *text, size_t len, const char *name, char *err, size_t errlen);
/** Reads and parses a file (at most SK_API_DENY_FILE_MAX bytes). NULL with err on failure. */
sk_api_deny_t *sk_api_deny_load(const char *path, char *err, size_t errlen);
/** Takes another reference (any thread); returns d. */
sk_api_deny_t *sk_api_deny_ref(sk_api_deny_t *d);
/** Drops a reference (any thread); the last frees. NULL is fine. */
void sk_api_deny_unref(sk_api_deny_t *d);

bool sk_api_deny_ip(const sk_api_deny_t *d, const sk_ip_t *ip);
bool sk_api_deny_user(const sk_api_deny_t *d, const char *user, size_t ul);
/** How many entries of each kind (blocks count as addresses). */
void sk_api_deny_counts(const sk_api_deny_t *d, size_t *ips, size_t *users);

#endif
