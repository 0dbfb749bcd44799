"""Tests of the per-estimand truths (sim/calibrate/estimands.py, populations.py): ATT, ATE and
ATO marginal log-HRs against the quadrature limit of the Cox model in their target
populations, against lifelines' weighted Cox on the same stacked potential outcomes, the
conditional truth (the Cox(T ~ Z + η) limit equals β where hazards are proportional), the
weighted median, the null, and the MC SE from independent groups."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter

from sim.calibrate.estimands import (
    ESTIMANDS,
    group_truths,
    proportional_given_predictor,
    weighted_median,
)
from sim.calibrate.populations import TruthPopulation
from sim.generate.censoring import draw_censoring, observe_outcomes
from sim.generate.outcomes import draw_outcome_noise, illness_death_times
from sim.scenario.model import Assessment, Censoring

from tests.sim.calibrate.test_calibrate import ADMINISTRATIVE, cox_limit, exponential_model

GAMMA, RATE, BETA = 1.6, 0.1, -0.7
P_TREATED, P_CONTROL, SHARE = 0.7, 0.3, 0.4


def binary_population(n, rng):
    """Treated profiles with x ~ Bern(0.7), control with x ~ Bern(0.3), π = 0.4: e(x) by Bayes."""
    x_t, x_c = rng.random(n) < P_TREATED, rng.random(n) < P_CONTROL

    def ps(x):
        treated = SHARE * np.where(x, P_TREATED, 1 - P_TREATED)
        return treated / (treated + (1 - SHARE) * np.where(x, P_CONTROL, 1 - P_CONTROL))

    return TruthPopulation(GAMMA * x_t, GAMMA * x_c, ps(x_t), ps(x_c), SHARE)


def population_prevalence(estimand):
    """P(x = 1) in each estimand's target population (the module docstring's densities)."""
    mixed = SHARE * P_TREATED + (1 - SHARE) * P_CONTROL
    if estimand == "att":
        return P_TREATED
    if estimand == "ate":
        return mixed
    e1 = SHARE * P_TREATED / mixed
    e0 = SHARE * (1 - P_TREATED) / (1 - mixed)
    tilted = mixed * e1 * (1 - e1)
    return tilted / (tilted + (1 - mixed) * e0 * (1 - e0))


@pytest.mark.parametrize("n", [100_000])
def test_marginal_truths_match_the_cox_limit_of_their_populations(n):
    """Each estimand's truth is the Cox limit (quadrature) in its own population; the three
    populations differ enough (x prevalence 0.7, 0.46, ~0.5) that a wrong weighting shows."""
    truths = group_truths(exponential_model(rate=RATE, beta_pfs=BETA), binary_population(n, np.random.default_rng(1)),
                          ADMINISTRATIVE, groups=20, rng=np.random.default_rng(2), conditional=(BETA, None))
    limits = {e: cox_limit(population_prevalence(e), GAMMA, RATE, BETA, ADMINISTRATIVE) for e in ("att", "ate", "ato")}
    assert abs(limits["att"] - limits["ate"]) > 0.01
    for i, estimand in enumerate(("att", "ate", "ato")):
        values = truths.log_hr[i, 0]
        mcse = values.std(ddof=1) / math.sqrt(values.size)
        assert abs(values.mean() - limits[estimand]) < 4 * mcse + 2e-3, estimand  # + O(1/n) bias


def test_conditional_limit_equals_beta_where_hazards_are_proportional():
    """Exponential PFS, one β, no delay: Cox(T ~ Z + η) on the observed population (confounded:
    Z depends on x) converges to β; its MC SE from 20 groups brackets the difference."""
    model = exponential_model(rate=RATE, beta_pfs=BETA, after=0.2, beta_os=-0.3)
    assert proportional_given_predictor(model, "pfs", None)
    assert not proportional_given_predictor(model, "os", None)
    truths = group_truths(model, binary_population(100_000, np.random.default_rng(3)), ADMINISTRATIVE,
                          groups=20, rng=np.random.default_rng(4), marginal=())
    values = truths.log_hr[ESTIMANDS.index("conditional"), 0]
    mcse = values.std(ddof=1) / math.sqrt(values.size)
    assert 0 < mcse < 0.01
    assert abs(values.mean() - BETA) < 4 * mcse


def test_proportional_hazards_rule():
    model = exponential_model(beta_pfs=-0.5)
    assert proportional_given_predictor(model, "pfs", None)
    assert not proportional_given_predictor(model, "pfs", Assessment(interval_months=1.84))
    assert not proportional_given_predictor(exponential_model(beta_pfs=-0.5, delay=2.0), "pfs", None)
    null = exponential_model(beta_pfs=0.0, beta_os=0.0)
    assert proportional_given_predictor(null, "os", None)


def test_truths_equal_lifelines_weighted_cox_on_the_same_draws():
    """The stacked potential outcomes rebuilt here from the same random numbers, fitted by
    lifelines (weights_col, Efron ties): ATT, ATE (weights π / 1 − π), ATO (times e(1 − e))
    and the conditional Cox(T ~ Z + η) on each profile's own arm's outcome."""
    m = 1500
    rng = np.random.default_rng(5)
    eta_t, eta_c = rng.normal(0.3, 0.6, m), rng.normal(0.0, 0.6, m)
    ps_t, ps_c = rng.uniform(0.2, 0.9, m), rng.uniform(0.1, 0.7, m)
    population = TruthPopulation(eta_t, eta_c, ps_t, ps_c, 0.35)
    model = exponential_model(rate=0.1, death=0.02, after=0.15, beta_pfs=-0.6, beta_os=-0.2)
    censoring = Censoring(accrual_months=24.0, cutoff_month=30.0, dropout_rate=0.02)
    got = group_truths(model, population, censoring, groups=1, rng=np.random.default_rng(6))

    draws = np.random.default_rng(6)
    eta = np.concatenate([eta_t, eta_c])[None, :]
    noise = draw_outcome_noise(eta.shape, rng=draws)
    follow_up = draw_censoring(censoring, eta.shape, rng=draws).censor_months
    arm = np.r_[np.ones(m), np.zeros(m)]
    ps = np.r_[ps_t, ps_c]
    records = []
    for z in (1, 0):
        times = illness_death_times(eta, np.full(eta.shape, bool(z)), model, noise)
        observed = observe_outcomes(times.pfs_months, times.os_months, times.progressed, follow_up, None)
        records.append(pd.DataFrame({
            "pfs": observed.pfs_months[0], "pfs_event": observed.pfs_event[0], "os": observed.os_months[0],
            "os_event": observed.os_event[0], "z": z, "arm": arm, "eta": eta[0],
            "ate": np.where(arm == 1, 0.35, 0.65), "ps": ps}))
    stacked = pd.concat(records, ignore_index=True)
    stacked["att"] = stacked["arm"]
    stacked["ato"] = stacked["ate"] * stacked["ps"] * (1 - stacked["ps"])
    for j, endpoint in enumerate(("pfs", "os")):
        columns = [endpoint, f"{endpoint}_event", "z"]
        for i, estimand in enumerate(("att", "ate", "ato")):
            data = stacked[stacked[estimand] > 0][columns + [estimand]]
            fit = CoxPHFitter().fit(data, endpoint, f"{endpoint}_event", weights_col=estimand, robust=True)
            assert got.log_hr[i, j, 0] == pytest.approx(fit.params_["z"], abs=1e-6), (estimand, endpoint)
        own = stacked[stacked["z"] == stacked["arm"]][columns + ["eta", "ate"]]
        fit = CoxPHFitter().fit(own, endpoint, f"{endpoint}_event", weights_col="ate", robust=True)
        # two covariates: lifelines stops on its own step criterion, ~1e-6 from the maximum
        assert got.log_hr[3, j, 0] == pytest.approx(fit.params_["z"], abs=1e-5), ("conditional", endpoint)


def test_weighted_median_against_repetition():
    rng = np.random.default_rng(7)
    values = rng.exponential(size=(3, 41))
    counts = rng.integers(1, 5, size=(3, 41))
    expected = [np.sort(np.repeat(v, c))[(c.sum() - 1) // 2] for v, c in zip(values, counts)]
    np.testing.assert_array_equal(weighted_median(values, counts.astype(float)), expected)


def test_null_effect_gives_zero_truths_exactly():
    model = exponential_model(beta_pfs=0.0, beta_os=0.0, death=0.02)
    truths = group_truths(model, binary_population(4_000, np.random.default_rng(8)), ADMINISTRATIVE,
                          groups=4, rng=np.random.default_rng(9), conditional=(0.0, 0.0))
    np.testing.assert_allclose(truths.log_hr, 0.0, atol=1e-10)
    np.testing.assert_array_equal(truths.median_treated, truths.median_control)
