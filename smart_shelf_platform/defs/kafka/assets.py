"""Every topic of the catalogue as an external asset: topics are written by the bridge, the clock,
the streaming queries and Kafka Connect, never by a Dagster run."""

from smart_shelf_platform.defs.specs import topic_specs

kafka_topics = topic_specs()
