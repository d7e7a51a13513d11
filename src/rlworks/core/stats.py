"""Aggregate scores of many runs honestly: the interquartile mean and stratified bootstrap confidence intervals.

Agarwal et al. 2021, "Deep Reinforcement Learning at the Edge of the Statistical Precipice" (NeurIPS;
arXiv:2108.13264), section 4: report the interquartile mean (IQM) of the runs' scores — robust to a few
outlier seeds, yet less noisy than the median — with a 95 % percentile bootstrap interval, resampling runs
within each task ("stratified"). Their library, rliable, computes the same numbers (tests/unit/test_stats.py
checks these against it); rlworks keeps its own small numpy version so that it does not depend on rliable
and its dependencies (arch, statsmodels, pandas, seaborn).

Every resample comes from a ``numpy.random.Generator`` seeded by the caller: same seed, same interval.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np

#: bootstrap resamples per interval: rliable's default; an interval's ends then move by well under 1 % of
#: its width between seeds
REPS = 50_000


def iqm(scores: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """Interquartile mean: the mean of the middle half of ``scores`` along ``axis`` (all of them if None).

    As ``scipy.stats.trim_mean(scores, 0.25)`` (what rliable's ``aggregate_iqm`` calls): ``floor(n / 4)``
    values are cut at each end, so below 4 scores nothing is cut and the IQM is the mean."""
    a = np.asarray(scores, dtype=float)
    if axis is None:
        a, axis = a.ravel(), 0
    a = np.moveaxis(a, axis, -1)
    n = a.shape[-1]
    if n == 0:
        raise ValueError("the IQM of no scores is undefined")
    cut = n // 4
    middle = np.sort(a, axis=-1)[..., cut:n - cut]
    out = middle.mean(axis=-1)
    return float(out) if out.ndim == 0 else out


def stratified_bootstrap_ci(strata: Sequence[np.ndarray], statistic: Callable[..., np.ndarray] = iqm, *,
                            reps: int = REPS, confidence: float = 0.95, seed: int = 0,
                            chunk: int = 5_000) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over all scores, resampling within each stratum.

    ``strata``: one 1-D array of run scores per task (runs of different tasks are never swapped, so the
    interval reflects "the same tasks, other seeds"; Agarwal et al. 2021, section 4 and appendix A.1). With
    one stratum this is the ordinary bootstrap over runs. ``statistic(x, axis=-1)`` must reduce the last
    axis (``iqm``, ``np.median``, ``np.mean`` do). Returns (low, high) at the ``(1 - confidence) / 2`` and
    ``(1 + confidence) / 2`` quantiles of the ``reps`` resampled statistics."""
    groups = [np.asarray(s, dtype=float).ravel() for s in strata]
    if not groups or any(g.size == 0 for g in groups):
        raise ValueError("every stratum needs at least one score")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence} is out of range: allowed (0, 1)")
    rng = np.random.default_rng(seed)
    stats = np.empty(reps)
    for start in range(0, reps, chunk):
        m = min(chunk, reps - start)
        # (m, n_total): each row a resample holding as many runs of each task as the data has
        sample = np.concatenate([g[rng.integers(0, g.size, size=(m, g.size))] for g in groups], axis=1)
        stats[start:start + m] = statistic(sample, axis=-1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(stats, [tail, 1 - tail])
    return float(low), float(high)


def bootstrap_mean_band(curves: np.ndarray, *, reps: int = 2_000, confidence: float = 0.95,
                        seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean learning curve over runs and its pointwise percentile bootstrap band.

    ``curves``: (runs, points), NaN where a run has no value (before its first episode, after its last
    step). Whole runs are resampled, so one resample's curve is the mean of real runs. Returns
    (mean, low, high), each (points,); NaN where no run has a value."""
    c = np.asarray(curves, dtype=float)  # (runs, points)
    runs = c.shape[0]
    if runs == 0:
        raise ValueError("no curves to average")
    have = ~np.isnan(c)
    count = have.sum(axis=0)  # (points,)
    filled = np.where(have, c, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = filled.sum(axis=0) / count
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, runs, size=(reps, runs))  # (reps, runs)
        # sums over the resampled runs of each point, without a (reps, runs, points) array
        weights = np.zeros((reps, runs))
        np.add.at(weights, (np.arange(reps)[:, None], idx), 1.0)
        means = (weights @ filled) / (weights @ have)  # (reps, points)
    tail = (1 - confidence) / 2
    # a resample may hold only runs without a value at a point (runs of unequal length): it is left out there
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "All-NaN slice" where no run has a value
        low, high = np.nanquantile(means, [tail, 1 - tail], axis=0)
    return mean, low, high
