"""Deduplication of what a query reads: a repeat of a record already seen is dropped however late
it comes, and a record with a reason is never merged with another.

The one stateful step between the contract checks and a query's handler, and what exactly-once
rests on: the keys are kept for good, with no watermark (`drop_repeated`; docs/architecture.md,
"How each holds", Duplicates). `with_dedup_key` decides what counts as a repeat; the query shell
(`shell.checked_events`) applies it to every source, by its `dedupe_fields`.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from streaming.contract_checks import REASON


def with_dedup_key(df: DataFrame, key_fields: Sequence[str]) -> DataFrame:
    """Add `_dedup_key`: the topic and the values of `key_fields` for valid rows (records of
    different topics are never repeats of each other, though `shelf_state` and `wh_state` share
    key fields), the Kafka position for rows with a reason, so two different malformed records
    are never merged (and a bad copy cannot hide the good event of the same id). No
    `key_fields`: every record is its own (the source's readers drop repeats themselves)."""
    position = F.concat_ws("|", F.lit("at"), "_source", "_partition", "_offset")
    if not key_fields:
        return df.withColumn("_dedup_key", position)
    complete = reduce(lambda a, b: a & b, (F.col(f).isNotNull() for f in key_fields))
    key = F.when(F.col(REASON).isNull() & complete,
                 F.concat_ws("|", F.lit("id"), "_source",
                             *(F.col(f).cast("string") for f in key_fields)))
    return df.withColumn("_dedup_key", key.otherwise(position))


def drop_repeated(df: DataFrame) -> DataFrame:
    """Drop rows whose `_dedup_key` was ever seen before, however long ago.

    Exactly-once must not depend on how late a copy comes (a bridge restarted after a long
    outage, a topic replayed, a producer retrying after a partition), so the keys are kept for
    good, in the RocksDB state store (`session.build_spark`): on disk, not in the JVM heap.
    No watermark either: Spark would drop rows older than it without a trace.
    """
    return df.dropDuplicates(["_dedup_key"]).drop("_dedup_key")


def deduplicate(df: DataFrame, key_fields: Sequence[str] = ("event_id",)) -> DataFrame:
    """Drop repeated events (same `key_fields`), however late they come."""
    return drop_repeated(with_dedup_key(df, key_fields))
