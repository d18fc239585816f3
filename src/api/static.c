/* The buyer's page, the dashboard and the other files of web/, compiled in (assets.h),
 * with ETags and a gzip copy for clients that take it. */
#include <stdio.h>
#include <string.h>

#include "api/assets.h"
#include "api/internal.h"

static void serve_asset(sk_http_exchange_t *x, const sk_asset_t *a)
{
    const sk_http_header_t *inm = sk_http_find_header(x->req, "if-none-match");
    if (inm && inm->value_len == strlen(a->etag) && memcmp(inm->value, a->etag, inm->value_len) == 0) {
        char extra[128];
        snprintf(extra, sizeof(extra), "ETag: %s\r\nCache-Control: no-cache\r\n", a->etag);
        sk_http_respond_ex(x, 304, NULL, extra, NULL, 0);
        return;
    }
    const sk_http_header_t *ae = sk_http_find_header(x->req, "accept-encoding");
    bool gz = a->gz && ae && memmem(ae->value, ae->value_len, "gzip", 4) != NULL;
    char extra[200];
    snprintf(extra, sizeof(extra), "ETag: %s\r\nCache-Control: no-cache\r\nVary: Accept-Encoding\r\n%s", a->etag,
             gz ? "Content-Encoding: gzip\r\n" : "");
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
