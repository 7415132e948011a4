"""A short closed-loop run for the dashboard's tests, and the browser that looks at it.

`dashboard_run` runs the simulator, the bridge and the streaming application on a database,
topics, Delta tables and clock of their own over a short simulated window (the platform deciding
in hourly rounds, as the loop test does), keeps the bridge and the streaming application
running so later events still reach the tables, and serves the dashboard over that run.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from producers.run import SimulateOptions, simulate
from producers.streams import stream_name
from smart_shelf_platform.progress import wait_until_read
from smart_shelf_platform.stack.dashboard_service import DashboardService
from smart_shelf_platform_tests.streaming_support import (
    drop_redis_keys, drop_topics, private_context,
)
from smart_shelf_platform_tests.test_daily_features import drop_database, private_database
from smart_shelf_platform_tests.test_replenishment_loop import background, stop
from smart_shelf_platform_tests.test_streaming_e2e import EVENT_TOPICS
from streaming import runner

SIMULATED = timedelta(hours=2)
CHROMIUM = "/usr/lib/chromium/chromium"  # Debian's, installed by `smart-shelf setup`


@contextmanager
def dashboard_run(settings, tmp: Path):
    """Yields (settings of the run, its streaming context, the dashboard's URL)."""
    import redis

    clock_prefix = f"dash-{uuid.uuid4().hex[:8]}:"
    stream_prefix = f"dash-{uuid.uuid4().hex[:8]}:"
    own = private_database(settings, delta_root_override=str(tmp / "delta")).model_copy(
        update={"decision_round_minutes": 60, "dashboard_clock_prefix": clock_prefix})
    client = redis.Redis.from_url(own.redis_url)
    ctx = private_context(own, client, clock_prefix, tmp)
    app = background(own, ctx, tmp / "streaming.log", "streaming.runner", "--topic-prefix",
                     ctx.topic_prefix, "--clock-prefix", clock_prefix, "--trigger-seconds", "0.5")
    bridge = background(own, ctx, tmp / "bridge.log", "producers.bridge", "--consumer", "dash",
                        *(arg for t in EVENT_TOPICS for arg in (
                            "--stream", f"{stream_name(t, stream_prefix)}={ctx.topic(t)}")))
    dashboard = DashboardService(own)
    try:
        wait_until_read(client, clock_prefix, own.kafka_bootstrap,
                        queries=runner.spark_query_names(), timeout=300)
        simulate(own, SimulateOptions(
            until=own.sim_start + SIMULATED, speed=None, stream_prefix=stream_prefix,
            clock_key_prefix=clock_prefix, clock_topic=ctx.topic("clock_ticks"),
            topic_prefix=ctx.topic_prefix), progress=print)
        assert app.poll() is None, (tmp / "streaming.log").read_text()[-3000:]
        dashboard.start()
        yield own, ctx, dashboard.url
    finally:
        dashboard.stop()
        stop(app)
        stop(bridge)
        drop_topics(ctx)
        drop_redis_keys(client, clock_prefix, stream_prefix)
        client.close()
        drop_database(settings, own)


@contextmanager
def app_env(own, **overrides):
    """The environment a dashboard process of `own` would get, for AppTest in this process."""
    saved = dict(os.environ)
    os.environ.update(own.model_copy(update=overrides).as_env())
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def screenshot_dir(settings) -> Path:
    """Where the browser tests leave their screenshots: the test run's own folder."""
    path = settings.home / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path
