"""Helpers for Kafka Connect tests: connectors, topics and a replication slot of the test's own."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator

import psycopg
from psycopg import sql

from smart_shelf_platform.stack import connect, migrations, topics
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


@contextlib.contextmanager
def own_database(settings) -> Iterator:
    """Settings of a migrated database of the caller's own on the stack's Postgres (no reference
    data), dropped afterwards: connectors under a private prefix capture and mirror it, so rows a
    test writes there reach no other test's tables or topics. Remove the connectors first (a
    replication slot keeps its database from being dropped)."""
    own = settings.model_copy(update={"postgres_db": f"connect_{uuid.uuid4().hex[:12]}"})
    migrations.ensure_database_and_roles(own)
    try:
        migrations.apply_migrations(own)
        yield own
    finally:
        with psycopg.connect(settings.postgres_dsn(db="postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(own.postgres_db)))
