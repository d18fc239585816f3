/* src/crypto/pow.c: stateless challenges and their check (valid, too few bits, another
 * sale, user or key, stale, malformed). The vector is shared with web/pow.js's test
 * (tests/browser/test_pow.mjs) and was computed with Python's hashlib and hmac. */
#include "crypto/pow.h"
#include "test.h"
#include "util/common.h"

#define NOW INT64_C(1740000000000) /* bucket 29000000 */
#define CHALLENGE "29000000.ERBGRId0Raj51Q55NdBArSB70Ut7Jl3XUcIBS3M6NrA"

static int verify(const sk_hmac_key_t *k, const char *sale, const char *user, const char *ch, const char *nonce,
                  unsigned bits, int64_t now)
{
    return sk_pow_verify(k, sale, strlen(sale), user, strlen(user), ch, strlen(ch), nonce, strlen(nonce), bits, now);
}

SK_TEST(test_challenge)
{
    sk_hmac_key_t k;
    sk_hmac_init(&k, "pow-test-key", 12);
    char ch[SK_POW_CHALLENGE_MAX + 1];
    size_t n = sk_pow_challenge(&k, "s1", 2, "u1", 2, NOW, ch);
    ASSERT_EQ(n, strlen(ch));
    ASSERT_STR_EQ(ch, CHALLENGE);
    /* The same within the bucket. */
    sk_pow_challenge(&k, "s1", 2, "u1", 2, NOW + SK_POW_BUCKET_MS - 1, ch);
    ASSERT_STR_EQ(ch, CHALLENGE);
}

SK_TEST(test_verify)
{
    sk_hmac_key_t k, other;
    sk_hmac_init(&k, "pow-test-key", 12);
    sk_hmac_init(&other, "pow-test-kez", 12);
    /* 5614 is the first decimal nonce whose hash has 12 leading zero bits (exactly 12). */
    ASSERT_EQ(verify(&k, "s1", "u1", CHALLENGE, "5614", 12, NOW), 0);
    ASSERT_EQ(verify(&k, "s1", "u1", CHALLENGE, "5614", 13, NOW), SK_POW_TOO_FEW_BITS);
    ASSERT_EQ(verify(&k, "s1", "u1", CHALLENGE, "5613", 12, NOW), SK_POW_TOO_FEW_BITS);
    ASSERT_EQ(verify(&k, "s1", "u1", CHALLENGE, "110681", 16, NOW), 0);
    ASSERT_EQ(verify(&k, "s1", "u1", CHALLENGE, "187", 8, NOW), 0);
    ASSERT_EQ(verify(&k, "s1", "u1", CHALLENGE, "x", 0, NOW), 0); /* pow_bits 0: any nonce */
    /* Wrong challenge: another sale, another user, another key, a tampered one. */
    ASSERT_EQ(verify(&k, "s2", "u1", CHALLENGE, "5614", 12, NOW), SK_POW_NOT_OURS);
    ASSERT_EQ(verify(&k, "s1", "u2", CHALLENGE, "5614", 12, NOW), SK_POW_NOT_OURS);
    ASSERT_EQ(verify(&other, "s1", "u1", CHALLENGE, "5614", 12, NOW), SK_POW_NOT_OURS);
    ASSERT_EQ(verify(&k, "s1", "u1", "29000001.ERBGRId0Raj51Q55NdBArSB70Ut7Jl3XUcIBS3M6NrA", "5614", 12, NOW),
              SK_POW_NOT_OURS);
    /* Good for its bucket, the next, and one behind (a node whose clock is late); then stale. */
    ASSERT_EQ(verify(&k, "s1", "u1", CHALLENGE, "5614", 12, NOW + SK_POW_BUCKET_MS), 0);
    ASSERT_EQ(verify(&k, "s1", "u1", CHALLENGE, "5614", 12, NOW - 1), 0);
    ASSERT_EQ(verify(&k, "s1", "u1", CHALLENGE, "5614", 12, NOW + 2 * SK_POW_BUCKET_MS), SK_POW_STALE);
    ASSERT_EQ(verify(&k, "s1", "u1", CHALLENGE, "5614", 12, NOW - SK_POW_BUCKET_MS - 1), SK_POW_STALE);
    /* Malformed challenges and nonces. */
    static const char *const bad_ch[] = {"",
                                         "29000000",
                                         "29000000.",
                                         "29000000.ERBGRId0Raj51Q55NdBArSB70Ut7Jl3XUcIBS3M6Nr",
                                         "2900000x.ERBGRId0Raj51Q55NdBArSB70Ut7Jl3XUcIBS3M6NrA",
                                         "029000000.ERBGRId0Raj51Q55NdBArSB70Ut7Jl3XUcIBS3M6NrA",
                                         "29000000.ERBG/Id0Raj51Q55NdBArSB70Ut7Jl3XUcIBS3M6NrA"};
    for (size_t i = 0; i < SK_ARRAY_LEN(bad_ch); i++)
        if (verify(&k, "s1", "u1", bad_ch[i], "5614", 12, NOW) != SK_POW_MALFORMED)
            SK_FAIL_AT("challenge '%s' is not malformed", bad_ch[i]);
    ASSERT_EQ(verify(&k, "s1", "u1", CHALLENGE, "", 12, NOW), SK_POW_MALFORMED);
    ASSERT_EQ(verify(&k, "s1", "u1", CHALLENGE, "23 07", 12, NOW), SK_POW_MALFORMED);
    char long_nonce[SK_POW_NONCE_MAX + 2];
    memset(long_nonce, '1', sizeof(long_nonce) - 1);
    long_nonce[sizeof(long_nonce) - 1] = '\0';
    ASSERT_EQ(verify(&k, "s1", "u1", CHALLENGE, long_nonce, 0, NOW), SK_POW_MALFORMED);
}

SK_TEST(test_leading_zeros)
{
    uint8_t d[SK_SHA256_LEN] = {0};
    ASSERT_EQ(sk_pow_leading_zeros(d), 256);
    d[0] = 0x80;
    ASSERT_EQ(sk_pow_leading_zeros(d), 0);
    d[0] = 0x01;
    ASSERT_EQ(sk_pow_leading_zeros(d), 7);
    d[0] = 0;
    d[1] = 0x10;
    ASSERT_EQ(sk_pow_leading_zeros(d), 11);
    d[1] = 0;
    d[31] = 1;
    ASSERT_EQ(sk_pow_leading_zeros(d), 255);
}

SK_TEST_MAIN(SK_RUN(test_challenge); SK_RUN(test_verify); SK_RUN(test_leading_zeros);)
