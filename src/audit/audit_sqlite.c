/* The SQLite audit source: the embedded store's journal, opened read-only.
 *
 *   sales(id, stock, per_user_limit, ...) and sale_events (the trail: a sale's stock
 *            now is its last entry's after.stock, else the sales row's)
 *   orders — a view: one row per order with seq, order_id, user_id, request_id,
 *            quantity, state, created_at, pay_by, paid_at, closed_at
 *   order_batches(lsn, sale_id, first_seq, pay_by, orders) — new orders, a JSON array
 *            of [user_id, request_id(, quantity)] per sale per batch
 *   order_events(lsn, sale_id, kind, events) — transitions, a JSON array of [seq, ...]
 *            per sale per kind (pay, cancel, expire, refund) per batch
 *
 * The log is the two tables merged by lsn (one counter for the whole journal, in
 * decision order). A file without them (an older layout) has no log: events is then
 * not offered.
 *
 * Where orders is the store's view over that log, the source reads each of the two
 * tables once, in one sequential pass (journal_t below), and answers all three
 * questions from it: the log's entries in decision order, the orders exactly as the
 * view derives them (a reservation's state is its highest-ranked event: refund >
 * cancel > expire > pay; paid_at the latest payment's time, closed_at the latest other
 * event's; rows in seq order), and the units sold (of the confirmed orders).
 * Evaluating the view grouped and joined every event of the journal, twice (the sold
 * units, the rows); this is linear. An orders table (another writer's, which may
 * disagree with its log) is read as it is, and so is the view when the seqs are too
 * sparse for an array by seq (sparse_factor). */
#include <errno.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "util/common.h"

/* One order as its batch row made it (strings in the journal's arena). */
typedef struct {
    uint64_t seq;
    int64_t quantity, created_at, pay_by; /* pay_by 0: made without a window (NULL) */
    uint64_t user_off, rid_off;
    uint32_t user_len, rid_len;
    bool window; /* pay_by was set: a reservation */
} jorder_t;

/* One entry of the log in decision order: a new order (row: its index in orders) or
 * an event moving order seq into state to. */
typedef struct {
    uint64_t seq;
    int64_t at; /* an event: its row's time; a new order: its index in orders */
    uint8_t created;
    uint8_t to; /* sk_loadgen_state_t */
    uint8_t in_view; /* an event the orders view reads (element 0 of an array) */
} jentry_t;

/* What the view's st derives per seq: the highest-ranked event and its times. */
typedef struct {
    uint8_t rank; /* 0 none, 1 pay, 2 expire, 3 cancel, 4 refund */
    int64_t paid_at, closed_at;
} jstate_t;

typedef struct {
    char *sale_id;
    jorder_t *orders;
    size_t n_orders, cap_orders;
    jentry_t *log;
    size_t n_log, cap_log;
    char *arena;
    size_t arena_len, arena_cap;
    jstate_t *st; /* by seq, 0..max_seq */
    uint64_t max_seq;
    bool sorted; /* orders are in seq order as read (the usual case) */
    int64_t sold; /* units of confirmed orders */
    bool ok; /* loaded; false: fall back to the view */
} journal_t;

typedef struct {
    sk_audit_source_t base;
    sqlite3 *db;
    bool has_state; /* the orders view has state, quantity and times */
    bool has_trail; /* sale_events, the trail of operator controls, with after.stock */
    bool has_log; /* order_batches and order_events */
    bool derive; /* orders is the embedded store's view over the log: derived from it here */
    journal_t j; /* the log, read once (has_log and has_state) */
} sqlite_source_t;

static int journal_load(sqlite_source_t *q, const char *sale_id, char *err, size_t err_len);
static int journal_orders(sqlite_source_t *q, sk_loadgen_order_fn fn, void *arg);

static int db_error(sqlite_source_t *q, char *err, size_t err_len)
{
    snprintf(err, err_len, "sqlite: %s", sqlite3_errmsg(q->db));
    return -1;
}

static int sqlite_sale(sk_audit_source_t *s, const char *sale_id, sk_loadgen_sale_t *out, char *err, size_t err_len)
{
    sqlite_source_t *q = (sqlite_source_t *)s;
    sqlite3_stmt *st = NULL;
    int rc = -1;
    /* "sold" as the store holds it: units of confirmed orders (every order, in a store
     * without states); the stock now: the trail's last entry's, else the sales row's. */
    const char *stock = q->has_trail ? "coalesce((SELECT after ->> 'stock' FROM sale_events WHERE sale_id = ?1 "
                                       "ORDER BY lsn DESC LIMIT 1), stock)"
                                     : "stock";
    if (q->derive && journal_load(q, sale_id, err, err_len) < 0)
        return -1;
    const char *sold = q->j.ok        ? "-1"
                       : q->has_state ? "SELECT coalesce(sum(quantity), 0) FROM orders WHERE sale_id = ?1 AND "
                                        "state = 'confirmed'"
                                      : "SELECT count(*) FROM orders WHERE sale_id = ?1";
    char sql[512];
    snprintf(sql, sizeof(sql), "SELECT %s, per_user_limit, (%s) FROM sales WHERE id = ?1", stock, sold);
    if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK)
        return db_error(q, err, err_len);
    sqlite3_bind_text(st, 1, sale_id, -1, SQLITE_STATIC);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        out->stock = sqlite3_column_int64(st, 0);
        out->limit = sqlite3_column_int64(st, 1);
        out->sold = q->j.ok ? q->j.sold : sqlite3_column_int64(st, 2);
        rc = 0;
    } else if (r == SQLITE_DONE) {
        snprintf(err, err_len, "sqlite: no sale %s in the store", sale_id);
    } else {
        db_error(q, err, err_len);
    }
    sqlite3_finalize(st);
    return rc;
}

static const char *col_text(sqlite3_stmt *st, int i, size_t *len)
{
    const char *p = (const char *)sqlite3_column_text(st, i);
    *len = p ? (size_t)sqlite3_column_bytes(st, i) : 0;
    return p ? p : "";
}

static int sqlite_orders(sk_audit_source_t *s, const char *sale_id, sk_loadgen_order_fn fn, void *arg, char *err,
                         size_t err_len)
{
    sqlite_source_t *q = (sqlite_source_t *)s;
    if (q->derive && journal_load(q, sale_id, err, err_len) < 0)
        return -1;
    if (q->j.ok)
        return journal_orders(q, fn, arg);
    sqlite3_stmt *st = NULL;
    const char *sql =
        q->has_state ? "SELECT order_id, user_id, coalesce(request_id, ''), seq, quantity, state, "
                       "coalesce(pay_by, 0), coalesce(paid_at, 0), coalesce(closed_at, 0), coalesce(created_at, 0) "
                       "FROM orders WHERE sale_id = ?1 ORDER BY seq"
                     : "SELECT order_id, user_id, coalesce(request_id, ''), seq FROM orders WHERE sale_id = ?1 "
                       "ORDER BY seq";
    if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK)
        return db_error(q, err, err_len);
    sqlite3_bind_text(st, 1, sale_id, -1, SQLITE_STATIC);
    int rc = 0, r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        sk_loadgen_store_order_t so = {0};
        so.order_id = col_text(st, 0, &so.order_id_len);
        so.user_id = col_text(st, 1, &so.user_id_len);
        so.request_id = col_text(st, 2, &so.request_id_len);
        so.seq = (uint64_t)sqlite3_column_int64(st, 3);
        if (q->has_state) {
            size_t n;
            const char *state = col_text(st, 5, &n);
            so.quantity = sqlite3_column_int64(st, 4);
            so.state = sk_loadgen_state_parse(state, n);
            so.pay_by = sqlite3_column_int64(st, 6);
            so.paid_at = sqlite3_column_int64(st, 7);
            so.closed_at = sqlite3_column_int64(st, 8);
            so.created_at = sqlite3_column_int64(st, 9);
        }
        if ((rc = fn(arg, &so)) != 0)
            break;
    }
    if (rc == 0 && r != SQLITE_DONE)
        rc = db_error(q, err, err_len);
    sqlite3_finalize(st);
    return rc;
}

/* ---- the log ------------------------------------------------------------------------- */

static sk_loadgen_state_t event_state(const char *kind)
{
    if (strcmp(kind, "pay") == 0)
        return SK_LOADGEN_ST_CONFIRMED;
    if (strcmp(kind, "cancel") == 0)
        return SK_LOADGEN_ST_CANCELLED;
    if (strcmp(kind, "expire") == 0)
        return SK_LOADGEN_ST_EXPIRED;
    if (strcmp(kind, "refund") == 0)
        return SK_LOADGEN_ST_REFUNDED;
    return SK_LOADGEN_ST_UNKNOWN;
}

/* One order_batches row: its new orders, first_seq onwards. */
static int batch_row(sqlite3_stmt *st, sk_audit_event_fn fn, void *arg, char *err, size_t err_len)
{
    uint64_t first = (uint64_t)sqlite3_column_int64(st, 1);
    bool reserved = sqlite3_column_type(st, 2) != SQLITE_NULL;
    size_t len;
    const char *text = col_text(st, 3, &len);
    json_t *a = json_loadb(text, len, 0, NULL);
    if (!json_is_array(a)) {
        snprintf(err, err_len, "sqlite: order_batches row %lld: orders is not a JSON array",
                 (long long)sqlite3_column_int64(st, 0));
        json_decref(a);
        return -1;
    }
    size_t i;
    json_t *o;
    int rc = 0;
    json_array_foreach(a, i, o)
    {
        json_t *u = json_array_get(o, 0), *qv = json_array_get(o, 2);
        sk_audit_event_t ev = {.seq = first + i,
                               .created = true,
                               .to = reserved ? SK_LOADGEN_ST_RESERVED : SK_LOADGEN_ST_CONFIRMED,
                               .user_id = json_is_string(u) ? json_string_value(u) : "",
                               .user_id_len = json_is_string(u) ? json_string_length(u) : 0,
                               .quantity = json_is_integer(qv) ? json_integer_value(qv) : 1};
        if ((rc = fn(arg, &ev)) != 0)
            break;
    }
    json_decref(a);
    return rc;
}

/* Each event of an order_events row's JSON array (text), read with jansson: each(arg,
 * seq, in_view) for every seq, in_view false for a bare number (the view reads an event's
 * seq as element 0 of an array, so a bare one moves the log's order but not the view's).
 * An unknown kind, a text that is not an array or an event without a seq is an error. */
static int each_json_event(sqlite3_stmt *st, const char *kind, sk_loadgen_state_t to, const char *text, size_t len,
                           int (*each)(void *arg, uint64_t seq, bool in_view), void *arg, char *err, size_t err_len)
{
    json_t *a = json_loadb(text, len, 0, NULL);
    if (!json_is_array(a) || to == SK_LOADGEN_ST_UNKNOWN) {
        snprintf(err, err_len, "sqlite: order_events row %lld: kind %s, events not a JSON array",
                 (long long)sqlite3_column_int64(st, 0), kind);
        json_decref(a);
        return -1;
    }
    size_t i;
    json_t *e;
    int rc = 0;
    json_array_foreach(a, i, e)
    {
        json_t *seq = json_is_array(e) ? json_array_get(e, 0) : e;
        if (!json_is_integer(seq) || json_integer_value(seq) < 1) {
            snprintf(err, err_len, "sqlite: order_events row %lld: an event without a seq",
                     (long long)sqlite3_column_int64(st, 0));
            rc = -1;
            break;
        }
        if ((rc = each(arg, (uint64_t)json_integer_value(seq), json_is_array(e))) != 0)
            break;
    }
    json_decref(a);
    return rc;
}

typedef struct {
    sk_audit_event_fn fn;
    void *arg;
    sk_loadgen_state_t to;
} row_events_t;

static int row_event(void *arg, uint64_t seq, bool in_view)
{
    (void)in_view;
    row_events_t *r = arg;
    sk_audit_event_t ev = {.seq = seq, .to = r->to};
    return r->fn(r->arg, &ev);
}

/* One order_events row: each order it moves, into the state its kind makes. */
static int events_row(sqlite3_stmt *st, sk_audit_event_fn fn, void *arg, char *err, size_t err_len)
{
    size_t kl, len;
    const char *kind = col_text(st, 1, &kl);
    const char *text = col_text(st, 2, &len);
    row_events_t r = {.fn = fn, .arg = arg, .to = event_state(kind)};
    return each_json_event(st, kind, r.to, text, len, row_event, &r, err, err_len);
}

/* ---- the log, read once ---------------------------------------------------------------- */

/* Above this many seqs per order the journal's seqs are too sparse for an array by seq:
 * the view is read instead. */
static const uint64_t sparse_factor = 4;

static void journal_free(journal_t *j)
{
    free(j->sale_id);
    free(j->orders);
    free(j->log);
    free(j->arena);
    free(j->st);
    memset(j, 0, sizeof(*j));
}

static uint64_t arena_add(journal_t *j, const char *p, size_t n)
{
    if (j->arena_len + n > j->arena_cap) {
        j->arena_cap = j->arena_cap ? j->arena_cap * 2 : 1 << 20;
        while (j->arena_len + n > j->arena_cap)
            j->arena_cap *= 2;
        j->arena = sk_xrealloc(j->arena, j->arena_cap);
    }
    memcpy(j->arena + j->arena_len, p, n);
    uint64_t off = j->arena_len;
    j->arena_len += n;
    return off;
}

static void log_add(journal_t *j, jentry_t e)
{
    if (j->n_log == j->cap_log) {
        j->cap_log = j->cap_log ? j->cap_log * 2 : 1 << 16;
        j->log = sk_xrealloc(j->log, j->cap_log * sizeof(*j->log));
    }
    j->log[j->n_log++] = e;
}

/* A new order of a batch: kept, and its entry in the log. */
static void journal_order(journal_t *j, uint64_t seq, int64_t quantity, int64_t created_at, bool window, int64_t pay_by,
                          const char *user, size_t user_len, const char *rid, size_t rid_len)
{
    if (j->n_orders == j->cap_orders) {
        j->cap_orders = j->cap_orders ? j->cap_orders * 2 : 1 << 16;
        j->orders = sk_xrealloc(j->orders, j->cap_orders * sizeof(*j->orders));
    }
    jorder_t *jo = &j->orders[j->n_orders];
    jo->seq = seq;
    jo->quantity = quantity;
    jo->created_at = created_at;
    jo->pay_by = window ? pay_by : 0;
    jo->window = window;
    jo->user_len = (uint32_t)user_len;
    jo->user_off = arena_add(j, user, user_len);
    jo->rid_len = (uint32_t)rid_len;
    jo->rid_off = arena_add(j, rid, rid_len);
    if (j->n_orders > 0 && seq < j->orders[j->n_orders - 1].seq)
        j->sorted = false;
    if (seq > j->max_seq)
        j->max_seq = seq;
    log_add(j, (jentry_t){.seq = seq,
                          .at = (int64_t)j->n_orders,
                          .created = 1,
                          .to = window ? SK_LOADGEN_ST_RESERVED : SK_LOADGEN_ST_CONFIRMED});
    j->n_orders++;
}

/* ---- a fast reading of the shapes the journal writes ----
 * A batch: [["user", "request" or null(, quantity)], ...]; events: [[seq(, "arg")], ...].
 * Plain ASCII strings without escapes, integers without fraction or exponent. Anything
 * else (and every error) returns false with nothing kept, and the row is read with
 * jansson, whose answers these match. */
typedef struct {
    const char *p, *end;
} scan_t;

static void sc_ws(scan_t *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\t' || *s->p == '\r'))
        s->p++;
}

static bool sc_ch(scan_t *s, char c)
{
    sc_ws(s);
    if (s->p < s->end && *s->p == c) {
        s->p++;
        return true;
    }
    return false;
}

static bool sc_str(scan_t *s, const char **v, size_t *n)
{
    sc_ws(s);
    if (s->p >= s->end || *s->p != '"')
        return false;
    const char *b = ++s->p;
    while (s->p < s->end && *s->p != '"') {
        unsigned char c = (unsigned char)*s->p;
        if (c == '\\' || c < 0x20 || c >= 0x80)
            return false;
        s->p++;
    }
    if (s->p >= s->end)
        return false;
    *v = b;
    *n = (size_t)(s->p - b);
    s->p++;
    return true;
}

static bool sc_int(scan_t *s, int64_t *v)
{
    sc_ws(s);
    const char *b = s->p;
    bool neg = s->p < s->end && *s->p == '-';
    if (neg)
        s->p++;
    const char *d = s->p;
    uint64_t x = 0;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
        x = x * 10 + (uint64_t)(*s->p++ - '0');
    size_t nd = (size_t)(s->p - d);
    if (nd == 0 || nd > 18 || (nd > 1 && *d == '0') ||
        (s->p < s->end && (*s->p == '.' || *s->p == 'e' || *s->p == 'E'))) {
        s->p = b;
        return false;
    }
    *v = neg ? -(int64_t)x : (int64_t)x;
    return true;
}

static bool sc_null(scan_t *s)
{
    sc_ws(s);
    if (s->end - s->p >= 4 && memcmp(s->p, "null", 4) == 0) {
        s->p += 4;
        return true;
    }
    return false;
}

static bool sc_done(scan_t *s)
{
    sc_ws(s);
    return s->p == s->end;
}

static bool fast_batch(journal_t *j, const char *text, size_t len, uint64_t first, int64_t created_at, bool window,
                       int64_t pay_by)
{
    scan_t s = {text, text + len};
    size_t n0 = j->n_orders, l0 = j->n_log, a0 = j->arena_len;
    uint64_t m0 = j->max_seq;
    bool s0 = j->sorted;
    if (!sc_ch(&s, '['))
        return false;
    uint64_t i = 0;
    if (!sc_ch(&s, ']')) {
        do {
            const char *u, *r = "";
            size_t un, rn = 0;
            int64_t q = 1;
            if (!sc_ch(&s, '[') || !sc_str(&s, &u, &un))
                goto undo;
            if (sc_ch(&s, ',')) {
                if (!sc_str(&s, &r, &rn) && !sc_null(&s))
                    goto undo;
                if (sc_ch(&s, ',') && !sc_int(&s, &q) && !sc_null(&s))
                    goto undo;
            }
            if (!sc_ch(&s, ']'))
                goto undo;
            journal_order(j, first + i++, q, created_at, window, pay_by, u, un, r, rn);
        } while (sc_ch(&s, ','));
        if (!sc_ch(&s, ']'))
            goto undo;
    }
    if (sc_done(&s))
        return true;
undo:
    j->n_orders = n0;
    j->n_log = l0;
    j->arena_len = a0;
    j->max_seq = m0;
    j->sorted = s0;
    return false;
}

static bool fast_events(journal_t *j, const char *text, size_t len, int64_t at, sk_loadgen_state_t to)
{
    scan_t s = {text, text + len};
    size_t l0 = j->n_log;
    if (!sc_ch(&s, '['))
        return false;
    if (!sc_ch(&s, ']')) {
        do {
            bool arr = sc_ch(&s, '[');
            int64_t seq;
            if (!sc_int(&s, &seq) || seq < 1)
                goto undo;
            if (arr) {
                while (sc_ch(&s, ',')) {
                    const char *v;
                    size_t n;
                    int64_t x;
                    if (!sc_str(&s, &v, &n) && !sc_int(&s, &x) && !sc_null(&s))
                        goto undo;
                }
                if (!sc_ch(&s, ']'))
                    goto undo;
            }
            log_add(j, (jentry_t){.seq = (uint64_t)seq, .at = at, .to = (uint8_t)to, .in_view = arr});
        } while (sc_ch(&s, ','));
        if (!sc_ch(&s, ']'))
            goto undo;
    }
    if (sc_done(&s))
        return true;
undo:
    j->n_log = l0;
    return false;
}

/* One order_batches row (lsn, first_seq, pay_by, orders, created_at): its new orders. */
static int journal_batch(journal_t *j, sqlite3_stmt *st, char *err, size_t err_len)
{
    uint64_t first = (uint64_t)sqlite3_column_int64(st, 1);
    bool window = sqlite3_column_type(st, 2) != SQLITE_NULL;
    int64_t pay_by = sqlite3_column_int64(st, 2), created_at = sqlite3_column_int64(st, 4);
    size_t len;
    const char *text = col_text(st, 3, &len);
    if (fast_batch(j, text, len, first, created_at, window, pay_by))
        return 0;
    json_t *a = json_loadb(text, len, 0, NULL);
    if (!json_is_array(a)) {
        snprintf(err, err_len, "sqlite: order_batches row %lld: orders is not a JSON array",
                 (long long)sqlite3_column_int64(st, 0));
        json_decref(a);
        return -1;
    }
    /* Only the shapes the writer makes: [user(, request or null(, quantity or null))].
     * The view reads other shapes its own way (a quantity "2" is 2 to it): an order read
     * here another way than the view reads it would be audited as another order (its
     * units, its buyer), so the row fails the audit instead. */
    size_t i;
    json_t *o;
    json_array_foreach(a, i, o)
    {
        json_t *u = json_array_get(o, 0), *r = json_array_get(o, 1), *qv = json_array_get(o, 2);
        if (!json_is_array(o) || !json_is_string(u) || (r && !json_is_string(r) && !json_is_null(r)) ||
            (qv && !json_is_integer(qv) && !json_is_null(qv))) {
            snprintf(err, err_len, "sqlite: order_batches row %lld: order %zu is not [user, request, quantity]",
                     (long long)sqlite3_column_int64(st, 0), i);
            json_decref(a);
            return -1;
        }
        journal_order(j, first + i, json_is_integer(qv) ? json_integer_value(qv) : 1, created_at, window, pay_by,
                      json_string_value(u), json_string_length(u), json_is_string(r) ? json_string_value(r) : "",
                      json_is_string(r) ? json_string_length(r) : 0);
    }
    json_decref(a);
    return 0;
}

typedef struct {
    journal_t *j;
    int64_t at;
    sk_loadgen_state_t to;
} log_events_t;

static int log_event(void *arg, uint64_t seq, bool in_view)
{
    log_events_t *l = arg;
    log_add(l->j, (jentry_t){.seq = seq, .at = l->at, .to = (uint8_t)l->to, .in_view = in_view});
    return 0;
}

/* One order_events row (lsn, kind, events, at): each order it moves. */
static int journal_events(journal_t *j, sqlite3_stmt *st, char *err, size_t err_len)
{
    size_t kl, len;
    const char *kind = col_text(st, 1, &kl);
    const char *text = col_text(st, 2, &len);
    log_events_t l = {.j = j, .at = sqlite3_column_int64(st, 3), .to = event_state(kind)};
    if (l.to != SK_LOADGEN_ST_UNKNOWN && fast_events(j, text, len, l.at, l.to))
        return 0;
    return each_json_event(st, kind, l.to, text, len, log_event, &l, err, err_len);
}

static uint8_t rank_of(sk_loadgen_state_t to)
{
    switch (to) {
    case SK_LOADGEN_ST_CONFIRMED:
        return 1;
    case SK_LOADGEN_ST_EXPIRED:
        return 2;
    case SK_LOADGEN_ST_CANCELLED:
        return 3;
    case SK_LOADGEN_ST_REFUNDED:
        return 4;
    default:
        return 0;
    }
}

/* An order's state as the view derives it. */
static sk_loadgen_state_t journal_state(const journal_t *j, const jorder_t *o)
{
    static const sk_loadgen_state_t by_rank[5] = {SK_LOADGEN_ST_UNKNOWN, SK_LOADGEN_ST_CONFIRMED, SK_LOADGEN_ST_EXPIRED,
                                                  SK_LOADGEN_ST_CANCELLED, SK_LOADGEN_ST_REFUNDED};
    uint8_t r = j->st[o->seq].rank;
    if (r)
        return by_rank[r];
    return o->window ? SK_LOADGEN_ST_RESERVED : SK_LOADGEN_ST_CONFIRMED;
}

static int journal_load(sqlite_source_t *q, const char *sale_id, char *err, size_t err_len)
{
    journal_t *j = &q->j;
    if (j->sale_id && strcmp(j->sale_id, sale_id) == 0)
        return 0;
    journal_free(j);
    j->sale_id = sk_xstrndup(sale_id, strlen(sale_id));
    j->sorted = true;
    sqlite3_stmt *b = NULL, *e = NULL;
    int rc = -1;
    /* Sized up front: the orders the batches say they made (no more than their text
     * can hold: an order takes at least four characters), about as many log entries
     * again for their transitions, and their strings. Without the counts the arrays
     * grow as they are read. */
    if (sqlite3_prepare_v2(q->db,
                           "SELECT coalesce(sum(n), 0), coalesce(sum(length(orders)), 0) FROM order_batches "
                           "WHERE sale_id = ?1",
                           -1, &b, NULL) == SQLITE_OK)
        sqlite3_bind_text(b, 1, sale_id, -1, SQLITE_STATIC);
    if (b && sqlite3_step(b) == SQLITE_ROW) {
        int64_t text = SK_MAX(0, sqlite3_column_int64(b, 1));
        size_t n = (size_t)SK_MIN(SK_MAX(0, sqlite3_column_int64(b, 0)), text / 4) + 1024;
        j->cap_orders = n;
        j->orders = sk_xmalloc(n * sizeof(*j->orders));
        sk_mem_huge(j->orders, n * sizeof(*j->orders));
        j->cap_log = 2 * n;
        j->log = sk_xmalloc(2 * n * sizeof(*j->log));
        sk_mem_huge(j->log, 2 * n * sizeof(*j->log));
        j->arena_cap = (size_t)text + 4096;
        j->arena = sk_xmalloc(j->arena_cap);
        sk_mem_huge(j->arena, j->arena_cap);
    }
    sqlite3_finalize(b);
    b = NULL;
    /* Each table in its rowid (lsn) order, one sequential scan (+sale_id: not through
     * the sale's index, which would sort the rows again). */
    if (sqlite3_prepare_v2(q->db,
                           "SELECT lsn, first_seq, pay_by, orders, created_at FROM order_batches WHERE +sale_id = ?1 "
                           "ORDER BY lsn",
                           -1, &b, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(q->db, "SELECT lsn, kind, events, at FROM order_events WHERE +sale_id = ?1 ORDER BY lsn", -1,
                           &e, NULL) != SQLITE_OK) {
        db_error(q, err, err_len);
        goto out;
    }
    sqlite3_bind_text(b, 1, sale_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(e, 1, sale_id, -1, SQLITE_STATIC);
    /* Two cursors in lsn order, merged. */
    int rb = sqlite3_step(b), re = sqlite3_step(e);
    while (rb == SQLITE_ROW || re == SQLITE_ROW) {
        bool take_batch =
            rb == SQLITE_ROW && (re != SQLITE_ROW || sqlite3_column_int64(b, 0) < sqlite3_column_int64(e, 0));
        if ((take_batch ? journal_batch(j, b, err, err_len) : journal_events(j, e, err, err_len)) < 0)
            goto out;
        if (take_batch)
            rb = sqlite3_step(b);
        else
            re = sqlite3_step(e);
    }
    if (rb != SQLITE_DONE || re != SQLITE_DONE) {
        db_error(q, err, err_len);
        goto out;
    }
    rc = 0;
    if (j->max_seq > sparse_factor * j->n_orders + 1024) {
        char *keep = j->sale_id; /* remembered, so that the view is read without a reload */
        j->sale_id = NULL;
        journal_free(j);
        j->sale_id = keep;
        goto out;
    }
    /* The view's st: per seq of an order, the highest-ranked event and the latest
     * payment's and other event's times (events of seqs no batch made join nothing). */
    j->st = sk_xcalloc(j->max_seq + 1, sizeof(*j->st));
    sk_mem_huge(j->st, (j->max_seq + 1) * sizeof(*j->st));
    for (size_t i = 0; i < j->n_log; i++) {
        const jentry_t *l = &j->log[i];
        if (l->created || !l->in_view || l->seq > j->max_seq)
            continue;
        jstate_t *x = &j->st[l->seq];
        uint8_t r = rank_of((sk_loadgen_state_t)l->to);
        x->rank = SK_MAX(x->rank, r);
        if (r == 1)
            x->paid_at = x->paid_at ? SK_MAX(x->paid_at, l->at) : l->at;
        else
            x->closed_at = x->closed_at ? SK_MAX(x->closed_at, l->at) : l->at;
    }
    for (size_t i = 0; i < j->n_orders; i++)
        if (journal_state(j, &j->orders[i]) == SK_LOADGEN_ST_CONFIRMED)
            j->sold += j->orders[i].quantity;
    j->ok = true;
out:
    sqlite3_finalize(b);
    sqlite3_finalize(e);
    if (rc < 0)
        journal_free(j); /* not remembered: asked again, it fails again (not the view's answer) */
    return rc;
}

static int by_seq_row(const void *pa, const void *pb)
{
    const jorder_t *x = *(const jorder_t *const *)pa, *y = *(const jorder_t *const *)pb;
    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* The orders in seq order, as the view's rows. */
static int journal_orders(sqlite_source_t *q, sk_loadgen_order_fn fn, void *arg)
{
    journal_t *j = &q->j;
    const jorder_t **idx = NULL;
    if (!j->sorted) {
        idx = sk_xmalloc((j->n_orders + 1) * sizeof(*idx));
        for (size_t i = 0; i < j->n_orders; i++)
            idx[i] = &j->orders[i];
        qsort(idx, j->n_orders, sizeof(*idx), by_seq_row);
    }
    size_t id_cap = strlen(j->sale_id) + 32;
    char *id = sk_xmalloc(id_cap);
    int rc = 0;
    for (size_t i = 0; i < j->n_orders && rc == 0; i++) {
        const jorder_t *o = idx ? idx[i] : &j->orders[i];
        const jstate_t *x = &j->st[o->seq];
        int n = snprintf(id, id_cap, "%s-%010llu", j->sale_id, (unsigned long long)o->seq);
        sk_loadgen_store_order_t so = {
            .order_id = id,
            .order_id_len = n > 0 ? (size_t)n : 0,
            .user_id = j->arena + o->user_off,
            .user_id_len = o->user_len,
            .request_id = j->arena + o->rid_off,
            .request_id_len = o->rid_len,
            .seq = o->seq,
            .quantity = o->quantity,
            .state = journal_state(j, o),
            .pay_by = o->pay_by,
            .paid_at = x->paid_at,
            .closed_at = x->closed_at,
            .created_at = o->created_at,
        };
        rc = fn(arg, &so);
    }
    free(id);
    free(idx);
    return rc;
}

/* The log from memory, in decision order. */
static int journal_replay(sqlite_source_t *q, sk_audit_event_fn fn, void *arg)
{
    journal_t *j = &q->j;
    for (size_t i = 0; i < j->n_log; i++) {
        const jentry_t *l = &j->log[i];
        sk_audit_event_t ev = {.seq = l->seq, .created = l->created, .to = (sk_loadgen_state_t)l->to};
        if (l->created) {
            const jorder_t *o = &j->orders[l->at];
            ev.user_id = j->arena + o->user_off;
            ev.user_id_len = o->user_len;
            ev.quantity = o->quantity;
        }
        int rc = fn(arg, &ev);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int sqlite_events(sk_audit_source_t *s, const char *sale_id, sk_audit_event_fn fn, void *arg, char *err,
                         size_t err_len)
{
    sqlite_source_t *q = (sqlite_source_t *)s;
    if (q->derive && journal_load(q, sale_id, err, err_len) < 0)
        return -1;
    if (q->j.ok)
        return journal_replay(q, fn, arg);
    sqlite3_stmt *b = NULL, *e = NULL;
    int rc = -1;
    if (sqlite3_prepare_v2(q->db,
                           "SELECT lsn, first_seq, pay_by, orders FROM order_batches WHERE sale_id = ?1 ORDER BY lsn",
                           -1, &b, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(q->db, "SELECT lsn, kind, events FROM order_events WHERE sale_id = ?1 ORDER BY lsn", -1, &e,
                           NULL) != SQLITE_OK) {
        db_error(q, err, err_len);
        goto out;
    }
    sqlite3_bind_text(b, 1, sale_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(e, 1, sale_id, -1, SQLITE_STATIC);
    /* Two cursors in lsn order, merged. */
    int rb = sqlite3_step(b), re = sqlite3_step(e);
    while (rb == SQLITE_ROW || re == SQLITE_ROW) {
        bool take_batch =
            rb == SQLITE_ROW && (re != SQLITE_ROW || sqlite3_column_int64(b, 0) < sqlite3_column_int64(e, 0));
        int r = take_batch ? batch_row(b, fn, arg, err, err_len) : events_row(e, fn, arg, err, err_len);
        if (r != 0) {
            rc = r;
            goto out;
        }
        if (take_batch)
            rb = sqlite3_step(b);
        else
            re = sqlite3_step(e);
    }
    if (rb != SQLITE_DONE || re != SQLITE_DONE) {
        db_error(q, err, err_len);
        goto out;
    }
    rc = 0;
out:
    sqlite3_finalize(b);
    sqlite3_finalize(e);
    return rc;
}

static void sqlite_close(sk_audit_source_t *s)
{
    sqlite_source_t *q = (sqlite_source_t *)s;
    journal_free(&q->j);
    sqlite3_close(q->db);
    free(q);
}

/* True when the table or view exists (and, with col, has that column). */
static bool has(sqlite3 *db, const char *table, const char *col)
{
    char sql[160];
    snprintf(sql, sizeof(sql), "SELECT %s FROM %s LIMIT 0", col ? col : "1", table);
    sqlite3_stmt *st = NULL;
    bool ok = sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK;
    sqlite3_finalize(st);
    return ok;
}

/* True when name is a view (the embedded store's orders). */
static bool is_view(sqlite3 *db, const char *name)
{
    sqlite3_stmt *st = NULL;
    bool view = false;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type = 'view' AND name = ?1", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        view = sqlite3_step(st) == SQLITE_ROW;
    }
    sqlite3_finalize(st);
    return view;
}

sk_audit_source_t *sk_audit_source_sqlite(const char *path, char *err, size_t err_len)
{
    return sk_audit_source_sqlite_opts(path, false, err, err_len);
}

sk_audit_source_t *sk_audit_source_sqlite_opts(const char *path, bool by_view, char *err, size_t err_len)
{
    sqlite3 *db = NULL;
    /* One thread reads it: no locking inside SQLite. */
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        snprintf(err, err_len, "sqlite: cannot open %s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 10000);
    /* One sequential read of the whole file: mapped, and a page cache that holds it. */
    sqlite3_exec(db, "PRAGMA mmap_size=1073741824; PRAGMA cache_size=-262144", NULL, NULL, NULL);
    sqlite_source_t *q = sk_xcalloc(1, sizeof(*q));
    q->base.kind = "sqlite";
    q->base.sale = sqlite_sale;
    q->base.orders = sqlite_orders;
    q->base.close = sqlite_close;
    q->db = db;
    q->has_state = has(db, "orders", "state, quantity, pay_by, paid_at, closed_at, created_at");
    q->has_trail = has(db, "sale_events", "lsn, after");
    q->has_log = has(db, "order_batches", "lsn, first_seq, pay_by, orders, created_at") &&
                 has(db, "order_events", "lsn, kind, events, at");
    if (q->has_log)
        q->base.events = sqlite_events;
    q->derive = q->has_log && q->has_state && !by_view && is_view(db, "orders");
    return &q->base;
}
