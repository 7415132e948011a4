"""When forecasting runs: the simulated-clock sensor, and wall-clock schedules in production.

Simulated time runs at any speed, so the cutoff runs follow the shared clock (`sim:now`), as the
daily features do: once simulated time reaches a cutoff minus SMART_SHELF_FORECAST_LEAD_MINUTES,
the sensor requests that cutoff's two runs (training and forecast, `assets.py`), each with the
partition key in its run key, so a cutoff is requested once. It waits for two things first, so
that a cutoff's forecast is the same however fast the clock ran: the daily features of the
cutoff's origin day (the last complete day; its run follows the day's end) and the end of the
previous cutoff's training run (its promotion decides the champion this cutoff forecasts with).
In `SMART_SHELF_ENV=prod` there is
no simulated clock: schedules on the wall clock request the daily features after midnight and the
cutoff runs at the same lead before each cutoff.

A second sensor, `cutoff_barrier_checks`, reports the check `forecasts_landed_before_cutoff` of
each cutoff the simulated clock has passed, from the barrier's marks in Redis: a run that failed
or never ran cannot evaluate it, and that is the cutoff the check must fail for.
"""


from datetime import datetime, timedelta, timezone

import dagster as dg

from smart_shelf_platform import cutoff_barrier
from smart_shelf_platform.defs.analytics.assets import FEATURES_DELTA_KEY
from smart_shelf_platform.defs.analytics.sensors import FEATURES_JOB
from smart_shelf_platform.defs.forecasting.assets import (
    CHAMPION_KEY, FORECAST_JOB, FORECAST_KEYS, REGISTRY_KEY,
    TRAINING_JOB, TRAINING_SET_KEY,
)
from smart_shelf_platform.defs.forecasting.checks import BARRIER_CHECK_KEY, barrier_result
from smart_shelf_platform.defs.partitions import cutoff_at_or_after
from smart_shelf_platform.defs.resources import SmartShelfResource
from smart_shelf_platform.ml.intervals import cutoff_window
from smart_shelf_platform.rules.supplier import SupplierSchedule

SENSOR_NAME = "simulated_cutoff_forecasts"
BARRIER_SENSOR_NAME = "cutoff_barrier_checks"
MAX_CUTOFFS_PER_EVALUATION = 12


def cutoff_jobs() -> list:
    training = dg.define_asset_job(
        TRAINING_JOB, selection=dg.AssetSelection.assets(TRAINING_SET_KEY, REGISTRY_KEY,
                                                         CHAMPION_KEY),
        description="A cutoff's training set, model (registered, gated) and its promotion.")
    forecast = dg.define_asset_job(
        FORECAST_JOB, selection=dg.AssetSelection.assets(*FORECAST_KEYS),
        description="A cutoff's forecasts and orders from the current champion, with checks.")
    return [training, forecast]


def cutoffs_to_request(cutoffs: dg.TimeWindowPartitionsDefinition, last_requested: str | None,
                       sim_now: datetime, lead: timedelta,
                       limit: int = MAX_CUTOFFS_PER_EVALUATION) -> list[str]:
    """Keys of the cutoffs after `last_requested` (from the first one after the simulation's
    first day when None: a cutoff on that day has no complete day behind it) whose instant minus
    `lead` is at or before `sim_now`, oldest first, at most `limit`."""
    first_day = cutoffs.start.astimezone(timezone.utc).date()
    after = (cutoffs.time_window_for_partition_key(last_requested).end if last_requested
             else datetime.combine(first_day + timedelta(days=1), datetime.min.time(),
                                   tzinfo=timezone.utc))
    tick, keys = cutoff_at_or_after(cutoffs, after), []
    while len(keys) < limit and tick - lead <= sim_now:
        keys.append(tick.strftime(cutoffs.fmt))
        tick = cutoff_at_or_after(cutoffs, tick + timedelta(minutes=1))
    return keys


def waiting_for(key: str, origin: str, previous: str | None, materialized_days: set[str],
                previous_training_finished: bool) -> str | None:
    """What the cutoff `key` still waits for before its runs are requested (None: nothing):
    the features of its `origin` day, and the end of the `previous` cutoff's training run."""
    if origin not in materialized_days:
        return f"cutoff {key} waits for the daily features of {origin}"
    if previous is not None and not previous_training_finished:
        return f"cutoff {key} waits for the training run of cutoff {previous} to end"
    return None


def simulated_cutoff_sensor(cutoffs: dg.TimeWindowPartitionsDefinition, lead_minutes: int,
                            schedule: SupplierSchedule) -> dg.SensorDefinition:
    training, forecast = cutoff_jobs()
    lead = timedelta(minutes=lead_minutes)

    def training_finished(instance: dg.DagsterInstance, key: str) -> bool:
        runs = instance.get_runs(filters=dg.RunsFilter(
            job_name=TRAINING_JOB, tags={"dagster/partition": key}), limit=1)
        return bool(runs) and runs[0].is_finished

    @dg.sensor(name=SENSOR_NAME, jobs=[training, forecast], minimum_interval_seconds=10,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Request each cutoff's training and forecast runs once simulated "
                           "time reaches the cutoff minus the lead.")
    def simulated_cutoff_forecasts(context: dg.SensorEvaluationContext,
                                   smart_shelf: SmartShelfResource):
        sim_now = smart_shelf.sim_now()
        if sim_now is None:
            return dg.SkipReason("the simulated clock has not run yet")
        due = cutoffs_to_request(cutoffs, context.cursor or None, sim_now, lead)
        if not due:
            return dg.SkipReason(f"no cutoff within {lead_minutes} simulated minutes of "
                                 f"{sim_now.isoformat()}")
        days = context.instance.get_materialized_partitions(FEATURES_DELTA_KEY)
        keys, previous, waiting = [], context.cursor or None, None
        for key in due:
            cutoff = cutoffs.time_window_for_partition_key(key).start.astimezone(timezone.utc)
            waiting = waiting_for(key, cutoff_window(schedule, cutoff).origin.isoformat(),
                                  previous, days,
                                  previous is None or training_finished(context.instance,
                                                                        previous))
            if waiting:
                break
            keys.append(key)
            previous = key
        if not keys:
            return dg.SkipReason(waiting)
        context.log.info("simulated now %s: requesting the forecasting runs of %s",
                         sim_now.isoformat(), ", ".join(keys))
        requests = [dg.RunRequest(run_key=f"{job.name}:{k}", partition_key=k, job_name=job.name)
                    for k in keys for job in (training, forecast)]
        return dg.SensorResult(run_requests=requests, cursor=keys[-1])

    return simulated_cutoff_forecasts


def barrier_check_sensor(cutoffs: dg.TimeWindowPartitionsDefinition) -> dg.SensorDefinition:
    """Each cutoff the simulated clock has passed, landed or given up on, gets its evaluation of
    `forecasts_landed_before_cutoff` once (the cursor is the last cutoff reported), from outside
    any run: the failure is for the cutoff whose run never got to evaluate it."""

    @dg.sensor(name=BARRIER_SENSOR_NAME, minimum_interval_seconds=10,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Report, once per cutoff the simulated clock has passed, whether its "
                           "forecasts landed before the clock's barrier gave up waiting.")
    def cutoff_barrier_checks(context: dg.SensorEvaluationContext,
                              smart_shelf: SmartShelfResource):
        sim_now = smart_shelf.sim_now()
        if sim_now is None:
            return dg.SkipReason("the simulated clock has not run yet")
        client = smart_shelf.redis()
        try:
            decided = cutoff_barrier.outcomes(client, smart_shelf.clock_key_prefix, sim_now)
        finally:
            client.close()
        # Partition keys sort as their instants do.
        due = {o.cutoff.strftime(cutoffs.fmt): o for o in decided}
        due = {k: o for k, o in due.items() if not context.cursor or k > context.cursor}
        if not due:
            return dg.SkipReason(f"no cutoff passed since {context.cursor or 'the start'}")
        evaluations = []
        for key, outcome in due.items():
            result = barrier_result(outcome)
            evaluations.append(dg.AssetCheckEvaluation(
                asset_key=BARRIER_CHECK_KEY.asset_key, check_name=BARRIER_CHECK_KEY.name,
                passed=result.passed, metadata=result.metadata, severity=result.severity,
                description=result.description, partition=key))
            (context.log.info if result.passed else context.log.error)(
                "cutoff %s: %s", key, result.description)
        return dg.SensorResult(asset_events=evaluations, cursor=max(due))

    return cutoff_barrier_checks


def cutoff_key_at(cutoffs: dg.TimeWindowPartitionsDefinition, run_at: datetime,
                  lead_minutes: int) -> str:
    """The key of the cutoff a schedule tick at `run_at` prepares (the one `lead_minutes` on)."""
    moment = run_at.astimezone(timezone.utc) + timedelta(minutes=lead_minutes)
    return cutoff_at_or_after(cutoffs, moment).strftime(cutoffs.fmt)


def production_schedules(cutoffs: dg.TimeWindowPartitionsDefinition,
                         lead_minutes: int) -> list[dg.ScheduleDefinition]:
    """Wall-clock schedules: yesterday's features at 00:30, each cutoff's runs at the lead
    before it (the cron of the cutoffs, moved back by the lead within the same day). They name
    the jobs the sensors define."""
    minute, hour, _, _, weekdays = cutoffs.cron_schedule.split()
    at = int(hour) * 60 + int(minute) - lead_minutes
    if at < 0:
        raise ValueError(f"a lead of {lead_minutes} minutes reaches back before the cutoff's day")

    def features(context: dg.ScheduleEvaluationContext):
        day = context.scheduled_execution_time.astimezone(timezone.utc).date() - timedelta(days=1)
        return dg.RunRequest(run_key=f"{FEATURES_JOB}:{day}", partition_key=day.isoformat())

    schedules = [dg.ScheduleDefinition(name="daily_features_schedule", cron_schedule="30 0 * * *",
                                       job_name=FEATURES_JOB, execution_timezone="UTC",
                                       execution_fn=features)]
    for job_name in (TRAINING_JOB, FORECAST_JOB):
        def cutoff(context: dg.ScheduleEvaluationContext, job_name=job_name):
            key = cutoff_key_at(cutoffs, context.scheduled_execution_time, lead_minutes)
            return dg.RunRequest(run_key=f"{job_name}:{key}", partition_key=key)

        schedules.append(dg.ScheduleDefinition(
            name=f"{job_name}_schedule", cron_schedule=f"{at % 60} {at // 60} * * {weekdays}",
            job_name=job_name, execution_timezone="UTC", execution_fn=cutoff))
    return schedules
