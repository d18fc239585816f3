/* src/drain/sql_postgres.c: the statements the drain sends to PostgreSQL. */
#include "drain/sql.h"
#include "test.h"

SK_TEST(statements)
{
    const sk_db_sql_t *q = &sk_db_sql_postgres;
    ASSERT_STR_EQ(q->migrations, "postgres/");
    ASSERT_EQ(q->orders_max, 0);
    /* One statement for any number of orders: six arrays, ON CONFLICT DO NOTHING. */
    sk_buf_t b1 = {0}, b2 = {0};
    q->insert_orders(&b1, 1);
    q->insert_orders(&b2, 5000);
    ASSERT_EQ(b1.len, b2.len);
    ASSERT_TRUE(memcmp(b1.data, b2.data, b1.len) == 0);
    sk_buf_putc(&b1, '\0');
    ASSERT_TRUE(strstr(b1.data, "unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::bigint[])"));
    ASSERT_TRUE(strstr(b1.data, "ON CONFLICT (order_id) DO NOTHING") != NULL);
    ASSERT_TRUE(strstr(b1.data, "$7") == NULL);
    sk_buf_free(&b1);
    sk_buf_free(&b2);
    ASSERT_TRUE(strstr(q->insert_sale, "$7") != NULL && strstr(q->insert_sale, "ON CONFLICT (id) DO NOTHING"));
    ASSERT_TRUE(strstr(q->migration_applied, "$1") != NULL);
    ASSERT_TRUE(strstr(q->migration_record, "$1") != NULL);
}

SK_TEST_MAIN(SK_RUN(statements);)
