/* src/api/identity.c: the client's address behind trusted proxies (X-Forwarded-For read
 * from the right, X-Real-IP, garbage, several headers). Identity through HTTP, with real
 * peers, is in tests/integration/test_front_door.py. */
#include "api/internal.h"
#include "test.h"

static sk_cidr_t trusted[2];

static const char *client(const char *headers, const char *peer)
{
    static char head[2048];
    static sk_http_request_t req;
    snprintf(head, sizeof(head), "GET /api/v1/sales HTTP/1.1\r\nHost: h\r\n%s\r\n", headers);
    if (sk_http_parse_request(head, strlen(head), &req) <= 0)
        SK_FAIL_AT("does not parse: %s", head);
    sk_ip_t ip;
    ASSERT_EQ(sk_ip_parse(peer, strlen(peer), &ip), 0);
    sk_api_forwarded_ip(&req, trusted, 2, &ip);
    static char out[SK_IP_TEXT_MAX];
    sk_ip_format(&ip, out);
    return out;
}

SK_TEST(test_forwarded)
{
    ASSERT_EQ(sk_cidr_parse("10.0.0.0/8", 10, &trusted[0]), 0);
    ASSERT_EQ(sk_cidr_parse("::1", 3, &trusted[1]), 0);
    const char *peer = "10.0.0.5"; /* our nginx */
    ASSERT_STR_EQ(client("", peer), "10.0.0.5");
    ASSERT_STR_EQ(client("X-Forwarded-For: 203.0.113.9\r\n", peer), "203.0.113.9");
    /* The client wrote its own X-Forwarded-For: nginx appended the real address. */
    ASSERT_STR_EQ(client("X-Forwarded-For: 1.1.1.1, 203.0.113.9\r\n", peer), "203.0.113.9");
    /* Two trusted hops (a CDN edge in 10/8, then nginx). */
    ASSERT_STR_EQ(client("X-Forwarded-For: 1.1.1.1, 203.0.113.9, 10.9.9.9\r\n", peer), "203.0.113.9");
    /* Every hop trusted: the leftmost. */
    ASSERT_STR_EQ(client("X-Forwarded-For: 10.1.1.1,10.2.2.2\r\n", peer), "10.1.1.1");
    /* Several headers are one list, in order. */
    ASSERT_STR_EQ(client("X-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 203.0.113.9, 10.3.3.3\r\n", peer),
                  "203.0.113.9");
    /* Garbage stops the walk at the last address a trusted hop vouched for. */
    ASSERT_STR_EQ(client("X-Forwarded-For: 203.0.113.9, not-an-ip, 10.4.4.4\r\n", peer), "10.4.4.4");
    ASSERT_STR_EQ(client("X-Forwarded-For: garbage\r\n", peer), "10.0.0.5");
    /* Ports and brackets, IPv6. */
    ASSERT_STR_EQ(client("X-Forwarded-For: 203.0.113.9:5555\r\n", peer), "203.0.113.9");
    ASSERT_STR_EQ(client("X-Forwarded-For: [2001:db8::7]:443\r\n", peer), "2001:db8::7");
    ASSERT_STR_EQ(client("X-Forwarded-For: 2001:db8::7\r\n", peer), "2001:db8::7");
    /* X-Real-IP when there is no X-Forwarded-For. */
    ASSERT_STR_EQ(client("X-Real-IP: 198.51.100.4\r\n", peer), "198.51.100.4");
    ASSERT_STR_EQ(client("X-Real-IP: nonsense\r\n", peer), "10.0.0.5");
    ASSERT_STR_EQ(client("X-Real-IP: 198.51.100.4\r\nX-Forwarded-For: 203.0.113.9\r\n", peer), "203.0.113.9");
    ASSERT_STR_EQ(client("X-Forwarded-For: , ,203.0.113.9 ,\r\n", peer), "203.0.113.9");
}

SK_TEST_MAIN(SK_RUN(test_forwarded);)
