-- Mirrors of the compacted state topics (one writer: the Kafka Connect upsert sink).

-- mirror of the shelf_state topic (writer: Kafka Connect sink)
CREATE TABLE IF NOT EXISTS state.shelf_state (
    store_id text NOT NULL,
    shelf_id text NOT NULL,
    current_stock integer NOT NULL,
    max_stock integer NOT NULL,
    unit_weight double precision NOT NULL,
    shelf_weight double precision NOT NULL,
    version bigint NOT NULL,
    last_update_ts timestamp with time zone NOT NULL,
    PRIMARY KEY (store_id, shelf_id),
    CHECK (current_stock BETWEEN 0 AND max_stock)
);

-- mirror of the wh_state topic (writer: Kafka Connect sink)
CREATE TABLE IF NOT EXISTS state.wh_state (
    store_id text NOT NULL,
    shelf_id text NOT NULL,
    wh_current_stock integer NOT NULL,
    wh_max_stock integer NOT NULL,
    version bigint NOT NULL,
    last_update_ts timestamp with time zone NOT NULL,
    PRIMARY KEY (store_id, shelf_id),
    CHECK (wh_current_stock BETWEEN 0 AND wh_max_stock)
);

-- mirror of the shelf_batch_state topic (writer: Kafka Connect sink)
CREATE TABLE IF NOT EXISTS state.shelf_batch_state (
    store_id text NOT NULL,
    shelf_id text NOT NULL,
    batch_code text NOT NULL,
    received_date date NOT NULL,
    expiry_date date NOT NULL,
    batch_quantity_store integer NOT NULL,
    version bigint NOT NULL,
    last_update_ts timestamp with time zone NOT NULL,
    PRIMARY KEY (store_id, shelf_id, batch_code),
    CHECK (batch_quantity_store >= 0)
);
CREATE INDEX IF NOT EXISTS shelf_batch_state_store_id_expiry_date_idx ON state.shelf_batch_state (store_id, expiry_date);

-- mirror of the wh_batch_state topic (writer: Kafka Connect sink)
CREATE TABLE IF NOT EXISTS state.wh_batch_state (
    store_id text NOT NULL,
    shelf_id text NOT NULL,
    batch_code text NOT NULL,
    received_date date NOT NULL,
    expiry_date date NOT NULL,
    batch_quantity_warehouse integer NOT NULL,
    version bigint NOT NULL,
    last_update_ts timestamp with time zone NOT NULL,
    PRIMARY KEY (store_id, shelf_id, batch_code),
    CHECK (batch_quantity_warehouse >= 0)
);
CREATE INDEX IF NOT EXISTS wh_batch_state_store_id_expiry_date_idx ON state.wh_batch_state (store_id, expiry_date);
