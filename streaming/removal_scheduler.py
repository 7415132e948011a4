"""Removal scheduler: one work order per shelf for its expired lots, once per simulated day.

At the first tick of day D (00:00), every shelf holding lots with units whose expiry date is
before D gets one `expired_removal` alert (location store): the earliest expired lot, its expiry
date and the units the platform expects to remove. The platform cannot know how many of those
units are still on the shelf rather than in shoppers' carts (its lots count both until the
receipt), so the alert is a work order for the store staff: they remove what is physically
there and the shelf sensors report each lot's removal as an `expired_removal` shelf event
(actor restocker, lot, units), which the shelf aggregator and the batch state updater apply
like any other movement. The reference system wrote the state tables itself and alerted once
per lot.

The order resolves under the same id, with the units actually removed, once every lot it
expected is accounted for: its removal event arrived, or it has no units left (the ones in
carts were paid). An order still open at the next day's first tick resolves then with what was
removed, and a new one opens if expired units remain. Expired warehouse lots are removed by
the shelf restock manager, which owns the warehouse's outflows.
"""

from __future__ import annotations

from datetime import date


from smart_shelf_platform.contracts.events import SHELF_EVENT
from smart_shelf_platform.rules.alerts import alert_id
from smart_shelf_platform.rules.expiry import expired_lots
from streaming import shell
from streaming.driver_query import DriverQuery, Outputs, Rows, blank, rows_of, tick_source, utc
from streaming.shelf_lots import LOTS, fold_lot, later, lot_stock, shelf_key

NAME = "removal_scheduler"
REMOVALS = shell.EventSource("shelf_events", SHELF_EVENT, dead_letters=False,
                             prefilter=shell.json_field_in("event_type", ("expired_removal",)))
TICKS = tick_source("00:00")
# Inputs of a batch apply in simulated-time order: lots updated at the tick's minute are known
# before the day is decided, and removals reported at that minute answer the new orders.
ORDER = {"lot": 0, "tick": 1, "removal": 2}


class RemovalScheduler(DriverQuery):
    name = NAME

    @property
    def sources(self) -> list[shell.EventSource]:
        return [LOTS, REMOVALS, TICKS]

    def initial_state(self) -> dict:
        # orders: shelf key -> {alert, expected lots, removed units per event, accounted lots}
        return {"lots": {}, "today": None, "orders": {}}

    def step(self, state: dict, rows: Rows, batch_id: int) -> Outputs:
        out = Outputs()
        inputs = ([("lot", r["last_update_ts"], r) for r in rows_of(rows, LOTS)]
                  + [("removal", r["timestamp"], r) for r in rows_of(rows, REMOVALS)]
                  + [("tick", r["sim_time"], r) for r in rows_of(rows, TICKS)])
        touched: set[str] = set()
        for kind, _, row in sorted(inputs, key=lambda i: (utc(i[1]), ORDER[i[0]])):
            if kind == "tick":
                self._resolve_done(state, touched, out)
                self._new_day(state, row, out)
            elif kind == "lot":
                self._lot(state, row, touched)
            else:
                self._removal(state, row, touched)
        self._resolve_done(state, touched, out)
        return out

    def _resolve_done(self, state: dict, touched: set[str], out: Outputs) -> None:
        """Resolve the touched orders whose lots are all accounted for. Judged over all the
        inputs before a tick or the batch's end, not per input: a lot's removal report and
        the state row it emptied may come in either order."""
        for key in sorted(touched & state["orders"].keys()):
            order = state["orders"][key]
            if set(order["expected"]) <= set(order["accounted"]):
                self._resolve(state, key, order["last_seen"], out)
        touched.clear()

    def _lot(self, state: dict, row: dict, touched: set[str]) -> None:
        if not fold_lot(state["lots"], row):
            return
        order = state["orders"].get(shelf_key(row))
        if order is not None and row["batch_code"] in order["expected"] \
                and row["batch_quantity_store"] == 0:
            self._account(order, row["batch_code"], row["last_update_ts"])
            touched.add(shelf_key(row))

    def _removal(self, state: dict, row: dict, touched: set[str]) -> None:
        order = state["orders"].get(shelf_key(row))
        if order is None or row["event_id"] in order["removed"]:
            return
        order["removed"][row["event_id"]] = row["quantity"]
        self._account(order, row["batch_code"], row["timestamp"])
        touched.add(shelf_key(row))

    @staticmethod
    def _account(order: dict, batch_code: str, seen_at: str) -> None:
        if batch_code not in order["accounted"]:
            order["accounted"].append(batch_code)
        order["last_seen"] = later(order["last_seen"], seen_at)

    def _new_day(self, state: dict, tick: dict, out: Outputs) -> None:
        if state["today"] is not None and tick["sim_date"] <= state["today"]:
            return  # a day is decided once
        state["today"], now = tick["sim_date"], tick["sim_time"]
        for key in sorted(state["orders"]):  # yesterday's work orders are over
            self._resolve(state, key, now, out)
        today = date.fromisoformat(tick["sim_date"])
        for key in sorted(state["lots"]):
            expired = expired_lots(lot_stock(state["lots"][key]), today)
            if not expired:
                continue
            store_id, shelf_id = key.split("|", 1)
            first = min(expired, key=lambda lot: (lot.expiry_date, lot.batch_code))
            alert = blank("alerts") | {
                "alert_id": alert_id("expired_removal", store_id, shelf_id, "store", utc(now)),
                "store_id": store_id, "shelf_id": shelf_id, "alert_type": "expired_removal",
                "location": "store", "status": "open",
                "current_stock": sum(lot.quantity for lot in expired), "suggested_qty": 0,
                "batch_code": first.batch_code, "expiry_date": first.expiry_date.isoformat(),
                "created_at": now, "updated_at": now}
            state["orders"][key] = {"alert": alert, "removed": {}, "accounted": [],
                                    "expected": [lot.batch_code for lot in expired],
                                    "last_seen": now}
            out.send("alerts", alert)

    @staticmethod
    def _resolve(state: dict, key: str, now: str, out: Outputs) -> None:
        order = state["orders"].pop(key)
        alert = order["alert"]
        out.send("alerts", alert | {"status": "resolved",
                                    "current_stock": sum(order["removed"].values()),
                                    "updated_at": later(alert["created_at"], now)})



# Decides once a simulated day and follows the staff's removals; nobody waits on it.
QUERY = RemovalScheduler.spec("shelf lots, removal events, first tick of each "
                                 "day -> expired-removal work orders", pace=5)


if __name__ == "__main__":
    shell.run_alone(NAME)
