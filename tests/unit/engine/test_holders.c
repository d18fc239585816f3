/* The ledger's record of holders: users, their orders in seq order, request ids, undo. */
#include <stdbool.h>
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
    ASSERT_EQ(sk_holders_user_at(h, a)->count, 0);
    ASSERT_EQ(sk_holders_user_at(h, a)->first, NONE);
    ASSERT_MEM_STR(sk_holders_str(h, sk_holders_user_at(h, b)->user_off), sk_holders_user_at(h, b)->user_len, "bob");
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
            sk_holders_add_order(h, slot, u, n, (int64_t)i, 1, SK_ORDER_CONFIRMED);
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
        ASSERT_EQ(sk_holders_user_at(h, slot)->count, i % 3 == 0 ? 1 : 0);
    }
    /* Order k was bought by user 3k: its holder slot must name that user. */
    for (uint32_t k = 0; k < h->n_orders; k += 997) {
        sk_order_t o;
        sk_holders_order(h, k, 0, &o);
        size_t n = user_name(u, sizeof(u), 3 * k);
        ASSERT_STR_EQ(o.user_id, u);
        ASSERT_STR_EQ(o.request_id, u);
        ASSERT_EQ(o.seq, (uint64_t)k + 1);
        ASSERT_EQ(o.created_at, 3 * (int64_t)k);
        ASSERT_EQ(sk_holders_find(h, u, n), sk_holders_order_at(h, k)->holder);
    }
    ASSERT_EQ(sk_holders_find(h, "user-200000", 11), NONE);
    sk_holders_free(h);
}

SK_TEST(test_growth_never_moves_a_holder_or_an_order)
{
    /* Holders and orders live in pages that never move once whole (page 0 starts small
     * and doubles up to a page): a pointer taken then still points at the same entry
     * after many pages were added (no whole-array copy). */
    enum { N = 5 * SK_HOLDERS_PAGE + 3 };
    sk_holders_t *h = sk_holders_new();
    char u[32];
    size_t n = user_name(u, sizeof(u), 0);
    uint32_t first = sk_holders_upsert(h, u, n);
    sk_holders_add_order(h, first, "r0", 2, 42, 2, SK_ORDER_RESERVED);
    const sk_holder_t *s0 = NULL;
    const sk_holder_order_t *o0 = NULL;
    for (unsigned i = 1; i < N; i++) {
        if (i == SK_HOLDERS_PAGE) {
            s0 = sk_holders_user_at(h, first);
            o0 = sk_holders_order_at(h, 0);
        }
        n = user_name(u, sizeof(u), i);
        uint32_t slot = sk_holders_upsert(h, u, n);
        ASSERT_EQ(slot, i);
        sk_holders_add_order(h, slot, u, n, (int64_t)i, 1, SK_ORDER_CONFIRMED);
    }
    ASSERT_TRUE(s0 == sk_holders_user_at(h, first));
    ASSERT_TRUE(o0 == sk_holders_order_at(h, 0));
    ASSERT_EQ(o0->created_at, 42);
    ASSERT_EQ(o0->quantity, 2);
    ASSERT_EQ(s0->units, 2);
    /* Both sides of every page boundary hold what was put there. */
    for (uint32_t k = SK_HOLDERS_PAGE - 1; k + 1 < N; k += SK_HOLDERS_PAGE) {
        for (uint32_t j = k; j <= k + 1; j++) {
            ASSERT_EQ(sk_holders_order_at(h, j)->created_at, (int64_t)j);
            ASSERT_EQ(sk_holders_order_at(h, j)->holder, j);
            ASSERT_EQ(sk_holders_user_at(h, j)->first, j);
        }
    }
    /* Undo across a page boundary: the newest orders go, the rest stay. */
    while (h->n_orders > 4 * SK_HOLDERS_PAGE - 2)
        sk_holders_pop_order(h);
    ASSERT_EQ(sk_holders_user_at(h, 4 * SK_HOLDERS_PAGE - 3)->count, 1);
    ASSERT_EQ(sk_holders_user_at(h, 4 * SK_HOLDERS_PAGE - 2)->count, 0);
    uint32_t again = sk_holders_add_order(h, 4 * SK_HOLDERS_PAGE - 2, "x", 1, 7, 1, SK_ORDER_CONFIRMED);
    ASSERT_EQ(again, 4 * SK_HOLDERS_PAGE - 2);
    ASSERT_EQ(sk_holders_order_at(h, again)->created_at, 7);
    sk_holders_free(h);
}

SK_TEST(test_freed_at_every_stage_of_growth)
{
    /* Around each threshold of the index (the next one allocated at 3/8, put in place at
     * 1/2, the old one moved afterwards), on both sides of the size from which tables
     * have their own mapping: every user is found, and the record frees whatever it holds
     * then (next, old, index; with the sizes they were allocated with). */
    char u[32];
    for (uint32_t cap = 1024; cap <= (UINT32_C(1) << 17); cap *= 2) {
        const uint32_t ns[] = {cap * 3 / 8 - 1, cap * 3 / 8, cap * 3 / 8 + 1, cap / 2 - 1,
                               cap / 2,         cap / 2 + 1, cap / 2 + 64};
        for (size_t k = 0; k < sizeof(ns) / sizeof(ns[0]); k++) {
            sk_holders_t *h = sk_holders_new();
            for (uint32_t i = 0; i < ns[k]; i++) {
                size_t n = user_name(u, sizeof(u), i);
                sk_holders_add_order(h, sk_holders_upsert(h, u, n), u, n, i, 1, SK_ORDER_CONFIRMED);
            }
            for (uint32_t i = 0; i < ns[k]; i += 7) {
                size_t n = user_name(u, sizeof(u), i);
                if (sk_holders_find(h, u, n) != i) {
                    SK_FAIL_AT("user %u of %u lost", i, ns[k]);
                    break;
                }
            }
            sk_holders_free(h);
        }
    }
}

SK_TEST(test_undo_while_page0_grows)
{
    /* Page 0 starts at 256 entries and doubles: undo the orders that made it grow and
     * add others, the links stay right. */
    sk_holders_t *h = sk_holders_new();
    uint32_t a = sk_holders_upsert(h, "a", 1), b = sk_holders_upsert(h, "b", 1);
    for (int64_t i = 0; i < 600; i++)
        sk_holders_add_order(h, i % 2 ? b : a, "", 0, i, 1, SK_ORDER_CONFIRMED);
    while (h->n_orders > 255)
        sk_holders_pop_order(h);
    ASSERT_EQ(sk_holders_user_at(h, a)->count, 128);
    ASSERT_EQ(sk_holders_user_at(h, b)->count, 127);
    ASSERT_EQ(sk_holders_user_at(h, a)->last, 254);
    ASSERT_EQ(sk_holders_order_at(h, 254)->next, NONE);
    for (int64_t i = 255; i < 1100; i++)
        sk_holders_add_order(h, b, "", 0, 1000 + i, 1, SK_ORDER_CONFIRMED);
    ASSERT_EQ(sk_holders_user_at(h, b)->count, 127 + 845);
    ASSERT_EQ(sk_holders_order_at(h, 253)->next, 255);
    ASSERT_EQ(sk_holders_order_at(h, 1099)->prev, 1098);
    ASSERT_EQ(sk_holders_order_at(h, 700)->created_at, 1700);
    sk_holders_free(h);
}

SK_TEST(test_lookups_while_the_index_moves)
{
    /* Between two doublings the old index is moved a few entries per insert: every user,
     * inserted before or during the move, is found exactly once, and an upsert of a user
     * still in the old index returns its holder instead of adding a second one. */
    enum { N = 50000 };
    sk_holders_t *h = sk_holders_new();
    char u[32];
    unsigned seen_moving = 0;
    for (unsigned i = 0; i < N; i++) {
        size_t n = user_name(u, sizeof(u), i);
        ASSERT_EQ(sk_holders_upsert(h, u, n), i);
        if (h->old) {
            seen_moving++;
            /* The first user (surely not moved yet in an early step) and the newest. */
            size_t n0 = user_name(u, sizeof(u), i / 2);
            ASSERT_EQ(sk_holders_upsert(h, u, n0), i / 2);
            ASSERT_EQ(h->used, i + 1);
        }
    }
    ASSERT_GT(seen_moving, 0u);
    for (unsigned i = 0; i < N; i++) {
        size_t n = user_name(u, sizeof(u), i);
        if (sk_holders_find(h, u, n) != i) {
            SK_FAIL_AT("user %s not found at %u", u, i);
            break;
        }
    }
    size_t n = user_name(u, sizeof(u), N + 1);
    ASSERT_EQ(sk_holders_find(h, u, n), NONE);
    sk_holders_free(h);
}

SK_TEST(test_add_pop_orders)
{
    sk_holders_t *h = sk_holders_new();
    uint32_t a = sk_holders_upsert(h, "a", 1), b = sk_holders_upsert(h, "b", 1);
    sk_holders_add_order(h, a, "r1", 2, 10, 1, SK_ORDER_CONFIRMED); /* seq 1 */
    sk_holders_add_order(h, b, "r2", 2, 11, 1, SK_ORDER_CONFIRMED); /* seq 2 */
    sk_holders_add_order(h, a, "r3", 2, 12, 1, SK_ORDER_CONFIRMED); /* seq 3 */
    ASSERT_EQ(h->n_orders, 3);
    ASSERT_EQ(sk_holders_user_at(h, a)->count, 2);
    ASSERT_EQ(sk_holders_user_at(h, a)->first, 0);
    ASSERT_EQ(sk_holders_user_at(h, a)->last, 2);
    ASSERT_EQ(sk_holders_order_at(h, 0)->next, 2);

    /* Undo the newest order (a's second): a keeps its first. */
    sk_holders_pop_order(h);
    ASSERT_EQ(h->n_orders, 2);
    ASSERT_EQ(sk_holders_user_at(h, a)->count, 1);
    ASSERT_EQ(sk_holders_user_at(h, a)->first, 0);
    ASSERT_EQ(sk_holders_user_at(h, a)->last, 0);
    ASSERT_EQ(sk_holders_order_at(h, 0)->next, NONE);
    ASSERT_EQ(sk_holders_find_request(h, a, "r3", 2, NULL), NONE);
    /* Undo b's only order: b holds nothing but stays known. */
    sk_holders_pop_order(h);
    ASSERT_EQ(sk_holders_user_at(h, b)->count, 0);
    ASSERT_EQ(sk_holders_user_at(h, b)->first, NONE);
    ASSERT_EQ(sk_holders_user_at(h, b)->last, NONE);
    ASSERT_EQ(sk_holders_find(h, "b", 1), b);

    /* Appending again reuses the popped seqs and links correctly. */
    sk_holders_add_order(h, b, "r4", 2, 13, 1, SK_ORDER_CONFIRMED); /* seq 2 */
    sk_holders_add_order(h, a, "r5", 2, 14, 1, SK_ORDER_CONFIRMED); /* seq 3 */
    ASSERT_EQ(sk_holders_user_at(h, b)->first, 1);
    ASSERT_EQ(sk_holders_order_at(h, 0)->next, 2);
    sk_order_t o;
    sk_holders_order(h, 2, 0, &o);
    ASSERT_EQ(o.seq, 3);
    ASSERT_STR_EQ(o.user_id, "a");
    ASSERT_STR_EQ(o.request_id, "r5");
    ASSERT_EQ(o.created_at, 14);
    sk_order_t *list;
    size_t n = sk_holders_user_orders(h, "a", 1, 0, &list);
    ASSERT_EQ(n, 2);
    ASSERT_EQ(list[0].seq, 1);
    ASSERT_STR_EQ(list[0].request_id, "r1");
    ASSERT_EQ(list[1].seq, 3);
    ASSERT_STR_EQ(list[1].request_id, "r5");
    free(list);
    ASSERT_EQ(sk_holders_user_orders(h, "nobody", 6, 0, &list), 0);
    ASSERT_TRUE(list == NULL);
    sk_holders_free(h);
}

SK_TEST(test_find_request)
{
    sk_holders_t *h = sk_holders_new();
    uint32_t a = sk_holders_upsert(h, "a", 1), b = sk_holders_upsert(h, "b", 1);
    sk_holders_add_order(h, a, "req-1", 5, 1, 1, SK_ORDER_CONFIRMED);
    sk_holders_add_order(h, b, "req-1", 5, 2, 1, SK_ORDER_CONFIRMED); /* the same request id from another user */
    sk_holders_add_order(h, a, "", 0, 3, 1, SK_ORDER_CONFIRMED); /* no request id */
    sk_holders_add_order(h, a, "req-2", 5, 4, 1, SK_ORDER_CONFIRMED);
    ASSERT_EQ(sk_holders_find_request(h, a, "req-1", 5, NULL), 0);
    ASSERT_EQ(sk_holders_find_request(h, b, "req-1", 5, NULL), 1);
    ASSERT_EQ(sk_holders_find_request(h, a, "req-2", 5, NULL), 3);
    ASSERT_EQ(sk_holders_find_request(h, b, "req-2", 5, NULL), NONE);
    ASSERT_EQ(sk_holders_find_request(h, a, "req-", 4, NULL), NONE);
    ASSERT_EQ(sk_holders_find_request(h, a, "req-10", 6, NULL), NONE);
    /* An empty request id never matches, not even an order stored without one. */
    ASSERT_EQ(sk_holders_find_request(h, a, "", 0, NULL), NONE);
    sk_order_t o;
    sk_holders_order(h, 2, 0, &o);
    ASSERT_STR_EQ(o.request_id, "");
    ASSERT_STR_EQ(o.user_id, "a");
    sk_holders_free(h);
}

SK_TEST(test_past_the_walk_limit_without_request_ids)
{
    /* A user past the walk limit whose orders all came without a request id: none of
     * them enters the index, which the sale therefore never allocated. Looking up a
     * request id of that user must find nothing, not read the missing table (that
     * crashed the ledger, or a worker once the sale's holders were final). */
    sk_holders_t *h = sk_holders_new();
    uint32_t u = sk_holders_upsert(h, "u", 1);
    for (int i = 0; i < SK_HOLDERS_WALK_MAX + 1; i++)
        sk_holders_add_order(h, u, "", 0, i, 1, SK_ORDER_CONFIRMED);
    ASSERT_EQ(h->req_cap, 0);
    ASSERT_EQ(sk_holders_find_request(h, u, "r1", 2, NULL), NONE);
    /* Their next order with a request id is indexed and found from then on. */
    sk_holders_add_order(h, u, "r1", 2, 99, 1, SK_ORDER_CONFIRMED);
    ASSERT_EQ(sk_holders_find_request(h, u, "r1", 2, NULL), SK_HOLDERS_WALK_MAX + 1);
    ASSERT_EQ(sk_holders_find_request(h, u, "r2", 2, NULL), NONE);
    /* Undone, the table stays and is empty again. */
    sk_holders_pop_order(h);
    ASSERT_EQ(sk_holders_find_request(h, u, "r1", 2, NULL), NONE);
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
        sk_holders_add_order(h, big, r, rn, i, 1, SK_ORDER_CONFIRMED);
        size_t un = user_name(u, sizeof(u), i);
        sk_holders_add_order(h, sk_holders_upsert(h, u, un), "", 0, i, 1, SK_ORDER_CONFIRMED);
    }
    ASSERT_EQ(sk_holders_user_at(h, sk_holders_find(h, "big", 3))->count, K);
    big = sk_holders_find(h, "big", 3); /* the slot may have moved when the table grew */
    for (unsigned i = 0; i < K; i += 37) {
        size_t rn = (size_t)snprintf(r, sizeof(r), "r%u", i);
        ASSERT_EQ(sk_holders_find_request(h, big, r, rn, NULL), 2 * i);
    }
    sk_order_t *list;
    size_t n = sk_holders_user_orders(h, "big", 3, 0, &list);
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
        sk_holders_add_order(h, a, "", 0, i, 1, SK_ORDER_CONFIRMED);
    ASSERT_EQ(sk_holders_user_at(h, a)->count, K);
    sk_holders_pop_order(h);
    ASSERT_EQ(sk_holders_user_at(h, a)->count, K - 1);
    sk_holders_free(h);
}

SK_TEST(test_one_user_100000_orders)
{
    /* A user with a large per_user_limit and distinct request ids: the work of the next
     * decision (find the request id, add the order, undo it) must not grow with the
     * user's orders. A walk of the user's list would look at up to 100 000 orders. */
    enum { K = 100000 };
    sk_holders_t *h = sk_holders_new();
    char r[32], u[32];
    for (unsigned i = 0; i < K; i++) {
        size_t rn = (size_t)snprintf(r, sizeof(r), "req-%u", i);
        sk_holders_add_order(h, sk_holders_upsert(h, "big", 3), r, rn, i, 1, SK_ORDER_CONFIRMED);
        if (i % 10 == 0) { /* other users in between, one with the same request ids */
            size_t un = user_name(u, sizeof(u), i);
            sk_holders_add_order(h, sk_holders_upsert(h, u, un), "", 0, i, 1, SK_ORDER_CONFIRMED);
            sk_holders_add_order(h, sk_holders_upsert(h, "twin", 4), r, rn, i, 1, SK_ORDER_CONFIRMED);
        }
    }
    uint32_t big = sk_holders_find(h, "big", 3);
    ASSERT_EQ(sk_holders_user_at(h, big)->count, K);
    /* Finding: the first, a middle, the newest and a missing request id, and the other
     * user's ids (which must not match big's). */
    uint64_t steps = 0;
    static const unsigned probes[] = {0, 1, 9, 50000, 77777, K - 1};
    for (size_t i = 0; i < SK_ARRAY_LEN(probes); i++) {
        size_t rn = (size_t)snprintf(r, sizeof(r), "req-%u", probes[i]);
        uint32_t k = sk_holders_find_request(h, big, r, rn, &steps);
        ASSERT_NE(k, NONE);
        ASSERT_EQ(sk_holders_order_at(h, k)->holder, big);
        ASSERT_MEM_STR(sk_holders_str(h, sk_holders_order_at(h, k)->req_off), sk_holders_order_at(h, k)->req_len, r);
    }
    ASSERT_EQ(sk_holders_find_request(h, big, "req-100000", 10, &steps), NONE);
    ASSERT_EQ(sk_holders_find_request(h, big, "req-", 4, &steps), NONE);
    uint32_t twin = sk_holders_find(h, "twin", 4);
    uint32_t k = sk_holders_find_request(h, twin, "req-50000", 9, &steps);
    ASSERT_NE(k, NONE);
    ASSERT_EQ(sk_holders_order_at(h, k)->holder, twin);
    ASSERT_EQ(sk_holders_find_request(h, twin, "req-50001", 9, &steps), NONE);
    /* 10 look-ups at a load of at most 1/2: a few entries each, never thousands. */
    ASSERT_LE(steps, 10 * 16);

    /* Adding the next order and undoing it: a few index entries each. */
    uint64_t before = h->steps;
    sk_holders_add_order(h, big, "req-next", 8, 1, 1, SK_ORDER_CONFIRMED);
    ASSERT_LE(h->steps - before, 16);
    ASSERT_EQ(sk_holders_find_request(h, big, "req-next", 8, NULL), h->n_orders - 1);
    before = h->steps;
    sk_holders_pop_order(h);
    ASSERT_LE(h->steps - before, 64);
    ASSERT_EQ(sk_holders_find_request(h, big, "req-next", 8, NULL), NONE);
    ASSERT_EQ(sk_holders_user_at(h, big)->count, K);
    /* The list is intact after the undo: newest last, linked both ways. */
    uint32_t last = sk_holders_user_at(h, big)->last;
    ASSERT_EQ(sk_holders_order_at(h, last)->next, NONE);
    ASSERT_EQ(sk_holders_order_at(h, sk_holders_order_at(h, last)->prev)->next, last);
    sk_order_t o;
    sk_holders_order(h, last, 0, &o);
    ASSERT_STR_EQ(o.request_id, "req-99999");
    sk_holders_free(h);
}

/* A reference answer: every order of the holder, oldest first. */
static uint32_t find_slowly(const sk_holders_t *h, uint32_t slot, const char *req, size_t len)
{
    if (len == 0)
        return NONE;
    for (uint32_t k = 0; k < h->n_orders; k++) {
        const sk_holder_order_t *o = sk_holders_order_at(h, k);
        if (o->holder == slot && o->req_len == len && memcmp(sk_holders_str(h, o->req_off), req, len) == 0)
            return k;
    }
    return NONE;
}

SK_TEST(test_request_index_against_reference)
{
    /* Random adds and undos for a few users around the walk limit (orders enter the
     * index, leave it, enter again): every look-up agrees with a plain scan. */
    sk_holders_t *h = sk_holders_new();
    static const char *const users[] = {"a", "b", "c", "d"};
    uint32_t slot[4];
    for (int i = 0; i < 4; i++)
        slot[i] = sk_holders_upsert(h, users[i], 1);
    uint64_t x = 88172645463325252ull; /* xorshift: the same run every time */
    char r[32];
    int mismatches = 0;
    for (int step = 0; step < 40000 && mismatches == 0; step++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int u = (int)(x % 4);
        bool pop = h->n_orders > 0 && (x >> 8) % 3 == 0;
        if (pop) {
            sk_holders_pop_order(h);
        } else {
            size_t rn = (x >> 16) % 5 == 0 ? 0 : (size_t)snprintf(r, sizeof(r), "r%u", (unsigned)((x >> 20) % 300));
            if (sk_holders_find_request(h, slot[u], r, rn, NULL) == NONE) /* the ledger adds no duplicate */
                sk_holders_add_order(h, slot[u], r, rn, step, 1, SK_ORDER_CONFIRMED);
        }
        for (int q = 0; q < 4; q++) {
            size_t rn = (size_t)snprintf(r, sizeof(r), "r%u", (unsigned)((x >> (24 + q * 8)) % 300));
            uint32_t want = find_slowly(h, slot[(u + q) % 4], r, rn);
            uint32_t got = sk_holders_find_request(h, slot[(u + q) % 4], r, rn, NULL);
            if (got != want) {
                SK_FAIL_AT("step %d: %s/%s found %u, want %u", step, users[(u + q) % 4], r, got, want);
                mismatches++;
                break;
            }
        }
    }
    uint32_t total = 0;
    for (int i = 0; i < 4; i++)
        total += sk_holders_user_at(h, slot[i])->count;
    ASSERT_EQ(total, h->n_orders);
    sk_holders_free(h);
}

SK_TEST(test_arena_past_4gib)
{
    /* Stock goes up to 1e9 orders: user and request ids may need more than 4 GiB of
     * arena. Put strings beyond 2^32 of offsets (the test seam skips the bytes without
     * allocating them) and check every way they are read back. */
    sk_holders_t *h = sk_holders_new();
    uint32_t early = sk_holders_upsert(h, "early", 5);
    sk_holders_add_order(h, early, "r-early", 7, 1, 1, SK_ORDER_CONFIRMED);
    sk_holders_arena_skip(h, ((uint64_t)1 << 32) + 12345);
    uint32_t late = sk_holders_upsert(h, "late-user", 9);
    sk_holders_add_order(h, late, "late-req", 8, 2, 1, SK_ORDER_CONFIRMED);
    ASSERT_GT(sk_holders_user_at(h, late)->user_off, UINT32_MAX);
    ASSERT_GT(sk_holders_order_at(h, 1)->req_off, UINT32_MAX);
    ASSERT_GT(h->arena_len, (uint64_t)1 << 32);
    /* Many more users after the skip: the table grows and moves every slot. */
    char u[32];
    for (unsigned i = 0; i < 3000; i++) {
        size_t n = user_name(u, sizeof(u), i);
        sk_holders_add_order(h, sk_holders_upsert(h, u, n), u, n, i, 1, SK_ORDER_CONFIRMED);
    }
    ASSERT_EQ(sk_holders_find(h, "late-use", 8), NONE);
    late = sk_holders_find(h, "late-user", 9);
    ASSERT_NE(late, NONE);
    early = sk_holders_find(h, "early", 5);
    ASSERT_NE(early, NONE);
    ASSERT_EQ(sk_holders_find_request(h, late, "late-req", 8, NULL), 1);
    ASSERT_EQ(sk_holders_find_request(h, early, "r-early", 7, NULL), 0);
    ASSERT_EQ(sk_holders_find_request(h, late, "r-early", 7, NULL), NONE);
    sk_order_t o;
    sk_holders_order(h, 1, 0, &o);
    ASSERT_STR_EQ(o.user_id, "late-user");
    ASSERT_STR_EQ(o.request_id, "late-req");
    sk_holders_order(h, h->n_orders - 1, 0, &o);
    ASSERT_STR_EQ(o.user_id, "user-2999");
    ASSERT_STR_EQ(o.request_id, "user-2999");
    sk_order_t *list;
    ASSERT_EQ(sk_holders_user_orders(h, "late-user", 9, 0, &list), 1);
    ASSERT_STR_EQ(list[0].request_id, "late-req");
    free(list);
    /* A user with many orders past 4 GiB: their request ids go through the index. */
    uint32_t big = sk_holders_upsert(h, "big", 3);
    char r[32];
    for (unsigned i = 0; i < 100; i++)
        sk_holders_add_order(h, big, r, (size_t)snprintf(r, sizeof(r), "b%u", i), i, 1, SK_ORDER_CONFIRMED);
    big = sk_holders_find(h, "big", 3);
    ASSERT_NE(sk_holders_find_request(h, big, "b57", 3, NULL), NONE);
    sk_holders_free(h);
}

SK_TEST(test_blocks_hold_every_string_and_page)
{
    /* The pages after page 0 and the chunks after chunk 0 are carved one after another
     * from the same blocks: a string that exactly fills a chunk, a chunk passed over by
     * the skip seam, and pages and chunks that interleave over several regions must each
     * keep their own bytes, and all of them go with the record. */
    enum { CHUNK = 1 << SK_HOLDERS_CHUNK_BITS };
    sk_holders_t *h = sk_holders_new();
    uint32_t first = sk_holders_upsert(h, "first", 5);
    sk_holders_add_order(h, first, "r0", 2, 1, 1, SK_ORDER_CONFIRMED);
    /* Chunk 1 is passed over; the next string ends exactly at the end of chunk 2. */
    sk_holders_arena_skip(h, 3 * (uint64_t)CHUNK - 10 - h->arena_len);
    uint32_t fill = sk_holders_upsert(h, "123456789", 9);
    ASSERT_EQ(sk_holders_user_at(h, fill)->user_off, 3 * (uint64_t)CHUNK - 10);
    ASSERT_EQ(h->arena_len, 3 * (uint64_t)CHUNK);
    ASSERT_TRUE(h->chunks[1] == NULL);
    uint32_t next = sk_holders_upsert(h, "next", 4); /* the first string of chunk 3 */
    ASSERT_EQ(sk_holders_user_at(h, next)->user_off, 3 * (uint64_t)CHUNK);
    /* Three pages of holders and orders with 64-byte ids: ~6 MiB of strings, so pages
     * and chunks alternate, past the plain start into a region. */
    enum { N = 3 * SK_HOLDERS_PAGE + 5 };
    char u[SK_USER_MAX + 1], r[SK_REQUEST_MAX + 1];
    for (unsigned i = 0; i < N; i++) {
        snprintf(u, sizeof(u), "%064u", i);
        snprintf(r, sizeof(r), "%063u-", i);
        uint32_t slot = sk_holders_upsert(h, u, SK_USER_MAX);
        sk_holders_add_order(h, slot, r, SK_REQUEST_MAX, i, 1 + i % 3, SK_ORDER_RESERVED);
        if (i % 1000 == 7) { /* an undo now and then, and the order made again */
            sk_holders_pop_order(h);
            sk_holders_add_order(h, slot, r, SK_REQUEST_MAX, i, 1 + i % 3, SK_ORDER_RESERVED);
        }
    }
    /* Some of them malloc's, the later ones carved from a region (under AddressSanitizer
     * every block is malloc's). */
    ASSERT_GT(h->blocks.n_own, 2);
    ASSERT_EQ(h->blocks.n_regions > 0, SK_BLOCKS_CARVED);
    ASSERT_STR_EQ(sk_holders_str(h, sk_holders_user_at(h, fill)->user_off), "123456789");
    ASSERT_STR_EQ(sk_holders_str(h, sk_holders_user_at(h, next)->user_off), "next");
    sk_order_t o;
    for (unsigned i = 0; i < N; i++) {
        snprintf(u, sizeof(u), "%064u", i);
        snprintf(r, sizeof(r), "%063u-", i);
        uint32_t slot = sk_holders_find(h, u, SK_USER_MAX);
        ASSERT_NE(slot, NONE);
        ASSERT_EQ(sk_holders_user_at(h, slot)->count, 1);
        ASSERT_EQ(sk_holders_find_request(h, slot, r, SK_REQUEST_MAX, NULL), i + 1);
        sk_holders_order(h, i + 1, 1000, &o);
        ASSERT_STR_EQ(o.user_id, u);
        ASSERT_STR_EQ(o.request_id, r);
        ASSERT_EQ(o.quantity, 1 + i % 3);
        ASSERT_EQ(o.created_at, i);
    }
    sk_holders_free(h);
}

SK_TEST_MAIN(SK_RUN(test_upsert_find); SK_RUN(test_growth_many_users);
             SK_RUN(test_growth_never_moves_a_holder_or_an_order); SK_RUN(test_freed_at_every_stage_of_growth);
             SK_RUN(test_undo_while_page0_grows); SK_RUN(test_lookups_while_the_index_moves);
             SK_RUN(test_add_pop_orders); SK_RUN(test_find_request);
             SK_RUN(test_past_the_walk_limit_without_request_ids); SK_RUN(test_per_user_limit_many);
             SK_RUN(test_count_past_65535); SK_RUN(test_one_user_100000_orders);
             SK_RUN(test_request_index_against_reference); SK_RUN(test_arena_past_4gib);
             SK_RUN(test_blocks_hold_every_string_and_page);)
