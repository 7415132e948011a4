"""Warehouse aggregator: `wh_events` -> Delta `raw/wh_events` and `cleansed/wh_state`.

Units of a product in the warehouse: a supplier delivery (`wh_in`) adds them, a pick for a shelf
(`wh_out`) and an expired-lot removal (`wh_removal`) take them. State stays within
[0, wh_max_stock] (the reference system let it go negative and past capacity) and is published
to the compacted `wh_state` topic. Run alone with `python -m streaming.wh_aggregator`.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from smart_shelf_platform.contracts.events import WH_EVENT
from streaming import reference, shell
from streaming.provenance import provenance_reason
from streaming.state_fold import FoldingMember, StateFold, net_units

NAME = "wh_aggregator"
SOURCE = shell.EventSource("wh_events", WH_EVENT, checks_shelves=True,
                            verify=provenance_reason)
FOLD = StateFold("cleansed/wh_state", "wh_state", "wh_current_stock", capacity="wh_max_stock")

UNIT_SIGN = {"wh_in": 1, "wh_out": -1, "wh_removal": -1}


def signed_units(events: DataFrame) -> DataFrame:
    """Warehouse events with `units`: their quantity signed by what they do to the stock."""
    sign = F.coalesce(*(F.when(F.col("event_type") == t, F.lit(s)) for t, s in UNIT_SIGN.items()))
    return events.withColumn("units", sign * F.col("quantity"))


def wh_deltas(events: DataFrame) -> DataFrame:
    """Valid warehouse events -> (store_id, shelf_id, delta, event_ts)."""
    return signed_units(events).groupBy("store_id", "shelf_id").agg(*net_units(F.col("units")))


class WarehouseAggregator(FoldingMember):
    name, sources, fold = NAME, [SOURCE], FOLD
    snapshot = reference.wh_state_rows

    def handle(self, valid: shell.ValidRows, batch_id: int) -> None:
        events = valid[SOURCE.topic]
        shell.append_idempotent(events, self.ctx, "raw/wh_events", self.app_id, batch_id)
        self.apply(wh_deltas(events), batch_id)


QUERY = WarehouseAggregator.spec("warehouse events -> raw/wh_events, wh_state", pace=2.5)


if __name__ == "__main__":
    shell.run_alone(NAME)
