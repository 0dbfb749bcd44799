"""Weighted survival statistics (non-integer weights) against lifelines and R survival.

* Weighted Cox of the treatment with robust SE: lifelines ``CoxPHFitter(weights_col=...,
  robust=True)`` on cohorts without tied times (lifelines' sandwich uses Breslow-form score
  residuals, which equal the Efron ones without ties), and R ``coxph(..., weights =, robust =
  TRUE)`` golden values (``tests/data/estimators_r_golden.json``) with ties.
* Robust score test: R ``coxph(...)$rscore``.
* Weighted Kaplan-Meier: lifelines ``KaplanMeierFitter(weights=...)`` for S(t); R ``survfit(...,
  weights =)`` (robust variance by default for non-integer weights) for SE(S) and the median CI.
"""

from __future__ import annotations

import json
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter, KaplanMeierFitter

from analysis import status
from analysis.survival import fit_cox, kaplan_meier_from_table, km_median, tabulate_risk_sets
from analysis.survival.weighted import robust_kaplan_meier, robust_score_test
from tests.analysis.survival.test_survival import is_monotone, r_findq, reference_bands, same

GOLDEN = pathlib.Path(__file__).parents[2] / "data" / "estimators_r_golden.json"
N_COHORTS = 120
CHECKED = [pytest.param(40, id="reduced"), pytest.param(N_COHORTS, id="full", marks=pytest.mark.slow)]


def weighted_cohorts(rng, n_cohorts=N_COHORTS, n_max=80, ties=False):
    """Padded cohorts of 12-80 patients with IPTW-like weights (0.2-6); continuous times
    unless ``ties``."""
    shape = (n_cohorts, n_max)
    time = np.full(shape, np.nan)
    event = rng.random(shape) < 0.5
    treated = rng.random(shape) < 0.5
    weights = rng.uniform(0.2, 6.0, shape)
    mask = np.zeros(shape, bool)
    for b in range(n_cohorts):
        n = int(rng.integers(12, n_max + 1))
        where = np.sort(rng.choice(n_max, n, replace=False))
        arm = rng.random(n) < rng.uniform(0.3, 0.6)
        arm[:2], arm[2:4] = True, False
        event_time = rng.exponential(8.0, n) * np.exp(-rng.normal(0, 0.7) * arm)
        censor_time = rng.uniform(0, rng.choice([10.0, 25.0, 1e6]), n)
        if ties:
            event_time, censor_time = np.ceil(event_time * 2) / 2, np.ceil(censor_time * 2) / 2
        time[b, where] = np.minimum(event_time, censor_time)
        event[b, where] = event_time <= censor_time
        treated[b, where] = arm
        mask[b, where] = True
    return dict(time=time, event=event, treated=treated, weights=weights, mask=mask)


@pytest.fixture(scope="module")
def cohorts():
    return weighted_cohorts(np.random.default_rng(20240612))


@pytest.fixture(scope="module")
def golden():
    payload = json.loads(GOLDEN.read_text())
    cases = payload["cases"]
    n_max = max(len(c["time"]) for c in cases)
    shape = (len(cases), n_max)
    batch = dict(time=np.zeros(shape), event=np.zeros(shape, bool), treated=np.zeros(shape, bool),
                 weights=np.zeros(shape), mask=np.zeros(shape, bool), z=np.zeros(shape + (3,)))
    for k, case in enumerate(cases):
        n = len(case["time"])
        for key, name in (("time", "time"), ("event", "event"), ("treated", "treated"), ("weight", "weights")):
            batch[name][k, :n] = case[key]
        batch["z"][k, :n] = np.column_stack([case["z0"], case["z1"], case["z2"]])
        batch["mask"][k, :n] = True
    batch["r"] = [case["r"] for case in cases]
    return batch


def patient_clusters(shape):
    return np.broadcast_to(np.arange(shape[1]), shape)


def lifelines_weighted_cox(time, event, treated, weights):
    frame = pd.DataFrame({"t": time, "e": event.astype(int), "x": treated.astype(float), "w": weights})
    fitter = CoxPHFitter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitter.fit(frame, "t", "e", weights_col="w", robust=True,
                   fit_options={"precision": 1e-30, "r_precision": 1e-30})
    return fitter


@pytest.mark.parametrize("n_checked", CHECKED)
def test_weighted_cox_and_robust_se_match_lifelines(cohorts, n_checked):
    c = cohorts
    result = fit_cox(c["time"], c["event"], c["treated"], mask=c["mask"], weights=c["weights"],
                     cluster=patient_clusters(c["time"].shape))
    ok = np.flatnonzero(result.status == status.OK)
    assert ok.size >= 0.9 * N_COHORTS
    for b in ok[:n_checked]:
        keep = c["mask"][b]
        fitted = lifelines_weighted_cox(c["time"][b, keep], c["event"][b, keep], c["treated"][b, keep],
                                        c["weights"][b, keep])
        assert result.log_hr[b] == pytest.approx(fitted.params_["x"], rel=1e-9, abs=1e-12)
        assert result.robust_se[b] == pytest.approx(fitted.standard_errors_["x"], rel=1e-8)


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_weighted_cox_robust_se_and_score_test_match_r(golden, ties):
    g = golden
    shape = g["time"].shape
    result = fit_cox(g["time"], g["event"], g["treated"], mask=g["mask"], weights=g["weights"], ties=ties,
                     cluster=patient_clusters(shape))
    table = tabulate_risk_sets(g["time"], g["event"], g["treated"], mask=g["mask"], weights=g["weights"])
    score_test = robust_score_test(table, ties=ties)
    checked = 0
    for k, r in enumerate(g["r"]):
        expected = r[f"cox_{ties}"]
        assert result.status[k] == status.OK
        # R stops on a relative change of the log-likelihood below eps = 1e-12, which leaves
        # coefficients ~1e-11 from the maximum: hence abs=1e-10 on the coefficient.
        assert result.log_hr[k] == pytest.approx(expected["coef"], rel=1e-8, abs=1e-10)
        assert result.se[k] == pytest.approx(expected["se"], rel=1e-8)
        assert result.robust_se[k] == pytest.approx(expected["robust_se"], rel=1e-8)
        assert score_test.statistic[k] == pytest.approx(np.ravel(expected["rscore"])[0], rel=1e-10, abs=1e-13)
        checked += 1
    assert checked == len(g["r"])


def test_robust_score_test_clusters_and_degenerate_cases(cohorts):
    c = cohorts
    table = tabulate_risk_sets(c["time"], c["event"], c["treated"], mask=c["mask"], weights=c["weights"])
    alone = robust_score_test(table)
    explicit = robust_score_test(table, cluster=patient_clusters(c["time"].shape))
    np.testing.assert_allclose(alone.statistic, explicit.statistic, rtol=1e-13)
    # clusters of two patients: the statistic is U^2 / sum over clusters of the summed residuals
    pairs = np.broadcast_to(np.arange(c["time"].shape[1]) // 2, c["time"].shape)
    paired = robust_score_test(table, cluster=pairs)
    assert not np.allclose(paired.statistic, alone.statistic)
    assert np.all(paired.p_value[paired.status == status.OK] <= 1)
    empty = tabulate_risk_sets(np.ones((1, 3)), np.ones((1, 3), bool), np.ones((1, 3), bool))
    assert robust_score_test(empty).status[0] == status.EMPTY_ARM
    no_events = tabulate_risk_sets(np.ones((1, 4)), np.zeros((1, 4), bool), np.array([[1, 1, 0, 0]], bool))
    assert robust_score_test(no_events).status[0] == status.NO_EVENTS


@pytest.mark.parametrize("n_checked", CHECKED)
def test_weighted_kaplan_meier_matches_lifelines(cohorts, n_checked):
    c = cohorts
    table = tabulate_risk_sets(c["time"], c["event"], c["treated"], mask=c["mask"], weights=c["weights"])
    km = robust_kaplan_meier(table, arm="treated")
    for b in range(n_checked):
        keep = c["mask"][b] & c["treated"][b]
        fitter = KaplanMeierFitter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fitter.fit(c["time"][b, keep], c["event"][b, keep], weights=c["weights"][b, keep])
        curve = fitter.survival_function_.iloc[1:, 0]  # lifelines starts at time 0
        valid = km.valid[b]
        np.testing.assert_allclose(km.time[b, valid], curve.index.values, rtol=1e-15)
        # lifelines does not reach S = 0 with non-integer weights when the last patients at risk
        # all die (it rounds the censored counts), so the curves are compared while S > 0.
        positive = km.survival[b, valid] > 0
        np.testing.assert_allclose(km.survival[b, valid][positive], curve.values[positive], rtol=1e-12)


def test_robust_kaplan_meier_se_and_median_ci_match_r(golden):
    """SE(S) at every time equals R's; the median and its CI equal R's where the pointwise band
    is monotone (elsewhere R reads the band where it is closest to 0.5 from below, see
    ``km_median``; the band-reading rule is checked against a port of R's findq)."""
    g = golden
    table = tabulate_risk_sets(g["time"], g["event"], g["treated"], mask=g["mask"], weights=g["weights"])
    compared = total = 0
    for arm in ("treated", "control"):
        robust = robust_kaplan_meier(table, arm=arm)
        greenwood = kaplan_meier_from_table(table, arm=arm)
        for k, r in enumerate(g["r"]):
            integer_weights = np.all(g["weights"][k][g["mask"][k]] == 1)
            km = greenwood if integer_weights else robust  # R: robust only for non-integer weights
            median = km_median(km, ci="brookmeyer_crowley_log", median_rule="midpoint")
            expected = [np.nan if v is None else v for v in r[f"median_{arm}"]]
            valid = km.valid[k]
            times, survival = km.time[k, valid], km.survival[k, valid]
            assert same(median.median[k], expected[0], rel=1e-14)
            for field, band, theirs in zip(("lower", "upper"),
                                           reference_bands(survival, km.greenwood_var_sum[k, valid],
                                                           "brookmeyer_crowley_log"), expected[1:]):
                assert same(r_findq(times, band), theirs, rel=1e-12)
                total += 1
                if same(getattr(median, field)[k], theirs, rel=1e-12):
                    compared += 1
                else:
                    assert not is_monotone(band)
            if arm == "treated" and not integer_weights:
                np.testing.assert_allclose(times, r["km_treated"]["time"], rtol=1e-14)
                se_survival = survival * np.sqrt(km.greenwood_var_sum[k, valid])
                expected_se = np.array([np.nan if v is None else v for v in np.ravel(r["km_treated"]["std_err"])])
                finite = survival > 0
                np.testing.assert_allclose(se_survival[finite], expected_se[finite], rtol=1e-10, atol=1e-14)
    assert compared >= 0.9 * total


def log_survival(time, event, weights, grid):
    """log S(t) of a weighted Kaplan-Meier curve at the times ``grid``, written out."""
    out = np.zeros(len(grid))
    for s_time in np.unique(time[event]):
        at_risk = weights[time >= s_time].sum()
        died = weights[(time == s_time) & event].sum()
        out[grid >= s_time] += np.log1p(-died / at_risk)
    return out


def test_robust_kaplan_meier_variance_is_the_jackknife_of_numerical_derivatives(cohorts):
    """Var(log S(t)) = sum_i (w_i d log S(t) / d w_i)^2 with the derivatives taken numerically
    (central differences) on a Kaplan-Meier curve written out here."""
    c = cohorts
    table = tabulate_risk_sets(c["time"], c["event"], c["treated"], mask=c["mask"], weights=c["weights"])
    km = robust_kaplan_meier(table, arm="control")
    for b in range(15):
        keep = c["mask"][b] & ~c["treated"][b]
        time, event, weights = c["time"][b, keep], c["event"][b, keep], c["weights"][b, keep]
        valid = km.valid[b] & np.isfinite(km.greenwood_var_sum[b])
        grid = km.time[b, valid]
        influence = np.zeros((len(time), len(grid)))
        for i in range(len(time)):
            step = 1e-6 * weights[i]
            up, down = weights.copy(), weights.copy()
            up[i] += step
            down[i] -= step
            influence[i] = weights[i] * (log_survival(time, event, up, grid) - log_survival(time, event, down, grid)) / (2 * step)
        np.testing.assert_allclose(km.greenwood_var_sum[b, valid], (influence**2).sum(axis=0), rtol=1e-6, atol=1e-12)
