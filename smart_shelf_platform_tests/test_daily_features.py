"""Daily shelf features: each definition on tiny hand-made frames, the checks' rules, then the
Dagster assets and checks in-process on crafted Delta tables, and finally on a real pipeline run
(simulator -> Redis -> bridge -> Kafka -> every streaming query -> Delta) for the simulated day,
against values recomputed here straight from the raw tables and the simulator's ledger."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import dagster as dg
import pandas as pd
import psycopg
import pyarrow as pa
import pytest
from deltalake import write_deltalake
from psycopg import sql
from psycopg.rows import dict_row

from smart_shelf_platform import quality
from smart_shelf_platform.contracts.catalogue import DELTA_TABLES_BY_PATH
from smart_shelf_platform.contracts.analytics import SHELF_DAILY_FEATURES
from smart_shelf_platform.contracts.events import POS_TRANSACTION
from smart_shelf_platform.defs import lineage
from smart_shelf_platform.defs.analytics.assets import FEATURES_DELTA_KEY, FEATURES_POSTGRES_KEY
from smart_shelf_platform.defs.quality import checks
from smart_shelf_platform.defs.resources import SmartShelfResource
from smart_shelf_platform.ml import feature_store, features
from smart_shelf_platform.ml.features import FeatureInputs
from smart_shelf_platform.rules.replenishment import ShelfPolicy, needs_refill
from smart_shelf_platform.stack.delta_tables import ensure_delta_tables, table_uri

D = date(2026, 1, 1)  # a Thursday
UTC = timezone.utc
SH1, SH2 = ("S001", "SH1"), ("S001", "SH2")


def at(day_offset: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 1, 1, hour, minute, tzinfo=UTC) + timedelta(days=day_offset)


def frame(columns: str, *rows: tuple) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=columns.split())


def index(*shelves: tuple[str, str]) -> pd.MultiIndex:
    return pd.MultiIndex.from_tuples(shelves, names=features.SHELF)


def values(series: pd.Series) -> dict:
    return {key: (None if pd.isna(v) else v) for key, v in series.items()}


SHELF_EVENTS = "event_id store_id shelf_id event_type actor batch_code quantity timestamp"
WH_EVENTS = "event_id store_id shelf_id event_type quantity timestamp"
LINES = "store_id timestamp shelf_id batch_code quantity"
ALERTS = "store_id shelf_id alert_type location status created_at updated_at"
PLANS = "store_id shelf_id suggested_qty status created_at updated_at"
LOTS = "store_id shelf_id batch_code expiry_date batch_quantity_store"


def shelf_event(event_id: str, shelf: str, event_type: str, quantity: int | None, when: datetime,
                actor: str = "customer", batch: str | None = None) -> tuple:
    return (event_id, "S001", shelf, event_type, actor, batch, quantity, when)


# ------------------------------------------------------------------------------------------------
# Each feature's definition
# ------------------------------------------------------------------------------------------------


def test_calendar():
    assert features.calendar_features(D) == {"day_of_week": 3, "is_weekend": False}
    assert features.calendar_features(date(2026, 1, 4)) == {"day_of_week": 6, "is_weekend": True}


def test_people_count_is_the_store_entries_of_the_day_on_every_shelf():
    traffic = frame("store_id event_type timestamp",
                    ("S001", "entry", at(0, 0)), ("S001", "entry", at(0, 23, 59)),
                    ("S001", "exit", at(0, 9)), ("S001", "entry", at(-1, 23, 59)),
                    ("S001", "entry", at(1, 0)), ("S002", "entry", at(0, 12)))
    counts = features.people_count(traffic, D, index(SH1, SH2, ("S002", "SH1"), ("S003", "SH1")))
    assert counts.tolist() == [2, 2, 1, 0]


def test_sales_of_the_day_and_of_the_days_before_it():
    lines = frame(LINES,
                  ("S001", at(0, 10), "SH1", "B1", 2), ("S001", at(0, 23, 59), "SH1", "B2", 1),
                  ("S001", at(-1, 12), "SH1", "B1", 4),   # yesterday: 1d, 7d, 14d
                  ("S001", at(-7, 0), "SH1", "B1", 8),    # 7 days before: 7d, 14d
                  ("S001", at(-8, 0), "SH1", "B1", 16),   # 8 days before: 14d only
                  ("S001", at(-15, 0), "SH1", "B1", 32),  # too old
                  ("S001", at(1, 0), "SH1", "B1", 64),    # tomorrow
                  ("S001", at(0, 11), "SH2", None, 3))
    sales = features.sales_features(lines, D, index(SH1, SH2, ("S001", "SH3")))
    assert sales.loc[SH1].to_dict() == {"sales_qty": 3, "sales_last_1d": 4, "sales_last_7d": 12,
                                        "sales_last_14d": 28}
    assert sales.loc[SH2, "sales_qty"] == 3 and sales.loc[("S001", "SH3")].sum() == 0


def test_stock_at_the_end_of_a_past_day_is_the_state_minus_what_moved_after_it():
    events = frame(SHELF_EVENTS,
                   shelf_event("a", "SH1", "pickup", 2, at(0, 9)),
                   shelf_event("b", "SH1", "putback", 1, at(0, 10)),
                   shelf_event("c", "SH1", "weight_change", None, at(0, 10)),
                   shelf_event("d", "SH1", "pickup", 3, at(1, 8)),        # after the day
                   shelf_event("e", "SH1", "expired_removal", 1, at(2, 6), "system", "B1"),
                   shelf_event("f", "SH2", "putback", 5, at(1, 9), "restocker", "B9"))
    moves = features.shelf_movements(events)
    assert moves["units"].tolist() == [-2, 1, -3, -1, 5]  # weight changes move nothing
    current = pd.Series([4, 0], index=index(SH1, ("S001", "SH3")))
    end = features.stock_at_end_of_day(current, moves, D)
    # SH1: 4 now + 3 + 1 taken later; SH2 had no state row: 0 now, 5 arrived later.
    assert values(end) == {SH1: 8, ("S001", "SH3"): 0, SH2: -5}
    assert features.stock_at_start_of_day(end, moves, D)[SH1] == 9
    # For the latest day nothing came after it: the stock is the state as of now.
    assert features.stock_at_end_of_day(current, moves, D + timedelta(days=2)).tolist() == [4, 0]


def test_stockouts_count_each_time_the_shelf_empties_and_a_day_that_starts_empty():
    events = frame(SHELF_EVENTS,
                   shelf_event("a", "SH1", "pickup", 2, at(0, 8)),    # 2 -> 0: one
                   shelf_event("b", "SH1", "putback", 1, at(0, 9)),   # 0 -> 1
                   shelf_event("c", "SH1", "pickup", 1, at(0, 10)),   # 1 -> 0: two
                   shelf_event("d", "SH1", "pickup", 0, at(0, 10, 5)),  # still 0: not again
                   # Same instant: the refill counts first, so the shelf never reads empty.
                   shelf_event("e", "SH1", "pickup", 1, at(0, 11)),
                   shelf_event("f", "SH1", "putback", 3, at(0, 11), "restocker", "B1"),
                   shelf_event("g", "SH1", "pickup", 2, at(1, 1)),    # the next day: ignored
                   shelf_event("h", "SH2", "putback", 4, at(0, 12), "restocker", "B2"),
                   shelf_event("i", "SH3", "pickup", 5, at(0, 13)))   # 5 -> 0: one
    start = pd.Series([2, 0, 5, 3, 0], index=index(SH1, SH2, ("S001", "SH3"), ("S001", "SH4"),
                                                   ("S001", "SH5")))
    counts = features.stockout_events(start, features.shelf_movements(events), D)
    # SH2 starts empty (one episode) and is refilled; SH4 never empties; SH5 stays empty (one).
    assert values(counts) == {SH1: 2, SH2: 1, ("S001", "SH3"): 1, ("S001", "SH4"): 0,
                              ("S001", "SH5"): 1}


def test_expiry_features_come_from_the_lots_on_the_shelf_at_the_end_of_the_day():
    lots = frame(LOTS, ("S001", "SH1", "B1", date(2026, 1, 3), 2),
                 ("S001", "SH1", "B2", date(2026, 1, 11), 4),
                 ("S001", "SH1", "B3", date(2025, 12, 31), 0),   # empty: ignored
                 ("S001", "SH2", "B4", date(2025, 12, 31), 1),   # expired, not yet removed
                 ("S001", "SH3", "B5", date(2026, 1, 20), 0))
    # Later: 2 units of B1 sold tomorrow (so 4 at the end of D), B2 refilled tomorrow (+3).
    moves = features.lot_movements(
        frame(SHELF_EVENTS, shelf_event("r", "SH1", "putback", 3, at(1, 7), "restocker", "B2"),
              shelf_event("p", "SH1", "pickup", 2, at(1, 8))),  # customers name no lot
        frame(LINES, ("S001", at(1, 9), "SH1", "B1", 2), ("S001", at(1, 9), "SH2", None, 1)))
    assert sorted(moves["units"].tolist()) == [-2, 3]
    end = features.stock_at_end_of_day(lots.set_index(features.LOT)["batch_quantity_store"],
                                       moves, D, features.LOT)
    at_end = lots.assign(units=end.reindex(pd.MultiIndex.from_frame(lots[features.LOT])).values)
    assert at_end["units"].tolist() == [4, 1, 0, 1, 0]
    expiry = features.expiry_features(at_end, D, index(SH1, SH2, ("S001", "SH3")))
    # SH1: 4 units in 2 days, 1 unit in 10 days -> earliest 2, mean (8 + 10) / 5 = 3.6 days.
    assert expiry.loc[SH1].tolist() == [2, Decimal("3.60"), 4]
    assert expiry.loc[SH2].tolist() == [-1, Decimal("-1.00"), 1]
    assert values(expiry.loc[("S001", "SH3")]) == {"min_expiration_days": None,
                                                    "avg_expiration_days": None,
                                                    "qty_expiring_next_7d": 0}


def test_alerts_in_the_last_30_days_and_stock_alerts_open_at_the_end_of_the_day():
    alerts = frame(ALERTS,
                   ("S001", "SH1", "refill_request", "store", "resolved", at(-29, 0), at(-29, 5)),
                   ("S001", "SH1", "refill_request", "store", "resolved", at(-30, 0), at(-30, 5)),
                   # open at the end of D: resolved only the next morning
                   ("S001", "SH1", "refill_request", "store", "resolved", at(0, 20), at(1, 7)),
                   ("S001", "SH1", "near_expiry", "store", "open", at(0, 6), at(0, 6)),
                   ("S001", "SH1", "refill_request", "store", "open", at(1, 3), at(1, 3)),
                   ("S001", "SH2", "refill_request", "store", "resolved", at(0, 8), at(0, 9)),
                   ("S001", "SH2", "supplier_request", "warehouse", "acknowledged", at(-40, 0),
                    at(-40, 1)),
                   ("S001", "SH2", "near_expiry", "warehouse", "open", at(-3, 0), at(-3, 0)))
    result = features.alert_features(alerts, D, index(SH1, SH2))
    assert result.loc[SH1].tolist() == [3, True, 0, False]
    # SH2's refill alert closed during D; its old supplier request is still being handled.
    assert result.loc[SH2].tolist() == [1, False, 1, True]
    assert list(result.columns) == ["alerts_last_30d_shelf", "is_shelf_alert",
                                    "alerts_last_30d_wh", "is_warehouse_alert"]


def test_pending_supplier_qty_counts_plans_in_flight_at_the_end_of_the_day():
    plans = frame(PLANS, ("S001", "SH1", 24, "pending", at(0, 10), at(0, 10)),
                  ("S001", "SH1", 12, "completed", at(-2, 0), at(1, 6)),  # delivered after D
                  ("S001", "SH1", 48, "completed", at(-2, 0), at(0, 6)),  # delivered during D
                  ("S001", "SH1", 6, "issued", at(1, 12), at(1, 12)),     # planned after D
                  ("S001", "SH2", 10, "canceled", at(-1, 0), at(0, 1)))
    assert features.pending_supplier_qty(plans, D, index(SH1, SH2)).tolist() == [36, 0]


def test_discount_combines_the_weekly_promotion_with_the_daily_discount():
    weekly = frame("store_id shelf_id week_start week_end discount_pct",
                   ("S001", "SH1", date(2025, 12, 29), date(2026, 1, 4), Decimal("0.2000")),
                   ("S001", "SH2", date(2026, 1, 5), date(2026, 1, 11), Decimal("0.1000")),
                   ("S001", "SH3", date(2026, 1, 12), date(2026, 1, 18), Decimal("0.1000")))
    daily = frame("store_id shelf_id discount_date discount",
                  ("S001", "SH1", D, Decimal("0.5000")),
                  ("S001", "SH4", date(2026, 1, 8), Decimal("0.3000")),
                  ("S001", "SH5", date(2026, 1, 9), Decimal("0.3000")))
    shelves = index(SH1, SH2, *(("S001", f"SH{n}") for n in (3, 4, 5)))
    result = features.discount_features(weekly, daily, D, shelves)
    # 20 % then 50 % off is 60 % off (rules.pricing.combined_discount).
    assert result["discount"].tolist() == [Decimal("0.6000")] + [Decimal("0.0000")] * 4
    assert result["is_discounted"].tolist() == [True, False, False, False, False]
    # Within D+1..D+7: SH1's week goes on, SH2's starts on D+4, SH4's daily discount on D+7.
    assert result["is_discounted_next_7d"].tolist() == [True, True, False, True, False]


def test_movements_of_the_day():
    shelf = frame(SHELF_EVENTS,
                  shelf_event("a", "SH1", "putback", 4, at(0, 8), "restocker", "B1"),
                  shelf_event("b", "SH1", "expired_removal", 2, at(0, 6), "system", "B0"),
                  shelf_event("c", "SH2", "putback", 1, at(0, 8)),           # a customer
                  shelf_event("d", "SH2", "putback", 5, at(1, 8), "restocker", "B2"))
    wh = frame(WH_EVENTS, ("w1", "S001", "SH1", "wh_out", 6, at(0, 7, 57)),
               ("w2", "S001", "SH1", "wh_in", 48, at(0, 7)),
               ("w3", "S001", "SH2", "wh_removal", 3, at(0, 6)),
               ("w4", "S001", "SH2", "wh_out", 5, at(1, 7)),
               ("w5", "S001", "SH1", "wh_in", 2, at(0, 8)))  # the 2 that did not fit, back
    # SH1: 6 picked, 4 put up (the shelf had room for 4), 2 returned.
    result = features.daily_movement_features(shelf, wh, D, index(SH1, SH2))
    assert result.loc[SH1].tolist() == [True, 2, 4, 0]
    assert result.loc[SH2].tolist() == [False, 0, 0, 3]
    assert list(result.columns) == ["refill_day", "expired_qty_shelf", "moved_wh_to_shelf",
                                    "expired_qty_wh"]


def test_the_refill_line_is_where_the_shelf_rule_stops_asking_for_a_refill():
    for capacity in (0, 1, 7, 10, 33, 120):
        for policy in (ShelfPolicy(), ShelfPolicy(25.0, 3, 80.0), ShelfPolicy(0.0, 0, 50.0),
                       ShelfPolicy(100.0, 1, 100.0)):
            line = features.refill_line(capacity, policy)
            assert all(needs_refill(s, capacity, policy) for s in range(line))
            assert line == capacity or not needs_refill(line, capacity, policy)
    assert features.refill_line(10, ShelfPolicy(30.0, 1, 80.0)) == 3
    assert features.refill_line(10, ShelfPolicy(30.0, 5, 80.0)) == 5


def test_policies_most_specific_active_scope_else_the_defaults():
    catalogue = frame("store_id shelf_id item_category item_subcategory maximum_stock",
                      ("S001", "SH1", "Dairy", "Milk", 10), ("S001", "SH2", "Dairy", "Butter", 20),
                      ("S001", "SH3", "Bakery", "Bread", 40), ("S002", "SH1", "Dairy", "Milk", 10))
    scope = "store_id shelf_id item_category item_subcategory"
    shelf_policies = frame(f"{scope} threshold_pct min_qty target_pct active",
                           ("S001", None, None, None, Decimal("10"), 1, Decimal("80"), True),
                           ("S001", None, "Dairy", None, Decimal("50"), 1, Decimal("80"), True),
                           ("S001", "SH1", None, None, Decimal("20"), 1, Decimal("80"), True),
                           ("S001", "SH1", None, None, Decimal("90"), 1, Decimal("80"), False))
    wh_policies = frame(f"{scope} reorder_point_qty active",
                        ("S001", "SH1", None, None, 7, True),
                        ("S001", None, None, "Butter", 9, True))
    shelves = index(SH1, SH2, ("S001", "SH3"), ("S002", "SH1"))
    capacity = pd.Series([100, 0, 60, 40], index=shelves)
    result = features.policy_features(catalogue, capacity, shelf_policies, wh_policies, shelves)
    # SH1: its own rule (20 % of 10); SH2: Dairy (50 % of 20); SH3: store-wide (10 % of 40);
    # S002 has no rule: the defaults (30 % of 10). Warehouse: shelf, subcategory, else 5 %.
    assert result["shelf_threshold_qty"].tolist() == [2, 10, 4, 3]
    assert result["wh_reorder_point_qty"].tolist() == [7, 9, 3, 2]


def test_explode_receipts_gives_one_row_per_line():
    line = {"line_no": 1, "shelf_id": "SH1", "batch_code": "B1", "expiry_date": D,
            "quantity": 2, "unit_price": Decimal("1.00"), "discount": Decimal("0.1000"),
            "total_price": Decimal("1.80")}
    receipts = pa.Table.from_pylist([
        {"event_id": "e1", "store_id": "S001", "transaction_id": "t1", "customer_id": "c1",
         "timestamp": at(0, 9), "total_items": 3, "total_amount": Decimal("2.70"),
         "items": [line, {**line, "line_no": 2, "shelf_id": "SH2", "quantity": 1}]},
        {"event_id": "e2", "store_id": "S002", "transaction_id": "t2", "customer_id": "c2",
         "timestamp": at(0, 10), "total_items": 1, "total_amount": Decimal("0.90"),
         "items": [{**line, "quantity": 1}]}], schema=POS_TRANSACTION.arrow_schema())
    lines = features.explode_receipts(receipts)
    assert lines[["store_id", "shelf_id", "quantity"]].values.tolist() == [
        ["S001", "SH1", 2], ["S001", "SH2", 1], ["S002", "SH1", 1]]
    assert (lines["timestamp"] == pd.Timestamp(at(0, 9))).sum() == 2
    empty = features.explode_receipts(receipts.schema.empty_table())
    assert empty.empty and list(empty.columns) == list(lines.columns)


def test_the_signs_are_the_streaming_folds_signs():
    from streaming import batch_state_updater, shelf_aggregator, wh_aggregator

    assert features.SHELF_UNIT_SIGN == shelf_aggregator.UNIT_SIGN
    assert features.WH_UNIT_SIGN == wh_aggregator.UNIT_SIGN
    assert features.LOT_UNIT_SIGN == batch_state_updater.LOT_SIGN


def test_the_lineage_of_the_features_is_what_they_read():
    upstreams = set(lineage.EXPLICIT_UPSTREAMS["delta/analytics/shelf_daily_features"])
    assert upstreams == {f"delta/{p}" for p in feature_store.DELTA_INPUTS} | {
        f"postgres/{t.replace('.', '/')}" for t in feature_store.POSTGRES_INPUTS}


# ------------------------------------------------------------------------------------------------
# The whole row
# ------------------------------------------------------------------------------------------------


def empty_inputs(**frames: pd.DataFrame) -> FeatureInputs:
    columns = {
        "catalogue": "store_id shelf_id item_category item_subcategory maximum_stock item_price "
                     "standard_batch_size",
        "warehouse_capacity": "store_id shelf_id wh_max_stock",
        "foot_traffic": "store_id event_type timestamp", "receipt_lines": LINES,
        "shelf_events": SHELF_EVENTS, "wh_events": WH_EVENTS,
        "shelf_state": "store_id shelf_id current_stock",
        "wh_state": "store_id shelf_id wh_current_stock", "shelf_lots": LOTS,
        "alerts": ALERTS, "supplier_plans": PLANS,
        "daily_discounts": "store_id shelf_id discount_date discount",
        "weekly_discounts": "store_id shelf_id week_start week_end discount_pct",
        "shelf_policies": "store_id shelf_id item_category item_subcategory threshold_pct "
                          "min_qty target_pct active",
        "wh_policies": "store_id shelf_id item_category item_subcategory reorder_point_qty "
                       "active",
    }
    return FeatureInputs(**{name: frames.get(name, frame(cols)) for name, cols in columns.items()})


CATALOGUE = frame("store_id shelf_id item_category item_subcategory maximum_stock item_price "
                  "standard_batch_size",
                  ("S001", "SH2", "Bakery", "Bread", 20, Decimal("2.5"), 6),
                  ("S001", "SH1", "Dairy", "Milk", 10, Decimal("1.99"), 12))


def test_a_row_per_catalogue_shelf_with_every_contract_column():
    inputs = empty_inputs(
        catalogue=CATALOGUE,
        warehouse_capacity=frame("store_id shelf_id wh_max_stock", ("S001", "SH1", 100)),
        shelf_state=frame("store_id shelf_id current_stock", ("S001", "SH1", 1),
                          ("S001", "SH2", 20)),
        wh_state=frame("store_id shelf_id wh_current_stock", ("S001", "SH1", 40)),
        shelf_events=frame(SHELF_EVENTS, shelf_event("a", "SH1", "pickup", 3, at(0, 9)),
                           shelf_event("b", "SH1", "pickup", 1, at(1, 9))),
        receipt_lines=frame(LINES, ("S001", at(0, 9, 30), "SH1", "B1", 3),
                            ("S001", at(1, 9, 30), "SH1", "B1", 1)),
        shelf_lots=frame(LOTS, ("S001", "SH1", "B1", date(2026, 1, 6), 1)))
    computed_at = datetime(2026, 3, 1, tzinfo=UTC)
    rows = features.compute_features(inputs, D, computed_at)
    assert list(rows.columns) == SHELF_DAILY_FEATURES.field_names
    assert rows[["store_id", "shelf_id"]].values.tolist() == [["S001", "SH1"], ["S001", "SH2"]]
    sh1 = rows.iloc[0].to_dict()
    assert {k: sh1[k] for k in ("current_stock_shelf", "shelf_fill_ratio", "sales_qty",
                                "stockout_events", "warehouse_fill_ratio",
                                "wh_reorder_point_qty", "min_expiration_days",
                                "qty_expiring_next_7d", "item_price")} == {
        "current_stock_shelf": 2, "shelf_fill_ratio": Decimal("0.2000"), "sales_qty": 3,
        "stockout_events": 0, "warehouse_fill_ratio": Decimal("0.4000"),
        "wh_reorder_point_qty": 5, "min_expiration_days": 5, "qty_expiring_next_7d": 2,
        "item_price": Decimal("1.99")}
    assert pd.isna(sh1["batches_to_order"]) and pd.isna(sh1["label_next_day_stockout"])
    table = features.to_arrow(rows)
    assert table.schema == SHELF_DAILY_FEATURES.arrow_schema()
    assert table.column("computed_at").to_pylist() == [computed_at] * 2
    # Without any state (a fresh stack): zeros, and no expiry facts.
    bare = features.compute_features(empty_inputs(catalogue=CATALOGUE), D, computed_at)
    assert bare["current_stock_shelf"].tolist() == [0, 0]
    assert bare["stockout_events"].tolist() == [1, 1]  # empty all day
    assert bare["min_expiration_days"].isna().all()
    assert features.to_arrow(bare).num_rows == 2


# ------------------------------------------------------------------------------------------------
# The checks' rules
# ------------------------------------------------------------------------------------------------


def test_no_nulls_names_the_rows_and_counts_per_column():
    table = pa.table({"store_id": ["S001", "S001"], "shelf_id": ["SH1", "SH2"],
                      "a": [1, None], "b": [None, None], "c": [1, 2]})
    assert quality.no_nulls(table, ["c"], features.SHELF).passed
    passed, metadata = quality.no_nulls(table, ["a", "b", "c"], features.SHELF)
    assert not passed and metadata["rows_with_nulls"] == 2
    assert metadata["null_counts"] == {"a": 1, "b": 2}
    assert metadata["offending_keys"] == ["S001|SH1", "S001|SH2"]


def test_within_bounds_counts_per_column_and_treats_null_as_outside():
    table = pa.table({"store_id": ["S001"] * 3, "shelf_id": ["SH1", "SH2", "SH3"],
                      "r": pa.array([Decimal("0"), Decimal("1.0000"), Decimal("1.5")],
                                    pa.decimal128(5, 4)),
                      "s": pa.array([0.5, None, 0.2])})
    assert quality.within_bounds(table, ["r"], 0, 1, features.SHELF).metadata[
        "offending_keys"] == ["S001|SH3"]
    passed, metadata = quality.within_bounds(table, ["r", "s"], 0, 1, features.SHELF)
    assert not passed and metadata["outside_by_column"] == {"r": 1, "s": 1}
    assert quality.within_bounds(table.slice(0, 1), ["r", "s"], 0, 1, features.SHELF).passed


def test_every_key_present_names_the_missing_shelves():
    catalogue = pa.table({"store_id": ["S001"] * 3, "shelf_id": ["SH1", "SH2", "SH3"]})
    rows = pa.table({"store_id": ["S001", "S001"], "shelf_id": ["SH2", "SH9"]})
    passed, metadata = quality.every_key_present(rows, catalogue, features.SHELF)
    assert not passed and metadata["offending_keys"] == ["S001|SH1", "S001|SH3"]
    assert quality.every_key_present(catalogue, catalogue, features.SHELF).passed


# ------------------------------------------------------------------------------------------------
# The assets and checks in-process, on crafted Delta tables
# ------------------------------------------------------------------------------------------------

DAY_KEY = "2026-01-01"


def private_database(settings, **update):
    """Settings of a database of the caller's own on the test server, migrated, with the
    reference data loaded; drop it with `drop_database`."""
    from smart_shelf_platform.refdata import load_into_postgres
    from smart_shelf_platform.stack.lifecycle import reference_files
    from smart_shelf_platform.stack.migrations import apply_migrations, ensure_database_and_roles

    own = settings.model_copy(update={"postgres_db": f"features_{uuid.uuid4().hex[:12]}",
                                      **update})
    ensure_database_and_roles(own)
    apply_migrations(own)
    load_into_postgres(own.postgres_dsn(), reference_files(own))
    return own


def drop_database(settings, own) -> None:
    with psycopg.connect(settings.postgres_dsn(db="postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(own.postgres_db)))


def feature_definitions(own):
    """The feature assets and their checks, partitioned from the settings' simulated start."""
    from smart_shelf_platform.defs.analytics.assets import feature_assets
    from smart_shelf_platform.defs.analytics.checks import feature_checks
    from smart_shelf_platform.defs.partitions import daily_partitions

    days = daily_partitions(own.sim_start)
    return [*feature_assets(days), feature_checks(days)]


def run_features(own, selection=None, partition_key: str = DAY_KEY) -> dg.ExecuteInProcessResult:
    return dg.materialize(feature_definitions(own), partition_key=partition_key,
                          selection=selection, raise_on_error=False,
                          resources={"smart_shelf": SmartShelfResource.from_settings(own)})


def evaluations(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def materialized(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    return {e.event_specific_data.materialization.asset_key.to_user_string():
            e.event_specific_data.materialization.metadata
            for e in result.get_asset_materialization_events()}


def postgres_rows(own, day: date = D) -> dict[tuple[str, str], dict]:
    with psycopg.connect(own.postgres_dsn(), row_factory=dict_row) as conn:
        rows = conn.execute("SELECT * FROM analytics.shelf_daily_features WHERE feature_date = %s",
                            (day,)).fetchall()
    return {(r["store_id"], r["shelf_id"]): r for r in rows}


def write_rows(own, path: str, rows: list[dict] | pa.Table, mode: str = "append") -> None:
    spec = DELTA_TABLES_BY_PATH[path]
    schema = spec.record.arrow_schema()
    table = rows.select(schema.names).cast(schema) if isinstance(rows, pa.Table) else \
        pa.Table.from_pylist(rows, schema=schema)
    write_deltalake(table_uri(own.delta_root, spec), table, mode=mode)


@pytest.fixture(scope="module")
def crafted(settings, tmp_path_factory):
    """A private database and Delta root: the reference snapshot as the current state, plus a
    few hand-made events of the simulated day and of the day after."""
    from streaming import reference

    own = private_database(settings, delta_root_override=str(tmp_path_factory.mktemp("delta")))
    try:
        ensure_delta_tables(own.delta_root)
        for path, rows in (("cleansed/shelf_state", reference.shelf_state_rows(own)),
                           ("cleansed/wh_state", reference.wh_state_rows(own)),
                           ("cleansed/shelf_batch_state", reference.shelf_batch_rows(own))):
            write_rows(own, path, rows)
        yield own
    finally:
        drop_database(settings, own)


def two_shelves_with_one_lot(own) -> list[dict]:
    with psycopg.connect(own.postgres_dsn(), row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT i.shelf_id, i.current_stock, i.maximum_stock, min(b.batch_code) AS batch_code "
            "FROM ref.store_inventory_snapshot i JOIN ref.store_batches_snapshot b "
            "USING (store_id, shelf_id) WHERE i.current_stock BETWEEN 2 AND i.maximum_stock - 1 "
            "GROUP BY 1, 2, 3 HAVING count(*) = 1 ORDER BY 1 LIMIT 2").fetchall()


def shelf_event_record(shelf: str, event_type: str, quantity: int, when: datetime,
                       actor: str = "customer", batch: str | None = None) -> dict:
    return {"event_id": str(uuid.uuid4()), "event_type": event_type, "store_id": "S001",
            "shelf_id": shelf, "actor": actor,
            "customer_id": str(uuid.uuid4()) if actor == "customer" else None,
            "batch_code": batch, "quantity": quantity, "unit_weight": 100.0,
            "delta_weight": None, "plan_id": None, "timestamp": when}


def foot_traffic_record(when: datetime) -> dict:
    return {"event_id": str(uuid.uuid4()), "event_type": "entry", "store_id": "S001",
            "customer_id": str(uuid.uuid4()), "timestamp": when, "weekday": "Thursday",
            "time_slot": "07:00-09:59", "trip_duration_minutes": None}


def receipt_record(shelf: str, batch: str, quantity: int, when: datetime) -> dict:
    price = Decimal("1.00")
    line = {"line_no": 1, "shelf_id": shelf, "batch_code": batch, "expiry_date": None,
            "quantity": quantity, "unit_price": price, "discount": Decimal("0.0000"),
            "total_price": price * quantity}
    return {"event_id": str(uuid.uuid4()), "store_id": "S001",
            "transaction_id": str(uuid.uuid4()), "customer_id": str(uuid.uuid4()),
            "timestamp": when, "total_items": quantity, "total_amount": price * quantity,
            "items": [line]}


@pytest.mark.integration
def test_a_day_of_crafted_events_through_the_assets_and_their_checks(crafted):
    from streaming import reference

    own = crafted
    emptied, overfull = two_shelves_with_one_lot(own)
    a, b = emptied["shelf_id"], overfull["shelf_id"]
    taken = emptied["current_stock"]
    # Shelf a is emptied by one customer on D (who pays at 10:00); a restocker puts 2 back on
    # D+1. Shelf b's state says full although 5 units were picked after D (as if the state had
    # clamped): its end-of-day stock is then 5 above capacity, a fill ratio above 1.
    events = [
        shelf_event_record(a, "pickup", taken, at(0, 9, 30)),
        shelf_event_record(a, "putback", 2, at(1, 8), "restocker", emptied["batch_code"]),
        shelf_event_record(b, "pickup", 5, at(1, 9)),
    ]
    write_rows(own, "raw/shelf_events", events)
    write_rows(own, "raw/foot_traffic", [foot_traffic_record(at(0, 9, n)) for n in range(3)])
    write_rows(own, "raw/pos_transactions",
               [receipt_record(a, emptied["batch_code"], taken, at(0, 10))])
    state = {r["shelf_id"]: r for r in reference.shelf_state_rows(own).to_pylist()}
    state[a]["current_stock"] = 2
    state[b]["current_stock"] = overfull["maximum_stock"]
    write_rows(own, "cleansed/shelf_state", list(state.values()), mode="overwrite")
    lots = reference.shelf_batch_rows(own).to_pylist()
    for lot in lots:
        if lot["batch_code"] == emptied["batch_code"]:
            lot["batch_quantity_store"] = 2  # sold out on D, 2 refilled on D+1
    write_rows(own, "cleansed/shelf_batch_state", lots, mode="overwrite")

    result = run_features(own)
    assert result.success  # the ratio check fails, but it does not block
    checks = evaluations(result)
    assert {n: e.passed for n, e in checks.items()} == {
        "keys_unique": True, "every_catalogue_shelf_present": True,
        "required_values_present": True, "ratios_within_0_1": False}
    ratio = checks["ratios_within_0_1"]
    assert ratio.severity == dg.AssetCheckSeverity.WARN and not ratio.blocking
    assert ratio.metadata["offending_keys"].value == [f"S001|{b}"]
    metadata = materialized(result)
    assert set(metadata) == {"delta/analytics/shelf_daily_features",
                             "postgres/analytics/shelf_daily_features"}
    delta_meta = metadata["delta/analytics/shelf_daily_features"]
    assert (delta_meta["dagster/row_count"].value, delta_meta["stores"].value) == (1142, 1)
    assert delta_meta["units_sold"].value == taken and delta_meta["people_count"].value == 3

    rows = postgres_rows(own)
    assert len(rows) == 1142
    row_a, row_b = rows[("S001", a)], rows[("S001", b)]
    assert (row_a["current_stock_shelf"], row_a["stockout_events"], row_a["sales_qty"],
            row_a["people_count"], row_a["refill_day"]) == (0, 1, taken, 3, False)
    assert row_a["min_expiration_days"] is None  # the lot was sold out at the end of D
    assert row_b["current_stock_shelf"] == overfull["maximum_stock"] + 5
    assert row_b["shelf_fill_ratio"] > 1
    delta = feature_store.read_delta_partition(own.delta_root, D).to_pylist()
    assert {(r["shelf_id"], r["current_stock_shelf"]) for r in delta} == {
        (k[1], r["current_stock_shelf"]) for k, r in rows.items()}

    # Running the day again replaces its partition: same rows, none added, none left over.
    again = run_features(own)
    assert again.success
    assert feature_store.read_delta_partition(own.delta_root, D).num_rows == 1142
    assert len(postgres_rows(own)) == 1142


@pytest.mark.integration
def test_a_failed_blocking_check_stops_the_postgres_upsert(crafted):
    own = crafted
    if feature_store.read_delta_partition(own.delta_root, D).num_rows == 0:
        assert run_features(own).success
    with psycopg.connect(own.postgres_dsn()) as conn:
        conn.execute("DELETE FROM analytics.shelf_daily_features")
    rows = feature_store.read_delta_partition(own.delta_root, D)
    twin = rows.slice(0, 1)
    write_deltalake(table_uri(own.delta_root, feature_store.FEATURES_DELTA), twin, mode="append")
    checks_and_upsert = (dg.AssetSelection.checks_for_assets(FEATURES_DELTA_KEY)
                         | dg.AssetSelection.assets(FEATURES_POSTGRES_KEY))
    result = run_features(own, selection=checks_and_upsert)
    assert not result.success
    checks = evaluations(result)
    assert not checks["keys_unique"].passed and checks["keys_unique"].blocking
    key = f"{twin['store_id'][0]}|{twin['shelf_id'][0]}|{D.isoformat()}"
    assert checks["keys_unique"].metadata["offending_keys"].value == [key]
    assert materialized(result) == {} and postgres_rows(own) == {}  # the upsert never ran


@pytest.mark.integration
def test_without_a_simulator_run_the_ledger_checks_have_nothing_to_compare(crafted):
    result = dg.materialize([checks.ledger_conservation], raise_on_error=False,
                            selection=dg.AssetSelection.all_asset_checks(),
                            resources={"smart_shelf": SmartShelfResource.from_settings(crafted)})
    found = {e.asset_key.to_user_string(): e for e in result.get_asset_check_evaluations()}
    assert set(found) == {f"delta/cleansed/{t}" for t in checks.CONSERVED_TABLES}
    assert all(e.passed and "ledger is empty" in e.metadata["reason"].value
               for e in found.values())


def test_the_checks_are_in_the_definitions_and_only_the_panel_shape_blocks():
    from smart_shelf_platform.definitions import build_definitions
    from smart_shelf_platform.settings import Settings

    graph = build_definitions(Settings()).resolve_asset_graph()
    blocking = {(k.asset_key.to_user_string(), k.name): graph.get_check_spec(k).blocking
                for k in graph.asset_check_keys}
    features_key = "delta/analytics/shelf_daily_features"
    assert {name: b for (key, name), b in blocking.items() if key == features_key} == {
        "keys_unique": True, "every_catalogue_shelf_present": True,
        "required_values_present": True, "ratios_within_0_1": False}
    assert {key for (key, name), b in blocking.items() if name == checks.MATCHES_LEDGER
            and not b} == {f"delta/cleansed/{t}" for t in checks.CONSERVED_TABLES}


def test_a_ledger_comparison_as_check_metadata():
    from smart_shelf_platform.verify import Comparison, Difference

    outcome = checks.ledger_outcome(Comparison("shelf_state", 3, [
        Difference(("S001", "SH1"), 5, 7), Difference(("S001", "SH2"), 2, 1)]))
    assert not outcome.passed
    assert outcome.metadata == {
        "keys": 3, "differences": 2, "platform_minus_ledger_units": -1,
        "first_differences": ["S001 SH1: platform 5, ledger 7", "S001 SH2: platform 2, ledger 1"]}
    assert checks.ledger_outcome(Comparison("wh_state", 3, [])).passed


# ------------------------------------------------------------------------------------------------
# A real pipeline run
# ------------------------------------------------------------------------------------------------

# The evening of the simulated day and the first hour of the next: the day ends while events
# keep coming, so its end-of-day stock is reconstructed from a state that moved on after it.
PIPELINE_START = datetime(2026, 1, 1, 21, 0, tzinfo=UTC)
PIPELINE_UNTIL = PIPELINE_START + timedelta(hours=4)
NEXT_DAY = D + timedelta(days=1)
SIGNS = {"pickup": -1, "putback": 1, "expired_removal": -1}  # written out again on purpose


def delta_table(own, path: str) -> list[dict]:
    from deltalake import DeltaTable

    return DeltaTable(table_uri(own.delta_root, DELTA_TABLES_BY_PATH[path])).to_pyarrow_table(
    ).to_pylist()


def reference_rows(own, name: str) -> list[dict]:
    import pyarrow.parquet as pq

    from smart_shelf_platform.stack.lifecycle import reference_files

    return pq.read_table(reference_files(own)[name]).to_pylist()


def on(day: date, when: datetime) -> bool:
    return when.astimezone(UTC).date() == day


def assert_alert_features(rows: dict, alerts: list[dict], day: date) -> None:
    """Alerts of each location created in the 30 days ending with `day` (the run is shorter),
    and the stock alerts still open at its end, counted straight from ops/alerts."""
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    for location, count, flag, stock_alert in (
            ("store", "alerts_last_30d_shelf", "is_shelf_alert", "refill_request"),
            ("warehouse", "alerts_last_30d_wh", "is_warehouse_alert", "supplier_request")):
        raised, open_at_end = defaultdict(int), set()
        for alert in (a for a in alerts if a["location"] == location and a["created_at"] < end):
            key = (alert["store_id"], alert["shelf_id"])
            raised[key] += 1
            if alert["alert_type"] == stock_alert and (
                    alert["status"] == "open" or alert["updated_at"] >= end):
                open_at_end.add(key)
        assert {k: r[count] for k, r in rows.items() if r[count]} == dict(raised)
        assert {k for k, r in rows.items() if r[flag]} == open_at_end


@pytest.mark.integration
def test_the_features_of_a_simulated_day_agree_with_the_raw_events_and_the_ledger(pipeline):
    own, sim = pipeline
    assert sim.events_emitted > 500
    result = run_features(own)
    assert result.success
    assert all(e.passed for e in evaluations(result).values()), evaluations(result)
    delta = {(r["store_id"], r["shelf_id"]): r
             for r in feature_store.read_delta_partition(own.delta_root, D).to_pylist()}
    assert delta == postgres_rows(own)  # Postgres holds exactly the Delta partition
    shelves = {(r["store_id"], r["shelf_id"]): r for r in reference_rows(own, "store_inventory")}
    assert set(delta) == set(shelves)

    # Sales and people: straight from the raw receipts and entries, and the simulator's ledger.
    receipts = delta_table(own, "raw/pos_transactions")
    sold, discounts = defaultdict(int), defaultdict(set)
    for receipt in (r for r in receipts if on(D, r["timestamp"])):
        for line in receipt["items"]:
            sold[receipt["store_id"], line["shelf_id"]] += line["quantity"]
            discounts[receipt["store_id"], line["shelf_id"]].add(line["discount"])
    assert sum(sold.values()) > 0
    assert {k: r["sales_qty"] for k, r in delta.items() if r["sales_qty"]} == dict(sold)
    with psycopg.connect(own.postgres_dsn()) as conn:
        ledger_sales = dict(((s, sh), n) for s, sh, n in conn.execute(
            "SELECT store_id, shelf_id, sold_units FROM sim.ledger_daily_sales "
            "WHERE sale_date = %s AND sold_units > 0", (D,)))
    assert ledger_sales == dict(sold)
    for key, paid in discounts.items():  # what the shoppers paid is the day's discount
        assert paid == {delta[key]["discount"]}, key
    entries = [e for e in delta_table(own, "raw/foot_traffic")
               if e["event_type"] == "entry" and on(D, e["timestamp"])]
    assert {r["people_count"] for r in delta.values()} == {len(entries)} and entries

    # The stock at the end of the day, replayed forward from the snapshot through the raw
    # events (the features go backward from the current state), with the stock-outs on the way.
    events = sorted((e for e in delta_table(own, "raw/shelf_events")
                     if e["event_type"] in SIGNS and on(D, e["timestamp"])),
                    key=lambda e: (e["timestamp"], -SIGNS[e["event_type"]], e["event_id"]))
    stock = {k: r["current_stock"] for k, r in shelves.items()}
    emptied = defaultdict(int, {k: 1 for k, units in stock.items() if units == 0})
    for event in events:
        key = (event["store_id"], event["shelf_id"])
        before = stock[key]
        stock[key] += SIGNS[event["event_type"]] * event["quantity"]
        emptied[key] += before > 0 >= stock[key]
    assert {k: r["current_stock_shelf"] for k, r in delta.items()} == stock
    assert {k: r["stockout_events"] for k, r in delta.items() if r["stockout_events"]} == {
        k: n for k, n in emptied.items() if n}
    state = {(r["store_id"], r["shelf_id"]): r["current_stock"]
             for r in delta_table(own, "cleansed/shelf_state")}
    assert state != stock, "the state moved on after the day: the reconstruction was needed"
    warehouse = {(r["store_id"], r["shelf_id"]): r["current_stock"]
                 for r in reference_rows(own, "warehouse_inventory")}
    assert {k: r["current_stock_warehouse"] for k, r in delta.items()} == {
        k: warehouse.get(k, 0) for k in delta}  # no warehouse movement without effects

    # Lots on the shelf at the end of the day: the snapshot's, less what receipts of D paid.
    lots = {(r["store_id"], r["shelf_id"], r["batch_code"]): [r["expiry_date"],
                                                               r["batch_quantity"]]
            for r in reference_rows(own, "store_batches")}
    for receipt in (r for r in receipts if on(D, r["timestamp"])):
        for line in receipt["items"]:
            lots[receipt["store_id"], line["shelf_id"], line["batch_code"]][1] -= line["quantity"]
    expiring, earliest = defaultdict(int), {}
    for (store, shelf, _), (expiry, units) in lots.items():
        if units > 0:
            days = (expiry - D).days
            earliest[store, shelf] = min(days, earliest.get((store, shelf), days))
            expiring[store, shelf] += units if days <= 7 else 0
    assert {k: r["min_expiration_days"] for k, r in delta.items()} == {
        k: earliest.get(k) for k in delta}
    assert {k: r["qty_expiring_next_7d"] for k, r in delta.items()} == {
        k: expiring[k] for k in delta}

    # Alerts the engines raised, and the plans they made. Drained after the fact, the engines
    # may date their alerts by a tick of D+1 already, so the alerts are asserted present with
    # the next day's partition (its 30 days include D).
    alerts = delta_table(own, "ops/alerts")
    assert_alert_features(delta, alerts, D)
    end = datetime.combine(NEXT_DAY, datetime.min.time(), tzinfo=UTC)
    plans = [p for p in delta_table(own, "ops/wh_supplier_plan") if p["created_at"] < end]
    pending = defaultdict(int)
    for plan in plans:
        pending[plan["store_id"], plan["shelf_id"]] += plan["suggested_qty"]
    assert {k: r["pending_supplier_qty"] for k, r in delta.items()
            if r["pending_supplier_qty"]} == dict(pending)

    # The next day, still running: its own partition, as of now; the first day's is untouched.
    next_day = run_features(own, partition_key=NEXT_DAY.isoformat())
    assert next_day.success
    later = {(r["store_id"], r["shelf_id"]): r
             for r in feature_store.read_delta_partition(own.delta_root, NEXT_DAY).to_pylist()}
    assert {k: r["current_stock_shelf"] for k, r in later.items()} == state
    assert sum(r["sales_qty"] for r in later.values()) == sum(
        line["quantity"] for r in receipts if on(NEXT_DAY, r["timestamp"])
        for line in r["items"])
    assert {k: r["sales_last_1d"] for k, r in later.items() if r["sales_last_1d"]} == dict(sold)
    assert_alert_features(later, alerts, NEXT_DAY)
    assert any(r["alerts_last_30d_shelf"] for r in later.values())
    assert any(r["is_shelf_alert"] for r in later.values())  # without refills, they stay open
    in_flight = defaultdict(int)  # every plan was made in the run, none delivered yet
    for plan in delta_table(own, "ops/wh_supplier_plan"):
        in_flight[plan["store_id"], plan["shelf_id"]] += plan["suggested_qty"]
    assert {k: r["pending_supplier_qty"] for k, r in later.items()
            if r["pending_supplier_qty"]} == dict(in_flight) and in_flight
    assert feature_store.read_delta_partition(own.delta_root, D).num_rows == len(delta)


@pytest.mark.integration
def test_the_cleansed_state_is_conserved_against_the_ledger_until_it_is_not(pipeline):
    own, _ = pipeline
    resource = {"smart_shelf": SmartShelfResource.from_settings(own)}

    def conservation() -> dict[str, dg.AssetCheckEvaluation]:
        result = dg.materialize([checks.ledger_conservation], resources=resource,
                                selection=dg.AssetSelection.all_asset_checks())
        assert result.success  # warnings never fail the run
        return {e.asset_key.to_user_string(): e for e in result.get_asset_check_evaluations()}

    drained = conservation()
    assert all(e.passed for e in drained.values()), {
        k: e.metadata["first_differences"].value for k, e in drained.items() if not e.passed}
    assert drained["delta/cleansed/shelf_state"].metadata["keys"].value == 1142

    with psycopg.connect(own.postgres_dsn()) as conn:
        store, shelf, batch = conn.execute(
            "UPDATE sim.ledger_shelf_lots SET quantity = quantity + 2 WHERE (shelf_id, "
            "batch_code) = (SELECT shelf_id, batch_code FROM sim.ledger_shelf_lots "
            "ORDER BY shelf_id, batch_code LIMIT 1) RETURNING store_id, shelf_id, batch_code"
        ).fetchone()
    broken = conservation()
    failed = {k for k, e in broken.items() if not e.passed}
    assert failed == {"delta/cleansed/shelf_state", "delta/cleansed/shelf_batch_state"}
    shelf_check = broken["delta/cleansed/shelf_state"]
    assert shelf_check.severity == dg.AssetCheckSeverity.WARN and not shelf_check.blocking
    assert shelf_check.metadata["platform_minus_ledger_units"].value == -2
    (difference,) = shelf_check.metadata["first_differences"].value
    assert difference.startswith(f"{store} {shelf}: platform ")
    (lot_difference,) = broken["delta/cleansed/shelf_batch_state"].metadata[
        "first_differences"].value
    assert lot_difference.startswith(f"{store} {shelf} {batch}: ")


# ------------------------------------------------------------------------------------------------
# The simulated-day sensor
# ------------------------------------------------------------------------------------------------


def test_days_to_request_are_the_ended_days_after_the_cursor():
    from smart_shelf_platform.defs.analytics.sensors import days_to_request

    hour = timedelta(hours=1)
    assert days_to_request(D, None, at(0, 23, 59), timedelta(0)) == []
    assert days_to_request(D, None, at(1, 0), timedelta(0)) == [D]  # the day ends at midnight
    assert days_to_request(D, None, at(1, 0, 59), hour) == []  # not settled yet
    assert days_to_request(D, None, at(3, 1), hour) == [D + timedelta(days=n) for n in range(3)]
    assert days_to_request(D, D + timedelta(days=1), at(3, 1), hour) == [D + timedelta(days=2)]
    assert days_to_request(D, D + timedelta(days=2), at(3, 1), hour) == []
    assert len(days_to_request(D, None, at(400, 0), hour)) == 31  # a month per evaluation


@pytest.mark.integration
def test_the_sensor_requests_each_ended_day_once_from_the_simulated_clock(settings, redis_conn,
                                                                          prefix):
    from smart_shelf_platform.clock import ClockKeys
    from smart_shelf_platform.definitions import build_definitions
    from smart_shelf_platform.defs.analytics.sensors import FEATURES_JOB, SENSOR_NAME

    definitions = build_definitions(settings)
    sensor = definitions.resolve_sensor_def(SENSOR_NAME)
    job = definitions.resolve_job_def(FEATURES_JOB)
    assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == {
        FEATURES_DELTA_KEY.to_user_string(), FEATURES_POSTGRES_KEY.to_user_string()}
    assert job.partitions_def.get_first_partition_key() == DAY_KEY
    resource = SmartShelfResource(**{**SmartShelfResource.from_settings(settings).model_dump(),
                                     "clock_key_prefix": prefix})
    assert resource.freshness_bound == timedelta(hours=1)

    def evaluate(cursor: str | None = None):
        with dg.instance_for_test() as instance:
            context = dg.build_sensor_context(instance=instance, cursor=cursor,
                                              resources={"smart_shelf": resource},
                                              definitions=definitions)
            return sensor.evaluate_tick(context)

    never_ran = evaluate()
    assert not never_ran.run_requests and "has not run" in never_ran.skip_message
    keys = ClockKeys(prefix)
    redis_conn.set(keys.now, at(0, 23).isoformat())
    redis_conn.set(keys.today, D.isoformat())
    assert "no simulated day ended since the start" in evaluate().skip_message

    redis_conn.set(keys.now, at(2, 0, 30).isoformat())  # D+1 ended 30 minutes ago: not settled
    redis_conn.set(keys.today, (D + timedelta(days=2)).isoformat())
    first = evaluate()
    assert [(r.partition_key, r.run_key) for r in first.run_requests] == [(DAY_KEY, DAY_KEY)]
    assert first.cursor == DAY_KEY and sensor.job_name == FEATURES_JOB
    assert not evaluate(first.cursor).run_requests  # nothing twice

    redis_conn.set(keys.now, at(3, 6).isoformat())
    later = evaluate(first.cursor)
    assert [r.partition_key for r in later.run_requests] == ["2026-01-02", "2026-01-03"]
    assert later.cursor == "2026-01-03"
