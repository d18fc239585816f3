/* The rules of the operator's controls (src/engine/control.c) in every state of a sale,
 * and the JSON of the trail written and read back. */
#include "engine/control.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "test.h"

#define T0 1700000000000LL
#define HOUR 3600000LL

static sk_sale_params_t params(int64_t starts, int64_t ends)
{
    return (sk_sale_params_t){.name = "sale",
                              .starts_at = starts,
                              .ends_at = ends,
                              .per_user_limit = 4,
                              .max_quantity = 2,
                              .payment_window_ms = 0};
}

/* Applies c at now to a copy of p and counts; returns the result, the copies in *po, *co. */
static sk_control_result_t apply(const sk_control_t *c, int64_t now, bool has_orders, const sk_sale_params_t *p,
                                 const sk_sale_counts_t *counts, sk_sale_params_t *po, sk_sale_counts_t *co,
                                 const char **field)
{
    *po = *p;
    *co = *counts;
    return sk_control_apply(c, now, has_orders, false, po, co, field);
}

SK_TEST(test_pause_resume_close_in_every_state)
{
    sk_sale_counts_t live = {10, 2, 3}, sold_out = {5, 2, 3};
    sk_sale_params_t p = params(T0, T0 + HOUR), po;
    sk_sale_counts_t co;
    const char *field;
    sk_control_t pause = {.action = SK_CTL_PAUSE}, resume = {.action = SK_CTL_RESUME}, close = {.action = SK_CTL_CLOSE};
    /* scheduled, live, sold out: pause and close are accepted, resume is not */
    int64_t times[] = {T0 - 1000, T0, T0 + 1000};
    for (size_t i = 0; i < SK_ARRAY_LEN(times); i++) {
        for (int so = 0; so < 2; so++) {
            const sk_sale_counts_t *c = so ? &sold_out : &live;
            ASSERT_EQ(apply(&pause, times[i], true, &p, c, &po, &co, &field), SK_CR_OK);
            ASSERT_TRUE(po.paused && !po.closed);
            ASSERT_EQ(sk_sale_state_of(&po, &co, times[i]), i == 0 ? SK_SALE_SCHEDULED : SK_SALE_PAUSED);
            ASSERT_EQ(apply(&resume, times[i], true, &p, c, &po, &co, &field), SK_CR_NOT_PAUSED);
            ASSERT_EQ(apply(&close, times[i], true, &p, c, &po, &co, &field), SK_CR_OK);
            ASSERT_TRUE(po.closed);
            ASSERT_EQ(sk_sale_state_of(&po, &co, times[i]), SK_SALE_ENDED);
            ASSERT_EQ(co.stock, c->stock);
        }
    }
    /* paused: pause again is refused, resume and close are accepted */
    sk_sale_params_t paused = p;
    paused.paused = true;
    ASSERT_EQ(apply(&pause, T0, true, &paused, &live, &po, &co, &field), SK_CR_ALREADY_PAUSED);
    ASSERT_EQ(apply(&resume, T0, true, &paused, &live, &po, &co, &field), SK_CR_OK);
    ASSERT_TRUE(!po.paused);
    ASSERT_EQ(apply(&close, T0, true, &paused, &live, &po, &co, &field), SK_CR_OK);
    /* ended by the clock, by the writer's flag, or closed: nothing is accepted */
    sk_sale_params_t closed = p;
    closed.closed = true;
    sk_control_t add = {.action = SK_CTL_ADD_STOCK, .amount = 1};
    sk_control_t all[] = {pause, resume, close, add};
    for (size_t i = 0; i < SK_ARRAY_LEN(all); i++) {
        ASSERT_EQ(apply(&all[i], T0 + HOUR, true, &p, &live, &po, &co, &field), SK_CR_ENDED);
        ASSERT_EQ(apply(&all[i], T0, true, &closed, &live, &po, &co, &field), SK_CR_CLOSED);
        po = p;
        co = live;
        ASSERT_EQ(sk_control_apply(&all[i], T0, true, true, &po, &co, &field), SK_CR_ENDED);
        ASSERT_EQ(co.stock, live.stock); /* untouched when refused */
    }
}

SK_TEST(test_stock)
{
    sk_sale_params_t p = params(T0, T0 + HOUR), po;
    sk_sale_counts_t c = {10, 2, 3}, co;
    const char *field;
    sk_control_t add = {.action = SK_CTL_ADD_STOCK, .amount = 5};
    ASSERT_EQ(apply(&add, T0, true, &p, &c, &po, &co, &field), SK_CR_OK);
    ASSERT_EQ(co.stock, 15);
    ASSERT_EQ(co.held, 2);
    ASSERT_EQ(co.sold, 3);
    /* sold out: an addition makes it live again */
    sk_sale_counts_t so = {5, 2, 3};
    ASSERT_EQ(sk_sale_state_of(&p, &so, T0), SK_SALE_SOLD_OUT);
    ASSERT_EQ(apply(&add, T0, true, &p, &so, &po, &co, &field), SK_CR_OK);
    ASSERT_EQ(sk_sale_state_of(&po, &co, T0), SK_SALE_LIVE);
    add.amount = SK_STOCK_MAX - 9; /* 10 + that > the most a sale may have */
    ASSERT_EQ(apply(&add, T0, true, &p, &c, &po, &co, &field), SK_CR_STOCK_MAX);
    add.amount = SK_STOCK_MAX - 10;
    ASSERT_EQ(apply(&add, T0, true, &p, &c, &po, &co, &field), SK_CR_OK);
    ASSERT_EQ(co.stock, SK_STOCK_MAX);
    add.amount = 0;
    ASSERT_EQ(apply(&add, T0, true, &p, &c, &po, &co, &field), SK_CR_BAD_VALUE);
    ASSERT_STR_EQ(field, "add");

    /* remove: down to sold + held, never below */
    sk_control_t rm = {.action = SK_CTL_REMOVE_STOCK, .amount = 5};
    ASSERT_EQ(apply(&rm, T0, true, &p, &c, &po, &co, &field), SK_CR_OK);
    ASSERT_EQ(co.stock, 5);
    ASSERT_EQ(sk_sale_state_of(&po, &co, T0), SK_SALE_SOLD_OUT);
    rm.amount = 6;
    ASSERT_EQ(apply(&rm, T0, true, &p, &c, &po, &co, &field), SK_CR_INSUFFICIENT);
    ASSERT_EQ(co.stock, 10);
    rm.amount = -1;
    ASSERT_EQ(apply(&rm, T0, true, &p, &c, &po, &co, &field), SK_CR_BAD_VALUE);
    ASSERT_STR_EQ(field, "remove");
    /* scheduled and paused sales take stock changes too */
    ASSERT_EQ(apply(&add, T0 - 1, false, &p, &c, &po, &co, &field), SK_CR_BAD_VALUE); /* amount 0 still */
    add.amount = 1;
    ASSERT_EQ(apply(&add, T0 - 1, false, &p, &c, &po, &co, &field), SK_CR_OK);
    sk_sale_params_t paused = p;
    paused.paused = true;
    rm.amount = 1;
    ASSERT_EQ(apply(&rm, T0, true, &paused, &c, &po, &co, &field), SK_CR_OK);
    ASSERT_TRUE(po.paused);
}

static sk_control_t patch(uint32_t set)
{
    sk_control_t c = {.action = SK_CTL_PATCH, .set = set};
    return c;
}

SK_TEST(test_patch)
{
    sk_sale_params_t p = params(T0, T0 + HOUR), po;
    sk_sale_counts_t c = {10, 0, 0}, co;
    const char *field;

    sk_control_t n = patch(SK_PATCH_NAME);
    snprintf(n.name, sizeof(n.name), "New name");
    ASSERT_EQ(apply(&n, T0 + 10, true, &p, &c, &po, &co, &field), SK_CR_OK);
    ASSERT_STR_EQ(po.name, "New name");
    n.name[0] = '\0';
    ASSERT_EQ(apply(&n, T0 + 10, true, &p, &c, &po, &co, &field), SK_CR_BAD_VALUE);
    ASSERT_STR_EQ(field, "name");
    ASSERT_EQ(apply(&(sk_control_t){.action = SK_CTL_PATCH}, T0, true, &p, &c, &po, &co, &field), SK_CR_BAD_VALUE);

    /* ends_at: extend or shorten, never into the past, never before the start */
    sk_control_t e = patch(SK_PATCH_ENDS_AT);
    e.ends_at = T0 + 2 * HOUR;
    ASSERT_EQ(apply(&e, T0 + 10, true, &p, &c, &po, &co, &field), SK_CR_OK);
    ASSERT_EQ(po.ends_at, T0 + 2 * HOUR);
    e.ends_at = T0 + 20;
    ASSERT_EQ(apply(&e, T0 + 10, true, &p, &c, &po, &co, &field), SK_CR_OK);
    e.ends_at = T0 + 10; /* at now: that is close, not a patch */
    ASSERT_EQ(apply(&e, T0 + 10, true, &p, &c, &po, &co, &field), SK_CR_END_IN_PAST);
    ASSERT_STR_EQ(field, "ends_at");
    e.ends_at = T0 - 5; /* a scheduled sale: before its start */
    ASSERT_EQ(apply(&e, T0 - 10, false, &p, &c, &po, &co, &field), SK_CR_END_BEFORE_START);
    ASSERT_STR_EQ(field, "ends_at");

    /* starts_at: only a scheduled sale's, not in the past (a minute's grace) */
    sk_control_t st = patch(SK_PATCH_STARTS_AT);
    st.starts_at = T0 + 1000;
    ASSERT_EQ(apply(&st, T0 - 10, false, &p, &c, &po, &co, &field), SK_CR_OK);
    ASSERT_EQ(po.starts_at, T0 + 1000);
    ASSERT_EQ(apply(&st, T0, true, &p, &c, &po, &co, &field), SK_CR_STARTED);
    st.starts_at = T0; /* the value it has: no change, accepted even once started */
    ASSERT_EQ(apply(&st, T0 + 10, true, &p, &c, &po, &co, &field), SK_CR_OK);
    st.starts_at = T0 - 20 - SK_PAST_GRACE_MS;
    ASSERT_EQ(apply(&st, T0 - 10, false, &p, &c, &po, &co, &field), SK_CR_START_IN_PAST);
    ASSERT_STR_EQ(field, "starts_at");
    st.starts_at = T0 - 10 - SK_PAST_GRACE_MS;
    ASSERT_EQ(apply(&st, T0 - 10, false, &p, &c, &po, &co, &field), SK_CR_OK);
    st.starts_at = T0 + HOUR; /* at the end */
    ASSERT_EQ(apply(&st, T0 - 10, false, &p, &c, &po, &co, &field), SK_CR_END_BEFORE_START);
    ASSERT_STR_EQ(field, "starts_at");
    sk_control_t both = patch(SK_PATCH_STARTS_AT | SK_PATCH_ENDS_AT);
    both.starts_at = T0 + 2 * HOUR;
    both.ends_at = T0 + 3 * HOUR;
    ASSERT_EQ(apply(&both, T0 - 10, false, &p, &c, &po, &co, &field), SK_CR_OK);
    ASSERT_EQ(po.starts_at, T0 + 2 * HOUR);
    ASSERT_EQ(po.ends_at, T0 + 3 * HOUR);

    /* limits: max_quantity never above per_user_limit, whichever moves */
    sk_control_t l = patch(SK_PATCH_PER_USER_LIMIT);
    l.per_user_limit = 1;
    ASSERT_EQ(apply(&l, T0, true, &p, &c, &po, &co, &field), SK_CR_MAX_ABOVE_LIMIT);
    ASSERT_STR_EQ(field, "per_user_limit");
    l.per_user_limit = 2;
    ASSERT_EQ(apply(&l, T0, true, &p, &c, &po, &co, &field), SK_CR_OK);
    sk_control_t m = patch(SK_PATCH_MAX_QUANTITY);
    m.max_quantity = 5;
    ASSERT_EQ(apply(&m, T0, true, &p, &c, &po, &co, &field), SK_CR_MAX_ABOVE_LIMIT);
    ASSERT_STR_EQ(field, "max_quantity");
    sk_control_t lm = patch(SK_PATCH_PER_USER_LIMIT | SK_PATCH_MAX_QUANTITY);
    lm.per_user_limit = 10;
    lm.max_quantity = 5;
    ASSERT_EQ(apply(&lm, T0, true, &p, &c, &po, &co, &field), SK_CR_OK);
    ASSERT_EQ(po.per_user_limit, 10);
    ASSERT_EQ(po.max_quantity, 5);
    lm.per_user_limit = SK_LIMIT_MAX + 1;
    ASSERT_EQ(apply(&lm, T0, true, &p, &c, &po, &co, &field), SK_CR_BAD_VALUE);

    /* payment_window_ms: only while the sale has no orders */
    sk_control_t w = patch(SK_PATCH_PAYMENT_WINDOW);
    w.payment_window_ms = 60000;
    ASSERT_EQ(apply(&w, T0, false, &p, &c, &po, &co, &field), SK_CR_OK);
    ASSERT_EQ(po.payment_window_ms, 60000);
    ASSERT_EQ(apply(&w, T0, true, &p, &c, &po, &co, &field), SK_CR_HAS_ORDERS);
    w.payment_window_ms = 0; /* its own value: no change */
    ASSERT_EQ(apply(&w, T0, true, &p, &c, &po, &co, &field), SK_CR_OK);

    /* a refused patch changes nothing, even the fields that were fine */
    sk_control_t mixed = patch(SK_PATCH_NAME | SK_PATCH_ENDS_AT);
    snprintf(mixed.name, sizeof(mixed.name), "x");
    mixed.ends_at = T0;
    ASSERT_EQ(apply(&mixed, T0 + 5, true, &p, &c, &po, &co, &field), SK_CR_END_IN_PAST);
    ASSERT_STR_EQ(po.name, "sale");
}

SK_TEST(test_same_and_names)
{
    sk_control_t a = patch(SK_PATCH_NAME | SK_PATCH_ENDS_AT), b;
    snprintf(a.name, sizeof(a.name), "n");
    a.ends_at = 5;
    b = a;
    b.starts_at = 99; /* not set: not compared */
    ASSERT_TRUE(sk_control_same(&a, &b));
    b.ends_at = 6;
    ASSERT_TRUE(!sk_control_same(&a, &b));
    sk_control_t p1 = {.action = SK_CTL_PAUSE}, p2 = {.action = SK_CTL_RESUME};
    ASSERT_TRUE(!sk_control_same(&p1, &p2));
    sk_control_t s1 = {.action = SK_CTL_ADD_STOCK, .amount = 1}, s2 = {.action = SK_CTL_ADD_STOCK, .amount = 2};
    ASSERT_TRUE(!sk_control_same(&s1, &s2));
    for (int i = 0; i < SK_CTL__COUNT; i++) {
        sk_control_action_t back;
        ASSERT_EQ(sk_control_action_parse(sk_control_action_name((sk_control_action_t)i), &back), 0);
        ASSERT_EQ(back, i);
    }
    sk_control_action_t x;
    ASSERT_EQ(sk_control_action_parse("delete", &x), -EINVAL);
    ASSERT_TRUE(sk_control_result_is_bad_request(SK_CR_END_IN_PAST));
    ASSERT_TRUE(!sk_control_result_is_bad_request(SK_CR_INSUFFICIENT));
    ASSERT_STR_EQ(sk_control_result_name(SK_CR_INSUFFICIENT), "insufficient");
}

SK_TEST(test_json_round_trip)
{
    sk_buf_t b = {0};
    sk_control_t all[] = {
        {.action = SK_CTL_PAUSE},
        {.action = SK_CTL_CLOSE},
        {.action = SK_CTL_ADD_STOCK, .amount = 7},
        {.action = SK_CTL_REMOVE_STOCK, .amount = SK_STOCK_MAX},
        {.action = SK_CTL_PATCH,
         .set = SK_PATCH_NAME | SK_PATCH_STARTS_AT | SK_PATCH_ENDS_AT | SK_PATCH_PER_USER_LIMIT |
                SK_PATCH_MAX_QUANTITY | SK_PATCH_PAYMENT_WINDOW,
         .starts_at = T0,
         .ends_at = T0 + 1,
         .per_user_limit = 3,
         .max_quantity = 2,
         .payment_window_ms = 900000,
         .name = "票 \"quoted\""},
        {.action = SK_CTL_PATCH, .set = SK_PATCH_ENDS_AT, .ends_at = T0 + HOUR},
    };
    for (size_t i = 0; i < SK_ARRAY_LEN(all); i++) {
        b.len = 0;
        sk_control_params_json(&b, &all[i]);
        sk_control_t back;
        ASSERT_EQ(sk_control_params_parse(all[i].action, b.data, b.len, &back), 0);
        ASSERT_TRUE(sk_control_same(&all[i], &back));
    }
    sk_control_t back;
    ASSERT_EQ(sk_control_params_parse(SK_CTL_ADD_STOCK, "{}", 2, &back), -EINVAL);
    ASSERT_EQ(sk_control_params_parse(SK_CTL_ADD_STOCK, "{\"add\":1,\"x\":2}", 15, &back), -EINVAL);
    ASSERT_EQ(sk_control_params_parse(SK_CTL_PATCH, "{}", 2, &back), -EINVAL);
    ASSERT_EQ(sk_control_params_parse(SK_CTL_PAUSE, "{\"x\":1}", 7, &back), -EINVAL);
    ASSERT_EQ(sk_control_params_parse(SK_CTL_PAUSE, "nope", 4, &back), -EINVAL);

    sk_sale_params_t p = params(T0, T0 + HOUR);
    p.paused = true;
    p.name = "a \"name\" 票";
    sk_sale_counts_t c = {10, 2, 3};
    sk_sale_snapshot_t snap, snap2;
    sk_sale_snapshot(&snap, &p, &c, 4, T0);
    ASSERT_EQ(snap.state, SK_SALE_PAUSED);
    b.len = 0;
    sk_sale_snapshot_json(&b, &snap);
    ASSERT_EQ(sk_sale_snapshot_parse(b.data, b.len, &snap2), 0);
    ASSERT_EQ(memcmp(&snap, &snap2, offsetof(sk_sale_snapshot_t, name)), 0);
    ASSERT_STR_EQ(snap2.name, p.name);
    ASSERT_EQ(sk_sale_snapshot_parse("{\"stock\":1}", 11, &snap2), -EINVAL);

    sk_trail_entry_t e = {.seq = 3, .at = T0, .ctl = all[2], .actor = "admin", .request_id = "r-1"};
    e.before = snap;
    e.after = snap;
    e.after.stock = 17;
    b.len = 0;
    sk_trail_entry_json(&b, &e);
    sk_buf_putc(&b, '\0');
    ASSERT_TRUE(strstr(b.data, "\"action\":\"add_stock\"") != NULL);
    ASSERT_TRUE(strstr(b.data, "\"params\":{\"add\":7}") != NULL);
    ASSERT_TRUE(strstr(b.data, "\"after\":{\"stock\":17,\"held\":2,\"sold\":3,\"remaining\":12,\"orders\":4") != NULL);
    sk_buf_free(&b);
}

SK_TEST_MAIN(SK_RUN(test_pause_resume_close_in_every_state); SK_RUN(test_stock); SK_RUN(test_patch);
             SK_RUN(test_same_and_names); SK_RUN(test_json_round_trip);)
