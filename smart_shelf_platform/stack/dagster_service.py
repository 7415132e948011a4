"""Dagster as a stack component: its instance and `dagster dev` (webserver, daemon, code server).

- `write_dagster_home(settings)` writes `$SMART_SHELF_HOME/dagster/dagster.yaml`: run, event-log
  and schedule storage in our Postgres, database `dagster` (`ensure_dagster_database` creates it).
  The password is read from `SMART_SHELF_POSTGRES_PASSWORD` when the instance loads, so no
  secret is written to disk; `DagsterService` sets it for the processes it starts.
- `DagsterService` starts `dagster dev -w workspace.yaml` on `SMART_SHELF_DAGSTER_PORT`
  (default 13000; `SMART_SHELF_DAGSTER_ENABLED=false` leaves it out of `up`) with `DAGSTER_HOME` and the stack's settings in its environment, so the code
  location sees exactly the settings the stack was started with.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import psycopg
import requests
import yaml
from psycopg import errors, sql

from smart_shelf_platform.settings import REPO_ROOT, Settings
from smart_shelf_platform.stack.components import Component
from smart_shelf_platform.stack.process import StackError, spawn

DAGSTER_DATABASE = "dagster"
# SQLAlchemy 2.1 maps plain `postgresql://` to psycopg 3, whose server-side parameters break
# dagster-postgres' `NOTIFY run_events, :id` (every event write fails); psycopg2 binds client-side.
SQLALCHEMY_SCHEME = "postgresql+psycopg2"
PASSWORD_VAR = "SMART_SHELF_POSTGRES_PASSWORD"
WORKSPACE = REPO_ROOT / "workspace.yaml"


def dagster_home(settings: Settings) -> Path:
    return settings.home / "dagster"


def ensure_dagster_database(settings: Settings) -> bool:
    """Create the `dagster` database (owned by the platform's owner role); True if created."""
    with psycopg.connect(settings.postgres_dsn(db="postgres"), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                        (DAGSTER_DATABASE,)).fetchone():
            return False
        try:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(DAGSTER_DATABASE), sql.Identifier(settings.postgres_user)))
        except errors.DuplicateDatabase:
            return False  # created concurrently
        except errors.InsufficientPrivilege as exc:
            raise StackError(f"role {settings.postgres_user} may not create the database "
                             f"{DAGSTER_DATABASE!r}; create it (owned by that role) or grant "
                             "CREATEDB") from exc
    return True


def instance_config(settings: Settings) -> dict:
    return {
        "storage": {"postgres": {"postgres_db": {
            "hostname": settings.postgres_host,
            "port": settings.postgres_port,
            "username": settings.postgres_user,
            "password": {"env": PASSWORD_VAR},
            "db_name": DAGSTER_DATABASE,
            "scheme": SQLALCHEMY_SCHEME,
        }}},
        "telemetry": {"enabled": False},
    }


def write_dagster_home(settings: Settings) -> Path:
    """Write `dagster.yaml` into the Dagster home and return the home (the `DAGSTER_HOME`).

    Written aside and renamed into place: Dagster's three containers share the home, and one
    must never read the file half written by another."""
    home = dagster_home(settings)
    home.mkdir(parents=True, exist_ok=True)
    staged = home / f".dagster.yaml.{os.getpid()}"
    staged.write_text(
        "# Written by smart_shelf_platform/stack/dagster_service.py; edits are overwritten.\n"
        + yaml.safe_dump(instance_config(settings), sort_keys=False))
    staged.replace(home / "dagster.yaml")
    return home


def _dagster_executable() -> str:
    beside_python = Path(sys.executable).with_name("dagster")
    found = str(beside_python) if beside_python.exists() else shutil.which("dagster")
    if not found:
        raise StackError("the dagster command is not installed; run `./smart-shelf setup`")
    return found


class DagsterService(Component):
    name = "dagster"
    start_timeout = 120.0  # the code server imports the whole platform before the UI is useful

    @property
    def port(self) -> int:
        return self.s.dagster_port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        try:
            return requests.get(f"{self.url}/server_info", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def _start(self) -> None:
        ensure_dagster_database(self.s)
        home = write_dagster_home(self.s)
        cmd = [_dagster_executable(), "dev", "-w", str(WORKSPACE), "-h", self.s.bind_host,
               "-p", str(self.port)]
        env = {**self.s.as_env(), PASSWORD_VAR: self.s.postgres_password,
               "DAGSTER_HOME": str(home)}
        spawn(cmd, self.log_file, self.pid_file, env=env, cwd=REPO_ROOT)
