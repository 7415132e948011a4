"""The dashboard's data and figure functions on small frames: shelf states, a zone's colour
from its shelves, filters, alert ages and the answering plan, countdowns, the floor plan."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pandas as pd
import pytest

from dashboard import data, figures
from dashboard.layout import floor_plan
from smart_shelf_platform.refdata.generator import load_catalogue

TODAY = date(2026, 1, 2)
NOW = datetime(2026, 1, 2, 12, 0, tzinfo=timezone.utc)


def shelves_frame() -> pd.DataFrame:
    state = pd.DataFrame({
        "store_id": "S001", "shelf_id": ["A", "B", "C", "D", "E"],
        "current_stock": [0, 2, 9, 10, 3], "max_stock": [10] * 5,
        "last_update_ts": pd.Timestamp(NOW)})
    catalogue = pd.DataFrame({
        "store_id": "S001", "shelf_id": ["A", "B", "C", "D", "E"],
        "item_category": ["MEAT", "MEAT", "FISH", "FISH", "WINES"],
        "item_subcategory": ["Beef", "Pork", "Fresh", "Frozen", "Red"]})
    lots = pd.DataFrame({
        "store_id": "S001", "shelf_id": ["C", "D", "D"], "batch_code": ["c1", "d1", "d2"],
        "expiry_date": [date(2026, 1, 3), date(2026, 1, 2), date(2026, 2, 1)],
        "batch_quantity_store": [9, 0, 10]})
    # WINES: a shelf-specific policy raises E's threshold to 40 %: 3 of 10 is below it.
    policies = pd.DataFrame({
        "store_id": "S001", "shelf_id": [None, "E"], "item_category": [None, None],
        "item_subcategory": [None, None], "threshold_pct": [30.0, 40.0], "min_qty": [1, 1],
        "active": [True, True]})
    return data.shelf_view(state, catalogue, policies, lots, TODAY, near_days=1)


def test_each_shelf_gets_its_state_and_the_shelves_at_risk_come_first():
    view = shelves_frame()
    assert dict(zip(view["shelf_id"], view["state"])) == {
        "A": data.EMPTY, "B": data.BELOW, "E": data.BELOW, "C": data.NEAR_EXPIRY,
        "D": data.FINE}
    assert list(view["shelf_id"]) == ["A", "B", "E", "C", "D"]
    # D's lot expiring today is empty: its earliest lot with units expires in a month.
    assert view.set_index("shelf_id").loc["D", "days_left"] == 30


def test_a_zone_takes_the_worst_state_of_its_shelves():
    zones = data.zone_states(shelves_frame(), ["MEAT", "FISH", "WINES", "FROZEN"])
    assert dict(zip(zones["item_category"], zones["state"])) == {
        "MEAT": data.EMPTY, "FISH": data.NEAR_EXPIRY, "WINES": data.BELOW, "FROZEN": "no data"}
    meat = zones.set_index("item_category").loc["MEAT"]
    assert (meat["shelves"], meat[data.EMPTY], meat[data.BELOW]) == (2, 1, 1)


def test_category_filters_keep_only_the_chosen_categories_and_an_empty_choice_keeps_all():
    view = shelves_frame()
    assert set(data.filtered(view, item_category=["FISH"])["shelf_id"]) == {"C", "D"}
    assert set(data.filtered(view, item_category=["FISH", "MEAT"],
                             item_subcategory=["Pork", "Fresh"])["shelf_id"]) == {"B", "C"}
    assert len(data.filtered(view, item_category=[])) == len(view)


def test_alerts_get_their_category_age_and_the_plan_that_answered_them():
    alerts = pd.DataFrame({
        "store_id": "S001", "alert_id": ["a1", "a2"], "shelf_id": ["A", "C"],
        "alert_type": ["refill_request", "near_expiry"], "status": ["resolved", "open"],
        "created_at": [pd.Timestamp("2026-01-02T10:00Z"), pd.Timestamp("2026-01-02T11:30Z")],
        "updated_at": [pd.Timestamp("2026-01-02T10:20Z"), pd.Timestamp("2026-01-02T11:30Z")]})
    catalogue = pd.DataFrame({"store_id": "S001", "shelf_id": ["A", "C"],
                              "item_category": ["MEAT", "FISH"],
                              "item_subcategory": ["Beef", "Fresh"]})
    plans = pd.DataFrame({"store_id": ["S001"], "plan_id": ["0123456789"], "alert_id": ["a1"],
                          "status": ["completed"]})
    view = data.alerts_view(alerts, catalogue, plans, NOW).set_index("alert_id")
    assert view.loc["a1", "age_min"] == 20  # over: opened to resolved
    assert view.loc["a2", "age_min"] == 30  # open: opened to now
    assert view.loc["a1", "handled_by"] == "restock plan 01234567 (completed)"
    assert view.loc["a2", "handled_by"] == ""
    assert list(data.filtered(view, item_category=["FISH"]).index) == ["a2"]


def test_countdown_in_simulated_days_hours_and_minutes():
    assert data.countdown(NOW, datetime(2026, 1, 3, 14, 5, tzinfo=timezone.utc)) == "1 d 02:05"
    assert data.countdown(NOW, NOW) == "0 d 00:00"


def test_the_floor_plan_has_one_zone_per_category_of_the_generator():
    assert sorted(floor_plan().categories) == sorted({s.category for s in load_catalogue()})


def test_the_store_map_colours_each_zone_by_its_state_and_carries_its_category():
    plan = floor_plan()
    zones = data.zone_states(shelves_frame(), plan.categories)
    fig = figures.store_map(zones, plan)
    by_state = {trace.name: trace for trace in fig.data}
    assert set(by_state) == {data.EMPTY, data.BELOW, data.NEAR_EXPIRY, "no data"}
    assert [row[0] for row in by_state[data.EMPTY].customdata] == ["MEAT"]
    assert by_state[data.EMPTY].marker.color == data.STATE_COLOURS[data.EMPTY]
    assert sum(len(t.x) for t in fig.data) == len(plan.zones)


def backtest_rows() -> pd.DataFrame:
    rows = []
    for backtest_id, ran_at, wape in (("old", "2026-01-01T00:00Z", 9.0),
                                      ("new", "2026-01-02T00:00Z", 0.4)):
        for method, scale in (("model", 1.0), ("seasonal_naive", 1.5)):
            for cutoff, value in (("all", wape), ("c1", wape - 0.1), ("c2", wape + 0.1)):
                rows.append({"backtest_id": backtest_id, "ran_at": pd.Timestamp(ran_at),
                             "method": method, "scope": "all", "cutoff": cutoff,
                             "metric": "wape", "value": value * scale})
            rows.append({"backtest_id": backtest_id, "ran_at": pd.Timestamp(ran_at),
                         "method": method, "scope": "slow_movers", "cutoff": "all",
                         "metric": "wape", "value": 99.0})
    return pd.DataFrame(rows)


def test_the_backtest_charts_read_the_latest_run_over_every_shelf():
    overall = data.backtest_overall(backtest_rows()).set_index("method")
    assert overall["wape"].to_dict() == {"model": 0.4, "seasonal_naive": pytest.approx(0.6)}
    per_cutoff = data.backtest_by_cutoff(backtest_rows(), "wape").set_index("cutoff")
    assert list(per_cutoff.index) == ["c1", "c2"]
    assert per_cutoff.loc["c1", "model"] == pytest.approx(0.3)
    fig = figures.metric_bars(overall.reset_index(), "method", ["wape"])
    assert [t.name for t in fig.data] == ["model", "seasonal_naive"]


def test_totals_over_each_forecast_interval_wait_for_the_whole_interval():
    predictions = pd.DataFrame({"interval_start": [date(2026, 1, 2), date(2026, 1, 4)],
                                "interval_end": [date(2026, 1, 3), date(2026, 1, 6)]})
    sales = pd.DataFrame({"day": [date(2026, 1, d) for d in (1, 2, 3, 4, 5)],
                          "value": [1, 2, 3, 4, 5]})
    sold = data.totals_over_intervals(predictions, sales, "sold")["sold"]
    assert sold[0] == 5 and pd.isna(sold[1])  # the second interval ends after the last day


def test_the_most_specific_active_policy_sets_a_shelfs_threshold():
    shelves = pd.DataFrame({"store_id": "S001", "shelf_id": ["A", "B", "C", "D"],
                            "item_category": ["MEAT", "MEAT", "MEAT", "FISH"],
                            "item_subcategory": ["Beef", "Pork", "Pork", "Fresh"]})
    policies = pd.DataFrame({
        "store_id": "S001",
        "shelf_id": [None, None, None, "C", None],
        "item_category": [None, "MEAT", "MEAT", None, "FISH"],
        "item_subcategory": [None, None, "Pork", None, None],
        "threshold_pct": [30.0, 35.0, 40.0, 50.0, 99.0], "min_qty": [1, 2, 3, 4, 5],
        "active": [True, True, True, True, False]})
    view = data.policy_thresholds(shelves, policies).set_index("shelf_id")
    assert view["threshold_pct"].to_dict() == {"A": 35.0, "B": 40.0, "C": 50.0, "D": 30.0}
    assert view["min_qty"].to_dict() == {"A": 2, "B": 3, "C": 4, "D": 1}
