"""Calibration, true estimands and their cache (sim.calibrate.targets, sim.calibrate.cache).

Medians are checked with lifelines' Kaplan-Meier on fresh censored samples; marginal hazard
ratios against closed forms and against the Cox partial-likelihood limit computed by numerical
integration (an independent route).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from lifelines import KaplanMeierFitter
from scipy import integrate, optimize

from sim.calibrate.cache import calibrate_cached, true_estimands_cached
from sim.calibrate.estimands import group_truths, true_estimands
from sim.calibrate.populations import TruthPopulation
from sim.calibrate.keys import calibration_key, truth_key
from sim.calibrate.profiles import draw_arm_profiles
from sim.calibrate.targets import EarlyWindow, calibrate, calibrate_profiles
from sim.generate.censoring import apply_censoring, draw_censoring, recorded_pfs
from sim.errors import ScenarioError
from sim.generate.hazards import unit_cumulative_hazard
from sim.generate.outcomes import IllnessDeathModel, draw_illness_death
from sim.scenario import load_scenario
from sim.scenario.model import (
    Assessment,
    Censoring,
    Outcome,
    Selection,
    SimulationSettings,
    Transition,
    TreatmentEffect,
    Unmeasured,
)
from tests.sim.generate.test_outcomes import small_scenario

WEIBULL = Transition(baseline="weibull", shape=1.3)
PIECEWISE = Transition(baseline="piecewise", breaks=(3.0, 8.0), relative_rates=(0.6, 1.0, 1.4))


def outcome_of(*, progression=WEIBULL, death_before=WEIBULL, death_after=Transition(),
               treatment=None, share=0.2, **covariates):
    return Outcome(
        control_pfs_median=6.1, control_os_median=9.6, death_before_progression=share,
        progression=progression, death_before=death_before, death_after=death_after,
        treatment=treatment or TreatmentEffect(mode="target_medians", pfs_median=10.2, os_median=14.1),
        covariate_log_hr=covariates,
    )


def km_median(times, events):
    return float(KaplanMeierFitter().fit(times, events).median_survival_time_)


def check_arm_medians(scenario, calibration, n_patients, *, seed, tolerance=0.03):
    """Fresh profiles, outcomes and design censoring per arm; KM medians within ``tolerance``."""
    rng = np.random.default_rng(seed)
    model = calibration.illness_death_model(scenario.outcome)
    targets = {
        "control": (scenario.outcome.control_pfs_median, scenario.outcome.control_os_median),
        "treated": (scenario.outcome.treatment.pfs_median, scenario.outcome.treatment.os_median),
    }
    profiles = draw_arm_profiles(scenario, n_patients, rng=rng)
    for group, (pfs_target, os_target) in targets.items():
        eta = getattr(profiles, group)
        latent = draw_illness_death(eta, np.full(eta.shape, group == "treated"), model, rng=rng)
        censor = draw_censoring(scenario.censoring, eta.shape, rng=rng).censor_months
        observed = apply_censoring(latent.pfs_months, latent.os_months, censor)
        pfs = km_median(observed.pfs_months, observed.pfs_event)
        overall = km_median(observed.os_months, observed.os_event)
        assert abs(pfs / pfs_target - 1) < tolerance, (group, pfs, pfs_target)
        assert abs(overall / os_target - 1) < tolerance, (group, overall, os_target)


# ------------------------------------------------------------------------------------------
# Calibration


def confounded_scenario(n_calibration, *, outcome=None, **changes):
    outcome = outcome or outcome_of(male=0.3, bclc=(0.0, 0.4, 1.0), age=0.02, afp=0.0005)
    return small_scenario(
        outcome=outcome,
        censoring=Censoring(accrual_months=24.0, cutoff_month=60.0, dropout_rate=0.01),
        simulation=SimulationSettings(calibration_patients=n_calibration, truth_patients=n_calibration),
        unmeasured=Unmeasured(prevalence={"combination": 0.2, "sorafenib": 0.5}, log_hr=0.6),
        **changes,
    )


def test_calibrated_medians_hit_targets_reduced():
    scenario = confounded_scenario(50_000)
    calibration = calibrate(scenario, rng=np.random.default_rng(1))
    # On its own sample the root finder is (nearly) exact.
    assert calibration.control_pfs_median == pytest.approx(6.1, rel=1e-6)
    assert calibration.control_os_median == pytest.approx(9.6, rel=1e-6)
    assert calibration.treated_pfs_median == pytest.approx(10.2, rel=1e-6)
    assert calibration.treated_os_median == pytest.approx(14.1, rel=1e-6)
    assert abs(calibration.control_death_share - 0.2) < 4 * math.sqrt(0.16 / 50_000)
    check_arm_medians(scenario, calibration, 50_000, seed=2)


@pytest.mark.slow
@pytest.mark.parametrize("progression, death_before", [(WEIBULL, WEIBULL), (PIECEWISE, PIECEWISE), (WEIBULL, PIECEWISE)])
def test_calibrated_medians_hit_targets_full(progression, death_before):
    outcome = outcome_of(progression=progression, death_before=death_before,
                         death_after=Transition(baseline="weibull", shape=0.9),
                         treatment=TreatmentEffect(mode="target_medians", pfs_median=10.2,
                                                   os_median=14.1, delay_months=1.5),
                         male=0.3, bclc=(0.0, 0.4, 1.0), age=0.02, afp=0.0005)
    scenario = confounded_scenario(200_000, outcome=outcome)
    calibration = calibrate(scenario, rng=np.random.default_rng(3))
    check_arm_medians(scenario, calibration, 100_000, seed=4)


def test_equal_shapes_give_exact_death_share_ratio():
    outcome = outcome_of(share=0.3)
    calibration = calibrate_profiles(outcome, np.zeros(20_000), np.zeros(20_000), rng=np.random.default_rng(5))
    assert calibration.death_before_scale / calibration.progression_scale == pytest.approx(0.3 / 0.7, rel=1e-12)


def test_different_shapes_fix_cumulative_hazard_share_at_the_median():
    outcome = outcome_of(progression=WEIBULL, death_before=PIECEWISE, share=0.25)
    calibration = calibrate_profiles(outcome, np.zeros(20_000), np.zeros(20_000), rng=np.random.default_rng(6))
    progression_part = calibration.progression_scale * unit_cumulative_hazard(WEIBULL, np.array(6.1))
    death_part = calibration.death_before_scale * unit_cumulative_hazard(PIECEWISE, np.array(6.1))
    assert death_part / (progression_part + death_part) == pytest.approx(0.25, rel=1e-10)
    assert 0.15 < calibration.control_death_share < 0.35


@pytest.mark.parametrize("hazard_ratio", [1.0, 0.7])
def test_hazard_ratio_mode_is_exact(hazard_ratio):
    outcome = outcome_of(treatment=TreatmentEffect(mode="hazard_ratio", hazard_ratio=hazard_ratio))
    calibration = calibrate_profiles(outcome, np.zeros(10_000), np.full(10_000, 0.3), rng=np.random.default_rng(7))
    assert calibration.log_hr_pfs == math.log(hazard_ratio)
    assert calibration.log_hr_os == math.log(hazard_ratio)
    if hazard_ratio == 1.0:
        assert calibration.log_hr_pfs == 0.0 and calibration.log_hr_os == 0.0


def scanned_outcome(**changes):
    return replace(outcome_of(**changes), assessment=Assessment(interval_months=1.84))


def test_early_window_hits_early_rates_and_medians():
    """PD-like rates 0.31 / 0.28 by the first scan and the medians together: the calibration
    sample hits them (rates to its 1/n grain, recorded-PFS S(median) = 1/2, OS medians), and a
    fresh sample within 4 MC SEs; the early hazard rises above the baseline (α > 0)."""
    n = 40_000
    rng = np.random.default_rng(21)
    eta_control, eta_treated = rng.normal(0.0, 0.5, n), rng.normal(-0.1, 0.5, n)
    early = EarlyWindow(months=1.84, control_rate=0.28, treated_rate=0.31)
    calibration = calibrate_profiles(scanned_outcome(), eta_control, eta_treated,
                                     rng=np.random.default_rng(22), early=early)
    assert calibration.control_early_pfs_rate == pytest.approx(0.28, abs=2 / n)
    assert calibration.treated_early_pfs_rate == pytest.approx(0.31, abs=2 / n)
    assert calibration.control_early_log_hr > 0 and calibration.treated_early_log_hr > 0
    assert calibration.control_os_median == pytest.approx(9.6, rel=1e-6)
    assert calibration.treated_os_median == pytest.approx(14.1, rel=1e-6)
    model = calibration.illness_death_model(scanned_outcome())
    for eta, arm, rate, median in ((eta_control, False, 0.28, 6.1), (eta_treated, True, 0.31, 10.2)):
        times = draw_illness_death(eta, np.full(n, arm), model, rng=np.random.default_rng(23))
        recorded = recorded_pfs(times.pfs_months, times.os_months, times.progressed,
                                Assessment(interval_months=1.84))
        bound = 4 * math.sqrt(2 * rate * (1 - rate) / n)
        assert abs(np.mean(times.pfs_months <= 1.84) - rate) < bound
        assert abs(np.mean(recorded > median) - 0.5) < 4 * math.sqrt(2 * 0.25 / n)


def test_early_window_in_hazard_ratio_mode_keeps_the_null():
    """Only the control arm's window is calibrated; the HR acts in it too, so HR = 1 gives
    the treated arm the control arm's hazards at every time."""
    early = EarlyWindow(months=1.84, control_rate=0.28, treated_rate=0.4)
    for hazard_ratio in (1.0, 0.6):
        outcome = scanned_outcome(treatment=TreatmentEffect(mode="hazard_ratio",
                                                            hazard_ratio=hazard_ratio))
        calibration = calibrate_profiles(outcome, np.zeros(10_000), np.zeros(10_000),
                                         rng=np.random.default_rng(24), early=early)
        assert calibration.treated_early_log_hr - calibration.control_early_log_hr == (
            pytest.approx(math.log(hazard_ratio), abs=1e-12))
    assert calibration.control_early_pfs_rate == pytest.approx(0.28, abs=2e-4)


def test_unreachable_early_rate_names_the_field():
    # Half the control arm with a PFS event by 1.84 months leaves no room for a 6.1 median.
    early = EarlyWindow(months=1.84, control_rate=0.6, treated_rate=0.3,
                        control_field="response.sorafenib")
    with pytest.raises(ScenarioError, match="outcome.control_pfs_median"):
        calibrate_profiles(scanned_outcome(), np.zeros(5_000), np.zeros(5_000),
                           rng=np.random.default_rng(25), early=early)


def test_hazard_ratios_per_transition():
    """hazard_ratio mode: each transition its own HR (unset ones take hazard_ratio); the
    treated arm's cause-specific cumulative hazards (Nelson–Aalen of the latent times) follow
    them: no covariates, exponential baselines, so H01(t) = λ01 HR01 t and H02 = λ02 HR02 t."""
    effect = TreatmentEffect(mode="hazard_ratio", hazard_ratio=0.6,
                             death_before_hazard_ratio=1.0, death_after_hazard_ratio=0.8)
    outcome = outcome_of(progression=Transition(), death_before=Transition(), treatment=effect)
    calibration = calibrate_profiles(outcome, np.zeros(20_000), np.zeros(20_000),
                                     rng=np.random.default_rng(26))
    assert calibration.log_hr_pfs == math.log(0.6)
    assert calibration.log_hr_death_before == 0.0
    assert calibration.log_hr_os == math.log(0.8)
    model = calibration.illness_death_model(outcome)
    n = 60_000
    times = draw_illness_death(np.zeros(n), np.ones(n, bool), model, rng=np.random.default_rng(27))
    rates = {True: calibration.progression_scale * 0.6, False: calibration.death_before_scale}
    order = np.argsort(times.pfs_months)
    at_risk = n - np.arange(n)
    for cause, rate in rates.items():
        cumulative = np.cumsum((times.progressed[order] == cause) / at_risk)
        variance = np.cumsum((times.progressed[order] == cause) / at_risk**2)
        for t in (2.0, 5.0, 10.0):
            k = np.searchsorted(times.pfs_months[order], t, side="right") - 1
            assert abs(cumulative[k] - rate * t) < 4 * math.sqrt(variance[k]), (cause, t)
    # Unset per-transition HRs are hazard_ratio: bitwise the one-HR model.
    plain = calibrate_profiles(outcome_of(treatment=TreatmentEffect(mode="hazard_ratio",
                                                                    hazard_ratio=0.6)),
                               np.zeros(2_000), np.zeros(2_000), rng=np.random.default_rng(28))
    assert plain.log_hr_death_before == plain.log_hr_pfs == plain.log_hr_os == math.log(0.6)


def test_fixed_death_before_hr_with_target_medians():
    """target_medians with death_before_hazard_ratio = 1: the calibrated PFS log-HR acts on h01
    alone and the medians are still hit; the treated death share rises above the control's."""
    effect = TreatmentEffect(mode="target_medians", pfs_median=10.2, os_median=14.1,
                             death_before_hazard_ratio=1.0)
    outcome = outcome_of(treatment=effect)
    calibration = calibrate_profiles(outcome, np.zeros(20_000), np.zeros(20_000),
                                     rng=np.random.default_rng(29))
    assert calibration.log_hr_death_before == 0.0
    assert calibration.treated_pfs_median == pytest.approx(10.2, rel=1e-6)
    assert calibration.treated_os_median == pytest.approx(14.1, rel=1e-6)
    tied = calibrate_profiles(outcome_of(), np.zeros(20_000), np.zeros(20_000),
                              rng=np.random.default_rng(29))
    assert calibration.log_hr_pfs < tied.log_hr_pfs < 0      # h01 carries the whole PFS effect
    assert tied.log_hr_death_before == tied.log_hr_pfs


def test_calibration_is_deterministic_for_a_seed():
    scenario = confounded_scenario(5_000)
    first = calibrate(scenario, rng=np.random.default_rng(8))
    second = calibrate(scenario, rng=np.random.default_rng(8))
    assert first == second
    assert first.key == calibration_key(scenario)


def test_unreachable_targets_name_the_field():
    short_os = replace(outcome_of(), control_os_median=5.0)
    with pytest.raises(ScenarioError, match="outcome.control_os_median"):
        calibrate_profiles(short_os, np.zeros(5_000), np.zeros(5_000), rng=np.random.default_rng(9))
    short_treated_os = outcome_of(treatment=TreatmentEffect(mode="target_medians", pfs_median=10.2, os_median=9.0))
    with pytest.raises(ScenarioError, match="outcome.treatment.os_median"):
        calibrate_profiles(short_treated_os, np.zeros(5_000), np.zeros(5_000), rng=np.random.default_rng(9))
    # A delay of 8 months: half the treated progress before the effect starts if the control
    # median is 6.1, so no HR reaches a PFS median of 10.
    delayed = outcome_of(treatment=TreatmentEffect(mode="target_medians", pfs_median=10.0, os_median=14.0,
                                                   delay_months=8.0))
    with pytest.raises(ScenarioError, match="outcome.treatment.pfs_median"):
        calibrate_profiles(delayed, np.zeros(5_000), np.zeros(5_000), rng=np.random.default_rng(9))


def test_selection_mode_calibrates_over_the_population():
    scenario = confounded_scenario(
        20_000, mode="selection",
        selection=Selection(patients=50, intercept=-0.5, log_odds={"male": 0.5, "age": 0.03}),
    )
    scenario = replace(scenario, unmeasured=Unmeasured(prevalence={"population": 0.3}, log_hr=0.5))
    calibration = calibrate(scenario, rng=np.random.default_rng(10))
    assert calibration.control_pfs_median == pytest.approx(6.1, rel=1e-6)
    assert calibration.treated_os_median == pytest.approx(14.1, rel=1e-6)
    assert calibration.treated_mean_linear_predictor != calibration.control_mean_linear_predictor


def test_arm_profiles_follow_each_arm():
    scenario = small_scenario(covariate_log_hr={"age": 0.1})
    profiles = draw_arm_profiles(scenario, 30_000, rng=np.random.default_rng(18))
    assert profiles.control.shape == profiles.treated.shape == (30_000,)
    # η = 0.1 (age - 55): treated age ~ N(50, 10), control ~ N(54, 9).
    assert abs(profiles.treated.mean() - (-0.5)) < 4 * 1.0 / np.sqrt(30_000)
    assert abs(profiles.control.mean() - (-0.1)) < 4 * 0.9 / np.sqrt(30_000)
    assert profiles.treated.std() == pytest.approx(1.0, rel=0.03)


def test_keys_follow_the_content_that_matters():
    scenario = confounded_scenario(5_000)
    assert calibration_key(scenario) == calibration_key(replace(scenario, name="other", title="x"))
    assert calibration_key(scenario) != calibration_key(
        replace(scenario, outcome=replace(scenario.outcome, control_pfs_median=6.2)))
    # Censoring changes the truth, not the calibration.
    censored = replace(scenario, censoring=Censoring(accrual_months=24.0, cutoff_month=40.0))
    assert calibration_key(scenario) == calibration_key(censored)
    assert truth_key(scenario) != truth_key(censored)
    # The scan schedule changes both (recorded PFS is what calibration and truth use).
    scanned = replace(scenario, outcome=replace(scenario.outcome,
                                                assessment=Assessment(interval_months=1.84)))
    rescanned = replace(scenario, outcome=replace(scenario.outcome,
                                                  assessment=Assessment(interval_months=2.0)))
    assert len({calibration_key(s) for s in (scenario, scanned, rescanned)}) == 3
    assert len({truth_key(s) for s in (scenario, scanned, rescanned)}) == 3


# ------------------------------------------------------------------------------------------
# True estimands


def exponential_model(*, rate=0.1, death=0.0, after=0.2, beta_pfs=-0.5, beta_os=-0.5, delay=0.0):
    return IllnessDeathModel(Transition(), Transition(), Transition(), rate, death, after,
                             log_hr_pfs=beta_pfs, log_hr_os=beta_os, delay_months=delay)


ADMINISTRATIVE = Censoring(accrual_months=24.0, cutoff_month=30.0)


def cox_limit(prevalence, gamma, rate, beta, censoring):
    """Limit of the marginal Cox log-HR for two arms of equal size: treated profiles with a
    binary covariate x ~ Bern(prevalence), T | x, a ~ Exp(rate e^{γx + aβ}), C = cutoff − E,
    E ~ U(0, A). Solves ∫ G(t) [f1(t) − e^b S1/(e^b S1 + S0) (f1 + f0)] dt = 0 by quadrature."""
    weights = np.array([1 - prevalence, prevalence])

    def arm(t, a):
        rates = rate * np.exp(gamma * np.array([0.0, 1.0]) + a * beta)
        survival = weights * np.exp(-rates * t)
        return survival.sum(), (survival * rates).sum()

    def follow_up(t):
        return min(max((censoring.cutoff_month - t) / censoring.accrual_months, 0.0), 1.0)

    def score(b):
        def integrand(t):
            s0, f0 = arm(t, 0)
            s1, f1 = arm(t, 1)
            return follow_up(t) * (f1 - math.exp(b) * s1 / (math.exp(b) * s1 + s0) * (f1 + f0))

        start = censoring.cutoff_month - censoring.accrual_months
        return integrate.quad(integrand, 0.0, start, epsabs=1e-13)[0] + integrate.quad(
            integrand, start, censoring.cutoff_month, epsabs=1e-13)[0]

    return optimize.brentq(score, -5.0, 5.0, xtol=1e-12)


def att_estimands(model, eta, censoring, *, rng):
    """The ATT truths of treated profiles ``eta`` (one group; no ATE/ATO, conditional skipped)."""
    half = np.full(eta.size, 0.5)
    population = TruthPopulation(eta, eta, half, half, 0.5)
    truths = group_truths(model, population, censoring, groups=1, rng=rng, conditional=(0.0, 0.0),
                          marginal=("att",))
    return SimpleNamespace(marginal_log_hr_pfs=truths.log_hr[0, 0, 0], marginal_log_hr_os=truths.log_hr[0, 1, 0],
                           pfs_median_treated=truths.median_treated[0, 0, 0],
                           pfs_median_under_control=truths.median_control[0, 0, 0])


def test_marginal_equals_conditional_without_covariates():
    """No covariates: PFS is PH → marginal = conditional; with h12 = h02 (exponential, Markov)
    OS is exponential too → marginal OS log-HR = β."""
    model = exponential_model(rate=0.09, death=0.03, after=0.03, beta_pfs=-0.5, beta_os=-0.5)
    estimate = att_estimands(model, np.zeros(100_000), ADMINISTRATIVE, rng=np.random.default_rng(11))
    assert abs(math.exp(estimate.marginal_log_hr_pfs) / math.exp(-0.5) - 1) < 0.01
    assert abs(math.exp(estimate.marginal_log_hr_os) / math.exp(-0.5) - 1) < 0.01
    assert estimate.pfs_median_treated == pytest.approx(math.log(2) / (0.12 * math.exp(-0.5)), rel=0.02)
    assert estimate.pfs_median_under_control == pytest.approx(math.log(2) / 0.12, rel=0.02)


def test_null_effect_gives_zero_marginal_log_hr():
    model = exponential_model(beta_pfs=0.0, beta_os=0.0, death=0.02)
    eta = np.random.default_rng(12).normal(size=20_000)
    estimate = att_estimands(model, eta, ADMINISTRATIVE, rng=np.random.default_rng(13))
    assert estimate.marginal_log_hr_pfs == pytest.approx(0.0, abs=1e-10)
    assert estimate.marginal_log_hr_os == pytest.approx(0.0, abs=1e-10)


def check_cox_limit(censoring, n_profiles, *, prevalence=0.4, gamma=1.6, rate=0.1, beta=-0.7):
    expected = cox_limit(prevalence, gamma, rate, beta, censoring)
    assert abs(expected - beta) > 0.05  # non-collapsibility is visible
    x = np.random.default_rng(14).random(n_profiles) < prevalence
    estimate = att_estimands(exponential_model(rate=rate, beta_pfs=beta), gamma * x, censoring,
                             rng=np.random.default_rng(15))
    assert abs(math.exp(estimate.marginal_log_hr_pfs - expected) - 1) < 0.01


@pytest.mark.parametrize("censoring", [ADMINISTRATIVE, Censoring(accrual_months=24.0, cutoff_month=1e4)])
def test_marginal_log_hr_matches_cox_limit_binary_covariate(censoring):
    check_cox_limit(censoring, 200_000)


@pytest.mark.slow
def test_marginal_log_hr_matches_cox_limit_full():
    check_cox_limit(Censoring(accrual_months=24.0, cutoff_month=27.0), 1_000_000,
                    prevalence=0.7, gamma=-1.2, beta=0.5)


@pytest.mark.slow
def test_liu2021_truth_full_size(tmp_path):
    scenario = load_scenario(Path(__file__).resolve().parents[3] / "scenarios" / "liu2021.toml")
    calibration = calibrate_cached(scenario, cache_dir=tmp_path)
    truth = true_estimands_cached(scenario, calibration, cache_dir=tmp_path)
    assert truth.n_patients == scenario.simulation.truth_patients
    assert truth.pfs_median_treated == pytest.approx(10.2, rel=0.02)
    assert truth.pfs_median_control == pytest.approx(6.1, rel=0.02)
    assert truth.os_median_treated == pytest.approx(14.1, rel=0.02)
    assert truth.os_median_control == pytest.approx(9.6, rel=0.02)
    assert truth.marginal_log_hr_pfs < 0


def test_true_estimands_of_a_scenario():
    scenario = confounded_scenario(20_000)
    calibration = calibrate(scenario, rng=np.random.default_rng(16))
    truth = true_estimands(scenario, calibration, rng=np.random.default_rng(17))
    # Weibull PFS transitions with one β, no delay, no scans: proportional given η.
    assert truth.conditional_source_pfs == "beta" and truth.conditional_source_os == "cox_eta_limit"
    assert truth.conditional_log_hr_pfs == calibration.log_hr_pfs
    assert truth.data_generating_log_hr_os == calibration.log_hr_os
    assert truth.key == truth_key(scenario)
    assert truth.groups == 20 and all(0 < m < 0.05 for m in truth.log_hr_mcse[0])
    # Per-arm truths are the calibration targets (fresh sample: within MC error, ~1.5% here).
    assert truth.pfs_median_treated == pytest.approx(10.2, rel=0.04)
    assert truth.pfs_median_control == pytest.approx(6.1, rel=0.04)
    assert truth.os_median_control == pytest.approx(9.6, rel=0.04)
    # The treated arm has less U (worse prognosis) than control: better counterfactual control.
    assert truth.pfs_median_treated_under_control > truth.pfs_median_control
    assert truth.marginal_log_hr_pfs < 0
    variables = truth.as_variables()
    assert variables["true_log_hr_marginal"] == (truth.marginal_log_hr_pfs, truth.marginal_log_hr_os)


# ------------------------------------------------------------------------------------------
# Cache


def test_cache_hit_is_instant_and_equal(tmp_path):
    scenario = confounded_scenario(10_000)
    first = calibrate_cached(scenario, cache_dir=tmp_path)
    started = time.perf_counter()
    second = calibrate_cached(scenario, cache_dir=tmp_path)
    assert time.perf_counter() - started < 0.2
    assert first == second
    truth = true_estimands_cached(scenario, first, cache_dir=tmp_path)
    started = time.perf_counter()
    again = true_estimands_cached(scenario, cache_dir=tmp_path)
    assert time.perf_counter() - started < 0.2
    assert truth == again
    assert len(list(tmp_path.glob("*.json"))) == 2
    assert not list(tmp_path.glob("*.tmp"))


def test_corrupt_cache_entry_is_recomputed(tmp_path, monkeypatch):
    scenario = confounded_scenario(5_000)
    monkeypatch.setenv("PSMSIM_CACHE_DIR", str(tmp_path))
    first = calibrate_cached(scenario)
    (path,) = tmp_path.glob("calibration-*.json")
    for corrupt in ("{not json", json.dumps({"key": first.key}), json.dumps({**json.loads(path.read_text()), "log_hr_pfs": "x"})):
        path.write_text(corrupt)
        assert calibrate_cached(scenario) == first
        assert json.loads(path.read_text())["log_hr_pfs"] == first.log_hr_pfs
