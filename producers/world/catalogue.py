"""A store's products and bootstrap lots, read from the reference data files."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq


@dataclass(frozen=True)
class Product:
    shelf_id: str
    category: str
    subcategory: str
    price: Decimal
    unit_weight: float
    visibility: float
    max_stock: int
    wh_max_stock: int
    batch_size: int
    perishable: bool


@dataclass(frozen=True)
class BootLot:
    shelf_id: str
    batch_code: str
    received_date: date
    expiry_date: date
    quantity: int


@dataclass
class StoreCatalogue:
    store_id: str
    products: list[Product]
    shelf_lots: list[BootLot]
    wh_lots: list[BootLot]
    weekly_discounts: dict[tuple[date, str], float]  # (week start Monday, shelf) -> fraction

    def weekly_discount(self, day: date, shelf_id: str) -> float:
        return self.weekly_discounts.get((day - timedelta(days=day.weekday()), shelf_id), 0.0)


def _rows(path: Path, store_id: str) -> list[dict]:
    table = pq.read_table(path)
    return table.filter(pc.equal(table["store_id"], store_id)).to_pylist()


def load_store_catalogue(files: dict[str, Path], store_id: str) -> StoreCatalogue:
    """`files` as returned by `smart_shelf_platform.refdata.generate`."""
    store = {r["shelf_id"]: r for r in _rows(files["store_inventory"], store_id)}
    if not store:
        raise ValueError(f"store {store_id} is not in the reference data")
    warehouse = {r["shelf_id"]: r for r in _rows(files["warehouse_inventory"], store_id)}
    products = [
        Product(shelf_id=s, category=r["item_category"], subcategory=r["item_subcategory"],
                price=r["item_price"], unit_weight=float(r["item_weight"]),
                visibility=float(r["item_visibility"]), max_stock=r["maximum_stock"],
                wh_max_stock=warehouse[s]["maximum_stock"], batch_size=r["standard_batch_size"],
                perishable=r["perishable"])
        for s, r in sorted(store.items())
    ]

    def lots(name: str) -> list[BootLot]:
        return [BootLot(r["shelf_id"], r["batch_code"], r["received_date"], r["expiry_date"],
                        r["batch_quantity"]) for r in _rows(files[name], store_id)]

    weekly = {(r["week_start"], r["shelf_id"]): float(r["discount_pct"])
              for r in _rows(files["weekly_discounts"], store_id)}
    return StoreCatalogue(store_id, products, lots("store_batches"), lots("warehouse_batches"),
                          weekly)
