/* PostgreSQL's SQL for the drain (sql.h): $n placeholders, ON CONFLICT DO NOTHING, a
 * batch as one array per column, unnested; times as the epoch plus an interval. */
#include "drain/sql.h"

#define TS(p) "'epoch'::timestamptz + " p "::bigint * interval '1 millisecond'"
/* A time that may be unset (0): NULL then. */
#define TS0(p) "'epoch'::timestamptz + nullif(" p ", 0) * interval '1 millisecond'"

/* The state an order takes from a transition: only forward (sk_db_state_moves). */
#define NEXT_STATE                                                                                                     \
    "CASE WHEN o.state = 'reserved' OR (o.state = 'confirmed' AND x.st = 'refunded') THEN x.st ELSE o.state END"

static void insert_orders(sk_buf_t *b, size_t n)
{
    /* One statement for any n: the arrays carry the rows. */
    (void)n;
    sk_buf_puts(b,
                "INSERT INTO orders (order_id, sale_id, seq, user_id, request_id, created_at, quantity, state, pay_by) "
                "SELECT o, s, q, u, r, 'epoch'::timestamptz + t * interval '1 millisecond', n, st, " TS0(
                    "p") " "
                         "FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], "
                         "$7::integer[], $8::text[], $9::bigint[]) AS x(o, s, q, u, r, t, n, st, p) "
                         "ON CONFLICT (order_id) DO NOTHING");
}

static void update_orders(sk_buf_t *b, size_t n)
{
    /* One statement for any n. A data-modifying WITH runs to completion whatever the
     * outer query reads; the outer query sees the orders as the statement found them
     * (its snapshot), which is what "missing" asks. Rows that would not change are not
     * written again (a batch delivered twice leaves no dead rows behind). */
    (void)n;
    sk_buf_puts(b,
                "WITH x AS (SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::text[], "
                "$6::bigint[]) AS x(s, q, st, pa, pid, ca)), "
                "u AS (UPDATE orders o SET state = " NEXT_STATE ", "
                "paid_at = coalesce(o.paid_at, " TS0(
                    "x.pa") "), "
                            "payment_id = coalesce(o.payment_id, nullif(x.pid, '')), "
                            "closed_at = coalesce(o.closed_at, " TS0(
                                "x.ca") ") "
                                        "FROM x WHERE o.sale_id = x.s AND o.seq = x.q AND (" NEXT_STATE " <> o.state "
                                        "OR (o.paid_at IS NULL AND x.pa > 0) OR (o.payment_id IS NULL AND x.pid <> '') "
                                        "OR (o.closed_at IS NULL AND x.ca > 0))) "
                                        "SELECT x.s, x.q FROM x WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE "
                                        "o.sale_id = x.s AND "
                                        "o.seq = x.q)");
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
    .transitions_max = 0,
    .update_orders = update_orders,
    .order_exists = NULL,
    .insert_event = "INSERT INTO sale_events (sale_id, seq, kind, actor, request_id, decided_at, params, "
                    "before_values, after_values) VALUES ($1, $2, $3, $4, $5, " TS(
                        "$6") ", $7::jsonb, $8::jsonb, "
                              "$9::jsonb) ON CONFLICT (sale_id, seq) DO NOTHING",
    /* The units need the rows themselves (not an index-only scan of UNIQUE (sale_id,
     * seq)): the drain counts a sale at most 1/20 of the time a count takes. */
    .count_orders = "SELECT count(*), coalesce(sum(quantity) FILTER (WHERE state = 'confirmed'), 0), "
                    "coalesce(sum(quantity) FILTER (WHERE state = 'reserved'), 0) FROM orders WHERE sale_id = $1",
    .copy_orders = "COPY orders (order_id, sale_id, seq, user_id, request_id, created_at, quantity, state, pay_by) "
                   "FROM STDIN",
};
