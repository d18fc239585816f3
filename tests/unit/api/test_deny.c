/* src/api/deny.c: the deny list's lines (addresses, blocks, users, prefixes, comments),
 * errors with their line numbers, and lookups. */
#include "api/deny.h"
#include "test.h"

static sk_api_deny_t *parse(const char *text, char *err, size_t errlen)
{
    return sk_api_deny_parse(text, strlen(text), "deny.txt", err, errlen);
}

static bool denied_ip(const sk_api_deny_t *d, const char *s)
{
    sk_ip_t a;
    if (sk_ip_parse(s, strlen(s), &a) < 0)
        SK_FAIL_AT("'%s' does not parse", s);
    return sk_api_deny_ip(d, &a);
}

#define DENIED_USER(d, u) sk_api_deny_user(d, u, strlen(u))

SK_TEST(test_entries)
{
    char err[256] = "";
    sk_api_deny_t *d = parse("# bots seen on the 3rd\n"
                             "203.0.113.7\n"
                             "  198.51.100.0/24   # a whole range\n"
                             "2001:db8:bad::/48\n"
                             "\n"
                             "mallory\n"
                             "user:10.0.0.1\n"
                             "ip:192.0.2.1\r\n"
                             "trudy#1\n"
                             "bad.face\n" /* letters: a user */
                             "\t# indented comment\n"
                             "203.0.113.7\n", /* twice: one entry */
                             err, sizeof(err));
    if (!d)
        SK_FAIL_AT("refused: %s", err);
    size_t ips, users;
    sk_api_deny_counts(d, &ips, &users);
    ASSERT_EQ(ips, 4);
    ASSERT_EQ(users, 4);
    ASSERT_TRUE(denied_ip(d, "203.0.113.7"));
    ASSERT_TRUE(!denied_ip(d, "203.0.113.8"));
    ASSERT_TRUE(denied_ip(d, "198.51.100.0"));
    ASSERT_TRUE(denied_ip(d, "198.51.100.255"));
    ASSERT_TRUE(!denied_ip(d, "198.51.101.1"));
    ASSERT_TRUE(denied_ip(d, "::ffff:198.51.100.9")); /* the same client over IPv6 */
    ASSERT_TRUE(denied_ip(d, "2001:db8:bad:1::9"));
    ASSERT_TRUE(!denied_ip(d, "2001:db8:bae::1"));
    ASSERT_TRUE(denied_ip(d, "192.0.2.1"));
    ASSERT_TRUE(!denied_ip(d, "10.0.0.1")); /* a user of that name, not an address */
    ASSERT_TRUE(DENIED_USER(d, "10.0.0.1"));
    ASSERT_TRUE(DENIED_USER(d, "mallory"));
    ASSERT_TRUE(DENIED_USER(d, "trudy#1")); /* '#' inside an id is part of it */
    ASSERT_TRUE(!DENIED_USER(d, "mallor"));
    ASSERT_TRUE(!DENIED_USER(d, "malloryx"));
    ASSERT_TRUE(!DENIED_USER(d, ""));
    sk_api_deny_t *r = sk_api_deny_ref(d);
    ASSERT_TRUE(r == d);
    sk_api_deny_unref(d);
    ASSERT_TRUE(DENIED_USER(r, "mallory")); /* still held by the other reference */
    sk_api_deny_unref(r);
}

SK_TEST(test_errors)
{
    static const struct {
        const char *text;
        const char *want;
    } cases[] = {
        {"ok\n10.0.0.0/33\n", "deny.txt line 2: "},
        {"a b\n", "deny.txt line 1: one entry a line"},
        {"ip:mallory\n", "deny.txt line 1: not an IP address or a CIDR block"},
        {"\n\n\nbad\"quote\n", "deny.txt line 4: "},
        {"x\ny\nip:10.0.0.1/40\n", "deny.txt line 3: "},
        {"10.0.0.256\n", "deny.txt line 1: not a valid IP address"},
        {"2001:db8::/129\n", "deny.txt line 1: not a valid IP address"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[256] = "";
        sk_api_deny_t *d = parse(cases[i].text, err, sizeof(err));
        if (d)
            SK_FAIL_AT("'%s' was accepted", cases[i].text);
        if (strncmp(err, cases[i].want, strlen(cases[i].want)) != 0)
            SK_FAIL_AT("'%s': error '%s', want it to start with '%s'", cases[i].text, err, cases[i].want);
    }
    char nul[] = "a\0b\n";
    char err[256];
    ASSERT_TRUE(sk_api_deny_parse(nul, 4, "deny.txt", err, sizeof(err)) == NULL);
}

SK_TEST(test_empty_and_many)
{
    char err[256];
    sk_api_deny_t *d = parse("# nothing yet\n\n", err, sizeof(err));
    ASSERT_TRUE(d != NULL);
    ASSERT_TRUE(!denied_ip(d, "10.0.0.1"));
    ASSERT_TRUE(!DENIED_USER(d, "u1"));
    sk_api_deny_unref(d);
    ASSERT_TRUE(!sk_api_deny_ip(NULL, &(sk_ip_t){.family = 4}));
    ASSERT_TRUE(!sk_api_deny_user(NULL, "u", 1));
    /* Many entries of many prefix lengths (the tables grow). */
    char *text = malloc(1 << 20);
    size_t n = 0;
    for (int i = 0; i < 20000; i++)
        n += (size_t)sprintf(text + n, "10.%d.%d.0/%d\nbot-%d\n", i / 256, i % 256, 24 + i % 8, i);
    d = sk_api_deny_parse(text, n, "big", err, sizeof(err));
    free(text);
    ASSERT_TRUE(d != NULL);
    size_t ips, users;
    sk_api_deny_counts(d, &ips, &users);
    ASSERT_EQ(ips, 20000);
    ASSERT_EQ(users, 20000);
    ASSERT_TRUE(denied_ip(d, "10.3.7.0"));
    ASSERT_TRUE(DENIED_USER(d, "bot-19999"));
    ASSERT_TRUE(!DENIED_USER(d, "bot-20000"));
    ASSERT_TRUE(!denied_ip(d, "11.0.0.1"));
    sk_api_deny_unref(d);
}

SK_TEST_MAIN(SK_RUN(test_entries); SK_RUN(test_errors); SK_RUN(test_empty_and_many);)
