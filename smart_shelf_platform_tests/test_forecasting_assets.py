"""The forecasting assets end to end on a short real pipeline run (simulator -> Redis -> bridge ->
Kafka -> every streaming query -> Delta -> daily features), in-process with Dagster:

a cutoff's training run (training set -> model -> gate, which fails the run and keeps the model
from promotion), its forecast run (without a champion every shelf falls back, flagged), a
promotion, the next cutoff forecast by the model, the same predictions on a re-run, and a
corrupt artifact falling back with the file named.

The run is the short one the daily features' tests use (`conftest.pipeline`); cutoffs and
deliveries every day give it a cutoff with a day of labels behind it
(SMART_SHELF_FORECAST_MIN_HISTORY_DAYS=1 here; 7 by default)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pandas as pd
import psycopg
import pytest

from smart_shelf_platform.defs.forecasting.assets import (
    FORECAST_KEYS, LEDGER_SALES_KEY, PREDICTIONS_KEY, PREDICTIONS_LOG_KEY, REGISTRY_KEY,
    forecasting_assets,
)
from smart_shelf_platform.defs.forecasting.checks import (
    GATE_CHECK, ONE_ROW_PER_SHELF, ORDERS_WITHIN_CAPACITY, QUANTILES_ORDERED, TRAINING_COLUMNS_COMPLETE,
    forecasting_checks,
)
from smart_shelf_platform.defs.lineage import CHAMPION_KEY, TRAINING_SET_KEY
from smart_shelf_platform.defs.partitions import cutoff_cron, cutoff_partitions
from smart_shelf_platform.defs.resources import SmartShelfResource
from smart_shelf_platform.ml import forecast_store, registry
from smart_shelf_platform.ml.cutoff import ForecastConfig
from smart_shelf_platform.ml.forecast import METHOD_FALLBACK, METHOD_MODEL
from smart_shelf_platform_tests.test_daily_features import (
    evaluations, feature_definitions, materialized, run_features,
)

pytestmark = pytest.mark.integration
UTC = timezone.utc
EVERY_DAY = "Mon,Tue,Wed,Thu,Fri,Sat,Sun"
# The shared pipeline run covers 2026-01-01 21:00 to 2026-01-02 01:00; with a cutoff every day at
# 12:00, the cutoff of 01-03 learns from 01-01's history to 01-02's sales, and 01-04 follows it.
FIRST, SECOND = "2026-01-03-12:00", "2026-01-04-12:00"
FEATURE_DAYS = ("2026-01-01", "2026-01-02", "2026-01-03")
FORECAST_COLUMNS = ["store_id", "shelf_id", "method", "model_version", "forecast_mean", "q50",
                    "q80", "q90", "q95", "order_units"]


@pytest.fixture(scope="module")
def history(pipeline, tmp_path_factory):
    """The shared pipeline run's daily features, and the forecasting assets on a schedule with a
    cutoff and a delivery every day; yields (settings, resource, assets)."""
    own, _ = pipeline
    own = own.model_copy(update={"supplier_cutoff_days": EVERY_DAY,
                                 "supplier_delivery_days": EVERY_DAY,
                                 "forecast_min_history_days": 1})
    for day in FEATURE_DAYS:
        assert run_features(own, partition_key=day).success
    config = ForecastConfig.from_settings(own)
    cutoffs = cutoff_partitions(own.sim_start, cutoff_cron(config.schedule))
    assets = [*feature_definitions(own), *forecasting_assets(config, cutoffs),
              *forecasting_checks(cutoffs), dg.AssetSpec(LEDGER_SALES_KEY)]
    resource = SmartShelfResource(**{**SmartShelfResource.from_settings(own).model_dump(),
                                     "ml_dir": str(tmp_path_factory.mktemp("ml"))})
    return own, resource, assets


def run(history, keys, partition_key: str) -> dg.ExecuteInProcessResult:
    _, resource, assets = history
    return dg.materialize(assets, selection=list(keys), partition_key=partition_key,
                          raise_on_error=False, resources={"smart_shelf": resource})


def train(history, partition_key: str) -> dg.ExecuteInProcessResult:
    return run(history, [TRAINING_SET_KEY, REGISTRY_KEY, CHAMPION_KEY], partition_key)


def forecast(history, partition_key: str) -> dg.ExecuteInProcessResult:
    return run(history, list(FORECAST_KEYS), partition_key)


def predictions(history, partition_key: str) -> pd.DataFrame:
    own, resource, _ = history
    cutoff = datetime.strptime(partition_key, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC)
    return forecast_store.read_predictions(resource.delta_root, cutoff).sort_values(
        ["store_id", "shelf_id"]).reset_index(drop=True)


def catalogue_shelves(own) -> int:
    with psycopg.connect(own.postgres_dsn()) as conn:
        return conn.execute("SELECT count(*) FROM ref.store_inventory_snapshot").fetchone()[0]


def assert_prediction_checks_pass(result: dg.ExecuteInProcessResult) -> None:
    checks = evaluations(result)
    assert {n: checks[n].passed for n in (ONE_ROW_PER_SHELF, QUANTILES_ORDERED,
                                          ORDERS_WITHIN_CAPACITY)} == {
        ONE_ROW_PER_SHELF: True, QUANTILES_ORDERED: True, ORDERS_WITHIN_CAPACITY: True}


def test_a_cutoff_trains_a_model_whose_gate_keeps_it_from_promotion_without_a_backtest(history):
    own, resource, _ = history
    result = train(history, FIRST)
    assert not result.success  # a blocking check that fails fails the run, visibly
    done = materialized(result)
    assert set(done) == {"ml/training_set", "postgres/analytics/ml_models"}  # no champion
    assert done["ml/training_set"]["dagster/row_count"].value > 500  # a day of every shelf
    checks = evaluations(result)
    assert checks[TRAINING_COLUMNS_COMPLETE].passed
    gate = checks[GATE_CHECK]
    assert not gate.passed and "backtested" in gate.metadata["reasons"].value[0]
    assert done["postgres/analytics/ml_models"]["trained"].value is True
    with psycopg.connect(own.postgres_dsn()) as conn:
        (entry,) = registry.entries(conn)
    assert (entry.model_version, entry.status) == ("2026-01-03-1200", "challenger")
    assert Path(entry.artifact_path).is_file()


def test_without_a_champion_every_shelf_falls_back_and_says_so(history):
    own, _, _ = history
    result = forecast(history, FIRST)
    assert result.success
    assert_prediction_checks_pass(result)
    meta = materialized(result)["delta/analytics/predictions"]
    assert "no champion" in meta["warning"].value
    rows = predictions(history, FIRST)
    assert len(rows) == catalogue_shelves(own) == meta["fallback_shelves"].value
    assert set(rows["method"]) == {METHOD_FALLBACK} and rows["model_version"].isna().all()
    with psycopg.connect(own.postgres_dsn()) as conn:
        logged = conn.execute("SELECT count(*), sum(order_units) FROM analytics.ml_predictions_log "
                              "WHERE cutoff_ts = %s", (datetime(2026, 1, 3, 12, tzinfo=UTC),)
                              ).fetchone()
    assert logged == (len(rows), rows["order_units"].sum())


def test_a_promoted_model_forecasts_the_next_cutoff_the_same_way_twice(history):
    own, resource, _ = history
    with psycopg.connect(own.postgres_dsn()) as conn:
        registry.promote(conn, "2026-01-03-1200")
    first = forecast(history, SECOND)
    assert first.success
    assert_prediction_checks_pass(first)
    rows = predictions(history, SECOND)
    assert set(rows["method"]) == {METHOD_MODEL}
    assert set(rows["model_version"]) == {"2026-01-03-1200"}
    assert rows["forecast_mean"].sum() > 0
    assert (rows["q50"] <= rows["q95"]).all()
    again = forecast(history, SECOND)
    assert again.success
    pd.testing.assert_frame_equal(predictions(history, SECOND)[FORECAST_COLUMNS],
                                  rows[FORECAST_COLUMNS])


def test_a_corrupt_champion_artifact_falls_back_with_the_file_named(history):
    own, resource, _ = history
    with psycopg.connect(own.postgres_dsn()) as conn:
        champion = registry.champion(conn)
    Path(champion.artifact_path).write_text("{ not a model")
    result = forecast(history, SECOND)
    assert result.success
    assert_prediction_checks_pass(result)
    warning = materialized(result)["delta/analytics/predictions"]["warning"].value
    assert champion.artifact_path in warning and "cannot be read" in warning
    assert set(predictions(history, SECOND)["method"]) == {METHOD_FALLBACK}


def test_backtest_metrics_replace_their_run_in_delta_and_postgres(history):
    from deltalake import DeltaTable

    from smart_shelf_platform.contracts.catalogue import DELTA_TABLES_BY_PATH
    from smart_shelf_platform.stack.delta_tables import table_uri

    own, resource, _ = history
    cutoff = datetime(2026, 1, 4, 12, tzinfo=UTC)
    scores = pd.DataFrame({"method": ["model", "model", "seasonal_naive"],
                           "scope": ["all", "all", "all"], "cutoff": [None, cutoff, None],
                           "metric": ["wape", "wape", "wape"], "value": [0.3, 0.28, 0.41]})
    ran_at = datetime.now(UTC)
    for value in (0.3, 0.25):  # the second write of the same backtest replaces the first
        scores.loc[0, "value"] = value
        forecast_store.write_backtest(resource.delta_root, own.postgres_dsn(), scores, "bt1",
                                      ran_at)
    with psycopg.connect(own.postgres_dsn()) as conn:
        rows = conn.execute("SELECT method, cutoff, value FROM analytics.ml_backtest "
                            "WHERE backtest_id = 'bt1' ORDER BY 1, 2").fetchall()
    assert rows == [("model", "2026-01-04-12:00", 0.28), ("model", "all", 0.25),
                    ("seasonal_naive", "all", 0.41)]
    delta = DeltaTable(table_uri(resource.delta_root,
                                 DELTA_TABLES_BY_PATH["analytics/ml_backtest"])).to_pandas()
    assert sorted(delta["value"]) == [0.25, 0.28, 0.41]


def test_one_champion_at_a_time_and_a_rollback_restores_the_previous(history):
    from smart_shelf_platform.ml.model import DemandModel
    from smart_shelf_platform.ml.training_set import training_rows
    from smart_shelf_platform_tests.test_forecasting import D0, NO_PROMOTIONS, weekly_panel

    own, resource, _ = history
    panel = weekly_panel(days=28)
    origin = D0 + timedelta(days=27)
    model = DemandModel.fit(training_rows(panel, NO_PROMOTIONS, origin, 2), origin)
    with psycopg.connect(own.postgres_dsn()) as conn:
        newer = registry.register(conn, Path(resource.ml_dir), model, SECOND, D0, {})
        assert newer.status == "challenger"
        registry.promote(conn, newer.model_version)

        def statuses() -> dict[str, str]:
            return {e.model_version: e.status for e in registry.entries(conn)}

        assert statuses() == {"2026-01-03-1200": "retired", "2026-01-04-1200": "champion"}
        assert registry.rollback(conn).model_version == "2026-01-03-1200"
        assert statuses() == {"2026-01-03-1200": "champion", "2026-01-04-1200": "retired"}
        with pytest.raises(registry.RegistryError, match="no model shelf_demand_xgb version x"):
            registry.promote(conn, "x")
