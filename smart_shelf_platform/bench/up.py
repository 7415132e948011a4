"""`smart-shelf bench up`: cold and warm start-up time and idle memory of the local stack.

Runs a throw-away stack in its own state directory on its own ports (offset by 100 from the
configured ones, `stack.isolated`), so a stack you already run is not disturbed.
"""

from __future__ import annotations

import platform
import shutil
import time
from collections.abc import Callable

import psutil

from smart_shelf_platform.settings import Settings
from smart_shelf_platform.stack.isolated import isolated_settings
from smart_shelf_platform.stack.lifecycle import down, status, up

IDLE_SECONDS = 20


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
