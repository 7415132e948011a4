"""Postgres database, roles and the ordered `sql/` migrations.

Each `sql/NNN_name.sql` runs once, in file-name order, inside a transaction, and is recorded with
its checksum in `public.schema_migrations`. A file that changed after it was applied is an error
(write a new migration instead), so every environment ends with the same schema.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import psycopg
from psycopg import sql

from smart_shelf_platform.settings import REPO_ROOT, Settings
from smart_shelf_platform.stack.process import StackError

log = logging.getLogger(__name__)

SQL_DIR = REPO_ROOT / "sql"
WRITER_ROLE = "smart_shelf_writer"
READER_ROLE = "smart_shelf_reader"


def migration_files(sql_dir: Path = SQL_DIR) -> list[Path]:
    return sorted(sql_dir.glob("[0-9][0-9][0-9]_*.sql"))


def ensure_database_and_roles(settings: Settings) -> None:
    with psycopg.connect(settings.postgres_dsn(db="postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                              (settings.postgres_db,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(settings.postgres_db), sql.Identifier(settings.postgres_user)))
        for role, password in ((WRITER_ROLE, settings.postgres_writer_password),
                               (READER_ROLE, settings.postgres_reader_password)):
            verb = "ALTER" if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                           (role,)).fetchone() else "CREATE"
            conn.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}, {}").format(
            sql.Identifier(settings.postgres_db), sql.Identifier(WRITER_ROLE),
            sql.Identifier(READER_ROLE)))


def apply_migrations(settings: Settings, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply pending migrations; returns the names applied by this call."""
    applied_now: list[str] = []
    with psycopg.connect(settings.postgres_dsn()) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS public.schema_migrations ("
            " name text PRIMARY KEY, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())")
        conn.commit()
        done = dict(conn.execute("SELECT name, checksum FROM public.schema_migrations").fetchall())
        for path in migration_files(sql_dir):
            text = path.read_text()
            checksum = hashlib.sha256(text.encode()).hexdigest()
            if path.name in done:
                if done[path.name] != checksum:
                    raise StackError(f"migration {path.name} changed after it was applied; add a "
                                     "new migration file instead of editing an applied one")
                continue
            try:
                with conn.transaction():
                    conn.execute(text)
                    conn.execute("INSERT INTO public.schema_migrations (name, checksum) "
                                 "VALUES (%s, %s)", (path.name, checksum))
            except psycopg.Error as exc:
                raise StackError(f"migration {path.name} failed: {exc.diag.message_primary}") \
                    from exc
            log.info("applied migration %s", path.name)
            applied_now.append(path.name)
    return applied_now
