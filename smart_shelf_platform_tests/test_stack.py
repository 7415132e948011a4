"""Integration tests against the real local stack started by the test session."""

from __future__ import annotations

import json
import socket
import uuid

import psycopg
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from deltalake import DeltaTable

from smart_shelf_platform.contracts import events
from smart_shelf_platform.contracts.catalogue import (
    DELTA_TABLES, POSTGRES_SCHEMAS, POSTGRES_TABLES, POSTGRES_VIEWS, TOPICS,
)
from smart_shelf_platform.stack import lifecycle, topics
from smart_shelf_platform.stack.isolated import isolated_settings
from smart_shelf_platform.stack.components import all_components
from smart_shelf_platform.stack.delta_tables import table_uri
from smart_shelf_platform.stack.process import StackError

pytestmark = pytest.mark.integration


def test_every_topic_exists_with_its_cleanup_policy_and_partitions(settings):
    described = topics.describe_topics(settings)
    assert set(described) == {t.name for t in TOPICS}
    for t in TOPICS:
        got = described[t.name]
        assert got["config"]["cleanup.policy"] == t.cleanup_policy, t.name
        assert got["partitions"] == (t.partitions or settings.kafka_partitions), t.name
        if not t.compacted:
            assert got["config"]["retention.ms"] == str(settings.kafka_retention_ms)


def _pg_columns(conn, qualified: str) -> list[tuple[str, str, bool]]:
    schema, name = qualified.split(".")
    return conn.execute(
        """SELECT a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull
           FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
           ORDER BY a.attnum""", (schema, name)).fetchall()


def _pg_primary_key(conn, qualified: str) -> list[str]:
    return [r[0] for r in conn.execute(
        """SELECT a.attname FROM pg_index i
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
           WHERE i.indrelid = %s::regclass AND i.indisprimary
           ORDER BY array_position(i.indkey, a.attnum)""", (qualified,)).fetchall()]


def test_postgres_ddl_matches_the_contracts(settings):
    with psycopg.connect(settings.postgres_dsn()) as conn:
        schemas = {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace")}
        assert set(POSTGRES_SCHEMAS) <= schemas
        for table in POSTGRES_TABLES:
            expected = [(f.name, f.type.postgres, f.nullable) for f in table.record.fields]
            assert _pg_columns(conn, table.qualified_name) == expected, table.qualified_name
            assert _pg_primary_key(conn, table.qualified_name) == list(table.primary_key)
        for view in POSTGRES_VIEWS:
            assert _pg_columns(conn, view), f"view {view} is missing"


def test_reader_role_reads_but_cannot_write_and_writer_can(settings):
    reader = settings.postgres_dsn("smart_shelf_reader", settings.postgres_reader_password)
    writer = settings.postgres_dsn("smart_shelf_writer", settings.postgres_writer_password)
    with psycopg.connect(reader) as conn:
        assert conn.execute("SELECT count(*) FROM ref.store_inventory_snapshot").fetchone()[0] > 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM config.shelf_policies")
    with psycopg.connect(writer) as conn:
        conn.execute("UPDATE config.shelf_policies SET notes = notes WHERE false")


def test_every_delta_table_exists_with_its_contract_schema(settings):
    for spec in DELTA_TABLES:
        table = DeltaTable(table_uri(settings.delta_root, spec))
        arrow = pa_schema(table)
        assert arrow.names == spec.record.field_names, spec.path
        for field in spec.record.arrow_schema():
            assert arrow.field(field.name).type == field.type, f"{spec.path}.{field.name}"
        assert list(table.metadata().partition_columns) == list(spec.partition_by)


def pa_schema(table: DeltaTable):
    import pyarrow as pa

    return pa.schema(table.schema().to_arrow())


def test_reference_data_is_loaded_into_ref_and_config(settings):
    with psycopg.connect(settings.postgres_dsn()) as conn:
        def count(sql: str) -> int:
            return conn.execute(sql).fetchone()[0]
        assert count("SELECT count(*) FROM ref.store_inventory_snapshot") == 1142 * settings.stores
        assert count("SELECT count(DISTINCT item_category) FROM ref.store_inventory_snapshot") == 29
        # one store-wide default policy plus one per shelf
        assert count("SELECT count(*) FROM config.shelf_policies") == 1143 * settings.stores
        assert count("SELECT count(*) FROM config.shelf_policies WHERE shelf_id IS NULL "
                     "AND threshold_pct = 30 AND min_qty = 1 AND target_pct = 80") == settings.stores
        assert count("""SELECT count(*) FROM config.wh_policies p
                        JOIN ref.warehouse_inventory_snapshot w USING (store_id, shelf_id)
                        WHERE p.reorder_point_qty <> greatest(1, floor(0.05 * w.maximum_stock))
                     """) == 0


def test_kafka_produce_consume_round_trip(settings):
    topic = "shelf_events"
    event = {"event_id": str(uuid.uuid4()), "store_id": "S999", "shelf_id": "TSTROU0001"}
    delivered = []
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "enable.idempotence": True})
    producer.produce(topic, key="S999|TSTROU0001", value=json.dumps(event),
                     on_delivery=lambda err, msg: delivered.append((err, msg)))
    assert producer.flush(10) == 0
    err, sent = delivered[0]
    assert err is None
    # Read back exactly where the broker says it stored the event (the topic holds other data).
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap,
                         "group.id": f"roundtrip-{uuid.uuid4()}"})
    consumer.assign([TopicPartition(topic, sent.partition(), sent.offset())])
    try:
        msg = None
        for _ in range(30):
            msg = consumer.poll(1.0)
            if msg is not None and not msg.error():
                break
    finally:
        consumer.close()
    assert msg is not None and not msg.error(), "the produced event never came back"
    assert json.loads(msg.value()) == event
    assert msg.key() == b"S999|TSTROU0001"


def test_spark_reads_a_kafka_topic_and_writes_a_delta_table(settings, spark, tmp_path):
    from pyspark.sql import functions as F

    topic = f"spark-probe-{uuid.uuid4().hex[:8]}"
    admin = topics.admin_client(settings)
    from confluent_kafka.admin import NewTopic
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result()
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    rows = [{"event_id": str(uuid.uuid4()), "event_type": "pickup", "store_id": "S001",
             "shelf_id": f"TSTSPK{i:04d}", "actor": "customer", "customer_id": None,
             "batch_code": None, "quantity": i + 1, "unit_weight": 10.0, "delta_weight": None,
             "plan_id": None, "timestamp": "2026-01-01T07:00:00Z"} for i in range(5)]
    for row in rows:
        producer.produce(topic, value=json.dumps(row))
    producer.flush(10)
    try:
        parsed = (spark.read.format("kafka")
                  .option("kafka.bootstrap.servers", settings.kafka_bootstrap)
                  .option("subscribe", topic).option("startingOffsets", "earliest").load()
                  .select(F.from_json(F.col("value").cast("string"),
                                      events.SHELF_EVENT.spark_schema()).alias("e"))
                  .select("e.*"))
        target = str(tmp_path / "delta_probe")
        parsed.write.format("delta").mode("overwrite").save(target)
        written = DeltaTable(target).to_pyarrow_table()
        assert sorted(written.column("quantity").to_pylist()) == [1, 2, 3, 4, 5]
        assert written.schema.names == events.SHELF_EVENT.field_names
    finally:
        admin.delete_topics([topic])


def test_up_twice_is_harmless(settings, stack):
    again = lifecycle.up(settings, progress=lambda _m: None)
    assert again.started == []
    assert set(again.topics.values()) == {"aligned"}
    assert again.migrations == []
    assert set(again.delta_tables.values()) == {"exists"}
    assert again.reference_rows == stack.reference_rows


def test_status_reports_every_component_healthy_with_pid_and_memory(settings):
    rows = lifecycle.status(settings)
    assert [r.name for r in rows] == ["postgres", "redis", "kafka", "connect"]
    for r in rows:
        assert r.healthy and r.pid and r.rss_bytes > 0, r


def test_a_taken_port_fails_with_one_clear_line_and_leaves_nothing_running(settings):
    broken = isolated_settings(settings, "taken-port", 300)
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", broken.kafka_port))
    blocker.listen()
    try:
        with pytest.raises(StackError, match=f"port {broken.kafka_port} for kafka is already "
                                             "taken"):
            lifecycle.up(broken, progress=lambda _m: None)
    finally:
        blocker.close()
    # Postgres and Redis were started before Kafka failed: they must be stopped again.
    assert all(c.pid() is None for c in all_components(broken))

