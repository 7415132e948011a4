-- Views for the dashboard and the ML code. CREATE OR REPLACE keeps re-runs harmless.

-- Alerts that still need someone's attention.
CREATE OR REPLACE VIEW ops.v_active_alerts AS
SELECT *
FROM ops.alerts
WHERE status IN ('open', 'acknowledged');

-- Model inputs: flags as 0/1, missing expiry facts as explicit sentinels, the target included.
CREATE OR REPLACE VIEW analytics.v_ml_features AS
SELECT
    store_id,
    shelf_id,
    feature_date,
    item_category,
    item_subcategory,
    day_of_week,
    is_weekend::int AS is_weekend,
    refill_day::int AS refill_day,
    item_price,
    discount,
    is_discounted::int AS is_discounted,
    is_discounted_next_7d::int AS is_discounted_next_7d,
    people_count,
    sales_qty,
    sales_last_1d,
    sales_last_7d,
    sales_last_14d,
    stockout_events,
    shelf_capacity,
    current_stock_shelf,
    shelf_fill_ratio,
    shelf_threshold_qty,
    expired_qty_shelf,
    alerts_last_30d_shelf,
    is_shelf_alert::int AS is_shelf_alert,
    warehouse_capacity,
    current_stock_warehouse,
    warehouse_fill_ratio,
    wh_reorder_point_qty,
    pending_supplier_qty,
    expired_qty_wh,
    alerts_last_30d_wh,
    is_warehouse_alert::int AS is_warehouse_alert,
    moved_wh_to_shelf,
    standard_batch_size,
    COALESCE(min_expiration_days, 9999) AS min_expiration_days,
    COALESCE(avg_expiration_days, 9999) AS avg_expiration_days,
    qty_expiring_next_7d,
    batches_to_order
FROM analytics.shelf_daily_features;

-- Training rows: products the warehouse stocks, with a known target.
CREATE OR REPLACE VIEW analytics.v_ml_train AS
SELECT *
FROM analytics.v_ml_features
WHERE warehouse_capacity > 0
  AND batches_to_order IS NOT NULL;
