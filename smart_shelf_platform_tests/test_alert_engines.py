"""The alert engines and the alerts sink on the real stack, fed crafted state records."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import date, datetime, timedelta, timezone

import pytest

from smart_shelf_platform_tests.streaming_support import (
    STORE, T0, at, consume_all, delta_rows, produce, replay_last_batch, run_to_end,
    store_reference, tick,
)
from streaming import alerts_sink, shelf_alert_engine, wh_alert_engine

pytestmark = pytest.mark.integration

ts = at


def profiles(settings) -> list[dict]:
    return store_reference(settings, "store_inventory")


def shelf_state(shelf_id: str, stock: int, version: int, minute: float, cap: int = 100) -> dict:
    return {"store_id": STORE, "shelf_id": shelf_id, "current_stock": stock, "max_stock": cap,
            "unit_weight": 100.0, "shelf_weight": 100.0 * stock, "version": version,
            "last_update_ts": ts(minute)}


def lot(shelf_id: str, code: str, qty: int, expiry: date, version: int, minute: float) -> dict:
    return {"store_id": STORE, "shelf_id": shelf_id, "batch_code": code,
            "received_date": "2025-12-20", "expiry_date": expiry.isoformat(),
            "batch_quantity_store": qty, "version": version, "last_update_ts": ts(minute)}


def shelf_policy(shelf_id: str, threshold: float) -> dict:
    return {"store_id": STORE, "policy_id": str(uuid.uuid4()), "shelf_id": shelf_id,
            "item_category": None, "item_subcategory": None, "threshold_pct": threshold,
            "min_qty": 1, "target_pct": 80.0, "active": True, "notes": "test",
            "created_at": ts(0), "updated_at": ts(0)}


def values(ctx, topic: str) -> list[dict]:
    return [json.loads(m.value()) for m in consume_all(ctx, topic)]


def test_shelf_engine_alerts_once_plans_once_follows_policies_and_resolves(
        settings, spark, query_ctx):
    ctx = query_ctx
    a, b, c = (p["shelf_id"] for p in profiles(settings)[:3])
    engine = shelf_alert_engine.QUERY

    # A is low (10 %), B at 40 % is fine under the default 30 % policy, C has a lot expiring
    # in two days and one already empty (which must not count).
    produce(ctx, "shelf_state", [shelf_state(a, 10, 2, 1), shelf_state(b, 40, 2, 1)])
    produce(ctx, "shelf_batch_state", [
        lot(c, "C-SOON", 4, date(2026, 1, 3), 1, 1), lot(c, "C-EMPTY", 0, date(2026, 1, 1), 3, 1),
        lot(c, "C-LATER", 9, date(2026, 3, 1), 1, 1)])
    run_to_end(spark, ctx, engine)
    steps = values(ctx, "alerts")
    assert sorted((s["alert_type"], s["shelf_id"], s["status"]) for s in steps) == [
        ("near_expiry", c, "open"), ("refill_request", a, "open")]
    refill = next(s for s in steps if s["alert_type"] == "refill_request")
    assert (refill["current_stock"], refill["suggested_qty"], refill["stock_pct"]) == (10, 70, 10.0)
    near = next(s for s in steps if s["alert_type"] == "near_expiry")
    assert (near["batch_code"], near["expiry_date"]) == ("C-SOON", "2026-01-03")
    plans = values(ctx, "shelf_restock_plan")
    assert [(p["shelf_id"], p["suggested_qty"], p["status"], p["alert_id"]) for p in plans] == [
        (a, 70, "pending", refill["alert_id"])]

    # A falls further: no second alert and no second plan while the first is in flight.
    # B's policy is raised to 50 %: B alerts without any new stock update.
    produce(ctx, "shelf_state", [shelf_state(a, 5, 3, 5)])
    produce(ctx, "shelf_policies", [shelf_policy(b, 50.0)])
    run_to_end(spark, ctx, engine)
    new = values(ctx, "alerts")[len(steps):]
    assert [(s["alert_type"], s["shelf_id"], s["status"]) for s in new] == [
        ("refill_request", b, "open")]
    assert len(values(ctx, "shelf_restock_plan")) == 2  # B's plan; none more for A

    # A refilled: its alert resolves under the same id; C's soon lot sold out: resolves too.
    produce(ctx, "shelf_state", [shelf_state(a, 90, 4, 30)])
    produce(ctx, "shelf_batch_state", [lot(c, "C-SOON", 0, date(2026, 1, 3), 2, 30)])
    run_to_end(spark, ctx, engine)
    resolved = values(ctx, "alerts")[len(steps) + len(new):]
    assert sorted((s["alert_type"], s["shelf_id"], s["status"], s["alert_id"]) for s in resolved) \
        == sorted([("refill_request", a, "resolved", refill["alert_id"]),
                   ("near_expiry", c, "resolved", near["alert_id"])])
    assert resolved[0]["updated_at"] == ts(30)

    # A crash before the checkpoint commit: the batch replays and publishes the same steps.
    published, plans = values(ctx, "alerts"), values(ctx, "shelf_restock_plan")
    replay_last_batch(ctx, shelf_alert_engine.NAME)
    run_to_end(spark, ctx, engine)
    again = values(ctx, "alerts")
    assert {(s["alert_id"], s["status"]) for s in again} \
        == {(s["alert_id"], s["status"]) for s in published}
    assert {p["plan_id"] for p in values(ctx, "shelf_restock_plan")} \
        == {p["plan_id"] for p in plans}

    # The sink keeps one row per alert at its furthest step.
    run_to_end(spark, ctx, alerts_sink.QUERY)
    rows = {(r["alert_type"], r["shelf_id"]): r for r in delta_rows(ctx, "ops/alerts")}
    assert {k: r["status"] for k, r in rows.items()} == {
        ("refill_request", a): "resolved", ("refill_request", b): "open",
        ("near_expiry", c): "resolved"}
    assert rows[("refill_request", a)]["created_at"] == T0 + timedelta(minutes=1)
    # A duplicate "open" step arriving late never moves a resolved alert back.
    produce(ctx, "alerts", [refill])
    run_to_end(spark, ctx, alerts_sink.QUERY)
    assert {(r["alert_type"], r["shelf_id"]): r["status"]
            for r in delta_rows(ctx, "ops/alerts")}[("refill_request", a)] == "resolved"


def test_near_expiry_is_re_evaluated_when_the_simulated_day_changes(settings, spark, query_ctx):
    ctx = query_ctx
    shelf = profiles(settings)[5]["shelf_id"]
    produce(ctx, "shelf_batch_state", [lot(shelf, "L1", 3, date(2026, 1, 8), 1, 0)])
    midnight = datetime(2026, 1, 1, tzinfo=timezone.utc)
    produce(ctx, "clock_ticks", [tick(midnight)])
    run_to_end(spark, ctx, shelf_alert_engine.QUERY)
    assert values(ctx, "alerts") == [], "7 days out: not near expiry yet"
    # Two days later, no lot changed; only the day's first tick counts.
    produce(ctx, "clock_ticks", [tick(midnight + timedelta(days=2, minutes=m)) for m in (0, 1)])
    run_to_end(spark, ctx, shelf_alert_engine.QUERY)
    assert [(s["alert_type"], s["batch_code"]) for s in values(ctx, "alerts")] == [
        ("near_expiry", "L1")]


def warehouse_of(settings):
    """The first product's standard batch, its warehouse state at a capacity of 20 batches as
    a function of (stock, version, minute), and its default reorder point (5 %: one batch)."""
    profile = profiles(settings)[0]
    shelf, batch = profile["shelf_id"], profile["standard_batch_size"]

    def wh_state(stock: int, version: int, minute: float) -> dict:
        return {"store_id": STORE, "shelf_id": shelf, "wh_current_stock": stock,
                "wh_max_stock": 20 * batch, "version": version, "last_update_ts": ts(minute)}

    return batch, wh_state, max(1, int(0.05 * 20 * batch))


def test_warehouse_engine_orders_whole_batches_counting_plans_in_flight(
        settings, spark, query_ctx):
    ctx = query_ctx
    batch, wh_state, reorder_point = warehouse_of(settings)
    produce(ctx, "wh_state", [wh_state(reorder_point - 1, 2, 1)])
    run_to_end(spark, ctx, wh_alert_engine.QUERY)
    plans = values(ctx, "wh_supplier_plan")
    assert len(plans) == 1
    assert plans[0]["suggested_qty"] % batch == 0 and plans[0]["suggested_qty"] > 0
    assert (plans[0]["source"], plans[0]["status"]) == ("rule", "pending")
    assert [(s["alert_type"], s["location"], s["min_qty"]) for s in values(ctx, "alerts")] == [
        ("supplier_request", "warehouse", reorder_point)]

    produce(ctx, "wh_state", [wh_state(reorder_point - 2, 3, 2)])
    run_to_end(spark, ctx, wh_alert_engine.QUERY)
    assert len(values(ctx, "wh_supplier_plan")) == 1, "the order in flight covers it"
    assert len(values(ctx, "alerts")) == 1

    # The supplier manager orders it: the alert is acknowledged. The delivery completes the
    # plan at minute 60, but until the warehouse state shows it the plan still counts.
    plan = plans[0]
    produce(ctx, "wh_supplier_plan", [plan | {"status": "issued", "updated_at": ts(10)}])
    produce(ctx, "wh_supplier_plan", [plan | {"status": "completed", "updated_at": ts(60)}])
    produce(ctx, "wh_state", [wh_state(reorder_point - 3, 4, 50)])
    run_to_end(spark, ctx, wh_alert_engine.QUERY)
    steps = values(ctx, "alerts")
    assert [(s["status"], s["alert_id"]) for s in steps] == [
        ("open", steps[0]["alert_id"]), ("acknowledged", steps[0]["alert_id"])]
    assert len(values(ctx, "wh_supplier_plan")) == 3, "no new plan: the delivery is on its way"
    # Stock after the delivery time, still below the point (sold meanwhile): a new plan.
    produce(ctx, "wh_state", [wh_state(reorder_point - 1, 5, 61)])
    run_to_end(spark, ctx, wh_alert_engine.QUERY)
    new_plans = [p for p in values(ctx, "wh_supplier_plan") if p["status"] == "pending"]
    assert len(new_plans) == 2 and new_plans[1]["supplier_plan_id"] != plan["supplier_plan_id"]


def test_warehouse_engine_with_the_reference_rule_reorders_while_an_order_is_on_its_way(
        settings, spark, query_ctx):
    """`SMART_SHELF_SUPPLIER_RULE=reference` (the lost-sales comparison's baseline): the gap to
    the reorder point in whole batches, one pending plan at a time, orders on their way ignored."""
    ctx = dataclasses.replace(query_ctx, settings=query_ctx.settings.model_copy(
        update={"supplier_rule": "reference"}))
    batch, wh_state, reorder_point = warehouse_of(settings)
    produce(ctx, "wh_state", [wh_state(reorder_point - 1, 2, 1)])
    run_to_end(spark, ctx, wh_alert_engine.QUERY)
    produce(ctx, "wh_state", [wh_state(reorder_point - 2, 3, 2)])
    run_to_end(spark, ctx, wh_alert_engine.QUERY)
    plans = values(ctx, "wh_supplier_plan")
    assert [p["suggested_qty"] for p in plans] == [batch], "one batch, one pending plan"
    # Ordered at a cutoff: on its way, it no longer holds a new plan back.
    produce(ctx, "wh_supplier_plan", [plans[0] | {"status": "issued", "updated_at": ts(10)}])
    produce(ctx, "wh_state", [wh_state(reorder_point - 3, 4, 20)])
    run_to_end(spark, ctx, wh_alert_engine.QUERY)
    pending = [p for p in values(ctx, "wh_supplier_plan") if p["status"] == "pending"]
    assert len(pending) == 2 and pending[1]["suggested_qty"] == batch


def test_in_rounds_the_shelf_engine_plans_at_the_round_s_tick_from_what_came_before_it(
        settings, spark, query_ctx):
    """Deciding every 30 simulated minutes, a plan does not depend on where micro-batches end:
    it is made at the round's tick, from the shelf as it stood just before that tick."""
    ctx = dataclasses.replace(query_ctx, settings=query_ctx.settings.model_copy(
        update={"decision_round_minutes": 30}))
    shelf = profiles(settings)[0]["shelf_id"]
    engine = shelf_alert_engine.QUERY
    # Low at 09:05, and a tick at 09:10 that is no round: nothing is decided yet.
    produce(ctx, "shelf_state", [shelf_state(shelf, 10, 2, 5)])
    produce(ctx, "clock_ticks", [tick(T0 + timedelta(minutes=10))])
    run_to_end(spark, ctx, engine)
    assert values(ctx, "alerts") == [] and values(ctx, "shelf_restock_plan") == []
    # One batch: lower still at 09:20, the 09:30 round, and lower again a minute after it.
    produce(ctx, "shelf_state", [shelf_state(shelf, 5, 3, 20)])
    produce(ctx, "clock_ticks", [tick(T0 + timedelta(minutes=30))])
    produce(ctx, "shelf_state", [shelf_state(shelf, 3, 4, 31)])
    run_to_end(spark, ctx, engine)
    plans = values(ctx, "shelf_restock_plan")
    assert [(p["suggested_qty"], p["created_at"]) for p in plans] == [(75, ts(30))]
    assert [(a["alert_type"], a["current_stock"], a["created_at"])
            for a in values(ctx, "alerts")] == [("refill_request", 5, ts(30))]


def test_in_rounds_the_warehouse_engine_plans_at_the_round_s_tick_from_what_came_before_it(
        settings, spark, query_ctx):
    """The warehouse engine shares the rounds: its supplier plan is made at the round's tick,
    from the warehouse as it stood just before it, not at a tick between rounds."""
    ctx = dataclasses.replace(query_ctx, settings=query_ctx.settings.model_copy(
        update={"decision_round_minutes": 30}))
    _, wh_state, reorder_point = warehouse_of(settings)
    engine = wh_alert_engine.QUERY
    produce(ctx, "wh_state", [wh_state(reorder_point - 1, 2, 5)])
    produce(ctx, "clock_ticks", [tick(T0 + timedelta(minutes=10))])
    run_to_end(spark, ctx, engine)
    assert values(ctx, "alerts") == [] and values(ctx, "wh_supplier_plan") == []
    produce(ctx, "wh_state", [wh_state(reorder_point - 2, 3, 20)])
    produce(ctx, "clock_ticks", [tick(T0 + timedelta(minutes=30))])
    produce(ctx, "wh_state", [wh_state(reorder_point - 3, 4, 31)])
    run_to_end(spark, ctx, engine)
    assert [p["created_at"] for p in values(ctx, "wh_supplier_plan")] == [ts(30)]
    assert [(a["alert_type"], a["current_stock"], a["created_at"])
            for a in values(ctx, "alerts")] == [("supplier_request", reorder_point - 2, ts(30))]
