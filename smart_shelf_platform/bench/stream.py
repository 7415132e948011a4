"""`smart-shelf bench stream`: throughput, latency, CPU and memory of the streaming application.

Two phases against the running stack, on topics, Delta tables, clock keys and Redis streams of
the benchmark's own (removed afterwards), so the stack's data is left alone:

1. Throughput: a chain of `stores` simulated for `hours` at full speed is bridged into Kafka
   first; then the streaming application (`python -m streaming.runner --until-drained`, its own
   process, as in production) applies the backlog. Events/s = backlog / time from the first
   micro-batch that applied events to the last (every event applied to state in Delta and
   published; a batch starts when it reaches the query, before it is read from Kafka), and
   sustained events/s the same after the first batch, which also warms the JVM up. The
   application's start-up is reported apart.
2. Latency: the application runs continuously (2 s trigger) while one store is simulated live at
   the clock's default speed (SMART_SHELF_SIM_SPEED) through the bridge. Latency is taken from
   each record's arrival in Kafka to the end of the micro-batch that applied it (state
   committed and published), from the per-batch metrics per topic (`streaming.shell.MetricsLog`):
   "event to state" for the event topics, "state to alert" for the state topics, which the
   alert engines read. The decision chain is timed end to end in Kafka time: from a shelf
   event to the refill alert it opened and the restock plan published for it
   (`chain_latencies`). Each host's live batches are broken down by stage (`stage_breakdown`).

CPU seconds and peak resident memory cover the whole application: the Python driver, the
Spark JVM and its Python workers.
"""

from __future__ import annotations

import bisect
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, time as dt_time, timedelta, timezone
from pathlib import Path

import psutil
import redis
from confluent_kafka import Consumer, TopicPartition

from producers.simulator import Simulation, SimulationSettings, run_simulation
from producers.streams import StreamWriter, stream_name
from smart_shelf_platform.clock import RedisClock, SimClock
from smart_shelf_platform.settings import REPO_ROOT, Settings
from smart_shelf_platform.stack.delta_tables import ensure_delta_tables
from smart_shelf_platform.stack.lifecycle import reference_files
from smart_shelf_platform.stack.process import TreeSampler
from smart_shelf_platform.stack.topics import create_topic_copies, delete_topic_copies
from streaming.runner import HOSTS, QUERIES

SIMULATED_TOPICS = ("foot_traffic", "shelf_events", "pos_transactions")
# Started together, the queries run as two Spark queries (`streaming.runner.HOSTS`), whose
# metrics tell their batches' latency per topic: events become state in one, state becomes
# alerts and plans in the other.
STATE_HOST, DECISIONS_HOST = (host.name for host in HOSTS)
EVENT_TOPICS = (*SIMULATED_TOPICS, "wh_events")
STATE_TOPICS = ("shelf_state", "shelf_batch_state", "wh_state", "wh_batch_state")
WARM_UP_S = 60
AIMS = {"events_per_s": 10_000, "event_to_state_p95_ms": 5_000, "peak_rss_gib": 3.0}


def weighted_percentiles(batches: list[dict], wanted=(50, 95)) -> dict[str, int | None]:
    """Percentiles of per-event latency from per-batch quantiles: each batch stands for its
    `valid` events spread evenly over its recorded quantiles (an approximation that keeps
    big batches from counting as much as small ones)."""
    points: list[tuple[float, float]] = []
    for batch in batches:
        quantiles = [v for k, v in batch["latency_ms"].items() if k.startswith("p")]
        if batch["valid"] and quantiles:
            points += [(value, batch["valid"] / len(quantiles)) for value in quantiles]
    if not points:
        return {f"p{p}": None for p in wanted}
    points.sort()
    total = sum(w for _, w in points)
    out = {}
    for p in wanted:
        target, seen = total * p / 100, 0.0
        for value, weight in points:
            seen += weight
            if seen >= target:
                out[f"p{p}"] = round(value)
                break
    return out


def of_topics(batches: list[dict], topics: tuple[str, ...]) -> list[dict]:
    """Each batch's records of `topics`, as batches of their own (count and latency)."""
    return [{"valid": b["valid_by_topic"][t], "latency_ms": b["latency_ms_by_topic"][t]}
            for b in batches for t in topics if t in b["latency_ms_by_topic"]]


def chain_latencies(events: list[tuple[str, str, int]],
                    decisions: list[tuple[str, str, int]]) -> list[int]:
    """How long each decision took from the shelf event that caused it: per decision (store,
    shelf, its Kafka time in ms), the time since the newest event of its shelf that reached
    Kafka before it. A refill alert or plan follows the event that took its shelf below the
    line, the last of its shelf before it; a decision with no event before it is left out."""
    by_shelf: dict[tuple[str, str], list[int]] = defaultdict(list)
    for store, shelf, at in events:
        by_shelf[(store, shelf)].append(at)
    for times in by_shelf.values():
        times.sort()
    latencies = []
    for store, shelf, at in decisions:
        times = by_shelf.get((store, shelf), [])
        before = bisect.bisect_left(times, at)
        if before:
            latencies.append(at - times[before - 1])
    return latencies


def percentiles(values: list[int], wanted=(50, 95)) -> dict[str, int | None]:
    """Exact percentiles (the value at or above the rank), None for no values."""
    ordered = sorted(values)
    return {f"p{p}": ordered[min(len(ordered) - 1, max(0, -(-p * len(ordered) // 100) - 1))]
            if ordered else None for p in wanted}


def stage_breakdown(batches: list[dict]) -> dict:
    """Where a host's batches spent their time: batches, mean wall ms per batch, and the mean
    ms of each stage over all batches (`shell.StageTimer`: read, checks, stats, each member),
    the costliest first."""
    if not batches:
        return {"batches": 0}
    stages: dict[str, int] = {}
    for batch in batches:
        for stage, ms in batch.get("stages_ms", {}).items():
            stages[stage] = stages.get(stage, 0) + ms
    n = len(batches)
    wall = sum(b["finished_at"] - b["started_at"] for b in batches) * 1000 / n
    return {"batches": n, "mean_ms": round(wall),
            "mean_ms_by_stage": {k: round(v / n) for k, v in
                                 sorted(stages.items(), key=lambda kv: -kv[1])}}


def read_metrics(metrics_dir: Path) -> dict[str, list[dict]]:
    return {path.stem: [json.loads(line) for line in path.read_text().splitlines() if line]
            for path in metrics_dir.glob("*.jsonl")}


class Bench:
    def __init__(self, settings: Settings, stores: int, progress: Callable[[str], None]):
        tag = uuid.uuid4().hex[:10]
        self.tag = tag
        self.progress = progress
        self.work = Path(tempfile.mkdtemp(prefix=f"bench-stream-{tag}-",
                                          dir=settings.home if settings.home.exists() else None))
        # The chain's reference data in a directory of its own (the stack's stays as it is).
        self.settings = settings.model_copy(update={
            "stores": stores, "data_dir": self.work / "data",
            "delta_root_override": str(self.work / "delta")})
        self.topic_prefix = f"bench{tag}-"
        self.clock_prefix = f"bench{tag}:clock:"
        self.metrics_dir = self.work / "metrics"
        self.redis = redis.Redis.from_url(settings.redis_url)

    def prepare(self) -> None:
        create_topic_copies(self.settings, self.topic_prefix)
        ensure_delta_tables(self.settings.delta_root)
        reference_files(self.settings)

    def cleanup(self) -> None:
        delete_topic_copies(self.settings, self.topic_prefix)
        for key in self.redis.scan_iter(match=f"bench{self.tag}*"):
            self.redis.delete(key)
        self.redis.close()

    # ---- processes -------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        return {**os.environ, **self.settings.as_env(), "SPARK_LOCAL_IP": "127.0.0.1"}

    def bridge(self, stream_prefix: str, *extra: str) -> subprocess.Popen:
        routes = [arg for t in SIMULATED_TOPICS for arg in
                  ("--stream", f"{stream_name(t, stream_prefix)}={self.topic_prefix}{t}")]
        return subprocess.Popen(
            [sys.executable, "-m", "producers.bridge", *routes, "--consumer", "bench", *extra],
            cwd=REPO_ROOT, env=self.env(), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)

    def streaming_app(self, *extra: str, log_name: str) -> subprocess.Popen:
        log = (self.work / log_name).open("w")
        return subprocess.Popen(
            [sys.executable, "-m", "streaming.runner", "--topic-prefix", self.topic_prefix,
             "--clock-prefix", self.clock_prefix, "--metrics-dir", str(self.metrics_dir),
             *extra],
            cwd=REPO_ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)

    def clock(self, start, speed: float) -> SimClock:
        clock = SimClock.from_settings(self.settings, start=start, speed=speed,
                                       key_prefix=self.clock_prefix,
                                       topic=f"{self.topic_prefix}clock_ticks")
        clock.start(reset=True)
        return clock

    # ---- phase 1 ---------------------------------------------------------------------

    def backlog(self, hours: float) -> int:
        stream_prefix = f"bench{self.tag}:backlog:"
        stores = [f"S{n:03d}" for n in range(1, self.settings.stores + 1)]
        writer = StreamWriter(self.redis, stream_prefix, topics=SIMULATED_TOPICS)
        sim = Simulation(reference_files(self.settings), stores, writer, SimulationSettings(
            seed=self.settings.seed, start=self.settings.sim_start))
        clock = self.clock(self.settings.sim_start, speed=0)
        bridge = self.bridge(stream_prefix, "--stop-when-idle", "3")
        try:
            run_simulation(sim, self.settings.sim_start + timedelta(hours=hours),
                           follower=clock, writer=writer)
        finally:
            clock.close()
        if bridge.wait(timeout=600) != 0:
            raise RuntimeError("the bridge failed while forwarding the backlog")
        return sim.events_emitted

    def throughput(self, events: int, max_offsets: int) -> dict:
        began = time.time()
        app = self.streaming_app("--until-drained", "--max-offsets-per-trigger", str(max_offsets),
                                 log_name="throughput.log")
        sampler = TreeSampler(app.pid)
        sampler.start()
        code = app.wait()
        sampler.done.set()
        if code != 0:
            raise RuntimeError(f"the streaming application failed ({code}), see "
                               f"{self.work / 'throughput.log'}")
        metrics = read_metrics(self.metrics_dir)
        # The batches that applied events, in the order they ran.
        state = sorted((b for b in metrics[STATE_HOST]
                        if any(b["valid_by_topic"].get(t) for t in SIMULATED_TOPICS)),
                       key=lambda b: b["started_at"])

        def applied_by(batches: list[dict]) -> int:
            return sum(b["valid_by_topic"].get(t, 0) for b in batches for t in SIMULATED_TOPICS)

        first = state[0]["started_at"]
        last = max(b["finished_at"] for b in state)
        applied = applied_by(state)
        seconds = last - first
        # Sustained: after the first batch, which also warms the JVM up (its code compiled).
        warm = state[1:]
        sustained = applied_by(warm) / (last - warm[0]["started_at"]) if warm else None
        return {
            "events": events, "events_applied": applied, "seconds": round(seconds, 1),
            "events_per_s": round(events / seconds),
            "sustained_events_per_s": round(sustained) if sustained else None,
            "startup_s": round(first - began, 1),
            "batches": len(state),
            "cpu_seconds": round(sampler.cpu_seconds, 1),
            "avg_cores": round(sampler.cpu_seconds / (time.time() - began), 2),
            "peak_rss_gib": round(sampler.peak_rss / 2**30, 2),
        }

    def messages_since(self, topic: str, since_ms: int) -> list[tuple[dict, int]]:
        """(record, its Kafka time in ms) of every message of the bench's copy of `topic` that
        reached Kafka from `since_ms` on."""
        name = f"{self.topic_prefix}{topic}"
        consumer = Consumer({"bootstrap.servers": self.settings.kafka_bootstrap,
                             "group.id": f"bench-{uuid.uuid4()}", "enable.auto.commit": False})
        try:
            partitions = consumer.list_topics(name, timeout=10).topics[name].partitions
            starts = consumer.offsets_for_times(
                [TopicPartition(name, p, since_ms) for p in partitions], timeout=10)
            assigned, remaining = [], 0
            for start in starts:
                _, high = consumer.get_watermark_offsets(TopicPartition(name, start.partition),
                                                         timeout=10)
                first = start.offset if start.offset >= 0 else high
                if first < high:
                    assigned.append(TopicPartition(name, start.partition, first))
                    remaining += high - first
            consumer.assign(assigned)
            messages = []
            while remaining > 0:
                message = consumer.poll(10)
                if message is None:
                    raise RuntimeError(f"{remaining} messages of {name} did not come back")
                if message.error():
                    continue
                messages.append((json.loads(message.value()), message.timestamp()[1]))
                remaining -= 1
            return messages
        finally:
            consumer.close()

    def decision_chain(self, since_ms: int) -> dict:
        """Shelf event -> refill alert opened, and -> restock plan published, in Kafka time."""
        events = [(r["store_id"], r["shelf_id"], at)
                  for r, at in self.messages_since("shelf_events", since_ms)]
        alerts = [(r["store_id"], r["shelf_id"], at)
                  for r, at in self.messages_since("alerts", since_ms)
                  if r["alert_type"] == "refill_request" and r["status"] == "open"]
        plans = [(r["store_id"], r["shelf_id"], at)
                 for r, at in self.messages_since("shelf_restock_plan", since_ms)
                 if r["status"] == "pending"]
        to_alert, to_plan = chain_latencies(events, alerts), chain_latencies(events, plans)
        return {"refill_alerts": len(to_alert), "event_to_refill_alert_ms": percentiles(to_alert),
                "restock_plans": len(to_plan), "event_to_restock_plan_ms": percentiles(to_plan)}

    # ---- phase 2 ---------------------------------------------------------------------

    def latency(self, minutes: float, start_after_hours: float) -> dict:
        self.metrics_dir.mkdir(exist_ok=True)
        backlog = self.work / "metrics-backlog"  # the throughput phase's batches, kept to read
        backlog.mkdir(exist_ok=True)
        for path in self.metrics_dir.glob("*.jsonl"):
            path.rename(backlog / path.name)
        stream_prefix = f"bench{self.tag}:live:"
        app = self.streaming_app(log_name="latency.log")
        sampler = TreeSampler(app.pid)
        sampler.start()
        bridge = self.bridge(stream_prefix)
        try:
            self.progress("waiting for the streaming application to start its queries")
            deadline = time.monotonic() + 240
            log = self.work / "latency.log"
            while log.read_text().count("started (checkpoint") < len(QUERIES):
                if app.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the streaming application did not start, see "
                                       f"{self.work / 'latency.log'}")
                time.sleep(1)
            # Noon of the day after the backlog: a busy hour, later than every backlog event.
            day = (self.settings.sim_start + timedelta(hours=start_after_hours)).date()
            start = datetime.combine(day + timedelta(days=1), dt_time(12), tzinfo=timezone.utc)
            speed = self.settings.sim_speed
            self.progress(f"simulating store S001 live at {speed:g}x for {minutes:g} min "
                          f"(the first {WARM_UP_S} s warm the application up, not measured)")
            measured_from = time.time() + WARM_UP_S
            sampler.count_cpu_from(measured_from)
            # Other shoppers than the backlog's, in the same stores (the reference data's seed
            # is the platform's: another would make other shelves and lots).
            self._live(start, speed, minutes, stream_prefix, shopper_seed=self.settings.seed + 1)
            time.sleep(10)  # let the last events through
        finally:
            sampler.done.set()
            measured_until = time.time()
            app.send_signal(signal.SIGTERM)  # the driver stops its queries, then Spark
            try:
                app.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(app.pid, signal.SIGKILL)
            bridge.terminate()
            bridge.wait(30)
        chain = self.decision_chain(int(measured_from * 1000))
        metrics = read_metrics(self.metrics_dir)
        live_batches = {q: [b for b in bs if b["finished_at"] >= measured_from]
                        for q, bs in metrics.items()}
        batches = live_batches.get(STATE_HOST, [])
        to_state = weighted_percentiles(of_topics(batches, EVENT_TOPICS))
        to_alert = weighted_percentiles(of_topics(live_batches.get(DECISIONS_HOST, []),
                                                  STATE_TOPICS))
        events = sum(b["valid_by_topic"].get("shelf_events", 0) for b in batches)
        measured_s = max(1.0, measured_until - measured_from)
        return {
            "store_speed": f"1 store at {self.settings.sim_speed:g}x",
            "measured_s": round(measured_s),
            "shelf_events": events,
            "shelf_events_per_s": round(events / measured_s, 1),
            "event_to_state_ms": to_state,
            "state_to_alert_ms": to_alert,
            "decision_chain": chain,
            "batch_stages": {q: stage_breakdown(bs) for q, bs in sorted(live_batches.items())},
            "peak_rss_gib": round(sampler.peak_rss / 2**30, 2),
            "peak_rss_mib_by_process": sampler.peak_processes,
            # Of the measured minutes only: start-up and the warm-up left out.
            "avg_cores": round(sampler.cpu_seconds / measured_s, 2),
        }

    def _live(self, start, speed: float, minutes: float, stream_prefix: str, *,
              shopper_seed: int) -> None:
        writer = StreamWriter(self.redis, stream_prefix, topics=SIMULATED_TOPICS)
        sim = Simulation(reference_files(self.settings), ["S001"], writer,
                         SimulationSettings(seed=shopper_seed, start=start))
        clock = self.clock(start, speed=speed)
        until = start + timedelta(seconds=minutes * 60 * speed)
        thread = threading.Thread(target=clock.run, kwargs={"until": until}, daemon=True)
        thread.start()
        try:
            run_simulation(sim, until, clock=RedisClock(self.redis, self.clock_prefix),
                           writer=writer)
        finally:
            clock.request_stop()
            thread.join(30)
            clock.close()


def bench_stream(settings: Settings, progress: Callable[[str], None], *, stores: int = 10,
                 hours: float = 24.0, max_offsets: int = 50_000,
                 live_minutes: float = 4.0) -> dict:
    bench = Bench(settings, stores, progress)
    try:
        bench.prepare()
        progress(f"simulating {stores} store(s) for {hours:g} h at full speed into Kafka")
        events = bench.backlog(hours)
        progress(f"{events:,} events in Kafka; the streaming application applies them")
        throughput = bench.throughput(events, max_offsets)
        sustained = throughput["sustained_events_per_s"]
        progress(f"{throughput['events_per_s']:,} events/s"
                 + (f" ({sustained:,} after the first batch)" if sustained else "")
                 + "; now the live latency phase")
        latency = bench.latency(live_minutes, start_after_hours=hours)
    finally:
        bench.cleanup()
    return {
        "benchmark": "stream (Spark application, all queries)",
        "machine": {"cpus": psutil.cpu_count(), "memory_gib": round(
            psutil.virtual_memory().total / 2**30, 1), "python": platform.python_version()},
        "stores": stores, "simulated_hours": hours, "partitions": settings.kafka_partitions,
        "max_offsets_per_trigger": max_offsets,
        "throughput": throughput,
        "latency": latency,
        "aims": AIMS,
        "work_dir": str(bench.work),
    }
