"""Consumer-group lag on the platform's topics, recorded as observations of `kafka/<topic>`.

Each evaluation lists the consumer groups and their committed offsets (AdminClient) and every
committed partition's end offset (a Consumer's watermarks). A group's lag on a topic is the sum
over partitions of end offset minus committed offset; a partition the group never committed has
no position to be behind and is left out. Spark structured streaming keeps its offsets in its
checkpoints, not in a consumer group, so the streaming queries do not show here; Kafka Connect's
sinks and the Python consumers do. Internal groups and topics (names starting with "_") and
topics outside the allow-list (by default the catalogue) are ignored.

A topic is observed when its lags changed since the last evaluation (cursor: JSON
`{topic: {group: lag}}`), so an idle platform does not write an event per topic every 30 s; the
last observation stays true until the next one.

It starts RUNNING, like the Delta sensor: it only reads metadata (one admin call per group, one
watermark request per committed partition, each with a short timeout), so it is safe wherever the
code location runs, and a lag history is only useful if it starts with the stack. When Kafka
cannot be reached the tick is skipped with the broker's message instead of failing.
"""

import json
from collections.abc import Iterable, Mapping

import dagster as dg
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from smart_shelf_platform.contracts.catalogue import TOPICS
from smart_shelf_platform.defs.resources import SmartShelfResource

KAFKA_TIMEOUT_S = 5.0
INTERNAL_PREFIX = "_"  # __consumer_offsets, _schemas, _confluent-*: Kafka's, not the platform's
TOTAL_LAG = "total_lag"
GROUP_LAG_PREFIX = "lag/"  # one numeric entry per group, so the UI can plot each over time

Partition = tuple[str, int]  # (topic, partition)


# ------------------------------------------------------------------------------------------------
# Pure: lag from offsets
# ------------------------------------------------------------------------------------------------


def partition_lag(committed: int, end: int) -> int:
    """Messages after the committed offset; never negative (end is read after the commit)."""
    return max(end - committed, 0)


def lags_by_topic(committed_by_group: Mapping[str, Mapping[Partition, int]],
                  end_offsets: Mapping[Partition, int],
                  topics: Iterable[str]) -> dict[str, dict[str, int]]:
    """{topic: {group: lag summed over the group's committed partitions}} for allowed topics."""
    allowed = {t for t in topics if not t.startswith(INTERNAL_PREFIX)}
    lags: dict[str, dict[str, int]] = {}
    for group, committed in sorted(committed_by_group.items()):
        if group.startswith(INTERNAL_PREFIX):
            continue
        for (topic, partition), offset in sorted(committed.items()):
            if topic not in allowed or offset < 0 or (topic, partition) not in end_offsets:
                continue
            by_group = lags.setdefault(topic, {})
            by_group[group] = by_group.get(group, 0) + partition_lag(
                offset, end_offsets[(topic, partition)])
    return lags


def changed_topics(lags: Mapping[str, Mapping[str, int]],
                   last: Mapping[str, Mapping[str, int]]) -> list[str]:
    return sorted(topic for topic, by_group in lags.items() if last.get(topic) != by_group)


def observation(topic: str, group_lags: Mapping[str, int]) -> dg.AssetObservation:
    metadata = {TOTAL_LAG: sum(group_lags.values()),
                **{f"{GROUP_LAG_PREFIX}{g}": lag for g, lag in sorted(group_lags.items())}}
    return dg.AssetObservation(asset_key=dg.AssetKey(["kafka", topic]), metadata=metadata,
                               description=f"consumer lag of {len(group_lags)} group(s)")


# ------------------------------------------------------------------------------------------------
# Kafka reads
# ------------------------------------------------------------------------------------------------


def committed_offsets(admin: AdminClient) -> dict[str, dict[Partition, int]]:
    """{group: {(topic, partition): committed offset}} for every group the broker lists."""
    listing = admin.list_consumer_groups(request_timeout=KAFKA_TIMEOUT_S).result()
    # An unreachable broker is no exception here but an empty listing with errors; a partial
    # listing would under-report lag, so any error fails the read.
    if listing.errors:
        raise KafkaException(listing.errors[0])
    offsets: dict[str, dict[Partition, int]] = {}
    for group in sorted(g.group_id for g in listing.valid):
        request = [ConsumerGroupTopicPartitions(group)]
        (future,) = admin.list_consumer_group_offsets(
            request, request_timeout=KAFKA_TIMEOUT_S).values()
        offsets[group] = {(tp.topic, tp.partition): tp.offset
                          for tp in future.result().topic_partitions if tp.error is None}
    return offsets


def end_offsets(consumer: Consumer, partitions: Iterable[Partition]) -> dict[Partition, int]:
    """High watermark (the next offset to be written) of each partition."""
    return {(topic, partition): consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=KAFKA_TIMEOUT_S, cached=False)[1]
            for topic, partition in sorted(set(partitions))}


def read_lags(bootstrap: str, topics: Iterable[str]) -> dict[str, dict[str, int]]:
    topics = set(topics)
    # librdkafka's own retry logging stays out of the daemon's output; failures still raise.
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    committed = committed_offsets(admin)
    wanted = {p for by_partition in committed.values() for p in by_partition if p[0] in topics}
    # Watermarks are metadata reads: this consumer never subscribes or commits, so its group.id
    # never shows up as a group of its own.
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "_smart_shelf_lag_sensor",
                         "enable.auto.commit": False, "log_level": 0})
    try:
        return lags_by_topic(committed, end_offsets(consumer, wanted), topics)
    finally:
        consumer.close()


# ------------------------------------------------------------------------------------------------
# The sensor
# ------------------------------------------------------------------------------------------------


def build_kafka_lag_sensor(topics: Iterable[str] | None = None,
                           name: str = "kafka_consumer_lag") -> dg.SensorDefinition:
    """The lag sensor over `topics` (default: every catalogue topic); tests pass their own."""
    allowed = tuple(sorted(topics)) if topics is not None else tuple(t.name for t in TOPICS)

    @dg.sensor(
        name=name,
        description="Record consumer-group lag per topic as observations of the kafka/ assets.",
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def _kafka_lag(context: dg.SensorEvaluationContext,
                   smart_shelf: SmartShelfResource) -> dg.SensorResult | dg.SkipReason:
        last: dict[str, dict[str, int]] = json.loads(context.cursor) if context.cursor else {}
        try:
            lags = read_lags(smart_shelf.kafka_bootstrap, allowed)
        except KafkaException as exc:
            context.log.warning("Kafka at %s unreachable: %s", smart_shelf.kafka_bootstrap, exc)
            return dg.SkipReason(f"Kafka at {smart_shelf.kafka_bootstrap} unreachable: {exc}")
        changed = changed_topics(lags, last)
        if changed:
            context.log.info("consumer lag changed on %s", ", ".join(
                f"{t}={sum(lags[t].values())}" for t in changed))
        return dg.SensorResult(asset_events=[observation(t, lags[t]) for t in changed],
                               cursor=json.dumps(lags, sort_keys=True))

    return _kafka_lag


kafka_consumer_lag = build_kafka_lag_sensor()
