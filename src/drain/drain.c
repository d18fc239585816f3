/* The drain daemon (drain.h): connections with back-off, sale discovery, reading the
 * streams through the consumer group on every primary, writing each batch,
 * acknowledging it, trimming, reconciling and retiring, and the lag.
 *
 * Redis commands go to the primary serving the sale's slot (redis/cluster.h). Reads,
 * acknowledgements and the once-a-second statistics are pipelined per primary: one
 * round trip per primary, whatever the number of sales on it. */
#include "drain/drain.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "drain/batch.h"
#include "drain/metrics.h"
#include "redis/cluster.h"
#include "util/buf.h"
#include "util/common.h"
#include "util/sdnotify.h"

#define GROUP SK_DRAIN_GROUP
#define TIMEOUT_MS 5000
#define REPLICA_RETRY_MS 200 /* a primary whose replicas lag is read again after this ... */
#define REPLICA_RETRY_MAX_MS 2000 /* ... doubling to this while they stay behind */
#define IDLE_MS 20 /* nothing new on any stream: wait this long before reading again */
#define ENTRY_GUESS SK_REDIS_ENTRY_MAX /* orders per stream entry assumed at first (a small first read) */
#define CLAIM_IDLE_MS 60000
#define BACKOFF_MAX_MS 5000
#define MAP_MS 5000 /* a Redis Cluster's map is read this often (and after errors) */
#define COUNT_MIN_MS 2000 /* a sale is counted in the database at most this often ... */
#define COUNT_COST_FACTOR 20 /* ... and at most 1/20 of the time counting it takes */
#define COUNT_IDLE_MS 600000 /* a sale nothing changed in is counted again this often */
#define COUNT_BUDGET_MS 50 /* time spent counting in the database per second, at most */
#define NODES SK_RCLUSTER_NODES_MAX

typedef struct {
    char id[SK_ID_MAX + 1];
    char key[SK_REDIS_KEY_MAX + 1]; /* the order stream */
    char sale_key[SK_REDIS_KEY_MAX + 1];
    char holders_key[SK_REDIS_KEY_MAX + 1];
    unsigned slot;
    int64_t stock, ends_at;
    bool group_ready; /* the consumer group exists */
    bool in_db; /* its sales row is written */
    bool pending_phase; /* re-reading our own pending entries */
    char cursor[SK_DRAIN_ENTRY_ID_MAX]; /* pending-phase position */
    bool active; /* still read with ">" */
    int64_t lag, pending, length;
    sk_db_counts_t redis; /* orders made, sold and held units in Redis; -1: unknown */
    /* Reconciliation: the database's counts are counted when the stream is drained, no
     * more often than their cost allows, and in between follow the final orders this
     * drain inserted; a batch that met rows already there, or held reservations or
     * transitions, makes it count again. */
    sk_db_counts_t db; /* counted in the database, -1: unknown */
    int64_t added_orders, added_units; /* confirmed orders (and their units) inserted since */
    bool count_dirty; /* the added counts are not exact: count before comparing */
    bool count_fresh; /* counted this round, before Redis's counts were read */
    uint64_t count_after; /* do not count before this */
    int64_t diff; /* Redis's sold units - the database's confirmed units, Redis read after */
    bool diff_known;
    uint64_t reread_at; /* entries left pending (a transition before its order): read them again then; 0: none */
    bool over; /* its primary's clock is past ends_at */
    bool retired; /* its sale record says retired_at: holders and stream expire */
    bool gone; /* retired and its stream expired: nothing left to watch */
    sk_drain_id_t trimmed_to; /* the last MINID trimmed to */
    sk_drain_id_t trim_next; /* the one sent in this round */
    bool trim_sent, retire_sent; /* commands of this round's second pipeline */
} dsale_t;

struct sk_drain {
    sk_drain_config_t cfg;
    sk_rcluster_t *map;
    bool map_ok; /* the topology was read */
    bool map_stale; /* read it again at the next chance */
    uint64_t next_map;
    sk_db_t *db;
    bool migrated;
    dsale_t *sales;
    size_t n_sales, cap_sales;
    sk_drain_batch_t batch;
    uint64_t redis_backoff, db_backoff, redis_retry_at, db_retry_at;
    uint64_t next_discover, next_stats, next_claim, last_warn;
    bool ready_sent;
    bool redis_ok; /* the last round reached every primary */
    /* A primary that failed is left alone (its sales wait) until node_retry_at; the
     * others go on meanwhile. */
    uint64_t node_retry_at[NODES], node_backoff[NODES];
    /* A primary whose replicas did not have the entries read from it (WAIT) is not read
     * again until replica_hold_until: its sales' entries stay pending. Only the reads of
     * its sales' streams wait; discovery, acknowledgements, trimming and counts go on
     * with it, so the other primaries' sales are not held back with its own. */
    uint64_t replica_hold_until[NODES], replica_backoff[NODES];
    sk_drain_metrics_t *metrics; /* NULL: none */

    /* statistics */
    uint64_t orders, entries, batches, redis_errors, db_errors, trimmed, retired, replica_waits;
    uint64_t transitions, events; /* orders' transitions (merged per order and batch) and trail rows written */
    double last_batch_s;
    double per_entry; /* orders per stream entry, a moving average (sizes the reads) */
    size_t count_cursor; /* where the next round of database counts starts */
};

/* How many stream entries to ask for so that `orders` orders come: entries hold from
 * one order to SK_REDIS_ENTRY_MAX (a node's batch), so the count follows what the
 * entries read so far held. */
static unsigned long long entries_for(const sk_drain_t *d, size_t orders)
{
    double e = (double)orders / (d->per_entry > 1 ? d->per_entry : 1);
    return e < 1 ? 1 : (unsigned long long)e;
}

/* Learns the orders per entry from a read that added `orders` orders from `entries`. */
static void learn_entries(sk_drain_t *d, size_t orders, size_t entries)
{
    if (entries == 0)
        return;
    double x = (double)orders / (double)entries;
    d->per_entry = d->per_entry > 0 ? 0.7 * d->per_entry + 0.3 * x : x;
}

static uint64_t now_ms(void)
{
    return sk_mono_ns() / 1000000u;
}

bool sk_drain_stream_finished(int64_t sold, int64_t held, int64_t stock, int64_t ends_at, int64_t redis_now_ms)
{
    /* Reservations pending still make transitions (payments, cancels, expiries). */
    if (held != 0)
        return false;
    return sold >= stock || (redis_now_ms >= 0 && redis_now_ms > ends_at + SK_DRAIN_FINISHED_AFTER_MS);
}

int sk_drain_id_parse(const char *s, size_t len, sk_drain_id_t *id)
{
    const char *dash = memchr(s, '-', len);
    int64_t ms, seq = 0;
    if (sk_parse_i64(s, dash ? (size_t)(dash - s) : len, 0, INT64_MAX, &ms) < 0 ||
        (dash && sk_parse_i64(dash + 1, len - (size_t)(dash + 1 - s), 0, INT64_MAX, &seq) < 0))
        return -EINVAL;
    id->ms = (uint64_t)ms;
    id->seq = (uint64_t)seq;
    return 0;
}

static int id_cmp(sk_drain_id_t a, sk_drain_id_t b)
{
    if (a.ms != b.ms)
        return a.ms < b.ms ? -1 : 1;
    return a.seq < b.seq ? -1 : a.seq > b.seq;
}

bool sk_drain_trim_point(const sk_drain_group_need_t *groups, size_t n, sk_drain_id_t *minid)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        sk_drain_id_t need;
        if (groups[i].pending > 0) {
            need = groups[i].min_pending;
        } else {
            /* Everything up to the last delivered entry is acknowledged: keep what follows. */
            need = groups[i].last_delivered;
            if (need.seq == UINT64_MAX) {
                need.ms++;
                need.seq = 0;
            } else {
                need.seq++;
            }
        }
        if (i == 0 || id_cmp(need, *minid) < 0)
            *minid = need;
    }
    return true;
}

bool sk_drain_retire_due(int64_t ends_at, int64_t redis_now_ms, int64_t lag, int64_t pending,
                         const sk_db_counts_t *redis, const sk_db_counts_t *db)
{
    return redis_now_ms > ends_at && lag == 0 && pending == 0 && redis->orders >= 0 && redis->sold >= 0 &&
           redis->held == 0 && db->orders == redis->orders && db->sold == redis->sold && db->held == 0;
}

/* ---- Redis ------------------------------------------------------------------------------ */

static void warn_limited(sk_drain_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn_limited(sk_drain_t *d, const char *fmt, ...)
{
    /* Outages repeat every round: one line per 10 s is enough. */
    uint64_t now = now_ms();
    if (d->last_warn && now - d->last_warn < 10000)
        return;
    d->last_warn = now;
    char line[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    sk_warn("drain: %s", line);
}

/* A Redis error: what was read but not written is pending again and is read first;
 * the map is read again (a failover?), with a back-off. */
static void redis_fail(sk_drain_t *d, const char *why)
{
    warn_limited(d, "redis: %s; retrying (the orders wait in the streams)", why);
    d->redis_errors++;
    d->redis_ok = false;
    d->map_stale = true;
    d->redis_backoff = d->redis_backoff ? SK_MIN(d->redis_backoff * 2, (uint64_t)BACKOFF_MAX_MS) : 100;
    d->redis_retry_at = now_ms() + d->redis_backoff;
    for (size_t i = 0; i < d->n_sales; i++) {
        d->sales[i].pending_phase = true;
        snprintf(d->sales[i].cursor, sizeof(d->sales[i].cursor), "0-0");
        d->sales[i].group_ready = false;
    }
    d->next_discover = 0;
}

/* A primary failed (its connection broke, or could not be made): only its sales are
 * held back. What was read of them but not written is pending again and read first;
 * the primary is tried again after a back-off, and the map is read again (a failover?).
 * The other primaries' sales go on meanwhile. */
static void node_fail_why(sk_drain_t *d, int node, const char *why)
{
    warn_limited(d, "redis: %s; retrying (the orders of its sales wait in their streams)", why);
    d->redis_errors++;
    d->redis_ok = false;
    d->map_stale = true;
    sk_rcluster_sync_drop(d->map, node);
    d->node_backoff[node] = d->node_backoff[node] ? SK_MIN(d->node_backoff[node] * 2, (uint64_t)BACKOFF_MAX_MS) : 100;
    d->node_retry_at[node] = now_ms() + d->node_backoff[node];
    for (size_t i = 0; i < d->n_sales; i++) {
        dsale_t *s = &d->sales[i];
        int owner = sk_rcluster_owner(d->map, s->slot);
        if (owner != node && owner >= 0)
            continue;
        s->pending_phase = true;
        snprintf(s->cursor, sizeof(s->cursor), "0-0");
        s->group_ready = false;
    }
    d->next_discover = 0;
}

static void node_fail(sk_drain_t *d, int node)
{
    char name[300], why[512];
    redisContext *c = d->map->sync[node];
    snprintf(why, sizeof(why), "%s: %s", sk_rcluster_name(d->map, node, name, sizeof(name)),
             c && c->errstr[0] ? c->errstr : "I/O error");
    node_fail_why(d, node, why);
}

/* Whether a primary is being left alone after a failure. */
static bool node_resting(const sk_drain_t *d, int node)
{
    return node >= 0 && now_ms() < d->node_retry_at[node];
}

/* Whether the entries of a primary's sales are not read now: their last read was not on
 * enough replicas. */
static bool replica_held(const sk_drain_t *d, int node)
{
    return node >= 0 && now_ms() < d->replica_hold_until[node];
}

static bool sale_replica_held(const sk_drain_t *d, const dsale_t *s)
{
    return replica_held(d, sk_rcluster_owner(d->map, s->slot));
}

static bool redis_ensure(sk_drain_t *d)
{
    uint64_t now = now_ms();
    if (now < d->redis_retry_at)
        return false; /* backing off after an error */
    if (d->map_ok && !d->map_stale && now < d->next_map)
        return true;
    char err[512];
    bool was_ok = d->map_ok;
    if (sk_rcluster_discover(d->map, TIMEOUT_MS, err, sizeof(err)) < 0) {
        if (!was_ok)
            warn_limited(d, "%s", err);
        d->redis_errors++;
        d->redis_backoff = d->redis_backoff ? SK_MIN(d->redis_backoff * 2, (uint64_t)BACKOFF_MAX_MS) : 100;
        d->redis_retry_at = now + d->redis_backoff;
        return false;
    }
    if (!d->map_ok || d->map_stale)
        sk_debug("drain: redis topology read (%s)", d->map->enabled ? "a Redis Cluster" : "one Redis");
    d->map_ok = true;
    d->map_stale = false;
    d->next_map = now + (d->map->enabled ? MAP_MS : 3600000);
    return true;
}

/* A routed command; NULL after a Redis error (counted; the sales of the primary that
 * failed are re-read) or while the slot's primary is left alone after one. */
static redisReply *rcmd(sk_drain_t *d, unsigned slot, const char *fmt, ...)
{
    int node = sk_rcluster_owner(d->map, slot);
    if (node_resting(d, node))
        return NULL;
    char err[512];
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = sk_rcluster_vcommand(d->map, slot, TIMEOUT_MS, err, sizeof(err), fmt, ap);
    va_end(ap);
    if (!r) {
        if (node >= 0 && d->map->enabled)
            node_fail_why(d, node, err);
        else
            redis_fail(d, err);
    }
    return r;
}

/* Whether a reply is a cluster redirection (the map is read again then). */
static bool redirected(sk_drain_t *d, const redisReply *r)
{
    unsigned slot;
    sk_rcluster_node_t to;
    if (sk_rcluster_redirect(r, &slot, &to) == SK_RCLUSTER_REPLY)
        return false;
    d->map_stale = true;
    return true;
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

/* Whether a sale hash (HGETALL reply) carries retired_at. */
static bool hash_retired(const redisReply *h)
{
    for (size_t i = 0; h->type == REDIS_REPLY_ARRAY && i + 1 < h->elements; i += 2)
        if (h->element[i]->type == REDIS_REPLY_STRING && strcmp(h->element[i]->str, "retired_at") == 0)
            return true;
    return false;
}

static void discover(sk_drain_t *d)
{
    redisReply *ids = rcmd(d, sk_rcluster_slot(SK_REDIS_SALES_KEY, sizeof(SK_REDIS_SALES_KEY) - 1), "ZRANGE %s 0 -1",
                           SK_REDIS_SALES_KEY);
    if (!ids)
        return;
    if (ids->type != REDIS_REPLY_ARRAY) {
        redirected(d, ids);
        freeReplyObject(ids);
        return;
    }
    for (size_t i = 0; i < ids->elements && d->map_ok; i++) {
        const redisReply *id = ids->element[i];
        if (id->type != REDIS_REPLY_STRING || !sk_valid_sale_id(id->str, id->len))
            continue;
        dsale_t *s = find_sale(d, id->str, id->len);
        if (s && ((s->group_ready && s->in_db) || s->gone))
            continue;
        unsigned slot = sk_rcluster_sale_slot(id->str, id->len);
        char key[SK_REDIS_KEY_MAX + 1];
        sk_redis_key(key, id->str, id->len, "sale");
        redisReply *h = rcmd(d, slot, "HGETALL %s", key);
        if (!h) {
            if (!d->map_ok)
                break;
            continue; /* its primary failed: the others' sales go on */
        }
        sk_redis_sale_t rs;
        if (redirected(d, h) || sk_redis_sale_parse(h, &rs) < 0) {
            freeReplyObject(h); /* indexed but not (yet) created, or malformed */
            continue;
        }
        bool retired = hash_retired(h);
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
            sk_redis_key(s->sale_key, rs.id, rs.id_len, "sale");
            sk_redis_key(s->holders_key, rs.id, rs.id_len, "holders");
            s->slot = slot;
            s->stock = rs.stock;
            s->ends_at = rs.ends_at;
            s->active = true;
            s->pending_phase = true;
            s->redis = (sk_db_counts_t){.orders = rs.seq, .sold = rs.sold, .held = rs.held};
            s->db = (sk_db_counts_t){-1, -1, -1};
            snprintf(s->cursor, sizeof(s->cursor), "0-0");
            s->retired = retired;
            sk_info("drain: following the orders of sale '%s'%s", s->id, retired ? " (retired)" : "");
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
            /* From the very first entry ("0"): the group may be created after orders.
             * A retired sale's stream is not made again once it expired. */
            redisReply *g = s->retired ? rcmd(d, slot, "XGROUP CREATE %s %s 0", s->key, GROUP)
                                       : rcmd(d, slot, "XGROUP CREATE %s %s 0 MKSTREAM", s->key, GROUP);
            if (!g) {
                if (!d->map_ok)
                    break;
                continue;
            }
            if (g->type == REDIS_REPLY_STATUS || (g->type == REDIS_REPLY_ERROR && strncmp(g->str, "BUSYGROUP", 9) == 0))
                s->group_ready = true;
            else if (s->retired && g->type == REDIS_REPLY_ERROR && strstr(g->str, "requires the key to exist"))
                s->gone = true;
            else if (!redirected(d, g))
                sk_warn("drain: cannot create the consumer group of %s: %s", s->key, g->str ? g->str : "?");
            freeReplyObject(g);
        }
    }
    freeReplyObject(ids);
}

/* ---- per-primary pipelines ------------------------------------------------------------------ */

/* The sales chosen by pick, by the primary serving them: lists[node] (malloc'ed, NULL
 * when empty; counts[node] long). Sales whose slot nobody serves are skipped (and the
 * map is read again). */
static void by_node(sk_drain_t *d, bool (*pick)(const dsale_t *), dsale_t **lists[NODES], size_t counts[NODES])
{
    memset(counts, 0, NODES * sizeof(*counts));
    memset(lists, 0, NODES * sizeof(*lists));
    for (size_t i = 0; i < d->n_sales; i++) {
        dsale_t *s = &d->sales[i];
        if (!pick(s))
            continue;
        int node = sk_rcluster_owner(d->map, s->slot);
        if (node < 0) {
            d->map_stale = true;
            continue;
        }
        if (!lists[node])
            lists[node] = sk_xmalloc(d->n_sales * sizeof(*lists[node]));
        lists[node][counts[node]++] = s;
    }
}

static void free_lists(dsale_t **lists[NODES])
{
    for (int n = 0; n < NODES; n++)
        free(lists[n]);
}

/* The node's synchronous connection, or NULL after counting the failure (or while the
 * node is left alone after one). */
static redisContext *node_conn(sk_drain_t *d, int node)
{
    if (node_resting(d, node))
        return NULL;
    char err[512];
    redisContext *c = sk_rcluster_sync(d->map, node, TIMEOUT_MS, err, sizeof(err));
    if (!c) {
        if (d->map->enabled)
            node_fail_why(d, node, err);
        else
            redis_fail(d, err);
    }
    return c;
}

/* ---- reading ----------------------------------------------------------------------------------- */

/* One stream's entries of an XREADGROUP reply ([[key, [entry...]]] or nil) into the batch. */
static void take_reply(sk_drain_t *d, dsale_t *s, const redisReply *r, bool pending_phase)
{
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *kv = r->element[i];
        if (kv->type != REDIS_REPLY_ARRAY || kv->elements != 2 || kv->element[0]->type != REDIS_REPLY_STRING ||
            kv->element[1]->type != REDIS_REPLY_ARRAY || strcmp(kv->element[0]->str, s->key) != 0)
            continue;
        if (pending_phase && kv->element[1]->elements == 0)
            s->pending_phase = false; /* our pending list of this stream is read through */
        size_t added = sk_drain_batch_add(&d->batch, s->id, s->key, kv->element[1], pending_phase ? s->cursor : NULL,
                                          sizeof(s->cursor));
        learn_entries(d, added, kv->element[1]->elements);
    }
}

/* Sales whose entries were left pending (a transition whose order was not in the
 * database yet) read their pending entries again once it is time. */
static void reread_due(sk_drain_t *d, uint64_t now)
{
    for (size_t i = 0; i < d->n_sales; i++) {
        dsale_t *s = &d->sales[i];
        if (s->reread_at && now >= s->reread_at) {
            s->reread_at = 0;
            s->pending_phase = true;
            snprintf(s->cursor, sizeof(s->cursor), "0-0");
        }
    }
}

static void read_pending(sk_drain_t *d)
{
    for (size_t i = 0; i < d->n_sales && d->map_ok && d->batch.n_entries == 0; i++) {
        dsale_t *s = &d->sales[i];
        if (!s->pending_phase || !s->group_ready || s->gone || sale_replica_held(d, s))
            continue;
        redisReply *r = rcmd(d, s->slot, "XREADGROUP GROUP %s %s COUNT %llu STREAMS %s %s", GROUP, d->cfg.consumer,
                             entries_for(d, d->cfg.batch_max), s->key, s->cursor);
        if (!r)
            continue; /* its primary failed: the other sales go on */
        if (r->type == REDIS_REPLY_ERROR) {
            /* NOGROUP: the stream was deleted or Redis lost it; discover() re-creates it. */
            if (!redirected(d, r))
                s->group_ready = false;
            s->pending_phase = !s->group_ready ? false : s->pending_phase;
        } else if (r->type == REDIS_REPLY_NIL) {
            s->pending_phase = false;
        } else {
            take_reply(d, s, r, true);
        }
        freeReplyObject(r);
    }
}

static void claim_orphans(sk_drain_t *d)
{
    /* Entries delivered to a consumer that has gone away (another drain's name). */
    for (size_t i = 0; i < d->n_sales && d->map_ok && sk_drain_batch_size(&d->batch) < d->cfg.batch_max; i++) {
        dsale_t *s = &d->sales[i];
        if (!s->group_ready || s->pending == 0 || s->gone || sale_replica_held(d, s))
            continue;
        redisReply *r = rcmd(d, s->slot, "XAUTOCLAIM %s %s %s %d 0-0 COUNT %llu", s->key, GROUP, d->cfg.consumer,
                             CLAIM_IDLE_MS, entries_for(d, d->cfg.batch_max - sk_drain_batch_size(&d->batch)));
        if (!r)
            continue;
        if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2 && r->element[1]->type == REDIS_REPLY_ARRAY)
            sk_drain_batch_add(&d->batch, s->id, s->key, r->element[1], NULL, 0);
        freeReplyObject(r);
    }
}

static bool pick_readable(const dsale_t *s)
{
    return s->group_ready && s->active && !s->pending_phase && !s->gone;
}

/* New entries of every active stream: one XREADGROUP per stream (a cluster refuses keys
 * of several slots in one command), pipelined per primary. */
static void read_new(sk_drain_t *d)
{
    dsale_t **lists[NODES];
    size_t counts[NODES], total = 0;
    by_node(d, pick_readable, lists, counts);
    for (int n = 0; n < NODES; n++) {
        if (replica_held(d, n))
            counts[n] = 0; /* (its sales are in their pending phase anyway) */
        total += counts[n];
    }
    if (total == 0) {
        free_lists(lists);
        usleep(IDLE_MS * 1000);
        return;
    }
    /* COUNT is per stream and counts entries, each a node's batch of up to
     * SK_REDIS_ENTRY_MAX orders: share the batch among the streams, at the orders per
     * entry seen so far (a read may overshoot; the batch grows). */
    unsigned long long count = entries_for(d, d->cfg.batch_max / total);
    for (int n = 0; n < NODES; n++) {
        if (!counts[n])
            continue;
        redisContext *c = node_conn(d, n);
        if (!c)
            continue; /* its sales wait; the other primaries' are read */
        for (size_t k = 0; k < counts[n]; k++)
            redisAppendCommand(c, "XREADGROUP GROUP %s %s COUNT %llu STREAMS %s >", GROUP, d->cfg.consumer, count,
                               lists[n][k]->key);
        for (size_t k = 0; k < counts[n]; k++) {
            redisReply *r = NULL;
            if (redisGetReply(c, (void **)&r) != REDIS_OK) {
                node_fail(d, n);
                break;
            }
            dsale_t *s = lists[n][k];
            if (r->type == REDIS_REPLY_ERROR) {
                /* A stream or group vanished (Redis lost its data) or moved: find them again. */
                if (!redirected(d, r)) {
                    sk_warn("drain: XREADGROUP %s failed: %s", s->key, r->str);
                    s->group_ready = false;
                    d->next_discover = 0;
                }
            } else {
                take_reply(d, s, r, false);
            }
            freeReplyObject(r);
        }
    }
    free_lists(lists);
    if (d->batch.n_entries == 0)
        usleep(IDLE_MS * 1000);
}

/* ---- replicas, writing and acknowledging ------------------------------------------------- */

/* The primaries whose entries are left out of this batch (drop_entries). */
typedef struct {
    sk_drain_t *d;
    bool node[NODES];
} held_nodes_t;

static bool held_key(void *arg, const char *key)
{
    held_nodes_t *h = arg;
    int node = sk_rcluster_owner(h->d->map, sk_rcluster_slot(key, strlen(key)));
    return node < 0 || h->node[node];
}

/* Whether an XCLAIM ... JUSTID reply says it claimed entry id (then it was a write). */
static bool claimed(const redisReply *claim, const char *id)
{
    return claim && claim->type == REDIS_REPLY_ARRAY && claim->elements >= 1 &&
           claim->element[0]->type == REDIS_REPLY_STRING && strcmp(claim->element[0]->str, id) == 0;
}

bool sk_drain_replicas_confirm(const redisReply *claim, const redisReply *wait, const char *id, int need)
{
    return claimed(claim, id) && wait && wait->type == REDIS_REPLY_INTEGER && wait->integer >= need;
}

/* With replicas_ack: leaves out of the batch the entries of every primary that does not
 * have them on enough replicas yet (they stay pending and are read again); the other
 * primaries' entries go on. WAIT counts from the last write of this connection, and
 * reading entries is not always one (a re-read of pending entries is not), so each
 * primary first gets a harmless write that follows the entries: an XCLAIM of one of our
 * own entries to ourselves (sk_drain_replicas_confirm). The entries are asked about on
 * the primary they were read from: when the map changed since the reads began
 * (map_version; a failover, a moved slot), an entry's slot may now be served by a
 * primary that never had it, whose WAIT says nothing about it, so the whole batch is
 * left pending and read again from the primaries serving it now. */
static void replicas_have(sk_drain_t *d, uint64_t map_version)
{
    if (d->cfg.replicas_ack <= 0 || d->batch.n_entries == 0)
        return;
    const sk_drain_entry_t *first[NODES] = {NULL};
    held_nodes_t held = {.d = d};
    bool any = false, behind[NODES] = {false}; /* behind: WAIT counted too few replicas */
    for (size_t i = 0; i < d->batch.n_entries; i++) {
        const sk_drain_entry_t *x = &d->batch.entries[i];
        int node = sk_rcluster_owner(d->map, sk_rcluster_slot(x->key, strlen(x->key)));
        if (node >= 0 && !first[node])
            first[node] = x;
        any = any || node < 0;
    }
    bool moved = d->map->version != map_version;
    for (int n = 0; n < NODES; n++) {
        if (!first[n])
            continue;
        if (moved) {
            held.node[n] = any = true; /* (no back-off: read again at once, where they are now) */
            continue;
        }
        redisContext *c = node_conn(d, n);
        if (!c) {
            held.node[n] = any = true;
            continue;
        }
        redisAppendCommand(c, "XCLAIM %s %s %s 0 %s JUSTID", first[n]->key, GROUP, d->cfg.consumer, first[n]->id);
        redisAppendCommand(c, "WAIT %d %d", d->cfg.replicas_ack, d->cfg.replicas_timeout_ms);
        redisReply *claim = NULL, *wait = NULL;
        if (redisGetReply(c, (void **)&claim) != REDIS_OK || redisGetReply(c, (void **)&wait) != REDIS_OK) {
            freeReplyObject(claim);
            node_fail(d, n);
            held.node[n] = any = true;
            continue;
        }
        if (sk_drain_replicas_confirm(claim, wait, first[n]->id, d->cfg.replicas_ack)) {
            d->replica_backoff[n] = 0;
        } else {
            char name[300];
            d->replica_waits++;
            if (claimed(claim, first[n]->id))
                warn_limited(d,
                             "redis at %s: %lld of %d replicas have the entries read; they are written once enough do",
                             sk_rcluster_name(d->map, n, name, sizeof(name)),
                             wait && wait->type == REDIS_REPLY_INTEGER ? wait->integer : -1LL, d->cfg.replicas_ack);
            else
                warn_limited(d, "redis at %s: entry %s of %s could not be claimed (%s): its entries are read again",
                             sk_rcluster_name(d->map, n, name, sizeof(name)), first[n]->id, first[n]->key,
                             claim && claim->type == REDIS_REPLY_ERROR ? claim->str : "not pending");
            held.node[n] = behind[n] = any = true;
        }
        freeReplyObject(claim);
        freeReplyObject(wait);
    }
    if (!any)
        return;
    /* Not on enough replicas yet: left pending, read again from the start of each
     * held sale's pending list — after a pause for that primary, growing while its
     * replicas stay behind, so that re-reading its entries (and waiting for its WAIT)
     * does not keep the other primaries' sales from being read. The pause holds back
     * only the reads of its sales: a failed connection's rest (node_retry_at) would
     * refuse every command to it, discovery's and the acknowledgements' too. */
    uint64_t now = now_ms();
    for (int n = 0; n < NODES; n++) {
        if (!behind[n])
            continue; /* (a failed connection has its own rest) */
        d->replica_backoff[n] = d->replica_backoff[n]
                                    ? SK_MIN(d->replica_backoff[n] * 2, (uint64_t)REPLICA_RETRY_MAX_MS)
                                    : REPLICA_RETRY_MS;
        d->replica_hold_until[n] = now + d->replica_backoff[n];
    }
    for (size_t i = 0; i < d->n_sales; i++) {
        dsale_t *s = &d->sales[i];
        if (held_key(&held, s->key)) {
            s->pending_phase = true;
            snprintf(s->cursor, sizeof(s->cursor), "0-0");
        }
    }
    sk_drain_batch_drop(&d->batch, held_key, &held);
}

/* After a batch went in: the final orders of each sale it inserted, when that is exact
 * (every order of the batch inserted, all of them final at once, no transition); else
 * the sale is counted again. */
static void note_written(sk_drain_t *d, int64_t inserted)
{
    const sk_drain_batch_t *b = &d->batch;
    bool exact = inserted == (int64_t)b->n;
    if (!exact)
        sk_info("drain: %lld of %zu orders were in %s already (entries delivered again), the rest inserted",
                (long long)((int64_t)b->n - inserted), b->n, d->cfg.db->title);
    for (size_t i = 0; i < b->n_moves; i++) {
        dsale_t *s = find_sale(d, b->moves[i].sale_id, strlen(b->moves[i].sale_id));
        if (s)
            s->count_dirty = true;
    }
    for (size_t i = 0; i < b->n;) {
        const char *sale = b->rows[i].sale_id;
        dsale_t *s = find_sale(d, sale, strlen(sale));
        for (; i < b->n && b->rows[i].sale_id == sale; i++) {
            if (!s)
                continue;
            if (!exact || b->rows[i].pay_by > 0) {
                s->count_dirty = true;
            } else {
                s->added_orders++;
                s->added_units += b->rows[i].quantity;
            }
        }
    }
}

static bool write_batch(sk_drain_t *d)
{
    sk_drain_batch_t *b = &d->batch;
    size_t n_trans = 0;
    sk_db_order_t *rows = sk_drain_batch_orders(b);
    sk_db_transition_t *trans = sk_drain_batch_transitions(b, &n_trans);
    sk_db_event_t *events = sk_drain_batch_events(b);
    sk_db_batch_t db = {rows, b->n, trans, n_trans, events, b->n_events};
    char err[512];
    uint64_t t0 = sk_mono_ns();
    int64_t n = sk_db_put_batch(d->db, &db, err, sizeof(err));
    size_t kept = n >= 0 ? sk_drain_batch_unfound(b, trans, n_trans) : 0;
    free(rows);
    free(trans);
    free(events);
    if (n < 0) {
        db_drop(d, err);
        return false;
    }
    if (kept > 0) {
        /* A transition of an order the database does not have yet: with several
         * drains, its order may be in another one's batch. Its entry stays pending and
         * is read again in a second; the rest of the batch is in. */
        warn_limited(d, "%zu entries hold transitions of orders not in %s yet; they stay pending and are read again",
                     kept, d->cfg.db->title);
        uint64_t again = now_ms() + 1000;
        for (size_t i = 0; i < b->n_entries; i++) {
            dsale_t *s = b->entries[i].ack ? NULL : find_sale(d, b->entries[i].sale_id, strlen(b->entries[i].sale_id));
            if (s && !s->reread_at)
                s->reread_at = again;
        }
    }
    d->last_batch_s = (double)(sk_mono_ns() - t0) / 1e9;
    note_written(d, n);
    d->orders += (uint64_t)n;
    d->entries += b->n_entries;
    d->transitions += n_trans;
    d->events += b->n_events;
    d->batches++;
    sk_debug("drain: wrote %zu orders (%lld new), %zu transitions, %zu trail entries in %.1f ms", b->n, (long long)n,
             b->n_moves, b->n_events, d->last_batch_s * 1e3);
    return true;
}

typedef struct {
    sk_drain_t *d;
    size_t sent[NODES];
} acks_t;

static void append_ack(void *arg, int argc, const char **argv, const size_t *lens)
{
    acks_t *a = arg;
    int node = sk_rcluster_owner(a->d->map, sk_rcluster_slot(argv[1], lens[1]));
    if (node < 0)
        return; /* read again later, inserted once */
    redisContext *c = a->d->map->sync[node] ? a->d->map->sync[node] : node_conn(a->d, node);
    if (!c)
        return;
    redisAppendCommandArgv(c, argc, argv, lens);
    a->sent[node]++;
}

static void ack_batch(sk_drain_t *d)
{
    /* One XACK per stream, pipelined per primary. */
    acks_t a = {.d = d};
    sk_drain_batch_acks(&d->batch, GROUP, append_ack, &a);
    for (int n = 0; n < NODES; n++) {
        for (size_t k = 0; k < a.sent[n]; k++) {
            redisReply *r = NULL;
            if (!d->map->sync[n] || redisGetReply(d->map->sync[n], (void **)&r) != REDIS_OK) {
                /* Written but not acknowledged: read again later, inserted once. */
                node_fail(d, n);
                break;
            }
            redirected(d, r);
            freeReplyObject(r);
        }
    }
}

/* ---- statistics, trimming, reconciliation, retirement ---------------------------------------- */

static const redisReply *info_value(const redisReply *g, const char *name)
{
    for (size_t i = 0; i + 1 < g->elements; i += 2)
        if (g->element[i]->type == REDIS_REPLY_STRING && strcmp(g->element[i]->str, name) == 0)
            return g->element[i + 1];
    return NULL;
}

static int64_t info_int(const redisReply *g, const char *name)
{
    const redisReply *v = info_value(g, name);
    return v && v->type == REDIS_REPLY_INTEGER ? v->integer : -1;
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

/* Reads XINFO GROUPS: our group's lag and pending count, and what every group still
 * needs (*n_needs of them; false when another group has pending entries whose oldest
 * is not known here, so the stream is not trimmed this round). */
static bool groups_info(dsale_t *s, const redisReply *g, const redisReply *xp, sk_drain_group_need_t *needs, size_t cap,
                        size_t *n_needs)
{
    *n_needs = 0;
    /* Every group counts: with more than fit here, nothing is trimmed. */
    bool trim_ok = g->elements <= cap;
    for (size_t k = 0; k < g->elements && *n_needs < cap; k++) {
        const redisReply *one = g->element[k];
        if (one->type != REDIS_REPLY_ARRAY)
            continue;
        const redisReply *name = info_value(one, "name"), *last = info_value(one, "last-delivered-id");
        if (!name || name->type != REDIS_REPLY_STRING || !last || last->type != REDIS_REPLY_STRING)
            continue;
        sk_drain_group_need_t *nd = &needs[*n_needs];
        nd->pending = info_int(one, "pending");
        if (sk_drain_id_parse(last->str, last->len, &nd->last_delivered) < 0 || nd->pending < 0) {
            trim_ok = false;
            continue;
        }
        if (strcmp(name->str, GROUP) == 0) {
            s->pending = nd->pending;
            int64_t lag = info_int(one, "lag");
            int64_t read = info_int(one, "entries-read");
            /* "lag" is what the group has not been given yet (Redis 7); when Redis cannot
             * tell, length minus entries read (the stream is trimmed from the head only). */
            if (lag < 0)
                lag = read >= 0 ? SK_MAX(s->length - read, (int64_t)0) : s->length;
            s->lag = lag;
            if (nd->pending > 0) {
                /* XPENDING's summary: [count, smallest, greatest, consumers]. */
                if (!xp || xp->type != REDIS_REPLY_ARRAY || xp->elements < 2 ||
                    xp->element[1]->type != REDIS_REPLY_STRING ||
                    sk_drain_id_parse(xp->element[1]->str, xp->element[1]->len, &nd->min_pending) < 0) {
                    trim_ok = false;
                    continue;
                }
            }
        } else if (nd->pending > 0) {
            trim_ok = false; /* someone else's unacknowledged entries: keep everything */
            continue;
        }
        (*n_needs)++;
    }
    return trim_ok;
}

static bool pick_watched(const dsale_t *s)
{
    return s->group_ready && !s->gone;
}

/* Counts in the database the sales that need it, before Redis's counts are read (so
 * that a difference that remains is real: the drain only writes what Redis has). A
 * sale is counted when it is drained and the rows inserted since its last count are
 * not known exactly, or it changed, or long ago; never more often than the count's own
 * cost allows (a sale of ten million orders takes a while to count), and counting takes
 * at most COUNT_BUDGET_MS a second, taking the sales in turn: the database's time is
 * for the orders. */
static void count_in_db(sk_drain_t *d)
{
    if (!d->db || !sk_db_ok(d->db) || d->n_sales == 0)
        return;
    uint64_t now = now_ms(), start = sk_mono_ns();
    size_t base = d->count_cursor;
    for (size_t k = 0; k < d->n_sales && sk_mono_ns() - start < COUNT_BUDGET_MS * 1000000ull; k++) {
        dsale_t *s = &d->sales[(base + k) % d->n_sales];
        if (s->gone || !s->in_db || now < s->count_after)
            continue;
        bool drained = s->lag == 0 && s->pending == 0;
        /* A sale that only waits for a fresh count to be retired gets one. */
        bool retire_next = d->cfg.retention_ms > 0 && !s->retired && s->over;
        bool due = s->db.orders < 0 ||
                   (drained && (s->count_dirty || s->added_orders > 0 || s->diff != 0 || retire_next)) ||
                   now >= s->count_after + COUNT_IDLE_MS;
        if (!due)
            continue;
        char err[512];
        uint64_t t0 = sk_mono_ns();
        sk_db_counts_t c;
        int rc = sk_db_count(d->db, s->id, &c, err, sizeof(err));
        if (rc == -ENOSYS)
            return; /* this database does not count: no reconciliation */
        if (rc < 0) {
            if (!sk_db_ok(d->db))
                db_drop(d, err);
            return;
        }
        uint64_t cost_ms = (sk_mono_ns() - t0) / 1000000u;
        s->db = c;
        s->added_orders = s->added_units = 0;
        s->count_dirty = false;
        s->count_fresh = true;
        s->count_after = now + SK_MAX((uint64_t)COUNT_MIN_MS, cost_ms * COUNT_COST_FACTOR);
        d->count_cursor = (base + k + 1) % d->n_sales;
    }
}

/* Reads every watched stream's statistics and its sale's counters, one pipeline per
 * primary; then, in a second pipeline, trims what every group acknowledged and retires
 * what is over, drained and reconciled; decides which streams are still read for new
 * entries. */
static bool update_node(sk_drain_t *d, int node, dsale_t **list, size_t count)
{
    redisContext *c = node_conn(d, node);
    if (!c)
        return false;
    /* Whether a sale's window is over is decided by the primary's clock, as the
     * purchase script decides it: a drain host whose clock runs ahead must not stop
     * reading a stream that still gets orders. */
    redisAppendCommand(c, "TIME");
    for (size_t k = 0; k < count; k++) {
        dsale_t *s = list[k];
        redisAppendCommand(c, "XINFO GROUPS %s", s->key);
        redisAppendCommand(c, "XLEN %s", s->key);
        redisAppendCommand(c, "XPENDING %s %s", s->key, GROUP);
        redisAppendCommand(c, "HMGET %s sold held seq retired_at", s->sale_key);
    }
    size_t n_replies = 1 + 4 * count;
    redisReply **r = sk_xcalloc(n_replies, sizeof(*r));
    for (size_t j = 0; j < n_replies; j++) {
        if (redisGetReply(c, (void **)&r[j]) != REDIS_OK) {
            for (size_t i = 0; i < j; i++)
                freeReplyObject(r[i]);
            free(r);
            node_fail(d, node);
            return false;
        }
    }
    int64_t redis_now = redis_time_ms(r[0]);
    size_t n_cmds = 0;
    for (size_t k = 0; k < count; k++) {
        dsale_t *s = list[k];
        const redisReply *g = r[1 + 4 * k], *l = r[2 + 4 * k], *xp = r[3 + 4 * k], *h = r[4 + 4 * k];
        if (redirected(d, g))
            continue;
        if (h->type == REDIS_REPLY_ARRAY && h->elements == 4) {
            int64_t sold, held = 0, seq;
            if (sk_redis_reply_i64(h->element[0], 0, INT64_MAX, &sold) &&
                (h->element[1]->type == REDIS_REPLY_NIL || sk_redis_reply_i64(h->element[1], 0, INT64_MAX, &held))) {
                /* A record from before the lifecycle has no seq: one order a unit then. */
                if (!sk_redis_reply_i64(h->element[2], 0, INT64_MAX, &seq))
                    seq = sold;
                s->redis = (sk_db_counts_t){.orders = seq, .sold = sold, .held = held};
            }
            /* Read every round: a failover may have lost the mark (then the sale is
             * retired again), or another drain may have set it. */
            s->retired = h->element[3]->type == REDIS_REPLY_STRING;
        }
        /* Counted in the database first (or followed since), then read from Redis:
         * units sold in Redis against units of confirmed orders in the database. */
        s->diff_known = s->redis.sold >= 0 && s->db.sold >= 0 && !s->count_dirty;
        if (s->diff_known)
            s->diff = s->redis.sold - (s->db.sold + s->added_units);
        bool counted = s->count_fresh;
        s->count_fresh = false;
        s->over = redis_now >= 0 && redis_now > s->ends_at;
        if (g->type == REDIS_REPLY_ERROR) {
            if (s->retired && strstr(g->str, "no such key")) {
                s->gone = true; /* retired and expired: nothing left in Redis */
                sk_info("drain: sale '%s': its stream and holders expired", s->id);
            } else {
                s->group_ready = false; /* Redis lost it: discover() makes it again */
                d->next_discover = 0;
            }
            continue;
        }
        s->length = l->type == REDIS_REPLY_INTEGER ? l->integer : s->length;
        sk_drain_group_need_t needs[16];
        size_t n_needs = 0;
        bool trim_ok = g->type == REDIS_REPLY_ARRAY && groups_info(s, g, xp, needs, 16, &n_needs);
        sk_drain_id_t minid;
        if (trim_ok && sk_drain_trim_point(needs, n_needs, &minid) && id_cmp(minid, s->trimmed_to) > 0) {
            /* Exact (not "~"): every acknowledged entry goes, none other. */
            redisAppendCommand(c, "XTRIM %s MINID %llu-%llu", s->key, (unsigned long long)minid.ms,
                               (unsigned long long)minid.seq);
            s->trim_sent = true;
            s->trim_next = minid;
            n_cmds++;
        }
        if (!s->active) {
            /* An entry that arrives after the stream was finished makes it read again. */
            if (s->lag > 0 || s->pending > 0) {
                sk_info("drain: the stream of sale '%s' got entries after it was finished; reading it again", s->id);
                s->active = true;
            }
        } else {
            bool finished = sk_drain_stream_finished(s->redis.sold, s->redis.held, s->stock, s->ends_at, redis_now);
            s->active = !(finished && s->lag == 0 && s->pending == 0);
        }
        if (d->cfg.retention_ms > 0 && !s->retired && counted && s->diff_known && s->diff == 0 &&
            sk_drain_retire_due(s->ends_at, redis_now, s->lag, s->pending, &s->redis, &s->db)) {
            /* Over, drained and reconciled (orders, sold and held units; no reservation
             * pending): the bulk (holders, order records and stream) expires after the
             * retention; the sale record stays as the tombstone. */
            char okey[SK_REDIS_KEY_MAX + 1];
            sk_redis_key(okey, s->id, strlen(s->id), "o");
            redisAppendCommand(c, "PEXPIRE %s %lld", s->holders_key, (long long)d->cfg.retention_ms);
            redisAppendCommand(c, "PEXPIRE %s %lld", okey, (long long)d->cfg.retention_ms);
            redisAppendCommand(c, "PEXPIRE %s %lld", s->key, (long long)d->cfg.retention_ms);
            redisAppendCommand(c, "HSET %s retired_at %lld", s->sale_key, (long long)redis_now);
            s->retire_sent = true;
            n_cmds += 4;
        }
    }
    for (size_t j = 0; j < n_replies; j++)
        freeReplyObject(r[j]);
    free(r);
    /* The second pipeline's replies, in the order sent. */
    bool ok = true;
    for (size_t k = 0; k < count && ok; k++) {
        dsale_t *s = list[k];
        if (s->trim_sent) {
            s->trim_sent = false;
            redisReply *x = NULL;
            if (redisGetReply(c, (void **)&x) != REDIS_OK) {
                ok = false;
                break;
            }
            if (x->type == REDIS_REPLY_INTEGER) {
                d->trimmed += (uint64_t)x->integer;
                s->trimmed_to = s->trim_next;
                s->length -= x->integer;
            }
            freeReplyObject(x);
        }
        if (s->retire_sent) {
            s->retire_sent = false;
            bool good = true;
            for (int j = 0; j < 4; j++) {
                redisReply *x = NULL;
                if (redisGetReply(c, (void **)&x) != REDIS_OK) {
                    ok = false;
                    break;
                }
                good = good && x->type == REDIS_REPLY_INTEGER;
                freeReplyObject(x);
            }
            if (ok && good) {
                s->retired = true;
                d->retired++;
                sk_info("drain: sale '%s' retired (%lld orders in %s): its holders and stream expire in %lld s", s->id,
                        (long long)s->db.orders, d->cfg.db->title, (long long)(d->cfg.retention_ms / 1000));
            }
        }
    }
    if (!ok) {
        for (size_t k = 0; k < count; k++)
            list[k]->trim_sent = list[k]->retire_sent = false;
        node_fail(d, node);
    }
    return ok;
}

static void update_streams(sk_drain_t *d)
{
    dsale_t **lists[NODES];
    size_t counts[NODES];
    by_node(d, pick_watched, lists, counts);
    for (int n = 0; n < NODES; n++)
        if (counts[n] && update_node(d, n, lists[n], counts[n]))
            d->node_backoff[n] = 0;
    free_lists(lists);
}

static void publish_metrics(sk_drain_t *d)
{
    sk_drain_sale_stats_t *ss = sk_xmalloc((d->n_sales ? d->n_sales : 1) * sizeof(*ss));
    size_t n = 0;
    for (size_t i = 0; i < d->n_sales; i++) {
        const dsale_t *s = &d->sales[i];
        if (s->gone)
            continue; /* retired and expired: nothing to watch */
        ss[n++] = (sk_drain_sale_stats_t){.id = s->id,
                                          .lag = s->lag,
                                          .pending = s->pending,
                                          .length = s->length,
                                          .active = s->active,
                                          .diff = s->diff,
                                          .diff_known = s->diff_known,
                                          .retired = s->retired};
    }
    sk_drain_stats_t st = {
        .db_name = d->cfg.db->name,
        .sales = ss,
        .n_sales = n,
        .orders = d->orders,
        .transitions = d->transitions,
        .events = d->events,
        .entries = d->entries,
        .batches = d->batches,
        .malformed = d->batch.malformed,
        .redis_errors = d->redis_errors,
        .db_errors = d->db_errors,
        .trimmed = d->trimmed,
        .retired = d->retired,
        .replica_waits = d->replica_waits,
        .redis_up = d->map_ok && d->redis_ok,
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
    d->next_stats = now + 1000;
    if (d->map_ok && now >= d->redis_retry_at) {
        /* Safe while a batch is held: nothing here moves the sales (their keys are
         * borrowed by the rows), and nothing pending is trimmed or retired. */
        count_in_db(d);
        uint64_t errors = d->redis_errors;
        update_streams(d);
        if (d->redis_errors == errors) {
            d->redis_ok = true;
            d->redis_backoff = 0;
        }
    }
    if (d->metrics)
        publish_metrics(d);
}

/* ---- the drain --------------------------------------------------------------------------------- */

sk_drain_t *sk_drain_new(const sk_drain_config_t *cfg, char *err, size_t err_size)
{
    sk_rcluster_t *map = sk_rcluster_new(cfg->store, err, err_size);
    if (!map)
        return NULL;
    sk_drain_t *d = sk_xcalloc(1, sizeof(*d));
    d->cfg = *cfg;
    d->map = map;
    sk_drain_batch_init(&d->batch, d->cfg.batch_max);
    d->per_entry = ENTRY_GUESS;
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
    sk_rcluster_free(d->map);
    sk_db_close(d->db);
    free(d->sales);
    sk_drain_batch_free(&d->batch);
    free(d);
}

int sk_drain_run(sk_drain_t *d, const volatile sig_atomic_t *stop)
{
    sk_info("drain: started (group %s, consumer %s, batch %zu%s)", GROUP, d->cfg.consumer, d->cfg.batch_max,
            d->cfg.replicas_ack > 0 ? ", waiting for replicas" : "");
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
        if (!d->map_ok || !d->db)
            continue;
        sk_drain_batch_clear(&d->batch);
        uint64_t map_version = d->map->version; /* the reads' map (replicas_have) */
        reread_due(d, now);
        read_pending(d);
        if (d->batch.n_entries == 0 && now >= d->next_claim) {
            claim_orphans(d);
            d->next_claim = now + CLAIM_IDLE_MS / 4;
        }
        if (d->batch.n_entries == 0)
            read_new(d);
        if (d->batch.n_entries == 0)
            continue;
        replicas_have(d, map_version);
        if (d->batch.n_entries == 0) {
            usleep(IDLE_MS * 1000); /* what was read waits for replicas: not a busy loop */
            continue;
        }
        /* Hold the batch until it is in the database (or we are asked to stop, leaving
         * it pending in the stream for the next start). */
        while (!*stop) {
            if (db_ensure(d) && write_batch(d))
                break;
            housekeeping(d);
            usleep(50 * 1000);
        }
        if (*stop)
            break;
        ack_batch(d);
        /* The rows borrow the sales' ids and keys, and discover() may move the sales. */
        sk_drain_batch_clear(&d->batch);
    }
    sk_sd_notify("STOPPING=1");
    sk_info("drain: stopping");
    return 0;
}
