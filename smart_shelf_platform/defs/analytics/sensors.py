"""The simulated-day sensor: compute each simulated day's features once the day has ended.

Simulated time runs at any speed (and stops when the clock does), so no cron schedule can say
when a day ends; this sensor reads the shared clock (`sim:now`) instead. Every simulated day that
ended since the cursor (the last day requested; the first partition's day when there is none)
becomes one run of the features job for that day's partition, with the partition key as run key,
so no day runs twice. A day is requested once simulated time is the freshness bound
(SMART_SHELF_FRESHNESS_LAG_MINUTES) past its end: by then the streaming outputs hold its last
events, unless they are late, which the freshness checks report.

A clock reset (a new simulation from the start) requests nothing again: days already requested
are recomputed by materializing their partitions by hand.
"""

from datetime import date, datetime, time, timedelta, timezone

import dagster as dg

from smart_shelf_platform.defs.analytics.assets import MATERIALIZED_KEYS
from smart_shelf_platform.defs.resources import SmartShelfResource

FEATURES_JOB = "shelf_daily_features_job"
SENSOR_NAME = "simulated_day_features"
DAY = timedelta(days=1)
MAX_DAYS_PER_EVALUATION = 31  # a clock far ahead is caught up a month per evaluation


def days_to_request(first_day: date, last_requested: date | None, sim_now: datetime,
                    settle: timedelta, limit: int = MAX_DAYS_PER_EVALUATION) -> list[date]:
    """Days after `last_requested` (from `first_day` when None) whose end plus `settle` is at or
    before `sim_now`, oldest first, at most `limit`."""
    day = first_day if last_requested is None else max(first_day, last_requested + DAY)
    days = []
    while (len(days) < limit
           and datetime.combine(day + DAY, time(0), tzinfo=timezone.utc) + settle <= sim_now):
        days.append(day)
        day += DAY
    return days


def features_job():
    """Both feature assets of one day (partitioned like them), with their checks: the Postgres
    upsert waits for the Delta partition's blocking checks."""
    return dg.define_asset_job(FEATURES_JOB, selection=dg.AssetSelection.assets(*MATERIALIZED_KEYS),
                               description="One simulated day's shelf features: the Delta "
                                           "partition, its checks, the Postgres upsert.")


def simulated_day_sensor(partitions: dg.TimeWindowPartitionsDefinition) -> dg.SensorDefinition:
    first_day = partitions.start.date()

    @dg.sensor(
        name=SENSOR_NAME,
        job=features_job(),
        description="Request the daily features of every simulated day that has ended.",
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def simulated_day_features(context: dg.SensorEvaluationContext,
                               smart_shelf: SmartShelfResource):
        sim_now = smart_shelf.sim_now()
        if sim_now is None:
            return dg.SkipReason("the simulated clock has not run yet")
        last = date.fromisoformat(context.cursor) if context.cursor else None
        days = days_to_request(first_day, last, sim_now, smart_shelf.freshness_bound)
        if not days:
            return dg.SkipReason(f"no simulated day ended since {last or 'the start'} "
                                 f"(simulated now {sim_now.isoformat()})")
        keys = [d.isoformat() for d in days]
        context.log.info("simulated now %s: requesting the features of %s", sim_now.isoformat(),
                         ", ".join(keys))
        return dg.SensorResult(run_requests=[dg.RunRequest(run_key=k, partition_key=k)
                                             for k in keys], cursor=keys[-1])

    return simulated_day_features
