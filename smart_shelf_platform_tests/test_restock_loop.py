"""The shelf restock manager and the refill bridge on the real stack, fed crafted plans,
deliveries, clock ticks and, playing the store's part, the restocker's refill reports."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections import defaultdict
from datetime import date, timedelta

import pytest

from smart_shelf_platform_tests.streaming_support import (
    STORE, T0, at, consume_all, delta_rows, produce, replay_last_decision, run_to_end,
    store_reference, supplier_delivery, tick,
)
from streaming import shelf_refill_bridge, shelf_restock_manager

pytestmark = pytest.mark.integration


def values(ctx, topic: str) -> list[dict]:
    return [json.loads(m.value()) for m in consume_all(ctx, topic)]


def plan(shelf_id: str, qty: int, minute: float) -> dict:
    return {"store_id": STORE, "plan_id": str(uuid.uuid4()), "shelf_id": shelf_id,
            "suggested_qty": qty, "status": "pending", "alert_id": None,
            "created_at": at(minute), "updated_at": at(minute)}


def ticks(*minutes: float) -> list[dict]:
    return [tick(T0 + timedelta(minutes=m)) for m in minutes]


def wh_lots(settings) -> dict[str, list[dict]]:
    """The reference warehouse lots per shelf, earliest expiry first."""
    lots = defaultdict(list)
    for row in store_reference(settings, "warehouse_batches"):
        lots[row["shelf_id"]].append(row)
    return {shelf: sorted(rows, key=lambda r: (r["expiry_date"], r["received_date"],
                                               r["batch_code"]))
            for shelf, rows in lots.items()}


def restocker_putback(shelf_id: str, pick: dict, placed: int, minute: float) -> dict:
    """The store's report of a refill task: `placed` of the pick's units fitted on the shelf."""
    return {"event_id": str(uuid.uuid4()), "event_type": "putback", "store_id": STORE,
            "shelf_id": shelf_id, "actor": "restocker", "customer_id": None,
            "batch_code": pick["batch_code"], "quantity": placed, "unit_weight": 1.0,
            "delta_weight": None, "plan_id": pick["plan_id"], "timestamp": at(minute)}


def test_restock_manager_defers_picks_fefo_never_twice_and_completes_plans(
        settings, spark, query_ctx):
    ctx = query_ctx
    lots = wh_lots(settings)
    a = next(s for s, rows in lots.items()
             if len(rows) >= 2 and rows[0]["expiry_date"] > date(2026, 1, 10))
    b = next(s for s, rows in lots.items() if s != a and rows[0]["expiry_date"] > date(2026, 2, 1))
    first, second = lots[a][0], lots[a][1]
    in_a = sum(r["batch_quantity"] for r in lots[a])
    manager = shelf_restock_manager.QUERY

    # P1 is made at minute 1: not due at minute 1, due (60 s handling) at minute 2.
    p1 = plan(a, first["batch_quantity"] + 1, 1)
    produce(ctx, "shelf_restock_plan", [p1])
    produce(ctx, "clock_ticks", ticks(1))
    run_to_end(spark, ctx, manager)
    assert values(ctx, "wh_events") == []
    produce(ctx, "clock_ticks", ticks(2))
    run_to_end(spark, ctx, manager)
    picks = values(ctx, "wh_events")
    assert [(e["event_type"], e["batch_code"], e["quantity"], e["plan_id"], e["timestamp"])
            for e in picks] == [
        ("wh_out", first["batch_code"], first["batch_quantity"], p1["plan_id"], at(2)),
        ("wh_out", second["batch_code"], 1, p1["plan_id"], at(2))]
    assert picks[0]["expiry_date"] == first["expiry_date"].isoformat()

    # P2 wants more than the rest of A's warehouse: it gets the rest, nothing twice.
    # P3 asks for all of B's warehouse, P4 then finds B empty and waits for a delivery.
    in_b = sum(r["batch_quantity"] for r in lots[b])
    p2, p3, p4 = plan(a, 10 * in_a, 3), plan(b, in_b, 3), plan(b, 5, 4)
    produce(ctx, "shelf_restock_plan", [p2, p3, p4])
    produce(ctx, "clock_ticks", ticks(3, 4, 5, 6))
    run_to_end(spark, ctx, manager)
    outs = [e for e in values(ctx, "wh_events") if e["event_type"] == "wh_out"]
    taken = defaultdict(int)
    for e in outs:
        taken[(e["shelf_id"], e["batch_code"])] += e["quantity"]
    assert sum(q for (s, _), q in taken.items() if s == a) == in_a
    assert sum(q for (s, _), q in taken.items() if s == b) == in_b
    assert all(q <= next(r["batch_quantity"] for r in lots[s] if r["batch_code"] == c)
               for (s, c), q in taken.items())
    assert not [e for e in outs if e["plan_id"] == p4["plan_id"]]

    delivery = supplier_delivery(ctx, {"shelf_id": b, "batch_code": "SUP-TEST-1",
                                       "received_date": "2026-01-01",
                                       "expiry_date": "2026-06-01"}, 12, at(8))
    # One the platform did not order is refused: the manager does not count its units.
    forged = dict(delivery, event_id=str(uuid.uuid4()), supplier_order_id=str(uuid.uuid4()),
                  batch_code="SUP-FORGED", quantity=500)
    produce(ctx, "wh_events", [forged, delivery])
    produce(ctx, "clock_ticks", ticks(7, 8, 9))
    run_to_end(spark, ctx, manager)
    p4_picks = [e for e in values(ctx, "wh_events") if e.get("plan_id") == p4["plan_id"]]
    assert [(e["batch_code"], e["quantity"], e["timestamp"]) for e in p4_picks] == [
        ("SUP-TEST-1", 5, at(8))], "deferred, then picked at the delivery's tick"
    assert not [e for e in values(ctx, "wh_events") if e["event_type"] == "wh_out"
                and e["batch_code"] == "SUP-FORGED"], "a delivery nobody ordered is not picked"

    # The restocker reports P1's first lot all on the shelf: the plan waits for the second.
    def p1_statuses() -> list[str]:
        return [p["status"] for p in values(ctx, "shelf_restock_plan")
                if p["plan_id"] == p1["plan_id"]]

    produce(ctx, "shelf_events", [restocker_putback(a, picks[0], picks[0]["quantity"], 5)])
    run_to_end(spark, ctx, manager)
    assert p1_statuses() == ["pending", "issued"]
    wh_before = len(values(ctx, "wh_events"))
    # The second lot's unit did not fit (the shelf was full): it goes back to the warehouse
    # lot it left, at the report's time, and the plan is complete.
    produce(ctx, "shelf_events", [restocker_putback(a, picks[1], 0, 6)])
    run_to_end(spark, ctx, manager)
    assert p1_statuses() == ["pending", "issued", "completed"]
    returns = values(ctx, "wh_events")[wh_before:]
    assert [(e["event_type"], e["reason"], e["batch_code"], e["quantity"], e["plan_id"],
             e["received_date"], e["expiry_date"], e["timestamp"]) for e in returns] == [
        ("wh_in", "refill_return", second["batch_code"], 1, p1["plan_id"],
         second["received_date"].isoformat(), second["expiry_date"].isoformat(), at(6))]
    statuses = [(p["plan_id"], p["status"]) for p in values(ctx, "shelf_restock_plan")]
    assert [s for pid, s in statuses if pid == p4["plan_id"]] == ["pending", "issued"]
    rows = {r["plan_id"]: r for r in delta_rows(ctx, "ops/shelf_restock_plan")}
    assert {rows[p["plan_id"]]["status"] for p in (p2, p3, p4)} == {"issued"}
    assert (rows[p1["plan_id"]]["status"], rows[p1["plan_id"]]["updated_at"]) == (
        "completed", T0 + timedelta(minutes=6))

    # A crash before the checkpoint commit replays the last batch: same records, same table.
    sent, sent_wh = values(ctx, "shelf_restock_plan"), values(ctx, "wh_events")
    table = sorted(delta_rows(ctx, "ops/shelf_restock_plan"), key=lambda r: r["plan_id"])
    replay_last_decision(ctx, shelf_restock_manager.NAME)
    assert run_to_end(spark, ctx, manager) >= 1, "the report's batch ran again"
    again = values(ctx, "shelf_restock_plan")
    assert again[len(sent):] == sent[len(sent) - 1:], "the completion, sent again identically"
    assert values(ctx, "wh_events")[len(sent_wh):] == returns, "the return, sent again"
    assert sorted(delta_rows(ctx, "ops/shelf_restock_plan"),
                  key=lambda r: r["plan_id"]) == table

    # A report repeated under another id changes nothing; its own return (read back from
    # wh_events) is not counted twice: the returned unit is all A's warehouse has now.
    produce(ctx, "shelf_events", [restocker_putback(a, picks[1], 0, 7)])
    p5 = plan(a, 5, 10)
    produce(ctx, "shelf_restock_plan", [p5])
    produce(ctx, "clock_ticks", ticks(10, 11))
    run_to_end(spark, ctx, manager)
    wh_events = values(ctx, "wh_events")
    assert len({e["event_id"] for e in wh_events if e["reason"] == "refill_return"}) == 1
    assert [(e["event_type"], e["batch_code"], e["quantity"]) for e in wh_events
            if e["plan_id"] == p5["plan_id"]] == [("wh_out", second["batch_code"], 1)]


def test_in_rounds_the_manager_picks_at_round_ticks_the_plans_of_earlier_rounds(
        settings, spark, query_ctx):
    ctx = dataclasses.replace(query_ctx, settings=query_ctx.settings.model_copy(
        update={"decision_round_minutes": 30}))
    lots = wh_lots(settings)
    shelf = next(s for s, rows in lots.items() if rows[0]["expiry_date"] > date(2026, 1, 10))
    manager = shelf_restock_manager.QUERY
    # Made at 09:05, due at 09:06; made at the 09:30 round itself: neither is picked before
    # 09:30, and the second not at the round that made it either.
    early, at_round = plan(shelf, 1, 5), plan(shelf, 1, 30)
    produce(ctx, "shelf_restock_plan", [early, at_round])
    produce(ctx, "clock_ticks", ticks(6, 7, 29))
    run_to_end(spark, ctx, manager)
    assert values(ctx, "wh_events") == []
    produce(ctx, "clock_ticks", ticks(30, 31, 59, 60))
    run_to_end(spark, ctx, manager)
    assert [(e["plan_id"], e["timestamp"]) for e in values(ctx, "wh_events")] == [
        (early["plan_id"], at(30)), (at_round["plan_id"], at(60))]


def test_restock_manager_removes_expired_warehouse_lots_on_the_day_after_expiry(
        settings, spark, query_ctx):
    ctx = query_ctx
    lots = wh_lots(settings)
    soon = min(r["expiry_date"] for rows in lots.values() for r in rows)
    expiring = {s: [r for r in rows if r["expiry_date"] == soon] for s, rows in lots.items()}
    expiring = {s: rows for s, rows in expiring.items() if rows}
    day_of_expiry = T0.replace(year=soon.year, month=soon.month, day=soon.day, hour=0)
    produce(ctx, "clock_ticks", [tick(day_of_expiry), tick(day_of_expiry + timedelta(days=1))])
    run_to_end(spark, ctx, shelf_restock_manager.QUERY)
    removals = values(ctx, "wh_events")
    assert {(e["shelf_id"], e["batch_code"], e["quantity"]) for e in removals} == {
        (s, r["batch_code"], r["batch_quantity"]) for s, rows in expiring.items() for r in rows}
    assert {e["event_type"] for e in removals} == {"wh_removal"}
    assert {e["timestamp"][:10] for e in removals} == {(soon + timedelta(days=1)).isoformat()}
    alerts = values(ctx, "alerts")
    assert {(a["shelf_id"], a["status"]) for a in alerts} == {
        (s, status) for s in expiring for status in ("open", "resolved")}
    assert {a["shelf_id"]: a["current_stock"] for a in alerts} == {
        s: sum(r["batch_quantity"] for r in rows) for s, rows in expiring.items()}


def test_refill_bridge_releases_tasks_at_the_first_tick_after_the_delay(
        settings, spark, query_ctx):
    ctx = query_ctx
    shelf = store_reference(settings, "store_inventory")[0]
    pick = {"event_id": str(uuid.uuid4()), "event_type": "wh_out", "store_id": STORE,
            "shelf_id": shelf["shelf_id"], "batch_code": "B-1", "quantity": 7,
            "plan_id": str(uuid.uuid4()), "supplier_order_id": None,
            "received_date": "2026-01-01", "expiry_date": "2026-02-01",
            "reason": "shelf_restock", "timestamp": at(5)}
    produce(ctx, "wh_events", [pick])
    produce(ctx, "clock_ticks", ticks(5, 6, 7))
    run_to_end(spark, ctx, shelf_refill_bridge.QUERY)
    assert values(ctx, "restock_tasks") == [], "3 simulated minutes have not passed"
    produce(ctx, "clock_ticks", ticks(8, 9))
    run_to_end(spark, ctx, shelf_refill_bridge.QUERY)
    tasks = values(ctx, "restock_tasks")
    assert tasks == [{"event_id": shelf_refill_bridge.task_id(pick["event_id"]),
                      "store_id": STORE, "shelf_id": shelf["shelf_id"],
                      "plan_id": pick["plan_id"], "pick_event_id": pick["event_id"],
                      "batch_code": "B-1", "quantity": 7, "timestamp": at(8)}]
    assert values(ctx, "shelf_events") == [], "the store reports what it put on the shelf"

    # Replayed: the same task (same id) again, nothing else; later ticks add nothing.
    replay_last_decision(ctx, shelf_refill_bridge.NAME)
    assert run_to_end(spark, ctx, shelf_refill_bridge.QUERY) == 2
    produce(ctx, "clock_ticks", ticks(10))
    run_to_end(spark, ctx, shelf_refill_bridge.QUERY)
    assert {e["event_id"] for e in values(ctx, "restock_tasks")} == {tasks[0]["event_id"]}

    # A pick that arrives after the clock passed its due time (its query lagged) goes at once.
    late = pick | {"event_id": str(uuid.uuid4()), "timestamp": at(6)}
    produce(ctx, "wh_events", [late])
    run_to_end(spark, ctx, shelf_refill_bridge.QUERY)
    assert [(e["pick_event_id"], e["quantity"]) for e in values(ctx, "restock_tasks")
            if e["timestamp"] == at(9)] == [(late["event_id"], 7)]
