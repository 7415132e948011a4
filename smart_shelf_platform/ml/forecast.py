"""A cutoff's forecast per shelf and the order it implies (serving; the backtest uses it too).

`forecast_cutoff(model, panel, promotions, window)` builds the serving rows for the cutoff's lead
and interval days (`training_set.build_rows`, as in training), predicts each day's mean demand
and returns, per shelf: the lead demand, the interval's mean and quantiles, and `method`:

- `model`: the model's forecast;
- `fallback_history`: the shelf has fewer than `min_history_days` days of history (a new store
  or product; SMART_SHELF_FORECAST_MIN_HISTORY_DAYS), or there is no model: its in-stock mean daily sales so far (0 without any),
  with the model's dispersion (or `FALLBACK_DISPERSION` without a model) for the quantiles.

`order_rows` turns forecasts into orders with `rules.supplier.order_up_to_units`, from the
stock at the end of the origin day (shelf, warehouse, on order: the daily features), so a
cutoff's orders depend only on what was known at the cutoff.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from smart_shelf_platform.ml.intervals import CutoffWindow
from smart_shelf_platform.ml.model import QUANTILES, DemandModel, interval_quantiles
from smart_shelf_platform.ml.training_set import SHELF, build_rows, censored, known_history
from smart_shelf_platform.rules.supplier import MODEL_METHOD, order_up_to_units

DAY = timedelta(days=1)
MIN_HISTORY_DAYS = 7
FALLBACK_DISPERSION = 0.5
METHOD_MODEL = MODEL_METHOD
METHOD_FALLBACK = "fallback_history"


def quantile_column(q: float) -> str:
    return f"q{round(q * 100):02d}"


QUANTILE_COLUMNS = tuple(quantile_column(q) for q in QUANTILES)


def forecast_cutoff(model: DemandModel | None, panel: pd.DataFrame, promotions: pd.DataFrame,
                    window: CutoffWindow,
                    min_history_days: int = MIN_HISTORY_DAYS) -> pd.DataFrame:
    """SHELF, item_category, lead_mean, forecast_mean, q50..q95, method (one row per shelf with
    any history at the origin)."""
    lead, interval = window.lead_days, window.interval_days
    rows = build_rows(panel, promotions, window.origin, [*lead, *interval])
    if rows.empty:
        return pd.DataFrame(columns=[*SHELF, "item_category", "lead_mean", "forecast_mean",
                                     *QUANTILE_COLUMNS, "method"])
    history = known_history(panel, window.origin)
    observed = history.loc[~censored(history)].groupby(SHELF)["sales_qty"].mean()
    fallback_daily = rows.set_index(SHELF).index.map(observed).to_numpy(dtype="float64")
    fallback_daily = np.nan_to_num(fallback_daily, nan=0.0)
    use_model = (rows["history_days"] >= min_history_days).to_numpy() & (model is not None)
    daily = fallback_daily.copy()
    if model is not None and use_model.any():
        daily[use_model] = model.predict_daily(rows.loc[use_model])
    in_interval = rows["day"].isin(interval).to_numpy()
    rows = rows.assign(model_row=use_model, lead_mean=np.where(in_interval, 0.0, daily),
                       forecast_mean=np.where(in_interval, daily, 0.0))
    per_shelf = rows.groupby(SHELF).agg(
        item_category=("item_category", "first"), model_row=("model_row", "all"),
        lead_mean=("lead_mean", "sum"), forecast_mean=("forecast_mean", "sum")).reset_index()
    phi = model.phi if model is not None else FALLBACK_DISPERSION
    for q, values in interval_quantiles(per_shelf["forecast_mean"].to_numpy(), phi).items():
        per_shelf[quantile_column(q)] = values.astype("int64")
    per_shelf["method"] = np.where(per_shelf.pop("model_row"), METHOD_MODEL, METHOD_FALLBACK)
    return per_shelf


def order_rows(forecast: pd.DataFrame, panel: pd.DataFrame, window: CutoffWindow,
               order_quantile: float, shelf_life_days: pd.Series | None = None,
               on_order: pd.Series | None = None) -> pd.DataFrame:
    """`forecast` plus the stock it orders against and the order: shelf_on_hand, wh_on_hand,
    on_order, wh_capacity, batch_size, order_units, order_batches. `shelf_life_days` (indexed by
    SHELF, perishables only) caps a perishable's target by its interval-mean daily demand times
    the days a new lot keeps. `on_order` (indexed by SHELF: units of orders on their way at the
    origin's end, `supplier_feed.on_order_at`) replaces the features' plans in flight, which
    count pending plans too."""
    column = quantile_column(order_quantile)
    if column not in forecast.columns:
        raise ValueError(f"no {order_quantile} quantile: the forecasts have {QUANTILE_COLUMNS}")
    stock = panel.loc[panel["feature_date"] == window.origin, [
        *SHELF, "current_stock_shelf", "current_stock_warehouse", "pending_supplier_qty",
        "warehouse_capacity", "standard_batch_size"]].rename(columns={
            "current_stock_shelf": "shelf_on_hand", "current_stock_warehouse": "wh_on_hand",
            "pending_supplier_qty": "on_order", "warehouse_capacity": "wh_capacity",
            "standard_batch_size": "batch_size"})
    if on_order is not None:
        stock["on_order"] = stock.set_index(SHELF).index.map(on_order).to_numpy(
            dtype="float64")
        stock["on_order"] = np.nan_to_num(stock["on_order"], nan=0.0).astype("int64")
    rows = forecast.merge(stock, on=SHELF, how="inner")
    days = len(window.interval_days)
    life = (rows.set_index(SHELF).index.map(shelf_life_days).to_numpy(dtype="float64")
            if shelf_life_days is not None else np.full(len(rows), np.nan))
    units = []
    for row, keeps in zip(rows.itertuples(index=False), life):
        sellable = None if np.isnan(keeps) else row.forecast_mean / days * keeps
        units.append(order_up_to_units(
            getattr(row, column), int(row.shelf_on_hand), int(row.wh_on_hand), int(row.on_order),
            row.lead_mean, max(1, int(row.batch_size)), int(row.wh_capacity), sellable))
    rows["order_units"] = np.asarray(units, dtype="int64")
    rows["order_batches"] = rows["order_units"] // rows["batch_size"].clip(lower=1)
    return rows
