"""Test session wiring: integration tests get a real stack of their own.

The stack runs under `.smart_shelf_test/` on ports 200 above the defaults, so it never touches a
development stack. It is started once per session (when the session holds integration tests)
and stopped at the end; set SMART_SHELF_TEST_KEEP_STACK=1 to leave it running between local runs.
"""

from __future__ import annotations

import os
import uuid

import pytest

from smart_shelf_platform.settings import REPO_ROOT

TEST_ENV = {
    "SMART_SHELF_HOME": str(REPO_ROOT / ".smart_shelf_test"),
    "SMART_SHELF_DATA_DIR": str(REPO_ROOT / ".smart_shelf_test" / "data"),
    "SMART_SHELF_POSTGRES_PORT": "15632",
    "SMART_SHELF_REDIS_PORT": "16579",
    "SMART_SHELF_KAFKA_PORT": "19292",
    "SMART_SHELF_KAFKA_CONTROLLER_PORT": "19293",
    "SMART_SHELF_CONNECT_PORT": "18283",
    "SMART_SHELF_DAGSTER_PORT": "13200",
    "SMART_SHELF_DASHBOARD_PORT": "18701",
    # Tests start the bridge, Dagster, the dashboard and streaming queries themselves where they
    # need them, so the session stack leaves the Redis streams and Kafka topics alone and starts
    # fast.
    "SMART_SHELF_BRIDGE_ENABLED": "false",
    "SMART_SHELF_DAGSTER_ENABLED": "false",
    "SMART_SHELF_DASHBOARD_ENABLED": "false",
    "SMART_SHELF_STREAMING_ENABLED": "false",
}
# Set before any test module builds settings; an explicit environment still wins.
for _key, _value in TEST_ENV.items():
    os.environ.setdefault(_key, _value)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


@pytest.fixture(scope="session")
def settings():
    from smart_shelf_platform.settings import get_settings

    return get_settings()


@pytest.fixture(scope="session")
def stack(settings):
    """The real local stack (Postgres, Redis, Kafka, Connect), up with every topic and table."""
    from smart_shelf_platform.stack.lifecycle import down, up

    report = up(settings, progress=lambda _msg: None)
    yield report
    if not os.environ.get("SMART_SHELF_TEST_KEEP_STACK"):
        down(settings, progress=lambda _msg: None)


@pytest.fixture(scope="session", autouse=True)
def _stack_for_integration_tests(request):
    # Session scope, so the stack is up before any module-scoped fixture of a test file runs;
    # a run of unit tests alone starts nothing.
    if any(item.get_closest_marker("integration") for item in request.session.items):
        request.getfixturevalue("stack")


@pytest.fixture(scope="session")
def spark(settings, stack):
    from streaming.session import build_spark

    session = build_spark(settings, "smart-shelf-tests")
    yield session
    session.stop()


@pytest.fixture
def redis_conn(settings):
    import redis

    client = redis.Redis.from_url(settings.redis_url)
    yield client
    client.close()


@pytest.fixture
def prefix(redis_conn):
    """A Redis key prefix of this test's own; its keys are deleted afterwards."""
    import uuid

    prefix = f"test-{uuid.uuid4().hex}:"
    yield prefix
    keys = list(redis_conn.scan_iter(match=f"{prefix}*"))
    if keys:
        redis_conn.delete(*keys)


@pytest.fixture
def query_ctx(settings, redis_conn, prefix, tmp_path):
    """A streaming QueryContext with topics, tables, checkpoints and clock of this test's own."""
    from smart_shelf_platform_tests.streaming_support import drop_topics, private_context

    ctx = private_context(settings, redis_conn, prefix, tmp_path)
    yield ctx
    drop_topics(ctx)


@pytest.fixture(scope="session")
def pipeline(settings, spark, tmp_path_factory):
    """Simulator -> Redis -> bridge -> Kafka -> every streaming query -> Delta, with a database,
    topics, tables and clock of its own: the evening of 2026-01-01 and the next night (see
    test_daily_features.PIPELINE_START), shared by the daily features' and forecasting's tests
    (each run of the queries costs minutes). Yields (settings, simulation)."""
    import redis

    from producers.run import SimulateOptions, simulate
    from smart_shelf_platform_tests.streaming_support import (
        drop_redis_keys, drop_topics, private_context, run_to_end,
    )
    from smart_shelf_platform_tests.test_daily_features import (
        PIPELINE_START, PIPELINE_UNTIL, drop_database, private_database,
    )
    from smart_shelf_platform_tests.test_streaming_e2e import ORDER, bridge_into

    tmp = tmp_path_factory.mktemp("pipeline")
    own = private_database(settings, sim_start=PIPELINE_START, data_dir=tmp / "data",
                           delta_root_override=str(tmp / "delta"))
    client = redis.Redis.from_url(own.redis_url)
    clock_prefix, stream_prefix = (f"test-{uuid.uuid4().hex}:" for _ in range(2))
    ctx = private_context(own, client, clock_prefix, tmp)
    try:
        sim = simulate(own, SimulateOptions(
            until=PIPELINE_UNTIL, speed=None, effects=False, stream_prefix=stream_prefix,
            clock_key_prefix=clock_prefix, clock_topic=ctx.topic("clock_ticks")),
            progress=lambda _m: None)
        bridge_into(ctx, own, stream_prefix)
        for query in ORDER:
            run_to_end(spark, ctx, query)
        yield own, sim
    finally:
        drop_topics(ctx)
        drop_redis_keys(client, clock_prefix, stream_prefix)
        client.close()
        drop_database(settings, own)
