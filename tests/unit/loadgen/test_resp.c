/* The load generator's HTTP response parser and its JSON member scan. */
#include <string.h>

#include "loadgen/resp.h"
#include "test.h"

/* Feeds `msg` one byte at a time (the worst split) and returns the final result. */
static int64_t feed_bytewise(sk_loadgen_resp_t *r, char *buf, const char *msg, size_t n)
{
    sk_loadgen_resp_reset(r);
    int64_t rc = -2;
    for (size_t i = 1; i <= n; i++) {
        buf[i - 1] = msg[i - 1];
        rc = sk_loadgen_resp_parse(r, buf, i);
        if (rc != -2)
            return (int64_t)i == rc || rc < 0 ? rc : -100;
    }
    return rc;
}

SK_TEST(test_content_length)
{
    char buf[512];
    const char *m = "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                    "Content-Length: 13\r\n\r\n{\"result\":1}\n";
    sk_loadgen_resp_t r;
    int64_t rc = feed_bytewise(&r, buf, m, strlen(m));
    ASSERT_EQ(rc, (int64_t)strlen(m));
    ASSERT_EQ(r.status, 201);
    ASSERT_TRUE(r.keep_alive);
    ASSERT_MEM_STR(r.body, r.body_len, "{\"result\":1}\n");
}

SK_TEST(test_chunked_in_place)
{
    char buf[512];
    const char *m = "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, Chunked\r\n\r\n"
                    "5;ext=1\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n";
    /* Transfer codings other than a final chunked cannot be framed; this one ends in
     * chunked, which is all the framing needs. */
    sk_loadgen_resp_t r;
    int64_t rc = feed_bytewise(&r, buf, m, strlen(m));
    ASSERT_EQ(rc, (int64_t)strlen(m));
    ASSERT_MEM_STR(r.body, r.body_len, "hello 0123456789");
    /* All at once, followed by the next pipelined response. */
    char two[512];
    const char *m2 = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
                     "HTTP/1.1 204 No Content\r\n\r\n";
    size_t n = strlen(m2);
    memcpy(two, m2, n);
    sk_loadgen_resp_reset(&r);
    rc = sk_loadgen_resp_parse(&r, two, n);
    ASSERT_GT(rc, 0);
    ASSERT_MEM_STR(r.body, r.body_len, "abc");
    sk_loadgen_resp_reset(&r);
    int64_t rc2 = sk_loadgen_resp_parse(&r, two + rc, n - (size_t)rc);
    ASSERT_EQ(rc2, (int64_t)(n - (size_t)rc));
    ASSERT_EQ(r.status, 204);
    ASSERT_EQ(r.body_len, 0);
}

SK_TEST(test_connection_close_and_eof)
{
    char buf[256];
    const char *m = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok";
    sk_loadgen_resp_t r;
    ASSERT_EQ(feed_bytewise(&r, buf, m, strlen(m)), (int64_t)strlen(m));
    ASSERT_TRUE(!r.keep_alive);
    /* HTTP/1.0 without a length: the body runs to the close. */
    const char *m10 = "HTTP/1.0 200 OK\r\nServer: x\r\n\r\nbody bytes";
    size_t n = strlen(m10);
    memcpy(buf, m10, n);
    sk_loadgen_resp_reset(&r);
    ASSERT_EQ(sk_loadgen_resp_parse(&r, buf, n), -2);
    ASSERT_EQ(sk_loadgen_resp_eof(&r, buf, n), (int64_t)n);
    ASSERT_MEM_STR(r.body, r.body_len, "body bytes");
    /* A Content-Length body cut by the close is an error. */
    const char *cut = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
    n = strlen(cut);
    memcpy(buf, cut, n);
    sk_loadgen_resp_reset(&r);
    ASSERT_EQ(sk_loadgen_resp_parse(&r, buf, n), -2);
    ASSERT_EQ(sk_loadgen_resp_eof(&r, buf, n), -1);
}

SK_TEST(test_invalid)
{
    static const char *const bad[] = {
        "HTTP/2.0 200 OK\r\n\r\n",
        "HTTX/1.1 200 OK\r\n\r\n",
        "HTTP/1.1 2x0 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        "garbage that is not http\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char buf[256];
        size_t n = strlen(bad[i]);
        memcpy(buf, bad[i], n);
        sk_loadgen_resp_t r;
        sk_loadgen_resp_reset(&r);
        int64_t rc = sk_loadgen_resp_parse(&r, buf, n);
        if (rc != -1)
            fprintf(stderr, "case %zu: %lld\n", i, (long long)rc);
        ASSERT_EQ(rc, -1);
    }
}

SK_TEST(test_json_scan)
{
    const char *j = "{\"error\":\"limit_reached\", \"message\":\"order_id\",\"order_id\" : "
                    "\"o-1\\\"x\",\"remaining\":42,\"next\":null}";
    const char *v;
    size_t n;
    ASSERT_EQ(sk_loadgen_json_scan(j, strlen(j), "error", &v, &n), 1);
    ASSERT_MEM_STR(v, n, "limit_reached");
    ASSERT_EQ(sk_loadgen_json_scan(j, strlen(j), "order_id", &v, &n), 1);
    ASSERT_MEM_STR(v, n, "o-1\\\"x");
    ASSERT_EQ(sk_loadgen_json_scan(j, strlen(j), "remaining", &v, &n), 2);
    ASSERT_MEM_STR(v, n, "42");
    ASSERT_EQ(sk_loadgen_json_scan(j, strlen(j), "next", &v, &n), 2);
    ASSERT_MEM_STR(v, n, "null");
    ASSERT_EQ(sk_loadgen_json_scan(j, strlen(j), "missing", &v, &n), 0);
    ASSERT_EQ(sk_loadgen_json_scan("{\"a\":\"unterminated", 18, "a", &v, &n), 0);
}

SK_TEST_MAIN(SK_RUN(test_content_length); SK_RUN(test_chunked_in_place); SK_RUN(test_connection_close_and_eof);
             SK_RUN(test_invalid); SK_RUN(test_json_scan);)
