"""The simulator's ground-truth ledger (Postgres `sim.*`): physical stock as it really is.

The platform never writes these tables; `smart-shelf verify` compares the platform's state with
them after a run drains.
"""

from smart_shelf_platform.contracts.types import (
    BOOL, DATE, INT, LONG, STRING, TIMESTAMP, Field as F, Record,
)

STORE_ID = F("store_id", STRING)
SHELF_ID = F("shelf_id", STRING)
UPDATED_AT = F("updated_at", TIMESTAMP, description="simulated time of the last change")

_LOT = (STORE_ID, SHELF_ID, F("batch_code", STRING), F("received_date", DATE),
        F("expiry_date", DATE), F("quantity", INT), UPDATED_AT)

LEDGER_SHELF_LOT = Record(
    "ledger_shelf_lot", _LOT, key=("store_id", "shelf_id", "batch_code"),
    description="Units of a lot physically on a store shelf (carts excluded).",
)

LEDGER_WH_LOT = Record(
    "ledger_wh_lot", _LOT, key=("store_id", "shelf_id", "batch_code"),
    description="Units of a lot physically in the warehouse.",
)

LEDGER_CART_LOT = Record(
    "ledger_cart_lot",
    (STORE_ID, SHELF_ID, F("batch_code", STRING), F("quantity", INT), UPDATED_AT),
    key=("store_id", "shelf_id", "batch_code"),
    description="Units picked by customers still in the store, not yet paid.",
)

LEDGER_SALES = Record(
    "ledger_daily_sales",
    (STORE_ID, SHELF_ID, F("sale_date", DATE), F("sold_units", INT),
     F("lost_units", INT, description="wanted but the shelf was empty"),
     F("lost_attempts", INT), UPDATED_AT,
     F("lost_units_wh_empty", INT, description="of lost_units, lost while the warehouse held "
                                               "none and none was on its way to the shelf")),
    key=("store_id", "shelf_id", "sale_date"),
    description="Units sold and sales lost to empty shelves, per shelf and simulated day.",
)

LEDGER_WASTE = Record(
    "ledger_daily_waste",
    (STORE_ID, SHELF_ID, F("waste_date", DATE),
     F("shelf_units", INT, description="expired units the staff took off the shelf"),
     F("warehouse_units", INT, description="expired units removed from the warehouse"),
     UPDATED_AT),
    key=("store_id", "shelf_id", "waste_date"),
    description="Expired units thrown away per product and simulated day (waste).",
)

LEDGER_BAD_EVENT = Record(
    "ledger_bad_event",
    (STORE_ID, F("bad_event_id", STRING), F("stream", STRING),
     F("defect", STRING, description="what was broken on purpose"),
     F("event_id", STRING, nullable=True, description="when the payload still carries one"),
     F("payload", STRING), F("injected_at", TIMESTAMP)),
    key=("store_id", "bad_event_id"),
    description="Malformed events injected on purpose (they must end in the dead letters).",
)

LEDGER_POSITION = Record(
    "ledger_position",
    (STORE_ID, F("seed", LONG), F("sim_time", TIMESTAMP), F("events_emitted", LONG),
     F("customers", LONG), F("finished", BOOL), F("updated_wall", TIMESTAMP)),
    key=("store_id",),
    description="How far the simulator got per store; the ledger is exact up to sim_time.",
)
