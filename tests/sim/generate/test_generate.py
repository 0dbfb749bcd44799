"""The batched cohort generator (sim.generate.cohorts) on the liu2021 scenario and a small one."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from lifelines import KaplanMeierFitter

from analysis.cohort import CohortBatch
from sim.generate.adverse_events import draw_adverse_events
from sim.calibrate.cache import calibrate_cached
from sim.calibrate.targets import calibrate
from sim.generate.censoring import draw_censoring, observe_outcomes
from sim.generate.covariates import draw_covariates
from sim.generate.cohorts import generate_cohorts
from sim.generate.outcomes import covariate_linear_predictor, draw_illness_death
from sim.generate.responses import ResponseThresholds, draw_best_response
from sim.scenario import load_scenario

LIU2021 = Path(__file__).resolve().parents[3] / "scenarios" / "liu2021.toml"


@pytest.fixture(scope="module")
def liu2021():
    """The shipped scenario and its calibration (200,000 patients), from the session's cache
    (tests/conftest.py), which the other liu2021 tests share."""
    scenario = load_scenario(LIU2021)
    return scenario, calibrate_cached(scenario)


def test_batch_shapes_and_invariants(liu2021):
    scenario, calibration = liu2021
    batch = generate_cohorts(scenario, calibration, 50, rng=np.random.default_rng(1))
    assert isinstance(batch, CohortBatch)
    n = sum(arm.size for arm in scenario.arms)
    assert (batch.n_replicates, batch.n_patients) == (50, n)
    assert batch.covariates.shape == (50, n, len(scenario.covariates))
    assert batch.ae_grade.shape == (50, n, len(scenario.adverse_events))
    assert batch.covariate_names == scenario.covariate_names
    assert batch.ae_names == tuple(event.name for event in scenario.adverse_events)
    assert batch.best_response.dtype == np.int8 and batch.ae_grade.dtype == np.int8
    assert batch.patient_id.dtype == np.int64
    np.testing.assert_array_equal(batch.patient_id, np.tile(np.arange(1, n + 1), (50, 1)))
    np.testing.assert_array_equal(batch.treated.sum(axis=1), scenario.treated_arm.size)
    # Enrolment order and the data cut-off.
    assert np.all(np.diff(batch.entry_month, axis=1) >= 0)
    cutoff = scenario.censoring.cutoff_month
    assert np.all(batch.entry_month + batch.os_months <= cutoff + 1e-9)
    assert np.all(batch.pfs_months <= batch.os_months)
    assert np.all(batch.pfs_event[batch.os_event])
    censored_at_cutoff = ~batch.os_event
    np.testing.assert_allclose(batch.entry_month[censored_at_cutoff] + batch.os_months[censored_at_cutoff], cutoff)
    assert np.all(np.isin(batch.best_response, [0, 1, 2, 3]))
    assert np.all((batch.ae_grade >= 0) & (batch.ae_grade <= 4))


def test_same_seed_identical_different_seed_different(liu2021):
    scenario, calibration = liu2021
    first = generate_cohorts(scenario, calibration, 5, rng=np.random.default_rng(7))
    second = generate_cohorts(scenario, calibration, 5, rng=np.random.default_rng(7))
    other = generate_cohorts(scenario, calibration, 5, rng=np.random.default_rng(8))
    for name in ("treated", "covariates", "entry_month", "pfs_months", "pfs_event", "os_months",
                 "os_event", "best_response", "ae_grade", "patient_id"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    assert not np.array_equal(first.pfs_months, other.pfs_months)
    assert not np.array_equal(first.covariates, other.covariates)


def test_matches_per_replicate_reference(liu2021):
    """The stages redone here in the same order, then each replicate sorted in a Python loop."""
    scenario = replace(liu2021[0], response=replace(liu2021[0].response, pfs_link=0.8))
    scenario = replace(scenario, simulation=replace(scenario.simulation, calibration_patients=5_000))
    calibration = calibrate(scenario, rng=np.random.default_rng(2))
    batch = generate_cohorts(scenario, calibration, 6, rng=np.random.default_rng(3))

    rng = np.random.default_rng(3)
    drawn = draw_covariates(scenario, 6, rng=rng)
    eta = covariate_linear_predictor(scenario, drawn.values, drawn.unmeasured)
    latent = draw_illness_death(eta, drawn.treated, calibration.illness_death_model(scenario.outcome), rng=rng)
    follow_up = draw_censoring(scenario.censoring, eta.shape, rng=rng)
    observed = observe_outcomes(latent.pfs_months, latent.os_months, latent.progressed,
                                follow_up.censor_months, scenario.outcome.assessment)
    prognosis = eta - np.where(drawn.treated, calibration.treated_mean_linear_predictor,
                               calibration.control_mean_linear_predictor)
    thresholds = ResponseThresholds(tuple(a.name for a in scenario.arms), np.array(calibration.response_thresholds))
    response = draw_best_response(scenario, drawn.treated, prognosis, rng=rng, thresholds=thresholds,
                                  pfs_months=latent.pfs_months)
    grades = draw_adverse_events(scenario, drawn.treated, rng=rng)
    for r in range(6):
        order = np.argsort(follow_up.entry_month[r])
        np.testing.assert_array_equal(batch.treated[r], drawn.treated[r][order])
        np.testing.assert_array_equal(batch.covariates[r], drawn.values[r][order])
        np.testing.assert_array_equal(batch.entry_month[r], follow_up.entry_month[r][order])
        np.testing.assert_array_equal(batch.pfs_months[r], observed.pfs_months[r][order])
        np.testing.assert_array_equal(batch.os_event[r], observed.os_event[r][order])
        np.testing.assert_array_equal(batch.best_response[r], response[r][order])
        np.testing.assert_array_equal(batch.ae_grade[r], grades[r][order])
    # The calibrated thresholds keep each arm's response rates at target despite the link.
    assert len(calibration.response_thresholds) == len(scenario.arms)


def km_median(times, events):
    return float(KaplanMeierFitter().fit(times, events).median_survival_time_)


def km_at(times, events, at):
    """lifelines' Kaplan-Meier S(at) and its Greenwood SE."""
    fitter = KaplanMeierFitter().fit(times, events)
    table = fitter.event_table.loc[fitter.event_table.index <= at]
    at_risk, deaths = table["at_risk"].to_numpy(float), table["observed"].to_numpy(float)
    survival = float(fitter.survival_function_at_times(at).iloc[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(deaths > 0, deaths / (at_risk * (at_risk - deaths)), 0.0)
    return survival, survival * float(np.sqrt(terms.sum()))


def check_km_medians(scenario, calibration, n_treated, *, seed):
    """PFS and OS medians within Monte Carlo error: the KM curve at each target median is 1/2
    within 4 SEs (Greenwood, and the calibration sample's own binomial error). OS medians also
    within 3%; the PFS median (on the scan grid) lies in the scan interval holding the target
    (between scans the curve falls only by deaths, so the median itself jumps)."""
    replicates = -(-n_treated // scenario.treated_arm.size)
    batch = generate_cohorts(scenario, calibration, replicates, rng=np.random.default_rng(seed))
    outcome = scenario.outcome
    interval = outcome.assessment.interval_months
    calibration_variance = 0.25 / calibration.n_patients
    targets = {True: (outcome.treatment.pfs_median, outcome.treatment.os_median),
               False: (outcome.control_pfs_median, outcome.control_os_median)}
    for arm, (pfs_target, os_target) in targets.items():
        chosen = batch.treated == arm
        for time, event, target in ((batch.pfs_months, batch.pfs_event, pfs_target),
                                    (batch.os_months, batch.os_event, os_target)):
            at_target, se = km_at(time[chosen], event[chosen], target)
            assert abs(at_target - 0.5) < 4 * np.sqrt(se**2 + calibration_variance), (
                arm, target, at_target, se)
        pfs = km_median(batch.pfs_months[chosen], batch.pfs_event[chosen])
        overall = km_median(batch.os_months[chosen], batch.os_event[chosen])
        scans = np.floor(pfs_target / interval)
        assert scans * interval <= pfs <= (scans + 1) * interval, (arm, pfs, pfs_target)
        assert abs(overall / os_target - 1) < 0.03, (arm, overall, os_target)


def test_km_medians_per_arm_over_1000_cohorts(liu2021):
    check_km_medians(*liu2021, 35_000, seed=4)


@pytest.mark.slow
def test_km_medians_per_arm_full(tmp_path):
    scenario = load_scenario(LIU2021)
    calibration = calibrate_cached(scenario, cache_dir=tmp_path)
    check_km_medians(scenario, calibration, 100_000, seed=5)


def test_progressions_lie_on_the_scan_grid_over_1000_cohorts(liu2021):
    """liu2021 scans every 1.84 months: every PFS event is a scan or a death at its exact time
    (then PFS = OS with an OS event), every censored PFS time is a scan done (or 0)."""
    scenario, calibration = liu2021
    batch = generate_cohorts(scenario, calibration, 1000, rng=np.random.default_rng(12))
    interval = scenario.outcome.assessment.interval_months
    scans = batch.pfs_months / interval
    on_grid = np.abs(scans - np.round(scans)) < 1e-9
    death = batch.os_event & (batch.pfs_months == batch.os_months)
    assert np.all(on_grid | (batch.pfs_event & death))
    assert np.all(on_grid[~batch.pfs_event])
    # Ties: most PFS events share a scan date (the others are deaths, a third of them after a
    # progression not yet scanned).
    assert np.mean(on_grid[batch.pfs_event]) > 0.5


def test_response_agrees_with_pfs_over_1000_cohorts(liu2021):
    """Best response PD exactly when a PFS event is recorded by the first scan (every liu2021
    patient is followed past it: accrual ends 3 months before the cut-off); per-arm PD rates
    within 4 MC SEs (binomial over the arm's patients plus the calibration sample's error)."""
    scenario, calibration = liu2021
    batch = generate_cohorts(scenario, calibration, 1000, rng=np.random.default_rng(13))
    first_scan = scenario.outcome.assessment.interval_months
    assert np.all(batch.entry_month <= scenario.censoring.cutoff_month - first_scan)
    pd = batch.best_response == 3
    by_first_scan = batch.pfs_event & (batch.pfs_months <= first_scan + 1e-9)
    np.testing.assert_array_equal(pd, by_first_scan)
    for arm in scenario.arms:
        chosen = batch.treated == arm.treated
        target = scenario.response.probabilities[arm.name][3]
        se = np.sqrt(target * (1 - target) * (1 / chosen.sum() + 1 / calibration.n_patients))
        assert abs(pd[chosen].mean() - target) < 4 * se, (arm.name, pd[chosen].mean(), target)


def test_response_rates_stay_at_target_with_a_prognosis_link(liu2021):
    """Thresholds calibrated once on the calibration sample keep each arm's marginal rates."""
    scenario = replace(liu2021[0], response=replace(liu2021[0].response, pfs_link=1.0))
    scenario = replace(scenario, simulation=replace(scenario.simulation, calibration_patients=50_000))
    calibration = calibrate(scenario, rng=np.random.default_rng(6))
    batch = generate_cohorts(scenario, calibration, 600, rng=np.random.default_rng(7))
    for arm in scenario.arms:
        chosen = batch.treated == arm.treated
        n = chosen.sum()
        for code, target in enumerate(scenario.response.probabilities[arm.name]):
            rate = np.mean(batch.best_response[chosen] == code)
            bound = 4 * np.sqrt(target * (1 - target) * (1 / n + 1 / 50_000)) + 1e-12
            assert abs(rate - target) < bound, (arm.name, code, rate, target)
    # The link is really on: within an arm, worse prognosis goes with more progressive disease.
    ecog = scenario.covariate_names.index("ecog")
    control = ~batch.treated
    pd_ecog1 = np.mean(batch.best_response[control & (batch.covariates[..., ecog] == 1)] == 3)
    pd_ecog0 = np.mean(batch.best_response[control & (batch.covariates[..., ecog] == 0)] == 3)
    assert pd_ecog1 > pd_ecog0
