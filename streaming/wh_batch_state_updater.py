"""Warehouse batch state updater: `wh_events` -> Delta `cleansed/wh_batch_state`.

Units per warehouse lot: a delivery creates the lot with the dates it carries, picks and
removals take units from it (without touching the shelf lots: the batch state
updater adds those when the refill reaches the shelf). Bad records of `wh_events` are reported
by the warehouse aggregator. Run alone with `python -m streaming.wh_batch_state_updater`.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from smart_shelf_platform.contracts.events import WH_EVENT
from streaming import reference, shell
from streaming.provenance import provenance_reason
from streaming.state_fold import FoldingMember, StateFold, net_units
from streaming.wh_aggregator import signed_units

NAME = "wh_batch_state_updater"
SOURCE = shell.EventSource("wh_events", WH_EVENT, dead_letters=False,
                            checks_shelves=True, verify=provenance_reason)
FOLD = StateFold("cleansed/wh_batch_state", "wh_batch_state", "batch_quantity_warehouse",
                 insert_columns=("received_date", "expiry_date"))


def wh_lot_deltas(events: DataFrame) -> DataFrame:
    """Valid warehouse events -> net units per lot with the lot's dates."""
    return (signed_units(events).groupBy("store_id", "shelf_id", "batch_code")
            .agg(*net_units(F.col("units")),
                 F.first("received_date", ignorenulls=True).alias("received_date"),
                 F.first("expiry_date", ignorenulls=True).alias("expiry_date")))


class WarehouseBatchStateUpdater(FoldingMember):
    name, sources, fold = NAME, [SOURCE], FOLD
    snapshot = reference.wh_batch_rows

    def handle(self, valid: shell.ValidRows, batch_id: int) -> None:
        events = valid[SOURCE.topic]
        self.apply(wh_lot_deltas(events), batch_id)


QUERY = WarehouseBatchStateUpdater.spec("warehouse events -> wh_batch_state", pace=2.5)


if __name__ == "__main__":
    shell.run_alone(NAME)
