"""The supplier manager on the real stack, fed crafted plans, warehouse state and clock ticks.

2026-01-01 is a Thursday: the cutoff Thu 12:00 orders for Fri 01-02 08:00, Sun 01-04 12:00 for
Mon 01-05, Tue 01-06 12:00 for Wed 01-07 (the default schedule).
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import date, datetime, timezone

import pytest

from smart_shelf_platform_tests.streaming_support import (
    STORE, consume_all, delta_rows, produce, replay_last_decision, run_to_end, store_reference,
    tick,
)
from streaming import supplier_manager

pytestmark = pytest.mark.integration

THU_CUTOFF = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
FRI_SLOT = datetime(2026, 1, 2, 8, 0, tzinfo=timezone.utc)


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, minute, tzinfo=timezone.utc)


def text(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def values(ctx, topic: str) -> list[dict]:
    return [json.loads(m.value()) for m in consume_all(ctx, topic)]


def plan(profile: dict, qty: int, created: datetime) -> dict:
    return {"store_id": STORE, "supplier_plan_id": str(uuid.uuid4()),
            "shelf_id": profile["shelf_id"], "suggested_qty": qty,
            "standard_batch_size": profile["standard_batch_size"], "source": "rule",
            "status": "pending", "created_at": text(created), "updated_at": text(created)}


def wh_state(profile: dict, batches_on_hand: int, batches_capacity: int, version: int,
             stamped: datetime) -> dict:
    batch = profile["standard_batch_size"]
    return {"store_id": STORE, "shelf_id": profile["shelf_id"],
            "wh_current_stock": batches_on_hand * batch, "wh_max_stock": batches_capacity * batch,
            "version": version, "last_update_ts": text(stamped)}


def statuses(ctx) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {}
    for record in values(ctx, "wh_supplier_plan"):
        seen.setdefault(record["supplier_plan_id"], []).append(record["status"])
    return seen


def table(ctx, path: str, key: str) -> dict:
    return {r[key]: r for r in delta_rows(ctx, path)}


def test_cutoff_orders_per_shelf_delivery_brings_lots_that_keep_and_replays_change_nothing(
        settings, spark, query_ctx):
    ctx = query_ctx
    profiles = store_reference(settings, "shelf_profiles")
    fish = next(p for p in profiles if p["item_category"] == "FISH")
    canned = next(p for p in profiles if p["item_category"] == "CANNED GOODS")
    tight = next(p for p in profiles if not p["perishable"] and p is not canned)
    size = {p["shelf_id"]: p["standard_batch_size"] for p in (fish, canned, tight)}
    manager = supplier_manager.QUERY

    # Fish: two plans of a batch each (one order). Canned: a batch and 5 units (rounds up).
    # Tight: 6 batches planned, 4 fit (capacity 10, 6 on hand). Late: made after the cutoff.
    fish_plans = [plan(fish, size[fish["shelf_id"]], utc(1, 9)),
                  plan(fish, size[fish["shelf_id"]], utc(1, 10))]
    canned_plan = plan(canned, size[canned["shelf_id"]] + 5, utc(1, 9, 30))
    tight_plan = plan(tight, 6 * size[tight["shelf_id"]], utc(1, 11))
    late_plan = plan(tight, 2 * size[tight["shelf_id"]], utc(1, 12, 30))
    produce(ctx, "wh_supplier_plan", [*fish_plans, canned_plan, tight_plan, late_plan])
    produce(ctx, "wh_state", [wh_state(fish, 2, 10, 2, utc(1, 9)),
                              wh_state(canned, 1, 30, 2, utc(1, 9)),
                              wh_state(tight, 6, 10, 2, utc(1, 9))])
    produce(ctx, "clock_ticks", [tick(utc(1, 8)), tick(THU_CUTOFF), tick(utc(1, 12, 30))])
    run_to_end(spark, ctx, manager)

    orders = {o["shelf_id"]: o for o in table(ctx, "ops/wh_supplier_orders", "order_id").values()}
    assert {s: (o["total_qty"], o["status"], o["delivery_date"], o["delivery_ts"], o["cutoff_ts"])
            for s, o in orders.items()} == {
        fish["shelf_id"]: (2 * size[fish["shelf_id"]], "issued", date(2026, 1, 2), FRI_SLOT,
                           THU_CUTOFF),
        canned["shelf_id"]: (2 * size[canned["shelf_id"]], "issued", date(2026, 1, 2),
                             FRI_SLOT, THU_CUTOFF),
        tight["shelf_id"]: (4 * size[tight["shelf_id"]], "issued", date(2026, 1, 2), FRI_SLOT,
                            THU_CUTOFF)}
    issued = [*fish_plans, canned_plan, tight_plan]
    assert statuses(ctx) == {p["supplier_plan_id"]: ["pending", "issued"] for p in issued} | {
        late_plan["supplier_plan_id"]: ["pending"]}
    plans = table(ctx, "ops/wh_supplier_plan", "supplier_plan_id")
    assert {pid: (r["status"], r["updated_at"]) for pid, r in plans.items()} == {
        p["supplier_plan_id"]: ("issued", THU_CUTOFF) for p in issued} | {
        late_plan["supplier_plan_id"]: ("pending", utc(1, 12, 30))}
    assert values(ctx, "wh_events") == []

    # Friday's slot delivers every order; at Sunday's cutoff the tight warehouse still waits
    # for its delivery to show in the stock, so the late plan has no room and stays pending.
    produce(ctx, "clock_ticks", [tick(FRI_SLOT), tick(utc(4, 12))])
    run_to_end(spark, ctx, manager)
    deliveries = {e["shelf_id"]: e for e in values(ctx, "wh_events")}
    assert set(deliveries) == set(orders)
    for shelf_id, event in deliveries.items():
        order = orders[shelf_id]
        assert (event["event_type"], event["quantity"], event["supplier_order_id"],
                event["batch_code"], event["received_date"], event["reason"],
                event["timestamp"]) == (
            "wh_in", order["total_qty"], order["order_id"], f"SUP-20260102-{shelf_id}",
            "2026-01-02", "supplier_delivery", text(FRI_SLOT))
    keeps = {s: (date.fromisoformat(e["expiry_date"]) - date(2026, 1, 2)).days
             for s, e in deliveries.items()}
    assert 2 <= keeps[fish["shelf_id"]] <= 20, "fish keeps days, not a year"
    assert keeps[canned["shelf_id"]] >= 365 and keeps[tight["shelf_id"]] >= 365
    receipts = {r["shelf_id"]: r for r in delta_rows(ctx, "ops/wh_supplier_receipts")}
    assert {s: (r["order_id"], r["received_qty"], r["batch_code"], r["expiry_date"].isoformat())
            for s, r in receipts.items()} == {
        s: (e["supplier_order_id"], e["quantity"], e["batch_code"], e["expiry_date"])
        for s, e in deliveries.items()}
    assert {r["status"] for r in delta_rows(ctx, "ops/wh_supplier_orders")} == {"delivered"}
    assert statuses(ctx) == {p["supplier_plan_id"]: ["pending", "issued", "completed"]
                             for p in issued} | {late_plan["supplier_plan_id"]: ["pending"]}
    plans = table(ctx, "ops/wh_supplier_plan", "supplier_plan_id")
    assert {pid: (r["status"], r["updated_at"]) for pid, r in plans.items()} == {
        p["supplier_plan_id"]: ("completed", FRI_SLOT) for p in issued} | {
        late_plan["supplier_plan_id"]: ("pending", utc(1, 12, 30))}

    # A crash before the checkpoint commit replays that batch: the same records again, and
    # not one table row changes. The batch after it: the tight warehouse's state now shows the
    # delivery (10 batches) less a batch picked, so Tuesday's cutoff issues the late plan with
    # the one batch that fits, for Wednesday.
    sent = {t: values(ctx, t) for t in ("wh_events", "wh_supplier_plan")}
    before = {p: table(ctx, p, key) for p, key in (("ops/wh_supplier_plan", "supplier_plan_id"),
                                                   ("ops/wh_supplier_orders", "order_id"),
                                                   ("ops/wh_supplier_receipts", "receipt_id"))}
    replay_last_decision(ctx, supplier_manager.NAME)
    produce(ctx, "wh_state", [wh_state(tight, 9, 10, 3, utc(3, 9))])
    produce(ctx, "clock_ticks", [tick(utc(6, 12))])
    run_to_end(spark, ctx, manager)
    assert values(ctx, "wh_events") == sent["wh_events"] * 2
    completions = [r for r in sent["wh_supplier_plan"] if r["status"] == "completed"]
    *replayed, late_issued = values(ctx, "wh_supplier_plan")
    assert replayed == sent["wh_supplier_plan"] + completions
    assert (late_issued["supplier_plan_id"], late_issued["status"]) == (
        late_plan["supplier_plan_id"], "issued")
    after = {p: table(ctx, p, key) for p, key in (("ops/wh_supplier_plan", "supplier_plan_id"),
                                                  ("ops/wh_supplier_orders", "order_id"),
                                                  ("ops/wh_supplier_receipts", "receipt_id"))}
    assert after["ops/wh_supplier_receipts"] == before["ops/wh_supplier_receipts"]
    changed_plans = {k for k, r in after["ops/wh_supplier_plan"].items()
                     if r != before["ops/wh_supplier_plan"][k]}
    assert changed_plans == {late_plan["supplier_plan_id"]}
    new_orders = {k: r for k, r in after["ops/wh_supplier_orders"].items()
                  if k not in before["ops/wh_supplier_orders"]}
    assert after["ops/wh_supplier_orders"] == before["ops/wh_supplier_orders"] | new_orders
    assert [(o["shelf_id"], o["total_qty"], o["status"], o["delivery_date"])
            for o in new_orders.values()] == [
        (tight["shelf_id"], size[tight["shelf_id"]], "issued", date(2026, 1, 7))]


def forecast(profile: dict, cutoff: datetime, method: str, order_units: int) -> dict:
    """A row of `ml_predictions` as a cutoff's forecast run publishes it (the fields the manager
    reads set, the others plausible)."""
    return {"store_id": STORE, "shelf_id": profile["shelf_id"], "cutoff_ts": text(cutoff),
            "cutoff_date": cutoff.date().isoformat(), "origin_date": "2025-12-31",
            "interval_start": "2026-01-02", "interval_end": "2026-01-03",
            "item_category": profile["item_category"], "method": method,
            "model_name": "demand" if method == "model" else None,
            "model_version": "2025-12-30-1200" if method == "model" else None,
            "lead_mean": 1.0, "forecast_mean": 10.0, "q50": 10, "q80": 12, "q90": 14, "q95": 15,
            "order_quantile": 0.9, "shelf_on_hand": 5, "wh_on_hand": 5, "on_order": 0,
            "wh_capacity": 100, "batch_size": profile["standard_batch_size"],
            "order_batches": order_units // profile["standard_batch_size"],
            "order_units": order_units, "created_at": "2026-01-01T11:59:00Z"}


def test_with_the_forecast_deciding_a_cutoff_orders_the_model_s_plans_and_cancels_the_rule_s(
        settings, spark, query_ctx):
    """SMART_SHELF_SUPPLIER_RULE=forecast: a shelf the model forecast is ordered by the model's
    plan alone (its rule plan canceled); one the model orders nothing for is not ordered; a
    fallback forecast or no forecast leaves the rule's plan to be ordered; and a cutoff whose
    forecasts never came orders by the rule."""
    ctx = dataclasses.replace(query_ctx, settings=query_ctx.settings.model_copy(
        update={"supplier_rule": "forecast"}))
    profiles = [p for p in store_reference(settings, "shelf_profiles") if not p["perishable"]]
    by_model, zero, fallback, unforecast = profiles[:4]
    size = {p["shelf_id"]: p["standard_batch_size"] for p in profiles[:4]}
    rule_plans = {p["shelf_id"]: plan(p, size[p["shelf_id"]], utc(1, 9)) for p in profiles[:4]}
    produce(ctx, "wh_supplier_plan", list(rule_plans.values()))
    produce(ctx, "wh_state", [wh_state(p, 1, 20, 2, utc(1, 9)) for p in profiles[:4]])
    produce(ctx, "ml_predictions", [
        forecast(by_model, THU_CUTOFF, "model", 3 * size[by_model["shelf_id"]]),
        forecast(zero, THU_CUTOFF, "model", 0),
        forecast(fallback, THU_CUTOFF, "fallback_history", 5 * size[fallback["shelf_id"]])])
    produce(ctx, "clock_ticks", [tick(utc(1, 8)), tick(THU_CUTOFF)])
    run_to_end(spark, ctx, supplier_manager.QUERY)

    orders = {o["shelf_id"]: o["total_qty"]
              for o in table(ctx, "ops/wh_supplier_orders", "order_id").values()}
    assert orders == {by_model["shelf_id"]: 3 * size[by_model["shelf_id"]],
                      fallback["shelf_id"]: size[fallback["shelf_id"]],
                      unforecast["shelf_id"]: size[unforecast["shelf_id"]]}
    plans = table(ctx, "ops/wh_supplier_plan", "supplier_plan_id")
    model_plans = [p for p in plans.values() if p["source"] == "model"]
    assert [(p["shelf_id"], p["suggested_qty"], p["status"], p["model_name"], p["model_version"],
             p["order_quantile"], p["created_at"]) for p in model_plans] == [
        (by_model["shelf_id"], 3 * size[by_model["shelf_id"]], "issued", "demand",
         "2025-12-30-1200", 0.9, THU_CUTOFF)]
    assert {s: plans[p["supplier_plan_id"]]["status"] for s, p in rule_plans.items()} == {
        by_model["shelf_id"]: "canceled", zero["shelf_id"]: "canceled",
        fallback["shelf_id"]: "issued", unforecast["shelf_id"]: "issued"}
    assert {(p["source"], p["model_name"]) for p in plans.values() if p["source"] == "rule"} == {
        ("rule", None)}

    # Tuesday's cutoff has no forecast at all (its run did not land): the rule orders.
    late = plan(zero, size[zero["shelf_id"]], utc(5, 9))
    produce(ctx, "wh_supplier_plan", [late])
    produce(ctx, "clock_ticks", [tick(utc(6, 12))])
    run_to_end(spark, ctx, supplier_manager.QUERY)
    assert table(ctx, "ops/wh_supplier_plan", "supplier_plan_id")[
        late["supplier_plan_id"]]["status"] == "issued"
