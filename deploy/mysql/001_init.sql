-- seckill on MySQL / MariaDB: the cluster's system of record, written by
-- `seckill drain --db mysql://...` from the Redis order streams. The same tables as
-- deploy/postgres/, statement for statement. `seckill drain` applies the files of this
-- folder in name order at start (each once, recorded in seckill_schema_migrations,
-- under GET_LOCK so that drains starting together apply each once).
--
-- MySQL commits every DDL statement on its own: a migration is not one transaction.
-- The drain runs a file statement by statement; a statement that fails because what it
-- creates is already there (a table, a column, an index: a run that stopped before the
-- migration was recorded) is taken as applied. Keep to one ALTER TABLE per table in a
-- file, so each is applied whole or not at all.
--
-- Times are DATETIME(3) in UTC (the drain's sessions run with time_zone '+00:00').
-- Ids compare byte for byte (utf8mb4_bin), as PostgreSQL's text does: with the
-- default case-insensitive collation, order 'S1-...' and 's1-...' would be one key.

CREATE TABLE IF NOT EXISTS sales (
    id             VARCHAR(128) NOT NULL PRIMARY KEY,
    name           VARCHAR(255) NOT NULL,
    stock          BIGINT NOT NULL CHECK (stock > 0),
    starts_at      DATETIME(3) NOT NULL,
    ends_at        DATETIME(3) NOT NULL,
    per_user_limit INT NOT NULL CHECK (per_user_limit > 0),
    created_at     DATETIME(3) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- One row per confirmed order. order_id is "<sale>-<seq, 10 digits>", the id buyers
-- were given; the drain inserts with ON DUPLICATE KEY UPDATE (an order's state only
-- moves forward), so a batch written twice (a crash between COMMIT and XACK) leaves
-- one row per order.
CREATE TABLE IF NOT EXISTS orders (
    order_id   VARCHAR(160) NOT NULL PRIMARY KEY,
    sale_id    VARCHAR(128) NOT NULL,
    seq        BIGINT NOT NULL CHECK (seq > 0),
    user_id    VARCHAR(128) NOT NULL,
    request_id VARCHAR(128) NOT NULL,
    created_at DATETIME(3) NOT NULL,
    drained_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    UNIQUE KEY orders_sale_seq (sale_id, seq),
    KEY orders_sale_user (sale_id, user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
