/* src/api/auth.c: the admin token file's format, and what counts as a cross-site request.
 * (Tokens are compared as HMACs under a random key: the integration test
 * test_front_door.py checks right, wrong, longer and shorter tokens through HTTP.) */
#include "api/internal.h"
#include "test.h"

static int parse_tokens(const char *text, sk_api_token_t *out, size_t cap, char *err)
{
    static char buf[4096];
    size_t n = strlen(text);
    memcpy(buf, text, n + 1);
    return sk_api_tokens_parse(buf, n, out, cap, err, 256);
}

SK_TEST(test_token_file)
{
    sk_api_token_t t[8];
    char err[256] = "";
    ASSERT_EQ(parse_tokens("s3cret", t, 8, err), 1);
    ASSERT_STR_EQ(t[0].name, "admin");
    ASSERT_MEM_STR(t[0].token, t[0].len, "s3cret");
    /* One line of a token with a ':' after something that is not a name: still one token. */
    ASSERT_EQ(parse_tokens("not a name:tok\n", t, 8, err), 1);
    ASSERT_MEM_STR(t[0].token, t[0].len, "not a name:tok");
    ASSERT_EQ(parse_tokens("# the operators\nalice:a-token\r\nbob:b:token with colon\n\n", t, 8, err), 2);
    ASSERT_STR_EQ(t[0].name, "alice");
    ASSERT_MEM_STR(t[0].token, t[0].len, "a-token");
    ASSERT_STR_EQ(t[1].name, "bob");
    ASSERT_MEM_STR(t[1].token, t[1].len, "b:token with colon");
    static const struct {
        const char *text;
        const char *want;
    } bad[] = {
        {"", "no token"},
        {"# only a comment\n", "no token"},
        {"alice:\n", "line 1: the token of 'alice' is empty"},
        {"alice:x\nalice:y\n", "line 2: the name 'alice' is given twice"},
        {"alice:x\nbob:x\n", "line 2: 'bob' has the same token as 'alice'"},
        {"alice:x\njust-a-token\n", "line 2: expected NAME:TOKEN"},
        {"tok1\ntok2\n", "line 1: expected NAME:TOKEN"},
        {"a:1\nb:2\nc:3\n", "line 3: more than 2 tokens"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        int rc = parse_tokens(bad[i].text, t, i == 7 ? 2 : 8, err);
        if (rc >= 0)
            SK_FAIL_AT("'%s' accepted", bad[i].text);
        if (strncmp(err, bad[i].want, strlen(bad[i].want)) != 0)
            SK_FAIL_AT("'%s': '%s', want '%s'", bad[i].text, err, bad[i].want);
    }
}

static bool cross(const char *head)
{
    static sk_http_request_t req;
    if (sk_http_parse_request(head, strlen(head), &req) <= 0)
        SK_FAIL_AT("does not parse: %s", head);
    return sk_api_cross_site(&req);
}

SK_TEST(test_cross_site)
{
    /* curl, scripts: neither header. */
    ASSERT_TRUE(!cross("POST /api/v1/sales HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"));
    /* The dashboard: same origin. */
    ASSERT_TRUE(!cross("POST /api/v1/sales HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nOrigin: http://127.0.0.1:8080\r\n"
                       "Sec-Fetch-Site: same-origin\r\n\r\n"));
    ASSERT_TRUE(!cross("POST / HTTP/1.1\r\nHost: Shop.Example\r\nOrigin: https://shop.example\r\n\r\n"));
    /* A form on another site. */
    ASSERT_TRUE(cross("POST /api/v1/sales HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nOrigin: https://evil.example\r\n\r\n"));
    ASSERT_TRUE(cross("POST /api/v1/sales HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nSec-Fetch-Site: cross-site\r\n\r\n"));
    ASSERT_TRUE(cross("POST / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nOrigin: http://127.0.0.1:8081\r\n\r\n"));
    ASSERT_TRUE(cross("POST / HTTP/1.1\r\nHost: shop.example\r\nOrigin: https://shop.example.evil\r\n\r\n"));
    ASSERT_TRUE(cross("POST / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nOrigin: null\r\n\r\n"));
    ASSERT_TRUE(cross("POST / HTTP/1.0\r\nOrigin: http://127.0.0.1:8080\r\n\r\n")); /* no Host to match */
}

SK_TEST_MAIN(SK_RUN(test_token_file); SK_RUN(test_cross_site);)
