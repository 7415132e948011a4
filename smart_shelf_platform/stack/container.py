"""One component per container: what `docker-compose.yml` runs (`smart-shelf container ...`).

`up` starts every component as a background process of one machine; a container runs one of
them in the foreground instead, as its main process, so Docker sees it exit, restarts it and
stops it. The commands are the components' own (`Component.command()` and the helpers `up`
uses), so a container runs exactly what `up` runs; only what a process of its own cannot share
changes: it logs to its standard output, listens on `SMART_SHELF_BIND_HOST` (0.0.0.0 in the
compose file) and finds its neighbours by their service names (`SMART_SHELF_*_HOST`).

- `serve(name)` replaces this process with the component's server (`SERVED`);
- `init(step)` runs one of the steps `up` runs between starting the servers and the streaming
  application (`INIT_STEPS`: migrations, topics, Delta tables, reference data, connectors),
  each idempotent, so a one-shot service may run it on every `docker compose up`;
- `healthy(name)` is the healthcheck of the components no stock tool can probe: Kafka (a topic
  listing over the listener the other services use), the bridge (its consumer groups), the
  streaming application (every query reporting its progress) and the clock (it has started).
"""

from __future__ import annotations

import json
import os
import pwd
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from smart_shelf_platform.settings import REPO_ROOT, Settings
from smart_shelf_platform.stack.process import StackError

# A container's logs are its standard output (`docker compose logs`).
STDOUT = Path("/dev/stdout")
# A query reports its progress after every micro-batch and every 5 s when idle
# (`streaming.progress`); one silent for this long is not running.
QUERY_SILENT_SECONDS = 60.0


def _exec(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None,
          user: str | None = None) -> None:
    """Become `cmd` (as `user` when given): the server is the container's main process."""
    if cwd is not None:
        os.chdir(cwd)
    if user is not None and os.geteuid() == 0:
        entry = pwd.getpwnam(user)
        os.setgid(entry.pw_gid)
        os.initgroups(user, entry.pw_gid)
        os.setuid(entry.pw_uid)
        os.environ["HOME"] = entry.pw_dir
    os.execvpe(cmd[0], cmd, {**os.environ, **(env or {})})


def _serve_postgres(settings: Settings) -> None:
    from smart_shelf_platform.stack.components import Postgres, _postgres_bin

    pg = Postgres(settings)
    if not (pg.data_dir / "PG_VERSION").exists():
        pg._initdb()
    pg.socket_dir.mkdir(exist_ok=True)
    pg._chown(pg.socket_dir)
    pg._write_hba()  # follows SMART_SHELF_BIND_HOST, on a data directory made before too
    _exec([_postgres_bin("postgres"), "-D", str(pg.data_dir), "-p", str(pg.port),
           "-c", f"listen_addresses={settings.bind_host}",
           "-c", f"unix_socket_directories={pg.socket_dir}"], user="postgres")


def _component_command(cls, settings: Settings) -> list[str]:
    comp = cls(settings)
    comp.log_file = STDOUT
    comp.dir.mkdir(parents=True, exist_ok=True)
    return comp.command()


def _serve_redis(settings: Settings) -> None:
    from smart_shelf_platform.stack.components import Redis

    _exec(_component_command(Redis, settings))


def _serve_kafka(settings: Settings) -> None:
    from smart_shelf_platform.stack.components import Kafka

    _exec(_component_command(Kafka, settings))


def _serve_connect(settings: Settings) -> None:
    from smart_shelf_platform.stack.components import Connect

    _exec(_component_command(Connect, settings))


def _serve_bridge(settings: Settings) -> None:
    from smart_shelf_platform.stack.components import Bridge

    _exec(_component_command(Bridge, settings), env=settings.as_env())


def _serve_streaming(settings: Settings) -> None:
    from smart_shelf_platform.stack.components import Streaming

    _exec(_component_command(Streaming, settings), env=settings.as_env(), cwd=REPO_ROOT)


def _serve_dashboard(settings: Settings) -> None:
    from smart_shelf_platform.stack.dashboard_service import MEMORY_ENV, streamlit_command

    _exec(streamlit_command(settings), env=settings.as_env() | MEMORY_ENV, cwd=REPO_ROOT)


def code_location() -> dict:
    """The one code location of workspace.yaml (its module, attribute and name)."""
    entries = yaml.safe_load((REPO_ROOT / "workspace.yaml").read_text())["load_from"]
    return entries[0]["python_module"]


def grpc_workspace(settings: Settings) -> Path:
    """A workspace file that loads the code location from the code server's container."""
    from smart_shelf_platform.stack.dagster_service import dagster_home

    if not settings.dagster_code_host:
        raise StackError("SMART_SHELF_DAGSTER_CODE_HOST is empty: the Dagster webserver and "
                         "daemon of a container load the code from the code server's host")
    path = dagster_home(settings) / "workspace-grpc.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    # The webserver and the daemon share the Dagster home: written aside, renamed into place.
    staged = path.with_name(f".{path.name}.{os.getpid()}")
    staged.write_text("# Written by smart_shelf_platform/stack/container.py; edits are "
                      "overwritten.\n" + yaml.safe_dump({"load_from": [{"grpc_server": {
                          "host": settings.dagster_code_host,
                          "port": settings.dagster_code_port,
                          "location_name": code_location()["location_name"]}}]}))
    staged.replace(path)
    return path


def _dagster_env(settings: Settings) -> dict[str, str]:
    from smart_shelf_platform.stack.dagster_service import PASSWORD_VAR, write_dagster_home

    return {**settings.as_env(), PASSWORD_VAR: settings.postgres_password,
            "DAGSTER_HOME": str(write_dagster_home(settings))}


def _dagster_bin(name: str) -> str:
    from smart_shelf_platform.stack.dagster_service import _dagster_executable

    return str(Path(_dagster_executable()).with_name(name))


def _serve_dagster_code(settings: Settings) -> None:
    location = code_location()
    _exec([_dagster_bin("dagster"), "code-server", "start", "-h", settings.bind_host,
           "-p", str(settings.dagster_code_port), "-m", location["module_name"],
           "-a", location["attribute"], "-d", str(REPO_ROOT),
           "--location-name", location["location_name"]],
          env=_dagster_env(settings), cwd=REPO_ROOT)


def _serve_dagster_webserver(settings: Settings) -> None:
    _exec([_dagster_bin("dagster-webserver"), "-h", settings.bind_host,
           "-p", str(settings.dagster_port), "-w", str(grpc_workspace(settings))],
          env=_dagster_env(settings), cwd=REPO_ROOT)


def _serve_dagster_daemon(settings: Settings) -> None:
    _exec([_dagster_bin("dagster-daemon"), "run", "-w", str(grpc_workspace(settings))],
          env=_dagster_env(settings), cwd=REPO_ROOT)


SERVED: dict[str, Callable[[Settings], None]] = {
    "postgres": _serve_postgres,
    "redis": _serve_redis,
    "kafka": _serve_kafka,
    "connect": _serve_connect,
    "bridge": _serve_bridge,
    "streaming": _serve_streaming,
    "dagster-code": _serve_dagster_code,
    "dagster-webserver": _serve_dagster_webserver,
    "dagster-daemon": _serve_dagster_daemon,
    "dashboard": _serve_dashboard,
}


def _one_of(table: dict[str, Callable], name: str, kind: str) -> Callable:
    """`table[name]`, or one line naming the choices."""
    if name not in table:
        raise StackError(f"unknown {kind} {name!r}; one of {', '.join(table)}")
    return table[name]


def serve(name: str, settings: Settings) -> None:
    _one_of(SERVED, name, "component")(settings)


# --- one-shot steps ---------------------------------------------------------------------------


def _init_migrations(settings: Settings) -> str:
    from smart_shelf_platform.stack import migrations
    from smart_shelf_platform.stack.dagster_service import ensure_dagster_database

    migrations.ensure_database_and_roles(settings)
    applied = migrations.apply_migrations(settings)
    ensure_dagster_database(settings)
    return f"{len(applied)} migrations applied"


def _init_topics(settings: Settings) -> str:
    from smart_shelf_platform.stack import topics

    outcome = topics.ensure_topics(settings)
    created = sum(1 for v in outcome.values() if v == "created")
    return f"{len(outcome)} topics ({created} new)"


def _init_delta_tables(settings: Settings) -> str:
    from smart_shelf_platform.stack import delta_tables

    outcome = delta_tables.ensure_delta_tables(settings.delta_root)
    created = sum(1 for v in outcome.values() if v == "created")
    return f"{len(outcome)} Delta tables ({created} new)"


def _init_reference_data(settings: Settings) -> str:
    from smart_shelf_platform.stack.lifecycle import load_reference_data

    return f"reference rows {sum(load_reference_data(settings).values())}"


def _init_connectors(settings: Settings) -> str:
    from smart_shelf_platform.stack import connect

    outcome = connect.apply(settings)
    return f"{len(outcome)} connectors: " + ", ".join(f"{k} {v}" for k, v in outcome.items())


INIT_STEPS: dict[str, Callable[[Settings], str]] = {
    "migrations": _init_migrations,
    "topics": _init_topics,
    "delta-tables": _init_delta_tables,
    "reference-data": _init_reference_data,
    "connectors": _init_connectors,
}


def init(step: str, settings: Settings) -> str:
    return _one_of(INIT_STEPS, step, "step")(settings)


# --- healthchecks -----------------------------------------------------------------------------


def _kafka_healthy(settings: Settings) -> bool:
    from smart_shelf_platform.stack.topics import admin_client

    return len(admin_client(settings).list_topics(timeout=5).brokers) > 0


def _bridge_healthy(settings: Settings) -> bool:
    from smart_shelf_platform.stack.components import Bridge

    return Bridge(settings).consuming()


def streaming_silent(settings: Settings, now: float | None = None) -> list[str]:
    """The streaming application's queries that have not reported progress lately (all of them
    before it has started); empty while every query runs."""
    import redis

    from smart_shelf_platform.clock import DEFAULT_KEY_PREFIX
    from smart_shelf_platform.progress import progress_key
    from streaming.runner import spark_query_names

    client = redis.Redis.from_url(settings.redis_url, socket_timeout=2)
    try:
        raw = client.hgetall(progress_key(DEFAULT_KEY_PREFIX))
    finally:
        client.close()
    now = time.time() if now is None else now
    seen = {k.decode(): json.loads(v)["at"] for k, v in raw.items()}
    return [q for q in spark_query_names() if now - seen.get(q, 0.0) > QUERY_SILENT_SECONDS]


def _streaming_healthy(settings: Settings) -> bool:
    return not streaming_silent(settings)


def _clock_started(settings: Settings) -> bool:
    """The clock has written the simulated time (`sim:now`), which it moves at every step."""
    import redis

    from smart_shelf_platform.clock import DEFAULT_KEY_PREFIX

    client = redis.Redis.from_url(settings.redis_url, socket_timeout=2)
    try:
        return client.exists(f"{DEFAULT_KEY_PREFIX}now") == 1
    finally:
        client.close()


PROBED: dict[str, Callable[[Settings], bool]] = {
    "kafka": _kafka_healthy,
    "bridge": _bridge_healthy,
    "streaming": _streaming_healthy,
    "clock": _clock_started,
}


def healthy(name: str, settings: Settings) -> bool:
    if name not in PROBED:
        raise StackError(f"no probe for {name!r}; one of {', '.join(PROBED)} (the others have "
                         "their own: pg_isready, redis-cli, HTTP endpoints)")
    try:
        return PROBED[name](settings)
    except Exception:  # noqa: BLE001 - any failure of a probe means "not healthy"
        return False
