"""Deliberately malformed events (`--bad-events RATE`), to prove the dead-letter path.

Bad events are extra copies of real events with one defect each, under a fresh event id, so the
valid stream (and the physical ledger) is the same with or without them. They use their own
random stream for the same reason. Each one is recorded in the ledger with its defect.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

BAD_NAMESPACE = uuid.UUID("0d6f9d2e-7f55-5f3c-8d39-3a3a2d8f6b1e")

# defect -> topics it can be applied to
DEFECTS = {
    "broken_json": ("foot_traffic", "shelf_events", "pos_transactions"),
    "wrong_type": ("foot_traffic", "shelf_events", "pos_transactions"),
    "missing_field": ("foot_traffic", "shelf_events", "pos_transactions"),
    "future_timestamp": ("foot_traffic", "shelf_events", "pos_transactions"),
    "unknown_shelf": ("shelf_events",),
    "negative_quantity": ("shelf_events",),
}
FUTURE = timedelta(days=400)


@dataclass(frozen=True)
class BadEvent:
    store_id: str
    bad_event_id: str
    topic: str
    defect: str
    event_id: str | None
    payload: bytes


class BadEventInjector:
    def __init__(self, seed: int, store_id: str, rate: float):
        if not 0 <= rate <= 1:
            raise ValueError("--bad-events is a fraction between 0 and 1")
        self.rate = rate
        self.store_id = store_id
        self.rng = random.Random(f"{seed}:{store_id}:bad-events")
        self.count = 0

    def maybe_corrupt(self, topic: str, record: dict) -> BadEvent | None:
        if self.rate == 0 or topic not in DEFECTS["broken_json"]:
            return None
        if self.rng.random() >= self.rate:
            return None
        defects = [d for d, topics in DEFECTS.items() if topic in topics]
        defect = defects[self.rng.randrange(len(defects))]
        self.count += 1
        bad_id = str(uuid.uuid5(BAD_NAMESPACE, f"{self.store_id}:{self.count}"))
        event = dict(record, event_id=bad_id)
        payload = corrupt(defect, topic, event)
        return BadEvent(self.store_id, bad_id, topic, defect, None if defect == "broken_json" else bad_id,
                        payload)


def corrupt(defect: str, topic: str, event: dict) -> bytes:
    if defect == "broken_json":
        text = json.dumps(event)
        return text[: len(text) // 2].encode()
    event = dict(event)
    if defect == "wrong_type":
        field = {"shelf_events": "quantity", "pos_transactions": "total_items",
                 "foot_traffic": "customer_id"}[topic]
        event[field] = {"not": "a scalar"} if topic == "foot_traffic" else "many"
    elif defect == "missing_field":
        del event["timestamp"]
    elif defect == "future_timestamp":
        at = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")) + FUTURE
        event["timestamp"] = at.isoformat().replace("+00:00", "Z")
    elif defect == "unknown_shelf":
        event["shelf_id"] = "UNKNOWN9999"
    elif defect == "negative_quantity":
        event["quantity"] = -abs(event["quantity"] or 1)
    return json.dumps(event, separators=(",", ":")).encode()
