"""The CLI as a person uses it: help that explains, one clear line for mistakes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from smart_shelf_platform.settings import REPO_ROOT

# The launcher a person runs, on this interpreter's virtualenv.
CLI = [str(REPO_ROOT / "smart-shelf")]


def run(*args: str, env: dict[str, str] | None = None,
        launcher: bool = True) -> subprocess.CompletedProcess:
    """The CLI in a child process; without the launcher (which needs bash and coreutils on the
    PATH) for the tests that play a machine lacking tools."""
    command = CLI if launcher else [sys.executable, "-m", "smart_shelf_platform.cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "SMART_SHELF_VENV": sys.prefix, **(env or {})})


def assert_one_line(result: subprocess.CompletedProcess, message: str) -> None:
    """A mistake's whole answer: a non-zero exit and one line on stderr that names it."""
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_help_lists_every_command():
    result = run("--help")
    assert result.returncode == 0
    for command in ("setup", "up", "down", "status", "clock", "simulate", "bridge", "stream",
                    "verify", "generate-data", "test", "bench"):
        assert command in result.stdout


@pytest.mark.parametrize("args, message", [
    (("bogus",), "No such command 'bogus'"),
    (("status", "--bogus"), "No such option: --bogus"),
    (("bench", "nope"), "unknown benchmark 'nope'"),
    (("simulate", "--speed", "0"), "--speed takes a positive number"),
    (("simulate", "--speed", "-1"), "--speed takes a positive number"),
    (("simulate", "--speed", "nan"), "--speed takes a positive number"),
    (("simulate", "--speed", "fast"), "not 'fast'"),
    (("simulate", "--speed", "inf"), "--speed takes a positive number"),
    (("simulate", "--days", "inf"), "Invalid value for '--days': takes a finite number"),
    (("simulate", "--days", "nan"), "Invalid value for '--days'"),
    (("simulate", "--days", "1e12"), "--days takes a number of days a date can reach"),
    (("simulate", "--days", "0"), "the run must end after SMART_SHELF_SIM_START"),
    (("simulate", "--days", "-1"), "Invalid value for '--days'"),
    (("simulate", "--until", "2025-12-31T00:00:00"), "the run must end after"),
    (("simulate", "--bad-events", "1.5"), "Invalid value for '--bad-events'"),
    (("simulate", "--bad-events", "-0.1"), "Invalid value for '--bad-events'"),
    (("simulate", "--bad-events", "nan"), "Invalid value for '--bad-events'"),
    (("simulate", "--stores", "0"), "Invalid value for '--stores'"),
    (("simulate", "--stores", "1000"), "Invalid value for '--stores'"),
    (("simulate", "--seed", "-1"), "Invalid value for '--seed'"),
    (("simulate", "--store-group", "2/2"), "--store-group takes K/N"),
    (("clock", "--speed", "-1"), "Invalid value for '--speed'"),
    (("clock", "--speed", "inf"), "Invalid value for '--speed': takes a finite number"),
    (("clock", "--max-steps", "0"), "Invalid value for '--max-steps'"),
    (("stream", "--trigger-seconds", "inf"), "Invalid value for '--trigger-seconds'"),
    (("bench", "stream", "--live-minutes", "inf"), "Invalid value for '--live-minutes'"),
    (("bench", "chain", "--days", "0"), "Invalid value for '--days'"),
    (("bench", "chain", "--days", "inf"), "Invalid value for '--days': takes a finite number"),
    (("bench", "chain", "--stores", "0"), "Invalid value for '--stores'"),
    (("generate-data", "--seed", "-1"), "Invalid value for '--seed'"),
    (("verify", "--json", "/no/such/folder/report.json"), "cannot write /no/such/folder"),
    (("backtest", "--json", "/no/such/folder/b.json"), "cannot write /no/such/folder"),
    (("bench", "up", "--out", "/no/such/folder/b.json"), "cannot write /no/such/folder"),
])
def test_mistakes_get_one_clear_line_and_a_non_zero_exit(args, message, tmp_path):
    # On ports where nothing runs: each is refused before anything is reached or started.
    result = run(*args, env={"SMART_SHELF_HOME": str(tmp_path / "home"),
                             "SMART_SHELF_POSTGRES_PORT": "1", "SMART_SHELF_REDIS_PORT": "1",
                             "SMART_SHELF_KAFKA_PORT": "1"})
    assert_one_line(result, message)


@pytest.mark.parametrize("variable, value, message", [
    ("SMART_SHELF_DISCOUNT_LADDER", "oops", "SMART_SHELF_DISCOUNT_LADDER='oops': discount "
                                            "ladder entry 'oops' is not days:fraction"),
    ("SMART_SHELF_FORECAST_ORDER_QUANTILE", "0.7", "0.7 is not a forecast quantile"),
    ("SMART_SHELF_POSTGRES_PORT", "many", "SMART_SHELF_POSTGRES_PORT='many'"),
    ("SMART_SHELF_SIM_SPEED", "nan", "SMART_SHELF_SIM_SPEED='nan'"),
    ("SMART_SHELF_SIM_SPEED", "-1", "SMART_SHELF_SIM_SPEED='-1': Input should be greater than"),
    ("SMART_SHELF_SIM_STEP_SECONDS", "0", "SMART_SHELF_SIM_STEP_SECONDS='0'"),
    ("SMART_SHELF_SEED", "-1", "SMART_SHELF_SEED='-1'"),
    ("SMART_SHELF_STORES", "0", "SMART_SHELF_STORES='0'"),
    ("SMART_SHELF_STORES", "1000", "SMART_SHELF_STORES='1000'"),
    ("SMART_SHELF_SIM_START", "soon", "SMART_SHELF_SIM_START='soon'"),
])
def test_a_bad_setting_is_one_line_naming_the_variable(variable, value, message):
    result = run("status", env={variable: value})
    assert result.returncode == 1
    assert_one_line(result, message)


@pytest.mark.parametrize("command", [
    ("up", "--skip-setup"), ("simulate", "--no-effects"), ("clock",), ("verify",), ("bridge",),
    ("generate-data", "--out", "unused"), ("model", "list"),
])
def test_every_command_names_a_bad_setting_in_one_line(command, tmp_path):
    result = run(*command, env={"SMART_SHELF_DISCOUNT_LADDER": "oops",
                                "SMART_SHELF_HOME": str(tmp_path / "home")})
    assert result.returncode == 1
    assert_one_line(result, "SMART_SHELF_DISCOUNT_LADDER='oops': discount ladder entry")
    assert not (tmp_path / "home").exists() and not (tmp_path / "unused").exists()


def test_status_of_a_stopped_stack_says_down_and_exits_non_zero(tmp_path):
    env = {"SMART_SHELF_HOME": str(tmp_path), "SMART_SHELF_POSTGRES_PORT": "15999",
           "SMART_SHELF_REDIS_PORT": "16999", "SMART_SHELF_KAFKA_PORT": "19999",
           "SMART_SHELF_CONNECT_PORT": "18999"}
    result = run("status", env=env)
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert [ln.split()[0] for ln in lines] == ["postgres", "redis", "kafka", "connect"]
    assert all(" DOWN " in ln for ln in lines)


def _path_with_only(tmp_path, *tools: str) -> str:
    """A PATH holding just these tools (symlinked), to play a machine that lacks the others."""
    import shutil

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in tools:
        (bin_dir / tool).symlink_to(shutil.which(tool))
    return str(bin_dir)


def test_missing_java_is_one_line_saying_what_to_install(tmp_path):
    result = run("up", "--skip-setup", env={"PATH": _path_with_only(tmp_path, "runuser"),
                                            "SMART_SHELF_HOME": str(tmp_path / "home")},
                 launcher=False)
    assert result.returncode == 1
    assert result.stderr.strip() == ("smart-shelf: error: Java is missing: install a Java 17+ "
                                     "runtime (apt-get install openjdk-17-jre-headless)")
    # Nothing started or created but the stack's passwords, which reading the settings makes
    # (smart_shelf_platform/passwords.py).
    home = tmp_path / "home"
    assert not home.exists() or [p.name for p in home.iterdir()] == ["secrets.env"]


def test_missing_maven_is_one_line_when_jars_must_be_resolved(tmp_path):
    result = run("setup", env={"PATH": _path_with_only(tmp_path, "java", "redis-server"),
                               "SMART_SHELF_JVM_LIB": str(tmp_path / "jars")},
                 launcher=False)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("smart-shelf: error: Maven is missing")


def test_stream_refuses_to_run_beside_the_streaming_application_up_started(tmp_path):
    # A live pid in the component's pid file: this test's own process stands in for it.
    (tmp_path / "streaming").mkdir()
    (tmp_path / "streaming" / "streaming.pid").write_text(str(os.getpid()))
    result = run("stream", "--until-drained", env={"SMART_SHELF_HOME": str(tmp_path)})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"is running (pid {os.getpid()})" in lines[0], result.stderr
    assert "SMART_SHELF_STREAMING_ENABLED=false" in lines[0]
