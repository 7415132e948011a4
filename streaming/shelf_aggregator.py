"""Shelf aggregator: `shelf_events` -> Delta `raw/shelf_events` and `cleansed/shelf_state`.

Units on a shelf are a fold over its events: a pickup takes units, a putback (a customer's or a
restocker's refill) returns them, an expired-lot removal takes them away; weight changes are
kept in the raw table but move no units. State stays within [0, max_stock] and is published to
the compacted `shelf_state` topic after every micro-batch (the reference system let a shelf go
negative and past its capacity).

Run it alone with `python -m streaming.shelf_aggregator`, or with the others through
`smart-shelf stream`.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from smart_shelf_platform.contracts.events import SHELF_EVENT
from streaming import reference, shell
from streaming.state_fold import FoldingMember, StateFold, net_units

NAME = "shelf_aggregator"
SOURCE = shell.EventSource("shelf_events", SHELF_EVENT, checks_shelves=True)
FOLD = StateFold("cleansed/shelf_state", "shelf_state", "current_stock", capacity="max_stock",
                 derived={"shelf_weight": lambda row: row["unit_weight"] * row["current_stock"]})

# Signed effect of one unit of each event type on the shelf.
UNIT_SIGN = {"pickup": -1, "putback": 1, "expired_removal": -1}


def shelf_deltas(events: DataFrame) -> DataFrame:
    """Valid shelf events -> (store_id, shelf_id, delta, event_ts) per shelf."""
    sign = F.coalesce(*(F.when(F.col("event_type") == t, F.lit(s)) for t, s in UNIT_SIGN.items()))
    return (events.where(sign.isNotNull())
            .groupBy("store_id", "shelf_id")
            .agg(*net_units(sign * F.col("quantity"))))


class ShelfAggregator(FoldingMember):
    name, sources, fold = NAME, [SOURCE], FOLD
    snapshot = reference.shelf_state_rows

    def handle(self, valid: shell.ValidRows, batch_id: int) -> None:
        events = valid[SOURCE.topic]
        shell.append_idempotent(events, self.ctx, "raw/shelf_events", self.app_id, batch_id)
        self.apply(shelf_deltas(events), batch_id)


QUERY = ShelfAggregator.spec("shelf events -> raw/shelf_events, shelf_state")


if __name__ == "__main__":
    shell.run_alone(NAME)
