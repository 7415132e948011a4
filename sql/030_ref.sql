-- Reference snapshots: the generated catalogue and its stock at the simulation start.
-- Written once by the reference loader (smart-shelf up / Dagster), never by the streaming jobs.

-- stores of the chain (writer: reference loader)
CREATE TABLE IF NOT EXISTS ref.stores (
    store_id text NOT NULL,
    store_name text NOT NULL,
    city text NOT NULL,
    timezone text NOT NULL,
    sim_start timestamp with time zone NOT NULL,
    PRIMARY KEY (store_id)
);

-- store shelves at the simulation start (writer: reference loader)
CREATE TABLE IF NOT EXISTS ref.store_inventory_snapshot (
    store_id text NOT NULL,
    shelf_id text NOT NULL,
    aisle integer NOT NULL,
    item_category text NOT NULL,
    item_subcategory text NOT NULL,
    perishable boolean NOT NULL,
    item_weight double precision NOT NULL,
    shelf_weight double precision NOT NULL,
    item_visibility numeric(10,6) NOT NULL,
    maximum_stock integer NOT NULL,
    current_stock integer NOT NULL,
    item_price numeric(10,2) NOT NULL,
    standard_batch_size integer NOT NULL,
    snapshot_ts timestamp with time zone NOT NULL,
    PRIMARY KEY (store_id, shelf_id),
    CHECK (current_stock BETWEEN 0 AND maximum_stock),
    CHECK (standard_batch_size > 0)
);

-- warehouse stock at the simulation start (writer: reference loader)
CREATE TABLE IF NOT EXISTS ref.warehouse_inventory_snapshot (
    store_id text NOT NULL,
    shelf_id text NOT NULL,
    aisle integer NOT NULL,
    item_category text NOT NULL,
    item_subcategory text NOT NULL,
    perishable boolean NOT NULL,
    item_weight double precision NOT NULL,
    maximum_stock integer NOT NULL,
    current_stock integer NOT NULL,
    item_price numeric(10,2) NOT NULL,
    standard_batch_size integer NOT NULL,
    snapshot_ts timestamp with time zone NOT NULL,
    PRIMARY KEY (store_id, shelf_id),
    CHECK (current_stock BETWEEN 0 AND maximum_stock),
    CHECK (maximum_stock % standard_batch_size = 0)
);

-- shelf lots at the simulation start (writer: reference loader)
CREATE TABLE IF NOT EXISTS ref.store_batches_snapshot (
    store_id text NOT NULL,
    shelf_id text NOT NULL,
    batch_code text NOT NULL,
    item_category text NOT NULL,
    item_subcategory text NOT NULL,
    standard_batch_size integer NOT NULL,
    received_date date NOT NULL,
    expiry_date date NOT NULL,
    batch_quantity integer NOT NULL,
    snapshot_ts timestamp with time zone NOT NULL,
    PRIMARY KEY (store_id, batch_code),
    CHECK (batch_quantity > 0),
    CHECK (expiry_date >= received_date)
);

-- warehouse lots at the simulation start (writer: reference loader)
CREATE TABLE IF NOT EXISTS ref.warehouse_batches_snapshot (
    store_id text NOT NULL,
    shelf_id text NOT NULL,
    batch_code text NOT NULL,
    item_category text NOT NULL,
    item_subcategory text NOT NULL,
    standard_batch_size integer NOT NULL,
    received_date date NOT NULL,
    expiry_date date NOT NULL,
    batch_quantity integer NOT NULL,
    snapshot_ts timestamp with time zone NOT NULL,
    PRIMARY KEY (store_id, batch_code),
    CHECK (batch_quantity > 0),
    CHECK (expiry_date >= received_date)
);

-- planned weekly promotions (writer: reference loader)
CREATE TABLE IF NOT EXISTS ref.weekly_discounts (
    store_id text NOT NULL,
    week_start date NOT NULL,
    shelf_id text NOT NULL,
    week_index integer NOT NULL,
    week_end date NOT NULL,
    discount_pct numeric(5,4) NOT NULL,
    original_price numeric(10,2) NOT NULL,
    discounted_price numeric(10,2) NOT NULL,
    PRIMARY KEY (store_id, week_start, shelf_id),
    CHECK (discount_pct >= 0 AND discount_pct < 1),
    CHECK (week_end = week_start + 6)
);
