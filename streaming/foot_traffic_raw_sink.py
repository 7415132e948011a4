"""Foot-traffic raw sink: Kafka `foot_traffic` to Delta `raw/foot_traffic`, rejects dead-lettered.

Each micro-batch: contract check (FOOT_TRAFFIC), dedupe by event_id within the watermark, the
future-timestamp check against the simulated clock, then dead letters and an idempotent append of
the valid rows (app id = the query name, version = the batch id), so a replayed batch adds nothing.

Run it alone with `python -m streaming.foot_traffic_raw_sink` (or spark-submit this file), or
with the others through `smart-shelf stream`.
"""

from __future__ import annotations

import sys

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import DataStreamWriter

from smart_shelf_platform.clock import RedisClock
from smart_shelf_platform.contracts.catalogue import DELTA_TABLES_BY_PATH
from smart_shelf_platform.contracts.events import FOOT_TRAFFIC
from smart_shelf_platform.settings import Settings
from smart_shelf_platform.stack.delta_tables import table_uri
from streaming import shell

NAME = "foot_traffic_raw_sink"
TOPIC = "foot_traffic"
RAW_TABLE = DELTA_TABLES_BY_PATH["raw/foot_traffic"]


def build(spark: SparkSession, settings: Settings, *, topic: str = TOPIC,
          raw_path: str | None = None, dead_letter_path: str | None = None,
          dead_letter_topic: str = shell.DEAD_LETTER_TOPIC, clock: RedisClock | None = None,
          max_offsets_per_trigger: int | None = None) -> DataStreamWriter:
    """The query's writer, without name, checkpoint or trigger (`shell.start_query` adds those).

    The keyword arguments exist so tests can point the query at their own topics and tables.
    """
    raw_path = raw_path or table_uri(settings.delta_root, RAW_TABLE)
    clock = clock or RedisClock.from_settings(settings)
    events = shell.deduplicate(shell.parse_events(
        shell.read_kafka(spark, settings, [topic], max_offsets_per_trigger=max_offsets_per_trigger),
        FOOT_TRAFFIC))

    def write_batch(batch_df: DataFrame, batch_id: int) -> None:
        batch = shell.future_timestamp_reason(batch_df, shell.read_sim_now(clock)).persist()
        try:
            shell.write_dead_letters(batch, batch_id, NAME, settings,
                                     table_path=dead_letter_path, topic=dead_letter_topic)
            valid = shell.valid_rows(batch, FOOT_TRAFFIC)
            # Empty batches also run (the watermark moves state eviction): no commit for those.
            if not valid.isEmpty():
                shell.append_idempotent(valid, raw_path, NAME, batch_id)
        finally:
            batch.unpersist()

    return events.writeStream.foreachBatch(write_batch)


QUERY = shell.StreamingQuerySpec(NAME, build)


def main() -> None:
    from streaming.runner import main as run_queries

    raise SystemExit(run_queries(["--query", NAME, *sys.argv[1:]]))


if __name__ == "__main__":
    main()
