"""Closed value sets shared by events, state and tables (one Postgres enum type each)."""

from smart_shelf_platform.contracts.types import Enum

FOOT_TRAFFIC_EVENT = Enum("ops.foot_traffic_event_type", ("entry", "exit"))
SHELF_EVENT = Enum("ops.shelf_event_type", ("pickup", "putback", "weight_change", "expired_removal"))
SHELF_ACTOR = Enum("ops.shelf_actor", ("customer", "restocker", "system"))
WH_EVENT = Enum("ops.wh_event_type", ("wh_in", "wh_out", "wh_removal"))
LOCATION = Enum("ops.stock_location", ("store", "warehouse"))
ALERT_TYPE = Enum(
    "ops.alert_type",
    ("refill_request", "near_expiry", "supplier_request", "near_expiry_discount", "expired_removal"),
)
ALERT_STATUS = Enum("ops.alert_status", ("open", "acknowledged", "resolved", "dismissed"))
PLAN_STATUS = Enum("ops.plan_status", ("pending", "issued", "completed", "canceled"))
PLAN_SOURCE = Enum("ops.plan_source", ("rule", "model"))
ORDER_STATUS = Enum("ops.order_status", ("issued", "delivered", "canceled"))

ALL_ENUMS = (
    FOOT_TRAFFIC_EVENT, SHELF_EVENT, SHELF_ACTOR, WH_EVENT, LOCATION,
    ALERT_TYPE, ALERT_STATUS, PLAN_STATUS, PLAN_SOURCE, ORDER_STATUS,
)
