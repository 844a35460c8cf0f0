"""The statistics of a comparison, as rliable (Agarwal et al. 2021) and marl-eval define them.

- IQM: the interquartile mean, the mean of the middle 50 % of the scores (scipy's trim_mean
  cutting 25 % at each end, as rliable computes it).
- Confidence intervals: percentile bootstrap over seeds (scipy.stats.bootstrap), 95 %. rliable's
  bootstrap is *stratified*: runs are resampled within each task. A comparison here is one
  scenario, one task, so its strata are the algorithms: each algorithm's seeds are resampled on
  their own (for the probability of improvement, X's and Y's independently).
- Probability of improvement: P(X > Y) + ½ P(X = Y) over every pair of a seed of X and a seed
  of Y, with its bootstrap CI.

Every function is deterministic (a fixed generator seed), so a screen redraws the same band.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

CONFIDENCE = 0.95
RESAMPLES = 2000
SEED = 0


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


@dataclass(frozen=True)
class Estimate:
    """One algorithm's final score over its seeds."""

    n: int
    mean: float
    iqm: float
    mean_ci: Interval | None  # None below two seeds
    iqm_ci: Interval | None


def iqm(values: Sequence[float] | np.ndarray, axis: int | None = None) -> float | np.ndarray:
    return sps.trim_mean(np.asarray(values, dtype=float), 0.25, axis=axis)


def _mean(values: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(values, axis=axis)


def bootstrap_ci(values: Sequence[float], statistic: Callable[..., np.ndarray] = _mean) -> Interval | None:
    """The 95 % percentile-bootstrap interval of `statistic` over the values (one per seed)."""
    data = np.asarray(values, dtype=float)
    if data.size < 2:
        return None
    res = sps.bootstrap((data,), statistic, n_resamples=RESAMPLES, confidence_level=CONFIDENCE,
                        method="percentile", vectorized=True, rng=np.random.default_rng(SEED))
    return Interval(float(res.confidence_interval.low), float(res.confidence_interval.high))


def estimate(values: Sequence[float]) -> Estimate | None:
    if not values:
        return None
    return Estimate(n=len(values), mean=float(np.mean(values)), iqm=float(iqm(values)),
                    mean_ci=bootstrap_ci(values), iqm_ci=bootstrap_ci(values, iqm))


def probability_of_improvement(x: Sequence[float], y: Sequence[float]) -> float:
    """P(X > Y) + ½ P(X = Y) over all pairs of a value of x and a value of y."""
    return float(_poi(np.asarray(x, dtype=float), np.asarray(y, dtype=float)))


def _poi(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    # x: (..., n), y: (..., m): compare every pair along the last axis.
    xs, ys = np.moveaxis(x, axis, -1)[..., :, None], np.moveaxis(y, axis, -1)[..., None, :]
    return np.mean((xs > ys) + 0.5 * (xs == ys), axis=(-2, -1))


@dataclass(frozen=True)
class Improvement:
    x: str
    y: str
    probability: float
    ci: Interval | None


def improvement(x_name: str, x: Sequence[float], y_name: str, y: Sequence[float]) -> Improvement:
    """P(x improves on y) with the bootstrap CI that resamples x's and y's seeds independently."""
    p = probability_of_improvement(x, y)
    if len(x) < 2 or len(y) < 2:
        return Improvement(x_name, y_name, p, None)
    res = sps.bootstrap((np.asarray(x, float), np.asarray(y, float)), _poi, n_resamples=RESAMPLES,
                        confidence_level=CONFIDENCE, method="percentile", vectorized=True,
                        paired=False, rng=np.random.default_rng(SEED))
    return Improvement(x_name, y_name, p, Interval(float(res.confidence_interval.low),
                                                   float(res.confidence_interval.high)))


@dataclass(frozen=True)
class Band:
    """Mean over seeds and its 95 % bootstrap band at each grid point (NaN where no seed is)."""

    xs: tuple[float, ...]
    mean: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]


def seed_band(xs: np.ndarray, curves: np.ndarray) -> Band:
    """curves: (seeds, len(xs)), NaN where a seed has no value (not there yet). Columns with the
    same seeds present are bootstrapped together, in one vectorised call."""
    n = curves.shape[1]
    mean, low, high = (np.full(n, np.nan) for _ in range(3))
    present = ~np.isnan(curves)
    groups: dict[bytes, list[int]] = {}
    for j in range(n):
        groups.setdefault(present[:, j].tobytes(), []).append(j)
    for cols in groups.values():
        block = curves[present[:, cols[0]]][:, cols]
        if block.shape[0] == 0:
            continue
        mean[cols] = block.mean(axis=0)
        if block.shape[0] >= 2:
            res = sps.bootstrap((block,), _mean, n_resamples=RESAMPLES // 2, confidence_level=CONFIDENCE,
                                method="percentile", vectorized=True, axis=0, rng=np.random.default_rng(SEED))
            low[cols], high[cols] = res.confidence_interval.low, res.confidence_interval.high
    return Band(tuple(xs.tolist()), tuple(mean.tolist()), tuple(low.tolist()), tuple(high.tolist()))
