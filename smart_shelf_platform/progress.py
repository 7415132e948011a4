"""How far the streaming queries have read their topics, so others can wait for them.

The streaming application records, after every micro-batch of every query, the Kafka offsets the
query has consumed up to (`streaming.progress.ProgressReporter`), in one Redis hash next to the
simulated clock's keys (`<clock prefix>progress`). Anyone can then ask "has every query read
everything its topics hold now?" — the simulator at the end of a run (so it carries out every
refill, delivery and removal the platform decided before it stops), tests and benchmarks.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable

import redis
from confluent_kafka import Consumer, TopicPartition

Offsets = dict[str, dict[int, int]]  # topic -> partition -> next offset to read
STALE_SECONDS = 900
# How often a waiter looks again: a simulator meeting the platform at every decision round
# waits here a few times per round, and each look is one Redis read.
POLL_SECONDS = 0.1


def progress_key(clock_prefix: str) -> str:
    return f"{clock_prefix}progress"


def record_progress(client: redis.Redis, clock_prefix: str, query: str, offsets: Offsets) -> None:
    client.hset(progress_key(clock_prefix), query, json.dumps(
        {"offsets": {t: {str(p): o for p, o in parts.items()} for t, parts in offsets.items()},
         "at": time.time()}))


def forget_progress(client: redis.Redis, clock_prefix: str, query: str) -> None:
    client.hdel(progress_key(clock_prefix), query)


def read_progress(client: redis.Redis, clock_prefix: str) -> dict[str, Offsets]:
    """query -> the offsets it has read up to, for the queries that are running: a stopped
    query forgets its entry, and one that has not reported for `STALE_SECONDS` (a running query
    reports after every batch and every 5 s otherwise) was killed."""
    out = {}
    for query, raw in client.hgetall(progress_key(clock_prefix)).items():
        entry = json.loads(raw)
        if time.time() - entry["at"] > STALE_SECONDS:
            continue
        out[query.decode() if isinstance(query, bytes) else query] = {
            t: {int(p): o for p, o in parts.items()} for t, parts in entry["offsets"].items()}
    return out


def end_offsets(bootstrap: str, topics: Iterable[str]) -> Offsets:
    """The next offset to be written in every partition of `topics`."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"progress-{uuid.uuid4()}",
                         "enable.auto.commit": False, "log_level": 3})
    try:
        out: Offsets = {}
        for topic in topics:
            partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            out[topic] = {p: consumer.get_watermark_offsets(TopicPartition(topic, p),
                                                            timeout=10)[1]
                          for p in partitions}
        return out
    finally:
        consumer.close()


def lagging(progress: dict[str, Offsets], ends: Offsets) -> dict[str, int]:
    """query -> records it has still to read of what `ends` says its topics hold (>0 only)."""
    behind = {}
    for query, offsets in progress.items():
        missing = sum(max(0, end - offsets.get(topic, {}).get(partition, 0))
                      for topic in offsets for partition, end in ends.get(topic, {}).items())
        if missing:
            behind[query] = missing
    return behind


def wait_until_read(client: redis.Redis, clock_prefix: str, bootstrap: str, *,
                    queries: Iterable[str] = (), timeout: float = 600,
                    progress: Callable[[str], None] | None = None) -> None:
    """Block until every query has read what its topics hold now (once every query named in
    `queries` has reported at all); TimeoutError names the laggards."""
    expected = set(queries)
    deadline = time.monotonic() + timeout
    ends: Offsets | None = None
    last_note = 0.0
    while True:
        reported = read_progress(client, clock_prefix)
        silent = expected - set(reported)
        if ends is None and not silent:
            ends = end_offsets(bootstrap, {t for offsets in reported.values() for t in offsets})
        behind = {q: -1 for q in silent} | (lagging(reported, ends) if ends is not None else {})
        if not behind:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"streaming queries still behind after {timeout:.0f} s: "
                               + ", ".join(f"{q} ({n:,} records)" if n >= 0 else f"{q} (silent)"
                                           for q, n in sorted(behind.items())))
        if progress is not None and time.monotonic() - last_note > 10:
            last_note = time.monotonic()
            progress("waiting for the streaming queries: " + ", ".join(
                f"{q} {n:,}" if n >= 0 else f"{q} (not started)"
                for q, n in sorted(behind.items())))
        time.sleep(POLL_SECONDS)


def wait_until_quiet(client: redis.Redis, clock_prefix: str, bootstrap: str, *,
                     unsent: Callable[[], int], timeout: float = 600,
                     progress: Callable[[str], None] | None = None) -> int:
    """Block until the platform is quiet: nothing `unsent` waits to reach Kafka, every query
    has read its topics, and reading them produced nothing new (no topic grew meanwhile).
    Returns the rounds it took (0: no streaming query is running, nothing to wait for)."""
    if not read_progress(client, clock_prefix):
        return 0
    deadline = time.monotonic() + timeout
    rounds = 0
    while True:
        rounds += 1
        while unsent():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{unsent()} events still unsent after {timeout:.0f} s")
            time.sleep(POLL_SECONDS)
        topics = {t for offsets in read_progress(client, clock_prefix).values() for t in offsets}
        before = end_offsets(bootstrap, topics)
        wait_until_read(client, clock_prefix, bootstrap,
                        timeout=max(1.0, deadline - time.monotonic()), progress=progress)
        if end_offsets(bootstrap, topics) == before and not unsent():
            return rounds
