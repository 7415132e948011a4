"""Helpers for tests of streaming queries: topics and tables of the test's own, Kafka I/O."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

import pyarrow.compute as pc
import pyarrow.parquet as pq

from confluent_kafka import Consumer, Producer, TopicPartition
from deltalake import DeltaTable

from smart_shelf_platform.clock import RedisClock, tick_event
from smart_shelf_platform.contracts.catalogue import TOPICS_BY_NAME
from smart_shelf_platform.contracts.state import WH_SUPPLIER_ORDER
from smart_shelf_platform.stack import topics
from smart_shelf_platform.stack.delta_tables import ensure_delta_tables
from streaming import driver_writes, shell
from streaming.ids import supplier_id


def private_context(settings, redis_conn, key_prefix: str, tmp_path,
                    topic_prefix: str | None = None, **overrides) -> shell.QueryContext:
    """Every catalogue topic under a fresh prefix (one partition: order is kept), every table
    under `tmp_path/delta`, the clock under `key_prefix`. Delete the topics with `drop_topics`.
    With `topic_prefix`, the topics under it are the caller's (e.g. those its connectors use)."""
    if topic_prefix is None:
        topic_prefix = f"t{uuid.uuid4().hex[:8]}-"
        topics.create_topic_copies(settings, topic_prefix, partitions=1)
    delta_root = str(tmp_path / "delta")
    ensure_delta_tables(delta_root)
    return shell.QueryContext.from_settings(
        settings, delta_root=delta_root, topic_prefix=topic_prefix,
        clock=RedisClock(redis_conn, key_prefix),
        checkpoint_root=str(tmp_path / "checkpoints"), **overrides)


def drop_topics(ctx: shell.QueryContext) -> None:
    topics.delete_topic_copies(ctx.settings, ctx.topic_prefix)


def produce(ctx: shell.QueryContext, topic: str, payloads: Iterable[bytes | dict]) -> None:
    """Send to the context's `topic`, keyed as the catalogue keys it (dicts are JSON-encoded)."""
    producer = Producer({"bootstrap.servers": ctx.settings.kafka_bootstrap,
                         "enable.idempotence": True})
    spec = TOPICS_BY_NAME.get(topic)
    for payload in payloads:
        key = None
        if isinstance(payload, dict):
            key = spec.message_key(payload) if spec else None
            payload = json.dumps(payload).encode()
        producer.produce(ctx.topic(topic), key=key, value=payload)
    assert producer.flush(10) == 0


def consume_all(ctx: shell.QueryContext, topic: str) -> list:
    """Every message of the context's one-partition `topic`, in order."""
    name = ctx.topic(topic)
    consumer = Consumer({"bootstrap.servers": ctx.settings.kafka_bootstrap,
                         "group.id": f"test-{uuid.uuid4()}", "enable.auto.commit": False})
    _, high = consumer.get_watermark_offsets(TopicPartition(name, 0), timeout=10)
    consumer.assign([TopicPartition(name, 0, 0)])
    messages = []
    try:
        while len(messages) < high:
            msg = consumer.poll(5.0)
            assert msg is not None, f"only {len(messages)} of {high} messages came back"
            if not msg.error():
                messages.append(msg)
    finally:
        consumer.close()
    return messages


def delta_rows(ctx: shell.QueryContext, path: str) -> list[dict]:
    return DeltaTable(ctx.table(path)).to_pyarrow_table().to_pylist()


def run_to_end(spark, ctx: shell.QueryContext, spec: shell.StreamingQuerySpec) -> int:
    """Run a query over what its topics hold now; returns the input rows it read."""
    query = spec.start(spark, ctx, available_now=True)
    query.awaitTermination(180)
    assert query.exception() is None, query.exception()
    assert not query.isActive
    return sum(p["numInputRows"] for p in query.recentProgress)


def replay_last_batch(ctx: shell.QueryContext, query_name: str) -> int:
    """Forget the last committed micro-batch, as a crash after its writes but before the
    checkpoint commit would; the next run processes it again. Returns its batch id."""
    from pathlib import Path

    commits = Path(ctx.checkpoint(query_name)) / "commits"
    last = max((p for p in commits.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    last.unlink()
    (commits / f".{last.name}.crc").unlink(missing_ok=True)
    return int(last.name)


STORE = "S001"
T0 = datetime(2026, 1, 1, 9, 0, tzinfo=timezone.utc)  # the crafted events' morning


def at(minutes: float) -> str:
    """ISO-8601 text of T0 + `minutes`, as events carry it."""
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def store_reference(settings, name: str) -> list[dict]:
    """Rows of one reference data file for STORE, ordered by shelf."""
    from smart_shelf_platform.stack.lifecycle import reference_files

    table = pq.read_table(reference_files(settings)[name])
    return sorted(table.filter(pc.equal(table["store_id"], STORE)).to_pylist(),
                  key=lambda r: (r["shelf_id"], r.get("batch_code") or ""))


def tick(moment: datetime) -> dict:
    """The clock's tick record for the simulated minute `moment`."""
    return tick_event(moment, datetime(2026, 11, 23, tzinfo=timezone.utc), 60.0)


def replay_last_decision(ctx: shell.QueryContext, query_name: str) -> int:
    """For a driver query (`streaming.driver_query`): forget everything from its last batch that
    had input (a crash after that batch's writes, before its commit; any empty batch after it
    never ran), so the next run decides that batch again. Returns its batch id."""
    from pathlib import Path

    checkpoint = Path(ctx.checkpoint(query_name))
    last = max(int(p.stem) for p in (checkpoint / "driver_state").glob("*.json"))
    for log_dir, first_gone in (("commits", last), ("offsets", last + 1)):
        for path in (checkpoint / log_dir).iterdir():
            if path.name.isdigit() and int(path.name) >= first_gone:
                path.unlink()
                (checkpoint / log_dir / f".{path.name}.crc").unlink(missing_ok=True)
    return last


def drop_redis_keys(client, *prefixes: str) -> None:
    """Delete every Redis key under the given prefixes (a run's clock, streams, progress)."""
    for prefix in prefixes:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)


def supplier_delivery(ctx: shell.QueryContext, lot: dict, units: int, when: str) -> dict:
    """The `wh_in` the supplier manager makes when it delivers an order of `units` of `lot`
    (shelf_id, batch_code, received_date, expiry_date), with the order put in its table first:
    a delivery must match an order the platform placed (`streaming.provenance`)."""
    order_id, at_ = str(uuid.uuid4()), datetime.fromisoformat(when.replace("Z", "+00:00"))
    order = {"store_id": STORE, "order_id": order_id, "shelf_id": lot["shelf_id"],
             "delivery_date": at_.date(), "total_qty": units, "standard_batch_size": units,
             "status": "issued", "cutoff_ts": at_, "delivery_ts": at_, "created_at": at_,
             "updated_at": at_}
    driver_writes.upsert(DeltaTable(ctx.table("ops/wh_supplier_orders")), WH_SUPPLIER_ORDER,
                         [order], f"test-order-{order_id}", 0)
    return {"event_id": supplier_id("wh_in", order_id), "event_type": "wh_in",
            "store_id": STORE, "shelf_id": lot["shelf_id"], "batch_code": lot["batch_code"],
            "quantity": units, "plan_id": None, "supplier_order_id": order_id,
            "received_date": str(lot["received_date"]), "expiry_date": str(lot["expiry_date"]),
            "reason": "supplier_delivery", "timestamp": when}
