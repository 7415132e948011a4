"""Analytics and ML records: daily shelf features, the model registry and the prediction log."""

from smart_shelf_platform.contracts.types import (
    BOOL, DATE, DOUBLE, INT, JSON, STRING, TIMESTAMP, Field as F, Record, decimal,
)

STORE_ID = F("store_id", STRING)
SHELF_ID = F("shelf_id", STRING)


def _count(name: str, description: str = "") -> F:
    return F(name, INT, description=description)


SHELF_DAILY_FEATURES = Record(
    "shelf_daily_features",
    (
        STORE_ID, SHELF_ID, F("feature_date", DATE),
        F("item_category", STRING), F("item_subcategory", STRING),
        _count("day_of_week", "0 = Monday"), F("is_weekend", BOOL), F("refill_day", BOOL),
        F("item_price", decimal(10, 2)), F("discount", decimal(5, 4)), F("is_discounted", BOOL),
        F("is_discounted_next_7d", BOOL), _count("people_count", "store entries that day"),
        _count("sales_qty", "units sold that day"),
        _count("sales_last_1d"), _count("sales_last_7d"), _count("sales_last_14d"),
        _count("stockout_events", "times the shelf hit zero"),
        _count("shelf_capacity"), _count("current_stock_shelf", "at the end of the day"),
        F("shelf_fill_ratio", decimal(5, 4)), _count("shelf_threshold_qty"),
        _count("expired_qty_shelf"), _count("alerts_last_30d_shelf"), F("is_shelf_alert", BOOL),
        _count("warehouse_capacity"), _count("current_stock_warehouse"),
        F("warehouse_fill_ratio", decimal(5, 4)), _count("wh_reorder_point_qty"),
        _count("pending_supplier_qty", "ordered or planned, not yet delivered"),
        _count("expired_qty_wh"), _count("alerts_last_30d_wh"), F("is_warehouse_alert", BOOL),
        _count("moved_wh_to_shelf"), _count("standard_batch_size"),
        F("min_expiration_days", INT, nullable=True, description="null when no lot is on hand"),
        F("avg_expiration_days", decimal(8, 2), nullable=True),
        _count("qty_expiring_next_7d"),
        F("batches_to_order", INT, nullable=True, description="target: batches ordered next cutoff"),
        F("label_next_day_stockout", BOOL, nullable=True, description="filled the next day"),
        F("computed_at", TIMESTAMP),
    ),
    key=("store_id", "shelf_id", "feature_date"),
    description="One row per shelf and simulated day: the features the demand forecast learns "
                "from (see smart_shelf_platform/ml/features.py).",
)

MODEL_STATUSES = ("challenger", "champion", "retired")

ML_MODEL = Record(
    "ml_model",
    (
        F("model_name", STRING), F("model_version", STRING),
        F("status", STRING, description="challenger | champion | retired"),
        F("trained_at", TIMESTAMP, description="wall clock"),
        F("cutoff_key", STRING, description="the cutoff partition it was trained for"),
        F("train_from", DATE), F("train_until", DATE, description="last day of its labels"),
        _count("training_rows"), F("feature_columns", JSON),
        F("feature_hash", STRING, description="sha256 of the feature list, 12 hex digits"),
        F("params_json", JSON), F("metrics_json", JSON, description="its backtest and gate"),
        F("artifact_path", STRING, description="XGBoost JSON model file"),
        F("code_version", STRING, description="git commit of the code that trained it"),
        F("promoted_at", TIMESTAMP, nullable=True),
    ),
    key=("model_name", "model_version"),
    description="Versioned model registry: every trained version is kept with its metrics.",
)

ML_PREDICTION = Record(
    "ml_prediction",
    (
        STORE_ID, SHELF_ID, F("cutoff_ts", TIMESTAMP), F("cutoff_date", DATE),
        F("origin_date", DATE, description="last complete day the forecast knew"),
        F("interval_start", DATE, description="first day of the protection interval"),
        F("interval_end", DATE, description="last day of the protection interval"),
        F("item_category", STRING),
        F("method", STRING, description="model | fallback_history"),
        F("model_name", STRING, nullable=True), F("model_version", STRING, nullable=True),
        F("lead_mean", DOUBLE, description="units expected before the delivery"),
        F("forecast_mean", DOUBLE, description="units expected over the interval"),
        _count("q50"), _count("q80"), _count("q90"), _count("q95"),
        F("order_quantile", DOUBLE), _count("shelf_on_hand"), _count("wh_on_hand"),
        _count("on_order"), _count("wh_capacity"), _count("batch_size"),
        _count("order_batches"), _count("order_units"), F("created_at", TIMESTAMP),
    ),
    key=("store_id", "shelf_id", "cutoff_ts"),
    description="Every cutoff forecast per shelf, zero orders included.",
)

ML_BACKTEST = Record(
    "ml_backtest",
    (
        F("backtest_id", STRING), F("ran_at", TIMESTAMP),
        F("method", STRING, description="model or a baseline"),
        F("scope", STRING, description="all | category:<name> | slow_movers"),
        F("cutoff", STRING, description="a cutoff key, or 'all' for the whole backtest"),
        F("metric", STRING), F("value", DOUBLE, nullable=True),
    ),
    key=("backtest_id", "method", "scope", "cutoff", "metric"),
    description="Rolling-origin backtest metrics of the model and its baselines.",
)
