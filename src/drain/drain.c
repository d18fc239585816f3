/* `seckill drain`: moves confirmed orders from the Redis order streams into PostgreSQL.
 *
 * One consumer group ("seckill-drain") reads every sale's stream (sales are discovered
 * from the sales index). A batch of entries is written in one PostgreSQL statement
 * (INSERT ... ON CONFLICT (order_id) DO NOTHING, one transaction) and only after its
 * COMMIT are the entries XACKed. So a crash at any point loses nothing (unacked entries
 * stay in the group's pending list and are read again) and duplicates nothing (a batch
 * written twice inserts each order once). On start, and after every reconnect to
 * Redis, the drain first re-reads its own pending entries; entries left pending by a
 * consumer that is gone are claimed after CLAIM_IDLE_MS (XAUTOCLAIM).
 *
 * When PostgreSQL is down the drain keeps its batch and retries with back-off; the
 * streams keep the orders meanwhile. The lag (entries not yet in PostgreSQL: never
 * delivered plus delivered but unacknowledged) is exported on --metrics-listen.
 *
 * Threads: the main thread drains (synchronous hiredis and libpq, every call with a
 * timeout); an optional second thread serves /metrics and /healthz from a text the
 * main thread renders once a second. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "drain/postgres.h"
#include "http/server.h"
#include "redis/redis.h"
#include "util/buf.h"
#include "util/common.h"
#include "util/sdnotify.h"

#define GROUP "seckill-drain"
#define TIMEOUT_MS 5000
#define BLOCK_MS 200
#define KEYS_PER_READ 256 /* streams per XREADGROUP */
#define ENTRY_GUESS 16 /* orders per stream entry assumed when sizing a read */
#define CLAIM_IDLE_MS 60000
#define BACKOFF_MAX_MS 5000
#define INACTIVE_AFTER_MS 60000 /* an ended sale's drained stream is no longer read */

typedef struct {
    char id[SK_ID_MAX + 1];
    char key[SK_REDIS_KEY_MAX + 1];
    int64_t stock, ends_at;
    bool group_ready; /* the consumer group exists */
    bool in_pg; /* its sales row is written */
    bool pending_phase; /* re-reading our own pending entries */
    char cursor[48]; /* pending-phase position */
    bool active; /* still read with ">" */
    int64_t lag, pending, length;
} dsale_t;

typedef struct {
    dsale_t *sale;
    bool first_of_entry; /* the entry is acknowledged once, with its first order */
    char entry_id[48];
    char order_id[SK_ORDER_ID_MAX + 1];
    char user[SK_USER_MAX + 1];
    char request[SK_REQUEST_MAX + 1];
    int64_t seq, created_at;
} dentry_t;

typedef struct {
    const char *store_url, *db_url, *consumer;
    size_t batch_max;
    sk_redis_addr_t addr;
    redisContext *redis;
    sk_pg_t *pg;
    bool migrated;
    dsale_t *sales;
    size_t n_sales, cap_sales;
    dentry_t *batch;
    size_t n_batch, cap_batch; /* cap_batch >= batch_max: a read may bring a few more */
    uint64_t redis_backoff, pg_backoff, redis_retry_at, pg_retry_at;
    uint64_t next_discover, next_stats, next_claim;
    bool ready_sent;

    /* statistics (main thread) */
    uint64_t orders, entries, batches, redis_errors, pg_errors, malformed;
    double last_batch_s;

    /* the metrics text, rendered by the main thread */
    pthread_mutex_t mu;
    char *metrics;
    size_t metrics_len;
} drain_t;

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static uint64_t now_ms(void)
{
    return sk_mono_ns() / 1000000u;
}

static void usage(FILE *f)
{
    fputs("usage: seckill drain --store redis://HOST:PORT[/DB] --db POSTGRES-URL [options]\n"
          "\n"
          "Moves confirmed orders from the Redis order streams into PostgreSQL (the system of\n"
          "record of a cluster): a consumer group reads every sale's stream, each batch is\n"
          "written in one transaction, then acknowledged. Applies the schema migrations first.\n"
          "\n"
          "options (environment variable in brackets):\n"
          "  --store URL             the cluster's Redis [SECKILL_STORE]\n"
          "  --db URL                PostgreSQL, e.g. postgresql://user@host:5432/seckill\n"
          "                          [SECKILL_DB]\n"
          "  --metrics-listen H:P    serve /metrics and /healthz there [SECKILL_METRICS_LISTEN] (off)\n"
          "  --consumer NAME         consumer name in the group [SECKILL_CONSUMER] (the host name);\n"
          "                          give every drain of a cluster its own\n"
          "  --batch N               orders per transaction [SECKILL_DRAIN_BATCH] (2000)\n"
          "  --log-level LEVEL       debug, info, warn or error [SECKILL_LOG_LEVEL] (info)\n"
          "  -h, --help              show this text\n",
          f);
}

/* ---- Redis ------------------------------------------------------------------------------ */

static void redis_drop(drain_t *d, const char *why)
{
    if (d->redis) {
        sk_warn("drain: redis: %s; reconnecting", why);
        redisFree(d->redis);
        d->redis = NULL;
    }
    d->redis_errors++;
    d->redis_backoff = d->redis_backoff ? SK_MIN(d->redis_backoff * 2, (uint64_t)BACKOFF_MAX_MS) : 100;
    d->redis_retry_at = now_ms() + d->redis_backoff;
}

static bool redis_ensure(drain_t *d)
{
    if (d->redis)
        return true;
    if (now_ms() < d->redis_retry_at)
        return false;
    char err[512];
    d->redis = sk_redis_connect(&d->addr, TIMEOUT_MS, err, sizeof(err));
    if (!d->redis) {
        if (d->redis_backoff == 0 || d->redis_backoff >= BACKOFF_MAX_MS)
            sk_warn("drain: %s", err);
        d->redis_errors++;
        d->redis_backoff = d->redis_backoff ? SK_MIN(d->redis_backoff * 2, (uint64_t)BACKOFF_MAX_MS) : 100;
        d->redis_retry_at = now_ms() + d->redis_backoff;
        return false;
    }
    if (d->redis_backoff)
        sk_info("drain: connected to redis again");
    d->redis_backoff = 0;
    /* Whatever we had read but not acknowledged is pending again: read it first. */
    for (size_t i = 0; i < d->n_sales; i++) {
        d->sales[i].pending_phase = true;
        snprintf(d->sales[i].cursor, sizeof(d->sales[i].cursor), "0-0");
        d->sales[i].group_ready = false;
    }
    d->next_discover = 0;
    return true;
}

/* Runs a command; on an I/O error drops the connection. Returns the reply or NULL. */
static redisReply *rcmd(drain_t *d, const char *fmt, ...)
{
    if (!d->redis)
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(d->redis, fmt, ap);
    va_end(ap);
    if (!r)
        redis_drop(d, d->redis->errstr[0] ? d->redis->errstr : "I/O error");
    return r;
}

static redisReply *rcmd_argv(drain_t *d, int argc, const char **argv, const size_t *lens)
{
    if (!d->redis)
        return NULL;
    redisReply *r = redisCommandArgv(d->redis, argc, argv, lens);
    if (!r)
        redis_drop(d, d->redis->errstr[0] ? d->redis->errstr : "I/O error");
    return r;
}

/* ---- PostgreSQL --------------------------------------------------------------------------- */

static void pg_drop(drain_t *d, const char *why)
{
    sk_warn("drain: %s; retrying (the orders wait in the streams)", why);
    sk_pg_close(d->pg);
    d->pg = NULL;
    d->pg_errors++;
    d->pg_backoff = d->pg_backoff ? SK_MIN(d->pg_backoff * 2, (uint64_t)BACKOFF_MAX_MS) : 200;
    d->pg_retry_at = now_ms() + d->pg_backoff;
}

static bool pg_ensure(drain_t *d)
{
    if (d->pg && sk_pg_ok(d->pg))
        return true;
    if (d->pg) {
        pg_drop(d, "postgres: connection lost");
        return false;
    }
    if (now_ms() < d->pg_retry_at)
        return false;
    char err[512];
    d->pg = sk_pg_connect(d->db_url, TIMEOUT_MS, err, sizeof(err));
    if (!d->pg) {
        if (d->pg_backoff == 0 || d->pg_backoff >= BACKOFF_MAX_MS)
            sk_warn("drain: %s", err);
        d->pg_errors++;
        d->pg_backoff = d->pg_backoff ? SK_MIN(d->pg_backoff * 2, (uint64_t)BACKOFF_MAX_MS) : 200;
        d->pg_retry_at = now_ms() + d->pg_backoff;
        return false;
    }
    if (!d->migrated) {
        int n = sk_pg_migrate(d->pg, err, sizeof(err));
        if (n < 0) {
            pg_drop(d, err);
            return false;
        }
        if (n > 0)
            sk_info("drain: applied %d schema migration%s", n, n == 1 ? "" : "s");
        d->migrated = true;
    }
    if (d->pg_backoff)
        sk_info("drain: connected to postgres again");
    d->pg_backoff = 0;
    return true;
}

/* ---- sales and their streams ---------------------------------------------------------------- */

static dsale_t *find_sale(drain_t *d, const char *id, size_t len)
{
    for (size_t i = 0; i < d->n_sales; i++)
        if (strlen(d->sales[i].id) == len && memcmp(d->sales[i].id, id, len) == 0)
            return &d->sales[i];
    return NULL;
}

static void discover(drain_t *d)
{
    redisReply *ids = rcmd(d, "ZRANGE %s 0 -1", SK_REDIS_SALES_KEY);
    if (!ids)
        return;
    if (ids->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(ids);
        return;
    }
    for (size_t i = 0; i < ids->elements && d->redis; i++) {
        const redisReply *id = ids->element[i];
        if (id->type != REDIS_REPLY_STRING || !sk_valid_sale_id(id->str, id->len))
            continue;
        dsale_t *s = find_sale(d, id->str, id->len);
        if (s && s->group_ready && s->in_pg)
            continue;
        char key[SK_REDIS_KEY_MAX + 1];
        sk_redis_key(key, id->str, id->len, "sale");
        redisReply *h = rcmd(d, "HGETALL %s", key);
        if (!h)
            break;
        sk_redis_sale_t rs;
        if (sk_redis_sale_parse(h, &rs) < 0) {
            freeReplyObject(h); /* indexed but not (yet) created, or malformed */
            continue;
        }
        if (!s) {
            if (d->n_sales == d->cap_sales) {
                d->cap_sales = d->cap_sales ? d->cap_sales * 2 : 16;
                d->sales = sk_xrealloc(d->sales, d->cap_sales * sizeof(*d->sales));
            }
            s = &d->sales[d->n_sales++];
            memset(s, 0, sizeof(*s));
            memcpy(s->id, rs.id, rs.id_len);
            s->id[rs.id_len] = '\0';
            sk_redis_key(s->key, rs.id, rs.id_len, "orders");
            s->stock = rs.stock;
            s->ends_at = rs.ends_at;
            s->active = true;
            s->pending_phase = true;
            snprintf(s->cursor, sizeof(s->cursor), "0-0");
            sk_info("drain: following the orders of sale '%s'", s->id);
        }
        if (!s->in_pg && d->pg) {
            char name[SK_NAME_MAX + 1];
            snprintf(name, sizeof(name), "%.*s", (int)rs.name_len, rs.name);
            sk_pg_sale_t ps = {s->id, name, rs.stock, rs.starts_at, rs.ends_at, rs.per_user_limit, rs.created_at};
            char err[512];
            if (sk_pg_put_sale(d->pg, &ps, err, sizeof(err)) == 0)
                s->in_pg = true;
            else if (!sk_pg_ok(d->pg))
                pg_drop(d, err);
        }
        freeReplyObject(h);
        if (!s->group_ready) {
            /* From the very first entry ("0"): the group may be created after orders. */
            redisReply *g = rcmd(d, "XGROUP CREATE %s %s 0 MKSTREAM", s->key, GROUP);
            if (!g)
                break;
            if (g->type == REDIS_REPLY_STATUS || (g->type == REDIS_REPLY_ERROR && strncmp(g->str, "BUSYGROUP", 9) == 0))
                s->group_ready = true;
            else
                sk_warn("drain: cannot create the consumer group of %s: %s", s->key, g->str ? g->str : "?");
            freeReplyObject(g);
        }
    }
    freeReplyObject(ids);
}

/* ---- reading ----------------------------------------------------------------------------------- */

static void take_entries(drain_t *d, dsale_t *s, const redisReply *entries, char *last_id, size_t last_cap)
{
    /* Everything delivered is taken: an entry read but dropped here would stay pending
     * until a restart or a claim. */
    for (size_t k = 0; k < entries->elements; k++) {
        const redisReply *e = entries->element[k];
        if (e->type == REDIS_REPLY_ARRAY && e->elements >= 1 && e->element[0]->type == REDIS_REPLY_STRING && last_id)
            snprintf(last_id, last_cap, "%s", e->element[0]->str);
        /* One entry holds one batch's orders. Check all of them first: a malformed
         * entry is left pending (never acknowledged) as a whole, and counted. */
        sk_redis_entry_t en, check;
        sk_redis_order_t o;
        int rc = sk_redis_entry_parse(e, &en);
        check = en;
        while (rc == 0 && (rc = sk_redis_entry_next(&check, &o)) == 1)
            rc = 0;
        if (rc < 0) {
            d->malformed++;
            sk_error("drain: malformed entry in %s; it stays pending", s->key);
            continue;
        }
        while (sk_redis_entry_next(&en, &o) == 1) {
            if (d->n_batch == d->cap_batch) {
                d->cap_batch *= 2;
                d->batch = sk_xrealloc(d->batch, d->cap_batch * sizeof(*d->batch));
            }
            dentry_t *x = &d->batch[d->n_batch++];
            x->sale = s;
            x->first_of_entry = o.seq == en.first_seq;
            snprintf(x->entry_id, sizeof(x->entry_id), "%s", e->element[0]->str);
            /* The id buyers were given (sk_order_id): sale, dash, seq padded to 10 digits. */
            snprintf(x->order_id, sizeof(x->order_id), "%s-%010llu", s->id, (unsigned long long)o.seq);
            memcpy(x->user, o.user, o.user_len);
            x->user[o.user_len] = '\0';
            memcpy(x->request, o.request, o.request_len);
            x->request[o.request_len] = '\0';
            x->seq = (int64_t)o.seq;
            x->created_at = o.created_at;
        }
    }
}

/* XREADGROUP reply: [[key, [entry...]], ...] or nil. */
static void take_reply(drain_t *d, const redisReply *r, bool pending_phase)
{
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *kv = r->element[i];
        if (kv->type != REDIS_REPLY_ARRAY || kv->elements != 2 || kv->element[0]->type != REDIS_REPLY_STRING ||
            kv->element[1]->type != REDIS_REPLY_ARRAY)
            continue;
        dsale_t *s = NULL;
        for (size_t j = 0; j < d->n_sales && !s; j++)
            if (strcmp(d->sales[j].key, kv->element[0]->str) == 0)
                s = &d->sales[j];
        if (!s)
            continue;
        if (pending_phase && kv->element[1]->elements == 0)
            s->pending_phase = false; /* our pending list of this stream is read through */
        take_entries(d, s, kv->element[1], pending_phase ? s->cursor : NULL, sizeof(s->cursor));
    }
}

static void read_pending(drain_t *d)
{
    for (size_t i = 0; i < d->n_sales && d->redis && d->n_batch == 0; i++) {
        dsale_t *s = &d->sales[i];
        if (!s->pending_phase || !s->group_ready)
            continue;
        redisReply *r = rcmd(d, "XREADGROUP GROUP %s %s COUNT %llu STREAMS %s %s", GROUP, d->consumer,
                             (unsigned long long)SK_MAX(d->batch_max / ENTRY_GUESS, (size_t)1), s->key, s->cursor);
        if (!r)
            return;
        if (r->type == REDIS_REPLY_ERROR) {
            /* NOGROUP: the stream was deleted or Redis lost it; discover() re-creates it. */
            s->group_ready = false;
            s->pending_phase = false;
        } else if (r->type == REDIS_REPLY_NIL) {
            s->pending_phase = false;
        } else {
            take_reply(d, r, true);
        }
        freeReplyObject(r);
    }
}

static void claim_orphans(drain_t *d)
{
    /* Entries delivered to a consumer that has gone away (another drain's name). */
    for (size_t i = 0; i < d->n_sales && d->redis && d->n_batch < d->batch_max; i++) {
        dsale_t *s = &d->sales[i];
        if (!s->group_ready || s->pending == 0)
            continue;
        redisReply *r = rcmd(d, "XAUTOCLAIM %s %s %s %d 0-0 COUNT %llu", s->key, GROUP, d->consumer, CLAIM_IDLE_MS,
                             (unsigned long long)SK_MAX((d->batch_max - d->n_batch) / ENTRY_GUESS, (size_t)1));
        if (!r)
            return;
        if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2 && r->element[1]->type == REDIS_REPLY_ARRAY)
            take_entries(d, s, r->element[1], NULL, 0);
        freeReplyObject(r);
    }
}

static void read_new(drain_t *d)
{
    dsale_t **act = sk_xmalloc((d->n_sales + 1) * sizeof(*act));
    size_t n = 0;
    for (size_t i = 0; i < d->n_sales; i++)
        if (d->sales[i].group_ready && d->sales[i].active && !d->sales[i].pending_phase)
            act[n++] = &d->sales[i];
    if (n == 0) {
        free(act);
        usleep(BLOCK_MS * 1000);
        return;
    }
    for (size_t off = 0; off < n && d->redis && d->n_batch < d->batch_max; off += KEYS_PER_READ) {
        size_t m = SK_MIN((size_t)KEYS_PER_READ, n - off);
        bool last = off + m >= n;
        /* Block only when this is the last call of the round and nothing came yet. */
        bool block = last && d->n_batch == 0;
        size_t argc = 0, cap = 10 + 2 * m;
        const char **argv = sk_xmalloc(cap * sizeof(*argv));
        size_t *lens = sk_xmalloc(cap * sizeof(*lens));
        char count[24], block_ms[24];
        /* COUNT is per stream and counts entries, each a node's batch of up to
         * SK_REDIS_ENTRY_MAX orders: share what is left of the batch among the
         * streams, guessing ENTRY_GUESS orders an entry (a read may overshoot). */
        snprintf(count, sizeof(count), "%llu",
                 (unsigned long long)SK_MAX((d->batch_max - d->n_batch) / m / ENTRY_GUESS, (size_t)1));
        snprintf(block_ms, sizeof(block_ms), "%d", BLOCK_MS);
        argv[argc++] = "XREADGROUP";
        argv[argc++] = "GROUP";
        argv[argc++] = GROUP;
        argv[argc++] = d->consumer;
        argv[argc++] = "COUNT";
        argv[argc++] = count;
        if (block) {
            argv[argc++] = "BLOCK";
            argv[argc++] = block_ms;
        }
        argv[argc++] = "STREAMS";
        for (size_t k = 0; k < m; k++)
            argv[argc++] = act[off + k]->key;
        for (size_t k = 0; k < m; k++)
            argv[argc++] = ">";
        for (size_t k = 0; k < argc; k++)
            lens[k] = strlen(argv[k]);
        redisReply *r = rcmd_argv(d, (int)argc, argv, lens);
        free(argv);
        free(lens);
        if (!r)
            break;
        if (r->type == REDIS_REPLY_ERROR) {
            /* A stream or group vanished (Redis lost its data): find them again. */
            sk_warn("drain: XREADGROUP failed: %s", r->str);
            for (size_t k = 0; k < m; k++)
                act[off + k]->group_ready = false;
            d->next_discover = 0;
        } else {
            take_reply(d, r, false);
        }
        freeReplyObject(r);
    }
    free(act);
}

/* ---- writing and acknowledging ---------------------------------------------------------- */

static bool write_batch(drain_t *d)
{
    sk_pg_order_t *rows = sk_xmalloc(d->n_batch * sizeof(*rows));
    for (size_t i = 0; i < d->n_batch; i++) {
        dentry_t *x = &d->batch[i];
        rows[i] = (sk_pg_order_t){x->order_id, x->sale->id, x->user, x->request, x->seq, x->created_at};
    }
    char err[512];
    uint64_t t0 = sk_mono_ns();
    int64_t n = sk_pg_put_orders(d->pg, rows, d->n_batch, err, sizeof(err));
    free(rows);
    if (n < 0) {
        pg_drop(d, err);
        return false;
    }
    d->last_batch_s = (double)(sk_mono_ns() - t0) / 1e9;
    d->orders += (uint64_t)n;
    d->entries += d->n_batch;
    d->batches++;
    sk_debug("drain: wrote %zu entries (%lld new orders)", d->n_batch, (long long)n);
    return true;
}

static void ack_batch(drain_t *d)
{
    /* Per stream, one XACK with all of its ids; pipelined. */
    /* One XACK per sale, naming each entry once (an entry holds a batch of orders).
     * A read covers few sales, so finding a row's sale among those seen is cheap. */
    size_t n_cmds = 0, n_sales = 0, cap_sales = 8;
    dsale_t **sales = sk_xmalloc(cap_sales * sizeof(*sales));
    for (size_t i = 0; i < d->n_batch; i++) {
        size_t k = 0;
        while (k < n_sales && sales[k] != d->batch[i].sale)
            k++;
        if (k == n_sales) {
            if (n_sales == cap_sales)
                sales = sk_xrealloc(sales, (cap_sales *= 2) * sizeof(*sales));
            sales[n_sales++] = d->batch[i].sale;
        }
    }
    for (size_t k = 0; k < n_sales; k++) {
        dsale_t *s = sales[k];
        size_t cap = 3, argc = 0;
        for (size_t j = 0; j < d->n_batch; j++)
            cap += d->batch[j].sale == s && d->batch[j].first_of_entry;
        const char **argv = sk_xmalloc(cap * sizeof(*argv));
        size_t *lens = sk_xmalloc(cap * sizeof(*lens));
        argv[argc++] = "XACK";
        argv[argc++] = s->key;
        argv[argc++] = GROUP;
        for (size_t j = 0; j < d->n_batch; j++)
            if (d->batch[j].sale == s && d->batch[j].first_of_entry)
                argv[argc++] = d->batch[j].entry_id;
        for (size_t a = 0; a < argc; a++)
            lens[a] = strlen(argv[a]);
        redisAppendCommandArgv(d->redis, (int)argc, argv, lens);
        free(argv);
        free(lens);
        n_cmds++;
    }
    free(sales);
    for (size_t k = 0; k < n_cmds; k++) {
        redisReply *r = NULL;
        if (redisGetReply(d->redis, (void **)&r) != REDIS_OK) {
            /* Written but not acknowledged: read again later, inserted once. */
            redis_drop(d, d->redis->errstr[0] ? d->redis->errstr : "I/O error");
            return;
        }
        freeReplyObject(r);
    }
}

/* ---- lag and metrics -------------------------------------------------------------------------- */

static int64_t info_field(const redisReply *g, const char *name)
{
    for (size_t i = 0; i + 1 < g->elements; i += 2)
        if (g->element[i]->type == REDIS_REPLY_STRING && strcmp(g->element[i]->str, name) == 0)
            return g->element[i + 1]->type == REDIS_REPLY_INTEGER ? g->element[i + 1]->integer : -1;
    return -1;
}

static void update_lag(drain_t *d)
{
    int64_t now = sk_now_ms();
    for (size_t i = 0; i < d->n_sales && d->redis; i++) {
        dsale_t *s = &d->sales[i];
        if (!s->group_ready || !s->active)
            continue; /* an inactive stream is drained and gets no more entries */
        redisAppendCommand(d->redis, "XINFO GROUPS %s", s->key);
        redisAppendCommand(d->redis, "XLEN %s", s->key);
    }
    for (size_t i = 0; i < d->n_sales && d->redis; i++) {
        dsale_t *s = &d->sales[i];
        if (!s->group_ready || !s->active)
            continue;
        redisReply *g = NULL, *l = NULL;
        if (redisGetReply(d->redis, (void **)&g) != REDIS_OK || redisGetReply(d->redis, (void **)&l) != REDIS_OK) {
            freeReplyObject(g);
            redis_drop(d, d->redis->errstr[0] ? d->redis->errstr : "I/O error");
            return;
        }
        if (l->type == REDIS_REPLY_INTEGER)
            s->length = l->integer;
        if (g->type == REDIS_REPLY_ARRAY) {
            for (size_t k = 0; k < g->elements; k++) {
                const redisReply *one = g->element[k];
                if (one->type != REDIS_REPLY_ARRAY || one->elements < 2 ||
                    one->element[1]->type != REDIS_REPLY_STRING || strcmp(one->element[1]->str, GROUP) != 0)
                    continue;
                s->pending = info_field(one, "pending");
                int64_t lag = info_field(one, "lag");
                int64_t read = info_field(one, "entries-read");
                /* "lag" is what the group has not been given yet (Redis 7); older
                 * servers lack it: then length minus entries read. */
                if (lag < 0)
                    lag = read >= 0 ? SK_MAX(s->length - read, (int64_t)0) : s->length;
                s->lag = lag;
            }
        }
        freeReplyObject(g);
        freeReplyObject(l);
        bool finished = s->length >= s->stock || now > s->ends_at + INACTIVE_AFTER_MS;
        s->active = !(finished && s->lag == 0 && s->pending == 0);
    }
}

static void render_metrics(drain_t *d)
{
    sk_buf_t b = {0};
    int64_t total = 0;
    sk_buf_puts(&b, "# HELP seckill_drain_lag Orders in the stream not yet in PostgreSQL (undelivered + "
                    "unacknowledged), by sale.\n# TYPE seckill_drain_lag gauge\n");
    for (size_t i = 0; i < d->n_sales; i++) {
        sk_buf_printf(&b, "seckill_drain_lag{sale=\"%s\"} %lld\n", d->sales[i].id,
                      (long long)(d->sales[i].lag + d->sales[i].pending));
        total += d->sales[i].lag + d->sales[i].pending;
    }
    sk_buf_printf(&b,
                  "# HELP seckill_drain_lag_total Orders not yet in PostgreSQL, all sales.\n"
                  "# TYPE seckill_drain_lag_total gauge\nseckill_drain_lag_total %lld\n"
                  "# TYPE seckill_drain_stream_length gauge\n",
                  (long long)total);
    for (size_t i = 0; i < d->n_sales; i++)
        sk_buf_printf(&b, "seckill_drain_stream_length{sale=\"%s\"} %lld\n", d->sales[i].id,
                      (long long)d->sales[i].length);
    sk_buf_printf(&b,
                  "# HELP seckill_drain_orders_total Orders inserted into PostgreSQL.\n"
                  "# TYPE seckill_drain_orders_total counter\nseckill_drain_orders_total %llu\n"
                  "# HELP seckill_drain_entries_total Stream entries written (with re-deliveries).\n"
                  "# TYPE seckill_drain_entries_total counter\nseckill_drain_entries_total %llu\n"
                  "# TYPE seckill_drain_batches_total counter\nseckill_drain_batches_total %llu\n"
                  "# TYPE seckill_drain_malformed_total counter\nseckill_drain_malformed_total %llu\n"
                  "# TYPE seckill_drain_errors_total counter\n"
                  "seckill_drain_errors_total{store=\"redis\"} %llu\n"
                  "seckill_drain_errors_total{store=\"postgres\"} %llu\n"
                  "# TYPE seckill_drain_up gauge\n"
                  "seckill_drain_up{store=\"redis\"} %d\nseckill_drain_up{store=\"postgres\"} %d\n"
                  "# TYPE seckill_drain_last_batch_seconds gauge\nseckill_drain_last_batch_seconds %.6f\n"
                  "# TYPE seckill_drain_sales gauge\nseckill_drain_sales %zu\n",
                  (unsigned long long)d->orders, (unsigned long long)d->entries, (unsigned long long)d->batches,
                  (unsigned long long)d->malformed, (unsigned long long)d->redis_errors,
                  (unsigned long long)d->pg_errors, d->redis != NULL, d->pg != NULL && sk_pg_ok(d->pg), d->last_batch_s,
                  d->n_sales);
    pthread_mutex_lock(&d->mu);
    free(d->metrics);
    d->metrics = b.data;
    d->metrics_len = b.len;
    pthread_mutex_unlock(&d->mu);
}

static void housekeeping(drain_t *d)
{
    uint64_t now = now_ms();
    if (now < d->next_stats)
        return;
    if (d->redis)
        update_lag(d);
    render_metrics(d);
    d->next_stats = now + 1000;
}

/* ---- the metrics server (its own thread) -------------------------------------------------------- */

typedef struct {
    drain_t *d;
    sk_loop_t *loop;
    sk_http_server_t *server;
    sk_http_config_t cfg;
    sk_async_t stop;
    pthread_t thread;
} metrics_srv_t;

static void metrics_handle(sk_http_exchange_t *x, void *arg)
{
    metrics_srv_t *m = arg;
    const sk_http_request_t *req = x->req;
    if (req->path_len == 8 && memcmp(req->path, "/metrics", 8) == 0) {
        pthread_mutex_lock(&m->d->mu);
        sk_http_respond(x, 200, "text/plain; version=0.0.4; charset=utf-8", m->d->metrics ? m->d->metrics : "",
                        m->d->metrics_len);
        pthread_mutex_unlock(&m->d->mu);
    } else if (req->path_len == 8 && memcmp(req->path, "/healthz", 8) == 0) {
        static const char body[] = "{\"status\":\"ok\"}\n";
        sk_http_respond(x, 200, "application/json", body, sizeof(body) - 1);
    } else {
        sk_http_respond_error(x, 404, "not_found", "the drain serves /metrics and /healthz");
    }
}

static void metrics_stop(sk_loop_t *loop, sk_async_t *a)
{
    (void)a;
    sk_loop_stop(loop);
}

static void *metrics_main(void *arg)
{
    metrics_srv_t *m = arg;
    sk_loop_run(m->loop);
    return NULL;
}

static int metrics_start(metrics_srv_t *m, drain_t *d, const char *listen)
{
    char host[256];
    int port;
    if (sk_cmd_split_hostport(listen, host, sizeof(host), &port) < 0) {
        fprintf(stderr, "seckill drain: --metrics-listen must be HOST:PORT (got '%s')\n", listen);
        return -1;
    }
    int fd = sk_http_listen(host, port);
    if (fd < 0) {
        fprintf(stderr, "seckill drain: cannot listen on %s: %s\n", listen, strerror(-fd));
        return -1;
    }
    m->d = d;
    m->cfg =
        (sk_http_config_t){.header_timeout_ms = 10000, .idle_timeout_ms = 60000, .max_conns = 64, .access_log_fd = -1};
    m->loop = sk_loop_new();
    if (!m->loop || sk_async_init(m->loop, &m->stop, metrics_stop) < 0 ||
        !(m->server = sk_http_server_new(m->loop, fd, &m->cfg, metrics_handle, m)) ||
        pthread_create(&m->thread, NULL, metrics_main, m) != 0) {
        fprintf(stderr, "seckill drain: cannot start the metrics server\n");
        return -1;
    }
    return 0;
}

static void metrics_shutdown(metrics_srv_t *m)
{
    if (!m->loop)
        return;
    sk_async_send(&m->stop);
    pthread_join(m->thread, NULL);
    sk_http_server_free(m->server);
    sk_async_close(m->loop, &m->stop);
    sk_loop_free(m->loop);
}

/* ---- the command ------------------------------------------------------------------------------ */

int sk_cmd_drain(int argc, char **argv)
{
    const char *store = NULL, *db = NULL, *metrics_listen = NULL, *consumer = NULL, *batch_s = NULL, *log_level = NULL;
    const sk_cmd_opt_t opts[] = {
        {"store", "STORE", &store, 0},
        {"db", "DB", &db, 0},
        {"metrics-listen", "METRICS_LISTEN", &metrics_listen, 0},
        {"consumer", "CONSUMER", &consumer, 0},
        {"batch", "DRAIN_BATCH", &batch_s, 0},
        {"log-level", "LOG_LEVEL", &log_level, 0},
    };
    int prc = sk_cmd_parse("drain", argc, argv, opts, SK_ARRAY_LEN(opts), usage);
    if (prc)
        return prc == 1 ? 0 : 2;
    if (!store || !db) {
        fprintf(stderr, "seckill drain: --store redis://... and --db postgresql://... are required\n");
        return 2;
    }
    drain_t d = {0};
    char err[512];
    if (sk_redis_parse_url(store, &d.addr, err, sizeof(err)) < 0) {
        fprintf(stderr, "seckill drain: %s\n", err);
        return 2;
    }
    int64_t batch = 2000;
    if (batch_s && sk_parse_i64(batch_s, strlen(batch_s), 1, 100000, &batch) < 0) {
        fprintf(stderr, "seckill drain: --batch must be an integer from 1 to 100000\n");
        return 2;
    }
    if (log_level) {
        int lv = sk_log_level_parse(log_level);
        if (lv < 0) {
            fprintf(stderr, "seckill drain: --log-level must be debug, info, warn or error\n");
            return 2;
        }
        sk_log_level = (sk_log_level_t)lv;
    }
    char host[128] = "drain";
    if (!consumer) {
        if (gethostname(host, sizeof(host) - 1) != 0 || !host[0])
            snprintf(host, sizeof(host), "drain");
        consumer = host;
    }
    d.store_url = store;
    d.db_url = db;
    d.consumer = consumer;
    d.batch_max = (size_t)batch;
    d.cap_batch = d.batch_max;
    d.batch = sk_xmalloc(d.cap_batch * sizeof(*d.batch));
    pthread_mutex_init(&d.mu, NULL);

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    metrics_srv_t m = {0};
    render_metrics(&d);
    if (metrics_listen && metrics_start(&m, &d, metrics_listen) < 0) {
        free(d.batch);
        return 1;
    }
    printf("draining redis at %s:%d/%d into PostgreSQL as consumer '%s'%s%s\n", d.addr.host, d.addr.port, d.addr.db,
           consumer, metrics_listen ? ", metrics on http://" : "", metrics_listen ? metrics_listen : "");
    fflush(stdout);
    sk_info("drain: started (group %s, consumer %s, batch %zu)", GROUP, consumer, d.batch_max);

    while (!g_stop) {
        bool r_ok = redis_ensure(&d);
        bool p_ok = pg_ensure(&d);
        uint64_t now = now_ms();
        if (r_ok && p_ok && !d.ready_sent) {
            sk_sd_notify("READY=1");
            d.ready_sent = true;
        }
        housekeeping(&d);
        if (!r_ok || !p_ok) {
            usleep(50 * 1000);
            continue;
        }
        if (now >= d.next_discover) {
            discover(&d);
            d.next_discover = now + 1000;
        }
        if (!d.redis || !d.pg)
            continue;
        d.n_batch = 0;
        read_pending(&d);
        if (d.n_batch == 0 && now >= d.next_claim) {
            claim_orphans(&d);
            d.next_claim = now + CLAIM_IDLE_MS / 4;
        }
        if (d.n_batch == 0 && d.redis)
            read_new(&d);
        if (d.n_batch == 0)
            continue;
        /* Hold the batch until it is in PostgreSQL (or we are asked to stop, leaving it
         * pending in the stream for the next start). */
        while (!g_stop) {
            if (pg_ensure(&d) && write_batch(&d))
                break;
            redis_ensure(&d);
            housekeeping(&d);
            usleep(50 * 1000);
        }
        if (g_stop)
            break;
        if (d.redis)
            ack_batch(&d);
    }
    sk_sd_notify("STOPPING=1");
    sk_info("drain: stopping");
    metrics_shutdown(&m);
    if (d.redis)
        redisFree(d.redis);
    sk_pg_close(d.pg);
    free(d.sales);
    free(d.batch);
    free(d.metrics);
    pthread_mutex_destroy(&d.mu);
    return 0;
}
