"""Create (or align) every Kafka topic of the contracts' topic catalogue."""

from __future__ import annotations

from confluent_kafka.admin import (
    AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions, NewTopic,
)

from smart_shelf_platform.contracts.catalogue import TOPICS, Topic
from smart_shelf_platform.settings import Settings


def admin_client(settings: Settings) -> AdminClient:
    # librdkafka's own log lines (connection retries of a client that outlives its broker) stay
    # out of the console; a failed admin call still raises with the broker's message.
    return AdminClient({"bootstrap.servers": settings.kafka_bootstrap, "log_level": 0})


def topic_config(topic: Topic, settings: Settings) -> dict[str, str]:
    if topic.compacted:
        return {
            "cleanup.policy": "compact",
            "min.cleanable.dirty.ratio": "0.01",
            "segment.ms": str(3600 * 1000),
            "delete.retention.ms": str(24 * 3600 * 1000),
        }
    return {"cleanup.policy": "delete", "retention.ms": str(settings.kafka_retention_ms)}


def partitions_for(topic: Topic, settings: Settings) -> int:
    return topic.partitions or settings.kafka_partitions


def ensure_topics(settings: Settings) -> dict[str, str]:
    """Create missing topics, align configs and partition counts of existing ones.

    Returns {topic: "created" | "aligned"}. Partitions are only ever added (Kafka cannot remove
    them), so growing SMART_SHELF_KAFKA_PARTITIONS scales an existing stack out.
    """
    admin = admin_client(settings)
    existing = admin.list_topics(timeout=10).topics
    outcome: dict[str, str] = {}

    new = [NewTopic(t.name, partitions_for(t, settings), settings.kafka_replication_factor,
                    config=topic_config(t, settings))
           for t in TOPICS if t.name not in existing]
    if new:
        for name, fut in admin.create_topics(new, operation_timeout=30).items():
            fut.result()
            outcome[name] = "created"

    to_align = [t for t in TOPICS if t.name in existing]
    if to_align:
        resources = [
            ConfigResource(ConfigResource.Type.TOPIC, t.name, incremental_configs=[
                ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
                for k, v in topic_config(t, settings).items()])
            for t in to_align
        ]
        for fut in admin.incremental_alter_configs(resources).values():
            fut.result()
        grow = [NewPartitions(t.name, partitions_for(t, settings)) for t in to_align
                if len(existing[t.name].partitions) < partitions_for(t, settings)]
        if grow:
            for fut in admin.create_partitions(grow).values():
                fut.result()
        outcome.update({t.name: "aligned" for t in to_align})
    return outcome


def describe_topics(settings: Settings) -> dict[str, dict]:
    """{topic: {"partitions": n, "config": {...}}} for the catalogue's topics that exist."""
    admin = admin_client(settings)
    md = admin.list_topics(timeout=10).topics
    names = [t.name for t in TOPICS if t.name in md]
    resources = [ConfigResource(ConfigResource.Type.TOPIC, n) for n in names]
    configs = {r.name: {k: v.value for k, v in fut.result().items()}
               for r, fut in admin.describe_configs(resources).items()} if resources else {}
    return {n: {"partitions": len(md[n].partitions), "config": configs[n]} for n in names}


def create_topic_copies(settings: Settings, prefix: str,
                        partitions: int | None = None) -> list[str]:
    """Create `<prefix><topic>` for every catalogue topic, configured like the originals (with
    `partitions` each when given): a copy of the bus for a benchmark or a test."""
    new = [NewTopic(f"{prefix}{t.name}", partitions or partitions_for(t, settings),
                    settings.kafka_replication_factor, config=topic_config(t, settings))
           for t in TOPICS]
    admin = admin_client(settings)  # must outlive the futures
    for future in admin.create_topics(new, operation_timeout=30).values():
        future.result()
    return [n.topic for n in new]


def delete_topic_copies(settings: Settings, prefix: str) -> None:
    admin = admin_client(settings)
    for future in admin.delete_topics([f"{prefix}{t.name}" for t in TOPICS]).values():
        future.result()
