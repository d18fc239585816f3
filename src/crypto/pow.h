/* Proof of work for the waiting room: before a buyer may join a sale with pow_bits > 0,
 * the page finds a nonce such that SHA-256(challenge || nonce) starts with pow_bits
 * zero bits (web/pow.js). The server keeps no state for it:
 *
 *     challenge:  <bucket>.<base64url(HMAC-SHA256(key, "sk-pow\n" sale "\n" user "\n" bucket))>
 *     bucket:     now_ms / SK_POW_BUCKET_MS (decimal), so a challenge is good for one to
 *                 two buckets (this one and the next), then the page asks for a new one
 *     nonce:      1-64 characters from 0x21-0x7e (the page counts in decimal from 0)
 *     check:      SHA-256 of the challenge's text followed by the nonce's text has at
 *                 least pow_bits leading zero bits
 *
 * Verifying costs one HMAC (is this our challenge, for this sale and this user) and one
 * SHA-256 (the work). Inputs are borrowed for the call; keys as in hmac.h. */
#ifndef SK_CRYPTO_POW_H
#define SK_CRYPTO_POW_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/hmac.h"

#define SK_POW_BUCKET_MS 60000
#define SK_POW_CHALLENGE_MAX 64 /* up to 15 digits, '.', 43 characters */
#define SK_POW_NONCE_MAX 64
#define SK_POW_BITS_MAX 40

#define SK_POW_MALFORMED (-EINVAL) /* not a challenge's or a nonce's format */
#define SK_POW_NOT_OURS (-EPERM) /* not issued for this sale and user by this key */
#define SK_POW_STALE (-ETIME) /* issued more than a bucket ago: ask for a new one */
#define SK_POW_TOO_FEW_BITS (-EDOM) /* the nonce does not do the work */

/** Writes the challenge for (sale, user) at now_ms into out (SK_POW_CHALLENGE_MAX + 1
 *  bytes, NUL-terminated). Returns its length. */
size_t sk_pow_challenge(const sk_hmac_key_t *k, const char *sale, size_t sl, const char *user, size_t ul,
                        int64_t now_ms, char *out);
/** Checks a solution for (sale, user) at now_ms. Returns 0 or a reason above. */
int sk_pow_verify(const sk_hmac_key_t *k, const char *sale, size_t sl, const char *user, size_t ul,
                  const char *challenge, size_t cl, const char *nonce, size_t nl, unsigned bits, int64_t now_ms);
/** Leading zero bits of a SHA-256 digest (0-256). */
unsigned sk_pow_leading_zeros(const uint8_t digest[SK_SHA256_LEN]);

#endif
