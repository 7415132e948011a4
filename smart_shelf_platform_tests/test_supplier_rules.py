"""The supplier rules: cutoffs and delivery slots, order quantities, shelf life per category."""

from datetime import date, datetime, time, timedelta, timezone

import pytest

from smart_shelf_platform.rules.supplier import (
    ShelfLife, SupplierSchedule, forecast_or_rule, order_quantity, parse_weekdays,
)

DEFAULT = SupplierSchedule.parse("Sun,Tue,Thu", "12:00", "Mon,Wed,Fri", "08:00")


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment of the week of Mon 2026-01-05 (day 5) .. Sun 2026-01-11 (day 11)."""
    return datetime(2026, 1, day, hour, minute, tzinfo=timezone.utc)


def test_weekdays_parse_monday_first_and_the_schedule_from_settings_text():
    assert parse_weekdays("Sun,Tue,Thu") == {6, 1, 3}
    assert parse_weekdays("Mon, Fri") == {0, 4}
    assert DEFAULT.cutoff_time == time(12, 0) and DEFAULT.delivery_days == {0, 2, 4}
    with pytest.raises(ValueError):
        parse_weekdays("Funday")


@pytest.mark.parametrize("moment, cutoff", [
    (utc(5, 9), utc(6, 12)),              # Mon -> Tue
    (utc(6, 11, 59), utc(6, 12)),         # Tue just before
    (utc(6, 12), utc(6, 12)),             # Tue at the cutoff: that cutoff
    (utc(6, 12, 1), utc(8, 12)),          # Tue just after -> Thu
    (utc(7, 0), utc(8, 12)),              # Wed -> Thu
    (utc(9, 12), utc(11, 12)),            # Fri -> Sun
    (utc(10, 23, 59), utc(11, 12)),       # Sat -> Sun
    (utc(11, 12, 1), utc(13, 12)),        # Sun after -> next Tue
])
def test_next_cutoff_is_at_or_after_the_moment(moment, cutoff):
    assert DEFAULT.next_cutoff(moment) == cutoff


@pytest.mark.parametrize("cutoff, slot", [
    (utc(11, 12), utc(12, 8)),            # Sun 12:00 -> Mon 08:00 (20 h lead time)
    (utc(6, 12), utc(7, 8)),              # Tue -> Wed
    (utc(8, 12), utc(9, 8)),              # Thu -> Fri
    (utc(5, 8), utc(7, 8)),               # strictly after: Mon 08:00 -> Wed
    (utc(5, 7, 59), utc(5, 8)),
    (utc(9, 8, 1), utc(12, 8)),           # Fri after the slot -> next Mon
])
def test_next_delivery_is_the_first_slot_strictly_after(cutoff, slot):
    assert DEFAULT.next_delivery(cutoff) == slot


def test_cutoff_and_delivery_minutes_are_recognised_on_their_days_only():
    cutoffs = [m for d in range(5, 12) for m in (utc(d, 12), utc(d, 8))
               if DEFAULT.is_cutoff(m)]
    deliveries = [m for d in range(5, 12) for m in (utc(d, 12), utc(d, 8))
                  if DEFAULT.is_delivery(m)]
    assert cutoffs == [utc(6, 12), utc(8, 12), utc(11, 12)]
    assert deliveries == [utc(5, 8), utc(7, 8), utc(9, 8)]
    assert not DEFAULT.is_cutoff(utc(6, 12, 1))


def test_a_custom_schedule_with_two_cutoffs_before_one_slot():
    daily = SupplierSchedule.parse("Mon,Tue,Wed,Thu,Fri,Sat,Sun", "18:30", "Wed", "06:00")
    assert daily.next_delivery(utc(5, 18, 30)) == daily.next_delivery(utc(6, 18, 30)) \
        == utc(7, 6)
    assert daily.next_delivery(utc(7, 18, 30)) == utc(14, 6)


def test_orders_round_up_to_whole_batches():
    assert order_quantity(24, 24, 1000, 0, 0) == 24
    assert order_quantity(25, 24, 1000, 0, 0) == 48
    assert order_quantity(1, 24, 1000, 0, 0) == 24
    assert order_quantity(0, 24, 1000, 0, 0) == 0


def test_orders_fit_the_free_capacity_counting_units_on_their_way():
    # capacity 100, 40 on hand: 60 free -> 2 batches of 24 at most
    assert order_quantity(96, 24, 100, 40, 0) == 48
    # 30 more already ordered: 30 free -> 1 batch
    assert order_quantity(96, 24, 100, 40, 30) == 24
    # less than a batch free: nothing
    assert order_quantity(96, 24, 100, 40, 40) == 0
    # over-full (a stale on-hand figure) never gives a negative order
    assert order_quantity(24, 24, 100, 90, 30) == 0
    with pytest.raises(ValueError):
        order_quantity(10, 0, 100, 0, 0)


def spans(category: str, subcategory: str, *days: int) -> list[tuple]:
    received = date(2026, 1, 1)
    return [(category, subcategory, received, received + timedelta(days=d)) for d in days]


def test_shelf_life_is_the_median_span_of_the_subcategory_or_of_the_category():
    life = ShelfLife.from_lots(
        spans("FISH", "SALMON", 8, 9, 10, 11, 30)          # enough lots: its own median
        + spans("FISH", "TUNA", 2)                         # one odd lot: the category decides
        + spans("CANNED GOODS", "BEANS", 400, 500, 600, 700, 800, 900))
    assert life.days("FISH", "SALMON") == 10
    assert life.days("FISH", "TUNA") == 9                  # median_low of the 6 fish lots
    assert life.days("FISH", "COD") == 9                   # unseen subcategory
    assert life.days("CANNED GOODS", "BEANS") == 600
    assert life.expiry("FISH", "SALMON", date(2026, 1, 5)) == date(2026, 1, 15)
    with pytest.raises(KeyError, match="SPACE FOOD"):
        life.days("SPACE FOOD", "ANY")


def test_shelf_life_is_at_least_a_day():
    life = ShelfLife.from_lots(spans("BREAD", "FRESH", 0, 0, 0, 0, 0))
    assert life.days("BREAD", "FRESH") == 1


def test_reference_lots_give_perishables_days_and_the_rest_months(settings):
    """On the generated reference data: fresh categories keep days, dry goods a year or more
    (the reference system gave every delivery 365 days)."""
    from streaming import reference
    from streaming.supplier_manager import reference_shelf_life

    profiles = reference.shelf_profiles(settings)
    life = reference_shelf_life(settings, profiles)
    for category in ("FISH", "MEAT", "REFRIGERATED", "FRUITS AND VEGETABLES"):
        assert 2 <= life.by_category[category] <= 20, category
    for category in ("CANNED GOODS", "PASTA AND RICE", "WINES"):
        assert life.by_category[category] >= 365, category


def test_the_forecast_orders_the_shelves_it_serves_and_leaves_the_rest_to_the_rule():
    model = forecast_or_rule(["p1", "p2"], "model", 40)
    assert (model.source, model.canceled, model.model_units) == ("model", ("p1", "p2"), 40)
    nothing = forecast_or_rule(["p1"], "model", 0)
    assert (nothing.source, nothing.canceled, nothing.model_units) == ("model", ("p1",), 0)
    for method in ("fallback_history", None):  # too little history or no champion; no forecast
        rule = forecast_or_rule(["p1"], method, 40)
        assert (rule.source, rule.canceled, rule.model_units) == ("rule", (), 0)
