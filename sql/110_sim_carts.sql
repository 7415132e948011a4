-- Units in customers' carts: picked from a shelf lot, not yet paid. The platform's shelf lots
-- (shelf_batch_state) still count them until the receipt, so `smart-shelf verify` adds them to
-- the shelf ledger. The simulator rewrites a store's rows whole at every ledger save.

-- ground truth: units in carts per shelf lot (writer: simulator)
CREATE TABLE IF NOT EXISTS sim.ledger_cart_lots (
    store_id text NOT NULL,
    shelf_id text NOT NULL,
    batch_code text NOT NULL,
    quantity integer NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    PRIMARY KEY (store_id, shelf_id, batch_code),
    CHECK (quantity >= 0)
);

-- 100_sim.sql granted the sim tables that existed then; sim has no default privileges.
GRANT SELECT, INSERT, UPDATE, DELETE ON sim.ledger_cart_lots TO smart_shelf_writer;
GRANT SELECT ON sim.ledger_cart_lots TO smart_shelf_reader;
