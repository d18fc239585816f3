/* The drain daemon (drain.h): connections with back-off, sale discovery, reading the
 * streams through the consumer group, writing each batch, acknowledging it, and the lag. */
#include "drain/drain.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "drain/batch.h"
#include "drain/metrics.h"
#include "util/buf.h"
#include "util/common.h"
#include "util/sdnotify.h"

#define GROUP SK_DRAIN_GROUP
#define TIMEOUT_MS 5000
#define BLOCK_MS 200
#define KEYS_PER_READ 256 /* streams per XREADGROUP */
#define ENTRY_GUESS 16 /* orders per stream entry assumed when sizing a read */
#define CLAIM_IDLE_MS 60000
#define BACKOFF_MAX_MS 5000

typedef struct {
    char id[SK_ID_MAX + 1];
    char key[SK_REDIS_KEY_MAX + 1];
    int64_t stock, ends_at;
    bool group_ready; /* the consumer group exists */
    bool in_db; /* its sales row is written */
    bool pending_phase; /* re-reading our own pending entries */
    char cursor[SK_DRAIN_ENTRY_ID_MAX]; /* pending-phase position */
    bool active; /* still read with ">" */
    int64_t lag, pending, length;
} dsale_t;

struct sk_drain {
    sk_drain_config_t cfg;
    redisContext *redis;
    sk_db_t *db;
    bool migrated;
    dsale_t *sales;
    size_t n_sales, cap_sales;
    sk_drain_batch_t batch;
    uint64_t redis_backoff, db_backoff, redis_retry_at, db_retry_at;
    uint64_t next_discover, next_stats, next_claim;
    bool ready_sent;
    sk_drain_metrics_t *metrics; /* NULL: none */

    /* statistics */
    uint64_t orders, entries, batches, redis_errors, db_errors;
    double last_batch_s;
};

static uint64_t now_ms(void)
{
    return sk_mono_ns() / 1000000u;
}

bool sk_drain_stream_finished(int64_t length, int64_t stock, int64_t ends_at, int64_t redis_now_ms)
{
    return length >= stock || (redis_now_ms >= 0 && redis_now_ms > ends_at + SK_DRAIN_FINISHED_AFTER_MS);
}

/* ---- Redis ------------------------------------------------------------------------------ */

static void redis_drop(sk_drain_t *d, const char *why)
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

static bool redis_ensure(sk_drain_t *d)
{
    if (d->redis)
        return true;
    if (now_ms() < d->redis_retry_at)
        return false;
    char err[512];
    d->redis = sk_redis_connect(&d->cfg.redis, TIMEOUT_MS, err, sizeof(err));
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
static redisReply *rcmd(sk_drain_t *d, const char *fmt, ...)
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

static redisReply *rcmd_argv(sk_drain_t *d, int argc, const char **argv, const size_t *lens)
{
    if (!d->redis)
        return NULL;
    redisReply *r = redisCommandArgv(d->redis, argc, argv, lens);
    if (!r)
        redis_drop(d, d->redis->errstr[0] ? d->redis->errstr : "I/O error");
    return r;
}

/* ---- the database --------------------------------------------------------------------------- */

static void db_drop(sk_drain_t *d, const char *why)
{
    sk_warn("drain: %s; retrying (the orders wait in the streams)", why);
    sk_db_close(d->db);
    d->db = NULL;
    d->db_errors++;
    d->db_backoff = d->db_backoff ? SK_MIN(d->db_backoff * 2, (uint64_t)BACKOFF_MAX_MS) : 200;
    d->db_retry_at = now_ms() + d->db_backoff;
}

static bool db_ensure(sk_drain_t *d)
{
    if (sk_db_ok(d->db))
        return true;
    if (d->db) {
        char why[128];
        snprintf(why, sizeof(why), "%s: connection lost", d->cfg.db->name);
        db_drop(d, why);
        return false;
    }
    if (now_ms() < d->db_retry_at)
        return false;
    char err[512];
    d->db = sk_db_connect(d->cfg.db, d->cfg.db_url, TIMEOUT_MS, err, sizeof(err));
    if (!d->db) {
        if (d->db_backoff == 0 || d->db_backoff >= BACKOFF_MAX_MS)
            sk_warn("drain: %s", err);
        d->db_errors++;
        d->db_backoff = d->db_backoff ? SK_MIN(d->db_backoff * 2, (uint64_t)BACKOFF_MAX_MS) : 200;
        d->db_retry_at = now_ms() + d->db_backoff;
        return false;
    }
    if (!d->migrated) {
        int n = sk_db_migrate(d->db, err, sizeof(err));
        if (n < 0) {
            db_drop(d, err);
            return false;
        }
        if (n > 0)
            sk_info("drain: applied %d schema migration%s", n, n == 1 ? "" : "s");
        d->migrated = true;
    }
    if (d->db_backoff)
        sk_info("drain: connected to %s again", d->cfg.db->name);
    d->db_backoff = 0;
    return true;
}

/* ---- sales and their streams ---------------------------------------------------------------- */

static dsale_t *find_sale(sk_drain_t *d, const char *id, size_t len)
{
    for (size_t i = 0; i < d->n_sales; i++)
        if (strlen(d->sales[i].id) == len && memcmp(d->sales[i].id, id, len) == 0)
            return &d->sales[i];
    return NULL;
}

static void discover(sk_drain_t *d)
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
        if (s && s->group_ready && s->in_db)
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
        if (!s->in_db && d->db) {
            char name[SK_NAME_MAX + 1];
            snprintf(name, sizeof(name), "%.*s", (int)rs.name_len, rs.name);
            sk_db_sale_t ps = {s->id, name, rs.stock, rs.starts_at, rs.ends_at, rs.per_user_limit, rs.created_at};
            char err[512];
            if (sk_db_put_sale(d->db, &ps, err, sizeof(err)) == 0)
                s->in_db = true;
            else if (!sk_db_ok(d->db))
                db_drop(d, err);
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

/* XREADGROUP reply: [[key, [entry...]], ...] or nil. */
static void take_reply(sk_drain_t *d, const redisReply *r, bool pending_phase)
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
        sk_drain_batch_add(&d->batch, s->id, s->key, kv->element[1], pending_phase ? s->cursor : NULL,
                           sizeof(s->cursor));
    }
}

static void read_pending(sk_drain_t *d)
{
    for (size_t i = 0; i < d->n_sales && d->redis && d->batch.n == 0; i++) {
        dsale_t *s = &d->sales[i];
        if (!s->pending_phase || !s->group_ready)
            continue;
        redisReply *r = rcmd(d, "XREADGROUP GROUP %s %s COUNT %llu STREAMS %s %s", GROUP, d->cfg.consumer,
                             (unsigned long long)SK_MAX(d->cfg.batch_max / ENTRY_GUESS, (size_t)1), s->key, s->cursor);
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

static void claim_orphans(sk_drain_t *d)
{
    /* Entries delivered to a consumer that has gone away (another drain's name). */
    for (size_t i = 0; i < d->n_sales && d->redis && d->batch.n < d->cfg.batch_max; i++) {
        dsale_t *s = &d->sales[i];
        if (!s->group_ready || s->pending == 0)
            continue;
        redisReply *r = rcmd(d, "XAUTOCLAIM %s %s %s %d 0-0 COUNT %llu", s->key, GROUP, d->cfg.consumer, CLAIM_IDLE_MS,
                             (unsigned long long)SK_MAX((d->cfg.batch_max - d->batch.n) / ENTRY_GUESS, (size_t)1));
        if (!r)
            return;
        if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2 && r->element[1]->type == REDIS_REPLY_ARRAY)
            sk_drain_batch_add(&d->batch, s->id, s->key, r->element[1], NULL, 0);
        freeReplyObject(r);
    }
}

static void read_new(sk_drain_t *d)
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
    for (size_t off = 0; off < n && d->redis && d->batch.n < d->cfg.batch_max; off += KEYS_PER_READ) {
        size_t m = SK_MIN((size_t)KEYS_PER_READ, n - off);
        bool last = off + m >= n;
        /* Block only when this is the last call of the round and nothing came yet. */
        bool block = last && d->batch.n == 0;
        size_t argc = 0, cap = 10 + 2 * m;
        const char **argv = sk_xmalloc(cap * sizeof(*argv));
        size_t *lens = sk_xmalloc(cap * sizeof(*lens));
        char count[24], block_ms[24];
        /* COUNT is per stream and counts entries, each a node's batch of up to
         * SK_REDIS_ENTRY_MAX orders: share what is left of the batch among the
         * streams, guessing ENTRY_GUESS orders an entry (a read may overshoot). */
        snprintf(count, sizeof(count), "%llu",
                 (unsigned long long)SK_MAX((d->cfg.batch_max - d->batch.n) / m / ENTRY_GUESS, (size_t)1));
        snprintf(block_ms, sizeof(block_ms), "%d", BLOCK_MS);
        argv[argc++] = "XREADGROUP";
        argv[argc++] = "GROUP";
        argv[argc++] = GROUP;
        argv[argc++] = d->cfg.consumer;
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

static bool write_batch(sk_drain_t *d)
{
    sk_db_order_t *rows = sk_drain_batch_orders(&d->batch);
    char err[512];
    uint64_t t0 = sk_mono_ns();
    int64_t n = sk_db_put_orders(d->db, rows, d->batch.n, err, sizeof(err));
    free(rows);
    if (n < 0) {
        db_drop(d, err);
        return false;
    }
    d->last_batch_s = (double)(sk_mono_ns() - t0) / 1e9;
    d->orders += (uint64_t)n;
    d->entries += d->batch.n;
    d->batches++;
    sk_debug("drain: wrote %zu entries (%lld new orders)", d->batch.n, (long long)n);
    return true;
}

static void append_ack(void *arg, int argc, const char **argv, const size_t *lens)
{
    redisAppendCommandArgv(arg, argc, argv, lens);
}

static void ack_batch(sk_drain_t *d)
{
    /* One XACK per stream, pipelined. */
    size_t n_cmds = sk_drain_batch_acks(&d->batch, GROUP, append_ack, d->redis);
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

/* Redis's clock in unix ms from a TIME reply; -1 when it is not one. */
static int64_t redis_time_ms(const redisReply *r)
{
    int64_t sec, usec;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        !sk_redis_reply_i64(r->element[0], 0, INT64_MAX / 1000, &sec) ||
        !sk_redis_reply_i64(r->element[1], 0, 999999, &usec))
        return -1;
    return sec * 1000 + usec / 1000;
}

static void group_info(dsale_t *s, const redisReply *g)
{
    if (g->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t k = 0; k < g->elements; k++) {
        const redisReply *one = g->element[k];
        if (one->type != REDIS_REPLY_ARRAY || one->elements < 2 || one->element[1]->type != REDIS_REPLY_STRING ||
            strcmp(one->element[1]->str, GROUP) != 0)
            continue;
        s->pending = info_field(one, "pending");
        int64_t lag = info_field(one, "lag");
        int64_t read = info_field(one, "entries-read");
        /* "lag" is what the group has not been given yet (Redis 7); older servers lack
         * it: then length minus entries read. */
        if (lag < 0)
            lag = read >= 0 ? SK_MAX(s->length - read, (int64_t)0) : s->length;
        s->lag = lag;
    }
}

/* Reads every stream's length and the group's lag and pending count, in one pipeline,
 * and decides which streams are still read for new entries. */
static void update_lag(sk_drain_t *d)
{
    /* Whether a sale's window is over is decided by Redis's clock, as the purchase
     * script decides it: a drain host whose clock runs ahead must not stop reading a
     * stream that still gets orders. */
    redisAppendCommand(d->redis, "TIME");
    for (size_t i = 0; i < d->n_sales; i++) {
        dsale_t *s = &d->sales[i];
        if (!s->group_ready)
            continue;
        /* A stream no longer read still has its length watched: an entry that comes
         * after all makes it read again, so no confirmed order stays in Redis only. */
        if (s->active)
            redisAppendCommand(d->redis, "XINFO GROUPS %s", s->key);
        redisAppendCommand(d->redis, "XLEN %s", s->key);
    }
    redisReply *t = NULL;
    if (redisGetReply(d->redis, (void **)&t) != REDIS_OK)
        goto io_error;
    int64_t redis_now = redis_time_ms(t);
    freeReplyObject(t);
    for (size_t i = 0; i < d->n_sales; i++) {
        dsale_t *s = &d->sales[i];
        if (!s->group_ready)
            continue;
        redisReply *g = NULL, *l = NULL;
        if ((s->active && redisGetReply(d->redis, (void **)&g) != REDIS_OK) ||
            redisGetReply(d->redis, (void **)&l) != REDIS_OK) {
            freeReplyObject(g);
            goto io_error;
        }
        int64_t length = l->type == REDIS_REPLY_INTEGER ? l->integer : s->length;
        freeReplyObject(l);
        if (!s->active) {
            /* Any change, not only growth: a stream Redis lost and that refilled may be
             * shorter than it was. */
            if (length != s->length) {
                sk_info("drain: the stream of sale '%s' changed (%lld entries, was %lld) after it was finished; "
                        "reading it again",
                        s->id, (long long)length, (long long)s->length);
                s->active = true;
            }
            s->length = length;
            continue;
        }
        s->length = length;
        group_info(s, g);
        freeReplyObject(g);
        bool finished = sk_drain_stream_finished(s->length, s->stock, s->ends_at, redis_now);
        s->active = !(finished && s->lag == 0 && s->pending == 0);
    }
    return;
io_error:
    redis_drop(d, d->redis->errstr[0] ? d->redis->errstr : "I/O error");
}

static void publish_metrics(sk_drain_t *d)
{
    sk_drain_sale_stats_t *ss = sk_xmalloc((d->n_sales ? d->n_sales : 1) * sizeof(*ss));
    for (size_t i = 0; i < d->n_sales; i++) {
        const dsale_t *s = &d->sales[i];
        ss[i] = (sk_drain_sale_stats_t){s->id, s->lag, s->pending, s->length, s->active};
    }
    sk_drain_stats_t st = {
        .db_name = d->cfg.db->name,
        .sales = ss,
        .n_sales = d->n_sales,
        .orders = d->orders,
        .entries = d->entries,
        .batches = d->batches,
        .malformed = d->batch.malformed,
        .redis_errors = d->redis_errors,
        .db_errors = d->db_errors,
        .redis_up = d->redis != NULL,
        .db_up = sk_db_ok(d->db),
        .last_batch_s = d->last_batch_s,
    };
    sk_buf_t b = {0};
    sk_drain_metrics_render(&b, &st);
    sk_drain_metrics_publish(d->metrics, &b);
    free(ss);
}

static void housekeeping(sk_drain_t *d)
{
    uint64_t now = now_ms();
    if (now < d->next_stats)
        return;
    if (d->redis)
        update_lag(d);
    if (d->metrics)
        publish_metrics(d);
    d->next_stats = now + 1000;
}

/* ---- the drain --------------------------------------------------------------------------------- */

sk_drain_t *sk_drain_new(const sk_drain_config_t *cfg, char *err, size_t err_size)
{
    sk_drain_t *d = sk_xcalloc(1, sizeof(*d));
    d->cfg = *cfg;
    sk_drain_batch_init(&d->batch, d->cfg.batch_max);
    if (cfg->metrics_host) {
        d->metrics = sk_drain_metrics_start(cfg->metrics_host, cfg->metrics_port, err, err_size);
        if (!d->metrics) {
            sk_drain_free(d);
            return NULL;
        }
        publish_metrics(d);
    }
    return d;
}

void sk_drain_free(sk_drain_t *d)
{
    if (!d)
        return;
    sk_drain_metrics_stop(d->metrics);
    if (d->redis)
        redisFree(d->redis);
    sk_db_close(d->db);
    free(d->sales);
    sk_drain_batch_free(&d->batch);
    free(d);
}

int sk_drain_run(sk_drain_t *d, const volatile sig_atomic_t *stop)
{
    sk_info("drain: started (group %s, consumer %s, batch %zu)", GROUP, d->cfg.consumer, d->cfg.batch_max);
    while (!*stop) {
        bool r_ok = redis_ensure(d);
        bool p_ok = db_ensure(d);
        uint64_t now = now_ms();
        if (r_ok && p_ok && !d->ready_sent) {
            sk_sd_notify("READY=1");
            d->ready_sent = true;
        }
        housekeeping(d);
        if (!r_ok || !p_ok) {
            usleep(50 * 1000);
            continue;
        }
        if (now >= d->next_discover) {
            discover(d);
            d->next_discover = now + 1000;
        }
        if (!d->redis || !d->db)
            continue;
        d->batch.n = 0;
        read_pending(d);
        if (d->batch.n == 0 && now >= d->next_claim) {
            claim_orphans(d);
            d->next_claim = now + CLAIM_IDLE_MS / 4;
        }
        if (d->batch.n == 0 && d->redis)
            read_new(d);
        if (d->batch.n == 0)
            continue;
        /* Hold the batch until it is in the database (or we are asked to stop, leaving
         * it pending in the stream for the next start). */
        while (!*stop) {
            if (db_ensure(d) && write_batch(d))
                break;
            redis_ensure(d);
            housekeeping(d);
            usleep(50 * 1000);
        }
        if (*stop)
            break;
        if (d->redis)
            ack_batch(d);
        /* The rows borrow the sales' ids and keys, and discover() may move the sales. */
        d->batch.n = 0;
    }
    sk_sd_notify("STOPPING=1");
    sk_info("drain: stopping");
    return 0;
}
