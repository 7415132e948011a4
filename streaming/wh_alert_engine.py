"""Warehouse alert engine: supplier requests with rule-based supplier plans, and warehouse
near-expiry alerts.

From `wh_state`, `wh_batch_state`, `wh_policies` (live) and `clock_ticks`. A product whose
warehouse stock is below its reorder point (the most specific active policy, else 5 % of the
warehouse capacity) opens a `supplier_request`; a supplier plan of whole standard batches is
added when stock on hand plus the plans in flight is still below the reorder point, within the
free capacity (topic `wh_supplier_plan`, ordered by the supplier manager). Unlike the reference
system: no "resolved" flood for healthy shelves, in-transit quantities count.
`SMART_SHELF_SUPPLIER_RULE=reference` plans with the reference's own rule instead, for the
loop's lost-sales comparison.
"""

from __future__ import annotations

from datetime import datetime

from smart_shelf_platform.contracts.state import WH_BATCH_STATE, WH_POLICY, WH_STATE
from smart_shelf_platform.rules.expiry import NEAR_EXPIRY_DAYS_WAREHOUSE
from smart_shelf_platform.rules.replenishment import (
    default_reorder_point, reference_supplier_order_quantity, stock_pct,
    supplier_order_quantity,
)
from streaming import shell
from streaming.alert_engine import POLICY_VERSION, AlertEngine, Decision, iso

NAME = "wh_alert_engine"


class WarehouseAlertEngine(AlertEngine):
    name = NAME
    location = "warehouse"
    stock_source = shell.EventSource("wh_state", WH_STATE)
    quantity_field, capacity_field = "wh_current_stock", "wh_max_stock"
    lots_source = shell.EventSource("wh_batch_state", WH_BATCH_STATE)
    lot_quantity_field = "batch_quantity_warehouse"
    policy_source = shell.EventSource("wh_policies", WH_POLICY, dedupe_on=POLICY_VERSION)
    stock_alert = "supplier_request"
    near_expiry_days = NEAR_EXPIRY_DAYS_WAREHOUSE
    plan_topic, plan_id_field = "wh_supplier_plan", "supplier_plan_id"

    def decide(self, key: str, shelf: dict, policies: list[dict], now: datetime) -> Decision:
        stock, cap = shelf["stock"], shelf["cap"]
        reorder_point = self.policy_for(key, policies, lambda p: int(p["reorder_point_qty"]))
        if reorder_point is None:
            reorder_point = default_reorder_point(cap)
        batch_size = self.profiles[key]["standard_batch_size"]
        in_flight = self.in_flight_qty(shelf)  # also forgets plans the stock now shows
        if self.ctx.settings.supplier_rule == "reference":
            # The reference kept one pending plan per shelf (a newer one replaced it) and
            # ignored orders on their way.
            pending = any(p["status"] == "pending" for p in shelf["plans"].values())
            qty = 0 if pending else reference_supplier_order_quantity(stock, reorder_point,
                                                                      batch_size)
        else:
            qty = supplier_order_quantity(stock, in_flight, reorder_point, cap, batch_size)
        return Decision(
            condition=stock < reorder_point,
            alert_fields={"current_stock": stock, "max_stock": cap, "min_qty": reorder_point,
                          "stock_pct": round(stock_pct(stock, cap), 2), "suggested_qty": qty},
            plan_qty=qty, plan_fields={"standard_batch_size": batch_size})

    def plan_record(self, key: str, plan_id: str, qty: int, fields: dict, alert: dict | None,
                    now: datetime) -> dict:
        store_id, shelf_id = key.split("|", 1)
        return {"store_id": store_id, "supplier_plan_id": plan_id, "shelf_id": shelf_id,
                "suggested_qty": qty, "standard_batch_size": fields["standard_batch_size"],
                "source": "rule", "status": "pending",
                "created_at": iso(now), "updated_at": iso(now),
                "model_name": None, "model_version": None, "order_quantile": None}



QUERY = WarehouseAlertEngine.spec("warehouse state, lots, policies -> alerts, plans",
                                 pace=2.5)


if __name__ == "__main__":
    shell.run_alone(NAME)
