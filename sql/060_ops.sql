-- Operational facts: plans, warehouse movements, alerts, receipts (Kafka Connect sinks).

-- mirror of the shelf_restock_plan topic (writer: Kafka Connect sink)
CREATE TABLE IF NOT EXISTS ops.shelf_restock_plan (
    store_id text NOT NULL,
    plan_id uuid NOT NULL,
    shelf_id text NOT NULL,
    suggested_qty integer NOT NULL,
    status ops.plan_status NOT NULL,
    alert_id uuid,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    PRIMARY KEY (store_id, plan_id),
    CHECK (suggested_qty >= 0)
);
CREATE INDEX IF NOT EXISTS shelf_restock_plan_store_id_status_created_at_idx ON ops.shelf_restock_plan (store_id, status, created_at);
CREATE INDEX IF NOT EXISTS shelf_restock_plan_store_id_shelf_id_idx ON ops.shelf_restock_plan (store_id, shelf_id);

-- every warehouse movement (writer: Kafka Connect sink)
CREATE TABLE IF NOT EXISTS ops.wh_events (
    event_id uuid NOT NULL,
    event_type ops.wh_event_type NOT NULL,
    store_id text NOT NULL,
    shelf_id text NOT NULL,
    batch_code text NOT NULL,
    quantity integer NOT NULL,
    plan_id uuid,
    supplier_order_id uuid,
    received_date date NOT NULL,
    expiry_date date NOT NULL,
    reason text NOT NULL,
    timestamp timestamp with time zone NOT NULL,
    PRIMARY KEY (store_id, event_id),
    CHECK (quantity >= 0)
);
CREATE INDEX IF NOT EXISTS wh_events_store_id_timestamp_idx ON ops.wh_events (store_id, timestamp);
CREATE INDEX IF NOT EXISTS wh_events_store_id_plan_id_idx ON ops.wh_events (store_id, plan_id);
CREATE INDEX IF NOT EXISTS wh_events_store_id_shelf_id_timestamp_idx ON ops.wh_events (store_id, shelf_id, timestamp);

-- mirror of the wh_supplier_plan topic (writer: Kafka Connect sink)
CREATE TABLE IF NOT EXISTS ops.wh_supplier_plan (
    store_id text NOT NULL,
    supplier_plan_id uuid NOT NULL,
    shelf_id text NOT NULL,
    suggested_qty integer NOT NULL,
    standard_batch_size integer NOT NULL,
    source ops.plan_source NOT NULL,
    status ops.plan_status NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    PRIMARY KEY (store_id, supplier_plan_id),
    CHECK (suggested_qty >= 0),
    CHECK (standard_batch_size > 0)
);
CREATE INDEX IF NOT EXISTS wh_supplier_plan_store_id_shelf_id_idx ON ops.wh_supplier_plan (store_id, shelf_id);
CREATE INDEX IF NOT EXISTS wh_supplier_plan_store_id_status_idx ON ops.wh_supplier_plan (store_id, status);

-- current status of every alert (writer: Kafka Connect sink)
CREATE TABLE IF NOT EXISTS ops.alerts (
    alert_id uuid NOT NULL,
    store_id text NOT NULL,
    alert_type ops.alert_type NOT NULL,
    shelf_id text NOT NULL,
    location ops.stock_location NOT NULL,
    status ops.alert_status NOT NULL,
    current_stock integer,
    max_stock integer,
    threshold_pct numeric(5,2),
    target_pct numeric(5,2),
    min_qty integer,
    stock_pct numeric(6,2),
    suggested_qty integer,
    batch_code text,
    expiry_date date,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    PRIMARY KEY (store_id, alert_id)
);
CREATE INDEX IF NOT EXISTS alerts_store_id_created_at_idx ON ops.alerts (store_id, created_at);
CREATE INDEX IF NOT EXISTS alerts_store_id_status_created_at_idx ON ops.alerts (store_id, status, created_at);
CREATE INDEX IF NOT EXISTS alerts_store_id_shelf_id_alert_type_idx ON ops.alerts (store_id, shelf_id, alert_type);

-- receipt headers (writer: Kafka Connect sink)
CREATE TABLE IF NOT EXISTS ops.pos_transactions (
    event_id uuid NOT NULL,
    store_id text NOT NULL,
    transaction_id uuid NOT NULL,
    customer_id uuid NOT NULL,
    timestamp timestamp with time zone NOT NULL,
    total_items integer NOT NULL,
    total_amount numeric(12,2) NOT NULL,
    PRIMARY KEY (store_id, transaction_id)
);
CREATE INDEX IF NOT EXISTS pos_transactions_store_id_timestamp_idx ON ops.pos_transactions (store_id, timestamp);

-- receipt lines (writer: Kafka Connect sink)
CREATE TABLE IF NOT EXISTS ops.pos_transaction_items (
    store_id text NOT NULL,
    transaction_id uuid NOT NULL,
    line_no integer NOT NULL,
    shelf_id text NOT NULL,
    batch_code text,
    expiry_date date,
    quantity integer NOT NULL,
    unit_price numeric(10,2) NOT NULL,
    discount numeric(5,4) NOT NULL,
    total_price numeric(12,2) NOT NULL,
    PRIMARY KEY (store_id, transaction_id, line_no),
    CHECK (quantity > 0),
    CHECK (discount >= 0 AND discount <= 0.95),
    FOREIGN KEY (store_id, transaction_id) REFERENCES ops.pos_transactions (store_id, transaction_id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX IF NOT EXISTS pos_transaction_items_store_id_shelf_id_idx ON ops.pos_transaction_items (store_id, shelf_id);
