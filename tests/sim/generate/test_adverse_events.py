"""Adverse events: any-grade and grade 3-4 rates per arm, nesting, grade split, independence."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from sim.generate.adverse_events import any_adverse_event_probabilities, draw_adverse_events

N_PER_ARM = 100_000


@pytest.fixture(scope="module")
def drawn(liu2021):
    treated = np.concatenate([np.ones(N_PER_ARM, bool), np.zeros(N_PER_ARM, bool)])[None, :]
    grades = draw_adverse_events(liu2021, treated, rng=np.random.default_rng(30))
    return treated, grades


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


def test_adverse_events_are_independent(liu2021, drawn):
    treated, grades = drawn
    names = [e.name for e in liu2021.adverse_events]
    first = grades[0, treated[0], names.index("hand_foot_syndrome")] >= 1
    second = grades[0, treated[0], names.index("thrombocytopenia")] >= 1
    assert abs(np.corrcoef(first, second)[0, 1]) <= 4 / math.sqrt(N_PER_ARM)


def test_any_adverse_event_probabilities_equal_simulated_share(liu2021, drawn):
    treated, grades = drawn
    implied = any_adverse_event_probabilities(liu2021)
    assert implied.arm_names == ("combination", "sorafenib")
    # Independent check: product formula by hand for the combination arm.
    expected = 1 - np.prod([1 - e.any_grade["combination"] for e in liu2021.adverse_events])
    assert implied.any_grade[0] == pytest.approx(expected, rel=1e-14)
    for arm_index, arm in enumerate(liu2021.arms):
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
