"""Shelf refill bridge: each warehouse pick (`wh_out`) becomes a refill task for the store's
restocker, due `SMART_SHELF_REFILL_DELAY_MINUTES` after the pick, released by clock ticks.

A pick waits in the query's state until the first tick at or after its due time (or, if the
clock has passed that time already when the pick arrives, goes at once), then goes out as a
`restock_task` (pick event id, plan, store, shelf, lot, units, due time) on `restock_tasks`.
Ticks release tasks even when no other warehouse event comes (in the reference system a refill
waited for an unrelated event).

The bridge does not put the units on the shelf itself. Like an expired-removal work order, the
task goes to the store, whose restocker puts on the shelf what fits there at that moment and
reports it through the store's own shelf stream: a `putback` (actor restocker, plan, lot, the
units placed, possibly 0) with its weight change. The shelf aggregator and the batch state
updater apply that report in the order the store lived it, among the shoppers' events, so the
shelf's state never has to clamp a refill the shelf had no room for; the shelf restock manager
returns the units that did not fit to the warehouse. (The bridge used to publish the putback
itself, straight to Kafka: per shelf, Kafka then held events in an order the store never lived.)

`restock_tasks` is an append-only topic, keyed per shelf like the other movements (see the
catalogue): a task is an instruction given once, and its deterministic id (uuid5 of the pick's
event id) lets the store apply a task sent twice (a replayed batch) once.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from pyspark.sql import SparkSession

from smart_shelf_platform.contracts.events import WH_EVENT
from smart_shelf_platform.rules.restock import refill_due
from streaming import shell
from streaming.driver_query import DriverQuery, Outputs, Rows, iso, rows_of, tick_source, utc

NAME = "shelf_refill_bridge"
TASK_TOPIC = "restock_tasks"
PICKS = shell.EventSource("wh_events", WH_EVENT, dead_letters=False,
                          prefilter=shell.json_field_in("event_type", ("wh_out",)))
TICKS = tick_source()
REFILL_NAMESPACE = uuid.UUID("0d6c2f8e-7a43-5b19-9c3e-84f1b2a6d950")


def task_id(pick_event_id: str) -> str:
    """The refill task of a pick: one per pick, the same whenever it is decided."""
    return str(uuid.uuid5(REFILL_NAMESPACE, f"task:{pick_event_id}"))


class ShelfRefillBridge(DriverQuery):
    name = NAME

    def __init__(self, spark: SparkSession, ctx: shell.QueryContext):
        super().__init__(spark, ctx)
        self.delay = timedelta(minutes=ctx.settings.refill_delay_minutes)

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
            out.send(TASK_TOPIC, self.task(pick))
            del state["pending"][pick["event_id"]]
            state["released"][pick["event_id"]] = pick["due"]
        # A pick replayed from Kafka after its release is recognised for a day, then forgotten.
        for pick_id, released in list(state["released"].items()):
            if latest - utc(released) > timedelta(days=1):
                del state["released"][pick_id]
        return out

    @staticmethod
    def task(pick: dict) -> dict:
        """The restocker's task of a pick: put its units on the shelf from its due time."""
        return {"event_id": task_id(pick["event_id"]), "store_id": pick["store_id"],
                "shelf_id": pick["shelf_id"], "plan_id": pick["plan_id"],
                "pick_event_id": pick["event_id"], "batch_code": pick["batch_code"],
                "quantity": pick["quantity"], "timestamp": pick["due"]}


QUERY = ShelfRefillBridge.spec("warehouse picks, ticks -> restocker refill tasks")


if __name__ == "__main__":
    shell.run_alone(NAME)
