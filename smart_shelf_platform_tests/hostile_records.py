"""Hostile records: what a misbehaving producer, a buggy bridge or an attacker with access to
Kafka could write straight to the platform's input topics, each with the reason the platform
must refuse it for.

`hostile_records(valid)` builds them from one valid record per topic (taken from a real run),
so every field of every contract, receipt lines' too, is tried: missing, null, of the wrong
type, out of range, plus
bytes that are not JSON, not UTF-8, not an object, too big, NaN, unknown shelves, stores and
lots, zero units where there must be some, receipts that do not add up, times far in the
future and the past, warehouse receipts the platform never ordered, and clock ticks the clock
never sent. Each hostile record must
end in the dead letters with its reason and change nothing else.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from smart_shelf_platform.clock import iso_utc, parse_utc, tick_event
from smart_shelf_platform.contracts.catalogue import TOPICS_BY_NAME

# Topics a producer or Kafka Connect writes and the streaming application reads.
INPUT_TOPICS = ("shelf_events", "pos_transactions", "wh_events", "foot_traffic",
                "shelf_policies", "wh_policies")
WRONG_VALUE = {"string": 42, "uuid": "not-a-uuid", "enum": "stolen", "int": "many",
               "long": [1], "double": "heavy", "decimal": {"x": 1}, "bool": "yes",
               "timestamp": "yesterday", "date": "soon", "array": "none", "json": 3}
WRONG_REASON = {"uuid": "not a uuid", "int": "not an integer", "long": "not an integer",
                "double": "not a number", "decimal": "not a number", "bool": "not a boolean",
                "timestamp": "not an ISO-8601 timestamp", "date": "not an ISO-8601 date",
                "array": "not an array", "json": "not a string", "string": "not a string"}


@dataclass(frozen=True)
class Hostile:
    topic: str
    payload: bytes | None
    reason: str  # a part of the dead letter's reason
    what: str  # what the record tries, for failure messages


def _encoded(record: dict) -> bytes:
    return json.dumps(record).encode()


def field_attacks(topic: str, valid: dict) -> list[Hostile]:
    """Every field of the topic's contract missing, null and of the wrong type."""
    record = TOPICS_BY_NAME[topic].record
    out = []
    for field in record.fields:
        kind = field.type.kind
        wrong = dict(valid, **{field.name: WRONG_VALUE[kind]})
        reason = (f"{field.name}: '" if kind == "enum"
                  else f"{field.name}: {WRONG_REASON[kind]}")
        out.append(Hostile(topic, _encoded(wrong), reason, f"{field.name} of the wrong type"))
        if not field.nullable:
            missing = {k: v for k, v in valid.items() if k != field.name}
            out.append(Hostile(topic, _encoded(missing), f"missing field {field.name}",
                               f"{field.name} missing"))
            out.append(Hostile(topic, _encoded(dict(valid, **{field.name: None})),
                               f"missing field {field.name}", f"{field.name} null"))
    return out


def line_attacks(topic: str, valid: dict) -> list[Hostile]:
    """Every field of a receipt line missing, null and of the wrong type."""
    item = TOPICS_BY_NAME[topic].record["items"].type.item
    line = valid["items"][0]
    out = []
    for field in item.fields:
        name = f"items[].{field.name}"
        variants = [({**line, field.name: WRONG_VALUE[field.type.kind]},
                     f"{name}: {WRONG_REASON[field.type.kind]}", "of the wrong type")]
        if not field.nullable:
            variants += [({k: v for k, v in line.items() if k != field.name},
                          f"missing field {name}", "missing"),
                         ({**line, field.name: None}, f"missing field {name}", "null")]
        out += [Hostile(topic, _encoded(_one_line(valid, bad)), reason, f"{name} {what}")
                for bad, reason, what in variants]
    return out


def envelope_attacks(topic: str, valid: dict) -> list[Hostile]:
    return [
        Hostile(topic, None, "empty payload", "no value"),
        Hostile(topic, b"", "malformed JSON", "empty bytes"),
        Hostile(topic, b"\xff\xfe\x00garbage", "payload is not UTF-8 text", "binary"),
        Hostile(topic, b"{\"event_id\": ", "malformed JSON", "truncated JSON"),
        Hostile(topic, b"[1, 2, 3]", "payload is not a JSON object", "a JSON array"),
        Hostile(topic, b"\"hello\"", "payload is not a JSON object", "a JSON string"),
        Hostile(topic, _encoded(dict(valid, padding="x" * 200_000)), "unexpected field padding",
                "oversize record"),
    ]


def event_attacks(topic: str, valid: dict) -> list[Hostile]:
    """Out-of-range values, unknown places and impossible times of an event topic, each a new
    event (its own id: with the valid record's id it would be dropped as a repeat of it)."""
    at = parse_utc(valid["timestamp"])
    out = [
        Hostile(topic, _encoded(dict(valid, timestamp="2099-01-01T12:00:00Z")),
                "timestamp in the future", "far future"),
        Hostile(topic, _encoded(dict(valid, timestamp="1970-01-01T00:00:00Z")),
                "timestamp before the simulation's start", "far past"),
        Hostile(topic, _encoded(dict(valid, timestamp=iso_utc(at - timedelta(days=2)))),
                "timestamp before the simulation's start", "before the start"),
        Hostile(topic, _encoded(dict(valid, store_id="S999")), "unknown store S999",
                "unknown store"),
    ]
    if "shelf_id" in valid:
        out.append(Hostile(topic, _encoded(dict(valid, shelf_id="NOSUCHSHELF")),
                           "unknown shelf NOSUCHSHELF", "unknown shelf"))
    if "quantity" in valid:
        out += [Hostile(topic, _encoded(dict(valid, quantity=-5)), "negative quantity",
                        "negative quantity"),
                Hostile(topic, _encoded(dict(valid, quantity=1e308)),
                        "quantity: not an integer", "1e308"),
                Hostile(topic, _encoded(dict(valid, quantity=2 ** 40)),
                        "quantity: not an integer", "integer overflow")]
    if "items" in valid:
        line = valid["items"][0]
        for changes, reason in (({"quantity": -3}, "negative items[].quantity"),
                                ({"shelf_id": "NOSUCHSHELF"},
                                 "unknown shelf in items[]: NOSUCHSHELF"),
                                ({"discount": 7.5}, "items[].discount: not within 0..0.95"),
                                ({"quantity": "3"}, "items[].quantity: not an integer"),
                                ({"unit_price": -1}, "negative items[].unit_price"),
                                ({"quantity": 0}, "items[].quantity: less than 1"),
                                ({"batch_code": "FORGED-LOT"}, "unknown lot in items[]: "),
                                ({"batch_code": f"SUP-20990101-{line['shelf_id']}"},
                                 "unknown lot in items[]: ")):
            out.append(Hostile(topic, _encoded(_one_line(valid, dict(line, **changes))),
                               reason, f"receipt line {changes}"))
        out += [Hostile(topic, _encoded(dict(valid, items=[], total_items=0)),
                        "items: a receipt without lines", "a receipt without lines"),
                Hostile(topic, _encoded(dict(valid, total_items=valid["total_items"] + 1)),
                        "total_items: not the sum of the lines' quantities",
                        "an item count its lines do not add up to"),
                Hostile(topic, _encoded(dict(valid, total_amount=float("nan"))),
                        "malformed JSON", "NaN (not JSON, though Python writes it)")]
        without = {k: v for k, v in line.items() if k != "batch_code"} | {"colour": "red"}
        out.append(Hostile(topic, _encoded(_one_line(valid, without)),
                           "unexpected field items[].colour", "receipt line with a stray field"))
    if topic == "shelf_events":
        customer = dict(valid, actor="customer", customer_id=str(uuid.uuid4()), batch_code=None,
                        plan_id=None, event_type="pickup")
        out += [Hostile(topic, _encoded(dict(customer, quantity=0)),
                        "quantity: a customer's pickup of 0 units", "a pickup of nothing"),
                Hostile(topic, _encoded(dict(customer, quantity=None)),
                        "missing field quantity: a pickup moves units", "a pickup of no count")]
    return [Hostile(h.topic, _with_new_id(h.payload), h.reason, h.what) for h in out]


def _one_line(receipt: dict, line: dict) -> dict:
    """`receipt` with `line` as its only line, its item count that of its first line (so only
    what is wrong with `line` is)."""
    return dict(receipt, items=[line], total_items=receipt["items"][0]["quantity"])


def _with_new_id(payload: bytes) -> bytes:
    record = json.loads(payload)
    return _encoded(record | {"event_id": str(uuid.uuid4())})


def forged_receipts(valid: dict) -> list[Hostile]:
    """Units into the warehouse that the platform never ordered or picked (`valid`: any
    warehouse event of the run, for a real store and shelf)."""
    receipt = dict(valid, event_type="wh_in", quantity=500, plan_id=None,
                   supplier_order_id=None, batch_code="FORGED-1")
    return [Hostile("wh_events", _encoded(dict(receipt, event_id=str(uuid.uuid4()), **changes)),
                    reason, what) for changes, reason, what in (
        ({"reason": "supplier_delivery", "supplier_order_id": str(uuid.uuid4())},
         "supplier delivery of an order the platform did not place", "a forged delivery"),
        ({"reason": "refill_return", "plan_id": str(uuid.uuid4())},
         "refill return of a pick the platform did not make", "a forged refill return"),
        ({"reason": "gift"}, "only supplier deliveries and refill returns come in",
         "units in for no reason the platform knows"))]


def tick_attacks(last_minute: datetime) -> list[Hostile]:
    """Ticks the clock never sent; the run's clock stopped at `last_minute`."""
    def tick(minute: datetime, **changes) -> bytes:
        return _encoded(tick_event(minute, minute, 600.0) | changes)

    return [
        Hostile("clock_ticks", tick(datetime.fromisoformat("2099-01-01T12:00:00+00:00")),
                "tick ahead of the clock", "a tick in 2099 (would expire every lot)"),
        Hostile("clock_ticks", tick(last_minute + timedelta(minutes=1)),
                "tick ahead of the clock", "the next minute before the clock reached it"),
        Hostile("clock_ticks", tick(datetime.fromisoformat("2000-01-01T00:00:00+00:00")),
                "tick before the clock's start", "a tick before the start"),
        Hostile("clock_ticks", tick(last_minute, tick_id="2099-01-01T12:00:00Z"),
                "tick_id: not the minute of sim_time", "a tick named for another minute"),
        Hostile("clock_ticks", b"{\"tick_id\": 1", "malformed JSON", "a malformed tick"),
    ]


def hostile_records(valid: dict[str, dict]) -> list[Hostile]:
    """Every attack on every input topic, from one valid record of each (`valid[topic]`)."""
    out = []
    for topic in INPUT_TOPICS:
        out += envelope_attacks(topic, valid[topic]) + field_attacks(topic, valid[topic])
        if "timestamp" in valid[topic]:
            out += event_attacks(topic, valid[topic])
        if "items" in valid[topic]:
            out += line_attacks(topic, valid[topic])
    return out + forged_receipts(valid["wh_events"])
