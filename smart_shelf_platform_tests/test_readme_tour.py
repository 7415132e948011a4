"""README's ten-minute tour, its commands taken from README.md and run as it writes them.

Every command of the tour is a command of the CLI that takes the options the tour gives it
(`--help` after them, no stack needed; `test_docs.py` checks `--help` of every command README
names). Those that need no long wait then run through the `./smart-shelf` launcher, from the
repository's root, and print what the tour says a reader will see: `status` against the test
stack, one line per component, all healthy; `verify` and `report` on a tiny run of the
platform's own (one store's first half hour of simulated time, through the bridge and the state
queries), `verify` exact. `up` is what the test stack ran; `simulate` runs a day in the tour and
is tested on shorter runs elsewhere (test_simulate.py, test_replenishment_loop.py).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest

from smart_shelf_platform.settings import REPO_ROOT

TOUR_HEADING = "## A ten-minute tour"
TINY_RUN = timedelta(minutes=30)


def tour_text() -> str:
    """README's tour: from its heading to the next section."""
    readme = (REPO_ROOT / "README.md").read_text()
    start = readme.index(TOUR_HEADING)
    end = readme.find("\n## ", start + len(TOUR_HEADING))
    return readme[start:end if end != -1 else None]


def tour_commands() -> dict[str, list[str]]:
    """Each command of the tour as written (`./smart-shelf status` -> [./smart-shelf, status]),
    by its CLI command."""
    commands = [shlex.split(" ".join(text.split()))
                for text in re.findall(r"`(\./smart-shelf [^`]+)`", tour_text())]
    return {words[1]: words for words in commands}


def tour_says(prefix: str) -> str:
    """The tour's quoted output that starts with `prefix`, on one line."""
    quoted = [" ".join(q.split()) for q in re.findall(r"`([^`]+)`", tour_text())]
    found = [q for q in quoted if q.startswith(prefix)]
    assert len(found) == 1, (prefix, found)
    return found[0]


def as_pattern(quoted: str) -> re.Pattern:
    """The tour's quoted output as a pattern: its `…` stand for a number."""
    return re.compile(r"\d[\d,.]*".join(re.escape(part) for part in quoted.split("…")))


def run_as_written(words: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """A tour command through the launcher, from the repository's root, on this interpreter's
    virtualenv."""
    return subprocess.run(words, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "SMART_SHELF_VENV": sys.prefix, **env})


def test_the_tour_names_its_steps_commands():
    assert ["up", "status", "simulate", "verify", "report"] == list(tour_commands())
    assert tour_commands()["status"] == ["./smart-shelf", "status"]
    assert tour_commands()["verify"] == ["./smart-shelf", "verify"]
    assert as_pattern(tour_says("verify: OK")).fullmatch(
        "verify: OK (1 store, 3,417 keys, 0 bad events dead-lettered)")


def test_every_tour_command_as_written_takes_its_options():
    """`--help` after each command with the tour's options: an option the CLI no longer has
    fails here."""
    from typer.testing import CliRunner

    from smart_shelf_platform.cli import app

    runner = CliRunner()
    for words in tour_commands().values():
        result = runner.invoke(app, [*words[1:], "--help"])
        assert result.exit_code == 0, (words, result.output)
        assert "Usage:" in result.output, words


@pytest.mark.integration
def test_status_as_written_shows_every_component_healthy(settings):
    """The tour: `status` prints one line per component, `healthy`, with its port, pid and
    memory (the test stack runs Postgres, Redis, Kafka and Connect)."""
    from smart_shelf_platform.stack.lifecycle import status

    result = run_as_written(tour_commands()["status"], settings.as_env())
    assert result.returncode == 0, result.stdout + result.stderr
    line = re.compile(r"(?P<name>\S+) +healthy +port (?P<port>\d+) +pid (?:\d+|external) +"
                      r"rss +[\d.]+ MiB")
    rows = [line.fullmatch(text.rstrip()) for text in result.stdout.splitlines()]
    assert all(rows), result.stdout
    components = status(settings)
    assert [r["name"] for r in rows] == [c.name for c in components]
    assert {"postgres", "redis", "kafka", "connect"} <= {r["name"] for r in rows}
    assert [int(r["port"]) for r in rows] == [c.port for c in components]


@pytest.fixture(scope="module")
def tiny_run(settings, spark, tmp_path_factory):
    """One store's first half hour of simulated time (a few hundred events) through the
    simulator, Redis, the bridge and the platform's state queries, on a database (the ledger),
    topics, Delta tables, streams and clock of its own. Yields the settings a user of that run
    has (its database and Delta root)."""
    import redis

    from producers.run import SimulateOptions, simulate
    from smart_shelf_platform_tests.streaming_support import (
        drop_redis_keys, drop_topics, private_context, run_to_end,
    )
    from smart_shelf_platform_tests.test_daily_features import drop_database, private_database
    from smart_shelf_platform_tests.test_streaming_e2e import bridge_into
    from streaming import runner

    tmp = tmp_path_factory.mktemp("tour")
    own = private_database(settings, delta_root_override=str(tmp / "delta"))
    client = redis.Redis.from_url(own.redis_url)
    clock_prefix, stream_prefix = (f"test-{uuid.uuid4().hex}:" for _ in range(2))
    ctx = private_context(own, client, clock_prefix, tmp)
    try:
        sim = simulate(own, SimulateOptions(
            until=own.sim_start + TINY_RUN, speed=None, effects=False,
            stream_prefix=stream_prefix, clock_key_prefix=clock_prefix,
            clock_topic=ctx.topic("clock_ticks")), progress=lambda _m: None)
        assert sim.events_emitted > 0
        bridge_into(ctx, own, stream_prefix)
        for stage in runner.arranged([q.name for q in runner.STAGES[0]]):
            for spec in stage:
                run_to_end(spark, ctx, spec)
        yield own
    finally:
        drop_topics(ctx)
        drop_redis_keys(client, clock_prefix, stream_prefix)
        client.close()
        drop_database(settings, own)


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_verify_as_written_is_exact_on_a_tiny_run(tiny_run):
    """The tour: `verify` prints a line per table and per store and ends with `verify: OK (1
    store, … keys, 0 bad events dead-lettered)`, exit code 0."""
    result = run_as_written(tour_commands()["verify"], tiny_run.as_env())
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    lines = result.stdout.splitlines()
    for table in ("shelf_state", "shelf_batch_state", "wh_state", "wh_batch_state"):
        assert any(re.fullmatch(rf"{table}: [1-9]\d* keys, 0 differences", x) for x in lines), \
            (table, lines)
    assert re.fullmatch(r"  S001: [1-9]\d* keys, 0 differences, 0 bad events injected",
                        lines[-2]), lines[-4:]
    assert as_pattern(tour_says("verify: OK")).fullmatch(lines[-1]), lines[-1]


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_report_as_written_has_a_column_for_the_store_and_the_total(tiny_run):
    """The tour: `report` prints the figures, one column per store and a total."""
    result = run_as_written(tour_commands()["report"], tiny_run.as_env())
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    lines = result.stdout.splitlines()
    day = tiny_run.sim_start.date()
    assert lines[0].startswith(f"report: {day} to {day} (0.02 simulated days, 1 store)"), lines
    assert lines[1].split() == ["S001", "total"]
    for figure in ("units sold", "fill rate, % of demand", "lost sales, units",
                   "waste on shelves, units", "supplier orders placed",
                   "average stock cover, days", "alerts, all types"):
        row = next((x for x in lines if x.startswith(figure + "  ")), None)
        assert row is not None and len(row[len(figure):].split()) == 2, (figure, lines)
    store, chain = next(x for x in lines if x.startswith("units sold  ")).split()[-2:]
    assert store == chain, lines  # one store: the total is that store's
