"""What the pages show, computed from plain frames: shelf states and risk, each zone's worst
state, filters, alert ages and lifecycle, countdowns. No I/O here (see `queries`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

import numpy as np
import pandas as pd

from smart_shelf_platform.contracts import enums
from smart_shelf_platform.rules.replenishment import DEFAULT_MIN_QTY, DEFAULT_THRESHOLD_PCT

# Worst first: a zone takes the worst state of its shelves.
EMPTY, BELOW, NEAR_EXPIRY, FINE = "empty", "below threshold", "near expiry", "fine"
STATES = (EMPTY, BELOW, NEAR_EXPIRY, FINE)
STATE_COLOURS = {EMPTY: "#c0392b", BELOW: "#e67e22", NEAR_EXPIRY: "#8e44ad", FINE: "#27ae60",
                 "no data": "#bdc3c7"}
ALERT_TYPES = enums.ALERT_TYPE.values
ALERT_STATUSES = enums.ALERT_STATUS.values
OPEN_ALERT = ("open", "acknowledged")
IN_FLIGHT = ("pending", "issued")


SCOPE = ("shelf_id", "item_subcategory", "item_category")  # most specific first


def policy_thresholds(shelves: pd.DataFrame, policies: pd.DataFrame) -> pd.DataFrame:
    """`threshold_pct` and `min_qty` of each shelf (store_id, shelf_id, item_category,
    item_subcategory) from the most specific active policy (shelf > subcategory > category >
    store-wide), the platform's defaults where none matches."""
    out = shelves.copy()
    out["threshold_pct"] = DEFAULT_THRESHOLD_PCT
    out["min_qty"] = DEFAULT_MIN_QTY
    active = policies[policies["active"]]
    if active.empty:
        return out
    active = active.assign(specificity=np.select(
        [active[c].notna() for c in SCOPE], [3, 2, 1], 0))
    base = out[["store_id", *SCOPE]].reset_index()
    matches = []
    for level, column in zip((3, 2, 1, 0), (*SCOPE, None)):
        rules = active[active["specificity"] == level]
        if rules.empty:
            continue
        joined = base.merge(rules, on=["store_id", *([column] if column else [])],
                            suffixes=("", "_policy"))
        for other in SCOPE:  # the policy's other scope columns must match where it sets them
            if other != column:
                wanted = joined[f"{other}_policy"]
                joined = joined[wanted.isna() | (wanted == joined[other])]
        matches.append(joined[["index", "specificity", "threshold_pct", "min_qty"]])
    if matches:
        best = (pd.concat(matches).sort_values("specificity")
                .drop_duplicates("index", keep="last").set_index("index"))
        out.loc[best.index, "threshold_pct"] = best["threshold_pct"].astype(float)
        out.loc[best.index, "min_qty"] = best["min_qty"].astype(int)
    return out


def earliest_lots(lots: pd.DataFrame, quantity: str, today: date) -> pd.DataFrame:
    """Per shelf: the earliest expiry among its lots with units, and the days left to it."""
    held = lots[lots[quantity] > 0]
    first = held.groupby(["store_id", "shelf_id"], as_index=False)["expiry_date"].min()
    first["days_left"] = (pd.to_datetime(first["expiry_date"])
                          - pd.Timestamp(today)).dt.days.astype("Int64")
    return first.rename(columns={"expiry_date": "earliest_expiry"})


def shelf_view(state: pd.DataFrame, catalogue: pd.DataFrame, policies: pd.DataFrame,
               lots: pd.DataFrame, today: date, near_days: int) -> pd.DataFrame:
    """One row per shelf in `state` with its category, threshold, earliest lot and state
    (`STATES`), the shelves at risk first (empty, below threshold, near expiry, then by stock %).
    Near expiry: its earliest lot with units expires within `near_days` days (or has expired)."""
    shelves = state[["store_id", "shelf_id", "current_stock", "max_stock", "last_update_ts"]]
    shelves = shelves.merge(
        catalogue[["store_id", "shelf_id", "item_category", "item_subcategory"]],
        on=["store_id", "shelf_id"], how="left")
    shelves = policy_thresholds(shelves, policies)
    shelves = shelves.merge(earliest_lots(lots, "batch_quantity_store", today),
                            on=["store_id", "shelf_id"], how="left")
    maximum = shelves["max_stock"].where(shelves["max_stock"] > 0)
    shelves["stock_pct"] = (100.0 * shelves["current_stock"] / maximum).fillna(0.0).round(1)
    below = ((shelves["stock_pct"] < shelves["threshold_pct"])
             | (shelves["current_stock"] < shelves["min_qty"]))
    near = shelves["days_left"].notna() & (shelves["days_left"].fillna(near_days + 1)
                                           <= near_days)
    shelves["state"] = FINE
    shelves.loc[near, "state"] = NEAR_EXPIRY
    shelves.loc[below, "state"] = BELOW
    shelves.loc[shelves["current_stock"] <= 0, "state"] = EMPTY
    shelves["risk"] = shelves["state"].map({s: i for i, s in enumerate(STATES)})
    return shelves.sort_values(["risk", "stock_pct", "shelf_id"]).reset_index(drop=True)


def zone_states(shelves: pd.DataFrame, categories: Iterable[str]) -> pd.DataFrame:
    """One row per category (in the given order): its worst shelf state ("no data" without
    shelves) and how many shelves are in each state."""
    counts = (shelves.groupby(["item_category", "state"]).size().unstack(fill_value=0)
              .reindex(columns=list(STATES), fill_value=0))
    rows = []
    for category in categories:
        if category in counts.index and counts.loc[category].sum():
            row = counts.loc[category]
            worst = next(s for s in STATES if row[s] > 0)
            rows.append({"item_category": category, "state": worst, "shelves": int(row.sum()),
                         **{s: int(row[s]) for s in STATES}})
        else:
            rows.append({"item_category": category, "state": "no data", "shelves": 0,
                         **{s: 0 for s in STATES}})
    return pd.DataFrame(rows)


def filtered(frame: pd.DataFrame, **chosen: Iterable) -> pd.DataFrame:
    """Rows whose `column` is among the chosen values, for every column given a non-empty
    choice (an empty choice keeps every row, as an unset filter does)."""
    keep = pd.Series(True, index=frame.index)
    for column, values in chosen.items():
        values = list(values or ())
        if values:
            keep &= frame[column].isin(values)
    return frame[keep]


def with_category(frame: pd.DataFrame, catalogue: pd.DataFrame) -> pd.DataFrame:
    """`frame` with each shelf's category and subcategory from the catalogue."""
    return frame.merge(catalogue[["store_id", "shelf_id", "item_category", "item_subcategory"]],
                       on=["store_id", "shelf_id"], how="left")


def minutes_since(moments: pd.Series, now: datetime) -> pd.Series:
    """Simulated minutes from each moment to `now`."""
    return ((pd.Timestamp(now) - pd.to_datetime(moments, utc=True))
            .dt.total_seconds() / 60).round().astype("Int64")


def alerts_view(alerts: pd.DataFrame, catalogue: pd.DataFrame, plans: pd.DataFrame,
                now: datetime) -> pd.DataFrame:
    """Alerts with category, age (minutes since opened, to now while open, to the last step
    once over) and the restock plan that answered each, newest first."""
    view = with_category(alerts, catalogue)
    ended = ~view["status"].isin(OPEN_ALERT)
    until = pd.to_datetime(view["updated_at"], utc=True).where(ended, pd.Timestamp(now))
    view["age_min"] = ((until - pd.to_datetime(view["created_at"], utc=True))
                       .dt.total_seconds() / 60).round().astype("Int64")
    answered = plans.dropna(subset=["alert_id"])[["store_id", "alert_id", "plan_id", "status"]]
    answered = answered.rename(columns={"status": "plan_status"})
    answered["plan_id"] = answered["plan_id"].astype(str)
    answered["alert_id"] = answered["alert_id"].astype(str)
    view["alert_id"] = view["alert_id"].astype(str)
    view = view.merge(answered, on=["store_id", "alert_id"], how="left")
    view["handled_by"] = ("restock plan " + view["plan_id"].str[:8] + " ("
                          + view["plan_status"] + ")").fillna("")
    return view.sort_values("created_at", ascending=False).reset_index(drop=True)


def lots_view(lots: pd.DataFrame, quantity: str, today: date) -> pd.DataFrame:
    """Lots with units, with days left to expiry, the earliest first."""
    held = lots[lots[quantity] > 0].copy()
    held["days_left"] = (pd.to_datetime(held["expiry_date"])
                         - pd.Timestamp(today)).dt.days.astype("Int64")
    return held.sort_values(["days_left", "shelf_id"]).reset_index(drop=True)


def countdown(now: datetime, then: datetime) -> str:
    """'1 d 04:30' of simulated time from `now` to `then`."""
    minutes = max(0, int((then - now).total_seconds() // 60))
    days, rest = divmod(minutes, 1440)
    return f"{days} d {rest // 60:02d}:{rest % 60:02d}"


def latest_backtest(results: pd.DataFrame) -> pd.DataFrame:
    """The rows of the most recent backtest (by `ran_at`), over every shelf (`scope` all)."""
    latest = results.loc[results["ran_at"].idxmax(), "backtest_id"]
    return results[(results["backtest_id"] == latest) & (results["scope"] == "all")]


def backtest_overall(results: pd.DataFrame) -> pd.DataFrame:
    """The latest backtest's metrics over all its cutoffs: one row per method, one column per
    metric."""
    rows = latest_backtest(results)
    rows = rows[rows["cutoff"] == "all"]
    return rows.pivot_table(index="method", columns="metric", values="value").reset_index()


def backtest_by_cutoff(results: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One metric of the latest backtest per cutoff: one row per cutoff, a column per method."""
    rows = latest_backtest(results)
    rows = rows[(rows["cutoff"] != "all") & (rows["metric"] == metric)]
    return rows.pivot_table(index="cutoff", columns="method", values="value").reset_index()


def totals_over_intervals(predictions: pd.DataFrame, daily: pd.DataFrame,
                          name: str) -> pd.DataFrame:
    """`predictions` of one shelf with column `name`: the total of `daily` (columns `day`,
    `value`) over each forecast's protection interval (`interval_start`..`interval_end`), left
    empty until `daily` covers the whole interval."""
    out = predictions.copy()
    days = pd.to_datetime(daily["day"])
    last_day = days.max() if len(days) else pd.NaT
    totals = []
    for start, end in zip(pd.to_datetime(out["interval_start"]),
                          pd.to_datetime(out["interval_end"])):
        covered = pd.notna(last_day) and end <= last_day
        totals.append(daily.loc[(days >= start) & (days <= end), "value"].sum()
                      if covered else None)
    out[name] = pd.array(totals, dtype="Int64")
    return out

