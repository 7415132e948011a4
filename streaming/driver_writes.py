"""Small Delta writes from the driver, with delta-rs (the Kafka messages that go with them:
`smart_shelf_platform.publisher`).

A live micro-batch changes a handful of rows of a state or decision table. Spark's MERGE runs
about eight jobs for that, most of a second of driver work on two cores and most of a `state`
batch; delta-rs reads the touched rows and upserts them in tens of milliseconds. Spark still
reads, checks and dedupes the events and computes each batch's changes; only these upserts
move to the driver. They stay idempotent like Spark's writes: each commit records the
transaction (app id, batch id) and a batch whose transaction the table already holds writes
nothing (`applied`: a replay after a crash).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import pyarrow as pa
from deltalake import DeltaTable, QueryBuilder, write_deltalake
from deltalake.transaction import CommitProperties, Transaction

from smart_shelf_platform.contracts.types import Record


def applied(table: DeltaTable, app_id: str, batch_id: int) -> bool:
    """The table already holds this batch's commit (Spark's `txnAppId`/`txnVersion` rule)."""
    version = table.transaction_version(app_id)
    return version is not None and version >= batch_id


def _commit(app_id: str, batch_id: int) -> CommitProperties:
    # `userMetadata` is where Spark's writes put it: a table's history says what each batch did.
    return CommitProperties(
        app_transactions=[Transaction(app_id=app_id, version=batch_id)],
        custom_metadata={"userMetadata": json.dumps({"query": app_id, "batch": batch_id})})


def _sql_text(value) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def rows_by_key(table: DeltaTable, key: tuple[str, ...],
                wanted: Iterable[tuple]) -> dict[tuple, dict]:
    """The table's rows with these keys, read without Spark (files pruned by key values)."""
    wanted = set(wanted)
    if not wanted:
        return {}
    where = " AND ".join(
        f"{column} IN ({', '.join(sorted({_sql_text(k[i]) for k in wanted}))})"
        for i, column in enumerate(key))
    found = QueryBuilder().register("t", table).execute(f"SELECT * FROM t WHERE {where}")
    rows = pa.table(found.read_all()).to_pylist()
    return {k: r for r in rows if (k := tuple(r[c] for c in key)) in wanted}


def upsert(table: DeltaTable, record: Record, rows: list[dict], app_id: str,
           batch_id: int) -> bool:
    """Insert or replace `rows` (one per key of `record`) in one commit, once per batch id.
    Returns False when the table already had this batch (nothing written)."""
    if not rows or applied(table, app_id, batch_id):
        return False
    source = pa.Table.from_pylist(rows, schema=record.arrow_schema())
    on = " AND ".join(f"t.{k} = s.{k}" for k in record.key)
    (table.merge(source, on, source_alias="s", target_alias="t",
                 commit_properties=_commit(app_id, batch_id))
     .when_matched_update_all().when_not_matched_insert_all().execute())
    return True


def append(path: str, rows: pa.Table, app_id: str, batch_id: int) -> bool:
    """Append `rows` once per (app id, batch id); False when they were already written."""
    table = DeltaTable(path)
    if applied(table, app_id, batch_id):
        return False
    append_rows(table, rows, app_id, batch_id)
    return True


def append_rows(table: DeltaTable, rows: pa.Table, app_id: str, batch_id: int) -> None:
    """Append `rows` in a commit recording (app id, batch id); the caller checked `applied`."""
    write_deltalake(table, rows, mode="append", commit_properties=_commit(app_id, batch_id))


def is_empty(path: str) -> bool:
    return DeltaTable(path).to_pyarrow_dataset().count_rows() == 0


