"""`smart-shelf verify`: the pure comparison on small dicts, then the command against real Delta
tables and the real ledger."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import date, datetime, timezone

import psycopg
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from producers.ledger import Ledger
from smart_shelf_platform.contracts.catalogue import DELTA_TABLES_BY_PATH
from smart_shelf_platform.contracts.types import Record
from smart_shelf_platform.stack.delta_tables import ensure_delta_tables, table_uri
from smart_shelf_platform.stack.process import StackError
from smart_shelf_platform.verify import (
    DeadLetter, Difference, InjectedBadEvent, LedgerState, PlatformState, compare, reason_prefix,
    select_stores, verify,
)

BAD = InjectedBadEvent("S001", "bad-1", "shelf_events", "negative_quantity", '{"quantity":-2}')


def platform(**changes) -> PlatformState:
    state = dict(
        shelf_stock={("S001", "SH1"): 5, ("S001", "SH2"): 4},
        shelf_lots={("S001", "SH1", "B1"): 7, ("S001", "SH2", "B3"): 4},
        wh_stock={("S001", "SH1"): 10},
        wh_lots={("S001", "SH1", "W1"): 10},
        dead_letters=[DeadLetter(BAD.payload, "negative quantity")],
    )
    return PlatformState(**{**state, **changes})


def ledger(**changes) -> LedgerState:
    state = dict(
        stores=["S001"],
        # B2 was emptied: the platform may have dropped its row, 0 on both sides agrees.
        shelf_lots={("S001", "SH1", "B1"): 5, ("S001", "SH1", "B2"): 0, ("S001", "SH2", "B3"): 4},
        cart_lots={("S001", "SH1", "B1"): 2},
        wh_lots={("S001", "SH1", "W1"): 10},
        bad_events=[BAD],
    )
    return LedgerState(**{**state, **changes})


def test_equal_sides_are_ok_and_carts_count_on_the_shelf_lots_only():
    report = compare(platform(), ledger())
    assert report.ok, report.lines()
    assert {n: c.keys for n, c in report.comparisons.items()} == {
        "shelf_state": 2, "shelf_batch_state": 3, "wh_state": 1, "wh_batch_state": 1}
    assert report.lines()[-1] == "verify: OK (1 store, 7 keys, 1 bad event dead-lettered)"


def test_every_difference_is_reported_with_both_quantities():
    report = compare(platform(wh_lots={("S001", "SH1", "W1"): 9}),
                     ledger(shelf_lots={("S001", "SH1", "B1"): 6, ("S001", "SH2", "B3"): 4}))
    differences = {n: c.differences for n, c in report.comparisons.items()}
    assert differences == {
        "shelf_state": [Difference(("S001", "SH1"), 5, 6)],
        "shelf_batch_state": [Difference(("S001", "SH1", "B1"), 7, 8)],
        "wh_state": [],
        "wh_batch_state": [Difference(("S001", "SH1", "W1"), 9, 10)],
    }
    assert not report.ok and report.difference_count == 3
    lines = report.lines()
    assert "shelf_state: 2 keys, 1 difference" in lines
    assert "  S001 SH1 W1: platform 9, ledger 10" in lines
    assert lines[-1] == "verify: 3 differences (S001: 3)"


def test_a_chain_s_differences_are_counted_per_store():
    """Three stores, two of them off: each store's line says what differs in it, and the
    verdict which stores the differences are in."""
    bad_s3 = InjectedBadEvent("S003", "bad-3", "pos_transactions", "broken_json", '{"x')
    report = compare(
        platform(shelf_stock={("S001", "SH1"): 5, ("S001", "SH2"): 4, ("S002", "SH1"): 1,
                              ("S003", "SH1"): 2},
                 shelf_lots={("S001", "SH1", "B1"): 7, ("S001", "SH2", "B3"): 4,
                             ("S002", "SH1", "B1"): 1, ("S003", "SH1", "B1"): 2}),
        ledger(stores=["S001", "S002", "S003"],
               shelf_lots={("S001", "SH1", "B1"): 5, ("S001", "SH2", "B3"): 4,
                           ("S002", "SH1", "B1"): 3, ("S003", "SH1", "B1"): 2},
               bad_events=[BAD, bad_s3]))
    lines = report.lines()
    assert lines[lines.index("stores:") + 1:] == [
        "  S001: 6 keys, 0 differences, 1 bad event injected",
        "  S002: 2 keys, 2 differences (shelf_state 1, shelf_batch_state 1), 0 bad events "
        "injected",
        "  S003: 2 keys, 1 difference (raw/dead_letter 1), 1 bad event injected",
        "verify: 3 differences (S002: 2, S003: 1)"]
    assert "  S002 SH1: platform 1, ledger 3" in lines


def test_a_key_missing_on_one_side_counts_as_zero_there():
    report = compare(platform(shelf_lots={("S001", "SH1", "B1"): 7, ("S001", "SH2", "B3"): 4,
                                          ("S001", "SH9", "B9"): 3}),
                     ledger(wh_lots={}))
    assert report.comparisons["shelf_batch_state"].differences == [
        Difference(("S001", "SH9", "B9"), 3, 0)]
    assert report.comparisons["wh_state"].differences == [Difference(("S001", "SH1"), 10, 0)]
    assert report.comparisons["wh_batch_state"].differences == [
        Difference(("S001", "SH1", "W1"), 10, 0)]


def test_carts_are_part_of_the_shelf_lot_expectation():
    report = compare(platform(), ledger(cart_lots={}))
    assert report.comparisons["shelf_batch_state"].differences == [
        Difference(("S001", "SH1", "B1"), 7, 5)]
    assert report.comparisons["shelf_state"].differences == []


def test_a_bad_event_missing_from_the_dead_letters_is_a_difference():
    other = DeadLetter('{"other":1}', "missing field timestamp; quantity: not an integer")
    report = compare(platform(dead_letters=[other, other]), ledger())
    assert report.missing_dead_letters == [BAD]
    assert report.dead_letter_reasons == {"missing field timestamp": 2}
    assert not report.ok
    lines = report.lines()
    assert "  S001 bad-1 (shelf_events, negative_quantity): not in raw/dead_letter" in lines
    assert "dead letters: 2 rows (missing field timestamp: 2)" in lines


def test_reason_prefix_drops_the_detail():
    assert reason_prefix("quantity: not an integer; negative quantity") == "quantity"
    assert reason_prefix("timestamp in the future") == "timestamp in the future"


def test_stores_come_from_the_ledger_and_an_empty_or_unknown_one_is_an_error():
    assert select_stores(["S001", "S002"], None) == ["S001", "S002"]
    assert select_stores(["S001", "S002"], ["S002", "S002"]) == ["S002"]
    with pytest.raises(StackError, match="the ledger is empty"):
        select_stores([], None)
    with pytest.raises(StackError, match="store S009 is not in the ledger; it holds S001"):
        select_stores(["S001"], ["S009"])


def test_the_report_is_json_serialisable():
    report = json.loads(json.dumps(compare(platform(wh_lots={}), ledger()).as_dict()))
    assert report["ok"] is False and report["differences"] == 1
    assert report["comparisons"]["wh_batch_state"]["differences"] == [
        {"key": ["S001", "SH1", "W1"], "platform": 0, "ledger": 10}]


# ---- against the real stack ---------------------------------------------------------------

NOW = datetime(2026, 1, 1, 9, 0, tzinfo=timezone.utc)
FILLER = {"string": "x", "uuid": "00000000-0000-4000-8000-000000000000", "int": 0, "long": 1,
          "double": 0.0, "timestamp": NOW, "date": date(2026, 1, 31)}


def write_rows(delta_root: str, path: str, rows: list[dict]) -> None:
    """Append rows to a Delta table, fields not given filled with a value of their type."""
    record: Record = DELTA_TABLES_BY_PATH[path].record
    full = [{f.name: row.get(f.name, FILLER[f.type.kind]) for f in record.fields} for row in rows]
    write_deltalake(table_uri(delta_root, DELTA_TABLES_BY_PATH[path]),
                    pa.Table.from_pylist(full, schema=record.arrow_schema()), mode="append")


@pytest.fixture()
def store(settings):
    """A store of this test's own in the ledger, removed afterwards."""
    store = f"T{uuid.uuid4().hex[:8]}"
    ledger = Ledger(settings.postgres_dsn())
    yield store
    ledger.reset([store])
    ledger.close()


@pytest.mark.integration
def test_verify_command_agrees_then_reports_a_lot_that_differs(settings, store, tmp_path):
    delta_root = str(tmp_path / "delta")
    ensure_delta_tables(delta_root)
    lot = {"store_id": store, "shelf_id": "SH1"}
    write_rows(delta_root, "cleansed/shelf_state", [{**lot, "current_stock": 5}])
    write_rows(delta_root, "cleansed/shelf_batch_state",
               [{**lot, "batch_code": "B1", "batch_quantity_store": 7}])
    write_rows(delta_root, "cleansed/wh_state", [{**lot, "wh_current_stock": 10}])
    write_rows(delta_root, "cleansed/wh_batch_state",
               [{**lot, "batch_code": "W1", "batch_quantity_warehouse": 10}])
    write_rows(delta_root, "raw/dead_letter", [{"store_id": None, "payload": '{"broken',
                                               "reason": "not JSON"}])
    with psycopg.connect(settings.postgres_dsn()) as conn:
        conn.execute("INSERT INTO sim.ledger_position VALUES (%s, 42, %s, 100, 3, true, now())",
                     (store, NOW))
        for table, batch, quantity in (("ledger_shelf_lots", "B1", 5),
                                       ("ledger_wh_lots", "W1", 10)):
            conn.execute(f"INSERT INTO sim.{table} VALUES (%s, 'SH1', %s, '2026-01-01', "
                         "'2026-01-31', %s, %s)", (store, batch, quantity, NOW))
        conn.execute("INSERT INTO sim.ledger_cart_lots VALUES (%s, 'SH1', 'B1', 2, %s)",
                     (store, NOW))
        conn.execute("INSERT INTO sim.ledger_bad_events VALUES (%s, 'bad-1', 'shelf_events', "
                     "'broken_json', NULL, '{\"broken', %s)", (store, NOW))

    env = {**os.environ, **settings.as_env(), "SMART_SHELF_DELTA_ROOT": delta_root}

    def run_verify() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "smart_shelf_platform.cli", "verify", "--store", store,
             "--json", str(tmp_path / "report.json")],
            env=env, capture_output=True, text=True, timeout=120)

    agreed = run_verify()
    assert agreed.returncode == 0, agreed.stdout + agreed.stderr
    assert "shelf_batch_state: 1 key, 0 differences" in agreed.stdout
    assert agreed.stdout.splitlines()[-1].startswith("verify: OK (1 store")
    assert json.loads((tmp_path / "report.json").read_text())["ok"] is True

    with psycopg.connect(settings.postgres_dsn()) as conn:
        conn.execute("UPDATE sim.ledger_wh_lots SET quantity = 8 WHERE store_id = %s", (store,))
    differs = run_verify()
    assert differs.returncode == 1, differs.stdout + differs.stderr
    assert f"  {store} SH1 W1: platform 10, ledger 8" in differs.stdout
    assert f"  {store} SH1: platform 10, ledger 8" in differs.stdout
    assert f"  {store}: 4 keys, 2 differences (wh_state 1, wh_batch_state 1), 1 bad event " \
        "injected" in differs.stdout
    assert differs.stdout.splitlines()[-1] == f"verify: 2 differences ({store}: 2)"
    assert json.loads((tmp_path / "report.json").read_text())["differences"] == 2

    in_process = verify(settings.model_copy(update={"delta_root_override": delta_root}), [store])
    assert [d.key for d in in_process.comparisons["wh_batch_state"].differences] == [
        (store, "SH1", "W1")]


@pytest.mark.integration
def test_verify_names_what_is_missing_in_one_line(settings, store, tmp_path):
    with pytest.raises(StackError, match=f"store {store} is not in the ledger"):
        verify(settings, [store])
    with psycopg.connect(settings.postgres_dsn()) as conn:
        conn.execute("INSERT INTO sim.ledger_position VALUES (%s, 42, %s, 0, 0, true, now())",
                     (store, NOW))
    result = subprocess.run(
        [sys.executable, "-m", "smart_shelf_platform.cli", "verify", "--store", store],
        env={**os.environ, **settings.as_env(),
             "SMART_SHELF_DELTA_ROOT": str(tmp_path / "nowhere")},
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"smart-shelf: error: Delta table cleansed/shelf_state is missing at "
        f"{tmp_path / 'nowhere'}/cleansed/shelf_state: create it with `smart-shelf up` "
        "(SMART_SHELF_DELTA_ROOT must match the platform's)"]
