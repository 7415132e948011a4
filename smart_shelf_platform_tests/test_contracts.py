"""Unit tests of the contracts and their renderings (no services)."""

from __future__ import annotations

import jsonschema
import pyarrow as pa
import pytest

from smart_shelf_platform.contracts import catalogue, events
from smart_shelf_platform.contracts.catalogue import (
    DELTA_TABLES, POSTGRES_TABLES, STORELESS_RECORDS, TOPICS,
)

SHELF_EVENT = {
    "event_id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
    "event_type": "pickup",
    "store_id": "S001",
    "shelf_id": "BEVWAT0001",
    "actor": "customer",
    "customer_id": "8f14e45f-ceea-467f-a0e6-3b1a2c6a4e11",
    "batch_code": None,
    "quantity": 2,
    "unit_weight": 1500.0,
    "delta_weight": None,
    "plan_id": None,
    "timestamp": "2026-01-01T07:03:00Z",
}


def _all_records():
    records = {t.record.name: t.record for t in TOPICS}
    records.update({t.record.name: t.record for t in DELTA_TABLES})
    records.update({t.record.name: t.record for t in POSTGRES_TABLES})
    return records


@pytest.mark.parametrize("record", _all_records().values(), ids=lambda r: r.name)
def test_store_id_is_part_of_every_key(record):
    if record.name in STORELESS_RECORDS:
        assert "store_id" not in record.key
    else:
        assert "store_id" in record.key, f"{record.name} key {record.key} lacks store_id"


def test_json_schema_accepts_a_valid_event_and_names_what_is_wrong_with_a_bad_one():
    schema = events.SHELF_EVENT.json_schema()
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    validator.validate(SHELF_EVENT)

    bad = {**SHELF_EVENT, "quantity": "two", "event_type": "steal"}
    del bad["shelf_id"]
    messages = sorted(e.message for e in validator.iter_errors(bad))
    assert any("'shelf_id' is a required property" in m for m in messages)
    assert any("'two' is not valid" in m for m in messages)
    assert any("'steal' is not one of" in m for m in messages)


def test_spark_and_arrow_schemas_have_the_contract_fields_types_and_nullability():
    record = events.POS_TRANSACTION
    spark = record.spark_schema()
    arrow = record.arrow_schema()
    assert spark.fieldNames() == record.field_names == arrow.names
    assert [f.nullable for f in spark.fields] == [f.nullable for f in record.fields]
    assert spark["total_amount"].dataType.simpleString() == "decimal(12,2)"
    assert arrow.field("timestamp").type == pa.timestamp("us", tz="UTC")
    line = spark["items"].dataType.elementType
    assert line.fieldNames() == events.POS_LINE.field_names


def test_topic_catalogue_keys_partition_events_by_store_and_shelf():
    topics = catalogue.TOPICS_BY_NAME
    assert topics["shelf_events"].message_key(SHELF_EVENT) == "S001|BEVWAT0001"
    assert topics["shelf_events"].cleanup_policy == "delete"
    compacted = {t.name for t in TOPICS if t.compacted}
    assert compacted == {
        "shelf_state", "wh_state", "shelf_batch_state", "wh_batch_state", "daily_discounts",
        "shelf_restock_plan", "wh_supplier_plan", "shelf_policies", "wh_policies",
        "shelf_profiles", "batch_catalog", "ml_predictions",
    }
    # a compacted topic's key is its record's logical key, so compaction keeps one row per key
    assert all(t.key_fields == t.record.key for t in TOPICS if t.compacted)


def test_every_delta_and_postgres_table_name_is_unique():
    assert len({t.path for t in DELTA_TABLES}) == len(DELTA_TABLES)
    assert len({t.qualified_name for t in POSTGRES_TABLES}) == len(POSTGRES_TABLES)


def test_restock_tasks_are_append_only_events_kept_in_order_per_shelf():
    topic = catalogue.TOPICS_BY_NAME["restock_tasks"]
    assert (topic.record, topic.cleanup_policy) == (events.RESTOCK_TASK, "delete")
    task = {"event_id": "0f8fad5b-d9cb-469f-a165-70867728950e", "store_id": "S001",
            "shelf_id": "BEVWAT0001", "plan_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
            "pick_event_id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427", "batch_code": "B-1",
            "quantity": 7, "timestamp": "2026-01-01T07:08:00Z"}
    assert topic.message_key(task) == "S001|BEVWAT0001"
    validator = jsonschema.Draft202012Validator(events.RESTOCK_TASK.json_schema(),
                                                format_checker=jsonschema.FormatChecker())
    validator.validate(task)
    assert not validator.is_valid({k: v for k, v in task.items() if k != "pick_event_id"})
    # The store tells a return of picked units from a supplier's delivery by its reason.
    reason = next(f for f in events.WH_EVENT.fields if f.name == "reason")
    assert events.REFILL_RETURN in reason.description
