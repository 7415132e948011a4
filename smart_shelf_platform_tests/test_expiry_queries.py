"""The expiry loop's queries on the real stack, fed crafted lots, removal reports and ticks:
the daily discount manager and the removal scheduler."""

from __future__ import annotations

import dataclasses
import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import jsonschema
import pytest

from smart_shelf_platform.contracts.events import ALERT
from smart_shelf_platform_tests.streaming_support import (
    STORE, consume_all, delta_rows, produce, replay_last_decision, run_to_end, store_reference, tick,
)
from streaming import daily_discount_manager, removal_scheduler

pytestmark = pytest.mark.integration

JAN = {d: datetime(2026, 1, d, tzinfo=timezone.utc) for d in range(1, 6)}  # midnights


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def lot(shelf_id: str, code: str, qty: int, expiry: date, version: int, at: datetime) -> dict:
    return {"store_id": STORE, "shelf_id": shelf_id, "batch_code": code,
            "received_date": "2025-12-20", "expiry_date": expiry.isoformat(),
            "batch_quantity_store": qty, "version": version, "last_update_ts": iso(at)}


def removal_report(shelf_id: str, code: str, qty: int, at: datetime, n: int) -> list[dict]:
    """What the shelf sensors say when the staff take `qty` units of lot `code` away."""
    base = {"store_id": STORE, "shelf_id": shelf_id, "actor": "restocker", "customer_id": None,
            "batch_code": code, "plan_id": None, "unit_weight": 100.0, "timestamp": iso(at)}
    return [base | {"event_id": f"00000000-0000-8000-8000-{n:012d}",
                    "event_type": "expired_removal", "quantity": qty, "delta_weight": None},
            base | {"event_id": f"00000000-0000-8000-8000-{n + 1:012d}",
                    "event_type": "weight_change", "quantity": None, "delta_weight": -100.0 * qty}]


def values(ctx, topic: str) -> list[dict]:
    return [json.loads(m.value()) for m in consume_all(ctx, topic)]


def shelves(settings, n: int) -> list[str]:
    return [p["shelf_id"] for p in store_reference(settings, "store_inventory")[:n]]


def assert_alerts_keep_their_contract(steps: list[dict]) -> None:
    validator = jsonschema.Draft202012Validator(ALERT.json_schema(),
                                                format_checker=jsonschema.FormatChecker())
    for step in steps:
        validator.validate(step)


def test_discounts_follow_the_configured_ladder_once_a_day_without_compounding(
        settings, spark, query_ctx):
    ctx = dataclasses.replace(query_ctx, settings=settings.model_copy(
        update={"discount_ladder": "0:0.40,1:0.25,2:0.10"}))
    a, b, c, d = shelves(settings, 4)
    query = daily_discount_manager.QUERY
    # On the 2nd: A's earliest lot expires today, B's tomorrow; C's soon lot is empty (does not
    # count) and D's expires in a week.
    produce(ctx, "shelf_batch_state", [
        lot(a, "A1", 4, date(2026, 1, 2), 3, JAN[1]), lot(a, "A2", 9, date(2026, 2, 1), 1, JAN[1]),
        lot(b, "B1", 2, date(2026, 1, 3), 1, JAN[1]),
        lot(c, "C1", 0, date(2026, 1, 2), 2, JAN[1]), lot(c, "C2", 5, date(2026, 3, 1), 1, JAN[1]),
        lot(d, "D1", 6, date(2026, 1, 9), 1, JAN[1])])
    produce(ctx, "clock_ticks", [tick(JAN[2]), tick(JAN[2] + timedelta(minutes=1))])
    run_to_end(spark, ctx, query)
    day2 = values(ctx, "daily_discounts")
    assert sorted((r["shelf_id"], r["discount_date"], r["discount"], r["days_to_expiry"])
                  for r in day2) == [(a, "2026-01-02", 0.40, 0), (b, "2026-01-02", 0.25, 1)]
    assert [m.key().decode() for m in consume_all(ctx, "daily_discounts")] == [
        f"{STORE}|{r['shelf_id']}|2026-01-02" for r in day2]
    opened = values(ctx, "alerts")
    assert sorted((s["shelf_id"], s["alert_type"], s["status"], s["batch_code"],
                   s["current_stock"]) for s in opened) == [
        (a, "near_expiry_discount", "open", "A1", 4), (b, "near_expiry_discount", "open", "B1", 2)]

    # A's discounted lot sells out at 10:00: its alert resolves. On the 3rd, B's alert from the
    # 2nd resolves and B (expiring today now) gets the next step of the ladder.
    produce(ctx, "shelf_batch_state", [lot(a, "A1", 0, date(2026, 1, 2), 4,
                                           JAN[2] + timedelta(hours=10))])
    produce(ctx, "clock_ticks", [tick(JAN[3])])
    run_to_end(spark, ctx, query)
    steps = values(ctx, "alerts")[len(opened):]
    by_id = {s["alert_id"]: s for s in opened}
    assert [(by_id[s["alert_id"]]["shelf_id"], s["status"], s["updated_at"])
            for s in steps if s["alert_id"] in by_id] == [
        (a, "resolved", iso(JAN[2] + timedelta(hours=10))), (b, "resolved", iso(JAN[3]))]
    assert [(s["shelf_id"], s["status"], s["created_at"]) for s in steps
            if s["alert_id"] not in by_id] == [(b, "open", iso(JAN[3]))]
    assert_alerts_keep_their_contract(values(ctx, "alerts"))

    # A crash before the checkpoint commit replays the 3rd: the same discount, not a compounded
    # one, and the same alert steps.
    published = values(ctx, "daily_discounts")
    replay_last_decision(ctx, daily_discount_manager.NAME)
    run_to_end(spark, ctx, query)
    again = values(ctx, "daily_discounts")
    assert again[len(published):] == published[len(day2):]
    assert {(s["alert_id"], s["status"]) for s in values(ctx, "alerts")} \
        == {(s["alert_id"], s["status"]) for s in opened + steps}
    rows = sorted((r["shelf_id"], r["discount_date"], r["discount"])
                  for r in delta_rows(ctx, "analytics/daily_discounts"))
    assert rows == [(a, date(2026, 1, 2), Decimal("0.4000")), (b, date(2026, 1, 2),
                    Decimal("0.2500")), (b, date(2026, 1, 3), Decimal("0.4000"))]


def test_removal_orders_open_on_a_new_day_and_resolve_with_what_the_staff_removed(
        settings, spark, query_ctx):
    ctx = query_ctx
    e, f, g, h = shelves(settings, 4)
    query = removal_scheduler.QUERY
    # On the 3rd: E has two expired lots (one unit of E2 sits in a cart) and a good one; F's lot
    # expires that day (not expired yet); G's expired units are all in carts; H's stay forgotten.
    produce(ctx, "shelf_batch_state", [
        lot(e, "E1", 5, date(2026, 1, 1), 2, JAN[2]), lot(e, "E2", 3, date(2026, 1, 2), 2, JAN[2]),
        lot(e, "E3", 7, date(2026, 1, 9), 1, JAN[2]), lot(f, "F1", 4, date(2026, 1, 3), 1, JAN[2]),
        lot(g, "G1", 2, date(2026, 1, 1), 5, JAN[2]), lot(h, "H1", 3, date(2026, 1, 2), 1, JAN[2])])
    produce(ctx, "clock_ticks", [tick(JAN[3])])
    run_to_end(spark, ctx, query)
    orders = values(ctx, "alerts")
    assert sorted((s["shelf_id"], s["alert_type"], s["location"], s["status"], s["batch_code"],
                   s["expiry_date"], s["current_stock"]) for s in orders) == [
        (e, "expired_removal", "store", "open", "E1", "2026-01-01", 8),
        (g, "expired_removal", "store", "open", "G1", "2026-01-01", 2),
        (h, "expired_removal", "store", "open", "H1", "2026-01-02", 3)]
    order = {s["shelf_id"]: s for s in orders}

    # The staff report E's removals at 08:00 (2 of E2's 3 units were on the shelf); the state
    # follows. G's cart units are paid: G1 has nothing left. The 4th begins before the query
    # runs again: H's order was never carried out, it resolves with nothing removed and a new
    # one opens; E2's unit in a cart came back to the shelf, and F's lot expired.
    produce(ctx, "shelf_events", removal_report(e, "E1", 5, JAN[3] + timedelta(hours=8), 1)
            + removal_report(e, "E2", 2, JAN[3] + timedelta(hours=8), 3))
    produce(ctx, "shelf_batch_state", [
        lot(e, "E1", 0, date(2026, 1, 1), 3, JAN[3] + timedelta(hours=8)),
        lot(e, "E2", 1, date(2026, 1, 2), 3, JAN[3] + timedelta(hours=8)),
        lot(g, "G1", 0, date(2026, 1, 1), 6, JAN[3] + timedelta(hours=9))])
    produce(ctx, "clock_ticks", [tick(JAN[4])])
    run_to_end(spark, ctx, query)
    steps = values(ctx, "alerts")[len(orders):]
    assert [(s["shelf_id"], s["status"], s["batch_code"], s["current_stock"], s["updated_at"])
            for s in steps] == [
        (e, "resolved", "E1", 7, iso(JAN[3] + timedelta(hours=8))),
        (g, "resolved", "G1", 0, iso(JAN[3] + timedelta(hours=9))),
        (h, "resolved", "H1", 0, iso(JAN[4])), (e, "open", "E2", 1, iso(JAN[4])),
        (f, "open", "F1", 4, iso(JAN[4])), (h, "open", "H1", 3, iso(JAN[4]))]
    assert [s["alert_id"] for s in steps[:3]] == [order[e]["alert_id"], order[g]["alert_id"],
                                                  order[h]["alert_id"]]
    assert steps[5]["alert_id"] != order[h]["alert_id"]
    assert_alerts_keep_their_contract(values(ctx, "alerts"))

    # A replay of the 4th publishes the same steps under the same ids.
    published = values(ctx, "alerts")
    replay_last_decision(ctx, removal_scheduler.NAME)
    run_to_end(spark, ctx, query)
    assert values(ctx, "alerts")[len(published):] == steps
