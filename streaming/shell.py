"""The shell every streaming query shares: read Kafka, check contracts, dedupe, write idempotently.

A query is `event_query`: `read_kafka` -> `parse_events` (`contract_checks`) -> `drop_repeated`
(`dedupe`) -> `foreachBatch` (the batch checked against the simulated clock, `clock_checks`, and
the stores' shelves, `contract_checks.unknown_shelf_reason`; dead letters via
`write_dead_letters`, valid rows to the query's handler, which appends (`append_idempotent`) or
upserts (`driver_writes`) from the driver, metrics via `MetricsLog`, where the batch's time went
via `StageTimer`), started by
`StreamingQuerySpec.start`. Only this module and `driver_writes` know about Kafka options,
checkpoints and Delta write options; the transforms (`contract_checks`, `clock_checks`,
`dedupe`) are pure DataFrame -> DataFrame functions that work on a static frame with Kafka's
columns, so tests call them on tiny frames.

Rows with a reason (`contract_checks.REASON`) go to `raw/dead_letter` and the `dead_letter` topic;
the query keeps running.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import reduce
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import DataStreamWriter, StreamingQuery

from smart_shelf_platform.clock import RedisClock
from smart_shelf_platform.contracts.catalogue import DELTA_TABLES_BY_PATH, TOPICS_BY_NAME
from smart_shelf_platform.contracts.types import Record
from smart_shelf_platform.settings import Settings
from smart_shelf_platform.stack.delta_tables import table_uri
from streaming import driver_writes
from streaming.clock_checks import clock_bounds_reason, read_clock_bounds
from streaming.contract_checks import (
    REASON, named_shelves, parse_events, shelf_columns, unknown_shelf_reason, unknown_shelves,
    valid_rows,
)
from streaming.dedupe import drop_repeated, with_dedup_key

log = logging.getLogger(__name__)

# Dead-letter ids are uuid5(DEAD_LETTER_NAMESPACE, "source|partition|offset"): the same Kafka record
# always gets the same id, so a replayed batch republishes the same ids and consumers dedupe.
DEAD_LETTER_NAMESPACE = uuid.UUID("6b0c4f0e-3f6a-5a8e-9c1d-7d2f1e0a9b44")
DEAD_LETTER_TOPIC = TOPICS_BY_NAME["dead_letter"].name
DEAD_LETTER_TABLE = DELTA_TABLES_BY_PATH["raw/dead_letter"]

# ------------------------------------------------------------------------------------------------
# Where a query reads and writes
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryContext:
    """Everything a query needs besides Spark: settings, its tables, topics and the clock.

    Topic names get `topic_prefix` and tables live under `delta_root`, so a test runs a query
    against topics and tables of its own without touching the platform's.
    """

    settings: Settings
    delta_root: str
    clock: RedisClock
    topic_prefix: str = ""
    max_offsets_per_trigger: int | None = None
    checkpoint_root: str | None = None
    metrics_dir: str | None = None  # where each query appends its per-batch metrics

    @classmethod
    def from_settings(cls, settings: Settings, **overrides) -> QueryContext:
        values = {"delta_root": settings.delta_root, "clock": RedisClock.from_settings(settings),
                  "metrics_dir": str(settings.home / "logs" / "streaming"), **overrides}
        return cls(settings=settings, **values)

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def table(self, path: str) -> str:
        """URI of the catalogue's Delta table `layer/name`."""
        return table_uri(self.delta_root, DELTA_TABLES_BY_PATH[path])

    def checkpoint(self, query_name: str) -> str:
        root = self.checkpoint_root or f"{self.delta_root.rstrip('/')}/_checkpoints"
        return f"{root.rstrip('/')}/{query_name}"


# ------------------------------------------------------------------------------------------------
# Read
# ------------------------------------------------------------------------------------------------

# A task reading the newest records of a partition waited out the consumer's fetch.max.wait.ms
# (500 ms by default) although the records were there: half a second per partition with new
# data, most of a live micro-batch (`bench stream`; 1.2 s -> 0.16 s for three partitions). The
# source only asks for offsets it knows exist, so a short wait costs nothing.
FETCH_MAX_WAIT_MS = 10


def read_kafka(spark: SparkSession, settings: Settings, topics: list[str], *,
               starting_offsets: str = "earliest", max_offsets_per_trigger: int | None = None,
               fail_on_data_loss: bool = True) -> DataFrame:
    """Streaming Kafka rows: key, value, topic, partition, offset, timestamp (+ timestampType).

    `failOnDataLoss` stays true: offsets that vanished (retention ran past a stopped query, a topic
    re-created) are lost events, and a query must stop rather than skip them silently. Pass false
    only for a query whose output is rebuilt from elsewhere, and say so where it is passed.
    """
    reader = (spark.readStream.format("kafka")
              .option("kafka.bootstrap.servers", settings.kafka_bootstrap)
              .option("subscribe", ",".join(topics))
              .option("startingOffsets", starting_offsets)
              .option("failOnDataLoss", str(fail_on_data_loss).lower())
              .option("kafka.fetch.max.wait.ms", str(FETCH_MAX_WAIT_MS)))
    if max_offsets_per_trigger is not None:
        reader = reader.option("maxOffsetsPerTrigger", str(max_offsets_per_trigger))
    return reader.load()


# ------------------------------------------------------------------------------------------------
# Write
# ------------------------------------------------------------------------------------------------


def append_idempotent(df: DataFrame, ctx: QueryContext, path: str, app_id: str,
                      batch_id: int) -> None:
    """Append the frame's rows to the catalogue's Delta table `path` (`layer/name`) once per
    (app_id, batch_id): a replayed batch writes nothing.

    The rows come to the driver in one Spark job and delta-rs commits them
    (`driver_writes.append_rows`, the same transaction ids Spark's `txnAppId` writes): Spark's
    own append of a live batch's few rows cost about a second of a `state` batch each (write
    job, Delta commit, log checkpoints), three of them per batch (`bench stream`'s stages).
    """
    table = DeltaTable(ctx.table(path))
    if driver_writes.applied(table, app_id, batch_id):
        return
    schema = DELTA_TABLES_BY_PATH[path].record.arrow_schema()
    rows = df.select(*schema.names).toArrow()
    if rows.num_rows:
        driver_writes.append_rows(table, rows.cast(schema), app_id, batch_id)


def dead_letter_rows(df: DataFrame, detected_by: str | Column) -> DataFrame:
    """Rows with a reason, as DEAD_LETTER records (pure); `detected_by` names the query."""
    name = F.concat_ws("|", "_source", "_partition", "_offset")
    return df.where(F.col(REASON).isNotNull()).select(
        uuid5(DEAD_LETTER_NAMESPACE, name).alias("event_id"),
        F.get_json_object("_payload", "$.store_id").alias("store_id"),
        F.col("_source").alias("source"),
        F.col("_partition").cast("int").alias("source_partition"),
        F.col("_offset").cast("long").alias("source_offset"),
        (F.lit(detected_by) if isinstance(detected_by, str) else detected_by)
        .alias("detected_by"),
        F.col(REASON).alias("reason"),
        F.coalesce("_payload", F.lit("")).alias("payload"),  # a null value (a tombstone): ""
        F.col("_kafka_ts").alias("received_at"),
    )


def uuid5(namespace: uuid.UUID, name: Column) -> Column:
    """`uuid.uuid5(namespace, name)` as a Spark expression (RFC 4122: SHA-1, version, variant)."""
    digest = F.sha1(F.concat(F.unhex(F.lit(namespace.hex)), name.cast("binary")))
    variant = F.lower(F.hex(F.conv(F.substring(digest, 17, 1), 16, 10).cast("int")
                            .bitwiseAND(3).bitwiseOR(8)))
    return F.concat_ws(
        "-", F.substring(digest, 1, 8), F.substring(digest, 9, 4),
        F.concat(F.lit("5"), F.substring(digest, 14, 3)),
        F.concat(variant, F.substring(digest, 18, 3)), F.substring(digest, 21, 12))


def write_dead_letters(batch_df: DataFrame, batch_id: int, query_name: str,
                       ctx: QueryContext, detected_by: Column) -> None:
    """Send the batch's rows with a reason to the dead-letter topic and table, each named as
    found by `detected_by`.

    Kafka first, Delta second: a crash in between replays the batch, which publishes the same
    deterministic ids again (the topic is at-least-once, consumers dedupe by event_id) while the
    Delta append, keyed by (f"{query_name}/dead_letter", batch_id), happens exactly once.
    """
    dead = dead_letter_rows(batch_df, detected_by)
    publish_json(dead, ctx.settings, ctx.topic(DEAD_LETTER_TOPIC), key=F.col("source"))
    append_idempotent(dead, ctx, DEAD_LETTER_TABLE.path, f"{query_name}/dead_letter", batch_id)


def publish_json(df: DataFrame, settings: Settings, topic: str, *, key: Column) -> None:
    """Write each row as a JSON object to a Kafka topic with the given message key."""
    (df.select(key.cast("string").alias("key"), F.to_json(F.struct(*df.columns)).alias("value"))
     .write.format("kafka")
     .option("kafka.bootstrap.servers", settings.kafka_bootstrap)
     .option("topic", topic)
     .save())


# ------------------------------------------------------------------------------------------------
# The event-query skeleton
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldIn:
    """A prefilter: a top-level string field (or its characters `chars`, 0-based [start, end))
    is one of `values`. Spark checks it on the raw Kafka value, a cheap scan before any
    contract check; `accepts` checks the same on a parsed record (a hosted driver query, whose
    topic is read once for several queries)."""

    name: str
    values: tuple[str, ...]
    chars: tuple[int, int] | None = None

    def sql(self) -> str:
        text = f"get_json_object(CAST(value AS STRING), '$.{self.name}')"
        if self.chars is not None:
            start, end = self.chars
            text = f"substr({text}, {start + 1}, {end - start})"
        return f"{text} IN ({', '.join(repr(v) for v in self.values)})"

    def accepts(self, record: dict) -> bool:
        value = record.get(self.name)
        if value is None:
            return False
        text = str(value)
        return (text[slice(*self.chars)] if self.chars else text) in self.values

    def column(self) -> Column:
        """The same on a parsed frame (times as UTC text: "HH:MM" sits where it does in ISO)."""
        text = F.col(self.name).cast("string")
        if self.chars is not None:
            start, end = self.chars
            text = F.substring(text, start + 1, end - start)
        return text.isin(*self.values)


@dataclass(frozen=True)
class AnyOf:
    """Prefilter of a topic read once for several queries: what any of them wants."""

    filters: tuple[FieldIn, ...]

    def sql(self) -> str:
        return " OR ".join(f"({f.sql()})" for f in self.filters)

    def accepts(self, record: dict) -> bool:
        return any(f.accepts(record) for f in self.filters)

    def column(self) -> Column:
        return reduce(lambda a, b: a | b, (f.column() for f in self.filters))


def any_of(filters: Sequence[FieldIn | AnyOf]) -> FieldIn | AnyOf:
    """One prefilter for what any of `filters` wants (the filter itself when they agree)."""
    unique = tuple(dict.fromkeys(filters))
    return unique[0] if len(unique) == 1 else AnyOf(unique)


def json_field_in(name: str, values: Sequence[str]) -> FieldIn:
    """Prefilter: a top-level string field of the raw value is one of `values`."""
    return FieldIn(name, tuple(values))


@dataclass(frozen=True)
class EventSource:
    """An input topic and the contract its messages must honour.

    One query per topic reports its bad records (`dead_letters`); others that also read the
    topic skip them, so each bad record is dead-lettered once.
    """

    topic: str
    record: Record
    dead_letters: bool = True
    dedupe_on: tuple[str, ...] | None = None  # default: event_id, or key + version for state
    # A query that only wants a few records of a busy topic skips the rest before the costly
    # checks (`json_field_in`). Readers that report dead letters must see everything, so only
    # the others may filter.
    prefilter: FieldIn | AnyOf | None = None
    # Events of stores and shelves the platform does not have (the reference data) go to the
    # dead letters.
    checks_shelves: bool = False
    # A check that needs the platform's tables: (batch, context, the topic's name) -> the batch
    # with reasons added (`provenance.provenance_reason`). Every reader applies it, so no query
    # acts on a record the reporting one refused.
    verify: Callable[[DataFrame, QueryContext, list[str]], DataFrame] | None = None

    @property
    def dedupe_fields(self) -> tuple[str, ...]:
        if self.dedupe_on is not None:
            return self.dedupe_on
        names = self.record.field_names
        if "event_id" in names:
            return ("event_id",)
        return self.record.key + (("version",) if "version" in names else ())


ValidRows = dict[str, DataFrame]  # topic -> the batch's valid, deduplicated rows of that topic


class StageTimer:
    """Where a micro-batch's time goes: `lap(stage)` adds the time since the last lap to
    `stage` (milliseconds), so the stages add up to the batch's time in the handler."""

    def __init__(self) -> None:
        self.ms: dict[str, int] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.ms[stage] = self.ms.get(stage, 0) + round((now - self._last) * 1000)
        self._last = now


# (the batch's valid rows, its id, the batch's stage timer, which the handler laps per step)
BatchHandler = Callable[[ValidRows, int, StageTimer], None]


def checked_events(spark: SparkSession, ctx: QueryContext,
                   sources: Sequence[EventSource]) -> DataFrame:
    """The sources' messages, contract-checked, in one stream without repeats (`dedupe_on`).

    Records with different contracts share one frame (`unionByName`, missing columns null), so a
    query that folds two topics into one table has one checkpoint and one micro-batch per step.
    """
    frames = []
    for source in sources:
        raw = read_kafka(spark, ctx.settings, [ctx.topic(source.topic)],
                         max_offsets_per_trigger=ctx.max_offsets_per_trigger)
        if source.prefilter is not None:
            raw = raw.where(F.expr(source.prefilter.sql()))
        frames.append(with_dedup_key(parse_events(raw, source.record), source.dedupe_fields))
    union = reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), frames)
    return drop_repeated(union)


def event_query(spark: SparkSession, ctx: QueryContext, name: str,
                sources: Sequence[EventSource], handle: BatchHandler, *,
                known_shelves: DataFrame | None = None,
                reporters: dict[str, str] | None = None) -> DataStreamWriter:
    """read -> check -> dedupe -> per micro-batch: dead letters, then `handle(valid rows, id)`.

    In the batch, events stamped in the future of the simulated clock and (with `known_shelves`,
    in the sources that check shelves) events of shelves the store does not have join the dead
    letters, named as found by `reporters[topic]` (a hosted query) or else by `name`. `handle`
    is called only when the batch holds valid rows; it must write idempotently per batch id (a
    batch replays after a crash). Every batch leaves a line of metrics (`MetricsLog`).
    """
    events = checked_events(spark, ctx, sources)
    shelves = ({(r.store_id, r.shelf_id) for r in known_shelves.collect()}
               if known_shelves is not None else set())
    metrics = MetricsLog(ctx, name)
    shelf_checked = [ctx.topic(s.topic) for s in sources if s.checks_shelves]
    verified = [s for s in sources if s.verify is not None]
    detected_by = F.coalesce(*(F.when(F.col("_source") == ctx.topic(t), F.lit(q))
                               for t, q in (reporters or {}).items()), F.lit(name))

    def counted(frame: DataFrame, *extra: Column) -> tuple[dict, pa.Table]:
        """The batch's counts (`MetricsLog.batch_stats`) and the columns they came from, with
        `extra` ones, in one Spark job."""
        rows = frame.select(*metrics.stat_columns(sources), *extra).toArrow()
        return metrics.batch_stats(rows, sources), rows

    def write_batch(batch_df: DataFrame, batch_id: int) -> None:
        started = datetime.now().timestamp()  # before the batch is read from Kafka
        stages = StageTimer()
        # Computed once, before any check: `batch_df` recomputes its whole lineage each time
        # it is used, and the shelf check uses it twice (the records, their receipt lines). The
        # second run loaded the dedupe state again, at the version this batch had committed
        # over: RocksDB then rebuilt it from its checkpoint, every micro-batch.
        read = materialized(batch_df)
        stages.lap("read")
        batch = clock_bounds_reason(read, read_clock_bounds(ctx.clock),
                                    timedelta(hours=ctx.settings.event_lateness_hours))
        checks_shelves = known_shelves is not None and bool(shelf_checked)
        try:
            # One job brings the counts' columns and the shelves the batch names: the joins
            # that flag unknown ones (and a second copy of the batch) only for a batch that
            # names one the stores do not have, and then the counts again.
            stats, rows = counted(batch, *(shelf_columns(batch) if checks_shelves else []))
            stages.lap("stats")
            if checks_shelves and unknown_shelves(named_shelves(rows, shelf_checked), shelves):
                flagged = materialized(unknown_shelf_reason(batch, known_shelves, shelf_checked))
                release(read)
                read = batch = flagged
                stats, _ = counted(batch)
                stages.lap("checks")
            refused = False
            for source in verified:  # a Spark job each: only when the topic has valid rows
                if not stats[f"valid:{source.topic}"]:
                    continue
                checked = source.verify(batch, ctx, [ctx.topic(source.topic)])
                if checked is not batch:
                    checked = materialized(checked)
                    release(read)
                    read = batch = checked
                    refused = True
                stages.lap(f"verify:{source.topic}")
            if refused:  # counted again with the refused rows among the dead
                stats, _ = counted(batch)
                stages.lap("stats")
            if stats["dead"]:
                reported = [ctx.topic(s.topic) for s in sources if s.dead_letters]
                write_dead_letters(batch.where(F.col("_source").isin(reported)), batch_id, name,
                                   ctx, detected_by)
                log.warning("%s batch %d: %d record(s) sent to the dead letters", name,
                            batch_id, stats["dead"])
                stages.lap("dead_letters")
            # A batch whose rows were all filtered out or repeated still comes here: no commit.
            valid = {s.topic: valid_rows(batch.where(F.col("_source") == ctx.topic(s.topic)),
                                         s.record)
                     for s in sources if stats[f"valid:{s.topic}"]}
            if valid:
                handle(valid, batch_id, stages)
            metrics.record(batch_id, stats, started, stages.ms)
        finally:
            release(read)  # the batch's one materialized copy (`batch` is read or derives from it)

    return events.writeStream.foreachBatch(write_batch)


def materialized(df: DataFrame) -> DataFrame:
    """`df` computed once and kept, as a frame whose plan is a single leaf.

    A micro-batch's plan (every topic's read, contract checks, dedupe) is large, and every
    frame derived from a persisted copy of it still carries it: each later Spark job analysed,
    optimised and matched that whole tree against the cache again. From a local checkpoint,
    later jobs plan a leaf.
    """
    return df.localCheckpoint(eager=True)


def release(df: DataFrame) -> None:
    """Drop a `materialized` frame's blocks now rather than whenever the JVM collects it."""
    df._jdf.queryExecution().analyzed().rdd().unpersist(False)


ARRIVAL_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class MetricsLog:
    """Per micro-batch: valid and dead-lettered rows, late events, and latency from each
    record's arrival in Kafka to the end of the batch (its outputs visible), as JSON lines in
    `<metrics_dir>/<query>.jsonl` and a log line.

    Late = a valid event stamped earlier than the newest event time the query saw of its topic in
    an earlier batch (it arrived after a newer one); tracked per process, so the first batch
    after a restart counts none.
    """

    def __init__(self, ctx: QueryContext, name: str):
        self.name = name
        self.ctx = ctx
        self.path = Path(ctx.metrics_dir) / f"{name}.jsonl" if ctx.metrics_dir else None
        self.newest_event: dict[str, datetime] = {}  # per topic

    @staticmethod
    def stat_columns(sources: Sequence[EventSource]) -> list[Column]:
        """The narrow columns `batch_stats` counts from, brought to the driver in one Spark job
        (an aggregate in Spark was two stages and a shuffle, about as long as reading the
        batch)."""
        columns = [F.col("_source"), F.col(REASON).isNull().alias("ok"),
                   F.unix_millis("_kafka_ts").alias("arrival")]
        if any("timestamp" in s.record.field_names for s in sources):
            columns.append(F.unix_micros("timestamp").alias("event_us"))
        return columns

    def batch_stats(self, rows: pa.Table, sources: Sequence[EventSource]) -> dict:
        """Every count the batch needs, from its `stat_columns`. Late: against the batches
        `record`ed before it."""
        timed = [s.topic for s in sources if "timestamp" in s.record.field_names]
        source = rows["_source"].to_numpy(zero_copy_only=False)
        arrival = rows["arrival"].to_numpy(zero_copy_only=False)
        valid = rows["ok"].to_numpy(zero_copy_only=False).astype(bool)
        reported = [self.ctx.topic(s.topic) for s in sources if s.dead_letters]
        stats = {"dead": int((~valid & np.isin(source, reported)).sum()),
                 "valid": int(valid.sum()),
                 "oldest_arrival_ms": int(arrival[valid].min()) if valid.any() else None,
                 "arrivals": _quantiles(arrival[valid])}
        for src in sources:
            topic = src.topic
            mine = valid & (source == self.ctx.topic(topic))
            stats[f"valid:{topic}"] = int(mine.sum())
            stats[f"arrivals:{topic}"] = _quantiles(arrival[mine])
            if topic in timed:  # late within its own topic: topics are read at their own pace
                events = rows["event_us"].filter(pa.array(mine))
                newest = pc.max(events).as_py()
                stats[f"newest:{topic}"] = (None if newest is None
                                            else EPOCH + timedelta(microseconds=newest))
                before = self.newest_event.get(topic)
                stats[f"late:{topic}"] = 0 if before is None else int(pc.sum(pc.less(
                    events, (before - EPOCH) // timedelta(microseconds=1))).as_py() or 0)
        stats["late"] = sum(stats[f"late:{t}"] for t in timed)
        return stats

    def record(self, batch_id: int, stats: dict, started_at: float,
               stages_ms: dict[str, int] | None = None) -> None:
        """`started_at`: when the batch reached the query (a timestamp), before it was read;
        `stages_ms`: where its time went (`StageTimer`). Later batches count their events
        older than this one's newest as late."""
        for topic in (k.removeprefix("newest:") for k in stats if k.startswith("newest:")):
            newest = stats[f"newest:{topic}"]  # UTC, from `batch_stats`
            if newest is not None:
                self.newest_event[topic] = max(newest, self.newest_event.get(topic, newest))
        done_ms = datetime.now().timestamp() * 1000
        latency = _latency(stats.get("arrivals"), done_ms)
        if stats["oldest_arrival_ms"] is not None:
            latency["max"] = round(done_ms - stats["oldest_arrival_ms"])
        topics = [k.removeprefix("valid:") for k in stats if k.startswith("valid:")]
        line = {"query": self.name, "batch": batch_id, "started_at": started_at,
                "finished_at": done_ms / 1000, "valid": stats["valid"], "dead": stats["dead"],
                "late": stats.get("late", 0), "latency_ms": latency,
                "valid_by_topic": {t: stats[f"valid:{t}"] for t in topics},
                "latency_ms_by_topic": {t: _latency(stats[f"arrivals:{t}"], done_ms)
                                        for t in topics if stats[f"valid:{t}"]},
                "stages_ms": stages_ms or {}}
        if stats["valid"]:
            log.info("%s batch %d: %d valid, %d dead, %d late, latency p50 %s ms p95 %s ms",
                     self.name, batch_id, line["valid"], line["dead"], line["late"],
                     latency.get("p50"), latency.get("p95"))
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as out:
                out.write(json.dumps(line) + "\n")


def _quantiles(arrivals) -> list[int] | None:
    """`ARRIVAL_QUANTILES` of arrival times (ms), each an arrival of the batch; None if none."""
    if not len(arrivals):
        return None
    return [int(v) for v in np.quantile(arrivals, ARRIVAL_QUANTILES, method="inverted_cdf")]


def _latency(arrivals: list | None, done_ms: float) -> dict[str, int]:
    """Latency quantiles from arrival-time quantiles: the latest arrivals have the shortest
    latency, so quantile q of arrival time is quantile 1 - q of latency."""
    return {f"p{round(100 * (1 - q))}": round(done_ms - t)
            for q, t in zip(ARRIVAL_QUANTILES, arrivals or []) if t is not None}


# ------------------------------------------------------------------------------------------------
# Run
# ------------------------------------------------------------------------------------------------

Build = Callable[[SparkSession, QueryContext], DataStreamWriter]


@dataclass(frozen=True)
class StreamingQuerySpec:
    """A named query and the function that builds its writer; the runner adds the rest."""

    name: str
    build: Build
    description: str = field(default="", compare=False)
    # Trigger interval = the runner's interval x `pace`. Every micro-batch costs a few Spark jobs
    # and Delta commits whatever its size, so queries nobody waits on run less often and leave
    # the cores to the state queries.
    pace: float = 1.0
    # A query a host can run (a `host.Member` class): the runner starts those it starts
    # together in its hosts (`runner.HOSTS`, `host.QueryHost`).
    member: Callable | None = field(default=None, compare=False)
    hosts: tuple[str, ...] = ()  # the queries a host runs (their names)

    def start(self, spark: SparkSession, ctx: QueryContext, *, trigger_seconds: float = 2,
              available_now: bool = False) -> StreamingQuery:
        """Start with its name and checkpoint; `available_now` drains the backlog and stops."""
        writer = (self.build(spark, ctx).queryName(self.name)
                  .option("checkpointLocation", ctx.checkpoint(self.name)))
        if available_now:
            writer = writer.trigger(availableNow=True)
        else:
            writer = writer.trigger(processingTime=f"{trigger_seconds * self.pace} seconds")
        return writer.start()


def run_alone(name: str) -> None:
    """`python -m streaming.<query>` (or spark-submit of the file): the runner with one query."""
    import sys

    from streaming.runner import main

    raise SystemExit(main(["--query", name, *sys.argv[1:]]))
