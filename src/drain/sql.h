/* The SQL the drain sends, one small file per database: what differs between
 * PostgreSQL (sql_postgres.c) and MySQL/MariaDB (sql_mysql.c) — the placeholders ($1 or
 * ?), the upsert (ON CONFLICT DO NOTHING, or ON DUPLICATE KEY UPDATE that never moves
 * an order's state backwards), the batch insert form (one array per column unnested,
 * or rows of VALUES), times from unix ms, the bookkeeping of the migrations. How the
 * statements are sent (transactions, locks, timeouts) is the client files' part:
 * postgres.c, mysql.c.
 *
 * Pure text, no client library: unit-tested as strings. Static data; nothing to free
 * except what insert_orders appended to the caller's buffer. */
#ifndef SK_DRAIN_SQL_H
#define SK_DRAIN_SQL_H

#include <stddef.h>

#include "util/buf.h"

typedef struct {
    const char *migrations; /* name prefix of its embedded migrations (util/texts.h): "postgres/" */
    const char *migrations_table; /* creates seckill_schema_migrations when it is missing */
    const char *migration_applied; /* one parameter, a migration's name: a row when it is applied */
    const char *migration_record; /* one parameter, the name: records it as applied */
    /* Inserts a sale unless its id is present (never overwrites). Parameters: id, name,
     * stock, starts_at, ends_at (unix ms), per_user_limit, created_at (unix ms). */
    const char *insert_sale;
    /* How many orders one statement of insert_orders takes; 0: any number. */
    size_t orders_max;
    /** Appends the statement that inserts n orders (1 <= n, n <= orders_max when that
     *  is not 0) and skips those present, so that a batch written twice inserts each
     *  order once. The columns of an order, in this order: order_id, sale_id, seq,
     *  user_id, request_id, created_at (unix ms). PostgreSQL takes six parameters, one
     *  array per column, whatever n is; MySQL six per order, order after order. */
    void (*insert_orders)(sk_buf_t *b, size_t n);
} sk_db_sql_t;

extern const sk_db_sql_t sk_db_sql_postgres;
extern const sk_db_sql_t sk_db_sql_mysql;

#endif
