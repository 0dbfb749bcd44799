"""Batched multi-covariate Cox regression against lifelines, statsmodels PHReg and R survival.

* Efron ties with case weights: lifelines ``CoxPHFitter(weights_col=...)`` (coefficients and
  model SEs, tight convergence), with tied times.
* Robust SE: lifelines ``robust=True`` without tied times; R ``coxph(..., weights =, robust =
  TRUE)`` golden values (``tests/data/estimators_r_golden.json``) with ties, Efron and Breslow.
* Breslow ties and strata: statsmodels ``PHReg(ties="breslow", strata=...)``.
"""

from __future__ import annotations

import json
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter
from statsmodels.duration.hazard_regression import PHReg

from analysis import status
from analysis.survival import fit_cox
from analysis.survival.cox_regression import fit_cox_regression

GOLDEN = pathlib.Path(__file__).parents[2] / "data" / "estimators_r_golden.json"
N_COHORTS = 100
CHECKED = [pytest.param(30, id="reduced"), pytest.param(N_COHORTS, id="full", marks=pytest.mark.slow)]


def adjusted_cohorts(rng, n_cohorts=N_COHORTS, n_max=90, ties=True, weighted=True):
    """Padded cohorts of 30-90 patients: treatment, three covariates (two normal with
    different scales, one binary), exponential times, censoring, strata 0-2."""
    shape = (n_cohorts, n_max)
    data = dict(time=np.full(shape, np.nan), event=rng.random(shape) < 0.5, treated=rng.random(shape) < 0.5,
                z=rng.normal(size=shape + (3,)), weights=np.ones(shape), mask=np.zeros(shape, bool),
                strata=rng.integers(0, 3, shape))
    for b in range(n_cohorts):
        n = int(rng.integers(30, n_max + 1))
        where = np.sort(rng.choice(n_max, n, replace=False))
        z = np.column_stack([rng.normal(size=n), rng.normal(50, 10, n), rng.random(n) < 0.4])
        arm = rng.random(n) < 1 / (1 + np.exp(-0.5 * z[:, 0]))
        arm[:3], arm[3:6] = True, False
        lin = rng.normal(0, 0.6) * arm + 0.5 * z[:, 0] - 0.03 * (z[:, 1] - 50) + 0.4 * z[:, 2]
        event_time = rng.exponential(8.0, n) * np.exp(-lin)
        censor_time = rng.uniform(0, rng.choice([10.0, 25.0, 1e6]), n)
        if ties:
            event_time, censor_time = np.ceil(event_time * 2) / 2, np.ceil(censor_time * 2) / 2
        data["time"][b, where] = np.minimum(event_time, censor_time)
        data["event"][b, where] = event_time <= censor_time
        data["treated"][b, where] = arm
        data["z"][b, where] = z
        if weighted:
            data["weights"][b, where] = rng.uniform(0.2, 5.0, n)
        data["mask"][b, where] = True
    return data


def one(data, b):
    keep = data["mask"][b]
    return {key: data[key][b][keep] for key in ("time", "event", "treated", "z", "weights", "strata")}


def lifelines_fit(c, *, weighted, robust=False):
    frame = pd.DataFrame({"t": c["time"], "e": c["event"].astype(int), "x": c["treated"].astype(float),
                          "z0": c["z"][:, 0], "z1": c["z"][:, 1], "z2": c["z"][:, 2]})
    args = {"robust": robust}
    if weighted:
        frame["w"] = c["weights"]
        args["weights_col"] = "w"
    fitter = CoxPHFitter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitter.fit(frame, "t", "e", fit_options={"precision": 1e-30, "r_precision": 1e-30}, **args)
    return fitter


@pytest.fixture(scope="module")
def tied():
    return adjusted_cohorts(np.random.default_rng(20240613))


@pytest.mark.parametrize("n_checked", CHECKED)
def test_efron_weighted_fit_matches_lifelines(tied, n_checked):
    d = tied
    result = fit_cox_regression(d["time"], d["event"], d["treated"], d["z"], mask=d["mask"], weights=d["weights"])
    ok = np.flatnonzero(result.status == status.OK)
    assert ok.size >= 0.95 * N_COHORTS
    for b in ok[:n_checked]:
        fitted = lifelines_fit(one(d, b), weighted=True)
        np.testing.assert_allclose(result.coef[b], fitted.params_.values, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(np.sqrt(np.diag(result.covariance[b])), fitted.standard_errors_.values, rtol=1e-8)
        assert result.treatment.se[b] == pytest.approx(fitted.standard_errors_["x"], rel=1e-8)
        assert result.treatment.p_value[b] == pytest.approx(fitted.summary.loc["x", "p"], rel=1e-6)


@pytest.mark.parametrize("n_checked", CHECKED)
def test_robust_covariance_matches_lifelines_without_ties(n_checked):
    d = adjusted_cohorts(np.random.default_rng(5), ties=False)
    clusters = np.broadcast_to(np.arange(d["time"].shape[1]), d["time"].shape)
    result = fit_cox_regression(d["time"], d["event"], d["treated"], d["z"], mask=d["mask"], weights=d["weights"],
                                cluster=clusters)
    for b in np.flatnonzero(result.status == status.OK)[:n_checked]:
        fitted = lifelines_fit(one(d, b), weighted=True, robust=True)
        np.testing.assert_allclose(result.coef[b], fitted.params_.values, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(np.sqrt(np.diag(result.robust_covariance[b])), fitted.standard_errors_.values,
                                   rtol=1e-8)
        assert result.treatment.robust_se[b] == pytest.approx(fitted.standard_errors_["x"], rel=1e-8)


@pytest.mark.parametrize("stratified", [False, True])
def test_breslow_fit_matches_statsmodels(tied, stratified):
    d = tied
    strata = d["strata"] if stratified else None
    result = fit_cox_regression(d["time"], d["event"], d["treated"], d["z"], mask=d["mask"], strata=strata,
                                ties="breslow")
    ok = np.flatnonzero(result.status == status.OK)
    assert ok.size >= 0.95 * N_COHORTS
    for b in ok[:40]:
        c = one(d, b)
        exog = np.column_stack([c["treated"].astype(float), c["z"]])
        model = PHReg(c["time"], exog, status=c["event"].astype(float), ties="breslow",
                      strata=c["strata"] if stratified else None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fitted = model.fit(start_params=result.coef[b], gtol=1e-12, maxiter=200)
        np.testing.assert_allclose(result.coef[b], fitted.params, rtol=1e-8, atol=1e-11)
        np.testing.assert_allclose(np.sqrt(np.diag(result.covariance[b])), fitted.bse, rtol=1e-8)
        # the gradient of statsmodels' own log-likelihood vanishes at our estimate
        scale = np.abs(np.diag(model.hessian(result.coef[b])))
        assert np.all(np.abs(model.score(result.coef[b])) <= 1e-8 * scale)


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_weighted_adjusted_fit_and_robust_se_match_r(ties):
    cases = json.loads(GOLDEN.read_text())["cases"]
    n_max = max(len(c["time"]) for c in cases)
    shape = (len(cases), n_max)
    time, event, treated = np.ones(shape), np.zeros(shape, bool), np.zeros(shape, bool)
    z, weights, mask = np.zeros(shape + (3,)), np.zeros(shape), np.zeros(shape, bool)
    for k, c in enumerate(cases):
        n = len(c["time"])
        time[k, :n], event[k, :n], treated[k, :n], weights[k, :n] = c["time"], c["event"], c["treated"], c["weight"]
        z[k, :n] = np.column_stack([c["z0"], c["z1"], c["z2"]])
        mask[k, :n] = True
    result = fit_cox_regression(time, event, treated, z, mask=mask, weights=weights, ties=ties,
                                cluster=np.broadcast_to(np.arange(n_max), shape))
    for k, c in enumerate(cases):
        expected = c["r"][f"adjusted_{ties}"]
        assert result.status[k] == status.OK
        # R stops on a relative log-likelihood change below eps = 1e-12 (coefficients ~1e-11 off).
        np.testing.assert_allclose(result.coef[k], expected["coef"], rtol=1e-8, atol=1e-10)
        assert result.treatment.se[k] == pytest.approx(expected["se"], rel=1e-8)
        assert result.treatment.robust_se[k] == pytest.approx(expected["robust_se"], rel=1e-8)


def test_without_adjusters_equals_the_one_covariate_fit(tied):
    d = tied
    for ties in ("efron", "breslow"):
        clusters = np.broadcast_to(np.arange(d["time"].shape[1]) // 2, d["time"].shape)
        many = fit_cox_regression(d["time"], d["event"], d["treated"], d["z"][:, :, :0], mask=d["mask"],
                                  weights=d["weights"], strata=d["strata"], cluster=clusters, ties=ties)
        single = fit_cox(d["time"], d["event"], d["treated"], mask=d["mask"], weights=d["weights"],
                         strata=d["strata"], cluster=clusters, ties=ties)
        ok = single.status == status.OK
        np.testing.assert_array_equal(many.status, single.status)
        np.testing.assert_allclose(many.treatment.log_hr[ok], single.log_hr[ok], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(many.treatment.se[ok], single.se[ok], rtol=1e-9)
        np.testing.assert_allclose(many.treatment.robust_se[ok], single.robust_se[ok], rtol=1e-8)


def test_aliased_covariates_leave_the_treatment_estimate_of_the_reduced_model(tied):
    """A constant column and a duplicated column (R: NA coefficients) do not change the
    treatment coefficient or its SE: pseudo-inverse steps reach the reduced model's maximum."""
    d = tied
    constant = np.ones(d["z"].shape[:2] + (1,)) * 3.0
    aliased = np.concatenate([d["z"], constant, d["z"][:, :, :1] * 2.0], axis=2)
    reduced = fit_cox_regression(d["time"], d["event"], d["treated"], d["z"], mask=d["mask"], weights=d["weights"])
    full = fit_cox_regression(d["time"], d["event"], d["treated"], aliased, mask=d["mask"], weights=d["weights"])
    ok = reduced.status == status.OK
    assert full.rank_deficient[ok].all()
    np.testing.assert_array_equal(full.status, reduced.status)
    np.testing.assert_allclose(full.treatment.log_hr[ok], reduced.treatment.log_hr[ok], rtol=1e-8, atol=1e-11)
    np.testing.assert_allclose(full.treatment.se[ok], reduced.treatment.se[ok], rtol=1e-7)


def test_degenerate_replicates_get_status_not_exceptions():
    time = np.array([[1.0, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6]])
    event = np.array([[1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0], [1, 0, 1, 0, 1, 0], [1, 1, 1, 1, 1, 1]], bool)
    treated = np.array([[1, 1, 1, 1, 1, 1], [1, 0, 1, 0, 1, 0], [1, 0, 1, 0, 1, 0], [1, 1, 1, 0, 0, 0]], bool)
    # row 2: all treated events, no control event; row 3: treated die first (monotone in the
    # treatment: a finite maximum does not exist)
    z = np.arange(24, dtype=float).reshape(4, 6, 1) % 5
    result = fit_cox_regression(time, event, treated, z)
    assert result.status.tolist() == [status.EMPTY_ARM, status.NO_EVENTS, status.NO_EVENTS, status.NOT_CONVERGED]
    assert np.all(np.isnan(result.coef)) and np.all(np.isnan(result.treatment.log_hr))
    with pytest.raises(ValueError, match="choose one of"):
        fit_cox_regression(time, event, treated, z, ties="exact")


def test_an_adjuster_running_to_infinity_leaves_the_limit_of_the_treatment_estimate(tied):
    """A binary adjuster whose carriers all have censored times: its coefficient runs to -inf,
    the carriers drop out of every risk set, so the treatment estimate tends to the fit
    without the carriers (and without that adjuster); R reports this limit with a warning."""
    d = tied
    rng = np.random.default_rng(17)
    carrier = (rng.random(d["time"].shape) < 0.15) & d["mask"]
    event = d["event"] & ~carrier
    adjusters = np.concatenate([d["z"][:, :, :2], carrier[:, :, None].astype(float)], axis=2)
    full = fit_cox_regression(d["time"], event, d["treated"], adjusters, mask=d["mask"])
    without = fit_cox_regression(d["time"], event, d["treated"], d["z"][:, :, :2], mask=d["mask"] & ~carrier)
    ok = (full.status == status.OK) & (without.status == status.OK) & carrier.any(axis=1)
    assert ok.mean() >= 0.9
    assert full.infinite_adjuster[ok].all()
    assert np.all(full.coef[ok, 3] < -10)
    np.testing.assert_allclose(full.treatment.log_hr[ok], without.treatment.log_hr[ok], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(full.treatment.se[ok], without.treatment.se[ok], rtol=1e-5)


@pytest.mark.parametrize("stratified", [False, True])
def test_risk_set_tie_group_and_earlier_sums_carry_only_their_own_terms(stratified):
    """The sums behind the likelihood equal exact sums (math.fsum) of their own rows to 1e-14
    relative, also where the terms span 30 orders of magnitude (large coefficients): a late
    risk set of risks ~1e-25 after early risks ~1 is not the difference of two running totals."""
    import math

    from analysis.survival.risk_set_sums import RiskSetSums
    from analysis.survival.risk_sets import tabulate_risk_sets

    rng = np.random.default_rng(5)
    n_rep, n = 6, 40
    time = rng.integers(1, 12, size=(n_rep, n)).astype(float)  # many ties
    event = rng.random((n_rep, n)) < 0.7
    strata = rng.integers(0, 3, size=(n_rep, n)) if stratified else None
    table = tabulate_risk_sets(time, event, np.zeros((n_rep, n), bool), strata=strata)
    values = 10.0 ** -rng.uniform(0, 30, size=table.time.shape)
    values[:, :3] = 1.0  # the earliest rows dominate every running total
    sums = RiskSetSums(table)
    got = {"risk_set": sums.risk_set(values), "own_group": sums.own_group(values),
           "earlier_groups": sums.earlier_groups(values)}
    for r in range(n_rep):
        for i in range(n):
            bounds = {"risk_set": (table.tie_first[r, i], table.stratum_last[r, i] + 1),
                      "own_group": (table.tie_first[r, i], table.tie_last[r, i] + 1),
                      "earlier_groups": (table.stratum_first[r, i], table.tie_first[r, i])}
            for name, (start, stop) in bounds.items():
                exact = math.fsum(values[r, start:stop])
                assert got[name][r, i] == pytest.approx(exact, rel=1e-14, abs=0.0), (name, r, i)
    vector = np.stack([values, -values], axis=2)  # (R, N, p) sums too
    np.testing.assert_array_equal(sums.risk_set(vector)[:, :, 1], -got["risk_set"])
    np.testing.assert_array_equal(sums.own_group(vector)[:, :, 0], got["own_group"])
