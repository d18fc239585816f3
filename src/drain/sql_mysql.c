/* MySQL's and MariaDB's SQL for the drain (sql.h): ? placeholders, a batch as rows of
 * VALUES, ON DUPLICATE KEY UPDATE for the rows present; times as the epoch plus
 * microseconds (TIMESTAMPADD: FROM_UNIXTIME depends on the session's time zone and
 * stops at 2038 on some servers). */
#include "drain/sql.h"

#define TS(p) "TIMESTAMPADD(MICROSECOND, " p " * 1000, TIMESTAMP'1970-01-01 00:00:00')"

/* An order's state only moves forward: reserved (1), confirmed (2), then one of the
 * final states (3), which never replace each other. */
#define RANK(s) "(CASE " s " WHEN 'reserved' THEN 1 WHEN 'confirmed' THEN 2 ELSE 3 END)"

/* A time that may be unset (0): NULL then. */
#define TS0(p) TS("NULLIF(" p ", 0)")

/* A statement carries at most 65535 placeholders; 9 per order, 6 per transition. A
 * batch of more is several statements in one transaction. */
#define ORDERS_MAX 1000
#define TRANSITIONS_MAX 1000

#define ORDER_ROW "(?,?,?,?,?," TS("?") ",?,?," TS0("?") ")"

static void insert_orders(sk_buf_t *b, size_t n)
{
    sk_buf_puts(b, "INSERT INTO orders (order_id, sale_id, seq, user_id, request_id, created_at, quantity, state, "
                   "pay_by) VALUES ");
    for (size_t i = 0; i < n; i++)
        sk_buf_puts(b, i ? "," ORDER_ROW : ORDER_ROW);
    /* A row present (the batch written again) is left as it is, unless the row
     * written carries a later state: never backwards. VALUES(state) is the state the
     * row would have had, the column's default when the insert does not name it. */
    sk_buf_puts(
        b, " ON DUPLICATE KEY UPDATE state = IF(" RANK("VALUES(state)") " > " RANK("state") ", "
                                                                                            "VALUES(state), state)");
}

static void update_orders(sk_buf_t *b, size_t n)
{
    /* The transitions as a derived table joined to the orders. Its ids carry the
     * connection's collation: compared as the column's (utf8mb4_bin), byte for byte.
     * The assignments do not read each other's columns (a multi-table UPDATE sets them
     * in no set order); the info line's "Rows matched" counts the orders found. */
    sk_buf_puts(b, "UPDATE orders o JOIN (");
    for (size_t i = 0; i < n; i++)
        sk_buf_puts(b, i ? " UNION ALL SELECT ?, ?, ?, ?, ?, ?"
                         : "SELECT ? AS s, ? AS q, ? AS st, ? AS pa, ? AS pid, ? AS ca");
    sk_buf_puts(
        b, ") x ON o.sale_id = x.s COLLATE utf8mb4_bin AND o.seq = x.q SET "
           "o.state = CASE WHEN o.state = 'reserved' OR (o.state = 'confirmed' AND x.st = 'refunded') "
           "THEN x.st ELSE o.state END, "
           "o.paid_at = COALESCE(o.paid_at, " TS0("x.pa") "), "
                                                          "o.payment_id = COALESCE(o.payment_id, NULLIF(x.pid, '')), "
                                                          "o.closed_at = COALESCE(o.closed_at, " TS0("x.ca") ")");
}

const sk_db_sql_t sk_db_sql_mysql = {
    .migrations = "mysql/",
    .migrations_table = "CREATE TABLE IF NOT EXISTS seckill_schema_migrations (name VARCHAR(255) NOT NULL PRIMARY KEY, "
                        "applied_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)) "
                        "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    .migration_applied = "SELECT 1 FROM seckill_schema_migrations WHERE name = ?",
    .migration_record = "INSERT INTO seckill_schema_migrations (name) VALUES (?)",
    /* id = id: the row present stays as it is (and counts as no row changed). */
    .insert_sale = "INSERT INTO sales (id, name, stock, starts_at, ends_at, per_user_limit, created_at) VALUES "
                   "(?, ?, ?, " TS("?") ", " TS("?") ", ?, " TS("?") ") ON DUPLICATE KEY UPDATE id = id",
    .orders_max = ORDERS_MAX,
    .insert_orders = insert_orders,
    .transitions_max = TRANSITIONS_MAX,
    .update_orders = update_orders,
    .order_exists = "SELECT 1 FROM orders WHERE sale_id = ? AND seq = ?",
    /* id = id: the row present stays as it is. */
    .insert_event = "INSERT INTO sale_events (sale_id, seq, kind, actor, request_id, decided_at, params, "
                    "before_values, after_values) VALUES (?, ?, ?, ?, ?, " TS("?") ", ?, ?, ?) "
                                                                                   "ON DUPLICATE KEY UPDATE seq = seq",
    /* The units need the rows themselves: the drain counts a sale at most 1/20 of the
     * time a count takes. */
    .count_orders =
        "SELECT COUNT(*), CAST(COALESCE(SUM(IF(state = 'confirmed', quantity, 0)), 0) AS SIGNED), "
        "CAST(COALESCE(SUM(IF(state = 'reserved', quantity, 0)), 0) AS SIGNED) FROM orders WHERE sale_id = ?",
    .copy_orders = NULL,
};
