"""The simulated clock: the only writer of the Redis keys `sim:now`, `sim:today`, `sim:position`
and of the Kafka topic `clock_ticks`: time is data, so every time-driven decision of the
platform follows the ticks, never the wall clock (docs/architecture.md).

Three layers:
- a pure core (`ClockState`, `minutes_crossed`, `tick_event`) that decides where time goes and which
  minute ticks a step produces, with no I/O, so it is unit-tested and replays identically;
- `RedisClock`, the reader every other process uses (`now()`, `today()`);
- `SimClock`, the driver: advance, publish the crossed minutes' ticks, wait for their delivery, then
  commit the new position. A crash after publishing and before committing re-publishes the same
  deterministic tick ids on restart (consumers dedupe by `tick_id`); no order of failures skips one.

Unlike the reference system's clock it resumes where it stopped instead of jumping
back to the start, writes now/today in one transaction, and does not drift with loop overhead.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import redis
from confluent_kafka import KafkaError, Producer

from smart_shelf_platform.settings import Settings

log = logging.getLogger(__name__)

MINUTE = timedelta(minutes=1)
DEFAULT_KEY_PREFIX = "sim:"
DEFAULT_TOPIC = "clock_ticks"
DELIVERY_TIMEOUT_S = 30.0
# Behind schedule by more than this (a stall, a suspended laptop), the schedule is re-anchored
# instead of bursting through the backlog as fast as possible.
MAX_CATCH_UP_S = 1.0
HOLD_MARGIN = timedelta(milliseconds=1)  # a held step stops this short of its minute


class ClockError(RuntimeError):
    """The clock could not advance safely (ticks not delivered, topic missing, bad position)."""


class ClockNotRunning(ClockError):
    """No clock has ever written the simulated time to Redis."""


class ClockConflict(ClockError):
    """Someone else changed the persisted position: two clocks must never run at once."""


# ------------------------------------------------------------------------------------------------
# Pure core
# ------------------------------------------------------------------------------------------------


def as_utc(t: datetime) -> datetime:
    """Aware UTC datetime; naive values are taken to be UTC already."""
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


def iso_utc(t: datetime, timespec: str = "auto") -> str:
    """ISO-8601 with a "Z" suffix, the platform's one timestamp format on the wire."""
    return as_utc(t).isoformat(timespec=timespec).replace("+00:00", "Z")


def parse_utc(text: str) -> datetime:
    return as_utc(datetime.fromisoformat(text))


def floor_minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def minutes_crossed(after: datetime, upto: datetime) -> list[datetime]:
    """Whole minutes m with `after < m <= upto`: a step that lands exactly on a minute ticks it."""
    first = floor_minute(after) + MINUTE
    count = (floor_minute(upto) - first) // MINUTE + 1
    return [first + i * MINUTE for i in range(max(count, 0))]


def decision_rounds(every_minutes: int) -> frozenset[str]:
    """The minutes of the day ("HH:MM") of every `every_minutes`-th minute from 00:00, when the
    platform decides in rounds (`Settings.decision_round_minutes`); empty when it does not."""
    if not every_minutes:
        return frozenset()
    return frozenset(f"{m // 60:02d}:{m % 60:02d}" for m in range(0, 1440, every_minutes))


def tick_id(minute: datetime) -> str:
    return iso_utc(minute)


def tick_event(minute: datetime, wall_time: datetime, speed: float) -> dict:
    """A `CLOCK_TICK` record. Everything but `wall_time` is a function of the minute alone."""
    return {
        "tick_id": tick_id(minute),
        "sim_time": iso_utc(minute),
        "sim_date": minute.date().isoformat(),
        "wall_time": iso_utc(wall_time, "milliseconds"),
        "speed": float(speed),
    }


@dataclass(frozen=True)
class ClockState:
    """Where the clock is: `now`, and the latest minute whose tick has been delivered."""

    now: datetime
    last_tick: datetime

    @classmethod
    def fresh(cls, start: datetime) -> ClockState:
        # The start minute is where time begins, not a minute crossed: the first tick is the next.
        start = as_utc(start)
        return cls(start, floor_minute(start))

    def advance(self, seconds: float) -> tuple[ClockState, list[datetime]]:
        """The state after `seconds` of simulated time and the minutes that step ticks, in order."""
        if seconds <= 0:
            raise ValueError(f"a step must move time forward, got {seconds} s")
        new_now = self.now + timedelta(seconds=seconds)
        ticks = minutes_crossed(self.last_tick, new_now)
        return ClockState(new_now, ticks[-1] if ticks else self.last_tick), ticks

    def encode(self) -> str:
        return json.dumps({"now": iso_utc(self.now), "last_tick": iso_utc(self.last_tick)})

    @classmethod
    def decode(cls, text: str) -> ClockState:
        try:
            raw = json.loads(text)
            state = cls(parse_utc(raw["now"]), parse_utc(raw["last_tick"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ClockError(f"unreadable clock position {text!r}: {exc}") from exc
        if state.last_tick > state.now:
            raise ClockError(f"corrupt clock position: last tick after now in {text!r}")
        return state


@dataclass(frozen=True)
class ClockKeys:
    prefix: str = DEFAULT_KEY_PREFIX

    @property
    def now(self) -> str:
        return f"{self.prefix}now"

    @property
    def today(self) -> str:
        return f"{self.prefix}today"

    @property
    def position(self) -> str:
        return f"{self.prefix}position"

    @property
    def start(self) -> str:
        """Where the run's time began (set at a fresh start or a reset)."""
        return f"{self.prefix}start"

    @property
    def horizon(self) -> str:
        """The latest minute whose tick may be in Kafka: set before a step's ticks are sent, so
        a reader that sees a tick later than it knows the clock did not send it."""
        return f"{self.prefix}horizon"


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def redis_client(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url, decode_responses=True)


# ------------------------------------------------------------------------------------------------
# Reader
# ------------------------------------------------------------------------------------------------


class RedisClock:
    """Read the simulated time. Every process except the clock itself uses this."""

    def __init__(self, client: redis.Redis, key_prefix: str = DEFAULT_KEY_PREFIX):
        self._redis = client
        self._keys = ClockKeys(key_prefix)

    @classmethod
    def from_settings(cls, settings: Settings, key_prefix: str = DEFAULT_KEY_PREFIX) -> RedisClock:
        return cls(redis_client(settings), key_prefix)

    @property
    def client(self) -> redis.Redis:
        return self._redis

    @property
    def key_prefix(self) -> str:
        return self._keys.prefix

    def _get(self, key: str) -> str:
        value = _text(self._redis.get(key))
        if value is None:
            raise ClockNotRunning(f"Redis key {key!r} is not set: the simulated clock has never run"
                                  " (run `smart-shelf clock`)")
        return value

    def now(self) -> datetime:
        return parse_utc(self._get(self._keys.now))

    def today(self) -> date:
        return date.fromisoformat(self._get(self._keys.today))

    def bounds(self) -> ClockBounds:
        """Start, now and tick horizon in one read; each None when the clock has not set it."""
        values = self._redis.mget([self._keys.start, self._keys.now, self._keys.horizon])
        start, now, horizon = (parse_utc(_text(v)) if v is not None else None for v in values)
        return ClockBounds(start, now, horizon)


@dataclass(frozen=True)
class ClockBounds:
    """What a reader checks event and tick times against: nothing before `start`, no tick after
    `horizon`, no event far after `now`."""

    start: datetime | None
    now: datetime | None
    horizon: datetime | None


# ------------------------------------------------------------------------------------------------
# Driver
# ------------------------------------------------------------------------------------------------


class SimClock:
    """Drive simulated time: Redis keys for readers, one Kafka tick per simulated minute."""

    def __init__(self, client: redis.Redis, kafka_bootstrap: str, *, start: datetime,
                 speed: float, step_seconds: float, key_prefix: str = DEFAULT_KEY_PREFIX,
                 topic: str = DEFAULT_TOPIC, progress_every: timedelta = timedelta(hours=1),
                 hold_at: frozenset[str] = frozenset(),
                 hold: Callable[[datetime], None] | None = None):
        if step_seconds <= 0:
            raise ValueError("step_seconds must be positive")
        # Minutes of the day ("HH:MM") whose tick waits for `hold(minute)` (in `run`): time-driven
        # steps then decide on everything that happened before them (supplier cutoffs, etc.).
        self.hold_at = hold_at if hold is not None else frozenset()
        self.hold = hold
        self._held: datetime | None = None  # the minute last held (the next step crosses it)
        self.start_at = as_utc(start)
        self.speed = float(speed)  # simulated s per wall s; <= 0 runs as fast as possible
        self.step_seconds = float(step_seconds)
        self.topic = topic
        self.progress_every = progress_every
        self.state: ClockState | None = None
        self._redis = client
        self._keys = ClockKeys(key_prefix)
        self._committed: str | None = None  # position text we last saw in Redis
        self._stop = False  # a plain flag: set from signal handlers, where locks can deadlock
        self._owns_redis = False
        self._producer = Producer({
            "bootstrap.servers": kafka_bootstrap,
            "enable.idempotence": True,  # broker-side dedupe of internal retries, order kept
            "acks": "all",
            "client.id": "sim-clock",
            "log_level": 3,
            "logger": log,
        })

    @classmethod
    def from_settings(cls, settings: Settings, **overrides) -> SimClock:
        kwargs = {"start": settings.sim_start, "speed": settings.sim_speed,
                  "step_seconds": settings.sim_step_seconds} | overrides
        clock = cls(redis_client(settings), settings.kafka_bootstrap, **kwargs)
        clock._owns_redis = True
        return clock

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, reset: bool = False) -> ClockState:
        """Resume from the persisted position (or start at `start`), and publish it to readers."""
        if self.topic not in self._producer.list_topics(timeout=10).topics:
            raise ClockError(f"Kafka topic {self.topic!r} does not exist (create topics first)")
        self._committed = _text(self._redis.get(self._keys.position))
        began = None
        if self._committed is None or reset:
            state = ClockState.fresh(self.start_at)
            how = "reset to start" if self._committed is not None else "fresh start"
            began = state.now
        else:
            state = ClockState.decode(self._committed)
            how = "resumed"
        self._commit(state, began=began)
        log.info("sim clock %s at %s (last tick %s), speed %s, step %g s, topic %s, keys %s*",
                 how, iso_utc(state.now), iso_utc(state.last_tick),
                 f"{self.speed:g}x" if self.speed > 0 else "max rate", self.step_seconds,
                 self.topic, self._keys.prefix)
        return state

    def request_stop(self) -> None:
        """Stop after the current step (safe from a signal handler)."""
        self._stop = True

    def close(self) -> None:
        self._producer.flush(DELIVERY_TIMEOUT_S)
        if self._owns_redis:
            self._redis.close()

    # -- one step ----------------------------------------------------------------------------

    def step(self, seconds: float | None = None) -> list[str]:
        """One step: advance, publish the crossed minutes' ticks, await delivery, then commit."""
        if self.state is None:
            raise ClockError("call start() before step()")
        new_state, minutes = self.state.advance(
            self.step_seconds if seconds is None else seconds)
        self._publish(minutes)
        self._commit(new_state)
        return [tick_id(m) for m in minutes]

    def _publish(self, minutes: list[datetime]) -> None:
        if not minutes:
            return
        failures: list[KafkaError] = []

        def on_delivery(err, _msg):
            if err is not None:
                failures.append(err)

        # Readers refuse ticks past the horizon: it moves before the ticks exist.
        self._redis.set(self._keys.horizon, iso_utc(minutes[-1]))
        wall = datetime.now(timezone.utc)
        for minute in minutes:
            event = tick_event(minute, wall, self.speed)
            self._producer.produce(self.topic, key=event["tick_id"],
                                   value=json.dumps(event).encode(), on_delivery=on_delivery)
        # The position must never get ahead of what Kafka has: wait for every tick of the step.
        undelivered = self._producer.flush(DELIVERY_TIMEOUT_S)
        if failures or undelivered:
            raise ClockError(f"ticks {tick_id(minutes[0])}..{tick_id(minutes[-1])} not delivered "
                             f"({undelivered} pending, errors {failures}); position not committed")

    def _commit(self, state: ClockState, began: datetime | None = None) -> None:
        """Write now, today and the position in one MULTI/EXEC, if nobody else moved the clock;
        at a fresh start or a reset (`began`), the start and the tick horizon too."""
        encoded = state.encode()
        with self._redis.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(self._keys.position)
                if _text(pipe.get(self._keys.position)) != self._committed:
                    raise ClockConflict(f"{self._keys.position} changed under this clock: is "
                                        "another clock running?")
                pipe.multi()
                pipe.set(self._keys.now, iso_utc(state.now))
                pipe.set(self._keys.today, state.now.date().isoformat())
                pipe.set(self._keys.position, encoded)
                if began is not None:
                    pipe.set(self._keys.start, iso_utc(began))
                    pipe.set(self._keys.horizon, iso_utc(state.last_tick))
                pipe.execute()
            except redis.WatchError as exc:
                raise ClockConflict(f"{self._keys.position} changed during commit") from exc
        self._committed = encoded
        self.state = state

    # -- loop --------------------------------------------------------------------------------

    def run(self, until: datetime | None = None, max_steps: int | None = None) -> ClockState:
        """Step until `until` (sim time, reached exactly), `max_steps`, or a stop request."""
        if self.state is None:
            self.start()
        until = as_utc(until) if until is not None else None
        steps = ticks = 0
        sim_elapsed = 0.0
        wall_start = anchor = time.monotonic()
        last_bucket = self._bucket(self.state.now)
        while not self._stop:
            if (until is not None and self.state.now >= until) or steps == max_steps:
                break
            seconds = self.step_seconds
            if until is not None:
                seconds = min(seconds, (until - self.state.now).total_seconds())
            held = self.next_hold(self.state.now + timedelta(seconds=seconds))
            if held is not None:  # stop just short of the minute, wait, then cross it
                seconds = (held - HOLD_MARGIN - self.state.now).total_seconds()
            if seconds > 0:
                ticks += len(self.step(seconds))
            if held is not None:
                self.hold(held)
                self._held = held
            steps += 1
            sim_elapsed += seconds
            if self._bucket(self.state.now) != last_bucket:
                last_bucket = self._bucket(self.state.now)
                wall = time.monotonic() - wall_start
                log.info("sim clock at %s: %d steps, %d ticks, effective speed %.1fx",
                         iso_utc(self.state.now), steps, ticks, sim_elapsed / max(wall, 1e-9))
            if self.speed > 0:
                # Schedule against the run's start, not the previous step, so overhead never drifts.
                behind = time.monotonic() - (anchor + sim_elapsed / self.speed)
                if behind > MAX_CATCH_UP_S:
                    log.warning("sim clock %.1f s behind schedule; re-anchoring", behind)
                    anchor += behind
                elif behind < 0:
                    self._sleep(-behind)
        log.info("sim clock stopped at %s after %d steps, %d ticks", iso_utc(self.state.now),
                 steps, ticks)
        return self.state

    def next_hold(self, upto: datetime) -> datetime | None:
        """The first held minute after the clock's time, up to `upto`, not held yet."""
        if not self.hold_at:
            return None
        for minute in minutes_crossed(self.state.now, upto):
            if minute.strftime("%H:%M") in self.hold_at and minute != self._held:
                return minute
        return None

    def follow(self, moment: datetime) -> None:
        """Move to `moment` when the simulator drives time (max rate). The simulator stops
        `HOLD_MARGIN` short of each held minute (`next_hold`); arriving there holds, then
        crosses the minute, so its tick goes out before anything that happens after it."""
        if moment > self.state.now:
            self.step((moment - self.state.now).total_seconds())
        held = self.next_hold(self.state.now + HOLD_MARGIN)
        if held is not None:
            self.hold(held)
            self._held = held
            self.step((held - self.state.now).total_seconds())

    def _bucket(self, t: datetime) -> int:
        return (t - self.start_at) // self.progress_every

    def _sleep(self, seconds: float) -> None:
        # Short sleeps polling the stop flag, so a signal never waits out a long step interval.
        deadline = time.monotonic() + seconds
        while not self._stop:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(remaining, 0.1))


def run_clock(settings: Settings, until: datetime | None = None, max_steps: int | None = None,
              reset: bool = False, *, key_prefix: str = DEFAULT_KEY_PREFIX,
              topic: str = DEFAULT_TOPIC) -> ClockState:
    """Run the clock from settings until `until`/`max_steps` or SIGINT/SIGTERM; returns the final
    committed state. A signal finishes the current step and its commit, then returns normally."""
    clock = SimClock.from_settings(settings, key_prefix=key_prefix, topic=topic)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda signum, _frame: clock.request_stop())
    try:
        clock.start(reset=reset)
        return clock.run(until=until, max_steps=max_steps)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        clock.close()
