"""The cutoff barrier's record of a clock that gave up, and its check in Dagster.

Real Redis (the test stack's) under a key prefix of each test's own, an ephemeral Dagster
instance, and the definitions of the default settings; no simulation runs.
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import pytest

from smart_shelf_platform import cutoff_barrier
from smart_shelf_platform.clock import ClockKeys
from smart_shelf_platform.defs.forecasting.assets import PREDICTIONS_KEY
from smart_shelf_platform.defs.forecasting.checks import BARRIER_CHECK_KEY, forecasting_checks
from smart_shelf_platform.defs.forecasting.sensors import BARRIER_SENSOR_NAME
from smart_shelf_platform.defs.partitions import cutoff_at_or_after, cutoff_cron, cutoff_partitions
from smart_shelf_platform.defs.resources import SmartShelfResource
from smart_shelf_platform.ml.cutoff import ForecastConfig

pytestmark = pytest.mark.integration

PUBLISHED = {"rows": 12, "model_version": "none", "units_ordered": 40}


@pytest.fixture
def cutoffs(settings) -> dg.TimeWindowPartitionsDefinition:
    return cutoff_partitions(settings.sim_start,
                             cutoff_cron(ForecastConfig.from_settings(settings).schedule))


@pytest.fixture
def resource(settings, prefix) -> SmartShelfResource:
    return SmartShelfResource(**{**SmartShelfResource.from_settings(settings).model_dump(),
                                 "clock_key_prefix": prefix})


def three_cutoffs(settings, cutoffs):
    """The first three cutoffs after the simulation's first day (which has none of its own)."""
    first = cutoff_at_or_after(cutoffs, settings.sim_start + timedelta(days=1))
    second = cutoff_at_or_after(cutoffs, first + timedelta(minutes=1))
    return first, second, cutoff_at_or_after(cutoffs, second + timedelta(minutes=1))


def test_a_barrier_that_times_out_records_how_long_the_clock_waited(settings, redis_conn,
                                                                      prefix, cutoffs):
    first, second, _ = three_cutoffs(settings, cutoffs)
    assert cutoff_barrier.wait_until_landed(redis_conn, prefix, first, timeout=0.3) is None
    gave_up = cutoff_barrier.outcome(redis_conn, prefix, first)
    assert gave_up.landed is None and gave_up.timed_out["waited_seconds"] >= 0.3
    assert gave_up.timed_out["gave_up_at"].endswith("Z")

    cutoff_barrier.mark_landed(redis_conn, prefix, second, PUBLISHED)
    assert cutoff_barrier.wait_until_landed(redis_conn, prefix, second, timeout=0.3) == PUBLISHED
    assert cutoff_barrier.outcome(redis_conn, prefix, second).timed_out is None
    assert [o.cutoff for o in cutoff_barrier.outcomes(redis_conn, prefix, second)] == [
        first, second]

    cutoff_barrier.forget(redis_conn, prefix)
    assert cutoff_barrier.outcomes(redis_conn, prefix, second) == []


def test_the_sensor_reports_each_passed_cutoff_s_barrier_once(settings, redis_conn, prefix,
                                                              cutoffs, resource):
    from smart_shelf_platform.definitions import build_definitions

    landed, timed_out, later = three_cutoffs(settings, cutoffs)
    key = lambda cutoff: cutoff.strftime(cutoffs.fmt)  # noqa: E731
    cutoff_barrier.mark_landed(redis_conn, prefix, landed, PUBLISHED)
    cutoff_barrier.mark_timed_out(redis_conn, prefix, timed_out, 300.0)
    cutoff_barrier.mark_landed(redis_conn, prefix, later, PUBLISHED)  # the clock is not there yet
    definitions = build_definitions(settings)
    sensor = definitions.resolve_sensor_def(BARRIER_SENSOR_NAME)

    with dg.DagsterInstance.ephemeral() as instance:
        def evaluate(cursor: str | None):
            context = dg.build_sensor_context(instance=instance, cursor=cursor,
                                              resources={"smart_shelf": resource},
                                              definitions=definitions)
            tick = sensor.evaluate_tick(context)
            for event in tick.asset_events:  # what the daemon does with them
                instance.report_runless_asset_event(event)
            return tick

        assert "has not run" in evaluate(None).skip_message
        redis_conn.set(ClockKeys(prefix).now, (timed_out + timedelta(minutes=1)).isoformat())
        first = evaluate(None)
        found = {e.partition: e for e in first.asset_events}
        assert set(found) == {key(landed), key(timed_out)} and first.cursor == key(timed_out)
        assert all(e.asset_check_key == BARRIER_CHECK_KEY for e in found.values())
        failed = found[key(timed_out)]
        assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR
        assert failed.metadata["waited_seconds"].value == 300.0
        assert failed.metadata["plans"].value == "the rule's"
        assert "gave up: the rule's plans stood" in failed.description
        assert found[key(landed)].passed
        assert found[key(landed)].metadata["published"].value == PUBLISHED

        status = {i.partition_key: i.latest_execution_status.value
                  for i in instance.event_log_storage.get_asset_check_partition_info(
                      [BARRIER_CHECK_KEY])}
        assert status == {key(landed): "SUCCEEDED", key(timed_out): "FAILED"}

        again = evaluate(first.cursor)
        assert not again.asset_events and "no cutoff passed since" in again.skip_message

        redis_conn.set(ClockKeys(prefix).now, later.isoformat())
        last = evaluate(first.cursor)
        assert [(e.partition, e.passed) for e in last.asset_events] == [(key(later), True)]


def test_the_forecast_run_evaluates_the_same_check_from_the_barrier_s_marks(settings, redis_conn,
                                                                            prefix, cutoffs,
                                                                            resource):
    landed, timed_out, _ = three_cutoffs(settings, cutoffs)
    cutoff_barrier.mark_landed(redis_conn, prefix, landed, PUBLISHED)
    cutoff_barrier.mark_timed_out(redis_conn, prefix, timed_out, 300.0)

    # A stand-in for the forecast, which needs a day of features: the check reads only Redis.
    @dg.asset(key=PREDICTIONS_KEY, partitions_def=cutoffs)
    def predictions() -> None:
        return None

    selection = (dg.AssetSelection.assets(PREDICTIONS_KEY).without_checks()
                 | dg.AssetSelection.checks(BARRIER_CHECK_KEY))

    def check(cutoff) -> dg.AssetCheckEvaluation:
        result = dg.materialize([predictions, *forecasting_checks(cutoffs)], selection=selection,
                                partition_key=cutoff.strftime(cutoffs.fmt),
                                resources={"smart_shelf": resource})
        [evaluation] = result.get_asset_check_evaluations()
        return evaluation

    assert check(landed).passed
    failed = check(timed_out)
    assert not failed.passed and failed.metadata["waited_seconds"].value == 300.0
