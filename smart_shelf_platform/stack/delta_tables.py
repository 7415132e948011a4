"""Create every Delta table of the catalogue, empty, with its contract schema.

delta-rs is used here (not Spark) so `smart-shelf up` does not pay a JVM start for a metadata
write; Spark reads and writes the same tables later.
"""

from __future__ import annotations

import logging
from pathlib import Path

from deltalake import DeltaTable, write_deltalake

from smart_shelf_platform.contracts.catalogue import DELTA_TABLES
from smart_shelf_platform.contracts.catalogue import DeltaTable as DeltaTableSpec

log = logging.getLogger(__name__)


def table_uri(delta_root: str, table: DeltaTableSpec) -> str:
    return f"{delta_root.rstrip('/')}/{table.path}"


def ensure_delta_tables(delta_root: str) -> dict[str, str]:
    """Returns {layer/table: "created" | "exists"}."""
    outcome = {}
    for spec in DELTA_TABLES:
        uri = table_uri(delta_root, spec)
        if DeltaTable.is_deltatable(uri):
            outcome[spec.path] = "exists"
            continue
        if "://" not in uri:
            Path(uri).mkdir(parents=True, exist_ok=True)
        schema = spec.record.arrow_schema()
        write_deltalake(uri, schema.empty_table(), mode="append",
                        partition_by=list(spec.partition_by) or None,
                        name=spec.name, description=spec.description)
        log.info("created Delta table %s", spec.path)
        outcome[spec.path] = "created"
    return outcome
