"""Designs built from a scenario (sim/scenario/designs.py): the psm design at the study's own
size is the study; the rct design draws both arms from the pooled population; follow-up and
accrual rate change exactly the censoring fields; impossible designs give one line."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from sim.calibrate.cache import calibrate_cached
from sim.generate.cohorts import generate_cohorts
from sim.generate.covariates import draw_covariates
from sim.scenario import load_scenario, parse_scenario
from sim.scenario.designs import DesignError, design_scenario, split_patients

SCENARIOS = Path(__file__).resolve().parents[3] / "scenarios"
LIU = SCENARIOS / "liu2021.toml"


@pytest.fixture(scope="module")
def liu():
    return load_scenario(LIU)


def _same_cohorts(first, second, scenario, replicates=20):
    calibration = calibrate_cached(scenario)
    a = generate_cohorts(first, calibration, replicates, rng=np.random.default_rng(1))
    b = generate_cohorts(second, calibration, replicates, rng=np.random.default_rng(1))
    return all(np.array_equal(getattr(a, name), getattr(b, name)) for name in (
        "treated", "covariates", "entry_month", "pfs_months", "pfs_event", "os_months",
        "os_event", "best_response", "ae_grade"))


def test_psm_design_at_the_study_size_is_the_study(liu):
    design = design_scenario(liu, design="psm", patients=100)
    assert [arm.size for arm in design.arms] == [35, 65]
    assert _same_cohorts(liu, design, liu)
    # Its text is a scenario file: read back, it is the same scenario.
    assert parse_scenario(design.source_text).covariates == design.covariates


def test_psm_design_scales_the_arms_and_keeps_their_marginals(liu):
    design = design_scenario(liu, design="psm", patients=301)
    assert [arm.size for arm in design.arms] == [105, 196]
    for original, scaled in zip(liu.covariates, design.covariates):
        for arm in liu.arms:
            a, b = original.marginals[arm.name], scaled.marginals[arm.name]
            for field in ("p", "probabilities", "mean", "sd", "mu", "sigma", "sigma_upper"):
                assert getattr(a, field) == pytest.approx(getattr(b, field))
    for arm in liu.arms:
        np.testing.assert_allclose(design.response.probabilities[arm.name],
                                   liu.response.probabilities[arm.name])
    assert [e.any_grade for e in design.adverse_events] == [e.any_grade for e in liu.adverse_events]
    assert design.adverse_event_dependence.any_grade == liu.adverse_event_dependence.any_grade  # 33/35, 59/65
    assert design.outcome == liu.outcome and design.censoring == liu.censoring


def test_rct_design_draws_both_arms_from_the_pooled_study_population(liu):
    design = design_scenario(liu, design="rct", patients=250)
    treated, control = design.treated_arm, design.control_arm
    assert (treated.size, control.size) == (125, 125) and design.mode == "table"
    for covariate in design.covariates:
        assert covariate.marginals[treated.name] == covariate.marginals[control.name]
    by_name = {c.name: c for c in design.covariates}
    assert by_name["male"].marginals[treated.name].p == pytest.approx((32 + 54) / 100)
    assert by_name["age"].marginals[treated.name].target["mean"] == pytest.approx(
        0.35 * 53.0 + 0.65 * 53.2)
    # Pooled SD of the mixture: sum w (sd^2 + mean^2) - mean^2.
    pooled_var = 0.35 * (10.3**2 + 53.0**2) + 0.65 * (11.6**2 + 53.2**2) - 53.13**2
    assert by_name["age"].marginals[treated.name].target["sd"] == pytest.approx(math.sqrt(pooled_var))
    assert design.response.probabilities == liu.response.probabilities
    assert design.outcome == liu.outcome and design.correlation == liu.correlation


def test_rct_quartiles_are_those_of_the_pooled_arms(liu):
    """The median (IQR) covariates of the RCT population: quartiles of a large sample of the
    study's own patients (both arms, 35:65), drawn by the study's generator."""
    design = design_scenario(liu, design="rct", patients=200)
    drawn = draw_covariates(liu, 3000, rng=np.random.default_rng(2))      # 300,000 patients
    for index, covariate in enumerate(liu.covariates):
        if covariate.kind != "lognormal":
            continue
        sample = drawn.values[..., index].ravel()
        target = design.covariates[index].marginals[design.treated_arm.name].target
        quartiles = np.quantile(sample, [0.25, 0.5, 0.75])
        np.testing.assert_allclose(quartiles, [target["q1"], target["median"], target["q3"]],
                                   rtol=0.01)


def test_rct_design_has_no_confounding(liu):
    design = design_scenario(liu, design="rct", patients=200)
    drawn = draw_covariates(design, 1000, rng=np.random.default_rng(3))
    treated_mean = drawn.values[drawn.treated].mean(axis=0)
    control_mean = drawn.values[~drawn.treated].mean(axis=0)
    spread = drawn.values.reshape(-1, drawn.values.shape[-1]).std(axis=0)
    assert np.all(np.abs(treated_mean - control_mean) / spread < 0.02)


def test_rct_from_a_selection_scenario_uses_its_population():
    scenario = load_scenario(SCENARIOS / "selection_example.toml")
    design = design_scenario(scenario, design="rct", patients=120, allocation=2 / 3)
    assert design.mode == "table" and design.selection is None
    assert (design.treated_arm.size, design.control_arm.size) == (80, 40)
    for original, new in zip(scenario.covariates, design.covariates):
        for arm in design.arms:
            assert new.marginals[arm.name].p == original.marginals["population"].p
            assert new.marginals[arm.name].mu == original.marginals["population"].mu


def test_rct_unmeasured_confounder_gets_the_pooled_prevalence(liu):
    text = LIU.read_text() + "\n[unmeasured]\nprevalence = { combination = 0.3, sorafenib = 0.5 }\nlog_hr = 0.5\n"
    scenario = parse_scenario(text)
    design = design_scenario(scenario, design="rct", patients=100)
    pooled = 0.35 * 0.3 + 0.65 * 0.5
    assert design.unmeasured.prevalence == {"combination": pytest.approx(pooled),
                                            "sorafenib": pytest.approx(pooled)}
    assert design.unmeasured.log_hr == 0.5
    psm = design_scenario(scenario, design="psm", patients=100)
    assert psm.unmeasured.prevalence == scenario.unmeasured.prevalence


def test_psm_design_of_a_selection_scenario_changes_only_the_cohort_size():
    scenario = load_scenario(SCENARIOS / "selection_example.toml")
    design = design_scenario(scenario, design="psm", patients=400)
    assert design.selection.patients == 400
    assert design.selection.log_odds == scenario.selection.log_odds
    assert design.covariates == scenario.covariates


def test_follow_up_and_accrual_rate_change_the_censoring(liu):
    longer = design_scenario(liu, design="rct", patients=200, follow_up_months=12.0)
    assert longer.censoring.accrual_months == 24.0 and longer.censoring.cutoff_month == 36.0
    faster = design_scenario(liu, design="psm", patients=200, accrual_rate=20.0)
    assert faster.censoring.accrual_months == pytest.approx(10.0)
    assert faster.censoring.cutoff_month == 27.0


def test_split_patients_rounds_half_up():
    assert split_patients(101, 0.5) == (51, 50)
    assert split_patients(100, 0.35) == (35, 65)


@pytest.mark.parametrize("options, message", [
    ({"design": "psm", "patients": 100, "allocation": 0.5}, "--allocation: only for --design rct"),
    ({"design": "rct", "patients": 100, "allocation": 1.0}, "--allocation 1: must lie strictly"),
    ({"design": "rct", "patients": 1}, "too few patients"),
    ({"design": "psm", "patients": 1}, "too few patients"),
    ({"design": "cohort", "patients": 100}, "not one of rct, psm"),
    ({"design": "rct", "patients": 100, "accrual_rate": 3.0}, "need more than 3.704 per month"),
    ({"design": "rct", "patients": 100, "follow_up_months": 0.0}, "must be a positive number"),
    ({"design": "rct", "patients": 100, "follow_up_months": 3.0, "accrual_rate": 9.0}, "not both"),
])
def test_impossible_designs_are_one_line(liu, options, message):
    with pytest.raises(DesignError, match=message) as info:
        design_scenario(liu, **options)
    assert "\n" not in str(info.value)


def test_rct_needs_a_population_prevalence_of_the_unmeasured_confounder():
    text = (SCENARIOS / "selection_example.toml").read_text()
    text += "\n[unmeasured]\nprevalence = { experimental = 0.3, control = 0.5 }\nlog_hr = 0.5\n"
    with pytest.raises(DesignError, match="population = p"):
        design_scenario(parse_scenario(text), design="rct", patients=100)
