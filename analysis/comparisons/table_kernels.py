"""Compiled 2x2 contingency-table tests and arm counts (numba).

Every response and adverse-event row compares a 0/1 outcome between the arms with a 2x2 table
(:func:`analysis.comparisons.response.compare_binary`). The numpy path builds the tables'
margins, expected counts, the rule's choice and each test's statistic with some sixty calls
over (replicate, endpoint, 2, 2) arrays, and Fisher's test over a padded support; at 100
patients the calls, not the arithmetic, were the cost. :func:`two_by_two` does the same per
table in one loop, :func:`arm_counts` and :func:`code_counts` the weighted counts without the (replicate, patient,
endpoint, arm) products.

The formulas and their order are the numpy path's
(:func:`analysis.comparisons.categorical._run_table_tests`, the oracle, kept as
``compiled=False``): margins, expected counts ``row * column / N``, the rule on the smallest
expected and observed counts of the non-empty rows, ``sum |O - E|^2 / E`` (Yates: ``|O - E| -
min(0.5, |O - E|)``) over the cells in row order, the odds ratio, and Fisher's two-sided sum
over the hypergeometric support with R's relative tolerance, from the same table of
``gammaln(n + 1)`` (scipy's, passed in). The chi-square p-value ``erfc(sqrt(X^2 / 2))`` is left
to the caller (scipy's ``erfc``: the C library's differs by up to 1e-13 relative). What differs:
Fisher's ``exp`` is the C library's (one ulp from numpy's in a few percent of arguments) and
its sums run in support order, so its p-values agree to ~1e-15 relative; statistics, test
codes and statuses are the oracle's. Tests: tests/analysis/comparisons/test_table_kernels.py.

Compiled on first use and cached on disk (``cache=True``); see :func:`warm_up`.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from analysis import status as status_codes
from analysis.comparisons.group_tests import (
    FISHER,
    FISHER_RELATIVE_TOLERANCE,
    MIN_EXPECTED_COUNT,
    NO_TEST,
    PAPER_MIN_OBSERVED_COUNT,
    PEARSON,
    YATES,
)

#: Rule codes of :func:`two_by_two`, by the names of
#: :data:`analysis.comparisons.categorical.CATEGORICAL_RULES`.
RULE_CODES = {"paper": 0, "pearson": 1, "yates": 2, "fisher": 3, "fisher_if_expected_lt5": 4,
              "yates_if_expected_lt5": 5}
_OK = status_codes.OK
_EMPTY_ARM = status_codes.EMPTY_ARM


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _requested(rule, min_expected, min_observed):
    """The test a rule asks for (:func:`analysis.comparisons.categorical.categorical_test`)."""
    if rule == 0:
        small = min_expected < MIN_EXPECTED_COUNT or min_observed < PAPER_MIN_OBSERVED_COUNT
        return YATES if small else PEARSON
    if rule == 1:
        return PEARSON
    if rule == 2:
        return YATES
    if rule == 3:
        return FISHER
    if rule == 4:
        return FISHER if min_expected < MIN_EXPECTED_COUNT else PEARSON
    return YATES if min_expected < MIN_EXPECTED_COUNT else PEARSON


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _log_choose(log_factorial, n, k):
    return log_factorial[n] - log_factorial[k] - log_factorial[n - k]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _fisher_two_sided(observed, row0, col0, total, log_factorial):
    """Two-sided hypergeometric p-value of ``observed`` (integers), as the oracle's
    ``_fisher_two_sided``: the tables no more probable than the observed one, times
    1 + :data:`FISHER_RELATIVE_TOLERANCE`, over all tables with the same margins."""
    low = max(0, row0 + col0 - total)
    high = min(row0, col0)
    largest = -np.inf
    for x in range(low, high + 1):
        largest = max(largest, _log_choose(log_factorial, col0, x)
                      + _log_choose(log_factorial, total - col0, row0 - x))
    observed_weight = math.exp(_log_choose(log_factorial, col0, observed)
                               + _log_choose(log_factorial, total - col0, row0 - observed) - largest)
    limit = observed_weight * (1.0 + FISHER_RELATIVE_TOLERANCE)
    extreme = 0.0
    everything = 0.0
    for x in range(low, high + 1):
        weight = math.exp(_log_choose(log_factorial, col0, x)
                          + _log_choose(log_factorial, total - col0, row0 - x) - largest)
        everything += weight
        if weight <= limit:
            extreme += weight
    return min(extreme / everything, 1.0)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def two_by_two(tables, rule, log_factorial):
    """The rule's test of each 2x2 table.

    Parameters
    ----------
    tables : ndarray of float64, shape (table, 2, 2)
        Counts (level, arm); arm 0 treated.
    rule : int
        A code of :data:`RULE_CODES`.
    log_factorial : ndarray of float64, shape (>= largest rounded total + 1,)
        ``gammaln(n + 1)``; used by Fisher's test only.

    Returns
    -------
    statistic, df : ndarray of float64, shape (table,)
        As :class:`analysis.comparisons.group_tests.TestResult` (the chi-square statistic or
        the odds ratio).
    p_value : ndarray of float64, shape (table,)
        Fisher's p, 1.0 for a constant table, NaN for an empty arm; for chi-square tables
        (``chi_square`` True) left to the caller.
    test_used, status : ndarray of int8, shape (table,)
    chi_square : ndarray of bool, shape (table,)
        Valid tables whose p-value is the chi-square one (1 degree of freedom).
    """
    n = tables.shape[0]
    statistic = np.empty(n)
    p_value = np.empty(n)
    df = np.empty(n)
    test_used = np.empty(n, dtype=np.int8)
    status = np.empty(n, dtype=np.int8)
    chi_square = np.zeros(n, dtype=np.bool_)
    expected = np.empty((2, 2))
    for i in range(n):
        t = tables[i]
        row0 = t[0, 0] + t[0, 1]
        row1 = t[1, 0] + t[1, 1]
        col0 = t[0, 0] + t[1, 0]
        col1 = t[0, 1] + t[1, 1]
        total = col0 + col1
        rows = (1 if row0 > 0 else 0) + (1 if row1 > 0 else 0)
        empty_arm = col0 <= 0 or col1 <= 0
        constant = not empty_arm and rows <= 1
        status[i] = _EMPTY_ARM if empty_arm else _OK
        if empty_arm:
            statistic[i] = np.nan
            p_value[i] = np.nan
            df[i] = np.nan
            test_used[i] = NO_TEST
            continue
        min_expected = np.inf
        min_observed = np.inf
        for level, row in ((0, row0), (1, row1)):
            for arm, col in ((0, col0), (1, col1)):
                expected[level, arm] = row * col / total
                if row > 0:
                    min_expected = min(min_expected, expected[level, arm])
                    min_observed = min(min_observed, t[level, arm])
        requested = _requested(rule, min_expected, min_observed)
        if constant:  # p 1.0, no test; Fisher's statistic (the odds ratio) is undefined
            statistic[i] = np.nan if requested == FISHER else 0.0
            p_value[i] = 1.0
            df[i] = np.nan
            test_used[i] = NO_TEST
            continue
        if requested == FISHER:
            a, b = np.rint(t[0, 0]), np.rint(t[0, 1])
            c, d = np.rint(t[1, 0]), np.rint(t[1, 1])
            statistic[i] = a * d / (b * c) if b > 0 and c > 0 else np.inf
            p_value[i] = _fisher_two_sided(int(a), int(a + b), int(a + c), int(a + b + c + d), log_factorial)
            df[i] = np.nan
            test_used[i] = FISHER
            continue
        continuity = requested == YATES and rows == 2
        x2 = 0.0
        for level in range(2):
            for arm in range(2):
                e = expected[level, arm]
                deviation = abs(t[level, arm] - e)
                if continuity:
                    deviation = deviation - min(0.5, deviation)
                x2 += deviation * deviation / e if e > 0 else 0.0
        statistic[i] = x2
        df[i] = rows - 1.0
        test_used[i] = YATES if continuity else PEARSON
        chi_square[i] = True
    return statistic, p_value, df, test_used, status, chi_square


#: Reassociation lets the compiler split the sums over patients into vector lanes.
_LANES = {"reassoc", "contract"}


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_LANES)
def _arm_totals(weight, arm):
    """Sum of one replicate's weights in each arm (arm 1.0 treated, 0.0 control)."""
    treated = control = 0.0
    for p in range(weight.shape[0]):
        w_t = weight[p] * arm[p]
        treated += w_t
        control += weight[p] - w_t  # exact: w or 0
    return treated, control


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_LANES)
def _outcome_totals(weight, arm, outcome):
    """Sum of one replicate's weights of the patients with the outcome (1.0 or 0.0), per arm."""
    treated = control = 0.0
    for p in range(weight.shape[0]):
        w_o = weight[p] * outcome[p]
        w_t = w_o * arm[p]
        treated += w_t
        control += w_o - w_t
    return treated, control


@numba.njit(cache=True, nogil=True, error_model="numpy")
def arm_counts(outcome, treated, weight):
    """Weighted number of patients per arm, and of those with each outcome.

    Parameters
    ----------
    outcome : ndarray of bool, shape (replicate, patient, endpoint)
    treated : ndarray of bool, shape (replicate, patient)
    weight : ndarray of float64, shape (replicate, patient)

    Returns
    -------
    n_per_arm : ndarray of float64, shape (replicate, arm)
    events : ndarray of float64, shape (replicate, endpoint, arm)
        Arms (treated, control). Sums over patients in vector lanes: exact for integer
        weights, to rounding otherwise.
    integral : bool
        Every weight is an integer, so the counts are exact whatever the order of the sums.
        Otherwise a count that is a half-integer in exact arithmetic rounds (SPSS's rounded
        cell counts) by the last bit of its sum, which depends on that order: the caller then
        counts in the oracle's order.
    """
    n_rep, n_pat, n_end = outcome.shape
    n_per_arm = np.empty((n_rep, 2))
    events = np.empty((n_rep, n_end, 2))
    arm = np.empty(n_pat)
    has = np.empty(n_pat)
    integral = True
    for r in range(n_rep):
        for p in range(n_pat):
            arm[p] = 1.0 if treated[r, p] else 0.0
            integral = integral and weight[r, p] == math.floor(weight[r, p])
        n_per_arm[r, 0], n_per_arm[r, 1] = _arm_totals(weight[r], arm)
        for e in range(n_end):
            for p in range(n_pat):
                has[p] = 1.0 if outcome[r, p, e] else 0.0
            events[r, e, 0], events[r, e, 1] = _outcome_totals(weight[r], arm, has)
    return n_per_arm, events, integral


@numba.njit(cache=True, nogil=True, error_model="numpy")
def code_counts(codes, treated, weight, accepted):
    """:func:`arm_counts` of outcomes defined by codes: patient p has outcome e when
    ``accepted[e, codes[p]]`` (codes outside ``0 .. accepted.shape[1] - 1``: no outcome).

    Parameters
    ----------
    codes : ndarray of int8, shape (replicate, patient)
    treated : ndarray of bool, shape (replicate, patient)
    weight : ndarray of float64, shape (replicate, patient)
    accepted : ndarray of bool, shape (endpoint, code)

    Returns
    -------
    n_per_arm, events, integral
        As :func:`arm_counts`.
    """
    n_rep, n_pat = codes.shape
    n_end, n_codes = accepted.shape
    n_per_arm = np.empty((n_rep, 2))
    events = np.empty((n_rep, n_end, 2))
    arm = np.empty(n_pat)
    has = np.empty(n_pat)
    integral = True
    for r in range(n_rep):
        for p in range(n_pat):
            arm[p] = 1.0 if treated[r, p] else 0.0
            integral = integral and weight[r, p] == math.floor(weight[r, p])
        n_per_arm[r, 0], n_per_arm[r, 1] = _arm_totals(weight[r], arm)
        for e in range(n_end):
            for p in range(n_pat):
                code = codes[r, p]
                has[p] = 1.0 if 0 <= code < n_codes and accepted[e, code] else 0.0
            events[r, e, 0], events[r, e, 1] = _outcome_totals(weight[r], arm, has)
    return n_per_arm, events, integral


def warm_up() -> None:
    """Load (or compile, on an installation's first use) :func:`two_by_two` and
    :func:`arm_counts` for the argument types :mod:`analysis.comparisons.categorical` and
    :mod:`analysis.comparisons.response` pass, on one small table and one replicate."""
    two_by_two(np.array([[[1.0, 2.0], [3.0, 4.0]]]), RULE_CODES["fisher"], np.zeros(11))
    arm_counts(np.zeros((1, 2, 1), bool), np.array([[True, False]]), np.ones((1, 2)))
    code_counts(np.zeros((1, 2), np.int8), np.array([[True, False]]), np.ones((1, 2)), np.ones((2, 4), bool))
