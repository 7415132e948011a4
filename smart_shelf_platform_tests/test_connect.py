"""Kafka Connect on the real stack: CDC of the config tables, the mirrors, the dead letters, faults.

Each test applies the connectors under a prefix of its own (connectors, topics, replication slot,
dead-letter topic) and writes rows of a store of its own, so it shares the stack's worker and
database with other tests. Tests that write rows of the platform's stores (a policy for the
running alert engine, a short simulated run through every streaming query) do it in a database
of their own on the same server, mirrored and captured by connectors of their own. The fault
test stops Postgres and restarts the worker, so it runs both privately: its own Postgres and its
own worker group on the shared Kafka.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import jsonschema
import psycopg
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from smart_shelf_platform.contracts.catalogue import (
    POSTGRES_TABLES, POSTGRES_TABLES_BY_NAME, TOPICS, TOPICS_BY_NAME, PostgresTable,
)
from smart_shelf_platform.contracts.types import Record
from smart_shelf_platform.settings import REPO_ROOT
from smart_shelf_platform.stack import connect, migrations, topics
from smart_shelf_platform.stack.components import Connect, Postgres
from smart_shelf_platform.stack.connect import SinkDefinition, SourceDefinition
from smart_shelf_platform_tests.connect_support import (
    own_database, private_prefix, remove_connectors,
)
from smart_shelf_platform_tests.streaming_support import (
    STORE, private_context, produce as produce_to, store_reference,
)

NAMESPACE = uuid.UUID("0b7e7d1c-5f1e-4c53-9a57-1d0a3c1f2e64")
SINKS = [d for d in connect.load_definitions() if isinstance(d, SinkDefinition)]
SOURCE = next(d for d in connect.load_definitions() if isinstance(d, SourceDefinition))


# ---------------------------------------------------------------------------------------------
# The definitions against the contracts (no stack)
# ---------------------------------------------------------------------------------------------


def test_every_connect_table_and_topic_has_its_connector():
    sunk = {d.table for d in SINKS}
    assert sunk == {t.qualified_name for t in POSTGRES_TABLES if t.writer == "Kafka Connect sink"}
    captured = {t.name for t in TOPICS if t.producer.startswith("Kafka Connect (")}
    assert {table.split(".", 1)[1] for table in SOURCE.tables} == captured


def test_sinks_render_the_tables_contract_and_key(settings):
    for defn in SINKS:
        config = connect.render(defn, settings)
        table = POSTGRES_TABLES_BY_NAME[defn.table]
        names = [spec.split(":")[0].rstrip("?") for spec in
                 config["transforms.contract.fields"].split(",")]
        assert names == table.record.field_names
        assert config["primary.key.fields"].split(",") == list(table.primary_key)
        assert config["errors.tolerance"] == "all"
        assert config["errors.deadletterqueue.context.headers.enable"] == "true"


def test_status_says_what_to_do_about_connectors_that_do_not_run(settings):
    running = [{"id": 0, "state": "RUNNING", "trace": ""}]
    states = [
        connect.ConnectorState("shelf-state-mirror", "sink", "RUNNING", running),
        connect.ConnectorState("alerts-mirror", "sink", "RUNNING", [
            {"id": 0, "state": "FAILED", "trace": "org.apache.kafka.connect.errors..."}]),
        connect.ConnectorState("wh-events-log", "sink", "MISSING"),
        connect.ConnectorState("config-cdc", "source", "RUNNING", []),
    ]
    failed, missing, waiting = connect.remedies(states, settings)
    assert failed.startswith("alerts-mirror: a failed task stays failed until it is restarted")
    assert "`./smart-shelf connect apply`: it restarts failed tasks" in failed
    assert str(settings.logs_dir / "connect.log") in failed
    assert missing.startswith("wh-events-log: not on the worker")
    assert waiting.startswith("config-cdc: not running yet")
    assert connect.remedies(states[:1], settings) == []


# ---------------------------------------------------------------------------------------------
# Rows of a record, generated from its contract
# ---------------------------------------------------------------------------------------------

T0 = datetime(2026, 1, 1, 7, 0, 0, 123456, tzinfo=timezone.utc)


def contract_value(record: Record, store: str, i: int, version: int) -> dict:
    """A valid value of `record` for row `i`: key fields from `i`, the others from `version`
    too, so a later version changes every non-key field. Uuids are the same for the same
    field and `i`, so receipt lines find their header."""
    value = {}
    for f in record.fields:
        n = i if f.name in record.key or f.type.kind == "uuid" else i + version
        kind = f.type.kind
        if f.name == "store_id":
            value[f.name] = store
        elif kind == "uuid":
            value[f.name] = str(uuid.uuid5(NAMESPACE, f"{f.name}-{n}"))
        elif kind == "enum":
            value[f.name] = f.type.enum_values[version % len(f.type.enum_values)]
        elif kind == "string":
            value[f.name] = f"{f.name}-{n}"
        elif kind in ("int", "long"):
            value[f.name] = n + 1  # positive: quantities, batch sizes, line numbers
        elif kind in ("double", "decimal"):
            value[f.name] = round(0.25 + (n % 50) / 100, 2)  # a fraction: discounts, percentages
        elif kind == "bool":
            value[f.name] = n % 2 == 0
        elif kind == "date":
            value[f.name] = (date(2026, 1, 1) + timedelta(days=n)).isoformat()
        elif kind == "timestamp":
            value[f.name] = (T0 + timedelta(seconds=n)).isoformat().replace("+00:00", "Z")
        elif kind == "array":
            value[f.name] = []
    return value


def normalized(value):
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return value


def produce(settings, topic: str, messages: list[tuple[str | None, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "enable.idempotence": True})
    for key, value in messages:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(20) == 0


def produce_rows(settings, prefix: str, defn: SinkDefinition, store: str, rows: range,
                 versions: int = 1) -> dict[tuple, dict]:
    """Each row in `versions` versions (the last wins); returns the mirror expected of them."""
    topic = TOPICS_BY_NAME[defn.topic]
    table = POSTGRES_TABLES_BY_NAME[defn.table]
    expected, messages = {}, []
    for version in range(versions):
        for i in rows:
            value = contract_value(topic.record, store, i, version)
            messages.append((topic.message_key(value), json.dumps(value).encode()))
            row = {f: value[f] for f in table.record.field_names if f in value}
            key = tuple(row[k] for k in table.primary_key)
            if defn.table == "ops.alerts" and key in expected:  # the first created_at stays
                row["created_at"] = expected[key]["created_at"]
            expected[key] = row
    produce(settings, f"{prefix}{topic.name}", messages)
    return expected


def mirror(settings, table_name: str, store: str) -> dict[tuple, dict]:
    table = POSTGRES_TABLES_BY_NAME[table_name]
    columns = table.record.field_names
    with psycopg.connect(settings.postgres_dsn()) as conn:
        rows = conn.execute(f"SELECT {', '.join(columns)} FROM {table_name} WHERE store_id = %s",
                            (store,)).fetchall()
    result = {}
    for row in rows:
        values = {c: normalized(v) for c, v in zip(columns, row) if v is not None}
        result[tuple(values[k] for k in table.primary_key)] = values
    return result


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(1)


def wait_for_mirror(settings, table: str, store: str, expected: dict, timeout: float = 90):
    try:
        wait_for(lambda: mirror(settings, table, store) == expected, timeout, f"{table} mirror")
    except AssertionError:
        actual = mirror(settings, table, store)
        wrong = [k for k in expected if actual.get(k) != expected[k]][:3]
        raise AssertionError(f"{table}: {len(actual)} rows, {len(expected)} expected; e.g. "
                             f"{[(expected[k], actual.get(k)) for k in wrong]}") from None


def wait_running(settings, prefix: str, names: list[str], timeout: float = 120) -> None:
    def running():
        states = {s.name: s for s in connect.status(settings, prefix)}
        return all(states[f"{prefix}{n}"].running for n in names)
    wait_for(running, timeout, f"connectors {names} running")


def messages_of(settings, topic: str, timeout: float = 10) -> list:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap,
                         "group.id": f"test-{uuid.uuid4()}", "enable.auto.commit": False})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    messages, deadline = [], time.monotonic() + timeout
    highs = sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in partitions)
    while len(messages) < highs and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is not None and not msg.error():
            messages.append(msg)
    consumer.close()
    return messages


# ---------------------------------------------------------------------------------------------
# On the stack's worker and database
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def applied(settings, stack):
    """Every connector of connect/connectors.yaml under a prefix of this module's own."""
    prefix = private_prefix()
    topics.create_topic_copies(settings, prefix, partitions=1)
    outcome = connect.apply(settings, prefix)
    assert set(outcome.values()) == {"created"}
    wait_running(settings, prefix, [d.name for d in connect.load_definitions()])
    yield prefix
    remove_connectors(settings, prefix)


@pytest.mark.integration
def test_apply_twice_changes_nothing_and_status_shows_every_task(settings, applied):
    assert set(connect.apply(settings, applied).values()) == {"unchanged"}
    states = connect.status(settings, applied)
    assert [s.name for s in states] == [f"{applied}{d.name}" for d in connect.load_definitions()]
    assert all(s.running and s.tasks for s in states)


@pytest.mark.integration
def test_every_mirror_equals_its_topic_row_for_row(settings, applied):
    store = f"T{uuid.uuid4().hex[:6]}"
    # Headers first: a receipt line references its header.
    order = sorted(SINKS, key=lambda d: d.topic != "pos_transactions")
    expected = {d.table: produce_rows(settings, applied, d, store, range(40), versions=3)
                for d in order}
    for table, rows in expected.items():
        wait_for_mirror(settings, table, store, rows)


@pytest.mark.integration
def test_a_record_that_breaks_the_contract_goes_to_the_dead_letter_topic(settings, applied):
    store = f"T{uuid.uuid4().hex[:6]}"
    sink = next(d for d in SINKS if d.topic == "alerts")
    bad = contract_value(TOPICS_BY_NAME["alerts"].record, store, 0, 0)
    bad["status"] = "forgotten"
    del bad["updated_at"]
    produce(settings, f"{applied}alerts", [(f"{store}|x", json.dumps(bad).encode()),
                                           (f"{store}|y", b"not json")])
    good = produce_rows(settings, applied, sink, store, range(1, 3))  # the sink keeps going
    wait_for_mirror(settings, sink.table, store, good)

    def dead_letters():
        return [m for m in messages_of(settings, f"{applied}{connect.DEAD_LETTER_TOPIC}")
                if m.key() and m.key().decode().startswith(store)]
    dead = wait_for(lambda: (d := dead_letters()) and len(d) == 2 and d, 60, "two dead letters")
    headers = {m.key().decode(): {k: v.decode() for k, v in m.headers()} for m in dead}
    assert headers[f"{store}|x"]["__connect.errors.exception.message"] == (
        "alert: status: 'forgotten' is not one of open, acknowledged, resolved, dismissed; "
        "missing field updated_at")
    assert headers[f"{store}|x"]["__connect.errors.stage"] == "TRANSFORMATION"
    assert headers[f"{store}|y"]["__connect.errors.stage"] == "VALUE_CONVERTER"
    assert headers[f"{store}|y"]["__connect.errors.exception.message"].startswith(
        "Converting byte[] to Kafka Connect data failed")
    assert json.loads(dead[0].value()) == bad
    assert dict(dead[0].headers())["__connect.errors.topic"].decode() == f"{applied}alerts"


def stamp(minute: float) -> str:
    return (T0 + timedelta(minutes=minute)).isoformat().replace("+00:00", "Z")


@pytest.mark.integration
def test_the_alerts_mirror_keeps_each_alert_at_its_furthest_step(settings, applied):
    """Steps that arrive late or twice (a replay, engines of different speeds) never move an
    alert back in ops.alerts, and it keeps its earliest created_at: the Delta alerts sink's rule
    (rules/alerts.furthest_step), applied by a trigger (sql/130_alerts_furthest_step.sql)."""
    from smart_shelf_platform.rules.alerts import STAGE

    with psycopg.connect(settings.postgres_dsn()) as conn:
        stages = dict(conn.execute("SELECT s::text, ops.alert_stage(s) FROM "
                                   "unnest(enum_range(NULL::ops.alert_status)) s").fetchall())
    assert stages == STAGE

    store = f"T{uuid.uuid4().hex[:6]}"
    record = TOPICS_BY_NAME["alerts"].record

    def step(i: int, status: str, minute: float, created: float = 0, stock: int = 5) -> dict:
        return contract_value(record, store, i, 0) | {
            "status": status, "current_stock": stock,
            "created_at": stamp(created), "updated_at": stamp(minute)}

    steps = [
        # 0: resolved first, then the steps it came from, then resolved again (a replay).
        step(0, "resolved", 30, stock=90), step(0, "open", 1), step(0, "acknowledged", 10),
        step(0, "resolved", 30, stock=90),
        # 1: open, acknowledged, then a late copy of its open step with an earlier created_at:
        #    the step stays, created_at moves back.
        step(1, "open", 5, created=5), step(1, "acknowledged", 8, created=5),
        step(1, "open", 5, created=4),
        # 2: the same status later: the later step's fields win; an older one changes nothing.
        step(2, "open", 1, stock=7), step(2, "open", 3, stock=6), step(2, "open", 2, stock=9),
        # 3: last, on the same partition: once it is in the mirror, all of the above are.
        step(3, "open", 1),
    ]
    produce(settings, f"{applied}alerts",
            [(f"{store}|{s['shelf_id']}", json.dumps(s).encode()) for s in steps])
    wait_for(lambda: len(mirror(settings, "ops.alerts", store)) == 4, 90, "the four alerts")
    rows = {k[1]: (r["status"], r["current_stock"], r["created_at"], r["updated_at"])
            for k, r in mirror(settings, "ops.alerts", store).items()}
    alert = {i: step(i, "open", 0)["alert_id"] for i in range(4)}
    assert rows == {
        alert[0]: ("resolved", 90, stamp(0), stamp(30)),
        alert[1]: ("acknowledged", 5, stamp(4), stamp(8)),
        alert[2]: ("open", 6, stamp(0), stamp(3)),
        alert[3]: ("open", 5, stamp(0), stamp(1)),
    }


@pytest.mark.integration
def test_a_policy_changed_in_postgres_reaches_its_topic_in_seconds(settings, applied):
    """The engines fold `shelf_policies` live (test_alert_engines); what matters here is that a
    change arrives there at once, keyed and shaped as the contract says."""
    store = f"T{uuid.uuid4().hex[:6]}"
    topic = TOPICS_BY_NAME["shelf_policies"]
    policy_id = str(uuid.uuid4())
    with psycopg.connect(settings.postgres_dsn(), autocommit=True) as conn:
        conn.execute("INSERT INTO config.shelf_policies VALUES (%s, %s, NULL, NULL, NULL, 30, 1, "
                     "80, true, 'test', %s, %s)", (store, policy_id, T0, T0))
        started = time.monotonic()
        conn.execute("UPDATE config.shelf_policies SET threshold_pct = 55.5, updated_at = %s "
                     "WHERE store_id = %s", (T0 + timedelta(minutes=1), store))
        key = f"{store}|{policy_id}"

        def versions():
            found = [m for m in messages_of(settings, f"{applied}shelf_policies")
                     if m.key().decode() == key]
            return len(found) == 2 and found
        found = wait_for(versions, 30, "the insert and the update on the topic")
        latency = time.monotonic() - started
        conn.execute("DELETE FROM config.shelf_policies WHERE store_id = %s", (store,))
    assert latency < 15
    value = json.loads(found[-1].value())
    jsonschema.validate(value, topic.record.json_schema())
    assert value["threshold_pct"] == 55.5 and value["updated_at"] == "2026-01-01T07:01:00.123456Z"
    # The delete is not turned into a tombstone the engines could not read.
    time.sleep(3)
    assert all(m.value() is not None for m in messages_of(settings, f"{applied}shelf_policies")
               if m.key().decode() == key)


# ---------------------------------------------------------------------------------------------
# Connectors of the test's own on a database of its own (the stack's worker and server)
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def own_connectors(settings, stack):
    """A migrated database and a topic prefix of the test's own: rows of the platform's stores
    written there reach no other test, and its connectors (applied by the test) write their
    own topics and tables."""
    prefix = private_prefix()
    with own_database(settings) as own:
        topics.create_topic_copies(own, prefix, partitions=1)
        try:
            yield own, prefix
        finally:
            remove_connectors(own, prefix)


def shelf_state(shelf_id: str, stock: int, version: int, at: datetime, cap: int = 100) -> dict:
    return {"store_id": STORE, "shelf_id": shelf_id, "current_stock": stock, "max_stock": cap,
            "unit_weight": 100.0, "shelf_weight": 100.0 * stock, "version": version,
            "last_update_ts": at.isoformat().replace("+00:00", "Z")}


# This test found that the engines dropped a policy edit made within the dedupe watermark of the
# previous one (deduplicated by key alone); they now deduplicate on the key and `updated_at`.
@pytest.mark.integration
def test_a_policy_raised_in_postgres_makes_the_running_shelf_engine_alert_in_seconds(
        settings, spark, redis_conn, own_connectors, tmp_path):
    """Postgres -> CDC -> shelf_policies -> the shelf alert engine, running continuously ->
    alerts -> the alerts mirror back in Postgres."""
    from streaming import shelf_alert_engine

    own, prefix = own_connectors
    shelf = store_reference(settings, "store_inventory")[0]["shelf_id"]
    policy_id = str(uuid.uuid4())
    with psycopg.connect(own.postgres_dsn(), autocommit=True) as conn:
        conn.execute("INSERT INTO config.shelf_policies VALUES (%s, %s, %s, NULL, NULL, 30, 1, "
                     "80, true, 'test', %s, %s)", (STORE, policy_id, shelf, T0, T0))
    alerts_mirror = next(d for d in SINKS if d.topic == "alerts")
    connect.apply(own, prefix, [SOURCE, alerts_mirror])
    wait_running(own, prefix, [SOURCE.name, alerts_mirror.name])

    ctx = private_context(own, redis_conn, f"{prefix}clock:", tmp_path, topic_prefix=prefix)
    query = shelf_alert_engine.QUERY.start(spark, ctx, trigger_seconds=0.4)  # 1 s batches

    def refill_alerts() -> list[dict]:
        steps = [json.loads(m.value()) for m in messages_of(own, f"{prefix}alerts")]
        return [s for s in steps if s["alert_type"] == "refill_request" and s["shelf_id"] == shelf]

    try:
        # 40 of 100 units: fine under the shelf's 30 % policy. The engine folds the policy (the
        # CDC snapshot) and the state, and says nothing.
        produce_to(ctx, "shelf_state", [shelf_state(shelf, 40, 2, T0)])
        wait_for(lambda: sum(p["numInputRows"] for p in query.recentProgress) >= 2, 60,
                 "the engine to read the policy and the shelf's state")
        assert query.exception() is None and refill_alerts() == []

        with psycopg.connect(own.postgres_dsn(), autocommit=True) as conn:
            started = time.monotonic()
            conn.execute("UPDATE config.shelf_policies SET threshold_pct = 50, updated_at = %s "
                         "WHERE store_id = %s AND policy_id = %s",
                         (T0 + timedelta(minutes=1), STORE, policy_id))
            alert = wait_for(refill_alerts, 30, "a refill request on the alerts topic")[0]
            to_alert = time.monotonic() - started
            mirrored = wait_for(lambda: conn.execute(
                "SELECT status, threshold_pct FROM ops.alerts WHERE store_id = %s AND "
                "alert_id = %s", (STORE, alert["alert_id"])).fetchone(), 30,
                "the alert in ops.alerts")
            to_mirror = time.monotonic() - started
    finally:
        query.stop()
    print(f"\npolicy UPDATE -> refill_request on the alerts topic {to_alert:.1f} s, "
          f"-> ops.alerts {to_mirror:.1f} s")
    assert (alert["status"], alert["threshold_pct"], alert["stock_pct"]) == ("open", 50.0, 40.0)
    assert alert["suggested_qty"] == 40  # up to the policy's 80 % target
    assert mirrored == ("open", Decimal("50.00"))
    # Generous on two busy cores: CDC about a second, then one or two engine batches.
    assert to_alert < 30


# ---------------------------------------------------------------------------------------------
# A short simulated run through the whole pipeline, mirrored by connectors of its own
# ---------------------------------------------------------------------------------------------

SIMULATED = timedelta(minutes=30)


@pytest.fixture(scope="module")
def drained_run(settings, spark, tmp_path_factory):
    """Simulator -> Redis -> bridge -> Kafka -> every streaming query until drained, on a
    database (reference data loaded: the simulator writes its ledger there), topics, Delta root
    and clock of the module's own, with every sink applied to them from the start."""
    import redis

    from producers.run import SimulateOptions, simulate
    from smart_shelf_platform_tests.test_daily_features import drop_database, private_database
    from smart_shelf_platform_tests.test_streaming_e2e import bridge_into
    from streaming import runner

    tmp = tmp_path_factory.mktemp("connect-run")
    own = private_database(settings, delta_root_override=str(tmp / "delta"))
    client = redis.Redis.from_url(own.redis_url)
    prefix, run = private_prefix(), uuid.uuid4().hex[:8]
    clock_prefix, stream_prefix = f"connect-{run}:", f"connect-streams-{run}:"
    try:
        topics.create_topic_copies(own, prefix, partitions=1)
        ctx = private_context(own, client, clock_prefix, tmp, topic_prefix=prefix)
        connect.apply(own, prefix, SINKS)
        simulate(own, SimulateOptions(
            until=own.sim_start + SIMULATED, speed=None, effects=False,
            stream_prefix=stream_prefix, clock_key_prefix=clock_prefix,
            clock_topic=ctx.topic("clock_ticks")), progress=lambda _m: None)
        bridge_into(ctx, own, stream_prefix)
        for stage in runner.STAGES:  # as `stream --until-drained`: stage by stage
            queries = [spec.start(spark, ctx, available_now=True) for spec in stage]
            for query in queries:
                query.awaitTermination(300)
                assert query.exception() is None, query.exception()
        yield own, ctx
    finally:
        with contextlib.suppress(Exception):
            remove_connectors(own, prefix)
        for pattern in (f"{clock_prefix}*", f"{stream_prefix}*"):
            if keys := list(client.scan_iter(match=pattern)):
                client.delete(*keys)
        client.close()
        drop_database(settings, own)


def comparable(record: Record, row: dict) -> tuple:
    """A row of `record` from JSON, Delta or Postgres as plain comparable values."""
    values = []
    for f in record.fields:
        value, kind = row.get(f.name), f.type.kind
        if value is None:
            pass
        elif kind == "timestamp":
            if isinstance(value, str):
                value = datetime.fromisoformat(value.replace("Z", "+00:00"))
            value = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
            value = value.astimezone(timezone.utc)
        elif kind == "date" and isinstance(value, str):
            value = date.fromisoformat(value)
        elif kind == "decimal":
            value = round(float(value), f.type.scale)
        elif kind == "double":
            value = float(value)
        elif kind == "uuid":
            value = str(value)
        values.append(value)
    return tuple(values)


def table_rows(settings, table: PostgresTable) -> set[tuple]:
    with psycopg.connect(settings.postgres_dsn()) as conn:
        rows = conn.execute(f"SELECT {', '.join(table.record.field_names)} "
                            f"FROM {table.qualified_name}").fetchall()
    return {comparable(table.record, dict(zip(table.record.field_names, r))) for r in rows}


def latest_per_key(settings, topic: str, table: PostgresTable) -> set[tuple]:
    """What an upsert by the table's key makes of the topic: the last record of each key."""
    latest = {}
    for message in messages_of(settings, topic, timeout=60):
        value = json.loads(message.value())
        latest[tuple(value[k] for k in table.primary_key)] = value
    return {comparable(table.record, v) for v in latest.values()}


# The Delta table each mirror's rows come from. ops.wh_events is compared with its topic: the
# managers publish warehouse moves after the aggregator's last pass of a drain. Receipt lines
# are nested in Delta; the batch state updater publishes them flat.
DELTA_SOURCES = {
    "state.shelf_state": "cleansed/shelf_state", "state.wh_state": "cleansed/wh_state",
    "state.shelf_batch_state": "cleansed/shelf_batch_state",
    "state.wh_batch_state": "cleansed/wh_batch_state",
    "ops.shelf_restock_plan": "ops/shelf_restock_plan",
    "ops.wh_supplier_plan": "ops/wh_supplier_plan",
    "analytics.daily_discounts": "analytics/daily_discounts",
    "ops.alerts": "ops/alerts",  # one row per alert at its furthest step: the same rule twice
    "ops.pos_transactions": "raw/pos_transactions",
}


@pytest.mark.integration
def test_after_a_simulated_run_drains_every_mirror_equals_its_source_row_for_row(drained_run):
    """Each mirror against its Delta table, or the last record per key of its topic where the
    pipeline keeps no Delta table of the same rows. The sinks ran while the queries did, so
    this also shows them converged."""
    from smart_shelf_platform_tests.streaming_support import delta_rows

    own, ctx = drained_run
    expected = {}
    for defn in SINKS:
        table = POSTGRES_TABLES_BY_NAME[defn.table]
        if path := DELTA_SOURCES.get(defn.table):
            expected[defn.table] = {comparable(table.record, r) for r in delta_rows(ctx, path)}
        else:
            expected[defn.table] = latest_per_key(own, ctx.topic(defn.topic), table)
    sizes = {t: len(rows) for t, rows in expected.items()}
    print(f"\nrows per mirror after {SIMULATED}: {sizes}")
    # A morning's half hour writes every kind of row but discounts: those are decided at the
    # day's first tick (00:00); the crafted rows above cover their mirror.
    assert all(sizes[t] for t in sizes if t != "analytics.daily_discounts"), sizes

    def differences() -> dict:
        found = {}
        for defn in SINKS:
            actual = table_rows(own, POSTGRES_TABLES_BY_NAME[defn.table])
            if actual != expected[defn.table]:
                found[defn.table] = (len(actual), len(expected[defn.table]),
                                     sorted(actual ^ expected[defn.table], key=str)[:2])
        return found

    started = time.monotonic()
    with contextlib.suppress(AssertionError):
        wait_for(lambda: not differences(), 120, "every mirror to equal its source")
    assert not differences(), differences()
    print(f"mirrors equal their sources {time.monotonic() - started:.0f} s after the drain")


# ---------------------------------------------------------------------------------------------
# Faults: a Postgres and a worker of the test's own
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def private_stack(settings, stack):
    home = REPO_ROOT / ".smart_shelf_test" / f"connect-faults-{uuid.uuid4().hex[:6]}"
    own = settings.model_copy(update={"home": home, "postgres_port": settings.postgres_port + 7,
                                      "connect_port": settings.connect_port + 7})
    postgres = Postgres(own)
    worker = Connect(own, group_id=f"{home.name}", storage_prefix=f"_{home.name}")
    prefix = private_prefix()
    try:
        postgres.start()
        migrations.ensure_database_and_roles(own)
        migrations.apply_migrations(own)
        topics.create_topic_copies(own, prefix, partitions=1)
        worker.start()
        yield own, postgres, worker, prefix
    finally:
        with contextlib.suppress(Exception):  # best effort: the test may have failed mid-fault
            remove_connectors(own, prefix)
        worker.stop()
        postgres.stop()
        admin = topics.admin_client(own)
        storage = [t for t in admin.list_topics(timeout=10).topics
                   if t.startswith(worker.storage_prefix)]
        for future in admin.delete_topics(storage).values():
            future.result()
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.integration
def test_mirrors_converge_after_postgres_stops_for_a_minute_and_the_worker_restarts(
        private_stack):
    own, postgres, worker, prefix = private_stack
    definitions = [SOURCE, *(d for d in SINKS if d.topic in ("shelf_state", "wh_events"))]
    connect.apply(own, prefix, definitions)
    wait_running(own, prefix, [d.name for d in definitions])
    store = "TFAULT"
    state, events = definitions[1], definitions[2]
    expected_state = produce_rows(own, prefix, state, store, range(50), versions=2)
    expected_events = produce_rows(own, prefix, events, store, range(50))
    wait_for_mirror(own, state.table, store, expected_state)
    wait_for_mirror(own, events.table, store, expected_events)

    postgres.stop()
    expected_state = produce_rows(own, prefix, state, store, range(50), versions=4)
    expected_events |= produce_rows(own, prefix, events, store, range(50, 100))
    time.sleep(60)
    postgres.start()
    wait_for_mirror(own, state.table, store, expected_state, timeout=120)
    wait_for_mirror(own, events.table, store, expected_events)
    # CDC resumes too: a policy written after the restart reaches its topic.
    with psycopg.connect(own.postgres_dsn(), autocommit=True) as conn:
        conn.execute("INSERT INTO config.wh_policies VALUES (%s, %s, NULL, NULL, NULL, 5, true, "
                     "NULL, %s, %s)", (store, str(uuid.uuid4()), T0, T0))
    wait_for(lambda: any(m.key().decode().startswith(store)
                         for m in messages_of(own, f"{prefix}wh_policies")), 60,
             "a policy written after the Postgres restart on its topic")

    worker.stop()
    worker.start()
    expected_events |= produce_rows(own, prefix, events, store, range(100, 150))
    wait_running(own, prefix, [d.name for d in definitions])
    wait_for_mirror(own, events.table, store, expected_events)
    wait_for_mirror(own, state.table, store, expected_state)
    # Replayed records were upserts: one row per key, whatever was written twice.
    with psycopg.connect(own.postgres_dsn()) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT event_id) FROM ops.wh_events "
                            "WHERE store_id = %s", (store,)).fetchone() == (150, 150)


@pytest.mark.integration
def test_receipt_lines_are_flattened_into_the_sinks_contract(spark):
    from streaming.batch_state_updater import receipt_lines

    receipt = contract_value(TOPICS_BY_NAME["pos_transactions"].record, "S001", 0, 0)
    receipt["items"] = [contract_value(TOPICS_BY_NAME["pos_transaction_items"].record, "S001", n, 0)
                        for n in (1, 2)]
    for line in receipt["items"]:
        del line["store_id"], line["transaction_id"]
    frame = (spark.read.schema(TOPICS_BY_NAME["pos_transactions"].record.spark_schema())
             .json(spark.sparkContext.parallelize([json.dumps(receipt)])))
    lines = [row.asDict() for row in receipt_lines(frame).collect()]
    record = TOPICS_BY_NAME["pos_transaction_items"].record
    assert [list(line) for line in lines] == [record.field_names] * 2
    assert [(line["transaction_id"], line["line_no"]) for line in lines] == [
        (receipt["transaction_id"], 2), (receipt["transaction_id"], 3)]
