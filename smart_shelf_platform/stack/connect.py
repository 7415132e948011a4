"""The Kafka Connect connectors: definitions, rendering from the contracts, apply and status.

The definitions are data (`connect/connectors.yaml`): a name, the config tables of a CDC
source, or the topic and table of a sink. Everything else is rendered here from the contracts
catalogue and the settings, so a connector can never disagree with the record it carries:

- the source (Debezium Postgres, `pgoutput`) captures its tables into the compacted topic of the
  same name, one message per changed row: the row itself as plain JSON (decimals as numbers,
  dates and times as ISO-8601 text, `PlainDates`), keyed by the key fields joined with '|'
  (`JoinedKey`).
  Deletes are dropped, not turned into tombstones: the streaming jobs read these topics against
  their contract, so a row is retired by an update (`active = false` for a policy), never by a
  DELETE (README, "Kafka Connect");
- no connector config holds a password: each names its key in the worker's secrets file
  (`secret`), which the worker's `file` config provider reads when it starts a task;
- each sink (Debezium JDBC) gets the Connect schema of its table's contract from `ContractSchema`
  (the topics stay schemaless JSON for Spark and Python) and upserts by the table's primary key.
  A record that breaks the contract goes to the dead-letter topic with the reason in its headers
  (`__connect.errors.exception.message`); the connector keeps running. While Postgres is away
  the sink retries its batch for `SINK_RETRY_SECONDS` before the task fails.

`apply` PUTs every rendered configuration (idempotent: an unchanged one is left alone) and
restarts failed tasks; `status` reads each connector's and task's state from the worker, and
`remedies` says what to do about those that do not run (a failed task never restarts itself).
A `prefix` gives a test connectors, topics, slot and dead-letter topic of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml

from smart_shelf_platform.contracts.catalogue import (
    POSTGRES_TABLES_BY_NAME, TOPICS_BY_NAME, PostgresTable, Topic,
)
from smart_shelf_platform.contracts.types import Record
from smart_shelf_platform.passwords import properties_value, write_private
from smart_shelf_platform.settings import REPO_ROOT, Settings
from smart_shelf_platform.stack.process import StackError

CONNECTORS_FILE = REPO_ROOT / "connect" / "connectors.yaml"
# In the worker's folder; its `file` config provider reads nothing outside that folder.
SECRETS_FILE = "secrets.properties"
REST_USER = "smart_shelf"
DEAD_LETTER_TOPIC = "connect_dead_letter"
TRANSFORMS_PACKAGE = "io.smartshelf.connect"
# Postgres may be away this long (restart, failover) before a sink task gives up and fails.
SINK_RETRY_SECONDS = 300
SINK_RETRY_DELAY_MS = 5000


@dataclass(frozen=True)
class SourceDefinition:
    name: str
    tables: tuple[str, ...]


@dataclass(frozen=True)
class SinkDefinition:
    name: str
    topic: str
    table: str


@dataclass
class ConnectorState:
    name: str
    kind: str  # source | sink
    state: str  # RUNNING, PAUSED, FAILED, UNASSIGNED, or MISSING when not on the worker
    tasks: list[dict] = field(default_factory=list)  # {"id", "state", "trace"}

    @property
    def running(self) -> bool:
        return self.state == "RUNNING" and bool(self.tasks) and all(
            t["state"] == "RUNNING" for t in self.tasks)


def load_definitions(path: Path = CONNECTORS_FILE) -> list[SourceDefinition | SinkDefinition]:
    data = yaml.safe_load(path.read_text())
    sources = [SourceDefinition(d["name"], tuple(d["tables"])) for d in data.get("sources", [])]
    sinks = [SinkDefinition(d["name"], d["topic"], d["table"]) for d in data.get("sinks", [])]
    return [*sources, *sinks]


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


def contract_fields(record: Record) -> str:
    """The record's fields as `ContractSchema` reads them: name[?]:kind[:parameter]."""
    specs = []
    for f in record.fields:
        kind = f.type.kind
        if kind == "decimal":
            kind = f"decimal:{f.type.scale}"
        elif kind == "enum":
            kind = "enum:" + "|".join(f.type.enum_values)
        elif kind in ("array", "json"):
            raise ValueError(f"{record.name}.{f.name}: a JDBC sink maps flat records only")
        specs.append(f"{f.name}{'?' if f.nullable else ''}:{kind}")
    return ",".join(specs)


def slot_name(prefix: str) -> str:
    """Replication slot and publication name: Postgres allows [a-z0-9_] only."""
    return re.sub(r"[^a-z0-9_]", "_", f"{prefix}smart_shelf_config".lower())


def secrets_file(settings: Settings) -> Path:
    return settings.home / "connect" / SECRETS_FILE


def write_secrets(settings: Settings) -> Path:
    """The passwords the connectors use, as the worker's file config provider reads them
    (a Java properties file, the owner's alone). Written when the worker starts and before
    connectors are applied, so the worker resolves the settings' passwords."""
    values = {"postgres.password": settings.postgres_password,
              "postgres.writer.password": settings.postgres_writer_password}
    return write_private(secrets_file(settings),
                         "".join(f"{k}={properties_value(v)}\n" for k, v in values.items()))


def rest_auth(settings: Settings) -> tuple[str, str]:
    """User and password of the worker's REST API (HTTP basic auth), for `requests`."""
    return REST_USER, settings.connect_password


def secret(settings: Settings, key: str) -> str:
    """A placeholder the worker replaces with the secret when it starts a task: connector
    configs hold no password, so the REST API and the config topic show none."""
    return f"${{file:{secrets_file(settings)}:{key}}}"


def _error_handling(settings: Settings, prefix: str) -> dict[str, str]:
    return {
        "errors.tolerance": "all",
        "errors.log.enable": "true",
        "errors.deadletterqueue.topic.name": f"{prefix}{DEAD_LETTER_TOPIC}",
        "errors.deadletterqueue.topic.replication.factor": str(settings.kafka_replication_factor),
        "errors.deadletterqueue.context.headers.enable": "true",
    }


def render_source(defn: SourceDefinition, settings: Settings, prefix: str = "") -> dict[str, str]:
    for table in defn.tables:
        topic = TOPICS_BY_NAME[table.split(".", 1)[1]]
        pg = POSTGRES_TABLES_BY_NAME[table]
        if topic.record != pg.record or topic.key_fields != pg.primary_key:
            raise ValueError(f"{table}: topic {topic.name} must carry the table's record and key")
    logical = slot_name(prefix)
    return {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "tasks.max": "1",
        "plugin.name": "pgoutput",
        "database.hostname": settings.postgres_host,
        "database.port": str(settings.postgres_port),
        "database.user": settings.postgres_user,
        "database.password": secret(settings, "postgres.password"),
        "database.dbname": settings.postgres_db,
        "topic.prefix": logical,
        "slot.name": logical,
        "publication.name": logical,
        "publication.autocreate.mode": "filtered",
        "table.include.list": ",".join(re.escape(t) for t in defn.tables),
        "snapshot.mode": "initial",
        # The contracts' JSON: numbers for decimals, ISO-8601 text for dates and times.
        "decimal.handling.mode": "double",
        "time.precision.mode": "isostring",
        "tombstones.on.delete": "false",
        # Confirms the slot's position while the config tables are quiet and others are busy,
        # so Postgres does not keep WAL for it.
        "heartbeat.interval.ms": "10000",
        "topic.creation.default.replication.factor": str(settings.kafka_replication_factor),
        "topic.creation.default.partitions": "1",
        "transforms": "unwrap,dates,key,route",
        "transforms.unwrap.type": "io.debezium.transforms.ExtractNewRecordState",
        "transforms.unwrap.delete.tombstone.handling.mode": "drop",
        "transforms.dates.type": f"{TRANSFORMS_PACKAGE}.PlainDates",
        "transforms.key.type": f"{TRANSFORMS_PACKAGE}.JoinedKey",
        "transforms.route.type": "org.apache.kafka.connect.transforms.RegexRouter",
        "transforms.route.regex": rf"{re.escape(logical)}\.config\.(.*)",
        "transforms.route.replacement": f"{prefix}$1",
        **_error_handling(settings, prefix),
    }


def render_sink(defn: SinkDefinition, settings: Settings, prefix: str = "") -> dict[str, str]:
    topic: Topic = TOPICS_BY_NAME[defn.topic]
    table: PostgresTable = POSTGRES_TABLES_BY_NAME[defn.table]
    missing = set(table.record.field_names) - set(topic.record.field_names)
    if missing:
        raise ValueError(f"{defn.table}: topic {topic.name} lacks {sorted(missing)}")
    return {
        "connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector",
        "tasks.max": "1",
        "topics": f"{prefix}{topic.name}",
        # stringtype=unspecified: uuids, enums, dates and timestamps travel as text that
        # Postgres casts to the column's type, exactly.
        "connection.url": (f"jdbc:postgresql://{settings.postgres_host}:{settings.postgres_port}"
                           f"/{settings.postgres_db}?stringtype=unspecified"),
        "connection.username": "smart_shelf_writer",
        "connection.password": secret(settings, "postgres.writer.password"),
        # One task writes one batch at a time; the default pool (5 to 32 connections per
        # connector) would take most of Postgres's 100 connections for the mirrors alone.
        "connection.pool.min_size": "1",
        "connection.pool.max_size": "2",
        "collection.name.format": table.qualified_name,
        "insert.mode": "upsert",
        "primary.key.mode": "record_value",
        "primary.key.fields": ",".join(table.primary_key),
        "delete.enabled": "false",
        "schema.evolution": "none",
        "use.time.zone": "UTC",
        "flush.max.retries": str(SINK_RETRY_SECONDS * 1000 // SINK_RETRY_DELAY_MS),
        "flush.retry.delay.ms": str(SINK_RETRY_DELAY_MS),
        "connection.restart.on.errors": "true",
        "transforms": "contract",
        "transforms.contract.type": f"{TRANSFORMS_PACKAGE}.ContractSchema",
        "transforms.contract.fields": contract_fields(table.record),
        "transforms.contract.schema.name": table.record.name,
        **_error_handling(settings, prefix),
    }


def render(defn: SourceDefinition | SinkDefinition, settings: Settings,
           prefix: str = "") -> dict[str, str]:
    if isinstance(defn, SourceDefinition):
        return render_source(defn, settings, prefix)
    return render_sink(defn, settings, prefix)


# ---------------------------------------------------------------------------------------------
# The worker's REST API
# ---------------------------------------------------------------------------------------------


class ConnectClient:
    def __init__(self, settings: Settings):
        self.url = f"http://{settings.connect_host}:{settings.connect_port}"
        self.port = settings.connect_port
        self.auth = rest_auth(settings)

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        try:
            response = requests.request(method, f"{self.url}{path}", auth=self.auth, timeout=30,
                                        **kwargs)
        except requests.ConnectionError:
            raise StackError(f"Kafka Connect is not reachable on port {self.port}; start the "
                             "stack with `./smart-shelf up`") from None
        if response.status_code == 401:
            raise StackError(f"Kafka Connect on port {self.port} refused the REST password: "
                             "the worker was started with another SMART_SHELF_CONNECT_PASSWORD")
        return response

    def check_transforms(self) -> None:
        plugins = self.request("GET", "/connector-plugins?connectorsOnly=false").json()
        if not any(p["class"].startswith(TRANSFORMS_PACKAGE) for p in plugins):
            raise StackError("the Kafka Connect worker runs without the platform's transforms "
                             "(jvm/lib/connect-plugins/smart-shelf-transforms); restart it: "
                             "`./smart-shelf down && ./smart-shelf up`")


def apply(settings: Settings, prefix: str = "",
          definitions: list[SourceDefinition | SinkDefinition] | None = None) -> dict[str, str]:
    """Create or update every connector; returns {name: created|updated|unchanged|restarted}."""
    client = ConnectClient(settings)
    client.check_transforms()
    write_secrets(settings)
    outcome = {}
    for defn in definitions if definitions is not None else load_definitions():
        name = f"{prefix}{defn.name}"
        config = render(defn, settings, prefix)
        current = client.request("GET", f"/connectors/{name}/config")
        if current.ok and {k: v for k, v in current.json().items() if k != "name"} == config:
            outcome[name] = "unchanged"
        else:
            response = client.request("PUT", f"/connectors/{name}/config", json=config)
            if not response.ok:
                raise StackError(f"Kafka Connect refused connector {name}: "
                                 f"{response.json().get('message', response.text)[:300]}")
            outcome[name] = "updated" if current.ok else "created"
        if outcome[name] == "unchanged" and _failed(client, name):
            client.request("POST", f"/connectors/{name}/restart?includeTasks=true&onlyFailed=true")
            outcome[name] = "restarted"
    return outcome


def _failed(client: ConnectClient, name: str) -> bool:
    response = client.request("GET", f"/connectors/{name}/status")
    if not response.ok:
        return False
    body = response.json()
    return "FAILED" in [body["connector"]["state"], *(t["state"] for t in body["tasks"])]


def status(settings: Settings, prefix: str = "") -> list[ConnectorState]:
    """Each defined connector's state and its tasks' (MISSING: not applied to the worker)."""
    client = ConnectClient(settings)
    states = []
    for defn in load_definitions():
        name = f"{prefix}{defn.name}"
        kind = "source" if isinstance(defn, SourceDefinition) else "sink"
        response = client.request("GET", f"/connectors/{name}/status")
        if response.status_code == 404:
            states.append(ConnectorState(name, kind, "MISSING"))
            continue
        body = response.json()
        tasks = [{"id": t["id"], "state": t["state"],
                  "trace": (t.get("trace") or "").split("\n", 1)[0]} for t in body["tasks"]]
        states.append(ConnectorState(name, kind, body["connector"]["state"], tasks))
    return states


def remedies(states: list[ConnectorState], settings: Settings) -> list[str]:
    """What to do about the connectors that do not run, one line per kind of trouble.

    Kafka Connect never restarts a FAILED task by itself (a sink whose retries ran out while
    Postgres was down, or that started while it was), so `status` has to say so."""
    failed = [s.name for s in states
              if s.state == "FAILED" or any(t["state"] == "FAILED" for t in s.tasks)]
    missing = [s.name for s in states if s.state == "MISSING"]
    waiting = [s.name for s in states if s.name not in failed + missing and not s.running]
    lines = []
    if failed:
        lines.append(
            f"{', '.join(failed)}: a failed task stays failed until it is restarted. Fix the "
            f"cause (the error above, the rest in {settings.logs_dir / 'connect.log'}; often "
            "Postgres was down), then run `./smart-shelf connect apply`: it restarts failed "
            "tasks, which resume from their last committed offset.")
    if missing:
        lines.append(f"{', '.join(missing)}: not on the worker; `./smart-shelf connect apply` "
                     "creates them.")
    if waiting:
        lines.append(f"{', '.join(waiting)}: not running yet (a worker that just started "
                     "assigns tasks within seconds; PAUSED stays until resumed). Check again; "
                     "if it stays so, `./smart-shelf connect apply`.")
    return lines
