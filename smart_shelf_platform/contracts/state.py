"""Compacted state and metadata: absolute values keyed by their logical key, one writer each.

The same records are the rows of the Delta `cleansed/` and `ops/` tables, the values of the
compacted Kafka topics and the rows of the Postgres mirrors, so a mirror can be compared with its
source field by field. `version` increases with every change of a key, so a consumer can drop a
stale update and a replay is recognisable.
"""

from smart_shelf_platform.contracts import enums
from smart_shelf_platform.contracts.types import (
    BOOL, DATE, DOUBLE, INT, LONG, STRING, TIMESTAMP, UUID, Field as F, Record, decimal,
)

STORE_ID = F("store_id", STRING)
SHELF_ID = F("shelf_id", STRING)
BATCH_CODE = F("batch_code", STRING)
VERSION = F("version", LONG, description="increases with every change of this key")
LAST_UPDATE = F("last_update_ts", TIMESTAMP, description="simulated time of the last change")
CREATED_AT = F("created_at", TIMESTAMP)
UPDATED_AT = F("updated_at", TIMESTAMP)

SHELF_STATE = Record(
    "shelf_state",
    (STORE_ID, SHELF_ID, F("current_stock", INT), F("max_stock", INT),
     F("unit_weight", DOUBLE), F("shelf_weight", DOUBLE, description="unit_weight x current_stock"),
     VERSION, LAST_UPDATE),
    key=("store_id", "shelf_id"),
    description="Units on a store shelf, within [0, max_stock].",
)

WH_STATE = Record(
    "wh_state",
    (STORE_ID, SHELF_ID, F("wh_current_stock", INT), F("wh_max_stock", INT), VERSION, LAST_UPDATE),
    key=("store_id", "shelf_id"),
    description="Units of a product in the store's warehouse, within [0, wh_max_stock].",
)

SHELF_BATCH_STATE = Record(
    "shelf_batch_state",
    (STORE_ID, SHELF_ID, BATCH_CODE, F("received_date", DATE), F("expiry_date", DATE),
     F("batch_quantity_store", INT), VERSION, LAST_UPDATE),
    key=("store_id", "shelf_id", "batch_code"),
    description="Units of one lot on a store shelf.",
)

WH_BATCH_STATE = Record(
    "wh_batch_state",
    (STORE_ID, SHELF_ID, BATCH_CODE, F("received_date", DATE), F("expiry_date", DATE),
     F("batch_quantity_warehouse", INT), VERSION, LAST_UPDATE),
    key=("store_id", "shelf_id", "batch_code"),
    description="Units of one lot in the warehouse.",
)

DAILY_DISCOUNT = Record(
    "daily_discount",
    (STORE_ID, SHELF_ID, F("discount_date", DATE),
     F("discount", decimal(5, 4), description="fraction off, from the near-expiry ladder"),
     F("days_to_expiry", INT, description="of the earliest lot that earned the discount"),
     CREATED_AT),
    key=("store_id", "shelf_id", "discount_date"),
    description="Near-expiry discount of a shelf for one simulated day.",
)

SHELF_RESTOCK_PLAN = Record(
    "shelf_restock_plan",
    (STORE_ID, F("plan_id", UUID), SHELF_ID, F("suggested_qty", INT),
     F("status", enums.PLAN_STATUS.type), F("alert_id", UUID, nullable=True),
     CREATED_AT, UPDATED_AT),
    key=("store_id", "plan_id"),
    description="Move units from the warehouse to a shelf (pending -> issued -> completed).",
)

WH_SUPPLIER_PLAN = Record(
    "wh_supplier_plan",
    (STORE_ID, F("supplier_plan_id", UUID), SHELF_ID, F("suggested_qty", INT),
     F("standard_batch_size", INT), F("source", enums.PLAN_SOURCE.type),
     F("status", enums.PLAN_STATUS.type), CREATED_AT, UPDATED_AT,
     F("model_name", STRING, nullable=True, description="the forecast's model (source model)"),
     F("model_version", STRING, nullable=True),
     F("order_quantile", DOUBLE, nullable=True,
       description="the quantile of interval demand the model's order tops up to")),
    key=("store_id", "supplier_plan_id"),
    description="Units to order from the supplier at the next cutoff (pending -> issued -> "
                "completed; canceled: a rule's plan the model's decision replaced at a cutoff).",
)

WH_SUPPLIER_ORDER = Record(
    "wh_supplier_order",
    (STORE_ID, F("order_id", UUID), SHELF_ID, F("delivery_date", DATE), F("total_qty", INT),
     F("standard_batch_size", INT), F("status", enums.ORDER_STATUS.type),
     F("cutoff_ts", TIMESTAMP), F("delivery_ts", TIMESTAMP), CREATED_AT, UPDATED_AT),
    key=("store_id", "order_id"),
    description="One supplier order per shelf and delivery slot, placed at a cutoff.",
)

WH_SUPPLIER_RECEIPT = Record(
    "wh_supplier_receipt",
    (STORE_ID, F("receipt_id", UUID), F("order_id", UUID), SHELF_ID, F("delivery_date", DATE),
     BATCH_CODE, F("received_qty", INT), F("expiry_date", DATE), CREATED_AT),
    key=("store_id", "receipt_id"),
    description="A delivered supplier order: the lot that entered the warehouse.",
)

_SCOPE = (
    F("shelf_id", STRING, nullable=True, description="null with null category = store-wide"),
    F("item_category", STRING, nullable=True),
    F("item_subcategory", STRING, nullable=True),
)

SHELF_POLICY = Record(
    "shelf_policy",
    (STORE_ID, F("policy_id", UUID), *_SCOPE,
     F("threshold_pct", decimal(5, 2), description="refill when stock % of max is below"),
     F("min_qty", INT, description="refill when stock is below, whatever the %"),
     F("target_pct", decimal(5, 2), description="refill up to this % of max"),
     F("active", BOOL), F("notes", STRING, nullable=True), CREATED_AT, UPDATED_AT),
    key=("store_id", "policy_id"),
    description="Shelf refill policy; the most specific active scope wins.",
)

WH_POLICY = Record(
    "wh_policy",
    (STORE_ID, F("policy_id", UUID), *_SCOPE,
     F("reorder_point_qty", INT, description="order from the supplier when stock is below"),
     F("active", BOOL), F("notes", STRING, nullable=True), CREATED_AT, UPDATED_AT),
    key=("store_id", "policy_id"),
    description="Warehouse reorder policy; the most specific active scope wins.",
)

SHELF_PROFILE = Record(
    "shelf_profile",
    (STORE_ID, SHELF_ID, F("item_category", STRING), F("item_subcategory", STRING),
     F("item_weight", DOUBLE), F("max_stock", INT), F("wh_max_stock", INT),
     F("standard_batch_size", INT), F("perishable", BOOL), CREATED_AT, UPDATED_AT),
    key=("store_id", "shelf_id"),
    description="Static facts about a shelf that the streaming jobs look up.",
)

BATCH_CATALOG = Record(
    "batch_catalog",
    (STORE_ID, BATCH_CODE, SHELF_ID, F("received_date", DATE), F("expiry_date", DATE),
     F("standard_batch_size", INT), CREATED_AT, UPDATED_AT),
    key=("store_id", "batch_code"),
    description="Every lot known to the store, with its dates.",
)
