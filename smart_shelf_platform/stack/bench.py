"""`smart-shelf bench up`: cold and warm start-up time and idle memory of the local stack.

Runs a throw-away stack in its own state directory on its own ports (offset by 100 from the
configured ones), so a stack you already run is not disturbed; `isolated_settings` makes such a
stack for the other benchmarks and tests too.
"""

from __future__ import annotations

import os
import platform
import shutil
import time
from collections.abc import Callable

import psutil

from smart_shelf_platform.passwords import PASSWORD_VARIABLES, stack_passwords
from smart_shelf_platform.settings import Settings
from smart_shelf_platform.stack.lifecycle import down, status, up

IDLE_SECONDS = 20


def isolated_settings(settings: Settings, home_name: str, port_offset: int, *,
                      fresh: bool = False) -> Settings:
    """A stack of its own in `<home>/<home_name>` (emptied first when `fresh`), every port
    `port_offset` above the configured one, no external server. A local stack's passwords are
    its own, in that home's secrets.env (unless set in the environment), as for a stack started
    with SMART_SHELF_HOME set to it: one left running can be reached that way."""
    home = settings.home / home_name
    if fresh:
        shutil.rmtree(home, ignore_errors=True)
    update = {
        "home": home,
        "data_dir": home / "data",
        "postgres_port": settings.postgres_port + port_offset,
        "redis_port": settings.redis_port + port_offset,
        "kafka_port": settings.kafka_port + port_offset,
        "kafka_controller_port": settings.kafka_controller_port + port_offset,
        "connect_port": settings.connect_port + port_offset,
        "dagster_port": settings.dagster_port + port_offset,
        "dashboard_port": settings.dashboard_port + port_offset,
        "postgres_external": False, "redis_external": False, "kafka_external": False,
        "kafka_bootstrap_override": "", "delta_root_override": "",
    }
    if settings.env == "local":
        own = stack_passwords(home)
        update |= {field: own[field] for field, variable in PASSWORD_VARIABLES.items()
                   if not os.environ.get(variable)}
    return settings.model_copy(update=update)


def stack_environment(settings: Settings) -> dict[str, str]:
    """The variables that point a shell at this stack (its home, data and ports)."""
    env = settings.as_env()
    return {name: env[name] for name in (
        "SMART_SHELF_HOME", "SMART_SHELF_DATA_DIR", "SMART_SHELF_STORES",
        *(f"SMART_SHELF_{c.upper()}_PORT" for c in (
            "postgres", "redis", "kafka", "kafka_controller", "connect", "dagster",
            "dashboard")))}


def _idle_memory(settings: Settings) -> dict[str, float]:
    time.sleep(IDLE_SECONDS)
    per = {s.name: round(s.rss_bytes / 2**20, 1) for s in status(settings)}
    per["total"] = round(sum(per.values()), 1)
    return per


def _timed_up(bench: Settings, label: str, progress: Callable[[str], None]):
    """(up report, seconds, idle memory) of one `up`."""
    progress(label)
    t0 = time.monotonic()
    report = up(bench, lambda _msg: None)
    seconds = time.monotonic() - t0
    progress(f"up took {seconds:.1f} s; measuring idle memory for {IDLE_SECONDS} s")
    return report, seconds, _idle_memory(bench)


def bench_up(settings: Settings, progress: Callable[[str], None]) -> dict:
    bench = isolated_settings(settings, "bench", 100, fresh=True)
    try:
        cold, cold_s, cold_mem = _timed_up(
            bench, "cold up (empty state: initdb, Kafka format, topics, tables, reference data)",
            progress)
        down(bench, lambda _msg: None)
        warm, warm_s, warm_mem = _timed_up(bench, "warm up (state kept from the cold run)",
                                           progress)
    finally:
        down(bench, lambda _msg: None)
        shutil.rmtree(bench.home, ignore_errors=True)
    return {
        "benchmark": "up",
        "machine": {"cpus": psutil.cpu_count(), "memory_gib": round(
            psutil.virtual_memory().total / 2**30, 1), "python": platform.python_version()},
        "cold_up_seconds": round(cold_s, 1),
        "cold_up_steps": cold.timings,
        "warm_up_seconds": round(warm_s, 1),
        "warm_up_steps": warm.timings,
        "idle_rss_mib_after_cold": cold_mem,
        "idle_rss_mib_after_warm": warm_mem,
        "aims": {"warm_up_seconds": 60, "idle_total_mib": 2560},
    }
