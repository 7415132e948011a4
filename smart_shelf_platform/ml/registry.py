"""The model registry: Postgres `analytics.ml_models` rows and their XGBoost JSON artifacts.

Every trained model is registered as a `challenger`, with its training window, feature list and
hash, parameters, backtest metrics, artifact path and the code version that trained it. At most
one model per name is the `champion` (a unique index says so); promoting one retires the
previous champion, rolling back promotes an earlier version again. Artifacts live under the
stack's state directory: `<home>/ml/models/<name>/<version>.json` (`ml_dir` is `<home>/ml`).

Which champion serves a cutoff: the champion trained for an *earlier* cutoff. A model trained
at a cutoff is promoted only after its gate (a blocking Dagster check) has run, so it serves from
the next cutoff on; a cutoff's forecast never waits for, nor depends on, its own training run,
and re-running a cutoff gives the same forecast as long as the champion is the same.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

from smart_shelf_platform.contracts.analytics import ML_MODEL
from smart_shelf_platform.ml.model import DemandModel
from smart_shelf_platform.ml.training_set import FEATURE_COLUMNS
from smart_shelf_platform.settings import REPO_ROOT

MODEL_NAME = "shelf_demand_xgb"
COLUMNS = ML_MODEL.field_names


class RegistryError(ValueError):
    """A registry operation that cannot be done (an unknown version, say): one line for the CLI."""


def models_dir(ml_dir: Path) -> Path:
    return ml_dir / "models"


def feature_hash(columns=FEATURE_COLUMNS) -> str:
    return hashlib.sha256(",".join(columns).encode()).hexdigest()[:12]


def code_version() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO_ROOT,
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def version_for(cutoff_key: str) -> str:
    """One version per cutoff partition: a re-run of the partition replaces its model."""
    return cutoff_key.replace(":", "")


@dataclass(frozen=True)
class Entry:
    model_name: str
    model_version: str
    status: str
    cutoff_key: str
    train_until: date
    artifact_path: str
    metrics: dict

    def load(self) -> DemandModel:
        return DemandModel.load(Path(self.artifact_path))


def _entry(row: dict) -> Entry:
    return Entry(row["model_name"], row["model_version"], row["status"], row["cutoff_key"],
                 row["train_until"], row["artifact_path"], row["metrics_json"])


def register(conn: psycopg.Connection, ml_dir: Path, model: DemandModel, cutoff_key: str,
             train_from: date, metrics: dict, name: str = MODEL_NAME) -> Entry:
    """Save the artifact and upsert the registry row as a challenger (a champion re-trained for
    the same partition is replaced and must pass its gate again)."""
    version = version_for(cutoff_key)
    path = models_dir(ml_dir) / name / f"{version}.json"
    model.save(path)
    row = {
        "model_name": name, "model_version": version, "status": "challenger",
        "trained_at": datetime.now(timezone.utc), "cutoff_key": cutoff_key,
        "train_from": train_from, "train_until": model.trained_until,
        "training_rows": model.training_rows, "feature_columns": Jsonb(list(FEATURE_COLUMNS)),
        "feature_hash": feature_hash(), "params_json": Jsonb(model.params),
        "metrics_json": Jsonb(metrics), "artifact_path": str(path),
        "code_version": code_version(), "promoted_at": None,
    }
    names = ", ".join(COLUMNS)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS
                        if c not in ("model_name", "model_version"))
    conn.execute(f"INSERT INTO analytics.ml_models ({names}) VALUES "
                 f"({', '.join('%(' + c + ')s' for c in COLUMNS)}) "
                 f"ON CONFLICT (model_name, model_version) DO UPDATE SET {updates}", row)
    return Entry(name, version, "challenger", cutoff_key, model.trained_until, str(path), metrics)


def _select(conn: psycopg.Connection, where: str, params: tuple) -> list[Entry]:
    cursor = conn.cursor(row_factory=psycopg.rows.dict_row)
    rows = cursor.execute(f"SELECT * FROM analytics.ml_models WHERE {where} "
                          f"ORDER BY cutoff_key", params).fetchall()
    return [_entry(r) for r in rows]


def entries(conn: psycopg.Connection, name: str = MODEL_NAME) -> list[Entry]:
    return _select(conn, "model_name = %s", (name,))


def entry(conn: psycopg.Connection, version: str, name: str = MODEL_NAME) -> Entry | None:
    found = _select(conn, "model_name = %s AND model_version = %s", (name, version))
    return found[0] if found else None


def champion(conn: psycopg.Connection, name: str = MODEL_NAME,
             before_cutoff: str | None = None) -> Entry | None:
    """The champion, if there is one (and, with `before_cutoff`, trained for an earlier cutoff)."""
    found = _select(conn, "model_name = %s AND status = 'champion'", (name,))
    if found and (before_cutoff is None or found[0].cutoff_key < before_cutoff):
        return found[0]
    return None


def promote(conn: psycopg.Connection, version: str, name: str = MODEL_NAME) -> Entry:
    """Make `version` the champion and retire the previous one, in one transaction."""
    with conn.transaction():
        if entry(conn, version, name) is None:
            raise RegistryError(f"no model {name} version {version} in the registry")
        conn.execute("UPDATE analytics.ml_models SET status = 'retired' "
                     "WHERE model_name = %s AND status = 'champion'", (name,))
        conn.execute("UPDATE analytics.ml_models SET status = 'champion', promoted_at = now() "
                     "WHERE model_name = %s AND model_version = %s", (name, version))
    return entry(conn, version, name)


def rollback(conn: psycopg.Connection, name: str = MODEL_NAME) -> Entry:
    """Promote the most recently promoted retired model again (undo the last promotion)."""
    row = conn.execute("SELECT model_version FROM analytics.ml_models WHERE model_name = %s "
                       "AND status = 'retired' AND promoted_at IS NOT NULL "
                       "ORDER BY promoted_at DESC LIMIT 1", (name,)).fetchone()
    if row is None:
        raise RegistryError(f"no earlier champion of {name} to roll back to")
    return promote(conn, row[0], name)


def metrics_json(summary) -> dict:
    """A backtest summary (method x metric) as the JSON the registry keeps."""
    return json.loads(summary.to_json(orient="index"))
