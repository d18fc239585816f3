/* The ledger's record of holders: users, their orders in seq order, request ids, undo. */
#include <stdio.h>

#include "engine/holders.h"
#include "test.h"

#define NONE UINT32_MAX

static size_t user_name(char *buf, size_t cap, unsigned i)
{
    return (size_t)snprintf(buf, cap, "user-%u", i);
}

SK_TEST(test_upsert_find)
{
    sk_holders_t *h = sk_holders_new();
    ASSERT_EQ(sk_holders_find(h, "alice", 5), NONE);
    uint32_t a = sk_holders_upsert(h, "alice", 5);
    ASSERT_NE(a, NONE);
    ASSERT_EQ(sk_holders_upsert(h, "alice", 5), a); /* the same user, the same slot */
    ASSERT_EQ(sk_holders_find(h, "alice", 5), a);
    ASSERT_EQ(h->used, 1);
    /* Prefixes and extensions are other users. */
    ASSERT_EQ(sk_holders_find(h, "alic", 4), NONE);
    ASSERT_EQ(sk_holders_find(h, "alicex", 6), NONE);
    uint32_t b = sk_holders_upsert(h, "bob", 3);
    ASSERT_NE(b, a);
    ASSERT_EQ(h->used, 2);
    ASSERT_EQ(h->slots[a].count, 0);
    ASSERT_EQ(h->slots[a].first, NONE);
    ASSERT_MEM_STR(sk_holders_str(h, h->slots[b].user_off), h->slots[b].user_len, "bob");
    /* A user id of the maximum length. */
    char longu[SK_USER_MAX + 1];
    memset(longu, 'x', SK_USER_MAX);
    longu[SK_USER_MAX] = '\0';
    uint32_t l = sk_holders_upsert(h, longu, SK_USER_MAX);
    ASSERT_EQ(sk_holders_find(h, longu, SK_USER_MAX), l);
    ASSERT_EQ(sk_holders_find(h, longu, SK_USER_MAX - 1), NONE);
    sk_holders_free(h);
}

SK_TEST(test_growth_many_users)
{
    enum { N = 200000 };
    sk_holders_t *h = sk_holders_new();
    char u[32];
    for (unsigned i = 0; i < N; i++) {
        size_t n = user_name(u, sizeof(u), i);
        uint32_t slot = sk_holders_upsert(h, u, n);
        /* Every third user buys: orders must keep pointing at their holder across growth. */
        if (i % 3 == 0)
            sk_holders_add_order(h, slot, u, n, (int64_t)i);
    }
    ASSERT_EQ(h->used, N);
    ASSERT_GE(h->cap, 2u * N);
    ASSERT_EQ(h->n_orders, (N + 2) / 3);
    for (unsigned i = 0; i < N; i++) {
        size_t n = user_name(u, sizeof(u), i);
        uint32_t slot = sk_holders_find(h, u, n);
        if (slot == NONE) {
            SK_FAIL_AT("user %s lost after growth", u);
            break;
        }
        ASSERT_EQ(h->slots[slot].count, i % 3 == 0 ? 1 : 0);
    }
    /* Order k was bought by user 3k: its holder slot must name that user. */
    for (uint32_t k = 0; k < h->n_orders; k += 997) {
        sk_order_t o;
        sk_holders_order(h, k, &o);
        size_t n = user_name(u, sizeof(u), 3 * k);
        ASSERT_STR_EQ(o.user_id, u);
        ASSERT_STR_EQ(o.request_id, u);
        ASSERT_EQ(o.seq, (uint64_t)k + 1);
        ASSERT_EQ(o.created_at, 3 * (int64_t)k);
        ASSERT_EQ(sk_holders_find(h, u, n), h->orders[k].holder);
    }
    ASSERT_EQ(sk_holders_find(h, "user-200000", 11), NONE);
    sk_holders_free(h);
}

SK_TEST(test_add_pop_orders)
{
    sk_holders_t *h = sk_holders_new();
    uint32_t a = sk_holders_upsert(h, "a", 1), b = sk_holders_upsert(h, "b", 1);
    sk_holders_add_order(h, a, "r1", 2, 10); /* seq 1 */
    sk_holders_add_order(h, b, "r2", 2, 11); /* seq 2 */
    sk_holders_add_order(h, a, "r3", 2, 12); /* seq 3 */
    ASSERT_EQ(h->n_orders, 3);
    ASSERT_EQ(h->slots[a].count, 2);
    ASSERT_EQ(h->slots[a].first, 0);
    ASSERT_EQ(h->slots[a].last, 2);
    ASSERT_EQ(h->orders[0].next, 2);

    /* Undo the newest order (a's second): a keeps its first. */
    sk_holders_pop_order(h);
    ASSERT_EQ(h->n_orders, 2);
    ASSERT_EQ(h->slots[a].count, 1);
    ASSERT_EQ(h->slots[a].first, 0);
    ASSERT_EQ(h->slots[a].last, 0);
    ASSERT_EQ(h->orders[0].next, NONE);
    ASSERT_EQ(sk_holders_find_request(h, a, "r3", 2), NONE);
    /* Undo b's only order: b holds nothing but stays known. */
    sk_holders_pop_order(h);
    ASSERT_EQ(h->slots[b].count, 0);
    ASSERT_EQ(h->slots[b].first, NONE);
    ASSERT_EQ(h->slots[b].last, NONE);
    ASSERT_EQ(sk_holders_find(h, "b", 1), b);

    /* Appending again reuses the popped seqs and links correctly. */
    sk_holders_add_order(h, b, "r4", 2, 13); /* seq 2 */
    sk_holders_add_order(h, a, "r5", 2, 14); /* seq 3 */
    ASSERT_EQ(h->slots[b].first, 1);
    ASSERT_EQ(h->orders[0].next, 2);
    sk_order_t o;
    sk_holders_order(h, 2, &o);
    ASSERT_EQ(o.seq, 3);
    ASSERT_STR_EQ(o.user_id, "a");
    ASSERT_STR_EQ(o.request_id, "r5");
    ASSERT_EQ(o.created_at, 14);
    sk_order_t *list;
    size_t n = sk_engine_user_orders(h, "a", 1, &list);
    ASSERT_EQ(n, 2);
    ASSERT_EQ(list[0].seq, 1);
    ASSERT_STR_EQ(list[0].request_id, "r1");
    ASSERT_EQ(list[1].seq, 3);
    ASSERT_STR_EQ(list[1].request_id, "r5");
    free(list);
    ASSERT_EQ(sk_engine_user_orders(h, "nobody", 6, &list), 0);
    ASSERT_TRUE(list == NULL);
    sk_holders_free(h);
}

SK_TEST(test_find_request)
{
    sk_holders_t *h = sk_holders_new();
    uint32_t a = sk_holders_upsert(h, "a", 1), b = sk_holders_upsert(h, "b", 1);
    sk_holders_add_order(h, a, "req-1", 5, 1);
    sk_holders_add_order(h, b, "req-1", 5, 2); /* the same request id from another user */
    sk_holders_add_order(h, a, "", 0, 3); /* no request id */
    sk_holders_add_order(h, a, "req-2", 5, 4);
    ASSERT_EQ(sk_holders_find_request(h, a, "req-1", 5), 0);
    ASSERT_EQ(sk_holders_find_request(h, b, "req-1", 5), 1);
    ASSERT_EQ(sk_holders_find_request(h, a, "req-2", 5), 3);
    ASSERT_EQ(sk_holders_find_request(h, b, "req-2", 5), NONE);
    ASSERT_EQ(sk_holders_find_request(h, a, "req-", 4), NONE);
    ASSERT_EQ(sk_holders_find_request(h, a, "req-10", 6), NONE);
    /* An empty request id never matches, not even an order stored without one. */
    ASSERT_EQ(sk_holders_find_request(h, a, "", 0), NONE);
    sk_order_t o;
    sk_holders_order(h, 2, &o);
    ASSERT_STR_EQ(o.request_id, "");
    ASSERT_STR_EQ(o.user_id, "a");
    sk_holders_free(h);
}

SK_TEST(test_per_user_limit_many)
{
    /* A user with a large limit holds many orders, interleaved with others'. */
    enum { K = 1000 };
    sk_holders_t *h = sk_holders_new();
    uint32_t big = sk_holders_upsert(h, "big", 3);
    char r[32], u[32];
    for (unsigned i = 0; i < K; i++) {
        size_t rn = (size_t)snprintf(r, sizeof(r), "r%u", i);
        sk_holders_add_order(h, big, r, rn, i);
        size_t un = user_name(u, sizeof(u), i);
        sk_holders_add_order(h, sk_holders_upsert(h, u, un), "", 0, i);
    }
    ASSERT_EQ(h->slots[sk_holders_find(h, "big", 3)].count, K);
    big = sk_holders_find(h, "big", 3); /* the slot may have moved when the table grew */
    for (unsigned i = 0; i < K; i += 37) {
        size_t rn = (size_t)snprintf(r, sizeof(r), "r%u", i);
        ASSERT_EQ(sk_holders_find_request(h, big, r, rn), 2 * i);
    }
    sk_order_t *list;
    size_t n = sk_engine_user_orders(h, "big", 3, &list);
    ASSERT_EQ(n, K);
    for (size_t i = 0; i < n; i++) {
        if (list[i].seq != 2 * i + 1) {
            SK_FAIL_AT("order %zu of big has seq %llu", i, (unsigned long long)list[i].seq);
            break;
        }
    }
    free(list);
    sk_holders_free(h);
}

SK_TEST(test_count_past_65535)
{
    /* per_user_limit goes up to SK_LIMIT_MAX: a holder's count must not wrap. */
    enum { K = 70000 };
    sk_holders_t *h = sk_holders_new();
    uint32_t a = sk_holders_upsert(h, "a", 1);
    for (unsigned i = 0; i < K; i++)
        sk_holders_add_order(h, a, "", 0, i);
    ASSERT_EQ(h->slots[a].count, K);
    sk_holders_pop_order(h);
    ASSERT_EQ(h->slots[a].count, K - 1);
    sk_holders_free(h);
}

SK_TEST_MAIN(SK_RUN(test_upsert_find); SK_RUN(test_growth_many_users); SK_RUN(test_add_pop_orders);
             SK_RUN(test_find_request); SK_RUN(test_per_user_limit_many); SK_RUN(test_count_past_65535);)
