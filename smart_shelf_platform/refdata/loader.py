"""Load the generated reference parquet files into Postgres (`ref.*` and `config.*`).

Each file is COPYed into a temporary table and merged into its target by primary key, all in one
transaction, so a failed load leaves nothing half-written and loading twice is harmless:

- `ref.*`, `config.shelf_profiles` and `config.batch_catalog` follow the files: rows are
  upserted (`ON CONFLICT DO UPDATE`, skipped when nothing changed) and the loaded stores' rows
  that the files no longer have are deleted, so a reseed leaves no stale lot behind.
- the policies (`config.shelf_policies`, `config.wh_policies`) are inserted only if absent
  (`ON CONFLICT DO NOTHING`): they are defaults, and an operator's later edit to a policy must
  never be clobbered by a reload.

Column lists come from the contract records, never from hand-written SQL.
"""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg
import pyarrow.parquet as pq
from psycopg import sql

from smart_shelf_platform.refdata.generator import OUTPUTS, Output

log = logging.getLogger(__name__)

# Tables that mirror the files exactly; everything else (the policies) is insert-if-absent.
FOLLOW_THE_FILES = frozenset({"ref.stores", "ref.store_inventory_snapshot",
                              "ref.warehouse_inventory_snapshot", "ref.store_batches_snapshot",
                              "ref.warehouse_batches_snapshot", "ref.weekly_discounts",
                              "config.shelf_profiles", "config.batch_catalog"})


def merge_statement(output: Output, staging: str) -> sql.Composed:
    table = output.table
    columns = output.record.field_names
    key = table.primary_key
    target = sql.Identifier(table.schema, table.name)
    column_list = sql.SQL(", ").join(map(sql.Identifier, columns))
    insert = sql.SQL("INSERT INTO {target} AS t ({cols}) SELECT {cols} FROM {staging} "
                     "ON CONFLICT ({key}) ").format(
        target=target, cols=column_list, staging=sql.Identifier(staging),
        key=sql.SQL(", ").join(map(sql.Identifier, key)))
    updated = [c for c in columns if c not in key]
    if table.qualified_name not in FOLLOW_THE_FILES or not updated:
        return insert + sql.SQL("DO NOTHING")
    return insert + sql.SQL("DO UPDATE SET {sets} WHERE ({old}) IS DISTINCT FROM ({new})").format(
        sets=sql.SQL(", ").join(sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c))
                                for c in updated),
        old=sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in updated),
        new=sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in updated))


def delete_stale_statement(output: Output, staging: str) -> sql.Composed:
    """Delete the staged stores' rows whose key is not in the staged file."""
    key = sql.SQL(", ").join(map(sql.Identifier, output.table.primary_key))
    return sql.SQL("DELETE FROM {target} WHERE store_id IN (SELECT store_id FROM {staging}) "
                   "AND ({key}) NOT IN (SELECT {key} FROM {staging})").format(
        target=sql.Identifier(output.table.schema, output.table.name),
        staging=sql.Identifier(staging), key=key)


def load_file(conn: psycopg.Connection, output: Output, path: Path) -> int:
    """COPY one file into a temp table and merge it into the target; returns the file's rows."""
    table = pq.read_table(path)
    columns = output.record.field_names
    if table.column_names != columns:
        raise ValueError(f"{path}: columns {table.column_names} differ from contract "
                         f"{output.record.name} {columns}")
    staging = f"staging_{output.name}"
    target = sql.Identifier(output.table.schema, output.table.name)
    column_list = sql.SQL(", ").join(map(sql.Identifier, columns))
    with conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE TEMP TABLE {} (LIKE {}) ON COMMIT DROP").format(
            sql.Identifier(staging), target))
        with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier(staging), column_list)) as copy:
            for row in zip(*(table.column(c).to_pylist() for c in columns)):
                copy.write_row(row)
        cur.execute(merge_statement(output, staging))
        if output.table.qualified_name in FOLLOW_THE_FILES:
            cur.execute(delete_stale_statement(output, staging))
        log.info("loaded %s: %d rows in file, %d inserted or changed",
                 output.table.qualified_name, table.num_rows, cur.rowcount)
    return table.num_rows


def load_into_postgres(conn_or_dsn: psycopg.Connection | str,
                       files: dict[str, Path]) -> dict[str, int]:
    """Load every known output present in `files` (as returned by `generate`), in one transaction.

    Returns {qualified table name: rows in its file}. Unknown keys (e.g. "manifest") are ignored.
    """
    if isinstance(conn_or_dsn, str):
        with psycopg.connect(conn_or_dsn) as conn:
            return load_into_postgres(conn, files)
    loaded = {}
    with conn_or_dsn.transaction():
        for output in OUTPUTS:  # OUTPUTS is in load order
            if output.name in files:
                loaded[output.table.qualified_name] = load_file(
                    conn_or_dsn, output, Path(files[output.name]))
    return loaded
