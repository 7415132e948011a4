"""Checks beside the forecasting assets, partitioned by cutoff like them.

- `ml/training_set`, `training_columns_complete` (blocking): every feature column is there and
  the ones that must be never are NaN; the failure names the column. A model is not trained on a
  broken set.
- `delta/analytics/predictions` (rules in `smart_shelf_platform.quality`):
  `one_row_per_shelf` (blocking: every catalogue shelf once), `quantiles_ordered` (no negative
  or NaN quantile, 0.5 <= 0.8 <= 0.9 <= 0.95) and `orders_within_free_capacity` (whole batches
  that fit the warehouse's free capacity).
- `postgres/analytics/ml_models`, `beats_baselines_and_champion` (blocking): the promotion gate,
  the verdict the asset recorded with the model (its backtest against seasonal naive, both
  moving averages and the current champion); a cutoff without a model fails it.
- `delta/analytics/predictions`, `forecasts_landed_before_cutoff`: the simulated clock's barrier
  (`smart_shelf_platform.cutoff_barrier`) had the cutoff's forecasts before it gave up waiting;
  when it gave up, the rule's plans stood and the check fails (severity ERROR) with how long the
  clock waited. The forecast run evaluates it after publishing, but a run that failed or never
  ran evaluates nothing: the sensor `cutoff_barrier_checks` (`sensors.py`) reports the same
  evaluation from outside any run once the clock has passed the cutoff.
"""


import warnings
from collections.abc import Iterator

import dagster as dg
import pandas as pd
import psycopg
import pyarrow as pa

from smart_shelf_platform import cutoff_barrier, quality
from smart_shelf_platform.defs.analytics.checks import partitioned
from smart_shelf_platform.defs.forecasting.assets import (
    PREDICTIONS_KEY, REGISTRY_KEY, TRAINING_SET_KEY, training_set_path,
)
from smart_shelf_platform.defs.lineage import postgres_key
from smart_shelf_platform.defs.quality.checks import (
    SHELF, STORE_INVENTORY, read_postgres, result, spec,
)
from smart_shelf_platform.defs.resources import SmartShelfResource
from smart_shelf_platform.ml import forecast_store, registry
from smart_shelf_platform.ml.forecast import QUANTILE_COLUMNS
from smart_shelf_platform.ml.training_set import missing_features

TRAINING_COLUMNS_COMPLETE = "training_columns_complete"
GATE_CHECK = "beats_baselines_and_champion"
ONE_ROW_PER_SHELF = "one_row_per_shelf"
QUANTILES_ORDERED = "quantiles_ordered"
ORDERS_WITHIN_CAPACITY = "orders_within_free_capacity"
BARRIER_CHECK = "forecasts_landed_before_cutoff"
BARRIER_CHECK_KEY = dg.AssetCheckKey(PREDICTIONS_KEY, BARRIER_CHECK)


def forecasting_checks(cutoffs: dg.TimeWindowPartitionsDefinition) -> list:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)  # partitioned checks are preview
        return [_training_check(cutoffs), _gate_check(cutoffs), _prediction_checks(cutoffs),
                _barrier_check(cutoffs)]


def barrier_result(outcome: cutoff_barrier.Outcome) -> dg.AssetCheckResult:
    """The barrier's verdict on one cutoff: failed (ERROR) when the clock gave up waiting for its
    forecasts, whether or not they landed later; passed when they landed first; failed (WARN)
    while neither has happened yet."""
    at = f"{outcome.cutoff:%Y-%m-%d %H:%M}"
    if outcome.timed_out is not None:
        waited = outcome.timed_out["waited_seconds"]
        return dg.AssetCheckResult(
            passed=False, severity=dg.AssetCheckSeverity.ERROR,
            description=f"the simulated clock waited {waited:g} s before the cutoff {at} "
                        f"(SMART_SHELF_FORECAST_BARRIER_SECONDS) and gave up: the rule's plans "
                        f"stood",
            metadata={"waited_seconds": waited, "gave_up_at": outcome.timed_out["gave_up_at"],
                      "plans": "the rule's", "landed_afterwards": outcome.landed is not None})
    if outcome.landed is None:
        return dg.AssetCheckResult(
            passed=False, severity=dg.AssetCheckSeverity.WARN,
            description=f"no forecast of the cutoff {at} has landed, and the clock has not "
                        f"given up on it (yet)")
    return dg.AssetCheckResult(
        passed=True, description=f"the forecasts of the cutoff {at} landed before the clock "
                                 f"gave up waiting for them",
        metadata={"published": dg.MetadataValue.json(outcome.landed)})


def _barrier_check(cutoffs: dg.TimeWindowPartitionsDefinition) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=PREDICTIONS_KEY, name=BARRIER_CHECK, partitions_def=cutoffs,
                    description="The simulated clock's barrier had the cutoff's forecasts before "
                                "it gave up waiting (SMART_SHELF_FORECAST_BARRIER_SECONDS); when "
                                "it gave up, the rule's plans stood. Also reported from outside "
                                "any run by the sensor cutoff_barrier_checks once the clock has "
                                "passed the cutoff: a run that failed or never ran evaluates "
                                "nothing.")
    def forecasts_landed_before_cutoff(context: dg.AssetCheckExecutionContext,
                                       smart_shelf: SmartShelfResource) -> dg.AssetCheckResult:
        cutoff = cutoffs.time_window_for_partition_key(context.partition_key).start
        client = smart_shelf.redis()
        try:
            return barrier_result(cutoff_barrier.outcome(client, smart_shelf.clock_key_prefix,
                                                         cutoff))
        finally:
            client.close()

    return forecasts_landed_before_cutoff


def _gate_check(cutoffs: dg.TimeWindowPartitionsDefinition) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=REGISTRY_KEY, name=GATE_CHECK, blocking=True, partitions_def=cutoffs,
                    description="The cutoff's model beats seasonal naive, both moving averages "
                                "and the current champion on its backtest: only then is it "
                                "promoted.")
    def beats_baselines_and_champion(context: dg.AssetCheckExecutionContext,
                                     smart_shelf: SmartShelfResource) -> dg.AssetCheckResult:
        version = registry.version_for(context.partition_key)
        with psycopg.connect(smart_shelf.postgres_dsn()) as conn:
            entry = registry.entry(conn, version)
        if entry is None:
            return dg.AssetCheckResult(passed=False, metadata={
                "reasons": dg.MetadataValue.json(["no model was trained for this cutoff (too "
                                                  "little history: see the asset's metadata)"])})
        gate = entry.metrics.get("gate", {})
        return dg.AssetCheckResult(passed=bool(gate.get("passed")), metadata={
            "model_version": version, "reasons": dg.MetadataValue.json(gate.get("reasons", [])),
            "wape": dg.MetadataValue.json(gate.get("wape", {})),
            "champion": gate.get("champion") or "none"})

    return beats_baselines_and_champion


def _training_check(cutoffs: dg.TimeWindowPartitionsDefinition) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=TRAINING_SET_KEY, name=TRAINING_COLUMNS_COMPLETE, blocking=True,
                    partitions_def=cutoffs,
                    description="Every feature column present; no NaN where a value is required.")
    def training_columns_complete(context: dg.AssetCheckExecutionContext,
                                  smart_shelf: SmartShelfResource) -> dg.AssetCheckResult:
        rows = pd.read_parquet(training_set_path(smart_shelf.ml_dir, context.partition_key))
        problems = missing_features(rows)
        described = {c: ("missing" if n < 0 else f"{n} NaN") for c, n in problems.items()}
        return dg.AssetCheckResult(
            passed=not problems, metadata={"row_count": len(rows),
                                           "problem_columns": dg.MetadataValue.json(described)},
            description=("columns: " + ", ".join(f"{c} {d}" for c, d in described.items()))
            if problems else None)

    return training_columns_complete


def _prediction_checks(cutoffs: dg.TimeWindowPartitionsDefinition) -> dg.AssetChecksDefinition:
    key, catalogue_key = PREDICTIONS_KEY, postgres_key(STORE_INVENTORY)
    prediction_specs = [
        spec(ONE_ROW_PER_SHELF, key, "Every catalogue shelf has exactly one forecast for the "
             "cutoff.", blocking=True, reads=[catalogue_key]),
        spec(QUANTILES_ORDERED, key, "No negative or NaN quantile; 0.5 <= 0.8 <= 0.9 <= 0.95.",
             blocking=True),
        spec(ORDERS_WITHIN_CAPACITY, key, "Orders are whole batches within the warehouse's free "
             "capacity.", blocking=True),
    ]

    @dg.multi_asset_check(name="delta_analytics_predictions_checks",
                          specs=[partitioned(s, cutoffs) for s in prediction_specs])
    def prediction_checks(context: dg.AssetCheckExecutionContext,
                          smart_shelf: SmartShelfResource) -> Iterator[dg.AssetCheckResult]:
        cutoff = cutoffs.time_window_for_partition_key(context.partition_key).start
        frame = forecast_store.read_predictions(smart_shelf.delta_root, cutoff)
        rows = pa.Table.from_pandas(frame, preserve_index=False)
        with psycopg.connect(smart_shelf.postgres_dsn()) as conn:
            catalogue = read_postgres(conn, STORE_INVENTORY, SHELF)
        unique = quality.keys_unique(rows, SHELF)
        present = quality.every_key_present(rows, catalogue, SHELF)
        yield result(key, ONE_ROW_PER_SHELF, quality.CheckOutcome(
            unique.passed and present.passed and rows.num_rows > 0,
            {**present.metadata, "duplicate_keys": unique.metadata["duplicate_keys"]}))
        yield result(key, QUANTILES_ORDERED,
                     quality.quantiles_ordered(rows, QUANTILE_COLUMNS, SHELF))
        yield result(key, ORDERS_WITHIN_CAPACITY, quality.orders_fit_capacity(rows, SHELF))

    return prediction_checks
