/* MySQL's and MariaDB's SQL for the drain (sql.h): ? placeholders, a batch as rows of
 * VALUES, ON DUPLICATE KEY UPDATE for the rows present; times as the epoch plus
 * microseconds (TIMESTAMPADD: FROM_UNIXTIME depends on the session's time zone and
 * stops at 2038 on some servers). */
#include "drain/sql.h"

#define TS(p) "TIMESTAMPADD(MICROSECOND, " p " * 1000, TIMESTAMP'1970-01-01 00:00:00')"

/* An order's state only moves forward: reserved (1), confirmed (2), then one of the
 * final states (3), which never replace each other. */
#define RANK(s) "(CASE " s " WHEN 'reserved' THEN 1 WHEN 'confirmed' THEN 2 ELSE 3 END)"

/* A statement carries at most 65535 placeholders; 6 per order. A batch of more orders
 * is several statements in one transaction. */
#define ORDERS_MAX 1000

static void insert_orders(sk_buf_t *b, size_t n)
{
    sk_buf_puts(b, "INSERT INTO orders (order_id, sale_id, seq, user_id, request_id, created_at) VALUES ");
    for (size_t i = 0; i < n; i++)
        sk_buf_puts(b, i ? ",(?,?,?,?,?," TS("?") ")" : "(?,?,?,?,?," TS("?") ")");
    /* A row present (the batch written again) is left as it is, unless the row
     * written carries a later state: never backwards. VALUES(state) is the state the
     * row would have had, the column's default when the insert does not name it. */
    sk_buf_puts(
        b, " ON DUPLICATE KEY UPDATE state = IF(" RANK("VALUES(state)") " > " RANK("state") ", "
                                                                                            "VALUES(state), state)");
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
};
