"""What the shelf and warehouse alert engines share: state, episodes, plans, publishing.

An engine reads absolute state (stock per shelf, units per lot), live policies and clock ticks,
and decides with the pure rules: a stock alert with a plan (refill or supplier order) and a
near-expiry alert, each an episode open -> resolved with a deterministic id. Decisions are made
on the driver in Python (a micro-batch touches at most one row per shelf), from state kept in
`DriverState`, so a replayed batch publishes exactly what it published before. Per batch:

1. fold the batch's newest rows into the state (stock, lots, policies, today);
2. evaluate the touched shelves (every shelf of a store when its policies change, every shelf
   when the simulated day changes);
3. publish alerts and plans to Kafka, MERGE the plans into their Delta table (txn per batch),
   then save the state.

Nothing rescans an ops table: episodes, cooldowns and plans in flight are state (REFERENCE 11
items 13, 15, 24).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal

import orjson
from confluent_kafka import Producer
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.streaming import DataStreamWriter

from smart_shelf_platform.contracts.catalogue import DELTA_TABLES_BY_PATH, TOPICS_BY_NAME
from smart_shelf_platform.contracts.events import CLOCK_TICK
from smart_shelf_platform.rules.alerts import alert_id, alert_step
from smart_shelf_platform.rules.allocation import LotStock
from smart_shelf_platform.rules.expiry import near_expiry
from smart_shelf_platform.rules.replenishment import PolicyScope, most_specific
from streaming import reference, shell
from streaming.driver_state import DriverState

log = logging.getLogger(__name__)

PLAN_NAMESPACE = uuid.UUID("3e9a6c1d-2b7f-5d40-9e8a-51c2f0b7d6a3")
IN_FLIGHT = ("pending", "issued")
# Only a new simulated day changes what the engines decide without a state change (near-expiry
# windows), so they read the first tick of each day; the clock, their only producer, checks its
# own ticks.
TICKS = shell.EventSource("clock_ticks", CLOCK_TICK, dead_letters=False,
                          prefilter="get_json_object(CAST(value AS STRING), '$.sim_time') "
                                    "LIKE '%T00:00:00%'")


def utc(text: str | None) -> datetime | None:
    if text is None:
        return None
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def collect_records(df: DataFrame) -> list[dict]:
    """Rows as plain dicts with ISO-8601 text for times and dates (no local-time surprises)."""
    text = [F.date_format(c.name, "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX").alias(c.name)
            if isinstance(c.dataType, T.TimestampType)
            else F.col(c.name).cast("string").alias(c.name)
            if isinstance(c.dataType, T.DateType) else F.col(c.name)
            for c in df.schema.fields]
    return [row.asDict(recursive=True) for row in df.select(*text).collect()]


def plain(value):
    """JSON-safe: Decimals become floats (policies and alert figures are percentages)."""
    return float(value) if isinstance(value, Decimal) else value


@dataclass(frozen=True)
class Decision:
    """What the stock rule says about one shelf right now."""

    condition: bool
    alert_fields: dict
    plan_qty: int = 0
    plan_fields: dict | None = None


class AlertEngine:
    """One engine; subclasses name their inputs and supply `decide` and `plan_record`."""

    name: str
    location: str
    stock_source: shell.EventSource
    quantity_field: str
    capacity_field: str
    lots_source: shell.EventSource
    lot_quantity_field: str
    policy_source: shell.EventSource
    stock_alert: str
    near_expiry_days: int
    plan_table: str
    plan_topic: str

    def __init__(self, spark: SparkSession, ctx: shell.QueryContext):
        self.ctx = ctx
        self.profiles = reference.shelf_profiles(ctx.settings)
        self._kafka: Producer | None = None
        self.state = DriverState(ctx.checkpoint(self.name), lambda: {
            "shelves": {}, "policies": {}, "now": None, "today": None})

    # ---- hooks -----------------------------------------------------------------------

    def decide(self, key: str, shelf: dict, policies: list[dict], now: datetime) -> Decision:
        raise NotImplementedError

    def plan_record(self, key: str, plan_id: str, qty: int, fields: dict, alert: dict | None,
                    now: datetime) -> dict:
        raise NotImplementedError

    # ---- the query -------------------------------------------------------------------

    @property
    def sources(self) -> list[shell.EventSource]:
        return [self.stock_source, self.lots_source, self.policy_source, TICKS]

    def build(self, spark: SparkSession) -> DataStreamWriter:
        return shell.event_query(spark, self.ctx, self.name, self.sources, self.handle)

    def handle(self, valid: shell.ValidRows, batch_id: int) -> None:
        state = self.state.before(batch_id)
        touched, all_of_store, new_day = self.fold(state, valid)
        shelves = state["shelves"]
        keys = set(shelves) if new_day else touched | {
            k for k in shelves if k.split("|", 1)[0] in all_of_store}
        alerts, plans = [], []
        for key in sorted(keys):
            a, p = self.evaluate(state, key)
            alerts += a
            plans += p
        self.publish(alerts, plans)
        if plans:
            self.merge_plans(next(iter(valid.values())).sparkSession, plans, batch_id)
        self.state.save(batch_id, state)
        if alerts or plans:
            log.info("%s batch %d: %d shelves evaluated, %d alert steps, %d plans", self.name,
                     batch_id, len(keys), len(alerts), len(plans))

    # ---- 1. fold the inputs ----------------------------------------------------------

    def fold(self, state: dict, valid: shell.ValidRows) -> tuple[set[str], set[str], bool]:
        shelves, touched, stores_with_new_policy = state["shelves"], set(), set()
        for row in self._newest(valid, self.stock_source):
            key = f"{row['store_id']}|{row['shelf_id']}"
            shelf = shelves.setdefault(key, self._empty_shelf())
            if row["version"] >= shelf["version"]:
                shelf.update(stock=row[self.quantity_field], cap=row[self.capacity_field],
                             version=row["version"])
                shelf["ts"] = self._later(shelf["ts"], row["last_update_ts"])
                touched.add(key)
        for row in self._newest(valid, self.lots_source):
            key = f"{row['store_id']}|{row['shelf_id']}"
            shelf = shelves.setdefault(key, self._empty_shelf())
            lot = shelf["lots"].get(row["batch_code"])
            if lot is None or row["version"] >= lot["version"]:
                shelf["lots"][row["batch_code"]] = {
                    "received": row["received_date"], "expiry": row["expiry_date"],
                    "qty": row[self.lot_quantity_field], "version": row["version"]}
                shelf["ts"] = self._later(shelf["ts"], row["last_update_ts"])
                touched.add(key)
        for row in self._newest(valid, self.policy_source):
            state["policies"][f"{row['store_id']}|{row['policy_id']}"] = {
                k: plain(v) for k, v in row.items()}
            stores_with_new_policy.add(row["store_id"])
        ticks = collect_records(valid[TICKS.topic]) if TICKS.topic in valid else []
        new_day = False
        if ticks:
            latest = max(ticks, key=lambda t: t["sim_time"])
            if state["now"] is None or latest["sim_time"] > state["now"]:
                state["now"] = latest["sim_time"]
                new_day = state["today"] != latest["sim_date"]
                state["today"] = latest["sim_date"]
        return touched, stores_with_new_policy, new_day

    @staticmethod
    def _later(current: str | None, seen: str) -> str:
        """A shelf's time only moves forward: stock and lots are updated by different queries,
        so their rows arrive in no common order."""
        return seen if current is None or utc(seen) > utc(current) else current

    @staticmethod
    def _empty_shelf() -> dict:
        return {"stock": None, "cap": None, "version": 0, "ts": None, "lots": {},
                "alerts": {}, "resolved": {}, "plans": {}}

    def _newest(self, valid: shell.ValidRows, source: shell.EventSource) -> list[dict]:
        """The newest row per key of a state topic in this batch (compacted topics repeat)."""
        if source.topic not in valid:
            return []
        rows = collect_records(valid[source.topic])
        newest: dict[tuple, dict] = {}
        for row in rows:
            key = tuple(row[k] for k in source.record.key)
            if key not in newest or row.get("version", 0) >= newest[key].get("version", 0):
                newest[key] = row
        return [newest[k] for k in sorted(newest)]

    # ---- 2. evaluate a shelf ---------------------------------------------------------

    def evaluate(self, state: dict, key: str) -> tuple[list[dict], list[dict]]:
        shelf = state["shelves"][key]
        store_id, shelf_id = key.split("|", 1)
        now = max(filter(None, (utc(shelf["ts"]), utc(state["now"]))), default=None)
        if now is None:
            return [], []
        today = date.fromisoformat(state["today"]) if state["today"] else now.date()
        alerts, plans = [], []
        if shelf["stock"] is not None and shelf["cap"] is not None:
            policies = [p for k, p in state["policies"].items()
                        if k.startswith(f"{store_id}|") and p["active"]]
            decision = self.decide(key, shelf, policies, now)
            alerts += self._step(shelf, key, self.stock_alert, decision.condition, now,
                                 decision.alert_fields)
            if decision.plan_qty > 0:
                plans.append(self._open_plan(shelf, key, decision, now))
        lots = [LotStock(code, date.fromisoformat(lot["received"]),
                         date.fromisoformat(lot["expiry"]), lot["qty"])
                for code, lot in shelf["lots"].items()]
        expiring = near_expiry(lots, today, self.near_expiry_days)
        fields = {"current_stock": sum(lot.quantity for lot in lots), "suggested_qty": 0}
        if expiring is not None:
            fields |= {"batch_code": expiring.batch_code,
                       "expiry_date": expiring.expiry_date.isoformat()}
        alerts += self._step(shelf, key, "near_expiry", expiring is not None, now, fields)
        return alerts, plans

    def _step(self, shelf: dict, key: str, alert_type: str, condition: bool, now: datetime,
              fields: dict) -> list[dict]:
        episode = shelf["alerts"].get(alert_type)
        action = alert_step(condition, episode is not None,
                            utc(shelf["resolved"].get(alert_type)), now)
        if action is None:
            return []
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
        return [self.alert_record(store_id, shelf_id, alert_type, status, episode, fields, now)]

    def alert_record(self, store_id: str, shelf_id: str, alert_type: str, status: str,
                     episode: dict, fields: dict, now: datetime) -> dict:
        record = {f: None for f in TOPICS_BY_NAME["alerts"].record.field_names}
        record |= {k: plain(v) for k, v in fields.items()}
        record |= {"alert_id": episode["alert_id"], "store_id": store_id,
                   "alert_type": alert_type, "shelf_id": shelf_id, "location": self.location,
                   "status": status, "created_at": episode["created_at"], "updated_at": iso(now)}
        return record

    def _open_plan(self, shelf: dict, key: str, decision: Decision, now: datetime) -> dict:
        plan_id = str(uuid.uuid5(PLAN_NAMESPACE, f"{self.plan_topic}:{key}:{iso(now)}"))
        record = self.plan_record(key, plan_id, decision.plan_qty, decision.plan_fields or {},
                                  shelf["alerts"].get(self.stock_alert), now)
        shelf["plans"][plan_id] = {"qty": decision.plan_qty, "status": record["status"]}
        return record

    @staticmethod
    def in_flight_qty(shelf: dict) -> int:
        return sum(p["qty"] for p in shelf["plans"].values() if p["status"] in IN_FLIGHT)

    @staticmethod
    def scoped(policies: list[dict], value) -> list[tuple[PolicyScope, object]]:
        return [(PolicyScope(p["shelf_id"], p["item_category"], p["item_subcategory"]), value(p))
                for p in policies]

    def policy_for(self, key: str, policies: list[dict], value):
        profile = self.profiles[key]
        return most_specific(self.scoped(policies, value), key.split("|", 1)[1],
                             profile["item_category"], profile["item_subcategory"])

    # ---- 3. outputs ------------------------------------------------------------------

    def publish(self, alerts: list[dict], plans: list[dict]) -> None:
        """Alerts and plans to Kafka before anything is committed: a crash in between replays
        the batch, which sends the same records (same ids) again."""
        if not alerts and not plans:
            return
        producer = self._producer()
        failures = []
        for topic_name, records in (("alerts", alerts), (self.plan_topic, plans)):
            topic = TOPICS_BY_NAME[topic_name]
            for record in records:
                producer.produce(self.ctx.topic(topic.name), key=topic.message_key(record),
                                 value=orjson.dumps(record),
                                 on_delivery=lambda err, _m: err and failures.append(err))
        remaining = producer.flush(60)
        if remaining or failures:
            raise RuntimeError(f"{self.name}: {remaining} undelivered, errors {failures[:3]}")

    def _producer(self) -> Producer:
        """One idempotent producer for the engine's life, made on first use (on the driver)."""
        if self._kafka is None:
            self._kafka = Producer({"bootstrap.servers": self.ctx.settings.kafka_bootstrap,
                                    "enable.idempotence": True, "linger.ms": 5})
        return self._kafka

    def merge_plans(self, spark: SparkSession, plans: list[dict], batch_id: int) -> None:
        spec = DELTA_TABLES_BY_PATH[self.plan_table]
        record = spec.record
        rows = spark.createDataFrame(
            [{f: utc(p[f]) if f in ("created_at", "updated_at") else p[f]
              for f in record.field_names} for p in plans], schema=record.spark_schema())
        condition = " AND ".join(f"t.{k} = s.{k}" for k in record.key)
        merge = (DeltaTable.forPath(spark, self.ctx.table(self.plan_table)).alias("t")
                 .merge(rows.alias("s"), condition)
                 .whenMatchedUpdateAll().whenNotMatchedInsertAll())
        shell.merge_idempotent(spark, merge, self.name, batch_id)
