"""Spline knots and basis, quantile strata and the fits built on them, against R (Hmisc
``rcspline.eval``, ``cut``/``quantile``, ``coxph``, ``survdiff``; golden values in
``tests/data/estimators_r_golden.json``) and numpy."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from analysis import status
from analysis.propensity.ps_terms import quantile_strata, restricted_cubic_spline, spline_knots
from analysis.survival import fit_cox, logrank_test
from analysis.survival.cox_regression import fit_cox_regression

GOLDEN = pathlib.Path(__file__).parents[2] / "data" / "estimators_r_golden.json"


@pytest.fixture(scope="module")
def golden():
    cases = json.loads(GOLDEN.read_text())["cases"]
    n_max = max(len(c["time"]) for c in cases)
    shape = (len(cases), n_max)
    batch = dict(time=np.ones(shape), event=np.zeros(shape, bool), treated=np.zeros(shape, bool),
                 z0=np.full(shape, np.nan), mask=np.zeros(shape, bool))
    for k, c in enumerate(cases):
        n = len(c["time"])
        for key in ("time", "event", "treated", "z0"):
            batch[key][k, :n] = c[key]
        batch["mask"][k, :n] = True
    batch["r"] = [c["r"] for c in cases]
    return batch


@pytest.mark.parametrize("n_knots", [3, 4, 5])
def test_knots_equal_hmisc_rcspline_eval(golden, n_knots):
    g = golden
    knots = spline_knots(g["z0"], g["mask"], n_knots)
    expected = np.array([r["knots"][n_knots - 3] for r in g["r"]])
    np.testing.assert_allclose(knots, expected, rtol=1e-13, atol=1e-14)  # cohorts of 15-80: the n < 100 rule


@pytest.mark.parametrize("n_knots", [3, 4, 5, 6, 7])
def test_knots_of_large_samples_are_the_tabulated_quantiles(n_knots):
    rng = np.random.default_rng(n_knots)
    x = rng.normal(size=(20, 150))
    knots = spline_knots(x, np.ones(x.shape), n_knots)
    outer = {3: 0.1, 4: 0.05, 5: 0.05, 6: 0.05, 7: 0.025}[n_knots]
    expected = np.quantile(x, np.linspace(outer, 1 - outer, n_knots), axis=1).T
    np.testing.assert_allclose(knots, expected, rtol=1e-14)
    with pytest.raises(ValueError, match="n_knots"):
        spline_knots(x, np.ones(x.shape), 8)


def test_basis_is_linear_beyond_the_outer_knots_and_equals_the_truncated_power_formula():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(5, 200)) * 2
    knots = spline_knots(x, np.ones(x.shape), 5)
    basis = restricted_cubic_spline(x, knots)
    for b in range(5):
        t = knots[b]
        k = len(t)
        for j in range(k - 2):
            plus = lambda u: np.maximum(x[b] - u, 0) ** 3  # noqa: E731
            expected = (plus(t[j]) - plus(t[k - 2]) * (t[k - 1] - t[j]) / (t[k - 1] - t[k - 2])
                        + plus(t[k - 1]) * (t[k - 2] - t[j]) / (t[k - 1] - t[k - 2])) / (t[k - 1] - t[0]) ** 2
            np.testing.assert_allclose(basis[b, :, j + 1], expected, rtol=1e-12, atol=1e-12)
        beyond = x[b] > t[-1] + 0.1
        if beyond.sum() >= 3:  # second differences vanish: linear beyond the last knot
            xs = np.sort(x[b][beyond])
            ys = restricted_cubic_spline(xs[None], knots[b:b + 1])[0, :, 1:]
            slopes = np.diff(ys, axis=0) / np.diff(xs)[:, None]
            np.testing.assert_allclose(slopes, np.broadcast_to(slopes[:1], slopes.shape), rtol=1e-7, atol=1e-9)


def test_spline_adjusted_cox_equals_r(golden):
    g = golden
    knots = spline_knots(g["z0"], g["mask"], 4)
    basis = np.nan_to_num(restricted_cubic_spline(g["z0"], knots))
    result = fit_cox_regression(g["time"], g["event"], g["treated"], basis, mask=g["mask"])
    expected = np.array([np.nan if r["spline_coef"] is None else r["spline_coef"] for r in g["r"]])
    r_loglik = np.array([np.nan if r["spline_loglik"] is None else r["spline_loglik"] for r in g["r"]])
    ok = result.status == status.OK
    assert ok.sum() >= 0.9 * len(expected)
    # Every fit is R's, also the near-collinear bases whose coefficients reach ~150 on the
    # standardised scale (their late risk sets are sums of risks ~1e-20 of the early ones'):
    # risk sets accumulated backwards, not as differences of running totals.
    np.testing.assert_allclose(result.treatment.log_hr[ok], expected[ok], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(result.loglik[ok], r_loglik[ok], rtol=1e-10)


def test_quantile_strata_equal_r_cut_and_the_stratified_fits_equal_r(golden):
    g = golden
    strata = quantile_strata(g["z0"], g["mask"], 5)
    for k, r in enumerate(g["r"]):
        np.testing.assert_array_equal(strata[k, g["mask"][k]], r["stratum"])
    assert np.all(strata[~g["mask"]] == -1)
    cox = fit_cox(g["time"], g["event"], g["treated"], mask=g["mask"], strata=strata, ties="efron")
    logrank = logrank_test(g["time"], g["event"], g["treated"], mask=g["mask"], strata=strata)
    for k, r in enumerate(g["r"]):
        if r["stratified"] is None or cox.status[k] != status.OK:
            continue
        assert cox.log_hr[k] == pytest.approx(r["stratified"]["coef"], rel=1e-8, abs=1e-10)
        assert cox.se[k] == pytest.approx(r["stratified"]["se"], rel=1e-8)
        assert logrank.statistic[k] == pytest.approx(r["stratified_logrank"], rel=1e-10)


def test_strata_with_counts_are_those_of_the_expanded_sample():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(50, 60))
    counts = rng.integers(0, 3, x.shape)
    strata = quantile_strata(x, counts, 5)
    for b in range(50):
        expanded = np.repeat(x[b], counts[b])
        cuts = np.quantile(expanded, [0.2, 0.4, 0.6, 0.8])
        expected = (x[b][:, None] > cuts).sum(axis=1)
        np.testing.assert_array_equal(strata[b], np.where(counts[b] > 0, expected, -1))
