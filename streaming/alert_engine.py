"""What the shelf and warehouse alert engines share: state, episodes, plans, publishing.

An engine reads absolute state (stock per shelf, units per lot), live policies and clock ticks,
and decides with the pure rules: a stock alert with a plan (refill or supplier order) and a
near-expiry alert, each an episode open -> resolved with a deterministic id. Decisions are made
on the driver in Python (a micro-batch touches at most one row per shelf), from state kept in
`DriverState`, so a replayed batch publishes exactly what it published before. Per batch:

1. fold the batch's newest rows into the state (stock, lots, policies, today);
2. evaluate the touched shelves (every shelf of a store when its policies change, every shelf
   when the simulated day changes); deciding in rounds (`SMART_SHELF_DECISION_ROUND_MINUTES`),
   only at a round's tick, on the rows stamped before it: what a plan says then does not depend
   on where micro-batches ended;
3. publish alerts and new (pending) plans to Kafka, then save the state (`DriverQuery`).

Plans belong to their manager once published (it writes the plan table and moves the status);
the engine follows the statuses on the plan topic: an issued plan acknowledges the stock alert,
and a plan counts as in flight until the stock it brought is visible in the state.

Nothing rescans an ops table: episodes, cooldowns and plans in flight are state (the reference
system rescanned its tables to find them).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

from pyspark.sql import SparkSession

from smart_shelf_platform.clock import decision_rounds
from smart_shelf_platform.contracts.catalogue import TOPICS_BY_NAME
from smart_shelf_platform.rules.alerts import alert_id, alert_step
from smart_shelf_platform.rules.allocation import LotStock
from smart_shelf_platform.rules.expiry import near_expiry
from smart_shelf_platform.rules.replenishment import PolicyScope, most_specific
from streaming import reference, shell
from streaming.driver_query import (
    DriverQuery, Outputs, Rows, blank, iso, newest_per_key, plain, rows_of, tick_source, utc,
)

PLAN_NAMESPACE = uuid.UUID("3e9a6c1d-2b7f-5d40-9e8a-51c2f0b7d6a3")
IN_FLIGHT = ("pending", "issued")
FINAL = ("completed", "canceled")
# Policies carry no version: each edit is a new `updated_at` (deduplicating by key alone would
# drop every edit after the first).
POLICY_VERSION = ("store_id", "policy_id", "updated_at")
# Only a new simulated day changes what the engines decide without a state change (near-expiry
# windows), so they read the first tick of each day; deciding in rounds, the rounds' ticks.
TICKS = tick_source("00:00")


@dataclass(frozen=True)
class Decision:
    """What the stock rule says about one shelf right now."""

    condition: bool
    alert_fields: dict
    plan_qty: int = 0
    plan_fields: dict | None = None


class AlertEngine(DriverQuery):
    """One engine; subclasses name their inputs and supply `decide` and `plan_record`."""

    location: str
    stock_source: shell.EventSource
    quantity_field: str
    capacity_field: str
    lots_source: shell.EventSource
    lot_quantity_field: str
    policy_source: shell.EventSource
    stock_alert: str
    near_expiry_days: int
    plan_topic: str
    plan_id_field: str

    def __init__(self, spark: SparkSession, ctx: shell.QueryContext):
        super().__init__(spark, ctx)
        self.profiles = reference.shelf_profiles(ctx.settings)
        plan = TOPICS_BY_NAME[self.plan_topic].record
        # The managers' status changes; the engine's own pending plans are not read back.
        self.plan_source = shell.EventSource(
            self.plan_topic, plan, dead_letters=False, dedupe_on=plan.key + ("status",),
            prefilter=shell.json_field_in("status", ("issued", *FINAL)))
        rounds = decision_rounds(ctx.settings.decision_round_minutes)
        self.in_rounds = bool(rounds)
        self.ticks = tick_source(*sorted(rounds)) if rounds else TICKS
        # The simulated time of each input's rows, to cut a batch at a round's tick.
        self.event_time = {self.stock_source.topic: "last_update_ts",
                           self.lots_source.topic: "last_update_ts",
                           self.policy_source.topic: "updated_at",
                           self.plan_topic: "updated_at", self.ticks.topic: "sim_time"}

    def initial_state(self) -> dict:
        return {"shelves": {}, "policies": {}, "now": None, "today": None, "undecided": []}

    # ---- hooks -----------------------------------------------------------------------

    def decide(self, key: str, shelf: dict, policies: list[dict], now: datetime) -> Decision:
        raise NotImplementedError

    def plan_record(self, key: str, plan_id: str, qty: int, fields: dict, alert: dict | None,
                    now: datetime) -> dict:
        raise NotImplementedError

    # ---- the query -------------------------------------------------------------------

    @property
    def sources(self) -> list[shell.EventSource]:
        return [self.stock_source, self.lots_source, self.policy_source, self.plan_source,
                self.ticks]

    def step(self, state: dict, rows: Rows, batch_id: int) -> Outputs:
        out = Outputs()
        shelves = state["shelves"]
        undecided = set(state.get("undecided", []))  # shelves changed since the last decision
        for part, decides in self.parts(rows):
            touched, all_of_store, new_day = self.fold(state, part)
            self.follow_plans(state, part, out)
            undecided |= touched | {k for k in shelves if k.split("|", 1)[0] in all_of_store}
            if decides:
                for key in sorted(set(shelves) if new_day else undecided):
                    self.evaluate(state, key, out)
                undecided = set()
        state["undecided"] = sorted(undecided)
        return out

    def parts(self, rows: Rows) -> list[tuple[Rows, bool]]:
        """The batch as (rows, decide after them): whole, deciding at its end; in rounds, cut at
        each round's tick in simulated time, deciding at the tick on what happened before it
        (so the decision does not depend on where the micro-batches ended), then the rest."""
        if not self.in_rounds:
            return [(rows, True)]
        rest = {topic: list(found) for topic, found in rows.items() if topic != self.ticks.topic}
        parts = []
        for tick in sorted(rows_of(rows, self.ticks), key=lambda t: utc(t["sim_time"])):
            at, before = utc(tick["sim_time"]), {}
            for topic, found in rest.items():
                field = self.event_time[topic]
                before[topic], rest[topic] = [], []
                for row in found:  # one pass: each row's time is parsed once per tick
                    earlier = row.get(field) is not None and utc(row[field]) < at
                    (before if earlier else rest)[topic].append(row)
            parts.append((before | {self.ticks.topic: [tick]}, True))
        return parts + [(rest, False)]

    # ---- 1. fold the inputs ----------------------------------------------------------

    def fold(self, state: dict, rows: Rows) -> tuple[set[str], set[str], bool]:
        shelves, touched, stores_with_new_policy = state["shelves"], set(), set()
        for row in newest_per_key(rows, self.stock_source):
            key = f"{row['store_id']}|{row['shelf_id']}"
            shelf = self._shelf(shelves, key)
            if row["version"] >= shelf["version"]:
                shelf.update(stock=row[self.quantity_field], cap=row[self.capacity_field],
                             version=row["version"])
                shelf["ts"] = self._later(shelf["ts"], row["last_update_ts"])
                shelf["stock_ts"] = self._later(shelf["stock_ts"], row["last_update_ts"])
                touched.add(key)
        for row in newest_per_key(rows, self.lots_source):
            key = f"{row['store_id']}|{row['shelf_id']}"
            shelf = self._shelf(shelves, key)
            lot = shelf["lots"].get(row["batch_code"])
            if lot is None or row["version"] >= lot["version"]:
                shelf["lots"][row["batch_code"]] = {
                    "received": row["received_date"], "expiry": row["expiry_date"],
                    "qty": row[self.lot_quantity_field], "version": row["version"]}
                shelf["ts"] = self._later(shelf["ts"], row["last_update_ts"])
                touched.add(key)
        for row in newest_per_key(rows, self.policy_source):
            key = f"{row['store_id']}|{row['policy_id']}"
            known = state["policies"].get(key)
            if known is None or row["updated_at"] >= known["updated_at"]:
                state["policies"][key] = row
                stores_with_new_policy.add(row["store_id"])
        ticks = rows_of(rows, self.ticks)
        new_day = False
        if ticks:
            latest = max(ticks, key=lambda t: t["sim_time"])
            if state["now"] is None or latest["sim_time"] > state["now"]:
                state["now"] = latest["sim_time"]
                new_day = state["today"] != latest["sim_date"]
                state["today"] = latest["sim_date"]
        return touched, stores_with_new_policy, new_day

    def follow_plans(self, state: dict, rows: Rows, out: Outputs) -> None:
        """Status changes from the plan's manager: issued acknowledges the stock alert."""
        order = {"pending": 0, "issued": 1, "completed": 2, "canceled": 2}
        changes = sorted(rows_of(rows, self.plan_source),
                         key=lambda r: (r["updated_at"], order[r["status"]]))
        for row in changes:
            key = f"{row['store_id']}|{row['shelf_id']}"
            shelf = self._shelf(state["shelves"], key)
            plan = shelf["plans"].setdefault(row[self.plan_id_field],
                                             {"qty": row["suggested_qty"], "status": "pending"})
            if order[row["status"]] <= order[plan["status"]]:
                continue
            plan["status"] = row["status"]
            if row["status"] in FINAL:
                plan["done_at"] = row["updated_at"]
            episode = shelf["alerts"].get(self.stock_alert)
            if row["status"] == "issued" and episode and not episode.get("acknowledged"):
                episode["acknowledged"] = True
                store_id, shelf_id = key.split("|", 1)
                out.send("alerts", self.alert_record(
                    store_id, shelf_id, self.stock_alert, "acknowledged", episode,
                    episode["fields"], utc(row["updated_at"])))

    @staticmethod
    def _later(current: str | None, seen: str) -> str:
        """A shelf's time only moves forward: stock and lots are updated by different queries,
        so their rows arrive in no common order."""
        return seen if current is None or utc(seen) > utc(current) else current

    @staticmethod
    def _shelf(shelves: dict, key: str) -> dict:
        return shelves.setdefault(key, {
            "stock": None, "cap": None, "version": 0, "ts": None, "stock_ts": None, "lots": {},
            "alerts": {}, "resolved": {}, "plans": {}})

    # ---- 2. evaluate a shelf ---------------------------------------------------------

    def evaluate(self, state: dict, key: str, out: Outputs) -> None:
        shelf = state["shelves"][key]
        store_id, shelf_id = key.split("|", 1)
        now = max(filter(None, (utc(shelf["ts"]), utc(state["now"]))), default=None)
        if now is None:
            return
        today = date.fromisoformat(state["today"]) if state["today"] else now.date()
        if shelf["stock"] is not None and shelf["cap"] is not None:
            policies = [p for k, p in state["policies"].items()
                        if k.startswith(f"{store_id}|") and p["active"]]
            decision = self.decide(key, shelf, policies, now)
            self._step(shelf, key, self.stock_alert, decision.condition, now,
                       decision.alert_fields, out)
            if decision.plan_qty > 0:
                out.send(self.plan_topic, self._open_plan(shelf, key, decision, now))
        lots = [LotStock(code, date.fromisoformat(lot["received"]),
                         date.fromisoformat(lot["expiry"]), lot["qty"])
                for code, lot in shelf["lots"].items()]
        expiring = near_expiry(lots, today, self.near_expiry_days)
        fields = {"current_stock": sum(lot.quantity for lot in lots), "suggested_qty": 0}
        if expiring is not None:
            fields |= {"batch_code": expiring.batch_code,
                       "expiry_date": expiring.expiry_date.isoformat()}
        self._step(shelf, key, "near_expiry", expiring is not None, now, fields, out)

    def _step(self, shelf: dict, key: str, alert_type: str, condition: bool, now: datetime,
              fields: dict, out: Outputs) -> None:
        episode = shelf["alerts"].get(alert_type)
        action = alert_step(condition, episode is not None,
                            utc(shelf["resolved"].get(alert_type)), now)
        if action is None:
            return
        store_id, shelf_id = key.split("|", 1)
        if action == "open":
            episode = {"alert_id": alert_id(alert_type, store_id, shelf_id, self.location, now),
                       "created_at": iso(now), "fields": fields}
            shelf["alerts"][alert_type] = episode
            status = "open"
        else:
            del shelf["alerts"][alert_type]
            shelf["resolved"][alert_type] = iso(now)
            status = "resolved"
            fields = {**episode["fields"], **{k: v for k, v in fields.items()
                                              if k in ("current_stock", "stock_pct")}}
        out.send("alerts", self.alert_record(store_id, shelf_id, alert_type, status, episode,
                                             fields, now))

    def alert_record(self, store_id: str, shelf_id: str, alert_type: str, status: str,
                     episode: dict, fields: dict, now: datetime) -> dict:
        return blank("alerts") | {k: plain(v) for k, v in fields.items()} | {
            "alert_id": episode["alert_id"], "store_id": store_id, "alert_type": alert_type,
            "shelf_id": shelf_id, "location": self.location, "status": status,
            "created_at": episode["created_at"], "updated_at": iso(now)}

    def _open_plan(self, shelf: dict, key: str, decision: Decision, now: datetime) -> dict:
        plan_id = str(uuid.uuid5(PLAN_NAMESPACE, f"{self.plan_topic}:{key}:{iso(now)}"))
        record = self.plan_record(key, plan_id, decision.plan_qty, decision.plan_fields or {},
                                  shelf["alerts"].get(self.stock_alert), now)
        shelf["plans"][plan_id] = {"qty": decision.plan_qty, "status": record["status"]}
        return record

    @staticmethod
    def in_flight_qty(shelf: dict) -> int:
        """Units of plans not yet visible in the stock: pending, issued, or finished after the
        stock's last update (its units are still on their way through the state query).
        Plans whose units the stock already shows are forgotten."""
        stock_ts = utc(shelf["stock_ts"])
        for plan_id, plan in list(shelf["plans"].items()):
            if plan["status"] in FINAL and stock_ts is not None \
                    and utc(plan["done_at"]) <= stock_ts:
                del shelf["plans"][plan_id]
        return sum(p["qty"] for p in shelf["plans"].values())

    @staticmethod
    def scoped(policies: list[dict], value) -> list[tuple[PolicyScope, object]]:
        return [(PolicyScope(p["shelf_id"], p["item_category"], p["item_subcategory"]), value(p))
                for p in policies]

    def policy_for(self, key: str, policies: list[dict], value):
        profile = self.profiles[key]
        return most_specific(self.scoped(policies, value), key.split("|", 1)[1],
                             profile["item_category"], profile["item_subcategory"])
