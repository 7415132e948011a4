"""The shelf restocking rules: handling delay, FEFO picks of unexpired lots, refill delay."""

from datetime import date, datetime, timedelta, timezone

from smart_shelf_platform.rules.allocation import LotStock
from smart_shelf_platform.rules.restock import pick_for_plan, plan_due, plan_ready, refill_due

TODAY = date(2026, 1, 10)
NOON = datetime(2026, 1, 10, 12, 0, tzinfo=timezone.utc)


def lot(code: str, expiry: date, qty: int, received: date = date(2026, 1, 1)) -> LotStock:
    return LotStock(code, received, expiry, qty)


def test_a_plan_is_due_after_the_handling_delay_and_refills_arrive_after_theirs():
    assert plan_due(NOON) == NOON + timedelta(seconds=60)
    assert plan_due(NOON, timedelta(minutes=5)) == NOON + timedelta(minutes=5)
    assert refill_due(NOON) == NOON + timedelta(minutes=3)


def test_in_rounds_a_plan_waits_for_a_later_round_than_its_own():
    minute = timedelta(minutes=1)
    assert plan_ready(NOON, NOON + minute) and not plan_ready(NOON, NOON + minute / 2)
    assert plan_ready(NOON, NOON, timedelta(0))
    assert not plan_ready(NOON, NOON, timedelta(0), in_rounds=True)
    assert plan_ready(NOON, NOON + 30 * minute, in_rounds=True)


def test_picks_take_the_earliest_expiry_first_then_the_oldest_received():
    lots = [lot("LATE", date(2026, 3, 1), 10), lot("NEW", date(2026, 2, 1), 5, date(2026, 1, 9)),
            lot("OLD", date(2026, 2, 1), 5, date(2026, 1, 2))]
    assert pick_for_plan(lots, 12, TODAY) == [("OLD", 5), ("NEW", 5), ("LATE", 2)]


def test_expired_and_empty_lots_are_never_picked_but_a_lot_expiring_today_is():
    lots = [lot("EXPIRED", date(2026, 1, 9), 50), lot("EMPTY", date(2026, 1, 11), 0),
            lot("TODAY", TODAY, 3), lot("LATER", date(2026, 1, 20), 4)]
    assert pick_for_plan(lots, 5, TODAY) == [("TODAY", 3), ("LATER", 2)]


def test_a_short_warehouse_gives_what_it_has_and_an_empty_one_nothing():
    assert pick_for_plan([lot("A", date(2026, 2, 1), 3)], 10, TODAY) == [("A", 3)]
    assert pick_for_plan([], 10, TODAY) == []
    assert pick_for_plan([lot("X", date(2026, 1, 1), 9)], 10, TODAY) == []
