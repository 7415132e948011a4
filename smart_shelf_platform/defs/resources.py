"""The platform resource: where the Delta root, Postgres, Redis, Kafka and reference data are.

`build_resources(settings)` is called by the function that builds the definitions, so the
environment (`SMART_SHELF_ENV` and the other `SMART_SHELF_*` variables) is read when Dagster loads
the code location, never at import time. Outside `local`, passwords must come from environment
variables, and are passed as `EnvVar`s so the UI never shows them (the Redis URL carries no
password: the client gets it apart).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import redis
from psycopg.conninfo import make_conninfo

from smart_shelf_platform.clock import DEFAULT_KEY_PREFIX, ClockNotRunning, RedisClock, parse_utc
from smart_shelf_platform.contracts.catalogue import DeltaTable
from smart_shelf_platform.passwords import PASSWORD_VARIABLES
from smart_shelf_platform.settings import Settings, redis_url
from smart_shelf_platform.stack.delta_tables import table_uri
from smart_shelf_platform.stack.migrations import WRITER_ROLE

ENVIRONMENTS = ("local", "docker", "prod")
WRITER_PASSWORD_VAR = PASSWORD_VARIABLES["postgres_writer_password"]
REDIS_PASSWORD_VAR = PASSWORD_VARIABLES["redis_password"]
RESOURCE_KEY = "smart_shelf"


class SmartShelfResource(dg.ConfigurableResource):
    """Connection details of one environment; assets and sensors ask it, never the environment."""

    env: str
    delta_root: str
    data_dir: str
    postgres_host: str
    postgres_port: int
    postgres_db: str
    postgres_user: str
    postgres_password: str
    redis_url: str  # without the password, which is `redis_password`
    kafka_bootstrap: str
    seed: int
    stores: int
    sim_start: str  # ISO-8601 UTC
    freshness_lag_minutes: float
    clock_key_prefix: str = DEFAULT_KEY_PREFIX  # Redis keys of the simulated clock
    topic_prefix: str = ""  # before every Kafka topic name (a test's private topics)
    ml_dir: str = ""  # model artifacts, training sets and plots (from_settings: <home>/ml)
    redis_password: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> SmartShelfResource:
        if settings.env not in ENVIRONMENTS:
            raise ValueError(f"SMART_SHELF_ENV={settings.env!r} is not one of {ENVIRONMENTS}")
        # A local stack's passwords are its own (generated or set); elsewhere they come from
        # the environment when the resource is used.
        password, redis_password = (settings.postgres_writer_password, settings.redis_password)
        if settings.env != "local":
            for variable in (WRITER_PASSWORD_VAR, REDIS_PASSWORD_VAR):
                if variable not in os.environ:
                    raise ValueError(f"{variable} must be set when SMART_SHELF_ENV="
                                     f"{settings.env}")
            password = dg.EnvVar(WRITER_PASSWORD_VAR)
            redis_password = dg.EnvVar(REDIS_PASSWORD_VAR)
        return cls(
            env=settings.env, delta_root=settings.delta_root, data_dir=str(settings.data_dir),
            postgres_host=settings.postgres_host, postgres_port=settings.postgres_port,
            postgres_db=settings.postgres_db, postgres_user=WRITER_ROLE,
            postgres_password=password,
            redis_url=redis_url(settings.redis_host, settings.redis_port),
            redis_password=redis_password,
            kafka_bootstrap=settings.kafka_bootstrap, seed=settings.seed, stores=settings.stores,
            sim_start=settings.sim_start.isoformat(),
            freshness_lag_minutes=settings.freshness_lag_minutes,
            ml_dir=str(settings.home / "ml"),
        )

    @property
    def reference_dir(self) -> Path:
        return Path(self.data_dir) / "reference"

    @property
    def freshness_bound(self) -> timedelta:
        return timedelta(minutes=self.freshness_lag_minutes)

    @property
    def sim_start_at(self) -> datetime:
        return parse_utc(self.sim_start)

    def postgres_dsn(self) -> str:
        return make_conninfo(host=self.postgres_host, port=self.postgres_port,
                             dbname=self.postgres_db, user=self.postgres_user,
                             password=self.postgres_password)

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url, password=self.redis_password or None,
                                    decode_responses=True, socket_connect_timeout=2,
                                    socket_timeout=2)

    def delta_uri(self, table: DeltaTable) -> str:
        return table_uri(self.delta_root, table)

    def sim_now(self) -> datetime | None:
        """Simulated now from the shared clock; None if the clock never ran or Redis is down."""
        client = self.redis()
        try:
            return RedisClock(client, self.clock_key_prefix).now()
        except (ClockNotRunning, redis.RedisError):
            return None
        finally:
            client.close()


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    return {RESOURCE_KEY: SmartShelfResource.from_settings(settings)}
