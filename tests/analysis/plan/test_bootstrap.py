"""The batched bootstrap against per-replicate loops with the same seeds.

The loops redraw the same uniforms from the same seed, build every resample explicitly (rows
repeated as often as drawn) and analyse it with independent code: statsmodels ``PHReg``
(Breslow ties, for which repeated rows and frequency weights are the same model) and
statsmodels ``Logit`` for the re-estimated propensity score."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import optimize
from statsmodels.duration.hazard_regression import PHReg

from analysis import status
from analysis.plan.analyse import analyse_cohorts
from analysis.plan.bootstrap import bootstrap_standard_errors, draw_counts
from analysis.plan.options import make_plan
from analysis.propensity.design import design_matrix
from tests.analysis.plan.synthetic_cohorts import synthetic_batch

ENDPOINTS = ("pfs", "os")


def phreg_log_hr(time, event, treated):
    """Breslow Cox log HR of one data set: the root of statsmodels PHReg's score."""
    model = PHReg(time, treated.astype(float)[:, None], status=event.astype(float), ties="breslow")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return optimize.brentq(lambda b: model.score(np.array([b]))[0], -15, 15, xtol=1e-14)


def uniforms(seed, n_rep, draws, width):
    return np.random.default_rng(seed).random((n_rep, draws, width))


def loop_draws(u_row, n):
    """Unit indices drawn in one replicate's draws (the first n uniforms of each)."""
    return np.floor(u_row[:, :n] * n).astype(int)


def test_counts_are_multinomial_and_reproduced_by_a_loop():
    n_units = np.array([5, 1, 0, 40, 17])
    counts = draw_counts(n_units, 300, 40, rng=np.random.default_rng(8))
    u = uniforms(8, 5, 300, 40)
    for r, n in enumerate(n_units):
        assert np.all(counts[r, :, n:] == 0)
        assert np.all(counts[r].sum(axis=1) == n)
        for d in range(300):
            np.testing.assert_array_equal(counts[r, d, :n], np.bincount(loop_draws(u[r, d:d + 1], n)[0], minlength=n))
    big = draw_counts(np.array([40]), 20000, 40, rng=np.random.default_rng(1))[0]
    assert abs(big.mean() - 1.0) < 0.01 and abs(big.var() - (1 - 1 / 40)) < 0.03  # multinomial(40, 1/40)


def test_standard_errors_do_not_depend_on_the_chunk_size():
    rng_values = np.random.default_rng(5).normal(size=(7, 30))

    def estimate(rows, counts):
        weights = counts[:, :30]
        return np.stack([(weights * rng_values[rows]).sum(1) / weights.sum(1), weights[:, 0]], axis=1)

    results = [bootstrap_standard_errors(estimate, np.full(7, 30), n_estimates=2, draws=50,
                                         rng=np.random.default_rng(2), chunk_rows=chunk) for chunk in (3, 49, 10000)]
    for other in results[1:]:
        np.testing.assert_array_equal(other.se, results[0].se)
    assert np.all(results[0].n_used == 50)


@pytest.fixture(scope="module")
def batch():
    return synthetic_batch(6, rng=np.random.default_rng(20240615), log_hr=-0.3, confounding=0.5)


def test_patients_bootstrap_equals_a_loop_over_replicates(batch):
    plan = make_plan("paper", {"cox_se": "bootstrap", "bootstrap_draws": 15})
    result = analyse_cohorts(batch, plan, rng=np.random.default_rng(31))
    # the paper's matching draws from the generator first; replay it to reach the same state
    replay = np.random.default_rng(31)
    analyse_cohorts(batch, make_plan("paper"), rng=replay)
    u = replay.random((batch.n_replicates, 15, batch.n_patients))
    for r in range(batch.n_replicates):
        for e, name in enumerate(ENDPOINTS):
            time = (batch.pfs_months if name == "pfs" else batch.os_months)[r]
            event = (batch.pfs_event if name == "pfs" else batch.os_event)[r]
            estimates = []
            for d in range(15):
                rows = loop_draws(u[r, d:d + 1], batch.n_patients)[0]
                estimates.append(phreg_log_hr(time[rows], event[rows], batch.treated[r][rows]))
            assert result.se[r, 0, e] == pytest.approx(np.std(estimates, ddof=1), rel=1e-8)
    assert np.all(result.bootstrap_used[:, 0] == 15)


@pytest.mark.parametrize("replace", [False, True])
def test_pairs_bootstrap_equals_a_loop_over_replicates(batch, replace):
    plan = make_plan("recommended", {"cox_se": "bootstrap", "bootstrap_draws": 20, "ties": "breslow",
                                     "replace": replace, "caliper": 0.5})
    result = analyse_cohorts(batch, plan, rng=np.random.default_rng(4))
    replay = np.random.default_rng(4)
    replay.random((batch.n_replicates, 20, batch.n_patients))  # the full cohort's draws come first
    n_sets = result.matching.n_pairs
    u = replay.random((batch.n_replicates, 20, int(n_sets.max())))
    for r in range(batch.n_replicates):
        control_of = result.matching.control_of[r]
        sets = [[t] + [int(c) for c in control_of[t] if c >= 0] for t in range(batch.n_patients)
                if (control_of[t] >= 0).any()]  # data order of the treated = set numbering
        assert len(sets) == n_sets[r]
        for e, name in enumerate(ENDPOINTS):
            time = (batch.pfs_months if name == "pfs" else batch.os_months)[r]
            event = (batch.pfs_event if name == "pfs" else batch.os_event)[r]
            estimates = []
            for d in range(20):
                rows = [patient for s in loop_draws(u[r, d:d + 1], n_sets[r])[0] for patient in sets[s]]
                estimates.append(phreg_log_hr(time[rows], event[rows], batch.treated[r][rows]))
            assert result.se[r, 1, e] == pytest.approx(np.std(estimates, ddof=1), rel=1e-8)


def test_iptw_bootstrap_reestimates_the_ps_in_every_resample(batch):
    """Patients bootstrap of IPTW-ATE (Breslow, model SE otherwise): each resample's PS from
    statsmodels Logit on the repeated rows, ATE weights by hand, the weighted Cox log HR from
    the score equation solved here (weighted Breslow score)."""
    plan = make_plan("paper", {"estimator": "iptw", "cox_se": "bootstrap", "bootstrap_draws": 15})
    result = analyse_cohorts(batch, plan, rng=np.random.default_rng(6))
    u = np.random.default_rng(6).random((batch.n_replicates, 15, batch.n_patients))  # adjusted slot first
    design = design_matrix(batch.covariates, batch.covariate_kinds).values
    for r in range(batch.n_replicates):
        for e, name in enumerate(ENDPOINTS):
            time = (batch.pfs_months if name == "pfs" else batch.os_months)[r]
            event = (batch.pfs_event if name == "pfs" else batch.os_event)[r]
            estimates = []
            for d in range(15):
                rows = loop_draws(u[r, d:d + 1], batch.n_patients)[0]
                x, t = design[r][rows], batch.treated[r][rows]
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ps = sm.Logit(t.astype(float), sm.add_constant(x, has_constant="add")).fit(
                        method="newton", tol=1e-14, maxiter=200, disp=0).predict()
                w = np.where(t, 1 / ps, 1 / (1 - ps))
                estimates.append(weighted_breslow_log_hr(time[rows], event[rows], t, w))
            assert result.se[r, 1, e] == pytest.approx(np.std(estimates, ddof=1), rel=1e-6)
    assert np.all(result.status[:, 1] == status.OK)


def weighted_breslow_log_hr(time, event, treated, weights):
    """Root of the weighted Breslow score sum_events w (x - S1/S0), written out."""
    x = treated.astype(float)

    def score(beta):
        total = 0.0
        for i in np.flatnonzero(event):
            at_risk = time >= time[i]
            risk = weights[at_risk] * np.exp(beta * x[at_risk])
            total += weights[i] * (x[i] - (risk * x[at_risk]).sum() / risk.sum())
        return total

    return optimize.brentq(score, -15, 15, xtol=1e-14)
