/* The SQL the drain sends, one small file per database: what differs between
 * PostgreSQL (sql_postgres.c) and MySQL/MariaDB (sql_mysql.c) — the placeholders ($1 or
 * ?), the upsert (ON CONFLICT DO NOTHING, or ON DUPLICATE KEY UPDATE that never moves
 * an order's state backwards), the batch insert form (one array per column unnested,
 * or rows of VALUES; PostgreSQL's COPY), times from unix ms, the bookkeeping of the migrations. How the
 * statements are sent (transactions, locks, timeouts) is the client files' part:
 * postgres.c, mysql.c.
 *
 * Pure text, no client library: unit-tested as strings. Static data; nothing to free
 * except what insert_orders and update_orders appended to the caller's buffer. */
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
     *  user_id, request_id, created_at (unix ms), quantity, state, pay_by (unix ms, 0:
     *  none). PostgreSQL takes nine parameters, one array per column, whatever n is;
     *  MySQL nine per order, order after order. */
    void (*insert_orders)(sk_buf_t *b, size_t n);
    /* How many transitions one statement of update_orders takes; 0: any number. */
    size_t transitions_max;
    /** Appends the statement that applies n merged transitions (db.h,
     *  sk_db_transition_t): the state moves only forward (sk_db_state_moves), paid_at,
     *  payment_id and closed_at are set where empty. The columns of a transition:
     *  sale_id, seq, state, paid_at (unix ms, 0: none), payment_id ("": none),
     *  closed_at (unix ms, 0: none). PostgreSQL: six arrays; its rows are the
     *  transitions whose order is missing (sale_id, seq). MySQL: six parameters per
     *  transition; the server's info line says how many orders it matched. */
    void (*update_orders)(sk_buf_t *b, size_t n);
    /* MySQL only (NULL for PostgreSQL): two parameters, sale_id and seq: a row when the
     *  order is there (which of a statement's transitions found no order). */
    const char *order_exists;
    /* One trail entry into sale_events, skipped when (sale_id, seq) is there. Parameters:
     * sale_id, seq, kind, actor, request_id, decided_at (unix ms), params, before,
     * after (JSON text). */
    const char *insert_event;
    /* One parameter, a sale id: one row, its orders, the units of its confirmed orders
     * and of its reserved ones (the reconciliation). */
    const char *count_orders;
    /* PostgreSQL only (NULL for MySQL): COPY of the nine columns of insert_orders. */
    const char *copy_orders;
} sk_db_sql_t;

extern const sk_db_sql_t sk_db_sql_postgres;
extern const sk_db_sql_t sk_db_sql_mysql;

#endif
