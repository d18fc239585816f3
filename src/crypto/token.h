/* Signed tokens: the waiting room's admission token and the merchant's user token.
 * Both are HMAC-SHA256 with a domain label first, so a key shared by mistake between
 * the two can never turn one kind into the other. (The admission's label is short: it
 * is checked on every purchase of a queued sale, and a shorter input is fewer SHA-256
 * blocks; nobody outside the node mints admissions.)
 *
 * Admission token (minted by the node when a buyer is admitted, verified by the worker
 * on a purchase; key: --secret-file):
 *     text:  <expires_ms>.<base64url(mac), 43 characters>
 *     mac:   HMAC-SHA256(key, "sk-adm\n" sale "\n" user "\n" expires_ms)
 *   The sale and the user are not in the text: the verifier takes them from the request
 *   (the sale in the path, the buyer the request acts for), so a token of another sale
 *   or another user fails as a bad MAC.
 *
 * User token (minted by the merchant's login service, verified by the node; key:
 * --user-token-secret-file), carried in the X-Seckill-User header:
 *     text:  <user>.<expires_ms>.<hex(mac), 64 characters>
 *     mac:   HMAC-SHA256(key, "seckill-user\n" user "\n" expires_ms)
 *   The user may contain dots: the text is split at its last two.
 *
 * In both, expires_ms is the decimal text as signed (1-15 digits), and a token is valid
 * while now < expires_ms. Verification computes one HMAC (two SHA-256 compressions) and
 * compares in constant time. Inputs are borrowed for the call. */
#ifndef SK_CRYPTO_TOKEN_H
#define SK_CRYPTO_TOKEN_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/hmac.h"

#define SK_TOKEN_ADMISSION_MAX 64 /* 15 digits, '.', 43 characters: 59, rounded up */
#define SK_TOKEN_USER_MAX (64 + 1 + 15 + 1 + 64)

/* Why a token was refused (the negative return values below). */
#define SK_TOKEN_MALFORMED (-EINVAL) /* not the format: cut, wrong characters, wrong lengths */
#define SK_TOKEN_BAD_MAC (-EPERM) /* tampered, another sale or user, or another key */
#define SK_TOKEN_EXPIRED (-ETIME) /* signed, but now >= expires_ms */

/** Writes an admission token for (sale, user) valid until expires_ms into out
 *  (SK_TOKEN_ADMISSION_MAX + 1 bytes, NUL-terminated). Returns its length. */
size_t sk_token_admission_mint(const sk_hmac_key_t *k, const char *sale, size_t sl, const char *user, size_t ul,
                               int64_t expires_ms, char *out);
/** Checks an admission token for (sale, user) at now_ms. Returns 0, SK_TOKEN_MALFORMED,
 *  SK_TOKEN_BAD_MAC or SK_TOKEN_EXPIRED. */
int sk_token_admission_verify(const sk_hmac_key_t *k, const char *sale, size_t sl, const char *user, size_t ul,
                              const char *tok, size_t tl, int64_t now_ms);

/** Writes a user token into out (SK_TOKEN_USER_MAX + 1 bytes, NUL-terminated); `ul` at
 *  most 64. Returns its length. (The node never mints these in service: tests and the
 *  documentation's examples do.) */
size_t sk_token_user_mint(const sk_hmac_key_t *k, const char *user, size_t ul, int64_t expires_ms, char *out);
/** Checks a user token at now_ms. On 0, *user / *ul point at the user inside `tok` (not
 *  yet checked to be a valid user id: the caller does). Returns 0 or a reason above. */
int sk_token_user_verify(const sk_hmac_key_t *k, const char *tok, size_t tl, int64_t now_ms, const char **user,
                         size_t *ul);

/** A reason's name for metrics and messages: "malformed", "bad_mac", "expired". */
const char *sk_token_reason(int rc);

#endif
