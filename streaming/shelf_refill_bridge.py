"""Shelf refill bridge: each warehouse pick (`wh_out`) becomes the restocker's putback on the
shelf `SMART_SHELF_REFILL_DELAY_MINUTES` later, released by clock ticks.

A pick waits in the query's state until the first tick at or after its due time (or, if the
clock has passed that time already when the pick arrives, goes at once), then goes out
as a `putback` by the restocker (lot, units, plan) with its paired `weight_change`, both stamped
with the due time, on `shelf_events`: the shelf aggregator and the batch state updater apply
them, and the simulator's world puts the units on its shelf. Ticks release refills even when no
other warehouse event comes (REFERENCE 6.5 and item 8: refills stuck until an unrelated event).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from pyspark.sql import SparkSession

from smart_shelf_platform.contracts.events import WH_EVENT
from smart_shelf_platform.rules.restock import refill_due
from streaming import reference, shell
from streaming.driver_query import DriverQuery, Outputs, Rows, iso, rows_of, tick_source, utc

NAME = "shelf_refill_bridge"
PICKS = shell.EventSource("wh_events", WH_EVENT, dead_letters=False,
                          prefilter=shell.json_field_in("event_type", ("wh_out",)))
TICKS = tick_source()
REFILL_NAMESPACE = uuid.UUID("0d6c2f8e-7a43-5b19-9c3e-84f1b2a6d950")


class ShelfRefillBridge(DriverQuery):
    name = NAME

    def __init__(self, spark: SparkSession, ctx: shell.QueryContext):
        super().__init__(spark, ctx)
        self.delay = timedelta(minutes=ctx.settings.refill_delay_minutes)
        self.profiles = reference.shelf_profiles(ctx.settings)

    @property
    def sources(self) -> list[shell.EventSource]:
        return [PICKS, TICKS]

    def initial_state(self) -> dict:
        return {"pending": {}, "released": {}, "now": None}

    def step(self, state: dict, rows: Rows, batch_id: int) -> Outputs:
        out = Outputs()
        for pick in rows_of(rows, PICKS):
            if pick["event_id"] not in state["released"] and pick["quantity"] > 0:
                state["pending"][pick["event_id"]] = pick | {
                    "due": iso(refill_due(utc(pick["timestamp"]), self.delay))}
        # The clock's newest time: a pick that arrives after its due tick (the picking query
        # lagged) goes out at once instead of waiting for a tick that may never come.
        ticks = [utc(t["sim_time"]) for t in rows_of(rows, TICKS)]
        if ticks and (state["now"] is None or max(ticks) > utc(state["now"])):
            state["now"] = iso(max(ticks))
        if state["now"] is None:
            return out
        latest = utc(state["now"])
        due = sorted((p for p in state["pending"].values() if utc(p["due"]) <= latest),
                     key=lambda p: (p["due"], p["event_id"]))
        for pick in due:
            for event in self.refill(pick):
                out.send("shelf_events", event)
            del state["pending"][pick["event_id"]]
            state["released"][pick["event_id"]] = pick["due"]
        # A pick replayed from Kafka after its release is recognised for a day, then forgotten.
        for pick_id, released in list(state["released"].items()):
            if latest - utc(released) > timedelta(days=1):
                del state["released"][pick_id]
        return out

    def refill(self, pick: dict) -> list[dict]:
        """The restocker's putback of a pick and the weight the shelf gains."""
        weight = self.profiles[f"{pick['store_id']}|{pick['shelf_id']}"]["item_weight"]
        base = {"store_id": pick["store_id"], "shelf_id": pick["shelf_id"], "actor": "restocker",
                "customer_id": None, "batch_code": pick["batch_code"], "unit_weight": weight,
                "plan_id": pick["plan_id"], "timestamp": pick["due"]}
        return [
            base | {"event_id": str(uuid.uuid5(REFILL_NAMESPACE, f"putback:{pick['event_id']}")),
                    "event_type": "putback", "quantity": pick["quantity"], "delta_weight": None},
            base | {"event_id": str(uuid.uuid5(REFILL_NAMESPACE, f"weight:{pick['event_id']}")),
                    "event_type": "weight_change", "quantity": None,
                    "delta_weight": weight * pick["quantity"]},
        ]



QUERY = ShelfRefillBridge.spec("warehouse picks, ticks -> restocker putbacks")


if __name__ == "__main__":
    shell.run_alone(NAME)
