"""The forecast deciding a supplier cutoff inside the closed loop (SMART_SHELF_SUPPLIER_RULE=forecast).

The whole loop of `test_replenishment_loop` (simulator with effects, bridge, every streaming query,
decision rounds) over a Thursday evening and the night after, with one cutoff at Fri 00:30 and its
slot at 01:30. Dagster does what its daemon does at a cutoff, in-process: once Thursday has
ended, the day's features, then the cutoff's forecast run (from a champion model the platform's
training code fitted on the shared pipeline run's features), while the simulator holds its clock
before the cutoff until the forecasts have landed. The cutoff's supplier orders must then be the
model's plans, and the run must still end exactly in the ledger's state.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from streamlit.testing.v1 import AppTest

from smart_shelf_platform.clock import ClockNotRunning, RedisClock
from smart_shelf_platform.defs.forecasting.assets import FORECAST_KEYS, forecasting_assets
from smart_shelf_platform.defs.forecasting.checks import (
    ONE_ROW_PER_SHELF, ORDERS_WITHIN_CAPACITY, QUANTILES_ORDERED, forecasting_checks,
)
from smart_shelf_platform.defs.partitions import cutoff_cron, cutoff_partitions
from smart_shelf_platform.defs.resources import SmartShelfResource
from smart_shelf_platform.ml import forecast_store, registry
from smart_shelf_platform.ml.cutoff import ForecastConfig
from smart_shelf_platform.ml.forecast import METHOD_MODEL
from smart_shelf_platform.settings import REPO_ROOT
from smart_shelf_platform.verify import verify
from smart_shelf_platform_tests.dashboard_support import app_env
from smart_shelf_platform_tests.streaming_support import delta_rows
from smart_shelf_platform_tests.test_daily_features import (
    evaluations, feature_definitions, run_features,
)
from smart_shelf_platform_tests.test_forecasting_assets import FIRST, history, train  # noqa: F401
from smart_shelf_platform_tests.test_replenishment_loop import (
    REPLAY, ROUNDS, closed_loop, final_state,
)

UTC = timezone.utc
START = datetime(2026, 1, 1, 21, 0, tzinfo=UTC)
CUTOFF = datetime(2026, 1, 2, 0, 30, tzinfo=UTC)
CUTOFF_KEY = "2026-01-02-00:30"
ORIGIN = date(2026, 1, 1)
SETTINGS = {"sim_start": START, "supplier_cutoff_days": "Fri", "supplier_cutoff_time": "00:30",
            "supplier_delivery_days": "Fri", "supplier_delivery_time": "01:30",
            "forecast_min_history_days": 1, "forecast_barrier_seconds": 300}
# The champion is registered as trained for a cutoff before this run's one.
CHAMPION_KEY = "2026-01-01-12:00"

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500),
              pytest.mark.skipif(not ROUNDS, reason="the cutoff's replay needs decision rounds")]


def forecast_definitions(own) -> list:
    config = ForecastConfig.from_settings(own)
    cutoffs = cutoff_partitions(own.sim_start, cutoff_cron(config.schedule))
    return [*feature_definitions(own), *forecasting_assets(config, cutoffs),
            *forecasting_checks(cutoffs)]


@contextmanager
def dagster_at_the_cutoff(champion: registry.Entry, ml_dir: Path, outcome: dict):
    """What the daemon does for this window, in-process: the champion in the loop's registry
    before the run; once simulated Thursday has ended, its features, then the cutoff's forecast
    run (the sensor's order). Their results land in `outcome`."""
    def alongside(own, ctx, clock_prefix: str):
        import redis

        with psycopg.connect(own.postgres_dsn()) as conn:
            registry.register(conn, ml_dir, champion.load(), CHAMPION_KEY, ORIGIN,
                              champion.metrics)
            registry.promote(conn, registry.version_for(CHAMPION_KEY))
        resource = SmartShelfResource(**{
            **SmartShelfResource.from_settings(own).model_dump(), "ml_dir": str(ml_dir),
            "clock_key_prefix": clock_prefix, "topic_prefix": ctx.topic_prefix})
        client = redis.Redis.from_url(own.redis_url)
        stop = threading.Event()

        def work() -> None:
            clock = RedisClock(client, clock_prefix)
            while not stop.is_set():
                try:
                    past_midnight = clock.now() >= datetime(2026, 1, 2, tzinfo=UTC)
                except ClockNotRunning:
                    past_midnight = False
                if past_midnight:
                    outcome["features"] = run_features(own, partition_key=ORIGIN.isoformat())
                    outcome["forecast"] = dg.materialize(
                        forecast_definitions(own), selection=list(FORECAST_KEYS),
                        partition_key=CUTOFF_KEY, raise_on_error=False,
                        resources={"smart_shelf": resource})
                    return
                time.sleep(0.2)

        @contextmanager
        def running():
            thread = threading.Thread(target=work, name="dagster-at-the-cutoff", daemon=True)
            thread.start()
            try:
                yield
            finally:
                stop.set()
                thread.join(timeout=600)
                client.close()
        return running()
    yield alongside


def store_for_the_start(tmp) -> dict:
    """The run's database holds the store made for its start (the lots' dates follow from it;
    the simulator refuses a database made for another), in a data folder of its own."""
    return {"sim_start": START, "data_dir": tmp / "data"}


@pytest.fixture(scope="module")
def forecast_loop(settings, history, tmp_path_factory):  # noqa: F811
    pipeline_settings, _, _ = history
    assert train(history, FIRST).get_asset_materialization_events(), "a model was trained"
    with psycopg.connect(pipeline_settings.postgres_dsn()) as conn:
        champion = registry.entry(conn, registry.version_for(FIRST))
    outcome: dict = {}
    ml_dir = tmp_path_factory.mktemp("ml")
    tmp = tmp_path_factory.mktemp("forecast-loop")
    with dagster_at_the_cutoff(champion, ml_dir, outcome) as alongside, closed_loop(
            settings, tmp, "forecast", update=SETTINGS, simulated=timedelta(hours=5),
            alongside=alongside, database=store_for_the_start(tmp)) as (own, ctx, sim):
        yield own, ctx, sim, outcome


def test_the_cutoff_s_forecasts_are_materialized_during_the_run_with_their_checks(
        forecast_loop):
    own, ctx, _, outcome = forecast_loop
    assert outcome["features"].success
    result = outcome["forecast"]
    assert result.success
    checks = evaluations(result)
    assert all(checks[name].passed
               for name in (ONE_ROW_PER_SHELF, QUANTILES_ORDERED, ORDERS_WITHIN_CAPACITY))
    rows = forecast_store.read_predictions(own.delta_root, CUTOFF)
    assert set(rows["model_version"].dropna()) == {registry.version_for(CHAMPION_KEY)}
    assert (rows["method"] == METHOD_MODEL).sum() > 0.9 * len(rows)


def test_the_cutoff_orders_exactly_the_model_s_plans(forecast_loop):
    """The clock waited for the forecasts: the supplier manager had them at the cutoff's tick, so
    the model decided every shelf. The rule's plans pending then (warehouses below their reorder
    point) were canceled, not ordered, and the cutoff's orders are the model's plans, shelf for
    shelf. (On this first evening the model, trained on a few evening hours, sees a week's stock
    on hand everywhere and orders nothing: the orders and its plans are both empty here; the
    supplier manager's own test covers a model plan becoming an order.)"""
    own, ctx, _, _ = forecast_loop
    rows = forecast_store.read_predictions(own.delta_root, CUTOFF).set_index("shelf_id")
    plans = delta_rows(ctx, "ops/wh_supplier_plan")
    canceled = [p for p in plans if p["status"] == "canceled"]
    assert canceled, "the rule had plans for the cutoff: without the forecast it would order"
    assert {(p["source"], p["updated_at"]) for p in canceled} == {("rule", CUTOFF)}
    assert {rows.at[p["shelf_id"], "method"] for p in canceled} == {METHOD_MODEL}
    model_plans = {p["shelf_id"]: p for p in plans if p["source"] == "model"}
    assert {s: p["suggested_qty"] for s, p in model_plans.items()} == {
        s: int(r.order_units) for s, r in rows.iterrows() if r.order_units > 0}
    assert all((p["created_at"], p["model_version"], p["order_quantile"]) == (
        CUTOFF, registry.version_for(CHAMPION_KEY), own.forecast_order_quantile)
        for p in model_plans.values())
    orders = [o for o in delta_rows(ctx, "ops/wh_supplier_orders") if o["cutoff_ts"] == CUTOFF]
    assert {o["shelf_id"] for o in orders} == set(model_plans)
    assert all(o["total_qty"] <= model_plans[o["shelf_id"]]["suggested_qty"] for o in orders)


def test_the_loop_with_the_forecast_ends_in_the_ledger_s_state(forecast_loop):
    own, _, _, _ = forecast_loop
    report = verify(own, stores=["S001"])
    assert all(not c.differences for c in report.comparisons.values()), report.lines()[:40]


def test_the_dashboard_s_forecasts_page_shows_the_champion_and_the_cutoff_s_forecasts(
        forecast_loop):
    own, _, _, _ = forecast_loop
    with app_env(own):
        at = AppTest.from_file(str(REPO_ROOT / "dashboard" / "app.py"), default_timeout=60)
        at.run()
        at.switch_page("views/forecasts.py")
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    champion = next(m for m in at.metric if m.label == "Champion")
    assert champion.value == f"{registry.MODEL_NAME} {registry.version_for(CHAMPION_KEY)}"
    rows = forecast_store.read_predictions(own.delta_root, CUTOFF)
    assert at.selectbox(key="fc_shelf").options == sorted(rows["shelf_id"])


@pytest.mark.skipif(not REPLAY, reason="runs the loop again: SMART_SHELF_TEST_LOOP_REPLAY=1 does")
def test_the_same_seed_with_the_forecast_replays_the_same_final_state(
        settings, forecast_loop, history, tmp_path_factory):  # noqa: F811
    """The run again from scratch, the same champion and seed: the forecast, the plans, the
    orders and every other table end row for row the same, and so does the world."""
    own, ctx, sim, _ = forecast_loop
    first = final_state((own, ctx, sim))
    pipeline_settings, _, _ = history
    with psycopg.connect(pipeline_settings.postgres_dsn()) as conn:
        champion = registry.entry(conn, registry.version_for(FIRST))
    tmp = tmp_path_factory.mktemp("forecast-replay")
    with dagster_at_the_cutoff(champion, tmp_path_factory.mktemp("ml"), {}) as alongside, \
            closed_loop(settings, tmp, "forecast", update=SETTINGS,
                        simulated=timedelta(hours=5), alongside=alongside,
                        database=store_for_the_start(tmp)) as run:
        again = final_state(run)
    differing = {name: (len(rows), len(set(rows) ^ set(again[name])))
                 for name, rows in first.items() if rows != again[name]}
    assert not differing, f"tables differing (rows, rows not in both): {differing}"
