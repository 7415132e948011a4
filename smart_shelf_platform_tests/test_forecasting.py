"""Demand forecasting's pure parts on small frames: cutoff intervals, the order-up-to rule,
baselines and metrics against hand-computed values, the training set's point-in-time rows, the
model's quantiles and artifact, the promotion gate and the cutoff sensor's arithmetic."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pytest

from smart_shelf_platform import quality
from smart_shelf_platform.ml import baselines, metrics
from smart_shelf_platform.ml.cutoff import gate
from smart_shelf_platform.ml.forecast import METHOD_FALLBACK, METHOD_MODEL, forecast_cutoff, order_rows
from smart_shelf_platform.ml.intervals import cutoff_window, cutoffs_between, max_horizon
from smart_shelf_platform.ml.model import (
    MAX_ROUNDS, DemandModel, ModelArtifactError, NotEnoughHistory, censored_demand,
    interval_quantiles,
)
from smart_shelf_platform.ml.training_set import (
    FEATURE_COLUMNS, PROMOTION_COLUMNS, build_rows, missing_features, training_rows,
)
from smart_shelf_platform.rules.supplier import SupplierSchedule, order_up_to_units
from smart_shelf_platform.settings import Settings

UTC = timezone.utc
DEFAULT = SupplierSchedule.parse("Sun,Tue,Thu", "12:00", "Mon,Wed,Fri", "08:00")
D0 = date(2026, 1, 1)  # a Thursday


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


# ---- intervals -----------------------------------------------------------------------------


@pytest.mark.parametrize("cutoff, origin, lead, interval", [
    (date(2026, 1, 4), date(2026, 1, 3), [date(2026, 1, 4)], [date(2026, 1, 5), date(2026, 1, 6)]),
    (date(2026, 1, 6), date(2026, 1, 5), [date(2026, 1, 6)], [date(2026, 1, 7), date(2026, 1, 8)]),
    (date(2026, 1, 8), date(2026, 1, 7), [date(2026, 1, 8)],
     [date(2026, 1, 9), date(2026, 1, 10), date(2026, 1, 11)]),
])
def test_each_default_cutoff_covers_from_its_slot_to_the_next_cutoffs_slot(cutoff, origin, lead,
                                                                          interval):
    window = cutoff_window(DEFAULT, at(cutoff))
    assert (window.origin, window.lead_days, window.interval_days) == (origin, lead, interval)
    assert window.horizon == (interval[-1] - origin).days


def test_a_custom_weekly_schedule_covers_a_week_after_a_two_day_lead():
    weekly = SupplierSchedule.parse("Mon", "18:00", "Thu", "06:00")
    window = cutoff_window(weekly, at(date(2026, 1, 5), 18))  # Monday
    assert window.origin == date(2026, 1, 4)
    assert window.lead_days == [date(2026, 1, 5), date(2026, 1, 6), date(2026, 1, 7)]
    assert window.interval_days == [date(2026, 1, 8) + timedelta(days=i) for i in range(7)]
    assert max_horizon(weekly, at(D0)) == 10


def test_a_minute_that_is_not_a_cutoff_is_refused_and_cutoffs_are_listed_in_order():
    with pytest.raises(ValueError, match="not a supplier cutoff"):
        cutoff_window(DEFAULT, at(date(2026, 1, 5)))
    assert cutoffs_between(DEFAULT, at(D0, 0), at(date(2026, 1, 8))) == [
        at(D0), at(date(2026, 1, 4)), at(date(2026, 1, 6)), at(date(2026, 1, 8))]
    assert max_horizon(DEFAULT, at(D0)) == 4


# ---- the order-up-to rule ----------------------------------------------------------------


def test_an_order_tops_the_position_at_delivery_up_to_the_target_in_whole_batches():
    # on hand 10 + 5 less 8 sold before the delivery, 6 on order: position 13; target 40
    # needs 27 units: 5 batches of 6 (30), which fit 100 - 5 - 6 = 89 free.
    assert order_up_to_units(40, 10, 5, 6, 8.0, 6, 100) == 30
    # the free capacity cuts it to whole batches: 20 - 5 - 6 = 9 free, one batch
    assert order_up_to_units(40, 10, 5, 6, 8.0, 6, 20) == 6
    # a position above the target orders nothing; no warehouse capacity, nothing either
    assert order_up_to_units(10, 10, 5, 6, 0.0, 6, 100) == 0
    assert order_up_to_units(40, 0, 0, 0, 0.0, 6, 0) == 0


def test_lead_demand_beyond_the_stock_does_not_make_the_position_negative():
    # 5 on hand, 30 expected to sell before the delivery: 0 left, not -25; 12 covers the target
    assert order_up_to_units(12, 5, 0, 0, 30.0, 4, 100) == 12


def test_a_perishable_target_is_capped_by_what_sells_before_a_new_lot_expires():
    assert order_up_to_units(40, 0, 0, 0, 0.0, 5, 100, sellable_before_expiry=11.0) == 15
    assert order_up_to_units(40, 0, 0, 0, 0.0, 5, 100, sellable_before_expiry=None) == 40


# ---- metrics --------------------------------------------------------------------------------


def test_metrics_against_hand_computed_values():
    actual, forecast = [10, 0, 5, 5], [8, 1, 5, 8]
    assert metrics.wape(actual, forecast) == pytest.approx(6 / 20)
    assert metrics.bias(actual, forecast) == pytest.approx(2 / 20)
    assert metrics.mase(actual, forecast, [2, 1, 1, np.nan]) == pytest.approx(3 / 4)
    # q = 0.9: losses 0.9*2, 0.1*1, 0, 0.1*3 = 2.2 over 4 rows, divided by the mean actual 5
    assert metrics.pinball(actual, forecast, 0.9) == pytest.approx(2.2 / 4 / 5)
    assert metrics.coverage(actual, forecast) == pytest.approx(3 / 4)
    assert np.isnan(metrics.wape([0, 0], [1, 1]))
    with pytest.raises(ValueError):
        metrics.wape([1], [1, 2])


# ---- panels ---------------------------------------------------------------------------------


def panel_of(sales: dict[str, list[int]], first: date = D0, stockouts: dict | None = None,
             store: str = "S001") -> pd.DataFrame:
    rows = []
    for shelf, series in sales.items():
        for i, sold in enumerate(series):
            rows.append({
                "store_id": store, "shelf_id": shelf, "feature_date": first + timedelta(days=i),
                "item_category": "DAIRY", "item_price": 2.5, "sales_qty": sold,
                "stockout_events": (stockouts or {}).get((shelf, i), 0), "people_count": 800,
                "discount": 0.0, "current_stock_shelf": 10, "current_stock_warehouse": 20,
                "pending_supplier_qty": 0, "warehouse_capacity": 60, "standard_batch_size": 6})
    return pd.DataFrame(rows)


NO_PROMOTIONS = pd.DataFrame(columns=list(PROMOTION_COLUMNS))


def test_seasonal_naive_takes_the_same_weekday_of_the_latest_known_week():
    panel = panel_of({"A": list(range(1, 15))})  # day i sells i + 1
    origin = D0 + timedelta(days=13)
    days = [origin + timedelta(days=2), origin + timedelta(days=8)]  # one and two weeks back
    # day 15 looks back one week to day 8 (sells 9); day 21 two weeks, to day 7 (sells 8)
    assert baselines.seasonal_naive(panel, origin, days).loc[("S001", "A")] == 9 + 8


def test_moving_averages_and_tsb_against_hand_computed_values():
    panel = panel_of({"A": [0] * 7 + [1, 2, 3, 4, 5, 6, 7], "B": [0, 0, 4, 0, 0, 0, 2]})
    origin = D0 + timedelta(days=13)
    days = [origin + timedelta(days=1), origin + timedelta(days=2)]
    assert baselines.moving_average(panel, origin, days, 7).loc[("S001", "A")] == 4 * 2
    assert baselines.moving_average(panel, origin, days, 28).loc[("S001", "A")] == 2 * 2
    # TSB on 0, 0, 4, 0, 0, 0, 2 (alpha = beta = 0.1): probability starts at 0, size at 4;
    # days 2..7 update p to 0, 0.1, 0.09, 0.081, 0.0729, 0.16561; the size to 4 then 3.8.
    assert baselines.tsb_daily([0, 0, 4, 0, 0, 0, 2]) == pytest.approx(0.16561 * 3.8)
    assert np.isnan(baselines.tsb_daily([]))
    scale = baselines.naive_scale(panel, origin, 3)
    assert scale.loc[("S001", "A")] == pytest.approx(4 * 3)  # |1-0| .. |7-0| average 4
    assert np.isnan(scale.loc[("S001", "B")])  # one week of history: nothing to compare


def test_the_oracle_shares_the_expected_customers_by_visibility_and_discount():
    catalogue = pd.DataFrame({"store_id": ["S001"] * 2, "shelf_id": ["A", "B"],
                              "item_visibility": [1.0, 3.0]})
    monday = date(2026, 1, 5)
    discounts = pd.DataFrame({"store_id": ["S001"], "shelf_id": ["A"], "day": [monday],
                              "discount": [1.0]})  # doubles A's weight: 2 against 3
    daily = baselines.oracle_daily(catalogue, discounts, [monday], units_per_customer=2.0)
    customers = baselines.expected_customers(monday)
    assert customers == pytest.approx(1000 * 93 / 107.7 * 0.8)
    assert daily.set_index("shelf_id")["expected"].to_dict() == pytest.approx(
        {"A": customers * 2 * 2 / 5, "B": customers * 2 * 3 / 5})
    # pickups (0.85 of 13.3 actions of 1.5 units) less putbacks: between 10 and 17 units
    assert 10 < baselines.net_units_per_customer(samples=4000) < 0.85 * 13.3 * 1.5


# ---- the training set -------------------------------------------------------------------


def weekly_panel(days: int = 35, shelves: int = 12, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    weekday = [1.0, 0.9, 1.1, 1.0, 1.3, 1.5, 1.2]
    sales, stockouts = {}, {}
    for s in range(shelves):
        level = 2 + s
        series = [int(rng.poisson(level * weekday[(D0 + timedelta(days=i)).weekday()]))
                  for i in range(days)]
        for i in range(days):
            if rng.random() < 0.1:
                stockouts[(f"SH{s:02d}", i)] = 1
                series[i] //= 2  # an empty shelf sells less than shoppers wanted
        sales[f"SH{s:02d}"] = series
    return panel_of(sales, stockouts=stockouts)


def test_rows_made_at_an_origin_do_not_change_when_later_days_arrive():
    panel = weekly_panel()
    origin = D0 + timedelta(days=20)
    days = [origin + timedelta(days=h) for h in (1, 2, 3)]
    known = panel.loc[panel["feature_date"] <= origin]
    then, now = build_rows(known, NO_PROMOTIONS, origin, days), build_rows(panel, NO_PROMOTIONS,
                                                                            origin, days)
    pd.testing.assert_frame_equal(then[list(FEATURE_COLUMNS)], now[list(FEATURE_COLUMNS)])
    assert then["sales_qty"].isna().all() and now["sales_qty"].notna().all()  # labels only later
    with pytest.raises(ValueError, match="after the origin"):
        build_rows(panel, NO_PROMOTIONS, origin, [origin])


def test_a_forecast_for_a_past_cutoff_is_the_same_after_later_data_is_added():
    panel = weekly_panel()
    window = cutoff_window(DEFAULT, at(date(2026, 1, 25)))  # a Sunday, origin Jan 24
    horizon = max_horizon(DEFAULT, window.cutoff)

    def forecast(history: pd.DataFrame) -> pd.DataFrame:
        model = DemandModel.fit(training_rows(history, NO_PROMOTIONS, window.origin, horizon),
                                window.origin)
        return forecast_cutoff(model, history, NO_PROMOTIONS, window)

    known = panel.loc[panel["feature_date"] <= window.origin]
    pd.testing.assert_frame_equal(forecast(known), forecast(panel))


def test_censored_days_are_flagged_lower_bounds_and_in_stock_means_skip_them():
    panel = panel_of({"A": [4] * 8 + [0, 9]}, stockouts={("A", 8): 1})
    rows = training_rows(panel, NO_PROMOTIONS, D0 + timedelta(days=9), horizon=2)
    flags = rows.groupby("day")["censored"].first()
    assert flags[D0 + timedelta(days=8)] and not flags[D0 + timedelta(days=9)]
    served = build_rows(panel, NO_PROMOTIONS, D0 + timedelta(days=9), [D0 + timedelta(days=10)])
    assert served["mean_7d"].item() == pytest.approx((4 * 5 + 9) / 6)  # day 8 left out
    assert served["censored_share_7d"].item() == pytest.approx(1 / 7)


def test_busy_days_that_ran_empty_still_raise_the_model_s_forecast():
    """Shelves that run empty on their busy days (Fridays and Saturdays sell 12, but sold 9
    before running out): the model learns them as lower bounds, not as missing, so it forecasts
    those days above a model that never saw them."""
    busy = {4, 5}
    sales, stockouts = {}, {}
    for s in range(12):
        series = []
        for i in range(35):
            weekend = (D0 + timedelta(days=i)).weekday() in busy
            series.append(9 if weekend else 3)
            if weekend:
                stockouts[(f"SH{s:02d}", i)] = 1
        sales[f"SH{s:02d}"] = series
    panel = panel_of(sales, stockouts=stockouts)
    window = cutoff_window(DEFAULT, at(date(2026, 2, 5)))  # Thu: Fri-Sun interval
    rows = training_rows(panel, NO_PROMOTIONS, window.origin, 4)
    with_floors = DemandModel.fit(rows, window.origin)
    uncensored = rows.loc[~rows["censored"]].assign(censored=False)
    without = DemandModel.fit(uncensored, window.origin)
    forecast = forecast_cutoff(with_floors, panel, NO_PROMOTIONS, window)["forecast_mean"].sum()
    blind = forecast_cutoff(without, panel, NO_PROMOTIONS, window)["forecast_mean"].sum()
    assert forecast > 1.3 * blind


def test_a_censored_day_s_demand_is_its_poisson_expectation_above_what_it_sold():
    """E[Y | Y >= s] = mean P(Y >= s - 1) / P(Y >= s), by hand with e = exp(1)."""
    mean = np.array([1.0, 1.0, 2.0, 0.5])
    sold = np.array([1.0, 2.0, 0.0, 60.0])
    expected = censored_demand(mean, sold)
    assert expected[0] == pytest.approx(1 / (1 - 1 / np.e))  # 1.5820: P(Y>=0)=1, P(Y>=1)=1-1/e
    assert expected[1] == pytest.approx((1 - 1 / np.e) / (1 - 2 / np.e))  # 2.3922
    assert expected[2] == pytest.approx(2.0)  # started empty, sold nothing: just the mean
    assert 60.0 <= expected[3] < 60.01  # far above the mean: about what it sold


def test_planned_promotions_reach_the_rows_of_the_days_they_cover():
    panel = panel_of({"A": [3] * 10})
    promotions = pd.DataFrame([{"store_id": "S001", "shelf_id": "A", "week_start": date(2026, 1, 12),
                                "week_end": date(2026, 1, 18), "discount_pct": 0.2}])
    origin = D0 + timedelta(days=9)  # Jan 10
    rows = build_rows(panel, promotions, origin, [date(2026, 1, 11), date(2026, 1, 12)])
    assert rows.set_index("day")["planned_discount"].to_dict() == {
        date(2026, 1, 11): 0.0, date(2026, 1, 12): 0.2}


def test_a_missing_or_nan_feature_column_is_named():
    rows = build_rows(weekly_panel(days=10), NO_PROMOTIONS, D0 + timedelta(days=9),
                      [D0 + timedelta(days=10)])
    assert missing_features(rows.assign(sales_qty=1.0)) == {}
    broken = rows.drop(columns=["mean_7d"]).assign(item_price=np.nan, sales_qty=1.0)
    assert missing_features(broken) == {"mean_7d": -1, "item_price": len(rows)}


# ---- the model --------------------------------------------------------------------------


def test_too_little_history_trains_nothing_and_new_shelves_fall_back():
    panel = weekly_panel(days=5)
    window = cutoff_window(DEFAULT, at(date(2026, 1, 6)))  # origin Jan 5: 5 days known
    with pytest.raises(NotEnoughHistory):
        DemandModel.fit(training_rows(panel, NO_PROMOTIONS, window.origin, 4), window.origin)
    fallback = forecast_cutoff(None, panel, NO_PROMOTIONS, window)
    assert set(fallback["method"]) == {METHOD_FALLBACK}
    means = panel.groupby("shelf_id")["sales_qty"].mean()
    assert fallback.set_index("shelf_id")["forecast_mean"].to_dict() == pytest.approx(
        {s: means[s] * 2 for s in means.index}, rel=0.35)  # in-stock mean, censored days out


def test_quantiles_are_whole_ordered_and_widen_with_dispersion():
    mean = np.array([0.0, 0.4, 5.0, 40.0])
    narrow, wide = interval_quantiles(mean, 0.0), interval_quantiles(mean, 0.5)
    for q in (narrow, wide):
        assert all((q[a] <= q[b]).all() for a, b in [(0.5, 0.8), (0.8, 0.9), (0.9, 0.95)])
        assert all((v == np.round(v)).all() and (v >= 0).all() for v in q.values())
    assert (wide[0.95] >= narrow[0.95]).all() and wide[0.95][-1] > narrow[0.95][-1]


def test_the_model_beats_a_flat_guess_and_its_artifact_round_trips(tmp_path):
    panel = weekly_panel()
    window = cutoff_window(DEFAULT, at(date(2026, 2, 1)))
    model = DemandModel.fit(training_rows(panel, NO_PROMOTIONS, window.origin, 4), window.origin)
    forecast = forecast_cutoff(model, panel, NO_PROMOTIONS, window)
    assert set(forecast["method"]) == {METHOD_MODEL}
    actual = panel.loc[panel["feature_date"].isin(window.interval_days)].groupby("shelf_id")[
        "sales_qty"].sum()
    by_shelf = forecast.set_index("shelf_id")
    flat = np.full(len(actual), actual.mean())
    assert metrics.wape(actual, by_shelf.loc[actual.index, "forecast_mean"]) < metrics.wape(
        actual, flat)
    path = tmp_path / "model.json"
    model.save(path)
    again = DemandModel.load(path)
    assert (again.phi, again.trained_until) == (model.phi, model.trained_until)
    pd.testing.assert_frame_equal(forecast_cutoff(again, panel, NO_PROMOTIONS, window), forecast)
    orders = order_rows(forecast, panel, window, 0.9)
    assert (orders["order_units"] % orders["batch_size"] == 0).all()
    assert (orders["order_units"] <= 60 - 20).all()  # within the free warehouse capacity


def test_the_final_fit_takes_the_rounds_its_calibration_stopped_at_and_repeats_exactly():
    panel = weekly_panel()
    window = cutoff_window(DEFAULT, at(date(2026, 2, 1)))
    rows = training_rows(panel, NO_PROMOTIONS, window.origin, 4)
    model, again = (DemandModel.fit(rows, window.origin) for _ in range(2))
    assert 1 <= model.params["rounds"] <= MAX_ROUNDS
    assert model.booster.num_boosted_rounds() == model.params["rounds"]
    assert (again.params, again.phi) == (model.params, model.phi)
    np.testing.assert_array_equal(again.predict_daily(rows), model.predict_daily(rows))


def test_a_missing_or_corrupt_artifact_is_an_error_naming_the_file(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(ModelArtifactError, match="nope.json does not exist"):
        DemandModel.load(missing)
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text('{"learner": ')
    with pytest.raises(ModelArtifactError, match="corrupt.json cannot be read"):
        DemandModel.load(corrupt)


# ---- the gate, the checks, the partitions -----------------------------------------------


def summary_of(**wape: float) -> pd.DataFrame:
    return pd.DataFrame({"wape": wape})


def test_the_gate_promotes_only_a_model_that_beats_every_baseline_and_the_champion():
    baselines_wape = {"seasonal_naive": 0.4, "moving_average_7d": 0.35,
                      "moving_average_28d": 0.33, "tsb": 0.2}
    assert gate(summary_of(model=0.3, **baselines_wape), None).passed  # TSB is not in the gate
    assert gate(summary_of(model=0.3, **baselines_wape), {"model": {"wape": 0.31}}).passed
    lost = gate(summary_of(model=0.34, **baselines_wape), {"model": {"wape": 0.2}})
    assert not lost.passed and len(lost.reasons) == 2
    assert any("moving_average_28d" in r for r in lost.reasons)
    assert any("champion" in r for r in lost.reasons)
    assert not gate(pd.DataFrame(), None).passed


def test_prediction_quality_rules_catch_disordered_quantiles_and_oversized_orders():
    rows = pa.table({"store_id": ["S001"] * 3, "shelf_id": ["A", "B", "C"],
                     "q50": [1, 5, 2], "q80": [2, 4, 2], "q90": [3, 6, None],
                     "order_units": [12, 6, 7], "order_batches": [2, 1, 1], "batch_size": [6, 6, 7],
                     "wh_capacity": [30, 10, 10], "wh_on_hand": [10, 0, 0], "on_order": [6, 6, 0]})
    ordered = quality.quantiles_ordered(rows, ["q50", "q80", "q90"], ["store_id", "shelf_id"])
    assert not ordered.passed and ordered.metadata["offending_keys"] == ["S001|B", "S001|C"]
    fits = quality.orders_fit_capacity(rows, ["store_id", "shelf_id"])
    assert not fits.passed and fits.metadata["offending_keys"] == ["S001|B"]  # 6 > 10 - 6 free


def test_cutoff_partitions_follow_the_configured_schedule_and_the_sensor_requests_each_once():
    from smart_shelf_platform.defs.forecasting.sensors import cutoffs_to_request
    from smart_shelf_platform.defs.partitions import CUTOFF_CRON, cutoff_cron, cutoff_partitions

    assert cutoff_cron(DEFAULT) == CUTOFF_CRON
    assert cutoff_cron(SupplierSchedule.parse("Sat,Mon", "18:30", "Tue", "06:00")) == (
        "30 18 * * 1,6")
    cutoffs = cutoff_partitions(at(D0, 7))
    hour = timedelta(hours=1)
    # The first day's cutoff (Thu 01-01 12:00) has no complete day behind it: never requested.
    assert cutoffs_to_request(cutoffs, None, at(D0, 11), hour) == []
    assert cutoffs_to_request(cutoffs, None, at(date(2026, 1, 4), 10), hour) == []
    assert cutoffs_to_request(cutoffs, None, at(date(2026, 1, 4), 11), hour) == [
        "2026-01-04-12:00"]
    assert cutoffs_to_request(cutoffs, None, at(date(2026, 1, 6), 11), hour) == [
        "2026-01-04-12:00", "2026-01-06-12:00"]
    assert cutoffs_to_request(cutoffs, "2026-01-04-12:00", at(date(2026, 1, 6), 11), hour) == [
        "2026-01-06-12:00"]
    assert cutoffs_to_request(cutoffs, "2026-01-06-12:00", at(date(2026, 1, 6), 11), hour) == []
    # A simulation starting in the evening: the first cutoff after its first midnight is due.
    evening = cutoff_partitions(at(D0, 21), cutoff_cron(
        SupplierSchedule.parse("Fri", "00:30", "Fri", "01:30")))
    assert cutoffs_to_request(evening, None, at(date(2026, 1, 2), 0), hour) == [
        "2026-01-02-00:30"]


def test_a_due_cutoff_waits_for_its_origin_s_features_and_the_previous_training_run():
    from smart_shelf_platform.defs.forecasting.sensors import waiting_for

    key, origin, previous = "2026-01-06-12:00", "2026-01-05", "2026-01-04-12:00"
    assert "features of 2026-01-05" in waiting_for(key, origin, previous, {"2026-01-04"}, True)
    assert "training run of cutoff 2026-01-04-12:00" in waiting_for(
        key, origin, previous, {"2026-01-05"}, False)
    assert waiting_for(key, origin, previous, {"2026-01-05"}, True) is None
    assert waiting_for(key, origin, None, {"2026-01-05"}, False) is None  # the first cutoff


def test_the_supplier_feed_counts_orders_on_their_way_at_a_moment_and_serialises_forecasts(
        tmp_path):
    from deltalake import write_deltalake

    from smart_shelf_platform.contracts.catalogue import DELTA_TABLES_BY_PATH
    from smart_shelf_platform.ml import supplier_feed

    spec = DELTA_TABLES_BY_PATH[supplier_feed.ORDERS_PATH]
    t = lambda day, hour: datetime(2026, 1, day, hour, tzinfo=timezone.utc)  # noqa: E731
    orders = pd.DataFrame({
        "store_id": ["S001"] * 5, "order_id": [f"o{i}" for i in range(5)],
        "shelf_id": ["A", "A", "B", "C", "D"], "delivery_date": [date(2026, 1, 5)] * 5,
        "total_qty": [10, 20, 30, 40, 50], "standard_batch_size": [10] * 5,
        # A: one order still issued and one delivered after the moment (both on their way);
        # B: delivered before it; C: placed after it; D: canceled.
        "status": ["issued", "delivered", "delivered", "issued", "canceled"],
        "cutoff_ts": [t(4, 12), t(1, 12), t(1, 12), t(6, 12), t(4, 12)],
        "delivery_ts": [t(5, 8), t(2, 8), t(2, 8), t(7, 8), t(5, 8)],
        "created_at": [t(4, 12), t(1, 12), t(1, 12), t(6, 12), t(4, 12)],
        "updated_at": [t(4, 12), t(6, 8), t(2, 8), t(6, 12), t(4, 13)]})
    write_deltalake(str(tmp_path / spec.path), pa.Table.from_pandas(
        orders, schema=spec.record.arrow_schema(), preserve_index=False))
    on_order = supplier_feed.on_order_at(str(tmp_path), t(5, 0))
    assert on_order.to_dict() == {("S001", "A"): 30}

    (record,) = supplier_feed.records(pd.DataFrame([{
        **{f: None for f in supplier_feed.ML_PREDICTION.field_names},
        "store_id": "S001", "shelf_id": "A", "cutoff_ts": pd.Timestamp(t(6, 12)),
        "cutoff_date": date(2026, 1, 6), "q90": np.int64(14), "order_quantile": 0.9,
        "lead_mean": float("nan")}]))
    decoded = json.loads(orjson.dumps(record))  # as the Publisher sends it
    assert supplier_feed.TOPIC.message_key(record) == "S001|A|2026-01-06T12:00:00Z"
    assert (decoded["cutoff_ts"], decoded["cutoff_date"], decoded["q90"], decoded["lead_mean"]) == (
        "2026-01-06T12:00:00Z", "2026-01-06", 14, None)


def test_production_schedules_run_the_features_after_midnight_and_each_cutoff_at_its_lead(
        monkeypatch):
    import dagster as dg

    from smart_shelf_platform.definitions import build_definitions
    from smart_shelf_platform.defs.forecasting.sensors import cutoff_key_at, production_schedules
    from smart_shelf_platform.defs.partitions import cutoff_partitions

    cutoffs = cutoff_partitions(at(D0, 7))
    schedules = {s.name: s for s in production_schedules(cutoffs, 60)}
    assert set(schedules) == {"daily_features_schedule", "cutoff_training_job_schedule",
                              "cutoff_forecast_job_schedule"}
    training = schedules["cutoff_training_job_schedule"]
    assert training.cron_schedule == "0 11 * * 0,2,4"  # an hour before Sun/Tue/Thu 12:00
    assert schedules["daily_features_schedule"].cron_schedule == "30 0 * * *"
    assert cutoff_key_at(cutoffs, at(date(2026, 1, 6), 11), 60) == "2026-01-06-12:00"
    with pytest.raises(ValueError, match="before the cutoff's day"):
        production_schedules(cutoff_partitions(at(D0, 7)), 13 * 60)
    monkeypatch.setenv("SMART_SHELF_POSTGRES_WRITER_PASSWORD", "from-a-secret")
    monkeypatch.setenv("SMART_SHELF_REDIS_PASSWORD", "from-a-secret")
    definitions = build_definitions(Settings(env="prod"))
    dg.Definitions.validate_loadable(definitions)  # the schedules name jobs that exist
    assert {s.name for s in definitions.get_repository_def().schedule_defs} == set(schedules)
    assert not build_definitions(Settings()).get_repository_def().schedule_defs  # local: none


def test_the_dispersion_is_the_smallest_whose_quantile_covers_its_share_of_fresh_sums():
    from smart_shelf_platform.ml.model import coverage_dispersion

    rng = np.random.default_rng(7)
    mean = rng.choice([0.3, 1.0, 4.0, 25.0], size=4000)  # slow movers and fast ones
    n = 1 / 0.4

    def draw() -> np.ndarray:
        return rng.negative_binomial(n, n / (n + mean)).astype("float64")

    phi = coverage_dispersion(draw(), mean, 0.9)
    fresh = draw()
    covered = (fresh <= interval_quantiles(mean, phi, (0.9,))[0.9]).mean()
    assert 0.88 <= covered <= 0.93
    assert coverage_dispersion(np.zeros(5), np.ones(5), 0.9) == 0.0  # Poisson covers already
