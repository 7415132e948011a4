"""Unit tests of the reference-data generator (no services needed)."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from smart_shelf_platform.refdata import generator
from smart_shelf_platform.refdata.__main__ import main as cli_main
from smart_shelf_platform.refdata.generator import MANIFEST, OUTPUTS, generate, load_catalogue
from smart_shelf_platform.refdata.loader import delete_stale_statement, merge_statement

SIM_START = datetime(2026, 1, 1, 7, 0, tzinfo=timezone.utc)
SIM_DATE = SIM_START.date()
SKUS_PER_STORE = 1142
PERISHABLE_CATEGORIES = {"FRUITS AND VEGETABLES", "REFRIGERATED", "FROZEN", "MEAT", "FISH"}


@pytest.fixture(scope="module")
def one_store(tmp_path_factory) -> dict[str, Path]:
    return generate(tmp_path_factory.mktemp("seed42"), seed=42, stores=1, sim_start=SIM_START)


@pytest.fixture(scope="module")
def frames(one_store) -> dict[str, pd.DataFrame]:
    return {o.name: pq.read_table(one_store[o.name]).to_pandas() for o in OUTPUTS}


def digests(paths: dict[str, Path]) -> dict[str, str]:
    return {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in paths.items()}


def as_dates(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series).dt.date


# ---- catalogue -----------------------------------------------------------------------------


def test_catalogue_has_29_categories_and_278_subcategory_entries():
    catalogue = load_catalogue()
    assert len(catalogue) == 278
    assert len({s.category for s in catalogue}) == 29
    assert sum(s.sku_count for s in catalogue) == SKUS_PER_STORE
    assert {s.category for s in catalogue if s.perishable} == PERISHABLE_CATEGORIES


def test_upper_bounds_are_scaled_by_1_3_with_ceil():
    assert generator.scale_upper((20, 60)) == (20, 78)
    assert generator.scale_upper((4, 7)) == (4, 10)  # 9.1 -> 10


def test_shelf_prefix_drops_spaces_and_hyphens():
    assert generator.shelf_prefix("LONG-LIFE DAIRY") == "LON"
    assert generator.shelf_prefix("Non-alcoholic Aperitifs") == "NON"
    assert generator.shelf_prefix("Ice Creams") == "ICE"


# ---- one store -----------------------------------------------------------------------------


def test_one_store_has_1142_skus_29_categories_181_perishables(frames):
    inventory = frames["store_inventory"]
    assert len(inventory) == SKUS_PER_STORE
    assert inventory["shelf_id"].is_unique
    assert inventory["item_category"].nunique() == 29
    # 278 subcategory entries, every one with at least one SKU (names repeat across categories)
    assert inventory.groupby(["item_category", "item_subcategory"]).ngroups == 278
    assert inventory["item_subcategory"].nunique() == 274
    assert int(inventory["perishable"].sum()) == 181
    assert set(inventory.loc[inventory["perishable"], "item_category"]) == PERISHABLE_CATEGORIES
    assert inventory["aisle"].between(1, 29).all()


def test_shelf_ids_follow_the_reference_pattern(frames):
    ids = frames["store_inventory"]["shelf_id"]
    assert ids.iloc[0] == "BEVWAT0001"
    assert ids.str.fullmatch(r"[A-Z]{6}\d{4}").all()
    assert [int(i[-4:]) for i in ids] == list(range(1, SKUS_PER_STORE + 1))


def test_files_have_exactly_the_contract_arrow_schema(one_store):
    for output in OUTPUTS:
        assert pq.read_schema(one_store[output.name]).remove_metadata() == \
            output.record.arrow_schema(), output.name


def test_product_facts_are_within_reference_rules(frames):
    inventory = frames["store_inventory"]
    assert inventory["standard_batch_size"].between(5, 80).all()
    assert inventory["item_visibility"].astype(float).between(0.05, 0.20).all()
    assert (inventory["item_price"].astype(float) > 0).all()
    assert (inventory["maximum_stock"] >= inventory["standard_batch_size"]).all()
    assert inventory["shelf_weight"].equals(inventory["item_weight"] * inventory["current_stock"])
    beverages = inventory[inventory["item_category"] == "BEVERAGES"]
    assert set(beverages["standard_batch_size"]) <= {18, 24, 30, 36, 42, 48, 60}


def test_stock_reconciles_with_lots(frames):
    for inventory, lots in (("store_inventory", "store_batches"),
                            ("warehouse_inventory", "warehouse_batches")):
        stock = frames[inventory].set_index("shelf_id")
        assert (stock["current_stock"] <= stock["maximum_stock"]).all(), inventory
        assert (stock["current_stock"] >= 1).all(), inventory
        per_shelf = frames[lots].groupby("shelf_id")["batch_quantity"].sum()
        assert per_shelf.reindex(stock.index, fill_value=0).equals(stock["current_stock"]), lots
        lot_frame = frames[lots]
        assert (lot_frame["batch_quantity"] > 0).all()
        assert (lot_frame["batch_quantity"] <= lot_frame["standard_batch_size"]).all()


def test_lots_are_full_batches_plus_one_remainder(frames):
    inventory = frames["store_inventory"].set_index("shelf_id")
    lots = frames["store_batches"].groupby("shelf_id")
    expected = (inventory["current_stock"] // inventory["standard_batch_size"]
                + (inventory["current_stock"] % inventory["standard_batch_size"] > 0))
    assert (lots.size().reindex(inventory.index) == expected).all()


def test_warehouse_capacity_is_whole_batches_and_at_least_two(frames):
    warehouse = frames["warehouse_inventory"]
    batch = warehouse["standard_batch_size"]
    assert (warehouse["maximum_stock"] % batch == 0).all()
    assert (warehouse["maximum_stock"] >= 2 * batch).all()
    assert (warehouse["current_stock"] % batch == 0).all()
    reorder_floor = (0.05 * warehouse["maximum_stock"])
    non_perishable = ~warehouse["perishable"]
    assert (warehouse.loc[non_perishable, "current_stock"] >= reorder_floor[non_perishable]).all()


def test_perishables_get_a_cold_room_starting_with_one_lot(frames):
    store = frames["store_inventory"].set_index("shelf_id")
    warehouse = frames["warehouse_inventory"].set_index("shelf_id")
    cold = warehouse[warehouse["perishable"]]
    assert len(cold) == 181
    assert (cold["current_stock"] == cold["standard_batch_size"]).all()
    batch = cold["standard_batch_size"]
    room = pd.concat([store.loc[cold.index, "maximum_stock"], 2 * batch], axis=1).max(axis=1)
    assert cold["maximum_stock"].equals(-(-room // batch) * batch)
    lots = frames["warehouse_batches"]
    cold_lots = lots[lots["shelf_id"].isin(cold.index)]
    assert cold_lots.groupby("shelf_id").size().eq(1).all()
    days = (pd.to_datetime(cold_lots["expiry_date"]) - pd.Timestamp(SIM_DATE)).dt.days
    assert days.between(2, 15).all()


def test_dates_are_relative_to_sim_start(frames):
    perishable = set(frames["store_inventory"].query("perishable")["shelf_id"])
    for name in ("store_batches", "warehouse_batches"):
        lots = frames[name]
        received, expiry = as_dates(lots["received_date"]), as_dates(lots["expiry_date"])
        assert (received <= SIM_DATE).all(), name
        assert (expiry >= received).all(), name
        days = (pd.to_datetime(lots["expiry_date"]) - pd.Timestamp(SIM_DATE)).dt.days
        index = lots.groupby("shelf_id").cumcount()  # lots are written oldest first
        is_perishable = lots["shelf_id"].isin(perishable)
        low = (2 + index).clip(upper=15).where(is_perishable, 365 + 100 * index)
        high = pd.Series(15, index=lots.index).where(is_perishable, 730 + 100 * index)
        assert ((days >= low) & (days <= high)).all(), name
        assert (lots["snapshot_ts"] == pd.Timestamp(SIM_START)).all(), name
    assert (frames["store_inventory"]["snapshot_ts"] == pd.Timestamp(SIM_START)).all()
    assert (frames["shelf_policies"]["created_at"] == pd.Timestamp(SIM_START)).all()


def test_moving_sim_start_moves_every_date_and_nothing_else(tmp_path, frames):
    later = datetime(2031, 3, 15, 9, 30, tzinfo=timezone.utc)
    shift = later.date() - SIM_DATE
    moved = pq.read_table(generate(tmp_path, 42, 1, later)["store_batches"]).to_pandas()
    original = frames["store_batches"]
    for column in ("received_date", "expiry_date"):
        assert (as_dates(moved[column]) == as_dates(original[column]) + shift).all()
    assert moved["batch_quantity"].equals(original["batch_quantity"])


def test_batch_codes_are_unique_per_store_and_catalogued(frames):
    codes = pd.concat([frames["store_batches"]["batch_code"],
                       frames["warehouse_batches"]["batch_code"]], ignore_index=True)
    assert codes.is_unique
    assert codes.iloc[0] == "B0000001"
    assert codes.str.fullmatch(r"B\d{7}").all()
    catalog = frames["batch_catalog"]
    assert list(catalog["batch_code"]) == list(codes)
    assert (as_dates(catalog["expiry_date"]) >= as_dates(catalog["received_date"])).all()


def test_weekly_discounts_follow_the_reference(frames):
    discounts = frames["weekly_discounts"]
    assert len(discounts) == 156 * 60
    starts = as_dates(discounts["week_start"])
    assert starts.min() == date(2025, 12, 29)  # Monday on or before 2026-01-01 (a Thursday)
    assert all(d.weekday() == 0 for d in starts.unique())
    assert (as_dates(discounts["week_end"]) == starts + timedelta(days=6)).all()
    assert discounts["week_index"].nunique() == 156
    assert not discounts.duplicated(["week_start", "shelf_id"]).any()
    pct = discounts["discount_pct"]
    assert pct.astype(float).between(0.05, 0.35).all()
    prices = frames["store_inventory"].set_index("shelf_id")["item_price"]
    assert (discounts["original_price"].values == prices.loc[discounts["shelf_id"]].values).all()
    expected = [(p * (1 - d)).quantize(Decimal("0.01"), ROUND_HALF_UP)
                for p, d in zip(discounts["original_price"], pct)]
    assert list(discounts["discounted_price"]) == expected


def test_policy_defaults(frames):
    shelf = frames["shelf_policies"]
    assert len(shelf) == SKUS_PER_STORE + 1
    store_wide = shelf[shelf["shelf_id"].isna()]
    assert len(store_wide) == 1
    assert store_wide[["item_category", "item_subcategory"]].isna().all().all()
    assert (shelf["threshold_pct"] == Decimal("30.00")).all()
    assert (shelf["target_pct"] == Decimal("80.00")).all()
    assert (shelf["min_qty"] == 1).all() and shelf["active"].all()
    namespace = generator.POLICY_NAMESPACE
    assert store_wide["policy_id"].iloc[0] == str(uuid.uuid5(namespace, "shelf_policy:S001:*"))
    assert shelf.loc[shelf["shelf_id"] == "BEVWAT0001", "policy_id"].iloc[0] == \
        str(uuid.uuid5(namespace, "shelf_policy:S001:BEVWAT0001"))

    wh = frames["wh_policies"].set_index("shelf_id")
    capacity = frames["warehouse_inventory"].set_index("shelf_id")["maximum_stock"]
    assert len(wh) == SKUS_PER_STORE
    expected = (0.05 * capacity).astype(int).clip(lower=1)
    assert (wh["reorder_point_qty"] == expected.loc[wh.index]).all()
    assert pd.concat([shelf["policy_id"], wh["policy_id"]]).is_unique


def test_shelf_profiles_match_the_snapshots(frames):
    profiles = frames["shelf_profiles"].set_index("shelf_id")
    store = frames["store_inventory"].set_index("shelf_id")
    warehouse = frames["warehouse_inventory"].set_index("shelf_id")
    assert profiles["max_stock"].equals(store["maximum_stock"])
    assert profiles["wh_max_stock"].equals(warehouse["maximum_stock"])
    assert profiles["standard_batch_size"].equals(store["standard_batch_size"])
    assert profiles["perishable"].equals(store["perishable"])


# ---- determinism, stores, manifest, speed --------------------------------------------------


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path, one_store):
    again = generate(tmp_path / "again", seed=42, stores=1, sim_start=SIM_START)
    assert digests(again) == digests(one_store)
    other = digests(generate(tmp_path / "other", seed=7, stores=1, sim_start=SIM_START))
    first = digests(one_store)
    assert other["store_inventory"] != first["store_inventory"]
    assert other["store_batches"] != first["store_batches"]
    assert other["weekly_discounts"] != first["weekly_discounts"]


def test_manifest_lists_rows_and_sha256(one_store):
    manifest = json.loads(one_store[MANIFEST].read_text())
    assert (manifest["seed"], manifest["stores"]) == (42, 1)
    assert manifest["sim_start"] == SIM_START.isoformat()
    assert set(manifest["files"]) == {o.name for o in OUTPUTS}
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == hashlib.sha256(one_store[name].read_bytes()).hexdigest()
        assert entry["rows"] == pq.ParquetFile(one_store[name]).metadata.num_rows


def test_two_stores_carry_store_id_everywhere(tmp_path, frames):
    paths = generate(tmp_path, seed=42, stores=2, sim_start=SIM_START)
    stores = pq.read_table(paths["stores"]).to_pandas()
    assert list(stores["store_id"]) == ["S001", "S002"]
    for output in OUTPUTS:
        frame = pq.read_table(paths[output.name]).to_pandas()
        assert frame["store_id"].notna().all(), output.name
        assert set(frame["store_id"]) == {"S001", "S002"}, output.name
    inventory = pq.read_table(paths["store_inventory"]).to_pandas()
    assert inventory.groupby("store_id").size().to_dict() == {"S001": 1142, "S002": 1142}
    # store S001 does not depend on how many stores are generated
    first = inventory[inventory["store_id"] == "S001"].reset_index(drop=True)
    assert first.equals(frames["store_inventory"])
    second = inventory[inventory["store_id"] == "S002"].reset_index(drop=True)
    assert not second["maximum_stock"].equals(first["maximum_stock"])


def test_one_store_generates_well_under_five_seconds(tmp_path):
    started = time.perf_counter()
    generate(tmp_path, seed=1, stores=1, sim_start=SIM_START)
    assert time.perf_counter() - started < 5


def test_naive_sim_start_is_taken_as_utc(tmp_path):
    paths = generate(tmp_path, seed=42, stores=1, sim_start=datetime(2026, 1, 1, 7, 0))
    stores = pq.read_table(paths["stores"]).to_pandas()
    assert stores["sim_start"].iloc[0] == pd.Timestamp(SIM_START)


def test_cli_prints_one_line_per_file(tmp_path, capsys):
    cli_main(["--out", str(tmp_path), "--seed", "42", "--stores", "1"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(OUTPUTS) + 1
    assert (tmp_path / "manifest.json").exists()


# ---- loader SQL (rendered without a database) ---------------------------------------------


def test_loader_follows_the_files_for_snapshots_and_never_overwrites_policies():
    by_name = {o.name: o for o in OUTPUTS}
    for name in ("store_inventory", "shelf_profiles", "batch_catalog"):
        sql_text = merge_statement(by_name[name], "staging").as_string(None)
        assert "DO UPDATE" in sql_text and "IS DISTINCT FROM" in sql_text
        stale = delete_stale_statement(by_name[name], "staging").as_string(None)
        assert stale.startswith("DELETE FROM") and "NOT IN" in stale
    for name in ("shelf_policies", "wh_policies"):
        assert merge_statement(by_name[name], "staging").as_string(None).endswith("DO NOTHING")
