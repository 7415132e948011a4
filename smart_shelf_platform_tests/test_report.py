"""`smart-shelf report`: each KPI on small hand-built frames, the report's totals, table and JSON.

The command on a real pipeline run is tested in test_streaming_e2e.py (its run, no second
simulation)."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timezone

import pandas as pd
import pytest

from smart_shelf_platform.report import (
    WASTE_FROM_EVENTS, WASTE_FROM_LEDGER, Kpis, compute_report, total,
)
from smart_shelf_platform.report_figures import (
    Window, alerts_by, default_window, end_of_day_stock, event_waste, forecast_errors,
    ledger_waste, plans_by_status, restock_minutes, sales_kpis, simulated_days, stock_cover,
    stock_days, supplier_order_kpis, waste_kpis,
)
from smart_shelf_platform.report_inputs import ReportInputs
from smart_shelf_platform.stack.process import StackError

START = datetime(2026, 1, 1, 7, 0, tzinfo=timezone.utc)
WEEK = Window(date(2026, 1, 1), date(2026, 1, 7))
STORES = ["S001", "S002"]


def at(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def frame(columns: str, *rows) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=columns.split())


def sales(*rows) -> pd.DataFrame:
    return frame("store_id shelf_id sale_date sold_units lost_units lost_units_wh_empty", *rows)


def shelf_events(*rows) -> pd.DataFrame:
    return frame("store_id shelf_id event_type actor quantity timestamp", *rows).astype(
        {"timestamp": "datetime64[us, UTC]"})


def wh_events(*rows) -> pd.DataFrame:
    return frame("store_id shelf_id event_type quantity timestamp", *rows).astype(
        {"timestamp": "datetime64[us, UTC]"})


# ---- the window --------------------------------------------------------------------------------


def test_the_default_window_runs_from_the_start_s_day_to_the_furthest_position():
    positions = [datetime(2026, 1, 5, 13, 0, tzinfo=timezone.utc),
                 datetime(2026, 1, 8, 7, 0, tzinfo=timezone.utc)]
    assert default_window(START, positions) == Window(date(2026, 1, 1), date(2026, 1, 8))
    # A position at midnight closes the day before it; no position yet: the start's day.
    assert default_window(START, [datetime(2026, 1, 3, tzinfo=timezone.utc)]).last == \
        date(2026, 1, 2)
    assert default_window(START, []) == Window(date(2026, 1, 1), date(2026, 1, 1))
    assert default_window(START, positions, last=date(2026, 1, 2)).last == date(2026, 1, 2)
    with pytest.raises(StackError, match=r"starts \(2026-01-05\) after it ends \(2026-01-02\)"):
        default_window(START, positions, date(2026, 1, 5), date(2026, 1, 2))


def test_simulated_days_count_partial_first_and_last_days_by_the_hours_simulated():
    position = datetime(2026, 1, 3, 19, 0, tzinfo=timezone.utc)  # 2.5 days after 07:00 Jan 1
    assert simulated_days(WEEK, START, position) == pytest.approx(2.5)
    assert stock_days(WEEK, START, position) == [date(2026, 1, d) for d in (1, 2, 3)]
    later = Window(date(2026, 1, 2), date(2026, 1, 2))
    assert simulated_days(later, START, position) == 1.0
    assert stock_days(later, START, position) == [date(2026, 1, 2)]
    # A window past the position: nothing simulated, no stock day.
    after = Window(date(2026, 1, 5), date(2026, 1, 6))
    assert simulated_days(after, START, position) == 0.0 and stock_days(after, START, position) \
        == []


# ---- the KPIs ----------------------------------------------------------------------------------


def test_sales_and_lost_sales_sum_the_window_s_days_per_store():
    kpis = sales_kpis(sales(("S001", "SH1", date(2026, 1, 1), 10, 2, 0),
                            ("S001", "SH2", date(2026, 1, 7), 5, 3, 2),
                            ("S001", "SH1", date(2026, 1, 8), 100, 100, 100),  # after it
                            ("S002", "SH1", date(2026, 1, 2), 4, 0, 0)), WEEK, STORES)
    assert kpis.to_dict("index") == {
        "S001": {"units_sold": 15, "lost_units": 5, "lost_units_wh_empty": 2},
        "S002": {"units_sold": 4, "lost_units": 0, "lost_units_wh_empty": 0}}
    assert sales_kpis(sales(), WEEK, STORES)["lost_units"].tolist() == [0, 0]


def test_lost_sales_are_a_percentage_of_demand():
    assert Kpis(units_sold=75, lost_units=25).lost_pct == 25.0
    assert Kpis().lost_pct is None


def test_waste_from_the_ledger_and_from_events_agree_on_the_same_removals():
    ledger = ledger_waste(frame(
        "store_id shelf_id waste_date shelf_units warehouse_units",
        ("S001", "SH1", date(2026, 1, 2), 3, 0), ("S001", "SH1", date(2026, 1, 4), 1, 6),
        ("S001", "SH2", date(2025, 12, 31), 9, 9)), WEEK)
    events = event_waste(
        shelf_events(("S001", "SH1", "expired_removal", "restocker", 3, at("2026-01-02 00:05")),
                     ("S001", "SH1", "expired_removal", "restocker", 1, at("2026-01-04 00:05")),
                     ("S001", "SH1", "pickup", "customer", 2, at("2026-01-04 10:00")),
                     ("S001", "SH2", "expired_removal", "restocker", 9, at("2026-01-08 00:05"))),
        wh_events(("S001", "SH1", "wh_removal", 6, at("2026-01-04 00:00")),
                  ("S001", "SH1", "wh_out", 4, at("2026-01-04 09:00"))), WEEK)
    expected = [{"store_id": "S001", "shelf_id": "SH1", "shelf_units": 4, "warehouse_units": 6}]
    assert ledger.to_dict("records") == events.to_dict("records") == expected
    assert event_waste(shelf_events(), wh_events(), WEEK).empty


def test_waste_is_valued_at_list_price_per_store():
    waste = frame("store_id shelf_id shelf_units warehouse_units",
                  ("S001", "SH1", 4, 6), ("S001", "SH2", 1, 0), ("S002", "SH1", 0, 2))
    prices = frame("store_id shelf_id item_price", ("S001", "SH1", 1.25), ("S001", "SH2", 3.10),
                   ("S002", "SH1", 2.00))
    kpis = waste_kpis(waste, prices, STORES)
    assert kpis.to_dict("index") == {
        "S001": {"waste_shelf_units": 5, "waste_warehouse_units": 6, "waste_value": 15.6},
        "S002": {"waste_shelf_units": 0, "waste_warehouse_units": 2, "waste_value": 4.0}}
    assert waste_kpis(waste, None, STORES)["waste_value"].isna().all()


def test_orders_count_by_cutoff_and_deliveries_by_receipt_in_the_window():
    orders = frame("store_id order_id total_qty cutoff_ts",
                   ("S001", "O1", 24, at("2026-01-04 12:00")),  # Sunday cutoff
                   ("S001", "O2", 12, at("2026-01-06 12:00")),
                   ("S001", "O3", 48, at("2025-12-30 12:00")))  # placed before the window
    receipts = frame("store_id order_id received_qty created_at",
                     ("S001", "O3", 48, at("2026-01-02 08:00")),
                     ("S001", "O1", 24, at("2026-01-05 08:00")))
    kpis = supplier_order_kpis(orders, receipts, WEEK, STORES)
    assert kpis.loc["S001"].to_dict() == {"orders_placed": 2, "units_ordered": 36,
                                          "orders_delivered": 2, "units_delivered": 72}
    assert kpis.loc["S002"].sum() == 0


def test_plans_and_alerts_created_in_the_window_count_by_their_status_now():
    plans = frame("store_id status created_at", ("S001", "completed", at("2026-01-02 10:00")),
                  ("S001", "completed", at("2026-01-03 10:00")),
                  ("S001", "pending", at("2026-01-07 23:59")),
                  ("S001", "canceled", at("2026-01-08 00:00")))  # after the window
    by_status = plans_by_status(plans, WEEK, STORES)
    assert by_status["S001"] == {"pending": 1, "issued": 0, "completed": 2, "canceled": 0}
    assert set(by_status["S002"].values()) == {0}

    alerts = frame("store_id alert_type status created_at",
                   ("S001", "refill_request", "resolved", at("2026-01-01 09:00")),
                   ("S001", "refill_request", "open", at("2026-01-02 09:00")),
                   ("S002", "expired_removal", "resolved", at("2026-01-03 00:00")))
    assert alerts_by(alerts, "alert_type", WEEK, STORES)["S001"]["refill_request"] == 2
    assert alerts_by(alerts, "alert_type", WEEK, STORES)["S002"] == {
        "refill_request": 0, "near_expiry": 0, "supplier_request": 0,
        "near_expiry_discount": 0, "expired_removal": 1}
    assert alerts_by(alerts, "status", WEEK, STORES)["S001"] == {
        "open": 1, "acknowledged": 0, "resolved": 1, "dismissed": 0}


def test_restock_time_runs_from_a_plan_to_its_completion_for_completed_plans_only():
    plans = frame("store_id status created_at updated_at",
                  ("S001", "completed", at("2026-01-02 10:00"), at("2026-01-02 10:04")),
                  ("S001", "completed", at("2026-01-03 10:00"), at("2026-01-03 11:00")),
                  ("S001", "issued", at("2026-01-03 12:00"), at("2026-01-03 12:01")),
                  ("S002", "completed", at("2026-01-08 00:00"), at("2026-01-08 00:05")))
    times = restock_minutes(plans, WEEK, STORES)
    assert times == {"S001": [4.0, 60.0], "S002": []}
    kpis = Kpis(restock_minutes=times["S001"])
    assert (kpis.restock_time(50), kpis.restock_time(95)) == (32.0, pytest.approx(57.2))
    assert Kpis().restock_time(50) is None
    assert total([kpis, Kpis(restock_minutes=[1.0])]).restock_minutes == [1.0, 4.0, 60.0]


def test_end_of_day_stock_takes_later_movements_back_off_the_current_state():
    shelf_state = frame("store_id shelf_id current_stock", ("S001", "SH1", 5), ("S001", "SH2", 2))
    wh_state = frame("store_id shelf_id wh_current_stock", ("S001", "SH1", 20))
    shelves = shelf_events(
        ("S001", "SH1", "pickup", "customer", 3, at("2026-01-02 10:00")),
        ("S001", "SH1", "putback", "restocker", 6, at("2026-01-02 11:00")),
        ("S001", "SH2", "expired_removal", "restocker", 1, at("2026-01-03 00:10")))
    warehouse = wh_events(("S001", "SH1", "wh_out", 6, at("2026-01-02 10:58")),
                          ("S001", "SH1", "wh_in", 24, at("2026-01-03 08:00")))
    stock = end_of_day_stock(shelf_state, wh_state, shelves, warehouse,
                             [date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)])
    # Jan 3 ends as now: 5 + 2 + 20. Jan 2: before the removal (+1) and the delivery (-24).
    # Jan 1: before Jan 2's pickup (+3), refill (-6) and wh_out (+6) too.
    assert stock["S001"].tolist() == [7, 4, 27]


def test_stock_cover_is_average_stock_over_average_daily_sales():
    assert stock_cover(300.0, 60.0) == 5.0
    assert stock_cover(300.0, 0.0) is None and stock_cover(None, 10.0) is None


# ---- the report --------------------------------------------------------------------------------


def test_the_forecast_is_scored_on_the_intervals_the_ledger_has_whole():
    demand = sales(("S001", "A", date(2026, 1, 1), 8, 2, 0),   # 10
                   ("S001", "A", date(2026, 1, 2), 5, 0, 0),   # 5
                   ("S001", "A", date(2026, 1, 3), 1, 0, 0),   # a day still running
                   ("S002", "B", date(2026, 1, 1), 4, 0, 0))
    predictions = frame(
        "store_id shelf_id interval_start interval_end forecast_mean",
        ("S001", "A", date(2026, 1, 1), date(2026, 1, 2), 12.0),  # truth 15: error 3
        ("S001", "A", date(2026, 1, 2), date(2026, 1, 3), 9.0),   # ends on an unfinished day
        ("S002", "B", date(2026, 1, 1), date(2026, 1, 1), 6.0))   # truth 4: error 2
    errors = forecast_errors(predictions, demand, STORES, complete_until=date(2026, 1, 2))
    assert errors.to_dict("index") == {
        "S001": {"forecast_abs_error": 3.0, "forecast_demand": 15.0, "forecast_intervals": 1},
        "S002": {"forecast_abs_error": 2.0, "forecast_demand": 4.0, "forecast_intervals": 1}}
    chain = total([Kpis(forecast_abs_error=3.0, forecast_demand=15.0, forecast_intervals=1),
                   Kpis(forecast_abs_error=2.0, forecast_demand=4.0, forecast_intervals=1)])
    assert (chain.forecast_wape_pct, chain.forecast_intervals) == (pytest.approx(500 / 19), 2)
    assert forecast_errors(None, demand, STORES, date(2026, 1, 2))["forecast_intervals"].sum() == 0


def test_supplier_plans_count_by_source():
    plans = frame("store_id status source created_at",
                  ("S001", "issued", "model", at("2026-01-01 12:00")),
                  ("S001", "canceled", "rule", at("2026-01-01 09:00")),
                  ("S001", "issued", "model", at("2026-01-02 12:00")))
    kpis = compute_report(inputs(supplier_plans=plans)).stores["S001"]
    assert kpis.supplier_plan_sources == {"rule": 1, "model": 2}
    assert kpis.supplier_plans == {"pending": 0, "issued": 2, "completed": 0, "canceled": 1}


def inputs(**changes) -> ReportInputs:
    empty_plans = frame("store_id status created_at")
    values = dict(
        stores=["S001"], window=Window(date(2026, 1, 1), date(2026, 1, 2)), sim_start=START,
        positions={"S001": datetime(2026, 1, 2, 19, 0, tzinfo=timezone.utc)},  # 1.5 days
        sales=sales(("S001", "SH1", date(2026, 1, 1), 20, 5, 3),
                    ("S001", "SH1", date(2026, 1, 2), 10, 0, 0)),
        waste=None, prices=frame("store_id shelf_id item_price", ("S001", "SH1", 2.5)),
        shelf_events=shelf_events(
            ("S001", "SH1", "pickup", "customer", 10, at("2026-01-02 09:00")),
            ("S001", "SH1", "expired_removal", "restocker", 2, at("2026-01-02 00:01"))),
        wh_events=wh_events(("S001", "SH1", "wh_removal", 1, at("2026-01-02 00:00"))),
        shelf_state=frame("store_id shelf_id current_stock", ("S001", "SH1", 8)),
        wh_state=frame("store_id shelf_id wh_current_stock", ("S001", "SH1", 12)),
        orders=frame("store_id order_id total_qty cutoff_ts"),
        receipts=frame("store_id order_id received_qty created_at"),
        restock_plans=frame("store_id status created_at updated_at",
                            ("S001", "completed", at("2026-01-01 10:00"),
                             at("2026-01-01 10:05"))),
        supplier_plans=empty_plans,
        alerts=frame("store_id alert_type status created_at",
                     ("S001", "refill_request", "resolved", at("2026-01-01 10:00"))))
    return ReportInputs(**{**values, **changes})


def test_the_report_puts_every_kpi_of_a_store_together():
    report = compute_report(inputs())
    kpis = report.stores["S001"]
    assert report.waste_source == WASTE_FROM_EVENTS
    assert (kpis.units_sold, kpis.lost_units, kpis.lost_pct) == (30, 5, pytest.approx(100 / 7))
    assert (kpis.waste_shelf_units, kpis.waste_warehouse_units, kpis.waste_value) == (2, 1, 7.5)
    assert kpis.restock_plans["completed"] == 1 and kpis.alerts_by_type["refill_request"] == 1
    # End of Jan 1: 8 + 12 now, plus what left after it (10 picked, 2 + 1 removed) = 33;
    # Jan 2 (the position's day): 20. 26.5 on average over 30 units / 1.5 days = 20 a day.
    assert kpis.simulated_days == 1.5 and kpis.average_daily_sold == 20.0
    assert kpis.average_stock_units == 26.5 and kpis.stock_cover_days == pytest.approx(1.325)

    ledger = frame("store_id shelf_id waste_date shelf_units warehouse_units",
                   ("S001", "SH1", date(2026, 1, 2), 4, 0))
    from_ledger = compute_report(inputs(waste=ledger))
    assert from_ledger.waste_source == WASTE_FROM_LEDGER
    assert from_ledger.stores["S001"].waste_units == 4


def test_the_total_adds_stores_up_and_recomputes_the_ratios():
    a = Kpis(units_sold=90, lost_units=10, lost_units_wh_empty=4, waste_value=1.5, average_stock_units=100.0,
             average_daily_sold=10.0, simulated_days=7.0, restock_plans={"completed": 2},
             alerts_by_type={"refill_request": 1})
    b = Kpis(units_sold=10, lost_units=90, waste_value=None, average_stock_units=200.0,
             average_daily_sold=20.0, simulated_days=7.0, restock_plans={"completed": 1,
                                                                          "pending": 1},
             alerts_by_type={"refill_request": 2})
    chain = total([a, b])
    assert (chain.units_sold, chain.lost_units, chain.lost_pct) == (100, 100, 50.0)
    assert chain.lost_units_wh_empty == 4
    assert chain.waste_value == 1.5
    assert chain.stock_cover_days == 10.0  # 300 units over 30 a day
    assert chain.restock_plans == {"completed": 3, "pending": 1}
    assert chain.alerts_by_type == {"refill_request": 3}


def test_the_table_has_a_column_per_store_and_the_json_the_same_figures():
    report = compute_report(inputs())
    lines = report.lines()
    assert lines[0].startswith("report: 2026-01-01 to 2026-01-02 (1.50 simulated days, 1 store)")
    assert lines[1].split() == ["S001", "total"]
    rows = {label: values for label, *values in (re.split(r"\s{2,}", line) for line in lines[2:])}
    assert rows["lost sales, units"] == ["5", "5"]
    assert rows["fill rate, % of demand"] == ["85.71%", "85.71%"]
    assert rows["supplier plans by source: model"] == ["0", "0"]
    assert rows["lost sales, % of demand"] == ["14.29%", "14.29%"]
    assert rows["lost sales, warehouse empty, units"] == ["3", "3"]
    assert rows["lost sales, warehouse stocked, units"] == ["2", "2"]
    assert rows["average stock cover, days"] == ["1.32", "1.32"]
    assert rows["alerts by type: refill_request"] == ["1", "1"]
    assert rows["restock time, minutes: median"] == ["5.00", "5.00"]

    as_json = json.loads(json.dumps(report.as_dict()))
    assert as_json["window"] == {"from": "2026-01-01", "to": "2026-01-02"}
    store = as_json["stores"]["S001"]
    assert store == as_json["total"]
    assert store["lost_sales"] == {"units": 5, "pct_of_demand": 14.29,
                                   "warehouse_empty_units": 3, "warehouse_stocked_units": 2}
    assert store["waste"] == {"shelf_units": 2, "warehouse_units": 1, "units": 3, "value": 7.5}
    assert store["stock_cover"]["days"] == 1.32 and store["alerts"]["total"] == 1
    assert store["restock_time_minutes"] == {"p50": 5.0, "p95": 5.0, "plans": 1}
