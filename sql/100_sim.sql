-- The simulator's ground-truth ledger. Only the simulator writes here; the platform is checked
-- against it (`smart-shelf verify`). The dashboard role may read it.
CREATE SCHEMA IF NOT EXISTS sim;

-- ground truth: units per shelf lot (writer: simulator)
CREATE TABLE IF NOT EXISTS sim.ledger_shelf_lots (
    store_id text NOT NULL,
    shelf_id text NOT NULL,
    batch_code text NOT NULL,
    received_date date NOT NULL,
    expiry_date date NOT NULL,
    quantity integer NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    PRIMARY KEY (store_id, shelf_id, batch_code),
    CHECK (quantity >= 0)
);

-- ground truth: units per warehouse lot (writer: simulator)
CREATE TABLE IF NOT EXISTS sim.ledger_wh_lots (
    store_id text NOT NULL,
    shelf_id text NOT NULL,
    batch_code text NOT NULL,
    received_date date NOT NULL,
    expiry_date date NOT NULL,
    quantity integer NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    PRIMARY KEY (store_id, shelf_id, batch_code),
    CHECK (quantity >= 0)
);

-- ground truth: sold and lost units per shelf and day (writer: simulator)
CREATE TABLE IF NOT EXISTS sim.ledger_daily_sales (
    store_id text NOT NULL,
    shelf_id text NOT NULL,
    sale_date date NOT NULL,
    sold_units integer NOT NULL,
    lost_units integer NOT NULL,
    lost_attempts integer NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    PRIMARY KEY (store_id, shelf_id, sale_date),
    CHECK (sold_units >= 0 AND lost_units >= 0 AND lost_attempts >= 0)
);

-- malformed events injected on purpose (writer: simulator)
CREATE TABLE IF NOT EXISTS sim.ledger_bad_events (
    store_id text NOT NULL,
    bad_event_id text NOT NULL,
    stream text NOT NULL,
    defect text NOT NULL,
    event_id text,
    payload text NOT NULL,
    injected_at timestamp with time zone NOT NULL,
    PRIMARY KEY (store_id, bad_event_id)
);

-- how far the simulator got per store (writer: simulator)
CREATE TABLE IF NOT EXISTS sim.ledger_position (
    store_id text NOT NULL,
    seed bigint NOT NULL,
    sim_time timestamp with time zone NOT NULL,
    events_emitted bigint NOT NULL,
    customers bigint NOT NULL,
    finished boolean NOT NULL,
    updated_wall timestamp with time zone NOT NULL,
    PRIMARY KEY (store_id)
);

GRANT USAGE ON SCHEMA sim TO smart_shelf_writer, smart_shelf_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA sim TO smart_shelf_writer;
GRANT SELECT ON ALL TABLES IN SCHEMA sim TO smart_shelf_reader;
