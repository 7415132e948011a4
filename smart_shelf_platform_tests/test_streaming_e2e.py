"""End to end: a simulated morning of one store, with bad events, through the bridge and every
streaming query, then `verify` against the simulator's ledger."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest

from producers.run import SimulateOptions, simulate
from producers.streams import stream_name
from smart_shelf_platform.clock import RedisClock
from smart_shelf_platform.verify import verify
from smart_shelf_platform_tests.streaming_support import delta_rows, run_to_end
from streaming import runner

pytestmark = pytest.mark.integration

EVENT_TOPICS = ("foot_traffic", "shelf_events", "pos_transactions")
ORDER = [query for stage in runner.STAGES for query in stage]  # state before the engines


def bridge_into(ctx, settings, stream_prefix: str) -> None:
    """Forward the run's Redis streams to the context's private topics until idle."""
    mapping = [arg for t in EVENT_TOPICS
               for arg in ("--stream", f"{stream_name(t, stream_prefix)}={ctx.topic(t)}")]
    result = subprocess.run(
        [sys.executable, "-m", "producers.bridge", *mapping, "--consumer", "e2e",
         "--stop-when-idle", "3"],
        env={**os.environ, **settings.as_env()}, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def test_a_simulated_morning_with_bad_events_agrees_exactly_with_the_ledger(
        settings, spark, query_ctx, redis_conn):
    # The simulation moves the shared clock; the queries check timestamps against it.
    ctx = query_ctx.__class__(**{**query_ctx.__dict__, "clock": RedisClock(redis_conn)})
    stream_prefix = f"e2e-{uuid.uuid4().hex[:8]}:"
    sim = simulate(settings, SimulateOptions(
        until=settings.sim_start + timedelta(hours=3), speed=None, bad_event_rate=0.02,
        effects=False, stream_prefix=stream_prefix), progress=lambda _m: None)
    assert sim.events_emitted > 1000
    bad = sum(i.count for i in sim.injectors)
    assert bad > 10

    bridge_into(ctx, settings, stream_prefix)
    for query in ORDER:
        run_to_end(spark, ctx, query)

    report = verify(settings.model_copy(update={"delta_root_override": ctx.delta_root}),
                    stores=["S001"])
    assert report.ok, "\n".join(report.lines()[:60])
    assert report.bad_events == bad and not report.missing_dead_letters

    dead = delta_rows(ctx, "raw/dead_letter")
    assert len(dead) == bad and all(r["reason"] for r in dead)
    raw = delta_rows(ctx, "raw/shelf_events") + delta_rows(ctx, "raw/pos_transactions") \
        + delta_rows(ctx, "raw/foot_traffic")
    assert len(raw) == len({r["event_id"] for r in raw}) == sim.events_emitted
    alerts = delta_rows(ctx, "ops/alerts")
    assert alerts, "three hours of shopping empty some shelves"
    assert len({r["alert_id"] for r in alerts}) == len(alerts)
    plans = delta_rows(ctx, "ops/shelf_restock_plan")
    refills = {r["shelf_id"] for r in alerts if r["alert_type"] == "refill_request"}
    assert {p["shelf_id"] for p in plans} == refills, "one plan per shelf that asked for one"
