"""State as a fold over events: signed quantity deltas merged into a Delta state table.

Every state query (shelf aggregator, batch state updater, warehouse aggregator, warehouse batch
state updater) turns its micro-batch into one row per key with the net `delta` of the batch and
the latest event time `event_ts` (`net_units`); `StateFold.apply` then

1. MERGEs the deltas into the table once per batch id (Delta txn: a replay changes nothing),
   keeping the quantity within [0, capacity] and bumping `version`,
2. publishes the touched keys' absolute state to the compacted topic (read back from the table,
   so a replayed batch republishes the same rows, which consumers drop by version).

`bootstrap` fills an empty table from the reference snapshot when a query first starts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from smart_shelf_platform.contracts.catalogue import DELTA_TABLES_BY_PATH, TOPICS_BY_NAME
from smart_shelf_platform.settings import Settings
from streaming import shell
from streaming.host import Member

log = logging.getLogger(__name__)

DELTA, EVENT_TS = "delta", "event_ts"
# Delta records this in the commit's `userMetadata`, so a table's history says what each batch did.
COMMIT_METADATA_CONF = "spark.databricks.delta.commitInfo.userMetadata"


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
    # Columns a new key takes from the deltas (a lot seen for the first time); without them a
    # key must already exist (the known-shelves check dead-letters events of other shelves).
    insert_columns: tuple[str, ...] = ()
    # Columns recomputed from the new quantity, e.g. shelf weight = unit weight x units.
    derived: dict[str, Callable[[Column], Column]] = field(default_factory=dict)

    @property
    def keys(self) -> tuple[str, ...]:
        return DELTA_TABLES_BY_PATH[self.table].record.key

    @property
    def columns(self) -> tuple[str, ...]:
        return DELTA_TABLES_BY_PATH[self.table].record.field_names

    def apply(self, spark: SparkSession, ctx: shell.QueryContext, deltas: DataFrame,
              app_id: str, batch_id: int) -> None:
        """Fold one micro-batch of deltas into the table and publish the touched keys."""
        path = ctx.table(self.table)
        deltas = deltas.persist()
        try:
            spark.conf.set(COMMIT_METADATA_CONF,
                           json.dumps({"query": app_id, "batch": batch_id}))
            try:
                shell.merge_idempotent(spark, self._merge(spark, path, deltas), app_id, batch_id)
            finally:
                spark.conf.unset(COMMIT_METADATA_CONF)
            touched = (spark.read.format("delta").load(path)
                       .join(F.broadcast(deltas.select(*self.keys)), list(self.keys), "left_semi"))
            self.publish(ctx, touched)
        finally:
            deltas.unpersist()

    def _merge(self, spark: SparkSession, path: str, deltas: DataFrame):
        t, s = (lambda c: F.col(f"t.{c}")), (lambda c: F.col(f"s.{c}"))
        quantity = t(self.quantity) + s(DELTA)
        if self.capacity is not None:
            quantity = F.least(quantity, t(self.capacity))
        quantity = F.greatest(quantity, F.lit(0))
        updates = {self.quantity: quantity, "version": t("version") + 1,
                   "last_update_ts": F.greatest(t("last_update_ts"), s(EVENT_TS)),
                   **{c: fn(quantity) for c, fn in self.derived.items()}}
        condition = " AND ".join(f"t.{k} = s.{k}" for k in self.keys)
        merge = (DeltaTable.forPath(spark, path).alias("t").merge(deltas.alias("s"), condition)
                 .whenMatchedUpdate(set=updates))
        if self.insert_columns:
            inserted = F.greatest(s(DELTA), F.lit(0))
            values = {**{k: s(k) for k in self.keys}, **{c: s(c) for c in self.insert_columns},
                      self.quantity: inserted, "version": F.lit(1), "last_update_ts": s(EVENT_TS),
                      **{c: fn(inserted) for c, fn in self.derived.items()}}
            # A lot without dates cannot be stored (NOT NULL columns): see lot_deltas.
            known = " AND ".join(f"s.{c} IS NOT NULL" for c in self.insert_columns)
            merge = merge.whenNotMatchedInsert(condition=known, values=values)
        return merge

    def publish(self, ctx: shell.QueryContext, rows: DataFrame) -> None:
        topic = TOPICS_BY_NAME[self.topic]
        shell.publish_json(rows.select(*self.columns), ctx.settings, ctx.topic(topic.name),
                           key=shell.message_key(topic))

    def bootstrap(self, spark: SparkSession, ctx: shell.QueryContext, rows: pa.Table,
                  app_id: str) -> int:
        """Fill the table from `rows` (the reference snapshot) if it holds nothing yet.

        Published before it is written: a crash in between finds the table still empty and
        publishes the same absolute rows again, instead of leaving the topic without them.
        """
        path = ctx.table(self.table)
        if not spark.read.format("delta").load(path).isEmpty():
            return 0
        record = DELTA_TABLES_BY_PATH[self.table].record
        frame = spark.createDataFrame(rows.select(list(self.columns)).to_pandas(),
                                      schema=record.spark_schema())
        self.publish(ctx, frame)
        shell.append_idempotent(frame, path, f"{app_id}/bootstrap", 0)
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
        self.fold.bootstrap(spark, ctx, type(self).snapshot(ctx.settings), self.app_id)
