"""Publish every query's consumed Kafka offsets after each micro-batch
(`smart_shelf_platform.progress` explains who waits on them)."""

from __future__ import annotations

import json
import logging

import redis
from pyspark.sql.streaming import StreamingQueryListener, StreamingQueryManager
from pyspark.sql.streaming.listener import SourceProgress

from smart_shelf_platform.progress import Offsets, record_progress

log = logging.getLogger(__name__)


def kafka_offsets(sources) -> Offsets:
    """Offsets read so far from a progress event's Kafka sources ({"topic": {"0": 12}})."""
    offsets: Offsets = {}
    for source in sources:
        if not source.description.startswith("Kafka") or not source.endOffset:
            continue
        end = json.loads(source.endOffset) if isinstance(source.endOffset, str) \
            else source.endOffset
        for topic, parts in end.items():
            offsets.setdefault(topic, {}).update({int(p): int(o) for p, o in parts.items()})
    return offsets


class ProgressListener(StreamingQueryListener):
    """Records after every micro-batch, and every ~10 s while a query is idle (Spark 4 sends
    idle events instead of empty progress): idle means it has read all there is."""

    def __init__(self, client: redis.Redis, clock_prefix: str, queries: StreamingQueryManager):
        self.client = client
        self.clock_prefix = clock_prefix
        self.queries = queries
        self.names: dict[str, str] = {}  # query id -> name (idle events carry none)

    def onQueryStarted(self, event) -> None:
        self.names[str(event.id)] = event.name

    def onQueryProgress(self, event) -> None:
        self._record(event.progress.name, event.progress.sources)

    def onQueryIdle(self, event) -> None:
        query = self.queries.get(str(event.id))
        last = query.lastProgress if query is not None else None
        name = self.names.get(str(event.id))
        if name is not None:
            self._record(name, [SourceProgress.fromJson(s) for s in last["sources"]]
                         if last else [])

    def _record(self, name: str, sources) -> None:
        try:
            record_progress(self.client, self.clock_prefix, name, kafka_offsets(sources))
        except redis.RedisError as exc:  # progress is advisory: never fail a query over it
            log.warning("progress of %s not recorded: %s", name, exc)

    def onQueryTerminated(self, event) -> None:
        pass  # the runner forgets its queries' entries when it stops (events may come late)
