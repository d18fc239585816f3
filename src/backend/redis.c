/* The Redis backend: the ledger thread of a cluster node.
 *
 * The thread runs its own event loop with one asynchronous hiredis connection. Each
 * loop turn ends in the before-sleep hook, which takes what the workers queued, groups
 * the purchases by sale (a script may touch one sale's keys only, one hash slot) and
 * sends one EVALSHA of buy.lua per sale. Up to INFLIGHT_MAX such batches are on the
 * connection at once; Redis runs them in the order sent, so arrival order holds, and
 * while one commits the next forms. Beyond the window, purchases wait in the engine's
 * queue, which answers 429 past its own bound: nothing here grows without limit.
 *
 * A reply is the durable decision (AOF appendfsync always: Redis fsyncs before it
 * answers). Only then are the answers posted to the workers. When Redis is down, slow
 * (no reply within TIMEOUT_MS) or answers an error, every purchase whose fate is not
 * known is answered 503 with nothing confirmed here; if Redis did commit it, the buyer
 * finds the order with GET .../orders/{user}, which this backend answers from Redis.
 * After a failure the connection is dropped and re-made with a growing back-off.
 *
 * Besides purchases the thread keeps the node's sale cache current: it polls the sales
 * index (new sales of other nodes appear within SYNC_MS), refreshes the cluster-wide
 * sold count of live sales, and once a sale is sold out (or Redis's clock passed its
 * end) it loads the sale's users from its order stream into a user set and hands it to
 * the engine, after which the node's workers answer every non-holder of that sale
 * themselves (a holder's purchase still goes to the script, which checks its replay).
 *
 * The order lifecycle (payment windows, quantities, pay/cancel/refund) is not in the
 * script yet: this backend declares no lifecycle (sk_engine_lifecycle), so the API
 * refuses such sales, and the order ops complete with -ENOTSUP. */
#include "backend/redis.h"

#include <errno.h>
#include <hiredis/async.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/redis_loop.h"
#include "util/buf.h"
#include "util/texts.h"

#define INFLIGHT_MAX 4 /* batches on the connection at once */
#define TIMEOUT_MS 3000 /* a connect or batch without an answer this long: 503 and reconnect */
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000
#define TICK_MS 100 /* deadlines are checked this often */
#define SYNC_TICKS 2 /* the sales index and sold counts are polled every 2 ticks */
#define HOLDERS_CHUNK 10000 /* stream entries per XRANGE when loading holders */
#define REFRESH_MARGIN_MS 5000 /* sold counts are refreshed this long around the window */
#define MISS_SLOTS 256 /* remembered unknown sale ids (a flood of one bad id costs one look-up) */
#define MISS_MS 250

_Static_assert(SK_BUY_CONFIRMED == 0 && SK_BUY_DUPLICATE == 1 && SK_BUY_SOLD_OUT == 2 && SK_BUY_LIMIT_REACHED == 3 &&
                   SK_BUY_NOT_STARTED == 4 && SK_BUY_ENDED == 5,
               "buy.lua's result codes are sk_buy_result_t's");

typedef enum { CONN_DOWN = 0, CONN_CONNECTING, CONN_READY } conn_state_t;

typedef struct rbackend rbackend_t;
typedef struct batch batch_t;

/* The purchases of one sale within a batch: one script call. */
typedef struct {
    batch_t *batch;
    sk_sale_t *sale;
    sk_op_t **ops;
    size_t n;
} group_t;

struct batch {
    batch_t *next; /* the in-flight FIFO */
    rbackend_t *r;
    sk_op_t **ops; /* grouped by sale, arrival order within a sale */
    size_t n;
    group_t *groups;
    size_t n_groups, waiting;
    bool failed;
    uint64_t t0_ns;
    int64_t sent_ms; /* sk_now_ms() when sent: bounds the store's clock offset */
};

/* Per sale, the backend's own state (indexed by sale->index). */
typedef struct {
    sk_userset_t *loading; /* users being read from the stream */
    uint64_t loaded; /* orders read into it */
    bool closed; /* a script ran at or after ends_at by Redis's clock: no order can come */
    int64_t closed_sold; /* the sale's sold count that script saw: its final count */
    bool load_busy; /* an XRANGE is out */
    bool refresh_busy; /* an HGET sold is out */
    uint64_t load_retry_ms; /* do not retry a failed load before this */
} rsale_t;

/* A single non-purchase op (orders of a user, list, create). */
typedef struct {
    rbackend_t *r;
    sk_op_t *op;
    bool eval_retry;
    size_t want; /* ORDERS: the user's order count, from the first read */
} single_t;

struct rbackend {
    sk_backend_t base;
    sk_engine_t *e;
    sk_redis_addr_t addr;
    char url[512];
    size_t max_batch;
    char buy_sha[41], create_sha[41];
    const sk_text_t *buy_lua, *create_lua;
    redisContext *sync; /* start-up only (load, add_sale) */

    sk_loop_t *loop;
    sk_async_t wake;
    pthread_t thread;
    bool started;

    sk_redis_ev_t ev;
    conn_state_t state;
    int setup_waiting; /* setup replies still expected on a new connection */
    uint64_t connect_deadline_ms;
    uint64_t quiet_ms; /* last tick that saw no command waiting for its reply */
    uint64_t backoff_ms;
    sk_timer_t tick, reconnect, drop;
    unsigned ticks;
    uint64_t last_fail_log_ms;
    bool fail_logged;

    batch_t *head, *tail; /* in flight, oldest first */
    size_t n_inflight;
    size_t n_singles; /* single ops out */
    bool sync_busy;
    long long index_seen; /* the index's size at the last full read */
    bool index_orphans; /* that read met ids without a sale (re-read until they resolve) */

    sk_op_t **take;
    sk_op_t **requeue; /* purchases whose sale a look-up just found: decided next */
    size_t n_requeue, cap_requeue;
    struct {
        char id[SK_ID_MAX + 1];
        uint64_t until_ms;
    } miss[MISS_SLOTS];
    int32_t *group_of; /* [sale index] -> group in the batch being formed, -1 */
    rsale_t *sales; /* [SK_MAX_SALES] */
    bool done;
};

/* ---- helpers shared with the drain -------------------------------------------------------- */

/* ---- the sale cache -------------------------------------------------------------------- */

static sk_sale_t *sale_from_redis(const sk_redis_sale_t *rs)
{
    char *name = sk_xstrndup(rs->name, rs->name_len);
    sk_sale_params_t p = {.name = name,
                          .starts_at = rs->starts_at,
                          .ends_at = rs->ends_at,
                          .per_user_limit = (int32_t)rs->per_user_limit,
                          .max_quantity = 1};
    sk_sale_t *s = sk_sale_new(rs->id, rs->id_len, &p, rs->stock, rs->created_at);
    free(name);
    return s;
}

static int64_t sale_stock(const sk_sale_t *s)
{
    sk_sale_counts_t c;
    sk_sale_counts(s, &c);
    return c.stock;
}

/* Publishes the cluster-wide sold count (it only grows: no units return without the
 * lifecycle). */
static void publish_sold(sk_sale_t *s, int64_t sold)
{
    sk_sale_counts_t c;
    sk_sale_counts(s, &c);
    if (sold > c.sold) {
        c.sold = sold;
        sk_engine_publish_counts(s, &c);
    }
}

static bool users_known(const sk_sale_t *s)
{
    return atomic_load_explicit(&((sk_sale_t *)s)->users, memory_order_acquire) != NULL;
}

/* Registers a sale read from Redis unless it is known already (ledger thread or load). */
static sk_sale_t *register_from_reply(rbackend_t *r, const redisReply *reply)
{
    sk_redis_sale_t rs;
    int rc = sk_redis_sale_parse(reply, &rs);
    if (rc == -ENOENT)
        return NULL;
    if (rc < 0) {
        sk_warn("redis: a sale record in %s is malformed; it is ignored", r->url);
        return NULL;
    }
    sk_sale_t *s = sk_engine_find_sale(r->e, rs.id, rs.id_len);
    if (!s) {
        if (sk_engine_sale_count(r->e) >= SK_MAX_SALES) {
            sk_warn("redis: more than %d sales; sale '%.*s' is not served by this node", SK_MAX_SALES, (int)rs.id_len,
                    rs.id);
            return NULL;
        }
        s = sale_from_redis(&rs);
        sk_engine_register_sale(r->e, s);
    }
    publish_sold(s, rs.sold);
    return s;
}

/* ---- start-up (main thread, synchronous connection) --------------------------------------- */

static int load_script(rbackend_t *r, const sk_text_t *t, char *sha, char *err, size_t err_size)
{
    redisReply *rep = redisCommand(r->sync, "SCRIPT LOAD %b", t->text, t->len);
    if (!rep || rep->type != REDIS_REPLY_STRING || rep->len != 40) {
        snprintf(err, err_size, "redis at %s: SCRIPT LOAD %s failed: %s", r->url, t->name,
                 rep ? (rep->str ? rep->str : "unexpected reply") : r->sync->errstr);
        freeReplyObject(rep);
        return -EIO;
    }
    memcpy(sha, rep->str, 40);
    sha[40] = '\0';
    freeReplyObject(rep);
    return 0;
}

static int redis_load(sk_backend_t *b, sk_engine_t *e, char *err, size_t err_size)
{
    rbackend_t *r = (rbackend_t *)b;
    r->e = e;
    r->sync = sk_redis_connect(&r->addr, TIMEOUT_MS, err, err_size);
    if (!r->sync)
        return -EIO;
    if (load_script(r, r->buy_lua, r->buy_sha, err, err_size) < 0 ||
        load_script(r, r->create_lua, r->create_sha, err, err_size) < 0)
        return -EIO;
    /* A reply is durable only with the AOF fsynced on every write. CONFIG may be
     * renamed away in a hardened Redis; then there is nothing to check. */
    redisReply *rep = redisCommand(r->sync, "CONFIG GET append*");
    if (rep && rep->type == REDIS_REPLY_ARRAY) {
        const char *aof = NULL, *fsync = NULL;
        for (size_t i = 0; i + 1 < rep->elements; i += 2) {
            if (rep->element[i]->type != REDIS_REPLY_STRING || rep->element[i + 1]->type != REDIS_REPLY_STRING)
                continue;
            if (strcmp(rep->element[i]->str, "appendonly") == 0)
                aof = rep->element[i + 1]->str;
            else if (strcmp(rep->element[i]->str, "appendfsync") == 0)
                fsync = rep->element[i + 1]->str;
        }
        if (aof && fsync && (strcmp(aof, "yes") != 0 || strcmp(fsync, "always") != 0))
            sk_warn("redis at %s runs with %s: a confirmed order may be lost if Redis crashes (use "
                    "appendonly yes, appendfsync always: deploy/redis.conf)",
                    r->url, strcmp(aof, "yes") != 0 ? "no AOF" : "appendfsync other than always");
    }
    freeReplyObject(rep);

    rep = redisCommand(r->sync, "ZRANGE %s 0 -1", SK_REDIS_SALES_KEY);
    if (!rep || rep->type != REDIS_REPLY_ARRAY) {
        snprintf(err, err_size, "redis at %s: cannot read the sales index: %s", r->url,
                 rep && rep->str ? rep->str : r->sync->errstr);
        freeReplyObject(rep);
        return -EIO;
    }
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *id = rep->element[i];
        char key[SK_REDIS_KEY_MAX + 1];
        if (id->type != REDIS_REPLY_STRING || !sk_valid_sale_id(id->str, id->len))
            continue;
        sk_redis_key(key, id->str, id->len, "sale");
        redisAppendCommand(r->sync, "HGETALL %s", key);
    }
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *id = rep->element[i];
        if (id->type != REDIS_REPLY_STRING || !sk_valid_sale_id(id->str, id->len))
            continue;
        redisReply *h = NULL;
        if (redisGetReply(r->sync, (void **)&h) != REDIS_OK) {
            snprintf(err, err_size, "redis at %s: cannot read the sales: %s", r->url, r->sync->errstr);
            freeReplyObject(rep);
            return -EIO;
        }
        register_from_reply(r, h);
        freeReplyObject(h);
    }
    freeReplyObject(rep);
    return 0;
}

static int redis_add_sale(sk_backend_t *b, sk_engine_t *e, sk_sale_t *s)
{
    rbackend_t *r = (rbackend_t *)b;
    (void)e;
    if (!r->sync)
        return -EIO;
    if (sk_engine_find_sale(r->e, s->id, s->id_len))
        return -EEXIST;
    if (sk_engine_sale_count(r->e) >= SK_MAX_SALES)
        return -ENOSPC;
    char key[SK_REDIS_KEY_MAX + 1];
    sk_redis_key(key, s->id, s->id_len, "sale");
    redisReply *z =
        redisCommand(r->sync, "ZADD %s NX %lld %b", SK_REDIS_SALES_KEY, (long long)s->created_at, s->id, s->id_len);
    freeReplyObject(z);
    const sk_sale_params_t *p = sk_sale_params(s);
    redisReply *rep = redisCommand(r->sync, "EVALSHA %s 1 %s %b %s %lld %lld %lld %lld %lld", r->create_sha, key, s->id,
                                   s->id_len, p->name, (long long)sale_stock(s), (long long)p->starts_at,
                                   (long long)p->ends_at, (long long)p->per_user_limit, (long long)s->created_at);
    int rc = -EIO;
    if (rep && rep->type == REDIS_REPLY_INTEGER)
        rc = rep->integer == 1 ? 0 : -EEXIST;
    freeReplyObject(rep);
    if (rc == 0)
        sk_engine_register_sale(r->e, s);
    return rc;
}

/* ---- connection ------------------------------------------------------------------------- */

static void pump(rbackend_t *r);
static void connect_now(rbackend_t *r);
static void maybe_load_holders(rbackend_t *r, sk_sale_t *s);

static void log_failure(rbackend_t *r, const char *what, const char *detail)
{
    /* One line per outage, then one every 10 s while it lasts. */
    uint64_t now = sk_loop_now(r->loop);
    if (!r->fail_logged || now - r->last_fail_log_ms >= 10000) {
        sk_warn("redis at %s: %s%s%s; purchases are answered 503 until it is back", r->url, what, detail ? ": " : "",
                detail ? detail : "");
        r->last_fail_log_ms = now;
        r->fail_logged = true;
    }
}

static void on_reconnect(sk_loop_t *loop, sk_timer_t *t)
{
    (void)loop;
    connect_now(SK_CONTAINER_OF(t, rbackend_t, reconnect));
}

static void schedule_reconnect(rbackend_t *r)
{
    if (r->done || sk_timer_armed(&r->reconnect))
        return;
    r->backoff_ms = r->backoff_ms ? SK_MIN(r->backoff_ms * 2, (uint64_t)BACKOFF_MAX_MS) : BACKOFF_MIN_MS;
    sk_timer_start(r->loop, &r->reconnect, r->backoff_ms, on_reconnect);
}

static void on_drop(sk_loop_t *loop, sk_timer_t *t)
{
    (void)loop;
    rbackend_t *r = SK_CONTAINER_OF(t, rbackend_t, drop);
    /* Outside any hiredis callback: the free is immediate and runs every pending
     * callback with a NULL reply, which answers what was in flight 503. */
    if (r->ev.ac)
        redisAsyncFree(r->ev.ac);
    schedule_reconnect(r);
}

/* Gives up the connection: purchases already sent get 503 (their callbacks see NULL),
 * new ones too until a new connection is ready. Safe inside hiredis callbacks. */
static void fail_connection(rbackend_t *r, const char *what, const char *detail)
{
    if (r->state != CONN_DOWN)
        log_failure(r, what, detail);
    r->state = CONN_DOWN;
    if (r->ev.ac)
        sk_timer_start(r->loop, &r->drop, 0, on_drop);
    else
        schedule_reconnect(r);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    rbackend_t *r = ac->data;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this returns. */
        log_failure(r, "cannot connect", ac->errstr);
        r->state = CONN_DOWN;
        schedule_reconnect(r);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    rbackend_t *r = ac->data;
    if (r->state != CONN_DOWN)
        log_failure(r, "connection lost", status == REDIS_OK ? NULL : ac->errstr);
    r->state = CONN_DOWN;
    schedule_reconnect(r);
}

static void on_setup(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    rbackend_t *r = priv;
    redisReply *rep = reply;
    if (!rep || r->state != CONN_CONNECTING)
        return;
    if (rep->type == REDIS_REPLY_ERROR) {
        fail_connection(r, "set-up failed", rep->str);
        return;
    }
    if (--r->setup_waiting == 0) {
        r->state = CONN_READY;
        r->backoff_ms = 0;
        if (r->fail_logged)
            sk_info("redis at %s: connected again", r->url);
        r->fail_logged = false;
    }
}

static void connect_now(rbackend_t *r)
{
    if (r->done || r->ev.ac)
        return;
    redisAsyncContext *ac = redisAsyncConnect(r->addr.host, r->addr.port);
    if (!ac || ac->err) {
        log_failure(r, "cannot connect", ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        r->state = CONN_DOWN;
        schedule_reconnect(r);
        return;
    }
    ac->data = r;
    sk_redis_attach(&r->ev, r->loop, ac);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    r->state = CONN_CONNECTING;
    r->connect_deadline_ms = sk_loop_now(r->loop) + TIMEOUT_MS;
    /* The scripts are loaded on every new connection, before any EVALSHA: a restarted
     * Redis has an empty script cache. Commands on one connection run in order, so the
     * first batch cannot overtake them. */
    r->setup_waiting = 2;
    if (r->addr.password[0]) {
        r->setup_waiting++;
        if (r->addr.user[0])
            redisAsyncCommand(ac, on_setup, r, "AUTH %s %s", r->addr.user, r->addr.password);
        else
            redisAsyncCommand(ac, on_setup, r, "AUTH %s", r->addr.password);
    }
    if (r->addr.db) {
        r->setup_waiting++;
        redisAsyncCommand(ac, on_setup, r, "SELECT %d", r->addr.db);
    }
    redisAsyncCommand(ac, on_setup, r, "SCRIPT LOAD %b", r->buy_lua->text, r->buy_lua->len);
    redisAsyncCommand(ac, on_setup, r, "SCRIPT LOAD %b", r->create_lua->text, r->create_lua->len);
}

/* ---- purchases -------------------------------------------------------------------------- */

static void on_group(redisAsyncContext *ac, void *reply, void *priv);

static void send_group(rbackend_t *r, group_t *g, bool eval)
{
    size_t argc = 6 + 2 * g->n;
    const char **argv = sk_xmalloc(argc * sizeof(*argv));
    size_t *lens = sk_xmalloc(argc * sizeof(*lens));
    char keys[3][SK_REDIS_KEY_MAX + 1];
    sk_sale_t *s = g->sale;
    argv[0] = eval ? "EVAL" : "EVALSHA";
    argv[1] = eval ? r->buy_lua->text : r->buy_sha;
    argv[2] = "3";
    lens[0] = strlen(argv[0]);
    lens[1] = eval ? r->buy_lua->len : 40;
    lens[2] = 1;
    static const char *const suffix[3] = {"sale", "holders", "orders"};
    for (int k = 0; k < 3; k++) {
        lens[3 + k] = sk_redis_key(keys[k], s->id, s->id_len, suffix[k]);
        argv[3 + k] = keys[k];
    }
    for (size_t i = 0; i < g->n; i++) {
        argv[6 + 2 * i] = g->ops[i]->user_id;
        lens[6 + 2 * i] = g->ops[i]->user_len;
        argv[7 + 2 * i] = g->ops[i]->request_id;
        lens[7 + 2 * i] = g->ops[i]->request_len;
    }
    /* hiredis copies the arguments into its output buffer before this returns. */
    int rc = redisAsyncCommandArgv(r->ev.ac, on_group, g, (int)argc, argv, lens);
    free(argv);
    free(lens);
    if (rc != REDIS_OK) {
        /* The context is disconnecting: answer this group now. */
        on_group(NULL, NULL, g);
    }
}

static void answer_unavailable(sk_op_t *op)
{
    op->result = SK_BUY_UNAVAILABLE;
    op->remaining = sk_sale_remaining(op->sale);
}

static void batch_finish(rbackend_t *r, batch_t *b)
{
    /* Batches finish in the order they were sent (one connection, replies in order). */
    size_t n_buys = b->n;
    sk_engine_record_batch(r->e, n_buys, sk_mono_ns() - b->t0_ns, !b->failed);
    for (size_t i = 0; i < b->n; i++) {
        sk_engine_record_decided(r->e, b->ops[i]->result);
        sk_engine_complete(r->e, b->ops[i]);
    }
    if (r->head == b) {
        r->head = b->next;
        if (!r->head)
            r->tail = NULL;
    } else {
        batch_t *p = r->head;
        while (p && p->next != b)
            p = p->next;
        if (p) {
            p->next = b->next;
            if (r->tail == b)
                r->tail = p;
        }
    }
    r->n_inflight--;
    free(b->ops);
    free(b->groups);
    free(b);
}

#define ROW 5 /* buy.lua's reply per purchase: code, seq, created_at, remaining, held */

static bool group_apply(rbackend_t *r, group_t *g, const redisReply *rep)
{
    sk_sale_t *s = g->sale;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 + ROW * g->n)
        return false;
    for (size_t i = 0; i < rep->elements; i++)
        if (rep->element[i]->type != REDIS_REPLY_INTEGER)
            return false;
    int64_t sold = rep->element[0]->integer, now = rep->element[1]->integer;
    if (sold < 0 || sold > sale_stock(s))
        return false;
    sk_engine_note_store_clock(r->e, now, g->batch->sent_ms);
    for (size_t i = 0; i < g->n; i++) {
        sk_op_t *op = g->ops[i];
        redisReply **v = &rep->element[2 + ROW * i];
        long long code = v[0]->integer;
        if (code < 0 || code > SK_BUY_ENDED || v[4]->integer < 0 || v[4]->integer > SK_LIMIT_MAX)
            return false;
        op->result = (sk_buy_result_t)code;
        op->order.seq = (uint64_t)(v[1]->integer > 0 ? v[1]->integer : 0);
        op->order.created_at = v[2]->integer;
        op->remaining = v[3]->integer;
        op->order.quantity = 1;
        op->order.state = SK_ORDER_CONFIRMED;
        memcpy(op->order.user_id, op->user_id, op->user_len + 1u);
        if (code == SK_BUY_LIMIT_REACHED || code == SK_BUY_SOLD_OUT) {
            /* A holder's first order (seq 0: not a holder), whose request id is not in the reply. */
            op->held = op->order.seq ? (uint32_t)v[4]->integer : 0;
            op->order.request_id[0] = '\0';
        } else {
            memcpy(op->order.request_id, op->request_id, op->request_len + 1u);
        }
    }
    /* Durable now: publish the cluster-wide count Redis had after this script. */
    publish_sold(s, sold);
    /* Redis's clock has passed the end: the sale's orders are all in its stream and no
     * script will add one, so its users can be loaded and non-holders answered here. */
    rsale_t *rs = &r->sales[s->index];
    if (now >= sk_sale_params(s)->ends_at && !rs->closed) {
        rs->closed = true;
        rs->closed_sold = sold;
    }
    return true;
}

static void on_group(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    group_t *g = priv;
    batch_t *b = g->batch;
    rbackend_t *r = b->r;
    redisReply *rep = reply;
    if (rep && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0 && r->ev.ac &&
        r->state == CONN_READY) {
        /* Someone flushed the script cache: send the script itself this once, and load
         * it again for the batches that follow. */
        send_group(r, g, true);
        redisAsyncCommand(r->ev.ac, NULL, NULL, "SCRIPT LOAD %b", r->buy_lua->text, r->buy_lua->len);
        return;
    }
    bool ok = rep && group_apply(r, g, rep);
    if (!ok) {
        if (rep) {
            sk_warn("redis: purchase script for sale '%s' failed: %s", g->sale->id,
                    rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
        }
        for (size_t i = 0; i < g->n; i++)
            answer_unavailable(g->ops[i]);
        b->failed = true;
    }
    sk_sale_t *sale = g->sale; /* g goes with its batch */
    if (--b->waiting == 0)
        batch_finish(r, b);
    if (ok)
        maybe_load_holders(r, sale);
}

/* Forms one batch from the ops taken: purchases grouped by sale, other ops sent alone. */
static void single_send(rbackend_t *r, sk_op_t *op);
static void lookup(rbackend_t *r, sk_op_t *op);

static void form_batch(rbackend_t *r, sk_op_t **ops, size_t n)
{
    size_t n_buys = 0, n_groups = 0;
    size_t *count = NULL;
    sk_sale_t **gsale = NULL;
    for (size_t i = 0; i < n; i++) {
        sk_op_t *op = ops[i];
        if (op->kind == SK_OP_FIND_SALE || (op->kind == SK_OP_BUY && !op->sale)) {
            lookup(r, op);
            continue;
        }
        if (op->kind != SK_OP_BUY) {
            single_send(r, op);
            continue;
        }
        if (!op->user_hash)
            op->user_hash = sk_user_hash(op->user_id, op->user_len);
        if (sk_engine_gate(op->sale, op->now_ms, op->user_hash, op->quantity, &op->result, &op->remaining)) {
            /* The users arrived while this purchase was queued: answered here. */
            sk_engine_record_decided(r->e, op->result);
            sk_engine_complete(r->e, op);
            continue;
        }
        if (r->state != CONN_READY) {
            answer_unavailable(op);
            sk_engine_complete(r->e, op);
            continue;
        }
        int32_t *gi = &r->group_of[op->sale->index];
        if (*gi < 0) {
            *gi = (int32_t)n_groups++;
            count = sk_xrealloc(count, n_groups * sizeof(*count));
            gsale = sk_xrealloc(gsale, n_groups * sizeof(*gsale));
            count[*gi] = 0;
            gsale[*gi] = op->sale;
        }
        count[*gi]++;
        ops[n_buys++] = op; /* compact the purchases to the front, in order */
    }
    if (n_buys == 0) {
        free(count);
        free(gsale);
        return;
    }
    batch_t *b = sk_xcalloc(1, sizeof(*b));
    b->r = r;
    b->n = n_buys;
    b->ops = sk_xmalloc(n_buys * sizeof(*b->ops));
    b->groups = sk_xcalloc(n_groups, sizeof(*b->groups));
    b->n_groups = n_groups;
    b->waiting = n_groups + 1; /* held until every group is sent */
    b->t0_ns = sk_mono_ns();
    b->sent_ms = sk_now_ms();
    size_t off = 0;
    for (size_t k = 0; k < n_groups; k++) {
        b->groups[k] = (group_t){.batch = b, .sale = gsale[k], .ops = b->ops + off, .n = 0};
        off += count[k];
    }
    for (size_t i = 0; i < n_buys; i++) {
        group_t *g = &b->groups[r->group_of[ops[i]->sale->index]];
        g->ops[g->n++] = ops[i];
    }
    for (size_t k = 0; k < n_groups; k++)
        r->group_of[gsale[k]->index] = -1;
    free(count);
    free(gsale);
    if (r->tail)
        r->tail->next = b;
    else
        r->head = b;
    r->tail = b;
    r->n_inflight++;
    for (size_t k = 0; k < n_groups; k++)
        send_group(r, &b->groups[k], false);
    if (--b->waiting == 0)
        batch_finish(r, b);
}

/* ---- orders of a user, the order list, new sales ---------------------------------------- */

static void single_done(single_t *x)
{
    rbackend_t *r = x->r;
    sk_engine_complete(r->e, x->op);
    r->n_singles--;
    free(x);
}

/* Parses "seq\treq\tcreated_at" (an order record of buy.lua's holders hash) into o. */
static bool parse_order(const char *p, size_t len, sk_order_t *o)
{
    const char *end = p + len;
    const char *t1 = memchr(p, '\t', len);
    const char *t2 = t1 ? memchr(t1 + 1, '\t', (size_t)(end - t1 - 1)) : NULL;
    if (!t2)
        return false;
    int64_t seq, at;
    size_t rl = (size_t)(t2 - t1 - 1);
    if (sk_parse_i64(p, (size_t)(t1 - p), 1, SK_STOCK_MAX, &seq) < 0 ||
        sk_parse_i64(t2 + 1, (size_t)(end - t2 - 1), 0, INT64_MAX, &at) < 0 || rl > SK_REQUEST_MAX)
        return false;
    o->seq = (uint64_t)seq;
    o->created_at = at;
    o->quantity = 1;
    o->state = SK_ORDER_CONFIRMED;
    memcpy(o->request_id, t1 + 1, rl);
    o->request_id[rl] = '\0';
    return true;
}

static void on_orders_rest(redisAsyncContext *ac, void *reply, void *priv);

/* Asks for the fields "<user>\t2" .. "<user>\t<want>" in one HMGET. Returns 0 or -EIO. */
static int send_orders_rest(rbackend_t *r, single_t *x)
{
    sk_op_t *op = x->op;
    size_t n = x->want - 1, argc = 2 + n;
    char key[SK_REDIS_KEY_MAX + 1];
    const char **argv = sk_xmalloc(argc * sizeof(*argv));
    size_t *lens = sk_xmalloc(argc * sizeof(*lens));
    char *fields = sk_xmalloc(n * (SK_USER_MAX + 12));
    argv[0] = "HMGET";
    lens[0] = 5;
    lens[1] = sk_redis_key(key, op->sale->id, op->sale->id_len, "holders");
    argv[1] = key;
    for (size_t i = 0; i < n; i++) {
        char *f = fields + i * (SK_USER_MAX + 12);
        memcpy(f, op->user_id, op->user_len);
        f[op->user_len] = '\t';
        argv[2 + i] = f;
        lens[2 + i] = op->user_len + 1 + sk_fmt_u64(f + op->user_len + 1, (uint64_t)i + 2);
    }
    /* hiredis copies the arguments into its output buffer before this returns. */
    int rc = redisAsyncCommandArgv(r->ev.ac, on_orders_rest, x, (int)argc, argv, lens);
    free(fields);
    free(lens);
    free(argv);
    return rc == REDIS_OK ? 0 : -EIO;
}

static void on_orders_rest(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    single_t *x = priv;
    redisReply *rep = reply;
    sk_op_t *op = x->op;
    /* The user's orders 2..count, asked for with the count the first read saw. */
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != x->want - 1) {
        op->status = -EIO;
        single_done(x);
        return;
    }
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *v = rep->element[i];
        sk_order_t *o = &op->orders[op->n_orders];
        if (v->type != REDIS_REPLY_STRING || !parse_order(v->str, v->len, o)) {
            op->status = -EIO;
            single_done(x);
            return;
        }
        memcpy(o->user_id, op->user_id, op->user_len + 1u);
        op->n_orders++;
    }
    op->status = 0;
    single_done(x);
}

static void on_orders(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    single_t *x = priv;
    rbackend_t *r = x->r;
    redisReply *rep = reply;
    sk_op_t *op = x->op;
    op->status = -EIO;
    if (rep && rep->type == REDIS_REPLY_NIL) {
        op->status = 0;
    } else if (rep && rep->type == REDIS_REPLY_STRING) {
        /* "count\tseq\treq\tcreated_at": how many orders, then the first one. */
        const char *t = memchr(rep->str, '\t', rep->len);
        int64_t count;
        if (t && sk_parse_i64(rep->str, (size_t)(t - rep->str), 1, SK_LIMIT_MAX, &count) == 0) {
            op->orders = sk_xcalloc((size_t)count, sizeof(sk_order_t));
            if (parse_order(t + 1, rep->len - (size_t)(t + 1 - rep->str), &op->orders[0])) {
                memcpy(op->orders[0].user_id, op->user_id, op->user_len + 1u);
                op->n_orders = 1;
                op->status = 0;
                if (count > 1 && r->state == CONN_READY) {
                    x->want = (size_t)count;
                    if (send_orders_rest(r, x) == 0)
                        return;
                    op->status = -EIO;
                } else if (count > 1) {
                    op->status = -EIO;
                }
            }
        }
    }
    single_done(x);
}

static void on_list(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    single_t *x = priv;
    redisReply *rep = reply;
    sk_op_t *op = x->op;
    op->status = -EIO;
    if (rep && rep->type == REDIS_REPLY_ARRAY) {
        /* The first entry may begin before list_after + 1 (an entry holds a batch). The
         * COUNT asked for covers the page and one order beyond it, so a full page with
         * an order left over is the only case with more to come. */
        op->orders = op->list_limit ? sk_xcalloc(op->list_limit, sizeof(sk_order_t)) : NULL;
        op->n_orders = 0;
        op->status = 0;
        op->list_more = false;
        for (size_t i = 0; i < rep->elements && op->status == 0; i++) {
            sk_redis_entry_t e;
            sk_redis_order_t o;
            int rc = sk_redis_entry_parse(rep->element[i], &e);
            while (rc == 0 && (rc = sk_redis_entry_next(&e, &o)) == 1) {
                rc = 0;
                if (o.seq <= op->list_after)
                    continue;
                if (op->n_orders == op->list_limit) {
                    op->list_more = true;
                    break;
                }
                sk_order_t *d = &op->orders[op->n_orders++];
                d->seq = o.seq;
                d->created_at = o.created_at;
                d->quantity = 1;
                d->state = SK_ORDER_CONFIRMED;
                memcpy(d->user_id, o.user, o.user_len);
                d->user_id[o.user_len] = '\0';
                memcpy(d->request_id, o.request, o.request_len);
                d->request_id[o.request_len] = '\0';
            }
            if (rc < 0)
                op->status = -EIO;
            if (op->list_more)
                break;
        }
    }
    single_done(x);
}

static void on_create(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    single_t *x = priv;
    rbackend_t *r = x->r;
    redisReply *rep = reply;
    sk_op_t *op = x->op;
    if (rep && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0 && !x->eval_retry && r->ev.ac &&
        r->state == CONN_READY) {
        x->eval_retry = true;
        sk_sale_t *s = op->new_sale;
        char key[SK_REDIS_KEY_MAX + 1];
        sk_redis_key(key, s->id, s->id_len, "sale");
        const sk_sale_params_t *p = sk_sale_params(s);
        redisAsyncCommand(r->ev.ac, on_create, x, "EVAL %b 1 %s %b %s %lld %lld %lld %lld %lld", r->create_lua->text,
                          r->create_lua->len, key, s->id, s->id_len, p->name, (long long)sale_stock(s),
                          (long long)p->starts_at, (long long)p->ends_at, (long long)p->per_user_limit,
                          (long long)s->created_at);
        return;
    }
    if (rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 1) {
        /* The index poll may have registered it in the meantime (it reads the same
         * Redis); then the registered one is this sale. */
        sk_sale_t *s = sk_engine_find_sale(r->e, op->new_sale->id, op->new_sale->id_len);
        if (!s) {
            s = op->new_sale;
            op->new_sale = NULL;
            sk_engine_register_sale(r->e, s);
        }
        op->sale = s;
        op->status = 0;
    } else if (rep && rep->type == REDIS_REPLY_INTEGER) {
        op->status = -EEXIST;
    } else {
        op->status = -EIO;
    }
    single_done(x);
}

/* ---- sales not cached yet: looked up on a miss ----------------------------------------- */

static uint32_t miss_slot(const char *id, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)id[i]) * 16777619u;
    return h % MISS_SLOTS;
}

static void lookup_resolved(rbackend_t *r, sk_op_t *op, sk_sale_t *s)
{
    if (s) {
        op->sale = s;
        op->status = 0;
        if (op->kind == SK_OP_BUY) {
            if (r->n_requeue == r->cap_requeue) {
                r->cap_requeue = r->cap_requeue ? r->cap_requeue * 2 : 64;
                r->requeue = sk_xrealloc(r->requeue, r->cap_requeue * sizeof(*r->requeue));
            }
            r->requeue[r->n_requeue++] = op;
            return;
        }
    } else {
        op->status = -ENOENT;
    }
    sk_engine_complete(r->e, op);
}

static void on_lookup(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    single_t *x = priv;
    rbackend_t *r = x->r;
    sk_op_t *op = x->op;
    redisReply *rep = reply;
    r->n_singles--;
    free(x);
    const sk_sale_t *stub = op->new_sale;
    if (rep && rep->type == REDIS_REPLY_ARRAY) {
        sk_sale_t *s = register_from_reply(r, rep);
        if (!s) {
            uint32_t k = miss_slot(stub->id, stub->id_len);
            memcpy(r->miss[k].id, stub->id, stub->id_len + 1);
            r->miss[k].until_ms = sk_loop_now(r->loop) + MISS_MS;
        } else {
            maybe_load_holders(r, s);
        }
        lookup_resolved(r, op, s);
        return;
    }
    op->status = -EIO;
    op->result = SK_BUY_UNAVAILABLE;
    sk_engine_complete(r->e, op);
}

static void lookup(rbackend_t *r, sk_op_t *op)
{
    const sk_sale_t *stub = op->new_sale;
    if (!stub) {
        op->status = -ENOENT;
        sk_engine_complete(r->e, op);
        return;
    }
    sk_sale_t *s = sk_engine_find_sale(r->e, stub->id, stub->id_len);
    uint32_t k = miss_slot(stub->id, stub->id_len);
    if (s || (r->miss[k].until_ms > sk_loop_now(r->loop) && strcmp(r->miss[k].id, stub->id) == 0)) {
        lookup_resolved(r, op, s);
        return;
    }
    if (r->state != CONN_READY) {
        op->status = -EIO;
        op->result = SK_BUY_UNAVAILABLE;
        sk_engine_complete(r->e, op);
        return;
    }
    single_t *x = sk_xcalloc(1, sizeof(*x));
    x->r = r;
    x->op = op;
    char key[SK_REDIS_KEY_MAX + 1];
    sk_redis_key(key, stub->id, stub->id_len, "sale");
    if (redisAsyncCommand(r->ev.ac, on_lookup, x, "HGETALL %s", key) == REDIS_OK) {
        r->n_singles++;
    } else {
        free(x);
        op->status = -EIO;
        op->result = SK_BUY_UNAVAILABLE;
        sk_engine_complete(r->e, op);
    }
}

static void single_send(rbackend_t *r, sk_op_t *op)
{
    if (r->state != CONN_READY) {
        op->status = -EIO;
        sk_engine_complete(r->e, op);
        return;
    }
    single_t *x = sk_xcalloc(1, sizeof(*x));
    x->r = r;
    x->op = op;
    r->n_singles++;
    char key[SK_REDIS_KEY_MAX + 1];
    redisAsyncContext *ac = r->ev.ac;
    int rc = REDIS_ERR;
    switch (op->kind) {
    case SK_OP_ORDERS:
        sk_redis_key(key, op->sale->id, op->sale->id_len, "holders");
        rc = redisAsyncCommand(ac, on_orders, x, "HGET %s %b", key, op->user_id, (size_t)op->user_len);
        break;
    case SK_OP_LIST: {
        sk_redis_key(key, op->sale->id, op->sale->id_len, "orders");
        /* An entry holds at most SK_REDIS_ENTRY_MAX orders, so the one holding
         * list_after + 1 starts no earlier than this; every entry has at least one
         * order, so list_limit + 1 entries are enough to fill the page and see beyond. */
        uint64_t from = op->list_after + 1 > SK_REDIS_ENTRY_MAX ? op->list_after + 2 - SK_REDIS_ENTRY_MAX : 1;
        uint64_t count = op->list_limit + 1 + (op->list_after + 1 - from);
        /* (hiredis's format knows no %zu) */
        rc = redisAsyncCommand(ac, on_list, x, "XRANGE %s %llu-0 + COUNT %llu", key, (unsigned long long)from,
                               (unsigned long long)count);
        break;
    }
    case SK_OP_CREATE_SALE: {
        sk_sale_t *s = op->new_sale;
        if (sk_engine_find_sale(r->e, s->id, s->id_len)) {
            op->status = -EEXIST;
            single_done(x);
            return;
        }
        if (sk_engine_sale_count(r->e) >= SK_MAX_SALES) {
            op->status = -ENOSPC;
            single_done(x);
            return;
        }
        sk_redis_key(key, s->id, s->id_len, "sale");
        /* Index first: a sale may then be indexed but missing (a failed create, which
         * the poll skips), never present but undiscoverable. */
        redisAsyncCommand(ac, NULL, NULL, "ZADD %s NX %lld %b", SK_REDIS_SALES_KEY, (long long)s->created_at, s->id,
                          s->id_len);
        const sk_sale_params_t *p = sk_sale_params(s);
        rc = redisAsyncCommand(ac, on_create, x, "EVALSHA %s 1 %s %b %s %lld %lld %lld %lld %lld", r->create_sha, key,
                               s->id, s->id_len, p->name, (long long)sale_stock(s), (long long)p->starts_at,
                               (long long)p->ends_at, (long long)p->per_user_limit, (long long)s->created_at);
        break;
    }
    case SK_OP_GET_ORDER:
    case SK_OP_PAY:
    case SK_OP_CANCEL:
    case SK_OP_REFUND:
        /* The order lifecycle is not in buy.lua yet (this backend has no lifecycle). */
        op->status = -ENOTSUP;
        single_done(x);
        return;
    case SK_OP_QUEUE:
        /* Waiting rooms live in Redis only once redis_queue.c lands: 501 until then. */
    case SK_OP_CONTROL:
    case SK_OP_LOG:
        /* The operator's controls come to the script after the lifecycle: 501 until then. */
        op->status = -ENOTSUP;
        single_done(x);
        return;
    case SK_OP_BUY:
    case SK_OP_FIND_SALE:
        break;
    }
    if (rc != REDIS_OK) {
        op->status = -EIO;
        single_done(x);
    }
}

/* ---- users of finished sales ---------------------------------------------------------------
 * Once a sale is sold out, or a script ran after its end by Redis's clock, its order
 * stream holds every order it will ever have: the node reads the stream's users into a
 * user set and hands it to the engine, after which the node's workers answer the
 * sale's non-holders themselves. */

static void holders_request(rbackend_t *r, sk_sale_t *s);

/* How many orders the finished sale has (-1: not finished as far as this node knows). */
static int64_t final_count(const rbackend_t *r, const sk_sale_t *s)
{
    if (sk_sale_is_sold_out(s))
        return sale_stock(s);
    const rsale_t *rs = &r->sales[s->index];
    return rs->closed ? rs->closed_sold : -1;
}

static void holders_failed(rbackend_t *r, rsale_t *rs)
{
    sk_userset_free(rs->loading);
    rs->loading = NULL;
    rs->loaded = 0;
    rs->load_retry_ms = sk_loop_now(r->loop) + 5000;
}

static void holders_adopt(sk_sale_t *s, rsale_t *rs)
{
    sk_userset_t *u = rs->loading;
    rs->loading = NULL;
    sk_info("sale '%s' %s: %zu holders of %llu orders cached, non-holders are answered locally", s->id,
            sk_sale_is_sold_out(s) ? "sold out" : "ended", sk_userset_count(u), (unsigned long long)rs->loaded);
    sk_engine_publish_users(s, u); /* the engine's from here on */
}

static void on_holders(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    sk_sale_t *s = priv;
    rbackend_t *r = (rbackend_t *)ac->data;
    rsale_t *rs = &r->sales[s->index];
    redisReply *rep = reply;
    rs->load_busy = false;
    int64_t want = final_count(r, s);
    bool ok = rep && rep->type == REDIS_REPLY_ARRAY && want >= 0;
    for (size_t i = 0; ok && i < rep->elements; i++) {
        sk_redis_entry_t e;
        sk_redis_order_t o;
        int rc = sk_redis_entry_parse(rep->element[i], &e);
        while (rc == 0 && (rc = sk_redis_entry_next(&e, &o)) == 1) {
            rc = 0;
            if (o.seq != rs->loaded + 1 || o.seq > (uint64_t)want) {
                rc = -EINVAL;
                break;
            }
            sk_userset_insert(rs->loading, sk_user_hash(o.user, o.user_len));
            rs->loaded++;
        }
        if (rc < 0) {
            sk_error("redis: the order stream of sale '%s' is not contiguous at order %llu; its users are "
                     "not cached (every purchase keeps going to Redis)",
                     s->id, (unsigned long long)rs->loaded + 1);
            ok = false;
        }
    }
    if (!ok) {
        holders_failed(r, rs);
        return;
    }
    if ((int64_t)rs->loaded >= want) {
        holders_adopt(s, rs);
        return;
    }
    if (rep->elements == 0) {
        sk_error("redis: the order stream of sale '%s' holds %llu orders, it sold %lld; its users are "
                 "not cached",
                 s->id, (unsigned long long)rs->loaded, (long long)want);
        holders_failed(r, rs);
        return;
    }
    holders_request(r, s);
}

static void holders_request(rbackend_t *r, sk_sale_t *s)
{
    rsale_t *rs = &r->sales[s->index];
    char key[SK_REDIS_KEY_MAX + 1];
    sk_redis_key(key, s->id, s->id_len, "orders");
    if (redisAsyncCommand(r->ev.ac, on_holders, s, "XRANGE %s %llu-0 + COUNT %d", key,
                          (unsigned long long)rs->loaded + 1, HOLDERS_CHUNK) == REDIS_OK)
        rs->load_busy = true;
}

static void maybe_load_holders(rbackend_t *r, sk_sale_t *s)
{
    rsale_t *rs = &r->sales[s->index];
    int64_t want = final_count(r, s);
    if (r->state != CONN_READY || want < 0 || users_known(s) || rs->load_busy ||
        sk_loop_now(r->loop) < rs->load_retry_ms)
        return;
    if (!rs->loading) {
        rs->loading = sk_userset_new();
        rs->loaded = 0;
    }
    if ((int64_t)rs->loaded >= want) {
        holders_adopt(s, rs); /* ended without a sale: nothing to read */
        return;
    }
    holders_request(r, s);
}

/* ---- the periodic poll: new sales, sold counts, deadlines -------------------------------- */

static void on_sale_fetched(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)priv;
    rbackend_t *r = ac->data;
    if (reply && r->state == CONN_READY) {
        sk_sale_t *s = register_from_reply(r, reply);
        if (s)
            maybe_load_holders(r, s);
        else
            r->index_orphans = true;
    }
}

static void on_index(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)priv;
    rbackend_t *r = ac->data;
    redisReply *rep = reply;
    r->sync_busy = false;
    if (!rep || rep->type != REDIS_REPLY_ARRAY || r->state != CONN_READY)
        return;
    r->index_seen = (long long)rep->elements;
    r->index_orphans = false;
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *id = rep->element[i];
        if (id->type != REDIS_REPLY_STRING || !sk_valid_sale_id(id->str, id->len) ||
            sk_engine_find_sale(r->e, id->str, id->len))
            continue;
        char key[SK_REDIS_KEY_MAX + 1];
        sk_redis_key(key, id->str, id->len, "sale");
        redisAsyncCommand(r->ev.ac, on_sale_fetched, NULL, "HGETALL %s", key);
    }
}

static void on_index_count(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)priv;
    rbackend_t *r = ac->data;
    redisReply *rep = reply;
    if (!rep || rep->type != REDIS_REPLY_INTEGER || r->state != CONN_READY) {
        r->sync_busy = false;
        return;
    }
    /* Sales are only ever added to the index (deleting a finished sale's keys removes
     * one): a size unlike the last full read's means something to look at. Ids indexed
     * without a sale (a create that failed half-way, or one still in flight) keep the
     * full read going until they resolve. */
    if (rep->integer == r->index_seen && !r->index_orphans) {
        r->sync_busy = false;
        return;
    }
    redisAsyncCommand(r->ev.ac, on_index, NULL, "ZRANGE %s 0 -1", SK_REDIS_SALES_KEY);
}

static void on_sold(redisAsyncContext *ac, void *reply, void *priv)
{
    sk_sale_t *s = priv;
    rbackend_t *r = ac->data;
    redisReply *rep = reply;
    r->sales[s->index].refresh_busy = false;
    int64_t sold;
    if (!rep || !sk_redis_reply_i64(rep, 0, sale_stock(s), &sold) || r->state != CONN_READY)
        return;
    publish_sold(s, sold);
    maybe_load_holders(r, s);
}

static void poll_store(rbackend_t *r)
{
    redisAsyncContext *ac = r->ev.ac;
    if (!r->sync_busy && redisAsyncCommand(ac, on_index_count, NULL, "ZCARD %s", SK_REDIS_SALES_KEY) == REDIS_OK)
        r->sync_busy = true;
    int64_t now = sk_now_ms();
    size_t n = sk_engine_sale_count(r->e);
    for (size_t i = 0; i < n; i++) {
        sk_sale_t *s = sk_engine_sale_at(r->e, i);
        rsale_t *rs = &r->sales[s->index];
        if (users_known(s))
            continue;
        if (final_count(r, s) >= 0) {
            maybe_load_holders(r, s);
            continue;
        }
        const sk_sale_params_t *p = sk_sale_params(s);
        if (rs->refresh_busy || now < p->starts_at - REFRESH_MARGIN_MS || now > p->ends_at + REFRESH_MARGIN_MS)
            continue;
        char key[SK_REDIS_KEY_MAX + 1];
        sk_redis_key(key, s->id, s->id_len, "sale");
        if (redisAsyncCommand(ac, on_sold, s, "HGET %s sold", key) == REDIS_OK)
            rs->refresh_busy = true;
    }
}

static void on_tick(sk_loop_t *loop, sk_timer_t *t)
{
    rbackend_t *r = SK_CONTAINER_OF(t, rbackend_t, tick);
    uint64_t now = sk_loop_now(loop);
    /* Redis answers a connection's commands in order, so "a command has waited
     * TIMEOUT_MS and nothing at all was read meanwhile" is the whole deadline check:
     * it covers purchase batches, order look-ups and the poll alike. */
    bool waiting = r->ev.ac && r->ev.ac->replies.head != NULL;
    if (!waiting)
        r->quiet_ms = now;
    if (r->state == CONN_CONNECTING && now >= r->connect_deadline_ms)
        fail_connection(r, "no answer to the connection set-up", NULL);
    else if (r->state == CONN_READY && waiting && now - SK_MAX(r->quiet_ms, r->ev.last_read_ms) >= TIMEOUT_MS)
        fail_connection(r, "no answer within the timeout", NULL);
    else if (r->state == CONN_READY && ++r->ticks % SYNC_TICKS == 0)
        poll_store(r);
    sk_timer_start(loop, t, TICK_MS, on_tick);
}

/* ---- the loop ---------------------------------------------------------------------------- */

static void pump(rbackend_t *r)
{
    sk_engine_t *e = r->e;
    /* While connecting, queued ops wait (a connect takes a moment); when the
     * connection is down they are answered 503 at once. */
    bool stopping = sk_engine_stopping(e);
    while (r->state != CONN_CONNECTING || stopping) {
        if (r->state == CONN_READY && r->n_inflight >= INFLIGHT_MAX)
            break;
        size_t n;
        if (r->n_requeue) {
            /* Found by a look-up: these were taken earlier, so they go first. */
            n = SK_MIN(r->n_requeue, r->max_batch);
            memcpy(r->take, r->requeue, n * sizeof(*r->take));
            memmove(r->requeue, r->requeue + n, (r->n_requeue - n) * sizeof(*r->requeue));
            r->n_requeue -= n;
        } else {
            n = sk_engine_take(e, r->take, r->max_batch);
        }
        if (n == 0)
            break;
        form_batch(r, r->take, n);
    }
}

static void before_sleep(sk_loop_t *loop, void *arg)
{
    rbackend_t *r = arg;
    pump(r);
    sk_engine_flush(r->e);
    if (sk_engine_stopping(r->e) && r->n_inflight == 0 && r->n_singles == 0 && r->n_requeue == 0) {
        size_t n = sk_engine_take(r->e, r->take, r->max_batch);
        if (n) {
            form_batch(r, r->take, n);
            sk_engine_flush(r->e);
            return;
        }
        r->done = true;
        sk_loop_stop(loop);
    }
}

static void on_wake(sk_loop_t *loop, sk_async_t *a)
{
    /* The work happens in before_sleep, once per loop turn. */
    (void)loop;
    (void)a;
}

static void *ledger_main(void *arg)
{
    rbackend_t *r = arg;
    connect_now(r);
    sk_timer_start(r->loop, &r->tick, TICK_MS, on_tick);
    int rc = sk_loop_run(r->loop);
    if (rc < 0)
        sk_error("redis ledger: event loop failed: %s", strerror(-rc));
    r->done = true;
    r->state = CONN_DOWN;
    if (r->ev.ac)
        redisAsyncFree(r->ev.ac); /* nothing is in flight; poll callbacks see NULL */
    sk_engine_flush(r->e);
    sk_timer_stop(r->loop, &r->tick);
    sk_timer_stop(r->loop, &r->reconnect);
    sk_timer_stop(r->loop, &r->drop);
    return NULL;
}

static int redis_start(sk_backend_t *b, sk_engine_t *e)
{
    rbackend_t *r = (rbackend_t *)b;
    r->e = e;
    if (r->sync) {
        redisFree(r->sync);
        r->sync = NULL;
    }
    r->loop = sk_loop_new();
    if (!r->loop)
        return -errno;
    int rc = sk_async_init(r->loop, &r->wake, on_wake);
    if (rc < 0)
        return rc;
    sk_loop_add_before_sleep(r->loop, SK_LOOP_PHASE_OUTPUT, before_sleep, r);
    rc = pthread_create(&r->thread, NULL, ledger_main, r);
    if (rc != 0)
        return -rc;
    r->started = true;
    return 0;
}

static void redis_wake(sk_backend_t *b)
{
    rbackend_t *r = (rbackend_t *)b;
    if (r->started)
        sk_async_send(&r->wake);
}

static void redis_stop(sk_backend_t *b)
{
    rbackend_t *r = (rbackend_t *)b;
    if (!r->started)
        return;
    sk_async_send(&r->wake);
    pthread_join(r->thread, NULL);
    r->started = false;
}

static void redis_free(sk_backend_t *b)
{
    rbackend_t *r = (rbackend_t *)b;
    redis_stop(b);
    if (r->sync)
        redisFree(r->sync);
    if (r->loop) {
        sk_async_close(r->loop, &r->wake);
        sk_loop_remove_before_sleep(r->loop, before_sleep, r);
        sk_loop_free(r->loop);
    }
    if (r->sales) {
        for (size_t i = 0; i < SK_MAX_SALES; i++)
            sk_userset_free(r->sales[i].loading);
        free(r->sales);
    }
    free(r->group_of);
    free(r->requeue);
    free(r->take);
    free(r);
}

sk_backend_t *sk_backend_redis_new(const char *url, size_t max_batch, char *err, size_t err_size)
{
    sk_redis_addr_t addr;
    if (sk_redis_parse_url(url, &addr, err, err_size) < 0)
        return NULL;
    const sk_text_t *buy = sk_text_find("lua/buy.lua"), *create = sk_text_find("lua/create_sale.lua");
    if (!buy || !create) {
        snprintf(err, err_size, "the Lua scripts of the Redis store are not built in");
        return NULL;
    }
    rbackend_t *r = sk_xcalloc(1, sizeof(*r));
    r->base = (sk_backend_t){.name = "redis",
                             .lookups = true,
                             .load = redis_load,
                             .add_sale = redis_add_sale,
                             .start = redis_start,
                             .wake = redis_wake,
                             .stop = redis_stop,
                             .free = redis_free};
    r->addr = addr;
    sk_redis_redact(url, r->url, sizeof(r->url));
    r->max_batch = max_batch ? max_batch : 4096;
    r->buy_lua = buy;
    r->create_lua = create;
    r->take = sk_xmalloc(r->max_batch * sizeof(*r->take));
    r->group_of = sk_xmalloc(SK_MAX_SALES * sizeof(*r->group_of));
    for (size_t i = 0; i < SK_MAX_SALES; i++)
        r->group_of[i] = -1;
    r->sales = sk_xcalloc(SK_MAX_SALES, sizeof(*r->sales));
    r->index_seen = -1;
    return &r->base;
}
