"""Fault tolerance: the streaming application SIGKILLed at random points and restarted ends in
exactly the ledger's state, without doubled movements, dead letters, plans or alerts; a bridge
SIGKILLed mid-stream and restarted after its first entries were applied doubles nothing."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone

import pytest

from producers.run import SimulateOptions, simulate
from producers.streams import StreamWriter, stream_name
from smart_shelf_platform.clock import iso_utc
from smart_shelf_platform.verify import verify
from smart_shelf_platform_tests.streaming_support import consume_all, delta_rows
from smart_shelf_platform_tests.test_bridge import (
    own_pending, restart_until_forwarded, start_bridge_process, wait_until,
)
from smart_shelf_platform_tests.test_streaming_e2e import bridge_into
from streaming import alerts_sink, runner

pytestmark = pytest.mark.integration

KILLS = 3
# The state queries, the alert engines and the alerts sink. The replenishment loop's queries
# stay off: their refills would reach the platform's state but not the simulator's world, which
# ran before the app with effects off (the loop has its own end-to-end test).
QUERIES = [arg for q in (*runner.STAGES[0], *runner.STAGES[1], alerts_sink.QUERY)
           for arg in ("--query", q.name)]


def streaming_app(ctx, settings, *args) -> subprocess.Popen:
    env = {**os.environ, **settings.as_env(), "SMART_SHELF_DELTA_ROOT": ctx.delta_root}
    return subprocess.Popen(
        [sys.executable, "-m", "streaming.runner", "--topic-prefix", ctx.topic_prefix,
         "--trigger-seconds", "1", *QUERIES, *args],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True)  # its own process group: the kill takes the JVM down too


def committed_batches(ctx) -> int:
    root = os.path.join(ctx.delta_root, "_checkpoints")
    if not os.path.isdir(root):
        return 0
    return sum(len([f for f in os.listdir(os.path.join(root, q, "commits")) if f.isdigit()])
               for q in os.listdir(root) if os.path.isdir(os.path.join(root, q, "commits")))


def test_sigkilled_streaming_app_resumes_to_exactly_the_ledger(settings, query_ctx):
    ctx = query_ctx
    rng = random.Random(7)
    stream_prefix = f"faults-{uuid.uuid4().hex[:8]}:"
    sim = simulate(settings, SimulateOptions(
        until=settings.sim_start + timedelta(hours=4), speed=None, bad_event_rate=0.01,
        effects=False, stream_prefix=stream_prefix), progress=lambda _m: None)
    bad = sum(i.count for i in sim.injectors)
    bridge_into(ctx, settings, stream_prefix)

    progress = [0]
    for _ in range(KILLS):
        app = streaming_app(ctx, settings, "--max-offsets-per-trigger", "200")  # many batches
        # Kill at a random moment after the next micro-batch commit (or 2 minutes: drained).
        deadline = time.monotonic() + 120
        while committed_batches(ctx) == progress[-1] and time.monotonic() < deadline:
            assert app.poll() is None, app.stderr.read()[-3000:]
            time.sleep(0.2)
        time.sleep(rng.uniform(0, 4))
        os.killpg(app.pid, signal.SIGKILL)
        app.wait()
        progress.append(committed_batches(ctx))
    assert progress[1] > 0, "the first run was killed before it committed anything"

    final = streaming_app(ctx, settings, "--until-drained")
    _, stderr = final.communicate(timeout=900)
    assert final.returncode == 0, stderr[-3000:]

    report = verify(settings.model_copy(update={"delta_root_override": ctx.delta_root}),
                    stores=["S001"])
    assert report.ok, "\n".join(report.lines()[:60])
    for table in ("raw/shelf_events", "raw/pos_transactions", "raw/foot_traffic"):
        ids = [r["event_id"] for r in delta_rows(ctx, table)]
        assert len(ids) == len(set(ids)), f"doubled rows in {table}"
    assert len(delta_rows(ctx, "raw/dead_letter")) == bad

    plans = {p["plan_id"]: p for p in map(json.loads, (m.value() for m in consume_all(
        ctx, "shelf_restock_plan")))}
    assert len(plans) == len({p["shelf_id"] for p in plans.values()}), \
        "one plan in flight per shelf"
    # Alert steps may be re-sent, but an episode opens once, resolves at most once, and the
    # next episode of the same shelf and type opens only after the previous one resolved.
    steps = [json.loads(m.value()) for m in consume_all(ctx, "alerts")]
    by_id = defaultdict(dict)
    for step in steps:
        by_id[step["alert_id"]][step["status"]] = step
    episodes = defaultdict(list)
    for alert_id, by_status in by_id.items():
        assert set(by_status) <= {"open", "resolved"} and "open" in by_status, by_status
        opened = by_status["open"]
        closed = by_status.get("resolved", {}).get("updated_at")
        assert closed is None or closed >= opened["created_at"]
        episodes[(opened["shelf_id"], opened["alert_type"], opened["location"])].append(
            (opened["created_at"], closed))
    for key, spans in episodes.items():
        spans.sort()
        for (_, closed), (next_open, _) in zip(spans, spans[1:]):
            assert closed is not None and closed <= next_open, (key, spans)
    assert {a["alert_id"] for a in delta_rows(ctx, "ops/alerts")} \
        == set(by_id)


def test_a_bridge_sigkilled_mid_stream_and_restarted_later_doubles_nothing(
        settings, query_ctx, redis_conn, prefix):
    """The bridge sends an entry to Kafka, then acknowledges it in Redis: killed in between,
    it sends the entry again when it restarts, which may be much later (the platform kept
    duplicates only for ten minutes once). Here the entries it had sent were applied and
    committed before the restart; the copies it then sends are dropped: every event once."""
    ctx, total = query_ctx, 20_000
    stream = stream_name("foot_traffic", prefix)
    writer = StreamWriter(redis_conn, prefix, topics=("foot_traffic",))
    at = datetime(2026, 1, 1, 8, tzinfo=timezone.utc)
    sent = []
    for n in range(total):
        event = {"event_id": str(uuid.uuid4()), "event_type": "entry", "store_id": "S001",
                 "customer_id": str(uuid.uuid4()),
                 "timestamp": iso_utc(at + timedelta(seconds=n)), "weekday": "Thursday",
                 "time_slot": "08:00-08:59", "trip_duration_minutes": None}
        writer.add("foot_traffic", f"S001|{event['customer_id']}", json.dumps(event),
                   event["event_id"])
        sent.append(event["event_id"])
    writer.flush()

    bridge = start_bridge_process(stream, ctx.topic("foot_traffic"))
    try:  # killed once it has sent a good part, with more in flight
        wait_until(lambda: total - redis_conn.xlen(stream) >= 5_000, 120,
                   "waiting for the bridge to forward 5,000 entries", interval=0.005)
        bridge.send_signal(signal.SIGKILL)
        bridge.wait(10)
    finally:
        if bridge.poll() is None:
            bridge.kill()
        bridge.communicate()
    assert own_pending(redis_conn, stream) > 0, "nothing was left in flight: no test"

    def drain() -> None:
        app = subprocess.run(
            [sys.executable, "-m", "streaming.runner", "--topic-prefix", ctx.topic_prefix,
             "--query", "foot_traffic_raw_sink", "--until-drained"],
            env={**os.environ, **settings.as_env(), "SMART_SHELF_DELTA_ROOT": ctx.delta_root},
            capture_output=True, text=True, timeout=600)
        assert app.returncode == 0, app.stderr[-3000:]

    drain()  # what the dead bridge had sent, applied and committed
    before = len(delta_rows(ctx, "raw/foot_traffic"))
    returncode, output, resent = restart_until_forwarded(redis_conn, stream,
                                                         ctx.topic("foot_traffic"))
    assert returncode == 0, output
    drain()

    in_kafka = Counter(json.loads(m.value())["event_id"] for m in consume_all(ctx, "foot_traffic"))
    doubled = sum(in_kafka.values()) - len(in_kafka)
    assert resent > 0 and doubled > 0, "the restart sent nothing twice: no test"
    applied = Counter(r["event_id"] for r in delta_rows(ctx, "raw/foot_traffic"))
    assert 0 < before < total and sorted(applied) == sorted(sent)
    assert set(applied.values()) == {1}, f"{doubled} events sent twice, some applied twice"
