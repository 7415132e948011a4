"""The Delta version sensor, on real Delta tables written with delta-rs into a temporary root."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import dagster as dg
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from smart_shelf_platform.contracts.catalogue import DELTA_TABLES_BY_PATH
from smart_shelf_platform.defs.lake.sensors import (
    delta_table_versions, streaming_tables, time_column,
)
from smart_shelf_platform.defs.resources import SmartShelfResource
from smart_shelf_platform.stack.delta_tables import ensure_delta_tables

SIM_NOW = datetime(2026, 1, 1, 9, 0, tzinfo=timezone.utc)


def resource(delta_root, **overrides) -> SmartShelfResource:
    values = dict(
        env="local", delta_root=str(delta_root), data_dir=str(delta_root), postgres_host="x",
        postgres_port=1, postgres_db="x", postgres_user="x", postgres_password="x",
        redis_url="redis://127.0.0.1:1/0",  # nothing listens: the clock "never ran"
        kafka_bootstrap="x:1", seed=42, stores=1, sim_start="2026-01-01T07:00:00+00:00", freshness_lag_minutes=60.0)
    return SmartShelfResource(**(values | overrides))


class ClockAt(SmartShelfResource):
    """The resource with the sim clock standing at SIM_NOW."""

    def sim_now(self):
        return SIM_NOW


def evaluate(smart_shelf: SmartShelfResource, cursor: str | None = None) -> dg.SensorResult:
    with dg.DagsterInstance.ephemeral() as instance:
        context = dg.build_sensor_context(cursor=cursor, instance=instance,
                                          resources={"smart_shelf": smart_shelf})
        return delta_table_versions(context)


def by_key(result: dg.SensorResult) -> dict[str, dg.AssetMaterialization]:
    return {e.asset_key.to_user_string(): e for e in result.asset_events}


def meta(event: dg.AssetMaterialization, name: str):
    return event.metadata[name].value


def shelf_state_rows(*stamps: datetime) -> pa.Table:
    n = len(stamps)
    return pa.table({
        "store_id": ["S001"] * n, "shelf_id": [f"SH{i}" for i in range(n)],
        "current_stock": pa.array([5] * n, pa.int32()), "max_stock": pa.array([10] * n, pa.int32()),
        "unit_weight": [100.0] * n, "shelf_weight": [500.0] * n, "version": [1] * n,
        "last_update_ts": pa.array(list(stamps), pa.timestamp("us", tz="UTC")),
    }, schema=DELTA_TABLES_BY_PATH["cleansed/shelf_state"].record.arrow_schema())


@pytest.fixture
def delta_root(tmp_path):
    ensure_delta_tables(str(tmp_path))  # every catalogue table, empty, at version 0
    return tmp_path


def test_every_streaming_table_has_a_time_column_and_dagster_tables_are_left_out():
    paths = {t.path for t in streaming_tables()}
    assert "analytics/daily_discounts" in paths and "raw/dead_letter" in paths
    assert not paths & {"analytics/shelf_daily_features", "analytics/predictions"}
    assert {t.path: time_column(t.record) for t in streaming_tables()}["cleansed/shelf_state"] \
        == "last_update_ts"
    assert all(time_column(t.record) for t in streaming_tables())


def test_first_evaluation_reports_every_table_then_nothing_until_a_version_moves(delta_root):
    first = evaluate(resource(delta_root))
    events = by_key(first)
    assert set(events) == {f"delta/{t.path}" for t in streaming_tables()}
    empty = events["delta/cleansed/shelf_state"]
    assert meta(empty, "delta_version") == 0 and meta(empty, "dagster/row_count") == 0
    assert "latest_event_time" not in empty.metadata and "lag_seconds" not in empty.metadata
    assert json.loads(first.cursor) == {t.path: 0 for t in streaming_tables()}

    unchanged = evaluate(resource(delta_root), first.cursor)
    assert unchanged.asset_events == [] and unchanged.cursor == first.cursor

    uri = str(delta_root / "cleansed" / "shelf_state")
    write_deltalake(uri, shelf_state_rows(datetime(2026, 1, 1, 8, 0, tzinfo=timezone.utc),
                                          datetime(2026, 1, 1, 8, 30, tzinfo=timezone.utc)),
                    mode="append")
    # A Dagster-owned table moving is not this sensor's business.
    write_deltalake(str(delta_root / "analytics" / "predictions"),
                    DELTA_TABLES_BY_PATH["analytics/predictions"].record.arrow_schema()
                    .empty_table(), mode="append")

    moved = evaluate(ClockAt(**resource(delta_root).model_dump()), unchanged.cursor)
    (event,) = moved.asset_events
    assert event.asset_key == dg.AssetKey(["delta", "cleansed", "shelf_state"])
    assert meta(event, "delta_version") == 1
    assert meta(event, "dagster/row_count") == 2
    assert meta(event, "latest_event_time") == datetime(2026, 1, 1, 8, 30,
                                                        tzinfo=timezone.utc).timestamp()
    assert meta(event, "lag_seconds") == 30 * 60
    assert json.loads(moved.cursor) == {**json.loads(first.cursor), "cleansed/shelf_state": 1}


def test_lag_is_omitted_when_the_clock_never_ran(delta_root):
    write_deltalake(str(delta_root / "cleansed" / "shelf_state"),
                    shelf_state_rows(datetime(2026, 1, 1, 8, 0, tzinfo=timezone.utc)),
                    mode="append")
    event = by_key(evaluate(resource(delta_root)))["delta/cleansed/shelf_state"]
    assert meta(event, "dagster/row_count") == 1
    assert "latest_event_time" in event.metadata and "lag_seconds" not in event.metadata


def test_missing_tables_are_skipped_and_an_old_cursor_is_kept(tmp_path):
    result = evaluate(resource(tmp_path), json.dumps({"raw/shelf_events": 7}))
    assert result.asset_events == []
    assert json.loads(result.cursor) == {"raw/shelf_events": 7}


def test_the_sensor_is_in_the_definitions_and_starts_running():
    assert delta_table_versions.default_status == dg.DefaultSensorStatus.RUNNING
    assert delta_table_versions.minimum_interval_seconds == 30
