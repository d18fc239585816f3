/* src/crypto/token.c: admission tokens (valid, expired, tampered, another user, another
 * sale, another key, malformed) and user tokens (the same, and the documented format
 * checked against a vector computed with Python's hmac module). */
#include "crypto/token.h"
#include "test.h"
#include "util/common.h"

#define NOW INT64_C(1767225500000)
#define LATER INT64_C(1767225600000)

static sk_hmac_key_t key(const char *s)
{
    sk_hmac_key_t k;
    sk_hmac_init(&k, s, strlen(s));
    return k;
}

#define ADMIT(k, sale, user, tok, now)                                                                                 \
    sk_token_admission_verify(&(k), sale, strlen(sale), user, strlen(user), tok, strlen(tok), now)

SK_TEST(test_admission)
{
    sk_hmac_key_t k = key("admission-secret"), other = key("admission-secreT");
    char tok[SK_TOKEN_ADMISSION_MAX + 1];
    size_t n = sk_token_admission_mint(&k, "s1", 2, "u42", 3, LATER, tok);
    ASSERT_EQ(n, strlen(tok));
    ASSERT_LE(n, SK_TOKEN_ADMISSION_MAX);
    /* The format of token.h: expiry, '.', base64url of the MAC (Python's hmac agrees). */
    ASSERT_STR_EQ(tok, "1767225600000.x5P3vOZU1uX6WSoLXSR4dh2Wb3e6hB_s5ngThYUOgMo");
    ASSERT_EQ(ADMIT(k, "s1", "u42", tok, NOW), 0);
    ASSERT_EQ(ADMIT(k, "s1", "u42", tok, LATER - 1), 0);
    ASSERT_EQ(ADMIT(k, "s1", "u42", tok, LATER), SK_TOKEN_EXPIRED);
    ASSERT_EQ(ADMIT(k, "s1", "u43", tok, NOW), SK_TOKEN_BAD_MAC); /* another user */
    ASSERT_EQ(ADMIT(k, "s2", "u42", tok, NOW), SK_TOKEN_BAD_MAC); /* another sale */
    ASSERT_EQ(ADMIT(other, "s1", "u42", tok, NOW), SK_TOKEN_BAD_MAC); /* another key */
    /* The separators keep (sale, user) pairs apart: "s1\nu42" is not "s1\nu" + "42". */
    ASSERT_EQ(ADMIT(k, "s1\nu", "42", tok, NOW), SK_TOKEN_BAD_MAC);
    /* Tampering: a later expiry, a flipped MAC character. */
    char t2[SK_TOKEN_ADMISSION_MAX + 1];
    memcpy(t2, tok, n + 1);
    t2[0] = '2';
    ASSERT_EQ(ADMIT(k, "s1", "u42", t2, NOW), SK_TOKEN_BAD_MAC);
    memcpy(t2, tok, n + 1);
    t2[n - 5] = t2[n - 5] == 'A' ? 'B' : 'A';
    ASSERT_EQ(ADMIT(k, "s1", "u42", t2, NOW), SK_TOKEN_BAD_MAC);
    /* Malformed: empty, cut, no dot, letters in the expiry, a bad MAC character, too long
     * an expiry, a leading sign. */
    static const char *const bad[] = {"",
                                      "1767225600000",
                                      "1767225600000.",
                                      "1767225600000.x5P3vOZU1uX6WSoLXSR4dh2Wb3e6hB_s5ngThYUOgM",
                                      "1767225600000x5P3vOZU1uX6WSoLXSR4dh2Wb3e6hB_s5ngThYUOgMox",
                                      "17672256000x0.x5P3vOZU1uX6WSoLXSR4dh2Wb3e6hB_s5ngThYUOgMo",
                                      "1767225600000.x5P3+OZU1uX6WSoLXSR4dh2Wb3e6hB_s5ngThYUOgMo",
                                      "1234567890123456.x5P3vOZU1uX6WSoLXSR4dh2Wb3e6hB_s5ngThYUOgMo",
                                      "+767225600000.x5P3vOZU1uX6WSoLXSR4dh2Wb3e6hB_s5ngThYUOgMo",
                                      ".x5P3vOZU1uX6WSoLXSR4dh2Wb3e6hB_s5ngThYUOgMo"};
    for (size_t i = 0; i < SK_ARRAY_LEN(bad); i++)
        if (ADMIT(k, "s1", "u42", bad[i], NOW) != SK_TOKEN_MALFORMED)
            SK_FAIL_AT("'%s' is not malformed: %d", bad[i], ADMIT(k, "s1", "u42", bad[i], NOW));
    ASSERT_STR_EQ(sk_token_reason(SK_TOKEN_EXPIRED), "expired");
    ASSERT_STR_EQ(sk_token_reason(SK_TOKEN_BAD_MAC), "bad_mac");
    ASSERT_STR_EQ(sk_token_reason(SK_TOKEN_MALFORMED), "malformed");
}

static int user_verify(const sk_hmac_key_t *k, const char *tok, int64_t now, char *user)
{
    const char *u = NULL;
    size_t ul = 0;
    int rc = sk_token_user_verify(k, tok, strlen(tok), now, &u, &ul);
    if (rc == 0) {
        memcpy(user, u, ul);
        user[ul] = '\0';
    }
    return rc;
}

SK_TEST(test_user_token)
{
    sk_hmac_key_t k = key("user-token-secret"), other = key("another-secret");
    char tok[SK_TOKEN_USER_MAX + 1], user[SK_TOKEN_USER_MAX + 1];
    /* A user with a dot: the token splits at its last two dots. */
    size_t n = sk_token_user_mint(&k, "u.42", 4, LATER, tok);
    ASSERT_EQ(n, strlen(tok));
    ASSERT_STR_EQ(tok, "u.42.1767225600000.54d51038bb21055bdb7c8f0bf0522a09f95a3172cdf3979ba8b2bd8f2efb0096");
    ASSERT_EQ(user_verify(&k, tok, NOW, user), 0);
    ASSERT_STR_EQ(user, "u.42");
    ASSERT_EQ(user_verify(&k, tok, LATER, user), SK_TOKEN_EXPIRED);
    ASSERT_EQ(user_verify(&other, tok, NOW, user), SK_TOKEN_BAD_MAC);
    /* Upper-case hex is the same MAC. */
    char up[SK_TOKEN_USER_MAX + 1];
    memcpy(up, tok, n + 1);
    for (size_t i = n - 64; i < n; i++)
        if (up[i] >= 'a' && up[i] <= 'f')
            up[i] = (char)(up[i] - 'a' + 'A');
    ASSERT_EQ(user_verify(&k, up, NOW, user), 0);
    /* Another user in the same token, a later expiry: the MAC no longer fits. */
    static const char *const tampered[] = {
        "u.43.1767225600000.54d51038bb21055bdb7c8f0bf0522a09f95a3172cdf3979ba8b2bd8f2efb0096",
        "u.42.1767225600001.54d51038bb21055bdb7c8f0bf0522a09f95a3172cdf3979ba8b2bd8f2efb0096",
        "u.42.1767225600000.54d51038bb21055bdb7c8f0bf0522a09f95a3172cdf3979ba8b2bd8f2efb0097",
        "u42.1767225600000.54d51038bb21055bdb7c8f0bf0522a09f95a3172cdf3979ba8b2bd8f2efb0096",
    };
    for (size_t i = 0; i < SK_ARRAY_LEN(tampered); i++)
        ASSERT_EQ(user_verify(&k, tampered[i], NOW, user), SK_TOKEN_BAD_MAC);
    static const char *const malformed[] = {
        "",
        "u42",
        ".1767225600000.54d51038bb21055bdb7c8f0bf0522a09f95a3172cdf3979ba8b2bd8f2efb0096", /* no user */
        "u42..54d51038bb21055bdb7c8f0bf0522a09f95a3172cdf3979ba8b2bd8f2efb0096", /* no expiry */
        "u42.1767225600000.54d51038bb21055bdb7c8f0bf0522a09f95a3172cdf3979ba8b2bd8f2efb009", /* short MAC */
        "u42.1767225600000.54d51038bb21055bdb7c8f0bf0522a09f95a3172cdf3979ba8b2bd8f2efb009g", /* not hex */
        "u42.17672256x0000.54d51038bb21055bdb7c8f0bf0522a09f95a3172cdf3979ba8b2bd8f2efb0096",
        "1767225600000.54d51038bb21055bdb7c8f0bf0522a09f95a3172cdf3979ba8b2bd8f2efb0096", /* one dot */
    };
    for (size_t i = 0; i < SK_ARRAY_LEN(malformed); i++)
        if (user_verify(&k, malformed[i], NOW, user) != SK_TOKEN_MALFORMED)
            SK_FAIL_AT("'%s' is not malformed", malformed[i]);
    /* A 64-byte user fits; the text of a longer one is refused before any MAC. */
    char u64[65];
    memset(u64, 'x', 64);
    u64[64] = '\0';
    n = sk_token_user_mint(&k, u64, 64, LATER, tok);
    ASSERT_EQ(n, 64 + 1 + 13 + 1 + 64);
    ASSERT_LE(n, SK_TOKEN_USER_MAX);
    ASSERT_EQ(user_verify(&k, tok, NOW, user), 0);
    ASSERT_STR_EQ(user, u64);
}

SK_TEST(test_domains_apart)
{
    /* One key by mistake for both kinds: a user token's MAC is no admission's. */
    sk_hmac_key_t k = key("shared");
    char a[SK_TOKEN_ADMISSION_MAX + 1], u[SK_TOKEN_USER_MAX + 1];
    sk_token_admission_mint(&k, "s1", 2, "u1", 2, LATER, a);
    sk_token_user_mint(&k, "u1", 2, LATER, u);
    ASSERT_TRUE(strcmp(strrchr(a, '.'), strrchr(u, '.')) != 0);
}

SK_TEST_MAIN(SK_RUN(test_admission); SK_RUN(test_user_token); SK_RUN(test_domains_apart);)
