"""The numbers a sample-size search reports at its answer (analysis/performance/samplesize_answer.py):
the fitted power of a secondary outcome against statsmodels' probit GLM, means and their MCSE
against a direct computation, interpolation that never extrapolates."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy.special import ndtr

from analysis.performance.power_curve import fit_power_curve
from analysis.performance.samplesize_answer import curve_table, mean_at, point_means, power_at


def _outcomes(seed=1):
    rng = np.random.default_rng(seed)
    value = np.repeat([100.0, 150.0, 200.0, 260.0, 330.0], 300)
    rejected = rng.random(value.size) < ndtr(-2.0 + 0.18 * np.sqrt(value))
    return value, rejected


def test_power_at_is_the_probit_glm_prediction():
    value, rejected = _outcomes()
    result = power_at(value, rejected, None, 222.0)
    design = sm.add_constant(np.sqrt(value))
    fit = sm.GLM(rejected.astype(float), design,
                 family=sm.families.Binomial(link=sm.families.links.Probit())).fit(tol=1e-12)
    expected = float(fit.predict(np.array([[1.0, np.sqrt(222.0)]]))[0])
    assert result.status == "ok"
    assert result.power == pytest.approx(expected, abs=1e-8)
    assert result.lower < result.power < result.upper


def test_power_at_without_a_fit_is_nan_with_the_reason():
    value = np.repeat([10.0, 20.0], 5)
    result = power_at(value, np.zeros(10, bool), None, 15.0)
    assert np.isnan(result.power) and result.status == "no_variation"


def test_point_means_and_their_mcse():
    value = np.array([1.0, 2.0, 1.0, 2.0, 1.0, 3.0])
    count = np.array([4.0, 5.0, 6.0, np.nan, 8.0, 2.0])
    levels, mean, mcse = point_means(value, count)
    np.testing.assert_array_equal(levels, [1.0, 2.0, 3.0])
    np.testing.assert_allclose(mean, [6.0, 5.0, 2.0])
    assert mcse[0] == pytest.approx(np.std([4.0, 6.0, 8.0], ddof=1) / np.sqrt(3))
    assert np.isnan(mcse[1]) and np.isnan(mcse[2])  # one observation: no SD


def test_mean_at_interpolates_and_never_extrapolates():
    levels, means = np.array([100.0, 200.0, 300.0]), np.array([70.0, 140.0, np.nan])
    assert mean_at(levels, means, 150.0) == pytest.approx(105.0)
    assert np.isnan(mean_at(levels, means, 250.0))  # beyond the last finite mean
    assert np.isnan(mean_at(levels, means, 50.0))


def test_curve_table_spans_the_range_on_the_curve():
    value, rejected = _outcomes(2)
    curve = fit_power_curve(value, rejected)
    grid, power, lower, upper = curve_table(curve, 100.0, 330.0, size=11)
    assert grid[0] == pytest.approx(100.0) and grid[-1] == pytest.approx(330.0)
    np.testing.assert_allclose(power, curve.power(grid))
    assert np.all(np.diff(power) > 0) and np.all(lower < power) and np.all(power < upper)
