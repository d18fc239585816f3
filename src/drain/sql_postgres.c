/* PostgreSQL's SQL for the drain (sql.h): $n placeholders, ON CONFLICT DO NOTHING, a
 * batch as one array per column, unnested; times as the epoch plus an interval. */
#include "drain/sql.h"

#define TS(p) "'epoch'::timestamptz + " p "::bigint * interval '1 millisecond'"

static void insert_orders(sk_buf_t *b, size_t n)
{
    /* One statement for any n: the arrays carry the rows. */
    (void)n;
    sk_buf_puts(b, "INSERT INTO orders (order_id, sale_id, seq, user_id, request_id, created_at) "
                   "SELECT o, s, q, u, r, 'epoch'::timestamptz + t * interval '1 millisecond' "
                   "FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::bigint[]) "
                   "AS x(o, s, q, u, r, t) ON CONFLICT (order_id) DO NOTHING");
}

const sk_db_sql_t sk_db_sql_postgres = {
    .migrations = "postgres/",
    .migrations_table = "CREATE TABLE IF NOT EXISTS seckill_schema_migrations (name text PRIMARY KEY, "
                        "applied_at timestamptz NOT NULL DEFAULT now())",
    .migration_applied = "SELECT 1 FROM seckill_schema_migrations WHERE name = $1",
    .migration_record = "INSERT INTO seckill_schema_migrations (name) VALUES ($1)",
    .insert_sale = "INSERT INTO sales (id, name, stock, starts_at, ends_at, per_user_limit, created_at) VALUES "
                   "($1, $2, $3, " TS("$4") ", " TS("$5") ", $6, " TS("$7") ") ON CONFLICT (id) DO NOTHING",
    .orders_max = 0,
    .insert_orders = insert_orders,
};
