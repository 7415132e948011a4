"""Supplier manager: pending supplier plans -> one order per shelf at each cutoff -> a delivered
lot (`wh_in`) at the order's slot. Owns `ops/wh_supplier_plan`, `ops/wh_supplier_orders` and
`ops/wh_supplier_receipts`.

The warehouse alert engine publishes pending plans on `wh_supplier_plan`; this query takes them
as new work and publishes their status changes there (the engine follows them). With
`SMART_SHELF_SUPPLIER_RULE=forecast` it also reads each cutoff's forecasts (`ml_predictions`,
published by the cutoff's Dagster run before the cutoff minute: `smart_shelf_platform.
cutoff_barrier`) and, at the cutoff, makes the model's plans itself, so the plan table keeps
one writer: a shelf the model forecast is ordered by the model's plan alone (source `model`,
with the model's name and version and the quantile it orders up to; none when it orders
nothing), the shelf's other pending plans canceled (the rule's, or an earlier cutoff's model
plan the warehouse had no room for: this forecast counts what is there); a shelf it could not serve (a
fallback forecast, or no forecast at all when the run did not land) is ordered by the rule's
plans, as without forecasting (`rules.supplier.forecast_or_rule`). Time comes from
the clock ticks of the cutoff and delivery minutes (`SMART_SHELF_SUPPLIER_*`, default cutoffs
Sun/Tue/Thu 12:00, slots Mon/Wed/Fri 08:00):

- at a cutoff, the pending plans of each shelf become one order for the first slot after the
  cutoff (order id = uuid5 of store, slot date and shelf, so a replay, or a second cutoff before
  the same slot, updates the same order), in whole standard batches that fit in the
  warehouse's free capacity: capacity - on hand (`wh_state`) - units on their way (issued
  orders, and delivered ones until `wh_state` shows them). The plans move to issued. When less
  fits than they asked for, they are issued with the smaller order (the warehouse cannot hold
  more; the engine plans again from the real stock after the delivery); when nothing fits they
  stay pending for the next cutoff. Either way it is logged, with the plan ids.
- at a slot, each issued order due becomes one `wh_in` of a new lot `SUP-<yyyymmdd>-<shelf>`,
  received that day and expiring after its product's shelf life (`ShelfLife`, from the reference
  lots of its subcategory or category: days for fish, years for canned goods), and a receipt;
  the order moves to delivered and its plans to completed.

Unlike the reference system's supplier job: one writer per table, upserts by key instead of
read-all/overwrite, expiry per category, in-transit units count against the capacity.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from datetime import date, timedelta

from pyspark.sql import SparkSession

from smart_shelf_platform.contracts.analytics import ML_PREDICTION
from smart_shelf_platform.contracts.state import WH_STATE, WH_SUPPLIER_ORDER, WH_SUPPLIER_PLAN
from smart_shelf_platform.contracts.types import Record
from smart_shelf_platform.rules.supplier import (
    ShelfLife, SupplierSchedule, forecast_or_rule, order_quantity,
)
from smart_shelf_platform.settings import Settings
from streaming import reference, shell
from streaming.driver_query import DriverQuery, Outputs, Rows, iso, rows_of, tick_source, utc
from streaming.ids import supplier_batch_code
from streaming.ids import supplier_id as new_id

log = logging.getLogger(__name__)

NAME = "supplier_manager"
PLAN_TOPIC = "wh_supplier_plan"
PLAN_TABLE, ORDER_TABLE = "ops/wh_supplier_plan", "ops/wh_supplier_orders"
RECEIPT_TABLE = "ops/wh_supplier_receipts"
# The plan topic is read whole (the manager reports its dead letters); only pending plans are
# new work, the statuses it publishes itself come back and are skipped.
PLANS = shell.EventSource(PLAN_TOPIC, WH_SUPPLIER_PLAN,
                          dedupe_on=("store_id", "supplier_plan_id", "status"))
STOCK = shell.EventSource("wh_state", WH_STATE, dead_letters=False)
FORECASTS = shell.EventSource("ml_predictions", ML_PREDICTION,
                              dedupe_on=("store_id", "shelf_id", "cutoff_ts"))
# Inputs of one batch are applied in simulated-time order; at equal times, what arrives is
# known before the tick decides. The last part breaks ties the same way on a replay.
ORDER = {"plan": 0, "forecast": 0, "stock": 1, "tick": 2}
# A completed plan's id is remembered this long, so a late copy of its pending record is not
# ordered again.
FINISHED_MEMORY = timedelta(days=7)


class SupplierManager(DriverQuery):
    name = NAME
    tables_first = frozenset({ORDER_TABLE})  # a delivery is checked against its order

    def __init__(self, spark: SparkSession, ctx: shell.QueryContext):
        super().__init__(spark, ctx)
        s = ctx.settings
        self.schedule = SupplierSchedule.parse(s.supplier_cutoff_days, s.supplier_cutoff_time,
                                               s.supplier_delivery_days, s.supplier_delivery_time)
        self.ticks = tick_source(s.supplier_cutoff_time, s.supplier_delivery_time)
        self.profiles = reference.shelf_profiles(s)
        self.shelf_life = reference_shelf_life(s, self.profiles)
        self.forecasting = s.supplier_rule == "forecast"

    @property
    def sources(self) -> list[shell.EventSource]:
        return [PLANS, STOCK, self.ticks] + ([FORECASTS] if self.forecasting else [])

    def initial_state(self) -> dict:
        # Capacity and stock of every product from the snapshot the state queries start from,
        # so a plan for a product whose stock never moved still finds its free capacity.
        stock = {f"{r['store_id']}|{r['shelf_id']}": {
            "on_hand": r["wh_current_stock"], "cap": r["wh_max_stock"], "version": r["version"]}
            for r in reference.wh_state_rows(self.ctx.settings).to_pylist()}
        return {"now": None, "stock": stock, "plans": {}, "orders": {}, "finished": {},
                "forecasts": {}}

    def step(self, state: dict, rows: Rows, batch_id: int) -> Outputs:
        out = Outputs()
        inputs = ([("plan", r["created_at"], r["supplier_plan_id"], r)
                   for r in rows_of(rows, PLANS) if r["status"] == "pending"]
                  + [("stock", r["last_update_ts"], f"{_key(r)}|{r['version']:012d}", r)
                     for r in rows_of(rows, STOCK)]
                  + [("tick", r["sim_time"], r["tick_id"], r) for r in rows_of(rows, self.ticks)])
        if self.forecasting:
            inputs += [("forecast", r["cutoff_ts"], _key(r), r) for r in rows_of(rows, FORECASTS)]
        for kind, _, _, row in sorted(inputs, key=lambda i: (utc(i[1]), ORDER[i[0]], i[2])):
            getattr(self, f"_{kind}")(state, row, batch_id, out)
        return out

    # ---- inputs ----------------------------------------------------------------------

    def _plan(self, state: dict, row: dict, batch_id: int, out: Outputs) -> None:
        plan_id = row["supplier_plan_id"]
        if plan_id in state["plans"] or plan_id in state["finished"]:
            return
        state["plans"][plan_id] = row | {"order_id": None}
        out.write(PLAN_TABLE, row)

    def _forecast(self, state: dict, row: dict, batch_id: int, out: Outputs) -> None:
        cutoff = iso(utc(row["cutoff_ts"]))
        if state["now"] is not None and utc(cutoff) <= utc(state["now"]):
            log.warning("%s: the forecast of %s %s for cutoff %s came after the cutoff; ignored",
                        NAME, row["store_id"], row["shelf_id"], cutoff)
            return
        state.setdefault("forecasts", {}).setdefault(cutoff, {})[_key(row)] = {
            f: row[f] for f in ("method", "order_units", "model_name", "model_version",
                                "order_quantile")}

    def _stock(self, state: dict, row: dict, batch_id: int, out: Outputs) -> None:
        key = _key(row)
        if row["version"] < state["stock"].get(key, {"version": 0})["version"]:
            return
        state["stock"][key] = {"on_hand": row["wh_current_stock"], "cap": row["wh_max_stock"],
                               "version": row["version"]}
        # A delivery is in the stock once the state query has published a row stamped at or
        # after it; rows read in the batch that published the delivery cannot hold it yet.
        for order_id, order in list(state["orders"].items()):
            if (order["status"] == "delivered" and _key(order) == key
                    and batch_id > order["delivered_in_batch"]
                    and utc(row["last_update_ts"]) >= utc(order["delivery_ts"])):
                del state["orders"][order_id]

    def _tick(self, state: dict, row: dict, batch_id: int, out: Outputs) -> None:
        now = utc(row["sim_time"])
        if state["now"] is not None and now <= utc(state["now"]):
            return
        state["now"] = row["sim_time"]
        if self.schedule.is_delivery(now):
            self._deliver(state, row["sim_time"], batch_id, out)
        if self.schedule.is_cutoff(now):
            self._cutoff(state, row["sim_time"], out)

    # ---- decisions -------------------------------------------------------------------

    def _cutoff(self, state: dict, now: str, out: Outputs) -> None:
        if self.forecasting:
            self._forecast_plans(state, now, out)
        slot = self.schedule.next_delivery(utc(now))
        pending = defaultdict(list)
        for plan in state["plans"].values():
            if plan["status"] == "pending":
                pending[_key(plan)].append(plan)
        for key in sorted(pending):
            plans = sorted(pending[key], key=lambda p: (p["created_at"], p["supplier_plan_id"]))
            plan_ids = [p["supplier_plan_id"] for p in plans]
            store_id, shelf_id = key.split("|", 1)
            stock = state["stock"].get(key)
            if stock is None:
                log.warning("%s: %s %s has no warehouse capacity known; plans %s wait for the "
                            "next cutoff", NAME, store_id, shelf_id, plan_ids)
                continue
            requested = sum(p["suggested_qty"] for p in plans)
            batch_size = max(p["standard_batch_size"] for p in plans)
            units = order_quantity(requested, batch_size, stock["cap"], stock["on_hand"],
                                   _on_the_way(state, key))
            if units == 0:
                log.warning("%s: %s %s has no free warehouse capacity at cutoff %s; plans %s "
                            "wait for the next cutoff", NAME, store_id, shelf_id, now, plan_ids)
                continue
            if units < requested:
                log.warning("%s: %s %s orders %d of the %d units planned (free warehouse "
                            "capacity) at cutoff %s; plans %s", NAME, store_id, shelf_id, units,
                            requested, now, plan_ids)
            order = self._order_for(state, store_id, shelf_id, slot.date().isoformat(),
                                    iso(slot), now)
            order["total_qty"] += units
            order["standard_batch_size"] = max(order["standard_batch_size"], batch_size)
            order["cutoff_ts"] = order["updated_at"] = now
            order["plan_ids"] += plan_ids
            out.write(ORDER_TABLE, _contract(WH_SUPPLIER_ORDER, order))
            for plan in plans:
                plan["order_id"] = order["order_id"]
                self._move(plan, "issued", now, out)

    def _forecast_plans(self, state: dict, now: str, out: Outputs) -> None:
        """The cutoff's forecasts decide the shelves the model served (`forecast_or_rule`):
        their rule plans are canceled and the model's orders become pending plans."""
        forecasts = state.setdefault("forecasts", {}).pop(iso(utc(now)), None)
        if forecasts is None:
            # The simulation's first day has no complete day to forecast from: none is made.
            first_day = utc(now).date() <= self.ctx.settings.sim_start.date()
            log.log(logging.INFO if first_day else logging.ERROR,
                    "%s: no forecast of cutoff %s has reached the supplier manager; the rule's "
                    "plans stand", NAME, now)
            return
        # Pending plans: the rule's, and an earlier cutoff's model plans that found no room.
        pending_plans = defaultdict(list)
        for plan in state["plans"].values():
            if plan["status"] == "pending":
                pending_plans[_key(plan)].append(plan["supplier_plan_id"])
        sources, canceled, units = Counter(), 0, 0
        for key in sorted(set(forecasts) | set(pending_plans)):
            forecast = forecasts.get(key) or {}
            choice = forecast_or_rule(sorted(pending_plans.get(key, ())),
                                      forecast.get("method"), forecast.get("order_units") or 0)
            sources[choice.source] += 1
            for plan_id in choice.canceled:
                self._move(state["plans"].pop(plan_id), "canceled", now, out)
                state["finished"][plan_id] = now
            canceled += len(choice.canceled)
            if choice.model_units:
                store_id, shelf_id = key.split("|", 1)
                plan = {"store_id": store_id, "shelf_id": shelf_id,
                        "supplier_plan_id": new_id("model_plan", store_id, shelf_id, now),
                        "suggested_qty": choice.model_units,
                        "standard_batch_size": self.profiles[key]["standard_batch_size"],
                        "source": "model", "status": "pending", "created_at": now,
                        "updated_at": now, "model_name": forecast["model_name"],
                        "model_version": forecast["model_version"],
                        "order_quantile": forecast["order_quantile"], "order_id": None}
                state["plans"][plan["supplier_plan_id"]] = plan
                record = _contract(WH_SUPPLIER_PLAN, plan)
                out.send(PLAN_TOPIC, record)
                out.write(PLAN_TABLE, record)
                units += choice.model_units
        log.info("%s: cutoff %s decided by the forecast for %d shelves (%d units planned, %d "
                 "pending plans canceled), by the rule for %d", NAME, now, sources["model"],
                 units, canceled, sources["rule"])

    def _deliver(self, state: dict, now: str, batch_id: int, out: Outputs) -> None:
        due = sorted((o for o in state["orders"].values()
                      if o["status"] == "issued" and utc(o["delivery_ts"]) <= utc(now)),
                     key=lambda o: (o["delivery_ts"], o["store_id"], o["shelf_id"]))
        for order in due:
            key = _key(order)
            profile = self.profiles[key]
            received = date.fromisoformat(order["delivery_date"])
            expiry = self.shelf_life.expiry(profile["item_category"],
                                            profile["item_subcategory"], received)
            batch_code = supplier_batch_code(received, order["shelf_id"])
            out.send("wh_events", {
                "event_id": new_id("wh_in", order["order_id"]), "event_type": "wh_in",
                "store_id": order["store_id"], "shelf_id": order["shelf_id"],
                "batch_code": batch_code, "quantity": order["total_qty"], "plan_id": None,
                "supplier_order_id": order["order_id"], "received_date": received.isoformat(),
                "expiry_date": expiry.isoformat(), "reason": "supplier_delivery",
                "timestamp": now})
            out.write(RECEIPT_TABLE, {
                "store_id": order["store_id"],
                "receipt_id": new_id("wh_supplier_receipt", order["order_id"]),
                "order_id": order["order_id"], "shelf_id": order["shelf_id"],
                "delivery_date": order["delivery_date"], "batch_code": batch_code,
                "received_qty": order["total_qty"], "expiry_date": expiry.isoformat(),
                "created_at": now})
            order["status"], order["updated_at"] = "delivered", now
            order["delivered_in_batch"] = batch_id
            out.write(ORDER_TABLE, _contract(WH_SUPPLIER_ORDER, order))
            for plan_id in order["plan_ids"]:
                self._move(state["plans"].pop(plan_id), "completed", now, out)
                state["finished"][plan_id] = now
        for plan_id, finished in list(state["finished"].items()):
            if utc(now) - utc(finished) > FINISHED_MEMORY:
                del state["finished"][plan_id]

    # ---- outputs ---------------------------------------------------------------------

    @staticmethod
    def _order_for(state: dict, store_id: str, shelf_id: str, delivery_date: str,
                   delivery_ts: str, now: str) -> dict:
        """The shelf's order for the slot: the one an earlier cutoff placed, or a new one."""
        order_id = new_id("wh_supplier_order", store_id, delivery_date, shelf_id)
        return state["orders"].setdefault(order_id, {
            "store_id": store_id, "order_id": order_id, "shelf_id": shelf_id,
            "delivery_date": delivery_date, "total_qty": 0, "standard_batch_size": 0,
            "status": "issued", "cutoff_ts": now, "delivery_ts": delivery_ts,
            "created_at": now, "updated_at": now, "plan_ids": [], "delivered_in_batch": None})

    @staticmethod
    def _move(plan: dict, status: str, now: str, out: Outputs) -> None:
        plan["status"], plan["updated_at"] = status, now
        record = _contract(WH_SUPPLIER_PLAN, plan)
        out.send(PLAN_TOPIC, record)
        out.write(PLAN_TABLE, record)


def reference_shelf_life(settings: Settings, profiles: dict[str, dict]) -> ShelfLife:
    """Shelf life per product kind from every lot of the reference snapshot, store and
    warehouse (the same world the simulator starts from)."""
    lots = []
    for table in (reference.wh_batch_rows(settings), reference.shelf_batch_rows(settings)):
        for lot in table.select(["store_id", "shelf_id", "received_date",
                                 "expiry_date"]).to_pylist():
            profile = profiles[_key(lot)]
            lots.append((profile["item_category"], profile["item_subcategory"],
                         lot["received_date"], lot["expiry_date"]))
    return ShelfLife.from_lots(lots)


def _key(row: dict) -> str:
    return f"{row['store_id']}|{row['shelf_id']}"


def _contract(record: Record, values: dict) -> dict:
    """The record's fields of `values`; a nullable field it lacks is null (state saved before
    the field existed)."""
    return {f.name: values.get(f.name) if f.nullable else values[f.name] for f in record.fields}


def _on_the_way(state: dict, key: str) -> int:
    """Units ordered for the product that the warehouse stock does not show yet."""
    return sum(o["total_qty"] for o in state["orders"].values() if _key(o) == key)



# Decisions wait for cutoff and delivery ticks only: a slower pace leaves the cores to the
# state queries.
QUERY = SupplierManager.spec("supplier plans, warehouse state, cutoff and "
                                 "delivery ticks -> orders, wh_in, receipts, plan statuses",
                                 pace=2.5)


if __name__ == "__main__":
    shell.run_alone(NAME)
