/* src/crypto/hmac.c: HMAC-SHA256 with a precomputed key schedule against RFC 4231's
 * vectors and OpenSSL's one-shot HMAC() (keys of every length around the block size,
 * messages in pieces), SHA-256 in pieces, the constant-time comparison and the wipe. */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>

#include "crypto/encode.h"
#include "crypto/hmac.h"
#include "test.h"
#include "util/common.h"

static void assert_hex(const uint8_t *d, size_t n, const char *want)
{
    char hex[2 * 64 + 1];
    hex[sk_hex_encode(hex, d, n)] = '\0';
    ASSERT_STR_EQ(hex, want);
}

SK_TEST(test_rfc4231)
{
    sk_hmac_key_t k;
    uint8_t out[SK_SHA256_LEN], key[131];
    /* Test case 1. */
    memset(key, 0x0b, 20);
    sk_hmac_init(&k, key, 20);
    sk_hmac_sha256(&k, "Hi There", 8, out);
    assert_hex(out, sizeof(out), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    /* Test case 2: a short key. */
    sk_hmac_init(&k, "Jefe", 4);
    sk_hmac_sha256(&k, "what do ya want for nothing?", 28, out);
    assert_hex(out, sizeof(out), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /* Test case 6: a key longer than the block is hashed first. */
    memset(key, 0xaa, 131);
    sk_hmac_init(&k, key, 131);
    const char *msg = "Test Using Larger Than Block-Size Key - Hash Key First";
    sk_hmac_sha256(&k, msg, strlen(msg), out);
    assert_hex(out, sizeof(out), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    /* The same key serves many messages: the precomputed states are never changed. */
    sk_hmac_sha256(&k, msg, strlen(msg), out);
    assert_hex(out, sizeof(out), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

SK_TEST(test_against_openssl)
{
    uint8_t key[200], msg[300];
    for (size_t i = 0; i < sizeof(key); i++)
        key[i] = (uint8_t)(i * 7 + 3);
    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (uint8_t)(i * 13 + 1);
    size_t key_lens[] = {0, 1, 31, 32, 63, 64, 65, 128, 200};
    size_t msg_lens[] = {0, 1, 55, 56, 63, 64, 65, 119, 120, 300};
    for (size_t a = 0; a < SK_ARRAY_LEN(key_lens); a++)
        for (size_t b = 0; b < SK_ARRAY_LEN(msg_lens); b++) {
            sk_hmac_key_t k;
            sk_hmac_init(&k, key, key_lens[a]);
            uint8_t got[SK_SHA256_LEN], want[SK_SHA256_LEN];
            unsigned wl = 0;
            HMAC(EVP_sha256(), key, (int)key_lens[a], msg, msg_lens[b], want, &wl);
            ASSERT_EQ(wl, SK_SHA256_LEN);
            sk_hmac_sha256(&k, msg, msg_lens[b], got);
            if (memcmp(got, want, sizeof(got)) != 0)
                SK_FAIL_AT("key %zu bytes, message %zu bytes: differs from OpenSSL's HMAC()", key_lens[a], msg_lens[b]);
            /* The same message in three pieces. */
            size_t m = msg_lens[b], p1 = m / 3, p2 = m / 2;
            sk_bytes_t parts[] = {{msg, p1}, {msg + p1, p2 - p1}, {msg + p2, m - p2}};
            sk_hmac_sha256v(&k, parts, 3, got);
            ASSERT_TRUE(memcmp(got, want, sizeof(got)) == 0);
        }
}

SK_TEST(test_sha256)
{
    uint8_t out[SK_SHA256_LEN];
    sk_bytes_t abc[] = {{"a", 1}, {"bc", 2}};
    sk_sha256v(abc, 2, out);
    assert_hex(out, sizeof(out), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    sk_sha256v(NULL, 0, out);
    assert_hex(out, sizeof(out), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

SK_TEST(test_ct_eq)
{
    /* What it answers (its timing is OpenSSL's CRYPTO_memcmp, which reads every byte). */
    uint8_t a[32], b[32];
    for (int i = 0; i < 32; i++)
        a[i] = b[i] = (uint8_t)i;
    ASSERT_TRUE(sk_ct_eq(a, b, 32));
    ASSERT_TRUE(sk_ct_eq(a, b, 0));
    for (int i = 0; i < 32; i++) {
        b[i] ^= 0x80;
        ASSERT_TRUE(!sk_ct_eq(a, b, 32));
        b[i] ^= 0x80;
        b[i] ^= 0x01;
        ASSERT_TRUE(!sk_ct_eq(a, b, 32));
        b[i] ^= 0x01;
    }
    ASSERT_TRUE(sk_ct_eq(a, b, 32));
}

SK_TEST(test_wipe_and_random)
{
    sk_hmac_key_t k;
    sk_hmac_init(&k, "secret", 6);
    sk_hmac_wipe(&k);
    static const sk_hmac_key_t zero;
    ASSERT_TRUE(memcmp(&k, &zero, sizeof(k)) == 0);
    uint8_t r1[32], r2[32];
    ASSERT_EQ(sk_random_bytes(r1, sizeof(r1)), 0);
    ASSERT_EQ(sk_random_bytes(r2, sizeof(r2)), 0);
    ASSERT_TRUE(memcmp(r1, r2, sizeof(r1)) != 0);
}

SK_TEST_MAIN(SK_RUN(test_rfc4231); SK_RUN(test_against_openssl); SK_RUN(test_sha256); SK_RUN(test_ct_eq);
             SK_RUN(test_wipe_and_random);)
