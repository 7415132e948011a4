"""The streaming shell and its transforms (contract and clock checks, dedupe) on tiny static
frames, the foot-traffic raw sink end to end.

The pure tests need no Kafka, but the session `spark` fixture comes with the test stack, so the
whole module is marked integration.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from deltalake import DeltaTable
from pyspark.sql import functions as F

from producers.bad_events import corrupt
from smart_shelf_platform.clock import ClockBounds, ClockKeys, tick_event
from smart_shelf_platform.contracts.catalogue import DELTA_TABLES_BY_PATH
from smart_shelf_platform.contracts.events import (
    CLOCK_TICK, DEAD_LETTER, FOOT_TRAFFIC, POS_TRANSACTION, SHELF_EVENT,
)
from smart_shelf_platform_tests.streaming_support import (
    consume_all, delta_rows, produce, replay_last_batch, run_to_end,
)
from streaming import foot_traffic_raw_sink, shell
from streaming.clock_checks import clock_bounds_reason
from streaming.contract_checks import (
    REASON, named_shelves, parse_events, shelf_columns, unknown_shelf_reason, unknown_shelves,
    valid_rows,
)
from streaming.dedupe import deduplicate

pytestmark = pytest.mark.integration

KAFKA_SCHEMA = ("key binary, value binary, topic string, partition int, offset long, "
                "timestamp timestamp")
RECEIVED = datetime(2026, 1, 1, 7, 5, tzinfo=timezone.utc)
SIM_NOW = datetime(2026, 1, 1, 8, 0, tzinfo=timezone.utc)


def foot_traffic_event(i: int = 0) -> dict:
    return {"event_id": str(uuid.uuid4()), "event_type": "entry", "store_id": "S001",
            "customer_id": str(uuid.uuid4()), "timestamp": f"2026-01-01T07:{i % 60:02d}:12.5Z",
            "weekday": "Thursday", "time_slot": "07:00-08:00", "trip_duration_minutes": None}


def shelf_event() -> dict:
    return {"event_id": str(uuid.uuid4()), "event_type": "pickup", "store_id": "S001",
            "shelf_id": "TSTSHL0001", "actor": "customer", "customer_id": str(uuid.uuid4()),
            "batch_code": None, "quantity": 2, "unit_weight": 250.0, "delta_weight": None,
            "plan_id": None, "timestamp": "2026-01-01T07:00:00Z"}


def kafka_frame(spark, topic: str, payloads: list[bytes | None]):
    rows = [(None, p, topic, 0, offset, RECEIVED) for offset, p in enumerate(payloads)]
    return spark.createDataFrame(rows, KAFKA_SCHEMA)


def reasons(spark, record, payloads, topic="t", **kwargs) -> list[str | None]:
    parsed = parse_events(kafka_frame(spark, topic, payloads), record, **kwargs)
    return [r[REASON] for r in parsed.orderBy("_offset").collect()]


def as_bytes(event: dict) -> bytes:
    return json.dumps(event).encode()


# ------------------------------------------------------------------------------------------------
# Pure transforms
# ------------------------------------------------------------------------------------------------


def test_a_valid_event_has_no_reason_and_every_field_typed(spark):
    event = dict(foot_traffic_event(), event_type="exit", trip_duration_minutes=23)
    row = parse_events(kafka_frame(spark, "foot_traffic", [as_bytes(event)]),
                       FOOT_TRAFFIC).collect()[0]
    assert row[REASON] is None
    assert row["timestamp"] == datetime(2026, 1, 1, 7, 0, 12, 500000)
    assert row["trip_duration_minutes"] == 23
    assert {k: row[k] for k in ("event_id", "event_type", "store_id", "customer_id")} == {
        k: event[k] for k in ("event_id", "event_type", "store_id", "customer_id")}
    assert (row["_source"], row["_partition"], row["_offset"]) == ("foot_traffic", 0, 0)
    assert json.loads(row["_payload"]) == event
    assert list(valid_rows(
        parse_events(kafka_frame(spark, "x", [as_bytes(event)]), FOOT_TRAFFIC),
        FOOT_TRAFFIC).columns) == FOOT_TRAFFIC.field_names


@pytest.mark.parametrize(("defect", "topic", "expected"), [
    ("broken_json", "foot_traffic", "malformed JSON"),
    ("wrong_type", "foot_traffic", "customer_id: not a uuid"),
    ("missing_field", "foot_traffic", "missing field timestamp"),
    ("broken_json", "shelf_events", "malformed JSON"),
    ("wrong_type", "shelf_events", "quantity: not an integer"),
    ("missing_field", "shelf_events", "missing field timestamp"),
    ("negative_quantity", "shelf_events", "negative quantity"),
    ("unknown_shelf", "shelf_events", "unknown shelf UNKNOWN9999"),
])
def test_each_bad_event_defect_gets_its_reason(spark, defect, topic, expected):
    record, event = ((FOOT_TRAFFIC, foot_traffic_event()) if topic == "foot_traffic"
                     else (SHELF_EVENT, shelf_event()))
    known = spark.createDataFrame([("S001", "TSTSHL0001")], "store_id string, shelf_id string")
    got = reasons(spark, record, [as_bytes(event), corrupt(defect, topic, event)],
                  known_shelves=known)
    assert got == [None, expected]


CLOCK = ClockBounds(start=datetime(2026, 1, 1, 7, 0, tzinfo=timezone.utc), now=SIM_NOW,
                    horizon=SIM_NOW)
LATENESS = timedelta(hours=12)


@pytest.mark.parametrize("topic", ["foot_traffic", "shelf_events"])
def test_a_future_timestamp_is_flagged_against_the_simulated_clock(spark, topic):
    record, event = ((FOOT_TRAFFIC, foot_traffic_event()) if topic == "foot_traffic"
                     else (SHELF_EVENT, shelf_event()))
    parsed = parse_events(
        kafka_frame(spark, topic, [as_bytes(event), corrupt("future_timestamp", topic, event)]),
        record)
    flagged = clock_bounds_reason(parsed, CLOCK, LATENESS).orderBy("_offset")
    assert [r[REASON] for r in flagged.collect()] == [None, "timestamp in the future"]
    unchecked = clock_bounds_reason(parsed, None, LATENESS).orderBy("_offset")
    assert [r[REASON] for r in unchecked.collect()] == [None, None]


def test_events_from_before_the_start_or_beyond_the_lateness_bound_are_refused(spark):
    """An event is checked against the clock's start and how late it may be; a bound the
    clock has not set (an older stack, a clock never run) is not checked."""
    stamps = ["2026-01-01T07:00:00Z", "1970-01-01T00:00:00Z", "2026-01-01T06:59:59Z"]
    parsed = parse_events(kafka_frame(spark, "shelf_events", [
        as_bytes(dict(shelf_event(), timestamp=t)) for t in stamps]), SHELF_EVENT)
    assert [r[REASON] for r in clock_bounds_reason(parsed, CLOCK, LATENESS)
            .orderBy("_offset").collect()] == [
        None, "timestamp more than 12 h before the simulated now: too late; timestamp before "
              "the simulation's start", "timestamp before the simulation's start"]
    later = dataclasses.replace(CLOCK, now=datetime(2026, 1, 2, 8, tzinfo=timezone.utc))
    assert [r[REASON] for r in clock_bounds_reason(
        parsed, dataclasses.replace(later, start=None), LATENESS).orderBy("_offset").collect()
            ] == ["timestamp more than 12 h before the simulated now: too late"] * 3


def tick(minute: str, **changes) -> bytes:
    at = datetime.fromisoformat(minute.replace("Z", "+00:00"))
    return as_bytes(tick_event(at, datetime(2026, 1, 1, tzinfo=timezone.utc), 600.0) | changes)


def test_a_tick_the_clock_did_not_make_is_refused_with_its_reason(spark):
    payloads = [tick("2026-01-01T08:00:00Z"),
                tick("2026-01-01T08:00:00Z", tick_id="2026-01-01T08:01:00Z"),
                tick("2026-01-01T08:00:00Z", sim_time="2026-01-01T08:00:30Z"),
                tick("2026-01-01T08:00:00Z", sim_date="2026-01-02"),
                tick("2026-01-01T08:00:00Z", speed=-5),
                tick("2026-01-01T08:01:00Z"),  # past the clock's horizon
                tick("2099-01-01T12:00:00Z"),
                tick("2025-12-31T23:59:00Z")]
    parsed = parse_events(kafka_frame(spark, "clock_ticks", payloads), CLOCK_TICK)
    got = [r[REASON] for r in clock_bounds_reason(parsed, CLOCK, LATENESS)
           .orderBy("_offset").collect()]
    assert got == [None, "tick_id: not the minute of sim_time",
                   "sim_time: not a whole minute; tick_id: not the minute of sim_time; tick ahead "
                   "of the clock", "sim_date: not the date of sim_time", "negative speed",
                   "tick ahead of the clock", "tick ahead of the clock",
                   "tick before the clock's start"]


def receipt(**line_changes) -> dict:
    line = {"line_no": 1, "shelf_id": "TSTSHL0001", "batch_code": "B1",
            "expiry_date": "2026-01-09", "quantity": 2, "unit_price": 1.5, "discount": 0.3,
            "total_price": 2.1}
    return {"event_id": str(uuid.uuid4()), "store_id": "S001",
            "transaction_id": str(uuid.uuid4()), "customer_id": str(uuid.uuid4()),
            "timestamp": "2026-01-01T07:30:00Z", "total_items": 4, "total_amount": 4.2,
            "items": [line, dict(line, line_no=2) | line_changes]}


def test_receipt_lines_get_the_same_checks_as_top_level_fields(spark):
    known = spark.createDataFrame([("S001", "TSTSHL0001")], "store_id string, shelf_id string")
    bad_lines = [{}, {"quantity": -3}, {"quantity": "3"}, {"discount": 7.5},
                 {"shelf_id": "NOWHERE"}, {"expiry_date": "soon"}, {"colour": "red"},
                 {"quantity": None}, {"quantity": 1e20}, {"quantity": 0}]
    payloads = [as_bytes(receipt(**changes)) for changes in bad_lines]
    payloads.append(as_bytes(dict(receipt(), items=[receipt()["items"][0], 5])))
    assert reasons(spark, POS_TRANSACTION, payloads, known_shelves=known) == [
        None, "negative items[].quantity", "items[].quantity: not an integer",
        "items[].discount: not within 0..0.95", "unknown shelf in items[]: NOWHERE",
        "items[].expiry_date: not an ISO-8601 date", "unexpected field items[].colour",
        "missing field items[].quantity", "items[].quantity: not an integer",
        "items[].quantity: less than 1", "items: not an array; items[]: not a JSON object"]


def test_the_driver_s_shelf_lookup_finds_a_stranger_exactly_when_the_join_flags_one(spark):
    """A micro-batch is joined against the stores' shelves only when the shelves it names,
    looked up on the driver, include one the stores do not have."""
    known_rows = [("S001", "TSTSHL0001"), ("S001", "TSTSHL0002")]
    known = spark.createDataFrame(known_rows, "store_id string, shelf_id string")
    fine = [as_bytes(receipt()), as_bytes(dict(receipt(), items=[
        dict(receipt()["items"][0], shelf_id="TSTSHL0002")], total_items=2))]
    strangers = {"line on another shelf": as_bytes(receipt(shelf_id="NOWHERE")),
                 "another store": as_bytes(dict(receipt(), store_id="S999")),
                 "no store": as_bytes(dict(receipt(), store_id=None))}
    for case, payload in [("all known", None), *strangers.items()]:
        batch = parse_events(kafka_frame(spark, "t", fine + ([payload] if payload else [])),
                             POS_TRANSACTION)
        named = named_shelves(batch.select("_source", *shelf_columns(batch)).toArrow(), ["t"])
        flagged = unknown_shelf_reason(batch, known, ["t"]).where(
            F.col(REASON).contains("unknown")).count()
        assert bool(unknown_shelves(named, set(known_rows))) == (flagged > 0), case
        assert flagged == (0 if payload is None else 1), case
    assert unknown_shelves({("S001", None), ("S001", "TSTSHL0001"), (None, None)},
                           set(known_rows)) == set()
    assert unknown_shelves({("S002", None), (None, "TSTSHL0001")}, set(known_rows)) == {
        ("S002", None), (None, "TSTSHL0001")}


def test_a_receipt_has_lines_whose_units_its_item_count_adds_up(spark):
    payloads = [as_bytes(dict(receipt(), items=[], total_items=0)),
                as_bytes(dict(receipt(), total_items=5)),
                as_bytes(dict(receipt(), total_items=0)), b'{"quantity": NaN}']
    assert reasons(spark, POS_TRANSACTION, payloads) == [
        "total_items: less than 1; items: a receipt without lines",
        "total_items: not the sum of the lines' quantities",
        "total_items: less than 1; total_items: not the sum of the lines' quantities",
        "malformed JSON"]


def test_a_customer_moves_at_least_one_unit_a_restocker_may_report_none(spark):
    base = shelf_event()
    payloads = [as_bytes(dict(base, quantity=0)),
                as_bytes(dict(base, event_type="putback", quantity=0)),
                as_bytes(dict(base, quantity=None)),
                as_bytes(dict(base, event_type="putback", actor="restocker", customer_id=None,
                              batch_code="B1", quantity=0)),
                as_bytes(dict(base, event_type="weight_change", quantity=None,
                              delta_weight=-500.0))]
    assert reasons(spark, SHELF_EVENT, payloads) == [
        "quantity: a customer's pickup of 0 units",
        "quantity: a customer's putback of 0 units",
        "missing field quantity: a pickup moves units",
        None, None]


def test_a_query_takes_each_tick_once_and_in_order():
    """Ticks are not deduplicated by id (a refused forgery would take its minute's id): each
    driver query takes the minutes after the last it took, so a repeated or late copy changes
    nothing."""
    from streaming.driver_query import new_ticks

    state: dict = {}
    first = new_ticks(state, {"clock_ticks": [{"sim_time": "2026-01-01T07:02:00Z"},
                                              {"sim_time": "2026-01-01T07:01:00Z"}],
                              "shelf_state": [{"k": 1}]})
    assert [t["sim_time"] for t in first["clock_ticks"]] == ["2026-01-01T07:01:00Z",
                                                             "2026-01-01T07:02:00Z"]
    assert first["shelf_state"] == [{"k": 1}]
    again = new_ticks(state, {"clock_ticks": [{"sim_time": "2026-01-01T07:02:00Z"},
                                              {"sim_time": "2026-01-01T07:00:00Z"},
                                              {"sim_time": "2026-01-01T07:03:00Z"}]})
    assert [t["sim_time"] for t in again["clock_ticks"]] == ["2026-01-01T07:03:00Z"]
    assert state["_last_tick"] == "2026-01-01T07:03:00Z"


def test_other_contract_breaches_are_named(spark):
    base = shelf_event()
    payloads = [
        as_bytes(dict(base, event_type="steal")),
        as_bytes(dict(base, timestamp="yesterday")),
        as_bytes(dict(base, timestamp=1767250800)),
        as_bytes(dict(base, store_id=None, colour="red")),
        as_bytes(dict(base, quantity="3")),
        b"[1, 2]",
        b"\xff\xfe\x00",
        None,
    ]
    assert reasons(spark, SHELF_EVENT, payloads) == [
        "event_type: 'steal' is not one of pickup, putback, weight_change, expired_removal",
        "timestamp: not an ISO-8601 timestamp",
        "timestamp: not an ISO-8601 timestamp",
        "missing field store_id; unexpected field colour",
        "quantity: not an integer",
        "payload is not a JSON object",
        "payload is not UTF-8 text",
        "empty payload",
    ]


def test_deduplicate_drops_repeated_event_ids_but_never_merges_bad_rows(spark):
    event = as_bytes(foot_traffic_event())
    payloads = [event, event, b"{broken", b"{broken", as_bytes(foot_traffic_event())]
    deduped = deduplicate(parse_events(kafka_frame(spark, "t", payloads), FOOT_TRAFFIC))
    offsets = sorted(r["_offset"] for r in deduped.collect())
    assert len(offsets) == 4 and offsets[0] in (0, 1) and offsets[1:] == [2, 3, 4]


def test_records_of_two_topics_with_the_same_key_are_not_repeats(spark):
    """The decisions host reads shelf_state and wh_state in one stream: a warehouse row must not
    be dropped as a repeat of the shelf row with the same store, shelf and version."""
    from smart_shelf_platform.contracts.state import SHELF_STATE, WH_STATE

    shelf = {"store_id": "S001", "shelf_id": "TSTSHL0001", "current_stock": 5, "max_stock": 9,
             "unit_weight": 1.0, "shelf_weight": 5.0, "version": 3,
             "last_update_ts": "2026-01-01T07:00:00Z"}
    warehouse = {"store_id": "S001", "shelf_id": "TSTSHL0001", "wh_current_stock": 0,
                 "wh_max_stock": 90, "version": 3, "last_update_ts": "2026-01-01T07:00:00Z"}
    frames = [parse_events(kafka_frame(spark, topic, [as_bytes(r), as_bytes(r)]), record)
              for topic, r, record in (("shelf_state", shelf, SHELF_STATE),
                                       ("wh_state", warehouse, WH_STATE))]
    both = frames[0].unionByName(frames[1], allowMissingColumns=True)
    kept = deduplicate(both, ("store_id", "shelf_id", "version")).collect()
    assert sorted(r["_source"] for r in kept) == ["shelf_state", "wh_state"]


def test_dead_letter_rows_follow_the_contract_with_deterministic_ids(spark):
    broken = corrupt("broken_json", "foot_traffic", foot_traffic_event())
    missing = corrupt("missing_field", "foot_traffic", foot_traffic_event())
    parsed = parse_events(kafka_frame(spark, "ft", [broken, missing, None]), FOOT_TRAFFIC)
    rows = shell.dead_letter_rows(parsed, "probe").orderBy("source_offset").collect()
    assert [list(r.asDict()) for r in rows] == [DEAD_LETTER.field_names] * 3
    assert [r.event_id for r in rows] == [
        str(uuid.uuid5(shell.DEAD_LETTER_NAMESPACE, f"ft|0|{i}")) for i in range(3)]
    assert [r.store_id for r in rows] == [None, "S001", None]
    # A null value (a tombstone) is kept as "": the table's payload is never null.
    assert [r.payload.encode() for r in rows] == [broken, missing, b""]
    assert [r.reason for r in rows] == ["malformed JSON", "missing field timestamp",
                                        "empty payload"]
    assert {r.detected_by for r in rows} == {"probe"} and {r.received_at for r in rows} == {
        RECEIVED.replace(tzinfo=None)}


def test_appends_are_idempotent_per_batch_id(settings, spark, tmp_path):
    from smart_shelf_platform.stack.delta_tables import ensure_delta_tables

    ensure_delta_tables(str(tmp_path))
    ctx = shell.QueryContext(settings=settings, delta_root=str(tmp_path), clock=None)
    events = [as_bytes(foot_traffic_event()) for _ in range(2)]
    rows = valid_rows(parse_events(kafka_frame(spark, "foot_traffic", events), FOOT_TRAFFIC),
                      FOOT_TRAFFIC)
    table = ctx.table("raw/foot_traffic")
    shell.append_idempotent(rows, ctx, "raw/foot_traffic", "probe", 0)
    shell.append_idempotent(rows, ctx, "raw/foot_traffic", "probe", 0)  # a replay: no more
    assert spark.read.format("delta").load(table).count() == 2
    shell.append_idempotent(rows, ctx, "raw/foot_traffic", "probe", 1)
    assert spark.read.format("delta").load(table).count() == 4


def test_driver_upserts_are_idempotent_per_batch_id_and_read_back_by_spark(
        settings, spark, tmp_path):
    """The state folds and driver queries write with delta-rs: once per batch id, into the
    tables `up` creates (a copy, whatever it holds), and Spark reads what they wrote."""
    import shutil

    from smart_shelf_platform.stack.delta_tables import table_uri
    from streaming import driver_writes

    spec = DELTA_TABLES_BY_PATH["cleansed/shelf_state"]
    path = str(tmp_path / spec.name)
    shutil.copytree(table_uri(settings.delta_root, spec), path)
    at = datetime(2026, 1, 1, 8, 30, 15, 250_000, tzinfo=timezone.utc)

    def shelf(shelf_id: str, stock: int, version: int) -> dict:
        return {"store_id": "S001", "shelf_id": shelf_id, "current_stock": stock,
                "max_stock": 20, "unit_weight": 0.5, "shelf_weight": 0.5 * stock,
                "version": version, "last_update_ts": at}

    def upsert(rows: list[dict], batch_id: int) -> bool:
        return driver_writes.upsert(DeltaTable(path), spec.record, rows, "probe", batch_id)

    assert upsert([shelf("A", 5, 1), shelf("B", 7, 1)], 0)
    assert not upsert([shelf("A", 4, 2)], 0), "a replayed batch writes nothing"
    assert upsert([shelf("A", 4, 2), shelf("C", 1, 1)], 1)
    stored = driver_writes.rows_by_key(DeltaTable(path), spec.record.key,
                                       [("S001", "A"), ("S001", "B"), ("S001", "Z")])
    assert {k[1]: r["current_stock"] for k, r in stored.items()} == {"A": 4, "B": 7}
    from_spark = {r.shelf_id: r for r in spark.read.format("delta").load(path)
                  .where(F.col("shelf_id").isin("A", "B", "C")).select(
        "shelf_id", "version", F.unix_micros("last_update_ts").alias("micros")).collect()}
    assert sorted(from_spark) == ["A", "B", "C"]
    assert from_spark["A"].version == 2
    assert from_spark["A"].micros == round(at.timestamp() * 1_000_000)


def test_uuid5_expression_matches_python(spark):
    names = ["foot_traffic|0|0", "shelf_events|3|123456789", ""]
    df = spark.createDataFrame([(n,) for n in names], "name string")
    got = [r[0] for r in df.select(shell.uuid5(shell.DEAD_LETTER_NAMESPACE, df["name"])).collect()]
    assert got == [str(uuid.uuid5(shell.DEAD_LETTER_NAMESPACE, n)) for n in names]


# ------------------------------------------------------------------------------------------------
# The foot-traffic raw sink end to end
# ------------------------------------------------------------------------------------------------


def test_raw_sink_writes_each_event_once_dead_letters_the_rest_and_replays_idempotently(
        spark, query_ctx, redis_conn, prefix):
    ctx = dataclasses.replace(query_ctx, max_offsets_per_trigger=10)
    redis_conn.set(ClockKeys(prefix).now, SIM_NOW.isoformat())
    valid = [foot_traffic_event(i) for i in range(20)]
    bad = {defect: corrupt(defect, "foot_traffic", foot_traffic_event())
           for defect in ("broken_json", "wrong_type", "missing_field", "future_timestamp")}
    expected_reasons = {"broken_json": "malformed JSON", "wrong_type": "customer_id: not a uuid",
                        "missing_field": "missing field timestamp",
                        "future_timestamp": "timestamp in the future"}
    # Duplicates come last so they land in a later micro-batch than their originals.
    produce(ctx, "foot_traffic", [as_bytes(e) for e in valid] + list(bad.values())
            + [as_bytes(valid[3]), as_bytes(valid[17])])

    assert run_to_end(spark, ctx, foot_traffic_raw_sink.QUERY) == 26
    raw = delta_rows(ctx, "raw/foot_traffic")
    assert len(raw) == 20
    assert sorted(r["event_id"] for r in raw) == sorted(e["event_id"] for e in valid)
    dead = {r["payload"].encode(): r for r in delta_rows(ctx, "raw/dead_letter")}
    assert set(dead) == set(bad.values())
    for defect, payload in bad.items():
        assert dead[payload]["reason"] == expected_reasons[defect], defect
        assert dead[payload]["source"] == ctx.topic("foot_traffic")
        assert dead[payload]["detected_by"] == foot_traffic_raw_sink.NAME
    published = [json.loads(m.value()) for m in consume_all(ctx, "dead_letter")]
    assert sorted(p["event_id"] for p in published) == sorted(r["event_id"] for r in dead.values())
    assert {p["payload"].encode() for p in published} == set(bad.values())

    # A crash after the Delta commits but before the checkpoint commit: the last batch replays.
    assert replay_last_batch(ctx, foot_traffic_raw_sink.NAME) == 2, \
        "26 records at 10 per trigger: three micro-batches, no empty one"
    tables = (ctx.table("raw/foot_traffic"), ctx.table("raw/dead_letter"))
    versions = [DeltaTable(t).version() for t in tables]

    assert run_to_end(spark, ctx, foot_traffic_raw_sink.QUERY) == 6  # offsets 20..25 again
    assert [DeltaTable(t).version() for t in tables] == versions
    assert sorted(r["event_id"] for r in delta_rows(ctx, "raw/foot_traffic")) \
        == sorted(r["event_id"] for r in raw)
    assert len(delta_rows(ctx, "raw/dead_letter")) == len(bad)
    # The topic is at-least-once: a replay may publish again, but only the same ids.
    republished = {json.loads(m.value())["event_id"] for m in consume_all(ctx, "dead_letter")}
    assert republished == {r["event_id"] for r in dead.values()}


def test_the_tables_created_by_up_accept_the_sinks_rows(settings, spark, tmp_path):
    """The sinks' rows, Spark frames appended from the driver, go into the tables `up` created
    (copies, whatever they hold) without a schema change, and Spark reads them back."""
    import shutil
    from pathlib import Path

    from smart_shelf_platform.stack.delta_tables import table_uri

    event = foot_traffic_event()
    parsed = parse_events(
        kafka_frame(spark, "foot_traffic", [as_bytes(event), b"{broken"]), FOOT_TRAFFIC)
    for spec, rows in ((DELTA_TABLES_BY_PATH["raw/foot_traffic"],
                        valid_rows(parsed, FOOT_TRAFFIC)),
                       (shell.DEAD_LETTER_TABLE, shell.dead_letter_rows(parsed, "probe"))):
        copy = Path(table_uri(str(tmp_path), spec))
        shutil.copytree(table_uri(settings.delta_root, spec), copy)
        before = DeltaTable(str(copy)).schema().to_arrow()
        ctx = shell.QueryContext(settings=settings, delta_root=str(tmp_path), clock=None)
        shell.append_idempotent(rows, ctx, spec.path, "probe", 0)
        assert DeltaTable(str(copy)).schema().to_arrow() == before, spec.path
        read = spark.read.format("delta").load(str(copy))
        assert read.where(F.col("event_id") == rows.first().event_id).count() == 1, spec.path


def test_batch_metrics_count_late_events_and_measure_latency_from_kafka_arrival(
        settings, spark, tmp_path):
    ctx = shell.QueryContext(settings=settings, delta_root=str(tmp_path), clock=None,
                             metrics_dir=str(tmp_path / "metrics"))
    metrics = shell.MetricsLog(ctx, "probe")
    sources = [shell.EventSource("foot_traffic", FOOT_TRAFFIC)]

    def batch(minutes: list[int], bad: int = 0):
        payloads = [as_bytes(foot_traffic_event(m)) for m in minutes] + [b"{broken"] * bad
        return parse_events(kafka_frame(spark, "foot_traffic", payloads), FOOT_TRAFFIC)

    def stats(frame):
        return metrics.batch_stats(frame.select(*metrics.stat_columns(sources)).toArrow(),
                                   sources)

    started = time.time()
    first = stats(batch([10, 11, 12], bad=1))
    metrics.record(0, first, started)
    second = stats(batch([5, 20]))  # 07:05 arrives after 07:12
    metrics.record(1, second, time.time())

    lines = [json.loads(line) for line in (tmp_path / "metrics" / "probe.jsonl").open()]
    assert [(m["batch"], m["valid"], m["dead"], m["late"]) for m in lines] == [
        (0, 3, 1, 0), (1, 2, 0, 1)]
    # A batch's span starts when it reached the query, before it was read and counted.
    assert lines[0]["started_at"] == started < lines[0]["finished_at"]
    # The frames "arrived" in Kafka at RECEIVED, long before now.
    assert lines[0]["latency_ms"]["p95"] >= lines[0]["latency_ms"]["p50"] > 0
    assert first["valid:foot_traffic"] == 3
    # Per input topic too (a host reads many): one topic here, so the same figures.
    assert lines[0]["valid_by_topic"] == {"foot_traffic": 3}
    assert lines[0]["latency_ms_by_topic"]["foot_traffic"]["p50"] == \
        lines[0]["latency_ms"]["p50"]


def test_a_prefilter_keeps_in_spark_what_it_accepts_on_a_parsed_record(spark):
    """Spark filters raw values with `sql()` and parsed frames with `column()` (a host, before
    it collects); a hosted query filters parsed records with `accepts`: all three must keep the
    same records (the tick filter looks at "HH:MM" only, of ISO text or of a timestamp)."""
    ticks = [{"sim_time": f"2026-01-0{d}T{t}:00Z"} for d in (1, 2) for t in ("00:00", "12:00",
                                                                           "12:01")]
    events = [{"event_type": t, "actor": a} for t in ("wh_in", "wh_out") for a in ("x", None)]
    cases = [
        (shell.FieldIn("sim_time", ("00:00", "12:00"), chars=(11, 16)), ticks,
         "sim_time timestamp"),
        (shell.json_field_in("event_type", ("wh_out",)), events, "event_type string, actor string"),
        (shell.AnyOf((shell.json_field_in("event_type", ("wh_in",)),
                      shell.json_field_in("actor", ("x",)))), events,
         "event_type string, actor string"),
    ]
    for prefilter, records, schema in cases:
        frame = kafka_frame(spark, "t", [as_bytes(r) for r in records])
        kept = [json.loads(r.value) for r in frame.where(prefilter.sql()).orderBy("offset")
                .collect()]
        assert kept == [r for r in records if prefilter.accepts(r)]
        assert 0 < len(kept) < len(records)
        parsed = frame.select(F.monotonically_increasing_id().alias("i"), F.from_json(
            F.col("value").cast("string"), schema).alias("r")).select("i", "r.*")
        in_spark = [r.i for r in parsed.where(prefilter.column()).orderBy("i").collect()]
        everything = [r.i for r in parsed.orderBy("i").collect()]
        assert in_spark == [i for i, r in zip(everything, records) if prefilter.accepts(r)]


def test_hosted_queries_share_one_read_per_topic():
    from streaming.host import shared_sources

    ticks_at = lambda *t: dataclasses.replace(  # noqa: E731
        shell.EventSource("clock_ticks", SHELF_EVENT, dead_letters=False),
        prefilter=shell.FieldIn("sim_time", t, chars=(11, 16)))
    midnight, noon = ticks_at("00:00"), ticks_at("12:00")
    everything = dataclasses.replace(midnight, prefilter=None)
    reporter = shell.EventSource("clock_ticks", SHELF_EVENT)

    (both,) = shared_sources([midnight, noon, midnight])
    assert both.prefilter == shell.AnyOf((midnight.prefilter, noon.prefilter))
    assert not both.dead_letters
    (whole,) = shared_sources([midnight, everything])
    assert whole.prefilter is None
    (reported,) = shared_sources([midnight, reporter])
    assert reported.dead_letters and reported.prefilter is None  # a reporter sees everything
    with pytest.raises(ValueError, match="different contracts or dedupe keys"):
        shared_sources([midnight, dataclasses.replace(noon, dedupe_on=("event_id", "actor"))])


def test_queries_started_together_run_as_a_state_host_and_a_decisions_host():
    from streaming import runner

    assert runner.spark_query_names() == ["state", "decisions"]
    state, decisions = (runner.host_spec(h, [q for s in h.stages for q in s])
                        for h in runner.HOSTS)
    # Every query is hosted once; the state folds and sinks never share a batch with decisions.
    assert sorted(state.hosts + decisions.hosts) == sorted(runner.QUERIES)
    assert "shelf_aggregator" in state.hosts and "shelf_alert_engine" in decisions.hosts
    # Decisions follow state at every trigger: a state change waits one interval for them.
    assert decisions.pace == state.pace == 1.0
    # A drain: the state stage first, then `decisions` once per later stage.
    assert [[q.name for q in stage] for stage in runner.arranged()] == [
        ["state"], *[["decisions"]] * (len(runner.STAGES) - 1)]
    # A subset of one host gets a name of its own; a query alone keeps its name.
    assert runner.spark_query_names(["shelf_aggregator", "shelf_alert_engine",
                                     "wh_alert_engine"]) == [
        "shelf_aggregator", "decisions-shelf_alert_engine-wh_alert_engine"]


def test_a_hosted_batch_is_collected_once_as_plain_records_of_each_contract(spark):
    from streaming.driver_query import collect_batch

    sources = [shell.EventSource("shelf_events", SHELF_EVENT),
               shell.EventSource("foot_traffic", FOOT_TRAFFIC)]
    shelf, visit = shelf_event(), foot_traffic_event(3)
    valid = {s.topic: valid_rows(parse_events(
        kafka_frame(spark, s.topic, [as_bytes(e)]), s.record), s.record)
        for s, e in zip(sources, (shelf, visit))}
    rows = collect_batch(valid, sources)
    assert rows["shelf_events"] == [shelf | {"timestamp": "2026-01-01T07:00:00Z"}]
    assert rows["foot_traffic"] == [visit | {"timestamp": "2026-01-01T07:03:12.500000Z"}]
