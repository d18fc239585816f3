/* Stateless proof-of-work challenges (format in pow.h). */
#include "crypto/pow.h"

#include <string.h>

#include "crypto/encode.h"

static void challenge_mac(const sk_hmac_key_t *k, const char *sale, size_t sl, const char *user, size_t ul,
                          const char *bucket, size_t bl, uint8_t mac[SK_SHA256_LEN])
{
    static const char label[] = "sk-pow\n";
    const sk_bytes_t parts[] = {
        {label, sizeof(label) - 1}, {sale, sl}, {"\n", 1}, {user, ul}, {"\n", 1}, {bucket, bl},
    };
    sk_hmac_sha256v(k, parts, sizeof(parts) / sizeof(parts[0]), mac);
}

size_t sk_pow_challenge(const sk_hmac_key_t *k, const char *sale, size_t sl, const char *user, size_t ul,
                        int64_t now_ms, char *out)
{
    char digits[24];
    size_t n = 0;
    uint64_t b = now_ms < 0 ? 0 : (uint64_t)now_ms / SK_POW_BUCKET_MS;
    do {
        digits[n++] = (char)('0' + b % 10);
        b /= 10;
    } while (b);
    for (size_t i = 0; i < n; i++)
        out[i] = digits[n - 1 - i];
    uint8_t mac[SK_SHA256_LEN];
    challenge_mac(k, sale, sl, user, ul, out, n, mac);
    out[n++] = '.';
    n += sk_b64url_encode(out + n, mac, sizeof(mac));
    out[n] = '\0';
    return n;
}

unsigned sk_pow_leading_zeros(const uint8_t digest[SK_SHA256_LEN])
{
    unsigned z = 0;
    for (int i = 0; i < SK_SHA256_LEN; i++) {
        if (digest[i] == 0) {
            z += 8;
            continue;
        }
        return z + (unsigned)__builtin_clz(digest[i]) - 24;
    }
    return z;
}

int sk_pow_verify(const sk_hmac_key_t *k, const char *sale, size_t sl, const char *user, size_t ul,
                  const char *challenge, size_t cl, const char *nonce, size_t nl, unsigned bits, int64_t now_ms)
{
    const size_t mac_text = sk_b64url_len(SK_SHA256_LEN);
    if (cl < mac_text + 2 || cl > SK_POW_CHALLENGE_MAX || challenge[cl - mac_text - 1] != '.' || nl == 0 ||
        nl > SK_POW_NONCE_MAX)
        return SK_POW_MALFORMED;
    for (size_t i = 0; i < nl; i++)
        if (nonce[i] < 0x21 || nonce[i] > 0x7e)
            return SK_POW_MALFORMED;
    size_t bl = cl - mac_text - 1;
    if (bl > 15 || (bl > 1 && challenge[0] == '0'))
        return SK_POW_MALFORMED;
    int64_t bucket = 0;
    for (size_t i = 0; i < bl; i++) {
        if (challenge[i] < '0' || challenge[i] > '9')
            return SK_POW_MALFORMED;
        bucket = bucket * 10 + (challenge[i] - '0');
    }
    uint8_t got[SK_SHA256_LEN], want[SK_SHA256_LEN];
    if (sk_b64url_decode(got, sizeof(got), challenge + bl + 1, mac_text) != SK_SHA256_LEN)
        return SK_POW_MALFORMED;
    challenge_mac(k, sale, sl, user, ul, challenge, bl, want);
    if (!sk_ct_eq(got, want, sizeof(got)))
        return SK_POW_NOT_OURS;
    int64_t now_bucket = now_ms / SK_POW_BUCKET_MS;
    /* This bucket or the one before; one ahead too, for a node whose clock runs a little
     * behind the one that issued the challenge. */
    if (bucket < now_bucket - 1 || bucket > now_bucket + 1)
        return SK_POW_STALE;
    const sk_bytes_t parts[] = {{challenge, cl}, {nonce, nl}};
    uint8_t digest[SK_SHA256_LEN];
    sk_sha256v(parts, 2, digest);
    return sk_pow_leading_zeros(digest) >= bits ? 0 : SK_POW_TOO_FEW_BITS;
}
