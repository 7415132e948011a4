"""Feature rows for demand forecasting: one function for training and for serving.

The input is the **daily panel**: the daily shelf features (`analytics/shelf_daily_features`),
one row per shelf and day, with the columns in `PANEL_COLUMNS`; and the planned weekly
promotions (`ref.weekly_discounts`, known weeks ahead). `build_rows(panel, promotions, origin,
days)` makes one row per shelf and target day from what was known at the end of `origin`:

- the shelf's history up to `origin` only (`known_history`): in-stock mean sales over the last
  7 and 28 days, the in-stock mean on the target's weekday over the last 4 weeks, the last day's
  sales, the share of censored days, the recent discount level, the store's traffic;
- the target day's calendar (weekday, weekend, days ahead of the origin) and its planned
  promotion (not its near-expiry discount: that is decided on the day itself);
- the label, where the panel already has the target day: its units sold and whether they were
  censored.

Training calls it for many past origins (`training_rows`), serving for the cutoff's origin and
its lead and interval days: the same code, so what the model learnt from is what it is asked.
A row never reads a day after its origin (a test adds later days and checks nothing changes).

**Censoring.** The platform sees sales, not demand: a shelf that ran empty sold less than
shoppers wanted. A day with a stockout (`stockout_events > 0`: the shelf hit zero, or started
the day empty) is **censored**: its sales are a lower bound of its demand. Censored days are
kept out of the in-stock means, the share of censored days is a feature (a shelf that often runs
empty is often under-observed), and their rows are flagged (`censored`) for the model, which
learns from them as lower bounds (`model.DemandModel.fit`): leaving them out would teach it the
quieter days only, since the busy days are the ones that run empty. The simulator's ledger knows
the true demand; it is used only to evaluate (the backtest), never here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, timedelta

import numpy as np
import pandas as pd

DAY = timedelta(days=1)
SHELF = ["store_id", "shelf_id"]
PANEL_COLUMNS = (
    "store_id", "shelf_id", "feature_date", "item_category", "item_price", "sales_qty",
    "stockout_events", "people_count", "discount", "current_stock_shelf",
    "current_stock_warehouse", "pending_supplier_qty", "warehouse_capacity",
    "standard_batch_size",
)
PROMOTION_COLUMNS = ("store_id", "shelf_id", "week_start", "week_end", "discount_pct")
FEATURE_COLUMNS = (
    "horizon", "day_of_week", "is_weekend", "planned_discount", "item_price",
    "mean_7d", "mean_28d", "mean_same_weekday_28d", "last_day_sales", "censored_share_7d",
    "discount_7d", "people_7d", "people_same_weekday_28d", "history_days",
)
LABEL = "sales_qty"
HISTORY_DAYS = 28


def censored(panel: pd.DataFrame) -> pd.Series:
    return panel["stockout_events"] > 0


def known_history(panel: pd.DataFrame, origin: date, days: int = HISTORY_DAYS) -> pd.DataFrame:
    """The panel's days in (origin - days, origin]: all a row made at `origin` may read."""
    dates = panel["feature_date"]
    return panel.loc[(dates <= origin) & (dates > origin - days * DAY)]


def planned_discount(promotions: pd.DataFrame, days: Iterable[date]) -> pd.DataFrame:
    """store_id, shelf_id, day, planned_discount: the weekly promotion covering each day."""
    frames = []
    for day in days:
        active = promotions.loc[(promotions["week_start"] <= day) & (promotions["week_end"] >= day)]
        frame = active.groupby(SHELF, as_index=False)["discount_pct"].max()
        frame["day"] = day
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=[*SHELF, "day", "planned_discount"])
    out = pd.concat(frames, ignore_index=True).rename(columns={"discount_pct": "planned_discount"})
    out["planned_discount"] = out["planned_discount"].astype("float64")
    return out


def _in_stock_mean(history: pd.DataFrame) -> pd.Series:
    observed = history.loc[~censored(history)]
    return observed.groupby(SHELF)["sales_qty"].mean()


def build_rows(panel: pd.DataFrame, promotions: pd.DataFrame, origin: date,
               days: Sequence[date]) -> pd.DataFrame:
    """One row per shelf with history at `origin` and per target day in `days` (all after the
    origin): SHELF, origin, day, item_category, FEATURE_COLUMNS, and the label columns
    `sales_qty` / `censored` (NaN where the panel has no such day yet)."""
    if any(day <= origin for day in days):
        raise ValueError(f"target days must come after the origin {origin}")
    history = known_history(panel, origin)
    if history.empty or not days:
        return pd.DataFrame(columns=[*SHELF, "origin", "day", "item_category", *FEATURE_COLUMNS,
                                     LABEL, "censored"])
    last = history.sort_values("feature_date").groupby(SHELF).last()
    week = history.loc[history["feature_date"] > origin - 7 * DAY]
    per_shelf = pd.DataFrame({
        "item_category": last["item_category"],
        "item_price": last["item_price"].astype("float64"),
        "mean_7d": _in_stock_mean(week),
        "mean_28d": _in_stock_mean(history),
        "censored_share_7d": censored(week).groupby([week[k] for k in SHELF]).mean(),
        "discount_7d": week.assign(d=week["discount"].astype("float64"))
                           .groupby(SHELF)["d"].mean(),
        "history_days": history.groupby(SHELF)["feature_date"].nunique(),
    })
    on_origin = history.loc[history["feature_date"] == origin].set_index(SHELF)["sales_qty"]
    per_shelf["last_day_sales"] = on_origin.astype("float64")
    traffic = history.drop_duplicates(["store_id", "feature_date"])[
        ["store_id", "feature_date", "people_count"]].copy()
    traffic["weekday"] = pd.to_datetime(traffic["feature_date"]).dt.weekday
    people_7d = traffic.loc[traffic["feature_date"] > origin - 7 * DAY].groupby(
        "store_id")["people_count"].mean()
    observed = history.loc[~censored(history)].copy()
    observed["weekday"] = pd.to_datetime(observed["feature_date"]).dt.weekday

    frames = []
    for day in days:
        rows = per_shelf.copy()
        rows["origin"], rows["day"] = origin, day
        rows["horizon"] = (day - origin).days
        rows["day_of_week"], rows["is_weekend"] = day.weekday(), int(day.weekday() >= 5)
        same = observed.loc[observed["weekday"] == day.weekday()]
        rows["mean_same_weekday_28d"] = same.groupby(SHELF)["sales_qty"].mean()
        rows = rows.reset_index()
        rows["people_7d"] = rows["store_id"].map(people_7d).astype("float64")
        same_traffic = traffic.loc[traffic["weekday"] == day.weekday()].groupby(
            "store_id")["people_count"].mean()
        rows["people_same_weekday_28d"] = rows["store_id"].map(same_traffic).astype("float64")
        frames.append(rows)
    rows = pd.concat(frames, ignore_index=True)
    planned = planned_discount(promotions, days)
    rows = rows.merge(planned, on=[*SHELF, "day"], how="left")
    rows["planned_discount"] = rows["planned_discount"].fillna(0.0)
    labels = panel[[*SHELF, "feature_date", "sales_qty"]].rename(columns={"feature_date": "day"})
    labels = labels.assign(censored=censored(panel).to_numpy())
    rows = rows.merge(labels, on=[*SHELF, "day"], how="left")
    for column in FEATURE_COLUMNS:
        rows[column] = rows[column].astype("float64")
    return rows[[*SHELF, "origin", "day", "item_category", *FEATURE_COLUMNS, LABEL, "censored"]]


def training_rows(panel: pd.DataFrame, promotions: pd.DataFrame, until: date, horizon: int,
                  min_history_days: int = 7) -> pd.DataFrame:
    """Labelled rows (censored ones flagged) for every origin whose target days end by `until`
    (the last day known when training): origins from the panel's first day +
    `min_history_days` - 1."""
    if panel.empty:
        return build_rows(panel, promotions, until, [])
    first = min(panel["feature_date"]) + (min_history_days - 1) * DAY
    frames = []
    origin = first
    while origin < until:
        days = [origin + h * DAY for h in range(1, horizon + 1) if origin + h * DAY <= until]
        frames.append(build_rows(panel, promotions, origin, days))
        origin += DAY
    if not frames:
        return build_rows(panel, promotions, until, [])
    rows = pd.concat(frames, ignore_index=True)
    rows = rows.loc[rows["sales_qty"].notna()].reset_index(drop=True)
    rows["censored"] = rows["censored"].astype(bool)
    return rows


def feature_matrix(rows: pd.DataFrame) -> np.ndarray:
    return rows[list(FEATURE_COLUMNS)].to_numpy(dtype="float64")


# Columns a training row must always have a value in (the history means may be missing: a shelf
# that never sold in stock has none, and XGBoost learns a branch for missing values).
REQUIRED_FEATURES = ("horizon", "day_of_week", "is_weekend", "planned_discount", "item_price",
                     "history_days")


def missing_features(rows: pd.DataFrame) -> dict[str, int]:
    """Feature columns absent from `rows` (-1) or NaN where a value is required (the count)."""
    found = {c: -1 for c in FEATURE_COLUMNS if c not in rows.columns}
    for column in REQUIRED_FEATURES:
        if column in rows.columns and rows[column].isna().any():
            found[column] = int(rows[column].isna().sum())
    if LABEL in rows.columns and rows[LABEL].isna().any():
        found[LABEL] = int(rows[LABEL].isna().sum())
    return found
