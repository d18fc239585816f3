/* The engine driven in-process, without HTTP, for the engine's and the backends' unit
 * tests: a real ledger thread over a real SQLite journal in a temp dir, and a worker loop
 * on the test's thread that submits ops and waits for their answers. */
#ifndef SK_TESTS_ENGINE_RUNNER_H
#define SK_TESTS_ENGINE_RUNNER_H

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/embedded.h"
#include "engine/backend.h"
#include "engine/control.h"
#include "engine/engine.h"
#include "testdir.h"

#define HOUR_MS (3600 * 1000LL)

/* ---- a worker loop that waits for its ops ------------------------------------------------ */

typedef struct {
    sk_loop_t *loop;
    sk_engine_worker_t *w;
    size_t pending;
    sk_timer_t guard;
    bool timed_out;
} runner_t;

/* What one op answered. */
typedef struct {
    bool done;
    sk_buy_result_t result;
    sk_tr_result_t tr; /* GET_ORDER, PAY, CANCEL, REFUND */
    sk_order_t order; /* the op's order as answered */
    int status;
    uint64_t seq;
    uint32_t held; /* limit_reached, sold_out: the orders the buyer holds (seq: their first) */
    int64_t remaining;
    char user[SK_USER_MAX + 1]; /* the order's user (confirmed, duplicate, limit_reached) */
    char buyer[SK_USER_MAX + 1]; /* who asked */
    sk_sale_t *sale;
    sk_order_t *orders;
    size_t n_orders;
    bool more;
    int control_result; /* CONTROL: sk_control_result_t */
    const char *field;
    sk_trail_entry_t entry; /* CONTROL: the entry answered */
    sk_trail_entry_t *entries; /* LOG: kept by the test (free it) */
    size_t n_entries;
} answer_t;

/* Copies the op's answer into its answer_t (what it owns goes with it). */
static inline void take_answer(sk_op_t *op)
{
    answer_t *a = op->ctx;
    a->done = true;
    a->result = op->result;
    a->tr = op->tr;
    a->order = op->order;
    a->status = op->status;
    a->seq = op->order.seq;
    a->held = op->held;
    a->remaining = op->remaining;
    a->sale = op->sale;
    a->more = op->list_more;
    memcpy(a->user, op->order.user_id, sizeof(a->user));
    memcpy(a->buyer, op->user_id, sizeof(a->buyer));
    if (op->kind == SK_OP_ORDERS || op->kind == SK_OP_LIST) {
        a->orders = op->orders; /* kept by the test */
        a->n_orders = op->n_orders;
        op->orders = NULL;
    }
    a->control_result = op->control_result;
    a->field = op->field;
    if (op->kind == SK_OP_CONTROL && op->entries)
        a->entry = op->entries[0];
    if (op->kind == SK_OP_LOG) {
        a->entries = op->entries; /* kept by the test */
        a->n_entries = op->n_entries;
        op->entries = NULL;
    }
}

/* One answer fewer to wait for: the loop stops at the last. */
static inline void answered(runner_t *r)
{
    if (--r->pending == 0)
        sk_loop_stop(r->loop);
}

static inline void on_done(sk_op_t *op)
{
    runner_t *r = op->owner;
    take_answer(op);
    sk_op_free(op);
    answered(r);
}

static inline void on_guard(sk_loop_t *loop, sk_timer_t *t)
{
    runner_t *r = SK_CONTAINER_OF(t, runner_t, guard);
    r->timed_out = true;
    sk_loop_stop(loop);
}

static inline void runner_init(runner_t *r, sk_engine_t *e)
{
    memset(r, 0, sizeof(*r));
    r->loop = sk_loop_new();
    r->w = sk_engine_attach(e, r->loop);
}

static inline void runner_free(runner_t *r)
{
    sk_engine_detach(r->w);
    sk_loop_free(r->loop);
}

/* Runs the loop until every submitted op answered (or 60 s passed). */
static inline bool runner_wait(runner_t *r)
{
    if (r->pending == 0)
        return true;
    sk_timer_start(r->loop, &r->guard, 60000, on_guard);
    sk_loop_run(r->loop);
    sk_timer_stop(r->loop, &r->guard);
    return !r->timed_out && r->pending == 0;
}

static inline void submit(runner_t *r, sk_op_t *op, answer_t *a)
{
    memset(a, 0, sizeof(*a));
    op->owner = r;
    op->ctx = a;
    op->done = on_done;
    r->pending++;
    sk_engine_submit(r->w, op);
}

static inline void buy_q_at(runner_t *r, sk_sale_t *s, const char *user, const char *req, uint32_t q, int64_t now,
                            answer_t *a)
{
    sk_op_t *op = sk_op_new(SK_OP_BUY);
    op->quantity = q;
    op->sale = s;
    op->now_ms = now;
    op->user_len = (uint8_t)strlen(user);
    memcpy(op->user_id, user, op->user_len + 1u);
    op->request_len = (uint8_t)strlen(req);
    memcpy(op->request_id, req, op->request_len + 1u);
    submit(r, op, a);
}

static inline void buy_at(runner_t *r, sk_sale_t *s, const char *user, const char *req, int64_t now, answer_t *a)
{
    buy_q_at(r, s, user, req, 1, now, a);
}

static inline void buy(runner_t *r, sk_sale_t *s, const char *user, const char *req, answer_t *a)
{
    buy_at(r, s, user, req, sk_now_ms(), a);
}

/* Buys once at a given clock reading and waits for the answer. */
static inline answer_t buy_at1(runner_t *r, sk_sale_t *s, const char *user, const char *req, int64_t now)
{
    answer_t a;
    buy_at(r, s, user, req, now, &a);
    runner_wait(r);
    return a;
}

/* A user's orders through the ledger (the caller frees a.orders). */
static inline answer_t orders_of1(runner_t *r, sk_sale_t *s, const char *user)
{
    sk_op_t *op = sk_op_new(SK_OP_ORDERS);
    op->sale = s;
    op->user_len = (uint8_t)strlen(user);
    memcpy(op->user_id, user, op->user_len + 1u);
    answer_t a;
    submit(r, op, &a);
    runner_wait(r);
    return a;
}

/* Buys q units once and waits for the answer. */
static inline answer_t buy_q1(runner_t *r, sk_sale_t *s, const char *user, const char *req, uint32_t q)
{
    answer_t a;
    buy_q_at(r, s, user, req, q, sk_now_ms(), &a);
    runner_wait(r);
    return a;
}

/* An op on one order (GET_ORDER, PAY, CANCEL, REFUND), submitted; `who` is the payment id
 * (PAY) or the buyer (CANCEL; NULL: the admin). */
static inline void order_op(runner_t *r, sk_op_kind_t kind, sk_sale_t *s, uint64_t seq, const char *who, answer_t *a)
{
    sk_op_t *op = sk_op_new(kind);
    op->sale = s;
    op->seq = seq;
    if (kind == SK_OP_PAY && who) {
        op->payment_len = (uint8_t)strlen(who);
        memcpy(op->payment_id, who, op->payment_len + 1u);
    } else if (kind == SK_OP_CANCEL) {
        op->admin = who == NULL;
        if (who) {
            op->user_len = (uint8_t)strlen(who);
            memcpy(op->user_id, who, op->user_len + 1u);
        }
    }
    submit(r, op, a);
}

/* The same, waiting for the answer. */
static inline answer_t order_op1(runner_t *r, sk_op_kind_t kind, sk_sale_t *s, uint64_t seq, const char *who)
{
    answer_t a;
    order_op(r, kind, s, seq, who, &a);
    runner_wait(r);
    return a;
}

/* An operator's control of sale s, submitted: c as asked, by "admin" with request id req. */
static inline void control(runner_t *r, sk_sale_t *s, const sk_control_t *c, const char *req, answer_t *a)
{
    sk_op_t *op = sk_op_new(SK_OP_CONTROL);
    op->sale = s;
    op->entries = sk_xcalloc(1, sizeof(*op->entries));
    op->n_entries = 1;
    op->entries[0].ctl = *c;
    snprintf(op->entries[0].actor, sizeof(op->entries[0].actor), "admin");
    snprintf(op->entries[0].request_id, sizeof(op->entries[0].request_id), "%s", req);
    submit(r, op, a);
}

/* The same, waiting for the answer. */
static inline answer_t control1(runner_t *r, sk_sale_t *s, const sk_control_t *c, const char *req)
{
    answer_t a;
    control(r, s, c, req, &a);
    runner_wait(r);
    return a;
}

/* A control without params (pause, resume, close) or with an amount (add, remove). */
static inline answer_t act1(runner_t *r, sk_sale_t *s, sk_control_action_t action, int64_t amount, const char *req)
{
    sk_control_t c = {.action = action, .amount = amount};
    return control1(r, s, &c, req);
}

/* The sale's trail (the caller frees a.entries). */
static inline answer_t trail_of1(runner_t *r, sk_sale_t *s)
{
    sk_op_t *op = sk_op_new(SK_OP_LOG);
    op->sale = s;
    answer_t a;
    submit(r, op, &a);
    runner_wait(r);
    return a;
}

/* The worker's own answer to a purchase (sk_engine_gate): true with *res when the
 * worker answers it without the ledger. */
static inline bool gate(const sk_sale_t *s, const char *user, uint32_t q, int64_t now, sk_buy_result_t *res)
{
    int64_t remaining;
    return sk_engine_gate(s, now, sk_user_hash(user, strlen(user)), q, res, &remaining);
}

/* A sale's counts, checked to add up (I7) at this read. */
static inline sk_sale_counts_t counts_of(const sk_sale_t *s)
{
    sk_sale_counts_t c;
    sk_sale_counts(s, &c);
    if (c.held < 0 || c.sold < 0 || sk_counts_remaining(&c) < 0) {
        fprintf(stderr, "counts of %s do not add up: stock %lld held %lld sold %lld\n", s->id, (long long)c.stock,
                (long long)c.held, (long long)c.sold);
        abort();
    }
    return c;
}

/* Buys once and waits for the answer. */
static inline answer_t buy1(runner_t *r, sk_sale_t *s, const char *user, const char *req)
{
    answer_t a;
    buy(r, s, user, req, &a);
    runner_wait(r);
    return a;
}

static inline sk_sale_t *new_sale_ex(const char *id, int64_t stock, int64_t starts, int64_t ends, int32_t limit,
                                     int32_t max_quantity, int64_t window_ms)
{
    sk_sale_params_t p = {.name = id,
                          .starts_at = starts,
                          .ends_at = ends,
                          .per_user_limit = limit,
                          .max_quantity = max_quantity,
                          .payment_window_ms = window_ms};
    return sk_sale_new(id, strlen(id), &p, stock, sk_now_ms());
}

static inline sk_sale_t *new_sale(const char *id, int64_t stock, int64_t starts, int64_t ends, int32_t limit)
{
    return new_sale_ex(id, stock, starts, ends, limit, 1, 0);
}

/* Creates a sale through the ledger (as the API does). Returns the status. */
static inline int create_sale(runner_t *r, sk_sale_t *s, sk_sale_t **out)
{
    sk_op_t *op = sk_op_new(SK_OP_CREATE_SALE);
    op->new_sale = s;
    answer_t a;
    submit(r, op, &a);
    if (!runner_wait(r))
        return -ETIMEDOUT;
    if (out)
        *out = a.status == 0 ? a.sale : NULL;
    return a.status;
}

/* A live sale with a payment window and quantities up to max_quantity. */
static inline sk_sale_t *window_sale(runner_t *r, const char *id, int64_t stock, int32_t limit, int32_t max_quantity,
                                     int64_t window_ms)
{
    int64_t now = sk_now_ms();
    sk_sale_t *s = NULL;
    if (create_sale(r, new_sale_ex(id, stock, now - 1000, now + HOUR_MS, limit, max_quantity, window_ms), &s) != 0)
        return NULL;
    return s;
}

static inline sk_sale_t *live_sale(runner_t *r, const char *id, int64_t stock, int32_t limit)
{
    int64_t now = sk_now_ms();
    sk_sale_t *s = NULL;
    if (create_sale(r, new_sale(id, stock, now - 1000, now + HOUR_MS, limit), &s) != 0)
        return NULL;
    return s;
}

/* Opens an engine over the embedded backend in dir; *backend (when not NULL) is the
 * backend, owned by the engine. */
static inline sk_engine_t *open_engine_batch(const char *dir, size_t max_inflight, size_t max_batch,
                                             sk_backend_t **backend)
{
    char err[512] = "";
    sk_engine_config_t cfg = {.max_inflight = max_inflight};
    sk_backend_t *b = sk_backend_embedded_new(dir, max_batch ? max_batch : 4096);
    sk_engine_t *e = sk_engine_open(&cfg, b, err, sizeof(err));
    if (!e)
        fprintf(stderr, "sk_engine_open: %s\n", err);
    if (backend)
        *backend = e ? b : NULL;
    return e;
}

static inline sk_engine_t *open_engine_backend(const char *dir, size_t max_inflight, sk_backend_t **backend)
{
    return open_engine_batch(dir, max_inflight, 4096, backend);
}

static inline sk_engine_t *open_engine(const char *dir, size_t max_inflight)
{
    return open_engine_backend(dir, max_inflight, NULL);
}

/* An engine with its ledger running and one worker loop on this thread. */
typedef struct {
    char dir[256];
    sk_engine_t *e;
    sk_backend_t *backend; /* the engine's */
    size_t max_batch; /* the ledger's most ops a batch (0: 4096), kept across reopens */
    runner_t r;
} fixture_t;

/* Opens the engine in dir (NULL: a new temp dir), runs before_start (when not NULL) on
 * the loaded backend, then starts the ledger. */
static inline bool fixture_open_with(fixture_t *f, const char *dir, size_t max_inflight,
                                     void (*before_start)(sk_backend_t *b, void *arg), void *arg)
{
    if (dir) {
        if (dir != f->dir)
            snprintf(f->dir, sizeof(f->dir), "%s", dir);
    } else if (!sk_test_temp_dir(f->dir, sizeof(f->dir), "engine"))
        return false;
    f->e = open_engine_batch(f->dir, max_inflight, f->max_batch, &f->backend);
    if (!f->e)
        return false;
    if (before_start)
        before_start(f->backend, arg);
    if (sk_engine_start(f->e) < 0)
        return false;
    runner_init(&f->r, f->e);
    return f->r.w != NULL;
}

static inline bool fixture_open(fixture_t *f, const char *dir, size_t max_inflight)
{
    return fixture_open_with(f, dir, max_inflight, NULL, NULL);
}

/* Stops the ledger and frees the engine, keeping the data dir. */
static inline void fixture_close(fixture_t *f)
{
    if (!f->e)
        return;
    sk_engine_stop(f->e);
    runner_free(&f->r);
    sk_engine_free(f->e);
    f->e = NULL;
}

static inline void fixture_destroy(fixture_t *f)
{
    fixture_close(f);
    rm_rf(f->dir);
}

static inline void user_name(char *buf, size_t cap, const char *prefix, int i)
{
    snprintf(buf, cap, "%s%d", prefix, i);
}

#endif
