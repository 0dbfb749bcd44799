"""Tests of analysis/performance/analytic_power.py: Schoenfeld and Freedman power / events.

Reference numbers: Schoenfeld (1983, Biometrics 39:499-503) and Freedman (1982, Stat Med
1:121-129) events for alpha 0.05 two-sided, 80% power, 1:1; Freedman cross-checked against
lifelines.statistics.power_under_cph and sample_size_necessary_under_cph (powerSurvEpi's
formulas).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from lifelines.statistics import power_under_cph, sample_size_necessary_under_cph
from scipy.stats import norm

from analysis.performance.analytic_power import (
    freedman_events,
    freedman_power,
    schoenfeld_events,
    schoenfeld_power,
)


def test_reference_events_at_80_percent_power():
    # simulation_studies.md §5.3: HR -> (Schoenfeld d, rounded up, Freedman d, rounded up). The
    # reference prints "252.0 -> 252" for Freedman at HR 0.7, but d = 7.84887 * 1.7² / 0.3² =
    # 252.036, which rounds *up* to 253 (the table rounded that one to nearest): 253 here.
    table = {0.5: (65.3, 66, 70.6, 71), 0.6: (120.3, 121, 125.6, 126), 0.7: (246.8, 247, 252.0, 253)}
    for hazard_ratio, (schoenfeld, schoenfeld_up, freedman, freedman_up) in table.items():
        assert round(float(schoenfeld_events(hazard_ratio)), 1) == schoenfeld
        assert math.ceil(schoenfeld_events(hazard_ratio)) == schoenfeld_up
        assert round(float(freedman_events(hazard_ratio)), 1) == freedman
        assert math.ceil(freedman_events(hazard_ratio)) == freedman_up


def test_reference_schoenfeld_power_at_hr_one_half():
    power = schoenfeld_power(np.array([30, 40, 50, 60]), 0.5)
    np.testing.assert_array_equal(np.round(power, 3), [0.475, 0.592, 0.688, 0.766])


def test_closed_forms_against_scipy_on_random_cases():
    rng = np.random.default_rng(7)
    events = rng.uniform(1, 500, 200)
    hazard_ratio = np.exp(rng.uniform(-1.5, 1.5, 200))
    allocation = rng.uniform(0.1, 0.9, 200)
    alpha = rng.uniform(0.001, 0.2, 200)
    power = rng.uniform(0.05, 0.99, 200)
    z = norm.ppf(1 - alpha / 2)
    ratio = allocation / (1 - allocation)
    for i in range(200):
        assert schoenfeld_power(events[i], hazard_ratio[i], allocation=allocation[i], alpha=alpha[i]) == \
            pytest.approx(norm.cdf(math.sqrt(events[i] * allocation[i] * (1 - allocation[i]))
                                   * abs(math.log(hazard_ratio[i])) - z[i]), rel=1e-12, abs=1e-300)
        assert schoenfeld_events(hazard_ratio[i], power=power[i], allocation=allocation[i], alpha=alpha[i]) == \
            pytest.approx((z[i] + norm.ppf(power[i])) ** 2
                          / (allocation[i] * (1 - allocation[i]) * math.log(hazard_ratio[i]) ** 2), rel=1e-12)
        assert freedman_events(hazard_ratio[i], power=power[i], ratio=ratio[i], alpha=alpha[i]) == \
            pytest.approx((z[i] + norm.ppf(power[i])) ** 2 * (1 + ratio[i] * hazard_ratio[i]) ** 2
                          / (ratio[i] * (1 - hazard_ratio[i]) ** 2), rel=1e-12)
    # vectorised call equals the element-wise one
    vectorised = schoenfeld_power(events, hazard_ratio, allocation=allocation, alpha=alpha)
    assert vectorised.shape == (200,)
    assert vectorised[17] == schoenfeld_power(events[17], hazard_ratio[17],
                                              allocation=allocation[17], alpha=alpha[17])


def test_power_and_events_are_inverse():
    rng = np.random.default_rng(8)
    hazard_ratio = np.exp(rng.uniform(-1.2, 1.2, 100))
    target = rng.uniform(0.1, 0.99, 100)
    allocation = rng.uniform(0.2, 0.8, 100)
    alpha = rng.uniform(0.01, 0.1, 100)
    d = schoenfeld_events(hazard_ratio, power=target, allocation=allocation, alpha=alpha)
    np.testing.assert_allclose(
        schoenfeld_power(d, hazard_ratio, allocation=allocation, alpha=alpha), target, rtol=1e-12)
    ratio = allocation / (1 - allocation)
    d = freedman_events(hazard_ratio, power=target, ratio=ratio, alpha=alpha)
    np.testing.assert_allclose(freedman_power(d, hazard_ratio, ratio=ratio, alpha=alpha), target, rtol=1e-12)


def test_freedman_power_matches_lifelines():
    rng = np.random.default_rng(9)
    for _ in range(200):
        n_exp, n_con = rng.integers(10, 400, 2)
        p_exp, p_con = rng.uniform(0.1, 1.0, 2)
        hazard_ratio = float(np.exp(rng.uniform(-1.5, 1.5)))
        alpha = float(rng.uniform(0.01, 0.1))
        expected = power_under_cph(n_exp, n_con, p_exp, p_con, hazard_ratio, alpha=alpha)
        got = freedman_power(n_exp * p_exp + n_con * p_con, hazard_ratio,
                             ratio=n_exp / n_con, alpha=alpha)
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-300)


def test_freedman_events_match_lifelines_sample_size():
    rng = np.random.default_rng(10)
    for _ in range(200):
        power = float(rng.uniform(0.5, 0.95))
        ratio = float(rng.uniform(0.3, 3.0))
        event_probability = float(rng.uniform(0.2, 1.0))
        hazard_ratio = float(np.exp(rng.uniform(-1.2, 1.2)))
        alpha = float(rng.uniform(0.01, 0.1))
        n_exp, n_con = sample_size_necessary_under_cph(
            power, ratio, event_probability, event_probability, hazard_ratio, alpha=alpha)
        events = freedman_events(hazard_ratio, power=power, ratio=ratio, alpha=alpha)
        patients = events / event_probability
        assert math.ceil(patients * ratio / (1 + ratio)) == n_exp
        assert math.ceil(patients / (1 + ratio)) == n_con


def test_null_hazard_ratio_broadcasting_and_symmetry():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert schoenfeld_power(100, 1.0) == pytest.approx(0.025, rel=1e-12)
        assert freedman_power(100, 1.0) == pytest.approx(0.025, rel=1e-12)
        assert schoenfeld_events(1.0) == np.inf and freedman_events(1.0) == np.inf
    grid = schoenfeld_power(np.array([[30.0], [60.0], [90.0]]), np.array([0.5, 0.7, 1.0, 1.4]))
    assert grid.shape == (3, 4)
    # Schoenfeld is symmetric in log HR; Freedman with ratio r at HR equals ratio 1/r at 1/HR
    assert schoenfeld_power(50, 0.6) == pytest.approx(schoenfeld_power(50, 1 / 0.6), rel=1e-12)
    assert freedman_power(50, 0.6, ratio=2.0) == pytest.approx(freedman_power(50, 1 / 0.6, ratio=0.5), rel=1e-12)
    # 1:1 Schoenfeld: d = 4 (z + z)² / log(HR)²
    assert schoenfeld_events(0.5) == pytest.approx(4 * (norm.ppf(0.975) + norm.ppf(0.8)) ** 2 / math.log(0.5) ** 2,
                                                   rel=1e-12)
    # NaN propagates (an empty summary cell), it is not an input error
    assert np.isnan(schoenfeld_power(np.nan, 0.7)) and np.isnan(freedman_power(40, 0.7, ratio=np.nan))


@pytest.mark.parametrize("call, message", [
    (lambda: schoenfeld_power(50, 0.0), "hazard_ratio"),
    (lambda: schoenfeld_power(-1, 0.7), "events"),
    (lambda: schoenfeld_power(50, 0.7, allocation=1.0), "allocation"),
    (lambda: freedman_power(50, 0.7, ratio=0.0), "ratio"),
    (lambda: freedman_events(0.7, alpha=0.0), "alpha"),
    (lambda: schoenfeld_events(0.7, power=1.0), "power"),
])
def test_out_of_range_inputs_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()
