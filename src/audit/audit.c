/* The reconciliation (audit.h): what the client was told against what the store holds,
 * its log when it keeps one, and the sale's counts read during the run. The sources
 * live in audit_http.c, audit_sqlite.c, audit_pg.c and audit_mysql.c. */
#include "audit/audit.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/trail.h"
#include "loadgen/fetch.h"
#include "loadgen/users.h"
#include "util/common.h"

/* ------------------------------------------------------------------------------------
 * A set of strings with a small value, open addressing. Keys are copied into an arena. */

enum { K_MATCHED = 1, K_RECOVERED = 2 };

typedef struct {
    uint64_t hash; /* 0 = empty slot */
    uint64_t off;
    uint32_t len;
    uint32_t user;
    uint32_t flags;
    uint32_t resv; /* the reservation of this order + 1 (0: none) */
    uint32_t quantity; /* as the client was told; 0: not told */
} kslot_t;

typedef struct {
    kslot_t *slots;
    size_t cap, len;
    char *arena;
    size_t arena_len, arena_cap;
} kset_t;

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    h ^= h >> 29;
    return h ? h : 1;
}

static void kset_init(kset_t *s, size_t expect)
{
    memset(s, 0, sizeof(*s));
    s->cap = 64;
    while (s->cap < expect * 2)
        s->cap *= 2;
    s->slots = sk_xcalloc(s->cap, sizeof(kslot_t));
    sk_mem_huge(s->slots, s->cap * sizeof(kslot_t)); /* probed at random: fewer faults and TLB misses */
}

static void kset_free(kset_t *s)
{
    free(s->slots);
    free(s->arena);
}

static kslot_t *kset_find(kset_t *s, const char *k, size_t n, uint64_t h)
{
    size_t i = h & (s->cap - 1);
    for (;;) {
        kslot_t *e = &s->slots[i];
        if (e->hash == 0)
            return e;
        if (e->hash == h && e->len == n && memcmp(s->arena + e->off, k, n) == 0)
            return e;
        i = (i + 1) & (s->cap - 1);
    }
}

/* Returns the slot for k, inserting it (with user) when absent; *added tells which. */
static kslot_t *kset_put(kset_t *s, const char *k, size_t n, uint32_t user, bool *added)
{
    if ((s->len + 1) * 2 > s->cap) {
        kset_t g = *s;
        g.cap = s->cap * 2;
        g.slots = sk_xcalloc(g.cap, sizeof(kslot_t));
        sk_mem_huge(g.slots, g.cap * sizeof(kslot_t));
        for (size_t i = 0; i < s->cap; i++) {
            kslot_t *e = &s->slots[i];
            if (e->hash == 0)
                continue;
            size_t j = e->hash & (g.cap - 1);
            while (g.slots[j].hash != 0)
                j = (j + 1) & (g.cap - 1);
            g.slots[j] = *e;
        }
        free(s->slots);
        s->slots = g.slots;
        s->cap = g.cap;
    }
    uint64_t h = hash_bytes(k, n);
    kslot_t *e = kset_find(s, k, n, h);
    *added = e->hash == 0;
    if (*added) {
        if (s->arena_len + n > s->arena_cap) {
            s->arena_cap = s->arena_cap ? s->arena_cap * 2 : 1 << 16;
            while (s->arena_len + n > s->arena_cap)
                s->arena_cap *= 2;
            s->arena = sk_xrealloc(s->arena, s->arena_cap);
        }
        memcpy(s->arena + s->arena_len, k, n);
        e->hash = h;
        e->off = s->arena_len;
        e->len = (uint32_t)n;
        e->user = user;
        e->flags = 0;
        e->quantity = 0;
        s->arena_len += n;
        s->len++;
    }
    return e;
}

static kslot_t *kset_get(kset_t *s, const char *k, size_t n)
{
    kslot_t *e = kset_find(s, k, n, hash_bytes(k, n));
    return e->hash ? e : NULL;
}

/* ------------------------------------------------------------------------------------
 * The reconciliation */

int sk_audit_order_from_json(json_t *it, sk_loadgen_store_order_t *so); /* audit_http.c */

/* What a store's log says about one order, by seq. */
typedef struct {
    uint32_t quantity;
    uint32_t user; /* a user of the run, or 0: another user, its id in log_fusers' arena */
    uint64_t fuser_off;
    uint32_t fuser_len;
    uint8_t state; /* sk_loadgen_state_t after the log */
    uint8_t pays; /* confirmations (saturating) */
} logged_t;

typedef struct {
    const sk_audit_input_t *in;
    sk_audit_t *out;
    kset_t known; /* order id -> user, named to the client */
    kset_t rids; /* request ids seen in the store */
    uint16_t *units; /* active units per user of the run at the end, saturating */
    kset_t fusers; /* other user ids -> active units (in the user field) */
    char prefix[40];
    size_t prefix_len;
    uint32_t asking_user;
    /* The log's replay. */
    logged_t *log;
    size_t log_cap;
    uint16_t *log_units; /* active units per user of the run, saturating */
    kset_t log_fusers;
    int64_t log_active;
    bool log_units_ok; /* the log's per-user limit was judged (instead of the end state) */
    int64_t log_duplicates;
    int64_t client_confirmed_units; /* units the client was told are confirmed */
    int64_t held_units, sold_units; /* units of reserved, and of confirmed, store orders */
    sk_audit_order_t *orders; /* for the trail */
    size_t n_orders, cap_orders;
    /* A timed store without a log: (time, units in or out) of every order. */
    struct timed_ev {
        int64_t at, units;
    } * timed;
    size_t n_timed, cap_timed;
    bool timed_ok; /* replaying the orders' times */
} audit_t;

static void timed_add(audit_t *a, int64_t at, int64_t units)
{
    if (a->n_timed == a->cap_timed) {
        a->cap_timed = a->cap_timed ? a->cap_timed * 2 : 4096;
        a->timed = sk_xrealloc(a->timed, a->cap_timed * sizeof(*a->timed));
    }
    a->timed[a->n_timed++] = (struct timed_ev){at, units};
}

/* By time; at equal times units going out first (they may have gone first). */
static int timed_cmp(const void *pa, const void *pb)
{
    const struct timed_ev *x = pa, *y = pb;
    if (x->at != y->at)
        return x->at < y->at ? -1 : 1;
    return x->units < y->units ? -1 : x->units > y->units;
}

/* The highest active units at any time, by the orders' times. */
static int64_t timed_max(audit_t *a)
{
    qsort(a->timed, a->n_timed, sizeof(*a->timed), timed_cmp);
    int64_t cur = 0, max = 0;
    for (size_t i = 0; i < a->n_timed; i++) {
        cur += a->timed[i].units;
        max = SK_MAX(max, cur);
    }
    return max;
}

/* "u<digits>" in 1..users -> the user number, else 0. */
static uint32_t parse_user(const audit_t *a, const char *p, size_t n)
{
    int64_t v;
    if (n < 2 || p[0] != 'u' || p[1] == '0')
        return 0;
    if (sk_parse_i64(p + 1, n - 1, 1, a->in->res->users, &v) < 0)
        return 0;
    return (uint32_t)v;
}

static bool ours(const audit_t *a, const char *rid, size_t n)
{
    return n > a->prefix_len && memcmp(rid, a->prefix, a->prefix_len) == 0;
}

/* The order's seq from its id: the digits after the last '-' (0 when there are none). */
static uint64_t order_seq(const char *id, size_t n)
{
    size_t d = n;
    while (d > 0 && id[d - 1] >= '0' && id[d - 1] <= '9')
        d--;
    int64_t v;
    if (d == n || d == 0 || id[d - 1] != '-' || sk_parse_i64(id + d, n - d, 1, INT64_MAX, &v) < 0)
        return 0;
    return (uint64_t)v;
}

static bool active(sk_loadgen_state_t st)
{
    /* A store without states keeps final orders only. */
    return st == SK_LOADGEN_ST_RESERVED || st == SK_LOADGEN_ST_CONFIRMED || st == SK_LOADGEN_ST_UNKNOWN;
}

static bool returned(sk_loadgen_state_t st)
{
    return st == SK_LOADGEN_ST_CANCELLED || st == SK_LOADGEN_ST_EXPIRED || st == SK_LOADGEN_ST_REFUNDED;
}

static uint16_t sat16(int64_t v)
{
    return v < 0 ? 0 : v > UINT16_MAX ? UINT16_MAX : (uint16_t)v;
}

/* Adds d units to a user's active units (run users in an array, others in a set);
 * returns the units after, and in *slot the set's entry of another user. */
static int64_t user_units_at(const audit_t *a, uint16_t *arr, kset_t *others, const char *user, size_t len, int64_t d,
                             kslot_t **slot)
{
    uint32_t u = parse_user(a, user, len);
    if (u) {
        arr[u] = sat16(arr[u] + d);
        return arr[u];
    }
    bool added;
    kslot_t *e = kset_put(others, user, len, 0, &added);
    e->user = (uint32_t)SK_MAX(0, (int64_t)e->user + d);
    if (slot)
        *slot = e;
    return e->user;
}

static int64_t user_units(const audit_t *a, uint16_t *arr, kset_t *others, const char *user, size_t len, int64_t d)
{
    return user_units_at(a, arr, others, user, len, d, NULL);
}

static void note_mismatch(audit_t *a, const char *what, const sk_loadgen_store_order_t *o)
{
    a->out->state_mismatch++;
    if (!a->out->first_mismatch[0])
        snprintf(a->out->first_mismatch, sizeof(a->out->first_mismatch), "%.*s: %s, the store says %s",
                 (int)SK_MIN(o->order_id_len, (size_t)90), o->order_id, what, sk_loadgen_state_name(o->state));
}

/* ---- the store's log, replayed in decision order ---- */

#define LOG_SEQ_MAX ((uint64_t)1 << 40) /* a seq above this is no order a store made */

static int on_event(void *arg, const sk_audit_event_t *ev)
{
    audit_t *a = arg;
    sk_audit_t *out = a->out;
    if (ev->seq > LOG_SEQ_MAX) {
        /* No store makes that many orders: a corrupt log, counted, and no table of that
         * size (whose byte count would overflow). */
        out->bad_transitions++;
        return 0;
    }
    if (ev->seq >= a->log_cap) {
        size_t cap = a->log_cap ? a->log_cap : 4096;
        while (cap <= ev->seq)
            cap *= 2;
        a->log = sk_xrealloc(a->log, cap * sizeof(*a->log));
        memset(a->log + a->log_cap, 0, (cap - a->log_cap) * sizeof(*a->log));
        a->log_cap = cap;
    }
    logged_t *l = &a->log[ev->seq];
    if (ev->created) {
        if (l->state != SK_LOADGEN_ST_UNKNOWN) {
            out->bad_transitions++; /* a seq made twice */
            return 0;
        }
        l->quantity = (uint32_t)SK_MAX(1, SK_MIN(ev->quantity, (int64_t)UINT32_MAX));
        l->state = (uint8_t)ev->to;
        a->log_active += l->quantity;
        if (a->log_active > out->log_max_units)
            out->log_max_units = a->log_active;
        /* The per-user limit at the moment the order was made. */
        kslot_t *e = NULL;
        int64_t after = user_units_at(a, a->log_units, &a->log_fusers, ev->user_id, ev->user_id_len, l->quantity, &e);
        l->user = parse_user(a, ev->user_id, ev->user_id_len);
        if (e) {
            l->fuser_off = e->off;
            l->fuser_len = e->len;
        }
        if (out->limit > 0 && after > out->limit)
            a->log_duplicates += SK_MIN((int64_t)l->quantity, after - out->limit);
        return 0;
    }
    sk_loadgen_state_t from = (sk_loadgen_state_t)l->state;
    bool legal = (from == SK_LOADGEN_ST_RESERVED && ev->to != SK_LOADGEN_ST_REFUNDED) ||
                 (from == SK_LOADGEN_ST_CONFIRMED && ev->to == SK_LOADGEN_ST_REFUNDED);
    if (!legal) {
        if (returned(from) && returned(ev->to))
            out->returned_twice++; /* its units would leave it again */
        else
            out->bad_transitions++;
        return 0;
    }
    if (ev->to == SK_LOADGEN_ST_CONFIRMED && l->pays < UINT8_MAX)
        l->pays++;
    l->state = (uint8_t)ev->to;
    if (returned(ev->to)) {
        a->log_active -= l->quantity;
        if (l->user)
            a->log_units[l->user] = sat16(a->log_units[l->user] - (int64_t)l->quantity);
        else
            user_units(a, a->log_units, &a->log_fusers, a->log_fusers.arena + l->fuser_off, l->fuser_len,
                       -(int64_t)l->quantity);
    }
    return 0;
}

/* ---- the store's orders ---- */

/* What the client's action on a reservation lets its final state be. */
static void check_reservation(audit_t *a, const sk_loadgen_resv_t *v, const sk_loadgen_store_order_t *o,
                              const logged_t *l)
{
    sk_audit_t *out = a->out;
    sk_loadgen_state_t st = o->state;
    out->reservations_checked++;
    if (v->flags & SK_RESV_LATE_CONFIRMED)
        out->late_confirmed++;
    if (v->flags & SK_RESV_EARLY_EXPIRED)
        out->early_expired++;
    if (st == SK_LOADGEN_ST_RESERVED) {
        out->not_final++;
        return;
    }
    switch ((sk_loadgen_act_t)v->act) {
    case SK_ACT_CONFIRMED:
        if (st != SK_LOADGEN_ST_CONFIRMED)
            note_mismatch(a, "paid and confirmed", o);
        break;
    case SK_ACT_EXPIRED:
        /* Refused as expired: it must have expired, and never been paid. */
        if (st != SK_LOADGEN_ST_EXPIRED || o->paid_at || (l && l->pays))
            note_mismatch(a, "payment refused as expired", o);
        break;
    case SK_ACT_CANCELLED:
        if (st != SK_LOADGEN_ST_CANCELLED)
            note_mismatch(a, "cancelled", o);
        break;
    case SK_ACT_NOT_RESERVED:
        if (st != (sk_loadgen_state_t)v->state || !returned(st))
            note_mismatch(a, "cancel refused, naming another state", o);
        break;
    case SK_ACT_REFUSED:
        note_mismatch(a, "payment refused as cancelled, refunded or paid, none of which the client did", o);
        break;
    case SK_ACT_IN_DOUBT:
        if (v->plan == SK_PLAN_CANCEL ? st != SK_LOADGEN_ST_CANCELLED && st != SK_LOADGEN_ST_EXPIRED
                                      : st != SK_LOADGEN_ST_CONFIRMED && st != SK_LOADGEN_ST_EXPIRED)
            note_mismatch(a, "an action in doubt", o);
        break;
    case SK_ACT_NONE:
        if (st != SK_LOADGEN_ST_EXPIRED)
            note_mismatch(a, "walked away", o);
        break;
    default:
        break; /* an answer the client could not read: any final state */
    }
}

static int on_store_order(void *arg, const sk_loadgen_store_order_t *o)
{
    audit_t *a = arg;
    sk_audit_t *out = a->out;
    const sk_audit_input_t *in = a->in;
    out->store_orders++;
    out->by_state[o->state]++;
    int64_t q = o->quantity > 0 ? o->quantity : 1;
    if (o->state == SK_LOADGEN_ST_CONFIRMED || o->state == SK_LOADGEN_ST_UNKNOWN)
        out->confirmed_units += q;
    if (a->n_orders == a->cap_orders) {
        a->cap_orders = a->cap_orders ? a->cap_orders * 2 : 4096;
        a->orders = sk_xrealloc(a->orders, a->cap_orders * sizeof(*a->orders));
    }
    a->orders[a->n_orders++] =
        (sk_audit_order_t){o->seq ? o->seq : order_seq(o->order_id, o->order_id_len),
                           (uint32_t)SK_MIN(q, (int64_t)UINT32_MAX), active(o->state), o->created_at};
    if (active(o->state)) {
        out->store_units += q;
        user_units(a, a->units, &a->fusers, o->user_id, o->user_id_len, q);
        if (o->state == SK_LOADGEN_ST_RESERVED)
            a->held_units += q;
        else
            a->sold_units += q;
    }
    if (returned(o->state) && o->closed_at > out->last_return_ms)
        out->last_return_ms = o->closed_at;
    if (a->timed_ok) {
        if (o->created_at <= 0 || (returned(o->state) && o->closed_at <= 0)) {
            a->timed_ok = false; /* a time missing: not judged */
        } else {
            timed_add(a, o->created_at, q);
            if (returned(o->state))
                timed_add(a, o->closed_at, -q);
        }
    }
    uint32_t u = parse_user(a, o->user_id, o->user_id_len);
    if (o->request_id_len > 0) {
        bool added;
        kset_put(&a->rids, o->request_id, o->request_id_len, u, &added);
        if (!added)
            out->duplicates++; /* a second order for one request_id */
    }
    const logged_t *l = o->seq && o->seq < a->log_cap && a->log[o->seq].state ? &a->log[o->seq] : NULL;
    if (out->logged && o->state != SK_LOADGEN_ST_UNKNOWN && (!l || l->state != o->state))
        out->counts_mismatch++; /* the store's states disagree with its own log */
    /* I8 from the store's own times, for every order. */
    bool late = o->state == SK_LOADGEN_ST_CONFIRMED && o->pay_by > 0 && o->paid_at > o->pay_by;
    bool early = o->state == SK_LOADGEN_ST_EXPIRED && o->pay_by > 0 && o->closed_at > 0 && o->closed_at <= o->pay_by;
    kslot_t *k = kset_get(&a->known, o->order_id, o->order_id_len);
    if (k && k->user == u) {
        k->flags |= K_MATCHED;
        if (k->quantity && o->quantity > 0 && k->quantity != o->quantity)
            out->miscounted++; /* told one quantity, stored another */
        if (k->resv) {
            const sk_loadgen_resv_t *v = &in->res->resv[k->resv - 1];
            /* The client's own evidence and the store's count once per order. */
            late = late && !(v->flags & SK_RESV_LATE_CONFIRMED);
            early = early && !(v->flags & SK_RESV_EARLY_EXPIRED);
            check_reservation(a, v, o, l);
        }
        out->late_confirmed += late;
        out->early_expired += early;
        return 0;
    }
    out->late_confirmed += late;
    out->early_expired += early;
    /* Not named to the client (or named for another user, which makes the named one
     * lost and this one unexplained). */
    if (in->sale->created || (u && ours(a, o->request_id, o->request_id_len)))
        out->phantom++;
    else
        out->foreign++;
    return 0;
}

static int on_asked_order(void *arg, const sk_loadgen_store_order_t *o)
{
    audit_t *a = arg;
    if (!ours(a, o->request_id, o->request_id_len))
        return 0;
    bool added;
    kslot_t *k = kset_put(&a->known, o->order_id, o->order_id_len, a->asking_user, &added);
    if (added) {
        k->flags |= K_RECOVERED;
        a->out->recovered++;
    }
    return 0;
}

/* Asks the service (first target that answers) for the user's orders. */
static int ask_user(audit_t *a, sk_loadgen_fetch_t *fs, uint32_t u, const char *sale_seg)
{
    char uid[16], path[512];
    sk_loadgen_user_id(uid, u);
    snprintf(path, sizeof(path), "/api/v1/sales/%s/orders/%s", sale_seg, uid);
    for (size_t t = 0; t < a->in->ntargets; t++) {
        int st = sk_loadgen_fetch(&fs[t], "GET", path, NULL);
        if (st == 404) {
            /* Either the user holds nothing (an empty answer would be nicer) or the
             * endpoint is missing; both say: no order the client could learn of. */
            return 0;
        }
        if (st != 200)
            continue;
        json_t *o = json_loadb(fs[t].body, fs[t].body_len, 0, NULL);
        json_t *list = json_object_get(o, "orders");
        if (!json_is_array(list)) {
            json_decref(o);
            continue;
        }
        size_t i;
        json_t *it;
        a->asking_user = u;
        json_array_foreach(list, i, it)
        {
            sk_loadgen_store_order_t so;
            if (sk_audit_order_from_json(it, &so) < 0)
                continue;
            so.user_id = uid;
            so.user_id_len = strlen(uid);
            on_asked_order(a, &so);
        }
        json_decref(o);
        return 0;
    }
    return -1;
}

/* Units left at the end although one-unit buyers still heard sold_out more than 2 s (on
 * the server's clock, for certain) after the last unit came back: those buyers were
 * turned away from units that were there. */
static int64_t lifecycle_undersold(const audit_t *a, int64_t left)
{
    const sk_loadgen_results_t *res = a->in->res;
    if (left <= 0 || !a->in->single_units || !res->timeline_sold_out1)
        return 0;
    /* Server time >= our time + lo: an answer received after this (our clock) came
     * after the last return + 2 s on the server's. */
    int64_t after = SK_MAX(a->out->last_return_ms, a->in->sale->starts_at) + 2000 - a->in->sale->clock_offset_ms;
    int64_t k0 = after <= res->fire_wall_ms ? 0 : (after - res->fire_wall_ms + 999) / 1000;
    uint64_t late = 0;
    for (size_t k = (size_t)k0; k < res->timeline_len; k++)
        late += res->timeline_sold_out1[k];
    return SK_MIN(left, (int64_t)late);
}

static void add_failure(sk_audit_t *out, char **p, size_t *left, const char *name, int64_t v)
{
    if (v == 0)
        return;
    out->ok = false;
    int n = snprintf(*p, *left, "%s%s=%lld", *p == out->failure ? "" : " ", name, (long long)v);
    if (n > 0 && (size_t)n < *left) {
        *p += n;
        *left -= (size_t)n;
    }
}

int sk_audit_run(const sk_audit_input_t *in, sk_audit_source_t *src, sk_audit_t *out, char *err, size_t err_len)
{
    uint64_t t_phase = sk_mono_ns();
    memset(out, 0, sizeof(*out));
    snprintf(out->source, sizeof(out->source), "%s", src->kind);
    out->lifecycle = in->lifecycle;
    out->final_held = out->final_sold = -1;
    const sk_loadgen_results_t *res = in->res;
    audit_t a = {.in = in, .out = out};
    a.prefix_len = (size_t)snprintf(a.prefix, sizeof(a.prefix), "r%s-", in->run_id);
    int rc = -1;

    /* A database written later by a drain is read once it holds every order named. */
    src->wait_seq = 0;
    for (size_t i = 0; i < res->norders; i++)
        src->wait_seq = SK_MAX(src->wait_seq, order_seq(res->arena + res->orders[i].off, res->orders[i].len));
    sk_loadgen_sale_t store_sale = {.sold = -1};
    if (src->sale(src, in->sale->id, &store_sale, err, err_len) < 0)
        return -1;
    out->stock = store_sale.stock;
    out->limit = store_sale.limit;
    out->reported_sold = store_sale.sold;
    sk_loadgen_phase(&out->times, "the sale read", &t_phase, 0);

    /* Everything the service named to the client. */
    kset_init(&a.known, res->norders + 16);
    kset_init(&a.rids, res->norders + 16);
    kset_init(&a.fusers, 16);
    kset_init(&a.log_fusers, 16);
    a.units = sk_xcalloc((size_t)res->users + 1, sizeof(*a.units));
    sk_mem_huge(a.units, ((size_t)res->users + 1) * sizeof(*a.units));
    /* Sized up front for the orders the client was told of (the store holds about as
     * many): the trail's list, and below the log by seq. */
    a.cap_orders = res->norders + 4096;
    a.orders = sk_xmalloc(a.cap_orders * sizeof(*a.orders));
    sk_mem_huge(a.orders, a.cap_orders * sizeof(*a.orders));
    for (size_t i = 0; i < res->norders; i++) {
        const sk_loadgen_order_rec_t *r = &res->orders[i];
        bool added;
        kslot_t *k = kset_put(&a.known, res->arena + r->off, r->len, r->user, &added);
        if (!added && k->user != r->user)
            out->lost++; /* one order id named for two users: one of them was lied to */
        if (r->quantity) {
            if (k->quantity && k->quantity != r->quantity)
                out->miscounted++; /* one order, two quantities told */
            if (!k->quantity)
                out->client_units += r->quantity;
            k->quantity = r->quantity;
        }
    }
    /* Without payment windows every order named is sold; with them, only payments
     * confirmed count (below). */
    if (!in->lifecycle)
        a.client_confirmed_units = out->client_units;
    out->reservations = (int64_t)res->nresv;
    for (size_t i = 0; i < res->nresv; i++) {
        const sk_loadgen_resv_t *v = &res->resv[i];
        const sk_loadgen_order_rec_t *r = &res->orders[v->rec];
        kslot_t *k = kset_get(&a.known, res->arena + r->off, r->len);
        if (k)
            k->resv = (uint32_t)i + 1;
        if (v->act == SK_ACT_CONFIRMED)
            a.client_confirmed_units += v->quantity;
    }

    sk_loadgen_phase(&out->times, "the client's answers indexed", &t_phase, 0);

    /* Ask about users whose requests ended in doubt (invariant I6: a client may ask). */
    for (uint32_t u = 1; u <= res->users; u++) {
        uint8_t s = res->ustate[u];
        if (s & SK_LOADGEN_USER_TRIED)
            out->users_tried++;
        if (s & SK_LOADGEN_USER_IN_DOUBT)
            out->users_in_doubt++;
    }
    if (in->resolve && out->users_in_doubt > 0) {
        sk_loadgen_fetch_t *fs = sk_xcalloc(in->ntargets, sizeof(*fs));
        for (size_t t = 0; t < in->ntargets; t++)
            sk_loadgen_fetch_init(&fs[t], &in->targets[t], in->admin_token, 10000);
        char *seg = sk_loadgen_path_segment(in->sale->id);
        for (uint32_t u = 1; u <= res->users; u++) {
            if (!(res->ustate[u] & SK_LOADGEN_USER_IN_DOUBT))
                continue;
            out->users_asked++;
            if (ask_user(&a, fs, u, seg) < 0)
                out->ask_failures++;
        }
        free(seg);
        for (size_t t = 0; t < in->ntargets; t++)
            sk_loadgen_fetch_close(&fs[t]);
        free(fs);
    }
    out->client_orders = (int64_t)a.known.len;
    if (out->users_asked)
        sk_loadgen_phase(&out->times, "in-doubt users asked", &t_phase, 0);

    /* The store's log first (the orders are checked against it), then its orders. */
    if (src->events) {
        a.log_units = sk_xcalloc((size_t)res->users + 1, sizeof(*a.log_units));
        sk_mem_huge(a.log_units, ((size_t)res->users + 1) * sizeof(*a.log_units));
        a.log_cap = res->norders + 4096;
        a.log = sk_xcalloc(a.log_cap, sizeof(*a.log));
        sk_mem_huge(a.log, a.log_cap * sizeof(*a.log));
        int r = src->events(src, in->sale->id, on_event, &a, err, err_len);
        if (r != 0)
            goto done;
        out->logged = true;
        a.log_units_ok = true;
        sk_loadgen_phase(&out->times, "the store's log replayed", &t_phase, 0);
    }
    out->timed_max_units = -1;
    a.timed_ok = src->timed && !out->logged;
    int r = src->orders(src, in->sale->id, on_store_order, &a, err, err_len);
    if (r != 0)
        goto done;
    if (a.timed_ok)
        out->timed_max_units = timed_max(&a);
    sk_loadgen_phase(&out->times, "the store's orders checked", &t_phase, 0);

    for (size_t i = 0; i < a.known.cap; i++) {
        kslot_t *k = &a.known.slots[i];
        if (k->hash && !(k->flags & K_MATCHED))
            out->lost++;
    }
    /* The trail of operator controls, when the service keeps one (I10). The highest
     * stock it ever had bounds the units held or sold at any moment. */
    bool stock_moved = false;
    int64_t stock_max = out->stock;
    if (in->ntargets > 0) {
        sk_audit_entry_t *entries;
        size_t n_entries;
        char terr[256];
        int tr = sk_audit_trail_fetch(&in->targets[0], in->admin_token, in->sale->id, &entries, &n_entries, terr,
                                      sizeof(terr));
        if (tr == 0) {
            out->trail_checked = true;
            out->trail_entries = (int64_t)n_entries;
            sk_audit_trail_check(entries, n_entries, a.orders, a.n_orders, out->stock, out);
            for (size_t i = 0; i < n_entries; i++) {
                stock_moved |= strcmp(entries[i].action, "add_stock") == 0 ||
                               strcmp(entries[i].action, "remove_stock") == 0 ||
                               strcmp(entries[i].action, "close") == 0;
                stock_max = SK_MAX(stock_max, SK_MAX(entries[i].stock_before, entries[i].stock_after));
            }
        } else if (tr < 0) {
            snprintf(err, err_len, "%s", terr);
            free(entries);
            goto done;
        }
        free(entries);
        sk_loadgen_phase(&out->times, "the trail", &t_phase, 0);
    }
    if (out->reported_sold >= 0 && out->confirmed_units != out->reported_sold)
        out->miscounted++; /* the sale's counts and its orders disagree */
    /* The per-user limit: units held at the end — and, from a log, when each order was made. */
    int64_t limit = out->limit > 0 ? out->limit : 1;
    int64_t end_dups = 0;
    for (uint32_t u = 1; u <= res->users; u++) {
        if (a.units[u] > limit)
            end_dups += a.units[u] - limit;
        uint8_t s = res->ustate[u];
        if ((s & SK_LOADGEN_USER_SOLD_OUT) && a.units[u] == 0 && !(s & SK_LOADGEN_USER_HOLDS))
            out->users_refused_sold_out++;
    }
    for (size_t i = 0; i < a.fusers.cap; i++) {
        kslot_t *e = &a.fusers.slots[i];
        if (e->hash && e->user > limit)
            end_dups += e->user - limit;
    }
    out->duplicates += SK_MAX(end_dups, a.log_units_ok ? a.log_duplicates : 0);

    /* The sale as read during the run and at its end. */
    const sk_loadgen_polls_t *ps = &res->polls;
    out->reads = (int64_t)ps->reads;
    out->max_units = ps->max_units;
    out->bad_reads = (int64_t)ps->bad_reads;
    if (ps->final_ok && in->lifecycle) {
        /* Nothing moves once the run settled: the sale's counts are its orders' units. A
         * unit returned twice shows here (and in the reads) as units that are nowhere.
         * (Only with payment windows, where units come back: a cluster node's counts
         * may trail its store by a moment, which without returns the other counts
         * judge.) */
        out->final_held = ps->held;
        out->final_sold = ps->sold;
        out->counts_mismatch += llabs(ps->held - a.held_units) + llabs(ps->sold - a.sold_units);
    }

    /* Oversold: the most units held or sold at once, by every account. */
    int64_t over = out->store_units - out->stock;
    over = SK_MAX(over, a.client_confirmed_units - out->stock);
    if (out->reported_sold >= 0)
        over = SK_MAX(over, out->reported_sold - out->stock);
    if (ps->reads)
        over = SK_MAX(over, ps->max_units - stock_max);
    if (out->logged)
        over = SK_MAX(over, out->log_max_units - stock_max);
    if (out->timed_max_units >= 0)
        over = SK_MAX(over, out->timed_max_units - stock_max);
    if (!in->lifecycle)
        over = SK_MAX(over, out->client_orders - out->stock);
    out->oversold = over > 0 ? over : 0;

    if (in->lifecycle) {
        out->held_at_end = SK_MAX(ps->final_ok ? ps->held : 0, a.held_units);
        int64_t left = ps->final_ok ? ps->remaining : out->stock - out->store_units;
        if (stock_moved && left > 0)
            snprintf(out->note, sizeof(out->note),
                     "undersold not judged: the operator changed the stock or closed the sale");
        else
            out->undersold = lifecycle_undersold(&a, left);
        if (left > 0 && !out->undersold && !out->note[0])
            snprintf(out->note, sizeof(out->note),
                     "%lld units left unsold: the crowd stopped (%s) before it could buy them, which is not a fault",
                     (long long)left, res->stop_reason);
    } else if (out->stock - out->store_units > 0 && out->users_refused_sold_out > 0) {
        /* Undersold: stock left over while willing buyers were told sold_out. Not judged
         * when the service could not be asked about in-doubt users (not healthy at the
         * end), nor when the operator added, removed or closed (a buyer turned away
         * before stock was added, or units left at a close, are the operator's doing). */
        if (stock_moved) {
            snprintf(out->note, sizeof(out->note),
                     "undersold not judged: the operator changed the stock or closed the sale");
        } else if (out->ask_failures > 0) {
            snprintf(out->note, sizeof(out->note), "undersold not judged: %lld in-doubt users could not be asked",
                     (long long)out->ask_failures);
        } else {
            int64_t left = out->stock - out->store_units;
            out->undersold = left < out->users_refused_sold_out ? left : out->users_refused_sold_out;
        }
    }
    if (out->ask_failures > 0 && !out->note[0])
        snprintf(out->note, sizeof(out->note),
                 "%lld in-doubt users could not be asked; their unnamed orders count as phantom",
                 (long long)out->ask_failures);

    char *p = out->failure;
    size_t left = sizeof(out->failure);
    out->ok = true;
    add_failure(out, &p, &left, "oversold", out->oversold);
    add_failure(out, &p, &left, "undersold", out->undersold);
    add_failure(out, &p, &left, "lost", out->lost);
    add_failure(out, &p, &left, "phantom", out->phantom);
    add_failure(out, &p, &left, "duplicates", out->duplicates);
    add_failure(out, &p, &left, "miscounted", out->miscounted);
    add_failure(out, &p, &left, "while_paused", out->while_paused);
    add_failure(out, &p, &left, "after_close", out->after_close);
    add_failure(out, &p, &left, "over_stock", out->over_stock);
    add_failure(out, &p, &left, "bad_reads", out->bad_reads);
    add_failure(out, &p, &left, "counts_mismatch", out->counts_mismatch);
    add_failure(out, &p, &left, "late_confirmed", out->late_confirmed);
    add_failure(out, &p, &left, "early_expired", out->early_expired);
    add_failure(out, &p, &left, "state_mismatch", out->state_mismatch);
    add_failure(out, &p, &left, "not_final", out->not_final);
    add_failure(out, &p, &left, "returned_twice", out->returned_twice);
    add_failure(out, &p, &left, "bad_transitions", out->bad_transitions);
    add_failure(out, &p, &left, "held_at_end", out->held_at_end);
    sk_loadgen_phase(&out->times, "the totals", &t_phase, 0);
    rc = 0;
done:
    kset_free(&a.known);
    kset_free(&a.rids);
    kset_free(&a.fusers);
    kset_free(&a.log_fusers);
    free(a.units);
    free(a.log_units);
    free(a.log);
    free(a.orders);
    free(a.timed);
    free(store_sale.id);
    free(store_sale.name);
    return rc;
}
