"""Reading the daily features' inputs and writing the feature rows (no Dagster).

- `read_inputs(delta_root, dsn, day)`: the streaming pipeline's Delta tables (`delta_reader`,
  no Spark) and the catalogue, promotions and policies from Postgres, as `features.FeatureInputs`.
  Event tables are read from the earliest day a feature looks at (14 days of sales, 30 of alerts)
  up to now, because the stock at the end of a past day is the current state minus what moved
  after it.
- `write_delta_partition`: replace the day's partition of Delta `analytics/shelf_daily_features`
  (one overwrite with a predicate: readers see the old day or the new day, never a mix).
- `upsert_postgres`: the same rows into Postgres `analytics.shelf_daily_features`, in one
  transaction: upsert on the primary key, then drop the day's rows of shelves no longer computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timezone

import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, write_deltalake
from psycopg import sql

from smart_shelf_platform import delta_reader
from smart_shelf_platform.contracts.catalogue import (
    DELTA_TABLES_BY_PATH, POSTGRES_TABLES_BY_NAME, PostgresTable,
)
from smart_shelf_platform.contracts.catalogue import DeltaTable as DeltaTableSpec
from smart_shelf_platform.ml import features
from smart_shelf_platform.ml.features import DAY, FeatureInputs
from smart_shelf_platform.stack.delta_tables import table_uri

FEATURES_DELTA = DELTA_TABLES_BY_PATH["analytics/shelf_daily_features"]
FEATURES_POSTGRES = POSTGRES_TABLES_BY_NAME["analytics.shelf_daily_features"]
PARTITION_COLUMN = "feature_date"

# What is read from where: the lineage of the feature asset lists the same tables.
DELTA_INPUTS = ("raw/foot_traffic", "raw/pos_transactions", "raw/shelf_events", "raw/wh_events",
                "cleansed/shelf_state", "cleansed/wh_state", "cleansed/shelf_batch_state",
                "ops/alerts", "ops/wh_supplier_plan", "analytics/daily_discounts")
POSTGRES_INPUTS = ("ref.store_inventory_snapshot", "config.shelf_profiles", "ref.weekly_discounts",
                   "config.shelf_policies", "config.wh_policies")


class MissingInput(RuntimeError):
    """A table the features are written to does not exist (the stack was not brought up)."""


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=timezone.utc)


# ------------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------------


def _utc(moment: datetime) -> pa.Scalar:
    return pa.scalar(moment, pa.timestamp("us", tz="UTC"))


def latest_state(table: pa.Table, spec: DeltaTableSpec, columns: Sequence[str]) -> pd.DataFrame:
    """One row per key, the highest version (a duplicated key breaks the table's contract and
    the asset checks report it; the latest version is the platform's current answer)."""
    frame = table.to_pandas()
    key = list(spec.record.key)
    frame = frame.sort_values("version").drop_duplicates(key, keep="last")
    return frame[list(columns)].reset_index(drop=True)


def read_postgres(conn: psycopg.Connection, table: PostgresTable, columns: Sequence[str],
                  where: sql.Composable = sql.SQL("TRUE"), params: tuple = ()) -> pd.DataFrame:
    query = sql.SQL("SELECT {} FROM {} WHERE {}").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.Identifier(table.schema, table.name), where)
    return pd.DataFrame(conn.execute(query, params).fetchall(), columns=list(columns))


def read_inputs(delta_root: str, dsn: str, day: date) -> FeatureInputs:
    """Everything `features.compute_features` needs for `day`."""
    start, end = _midnight(day), _midnight(day + DAY)
    sales_from = _midnight(day - max(features.SALES_WINDOWS_DAYS) * DAY)
    alerts_from = _midnight(day - (features.ALERT_WINDOW_DAYS - 1) * DAY)
    since_start = delta_reader.TimeRange("timestamp", start)

    def delta(path: str, columns: Sequence[str], **rows) -> pa.Table:
        return delta_reader.read(delta_root, path, columns, **rows)

    def state(path: str, columns: Sequence[str]) -> pd.DataFrame:
        spec = DELTA_TABLES_BY_PATH[path]
        return latest_state(delta(path, [*columns, "version"]), spec, columns)

    receipts = delta("raw/pos_transactions", ["store_id", "timestamp", "items"],
                     time=delta_reader.TimeRange("timestamp", sales_from))
    with psycopg.connect(dsn) as conn:
        def pg(name: str, columns: Sequence[str], where=sql.SQL("TRUE"), params=()):
            return read_postgres(conn, POSTGRES_TABLES_BY_NAME[name], columns, where, params)

        catalogue = pg("ref.store_inventory_snapshot", [
            "store_id", "shelf_id", "item_category", "item_subcategory", "maximum_stock",
            "item_price", "standard_batch_size"])
        warehouse_capacity = pg("config.shelf_profiles", ["store_id", "shelf_id", "wh_max_stock"])
        weekly = pg("ref.weekly_discounts",
                    ["store_id", "shelf_id", "week_start", "week_end", "discount_pct"],
                    sql.SQL("week_end >= %s AND week_start <= %s"),
                    (day, day + features.DISCOUNT_LOOKAHEAD_DAYS * DAY))
        scope = ["store_id", "shelf_id", "item_category", "item_subcategory"]
        shelf_policies = pg("config.shelf_policies",
                            [*scope, "threshold_pct", "min_qty", "target_pct", "active"])
        wh_policies = pg("config.wh_policies", [*scope, "reorder_point_qty", "active"])
    return FeatureInputs(
        catalogue=catalogue,
        warehouse_capacity=warehouse_capacity,
        foot_traffic=delta("raw/foot_traffic", ["store_id", "event_type", "timestamp"],
                           time=delta_reader.TimeRange("timestamp", start, end)).to_pandas(),
        receipt_lines=features.explode_receipts(receipts),
        shelf_events=delta("raw/shelf_events", [
            "event_id", "store_id", "shelf_id", "event_type", "actor", "batch_code", "quantity",
            "timestamp"], time=since_start).to_pandas(),
        wh_events=delta("raw/wh_events", [
            "event_id", "store_id", "shelf_id", "event_type", "quantity", "timestamp"],
            time=since_start).to_pandas(),
        shelf_state=state("cleansed/shelf_state", ["store_id", "shelf_id", "current_stock"]),
        wh_state=state("cleansed/wh_state", ["store_id", "shelf_id", "wh_current_stock"]),
        shelf_lots=state("cleansed/shelf_batch_state", [
            "store_id", "shelf_id", "batch_code", "expiry_date", "batch_quantity_store"]),
        # Alerts counted in the window, or open at the end of the day (still open, or closed
        # after it): either way updated since the window started, or still open.
        alerts=delta("ops/alerts", [
            "store_id", "shelf_id", "alert_type", "location", "status", "created_at",
            "updated_at"], where=(pc.field("updated_at") >= _utc(alerts_from))
            | pc.field("status").isin(list(features.OPEN_ALERT_STATUSES))).to_pandas(),
        supplier_plans=delta("ops/wh_supplier_plan", [
            "store_id", "shelf_id", "suggested_qty", "status", "created_at", "updated_at"],
            where=(pc.field("updated_at") >= _utc(end))
            | pc.field("status").isin(list(features.IN_FLIGHT_PLAN_STATUSES))).to_pandas(),
        daily_discounts=delta("analytics/daily_discounts", [
            "store_id", "shelf_id", "discount_date", "discount"],
            time=delta_reader.TimeRange(
                "discount_date", day,
                day + (features.DISCOUNT_LOOKAHEAD_DAYS + 1) * DAY)).to_pandas(),
        weekly_discounts=weekly,
        shelf_policies=shelf_policies,
        wh_policies=wh_policies,
    )


# ------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------


def partition_predicate(day: date) -> str:
    return f"{PARTITION_COLUMN} = '{day.isoformat()}'"


def write_delta_partition(delta_root: str, rows: pa.Table, day: date) -> int:
    """Replace `day`'s partition with `rows` (all of that day); returns the new table version."""
    dates = set(rows.column(PARTITION_COLUMN).to_pylist())
    if dates - {day}:
        raise ValueError(f"rows of {sorted(dates - {day})} in the partition of {day}")
    uri = table_uri(delta_root, FEATURES_DELTA)
    if not DeltaTable.is_deltatable(uri):
        raise MissingInput(f"Delta table {FEATURES_DELTA.path} is missing at {uri}")
    write_deltalake(uri, rows, mode="overwrite", predicate=partition_predicate(day))
    return DeltaTable(uri).version()


def read_delta_partition(delta_root: str, day: date) -> pa.Table:
    return delta_reader.read(delta_root, FEATURES_DELTA.path, FEATURES_DELTA.record.field_names,
                             time=delta_reader.TimeRange(PARTITION_COLUMN, day, day + DAY))


def upsert_postgres(dsn: str, rows: pa.Table, day: date) -> tuple[int, int]:
    """Upsert `rows` (all of `day`) on the primary key; delete the day's other rows. Returns
    (rows upserted, rows deleted)."""
    table = FEATURES_POSTGRES
    columns = table.record.field_names
    key = list(table.primary_key)
    target = sql.Identifier(table.schema, table.name)
    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in columns if c not in key)
    with psycopg.connect(dsn) as conn, conn.transaction():
        conn.execute(sql.SQL("CREATE TEMP TABLE staged (LIKE {}) ON COMMIT DROP").format(target))
        with conn.cursor().copy(sql.SQL("COPY staged ({}) FROM STDIN").format(names)) as copy:
            for row in zip(*(rows.column(c).to_pylist() for c in columns)):
                copy.write_row(row)
        upserted = conn.execute(sql.SQL(
            "INSERT INTO {target} ({names}) SELECT {names} FROM staged "
            "ON CONFLICT ({key}) DO UPDATE SET {updates}").format(
                target=target, names=names, updates=updates,
                key=sql.SQL(", ").join(map(sql.Identifier, key)))).rowcount
        deleted = conn.execute(sql.SQL(
            "DELETE FROM {target} t WHERE t.feature_date = %s AND NOT EXISTS ("
            "SELECT 1 FROM staged s WHERE s.store_id = t.store_id AND s.shelf_id = t.shelf_id "
            "AND s.feature_date = t.feature_date)").format(target=target), (day,)).rowcount
    return upserted, deleted
