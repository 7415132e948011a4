"""Reading what forecasting needs and writing what it produces (no Dagster).

Reads: the daily panel (Delta `analytics/shelf_daily_features`), the planned promotions
(`ref.weekly_discounts`), perishables' shelf life (the reference catalogue and lots, as the
supplier manager learns it), and, for evaluation only, the simulator's truth
(`sim.ledger_daily_sales`) and the oracle's inputs (product visibility).
Writes: a cutoff's predictions (Delta `analytics/predictions`, replaced per cutoff, and Postgres
`analytics.ml_predictions_log`, in one transaction per cutoff) and backtest metrics
(`analytics.ml_backtest`).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import psycopg
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from smart_shelf_platform import delta_reader
from smart_shelf_platform.contracts.analytics import ML_PREDICTION
from smart_shelf_platform.contracts.catalogue import (
    DELTA_TABLES_BY_PATH, POSTGRES_TABLES_BY_NAME, PostgresTable,
)
from smart_shelf_platform.contracts.catalogue import DeltaTable as DeltaTableSpec
from smart_shelf_platform.ml.feature_store import FEATURES_DELTA, MissingInput
from smart_shelf_platform.ml.training_set import PANEL_COLUMNS, PROMOTION_COLUMNS
from smart_shelf_platform.rules.supplier import ShelfLife
from smart_shelf_platform.stack.delta_tables import table_uri

PREDICTIONS_DELTA = DELTA_TABLES_BY_PATH["analytics/predictions"]
PREDICTIONS_POSTGRES = POSTGRES_TABLES_BY_NAME["analytics.ml_predictions_log"]
BACKTEST_DELTA = DELTA_TABLES_BY_PATH["analytics/ml_backtest"]
BACKTEST_POSTGRES = POSTGRES_TABLES_BY_NAME["analytics.ml_backtest"]
FLOAT_COLUMNS = ("item_price", "discount")


def read_panel(delta_root: str) -> pd.DataFrame:
    """Every day's feature rows, PANEL_COLUMNS, dates as `datetime.date`, decimals as floats."""
    frame = delta_reader.read(delta_root, FEATURES_DELTA.path, PANEL_COLUMNS).to_pandas()
    for column in FLOAT_COLUMNS:
        frame[column] = frame[column].astype("float64")
    return frame.sort_values(["feature_date", "store_id", "shelf_id"]).reset_index(drop=True)


def _query(dsn: str, query: str, columns: list[str], params: tuple = ()) -> pd.DataFrame:
    with psycopg.connect(dsn) as conn:
        return pd.DataFrame(conn.execute(query, params).fetchall(), columns=columns)


def read_promotions(dsn: str) -> pd.DataFrame:
    frame = _query(dsn, f"SELECT {', '.join(PROMOTION_COLUMNS)} FROM ref.weekly_discounts",
                   list(PROMOTION_COLUMNS))
    frame["discount_pct"] = frame["discount_pct"].astype("float64")
    return frame


def read_truth(dsn: str) -> pd.DataFrame:
    """store_id, shelf_id, day, demand (units sold + sales lost to an empty shelf)."""
    frame = _query(dsn, "SELECT store_id, shelf_id, sale_date, sold_units + lost_units "
                        "FROM sim.ledger_daily_sales", ["store_id", "shelf_id", "day", "demand"])
    frame["demand"] = frame["demand"].astype("float64")
    return frame


def read_visibility(dsn: str) -> pd.DataFrame:
    frame = _query(dsn, "SELECT store_id, shelf_id, item_visibility "
                        "FROM ref.store_inventory_snapshot",
                   ["store_id", "shelf_id", "item_visibility"])
    frame["item_visibility"] = frame["item_visibility"].astype("float64")
    return frame


def perishable_shelf_life(dsn: str) -> pd.Series:
    """Days a newly delivered lot keeps, per (store_id, shelf_id) of every perishable product."""
    catalogue = _query(dsn, "SELECT store_id, shelf_id, item_category, item_subcategory, "
                            "perishable FROM ref.store_inventory_snapshot",
                       ["store_id", "shelf_id", "category", "subcategory", "perishable"])
    lots = _query(dsn, "SELECT store_id, shelf_id, received_date, expiry_date "
                       "FROM ref.store_batches_snapshot UNION ALL "
                       "SELECT store_id, shelf_id, received_date, expiry_date "
                       "FROM ref.warehouse_batches_snapshot",
                  ["store_id", "shelf_id", "received", "expiry"])
    kinds = lots.merge(catalogue, on=["store_id", "shelf_id"])
    life = ShelfLife.from_lots(zip(kinds["category"], kinds["subcategory"], kinds["received"],
                                   kinds["expiry"]))
    perishable = catalogue.loc[catalogue["perishable"]]
    days = [life.days(c, s) for c, s in zip(perishable["category"], perishable["subcategory"])]
    return pd.Series(days, index=pd.MultiIndex.from_frame(perishable[["store_id", "shelf_id"]]),
                     dtype="float64")


# ---- writing ------------------------------------------------------------------------------


def _arrow(frame: pd.DataFrame, record) -> pa.Table:
    return pa.Table.from_pandas(frame[record.field_names], schema=record.arrow_schema(),
                                preserve_index=False)


def _replace(delta_root: str, dsn: str, spec: DeltaTableSpec, twin: PostgresTable,
             frame: pd.DataFrame, delta_predicate: str, postgres_where: str,
             params: tuple) -> int:
    """The rows a predicate selects, replaced by `frame` in the Delta table (one overwrite:
    readers see the old rows or the new) and in its Postgres twin (one transaction); returns
    the Delta version."""
    uri = table_uri(delta_root, spec)
    if not DeltaTable.is_deltatable(uri):
        raise MissingInput(f"Delta table {spec.path} is missing at {uri}")
    write_deltalake(uri, _arrow(frame, spec.record), mode="overwrite", predicate=delta_predicate)
    table, columns = twin.qualified_name, twin.record.field_names
    with psycopg.connect(dsn) as conn, conn.transaction():
        conn.execute(f"DELETE FROM {table} WHERE {postgres_where}", params)
        with conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in frame[columns].itertuples(index=False):
                copy.write_row([None if pd.isna(v) else v for v in row])
    return DeltaTable(uri).version()


def write_predictions(delta_root: str, dsn: str, rows: pd.DataFrame, cutoff: datetime) -> int:
    """Replace the cutoff's predictions in Delta and Postgres; returns the Delta version."""
    if set(rows["cutoff_ts"]) - {cutoff}:
        raise ValueError(f"rows of other cutoffs than {cutoff.isoformat()}")
    stamp = cutoff.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    return _replace(delta_root, dsn, PREDICTIONS_DELTA, PREDICTIONS_POSTGRES, rows,
                    f"cutoff_date = '{cutoff.date().isoformat()}' AND cutoff_ts = '{stamp}'",
                    "cutoff_ts = %s", (cutoff,))


def read_predictions(delta_root: str, cutoff: datetime) -> pd.DataFrame:
    day = cutoff.date()
    table = delta_reader.read(delta_root, PREDICTIONS_DELTA.path, ML_PREDICTION.field_names,
                              time=delta_reader.TimeRange("cutoff_date", day,
                                                          day + timedelta(days=1)))
    frame = table.to_pandas()
    return frame.loc[frame["cutoff_ts"] == pd.Timestamp(cutoff)].reset_index(drop=True)


def write_backtest(delta_root: str, dsn: str, scores: pd.DataFrame, backtest_id: str,
                   ran_at: datetime) -> int:
    """Replace the metrics of `backtest_id` in Delta and Postgres; `scores` as
    `backtest.score` returns them. Returns the Delta version."""
    frame = scores.assign(backtest_id=backtest_id, ran_at=ran_at)
    frame["cutoff"] = [("all" if pd.isna(c) else pd.Timestamp(c).strftime("%Y-%m-%d-%H:%M"))
                       for c in frame["cutoff"]]
    return _replace(delta_root, dsn, BACKTEST_DELTA, BACKTEST_POSTGRES, frame,
                    f"backtest_id = '{backtest_id}'", "backtest_id = %s", (backtest_id,))
