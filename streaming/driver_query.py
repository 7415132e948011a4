"""Queries that decide on the driver: the alert engines and the replenishment managers.

Their decisions are small (a micro-batch touches a few shelves, a few plans, a few ticks), so
they fold the batch's rows into plain Python state with the pure rules instead of Spark joins.
The state is saved per micro-batch (`DriverState`), so a replayed batch makes exactly the same
decisions, with the same deterministic ids and timestamps. Per batch:

1. `step(state, rows, batch id)` folds the inputs and returns the batch's `Outputs`;
2. the messages go to Kafka (idempotent producer, flushed) before anything is committed except
   the rows of `tables_first`, which readers check the messages against;
3. table rows are upserted into Delta by key, once per batch id (`driver_writes`, txn);
4. the state is saved.

A crash between 2 and 4 replays the batch: the same messages again (consumers dedupe by id or
key + status) and an upsert skipped because the table has the batch's transaction.

Started with the other queries, they run in the `decisions` Spark query (`host.QueryHost`),
which collects each micro-batch's records to the driver once for all of them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from functools import reduce
from pathlib import Path

import orjson
from deltalake import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from smart_shelf_platform.clock import iso_utc as iso
from smart_shelf_platform.contracts.catalogue import DELTA_TABLES_BY_PATH, TOPICS_BY_NAME
from smart_shelf_platform.contracts.events import CLOCK_TICK
from smart_shelf_platform.contracts.types import Record
from smart_shelf_platform.publisher import Publisher
from streaming import driver_writes, shell
from streaming.driver_state import DriverState
from streaming.host import Member

log = logging.getLogger(__name__)


TICKS_TOPIC = "clock_ticks"


def tick_source(*times: str, reports: bool = False) -> shell.EventSource:
    """Clock ticks; with `times` ("00:00", "12:00", ...) only the ticks of those minutes of the
    day. One reader `reports` the bad ones (the restock manager, which reads them all).

    Not deduplicated by id in Spark: a forged tick refused there (ahead of the clock) would
    take its minute's id, and the clock's real tick would then be dropped as a repeat. Each
    query takes every minute once, in order, instead (`new_ticks`)."""
    prefilter = shell.FieldIn("sim_time", times, chars=(11, 16)) if times else None  # "HH:MM"
    return shell.EventSource(TICKS_TOPIC, CLOCK_TICK, dead_letters=reports, prefilter=prefilter,
                             dedupe_on=())


def new_ticks(state: dict, rows: Rows) -> Rows:
    """`rows` with only the ticks after the last one the query took, in time order; the newest
    is remembered in `state` (`_last_tick`). A repeated or out-of-order tick changes nothing."""
    ticks = rows.get(TICKS_TOPIC)
    if not ticks:
        return rows
    last = state.get("_last_tick")
    fresh = sorted((t for t in ticks if last is None or t["sim_time"] > last),
                   key=lambda t: t["sim_time"])
    if fresh:
        state["_last_tick"] = fresh[-1]["sim_time"]
    return {**rows, TICKS_TOPIC: fresh}


def utc(text: str | None) -> datetime | None:
    if text is None:
        return None
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def plain(value):
    """JSON-safe: Decimals become floats (policies and alert figures are percentages)."""
    return float(value) if isinstance(value, Decimal) else value


Rows = dict[str, list[dict]]  # topic -> the batch's valid records of that topic, for one query
# Every time a driver query handles or sends is ISO-8601 text with microseconds, in UTC.
_JSON_OPTIONS = {"timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"}


def collect_batch(valid: shell.ValidRows, sources: list[shell.EventSource]) -> Rows:
    """Every topic's valid rows in one Spark job, as plain records of their contract: JSON text
    (so rows of different contracts share one column), times normalised, decimals as floats."""
    records = {s.topic: s.record for s in sources}
    frames = [df.select(F.lit(topic).alias("topic"),
                        F.to_json(F.struct(*df.columns), _JSON_OPTIONS).alias("json"))
              for topic, df in valid.items()]
    rows: Rows = {topic: [] for topic in valid}
    union = reduce(DataFrame.union, frames)
    # Each topic's frame has the batch's partitions: in one task per core, not one per topic
    # and partition (tasks that each took longer to schedule than to run).
    parallelism = union.sparkSession.sparkContext.defaultParallelism
    for row in union.coalesce(parallelism).collect():
        record = records[row.topic]
        values = orjson.loads(row.json)
        out = {}
        for f in record.fields:  # null fields are left out of the JSON
            value = values.get(f.name)
            out[f.name] = iso(utc(value)) if value is not None and \
                f.type.kind == "timestamp" else value
        rows[row.topic].append(out)
    return rows


def typed(record: Record, values: dict) -> dict:
    """A JSON-shaped record (ISO text times and dates, float decimals) as typed row values;
    decimals rounded half up to their column's scale, as a Spark cast does."""
    convert = {"timestamp": lambda v, _: utc(v), "date": lambda v, _: date.fromisoformat(v),
               "decimal": lambda v, t: Decimal(str(v)).quantize(Decimal(1).scaleb(-t.scale),
                                                                ROUND_HALF_UP)}
    out = {}
    for f in record.fields:
        value = values.get(f.name)
        out[f.name] = convert[f.type.kind](value, f.type) if value is not None and \
            f.type.kind in convert else value
    return out


def rows_of(rows: Rows, source: shell.EventSource) -> list[dict]:
    return rows.get(source.topic, [])


def newest_per_key(rows: Rows, source: shell.EventSource) -> list[dict]:
    """The newest row per key of a state topic in this batch (compacted topics repeat keys):
    by `version`, or by `updated_at` for records without one (policies)."""
    newest: dict[tuple, dict] = {}
    order = "version" if "version" in source.record.field_names else "updated_at"
    for row in rows_of(rows, source):
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


class DriverQuery(Member):
    """A query whose `step` decides on the driver; subclasses set `name` and `sources`."""

    collects = True
    collect = staticmethod(collect_batch)
    # Tables upserted before the batch's messages go out, because a reader checks the messages
    # against them: a delivery must match its order (`provenance`), and the order may have been
    # placed in the same batch as the delivery when the query catches up on a backlog.
    tables_first: frozenset[str] = frozenset()

    def __init__(self, spark: SparkSession, ctx: shell.QueryContext):
        self.publisher = Publisher(ctx.settings.kafka_bootstrap, self.name, ctx.topic)
        super().__init__(spark, ctx)

    def hosted_by(self, host: str | None) -> None:
        """Alone, the query keeps its state in its own checkpoint; hosted, in the host's."""
        super().hosted_by(host)
        directory = (Path(self.ctx.checkpoint(self.name)) / "driver_state" if host is None
                     else Path(self.ctx.checkpoint(host)) / "driver_state" / self.name)
        self.state = DriverState(directory, self.initial_state)

    # ---- hooks -----------------------------------------------------------------------

    @property
    def sources(self) -> list[shell.EventSource]:
        raise NotImplementedError

    def initial_state(self) -> dict:
        raise NotImplementedError

    def step(self, state: dict, rows: Rows, batch_id: int) -> Outputs:
        raise NotImplementedError

    # ---- one micro-batch -------------------------------------------------------------

    def run_batch(self, spark: SparkSession, rows: Rows, batch_id: int) -> None:
        state = self.state.before(batch_id)
        outputs = self.step(state, new_ticks(state, rows), batch_id)
        tables = sorted(outputs.rows.items())
        for table, records in tables:
            if table in self.tables_first:
                self.merge(table, records, batch_id)
        self.publish(outputs.messages)
        for table, records in tables:
            if table not in self.tables_first:
                self.merge(table, records, batch_id)
        self.state.save(batch_id, state)
        if outputs:
            log.info("%s batch %d: %d messages, %s", self.name, batch_id,
                     len(outputs.messages),
                     ", ".join(f"{len(r)} rows to {t}" for t, r in outputs.rows.items()) or
                     "no table rows")

    def publish(self, messages: list[tuple[str, dict]]) -> None:
        """To Kafka before anything but `tables_first` is committed: a crash in between replays
        the batch, which sends the same records (same ids) again (and skips the upserts the
        tables already hold)."""
        self.publisher.send(messages)

    def merge(self, table: str, records: list[dict], batch_id: int) -> None:
        """Upsert `records` (newest per key wins) into a Delta table, once per batch id."""
        record = DELTA_TABLES_BY_PATH[table].record
        newest = {tuple(r[k] for k in record.key): typed(record, r) for r in records}
        driver_writes.upsert(DeltaTable(self.ctx.table(table)), record, list(newest.values()),
                             f"{self.app_id}:{table}", batch_id)
