"""The Redis→Kafka bridge: forwards every entry of the event streams to its Kafka topic, at least
once and in stream order, and deletes it from Redis only once Kafka has confirmed it.

It owns the consumer group `bridge` on the event streams (see `producers.streams` for the entry
convention) and is the only process that acknowledges or deletes their entries; how it reads and
acknowledges them in Redis (two Lua scripts and the decoding of their replies) is
`producers.bridge_redis`.

How it stays correct when things fail:
- Kafka confirms first, Redis forgets second. An entry is XACKed and XDELed (together, in one
  script) only after its delivery report succeeded; until then it stays in this consumer's
  pending list (PEL) in Redis. The PEL is the retry queue: a failed delivery, a crash or a SIGKILL
  all end with the pending entries read again from ID 0 and re-sent, in order.
- Order: entries of one stream are produced in stream order, the key `k` picks the partition, and
  the idempotent producer keeps that order through its own retries. When a delivery does fail
  (Kafka away for longer than `delivery_timeout`), everything still queued behind it is purged and
  the whole PEL is re-sent from the oldest entry, so a later event never overtakes an earlier one.
  An entry Kafka refuses outright (larger than it accepts) is therefore retried, not skipped: it
  holds the bridge back, with an error logged, until an operator deletes it from the stream.
- Duplicates: a crash after Kafka has an entry and before its XACK sends it again on restart. That
  is the at-least-once price (consumers dedupe by event_id); the start-up log counts the re-sent
  entries, and `max_in_flight` bounds them.
- Kafka down: librdkafka reconnects by itself; the bridge stops reading once `max_in_flight` entries
  wait, retries what times out, and carries on when Kafka is back. Writers meanwhile feel the
  back-pressure of the growing streams.
- Dead consumers: entries left pending by another consumer name (a bridge that died on another
  host) for longer than `reclaim_min_idle` are claimed with XAUTOCLAIM at start-up.
- Redis away: the bridge exits with the error once redis-py's retries are spent; restarted, it
  re-sends whatever was pending. Nothing is lost either way.

Run one bridge per set of streams: two at once would interleave entries of one stream.

Unlike the reference system's bridge, which sent one message at a time, retried pending entries
only when the stream was idle and lost what its producers had trimmed, sends are asynchronous and
batched, pending entries are retried at once, and nothing is ever trimmed unforwarded.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
import time
from dataclasses import asdict, dataclass
from functools import partial

import redis
from confluent_kafka import KafkaError, KafkaException, Producer

from producers.bridge_redis import (
    ACK_SCRIPT, READ_SCRIPT, Entry, bridge_redis_client, decode_entries, entries_from_reply,
)
from producers.streams import (
    CONSUMER_GROUP, DEFAULT_PREFIX, KEY_FIELD, VALUE_FIELD, default_stream_topics, total_depth,
)
from smart_shelf_platform.settings import Settings, get_settings

# Named, not __name__: under `python -m producers.bridge` that would be "__main__".
log = logging.getLogger("producers.bridge")
kafka_log = logging.getLogger("producers.bridge.kafka")

READ_COUNT = 5_000  # entries per stream per XREADGROUP
READ_BLOCK_MS = 100  # short, so stop requests and delivery reports are served promptly
MAX_IN_FLIGHT = 20_000  # entries read and not yet acknowledged; bounds re-sends after a crash
ACK_BATCH = 5_000
ACK_INTERVAL_S = 0.05
RECLAIM_MIN_IDLE_S = 30.0
DELIVERY_TIMEOUT_S = 300.0
RETRY_BACKOFF_S = 1.0
STOP_FLUSH_TIMEOUT_S = 10.0
PROGRESS_INTERVAL_S = 10.0
PENDING_CHECK_INTERVAL_S = 5.0
ERROR_LOG_INTERVAL_S = 30.0


@dataclass
class BridgeStats:
    resent_at_start: int = 0  # pending entries found at start-up and sent again
    claimed_idle: int = 0  # pending entries idle past reclaim_min_idle, taken over (XAUTOCLAIM)
    read: int = 0  # new entries read
    delivered: int = 0  # delivery reports that succeeded (re-sends included)
    acked: int = 0  # entries acknowledged and deleted from Redis
    failed: int = 0  # deliveries Kafka refused or timed out; every one is retried
    retried: int = 0  # entries sent again after a failure
    seconds: float = 0.0


def producer_config(bootstrap: str, delivery_timeout_s: float, client_id: str) -> dict:
    return {
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        # Idempotence: librdkafka's own retries neither duplicate nor reorder within a partition.
        "enable.idempotence": True,
        "acks": "all",
        # The Java client's partitioner, so a key lands on the same partition whoever writes it
        # (the Spark jobs also write shelf_events), and per-shelf order holds across writers.
        "partitioner": "murmur2_random",
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "batch.num.messages": 10_000,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 1_000_000,
        "message.timeout.ms": int(delivery_timeout_s * 1000),
        # Critical only: connection errors repeat at every reconnect attempt while Kafka is away;
        # they reach error_cb, which logs them now and then.
        "log_level": 2,
        "logger": kafka_log,
    }


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


class Bridge:
    """Forward Redis stream entries to Kafka (see the module docstring for the guarantees)."""

    def __init__(self, settings: Settings | None = None, *, redis_client: redis.Redis | None = None,
                 kafka_bootstrap: str | None = None, streams: dict[str, str] | None = None,
                 consumer_name: str | None = None, read_count: int = READ_COUNT,
                 max_in_flight: int = MAX_IN_FLIGHT,
                 reclaim_min_idle_s: float = RECLAIM_MIN_IDLE_S,
                 delivery_timeout_s: float = DELIVERY_TIMEOUT_S,
                 retry_backoff_s: float = RETRY_BACKOFF_S,
                 progress_interval_s: float = PROGRESS_INTERVAL_S):
        if redis_client is None or kafka_bootstrap is None:
            if settings is None:
                raise ValueError("give settings, or both redis_client and kafka_bootstrap")
            redis_client = redis_client or bridge_redis_client(settings)
            kafka_bootstrap = kafka_bootstrap or settings.kafka_bootstrap
        if redis_client.connection_pool.connection_kwargs.get("decode_responses"):
            raise ValueError("the bridge needs a Redis client with decode_responses=False: values "
                             "are forwarded byte for byte")
        self.stream_topics = dict(streams or default_stream_topics())
        self.consumer = consumer_name or socket.gethostname()
        self.stats = BridgeStats()
        self._redis = redis_client
        self._read_script = redis_client.register_script(READ_SCRIPT)
        self._ack_script = redis_client.register_script(ACK_SCRIPT)
        self._bootstrap = kafka_bootstrap
        self._topic_of = {_as_bytes(s): t for s, t in self.stream_topics.items()}
        self._read_count = read_count
        self._max_in_flight = max_in_flight
        self._reclaim_min_idle_ms = int(reclaim_min_idle_s * 1000)
        self._delivery_timeout_s = delivery_timeout_s
        self._retry_backoff_s = retry_backoff_s
        self._progress_interval_s = progress_interval_s
        self._producer = self._new_producer()
        self._in_flight = 0  # produced, delivery report not yet served
        self._delivered: dict[bytes, list[bytes]] = {s: [] for s in self._topic_of}
        self._to_ack = 0  # delivered, not yet acknowledged in Redis
        self._last_ack = 0.0
        self._must_resend = False  # re-send this consumer's pending entries before reading on
        self._delivery_failed = False  # queued entries must not overtake the failed one's re-send
        self._fatal: KafkaError | None = None
        self._last_error_log: dict[int, float] = {}
        self._stop = False  # a plain flag: set from signal handlers, where locks can deadlock

    # -- lifecycle ---------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop soon: deliver what is queued, acknowledge it, return from run() (signal-safe)."""
        self._stop = True

    def run(self, stop_when_idle: bool = False, idle_seconds: float = 2.0) -> BridgeStats:
        """Forward until request_stop() (or, with `stop_when_idle`, until nothing has been left
        to forward for `idle_seconds`); returns the counters."""
        began = time.monotonic()
        log.info("bridge %s starting: %s; Kafka %s", self.consumer,
                 ", ".join(f"{s} -> {t}" for s, t in self.stream_topics.items()), self._bootstrap)
        self._ensure_groups()
        self._resend_pending_at_start()
        idle_since = next_pending_check = time.monotonic()
        progress = _Progress(self.stats, time.monotonic(), self._progress_interval_s)
        while not self._stop:
            if self._must_resend:
                self._resend_after_failure()
                continue
            moved = self._forward_new_entries()
            self._producer.poll(0 if moved or not self._in_flight else 0.01)
            self._ack_if_due()
            now = time.monotonic()
            if now >= progress.due:
                progress.log(now, self._depth(), self._in_flight + self._to_ack)
            if moved or self._in_flight or self._to_ack:
                idle_since = now
            elif stop_when_idle and now - idle_since >= idle_seconds:
                if not self._own_pending():
                    break
                self._must_resend = True
            elif now >= next_pending_check:
                # Pending entries of ours that are not in flight: an XREADGROUP whose reply was
                # lost with a Redis connection. Re-send them now rather than at the next start.
                next_pending_check = now + PENDING_CHECK_INTERVAL_S
                self._must_resend = self._own_pending() > 0
        self._shutdown()
        self.stats.seconds = round(time.monotonic() - began, 3)
        log.info("bridge %s stopped after %.1f s: %s", self.consumer, self.stats.seconds,
                 ", ".join(f"{k} {v}" for k, v in asdict(self.stats).items() if k != "seconds"))
        return self.stats

    def _ensure_groups(self) -> None:
        for stream in self.stream_topics:
            try:
                # ID 0: a stream written before any bridge ran is forwarded from its first entry.
                self._redis.xgroup_create(stream, CONSUMER_GROUP, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def _shutdown(self) -> None:
        undelivered = self._producer.flush(STOP_FLUSH_TIMEOUT_S)
        self._ack_delivered()
        if undelivered:
            log.warning("%d entries not confirmed by Kafka stay pending in Redis; the next start "
                        "sends them again", undelivered)
            self._producer.purge()
            self._producer.poll(0)

    # -- Kafka -------------------------------------------------------------------------------

    def _new_producer(self) -> Producer:
        config = producer_config(self._bootstrap, self._delivery_timeout_s,
                                 f"bridge-{self.consumer}")
        return Producer({**config, "error_cb": self._on_kafka_error})

    def _on_kafka_error(self, err: KafkaError) -> None:
        if err.fatal():
            # Fatal for this producer instance (idempotence state lost): build a new one.
            log.error("Kafka producer fatal error, recreating the producer: %s", err)
            self._fatal = err
            self._must_resend = True
            return
        # Kafka being away repeats the same error at every reconnect attempt: log it now and then.
        self._log_rarely(err.code(), logging.WARNING, "Kafka: %s (retrying; %d entries in flight)",
                         err, self._in_flight)

    def _on_delivery(self, stream: bytes, entry_id: bytes, err: KafkaError | None, _msg) -> None:
        self._in_flight -= 1
        if err is None:
            self._delivered[stream].append(entry_id)
            self._to_ack += 1
            self.stats.delivered += 1
            return
        if err.code() != KafkaError._PURGE_QUEUE:  # purges are ours, the start of a re-send
            self.stats.failed += 1
            self._delivery_failed = True
            self._log_rarely(err.code(), logging.WARNING, "delivery to Kafka failed (%s); the "
                             "entry stays pending and is sent again", err)
        self._must_resend = True

    def _log_rarely(self, code: int, level: int, message: str, *args) -> None:
        """Log at most once per ERROR_LOG_INTERVAL_S per error code: retries repeat errors."""
        now = time.monotonic()
        if now - self._last_error_log.get(code, float("-inf")) >= ERROR_LOG_INTERVAL_S:
            self._last_error_log[code] = now
            log.log(level, message, *args)

    def _produce(self, stream: bytes, entries: list[Entry]) -> int:
        """Produce entries of one stream in order; returns how many went to the producer. On a stop
        request or a failure it stops early: the rest stay pending, for the next re-send."""
        topic = self._topic_of[stream]
        on_delivery = self._on_delivery
        produced = 0
        for entry_id, alive, key, value in entries:
            if not alive:
                # Deleted while pending (never by this bridge: it XACKs and XDELs atomically).
                self._delivered[stream].append(entry_id)
                self._to_ack += 1
            elif self._produce_one(topic, value, key, partial(on_delivery, stream, entry_id)):
                produced += 1
            else:
                break
        return produced

    def _produce_one(self, topic: str, value: bytes | None, key: bytes | None,
                     on_delivery) -> bool:
        while True:
            try:
                self._producer.produce(topic, value, key, on_delivery=on_delivery)
                self._in_flight += 1
                return True
            except BufferError:
                # librdkafka's queue is full (Kafka slow or away): serve delivery reports, retry.
                self._producer.poll(0.1)
                if self._stop or self._must_resend:
                    return False
            except KafkaException as exc:
                # E.g. larger than Kafka accepts: retried like any failure, so such an entry holds
                # the bridge back until an operator deals with it (order forbids skipping it).
                self._log_rarely(exc.args[0].code(), logging.ERROR, "Kafka refused an entry for "
                                 "%s (%s); it stays pending and is sent again", topic, exc)
                self.stats.failed += 1
                self._must_resend = True
                return False

    # -- Redis -------------------------------------------------------------------------------

    def _read(self, stream: str, after: str, count: int) -> list[Entry]:
        """Up to `count` entries of `stream`: new ones (after=">") or this consumer's pending ones
        with an ID above `after`."""
        return decode_entries(self._read_script(
            keys=[stream], args=[CONSUMER_GROUP, self.consumer, count, after, KEY_FIELD,
                                 VALUE_FIELD]))

    def _forward_new_entries(self) -> int:
        """Read new entries of every stream and produce them; returns how many were read."""
        unacked = self._in_flight + self._to_ack
        room = self._max_in_flight - unacked
        if room <= 0:
            return 0
        read = 0
        for stream in self.stream_topics:
            entries = self._read(stream, ">", min(self._read_count, room - read))
            read += len(entries)
            self._produce(_as_bytes(stream), entries)
            if self._stop or self._must_resend or read >= room:
                break  # what was read and not produced stays pending: re-sent in order later
        if not read and not unacked:
            read = self._wait_for_entries()
        self.stats.read += read
        return read

    def _wait_for_entries(self) -> int:
        """Block briefly until an entry arrives; produce what that read returned."""
        # COUNT 1: this reply goes through redis-py's slow parser; the bulk follows via READ_SCRIPT.
        reply = self._redis.xreadgroup(CONSUMER_GROUP, self.consumer,
                                       {s: ">" for s in self.stream_topics}, count=1,
                                       block=READ_BLOCK_MS)
        read = 0
        for stream, entries in entries_from_reply(reply):
            read += len(entries)
            self._produce(stream, entries)
        return read

    def _ack_if_due(self) -> None:
        if self._to_ack >= ACK_BATCH or (
                self._to_ack and time.monotonic() - self._last_ack >= ACK_INTERVAL_S):
            self._ack_delivered()

    def _ack_delivered(self) -> None:
        self._last_ack = time.monotonic()
        if not self._to_ack:
            return
        for stream, ids in self._delivered.items():
            if ids:
                self._ack_script(keys=[stream], args=[CONSUMER_GROUP, b" ".join(ids)])
                ids.clear()
        self.stats.acked += self._to_ack
        self._to_ack = 0

    def _resend_own_pending(self) -> int:
        """Produce this consumer's pending entries again, each stream from its oldest entry."""
        sent = 0
        for stream in self.stream_topics:
            after = "0"
            while not self._stop:
                entries = self._read(stream, after, self._read_count)
                if not entries:
                    break
                sent += self._produce(_as_bytes(stream), entries)
                if self._must_resend:
                    return sent  # failed again: the next round starts over from the oldest
                after = entries[-1][0]
                self._producer.poll(0)
                self._ack_if_due()
        return sent

    def _claim_from_dead_consumers(self) -> int:
        claimed = 0
        for stream in self.stream_topics:
            cursor = "0-0"
            while True:
                cursor, entries, *_ = self._redis.xautoclaim(
                    stream, CONSUMER_GROUP, self.consumer, self._reclaim_min_idle_ms, cursor,
                    count=self._read_count)
                claimed += len(entries)
                if _as_bytes(cursor) == b"0-0":
                    break
        return claimed

    def _resend_pending_at_start(self) -> None:
        claimed = self._claim_from_dead_consumers()
        resent = self._resend_own_pending()
        self.stats.claimed_idle, self.stats.resent_at_start = claimed, resent
        if resent:
            log.warning("re-sent %d entries left pending by an earlier run (%d of them idle for "
                        "%.0f s or more, taken over from whichever consumer had them): those Kafka "
                        "already had are duplicates, consumers drop them by event_id", resent,
                        claimed, self._reclaim_min_idle_ms / 1000)
        else:
            log.info("no pending entries to re-send")

    def _resend_after_failure(self) -> None:
        """Re-send, in stream order, every pending entry Kafka has not confirmed."""
        if self._delivery_failed or self._fatal is not None:
            # Entries queued behind a failed one would overtake its re-send: cancel them too.
            # (After a refused produce() nothing is queued behind it, and what is queued before
            # it must be let through, or a poison entry would hold back the ones before it too.)
            self._producer.purge(in_queue=True, in_flight=self._fatal is not None)
            self._delivery_failed = False
        while self._in_flight and not self._stop:
            self._producer.poll(0.1)
        self._ack_delivered()
        if self._fatal is not None:
            self._producer = self._new_producer()
            self._fatal = None
        self._sleep(self._retry_backoff_s)
        if self._stop:
            return
        self._must_resend = False
        resent = self._resend_own_pending()
        self.stats.retried += resent
        if resent:
            log.info("re-sent %d pending entries, oldest first", resent)

    def _own_pending(self) -> int:
        mine = _as_bytes(self.consumer)
        pipe = self._redis.pipeline(transaction=False)
        for stream in self.stream_topics:
            pipe.xpending(stream, CONSUMER_GROUP)
        return sum(c["pending"] for summary in pipe.execute() for c in summary["consumers"]
                   if _as_bytes(c["name"]) == mine)

    def _depth(self) -> int:
        return total_depth(self._redis, list(self.stream_topics))

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stop and time.monotonic() < deadline:
            self._producer.poll(min(0.1, max(0.0, deadline - time.monotonic())))


class _Progress:
    """The periodic throughput line."""

    def __init__(self, stats: BridgeStats, now: float, interval: float):
        self.stats, self.interval = stats, interval
        self.due, self._since, self._delivered = now + interval, now, stats.delivered

    def log(self, now: float, depth: int, unacked: int) -> None:
        delivered = self.stats.delivered - self._delivered
        log.info("forwarded %d entries in %.1f s (%.0f/s); %d in the streams, %d of them read and "
                 "awaiting Kafka", delivered, now - self._since, delivered / (now - self._since),
                 depth, unacked)
        self.due, self._since, self._delivered = now + self.interval, now, self.stats.delivered


# ------------------------------------------------------------------------------------------------
# Command line: python -m producers.bridge
# ------------------------------------------------------------------------------------------------


def _stream_mapping(text: str) -> tuple[str, str]:
    stream, sep, topic = text.rpartition("=")
    if not sep or not stream or not topic:
        raise argparse.ArgumentTypeError(f"expected STREAM=TOPIC, got {text!r}")
    return stream, topic


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m producers.bridge",
        description="Forward the event streams in Redis to Kafka (at least once, in order). "
                    "Redis and Kafka come from the SMART_SHELF_* settings.")
    parser.add_argument("--prefix", default=DEFAULT_PREFIX,
                        help="stream name prefix of the default mapping (default %(default)s)")
    parser.add_argument("--stream", action="append", type=_stream_mapping, metavar="STREAM=TOPIC",
                        help="forward STREAM to TOPIC (repeatable); replaces the default "
                             "mapping <prefix><topic> -> <topic> of the event topics")
    parser.add_argument("--consumer", help="consumer name in the group (default: host name)")
    parser.add_argument("--max-in-flight", type=int, default=MAX_IN_FLIGHT)
    parser.add_argument("--read-count", type=int, default=READ_COUNT)
    parser.add_argument("--delivery-timeout", type=float, default=DELIVERY_TIMEOUT_S,
                        help="seconds before an undelivered entry is re-sent (default %(default)s)")
    parser.add_argument("--reclaim-min-idle", type=float, default=RECLAIM_MIN_IDLE_S,
                        help="claim other consumers' entries pending this long, in seconds")
    parser.add_argument("--stop-when-idle", type=float, metavar="SECONDS",
                        help="exit once nothing was left to forward for SECONDS")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    bridge = Bridge(get_settings(),
                    streams=dict(args.stream) if args.stream else default_stream_topics(
                        args.prefix),
                    consumer_name=args.consumer, read_count=args.read_count,
                    max_in_flight=args.max_in_flight, reclaim_min_idle_s=args.reclaim_min_idle,
                    delivery_timeout_s=args.delivery_timeout)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda _signum, _frame: bridge.request_stop())
    bridge.run(stop_when_idle=args.stop_when_idle is not None,
               idle_seconds=args.stop_when_idle or 0.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
