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
in the simulator's log, and the barrier records that it gave up (hash
`<clock prefix>forecast_timeouts`, field = the cutoff's ISO time, value = how long the clock
waited and when it gave up). A failed run cannot report on itself, so Dagster learns of it from
these two hashes: the sensor `cutoff_barrier_checks` turns each cutoff the clock has passed into
an evaluation of the check `forecasts_landed_before_cutoff` (`defs/forecasting/`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import redis

from smart_shelf_platform.clock import iso_utc, parse_utc

POLL_SECONDS = 0.2


def landed_key(clock_prefix: str) -> str:
    return f"{clock_prefix}forecasts"


def timeouts_key(clock_prefix: str) -> str:
    return f"{clock_prefix}forecast_timeouts"


@dataclass(frozen=True)
class Outcome:
    """What the barrier knows of one cutoff: what its run published (None: nothing landed) and,
    when the clock gave up waiting for it, how long it waited and when (None: it did not)."""

    cutoff: datetime
    landed: dict | None
    timed_out: dict | None


def mark_landed(client: redis.Redis, clock_prefix: str, cutoff: datetime, published: dict) -> None:
    """Record that `cutoff`'s forecasts are on their topic (`published`: counts for the log)."""
    client.hset(landed_key(clock_prefix), iso_utc(cutoff), json.dumps(published))


def landed(client: redis.Redis, clock_prefix: str, cutoff: datetime) -> dict | None:
    raw = client.hget(landed_key(clock_prefix), iso_utc(cutoff))
    return None if raw is None else json.loads(raw)


def mark_timed_out(client: redis.Redis, clock_prefix: str, cutoff: datetime,
                   waited_seconds: float) -> None:
    """Record that the clock gave up waiting for `cutoff`'s forecasts after `waited_seconds`
    (wall seconds), now: its orders follow the rule's plans."""
    client.hset(timeouts_key(clock_prefix), iso_utc(cutoff), json.dumps({
        "waited_seconds": round(waited_seconds, 1),
        "gave_up_at": iso_utc(datetime.now(timezone.utc), "seconds")}))


def outcome(client: redis.Redis, clock_prefix: str, cutoff: datetime) -> Outcome:
    raw = client.hget(timeouts_key(clock_prefix), iso_utc(cutoff))
    return Outcome(cutoff, landed(client, clock_prefix, cutoff),
                   None if raw is None else json.loads(raw))


def outcomes(client: redis.Redis, clock_prefix: str, until: datetime) -> list[Outcome]:
    """The cutoffs at or before `until` that landed or timed out, oldest first (with a client
    that decodes responses or one that does not)."""
    def text(raw: bytes | str) -> str:
        return raw.decode() if isinstance(raw, bytes) else raw

    marks, timeouts = ({text(f): json.loads(v) for f, v in client.hgetall(key).items()}
                       for key in (landed_key(clock_prefix), timeouts_key(clock_prefix)))
    cutoffs = sorted(c for c in map(parse_utc, {*marks, *timeouts}) if c <= until)
    return [Outcome(c, marks.get(iso_utc(c)), timeouts.get(iso_utc(c))) for c in cutoffs]


def wait_until_landed(client: redis.Redis, clock_prefix: str, cutoff: datetime,
                      timeout: float) -> dict | None:
    """What the cutoff's run published, once it has; None when `timeout` seconds pass first,
    and then the timeout is recorded (`mark_timed_out`)."""
    started = time.monotonic()
    while True:
        found = landed(client, clock_prefix, cutoff)
        if found is not None:
            return found
        waited = time.monotonic() - started
        if waited >= timeout:
            mark_timed_out(client, clock_prefix, cutoff, waited)
            return None
        time.sleep(POLL_SECONDS)


def forget(client: redis.Redis, clock_prefix: str) -> None:
    """A new simulation starts with no cutoff landed or timed out."""
    client.delete(landed_key(clock_prefix), timeouts_key(clock_prefix))
