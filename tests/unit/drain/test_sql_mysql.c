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
#define UPSERT                                                                                                         \
    " ON DUPLICATE KEY UPDATE state = IF((CASE VALUES(state) WHEN 'reserved' THEN 1 WHEN 'confirmed' THEN 2 ELSE 3 "   \
    "END) > (CASE state WHEN 'reserved' THEN 1 WHEN 'confirmed' THEN 2 ELSE 3 END), VALUES(state), state)"

SK_TEST(insert_orders)
{
    const sk_db_sql_t *q = &sk_db_sql_mysql;
    sk_buf_t b = {0};
    q->insert_orders(&b, 1);
    ASSERT_MEM_STR(b.data, b.len,
                   "INSERT INTO orders (order_id, sale_id, seq, user_id, request_id, created_at) VALUES "
                   "(?,?,?,?,?," TS ")" UPSERT);
    sk_buf_free(&b);

    q->insert_orders(&b, 3);
    ASSERT_MEM_STR(b.data, b.len,
                   "INSERT INTO orders (order_id, sale_id, seq, user_id, request_id, created_at) VALUES "
                   "(?,?,?,?,?," TS "),(?,?,?,?,?," TS "),(?,?,?,?,?," TS ")" UPSERT);
    sk_buf_free(&b);

    /* The largest statement stays within MySQL's 65535 placeholders: six an order. */
    ASSERT_TRUE(q->orders_max > 0);
    q->insert_orders(&b, q->orders_max);
    ASSERT_EQ(count(b.data, b.len, "?"), 6 * q->orders_max);
    ASSERT_LE(6 * q->orders_max, 65535);
    ASSERT_EQ(count(b.data, b.len, "ON DUPLICATE KEY UPDATE"), 1);
    sk_buf_free(&b);
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
}

SK_TEST_MAIN(SK_RUN(insert_orders); SK_RUN(other_statements);)
