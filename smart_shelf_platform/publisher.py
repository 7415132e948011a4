"""Contract records to Kafka from Python: the streaming queries' driver and Dagster's runs.

`jsonable` renders a value as the platform's JSON has it; `Publisher` sends records to their
catalogue topics, keyed as the catalogue says, through one idempotent producer, and returns only
once Kafka has every one (what follows, a commit or a mark, must not run ahead of them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime
from decimal import Decimal

import orjson
from confluent_kafka import Producer

from smart_shelf_platform.clock import iso_utc
from smart_shelf_platform.contracts.catalogue import TOPICS_BY_NAME


def jsonable(value):
    """A row value as the platform's JSON has it: UTC times in ISO-8601 with `Z`, ISO dates,
    decimals (prices, discounts) as numbers."""
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


class Publisher:
    """Messages to Kafka: one idempotent producer, made on first use, and every send waits until
    Kafka has all of it. `name` says who sends (in errors); `topic` maps a catalogue topic name
    to the topic written (`QueryContext.topic`: tests prefix it)."""

    def __init__(self, bootstrap: str, name: str, topic: Callable[[str], str]):
        self.bootstrap = bootstrap
        self.name = name
        self.topic = topic
        self._producer: Producer | None = None

    def send(self, messages: Iterable[tuple[str, dict]]) -> int:
        """`messages`: (topic name in the catalogue, record). Returns the count."""
        if self._producer is None:
            self._producer = Producer({"bootstrap.servers": self.bootstrap,
                                       "enable.idempotence": True, "linger.ms": 5})
        failures, sent = [], 0
        for name, record in messages:
            message = {"topic": self.topic(name), "key": TOPICS_BY_NAME[name].message_key(record),
                       "value": orjson.dumps({k: jsonable(v) for k, v in record.items()}),
                       "on_delivery": lambda err, _m: err and failures.append(err)}
            try:
                self._producer.produce(**message)
            except BufferError:  # the local queue is full: let Kafka take it first
                self._producer.flush(60)
                self._producer.produce(**message)
            sent += 1
        remaining = self._producer.flush(60) if sent else 0
        if remaining or failures:
            raise RuntimeError(f"{self.name}: {remaining} undelivered, errors {failures[:3]}")
        return sent
