/* Who may do what: the admin token ("Authorization: Bearer <token>", when one is
 * configured) for requests that change sales or list every order, and for payments the
 * payment provider's signature: "X-Seckill-Signature: sha256=<hex>", the HMAC-SHA256 of
 * the raw body keyed by the payment secret (the shape of the big providers' webhooks).
 * Every comparison of a secret runs in constant time, so it cannot be guessed byte by
 * byte. */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#include "api/internal.h"

static const char unauthorized_body[] =
    "{\"error\":\"unauthorized\",\"message\":\"a valid admin token is required\"}\n";

static bool token_matches(const sk_api_t *api, const sk_http_exchange_t *x)
{
    const sk_http_header_t *h = sk_http_find_header(x->req, "authorization");
    if (!h || h->value_len != 7 + api->token_len || !sk_http_token_eq(h->value, 7, "bearer "))
        return false;
    unsigned char diff = 0;
    for (size_t i = 0; i < api->token_len; i++)
        diff |= (unsigned char)(h->value[7 + i] ^ api->cfg.admin_token[i]);
    return diff == 0;
}

bool sk_api_authorized(sk_api_worker_t *w, sk_http_exchange_t *x)
{
    sk_api_t *api = w->api;
    if (api->token_len == 0 || token_matches(api, x))
        return true;
    sk_http_respond_ex(x, 401, "application/json", "WWW-Authenticate: Bearer\r\n", unauthorized_body,
                       sizeof(unauthorized_body) - 1);
    return false;
}

const char *sk_api_admin_name(sk_api_worker_t *w, const sk_http_exchange_t *x)
{
    /* One admin token today; named tokens will name their holder here. */
    (void)w;
    (void)x;
    return "admin";
}

bool sk_api_has_admin_token(sk_api_worker_t *w, const sk_http_exchange_t *x)
{
    return w->api->token_len > 0 && token_matches(w->api, x);
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
static bool signature_ok(const sk_api_config_t *cfg, const sk_http_header_t *h, const char *body, size_t len)
{
    if (!cfg->payment_secret || h->value_len != 7 + 64 || memcmp(h->value, "sha256=", 7) != 0)
        return false;
    unsigned char given[32], want[EVP_MAX_MD_SIZE];
    for (int i = 0; i < 32; i++) {
        int a = hexval(h->value[7 + 2 * i]), b = hexval(h->value[8 + 2 * i]);
        if (a < 0 || b < 0)
            return false;
        given[i] = (unsigned char)(a * 16 + b);
    }
    unsigned int want_len = 0;
    HMAC(EVP_sha256(), cfg->payment_secret, (int)cfg->payment_secret_len, (const unsigned char *)body, len, want,
         &want_len);
    return want_len == 32 && CRYPTO_memcmp(given, want, 32) == 0;
}

bool sk_api_payment_authorized(sk_api_worker_t *w, sk_http_exchange_t *x)
{
    const sk_api_config_t *cfg = &w->api->cfg;
    if (sk_api_has_admin_token(w, x))
        return true;
    const sk_http_header_t *h = sk_http_find_header(x->req, "x-seckill-signature");
    const char *msg;
    if (h && signature_ok(cfg, h, x->body, x->body_len))
        return true;
    if (h && !cfg->payment_secret)
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
