/* src/util/ip.c: addresses (IPv4, IPv6, IPv4-mapped IPv6 as IPv4), blocks, masks. */
#include <netinet/in.h>

#include "test.h"
#include "util/ip.h"

static sk_ip_t ip(const char *s)
{
    sk_ip_t a;
    if (sk_ip_parse(s, strlen(s), &a) < 0)
        SK_FAIL_AT("'%s' does not parse", s);
    return a;
}

static sk_cidr_t cidr(const char *s)
{
    sk_cidr_t c;
    if (sk_cidr_parse(s, strlen(s), &c) < 0)
        SK_FAIL_AT("'%s' does not parse", s);
    return c;
}

static void assert_text(const char *in, const char *want)
{
    sk_ip_t a = ip(in);
    char out[SK_IP_TEXT_MAX];
    ASSERT_MEM_STR(out, sk_ip_format(&a, out), want);
}

SK_TEST(test_parse)
{
    ASSERT_EQ(ip("10.1.2.3").family, 4);
    ASSERT_EQ(ip("2001:db8::1").family, 6);
    ASSERT_EQ(ip("::ffff:10.1.2.3").family, 4); /* one client, one key */
    ASSERT_TRUE(sk_ip_eq(&(sk_ip_t){0}, &(sk_ip_t){0}));
    sk_ip_t a = ip("::ffff:10.1.2.3"), b = ip("10.1.2.3");
    ASSERT_TRUE(sk_ip_eq(&a, &b));
    assert_text("10.1.2.3", "10.1.2.3");
    assert_text("2001:DB8:0::1", "2001:db8::1");
    assert_text("::ffff:192.168.0.1", "192.168.0.1");
    static const char *const bad[] = {"",     "10.1.2",         "10.1.2.3.4", "256.1.1.1",   "10.1.2.3 ",   "1234",
                                      "host", "2001:db8::1::2", "[::1]",      "10.1.2.3:80", "fe80::1%eth0"};
    sk_ip_t x;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (sk_ip_parse(bad[i], strlen(bad[i]), &x) == 0)
            SK_FAIL_AT("'%s' parsed", bad[i]);
    /* Only the n bytes given count. */
    ASSERT_EQ(sk_ip_parse("10.1.2.3junk", 8, &x), 0);
    ASSERT_EQ(x.a[3], 3);
    sk_ip_t none = {0};
    char out[SK_IP_TEXT_MAX];
    ASSERT_MEM_STR(out, sk_ip_format(&none, out), "-");
}

SK_TEST(test_sockaddr)
{
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
    s6.sin6_addr.s6_addr[10] = 0xff;
    s6.sin6_addr.s6_addr[11] = 0xff;
    s6.sin6_addr.s6_addr[12] = 127;
    s6.sin6_addr.s6_addr[15] = 1;
    sk_ip_t a;
    sk_ip_from_sockaddr((struct sockaddr *)&s6, &a);
    ASSERT_EQ(a.family, 4);
    ASSERT_TRUE(sk_ip_is_loopback(&a));
    struct sockaddr un = {.sa_family = AF_UNIX};
    sk_ip_from_sockaddr(&un, &a);
    ASSERT_EQ(a.family, 0);
}

SK_TEST(test_loopback)
{
    sk_ip_t a = ip("127.0.0.1"), b = ip("127.200.1.1"), c = ip("::1"), d = ip("10.0.0.1"), e = ip("::2");
    ASSERT_TRUE(sk_ip_is_loopback(&a));
    ASSERT_TRUE(sk_ip_is_loopback(&b));
    ASSERT_TRUE(sk_ip_is_loopback(&c));
    ASSERT_TRUE(!sk_ip_is_loopback(&d));
    ASSERT_TRUE(!sk_ip_is_loopback(&e));
}

SK_TEST(test_cidr)
{
    sk_cidr_t c = cidr("10.0.0.0/8");
    sk_ip_t in = ip("10.200.3.4"), out = ip("11.0.0.1"), v6 = ip("::a00:1");
    ASSERT_TRUE(sk_cidr_contains(&c, &in));
    ASSERT_TRUE(!sk_cidr_contains(&c, &out));
    ASSERT_TRUE(!sk_cidr_contains(&c, &v6)); /* families never mix */
    /* Host bits are cleared: 10.1.2.3/8 is 10.0.0.0/8. */
    sk_cidr_t h = cidr("10.1.2.3/8");
    ASSERT_TRUE(sk_cidr_contains(&h, &in));
    sk_cidr_t one = cidr("192.168.1.7");
    ASSERT_EQ(one.bits, 32);
    sk_ip_t same = ip("192.168.1.7"), next = ip("192.168.1.8");
    ASSERT_TRUE(sk_cidr_contains(&one, &same));
    ASSERT_TRUE(!sk_cidr_contains(&one, &next));
    sk_cidr_t odd = cidr("192.168.1.0/25");
    sk_ip_t low = ip("192.168.1.127"), high = ip("192.168.1.128");
    ASSERT_TRUE(sk_cidr_contains(&odd, &low));
    ASSERT_TRUE(!sk_cidr_contains(&odd, &high));
    sk_cidr_t all = cidr("0.0.0.0/0");
    ASSERT_TRUE(sk_cidr_contains(&all, &out));
    sk_cidr_t net6 = cidr("2001:db8:1::/48");
    sk_ip_t a6 = ip("2001:db8:1:ffff::1"), b6 = ip("2001:db8:2::1");
    ASSERT_TRUE(sk_cidr_contains(&net6, &a6));
    ASSERT_TRUE(!sk_cidr_contains(&net6, &b6));
    static const char *const bad[] = {"10.0.0.0/33", "10.0.0.0/",     "10.0.0.0/a", "/8",
                                      "::/129",      "10.0.0.0/0008", "10.0.0.0/-1"};
    sk_cidr_t x;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (sk_cidr_parse(bad[i], strlen(bad[i]), &x) == 0)
            SK_FAIL_AT("'%s' parsed", bad[i]);
    sk_cidr_t list[] = {cidr("10.0.0.0/8"), cidr("::1")};
    sk_ip_t lo6 = ip("::1");
    ASSERT_TRUE(sk_cidr_list_contains(list, 2, &in));
    ASSERT_TRUE(sk_cidr_list_contains(list, 2, &lo6));
    ASSERT_TRUE(!sk_cidr_list_contains(list, 2, &out));
    ASSERT_TRUE(!sk_cidr_list_contains(list, 0, &in));
}

SK_TEST_MAIN(SK_RUN(test_parse); SK_RUN(test_sockaddr); SK_RUN(test_loopback); SK_RUN(test_cidr);)
