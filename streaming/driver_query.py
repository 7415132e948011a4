"""Queries that decide on the driver: the alert engines and the replenishment managers.

Their decisions are small (a micro-batch touches a few shelves, a few plans, a few ticks), so
they fold the batch's rows into plain Python state with the pure rules instead of Spark joins.
The state is saved per micro-batch (`DriverState`), so a replayed batch makes exactly the same
decisions, with the same deterministic ids and timestamps. Per batch:

1. `step(state, valid rows, batch id)` folds the inputs and returns the batch's `Outputs`;
2. the messages go to Kafka (idempotent producer, flushed) before anything is committed;
3. table rows are MERGEd into Delta by key, once per batch id (txn);
4. the state is saved.

A crash between 2 and 4 replays the batch: the same messages again (consumers dedupe by id or
key + status) and a MERGE that Delta skips.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
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
from smart_shelf_platform.contracts.types import Record
from streaming import shell
from streaming.driver_state import DriverState

log = logging.getLogger(__name__)


def tick_source(*times: str) -> shell.EventSource:
    """Clock ticks; with `times` ("00:00", "12:00", ...) only the ticks of those minutes of the
    day (the clock, their only producer, checks its own ticks: no dead letters here)."""
    prefilter = None
    if times:
        tick_time = "substr(get_json_object(CAST(value AS STRING), '$.sim_time'), 12, 5)"
        prefilter = f"{tick_time} IN ({', '.join(repr(t) for t in times)})"
    return shell.EventSource("clock_ticks", CLOCK_TICK, dead_letters=False, prefilter=prefilter)


def utc(text: str | None) -> datetime | None:
    if text is None:
        return None
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def plain(value):
    """JSON-safe: Decimals become floats (policies and alert figures are percentages)."""
    return float(value) if isinstance(value, Decimal) else value


def collect_records(df: DataFrame) -> list[dict]:
    """Rows as plain dicts with ISO-8601 text for times and dates (no local-time surprises)."""
    text = [F.date_format(c.name, "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX").alias(c.name)
            if isinstance(c.dataType, T.TimestampType)
            else F.col(c.name).cast("string").alias(c.name)
            if isinstance(c.dataType, T.DateType) else F.col(c.name)
            for c in df.schema.fields]
    times = [c.name for c in df.schema.fields if isinstance(c.dataType, T.TimestampType)]
    records = []
    for row in df.select(*text).collect():
        record = {k: plain(v) for k, v in row.asDict(recursive=True).items()}
        for name in times:  # one spelling for every time a driver query handles or sends
            if record[name] is not None:
                record[name] = iso(utc(record[name]))
        records.append(record)
    return records


def typed(record: Record, values: dict) -> dict:
    """A JSON-shaped record (ISO text times and dates, float decimals) as Spark row values."""
    convert = {"timestamp": utc, "date": date.fromisoformat, "decimal": lambda v: Decimal(str(v))}
    out = {}
    for f in record.fields:
        value = values.get(f.name)
        out[f.name] = convert[f.type.kind](value) if value is not None and \
            f.type.kind in convert else value
    return out


def rows_of(valid: shell.ValidRows, source: shell.EventSource) -> list[dict]:
    return collect_records(valid[source.topic]) if source.topic in valid else []


def newest_per_key(valid: shell.ValidRows, source: shell.EventSource) -> list[dict]:
    """The newest row per key of a state topic in this batch (compacted topics repeat keys):
    by `version`, or by `updated_at` for records without one (policies)."""
    newest: dict[tuple, dict] = {}
    order = "version" if "version" in source.record.field_names else "updated_at"
    for row in rows_of(valid, source):
        key = tuple(row[k] for k in source.record.key)
        if key not in newest or row[order] >= newest[key][order]:
            newest[key] = row
    return [newest[k] for k in sorted(newest)]


def blank(topic: str) -> dict:
    """A record of `topic` with every contract field present (null until set)."""
    return {f: None for f in TOPICS_BY_NAME[topic].record.field_names}


@dataclass
class Outputs:
    """What one micro-batch decided: messages (topic, record) and rows per Delta table."""

    messages: list[tuple[str, dict]] = field(default_factory=list)
    rows: dict[str, list[dict]] = field(default_factory=dict)

    def send(self, topic: str, record: dict) -> None:
        self.messages.append((topic, record))

    def write(self, table: str, record: dict) -> None:
        self.rows.setdefault(table, []).append(record)

    def __bool__(self) -> bool:
        return bool(self.messages or self.rows)


class DriverQuery:
    """A query whose `step` decides on the driver; subclasses set `name` and `sources`."""

    name: str

    def __init__(self, spark: SparkSession, ctx: shell.QueryContext):
        self.ctx = ctx
        self._kafka: Producer | None = None
        self.state = DriverState(ctx.checkpoint(self.name), self.initial_state)

    # ---- hooks -----------------------------------------------------------------------

    @property
    def sources(self) -> list[shell.EventSource]:
        raise NotImplementedError

    def initial_state(self) -> dict:
        raise NotImplementedError

    def step(self, state: dict, valid: shell.ValidRows, batch_id: int) -> Outputs:
        raise NotImplementedError

    # ---- the query -------------------------------------------------------------------

    def build(self, spark: SparkSession) -> DataStreamWriter:
        return shell.event_query(spark, self.ctx, self.name, self.sources, self.handle)

    def handle(self, valid: shell.ValidRows, batch_id: int) -> None:
        state = self.state.before(batch_id)
        outputs = self.step(state, valid, batch_id)
        self.publish(outputs.messages)
        session = next(iter(valid.values())).sparkSession
        for table, rows in sorted(outputs.rows.items()):
            self.merge(session, table, rows, batch_id)
        self.state.save(batch_id, state)
        if outputs:
            log.info("%s batch %d: %d messages, %s", self.name, batch_id,
                     len(outputs.messages),
                     ", ".join(f"{len(r)} rows to {t}" for t, r in outputs.rows.items()) or
                     "no table rows")

    def publish(self, messages: list[tuple[str, dict]]) -> None:
        """To Kafka before anything is committed: a crash in between replays the batch, which
        sends the same records (same ids) again."""
        if not messages:
            return
        producer = self._producer()
        failures = []
        for topic_name, record in messages:
            topic = TOPICS_BY_NAME[topic_name]
            producer.produce(self.ctx.topic(topic.name), key=topic.message_key(record),
                             value=orjson.dumps(record),
                             on_delivery=lambda err, _m: err and failures.append(err))
        remaining = producer.flush(60)
        if remaining or failures:
            raise RuntimeError(f"{self.name}: {remaining} undelivered, errors {failures[:3]}")

    def _producer(self) -> Producer:
        """One idempotent producer for the query's life, made on first use (on the driver)."""
        if self._kafka is None:
            self._kafka = Producer({"bootstrap.servers": self.ctx.settings.kafka_bootstrap,
                                    "enable.idempotence": True, "linger.ms": 5})
        return self._kafka

    def merge(self, spark: SparkSession, table: str, records: list[dict], batch_id: int) -> None:
        """Upsert `records` (newest per key wins) into a Delta table, once per batch id."""
        record = DELTA_TABLES_BY_PATH[table].record
        newest = {tuple(r[k] for k in record.key): r for r in records}
        rows = spark.createDataFrame([typed(record, r) for r in newest.values()],
                                     schema=record.spark_schema())
        condition = " AND ".join(f"t.{k} = s.{k}" for k in record.key)
        merge = (DeltaTable.forPath(spark, self.ctx.table(table)).alias("t")
                 .merge(rows.alias("s"), condition)
                 .whenMatchedUpdateAll().whenNotMatchedInsertAll())
        shell.merge_idempotent(spark, merge, f"{self.name}:{table}", batch_id)
