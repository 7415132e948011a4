"""Asset checks: the pure rules on small good and bad tables, then the Dagster checks in-process
against a Postgres database of their own (the test stack's server, reference data materialized
into it) and Delta tables in a temporary root, before and after breaking them on purpose."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import dagster as dg
import psycopg
import pyarrow as pa
import pytest
from deltalake import write_deltalake
from psycopg import sql

from smart_shelf_platform import quality
from smart_shelf_platform.contracts.catalogue import DELTA_TABLES_BY_PATH
from smart_shelf_platform.definitions import build_definitions
from smart_shelf_platform.defs.quality import checks
from smart_shelf_platform.defs.reference.assets import reference_files, reference_tables
from smart_shelf_platform.defs.resources import SmartShelfResource
from smart_shelf_platform.settings import Settings
from smart_shelf_platform.stack.delta_tables import ensure_delta_tables
from smart_shelf_platform.stack.migrations import apply_migrations, ensure_database_and_roles

SHELF = ["store_id", "shelf_id"]
SIM_NOW = datetime(2026, 1, 1, 9, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)

# ------------------------------------------------------------------------------------------------
# Pure rules
# ------------------------------------------------------------------------------------------------


def shelves(*rows: tuple) -> pa.Table:
    """(store_id, shelf_id, stock, capacity) rows."""
    store, shelf, stock, capacity = zip(*rows)
    return pa.table({"store_id": store, "shelf_id": shelf, "stock": stock, "capacity": capacity})


GOOD = shelves(("S001", "SH1", 0, 10), ("S001", "SH2", 10, 10), ("S002", "SH1", 3, 5))
EMPTY = GOOD.schema.empty_table()


def test_keys_unique_names_the_duplicated_keys():
    assert quality.keys_unique(GOOD, SHELF).passed
    bad = pa.concat_tables([GOOD, shelves(("S001", "SH2", 1, 10), ("S002", "SH1", 1, 5))])
    passed, metadata = quality.keys_unique(bad, SHELF)
    assert not passed
    assert metadata == {"row_count": 5, "duplicate_keys": 2,
                        "offending_keys": ["S001|SH2", "S002|SH1"]}


def test_stock_within_capacity_counts_each_side_and_treats_missing_stock_as_outside():
    assert quality.stock_within_capacity(GOOD, "stock", "capacity", SHELF).passed
    bad = pa.concat_tables([GOOD, pa.table({
        "store_id": ["S003", "S003", "S003"], "shelf_id": ["SH9", "SH1", "SH5"],
        "stock": pa.array([-1, 11, None], pa.int64()), "capacity": [10, 10, 10]})])
    passed, metadata = quality.stock_within_capacity(bad, "stock", "capacity", SHELF)
    assert not passed
    assert (metadata["below_zero"], metadata["above_capacity"]) == (2, 2)  # null is both
    assert metadata["offending_keys"] == ["S003|SH1", "S003|SH5", "S003|SH9"]


def test_no_negative():
    assert quality.no_negative(GOOD, "stock", SHELF).passed
    bad = pa.concat_tables([GOOD, shelves(("S001", "SH7", -2, 10))])
    passed, metadata = quality.no_negative(bad, "stock", SHELF)
    assert not passed and metadata["negative_rows"] == 1
    assert metadata["offending_keys"] == ["S001|SH7"]


def test_references_exist_names_the_missing_parents():
    catalogue = shelves(("S001", "SH1", 0, 1), ("S001", "SH2", 0, 1), ("S002", "SH1", 0, 1))
    assert quality.references_exist(GOOD, catalogue, SHELF).passed
    orphans = pa.concat_tables([GOOD, shelves(("S001", "SH404", 1, 1), ("S001", "SH404", 2, 1),
                                              ("S009", "SH1", 1, 1))])
    passed, metadata = quality.references_exist(orphans, catalogue, SHELF)
    assert not passed
    assert (metadata["orphan_rows"], metadata["missing_references"]) == (3, 2)
    assert metadata["offending_keys"] == ["S001|SH404", "S009|SH1"]


def test_references_match_postgres_text_against_delta_large_strings():
    large = GOOD.cast(pa.schema([pa.field("store_id", pa.large_string()),
                                 pa.field("shelf_id", pa.large_string()),
                                 *list(GOOD.schema)[2:]]))
    assert quality.references_exist(large, GOOD, SHELF).passed


def test_lots_sum_to_stock_names_the_shelves_that_do_not_add_up():
    lots = pa.table({"store_id": ["S001", "S001", "S001", "S002"],
                     "shelf_id": ["SH2", "SH2", "SH1", "SH1"],
                     "batch_quantity": [6, 4, 0, 3]})
    assert quality.lots_sum_to_stock(lots, GOOD, "batch_quantity", "stock", SHELF).passed
    short = lots.slice(0, 3)  # S002|SH1 holds 3 units but has no lot left
    passed, metadata = quality.lots_sum_to_stock(short, GOOD, "batch_quantity", "stock", SHELF)
    assert not passed
    assert metadata["mismatched_shelves"] == 1 and metadata["offending_keys"] == ["S002|SH1"]
    assert (metadata["units_in_lots"], metadata["units_in_stock"]) == (10, 13)


def test_every_rule_passes_an_empty_table_with_row_count_zero():
    outcomes = [quality.keys_unique(EMPTY, SHELF),
                quality.stock_within_capacity(EMPTY, "stock", "capacity", SHELF),
                quality.no_negative(EMPTY, "stock", SHELF),
                quality.references_exist(EMPTY, GOOD, SHELF),
                quality.lots_sum_to_stock(EMPTY.rename_columns(
                    ["store_id", "shelf_id", "q", "c"]), EMPTY, "q", "stock", SHELF)]
    assert all(o.passed and o.metadata["row_count"] == 0 for o in outcomes)


def test_within_lag():
    assert quality.within_lag(SIM_NOW - HOUR, SIM_NOW, HOUR).passed
    passed, metadata = quality.within_lag(SIM_NOW - 2 * HOUR, SIM_NOW, HOUR)
    assert not passed and metadata["lag_minutes"] == 120 and metadata["max_lag_minutes"] == 60
    never_ran = quality.within_lag(SIM_NOW - 2 * HOUR, None, HOUR)
    assert never_ran.passed and "never run" in never_ran.metadata["reason"]
    empty = quality.within_lag(None, SIM_NOW, HOUR)
    assert empty.passed and "no events" in empty.metadata["reason"]


# ------------------------------------------------------------------------------------------------
# The Dagster checks
# ------------------------------------------------------------------------------------------------


def test_checks_are_in_the_definitions_and_the_reference_ones_block():
    graph = build_definitions(Settings()).resolve_asset_graph()
    names = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert ("postgres/ref/store_inventory_snapshot", checks.STOCK_WITHIN_CAPACITY) in names
    assert ("delta/cleansed/shelf_state", checks.FRESH_WITHIN_LAG) in names
    assert ("postgres/sim/ledger_wh_lots", checks.QUANTITIES_NOT_NEGATIVE) in names
    blocking = {(s.asset_key.to_user_string(), s.name): s.blocking
                for d in (checks.store_inventory_checks, checks.store_batches_checks,
                          checks.batch_catalog_checks, checks.shelf_state_checks,
                          checks.ledger_shelf_lots_checks, checks.streaming_freshness)
                for s in d.check_specs}
    assert blocking[("postgres/ref/store_inventory_snapshot", checks.KEYS_UNIQUE)]
    assert blocking[("postgres/ref/store_batches_snapshot", checks.LOTS_SUM_TO_STOCK)]
    assert blocking[("postgres/config/batch_catalog", checks.LOTS_IN_REFERENCE)]
    assert blocking[("delta/cleansed/shelf_state", checks.STOCK_WITHIN_CAPACITY)]
    assert not blocking[("postgres/sim/ledger_shelf_lots", checks.SHELVES_IN_CATALOGUE)]
    assert not blocking[("delta/cleansed/shelf_state", checks.FRESH_WITHIN_LAG)]


def test_freshness_bound_comes_from_the_settings(monkeypatch):
    from smart_shelf_platform.settings import get_settings

    monkeypatch.delenv("SMART_SHELF_FRESHNESS_LAG_MINUTES", raising=False)
    assert SmartShelfResource.from_settings(get_settings()).freshness_bound == HOUR
    monkeypatch.setenv("SMART_SHELF_FRESHNESS_LAG_MINUTES", "15")
    assert SmartShelfResource.from_settings(get_settings()).freshness_bound == \
        timedelta(minutes=15)


class ClockAt(SmartShelfResource):
    """The resource with the sim clock standing at SIM_NOW."""

    def sim_now(self):
        return SIM_NOW


Evaluations = dict[tuple[str, str], dg.AssetCheckEvaluation]


def run_checks(smart_shelf: SmartShelfResource, *definitions) -> Evaluations:
    # A failed blocking check fails its step (that is what stops downstream work) after
    # recording its evaluation, so the run may fail; the evaluations are what is asserted on.
    result = dg.materialize(list(definitions), resources={"smart_shelf": smart_shelf},
                            selection=dg.AssetSelection.all_asset_checks(), raise_on_error=False)
    return {(e.asset_key.to_user_string(), e.check_name): e
            for e in result.get_asset_check_evaluations()}


def meta(evaluation: dg.AssetCheckEvaluation, name: str):
    return evaluation.metadata[name].value


@pytest.fixture(scope="module")
def checks_settings(settings, tmp_path_factory):
    """A database of this module's own on the test server, with the reference data of one store
    materialized into it: breaking it cannot disturb anyone else's tests."""
    own = settings.model_copy(update={
        "postgres_db": f"checks_{uuid.uuid4().hex[:12]}",
        "data_dir": tmp_path_factory.mktemp("reference"), "stores": 1,
        "delta_root_override": str(tmp_path_factory.mktemp("delta"))})
    ensure_database_and_roles(own)
    try:
        apply_migrations(own)
        ensure_delta_tables(own.delta_root)
        loaded = dg.materialize([reference_files, reference_tables],
                                resources={"smart_shelf": SmartShelfResource.from_settings(own)})
        assert loaded.success
        yield own
    finally:
        with psycopg.connect(settings.postgres_dsn(db="postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(own.postgres_db)))


def owner_connection(settings: Settings) -> psycopg.Connection:
    """The database owner, who may drop the constraints that keep bad rows out."""
    return psycopg.connect(settings.postgres_dsn(), autocommit=True)


def drop_check_constraints(conn: psycopg.Connection, table: str) -> None:
    names = conn.execute("SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass "
                         "AND contype = 'c'", (table,)).fetchall()
    for (name,) in names:
        conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
            sql.Identifier(*table.split(".")), sql.Identifier(name)))


REFERENCE_CHECKS = (checks.store_inventory_checks, checks.warehouse_inventory_checks,
                    checks.store_batches_checks, checks.warehouse_batches_checks,
                    checks.batch_catalog_checks, checks.ledger_shelf_lots_checks,
                    checks.ledger_wh_lots_checks)


@pytest.mark.integration
def test_reference_checks_pass_on_loaded_data_and_fail_once_broken(checks_settings):
    smart_shelf = SmartShelfResource.from_settings(checks_settings)
    good = run_checks(smart_shelf, *REFERENCE_CHECKS)
    assert len(good) == 16 and all(e.passed for e in good.values()), [
        k for k, e in good.items() if not e.passed]
    inventory = good[("postgres/ref/store_inventory_snapshot", checks.STOCK_WITHIN_CAPACITY)]
    assert meta(inventory, "row_count") == 1142
    lots = good[("postgres/ref/store_batches_snapshot", checks.LOTS_SUM_TO_STOCK)]
    assert meta(lots, "units_in_lots") == meta(lots, "units_in_stock") > 0
    assert meta(good[("postgres/sim/ledger_shelf_lots", checks.QUANTITIES_NOT_NEGATIVE)],
                "row_count") == 0  # no simulator ran against this database

    with owner_connection(checks_settings) as conn:
        drop_check_constraints(conn, "ref.store_inventory_snapshot")
        (shelf,) = conn.execute("SELECT shelf_id FROM ref.store_inventory_snapshot "
                                "ORDER BY shelf_id LIMIT 1").fetchone()
        conn.execute("UPDATE ref.store_inventory_snapshot SET current_stock = -1 "
                     "WHERE shelf_id = %s", (shelf,))
        # A lot on a shelf the catalogue does not know, copied from a real one.
        conn.execute("INSERT INTO ref.store_batches_snapshot SELECT store_id, 'SH_UNKNOWN', "
                     "'B_ORPHAN', item_category, item_subcategory, standard_batch_size, "
                     "received_date, expiry_date, batch_quantity, snapshot_ts "
                     "FROM ref.store_batches_snapshot LIMIT 1")
        conn.execute("INSERT INTO sim.ledger_wh_lots VALUES ('S001', 'SH_GONE', 'B1', "
                     "'2026-01-01', '2026-02-01', 3, now())")
    bad = run_checks(smart_shelf, *REFERENCE_CHECKS)
    failed = {k for k, e in bad.items() if not e.passed}
    assert failed == {("postgres/ref/store_inventory_snapshot", checks.STOCK_WITHIN_CAPACITY),
                      ("postgres/sim/ledger_wh_lots", checks.SHELVES_IN_CATALOGUE)}
    stock = bad[("postgres/ref/store_inventory_snapshot", checks.STOCK_WITHIN_CAPACITY)]
    assert meta(stock, "below_zero") == 1 and meta(stock, "offending_keys") == [f"S001|{shelf}"]
    assert stock.blocking and stock.severity == dg.AssetCheckSeverity.ERROR
    assert meta(bad[("postgres/sim/ledger_wh_lots", checks.SHELVES_IN_CATALOGUE)],
                "offending_keys") == ["S001|SH_GONE"]
    # The blocking failure stopped what reads the broken inventory: the lot checks never ran.
    assert not [k for k in bad if k[0] == "postgres/ref/store_batches_snapshot"]

    lots = run_checks(smart_shelf, checks.store_batches_checks)
    assert meta(lots[("postgres/ref/store_batches_snapshot", checks.SHELVES_IN_CATALOGUE)],
                "offending_keys") == ["S001|SH_UNKNOWN"]
    unbalanced = lots[("postgres/ref/store_batches_snapshot", checks.LOTS_SUM_TO_STOCK)]
    assert not unbalanced.passed and f"S001|{shelf}" in meta(unbalanced, "offending_keys")
    assert lots[("postgres/ref/store_batches_snapshot", checks.KEYS_UNIQUE)].passed


def shelf_state_rows(*rows: tuple[str, int, int, datetime]) -> pa.Table:
    """(shelf_id, current_stock, max_stock, last_update_ts) rows of store S001."""
    shelf, stock, capacity, stamp = zip(*rows)
    n = len(rows)
    return pa.table({
        "store_id": ["S001"] * n, "shelf_id": shelf, "current_stock": stock,
        "max_stock": capacity, "unit_weight": [100.0] * n, "shelf_weight": [500.0] * n,
        "version": [1] * n, "last_update_ts": stamp,
    }, schema=DELTA_TABLES_BY_PATH["cleansed/shelf_state"].record.arrow_schema())


def known_shelves(settings: Settings, count: int) -> list[str]:
    with owner_connection(settings) as conn:
        return [r[0] for r in conn.execute(
            "SELECT shelf_id FROM ref.store_inventory_snapshot ORDER BY shelf_id LIMIT %s",
            (count,)).fetchall()]


@pytest.mark.integration
def test_delta_checks_pass_on_empty_and_good_tables_and_fail_on_broken_ones(checks_settings):
    smart_shelf = ClockAt(**SmartShelfResource.from_settings(checks_settings).model_dump())
    delta = (checks.shelf_state_checks, checks.wh_state_checks, checks.shelf_batch_state_checks,
             checks.wh_batch_state_checks, checks.streaming_freshness)
    empty = run_checks(smart_shelf, *delta)
    assert all(e.passed for e in empty.values())
    fresh = empty[("delta/cleansed/shelf_state", checks.FRESH_WITHIN_LAG)]
    assert meta(fresh, "reason") == "the table has no events yet"

    sh1, sh2 = known_shelves(checks_settings, 2)
    uri = smart_shelf.delta_uri(DELTA_TABLES_BY_PATH["cleansed/shelf_state"])
    write_deltalake(uri, shelf_state_rows((sh1, 0, 10, SIM_NOW - HOUR / 2),
                                          (sh2, 10, 10, SIM_NOW - HOUR / 2)), mode="append")
    good = run_checks(smart_shelf, checks.shelf_state_checks, checks.streaming_freshness)
    assert all(e.passed for e in good.values())
    assert meta(good[("delta/cleansed/shelf_state", checks.FRESH_WITHIN_LAG)],
                "lag_minutes") == 30

    write_deltalake(uri, shelf_state_rows((sh1, -3, 10, SIM_NOW - 3 * HOUR),
                                          ("SH_UNKNOWN", 1, 10, SIM_NOW - 3 * HOUR)),
                    mode="overwrite")
    write_deltalake(uri, shelf_state_rows((sh1, 4, 10, SIM_NOW - 2 * HOUR)), mode="append")
    bad = run_checks(smart_shelf, checks.shelf_state_checks, checks.streaming_freshness)
    failed = {name: e for (key, name), e in bad.items()
              if key == "delta/cleansed/shelf_state" and not e.passed}
    assert set(failed) == {checks.KEYS_UNIQUE, checks.STOCK_WITHIN_CAPACITY,
                           checks.SHELVES_IN_CATALOGUE, checks.FRESH_WITHIN_LAG}
    assert meta(failed[checks.KEYS_UNIQUE], "offending_keys") == [f"S001|{sh1}"]
    assert meta(failed[checks.STOCK_WITHIN_CAPACITY], "offending_keys") == [f"S001|{sh1}"]
    assert meta(failed[checks.SHELVES_IN_CATALOGUE], "offending_keys") == ["S001|SH_UNKNOWN"]
    assert meta(failed[checks.FRESH_WITHIN_LAG], "lag_minutes") == 120
    assert failed[checks.FRESH_WITHIN_LAG].severity == dg.AssetCheckSeverity.WARN
    # The other freshness tables are still empty, so still pass.
    assert bad[("delta/raw/shelf_events", checks.FRESH_WITHIN_LAG)].passed


@pytest.mark.integration
def test_lot_state_checks_want_catalogued_batches_and_no_negative_units(checks_settings):
    smart_shelf = SmartShelfResource.from_settings(checks_settings)
    with owner_connection(checks_settings) as conn:
        lot = conn.execute("SELECT store_id, shelf_id, batch_code, received_date, expiry_date "
                           "FROM config.batch_catalog ORDER BY batch_code LIMIT 1").fetchone()
    spec = DELTA_TABLES_BY_PATH["cleansed/shelf_batch_state"]

    def rows(*lots: tuple[str, int]) -> pa.Table:
        n = len(lots)
        return pa.table({
            "store_id": [lot[0]] * n, "shelf_id": [lot[1]] * n,
            "batch_code": [code for code, _ in lots], "received_date": [lot[3]] * n,
            "expiry_date": [lot[4]] * n, "batch_quantity_store": [q for _, q in lots],
            "version": [1] * n, "last_update_ts": [SIM_NOW] * n,
        }, schema=spec.record.arrow_schema())

    uri = smart_shelf.delta_uri(spec)
    write_deltalake(uri, rows((lot[2], 5)), mode="overwrite")
    good = run_checks(smart_shelf, checks.shelf_batch_state_checks)
    assert all(e.passed for e in good.values()) and len(good) == 3

    write_deltalake(uri, rows((lot[2], -1), ("B_NOT_CATALOGUED", 2)), mode="overwrite")
    bad = run_checks(smart_shelf, checks.shelf_batch_state_checks)
    key = "delta/cleansed/shelf_batch_state"
    assert bad[(key, checks.KEYS_UNIQUE)].passed
    assert meta(bad[(key, checks.QUANTITIES_NOT_NEGATIVE)], "offending_keys") == [
        f"{lot[0]}|{lot[1]}|{lot[2]}"]
    assert meta(bad[(key, checks.BATCHES_IN_CATALOG)], "offending_keys") == [
        f"{lot[0]}|{lot[1]}|B_NOT_CATALOGUED"]
