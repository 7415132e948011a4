"""State as a fold over events: signed quantity deltas applied to a Delta state table.

Every state query (shelf aggregator, batch state updater, warehouse aggregator, warehouse batch
state updater) turns its micro-batch into one row per key with the net `delta` of the batch and
the latest event time `event_ts` (`net_units`, in Spark); `StateFold.apply` then, on the driver,

1. reads the touched keys' rows and folds the deltas into them (`rules.stock.folded_stock`:
   within [0, capacity], `version` + 1),
2. upserts them into the table once per batch id (`driver_writes`: a replay writes nothing),
3. publishes them, absolute, to the compacted topic. A batch replayed after its commit publishes
   the table's rows as they are, which consumers drop by version.

`bootstrap` fills an empty table from the reference snapshot when a query first starts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
from deltalake import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from smart_shelf_platform.contracts.catalogue import DELTA_TABLES_BY_PATH
from smart_shelf_platform.contracts.types import Record
from smart_shelf_platform.rules.stock import folded_stock
from smart_shelf_platform.settings import Settings
from smart_shelf_platform.publisher import Publisher
from streaming import driver_writes, shell
from streaming.host import Member

log = logging.getLogger(__name__)

DELTA, EVENT_TS = "delta", "event_ts"


def net_units(units: Column) -> list[Column]:
    """The aggregate columns of a delta row: net `units` and the latest event time."""
    return [F.sum(units).cast("int").alias(DELTA), F.max("timestamp").alias(EVENT_TS)]


@dataclass(frozen=True)
class StateFold:
    """How deltas fold into one state table (`layer/name`) published to one compacted topic."""

    table: str
    topic: str
    quantity: str
    capacity: str | None = None
    # Columns a new key takes (a lot seen for the first time), from the row of the same key in
    # `insert_from` (the warehouse lot it came from); without them a key must already exist
    # (the known-shelves check dead-letters events of other shelves).
    insert_columns: tuple[str, ...] = ()
    insert_from: str | None = None
    # Columns recomputed from the folded row, e.g. shelf weight = unit weight x units.
    derived: dict[str, Callable[[dict], object]] = field(default_factory=dict)

    @property
    def record(self) -> Record:
        return DELTA_TABLES_BY_PATH[self.table].record

    def folded(self, current: dict | None, change: dict) -> dict | None:
        """The row of `change`'s key after its delta; None for a key the table does not have
        and cannot take (unknown, or a lot without dates: NOT NULL columns)."""
        if current is None:
            if not self.insert_columns or any(change.get(c) is None
                                              for c in self.insert_columns):
                return None
            current = {**{k: change[k] for k in (*self.record.key, *self.insert_columns)},
                       self.quantity: 0, "version": 0, "last_update_ts": change[EVENT_TS]}
        capacity = current[self.capacity] if self.capacity is not None else None
        row = {**current, self.quantity: folded_stock(current[self.quantity], change[DELTA],
                                                      capacity),
               "version": current["version"] + 1,
               "last_update_ts": max(current["last_update_ts"], change[EVENT_TS])}
        return row | {c: fn(row) for c, fn in self.derived.items()}

    def apply(self, ctx: shell.QueryContext, publisher: Publisher,
              deltas: DataFrame, app_id: str, batch_id: int) -> None:
        """Fold one micro-batch of deltas into the table and publish the touched keys' rows."""
        changes = deltas.toArrow().to_pylist()  # one Spark job; a few rows while live
        if not changes:
            return
        key = self.record.key
        table = DeltaTable(ctx.table(self.table))
        current = driver_writes.rows_by_key(table, key, (tuple(c[k] for k in key)
                                                         for c in changes))
        new = [c for c in changes if tuple(c[k] for k in key) not in current]
        if new and self.insert_from is not None:  # a few rows, read by key without Spark
            origin = driver_writes.rows_by_key(DeltaTable(ctx.table(self.insert_from)), key,
                                               (tuple(c[k] for k in key) for c in new))
            for change in new:
                found = origin.get(tuple(change[k] for k in key), {})
                change.update({c: found.get(c) for c in self.insert_columns})
        rows = [row for c in changes
                if (row := self.folded(current.get(tuple(c[k] for k in key)), c))]
        if not driver_writes.upsert(table, self.record, rows, app_id, batch_id):
            # Nothing written: a replay, whose commit the table holds (or no key the table has
            # or can take, and then `current` is empty too).
            rows = list(current.values())
        self.publish(publisher, rows)

    def publish(self, publisher: Publisher, rows: list[dict]) -> None:
        publisher.send((self.topic, row) for row in rows)

    def bootstrap(self, ctx: shell.QueryContext, publisher: Publisher,
                  rows: pa.Table, app_id: str) -> int:
        """Fill the table from `rows` (the reference snapshot) if it holds nothing yet.

        Published before it is written: a crash in between finds the table still empty and
        publishes the same absolute rows again, instead of leaving the topic without them.
        """
        path = ctx.table(self.table)
        if not driver_writes.is_empty(path):
            return 0
        rows = rows.select(list(self.record.field_names)).cast(self.record.arrow_schema())
        self.publish(publisher, rows.to_pylist())
        driver_writes.append(path, rows, f"{app_id}/bootstrap", 0)
        log.info("%s: bootstrapped %s with %d rows", app_id, self.table, rows.num_rows)
        return rows.num_rows


class FoldingMember(Member):
    """A state query: its table is filled from the reference snapshot (`snapshot(settings)`)
    when it first starts, and it stays with the checkpoint it folds under (`Member.pinned`)."""

    fold: StateFold
    snapshot: Callable[[Settings], pa.Table]
    pinned = True

    def __init__(self, spark: SparkSession, ctx: shell.QueryContext):
        super().__init__(spark, ctx)
        self.publisher = Publisher(ctx.settings.kafka_bootstrap, self.name, ctx.topic)
        self.fold.bootstrap(ctx, self.publisher, type(self).snapshot(ctx.settings), self.app_id)

    def apply(self, deltas: DataFrame, batch_id: int) -> None:
        self.fold.apply(self.ctx, self.publisher, deltas, self.app_id, batch_id)
