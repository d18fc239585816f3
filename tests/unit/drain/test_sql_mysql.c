/* src/drain/sql_mysql.c: the statements the drain sends to MySQL/MariaDB. */
#include "drain/sql.h"
#include "test.h"

static size_t count(const char *s, size_t n, const char *what)
{
    size_t k = 0, w = strlen(what);
    for (size_t i = 0; i + w <= n; i++)
        if (memcmp(s + i, what, w) == 0)
            k++;
    return k;
}

#define TS "TIMESTAMPADD(MICROSECOND, ? * 1000, TIMESTAMP'1970-01-01 00:00:00')"
#define TS0 "TIMESTAMPADD(MICROSECOND, NULLIF(?, 0) * 1000, TIMESTAMP'1970-01-01 00:00:00')"
#define COLS                                                                                                           \
    "INSERT INTO orders (order_id, sale_id, seq, user_id, request_id, created_at, quantity, state, pay_by) VALUES "
#define ROW "(?,?,?,?,?," TS ",?,?," TS0 ")"
#define UPSERT                                                                                                         \
    " ON DUPLICATE KEY UPDATE state = IF((CASE VALUES(state) WHEN 'reserved' THEN 1 WHEN 'confirmed' THEN 2 ELSE 3 "   \
    "END) > (CASE state WHEN 'reserved' THEN 1 WHEN 'confirmed' THEN 2 ELSE 3 END), VALUES(state), state)"

SK_TEST(insert_orders)
{
    const sk_db_sql_t *q = &sk_db_sql_mysql;
    sk_buf_t b = {0};
    q->insert_orders(&b, 1);
    ASSERT_MEM_STR(b.data, b.len, COLS ROW UPSERT);
    sk_buf_free(&b);

    q->insert_orders(&b, 3);
    ASSERT_MEM_STR(b.data, b.len, COLS ROW "," ROW "," ROW UPSERT);
    sk_buf_free(&b);

    /* The largest statement stays within MySQL's 65535 placeholders: nine an order. */
    ASSERT_TRUE(q->orders_max > 0);
    q->insert_orders(&b, q->orders_max);
    ASSERT_EQ(count(b.data, b.len, "?"), 9 * q->orders_max);
    ASSERT_LE(9 * q->orders_max, 65535);
    ASSERT_EQ(count(b.data, b.len, "ON DUPLICATE KEY UPDATE"), 1);
    sk_buf_free(&b);
}

SK_TEST(update_orders)
{
    const sk_db_sql_t *q = &sk_db_sql_mysql;
    sk_buf_t b = {0};
    q->update_orders(&b, 2);
    ASSERT_MEM_STR(b.data, b.len,
                   "UPDATE orders o JOIN (SELECT ? AS s, ? AS q, ? AS st, ? AS pa, ? AS pid, ? AS ca UNION ALL "
                   "SELECT ?, ?, ?, ?, ?, ?) x ON o.sale_id = x.s COLLATE utf8mb4_bin AND o.seq = x.q SET "
                   "o.state = CASE WHEN o.state = 'reserved' OR (o.state = 'confirmed' AND x.st = 'refunded') "
                   "THEN x.st ELSE o.state END, "
                   "o.paid_at = COALESCE(o.paid_at, TIMESTAMPADD(MICROSECOND, NULLIF(x.pa, 0) * 1000, "
                   "TIMESTAMP'1970-01-01 00:00:00')), o.payment_id = COALESCE(o.payment_id, NULLIF(x.pid, '')), "
                   "o.closed_at = COALESCE(o.closed_at, TIMESTAMPADD(MICROSECOND, NULLIF(x.ca, 0) * 1000, "
                   "TIMESTAMP'1970-01-01 00:00:00'))");
    sk_buf_free(&b);
    ASSERT_TRUE(q->transitions_max > 0);
    q->update_orders(&b, q->transitions_max);
    ASSERT_EQ(count(b.data, b.len, "?"), 6 * q->transitions_max);
    ASSERT_LE(6 * q->transitions_max, 65535);
    sk_buf_free(&b);
    ASSERT_EQ(count(q->order_exists, strlen(q->order_exists), "?"), 2);
    ASSERT_EQ(count(q->insert_event, strlen(q->insert_event), "?"), 9);
    ASSERT_TRUE(strstr(q->insert_event, "ON DUPLICATE KEY UPDATE seq = seq") != NULL);
}

SK_TEST(other_statements)
{
    const sk_db_sql_t *q = &sk_db_sql_mysql;
    ASSERT_STR_EQ(q->migrations, "mysql/");
    ASSERT_STR_EQ(q->insert_sale,
                  "INSERT INTO sales (id, name, stock, starts_at, ends_at, per_user_limit, created_at) VALUES "
                  "(?, ?, ?, " TS ", " TS ", ?, " TS ") ON DUPLICATE KEY UPDATE id = id");
    ASSERT_EQ(count(q->migration_applied, strlen(q->migration_applied), "?"), 1);
    ASSERT_EQ(count(q->migration_record, strlen(q->migration_record), "?"), 1);
    ASSERT_TRUE(strstr(q->migrations_table, "CREATE TABLE IF NOT EXISTS seckill_schema_migrations") != NULL);
    ASSERT_TRUE(strstr(q->migrations_table, "utf8mb4_bin") != NULL);
    ASSERT_STR_EQ(
        q->count_orders,
        "SELECT COUNT(*), CAST(COALESCE(SUM(IF(state = 'confirmed', quantity, 0)), 0) AS SIGNED), "
        "CAST(COALESCE(SUM(IF(state = 'reserved', quantity, 0)), 0) AS SIGNED) FROM orders WHERE sale_id = ?");
    ASSERT_TRUE(q->copy_orders == NULL); /* COPY is PostgreSQL's */
}

SK_TEST_MAIN(SK_RUN(insert_orders); SK_RUN(update_orders); SK_RUN(other_statements);)
