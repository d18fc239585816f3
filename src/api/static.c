/* The buyer's page, the dashboard and the other files of web/, compiled in (assets.h),
 * with ETags and a gzip copy for clients that take it. */
#include <stdio.h>
#include <string.h>

#include "api/assets.h"
#include "api/internal.h"

/* The pages run only the scripts and styles of this server (web/ has no inline script
 * or style attribute), talk only to it, and may not be framed (clickjacking the Buy
 * button or the dashboard). Every file says its type is meant. */
#define PAGE_HEADERS                                                                                                   \
    "Content-Security-Policy: default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "         \
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'\r\n"           \
    "X-Frame-Options: DENY\r\nReferrer-Policy: same-origin\r\n"
#define FILE_HEADERS "X-Content-Type-Options: nosniff\r\n"

static void serve_asset(sk_http_exchange_t *x, const sk_asset_t *a)
{
    bool page = strncmp(a->content_type, "text/html", 9) == 0;
    const char *sec = page ? PAGE_HEADERS FILE_HEADERS : FILE_HEADERS;
    const sk_http_header_t *inm = sk_http_find_header(x->req, "if-none-match");
    char extra[640];
    if (inm && inm->value_len == strlen(a->etag) && memcmp(inm->value, a->etag, inm->value_len) == 0) {
        snprintf(extra, sizeof(extra), "ETag: %s\r\nCache-Control: no-cache\r\n%s", a->etag, sec);
        sk_http_respond_ex(x, 304, NULL, extra, NULL, 0);
        return;
    }
    const sk_http_header_t *ae = sk_http_find_header(x->req, "accept-encoding");
    bool gz = a->gz && ae && memmem(ae->value, ae->value_len, "gzip", 4) != NULL;
    snprintf(extra, sizeof(extra), "ETag: %s\r\nCache-Control: no-cache\r\nVary: Accept-Encoding\r\n%s%s", a->etag,
             gz ? "Content-Encoding: gzip\r\n" : "", sec);
    sk_http_respond_ex(x, 200, a->content_type, extra, gz ? a->gz : a->data, gz ? a->gz_len : a->len);
}

void sk_api_page(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    (void)params;
    (void)arg;
    const sk_asset_t *a = sk_assets_find("/index.html", 11);
    if (!a) {
        sk_http_respond_error(x, 404, "not_found", "the buyer's page is not built in");
        return;
    }
    serve_asset(x, a);
}

void sk_api_admin_page(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    (void)params;
    (void)arg;
    const sk_asset_t *a = sk_assets_find("/admin.html", 11);
    if (!a) {
        sk_http_respond_error(x, 404, "not_found", "the dashboard is not built in");
        return;
    }
    serve_asset(x, a);
}

void sk_api_asset(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    (void)arg;
    (void)params;
    const sk_asset_t *a = sk_assets_find(x->req->path, x->req->path_len);
    if (!a) {
        sk_http_respond_error(x, 404, "not_found", "no such path");
        return;
    }
    serve_asset(x, a);
}
