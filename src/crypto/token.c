/* Admission and user tokens (formats in token.h). */
#include <errno.h>
#include <string.h>

#include "crypto/encode.h"
#include "crypto/token.h"

#define EXPIRY_DIGITS_MAX 15

/* Parses the signed expiry text: 1-15 decimal digits. Returns 0 or -1. */
static int parse_expiry(const char *s, size_t n, int64_t *out)
{
    if (n == 0 || n > EXPIRY_DIGITS_MAX)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* The MAC's input is put together on the stack and hashed in one call: with the short
 * label, a sale and a user of up to about 16 characters each fit one SHA-256 block after
 * the key's, so a verification is two compressions. */
static void admission_mac(const sk_hmac_key_t *k, const char *sale, size_t sl, const char *user, size_t ul,
                          const char *exp, size_t el, uint8_t mac[SK_SHA256_LEN])
{
    static const char label[] = "sk-adm\n";
    char buf[sizeof(label) + 2 * 256 + 3 + EXPIRY_DIGITS_MAX];
    if (sl > 256 || ul > 256 || el > EXPIRY_DIGITS_MAX) { /* not ids the API takes: hash in parts */
        const sk_bytes_t parts[] = {
            {label, sizeof(label) - 1}, {sale, sl}, {"\n", 1}, {user, ul}, {"\n", 1}, {exp, el},
        };
        sk_hmac_sha256v(k, parts, sizeof(parts) / sizeof(parts[0]), mac);
        return;
    }
    size_t n = sizeof(label) - 1;
    memcpy(buf, label, n);
    memcpy(buf + n, sale, sl);
    n += sl;
    buf[n++] = '\n';
    memcpy(buf + n, user, ul);
    n += ul;
    buf[n++] = '\n';
    memcpy(buf + n, exp, el);
    n += el;
    sk_hmac_sha256(k, buf, n, mac);
}

static void user_mac(const sk_hmac_key_t *k, const char *user, size_t ul, const char *exp, size_t el,
                     uint8_t mac[SK_SHA256_LEN])
{
    static const char label[] = "seckill-user\n";
    const sk_bytes_t parts[] = {{label, sizeof(label) - 1}, {user, ul}, {"\n", 1}, {exp, el}};
    sk_hmac_sha256v(k, parts, sizeof(parts) / sizeof(parts[0]), mac);
}

static size_t put_expiry(char *out, int64_t expires_ms)
{
    char digits[24];
    size_t n = 0;
    uint64_t v = expires_ms < 0 ? 0 : (uint64_t)expires_ms;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && n < EXPIRY_DIGITS_MAX);
    for (size_t i = 0; i < n; i++)
        out[i] = digits[n - 1 - i];
    return n;
}

size_t sk_token_admission_mint(const sk_hmac_key_t *k, const char *sale, size_t sl, const char *user, size_t ul,
                               int64_t expires_ms, char *out)
{
    size_t n = put_expiry(out, expires_ms);
    uint8_t mac[SK_SHA256_LEN];
    admission_mac(k, sale, sl, user, ul, out, n, mac);
    out[n++] = '.';
    n += sk_b64url_encode(out + n, mac, sizeof(mac));
    out[n] = '\0';
    return n;
}

int sk_token_admission_verify(const sk_hmac_key_t *k, const char *sale, size_t sl, const char *user, size_t ul,
                              const char *tok, size_t tl, int64_t now_ms)
{
    const size_t mac_text = sk_b64url_len(SK_SHA256_LEN);
    if (tl < mac_text + 2 || tok[tl - mac_text - 1] != '.')
        return SK_TOKEN_MALFORMED;
    size_t el = tl - mac_text - 1;
    int64_t expires;
    uint8_t got[SK_SHA256_LEN], want[SK_SHA256_LEN];
    if (parse_expiry(tok, el, &expires) < 0 ||
        sk_b64url_decode(got, sizeof(got), tok + el + 1, mac_text) != SK_SHA256_LEN)
        return SK_TOKEN_MALFORMED;
    admission_mac(k, sale, sl, user, ul, tok, el, want);
    if (!sk_ct_eq(got, want, sizeof(got)))
        return SK_TOKEN_BAD_MAC;
    return now_ms < expires ? 0 : SK_TOKEN_EXPIRED;
}

size_t sk_token_user_mint(const sk_hmac_key_t *k, const char *user, size_t ul, int64_t expires_ms, char *out)
{
    memcpy(out, user, ul);
    size_t n = ul;
    out[n++] = '.';
    size_t el = put_expiry(out + n, expires_ms);
    uint8_t mac[SK_SHA256_LEN];
    user_mac(k, user, ul, out + n, el, mac);
    n += el;
    out[n++] = '.';
    n += sk_hex_encode(out + n, mac, sizeof(mac));
    out[n] = '\0';
    return n;
}

int sk_token_user_verify(const sk_hmac_key_t *k, const char *tok, size_t tl, int64_t now_ms, const char **user,
                         size_t *ul)
{
    const size_t mac_text = 2 * SK_SHA256_LEN;
    if (tl < mac_text + 4 || tl > SK_TOKEN_USER_MAX || tok[tl - mac_text - 1] != '.')
        return SK_TOKEN_MALFORMED;
    size_t end = tl - mac_text - 1; /* the '.' before the MAC */
    const char *dot = NULL;
    for (size_t i = end; i-- > 0;)
        if (tok[i] == '.') {
            dot = tok + i;
            break;
        }
    if (!dot || dot == tok)
        return SK_TOKEN_MALFORMED;
    size_t u = (size_t)(dot - tok), el = end - u - 1;
    int64_t expires;
    uint8_t got[SK_SHA256_LEN], want[SK_SHA256_LEN];
    if (parse_expiry(dot + 1, el, &expires) < 0 ||
        sk_hex_decode(got, sizeof(got), tok + end + 1, mac_text) != SK_SHA256_LEN)
        return SK_TOKEN_MALFORMED;
    user_mac(k, tok, u, dot + 1, el, want);
    if (!sk_ct_eq(got, want, sizeof(got)))
        return SK_TOKEN_BAD_MAC;
    if (now_ms >= expires)
        return SK_TOKEN_EXPIRED;
    *user = tok;
    *ul = u;
    return 0;
}

const char *sk_token_reason(int rc)
{
    switch (rc) {
    case SK_TOKEN_BAD_MAC:
        return "bad_mac";
    case SK_TOKEN_EXPIRED:
        return "expired";
    default:
        return "malformed";
    }
}
