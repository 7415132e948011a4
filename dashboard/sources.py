"""Where the dashboard reads from, read-only: Postgres as `smart_shelf_reader` in read-only
transactions, Delta tables through `smart_shelf_platform.delta_reader`, Redis by GET and
HGETALL only.

Every reader raises `Unavailable` (what is missing and which command brings it) instead of a
driver's exception, so a page can show a banner and go on with what it has.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import psycopg
import redis

from smart_shelf_platform import delta_reader
from smart_shelf_platform.clock import parse_utc
from smart_shelf_platform.settings import Settings

READER = "smart_shelf_reader"
START = "./smart-shelf up"
SIMULATE = "./smart-shelf simulate --days 1 --speed 600"


class Unavailable(Exception):
    """A source the page needs is down or still empty: what is missing, and the command that
    brings it."""

    def __init__(self, what: str, command: str):
        super().__init__(f"{what} Run `{command}`.")
        self.what = what
        self.command = command


def postgres(settings: Settings, query: str, params: tuple | dict = ()) -> pd.DataFrame:
    """Rows of `query` as the read-only role, in a read-only transaction."""
    try:
        with psycopg.connect(settings.postgres_dsn(READER, settings.postgres_reader_password),
                             connect_timeout=2) as conn:
            conn.read_only = True
            cur = conn.execute(query, params)
            columns = [c.name for c in cur.description]
            return pd.DataFrame(cur.fetchall(), columns=columns)
    except psycopg.errors.UndefinedTable as exc:
        raise Unavailable(f"Postgres has no such table yet ({exc.diag.message_primary}).",
                          START) from exc
    except psycopg.OperationalError as exc:
        raise Unavailable(f"Postgres is not reachable on {settings.postgres_host}:"
                          f"{settings.postgres_port}.", START) from exc


def delta(settings: Settings, path: str, columns: list[str] | None = None,
          stores: list[str] | None = None) -> pd.DataFrame:
    """A Delta table (`layer/name` under the Delta root) as it is now: `columns` (default all)
    of the rows of `stores` (default every store)."""
    try:
        return delta_reader.read(settings.delta_root, path, columns, stores=stores).to_pandas()
    except delta_reader.MissingTable as exc:
        raise Unavailable(f"The Delta table {path} does not exist yet.", START) from exc


def delta_commit(settings: Settings, path: str) -> tuple[int, datetime] | None:
    """The latest version of a Delta table and when it was committed; None if there is none."""
    return delta_reader.last_commit(f"{settings.delta_root}/{path}")


def _redis(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)


def sim_now(settings: Settings) -> datetime | None:
    """The simulated clock's time (`<prefix>now`), None before the clock has ever run."""
    try:
        raw = _redis(settings).get(f"{settings.dashboard_clock_prefix}now")
    except redis.RedisError as exc:
        raise Unavailable(f"Redis is not reachable on {settings.redis_host}:"
                          f"{settings.redis_port}, so the simulated time is unknown.",
                          START) from exc
    return parse_utc(raw.decode()) if raw else None


def query_progress(settings: Settings) -> dict:
    """What each streaming query has read, from `<clock prefix>progress` (see
    `smart_shelf_platform.progress`)."""
    from smart_shelf_platform.progress import read_progress

    try:
        return read_progress(_redis(settings), settings.dashboard_clock_prefix)
    except redis.RedisError as exc:
        raise Unavailable(f"Redis is not reachable on {settings.redis_host}:"
                          f"{settings.redis_port}.", START) from exc


def require_rows(frame: pd.DataFrame, what: str, command: str = SIMULATE) -> pd.DataFrame:
    """`frame`, or Unavailable when it is empty (`what`: the table, as the reader knows it)."""
    if frame.empty:
        raise Unavailable(f"No rows yet in {what}.", command)
    return frame
