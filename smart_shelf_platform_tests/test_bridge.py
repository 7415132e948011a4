"""The Redis Streams buffer and the Redis→Kafka bridge, against real Redis and Kafka.

Every test works on a stream prefix and Kafka topics of its own, so none sees another's data. The
bridge's promises checked here: every entry reaches Kafka (by distinct event_id) whatever fails,
with its key, per-key order and bytes intact; duplicates only after a crash, and bounded; writers
held back, not dropped, when the bridge falls behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict

import pytest
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from producers.bridge import Bridge
from producers.streams import CONSUMER_GROUP, StreamWriter, stream_name
from smart_shelf_platform.settings import REPO_ROOT, get_settings
from smart_shelf_platform.stack.isolated import isolated_settings
from smart_shelf_platform.stack.components import Kafka

PARTITIONS = 3
MAX_IN_FLIGHT = 20_000  # of the bridge processes: bounds what a crash can make them send twice
pytestmark = pytest.mark.integration


# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------


def create_topic(bootstrap: str, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, PARTITIONS, 1)])[name].result(30)
    deadline = time.monotonic() + 10
    while name not in admin.list_topics(timeout=5).topics:  # metadata can trail creation
        assert time.monotonic() < deadline, f"topic {name} never appeared"
        time.sleep(0.1)


def delete_topics(bootstrap: str, names: list[str]) -> None:
    if names:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for future in admin.delete_topics(names).values():
            future.result(30)


def read_topic(bootstrap: str, topic: str) -> list[tuple[int, bytes | None, bytes | None]]:
    """(partition, key, value) of every message, in offset order per partition.

    Call it once the bridge has drained: it reads up to the high watermarks as they are now.
    """
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4().hex}",
                         "enable.auto.commit": False})
    try:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(PARTITIONS)}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends if ends[p]])
        messages, remaining = [], {p: end for p, end in ends.items() if end}
        deadline = time.monotonic() + 60
        while remaining:
            assert time.monotonic() < deadline, f"could not read {topic} up to {ends}"
            for msg in consumer.consume(10_000, 1.0):
                assert msg.error() is None, msg.error()
                messages.append((msg.partition(), msg.key(), msg.value()))
                if msg.offset() + 1 >= remaining.get(msg.partition(), 0):
                    remaining.pop(msg.partition(), None)
        return messages
    finally:
        consumer.close()


def event_ids(messages) -> Counter:
    return Counter(json.loads(value)["event_id"] for _, _, value in messages)


def event(n: int, key: str, seq: int) -> tuple[str, bytes, str]:
    event_id = f"e{n:07d}"
    return key, json.dumps({"event_id": event_id, "key": key, "seq": seq}).encode(), event_id


def wait_until(check, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout} s {what}"
        time.sleep(interval)


def backlog(client: redis.Redis, streams) -> int:
    return sum(client.xlen(s) for s in streams)


def own_pending(client: redis.Redis, stream: str) -> int:
    return client.xpending(stream, CONSUMER_GROUP)["pending"]


def run_in_thread(bridge: Bridge, **run_kwargs) -> threading.Thread:
    thread = threading.Thread(target=bridge.run, kwargs=run_kwargs, daemon=True)
    thread.start()
    return thread


# ------------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def topics(settings):
    """new_topic(label) creates a topic of 3 partitions on the test broker; all dropped after."""
    created: list[str] = []

    def new_topic(label: str) -> str:
        name = f"test_bridge_{label}_{uuid.uuid4().hex}"
        create_topic(settings.kafka_bootstrap, name)
        created.append(name)
        return name

    yield new_topic
    delete_topics(settings.kafka_bootstrap, created)


# ------------------------------------------------------------------------------------------------
# Tests
# ------------------------------------------------------------------------------------------------


def test_every_entry_reaches_kafka_once_with_key_and_per_key_order(settings, redis_conn, prefix,
                                                                   topics):
    shelf_topic, pos_topic = topics("shelf"), topics("pos")
    writer = StreamWriter(redis_conn, prefix, topics=("shelf_events", "pos_transactions"))
    seq: Counter = Counter()
    for n in range(30_000):
        topic = "shelf_events" if n % 3 else "pos_transactions"
        key = f"S001|SHELF{n % 97:04d}" if topic == "shelf_events" else f"S001|C{n % 13}"
        seq[key] += 1
        writer.add(topic, *event(n, key, seq[key]))
    writer.flush()
    streams = {stream_name("shelf_events", prefix): shelf_topic,
               stream_name("pos_transactions", prefix): pos_topic}

    stats = Bridge(settings, streams=streams, consumer_name="test").run(
        stop_when_idle=True, idle_seconds=0.5)

    assert (stats.read, stats.delivered, stats.acked, stats.failed) == (30_000,) * 3 + (0,)
    assert backlog(redis_conn, streams) == 0
    assert all(own_pending(redis_conn, s) == 0 for s in streams)
    for topic, expected in ((shelf_topic, 20_000), (pos_topic, 10_000)):
        messages = read_topic(settings.kafka_bootstrap, topic)
        ids = event_ids(messages)
        assert len(ids) == expected and set(ids.values()) == {1}  # each event exactly once
        partitions_of_key, seqs_of_key = defaultdict(set), defaultdict(list)
        for partition, key, value in messages:
            body = json.loads(value)
            assert key.decode() == body["key"]
            partitions_of_key[key].add(partition)
            seqs_of_key[key].append(body["seq"])
        assert all(len(p) == 1 for p in partitions_of_key.values())  # the key picks the partition
        assert all(s == list(range(1, len(s) + 1)) for s in seqs_of_key.values())  # in order


def test_values_are_forwarded_byte_for_byte_without_validation(settings, redis_conn, prefix,
                                                               topics):
    topic = topics("raw")
    stream = stream_name("shelf_events", prefix)
    values = [b"{not json", b"", b"\xff\xfe\x00 not even utf-8", "caf\u00e9 \u2603".encode(),
              b'{"event_id": "ok-1"}']
    with StreamWriter(redis_conn, prefix, topics=("shelf_events",)) as writer:
        for i, value in enumerate(values):
            writer.add("shelf_events", f"S001|SHELF{i:04d}", value, event_id="")
    redis_conn.xadd(stream, {"k": "S001|NO-VALUE", "id": "x"})  # no `v` at all: a null value

    Bridge(settings, streams={stream: topic}, consumer_name="test").run(stop_when_idle=True,
                                                                        idle_seconds=0.5)

    received = {key: value for _, key, value in read_topic(settings.kafka_bootstrap, topic)}
    assert received == {**{f"S001|SHELF{i:04d}".encode(): v for i, v in enumerate(values)},
                        b"S001|NO-VALUE": None}
    assert redis_conn.xlen(stream) == 0


def test_pending_entries_of_this_and_of_dead_consumers_are_resent_at_start(settings, redis_conn,
                                                                         prefix, topics):
    topic = topics("reclaim")
    stream = stream_name("shelf_events", prefix)
    with StreamWriter(redis_conn, prefix, topics=("shelf_events",)) as writer:
        for n in range(10):
            writer.add("shelf_events", *event(n, f"S001|SHELF{n:04d}", 1))
    redis_conn.xgroup_create(stream, CONSUMER_GROUP, id="0")
    # A bridge on another host read 4 entries and died; this one read 3 and died too, and one of
    # those 3 was deleted meanwhile (nothing left to send: it must just be acknowledged).
    redis_conn.xreadgroup(CONSUMER_GROUP, "dead-host", {stream: ">"}, count=4)
    mine = redis_conn.xreadgroup(CONSUMER_GROUP, "this-host", {stream: ">"}, count=3)
    redis_conn.xdel(stream, mine[0][1][0][0])

    stats = Bridge(settings, streams={stream: topic}, consumer_name="this-host",
                   reclaim_min_idle_s=0).run(stop_when_idle=True, idle_seconds=0.5)

    # With no idle threshold, XAUTOCLAIM takes this consumer's own live entries too (4 + 2).
    assert (stats.claimed_idle, stats.resent_at_start, stats.read) == (6, 6, 3)
    ids = event_ids(read_topic(settings.kafka_bootstrap, topic))
    assert sorted(ids) == [f"e{n:07d}" for n in range(10) if n != 4]
    assert redis_conn.xlen(stream) == 0
    assert redis_conn.xpending(stream, CONSUMER_GROUP)["pending"] == 0


def test_an_entry_kafka_refuses_holds_back_what_follows_and_is_never_skipped(settings, redis_conn,
                                                                            prefix, topics):
    topic = topics("refused")
    stream = stream_name("shelf_events", prefix)
    with StreamWriter(redis_conn, prefix, topics=("shelf_events",)) as writer:
        for n in range(10):  # the sixth is larger than Kafka accepts (1 MB)
            key, value, event_id = event(n, "S001|SHELF0001", n)
            writer.add("shelf_events", key, value + b" " * 2_000_000 if n == 5 else value,
                       event_id)
    bridge = Bridge(settings, streams={stream: topic}, consumer_name="test",
                    retry_backoff_s=0.2)
    forwarding = run_in_thread(bridge)
    try:
        wait_until(lambda: bridge.stats.acked >= 5 and bridge.stats.failed >= 2, 30,
                   "waiting for the refused entry to be retried")
    finally:
        bridge.request_stop()
        forwarding.join(timeout=30)
    assert sorted(event_ids(read_topic(settings.kafka_bootstrap, topic))) == \
        [f"e{n:07d}" for n in range(5)]  # those before it went; none after it overtook it
    assert redis_conn.xlen(stream) == 5 and own_pending(redis_conn, stream) == 5

    redis_conn.xdel(stream, redis_conn.xrange(stream, count=1)[0][0])  # an operator removes it
    stats = Bridge(settings, streams={stream: topic}, consumer_name="test").run(
        stop_when_idle=True, idle_seconds=0.5)
    assert stats.resent_at_start == 4
    messages = read_topic(settings.kafka_bootstrap, topic)
    assert [json.loads(v)["seq"] for _, _, v in messages] == [0, 1, 2, 3, 4, 6, 7, 8, 9]
    assert redis_conn.xlen(stream) == 0


def test_writer_waits_for_room_and_resumes_when_the_bridge_drains(settings, redis_conn, prefix,
                                                                  topics):
    topic = topics("pressure")
    stream = stream_name("shelf_events", prefix)
    writer = StreamWriter(redis_conn, prefix, max_depth=1_000, topics=("shelf_events",),
                          flush_every=100, poll_interval=0.02)

    def write_all():
        for n in range(3_000):
            writer.add("shelf_events", *event(n, f"S001|SHELF{n % 50:04d}", n))
        writer.flush()

    producer = threading.Thread(target=write_all, daemon=True)
    producer.start()
    producer.join(timeout=2.0)
    assert producer.is_alive(), "the writer should be blocked: nobody drains the stream"
    assert 1_000 <= redis_conn.xlen(stream) <= 1_100  # over max_depth by at most one batch
    assert not StreamWriter(redis_conn, prefix, max_depth=1_000,
                            topics=("shelf_events",)).wait_for_room(timeout=0.2)

    bridge = Bridge(settings, streams={stream: topic}, consumer_name="test")
    forwarding = run_in_thread(bridge)
    try:
        producer.join(timeout=30)
        assert not producer.is_alive(), "the writer never resumed"
        wait_until(lambda: redis_conn.xlen(stream) == 0, 30, "waiting for the bridge to drain")
    finally:
        bridge.request_stop()
        forwarding.join(timeout=30)
    ids = event_ids(read_topic(settings.kafka_bootstrap, topic))
    assert len(ids) == 3_000 and set(ids.values()) == {1}


def start_bridge_process(stream: str, topic: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "producers.bridge", "--stream", f"{stream}={topic}",
         "--consumer", "test-kill", "--max-in-flight", str(MAX_IN_FLIGHT)],
        cwd=REPO_ROOT, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)


def restart_until_forwarded(redis_conn, stream: str, topic: str) -> tuple[int, str, int]:
    """The bridge started again, stopped with SIGTERM once the stream is forwarded: its exit
    code, its output and how many entries left pending it re-sent at start."""
    bridge = start_bridge_process(stream, topic)
    try:
        wait_until(lambda: redis_conn.xlen(stream) == 0, 120, "waiting for the restarted bridge")
        bridge.send_signal(signal.SIGTERM)
        output, _ = bridge.communicate(timeout=30)
    finally:
        if bridge.poll() is None:
            bridge.kill()
    resent = int(re.search(r"re-sent (\d+) entries left pending", output).group(1))
    return bridge.returncode, output, resent


def test_sigkill_mid_stream_loses_nothing_and_sigterm_stops_cleanly(settings, redis_conn, prefix,
                                                                    topics):
    total = 200_000
    topic = topics("kill")
    stream = stream_name("shelf_events", prefix)
    written = 0

    def write_all():
        nonlocal written
        writer = StreamWriter(redis_conn, prefix, topics=("shelf_events",))
        for n in range(total):
            writer.add("shelf_events", *event(n, f"S001|SHELF{n % 1142:04d}", n))
            written = n + 1
        writer.flush()

    first = start_bridge_process(stream, topic)
    try:
        wait_until(lambda: redis_conn.exists(stream), 30, "waiting for the bridge to start")
        producer = threading.Thread(target=write_all, daemon=True)
        producer.start()
        # Kill it once it has forwarded a good part, with more in flight and more coming.
        wait_until(lambda: written - redis_conn.xlen(stream) >= 40_000, 60,
                   "waiting for the bridge to forward 40,000 entries", interval=0.005)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed_at = written - redis_conn.xlen(stream)
        producer.join(timeout=120)
        assert not producer.is_alive()
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate()
    assert killed_at < total, "the bridge was killed after the end: nothing was mid-stream"

    returncode, output, resent = restart_until_forwarded(redis_conn, stream, topic)
    assert returncode == 0, output
    assert "stopped after" in output

    ids = event_ids(read_topic(settings.kafka_bootstrap, topic))
    duplicates = sum(ids.values()) - len(ids)
    assert len(ids) == total, f"lost {total - len(ids)} events ({duplicates} duplicates)"
    assert duplicates <= resent <= MAX_IN_FLIGHT, \
        f"{duplicates} duplicates, {resent} re-sent: more than the in-flight window"
    assert own_pending(redis_conn, stream) == 0


@pytest.fixture
def private_kafka(settings):
    """A Kafka broker of this test's own (ports +400), which it may stop without hurting others."""
    # From fresh settings: model_copy() (inside isolated_settings) keeps an already computed
    # cached_property, so a used `settings` would hand the shared broker's kafka_bootstrap on.
    isolated = isolated_settings(get_settings(), "bridge-outage", 400)
    assert isolated.kafka_bootstrap.endswith(f":{settings.kafka_port + 400}")
    shutil.rmtree(isolated.home, ignore_errors=True)
    broker = Kafka(isolated)
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(isolated.home, ignore_errors=True)


def test_kafka_away_for_30_s_delays_but_loses_nothing(settings, redis_conn, prefix,
                                                      private_kafka):
    bootstrap = private_kafka.s.kafka_bootstrap
    topic = f"test_bridge_outage_{uuid.uuid4().hex}"
    create_topic(bootstrap, topic)
    stream = stream_name("shelf_events", prefix)
    written = 0
    writing = threading.Event()
    writing.set()

    def write_steadily():  # ~1,000 events/s, as a small store would
        nonlocal written
        writer = StreamWriter(redis_conn, prefix, topics=("shelf_events",), flush_every=50)
        while writing.is_set():
            for _ in range(50):
                writer.add("shelf_events", *event(written, f"S001|SHELF{written % 1142:04d}",
                                                  written))
                written += 1
            writer.flush()
            time.sleep(0.05)

    # A short delivery timeout, so the outage also exercises failed deliveries and their re-send.
    bridge = Bridge(redis_client=redis_conn, kafka_bootstrap=bootstrap, streams={stream: topic},
                    consumer_name="test", delivery_timeout_s=8, retry_backoff_s=0.5)
    forwarding = run_in_thread(bridge)
    producer = threading.Thread(target=write_steadily, daemon=True)
    producer.start()
    try:
        wait_until(lambda: bridge.stats.acked >= 2_000, 30, "waiting for the first deliveries")
        down_since = time.monotonic()
        private_kafka.stop()
        time.sleep(max(0.0, 30 - (time.monotonic() - down_since)))
        backlog_during_outage = redis_conn.xlen(stream)
        assert forwarding.is_alive(), "the bridge died while Kafka was away"
        private_kafka.start()
        time.sleep(2)
        writing.clear()
        producer.join(timeout=10)
        wait_until(lambda: redis_conn.xlen(stream) == 0, 90,
                   "waiting for the bridge to catch up after Kafka came back")
    finally:
        writing.clear()
        bridge.request_stop()
        forwarding.join(timeout=30)
    assert not forwarding.is_alive()
    assert backlog_during_outage > 10_000  # the writer kept writing; entries waited in Redis
    assert bridge.stats.failed > 0 and bridge.stats.retried > 0  # timed out, then re-sent

    ids = event_ids(read_topic(bootstrap, topic))
    assert len(ids) == written, f"lost {written - len(ids)} of {written} events"
    assert own_pending(redis_conn, stream) == 0
