"""Daily shelf features: one row per catalogue shelf and simulated day (contract
`contracts.analytics.SHELF_DAILY_FEATURES`), computed from what the streaming pipeline wrote.

Pure functions from pandas DataFrames to DataFrames: no I/O and no Dagster (`feature_store.py`
reads the Delta tables and Postgres into `FeatureInputs`; the Dagster asset writes the result).
Day D is the simulated UTC window [D 00:00, D+1 00:00); an event belongs to the day of its
`timestamp`, a receipt to the day of its checkout, an alert or plan to the day of `created_at`.

What each feature is (the reference system's feature names; it filled most of them with
constants, here each is computed from the platform's tables):

- item_category, item_subcategory, item_price, shelf_capacity, standard_batch_size: the
  catalogue (`ref.store_inventory_snapshot`); the price is the list price, capacity
  `maximum_stock`.
- day_of_week (0 = Monday), is_weekend (Saturday, Sunday): D's weekday.
- refill_day: a restocker put units of a lot back on the shelf during D.
- discount: `rules.pricing.combined_discount` of the weekly promotion covering D and D's
  near-expiry discount (`analytics/daily_discounts`), rounded like a receipt line;
  is_discounted: discount > 0; is_discounted_next_7d: a weekly promotion or an already published
  daily discount above 0 on one of D+1..D+7.
- people_count: customers who entered the store during D (`raw/foot_traffic` entries).
- sales_qty: units on the shelf's receipt lines during D; sales_last_1d / 7d / 14d: the same over
  the 1 / 7 / 14 days before D (D itself excluded).
- current_stock_shelf: units on the shelf at the end of D (see "Stock at the end of a day");
  shelf_fill_ratio: current_stock_shelf / shelf_capacity, 4 decimals, 0 without capacity.
- stockout_events: out-of-stock episodes during D: each movement that takes the shelf from above
  0 to 0, plus one when D starts with the shelf empty.
- shelf_threshold_qty: the refill line, the least stock at which the shelf's policy (most
  specific active `config.shelf_policies` rule, else the rule defaults) asks for no refill:
  `rules.replenishment.needs_refill` holds exactly below it.
- expired_qty_shelf / expired_qty_wh: units removed by `expired_removal` shelf events /
  `wh_removal` warehouse events during D.
- alerts_last_30d_shelf / _wh: alerts of any type at the store / warehouse for the shelf created
  in the 30 days ending with D (D-29..D).
- is_shelf_alert / is_warehouse_alert: a `refill_request` / `supplier_request` alert of the shelf
  was open at the end of D (created before it, not resolved or dismissed before it).
- warehouse_capacity: `config.shelf_profiles.wh_max_stock` (0: the warehouse does not stock it);
  current_stock_warehouse, warehouse_fill_ratio: as for the shelf, from `cleansed/wh_state` and
  `raw/wh_events`.
- wh_reorder_point_qty: most specific active `config.wh_policies` rule, else
  `rules.replenishment.default_reorder_point(warehouse_capacity)`.
- pending_supplier_qty: suggested units of the supplier plans in flight at the end of D (created
  before it; still pending or issued, or closed only after it).
- moved_wh_to_shelf: units the restocker put on the shelf from the warehouse during D (a pick's
  units that did not fit went back to the warehouse and are not counted).
- min_expiration_days: days from D to the earliest expiry of a shelf lot holding units at the
  end of D (negative: an expired lot not removed yet); avg_expiration_days: days to expiry
  averaged over those units (unit-weighted, 2 decimals); both null with no units on the shelf.
  qty_expiring_next_7d: those units whose lot expires by D+7 (expired ones still there included).
- batches_to_order (the target) and label_next_day_stockout stay null here: the first is known
  when the cutoff D feeds has ordered, the second once D+1's stockout_events are computed.
- computed_at: when the row was computed (wall clock).

Stock at the end of a day. The cleansed tables hold the current state only, so the stock at the
end of D is the current state minus the net movement of every event stamped after D (the same
signed quantities the streaming folds apply: `SHELF_UNIT_SIGN`, `WH_UNIT_SIGN`, `LOT_UNIT_SIGN`
plus receipt lines for lots). For the latest day nothing comes after it, so the value is the
stock as of the computation (exact once the day has ended and its events have been drained). A
key missing from a state table holds 0 units. The stock at the start of D is the end-of-day stock
minus D's net movement; `stockout_events` replays D's movements from it in time order (additions
first among movements of the same instant, so a same-instant refill never reads as an empty
shelf). The states clamp to [0, capacity] and the replay does not; the two differ only where a
state clamped, which shows as a fill ratio outside [0, 1] (a warning check). The state and the
events are two reads: while the queries run, a micro-batch committed between them counts on one
side only, so a day is exact when computed after its events and the later ones have drained.

Policies are the ones in force when the features are computed (config tables keep no history).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from smart_shelf_platform.contracts.analytics import SHELF_DAILY_FEATURES
from smart_shelf_platform.rules.pricing import DISCOUNT_QUANTUM, combined_discount
from smart_shelf_platform.rules.replenishment import (
    PolicyScope, ShelfPolicy, default_reorder_point, most_specific, needs_refill,
)

DAY = timedelta(days=1)
SHELF = ["store_id", "shelf_id"]
LOT = ["store_id", "shelf_id", "batch_code"]
SALES_WINDOWS_DAYS = (1, 7, 14)
ALERT_WINDOW_DAYS = 30
DISCOUNT_LOOKAHEAD_DAYS = 7
EXPIRING_WITHIN_DAYS = 7
RATIO_QUANTUM = Decimal("0.0001")
DAYS_QUANTUM = Decimal("0.01")

# Signed effect of one unit of each event type, as the streaming folds apply them
# (streaming/shelf_aggregator.py, wh_aggregator.py, batch_state_updater.py; a test pins them).
SHELF_UNIT_SIGN = {"pickup": -1, "putback": 1, "expired_removal": -1}
WH_UNIT_SIGN = {"wh_in": 1, "wh_out": -1, "wh_removal": -1}
LOT_UNIT_SIGN = {"putback": 1, "expired_removal": -1}  # restocker and system events name a lot
LOT_ACTORS = ("restocker", "system")

STOCK_ALERT = {"store": "refill_request", "warehouse": "supplier_request"}
OPEN_ALERT_STATUSES = ("open", "acknowledged")
IN_FLIGHT_PLAN_STATUSES = ("pending", "issued")


@dataclass(frozen=True)
class FeatureInputs:
    """The tables the features are computed from, as DataFrames with (at least) these columns.

    Times are UTC timestamps, dates are dates; any frame may be empty, but it has its columns.
    """

    # store_id, shelf_id, item_category, item_subcategory, maximum_stock, item_price,
    # standard_batch_size
    catalogue: pd.DataFrame
    warehouse_capacity: pd.DataFrame  # store_id, shelf_id, wh_max_stock
    foot_traffic: pd.DataFrame  # store_id, event_type, timestamp
    # store_id, timestamp, shelf_id, batch_code, quantity (see explode_receipts)
    receipt_lines: pd.DataFrame
    # event_id, store_id, shelf_id, event_type, actor, batch_code, quantity, timestamp
    shelf_events: pd.DataFrame
    wh_events: pd.DataFrame  # event_id, store_id, shelf_id, event_type, quantity, timestamp
    shelf_state: pd.DataFrame  # store_id, shelf_id, current_stock
    wh_state: pd.DataFrame  # store_id, shelf_id, wh_current_stock
    shelf_lots: pd.DataFrame  # store_id, shelf_id, batch_code, expiry_date, batch_quantity_store
    # store_id, shelf_id, alert_type, location, status, created_at, updated_at
    alerts: pd.DataFrame
    # store_id, shelf_id, suggested_qty, status, created_at, updated_at
    supplier_plans: pd.DataFrame
    daily_discounts: pd.DataFrame  # store_id, shelf_id, discount_date, discount
    # store_id, shelf_id, week_start, week_end, discount_pct
    weekly_discounts: pd.DataFrame
    # store_id, shelf_id, item_category, item_subcategory, threshold_pct, min_qty, target_pct,
    # active
    shelf_policies: pd.DataFrame
    # store_id, shelf_id, item_category, item_subcategory, reorder_point_qty, active
    wh_policies: pd.DataFrame


# ------------------------------------------------------------------------------------------------
# Small helpers
# ------------------------------------------------------------------------------------------------


def day_bounds(day: date) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[start, end) of the simulated day, UTC."""
    start = pd.Timestamp(day, tz="UTC")
    return start, start + DAY


def _utc(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True)


def _dates(values: pd.Series) -> pd.Series:
    """Dates as midnight timestamps (naive), comparable with `pd.Timestamp(day)`."""
    return pd.to_datetime(values)


def shelf_index(catalogue: pd.DataFrame) -> pd.MultiIndex:
    return pd.MultiIndex.from_frame(catalogue[SHELF].sort_values(SHELF))


def _total(frame: pd.DataFrame, column: str, index: pd.MultiIndex,
           keys: list[str] = SHELF) -> pd.Series:
    """`column` summed per key, 0 for keys of `index` without rows."""
    if frame.empty:
        return pd.Series(0, index=index, dtype="int64")
    return frame.groupby(keys)[column].sum().reindex(index, fill_value=0).astype("int64")


def _in_window(frame: pd.DataFrame, column: str, start, end) -> pd.DataFrame:
    times = _utc(frame[column])
    return frame.loc[(times >= start) & (times < end)]


def _ratio(numerator: pd.Series, denominator: pd.Series) -> list[Decimal]:
    """numerator / denominator, 4 decimals; 0 where there is no capacity."""
    return [(Decimal(int(n)) / Decimal(int(d)) if d > 0 else Decimal(0)).quantize(
        RATIO_QUANTUM, ROUND_HALF_UP) for n, d in zip(numerator, denominator)]


# ------------------------------------------------------------------------------------------------
# Movements: signed units per event
# ------------------------------------------------------------------------------------------------


def explode_receipts(receipts: pa.Table) -> pd.DataFrame:
    """Receipts (POS_TRANSACTION rows with their `items`) -> one row per line: store_id,
    timestamp (checkout), shelf_id, batch_code, quantity, discount."""
    items = receipts.column("items")
    flat = pc.list_flatten(items)
    parents = pc.list_parent_indices(items)
    columns = {"store_id": pc.take(receipts.column("store_id"), parents),
               "timestamp": pc.take(receipts.column("timestamp"), parents)}
    for name in ("shelf_id", "batch_code", "quantity", "discount"):
        columns[name] = pc.struct_field(flat, name) if len(flat) else pa.array(
            [], flat.type.field(name).type)
    return pa.table(columns).to_pandas()


def _signed(events: pd.DataFrame, signs: dict[str, int], keys: list[str]) -> pd.DataFrame:
    sign = events["event_type"].map(signs)
    moving = events.loc[sign.notna()]
    units = sign[sign.notna()].astype("int64") * moving["quantity"].fillna(0).astype("int64")
    ids = moving["event_id"] if "event_id" in moving else pd.Series("", index=moving.index)
    return pd.DataFrame({**{k: moving[k] for k in keys}, "timestamp": _utc(moving["timestamp"]),
                         "event_id": ids.astype(str), "units": units}).reset_index(drop=True)


def shelf_movements(shelf_events: pd.DataFrame) -> pd.DataFrame:
    """Shelf events that move units (weight changes do not): store_id, shelf_id, timestamp,
    event_id, signed units."""
    return _signed(shelf_events, SHELF_UNIT_SIGN, SHELF)


def wh_movements(wh_events: pd.DataFrame) -> pd.DataFrame:
    return _signed(wh_events, WH_UNIT_SIGN, SHELF)


def lot_movements(shelf_events: pd.DataFrame, receipt_lines: pd.DataFrame) -> pd.DataFrame:
    """Movements of named shelf lots: paid receipt lines take units, restockers' refills add
    them, expired-lot removals take them (as the batch state updater folds them)."""
    named = shelf_events.loc[shelf_events["actor"].isin(LOT_ACTORS)
                             & shelf_events["batch_code"].notna()]
    refills = _signed(named, LOT_UNIT_SIGN, LOT)
    sold = receipt_lines.loc[receipt_lines["batch_code"].notna()]
    sales = pd.DataFrame({**{k: sold[k] for k in LOT}, "timestamp": _utc(sold["timestamp"]),
                          "event_id": "", "units": -sold["quantity"].astype("int64")})
    return pd.concat([refills, sales.reset_index(drop=True)], ignore_index=True)


# ------------------------------------------------------------------------------------------------
# Stock at the end of a day, stock-outs
# ------------------------------------------------------------------------------------------------


def stock_at_end_of_day(current: pd.Series, movements: pd.DataFrame, day: date,
                        keys: list[str] = SHELF) -> pd.Series:
    """Current quantity per key minus the net movement stamped after `day`. `current` is
    indexed by `keys`; keys that only moved later held 0 units now."""
    _, end = day_bounds(day)
    later = movements.loc[movements["timestamp"] >= end]
    if later.empty:
        return current.astype("int64")
    return current.sub(later.groupby(keys)["units"].sum(), fill_value=0).astype("int64")


def stock_at_start_of_day(end_of_day: pd.Series, movements: pd.DataFrame, day: date,
                          keys: list[str] = SHELF) -> pd.Series:
    start, end = day_bounds(day)
    during = movements.loc[(movements["timestamp"] >= start) & (movements["timestamp"] < end)]
    if during.empty:
        return end_of_day.astype("int64")
    return end_of_day.sub(during.groupby(keys)["units"].sum(), fill_value=0).astype("int64")


def stockout_events(start_stock: pd.Series, movements: pd.DataFrame, day: date) -> pd.Series:
    """Out-of-stock episodes per shelf during `day`: movements that take the shelf from above 0
    to 0 or below, plus one for a shelf that starts the day empty. `start_stock` is indexed by
    (store_id, shelf_id) and holds every shelf to report."""
    start, end = day_bounds(day)
    during = movements.loc[(movements["timestamp"] >= start) & (movements["timestamp"] < end)]
    episodes = (start_stock <= 0).astype("int64")
    if during.empty:
        return episodes
    # Additions first among same-instant movements; the event id only makes the order total.
    ordered = during.sort_values([*SHELF, "timestamp", "units", "event_id"],
                                 ascending=[True, True, True, False, True])
    opening = start_stock.reindex(pd.MultiIndex.from_frame(ordered[SHELF])).fillna(0).to_numpy()
    after = opening + ordered.groupby(SHELF)["units"].cumsum().to_numpy()
    before = after - ordered["units"].to_numpy()
    emptied = ordered.assign(hit=((before > 0) & (after <= 0)).astype("int64"))
    return episodes.add(emptied.groupby(SHELF)["hit"].sum(), fill_value=0).astype("int64")


# ------------------------------------------------------------------------------------------------
# Feature groups, each a DataFrame indexed by (store_id, shelf_id)
# ------------------------------------------------------------------------------------------------


def calendar_features(day: date) -> dict[str, object]:
    return {"day_of_week": day.weekday(), "is_weekend": day.weekday() >= 5}


def people_count(foot_traffic: pd.DataFrame, day: date, index: pd.MultiIndex) -> pd.Series:
    """Store entries during `day`, repeated on every shelf of the store."""
    entries = _in_window(foot_traffic.loc[foot_traffic["event_type"] == "entry"], "timestamp",
                         *day_bounds(day))
    per_store = entries.groupby("store_id").size()
    stores = index.get_level_values("store_id")
    return pd.Series(per_store.reindex(stores, fill_value=0).to_numpy(), index=index,
                     dtype="int64")


def sales_features(receipt_lines: pd.DataFrame, day: date,
                   index: pd.MultiIndex) -> pd.DataFrame:
    """sales_qty (during `day`) and sales_last_{1,7,14}d (the days before it)."""
    start, end = day_bounds(day)
    columns = {"sales_qty": _total(_in_window(receipt_lines, "timestamp", start, end),
                                   "quantity", index)}
    for days in SALES_WINDOWS_DAYS:
        before = _in_window(receipt_lines, "timestamp", start - days * DAY, start)
        columns[f"sales_last_{days}d"] = _total(before, "quantity", index)
    return pd.DataFrame(columns, index=index)


def daily_movement_features(shelf_events: pd.DataFrame, wh_events: pd.DataFrame, day: date,
                            index: pd.MultiIndex) -> pd.DataFrame:
    """refill_day, expired_qty_shelf, moved_wh_to_shelf, expired_qty_wh of `day`."""
    start, end = day_bounds(day)
    shelf = _in_window(shelf_events, "timestamp", start, end)
    wh = _in_window(wh_events, "timestamp", start, end)
    refills = shelf.loc[(shelf["actor"] == "restocker") & (shelf["event_type"] == "putback")]
    return pd.DataFrame({
        "refill_day": _total(refills, "quantity", index) > 0,
        "expired_qty_shelf": _total(shelf.loc[shelf["event_type"] == "expired_removal"],
                                    "quantity", index),
        # What reached the shelf: a pick's units that did not fit went back (a refill_return).
        "moved_wh_to_shelf": _total(refills, "quantity", index),
        "expired_qty_wh": _total(wh.loc[wh["event_type"] == "wh_removal"], "quantity", index),
    }, index=index)


def expiry_features(lots: pd.DataFrame, day: date, index: pd.MultiIndex) -> pd.DataFrame:
    """From lots (store_id, shelf_id, batch_code, expiry_date, units) at the end of `day`."""
    on_hand = lots.loc[lots["units"] > 0]
    days = (_dates(on_hand["expiry_date"]) - pd.Timestamp(day)).dt.days.astype("int64")
    on_hand = on_hand.assign(days=days, unit_days=days * on_hand["units"])
    grouped = on_hand.groupby(SHELF)
    earliest = grouped["days"].min().reindex(index)
    units, unit_days = (grouped[c].sum().reindex(index) for c in ("units", "unit_days"))
    average = [None if pd.isna(u) else (Decimal(int(d)) / Decimal(int(u))).quantize(
        DAYS_QUANTUM, ROUND_HALF_UP) for u, d in zip(units, unit_days)]
    expiring = on_hand.loc[on_hand["days"] <= EXPIRING_WITHIN_DAYS]
    return pd.DataFrame({
        "min_expiration_days": earliest.astype("Int64"),
        "avg_expiration_days": pd.Series(average, index=index, dtype="object"),
        "qty_expiring_next_7d": _total(expiring, "units", index),
    }, index=index)


def alert_features(alerts: pd.DataFrame, day: date, index: pd.MultiIndex) -> pd.DataFrame:
    """alerts_last_30d_{shelf,wh} and is_{shelf,warehouse}_alert (see the module docstring)."""
    start, end = day_bounds(day)
    created, updated = _utc(alerts["created_at"]), _utc(alerts["updated_at"])
    recent = (created >= start - (ALERT_WINDOW_DAYS - 1) * DAY) & (created < end)
    open_at_end = (created < end) & (alerts["status"].isin(OPEN_ALERT_STATUSES) | (updated >= end))
    columns = {}
    for location, count_name, flag_name in (("store", "alerts_last_30d_shelf", "is_shelf_alert"),
                                            ("warehouse", "alerts_last_30d_wh",
                                             "is_warehouse_alert")):
        here = alerts["location"] == location
        columns[count_name] = _total(alerts.loc[here & recent].assign(n=1), "n", index)
        stock_alert = here & (alerts["alert_type"] == STOCK_ALERT[location]) & open_at_end
        columns[flag_name] = _total(alerts.loc[stock_alert].assign(n=1), "n", index) > 0
    return pd.DataFrame(columns, index=index)


def pending_supplier_qty(plans: pd.DataFrame, day: date, index: pd.MultiIndex) -> pd.Series:
    """Suggested units of supplier plans in flight at the end of `day`."""
    _, end = day_bounds(day)
    in_flight = (_utc(plans["created_at"]) < end) & (
        plans["status"].isin(IN_FLIGHT_PLAN_STATUSES) | (_utc(plans["updated_at"]) >= end))
    return _total(plans.loc[in_flight], "suggested_qty", index)


def discount_features(weekly: pd.DataFrame, daily: pd.DataFrame, day: date,
                      index: pd.MultiIndex) -> pd.DataFrame:
    """discount, is_discounted, is_discounted_next_7d."""
    today = pd.Timestamp(day)
    week_start, week_end = _dates(weekly["week_start"]), _dates(weekly["week_end"])
    discount_date = _dates(daily["discount_date"])

    def largest(frame: pd.DataFrame, column: str) -> pd.Series:
        if frame.empty:
            return pd.Series(0.0, index=index)
        return frame.groupby(SHELF)[column].max().astype(float).reindex(index, fill_value=0.0)

    weekly_today = largest(weekly.loc[(week_start <= today) & (week_end >= today)],
                           "discount_pct")
    daily_today = largest(daily.loc[discount_date == today], "discount")
    discount = [Decimal(str(combined_discount(w, d))).quantize(DISCOUNT_QUANTUM, ROUND_HALF_UP)
                for w, d in zip(weekly_today, daily_today)]
    first, last = today + DAY, today + DISCOUNT_LOOKAHEAD_DAYS * DAY
    weekly_ahead = weekly.loc[(week_start <= last) & (week_end >= first)
                              & (weekly["discount_pct"].astype(float) > 0)]
    daily_ahead = daily.loc[(discount_date >= first) & (discount_date <= last)
                            & (daily["discount"].astype(float) > 0)]
    ahead = (_total(weekly_ahead.assign(n=1), "n", index)
             + _total(daily_ahead.assign(n=1), "n", index)) > 0
    discount_series = pd.Series(discount, index=index, dtype="object")
    return pd.DataFrame({"discount": discount_series, "is_discounted": discount_series > 0,
                         "is_discounted_next_7d": ahead}, index=index)


class PolicyLookup:
    """The most specific active policy of a shelf (`rules.replenishment.most_specific`), with
    the candidates indexed by store and scope so a store with a policy per shelf stays fast."""

    def __init__(self, policies: pd.DataFrame, value: Callable[[dict], object]):
        self._candidates: dict[tuple, list[tuple[PolicyScope, object]]] = {}
        active = policies.loc[policies["active"].astype(bool)]
        for row in active.to_dict("records"):
            scope = PolicyScope(*(None if pd.isna(row[c]) else row[c]
                                  for c in ("shelf_id", "item_category", "item_subcategory")))
            # Indexed under its most specific scope column: a shelf looks up each level once.
            level = next(((name, getattr(scope, name)) for name in
                          ("shelf_id", "item_subcategory", "item_category")
                          if getattr(scope, name) is not None), ("store", None))
            self._candidates.setdefault((row["store_id"], *level), []).append((scope, value(row)))

    def __call__(self, store_id: str, shelf_id: str, category: str, subcategory: str):
        candidates = [c for level in (("shelf_id", shelf_id), ("item_subcategory", subcategory),
                                      ("item_category", category), ("store", None))
                      for c in self._candidates.get((store_id, *level), [])]
        return most_specific(candidates, shelf_id, category, subcategory)


def refill_line(capacity: int, policy: ShelfPolicy) -> int:
    """The least stock at which `policy` asks for no refill (capacity if none is high enough):
    `needs_refill` holds exactly below it, since it only turns false as stock grows."""
    stocks = range(capacity + 1)
    line = bisect.bisect_left(stocks, True, key=lambda s: not needs_refill(s, capacity, policy))
    return min(line, capacity)


def policy_features(catalogue: pd.DataFrame, warehouse_capacity: pd.Series,
                    shelf_policies: pd.DataFrame, wh_policies: pd.DataFrame,
                    index: pd.MultiIndex) -> pd.DataFrame:
    """shelf_threshold_qty and wh_reorder_point_qty."""
    shelf_policy = PolicyLookup(shelf_policies, lambda p: ShelfPolicy(
        float(p["threshold_pct"]), int(p["min_qty"]), float(p["target_pct"])))
    reorder_point = PolicyLookup(wh_policies, lambda p: int(p["reorder_point_qty"]))
    rows = catalogue.set_index(SHELF).reindex(index)
    thresholds, reorder_points = [], []
    for (store_id, shelf_id), row, wh_capacity in zip(index, rows.to_dict("records"),
                                                      warehouse_capacity.reindex(index)):
        scope = (store_id, shelf_id, row["item_category"], row["item_subcategory"])
        policy = shelf_policy(*scope) or ShelfPolicy()
        thresholds.append(refill_line(int(row["maximum_stock"]), policy))
        point = reorder_point(*scope)
        reorder_points.append(default_reorder_point(int(wh_capacity)) if point is None else point)
    return pd.DataFrame({"shelf_threshold_qty": thresholds,
                         "wh_reorder_point_qty": reorder_points}, index=index, dtype="int64")


# ------------------------------------------------------------------------------------------------
# The feature row
# ------------------------------------------------------------------------------------------------


def _state(frame: pd.DataFrame, keys: list[str], column: str) -> pd.Series:
    if frame.empty:
        return pd.Series([], index=pd.MultiIndex.from_arrays([[]] * len(keys), names=keys),
                         dtype="int64")
    return frame.set_index(keys)[column].astype("int64")


def compute_features(inputs: FeatureInputs, day: date, computed_at: datetime) -> pd.DataFrame:
    """One row per catalogue shelf for `day`, with the contract's columns in its order."""
    index = shelf_index(inputs.catalogue)
    catalogue = inputs.catalogue.set_index(SHELF).reindex(index)
    wh_capacity = _state(inputs.warehouse_capacity, SHELF, "wh_max_stock").reindex(
        index, fill_value=0)

    shelf_moves = shelf_movements(inputs.shelf_events)
    shelf_end = stock_at_end_of_day(_state(inputs.shelf_state, SHELF, "current_stock"),
                                    shelf_moves, day).reindex(index, fill_value=0)
    shelf_start = stock_at_start_of_day(shelf_end, shelf_moves, day).reindex(index, fill_value=0)
    wh_end = stock_at_end_of_day(_state(inputs.wh_state, SHELF, "wh_current_stock"),
                                 wh_movements(inputs.wh_events), day).reindex(index, fill_value=0)
    lot_units = stock_at_end_of_day(
        _state(inputs.shelf_lots, LOT, "batch_quantity_store"),
        lot_movements(inputs.shelf_events, inputs.receipt_lines), day, LOT)
    lots = inputs.shelf_lots.set_index(LOT)[["expiry_date"]].join(
        lot_units.rename("units"), how="inner").reset_index()

    frame = pd.DataFrame(index=index)
    frame["feature_date"] = day
    frame["item_category"] = catalogue["item_category"]
    frame["item_subcategory"] = catalogue["item_subcategory"]
    for name, value in calendar_features(day).items():
        frame[name] = value
    frame["item_price"] = [Decimal(str(p)).quantize(Decimal("0.01"))
                           for p in catalogue["item_price"]]
    frame["people_count"] = people_count(inputs.foot_traffic, day, index)
    frame["stockout_events"] = stockout_events(shelf_start, shelf_moves, day)
    frame["shelf_capacity"] = catalogue["maximum_stock"].astype("int64")
    frame["current_stock_shelf"] = shelf_end
    frame["shelf_fill_ratio"] = _ratio(shelf_end, frame["shelf_capacity"])
    frame["warehouse_capacity"] = wh_capacity.astype("int64")
    frame["current_stock_warehouse"] = wh_end
    frame["warehouse_fill_ratio"] = _ratio(wh_end, wh_capacity)
    frame["pending_supplier_qty"] = pending_supplier_qty(inputs.supplier_plans, day, index)
    frame["standard_batch_size"] = catalogue["standard_batch_size"].astype("int64")
    frame["batches_to_order"] = pd.Series(pd.NA, index=index, dtype="Int64")
    frame["label_next_day_stockout"] = pd.Series(pd.NA, index=index, dtype="boolean")
    frame["computed_at"] = pd.Timestamp(computed_at).tz_convert("UTC")
    frame = frame.join([
        discount_features(inputs.weekly_discounts, inputs.daily_discounts, day, index),
        sales_features(inputs.receipt_lines, day, index),
        daily_movement_features(inputs.shelf_events, inputs.wh_events, day, index),
        alert_features(inputs.alerts, day, index),
        expiry_features(lots, day, index),
        policy_features(inputs.catalogue, wh_capacity, inputs.shelf_policies,
                        inputs.wh_policies, index),
    ])
    return frame.reset_index()[SHELF_DAILY_FEATURES.field_names]


def to_arrow(features: pd.DataFrame) -> pa.Table:
    """The feature frame with the contract's Arrow schema (the Delta table's)."""
    table = pa.Table.from_pandas(features[SHELF_DAILY_FEATURES.field_names],
                                 schema=SHELF_DAILY_FEATURES.arrow_schema(), preserve_index=False)
    return table.replace_schema_metadata(None)
