"""η² decomposition: statsmodels' type-II ANOVA as the reference, the noise share checked by
Monte Carlo, and the toy model whose inert factors must stay within noise of 0."""

import itertools

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from statsmodels.stats.anova import anova_lm

from analysis.performance.sensitivity import eta_squared, logit_with_mcse
from tests.analysis.performance.sensitivity.toy_model import simulated_power, true_power

LEVELS = {"a": [0.0, 0.5, 1.0], "b": [0.0, 0.5, 1.0], "c": [0.0, 1.0]}


def factorial():
    rows = np.array(list(itertools.product(*LEVELS.values())))
    return rows, {name: rows[:, i] for i, name in enumerate(LEVELS)}


@pytest.mark.parametrize("seed", range(5))
def test_sums_of_squares_equal_statsmodels_type_ii(seed):
    rng = np.random.default_rng(seed)
    rows, factors = factorial()
    y = rng.normal(size=len(rows)) + 2 * rows[:, 0] - rows[:, 1] * rows[:, 2]
    result = eta_squared(y, factors, order=2)
    frame = pd.DataFrame({"y": y, **{k: v.astype(str) for k, v in factors.items()}})
    fit = smf.ols("y ~ (C(a) + C(b) + C(c))**2", data=frame).fit()
    table = anova_lm(fit, typ=2)
    reference = dict(zip(table.index, table["sum_sq"]))
    names = {"a": "C(a)", "b": "C(b)", "c": "C(c)", "a:b": "C(a):C(b)", "a:c": "C(a):C(c)",
             "b:c": "C(b):C(c)", "Residuals": "Residual"}
    for term, ss, df in zip(result.terms, result.sum_of_squares, result.df):
        assert ss == pytest.approx(reference[names[term]], rel=1e-9, abs=1e-12)
    assert dict(zip(result.terms, result.df))["a:b"] == 4
    assert result.sum_of_squares.sum() == pytest.approx(result.total_sum_of_squares, rel=1e-12)
    assert result.eta_squared.sum() == pytest.approx(1.0)


def test_unbalanced_design_still_matches_statsmodels():
    rng = np.random.default_rng(3)
    rows, factors = factorial()
    keep = np.ones(len(rows), bool)
    keep[[0, 4, 7]] = False  # a subset filter removed three grid points
    y = rng.normal(size=len(rows)) + rows[:, 0]
    result = eta_squared(y[keep], {k: v[keep] for k, v in factors.items()}, order=1)
    frame = pd.DataFrame({"y": y[keep], **{k: v[keep].astype(str) for k, v in factors.items()}})
    table = anova_lm(smf.ols("y ~ C(a) + C(b) + C(c)", data=frame).fit(), typ=2)
    assert result.sum_of_squares[:3] == pytest.approx(table["sum_sq"].values[:3], rel=1e-9)


def check_expected_noise_sum_of_squares(draws):
    # Pure noise with unequal MCSEs: the mean SS of each term over many draws equals the
    # reported noise SS (Box 1954: E[e' P e] = tr(P Sigma)).
    rng = np.random.default_rng(11)
    rows, factors = factorial()
    mcse = rng.uniform(0.5, 2.0, size=len(rows))
    ss = np.array([eta_squared(rng.normal(size=len(rows)) * mcse, factors, mcse=mcse).sum_of_squares
                   for _ in range(draws)])
    expected = eta_squared(np.zeros(len(rows)) + rows[:, 0], factors, mcse=mcse).noise_sum_of_squares
    mean, se = ss.mean(axis=0), ss.std(axis=0, ddof=1) / np.sqrt(draws)
    assert np.all(np.abs(mean - expected) < 4 * se)


def check_noise_p_value_is_uniform_under_the_null(draws):
    rng = np.random.default_rng(5)
    rows, factors = factorial()
    mcse = np.full(len(rows), 0.3)
    p = np.array([eta_squared(rng.normal(size=len(rows)) * mcse, factors, mcse=mcse).noise_p_value[0]
                  for _ in range(draws)])
    rate = np.mean(p < 0.05)
    assert abs(rate - 0.05) < 4 * np.sqrt(0.05 * 0.95 / draws)


def test_noise_sum_of_squares_and_p_value_reduced():
    check_expected_noise_sum_of_squares(300)
    check_noise_p_value_is_uniform_under_the_null(300)


@pytest.mark.slow
def test_noise_sum_of_squares_and_p_value_full():
    check_expected_noise_sum_of_squares(5000)
    check_noise_p_value_is_uniform_under_the_null(5000)


def test_toy_power_inert_factors_are_within_noise_of_zero():
    rng = np.random.default_rng(2021)
    rows, factors = factorial()
    estimate, _ = simulated_power(rows, 1000, rng=rng)
    n_used = np.full(len(rows), 1000)
    result = eta_squared(estimate, factors, logit=True, n_used=n_used, order=2)
    eta = dict(zip(result.terms, result.eta_squared))
    p_noise = dict(zip(result.terms, result.noise_p_value))
    share = dict(zip(result.terms, result.noise_share))
    assert eta["a"] > 0.99
    assert p_noise["a"] < 1e-12 and share["a"] < 0.01
    for inert in ("b", "c", "b:c"):
        assert p_noise[inert] > 0.001, inert  # indistinguishable from Monte Carlo noise
        assert eta[inert] < 0.003
    # On the logit scale the true power is exactly linear in a: noise-free data give eta(a) = 1.
    exact = eta_squared(true_power(rows), factors, logit=True, n_used=np.full(len(rows), 10**9))
    assert dict(zip(exact.terms, exact.eta_squared))["a"] == pytest.approx(1.0, abs=1e-9)


def test_logit_keeps_zero_and_one_finite():
    value, se = logit_with_mcse([0.0, 0.5, 1.0], [100, 100, 100])
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(se))
    assert value[1] == 0.0 and se[1] == pytest.approx(1 / np.sqrt(100 * 0.25))
    assert value[0] == pytest.approx(-value[2])


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="n_used"):
        eta_squared([0.1, 0.2], {"a": [0, 1]}, logit=True)
    with pytest.raises(ValueError, match="3 values for 2"):
        eta_squared([0.1, 0.2], {"a": [0, 1, 2]})


def test_a_constant_measure_has_no_decomposition():
    rows, factors = factorial()
    result = eta_squared(np.full(len(rows), 0.3) + 1e-17 * rows[:, 0], factors, mcse=np.full(len(rows), 0.01))
    assert result.total_sum_of_squares == 0.0
    assert np.all(np.isnan(result.eta_squared)) and np.all(result.sum_of_squares == 0.0)
