"""Append-only events: what producers, the clock and the streaming jobs put on the event topics.

Every event has a deterministic `event_id` (the deduplication key) and carries `store_id`.
Times are simulated UTC time from the shared clock.
"""

from smart_shelf_platform.contracts import enums
from smart_shelf_platform.contracts.types import (
    DATE, DOUBLE, INT, LONG, STRING, TIMESTAMP, UUID, Field as F, Record, array_of, decimal,
)

EVENT_ID = F("event_id", UUID, description="deterministic id, the deduplication key")
STORE_ID = F("store_id", STRING, description="store the event happened in, e.g. S001")
TIMESTAMP_F = F("timestamp", TIMESTAMP, description="simulated time the event happened")

FOOT_TRAFFIC = Record(
    "foot_traffic",
    (
        EVENT_ID,
        F("event_type", enums.FOOT_TRAFFIC_EVENT.type),
        STORE_ID,
        F("customer_id", UUID),
        TIMESTAMP_F,
        F("weekday", STRING, description="English weekday name of the entry"),
        F("time_slot", STRING, description="store time slot of the entry, HH:MM-HH:MM"),
        F("trip_duration_minutes", INT, nullable=True, description="set on exit"),
    ),
    key=("store_id", "event_id"),
    description="A customer entering or leaving a store.",
)

SHELF_EVENT = Record(
    "shelf_event",
    (
        EVENT_ID,
        F("event_type", enums.SHELF_EVENT.type),
        STORE_ID,
        F("shelf_id", STRING),
        F("actor", enums.SHELF_ACTOR.type),
        F("customer_id", UUID, nullable=True, description="set when actor = customer"),
        F("batch_code", STRING, nullable=True, description="lot moved, for refills and removals"),
        F("quantity", INT, nullable=True, description="units; null for weight_change"),
        F("unit_weight", DOUBLE, nullable=True, description="grams or ml per unit"),
        F("delta_weight", DOUBLE, nullable=True, description="weight_change only: signed grams"),
        F("plan_id", UUID, nullable=True, description="restock plan behind a refill putback"),
        TIMESTAMP_F,
    ),
    key=("store_id", "event_id"),
    description="A shelf sensor reading: pickup, putback, weight change, or an expired-lot removal.",
)

POS_LINE = Record(
    "pos_transaction_line",
    (
        F("line_no", INT),
        F("shelf_id", STRING),
        F("batch_code", STRING, nullable=True),
        F("expiry_date", DATE, nullable=True),
        F("quantity", INT),
        F("unit_price", decimal(10, 2)),
        F("discount", decimal(5, 4), description="fraction off the unit price, 0..0.95"),
        F("total_price", decimal(12, 2)),
    ),
    key=("line_no",),
    description="One line of a receipt: units of one shelf from one batch.",
)

POS_TRANSACTION = Record(
    "pos_transaction",
    (
        EVENT_ID,
        STORE_ID,
        F("transaction_id", UUID),
        F("customer_id", UUID),
        TIMESTAMP_F,
        F("total_items", INT),
        F("total_amount", decimal(12, 2)),
        F("items", array_of(POS_LINE)),
    ),
    key=("store_id", "event_id"),
    description="A checkout receipt (one per customer with a non-empty cart).",
)

# `wh_in` of units a restocker brought back because they did not fit on the shelf: they were
# picked (`wh_out`) and are in transit, not a supplier's delivery.
REFILL_RETURN = "refill_return"

WH_EVENT = Record(
    "wh_event",
    (
        EVENT_ID,
        F("event_type", enums.WH_EVENT.type),
        STORE_ID,
        F("shelf_id", STRING),
        F("batch_code", STRING),
        F("quantity", INT),
        F("plan_id", UUID, nullable=True,
          description="restock plan of a wh_out, or of a refill_return wh_in"),
        F("supplier_order_id", UUID, nullable=True, description="order delivered by a wh_in"),
        F("received_date", DATE),
        F("expiry_date", DATE),
        F("reason", STRING, description="shelf_restock (wh_out), supplier_delivery (wh_in), "
                                         "refill_return (wh_in: picked units that did not fit "
                                         "on the shelf), expired (wh_removal)"),
        TIMESTAMP_F,
    ),
    key=("store_id", "event_id"),
    description="A warehouse movement of one lot: in from a supplier (or back from a shelf it "
                "did not fit on), out to a shelf, or removed.",
)

RESTOCK_TASK = Record(
    "restock_task",
    (
        F("event_id", UUID, description="the task's id, uuid5 of its pick's event id; the "
                                        "deduplication key"),
        STORE_ID,
        F("shelf_id", STRING),
        F("plan_id", UUID, nullable=True, description="restock plan of the pick"),
        F("pick_event_id", UUID, description="the wh_out that sent the units on their way"),
        F("batch_code", STRING, description="lot picked"),
        F("quantity", INT, description="units picked, in transit to the shelf"),
        F("timestamp", TIMESTAMP, description="simulated time the task is due: the pick's time "
                                              "plus the refill delay"),
    ),
    key=("store_id", "event_id"),
    description="A refill task for the store's restocker: put the units of one warehouse pick "
                "on their shelf when due. The restocker reports what fitted as a putback.",
)

ALERT = Record(
    "alert",
    (
        F("alert_id", UUID, description="deterministic: type, store, shelf, location, episode"),
        STORE_ID,
        F("alert_type", enums.ALERT_TYPE.type),
        F("shelf_id", STRING),
        F("location", enums.LOCATION.type),
        F("status", enums.ALERT_STATUS.type),
        F("current_stock", INT, nullable=True),
        F("max_stock", INT, nullable=True),
        F("threshold_pct", decimal(5, 2), nullable=True),
        F("target_pct", decimal(5, 2), nullable=True),
        F("min_qty", INT, nullable=True),
        F("stock_pct", decimal(6, 2), nullable=True),
        F("suggested_qty", INT, nullable=True),
        F("batch_code", STRING, nullable=True),
        F("expiry_date", DATE, nullable=True),
        F("created_at", TIMESTAMP, description="simulated time the alert opened"),
        F("updated_at", TIMESTAMP, description="simulated time of this status"),
    ),
    key=("store_id", "alert_id"),
    description="An alert and each of its lifecycle steps (open -> acknowledged -> resolved).",
)

CLOCK_TICK = Record(
    "clock_tick",
    (
        F("tick_id", STRING, description="simulated minute, ISO-8601; the deduplication key"),
        F("sim_time", TIMESTAMP),
        F("sim_date", DATE),
        F("wall_time", TIMESTAMP),
        F("speed", DOUBLE, description="simulated seconds per wall-clock second"),
    ),
    key=("tick_id",),
    description="One tick per simulated minute; drives every time-based step. Global to all stores.",
)

DEAD_LETTER = Record(
    "dead_letter",
    (
        EVENT_ID,
        F("store_id", STRING, nullable=True, description="when it could be read from the payload"),
        F("source", STRING, description="topic or stream the record came from"),
        F("source_partition", INT, nullable=True),
        F("source_offset", LONG, nullable=True),
        F("detected_by", STRING, description="query or process that rejected it"),
        F("reason", STRING),
        F("payload", STRING, description="the original bytes, UTF-8 (base64: prefix if binary)"),
        F("received_at", TIMESTAMP),
    ),
    key=("event_id",),
    description="A record that broke its contract, kept with the reason instead of being dropped.",
)

ALL_EVENTS = (FOOT_TRAFFIC, SHELF_EVENT, POS_TRANSACTION, WH_EVENT, RESTOCK_TASK, ALERT, CLOCK_TICK,
              DEAD_LETTER)
