"""Helpers for Kafka Connect tests: connectors, topics and a replication slot of the test's own."""

from __future__ import annotations

import time
import uuid

import psycopg

from smart_shelf_platform.stack import connect, topics
from smart_shelf_platform.stack.connect import ConnectClient


def private_prefix() -> str:
    return f"c{uuid.uuid4().hex[:8]}-"


def remove_connectors(settings, prefix: str) -> None:
    """Delete the prefix's connectors, then its replication slot and publication (a slot left
    behind makes Postgres keep WAL for it), then its topics."""
    client = ConnectClient(settings)
    for defn in connect.load_definitions():
        client.request("DELETE", f"/connectors/{prefix}{defn.name}")
    slot = connect.slot_name(prefix)
    with psycopg.connect(settings.postgres_dsn(), autocommit=True) as conn:
        deadline = time.monotonic() + 30
        while conn.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s",
                           (slot,)).fetchone() == (True,) and time.monotonic() < deadline:
            time.sleep(0.5)  # the deleted task lets go of its slot
        conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                     "WHERE slot_name = %s", (slot,))
        conn.execute(f"DROP PUBLICATION IF EXISTS {slot}")
    topics.delete_topic_copies(settings, prefix)
    admin = topics.admin_client(settings)
    extra = [t for t in admin.list_topics(timeout=10).topics
             if t == f"{prefix}{connect.DEAD_LETTER_TOPIC}" or t.endswith(f".{slot}")]
    if extra:
        for future in admin.delete_topics(extra).values():
            future.result()
