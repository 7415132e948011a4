"""Unit tests of the local stack's helpers (no services)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from smart_shelf_platform.stack.components import _kafka_cluster_id
from smart_shelf_platform.stack.process import TreeSampler
from smart_shelf_platform.stack.setup import _artifact


def test_kafka_cluster_ids_never_look_like_an_option():
    # The storage tool reads an id starting with '-' as an option and refuses to format.
    ids = {_kafka_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000 and not any(i.startswith("-") for i in ids)


@pytest.mark.parametrize("jar, artifact", [
    ("jackson-core-2.13.5.jar", "jackson-core"),
    ("spark-sql-kafka-0-10_2.13-4.2.0.jar", "spark-sql-kafka-0-10_2.13"),
    ("zstd-jni-1.5.7-3.jar", "zstd-jni"),
    ("delta-spark_2.13-4.4.0.jar", "delta-spark_2.13"),
    ("hk2-api-3.0.6.jar", "hk2-api"),
])
def test_jar_names_map_to_their_artifact_so_pyspark_duplicates_are_skipped(jar, artifact):
    assert _artifact(jar) == artifact


# --- the streaming application as a stack component -------------------------------------------


def _settings(tmp_path, **overrides):
    from smart_shelf_platform.settings import Settings

    return Settings(home=tmp_path / "home", **overrides)


def test_streaming_is_started_last_when_enabled_and_left_out_when_disabled(tmp_path):
    from smart_shelf_platform.stack.components import Streaming, all_components

    comps = all_components(_settings(tmp_path, bridge_enabled=True, dagster_enabled=True,
                                     dashboard_enabled=True, streaming_enabled=True))
    assert [c.name for c in comps] == ["postgres", "redis", "kafka", "connect", "bridge",
                                       "dagster", "dashboard", "streaming"]
    assert isinstance(comps[-1], Streaming) and comps[-1].after_setup
    assert not any(c.after_setup for c in comps[:-1])
    off = _settings(tmp_path, streaming_enabled=False, bridge_enabled=False)
    assert "streaming" not in [c.name for c in all_components(off)]
    # `down` still stops one started before it was disabled.
    assert [c.name for c in all_components(off, include_disabled=True)][-4:] == [
        "bridge", "dagster", "dashboard", "streaming"]


def test_streaming_settings_come_from_the_environment_and_reach_the_runner(tmp_path, monkeypatch):
    from pydantic import ValidationError

    from smart_shelf_platform.settings import Settings
    from smart_shelf_platform.stack import components

    monkeypatch.setenv("SMART_SHELF_STREAMING_ENABLED", "false")
    monkeypatch.setenv("SMART_SHELF_STREAMING_TRIGGER_SECONDS", "0.5")
    settings = Settings(home=tmp_path)
    assert settings.streaming_enabled is False and settings.streaming_trigger_seconds == 0.5
    assert Settings(home=tmp_path, streaming_enabled=True).streaming_enabled  # default: env
    monkeypatch.delenv("SMART_SHELF_STREAMING_ENABLED")
    monkeypatch.delenv("SMART_SHELF_STREAMING_TRIGGER_SECONDS")
    assert Settings().streaming_trigger_seconds == 2.0
    with pytest.raises(ValidationError):
        Settings(streaming_trigger_seconds=0)

    spawned = {}
    monkeypatch.setattr(components, "spawn", lambda cmd, log, pid, env=None, cwd=None:
                        spawned.update(cmd=cmd, log=log, pid=pid, env=env))
    comp = components.Streaming(settings, extra_args=["--query", "alerts_sink"])
    comp._start()
    assert spawned["cmd"][1:] == ["-m", "streaming.runner", "--trigger-seconds", "0.5",
                                  "--query", "alerts_sink"]
    assert spawned["env"] == settings.as_env()
    assert spawned["env"]["SMART_SHELF_HOME"] == str(tmp_path)
    assert spawned["log"] == tmp_path / "logs" / "streaming.log"
    assert spawned["pid"] == tmp_path / "streaming" / "streaming.pid"


def test_up_starts_streaming_after_topics_tables_and_reference_data(tmp_path, monkeypatch):
    from smart_shelf_platform.stack import lifecycle

    steps: list[str] = []

    class Fake:
        port = None
        external = False

        def __init__(self, name, after_setup=False):
            self.name, self.after_setup = name, after_setup

        def start(self):
            steps.append(f"start {self.name}")
            return True

        def stop(self):
            steps.append(f"stop {self.name}")

        def runs_without_password(self):
            return False

    comps = [Fake("kafka"), Fake("bridge"), Fake("streaming", after_setup=True)]
    monkeypatch.setattr(lifecycle, "all_components", lambda _s: comps)
    monkeypatch.setattr(lifecycle, "preflight", lambda _s: None)
    monkeypatch.setattr(lifecycle.migrations, "ensure_database_and_roles", lambda _s: None)
    monkeypatch.setattr(lifecycle.migrations, "apply_migrations", lambda _s: [])
    monkeypatch.setattr(lifecycle.topics, "ensure_topics", lambda _s: steps.append("topics") or {})
    monkeypatch.setattr(lifecycle.delta_tables, "ensure_delta_tables",
                        lambda _r: steps.append("tables") or {})
    monkeypatch.setattr(lifecycle, "load_reference_data",
                        lambda _s: steps.append("reference") or {})
    # Never the Connect worker that may listen on the configured port.
    monkeypatch.setattr(lifecycle.connect, "apply", lambda _s: steps.append("connectors") or {})
    report = lifecycle.up(_settings(tmp_path), progress=lambda _m: None)
    assert steps == ["start kafka", "start bridge", "topics", "tables", "reference",
                     "connectors", "start streaming"]
    assert report.started == ["kafka", "bridge", "streaming"]


def _stub_streaming(tmp_path, code: str):
    """A Streaming component whose process runs `code` instead of the Spark runner."""
    import sys

    from smart_shelf_platform.stack.components import Streaming

    class Stub(Streaming):
        settle_seconds = 1.0
        stop_timeout = 5.0

        def command(self):
            return [sys.executable, "-c", code]

    return Stub(_settings(tmp_path))


def test_streaming_that_exits_at_once_fails_up_with_its_log(tmp_path):
    from smart_shelf_platform.stack.process import StackError

    comp = _stub_streaming(tmp_path, "import sys; print('no jars'); sys.exit(3)")
    with pytest.raises(StackError, match="streaming exited during start-up; see .*streaming.log"):
        comp.start()
    assert comp.pid() is None and not comp.pid_file.exists()
    assert "no jars" in comp.log_file.read_text()


def test_streaming_counts_as_started_while_alive_and_stops_with_no_process_left(tmp_path):
    import psutil

    comp = _stub_streaming(tmp_path, "import time; time.sleep(60)")
    assert comp.start() is True
    pid = comp.pid()
    assert pid and comp.healthy() and comp.status().healthy
    assert comp.start() is False  # already running
    comp.stop()
    assert comp.pid() is None and not comp.healthy() and not psutil.pid_exists(pid)


def test_leader_first_termination_lets_the_leader_stop_its_children_then_clears_the_group(
        tmp_path):
    import sys
    import time

    import psutil

    from smart_shelf_platform.stack.process import spawn, terminate

    seen = tmp_path / "seen"
    script = (
        "import signal, subprocess, sys, time\n"
        "child = subprocess.Popen(['sleep', '60'])\n"
        "def on_term(*_):\n"
        "    open(sys.argv[1], 'w').write('alive' if child.poll() is None else 'gone')\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, on_term)\n"
        "open(sys.argv[1] + '.child', 'w').write(str(child.pid))\n"
        "while True: time.sleep(0.1)\n")
    pid = spawn([sys.executable, "-c", script, str(seen)], tmp_path / "log", tmp_path / "pid")
    child_file = tmp_path / "seen.child"
    deadline = time.monotonic() + 10
    while not child_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(child_file.read_text())
    terminate(pid, timeout=10, leader_first=True)
    assert seen.read_text() == "alive", "the child got the signal before the leader handled it"
    assert not psutil.pid_exists(pid)
    try:
        assert psutil.Process(child).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        pass


def test_down_stops_a_streaming_application_even_once_disabled(tmp_path):
    import sys

    import psutil

    from smart_shelf_platform.stack import lifecycle
    from smart_shelf_platform.stack.components import Streaming
    from smart_shelf_platform.stack.process import spawn

    settings = _settings(tmp_path, streaming_enabled=False)
    comp = Streaming(settings)
    comp.dir.mkdir(parents=True)
    pid = spawn([sys.executable, "-c", "import time; time.sleep(60)"], comp.log_file,
                comp.pid_file)
    assert lifecycle.down(settings, progress=lambda _m: None) == ["streaming"]
    assert comp.pid() is None and not psutil.pid_exists(pid)


def _sampled(program: str) -> TreeSampler:
    """A sampler of `program`'s process tree after 2.5 s of its run, the program ended."""
    process = subprocess.Popen([sys.executable, "-c", program])
    sampler = TreeSampler(process.pid, interval=0.2)
    sampler.start()
    time.sleep(2.5)
    sampler.done.set()
    process.wait()
    return sampler


def test_the_benchmark_sampler_counts_a_forked_copy_of_a_process_once():
    """A fork shares its parent's pages until it runs a program of its own (the Spark JVM
    spawning `chmod`): the peak is the parent's memory, not twice it."""
    mib = 200
    program = ("import os, time\n"
               f"held = bytearray({mib} * 2**20)\n"
               "for i in range(0, len(held), 4096): held[i] = 1\n"
               "os.fork()\n"
               "time.sleep(3)\n")
    sampler = _sampled(program)
    assert mib < sampler.peak_rss / 2**20 < 1.5 * mib
    assert len(sampler.peak_processes) == 1


def test_the_benchmark_sampler_counts_a_child_running_its_own_program_on_the_same_executable():
    """Dagster's webserver, daemon and code servers are Python processes started by Python: each
    counts (its private memory), although it runs its parent's executable."""
    mib = 200
    child = ("import time\n"
             f"held = bytearray({mib} * 2**20)\n"
             "for i in range(0, len(held), 4096): held[i] = 1\n"
             "time.sleep(3)\n")
    program = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {child!r}])\n"
    sampler = _sampled(program)
    assert sampler.peak_rss / 2**20 > mib
    assert len(sampler.peak_processes) == 2


def test_the_benchmark_sampler_leaves_out_cpu_spent_before_the_measured_phase():
    """`bench stream` measures its live phase after start-up and warm-up: a process that burns
    a second of CPU first (however long a busy machine takes to give it that), says so, and then
    sleeps used no CPU from then on."""
    program = ("import sys, time\n"
               "while time.process_time() < 1.0: pass\n"
               "print('busy done', flush=True)\n"
               "time.sleep(2)\n")
    process = subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE, text=True)
    sampler = TreeSampler(process.pid, interval=0.1)
    sampler.start()
    assert process.stdout.readline().strip() == "busy done"
    sampler.count_cpu_from(time.time() + 0.3)
    time.sleep(1.5)
    sampler.done.set()
    process.wait()
    assert sum(sampler.cpu.values()) > 0.8  # the busy second was seen
    assert sampler.cpu_seconds < 0.1


def test_the_stream_benchmark_breaks_a_host_s_batches_down_by_stage_costliest_first():
    from smart_shelf_platform.bench.stream import stage_breakdown

    batches = [{"started_at": 10.0, "finished_at": 11.0, "stages_ms": {"read": 300, "sink": 600}},
               {"started_at": 20.0, "finished_at": 23.0,
                "stages_ms": {"read": 900, "sink": 200, "fold": 1800}}]
    assert stage_breakdown(batches) == {
        "batches": 2, "mean_ms": 2000,
        "mean_ms_by_stage": {"fold": 900, "read": 600, "sink": 400}}
    assert list(stage_breakdown(batches)["mean_ms_by_stage"]) == ["fold", "read", "sink"]
    assert stage_breakdown([]) == {"batches": 0}


def test_the_decision_chain_is_timed_from_the_last_event_of_the_decision_s_shelf_before_it():
    from smart_shelf_platform.bench.stream import chain_latencies, percentiles

    events = [("S001", "A", 1_000), ("S001", "A", 4_000), ("S001", "B", 2_000),
              ("S002", "A", 4_500), ("S001", "A", 9_000)]
    decisions = [("S001", "A", 7_000),  # after A's 4,000 event (not S002's, not the later one)
                 ("S001", "B", 2_500), ("S001", "C", 3_000),  # C: no event, left out
                 ("S001", "A", 4_000)]  # in the same millisecond: the event before it counts
    assert chain_latencies(events, decisions) == [3_000, 500, 3_000]
    assert percentiles([3_000, 500, 3_000, 100]) == {"p50": 500, "p95": 3_000}
    assert percentiles(list(range(1, 101))) == {"p50": 50, "p95": 95}
    assert percentiles([]) == {"p50": None, "p95": None}


def test_a_table_from_an_earlier_version_gains_nullable_columns_or_is_named_with_its_fix(
        tmp_path):
    """`up` on tables an earlier version made: a contract's new nullable column is added; a
    new required one cannot be (the rows have no value for it), and the error says which
    table to remove."""
    import pyarrow as pa
    import pytest
    from deltalake import DeltaTable, write_deltalake

    from smart_shelf_platform.contracts.catalogue import DELTA_TABLES_BY_PATH
    from smart_shelf_platform.stack.delta_tables import ensure_delta_tables, table_uri

    root = str(tmp_path)
    predictions = DELTA_TABLES_BY_PATH["analytics/predictions"]
    old = pa.table({"store_id": ["S001"], "shelf_id": ["SH1"]})
    write_deltalake(table_uri(root, predictions), old)
    with pytest.raises(ValueError) as raised:
        ensure_delta_tables(root)
    message = str(raised.value)
    assert "analytics/predictions was made by an earlier version" in message
    assert f"remove {table_uri(root, predictions)}" in message and "Dagster writes it" in message

    alerts, root = DELTA_TABLES_BY_PATH["ops/alerts"], str(tmp_path / "later")
    required = [f.name for f in alerts.record.arrow_schema() if not f.nullable]
    schema = pa.schema([f for f in alerts.record.arrow_schema() if not f.nullable])
    write_deltalake(table_uri(root, alerts), schema.empty_table())
    outcome = ensure_delta_tables(root)
    assert outcome["ops/alerts"].startswith("added ")
    assert {f.name for f in DeltaTable(table_uri(root, alerts)).schema().fields} == set(
        alerts.record.field_names)
    assert required
