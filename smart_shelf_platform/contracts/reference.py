"""Reference data: the generated store catalogue and its bootstrap stock (Postgres `ref.*`)."""

from smart_shelf_platform.contracts.types import (
    BOOL, DATE, DOUBLE, INT, STRING, TIMESTAMP, Field as F, Record, decimal,
)

STORE_ID = F("store_id", STRING)
SHELF_ID = F("shelf_id", STRING)
CATEGORY = F("item_category", STRING)
SUBCATEGORY = F("item_subcategory", STRING)
SNAPSHOT_TS = F("snapshot_ts", TIMESTAMP, description="simulated time the snapshot describes")

STORE = Record(
    "store",
    (STORE_ID, F("store_name", STRING), F("city", STRING), F("timezone", STRING),
     F("sim_start", TIMESTAMP)),
    key=("store_id",),
    description="A store of the chain.",
)

STORE_INVENTORY = Record(
    "store_inventory",
    (STORE_ID, SHELF_ID, F("aisle", INT), CATEGORY, SUBCATEGORY, F("perishable", BOOL),
     F("item_weight", DOUBLE), F("shelf_weight", DOUBLE), F("item_visibility", decimal(10, 6)),
     F("maximum_stock", INT), F("current_stock", INT), F("item_price", decimal(10, 2)),
     F("standard_batch_size", INT), SNAPSHOT_TS),
    key=("store_id", "shelf_id"),
    description="Store shelves at the simulation start.",
)

WAREHOUSE_INVENTORY = Record(
    "warehouse_inventory",
    (STORE_ID, SHELF_ID, F("aisle", INT), CATEGORY, SUBCATEGORY, F("perishable", BOOL),
     F("item_weight", DOUBLE), F("maximum_stock", INT), F("current_stock", INT),
     F("item_price", decimal(10, 2)), F("standard_batch_size", INT), SNAPSHOT_TS),
    key=("store_id", "shelf_id"),
    description="Warehouse stock per product at the simulation start.",
)

_BATCH_FIELDS = (
    STORE_ID, SHELF_ID, F("batch_code", STRING), CATEGORY, SUBCATEGORY,
    F("standard_batch_size", INT), F("received_date", DATE), F("expiry_date", DATE),
    F("batch_quantity", INT), SNAPSHOT_TS,
)

STORE_BATCH = Record(
    "store_batch", _BATCH_FIELDS, key=("store_id", "batch_code"),
    description="Lots on the store shelves at the simulation start.",
)

WAREHOUSE_BATCH = Record(
    "warehouse_batch", _BATCH_FIELDS, key=("store_id", "batch_code"),
    description="Lots in the warehouse at the simulation start.",
)

WEEKLY_DISCOUNT = Record(
    "weekly_discount",
    (STORE_ID, F("week_start", DATE), SHELF_ID, F("week_index", INT), F("week_end", DATE),
     F("discount_pct", decimal(5, 4)), F("original_price", decimal(10, 2)),
     F("discounted_price", decimal(10, 2))),
    key=("store_id", "week_start", "shelf_id"),
    description="Planned weekly promotions (week_end inclusive).",
)
