"""Batch state updater: units per shelf lot (`cleansed/shelf_batch_state`, `raw/pos_transactions`).

A shelf lot loses units when a receipt line names it (the customer paid for them) or when an
expired lot is removed, and gains them when a restocker's refill puts them on the shelf, not
when the warehouse picks them (the reference system added them at the pick, three
minutes before the shelf had them). Customers' pickups and putbacks carry no lot, so units in a
cart still count here until checkout. A lot new to the shelf takes its dates from the warehouse
lot it came from. Every receipt's lines are also published flat, one message each, to
`pos_transaction_items`, which Kafka Connect sinks into `ops.pos_transaction_items` (a JDBC sink
maps one message to one row).

Reads `pos_transactions` (its dead letters are reported here) and `shelf_events` (reported by
the shelf aggregator). Run alone with `python -m streaming.batch_state_updater`.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from smart_shelf_platform.contracts.catalogue import POS_TRANSACTION_ITEM, TOPICS_BY_NAME
from smart_shelf_platform.contracts.events import POS_TRANSACTION, SHELF_EVENT
from streaming import reference, shell
from streaming.provenance import KnownLots
from streaming.state_fold import FoldingMember, StateFold, net_units

NAME = "batch_state_updater"
# Receipts naming a lot the shelf never had are refused (`provenance.KnownLots`).
POS = shell.EventSource("pos_transactions", POS_TRANSACTION, checks_shelves=True,
                        verify=KnownLots())
# Customers' events (nearly all of the topic) name no lot: only refills and removals are read.
SHELF = shell.EventSource("shelf_events", SHELF_EVENT, dead_letters=False, checks_shelves=True,
                          prefilter=shell.json_field_in("actor", ("restocker", "system")))
LOT_KEY = ("store_id", "shelf_id", "batch_code")
RECEIPT_LINES = TOPICS_BY_NAME["pos_transaction_items"]
FOLD = StateFold("cleansed/shelf_batch_state", "shelf_batch_state", "batch_quantity_store",
                 insert_columns=("received_date", "expiry_date"),
                 insert_from="cleansed/wh_batch_state")

# Shelf events that move units of a named lot (customers' events name none).
LOT_SIGN = {"putback": 1, "expired_removal": -1}


def sold_lines(receipts: DataFrame) -> DataFrame:
    """Receipt lines as lot movements: (store, shelf, lot, -units, time)."""
    return (receipts.select("store_id", "timestamp", F.explode("items").alias("line"))
            .where(F.col("line.batch_code").isNotNull())
            .select("store_id", F.col("line.shelf_id").alias("shelf_id"),
                    F.col("line.batch_code").alias("batch_code"),
                    (-F.col("line.quantity")).alias("units"), "timestamp"))


def receipt_lines(receipts: DataFrame) -> DataFrame:
    """Every receipt line as a row of its own, with the receipt's store and transaction id."""
    return (receipts.select("store_id", "transaction_id", F.explode("items").alias("line"))
            .select("store_id", "transaction_id", "line.*")
            .select(*POS_TRANSACTION_ITEM.field_names))


def lot_effects(shelf_events: DataFrame) -> DataFrame:
    """Refills and removals of named lots: (store, shelf, lot, signed units, time)."""
    sign = F.coalesce(*(F.when(F.col("event_type") == t, F.lit(s)) for t, s in LOT_SIGN.items()))
    return (shelf_events.where(F.col("actor").isin("restocker", "system")
                               & F.col("batch_code").isNotNull() & sign.isNotNull())
            .select(*LOT_KEY, (sign * F.col("quantity")).alias("units"), "timestamp"))


def lot_deltas(movements: DataFrame) -> DataFrame:
    """Net units per lot (a lot new to the shelf takes its dates from the warehouse lot it came
    from when it is folded: `FOLD.insert_from`)."""
    return movements.groupBy(*LOT_KEY).agg(*net_units(F.col("units")))


class BatchStateUpdater(FoldingMember):
    name, sources, fold = NAME, [POS, SHELF], FOLD
    snapshot = reference.shelf_batch_rows

    def handle(self, valid: shell.ValidRows, batch_id: int) -> None:
        ctx, movements = self.ctx, []
        if POS.topic in valid:
            shell.append_idempotent(valid[POS.topic], ctx, "raw/pos_transactions", self.app_id,
                                    batch_id)
            # A replayed batch publishes the same lines again; the sink upserts them by key.
            # From the driver, as the state is: a Spark write to Kafka was one more job.
            self.publisher.send((RECEIPT_LINES.name, line) for line in
                                receipt_lines(valid[POS.topic]).toArrow().to_pylist())
            movements.append(sold_lines(valid[POS.topic]))
        if SHELF.topic in valid:
            movements.append(lot_effects(valid[SHELF.topic]))
        self.apply(lot_deltas(movements[0] if len(movements) == 1
                              else movements[0].unionByName(movements[1])), batch_id)


QUERY = BatchStateUpdater.spec("receipts, refills, removals -> shelf_batch_state")


if __name__ == "__main__":
    shell.run_alone(NAME)
