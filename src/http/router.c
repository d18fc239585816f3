#include "http/router.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/common.h"

/* Matches one pattern against the path; fills params. One pass over both strings: this
 * runs for every request, the sold-out answer's included. */
static bool match(const char *pat, const char *path, size_t len, sk_str_t *params)
{
    size_t np = 0, i = 0;
    const char *p = pat;
    while (*p) {
        if (*p != '/' || i >= len || path[i] != '/')
            return false;
        p++;
        i++;
        if (p[0] == '*' && p[1] == '\0') {
            params[np].p = path + i;
            params[np].len = len - i;
            return true;
        }
        if (p[0] == '{' && p[1] != '\0' && p[1] != '/') {
            /* A parameter: one non-empty segment of the path. */
            size_t from = i;
            while (i < len && path[i] != '/')
                i++;
            if (i == from || np == SK_ROUTE_MAX_PARAMS)
                return false;
            params[np].p = path + from;
            params[np].len = i - from;
            np++;
            while (*p && *p != '/')
                p++;
        } else {
            /* A literal segment: the path's segment must be the same bytes. */
            while (*p && *p != '/') {
                if (i >= len || path[i] != *p)
                    return false;
                p++;
                i++;
            }
            if (i < len && path[i] != '/')
                return false;
        }
    }
    return i == len;
}

static const char *method_name(sk_http_method_t m)
{
    switch (m) {
    case SK_HTTP_GET:
        return "GET, HEAD";
    case SK_HTTP_POST:
        return "POST";
    case SK_HTTP_PUT:
        return "PUT";
    case SK_HTTP_DELETE:
        return "DELETE";
    case SK_HTTP_PATCH:
        return "PATCH";
    case SK_HTTP_OPTIONS:
        return "OPTIONS";
    default:
        return NULL;
    }
}

/* Adds a route's method to the Allow list of a 405 (once each). */
static void allow_add(char *allow, size_t allow_size, size_t *al, sk_http_method_t m)
{
    const char *name = method_name(m);
    if (name && allow_size && !strstr(allow, name)) {
        int w = snprintf(allow + *al, allow_size - *al, "%s%s", *al ? ", " : "", name);
        if (w > 0 && (size_t)w < allow_size - *al)
            *al += (size_t)w;
    }
}

sk_route_result_t sk_route_match(const sk_route_t *routes, size_t n, sk_http_method_t method, const char *path,
                                 size_t path_len, size_t *index, sk_str_t *params, char *allow, size_t allow_size)
{
    sk_http_method_t m = method == SK_HTTP_HEAD ? SK_HTTP_GET : method;
    bool path_seen = false;
    size_t al = 0;
    if (allow_size)
        allow[0] = '\0';
    for (size_t r = 0; r < n; r++) {
        /* params may be written by a route that does not match in the end: only a found
         * route's params are promised. */
        if (!match(routes[r].pattern, path, path_len, params))
            continue;
        if (routes[r].method == m) {
            *index = r;
            return SK_ROUTE_FOUND;
        }
        if (strcmp(routes[r].pattern, "/*") == 0)
            continue; /* a catch-all does not make every path "known" for 405 */
        path_seen = true;
        allow_add(allow, allow_size, &al, routes[r].method);
    }
    return path_seen ? SK_ROUTE_BAD_METHOD : SK_ROUTE_NOT_FOUND;
}

/* ---- the compiled table ------------------------------------------------------------- */

/* A pattern as pieces: a run of literal bytes (slashes included), a parameter (one
 * non-empty segment), or the rest of the path (a final "*"). "/api/v1/sales/{id}/purchase"
 * is the literal "/api/v1/sales/", a parameter, and the literal "/purchase". */
enum { PIECE_LIT, PIECE_PARAM, PIECE_REST };

typedef struct {
    uint8_t kind;
    uint16_t len; /* PIECE_LIT */
    const char *lit; /* PIECE_LIT: into the pattern */
} piece_t;

typedef struct {
    size_t first, n; /* its pieces */
    bool catch_all;
} compiled_t;

struct sk_router {
    const sk_route_t *routes;
    size_t n;
    compiled_t *compiled;
    piece_t *pieces;
};

sk_router_t *sk_router_new(const sk_route_t *routes, size_t n)
{
    sk_router_t *r = sk_xcalloc(1, sizeof(*r));
    r->routes = routes;
    r->n = n;
    r->compiled = sk_xcalloc(n ? n : 1, sizeof(*r->compiled));
    size_t cap = 0, np = 0;
    for (size_t i = 0; i < n; i++)
        cap += strlen(routes[i].pattern) + 1; /* never more pieces than bytes */
    r->pieces = sk_xcalloc(cap ? cap : 1, sizeof(*r->pieces));
    for (size_t i = 0; i < n; i++) {
        const char *p = routes[i].pattern, *lit = p;
        compiled_t *c = &r->compiled[i];
        c->first = np;
        c->catch_all = strcmp(p, "/*") == 0;
        while (*p) {
            /* p is at a '/' (a pattern is made of "/segment"s); the slash belongs to the
             * literal run before the segment. */
            const char *seg = p + 1, *e = seg;
            while (*e && *e != '/')
                e++;
            bool param = e - seg >= 2 && seg[0] == '{';
            bool rest = e - seg == 1 && seg[0] == '*' && *e == '\0';
            if (param || rest) {
                r->pieces[np++] = (piece_t){.kind = PIECE_LIT, .len = (uint16_t)(seg - lit), .lit = lit};
                r->pieces[np++] = (piece_t){.kind = rest ? PIECE_REST : PIECE_PARAM};
                lit = e;
            }
            p = e;
        }
        if (p > lit)
            r->pieces[np++] = (piece_t){.kind = PIECE_LIT, .len = (uint16_t)(p - lit), .lit = lit};
        c->n = np - c->first;
    }
    return r;
}

void sk_router_free(sk_router_t *r)
{
    if (!r)
        return;
    free(r->compiled);
    free(r->pieces);
    free(r);
}

/* n bytes equal, 8 at a time. */
static inline bool bytes_eq(const char *a, const char *b, size_t n)
{
    uint64_t x, y;
    if (n >= 8) {
        size_t i = 0;
        for (; i + 8 <= n; i += 8) {
            memcpy(&x, a + i, 8);
            memcpy(&y, b + i, 8);
            if (x != y)
                return false;
        }
        if (i == n)
            return true;
        memcpy(&x, a + n - 8, 8);
        memcpy(&y, b + n - 8, 8);
        return x == y;
    }
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return false;
    return true;
}

static bool match_compiled(const piece_t *pc, size_t n, const char *path, size_t len, sk_str_t *params)
{
    size_t i = 0, np = 0;
    for (size_t k = 0; k < n; k++) {
        const piece_t *q = &pc[k];
        if (q->kind == PIECE_LIT) {
            if (len - i < q->len || !bytes_eq(path + i, q->lit, q->len))
                return false;
            i += q->len;
        } else if (q->kind == PIECE_PARAM) {
            size_t from = i;
            while (i < len && path[i] != '/')
                i++;
            if (i == from || np == SK_ROUTE_MAX_PARAMS)
                return false;
            params[np].p = path + from;
            params[np].len = i - from;
            np++;
        } else {
            params[np].p = path + i;
            params[np].len = len - i;
            return true;
        }
    }
    return i == len;
}

sk_route_result_t sk_router_match(const sk_router_t *r, sk_http_method_t method, const char *path, size_t path_len,
                                  size_t *index, sk_str_t *params, char *allow, size_t allow_size)
{
    sk_http_method_t m = method == SK_HTTP_HEAD ? SK_HTTP_GET : method;
    bool path_seen = false;
    size_t al = 0;
    if (allow_size)
        allow[0] = '\0';
    for (size_t k = 0; k < r->n; k++) {
        const compiled_t *c = &r->compiled[k];
        if (!match_compiled(&r->pieces[c->first], c->n, path, path_len, params))
            continue;
        if (r->routes[k].method == m) {
            *index = k;
            return SK_ROUTE_FOUND;
        }
        if (c->catch_all)
            continue; /* a catch-all does not make every path "known" for 405 */
        path_seen = true;
        allow_add(allow, allow_size, &al, r->routes[k].method);
    }
    return path_seen ? SK_ROUTE_BAD_METHOD : SK_ROUTE_NOT_FOUND;
}
