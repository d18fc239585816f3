/* A small route table: "/api/v1/sales/{id}/purchase"-style patterns matched segment by
 * segment. Captured parameters point into the request path (borrowed). */
#ifndef SK_HTTP_ROUTER_H
#define SK_HTTP_ROUTER_H

#include <stddef.h>

#include "http/parser.h"
#include "http/server.h"

#define SK_ROUTE_MAX_PARAMS 4

typedef struct {
    const char *p;
    size_t len;
} sk_str_t;

typedef void (*sk_route_fn)(sk_http_exchange_t *x, const sk_str_t *params, void *arg);

typedef struct {
    sk_http_method_t method; /* GET routes also answer HEAD */
    const char *pattern; /* segments; "{name}" captures one non-empty segment, a final "*" the rest */
    sk_route_fn fn;
    const char *name; /* label for metrics */
} sk_route_t;

typedef enum { SK_ROUTE_FOUND = 0, SK_ROUTE_NOT_FOUND, SK_ROUTE_BAD_METHOD } sk_route_result_t;

/** Finds the route for method and path. On SK_ROUTE_FOUND, *index and params are set; on
 *  SK_ROUTE_BAD_METHOD, `allow` receives the allowed methods ("GET, HEAD, POST"). */
sk_route_result_t sk_route_match(const sk_route_t *routes, size_t n, sk_http_method_t method, const char *path,
                                 size_t path_len, size_t *index, sk_str_t *params, char *allow, size_t allow_size);

/** A route table compiled once into runs of literal bytes and parameters, matched with
 *  a few word compares instead of a walk over every byte of the pattern. Every request
 *  is routed (the sold-out answer's included), so this is what servers use. Read-only
 *  once made: any thread may match with it. It borrows `routes`, which must outlive it. */
typedef struct sk_router sk_router_t;
sk_router_t *sk_router_new(const sk_route_t *routes, size_t n);
void sk_router_free(sk_router_t *r);
/** sk_route_match over the router's table: the same answers, faster. */
sk_route_result_t sk_router_match(const sk_router_t *r, sk_http_method_t method, const char *path, size_t path_len,
                                  size_t *index, sk_str_t *params, char *allow, size_t allow_size);

#endif
