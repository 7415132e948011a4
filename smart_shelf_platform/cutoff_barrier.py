"""The cutoff barrier: a cutoff's forecasts reach the supplier manager before the cutoff minute.

With `SMART_SHELF_SUPPLIER_RULE=forecast`, a cutoff's Dagster forecast run publishes every
shelf's forecast on the `ml_predictions` topic, then marks the cutoff as landed in Redis, next to
the simulated clock's keys (hash `<clock prefix>forecasts`, field = the cutoff's ISO time, value =
what the run published). The simulator holds its clock just before each cutoff minute, as before
the platform's other held minutes, until the mark is there, and then lets the streaming queries
read what the run published: the supplier manager has the forecasts when the cutoff's tick comes,
at any clock speed and in decision rounds alike.

A run that never lands (it failed, or Dagster is down) holds the clock at most
`SMART_SHELF_FORECAST_BARRIER_SECONDS`; the cutoff then orders by the rule's plans, with an error
in the simulator's log.
"""

from __future__ import annotations

import json
import time
from datetime import datetime

import redis

from smart_shelf_platform.clock import iso_utc

POLL_SECONDS = 0.2


def landed_key(clock_prefix: str) -> str:
    return f"{clock_prefix}forecasts"


def mark_landed(client: redis.Redis, clock_prefix: str, cutoff: datetime, published: dict) -> None:
    """Record that `cutoff`'s forecasts are on their topic (`published`: counts for the log)."""
    client.hset(landed_key(clock_prefix), iso_utc(cutoff), json.dumps(published))


def landed(client: redis.Redis, clock_prefix: str, cutoff: datetime) -> dict | None:
    raw = client.hget(landed_key(clock_prefix), iso_utc(cutoff))
    return None if raw is None else json.loads(raw)


def wait_until_landed(client: redis.Redis, clock_prefix: str, cutoff: datetime,
                      timeout: float) -> dict | None:
    """What the cutoff's run published, once it has; None when `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        found = landed(client, clock_prefix, cutoff)
        if found is not None or time.monotonic() >= deadline:
            return found
        time.sleep(POLL_SECONDS)


def forget(client: redis.Redis, clock_prefix: str) -> None:
    """A new simulation starts with no cutoff landed."""
    client.delete(landed_key(clock_prefix))
