"""`smart-shelf simulate`: wire the simulator to Redis Streams, the clock, the platform's effects
and the ledger, with progress output and a clean stop on Ctrl-C."""

from __future__ import annotations

import json
import logging
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import redis
from confluent_kafka import Consumer, TopicPartition
from psycopg import sql

from producers.ledger import Ledger
from producers.settle import settle_simulation
from producers.simulator import Simulation, SimulationSettings, run_simulation
from producers.streams import DEFAULT_PREFIX, StreamWriter, total_depth
from smart_shelf_platform.clock import (
    DEFAULT_KEY_PREFIX, DEFAULT_TOPIC, RedisClock, SimClock, decision_rounds,
)
from smart_shelf_platform import cutoff_barrier
from smart_shelf_platform.progress import wait_until_quiet
from smart_shelf_platform.rules.supplier import SupplierSchedule
from smart_shelf_platform.settings import Settings
from smart_shelf_platform.refdata import generate
from smart_shelf_platform.refdata.generator import OUTPUTS_BY_NAME, as_utc
from smart_shelf_platform.stack.process import StackError
from smart_shelf_platform.verify import connect_ledger

log = logging.getLogger(__name__)
EFFECT_TOPICS = ("wh_events", "restock_tasks", "daily_discounts", "alerts")


@dataclass
class SimulateOptions:
    until: datetime
    speed: float | None  # None: max rate, the simulator moves the clock; else the clock speed
    # Seed of the shoppers' random streams (arrivals, choices, bad events); None: the
    # settings' seed. The stores themselves are always the platform's reference data.
    seed: int | None = None
    bad_event_rate: float = 0.0
    effects: bool = True
    max_depth: int = 200_000
    stream_prefix: str = DEFAULT_PREFIX
    store_group: tuple[int, int] = (0, 1)  # (this group, number of groups)
    # The simulated clock's Redis keys and tick topic (tests give each run its own).
    clock_key_prefix: str = DEFAULT_KEY_PREFIX
    clock_topic: str = DEFAULT_TOPIC
    topic_prefix: str = ""  # the platform's topics the effects come from (tests: their own)
    # At the end, wait for the streaming queries and carry out what they decided up to the last
    # minute (`producers.settle`), so the ledger and the platform end in agreement.
    settle: bool = True


class EffectsFeed:
    """The platform's physical decisions, read from Kafka (picks, refill returns, deliveries
    and warehouse removals on `wh_events`, the restocker's refill tasks, discounts, and the
    expired-removal work orders among the alerts). The simulation itself skips what is not an
    effect (`producers.simulator.is_effect`)."""

    def __init__(self, settings: Settings, topic_prefix: str = ""):
        self.topic_prefix = topic_prefix
        self.consumer = Consumer({
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"simulator-effects-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "latest", "enable.auto.commit": False, "log_level": 3,
        })
        # Assigned at the topics' current ends, not subscribed: a group join takes a while,
        # and an effect published meanwhile would be skipped. `next` is the next offset to read
        # per partition (a partition nothing was read from yet has no position in the client).
        self.next = {
            (topic, partition): self.consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=10)[1]
            for topic in (f"{topic_prefix}{t}" for t in EFFECT_TOPICS)
            for partition in self.consumer.list_topics(topic, timeout=10).topics[topic].partitions}
        self.consumer.assign([TopicPartition(t, p, offset) for (t, p), offset in self.next.items()])

    def __call__(self) -> list[tuple[str, dict]]:
        return self._parse(self._consume(timeout=0))

    def read_to_end(self, timeout: float = 60) -> list[tuple[str, dict]]:
        """Every effect published so far (meetings and the end of a run wait for these)."""
        ends = {(t, p): self.consumer.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
                for t, p in self.next}
        deadline = time.monotonic() + timeout
        messages = []
        while any(self.next[tp] < end for tp, end in ends.items()):
            if time.monotonic() > deadline:
                raise TimeoutError("could not read the platform's effects to their end")
            messages.extend(self._consume(timeout=0.5))
        return self._parse(messages)

    def _consume(self, timeout: float) -> list:
        messages = [m for m in self.consumer.consume(num_messages=5000, timeout=timeout)
                    if not m.error()]
        for m in messages:
            self.next[(m.topic(), m.partition())] = m.offset() + 1
        return messages

    def _parse(self, messages) -> list[tuple[str, dict]]:
        out = []
        for msg in messages:
            try:
                out.append((msg.topic().removeprefix(self.topic_prefix),
                            json.loads(msg.value())))
            except (TypeError, ValueError):
                continue  # malformed platform output is the dead-letter path's business
        return out

    def close(self) -> None:
        self.consumer.close()


def simulate(settings: Settings, options: SimulateOptions,
             progress: Callable[[str], None]) -> Simulation:
    store_ids = stores_of_group(settings.stores, *options.store_group)
    refuse_unknown_stores(platform_stores(settings), store_ids, settings.stores)
    client = redis.Redis.from_url(settings.redis_url)
    writer = StreamWriter(client, options.stream_prefix, max_depth=options.max_depth)
    with tempfile.TemporaryDirectory(prefix="smart-shelf-reference-") as scratch:
        files = platform_reference(settings, store_ids, Path(scratch))
        sim = Simulation(files, store_ids, writer, SimulationSettings(
            seed=settings.seed if options.seed is None else options.seed,
            start=settings.sim_start, bad_event_rate=options.bad_event_rate))
    ledger = Ledger(settings.postgres_dsn())
    ledger.reset(store_ids)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    clock_thread = None
    effects = EffectsFeed(settings, options.topic_prefix) if options.effects else None
    hold_at, hold = frozenset(), None
    held: list[tuple[float, int]] = []  # (wall seconds, settle rounds) of each hold that waited
    # Deciding in rounds with the simulator driving the clock, the world meets the platform at
    # each round: it stops, the platform catches up, the world carries out everything decided
    # so far, and only then does the round's tick go out. Effects are applied at these meetings
    # only, so what the world does no longer depends on how fast the platform answered.
    rounds = decision_rounds(settings.decision_round_minutes)
    meets = effects is not None and bool(rounds) and options.speed is None

    def meet() -> int:
        return settle_simulation(sim, effects, writer, redis_client=client,
                                 clock_prefix=options.clock_key_prefix,
                                 bootstrap=settings.kafka_bootstrap, progress=log.debug)

    def catch_up() -> int:
        return meet() if meets else wait_until_quiet(
            client, options.clock_key_prefix, settings.kafka_bootstrap,
            unsent=lambda: total_depth(client, writer.streams))

    # With the forecast deciding supplier orders, each cutoff also waits for its forecasts
    # (`cutoff_barrier`): the platform catches up, the cutoff's Dagster run publishes, and the
    # platform reads what it published before the cutoff's tick goes out.
    schedule = SupplierSchedule.parse(settings.supplier_cutoff_days,
                                      settings.supplier_cutoff_time,
                                      settings.supplier_delivery_days,
                                      settings.supplier_delivery_time)
    forecasting = effects is not None and settings.supplier_rule == "forecast"

    def forecast_barrier(cutoff: datetime) -> int:
        started = time.monotonic()
        found = cutoff_barrier.wait_until_landed(client, options.clock_key_prefix, cutoff,
                                                 settings.forecast_barrier_seconds)
        if found is None:
            log.error("no forecast of the cutoff %s landed within %.0f s "
                      "(SMART_SHELF_FORECAST_BARRIER_SECONDS): its orders follow the rule's "
                      "plans; see the cutoff's run, and the barrier's failed check on its "
                      "predictions, in Dagster",
                      f"{cutoff:%a %Y-%m-%d %H:%M}", settings.forecast_barrier_seconds)
            return 0
        log.info("clock held before the cutoff %s for %.1f s until its forecasts landed (%s)",
                 f"{cutoff:%a %Y-%m-%d %H:%M}", time.monotonic() - started, found)
        return catch_up()

    if effects is not None:
        # The ticks that time-driven steps act on (day start: discounts and removals; cutoffs;
        # deliveries; decision rounds) wait until the platform has caught up with everything
        # before them, so a plan never misses its cutoff because a query lagged (a lagging query
        # must not change what the platform decides). At max rate too: the simulator then stops
        # short of such a minute and waits.
        hold_at = frozenset({"00:00", settings.supplier_cutoff_time,
                             settings.supplier_delivery_time}) | rounds

        def hold(minute: datetime) -> None:
            started = time.monotonic()
            caught_up = catch_up()
            # A cutoff on the simulation's first day has no complete day to forecast from:
            # no run is requested for it, and the rule orders.
            if (forecasting and schedule.is_cutoff(minute)
                    and minute.date() > settings.sim_start.date()):
                caught_up += forecast_barrier(minute)
            if caught_up:
                held.append((time.monotonic() - started, caught_up))
                log.log(logging.DEBUG if meets else logging.INFO,
                        "clock held before %s for %.1f s (%d rounds) while the platform caught "
                        "up", f"{minute:%a %H:%M}", held[-1][0], caught_up)
    if rounds and options.speed is not None:
        log.warning("deciding in rounds at a set clock speed: the world takes the platform's "
                    "effects as they come, so the run does not replay exactly (it does at "
                    "--speed max)")
    # At max rate the simulator moves the clock itself (ticks and `sim:now` follow the events),
    # so time-driven steps and the future-timestamp check work the same at any speed.
    clock = SimClock.from_settings(settings, speed=options.speed or 0,
                                   key_prefix=options.clock_key_prefix, topic=options.clock_topic,
                                   hold_at=hold_at, hold=hold)
    clock.start(reset=True)
    cutoff_barrier.forget(client, options.clock_key_prefix)
    if options.speed is not None:
        clock_thread = threading.Thread(target=clock.run, kwargs={"until": options.until},
                                        daemon=True, name="sim-clock")
        clock_thread.start()
    progress(f"simulating {len(store_ids)} store(s) from {settings.sim_start:%Y-%m-%d %H:%M} to "
             f"{options.until:%Y-%m-%d %H:%M} "
             f"({'max rate' if options.speed is None else f'{options.speed:g}x'})")
    settle = None
    if effects is not None and options.settle:
        def settle() -> None:
            settle_simulation(sim, effects, writer, redis_client=client,
                              clock_prefix=options.clock_key_prefix,
                              bootstrap=settings.kafka_bootstrap, progress=progress)
    try:
        run_simulation(sim, options.until,
                       clock=RedisClock(client, options.clock_key_prefix) if clock_thread
                       else None,
                       follower=None if clock_thread else clock, writer=writer, ledger=ledger,
                       # Meeting at rounds, the effects wait for the next meeting.
                       effects=(lambda: []) if meets else effects, settle=settle,
                       progress=progress,
                       should_stop=stop.is_set)
    finally:
        if clock_thread is not None:
            clock.request_stop()
            clock_thread.join(timeout=30)
        clock.close()
        if effects is not None:
            effects.close()
        ledger.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    progress(f"{'stopped' if stop.is_set() else 'finished'} at {sim.now:%Y-%m-%d %H:%M}: "
             f"{sim.events_emitted:,} events, {sim.customers:,} customers, "
             f"{sum(i.count for i in sim.injectors):,} bad events; ledger saved")
    if held:  # where a run's wall time went: meetings cost a few micro-batches each
        seconds = sum(s for s, _ in held)
        progress(f"held the clock {len(held):,} times for the platform"
                 f"{' (decision rounds)' if meets else ''}: {seconds:.0f} s in all, "
                 f"{seconds / len(held):.1f} s and {sum(r for _, r in held) / len(held):.1f} "
                 f"settle rounds each")
    refills = sim.refill_report()
    if refills is not None:
        progress(refills)
    return sim


def platform_stores(settings: Settings) -> list[str]:
    """The stores the platform was set up with (`smart-shelf up` loads them into `ref.stores`
    from the reference data of SMART_SHELF_STORES stores)."""
    with connect_ledger(settings) as conn:
        return [row[0] for row in conn.execute("SELECT store_id FROM ref.stores ORDER BY 1")]


def _named(stores: list[str]) -> str:
    return ", ".join(stores) if len(stores) <= 3 else f"{stores[0]} to {stores[-1]}"


def refuse_unknown_stores(known: list[str], wanted: list[str], chain: int) -> None:
    """StackError, before anything is emitted, when the simulation would run stores the platform
    does not know: their every event would be dead-lettered. A platform's state starts from its
    reference data once, so a larger chain needs a platform set up for it."""
    unknown = sorted(set(wanted) - set(known))
    if not unknown:
        return
    have = (f"was set up with {len(known)} store{'' if len(known) == 1 else 's'} "
            f"({_named(known)})" if known else "has no stores yet")
    raise StackError(
        f"the platform {have} and does not know {_named(unknown)}: to simulate {chain} stores, "
        f"set SMART_SHELF_STORES={chain} and start a new platform with it (`./smart-shelf down`, "
        f"a new SMART_SHELF_HOME, `./smart-shelf up`)")


# What a store's reference data must agree on with the platform's: its shelves' stock and its
# lots at the start (another seed or start changes both).
FINGERPRINT = {"store_inventory": ("shelf_id", "current_stock", "maximum_stock", "snapshot_ts"),
               "store_batches": ("shelf_id", "batch_code", "batch_quantity", "expiry_date")}


def platform_reference(settings: Settings, store_ids: list[str],
                       scratch: Path) -> dict[str, Path]:
    """The reference files the simulated stores start from, checked against the platform's.

    The simulation never writes reference data: the platform's streaming state started from what
    `up` made and loaded (SMART_SHELF_DATA_DIR/reference and `ref.*`), so a world made otherwise
    would disagree with it on every shelf. The files `up` made are
    used when they hold these stores for SMART_SHELF_SEED and SMART_SHELF_SIM_START (a chain of
    more stores does: each store's data is its own); else they are made in `scratch`. Either
    way, a StackError before anything is emitted when the platform holds other data for a store.
    """
    files = _files_holding(settings.data_dir / "reference", settings, store_ids)
    if files is None:
        files = generate(scratch, seed=settings.seed, stores=settings.stores,
                         sim_start=settings.sim_start)
    differing = _differing(settings, files, store_ids)
    if differing:
        raise StackError(
            f"the platform's reference data for {_named(differing)} is not the one "
            f"SMART_SHELF_SEED={settings.seed} and SMART_SHELF_SIM_START="
            f"{as_utc(settings.sim_start).isoformat()} make: simulate with the seed and start "
            f"the stack was set up with (`--seed` alone varies the shoppers), or start a stack "
            f"on these (`./smart-shelf down`, a new SMART_SHELF_HOME, `./smart-shelf up`)")
    return files


def _files_holding(folder: Path, settings: Settings,
                   store_ids: list[str]) -> dict[str, Path] | None:
    """The files in `folder` if its manifest says they were made for the settings' seed and
    start and hold every one of the stores."""
    try:
        meta = json.loads((folder / "manifest.json").read_text())
    except (FileNotFoundError, ValueError):
        return None
    if (meta.get("seed") != settings.seed
            or meta.get("sim_start") != as_utc(settings.sim_start).isoformat()
            or meta.get("stores", 0) < max(int(store[1:]) for store in store_ids)):
        return None
    files = {name: folder / info["file"] for name, info in meta.get("files", {}).items()}
    return files if files and all(path.exists() for path in files.values()) else None


def _differing(settings: Settings, files: dict[str, Path], store_ids: list[str]) -> list[str]:
    """The stores whose `ref.*` rows in the platform are not the files' (on FINGERPRINT)."""
    differing = set()
    with connect_ledger(settings) as conn:
        for name, columns in FINGERPRINT.items():
            table = pq.read_table(files[name], columns=["store_id", *columns])
            table = table.filter(pc.is_in(table["store_id"], pa.array(store_ids)))
            ours = set(zip(*(table.column(c).to_pylist() for c in ("store_id", *columns))))
            target = OUTPUTS_BY_NAME[name].table
            query = sql.SQL("SELECT {} FROM {} WHERE store_id = ANY(%s)").format(
                sql.SQL(", ").join(map(sql.Identifier, ("store_id", *columns))),
                sql.Identifier(target.schema, target.name))
            theirs = set(conn.execute(query, (store_ids,)).fetchall())
            differing.update(row[0] for row in ours ^ theirs)
    return sorted(differing)


def stores_of_group(stores: int, group: int, groups: int) -> list[str]:
    """The stores one simulator process runs when a chain is split over `groups` processes:
    every `groups`-th store, starting with store `group + 1`."""
    if not 0 <= group < groups:
        raise ValueError(f"store group {group} is not between 0 and {groups - 1}")
    return [f"S{n:03d}" for n in range(1, stores + 1) if (n - 1) % groups == group]


def until_from(settings: Settings, days: float | None, until: datetime | None) -> datetime:
    """When a run ends: `until`, else `days` (default 1) after SMART_SHELF_SIM_START; a
    StackError unless that is a date after the start."""
    if until is not None:
        end = until if until.tzinfo else until.replace(tzinfo=settings.sim_start.tzinfo)
    else:
        try:
            end = settings.sim_start + timedelta(days=1 if days is None else days)
        except OverflowError:
            raise StackError(f"--days takes a number of days a date can reach, not {days:g}") \
                from None
    if end <= settings.sim_start:
        raise StackError(f"the run must end after SMART_SHELF_SIM_START "
                         f"({settings.sim_start.isoformat()}): --days above 0, --until later, "
                         f"not {end.isoformat()}")
    return end
