"""Publish every query's consumed Kafka offsets after each micro-batch
(`smart_shelf_platform.progress` explains who waits on them)."""

from __future__ import annotations

import json
import logging

import redis
from pyspark.sql.streaming import StreamingQueryListener

from smart_shelf_platform.progress import Offsets, forget_progress, record_progress

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
    def __init__(self, client: redis.Redis, clock_prefix: str):
        self.client = client
        self.clock_prefix = clock_prefix
        self.names: dict[str, str] = {}  # query id -> name (termination events carry no name)

    def onQueryStarted(self, event) -> None:
        self.names[str(event.id)] = event.name

    def onQueryProgress(self, event) -> None:
        progress = event.progress
        try:
            record_progress(self.client, self.clock_prefix, progress.name,
                            kafka_offsets(progress.sources))
        except redis.RedisError as exc:  # progress is advisory: never fail a query over it
            log.warning("progress of %s not recorded: %s", progress.name, exc)

    def onQueryIdle(self, event) -> None:
        pass

    def onQueryTerminated(self, event) -> None:
        name = self.names.pop(str(event.id), None)
        if name is not None:
            try:
                forget_progress(self.client, self.clock_prefix, name)
            except redis.RedisError as exc:
                log.warning("progress of %s not forgotten: %s", name, exc)
