"""Every read of the dashboard, cached by Streamlit for all viewers at once: ten open browsers
share one query per table per TTL. Failures raise `sources.Unavailable` (never cached)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pandas as pd
import requests
import streamlit as st

from dashboard import sources
from dashboard.sources import START, Unavailable
from smart_shelf_platform.contracts import analytics
from smart_shelf_platform.settings import Settings
from smart_shelf_platform.stack.process import StackError

LIVE_TTL = 5  # seconds: state, alerts, plans, health
REFERENCE_TTL = 300  # the catalogue and the stores change only with a new reference data load
METRICS_TAIL_BYTES = 256 * 1024  # the end of each query's metrics log: its last batches


def _cached(ttl: float):
    return st.cache_data(ttl=ttl, show_spinner=False,
                         hash_funcs={Settings: lambda s: s.model_dump_json()})


@_cached(REFERENCE_TTL)
def stores(s: Settings) -> pd.DataFrame:
    return sources.postgres(s, "SELECT store_id, store_name, city FROM ref.stores "
                               "ORDER BY store_id")


@_cached(REFERENCE_TTL)
def catalogue(s: Settings) -> pd.DataFrame:
    """Every shelf of the chain with its aisle, category, subcategory and price."""
    return sources.postgres(
        s, "SELECT store_id, shelf_id, aisle, item_category, item_subcategory, item_price, "
           "perishable FROM ref.store_inventory_snapshot")


@_cached(LIVE_TTL)
def shelf_policies(s: Settings) -> pd.DataFrame:
    return sources.postgres(
        s, "SELECT store_id, shelf_id, item_category, item_subcategory, threshold_pct, min_qty, "
           "active FROM config.shelf_policies")


@_cached(LIVE_TTL)
def table(s: Settings, path: str, store_id: str | None = None,
          columns: tuple[str, ...] | None = None) -> pd.DataFrame:
    """A Delta table (`layer/name`), as the streaming application last committed it: the rows
    of `store_id` (default every store's), `columns` (default all). A page reads one store's
    rows: a chain's tables are ten times what it shows, in time and in memory."""
    return sources.delta(s, path, list(columns) if columns else None,
                         [store_id] if store_id else None)


@_cached(1)
def sim_now(s: Settings) -> datetime | None:
    return sources.sim_now(s)


@_cached(LIVE_TTL)
def components(s: Settings) -> pd.DataFrame:
    """What `smart-shelf status` shows, one row per component."""
    from smart_shelf_platform.stack.lifecycle import status

    rows = [{"component": c.name, "healthy": c.healthy, "port": c.port,
             "pid": "external" if c.external else c.pid,
             "rss_mib": round(c.rss_bytes / 2**20, 1)} for c in status(s)]
    return pd.DataFrame(rows)


@_cached(LIVE_TTL)
def connectors(s: Settings) -> pd.DataFrame:
    from smart_shelf_platform.stack import connect

    try:
        states = connect.status(s)
    except (StackError, requests.RequestException) as exc:
        raise Unavailable(f"Kafka Connect is not reachable on port {s.connect_port}.",
                          START) from exc
    return pd.DataFrame([{"connector": c.name, "kind": c.kind, "state": c.state,
                          "tasks": ", ".join(f"{t['id']}: {t['state']}" for t in c.tasks),
                          "error": "; ".join(t["trace"] for t in c.tasks if t["trace"])}
                         for c in states])


def _tail_lines(path: Path) -> list[str]:
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - METRICS_TAIL_BYTES))
        lines = f.read().decode(errors="replace").splitlines()
    return lines[1:] if path.stat().st_size > METRICS_TAIL_BYTES else lines


@_cached(LIVE_TTL)
def batch_metrics(s: Settings) -> pd.DataFrame:
    """The last micro-batches of every streaming query, from `logs/streaming/*.jsonl`."""
    rows = []
    for path in sorted((s.logs_dir / "streaming").glob("*.jsonl")):
        for line in _tail_lines(path):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line being written
    if not rows:
        raise Unavailable(f"No streaming metrics in {s.logs_dir / 'streaming'} yet: the "
                          "streaming application writes them after its first micro-batches.",
                          START)
    return pd.DataFrame(rows)


@_cached(LIVE_TTL)
def kafka_lag(s: Settings) -> pd.DataFrame:
    """Per streaming query: records its topics hold that it has not read yet."""
    from smart_shelf_platform.progress import end_offsets

    progress = sources.query_progress(s)
    if not progress:
        raise Unavailable("No streaming query has reported its progress.", START)
    try:
        ends = end_offsets(s.kafka_bootstrap, {t for o in progress.values() for t in o})
    except Exception as exc:  # noqa: BLE001 - any Kafka client failure: the broker is away
        raise Unavailable(f"Kafka is not reachable at {s.kafka_bootstrap}.", START) from exc
    return pd.DataFrame([
        {"query": query, "topics": len(offsets),
         "behind": sum(max(0, end - offsets.get(t, {}).get(p, 0))
                       for t in offsets for p, end in ends.get(t, {}).items())}
        for query, offsets in sorted(progress.items())])


DAGSTER_QUERY = """{
  runsOrError(limit: 10) { ... on Runs { results { runId status jobName startTime endTime } } }
  repositoriesOrError { ... on RepositoryConnection { nodes { sensors { name sensorState {
    status ticks(limit: 1) { status timestamp skipReason error { message } } } } } } }
}"""


@_cached(LIVE_TTL)
def dagster(s: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Dagster's last runs and each sensor's last tick, from its GraphQL API."""
    try:
        response = requests.post(f"http://127.0.0.1:{s.dagster_port}/graphql",
                                 json={"query": DAGSTER_QUERY}, timeout=5)
        data = response.json()["data"]
    except (requests.RequestException, ValueError, KeyError) as exc:
        raise Unavailable(f"Dagster is not reachable on port {s.dagster_port}.", START) from exc
    runs = pd.DataFrame(data["runsOrError"].get("results", []),
                        columns=["runId", "status", "jobName", "startTime", "endTime"])
    for column in ("startTime", "endTime"):
        runs[column] = pd.to_datetime(runs[column], unit="s", utc=True)
    ticks = []
    for repo in data["repositoriesOrError"].get("nodes", []):
        for sensor in repo["sensors"]:
            state = sensor["sensorState"]
            tick = (state["ticks"] or [{}])[0]
            ticks.append({"sensor": sensor["name"], "state": state["status"],
                          "last tick": pd.to_datetime(tick.get("timestamp"), unit="s", utc=True),
                          "result": tick.get("status"),
                          "why": tick.get("skipReason") or (tick.get("error") or {}).get(
                              "message", "")})
    return runs, pd.DataFrame(ticks)


@_cached(LIVE_TTL)
def delta_freshness(s: Settings) -> pd.DataFrame:
    """Every Delta table of the catalogue: its version and when it was last committed."""
    from smart_shelf_platform.contracts.catalogue import DELTA_TABLES

    rows = []
    for spec in DELTA_TABLES:
        commit = sources.delta_commit(s, spec.path)
        rows.append({"table": spec.path, "writer": spec.owner,
                     "version": commit[0] if commit else None,
                     "last commit": commit[1] if commit else None})
    return pd.DataFrame(rows)


def _contract_query(record) -> str:
    """Every column the contract gives `record`, from its Postgres table in the catalogue."""
    from smart_shelf_platform.contracts.catalogue import POSTGRES_TABLES

    table = next(t for t in POSTGRES_TABLES if t.record is record)
    return f"SELECT {', '.join(record.field_names)} FROM {table.qualified_name}"


@_cached(LIVE_TTL)
def ml_models(s: Settings) -> pd.DataFrame:
    """The model registry, with the columns the contract names."""
    return sources.postgres(s, _contract_query(analytics.ML_MODEL))


@_cached(LIVE_TTL)
def ml_predictions(s: Settings) -> pd.DataFrame:
    return sources.postgres(s, _contract_query(analytics.ML_PREDICTION))


@_cached(LIVE_TTL)
def ml_backtest(s: Settings) -> pd.DataFrame:
    return sources.postgres(s, _contract_query(analytics.ML_BACKTEST))


@_cached(LIVE_TTL)
def daily_sales(s: Settings, store_id: str, shelf_id: str) -> pd.DataFrame:
    """Units one shelf sold per simulated day (`day`, `value`), from the daily features."""
    return sources.postgres(
        s, "SELECT feature_date AS day, sales_qty AS value FROM analytics.shelf_daily_features "
           "WHERE store_id = %s AND shelf_id = %s ORDER BY feature_date", (store_id, shelf_id))


def daily_demand(s: Settings, store_id: str, shelf_id: str) -> pd.DataFrame:
    """Units shoppers wanted from one shelf per simulated day (`day`, `value`: sold + lost to an
    empty shelf): the simulator's ledger, the truth a forecast is scored against."""
    return sources.postgres(
        s, "SELECT sale_date AS day, sold_units + lost_units AS value "
           "FROM sim.ledger_daily_sales WHERE store_id = %s AND shelf_id = %s "
           "ORDER BY sale_date", (store_id, shelf_id))
