"""All configuration, from environment variables prefixed `SMART_SHELF_` (see README).

Defaults run the whole stack as local processes under `.smart_shelf/` on ports that do not collide
with a system Postgres (5432), Redis (6379) or Kafka (9092). Set `SMART_SHELF_POSTGRES_EXTERNAL=1`
(or `..._REDIS_EXTERNAL=1`) with the matching host/port to reuse a server you already run.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from psycopg.conninfo import make_conninfo
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from smart_shelf_platform.passwords import PASSWORD_VARIABLES, stack_passwords
from smart_shelf_platform.rules.expiry import parse_discount_ladder

REPO_ROOT = Path(__file__).resolve().parent.parent
# Supplier schedule fields: "Sun,Tue,Thu" and "12:00" (the tick filter matches HH:MM exactly).
_WEEKDAYS = r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun)(,(Mon|Tue|Wed|Thu|Fri|Sat|Sun))*$"
_HH_MM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMART_SHELF_", extra="ignore")

    env: str = Field("local", description="local | docker | prod: how Dagster resources are "
                                          "wired (prod adds wall-clock schedules)")
    home: Path = Field(REPO_ROOT / ".smart_shelf",
                       description="state directory: service data, logs "
                                   "(logs/<component>.log), pids")
    jvm_lib: Path = Field(REPO_ROOT / "jvm" / "lib", description="jars resolved by setup")
    data_dir: Path = Field(REPO_ROOT / "data", description="reference data generator outputs")

    bind_host: str = Field(
        "127.0.0.1", description="address every server the stack starts listens on (Postgres, "
                                 "Redis, Kafka, Connect, Dagster, the dashboard); 0.0.0.0 in a "
                                 "container, whose neighbours reach it by its service name")

    # Postgres
    postgres_host: str = Field("127.0.0.1", description="Postgres host")
    postgres_port: int = Field(
        15432, description="Postgres port (not 5432, so a system server is left alone)")
    postgres_external: bool = Field(False, description="reuse a running server, do not start one")
    postgres_db: str = Field("smart_shelf", description="the platform's database")
    postgres_user: str = Field("smart_shelf", description="owner of the database")
    # Passwords: repr=False, so no printed or logged settings object shows them.
    postgres_password: str = Field(
        "", repr=False, description="password of the owner; empty: the stack's own, generated "
                                    "into $SMART_SHELF_HOME/secrets.env (local only)")
    postgres_writer_password: str = Field(
        "", repr=False, description="password of the role smart_shelf_writer (the platform); "
                                    "empty: generated, as above")
    postgres_reader_password: str = Field(
        "", repr=False, description="password of the role smart_shelf_reader (the dashboard); "
                                    "empty: generated, as above")

    # Redis
    redis_host: str = Field("127.0.0.1", description="Redis host")
    redis_port: int = Field(16379, description="Redis port (not 6379)")
    redis_external: bool = Field(False, description="reuse a running server, do not start one")
    redis_password: str = Field(
        "", repr=False, description="password Redis requires (`requirepass`); empty: "
                                    "generated, as above")

    # Kafka (KRaft, combined broker + controller) and Kafka Connect
    kafka_host: str = Field("127.0.0.1", description="Kafka broker host")
    kafka_port: int = Field(19092, description="Kafka broker listener")
    kafka_controller_port: int = Field(19093, description="KRaft controller listener")
    kafka_external: bool = Field(False, description="use SMART_SHELF_KAFKA_BOOTSTRAP, start none")
    kafka_bootstrap_override: str = Field(
        "", alias="SMART_SHELF_KAFKA_BOOTSTRAP",
        description="bootstrap servers of an existing cluster; empty: host:port above")
    kafka_partitions: int = Field(
        3, description="default partitions per topic (raising it adds partitions to existing "
                       "topics on the next up)")
    kafka_replication_factor: int = Field(1, description="for a multi-broker cluster")
    kafka_retention_ms: int = Field(
        7 * 24 * 3600 * 1000, description="retention of the append-only topics (7 days)")
    kafka_heap: str = Field("512m", description="JVM heap of the Kafka broker")
    connect_host: str = Field("127.0.0.1", description="Kafka Connect REST host")
    connect_port: int = Field(18083, description="Kafka Connect REST port")
    connect_heap: str = Field("512m", description="JVM heap of the Kafka Connect worker")
    connect_enabled: bool = Field(True, description="run the Kafka Connect worker")
    connect_password: str = Field(
        "", repr=False, description="password of the user smart_shelf on the Kafka Connect REST "
                                    "API (HTTP basic auth); empty: generated, as above")

    # Processes of the platform itself that `up` starts
    bridge_enabled: bool = Field(True, description="run the Redis->Kafka bridge")
    dagster_enabled: bool = Field(True, description="run the Dagster webserver and daemon")
    dagster_port: int = Field(13000, description="Dagster UI port")
    dagster_code_host: str = Field(
        "", description="empty: Dagster loads the code location in its own process (`dagster "
                        "dev`); a host: the webserver and daemon load it from the gRPC code "
                        "server there (`smart-shelf container serve dagster-code`)")
    dagster_code_port: int = Field(4000, description="port of that gRPC code server")
    dashboard_enabled: bool = Field(True, description="run the Streamlit dashboard")
    dashboard_port: int = Field(18501, description="dashboard port (bound to 127.0.0.1)")
    dashboard_clock_prefix: str = Field(
        "sim:", description="Redis prefix of the clock and query progress the dashboard shows")
    streaming_enabled: bool = Field(True, description="run the Spark streaming application")
    streaming_trigger_seconds: float = Field(
        2.0, gt=0, description="micro-batch interval of the streaming application `up` runs")
    event_lateness_hours: float = Field(
        168.0, gt=0, description="an event stamped this long (simulated) before the clock's "
                                 "now is refused as too late (dead letter); duplicates are "
                                 "dropped however late")

    # Spark (streaming jobs and Dagster's Spark work)
    spark_master: str = Field("local[2]", description="local[N] or spark://host:7077")
    shuffle_partitions: int = Field(4, description="micro-batches are small: not Spark's 200")
    spark_driver_memory: str = Field("1g", description="Spark driver heap")
    spark_ui: bool = Field(False, description="serve the Spark UI (port 4040)")

    # Replenishment loop (simulated time)
    restock_handling_seconds: int = Field(
        60, ge=0, description="a restock plan is picked from the warehouse at the first clock "
                              "tick this long (simulated) after it was made")
    refill_delay_minutes: int = Field(
        3, ge=0, description="a pick becomes the restocker's refill task this long (simulated) "
                             "after it; the restocker puts on the shelf what fits")
    decision_round_minutes: int = Field(
        0, ge=0, le=1440,
        description="0: restock and supplier plans and picks are decided as events arrive; N "
                    "(a divisor of 1440): only on the ticks of every N-th simulated minute, from "
                    "what happened before them, and a simulator driving the clock meets the "
                    "platform there, so a seed replays the same week exactly")
    supplier_rule: Literal["platform", "reference", "forecast"] = Field(
        "platform", description="who makes the supplier plans: the platform's reorder rule, the "
                                "reference system's rule (kept to compare lost sales against), "
                                "or the cutoff's demand forecast (forecast: the champion model's "
                                "orders, the platform rule for shelves it cannot serve)")
    supplier_cutoff_days: str = Field(
        "Sun,Tue,Thu", pattern=_WEEKDAYS, description="pending supplier plans become orders")
    supplier_cutoff_time: str = Field("12:00", pattern=_HH_MM, description="UTC, simulated")
    supplier_delivery_days: str = Field(
        "Mon,Wed,Fri", pattern=_WEEKDAYS,
        description="an order arrives at the first slot after its cutoff")
    supplier_delivery_time: str = Field("08:00", pattern=_HH_MM, description="UTC, simulated")

    # Demand forecasting (cutoff partitions in Dagster)
    forecast_order_quantile: float = Field(
        0.9, description="quantile of the protection interval's demand a forecast orders up "
                         "to: one of 0.5, 0.8, 0.9, 0.95")
    forecast_lead_minutes: int = Field(
        60, ge=0, description="simulated minutes before a cutoff its forecasting runs are "
                              "requested")
    forecast_min_history_days: int = Field(
        7, ge=1, description="days of features a shelf needs before the model forecasts it (and "
                             "before an origin's rows are used to train); a shelf with fewer "
                             "falls back to its in-stock mean")
    forecast_barrier_seconds: float = Field(
        300.0, gt=0, description="with SMART_SHELF_SUPPLIER_RULE=forecast, wall seconds the "
                                 "simulated clock waits before a cutoff for its forecasts; then "
                                 "the rule's plans stand, with an error in the log")
    forecast_gate_cutoffs: int = Field(
        6, ge=1, description="past cutoffs a new model is backtested on before it may become "
                             "the champion")

    # Data quality
    freshness_lag_minutes: float = Field(
        60.0, description="streaming outputs older than this (simulated minutes) warn")

    # Delta Lake
    delta_root_override: str = Field(
        "", alias="SMART_SHELF_DELTA_ROOT",
        description="Delta Lake root, a path or an object-store URI; empty: "
                    "$SMART_SHELF_HOME/delta")

    # Simulated clock
    sim_start: datetime = Field(datetime(2026, 1, 1, 7, 0, tzinfo=timezone.utc),
                                description="simulated start (UTC)")
    sim_speed: float = Field(10.0, ge=0, allow_inf_nan=False,
                             description="simulated seconds per wall-clock second of `smart-shelf "
                                         "clock`; 0: as fast as possible")
    sim_step_seconds: int = Field(5, ge=1, description="simulated seconds per clock step (its "
                                                        "resolution)")

    # Reference data
    seed: int = Field(42, ge=0, description="seed of the reference data `up` makes and of the "
                                            "simulator's shoppers (`simulate --seed` sets "
                                            "theirs alone)")
    stores: int = Field(1, ge=1, le=999,
                        description="number of stores the platform is set up with")

    # Expiry loop
    discount_ladder: str = Field(
        "0:0.50,1:0.30", description="near-expiry discount per days to expiry of the shelf's "
                                     "earliest lot, days:fraction pairs")

    @field_validator("decision_round_minutes")
    @classmethod
    def _rounds_divide_the_day(cls, value: int) -> int:
        if value and 1440 % value:
            raise ValueError(f"{value} does not divide a day (1440 minutes): every day's rounds "
                             "must fall on the same minutes")
        return value

    @field_validator("forecast_order_quantile")
    @classmethod
    def _a_forecast_quantile(cls, value: float) -> float:
        if value not in (0.5, 0.8, 0.9, 0.95):
            raise ValueError(f"{value} is not a forecast quantile: one of 0.5, 0.8, 0.9, 0.95")
        return value

    @field_validator("discount_ladder")
    @classmethod
    def _ladder_parses(cls, value: str) -> str:
        parse_discount_ladder(value)  # a bad ladder fails here, with the entry named
        return value

    @model_validator(mode="after")
    def _stack_passwords(self) -> Settings:
        """A local stack's passwords left unset are its generated ones (`passwords`); elsewhere
        they stay empty and `up` refuses them."""
        unset = [name for name in PASSWORD_VARIABLES if not getattr(self, name)]
        if unset and self.env == "local":
            stored = stack_passwords(self.home)
            for name in unset:
                setattr(self, name, stored[name])
        return self

    @property
    def kafka_bootstrap(self) -> str:
        return self.kafka_bootstrap_override or f"{self.kafka_host}:{self.kafka_port}"

    @property
    def delta_root(self) -> str:
        return self.delta_root_override or str(self.home / "delta")

    def as_env(self) -> dict[str, str]:
        """These settings as `SMART_SHELF_*` variables, for a child process to rebuild them."""
        env = {}
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if value is None or value == "":
                continue
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, datetime):
                text = value.isoformat()
            else:
                text = str(value)
            env[field.alias or f"SMART_SHELF_{name.upper()}"] = text
        return env

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    def postgres_dsn(self, user: str | None = None, password: str | None = None,
                     db: str | None = None) -> str:
        password = password if password is not None else self.postgres_password
        return make_conninfo(host=self.postgres_host, port=self.postgres_port,
                             dbname=db or self.postgres_db, user=user or self.postgres_user,
                             password=password)

    @property
    def redis_url(self) -> str:
        """With the password: every Redis client of the platform connects through it."""
        return redis_url(self.redis_host, self.redis_port, self.redis_password)


def redis_url(host: str, port: int, password: str = "") -> str:
    auth = f":{quote(password, safe='')}@" if password else ""
    return f"redis://{auth}{host}:{port}/0"


def get_settings() -> Settings:
    """Read the environment now (never at import time, so tests can change it per case)."""
    return Settings()
