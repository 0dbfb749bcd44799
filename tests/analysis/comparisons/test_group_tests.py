"""Batched two-group tests against scipy, hand cases and degenerate tables."""

import numpy as np
import pytest
from scipy import stats

from analysis.comparisons import group_tests as gt
from analysis.comparisons import categorical
from analysis.comparisons import continuous
from analysis import status

RTOL = 1e-10
N_CASES = 200
N_TABLES = 240


def _random_2x2_tables(rng, n):
    """(n, 2, 2) tables (level, arm) with small counts, zero cells and extreme rates."""
    n_treated = rng.integers(1, 45, size=n)
    n_control = rng.integers(1, 90, size=n)
    rates = rng.choice([0.0, 0.02, 0.1, 0.3, 0.5, 0.8, 0.97, 1.0], size=(n, 2))
    rates = np.where(rng.random((n, 2)) < 0.5, rates, rng.random((n, 2)))
    events = rng.binomial(np.stack([n_treated, n_control], axis=1), rates)
    table = np.empty((n, 2, 2))
    table[:, 0, :] = events
    table[:, 1, :] = np.stack([n_treated, n_control], axis=1) - events
    return table


def _proper(table):
    """Tables without an empty row or column (what scipy's chi-square accepts)."""
    return (table.sum(axis=-1) > 0).all(axis=-1) & (table.sum(axis=-2) > 0).all(axis=-1)


@pytest.fixture(scope="module")
def tables():
    rng = np.random.default_rng(20240501)
    table = _random_2x2_tables(rng, N_TABLES)
    assert _proper(table).sum() >= 200
    return table


# ---------------------------------------------------------------------------- chi-square


@pytest.mark.parametrize("correction", [False, True])
def test_chi2_matches_scipy_on_random_2x2(tables, correction):
    function = categorical.yates_chi2 if correction else categorical.pearson_chi2
    result = function(tables)
    proper = _proper(tables)
    for i in np.flatnonzero(proper):
        expected = stats.chi2_contingency(tables[i], correction=correction)
        np.testing.assert_allclose(result.statistic[i], expected.statistic, rtol=RTOL, atol=1e-12)
        np.testing.assert_allclose(result.p_value[i], expected.pvalue, rtol=RTOL)
        assert result.df[i] == expected.dof
    assert (result.status[proper] == status.OK).all()
    assert set(result.test_used[proper]) == {gt.YATES if correction else gt.PEARSON}


@pytest.mark.parametrize("n_levels", [3, 4, 5])
def test_pearson_matches_scipy_on_random_r_by_2(n_levels):
    rng = np.random.default_rng(n_levels)
    n_per_arm = rng.integers(2, 60, size=(250, 2))
    probabilities = rng.dirichlet(np.ones(n_levels), size=(250, 2))
    counts = np.stack(
        [
            np.stack([rng.multinomial(n_per_arm[i, a], probabilities[i, a]) for a in range(2)], -1)
            for i in range(250)
        ]
    ).astype(float)
    proper = _proper(counts)
    assert proper.sum() >= 150
    for function in (categorical.pearson_chi2, categorical.yates_chi2):  # no Yates for df > 1
        result = function(counts)
        for i in np.flatnonzero(proper):
            expected = stats.chi2_contingency(counts[i], correction=True)
            np.testing.assert_allclose(result.statistic[i], expected.statistic, rtol=RTOL)
            np.testing.assert_allclose(result.p_value[i], expected.pvalue, rtol=RTOL)
            assert result.df[i] == expected.dof
            assert result.test_used[i] == gt.PEARSON


def test_empty_rows_are_dropped_like_spss():
    rng = np.random.default_rng(7)
    table = np.zeros((100, 4, 2))
    small = _random_2x2_tables(rng, 100)
    table[:, 1, :] = small[:, 0, :]
    table[:, 3, :] = small[:, 1, :]
    proper = _proper(small)
    for function, correction in ((categorical.pearson_chi2, False), (categorical.yates_chi2, True)):
        padded = function(table)
        for i in np.flatnonzero(proper):
            expected = stats.chi2_contingency(small[i], correction=correction)
            np.testing.assert_allclose(padded.p_value[i], expected.pvalue, rtol=RTOL)
            assert padded.df[i] == 1


def test_yates_hand_cases():
    # |ad - bc| = |10*10 - 10*10| = 0 < N/2: corrected statistic 0, p = 1.
    result = categorical.yates_chi2(np.array([[10.0, 10.0], [10.0, 10.0]]))
    assert result.statistic == 0.0 and result.p_value == 1.0
    # N (|ad - bc| - N/2)^2 / (r1 r2 c1 c2) for [[6, 2], [29, 63]] (ORR before PSM).
    a, b, c, d = 6.0, 2.0, 29.0, 63.0
    n = a + b + c + d
    by_hand = n * (abs(a * d - b * c) - n / 2) ** 2 / ((a + b) * (c + d) * (a + c) * (b + d))
    result = categorical.yates_chi2(np.array([[a, b], [c, d]]))
    np.testing.assert_allclose(result.statistic, by_hand, rtol=1e-14)
    np.testing.assert_allclose(result.p_value, stats.chi2.sf(by_hand, 1), rtol=1e-12)


# ---------------------------------------------------------------------------- Fisher


def test_fisher_matches_scipy_on_random_2x2(tables):
    result = categorical.fisher_exact(tables)
    for i in range(len(tables)):
        if (tables[i].sum(axis=0) == 0).any():
            continue  # empty arm: NaN by convention, checked below
        expected = stats.fisher_exact(tables[i])
        np.testing.assert_allclose(result.p_value[i], expected.pvalue, rtol=RTOL)
        np.testing.assert_allclose(result.statistic[i], expected.statistic, rtol=RTOL)


def test_fisher_larger_counts_and_symmetric_supports():
    rng = np.random.default_rng(11)
    n = rng.integers(2, 150, size=250)
    table = np.empty((250, 2, 2))
    table[:, 0, 0] = rng.integers(0, n + 1)
    table[:, 1, 0] = n - table[:, 0, 0]
    # equal arms give a symmetric hypergeometric support (exact ties of probabilities)
    table[:, 0, 1] = rng.integers(0, n + 1)
    table[:, 1, 1] = n - table[:, 0, 1]
    result = categorical.fisher_exact(table)
    for i in range(len(table)):
        expected = stats.fisher_exact(table[i])
        np.testing.assert_allclose(result.p_value[i], expected.pvalue, rtol=RTOL)


def test_fisher_hand_case_lady_tasting_tea():
    # Fisher (1935): 3 of 4 cups right each way; two-sided p = 34/70.
    result = categorical.fisher_exact(np.array([[3.0, 1.0], [1.0, 3.0]]))
    np.testing.assert_allclose(result.p_value, 34 / 70, rtol=1e-13)
    assert result.statistic == 9.0


def test_fisher_rejects_r_by_2():
    with pytest.raises(ValueError, match="2, 2"):
        categorical.fisher_exact(np.ones((5, 3, 2)))


# ---------------------------------------------------------------------------- degenerate tables


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(
    "function", [categorical.pearson_chi2, categorical.yates_chi2, categorical.fisher_exact], ids=lambda f: f.__name__
)
def test_degenerate_tables_never_raise(function):
    table = np.array(
        [
            [[0.0, 0.0], [35.0, 65.0]],  # nobody responds (paper: CR 0/0 printed 1.000)
            [[35.0, 65.0], [0.0, 0.0]],  # everybody responds
            [[3.0, 0.0], [4.0, 0.0]],  # empty control arm
            [[0.0, 0.0], [0.0, 0.0]],  # nobody analysed
            [[0.0, 5.0], [4.0, 0.0]],  # zero cells but proper
        ]
    )
    result = function(table)
    np.testing.assert_array_equal(result.p_value[:2], [1.0, 1.0])
    np.testing.assert_array_equal(result.test_used[:4], [gt.NO_TEST] * 4)
    np.testing.assert_array_equal(result.status, [0, 0, status.EMPTY_ARM, status.EMPTY_ARM, 0])
    assert np.isnan(result.p_value[2:4]).all()
    assert 0 < result.p_value[4] < 1


# ---------------------------------------------------------------------------- selection rules


def _scipy_p(table, test):
    if test == gt.PEARSON:
        return stats.chi2_contingency(table, correction=False).pvalue
    if test == gt.YATES:
        return stats.chi2_contingency(table, correction=True).pvalue
    return stats.fisher_exact(table).pvalue


def _expected_choice(rule, table):
    expected = stats.contingency.expected_freq(table)
    small = expected.min() < 5
    return {
        "pearson": gt.PEARSON,
        "yates": gt.YATES,
        "fisher": gt.FISHER,
        "fisher_if_expected_lt5": gt.FISHER if small else gt.PEARSON,
        "yates_if_expected_lt5": gt.YATES if small else gt.PEARSON,
        "paper": gt.YATES if small or table.min() < 3 else gt.PEARSON,
    }[rule]


@pytest.mark.parametrize("rule", sorted(categorical.CATEGORICAL_RULES))
def test_categorical_rules_select_and_match_scipy(tables, rule):
    result = categorical.categorical_test(tables, rule=rule)
    proper = _proper(tables)
    for i in np.flatnonzero(proper):
        choice = _expected_choice(rule, tables[i])
        assert result.test_used[i] == choice, (rule, tables[i])
        np.testing.assert_allclose(result.p_value[i], _scipy_p(tables[i], choice), rtol=RTOL)
    constant = ~proper & (tables.sum(axis=-2) > 0).all(axis=-1)
    assert (result.p_value[constant] == 1.0).all()


def test_categorical_test_keeps_leading_dimensions_and_falls_back_for_r_by_2():
    rng = np.random.default_rng(3)
    table = _random_2x2_tables(rng, 24).reshape(4, 6, 2, 2)
    result = categorical.categorical_test(table, rule="fisher")
    assert result.p_value.shape == (4, 6)
    flat = categorical.fisher_exact(table.reshape(24, 2, 2))
    np.testing.assert_array_equal(result.p_value.ravel(), flat.p_value)
    three_levels = np.array([[[5.0, 9.0], [1.0, 7.0], [4.0, 2.0]]])
    result = categorical.categorical_test(three_levels, rule="fisher_if_expected_lt5")
    assert result.test_used[0] == gt.PEARSON
    np.testing.assert_allclose(
        result.p_value[0], stats.chi2_contingency(three_levels[0]).pvalue, rtol=RTOL
    )
    single = categorical.categorical_test(np.array([[6.0, 2.0], [29.0, 63.0]]), rule="fisher")
    assert single.p_value.shape == ()


def test_unknown_rule_lists_choices():
    with pytest.raises(ValueError, match="fisher_if_expected_lt5.*yates_if_expected_lt5"):
        categorical.categorical_test(np.ones((2, 2)), rule="chi2")
    with pytest.raises(ValueError, match="mann_whitney"):
        continuous.continuous_test(np.ones((1, 4)), np.array([[True, False, True, False]]), rule="u")


def test_contingency_table_counts_and_rounding():
    rng = np.random.default_rng(5)
    levels = rng.integers(0, 3, size=(20, 30))
    treated = rng.random((20, 30)) < 0.4
    weights = rng.choice([0.0, 1.0, 0.5, 2.0], size=(20, 30))
    table = categorical.contingency_table(levels, treated, n_levels=3, weights=weights, round_counts=False)
    for r in range(20):
        for level in range(3):
            for arm, in_arm in enumerate((treated[r], ~treated[r])):
                expected = weights[r][(levels[r] == level) & in_arm].sum()
                assert table[r, level, arm] == expected
    rounded = categorical.contingency_table(levels, treated, n_levels=3, weights=weights)
    np.testing.assert_array_equal(rounded, np.rint(table))
    per_variable = categorical.contingency_table(
        np.stack([levels, 2 - levels], axis=-1), treated, n_levels=3, weights=weights
    )
    assert per_variable.shape == (20, 2, 3, 2)
    np.testing.assert_array_equal(per_variable[:, 1], rounded[:, ::-1])


# ---------------------------------------------------------------------------- continuous tests


def _random_samples(rng, n_replicates=N_CASES, n_patients=40, ties=False):
    x = rng.normal(50.0, 10.0, size=(n_replicates, n_patients))
    x *= rng.choice([0.01, 1.0, 100.0], size=(n_replicates, 1))
    if ties:
        x = np.round(x / x.std(axis=1, keepdims=True) * 2.0)
    group = rng.random((n_replicates, n_patients)) < rng.uniform(0.1, 0.9, (n_replicates, 1))
    group[:, 0], group[:, 1], group[:, 2], group[:, 3] = True, True, False, False
    weights = (rng.random((n_replicates, n_patients)) < rng.uniform(0.3, 1.0, (n_replicates, 1)))
    weights[:, :4] = True
    x[~weights] = np.nan  # excluded patients' values are never used
    return x, group, weights.astype(float)


@pytest.mark.parametrize("equal_var", [True, False])
def test_t_tests_match_scipy(equal_var):
    rng = np.random.default_rng(17)
    x, group, weights = _random_samples(rng, ties=False)
    function = continuous.student_t if equal_var else continuous.welch_t
    result = function(x, group, weights=weights)
    for i in range(len(x)):
        keep = weights[i] > 0
        expected = stats.ttest_ind(
            x[i][keep & group[i]], x[i][keep & ~group[i]], equal_var=equal_var
        )
        np.testing.assert_allclose(result.statistic[i], expected.statistic, rtol=RTOL)
        np.testing.assert_allclose(result.p_value[i], expected.pvalue, rtol=RTOL)
        np.testing.assert_allclose(result.df[i], expected.df, rtol=RTOL)
    assert (result.status == status.OK).all()


@pytest.mark.parametrize("function", [continuous.student_t, continuous.welch_t, continuous.mann_whitney])
def test_integer_weights_are_frequency_weights(function):
    rng = np.random.default_rng(19)
    x, group, _ = _random_samples(rng, n_replicates=30, ties=True)
    weights = rng.integers(0, 4, size=x.shape).astype(float)
    weights[:, :4] = 1.0
    x = np.where(np.isnan(x), 0.0, x)
    result = function(x, group, weights=weights)
    for i in range(len(x)):
        repeats = weights[i].astype(int)
        expanded = function(
            np.repeat(x[i], repeats)[None], np.repeat(group[i], repeats)[None]
        )
        np.testing.assert_allclose(result.p_value[i], expanded.p_value[0], rtol=1e-12)


@pytest.mark.parametrize("continuity", [False, True])
@pytest.mark.parametrize("ties", [False, True])
def test_mann_whitney_matches_scipy(continuity, ties):
    rng = np.random.default_rng(23 + ties)
    x, group, weights = _random_samples(rng, ties=ties)
    result = continuous.mann_whitney(x, group, weights=weights, continuity=continuity)
    for i in range(len(x)):
        keep = weights[i] > 0
        expected = stats.mannwhitneyu(
            x[i][keep & group[i]],
            x[i][keep & ~group[i]],
            method="asymptotic",
            use_continuity=continuity,
        )
        np.testing.assert_allclose(result.statistic[i], expected.statistic, rtol=RTOL)
        np.testing.assert_allclose(result.p_value[i], expected.pvalue, rtol=RTOL)


def test_mann_whitney_spss_formula_by_hand():
    # Z = (U - n1 n0 / 2) / sqrt(n1 n0 / (N (N - 1)) * ((N^3 - N) / 12 - sum (t^3 - t) / 12))
    treated_values = np.array([1.0, 2.0, 2.0, 5.0, 7.0])
    control_values = np.array([2.0, 3.0, 3.0, 4.0, 8.0, 9.0])
    x = np.concatenate([treated_values, control_values])[None]
    group = np.array([[True] * 5 + [False] * 6])
    # midranks: 1 -> 1, 2,2,2 -> 3, 3,3 -> 5.5, 4 -> 7, 5 -> 8, 7 -> 9, 8 -> 10, 9 -> 11
    rank_sum = 1 + 3 + 3 + 8 + 9
    u = rank_sum - 5 * 6 / 2
    n = 11
    ties = (3**3 - 3) / 12 + (2**3 - 2) / 12
    z = (u - 15) / np.sqrt(30 / (n * (n - 1)) * ((n**3 - n) / 12 - ties))
    result = continuous.mann_whitney(x, group)
    assert result.statistic[0] == u
    np.testing.assert_allclose(result.p_value[0], 2 * stats.norm.sf(abs(z)), rtol=1e-13)


def test_student_t_with_an_arm_of_one_by_hand():
    x = np.array([[4.0, 1.0, 2.0, 6.0]])
    group = np.array([[True, False, False, False]])
    control = np.array([1.0, 2.0, 6.0])
    pooled = ((control - control.mean()) ** 2).sum() / 2
    t = (4.0 - control.mean()) / np.sqrt(pooled * (1 + 1 / 3))
    result = continuous.student_t(x, group)
    np.testing.assert_allclose(result.statistic[0], t, rtol=1e-14)
    np.testing.assert_allclose(result.p_value[0], 2 * stats.t.sf(abs(t), 2), rtol=1e-12)
    assert continuous.welch_t(x, group).status[0] == status.UNDEFINED


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("rule", sorted(continuous.CONTINUOUS_RULES))
def test_continuous_degenerate_cases_never_raise(rule):
    x = np.array(
        [
            [1.0, 2.0, 3.0, 4.0],  # all in one arm
            [5.0, 5.0, 5.0, 5.0],  # constant
            [1.0, 2.0, 3.0, 4.0],  # nobody analysed
            [1.0, 1.0, 2.0, 2.0],  # each arm constant, different values
        ]
    )
    group = np.array([[True] * 4, [True, True, False, False], [True, True, False, False],
                      [True, True, False, False]])
    weights = np.ones((4, 4))
    weights[2] = 0.0
    result = continuous.continuous_test(x, group, weights=weights, rule=rule)
    assert result.status[0] == status.EMPTY_ARM and np.isnan(result.p_value[0])
    assert result.status[1] == status.UNDEFINED and np.isnan(result.p_value[1])
    assert result.status[2] == status.EMPTY_ARM
    if rule == "t":
        assert np.isinf(result.statistic[3]) and result.p_value[3] == 0.0
    assert (result.test_used[:3] == gt.NO_TEST).all()
