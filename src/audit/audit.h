/* The audit: reconciles what the service told the client during a run against what its
 * order store holds afterwards, and counts every way they disagree.
 *
 *   oversold    orders beyond the stock: the store's count, the service's reported
 *               "sold", or the distinct orders named to the client, minus stock (max)
 *   undersold   units left unsold although buyers were turned away with sold_out:
 *               min(stock - store orders, users told sold_out who hold no order)
 *   lost        orders the service named to the client (confirmed, duplicate,
 *               limit_reached, or found when asked) that the store does not hold
 *   phantom     orders in the store nobody was told about: not named in any answer and
 *               not found by asking the service about a request that ended in doubt
 *   duplicates  orders beyond per_user_limit for one user, plus extra orders for one
 *               request_id (retries must not buy twice)
 *
 * In-doubt requests (503 or no answer after the last retry) may or may not have
 * bought: invariant I6 (docs/architecture.md) lets a client ask GET /api/v1/sales/{id}/orders/{user} later. The
 * audit does exactly that for every user with such a request and counts the orders it
 * learns of as `recovered`; they are not phantoms. With `resolve` off it does not ask,
 * and an order behind a 503 counts as phantom. A user who cannot be asked (the
 * service is down) cannot vouch for their orders either: those count as phantom too.
 *
 * The store is read through a small source interface: the service's own admin listing
 * (HTTP), the embedded SQLite file, a cluster's PostgreSQL or MySQL/MariaDB.
 *
 * Ownership: sources are created by their constructor and released with close(). Order
 * fields passed to a callback are valid only during the call. */
#ifndef SK_AUDIT_AUDIT_H
#define SK_AUDIT_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loadgen/client.h"
#include "loadgen/scenario.h"

/** One order as the store holds it (strings not NUL-terminated). */
typedef struct {
    const char *order_id;
    size_t order_id_len;
    const char *user_id;
    size_t user_id_len;
    const char *request_id;
    size_t request_id_len;
} sk_loadgen_store_order_t;

/** Called for each order; returns 0 to go on, non-zero to stop with that value. */
typedef int (*sk_loadgen_order_fn)(void *arg, const sk_loadgen_store_order_t *o);

typedef struct sk_audit_source sk_audit_source_t;
struct sk_audit_source {
    const char *kind; /* "http", "sqlite", ... */
    /** Fills stock, limit and, when known, sold (else -1). Returns 0 or -1 with err. */
    int (*sale)(sk_audit_source_t *s, const char *sale_id, sk_loadgen_sale_t *out, char *err, size_t err_len);
    /** Calls fn for every order of the sale. Returns 0 or -1 with err. */
    int (*orders)(sk_audit_source_t *s, const char *sale_id, sk_loadgen_order_fn fn, void *arg, char *err,
                  size_t err_len);
    void (*close)(sk_audit_source_t *s);
};

/** The service's admin listing GET /api/v1/sales/{id}/orders, paged by `after`. The
 *  target is borrowed. Never fails to construct. */
sk_audit_source_t *sk_audit_source_http(const sk_loadgen_target_t *t, const char *admin_token);
/** The embedded store's SQLite file, opened read-only. NULL with err when it cannot be opened. */
sk_audit_source_t *sk_audit_source_sqlite(const char *path, char *err, size_t err_len);
/** A cluster's PostgreSQL (libpq connection string or URL). Before reading, it waits up
 *  to wait_ms until the database holds as many orders of the sale as the service at
 *  target `t` (borrowed) reports sold. NULL with err when it cannot connect. */
sk_audit_source_t *sk_audit_source_pg(const char *conninfo, const sk_loadgen_target_t *t, int wait_ms, char *err,
                                      size_t err_len);
/** The same for a cluster's MySQL or MariaDB (a mysql:// URL, drain/mysql.h). */
sk_audit_source_t *sk_audit_source_mysql(const char *url, const sk_loadgen_target_t *t, int wait_ms, char *err,
                                         size_t err_len);

typedef struct {
    const sk_loadgen_sale_t *sale; /* as set up before the run */
    const sk_loadgen_results_t *res;
    const char *run_id; /* request ids of this run start with "r<run_id>-" */
    const sk_loadgen_target_t *targets; /* asked about in-doubt users, first that answers */
    size_t ntargets;
    const char *admin_token;
    bool resolve;
} sk_audit_input_t;

typedef struct {
    char source[16];
    int64_t stock, limit;
    int64_t store_orders;
    int64_t reported_sold; /* -1 when the source does not say */
    int64_t client_orders; /* distinct orders named to the client, recovered included */
    int64_t recovered;
    int64_t users_tried, users_in_doubt, users_asked, ask_failures;
    int64_t users_refused_sold_out; /* told sold_out and hold no order */
    int64_t foreign; /* orders of other runs (only when this run did not create the sale) */
    int64_t oversold, undersold, lost, phantom, duplicates;
    bool ok; /* every count above that can fail is zero */
    char failure[256]; /* "oversold=3 lost=1" when !ok */
    char note[256];
} sk_audit_t;

/** Runs the audit. Returns 0 (the verdict is in out->ok), or -1 with err when the store
 *  could not be read at all. */
int sk_audit_run(const sk_audit_input_t *in, sk_audit_source_t *src, sk_audit_t *out, char *err, size_t err_len);

#endif
