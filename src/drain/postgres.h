/* PostgreSQL, the cluster's system of record (written by `seckill drain`).
 *
 * A thin layer over libpq for the drain's three needs: apply the schema migrations
 * compiled into the binary (the .sql files of deploy/postgres/), record sales, and insert a batch of
 * orders in one transaction. Every statement runs with a deadline, so a database that
 * stops answering is reported as an error instead of hanging the caller.
 *
 * Ownership: sk_pg_t owns its connection; strings passed in are borrowed for the call.
 * Single-threaded: one sk_pg_t per thread. */
#ifndef SK_DRAIN_POSTGRES_H
#define SK_DRAIN_POSTGRES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sk_pg sk_pg_t;

typedef struct {
    const char *id, *name;
    int64_t stock, starts_at, ends_at, per_user_limit, created_at; /* times: unix ms */
} sk_pg_sale_t;

typedef struct {
    const char *order_id, *sale_id, *user_id, *request_id;
    int64_t seq;
    int64_t created_at; /* unix ms */
} sk_pg_order_t;

/** Connects (libpq connection string or postgresql:// URL). `timeout_ms` bounds the
 *  connect and every later statement. Returns NULL with one clear line in err. */
sk_pg_t *sk_pg_connect(const char *conninfo, int timeout_ms, char *err, size_t err_size);
void sk_pg_close(sk_pg_t *pg);

/** Applies the embedded migrations not yet applied, each in its own transaction under
 *  an advisory lock (several drains may start at once). Returns the number applied or
 *  -EIO with one clear line in err. */
int sk_pg_migrate(sk_pg_t *pg, char *err, size_t err_size);

/** Inserts or updates a sale's row. Returns 0 or -EIO (err filled). */
int sk_pg_put_sale(sk_pg_t *pg, const sk_pg_sale_t *s, char *err, size_t err_size);

/** Inserts orders in one statement (one transaction), skipping order ids already
 *  present. Returns the number of rows inserted, or -EIO (nothing inserted; err filled). */
int64_t sk_pg_put_orders(sk_pg_t *pg, const sk_pg_order_t *o, size_t n, char *err, size_t err_size);

/** True while the connection is usable; false after a failure (reconnect then). */
bool sk_pg_ok(const sk_pg_t *pg);

#endif
