-- Discounts, daily ML features, the versioned model registry and the prediction log.

-- mirror of the daily_discounts topic (writer: Kafka Connect sink)
CREATE TABLE IF NOT EXISTS analytics.daily_discounts (
    store_id text NOT NULL,
    shelf_id text NOT NULL,
    discount_date date NOT NULL,
    discount numeric(5,4) NOT NULL,
    days_to_expiry integer NOT NULL,
    created_at timestamp with time zone NOT NULL,
    PRIMARY KEY (store_id, shelf_id, discount_date),
    CHECK (discount >= 0 AND discount <= 0.95)
);

-- daily ML features per shelf (writer: dagster)
CREATE TABLE IF NOT EXISTS analytics.shelf_daily_features (
    store_id text NOT NULL,
    shelf_id text NOT NULL,
    feature_date date NOT NULL,
    item_category text NOT NULL,
    item_subcategory text NOT NULL,
    day_of_week integer NOT NULL,
    is_weekend boolean NOT NULL,
    refill_day boolean NOT NULL,
    item_price numeric(10,2) NOT NULL,
    discount numeric(5,4) NOT NULL,
    is_discounted boolean NOT NULL,
    is_discounted_next_7d boolean NOT NULL,
    people_count integer NOT NULL,
    sales_qty integer NOT NULL,
    sales_last_1d integer NOT NULL,
    sales_last_7d integer NOT NULL,
    sales_last_14d integer NOT NULL,
    stockout_events integer NOT NULL,
    shelf_capacity integer NOT NULL,
    current_stock_shelf integer NOT NULL,
    shelf_fill_ratio numeric(5,4) NOT NULL,
    shelf_threshold_qty integer NOT NULL,
    expired_qty_shelf integer NOT NULL,
    alerts_last_30d_shelf integer NOT NULL,
    is_shelf_alert boolean NOT NULL,
    warehouse_capacity integer NOT NULL,
    current_stock_warehouse integer NOT NULL,
    warehouse_fill_ratio numeric(5,4) NOT NULL,
    wh_reorder_point_qty integer NOT NULL,
    pending_supplier_qty integer NOT NULL,
    expired_qty_wh integer NOT NULL,
    alerts_last_30d_wh integer NOT NULL,
    is_warehouse_alert boolean NOT NULL,
    moved_wh_to_shelf integer NOT NULL,
    standard_batch_size integer NOT NULL,
    min_expiration_days integer,
    avg_expiration_days numeric(8,2),
    qty_expiring_next_7d integer NOT NULL,
    batches_to_order integer,
    label_next_day_stockout boolean,
    computed_at timestamp with time zone NOT NULL,
    PRIMARY KEY (store_id, shelf_id, feature_date)
);
CREATE INDEX IF NOT EXISTS shelf_daily_features_feature_date_idx ON analytics.shelf_daily_features (feature_date);

-- versioned model registry (writer: dagster)
CREATE TABLE IF NOT EXISTS analytics.ml_models (
    model_name text NOT NULL,
    model_version text NOT NULL,
    trained_at timestamp with time zone NOT NULL,
    training_partition text NOT NULL,
    metrics_json jsonb NOT NULL,
    artifact_path text NOT NULL,
    feature_columns jsonb NOT NULL,
    is_active boolean NOT NULL,
    PRIMARY KEY (model_name, model_version)
);

-- every cutoff prediction (writer: dagster)
CREATE TABLE IF NOT EXISTS analytics.ml_predictions_log (
    model_name text NOT NULL,
    model_version text NOT NULL,
    store_id text NOT NULL,
    shelf_id text NOT NULL,
    feature_date date NOT NULL,
    cutoff_ts timestamp with time zone NOT NULL,
    predicted_batches integer NOT NULL,
    suggested_qty integer NOT NULL,
    created_at timestamp with time zone NOT NULL,
    PRIMARY KEY (model_name, model_version, store_id, shelf_id, feature_date),
    CHECK (predicted_batches >= 0),
    FOREIGN KEY (model_name, model_version) REFERENCES analytics.ml_models (model_name, model_version) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS ml_predictions_log_feature_date_idx ON analytics.ml_predictions_log (feature_date);
CREATE INDEX IF NOT EXISTS ml_predictions_log_store_id_shelf_id_feature_date_idx ON analytics.ml_predictions_log (store_id, shelf_id, feature_date DESC);
