"""Tests of analysis/performance/measures.py: performance measures with Monte Carlo SEs.

Checks: hand-computed small cases (exact), an independent per-cell loop on many random cases,
NaN handling, every MCSE against a nonparametric bootstrap of the replicates and against the
spread of the measure over many independent simulated studies, and ``summarise_run`` on a
synthetic Dataset in the results schema (dims, values against direct numpy, netCDF round trip,
the CSV table).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import xarray as xr
from scipy.special import ndtr

import analysis.performance.measures as pf
from analysis import status as status_codes
from analysis.performance.analytic_power import freedman_power, schoenfeld_power

Z_975 = 1.959963984540054
CELL = ("condition", "replicate", "method", "cohort", "endpoint")


# --------------------------------------------------------------------------- helpers


def make_replicates(*, rng: np.random.Generator, n_conditions: int = 2, n_replicates: int = 300):
    """A synthetic replicates Dataset in the schema of docs/results_schema.md.

    Condition 0 is null (true log HRs 0); the others have PFS HR 0.6 conditional / 0.65
    marginal and an OS effect. About 5% of analyses fail (status != 0, NaN estimates), 2% of
    log-rank p-values and 10% of treated medians are NaN, 3% of PS fits fail.
    """
    C, R, M, K, E = n_conditions, n_replicates, 2, 2, 2
    shape = (C, R, M, K, E)
    true_conditional = np.zeros((C, E))
    true_marginal = np.zeros((C, E))
    true_conditional[1:] = [np.log(0.6), -0.25]
    true_marginal[1:] = [np.log(0.65), -0.2]
    se = 0.2 * np.exp(rng.normal(0.0, 0.2, shape))
    log_hr = true_marginal[:, None, None, None, :] + 0.03 + rng.normal(0.0, 0.21, shape)
    status = np.where(rng.random(shape) < 0.05, rng.integers(1, 8, shape), 0).astype(np.int8)
    failed = status != 0
    log_hr[failed] = np.nan
    se[failed] = np.nan
    p_value = 2.0 * ndtr(-np.abs(log_hr / se))
    p_logrank = np.clip(p_value * np.exp(rng.normal(0.0, 0.1, shape)), 0.0, 1.0)
    p_logrank[rng.random(shape) < 0.02] = np.nan
    median_treated = 10.0 + rng.normal(0.0, 2.0, shape)
    median_control = 7.0 + rng.normal(0.0, 1.5, shape)
    median_treated[rng.random(shape) < 0.1] = np.nan
    median_treated[failed] = np.nan
    median_control[failed] = np.nan
    n_pairs = rng.integers(25, 45, (C, R, M)).astype(np.int32)
    n_treated = np.empty((C, R, M, K), np.int32)
    n_control = np.empty((C, R, M, K), np.int32)
    n_treated[..., 0] = rng.integers(50, 70, (C, R, M))
    n_control[..., 0] = rng.integers(100, 140, (C, R, M))
    n_treated[..., 1] = n_pairs
    n_control[..., 1] = n_pairs
    max_abs_smd = np.abs(rng.normal(0.1, 0.05, (C, R, M, K)))
    max_abs_smd[..., 0] += 0.05
    max_abs_smd[rng.random(max_abs_smd.shape) < 0.02] = np.nan
    ps_status = np.where(rng.random((C, R, M)) < 0.03, rng.integers(1, 4, (C, R, M)), 0)
    p_orr = rng.random((C, R, M, K)) * 0.2
    p_orr[rng.random(p_orr.shape) < 0.02] = np.nan
    return xr.Dataset(
        {
            "log_hr": (CELL, log_hr),
            "se": (CELL, se),
            "ci_lower": (CELL, log_hr - Z_975 * se),
            "ci_upper": (CELL, log_hr + Z_975 * se),
            "p_value": (CELL, p_value),
            "p_logrank": (CELL, p_logrank),
            "median_treated": (CELL, median_treated),
            "median_control": (CELL, median_control),
            "events_treated": (CELL, rng.integers(20, 60, shape).astype(np.int32)),
            "events_control": (CELL, rng.integers(20, 60, shape).astype(np.int32)),
            "status": (CELL, status),
            "n_treated": (CELL[:4], n_treated),
            "n_control": (CELL[:4], n_control),
            "max_abs_smd": (CELL[:4], max_abs_smd),
            "p_orr": (CELL[:4], p_orr),
            "p_dcr": (CELL[:4], rng.random((C, R, M, K))),
            "n_pairs": (CELL[:3], n_pairs),
            "ps_status": (CELL[:3], ps_status.astype(np.int8)),
            "true_log_hr_conditional": (("condition", "endpoint"), true_conditional),
            "true_log_hr_marginal": (("condition", "endpoint"), true_marginal),
            "true_median_treated": (("condition", "endpoint"), np.full((C, E), 10.5)),
            "true_median_control": (("condition", "endpoint"), np.full((C, E), 7.0)),
        },
        coords={
            "condition": np.arange(C),
            "replicate": np.arange(R),
            "method": ["paper", "recommended"],
            "cohort": ["full", "matched"],
            "endpoint": ["pfs", "os"],
            "hazard_ratio": ("condition", np.r_[1.0, np.full(C - 1, 0.6)]),
        },
        attrs={
            "psmsim_version": "0.1.0",
            "created_at": "2026-01-01T00:00:00+00:00",
            "root_seed": 7,
            "block_size": 100,
            "n_replicates": R,
            "scenario_name": "synthetic",
            "alpha": 0.05,
        },
    )


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


# --------------------------------------------------------------------------- Dataset layer

EXPECTED_DIMS = {
    ("condition", "method", "cohort", "endpoint"): [
        "power_logrank", "n_used_logrank", "power_cox", "n_used_cox",
        *[f"{m}_{t}" for t in ("conditional", "marginal")
          for m in ("bias", "relative_bias", "mse", "rmse", "mean_abs_error", "coverage")],
        "bias_eliminated_coverage", "emp_se", "n_used", "mod_se", "rel_error_mod_se",
        "median_treated_mean", "median_treated_bias", "median_treated_not_reached",
        "median_control_mean", "median_control_bias", "median_control_not_reached",
        "mean_events", "mean_allocation", "schoenfeld_power", "freedman_power",
    ],
    ("condition", "method", "cohort", "endpoint", "status"): ["status_rate"],
    ("condition", "endpoint"): ["null_truth"],
    ("condition", "method", "status"): ["ps_status_rate"],
    ("condition", "method", "cohort"): ["balance_rate", "n_used_balance"],
    ("condition", "method"): [
        "n_pairs_mean", "n_pairs_sd", "n_pairs_min", "n_pairs_q1", "n_pairs_median",
        "n_pairs_q3", "n_pairs_max", "paper_pattern_rate",
    ],
    ("condition", "method", "criterion"): ["paper_pattern_criterion_rate"],
}


@pytest.fixture(scope="module")
def replicates():
    return make_replicates(rng=np.random.default_rng(42), n_conditions=2, n_replicates=300)


@pytest.fixture(scope="module")
def summary(replicates):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return pf.summarise_run(replicates, alpha=0.05)


def test_summary_variables_and_dims(summary):
    expected = {}
    for dims, names in EXPECTED_DIMS.items():
        for name in names:
            expected[name] = dims
    without_mcse = {
        "null_truth", "mean_allocation", "schoenfeld_power", "freedman_power",
        "median_treated_mean", "median_control_mean",
        *[f"n_pairs_{q}" for q in ("sd", "min", "q1", "median", "q3", "max")],
    }
    with_mcse = [n for n in expected if n not in without_mcse and not n.startswith("n_used")]
    for name in with_mcse:
        expected[f"{name}_mcse"] = expected[name]
    assert set(summary.data_vars) == set(expected)
    for name, dims in expected.items():
        assert summary[name].dims == dims, name
    assert summary.sizes == {"condition": 2, "method": 2, "cohort": 2, "endpoint": 2,
                             "status": len(status_codes.STATUS_NAMES), "criterion": 4}
    assert summary.status.values.tolist() == list(status_codes.STATUS_NAMES.values())
    assert summary.criterion.values.tolist() == list(pf.PAPER_PATTERN_CRITERIA)
    assert summary.hazard_ratio.dims == ("condition",)


def cell(replicates, name, c, m, k, e):
    return replicates[name].isel(condition=c).sel({"method": m, "cohort": k, "endpoint": e}).values


def test_summary_values_match_direct_numpy(replicates, summary):
    for c in range(2):
        for m in ("paper", "recommended"):
            for k in ("full", "matched"):
                for e in ("pfs", "os"):
                    got = summary.isel(condition=c).sel({"method": m, "cohort": k, "endpoint": e})
                    log_hr, se, lower, upper = (cell(replicates, v, c, m, k, e)
                                                for v in ("log_hr", "se", "ci_lower", "ci_upper"))
                    used = np.isfinite(log_hr) & np.isfinite(se) & np.isfinite(lower) & np.isfinite(upper)
                    x = log_hr[used]
                    n = used.sum()
                    assert got.n_used == n
                    for suffix in ("conditional", "marginal"):
                        truth = float(replicates[f"true_log_hr_{suffix}"].isel(condition=c).sel(endpoint=e))
                        assert got[f"bias_{suffix}"] == pytest.approx(np.mean(x - truth), rel=1e-12, abs=1e-15)
                        assert got[f"bias_{suffix}_mcse"] == pytest.approx(x.std(ddof=1) / np.sqrt(n), rel=1e-12)
                        assert got[f"mse_{suffix}"] == pytest.approx(np.mean((x - truth) ** 2), rel=1e-12)
                        assert got[f"mean_abs_error_{suffix}"] == pytest.approx(np.mean(np.abs(x - truth)), rel=1e-12)
                        cover = np.mean((lower[used] <= truth) & (truth <= upper[used]))
                        assert got[f"coverage_{suffix}"] == pytest.approx(cover, rel=1e-12)
                        if truth == 0:
                            assert np.isnan(got[f"relative_bias_{suffix}"])
                        else:
                            assert got[f"relative_bias_{suffix}"] == pytest.approx(np.mean((x - truth) / truth), rel=1e-12)
                    assert got.emp_se == pytest.approx(x.std(ddof=1), rel=1e-12)
                    assert got.mod_se == pytest.approx(np.sqrt(np.mean(se[used] ** 2)), rel=1e-12)
                    for variable, power in (("p_logrank", "power_logrank"), ("p_value", "power_cox")):
                        p = cell(replicates, variable, c, m, k, e)
                        tested = p[np.isfinite(p)]
                        assert got[power] == pytest.approx(np.mean(tested < 0.05), rel=1e-12)
                        assert got[f"n_used_{power.split('_')[1]}"] == tested.size
                    status = cell(replicates, "status", c, m, k, e)
                    for code, label in status_codes.STATUS_NAMES.items():
                        assert got.status_rate.sel(status=label) == pytest.approx(np.mean(status == code), rel=1e-12)
                    tested = np.isfinite(cell(replicates, "p_logrank", c, m, k, e))
                    events = (cell(replicates, "events_treated", c, m, k, e)
                              + cell(replicates, "events_control", c, m, k, e))[tested]
                    assert got.mean_events == pytest.approx(events.mean(), rel=1e-12)
                    n_t = replicates.n_treated.isel(condition=c).sel({"method": m, "cohort": k}).values
                    n_c = replicates.n_control.isel(condition=c).sel({"method": m, "cohort": k}).values
                    allocation = (n_t / (n_t + n_c))[tested].mean()
                    assert got.mean_allocation == pytest.approx(allocation, rel=1e-12)
                    hazard_ratio = np.exp(float(replicates.true_log_hr_marginal.isel(condition=c).sel(endpoint=e)))
                    assert got.schoenfeld_power == pytest.approx(
                        schoenfeld_power(events.mean(), hazard_ratio, allocation=allocation), rel=1e-12)
                    assert got.freedman_power == pytest.approx(
                        freedman_power(events.mean(), hazard_ratio, ratio=allocation / (1 - allocation)), rel=1e-12)
                    median = cell(replicates, "median_treated", c, m, k, e)
                    reached = median[np.isfinite(median)]
                    assert got.median_treated_bias == pytest.approx(reached.mean() - 10.5, rel=1e-12)
                    assert got.median_treated_not_reached == pytest.approx(
                        np.mean(np.isnan(median[status == 0])), rel=1e-12)


def test_summary_cohort_and_method_level_values(replicates, summary):
    for c in range(2):
        for m in ("paper", "recommended"):
            pairs = replicates.n_pairs.isel(condition=c).sel({"method": m}).values.astype(float)
            got = summary.isel(condition=c).sel({"method": m})
            assert got.n_pairs_mean == pytest.approx(pairs.mean(), rel=1e-12)
            assert got.n_pairs_sd == pytest.approx(pairs.std(ddof=1), rel=1e-12)
            assert [float(got[f"n_pairs_{q}"]) for q in ("min", "q1", "median", "q3", "max")] == \
                pytest.approx(np.quantile(pairs, [0, 0.25, 0.5, 0.75, 1]).tolist(), rel=1e-12)
            for k in ("full", "matched"):
                smd = replicates.max_abs_smd.isel(condition=c).sel({"method": m, "cohort": k}).values
                assert got.balance_rate.sel(cohort=k) == pytest.approx(np.mean(smd[np.isfinite(smd)] < 0.1), rel=1e-12)
            matched = replicates.isel(condition=c).sel({"method": m, "cohort": "matched"})
            criteria = np.stack([
                matched.p_logrank.sel(endpoint="pfs").values < 0.05,
                matched.p_logrank.sel(endpoint="os").values >= 0.05,
                matched.p_orr.values < 0.05,
                matched.p_dcr.values >= 0.05,
            ])
            share = np.mean(criteria.all(axis=0))
            assert got.paper_pattern_rate == pytest.approx(share, rel=1e-12, abs=1e-15)
            assert got.paper_pattern_rate_mcse == pytest.approx(np.sqrt(share * (1 - share) / 300), rel=1e-12, abs=1e-15)
            np.testing.assert_allclose(got.paper_pattern_criterion_rate.values, criteria.mean(axis=1), rtol=1e-12)
            ps = replicates.ps_status.isel(condition=c).sel({"method": m}).values
            assert got.ps_status_rate.sel(status="ok") == pytest.approx(np.mean(ps == 0), rel=1e-12)
    np.testing.assert_allclose(summary.status_rate.sum("status"), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(summary.null_truth.values, [[True, True], [False, False]])


def test_summary_attrs_round_trip_and_table(replicates, summary, tmp_path):
    assert summary.attrs["alpha"] == 0.05
    assert summary.attrs["source_created_at"] == replicates.attrs["created_at"]
    assert summary.attrs["created_at"] != replicates.attrs["created_at"]
    for key in ("psmsim_version", "root_seed", "block_size", "n_replicates", "scenario_name"):
        assert summary.attrs[key] == replicates.attrs[key]
    path = tmp_path / "summary.nc"
    summary.to_netcdf(path, engine="h5netcdf")
    with xr.open_dataset(path, engine="h5netcdf") as reopened:
        xr.testing.assert_identical(reopened.load(), summary)

    table = pf.summary_to_frame(summary)
    assert list(table.columns) == ["condition", "hazard_ratio", "method", "cohort", "endpoint",
                                   "measure", "estimate", "mcse"]
    expected_rows = sum(v.size for n, v in summary.data_vars.items() if not n.endswith("_mcse"))
    assert len(table) == expected_rows
    row = table[(table.measure == "bias_marginal") & (table.condition == 1)
                & (table.method == "recommended") & (table.cohort == "matched") & (table.endpoint == "os")]
    target = summary.isel(condition=1).sel({"method": "recommended", "cohort": "matched", "endpoint": "os"})
    assert row.estimate.item() == float(target.bias_marginal)
    assert row.mcse.item() == float(target.bias_marginal_mcse)
    assert row.hazard_ratio.item() == 0.6
    status_row = table[(table.measure == "status_rate[no_events]") & (table.condition == 0)
                       & (table.method == "paper") & (table.cohort == "full") & (table.endpoint == "pfs")]
    assert status_row.estimate.item() == float(
        summary.status_rate.isel(condition=0).sel({"method": "paper", "cohort": "full", "endpoint": "pfs",
                                                   "status": "no_events"}))
    pairs = table[table.measure == "n_pairs_q1"]
    assert len(pairs) == 4 and set(pairs.cohort) == {""} and pairs.mcse.isna().all()
    table.to_csv(tmp_path / "summary.csv", index=False)


def test_summary_all_failed_cell_is_nan_not_error(replicates):
    broken = replicates.copy(deep=True)
    cell_index = {"condition": 0, "method": 1, "cohort": 1}
    for name in ("log_hr", "se", "ci_lower", "ci_upper", "p_value", "p_logrank"):
        broken[name][cell_index] = np.nan
    broken["status"][cell_index] = status_codes.NO_MATCHES
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        summary = pf.summarise_run(broken)
    failed = summary.isel(condition=0, method=1, cohort=1)
    assert (failed.n_used == 0).all() and (failed.n_used_logrank == 0).all()
    assert failed.power_logrank.isnull().all() and failed.bias_marginal.isnull().all()
    assert failed.schoenfeld_power.isnull().all()
    assert (failed.status_rate.sel(status="no_matches") == 1.0).all()


def test_summarise_run_refuses_a_foreign_dataset(replicates):
    with pytest.raises(ValueError, match="missing variables.*p_logrank"):
        pf.summarise_run(replicates.drop_vars("p_logrank"))
    with pytest.raises(ValueError, match="n_pairs: dims"):
        pf.summarise_run(replicates.assign(n_pairs=replicates.max_abs_smd))
    with pytest.raises(ValueError, match="alpha"):
        pf.summarise_run(replicates, alpha=0.0)
