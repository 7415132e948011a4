"""The one Delta reader against tables as the platform's writers leave them: delta-rs appends
(plain strings), delta-rs merges (the streaming driver's upserts: `string_view`), large strings,
and Spark's appends, alone and mixed in one table, read for one store and for a chain."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from smart_shelf_platform import delta_reader
from smart_shelf_platform.contracts.catalogue import DELTA_TABLES_BY_PATH
from smart_shelf_platform.delta_reader import MissingTable, TimeRange
from smart_shelf_platform.stack.delta_tables import table_uri

PATH = "cleansed/shelf_state"
SPEC = DELTA_TABLES_BY_PATH[PATH]
SCHEMA = SPEC.record.arrow_schema()
T0 = datetime(2026, 1, 1, 8, 0, tzinfo=timezone.utc)


def rows(store: str, shelf: str, stock: int, hour: int) -> dict:
    return {"store_id": store, "shelf_id": shelf, "current_stock": stock, "max_stock": 50,
            "unit_weight": 0.5, "shelf_weight": stock * 0.5, "version": 1,
            "last_update_ts": T0 + timedelta(hours=hour)}


def arrow(*records: dict, strings: pa.DataType = pa.string()) -> pa.Table:
    """Records in the contract's schema, its strings as `strings`."""
    schema = pa.schema([f.with_type(strings) if pa.types.is_string(f.type) else f
                        for f in SCHEMA])
    return pa.Table.from_pylist(list(records), schema=schema)


def new_table(delta_root: str) -> str:
    uri = table_uri(delta_root, SPEC)
    write_deltalake(uri, SCHEMA.empty_table(), mode="append")
    return uri


def merge(uri: str, table: pa.Table) -> None:
    """An upsert as the streaming driver makes it (`streaming.driver_writes.upsert`)."""
    (DeltaTable(uri).merge(table, "t.store_id = s.store_id AND t.shelf_id = s.shelf_id",
                           source_alias="s", target_alias="t")
     .when_matched_update_all().when_not_matched_insert_all().execute())


def string_layouts(uri: str) -> set[str]:
    """How the table's files store `store_id`, as Arrow reads each file back."""
    return {str(pq.read_schema(f).field("store_id").type) for f in DeltaTable(uri).file_uris()}


def stock(table: pa.Table) -> dict[tuple[str, str], int]:
    return {(r["store_id"], r["shelf_id"]): r["current_stock"] for r in table.to_pylist()}


@pytest.fixture
def mixed(tmp_path) -> str:
    """A chain's shelf state written by delta-rs in every layout it produces: S001 and S002
    appended with plain strings (a file each), S001's first shelf updated (its file rewritten)
    and S003 inserted by a merge (string_view), a shelf of S002 appended with large strings.
    Returns the Delta root."""
    root = str(tmp_path / "delta")
    uri = new_table(root)
    write_deltalake(uri, arrow(rows("S001", "SH001", 10, 0), rows("S001", "SH002", 20, 1)),
                    mode="append")
    write_deltalake(uri, arrow(rows("S002", "SH001", 30, 2)), mode="append")
    merge(uri, arrow(rows("S001", "SH001", 9, 3), rows("S003", "SH001", 40, 4)))
    write_deltalake(uri, arrow(rows("S002", "SH002", 35, 5), strings=pa.large_string()),
                    mode="append")
    return root


def test_a_table_of_every_delta_rs_layout_reproduces_the_chain_s_failure(mixed):
    """The table the reader must survive: files in plain and view strings, and filtering it
    by store straight through pyarrow fails as `verify` and `report` did on a chain."""
    uri = table_uri(mixed, SPEC)
    assert {"string", "string_view"} <= string_layouts(uri)
    with pytest.raises(pa.ArrowNotImplementedError, match="string_view"):
        DeltaTable(uri).to_pyarrow_table(filters=pc.field("store_id").isin(["S001", "S002"]))


def test_reads_one_store_or_a_chain_of_a_mixed_table_in_plain_types(mixed):
    one = delta_reader.read(mixed, PATH, ["store_id", "shelf_id", "current_stock"],
                            stores=["S001"])
    assert stock(one) == {("S001", "SH001"): 9, ("S001", "SH002"): 20}
    assert one.schema.field("store_id").type == pa.string()
    chain = delta_reader.read(mixed, PATH, stores=["S001", "S002", "S003"])
    assert stock(chain) == {("S001", "SH001"): 9, ("S001", "SH002"): 20, ("S002", "SH001"): 30,
                            ("S002", "SH002"): 35, ("S003", "SH001"): 40}
    assert [f.type for f in chain.schema] == [f.type for f in SCHEMA]  # the contract's types
    everything = delta_reader.read(mixed, PATH, ["store_id", "shelf_id", "current_stock"])
    assert stock(everything) == stock(chain)
    assert delta_reader.read(mixed, PATH, ["store_id"], stores=[]).num_rows == 0
    assert delta_reader.read(mixed, PATH, ["store_id"], stores=["S009"]).num_rows == 0


def test_filters_by_time_and_by_an_expression_on_plain_strings(mixed):
    window = TimeRange("last_update_ts", T0 + timedelta(hours=2), T0 + timedelta(hours=5))
    assert stock(delta_reader.read(mixed, PATH, ["store_id", "shelf_id", "current_stock"],
                                   time=window)) == {
        ("S002", "SH001"): 30, ("S001", "SH001"): 9, ("S003", "SH001"): 40}
    since = TimeRange("last_update_ts", T0 + timedelta(hours=4))
    assert stock(delta_reader.read(mixed, PATH, ["store_id", "shelf_id", "current_stock"],
                                   stores=["S002", "S003"], time=since)) == {
        ("S003", "SH001"): 40, ("S002", "SH002"): 35}
    # A string comparison, the kind of filter that had no kernel for string_view.
    shelves = delta_reader.read(mixed, PATH, ["store_id", "shelf_id", "current_stock"],
                                where=pc.field("store_id") >= "S002")
    assert set(stock(shelves)) == {("S002", "SH001"), ("S002", "SH002"), ("S003", "SH001")}


def test_a_missing_table_is_named_with_what_creates_it(tmp_path):
    with pytest.raises(MissingTable, match=f"Delta table {PATH} is missing at .*smart-shelf up"):
        delta_reader.read(str(tmp_path), PATH, ["store_id"])
    assert delta_reader.last_commit(table_uri(str(tmp_path), SPEC)) is None


def test_snapshot_counts_rows_and_finds_the_latest_time(mixed):
    uri = table_uri(mixed, SPEC)
    snap = delta_reader.snapshot(uri, "last_update_ts")
    assert (snap.row_count, snap.latest_event_time) == (5, T0 + timedelta(hours=5))
    assert snap.version == delta_reader.version(uri) == delta_reader.last_commit(uri)[0] == 4


@pytest.mark.integration
def test_reads_a_table_spark_and_delta_rs_both_wrote(spark, tmp_path):
    """Spark appends plain strings to the table delta-rs created, then the driver's merge
    adds string_view files: every store, one store and a time range read the same rows."""
    root = str(tmp_path / "delta")
    uri = new_table(root)
    written = [rows(s, sh, n, h) for s, sh, n, h in (
        ("S001", "SH001", 10, 0), ("S002", "SH001", 20, 1), ("S003", "SH001", 30, 2))]
    spark.createDataFrame(arrow(*written).to_pandas(), schema=", ".join(
        f"{f.name} {kind}" for f, kind in zip(SCHEMA, (
            "STRING", "STRING", "INT", "INT", "DOUBLE", "DOUBLE", "BIGINT", "TIMESTAMP")))
    ).write.format("delta").mode("append").save(uri)
    merge(uri, arrow(rows("S002", "SH001", 19, 3), rows("S004", "SH001", 40, 4)))
    assert {"string", "string_view"} <= string_layouts(uri)

    columns = ["store_id", "shelf_id", "current_stock"]
    assert stock(delta_reader.read(root, PATH, columns, stores=["S002"])) == {
        ("S002", "SH001"): 19}
    assert stock(delta_reader.read(root, PATH, columns, stores=["S001", "S002", "S004"])) == {
        ("S001", "SH001"): 10, ("S002", "SH001"): 19, ("S004", "SH001"): 40}
    late = TimeRange("last_update_ts", T0 + timedelta(hours=2))
    assert stock(delta_reader.read(root, PATH, columns, time=late)) == {
        ("S002", "SH001"): 19, ("S003", "SH001"): 30, ("S004", "SH001"): 40}
