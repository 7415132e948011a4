"""End to end: a simulated morning of one store, with bad events, through the bridge and every
streaming query, then `verify` against the simulator's ledger; then, on the same run, the Dagster
code location: the daily features of the simulated day and every asset check it defines, and
`smart-shelf report`.

The run is the module's own: a database (migrated, reference data loaded), Kafka topics, Delta
root, checkpoints, Redis streams and simulated clock nobody else writes to, so the checks that
read the whole ledger or the clock see this run and nothing else."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import date, timedelta

import dagster as dg
import psycopg
import pytest

from producers.run import SimulateOptions, simulate
from producers.simulator import Simulation
from producers.streams import stream_name
from smart_shelf_platform.definitions import build_definitions
from smart_shelf_platform.defs.analytics.assets import FEATURES_DELTA_KEY, MATERIALIZED_KEYS
from smart_shelf_platform.defs.forecasting.assets import PREDICTIONS_KEY, REGISTRY_KEY
from smart_shelf_platform.defs.lineage import TRAINING_SET_KEY
from smart_shelf_platform.defs.quality.checks import FRESH_WITHIN_LAG, MATCHES_LEDGER
from smart_shelf_platform.defs.resources import RESOURCE_KEY, SmartShelfResource
from smart_shelf_platform.ml import feature_store
from smart_shelf_platform.settings import Settings
from smart_shelf_platform.verify import verify
from smart_shelf_platform_tests.streaming_support import (
    delta_rows, drop_redis_keys, drop_topics, private_context, run_to_end,
)
from smart_shelf_platform_tests.test_daily_features import drop_database, private_database
from streaming import runner
from streaming.shell import QueryContext

pytestmark = pytest.mark.integration

EVENT_TOPICS = ("foot_traffic", "shelf_events", "pos_transactions")
ORDER = [query for stage in runner.STAGES for query in stage]  # state before the engines
SIMULATED = timedelta(hours=3)  # a morning: the run covers part of its start's day
FORECAST_CHECKED = (TRAINING_SET_KEY, REGISTRY_KEY, PREDICTIONS_KEY)


def bridge_into(ctx, settings, stream_prefix: str) -> None:
    """Forward the run's Redis streams to the context's private topics until idle."""
    mapping = [arg for t in EVENT_TOPICS
               for arg in ("--stream", f"{stream_name(t, stream_prefix)}={ctx.topic(t)}")]
    result = subprocess.run(
        [sys.executable, "-m", "producers.bridge", *mapping, "--consumer", "e2e",
         "--stop-when-idle", "3"],
        env={**os.environ, **settings.as_env()}, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


@dataclass(frozen=True)
class PipelineRun:
    settings: Settings  # the run's database and Delta root
    ctx: QueryContext
    sim: Simulation
    clock_prefix: str

    @property
    def day(self) -> date:
        """The simulated day the run covers part of (it starts and ends within it)."""
        return self.settings.sim_start.date()

    def resource(self) -> SmartShelfResource:
        """The code location's resource for this run: its database, Delta root and clock."""
        resource = SmartShelfResource.from_settings(self.settings)
        return SmartShelfResource(**{**resource.model_dump(),
                                     "clock_key_prefix": self.clock_prefix})


@pytest.fixture(scope="module")
def pipeline(settings, spark, tmp_path_factory):
    """Simulator (with bad events) -> Redis -> bridge -> Kafka -> every streaming query until
    drained -> Delta, once for the module."""
    import redis

    tmp = tmp_path_factory.mktemp("e2e")
    own = private_database(settings, delta_root_override=str(tmp / "delta"))
    client = redis.Redis.from_url(own.redis_url)
    clock_prefix, stream_prefix = f"e2e-{uuid.uuid4().hex[:8]}:", f"e2e-{uuid.uuid4().hex[:8]}:"
    ctx = private_context(own, client, clock_prefix, tmp)
    assert ctx.delta_root == own.delta_root
    try:
        # At max rate the simulation moves its clock itself; the queries check timestamps
        # against it and the alert engines read its ticks.
        sim = simulate(own, SimulateOptions(
            until=own.sim_start + SIMULATED, speed=None, bad_event_rate=0.02, effects=False,
            stream_prefix=stream_prefix, clock_key_prefix=clock_prefix,
            clock_topic=ctx.topic("clock_ticks")), progress=lambda _m: None)
        bridge_into(ctx, own, stream_prefix)
        for query in ORDER:
            run_to_end(spark, ctx, query)
        yield PipelineRun(own, ctx, sim, clock_prefix)
    finally:
        drop_topics(ctx)
        drop_redis_keys(client, clock_prefix, stream_prefix)
        client.close()
        drop_database(settings, own)


def test_a_simulated_morning_with_bad_events_agrees_exactly_with_the_ledger(pipeline):
    ctx, sim = pipeline.ctx, pipeline.sim
    assert sim.events_emitted > 1000
    bad = sum(i.count for i in sim.injectors)
    assert bad > 10

    report = verify(pipeline.settings, stores=["S001"])
    assert report.ok, "\n".join(report.lines()[:60])
    assert report.bad_events == bad and not report.missing_dead_letters

    dead = delta_rows(ctx, "raw/dead_letter")
    assert len(dead) == bad and all(r["reason"] for r in dead)
    # Found in the one Spark query of the platform, named after the query that reads the topic.
    reporter = {"shelf_events": "shelf_aggregator", "foot_traffic": "foot_traffic_raw_sink",
                "pos_transactions": "batch_state_updater", "wh_events": "wh_aggregator"}
    assert all(r["detected_by"] == reporter[r["source"].removeprefix(ctx.topic_prefix)]
               for r in dead)
    raw = delta_rows(ctx, "raw/shelf_events") + delta_rows(ctx, "raw/pos_transactions") \
        + delta_rows(ctx, "raw/foot_traffic")
    assert len(raw) == len({r["event_id"] for r in raw}) == sim.events_emitted
    alerts = delta_rows(ctx, "ops/alerts")
    assert alerts, "three hours of shopping empty some shelves"
    assert len({r["alert_id"] for r in alerts}) == len(alerts)
    plans = delta_rows(ctx, "ops/shelf_restock_plan")
    refills = {r["shelf_id"] for r in alerts if r["alert_type"] == "refill_request"}
    assert {p["shelf_id"] for p in plans} == refills, "one plan per shelf that asked for one"


Evaluations = dict[tuple[str, str], dg.AssetCheckEvaluation]


def evaluations(result: dg.ExecuteInProcessResult) -> Evaluations:
    return {(e.asset_key.to_user_string(), e.check_name): e
            for e in result.get_asset_check_evaluations()}


def failures(found: Evaluations) -> dict:
    return {key: {k: v.value for k, v in e.metadata.items()}
            for key, e in found.items() if not e.passed}


def test_the_day_s_features_and_every_asset_check_of_the_code_location_pass(pipeline):
    """Every check of `smart_shelf_platform.definitions:defs` applies to this run (none is left
    out): the reference and ledger checks read its database, the state, freshness and
    conservation checks its Delta root and clock, the feature checks the day's partition. The
    forecasting checks are partitioned by supplier cutoff and need a cutoff's training set and
    forecast: test_forecasting_assets.py runs them."""
    definitions = build_definitions(pipeline.settings)
    forecasting = dg.AssetSelection.checks_for_assets(*FORECAST_CHECKED)
    every_check = {(k.asset_key.to_user_string(), k.name)
                   for k in definitions.resolve_asset_graph().asset_check_keys
                   if k.asset_key not in FORECAST_CHECKED}
    everything = [*definitions.assets, *definitions.asset_checks]
    resources = {RESOURCE_KEY: pipeline.resource()}  # the run's database, Delta root and clock
    day = pipeline.day
    assert (pipeline.settings.sim_start + SIMULATED).date() == day, "one day's partition"

    # The day's partition: the Delta features, their (blocking) checks, the Postgres upsert.
    features = dg.materialize(
        everything, partition_key=day.isoformat(), resources=resources, raise_on_error=False,
        selection=dg.AssetSelection.assets(*MATERIALIZED_KEYS)
        | dg.AssetSelection.checks_for_assets(FEATURES_DELTA_KEY))
    feature_checks = evaluations(features)
    assert features.success and feature_checks, failures(feature_checks)
    assert {e.asset_key for e in features.get_asset_materialization_events()} == \
        MATERIALIZED_KEYS

    # Every other check, once, on what the run left behind (none of them is partitioned).
    others = dg.materialize(
        everything, resources=resources, raise_on_error=False,
        selection=dg.AssetSelection.all_asset_checks()
        - dg.AssetSelection.checks_for_assets(FEATURES_DELTA_KEY) - forecasting)
    found = {**feature_checks, **evaluations(others)}
    assert set(found) == every_check, {"not run": every_check - set(found)}
    assert not failures(found), failures(found)
    assert others.success

    # One row per catalogue shelf, in Delta and Postgres; the day's sales are the ledger's.
    rows = feature_store.read_delta_partition(pipeline.settings.delta_root, day).to_pylist()
    with psycopg.connect(pipeline.settings.postgres_dsn()) as conn:
        (shelves,) = conn.execute("SELECT count(*) FROM ref.store_inventory_snapshot").fetchone()
        (upserted,) = conn.execute("SELECT count(*) FROM analytics.shelf_daily_features "
                                   "WHERE feature_date = %s", (day,)).fetchone()
        (sold,) = conn.execute("SELECT coalesce(sum(sold_units), 0) FROM sim.ledger_daily_sales "
                               "WHERE sale_date = %s", (day,)).fetchone()
    assert len(rows) == len({(r["store_id"], r["shelf_id"]) for r in rows}) == shelves == upserted
    assert sum(r["sales_qty"] for r in rows) == sold > 0
    # The checks saw this run: its clock (a lag, not "never run"), its ledger and Delta state.
    fresh = found[("delta/cleansed/shelf_state", FRESH_WITHIN_LAG)]
    assert fresh.metadata["lag_minutes"].value <= 60
    conserved = found[("delta/cleansed/shelf_batch_state", MATCHES_LEDGER)]
    assert conserved.metadata["stores"].value == ["S001"] and conserved.metadata["keys"].value


def test_the_report_command_on_the_run_matches_the_ledger_and_the_platform_s_tables(pipeline):
    """`smart-shelf report --json` with the run's settings: lost sales and waste are the
    ledger's, alerts and plans the ops tables', stock the cleansed state's (one day, so its
    end is now)."""
    from collections import Counter

    from typer.testing import CliRunner

    from smart_shelf_platform.cli import app

    ctx, day = pipeline.ctx, pipeline.day
    result = CliRunner().invoke(app, ["report", "--json"], env=pipeline.settings.as_env())
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    store = report["stores"]["S001"]
    assert report["window"] == {"from": day.isoformat(), "to": day.isoformat()}
    assert store == report["total"], "one store: its figures are the total"

    with psycopg.connect(pipeline.settings.postgres_dsn()) as conn:
        sold, lost = conn.execute("SELECT sum(sold_units), sum(lost_units) "
                                  "FROM sim.ledger_daily_sales").fetchone()
        shelf_waste, wh_waste = conn.execute(
            "SELECT coalesce(sum(shelf_units), 0), coalesce(sum(warehouse_units), 0) "
            "FROM sim.ledger_daily_waste").fetchone()
    assert store["units_sold"] == sold > 0
    assert store["lost_sales"]["units"] == lost
    assert store["lost_sales"]["pct_of_demand"] == round(100 * lost / (sold + lost), 2)
    assert report["waste_source"].startswith("ledger")
    assert (store["waste"]["shelf_units"], store["waste"]["warehouse_units"]) == \
        (shelf_waste, wh_waste)

    alerts = delta_rows(ctx, "ops/alerts")
    assert {k: v for k, v in store["alerts"]["by_type"].items() if v} == \
        Counter(a["alert_type"] for a in alerts)
    assert {k: v for k, v in store["alerts"]["by_status"].items() if v} == \
        Counter(a["status"] for a in alerts)
    plans = delta_rows(ctx, "ops/shelf_restock_plan")
    assert {k: v for k, v in store["restock_plans"].items() if v} == \
        Counter(p["status"] for p in plans)
    orders = delta_rows(ctx, "ops/wh_supplier_orders")
    assert store["supplier_orders"]["placed"] == len(orders)

    # A run within one day: its end-of-day stock is the current state, over 3 simulated hours.
    on_hand = sum(r["current_stock"] for r in delta_rows(ctx, "cleansed/shelf_state")) + sum(
        r["wh_current_stock"] for r in delta_rows(ctx, "cleansed/wh_state"))
    cover = store["stock_cover"]
    assert cover["simulated_days"] == round(SIMULATED / timedelta(days=1), 3)
    assert cover["average_stock_units"] == on_hand > 0
    assert cover["average_daily_sold"] == round(sold / (SIMULATED / timedelta(days=1)), 2)
    assert cover["days"] == round(on_hand / (sold / (SIMULATED / timedelta(days=1))), 2)

    table = CliRunner().invoke(app, ["report", "--store", "S001"],
                               env=pipeline.settings.as_env())
    assert table.exit_code == 0 and f"report: {day} to {day}" in table.stdout
    assert "lost sales, units" in table.stdout
