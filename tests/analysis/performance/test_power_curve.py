"""The power-curve GLM against statsmodels, its failure statuses, and the coverage of Fieller's
interval of the root on Bernoulli data from a known curve (independent and with common random
numbers)."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy.special import expit, ndtr, ndtri

from analysis.performance.power_curve import (
    PowerCurve,
    fit_power_curve,
    solve_power,
)

#: A known curve: probit(P(n)) = A + B sqrt(n) (Schoenfeld's form: A = -z_{0.975}).
A, B = -1.959963984540054, 0.2
TARGET = 0.8
TRUE_ROOT = ((ndtri(TARGET) - A) / B) ** 2          # 196.2 patients
DESIGN = np.array([120.0, 150.0, 175.0, 196.0, 220.0, 250.0, 290.0])


def correlated_rejections(values, replicates, rho, *, rng):
    """Bernoulli outcomes with P(reject at x) = Phi(A + B sqrt(x)) exactly, and correlation
    between the candidates of one replicate (common random numbers): reject iff
    sqrt(rho) Z_r + sqrt(1 - rho) W_xr <= A + B sqrt(x). Shape (candidate, replicate)."""
    shared = rng.standard_normal(replicates)
    noise = np.sqrt(rho) * shared + np.sqrt(1 - rho) * rng.standard_normal((len(values), replicates))
    return noise <= (A + B * np.sqrt(values))[:, None]


def flatten(values, rejected):
    n_candidates, n_replicates = rejected.shape
    return (np.repeat(values, n_replicates), rejected.ravel(),
            np.tile(np.arange(n_replicates), n_candidates))


@pytest.mark.parametrize("link", ["probit", "logit"])
@pytest.mark.parametrize("transform", ["sqrt", "log", "identity"])
def test_fit_equals_statsmodels_glm(link, transform):
    rng = np.random.default_rng(11)
    for _ in range(5):
        values = np.sort(rng.choice(np.arange(60, 400), size=6, replace=False)).astype(float)
        x, y, cluster = flatten(values, correlated_rejections(values, 150, 0.6, rng=rng))
        curve = fit_power_curve(x, y, cluster, transform=transform, link=link)
        u = {"sqrt": np.sqrt, "log": np.log, "identity": lambda v: v}[transform](x)
        family = sm.families.Binomial(
            sm.families.links.Probit() if link == "probit" else sm.families.links.Logit())
        model = sm.GLM(y.astype(float), sm.add_constant(u), family=family)
        plain = model.fit(tol=1e-14)
        clustered = model.fit(tol=1e-14, cov_type="cluster",
                              cov_kwds={"groups": cluster, "use_correction": False})
        groups = np.unique(cluster).size
        assert curve.status == "ok"
        np.testing.assert_allclose([curve.intercept, curve.slope], plain.params, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(curve.model_covariance, plain.cov_params(), rtol=1e-7)
        np.testing.assert_allclose(curve.covariance, clustered.cov_params() * groups / (groups - 1),
                                   rtol=1e-7)
        assert curve.n_clusters == groups and curve.n_observations == x.size


def test_one_observation_per_cluster_is_the_robust_variance():
    rng = np.random.default_rng(3)
    x, y, _ = flatten(DESIGN, correlated_rejections(DESIGN, 400, 0.0, rng=rng))
    curve = fit_power_curve(x, y)
    model = sm.GLM(y.astype(float), sm.add_constant(np.sqrt(x)),
                   family=sm.families.Binomial(sm.families.links.Probit()))
    robust = model.fit(tol=1e-14, cov_type="HC0").cov_params()
    np.testing.assert_allclose(curve.covariance, robust * x.size / (x.size - 1), rtol=1e-7)
    # Independent outcomes from the fitted family: robust and model-based agree closely.
    np.testing.assert_allclose(curve.covariance, curve.model_covariance, rtol=0.2)


@pytest.mark.parametrize("rates, status", [
    ([0.0, 0.0, 1.0, 1.0], "separated"),
    ([0.0, 0.5, 1.0, 1.0], "separated"),          # quasi-complete
    ([1.0, 1.0, 0.0, 0.0], "separated"),
    ([0.0, 0.0, 0.0, 0.0], "no_variation"),
    ([1.0, 1.0, 1.0, 1.0], "no_variation"),
])
def test_no_estimate_without_a_maximum_likelihood_estimate(rates, status):
    values = np.array([10.0, 20.0, 30.0, 40.0])
    rejected = np.array([[i < round(r * 4) for i in range(4)] for r in rates])
    x, y, cluster = flatten(values, rejected)
    curve = fit_power_curve(x, y, cluster)
    assert curve.status == status and not curve.ok
    root = solve_power(curve, TARGET)
    assert np.isnan(root.value) and not root.bounded and root.upper == np.inf


def test_one_value_is_too_few():
    assert fit_power_curve([50.0] * 10, [True, False] * 5).status == "too_few_values"


def test_decreasing_curve_has_no_root():
    values = np.array([10.0, 20.0, 30.0])
    rejected = np.array([[True] * 7 + [False] * 3, [True] * 5 + [False] * 5, [True] * 3 + [False] * 7])
    curve = fit_power_curve(*flatten(values, rejected)[:2])
    assert curve.ok and curve.slope < 0
    assert np.isnan(solve_power(curve, TARGET).value)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="transform"):
        fit_power_curve([1.0, 2.0], [True, False], transform="cube")
    with pytest.raises(ValueError, match="domain of log"):
        fit_power_curve([0.0, 2.0], [True, False], transform="log")
    with pytest.raises(ValueError, match="shape"):
        fit_power_curve([1.0, 2.0], [True])


def test_fieller_limits_are_where_the_band_meets_the_target():
    rng = np.random.default_rng(5)
    x, y, cluster = flatten(DESIGN, correlated_rejections(DESIGN, 300, 0.5, rng=rng))
    curve = fit_power_curve(x, y, cluster)
    root = solve_power(curve, TARGET)
    assert root.bounded and root.lower < root.value < root.upper
    assert curve.power(root.value) == pytest.approx(TARGET, abs=1e-12)
    assert curve.power_band(root.lower)[1] == pytest.approx(TARGET, abs=1e-9)
    assert curve.power_band(root.upper)[0] == pytest.approx(TARGET, abs=1e-9)


def test_fieller_is_unbounded_when_the_slope_is_not_significant():
    curve = PowerCurve(intercept=0.0, slope=0.01, covariance=np.array([[0.01, 0.0], [0.0, 0.01]]),
                       model_covariance=np.eye(2), transform="identity", link="probit",
                       n_observations=10, n_clusters=10, n_values=2, iterations=1, status="ok")
    root = solve_power(curve, TARGET)
    assert not root.bounded and root.half_width == np.inf
    assert root.value == pytest.approx(ndtri(TARGET) / 0.01)


def test_logit_curve_root():
    curve = PowerCurve(intercept=-2.0, slope=0.5, covariance=np.zeros((2, 2)),
                       model_covariance=np.zeros((2, 2)), transform="log", link="logit",
                       n_observations=10, n_clusters=10, n_values=2, iterations=1, status="ok")
    root = solve_power(curve, 0.9)
    assert expit(-2.0 + 0.5 * np.log(root.value)) == pytest.approx(0.9)
    assert root.lower == pytest.approx(root.value) and root.upper == pytest.approx(root.value)


def _coverage(n_fits, rho, *, covariance, seed):
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(n_fits):
        x, y, cluster = flatten(DESIGN, correlated_rejections(DESIGN, 200, rho, rng=rng))
        curve = fit_power_curve(x, y, cluster)
        if covariance == "model":
            curve = PowerCurve(**{**curve.__dict__, "covariance": curve.model_covariance})
        root = solve_power(curve, TARGET)
        hits += root.lower <= TRUE_ROOT <= root.upper
    return hits / n_fits


@pytest.mark.parametrize("n_fits", [pytest.param(400, id="reduced"),
                                    pytest.param(4000, id="full", marks=pytest.mark.slow)])
@pytest.mark.parametrize("rho", [0.0, 0.9])
def test_fieller_interval_covers_the_true_root(n_fits, rho):
    """95% coverage of the true root within 3 Monte Carlo SEs, independent or strongly
    correlated (common random numbers) outcomes: 7 candidates x 200 replicates."""
    coverage = _coverage(n_fits, rho, covariance="robust", seed=int(100 * rho) + n_fits)
    assert abs(coverage - 0.95) <= 3 * np.sqrt(0.95 * 0.05 / n_fits)


def test_model_based_interval_under_covers_with_common_random_numbers():
    """Why the sandwich: with correlated candidates the independence-model interval is far too
    narrow (it counts 7 x 200 outcomes as independent)."""
    coverage = _coverage(400, 0.9, covariance="model", seed=7)
    assert coverage < 0.95 - 3 * np.sqrt(0.95 * 0.05 / 400)
