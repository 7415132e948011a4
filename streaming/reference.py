"""The reference snapshot as the state queries need it: bootstrap rows and the known shelves.

The simulator starts its world from the same files, so the platform's first state and the
ledger's first state are equal by construction.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession

from smart_shelf_platform.settings import Settings
from smart_shelf_platform.stack.lifecycle import reference_files


def _read(settings: Settings, name: str) -> pa.Table:
    return pq.read_table(reference_files(settings)[name])


def _state(table: pa.Table, columns: dict[str, pa.Array | str]) -> pa.Table:
    """Rename/compute `columns` (name -> source column or array), version 1, last update =
    the snapshot time."""
    arrays = {name: table[src] if isinstance(src, str) else src for name, src in columns.items()}
    arrays["version"] = pa.array([1] * table.num_rows, pa.int64())
    arrays["last_update_ts"] = table["snapshot_ts"]
    return pa.table(arrays)


def shelf_state_rows(settings: Settings) -> pa.Table:
    inv = _read(settings, "store_inventory")
    return _state(inv, {
        "store_id": "store_id", "shelf_id": "shelf_id", "current_stock": "current_stock",
        "max_stock": "maximum_stock", "unit_weight": "item_weight",
        "shelf_weight": pc.multiply(inv["item_weight"],
                                    pc.cast(inv["current_stock"], pa.float64())),
    })


def wh_state_rows(settings: Settings) -> pa.Table:
    return _state(_read(settings, "warehouse_inventory"), {
        "store_id": "store_id", "shelf_id": "shelf_id", "wh_current_stock": "current_stock",
        "wh_max_stock": "maximum_stock",
    })


def _lot_rows(settings: Settings, name: str, quantity_column: str) -> pa.Table:
    return _state(_read(settings, name), {
        "store_id": "store_id", "shelf_id": "shelf_id", "batch_code": "batch_code",
        "received_date": "received_date", "expiry_date": "expiry_date",
        quantity_column: "batch_quantity",
    })


def shelf_batch_rows(settings: Settings) -> pa.Table:
    return _lot_rows(settings, "store_batches", "batch_quantity_store")


def wh_batch_rows(settings: Settings) -> pa.Table:
    return _lot_rows(settings, "warehouse_batches", "batch_quantity_warehouse")


def known_lots(settings: Settings) -> set[tuple[str, str, str]]:
    """(store_id, shelf_id, batch_code) of every lot the reference data puts on a shelf or in
    a warehouse: the lots a store has before any supplier delivery."""
    columns = ["store_id", "shelf_id", "batch_code"]
    return {(r["store_id"], r["shelf_id"], r["batch_code"])
            for name in ("store_batches", "warehouse_batches")
            for r in _read(settings, name).select(columns).to_pylist()}


def reference_version(settings: Settings) -> int:
    """When the reference data's manifest was last written: changes when the reference data is
    made again (another seed or chain). A stat, cheap enough for every micro-batch, that never
    makes the data itself."""
    manifest = settings.data_dir / "reference" / "manifest.json"
    return manifest.stat().st_mtime_ns if manifest.exists() else 0


def known_shelves(spark: SparkSession, settings: Settings) -> DataFrame:
    """(store_id, shelf_id) of every shelf in the reference data, once each, cached for the
    query's life."""
    inv = _read(settings, "store_inventory").select(["store_id", "shelf_id"])
    return spark.createDataFrame(inv.to_pandas().drop_duplicates()).cache()


def shelf_profiles(settings: Settings) -> dict[str, dict]:
    """"store|shelf" -> category, subcategory, standard batch size and unit weight (what
    policies scope by, supplier orders come in and refills weigh)."""
    columns = ["store_id", "shelf_id", "item_category", "item_subcategory", "standard_batch_size",
               "item_weight"]
    return {f"{r['store_id']}|{r['shelf_id']}": r
            for r in _read(settings, "store_inventory").select(columns).to_pylist()}
