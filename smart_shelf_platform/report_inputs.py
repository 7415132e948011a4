"""What the report is computed from, and reading it: the simulator's ledger and the catalogue's
prices from Postgres (one snapshot), the platform's Delta tables through `delta_reader` (no
Spark). Kept apart from the figures so that they stay pure and are tested without a stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import pandas as pd
import psycopg
import pyarrow.compute as pc

from smart_shelf_platform import delta_reader
from smart_shelf_platform.ml.features import SHELF
from smart_shelf_platform.report_figures import Window, default_window
from smart_shelf_platform.settings import Settings
from smart_shelf_platform.stack.process import StackError
from smart_shelf_platform.verify import connect_ledger, select_stores

MOVING_SHELF_EVENTS = ("pickup", "putback", "expired_removal")  # weight changes move no units


@dataclass(frozen=True)
class ReportInputs:
    """What the report is computed from; frames may be empty but have their columns."""

    stores: list[str]
    window: Window
    sim_start: datetime
    positions: dict[str, datetime]  # store -> the ledger's sim_time
    sales: pd.DataFrame  # store_id, shelf_id, sale_date, sold_units, lost_units,
    # lost_units_wh_empty
    # store_id, shelf_id, waste_date, shelf_units, warehouse_units; None: no ledger waste table
    waste: pd.DataFrame | None
    prices: pd.DataFrame | None  # store_id, shelf_id, item_price; None: no catalogue
    # store_id, shelf_id, event_type, actor, quantity, timestamp (from the window's start)
    shelf_events: pd.DataFrame
    wh_events: pd.DataFrame  # store_id, shelf_id, event_type, quantity, timestamp
    shelf_state: pd.DataFrame  # store_id, shelf_id, current_stock
    wh_state: pd.DataFrame  # store_id, shelf_id, wh_current_stock
    orders: pd.DataFrame  # store_id, order_id, total_qty, cutoff_ts
    receipts: pd.DataFrame  # store_id, order_id, received_qty, created_at
    restock_plans: pd.DataFrame  # store_id, status, created_at, updated_at
    supplier_plans: pd.DataFrame  # store_id, status, source, created_at
    alerts: pd.DataFrame  # store_id, alert_type, status, created_at
    # store_id, shelf_id, interval_start, interval_end, forecast_mean of the cutoffs in the
    # window; None: no forecast was made
    predictions: pd.DataFrame | None = None


def read_inputs(settings: Settings, stores: list[str] | None, first: date | None,
                last: date | None) -> ReportInputs:
    with connect_ledger(settings) as conn:
        ledger = read_ledger(conn, stores, settings.sim_start, first, last)
    return ReportInputs(**ledger, **read_platform(settings.delta_root, ledger["stores"],
                                                  ledger["window"]))


def read_ledger(conn: psycopg.Connection, stores: list[str] | None, sim_start: datetime,
                first: date | None, last: date | None) -> dict:
    # One snapshot, so a simulator saving meanwhile cannot mix two saves.
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    try:
        with conn.transaction():
            positions = dict(conn.execute(
                "SELECT store_id, sim_time FROM sim.ledger_position ORDER BY store_id").fetchall())
            selected = select_stores(list(positions), stores)
            positions = {s: positions[s] for s in selected}
            window = default_window(sim_start, positions.values(), first, last)

            def frame(query: str, columns: list[str], *params) -> pd.DataFrame:
                return pd.DataFrame(conn.execute(query, params).fetchall(), columns=columns)

            sales = frame("SELECT store_id, shelf_id, sale_date, sold_units, lost_units, "
                          "lost_units_wh_empty FROM sim.ledger_daily_sales "
                          "WHERE store_id = ANY(%s) AND sale_date BETWEEN %s AND %s",
                          ["store_id", "shelf_id", "sale_date", "sold_units", "lost_units",
                           "lost_units_wh_empty"],
                          selected, window.first, window.last)
            (has_waste,) = conn.execute(
                "SELECT to_regclass('sim.ledger_daily_waste') IS NOT NULL").fetchone()
            waste = frame("SELECT store_id, shelf_id, waste_date, shelf_units, warehouse_units "
                          "FROM sim.ledger_daily_waste WHERE store_id = ANY(%s) "
                          "AND waste_date BETWEEN %s AND %s",
                          ["store_id", "shelf_id", "waste_date", "shelf_units",
                           "warehouse_units"], selected, window.first, window.last
                          ) if has_waste else None
            prices = frame("SELECT store_id, shelf_id, item_price "
                           "FROM ref.store_inventory_snapshot WHERE store_id = ANY(%s)",
                           ["store_id", "shelf_id", "item_price"], selected)
            # The forecasts the cutoffs of the window published (the log has each once).
            predictions = frame("SELECT store_id, shelf_id, interval_start, interval_end, "
                                "forecast_mean FROM analytics.ml_predictions_log "
                                "WHERE store_id = ANY(%s) AND cutoff_date BETWEEN %s AND %s",
                                ["store_id", "shelf_id", "interval_start", "interval_end",
                                 "forecast_mean"], selected, window.first, window.last)
    except psycopg.errors.UndefinedTable as exc:
        raise StackError(f"{exc.diag.message_primary}: apply the migrations with "
                         "`smart-shelf up`") from None
    return {"stores": selected, "window": window, "sim_start": sim_start,
            "positions": positions, "sales": sales, "waste": waste,
            "prices": prices if len(prices) else None,
            "predictions": predictions if len(predictions) else None}


def read_platform(delta_root: str, stores: list[str], window: Window) -> dict:
    """The platform's Delta tables the report needs. Events are read from the window's start
    to now: the end-of-day stock of a day is the current state minus what moved after it."""
    since = delta_reader.TimeRange("timestamp", window.start.to_pydatetime())

    def delta(path: str, columns: list[str], **rows) -> pd.DataFrame:
        return delta_reader.read(delta_root, path, columns, stores=stores,
                                 **rows).to_pandas()

    def state(path: str, column: str) -> pd.DataFrame:
        rows = delta(path, [*SHELF, column, "version"])
        return rows.sort_values("version").drop_duplicates(SHELF, keep="last")[[*SHELF, column]]

    def latest(path: str, key: str, columns: list[str]) -> pd.DataFrame:
        """One row per key, its latest update (the tables are merged by key; this only guards
        against a duplicate)."""
        rows = delta(path, ["store_id", key, *columns, "updated_at"])
        return rows.sort_values("updated_at").drop_duplicates(["store_id", key], keep="last")

    return {
        "shelf_events": delta("raw/shelf_events", [
            *SHELF, "event_type", "actor", "quantity", "timestamp"],
            time=since, where=pc.field("event_type").isin(list(MOVING_SHELF_EVENTS))),
        "wh_events": delta("raw/wh_events", [*SHELF, "event_type", "quantity", "timestamp"],
                           time=since),
        "shelf_state": state("cleansed/shelf_state", "current_stock"),
        "wh_state": state("cleansed/wh_state", "wh_current_stock"),
        "orders": latest("ops/wh_supplier_orders", "order_id", ["total_qty", "cutoff_ts"]),
        "receipts": delta("ops/wh_supplier_receipts", [
            "store_id", "receipt_id", "order_id", "received_qty", "created_at"]),
        "restock_plans": latest("ops/shelf_restock_plan", "plan_id", ["status", "created_at"]),
        "supplier_plans": latest("ops/wh_supplier_plan", "supplier_plan_id",
                                 ["status", "source", "created_at"]),
        "alerts": latest("ops/alerts", "alert_id", ["alert_type", "status", "created_at"]),
    }
