"""Adverse events: any-grade and grade 3-4 rates per arm, nesting, grade split; the shared
frailty of [adverse_event_dependence]: over many generated liu2021 cohorts every per-type rate
and the share with any AE per arm are within Monte Carlo error of their targets, the quadrature
agrees with numerical integration, and without the table the AE types stay independent and
draw exactly what they drew before the frailty existed."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from scipy import integrate, stats
from scipy.special import ndtr, ndtri

from sim.errors import ScenarioError
from sim.generate.adverse_events import (
    any_adverse_event_probabilities,
    any_event_probability,
    draw_adverse_events,
    frailty_correlations,
    solve_correlation,
)

N_PER_ARM = 100_000


@pytest.fixture(scope="module")
def drawn(independent):
    treated = np.concatenate([np.ones(N_PER_ARM, bool), np.zeros(N_PER_ARM, bool)])[None, :]
    grades = draw_adverse_events(independent, treated, rng=np.random.default_rng(30))
    return treated, grades


@pytest.fixture(scope="module")
def independent(liu2021):
    """liu2021 without [adverse_event_dependence]: independent AE types."""
    return dataclasses.replace(liu2021, adverse_event_dependence=None)


COHORTS = 2000


@pytest.fixture(scope="module")
def cohorts(liu2021):
    """2,000 liu2021 cohorts of 35 + 65 patients with the calibrated frailty."""
    treated = np.tile(np.arange(100) < 35, (COHORTS, 1))
    return treated, draw_adverse_events(liu2021, treated, rng=np.random.default_rng(2021))


def _within_4_mcse(observed, p, n):
    if p in (0.0, 1.0):
        return observed == p
    return abs(observed - p) <= 4 * math.sqrt(p * (1 - p) / n)


def test_shape_and_grades(liu2021, drawn):
    treated, grades = drawn
    assert grades.shape == (1, 2 * N_PER_ARM, 15) and grades.dtype == np.int8
    assert set(np.unique(grades)) <= {0, 1, 2, 3, 4}


def test_any_grade_and_grade34_rates_match_table3(liu2021, drawn):
    treated, grades = drawn
    for index, event in enumerate(liu2021.adverse_events):
        for arm in liu2021.arms:
            arm_grades = grades[0, treated[0] == arm.treated, index]
            assert _within_4_mcse((arm_grades >= 1).mean(), event.any_grade[arm.name],
                                  N_PER_ARM), (event.name, arm.name, "any")
            assert _within_4_mcse((arm_grades >= 3).mean(), event.grade34[arm.name],
                                  N_PER_ARM), (event.name, arm.name, "3-4")


def test_grade_splits_follow_the_stated_shares(liu2021, drawn):
    treated, grades = drawn
    names = [e.name for e in liu2021.adverse_events]
    # Hand-foot syndrome, sorafenib arm: 34/65 any grade, 4/65 grade 3-4.
    column = grades[0, ~treated[0], names.index("hand_foot_syndrome")]
    low = column[(column == 1) | (column == 2)]
    high = column[column >= 3]
    assert _within_4_mcse((low == 2).mean(), 0.4, low.size)
    assert _within_4_mcse((high == 4).mean(), 0.1, high.size)


def test_custom_grade_shares(liu2021):
    events = tuple(dataclasses.replace(e, grade2_share=1.0, grade4_share=0.0)
                   for e in liu2021.adverse_events)
    scenario = dataclasses.replace(liu2021, adverse_events=events)
    treated = np.tile(np.arange(100) < 35, (200, 1))
    grades = draw_adverse_events(scenario, treated, rng=np.random.default_rng(1))
    assert not np.isin(grades, [1, 4]).any()
    assert np.isin(grades, [2, 3]).any()


def test_zero_probability_events_never_occur(liu2021, drawn):
    treated, grades = drawn
    fatigue = [e.name for e in liu2021.adverse_events].index("fatigue")   # no grade 3-4
    assert (grades[0, :, fatigue] < 3).all()


def test_adverse_events_are_independent_without_the_dependence_table(independent, drawn):
    treated, grades = drawn
    names = [e.name for e in independent.adverse_events]
    first = grades[0, treated[0], names.index("hand_foot_syndrome")] >= 1
    second = grades[0, treated[0], names.index("thrombocytopenia")] >= 1
    assert abs(np.corrcoef(first, second)[0, 1]) <= 4 / math.sqrt(N_PER_ARM)


def test_any_adverse_event_probabilities_equal_simulated_share(independent, drawn):
    treated, grades = drawn
    implied = any_adverse_event_probabilities(independent)
    assert implied.arm_names == ("combination", "sorafenib")
    assert implied.correlation.tolist() == [0.0, 0.0]
    # Independent check: product formula by hand for the combination arm.
    expected = 1 - np.prod([1 - e.any_grade["combination"] for e in independent.adverse_events])
    assert implied.any_grade[0] == pytest.approx(expected, rel=1e-14)
    for arm_index, arm in enumerate(independent.arms):
        arm_grades = grades[0, treated[0] == arm.treated]
        assert _within_4_mcse((arm_grades >= 1).any(axis=-1).mean(),
                              implied.any_grade[arm_index], N_PER_ARM)
        assert _within_4_mcse((arm_grades >= 3).any(axis=-1).mean(),
                              implied.grade34[arm_index], N_PER_ARM)


def test_no_adverse_events_gives_empty_axis(liu2021):
    scenario = dataclasses.replace(liu2021, adverse_events=())
    grades = draw_adverse_events(scenario, np.ones((2, 5), bool), rng=np.random.default_rng(0))
    assert grades.shape == (2, 5, 0)


def test_reproducible(liu2021):
    treated = np.tile(np.arange(100) < 35, (4, 1))
    first = draw_adverse_events(liu2021, treated, rng=np.random.default_rng(8))
    second = draw_adverse_events(liu2021, treated, rng=np.random.default_rng(8))
    other = draw_adverse_events(liu2021, treated, rng=np.random.default_rng(9))
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)


def test_without_the_table_the_draws_are_the_uniforms_of_before(independent):
    """No frailty: one uniform per patient and AE, thresholds as in the module docstring (so
    scenarios without [adverse_event_dependence] keep their cohorts bit for bit)."""
    treated = np.tile(np.arange(100) < 35, (3, 1))
    grades = draw_adverse_events(independent, treated, rng=np.random.default_rng(5))
    u = np.random.default_rng(5).random(treated.shape + (len(independent.adverse_events),))
    for k, event in enumerate(independent.adverse_events):
        p_any = np.where(treated, event.any_grade["combination"], event.any_grade["sorafenib"])
        p_34 = np.where(treated, event.grade34["combination"], event.grade34["sorafenib"])
        expected = ((u[..., k] < p_any).astype(int) + (u[..., k] < p_34 + (p_any - p_34) * event.grade2_share)
                    + (u[..., k] < p_34) + (u[..., k] < p_34 * event.grade4_share))
        np.testing.assert_array_equal(grades[..., k], expected)


def test_quadrature_agrees_with_numerical_integration():
    """P(any AE) under the frailty against scipy's adaptive quadrature of the same integral
    (an independent implementation), over random rates and correlations."""
    rng = np.random.default_rng(11)
    for _ in range(20):
        p = rng.uniform(0.0, 0.6, size=rng.integers(1, 16))
        p[rng.random(p.size) < 0.2] = 0.0
        rho = rng.uniform(0.0, 0.99)

        def none_at(z):
            return np.prod(stats.norm.sf((stats.norm.ppf(p) - np.sqrt(rho) * z) / np.sqrt(1 - rho))) * stats.norm.pdf(z)

        expected = 1.0 - integrate.quad(none_at, -12, 12, epsabs=1e-14, limit=500, points=[0])[0]
        assert any_event_probability(p, rho) == pytest.approx(expected, abs=1e-10)
    p = np.array([0.3, 0.2, 0.1])
    assert any_event_probability(p, 0.0) == pytest.approx(1 - 0.7 * 0.8 * 0.9, abs=1e-15)
    assert any_event_probability(p, 0.99) == pytest.approx(0.3, abs=0.02)  # towards max p as rho -> 1
    values = [any_event_probability(p, rho) for rho in np.linspace(0, 0.99, 12)]
    assert all(a > b for a, b in zip(values, values[1:]))  # a positive frailty lowers P(any)


def test_calibrated_correlations_give_the_published_any_ae_rows(liu2021):
    rho = frailty_correlations(liu2021)
    assert 0.1 < rho["combination"] < 0.3 and 0.05 < rho["sorafenib"] < 0.25
    implied = any_adverse_event_probabilities(liu2021)
    assert implied.any_grade == pytest.approx([33 / 35, 59 / 65], abs=1e-10)
    assert implied.correlation.tolist() == [rho["combination"], rho["sorafenib"]]
    # grade 3-4 "All" is not calibrated: lower than independence, a check (40.0% and 41.5% printed)
    independent = any_adverse_event_probabilities(dataclasses.replace(liu2021, adverse_event_dependence=None))
    assert (implied.grade34 < independent.grade34).all()


def test_over_many_cohorts_every_rate_and_any_ae_are_on_target(liu2021, cohorts):
    """2,000 generated cohorts (70,000 treated, 130,000 control patients): each AE's any-grade
    and grade 3-4 rate per arm (the frailty leaves every marginal alone) and the share with any
    AE (the published 33/35 and 59/65) and any grade 3-4 AE (the model's value) within 4 MCSE."""
    treated, grades = cohorts
    implied = any_adverse_event_probabilities(liu2021)
    for a, arm in enumerate(liu2021.arms):
        in_arm = treated == arm.treated
        arm_grades = grades[in_arm]
        n = arm_grades.shape[0]
        for k, event in enumerate(liu2021.adverse_events):
            assert _within_4_mcse((arm_grades[:, k] >= 1).mean(), event.any_grade[arm.name], n), (event.name, arm.name)
            assert _within_4_mcse((arm_grades[:, k] >= 3).mean(), event.grade34[arm.name], n), (event.name, arm.name)
        target = {"combination": 33 / 35, "sorafenib": 59 / 65}[arm.name]
        assert _within_4_mcse((arm_grades >= 1).any(axis=1).mean(), target, n), arm.name
        assert _within_4_mcse((arm_grades >= 3).any(axis=1).mean(), implied.grade34[a], n), arm.name
    # the cohorts' own "All" rows scatter around the target: mean of the per-cohort shares
    per_cohort = (grades >= 1).any(axis=2)[:, :35].mean(axis=1)
    assert abs(per_cohort.mean() - 33 / 35) <= 4 * per_cohort.std(ddof=1) / np.sqrt(COHORTS)


def test_the_frailty_makes_ae_types_cluster(liu2021, cohorts):
    treated, grades = cohorts
    names = [e.name for e in liu2021.adverse_events]
    first = grades[treated, names.index("hand_foot_syndrome")] >= 1
    second = grades[treated, names.index("thrombocytopenia")] >= 1
    assert np.corrcoef(first, second)[0, 1] > 4 / math.sqrt(first.size)


def test_a_given_correlation_is_used_as_is(liu2021):
    from sim.scenario.model import AdverseEventDependence

    given = dataclasses.replace(liu2021, adverse_event_dependence=AdverseEventDependence(
        correlation={"combination": 0.4}))
    assert frailty_correlations(given) == {"combination": 0.4, "sorafenib": 0.0}
    p = np.array([e.any_grade["combination"] for e in liu2021.adverse_events])
    assert any_adverse_event_probabilities(given).any_grade[0] == pytest.approx(any_event_probability(p, 0.4))


def test_an_unreachable_share_is_one_line_naming_the_field():
    p = np.array([0.3, 0.2])
    with pytest.raises(ScenarioError) as err:
        solve_correlation(p, 0.6, field="adverse_event_dependence.a.any_proportion")
    assert str(err.value).startswith("adverse_event_dependence.a.any_proportion: 0.6 of patients with any AE "
                                     "cannot be reached: independent AE types give 0.44")
    with pytest.raises(ScenarioError):
        solve_correlation(p, 0.29, field="f")  # below max p: not even full clustering gets there
    assert any_event_probability(p, solve_correlation(p, 0.4, field="f")) == pytest.approx(0.4, abs=1e-10)


def test_a_dependence_table_without_adverse_events_is_refused(liu2021_path):
    import tomllib

    from sim.scenario import scenario_from_mapping

    data = tomllib.loads(liu2021_path.read_text(encoding="utf-8"))
    del data["adverse_events"], data["checks"]
    with pytest.raises(ScenarioError, match=r"^adverse_event_dependence: given without \[adverse_events.<name>\] "
                                            "tables; remove it or add the AEs it makes cluster$"):
        scenario_from_mapping(data)


def _masked_chain(uniform, treated, thresholds):
    """The grade assignments draw_adverse_events made before its compiled kernel (main at
    6e3887f): one masked assignment per grade, each overwriting the last."""
    bounds = np.where(treated[..., None, None], thresholds[1], thresholds[0])
    grade = np.zeros(uniform.shape, dtype=np.int8)
    for level in range(4):
        grade[uniform < bounds[..., level]] = level + 1
    return grade


def test_compiled_grades_equal_the_masked_assignments_whatever_the_bounds_order():
    from sim.generate.adverse_events import _frailty_grades, _latent_bounds, _uniform_grades

    rng = np.random.default_rng(13)
    treated = rng.random((40, 30)) < 0.4
    thresholds = rng.random((2, 6, 4))  # unordered: overlaps decide by the last assignment
    thresholds[0, 0] = np.sort(thresholds[0, 0])[::-1]
    thresholds[1, 1] = (0.0, 1.0, 0.0, 1.0)
    uniform = rng.random((40, 30, 6))
    uniform[0, 0, :4] = thresholds[0, :4, 0]  # ties: u < bound is False
    grade = np.empty(uniform.shape, dtype=np.int8)
    _uniform_grades(uniform, treated, thresholds, grade)
    np.testing.assert_array_equal(grade, _masked_chain(uniform, treated, thresholds))

    frailty, own = rng.standard_normal((40, 30)), 3.0 * rng.standard_normal((40, 30, 6))
    rho = np.array([0.0, 0.7])
    loadings = np.stack([np.sqrt(rho), np.sqrt(1.0 - rho)], axis=-1)
    thresholds[0, 2] = (1.0, 0.0, 1e-300, 1.0 - 1e-16)  # the bounds' special cases
    thresholds[0, 3] = (0.5, 1e-12, 1.0 - 1e-13, 1e-290)
    thresholds[1, 4] = (1.0, 1.0, 0.999, 0.001)
    sure_below, sure_above = _latent_bounds(thresholds.tobytes(), thresholds.shape)
    # Control patients (rho = 0: x = own exactly) at and around every latent bound and ndtri(t).
    candidates = np.concatenate([sure_below[0].ravel(), sure_above[0].ravel(),
                                 ndtri(thresholds[0].ravel()), [8.0, 8.3, 9.0, -38.0, 40.0]])
    candidates = candidates[np.isfinite(candidates)]
    candidates = np.concatenate([candidates, np.nextafter(candidates, np.inf),
                                 np.nextafter(candidates, -np.inf)])
    control = np.flatnonzero(~treated.ravel())
    own_flat = own.reshape(-1, 6)
    assert candidates.size <= control.size
    own_flat[control[:candidates.size]] = candidates[:, None]  # each in every AE's column
    _frailty_grades(frailty, own, treated, loadings, thresholds, sure_below, sure_above, grade)
    rho_of = np.where(treated, rho[1], rho[0])[..., None]
    latent_uniform = ndtr(np.sqrt(rho_of) * frailty[..., None] + np.sqrt(1.0 - rho_of) * own)
    np.testing.assert_array_equal(grade, _masked_chain(latent_uniform, treated, thresholds))


def test_the_kernels_ndtr_is_scipys():
    from numba import njit

    from sim.generate.adverse_events import _ndtr

    @njit
    def phi(x, out):
        for i in range(x.size):
            out[i] = _ndtr(x[i], 0)

    x = np.concatenate([np.linspace(-40.0, 40.0, 200_001), [np.inf, -np.inf, 0.0, -0.0, np.nan],
                        np.random.default_rng(3).standard_normal(100_000) * 4.0])
    out = np.empty_like(x)
    phi(x, out)
    np.testing.assert_array_equal(out, ndtr(x))
