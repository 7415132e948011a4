"""Data-quality rules over in-memory Arrow tables: the logic behind the Dagster asset checks.

Every rule is a pure function (no Dagster, no I/O) that returns a `CheckOutcome`: whether the
table passed and metadata with the counts a person needs to judge it, including up to
`MAX_EXAMPLES` offending keys written the way the platform writes message keys ("S001|SH0042").
An empty table passes every rule, with `row_count` 0 in its metadata: a fresh stack is not broken.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

MAX_EXAMPLES = 5
KEY_SEPARATOR = "|"  # as in Topic.message_key, so an offending key can be searched for as is


class CheckOutcome(NamedTuple):
    passed: bool
    metadata: dict


def key_strings(table: pa.Table, columns: Sequence[str]) -> list[str]:
    """Each row's values of `columns` joined by KEY_SEPARATOR."""
    values = zip(*(table.column(c).to_pylist() for c in columns))
    return [KEY_SEPARATOR.join(str(v) for v in row) for row in values]


def examples(table: pa.Table, columns: Sequence[str]) -> list[str]:
    """The first MAX_EXAMPLES keys in key order, so the same breakage always names the same keys."""
    ordered = table.sort_by([(c, "ascending") for c in columns]).slice(0, MAX_EXAMPLES)
    return key_strings(ordered, columns)


def as_join_keys(table: pa.Table, columns: Sequence[str]) -> pa.Table:
    """`columns` only, cast to string: Postgres text and Delta strings (or an empty column of
    type null) then compare equal wherever their values do."""
    return pa.table({c: pc.cast(table.column(c), pa.string()) for c in columns})


def keys_unique(table: pa.Table, key_columns: Sequence[str]) -> CheckOutcome:
    """No two rows share the same values of `key_columns`."""
    counts = as_join_keys(table, key_columns).group_by(list(key_columns)).aggregate(
        [([], "count_all")])
    duplicated = counts.filter(pc.greater(counts["count_all"], 1))
    return CheckOutcome(duplicated.num_rows == 0, {
        "row_count": table.num_rows,
        "duplicate_keys": duplicated.num_rows,
        "offending_keys": examples(duplicated, key_columns),
    })


def stock_within_capacity(table: pa.Table, stock_column: str, capacity_column: str,
                          key_columns: Sequence[str]) -> CheckOutcome:
    """Every row's stock lies in [0, capacity]; a missing stock or capacity counts as outside."""
    stock, capacity = table.column(stock_column), table.column(capacity_column)
    below_zero = pc.fill_null(pc.less(stock, 0), True)
    above_capacity = pc.fill_null(pc.greater(stock, capacity), True)
    outside = table.filter(pc.or_(below_zero, above_capacity))
    return CheckOutcome(outside.num_rows == 0, {
        "row_count": table.num_rows,
        "below_zero": pc.sum(pc.cast(below_zero, pa.int64())).as_py() or 0,
        "above_capacity": pc.sum(pc.cast(above_capacity, pa.int64())).as_py() or 0,
        "offending_keys": examples(outside, key_columns),
    })


def no_negative(table: pa.Table, column: str, key_columns: Sequence[str]) -> CheckOutcome:
    """Every row's `column` is zero or more; a missing value counts as negative."""
    negative = table.filter(pc.fill_null(pc.less(table.column(column), 0), True))
    return CheckOutcome(negative.num_rows == 0, {
        "row_count": table.num_rows,
        "negative_rows": negative.num_rows,
        "offending_keys": examples(negative, key_columns),
    })


def references_exist(child: pa.Table, parent: pa.Table, columns: Sequence[str]) -> CheckOutcome:
    """Every child row's `columns` name a row of `parent` (a foreign key the database does not
    enforce). The offending keys are the missing references, not the child rows."""
    columns = list(columns)
    known = as_join_keys(parent, columns).group_by(columns).aggregate([])
    orphans = as_join_keys(child, columns).join(known, keys=columns, join_type="left anti")
    missing = orphans.group_by(columns).aggregate([])
    return CheckOutcome(orphans.num_rows == 0, {
        "row_count": child.num_rows,
        "parent_row_count": parent.num_rows,
        "orphan_rows": orphans.num_rows,
        "missing_references": missing.num_rows,
        "offending_keys": examples(missing, columns),
    })


def lots_sum_to_stock(lots: pa.Table, inventory: pa.Table, quantity_column: str,
                      stock_column: str, shelf_columns: Sequence[str]) -> CheckOutcome:
    """Per inventory shelf, the lots' quantities add up to the shelf's stock (no lots = 0 units).
    Lots on shelves the inventory does not know are `references_exist`'s to report."""
    shelf_columns = list(shelf_columns)
    lot_units = as_join_keys(lots, shelf_columns).append_column(
        "units", pc.cast(lots.column(quantity_column), pa.int64())
    ).group_by(shelf_columns).aggregate([("units", "sum")])
    stock = as_join_keys(inventory, shelf_columns).append_column(
        "stock", pc.cast(inventory.column(stock_column), pa.int64()))
    joined = stock.join(lot_units, keys=shelf_columns, join_type="left outer")
    units = pc.fill_null(joined["units_sum"], 0)
    mismatched = joined.filter(pc.not_equal(units, joined["stock"]))
    return CheckOutcome(mismatched.num_rows == 0, {
        "row_count": lots.num_rows,
        "shelf_count": inventory.num_rows,
        "units_in_lots": pc.sum(lot_units["units_sum"]).as_py() or 0,
        "units_in_stock": pc.sum(stock["stock"]).as_py() or 0,
        "mismatched_shelves": mismatched.num_rows,
        "offending_keys": examples(mismatched, shelf_columns),
    })


def within_lag(latest_event_time: datetime | None, sim_now: datetime | None,
               max_lag: timedelta) -> CheckOutcome:
    """The table's latest event is at most `max_lag` behind simulated now.

    A clock that never ran or an empty table passes: nothing has happened yet, so nothing can be
    late, and a freshly started stack must not light up red.
    """
    metadata: dict = {"max_lag_minutes": max_lag.total_seconds() / 60}
    if sim_now is None:
        return CheckOutcome(True, metadata | {"reason": "the simulated clock has never run"})
    metadata["sim_now"] = sim_now.isoformat()
    if latest_event_time is None:
        return CheckOutcome(True, metadata | {"reason": "the table has no events yet"})
    lag = sim_now - latest_event_time
    return CheckOutcome(lag <= max_lag, metadata | {
        "latest_event_time": latest_event_time.isoformat(),
        "lag_minutes": lag.total_seconds() / 60,
    })


def no_nulls(table: pa.Table, columns: Sequence[str], key_columns: Sequence[str]) -> CheckOutcome:
    """None of `columns` is null in any row (the contract's required columns)."""
    nulls = {c: table.column(c).null_count for c in columns}
    missing = pa.array([False] * table.num_rows, pa.bool_())
    for column in columns:
        missing = pc.or_(missing, pc.is_null(table.column(column)))
    offending = table.filter(missing)
    return CheckOutcome(offending.num_rows == 0, {
        "row_count": table.num_rows,
        "rows_with_nulls": offending.num_rows,
        "null_counts": {c: n for c, n in nulls.items() if n},
        "offending_keys": examples(offending, key_columns),
    })


def within_bounds(table: pa.Table, columns: Sequence[str], low: float, high: float,
                  key_columns: Sequence[str]) -> CheckOutcome:
    """Every value of `columns` lies in [low, high]; a missing value counts as outside."""
    outside_by_column, outside = {}, pa.array([False] * table.num_rows, pa.bool_())
    for column in columns:
        values = pc.cast(table.column(column), pa.float64())
        bad = pc.fill_null(pc.or_(pc.less(values, low), pc.greater(values, high)), True)
        outside_by_column[column] = pc.sum(pc.cast(bad, pa.int64())).as_py() or 0
        outside = pc.or_(outside, bad)
    offending = table.filter(outside)
    return CheckOutcome(offending.num_rows == 0, {
        "row_count": table.num_rows,
        "bounds": [low, high],
        "outside_by_column": {c: n for c, n in outside_by_column.items() if n},
        "offending_keys": examples(offending, key_columns),
    })


def every_key_present(table: pa.Table, expected: pa.Table, columns: Sequence[str]) -> CheckOutcome:
    """Every row of `expected` (e.g. the catalogue's shelves) has a row in `table` with the same
    `columns`: the reverse of `references_exist`, named for what is missing."""
    columns = list(columns)
    present = as_join_keys(table, columns).group_by(columns).aggregate([])
    missing = as_join_keys(expected, columns).join(present, keys=columns, join_type="left anti")
    return CheckOutcome(missing.num_rows == 0, {
        "row_count": table.num_rows,
        "expected_keys": expected.num_rows,
        "missing_keys": missing.num_rows,
        "offending_keys": examples(missing, columns),
    })


def quantiles_ordered(table: pa.Table, columns: Sequence[str],
                      key_columns: Sequence[str]) -> CheckOutcome:
    """Every row's quantile columns are present, at least 0 and non-decreasing in the order
    given (a 0.9 quantile below the 0.8 one is not a forecast)."""
    bad = pa.array([False] * table.num_rows, pa.bool_())
    for column in columns:
        values = pc.cast(table.column(column), pa.float64())
        bad = pc.or_(bad, pc.fill_null(pc.or_(pc.less(values, 0), pc.is_nan(values)), True))
    for lower, upper in zip(columns, columns[1:]):
        bad = pc.or_(bad, pc.fill_null(pc.greater(table.column(lower), table.column(upper)), True))
    offending = table.filter(bad)
    return CheckOutcome(offending.num_rows == 0, {
        "row_count": table.num_rows,
        "rows_out_of_order_or_negative": offending.num_rows,
        "offending_keys": examples(offending, key_columns),
    })


def orders_fit_capacity(table: pa.Table, key_columns: Sequence[str]) -> CheckOutcome:
    """Every order is whole batches and fits the warehouse's free capacity (capacity - on hand -
    on order, at least 0)."""
    units, batch = table.column("order_units"), table.column("batch_size")
    free = pc.max_element_wise(pc.subtract(pc.subtract(table.column("wh_capacity"),
                                                       table.column("wh_on_hand")),
                                           table.column("on_order")), 0)
    over = pc.greater(units, free)
    not_whole = pc.not_equal(pc.multiply(table.column("order_batches"), batch), units)
    bad = pc.fill_null(pc.or_(pc.or_(over, not_whole), pc.less(units, 0)), True)
    offending = table.filter(bad)
    return CheckOutcome(offending.num_rows == 0, {
        "row_count": table.num_rows,
        "orders_over_free_capacity_or_not_whole_batches": offending.num_rows,
        "offending_keys": examples(offending, key_columns),
    })
