"""Demand forecasting as assets partitioned by supplier cutoff (one partition per cutoff).

Two jobs per cutoff, requested together by the simulated-clock sensor (`sensors.py`):

- `cutoff_training_job`: `ml/training_set` (the labelled rows up to the cutoff's origin, fed by
  the daily features through `DailyToCutoffPartitionMapping`) -> `postgres/analytics/ml_models`
  (an XGBoost model fitted on them and backtested on the last cutoffs, registered as a
  challenger, with its artifact and its gate's verdict) -> `ml/champion` (its promotion). The
  blocking check `beats_baselines_and_champion` (`checks.py`) stands between the last two: a
  model that does not beat seasonal naive, both moving averages and the current champion is
  never promoted.
- `cutoff_forecast_job`: `delta/analytics/predictions` and `postgres/analytics/ml_predictions_log`
  (every shelf's interval forecast, quantiles and order) from the champion of an earlier cutoff
  (the `ml/champion` edge maps to the previous partition). So the forecast never waits for its
  own cutoff's training, and a failed gate leaves the forecast to the current champion. The
  same rows go to the `kafka/ml_predictions` topic, and the cutoff is marked as landed for the
  simulated clock's barrier (`smart_shelf_platform.cutoff_barrier`): with
  `SMART_SHELF_SUPPLIER_RULE=forecast` the supplier manager orders from them at the cutoff.

Without a usable champion (none yet, or an artifact missing or corrupt) every shelf falls back
to its in-stock mean (`method = fallback_history`), with a warning in the run's metadata: a
cutoff always gets its forecast. The unpartitioned `delta/analytics/ml_backtest` (with its
Postgres twin) is the full rolling-origin backtest against the simulator's true demand,
materialized on demand (or by `smart-shelf backtest`).
"""


from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import pandas as pd
import psycopg

from smart_shelf_platform import cutoff_barrier
from smart_shelf_platform.contracts.catalogue import (
    DELTA_TABLES_BY_PATH, POSTGRES_TABLES_BY_NAME, TOPICS_BY_NAME,
)
from smart_shelf_platform.defs import specs
from smart_shelf_platform.defs.analytics.assets import FEATURES_DELTA_KEY
from smart_shelf_platform.defs.lineage import (
    CHAMPION_KEY, TRAINING_SET_KEY, delta_key, postgres_key, topic_key,
)
from smart_shelf_platform.defs.partitions import DailyToCutoffPartitionMapping
from smart_shelf_platform.defs.resources import SmartShelfResource
from smart_shelf_platform.ml import cutoff as at_cutoff
from smart_shelf_platform.ml import evaluation, features, forecast_store, registry, supplier_feed
from smart_shelf_platform.ml.intervals import CutoffWindow, cutoff_window, max_horizon
from smart_shelf_platform.ml.backtest import summary
from smart_shelf_platform.ml.model import DemandModel, ModelArtifactError, NotEnoughHistory
from smart_shelf_platform.ml.training_set import training_rows

GROUP = "forecasting"
REGISTRY = POSTGRES_TABLES_BY_NAME["analytics.ml_models"]
PREDICTIONS = DELTA_TABLES_BY_PATH["analytics/predictions"]
PREDICTIONS_LOG = POSTGRES_TABLES_BY_NAME["analytics.ml_predictions_log"]
PREDICTIONS_TOPIC = TOPICS_BY_NAME["ml_predictions"]
BACKTEST_DELTA = DELTA_TABLES_BY_PATH["analytics/ml_backtest"]
BACKTEST_POSTGRES = POSTGRES_TABLES_BY_NAME["analytics.ml_backtest"]
REGISTRY_KEY = postgres_key(REGISTRY)
PREDICTIONS_KEY = delta_key(PREDICTIONS)
PREDICTIONS_LOG_KEY = postgres_key(PREDICTIONS_LOG)
PREDICTIONS_TOPIC_KEY = topic_key(PREDICTIONS_TOPIC)
# What a cutoff's forecast run materializes, together.
FORECAST_KEYS = (PREDICTIONS_KEY, PREDICTIONS_LOG_KEY, PREDICTIONS_TOPIC_KEY)
BACKTEST_KEYS = (delta_key(BACKTEST_DELTA), postgres_key(BACKTEST_POSTGRES))
LEDGER_SALES_KEY = dg.AssetKey(["postgres", "sim", "ledger_daily_sales"])
# Tables and the topic these assets materialize: the lake, postgres and kafka folders leave them
# out of their specs.
MATERIALIZED_KEYS = frozenset({REGISTRY_KEY, PREDICTIONS_KEY, PREDICTIONS_LOG_KEY,
                               PREDICTIONS_TOPIC_KEY, *BACKTEST_KEYS})
TRAINING_JOB = "cutoff_training_job"
FORECAST_JOB = "cutoff_forecast_job"


def training_set_path(ml_dir: str, partition_key: str) -> Path:
    return Path(ml_dir) / "training" / f"{registry.version_for(partition_key)}.parquet"


def forecasting_assets(config: at_cutoff.ForecastConfig,
                       cutoffs: dg.TimeWindowPartitionsDefinition) -> list[dg.AssetsDefinition]:
    schedule = config.schedule
    from_days = dg.AssetDep(FEATURES_DELTA_KEY, partition_mapping=DailyToCutoffPartitionMapping())

    def window_of(context) -> CutoffWindow:
        start = cutoffs.time_window_for_partition_key(context.partition_key).start
        return cutoff_window(schedule, start.astimezone(timezone.utc))

    @dg.asset(key=TRAINING_SET_KEY, partitions_def=cutoffs, deps=[from_days], group_name=GROUP,
              kinds={"python", "parquet"},
              description="Labelled rows (daily sales; a day the shelf ran empty flagged "
                          "censored) of every origin up to the cutoff's, from the daily features "
                          "and planned promotions.")
    def training_set(context: dg.AssetExecutionContext,
                     smart_shelf: SmartShelfResource) -> dg.MaterializeResult:
        window = window_of(context)
        panel = forecast_store.read_panel(smart_shelf.delta_root)
        promotions = forecast_store.read_promotions(smart_shelf.postgres_dsn())
        rows = training_rows(panel.loc[panel["feature_date"] <= window.origin], promotions,
                             window.origin, max_horizon(schedule, window.cutoff),
                             config.min_history_days)
        path = training_set_path(smart_shelf.ml_dir, context.partition_key)
        path.parent.mkdir(parents=True, exist_ok=True)
        rows.to_parquet(path, index=False)
        known = panel.loc[panel["feature_date"] <= window.origin]
        censored = int(rows["censored"].sum()) if len(rows) else 0
        context.log.info("training set of %s: %d rows from %d origins -> %s",
                         context.partition_key, len(rows), rows["origin"].nunique(), path)
        return dg.MaterializeResult(metadata={
            "dagster/row_count": len(rows), "origins": int(rows["origin"].nunique()),
            "origin": window.origin.isoformat(), "days_known": int(known["feature_date"].nunique()),
            "censored_rows": censored,
            "censored_share": round(censored / len(rows), 4) if len(rows) else 0.0,
            "path": dg.MetadataValue.path(str(path)),
        })

    registry_spec = specs.postgres_spec(REGISTRY).replace_attributes(
        partitions_def=cutoffs, deps=[TRAINING_SET_KEY])

    @dg.multi_asset(name="demand_model", specs=[registry_spec],
                    description="Train the cutoff's model, backtest it on the last cutoffs and "
                                "register it as a challenger with its gate's verdict.")
    def demand_model(context: dg.AssetExecutionContext,
                     smart_shelf: SmartShelfResource) -> dg.MaterializeResult:
        window = window_of(context)
        key = context.partition_key
        rows = pd.read_parquet(training_set_path(smart_shelf.ml_dir, key))
        try:
            model = DemandModel.fit(rows, window.origin)
        except NotEnoughHistory as error:
            context.log.warning("no model for %s: %s", key, error)
            return dg.MaterializeResult(metadata={
                "trained": False, "reason": str(error), "dagster/row_count": len(rows)})
        panel = forecast_store.read_panel(smart_shelf.delta_root)
        promotions = forecast_store.read_promotions(smart_shelf.postgres_dsn())
        summary = evaluation.gate_summary(schedule, panel, promotions, window.cutoff,
                                          config.gate_cutoffs, context.log.info)
        with psycopg.connect(smart_shelf.postgres_dsn()) as conn:
            current = registry.champion(conn, before_cutoff=key)
            result = at_cutoff.gate(summary, current.metrics.get("backtest") if current else None)
            metrics = {"backtest": registry.metrics_json(summary) if len(summary) else {},
                       "gate": {"passed": result.passed, "reasons": list(result.reasons),
                                "wape": result.wape, "cutoffs": config.gate_cutoffs,
                                "champion": current.model_version if current else None},
                       "dispersion": model.phi}
            entry = registry.register(conn, Path(smart_shelf.ml_dir), model, key,
                                      min(rows["origin"]), metrics)
        context.log.info("registered %s %s (%d rows): gate %s", entry.model_name,
                         entry.model_version, model.training_rows,
                         "passed" if result.passed else "; ".join(result.reasons))
        return dg.MaterializeResult(metadata={
            "trained": True, "model_name": entry.model_name,
            "model_version": entry.model_version, "training_rows": model.training_rows,
            "dispersion": round(model.phi, 4), "artifact": dg.MetadataValue.path(
                entry.artifact_path),
            **{f"wape_{m}": round(v, 4) for m, v in result.wape.items()}})

    @dg.asset(key=CHAMPION_KEY, partitions_def=cutoffs, deps=[REGISTRY_KEY], group_name=GROUP,
              kinds={"python", "xgboost"},
              description="Promote the cutoff's model to champion (runs only when its gate "
                          "passed); the previous champion is retired.")
    def champion(context: dg.AssetExecutionContext,
                 smart_shelf: SmartShelfResource) -> dg.MaterializeResult:
        version = registry.version_for(context.partition_key)
        with psycopg.connect(smart_shelf.postgres_dsn()) as conn:
            previous = registry.champion(conn)
            entry = registry.promote(conn, version)
        context.log.info("champion: %s (was %s)", entry.model_version,
                         previous.model_version if previous else "none")
        return dg.MaterializeResult(metadata={
            "model_version": entry.model_version,
            "previous_champion": previous.model_version if previous else "none"})

    predictions_specs = [
        specs.delta_spec(PREDICTIONS).replace_attributes(
            partitions_def=cutoffs,
            deps=[from_days, dg.AssetDep(CHAMPION_KEY, partition_mapping=
                                         dg.TimeWindowPartitionMapping(start_offset=-1,
                                                                       end_offset=-1))]),
        specs.postgres_spec(PREDICTIONS_LOG).replace_attributes(
            partitions_def=cutoffs, deps=[PREDICTIONS_KEY]),
        specs.topic_spec(PREDICTIONS_TOPIC).replace_attributes(
            partitions_def=cutoffs, deps=[PREDICTIONS_KEY]),
    ]

    @dg.multi_asset(name="cutoff_predictions", specs=predictions_specs,
                    description="Forecast every shelf's protection interval with the champion "
                                "and the order it implies; Delta, Postgres, and the topic the "
                                "supplier manager orders from.")
    def cutoff_predictions(context: dg.AssetExecutionContext, smart_shelf: SmartShelfResource):
        window = window_of(context)
        key = context.partition_key
        dsn = smart_shelf.postgres_dsn()
        panel = forecast_store.read_panel(smart_shelf.delta_root)
        panel = panel.loc[panel["feature_date"] <= window.origin]
        if not (panel["feature_date"] == window.origin).any():
            raise dg.Failure(f"no daily features of {window.origin}, the last day before the "
                             f"cutoff: materialize {FEATURES_DELTA_KEY.to_user_string()} for "
                             f"it first")
        warning = None
        with psycopg.connect(dsn) as conn:
            current = registry.champion(conn, before_cutoff=key)
        model = None
        if current is None:
            warning = "no champion model yet: every shelf falls back to its in-stock mean"
        else:
            try:
                model = current.load()
            except ModelArtifactError as error:
                warning = f"{error}: every shelf falls back to its in-stock mean"
                current = None
        if warning:
            context.log.warning("cutoff %s: %s", key, warning)
        _, origin_end = features.day_bounds(window.origin)
        rows = at_cutoff.prediction_rows(
            current, model, panel, forecast_store.read_promotions(dsn), window,
            config.order_quantile, forecast_store.perishable_shelf_life(dsn),
            datetime.now(timezone.utc), config.min_history_days,
            supplier_feed.on_order_at(smart_shelf.delta_root, origin_end))
        version = forecast_store.write_predictions(smart_shelf.delta_root, dsn, rows,
                                                   window.cutoff)
        topic = smart_shelf.topic(PREDICTIONS_TOPIC.name)
        published = supplier_feed.publish(smart_shelf.kafka_bootstrap, smart_shelf.topic, rows)
        methods = rows["method"].value_counts().to_dict()
        context.log.info("cutoff %s: %d shelves (%s), %d units ordered, Delta version %d", key,
                         len(rows), methods, int(rows["order_units"].sum()), version)
        common = {"dagster/row_count": len(rows), "cutoff": window.cutoff.isoformat(),
                  "interval": f"{window.interval_days[0]} .. {window.interval_days[-1]}",
                  "model_version": current.model_version if current else "none",
                  "shelves_by_method": dg.MetadataValue.json(methods),
                  "fallback_shelves": int(methods.get("fallback_history", 0)),
                  "units_ordered": int(rows["order_units"].sum()),
                  "shelves_ordering": int((rows["order_units"] > 0).sum())}
        if warning:
            common["warning"] = warning
        client = smart_shelf.redis()
        try:
            cutoff_barrier.mark_landed(client, smart_shelf.clock_key_prefix, window.cutoff, {
                "rows": published, "model_version": common["model_version"],
                "units_ordered": common["units_ordered"]})
        finally:
            client.close()
        yield dg.MaterializeResult(asset_key=PREDICTIONS_KEY,
                                   metadata={**common, "delta_version": version})
        yield dg.MaterializeResult(asset_key=PREDICTIONS_LOG_KEY, metadata=common)
        yield dg.MaterializeResult(asset_key=PREDICTIONS_TOPIC_KEY,
                                   metadata={**common, "topic": topic, "messages": published})

    backtest_specs = [
        specs.delta_spec(BACKTEST_DELTA).replace_attributes(
            deps=[FEATURES_DELTA_KEY, LEDGER_SALES_KEY]),
        specs.postgres_spec(BACKTEST_POSTGRES).replace_attributes(deps=[BACKTEST_KEYS[0]]),
    ]

    @dg.multi_asset(name="forecast_backtest", specs=backtest_specs,
                    description="Rolling-origin backtest of every cutoff of the history: the "
                                "model against every baseline and the oracle.")
    def forecast_backtest(context: dg.AssetExecutionContext, smart_shelf: SmartShelfResource):
        result = evaluation.evaluate(smart_shelf.delta_root, smart_shelf.postgres_dsn(),
                                     schedule, Path(smart_shelf.ml_dir), context.log.info)
        table = summary(result.scores) if len(result.rows) else pd.DataFrame()
        metadata = {"backtest_id": result.backtest_id,
                    "cutoffs": int(result.rows["cutoff"].nunique()) if len(result.rows) else 0,
                    "summary": dg.MetadataValue.md(evaluation.markdown(table)
                                                   if len(table) else "nothing to backtest yet")}
        if result.plot:
            metadata["plot"] = dg.MetadataValue.path(str(result.plot))
        for key in BACKTEST_KEYS:
            yield dg.MaterializeResult(asset_key=key, metadata=metadata)

    return [training_set, demand_model, champion, cutoff_predictions, forecast_backtest]
