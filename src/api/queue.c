/* The waiting room: POST /api/v1/sales/{id}/queue (join, or ask for one's place again)
 * and GET /api/v1/sales/{id}/queue/events?user_id= (the place, live, over SSE).
 *
 * The queue itself belongs to the sale's writer (SK_OP_QUEUE, engine/queue.h): a join
 * or a question is an op, answered once the writer's change is durable. What moves
 * while people wait is the head of the queue, which the writer publishes with the sale
 * (sk_sale_t.q_head): a worker tells its subscribers how many are ahead of them from it
 * once a second without asking anyone, and asks the writer only when a subscriber's turn
 * came (for the admission), when a random queue's places were drawn, or when an
 * admission expired unused (the subscriber goes to the back).
 *
 * The admission itself is a token (crypto/token.h) minted here from the writer's
 * admitted_at: nothing per admission is kept on this node, and any node with the same
 * --secret-file accepts it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/body.h"
#include "api/internal.h"
#include "crypto/pow.h"
#include "crypto/token.h"

#define QUEUE_UPDATE_MS 1000 /* live places are sent once a second (when they changed) */
#define QUEUE_PING_MS 15000

/* The states of a place; one object each, so that a state is compared by address. */
static const char st_waiting[] = "waiting", st_pre_queue[] = "pre_queue";

/* The place's state given its sale's (read once per tick for all its subscribers). */
static const char *place_state_in(sk_sale_state_t ss, const sk_sale_params_t *p, const sk_queue_place_t *pl,
                                  int64_t now)
{
    switch (ss) {
    case SK_SALE_ENDED:
        return "ended";
    case SK_SALE_SOLD_OUT:
        return "sold_out";
    case SK_SALE_PAUSED:
        return "paused";
    default:
        break;
    }
    if (pl->admitted_at)
        return now < pl->expires_at ? "admitted" : "expired";
    return now < p->starts_at ? st_pre_queue : st_waiting;
}

static const char *place_state(const sk_sale_t *s, const sk_queue_place_t *pl, int64_t now)
{
    return place_state_in(sk_sale_state(s, now), sk_sale_params(s), pl, now);
}

void sk_api_queue_place_json(sk_api_worker_t *w, sk_buf_t *b, const sk_sale_t *s, const char *user, size_t ul,
                             const sk_queue_place_t *pl, uint64_t head, int64_t now)
{
    const sk_sale_params_t *p = sk_sale_params(s);
    const char *state = place_state(s, pl, now);
    uint64_t ahead = pl->ahead;
    if (pl->position && !pl->admitted_at)
        ahead = pl->position - 1 > head ? pl->position - 1 - head : 0;
    uint64_t len = atomic_load_explicit(&((sk_sale_t *)s)->q_len, memory_order_relaxed);
    sk_buf_puts(b, "{\"sale_id\":");
    sk_buf_put_json_str(b, s->id, s->id_len);
    sk_buf_puts(b, ",\"user_id\":");
    sk_buf_put_json_str(b, user, ul);
    sk_buf_puts(b, ",\"position\":");
    if (pl->position)
        sk_buf_put_i64(b, (int64_t)pl->position);
    else
        sk_buf_puts(b, "null");
    sk_buf_puts(b, ",\"ahead\":");
    sk_buf_put_i64(b, pl->admitted_at ? 0 : (int64_t)ahead);
    sk_buf_puts(b, ",\"eta_ms\":");
    bool waiting = state == st_waiting || state == st_pre_queue;
    if (strcmp(state, "admitted") == 0) {
        sk_buf_puts(b, "0");
    } else if (waiting && pl->position) {
        int64_t rate = p->admit_per_second > 0 ? p->admit_per_second : 1;
        sk_buf_put_i64(b, SK_MAX(p->starts_at - now, 0) + (int64_t)(ahead * 1000 / (uint64_t)rate));
    } else {
        sk_buf_puts(b, "null");
    }
    sk_buf_puts(b, ",\"state\":\"");
    sk_buf_puts(b, state);
    sk_buf_puts(b, "\",\"admission\":");
    if (pl->admitted_at && now < pl->expires_at) {
        char tok[SK_TOKEN_ADMISSION_MAX + 1];
        size_t tl = sk_token_admission_mint(&w->api->secret, s->id, s->id_len, user, ul, pl->expires_at, tok);
        sk_buf_putc(b, '"');
        sk_buf_append(b, tok, tl);
        sk_buf_puts(b, "\",\"admission_expires_at\":");
        sk_buf_put_i64(b, pl->expires_at);
    } else {
        sk_buf_puts(b, "null,\"admission_expires_at\":null");
    }
    sk_buf_puts(b, ",\"queue_length\":");
    sk_buf_put_i64(b, (int64_t)(len > head ? len - head : 0));
    sk_buf_puts(b, ",\"admitted\":");
    sk_buf_put_i64(b, (int64_t)head);
    sk_buf_puts(b, ",\"admit_per_second\":");
    sk_buf_put_i64(b, p->admit_per_second);
    sk_buf_puts(b, ",\"starts_at\":");
    sk_buf_put_i64(b, p->starts_at);
    sk_buf_puts(b, ",\"server_time\":");
    sk_buf_put_i64(b, now);
    sk_buf_putc(b, '}');
}

/* The checks every queue request passes before the writer: a queued sale, open, not
 * ended. Answers and returns false otherwise. */
static bool queue_open(sk_http_exchange_t *x, const sk_sale_t *s, int64_t now)
{
    const sk_sale_params_t *p = sk_sale_params(s);
    if (p->queue == SK_QUEUE_OFF) {
        sk_http_respond_error(x, 409, "no_queue", "this sale has no waiting room: buy directly");
        return false;
    }
    if (sk_sale_state(s, now) == SK_SALE_ENDED) {
        sk_http_respond_error(x, 410, "ended", "the sale has ended");
        return false;
    }
    int64_t opens = p->queue_opens_at ? p->queue_opens_at : s->created_at;
    if (now < opens) {
        char body[200];
        int n = snprintf(body, sizeof(body),
                         "{\"error\":\"queue_not_open\",\"message\":\"the waiting room opens at %lld\","
                         "\"opens_at\":%lld,\"opens_in_ms\":%lld}\n",
                         (long long)opens, (long long)opens, (long long)(opens - now));
        sk_http_respond(x, 425, "application/json", body, (size_t)n);
        return false;
    }
    return true;
}

/* A proof-of-work challenge for (sale, user) in an answer: 403 pow_required or bad_pow. */
static void pow_refused(sk_api_worker_t *w, sk_http_deferred_t *d, sk_http_exchange_t *x, const sk_sale_t *s,
                        const char *user, size_t ul, const char *code, const char *msg)
{
    char ch[SK_POW_CHALLENGE_MAX + 1];
    sk_pow_challenge(&w->api->secret, s->id, s->id_len, user, ul, sk_api_store_now(w), ch);
    sk_buf_t *b = &w->scratch;
    b->len = 0;
    sk_buf_printf(b, "{\"error\":\"%s\",\"message\":", code);
    sk_buf_put_json_str(b, msg, strlen(msg));
    sk_buf_puts(b, ",\"challenge\":\"");
    sk_buf_puts(b, ch);
    sk_buf_printf(b, "\",\"bits\":%u}\n", (unsigned)sk_sale_params(s)->pow_bits);
    if (d)
        sk_http_deferred_respond(d, 403, "application/json", NULL, b->data, b->len);
    else
        sk_http_respond(x, 403, "application/json", b->data, b->len);
}

/* A queue op that failed: 404-like, 409, 429, 501 or 503 on a deferred answer. */
static void queue_failed(sk_http_deferred_t *d, int status)
{
    static const char busy[] = "{\"error\":\"rate_limited\",\"message\":\"too many requests in flight, retry "
                               "shortly\"}\n";
    static const char down[] = "{\"error\":\"unavailable\",\"message\":\"the waiting room is unavailable; retry "
                               "shortly\"}\n";
    static const char nosup[] = "{\"error\":\"not_supported\",\"message\":\"this store keeps no waiting rooms "
                                "yet\"}\n";
    static const char noq[] = "{\"error\":\"no_queue\",\"message\":\"this sale has no waiting room: buy "
                              "directly\"}\n";
    if (status == -EAGAIN)
        sk_http_deferred_respond(d, 429, "application/json", "Retry-After: 1\r\n", busy, sizeof(busy) - 1);
    else if (status == -ENOTSUP)
        sk_http_deferred_respond(d, 501, "application/json", NULL, nosup, sizeof(nosup) - 1);
    else if (status == -EINVAL)
        sk_http_deferred_respond(d, 409, "application/json", NULL, noq, sizeof(noq) - 1);
    else
        sk_http_deferred_respond(d, 503, "application/json", "Retry-After: 1\r\n", down, sizeof(down) - 1);
}

static void join_done(sk_op_t *op)
{
    sk_api_worker_t *w = op->owner;
    if (op->status == -ENOENT) {
        /* Asked without a proof of work and not in the queue: the work comes first. */
        pow_refused(w, op->ctx, NULL, op->sale, op->user_id, op->user_len, "pow_required",
                    "this waiting room asks a proof of work to join: solve the challenge and send it as "
                    "pow {challenge, nonce}");
    } else if (op->status < 0) {
        queue_failed(op->ctx, op->status);
    } else {
        sk_buf_t *b = &w->scratch;
        b->len = 0;
        /* Published before this completion, so no older than the op's own place. */
        uint64_t head = atomic_load_explicit(&op->sale->q_head, memory_order_acquire);
        sk_api_queue_place_json(w, b, op->sale, op->user_id, op->user_len, &op->place, head, sk_api_store_now(w));
        sk_buf_putc(b, '\n');
        sk_http_deferred_respond(op->ctx, 202, "application/json", NULL, b->data, b->len);
    }
    sk_op_free(op);
}

void sk_api_queue_join(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    sk_api_worker_t *w = arg;
    sk_sale_t *s = sk_api_find_sale_or_404(w, x, &params[0]);
    if (!s)
        return;
    int64_t now = sk_api_store_now(w);
    if (!queue_open(x, s, now))
        return;
    char user[SK_USER_MAX + 1], ch[65], nonce[65];
    size_t ul, cl, nl;
    bool has_pow;
    sk_api_field_error_t fe;
    if (sk_api_parse_join(x->body, x->body_len, sk_api_is_form(x->req, x->body, x->body_len), user, &ul, ch, &cl, nonce,
                          &nl, &has_pow, &fe) < 0) {
        sk_api_field_refused(x, &fe);
        return;
    }
    if (!sk_api_act_for(w, x, user, ul))
        return;
    const sk_sale_params_t *p = sk_sale_params(s);
    bool join = true;
    if (p->pow_bits > 0) {
        if (has_pow) {
            int rc = sk_pow_verify(&w->api->secret, s->id, s->id_len, user, ul, ch, cl, nonce, nl, p->pow_bits, now);
            if (rc < 0) {
                sk_api_count_token(w, SK_API_TOK_POW, rc);
                pow_refused(w, NULL, x, s, user, ul, "bad_pow",
                            rc == SK_POW_STALE ? "the challenge is stale: solve this new one"
                                               : "the proof of work does not hold: solve this challenge");
                return;
            }
        } else {
            join = false; /* a question; a newcomer hears pow_required */
        }
    }
    sk_op_t *op = sk_op_new(SK_OP_QUEUE);
    op->sale = s;
    op->now_ms = now;
    memcpy(op->user_id, user, ul + 1);
    op->user_len = (uint8_t)ul;
    op->join = join;
    op->owner = w;
    op->ctx = sk_http_defer(x);
    op->done = join_done;
    sk_engine_submit(w->ew, op);
}

/* ---- live places over SSE ------------------------------------------------------------------
 * A subscriber is kept in its sale's array on this worker (removal O(1): the last one
 * moves in). While a question of it is with the writer it is `busy`: a stream that ends
 * then is only marked `closed`, and the op's completion frees it. */

typedef struct qsub {
    sk_api_worker_t *w;
    sk_http_conn_t *conn; /* NULL once closed */
    uint32_t sale;
    size_t pos; /* in its sale's array; SIZE_MAX before its first place */
    char user[SK_USER_MAX + 1];
    uint8_t ul;
    sk_queue_place_t place;
    uint64_t last_ahead;
    const char *last_state;
    int64_t last_sent;
    bool busy, closed;
    /* A waiting place's event up to its "ahead" value (the SSE head, sale and user ids,
     * the position): made once per place, so that a tick formats two numbers per
     * subscriber. Empty until made, emptied when the place changes. */
    sk_buf_t head;
} qsub_t;

static void qsub_free(qsub_t *q)
{
    sk_buf_free(&q->head);
    free(q);
}

typedef struct qsub_sale {
    qsub_t **subs;
    size_t n, cap;
} qsub_sale_t;

static void qsub_add(sk_api_worker_t *w, qsub_t *q)
{
    if (!w->qsubs)
        w->qsubs = sk_xcalloc(SK_MAX_SALES, sizeof(*w->qsubs));
    qsub_sale_t *qs = &w->qsubs[q->sale];
    if (qs->n == qs->cap) {
        qs->cap = qs->cap ? qs->cap * 2 : 16;
        qs->subs = sk_xrealloc(qs->subs, qs->cap * sizeof(*qs->subs));
    }
    q->pos = qs->n;
    qs->subs[qs->n++] = q;
    atomic_fetch_add_explicit(&w->qsubs_total, 1, memory_order_relaxed);
}

static void qsub_remove(qsub_t *q)
{
    if (q->pos == SIZE_MAX)
        return;
    sk_api_worker_t *w = q->w;
    qsub_sale_t *qs = &w->qsubs[q->sale];
    size_t last = --qs->n;
    if (q->pos != last) {
        qs->subs[q->pos] = qs->subs[last];
        qs->subs[q->pos]->pos = q->pos;
    }
    q->pos = SIZE_MAX;
    atomic_fetch_sub_explicit(&w->qsubs_total, 1, memory_order_relaxed);
}

static void qsub_on_close(sk_http_conn_t *c, void *arg)
{
    (void)c;
    qsub_t *q = arg;
    q->conn = NULL;
    q->closed = true;
    qsub_remove(q);
    if (!q->busy)
        qsub_free(q);
}

/* Writes the subscriber's place as an event (when its stream is open). */
static void qsub_send(qsub_t *q, const sk_sale_t *s, int64_t now)
{
    if (!q->conn)
        return;
    sk_api_worker_t *w = q->w;
    uint64_t head = atomic_load_explicit(&((sk_sale_t *)s)->q_head, memory_order_acquire);
    sk_buf_t *b = &w->scratch;
    b->len = 0;
    sk_buf_puts(b, "event: queue\ndata: ");
    sk_api_queue_place_json(w, b, s, q->user, q->ul, &q->place, head, now);
    sk_buf_puts(b, "\n\n");
    q->last_ahead = q->place.position && q->place.position - 1 > head ? q->place.position - 1 - head : 0;
    q->last_state = place_state(s, &q->place, now);
    q->last_sent = now;
    sk_http_stream_write(q->conn, b->data, b->len); /* may close it: q stays valid (busy or freed later) */
}

static void qsub_error(qsub_t *q, const char *code, const char *msg)
{
    if (!q->conn)
        return;
    sk_buf_t *b = &q->w->scratch;
    b->len = 0;
    sk_buf_printf(b, "event: error\ndata: {\"error\":\"%s\",\"message\":", code);
    sk_buf_put_json_str(b, msg, strlen(msg));
    sk_buf_puts(b, "}\n\n");
    sk_http_stream_write(q->conn, b->data, b->len);
}

static void qsub_done(sk_op_t *op)
{
    qsub_t *q = op->ctx;
    /* Still busy while it writes: a write that ends the stream only marks it closed. */
    if (!q->closed && q->pos == SIZE_MAX) {
        static const char retry[] = "retry: 2000\n\n";
        sk_http_stream_write(q->conn, retry, sizeof(retry) - 1);
    }
    if (!q->closed) {
        if (op->status == 0) {
            q->place = op->place;
            q->head.len = 0;
            if (q->pos == SIZE_MAX)
                qsub_add(q->w, q);
            qsub_send(q, op->sale, sk_api_store_now(q->w));
        } else if (op->status == -ENOENT) {
            qsub_error(q, "not_in_queue", "this user has not joined the queue: POST .../queue first");
        } else if (q->pos == SIZE_MAX) {
            qsub_error(q, "unavailable", "the waiting room is unavailable; reconnect shortly");
        }
    }
    q->busy = false;
    if (q->closed)
        qsub_free(q);
    sk_op_free(op);
}

/* Asks the writer for the subscriber's place (join: again at the back after an expired
 * admission). */
static void qsub_ask(qsub_t *q, sk_sale_t *s, bool join)
{
    sk_op_t *op = sk_op_new(SK_OP_QUEUE);
    op->sale = s;
    op->now_ms = sk_api_store_now(q->w);
    memcpy(op->user_id, q->user, q->ul + 1u);
    op->user_len = q->ul;
    op->join = join;
    op->ctx = q;
    op->owner = q->w;
    op->done = qsub_done;
    q->busy = true;
    sk_engine_submit(q->w->ew, op);
}

void sk_api_queue_events(sk_http_exchange_t *x, const sk_str_t *params, void *arg)
{
    sk_api_worker_t *w = arg;
    sk_sale_t *s = sk_api_find_sale_or_404(w, x, &params[0]);
    if (!s)
        return;
    if (!queue_open(x, s, sk_api_store_now(w)))
        return;
    const char *v;
    size_t vl;
    char user[SK_USER_MAX + 1];
    int ul = -1;
    if (sk_api_query_param(x->req, "user_id", &v, &vl))
        ul = sk_api_form_decode(v, vl, user, sizeof(user));
    if (ul <= 0 || !sk_valid_user_id(user, (size_t)ul)) {
        sk_api_bad_field(x, "user_id", ul == 0 || ul == -1 ? "required" : "bad_format",
                         "user_id is required in the query: ?user_id=<1-64 printable ASCII characters>");
        return;
    }
    if (!sk_api_act_for(w, x, user, (size_t)ul))
        return;
    qsub_t *q = sk_xcalloc(1, sizeof(*q));
    q->w = w;
    q->sale = s->index;
    q->pos = SIZE_MAX;
    memcpy(q->user, user, (size_t)ul + 1);
    q->ul = (uint8_t)ul;
    q->conn = sk_http_stream_start(x, "text/event-stream", "X-Accel-Buffering: no\r\n", qsub_on_close, q);
    if (!q->conn) {
        free(q); /* answered without a stream: HEAD, or over the stream limits */
        return;
    }
    qsub_ask(q, s, false);
}

/* What follows "ahead" in a waiting place's event and is the same for every waiting
 * subscriber of a sale in one tick (but eta_ms): made once per sale, state and tick. */
typedef struct {
    const char *state; /* NULL: not made yet */
    size_t len;
    char text[256];
} qtail_t;

static void qtail_make(qtail_t *t, const sk_sale_t *s, const char *state, uint64_t head, int64_t now)
{
    const sk_sale_params_t *p = sk_sale_params(s);
    uint64_t len = atomic_load_explicit(&((sk_sale_t *)s)->q_len, memory_order_relaxed);
    char *o = t->text;
    o = SK_PUT_LIT(o, ",\"state\":\"");
    o = sk_put_str(o, state);
    o = SK_PUT_LIT(o, "\",\"admission\":null,\"admission_expires_at\":null,\"queue_length\":");
    o += sk_fmt_i64(o, (int64_t)(len > head ? len - head : 0));
    o = SK_PUT_LIT(o, ",\"admitted\":");
    o += sk_fmt_i64(o, (int64_t)head);
    o = SK_PUT_LIT(o, ",\"admit_per_second\":");
    o += sk_fmt_i64(o, p->admit_per_second);
    o = SK_PUT_LIT(o, ",\"starts_at\":");
    o += sk_fmt_i64(o, p->starts_at);
    o = SK_PUT_LIT(o, ",\"server_time\":");
    o += sk_fmt_i64(o, now);
    o = SK_PUT_LIT(o, "}\n\n");
    t->len = (size_t)(o - t->text);
    t->state = state;
}

/* qsub_send for a waiting place (state waiting or pre_queue, a position, no admission):
 * the same bytes from the subscriber's head and the sale's tail. */
static void qsub_send_waiting(qsub_t *q, const sk_sale_t *s, const char *st, uint64_t ahead, qtail_t *tails,
                              uint64_t head, int64_t now)
{
    sk_api_worker_t *w = q->w;
    const sk_sale_params_t *p = sk_sale_params(s);
    if (q->head.len == 0) {
        sk_buf_puts(&q->head, "event: queue\ndata: {\"sale_id\":");
        sk_buf_put_json_str(&q->head, s->id, s->id_len);
        sk_buf_puts(&q->head, ",\"user_id\":");
        sk_buf_put_json_str(&q->head, q->user, q->ul);
        sk_buf_puts(&q->head, ",\"position\":");
        sk_buf_put_i64(&q->head, (int64_t)q->place.position);
        sk_buf_puts(&q->head, ",\"ahead\":");
    }
    qtail_t *t = &tails[st == st_waiting];
    if (!t->state)
        qtail_make(t, s, st, head, now);
    sk_buf_t *b = &w->scratch;
    b->len = 0;
    sk_buf_append(b, q->head.data, q->head.len);
    sk_buf_put_i64(b, (int64_t)ahead);
    sk_buf_puts(b, ",\"eta_ms\":");
    int64_t rate = p->admit_per_second > 0 ? p->admit_per_second : 1;
    sk_buf_put_i64(b, SK_MAX(p->starts_at - now, 0) + (int64_t)(ahead * 1000 / (uint64_t)rate));
    sk_buf_append(b, t->text, t->len);
    q->last_ahead = ahead;
    q->last_state = st;
    q->last_sent = now;
    sk_http_stream_write(q->conn, b->data, b->len); /* may close it: q stays valid (busy or freed later) */
}

void sk_api_queue_tick(sk_api_worker_t *w, int64_t now)
{
    if (!atomic_load_explicit(&w->qsubs_total, memory_order_relaxed))
        return;
    bool update = now - (int64_t)w->queue_tick_ms >= QUEUE_UPDATE_MS;
    if (update)
        w->queue_tick_ms = (uint64_t)now;
    sk_engine_t *e = w->api->cfg.engine;
    size_t ns = sk_engine_sale_count(e);
    for (size_t si = 0; si < ns; si++) {
        qsub_sale_t *qs = &w->qsubs[si];
        if (qs->n == 0)
            continue;
        sk_sale_t *s = sk_engine_sale_at(e, si);
        if (!s)
            continue;
        uint64_t head = atomic_load_explicit(&s->q_head, memory_order_acquire);
        const sk_sale_params_t *p = sk_sale_params(s);
        bool started = now >= p->starts_at;
        sk_sale_state_t ss = sk_sale_state(s, now);
        qtail_t tails[2] = {{.state = NULL}, {.state = NULL}};
        /* Writing may close a subscriber, which removes it: walk from the end. */
        for (size_t k = qs->n; k-- > 0;) {
            if (k >= qs->n)
                continue;
            qsub_t *q = qs->subs[k];
            if (q->busy)
                continue;
            const sk_queue_place_t *pl = &q->place;
            if ((pl->position == 0 && started) || (!pl->admitted_at && pl->position && pl->position <= head)) {
                qsub_ask(q, s, false); /* drawn, or its turn came: the writer has the admission */
                continue;
            }
            if (pl->admitted_at && now >= pl->expires_at && started) {
                qsub_ask(q, s, true); /* unused: to the back */
                continue;
            }
            const char *st = place_state_in(ss, p, pl, now);
            uint64_t ahead = pl->position && pl->position - 1 > head ? pl->position - 1 - head : 0;
            /* A change of state (sold out, paused) goes out within a tick; the place
             * once a second when it moved; a comment keeps idle streams open. */
            if (st != q->last_state || (update && ahead != q->last_ahead)) {
                if ((st == st_waiting || st == st_pre_queue) && pl->position && !pl->admitted_at && q->conn)
                    qsub_send_waiting(q, s, st, ahead, tails, head, now);
                else
                    qsub_send(q, s, now);
            } else if (now - q->last_sent >= QUEUE_PING_MS && q->conn) {
                q->last_sent = now;
                sk_http_stream_write(q->conn, ": ping\n\n", 8);
            }
        }
    }
}

void sk_api_queue_events_free(sk_api_worker_t *w)
{
    if (!w->qsubs)
        return;
    for (size_t i = 0; i < SK_MAX_SALES; i++)
        free(w->qsubs[i].subs);
    free(w->qsubs);
    w->qsubs = NULL;
}
