"""The report's figures, each a pure function over pandas frames, and the window they cover.

`smart-shelf report` (`report.py`) puts them together per store; this module owns what each figure
means, so a reader checks a definition against its code in one place, and tests call each on
small hand-built frames.

The window is a run of whole simulated days [first, last] (UTC), by default the days the ledger
covers: from the simulated start to the ledger's position. A ledger row belongs to it by its
date; an event, plan, order, receipt or alert by its timestamp (creation time). What each figure
is:

- units sold, lost sales: the ledger's sold units and lost units (a shopper wanted a unit and the
  shelf was empty); lost % = lost / (sold + lost), the share of demand not served.
- waste: expired units thrown away, taken off shelves by the staff and removed from the warehouse:
  the ledger's `sim.ledger_daily_waste` when the database has it, otherwise the platform's events
  (`expired_removal` shelf events, `wh_removal` warehouse events); value at the catalogue's list
  price (`ref.store_inventory_snapshot.item_price`).
- supplier orders: placed at a cutoff in the window (orders, units ordered); delivered in the
  window (receipts of `ops/wh_supplier_receipts`: orders, units received).
- restock and supplier plans: created in the window, by the status they have now (completed and
  canceled are final; pending and issued are still in flight).
- restock time: simulated minutes from a restock plan (the shelf ran low) to its completion (the
  last units of it on the shelf), median and 95th percentile over the completed plans created
  in the window: the handling delay, the refill delay, and what the platform took besides.
- average stock cover (days): the average over the window's days of the units on the shelves and
  in the warehouse at the end of each day (the platform's state, rebuilt per day by
  `ml.features.stock_at_end_of_day`; for the day the ledger's position falls in, the stock at that
  position), divided by the average daily units sold (units sold / simulated days of the window,
  partial first and last days counted by the hours simulated). None when nothing sold.
- alerts: created in the window, by type and by status now.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pandas as pd

from smart_shelf_platform.contracts import enums
from smart_shelf_platform.ml.features import (
    SHELF, stock_at_end_of_day, shelf_movements, wh_movements,
)
from smart_shelf_platform.stack.process import StackError

DAY = timedelta(days=1)

# ------------------------------------------------------------------------------------------------
# The window
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    first: date
    last: date  # inclusive

    @property
    def start(self) -> pd.Timestamp:
        return pd.Timestamp(self.first, tz="UTC")

    @property
    def end(self) -> pd.Timestamp:
        """Exclusive: midnight after the last day."""
        return pd.Timestamp(self.last + DAY, tz="UTC")

    def days(self) -> list[date]:
        return [self.first + i * DAY for i in range((self.last - self.first).days + 1)]


def default_window(sim_start: datetime, positions: Iterable[datetime],
                   first: date | None = None, last: date | None = None) -> Window:
    """[first, last], by default from the simulated start's day to the day of the furthest
    ledger position (a position at midnight closes the day before it)."""
    furthest = max(positions, default=sim_start)
    first = first or sim_start.date()
    last = last or max((furthest - timedelta(microseconds=1)).date(), sim_start.date())
    if first > last:
        raise StackError(f"the report's window starts ({first}) after it ends ({last})")
    return Window(first, last)


def simulated_span(window: Window, sim_start: datetime,
                   position: datetime) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The part of the window the simulation covered for a store: [sim start, its position]."""
    start = max(window.start, pd.Timestamp(sim_start).tz_convert("UTC"))
    end = min(window.end, pd.Timestamp(position).tz_convert("UTC"))
    return start, max(start, end)


def simulated_days(window: Window, sim_start: datetime, position: datetime) -> float:
    start, end = simulated_span(window, sim_start, position)
    return (end - start) / pd.Timedelta(days=1)


def stock_days(window: Window, sim_start: datetime, position: datetime) -> list[date]:
    """The window's days that the simulation reached (their end-of-day stock is known)."""
    start, end = simulated_span(window, sim_start, position)
    if end <= start:
        return []
    return [d for d in window.days()
            if start.date() <= d <= (end - pd.Timedelta(microseconds=1)).date()]


def in_window(frame: pd.DataFrame, column: str, window: Window) -> pd.DataFrame:
    """Rows whose timestamp `column` falls in the window."""
    times = pd.to_datetime(frame[column], utc=True)
    return frame.loc[(times >= window.start) & (times < window.end)]


def on_days(frame: pd.DataFrame, column: str, window: Window) -> pd.DataFrame:
    """Rows whose date `column` is one of the window's days."""
    dates = pd.to_datetime(frame[column])
    return frame.loc[(dates >= pd.Timestamp(window.first)) & (dates <= pd.Timestamp(window.last))]


def _per_store(frame: pd.DataFrame, column: str, stores: Sequence[str]) -> pd.Series:
    if frame.empty:
        return pd.Series(0, index=pd.Index(stores, name="store_id"), dtype="int64")
    return (frame.groupby("store_id")[column].sum()
            .reindex(stores, fill_value=0).astype("int64"))


def counts_per_store(frame: pd.DataFrame, column: str, stores: Sequence[str],
                     values: Sequence[str]) -> dict[str, dict[str, int]]:
    """Rows per store and value of `column`, every value listed (0 when absent)."""
    counts = frame.groupby(["store_id", column]).size() if len(frame) else pd.Series(dtype="int64")
    return {store: {value: int(counts.get((store, value), 0)) for value in values}
            for store in stores}


# ------------------------------------------------------------------------------------------------
# The KPIs (pure)
# ------------------------------------------------------------------------------------------------


def sales_kpis(sales: pd.DataFrame, window: Window, stores: Sequence[str]) -> pd.DataFrame:
    """units_sold, lost_units and lost_units_wh_empty per store, from the ledger's daily sales
    (store_id, shelf_id, sale_date, sold_units, lost_units, lost_units_wh_empty)."""
    days = on_days(sales, "sale_date", window)
    return pd.DataFrame({"units_sold": _per_store(days, "sold_units", stores),
                         "lost_units": _per_store(days, "lost_units", stores),
                         "lost_units_wh_empty": _per_store(days, "lost_units_wh_empty", stores)})


def ledger_waste(waste: pd.DataFrame, window: Window) -> pd.DataFrame:
    """Waste per shelf (store_id, shelf_id, shelf_units, warehouse_units) from the ledger's daily
    waste (…, waste_date, shelf_units, warehouse_units)."""
    days = on_days(waste, "waste_date", window)
    return (days.groupby(SHELF)[["shelf_units", "warehouse_units"]].sum().astype("int64")
            .reset_index())


def event_waste(shelf_events: pd.DataFrame, wh_events: pd.DataFrame,
                window: Window) -> pd.DataFrame:
    """Waste per shelf from the platform's events: `expired_removal` shelf events (the staff's
    removals) and `wh_removal` warehouse events, by their timestamp."""
    def removed(events: pd.DataFrame, event_type: str, name: str) -> pd.Series:
        rows = in_window(events.loc[events["event_type"] == event_type], "timestamp", window)
        return rows.groupby(SHELF)["quantity"].sum().rename(name)

    per_shelf = pd.concat([removed(shelf_events, "expired_removal", "shelf_units"),
                           removed(wh_events, "wh_removal", "warehouse_units")], axis=1)
    return per_shelf.fillna(0).astype("int64").reset_index(names=SHELF)[
        [*SHELF, "shelf_units", "warehouse_units"]]


def waste_kpis(waste: pd.DataFrame, prices: pd.DataFrame | None,
               stores: Sequence[str]) -> pd.DataFrame:
    """waste_shelf_units, waste_warehouse_units and waste_value (units x list price; None
    without prices) per store, from waste per shelf."""
    kpis = pd.DataFrame({"waste_shelf_units": _per_store(waste, "shelf_units", stores),
                         "waste_warehouse_units": _per_store(waste, "warehouse_units", stores)})
    if prices is None:
        kpis["waste_value"] = None
        return kpis
    priced = waste.merge(prices[[*SHELF, "item_price"]], on=SHELF, how="left")
    units = priced["shelf_units"] + priced["warehouse_units"]
    priced = priced.assign(value=units * priced["item_price"].astype(float).fillna(0.0))
    values = (priced.groupby("store_id")["value"].sum() if len(priced)
              else pd.Series(dtype="float64"))
    kpis["waste_value"] = [round(float(values.get(s, 0.0)), 2) for s in stores]
    return kpis


def supplier_order_kpis(orders: pd.DataFrame, receipts: pd.DataFrame, window: Window,
                        stores: Sequence[str]) -> pd.DataFrame:
    """orders_placed and units_ordered (orders whose cutoff is in the window; orders: store_id,
    order_id, total_qty, cutoff_ts), orders_delivered and units_delivered (receipts created in
    the window; receipts: store_id, order_id, received_qty, created_at)."""
    placed = in_window(orders, "cutoff_ts", window).assign(n=1)
    received = in_window(receipts, "created_at", window)
    delivered = received.drop_duplicates(["store_id", "order_id"]).assign(n=1)
    return pd.DataFrame({"orders_placed": _per_store(placed, "n", stores),
                         "units_ordered": _per_store(placed, "total_qty", stores),
                         "orders_delivered": _per_store(delivered, "n", stores),
                         "units_delivered": _per_store(received, "received_qty", stores)})


def forecast_errors(predictions: pd.DataFrame | None, sales: pd.DataFrame,
                    stores: Sequence[str], complete_until: date) -> pd.DataFrame:
    """Per store: the absolute error of the cutoffs' interval forecasts against the true demand
    of their intervals (sold + lost, from the ledger), that demand, and how many intervals,
    for the intervals whose every day the ledger has whole (up to `complete_until`;
    predictions: store_id, shelf_id, interval_start, interval_end, forecast_mean)."""
    out = pd.DataFrame(0.0, index=list(stores),
                       columns=["forecast_abs_error", "forecast_demand", "forecast_intervals"])
    if predictions is None or predictions.empty or sales.empty:
        return out
    known = {d for d in sales["sale_date"] if d <= complete_until}
    rows = predictions.loc[predictions["interval_start"].isin(known)
                           & predictions["interval_end"].isin(known)].reset_index(drop=True)
    if rows.empty:
        return out
    days = sales.assign(demand=sales["sold_units"] + sales["lost_units"])[
        [*SHELF, "sale_date", "demand"]]
    joined = rows.reset_index().merge(days, on=SHELF)
    inside = joined.loc[(joined["sale_date"] >= joined["interval_start"])
                        & (joined["sale_date"] <= joined["interval_end"])]
    truth = inside.groupby("index")["demand"].sum().reindex(rows.index, fill_value=0)
    rows = rows.assign(error=(rows["forecast_mean"] - truth).abs(), demand=truth, n=1)
    out["forecast_abs_error"] = _per_store(rows, "error", stores).astype("float64")
    out["forecast_demand"] = _per_store(rows, "demand", stores).astype("float64")
    out["forecast_intervals"] = _per_store(rows, "n", stores)
    return out


def plans_by_status(plans: pd.DataFrame, window: Window,
                    stores: Sequence[str]) -> dict[str, dict[str, int]]:
    """Plans created in the window per store and current status (store_id, status,
    created_at)."""
    return counts_per_store(in_window(plans, "created_at", window), "status", stores,
                   enums.PLAN_STATUS.values)


def restock_minutes(plans: pd.DataFrame, window: Window,
                    stores: Sequence[str]) -> dict[str, list[float]]:
    """Simulated minutes from creation to completion of the completed restock plans created in
    the window, per store (store_id, status, created_at, updated_at)."""
    done = in_window(plans, "created_at", window)
    done = done[done["status"] == "completed"]
    if done.empty:
        return {store: [] for store in stores}
    minutes = (done["updated_at"] - done["created_at"]).dt.total_seconds() / 60
    return {store: sorted(minutes[done["store_id"] == store].tolist()) for store in stores}


def alerts_by(alerts: pd.DataFrame, column: str, window: Window,
              stores: Sequence[str]) -> dict[str, dict[str, int]]:
    """Alerts created in the window per store and `column` (alert_type or status)."""
    values = {"alert_type": enums.ALERT_TYPE.values, "status": enums.ALERT_STATUS.values}[column]
    return counts_per_store(in_window(alerts, "created_at", window), column, stores, values)


def end_of_day_stock(shelf_state: pd.DataFrame, wh_state: pd.DataFrame,
                     shelf_events: pd.DataFrame, wh_events: pd.DataFrame,
                     days: Iterable[date]) -> pd.DataFrame:
    """Units on the shelves plus in the warehouse per store at the end of each day (rows: day,
    columns: store), from the current states (store_id, shelf_id, current_stock /
    wh_current_stock) and every event since the first day (the movements after a day are taken
    back off the current state)."""
    shelf_now = _state(shelf_state, "current_stock")
    wh_now = _state(wh_state, "wh_current_stock")
    shelf_moves, wh_moves = shelf_movements(shelf_events), wh_movements(wh_events)
    rows = {}
    for day in days:
        units = stock_at_end_of_day(shelf_now, shelf_moves, day).groupby("store_id").sum().add(
            stock_at_end_of_day(wh_now, wh_moves, day).groupby("store_id").sum(), fill_value=0)
        rows[day] = units
    return pd.DataFrame(rows).T.fillna(0).astype("int64")


def _state(frame: pd.DataFrame, column: str) -> pd.Series:
    index = pd.MultiIndex.from_frame(frame[SHELF]) if len(frame) else pd.MultiIndex.from_arrays(
        [[], []], names=SHELF)
    return pd.Series(frame[column].to_numpy(), index=index, dtype="int64")


def stock_cover(average_stock_units: float | None, average_daily_sold: float) -> float | None:
    """Days the average stock would last at the average daily sales; None when nothing sold."""
    if average_stock_units is None or average_daily_sold <= 0:
        return None
    return average_stock_units / average_daily_sold
