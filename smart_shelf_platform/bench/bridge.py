"""`smart-shelf bench bridge`: sustained throughput of the Redis Streams buffer and the bridge.

One process writes N realistic shelf events (~330-byte JSON, keys spread over 1,142 shelves) with
the producers' `StreamWriter` (batched XADDs, default back-pressure), while the bridge runs as its
own process, as it does in production. The clock runs from the first XADD until the last entry has
been acknowledged, which the bridge does only after Kafka confirmed its delivery. Measured too: CPU
seconds of the writer, the bridge, Redis and Kafka, and the bridge's peak resident memory.

It runs against the configured Redis and Kafka, on a stream prefix and a topic of its own that are
removed afterwards, so the stack's data is left alone.
"""

from __future__ import annotations

import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import psutil
import redis
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from producers.streams import CONSUMER_GROUP, StreamWriter, stream_name
from smart_shelf_platform.settings import REPO_ROOT, Settings
from smart_shelf_platform.stack.components import Kafka, Redis
from smart_shelf_platform.stack.process import TreeSampler

SHELVES = 1_142  # the reference catalogue's shelves
SIMULATED_TOPICS = ("foot_traffic", "shelf_events", "pos_transactions")
EVENTS_PER_STORE_IN_TWO_DAYS = 50_000
AIM_EVENTS_PER_S = 50_000
READY_TIMEOUT_S = 30.0
DRAIN_TIMEOUT_S = 300.0
EVENT_TEMPLATE = (
    '{"event_id":"%(id)s","event_type":"pickup","store_id":"S001","shelf_id":"%(shelf)s",'
    '"actor":"customer","customer_id":"%(customer)s","batch_code":"B-%(shelf)s-20251228",'
    '"quantity":1,"unit_weight":500.0,"delta_weight":null,"plan_id":null,'
    '"timestamp":"2026-01-01T07:%(minute)02d:%(second)02d.000Z"}'
)


def shelf_event(n: int) -> tuple[str, bytes, str]:
    """(key, value, event_id) of the n-th synthetic shelf event."""
    shelf = f"SHELF{n % SHELVES + 1:04d}"
    event_id = str(uuid.UUID(int=n))
    value = EVENT_TEMPLATE % {"id": event_id, "shelf": shelf,
                              "customer": str(uuid.UUID(int=n // 7 + 1)),
                              "minute": n // 60 % 60, "second": n % 60}
    return f"S001|{shelf}", value.encode(), event_id


def _cpu_seconds(processes: dict[str, psutil.Process]) -> dict[str, float]:
    """CPU seconds so far of each process, children included (Redis forks to rewrite its AOF)."""
    seconds = {}
    for name, process in processes.items():
        times = process.cpu_times()
        seconds[name] = times.user + times.system + times.children_user + times.children_system
    return seconds


def _create_topic(admin: AdminClient, topic: str, partitions: int, replication: int) -> None:
    admin.create_topics([NewTopic(topic, partitions, replication)])[topic].result(30)
    deadline = time.monotonic() + 10
    while topic not in admin.list_topics(timeout=5).topics:  # metadata can trail creation
        if time.monotonic() > deadline:
            raise RuntimeError(f"topic {topic} never appeared")
        time.sleep(0.1)


def _messages_in(settings: Settings, topic: str, partitions: int) -> int:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap,
                         "group.id": f"bench-bridge-{uuid.uuid4().hex}"})
    try:
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                   for p in range(partitions))
    finally:
        consumer.close()


def _start_bridge(settings: Settings, routes: dict[str, str], log_file) -> subprocess.Popen:
    env = {**os.environ, **settings.as_env()}
    stream_args = [arg for stream, topic in routes.items()
                   for arg in ("--stream", f"{stream}={topic}")]
    return subprocess.Popen(
        [sys.executable, "-m", "producers.bridge", *stream_args, "--consumer", "bench"],
        cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)


def _wait_for(check: Callable[[], bool], timeout: float, what: str,
              alive: subprocess.Popen | None = None, interval: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if alive is not None and alive.poll() is not None:
            raise RuntimeError(f"the bridge exited ({alive.returncode}) while {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s {what}")
        time.sleep(interval)


def _group_exists(client: redis.Redis, stream: str) -> bool:
    try:
        return any(g["name"] in (CONSUMER_GROUP, CONSUMER_GROUP.encode())
                   for g in client.xinfo_groups(stream))
    except redis.ResponseError:  # the stream does not exist yet
        return False


def _write_synthetic(client: redis.Redis, prefix: str, events: int) -> tuple[int, int]:
    writer = StreamWriter(client, prefix, topics=("shelf_events",))
    sizes = 0
    for n in range(events):
        key, value, event_id = shelf_event(n)
        sizes += len(value)
        writer.add("shelf_events", key, value, event_id)
    writer.flush()
    return events, sizes


class _SizingWriter(StreamWriter):
    """A StreamWriter that also adds up the bytes it is given."""

    bytes_written = 0

    def add(self, topic: str, key: str, value: bytes | str, event_id: str = "") -> None:
        self.bytes_written += len(value)
        super().add(topic, key, value, event_id)


def _simulated_writer(settings: Settings, client: redis.Redis, prefix: str, events: int,
                      work_dir: Path) -> Callable[[], tuple[int, int]]:
    """Prepare the real simulator (outside the timed part) for about `events` events.

    Without the platform nobody refills the shelves, so a single store soon sells out and its
    customers mostly find empty shelves. The benchmark therefore simulates a chain: enough
    stores, two busy days each, run as fast as possible.
    """
    from producers.simulator import Simulation, SimulationSettings
    from smart_shelf_platform.stack.lifecycle import reference_files

    stores = max(settings.stores, math.ceil(events / EVENTS_PER_STORE_IN_TWO_DAYS))
    chain = settings.model_copy(update={"stores": stores, "data_dir": work_dir})
    writer = _SizingWriter(client, prefix, topics=SIMULATED_TOPICS)
    sim = Simulation(reference_files(chain), [f"S{n:03d}" for n in range(1, stores + 1)],
                     writer, SimulationSettings(seed=settings.seed, start=settings.sim_start))

    def run() -> tuple[int, int]:
        horizon = settings.sim_start
        while sim.events_emitted < events:
            horizon += timedelta(minutes=30)
            sim.run_until(horizon)
        writer.flush()
        return sim.events_emitted, writer.bytes_written

    return run


def bench_bridge(settings: Settings, events: int, progress: Callable[[str], None],
                 source: str = "synthetic") -> dict:
    """`source` "synthetic" writes template shelf events (the bridge alone); "simulator" runs
    the store simulator at full speed (simulator -> Redis -> bridge -> Kafka)."""
    tag = uuid.uuid4().hex[:12]
    prefix = f"bench-{tag}:"
    topics = ("shelf_events",) if source == "synthetic" else SIMULATED_TOPICS
    routes = {stream_name(t, prefix): f"bench_{t}_{tag}" for t in topics}
    partitions = settings.kafka_partitions
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    client = redis.Redis.from_url(settings.redis_url)
    for topic in routes.values():
        _create_topic(admin, topic, partitions, settings.kafka_replication_factor)
    log_file = tempfile.NamedTemporaryFile("w+", prefix="bench-bridge-", suffix=".log")
    work_dir = tempfile.TemporaryDirectory(prefix="bench-bridge-")
    bridge = _start_bridge(settings, routes, log_file)
    try:
        _wait_for(lambda: all(_group_exists(client, s) for s in routes), READY_TIMEOUT_S,
                  "waiting for the bridge to start", bridge)
        sampler = TreeSampler(bridge.pid, interval=0.1)
        sampler.start()
        # Servers this stack did not start (external ones) have no pid here and are not measured.
        processes = {name: psutil.Process(pid) for name, pid in (
            ("bridge", bridge.pid), ("redis", Redis(settings).pid()),
            ("kafka", Kafka(settings).pid())) if pid is not None}
        cpu_before, writer_cpu_before = _cpu_seconds(processes), time.process_time()
        writer_rss_before = psutil.Process().memory_info().rss
        progress(f"writing about {events:,} {source} events while the bridge forwards them")
        if source == "synthetic":
            write = lambda: _write_synthetic(client, prefix, events)  # noqa: E731
        else:
            write = _simulated_writer(settings, client, prefix, events, Path(work_dir.name))
        began = time.monotonic()
        events, sizes = write()
        written = time.monotonic()
        progress(f"written in {written - began:.1f} s; waiting for the bridge to drain")
        _wait_for(lambda: sum(client.xlen(s) for s in routes) == 0, DRAIN_TIMEOUT_S,
                  "waiting for the bridge to drain", bridge, interval=0.005)
        drained = time.monotonic()
        cpu = {name: after - cpu_before[name]
               for name, after in _cpu_seconds(processes).items()}
        cpu["writer"] = time.process_time() - writer_cpu_before
        writer_rss = psutil.Process().memory_info().rss
        sampler.done.set()
        bridge.send_signal(signal.SIGTERM)
        exit_code = bridge.wait(30)
        in_kafka = sum(_messages_in(settings, t, partitions) for t in routes.values())
    finally:
        if bridge.poll() is None:
            bridge.kill()
            bridge.wait()
        log_file.seek(0)
        bridge_log = log_file.read().splitlines()
        log_file.close()
        work_dir.cleanup()
        client.delete(*routes)
        client.close()
        for fut in admin.delete_topics(list(routes.values())).values():
            fut.result(30)
    seconds = drained - began
    return {
        "benchmark": f"bridge ({source} events)",
        "machine": {"cpus": psutil.cpu_count(), "memory_gib": round(
            psutil.virtual_memory().total / 2**30, 1), "python": platform.python_version()},
        "events": events,
        "mean_event_bytes": round(sizes / events),
        "partitions": partitions,
        "seconds": round(seconds, 2),
        "events_per_s": round(events / seconds),
        "writer_seconds": round(written - began, 2),
        "drain_after_writer_s": round(drained - written, 2),
        "cpu_seconds": {name: round(value, 2) for name, value in cpu.items()},
        "bridge_cpu_percent": round(100 * cpu["bridge"] / seconds),
        "bridge_peak_rss_mib": round(sampler.peak_rss / 2**20, 1),
        "writer_rss_mib": round(max(writer_rss, writer_rss_before) / 2**20, 1),
        "messages_in_kafka": in_kafka,
        "lost": max(0, events - in_kafka),
        "duplicates": max(0, in_kafka - events),
        "bridge_exit_code": exit_code,
        "bridge_log_tail": bridge_log[-3:],
        "aim_events_per_s": AIM_EVENTS_PER_S,
    }
