"""Shelf restock manager: pending restock plans -> warehouse picks (`wh_out`), earliest expiry
first; expired warehouse lots -> removals. Owns `ops/shelf_restock_plan`.

A plan from the shelf alert engine waits for the handling delay (`SMART_SHELF_RESTOCK_HANDLING_
SECONDS`) and is picked at the first clock tick after it (at once if it arrives after that
tick), from the lots the warehouse still has after earlier picks: a plan is never dropped (an
empty warehouse defers it to a later tick, when a delivery has arrived) and a lot is never
picked twice. Each picked lot becomes one `wh_out` (stamped with the clock's time) and the plan
moves pending -> issued. Deciding in rounds (`SMART_SHELF_DECISION_ROUND_MINUTES`), only the
rounds' ticks pick, each the plans of earlier rounds.

The refill bridge turns each pick into a task for the store's restocker, who puts on the shelf
what fits there and reports it as a `putback` (actor restocker, the plan and lot, the units
placed, 0 when the shelf was full) on `shelf_events`. The manager matches each report to its
pick by plan and lot: units picked but not placed go back to the warehouse as a `wh_in` of the
same lot and dates, reason `refill_return`, stamped with the report's time (the warehouse
queries apply it; the store moves the units from transit back to its warehouse). The plan is
completed, at the time of its last report, once every pick has its report.

The manager keeps its own view of the warehouse lots: the reference snapshot, the deliveries
(`wh_in`) it reads, and the picks, returns and removals it makes itself. Being the only query
that takes units out of the warehouse, it can decide exactly, without waiting for the state
queries; for the same reason it also removes the lots that expired (on the first tick of a
day), with one `expired_removal` alert per product carrying the units. Unlike the reference
system, a young plan waits instead of being dropped and empty or expired lots are never picked.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta

from pyspark.sql import SparkSession

from smart_shelf_platform.clock import decision_rounds
from smart_shelf_platform.contracts.events import REFILL_RETURN, SHELF_EVENT, WH_EVENT
from smart_shelf_platform.contracts.state import SHELF_RESTOCK_PLAN
from smart_shelf_platform.rules.alerts import alert_id
from smart_shelf_platform.rules.allocation import LotStock
from smart_shelf_platform.rules.expiry import expired_lots
from smart_shelf_platform.rules.restock import pick_for_plan, plan_ready
from streaming import reference, shell
from streaming.driver_query import DriverQuery, Outputs, Rows, blank, rows_of, tick_source, utc
from streaming.ids import restock_event_id as event_id
from streaming.provenance import provenance_reason

log = logging.getLogger(__name__)

NAME = "shelf_restock_manager"
PLAN_TABLE, PLAN_TOPIC = "ops/shelf_restock_plan", "shelf_restock_plan"
# The plan topic is read whole (the manager reports its dead letters); only pending plans are
# new work, the statuses it publishes itself come back and are skipped.
PLANS = shell.EventSource(PLAN_TOPIC, SHELF_RESTOCK_PLAN,
                          dedupe_on=("store_id", "plan_id", "status"))
DELIVERIES = shell.EventSource("wh_events", WH_EVENT, dead_letters=False,
                               prefilter=shell.json_field_in("event_type", ("wh_in",)),
                               verify=provenance_reason)
REFILLS = shell.EventSource("shelf_events", SHELF_EVENT, dead_letters=False,
                            prefilter=shell.json_field_in("actor", ("restocker",)))
TICKS = tick_source(reports=True)  # every tick: its bad ones are reported here
# Inputs of one batch are applied in simulated-time order; at equal times, what arrives is
# known before the tick decides.
ORDER = {"plan": 0, "delivery": 1, "refill": 2, "tick": 3}


class ShelfRestockManager(DriverQuery):
    name = NAME

    def __init__(self, spark: SparkSession, ctx: shell.QueryContext):
        super().__init__(spark, ctx)
        self.handling = timedelta(seconds=ctx.settings.restock_handling_seconds)
        # Deciding in rounds, plans are picked at the rounds' ticks only; otherwise at any tick.
        self.rounds = decision_rounds(ctx.settings.decision_round_minutes)

    @property
    def sources(self) -> list[shell.EventSource]:
        return [PLANS, DELIVERIES, REFILLS, TICKS]

    def initial_state(self) -> dict:
        lots: dict[str, dict] = {}
        for row in reference.wh_batch_rows(self.ctx.settings).to_pylist():
            lots.setdefault(f"{row['store_id']}|{row['shelf_id']}", {})[row["batch_code"]] = {
                "received": row["received_date"].isoformat(),
                "expiry": row["expiry_date"].isoformat(),
                "qty": row["batch_quantity_warehouse"]}
        return {"now": None, "today": None, "picked_at": None, "lots": lots, "plans": {},
                "waiting": [], "deliveries": {}}

    def step(self, state: dict, rows: Rows, batch_id: int) -> Outputs:
        out = Outputs()
        inputs = ([("plan", r["created_at"], r) for r in rows_of(rows, PLANS)
                   if r["status"] == "pending"]
                  + [("delivery", r["timestamp"], r) for r in rows_of(rows, DELIVERIES)]
                  + [("refill", r["timestamp"], r) for r in rows_of(rows, REFILLS)
                     if r["event_type"] == "putback" and r["plan_id"] is not None]
                  + [("tick", r["sim_time"], r) for r in rows_of(rows, TICKS)])
        for kind, _, row in sorted(inputs, key=lambda i: (utc(i[1]), ORDER[i[0]])):
            getattr(self, f"_{kind}")(state, row, out)
        if state.get("picked_at") is not None:
            # Plans that arrived after the tick that made them due (the engine lagged) are
            # picked now, at the clock's newest picking time, not at a tick that may never come.
            self._pick_due(state, state["picked_at"], out)
        return out

    # ---- inputs ----------------------------------------------------------------------

    def _plan(self, state: dict, row: dict, out: Outputs) -> None:
        if row["plan_id"] in state["plans"]:
            return
        # picks and dates: units and lot dates per picked lot; arrived: units placed per lot.
        state["plans"][row["plan_id"]] = {**row, "picks": {}, "dates": {}, "arrived": {}}
        state["waiting"].append(row["plan_id"])
        out.write(PLAN_TABLE, row)

    def _delivery(self, state: dict, row: dict, out: Outputs) -> None:
        if row["reason"] == REFILL_RETURN or row["event_id"] in state["deliveries"]:
            return  # a return is the manager's own, applied when it was made
        state["deliveries"][row["event_id"]] = row["timestamp"][:10]
        lots = state["lots"].setdefault(f"{row['store_id']}|{row['shelf_id']}", {})
        lot = lots.setdefault(row["batch_code"], {"received": row["received_date"],
                                                  "expiry": row["expiry_date"], "qty": 0})
        lot["qty"] += row["quantity"]

    def _refill(self, state: dict, row: dict, out: Outputs) -> None:
        """The restocker's report of one pick: what did not fit goes back to the warehouse."""
        plan = state["plans"].get(row["plan_id"])
        batch_code = row["batch_code"]
        if plan is None or plan["status"] != "issued" or batch_code not in plan["picks"] \
                or batch_code in plan["arrived"]:
            return  # not a pick of an open plan, or its report came already (a repeat)
        plan["arrived"][batch_code] = row["quantity"]
        returned = plan["picks"][batch_code] - row["quantity"]
        if returned > 0:
            self._return(state, plan, batch_code, returned, row["timestamp"], out)
        if set(plan["arrived"]) >= set(plan["picks"]):
            self._move(plan, "completed", row["timestamp"], out)
            del state["plans"][row["plan_id"]]

    def _tick(self, state: dict, row: dict, out: Outputs) -> None:
        if state["now"] is not None and row["sim_time"] <= state["now"]:
            return
        state["now"] = row["sim_time"]
        if state["today"] != row["sim_date"]:
            state["today"] = row["sim_date"]
            self._remove_expired(state, row["sim_time"], out)
        if not self.rounds or row["sim_time"][11:16] in self.rounds:
            state["picked_at"] = row["sim_time"]
            self._pick_due(state, row["sim_time"], out)

    # ---- decisions -------------------------------------------------------------------

    def _pick_due(self, state: dict, now: str, out: Outputs) -> None:
        """Plans past their handling delay, oldest first; an unfilled one waits for stock."""
        today = date.fromisoformat(state["today"])
        waiting = []
        for plan_id in state["waiting"]:
            plan = state["plans"][plan_id]
            if not plan_ready(utc(plan["created_at"]), utc(now), self.handling,
                              in_rounds=bool(self.rounds)):
                waiting.append(plan_id)
                continue
            lots = state["lots"].get(f"{plan['store_id']}|{plan['shelf_id']}", {})
            picks = pick_for_plan(_lot_stock(lots), plan["suggested_qty"], today)
            if not picks:
                waiting.append(plan_id)
                continue
            for batch_code, units in picks:
                lot = lots[batch_code]
                lot["qty"] -= units
                if lot["qty"] == 0:
                    del lots[batch_code]
                plan["picks"][batch_code] = units
                plan.setdefault("dates", {})[batch_code] = [lot["received"], lot["expiry"]]
                out.send("wh_events", self._wh_event(
                    "wh_out", plan, batch_code, lot, units, now,
                    event_id("wh_out", plan_id, batch_code), plan_id=plan_id,
                    reason="shelf_restock"))
            self._move(plan, "issued", now, out)
        state["waiting"] = waiting

    def _return(self, state: dict, plan: dict, batch_code: str, units: int, now: str,
                out: Outputs) -> None:
        """Picked units the shelf had no room for, back into the warehouse lot they left."""
        lots = state["lots"].setdefault(f"{plan['store_id']}|{plan['shelf_id']}", {})
        dates = plan.get("dates", {}).get(batch_code)
        if dates is None:  # a plan picked before the lot dates were kept with it
            if batch_code not in lots:
                log.warning("%s: cannot return %d units of %s for plan %s: lot dates unknown",
                            NAME, units, batch_code, plan["plan_id"])
                return
            dates = [lots[batch_code]["received"], lots[batch_code]["expiry"]]
        lot = lots.setdefault(batch_code, {"received": dates[0], "expiry": dates[1], "qty": 0})
        lot["qty"] += units
        out.send("wh_events", self._wh_event(
            "wh_in", plan, batch_code, lot, units, now,
            event_id(REFILL_RETURN, plan["plan_id"], batch_code), plan_id=plan["plan_id"],
            reason=REFILL_RETURN))

    def _remove_expired(self, state: dict, now: str, out: Outputs) -> None:
        today = date.fromisoformat(state["today"])
        for key in sorted(state["lots"]):
            lots = state["lots"][key]
            expired = expired_lots(_lot_stock(lots), today)
            if not expired:
                continue
            store_id, shelf_id = key.split("|", 1)
            product = {"store_id": store_id, "shelf_id": shelf_id}
            for lot in expired:
                out.send("wh_events", self._wh_event(
                    "wh_removal", product, lot.batch_code, lots[lot.batch_code], lot.quantity,
                    now, event_id("wh_removal", key, lot.batch_code, state["today"]),
                    reason="expired"))
                del lots[lot.batch_code]
            first = min(expired, key=lambda lot: (lot.expiry_date, lot.batch_code))
            alert = blank("alerts") | {
                "alert_id": alert_id("expired_removal", store_id, shelf_id, "warehouse",
                                     utc(now)),
                "store_id": store_id, "shelf_id": shelf_id, "alert_type": "expired_removal",
                "location": "warehouse", "current_stock": sum(lot.quantity for lot in expired),
                "suggested_qty": 0, "batch_code": first.batch_code,
                "expiry_date": first.expiry_date.isoformat(), "created_at": now,
                "updated_at": now}
            # The removal is done as it is decided: the alert opens and resolves at once.
            out.send("alerts", alert | {"status": "open"})
            out.send("alerts", alert | {"status": "resolved"})
        for event, day in list(state["deliveries"].items()):
            if (today - date.fromisoformat(day)).days > 2:  # past any replay's reach
                del state["deliveries"][event]

    # ---- outputs ---------------------------------------------------------------------

    @staticmethod
    def _move(plan: dict, status: str, now: str, out: Outputs) -> None:
        plan["status"], plan["updated_at"] = status, now
        record = {f: plan[f] for f in SHELF_RESTOCK_PLAN.field_names}
        out.send(PLAN_TOPIC, record)
        out.write(PLAN_TABLE, record)

    @staticmethod
    def _wh_event(kind: str, product: dict, batch_code: str, lot: dict, units: int, now: str,
                  wh_event_id: str, *, reason: str, plan_id: str | None = None) -> dict:
        return {"event_id": wh_event_id, "event_type": kind, "store_id": product["store_id"],
                "shelf_id": product["shelf_id"], "batch_code": batch_code, "quantity": units,
                "plan_id": plan_id, "supplier_order_id": None, "received_date": lot["received"],
                "expiry_date": lot["expiry"], "reason": reason, "timestamp": now}


def _lot_stock(lots: dict) -> list[LotStock]:
    return [LotStock(code, date.fromisoformat(lot["received"]), date.fromisoformat(lot["expiry"]),
                     lot["qty"]) for code, lot in lots.items()]



QUERY = ShelfRestockManager.spec("restock plans, deliveries, refill reports, ticks -> wh_out, "
                                 "refill returns, removals, plan statuses")


if __name__ == "__main__":
    shell.run_alone(NAME)
