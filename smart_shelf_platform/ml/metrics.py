"""Forecast error measures, on aligned arrays of actual and forecast interval demand.

- WAPE: sum |actual - forecast| / sum actual (weights shelves by their volume, defined while any
  demand exists; the headline measure).
- bias: sum (forecast - actual) / sum actual (positive: over-forecast).
- MASE: sum |actual - forecast| / sum scale, where a row's scale is the in-sample error of the
  seasonal naive forecast for the same interval length (`baselines.naive_scale`): below 1 beats
  a one-week-ago forecast made on the history itself.
- pinball loss of a quantile forecast, averaged over rows and divided by the mean actual (scaled,
  so stores and weeks of different volume compare), and its coverage: the share of rows whose
  actual is at or below the quantile (a calibrated 0.9 quantile covers 90 %).
"""

from __future__ import annotations

import numpy as np


def _arrays(*values) -> list[np.ndarray]:
    arrays = [np.asarray(v, dtype="float64") for v in values]
    if len({a.shape for a in arrays}) != 1:
        raise ValueError("actual and forecast must have the same length")
    return arrays


def wape(actual, forecast) -> float:
    a, f = _arrays(actual, forecast)
    total = a.sum()
    return float(np.abs(a - f).sum() / total) if total > 0 else float("nan")


def bias(actual, forecast) -> float:
    a, f = _arrays(actual, forecast)
    total = a.sum()
    return float((f - a).sum() / total) if total > 0 else float("nan")


def mase(actual, forecast, scale) -> float:
    a, f, s = _arrays(actual, forecast, scale)
    known = ~np.isnan(s)
    denominator = s[known].sum()
    return float(np.abs(a - f)[known].sum() / denominator) if denominator > 0 else float("nan")


def pinball(actual, quantile_forecast, q: float) -> float:
    a, f = _arrays(actual, quantile_forecast)
    mean = a.mean() if a.size else 0.0
    if mean <= 0:
        return float("nan")
    diff = a - f
    return float(np.maximum(q * diff, (q - 1) * diff).mean() / mean)


def coverage(actual, quantile_forecast) -> float:
    a, f = _arrays(actual, quantile_forecast)
    return float((a <= f).mean()) if a.size else float("nan")
