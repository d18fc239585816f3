#include "http/router.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Matches one pattern against the path; fills params. */
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
        const char *pe = strchr(p, '/');
        size_t plen = pe ? (size_t)(pe - p) : strlen(p);
        const char *se = memchr(path + i, '/', len - i);
        size_t slen = se ? (size_t)(se - (path + i)) : len - i;
        if (plen >= 2 && p[0] == '{') {
            if (slen == 0 || np == SK_ROUTE_MAX_PARAMS)
                return false;
            params[np].p = path + i;
            params[np].len = slen;
            np++;
        } else if (plen != slen || memcmp(p, path + i, slen) != 0) {
            return false;
        }
        p += plen;
        i += slen;
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

sk_route_result_t sk_route_match(const sk_route_t *routes, size_t n, sk_http_method_t method, const char *path,
                                 size_t path_len, size_t *index, sk_str_t *params, char *allow, size_t allow_size)
{
    sk_http_method_t m = method == SK_HTTP_HEAD ? SK_HTTP_GET : method;
    bool path_seen = false;
    size_t al = 0;
    if (allow_size)
        allow[0] = '\0';
    for (size_t r = 0; r < n; r++) {
        sk_str_t tmp[SK_ROUTE_MAX_PARAMS];
        if (!match(routes[r].pattern, path, path_len, tmp))
            continue;
        if (routes[r].method == m) {
            *index = r;
            memcpy(params, tmp, sizeof(tmp));
            return SK_ROUTE_FOUND;
        }
        if (strcmp(routes[r].pattern, "/*") == 0)
            continue; /* a catch-all does not make every path "known" for 405 */
        path_seen = true;
        const char *name = method_name(routes[r].method);
        if (name && allow_size && !strstr(allow, name)) {
            int w = snprintf(allow + al, allow_size - al, "%s%s", al ? ", " : "", name);
            if (w > 0 && (size_t)w < allow_size - al)
                al += (size_t)w;
        }
    }
    return path_seen ? SK_ROUTE_BAD_METHOD : SK_ROUTE_NOT_FOUND;
}
