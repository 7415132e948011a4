-- Demand forecasting (writer: dagster). The model registry and the prediction log are rebuilt
-- for the forecasts of the protection interval (they had no writer before, so nothing is lost),
-- and the backtest metrics get a table of their own.
DROP TABLE IF EXISTS analytics.ml_predictions_log;
DROP TABLE IF EXISTS analytics.ml_models;

-- versioned model registry: every trained model with its window, features, gate and status
CREATE TABLE analytics.ml_models (
    model_name text NOT NULL,
    model_version text NOT NULL,
    status text NOT NULL,
    trained_at timestamp with time zone NOT NULL,
    cutoff_key text NOT NULL,
    train_from date NOT NULL,
    train_until date NOT NULL,
    training_rows integer NOT NULL,
    feature_columns jsonb NOT NULL,
    feature_hash text NOT NULL,
    params_json jsonb NOT NULL,
    metrics_json jsonb NOT NULL,
    artifact_path text NOT NULL,
    code_version text NOT NULL,
    promoted_at timestamp with time zone,
    PRIMARY KEY (model_name, model_version),
    CHECK (status IN ('challenger', 'champion', 'retired'))
);
-- one champion per model name at a time
CREATE UNIQUE INDEX ml_models_one_champion_idx ON analytics.ml_models (model_name)
    WHERE status = 'champion';

-- every cutoff forecast per shelf, with the order it implies
CREATE TABLE analytics.ml_predictions_log (
    store_id text NOT NULL,
    shelf_id text NOT NULL,
    cutoff_ts timestamp with time zone NOT NULL,
    cutoff_date date NOT NULL,
    origin_date date NOT NULL,
    interval_start date NOT NULL,
    interval_end date NOT NULL,
    item_category text NOT NULL,
    method text NOT NULL,
    model_name text,
    model_version text,
    lead_mean double precision NOT NULL,
    forecast_mean double precision NOT NULL,
    q50 integer NOT NULL,
    q80 integer NOT NULL,
    q90 integer NOT NULL,
    q95 integer NOT NULL,
    order_quantile double precision NOT NULL,
    shelf_on_hand integer NOT NULL,
    wh_on_hand integer NOT NULL,
    on_order integer NOT NULL,
    wh_capacity integer NOT NULL,
    batch_size integer NOT NULL,
    order_batches integer NOT NULL,
    order_units integer NOT NULL,
    created_at timestamp with time zone NOT NULL,
    PRIMARY KEY (store_id, shelf_id, cutoff_ts),
    CHECK (q50 >= 0 AND q50 <= q80 AND q80 <= q90 AND q90 <= q95),
    CHECK (order_units >= 0),
    FOREIGN KEY (model_name, model_version) REFERENCES analytics.ml_models (model_name, model_version)
);
CREATE INDEX ml_predictions_log_cutoff_date_idx ON analytics.ml_predictions_log (cutoff_date);

-- rolling-origin backtest metrics, long format
CREATE TABLE analytics.ml_backtest (
    backtest_id text NOT NULL,
    ran_at timestamp with time zone NOT NULL,
    method text NOT NULL,
    scope text NOT NULL,
    cutoff text NOT NULL,
    metric text NOT NULL,
    value double precision,
    PRIMARY KEY (backtest_id, method, scope, cutoff, metric)
);

-- The model learns a day's sales from the days the shelf never ran empty (censored days are left
-- out of its labels); these are those rows.
CREATE OR REPLACE VIEW analytics.v_ml_train AS
SELECT *
FROM analytics.v_ml_features
WHERE stockout_events = 0;

GRANT SELECT, INSERT, UPDATE, DELETE ON analytics.ml_models, analytics.ml_predictions_log,
    analytics.ml_backtest TO smart_shelf_writer;
GRANT SELECT ON analytics.ml_models, analytics.ml_predictions_log, analytics.ml_backtest,
    analytics.v_ml_train TO smart_shelf_reader;
