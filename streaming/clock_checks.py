"""Checks of a record's time against the simulated clock: an event stamped in the future, before
the simulation began or too late to act on, a clock tick the clock never sent.

Apart from the contract checks (`contract_checks`) because they depend on the clock's state, not
on the record alone: the same record passes at one simulated moment and is refused at another.
The bounds are read from Redis on the driver once per micro-batch (`read_clock_bounds`), so the
check itself (`clock_bounds_reason`) stays a pure DataFrame -> DataFrame function that adds its
reasons to `_reason`. `later_than` and `earlier_than` compare a time column with a moment
without making Spark compile new code each batch.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import redis
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from smart_shelf_platform.clock import ClockBounds, RedisClock, as_utc
from streaming.contract_checks import append_reason

log = logging.getLogger(__name__)

FUTURE_TOLERANCE = timedelta(days=1)


def clock_bounds_reason(df: DataFrame, bounds: ClockBounds | None,
                        lateness: timedelta) -> DataFrame:
    """Flag times the simulated clock rules out; a bound the clock has not set is not checked.

    Events (`timestamp`): after now + a day ("in the future"), before the clock's start, or
    more than `lateness` before now (too late to act on). Ticks (`sim_time`): after the clock's
    horizon (the clock never sent them: a forged tick would expire every lot) or before its
    start. `bounds` is read on the driver once per micro-batch (`read_clock_bounds`), so the
    frame stays pure.
    """
    if bounds is None:
        return df
    start, now, horizon = bounds.start, bounds.now, bounds.horizon
    if "timestamp" in df.columns:  # state records carry no event time
        stamp = F.col("timestamp")
        if now is not None:
            df = append_reason(df, later_than(stamp, now + FUTURE_TOLERANCE),
                               "timestamp in the future")
            df = append_reason(df, earlier_than(stamp, now - lateness),
                               f"timestamp more than {lateness / timedelta(hours=1):g} h "
                               "before the simulated now: too late")
        if start is not None:
            df = append_reason(df, earlier_than(stamp, start),
                               "timestamp before the simulation's start")
    if "sim_time" in df.columns:
        tick = F.col("sim_time")
        if horizon is not None:
            df = append_reason(df, later_than(tick, horizon), "tick ahead of the clock")
        if start is not None:
            df = append_reason(df, earlier_than(tick, start), "tick before the clock's start")
    return df


# Spark writes a timestamp literal into the code it generates, so a bound that moves every
# micro-batch would compile new classes every batch (a quarter of the JVM's CPU). A text literal
# is passed by reference: compared as UTC text, the bound changes and the code stays the same.
_TIME_TEXT, _PY_TIME_TEXT = "yyyy-MM-dd HH:mm:ss.SSSSSS", "%Y-%m-%d %H:%M:%S.%f"


def later_than(column: Column, moment: datetime) -> Column:
    return F.date_format(column, _TIME_TEXT) > F.lit(as_utc(moment).strftime(_PY_TIME_TEXT))


def earlier_than(column: Column, moment: datetime) -> Column:
    return F.date_format(column, _TIME_TEXT) < F.lit(as_utc(moment).strftime(_PY_TIME_TEXT))


def read_clock_bounds(clock: RedisClock) -> ClockBounds | None:
    """The clock's bounds, or None when Redis is unreachable.

    Time checks are plausibility checks: skipping them for a batch is better than stopping
    ingestion because the clock's store is away. Ticks stay safe then: the queries that act on
    them take each minute once, in order (`driver_query.new_ticks`).
    """
    try:
        return clock.bounds()
    except redis.RedisError as exc:
        log.warning("no simulated time (%s): time checks skipped for this batch", exc)
        return None
