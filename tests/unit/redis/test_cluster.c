/* Redis Cluster routing: CRC16 and slots against the values Redis itself gives, the
 * store URL's seeds, the CLUSTER SLOTS parser, and MOVED/ASK/TRYAGAIN/CLUSTERDOWN.
 * Replies are built with hiredis's own reader from RESP text. */
#include <errno.h>
#include <hiredis/hiredis.h>

#include "redis/cluster.h"
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

SK_TEST(crc16)
{
    /* The check value of CRC16/XMODEM, and the one in the Redis Cluster specification. */
    ASSERT_EQ(sk_rcluster_crc16("123456789", 9), 0x31C3);
    ASSERT_EQ(sk_rcluster_crc16("", 0), 0);
    ASSERT_EQ(sk_rcluster_crc16("A", 1), 0x58E5);
}

SK_TEST(slots)
{
    /* What `CLUSTER KEYSLOT` answers on Redis 7.0. */
    static const struct {
        const char *key;
        unsigned slot;
    } v[] = {
        {"123456789", 12739},
        {"foo", 12182},
        {"bar", 5061},
        {"hello", 866},
        {"{user1000}.following", 3443},
        {"sk:{s1}:sale", 15224},
        {"sk:sales", 8657},
        {"{}x", 10595}, /* an empty tag: the whole key */
        {"a{}b{c}", 7353}, /* the first '{' has an empty tag: the whole key */
        {"foo{bar}{zap}", 5061}, /* the first tag only: "bar" */
        {"{", 4092}, /* no closing brace */
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        unsigned s = sk_rcluster_slot(v[i].key, strlen(v[i].key));
        if (s != v[i].slot)
            SK_FAIL_AT("slot of '%s': %u, Redis says %u", v[i].key, s, v[i].slot);
    }
    /* A sale's keys share the slot of its id. */
    ASSERT_EQ(sk_rcluster_sale_slot("s1", 2), 15224);
    ASSERT_EQ(sk_rcluster_sale_slot("s1", 2), sk_rcluster_slot("sk:{s1}:orders", 14));
    ASSERT_EQ(sk_rcluster_sale_slot("user1000", 8), 3443);
}

SK_TEST(url)
{
    char err[512];
    sk_rcluster_t *c = sk_rcluster_new("redis://127.0.0.1:7000", err, sizeof(err));
    ASSERT_TRUE(c != NULL);
    ASSERT_EQ(c->n_seeds, 1);
    ASSERT_STR_EQ(c->seeds[0].host, "127.0.0.1");
    ASSERT_EQ(c->seeds[0].port, 7000);
    ASSERT_EQ(sk_rcluster_owner(c, 0), -1); /* nothing known before discovery */
    sk_rcluster_set_single(c);
    ASSERT_EQ(sk_rcluster_owner(c, 0), 0);
    ASSERT_EQ(sk_rcluster_owner(c, 16383), 0);
    ASSERT_TRUE(!c->enabled);
    sk_rcluster_free(c);

    c = sk_rcluster_new("redis://app:pw@h1:7001,h2:7002,[::1]:7003", err, sizeof(err));
    ASSERT_TRUE(c != NULL);
    ASSERT_EQ(c->n_seeds, 3);
    ASSERT_STR_EQ(c->addr.user, "app");
    ASSERT_STR_EQ(c->addr.password, "pw");
    ASSERT_STR_EQ(c->seeds[1].host, "h2");
    ASSERT_EQ(c->seeds[1].port, 7002);
    ASSERT_STR_EQ(c->seeds[2].host, "::1");
    ASSERT_EQ(c->seeds[2].port, 7003);
    sk_rcluster_free(c);

    c = sk_rcluster_new("redis://h1,h2:7/2", err, sizeof(err));
    ASSERT_TRUE(c != NULL);
    ASSERT_EQ(c->seeds[0].port, 6379);
    ASSERT_EQ(c->addr.db, 2);
    sk_rcluster_free(c);

    static const char *const bad[] = {"redis://",
                                      "redis://h1,",
                                      "redis://,h1",
                                      "redis://h1,,h2",
                                      "redis://h1,h2:x",
                                      "http://h1,h2",
                                      "redis://:sekrit@h1,h2:0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        c = sk_rcluster_new(bad[i], err, sizeof(err));
        if (c || !strstr(err, "HOST:PORT...") || strstr(err, "sekrit"))
            SK_FAIL_AT("'%s' accepted, or the message is unclear: '%s'", bad[i], err);
    }
}

SK_TEST(topology)
{
    char err[256];
    sk_rcluster_t *c = sk_rcluster_new("redis://127.0.0.1:7001", err, sizeof(err));
    ASSERT_TRUE(c != NULL);
    /* Redis 7.0's shape: [start, end, [host, port, id, {metadata}], replicas...]. The
     * third range's primary has no known address ("?"), so it is the node asked. */
    redisReply *r = resp("*3\r\n"
                         "*4\r\n:0\r\n:5460\r\n"
                         "*4\r\n$9\r\n127.0.0.1\r\n:7001\r\n$2\r\nid\r\n*0\r\n"
                         "*4\r\n$9\r\n127.0.0.1\r\n:7005\r\n$2\r\nid\r\n*0\r\n"
                         "*3\r\n:5461\r\n:10922\r\n"
                         "*3\r\n$9\r\n127.0.0.1\r\n:7002\r\n$2\r\nid\r\n"
                         "*3\r\n:10923\r\n:16383\r\n"
                         "*2\r\n$1\r\n?\r\n:7003\r\n");
    ASSERT_TRUE(r != NULL);
    uint64_t v0 = c->version;
    ASSERT_EQ(sk_rcluster_apply_slots(c, r, "10.0.0.9"), 0);
    ASSERT_TRUE(c->enabled);
    ASSERT_GT(c->version, v0);
    ASSERT_EQ(c->n_nodes, 3); /* replicas are not routed to */
    int n1 = sk_rcluster_owner(c, 0), n2 = sk_rcluster_owner(c, 5461), n3 = sk_rcluster_owner(c, 16383);
    ASSERT_EQ(c->nodes[n1].port, 7001);
    ASSERT_EQ(sk_rcluster_owner(c, 5460), n1);
    ASSERT_EQ(c->nodes[n2].port, 7002);
    ASSERT_EQ(sk_rcluster_owner(c, 10922), n2);
    ASSERT_STR_EQ(c->nodes[n3].host, "10.0.0.9");
    ASSERT_EQ(c->nodes[n3].port, 7003);
    /* The same map again changes nothing, and node indexes are stable. */
    uint64_t v1 = c->version;
    ASSERT_EQ(sk_rcluster_apply_slots(c, r, "10.0.0.9"), 0);
    ASSERT_EQ(c->version, v1);
    freeReplyObject(r);

    /* A failover: 7005 now serves 0-5460 and 7001 is gone from the map. */
    r = resp("*1\r\n*3\r\n:0\r\n:5460\r\n*2\r\n$9\r\n127.0.0.1\r\n:7005\r\n");
    ASSERT_EQ(sk_rcluster_apply_slots(c, r, "x"), 0);
    freeReplyObject(r);
    ASSERT_GT(c->version, v1);
    ASSERT_EQ(c->nodes[sk_rcluster_owner(c, 100)].port, 7005);
    ASSERT_EQ(sk_rcluster_owner(c, 6000), -1); /* not in this reply: nobody known */
    ASSERT_EQ(c->nodes[n1].port, 7001); /* still at its index */

    /* Replies that are not a map leave it as it was. */
    static const char *const bad[] = {
        "$2\r\nno\r\n",
        "*1\r\n*2\r\n:0\r\n:5\r\n",
        "*1\r\n*3\r\n:5\r\n:4\r\n*2\r\n$1\r\nh\r\n:1\r\n", /* end before start */
        "*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:1\r\n", /* past the last slot */
        "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$1\r\nh\r\n:0\r\n", /* port 0 */
        "*1\r\n*3\r\n:0\r\n:5\r\n*1\r\n$1\r\nh\r\n", /* no port */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = resp(bad[i]);
        ASSERT_TRUE(r != NULL);
        uint64_t v = c->version;
        if (sk_rcluster_apply_slots(c, r, "x") != -EINVAL || c->version != v ||
            c->nodes[sk_rcluster_owner(c, 100)].port != 7005)
            SK_FAIL_AT("bad map %zu accepted", i);
        freeReplyObject(r);
    }

    r = resp("-ERR This instance has cluster support disabled\r\n");
    ASSERT_TRUE(sk_rcluster_disabled_error(r));
    freeReplyObject(r);
    r = resp("-ERR unknown command\r\n");
    ASSERT_TRUE(!sk_rcluster_disabled_error(r));
    freeReplyObject(r);
    sk_rcluster_free(c);
}

SK_TEST(redirect)
{
    unsigned slot = 0;
    sk_rcluster_node_t to;
    redisReply *r = resp("-MOVED 3999 127.0.0.1:6381\r\n");
    ASSERT_EQ(sk_rcluster_redirect(r, &slot, &to), SK_RCLUSTER_MOVED);
    ASSERT_EQ(slot, 3999);
    ASSERT_STR_EQ(to.host, "127.0.0.1");
    ASSERT_EQ(to.port, 6381);
    freeReplyObject(r);

    r = resp("-ASK 15224 10.1.2.3:7002\r\n");
    ASSERT_EQ(sk_rcluster_redirect(r, &slot, &to), SK_RCLUSTER_ASK);
    ASSERT_EQ(slot, 15224);
    ASSERT_STR_EQ(to.host, "10.1.2.3");
    ASSERT_EQ(to.port, 7002);
    freeReplyObject(r);

    r = resp("-MOVED 1 ::1:7000\r\n"); /* IPv6: the port follows the last colon */
    ASSERT_EQ(sk_rcluster_redirect(r, &slot, &to), SK_RCLUSTER_MOVED);
    ASSERT_STR_EQ(to.host, "::1");
    ASSERT_EQ(to.port, 7000);
    freeReplyObject(r);

    r = resp("-MOVED 2 :7000\r\n"); /* no known address: the node that answered */
    ASSERT_EQ(sk_rcluster_redirect(r, &slot, &to), SK_RCLUSTER_MOVED);
    ASSERT_STR_EQ(to.host, "");
    ASSERT_EQ(to.port, 7000);
    freeReplyObject(r);

    r = resp("-TRYAGAIN Multiple keys request during rehashing of slot\r\n");
    ASSERT_EQ(sk_rcluster_redirect(r, &slot, &to), SK_RCLUSTER_TRYAGAIN);
    freeReplyObject(r);
    r = resp("-CLUSTERDOWN The cluster is down\r\n");
    ASSERT_EQ(sk_rcluster_redirect(r, &slot, &to), SK_RCLUSTER_DOWN);
    freeReplyObject(r);
    r = resp("-CLUSTERDOWN Hash slot not served\r\n");
    ASSERT_EQ(sk_rcluster_redirect(r, &slot, &to), SK_RCLUSTER_DOWN);
    freeReplyObject(r);

    static const char *const plain[] = {
        "-ERR unknown command\r\n",
        "-NOSCRIPT No matching script\r\n",
        "-MOVED\r\n",
        "-MOVED x 1.2.3.4:1\r\n",
        "-MOVED 16384 h:1\r\n",
        "-MOVED 1 h\r\n",
        "-ASK 1 h:0\r\n",
        ":1\r\n",
        "+OK\r\n",
    };
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        r = resp(plain[i]);
        ASSERT_TRUE(r != NULL);
        if (sk_rcluster_redirect(r, &slot, &to) != SK_RCLUSTER_REPLY)
            SK_FAIL_AT("'%s' taken for a redirection", plain[i]);
        freeReplyObject(r);
    }
    ASSERT_EQ(sk_rcluster_redirect(NULL, &slot, &to), SK_RCLUSTER_REPLY);
}

SK_TEST(nodes)
{
    char err[256];
    sk_rcluster_t *c = sk_rcluster_new("redis://h:1", err, sizeof(err));
    ASSERT_TRUE(c != NULL);
    ASSERT_EQ(sk_rcluster_node(c, "a", 1), 0);
    ASSERT_EQ(sk_rcluster_node(c, "a", 2), 1);
    ASSERT_EQ(sk_rcluster_node(c, "a", 1), 0);
    char name[300];
    ASSERT_STR_EQ(sk_rcluster_name(c, 1, name, sizeof(name)), "a:2");
    ASSERT_EQ(sk_rcluster_node(c, "::1", 3), 2);
    ASSERT_STR_EQ(sk_rcluster_name(c, 2, name, sizeof(name)), "[::1]:3");
    for (int i = 3; i < SK_RCLUSTER_NODES_MAX; i++)
        ASSERT_EQ(sk_rcluster_node(c, "b", 100 + i), i);
    ASSERT_EQ(sk_rcluster_node(c, "c", 1), -ENOSPC); /* bounded */
    ASSERT_EQ(sk_rcluster_node(c, "a", 2), 1);
    sk_rcluster_free(c);
}

SK_TEST_MAIN(SK_RUN(crc16); SK_RUN(slots); SK_RUN(url); SK_RUN(topology); SK_RUN(redirect); SK_RUN(nodes);)
