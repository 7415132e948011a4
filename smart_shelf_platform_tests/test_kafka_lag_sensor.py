"""The consumer-group lag sensor: lag arithmetic on plain offsets, then a real topic and group on
the test stack's Kafka."""

from __future__ import annotations

import json
import uuid

import dagster as dg
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from smart_shelf_platform.defs.kafka.sensors import (
    build_kafka_lag_sensor, changed_topics, kafka_consumer_lag, lags_by_topic, observation,
)
from smart_shelf_platform.defs.resources import SmartShelfResource

END = {("shelf_events", 0): 10, ("shelf_events", 1): 7, ("alerts", 0): 5,
       ("__consumer_offsets", 0): 99, ("scratch", 0): 3}


def test_lag_is_summed_over_committed_partitions_per_topic_and_group():
    committed = {
        "connect-sink": {("shelf_events", 0): 4, ("shelf_events", 1): 7, ("alerts", 0): 5},
        "bridge": {("shelf_events", 0): 10, ("shelf_events", 1): -1001},  # -1001: no commit
    }
    assert lags_by_topic(committed, END, ["shelf_events", "alerts"]) == {
        "shelf_events": {"bridge": 0, "connect-sink": 6}, "alerts": {"connect-sink": 0}}


def test_internal_groups_and_topics_and_topics_outside_the_allow_list_are_ignored():
    committed = {"_confluent-ksql": {("shelf_events", 0): 0},
                 "app": {("__consumer_offsets", 0): 1, ("scratch", 0): 0}}
    assert lags_by_topic(committed, END, ["shelf_events", "__consumer_offsets"]) == {}
    assert lags_by_topic(committed, END, ["scratch"]) == {"scratch": {"app": 3}}


def test_only_changed_topics_are_observed():
    last = {"shelf_events": {"app": 6}, "alerts": {"app": 0}}
    now = {"shelf_events": {"app": 6}, "alerts": {"app": 2}, "wh_events": {"app": 0}}
    assert changed_topics(now, last) == ["alerts", "wh_events"]
    assert changed_topics(now, now) == []


def test_observation_carries_total_and_per_group_lag():
    event = observation("shelf_events", {"b": 2, "a": 6})
    assert event.asset_key == dg.AssetKey(["kafka", "shelf_events"])
    assert {k: v.value for k, v in event.metadata.items()} == {
        "total_lag": 8, "lag/a": 6, "lag/b": 2}


def test_the_sensor_starts_running_every_thirty_seconds():
    assert kafka_consumer_lag.name == "kafka_consumer_lag"
    assert kafka_consumer_lag.default_status == dg.DefaultSensorStatus.RUNNING
    assert kafka_consumer_lag.minimum_interval_seconds == 30


def evaluate(sensor: dg.SensorDefinition, smart_shelf: SmartShelfResource,
             cursor: str | None = None):
    with dg.DagsterInstance.ephemeral() as instance:
        context = dg.build_sensor_context(cursor=cursor, instance=instance,
                                          resources={"smart_shelf": smart_shelf})
        return sensor(context)


@pytest.fixture
def admin(settings):
    return AdminClient({"bootstrap.servers": settings.kafka_bootstrap, "log_level": 0})


@pytest.fixture
def topic(admin):
    """A one-partition topic of this test's own, deleted afterwards."""
    name = f"test_lag_{uuid.uuid4().hex[:12]}"
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(timeout=30)
    yield name
    admin.delete_topics([name])[name].result(timeout=30)


@pytest.fixture
def group(admin):
    """A consumer group name of this test's own; the group is deleted afterwards."""
    name = f"test-lag-group-{uuid.uuid4().hex[:8]}"
    yield name
    admin.delete_consumer_groups([name])[name].result(timeout=30)


@pytest.mark.integration
def test_a_group_committed_at_offset_4_of_10_lags_by_6(settings, topic, group):
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    for i in range(10):
        producer.produce(topic, key=str(i), value=f"message {i}")
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, 4)], asynchronous=False)
    finally:
        consumer.close()

    sensor = build_kafka_lag_sensor(topics=[topic], name="test_kafka_lag")
    smart_shelf = SmartShelfResource.from_settings(settings)
    result = evaluate(sensor, smart_shelf)
    (event,) = result.asset_events
    assert isinstance(event, dg.AssetObservation)
    assert event.asset_key == dg.AssetKey(["kafka", topic])
    assert event.metadata[f"lag/{group}"].value == 6
    assert event.metadata["total_lag"].value == 6
    assert json.loads(result.cursor) == {topic: {group: 6}}

    # Nothing moved: nothing to observe, the cursor stays.
    again = evaluate(sensor, smart_shelf, result.cursor)
    assert again.asset_events == [] and again.cursor == result.cursor


def test_an_unreachable_kafka_skips_the_tick():
    smart_shelf = SmartShelfResource(
        env="local", delta_root="x", data_dir="x", postgres_host="x", postgres_port=1,
        postgres_db="x", postgres_user="x", postgres_password="x",
        redis_url="redis://127.0.0.1:1/0", kafka_bootstrap="127.0.0.1:1", seed=42, stores=1,
        sim_start="2026-01-01T07:00:00+00:00", freshness_lag_minutes=60.0)
    result = evaluate(build_kafka_lag_sensor(topics=["shelf_events"]), smart_shelf)
    assert isinstance(result, dg.SkipReason)
    assert "unreachable" in result.skip_message
