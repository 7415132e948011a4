"""`smart-shelf stream` as a person runs it: one Spark application, checkpoints, no doubles."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import redis
from confluent_kafka import Producer
from deltalake import DeltaTable

from smart_shelf_platform.progress import read_progress, wait_until_read
from smart_shelf_platform.stack.delta_tables import ensure_delta_tables
from smart_shelf_platform_tests.streaming_support import drop_topics, private_context, produce

pytestmark = pytest.mark.integration


def _foot_traffic(store_id: str, n: int) -> dict:
    at = datetime(2026, 1, 1, 8, 0, tzinfo=timezone.utc) + timedelta(minutes=n)
    return {"event_id": str(uuid.uuid4()), "event_type": "entry", "store_id": store_id,
            "customer_id": str(uuid.uuid4()), "timestamp": at.isoformat().replace("+00:00", "Z"),
            "weekday": "Thursday", "time_slot": "07:00-09:59", "trip_duration_minutes": None}


def _stream(settings, delta_root, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, **settings.as_env(), "SMART_SHELF_DELTA_ROOT": str(delta_root)}
    return subprocess.run([sys.executable, "-m", "smart_shelf_platform.cli", "stream", *args],
                          env=env, capture_output=True, text=True, timeout=240)


def test_stream_catches_up_resumes_from_its_checkpoint_and_never_doubles(settings, tmp_path):
    delta_root = tmp_path / "delta"
    ensure_delta_tables(str(delta_root))
    store_id = "S001"  # a store the platform has: events of others are dead-lettered
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})

    def produce(events):
        for event in events:
            producer.produce("foot_traffic", key=f"{event['store_id']}|{event['customer_id']}",
                             value=json.dumps(event))
        producer.flush(10)

    first = [_foot_traffic(store_id, n) for n in range(15)]
    produce(first + first[:3])  # three duplicates, as a re-sending bridge would
    result = _stream(settings, delta_root, "--query", "foot_traffic_raw_sink", "--until-drained")
    assert result.returncode == 0, result.stderr[-3000:]

    second = [_foot_traffic(store_id, 100 + n) for n in range(5)]
    produce(second)
    # Together with the others the sink would run in the `state` host, from a checkpoint of
    # its own: it would append the first events again, so the runner refuses, in one line.
    result = _stream(settings, delta_root, "--until-drained")
    assert result.returncode == 1
    assert "foot_traffic_raw_sink last ran in foot_traffic_raw_sink" in result.stderr
    assert "Traceback" not in result.stderr
    result = _stream(settings, delta_root, "--query", "foot_traffic_raw_sink", "--until-drained")
    assert result.returncode == 0, result.stderr[-3000:]

    rows = DeltaTable(str(delta_root / "raw" / "foot_traffic")).to_pyarrow_table().to_pylist()
    sent = {e["event_id"] for e in first + second}  # only this test's events are counted
    ours = [r["event_id"] for r in rows if r["event_id"] in sent]
    assert sorted(ours) == sorted(sent)
    assert (delta_root / "_checkpoints" / "foot_traffic_raw_sink" / "commits").is_dir()


def test_a_running_query_reports_how_far_it_has_read_and_forgets_it_when_stopped(
        settings, tmp_path):
    """What the simulator's holds and settling rely on (smart_shelf_platform.progress)."""
    client = redis.Redis.from_url(settings.redis_url)
    clock_prefix = f"t-{uuid.uuid4().hex[:6]}:"
    ctx = private_context(settings, client, clock_prefix, tmp_path)
    topic = ctx.topic("foot_traffic")
    produce(ctx, "foot_traffic", [_foot_traffic("S001", n) for n in range(10)])
    env = {**os.environ, **settings.as_env(), "SMART_SHELF_DELTA_ROOT": ctx.delta_root}
    log = tmp_path / "stream.log"
    with log.open("w") as out:
        app = subprocess.Popen(
            [sys.executable, "-m", "streaming.runner", "--query", "foot_traffic_raw_sink",
             "--topic-prefix", ctx.topic_prefix, "--clock-prefix", clock_prefix,
             "--trigger-seconds", "1"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until_read(client, clock_prefix, settings.kafka_bootstrap,
                        queries=["foot_traffic_raw_sink"], timeout=180)
        assert read_progress(client, clock_prefix)["foot_traffic_raw_sink"][topic] == {0: 10}
        # More records: the next batches read them, and the report follows.
        produce(ctx, "foot_traffic", [_foot_traffic("S001", 50 + n) for n in range(5)])
        wait_until_read(client, clock_prefix, settings.kafka_bootstrap, timeout=120)
        assert read_progress(client, clock_prefix)["foot_traffic_raw_sink"][topic] == {0: 15}
    finally:
        app.terminate()
        app.wait(120)
        drop_topics(ctx)
    assert app.returncode == 0, log.read_text()[-3000:]
    assert read_progress(client, clock_prefix) == {}  # a stopped query forgets its entry
    client.close()
