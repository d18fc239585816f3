/* Blocking HTTP/1.1 requests over one keep-alive connection, for the load generator's
 * set-up and audit steps (create the sale, read it, page through the orders, ask for a
 * user's orders). Not for the flood: see client.h.
 *
 * Ownership: sk_loadgen_fetch_t borrows its target, which must outlive it. A response
 * body returned by sk_loadgen_fetch() belongs to the fetcher and is valid until its next
 * call (or sk_loadgen_fetch_close()). */
#ifndef SK_LOADGEN_FETCH_H
#define SK_LOADGEN_FETCH_H

#include <stddef.h>
#include <stdint.h>

#include "loadgen/client.h"

typedef struct {
    const sk_loadgen_target_t *target;
    const char *token; /* Authorization: Bearer token, or NULL */
    int timeout_ms;
    uint32_t bind_ipv4; /* source address (network order) for IPv4 targets, 0: any */
    int fd;
    char *buf;
    size_t buf_len, buf_cap;
    char *body; /* NUL-terminated copy of the last body */
    size_t body_len;
} sk_loadgen_fetch_t;

/** Prepares a fetcher (no connection is made yet). */
void sk_loadgen_fetch_init(sk_loadgen_fetch_t *f, const sk_loadgen_target_t *t, const char *token, int timeout_ms);
/** Closes the connection and frees the buffers. */
void sk_loadgen_fetch_close(sk_loadgen_fetch_t *f);

/** Percent-encodes one path segment (RFC 3986 unreserved characters stay). The caller
 *  frees the result. */
char *sk_loadgen_path_segment(const char *s);

/** Sends `method path` (the target's base path is prefixed) with an optional JSON body
 *  and waits for the answer. Returns the HTTP status (> 0), or -errno when no answer
 *  came (-ETIMEDOUT, -ECONNREFUSED, -EPROTO for a malformed answer). A connection the
 *  server closed while idle is reopened once. The body is in f->body / f->body_len. */
int sk_loadgen_fetch(sk_loadgen_fetch_t *f, const char *method, const char *path, const char *json_body);

#endif
