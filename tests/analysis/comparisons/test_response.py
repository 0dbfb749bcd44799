"""Response and adverse-event comparisons against per-replicate counting and scipy."""

import numpy as np
import pytest
from scipy import stats

from analysis.comparisons import group_tests as gt
from analysis.comparisons import categorical
from analysis import status
from analysis.cohort import RESPONSE_CODES
from analysis.comparisons.response import compare_adverse_events, compare_responses

N_REPLICATES = 200


def _random_batch(rng, n_patients=40, n_events=3):
    treated = rng.random((N_REPLICATES, n_patients)) < rng.uniform(0.2, 0.6, (N_REPLICATES, 1))
    treated[:, :2] = [True, False]
    probabilities = rng.dirichlet([0.3, 1, 2, 2], size=N_REPLICATES)
    best = np.array([rng.choice(4, size=n_patients, p=p) for p in probabilities], dtype=np.int8)
    grades = rng.choice(5, size=(N_REPLICATES, n_patients, n_events), p=[0.6, 0.2, 0.1, 0.07, 0.03])
    weights = (rng.random((N_REPLICATES, n_patients)) < 0.7).astype(float)
    weights[:, :2] = 1.0
    return best, grades.astype(np.int8), treated, weights


def _scipy_pearson(events_treated, n_treated, events_control, n_control):
    table = np.array(
        [
            [events_treated, events_control],
            [n_treated - events_treated, n_control - events_control],
        ]
    )
    if (table.sum(axis=1) == 0).any():
        return 1.0
    return stats.chi2_contingency(table, correction=False).pvalue


def test_responses_match_counting_and_scipy():
    rng = np.random.default_rng(31)
    best, _, treated, weights = _random_batch(rng)
    result = compare_responses(best, treated, weights=weights, rule="pearson")
    orr_codes = (RESPONSE_CODES["CR"], RESPONSE_CODES["PR"])
    dcr_codes = orr_codes + (RESPONSE_CODES["SD"],)
    for r in range(N_REPLICATES):
        arms = [(weights[r] > 0) & treated[r], (weights[r] > 0) & ~treated[r]]
        n = [arm.sum() for arm in arms]
        np.testing.assert_array_equal(result.n_per_arm[r], n)
        for codes, rate, p_value in (
            (orr_codes, result.orr_rate, result.orr_p_value),
            (dcr_codes, result.dcr_rate, result.dcr_p_value),
        ):
            events = [np.isin(best[r][arm], codes).sum() for arm in arms]
            np.testing.assert_allclose(rate[r], [events[0] / n[0], events[1] / n[1]], rtol=1e-15)
            expected = _scipy_pearson(events[0], n[0], events[1], n[1])
            np.testing.assert_allclose(p_value[r], expected, rtol=1e-10)
    assert (result.status == status.OK).all()


@pytest.mark.parametrize("rule", ["paper", "fisher", "fisher_if_expected_lt5"])
def test_adverse_events_match_counting_and_rule(rule):
    rng = np.random.default_rng(37)
    _, grades, treated, weights = _random_batch(rng)
    result = compare_adverse_events(grades, treated, weights=weights, rule=rule)
    assert result.any_grade_rate.shape == (N_REPLICATES, 3, 2)
    assert result.grade3_4_p_value.shape == (N_REPLICATES, 3)
    tables = np.empty((N_REPLICATES, 3, 2, 2, 2))  # replicate, event, threshold, level, arm
    for r in range(N_REPLICATES):
        arms = [(weights[r] > 0) & treated[r], (weights[r] > 0) & ~treated[r]]
        for e in range(3):
            for k, threshold in enumerate((1, 3)):
                events = [(grades[r][arm, e] >= threshold).sum() for arm in arms]
                n = [arm.sum() for arm in arms]
                tables[r, e, k] = [[events[1], events[0]], [n[1] - events[1], n[0] - events[0]]]
                rate = (result.any_grade_rate, result.grade3_4_rate)[k][r, e]
                np.testing.assert_allclose(rate, [events[0] / n[0], events[1] / n[1]], rtol=1e-15)
    # the arm order of the test does not matter for a two-sided test: columns swapped here
    expected = categorical.categorical_test(tables, rule=rule)
    np.testing.assert_allclose(result.any_grade_p_value, expected.p_value[:, :, 0], rtol=1e-10)
    np.testing.assert_allclose(result.grade3_4_p_value, expected.p_value[:, :, 1], rtol=1e-10)
    np.testing.assert_array_equal(result.grade3_4_test_used, expected.test_used[:, :, 1])
    fisher_cases = expected.test_used[:, :, 1] == gt.FISHER
    for r, e in zip(*np.nonzero(fisher_cases)):
        np.testing.assert_allclose(
            result.grade3_4_p_value[r, e], stats.fisher_exact(tables[r, e, 1]).pvalue, rtol=1e-10
        )


def test_non_integer_weights_rates_unrounded_tests_on_rounded_counts():
    best = np.array([[0, 1, 3, 3, 2, 3, 1, 3]], dtype=np.int8)
    treated = np.array([[True, True, True, True, False, False, False, False]])
    weights = np.array([[1.0, 1.0, 1.0, 1.0, 0.5, 1.5, 2.0, 0.0]])
    result = compare_responses(best, treated, weights=weights, rule="fisher")
    # control arm: weights 0.5 (SD), 1.5 (PD), 2.0 (PR) -> n 4, ORR 2/4, DCR 2.5/4
    np.testing.assert_allclose(result.orr_rate[0], [0.5, 0.5])
    np.testing.assert_allclose(result.dcr_rate[0], [0.5, 2.5 / 4])
    rounded = np.array([[2.0, np.rint(2.5)], [2.0, 4.0 - np.rint(2.5)]])
    expected = stats.fisher_exact(rounded).pvalue
    np.testing.assert_allclose(result.dcr_p_value[0], expected, rtol=1e-12)


@pytest.mark.filterwarnings("error")
def test_degenerate_cohorts():
    best = np.array([[3, 3, 3, 3], [0, 1, 2, 3], [3, 3, 2, 2]], dtype=np.int8)
    treated = np.array(
        [[True, True, False, False], [True, True, True, True], [True, False, True, False]]
    )
    grades = np.zeros((3, 4, 2), dtype=np.int8)
    grades[2, :, 1] = 4  # everybody has a grade 4 event
    responses = compare_responses(best, treated)
    events = compare_adverse_events(grades, treated)
    np.testing.assert_array_equal(responses.status, [status.OK, status.EMPTY_ARM, status.OK])
    np.testing.assert_array_equal(events.status, [status.OK, status.EMPTY_ARM, status.OK])
    assert responses.orr_p_value[0] == 1.0 and responses.dcr_p_value[0] == 1.0  # nobody responds
    assert responses.orr_test_used[0] == gt.NO_TEST
    assert np.isnan(responses.orr_p_value[1]) and np.isnan(responses.orr_rate[1, 1])
    np.testing.assert_array_equal(events.any_grade_p_value[[0, 2]], 1.0)
    np.testing.assert_array_equal(events.grade3_4_rate[2, 1], [1.0, 1.0])
    assert np.isnan(events.any_grade_p_value[1]).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="adverse_event"):
        compare_adverse_events(np.zeros((2, 3), dtype=np.int8), np.ones((2, 3), dtype=bool))
    with pytest.raises(ValueError, match="choose one of"):
        compare_responses(np.zeros((1, 4), dtype=np.int8), np.array([[1, 1, 0, 0]], bool), rule="x")
