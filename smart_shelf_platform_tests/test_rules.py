"""Unit tests of the business rules in smart_shelf_platform/rules (pure functions)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from smart_shelf_platform.rules.alerts import (
    alert_id, alert_step, can_transition, furthest_step, should_open,
)
from smart_shelf_platform.rules.allocation import LotStock, allocate_fefo
from smart_shelf_platform.rules.expiry import (
    daily_discount, expired_lots, near_expiry,
)
from smart_shelf_platform.rules.pricing import combined_discount, line_total
from smart_shelf_platform.rules.replenishment import (
    PolicyScope, ShelfPolicy, default_reorder_point, most_specific, needs_refill, plan_refill,
    reference_supplier_order_quantity, refill_quantity, supplier_order_quantity,
)
from smart_shelf_platform.rules.stock import folded_stock

TODAY = date(2026, 1, 10)


def lot(code: str, expiry_in: int, qty: int, received_ago: int = 5) -> LotStock:
    return LotStock(code, TODAY - timedelta(days=received_ago), TODAY + timedelta(days=expiry_in),
                    qty)


# ---- stock ------------------------------------------------------------------------------------


@pytest.mark.parametrize("current, delta, capacity, after", [
    (10, -3, 20, 7), (10, 15, 20, 20), (2, -5, 20, 0), (5, 4, None, 9), (0, -1, None, 0),
])
def test_stock_moves_by_the_net_units_within_zero_and_the_capacity(current, delta, capacity,
                                                                     after):
    assert folded_stock(current, delta, capacity) == after


# ---- FEFO ---------------------------------------------------------------------------------

def test_fefo_takes_earliest_expiry_then_oldest_received_then_code():
    lots = [lot("B3", 9, 10), lot("B1", 2, 3), lot("B2", 2, 4, received_ago=9), lot("B0", 1, 0)]
    # B0 is empty; B2 and B1 expire together, B2 arrived first.
    assert allocate_fefo(lots, 9) == [("B2", 4), ("B1", 3), ("B3", 2)]
    assert allocate_fefo(lots, 100) == [("B2", 4), ("B1", 3), ("B3", 10)]
    assert allocate_fefo(lots, 0) == []
    with pytest.raises(ValueError):
        allocate_fefo(lots, -1)


# ---- shelf refills --------------------------------------------------------------------------

@pytest.mark.parametrize("current, maximum, due", [
    (29, 100, True),    # 29 % < 30 %
    (30, 100, False),   # exactly the threshold: not below it
    (0, 2, True),       # below min qty
    (1, 3, False),      # 33 % and at min qty
])
def test_refill_is_due_below_the_threshold_or_the_minimum(current, maximum, due):
    assert needs_refill(current, maximum, ShelfPolicy()) is due


def test_refill_quantity_reaches_the_target_and_never_exceeds_capacity():
    assert refill_quantity(10, 100, ShelfPolicy()) == 70          # up to 80 %
    assert refill_quantity(10, 7, ShelfPolicy(target_pct=80)) == 0
    # 25 units in carts may come back: the refill leaves room for them.
    assert refill_quantity(10, 100, ShelfPolicy(), in_carts=25) == 65
    assert refill_quantity(2, 18, ShelfPolicy(), in_carts=3) == 13
    assert refill_quantity(0, 7, ShelfPolicy()) == 6               # ceil(5.6)
    assert refill_quantity(0, 10, ShelfPolicy(target_pct=150)) == 10


def test_no_new_plan_while_one_is_in_flight():
    assert plan_refill(5, 100, ShelfPolicy(), plan_in_flight=False) == 75
    assert plan_refill(5, 100, ShelfPolicy(), plan_in_flight=True) == 0
    assert plan_refill(90, 100, ShelfPolicy(), plan_in_flight=False) == 0


def test_the_most_specific_active_policy_wins_and_none_matches_without_a_scope():
    policies = [
        (PolicyScope(None, None, None), "store"),
        (PolicyScope(None, "BEVERAGES", None), "category"),
        (PolicyScope(None, "BEVERAGES", "Water"), "subcategory"),
        (PolicyScope("BEVWAT0001", None, None), "shelf"),
    ]
    assert most_specific(policies, "BEVWAT0001", "BEVERAGES", "Water") == "shelf"
    assert most_specific(policies, "BEVWAT0002", "BEVERAGES", "Water") == "subcategory"
    assert most_specific(policies, "BEVJUI0003", "BEVERAGES", "Juice") == "category"
    assert most_specific(policies, "FISFRE0004", "FISH", "Fresh") == "store"
    assert most_specific(policies[1:], "FISFRE0004", "FISH", "Fresh") is None


# ---- warehouse orders -----------------------------------------------------------------------

def test_default_reorder_point_is_five_percent_of_capacity_at_least_one():
    assert default_reorder_point(400) == 20
    assert default_reorder_point(16) == 1


def test_supplier_orders_are_whole_batches_count_in_transit_and_fit_free_capacity():
    # 5 on hand, reorder point 20, batch 12: order up to >= 20 + 12 -> 27 units -> 3 batches
    assert supplier_order_quantity(5, 0, 20, capacity=200, batch_size=12) == 36
    # what is already on its way counts: 5 + 24 >= 20, nothing to order
    assert supplier_order_quantity(5, 24, 20, capacity=200, batch_size=12) == 0
    # only two batches of room left
    assert supplier_order_quantity(5, 0, 20, capacity=30, batch_size=12) == 24
    assert supplier_order_quantity(0, 0, 20, capacity=10, batch_size=12) == 0


def test_the_reference_supplier_rule_orders_the_gap_in_batches_and_ignores_what_is_on_its_way():
    # 5 on hand, reorder point 20, batch 12: a gap of 15 -> 2 batches (ours orders 3, above)
    assert reference_supplier_order_quantity(5, 20, batch_size=12) == 24
    assert reference_supplier_order_quantity(19, 20, batch_size=12) == 12
    assert reference_supplier_order_quantity(20, 20, batch_size=12) == 0
    with pytest.raises(ValueError):
        reference_supplier_order_quantity(5, 20, batch_size=0)


# ---- expiry and discounts -------------------------------------------------------------------

def test_near_expiry_ignores_empty_and_expired_lots():
    lots = [lot("EMPTY", 1, 0), lot("GONE", -1, 5), lot("SOON", 4, 2), lot("LATER", 30, 9)]
    assert near_expiry(lots, TODAY, window_days=5).batch_code == "SOON"
    assert near_expiry(lots, TODAY, window_days=3) is None


def test_daily_discount_follows_the_ladder_and_does_not_compound():
    assert daily_discount([lot("A", 0, 3), lot("B", 20, 9)], TODAY) == (0.50, 0)
    assert daily_discount([lot("A", 1, 3)], TODAY) == (0.30, 1)
    assert daily_discount([lot("A", 2, 3)], TODAY) is None
    assert daily_discount([lot("A", 0, 0), lot("B", 1, 1)], TODAY) == (0.30, 1)
    first = daily_discount([lot("A", 0, 3)], TODAY)
    assert daily_discount([lot("A", 0, 3)], TODAY) == first  # a re-run changes nothing


def test_expired_lots_are_those_with_units_past_their_date():
    lots = [lot("PAST", -1, 4), lot("TODAY", 0, 4), lot("EMPTY", -3, 0)]
    assert [x.batch_code for x in expired_lots(lots, TODAY)] == ["PAST"]


# ---- prices ---------------------------------------------------------------------------------

def test_discounts_stack_multiplicatively_and_are_capped():
    assert combined_discount(0.30, 0.20) == pytest.approx(0.44)
    assert combined_discount(0.0, 0.0) == 0.0
    assert combined_discount(0.9, 0.9) == 0.95


def test_line_totals_round_half_up_to_the_cent():
    assert line_total(3, Decimal("1.99"), 0.25) == (Decimal("0.2500"), Decimal("4.48"))
    assert line_total(1, Decimal("0.05"), 0.5) == (Decimal("0.5000"), Decimal("0.03"))


# ---- alerts ---------------------------------------------------------------------------------

def test_alert_ids_are_deterministic_per_episode():
    opened = datetime(2026, 1, 1, 9, 30, tzinfo=timezone.utc)
    first = alert_id("refill_request", "S001", "BEVWAT0001", "store", opened)
    assert first == alert_id("refill_request", "S001", "BEVWAT0001", "store", opened)
    assert first != alert_id("refill_request", "S001", "BEVWAT0001", "store",
                             opened + timedelta(minutes=1))
    assert first != alert_id("near_expiry", "S001", "BEVWAT0001", "store", opened)


def test_alert_lifecycle_only_moves_forward():
    assert can_transition("open", "acknowledged") and can_transition("acknowledged", "resolved")
    assert not can_transition("resolved", "open")
    assert not can_transition("acknowledged", "open")


def test_an_alert_keeps_its_furthest_step_and_earliest_creation_whatever_the_order():
    t = datetime(2026, 1, 10, 8, tzinfo=timezone.utc)

    def step(status: str, minutes: int, created: int = 0) -> dict:
        return {"status": status, "updated_at": t + timedelta(minutes=minutes),
                "created_at": t + timedelta(minutes=created)}

    opened, resolved = step("open", 0), step("resolved", 30)
    assert furthest_step(None, opened) == opened
    assert furthest_step(opened, resolved) == resolved
    assert furthest_step(resolved, opened) == resolved, "a late open never reopens it"
    assert furthest_step(step("open", 5), step("open", 9)) == step("open", 9)
    assert furthest_step(resolved, step("open", 0, created=-5))["created_at"] \
        == t - timedelta(minutes=5)


def test_cooldown_keeps_a_flapping_condition_from_reopening_at_once():
    now = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
    assert should_open(True, None, None, now)
    assert not should_open(True, now - timedelta(minutes=5), None, now)     # already open
    assert not should_open(True, None, now - timedelta(minutes=30), now)    # in cooldown
    assert should_open(True, None, now - timedelta(minutes=60), now)
    assert not should_open(False, None, None, now)


def test_an_engine_opens_once_resolves_when_clear_and_waits_out_the_cooldown():
    now = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
    assert alert_step(True, False, None, now) == "open"
    assert alert_step(True, True, None, now) is None               # still low: no second alert
    assert alert_step(False, True, None, now) == "resolve"
    assert alert_step(False, False, None, now) is None
    assert alert_step(True, False, now - timedelta(minutes=10), now) is None   # cooldown
    assert alert_step(True, False, now - timedelta(minutes=61), now) == "open"
