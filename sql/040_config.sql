-- Policies and metadata. Operators edit them here; Kafka Connect CDC carries every change to the
-- compacted topics the streaming jobs read, so a change takes effect without a restart.

-- shelf refill policies (writer: reference loader, operators)
CREATE TABLE IF NOT EXISTS config.shelf_policies (
    store_id text NOT NULL,
    policy_id uuid NOT NULL,
    shelf_id text,
    item_category text,
    item_subcategory text,
    threshold_pct numeric(5,2) NOT NULL,
    min_qty integer NOT NULL,
    target_pct numeric(5,2) NOT NULL,
    active boolean NOT NULL,
    notes text,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    PRIMARY KEY (store_id, policy_id),
    CHECK (threshold_pct BETWEEN 0 AND 100),
    CHECK (target_pct BETWEEN 0 AND 100),
    CHECK (min_qty >= 0)
);
CREATE INDEX IF NOT EXISTS shelf_policies_active_scope_idx ON config.shelf_policies (store_id, shelf_id, item_category, item_subcategory) WHERE active;

-- warehouse reorder policies (writer: reference loader, operators)
CREATE TABLE IF NOT EXISTS config.wh_policies (
    store_id text NOT NULL,
    policy_id uuid NOT NULL,
    shelf_id text,
    item_category text,
    item_subcategory text,
    reorder_point_qty integer NOT NULL,
    active boolean NOT NULL,
    notes text,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    PRIMARY KEY (store_id, policy_id),
    CHECK (reorder_point_qty >= 0)
);
CREATE INDEX IF NOT EXISTS wh_policies_active_scope_idx ON config.wh_policies (store_id, shelf_id, item_category, item_subcategory) WHERE active;

-- static shelf facts (writer: reference loader)
CREATE TABLE IF NOT EXISTS config.shelf_profiles (
    store_id text NOT NULL,
    shelf_id text NOT NULL,
    item_category text NOT NULL,
    item_subcategory text NOT NULL,
    item_weight double precision NOT NULL,
    max_stock integer NOT NULL,
    wh_max_stock integer NOT NULL,
    standard_batch_size integer NOT NULL,
    perishable boolean NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    PRIMARY KEY (store_id, shelf_id)
);

-- known lots and their dates (writer: reference loader)
CREATE TABLE IF NOT EXISTS config.batch_catalog (
    store_id text NOT NULL,
    batch_code text NOT NULL,
    shelf_id text NOT NULL,
    received_date date NOT NULL,
    expiry_date date NOT NULL,
    standard_batch_size integer NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    PRIMARY KEY (store_id, batch_code),
    CHECK (standard_batch_size > 0)
);
CREATE INDEX IF NOT EXISTS batch_catalog_store_id_shelf_id_idx ON config.batch_catalog (store_id, shelf_id);
