"""The streaming application as a stack component (`up` runs it): start, queries, stop."""

from __future__ import annotations

import time

import psutil
import pytest

from smart_shelf_platform.stack.components import Streaming
from streaming.runner import QUERIES

pytestmark = pytest.mark.integration


def _started_queries(log_text: str) -> set[str]:
    return {name for name in QUERIES if f"{name} started (checkpoint" in log_text}


def test_streaming_component_runs_every_query_and_stops_leaving_no_process(settings, query_ctx,
                                                                           tmp_path):
    # Its own state directory and Delta root, and topics of its own (query_ctx), so nothing of
    # the session's stack is read or written.
    private = settings.model_copy(update={
        "home": tmp_path / "home", "delta_root_override": query_ctx.delta_root,
        "streaming_enabled": True, "streaming_trigger_seconds": 1.0})
    comp = Streaming(private, extra_args=["--topic-prefix", query_ctx.topic_prefix])
    t0 = time.monotonic()
    family: list[psutil.Process] = []
    try:
        assert comp.start() is True
        assert time.monotonic() - t0 < comp.settle_seconds + 5, "up must not wait for Spark"
        pid = comp.pid()
        row = comp.status()
        assert row.healthy and row.pid == pid and row.port is None and row.name == "streaming"
        assert comp.log_file == tmp_path / "home" / "logs" / "streaming.log"

        deadline = t0 + 75
        while (comp.pid() is not None and time.monotonic() < deadline
               and _started_queries(comp.log_file.read_text()) != set(QUERIES)):
            time.sleep(1)
        log = comp.log_file.read_text()
        assert _started_queries(log) == set(QUERIES), log[-4000:]
        assert comp.healthy() and comp.start() is False  # running: a second `up` leaves it
        root = psutil.Process(pid)
        family = [root, *root.children(recursive=True)]
        assert any("java" in p.name() for p in family[1:]), "the Spark JVM runs under it"
        assert comp.status().rss_bytes > 200 * 2**20  # the JVM's memory counts too
    finally:
        t_stop = time.monotonic()
        comp.stop()
        stop_seconds = time.monotonic() - t_stop
    assert comp.pid() is None and not comp.status().healthy
    assert not [p.pid for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    # SIGTERM reaches the runner first, which stops its queries itself (no SIGKILL needed).
    assert stop_seconds < comp.stop_timeout
    assert "streaming: error" not in comp.log_file.read_text()
