"""Publish every query's consumed Kafka offsets after each micro-batch
(`smart_shelf_platform.progress` explains who waits on them).

Polled from the runner's watch loop (`lastProgress` and `status`, one JSON each) rather than
heard through a Python `StreamingQueryListener`: the listener converts every progress event
field by field over py4j, which took about a quarter of the driver's Python time.
"""

from __future__ import annotations

import json
import logging
import time

import redis
from pyspark.sql.streaming import StreamingQuery

from smart_shelf_platform.progress import Offsets, record_progress

log = logging.getLogger(__name__)
# What Spark's status says once a trigger has found nothing new to read.
IDLE = "Waiting for data to arrive"


def kafka_offsets(sources: list[dict]) -> Offsets:
    """Offsets read so far from a progress report's Kafka sources ({"topic": {"0": 12}})."""
    offsets: Offsets = {}
    for source in sources:
        end = source.get("endOffset")
        if not source.get("description", "").startswith("Kafka") or not end:
            continue
        end = json.loads(end) if isinstance(end, str) else end
        for topic, parts in end.items():
            offsets.setdefault(topic, {}).update({int(p): int(o) for p, o in parts.items()})
    return offsets


class ProgressReporter:
    """Records a query's offsets after each new batch, and every `refresh_seconds` otherwise
    (an entry that is not refreshed for `STALE_SECONDS` counts as a killed query). A query that
    has run no batch yet reports (no offsets) once it waits for data: it has read all there is."""

    def __init__(self, client: redis.Redis, clock_prefix: str, refresh_seconds: float = 5):
        self.client = client
        self.clock_prefix = clock_prefix
        self.refresh_seconds = refresh_seconds
        self.reported: dict[str, tuple[int | None, float]] = {}  # name -> (batch id, when)

    def report(self, queries: list[StreamingQuery]) -> None:
        for query in queries:
            if query.isActive:
                self._report(query)

    def _report(self, query: StreamingQuery) -> None:
        last = query.lastProgress
        if last is None and query.status["message"] != IDLE:
            return  # starting, or its first batch is on its way
        batch = last["batchId"] if last else None
        previous = self.reported.get(query.name)
        now = time.monotonic()
        if previous and previous[0] == batch and now - previous[1] < self.refresh_seconds:
            return
        try:
            record_progress(self.client, self.clock_prefix, query.name,
                            kafka_offsets(last["sources"]) if last else {})
            self.reported[query.name] = (batch, now)
        except redis.RedisError as exc:  # progress is advisory: never fail a query over it
            log.warning("progress of %s not recorded: %s", query.name, exc)
