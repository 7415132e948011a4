"""Asset checks on the platform's important tables: unique keys, stock within [0, capacity],
references to the catalogue, lots that add up to the stock, and freshness of the streaming outputs.

The rules are `smart_shelf_platform.quality`'s pure functions; this module only reads each table
through the resource (Postgres with psycopg, Delta with `delta_reader`) and hands the rows to
them. One multi-asset check per table reads it once and reports every rule on it, each under a
check name from the constants below (the same name on every table it applies to).

What stops downstream work (`blocking=True`, severity ERROR):
- the reference snapshots and `config.batch_catalog`: every state fold and every lot decision
  starts from them, so a broken snapshot would spread into every table after it;
- the cleansed Delta state: the ML features are computed from it.
What does not:
- the simulator's ledger (`sim.*`): ground truth that only `smart-shelf verify` reads; a failure
  there is a simulator bug to look at, not a reason to stop the platform;
- conservation against that ledger (severity WARN): every cleansed state table must hold what
  the ledger holds (`smart_shelf_platform.verify`'s comparison, the same one `smart-shelf verify`
  prints). It is exact only once the queries have drained what the simulator produced; while
  both run, the platform lags the ledger by the events in flight;
- freshness (severity WARN): a late table is not a wrong one, and it catches up by itself.
"""

from collections.abc import Iterator, Sequence

import dagster as dg
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from smart_shelf_platform import delta_reader, quality, verify
from smart_shelf_platform.contracts.catalogue import (
    DELTA_TABLES_BY_PATH, POSTGRES_TABLES_BY_NAME, PostgresTable,
)
from smart_shelf_platform.contracts.catalogue import DeltaTable as DeltaTableSpec
from smart_shelf_platform.defs.lake.sensors import time_column
from smart_shelf_platform.defs.lineage import delta_key, postgres_key
from smart_shelf_platform.defs.resources import SmartShelfResource
from smart_shelf_platform.stack.process import StackError

KEYS_UNIQUE = "keys_unique"
STOCK_WITHIN_CAPACITY = "stock_within_capacity"
SHELVES_IN_CATALOGUE = "shelves_in_catalogue"
LOTS_SUM_TO_STOCK = "lots_sum_to_stock"
LOTS_IN_REFERENCE = "lots_in_reference"
BATCHES_IN_CATALOG = "batches_in_batch_catalog"
QUANTITIES_NOT_NEGATIVE = "quantities_not_negative"
FRESH_WITHIN_LAG = "fresh_within_lag"
MATCHES_LEDGER = "matches_ledger"

# Streaming outputs that shoppers move every simulated minute. The others are sparse by design
# (dead letters, warehouse movements, plans, orders at the cutoffs, one discount run a day), so a
# quiet hour there is normal and a freshness bound would only cry wolf.
FRESHNESS_TABLES = ("raw/foot_traffic", "raw/shelf_events", "raw/pos_transactions",
                    "cleansed/shelf_state", "cleansed/shelf_batch_state")

SHELF = ("store_id", "shelf_id")
LOT = ("store_id", "shelf_id", "batch_code")

STORE_INVENTORY = POSTGRES_TABLES_BY_NAME["ref.store_inventory_snapshot"]
WAREHOUSE_INVENTORY = POSTGRES_TABLES_BY_NAME["ref.warehouse_inventory_snapshot"]
STORE_BATCHES = POSTGRES_TABLES_BY_NAME["ref.store_batches_snapshot"]
WAREHOUSE_BATCHES = POSTGRES_TABLES_BY_NAME["ref.warehouse_batches_snapshot"]
BATCH_CATALOG = POSTGRES_TABLES_BY_NAME["config.batch_catalog"]
# The cleansed tables verify compares, by the name of its comparison (the table's name), and
# what the ledger side of each reads.
CONSERVED_TABLES = ("shelf_state", "shelf_batch_state", "wh_state", "wh_batch_state")
LEDGER_TABLES = ("sim.ledger_position", "sim.ledger_shelf_lots", "sim.ledger_cart_lots",
                 "sim.ledger_wh_lots")
MAX_DIFFERENCES = 20


# ------------------------------------------------------------------------------------------------
# Reading through the resource
# ------------------------------------------------------------------------------------------------


def read_postgres(conn: psycopg.Connection, table: PostgresTable,
                  columns: Sequence[str]) -> pa.Table:
    """`columns` of every row, typed by the contract (so an empty table still has its types)."""
    query = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(table.schema, table.name))
    rows = conn.execute(query).fetchall()
    schema = table.record.arrow_schema()
    values = list(zip(*rows)) or [() for _ in columns]
    return pa.table({c: pa.array(v, schema.field(c).type) for c, v in zip(columns, values)})


def read_delta(smart_shelf: SmartShelfResource, table: DeltaTableSpec,
               columns: Sequence[str]) -> pa.Table | None:
    """`columns` of the table's current version; None when there is no Delta table at its uri."""
    if not delta_reader.exists(smart_shelf.delta_uri(table)):
        return None
    return delta_reader.read(smart_shelf.delta_root, table.path, columns)


# ------------------------------------------------------------------------------------------------
# Building the checks
# ------------------------------------------------------------------------------------------------


def check_op_name(key: dg.AssetKey) -> str:
    return "_".join(key.path) + "_checks"


def spec(name: str, key: dg.AssetKey, description: str, *, blocking: bool,
         reads: Sequence[dg.AssetKey] = ()) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(name, asset=key, description=description, blocking=blocking,
                             additional_deps=list(reads))


def result(key: dg.AssetKey, name: str, outcome: quality.CheckOutcome,
           severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(asset_key=key, check_name=name, passed=outcome.passed,
                               metadata=outcome.metadata, severity=severity)


def missing_table(key: dg.AssetKey, names: Sequence[str],
                  uri: str) -> Iterator[dg.AssetCheckResult]:
    """A table `smart-shelf up` should have created is absent: every check on it fails."""
    outcome = quality.CheckOutcome(False, {"reason": f"no Delta table at {uri}"})
    return (result(key, name, outcome) for name in names)


def inventory_checks(table: PostgresTable) -> dg.AssetChecksDefinition:
    """Shelves of a stock snapshot: one row per shelf, stock within [0, maximum_stock]."""
    key = postgres_key(table)

    @dg.multi_asset_check(name=check_op_name(key), specs=[
        spec(KEYS_UNIQUE, key, "One row per store and shelf.", blocking=True),
        spec(STOCK_WITHIN_CAPACITY, key, "current_stock within [0, maximum_stock].",
             blocking=True),
    ])
    def _inventory_checks(smart_shelf: SmartShelfResource) -> Iterator[dg.AssetCheckResult]:
        with psycopg.connect(smart_shelf.postgres_dsn()) as conn:
            rows = read_postgres(conn, table, (*SHELF, "current_stock", "maximum_stock"))
        yield result(key, KEYS_UNIQUE, quality.keys_unique(rows, table.primary_key))
        yield result(key, STOCK_WITHIN_CAPACITY, quality.stock_within_capacity(
            rows, "current_stock", "maximum_stock", SHELF))

    return _inventory_checks


def lot_snapshot_checks(lots: PostgresTable, inventory: PostgresTable) -> dg.AssetChecksDefinition:
    """Lots of a snapshot: unique, on known shelves, adding up to each shelf's current_stock."""
    key, inventory_key = postgres_key(lots), postgres_key(inventory)

    @dg.multi_asset_check(name=check_op_name(key), specs=[
        spec(KEYS_UNIQUE, key, "One row per store and batch code.", blocking=True),
        spec(SHELVES_IN_CATALOGUE, key, f"Every lot's shelf is in {inventory.qualified_name}.",
             blocking=True, reads=[inventory_key]),
        spec(LOTS_SUM_TO_STOCK, key, f"Per shelf, lot quantities sum to current_stock in "
             f"{inventory.qualified_name}.", blocking=True, reads=[inventory_key]),
    ])
    def _lot_snapshot_checks(smart_shelf: SmartShelfResource) -> Iterator[dg.AssetCheckResult]:
        with psycopg.connect(smart_shelf.postgres_dsn()) as conn:
            lot_rows = read_postgres(conn, lots, (*LOT, "batch_quantity"))
            shelves = read_postgres(conn, inventory, (*SHELF, "current_stock"))
        yield result(key, KEYS_UNIQUE, quality.keys_unique(lot_rows, lots.primary_key))
        yield result(key, SHELVES_IN_CATALOGUE,
                     quality.references_exist(lot_rows, shelves, SHELF))
        yield result(key, LOTS_SUM_TO_STOCK, quality.lots_sum_to_stock(
            lot_rows, shelves, "batch_quantity", "current_stock", SHELF))

    return _lot_snapshot_checks


def build_batch_catalog_checks() -> dg.AssetChecksDefinition:
    """Known lots: each on a catalogue shelf, and the bootstrap lots exactly the reference lots."""
    key = postgres_key(BATCH_CATALOG)
    reference_keys = [postgres_key(t) for t in (STORE_INVENTORY, STORE_BATCHES, WAREHOUSE_BATCHES)]

    @dg.multi_asset_check(name=check_op_name(key), specs=[
        spec(SHELVES_IN_CATALOGUE, key, "Every lot's shelf is in ref.store_inventory_snapshot.",
             blocking=True, reads=reference_keys[:1]),
        spec(LOTS_IN_REFERENCE, key, "Every lot loaded with the reference data is a store or "
             "warehouse lot of ref, on the same shelf.", blocking=True, reads=reference_keys[1:]),
    ])
    def _batch_catalog_checks(smart_shelf: SmartShelfResource) -> Iterator[dg.AssetCheckResult]:
        with psycopg.connect(smart_shelf.postgres_dsn()) as conn:
            catalog = read_postgres(conn, BATCH_CATALOG, (*LOT, "created_at"))
            shelves = read_postgres(conn, STORE_INVENTORY, SHELF)
            reference_lots = pa.concat_tables(
                [read_postgres(conn, t, LOT) for t in (STORE_BATCHES, WAREHOUSE_BATCHES)])
        # Lots registered after the simulation started (deliveries) have no reference row to match.
        bootstrap = catalog.filter(pc.less_equal(catalog["created_at"],
                                                 pa.scalar(smart_shelf.sim_start_at)))
        yield result(key, SHELVES_IN_CATALOGUE, quality.references_exist(catalog, shelves, SHELF))
        yield result(key, LOTS_IN_REFERENCE,
                     quality.references_exist(bootstrap, reference_lots, LOT))

    return _batch_catalog_checks


def delta_state_checks(table: DeltaTableSpec, inventory: PostgresTable, stock_column: str,
                       capacity_column: str) -> dg.AssetChecksDefinition:
    """Stock state per shelf: one row per shelf, within [0, capacity], only catalogue shelves."""
    key, names = delta_key(table), (KEYS_UNIQUE, STOCK_WITHIN_CAPACITY, SHELVES_IN_CATALOGUE)

    @dg.multi_asset_check(name=check_op_name(key), specs=[
        spec(KEYS_UNIQUE, key, "One row per store and shelf.", blocking=True),
        spec(STOCK_WITHIN_CAPACITY, key, f"{stock_column} within [0, {capacity_column}].",
             blocking=True),
        spec(SHELVES_IN_CATALOGUE, key, f"Every shelf is in {inventory.qualified_name}.",
             blocking=True, reads=[postgres_key(inventory)]),
    ])
    def _delta_state_checks(smart_shelf: SmartShelfResource) -> Iterator[dg.AssetCheckResult]:
        rows = read_delta(smart_shelf, table, (*SHELF, stock_column, capacity_column))
        if rows is None:
            yield from missing_table(key, names, smart_shelf.delta_uri(table))
            return
        with psycopg.connect(smart_shelf.postgres_dsn()) as conn:
            shelves = read_postgres(conn, inventory, SHELF)
        yield result(key, KEYS_UNIQUE, quality.keys_unique(rows, table.record.key))
        yield result(key, STOCK_WITHIN_CAPACITY, quality.stock_within_capacity(
            rows, stock_column, capacity_column, SHELF))
        yield result(key, SHELVES_IN_CATALOGUE, quality.references_exist(rows, shelves, SHELF))

    return _delta_state_checks


def delta_lot_state_checks(table: DeltaTableSpec,
                           quantity_column: str) -> dg.AssetChecksDefinition:
    """Stock state per lot: one row per lot, no negative units, only lots of the batch catalog."""
    key = delta_key(table)
    names = (KEYS_UNIQUE, QUANTITIES_NOT_NEGATIVE, BATCHES_IN_CATALOG)

    @dg.multi_asset_check(name=check_op_name(key), specs=[
        spec(KEYS_UNIQUE, key, "One row per store, shelf and batch code.", blocking=True),
        spec(QUANTITIES_NOT_NEGATIVE, key, f"{quantity_column} >= 0.", blocking=True),
        spec(BATCHES_IN_CATALOG, key, "Every lot is in config.batch_catalog for its shelf.",
             blocking=True, reads=[postgres_key(BATCH_CATALOG)]),
    ])
    def _delta_lot_state_checks(smart_shelf: SmartShelfResource) -> Iterator[dg.AssetCheckResult]:
        rows = read_delta(smart_shelf, table, (*LOT, quantity_column))
        if rows is None:
            yield from missing_table(key, names, smart_shelf.delta_uri(table))
            return
        with psycopg.connect(smart_shelf.postgres_dsn()) as conn:
            catalog = read_postgres(conn, BATCH_CATALOG, LOT)
        yield result(key, KEYS_UNIQUE, quality.keys_unique(rows, table.record.key))
        yield result(key, QUANTITIES_NOT_NEGATIVE,
                     quality.no_negative(rows, quantity_column, LOT))
        yield result(key, BATCHES_IN_CATALOG, quality.references_exist(rows, catalog, LOT))

    return _delta_lot_state_checks


def ledger_lot_checks(ledger: PostgresTable, inventory: PostgresTable) -> dg.AssetChecksDefinition:
    """The simulator's lots: never negative, always on a catalogue shelf. Their batch codes are
    not checked: deliveries create lots the reference data never knew."""
    key = postgres_key(ledger)

    @dg.multi_asset_check(name=check_op_name(key), specs=[
        spec(QUANTITIES_NOT_NEGATIVE, key, "quantity >= 0.", blocking=False),
        spec(SHELVES_IN_CATALOGUE, key, f"Every lot's shelf is in {inventory.qualified_name}.",
             blocking=False, reads=[postgres_key(inventory)]),
    ])
    def _ledger_lot_checks(smart_shelf: SmartShelfResource) -> Iterator[dg.AssetCheckResult]:
        with psycopg.connect(smart_shelf.postgres_dsn()) as conn:
            lots = read_postgres(conn, ledger, (*LOT, "quantity"))
            shelves = read_postgres(conn, inventory, SHELF)
        yield result(key, QUANTITIES_NOT_NEGATIVE, quality.no_negative(lots, "quantity", LOT))
        yield result(key, SHELVES_IN_CATALOGUE, quality.references_exist(lots, shelves, SHELF))

    return _ledger_lot_checks


def freshness_checks(paths: Sequence[str] = FRESHNESS_TABLES) -> dg.AssetChecksDefinition:
    """Latest event of each streaming output within the bound of simulated now (WARN only)."""
    tables = [DELTA_TABLES_BY_PATH[p] for p in paths]

    @dg.multi_asset_check(name="streaming_freshness_checks", specs=[
        spec(FRESH_WITHIN_LAG, delta_key(t), f"Latest {time_column(t.record)} within "
             "SMART_SHELF_FRESHNESS_LAG_MINUTES (default 60) simulated minutes of the sim "
             "clock.", blocking=False)
        for t in tables
    ])
    def _freshness_checks(smart_shelf: SmartShelfResource) -> Iterator[dg.AssetCheckResult]:
        sim_now, bound = smart_shelf.sim_now(), smart_shelf.freshness_bound
        for table in tables:
            key, uri = delta_key(table), smart_shelf.delta_uri(table)
            if not delta_reader.exists(uri):
                yield from missing_table(key, [FRESH_WITHIN_LAG], uri)
                continue
            latest = delta_reader.snapshot(uri, time_column(table.record)).latest_event_time
            yield result(key, FRESH_WITHIN_LAG, quality.within_lag(latest, sim_now, bound),
                         severity=dg.AssetCheckSeverity.WARN)

    return _freshness_checks


def ledger_outcome(comparison: verify.Comparison) -> quality.CheckOutcome:
    """One of verify's comparisons as a check outcome: passed when nothing differs, the first
    MAX_DIFFERENCES differences as verify prints them ("S001 SH0042: platform 5, ledger 7")."""
    differences = comparison.differences
    return quality.CheckOutcome(not differences, {
        "keys": comparison.keys,
        "differences": len(differences),
        "platform_minus_ledger_units": sum(d.platform - d.ledger for d in differences),
        "first_differences": [str(d) for d in differences[:MAX_DIFFERENCES]],
    })


def build_ledger_conservation_checks() -> dg.AssetChecksDefinition:
    """Each cleansed state table against the simulator's ledger (WARN: see the module docstring).
    With no simulator run there is nothing to compare, and every check passes saying so."""
    tables = {name: DELTA_TABLES_BY_PATH[f"cleansed/{name}"] for name in CONSERVED_TABLES}
    ledger_keys = [postgres_key(POSTGRES_TABLES_BY_NAME[t]) for t in LEDGER_TABLES]

    @dg.multi_asset_check(name="ledger_conservation_checks", specs=[
        spec(MATCHES_LEDGER, delta_key(table), f"Every key's quantity equals the simulator's "
             f"ledger, as `smart-shelf verify` compares {name} (warning).", blocking=False,
             reads=ledger_keys)
        for name, table in tables.items()
    ])
    def _ledger_conservation_checks(
            smart_shelf: SmartShelfResource) -> Iterator[dg.AssetCheckResult]:
        warn = dg.AssetCheckSeverity.WARN
        try:
            ledger = verify.read_ledger_from(psycopg.connect(smart_shelf.postgres_dsn()), None)
            platform = verify.read_platform_at(smart_shelf.delta_root, ledger.stores)
        except StackError as exc:
            # An empty ledger means no simulator ran: nothing is wrong. A missing table is.
            empty = isinstance(exc, verify.EmptyLedger)
            for table in tables.values():
                yield result(delta_key(table), MATCHES_LEDGER,
                             quality.CheckOutcome(empty, {"reason": str(exc)}), severity=warn)
            return
        report = verify.compare(platform, ledger)
        for name, table in tables.items():
            outcome = ledger_outcome(report.comparisons[name])
            outcome.metadata["stores"] = ledger.stores
            yield result(delta_key(table), MATCHES_LEDGER, outcome, severity=warn)

    return _ledger_conservation_checks


store_inventory_checks = inventory_checks(STORE_INVENTORY)
warehouse_inventory_checks = inventory_checks(WAREHOUSE_INVENTORY)
store_batches_checks = lot_snapshot_checks(STORE_BATCHES, STORE_INVENTORY)
warehouse_batches_checks = lot_snapshot_checks(WAREHOUSE_BATCHES, WAREHOUSE_INVENTORY)
batch_catalog_checks = build_batch_catalog_checks()
shelf_state_checks = delta_state_checks(DELTA_TABLES_BY_PATH["cleansed/shelf_state"],
                                        STORE_INVENTORY, "current_stock", "max_stock")
wh_state_checks = delta_state_checks(DELTA_TABLES_BY_PATH["cleansed/wh_state"],
                                     WAREHOUSE_INVENTORY, "wh_current_stock", "wh_max_stock")
shelf_batch_state_checks = delta_lot_state_checks(
    DELTA_TABLES_BY_PATH["cleansed/shelf_batch_state"], "batch_quantity_store")
wh_batch_state_checks = delta_lot_state_checks(
    DELTA_TABLES_BY_PATH["cleansed/wh_batch_state"], "batch_quantity_warehouse")
ledger_shelf_lots_checks = ledger_lot_checks(POSTGRES_TABLES_BY_NAME["sim.ledger_shelf_lots"],
                                             STORE_INVENTORY)
ledger_wh_lots_checks = ledger_lot_checks(POSTGRES_TABLES_BY_NAME["sim.ledger_wh_lots"],
                                          WAREHOUSE_INVENTORY)
streaming_freshness = freshness_checks()
ledger_conservation = build_ledger_conservation_checks()
