"""The Redis Streams buffer between the event producers and the Redis→Kafka bridge.

This module owns the one convention both sides share, so neither needs to know the other:

- one stream per event topic, named `<prefix><topic>` (`events:shelf_events`, ...);
- each entry has three fields: `k`, the Kafka message key; `v`, the value exactly as it must reach
  Kafka (the bridge never parses it, so an event broken on purpose arrives broken, byte for byte);
  `id`, the event_id (empty for events broken on purpose);
- the bridge reads through the consumer group `bridge` and deletes each entry once Kafka has
  confirmed it, so XLEN counts the entries not yet forwarded.

Writers never trim (no MAXLEN, no XTRIM): the reference system's producers trimmed at ~20,000
entries and so silently dropped whatever a lagging bridge had not forwarded. Here a writer waits
once that count passes `max_depth` instead (back-pressure): a slow
or stopped bridge slows the simulator down, and nothing is lost.
"""

from __future__ import annotations

import logging
import struct
import time

import redis

from smart_shelf_platform.contracts.catalogue import TOPICS_BY_NAME
from smart_shelf_platform.progress import POLL_SECONDS

log = logging.getLogger(__name__)

# Looked up in the contracts so that renaming a topic there breaks here, loudly, at import.
EVENT_TOPICS: tuple[str, ...] = tuple(
    TOPICS_BY_NAME[name].name
    for name in ("foot_traffic", "shelf_events", "pos_transactions", "wh_events"))
DEFAULT_PREFIX = "events:"
CONSUMER_GROUP = "bridge"
DEFAULT_MAX_DEPTH = 200_000
DEFAULT_FLUSH_EVERY = 1_000

KEY_FIELD = b"k"
VALUE_FIELD = b"v"
EVENT_ID_FIELD = b"id"


def stream_name(topic: str, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}{topic}"


def default_stream_topics(prefix: str = DEFAULT_PREFIX,
                          topics: tuple[str, ...] = EVENT_TOPICS) -> dict[str, str]:
    """{stream: Kafka topic} for the event topics: the mapping the bridge forwards by default."""
    return {stream_name(topic, prefix): topic for topic in topics}


def total_depth(client: redis.Redis, streams: list[str]) -> int:
    """Entries in `streams` that the bridge has not forwarded yet (it deletes what it forwards)."""
    pipe = client.pipeline(transaction=False)
    for stream in streams:
        pipe.xlen(stream)
    return sum(pipe.execute())


# XADDs a batch of entries and returns the backlog, in one round trip. The entries come packed in
# one argument (see StreamWriter.add): with a plain pipeline, redis-py spent ~8 us of Python per
# event packing XADD commands and parsing their replies, more than the rest of the path together;
# packed, it is ~0.7 us. Still one plain XADD per event (no MAXLEN), so readers see no difference.
ADD_SCRIPT = """
local blob, pos, stop = ARGV[1], 1, #ARGV[1]
while pos <= stop do
  local stream, key_len, value_len, id_len
  stream, key_len, value_len, id_len, pos = struct.unpack('>BIII', blob, pos)
  local key = string.sub(blob, pos, pos + key_len - 1)
  pos = pos + key_len
  local value = string.sub(blob, pos, pos + value_len - 1)
  pos = pos + value_len
  local event_id = string.sub(blob, pos, pos + id_len - 1)
  pos = pos + id_len
  redis.call('XADD', KEYS[stream], '*', ARGV[2], key, ARGV[3], value, ARGV[4], event_id)
end
local depth = 0
for _, stream in ipairs(KEYS) do
  depth = depth + redis.call('XLEN', stream)
end
return depth
"""
ENTRY_HEADER = struct.Struct(">BIII")  # stream number (1-based), then the lengths of k, v, id


def _utf8(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode()


class StreamWriter:
    """Append events to the per-topic streams, in batches, with back-pressure.

    `add()` buffers; every `flush_every` entries (and on `flush()`) the batch goes to Redis in one
    round trip, which also returns the depth; while the last depth seen is above `max_depth`, the
    next flush first waits for room. So `max_depth` is a soft bound: each writer can overshoot it
    by at most one batch. A flush that fails keeps its batch, so calling flush() again retries it
    (entries stored before the failure are then stored twice; consumers dedupe by event_id).
    Not thread-safe: one writer per thread.
    """

    def __init__(self, client: redis.Redis, prefix: str = DEFAULT_PREFIX,
                 max_depth: int = DEFAULT_MAX_DEPTH, *, topics: tuple[str, ...] = EVENT_TOPICS,
                 flush_every: int = DEFAULT_FLUSH_EVERY, poll_interval: float = 0.05):
        if len(topics) > 255:
            raise ValueError("at most 255 topics per writer")  # the stream number is one byte
        self.max_depth = max_depth
        self.flush_every = flush_every
        self.poll_interval = poll_interval
        self._client = client
        self._add_script = client.register_script(ADD_SCRIPT)
        self._streams = {topic: stream_name(topic, prefix) for topic in topics}
        self._stream_number = {topic: n for n, topic in enumerate(topics, start=1)}
        self._batch: list[bytes] = []
        self._buffered = 0
        self._depth = 0  # as of the last batch or poll: saves flush() a round trip

    @property
    def streams(self) -> list[str]:
        return list(self._streams.values())

    def add(self, topic: str, key: str, value: bytes | str, event_id: str = "") -> None:
        """Buffer one event; flushes (and so may wait for room) once `flush_every` are buffered."""
        try:
            number = self._stream_number[topic]
        except KeyError:
            raise ValueError(f"{topic!r} is not one of this writer's topics "
                             f"{sorted(self._streams)}") from None
        key, value, event_id = _utf8(key), _utf8(value), _utf8(event_id)
        self._batch += (ENTRY_HEADER.pack(number, len(key), len(value), len(event_id)),
                        key, value, event_id)
        self._buffered += 1
        if self._buffered >= self.flush_every:
            self.flush()

    def flush(self) -> int:
        """Send the buffered events once there is room; returns how many were sent."""
        if not self._buffered:
            return 0
        if self._depth > self.max_depth:
            self.wait_for_room()
        self._depth = self._add_script(
            keys=self.streams,
            args=[b"".join(self._batch), KEY_FIELD, VALUE_FIELD, EVENT_ID_FIELD])
        sent, self._buffered = self._buffered, 0
        self._batch.clear()
        return sent

    def depth(self) -> int:
        """Entries not yet forwarded by the bridge, read now."""
        self._depth = total_depth(self._client, self.streams)
        return self._depth

    def wait_until_forwarded(self, timeout: float = 600) -> None:
        """Block until the bridge has forwarded every entry (the streams are empty)."""
        deadline = time.monotonic() + timeout
        while self.depth():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self._depth} entries still wait for the bridge after "
                                   f"{timeout:.0f} s: is it running?")
            time.sleep(POLL_SECONDS)

    def wait_for_room(self, timeout: float | None = None) -> bool:
        """Block while more than `max_depth` entries wait for the bridge.

        Returns False if `timeout` seconds pass first (so a caller can check its own stop flag and
        call again); True once there is room.
        """
        if self.depth() <= self.max_depth:
            return True
        log.info("back-pressure: %d entries wait for the bridge (max %d); pausing the writer",
                 self._depth, self.max_depth)
        began = time.monotonic()
        while True:
            if timeout is not None and time.monotonic() - began >= timeout:
                return False
            time.sleep(self.poll_interval)
            if self.depth() <= self.max_depth:
                break
        log.info("back-pressure released after %.1f s (%d entries waiting)",
                 time.monotonic() - began, self._depth)
        return True

    def __enter__(self) -> StreamWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.flush()
