"""Rolling-origin backtest: at every past cutoff, refit on what was known then, forecast the
protection interval, and score the model and every baseline against the true demand.

For each cutoff C whose interval has ended in the history (and with at least
`MIN_TRAINING_DAYS` days before its origin): the model is trained on `training_rows` up to C's
origin (nothing after it), forecasts C's interval for every shelf (`forecast.forecast_cutoff`),
and the baselines forecast the same shelves from the same history. The truth is the simulator's
demand (units sold + sales lost to empty shelves, `sim.ledger_daily_sales`), summed over the
interval days: it is read here and nowhere in training.

`run_backtest` returns the per-row frame (one row per shelf, cutoff and method) and
`score` turns it into the metrics table: per method, for every row (`all`), per category, and
for slow movers (shelves selling under `SLOW_MOVER_DAILY_UNITS` a day before the origin).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from smart_shelf_platform.ml import baselines, metrics
from smart_shelf_platform.ml.forecast import QUANTILE_COLUMNS, forecast_cutoff
from smart_shelf_platform.ml.intervals import CutoffWindow
from smart_shelf_platform.ml.model import QUANTILES, DemandModel, NotEnoughHistory
from smart_shelf_platform.ml.training_set import SHELF, known_history, training_rows

log = logging.getLogger(__name__)
DAY = timedelta(days=1)
MIN_TRAINING_DAYS = 14
SLOW_MOVER_DAILY_UNITS = 2.0
METHODS = ("model", "seasonal_naive", "moving_average_7d", "moving_average_28d", "tsb", "oracle")
BASELINES = ("seasonal_naive", "moving_average_7d", "moving_average_28d", "tsb")


def backtest_windows(windows: Sequence[CutoffWindow], first_day: date, last_day: date,
                     min_days: int = MIN_TRAINING_DAYS) -> list[CutoffWindow]:
    """The windows with `min_days` of history up to their origin and their interval known."""
    return [w for w in windows
            if (w.origin - first_day).days + 1 >= min_days and w.interval_days[-1] <= last_day]


def run_backtest(panel: pd.DataFrame, promotions: pd.DataFrame, truth: pd.DataFrame,
                 oracle: pd.DataFrame | None, windows: Sequence[CutoffWindow], horizon: int,
                 progress: Callable[[str], None] = log.info) -> pd.DataFrame:
    """One row per (cutoff, shelf, method): actual, forecast, the quantiles (model only), the
    MASE scale and whether the shelf is a slow mover.

    `truth`: SHELF, day, demand; `oracle`: SHELF, day, expected (baselines.oracle_daily), or
    None to leave the oracle out."""
    frames = []
    for number, window in enumerate(windows, 1):
        started = datetime.now()
        rows = training_rows(panel, promotions, window.origin, horizon)
        try:
            model = DemandModel.fit(rows, window.origin)
        except NotEnoughHistory as error:
            progress(f"cutoff {window.cutoff:%Y-%m-%d %H:%M}: skipped ({error})")
            continue
        forecast = forecast_cutoff(model, panel, promotions, window).set_index(SHELF)
        forecast = forecast.loc[forecast["method"] == "model"]
        days = window.interval_days
        actual = _interval_sum(truth, "demand", days).reindex(forecast.index, fill_value=0)
        history = known_history(panel, window.origin)
        daily_mean = history.groupby(SHELF)["sales_qty"].mean().reindex(forecast.index)
        base = pd.DataFrame({
            "cutoff": window.cutoff, "actual": actual, "category": forecast["item_category"],
            "scale": baselines.naive_scale(panel, window.origin, len(days)),
            "slow_mover": daily_mean < SLOW_MOVER_DAILY_UNITS,
        }, index=forecast.index)
        predictions = {
            "model": forecast["forecast_mean"],
            "seasonal_naive": baselines.seasonal_naive(panel, window.origin, days),
            "moving_average_7d": baselines.moving_average(panel, window.origin, days, 7),
            "moving_average_28d": baselines.moving_average(panel, window.origin, days, 28),
            "tsb": baselines.tsb(panel, window.origin, days),
        }
        if oracle is not None:
            predictions["oracle"] = _interval_sum(oracle, "expected", days)
        for method, values in predictions.items():
            frame = base.assign(method=method,
                                forecast=values.reindex(base.index).astype("float64"))
            for column in QUANTILE_COLUMNS:
                frame[column] = forecast[column] if method == "model" else np.nan
            frames.append(frame.reset_index())
        progress(f"cutoff {number}/{len(windows)} {window.cutoff:%Y-%m-%d %H:%M}: "
                 f"{len(rows):,} training rows, {len(forecast):,} shelves, "
                 f"{(datetime.now() - started).total_seconds():.1f} s")
    if not frames:
        return pd.DataFrame(columns=["cutoff", *SHELF, "method", "category", "actual",
                                     "forecast", "scale", "slow_mover", *QUANTILE_COLUMNS])
    rows = pd.concat(frames, ignore_index=True)
    # Every method on the same rows: a shelf a baseline cannot forecast (no history one week
    # back) is left out for all of them.
    undefined = rows.loc[rows["forecast"].isna(), ["cutoff", *SHELF]].drop_duplicates()
    if not undefined.empty:
        keys = rows.set_index(["cutoff", *SHELF]).index
        rows = rows.loc[~keys.isin(pd.MultiIndex.from_frame(undefined))]
    return rows.reset_index(drop=True)


def _interval_sum(daily: pd.DataFrame, column: str, days: Sequence[date]) -> pd.Series:
    inside = daily.loc[daily["day"].isin(list(days))]
    return inside.groupby(SHELF)[column].sum().astype("float64")


def _scores(rows: pd.DataFrame) -> dict[str, float]:
    out = {"rows": float(len(rows)), "actual_units": float(rows["actual"].sum()),
           "wape": metrics.wape(rows["actual"], rows["forecast"]),
           "bias": metrics.bias(rows["actual"], rows["forecast"]),
           "mase": metrics.mase(rows["actual"], rows["forecast"], rows["scale"])}
    if rows[QUANTILE_COLUMNS[0]].notna().all() and len(rows):
        for q, column in zip(QUANTILES, QUANTILE_COLUMNS):
            out[f"pinball_{column}"] = metrics.pinball(rows["actual"], rows[column], q)
            out[f"coverage_{column}"] = metrics.coverage(rows["actual"], rows[column])
    return out


def score(rows: pd.DataFrame) -> pd.DataFrame:
    """Long table: method, scope (`all`, `category:<name>`, `slow_movers`), cutoff (None for the
    whole backtest), metric, value."""
    records = []

    def add(frame: pd.DataFrame, scope: str, cutoff) -> None:
        for method, group in frame.groupby("method"):
            for metric, value in _scores(group).items():
                records.append((method, scope, cutoff, metric, value))

    add(rows, "all", None)
    for category, group in rows.groupby("category"):
        add(group, f"category:{category}", None)
    add(rows.loc[rows["slow_mover"] == True], "slow_movers", None)  # noqa: E712
    for cutoff, group in rows.groupby("cutoff"):
        add(group, "all", cutoff)
    return pd.DataFrame(records, columns=["method", "scope", "cutoff", "metric", "value"])


def summary(scores: pd.DataFrame, scope: str = "all") -> pd.DataFrame:
    """method x metric over the whole backtest, methods in `METHODS` order."""
    overall = scores.loc[(scores["scope"] == scope) & scores["cutoff"].isna()]
    table = overall.pivot(index="method", columns="metric", values="value")
    return table.reindex([m for m in METHODS if m in table.index])
