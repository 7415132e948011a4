"""`smart-shelf report`: the key figures of a simulated period, per store and in total.

`report` reads the inputs (`report_inputs`: the ledger and the catalogue from Postgres, the
platform's Delta tables) and `compute_report` computes every figure (`report_figures`, where
the window and each figure are defined) for each store into its `Kpis`, and their sum over the
stores (`total`); `Report` prints them as a table, one column per store and the total, or as
JSON. This module owns a store's figures together and how they are shown.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta

import pandas as pd

from smart_shelf_platform.contracts import enums
from smart_shelf_platform.report_figures import (
    Window, alerts_by, counts_per_store, end_of_day_stock, event_waste, forecast_errors,
    in_window, ledger_waste, on_days, plans_by_status, restock_minutes, sales_kpis,
    simulated_days, stock_cover, stock_days, supplier_order_kpis, waste_kpis,
)
from smart_shelf_platform.report_inputs import ReportInputs, read_inputs
from smart_shelf_platform.settings import Settings

WASTE_FROM_LEDGER = "ledger (sim.ledger_daily_waste)"
WASTE_FROM_EVENTS = "platform events (expired_removal, wh_removal)"


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
    plan_sources = counts_per_store(in_window(inputs.supplier_plans, "created_at", window),
                                    "source", stores, enums.PLAN_SOURCE.values)
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


def report(settings: Settings, stores: list[str] | None = None, first: date | None = None,
           last: date | None = None) -> Report:
    """The report of `stores` (default: every store in the ledger) over [first, last] (default:
    the days the ledger covers). Raises StackError when there is nothing to report on."""
    return compute_report(read_inputs(settings, stores, first, last))
