"""`smart-shelf report`: the key figures of a simulated period, per store and in total.

The figures are pure functions over pandas frames (one per KPI, and `compute_report` for all of
them); `read_inputs` reads the simulator's ledger and the catalogue's prices from Postgres and the
platform's Delta tables (`delta_reader`, no Spark) into `ReportInputs`; `report` does both.

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
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta

import pandas as pd
import psycopg
import pyarrow.compute as pc

from smart_shelf_platform import delta_reader
from smart_shelf_platform.contracts import enums
from smart_shelf_platform.ml.features import (
    SHELF, stock_at_end_of_day, shelf_movements, wh_movements,
)
from smart_shelf_platform.settings import Settings
from smart_shelf_platform.stack.process import StackError
from smart_shelf_platform.verify import connect_ledger, select_stores

DAY = timedelta(days=1)
WASTE_FROM_LEDGER = "ledger (sim.ledger_daily_waste)"
WASTE_FROM_EVENTS = "platform events (expired_removal, wh_removal)"
MOVING_SHELF_EVENTS = ("pickup", "putback", "expired_removal")  # weight changes move no units

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


def _counts(frame: pd.DataFrame, column: str, stores: Sequence[str],
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
    return _counts(in_window(plans, "created_at", window), "status", stores,
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
    return _counts(in_window(alerts, "created_at", window), column, stores, values)


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


# ------------------------------------------------------------------------------------------------
# The report
# ------------------------------------------------------------------------------------------------


@dataclass
class Kpis:
    """One store's figures over the window (or the sum over stores)."""

    units_sold: int = 0
    lost_units: int = 0
    lost_units_wh_empty: int = 0  # of lost_units: the warehouse was empty too
    waste_shelf_units: int = 0
    waste_warehouse_units: int = 0
    waste_value: float | None = None
    orders_placed: int = 0
    units_ordered: int = 0
    orders_delivered: int = 0
    units_delivered: int = 0
    restock_plans: dict[str, int] = field(default_factory=dict)  # by current status
    restock_minutes: list[float] = field(default_factory=list)  # plan -> completed, sorted
    supplier_plans: dict[str, int] = field(default_factory=dict)
    supplier_plan_sources: dict[str, int] = field(default_factory=dict)  # rule or model
    forecast_abs_error: float = 0.0  # summed over the cutoffs' intervals the ledger covers
    forecast_demand: float = 0.0
    forecast_intervals: int = 0
    simulated_days: float = 0.0
    average_stock_units: float | None = None  # end-of-day shelf + warehouse units
    average_daily_sold: float = 0.0
    alerts_by_type: dict[str, int] = field(default_factory=dict)
    alerts_by_status: dict[str, int] = field(default_factory=dict)

    @property
    def lost_pct(self) -> float | None:
        """Lost units as a percentage of demand (sold + lost)."""
        demand = self.units_sold + self.lost_units
        return 100.0 * self.lost_units / demand if demand else None

    @property
    def fill_rate_pct(self) -> float | None:
        """Units sold as a percentage of demand."""
        demand = self.units_sold + self.lost_units
        return 100.0 * self.units_sold / demand if demand else None

    @property
    def forecast_wape_pct(self) -> float | None:
        """The cutoffs' interval forecasts' weighted absolute error, % of true demand."""
        return (100.0 * self.forecast_abs_error / self.forecast_demand
                if self.forecast_demand else None)

    def restock_time(self, percentile: float) -> float | None:
        """A percentile of `restock_minutes` (linear between the nearest two); None without."""
        if not self.restock_minutes:
            return None
        return float(pd.Series(self.restock_minutes).quantile(percentile / 100))

    @property
    def waste_units(self) -> int:
        return self.waste_shelf_units + self.waste_warehouse_units

    @property
    def stock_cover_days(self) -> float | None:
        return stock_cover(self.average_stock_units, self.average_daily_sold)

    def as_dict(self) -> dict:
        values = asdict(self)
        return {
            "units_sold": self.units_sold,
            "fill_rate_pct": _round(self.fill_rate_pct),
            "lost_sales": {"units": self.lost_units, "pct_of_demand": _round(self.lost_pct),
                           "warehouse_empty_units": self.lost_units_wh_empty,
                           "warehouse_stocked_units": self.lost_units - self.lost_units_wh_empty},
            "waste": {"shelf_units": self.waste_shelf_units,
                      "warehouse_units": self.waste_warehouse_units,
                      "units": self.waste_units, "value": self.waste_value},
            "supplier_orders": {"placed": self.orders_placed, "units_ordered": self.units_ordered,
                                "delivered": self.orders_delivered,
                                "units_delivered": self.units_delivered},
            "restock_plans": values["restock_plans"],
            "restock_time_minutes": {"p50": _round(self.restock_time(50)),
                                     "p95": _round(self.restock_time(95)),
                                     "plans": len(self.restock_minutes)},
            "supplier_plans": values["supplier_plans"],
            "supplier_plans_by_source": values["supplier_plan_sources"],
            "forecast": {"wape_pct": _round(self.forecast_wape_pct),
                         "intervals": self.forecast_intervals},
            "stock_cover": {"simulated_days": _round(self.simulated_days, 3),
                            "average_stock_units": _round(self.average_stock_units),
                            "average_daily_sold": _round(self.average_daily_sold),
                            "days": _round(self.stock_cover_days)},
            "alerts": {"by_type": values["alerts_by_type"],
                       "by_status": values["alerts_by_status"],
                       "total": sum(self.alerts_by_type.values())},
        }


def _money(value: object) -> float | None:
    return None if value is None or pd.isna(value) else round(float(value), 2)


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def total(stores: Iterable[Kpis]) -> Kpis:
    """The sum over stores: counts add up, stock and daily sales too (so the cover is the
    chain's stock over the chain's sales), percentages are recomputed."""
    stores = list(stores)
    out = Kpis()
    for name in ("units_sold", "lost_units", "lost_units_wh_empty", "waste_shelf_units",
                 "waste_warehouse_units", "forecast_abs_error", "forecast_demand",
                 "forecast_intervals",
                 "orders_placed", "units_ordered", "orders_delivered", "units_delivered",
                 "average_daily_sold"):
        setattr(out, name, sum(getattr(k, name) for k in stores))
    for name in ("restock_plans", "supplier_plans", "supplier_plan_sources", "alerts_by_type",
                 "alerts_by_status"):
        summed: dict[str, int] = {}
        for k in stores:
            for key, n in getattr(k, name).items():
                summed[key] = summed.get(key, 0) + n
        setattr(out, name, summed)
    out.restock_minutes = sorted(m for k in stores for m in k.restock_minutes)
    values = [k.waste_value for k in stores if k.waste_value is not None]
    out.waste_value = round(sum(values), 2) if values else None
    stocks = [k.average_stock_units for k in stores if k.average_stock_units is not None]
    out.average_stock_units = sum(stocks) if stocks else None
    out.simulated_days = max((k.simulated_days for k in stores), default=0.0)
    return out


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


@dataclass
class Report:
    window: Window
    waste_source: str
    stores: dict[str, Kpis]
    total: Kpis

    def as_dict(self) -> dict:
        return {"window": {"from": self.window.first.isoformat(),
                           "to": self.window.last.isoformat()},
                "waste_source": self.waste_source,
                "stores": {s: k.as_dict() for s, k in self.stores.items()},
                "total": self.total.as_dict()}

    def lines(self) -> list[str]:
        """The report as printed: one row per figure, one column per store and the total."""
        columns = [*self.stores, "total"]
        kpis = [*self.stores.values(), self.total]
        rows: list[tuple[str, list[str]]] = []

        def row(label: str, values: Iterable[object]) -> None:
            rows.append((label, [_cell(v) for v in values]))

        row("units sold", (k.units_sold for k in kpis))
        row("fill rate, % of demand", (_pct(k.fill_rate_pct) for k in kpis))
        row("lost sales, units", (k.lost_units for k in kpis))
        row("lost sales, % of demand", (_pct(k.lost_pct) for k in kpis))
        row("lost sales, warehouse empty, units", (k.lost_units_wh_empty for k in kpis))
        row("lost sales, warehouse stocked, units",
            (k.lost_units - k.lost_units_wh_empty for k in kpis))
        row("waste on shelves, units", (k.waste_shelf_units for k in kpis))
        row("waste in the warehouse, units", (k.waste_warehouse_units for k in kpis))
        row("waste value (list price)", (k.waste_value for k in kpis))
        row("supplier orders placed", (k.orders_placed for k in kpis))
        row("  units ordered", (k.units_ordered for k in kpis))
        row("supplier orders delivered", (k.orders_delivered for k in kpis))
        row("  units delivered", (k.units_delivered for k in kpis))
        for status in enums.PLAN_STATUS.values:
            row(f"restock plans: {status}", (k.restock_plans.get(status, 0) for k in kpis))
        row("restock time, minutes: median", (k.restock_time(50) for k in kpis))
        row("restock time, minutes: p95", (k.restock_time(95) for k in kpis))
        for status in enums.PLAN_STATUS.values:
            row(f"supplier plans: {status}", (k.supplier_plans.get(status, 0) for k in kpis))
        for source in enums.PLAN_SOURCE.values:
            row(f"supplier plans by source: {source}",
                (k.supplier_plan_sources.get(source, 0) for k in kpis))
        row("forecast intervals scored", (k.forecast_intervals for k in kpis))
        row("forecast WAPE, % of demand", (_pct(k.forecast_wape_pct) for k in kpis))
        row("average stock, units", (k.average_stock_units for k in kpis))
        row("average units sold per day", (k.average_daily_sold for k in kpis))
        row("average stock cover, days", (k.stock_cover_days for k in kpis))
        for alert_type in enums.ALERT_TYPE.values:
            row(f"alerts by type: {alert_type}",
                (k.alerts_by_type.get(alert_type, 0) for k in kpis))
        for status in enums.ALERT_STATUS.values:
            row(f"alerts by status: {status}", (k.alerts_by_status.get(status, 0) for k in kpis))
        row("alerts, all types", (sum(k.alerts_by_type.values()) for k in kpis))

        label_width = max(len(label) for label, _ in rows)
        widths = [max(len(c), *(len(cells[i]) for _, cells in rows))
                  for i, c in enumerate(columns)]
        days = max((k.simulated_days for k in self.stores.values()), default=0.0)
        lines = [f"report: {self.window.first} to {self.window.last} ({days:.2f} simulated "
                 f"days, {len(self.stores)} store{'' if len(self.stores) == 1 else 's'}); "
                 f"waste from the {self.waste_source}",
                 "  ".join([" " * label_width, *(c.rjust(w) for c, w in zip(columns, widths))])]
        lines += ["  ".join([label.ljust(label_width),
                            *(cell.rjust(w) for cell, w in zip(cells, widths))])
                  for label, cells in rows]
        return lines


def _pct(value: float | None) -> str | None:
    return None if value is None else f"{value:.2f}%"


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def compute_report(inputs: ReportInputs) -> Report:
    stores, window = inputs.stores, inputs.window
    sales = sales_kpis(inputs.sales, window, stores)
    if inputs.waste is not None:
        waste, source = ledger_waste(inputs.waste, window), WASTE_FROM_LEDGER
    else:
        waste = event_waste(inputs.shelf_events, inputs.wh_events, window)
        source = WASTE_FROM_EVENTS
    wasted = waste_kpis(waste, inputs.prices, stores)
    supplier = supplier_order_kpis(inputs.orders, inputs.receipts, window, stores)
    restock_plans = plans_by_status(inputs.restock_plans, window, stores)
    restock_times = restock_minutes(inputs.restock_plans, window, stores)
    supplier_plans = plans_by_status(inputs.supplier_plans, window, stores)
    plan_sources = _counts(in_window(inputs.supplier_plans, "created_at", window), "source",
                           stores, enums.PLAN_SOURCE.values)
    # A day is whole once the simulation has passed its end in every store.
    complete_until = min(inputs.positions.values()).date() - timedelta(days=1)
    forecasts = forecast_errors(inputs.predictions, on_days(inputs.sales, "sale_date", window),
                                stores, complete_until)
    by_type = alerts_by(inputs.alerts, "alert_type", window, stores)
    by_status = alerts_by(inputs.alerts, "status", window, stores)

    days_of = {s: stock_days(window, inputs.sim_start, inputs.positions[s]) for s in stores}
    all_days = sorted({d for days in days_of.values() for d in days})
    stock = end_of_day_stock(inputs.shelf_state, inputs.wh_state, inputs.shelf_events,
                             inputs.wh_events, all_days)

    per_store = {}
    for store in stores:
        span = simulated_days(window, inputs.sim_start, inputs.positions[store])
        sold = int(sales.at[store, "units_sold"])
        days = days_of[store]
        if days:
            units = stock[store] if store in stock else pd.Series(0, index=all_days)
            average_stock = float(units.reindex(days, fill_value=0).mean())
        else:
            average_stock = None
        per_store[store] = Kpis(
            units_sold=sold,
            lost_units=int(sales.at[store, "lost_units"]),
            lost_units_wh_empty=int(sales.at[store, "lost_units_wh_empty"]),
            waste_shelf_units=int(wasted.at[store, "waste_shelf_units"]),
            waste_warehouse_units=int(wasted.at[store, "waste_warehouse_units"]),
            waste_value=_money(wasted.at[store, "waste_value"]),
            orders_placed=int(supplier.at[store, "orders_placed"]),
            units_ordered=int(supplier.at[store, "units_ordered"]),
            orders_delivered=int(supplier.at[store, "orders_delivered"]),
            units_delivered=int(supplier.at[store, "units_delivered"]),
            restock_plans=restock_plans[store],
            restock_minutes=restock_times[store],
            supplier_plans=supplier_plans[store],
            supplier_plan_sources=plan_sources[store],
            forecast_abs_error=float(forecasts.at[store, "forecast_abs_error"]),
            forecast_demand=float(forecasts.at[store, "forecast_demand"]),
            forecast_intervals=int(forecasts.at[store, "forecast_intervals"]),
            simulated_days=span,
            average_stock_units=average_stock,
            average_daily_sold=sold / span if span > 0 else 0.0,
            alerts_by_type=by_type[store],
            alerts_by_status=by_status[store],
        )
    return Report(window, source, per_store, total(per_store.values()))


# ------------------------------------------------------------------------------------------------
# Reading (ledger and catalogue from Postgres, the platform from Delta)
# ------------------------------------------------------------------------------------------------


def report(settings: Settings, stores: list[str] | None = None, first: date | None = None,
           last: date | None = None) -> Report:
    """The report of `stores` (default: every store in the ledger) over [first, last] (default:
    the days the ledger covers). Raises StackError when there is nothing to report on."""
    return compute_report(read_inputs(settings, stores, first, last))


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
