"""Secrets and access: every server the stack starts asks for its password (Redis, Postgres,
the Connect REST API), and no password leaves the stack's own files (connector configs,
`connect status`, the repository)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import uuid

import psycopg
import pytest
import redis
import requests
from redis.backoff import NoBackoff
from redis.retry import Retry

from smart_shelf_platform.passwords import PASSWORD_VARIABLES, SECRETS_FILE
from smart_shelf_platform.settings import REPO_ROOT
from smart_shelf_platform.stack import connect
from smart_shelf_platform.stack.isolated import isolated_settings
from smart_shelf_platform.stack.components import Postgres, Redis
from smart_shelf_platform.stack.migrations import READER_ROLE, WRITER_ROLE
from smart_shelf_platform.stack.process import StackError, port_in_use, spawn, wait_until

CLI = str(REPO_ROOT / "smart-shelf")


def passwords(settings) -> list[str]:
    return [getattr(settings, field) for field in PASSWORD_VARIABLES]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=120,
                          env=env or os.environ)


def test_outside_local_up_refuses_unset_or_former_default_passwords_in_one_line():
    env = {k: v for k, v in os.environ.items() if k not in PASSWORD_VARIABLES.values()}
    env |= {"SMART_SHELF_ENV": "prod", "SMART_SHELF_REDIS_PASSWORD": "a-password-of-its-own",
            "SMART_SHELF_POSTGRES_WRITER_PASSWORD": "smart_shelf_writer"}
    result = cli("up", "--skip-setup", env=env)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "smart-shelf: error: SMART_SHELF_ENV=prod needs passwords of its own: set "
        "SMART_SHELF_POSTGRES_PASSWORD, SMART_SHELF_POSTGRES_WRITER_PASSWORD, "
        "SMART_SHELF_POSTGRES_READER_PASSWORD, SMART_SHELF_CONNECT_PASSWORD (unset, or a role's "
        "name, is refused outside local)"]


@pytest.mark.integration
def test_the_generated_passwords_are_the_owners_alone_and_in_no_tracked_file(settings):
    secrets_files = [settings.home / SECRETS_FILE, connect.secrets_file(settings)]
    for path in secrets_files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    stored = (settings.home / SECRETS_FILE).read_text()
    assert all(f"={p}\n" in stored for p in passwords(settings))
    assert not any(p in repr(settings) for p in passwords(settings))  # nor a logged settings
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True,
                             check=True).stdout.decode().split("\0")
    values = [p.encode() for p in passwords(settings)]
    for name in filter(None, tracked):
        path = REPO_ROOT / name
        if path.is_file():
            content = path.read_bytes()
            assert not any(v in content for v in values), f"a password is in {name}"


@pytest.mark.integration
def test_redis_refuses_clients_without_the_password_and_runs_in_protected_mode(settings):
    for password in (None, "not-the-password"):
        client = redis.Redis(host=settings.redis_host, port=settings.redis_port,
                             password=password, socket_timeout=2,
                             retry=Retry(NoBackoff(), 0))  # a refusal is final: no retries
        with pytest.raises(redis.AuthenticationError):
            client.ping()
        client.close()
    with redis.Redis.from_url(settings.redis_url) as client:
        assert client.config_get("protected-mode") == {"protected-mode": "yes"}


@pytest.mark.integration
def test_postgres_refuses_every_role_without_its_password_on_tcp_and_socket(settings,
                                                                          monkeypatch):
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", os.devnull)
    socket_dir = str(Postgres(settings).socket_dir)
    for role in (settings.postgres_user, WRITER_ROLE, READER_ROLE):
        for host in (settings.postgres_host, socket_dir):
            for password in ({}, {"password": "not-the-password"}):
                with pytest.raises(psycopg.OperationalError,
                                   match="password authentication failed|no password supplied"):
                    psycopg.connect(host=host, port=settings.postgres_port, user=role,
                                    dbname=settings.postgres_db, connect_timeout=5, **password)
    with psycopg.connect(settings.postgres_dsn()) as conn:
        methods = {r[0] for r in conn.execute("SELECT auth_method FROM pg_hba_file_rules")}
    assert methods == {"scram-sha-256"}


@pytest.mark.integration
def test_the_connect_rest_api_refuses_clients_without_the_password(settings):
    url = f"http://127.0.0.1:{settings.connect_port}/connectors"
    for auth in (None, (connect.REST_USER, "not-the-password")):
        assert requests.get(url, auth=auth, timeout=10).status_code == 401
    assert requests.get(url, auth=connect.rest_auth(settings), timeout=10).status_code == 200
    wrong = settings.model_copy(update={"connect_password": "not-the-password"})
    with pytest.raises(StackError, match="refused the REST password"):
        connect.status(wrong)


@pytest.mark.integration
def test_no_password_in_connector_configs_or_connect_status(settings, stack):
    client = connect.ConnectClient(settings)
    shown = [json.dumps(client.request("GET", f"/connectors/{d.name}/config").json())
             for d in connect.load_definitions()]
    shown.append(cli("connect", "status", "--json").stdout)
    for text in shown:
        assert not any(p in text for p in passwords(settings)), text[:200]
    source = json.loads(shown[0])
    assert source["database.password"] == f"${{file:{connect.secrets_file(settings)}:" \
                                          "postgres.password}"


@pytest.mark.integration
def test_status_works_for_the_owner(settings):
    result = cli("status")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "postgres  healthy" in result.stdout and "redis     healthy" in result.stdout


@pytest.mark.integration
def test_a_redis_started_without_a_password_is_restarted_with_it(settings):
    own = isolated_settings(settings, f"open-{uuid.uuid4().hex[:6]}", 11)
    server = Redis(own)
    server.dir.mkdir(parents=True)
    spawn([shutil.which("redis-server"), "--port", str(own.redis_port), "--bind", "127.0.0.1",
           "--save", "", "--dir", str(server.dir)], server.log_file, server.pid_file)
    try:
        wait_until(lambda: port_in_use("127.0.0.1", own.redis_port), 10, "redis")
        assert server.runs_without_password()  # so `up` restarts the stack
        server.stop()
        server.start()
        assert server.healthy() and not server.runs_without_password()
    finally:
        server.stop()
        shutil.rmtree(own.home, ignore_errors=True)


@pytest.mark.integration
def test_a_postgres_made_before_passwords_comes_up_requiring_them(settings):
    own = isolated_settings(settings, f"trusting-{uuid.uuid4().hex[:6]}", 11)
    postgres = Postgres(own)
    try:
        postgres.start()
        # As it was: the owner's password was its name, and the local socket was trusted.
        with psycopg.connect(own.postgres_dsn(db="postgres"), autocommit=True) as conn:
            conn.execute(f"ALTER ROLE {own.postgres_user} PASSWORD 'smart_shelf'")
        postgres.hba_file.write_text("local all all trust\n"
                                     "host all all 127.0.0.1/32 scram-sha-256\n")
        assert postgres.runs_without_password()  # so `up` restarts the stack
        postgres.stop()
        postgres.start()
        assert not postgres.runs_without_password()
        with psycopg.connect(own.postgres_dsn(db="postgres")) as conn:
            methods = {r[0] for r in conn.execute("SELECT auth_method FROM pg_hba_file_rules")}
        assert methods == {"scram-sha-256"}
    finally:
        postgres.stop()
        shutil.rmtree(own.home, ignore_errors=True)
