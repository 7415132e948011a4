"""The store simulator: a discrete-event loop over customers' arrivals, actions and exits.

Events are generated in simulated-time order with their scheduled timestamps, so the stream is a
function of the seed and settings alone: pacing (following the shared clock, or as fast as
possible) changes when events are written, never what they are. Platform effects (warehouse
picks, refill tasks and returns, deliveries, removals, daily discounts, expired-removal work
orders) read from Kafka move the world's real stock before the next customer action; the
staff's reports they cause (refills, removals) are stamped with the simulation's time when the
work is carried out (a refill not before its task's due time).
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, time as dtime, timedelta, timezone
from pathlib import Path
from typing import Protocol

import orjson

from producers.bad_events import BadEvent, BadEventInjector
from producers.world.catalogue import load_store_catalogue
from producers.world.store import StoreWorld
from producers.world.traffic import TrafficSettings
from smart_shelf_platform.clock import HOLD_MARGIN
from smart_shelf_platform.contracts.catalogue import TOPICS_BY_NAME

log = logging.getLogger(__name__)

DAY, ARRIVE, ACT, LEAVE = 0, 1, 2, 3
MINUTE = timedelta(minutes=1)


class EventSink(Protocol):
    def add(self, topic: str, key: str, value: bytes, event_id: str) -> None: ...


class HashSink:
    """Fingerprint of an event stream (determinism tests) with per-topic counts."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.counts: dict[str, int] = {}

    def add(self, topic: str, key: str, value: bytes, event_id: str) -> None:
        self.digest.update(b"%s\0%s\0%s\n" % (topic.encode(), key.encode(), value))
        self.counts[topic] = self.counts.get(topic, 0) + 1

    def hexdigest(self) -> str:
        return self.digest.hexdigest()


@dataclass
class SimulationSettings:
    seed: int = 42
    start: datetime = datetime(2026, 1, 1, 7, 0, tzinfo=timezone.utc)
    bad_event_rate: float = 0.0
    traffic: TrafficSettings = field(default_factory=TrafficSettings)


def encode(record: dict) -> bytes:
    return orjson.dumps(record)


class Simulation:
    """All stores of a run, advanced together in simulated-time order."""

    def __init__(self, files: dict[str, Path], store_ids: list[str], sink: EventSink,
                 settings: SimulationSettings):
        self.settings = settings
        self.sink = sink
        self.now = settings.start
        self.events_emitted = 0
        self.customers = 0
        self.bad_events: list[BadEvent] = []
        self.worlds: list[StoreWorld] = []
        self.injectors: list[BadEventInjector] = []
        for store_id in store_ids:
            catalogue = load_store_catalogue(files, store_id)
            injector = BadEventInjector(settings.seed, store_id, settings.bad_event_rate)
            self.injectors.append(injector)
            self.worlds.append(StoreWorld(catalogue, settings.seed,
                                          self._emitter(injector), settings.traffic))
        self.by_store = {w.store_id: w for w in self.worlds}
        self._heap: list[tuple] = []
        self._seq = itertools.count()
        for index in range(len(self.worlds)):
            self._schedule(self.now, index, DAY, (self.now.date(), self.now))

    # ---- emission --------------------------------------------------------------------

    def _emitter(self, injector: BadEventInjector) -> Callable[[str, dict], None]:
        def emit(topic: str, record: dict) -> None:
            key = TOPICS_BY_NAME[topic].message_key(record)
            self.sink.add(topic, key, encode(record), record["event_id"])
            self.events_emitted += 1
            # Staff reports are never corrupted: the injector's draws follow the customers'
            # events alone, whenever work orders arrive.
            if record.get("actor") == "restocker":
                return
            bad = injector.maybe_corrupt(topic, record)
            if bad is not None:
                self.sink.add(topic, key, bad.payload, bad.bad_event_id)
                self.bad_events.append(bad)
        return emit

    # ---- scheduling ------------------------------------------------------------------

    def _schedule(self, at: datetime, store_index: int, kind: int, payload) -> None:
        heapq.heappush(self._heap, (at, store_index, next(self._seq), kind, payload))

    def next_event_time(self) -> datetime | None:
        return self._heap[0][0] if self._heap else None

    def run_until(self, horizon: datetime, max_events: int | None = None) -> int:
        """Process every scheduled step at or before `horizon`; returns steps processed."""
        steps = 0
        while self._heap and self._heap[0][0] <= horizon:
            if max_events is not None and steps >= max_events:
                return steps
            at, index, _, kind, payload = heapq.heappop(self._heap)
            self.now = at
            world = self.worlds[index]
            if kind == DAY:
                day, not_before = payload
                for visit in world.visits(day, not_before):
                    self._schedule(visit.entry, index, ARRIVE, visit)
                next_day = day + timedelta(days=1)
                midnight = datetime.combine(next_day, dtime(), tzinfo=timezone.utc)
                self._schedule(midnight, index, DAY, (next_day, None))
            elif kind == ARRIVE:
                customer_id = world.enter(payload)
                self.customers += 1
                for act_at, is_pickup in world.plan_actions(payload):
                    self._schedule(act_at, index, ACT, (customer_id, is_pickup))
                self._schedule(payload.exit, index, LEAVE, customer_id)
            elif kind == ACT:
                world.act(payload[0], at, payload[1])
            else:
                world.leave(payload, at)
            steps += 1
        self.now = max(self.now, horizon)
        return steps

    # ---- platform effects ------------------------------------------------------------

    def apply_effects(self, effects: Iterable[tuple[str, dict]]) -> int:
        """Hand the platform's effects (topic, record) to the stores they name, at the
        simulation's time; returns how many were done (an effect that cannot apply yet waits
        in its world for a later call)."""
        new: dict[str, list[tuple[str, dict]]] = {}
        for topic, record in effects:
            if record.get("store_id") in self.by_store and is_effect(topic, record):
                new.setdefault(record["store_id"], []).append((topic, record))
        return sum(w.apply_effects(new.get(w.store_id, []), self.now) for w in self.worlds)

    def give_up_waiting(self) -> None:
        """End of a run: effects that never could apply become anomalies, logged."""
        for world in self.worlds:
            world.give_up_waiting()
            for anomaly in world.anomalies:
                log.warning("%s: %s", world.store_id, anomaly)

    def refill_report(self) -> str | None:
        """How late the refill tasks reached the stores, or None without any: the world does not
        wait for the platform between held minutes, so a slow platform shows here (in decision
        rounds, the wait for the meeting after each pick)."""
        lateness = sorted(late for w in self.worlds for late in w.refill_lateness)
        if not lateness:
            return None

        def minutes(q: float) -> str:
            return f"{lateness[min(len(lateness) - 1, int(q * len(lateness)))] / MINUTE:.1f}"

        late = sum(1 for x in lateness if x > timedelta(0))
        return (f"{len(lateness):,} refill tasks carried out, {late:,} after their due time; "
                f"simulated minutes late: median {minutes(0.5)}, p95 {minutes(0.95)}, "
                f"max {minutes(1.0)}")

    def drained(self) -> bool:
        """No customer in any store (every cart checked out)."""
        return all(not w.customers for w in self.worlds)


def is_effect(topic: str, record: dict) -> bool:
    """Whether a platform record moves the physical world. Nothing on `shelf_events` does: the
    customers' events and the staff's refill and removal reports there are the world's own."""
    if topic == "alerts":
        return (record.get("alert_type"), record.get("location"), record.get("status")) \
            == ("expired_removal", "store", "open")
    return topic in ("wh_events", "restock_tasks", "daily_discounts")


def run_simulation(simulation: Simulation, until: datetime, *, clock=None, follower=None,
                   writer=None, ledger=None, effects=None,
                   settle: Callable[[], None] | None = None,
                   progress: Callable[[str], None] | None = None,
                   should_stop: Callable[[], bool] = lambda: False,
                   save_every: timedelta = timedelta(hours=1), batch_steps: int = 5000) -> None:
    """Advance to `until`: as fast as possible, or following `clock` (a RedisClock) when given.

    `follower` (a started SimClock) is moved to the simulation's time after each batch of steps
    instead, once the batch's events are flushed: the clock never gets ahead of the events. A
    batch ends just short of the follower's next held minute, where it holds (`SimClock.follow`).

    `writer` (the Redis stream writer) provides back-pressure and flushing; `ledger` saves the
    ground truth every `save_every` of simulated time and at the end; `effects` is a callable
    returning platform events to apply before each batch of steps; `settle` runs once `until`
    is reached, before the last save (`producers.settle`).
    """
    last_save = simulation.now
    last_report = time.monotonic()
    started, events_at_start = time.monotonic(), simulation.events_emitted
    while simulation.now < until and not should_stop():
        if effects is not None:
            emitted = simulation.events_emitted
            simulation.apply_effects(effects())
            if writer is not None and simulation.events_emitted > emitted:
                writer.flush()  # the staff's reports go now, not after the next customers
        horizon = until
        if clock is not None:
            horizon = min(until, clock.now())
            if horizon <= simulation.now:
                time.sleep(0.05)
                continue
        if follower is not None:
            held = follower.next_hold(until)
            horizon = min(until, held - HOLD_MARGIN) if held is not None else until
        simulation.run_until(horizon, max_events=batch_steps)
        if writer is not None:
            writer.flush()
            writer.wait_for_room()
        if follower is not None:
            follower.follow(simulation.now)
        if ledger is not None and simulation.now - last_save >= save_every:
            _save(simulation, ledger, finished=False)
            last_save = simulation.now
        if progress is not None and time.monotonic() - last_report >= 2:
            last_report = time.monotonic()
            rate = (simulation.events_emitted - events_at_start) / (last_report - started)
            depth = writer.depth() if writer is not None else 0
            progress(f"sim {simulation.now:%Y-%m-%d %H:%M} | {simulation.events_emitted:,} "
                     f"events ({rate:,.0f}/s) | {simulation.customers:,} customers | "
                     f"buffer {depth:,}")
    if settle is not None and simulation.now >= until and not should_stop():
        settle()
    if effects is not None:
        simulation.give_up_waiting()
    if writer is not None:
        writer.flush()
    if ledger is not None:
        _save(simulation, ledger, finished=simulation.now >= until)


def _save(simulation: Simulation, ledger, finished: bool) -> None:
    for world in simulation.worlds:
        ledger.save(world, simulation.now, simulation.settings.seed, simulation.events_emitted,
                    simulation.customers, finished,
                    [b for b in simulation.bad_events if b.store_id == world.store_id])
    simulation.bad_events = []
