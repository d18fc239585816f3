#include "audit/audit.h"

#include <errno.h>
#include <jansson.h>
#include <sqlite3.h>
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
 * HTTP source */

typedef struct {
    sk_audit_source_t base;
    sk_loadgen_fetch_t f;
} http_source_t;

static void fetch_error(char *err, size_t err_len, const char *what, int st, const sk_loadgen_fetch_t *f)
{
    if (st < 0)
        snprintf(err, err_len, "%s at %s: %s", what, f->target->url, strerror(-st));
    else
        snprintf(err, err_len, "%s at %s: HTTP %d: %.200s", what, f->target->url, st, f->body ? f->body : "");
}

static int http_sale(sk_audit_source_t *s, const char *sale_id, sk_loadgen_sale_t *out, char *err, size_t err_len)
{
    http_source_t *h = (http_source_t *)s;
    char *seg = sk_loadgen_path_segment(sale_id);
    char path[1024];
    snprintf(path, sizeof(path), "/api/v1/sales/%s", seg);
    free(seg);
    int st = sk_loadgen_fetch(&h->f, "GET", path, NULL);
    if (st != 200) {
        fetch_error(err, err_len, "GET sale", st, &h->f);
        return -1;
    }
    json_t *o = json_loadb(h->f.body, h->f.body_len, 0, NULL);
    json_t *stock = json_object_get(o, "stock"), *limit = json_object_get(o, "per_user_limit"),
           *sold = json_object_get(o, "sold");
    if (!json_is_integer(stock) || !json_is_integer(limit)) {
        snprintf(err, err_len, "GET sale: no stock or per_user_limit in %.200s", h->f.body);
        json_decref(o);
        return -1;
    }
    out->stock = json_integer_value(stock);
    out->limit = json_integer_value(limit);
    out->sold = json_is_integer(sold) ? json_integer_value(sold) : -1;
    json_decref(o);
    return 0;
}

static int str_field(json_t *o, const char *k, const char **p, size_t *n)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_string(v))
        return -1;
    *p = json_string_value(v);
    *n = json_string_length(v);
    return 0;
}

static int http_orders(sk_audit_source_t *s, const char *sale_id, sk_loadgen_order_fn fn, void *arg, char *err,
                       size_t err_len)
{
    http_source_t *h = (http_source_t *)s;
    char *seg = sk_loadgen_path_segment(sale_id);
    char *after = NULL;
    int rc = -1;
    for (uint64_t page = 0;; page++) {
        char *path;
        size_t cap = strlen(seg) + (after ? strlen(after) * 3 : 0) + 128;
        path = sk_xmalloc(cap);
        if (after) {
            char *a = sk_loadgen_path_segment(after);
            snprintf(path, cap, "/api/v1/sales/%s/orders?limit=10000&after=%s", seg, a);
            free(a);
        } else {
            snprintf(path, cap, "/api/v1/sales/%s/orders?limit=10000", seg);
        }
        int st = sk_loadgen_fetch(&h->f, "GET", path, NULL);
        free(path);
        if (st != 200) {
            fetch_error(err, err_len, "GET orders", st, &h->f);
            goto out;
        }
        json_error_t jerr;
        json_t *o = json_loadb(h->f.body, h->f.body_len, 0, &jerr);
        json_t *list = json_object_get(o, "orders");
        if (!json_is_array(list)) {
            snprintf(err, err_len, "GET orders: no \"orders\" array (%s)", o ? "missing" : jerr.text);
            json_decref(o);
            goto out;
        }
        size_t i;
        json_t *it;
        json_array_foreach(list, i, it)
        {
            sk_loadgen_store_order_t so;
            if (str_field(it, "order_id", &so.order_id, &so.order_id_len) < 0 ||
                str_field(it, "user_id", &so.user_id, &so.user_id_len) < 0) {
                snprintf(err, err_len, "GET orders: an order without order_id or user_id");
                json_decref(o);
                goto out;
            }
            if (str_field(it, "request_id", &so.request_id, &so.request_id_len) < 0) {
                so.request_id = "";
                so.request_id_len = 0;
            }
            json_t *q = json_object_get(it, "quantity"), *c = json_object_get(it, "created_at");
            so.quantity = json_is_integer(q) && json_integer_value(q) > 0 && json_integer_value(q) <= UINT32_MAX
                              ? (uint32_t)json_integer_value(q)
                              : 0;
            so.created_at = json_is_integer(c) ? json_integer_value(c) : 0;
            if (str_field(it, "state", &so.state, &so.state_len) < 0)
                so.state = NULL;
            int r = fn(arg, &so);
            if (r) {
                json_decref(o);
                rc = r;
                goto out;
            }
        }
        json_t *next = json_object_get(o, "next");
        if (!json_is_string(next) || json_array_size(list) == 0) {
            json_decref(o);
            break;
        }
        if (after && strcmp(after, json_string_value(next)) == 0) {
            snprintf(err, err_len, "GET orders: the page cursor does not advance (%s)", after);
            json_decref(o);
            goto out;
        }
        free(after);
        after = sk_xstrndup(json_string_value(next), json_string_length(next));
        json_decref(o);
    }
    rc = 0;
out:
    free(after);
    free(seg);
    return rc;
}

static void http_close(sk_audit_source_t *s)
{
    http_source_t *h = (http_source_t *)s;
    sk_loadgen_fetch_close(&h->f);
    free(h);
}

sk_audit_source_t *sk_audit_source_http(const sk_loadgen_target_t *t, const char *admin_token)
{
    http_source_t *h = sk_xcalloc(1, sizeof(*h));
    h->base.kind = "http";
    h->base.sale = http_sale;
    h->base.orders = http_orders;
    h->base.close = http_close;
    sk_loadgen_fetch_init(&h->f, t, admin_token, 60000);
    return &h->base;
}

/* ------------------------------------------------------------------------------------
 * SQLite source: tables sales(id, stock, per_user_limit, ...) and sale_events (the
 * trail: a sale's stock now is its last entry's after.stock, else the sales row's), and
 * the view orders(seq, sale_id, order_id, user_id, request_id, quantity, state,
 * created_at, ...). */

typedef struct {
    sk_audit_source_t base;
    sqlite3 *db;
} sqlite_source_t;

static int sqlite_sale(sk_audit_source_t *s, const char *sale_id, sk_loadgen_sale_t *out, char *err, size_t err_len)
{
    sqlite_source_t *q = (sqlite_source_t *)s;
    sqlite3_stmt *st = NULL;
    int rc = -1;
    if (sqlite3_prepare_v2(q->db,
                           "SELECT coalesce((SELECT after ->> 'stock' FROM sale_events WHERE sale_id = ?1"
                           " ORDER BY lsn DESC LIMIT 1), stock), per_user_limit,"
                           " (SELECT coalesce(sum(quantity), 0) FROM orders WHERE sale_id = ?1 AND state = 'confirmed')"
                           " FROM sales WHERE id = ?1",
                           -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, err_len, "sqlite: %s", sqlite3_errmsg(q->db));
        return -1;
    }
    sqlite3_bind_text(st, 1, sale_id, -1, SQLITE_STATIC);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        out->stock = sqlite3_column_int64(st, 0);
        out->limit = sqlite3_column_int64(st, 1);
        out->sold = sqlite3_column_int64(st, 2);
        rc = 0;
    } else if (r == SQLITE_DONE) {
        snprintf(err, err_len, "sqlite: no sale %s in the store", sale_id);
    } else {
        snprintf(err, err_len, "sqlite: %s", sqlite3_errmsg(q->db));
    }
    sqlite3_finalize(st);
    return rc;
}

static int sqlite_orders(sk_audit_source_t *s, const char *sale_id, sk_loadgen_order_fn fn, void *arg, char *err,
                         size_t err_len)
{
    sqlite_source_t *q = (sqlite_source_t *)s;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(q->db,
                           "SELECT order_id, user_id, coalesce(request_id, ''), quantity, state, created_at"
                           " FROM orders WHERE sale_id = ?1 ORDER BY seq",
                           -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, err_len, "sqlite: %s", sqlite3_errmsg(q->db));
        return -1;
    }
    sqlite3_bind_text(st, 1, sale_id, -1, SQLITE_STATIC);
    int rc = 0, r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        sk_loadgen_store_order_t so = {
            .order_id = (const char *)sqlite3_column_text(st, 0),
            .order_id_len = (size_t)sqlite3_column_bytes(st, 0),
            .user_id = (const char *)sqlite3_column_text(st, 1),
            .user_id_len = (size_t)sqlite3_column_bytes(st, 1),
            .request_id = (const char *)sqlite3_column_text(st, 2),
            .request_id_len = (size_t)sqlite3_column_bytes(st, 2),
            .quantity = (uint32_t)SK_MIN(sqlite3_column_int64(st, 3), (sqlite3_int64)UINT32_MAX),
            .state = (const char *)sqlite3_column_text(st, 4),
            .state_len = (size_t)sqlite3_column_bytes(st, 4),
            .created_at = sqlite3_column_int64(st, 5),
        };
        if (!so.order_id)
            so.order_id = "";
        if (!so.user_id)
            so.user_id = "";
        if (!so.request_id)
            so.request_id = "";
        if ((rc = fn(arg, &so)) != 0)
            break;
    }
    if (rc == 0 && r != SQLITE_DONE) {
        snprintf(err, err_len, "sqlite: %s", sqlite3_errmsg(q->db));
        rc = -1;
    }
    sqlite3_finalize(st);
    return rc;
}

static void sqlite_close(sk_audit_source_t *s)
{
    sqlite_source_t *q = (sqlite_source_t *)s;
    sqlite3_close(q->db);
    free(q);
}

sk_audit_source_t *sk_audit_source_sqlite(const char *path, char *err, size_t err_len)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        snprintf(err, err_len, "sqlite: cannot open %s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 10000);
    sqlite_source_t *q = sk_xcalloc(1, sizeof(*q));
    q->base.kind = "sqlite";
    q->base.sale = sqlite_sale;
    q->base.orders = sqlite_orders;
    q->base.close = sqlite_close;
    q->db = db;
    return &q->base;
}

/* ------------------------------------------------------------------------------------
 * The reconciliation */

typedef struct {
    const sk_audit_input_t *in;
    sk_audit_t *out;
    kset_t known; /* order id -> user, named to the client */
    kset_t rids; /* request ids seen in the store */
    uint32_t *ucount; /* active units per user of the run, saturating */
    kset_t fusers; /* other user ids -> active units (in the user field) */
    sk_audit_order_t *orders; /* for the trail */
    size_t n_orders, cap_orders;
    char prefix[40];
    size_t prefix_len;
    uint32_t asking_user;
} audit_t;

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

static bool state_is(const sk_loadgen_store_order_t *o, const char *s)
{
    return o->state_len == strlen(s) && memcmp(o->state, s, o->state_len) == 0;
}

/* The order's seq: the digits after the last '-' of its id (0 when there are none). */
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

static int on_store_order(void *arg, const sk_loadgen_store_order_t *o)
{
    audit_t *a = arg;
    sk_audit_t *out = a->out;
    out->store_orders++;
    uint32_t q = o->quantity ? o->quantity : 1;
    /* Units count while an order holds them: reserved or confirmed. */
    bool active = !o->state || state_is(o, "confirmed") || state_is(o, "reserved");
    if (active)
        out->store_units += q;
    if (!o->state || state_is(o, "confirmed"))
        out->confirmed_units += q;
    if (a->n_orders == a->cap_orders) {
        a->cap_orders = a->cap_orders ? a->cap_orders * 2 : 4096;
        a->orders = sk_xrealloc(a->orders, a->cap_orders * sizeof(*a->orders));
    }
    a->orders[a->n_orders++] = (sk_audit_order_t){order_seq(o->order_id, o->order_id_len), q, active, o->created_at};
    uint32_t u = parse_user(a, o->user_id, o->user_id_len);
    if (u) {
        if (active)
            a->ucount[u] = a->ucount[u] + q < a->ucount[u] ? UINT32_MAX : a->ucount[u] + q;
    } else {
        bool added;
        kslot_t *e = kset_put(&a->fusers, o->user_id, o->user_id_len, 0, &added);
        if (active)
            e->user += q;
    }
    if (o->request_id_len > 0) {
        bool added;
        kset_put(&a->rids, o->request_id, o->request_id_len, u, &added);
        if (!added)
            out->duplicates++; /* a second order for one request_id */
    }
    kslot_t *k = kset_get(&a->known, o->order_id, o->order_id_len);
    if (k && k->user == u) {
        k->flags |= K_MATCHED;
        if (k->quantity && o->quantity && k->quantity != o->quantity)
            out->miscounted++; /* told one quantity, stored another */
        return 0;
    }
    /* Not named to the client (or named for another user, which makes the named one
     * lost and this one unexplained). */
    if (a->in->sale->created || (u && ours(a, o->request_id, o->request_id_len)))
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
            sk_loadgen_store_order_t so = {.user_id = uid, .user_id_len = strlen(uid)};
            if (str_field(it, "order_id", &so.order_id, &so.order_id_len) < 0)
                continue;
            if (str_field(it, "request_id", &so.request_id, &so.request_id_len) < 0)
                continue;
            on_asked_order(a, &so);
        }
        json_decref(o);
        return 0;
    }
    return -1;
}

int sk_audit_run(const sk_audit_input_t *in, sk_audit_source_t *src, sk_audit_t *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->source, sizeof(out->source), "%s", src->kind);
    const sk_loadgen_results_t *res = in->res;
    audit_t a = {.in = in, .out = out};
    a.prefix_len = (size_t)snprintf(a.prefix, sizeof(a.prefix), "r%s-", in->run_id);
    int rc = -1;

    sk_loadgen_sale_t store_sale = {.sold = -1};
    if (src->sale(src, in->sale->id, &store_sale, err, err_len) < 0)
        return -1;
    out->stock = store_sale.stock;
    out->limit = store_sale.limit;
    out->reported_sold = store_sale.sold;

    /* Everything the service named to the client. */
    kset_init(&a.known, res->norders + 16);
    kset_init(&a.rids, res->norders + 16);
    kset_init(&a.fusers, 16);
    a.ucount = sk_xcalloc((size_t)res->users + 1, sizeof(*a.ucount));
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

    /* Walk the store. */
    int r = src->orders(src, in->sale->id, on_store_order, &a, err, err_len);
    if (r != 0)
        goto done;

    for (size_t i = 0; i < a.known.cap; i++) {
        kslot_t *k = &a.known.slots[i];
        if (k->hash && !(k->flags & K_MATCHED))
            out->lost++;
    }
    /* The trail of operator controls, when the service keeps one (I10). */
    bool stock_moved = false;
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
            for (size_t i = 0; i < n_entries; i++)
                stock_moved |= strcmp(entries[i].action, "add_stock") == 0 ||
                               strcmp(entries[i].action, "remove_stock") == 0 ||
                               strcmp(entries[i].action, "close") == 0;
        } else if (tr < 0) {
            snprintf(err, err_len, "%s", terr);
            free(entries);
            goto done;
        }
        free(entries);
    }
    if (out->reported_sold >= 0 && out->confirmed_units != out->reported_sold)
        out->miscounted++; /* the sale's counts and its orders disagree */
    int64_t limit = out->limit > 0 ? out->limit : 1;
    for (uint32_t u = 1; u <= res->users; u++) {
        if (a.ucount[u] > limit)
            out->duplicates += a.ucount[u] - limit;
        uint8_t s = res->ustate[u];
        if ((s & SK_LOADGEN_USER_SOLD_OUT) && a.ucount[u] == 0 && !(s & SK_LOADGEN_USER_HOLDS))
            out->users_refused_sold_out++;
    }
    for (size_t i = 0; i < a.fusers.cap; i++) {
        kslot_t *e = &a.fusers.slots[i];
        if (e->hash && e->user > limit)
            out->duplicates += e->user - limit;
    }
    int64_t over = out->store_units - out->stock;
    if (out->client_units - out->stock > over)
        over = out->client_units - out->stock;
    if (out->reported_sold >= 0 && out->reported_sold - out->stock > over)
        over = out->reported_sold - out->stock;
    out->oversold = over > 0 ? over : 0;
    /* Undersold: stock left over while willing buyers were told sold_out. Not judged
     * when the service could not be asked about in-doubt users (not healthy at the end),
     * nor when the operator added, removed or closed (a buyer turned away before stock
     * was added, or units left at a close, are the operator's doing). */
    if (out->store_units < out->stock && out->users_refused_sold_out > 0) {
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
    struct {
        const char *name;
        int64_t v;
    } checks[] = {
        {"oversold", out->oversold},         {"undersold", out->undersold},     {"lost", out->lost},
        {"phantom", out->phantom},           {"duplicates", out->duplicates},   {"miscounted", out->miscounted},
        {"while_paused", out->while_paused}, {"after_close", out->after_close}, {"over_stock", out->over_stock}};
    out->ok = true;
    for (size_t i = 0; i < SK_ARRAY_LEN(checks); i++) {
        if (checks[i].v == 0)
            continue;
        out->ok = false;
        int n = snprintf(p, left, "%s%s=%lld", p == out->failure ? "" : " ", checks[i].name, (long long)checks[i].v);
        if (n > 0 && (size_t)n < left) {
            p += n;
            left -= (size_t)n;
        }
    }
    rc = 0;
done:
    kset_free(&a.known);
    kset_free(&a.rids);
    kset_free(&a.fusers);
    free(a.ucount);
    free(a.orders);
    free(store_sale.id);
    free(store_sale.name);
    return rc;
}
