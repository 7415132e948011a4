"""Reading the platform's Delta tables outside Spark: the one reader `verify`, `report`, the
daily features, forecasting, the asset checks, the Delta sensor and the dashboard share.

Two writers put files into the same tables: Spark writes strings as plain Arrow `string`, and
delta-rs (the streaming driver's upserts, the Dagster assets) as `string_view` (or
`large_string`). Filtering such a table through pyarrow's scanner compares the filter's plain
string with a `string_view` file's statistics and fails ("Function 'greater_equal' has no kernel
matching input types (string, string_view)"): `verify` and `report` did on a 10-store chain. So
`read` selects rows in two steps:

1. files: delta-rs prunes them by the store and time range from the Delta log's statistics
   (`file_pruning_predicate`, evaluated in Rust, whatever layout each file has);
2. rows: the surviving files' columns are read without a filter, cast to plain Arrow types
   (`plain_schema`), and only then filtered exactly, by the same store and time range and the
   caller's own expression.

`read` also joins Arrow's threads before returning, so no caller has to know about that.
`snapshot`, `version` and `last_commit` answer what the sensor, the freshness checks and the
dashboard's health page ask of a table without reading its rows.
"""
from __future__ import annotations

import gc
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, QueryBuilder

from smart_shelf_platform.contracts.catalogue import DELTA_TABLES_BY_PATH
from smart_shelf_platform.stack.delta_tables import table_uri
from smart_shelf_platform.stack.process import StackError

STORE = "store_id"


class MissingTable(StackError):
    """No Delta table where one was expected: the stack was not brought up (or another Delta
    root is configured)."""


@dataclass(frozen=True)
class TimeRange:
    """Rows whose `column` is in [start, end); a missing bound leaves that side open. Bounds
    are timezone-aware datetimes for timestamp columns, dates for date columns."""
    column: str
    start: datetime | date | None = None
    end: datetime | date | None = None

    def files(self) -> list[tuple]:
        return ([(self.column, ">=", self.start)] if self.start is not None else []) + \
            ([(self.column, "<", self.end)] if self.end is not None else [])

    def rows(self, schema: pa.Schema) -> pc.Expression | None:
        kind = schema.field(self.column).type
        field, parts = pc.field(self.column), []
        if self.start is not None:
            parts.append(field >= pa.scalar(self.start, kind))
        if self.end is not None:
            parts.append(field < pa.scalar(self.end, kind))
        return _all(parts)


def _all(parts: Sequence[pc.Expression]) -> pc.Expression | None:
    expression = None
    for part in parts:
        expression = part if expression is None else expression & part
    return expression


def plain_type(kind: pa.DataType) -> pa.DataType:
    """`kind` with every view and large variant replaced by the plain type Spark writes."""
    if pa.types.is_string_view(kind) or pa.types.is_large_string(kind):
        return pa.string()
    if pa.types.is_binary_view(kind) or pa.types.is_large_binary(kind):
        return pa.binary()
    if (pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_list_view(kind)
            or pa.types.is_large_list_view(kind)):
        return pa.list_(kind.value_field.with_type(plain_type(kind.value_type)))
    if pa.types.is_struct(kind):
        return pa.struct([f.with_type(plain_type(f.type)) for f in kind])
    if pa.types.is_map(kind):
        return pa.map_(kind.key_field.with_type(plain_type(kind.key_type)),
                       kind.item_field.with_type(plain_type(kind.item_type)))
    return kind


def plain_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([f.with_type(plain_type(f.type)) for f in schema], schema.metadata)


def open_table(delta_root: str, path: str) -> DeltaTable:
    """The catalogue's table `layer/name` under `delta_root`, or MissingTable saying how to
    create it."""
    uri = table_uri(delta_root, DELTA_TABLES_BY_PATH[path])
    if not DeltaTable.is_deltatable(uri):
        raise MissingTable(f"Delta table {path} is missing at {uri}: create it with "
                           "`smart-shelf up` (SMART_SHELF_DELTA_ROOT must match the platform's)")
    return DeltaTable(uri)


def read(delta_root: str, path: str, columns: Sequence[str] | None = None, *,
         stores: Sequence[str] | None = None, time: TimeRange | None = None,
         where: pc.Expression | None = None) -> pa.Table:
    """`columns` (default: all) of the rows of the table `layer/name` that belong to `stores`
    (None: every store), fall in `time` and match `where`, in plain Arrow types.

    `where` is evaluated on the plain types, after the store and time filters, and may only
    name `columns`; a row whose store is null is only kept without `stores` (select it with
    `where` instead)."""
    table = open_table(delta_root, path)
    files = [*([(STORE, "in", sorted(set(stores)))] if stores is not None else []),
             *(time.files() if time is not None else [])]
    if stores is not None and not stores:
        files = []  # delta-rs prunes by no empty list; the row filter below keeps no row
    wanted = list(columns) if columns is not None else None
    needed = wanted if wanted is None else list(dict.fromkeys(
        [*wanted, *([STORE] if stores is not None else []),
         *([time.column] if time is not None else [])]))
    dataset = table.to_pyarrow_dataset(file_pruning_predicate=files or None)
    rows = dataset.to_table(columns=needed)
    rows = rows.cast(plain_schema(rows.schema))
    parts = [*([pc.field(STORE).isin(pa.array(sorted(set(stores)), pa.string()))]
               if stores is not None else []),
             *([r] if time is not None and (r := time.rows(rows.schema)) is not None else []),
             *([where] if where is not None else [])]
    selected = _all(parts)
    if selected is not None:
        rows = rows.filter(selected)
    # Join the threads of Arrow's scanner and filter now: left to the interpreter's final
    # teardown they can outlive Arrow's memory pools and abort the process at exit
    # (apache/arrow#34314).
    gc.collect()
    return rows.select(wanted) if wanted is not None else rows


@dataclass(frozen=True)
class TableSnapshot:
    version: int
    row_count: int
    latest_event_time: datetime | None


def exists(uri: str) -> bool:
    return DeltaTable.is_deltatable(uri)


def version(uri: str) -> int:
    return DeltaTable(uri).version()


def snapshot(uri: str, time_column: str | None) -> TableSnapshot:
    """Version, exact row count and latest `time_column` value; DataFusion answers from file
    statistics where it can and honours deletion vectors where it cannot."""
    table = DeltaTable(uri)
    latest = f'max("{time_column}")' if time_column else "NULL"
    result = pa.table(QueryBuilder().register("t", table).execute(
        f"SELECT count(*) AS row_count, {latest} AS latest FROM t").read_all())
    row = result.to_pylist()[0]
    return TableSnapshot(table.version(), int(row["row_count"]), row["latest"])


def last_commit(uri: str) -> tuple[int, datetime] | None:
    """The table's latest version and when it was committed (UTC); None if there is no table."""
    if not DeltaTable.is_deltatable(uri):
        return None
    table = DeltaTable(uri)
    stamp = table.history(1)[0]["timestamp"]
    return table.version(), datetime.fromtimestamp(stamp / 1000, tz=timezone.utc)
