/* The Redis store's parsing helpers: store URLs, key names, sale hashes and order
 * stream entries (replies built with hiredis's own reader from RESP text). */
#include <errno.h>
#include <hiredis/hiredis.h>

#include "redis/redis.h"
#include "test.h"

static redisReply *resp(const char *text)
{
    redisReader *rd = redisReaderCreate();
    void *reply = NULL;
    redisReaderFeed(rd, text, strlen(text));
    if (redisReaderGetReply(rd, &reply) != REDIS_OK)
        reply = NULL;
    redisReaderFree(rd);
    return reply;
}

SK_TEST(url)
{
    sk_redis_addr_t a;
    char err[256];
    ASSERT_EQ(sk_redis_parse_url("redis://127.0.0.1:7000", &a, err, sizeof(err)), 0);
    ASSERT_STR_EQ(a.host, "127.0.0.1");
    ASSERT_EQ(a.port, 7000);
    ASSERT_EQ(a.db, 0);
    ASSERT_EQ(sk_redis_parse_url("redis://cache.internal/3", &a, err, sizeof(err)), 0);
    ASSERT_STR_EQ(a.host, "cache.internal");
    ASSERT_EQ(a.port, 6379);
    ASSERT_EQ(a.db, 3);
    ASSERT_EQ(sk_redis_parse_url("redis://[::1]:6380/", &a, err, sizeof(err)), 0);
    ASSERT_STR_EQ(a.host, "::1");
    ASSERT_EQ(a.port, 6380);
    ASSERT_EQ(sk_redis_parse_url("redis://:s3cret@10.0.0.5:6390/1", &a, err, sizeof(err)), 0);
    ASSERT_STR_EQ(a.host, "10.0.0.5");
    ASSERT_STR_EQ(a.user, "");
    ASSERT_STR_EQ(a.password, "s3cret");
    ASSERT_EQ(a.db, 1);
    ASSERT_EQ(sk_redis_parse_url("redis://app:pw@h", &a, err, sizeof(err)), 0);
    ASSERT_STR_EQ(a.user, "app");
    ASSERT_STR_EQ(a.password, "pw");
    ASSERT_STR_EQ(a.host, "h");
    ASSERT_EQ(sk_redis_parse_url("redis://app:pw@h:x", &a, err, sizeof(err)), -EINVAL);
    ASSERT_TRUE(strstr(err, "pw") == NULL); /* the password is never repeated */
    static const char *const bad[] = {"",
                                      "redis://",
                                      "http://x:1",
                                      "redis://h:0",
                                      "redis://h:65536",
                                      "redis://h:12x",
                                      "redis://h/x",
                                      "redis://h:1/-1",
                                      "redis://[::1",
                                      "redis://h:"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (sk_redis_parse_url(bad[i], &a, err, sizeof(err)) != -EINVAL || !strstr(err, "HOST[:PORT]")) {
            SK_FAIL_AT("'%s' accepted (or no message)", bad[i]);
            return;
        }
    }
}

SK_TEST(keys)
{
    char k[SK_REDIS_KEY_MAX + 1];
    size_t n = sk_redis_key(k, "s1", 2, "orders");
    ASSERT_MEM_STR(k, n, "sk:{s1}:orders");
    char id[SK_ID_MAX + 1];
    memset(id, 'a', SK_ID_MAX);
    n = sk_redis_key(k, id, SK_ID_MAX, "holders");
    ASSERT_EQ(n, SK_ID_MAX + 13);
    ASSERT_EQ(k[n], '\0');
}

/* An HGETALL reply of a sale hash; stock and sold as RESP bulk strings ("$2\r\n10"). */
#define SALE_HASH(stock, sold)                                                                                         \
    "*16\r\n$2\r\nid\r\n$2\r\ns1\r\n$4\r\nname\r\n$5\r\nA box\r\n$5\r\nstock\r\n" stock "\r\n"                         \
    "$9\r\nstarts_at\r\n$4\r\n1000\r\n$7\r\nends_at\r\n$4\r\n2000\r\n$14\r\nper_user_limit\r\n"                        \
    "$1\r\n2\r\n$10\r\ncreated_at\r\n$3\r\n999\r\n$4\r\nsold\r\n" sold "\r\n"

SK_TEST(sale_hash)
{
    redisReply *r = resp(SALE_HASH("$2\r\n10", "$1\r\n3"));
    ASSERT_TRUE(r != NULL);
    sk_redis_sale_t s;
    ASSERT_EQ(sk_redis_sale_parse(r, &s), 0);
    ASSERT_MEM_STR(s.id, s.id_len, "s1");
    ASSERT_MEM_STR(s.name, s.name_len, "A box");
    ASSERT_EQ(s.stock, 10);
    ASSERT_EQ(s.starts_at, 1000);
    ASSERT_EQ(s.ends_at, 2000);
    ASSERT_EQ(s.per_user_limit, 2);
    ASSERT_EQ(s.created_at, 999);
    ASSERT_EQ(s.sold, 3);
    freeReplyObject(r);

    r = resp("*0\r\n");
    ASSERT_EQ(sk_redis_sale_parse(r, &s), -ENOENT);
    freeReplyObject(r);
    r = resp(SALE_HASH("$2\r\n10", "$2\r\n11")); /* sold above stock */
    ASSERT_EQ(sk_redis_sale_parse(r, &s), -EINVAL);
    freeReplyObject(r);
    r = resp(SALE_HASH("$1\r\n0", "$1\r\n0")); /* stock 0: every unit removed by the operator */
    ASSERT_EQ(sk_redis_sale_parse(r, &s), 0);
    ASSERT_EQ(s.seq, 0); /* a record without seq: one order per unit sold */
    ASSERT_EQ(s.max_quantity, 1);
    freeReplyObject(r);
    r = resp("*4\r\n$2\r\nid\r\n$2\r\ns1\r\n$5\r\nstock\r\n$2\r\n10\r\n"); /* fields missing */
    ASSERT_EQ(sk_redis_sale_parse(r, &s), -EINVAL);
    freeReplyObject(r);
    r = resp(":1\r\n");
    ASSERT_EQ(sk_redis_sale_parse(r, &s), -EINVAL);
    freeReplyObject(r);
}

/* Builds the RESP text of one stream entry: [id, [n, N, t, T, u, USERS, r, REQS]]. */
static redisReply *entry(const char *id, const char *n, const char *users, const char *reqs)
{
    char buf[1024];
    snprintf(buf, sizeof(buf),
             "*2\r\n$%zu\r\n%s\r\n*8\r\n$1\r\nn\r\n$%zu\r\n%s\r\n$1\r\nt\r\n$13\r\n1700000000123\r\n"
             "$1\r\nu\r\n$%zu\r\n%s\r\n$1\r\nr\r\n$%zu\r\n%s\r\n",
             strlen(id), id, strlen(n), n, strlen(users), users, strlen(reqs), reqs);
    return resp(buf);
}

/* Parses an entry and walks its orders; returns how many, or -1 on any error. */
static int walk(redisReply *r, sk_redis_order_t *out, int max)
{
    sk_redis_entry_t e;
    if (sk_redis_entry_parse(r, &e) < 0)
        return -1;
    int n = 0, rc;
    sk_redis_order_t o;
    while ((rc = sk_redis_entry_next(&e, &o)) == 1) {
        if (n < max)
            out[n] = o;
        n++;
    }
    return rc < 0 ? -1 : n;
}

SK_TEST(order_entry)
{
    sk_redis_order_t o[4];
    redisReply *r = entry("17-0", "3", "bob\nann\nbob", "q1\n\nq3");
    ASSERT_EQ(walk(r, o, 4), 3);
    ASSERT_EQ(o[0].seq, 17);
    ASSERT_EQ(o[2].seq, 19);
    ASSERT_MEM_STR(o[0].user, o[0].user_len, "bob");
    ASSERT_MEM_STR(o[1].user, o[1].user_len, "ann");
    ASSERT_MEM_STR(o[0].request, o[0].request_len, "q1");
    ASSERT_EQ(o[1].request_len, 0); /* an empty request id is valid */
    ASSERT_MEM_STR(o[2].request, o[2].request_len, "q3");
    ASSERT_EQ(o[1].created_at, 1700000000123LL);
    freeReplyObject(r);
    r = entry("1-0", "1", "a", "");
    ASSERT_EQ(walk(r, o, 4), 1);
    freeReplyObject(r);
    static const char *const bad[][4] = {
        {"x-0", "1", "a", ""}, /* id */
        {"0-0", "1", "a", ""}, /* seq 0 */
        {"1-0", "2", "a", ""}, /* fewer users than n */
        {"1-0", "1", "a\nb", "\n"}, /* more than n */
        {"1-0", "2", "a\nb", ""}, /* fewer request ids than n */
        {"1-0", "1", "a b", ""}, /* a user id with a space */
        {"1-0", "0", "", ""}, /* n out of range */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = entry(bad[i][0], bad[i][1], bad[i][2], bad[i][3]);
        ASSERT_TRUE(r != NULL);
        int n = walk(r, o, 4);
        freeReplyObject(r);
        if (n != -1) {
            SK_FAIL_AT("bad entry %zu accepted", i);
            return;
        }
    }
    r = resp("*1\r\n$3\r\n1-0\r\n");
    sk_redis_entry_t e;
    ASSERT_EQ(sk_redis_entry_parse(r, &e), -EINVAL);
    freeReplyObject(r);
}

SK_TEST_MAIN(SK_RUN(url); SK_RUN(keys); SK_RUN(sale_hash); SK_RUN(order_entry);)
