"""core/stats.py: the IQM and the stratified bootstrap on known values, and against rliable (Agarwal et al. 2021)."""

from __future__ import annotations

import numpy as np
import pytest

from rlworks.core.stats import bootstrap_mean_band, iqm, stratified_bootstrap_ci


def test_iqm_known_values():
    assert iqm(np.arange(1, 9)) == 4.5  # 8 scores: 2 cut at each end, mean of 3, 4, 5, 6
    assert iqm([0, 1, 2, 3, 4, 5, 6, 1000]) == 3.5  # an outlier seed does not move it
    assert iqm([-1000, 1, 2, 3, 4, 5, 6, 7]) == 3.5
    assert iqm([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]) == 5.5  # 10 scores: 2 cut at each end (floor(10 / 4))
    assert iqm([3.0, 1.0, 8.0]) == 4.0  # fewer than 4: nothing cut, the mean
    assert iqm([7.0]) == 7.0
    np.testing.assert_array_equal(iqm(np.array([[1, 2, 3, 100], [4, 4, 4, 4]]), axis=1), [2.5, 4.0])
    with pytest.raises(ValueError):
        iqm([])


def test_iqm_is_scipys_quarter_trimmed_mean():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for n in range(1, 30):
        x = rng.standard_cauchy(n)
        assert iqm(x) == pytest.approx(stats.trim_mean(x, 0.25), rel=1e-12, abs=1e-12)


def test_bootstrap_is_seeded_and_degenerate_data_gives_a_point():
    x = np.random.default_rng(1).normal(size=12)
    a = stratified_bootstrap_ci([x], reps=5_000, seed=3)
    assert a == stratified_bootstrap_ci([x], reps=5_000, seed=3)
    assert a != stratified_bootstrap_ci([x], reps=5_000, seed=4)
    assert a[0] < iqm(x) < a[1]
    assert stratified_bootstrap_ci([np.full(5, 2.0)], reps=1_000) == (2.0, 2.0)


def test_bootstrap_interval_of_a_mean_matches_the_normal_approximation():
    x = np.random.default_rng(2).normal(10.0, 2.0, size=400)
    low, high = stratified_bootstrap_ci([x], np.mean, reps=20_000, seed=0)
    half = 1.96 * x.std() / np.sqrt(x.size)  # the textbook interval, which the bootstrap approaches for large n
    assert low == pytest.approx(x.mean() - half, abs=0.05 * half)
    assert high == pytest.approx(x.mean() + half, abs=0.05 * half)


def test_stratified_resampling_never_moves_runs_between_tasks():
    # task A: three runs scoring 0; task B: one run scoring 10. Resampled within each task, every resample is
    # three zeros and one 10, so the mean is always 2.5; pooled, a resample could hold 0 to 4 tens
    strata = [np.zeros(3), np.array([10.0])]
    assert stratified_bootstrap_ci(strata, np.mean, reps=2_000) == (2.5, 2.5)
    low, high = stratified_bootstrap_ci([np.concatenate(strata)], np.mean, reps=2_000)
    assert low < 2.5 < high


def test_bootstrap_rejects_empty_strata_and_bad_confidence():
    with pytest.raises(ValueError):
        stratified_bootstrap_ci([np.ones(3), np.empty(0)])
    with pytest.raises(ValueError):
        stratified_bootstrap_ci([np.ones(3)], confidence=1.5)


def test_mean_band_of_curves_with_gaps():
    curves = np.array([[1.0, 2.0, np.nan], [3.0, 2.0, np.nan], [2.0, 2.0, 5.0]])  # (runs, points)
    mean, low, high = bootstrap_mean_band(curves, reps=2_000)
    np.testing.assert_allclose(mean, [2.0, 2.0, 5.0])
    assert low[0] < 2.0 < high[0] and 1.0 <= low[0] and high[0] <= 3.0
    assert low[1] == high[1] == 2.0  # every run agrees
    assert low[2] == high[2] == 5.0  # one run has a value there
    mean, low, high = bootstrap_mean_band(np.full((2, 2), np.nan), reps=100)
    assert np.isnan(mean).all() and np.isnan(low).all() and np.isnan(high).all()


@pytest.fixture
def rliable():
    """rliable draws from numpy's global generator: seeded here and put back after."""
    try:
        from rliable import library, metrics
    except Exception as exc:  # not installed (it comes with the bench extra), or its arch/pandas pair is broken
        pytest.skip(f"rliable unavailable: {type(exc).__name__}: {exc}")
    state = np.random.get_state()
    np.random.seed(0)
    yield library, metrics
    np.random.set_state(state)


@pytest.mark.parametrize("tasks", [1, 3])
def test_iqm_and_interval_agree_with_rliable(rliable, tasks):
    library, metrics = rliable
    # (runs, tasks); tasks far apart, so that resampling runs across tasks would widen the interval several-fold
    scores = np.random.default_rng(tasks).normal(size=(20, tasks)) + 5.0 * np.arange(tasks)
    reps = 20_000
    points, intervals = library.get_interval_estimates(
        {"x": scores}, lambda s: np.array([metrics.aggregate_iqm(s)]), reps=reps)
    theirs_low, theirs_high = intervals["x"][:, 0]
    ours_low, ours_high = stratified_bootstrap_ci([scores[:, t] for t in range(tasks)], iqm, reps=reps, seed=0)
    assert iqm(scores) == pytest.approx(points["x"][0], rel=1e-12)
    # two independent bootstraps of 20000 resamples: their ends differ by Monte Carlo noise, under 2 % of the
    # interval's width (measured over seeds); the mean or the median in place of the IQM moves an end by 8-35 %,
    # pooling the three tasks by ~200 %
    width = theirs_high - theirs_low
    assert ours_low == pytest.approx(theirs_low, abs=0.05 * width)
    assert ours_high == pytest.approx(theirs_high, abs=0.05 * width)
