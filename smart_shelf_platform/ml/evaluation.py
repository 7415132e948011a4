"""The forecast's report card: the full rolling-origin backtest on the stack's own history.

`evaluate(delta_root, dsn, schedule, out_dir)` reads the daily panel, the promotions, the
simulator's true demand and the oracle's inputs, backtests every cutoff of the history
(`backtest.run_backtest`, refitting at each), writes the metrics to Delta and Postgres
(`analytics/ml_backtest`, `analytics.ml_backtest`) and draws `backtest.png` (WAPE by cutoff,
forecast against baselines and oracle). `smart-shelf backtest` and the Dagster asset call it;
`gate_summary` is the short version a new model's promotion gate runs, on observed sales only
(a production stack has no simulator ledger).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd

from smart_shelf_platform.ml import backtest, baselines, forecast_store
from smart_shelf_platform.ml.intervals import (
    CutoffWindow, cutoff_window, cutoffs_between, max_horizon,
)
from smart_shelf_platform.ml.training_set import SHELF
from smart_shelf_platform.rules.supplier import SupplierSchedule

DAY = timedelta(days=1)


def history_windows(schedule: SupplierSchedule, panel: pd.DataFrame,
                    before: datetime | None = None,
                    min_days: int = backtest.MIN_TRAINING_DAYS) -> list[CutoffWindow]:
    """Every cutoff window the panel can backtest (before `before`, when given)."""
    if panel.empty:
        return []
    first, last = min(panel["feature_date"]), max(panel["feature_date"])
    start = datetime.combine(first, datetime.min.time(), tzinfo=timezone.utc)
    end = datetime.combine(last + DAY, datetime.min.time(), tzinfo=timezone.utc)
    windows = [cutoff_window(schedule, c) for c in cutoffs_between(schedule, start, end)
               if before is None or c < before]
    return backtest.backtest_windows(windows, first, last, min_days)


def observed_truth(panel: pd.DataFrame) -> pd.DataFrame:
    """Sales as the platform saw them, in the truth frame's shape (for the promotion gate)."""
    truth = panel[[*SHELF, "feature_date", "sales_qty"]].rename(
        columns={"feature_date": "day", "sales_qty": "demand"})
    truth["demand"] = truth["demand"].astype("float64")
    return truth


def gate_summary(schedule: SupplierSchedule, panel: pd.DataFrame, promotions: pd.DataFrame,
                 cutoff: datetime, cutoffs: int,
                 progress: Callable[[str], None]) -> pd.DataFrame:
    """The model and the baselines on the last `cutoffs` cutoffs before `cutoff` whose interval
    had ended by its origin, scored against observed sales."""
    known = panel.loc[panel["feature_date"] <= cutoff.date() - DAY]
    windows = history_windows(schedule, known, before=cutoff)[-cutoffs:]
    rows = backtest.run_backtest(known, promotions, observed_truth(known), None, windows,
                                 max_horizon(schedule, cutoff), progress)
    return backtest.summary(backtest.score(rows)) if len(rows) else pd.DataFrame()


@dataclass(frozen=True)
class Evaluation:
    backtest_id: str
    rows: pd.DataFrame
    scores: pd.DataFrame
    plot: Path | None


def evaluate(delta_root: str, dsn: str, schedule: SupplierSchedule, out_dir: Path,
             progress: Callable[[str], None] = print, max_cutoffs: int | None = None,
             min_days: int = backtest.MIN_TRAINING_DAYS) -> Evaluation:
    panel = forecast_store.read_panel(delta_root)
    promotions = forecast_store.read_promotions(dsn)
    truth = forecast_store.read_truth(dsn)
    windows = history_windows(schedule, panel, min_days=min_days)
    if max_cutoffs:
        windows = windows[-max_cutoffs:]
    progress(f"history: {panel['feature_date'].nunique() if len(panel) else 0} days, "
             f"{panel[SHELF].drop_duplicates().shape[0]:,} shelves; "
             f"{len(windows)} cutoffs to backtest")
    oracle = None
    if windows:
        days = sorted({d for w in windows for d in w.interval_days})
        discounts = panel.loc[panel["feature_date"].isin(days),
                              [*SHELF, "feature_date", "discount"]].rename(
            columns={"feature_date": "day"})
        oracle = baselines.oracle_daily(forecast_store.read_visibility(dsn), discounts, days,
                                        baselines.net_units_per_customer())
    horizon = max_horizon(schedule, windows[0].cutoff) if windows else 0
    rows = backtest.run_backtest(panel, promotions, truth, oracle, windows, horizon, progress)
    scores = backtest.score(rows)
    ran_at = datetime.now(timezone.utc)
    backtest_id = ran_at.strftime("%Y%m%dT%H%M%SZ")
    plot = None
    if len(rows):
        forecast_store.write_backtest(delta_root, dsn, scores, backtest_id, ran_at)
        plot = plot_by_cutoff(scores, out_dir / "backtest.png")
    return Evaluation(backtest_id, rows, scores, plot)


SUMMARY_METRICS = ("wape", "bias", "mase", "pinball_q90", "coverage_q90", "rows")


def markdown(table: pd.DataFrame, metrics=SUMMARY_METRICS) -> str:
    """A summary (method x metric) as a Markdown table, ratios in %, for README and the UI."""
    columns = [m for m in metrics if m in table.columns]
    lines = ["| method | " + " | ".join(columns) + " |",
             "|---" * (len(columns) + 1) + "|"]
    for method, row in table.iterrows():
        cells = []
        for metric in columns:
            value = row[metric]
            if pd.isna(value):
                cells.append("")
            elif metric in ("rows", "mase"):
                cells.append(f"{value:,.0f}" if metric == "rows" else f"{value:.3f}")
            else:
                cells.append(f"{value * 100:.1f} %")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_by_cutoff(scores: pd.DataFrame, path: Path) -> Path:
    """WAPE per cutoff, one line per method (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_cutoff = scores.loc[(scores["scope"] == "all") & scores["cutoff"].notna()
                            & (scores["metric"] == "wape")]
    table = per_cutoff.pivot(index="cutoff", columns="method", values="value").sort_index()
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=110)
    for method in [m for m in backtest.METHODS if m in table.columns]:
        style = {"linewidth": 2.5} if method == "model" else {"linewidth": 1.2, "alpha": 0.85}
        if method == "oracle":
            style["linestyle"] = "--"
        ax.plot(table.index, table[method], marker="o", label=method, **style)
    ax.set_ylabel("WAPE of the protection interval")
    ax.set_xlabel("supplier cutoff (simulated)")
    ax.set_title("Demand forecast against baselines, by cutoff (rolling origin, refit each time)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncols=3)
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
