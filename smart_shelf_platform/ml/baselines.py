"""The forecasts a model must beat, on the same (shelf, cutoff) rows, and the bound it cannot.

Every baseline sees what the model sees: the daily panel up to the cutoff's origin (observed
sales, so censored by stockouts exactly as the model's inputs are). Each returns the interval's
expected units per shelf, indexed by (store_id, shelf_id):

- `seasonal_naive`: each interval day's sales on the same weekday of the latest week already
  known (one week back, or two when one week back is after the origin);
- `moving_average(days)`: the mean daily sales of the last `days` known days times the
  interval's length;
- `tsb`: Teunter-Syntetos-Babai for intermittent demand: the smoothed probability of a
  selling day times the smoothed size of a selling day, per day of the interval;
- `oracle`: the simulator's own expected demand for each interval day, from its parameters
  (traffic weights, actions per visit, pickup sizes, putbacks, product visibility and the
  discounts in force): no forecast can beat it on average, so it measures how much is left.

`naive_scale` is MASE's denominator: the mean absolute change of daily sales from one week to the
next over the shelf's known history, times the interval's length.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import date, timedelta

import numpy as np
import pandas as pd

from smart_shelf_platform.ml.training_set import SHELF, known_history

DAY = timedelta(days=1)
WEEK = 7 * DAY
TSB_ALPHA = 0.1  # smoothing of the selling day's size
TSB_BETA = 0.1   # smoothing of the probability of a selling day


def _sales_matrix(history: pd.DataFrame) -> pd.DataFrame:
    """shelves x days of sales (NaN where the shelf has no row that day)."""
    return history.pivot_table(index=SHELF, columns="feature_date", values="sales_qty",
                               aggfunc="sum")


def seasonal_naive(panel: pd.DataFrame, origin: date, days: Sequence[date]) -> pd.Series:
    sales = _sales_matrix(known_history(panel, origin))
    total = pd.Series(0.0, index=sales.index)
    for day in days:
        back = day - WEEK
        while back > origin:
            back -= WEEK
        column = sales[back] if back in sales.columns else pd.Series(np.nan, index=sales.index)
        total = total + column
    return total


def moving_average(panel: pd.DataFrame, origin: date, days: Sequence[date],
                   window: int) -> pd.Series:
    history = known_history(panel, origin)
    recent = history.loc[history["feature_date"] > origin - window * DAY]
    return recent.groupby(SHELF)["sales_qty"].mean() * len(days)


def tsb_daily(series: Sequence[float], alpha: float = TSB_ALPHA,
              beta: float = TSB_BETA) -> float:
    """TSB's forecast of one day's demand after `series` (oldest first): probability x size.

    Both start from the series' own first values (the probability from the first day, the size
    from the first selling day); the size is updated only on selling days, the probability
    every day."""
    values = [float(v) for v in series if not np.isnan(v)]
    if not values:
        return float("nan")
    probability = 1.0 if values[0] > 0 else 0.0
    size = next((v for v in values if v > 0), 0.0)
    for value in values[1:]:
        sold = value > 0
        probability += beta * ((1.0 if sold else 0.0) - probability)
        if sold:
            size += alpha * (value - size)
    return probability * size


def tsb(panel: pd.DataFrame, origin: date, days: Sequence[date]) -> pd.Series:
    sales = _sales_matrix(known_history(panel, origin)).sort_index(axis=1)
    return pd.Series([tsb_daily(row) * len(days) for row in sales.to_numpy()],
                     index=sales.index)


def naive_scale(panel: pd.DataFrame, origin: date, length: int) -> pd.Series:
    sales = _sales_matrix(known_history(panel, origin)).sort_index(axis=1)
    changes = (sales - sales.shift(7, axis=1)).abs()
    return changes.mean(axis=1) * length


# ---- the oracle: the simulator's own expected demand ------------------------------------------


def net_units_per_customer(samples: int = 20000, seed: int = 0) -> float:
    """Expected units a customer takes home (or would, from a stocked store): the simulator's
    pickups less its putbacks, by Monte Carlo over its own visit model (actions per visit,
    pickup probability and sizes, putbacks of part of a product already in the cart)."""
    from producers.world.store import ShopperSettings, actions_for_visit

    shoppers = ShopperSettings()
    rng = random.Random(seed)
    quantities, weights = shoppers.pickup_quantities, shoppers.pickup_quantity_weights
    kept = 0
    for _ in range(samples):
        cart: list[int] = []  # units per product (a visit rarely picks a product twice)
        for _ in range(actions_for_visit(rng)):
            if rng.random() >= shoppers.putback_probability:
                u = rng.random()
                acc, qty = 0.0, quantities[-1]
                for q, w in zip(quantities, weights):
                    acc += w
                    if u < acc:
                        qty = q
                        break
                cart.append(qty)
            elif cart:
                i = int(rng.random() * len(cart))
                back = min(cart[i], 1 + int(rng.random() * cart[i]))
                cart[i] -= back
                if not cart[i]:
                    cart.pop(i)
        kept += sum(cart)
    return kept / samples


def expected_customers(day: date) -> float:
    """The simulator's mean customers on `day` (its daily variation averages out)."""
    from producers.world.traffic import AVERAGE_WEIGHT_SUM, SLOT_WEIGHTS, TrafficSettings

    cfg = TrafficSettings()
    return (cfg.base_daily_customers * sum(SLOT_WEIGHTS[day.weekday()]) / AVERAGE_WEIGHT_SUM
            * cfg.traffic_multiplier)


def oracle_daily(catalogue: pd.DataFrame, discounts: pd.DataFrame, days: Sequence[date],
                 units_per_customer: float) -> pd.DataFrame:
    """Expected demand per shelf and day: customers x units per customer x the shelf's share of
    pickups (visibility x (1 + discount in force), as the simulator picks shelves).

    `catalogue`: store_id, shelf_id, item_visibility; `discounts`: store_id, shelf_id, day,
    discount (the combined discount in force, missing = 0)."""
    frames = []
    for day in days:
        rows = catalogue[[*SHELF, "item_visibility"]].copy()
        rows["day"] = day
        frames.append(rows)
    grid = pd.concat(frames, ignore_index=True)
    grid = grid.merge(discounts, on=[*SHELF, "day"], how="left")
    grid["discount"] = grid["discount"].fillna(0.0).astype("float64")
    grid["weight"] = grid["item_visibility"].astype("float64") * (1 + grid["discount"])
    share = grid["weight"] / grid.groupby(["store_id", "day"])["weight"].transform("sum")
    customers = grid["day"].map(expected_customers)
    grid["expected"] = customers * units_per_customer * share
    return grid[[*SHELF, "day", "expected"]]
