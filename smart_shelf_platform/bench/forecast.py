"""`smart-shelf bench forecast`: what one cutoff's training and forecast cost, for 1 or N stores.

It reads the stack's daily panel (the features of the simulated days), and for N stores copies
each store's rows under N store ids (S001..S0NN: the same history N times; a chain's stores
would differ, their volume would not), then times, for the latest cutoff whose origin the panel
has, in this process: building the training set, fitting the model (with its dispersion
calibration), and forecasting every shelf with the order it implies. Peak memory is the
process's peak resident size, read after each step (Linux `ru_maxrss`).
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from datetime import datetime, timezone

import pandas as pd

from smart_shelf_platform.ml import forecast_store
from smart_shelf_platform.ml.forecast import forecast_cutoff, order_rows
from smart_shelf_platform.ml.intervals import (
    cutoff_window, cutoffs_between, max_horizon, schedule_from,
)
from smart_shelf_platform.ml.model import DemandModel, NotEnoughHistory
from smart_shelf_platform.ml.training_set import training_rows
from smart_shelf_platform.settings import Settings
from smart_shelf_platform.stack.process import StackError


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def replicate(panel: pd.DataFrame, stores: int) -> pd.DataFrame:
    """The panel's rows under `stores` store ids (its own stores' rows, copied)."""
    frames = [panel.assign(store_id=f"S{n:03d}") for n in range(1, stores + 1)]
    return pd.concat(frames, ignore_index=True) if stores > 1 else panel


def bench_forecast(settings: Settings, progress: Callable[[str], None],
                   stores: int = 1) -> dict:
    schedule = schedule_from(settings)
    panel = forecast_store.read_panel(settings.delta_root)
    if panel.empty:
        raise StackError("no daily features yet: simulate days with the stack up first")
    first, last = min(panel["feature_date"]), max(panel["feature_date"])
    moments = cutoffs_between(schedule, datetime.combine(first, datetime.min.time(), timezone.utc),
                              datetime.combine(last, datetime.min.time(), timezone.utc)
                              + pd.Timedelta(days=2))  # a cutoff the day after the last day
    usable = [c for c in moments if first < cutoff_window(schedule, c).origin <= last]
    if not usable:
        raise StackError(f"no cutoff has its origin in the features ({first} .. {last})")
    window = cutoff_window(schedule, usable[-1])
    panel = replicate(panel.loc[panel["store_id"] == panel["store_id"].min()], stores)
    promotions = replicate(forecast_store.read_promotions(settings.postgres_dsn()), stores)
    progress(f"cutoff {window.cutoff:%Y-%m-%d %H:%M}: {len(panel):,} panel rows, "
             f"{stores} store(s)")
    timings = {}
    started = time.perf_counter()
    rows = training_rows(panel, promotions, window.origin, max_horizon(schedule, window.cutoff),
                         settings.forecast_min_history_days)
    timings["training_set_s"] = time.perf_counter() - started
    step = time.perf_counter()
    try:
        model = DemandModel.fit(rows, window.origin)
    except NotEnoughHistory as error:
        raise StackError(f"cutoff {window.cutoff:%Y-%m-%d %H:%M}: {error}") from None
    timings["fit_s"] = time.perf_counter() - step
    step = time.perf_counter()
    forecast = forecast_cutoff(model, panel, promotions, window, settings.forecast_min_history_days)
    orders = order_rows(forecast, panel, window, settings.forecast_order_quantile)
    timings["forecast_s"] = time.perf_counter() - step
    timings["total_s"] = time.perf_counter() - started
    return {
        "benchmark": "forecast", "stores": stores, "cutoff": window.cutoff.isoformat(),
        "panel_days": int(panel["feature_date"].nunique()), "training_rows": len(rows),
        "shelves_forecast": len(orders),
        **{k: round(v, 2) for k, v in timings.items()},
        "peak_rss_mib": round(_peak_mib(), 1),
    }
