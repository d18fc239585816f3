/* HMAC-SHA256 and SHA-256 from OpenSSL's libcrypto, with the HMAC key schedule made once:
 * a key holds the two SHA-256 states after the inner and outer pads, so a MAC of a short
 * message costs two compression calls and no allocation.
 *
 * Ownership and threads: an sk_hmac_key_t is plain memory owned by its holder; after
 * sk_hmac_init it is only read, so any number of threads may use one key at once (each
 * call copies the states onto its own stack). */
#ifndef SK_CRYPTO_HMAC_H
#define SK_CRYPTO_HMAC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SK_SHA256_LEN 32

/** A precomputed HMAC-SHA256 key: opaque (two SHA-256 states). */
typedef struct {
    _Alignas(16) unsigned char state[2][128];
} sk_hmac_key_t;

/** One part of a message given in pieces. */
typedef struct {
    const void *p;
    size_t n;
} sk_bytes_t;

/** Precomputes the key schedule of `key` (any length; longer than 64 bytes is hashed
 *  first, as RFC 2104 says). */
void sk_hmac_init(sk_hmac_key_t *k, const void *key, size_t len);
/** Wipes a key (OPENSSL_cleanse), so no copy of the secret stays in freed memory. */
void sk_hmac_wipe(sk_hmac_key_t *k);
/** HMAC-SHA256 of the concatenation of `n` parts. */
void sk_hmac_sha256v(const sk_hmac_key_t *k, const sk_bytes_t *parts, size_t n, uint8_t out[SK_SHA256_LEN]);
static inline void sk_hmac_sha256(const sk_hmac_key_t *k, const void *msg, size_t len, uint8_t out[SK_SHA256_LEN])
{
    sk_bytes_t part = {msg, len};
    sk_hmac_sha256v(k, &part, 1, out);
}
/** SHA-256 of the concatenation of `n` parts. */
void sk_sha256v(const sk_bytes_t *parts, size_t n, uint8_t out[SK_SHA256_LEN]);

/** Compares n bytes in time that depends on n only (OpenSSL's CRYPTO_memcmp). */
bool sk_ct_eq(const void *a, const void *b, size_t n);

/** Overwrites n bytes with zeros in a way the compiler cannot drop (OPENSSL_cleanse). */
void sk_wipe(void *p, size_t n);

/** Fills `out` with n bytes from OpenSSL's CSPRNG. Returns 0 or -EIO. */
int sk_random_bytes(void *out, size_t n);

#endif
