/* A seeded 64-bit hash for hash tables (not a cryptographic one: the seed, random in
 * service, only keeps an outsider from choosing keys that all collide). */
#ifndef SK_UTIL_HASH_H
#define SK_UTIL_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t sk_hash_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x *= UINT64_C(0xc4ceb9fe1a85ec53);
    x ^= x >> 33;
    return x;
}

static inline uint64_t sk_hash64(const void *key, size_t len, uint64_t seed)
{
    const unsigned char *p = key;
    uint64_t h = sk_hash_mix(seed ^ (len * UINT64_C(0x9e3779b97f4a7c15)));
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        h = sk_hash_mix(h ^ v) + UINT64_C(0x9e3779b97f4a7c15);
        p += 8;
        len -= 8;
    }
    uint64_t v = 0;
    if (len)
        memcpy(&v, p, len);
    return sk_hash_mix(h ^ v ^ ((uint64_t)len << 56));
}

#endif
