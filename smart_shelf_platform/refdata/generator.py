"""Deterministic reference-data generator: catalogue, bootstrap stock, lots, promotions, policies.

Reproduces the reference system's generators (inventory with its lots, weekly discounts) from
`catalogue.yaml`, with that system's inconsistencies fixed (see `data/README.md`): every date is
relative to `sim_start`, perishables get a cold-room warehouse that
starts with exactly one lot, and every lot reconciles with the stock it belongs to.

Each store draws from its own generator, `numpy.random.default_rng([seed, store_number])`, so the
same seed and arguments give byte-identical files, and adding stores never changes store S001.
Every file is written with the Arrow schema of its contract record, so the types match Postgres
and Delta.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from smart_shelf_platform.contracts.catalogue import POSTGRES_TABLES_BY_NAME, PostgresTable
from smart_shelf_platform.contracts.types import Record
from smart_shelf_platform.rules.replenishment import (
    DEFAULT_MIN_QTY, DEFAULT_TARGET_PCT, DEFAULT_THRESHOLD_PCT, default_reorder_point,
)

CATALOGUE_PATH = Path(__file__).with_name("catalogue.yaml")
DEFAULT_SIM_START = datetime(2026, 1, 1, 7, 0, tzinfo=timezone.utc)
TIMEZONE = "Europe/Rome"  # the reference store list is from Scandiano (Reggio Emilia)
STORE_CITIES = ("Scandiano", "Reggio Emilia", "Modena", "Parma", "Bologna",
                "Carpi", "Sassuolo", "Correggio", "Guastalla", "Piacenza")

# The reference system's generator constants (inventory and lots, weekly discounts).
SKU_SCALE_PERCENT = 15          # original counts x 0.15, ceil, min 1 -> 1,142 SKUs
MAX_STOCK_UPPER_SCALE_TENTHS = 13  # upper bounds of store / warehouse max-stock ranges x 1.3, ceil
PERISHABLE_CURRENT_PCT = (0.35, 0.95)
VISIBILITY_RANGE = (0.05, 0.20)
MIN_WAREHOUSE_BATCHES = 2
MAX_INITIAL_WAREHOUSE_BATCHES = 3
WAREHOUSE_FLOOR_PERCENT = 5     # initial warehouse stock >= 5% of capacity: no reorder at boot
PERISHABLE_MAX_EXPIRY_DAYS = 15
DISCOUNT_WEEKS = 156
DISCOUNTS_PER_WEEK = 60
DISCOUNT_PCT_RANGE = (0.05, 0.35)

# Default policies (the reference system's: 30% threshold, min_qty 1; target 80% as in its
# training simulation).
# The values live with the rules that use them (smart_shelf_platform/rules/replenishment.py).
SHELF_THRESHOLD_PCT = Decimal(f"{DEFAULT_THRESHOLD_PCT:.2f}")
SHELF_MIN_QTY = DEFAULT_MIN_QTY
SHELF_TARGET_PCT = Decimal(f"{DEFAULT_TARGET_PCT:.2f}")
# policy_id = uuid5(POLICY_NAMESPACE, "shelf_policy:S001:BEVWAT0001"): stable across runs, so a
# reload finds the same keys. The namespace is itself uuid5(NAMESPACE_URL, "smart-shelf/refdata").
POLICY_NAMESPACE = uuid.UUID("2ebd57a7-ec89-5429-a1b6-66c3ad849888")

BEVERAGE_LIKE = frozenset({"BEVERAGES", "BEERS", "WINES", "LONG-LIFE DAIRY", "HOT BEVERAGES",
                           "VINEGAR AND OIL"})
FRUITS_AND_VEGETABLES = "FRUITS AND VEGETABLES"

# Fixed writer options: no wall-clock metadata, same bytes for the same table and pyarrow version.
PARQUET_OPTIONS = dict(compression="zstd", compression_level=3, use_dictionary=True,
                       write_statistics=True, version="2.6", data_page_version="1.0",
                       row_group_size=1 << 20)


# --------------------------------------------------------------------------------------------
# Outputs: one parquet file per Postgres table, in load order
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Output:
    name: str  # file stem and key in generate()'s result
    table: PostgresTable

    @property
    def record(self) -> Record:
        return self.table.record

    @property
    def file_name(self) -> str:
        return f"{self.name}.parquet"


OUTPUTS: tuple[Output, ...] = tuple(
    Output(name, POSTGRES_TABLES_BY_NAME[table]) for name, table in (
        ("stores", "ref.stores"),
        ("store_inventory", "ref.store_inventory_snapshot"),
        ("warehouse_inventory", "ref.warehouse_inventory_snapshot"),
        ("store_batches", "ref.store_batches_snapshot"),
        ("warehouse_batches", "ref.warehouse_batches_snapshot"),
        ("weekly_discounts", "ref.weekly_discounts"),
        ("shelf_policies", "config.shelf_policies"),
        ("wh_policies", "config.wh_policies"),
        ("shelf_profiles", "config.shelf_profiles"),
        ("batch_catalog", "config.batch_catalog"),
    )
)
OUTPUTS_BY_NAME = {o.name: o for o in OUTPUTS}
MANIFEST = "manifest"

# --------------------------------------------------------------------------------------------
# Catalogue
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subcategory:
    category: str
    aisle: int
    perishable: bool
    name: str
    count: int  # the source's count, before scaling
    store_max_stock: tuple[int, int]
    warehouse_max_stock: tuple[int, int] | None  # None = "equal_store"
    current_stock_pct: tuple[float, float] | None  # None for perishables
    price: tuple[float, float]
    weight_options: tuple[int, ...] | None
    weight_range: tuple[int, int] | None

    @property
    def sku_count(self) -> int:
        return max(1, -(-self.count * SKU_SCALE_PERCENT // 100))  # exact integer ceil


def load_catalogue(path: Path = CATALOGUE_PATH) -> list[Subcategory]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    out = []
    for cat in raw["categories"]:
        for sub in cat["subcategories"]:
            wh = sub["warehouse_max_stock"]
            out.append(Subcategory(
                category=cat["name"], aisle=int(cat["aisle"]), perishable=bool(cat["perishable"]),
                name=sub["name"], count=int(sub["count"]),
                store_max_stock=tuple(sub["store_max_stock"]),
                warehouse_max_stock=None if wh == "equal_store" else tuple(wh),
                current_stock_pct=_tuple_or_none(sub.get("current_stock_pct")),
                price=tuple(sub["price"]),
                weight_options=_tuple_or_none(sub.get("weight_options")),
                weight_range=_tuple_or_none(sub.get("weight_range")),
            ))
    return out


def _tuple_or_none(value) -> tuple | None:
    return None if value is None else tuple(value)


def scale_upper(bounds: tuple[int, int]) -> tuple[int, int]:
    """(low, ceil(high x 1.3)), in integers so no float rounding creeps in."""
    low, high = bounds
    return low, -(-high * MAX_STOCK_UPPER_SCALE_TENTHS // 10)


def shelf_prefix(text: str) -> str:
    return text.replace(" ", "").replace("-", "")[:3].upper()


def store_id_for(number: int) -> str:
    return f"S{number:03d}"


@dataclass(frozen=True)
class CatalogueSkus:
    """The SKUs of one store before any random draw (identical for every store)."""

    subcategories: list[Subcategory]  # one entry per SKU
    shelf_id: np.ndarray

    @property
    def size(self) -> int:
        return len(self.subcategories)

    def column(self, attribute: str) -> np.ndarray:
        return np.array([getattr(s, attribute) for s in self.subcategories])


def expand_catalogue(catalogue: list[Subcategory]) -> CatalogueSkus:
    subs, ids = [], []
    for sub in catalogue:
        for _ in range(sub.sku_count):
            subs.append(sub)
            # 4-digit counter over the whole store, as in the reference (BEVWAT0001, WINWHI0133)
            ids.append(f"{shelf_prefix(sub.category)}{shelf_prefix(sub.name)}{len(ids) + 1:04d}")
    return CatalogueSkus(subs, np.array(ids))


# --------------------------------------------------------------------------------------------
# Shelves: product facts, store stock and warehouse stock
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shelves:
    skus: CatalogueSkus
    perishable: np.ndarray
    item_weight: np.ndarray
    item_price: np.ndarray  # rounded to cents
    batch_size: np.ndarray
    store_max: np.ndarray
    store_current: np.ndarray
    visibility: np.ndarray  # rounded to 6 dp
    wh_max: np.ndarray
    wh_current: np.ndarray


def choose_each(rng: np.random.Generator, options: list[tuple[int, ...]]) -> np.ndarray:
    """One uniform pick from each row's own option list, in one vectorised draw."""
    picks = rng.integers(0, np.array([len(o) for o in options]))
    return np.array([o[i] for o, i in zip(options, picks)], dtype=np.int64)


def draw_item_weights(rng: np.random.Generator, skus: CatalogueSkus) -> np.ndarray:
    # Both draws cover every SKU (placeholders where unused) so the stream does not depend on
    # which subcategories use options and which use ranges.
    from_options = choose_each(rng, [s.weight_options or (0,) for s in skus.subcategories])
    ranges = np.array([s.weight_range or (0, 1) for s in skus.subcategories])
    from_range = rng.integers(ranges[:, 0], ranges[:, 1])  # high exclusive, as the reference
    has_options = np.array([s.weight_options is not None for s in skus.subcategories])
    return np.where(has_options, from_options, from_range)


def batch_size_options(category: str, perishable: bool, weight: float) -> tuple[int, ...]:
    """The reference's standard batch sizes by product family and unit weight (grams/ml)."""
    if category in BEVERAGE_LIKE:
        return (18, 24, 30, 36, 42, 48, 60)
    if category == FRUITS_AND_VEGETABLES:
        if weight <= 80:
            return (20, 25, 30, 35, 40)
        return tuple(range(8, 19)) if weight <= 300 else tuple(range(8, 13))
    if perishable:
        if weight <= 300:
            return tuple(range(15, 41, 5))
        if weight <= 800:
            return (8, 10, 11, 12, 14, 15, 16, 18, 20)
        if weight <= 1500:
            return (8, 10, 11, 12, 14, 15)
        return (5, 6, 8, 10, 12)
    if weight <= 200:
        return tuple(range(20, 81, 5))
    if weight <= 500:
        return tuple(range(20, 61, 5))
    if weight <= 1000:
        return tuple(range(15, 41, 5))
    if weight <= 2000:
        return tuple(range(10, 31, 5))
    return (5, 10, 15, 20)


def round_up_to_multiple(values: np.ndarray, multiple: np.ndarray) -> np.ndarray:
    return -(-values // multiple) * multiple


def draw_store_stock(rng: np.random.Generator, skus: CatalogueSkus, perishable: np.ndarray,
                     batch_size: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(maximum_stock, current_stock) of the store shelves."""
    bounds = np.array([scale_upper(s.store_max_stock) for s in skus.subcategories])
    maximum = np.maximum(rng.integers(bounds[:, 0], bounds[:, 1]), batch_size)
    pct = np.array([PERISHABLE_CURRENT_PCT if s.perishable else s.current_stock_pct
                    for s in skus.subcategories])
    current = (maximum * rng.uniform(pct[:, 0], pct[:, 1])).astype(np.int64)
    # reference floors: perishables keep >= 1 unit, non-perishables one batch if the draw gave 0
    current = np.where(perishable, np.maximum(current, 1),
                       np.where(current == 0, np.minimum(batch_size, maximum), current))
    return maximum, np.minimum(current, maximum)


def draw_warehouse_stock(rng: np.random.Generator, skus: CatalogueSkus, perishable: np.ndarray,
                         batch_size: np.ndarray,
                         store_max: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(capacity, current_stock) of the warehouse, both whole batches."""
    two_batches = MIN_WAREHOUSE_BATCHES * batch_size
    bounds = np.array([scale_upper(s.warehouse_max_stock) if s.warehouse_max_stock else (0, 1)
                       for s in skus.subcategories])
    drawn = np.maximum(rng.integers(bounds[:, 0], bounds[:, 1]), two_batches)
    ranged_capacity = np.maximum(drawn // batch_size * batch_size, two_batches)
    # Cold room (every perishable, and any "equal_store" subcategory): the shelf's capacity
    # rounded UP to whole lots, so one delivery always fits.
    cold_room = perishable | np.array([s.warehouse_max_stock is None for s in skus.subcategories])
    cold_capacity = round_up_to_multiple(np.maximum(store_max, two_batches), batch_size)
    capacity = np.where(cold_room, cold_capacity, ranged_capacity)

    max_lots = np.minimum(MAX_INITIAL_WAREHOUSE_BATCHES, capacity // batch_size)
    lots = rng.integers(1, max_lots, endpoint=True)
    floor_lots = -(-capacity * WAREHOUSE_FLOOR_PERCENT // (100 * batch_size))
    lots = np.maximum(lots, floor_lots)
    # Perishables start with exactly one (fresh) lot in the cold room.
    lots = np.where(perishable, 1, lots)
    return capacity, lots * batch_size


def draw_shelves(rng: np.random.Generator, skus: CatalogueSkus) -> Shelves:
    perishable = skus.column("perishable").astype(bool)
    weight = draw_item_weights(rng, skus)
    prices = np.array([s.price for s in skus.subcategories])
    price = np.round(rng.uniform(prices[:, 0], prices[:, 1]), 2)
    batch_size = choose_each(rng, [batch_size_options(s.category, s.perishable, w)
                                   for s, w in zip(skus.subcategories, weight)])
    store_max, store_current = draw_store_stock(rng, skus, perishable, batch_size)
    visibility = np.round(rng.uniform(*VISIBILITY_RANGE, size=skus.size), 6)
    wh_max, wh_current = draw_warehouse_stock(rng, skus, perishable, batch_size, store_max)
    return Shelves(skus, perishable, weight.astype(np.float64), price, batch_size,
                   store_max, store_current, visibility, wh_max, wh_current)


# --------------------------------------------------------------------------------------------
# Lots
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lots:
    shelf_index: np.ndarray  # row in Shelves
    batch_code: list[str]
    quantity: np.ndarray
    received: np.ndarray  # datetime64[D]
    expiry: np.ndarray  # datetime64[D]


def draw_lots(rng: np.random.Generator, shelves: Shelves, stock: np.ndarray,
              sim_date: date, first_code: int) -> Lots:
    """floor(stock / batch) full lots + one remainder lot per shelf; quantities sum to `stock`.

    Lot i of n: older lots were received earlier and expire earlier (FEFO order = index order).
    """
    batch = shelves.batch_size
    full, remainder = stock // batch, stock % batch
    counts = full + (remainder > 0)
    shelf_index = np.repeat(np.arange(len(stock)), counts)
    lot_index = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    quantity = np.where(lot_index < full[shelf_index], batch[shelf_index], remainder[shelf_index])

    perishable = shelves.perishable[shelf_index]
    low = np.where(perishable, np.minimum(PERISHABLE_MAX_EXPIRY_DAYS, 2 + lot_index),
                   365 + 100 * lot_index)
    high = np.where(perishable, PERISHABLE_MAX_EXPIRY_DAYS, 730 + 100 * lot_index)
    expiry_days = rng.integers(low, high, endpoint=True)
    received_days_ago = (rng.integers(0, 2, size=len(lot_index), endpoint=True)
                         + (counts[shelf_index] - 1 - lot_index))

    day0 = np.datetime64(sim_date, "D")
    codes = [f"B{first_code + k:07d}" for k in range(len(lot_index))]
    return Lots(shelf_index, codes, quantity, day0 - received_days_ago, day0 + expiry_days)


# --------------------------------------------------------------------------------------------
# Weekly discounts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WeeklyDiscounts:
    week_index: np.ndarray
    week_start: np.ndarray  # datetime64[D]
    shelf_index: np.ndarray
    discount_pct: np.ndarray  # rounded to 4 dp


def first_monday(sim_date: date) -> date:
    return sim_date - timedelta(days=sim_date.weekday())


def draw_weekly_discounts(rng: np.random.Generator, n_shelves: int,
                          sim_date: date) -> WeeklyDiscounts:
    """60 SKUs a week from a rotating permutation, reshuffled when fewer than 60 are left
    (so a SKU appears at most once a week)."""
    week_index, shelf_index, pct = [], [], []
    order, position = rng.permutation(n_shelves), 0
    for week in range(DISCOUNT_WEEKS):
        if position + DISCOUNTS_PER_WEEK > n_shelves:
            order, position = rng.permutation(n_shelves), 0
        chosen = order[position:position + DISCOUNTS_PER_WEEK]
        position += DISCOUNTS_PER_WEEK
        week_index.append(np.full(len(chosen), week))
        shelf_index.append(chosen)
        pct.append(np.round(rng.uniform(*DISCOUNT_PCT_RANGE, size=len(chosen)), 4))
    weeks = np.concatenate(week_index)
    start = np.datetime64(first_monday(sim_date), "D") + 7 * weeks
    return WeeklyDiscounts(weeks, start, np.concatenate(shelf_index), np.concatenate(pct))


# --------------------------------------------------------------------------------------------
# Tables (one store)
# --------------------------------------------------------------------------------------------


def decimals(values, places: int) -> list[Decimal]:
    return [Decimal(f"{v:.{places}f}") for v in values]


def discounted_prices(prices: list[Decimal], pcts: list[Decimal]) -> list[Decimal]:
    cent = Decimal("0.01")
    return [(p * (1 - d)).quantize(cent, rounding=ROUND_HALF_UP) for p, d in zip(prices, pcts)]


def policy_id(kind: str, store_id: str, shelf_id: str | None) -> str:
    return str(uuid.uuid5(POLICY_NAMESPACE, f"{kind}:{store_id}:{shelf_id or '*'}"))


def to_table(record: Record, columns: dict) -> pa.Table:
    missing = set(record.field_names) ^ set(columns)
    if missing:
        raise ValueError(f"{record.name}: columns do not match the contract: {sorted(missing)}")
    return pa.Table.from_pydict({n: columns[n] for n in record.field_names},
                                schema=record.arrow_schema())


def store_tables(store_number: int, seed: int, skus: CatalogueSkus,
                 sim_start: datetime) -> dict[str, pa.Table]:
    rng = np.random.default_rng([seed, store_number])
    store_id, sim_date = store_id_for(store_number), sim_start.date()
    shelves = draw_shelves(rng, skus)
    store_lots = draw_lots(rng, shelves, shelves.store_current, sim_date, first_code=1)
    wh_lots = draw_lots(rng, shelves, shelves.wh_current, sim_date,
                        first_code=1 + len(store_lots.batch_code))
    discounts = draw_weekly_discounts(rng, skus.size, sim_date)

    n = skus.size
    city = STORE_CITIES[(store_number - 1) % len(STORE_CITIES)]
    common = dict(
        store_id=[store_id] * n, shelf_id=skus.shelf_id, aisle=skus.column("aisle"),
        item_category=skus.column("category"), item_subcategory=skus.column("name"),
        perishable=shelves.perishable, item_weight=shelves.item_weight,
        item_price=decimals(shelves.item_price, 2), standard_batch_size=shelves.batch_size,
        snapshot_ts=[sim_start] * n,
    )
    stamps = dict(created_at=[sim_start] * n, updated_at=[sim_start] * n)
    return {
        "stores": to_table(OUTPUTS_BY_NAME["stores"].record, dict(
            store_id=[store_id], store_name=[f"Smart Shelf {city} ({store_id})"], city=[city],
            timezone=[TIMEZONE], sim_start=[sim_start])),
        "store_inventory": to_table(OUTPUTS_BY_NAME["store_inventory"].record, dict(
            common, maximum_stock=shelves.store_max, current_stock=shelves.store_current,
            # sensor weight of what is on the shelf, as state.shelf_state defines it
            shelf_weight=shelves.item_weight * shelves.store_current,
            item_visibility=decimals(shelves.visibility, 6))),
        "warehouse_inventory": to_table(OUTPUTS_BY_NAME["warehouse_inventory"].record, dict(
            common, maximum_stock=shelves.wh_max, current_stock=shelves.wh_current)),
        "store_batches": lot_table("store_batches", store_id, shelves, store_lots, sim_start),
        "warehouse_batches": lot_table("warehouse_batches", store_id, shelves, wh_lots, sim_start),
        "weekly_discounts": discount_table(store_id, shelves, discounts),
        "shelf_policies": shelf_policy_table(store_id, skus, sim_start),
        "wh_policies": to_table(OUTPUTS_BY_NAME["wh_policies"].record, dict(
            store_id=[store_id] * n,
            policy_id=[policy_id("wh_policy", store_id, s) for s in skus.shelf_id],
            shelf_id=skus.shelf_id, item_category=[None] * n, item_subcategory=[None] * n,
            reorder_point_qty=[default_reorder_point(int(c)) for c in shelves.wh_max],
            active=[True] * n, notes=["default: 5% of warehouse capacity"] * n, **stamps)),
        "shelf_profiles": to_table(OUTPUTS_BY_NAME["shelf_profiles"].record, dict(
            store_id=[store_id] * n, shelf_id=skus.shelf_id,
            item_category=common["item_category"], item_subcategory=common["item_subcategory"],
            item_weight=shelves.item_weight, max_stock=shelves.store_max,
            wh_max_stock=shelves.wh_max, standard_batch_size=shelves.batch_size,
            perishable=shelves.perishable, **stamps)),
        "batch_catalog": batch_catalog_table(store_id, shelves, (store_lots, wh_lots), sim_start),
    }


def lot_table(name: str, store_id: str, shelves: Shelves, lots: Lots,
              sim_start: datetime) -> pa.Table:
    i, m = lots.shelf_index, len(lots.batch_code)
    return to_table(OUTPUTS_BY_NAME[name].record, dict(
        store_id=[store_id] * m, shelf_id=shelves.skus.shelf_id[i], batch_code=lots.batch_code,
        item_category=shelves.skus.column("category")[i],
        item_subcategory=shelves.skus.column("name")[i],
        standard_batch_size=shelves.batch_size[i], received_date=lots.received,
        expiry_date=lots.expiry, batch_quantity=lots.quantity, snapshot_ts=[sim_start] * m))


def discount_table(store_id: str, shelves: Shelves, discounts: WeeklyDiscounts) -> pa.Table:
    i, m = discounts.shelf_index, len(discounts.shelf_index)
    prices = decimals(shelves.item_price[i], 2)
    pcts = decimals(discounts.discount_pct, 4)
    return to_table(OUTPUTS_BY_NAME["weekly_discounts"].record, dict(
        store_id=[store_id] * m, week_start=discounts.week_start,
        shelf_id=shelves.skus.shelf_id[i], week_index=discounts.week_index,
        week_end=discounts.week_start + 6, discount_pct=pcts, original_price=prices,
        discounted_price=discounted_prices(prices, pcts)))


def shelf_policy_table(store_id: str, skus: CatalogueSkus, sim_start: datetime) -> pa.Table:
    # Row 0 is the store-wide default (every scope column null); then one row per shelf, scoped
    # by shelf_id only so "most specific scope wins" has exactly one candidate per level.
    shelf_ids = [None, *skus.shelf_id.tolist()]
    m = len(shelf_ids)
    notes = ["default: store-wide"] + ["default: per shelf"] * (m - 1)
    return to_table(OUTPUTS_BY_NAME["shelf_policies"].record, dict(
        store_id=[store_id] * m,
        policy_id=[policy_id("shelf_policy", store_id, s) for s in shelf_ids],
        shelf_id=shelf_ids, item_category=[None] * m, item_subcategory=[None] * m,
        threshold_pct=[SHELF_THRESHOLD_PCT] * m, min_qty=[SHELF_MIN_QTY] * m,
        target_pct=[SHELF_TARGET_PCT] * m, active=[True] * m, notes=notes,
        created_at=[sim_start] * m, updated_at=[sim_start] * m))


def batch_catalog_table(store_id: str, shelves: Shelves, lots: tuple[Lots, ...],
                        sim_start: datetime) -> pa.Table:
    i = np.concatenate([l.shelf_index for l in lots])
    m = len(i)
    return to_table(OUTPUTS_BY_NAME["batch_catalog"].record, dict(
        store_id=[store_id] * m, batch_code=[c for l in lots for c in l.batch_code],
        shelf_id=shelves.skus.shelf_id[i],
        received_date=np.concatenate([l.received for l in lots]),
        expiry_date=np.concatenate([l.expiry for l in lots]),
        standard_batch_size=shelves.batch_size[i],
        created_at=[sim_start] * m, updated_at=[sim_start] * m))


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def as_utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC; the output keeps microsecond precision."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_manifest(out_dir: Path, seed: int, stores: int, sim_start: datetime,
                   tables: dict[str, pa.Table], paths: dict[str, Path]) -> Path:
    manifest = {
        "generator": "smart_shelf_platform.refdata",
        "seed": seed,
        "stores": stores,
        "sim_start": sim_start.isoformat(),
        "pyarrow": pa.__version__,  # bytes are reproducible for the same pyarrow version
        "files": {name: {"file": paths[name].name, "rows": tables[name].num_rows,
                         "sha256": sha256_of(paths[name])} for name in tables},
    }
    path = out_dir / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def generate(out_dir: Path, seed: int = 42, stores: int = 1,
             sim_start: datetime = DEFAULT_SIM_START) -> dict[str, Path]:
    """Write the reference parquet files and `manifest.json` into `out_dir` (created if needed).

    Returns {output name: path} for every OUTPUTS entry plus "manifest". Same arguments, same
    bytes.
    """
    if seed < 0:
        raise ValueError("seed must be >= 0")
    if not 1 <= stores <= 999:
        raise ValueError("stores must be between 1 and 999 (store ids are S001..S999)")
    sim_start = as_utc(sim_start)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    skus = expand_catalogue(load_catalogue())
    per_store = [store_tables(number, seed, skus, sim_start) for number in range(1, stores + 1)]
    tables = {o.name: pa.concat_tables([t[o.name] for t in per_store]) for o in OUTPUTS}

    paths = {}
    for output in OUTPUTS:
        paths[output.name] = out_dir / output.file_name
        pq.write_table(tables[output.name], paths[output.name], **PARQUET_OPTIONS)
    paths[MANIFEST] = write_manifest(out_dir, seed, stores, sim_start, tables, paths)
    return paths
