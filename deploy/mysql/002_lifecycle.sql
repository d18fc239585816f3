-- seckill on MySQL / MariaDB: the order lifecycle (reservations paid within a window,
-- cancelled, expired or refunded) and the sales' trail of operator actions, as in
-- deploy/postgres/002_lifecycle.sql. Existing orders were final when they were made:
-- they keep quantity 1 and state 'confirmed'. (How a file is applied: 001_init.sql.)

-- An order moves reserved -> confirmed | cancelled | expired, confirmed -> refunded,
-- never backwards. Times are those of the sale's single writer.
ALTER TABLE orders
    ADD COLUMN quantity INT NOT NULL DEFAULT 1 CHECK (quantity > 0),
    ADD COLUMN state VARCHAR(16) NOT NULL DEFAULT 'confirmed'
        CHECK (state IN ('reserved', 'confirmed', 'cancelled', 'expired', 'refunded')),
    ADD COLUMN pay_by DATETIME(3) NULL,           -- a reservation's deadline; NULL: final at once
    ADD COLUMN payment_id VARCHAR(255) NULL,      -- the payment that confirmed it
    ADD COLUMN paid_at DATETIME(3) NULL,
    ADD COLUMN closed_at DATETIME(3) NULL;        -- when it was cancelled, expired or refunded

-- A sale's settings at creation; later changes are in sale_events.
ALTER TABLE sales
    ADD COLUMN payment_window_ms BIGINT NOT NULL DEFAULT 0 CHECK (payment_window_ms >= 0),
    ADD COLUMN max_quantity INT NOT NULL DEFAULT 1 CHECK (max_quantity > 0);

-- The trail of a sale (pause, resume, close, stock added or removed, settings changed):
-- one row per accepted control action, numbered per sale in decision order, with what
-- was asked and the counts and settings before and after.
CREATE TABLE IF NOT EXISTS sale_events (
    sale_id       VARCHAR(128) NOT NULL,
    seq           BIGINT NOT NULL CHECK (seq > 0),
    kind          VARCHAR(32) NOT NULL,
    actor         VARCHAR(128) NOT NULL,
    request_id    VARCHAR(128) NOT NULL,
    decided_at    DATETIME(3) NOT NULL,
    params        JSON NOT NULL,
    before_values JSON NOT NULL,
    after_values  JSON NOT NULL,
    drained_at    DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (sale_id, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
