"""Batched survival statistics against independent implementations.

References: lifelines (Kaplan-Meier, log-log median CI, log-rank, Efron Cox), statsmodels
PHReg (Breslow Cox, clustered SE, strata), R survival 3.5.3 golden values
(``tests/data/survival_r_golden.json``, Efron robust SE, stratified and weighted Cox,
survdiff, quantile.survfit), straightforward per-replicate loops written here, and small
hand-computed cases.
"""

from __future__ import annotations

import json
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.statistics import logrank_test as lifelines_logrank
from lifelines.utils import median_survival_times
from scipy import optimize, stats
from statsmodels.duration.hazard_regression import PHReg

from analysis import status
from analysis.survival.cox import cox_from_table
from analysis.survival.cox_terms import evaluate, partial_likelihood_terms
from analysis.survival.kaplan_meier import SURVIVAL_TOLERANCE, kaplan_meier_from_table
from analysis.survival.logrank import logrank_from_table
from analysis.survival.risk_sets import tabulate_risk_sets
from analysis.survival import fit_cox, kaplan_meier, km_median, logrank_test

GOLDEN = pathlib.Path(__file__).parents[2] / "data" / "survival_r_golden.json"
N_COHORTS = 200
#: Cohorts checked one by one against lifelines/statsmodels: a reduced set by default, all
#: 200 under ``-m slow`` (the batched engine always runs on all 200).
CHECKED = [pytest.param(50, id="reduced"), pytest.param(N_COHORTS, id="full", marks=pytest.mark.slow)]
Z95 = stats.norm.ppf(0.975)


# --------------------------------------------------------------------------- random cohorts


def random_cohorts(rng: np.random.Generator, n_cohorts: int, n_max: int = 80) -> dict:
    """Padded batch of cohorts of varying size: arms of 3-40, censoring 0-90 %, ties.

    Patients outside a cohort hold garbage (NaN times, random events) that must be ignored.
    ``cluster`` groups patients in clusters of 1-3 (some -1 = own cluster).
    """
    shape = (n_cohorts, n_max)
    time = np.full(shape, np.nan)
    event = rng.random(shape) < 0.5
    treated = rng.random(shape) < 0.5
    mask = np.zeros(shape, bool)
    cluster = rng.integers(0, 30, shape)
    for b in range(n_cohorts):
        n_treated, n_control = rng.integers(3, 41, size=2)
        n = n_treated + n_control
        where = np.sort(rng.choice(n_max, n, replace=False))
        arm = np.r_[np.ones(n_treated, bool), np.zeros(n_control, bool)]
        rng.shuffle(arm)
        event_time = rng.exponential(8.0, n) * np.exp(-rng.normal(0, 0.7) * arm)
        censor_time = rng.uniform(0, rng.choice([4.0, 8.0, 15.0, 40.0, 1e6]), n)
        if rng.random() < 0.7:
            event_time = np.round(event_time * 2) / 2 + 0.5
            censor_time = np.round(censor_time * 2) / 2 + 0.5
        time[b, where] = np.minimum(event_time, censor_time)
        event[b, where] = event_time <= censor_time
        treated[b, where] = arm
        mask[b, where] = True
        cluster[b, where] = np.repeat(np.arange(n), rng.integers(1, 4, n))[:n]
        cluster[b, where[rng.random(n) < 0.1]] = -1
    return dict(time=time, event=event, treated=treated, mask=mask, cluster=cluster)


@pytest.fixture(scope="module")
def cohorts():
    return random_cohorts(np.random.default_rng(20240611), N_COHORTS)


def one_cohort(cohorts, b):
    keep = cohorts["mask"][b]
    return {key: cohorts[key][b][keep] for key in ("time", "event", "treated", "cluster")}


def lifelines_cox(time, event, treated, **fit_args):
    frame = pd.DataFrame({"t": time, "e": event.astype(int), "x": treated.astype(float)})
    fitter = CoxPHFitter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitter.fit(frame, "t", "e", fit_options={"precision": 1e-30, "r_precision": 1e-30}, **fit_args)
    return fitter


# --------------------------------------------------------------------------- Cox


@pytest.mark.parametrize("n_checked", CHECKED)
def test_cox_efron_matches_lifelines(cohorts, n_checked):
    result = fit_cox(cohorts["time"], cohorts["event"], cohorts["treated"], mask=cohorts["mask"])
    ok = result.status == status.OK
    assert ok.sum() >= 0.9 * N_COHORTS
    for b in np.flatnonzero(ok)[:n_checked]:
        c = one_cohort(cohorts, b)
        fitted = lifelines_cox(c["time"], c["event"], c["treated"])
        assert result.log_hr[b] == pytest.approx(fitted.params_["x"], rel=1e-8, abs=1e-12)
        assert result.se[b] == pytest.approx(fitted.standard_errors_["x"], rel=1e-8)
        assert result.p_value[b] == pytest.approx(fitted.summary.loc["x", "p"], rel=1e-7)
        assert result.p_value_model[b] == result.p_value[b]
    assert np.all(np.isnan(result.robust_se))


class StatsmodelsCox:
    """statsmodels PHReg started at the root of its own score (found by bisection), because
    its plain Newton iterations from 0 diverge on some small cohorts."""

    def __init__(self, time, event, treated, *, ties, **model_args):
        self.model = PHReg(time, treated.astype(float)[:, None], status=event.astype(float), ties=ties, **model_args)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.root = optimize.brentq(lambda beta: self.model.score(np.array([beta]))[0], -15, 15, xtol=1e-15)

    def fit(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self.model.fit(start_params=np.array([self.root]), tol=1e-13)

    def robust_se(self, groups):
        """statsmodels' clustered sandwich (``robust_covariance``) from its own score residuals,
        which it leaves NaN for patients censored before the first event (they are 0)."""
        fitted = self.fit()
        residuals = np.nan_to_num(self.model.score_residuals(fitted.params)[:, 0])
        cluster_sums = pd.Series(residuals).groupby(groups).sum().to_numpy()
        return float(np.sqrt(fitted.cov_params()[0, 0] ** 2 * np.sum(cluster_sums**2)))


@pytest.mark.parametrize("n_checked", CHECKED)
def test_cox_breslow_and_clustered_se_match_statsmodels(cohorts, n_checked):
    result = fit_cox(
        cohorts["time"], cohorts["event"], cohorts["treated"], mask=cohorts["mask"],
        ties="breslow", cluster=cohorts["cluster"],
    )
    ok = result.status == status.OK
    assert ok.sum() >= 0.9 * N_COHORTS
    for b in np.flatnonzero(ok)[:n_checked]:
        c = one_cohort(cohorts, b)
        groups = np.where(c["cluster"] < 0, 1000 + np.arange(c["cluster"].size), c["cluster"])
        model = StatsmodelsCox(c["time"], c["event"], c["treated"], ties="breslow")
        naive = model.fit()
        robust_se = model.robust_se(groups)
        assert result.log_hr[b] == pytest.approx(naive.params[0], rel=1e-8, abs=1e-12)
        assert result.se[b] == pytest.approx(naive.bse[0], rel=1e-8)
        assert result.p_value_model[b] == pytest.approx(naive.pvalues[0], rel=1e-7)
        assert result.robust_se[b] == pytest.approx(robust_se, rel=1e-8)
        assert result.p_value_robust[b] == pytest.approx(2 * stats.norm.sf(abs(naive.params[0]) / robust_se), rel=1e-7)
        # With a cluster, z, p and the CI use the robust SE (as R coxph).
        assert result.p_value[b] == result.p_value_robust[b]
        assert result.ci_upper[b] - result.log_hr[b] == pytest.approx(Z95 * result.robust_se[b], rel=1e-12)


@pytest.mark.parametrize("n_checked", CHECKED)
def test_efron_robust_se_equals_breslow_form_without_ties(cohorts, n_checked):
    """statsmodels' score residuals are Breslow-form for every ties method: they agree with the
    Efron-consistent ones only when no event times are tied."""
    rng = np.random.default_rng(3)
    time = cohorts["time"] + rng.uniform(0, 1e-3, cohorts["time"].shape)  # break all ties
    result = fit_cox(time, cohorts["event"], cohorts["treated"], mask=cohorts["mask"], cluster=cohorts["cluster"])
    for b in np.flatnonzero(result.status == status.OK)[:n_checked]:
        c = one_cohort(cohorts, b)
        t = time[b][cohorts["mask"][b]]
        groups = np.where(c["cluster"] < 0, 1000 + np.arange(c["cluster"].size), c["cluster"])
        model = StatsmodelsCox(t, c["event"], c["treated"], ties="efron")
        assert result.log_hr[b] == pytest.approx(model.fit().params[0], rel=1e-8, abs=1e-12)
        assert result.robust_se[b] == pytest.approx(model.robust_se(groups), rel=1e-8)


@pytest.mark.parametrize("n_checked", CHECKED)
def test_stratified_cox_matches_statsmodels(cohorts, n_checked):
    strata = cohorts["cluster"]
    for ties in ("efron", "breslow"):
        result = fit_cox(
            cohorts["time"], cohorts["event"], cohorts["treated"], mask=cohorts["mask"], ties=ties, strata=strata
        )
        ok = result.status == status.OK
        assert ok.sum() >= 0.5 * N_COHORTS
        for b in np.flatnonzero(ok)[: n_checked // 2]:
            c = one_cohort(cohorts, b)
            ids = np.where(c["cluster"] < 0, 1000 + np.arange(c["cluster"].size), c["cluster"])
            fitted = StatsmodelsCox(c["time"], c["event"], c["treated"], ties=ties, strata=ids).fit()
            assert result.log_hr[b] == pytest.approx(fitted.params[0], rel=1e-7, abs=1e-10)
            assert result.se[b] == pytest.approx(fitted.bse[0], rel=1e-7)


@pytest.fixture(scope="module")
def golden():
    data = json.loads(GOLDEN.read_text())
    cases = data["cases"]
    n_max = max(len(case["time"]) for case in cases)
    shape = (len(cases), n_max)
    batch = dict(
        time=np.full(shape, np.nan), event=np.zeros(shape, bool), treated=np.zeros(shape, bool),
        pair=np.full(shape, -1), weight=np.zeros(shape), mask=np.zeros(shape, bool),
    )
    for b, case in enumerate(cases):
        n = len(case["time"])
        for key in ("time", "event", "treated", "pair", "weight"):
            batch[key][b, :n] = case[key]
        batch["mask"][b, :n] = True
    r = {name: np.array([np.nan if case["r"][name] is None else case["r"][name] for case in cases])
         for name in cases[0]["r"]}
    return batch, r


@pytest.mark.parametrize(
    "model, options",
    [
        ("efron", dict(ties="efron")),
        ("breslow", dict(ties="breslow")),
        ("strata_efron", dict(ties="efron", strata="pair")),
        ("weighted_efron", dict(ties="efron", weights="weight")),
    ],
)
def test_cox_matches_r_survival_golden(golden, model, options):
    batch, r = golden
    options = {key: (batch[value] if key in ("strata", "weights") else value) for key, value in options.items()}
    result = fit_cox(batch["time"], batch["event"], batch["treated"], mask=batch["mask"], cluster=batch["pair"],
                     **options)
    ok = result.status == status.OK
    assert ok.sum() >= 0.7 * ok.size
    # Where we report no finite MLE, R's estimate runs off (monotone likelihood) or R reports
    # a zero information (no informative stratum: coef 0, se 0).
    r_coef, r_se = r[f"{model}_coef"][~ok], r[f"{model}_se"][~ok]
    assert np.all((np.abs(r_coef) > 5) | (r_se == 0))
    np.testing.assert_allclose(result.log_hr[ok], r[f"{model}_coef"][ok], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(result.se[ok], r[f"{model}_se"][ok], rtol=1e-8)
    np.testing.assert_allclose(result.robust_se[ok], r[f"{model}_robust_se"][ok], rtol=1e-8)


def test_cox_hand_computed_score_and_information():
    # t = 1, 1, 2, 3, 4; event = 1, 1, 1, 0, 1; treated = 1, 0, 1, 0, 0.
    # t=1: at risk n1 = 2, n0 = 3, one event per arm; t=2: n1 = 1, n0 = 2, treated event;
    # t=4: n1 = 0, n0 = 1, control event.  With r = e^beta:
    #   Breslow U = 2 - 2 * 2r/(3+2r) - r/(2+r)
    #   Efron   U = 2 - 2r/(3+2r) - 1.5r/(2.5+1.5r) - r/(2+r)   (2nd tied event: risk set
    #           minus half of each tied event: a = 3 - 0.5, b = 2 - 0.5)
    # and I = sum of p(1-p) over the same risk sets, p = b r / (a + b r).
    time = np.array([[1.0, 1, 2, 3, 4]])
    event = np.array([[1, 1, 1, 0, 1]], bool)
    treated = np.array([[1, 0, 1, 0, 0]], bool)
    risk_sets = {
        "breslow": [(3, 2), (3, 2), (2, 1)],
        "efron": [(3, 2), (2.5, 1.5), (2, 1)],
    }
    for ties, sets in risk_sets.items():
        def score(beta):
            r = np.exp(beta)
            return 2 - sum(b * r / (a + b * r) for a, b in sets)

        def information(beta):
            r = np.exp(beta)
            return sum(b * r / (a + b * r) * a / (a + b * r) for a, b in sets)

        terms = partial_likelihood_terms(tabulate_risk_sets(time, event, treated), ties)
        loglik0, score0, information0 = evaluate(terms, np.zeros(1))
        assert score0[0] == pytest.approx(score(0.0), rel=1e-14)
        assert information0[0] == pytest.approx(information(0.0), rel=1e-14)
        expected_loglik0 = -(np.log(5) + np.log(5) + np.log(3)) if ties == "breslow" else -(
            np.log(5) + np.log(4) + np.log(3))
        assert loglik0[0] == pytest.approx(expected_loglik0, rel=1e-14)
        assert {"breslow": 13 / 15, "efron": 107 / 120}[ties] == pytest.approx(score0[0], rel=1e-14)

        beta_hat = optimize.brentq(score, -10, 10, xtol=1e-15)
        result = fit_cox(time, event, treated, ties=ties)
        assert result.status[0] == status.OK
        assert result.log_hr[0] == pytest.approx(beta_hat, rel=1e-10)
        assert result.se[0] == pytest.approx(information(beta_hat) ** -0.5, rel=1e-10)


def test_cox_weights_are_frequency_weights_for_breslow(cohorts):
    rng = np.random.default_rng(11)
    weights = rng.integers(0, 4, cohorts["time"].shape).astype(float)
    weighted = fit_cox(cohorts["time"], cohorts["event"], cohorts["treated"], mask=cohorts["mask"],
                       weights=weights, ties="breslow")
    for b in range(40):
        repeat = np.where(cohorts["mask"][b], weights[b], 0).astype(int)
        expanded = fit_cox(*(np.repeat(cohorts[key][b], repeat)[None] for key in ("time", "event", "treated")),
                           ties="breslow")
        assert weighted.status[b] == expanded.status[0]
        np.testing.assert_allclose(weighted.log_hr[b], expanded.log_hr[0], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(weighted.se[b], expanded.se[0], rtol=1e-10)


def test_cox_degenerate_cases_give_status_not_exceptions():
    time = np.tile([1.0, 2, 3, 4, 5, 6], (8, 1))
    event = np.array([
        [0, 0, 0, 0, 0, 0],  # no events
        [1, 0, 1, 0, 1, 0],  # events only in the treated arm
        [1, 1, 1, 1, 1, 1],  # empty control arm (see treated)
        [1, 1, 1, 1, 1, 1],  # single patient (mask)
        [1, 1, 1, 1, 1, 1],  # control all die before any treated: beta -> -inf
        [1, 1, 1, 1, 1, 1],  # nobody in the cohort
        [1, 1, 0, 1, 1, 0],  # ordinary
        [1, 1, 1, 1, 1, 1],  # pair-stratified, every pair concordant the same way
    ], bool)
    treated = np.array([
        [1, 0, 1, 0, 1, 0], [1, 0, 1, 0, 1, 0], [1, 1, 1, 1, 1, 1], [1, 0, 1, 0, 1, 0],
        [0, 0, 0, 1, 1, 1], [1, 0, 1, 0, 1, 0], [1, 0, 0, 1, 0, 1], [1, 0, 1, 0, 1, 0],
    ], bool)
    mask = np.ones(time.shape, bool)
    mask[3, 1:] = False
    mask[5] = False
    pairs = np.tile([0, 0, 1, 1, 2, 2], (8, 1))
    expected = [status.NO_EVENTS, status.NO_EVENTS, status.EMPTY_ARM, status.EMPTY_ARM,
                status.NOT_CONVERGED, status.EMPTY_ARM, status.OK]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for ties in ("efron", "breslow"):
            result = fit_cox(time, event, treated, mask=mask, ties=ties, cluster=pairs)
            np.testing.assert_array_equal(result.status[:7], expected)
            assert np.all(np.isnan(result.log_hr[:6])) and np.all(np.isnan(result.robust_se[:6]))
            assert np.isfinite(result.log_hr[6]) and result.converged[6]
            stratified = fit_cox(time, event, treated, mask=mask, ties=ties, strata=pairs)
            assert stratified.status[7] == status.NOT_CONVERGED and np.isnan(stratified.log_hr[7])
            fit_cox(time[:, :0], event[:, :0], treated[:, :0], ties=ties)  # no patient columns
    with pytest.raises(ValueError, match="breslow, efron"):
        fit_cox(time, event, treated, ties="exact")


# --------------------------------------------------------------------------- log-rank


@pytest.mark.parametrize("n_checked", CHECKED)
def test_logrank_matches_lifelines(cohorts, n_checked):
    result = logrank_test(cohorts["time"], cohorts["event"], cohorts["treated"], mask=cohorts["mask"])
    assert np.all(result.status == status.OK)
    for b in range(n_checked):
        c = one_cohort(cohorts, b)
        arm = c["treated"]
        reference = lifelines_logrank(c["time"][arm], c["time"][~arm], c["event"][arm], c["event"][~arm])
        assert result.statistic[b] == pytest.approx(reference.test_statistic, rel=1e-8)
        assert result.p_value[b] == pytest.approx(reference.p_value, rel=1e-8)


def loop_logrank_parts(time, event, treated, strata):
    """Straightforward O - E and V summed over strata and distinct event times."""
    o_minus_e = variance = 0.0
    for stratum in np.unique(strata):
        s = strata == stratum
        for t in np.unique(time[s & event]):
            at_risk = s & (time >= t)
            n, n1 = at_risk.sum(), (at_risk & treated).sum()
            dying = s & (time == t) & event
            d, d1 = dying.sum(), (dying & treated).sum()
            o_minus_e += d1 - d * n1 / n
            if n > 1:
                variance += d * (n1 / n) * (1 - n1 / n) * (n - d) / (n - 1)
    return o_minus_e, variance


def test_stratified_logrank_matches_loop_and_r(cohorts, golden):
    result = logrank_test(cohorts["time"], cohorts["event"], cohorts["treated"], mask=cohorts["mask"],
                          strata=cohorts["cluster"])
    for b in range(N_COHORTS):
        c = one_cohort(cohorts, b)
        strata = np.where(c["cluster"] < 0, 1000 + np.arange(c["cluster"].size), c["cluster"])
        o_minus_e, variance = loop_logrank_parts(c["time"], c["event"], c["treated"], strata)
        assert result.observed_treated[b] - result.expected_treated[b] == pytest.approx(o_minus_e, abs=1e-10)
        assert result.variance[b] == pytest.approx(variance, rel=1e-12, abs=1e-14)
        if variance > 0:
            assert result.statistic[b] == pytest.approx(o_minus_e**2 / variance, rel=1e-10)
        else:
            assert result.status[b] == status.UNDEFINED and np.isnan(result.p_value[b])
    batch, r = golden
    plain = logrank_test(batch["time"], batch["event"], batch["treated"], mask=batch["mask"])
    np.testing.assert_allclose(plain.statistic, r["logrank_chisq"], rtol=1e-8)
    stratified = logrank_test(batch["time"], batch["event"], batch["treated"], mask=batch["mask"], strata=batch["pair"])
    defined = np.isfinite(r["logrank_strata_chisq"]) & (stratified.status == status.OK)
    assert defined.sum() >= 70
    np.testing.assert_allclose(stratified.statistic[defined], r["logrank_strata_chisq"][defined], rtol=1e-8)


def test_weighted_logrank_and_km_equal_duplicated_rows(cohorts):
    rng = np.random.default_rng(5)
    weights = rng.integers(0, 4, cohorts["time"].shape).astype(float)
    lr = logrank_test(cohorts["time"], cohorts["event"], cohorts["treated"], mask=cohorts["mask"], weights=weights)
    km = kaplan_meier(cohorts["time"], cohorts["event"], mask=cohorts["mask"], weights=weights)
    for b in range(40):
        repeat = np.where(cohorts["mask"][b], weights[b], 0).astype(int)
        t, e, x = (np.repeat(cohorts[key][b], repeat)[None] for key in ("time", "event", "treated"))
        expanded = logrank_test(t, e, x)
        assert lr.status[b] == expanded.status[0]
        np.testing.assert_allclose(lr.statistic[b], expanded.statistic[0], rtol=1e-12)
        km_expanded = kaplan_meier(t, e)
        n = km_expanded.valid.sum()
        np.testing.assert_array_equal(km.time[b, km.valid[b]], km_expanded.time[0, :n])
        np.testing.assert_allclose(km.survival[b, km.valid[b]], km_expanded.survival[0, :n], rtol=1e-14)


def test_logrank_degenerate_cases():
    time = np.tile([1.0, 2, 3, 4], (4, 1))
    event = np.array([[0, 0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1], [1, 0, 1, 0]], bool)
    treated = np.array([[1, 0, 1, 0], [1, 1, 1, 1], [1, 0, 1, 0], [1, 0, 1, 0]], bool)
    strata = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 1, 2, 3], [0, 0, 1, 1]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = logrank_test(time, event, treated, strata=strata)
    np.testing.assert_array_equal(result.status, [status.NO_EVENTS, status.EMPTY_ARM, status.UNDEFINED, status.OK])
    assert np.all(np.isnan(result.p_value[:3])) and np.isfinite(result.p_value[3])


# --------------------------------------------------------------------------- Kaplan-Meier


def loop_kaplan_meier(time, event):
    """Distinct times, S(t) and the Greenwood sum by a plain loop (R: inf once S = 0)."""
    times = np.unique(time)
    survival, greenwood, s, v = [], [], 1.0, 0.0
    for t in times:
        n, d = (time >= t).sum(), ((time == t) & event).sum()
        s *= 1 - d / n
        v += (d / (n * (n - d)) if n > d else np.inf) if d > 0 else 0.0
        survival.append(s)
        greenwood.append(v)
    return times, np.array(survival), np.array(greenwood)


def loop_first_crossing(times, curve, last_time):
    """R quantile.survfit rule read literally for a monotone curve: first t with curve <= 0.5,
    midpoint with the next drop when the curve sits at 0.5 (or with the last time at the end)."""
    tol = SURVIVAL_TOLERANCE
    for j, value in enumerate(curve):
        if np.isnan(value) or value > 0.5 + tol:
            continue
        if value < 0.5 - tol:
            return times[j]
        later = [k for k in range(j + 1, len(curve)) if curve[k] <= 0.5 - tol]
        if later:
            return (times[j] + times[later[0]]) / 2
        return np.nan if np.isnan(curve[-1]) else (times[j] + last_time) / 2
    return np.nan


@pytest.fixture(scope="module")
def km_treated(cohorts):
    return kaplan_meier(cohorts["time"], cohorts["event"], mask=cohorts["mask"] & cohorts["treated"])


@pytest.mark.parametrize("n_checked", CHECKED)
def test_kaplan_meier_matches_lifelines_and_loop(cohorts, km_treated, n_checked):
    km = km_treated
    for b in range(n_checked):
        c = one_cohort(cohorts, b)
        arm = c["treated"]
        fitted = KaplanMeierFitter().fit(c["time"][arm], c["event"][arm])
        times = km.time[b, km.valid[b]]
        survival = km.survival[b, km.valid[b]]
        greenwood = km.greenwood_var_sum[b, km.valid[b]]
        lifelines_survival = fitted.survival_function_.loc[times].to_numpy()[:, 0]
        np.testing.assert_allclose(survival, lifelines_survival, rtol=1e-12, atol=1e-15)
        positive = survival > 0  # lifelines sets the Greenwood term to 0 where S drops to 0
        lifelines_greenwood = fitted._cumulative_sq_.loc[times].to_numpy()
        np.testing.assert_allclose(greenwood[positive], lifelines_greenwood[positive], rtol=1e-12)
        loop_times, loop_survival, loop_greenwood = loop_kaplan_meier(c["time"][arm], c["event"][arm])
        np.testing.assert_array_equal(times, loop_times)
        np.testing.assert_allclose(survival, loop_survival, rtol=1e-13)
        np.testing.assert_allclose(greenwood, loop_greenwood, rtol=1e-13)
        assert km.n_at_risk[b, 0] == arm.sum() and km.last_time[b] == c["time"][arm].max()


@pytest.mark.parametrize("n_checked", CHECKED)
def test_median_and_loglog_ci_match_lifelines(cohorts, km_treated, n_checked):
    km = km_treated
    estimate = km_median(km, ci="brookmeyer_crowley_loglog")
    compared = 0
    for b in range(n_checked):
        c = one_cohort(cohorts, b)
        arm = c["treated"]
        survival = km.survival[b, km.valid[b]]
        times = km.time[b, km.valid[b]]
        if np.any(np.abs(survival - 0.5) < SURVIVAL_TOLERANCE):
            continue  # flat at 0.5: R's midpoint rule, lifelines has none (tested below)
        fitted = KaplanMeierFitter().fit(c["time"][arm], c["event"][arm])
        expected_median = fitted.median_survival_time_
        assert (np.isnan(estimate.median[b]) and np.isinf(expected_median)) or estimate.median[b] == expected_median
        bands = fitted.confidence_interval_
        if not all(bands[col].is_monotonic_decreasing for col in bands):
            continue  # lifelines' searchsorted assumes a monotone band
        expected = median_survival_times(bands).to_numpy()[0].astype(float)
        expected[np.isinf(expected)] = np.nan
        if survival[-1] == 0:
            # lifelines sets the band to 0 where S = 0; R (and we) leave it undefined there.
            t_zero = times[-1]
            for k, col in enumerate(bands):
                if expected[k] == t_zero and bands[col].loc[: times[-2] if len(times) > 1 else 0].min() > 0.5:
                    expected[k] = np.nan
        np.testing.assert_array_equal([estimate.lower[b], estimate.upper[b]], expected)
        compared += 1
    assert compared >= 0.8 * n_checked


def reference_bands(survival, greenwood, method):
    """Pointwise 95 % bands of S(t) as R survival:::survfit_confint (conf.type log, log-log, plain)."""
    sigma = np.sqrt(greenwood)
    with np.errstate(all="ignore"):
        if method == "brookmeyer_crowley_log":
            s = np.where(survival == 0, np.nan, survival)
            return s * np.exp(-Z95 * sigma), np.minimum(s * np.exp(Z95 * sigma), 1.0)
        if method == "brookmeyer_crowley_loglog":
            s = np.where((survival == 0) | (survival == 1), np.nan, survival)
            shift = Z95 * sigma / np.log(s)
            return np.exp(-np.exp(np.log(-np.log(s)) - shift)), np.exp(-np.exp(np.log(-np.log(s)) + shift))
        return np.maximum(survival * (1 - Z95 * sigma), 0.0), np.minimum(survival * (1 + Z95 * sigma), 1.0)


def r_findq(times, curve, p=0.5):
    """Literal port of survival:::findq (3.5.3) for one probability: x = c(0, time),
    y = c(0, 1 - curve); duplicated y dropped; approx(y -+ tol, 1:n, p, "constant", f = 1)."""
    tol = SURVIVAL_TOLERANCE
    x, y = np.r_[0.0, times], np.r_[0.0, 1.0 - curve]
    if np.nanmax(y) < p:
        return np.nan
    x_max = x[-1]
    keep = np.sort(np.unique(y, return_index=True)[1])  # R duplicated(): keep first occurrences
    x, y = x[keep], y[keep]

    def approx_index(nodes):
        values = np.arange(nodes.size)
        defined = ~np.isnan(nodes)
        nodes, values = nodes[defined], values[defined]
        order = np.argsort(nodes)
        nodes, values = nodes[order], values[order]
        if p < nodes[0] or p > nodes[-1]:
            return None
        return values[np.searchsorted(nodes, p, side="left")]

    first, second = approx_index(y + tol), approx_index(y - tol)
    quantile = np.nan if first is None or second is None else (x[first] + x[second]) / 2
    if not np.isnan(y[-1]) and abs(p - y[-1]) < tol:
        quantile = (x[first] + x_max) / 2
    return quantile


def same(a, b, rel=0.0):
    """Equal (both NaN counts as equal); ``rel`` allows for R's decimal parsing of the inputs,
    which can be 1 ulp off the Python float."""
    return bool(a == b or (np.isnan(a) and np.isnan(b)) or abs(a - b) <= rel * abs(b))


def is_monotone(band):
    values = band[~np.isnan(band)]
    return bool(np.all(np.diff(values) <= 0))


@pytest.mark.parametrize("method", ["brookmeyer_crowley_log", "brookmeyer_crowley_loglog", "brookmeyer_crowley_plain"])
def test_brookmeyer_crowley_ci_matches_loop(cohorts, km_treated, method):
    km = km_treated
    estimate = km_median(km, ci=method)
    differ_from_r = 0
    for b in range(N_COHORTS):
        c = one_cohort(cohorts, b)
        arm = c["treated"]
        times, survival, greenwood = loop_kaplan_meier(c["time"][arm], c["event"][arm])
        last = c["time"][arm].max()
        assert same(estimate.median[b], loop_first_crossing(times, survival, last))
        assert same(estimate.median[b], r_findq(times, survival))
        for ours, band in zip((estimate.lower[b], estimate.upper[b]), reference_bands(survival, greenwood, method)):
            assert same(ours, loop_first_crossing(times, band, last))
            if not same(ours, r_findq(times, band)):
                assert not is_monotone(band)  # R's rule differs only on a non-monotone band
                differ_from_r += 1
    assert differ_from_r <= 0.05 * N_COHORTS


@pytest.mark.parametrize("conf_type, method", [("log", "brookmeyer_crowley_log"),
                                               ("loglog", "brookmeyer_crowley_loglog"),
                                               ("plain", "brookmeyer_crowley_plain")])
def test_median_ci_matches_r_quantile_survfit(golden, conf_type, method):
    """Equal to R where the band is monotone; where it is not, R reads the band where it is
    closest to 0.5 from below (its approx() sorts the band), which the port reproduces."""
    batch, r = golden
    compared = 0
    for arm, name in ((batch["treated"], "treated"), (~batch["treated"], "control")):
        km = kaplan_meier(batch["time"], batch["event"], mask=batch["mask"] & arm)
        estimate = km_median(km, ci=method)
        for b in range(km.valid.shape[0]):
            valid = km.valid[b]
            times, survival = km.time[b, valid], km.survival[b, valid]
            bands = reference_bands(survival, km.greenwood_var_sum[b, valid], method)
            assert same(estimate.median[b], r[f"median_{name}_{conf_type}_median"][b], rel=1e-14)
            for field, band in zip(("lower", "upper"), bands):
                theirs = r[f"median_{name}_{conf_type}_{field}"][b]
                assert same(r_findq(times, band), theirs, rel=1e-14)
                if same(getattr(estimate, field)[b], theirs, rel=1e-14):
                    compared += 1
                else:
                    assert not is_monotone(band)
    assert compared >= 0.97 * 4 * km.valid.shape[0]


def test_median_midpoint_rule_on_constructed_cases():
    # R 3.5.3: survfit(Surv(c(1,2,3,4), c(1,1,1,1)) ~ 1) median 2.5 (S = 0.5 on [2, 3));
    # Surv(c(1,2,3,4), c(1,1,0,0)): S = 0.5 from t = 2 to the end -> (2 + 4) / 2 = 3;
    # Surv(c(1,2,3,4,5,6), c(1,1,1,1,1,1)): S(3) = 0.5 -> (3 + 4) / 2 = 3.5;
    # Surv(c(1,2,3,4,5), c(1,0,1,1,1)): S = 0.8, 0.533, 0.267, 0 -> first drop 4, no flat.
    time = np.array([[1.0, 2, 3, 4, 99, 99], [1, 2, 3, 4, 99, 99], [1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 99]])
    event = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0], [1] * 6, [1, 0, 1, 1, 1, 0]], bool)
    mask = time < 99
    midpoint = km_median(time, event, mask=mask)
    np.testing.assert_array_equal(midpoint.median, [2.5, 3.0, 3.5, 4.0])
    first = km_median(time, event, mask=mask, median_rule="first")
    np.testing.assert_array_equal(first.median, [2.0, 2.0, 3.0, 4.0])
    # R: quantile(survfit(Surv(c(1,2,3,4,5), c(1,0,1,1,1)) ~ 1), 0.5): 4 (3, NA) with log CI.
    assert midpoint.lower[3] == 3.0 and np.isnan(midpoint.upper[3])


def test_spss_symmetric_ci_matches_formula(cohorts, km_treated):
    km = km_treated
    estimate = km_median(km, ci="spss_symmetric", median_rule="first")
    finite = 0
    for b in range(N_COHORTS):
        c = one_cohort(cohorts, b)
        arm = c["treated"]
        times, survival, greenwood = loop_kaplan_meier(c["time"][arm], c["event"][arm])
        is_event = np.array([((c["time"][arm] == t) & c["event"][arm]).any() for t in times])
        tol = SURVIVAL_TOLERANCE
        reached = np.flatnonzero(survival <= 0.5 + tol)
        if reached.size == 0:
            assert np.isnan(estimate.median[b]) and np.isnan(estimate.lower[b])
            continue
        j = reached[0]
        assert estimate.median[b] == times[j]
        upper_side = np.flatnonzero(is_event & (survival >= 0.55 - tol))
        lower_side = np.flatnonzero(is_event & (survival <= 0.45 + tol))
        u_time, u_surv = (times[upper_side[-1]], survival[upper_side[-1]]) if upper_side.size else (0.0, 1.0)
        if lower_side.size == 0:
            assert np.isnan(estimate.se[b]) and np.isnan(estimate.lower[b])
            continue
        l_time, l_surv = times[lower_side[0]], survival[lower_side[0]]
        with np.errstate(all="ignore"):
            se = survival[j] * np.sqrt(greenwood[j]) / ((u_surv - l_surv) / (l_time - u_time))
        if not np.isfinite(se):
            assert np.isnan(estimate.se[b])
            continue
        assert estimate.se[b] == pytest.approx(se, rel=1e-12)
        assert estimate.lower[b] == pytest.approx(times[j] - Z95 * se, rel=1e-12, abs=1e-12)
        assert estimate.upper[b] == pytest.approx(times[j] + Z95 * se, rel=1e-12)
        finite += 1
    assert finite >= 0.5 * N_COHORTS


def test_kaplan_meier_degenerate_cases():
    time = np.array([[1.0, 2, 3], [1, 2, 3], [1, 2, 3], [1, 2, 3]])
    event = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 1], [1, 1, 1]], bool)
    mask = np.array([[1, 1, 1], [1, 0, 0], [1, 1, 1], [0, 0, 0]], bool)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        km = kaplan_meier(time, event, mask=mask)
        for method in ("brookmeyer_crowley_log", "brookmeyer_crowley_loglog",
                       "brookmeyer_crowley_plain", "spss_symmetric"):
            estimate = km_median(km, ci=method)
            np.testing.assert_array_equal(estimate.status, [status.OK, status.OK, status.OK, status.EMPTY_ARM])
            assert np.isnan(estimate.median[0])  # all censored: not reached, status OK
            assert estimate.median[1] == 1.0  # single patient with an event
            assert np.isnan(estimate.median[3])
        kaplan_meier(time[:, :0], event[:, :0])
    np.testing.assert_array_equal(km.survival[0, :3], [1, 1, 1])
    assert km.greenwood_var_sum[1, 0] == np.inf and km.survival[1, 0] == 0
    with pytest.raises(ValueError, match="spss_symmetric"):
        km_median(km, ci="greenwood")


# --------------------------------------------------------------------------- whole batch


def test_every_option_runs_on_the_random_batch_without_warnings(cohorts):
    rng = np.random.default_rng(8)
    weights = rng.integers(0, 3, cohorts["time"].shape).astype(float)
    n = N_COHORTS
    data = (cohorts["time"], cohorts["event"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for arm in (cohorts["treated"], ~cohorts["treated"]):
            for w in (None, weights):
                km = kaplan_meier(*data, mask=cohorts["mask"] & arm, weights=w)
                for method in ("brookmeyer_crowley_log", "brookmeyer_crowley_loglog",
                               "brookmeyer_crowley_plain", "spss_symmetric"):
                    for rule in ("midpoint", "first"):
                        estimate = km_median(km, ci=method, median_rule=rule)
                        assert estimate.median.shape == (n,)
                        finite = np.isfinite(estimate.lower) & np.isfinite(estimate.upper)
                        assert np.all(estimate.lower[finite] <= estimate.upper[finite])
        for strata in (None, cohorts["cluster"]):
            for w in (None, weights):
                lr = logrank_test(*data, cohorts["treated"], mask=cohorts["mask"], strata=strata, weights=w)
                assert lr.p_value.shape == (n,)
                for ties in ("efron", "breslow"):
                    cox = fit_cox(*data, cohorts["treated"], mask=cohorts["mask"], ties=ties,
                                  cluster=cohorts["cluster"], strata=strata, weights=w)
                    ok = cox.status == status.OK
                    assert np.all(np.isfinite(cox.log_hr[ok]) & np.isfinite(cox.robust_se[ok]))
                    assert np.all(np.isnan(cox.log_hr[~ok]))
                    assert np.all((cox.ci_lower[ok] < cox.log_hr[ok]) & (cox.log_hr[ok] < cox.ci_upper[ok]))


def test_results_do_not_depend_on_patient_order(cohorts):
    rng = np.random.default_rng(9)
    permutation = np.argsort(rng.random(cohorts["time"].shape), axis=1)
    shuffled = {key: np.take_along_axis(value, permutation, axis=1) for key, value in cohorts.items()}
    for ties in ("efron", "breslow"):
        before = fit_cox(cohorts["time"], cohorts["event"], cohorts["treated"], mask=cohorts["mask"], ties=ties,
                         cluster=cohorts["cluster"])
        after = fit_cox(shuffled["time"], shuffled["event"], shuffled["treated"], mask=shuffled["mask"], ties=ties,
                        cluster=shuffled["cluster"])
        np.testing.assert_array_equal(before.status, after.status)
        np.testing.assert_allclose(before.log_hr, after.log_hr, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(before.robust_se, after.robust_se, rtol=1e-12)
    before = km_median(cohorts["time"], cohorts["event"], mask=cohorts["mask"])
    after = km_median(shuffled["time"], shuffled["event"], mask=shuffled["mask"])
    np.testing.assert_array_equal(before.median, after.median)
    np.testing.assert_array_equal(before.lower, after.lower)


# --------------------------------------------------------------------------- one shared table


def assert_same_arrays(left, right):
    """Every array field of two result dataclasses equal bit for bit (NaN where NaN)."""
    for name, value in vars(left).items():
        np.testing.assert_array_equal(value, getattr(right, name), err_msg=name, strict=True)


@pytest.mark.parametrize("weighting", ["none", "counts", "fractional"])
def test_kaplan_meier_of_each_arm_from_the_two_arm_table_equals_one_arm_estimate(cohorts, weighting):
    """The plan reads both arms' curves off one two-arm table: the numbers must be those of the
    one-arm estimate (mask = cohort & arm) exactly, also with fractional weights."""
    rng = np.random.default_rng(31)
    weights = {"none": None, "counts": rng.integers(1, 4, cohorts["time"].shape).astype(float),
               "fractional": rng.uniform(0.2, 3.0, cohorts["time"].shape)}[weighting]
    time, event, treated, mask = (cohorts[key] for key in ("time", "event", "treated", "mask"))
    table = tabulate_risk_sets(time, event, treated, mask=mask, weights=weights)
    for arm, in_arm in (("treated", treated), ("control", ~treated)):
        shared = kaplan_meier_from_table(table, arm=arm)
        alone = kaplan_meier(time, event, mask=mask & in_arm, weights=weights)
        assert shared.valid.any(axis=1).all()
        assert_same_arrays(shared, alone)
        for ci in ("brookmeyer_crowley_log", "spss_symmetric"):
            alone_median = km_median(time, event, mask=mask & in_arm, weights=weights, ci=ci)
            assert_same_arrays(km_median(shared, ci=ci), alone_median)


def test_kaplan_meier_from_table_rejects_strata_and_unknown_arms(cohorts):
    time, event, treated, mask = (cohorts[key] for key in ("time", "event", "treated", "mask"))
    with pytest.raises(ValueError, match="strata"):
        kaplan_meier_from_table(tabulate_risk_sets(time, event, treated, mask=mask, strata=cohorts["cluster"]))
    with pytest.raises(ValueError, match="treated, control"):
        kaplan_meier_from_table(tabulate_risk_sets(time, event, treated, mask=mask), arm="both")


@pytest.mark.parametrize("stratified", [False, True])
def test_cox_and_logrank_from_one_table_equal_the_separate_fits(cohorts, stratified):
    time, event, treated, mask = (cohorts[key] for key in ("time", "event", "treated", "mask"))
    strata = cohorts["cluster"] if stratified else None
    weights = np.random.default_rng(5).integers(1, 3, time.shape).astype(float)
    table = tabulate_risk_sets(time, event, treated, mask=mask, weights=weights, strata=strata)
    assert_same_arrays(logrank_from_table(table),
                       logrank_test(time, event, treated, mask=mask, weights=weights, strata=strata))
    for ties in ("efron", "breslow"):
        assert_same_arrays(cox_from_table(table, ties=ties, cluster=cohorts["cluster"]),
                           fit_cox(time, event, treated, mask=mask, weights=weights, strata=strata, ties=ties,
                                   cluster=cohorts["cluster"]))


def test_robust_se_does_not_depend_on_the_cluster_ids_coding(cohorts):
    """Singleton clusters numbered 0..n-1 (the full cohort's fast path), large ids (the int64
    sort) and small ids (the int16 radix sort) give the same numbers bit for bit."""
    time, event, treated, mask = (cohorts[key] for key in ("time", "event", "treated", "mask"))
    patient = np.broadcast_to(np.arange(time.shape[1]), time.shape)
    for ties in ("efron", "breslow"):
        def robust(cluster):
            return fit_cox(time, event, treated, mask=mask, ties=ties, cluster=cluster).robust_se

        np.testing.assert_array_equal(robust(patient), robust(patient + 7))
        np.testing.assert_array_equal(robust(patient), robust(patient + 100_000))
        np.testing.assert_array_equal(robust(np.full(time.shape, -1)), robust(patient))
        large_ids = np.where(cohorts["cluster"] >= 0, cohorts["cluster"] + 100_000, -1)
        np.testing.assert_array_equal(robust(cohorts["cluster"]), robust(large_ids))
        ok = fit_cox(time, event, treated, mask=mask, ties=ties).status == status.OK
        assert np.isfinite(robust(patient)[ok]).all()


def test_stratified_fits_do_not_depend_on_the_strata_ids_coding(cohorts):
    time, event, treated, mask = (cohorts[key] for key in ("time", "event", "treated", "mask"))
    small = cohorts["cluster"]
    large = np.where(small >= 0, small + 100_000, -1)
    assert_same_arrays(fit_cox(time, event, treated, mask=mask, strata=small),
                       fit_cox(time, event, treated, mask=mask, strata=large))
    assert_same_arrays(logrank_test(time, event, treated, mask=mask, strata=small),
                       logrank_test(time, event, treated, mask=mask, strata=large))
