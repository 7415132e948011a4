"""Turn new versions of the streaming queries' Delta tables into asset materializations.

The streaming queries write Delta outside Dagster; this sensor reads each table's version and,
when it moved past the cursor (JSON `{layer/table: version}`), records a materialization with the
version, the row count, the latest event time (the contract's time column) and, when the sim
clock has run, the lag behind simulated now. Tables that did not change produce nothing.

It starts RUNNING: it only reads Delta logs and Redis, so it is safe wherever the code location
runs, and the freshness checks built on these materializations need it on from the start.
"""


import json
from datetime import datetime

import dagster as dg

from smart_shelf_platform import delta_reader
from smart_shelf_platform.contracts.catalogue import DELTA_TABLES
from smart_shelf_platform.contracts.catalogue import DeltaTable as DeltaTableSpec
from smart_shelf_platform.contracts.types import Record
from smart_shelf_platform.defs.lineage import delta_key
from smart_shelf_platform.defs.resources import SmartShelfResource

DAGSTER_OWNER = "dagster"
# The time a row describes, in order of preference: event time, state change, record creation.
TIME_COLUMNS = ("timestamp", "last_update_ts", "updated_at", "created_at", "received_at",
                "computed_at")


def streaming_tables() -> tuple[DeltaTableSpec, ...]:
    """Delta tables written by the streaming queries (raw, cleansed, ops, daily discounts)."""
    return tuple(t for t in DELTA_TABLES if t.owner != DAGSTER_OWNER)


def time_column(record: Record) -> str | None:
    return next((c for c in TIME_COLUMNS if c in record.field_names), None)


def materialization(spec: DeltaTableSpec, uri: str, snapshot: delta_reader.TableSnapshot,
                    sim_now: datetime | None) -> dg.AssetMaterialization:
    metadata: dict = {
        "delta_version": snapshot.version,
        "dagster/row_count": snapshot.row_count,
        "dagster/uri": dg.MetadataValue.path(uri),
    }
    if snapshot.latest_event_time is not None:
        metadata["latest_event_time"] = dg.MetadataValue.timestamp(snapshot.latest_event_time)
        if sim_now is not None:
            lag = (sim_now - snapshot.latest_event_time).total_seconds()
            metadata["lag_seconds"] = dg.MetadataValue.float(lag)
    return dg.AssetMaterialization(asset_key=delta_key(spec), metadata=metadata,
                                   description=f"Delta version {snapshot.version}")


@dg.sensor(
    name="delta_table_versions",
    description="Report new versions of the streaming queries' Delta tables as materializations.",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def delta_table_versions(context: dg.SensorEvaluationContext,
                         smart_shelf: SmartShelfResource) -> dg.SensorResult:
    cursor: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
    sim_now = smart_shelf.sim_now()
    events = []
    for spec in streaming_tables():
        uri = smart_shelf.delta_uri(spec)
        try:
            if not delta_reader.exists(uri):
                continue
            if cursor.get(spec.path, -1) >= delta_reader.version(uri):
                continue
            snapshot = delta_reader.snapshot(uri, time_column(spec.record))
        except Exception as exc:  # noqa: BLE001 - one unreadable table must not hide the others
            context.log.warning("skipping Delta table %s: %s", spec.path, exc)
            continue
        events.append(materialization(spec, uri, snapshot, sim_now))
        cursor[spec.path] = snapshot.version
    if events:
        context.log.info("new Delta versions: %s", ", ".join(
            f"{e.asset_key.to_user_string()}@{e.metadata['delta_version'].value}" for e in events))
    return dg.SensorResult(asset_events=events, cursor=json.dumps(cursor, sort_keys=True))
