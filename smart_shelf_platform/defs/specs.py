"""`AssetSpec`s for the catalogue's topics and tables: key, deps, group, kinds and metadata.

Everything here is derived from `contracts/catalogue.py` and `lineage.py`, so a table added to the
catalogue becomes an asset without touching this package. Functions only (no module-level specs):
the defs folder loader would otherwise pick the same spec up twice.
"""

from __future__ import annotations

import dagster as dg

from smart_shelf_platform.contracts.catalogue import (
    DELTA_TABLES, POSTGRES_TABLES, TOPICS, DeltaTable, PostgresTable, Topic,
)
from smart_shelf_platform.contracts.types import LogicalType, Record
from smart_shelf_platform.defs import lineage

# Groups, one per domain: Kafka, the Delta lake, Postgres, the reference data (files, ref.*,
# config.*) and the simulator's ground-truth ledger (sim.*), which the platform never writes.
KAFKA_GROUP = "kafka"
LAKE_GROUP = "lake"
POSTGRES_GROUP = "postgres"
REFERENCE_GROUP = "reference"
SIMULATION_GROUP = "simulation"
REFERENCE_SCHEMAS = frozenset({"ref", "config"})
SCHEMA_GROUPS = {"ref": REFERENCE_GROUP, "config": REFERENCE_GROUP, "sim": SIMULATION_GROUP}

OWNING_JOB = "owning_job"  # metadata key: the one job that writes the asset (principle 1)
# Dagster's standard metadata keys, which the UI renders as the column list and the table name.
COLUMN_SCHEMA = "dagster/column_schema"
TABLE_NAME = "dagster/table_name"

# Writers that are Python processes; anything from Kafka Connect is "kafka_connect"; every other
# writer named in the catalogue is a Spark streaming query (docs/architecture.md, one writer per
# table).
PYTHON_WRITERS = frozenset({"bridge", "sim clock", "simulator", "reference loader", "dagster"})
HUMAN_WRITERS = frozenset({"operators"})


def writer_kinds(writer: str) -> set[str]:
    """Technology kinds of a catalogue writer string such as "bridge, shelf refill bridge"."""
    kinds = set()
    for part in (p.strip() for p in writer.split(",")):
        if part.startswith("Kafka Connect"):
            kinds.add("kafka_connect")
        elif part in PYTHON_WRITERS:
            kinds.add("python")
        elif part not in HUMAN_WRITERS:
            kinds.add("spark")
    return kinds


def _type_name(t: LogicalType) -> str:
    if t.kind == "decimal":
        return f"decimal({t.precision},{t.scale})"
    if t.kind == "enum":
        return f"enum {t.enum_name}"
    if t.kind == "array":
        return f"array<{t.item.name}>"
    return t.kind


def record_table_schema(record: Record) -> dg.TableSchema:
    """The contract record as a Dagster column schema (types are the contract's logical types)."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=f.name, type=_type_name(f.type), description=f.description or None,
                constraints=dg.TableColumnConstraints(nullable=f.nullable),
            )
            for f in record.fields
        ],
        constraints=dg.TableConstraints(other=[f"key ({', '.join(record.key)})"])
        if record.key else None,
    )


def _common(record: Record, writer: str) -> dict:
    return {OWNING_JOB: writer,
            COLUMN_SCHEMA: dg.MetadataValue.table_schema(record_table_schema(record))}


def _spec(key: dg.AssetKey, *, group: str, kinds: set[str], description: str,
          metadata: dict) -> dg.AssetSpec:
    return dg.AssetSpec(key=key, deps=lineage.upstreams()[key], group_name=group, kinds=kinds,
                        description=description, metadata=metadata)


def topic_spec(topic: Topic) -> dg.AssetSpec:
    key = lineage.topic_key(topic)
    metadata = {**_common(topic.record, topic.producer), "topic": topic.name,
                "cleanup_policy": topic.cleanup_policy, "message_key": "|".join(topic.key_fields)}
    if topic.name in lineage.INPUT_EVENT_TOPICS:
        metadata["effects_written_back_by"] = dg.MetadataValue.json(lineage.effects_into(key))
    return _spec(key, group=KAFKA_GROUP, kinds={"kafka", *writer_kinds(topic.producer)},
                 description=topic.description, metadata=metadata)


def delta_spec(table: DeltaTable) -> dg.AssetSpec:
    metadata = {**_common(table.record, table.owner), "delta_path": table.path}
    if table.partition_by:
        metadata["partition_by"] = dg.MetadataValue.json(list(table.partition_by))
    return _spec(lineage.delta_key(table), group=LAKE_GROUP,
                 kinds={"delta", *writer_kinds(table.owner)}, description=table.description,
                 metadata=metadata)


def postgres_spec(table: PostgresTable) -> dg.AssetSpec:
    metadata = {**_common(table.record, table.writer), TABLE_NAME: table.qualified_name}
    group = SCHEMA_GROUPS.get(table.schema, POSTGRES_GROUP)
    return _spec(lineage.postgres_key(table), group=group,
                 kinds={"postgres", *writer_kinds(table.writer)}, description=table.description,
                 metadata=metadata)


def topic_specs() -> list[dg.AssetSpec]:
    return [topic_spec(t) for t in TOPICS]


def delta_specs() -> list[dg.AssetSpec]:
    return [delta_spec(t) for t in DELTA_TABLES]


def postgres_specs(*, reference: bool) -> list[dg.AssetSpec]:
    """Postgres tables of the reference domain (ref, config) or all the others."""
    return [postgres_spec(t) for t in POSTGRES_TABLES
            if (t.schema in REFERENCE_SCHEMAS) == reference]
