"""The compiled 2x2 tests and arm counts (analysis.comparisons.table_kernels) against the numpy
path they replace."""

import numpy as np
import pytest

from analysis.comparisons.categorical import CATEGORICAL_RULES, categorical_test
from analysis.comparisons.response import compare_adverse_events, compare_responses


def _tables(rng, n_tables):
    """Random 2x2 tables: small and large counts, empty rows and arms, ties of the support,
    non-integer counts."""
    size = rng.choice([3, 8, 30, 200, 1000], size=n_tables)
    tables = np.stack([rng.integers(0, size + 1) for _ in range(4)], axis=-1).reshape(-1, 2, 2).astype(float)
    tables[rng.random(n_tables) < 0.08, 0] = 0.0  # constant: nobody has the outcome
    tables[rng.random(n_tables) < 0.05, :, 1] = 0.0  # empty control arm
    tables[rng.random(n_tables) < 0.03] = 0.0
    symmetric = rng.random(n_tables) < 0.1  # symmetric supports: tied probabilities
    tables[symmetric] = [[2.0, 3.0], [3.0, 2.0]]
    fractional = rng.random(n_tables) < 0.05
    tables[fractional] += rng.random((fractional.sum(), 2, 2))
    return tables


@pytest.mark.parametrize("rule", sorted(CATEGORICAL_RULES))
def test_two_by_two_equals_numpy_path(rule):
    rng = np.random.default_rng(sorted(CATEGORICAL_RULES).index(rule))
    tables = _tables(rng, 3000).reshape(30, 100, 2, 2)
    fast = categorical_test(tables, rule=rule)
    oracle = categorical_test(tables, rule=rule, compiled=False)
    for name in ("statistic", "test_used", "status", "df"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(oracle, name), err_msg=name)
    np.testing.assert_allclose(fast.p_value, oracle.p_value, rtol=1e-13, atol=0)
    chi_square = np.isin(oracle.test_used, [0, 1])
    np.testing.assert_array_equal(fast.p_value[chi_square], oracle.p_value[chi_square])
    assert fast.p_value.shape == (30, 100)


def test_one_table_and_r_by_2_fall_back():
    one = categorical_test(np.array([[3.0, 1.0], [1.0, 3.0]]), rule="fisher")
    assert one.p_value.shape == () and np.isclose(one.p_value, 0.4857142857142857, rtol=1e-14)
    three_levels = np.array([[[3.0, 1.0], [1.0, 3.0], [2.0, 2.0]]])
    np.testing.assert_array_equal(categorical_test(three_levels).p_value,
                                  categorical_test(three_levels, compiled=False).p_value)


@pytest.mark.parametrize("weights", ["mask", "integer", "fractional"])
def test_responses_and_adverse_events_equal_numpy_path(weights):
    """Integer weights: the compiled counts, identical; others: the numpy path's sums (the
    rounded cell counts of half-integer sums depend on their order), identical too."""
    rng = np.random.default_rng(7)
    shape = (300, int(rng.integers(5, 120)))
    treated = rng.random(shape) < 0.4
    best = rng.choice(4, size=shape, p=[0.05, 0.25, 0.4, 0.3]).astype(np.int8)
    grades = rng.choice(5, size=shape + (4,), p=[0.6, 0.2, 0.1, 0.07, 0.03]).astype(np.int8)
    weight = (rng.random(shape) < 0.7).astype(float)
    if weights != "mask":
        weight *= rng.choice([0.5, 1.0, 4 / 3] if weights == "fractional" else [1.0, 2.0, 3.0], size=shape)
    weight[:3] = 0.0  # empty replicates
    for rule in ("paper", "fisher_if_expected_lt5"):
        for compare, data in ((compare_responses, best), (compare_adverse_events, grades)):
            fast = compare(data, treated, weights=weight, rule=rule)
            oracle = compare(data, treated, weights=weight, rule=rule, compiled=False)
            for name in fast.__dataclass_fields__:
                a, b = getattr(fast, name), getattr(oracle, name)
                np.testing.assert_allclose(a, b, rtol=1e-13, atol=0, err_msg=name)
