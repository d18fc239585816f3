/* The Redis backend: the ledger thread of a cluster node.
 *
 * The thread runs its own event loop with one asynchronous hiredis connection per Redis
 * primary (one Redis, or the primaries of a Redis Cluster: redis/cluster.h). Each loop
 * turn ends in the before-sleep hook, which takes what the workers queued, groups the
 * purchases by sale (a script may touch one sale's keys only, one hash slot) and sends
 * one EVALSHA of buy.lua per sale to the primary serving the sale's slot. Up to
 * INFLIGHT_PER_NODE batches per primary are out at once; a sale's scripts all go down
 * one connection and Redis runs them in the order sent, so arrival order holds, and
 * while one commits the next forms. Beyond the window, purchases wait in the engine's
 * queue, which answers 429 past its own bound: nothing here grows without limit. A
 * batch that waits only for primaries that stopped answering (STALL_MS without a read)
 * leaves the window, so that a hung primary holds back its own sales, not the others'.
 *
 * A reply is the durable decision (AOF appendfsync always: Redis fsyncs before it
 * answers). With --replicas-ack N a WAIT N follows every script on the same
 * connection and the answers wait for it too: a batch confirmed then is on N replicas
 * as well, so the failover that promotes one of them keeps it. Only then are the
 * answers posted to the workers, and only then does the node believe what the reply
 * says of the sale (counts, settings, a sell-out): a reply whose WAIT failed may tell of
 * writes a failover loses, and a node that took its sell-out for true would answer
 * sold_out while the promoted replica still has stock. The same holds for the poll's
 * script calls, and a write goes before every WAIT so that it covers what other
 * connections wrote too (close_rounds); plain reads of a sale record count for nothing
 * but a first display. When a primary is down, slow (no reply within
 * TIMEOUT_MS), answers an error, or WAIT counts too few replicas, every purchase whose
 * fate is not known is answered 503 with nothing confirmed here; if Redis did commit
 * it, the buyer finds the order with GET .../orders/{user}, which this backend answers
 * from Redis. After a failure the connection is dropped and re-made with a growing
 * back-off.
 *
 * Redis Cluster: MOVED updates the map, reads the topology again and sends the script
 * to the new owner; ASK sends ASKING and the script to the node importing the slot,
 * once; TRYAGAIN (the slot is half moved) and CLUSTERDOWN answer 503, since nothing ran.
 * The topology is read again every TOPOLOGY_MS, at once after a MOVED or a lost primary,
 * and with a back-off while a slot's owner is unreachable, so the replica promoted
 * after a failover is found within a few hundred milliseconds of its promotion.
 *
 * Not only purchases: every op that the sale's single writer decides (payments, cancels,
 * refunds, reads of an order or of a user's orders, the operator's controls) goes into
 * the same per-sale script call, in arrival order, so buy.lua decides them all in one
 * atomic step after expiring every reservation that is due. A script's reply also
 * carries the sale's counts (stock, held, sold: one consistent snapshot, published to
 * the workers with a version so an older reply never overwrites a newer one), its
 * settings when a control changed them (pv), the first pending deadline, and the users
 * of orders this node has not seen yet (when it keeps the sale's users).
 *
 * Besides the ops the thread keeps the node's sale cache current: it polls the sales
 * index (new sales of other nodes appear within SYNC_MS); every SYNC_TICKS it runs the
 * script without ops for the sales that are live, have pending reservations, or whose
 * users it keeps — which also expires what is due, so a reservation expires with no
 * traffic at all, after a restart too (everything is in Redis: nothing to replay). Once a
 * sale can take no more orders for now (Redis's clock passed its end, it was closed, or
 * it is sold out with no reservation pending) it loads the sale's users from its holders
 * hash into a user set and hands it to the engine, after which the node's workers answer
 * every non-holder of that sale themselves (a holder's purchase still goes to the
 * script, which checks its replay). Units that come back (a reservation pending, a
 * refund, added stock) make the node take the set back (sk_engine_withdraw_users) until
 * the sale is done again; meanwhile the script's replies add the users of new orders. */
#include "backend/redis.h"

#include <errno.h>
#include <hiredis/async.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/redis_loop.h"
#include "backend/redis_queue.h"
#include "redis/cluster.h"
#include "util/buf.h"
#include "util/texts.h"

#define INFLIGHT_PER_NODE 4 /* batches on the connections at once, per primary */
#define TIMEOUT_MS 3000 /* a connect or batch without an answer this long: 503 and reconnect */
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000
#define TICK_MS 100 /* deadlines are checked this often */
#define SYNC_TICKS 2 /* the sales index and sold counts are polled every 2 ticks */
#define TOPOLOGY_MS 1000 /* a Redis Cluster's map is read this often */
#define TOPOLOGY_RETRY_MS 100 /* ... and this soon when a slot's owner is unreachable (doubling) */
#define HOLDERS_CHUNK 10000 /* fields per HSCAN when loading holders */
#define REFRESH_MARGIN_MS 5000 /* sold counts are refreshed this long around the window */
#define MISS_SLOTS 256 /* remembered unknown sale ids (a flood of one bad id costs one look-up) */
#define MISS_MS 50 /* short: a sale made on another node a moment after a miss is found at the next look */
#define REPLICAS_TIMEOUT_MAX_MS 2000 /* WAIT must answer well within TIMEOUT_MS */
#define STALL_MS 200 /* a connection that read nothing this long while waiting holds no window */

_Static_assert(SK_BUY_CONFIRMED == 0 && SK_BUY_DUPLICATE == 1 && SK_BUY_SOLD_OUT == 2 && SK_BUY_LIMIT_REACHED == 3 &&
                   SK_BUY_NOT_STARTED == 4 && SK_BUY_ENDED == 5,
               "buy.lua's result codes are sk_buy_result_t's");

typedef enum { CONN_DOWN = 0, CONN_CONNECTING, CONN_READY } conn_state_t;

typedef struct rbackend rbackend_t;
typedef struct batch batch_t;
typedef struct group group_t;

/* One primary's connection. Lives as long as the backend once made (conns[node]);
 * hiredis owns the context inside and frees it on errors (ev.ac turns NULL). */
typedef struct {
    rbackend_t *r;
    int node; /* index in the map */
    sk_redis_ev_t ev;
    conn_state_t state;
    int setup_waiting; /* setup replies still expected on a new connection */
    int64_t time_sent_ms; /* sk_now_ms() when its TIME was queued (note_clock) */
    uint64_t connect_deadline_ms;
    uint64_t quiet_ms; /* last tick that saw no command waiting for its reply */
    uint64_t backoff_ms;
    sk_timer_t reconnect, drop;
    uint64_t last_fail_log_ms;
    bool fail_logged;
    /* --replicas-ack: scripts go out in rounds, each closed by one WAIT (it covers every
     * write the connection made before it, and Redis blocks the connection while it
     * waits): the scripts sent since the last WAIT, whether a WAIT is out, and the groups
     * held meanwhile (sent with the next round). */
    group_t **round, **held;
    size_t n_round, cap_round, n_held, cap_held;
    bool wait_out;
} conn_t;

/* The groups one WAIT answers for. */
typedef struct {
    conn_t *c;
    group_t **groups;
    size_t n;
} round_t;

/* What a script's reply says of its sale (buy.lua's header, users and params), copied
 * out of the reply: with --replicas-ack it is applied after the WAIT, when the reply is
 * gone. */
typedef struct {
    int64_t seq, now, stock, held, sold, v, pv, next_due, covered, expired;
    int64_t since; /* what the call asked for (-1: no users) */
    uint64_t *users; /* hashes of the users of orders since + 1 .. covered */
    size_t n_users;
    bool has_params;
    sk_sale_params_t p; /* p.name owned here */
} sstate_t;

/* The ops of one sale within a batch: one script call, sent again after MOVED,
 * ASK or NOSCRIPT. Every send queues the script's callback and, with replicas_ack, a
 * WAIT's; the group is decided (its ops completed) once, and released when no callback
 * of it is left to come. */
struct group {
    batch_t *batch;
    sk_sale_t *sale;
    sk_op_t **ops;
    size_t n;
    int target; /* node of the next send, -1: the slot's owner */
    bool asking; /* the next send is preceded by ASKING */
    bool eval; /* the next send carries the script itself */
    int hops; /* sends after the first */
    int outstanding; /* callbacks still to come */
    bool decided;
    conn_t *ack_conn; /* the script ran there: its answers wait for that connection's WAIT */
    conn_t *conn; /* sent (or held) there last */
    sstate_t st; /* from the script's reply */
    int64_t sent_ms; /* sk_now_ms() at the last send: bounds the store's clock offset */
};

struct batch {
    batch_t *next; /* the in-flight list */
    rbackend_t *r;
    sk_op_t **ops; /* grouped by sale, arrival order within a sale */
    size_t n;
    group_t *groups;
    size_t n_groups, waiting;
    bool failed;
    bool tick; /* a script call without ops (the poll): one group, not in the window */
    bool counted; /* in r->n_inflight (the window) */
    uint64_t t0_ns;
};

/* Loading a finished sale's users from its holders hash (HSCAN): every order's user
 * and request (as hashes), indexed by seq - 1, so that an order read twice is seen and
 * a missing one counted; the users then go into the sale's user set. */
typedef struct {
    int64_t want; /* the sale's final count */
    char cursor[24];
    int64_t found;
    struct hl_order {
        uint64_t user_hash, req_hash;
        bool set;
    } * orders;
    uint64_t *extra; /* users of orders after `want` (made while the hash was read) */
    size_t n_extra, cap_extra;
} hload_t;

/* Per sale, the backend's own state (indexed by sale->index). */
typedef struct {
    hload_t *loading; /* holders being read */
    bool closed; /* a script ran at or after ends_at by Redis's clock: no order can come */
    int64_t v; /* version of the counts last published (-1: none) */
    int64_t pv; /* version of the settings this node has (-1: unknown) */
    int64_t nseq; /* orders the sale made, as last seen (-1: unknown yet) */
    int64_t users_seq; /* the published users hold every order up to this seq (-1: none published) */
    int64_t next_due; /* pay_by of its first pending reservation (0: none) */
    bool tick_busy; /* a script call without ops is out */
    bool tick_again; /* ... and another is wanted once it is back */
    bool load_busy; /* an HSCAN is out */
    bool retired; /* the drain retired it: its orders are in the system of record only */
    uint64_t load_retry_ms; /* do not retry a failed load before this */
    bool qtick_busy; /* a queue.lua call of the tick is out */
    uint64_t q_len, q_head; /* the waiting room as last published (only ever grows) */
} rsale_t;

/* A single non-purchase op (orders of a user, list, create). */
typedef struct {
    rbackend_t *r;
    sk_op_t *op;
    bool eval_retry;
    int step; /* CREATE_SALE: 0 the index entry, 1 the sale record */
    size_t want; /* ORDERS: the user's order count, from the first read */
} single_t;

struct rbackend {
    sk_backend_t base;
    sk_engine_t *e;
    sk_rcluster_t *map; /* who serves which slot; synchronous connections at start-up */
    char url[512];
    size_t max_batch;
    int replicas_ack, replicas_timeout_ms;
    char buy_sha[41], create_sha[41], queue_sha[41];
    const sk_text_t *buy_lua, *create_lua, *queue_lua;
    bool sync_ok; /* start-up connections made (load ran) */

    sk_loop_t *loop;
    sk_async_t wake;
    pthread_t thread;
    bool started;

    conn_t *conns[SK_RCLUSTER_NODES_MAX];
    /* Each primary's clock as its replies showed it (each Redis runs its own): how far
     * ahead of ours it can be, at most and at least (see note_clock). */
    struct {
        int64_t max_ms, min_ms;
        bool seen;
    } clocks[SK_RCLUSTER_NODES_MAX];
    sk_timer_t tick;
    unsigned ticks;
    bool topo_busy; /* a CLUSTER SLOTS is out */
    uint64_t topo_due_ms; /* read the map at this loop time */
    uint64_t topo_backoff_ms;
    uint64_t map_version; /* of the map when owners were last counted */
    size_t n_owners; /* nodes serving slots */
    uint64_t last_ack_log_ms;

    batch_t *head, *tail; /* in flight */
    size_t n_inflight; /* of them, those in the window (release_stalled) */
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

/* ---- the sale cache -------------------------------------------------------------------- */

static sk_sale_params_t params_from_redis(const sk_redis_sale_t *rs, char *name)
{
    return (sk_sale_params_t){.name = name,
                              .starts_at = rs->starts_at,
                              .ends_at = rs->ends_at,
                              .per_user_limit = (int32_t)rs->per_user_limit,
                              .max_quantity = (int32_t)rs->max_quantity,
                              .payment_window_ms = rs->payment_window_ms,
                              .paused = rs->paused,
                              .closed = rs->closed,
                              .queue = (uint8_t)rs->queue,
                              .pow_bits = (uint8_t)rs->pow_bits,
                              .admit_per_second = (int32_t)rs->admit_per_second,
                              .queue_opens_at = rs->queue_opens_at,
                              .admission_ttl_ms = rs->admission_ttl_ms};
}

static sk_sale_t *sale_from_redis(const sk_redis_sale_t *rs)
{
    char *name = sk_xstrndup(rs->name, rs->name_len);
    sk_sale_params_t p = params_from_redis(rs, name);
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

static void rsale_reset(rsale_t *rs)
{
    rs->v = -1;
    rs->pv = -1;
    rs->nseq = -1;
    rs->users_seq = -1;
}

/* Publishes counts Redis had at version v, unless newer ones were published already
 * (a reply that overtook another, after a redirection). */
static bool publish_counts(rsale_t *rs, sk_sale_t *s, int64_t v, const sk_sale_counts_t *c)
{
    if (v < rs->v)
        return false;
    rs->v = v;
    sk_sale_counts_t old;
    sk_sale_counts(s, &old);
    if (old.stock != c->stock || old.held != c->held || old.sold != c->sold)
        sk_engine_publish_counts(s, c);
    return true;
}

static bool users_known(const sk_sale_t *s)
{
    return atomic_load_explicit(&((sk_sale_t *)s)->users, memory_order_acquire) != NULL;
}

/* Registers a sale read from Redis unless it is known already (ledger thread or load).
 * NULL for no record: absent, malformed (logged), or an error reply (its primary loading,
 * moved, CLUSTERDOWN: not a record, the caller reads it again later). */
static sk_sale_t *register_from_reply(rbackend_t *r, const redisReply *reply)
{
    if (!reply || reply->type == REDIS_REPLY_ERROR)
        return NULL;
    sk_redis_sale_t rs;
    int rc = sk_redis_sale_parse(reply, &rs);
    if (rc == -ENOENT)
        return NULL;
    if (rc < 0) {
        sk_warn("redis: a sale record in %s is malformed; it is ignored", r->url);
        return NULL;
    }
    sk_sale_t *s = sk_engine_lookup_sale(r->e, rs.id, rs.id_len);
    if (!s) {
        if (sk_engine_sale_count(r->e) >= SK_MAX_SALES) {
            sk_warn("redis: more than %d sales; sale '%.*s' is not served by this node", SK_MAX_SALES, (int)rs.id_len,
                    rs.id);
            return NULL;
        }
        s = sale_from_redis(&rs);
        sk_engine_register_sale(r->e, s);
        rsale_reset(&r->sales[s->index]);
    }
    rsale_t *st = &r->sales[s->index];
    if (r->replicas_ack > 0) {
        /* A plain read may show writes that no replica has yet (a script whose WAIT
         * then failed, on this node or another): after a failover they are gone. So
         * nothing read here counts as known: a new sale shows what was read until its
         * first acknowledged script reply, whose counts and settings (pv and v stay
         * unknown here) replace it; a known sale keeps what acknowledged replies said.
         * Only they make the sale done here (final_count wants nseq from them). */
        if (st->pv < 0 && st->v < 0 && st->nseq < 0) {
            char *name = sk_xstrndup(rs.name, rs.name_len);
            sk_sale_params_t p = params_from_redis(&rs, name);
            sk_engine_set_params(s, &p);
            free(name);
            sk_sale_counts_t c = {rs.stock, rs.held, rs.sold};
            sk_engine_publish_counts(s, &c);
        }
        return s;
    }
    if (rs.pv != st->pv) {
        char *name = sk_xstrndup(rs.name, rs.name_len);
        sk_sale_params_t p = params_from_redis(&rs, name);
        sk_engine_set_params(s, &p);
        free(name);
        st->pv = rs.pv;
    }
    /* Before its users are known nothing may be published that would let the workers
     * answer for them; the users come with script replies (since), never from here. */
    if (st->users_seq < 0 || rs.seq <= st->users_seq) {
        sk_sale_counts_t c = {rs.stock, rs.held, rs.sold};
        if (publish_counts(st, s, rs.v, &c))
            st->nseq = rs.seq;
    }
    return s;
}

static unsigned index_slot(void)
{
    return sk_rcluster_slot(SK_REDIS_SALES_KEY, sizeof(SK_REDIS_SALES_KEY) - 1);
}

static unsigned sale_slot(const sk_sale_t *s)
{
    return sk_rcluster_sale_slot(s->id, s->id_len);
}

/* The waiting room's settings, create_sale.lua's last arguments (" %d %lld %d %lld %d"). */
#define QUEUE_ARGS(p)                                                                                                  \
    (int)(p)->queue, (long long)(p)->queue_opens_at, (int)(p)->admit_per_second, (long long)(p)->admission_ttl_ms,     \
        (int)(p)->pow_bits

/* A reply of `node` carried its clock (store_ms), to a request sent at sent_ms and
 * answered at recv_ms (sk_now_ms()): the engine gets the widest bounds over every primary
 * seen, so that its gate and a default start hold whichever shard a sale is on (a node
 * seen once stays: a primary replaced by its replica only widens them, by the clocks'
 * difference). */
static void note_clock(rbackend_t *r, int node, int64_t store_ms, int64_t sent_ms, int64_t recv_ms)
{
    if (node < 0 || node >= SK_RCLUSTER_NODES_MAX)
        return;
    r->clocks[node].max_ms = store_ms - sent_ms + 1; /* each clock is read to the ms */
    r->clocks[node].min_ms = store_ms - recv_ms - 1;
    r->clocks[node].seen = true;
    int64_t mx = INT64_MIN, mn = INT64_MAX;
    for (size_t i = 0; i < r->map->n_nodes; i++) {
        if (!r->clocks[i].seen)
            continue;
        mx = SK_MAX(mx, r->clocks[i].max_ms);
        mn = SK_MIN(mn, r->clocks[i].min_ms);
    }
    sk_engine_note_store_clock(r->e, mx, mn);
}

/* A TIME reply's clock in ms (read down to the ms, as the scripts read it), or -1. */
static int64_t time_reply_ms(const redisReply *t)
{
    if (!t || t->type != REDIS_REPLY_ARRAY || t->elements != 2 || t->element[0]->type != REDIS_REPLY_STRING ||
        t->element[1]->type != REDIS_REPLY_STRING)
        return -1;
    return strtoll(t->element[0]->str, NULL, 10) * 1000 + strtoll(t->element[1]->str, NULL, 10) / 1000;
}

/* ---- start-up (main thread, synchronous connections) -------------------------------------- */

static int load_script(rbackend_t *r, redisContext *c, const char *node, const sk_text_t *t, char *sha, char *err,
                       size_t err_size)
{
    redisReply *rep = redisCommand(c, "SCRIPT LOAD %b", t->text, t->len);
    if (!rep || rep->type != REDIS_REPLY_STRING || rep->len != 40) {
        snprintf(err, err_size, "redis at %s: SCRIPT LOAD %s failed: %s", node, t->name,
                 rep ? (rep->str ? rep->str : "unexpected reply") : c->errstr);
        freeReplyObject(rep);
        return -EIO;
    }
    memcpy(sha, rep->str, 40);
    sha[40] = '\0';
    freeReplyObject(rep);
    (void)r;
    return 0;
}

/* What start-up checks on every primary: the scripts load, the AOF is fsynced on every
 * write, and (with replicas_ack) enough replicas are attached. */
static int check_primary(rbackend_t *r, int node, char *err, size_t err_size)
{
    char name[300];
    sk_rcluster_name(r->map, node, name, sizeof(name));
    redisContext *c = sk_rcluster_sync(r->map, node, TIMEOUT_MS, err, err_size);
    if (!c)
        return -EIO;
    if (load_script(r, c, name, r->buy_lua, r->buy_sha, err, err_size) < 0 ||
        load_script(r, c, name, r->create_lua, r->create_sha, err, err_size) < 0 ||
        load_script(r, c, name, r->queue_lua, r->queue_sha, err, err_size) < 0)
        return -EIO;
    /* Its clock, before any script's reply shows it: a sale created first thing (its
     * default start) is judged by it. */
    int64_t sent = sk_now_ms();
    redisReply *t = redisCommand(c, "TIME");
    int64_t recv = sk_now_ms();
    int64_t store = time_reply_ms(t);
    if (store >= 0)
        note_clock(r, node, store, sent, recv);
    freeReplyObject(t);
    /* A reply is durable only with the AOF fsynced on every write. CONFIG may be
     * renamed away in a hardened Redis; then there is nothing to check. */
    redisReply *rep = redisCommand(c, "CONFIG GET append*");
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
                    name, strcmp(aof, "yes") != 0 ? "no AOF" : "appendfsync other than always");
    }
    freeReplyObject(rep);
    if (r->replicas_ack > 0) {
        rep = redisCommand(c, "INFO replication");
        const char *p = rep && rep->type == REDIS_REPLY_STRING ? strstr(rep->str, "connected_slaves:") : NULL;
        long have = p ? strtol(p + 17, NULL, 10) : -1;
        if (have >= 0 && have < r->replicas_ack)
            sk_warn("redis at %s has %ld replica%s attached, --replicas-ack wants %d: its purchases are answered "
                    "503 until enough are",
                    name, have, have == 1 ? "" : "s", r->replicas_ack);
        freeReplyObject(rep);
    }
    return 0;
}

static int redis_load(sk_backend_t *b, sk_engine_t *e, char *err, size_t err_size)
{
    rbackend_t *r = (rbackend_t *)b;
    r->e = e;
    if (sk_rcluster_discover(r->map, TIMEOUT_MS, err, err_size) < 0)
        return -EIO;
    if (r->replicas_ack > 0 && !r->map->enabled)
        sk_info("redis at %s: --replicas-ack %d waits for the replicas of this Redis", r->url, r->replicas_ack);
    /* A Redis Cluster with a primary down (before its replica took over, or with no
     * replica: CLUSTERDOWN for its slots) still serves the others: the node starts with
     * the primaries that answer, and its ledger connects to the rest when they are back
     * or replaced (the topology is read again until every slot's owner is up). One
     * primary that answers is needed, for the scripts' digests. */
    bool *done = sk_xcalloc(SK_RCLUSTER_NODES_MAX, sizeof(bool));
    int n_ok = 0, n_down = 0;
    char first_err[256] = "";
    for (unsigned s = 0; s < SK_RCLUSTER_SLOTS; s++) {
        int node = sk_rcluster_owner(r->map, s);
        if (node < 0 || done[node])
            continue;
        done[node] = true;
        if (check_primary(r, node, err, err_size) < 0) {
            if (!r->map->enabled) {
                free(done);
                return -EIO;
            }
            sk_warn("%s; its sales are served once it is back or replaced", err);
            if (!first_err[0])
                snprintf(first_err, sizeof(first_err), "%s", err);
            sk_rcluster_sync_drop(r->map, node);
            n_down++;
        } else {
            n_ok++;
        }
    }
    free(done);
    if (n_ok == 0) {
        if (first_err[0])
            snprintf(err, err_size, "%s", first_err);
        return -EIO;
    }
    r->sync_ok = true;

    redisReply *rep =
        sk_rcluster_command(r->map, index_slot(), TIMEOUT_MS, err, err_size, "ZRANGE %s 0 -1", SK_REDIS_SALES_KEY);
    if (!rep || rep->type != REDIS_REPLY_ARRAY) {
        if (rep)
            snprintf(err, err_size, "redis at %s: cannot read the sales index: %s", r->url,
                     rep->str ? rep->str : "unexpected reply");
        freeReplyObject(rep);
        if (!r->map->enabled)
            return -EIO;
        /* Read by the ledger's poll once the index's primary answers. */
        sk_warn("%s; the sales are read once it can be", err);
        return 0;
    }
    if (n_down)
        sk_warn("redis at %s: %d primar%s down at the start; the sales they serve are read once they answer", r->url,
                n_down, n_down == 1 ? "y is" : "ies are");
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *id = rep->element[i];
        if (id->type != REDIS_REPLY_STRING || !sk_valid_sale_id(id->str, id->len))
            continue;
        char key[SK_REDIS_KEY_MAX + 1];
        sk_redis_key(key, id->str, id->len, "sale");
        redisReply *h = sk_rcluster_command(r->map, sk_rcluster_sale_slot(id->str, id->len), TIMEOUT_MS, err, err_size,
                                            "HGETALL %s", key);
        if (!h && !r->map->enabled) {
            size_t l = strlen(err);
            snprintf(err + l, err_size - l, " (reading the sales)");
            freeReplyObject(rep);
            return -EIO;
        }
        if (!h || h->type == REDIS_REPLY_ERROR) {
            /* Its primary is down (or CLUSTERDOWN): the poll reads it (the index is
             * read in full until every id in it is a sale here). */
            freeReplyObject(h);
            continue;
        }
        register_from_reply(r, h);
        freeReplyObject(h);
    }
    freeReplyObject(rep);
    return 0;
}

/* With --replicas-ack, at start-up: whether what the connection serving `slot` wrote is
 * on enough replicas (a harmless write to `fence` first: the step may have written
 * nothing). Both go down the same connection, the one the step took. */
static bool sync_acked(rbackend_t *r, unsigned slot, const char *fence)
{
    if (r->replicas_ack <= 0)
        return true;
    char err[256];
    redisReply *f = sk_rcluster_command(r->map, slot, TIMEOUT_MS, err, sizeof(err), "SET %s 1", fence);
    bool ok = f && f->type == REDIS_REPLY_STATUS;
    freeReplyObject(f);
    f = ok ? sk_rcluster_command(r->map, slot, TIMEOUT_MS, err, sizeof(err), "DEL %s", fence) : NULL;
    ok = f && f->type == REDIS_REPLY_INTEGER;
    freeReplyObject(f);
    if (!ok)
        return false;
    redisReply *w = sk_rcluster_command(r->map, slot, TIMEOUT_MS, err, sizeof(err), "WAIT %d %d", r->replicas_ack,
                                        r->replicas_timeout_ms);
    ok = w && w->type == REDIS_REPLY_INTEGER && w->integer >= r->replicas_ack;
    freeReplyObject(w);
    return ok;
}

/* Makes a sale at start-up: the index entry, then the record, each answered (and on
 * enough replicas) before the next step (see create_record). */
static int redis_add_sale(sk_backend_t *b, sk_engine_t *e, sk_sale_t *s)
{
    rbackend_t *r = (rbackend_t *)b;
    (void)e;
    if (!r->sync_ok)
        return -EIO;
    if (sk_engine_lookup_sale(r->e, s->id, s->id_len))
        return -EEXIST;
    if (sk_engine_sale_count(r->e) >= SK_MAX_SALES)
        return -ENOSPC;
    char key[SK_REDIS_KEY_MAX + 1], err[256];
    sk_redis_key(key, s->id, s->id_len, "sale");
    redisReply *z = sk_rcluster_command(r->map, index_slot(), TIMEOUT_MS, err, sizeof(err), "ZADD %s NX %lld %b",
                                        SK_REDIS_SALES_KEY, (long long)s->created_at, s->id, s->id_len);
    bool indexed = z && z->type == REDIS_REPLY_INTEGER;
    freeReplyObject(z);
    if (!indexed || !sync_acked(r, index_slot(), "{" SK_REDIS_SALES_KEY "}:ack"))
        return -EIO;
    const sk_sale_params_t *p = sk_sale_params(s);
    redisReply *rep = sk_rcluster_command(r->map, sale_slot(s), TIMEOUT_MS, err, sizeof(err),
                                          "EVALSHA %s 1 %s %b %s %lld %lld %lld %lld %lld %lld %lld %d %lld %d %lld %d",
                                          r->create_sha, key, s->id, s->id_len, p->name, (long long)sale_stock(s),
                                          (long long)p->starts_at, (long long)p->ends_at, (long long)p->per_user_limit,
                                          (long long)s->created_at, (long long)p->payment_window_ms,
                                          (long long)p->max_quantity, QUEUE_ARGS(p));
    int rc = -EIO;
    if (rep && rep->type == REDIS_REPLY_INTEGER)
        rc = rep->integer == 1 ? 0 : -EEXIST;
    freeReplyObject(rep);
    char fence[SK_REDIS_KEY_MAX + 1];
    sk_redis_key(fence, s->id, s->id_len, "ack");
    if (rc == 0 && !sync_acked(r, sale_slot(s), fence))
        rc = -EIO;
    if (rc == 0) {
        sk_engine_register_sale(r->e, s);
        rsale_reset(&r->sales[s->index]);
        r->sales[s->index].pv = 0;
    }
    return rc;
}

/* ---- connections ------------------------------------------------------------------------ */

static void pump(rbackend_t *r);
static void sale_tick(rbackend_t *r, sk_sale_t *s);
static void connect_now(conn_t *c);
static void drop_held(conn_t *c);
static void maybe_load_holders(rbackend_t *r, sk_sale_t *s);

static const char *conn_name(const conn_t *c, char *buf, size_t cap)
{
    return sk_rcluster_name(c->r->map, c->node, buf, cap);
}

/* Whether a node serves any slot now (a node that stopped being a primary is not
 * reconnected to unless something is sent to it again). */
static bool node_serves(const rbackend_t *r, int node)
{
    for (unsigned s = 0; s < SK_RCLUSTER_SLOTS; s++)
        if (r->map->owner[s] == node)
            return true;
    return false;
}

static size_t count_owners(rbackend_t *r)
{
    if (r->map_version != r->map->version) {
        bool seen[SK_RCLUSTER_NODES_MAX] = {false};
        size_t n = 0;
        for (unsigned s = 0; s < SK_RCLUSTER_SLOTS; s++) {
            int o = sk_rcluster_owner(r->map, s);
            if (o >= 0 && !seen[o]) {
                seen[o] = true;
                n++;
            }
        }
        r->n_owners = n;
        r->map_version = r->map->version;
    }
    return r->n_owners ? r->n_owners : 1;
}

/* Read the map again soon (a MOVED, a lost primary, CLUSTERDOWN). */
static void topology_soon(rbackend_t *r)
{
    if (!r->map->enabled)
        return;
    uint64_t now = sk_loop_now(r->loop);
    if (r->topo_due_ms > now)
        r->topo_due_ms = now;
}

static void log_failure(conn_t *c, const char *what, const char *detail)
{
    /* One line per outage, then one every 10 s while it lasts. */
    rbackend_t *r = c->r;
    uint64_t now = sk_loop_now(r->loop);
    if (!c->fail_logged || now - c->last_fail_log_ms >= 10000) {
        char name[300];
        sk_warn("redis at %s: %s%s%s; %s are answered 503 until it is back%s", conn_name(c, name, sizeof(name)), what,
                detail ? ": " : "", detail ? detail : "",
                r->map->enabled ? "purchases of the sales it serves" : "purchases",
                r->map->enabled ? " or replaced" : "");
        c->last_fail_log_ms = now;
        c->fail_logged = true;
    }
}

static void on_reconnect(sk_loop_t *loop, sk_timer_t *t)
{
    (void)loop;
    connect_now(SK_CONTAINER_OF(t, conn_t, reconnect));
}

static void schedule_reconnect(conn_t *c)
{
    rbackend_t *r = c->r;
    if (r->done || sk_timer_armed(&c->reconnect))
        return;
    topology_soon(r);
    if (r->map->enabled && !node_serves(r, c->node))
        return; /* no longer a primary: connected again when something is sent there */
    c->backoff_ms = c->backoff_ms ? SK_MIN(c->backoff_ms * 2, (uint64_t)BACKOFF_MAX_MS) : BACKOFF_MIN_MS;
    sk_timer_start(r->loop, &c->reconnect, c->backoff_ms, on_reconnect);
}

static void on_drop(sk_loop_t *loop, sk_timer_t *t)
{
    (void)loop;
    conn_t *c = SK_CONTAINER_OF(t, conn_t, drop);
    /* Outside any hiredis callback: the free is immediate and runs every pending
     * callback with a NULL reply, which answers what was in flight 503. */
    if (c->ev.ac)
        redisAsyncFree(c->ev.ac);
    schedule_reconnect(c);
}

/* Gives up a connection: purchases already sent on it get 503 (their callbacks see
 * NULL), new ones for its slots too until it is ready again. Safe inside hiredis
 * callbacks. */
static void fail_connection(conn_t *c, const char *what, const char *detail)
{
    if (c->state != CONN_DOWN)
        log_failure(c, what, detail);
    c->state = CONN_DOWN;
    drop_held(c);
    if (c->ev.ac)
        sk_timer_start(c->r->loop, &c->drop, 0, on_drop);
    else
        schedule_reconnect(c);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    conn_t *c = ac->data;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this returns. */
        log_failure(c, "cannot connect", ac->errstr);
        c->state = CONN_DOWN;
        drop_held(c);
        schedule_reconnect(c);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    conn_t *c = ac->data;
    if (c->state != CONN_DOWN)
        log_failure(c, "connection lost", status == REDIS_OK ? NULL : ac->errstr);
    c->state = CONN_DOWN;
    drop_held(c);
    schedule_reconnect(c);
}

static void on_setup(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    conn_t *c = priv;
    redisReply *rep = reply;
    if (!rep || c->state != CONN_CONNECTING)
        return;
    if (rep->type == REDIS_REPLY_ERROR) {
        fail_connection(c, "set-up failed", rep->str);
        return;
    }
    if (--c->setup_waiting == 0) {
        c->state = CONN_READY;
        c->backoff_ms = 0;
        if (c->fail_logged) {
            char name[300];
            sk_info("redis at %s: connected again", conn_name(c, name, sizeof(name)));
        }
        c->fail_logged = false;
    }
}

/* A new connection's TIME: the primary's clock before a script's reply shows it (one
 * down at start-up, promoted or added later), and a fresh reading of one seen before. */
static void on_time(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    conn_t *c = priv;
    int64_t store = time_reply_ms(reply);
    if (store >= 0)
        note_clock(c->r, c->node, store, c->time_sent_ms, sk_now_ms());
}

static void connect_now(conn_t *c)
{
    rbackend_t *r = c->r;
    if (r->done || c->ev.ac)
        return;
    sk_timer_stop(r->loop, &c->reconnect);
    const sk_rcluster_node_t *nd = &r->map->nodes[c->node];
    redisAsyncContext *ac = redisAsyncConnect(nd->host, nd->port);
    if (!ac || ac->err) {
        log_failure(c, "cannot connect", ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        c->state = CONN_DOWN;
        schedule_reconnect(c);
        return;
    }
    ac->data = c;
    sk_redis_attach(&c->ev, r->loop, ac);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    c->state = CONN_CONNECTING;
    c->connect_deadline_ms = sk_loop_now(r->loop) + TIMEOUT_MS;
    /* The scripts are loaded on every new connection, before any EVALSHA: a restarted
     * Redis (or a replica just promoted) may have an empty script cache. Commands on
     * one connection run in order, so the first batch cannot overtake them. */
    const sk_redis_addr_t *a = &r->map->addr;
    c->setup_waiting = 3;
    if (a->password[0]) {
        c->setup_waiting++;
        if (a->user[0])
            redisAsyncCommand(ac, on_setup, c, "AUTH %s %s", a->user, a->password);
        else
            redisAsyncCommand(ac, on_setup, c, "AUTH %s", a->password);
    }
    if (a->db) {
        c->setup_waiting++;
        redisAsyncCommand(ac, on_setup, c, "SELECT %d", a->db);
    }
    redisAsyncCommand(ac, on_setup, c, "SCRIPT LOAD %b", r->buy_lua->text, r->buy_lua->len);
    redisAsyncCommand(ac, on_setup, c, "SCRIPT LOAD %b", r->create_lua->text, r->create_lua->len);
    redisAsyncCommand(ac, on_setup, c, "SCRIPT LOAD %b", r->queue_lua->text, r->queue_lua->len);
    /* Queued now, sent once connected: the bound from it is looser, not wrong. */
    c->time_sent_ms = sk_now_ms();
    redisAsyncCommand(ac, on_time, c, "TIME");
}

/* The connection to a node, made (and connecting) on first use. */
static conn_t *conn_get(rbackend_t *r, int node)
{
    if (node < 0 || node >= SK_RCLUSTER_NODES_MAX)
        return NULL;
    conn_t *c = r->conns[node];
    if (!c) {
        c = r->conns[node] = sk_xcalloc(1, sizeof(*c));
        c->r = r;
        c->node = node;
        connect_now(c);
    } else if (c->state == CONN_DOWN && !c->ev.ac && !sk_timer_armed(&c->reconnect)) {
        connect_now(c); /* a node asked for again after it served nothing */
    }
    return c;
}

/* Commands may be queued on a connection being made (hiredis sends them once it is
 * up, after the set-up); a connection that is down answers 503. */
static bool usable(const conn_t *c)
{
    return c && c->ev.ac && c->state != CONN_DOWN;
}

/* The connection serving a slot, or NULL when none is known or usable. */
static conn_t *route(rbackend_t *r, unsigned slot)
{
    int node = sk_rcluster_owner(r->map, slot);
    if (node < 0) {
        topology_soon(r);
        return NULL;
    }
    conn_t *c = conn_get(r, node);
    if (!usable(c)) {
        topology_soon(r); /* a lost primary: has a replica taken over? */
        return NULL;
    }
    return c;
}

/* Notes a redirection in a reply of a command that is not sent again (polls, look-ups,
 * single ops): the map is read again, and the caller treats the reply as a failure. */
static void note_redirect(rbackend_t *r, const redisReply *rep)
{
    unsigned slot;
    sk_rcluster_node_t to;
    if (sk_rcluster_redirect(rep, &slot, &to) != SK_RCLUSTER_REPLY)
        topology_soon(r);
}

/* ---- the topology (Redis Cluster) -------------------------------------------------------- */

static void on_slots(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)priv;
    conn_t *c = ac->data;
    rbackend_t *r = c->r;
    r->topo_busy = false;
    uint64_t now = sk_loop_now(r->loop);
    uint64_t version = r->map->version;
    if (!reply || r->done || sk_rcluster_apply_slots(r->map, reply, r->map->nodes[c->node].host) < 0) {
        r->topo_backoff_ms =
            r->topo_backoff_ms ? SK_MIN(r->topo_backoff_ms * 2, (uint64_t)TOPOLOGY_MS) : (uint64_t)TOPOLOGY_RETRY_MS;
        r->topo_due_ms = now + r->topo_backoff_ms;
        return;
    }
    if (r->map->version != version) {
        char name[300];
        sk_info("redis: the cluster's map changed (read from %s)", conn_name(c, name, sizeof(name)));
    }
    /* Connect to every primary; while one is unreachable (a failover under way), read
     * the map again soon, with a back-off, until a replica has taken its place. */
    bool all_up = true;
    for (unsigned s = 0; s < SK_RCLUSTER_SLOTS; s++) {
        int o = sk_rcluster_owner(r->map, s);
        if (o < 0) {
            all_up = false;
            continue;
        }
        conn_t *oc = r->conns[o];
        if (!oc || (!oc->ev.ac && !sk_timer_armed(&oc->reconnect)))
            oc = conn_get(r, o);
        if (oc->state != CONN_READY)
            all_up = false;
    }
    if (all_up) {
        r->topo_backoff_ms = 0;
        r->topo_due_ms = now + TOPOLOGY_MS;
    } else {
        r->topo_backoff_ms =
            r->topo_backoff_ms ? SK_MIN(r->topo_backoff_ms * 2, (uint64_t)TOPOLOGY_MS) : (uint64_t)TOPOLOGY_RETRY_MS;
        r->topo_due_ms = now + r->topo_backoff_ms;
    }
}

static void read_topology(rbackend_t *r)
{
    if (!r->map->enabled || r->topo_busy || sk_loop_now(r->loop) < r->topo_due_ms)
        return;
    /* Any node that is up can tell; the ones serving slots first. */
    conn_t *ask = NULL;
    for (size_t i = 0; i < r->map->n_nodes && !ask; i++)
        if (r->conns[i] && r->conns[i]->state == CONN_READY && r->conns[i]->ev.ac)
            ask = r->conns[i];
    if (!ask) {
        /* None is up: try every known node (the seeds among them) until one answers. */
        for (size_t i = 0; i < r->map->n_nodes; i++)
            conn_get(r, (int)i);
        r->topo_due_ms = sk_loop_now(r->loop) + TOPOLOGY_RETRY_MS;
        return;
    }
    if (redisAsyncCommand(ask->ev.ac, on_slots, NULL, "CLUSTER SLOTS") == REDIS_OK)
        r->topo_busy = true;
}

/* ---- purchases -------------------------------------------------------------------------- */

static void on_group(redisAsyncContext *ac, void *reply, void *priv);
static void on_round_ack(redisAsyncContext *ac, void *reply, void *priv);
static void group_unavailable(group_t *g);
static void group_release(group_t *g);

static void push_group(group_t ***arr, size_t *n, size_t *cap, group_t *g)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *arr = sk_xrealloc(*arr, *cap * sizeof(**arr));
    }
    (*arr)[(*n)++] = g;
}

#define SCRIPT_KEYS 7
static const char *const script_keys[SCRIPT_KEYS] = {"sale", "holders", "orders", "o", "due", "log", "ctl"};

/* The arguments of buy.lua for the group's ops (see its header): argv/lens are filled
 * from index `at`; numbers are written into nums (16 slots of 24 bytes per op). Returns
 * the count of arguments. */
static size_t script_args(const group_t *g, const char **argv, size_t *lens, size_t at, char (*nums)[24])
{
    size_t k = at, m = 0;
#define ARG(p, l) (argv[k] = (p), lens[k] = (l), k++)
#define NUM(x) (lens[k] = (size_t)snprintf(nums[m], 24, "%lld", (long long)(x)), argv[k] = nums[m++], k++)
    for (size_t i = 0; i < g->n; i++) {
        const sk_op_t *op = g->ops[i];
        switch (op->kind) {
        case SK_OP_BUY:
            ARG(op->unadmitted ? "B" : "b", 1);
            ARG(op->user_id, op->user_len);
            ARG(op->request_id, op->request_len);
            NUM(op->quantity ? op->quantity : 1);
            break;
        case SK_OP_PAY:
            ARG("p", 1);
            NUM(op->seq);
            ARG(op->payment_id, op->payment_len);
            break;
        case SK_OP_CANCEL:
            ARG("c", 1);
            NUM(op->seq);
            if (op->admin)
                ARG("", 0);
            else
                ARG(op->user_id, op->user_len);
            break;
        case SK_OP_REFUND:
            ARG("f", 1);
            NUM(op->seq);
            break;
        case SK_OP_GET_ORDER:
            ARG("g", 1);
            NUM(op->seq);
            break;
        case SK_OP_ORDERS:
            ARG("u", 1);
            ARG(op->user_id, op->user_len);
            break;
        default: { /* SK_OP_CONTROL (form_batch groups nothing else) */
            const sk_trail_entry_t *e = op->entries;
            const sk_control_t *c = &e->ctl;
            ARG("k", 1);
            ARG(e->request_id, strlen(e->request_id));
            ARG(e->actor, strlen(e->actor));
            NUM(c->action);
            NUM(c->amount);
            NUM(c->set);
            ARG(c->name, strlen(c->name));
            NUM(c->starts_at);
            NUM(c->ends_at);
            NUM(c->per_user_limit);
            NUM(c->max_quantity);
            NUM(c->payment_window_ms);
            break;
        }
        }
    }
#undef ARG
#undef NUM
    return k;
}

/* Whether an op goes to the sale's script (in a group) rather than alone. */
static bool scripted(const sk_op_t *op)
{
    switch (op->kind) {
    case SK_OP_BUY:
    case SK_OP_PAY:
    case SK_OP_CANCEL:
    case SK_OP_REFUND:
    case SK_OP_GET_ORDER:
    case SK_OP_ORDERS:
        return true;
    case SK_OP_CONTROL:
        return op->entries != NULL;
    default:
        return false;
    }
}

static bool users_known(const sk_sale_t *s);

/* The since and pv arguments of a script call for sale s. */
static void script_state_args(rbackend_t *r, const sk_sale_t *s, int64_t *since, int64_t *pv)
{
    const rsale_t *rs = &r->sales[s->index];
    *since = users_known(s) ? rs->users_seq : -1;
    *pv = rs->pv;
}

static void send_group(rbackend_t *r, group_t *g)
{
    int node = g->target >= 0 ? g->target : sk_rcluster_owner(r->map, sale_slot(g->sale));
    bool asking = g->asking;
    g->target = -1;
    g->asking = false;
    conn_t *c = node >= 0 ? conn_get(r, node) : NULL;
    if (!usable(c)) {
        topology_soon(r);
        group_unavailable(g);
        return;
    }
    g->conn = c;
    if (r->replicas_ack > 0 && c->wait_out) {
        /* The connection is blocked in WAIT: the group goes with the next round. */
        g->target = node;
        g->asking = asking;
        push_group(&c->held, &c->n_held, &c->cap_held, g);
        return;
    }
    size_t cap = 5 + SCRIPT_KEYS + 12 * g->n;
    const char **argv = sk_xmalloc(cap * sizeof(*argv));
    size_t *lens = sk_xmalloc(cap * sizeof(*lens));
    char(*nums)[24] = sk_xmalloc((2 + 8 * g->n) * sizeof(*nums));
    char keys[SCRIPT_KEYS][SK_REDIS_KEY_MAX + 1];
    sk_sale_t *s = g->sale;
    argv[0] = g->eval ? "EVAL" : "EVALSHA";
    argv[1] = g->eval ? r->buy_lua->text : r->buy_sha;
    argv[2] = "7";
    lens[0] = strlen(argv[0]);
    lens[1] = g->eval ? r->buy_lua->len : 40;
    lens[2] = 1;
    for (int k = 0; k < SCRIPT_KEYS; k++) {
        lens[3 + k] = sk_redis_key(keys[k], s->id, s->id_len, script_keys[k]);
        argv[3 + k] = keys[k];
    }
    int64_t since, pv;
    script_state_args(r, s, &since, &pv);
    g->st.since = since;
    char *nsince = nums[8 * g->n], *npv = nums[8 * g->n + 1];
    lens[3 + SCRIPT_KEYS] = (size_t)snprintf(nsince, 24, "%lld", (long long)since);
    argv[3 + SCRIPT_KEYS] = nsince;
    lens[4 + SCRIPT_KEYS] = (size_t)snprintf(npv, 24, "%lld", (long long)pv);
    argv[4 + SCRIPT_KEYS] = npv;
    size_t argc = script_args(g, argv, lens, 5 + SCRIPT_KEYS, nums);
    if (asking)
        redisAsyncCommand(c->ev.ac, NULL, NULL, "ASKING");
    g->sent_ms = sk_now_ms();
    /* hiredis copies the arguments into its output buffer before this returns. */
    int rc = redisAsyncCommandArgv(c->ev.ac, on_group, g, (int)argc, argv, lens);
    free(nums);
    free(argv);
    free(lens);
    if (rc != REDIS_OK) {
        /* The context is disconnecting: answer this group now. */
        group_unavailable(g);
        return;
    }
    g->outstanding++;
    if (r->replicas_ack > 0)
        push_group(&c->round, &c->n_round, &c->cap_round, g); /* closed by close_rounds */
}

/* Sends one WAIT after the scripts each connection got since its last one (at the end
 * of every loop turn): a round's scripts share the fsync and the replication round trip.
 * WAIT counts the replicas that have this connection's last write, and a script that
 * wrote nothing (a sold_out answer, a poll with nothing to expire) reports what other
 * connections wrote, perhaps in rounds whose WAIT failed. So a harmless write goes
 * before every WAIT (a key in the slot of a sale of the round, set and deleted at once,
 * so that none is left): the WAIT then covers everything the primary did before it,
 * whoever did it. */
static void close_rounds(rbackend_t *r)
{
    for (size_t i = 0; i < SK_RCLUSTER_NODES_MAX; i++) {
        conn_t *c = r->conns[i];
        if (!c || c->n_round == 0)
            continue;
        if (!usable(c)) {
            c->n_round = 0; /* their scripts' callbacks see NULL: 503 */
            continue;
        }
        if (c->wait_out)
            continue; /* (a round is only opened while no WAIT is out) */
        const sk_sale_t *fs = c->round[c->n_round - 1]->sale;
        char fkey[SK_REDIS_KEY_MAX + 1];
        sk_redis_key(fkey, fs->id, fs->id_len, "ack");
        redisAsyncCommand(c->ev.ac, NULL, NULL, "SET %s 1", fkey);
        redisAsyncCommand(c->ev.ac, NULL, NULL, "DEL %s", fkey);
        round_t *rd = sk_xmalloc(sizeof(*rd));
        rd->c = c;
        rd->n = c->n_round;
        rd->groups = sk_xmalloc(rd->n * sizeof(*rd->groups));
        memcpy(rd->groups, c->round, rd->n * sizeof(*rd->groups));
        c->n_round = 0;
        if (redisAsyncCommand(c->ev.ac, on_round_ack, rd, "WAIT %d %d", r->replicas_ack, r->replicas_timeout_ms) !=
            REDIS_OK) {
            free(rd->groups);
            free(rd);
            continue;
        }
        c->wait_out = true;
        for (size_t k = 0; k < rd->n; k++)
            rd->groups[k]->outstanding++;
    }
}

/* Answers 503 the groups held for a connection that went down (they were never sent). */
static void drop_held(conn_t *c)
{
    c->wait_out = false;
    c->n_round = 0;
    while (c->n_held) {
        group_t *g = c->held[--c->n_held];
        group_unavailable(g);
        group_release(g);
    }
}

static void answer_unavailable(sk_op_t *op)
{
    op->result = SK_BUY_UNAVAILABLE;
    op->remaining = op->sale ? sk_sale_remaining(op->sale) : 0;
    op->status = -EIO;
}

/* Completes an op of a group (purchases are counted by result). */
static void group_complete(rbackend_t *r, sk_op_t *op)
{
    if (op->kind == SK_OP_BUY)
        sk_engine_record_decided(r->e, op->result);
    sk_engine_complete(r->e, op);
}

static void batch_finish(rbackend_t *r, batch_t *b)
{
    if (b->tick) {
        sk_sale_t *s = b->groups[0].sale;
        rsale_t *rs = &r->sales[s->index];
        free(b->groups);
        free(b);
        rs->tick_busy = false;
        if (rs->tick_again) {
            rs->tick_again = false;
            sale_tick(r, s);
        }
        return;
    }
    /* Every op was completed (and counted) with its group; what is left is the
     * statistics. */
    sk_engine_record_batch(r->e, b->n, sk_mono_ns() - b->t0_ns, !b->failed);
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
    if (b->counted)
        r->n_inflight--;
    free(b->ops);
    free(b->groups);
    free(b);
}

/* Releases a decided group once no callback of it is left to come. */
static void group_release(group_t *g)
{
    if (!g->decided || g->outstanding > 0)
        return;
    batch_t *b = g->batch;
    if (--b->waiting == 0)
        batch_finish(b->r, b);
}

static void on_round_ack(redisAsyncContext *ac, void *reply, void *priv);
static void sstate_free(sstate_t *st)
{
    free(st->users);
    free((char *)st->p.name);
    st->users = NULL;
    st->p.name = NULL;
}

static void group_unavailable(group_t *g)
{
    if (g->decided)
        return;
    rbackend_t *r = g->batch->r;
    for (size_t i = 0; i < g->n; i++) {
        if (!g->ops[i])
            continue; /* answered already (a read, with --replicas-ack) */
        answer_unavailable(g->ops[i]);
        group_complete(r, g->ops[i]);
    }
    sstate_free(&g->st);
    g->batch->failed = true;
    g->decided = true;
}

static bool all_int(const redisReply *a, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        if (a->element[i]->type != REDIS_REPLY_INTEGER)
            return false;
    return true;
}

/* buy.lua's reply up to its rows: the header, the users and the params. */
static bool sstate_parse(const redisReply *rep, const sk_sale_t *s, sstate_t *st)
{
    int64_t since = st->since;
    sstate_free(st);
    memset(st, 0, sizeof(*st));
    st->since = since;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3)
        return false;
    const redisReply *h = rep->element[0], *u = rep->element[1], *p = rep->element[2];
    if (h->type != REDIS_REPLY_ARRAY || h->elements != 10 || !all_int(h, 0, 10) || u->type != REDIS_REPLY_ARRAY ||
        p->type != REDIS_REPLY_ARRAY || (p->elements != 0 && p->elements != 8))
        return false;
    /* { seq, now, stock, held, sold, v, pv, next_due, covered, expired } */
    int64_t *f[10] = {&st->seq, &st->now, &st->stock,    &st->held,    &st->sold,
                      &st->v,   &st->pv,  &st->next_due, &st->covered, &st->expired};
    for (int i = 0; i < 10; i++)
        *f[i] = h->element[i]->integer;
    if (st->seq < 0 || st->stock < 0 || st->stock > SK_STOCK_MAX || st->held < 0 || st->sold < 0 ||
        st->held + st->sold > st->stock)
        return false;
    if (u->elements) {
        st->users = sk_xmalloc(u->elements * sizeof(*st->users));
        for (size_t i = 0; i < u->elements; i++) {
            const redisReply *x = u->element[i];
            if (x->type != REDIS_REPLY_STRING || !sk_valid_user_id(x->str, x->len))
                return false;
            st->users[st->n_users++] = sk_user_hash(x->str, x->len);
        }
    }
    if (p->elements == 8) {
        const redisReply *name = p->element[0];
        if (name->type != REDIS_REPLY_STRING || name->len == 0 || name->len > SK_NAME_MAX || !all_int(p, 1, 8))
            return false;
        st->has_params = true;
        st->p = (sk_sale_params_t){.name = sk_xstrndup(name->str, name->len),
                                   .starts_at = p->element[1]->integer,
                                   .ends_at = p->element[2]->integer,
                                   .per_user_limit = (int32_t)p->element[3]->integer,
                                   .max_quantity = (int32_t)p->element[4]->integer,
                                   .payment_window_ms = p->element[5]->integer,
                                   .paused = p->element[6]->integer != 0,
                                   .closed = p->element[7]->integer != 0};
        /* The waiting room's settings are set at creation on this store: kept. */
        const sk_sale_params_t *cur = sk_sale_params(s);
        st->p.queue = cur->queue;
        st->p.pow_bits = cur->pow_bits;
        st->p.admit_per_second = cur->admit_per_second;
        st->p.queue_opens_at = cur->queue_opens_at;
        st->p.admission_ttl_ms = cur->admission_ttl_ms;
    }
    return true;
}

/* Whether the sale can take no order for now: over (closed, or Redis's clock passed its
 * end: for good), paused, or sold out with no reservation pending (then only an
 * operator's action, on any node, makes new orders possible: a resume, added stock, a
 * refund; another node hears of it with its next call, within SYNC_TICKS). Only then
 * may the workers answer non-holders. */
static bool sale_done(const rsale_t *rs, const sk_sale_t *s, const sk_sale_counts_t *c)
{
    const sk_sale_params_t *p = sk_sale_params(s);
    return rs->closed || p->closed || p->paused || (sk_counts_remaining(c) <= 0 && c->held == 0);
}

static void maybe_tick(rbackend_t *r, sk_sale_t *s);

/* Applies what a script said of its sale, after the script is durable: the settings,
 * the users of new orders (before the counts that include them), the counts. */
static void sstate_apply(rbackend_t *r, sk_sale_t *s, const sstate_t *st)
{
    rsale_t *rs = &r->sales[s->index];
    if (st->has_params && st->pv > rs->pv) {
        sk_engine_set_params(s, &st->p);
        rs->pv = st->pv;
    }
    if (st->now >= sk_sale_params(s)->ends_at)
        rs->closed = true;
    sk_sale_counts_t c = {st->stock, st->held, st->sold};
    sk_userset_t *u = atomic_load_explicit(&s->users, memory_order_relaxed);
    bool covered = true;
    if (u) {
        if (st->since >= 0 && st->since <= rs->users_seq) {
            for (size_t i = 0; i < st->n_users; i++)
                sk_userset_insert(u, st->users[i]);
            if (st->covered > rs->users_seq)
                rs->users_seq = st->covered;
        }
        covered = st->seq <= rs->users_seq;
        if (!sale_done(rs, s, &c)) {
            /* Units may come back: every purchase goes to the script again. */
            sk_engine_withdraw_users(s);
            rs->users_seq = -1;
            covered = true;
        }
    }
    if (covered) {
        if (publish_counts(rs, s, st->v, &c)) {
            rs->nseq = st->seq;
            rs->next_due = st->next_due;
        }
    } else {
        /* Orders this node has not seen the users of yet (more than one reply
         * carries): their counts wait for the next call, which goes at once. */
        maybe_tick(r, s);
    }
    if (st->expired > 0)
        sk_engine_record_transition(r->e, SK_ORDER_EXPIRED, (uint64_t)st->expired);
    maybe_load_holders(r, s);
}

/* An order as buy.lua returns it: 10 elements from v (seq 0: none). */
static bool order_parse(redisReply **v, sk_order_t *o)
{
    memset(o, 0, sizeof(*o));
    if (v[0]->type != REDIS_REPLY_INTEGER)
        return false;
    if (v[0]->integer == 0)
        return true;
    for (int i = 1; i < 7; i++)
        if (v[i]->type != REDIS_REPLY_INTEGER || v[i]->integer < 0)
            return false;
    for (int i = 7; i < 10; i++)
        if (v[i]->type != REDIS_REPLY_STRING)
            return false;
    if (v[3]->integer >= SK_ORDER__COUNT || v[2]->integer < 1 || v[2]->integer > SK_LIMIT_MAX ||
        v[7]->len > SK_USER_MAX || v[8]->len > SK_REQUEST_MAX || v[9]->len > SK_PAYMENT_ID_MAX)
        return false;
    o->seq = (uint64_t)v[0]->integer;
    o->created_at = v[1]->integer;
    o->quantity = (uint32_t)v[2]->integer;
    o->state = (sk_order_state_t)v[3]->integer;
    o->pay_by = v[4]->integer;
    o->paid_at = v[5]->integer;
    o->closed_at = v[6]->integer;
    memcpy(o->user_id, v[7]->str, v[7]->len);
    memcpy(o->request_id, v[8]->str, v[8]->len);
    memcpy(o->payment_id, v[9]->str, v[9]->len);
    return true;
}

/* The field names a control's 400 may name, as static strings (op->field). */
static const char *control_field(const char *f, size_t len)
{
    static const char *const known[] = {"add",
                                        "remove",
                                        "body",
                                        "name",
                                        "starts_at",
                                        "ends_at",
                                        "per_user_limit",
                                        "max_quantity",
                                        "payment_window_ms",
                                        "action"};
    for (size_t i = 0; i < SK_ARRAY_LEN(known); i++)
        if (strlen(known[i]) == len && memcmp(known[i], f, len) == 0)
            return known[i];
    return len ? "body" : NULL;
}

/* One op's row of the reply into the op (not yet completed). */
static bool row_parse(sk_op_t *op, const redisReply *row)
{
    if (row->type != REDIS_REPLY_ARRAY)
        return false;
    redisReply **v = row->element;
    size_t n = row->elements;
    switch (op->kind) {
    case SK_OP_BUY:
        if (n != 13 || !all_int(row, 0, 3) || v[0]->integer < 0 || v[0]->integer >= SK_BUY__COUNT ||
            v[0]->integer == SK_BUY_UNAVAILABLE || v[0]->integer == SK_BUY_RATE_LIMITED ||
            !order_parse(v + 3, &op->order))
            return false;
        op->result = (sk_buy_result_t)v[0]->integer;
        op->remaining = v[1]->integer;
        op->held = 0;
        if (op->result == SK_BUY_LIMIT_REACHED || op->result == SK_BUY_SOLD_OUT)
            op->held = op->order.seq ? (uint32_t)SK_MIN(v[2]->integer, (long long)UINT32_MAX) : 0;
        return true;
    case SK_OP_PAY:
    case SK_OP_CANCEL:
    case SK_OP_REFUND:
    case SK_OP_GET_ORDER:
        if (n != 12 || !all_int(row, 0, 2) || v[1]->integer < 0 || v[1]->integer >= SK_TR__COUNT ||
            !order_parse(v + 2, &op->order))
            return false;
        switch (v[0]->integer) {
        case 0:
            op->status = 0;
            op->tr = (sk_tr_result_t)v[1]->integer;
            return op->order.seq == op->seq;
        case 1:
            op->status = -ENOENT;
            return true;
        case 2:
            op->status = -EPERM;
            return true;
        case 3:
            op->status = -ESTALE;
            return true;
        default:
            return false;
        }
    case SK_OP_ORDERS: {
        if (n < 1 || (n - 1) % 10 || v[0]->type != REDIS_REPLY_INTEGER)
            return false;
        if (v[0]->integer == 3) {
            op->status = -ESTALE;
            return true;
        }
        size_t k = (n - 1) / 10;
        op->orders = k ? sk_xcalloc(k, sizeof(sk_order_t)) : NULL;
        op->n_orders = 0;
        for (size_t i = 0; i < k; i++) {
            if (!order_parse(v + 1 + 10 * i, &op->orders[i]) || op->orders[i].seq == 0)
                return false;
            op->n_orders++;
        }
        op->status = 0;
        return true;
    }
    default: /* SK_OP_CONTROL */
        if (n != 3 || v[0]->type != REDIS_REPLY_INTEGER || v[0]->integer < 0 || v[0]->integer >= SK_CR__COUNT ||
            v[1]->type != REDIS_REPLY_STRING || v[2]->type != REDIS_REPLY_STRING)
            return false;
        op->status = 0;
        op->control_result = (int)v[0]->integer;
        op->field = control_field(v[1]->str, v[1]->len);
        if (v[2]->len > 0) {
            sk_trail_entry_t e;
            if (sk_redis_trail_parse(v[2]->str, v[2]->len, &e) < 0)
                return false;
            *op->entries = e;
        }
        return true;
    }
}

/* Reads the script's answers into the ops (not yet completed); node: the primary that
 * ran it. */
static bool group_parse(group_t *g, const redisReply *rep, int node)
{
    if (!sstate_parse(rep, g->sale, &g->st) || rep->elements != 3 + g->n)
        return false;
    note_clock(g->batch->r, node, g->st.now, g->sent_ms, sk_now_ms());
    for (size_t i = 0; i < g->n; i++) {
        sk_op_t *op = g->ops[i];
        if (!row_parse(op, rep->element[3 + i]))
            return false;
        if (op->kind == SK_OP_BUY)
            memcpy(op->order.user_id, op->user_id, op->user_len + 1u);
    }
    return true;
}

/* The group's answers are durable (and on enough replicas): publish and complete. */
static void group_commit(group_t *g)
{
    rbackend_t *r = g->batch->r;
    sstate_apply(r, g->sale, &g->st);
    for (size_t i = 0; i < g->n; i++) {
        sk_op_t *op = g->ops[i];
        if (!op)
            continue; /* answered already (a read, with --replicas-ack) */
        if ((op->kind == SK_OP_PAY || op->kind == SK_OP_CANCEL || op->kind == SK_OP_REFUND) && op->status == 0 &&
            op->tr == SK_TR_OK)
            sk_engine_record_transition(r->e, op->order.state, 1);
        /* The sale's orders by the state they entered (/metrics); expiries happen inside
         * the script and are not reported one by one. */
        if (op->kind == SK_OP_BUY && (op->result == SK_BUY_CONFIRMED || op->result == SK_BUY_RESERVED))
            sk_engine_record_entered(g->sale, op->result == SK_BUY_RESERVED ? SK_ORDER_RESERVED : SK_ORDER_CONFIRMED,
                                     1);
        else if ((op->kind == SK_OP_PAY || op->kind == SK_OP_CANCEL || op->kind == SK_OP_REFUND) && op->status == 0 &&
                 op->tr == SK_TR_OK)
            sk_engine_record_entered(g->sale, op->order.state, 1);
        group_complete(r, op);
    }
    sstate_free(&g->st);
    g->decided = true;
}

/* A script call that found the script cache without it (a restarted or flushed Redis, a
 * promoted replica): the caller sends the script itself, once. */
static bool is_noscript(const redisReply *rep)
{
    return rep && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0;
}

static void on_group(redisAsyncContext *ac, void *reply, void *priv)
{
    group_t *g = priv;
    rbackend_t *r = g->batch->r;
    conn_t *c = ac->data;
    redisReply *rep = reply;
    g->outstanding--;
    if (g->decided) {
        group_release(g);
        return;
    }
    if (!rep) {
        group_unavailable(g); /* the connection went: the outcome is unknown (I6) */
        group_release(g);
        return;
    }
    unsigned slot;
    sk_rcluster_node_t to;
    sk_rcluster_redirect_t kind = sk_rcluster_redirect(rep, &slot, &to);
    if (kind == SK_RCLUSTER_MOVED || kind == SK_RCLUSTER_ASK) {
        /* The script did not run there. Sent again at once: the scripts of this sale
         * sent after it meet the same redirection on the same connection, in order, so
         * they follow it in order. */
        int node = sk_rcluster_node(r->map, to.host[0] ? to.host : r->map->nodes[c->node].host, to.port);
        if (node < 0 || ++g->hops > SK_RCLUSTER_HOPS) {
            sk_warn("redis: purchase script for sale '%s': too many redirections (%s)", g->sale->id, rep->str);
            group_unavailable(g);
            group_release(g);
            return;
        }
        if (kind == SK_RCLUSTER_MOVED) {
            if (r->map->owner[slot] != node) {
                char name[300];
                sk_info("redis: slot %u (sale '%s') moved to %s; following it", slot, g->sale->id,
                        sk_rcluster_name(r->map, node, name, sizeof(name)));
            }
            r->map->owner[slot] = (uint16_t)node;
            r->map->version++;
            topology_soon(r);
        } else {
            g->target = node;
            g->asking = true;
        }
        send_group(r, g);
        group_release(g);
        return;
    }
    if (kind == SK_RCLUSTER_TRYAGAIN || kind == SK_RCLUSTER_DOWN) {
        /* Nothing ran: the slot is half moved or the cluster cannot serve it now. The
         * buyers retry (503); the map is read again meanwhile. */
        if (kind == SK_RCLUSTER_DOWN)
            topology_soon(r);
        group_unavailable(g);
        group_release(g);
        return;
    }
    if (is_noscript(rep) && !g->eval) {
        /* Someone flushed the script cache: send the script itself this once, and load
         * it again for the batches that follow. */
        g->eval = true;
        g->target = c->node;
        send_group(r, g);
        if (c->ev.ac)
            redisAsyncCommand(c->ev.ac, NULL, NULL, "SCRIPT LOAD %b", r->buy_lua->text, r->buy_lua->len);
        group_release(g);
        return;
    }
    if (!group_parse(g, rep, c->node)) {
        /* (The poll's calls fail quietly: it runs every few hundred milliseconds.) */
        if (!g->batch->tick)
            sk_warn("redis: the script for sale '%s' failed: %s", g->sale->id,
                    rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
        else
            note_redirect(r, rep);
        group_unavailable(g);
        group_release(g);
        return;
    }
    if (r->replicas_ack > 0) {
        /* The script ran; the answers wait for the WAIT that closed its round here.
         * Reads of orders are answered now, as reads of the store always were: a buyer
         * whose purchase was answered 503 (too few replicas) finds the order. */
        for (size_t i = 0; i < g->n; i++) {
            sk_op_t *op = g->ops[i];
            if (op && (op->kind == SK_OP_GET_ORDER || op->kind == SK_OP_ORDERS)) {
                group_complete(r, op);
                g->ops[i] = NULL;
            }
        }
        g->ack_conn = c;
        if (g->outstanding == 0)
            group_unavailable(g); /* no WAIT could be sent */
        group_release(g);
        return;
    }
    group_commit(g);
    group_release(g);
}

static void on_round_ack(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    round_t *rd = priv;
    conn_t *c = rd->c;
    rbackend_t *r = c->r;
    redisReply *rep = reply;
    c->wait_out = false;
    bool enough = rep && rep->type == REDIS_REPLY_INTEGER && rep->integer >= r->replicas_ack;
    if (rep && !enough) {
        uint64_t now = sk_loop_now(r->loop);
        if (now - r->last_ack_log_ms >= 10000 || r->last_ack_log_ms == 0) {
            char name[300];
            sk_warn("redis at %s: WAIT saw %lld of %d replicas within %d ms; the batch is answered 503 "
                    "(its orders may exist: buyers can look them up)",
                    conn_name(c, name, sizeof(name)), rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1LL,
                    r->replicas_ack, r->replicas_timeout_ms);
            r->last_ack_log_ms = now;
        }
    }
    for (size_t k = 0; k < rd->n; k++) {
        group_t *g = rd->groups[k];
        g->outstanding--;
        /* Only a script that ran here counts (a group redirected elsewhere was in this
         * round too, and waits for its own). */
        if (!g->decided && g->ack_conn == c) {
            if (enough) {
                group_commit(g);
            } else {
                /* The orders exist on the primary but not on enough replicas: a
                 * failover could lose them, so nothing is confirmed (503: the buyer
                 * asks later). */
                if (rep)
                    sk_engine_count_replica_timeout(r->e);
                group_unavailable(g);
            }
        }
        group_release(g);
    }
    free(rd->groups);
    free(rd);
    /* What waited for this round goes now (its own WAIT at the end of the turn). */
    size_t n = c->n_held;
    if (n && usable(c)) {
        group_t **held = sk_xmalloc(n * sizeof(*held));
        memcpy(held, c->held, n * sizeof(*held));
        c->n_held = 0;
        for (size_t k = 0; k < n; k++) {
            send_group(r, held[k]);
            group_release(held[k]);
        }
        free(held);
    } else if (n) {
        drop_held(c);
    }
}

/* Forms one batch from the ops taken: the ops a sale's script decides grouped by sale, the rest sent alone. */
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
        if (!scripted(op)) {
            single_send(r, op);
            continue;
        }
        if (op->kind == SK_OP_BUY) {
            if (!op->user_hash)
                op->user_hash = sk_user_hash(op->user_id, op->user_len);
            if (sk_engine_gate(op->sale, op->now_ms, op->user_hash, op->quantity, &op->result, &op->remaining)) {
                /* The users arrived while this purchase was queued: answered here. */
                group_complete(r, op);
                continue;
            }
        }
        if (!route(r, sale_slot(op->sale))) {
            answer_unavailable(op);
            group_complete(r, op);
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
        ops[n_buys++] = op; /* compact the scripted ops to the front, in order */
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
    size_t off = 0;
    for (size_t k = 0; k < n_groups; k++) {
        b->groups[k] = (group_t){.batch = b, .sale = gsale[k], .ops = b->ops + off, .n = 0, .target = -1};
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
    b->counted = true;
    for (size_t k = 0; k < n_groups; k++) {
        send_group(r, &b->groups[k]);
        group_release(&b->groups[k]);
    }
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

/* Parses "seq\treq\tcreated_at[\tunits]" (a record of buy.lua's holders hash: the
 * first order of a holder carries the units the holder has after it) into o. */
static bool parse_order(const char *p, size_t len, sk_order_t *o)
{
    const char *end = p + len;
    const char *t1 = memchr(p, '\t', len);
    const char *t2 = t1 ? memchr(t1 + 1, '\t', (size_t)(end - t1 - 1)) : NULL;
    if (!t2)
        return false;
    const char *t3 = memchr(t2 + 1, '\t', (size_t)(end - t2 - 1));
    if (t3)
        end = t3;
    int64_t seq, at;
    size_t rl = (size_t)(t2 - t1 - 1);
    if (sk_parse_i64(p, (size_t)(t1 - p), 1, INT64_MAX, &seq) < 0 ||
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

/* Parses an order record of the sale's o hash ("user\treq\tqty\tstate\tcreated\tpay_by\t
 * payment_id\tpaid_at\tclosed_at", buy.lua) into o. */
static bool parse_record(const char *p, size_t len, uint64_t seq, sk_order_t *o)
{
    const char *f[9];
    size_t l[9];
    size_t k = 0, pos = 0;
    while (k < 9) {
        const char *t = memchr(p + pos, '\t', len - pos);
        size_t n = t ? (size_t)(t - (p + pos)) : len - pos;
        f[k] = p + pos;
        l[k++] = n;
        if (!t)
            break;
        pos += n + 1;
    }
    int64_t q, st, c, pb, pa, cl;
    if (k != 9 || l[0] > SK_USER_MAX || l[1] > SK_REQUEST_MAX || l[6] > SK_PAYMENT_ID_MAX ||
        sk_parse_i64(f[2], l[2], 1, SK_LIMIT_MAX, &q) < 0 ||
        sk_parse_i64(f[3], l[3], 0, SK_ORDER__COUNT - 1, &st) < 0 || sk_parse_i64(f[4], l[4], 0, INT64_MAX, &c) < 0 ||
        sk_parse_i64(f[5], l[5], 0, INT64_MAX, &pb) < 0 || sk_parse_i64(f[7], l[7], 0, INT64_MAX, &pa) < 0 ||
        sk_parse_i64(f[8], l[8], 0, INT64_MAX, &cl) < 0)
        return false;
    memset(o, 0, sizeof(*o));
    o->seq = seq;
    memcpy(o->user_id, f[0], l[0]);
    memcpy(o->request_id, f[1], l[1]);
    memcpy(o->payment_id, f[6], l[6]);
    o->quantity = (uint32_t)q;
    o->state = (sk_order_state_t)st;
    o->created_at = c;
    o->pay_by = pb;
    o->paid_at = pa;
    o->closed_at = cl;
    return true;
}

static void on_list(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    single_t *x = priv;
    redisReply *rep = reply;
    sk_op_t *op = x->op;
    op->status = -EIO;
    /* [orders made, [record of list_after + 1, ...]] */
    int64_t total;
    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 && rep->element[1]->type == REDIS_REPLY_ARRAY &&
        (rep->element[0]->type == REDIS_REPLY_NIL || sk_redis_reply_i64(rep->element[0], 0, INT64_MAX, &total))) {
        if (rep->element[0]->type == REDIS_REPLY_NIL)
            total = sk_sale_sold(op->sale); /* (a record written before quantities) */
        const redisReply *recs = rep->element[1];
        uint64_t have = (uint64_t)total > op->list_after ? (uint64_t)total - op->list_after : 0;
        size_t n = (size_t)SK_MIN((uint64_t)op->list_limit, have);
        op->orders = n ? sk_xcalloc(n, sizeof(sk_order_t)) : NULL;
        op->n_orders = 0;
        op->list_more = have > op->list_limit;
        op->status = 0;
        for (size_t i = 0; i < n && op->status == 0; i++) {
            const redisReply *v = i < recs->elements ? recs->element[i] : NULL;
            if (!v || v->type == REDIS_REPLY_NIL) {
                /* Retired by the drain (or written before the order records): these
                 * orders are read in the system of record. */
                op->status = -ESTALE;
            } else if (v->type != REDIS_REPLY_STRING ||
                       !parse_record(v->str, v->len, op->list_after + 1 + i, &op->orders[op->n_orders++])) {
                op->status = -EIO;
            }
        }
    } else {
        note_redirect(x->r, rep);
    }
    single_done(x);
}

static void on_log(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    single_t *x = priv;
    redisReply *rep = reply;
    sk_op_t *op = x->op;
    op->status = -EIO;
    if (rep && rep->type == REDIS_REPLY_ARRAY) {
        op->entries = rep->elements ? sk_xcalloc(rep->elements, sizeof(*op->entries)) : NULL;
        op->n_entries = 0;
        op->status = 0;
        for (size_t i = 0; i < rep->elements && op->status == 0; i++) {
            const redisReply *v = rep->element[i];
            if (v->type != REDIS_REPLY_STRING || sk_redis_trail_parse(v->str, v->len, &op->entries[i]) < 0)
                op->status = -EIO;
            else
                op->n_entries++;
        }
    } else {
        note_redirect(x->r, rep);
    }
    single_done(x);
}

/* A new sale is made in steps, each answered (and, with --replicas-ack, on enough
 * replicas) before the next starts: the index entry, then the sale record; the 201 only
 * after both. A failover in between then leaves at most an indexed id without its
 * record (the poll skips it, a retry of the create makes it), never a record that cannot
 * be found nor an answered sale that the promoted replica does not have. */
static void on_create(redisAsyncContext *ac, void *reply, void *priv);
static void on_create_ack(redisAsyncContext *ac, void *reply, void *priv);

static void create_fail(single_t *x, const redisReply *rep)
{
    note_redirect(x->r, rep);
    x->op->status = -EIO;
    single_done(x);
}

/* Sends the sale record's script (step 1). */
static void create_record(single_t *x)
{
    rbackend_t *r = x->r;
    sk_sale_t *s = x->op->new_sale;
    x->step = 1;
    conn_t *c = route(r, sk_rcluster_sale_slot(s->id, s->id_len));
    char key[SK_REDIS_KEY_MAX + 1];
    sk_redis_key(key, s->id, s->id_len, "sale");
    const sk_sale_params_t *p = sk_sale_params(s);
    if (!c || redisAsyncCommand(
                  c->ev.ac, on_create, x, "EVALSHA %s 1 %s %b %s %lld %lld %lld %lld %lld %lld %lld %d %lld %d %lld %d",
                  r->create_sha, key, s->id, s->id_len, p->name, (long long)sale_stock(s), (long long)p->starts_at,
                  (long long)p->ends_at, (long long)p->per_user_limit, (long long)s->created_at,
                  (long long)p->payment_window_ms, (long long)p->max_quantity, QUEUE_ARGS(p)) != REDIS_OK)
        create_fail(x, NULL);
}

/* With --replicas-ack: a harmless write (the step may have written nothing: the id was
 * indexed before) and a WAIT on the connection the step ran on. */
static void create_wait(single_t *x, conn_t *c, const char *fence)
{
    rbackend_t *r = x->r;
    if (!usable(c)) {
        create_fail(x, NULL);
        return;
    }
    redisAsyncCommand(c->ev.ac, NULL, NULL, "SET %s 1", fence);
    redisAsyncCommand(c->ev.ac, NULL, NULL, "DEL %s", fence);
    if (redisAsyncCommand(c->ev.ac, on_create_ack, x, "WAIT %d %d", r->replicas_ack, r->replicas_timeout_ms) !=
        REDIS_OK)
        create_fail(x, NULL);
}

/* The sale record is made (and acknowledged): the sale is this node's too. */
static void create_done(single_t *x)
{
    rbackend_t *r = x->r;
    sk_op_t *op = x->op;
    /* The index poll may have registered it in the meantime (it reads the same
     * Redis); then the registered one is this sale. */
    sk_sale_t *s = sk_engine_lookup_sale(r->e, op->new_sale->id, op->new_sale->id_len);
    if (!s) {
        s = op->new_sale;
        op->new_sale = NULL;
        sk_engine_register_sale(r->e, s);
        rsale_reset(&r->sales[s->index]);
        r->sales[s->index].pv = 0;
    }
    op->sale = s;
    op->status = 0;
    single_done(x);
}

static void on_create_index(redisAsyncContext *ac, void *reply, void *priv)
{
    single_t *x = priv;
    redisReply *rep = reply;
    if (!rep || rep->type != REDIS_REPLY_INTEGER) {
        create_fail(x, rep);
        return;
    }
    if (x->r->replicas_ack > 0)
        create_wait(x, ac->data, "{" SK_REDIS_SALES_KEY "}:ack");
    else
        create_record(x);
}

static void on_create_ack(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    single_t *x = priv;
    rbackend_t *r = x->r;
    redisReply *rep = reply;
    if (!rep || rep->type != REDIS_REPLY_INTEGER || rep->integer < r->replicas_ack) {
        if (rep)
            sk_engine_count_replica_timeout(r->e);
        create_fail(x, NULL);
    } else if (x->step == 0) {
        create_record(x);
    } else {
        create_done(x);
    }
}

static void on_create(redisAsyncContext *ac, void *reply, void *priv)
{
    single_t *x = priv;
    rbackend_t *r = x->r;
    conn_t *c = ac->data;
    redisReply *rep = reply;
    sk_op_t *op = x->op;
    if (is_noscript(rep) && !x->eval_retry && usable(c)) {
        x->eval_retry = true;
        sk_sale_t *s = op->new_sale;
        char key[SK_REDIS_KEY_MAX + 1];
        sk_redis_key(key, s->id, s->id_len, "sale");
        const sk_sale_params_t *p = sk_sale_params(s);
        redisAsyncCommand(
            c->ev.ac, on_create, x, "EVAL %b 1 %s %b %s %lld %lld %lld %lld %lld %lld %lld %d %lld %d %lld %d",
            r->create_lua->text, r->create_lua->len, key, s->id, s->id_len, p->name, (long long)sale_stock(s),
            (long long)p->starts_at, (long long)p->ends_at, (long long)p->per_user_limit, (long long)s->created_at,
            (long long)p->payment_window_ms, (long long)p->max_quantity, QUEUE_ARGS(p));
        return;
    }
    if (rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 1) {
        if (r->replicas_ack > 0) {
            char fence[SK_REDIS_KEY_MAX + 1];
            sk_redis_key(fence, op->new_sale->id, op->new_sale->id_len, "ack");
            create_wait(x, c, fence);
        } else {
            create_done(x);
        }
    } else if (rep && rep->type == REDIS_REPLY_INTEGER) {
        op->status = -EEXIST;
        single_done(x);
    } else {
        create_fail(x, rep);
    }
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
    note_redirect(r, rep);
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
    sk_sale_t *s = sk_engine_lookup_sale(r->e, stub->id, stub->id_len);
    uint32_t k = miss_slot(stub->id, stub->id_len);
    if (s || (r->miss[k].until_ms > sk_loop_now(r->loop) && strcmp(r->miss[k].id, stub->id) == 0)) {
        lookup_resolved(r, op, s);
        return;
    }
    conn_t *c = route(r, sk_rcluster_sale_slot(stub->id, stub->id_len));
    if (!c) {
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
    if (redisAsyncCommand(c->ev.ac, on_lookup, x, "HGETALL %s", key) == REDIS_OK) {
        r->n_singles++;
    } else {
        free(x);
        op->status = -EIO;
        op->result = SK_BUY_UNAVAILABLE;
        sk_engine_complete(r->e, op);
    }
}

/* ---- waiting rooms (redis_queue.h, lua/queue.lua) ------------------------------------------
 * A join or a question is one call of queue.lua, sent alone down the sale's connection
 * (so it is decided after the purchases sent before it); the tick makes one call per
 * queued sale, which starts the queue and admits at its rate by Redis's clock. Every
 * reply carries the queue's length and head, published for the workers' subscribers. */

/* One call: an op's (a join or a question) or the tick's (op NULL). */
typedef struct {
    rbackend_t *r;
    sk_sale_t *sale;
    sk_op_t *op;
    bool eval_retry;
} qcall_t;

static void queue_send(rbackend_t *r, qcall_t *x);

static void queue_publish(rbackend_t *r, sk_sale_t *s, const sk_rqueue_reply_t *q)
{
    rsale_t *rs = &r->sales[s->index];
    /* Replies may overtake each other (after a redirection): the queue only grows. */
    if (q->len > rs->q_len || q->head > rs->q_head) {
        rs->q_len = SK_MAX(rs->q_len, q->len);
        rs->q_head = SK_MAX(rs->q_head, q->head);
        sk_engine_publish_queue(s, rs->q_len, rs->q_head);
    }
}

static void qcall_done(qcall_t *x)
{
    rbackend_t *r = x->r;
    if (x->op) {
        sk_engine_complete(r->e, x->op);
        r->n_singles--;
    } else {
        r->sales[x->sale->index].qtick_busy = false;
    }
    free(x);
}

static void on_queue(redisAsyncContext *ac, void *reply, void *priv)
{
    qcall_t *x = priv;
    rbackend_t *r = x->r;
    conn_t *c = ac->data;
    redisReply *rep = reply;
    if (!r->done && is_noscript(rep) && !x->eval_retry && usable(c)) {
        x->eval_retry = true; /* (a Redis restarted without its scripts) */
        queue_send(r, x);
        return;
    }
    sk_rqueue_reply_t q;
    memset(&q, 0, sizeof(q));
    int rc = rep && !r->done ? sk_rqueue_parse(rep, &q) : -EIO;
    if (rc == 0) {
        queue_publish(r, x->sale, &q);
        sk_engine_record_queue(r->e, x->op && q.place.joined ? 1 : 0, q.admitted);
    } else if (rep) {
        note_redirect(r, rep);
    }
    if (x->op) {
        x->op->status = rc < 0 ? -EIO : q.status;
        if (rc == 0 && q.status == 0)
            x->op->place = q.place;
    }
    qcall_done(x);
}

static void queue_send(rbackend_t *r, qcall_t *x)
{
    conn_t *c = route(r, sale_slot(x->sale));
    sk_rqueue_args_t a;
    if (c) {
        int argc = sk_rqueue_args(&a, x->eval_retry ? NULL : r->queue_sha, r->queue_lua->text, r->queue_lua->len,
                                  x->sale, x->op);
        if (redisAsyncCommandArgv(c->ev.ac, on_queue, x, argc, a.argv, a.lens) == REDIS_OK)
            return;
    }
    if (x->op)
        x->op->status = -EIO;
    qcall_done(x);
}

static void queue_call(rbackend_t *r, sk_sale_t *s, sk_op_t *op)
{
    qcall_t *x = sk_xcalloc(1, sizeof(*x));
    x->r = r;
    x->sale = s;
    x->op = op;
    if (op)
        r->n_singles++;
    else
        r->sales[s->index].qtick_busy = true;
    queue_send(r, x);
}

/* Whether the tick calls queue.lua for sale s: a queued sale from its queue's opening
 * until its end (then nobody may join nor buy). */
static bool queue_live(const rbackend_t *r, const sk_sale_t *s, int64_t now)
{
    const sk_sale_params_t *p = sk_sale_params(s);
    const rsale_t *rs = &r->sales[s->index];
    if (p->queue == SK_QUEUE_OFF || rs->retired || rs->closed || p->closed || rs->qtick_busy)
        return false;
    int64_t opens = p->queue_opens_at ? p->queue_opens_at : s->created_at;
    return now >= opens - REFRESH_MARGIN_MS && now <= p->ends_at + REFRESH_MARGIN_MS;
}

static void single_send(rbackend_t *r, sk_op_t *op)
{
    if (op->kind == SK_OP_QUEUE) {
        queue_call(r, op->sale, op);
        return;
    }
    if (op->kind == SK_OP_CONTROL) {
        op->status = -EIO; /* (a control without its request: the API always gives one) */
        sk_engine_complete(r->e, op);
        return;
    }
    unsigned slot = op->kind == SK_OP_CREATE_SALE ? sk_rcluster_sale_slot(op->new_sale->id, op->new_sale->id_len)
                                                  : sale_slot(op->sale);
    conn_t *c = route(r, slot);
    if (!c) {
        op->status = -EIO;
        sk_engine_complete(r->e, op);
        return;
    }
    single_t *x = sk_xcalloc(1, sizeof(*x));
    x->r = r;
    x->op = op;
    r->n_singles++;
    char key[SK_REDIS_KEY_MAX + 1];
    redisAsyncContext *ac = c->ev.ac;
    int rc = REDIS_ERR;
    switch (op->kind) {
    case SK_OP_LIST: {
        /* Seqs are dense: the page is the records list_after + 1 .. + list_limit, read
         * with the count of orders in one transaction (both keys in the sale's slot). */
        size_t n = op->list_limit, argc = 2 + n;
        const char **argv = sk_xmalloc(argc * sizeof(*argv));
        size_t *lens = sk_xmalloc(argc * sizeof(*lens));
        char(*nums)[24] = sk_xmalloc((n ? n : 1) * sizeof(*nums));
        argv[0] = "HMGET";
        lens[0] = 5;
        lens[1] = sk_redis_key(key, op->sale->id, op->sale->id_len, "o");
        argv[1] = key;
        for (size_t i = 0; i < n; i++) {
            lens[2 + i] = sk_fmt_u64(nums[i], op->list_after + 1 + i);
            argv[2 + i] = nums[i];
        }
        char skey[SK_REDIS_KEY_MAX + 1];
        sk_redis_key(skey, op->sale->id, op->sale->id_len, "sale");
        redisAsyncCommand(ac, NULL, NULL, "MULTI");
        redisAsyncCommand(ac, NULL, NULL, "HGET %s seq", skey);
        if (n)
            redisAsyncCommandArgv(ac, NULL, NULL, (int)argc, argv, lens);
        else
            redisAsyncCommand(ac, NULL, NULL, "HMGET %s 0", key);
        rc = redisAsyncCommand(ac, on_list, x, "EXEC");
        free(nums);
        free(lens);
        free(argv);
        break;
    }
    case SK_OP_LOG:
        sk_redis_key(key, op->sale->id, op->sale->id_len, "log");
        rc = redisAsyncCommand(ac, on_log, x, "LRANGE %s 0 -1", key);
        break;
    case SK_OP_CREATE_SALE: {
        sk_sale_t *s = op->new_sale;
        if (sk_engine_lookup_sale(r->e, s->id, s->id_len)) {
            op->status = -EEXIST;
            single_done(x);
            return;
        }
        if (sk_engine_sale_count(r->e) >= SK_MAX_SALES) {
            op->status = -ENOSPC;
            single_done(x);
            return;
        }
        /* Index first: a sale may then be indexed but missing (a failed create, which
         * the poll skips), never present but undiscoverable. With a cluster the index
         * usually lives on another primary; its ZADD goes there, and the record's
         * script only once the ZADD is answered (on_create_index). */
        conn_t *ic = route(r, index_slot());
        if (!ic) {
            op->status = -EIO;
            single_done(x);
            return;
        }
        rc = redisAsyncCommand(ic->ev.ac, on_create_index, x, "ZADD %s NX %lld %b", SK_REDIS_SALES_KEY,
                               (long long)s->created_at, s->id, s->id_len);
        break;
    }
    default: /* scripted ops go in groups; FIND_SALE to lookup */
        break;
    }
    if (rc != REDIS_OK) {
        op->status = -EIO;
        single_done(x);
    }
}

/* ---- users of sales that take no order for now ------------------------------------------
 * Once a sale is done (sale_done: over, or sold out with no reservation pending), the node
 * reads its holders hash (HSCAN) and puts its users into a user set it hands to the
 * engine, after which the node's workers answer the sale's non-holders themselves. The
 * hash, not the order stream, because the drain trims the stream once the orders are in
 * the system of record; the hash stays while the sale is live. The read covers the
 * orders up to the count last seen (want); users of later orders found on the way are
 * taken too, and the script's replies carry the users of every order after `want` (the
 * `since` argument), so the set stays complete for the counts the node publishes. */

static void holders_request(rbackend_t *r, sk_sale_t *s);

/* How many orders the done sale has (-1: not done as far as this node knows). */
static int64_t final_count(const rbackend_t *r, const sk_sale_t *s)
{
    const rsale_t *rs = &r->sales[s->index];
    sk_sale_counts_t c;
    sk_sale_counts(s, &c);
    return rs->nseq >= 0 && sale_done(rs, s, &c) ? rs->nseq : -1;
}

static void hload_free(hload_t *l)
{
    if (!l)
        return;
    free(l->orders);
    free(l->extra);
    free(l);
}

static void holders_failed(rbackend_t *r, rsale_t *rs)
{
    hload_free(rs->loading);
    rs->loading = NULL;
    rs->load_retry_ms = sk_loop_now(r->loop) + 5000;
}

static void holders_adopt(sk_sale_t *s, rsale_t *rs)
{
    hload_t *l = rs->loading;
    rs->loading = NULL;
    sk_userset_t *u = sk_userset_new();
    for (int64_t i = 0; i < l->want; i++)
        sk_userset_insert(u, l->orders[i].user_hash);
    for (size_t i = 0; i < l->n_extra; i++)
        sk_userset_insert(u, l->extra[i]);
    sk_info("sale '%s' %s: %zu holders of %lld orders cached, non-holders are answered locally", s->id,
            sk_sale_is_sold_out(s) ? "sold out" : "ended", sk_userset_count(u), (long long)l->want);
    rs->users_seq = l->want;
    hload_free(l);
    sk_engine_publish_users(s, u); /* the engine's from here on */
}

/* Records one order read from the hash (seq, request, time: "seq\treq\tat"). Returns
 * false when it does not parse, is out of range, or contradicts one read before. */
static bool hload_put(hload_t *l, const char *user, size_t ul, const char *rec, size_t len)
{
    sk_order_t o;
    if (!sk_valid_user_id(user, ul) || !parse_order(rec, len, &o))
        return false;
    uint64_t uh = sk_user_hash(user, ul), rh = sk_user_hash(o.request_id, strlen(o.request_id));
    if ((int64_t)o.seq > l->want) {
        /* Made while the hash was read (units came back): its user is taken too. */
        if (l->n_extra == l->cap_extra) {
            l->cap_extra = l->cap_extra ? 2 * l->cap_extra : 64;
            l->extra = sk_xrealloc(l->extra, l->cap_extra * sizeof(*l->extra));
        }
        l->extra[l->n_extra++] = uh;
        return true;
    }
    struct hl_order *d = &l->orders[o.seq - 1];
    if (d->set) {
        /* HSCAN may return a field twice; the same order again is fine. */
        return d->user_hash == uh && d->req_hash == rh;
    }
    d->set = true;
    d->user_hash = uh;
    d->req_hash = rh;
    l->found++;
    return true;
}

static void on_holders(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    sk_sale_t *s = priv;
    rbackend_t *r = ((conn_t *)ac->data)->r;
    rsale_t *rs = &r->sales[s->index];
    redisReply *rep = reply;
    rs->load_busy = false;
    hload_t *l = rs->loading;
    if (!l)
        return;
    /* [retired_at of the sale, [cursor, [field, value, ...]]] */
    bool ok = rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
              rep->element[1]->type == REDIS_REPLY_ARRAY && rep->element[1]->elements == 2 &&
              rep->element[1]->element[0]->type == REDIS_REPLY_STRING &&
              rep->element[1]->element[1]->type == REDIS_REPLY_ARRAY;
    if (!ok) {
        note_redirect(r, rep);
        holders_failed(r, rs);
        return;
    }
    if (final_count(r, s) < 0) {
        /* Units came back meanwhile: the set would not be used; read it again when the
         * sale is done again. */
        hload_free(rs->loading);
        rs->loading = NULL;
        return;
    }
    if (rep->element[0]->type == REDIS_REPLY_STRING) {
        /* Retired by the drain: the holders are gone from Redis on purpose. */
        if (!rs->retired)
            sk_info("sale '%s' is retired: its orders are in the system of record; purchases of it are "
                    "answered by Redis's script",
                    s->id);
        rs->retired = true;
        hload_free(rs->loading);
        rs->loading = NULL;
        return;
    }
    const redisReply *kv = rep->element[1]->element[1];
    for (size_t i = 0; ok && i + 1 < kv->elements; i += 2) {
        const redisReply *f = kv->element[i], *v = kv->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
            ok = false;
            break;
        }
        /* "<user>": "count\tseq\treq\tat"; "<user>\t<i>": "seq\treq\tat"; "<user>\n<req>": an index. */
        const char *tab = memchr(f->str, '\t', f->len);
        if (memchr(f->str, '\n', f->len))
            continue;
        if (tab) {
            /* "<user>\t<i>": "seq\treq\tat" */
            ok = hload_put(l, f->str, (size_t)(tab - f->str), v->str, v->len);
        } else {
            const char *t = memchr(v->str, '\t', v->len);
            ok = t && hload_put(l, f->str, f->len, t + 1, v->len - (size_t)(t + 1 - v->str));
        }
    }
    if (!ok) {
        sk_error("redis: the holders of sale '%s' hold a record that is malformed or out of place; its users are "
                 "not cached (every purchase keeps going to Redis)",
                 s->id);
        holders_failed(r, rs);
        return;
    }
    const redisReply *cur = rep->element[1]->element[0];
    snprintf(l->cursor, sizeof(l->cursor), "%.*s", (int)SK_MIN(cur->len, sizeof(l->cursor) - 1), cur->str);
    if (strcmp(l->cursor, "0") != 0) {
        holders_request(r, s);
        return;
    }
    if (l->found != l->want) {
        sk_error("redis: the holders of sale '%s' hold %lld orders, it sold %lld; its users are not cached", s->id,
                 (long long)l->found, (long long)l->want);
        holders_failed(r, rs);
        return;
    }
    holders_adopt(s, rs);
}

static void holders_request(rbackend_t *r, sk_sale_t *s)
{
    rsale_t *rs = &r->sales[s->index];
    conn_t *c = route(r, sale_slot(s));
    if (!c)
        return;
    char key[SK_REDIS_KEY_MAX + 1], skey[SK_REDIS_KEY_MAX + 1];
    sk_redis_key(key, s->id, s->id_len, "holders");
    sk_redis_key(skey, s->id, s->id_len, "sale");
    /* One script-free round trip per chunk that also says whether the drain retired
     * the sale (then the hash is gone on purpose). A transaction keeps the two
     * replies in one, and both keys are in the sale's slot. */
    if (redisAsyncCommand(c->ev.ac, NULL, NULL, "MULTI") != REDIS_OK)
        return;
    redisAsyncCommand(c->ev.ac, NULL, NULL, "HGET %s retired_at", skey);
    redisAsyncCommand(c->ev.ac, NULL, NULL, "HSCAN %s %s COUNT %d", key, rs->loading->cursor, HOLDERS_CHUNK);
    if (redisAsyncCommand(c->ev.ac, on_holders, s, "EXEC") == REDIS_OK)
        rs->load_busy = true;
}

static void maybe_load_holders(rbackend_t *r, sk_sale_t *s)
{
    rsale_t *rs = &r->sales[s->index];
    int64_t want = final_count(r, s);
    if (want < 0 || users_known(s) || rs->load_busy || rs->retired || sk_loop_now(r->loop) < rs->load_retry_ms)
        return;
    if (!rs->loading) {
        hload_t *l = sk_xcalloc(1, sizeof(*l));
        l->want = want;
        snprintf(l->cursor, sizeof(l->cursor), "0");
        l->orders = sk_xcalloc((size_t)(want ? want : 1), sizeof(*l->orders));
        rs->loading = l;
    }
    if (want == 0) {
        holders_adopt(s, rs); /* ended without a sale: nothing to read */
        return;
    }
    holders_request(r, s);
}

/* ---- the periodic poll: new sales, sold counts, deadlines -------------------------------- */

static void on_sale_fetched(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)priv;
    rbackend_t *r = ((conn_t *)ac->data)->r;
    if (!reply)
        r->index_orphans = true; /* the connection went: read the index again */
    if (reply && !r->done) {
        sk_sale_t *s = register_from_reply(r, reply);
        if (s) {
            maybe_load_holders(r, s);
        } else {
            note_redirect(r, reply);
            r->index_orphans = true;
        }
    }
}

static void on_index(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)priv;
    rbackend_t *r = ((conn_t *)ac->data)->r;
    redisReply *rep = reply;
    r->sync_busy = false;
    if (!rep || rep->type != REDIS_REPLY_ARRAY || r->done) {
        note_redirect(r, rep);
        return;
    }
    r->index_seen = (long long)rep->elements;
    r->index_orphans = false;
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *id = rep->element[i];
        if (id->type != REDIS_REPLY_STRING || !sk_valid_sale_id(id->str, id->len) ||
            sk_engine_lookup_sale(r->e, id->str, id->len))
            continue;
        conn_t *c = route(r, sk_rcluster_sale_slot(id->str, id->len));
        if (!c) {
            r->index_orphans = true; /* read again next time */
            continue;
        }
        char key[SK_REDIS_KEY_MAX + 1];
        sk_redis_key(key, id->str, id->len, "sale");
        redisAsyncCommand(c->ev.ac, on_sale_fetched, NULL, "HGETALL %s", key);
    }
}

static void on_index_count(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)priv;
    conn_t *c = ac->data;
    rbackend_t *r = c->r;
    redisReply *rep = reply;
    if (!rep || rep->type != REDIS_REPLY_INTEGER || r->done || !usable(c)) {
        note_redirect(r, rep);
        r->sync_busy = false;
        return;
    }
    /* Sales are only ever added to the index (a retired sale keeps its record): a size
     * unlike the last full read's means something to look at. Ids indexed without a
     * sale (a create that failed half-way, or one still in flight) keep the full read
     * going until they resolve. */
    if (rep->integer == r->index_seen && !r->index_orphans) {
        r->sync_busy = false;
        return;
    }
    redisAsyncCommand(c->ev.ac, on_index, NULL, "ZRANGE %s 0 -1", SK_REDIS_SALES_KEY);
}

/* A script call without ops for one sale (the poll): it expires what is due and answers
 * the sale's counts, settings and the users of new orders. It is a group without ops in
 * a batch of its own, outside the window: it follows redirections like a purchase's,
 * and with --replicas-ack its reply is applied only after its round's WAIT, since what
 * it reports (a sell-out made by a script whose WAIT failed, here or on another node)
 * may not survive a failover. */
static void sale_tick(rbackend_t *r, sk_sale_t *s)
{
    rsale_t *rs = &r->sales[s->index];
    if (rs->tick_busy || rs->retired || r->done)
        return;
    if (!route(r, sale_slot(s)))
        return;
    batch_t *b = sk_xcalloc(1, sizeof(*b));
    b->r = r;
    b->tick = true;
    b->groups = sk_xcalloc(1, sizeof(*b->groups));
    b->n_groups = 1;
    b->waiting = 1;
    b->t0_ns = sk_mono_ns();
    b->groups[0] = (group_t){.batch = b, .sale = s, .target = -1};
    rs->tick_busy = true;
    send_group(r, &b->groups[0]);
    group_release(&b->groups[0]);
}

static void maybe_tick(rbackend_t *r, sk_sale_t *s)
{
    rsale_t *rs = &r->sales[s->index];
    if (rs->tick_busy)
        rs->tick_again = true; /* once the one out is back */
    else
        sale_tick(r, s);
}

/* Every TICK_MS: the sales whose first reservation is due (by the store's clock). Every
 * SYNC_TICKS: also the sales not seen yet since the start, the live ones (their counts
 * change on other nodes too), those with reservations pending and those whose users
 * this node keeps while they are not over. */
static void tick_sales(rbackend_t *r, bool sync)
{
    int64_t store_now = sk_engine_store_now(r->e);
    size_t n = sk_engine_sale_count(r->e);
    for (size_t i = 0; i < n; i++) {
        sk_sale_t *s = sk_engine_sale_by_index(r->e, i);
        rsale_t *rs = &r->sales[s->index];
        if (queue_live(r, s, store_now))
            queue_call(r, s, NULL);
        if (rs->retired || rs->tick_busy)
            continue;
        if (rs->next_due > 0 && rs->next_due < store_now) {
            sale_tick(r, s);
            continue;
        }
        if (!sync)
            continue;
        const sk_sale_params_t *p = sk_sale_params(s);
        bool live = store_now >= p->starts_at - REFRESH_MARGIN_MS && store_now <= p->ends_at + REFRESH_MARGIN_MS;
        bool over = rs->closed || p->closed;
        if (rs->nseq < 0 || rs->next_due > 0 || (live && !over) || (users_known(s) && !over)) {
            sale_tick(r, s);
            continue;
        }
        if (final_count(r, s) >= 0)
            maybe_load_holders(r, s);
    }
}

static void poll_store(rbackend_t *r)
{
    conn_t *ic = route(r, index_slot());
    if (ic && !r->sync_busy &&
        redisAsyncCommand(ic->ev.ac, on_index_count, NULL, "ZCARD %s", SK_REDIS_SALES_KEY) == REDIS_OK)
        r->sync_busy = true;
}

static void check_deadlines(conn_t *c, uint64_t now)
{
    /* Redis answers a connection's commands in order, so "a command has waited
     * TIMEOUT_MS and nothing at all was read meanwhile" is the whole deadline check:
     * it covers purchase batches, order look-ups and the poll alike. */
    bool waiting = c->ev.ac && c->ev.ac->replies.head != NULL;
    if (!waiting)
        c->quiet_ms = now;
    if (c->state == CONN_CONNECTING && now >= c->connect_deadline_ms)
        fail_connection(c, "no answer to the connection set-up", NULL);
    else if (c->state == CONN_READY && waiting && now - SK_MAX(c->quiet_ms, c->ev.last_read_ms) >= TIMEOUT_MS)
        fail_connection(c, "no answer within the timeout", NULL);
}

/* Whether a connection has waited STALL_MS for a reply and read nothing meanwhile (a
 * primary that hangs, or a WAIT that will time out: its replica is down). */
static bool conn_stalled(const conn_t *c, uint64_t now)
{
    return c->ev.ac && c->ev.ac->replies.head != NULL && now - SK_MAX(c->quiet_ms, c->ev.last_read_ms) >= STALL_MS;
}

/* A batch whose undecided groups all wait on stalled connections leaves the window: a
 * primary that does not answer holds back its own sales only (its groups are answered
 * 503 when it times out), not the batches of every other sale behind it. Its purchases
 * were taken from the engine's bounded queue, and a stalled connection is given up
 * within TIMEOUT_MS, so what waits beyond the window stays bounded too. */
static void release_stalled(rbackend_t *r, uint64_t now)
{
    for (batch_t *b = r->head; b; b = b->next) {
        if (!b->counted)
            continue;
        bool stuck = true;
        for (size_t k = 0; k < b->n_groups && stuck; k++) {
            const group_t *g = &b->groups[k];
            if (!g->decided && (!g->conn || !conn_stalled(g->conn, now)))
                stuck = false;
        }
        if (stuck) {
            b->counted = false;
            r->n_inflight--;
        }
    }
}

static void on_tick(sk_loop_t *loop, sk_timer_t *t)
{
    rbackend_t *r = SK_CONTAINER_OF(t, rbackend_t, tick);
    uint64_t now = sk_loop_now(loop);
    for (size_t i = 0; i < SK_RCLUSTER_NODES_MAX; i++)
        if (r->conns[i])
            check_deadlines(r->conns[i], now);
    release_stalled(r, now);
    read_topology(r);
    bool sync = ++r->ticks % SYNC_TICKS == 0;
    if (sync)
        poll_store(r);
    tick_sales(r, sync);
    sk_timer_start(loop, t, TICK_MS, on_tick);
}

/* ---- the loop ---------------------------------------------------------------------------- */

static void pump(rbackend_t *r)
{
    sk_engine_t *e = r->e;
    size_t window = INFLIGHT_PER_NODE * count_owners(r);
    for (;;) {
        if (r->n_inflight >= window)
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
    if (r->replicas_ack > 0)
        close_rounds(r);
    sk_engine_flush(r->e);
    if (sk_engine_stopping(r->e) && !r->head && r->n_singles == 0 && r->n_requeue == 0) {
        size_t n = sk_engine_take(r->e, r->take, r->max_batch);
        if (n) {
            form_batch(r, r->take, n);
            if (r->replicas_ack > 0)
                close_rounds(r);
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
    /* Every primary at once: the first batch of each sale finds its connection made. */
    for (unsigned s = 0; s < SK_RCLUSTER_SLOTS; s++) {
        int o = sk_rcluster_owner(r->map, s);
        if (o >= 0 && !r->conns[o])
            conn_get(r, o);
    }
    r->topo_due_ms = sk_loop_now(r->loop) + TOPOLOGY_MS;
    sk_timer_start(r->loop, &r->tick, TICK_MS, on_tick);
    sk_loop_run_or_exit(r->loop, "redis ledger");
    r->done = true;
    for (size_t i = 0; i < SK_RCLUSTER_NODES_MAX; i++) {
        conn_t *c = r->conns[i];
        if (!c)
            continue;
        c->state = CONN_DOWN;
        if (c->ev.ac)
            redisAsyncFree(c->ev.ac); /* nothing is in flight; poll callbacks see NULL */
        sk_timer_stop(r->loop, &c->reconnect);
        sk_timer_stop(r->loop, &c->drop);
    }
    sk_engine_flush(r->e);
    sk_timer_stop(r->loop, &r->tick);
    return NULL;
}

static int redis_start(sk_backend_t *b, sk_engine_t *e)
{
    rbackend_t *r = (rbackend_t *)b;
    r->e = e;
    /* The start-up connections are not needed any more. */
    for (int i = 0; i < SK_RCLUSTER_NODES_MAX; i++)
        sk_rcluster_sync_drop(r->map, i);
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
    if (r->loop) {
        sk_async_close(r->loop, &r->wake);
        sk_loop_remove_before_sleep(r->loop, before_sleep, r);
        sk_loop_free(r->loop);
    }
    for (size_t i = 0; i < SK_RCLUSTER_NODES_MAX; i++) {
        if (r->conns[i]) {
            free(r->conns[i]->round);
            free(r->conns[i]->held);
            free(r->conns[i]);
        }
    }
    sk_rcluster_free(r->map);
    if (r->sales) {
        for (size_t i = 0; i < SK_MAX_SALES; i++)
            hload_free(r->sales[i].loading);
        free(r->sales);
    }
    free(r->group_of);
    free(r->requeue);
    free(r->take);
    free(r);
}

sk_backend_t *sk_backend_redis_new(const sk_backend_redis_config_t *cfg, char *err, size_t err_size)
{
    sk_rcluster_t *map = sk_rcluster_new(cfg->url, err, err_size);
    if (!map)
        return NULL;
    const sk_text_t *buy = sk_text_find("lua/buy.lua"), *create = sk_text_find("lua/create_sale.lua"),
                    *queue = sk_text_find("lua/queue.lua");
    if (!buy || !create || !queue) {
        snprintf(err, err_size, "the Lua scripts of the Redis store are not built in");
        sk_rcluster_free(map);
        return NULL;
    }
    rbackend_t *r = sk_xcalloc(1, sizeof(*r));
    r->base = (sk_backend_t){.name = "redis",
                             .lookups = true,
                             .lifecycle = true,
                             .queue = true,
                             .load = redis_load,
                             .add_sale = redis_add_sale,
                             .start = redis_start,
                             .wake = redis_wake,
                             .stop = redis_stop,
                             .free = redis_free};
    r->map = map;
    sk_redis_redact(cfg->url, r->url, sizeof(r->url));
    r->max_batch = cfg->max_batch ? cfg->max_batch : 4096;
    r->replicas_ack = cfg->replicas_ack;
    r->replicas_timeout_ms =
        cfg->replicas_timeout_ms > 0 ? SK_MIN(cfg->replicas_timeout_ms, REPLICAS_TIMEOUT_MAX_MS) : 1000;
    r->buy_lua = buy;
    r->create_lua = create;
    r->queue_lua = queue;
    r->take = sk_xmalloc(r->max_batch * sizeof(*r->take));
    r->group_of = sk_xmalloc(SK_MAX_SALES * sizeof(*r->group_of));
    for (size_t i = 0; i < SK_MAX_SALES; i++)
        r->group_of[i] = -1;
    r->sales = sk_xcalloc(SK_MAX_SALES, sizeof(*r->sales));
    r->index_seen = -1;
    return &r->base;
}
