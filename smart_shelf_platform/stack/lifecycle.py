"""`up`, `down` and `status` of the local stack.

`up` is idempotent: it starts what is not running, waits for health, then creates or aligns
everything the contracts describe (database, roles, migrations, topics, Delta tables), loads
the reference data and applies the Kafka Connect connectors. If any step fails, the services this call started are stopped again, so a
failed `up` leaves no half-started stack behind. A stack still running from before passwords
were required is stopped first, then started with them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from smart_shelf_platform import passwords
from smart_shelf_platform.refdata.generator import sha256_of
from smart_shelf_platform.settings import Settings
from smart_shelf_platform.stack import connect, delta_tables, migrations, topics
from smart_shelf_platform.stack.components import Component, ComponentStatus, all_components
from smart_shelf_platform.stack.process import StackError
from smart_shelf_platform.stack.setup import check_java, jars_ready, missing_debian_packages

log = logging.getLogger(__name__)
Progress = Callable[[str], None]


@dataclass
class UpReport:
    started: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    topics: dict[str, str] = field(default_factory=dict)
    migrations: list[str] = field(default_factory=list)
    delta_tables: dict[str, str] = field(default_factory=dict)
    reference_rows: dict[str, int] = field(default_factory=dict)
    connectors: dict[str, str] = field(default_factory=dict)

    @property
    def total_seconds(self) -> float:
        return sum(self.timings.values())


def preflight(settings: Settings) -> None:
    """Fail fast, with what to do, before anything is started."""
    refused = passwords.refusals(settings)
    if refused:
        raise StackError(f"SMART_SHELF_ENV={settings.env} needs passwords of its own: set "
                         f"{', '.join(refused)} (unset, or a role's name, is refused outside "
                         "local)")
    check_java()
    missing = missing_debian_packages()
    needed = [p for p in missing
              if (p == "postgresql" and not settings.postgres_external)
              or (p == "redis-server" and not settings.redis_external)]
    if needed:
        raise StackError(f"missing {', '.join(needed)}: run `./smart-shelf setup` first")
    if not jars_ready(settings):
        raise StackError("JVM jars are not resolved yet: run `./smart-shelf setup` first")


def up(settings: Settings, progress: Progress = print) -> UpReport:
    preflight(settings)
    settings.home.mkdir(parents=True, exist_ok=True)
    report = UpReport()
    started: list[Component] = []

    def timed(step: str, fn):
        t0 = time.monotonic()
        result = fn()
        report.timings[step] = round(time.monotonic() - t0, 2)
        return result

    comps = all_components(settings)
    if any(comp.runs_without_password() for comp in comps):
        progress("the stack runs without passwords (started before they were required); "
                 "restarting it")
        down(settings, progress)

    def start(comp: Component) -> None:
        progress(f"starting {comp.name}" + (f" (port {comp.port})" if comp.port else ""))
        if timed(comp.name, comp.start):
            started.append(comp)
            report.started.append(comp.name)

    try:
        for comp in comps:
            if not comp.after_setup:
                start(comp)
        progress("applying Postgres migrations")
        timed("postgres_roles", lambda: migrations.ensure_database_and_roles(settings))
        report.migrations = timed("migrations", lambda: migrations.apply_migrations(settings))
        progress("creating Kafka topics")
        report.topics = timed("topics", lambda: topics.ensure_topics(settings))
        progress("creating Delta tables")
        report.delta_tables = timed(
            "delta_tables", lambda: delta_tables.ensure_delta_tables(settings.delta_root))
        progress("loading reference data")
        report.reference_rows = timed("reference_data", lambda: load_reference_data(settings))
        # After the topics and the config rows: the CDC source snapshots those rows into them.
        if settings.connect_enabled:
            progress("applying Kafka Connect connectors")
            report.connectors = timed("connectors", lambda: connect.apply(settings))
        # The streaming application reads those topics, tables and reference data.
        for comp in comps:
            if comp.after_setup:
                start(comp)
    except BaseException:
        for comp in reversed(started):
            log.warning("stopping %s after a failed start-up", comp.name)
            comp.stop()
        raise
    return report


def reference_files(settings: Settings) -> dict[str, Path]:
    """The reference data files for these settings, generated if missing or made otherwise."""
    from smart_shelf_platform.refdata import generate

    out_dir = settings.data_dir / "reference"
    wanted = {"seed": settings.seed, "stores": settings.stores,
              "sim_start": settings.sim_start.isoformat()}
    files = _files_if_current(out_dir / "manifest.json", wanted)
    if files is None:
        files = generate(out_dir, seed=settings.seed, stores=settings.stores,
                         sim_start=settings.sim_start)
    return files


def load_reference_data(settings: Settings) -> dict[str, int]:
    """Generate the reference data if needed, then load it into `ref.*` and `config.*`."""
    from smart_shelf_platform.refdata import load_into_postgres

    return load_into_postgres(settings.postgres_dsn(), reference_files(settings))


def _files_if_current(manifest: Path, wanted: dict) -> dict[str, Path] | None:
    try:
        meta = json.loads(manifest.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if any(str(meta.get(k)) != str(v) for k, v in wanted.items()):
        return None
    files = {}
    for name, info in meta.get("files", {}).items():
        path = manifest.parent / info["file"]
        if not path.exists() or sha256_of(path) != info["sha256"]:
            return None
        files[name] = path
    return files or None


def down(settings: Settings, progress: Progress = print) -> list[str]:
    stopped = []
    # Disabled ones too: a process started before its SMART_SHELF_*_ENABLED became false.
    for comp in reversed(all_components(settings, include_disabled=True)):
        if comp.external or comp.pid() is None:
            continue
        progress(f"stopping {comp.name}")
        comp.stop()
        stopped.append(comp.name)
    return stopped


def status(settings: Settings) -> list[ComponentStatus]:
    return [comp.status() for comp in all_components(settings)]


def wait_for_streaming(settings: Settings, progress: Progress, timeout: float = 600) -> None:
    """With the streaming application running, wait until every one of its queries has started
    and read its topics: the clock's holds wait only for queries that report, so a simulation
    started right after `up` would otherwise run ahead of a query still starting (and a day's
    features be computed before its receipts reached Delta)."""
    import redis

    from smart_shelf_platform.clock import DEFAULT_KEY_PREFIX
    from smart_shelf_platform.progress import wait_until_read
    from smart_shelf_platform.stack.components import Streaming
    from streaming.runner import spark_query_names

    if Streaming(settings).pid() is None:
        return
    queries = spark_query_names()
    progress(f"waiting until the {len(queries)} streaming queries have started and read "
             "their topics")
    client = redis.Redis.from_url(settings.redis_url)
    try:
        wait_until_read(client, DEFAULT_KEY_PREFIX, settings.kafka_bootstrap, queries=queries,
                        timeout=timeout, progress=progress)
    except TimeoutError as exc:
        raise StackError(f"{exc}: see {settings.logs_dir / 'streaming.log'}") from None
    finally:
        client.close()
