/* Who the operator is, and who may pay: admin tokens (several, named), the metrics
 * token, the checks every admin endpoint makes (cross-site requests, JSON bodies only),
 * and for payments the payment provider's signature: "X-Seckill-Signature: sha256=<hex>",
 * the HMAC-SHA256 of the raw body keyed by the payment secret (the shape of the big
 * providers' webhooks).
 *
 * Tokens are never compared as strings: sk_api_new keeps the HMAC of each configured
 * token under a random key made at start-up, and a presented token is compared by its
 * own HMAC under that key, against every configured one without stopping early. The
 * time taken depends on the length of what was presented, never on the secrets. A
 * payment signature is compared in constant time too. */
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

#include "api/internal.h"

static const char unauthorized_body[] =
    "{\"error\":\"unauthorized\",\"message\":\"a valid admin token is required\"}\n";

/* The index of the configured secret `value` matches, or -1. */
static int match_secret(const sk_api_t *api, const sk_api_secret_t *list, size_t n, const char *value, size_t len)
{
    uint8_t d[SK_SHA256_LEN];
    sk_hmac_sha256(&api->compare_key, value, len, d);
    int found = -1;
    for (size_t i = 0; i < n; i++) {
        bool eq = sk_ct_eq(d, list[i].digest, sizeof(d));
        found = eq ? (int)i : found;
    }
    return found;
}

/* The token of "Authorization: Bearer TOKEN", or NULL. */
static const char *bearer(const sk_http_request_t *req, size_t *len)
{
    const sk_http_header_t *h = sk_http_find_header(req, "authorization");
    if (!h || h->value_len <= 7 || !sk_http_token_eq(h->value, 7, "bearer "))
        return NULL;
    *len = h->value_len - 7;
    return h->value + 7;
}

const char *sk_api_admin_name(sk_api_worker_t *w, const sk_http_exchange_t *x)
{
    const sk_api_t *api = w->api;
    if (api->n_admins == 0)
        return "anonymous";
    size_t len;
    const char *tok = bearer(x->req, &len);
    if (!tok)
        return NULL;
    int i = match_secret(api, api->admins, api->n_admins, tok, len);
    return i < 0 ? NULL : api->admins[i].name;
}

/* Compares the host part of an Origin ("scheme://host[:port]") with Host. */
static bool same_host(const char *origin, size_t ol, const char *host, size_t hl)
{
    const char *sep = ol >= 3 ? memmem(origin, ol, "://", 3) : NULL;
    if (!sep || !host)
        return false;
    const char *o = sep + 3;
    size_t n = (size_t)(origin + ol - o);
    if (n != hl || n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char a = o[i], b = host[i];
        if (a >= 'A' && a <= 'Z')
            a = (char)(a - 'A' + 'a');
        if (b >= 'A' && b <= 'Z')
            b = (char)(b - 'A' + 'a');
        if (a != b)
            return false;
    }
    return true;
}

bool sk_api_cross_site(const sk_http_request_t *req)
{
    /* Browsers say where a request comes from; other clients (curl, scripts, the
     * dashboard's own page) send neither header or matching ones. A plain HTML form on
     * another site sends Origin (POST) and, in current browsers, Sec-Fetch-Site. */
    const sk_http_header_t *site = sk_http_find_header(req, "sec-fetch-site");
    if (site && site->value_len == 10 && sk_http_token_eq(site->value, 10, "cross-site"))
        return true;
    const sk_http_header_t *origin = sk_http_find_header(req, "origin");
    if (origin && !same_host(origin->value, origin->value_len, req->host, req->host_len))
        return true; /* another origin, or "null" (a sandboxed frame, a file) */
    return false;
}

/* True when the body is declared application/json (parameters such as charset allowed). */
static bool json_body(const sk_http_request_t *req)
{
    static const char want[] = "application/json";
    const size_t wl = sizeof(want) - 1;
    if (!req->content_type || req->content_type_len < wl || !sk_http_token_eq(req->content_type, wl, want))
        return false;
    const char *p = req->content_type + wl, *end = req->content_type + req->content_type_len;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p == end || *p == ';';
}

const char *sk_api_admin(sk_api_worker_t *w, sk_http_exchange_t *x)
{
    if (sk_api_cross_site(x->req)) {
        sk_counter_add(&w->refused[SK_API_CROSS_SITE], 1);
        sk_http_respond_error(x, 403, "cross_site",
                              "admin requests from another site are refused (Origin or Sec-Fetch-Site)");
        return NULL;
    }
    const char *name = sk_api_admin_name(w, x);
    if (!name) {
        size_t len;
        if (bearer(x->req, &len))
            sk_counter_add(&w->tokens[SK_API_TOK_ADMIN][SK_API_WHY_WRONG], 1);
        sk_http_respond_ex(x, 401, "application/json", "WWW-Authenticate: Bearer\r\n", unauthorized_body,
                           sizeof(unauthorized_body) - 1);
        return NULL;
    }
    /* A body of any kind must say it is JSON: a cross-site form can only send
     * form-urlencoded, multipart or text/plain without asking the server first. */
    if ((x->body_len > 0 || x->req->content_type) && !json_body(x->req)) {
        sk_counter_add(&w->refused[SK_API_NOT_JSON], 1);
        sk_http_respond_error(x, 415, "unsupported_media_type", "admin requests take Content-Type: application/json");
        return NULL;
    }
    return name;
}

bool sk_api_metrics_authorized(sk_api_worker_t *w, sk_http_exchange_t *x)
{
    const sk_api_t *api = w->api;
    if (api->n_metrics_tokens == 0)
        return true;
    size_t len;
    const char *tok = bearer(x->req, &len);
    if (tok && (match_secret(api, api->metrics_tokens, api->n_metrics_tokens, tok, len) >= 0 ||
                (api->n_admins && match_secret(api, api->admins, api->n_admins, tok, len) >= 0)))
        return true;
    if (tok)
        sk_counter_add(&w->tokens[SK_API_TOK_METRICS][SK_API_WHY_WRONG], 1);
    static const char body[] = "{\"error\":\"unauthorized\",\"message\":\"a metrics or admin token is required\"}\n";
    sk_http_respond_ex(x, 401, "application/json", "WWW-Authenticate: Bearer\r\n", body, sizeof(body) - 1);
    return false;
}

static bool valid_name(const char *s, size_t n)
{
    if (n == 0 || n > SK_API_TOKEN_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == '-'))
            return false;
    }
    return true;
}

int sk_api_tokens_parse(char *text, size_t len, sk_api_token_t *out, size_t cap, char *err, size_t errlen)
{
    /* Cut into lines in place (each token is NUL-terminated where its newline was). */
    size_t n = 0, lines = 0, first_line = 0;
    char *single = NULL; /* the first line that is not NAME:TOKEN */
    size_t single_len = 0;
    char *p = text, *end = text + len;
    for (size_t line = 1; p < end; line++) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        char *s = p;
        p = nl ? nl + 1 : end;
        if (le > s && le[-1] == '\r')
            le--;
        *le = '\0';
        if (le == s || *s == '#')
            continue;
        if (memchr(s, '\0', (size_t)(le - s))) {
            snprintf(err, errlen, "line %zu: a NUL byte", line);
            return -1;
        }
        lines++;
        char *colon = memchr(s, ':', (size_t)(le - s));
        if (!colon || !valid_name(s, (size_t)(colon - s))) {
            if (!single) {
                single = s;
                single_len = (size_t)(le - s);
                first_line = line;
            }
            continue;
        }
        if (colon + 1 == le) {
            snprintf(err, errlen, "line %zu: the token of '%.*s' is empty", line, (int)(colon - s), s);
            return -1;
        }
        if (n == cap) {
            snprintf(err, errlen, "line %zu: more than %zu tokens", line, cap);
            return -1;
        }
        *colon = '\0';
        for (size_t i = 0; i < n; i++) {
            if (strcmp(out[i].name, s) == 0) {
                snprintf(err, errlen, "line %zu: the name '%s' is given twice", line, s);
                return -1;
            }
            if (out[i].len == (size_t)(le - colon - 1) && memcmp(out[i].token, colon + 1, out[i].len) == 0) {
                snprintf(err, errlen, "line %zu: '%s' has the same token as '%s'", line, s, out[i].name);
                return -1;
            }
        }
        out[n++] = (sk_api_token_t){.name = s, .token = colon + 1, .len = (size_t)(le - colon - 1)};
    }
    if (single) {
        if (lines == 1) {
            out[0] = (sk_api_token_t){.name = "admin", .token = single, .len = single_len};
            return 1;
        }
        snprintf(err, errlen,
                 "line %zu: expected NAME:TOKEN (NAME: 1-32 of A-Z a-z 0-9 _ . -), or a file of one line "
                 "holding a single token",
                 first_line);
        return -1;
    }
    if (n == 0) {
        snprintf(err, errlen, "no token in it");
        return -1;
    }
    return (int)n;
}

bool sk_api_has_admin_token(sk_api_worker_t *w, const sk_http_exchange_t *x)
{
    /* Without a configured token every request is the admin for sales, but not for
     * money: a payment then needs the provider's signature. */
    return w->api->n_admins > 0 && sk_api_admin_name(w, x) != NULL;
}

size_t sk_api_payment_signature(const unsigned char *key, size_t key_len, const char *body, size_t len, char *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)body, len, md, &md_len);
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "sha256=", 7);
    for (unsigned i = 0; i < md_len; i++) {
        out[7 + 2 * i] = hex[md[i] >> 4];
        out[8 + 2 * i] = hex[md[i] & 15];
    }
    out[7 + 2 * md_len] = '\0';
    return 7 + 2 * (size_t)md_len;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* True when the header holds "sha256=" and the 64 hex digits (either case) of the
 * body's HMAC under the configured key. */
static bool signature_ok(const sk_api_t *api, const sk_http_header_t *h, const char *body, size_t len)
{
    if (!api->payment_key_set || h->value_len != 7 + 64 || memcmp(h->value, "sha256=", 7) != 0)
        return false;
    uint8_t given[SK_SHA256_LEN], want[SK_SHA256_LEN];
    for (int i = 0; i < SK_SHA256_LEN; i++) {
        int a = hexval(h->value[7 + 2 * i]), b = hexval(h->value[8 + 2 * i]);
        if (a < 0 || b < 0)
            return false;
        given[i] = (uint8_t)(a * 16 + b);
    }
    sk_hmac_sha256(&api->payment_key, body, len, want);
    return sk_ct_eq(given, want, SK_SHA256_LEN);
}

bool sk_api_payment_authorized(sk_api_worker_t *w, sk_http_exchange_t *x)
{
    const sk_api_t *api = w->api;
    if (sk_api_has_admin_token(w, x))
        return true;
    const sk_http_header_t *h = sk_http_find_header(x->req, "x-seckill-signature");
    const char *msg;
    if (h && signature_ok(api, h, x->body, x->body_len))
        return true;
    if (h && !api->payment_key_set)
        msg = "{\"error\":\"unauthorized\",\"message\":\"this server has no payment secret "
              "(--payment-secret-file): a signed payment cannot be checked; only the admin token may pay\"}\n";
    else if (h)
        msg = "{\"error\":\"bad_signature\",\"message\":\"X-Seckill-Signature does not match the body: it must be "
              "sha256=<hex HMAC-SHA256 of the raw body, keyed by the payment secret>\"}\n";
    else
        msg = "{\"error\":\"unauthorized\",\"message\":\"a payment needs X-Seckill-Signature: sha256=<hex "
              "HMAC-SHA256 of the raw body> or the admin token\"}\n";
    sk_http_respond(x, 401, "application/json", msg, strlen(msg));
    return false;
}
