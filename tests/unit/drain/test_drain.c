/* src/drain/drain.c: when a sale's stream is finished (no longer read for new entries,
 * once drained), how far a stream may be trimmed, and when a sale may be retired. The
 * drain's reading and writing run against real servers in the cluster tests
 * (tests/integration/test_cluster_*.py, test_rcluster_*.py). */
#include <errno.h>

#include "drain/drain.h"
#include "test.h"

SK_TEST(stream_finished)
{
    const int64_t ends = 1700000000000LL, after = SK_DRAIN_FINISHED_AFTER_MS;
    /* Every unit sold. */
    ASSERT_TRUE(sk_drain_stream_finished(10, 0, 10, ends, ends - 5000));
    ASSERT_TRUE(!sk_drain_stream_finished(9, 0, 10, ends, ends - 5000));
    /* The window, by Redis's clock: only well past the end. */
    ASSERT_TRUE(!sk_drain_stream_finished(0, 0, 10, ends, ends));
    ASSERT_TRUE(!sk_drain_stream_finished(0, 0, 10, ends, ends + after));
    ASSERT_TRUE(sk_drain_stream_finished(0, 0, 10, ends, ends + after + 1));
    /* Redis's clock unknown: never finished by time. */
    ASSERT_TRUE(!sk_drain_stream_finished(0, 0, 10, ends, -1));
    ASSERT_TRUE(sk_drain_stream_finished(10, 0, 10, ends, -1));
    /* Reservations pending still make transitions: never finished. */
    ASSERT_TRUE(!sk_drain_stream_finished(8, 2, 10, ends, ends - 5000));
    ASSERT_TRUE(!sk_drain_stream_finished(0, 1, 10, ends, ends + after + 1));
}

SK_TEST(entry_ids)
{
    sk_drain_id_t id;
    ASSERT_EQ(sk_drain_id_parse("1500-0", 6, &id), 0);
    ASSERT_EQ(id.ms, 1500);
    ASSERT_EQ(id.seq, 0);
    ASSERT_EQ(sk_drain_id_parse("7", 1, &id), 0); /* a bare ms */
    ASSERT_EQ(id.ms, 7);
    ASSERT_EQ(id.seq, 0);
    ASSERT_EQ(sk_drain_id_parse("1-18446744073709551615", 22, &id), -EINVAL); /* past INT64_MAX */
    static const char *const bad[] = {"", "-", "x-1", "1-x", "1-", "-1", "1-2-3"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (sk_drain_id_parse(bad[i], strlen(bad[i]), &id) == 0)
            SK_FAIL_AT("'%s' parsed", bad[i]);
}

SK_TEST(trim_point)
{
    sk_drain_id_t m;
    /* Nobody reads the stream yet: nothing may go. */
    ASSERT_TRUE(!sk_drain_trim_point(NULL, 0, &m));
    /* Everything delivered up to 300-0 is acknowledged: what follows stays. */
    sk_drain_group_need_t g[3] = {{.pending = 0, .last_delivered = {300, 0}}};
    ASSERT_TRUE(sk_drain_trim_point(g, 1, &m));
    ASSERT_EQ(m.ms, 300);
    ASSERT_EQ(m.seq, 1);
    /* Pending entries: the oldest of them stays, and everything after it. */
    g[0] = (sk_drain_group_need_t){.pending = 4, .min_pending = {120, 0}, .last_delivered = {300, 0}};
    ASSERT_TRUE(sk_drain_trim_point(g, 1, &m));
    ASSERT_EQ(m.ms, 120);
    ASSERT_EQ(m.seq, 0);
    /* Another group behind: its need wins (the oldest of all). */
    g[1] = (sk_drain_group_need_t){.pending = 0, .last_delivered = {50, 7}};
    g[2] = (sk_drain_group_need_t){.pending = 0, .last_delivered = {900, 0}};
    ASSERT_TRUE(sk_drain_trim_point(g, 3, &m));
    ASSERT_EQ(m.ms, 50);
    ASSERT_EQ(m.seq, 8);
    /* A group that never read anything (last delivered 0-0) keeps the whole stream. */
    g[1] = (sk_drain_group_need_t){.pending = 0, .last_delivered = {0, 0}};
    ASSERT_TRUE(sk_drain_trim_point(g, 2, &m));
    ASSERT_EQ(m.ms, 0);
    ASSERT_EQ(m.seq, 1);
    /* The successor of the largest seq carries into ms. */
    g[0] = (sk_drain_group_need_t){.pending = 0, .last_delivered = {5, UINT64_MAX}};
    ASSERT_TRUE(sk_drain_trim_point(g, 1, &m));
    ASSERT_EQ(m.ms, 6);
    ASSERT_EQ(m.seq, 0);
}

SK_TEST(retire_due)
{
    const int64_t ends = 1700000000000LL;
    const sk_db_counts_t r = {500, 500, 0};
    ASSERT_TRUE(sk_drain_retire_due(ends, ends + 1, 0, 0, &r, &r));
    ASSERT_TRUE(!sk_drain_retire_due(ends, ends, 0, 0, &r, &r)); /* not over by Redis's clock */
    ASSERT_TRUE(!sk_drain_retire_due(ends, -1, 0, 0, &r, &r)); /* clock unknown */
    ASSERT_TRUE(!sk_drain_retire_due(ends, ends + 1, 3, 0, &r, &r)); /* entries not delivered */
    ASSERT_TRUE(!sk_drain_retire_due(ends, ends + 1, 0, 2, &r, &r)); /* not acknowledged */
    ASSERT_TRUE(!sk_drain_retire_due(ends, ends + 1, 0, 0, &r, &(sk_db_counts_t){499, 499, 0})); /* one missing */
    ASSERT_TRUE(!sk_drain_retire_due(ends, ends + 1, 0, 0, &r, &(sk_db_counts_t){501, 501, 0})); /* one too many */
    const sk_db_counts_t unknown = {-1, -1, -1};
    ASSERT_TRUE(!sk_drain_retire_due(ends, ends + 1, 0, 0, &unknown, &unknown)); /* counts unknown */
    const sk_db_counts_t none = {0, 0, 0};
    ASSERT_TRUE(sk_drain_retire_due(ends, ends + 1, 0, 0, &none, &none)); /* ended without a sale */
    /* The lifecycle: 600 orders, 450 units sold, the rest returned. */
    const sk_db_counts_t life = {600, 450, 0};
    ASSERT_TRUE(sk_drain_retire_due(ends, ends + 1, 0, 0, &life, &life));
    /* A payment not carried yet: the orders are all there, the units are not. */
    ASSERT_TRUE(!sk_drain_retire_due(ends, ends + 1, 0, 0, &life, &(sk_db_counts_t){600, 449, 1}));
    /* An order expired before the database got it: the units agree, the orders do not. */
    ASSERT_TRUE(!sk_drain_retire_due(ends, ends + 1, 0, 0, &life, &(sk_db_counts_t){599, 450, 0}));
    /* A reservation pending: never. */
    const sk_db_counts_t held = {600, 450, 1};
    ASSERT_TRUE(!sk_drain_retire_due(ends, ends + 1, 0, 0, &held, &held));
}

/* Replies as hiredis makes them, on the stack. */
static redisReply reply_str(int type, char *s)
{
    return (redisReply){.type = type, .str = s, .len = strlen(s)};
}

SK_TEST(replicas_confirm)
{
    char id[] = "1700000000000-3", other[] = "1700000000000-4", moved[] = "MOVED 1234 127.0.0.1:7001";
    char nogroup[] = "NOGROUP No such key or consumer group";
    redisReply one = reply_str(REDIS_REPLY_STRING, id), two = reply_str(REDIS_REPLY_STRING, other);
    redisReply *ids[] = {&one}, *others[] = {&two};
    redisReply claim = {.type = REDIS_REPLY_ARRAY, .elements = 1, .element = ids};
    redisReply wrong = {.type = REDIS_REPLY_ARRAY, .elements = 1, .element = others};
    redisReply none = {.type = REDIS_REPLY_ARRAY, .elements = 0};
    redisReply err_moved = reply_str(REDIS_REPLY_ERROR, moved), err_nogroup = reply_str(REDIS_REPLY_ERROR, nogroup);
    redisReply w0 = {.type = REDIS_REPLY_INTEGER, .integer = 0}, w1 = {.type = REDIS_REPLY_INTEGER, .integer = 1},
               w2 = {.type = REDIS_REPLY_INTEGER, .integer = 2};
    redisReply w_err = reply_str(REDIS_REPLY_ERROR, moved);
    /* The entry claimed (a write after the reads) and enough replicas have it. */
    ASSERT_TRUE(sk_drain_replicas_confirm(&claim, &w1, id, 1));
    ASSERT_TRUE(sk_drain_replicas_confirm(&claim, &w2, id, 1));
    /* Too few replicas, or no WAIT answer. */
    ASSERT_TRUE(!sk_drain_replicas_confirm(&claim, &w0, id, 1));
    ASSERT_TRUE(!sk_drain_replicas_confirm(&claim, &w1, id, 2));
    ASSERT_TRUE(!sk_drain_replicas_confirm(&claim, &w_err, id, 1));
    ASSERT_TRUE(!sk_drain_replicas_confirm(&claim, NULL, id, 1));
    /* Nothing claimed: no write, so WAIT counted replicas of an older write of the
     * connection (a primary that never had the entry, after a failover, answers at
     * once with all its replicas). It says nothing about the entries read. */
    ASSERT_TRUE(!sk_drain_replicas_confirm(&none, &w2, id, 1));
    ASSERT_TRUE(!sk_drain_replicas_confirm(&wrong, &w2, id, 1));
    ASSERT_TRUE(!sk_drain_replicas_confirm(&err_moved, &w2, id, 1));
    ASSERT_TRUE(!sk_drain_replicas_confirm(&err_nogroup, &w2, id, 1));
    ASSERT_TRUE(!sk_drain_replicas_confirm(NULL, &w2, id, 1));
}

SK_TEST_MAIN(SK_RUN(stream_finished); SK_RUN(entry_ids); SK_RUN(trim_point); SK_RUN(retire_due);
             SK_RUN(replicas_confirm);)
