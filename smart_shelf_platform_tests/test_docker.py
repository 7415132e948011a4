"""The Docker deployment: docker-compose.yml and the Dockerfile.

The ordinary suite checks the compose file against the compose specification's JSON schema and
its structure (every dependency waits on a healthcheck or a completion, every long-running
service has a healthcheck, every variable is documented, ports stay on 127.0.0.1 by default,
the commands are the project's own), in seconds, without Docker.

`test_the_deployment_runs_a_simulation_exactly` builds the image and runs the whole deployment
in a real Docker engine (7-8 minutes on a 2-core machine with the image's layers cached, about
16 on one that has neither Compose, the base image nor the image yet). It runs
when SMART_SHELF_TEST_DOCKER=1 (it then installs Docker, starts the engine and builds Compose
as `./smart-shelf docker up` does, if needed), or when a Docker engine already answers
(`docker info`); otherwise it is skipped, and says why. SMART_SHELF_TEST_DOCKER=0 skips it
even then.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from smart_shelf_platform.passwords import PASSWORD_VARIABLES
from smart_shelf_platform.settings import REPO_ROOT, Settings
from smart_shelf_platform.stack import container, docker_engine

COMPOSE = REPO_ROOT / "docker-compose.yml"
DOCKER_DOC = REPO_ROOT / "docs" / "docker.md"
SETTING_VARIABLES = {field.alias or f"SMART_SHELF_{name.upper()}"
                     for name, field in Settings.model_fields.items()}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _command(service: dict) -> list[str]:
    return [str(part) for part in service.get("command", [])]


def _one_shot(service: dict) -> bool:
    """An init step, or a run that ends by itself (the simulator, the CLI shell)."""
    command = _command(service)
    return command[:2] == ["container", "init"] or command[:1] in (["simulate"], ["--help"])


def test_the_compose_file_follows_the_compose_specification():
    result = subprocess.run(
        [str(Path(sys.executable).with_name("check-jsonschema")), "--builtin-schema",
         "vendor.compose-spec", str(COMPOSE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_dependency_exists_and_waits_for_health_or_completion(compose):
    services = compose["services"]
    for name, service in services.items():
        for target, rule in service.get("depends_on", {}).items():
            assert target in services, f"{name} depends on {target}, which is no service"
            condition = rule["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits for {target}'s health"
            else:
                assert condition == "service_completed_successfully", (name, target, condition)
                assert _one_shot(services[target]), f"{target} never completes"
            assert not set(services[target].get("profiles", [])) - set(
                service.get("profiles", [])), f"{name} waits for opt-in {target}"


def test_every_long_running_service_has_a_healthcheck_and_restarts(compose):
    long_running = {n: s for n, s in compose["services"].items() if not _one_shot(s)}
    assert {"postgres", "redis", "kafka", "connect", "bridge", "streaming", "dagster-code",
            "dagster-webserver", "dagster-daemon", "dashboard", "clock"} == set(long_running)
    for name, service in long_running.items():
        assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
        assert service.get("restart") == "unless-stopped", name
    for name, service in compose["services"].items():
        if _one_shot(service):
            assert "restart" not in service, f"one-shot {name} would run again and again"


def test_every_command_is_the_projects_own(compose):
    """`serve`, `init` and `health` name a component, step or probe the project has."""
    for name, service in compose["services"].items():
        command = _command(service)
        if command[:2] == ["container", "serve"]:
            assert command[2] in container.SERVED, name
        elif command[:2] == ["container", "init"]:
            assert command[2] in container.INIT_STEPS, name
        test = [str(p) for p in service.get("healthcheck", {}).get("test", [])]
        if test[:4] == ["CMD", "smart-shelf", "container", "health"]:
            assert test[4] in container.PROBED, name
    served = {_command(s)[2] for s in compose["services"].values()
              if _command(s)[:2] == ["container", "serve"]}
    initialised = {_command(s)[2] for s in compose["services"].values()
                   if _command(s)[:2] == ["container", "init"]}
    assert served == set(container.SERVED) and initialised == set(container.INIT_STEPS)


def test_every_variable_is_a_setting_or_documented(compose):
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE.read_text()))
    documented = set(re.findall(r"`([A-Z0-9_]+)`", DOCKER_DOC.read_text()))
    undocumented = used - SETTING_VARIABLES - documented
    assert not undocumented, f"not in docs/operations.md's settings nor docs/docker.md: " \
                             f"{sorted(undocumented)}"
    example = docker_engine.env_file_variables(REPO_ROOT / ".env.example")
    for variable in PASSWORD_VARIABLES.values():
        assert example[variable] == "", f".env.example must leave {variable} empty"
        assert f"${{{variable}:?" in COMPOSE.read_text(), f"{variable} must be required"


def test_healthchecks_read_only_variables_their_service_sets(compose):
    for name, service in compose["services"].items():
        environment = service.get("environment", {})
        for part in service.get("healthcheck", {}).get("test", []):
            for variable in re.findall(r"\$\$\{?([A-Z0-9_]+)", str(part)):
                assert variable in environment, f"{name}'s healthcheck reads unset {variable}"


def test_published_ports_are_on_localhost_by_default_and_match_the_service(compose):
    published = {}
    for name, service in compose["services"].items():
        for mapping in service.get("ports", []):
            match = re.fullmatch(r"\$\{SMART_SHELF_PUBLISH_HOST:-127\.0\.0\.1\}:"
                                 r"\$\{(SMART_SHELF_[A-Z]+_PORT):-(\d+)\}:(\d+)", mapping)
            assert match, f"{name} publishes {mapping!r}, not on SMART_SHELF_PUBLISH_HOST"
            variable, host_default, inside = match.groups()
            assert service["environment"][variable] == inside, f"{name} listens elsewhere"
            assert Settings.model_fields[variable.removeprefix("SMART_SHELF_").lower()] \
                .default == int(host_default), f"{name}: not the local stack's port"
            published[name] = int(host_default)
    assert set(published) == {"postgres", "redis", "connect", "dagster-webserver", "dashboard"}


def test_all_state_is_on_named_volumes(compose):
    home = compose["x-platform"]["environment"]["SMART_SHELF_HOME"]
    declared = set(compose["volumes"])
    for server in ("postgres", "redis", "kafka"):
        assert f"{server}:{home}/{server}" in compose["services"][server]["volumes"]
    lake = compose["x-platform-volumes"]
    assert f"delta:{home}/delta" in lake and f"refdata:{home}/data" in lake
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            assert volume.split(":")[0] in declared, f"{name} mounts an undeclared {volume}"
    assert compose["x-platform"]["environment"]["DAGSTER_HOME"] == f"{home}/dagster"


def test_the_image_is_built_once_and_never_pulled(compose):
    services = compose["services"]
    builders = [name for name, service in services.items() if "build" in service]
    assert builders == ["postgres"]
    assert services["postgres"]["build"]["args"]["BASE_IMAGE"] == \
        "${SMART_SHELF_BASE_IMAGE:-debian:bookworm-slim}"
    for name, service in services.items():
        assert service["image"] == services["postgres"]["image"], name
        if name != "postgres":
            assert service["pull_policy"] == "never", f"{name} would pull the project image"


def test_the_dockerfile_builds_with_the_classic_builder_from_a_base_argument():
    text = (REPO_ROOT / "Dockerfile").read_text()
    assert not re.search(r"^#\s*syntax\s*=", text, re.M | re.I)
    assert "--mount" not in text and "<<" not in text  # BuildKit-only: mounts, heredocs
    assert re.search(r"^ARG BASE_IMAGE=debian:bookworm-slim$", text, re.M)
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M)
    assert "./smart-shelf setup" in text


def test_secrets_and_copied_certificates_are_never_committed():
    ignored = subprocess.run(["git", "check-ignore", ".env", "docker/certs/proxy.crt"],
                             cwd=REPO_ROOT, capture_output=True, text=True).stdout.split()
    assert ignored == [".env", "docker/certs/proxy.crt"]
    docker_ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    assert {".env", ".venv", ".git", "jvm/lib"} <= set(docker_ignored)


def test_env_file_is_written_once_with_new_passwords(tmp_path):
    path = tmp_path / ".env"
    assert docker_engine.ensure_env_file(path, lambda _m: None)
    written = docker_engine.env_file_variables(path)
    passwords = [written[v] for v in PASSWORD_VARIABLES.values()]
    assert all(len(p) >= 24 for p in passwords) and len(set(passwords)) == len(passwords)
    assert path.stat().st_mode & 0o777 == 0o600
    assert not docker_engine.ensure_env_file(path, lambda _m: None)
    assert docker_engine.env_file_variables(path) == written


def test_cli_mistakes_are_one_line(tmp_path):
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "smart_shelf_platform.cli", *args],
                              capture_output=True, text=True, timeout=60)

    missing = run("docker", "down", "--env-file", str(tmp_path / "none.env"))
    assert (missing.returncode, missing.stderr) == (1, (
        f"smart-shelf: error: {tmp_path / 'none.env'} is missing: Compose needs the "
        "deployment's env file to read docker-compose.yml (--env-file)\n"))
    unknown = run("container", "serve", "zookeeper")
    assert unknown.returncode == 1 and unknown.stderr.count("\n") == 1
    assert "unknown component 'zookeeper'; one of postgres, redis" in unknown.stderr
    no_probe = run("container", "health", "postgres")
    assert no_probe.returncode == 1 and "no probe for 'postgres'" in no_probe.stderr


def test_the_grpc_workspace_points_at_the_code_server(tmp_path):
    settings = Settings(home=tmp_path, dagster_code_host="dagster-code", dagster_code_port=4123)
    loaded = yaml.safe_load(container.grpc_workspace(settings).read_text())
    assert loaded["load_from"] == [{"grpc_server": {
        "host": "dagster-code", "port": 4123, "location_name": "smart_shelf_platform"}}]


# --- the real deployment ---------------------------------------------------------------------

PROJECT = "smart-shelf-e2e"
# The deployment's settings: host ports apart from the local stacks' and the tests' own, and
# hourly decision rounds, at which the simulator meets the platform, so that by the end of
# the run every refill the platform picked has been carried out in the store (a run without
# rounds at full speed can end with picks whose refills are still on their way, which
# `verify` rightly counts as differences).
E2E_SETTINGS = {"SMART_SHELF_POSTGRES_PORT": 41432, "SMART_SHELF_REDIS_PORT": 41379,
                "SMART_SHELF_CONNECT_PORT": 41083, "SMART_SHELF_DAGSTER_PORT": 41300,
                "SMART_SHELF_DASHBOARD_PORT": 41501, "SMART_SHELF_DECISION_ROUND_MINUTES": 60}
# Two and a half simulated hours: rounds at 08:00 and 09:00, their refills done by 09:30.
SIMULATE_UNTIL = "2026-01-01T09:30:00"


def _docker_reason() -> str | None:
    """Why the Docker test does not run here, or None when it does."""
    wanted = os.environ.get("SMART_SHELF_TEST_DOCKER")
    if wanted == "0":
        return "SMART_SHELF_TEST_DOCKER=0"
    if wanted == "1":
        return None
    if docker_engine.engine_answers():
        return None
    return ("no Docker engine answers (`docker info`); SMART_SHELF_TEST_DOCKER=1 installs and "
            "starts one, builds the image and runs the deployment (7-16 minutes)")


def _compose(env_file: Path, *args: str, check: bool = True, timeout: float = 600,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    # The suite's own SMART_SHELF_* variables (its test stack's ports) would win over the env
    # file's in the compose file's interpolation: the deployment gets its file's alone.
    outer = {k: v for k, v in os.environ.items() if not k.startswith("SMART_SHELF_")}
    result = subprocess.run([*docker_engine.compose_command(PROJECT, env_file), *args],
                            capture_output=True, text=True, timeout=timeout,
                            env={**outer, **(env or {})})
    if check and result.returncode != 0:
        raise AssertionError(f"docker compose {' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def _containers() -> list[str]:
    return subprocess.run(["docker", "ps", "-aq", "--filter",
                           f"label=com.docker.compose.project={PROJECT}"],
                          capture_output=True, text=True, check=True).stdout.split()


@pytest.mark.skipif(_docker_reason() is not None, reason=str(_docker_reason()))
@pytest.mark.timeout(3600)
def test_the_deployment_runs_a_simulation_exactly(tmp_path, settings):
    t0 = time.monotonic()
    started_engine = not docker_engine.engine_answers()
    variables = docker_engine.prepare(settings, print)
    env_file = tmp_path / "e2e.env"
    docker_engine.ensure_env_file(env_file, lambda _m: None)
    variables_of_run = {**docker_engine.env_file_variables(env_file), **E2E_SETTINGS,
                        "SMART_SHELF_DOCKER_ENV_FILE": env_file}
    env_file.write_text("".join(f"{k}={v}\n" for k, v in variables_of_run.items()))
    try:
        up = _compose(env_file, "up", "--detach", "--build", "--wait", "--wait-timeout", "1500",
                      timeout=3000, env=variables)
        print(f"up --build --wait: {time.monotonic() - t0:.0f} s", up.stderr[-500:])
        states = {row["Service"]: row for row in map(
            json.loads, _compose(env_file, "ps", "-a", "--format", "json").stdout.splitlines())}
        compose_file = yaml.safe_load(COMPOSE.read_text())
        for name, service in compose_file["services"].items():
            if service.get("profiles"):
                continue
            row = states[name]
            if _one_shot(service):
                assert (row["State"], row["ExitCode"]) == ("exited", 0), row
            else:
                assert (row["State"], row["Health"]) == ("running", "healthy"), row
        # What a user opens: the dashboard and Dagster, on this machine's published ports.
        for port, path in ((E2E_SETTINGS["SMART_SHELF_DASHBOARD_PORT"], "/_stcore/health"),
                           (E2E_SETTINGS["SMART_SHELF_DAGSTER_PORT"], "/server_info")):
            assert requests.get(f"http://127.0.0.1:{port}{path}", timeout=10).ok, port
        simulated = _compose(env_file, "run", "--rm", "cli", "simulate", "--until",
                             SIMULATE_UNTIL, timeout=1800)
        print(simulated.stdout[-1000:], simulated.stderr[-1500:])
        assert "ledger saved" in simulated.stdout + simulated.stderr
        verified = _compose(env_file, "run", "--rm", "cli", "verify", check=False)
        print(verified.stdout[-2000:])
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "verify: OK" in verified.stdout
        size = subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}",
                               "smart-shelf:latest"], capture_output=True, text=True).stdout
        print(f"image size {int(size) / 2**30:.2f} GiB; up to verify {time.monotonic() - t0:.0f} s")
    finally:
        _compose(env_file, "--profile", "*", "down", "--volumes", "--remove-orphans",
                 check=False, timeout=600)
        leftover = _containers()
        if started_engine:
            docker_engine.stop_engine(settings)
    assert not leftover, f"containers left after down: {leftover}"
    print(f"docker e2e wall time {time.monotonic() - t0:.0f} s")
