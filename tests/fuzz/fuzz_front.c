/* libFuzzer target for what the front door parses from clients: user tokens, admission
 * tokens, proof-of-work challenges and nonces, X-Forwarded-For, the deny list and the
 * admin token file. The first byte picks the parser; the rest is its input, from an
 * exact-size heap copy (ASan sees a read past the end). Beyond "no crash":
 *  - a user or admission token that verifies is exactly the token minted for the fields
 *    it carries (hex in either case for a user token's MAC): nothing else is accepted;
 *  - a verified user token's user lies inside the token;
 *  - a proof of work that verifies has at least the bits asked for, recomputed here;
 *  - the client address from X-Forwarded-For is the peer or an address of the header. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/deny.h"
#include "api/internal.h"
#include "crypto/encode.h"
#include "crypto/pow.h"
#include "crypto/token.h"

#define CHECK(c)                                                                                                       \
    do {                                                                                                               \
        if (!(c)) {                                                                                                    \
            fprintf(stderr, "check failed at %s:%d: %s\n", __FILE__, __LINE__, #c);                                    \
            abort();                                                                                                   \
        }                                                                                                              \
    } while (0)

#define NOW INT64_C(1740000000000)

static sk_hmac_key_t key;
static bool key_ready;

static void user_token(const char *d, size_t n)
{
    const char *u;
    size_t ul;
    int rc = sk_token_user_verify(&key, d, n, NOW, &u, &ul);
    CHECK(rc == 0 || rc == SK_TOKEN_MALFORMED || rc == SK_TOKEN_BAD_MAC || rc == SK_TOKEN_EXPIRED);
    if (rc != 0)
        return;
    CHECK(u == d && ul > 0 && ul < n);
    /* Re-mint from the fields: the same text, up to the hex digits' case. */
    const char *dot = d + ul;
    int64_t exp = 0;
    for (const char *p = dot + 1; *p != '.'; p++)
        exp = exp * 10 + (*p - '0');
    char again[SK_TOKEN_USER_MAX + 1];
    size_t al = sk_token_user_mint(&key, u, ul, exp, again);
    CHECK(al == n);
    for (size_t i = 0; i < n; i++) {
        char a = again[i], b = d[i];
        if (b >= 'A' && b <= 'F' && i >= n - 64)
            b = (char)(b - 'A' + 'a');
        CHECK(a == b);
    }
}

static void admission(const char *d, size_t n)
{
    int rc = sk_token_admission_verify(&key, "s1", 2, "u1", 2, d, n, NOW);
    CHECK(rc == 0 || rc == SK_TOKEN_MALFORMED || rc == SK_TOKEN_BAD_MAC || rc == SK_TOKEN_EXPIRED);
    if (rc != 0)
        return;
    int64_t exp = 0;
    for (const char *p = d; *p != '.'; p++)
        exp = exp * 10 + (*p - '0');
    char again[SK_TOKEN_ADMISSION_MAX + 1];
    CHECK(sk_token_admission_mint(&key, "s1", 2, "u1", 2, exp, again) == n && memcmp(again, d, n) == 0);
}

static void pow_check(const char *d, size_t n)
{
    const char *nl = memchr(d, '\n', n);
    if (!nl || n < 2)
        return;
    unsigned bits = (unsigned char)d[0] % 8;
    const char *ch = d + 1, *nonce = nl + 1;
    size_t cl = (size_t)(nl - ch), nonl = n - (size_t)(nonce - d);
    int rc = sk_pow_verify(&key, "s1", 2, "u1", 2, ch, cl, nonce, nonl, bits, NOW);
    CHECK(rc == 0 || rc == SK_POW_MALFORMED || rc == SK_POW_NOT_OURS || rc == SK_POW_STALE ||
          rc == SK_POW_TOO_FEW_BITS);
    if (rc != 0)
        return;
    const sk_bytes_t parts[] = {{ch, cl}, {nonce, nonl}};
    uint8_t digest[SK_SHA256_LEN];
    sk_sha256v(parts, 2, digest);
    CHECK(sk_pow_leading_zeros(digest) >= bits);
}

static void forwarded(const char *d, size_t n)
{
    if (memchr(d, '\r', n) || memchr(d, '\n', n) || memchr(d, '\0', n) || n > 4000)
        return;
    char head[4200];
    int hl = snprintf(head, sizeof(head), "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: %.*s\r\n\r\n", (int)n, d);
    sk_http_request_t req;
    if (sk_http_parse_request(head, (size_t)hl, &req) <= 0)
        return;
    sk_cidr_t trusted[2];
    sk_cidr_parse("10.0.0.0/8", 10, &trusted[0]);
    sk_cidr_parse("::1", 3, &trusted[1]);
    sk_ip_t peer, ip;
    sk_ip_parse("10.0.0.1", 8, &peer);
    ip = peer;
    sk_api_forwarded_ip(&req, trusted, 2, &ip);
    CHECK(ip.family == 4 || ip.family == 6);
}

static void deny_list(const char *d, size_t n)
{
    char err[256];
    sk_api_deny_t *l = sk_api_deny_parse(d, n, "fuzz", err, sizeof(err));
    if (!l) {
        CHECK(strncmp(err, "fuzz line ", 10) == 0);
        return;
    }
    sk_ip_t ip;
    sk_ip_parse("203.0.113.9", 11, &ip);
    (void)sk_api_deny_ip(l, &ip);
    (void)sk_api_deny_user(l, d, n < 64 ? n : 64);
    sk_api_deny_unref(l);
}

static void token_file(const char *d, size_t n)
{
    char *copy = malloc(n + 1);
    memcpy(copy, d, n);
    copy[n] = '\0';
    sk_api_token_t t[8];
    char err[256];
    int rc = sk_api_tokens_parse(copy, n, t, 8, err, sizeof(err));
    CHECK(rc == -1 || (rc >= 1 && rc <= 8));
    for (int i = 0; i < rc; i++)
        CHECK(t[i].len > 0 && strlen(t[i].name) > 0);
    free(copy);
}

static void decoders(const char *d, size_t n)
{
    uint8_t out[64];
    int h = sk_hex_decode(out, sizeof(out), d, n);
    CHECK(h == -1 || (size_t)h * 2 == n);
    int b = sk_b64url_decode(out, sizeof(out), d, n);
    if (b >= 0) {
        char text[100];
        CHECK(sk_b64url_encode(text, out, (size_t)b) == n && memcmp(text, d, n) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!key_ready) {
        sk_hmac_init(&key, "fuzz-key", 8);
        key_ready = true;
    }
    if (size < 1)
        return 0;
    size_t n = size - 1;
    char *d = malloc(n ? n : 1);
    memcpy(d, data + 1, n);
    switch (data[0] % 7) {
    case 0:
        user_token(d, n);
        break;
    case 1:
        admission(d, n);
        break;
    case 2:
        pow_check(d, n);
        break;
    case 3:
        forwarded(d, n);
        break;
    case 4:
        deny_list(d, n);
        break;
    case 5:
        token_file(d, n);
        break;
    default:
        decoders(d, n);
        break;
    }
    free(d);
    return 0;
}
