"""The state queries on the real stack: crafted events in, state, compacted topics and dead
letters out, and replays that change nothing."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta

import pytest

from smart_shelf_platform.clock import ClockKeys
from smart_shelf_platform_tests.streaming_support import (
    STORE, T0, at, consume_all, delta_rows, produce, replay_last_batch, run_to_end,
    store_reference, supplier_delivery,
)
from streaming import batch_state_updater, shelf_aggregator, wh_aggregator, wh_batch_state_updater

pytestmark = pytest.mark.integration

@pytest.fixture
def clock_at_t0(redis_conn, prefix):
    redis_conn.set(ClockKeys(prefix).now, (T0 + timedelta(hours=1)).isoformat())


reference = store_reference


def shelf_event(kind: str, shelf_id: str, quantity: int | None, minute: float, *,
                actor: str = "customer", batch_code: str | None = None) -> dict:
    return {"event_id": str(uuid.uuid4()), "event_type": kind, "store_id": STORE,
            "shelf_id": shelf_id, "actor": actor,
            "customer_id": str(uuid.uuid4()) if actor == "customer" else None,
            "batch_code": batch_code, "quantity": quantity, "unit_weight": 100.0,
            "delta_weight": None if quantity is not None else -200.0, "plan_id": None,
            "timestamp": at(minute)}


def wh_event(kind: str, lot: dict, quantity: int, minute: float, **dates) -> dict:
    return {"event_id": str(uuid.uuid4()), "event_type": kind, "store_id": STORE,
            "shelf_id": lot["shelf_id"], "batch_code": lot["batch_code"], "quantity": quantity,
            "plan_id": None, "supplier_order_id": None,
            "received_date": str(dates.get("received", lot["received_date"])),
            "expiry_date": str(dates.get("expiry", lot["expiry_date"])),
            "reason": "test", "timestamp": at(minute)}


def by_key(rows: list[dict], *key: str) -> dict:
    return {tuple(r[k] for k in key): r for r in rows if r["store_id"] == STORE}


def published(ctx, topic: str) -> dict:
    """Latest value per key of a compacted topic, as a consumer after compaction sees it."""
    return {m.key().decode(): json.loads(m.value()) for m in consume_all(ctx, topic)}


def test_shelf_aggregator_folds_units_within_capacity_and_replays_idempotently(
        settings, spark, query_ctx, clock_at_t0):
    ctx = query_ctx
    shelves = sorted(reference(settings, "store_inventory"), key=lambda r: r["shelf_id"])
    a, b = shelves[0], shelves[1]
    events = [
        shelf_event("pickup", a["shelf_id"], 2, 1),
        shelf_event("weight_change", a["shelf_id"], None, 1),
        shelf_event("putback", a["shelf_id"], 1, 2),
        shelf_event("pickup", b["shelf_id"], b["current_stock"] + 5, 3),  # more than there is
    ]
    bad = [dict(shelf_event("pickup", "UNKNOWN9999", 1, 4)),
           dict(shelf_event("pickup", a["shelf_id"], -3, 4))]
    produce(ctx, "shelf_events", events + bad + [events[0]])  # the last one is a duplicate

    assert run_to_end(spark, ctx, shelf_aggregator.QUERY) == 7
    state = by_key(delta_rows(ctx, "cleansed/shelf_state"), "shelf_id")
    assert len(state) == len(shelves), "bootstrapped from the reference snapshot"
    assert state[(a["shelf_id"],)]["current_stock"] == a["current_stock"] - 1
    assert state[(a["shelf_id"],)]["version"] == 2
    assert state[(a["shelf_id"],)]["shelf_weight"] == pytest.approx(
        a["item_weight"] * (a["current_stock"] - 1))
    assert state[(b["shelf_id"],)]["current_stock"] == 0, "never below zero"
    assert state[(shelves[2]["shelf_id"],)]["version"] == 1, "untouched"
    assert state[(a["shelf_id"],)]["last_update_ts"] == T0 + timedelta(minutes=2)

    raw = delta_rows(ctx, "raw/shelf_events")
    assert sorted(r["event_id"] for r in raw) == sorted(e["event_id"] for e in events)
    reasons = sorted(r["reason"] for r in delta_rows(ctx, "raw/dead_letter"))
    assert reasons == ["negative quantity", "unknown shelf UNKNOWN9999"]

    topic = published(ctx, "shelf_state")
    assert len(topic) == len(shelves)
    assert topic[f"{STORE}|{a['shelf_id']}"]["current_stock"] == a["current_stock"] - 1
    assert topic[f"{STORE}|{a['shelf_id']}"]["version"] == 2

    replay_last_batch(ctx, shelf_aggregator.NAME)
    run_to_end(spark, ctx, shelf_aggregator.QUERY)
    assert by_key(delta_rows(ctx, "cleansed/shelf_state"), "shelf_id") == state
    assert len(delta_rows(ctx, "raw/shelf_events")) == len(events)


def test_lots_move_with_receipts_refills_removals_and_warehouse_events(
        settings, spark, query_ctx, clock_at_t0):
    ctx = query_ctx
    shelf_lot = reference(settings, "store_batches")[0]
    wh_lot = reference(settings, "warehouse_batches")[0]
    delivered = {"shelf_id": wh_lot["shelf_id"], "batch_code": f"SUP-TEST-{uuid.uuid4().hex[:6]}",
                 "received_date": date(2026, 1, 1), "expiry_date": date(2026, 1, 20)}
    # The warehouse first: a delivery, a pick for the shelf, a removal.
    produce(ctx, "wh_events", [
        supplier_delivery(ctx, delivered, 24, at(1)),
        wh_event("wh_out", wh_lot, 3, 2),
        wh_event("wh_removal", delivered, 4, 3),
    ])
    assert run_to_end(spark, ctx, wh_aggregator.QUERY) == 3
    assert run_to_end(spark, ctx, wh_batch_state_updater.QUERY) == 3
    wh_lots = by_key(delta_rows(ctx, "cleansed/wh_batch_state"), "shelf_id", "batch_code")
    new = wh_lots[(delivered["shelf_id"], delivered["batch_code"])]
    assert (new["batch_quantity_warehouse"], new["expiry_date"]) == (20, date(2026, 1, 20))
    assert wh_lots[(wh_lot["shelf_id"], wh_lot["batch_code"])]["batch_quantity_warehouse"] \
        == wh_lot["batch_quantity"] - 3
    inventory = by_key(reference(settings, "warehouse_inventory"), "shelf_id")
    wh_state = by_key(delta_rows(ctx, "cleansed/wh_state"), "shelf_id")
    moved = {wh_lot["shelf_id"]: -3}
    moved[delivered["shelf_id"]] = moved.get(delivered["shelf_id"], 0) + 20
    for shelf_id, change in moved.items():
        assert wh_state[(shelf_id,)]["wh_current_stock"] \
            == min(inventory[(shelf_id,)]["current_stock"] + change,
                   inventory[(shelf_id,)]["maximum_stock"])
    assert len(delta_rows(ctx, "raw/wh_events")) == 3

    # Then the shelf: a receipt, the refill of the picked lot, a removal.
    receipt = {"event_id": str(uuid.uuid4()), "store_id": STORE,
               "transaction_id": str(uuid.uuid4()), "customer_id": str(uuid.uuid4()),
               "timestamp": at(5), "total_items": 2, "total_amount": 3.0,
               "items": [{"line_no": 1, "shelf_id": shelf_lot["shelf_id"],
                          "batch_code": shelf_lot["batch_code"],
                          "expiry_date": str(shelf_lot["expiry_date"]), "quantity": 2,
                          "unit_price": 1.5, "discount": 0.0, "total_price": 3.0}]}
    produce(ctx, "pos_transactions", [receipt, receipt])  # and its duplicate
    produce(ctx, "shelf_events", [
        shelf_event("putback", wh_lot["shelf_id"], 3, 6, actor="restocker",
                    batch_code=wh_lot["batch_code"]),
        shelf_event("expired_removal", shelf_lot["shelf_id"], 1, 7, actor="system",
                    batch_code=shelf_lot["batch_code"]),
        shelf_event("pickup", shelf_lot["shelf_id"], 1, 8),  # a customer's: no lot named
    ])
    assert run_to_end(spark, ctx, batch_state_updater.QUERY) == 5
    lots = by_key(delta_rows(ctx, "cleansed/shelf_batch_state"), "shelf_id", "batch_code")
    assert lots[(shelf_lot["shelf_id"], shelf_lot["batch_code"])]["batch_quantity_store"] \
        == shelf_lot["batch_quantity"] - 3
    refilled = lots[(wh_lot["shelf_id"], wh_lot["batch_code"])]
    before = next((r["batch_quantity"] for r in reference(settings, "store_batches")
                   if (r["shelf_id"], r["batch_code"]) == (wh_lot["shelf_id"],
                                                           wh_lot["batch_code"])), 0)
    assert refilled["batch_quantity_store"] == before + 3
    assert refilled["expiry_date"] == wh_lot["expiry_date"], "dates of the warehouse lot"
    assert [r["event_id"] for r in delta_rows(ctx, "raw/pos_transactions")] \
        == [receipt["event_id"]]
    topic = published(ctx, "shelf_batch_state")
    key = f"{STORE}|{wh_lot['shelf_id']}|{wh_lot['batch_code']}"
    assert topic[key]["batch_quantity_store"] == before + 3
    assert not delta_rows(ctx, "raw/dead_letter")
