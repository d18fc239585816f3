/* HMAC-SHA256 over SHA-256 states kept by value.
 *
 * Why the SHA256_* functions, which OpenSSL 3 marks deprecated: a verification on the
 * worker must cost about a microsecond or less, and these let a precomputed state be
 * copied as a plain struct. The EVP interface can only copy a digest context through
 * EVP_MD_CTX_copy_ex, which allocates on every call and needs one context per thread;
 * OpenSSL's one-shot HMAC() redoes the key schedule (and the algorithm fetch) on every
 * call, about ten times slower (bench/front.sh prints both). The functions are still
 * part of libcrypto 3 and compute the same thing; only this file uses them. */
#define OPENSSL_API_COMPAT 10101
#include "crypto/hmac.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <string.h>

_Static_assert(sizeof(SHA256_CTX) <= sizeof(((sk_hmac_key_t *)0)->state[0]), "SHA256_CTX fits the key's states");

#define BLOCK 64

void sk_hmac_init(sk_hmac_key_t *k, const void *key, size_t len)
{
    unsigned char kb[BLOCK] = {0}, pad[BLOCK];
    if (len > BLOCK)
        SHA256(key, len, kb);
    else if (len)
        memcpy(kb, key, len);
    memset(k, 0, sizeof(*k));
    for (int side = 0; side < 2; side++) {
        unsigned char x = side == 0 ? 0x36 : 0x5c;
        for (int i = 0; i < BLOCK; i++)
            pad[i] = kb[i] ^ x;
        SHA256_CTX *c = (SHA256_CTX *)(void *)k->state[side];
        SHA256_Init(c);
        SHA256_Update(c, pad, BLOCK);
    }
    OPENSSL_cleanse(kb, sizeof(kb));
    OPENSSL_cleanse(pad, sizeof(pad));
}

void sk_hmac_wipe(sk_hmac_key_t *k)
{
    OPENSSL_cleanse(k, sizeof(*k));
}

void sk_hmac_sha256v(const sk_hmac_key_t *k, const sk_bytes_t *parts, size_t n, uint8_t out[SK_SHA256_LEN])
{
    SHA256_CTX c;
    unsigned char inner[SK_SHA256_LEN];
    memcpy(&c, k->state[0], sizeof(c));
    for (size_t i = 0; i < n; i++)
        SHA256_Update(&c, parts[i].p, parts[i].n);
    SHA256_Final(inner, &c);
    memcpy(&c, k->state[1], sizeof(c));
    SHA256_Update(&c, inner, sizeof(inner));
    SHA256_Final(out, &c);
}

void sk_sha256v(const sk_bytes_t *parts, size_t n, uint8_t out[SK_SHA256_LEN])
{
    SHA256_CTX c;
    SHA256_Init(&c);
    for (size_t i = 0; i < n; i++)
        SHA256_Update(&c, parts[i].p, parts[i].n);
    SHA256_Final(out, &c);
}

bool sk_ct_eq(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

void sk_wipe(void *p, size_t n)
{
    OPENSSL_cleanse(p, n);
}

int sk_random_bytes(void *out, size_t n)
{
    return RAND_bytes(out, (int)n) == 1 ? 0 : -EIO;
}
