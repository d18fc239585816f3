/* src/drain/sql_postgres.c: the statements the drain sends to PostgreSQL. */
#include "drain/sql.h"
#include "test.h"

SK_TEST(statements)
{
    const sk_db_sql_t *q = &sk_db_sql_postgres;
    ASSERT_STR_EQ(q->migrations, "postgres/");
    ASSERT_EQ(q->orders_max, 0);
    /* One statement for any number of orders: nine arrays, ON CONFLICT DO NOTHING. */
    sk_buf_t b1 = {0}, b2 = {0};
    q->insert_orders(&b1, 1);
    q->insert_orders(&b2, 5000);
    ASSERT_EQ(b1.len, b2.len);
    ASSERT_TRUE(memcmp(b1.data, b2.data, b1.len) == 0);
    sk_buf_putc(&b1, '\0');
    ASSERT_TRUE(strstr(b1.data, "unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], "
                                "$7::integer[], $8::text[], $9::bigint[])"));
    ASSERT_TRUE(strstr(b1.data, "(order_id, sale_id, seq, user_id, request_id, created_at, quantity, state, pay_by)"));
    ASSERT_TRUE(strstr(b1.data, "ON CONFLICT (order_id) DO NOTHING") != NULL);
    ASSERT_TRUE(strstr(b1.data, "$10") == NULL);
    sk_buf_free(&b1);
    sk_buf_free(&b2);
    /* Transitions: one statement, six arrays; only forward; fields set where empty; its
     * rows are the orders it did not find. */
    ASSERT_EQ(q->transitions_max, 0);
    q->update_orders(&b1, 3);
    sk_buf_putc(&b1, '\0');
    ASSERT_TRUE(
        strstr(b1.data, "unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::text[], $6::bigint[])"));
    ASSERT_TRUE(strstr(b1.data, "CASE WHEN o.state = 'reserved' OR (o.state = 'confirmed' AND x.st = 'refunded') "
                                "THEN x.st ELSE o.state END"));
    ASSERT_TRUE(strstr(b1.data, "paid_at = coalesce(o.paid_at, "));
    ASSERT_TRUE(strstr(b1.data, "closed_at = coalesce(o.closed_at, "));
    ASSERT_TRUE(strstr(b1.data, "SELECT x.s, x.q FROM x WHERE NOT EXISTS"));
    ASSERT_TRUE(strstr(b1.data, "$7") == NULL);
    sk_buf_free(&b1);
    ASSERT_TRUE(q->order_exists == NULL);
    ASSERT_TRUE(strstr(q->insert_event, "INSERT INTO sale_events") && strstr(q->insert_event, "$9::jsonb") &&
                strstr(q->insert_event, "ON CONFLICT (sale_id, seq) DO NOTHING"));
    ASSERT_TRUE(strstr(q->insert_sale, "$7") != NULL && strstr(q->insert_sale, "ON CONFLICT (id) DO NOTHING"));
    ASSERT_TRUE(strstr(q->migration_applied, "$1") != NULL);
    ASSERT_TRUE(strstr(q->migration_record, "$1") != NULL);
    /* Orders, confirmed units, reserved units. */
    ASSERT_STR_EQ(q->count_orders,
                  "SELECT count(*), coalesce(sum(quantity) FILTER (WHERE state = 'confirmed'), 0), "
                  "coalesce(sum(quantity) FILTER (WHERE state = 'reserved'), 0) FROM orders WHERE sale_id = $1");
    ASSERT_STR_EQ(q->copy_orders, "COPY orders (order_id, sale_id, seq, user_id, request_id, created_at, quantity, "
                                  "state, pay_by) FROM STDIN");
}

SK_TEST_MAIN(SK_RUN(statements);)
