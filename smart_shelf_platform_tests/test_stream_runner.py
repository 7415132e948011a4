"""`smart-shelf stream` as a person runs it: one Spark application, checkpoints, no doubles."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from confluent_kafka import Producer
from deltalake import DeltaTable

from smart_shelf_platform.stack.delta_tables import ensure_delta_tables

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
    store_id = f"T{uuid.uuid4().hex[:6]}"  # only this test's events are counted
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
    result = _stream(settings, delta_root, "--until-drained")
    assert result.returncode == 0, result.stderr[-3000:]

    rows = DeltaTable(str(delta_root / "raw" / "foot_traffic")).to_pyarrow_table().to_pylist()
    ours = [r["event_id"] for r in rows if r["store_id"] == store_id]
    assert sorted(ours) == sorted(e["event_id"] for e in first + second)
    assert (delta_root / "_checkpoints" / "foot_traffic_raw_sink" / "commits").is_dir()
