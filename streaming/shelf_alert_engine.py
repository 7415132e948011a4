"""Shelf alert engine: refill requests with restock plans, and near-expiry alerts on shelves.

From `shelf_state` (units per shelf), `shelf_batch_state` (lots), `shelf_policies` (live: a
change re-evaluates the store's shelves at once) and the first clock tick of each simulated day
(re-evaluates near-expiry). A shelf below its policy's threshold percentage or minimum quantity
opens a `refill_request` and, unless a plan for the shelf is still in flight, a restock plan up to
the target percentage (topic `shelf_restock_plan`, handled by the shelf restock manager); the
alert is acknowledged when the plan is issued and resolves when the shelf is back above the line.
One policy per shelf (the most specific), one plan in flight per shelf, alert ids a replay
reproduces; where the reference system differs, docs/behaviour.md says how.
"""

from __future__ import annotations

from datetime import datetime


from smart_shelf_platform.contracts.state import SHELF_BATCH_STATE, SHELF_POLICY, SHELF_STATE
from smart_shelf_platform.rules.expiry import NEAR_EXPIRY_DAYS_STORE
from smart_shelf_platform.rules.replenishment import (
    ShelfPolicy, needs_refill, plan_refill, stock_pct,
)
from streaming import shell
from streaming.alert_engine import POLICY_VERSION, AlertEngine, Decision, iso

NAME = "shelf_alert_engine"


class ShelfAlertEngine(AlertEngine):
    name = NAME
    location = "store"
    stock_source = shell.EventSource("shelf_state", SHELF_STATE)
    quantity_field, capacity_field = "current_stock", "max_stock"
    lots_source = shell.EventSource("shelf_batch_state", SHELF_BATCH_STATE)
    lot_quantity_field = "batch_quantity_store"
    policy_source = shell.EventSource("shelf_policies", SHELF_POLICY, dedupe_on=POLICY_VERSION)
    stock_alert = "refill_request"
    near_expiry_days = NEAR_EXPIRY_DAYS_STORE
    plan_topic, plan_id_field = "shelf_restock_plan", "plan_id"

    def decide(self, key: str, shelf: dict, policies: list[dict], now: datetime) -> Decision:
        policy = self.policy_for(key, policies, lambda p: ShelfPolicy(
            float(p["threshold_pct"]), int(p["min_qty"]), float(p["target_pct"]))) or ShelfPolicy()
        stock, cap = shelf["stock"], shelf["cap"]
        # Lots count units until checkout, the shelf only what is on it: the difference is in
        # carts, and a refill must leave room for it (shoppers put units back).
        in_carts = sum(lot["qty"] for lot in shelf["lots"].values()) - stock
        qty = plan_refill(stock, cap, policy, plan_in_flight=self.in_flight_qty(shelf) > 0,
                          in_carts=in_carts)
        return Decision(
            condition=needs_refill(stock, cap, policy),
            alert_fields={"current_stock": stock, "max_stock": cap,
                          "threshold_pct": policy.threshold_pct, "target_pct": policy.target_pct,
                          "min_qty": policy.min_qty, "stock_pct": round(stock_pct(stock, cap), 2),
                          "suggested_qty": qty},
            plan_qty=qty)

    def plan_record(self, key: str, plan_id: str, qty: int, fields: dict, alert: dict | None,
                    now: datetime) -> dict:
        store_id, shelf_id = key.split("|", 1)
        return {"store_id": store_id, "plan_id": plan_id, "shelf_id": shelf_id,
                "suggested_qty": qty, "status": "pending",
                "alert_id": alert["alert_id"] if alert else None,
                "created_at": iso(now), "updated_at": iso(now)}



QUERY = ShelfAlertEngine.spec("shelf state, lots, policies -> alerts, plans",
                                 pace=2.5)


if __name__ == "__main__":
    shell.run_alone(NAME)
