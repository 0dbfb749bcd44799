"""Tests of analysis/performance/measures.py: performance measures with Monte Carlo SEs.

Checks: hand-computed small cases (exact), an independent per-cell loop on many random cases,
NaN handling, every MCSE against a nonparametric bootstrap of the replicates and against the
spread of the measure over many independent simulated studies,.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.special import ndtr

import analysis.performance.measures as pf

Z_975 = 1.959963984540054
CELL = ("condition", "replicate", "method", "cohort", "endpoint")


# --------------------------------------------------------------------------- helpers


def reference_measures(estimate, se, lower, upper, p_value, truth, alpha=0.05):
    """Straightforward one-cell implementation of every measure (1-D arrays), for comparison."""
    ok = np.isfinite(estimate)
    x = estimate[ok]
    n = x.size
    error = x - truth
    out = {}
    out["bias"] = (error.mean(), x.std(ddof=1) / math.sqrt(n))
    relative = error / truth
    out["relative_bias"] = (relative.mean(), relative.std(ddof=1) / math.sqrt(n))
    empse = x.std(ddof=1)
    out["empirical_se"] = (empse, empse / math.sqrt(2 * (n - 1)))
    square = error**2
    mse_value = square.mean()
    out["mse"] = (mse_value, math.sqrt(np.sum((square - mse_value) ** 2) / (n * (n - 1))))
    out["rmse"] = (math.sqrt(mse_value), out["mse"][1] / (2 * math.sqrt(mse_value)))
    out["mean_absolute_error"] = (np.abs(error).mean(), np.abs(error).std(ddof=1) / math.sqrt(n))
    s2 = se[np.isfinite(se)] ** 2
    modse = math.sqrt(s2.mean())
    out["model_se"] = (modse, math.sqrt(s2.var(ddof=1) / (4 * s2.size * modse**2)))
    both = np.isfinite(estimate) & np.isfinite(se)
    xb, s2b = estimate[both], se[both] ** 2
    nb = xb.size
    ratio = math.sqrt(s2b.mean()) / xb.std(ddof=1)
    out["relative_error_model_se"] = (
        100 * (ratio - 1),
        100 * ratio * math.sqrt(s2b.var(ddof=1) / (4 * nb * s2b.mean() ** 2) + 1 / (2 * (nb - 1))),
    )
    limits = np.isfinite(lower) & np.isfinite(upper)
    cover = np.mean((lower[limits] <= truth) & (truth <= upper[limits]))
    out["coverage"] = (cover, math.sqrt(cover * (1 - cover) / limits.sum()))
    all3 = limits & np.isfinite(estimate)
    centre = estimate[all3].mean()
    becover = np.mean((lower[all3] <= centre) & (centre <= upper[all3]))
    out["bias_eliminated_coverage"] = (becover, math.sqrt(becover * (1 - becover) / all3.sum()))
    tested = p_value[np.isfinite(p_value)]
    power = np.mean(tested < alpha)
    out["rejection_rate"] = (power, math.sqrt(power * (1 - power) / tested.size))
    return out


def library_measures(estimate, se, lower, upper, p_value, truth, *, axis=-1, alpha=0.05):
    return {
        "bias": pf.bias(estimate, truth, axis=axis),
        "relative_bias": pf.relative_bias(estimate, truth, axis=axis),
        "empirical_se": pf.empirical_se(estimate, axis=axis),
        "mse": pf.mse(estimate, truth, axis=axis),
        "rmse": pf.rmse(estimate, truth, axis=axis),
        "mean_absolute_error": pf.mean_absolute_error(estimate, truth, axis=axis),
        "model_se": pf.model_se(se, axis=axis),
        "relative_error_model_se": pf.relative_error_model_se(estimate, se, axis=axis),
        "coverage": pf.coverage(lower, upper, truth, axis=axis),
        "bias_eliminated_coverage": pf.bias_eliminated_coverage(estimate, lower, upper, axis=axis),
        "rejection_rate": pf.rejection_rate(p_value, alpha=alpha, axis=axis),
    }


def normal_replicates(rng, shape, truth=0.5):
    """Estimates N(truth + 0.1, 0.3²), model SEs 0.3·sqrt(χ²₃₀/30), Wald CIs and p-values."""
    estimate = truth + 0.1 + rng.normal(0.0, 0.3, shape)
    se = 0.3 * np.sqrt(rng.chisquare(30, shape) / 30)
    p_value = 2.0 * ndtr(-np.abs(estimate / se))
    return estimate, se, estimate - Z_975 * se, estimate + Z_975 * se, p_value


# --------------------------------------------------------------------------- array layer


def test_hand_computed_small_case():
    estimate = np.array([1.0, 2.0, 4.0])
    se = np.array([1.0, 1.0, 2.0])
    exact = {
        # truth 1: errors 0, 1, 3; sd(estimate) = sqrt(7/3)
        "bias": (pf.bias(estimate, 1.0), 4 / 3, math.sqrt(7) / 3),
        "empirical_se": (pf.empirical_se(estimate), math.sqrt(7 / 3), math.sqrt(7 / 3) / 2),
        # squared errors 0, 1, 9: MSE 10/3, sum of squared deviations 146/3
        "mse": (pf.mse(estimate, 1.0), 10 / 3, math.sqrt(73) / 3),
        "rmse": (pf.rmse(estimate, 1.0), math.sqrt(10 / 3),
                 math.sqrt(73) / 3 / (2 * math.sqrt(10 / 3))),
        # truth 2: relative errors -1/2, 0, 1
        "relative_bias": (pf.relative_bias(estimate, 2.0), 1 / 6, math.sqrt(7) / 6),
        # truth 2: absolute errors 1, 0, 2
        "mean_absolute_error": (pf.mean_absolute_error(estimate, 2.0), 1.0, 1 / math.sqrt(3)),
        # s² = 1, 1, 4: mean 2, var 3
        "model_se": (pf.model_se(se), math.sqrt(2), math.sqrt(1 / 8)),
        "relative_error_model_se": (
            pf.relative_error_model_se(estimate, se),
            100 * (math.sqrt(6 / 7) - 1),
            100 * math.sqrt(6 / 7) * math.sqrt(5 / 16),
        ),
    }
    for name, (measure, estimate_value, mcse_value) in exact.items():
        assert measure.estimate == pytest.approx(estimate_value, rel=1e-12, abs=1e-12), name
        assert measure.mcse == pytest.approx(mcse_value, rel=1e-12), name
        assert measure.n_used == 3, name

    lower = np.array([0.0, 1.5, 0.5, np.nan])
    upper = np.array([2.0, 3.0, 0.9, 1.0])
    covered = pf.coverage(lower, upper, 1.0)
    assert (covered.estimate, covered.n_used) == (pytest.approx(1 / 3, rel=1e-12), 3)
    assert covered.mcse == pytest.approx(math.sqrt(2 / 27), rel=1e-12)
    # centre = mean(1, 2, 0.7) = 1.2333: only [0, 2] contains it; the 4th replicate lacks a limit
    eliminated = pf.bias_eliminated_coverage(np.array([1.0, 2.0, 0.7, 5.0]), lower, upper)
    assert (eliminated.estimate, eliminated.n_used) == (pytest.approx(1 / 3, rel=1e-12), 3)
    # limits are inclusive
    assert pf.coverage(np.array([1.0]), np.array([2.0]), 1.0).estimate == 1.0
    assert pf.coverage(np.array([0.0]), np.array([1.0]), 1.0).estimate == 1.0

    rejected = pf.rejection_rate(np.array([0.01, 0.05, 0.2, np.nan, 0.049]), alpha=0.05)
    assert (rejected.estimate, rejected.mcse, rejected.n_used) == (0.5, 0.25, 4)
    shared = pf.proportion(np.array([True, False, True, True]), np.array([True, True, False, True]))
    assert (shared.estimate, shared.n_used) == (pytest.approx(2 / 3, rel=1e-12), 3)


def test_matches_independent_loop_on_random_cases():
    rng = np.random.default_rng(20240601)
    shape = (3, 4, 60)
    estimate, se, lower, upper, p_value = normal_replicates(rng, shape)
    for array, share in ((estimate, 0.1), (se, 0.05), (lower, 0.03), (p_value, 0.08)):
        array[rng.random(shape) < share] = np.nan
    estimate[0, 0, :] = np.where(rng.random(60) < 0.5, np.nan, estimate[0, 0, :])  # sparse cell
    truth = rng.normal(0.5, 0.2, (3, 4))
    measures = library_measures(estimate, se, lower, upper, p_value, truth)
    for i in range(3):
        for j in range(4):
            reference = reference_measures(
                estimate[i, j], se[i, j], lower[i, j], upper[i, j], p_value[i, j], truth[i, j]
            )
            for name, (value, mcse) in reference.items():
                assert measures[name].estimate[i, j] == pytest.approx(value, rel=1e-10, abs=1e-14), name
                assert measures[name].mcse[i, j] == pytest.approx(mcse, rel=1e-10, abs=1e-14), name
    assert measures["bias"].n_used[1, 2] == np.isfinite(estimate[1, 2]).sum()
    assert measures["relative_error_model_se"].n_used[1, 2] == (
        np.isfinite(estimate[1, 2]) & np.isfinite(se[1, 2])
    ).sum()


def test_replicate_axis_can_be_anywhere():
    rng = np.random.default_rng(3)
    arrays = normal_replicates(rng, (5, 40, 2))  # replicate axis = 1
    truth = np.array([[0.4, 0.5]] * 5)
    moved = library_measures(*arrays, truth, axis=1)
    last = library_measures(*(np.moveaxis(a, 1, -1) for a in arrays), truth)
    for name in moved:
        np.testing.assert_array_equal(moved[name].estimate, last[name].estimate)
        np.testing.assert_array_equal(moved[name].mcse, last[name].mcse)
        assert moved[name].estimate.shape == (5, 2)


def test_nan_handling_counts_used_and_never_warns():
    estimate = np.array([[np.nan, np.nan, np.nan], [0.3, np.nan, np.nan], [0.1, 0.4, np.nan]])
    se = np.where(np.isfinite(estimate), 0.2, np.nan)
    p_value = np.array([[np.nan] * 3, [0.01, np.nan, np.nan], [0.3, 0.02, np.nan]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        measures = library_measures(
            estimate, se, estimate - 0.4, estimate + 0.4, p_value, np.array([0.2, 0.2, 0.2])
        )
    for name, measure in measures.items():
        np.testing.assert_array_equal(measure.n_used, [0, 1, 2], err_msg=name)
        assert np.isnan(measure.estimate[0]) and np.isnan(measure.mcse[0]), name
        if name not in ("empirical_se", "relative_error_model_se"):  # need two replicates
            assert np.isfinite(measure.estimate[1]), name
        assert np.isfinite(measure.estimate[2]) and np.isfinite(measure.mcse[2]), name
    # one replicate: spread-based MCSEs are undefined, proportion MCSEs are 0 (P = 0 or 1)
    for name in ("bias", "empirical_se", "mse", "model_se", "relative_error_model_se"):
        assert np.isnan(measures[name].mcse[1]), name
    assert np.isnan(measures["empirical_se"].estimate[1])
    assert measures["bias"].estimate[1] == pytest.approx(0.1, rel=1e-12)
    assert measures["coverage"].mcse[1] == 0.0


def test_relative_bias_and_coverage_undefined_truths():
    estimate = np.array([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        relative = pf.relative_bias(estimate, np.array([0.0, 0.2]))
        covered = pf.coverage(estimate - 1, estimate + 1, np.array([np.nan, 0.2]))
    assert np.isnan(relative.estimate[0]) and np.isnan(relative.mcse[0])
    assert relative.estimate[1] == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(covered.estimate[0]) and covered.estimate[1] == 1.0
    with pytest.raises(ValueError, match="alpha"):
        pf.rejection_rate(np.array([0.1]), alpha=1.5)


# --------------------------------------------------------------------------- MCSE checks

# The bootstrap SD of a measure and its analytic MCSE estimate the same thing from the same
# replicates; they differ by the bootstrap's own Monte Carlo error (relative SD about
# 1/sqrt(2B) = 1.6% at B = 2000) and by higher-order terms. Measured over 40 seeds at n = 400 the
# ratio bootstrap-SD / MCSE had SD 0.013-0.016 for the moment-based measures and proportions, so
# 8% is > 5 SDs. Bias-eliminated coverage: the bootstrap also resamples the centre θ̄ that the
# formula treats as fixed (ratio mean 1.025, SD 0.028), hence 12%. EmpSE and the relative error
# in ModSE use the normal-theory var(sd) = sd²/(2(n-1)), while the bootstrap sees the sample
# kurtosis (SE sqrt(24/n)): ratio SD 0.063 at n = 400, 0.024 at n = 2000, so those are checked
# at n = 2000 with 12%. A wrong formula (ModSE instead of ModSE² in a denominator, a missing
# factor 2, sd instead of sd/sqrt(n)) is off by far more.
BOOTSTRAP_CASES = {
    "bias": 0.08, "relative_bias": 0.08, "mse": 0.08, "rmse": 0.08, "mean_absolute_error": 0.08,
    "model_se": 0.08, "coverage": 0.08, "rejection_rate": 0.08, "bias_eliminated_coverage": 0.12,
}
NORMAL_THEORY_CASES = {"empirical_se": 0.12, "relative_error_model_se": 0.12}


def bootstrap_ratios(*, seed: int, n: int, n_bootstrap: int, names) -> dict:
    rng = np.random.default_rng(seed)
    arrays = normal_replicates(rng, n)
    original = library_measures(*arrays, 0.5)
    resample = rng.integers(0, n, (n_bootstrap, n))  # (bootstrap, replicate): vectorised
    bootstrapped = library_measures(*(a[resample] for a in arrays), 0.5)
    return {
        name: bootstrapped[name].estimate.std(ddof=1) / original[name].mcse for name in names
    }


@pytest.mark.parametrize("cases, n", [(BOOTSTRAP_CASES, 400), (NORMAL_THEORY_CASES, 2000)])
def test_mcse_matches_bootstrap(cases, n):
    ratios = bootstrap_ratios(seed=11, n=n, n_bootstrap=2000, names=cases)
    for name, bound in cases.items():
        assert abs(ratios[name] - 1.0) < bound, (name, ratios[name])


@pytest.mark.slow
def test_mcse_matches_bootstrap_full_size():
    """Ten times the replicates, three seeds: the kurtosis term shrinks (ratio SD about 0.025 for
    EmpSE at n = 4000), so every bound is tighter than in the default test."""
    bounds = {**{name: 0.06 for name in BOOTSTRAP_CASES}, "bias_eliminated_coverage": 0.10,
              "empirical_se": 0.10, "relative_error_model_se": 0.10}
    for seed in (1, 2, 3):
        ratios = bootstrap_ratios(seed=seed, n=4000, n_bootstrap=2000, names=bounds)
        for name, bound in bounds.items():
            assert abs(ratios[name] - 1.0) < bound, (seed, name, ratios[name])


def test_mcse_matches_spread_over_independent_studies():
    """The MCSE is the SD of the measure over repeated simulation studies: check it is.

    4,000 independent studies of 200 replicates: the SD of the measure over studies has relative
    Monte Carlo error 1/sqrt(2·3999) = 1.1%; measured ratios were within 1.2% over 3 seeds, so
    6% (> 5 SDs) catches any wrong formula.
    """
    rng = np.random.default_rng(5)
    measures = library_measures(*normal_replicates(rng, (4000, 200)), 0.5)
    for name, measure in measures.items():
        ratio = measure.estimate.std(ddof=1) / np.sqrt(np.mean(measure.mcse**2))
        assert abs(ratio - 1.0) < 0.06, (name, ratio)
