-- seckill: the order lifecycle (reservations paid within a window, cancelled, expired
-- or refunded) and the sales' trail of operator actions. Existing orders were final
-- when they were made: they keep quantity 1 and state 'confirmed'. The same columns
-- are in deploy/mysql/002_lifecycle.sql, so both databases hold the same schema.

-- An order moves reserved -> confirmed | cancelled | expired, confirmed -> refunded,
-- never backwards. Times are those of the sale's single writer.
ALTER TABLE orders
    ADD COLUMN IF NOT EXISTS quantity integer NOT NULL DEFAULT 1 CONSTRAINT orders_quantity_check CHECK (quantity > 0),
    ADD COLUMN IF NOT EXISTS state text NOT NULL DEFAULT 'confirmed' CONSTRAINT orders_state_check
        CHECK (state IN ('reserved', 'confirmed', 'cancelled', 'expired', 'refunded')),
    ADD COLUMN IF NOT EXISTS pay_by timestamptz,       -- a reservation's deadline; NULL: final at once
    ADD COLUMN IF NOT EXISTS payment_id text,          -- the payment that confirmed it
    ADD COLUMN IF NOT EXISTS paid_at timestamptz,
    ADD COLUMN IF NOT EXISTS closed_at timestamptz;    -- when it was cancelled, expired or refunded

-- A sale's settings at creation; later changes are in sale_events.
ALTER TABLE sales
    ADD COLUMN IF NOT EXISTS payment_window_ms bigint NOT NULL DEFAULT 0
        CONSTRAINT sales_payment_window_check CHECK (payment_window_ms >= 0),
    ADD COLUMN IF NOT EXISTS max_quantity integer NOT NULL DEFAULT 1
        CONSTRAINT sales_max_quantity_check CHECK (max_quantity > 0);

-- The trail of a sale (pause, resume, close, stock added or removed, settings changed):
-- one row per accepted control action, numbered per sale in decision order, with what
-- was asked and the counts and settings before and after.
CREATE TABLE IF NOT EXISTS sale_events (
    sale_id       text NOT NULL,
    seq           bigint NOT NULL CHECK (seq > 0),
    kind          text NOT NULL,
    actor         text NOT NULL,
    request_id    text NOT NULL,
    decided_at    timestamptz NOT NULL,
    params        jsonb NOT NULL,
    before_values jsonb NOT NULL,
    after_values  jsonb NOT NULL,
    drained_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sale_id, seq)
);
