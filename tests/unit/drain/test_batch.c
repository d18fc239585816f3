/* src/drain/batch.c: stream entries (as XREADGROUP delivers them) into database rows —
 * orders, transitions merged per order, trail entries — malformed entries left out
 * whole, and one XACK per stream naming each entry once (not those held back). */
#include <hiredis/hiredis.h>
#include <stdio.h>

#include "drain/batch.h"
#include "test.h"
#include "util/buf.h"

/* An entry's RESP text: [id, [n, N, t, T, u, USERS, r, REQS]]. */
static void put_entry(sk_buf_t *b, const char *id, int n, const char *users, const char *reqs)
{
    char num[16];
    snprintf(num, sizeof(num), "%d", n);
    sk_buf_printf(b,
                  "*2\r\n$%zu\r\n%s\r\n*8\r\n$1\r\nn\r\n$%zu\r\n%s\r\n$1\r\nt\r\n$13\r\n1700000000123\r\n"
                  "$1\r\nu\r\n$%zu\r\n%s\r\n$1\r\nr\r\n$%zu\r\n%s\r\n",
                  strlen(id), id, strlen(num), num, strlen(users), users, strlen(reqs), reqs);
}

static redisReply *parse(const sk_buf_t *b)
{
    redisReader *rd = redisReaderCreate();
    void *reply = NULL;
    redisReaderFeed(rd, b->data, b->len);
    ASSERT_EQ(redisReaderGetReply(rd, &reply), REDIS_OK);
    ASSERT_TRUE(reply != NULL);
    redisReaderFree(rd);
    return reply;
}

typedef struct {
    int calls;
    char text[4][256]; /* each command, its arguments joined by spaces */
} acks_t;

static void record_ack(void *arg, int argc, const char **argv, const size_t *lens)
{
    acks_t *a = arg;
    ASSERT_LT(a->calls, 4);
    char *t = a->text[a->calls++];
    t[0] = '\0';
    for (int i = 0; i < argc; i++) {
        ASSERT_EQ(lens[i], strlen(argv[i]));
        if (i)
            strcat(t, " ");
        strcat(t, argv[i]);
    }
}

SK_TEST(rows_and_acks)
{
    sk_drain_batch_t b;
    sk_drain_batch_init(&b, 2); /* smaller than one read: the batch grows */
    sk_buf_t t = {0};
    sk_buf_puts(&t, "*2\r\n");
    put_entry(&t, "17-0", 3, "bob\nann\ncid", "q1\n\nq3");
    put_entry(&t, "20-0", 1, "dee", "q4");
    redisReply *r = parse(&t);
    char last[SK_DRAIN_ENTRY_ID_MAX] = "";
    ASSERT_EQ(sk_drain_batch_add(&b, "s1", "sk:{s1}:orders", r, last, sizeof(last)), 4);
    ASSERT_STR_EQ(last, "20-0");
    freeReplyObject(r);

    t.len = 0;
    sk_buf_puts(&t, "*1\r\n");
    put_entry(&t, "5-0", 2, "eve\nfay", "a\nb");
    r = parse(&t);
    ASSERT_EQ(sk_drain_batch_add(&b, "s2", "sk:{s2}:orders", r, NULL, 0), 2);
    freeReplyObject(r);
    ASSERT_EQ(b.n, 6);
    ASSERT_EQ(b.malformed, 0);

    /* Order ids are the ones buyers were given: sale, dash, seq in 10 digits. */
    sk_db_order_t *o = sk_drain_batch_orders(&b);
    ASSERT_STR_EQ(o[0].order_id, "s1-0000000017");
    ASSERT_STR_EQ(o[0].sale_id, "s1");
    ASSERT_STR_EQ(o[0].user_id, "bob");
    ASSERT_STR_EQ(o[0].request_id, "q1");
    ASSERT_EQ(o[0].seq, 17);
    ASSERT_EQ(o[0].created_at, 1700000000123LL);
    ASSERT_STR_EQ(o[1].order_id, "s1-0000000018");
    ASSERT_STR_EQ(o[1].request_id, ""); /* an empty request id is valid */
    ASSERT_STR_EQ(o[2].user_id, "cid");
    ASSERT_STR_EQ(o[3].order_id, "s1-0000000020");
    ASSERT_STR_EQ(o[5].order_id, "s2-0000000006");
    ASSERT_STR_EQ(o[5].sale_id, "s2");
    /* Plain orders: one unit each, final at once. */
    ASSERT_EQ(o[0].quantity, 1);
    ASSERT_STR_EQ(o[0].state, "confirmed");
    ASSERT_EQ(o[0].pay_by, 0);
    free(o);

    /* One XACK per stream, each entry once however many orders it holds. */
    acks_t a = {0};
    ASSERT_EQ(sk_drain_batch_acks(&b, "seckill-drain", record_ack, &a), 2);
    ASSERT_EQ(a.calls, 2);
    ASSERT_STR_EQ(a.text[0], "XACK sk:{s1}:orders seckill-drain 17-0 20-0");
    ASSERT_STR_EQ(a.text[1], "XACK sk:{s2}:orders seckill-drain 5-0");

    /* An empty batch acknowledges nothing. */
    sk_drain_batch_clear(&b);
    a.calls = 0;
    ASSERT_EQ(sk_drain_batch_acks(&b, "seckill-drain", record_ack, &a), 0);
    ASSERT_EQ(a.calls, 0);
    sk_buf_free(&t);
    sk_drain_batch_free(&b);
}

SK_TEST(malformed_entries_stay_pending)
{
    sk_drain_batch_t b;
    sk_drain_batch_init(&b, 16);
    sk_buf_t t = {0};
    sk_buf_puts(&t, "*3\r\n");
    put_entry(&t, "1-0", 1, "ann", "q1");
    put_entry(&t, "2-0", 2, "bob", "q2"); /* says 2 orders, holds 1 */
    put_entry(&t, "4-0", 1, "cid", "q4");
    redisReply *r = parse(&t);
    char last[SK_DRAIN_ENTRY_ID_MAX] = "";
    ASSERT_EQ(sk_drain_batch_add(&b, "s1", "sk:{s1}:orders", r, last, sizeof(last)), 2);
    freeReplyObject(r);
    ASSERT_EQ(b.malformed, 1);
    ASSERT_STR_EQ(last, "4-0"); /* the pending cursor moves past it all the same */
    acks_t a = {0};
    ASSERT_EQ(sk_drain_batch_acks(&b, "g", record_ack, &a), 1);
    ASSERT_STR_EQ(a.text[0], "XACK sk:{s1}:orders g 1-0 4-0"); /* not 2-0: it stays pending */
    sk_buf_free(&t);
    sk_drain_batch_free(&b);
}

/* An entry of any kind: id and field/value pairs. */
static void put_fields(sk_buf_t *b, const char *id, int n, const char *const *kv)
{
    sk_buf_printf(b, "*2\r\n$%zu\r\n%s\r\n*%d\r\n", strlen(id), id, 2 * n);
    for (int i = 0; i < 2 * n; i++)
        sk_buf_printf(b, "$%zu\r\n%s\r\n", strlen(kv[i]), kv[i]);
}

SK_TEST(lifecycle_entries)
{
    sk_drain_batch_t b;
    sk_drain_batch_init(&b, 4);
    sk_buf_t t = {0};
    sk_buf_puts(&t, "*6\r\n");
    /* Three reservations (one of two units), paid, refunded, cancelled, expired. */
    put_fields(
        &t, "1-0", 6,
        (const char *[]){"n", "3", "t", "1000", "u", "ann\nbob\ncid", "r", "r1\nr2\nr3", "q", "1\n2\n1", "p", "21000"});
    put_fields(&t, "3-1", 5, (const char *[]){"k", "x", "e", "pay", "t", "2000", "s", "1\n2", "a", "pay-a\npay-b"});
    put_fields(&t, "3-2", 5, (const char *[]){"k", "x", "e", "refund", "t", "3000", "s", "2", "a", ""});
    put_fields(&t, "3-3", 5, (const char *[]){"k", "x", "e", "cancel", "t", "4000", "s", "3", "a", "buyer"});
    /* The same payment delivered again, and an expiry of a paid order: no moves. */
    put_fields(&t, "3-4", 5, (const char *[]){"k", "x", "e", "expire", "t", "30000", "s", "1", "a", ""});
    put_fields(&t, "3-5", 2,
               (const char *[]){"k", "c", "j",
                                "{\"seq\":1,\"action\":\"pause\",\"actor\":\"ops\",\"request_id\":\"c1\",\"at\":5000,"
                                "\"params\":{},\"before\":{\"stock\":10,\"paused\":false},\"after\":{\"stock\":10,"
                                "\"paused\":true}}"});
    redisReply *r = parse(&t);
    char last[SK_DRAIN_ENTRY_ID_MAX] = "";
    ASSERT_EQ(sk_drain_batch_add(&b, "s1", "sk:{s1}:orders", r, last, sizeof(last)), 3 + 2 + 1 + 1 + 1 + 1);
    freeReplyObject(r);
    ASSERT_STR_EQ(last, "3-5");
    ASSERT_EQ(b.malformed, 0);
    ASSERT_EQ(b.n, 3);
    ASSERT_EQ(b.n_moves, 5);
    ASSERT_EQ(b.n_events, 1);
    ASSERT_EQ(b.n_entries, 6);

    sk_db_order_t *o = sk_drain_batch_orders(&b);
    ASSERT_STR_EQ(o[1].order_id, "s1-0000000002");
    ASSERT_EQ(o[1].quantity, 2);
    ASSERT_STR_EQ(o[1].state, "reserved");
    ASSERT_EQ(o[1].pay_by, 21000);
    free(o);

    /* One row per order: paid then refunded is refunded, with the payment; the expiry
     * of a paid order is no move of the rules. */
    size_t n;
    sk_db_transition_t *x = sk_drain_batch_transitions(&b, &n);
    ASSERT_EQ(n, 3);
    ASSERT_EQ(x[0].seq, 1);
    ASSERT_STR_EQ(x[0].state, "confirmed");
    ASSERT_EQ(x[0].paid_at, 2000);
    ASSERT_STR_EQ(x[0].payment_id, "pay-a");
    ASSERT_EQ(x[0].closed_at, 0);
    ASSERT_EQ(x[1].seq, 2);
    ASSERT_STR_EQ(x[1].state, "refunded");
    ASSERT_EQ(x[1].paid_at, 2000);
    ASSERT_STR_EQ(x[1].payment_id, "pay-b");
    ASSERT_EQ(x[1].closed_at, 3000);
    ASSERT_STR_EQ(x[2].state, "cancelled");
    ASSERT_EQ(x[2].closed_at, 4000);
    ASSERT_STR_EQ(x[2].payment_id, "");

    sk_db_event_t *e = sk_drain_batch_events(&b);
    ASSERT_STR_EQ(e[0].sale_id, "s1");
    ASSERT_EQ(e[0].seq, 1);
    ASSERT_STR_EQ(e[0].kind, "pause");
    ASSERT_STR_EQ(e[0].actor, "ops");
    ASSERT_STR_EQ(e[0].request_id, "c1");
    ASSERT_EQ(e[0].decided_at, 5000);
    ASSERT_STR_EQ(e[0].params, "{}");
    ASSERT_TRUE(strstr(e[0].after, "\"paused\":true") != NULL);
    free(e);

    /* Every entry acknowledged; then one whose order the database lacked stays pending
     * (both entries that moved order 2). */
    acks_t a = {0};
    ASSERT_EQ(sk_drain_batch_acks(&b, "g", record_ack, &a), 1);
    ASSERT_STR_EQ(a.text[0], "XACK sk:{s1}:orders g 1-0 3-1 3-2 3-3 3-4 3-5");
    for (size_t i = 0; i < n; i++)
        x[i].found = x[i].seq != 2;
    ASSERT_EQ(sk_drain_batch_unfound(&b, x, n), 2);
    a.calls = 0;
    ASSERT_EQ(sk_drain_batch_acks(&b, "g", record_ack, &a), 1);
    ASSERT_STR_EQ(a.text[0], "XACK sk:{s1}:orders g 1-0 3-3 3-4 3-5");
    free(x);

    /* A trail entry that is not one, and a transition of an unknown kind: left pending. */
    sk_drain_batch_clear(&b);
    t.len = 0;
    sk_buf_puts(&t, "*2\r\n");
    put_fields(&t, "4-1", 2, (const char *[]){"k", "c", "j", "{\"seq\":0}"});
    put_fields(&t, "4-2", 5, (const char *[]){"k", "x", "e", "steal", "t", "1", "s", "1", "a", ""});
    r = parse(&t);
    ASSERT_EQ(sk_drain_batch_add(&b, "s1", "sk:{s1}:orders", r, NULL, 0), 0);
    freeReplyObject(r);
    ASSERT_EQ(b.malformed, 2);
    ASSERT_EQ(b.n_entries, 0);
    sk_buf_free(&t);
    sk_drain_batch_free(&b);
}

static bool drop_s1(void *arg, const char *key)
{
    (void)arg;
    return strcmp(key, "sk:{s1}:orders") == 0;
}

/* The entries of one primary's streams left out (its replicas lag): the other sales'
 * rows, transitions and trail entries stay, pointing at their own entries. */
SK_TEST(drop_one_stream)
{
    sk_drain_batch_t b;
    sk_drain_batch_init(&b, 4);
    sk_buf_t t = {0};
    sk_buf_puts(&t, "*2\r\n");
    put_fields(&t, "1-0", 4, (const char *[]){"n", "2", "t", "1000", "u", "ann\nbob", "r", "r1\nr2"});
    put_fields(&t, "3-1", 2,
               (const char *[]){"k", "c", "j",
                                "{\"seq\":1,\"action\":\"pause\",\"actor\":\"ops\",\"request_id\":\"c1\",\"at\":5000,"
                                "\"params\":{},\"before\":{\"stock\":10},\"after\":{\"stock\":10}}"});
    redisReply *r = parse(&t);
    ASSERT_EQ(sk_drain_batch_add(&b, "s1", "sk:{s1}:orders", r, NULL, 0), 3);
    freeReplyObject(r);
    t.len = 0;
    sk_buf_puts(&t, "*3\r\n");
    put_fields(&t, "7-0", 4, (const char *[]){"n", "1", "t", "1000", "u", "cid", "r", "r3"});
    put_fields(&t, "8-1", 5, (const char *[]){"k", "x", "e", "cancel", "t", "2000", "s", "7", "a", "buyer"});
    put_fields(&t, "8-2", 2,
               (const char *[]){"k", "c", "j",
                                "{\"seq\":1,\"action\":\"resume\",\"actor\":\"ops\",\"request_id\":\"c2\",\"at\":6000,"
                                "\"params\":{},\"before\":{\"stock\":5},\"after\":{\"stock\":5}}"});
    r = parse(&t);
    ASSERT_EQ(sk_drain_batch_add(&b, "s2", "sk:{s2}:orders", r, NULL, 0), 3);
    freeReplyObject(r);
    ASSERT_EQ(b.n_entries, 5);

    ASSERT_EQ(sk_drain_batch_drop(&b, drop_s1, NULL), 2);
    ASSERT_EQ(b.n_entries, 3);
    ASSERT_EQ(b.n, 1);
    ASSERT_EQ(b.n_moves, 1);
    ASSERT_EQ(b.n_events, 1);
    ASSERT_STR_EQ(b.entries[b.rows[0].entry].id, "7-0");
    ASSERT_STR_EQ(b.entries[b.moves[0].entry].id, "8-1");
    ASSERT_STR_EQ(b.entries[b.events[0].entry].id, "8-2");
    sk_db_order_t *o = sk_drain_batch_orders(&b);
    ASSERT_STR_EQ(o[0].order_id, "s2-0000000007");
    free(o);
    acks_t a = {0};
    ASSERT_EQ(sk_drain_batch_acks(&b, "g", record_ack, &a), 1);
    ASSERT_STR_EQ(a.text[0], "XACK sk:{s2}:orders g 7-0 8-1 8-2");
    /* Nothing of s1 left: dropping again leaves everything. */
    ASSERT_EQ(sk_drain_batch_drop(&b, drop_s1, NULL), 0);
    ASSERT_EQ(b.n_entries, 3);
    sk_buf_free(&t);
    sk_drain_batch_free(&b);
}

SK_TEST_MAIN(SK_RUN(rows_and_acks); SK_RUN(malformed_entries_stay_pending); SK_RUN(lifecycle_entries);
             SK_RUN(drop_one_stream);)
