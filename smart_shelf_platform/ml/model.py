"""The demand model: one global XGBoost regressor over every shelf and store, and its quantiles.

- **What it learns**: a day's demand on a shelf, from the rows of `training_set.build_rows`, with
  XGBoost's Poisson objective (`count:poisson`): sales are counts, mostly small, and the Poisson
  deviance fits their mean without the log transform's bias. One model for all shelves and
  stores, so a slow mover learns from the others. A censored day (the shelf ran empty) sold less
  than was wanted, and the busy days are the ones that run empty, so learning from the
  uncensored days alone under-forecasts (a 3.3 % negative bias in a backtest). A censored day's
  label is its expected demand given what it sold, E[Y | Y >= sold] under a Poisson with the
  mean of a fit on the uncensored days (`censored_demand`; lifting it only to the larger of
  sales and that mean still left the backtest's bias at -3.0 %), and the model is fitted again
  on every day (`_fit_censored`). When there is a calibration fit (below), its own means lift
  the labels of the final fit: a second round of the same estimate, from a model that has
  itself learnt from the lifted days.
- **Interval forecast**: the sum of the daily means over the protection interval's days.
- **Quantiles**: a negative binomial around that sum, `Var = M + dispersion * M^2`. The dispersion
  is measured, not assumed: a calibration model is fitted on the days up to the last
  `CALIBRATION_DAYS` origins (half the history when it is shorter, at least two days) and its
  sums over each later origin's days are compared with their demand: what sold, or on a
  censored day its expected demand given what sold (leaving censored days out compared the
  quantile with the quiet days only, and the 0.9 quantile covered 85.8 % in the backtest). The
  dispersion is the smallest whose `CALIBRATION_QUANTILE` (the quantile orders top up to)
  covers that share of those sums (`coverage_dispersion`). A moment estimate, dominated by the
  fast movers, left the many slow movers' intervals too narrow (0.9 covered 83 % in a
  backtest). A count's quantiles come out whole and ordered (0.5 <= 0.8 <= 0.9 <= 0.95) by
  construction.
- **Cost**: three boosters per fit (the calibration model's two, then the final one), on every
  core. The calibration's fits stop early on the hold-out's uncensored days (Poisson deviance,
  `EARLY_STOPPING_ROUNDS`) and the final fit takes as many rounds as the calibration kept:
  with a learning rate of 0.1 that was 28 to 92 rounds on a month's history, and ten stores'
  cutoff took 45 s where four fixed fits of 300 rounds at 0.05 on one thread took 125 s.
- **Artifact**: XGBoost's own JSON format; the feature list, dispersion and training window are
  stored in the booster's attributes, so the file alone is the model.

Seeds are fixed and early stopping is decided on fixed rows, so the same rows give the same model.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

# XGBoost's OpenMP threads wait passively: spinning on cores other work shares made two threads
# 2.5x slower than one here. Read once, when xgboost loads its OpenMP library.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import xgboost as xgb  # noqa: E402
from scipy import stats

from smart_shelf_platform.ml.training_set import FEATURE_COLUMNS, LABEL, SHELF, feature_matrix

DAY = timedelta(days=1)
QUANTILES = (0.5, 0.8, 0.9, 0.95)
CALIBRATION_DAYS = 7
CALIBRATION_QUANTILE = 0.9
# Dispersions tried by `coverage_dispersion`, smallest first: 0 (Poisson), then 0.005 to 4.
DISPERSION_GRID = np.concatenate([[0.0], np.geomspace(0.005, 4.0, 60)])
MIN_TRAINING_ROWS = 200
PARAMS = {
    "objective": "count:poisson",
    "eta": 0.1,
    "max_depth": 6,
    "min_child_weight": 5,
    "subsample": 0.8,
    "colsample_bytree": 0.9,
    "max_delta_step": 0.7,
    "tree_method": "hist",
    "seed": 42,
}
THREADS = os.cpu_count() or 1
# Boosting rounds: a fit with a hold-out stops once `EARLY_STOPPING_ROUNDS` more rounds have not
# improved its Poisson deviance (at most `MAX_ROUNDS`), and the final fit takes the calibration's
# best count; without a hold-out (a short history) a fit takes `ROUNDS`.
MAX_ROUNDS = 300
EARLY_STOPPING_ROUNDS = 20
ROUNDS = 100


class NotEnoughHistory(ValueError):
    """Too few labelled rows to train a model (a new store, or the first days of a run)."""


class ModelArtifactError(RuntimeError):
    """A model file that is missing or cannot be read."""


def censored_demand(mean: np.ndarray, sold: np.ndarray) -> np.ndarray:
    """E[Y | Y >= sold] for Y ~ Poisson(mean): the demand expected on a day whose shelf ran
    empty after selling `sold`, which is only a lower bound of what was wanted. It uses
    E[Y 1{Y >= s}] = mean P(Y >= s - 1), so it is mean P(Y >= s - 1) / P(Y >= s); where that tail
    underflows (`sold` far above `mean`) the day's demand is taken as what it sold."""
    mean = np.maximum(np.asarray(mean, dtype="float64"), 1e-9)
    sold = np.asarray(sold, dtype="float64")
    with np.errstate(invalid="ignore", over="ignore"):
        ratio = np.exp(stats.poisson.logsf(sold - 2, mean) - stats.poisson.logsf(sold - 1, mean))
    expected = np.where(np.isfinite(ratio), mean * ratio, sold)
    return np.maximum(expected, sold)


def _lifted_labels(rows: pd.DataFrame, mean: np.ndarray) -> np.ndarray:
    """The labels with each censored row's sales replaced by its expected demand given `mean`
    (one value per row of `rows`): uncensored rows keep what they sold."""
    censored = rows["censored"].to_numpy(dtype=bool)
    labels = rows[LABEL].to_numpy(dtype="float64").copy()
    labels[censored] = censored_demand(mean[censored], labels[censored])
    return labels


def _fit_censored(rows: pd.DataFrame, holdout: pd.DataFrame | None = None) -> xgb.Booster:
    """Fit on the uncensored rows, lift each censored row's label to its expected demand given
    that fit's mean and what it sold (`censored_demand`), fit again on every row. Each fit stops
    early on `holdout` (later uncensored rows) when given."""
    censored = rows["censored"].to_numpy(dtype=bool)
    first = _train(rows.loc[~censored], holdout=holdout)
    if not censored.any():
        return first
    mean = np.zeros(len(rows))
    mean[censored] = _predict(first, rows.loc[censored])
    return _train(rows, _lifted_labels(rows, mean), holdout=holdout)


def _matrix(rows: pd.DataFrame, labels: np.ndarray | None = None) -> xgb.DMatrix:
    return xgb.DMatrix(feature_matrix(rows), label=labels, feature_names=list(FEATURE_COLUMNS),
                       nthread=THREADS)


def _train(rows: pd.DataFrame, labels: np.ndarray | None = None, rounds: int = ROUNDS,
           holdout: pd.DataFrame | None = None) -> xgb.Booster:
    """A booster on `rows` (labels: their sales unless given): `rounds` rounds, or with a
    `holdout` (rows after them, their sales as labels) as many as improve its deviance, the
    rounds past the best dropped."""
    if labels is None:
        labels = rows[LABEL].to_numpy(dtype="float64")
    params = dict(PARAMS, nthread=THREADS)
    if holdout is None or holdout.empty:
        return xgb.train(params, _matrix(rows, labels), num_boost_round=rounds)
    evals = [(_matrix(holdout, holdout[LABEL].to_numpy(dtype="float64")), "holdout")]
    booster = xgb.train(params, _matrix(rows, labels), num_boost_round=MAX_ROUNDS, evals=evals,
                        early_stopping_rounds=EARLY_STOPPING_ROUNDS, verbose_eval=False)
    return booster[: booster.best_iteration + 1]


def _predict(booster: xgb.Booster, rows: pd.DataFrame) -> np.ndarray:
    if rows.empty:
        return np.zeros(0)
    return booster.predict(_matrix(rows))


def coverage_dispersion(actual: np.ndarray, mean: np.ndarray,
                        quantile: float = CALIBRATION_QUANTILE) -> float:
    """The smallest dispersion of `DISPERSION_GRID` whose `quantile` covers at least that share
    of `actual` (else the one that covers most): calibrated on what the quantile is used for."""
    actual = np.asarray(actual, dtype="float64")
    if actual.size == 0:
        return 0.0
    best, best_coverage = 0.0, -1.0
    for phi in DISPERSION_GRID:
        coverage = float((actual <= interval_quantiles(mean, phi, (quantile,))[quantile]).mean())
        if coverage >= quantile:
            return float(phi)
        if coverage > best_coverage:
            best, best_coverage = float(phi), coverage
    return best


def interval_quantiles(mean: np.ndarray, phi: float,
                       quantiles: tuple[float, ...] = QUANTILES) -> dict[float, np.ndarray]:
    """Quantiles of a count with mean `mean` and variance mean + phi * mean^2."""
    mean = np.maximum(np.asarray(mean, dtype="float64"), 1e-9)
    out = {}
    for q in quantiles:
        if phi <= 1e-9:
            out[q] = stats.poisson.ppf(q, mean)
        else:
            n = 1.0 / phi
            out[q] = stats.nbinom.ppf(q, n, n / (n + mean))
    return out


@dataclass
class DemandModel:
    booster: xgb.Booster
    phi: float
    trained_until: date
    training_rows: int
    params: dict
    feature_columns: tuple[str, ...] = FEATURE_COLUMNS

    @classmethod
    def fit(cls, rows: pd.DataFrame, trained_until: date) -> DemandModel:
        """Fit on labelled rows (`training_set.training_rows`, censored ones flagged) known by
        the end of `trained_until`."""
        rows = rows.assign(censored=rows["censored"].astype(bool))
        observed = rows.loc[~rows["censored"]]
        if len(observed) < MIN_TRAINING_ROWS:
            raise NotEnoughHistory(f"{len(observed)} uncensored labelled rows up to "
                                   f"{trained_until}; a model needs at least "
                                   f"{MIN_TRAINING_ROWS}")
        span = (trained_until - min(rows["origin"])).days
        split = trained_until - max(2, min(CALIBRATION_DAYS, span // 2)) * DAY
        early = (rows["day"] <= split).to_numpy()
        uncensored = ~rows["censored"].to_numpy()
        if (early & uncensored).sum() < MIN_TRAINING_ROWS:
            return cls(_fit_censored(rows), 0.0, trained_until, len(rows),
                       dict(PARAMS, rounds=ROUNDS))
        late = (rows["origin"] > split).to_numpy()
        calibration = _fit_censored(rows.loc[early], holdout=rows.loc[late & uncensored])
        mean = _predict(calibration, rows)
        labels = _lifted_labels(rows, mean)
        sums = rows.loc[late, [*SHELF, "origin"]].assign(
            actual=labels[late], mean=mean[late]).groupby([*SHELF, "origin"]).sum()
        phi = coverage_dispersion(sums["actual"].to_numpy(), sums["mean"].to_numpy())
        rounds = calibration.num_boosted_rounds()
        return cls(_train(rows, labels, rounds), phi, trained_until, len(rows),
                   dict(PARAMS, rounds=rounds))

    def predict_daily(self, rows: pd.DataFrame) -> np.ndarray:
        return _predict(self.booster, rows)

    # ---- the artifact --------------------------------------------------------------------

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.booster.set_attr(smart_shelf=json.dumps({
            "phi": self.phi, "trained_until": self.trained_until.isoformat(),
            "training_rows": self.training_rows, "feature_columns": list(self.feature_columns),
            "params": self.params}))
        self.booster.save_model(str(path))

    @classmethod
    def load(cls, path: Path) -> DemandModel:
        if not path.is_file():
            raise ModelArtifactError(f"model artifact {path} does not exist")
        booster = xgb.Booster()
        try:
            booster.load_model(str(path))
            meta = json.loads(booster.attr("smart_shelf") or "")
        except (xgb.core.XGBoostError, json.JSONDecodeError, ValueError) as error:
            raise ModelArtifactError(f"model artifact {path} cannot be read: "
                                     f"{str(error).splitlines()[0]}") from None
        if tuple(meta["feature_columns"]) != FEATURE_COLUMNS:
            raise ModelArtifactError(f"model artifact {path} was trained on other features "
                                     f"({', '.join(meta['feature_columns'])})")
        return cls(booster, float(meta["phi"]), date.fromisoformat(meta["trained_until"]),
                   int(meta["training_rows"]), meta["params"], tuple(meta["feature_columns"]))
