-- Waste: expired units thrown away per product and simulated day, on the shelf (the staff's
-- removals on the platform's work orders) and in the warehouse (the platform's `wh_removal`s).
-- With sold and lost units (ledger_daily_sales) it closes each shelf's balance:
-- initial + received - sold - removed = final.

-- ground truth: expired units removed per shelf and day (writer: simulator)
CREATE TABLE IF NOT EXISTS sim.ledger_daily_waste (
    store_id text NOT NULL,
    shelf_id text NOT NULL,
    waste_date date NOT NULL,
    shelf_units integer NOT NULL,
    warehouse_units integer NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    PRIMARY KEY (store_id, shelf_id, waste_date),
    CHECK (shelf_units >= 0 AND warehouse_units >= 0)
);

-- 100_sim.sql granted the sim tables that existed then; sim has no default privileges.
GRANT SELECT, INSERT, UPDATE, DELETE ON sim.ledger_daily_waste TO smart_shelf_writer;
GRANT SELECT ON sim.ledger_daily_waste TO smart_shelf_reader;
