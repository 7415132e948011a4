"""What happens at one supplier cutoff, on DataFrames: the promotion gate, the forecast rows.

The Dagster assets call these; they hold no I/O of their own.

- `gate(challenger_summary, champion_metrics)`: the promotion rule: the challenger's backtest
  WAPE beats seasonal naive, both moving averages and the current champion's recorded WAPE.
- `prediction_rows(...)`: the forecast of every shelf with the order it implies, in the
  `ML_PREDICTION` contract's columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from smart_shelf_platform.contracts.analytics import ML_PREDICTION
from smart_shelf_platform.ml.forecast import METHOD_MODEL, forecast_cutoff, order_rows
from smart_shelf_platform.ml.intervals import CutoffWindow, schedule_from
from smart_shelf_platform.ml.model import DemandModel
from smart_shelf_platform.ml.registry import Entry
from smart_shelf_platform.rules.supplier import SupplierSchedule
from smart_shelf_platform.settings import Settings

GATE_BASELINES = ("seasonal_naive", "moving_average_7d", "moving_average_28d")


@dataclass(frozen=True)
class ForecastConfig:
    """The forecasting settings a cutoff's runs use (SMART_SHELF_SUPPLIER_* and
    SMART_SHELF_FORECAST_*)."""

    schedule: SupplierSchedule
    order_quantile: float
    gate_cutoffs: int
    min_history_days: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ForecastConfig:
        return cls(schedule_from(settings), settings.forecast_order_quantile,
                   settings.forecast_gate_cutoffs, settings.forecast_min_history_days)


@dataclass(frozen=True)
class GateResult:
    passed: bool
    reasons: tuple[str, ...]
    wape: dict[str, float]


def gate(summary: pd.DataFrame, champion_metrics: dict | None) -> GateResult:
    """`summary`: the challenger's backtest summary (method x metric, `backtest.summary`)."""
    if summary.empty or "model" not in summary.index:
        return GateResult(False, ("no cutoff of the history could be backtested yet",), {})
    wape = {m: float(summary.loc[m, "wape"]) for m in summary.index}
    reasons = []
    for baseline in GATE_BASELINES:
        if baseline in wape and not wape["model"] < wape[baseline]:
            reasons.append(f"WAPE {wape['model']:.4f} does not beat {baseline} "
                           f"({wape[baseline]:.4f})")
    if champion_metrics and "model" in champion_metrics:
        best = float(champion_metrics["model"]["wape"])
        wape["champion"] = best
        if not wape["model"] < best:
            reasons.append(f"WAPE {wape['model']:.4f} does not beat the champion's ({best:.4f})")
    return GateResult(not reasons, tuple(reasons), wape)


def prediction_rows(champion: Entry | None, model: DemandModel | None, panel: pd.DataFrame,
                    promotions: pd.DataFrame, window: CutoffWindow, order_quantile: float,
                    shelf_life_days: pd.Series | None, created_at: datetime,
                    min_history_days: int, on_order: pd.Series | None = None) -> pd.DataFrame:
    """Every shelf's forecast and order at the cutoff, with `champion`'s name and version on the
    rows its `model` forecast (None: every shelf falls back); `on_order` as in `order_rows`."""
    forecast = forecast_cutoff(model, panel, promotions, window, min_history_days)
    rows = order_rows(forecast, panel, window, order_quantile, shelf_life_days, on_order)
    by_model = rows["method"] == METHOD_MODEL
    rows["model_name"] = np.where(by_model, champion.model_name if champion else None, None)
    rows["model_version"] = np.where(by_model, champion.model_version if champion else None,
                                     None)
    rows = rows.assign(
        cutoff_ts=window.cutoff, cutoff_date=window.cutoff.date(), origin_date=window.origin,
        interval_start=window.interval_days[0], interval_end=window.interval_days[-1],
        order_quantile=order_quantile, created_at=created_at)
    return rows[ML_PREDICTION.field_names].sort_values(["store_id", "shelf_id"]).reset_index(
        drop=True)
