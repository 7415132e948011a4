"""Which warehouse receipts are the platform's own (`streaming.provenance.refusal`) and which
lots a receipt may name (`unknown_lots`): pure."""

from __future__ import annotations

import uuid

import pytest

from streaming.ids import restock_event_id, supplier_id
from streaming.provenance import refusal, unknown_lots

ORDER_ID, PLAN_ID = str(uuid.uuid4()), str(uuid.uuid4())
ORDERS = {("S001", ORDER_ID): {"order_id": ORDER_ID, "shelf_id": "SH1", "total_qty": 24}}
PLANS = {("S001", PLAN_ID): {"plan_id": PLAN_ID, "shelf_id": "SH1"}}
DELIVERY = {"event_id": supplier_id("wh_in", ORDER_ID), "store_id": "S001", "shelf_id": "SH1",
            "batch_code": "SUP-20260102-SH1", "quantity": 24, "plan_id": None,
            "supplier_order_id": ORDER_ID, "reason": "supplier_delivery"}
RETURN = {"event_id": restock_event_id("refill_return", PLAN_ID, "B7"), "store_id": "S001",
          "shelf_id": "SH1", "batch_code": "B7", "quantity": 3, "plan_id": PLAN_ID,
          "supplier_order_id": None, "reason": "refill_return"}


def test_the_platform_s_own_delivery_and_return_are_taken():
    assert refusal(DELIVERY, ORDERS, PLANS) is None
    assert refusal(RETURN, ORDERS, PLANS) is None


@pytest.mark.parametrize(("changes", "reason"), [
    ({"supplier_order_id": str(uuid.uuid4())},
     "supplier delivery of an order the platform did not place"),
    ({"supplier_order_id": None}, "supplier delivery of an order the platform did not place"),
    ({"store_id": "S002"}, "supplier delivery of an order the platform did not place"),
    ({"shelf_id": "SH2"}, "supplier delivery of an order the platform did not place"),
    ({"quantity": 500}, "supplier delivery of 500 units for an order of 24"),
    ({"event_id": str(uuid.uuid4())}, "supplier delivery whose id is not its order's"),
    ({"reason": "gift"}, "wh_in for 'gift': only supplier deliveries and refill returns come in"),
])
def test_a_delivery_that_is_not_its_order_s_is_refused(changes, reason):
    assert refusal(DELIVERY | changes, ORDERS, PLANS) == reason


@pytest.mark.parametrize(("changes", "reason"), [
    ({"plan_id": str(uuid.uuid4())}, "refill return of a pick the platform did not make"),
    ({"shelf_id": "SH2"}, "refill return of a pick the platform did not make"),
    ({"batch_code": "B8"}, "refill return whose id is not its pick's"),
])
def test_a_return_that_is_not_its_pick_s_is_refused(changes, reason):
    assert refusal(RETURN | changes, ORDERS, PLANS) == reason


def test_a_receipt_may_name_reference_lots_and_lots_the_platform_s_orders_delivered():
    reference = {("S001", "SH1", "B7")}
    orders = [{"store_id": "S001", "shelf_id": "SH1", "delivery_date": "2026-01-02"}]
    named = {("S001", "SH1", "B7"), ("S001", "SH1", "SUP-20260102-SH1"),
             ("S001", "SH1", "SUP-20260103-SH1"),  # no delivery that day
             ("S001", "SH2", "SUP-20260102-SH1"),  # another shelf's lot
             ("S002", "SH1", "SUP-20260102-SH1"),  # another store's
             ("S001", "SH2", "B7"), ("S001", "SH1", "FORGED-1")}
    assert unknown_lots(named, reference, orders) == {
        ("S001", "SH1", "SUP-20260103-SH1"), ("S001", "SH2", "SUP-20260102-SH1"),
        ("S002", "SH1", "SUP-20260102-SH1"), ("S001", "SH2", "B7"), ("S001", "SH1", "FORGED-1")}
