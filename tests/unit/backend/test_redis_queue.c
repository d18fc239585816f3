/* The calls of queue.lua (backend/redis_queue.c): the arguments of a tick, a question
 * and a join, and the replies read back, malformed ones refused. Replies are built with
 * hiredis's own reader from RESP text. The script itself runs against a real Redis in
 * tests/integration/test_queue_redis.py. */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>

#include "backend/redis_queue.h"
#include "engine/backend.h"
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

static sk_sale_t *sale(void)
{
    sk_sale_params_t p = {.name = "q", .starts_at = 1, .ends_at = 2, .per_user_limit = 1, .max_quantity = 1};
    return sk_sale_new("s1", 2, &p, 10, 0);
}

static bool arg_is(const sk_rqueue_args_t *a, int i, const char *want)
{
    return a->lens[i] == strlen(want) && memcmp(a->argv[i], want, a->lens[i]) == 0;
}

SK_TEST(args)
{
    sk_sale_t *s = sale();
    sk_rqueue_args_t a;
    char sha[41];
    memset(sha, 'a', 40);
    sha[40] = '\0';
    ASSERT_EQ(sk_rqueue_args(&a, sha, "x", 1, s, NULL), SK_RQUEUE_ARGC);
    ASSERT_TRUE(arg_is(&a, 0, "EVALSHA"));
    ASSERT_TRUE(arg_is(&a, 1, sha));
    ASSERT_TRUE(arg_is(&a, 2, "4"));
    ASSERT_TRUE(arg_is(&a, 3, "sk:{s1}:sale"));
    ASSERT_TRUE(arg_is(&a, 4, "sk:{s1}:queue"));
    ASSERT_TRUE(arg_is(&a, 5, "sk:{s1}:admitted"));
    ASSERT_TRUE(arg_is(&a, 6, "sk:{s1}:qstate"));
    ASSERT_TRUE(arg_is(&a, 7, "t"));
    ASSERT_TRUE(arg_is(&a, 8, ""));
    long long seed = strtoll(a.argv[9], NULL, 10);
    ASSERT_TRUE(seed >= 1 && seed <= 2147483646);

    sk_op_t *op = sk_op_new(SK_OP_QUEUE);
    memcpy(op->user_id, "alice", 6);
    op->user_len = 5;
    ASSERT_EQ(sk_rqueue_args(&a, NULL, "return 1", 8, s, op), SK_RQUEUE_ARGC);
    ASSERT_TRUE(arg_is(&a, 0, "EVAL"));
    ASSERT_TRUE(arg_is(&a, 1, "return 1"));
    ASSERT_TRUE(arg_is(&a, 7, "a"));
    ASSERT_TRUE(arg_is(&a, 8, "alice"));
    op->join = true;
    sk_rqueue_args(&a, sha, "x", 1, s, op);
    ASSERT_TRUE(arg_is(&a, 7, "j"));
    sk_op_free(op);
    sk_sale_free(s);
}

SK_TEST(parse)
{
    sk_rqueue_reply_t q;
    redisReply *r = resp("*11\r\n:0\r\n:12\r\n:3\r\n:1700000000000\r\n:2\r\n:1\r\n:7\r\n:3\r\n:0\r\n:0\r\n:1\r\n");
    ASSERT_EQ(sk_rqueue_parse(r, &q), 0);
    ASSERT_EQ(q.status, 0);
    ASSERT_EQ(q.len, 12);
    ASSERT_EQ(q.head, 3);
    ASSERT_EQ(q.now, 1700000000000LL);
    ASSERT_EQ(q.admitted, 2);
    ASSERT_TRUE(q.started);
    ASSERT_EQ(q.place.position, 7);
    ASSERT_EQ(q.place.ahead, 3);
    ASSERT_EQ(q.place.admitted_at, 0);
    ASSERT_TRUE(q.place.joined);
    freeReplyObject(r);

    r = resp("*11\r\n:0\r\n:5\r\n:5\r\n:1000\r\n:0\r\n:1\r\n:2\r\n:0\r\n:900\r\n:2900\r\n:0\r\n");
    ASSERT_EQ(sk_rqueue_parse(r, &q), 0);
    ASSERT_EQ(q.place.admitted_at, 900);
    ASSERT_EQ(q.place.expires_at, 2900);
    ASSERT_TRUE(!q.place.joined);
    freeReplyObject(r);

    r = resp("*11\r\n:1\r\n:5\r\n:5\r\n:1000\r\n:0\r\n:1\r\n:0\r\n:0\r\n:0\r\n:0\r\n:0\r\n");
    ASSERT_EQ(sk_rqueue_parse(r, &q), 0);
    ASSERT_EQ(q.status, -ENOENT);
    freeReplyObject(r);
    r = resp("*11\r\n:2\r\n:0\r\n:0\r\n:1000\r\n:0\r\n:0\r\n:0\r\n:0\r\n:0\r\n:0\r\n:0\r\n");
    ASSERT_EQ(sk_rqueue_parse(r, &q), 0);
    ASSERT_EQ(q.status, -EINVAL);
    freeReplyObject(r);

    static const char *const bad[] = {
        "-NOSALE no such sale\r\n",
        "*2\r\n:0\r\n:0\r\n",
        "*11\r\n:3\r\n:5\r\n:5\r\n:1000\r\n:0\r\n:1\r\n:0\r\n:0\r\n:0\r\n:0\r\n:0\r\n", /* unknown status */
        "*11\r\n:0\r\n:5\r\n:6\r\n:1000\r\n:0\r\n:1\r\n:0\r\n:0\r\n:0\r\n:0\r\n:0\r\n", /* head past the end */
        "*11\r\n:0\r\n:5\r\n:1\r\n:1000\r\n:0\r\n:1\r\n:9\r\n:0\r\n:0\r\n:0\r\n:0\r\n", /* place past the end */
        "*11\r\n:0\r\n:5\r\n:1\r\n:1000\r\n:0\r\n:1\r\n:-1\r\n:0\r\n:0\r\n:0\r\n:0\r\n",
        "*11\r\n:0\r\n$1\r\n5\r\n:1\r\n:1000\r\n:0\r\n:1\r\n:1\r\n:0\r\n:0\r\n:0\r\n:0\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = resp(bad[i]);
        ASSERT_EQ(sk_rqueue_parse(r, &q), -EIO);
        freeReplyObject(r);
    }
    ASSERT_EQ(sk_rqueue_parse(NULL, &q), -EIO);
}

SK_TEST_MAIN(SK_RUN(args); SK_RUN(parse);)
