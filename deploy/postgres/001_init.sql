-- seckill: the cluster's system of record, written by `seckill drain` from the Redis
-- order streams. `seckill drain` applies the files of this folder in name order at
-- start (each once, recorded in seckill_schema_migrations); they can also be applied
-- by hand with psql -1 -f.

CREATE TABLE IF NOT EXISTS sales (
    id             text PRIMARY KEY,
    name           text NOT NULL,
    stock          bigint NOT NULL CHECK (stock > 0),
    starts_at      timestamptz NOT NULL,
    ends_at        timestamptz NOT NULL,
    per_user_limit integer NOT NULL CHECK (per_user_limit > 0),
    created_at     timestamptz NOT NULL
);

-- One row per confirmed order. order_id is "<sale>-<seq, 10 digits>", the id buyers
-- were given; the drain inserts with ON CONFLICT (order_id) DO NOTHING, so a batch
-- written twice (a crash between COMMIT and XACK) leaves one row per order.
CREATE TABLE IF NOT EXISTS orders (
    order_id   text PRIMARY KEY,
    sale_id    text NOT NULL,
    seq        bigint NOT NULL CHECK (seq > 0),
    user_id    text NOT NULL,
    request_id text NOT NULL,
    created_at timestamptz NOT NULL,
    drained_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (sale_id, seq)
);

CREATE INDEX IF NOT EXISTS orders_sale_user ON orders (sale_id, user_id);
