"""Categorical two-group tests, batched over replicates: contingency tables, Pearson's
chi-square, Yates' corrected chi-square, Fisher's exact test and the named selection rules a
paper applies to pick one per table (:func:`categorical_test`). Conventions and references:
:mod:`analysis.comparisons.group_tests`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from analysis import status
from analysis.comparisons import table_kernels
from analysis.comparisons.group_tests import (
    FISHER,
    FISHER_RELATIVE_TOLERANCE,
    MIN_EXPECTED_COUNT,
    NO_TEST,
    PAPER_MIN_OBSERVED_COUNT,
    PEARSON,
    YATES,
    TestResult,
    frequency_weights,
)


def contingency_table(levels, treated, *, n_levels, weights=None, round_counts=True):
    """Weighted ``(level, arm)`` counts of a categorical variable.

    Parameters
    ----------
    levels : ndarray of int, shape (replicate, patient) or (replicate, patient, variable)
        Level index 0..n_levels-1 of each patient (a binary variable has levels 0 and 1).
        Values outside that range count nowhere.
    treated : ndarray of bool, shape (replicate, patient)
    n_levels : int
        Number of levels (rows of the table).
    weights : ndarray of float, shape (replicate, patient), optional
        Frequency weights (0 = not in the analysed cohort). Default: everybody once.
    round_counts : bool
        Round the weighted cell counts to integers, as SPSS CROSSTABS does by default with
        non-integer weights ("round cell counts"); 0/1 weights are unaffected.

    Returns
    -------
    ndarray of float, shape (replicate, level, arm) or (replicate, variable, level, arm)
        Column 0 is the treated arm, column 1 the control arm (:data:`ARMS`).
    """
    levels = np.asarray(levels)
    treated = np.asarray(treated, dtype=bool)
    weight = frequency_weights(treated, weights)
    if levels.ndim not in (2, 3) or levels.shape[:2] != treated.shape:
        raise ValueError(
            "levels must be shaped (replicate, patient[, variable]) with (replicate, patient)"
            f" {treated.shape}; got {levels.shape}"
        )
    per_variable = levels if levels.ndim == 3 else levels[:, :, None]
    arm_weight = np.stack([weight * treated, weight * ~treated], axis=-1)  # (R, P, arm)
    by_variable = per_variable.transpose(0, 2, 1)  # (R, V, P)
    table = np.stack(
        [np.matmul((by_variable == level).astype(float), arm_weight) for level in range(n_levels)],
        axis=-2,
    )  # (R, V, level, arm)
    if levels.ndim == 2:
        table = table[:, 0]
    return np.rint(table) if round_counts else table


@dataclass(frozen=True)
class _TableMargins:
    """A batch of ``(..., level, arm)`` tables with expected counts and degeneracy flags."""

    table: np.ndarray
    expected: np.ndarray
    total: np.ndarray
    df: np.ndarray
    empty_arm: np.ndarray
    constant: np.ndarray

    @property
    def valid(self):
        return ~self.empty_arm & ~self.constant

    def _over_present_rows(self, cells):
        row_present = (self.table.sum(axis=-1) > 0)[..., None]
        return np.where(row_present, cells, np.inf).min(axis=(-2, -1))

    def min_expected(self):
        """Smallest expected count over the non-empty rows (inf where none)."""
        return self._over_present_rows(self.expected)

    def min_observed(self):
        """Smallest observed count over the non-empty rows (inf where none)."""
        return self._over_present_rows(self.table)


def _margins(table) -> _TableMargins:
    table = np.asarray(table, dtype=float)
    if table.ndim < 2 or table.shape[-1] != 2 or table.shape[-2] < 2:
        raise ValueError(
            f"contingency tables must be shaped (..., level, arm) with >= 2 levels and 2 arms;"
            f" got {table.shape}"
        )
    row = table.sum(axis=-1)
    col = table.sum(axis=-2)
    total = col.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = row[..., :, None] * col[..., None, :] / total[..., None, None]
    rows_present = (row > 0).sum(axis=-1)
    empty_arm = (col <= 0).any(axis=-1)
    constant = ~empty_arm & (rows_present <= 1)
    df = (rows_present - 1).astype(float)  # (non-empty rows - 1) * (2 arms - 1)
    return _TableMargins(table, expected, total, df, empty_arm, constant)


def _run_table_tests(margins, requested) -> TestResult:
    """Run the requested test code (PEARSON, YATES or FISHER) on each table of the batch.

    Yates applies only where the table has one degree of freedom (else Pearson is used and
    recorded); Fisher only to 2x2 tables (the caller guarantees the shape).
    """
    requested = np.broadcast_to(np.asarray(requested, dtype=np.int8), margins.valid.shape)
    continuity = (requested == YATES) & (margins.df == 1)
    used = np.where((requested == YATES) & ~continuity, PEARSON, requested).astype(np.int8)
    valid = margins.valid

    deviation = np.abs(margins.table - margins.expected)
    deviation = deviation - np.where(continuity[..., None, None], np.minimum(0.5, deviation), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(margins.expected > 0, deviation**2 / margins.expected, 0.0)
    statistic = np.array(terms.sum(axis=(-2, -1)), dtype=float)  # arrays even for one table
    p_value = _chi2_survival(statistic, margins.df, valid)
    df = np.array(margins.df, dtype=float)

    fisher = (used == FISHER) & valid
    if fisher.any():
        counts = np.rint(margins.table[fisher])
        a, b, c, d = counts[:, 0, 0], counts[:, 0, 1], counts[:, 1, 0], counts[:, 1, 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            statistic[fisher] = np.where((b > 0) & (c > 0), a * d / (b * c), np.inf)
        p_value[fisher] = _fisher_two_sided(a, a + b, a + c, a + b + c + d)
        df[fisher] = np.nan

    constant_statistic = np.where(used == FISHER, np.nan, 0.0)
    statistic = np.where(
        margins.empty_arm, np.nan, np.where(margins.constant, constant_statistic, statistic)
    )
    return TestResult(
        statistic=statistic,
        p_value=np.where(valid, p_value, np.where(margins.constant, 1.0, np.nan)),
        test_used=np.where(valid, used, NO_TEST).astype(np.int8),
        status=np.where(margins.empty_arm, status.EMPTY_ARM, status.OK).astype(np.int8),
        df=np.where(valid, df, np.nan),
    )


def _chi2_survival(statistic, df, valid):
    """Upper tail of chi-square: erfc(sqrt(x/2)) for one df, the incomplete gamma otherwise."""
    with np.errstate(invalid="ignore"):
        p_value = np.array(special.erfc(np.sqrt(np.maximum(statistic, 0.0) / 2.0)), dtype=float)
    several = valid & (df > 1)
    if several.any():
        p_value[several] = special.chdtrc(df[several], statistic[several])
    return p_value


def pearson_chi2(table, *, compiled=True) -> TestResult:
    """Pearson's chi-square test of independence of level and arm.

    ``X^2 = sum (O - E)^2 / E`` over the cells of the non-empty rows, ``E = row * column / N``,
    referred to chi-square with (non-empty rows - 1) degrees of freedom (empty rows are dropped
    as SPSS does; scipy's ``chi2_contingency`` refuses them). Equals
    ``scipy.stats.chi2_contingency(table, correction=False)``.

    Parameters
    ----------
    table : ndarray, shape (..., level, arm)
        Counts; ``arm`` has length 2 (treated, control).
    compiled : bool
        As in :func:`categorical_test` (2x2 tables compiled, identical results).

    Returns
    -------
    TestResult
        Shapes ``table.shape[:-2]``. A constant table: statistic 0, p 1.0, NO_TEST; an empty
        arm: NaN, EMPTY_ARM.
    """
    return categorical_test(table, rule="pearson", compiled=compiled)  # the rule is always Pearson


def yates_chi2(table, *, compiled=True) -> TestResult:
    """Chi-square with Yates' continuity correction (for one degree of freedom).

    ``X^2_c = sum max(|O - E| - 0.5, 0)^2 / E``: for a 2x2 table this is SPSS CROSSTABS'
    "Continuity Correction" ``N (|ad - bc| - N/2)^2 / (r1 r2 c1 c2)`` (0 when
    ``|ad - bc| < N/2``) and ``scipy.stats.chi2_contingency(table, correction=True)``.
    Tables with more than two non-empty rows get the uncorrected Pearson statistic
    (``test_used`` PEARSON), as in SPSS and scipy.

    Parameters
    ----------
    table : ndarray, shape (..., level, arm)
    compiled : bool
        As in :func:`categorical_test` (2x2 tables compiled, identical results).

    Returns
    -------
    TestResult
        Shapes ``table.shape[:-2]``; degenerate tables as :func:`pearson_chi2`.
    """
    return categorical_test(table, rule="yates", compiled=compiled)  # the rule is always Yates


def fisher_exact(table, *, compiled=True) -> TestResult:
    """Fisher's exact test of a 2x2 table, two-sided.

    Conditional on the margins, the treated count of level 0 is hypergeometric; the two-sided
    p-value sums the probabilities of all tables no more probable than the observed one (with
    relative tolerance :data:`FISHER_RELATIVE_TOLERANCE`, as R ``fisher.test``; scipy uses
    1e-14, which differs only for probabilities within 1e-7 of each other). All tables are
    evaluated at once over the padded support.

    Parameters
    ----------
    table : ndarray, shape (..., 2, 2)
        Counts (rounded to integers).
    compiled : bool
        As in :func:`categorical_test` (p-values to ~1e-15 relative).

    Returns
    -------
    TestResult
        Shapes ``table.shape[:-2]``. statistic = sample odds ratio ``t00 t11 / (t01 t10)`` as
        scipy (inf when ``t01 t10 = 0``; NaN for a constant table, which gets p 1.0 and
        NO_TEST). An empty arm gives NaN and EMPTY_ARM (scipy returns 1.0).

    Raises
    ------
    ValueError
        If the table is not 2x2 (Fisher-Freeman-Halton for r x 2 is not implemented).
    """
    table = np.asarray(table, dtype=float)
    if table.shape[-2:] != (2, 2):
        raise ValueError(f"fisher_exact needs (..., 2, 2) tables; got {table.shape}")
    return categorical_test(np.rint(table), rule="fisher", compiled=compiled)


def _fisher_two_sided(observed, row0, col0, total):
    """Two-sided hypergeometric p-value of ``observed``; all arrays shaped (table,), integral.

    P(x) is proportional to C(col0, x) C(total - col0, row0 - x) on
    max(0, row0 + col0 - total) <= x <= min(row0, col0).
    """
    observed, row0, col0, total = (
        np.asarray(v, dtype=np.int64) for v in (observed, row0, col0, total)
    )
    log_factorial = special.gammaln(np.arange(int(total.max()) + 1, dtype=float) + 1.0)

    def log_choose(n, k):
        return log_factorial[n] - log_factorial[k] - log_factorial[n - k]

    low = np.maximum(0, row0 + col0 - total)
    high = np.minimum(row0, col0)
    x = low[:, None] + np.arange(int((high - low).max()) + 1)
    in_support = x <= high[:, None]
    x = np.where(in_support, x, low[:, None])
    log_weight = log_choose(col0[:, None], x) + log_choose(
        (total - col0)[:, None], row0[:, None] - x
    )
    log_observed = log_choose(col0, observed) + log_choose(total - col0, row0 - observed)
    largest = np.where(in_support, log_weight, -np.inf).max(axis=1)
    weight = np.where(in_support, np.exp(log_weight - largest[:, None]), 0.0)
    observed_weight = np.exp(log_observed - largest)
    as_extreme = weight <= observed_weight[:, None] * (1.0 + FISHER_RELATIVE_TOLERANCE)
    p_value = (weight * as_extreme).sum(axis=1) / weight.sum(axis=1)
    return np.minimum(p_value, 1.0)


# --------------------------------------------------------------------------------------------
# Selection rules
# --------------------------------------------------------------------------------------------


def _rule_pearson(margins):
    return PEARSON


def _rule_yates(margins):
    return YATES


def _rule_fisher(margins):
    return FISHER


def _rule_fisher_if_expected_lt5(margins):
    return np.where(margins.min_expected() < MIN_EXPECTED_COUNT, FISHER, PEARSON)


def _rule_yates_if_expected_lt5(margins):
    return np.where(margins.min_expected() < MIN_EXPECTED_COUNT, YATES, PEARSON)


def _rule_paper(margins):
    small = (margins.min_expected() < MIN_EXPECTED_COUNT) | (
        margins.min_observed() < PAPER_MIN_OBSERVED_COUNT
    )
    return np.where(small, YATES, PEARSON)


#: Selection rules of :func:`categorical_test`: name -> function(margins) -> test code(s).
CATEGORICAL_RULES = {
    "paper": _rule_paper,
    "pearson": _rule_pearson,
    "yates": _rule_yates,
    "fisher": _rule_fisher,
    "fisher_if_expected_lt5": _rule_fisher_if_expected_lt5,
    "yates_if_expected_lt5": _rule_yates_if_expected_lt5,
}


def categorical_test(table, *, rule="paper", compiled=True) -> TestResult:
    """Compare a categorical variable between arms with the test a named rule selects.

    Rules (the selection is per table):

    ``"paper"``
        Yates' corrected chi-square where any expected count is < 5 or any observed count is
        < 3, Pearson's chi-square otherwise. This reproduces 85 of the 102 categorical
        p-values of Tables 1-3 of the study paper from its own counts (see
        tests/analysis/test_paper_pvalues.py for the 17 that no rule reproduces and why). The
        observed-count clause is needed for one row only (HBV carrier before PSM, 33/35 vs
        52/65: smallest expected count 5.25, printed p = Yates); without it the rule is
        ``"yates_if_expected_lt5"``.
    ``"yates_if_expected_lt5"``
        Yates where any expected count is < 5, Pearson otherwise (DESIGN.md section 5).
    ``"fisher_if_expected_lt5"``
        Fisher's exact test where any expected count is < 5 (the footnote SPSS prints under the
        chi-square table; Cochran 1954), Pearson otherwise.
    ``"pearson"``, ``"yates"``, ``"fisher"``
        Always that test.

    Expected and observed counts are taken over the non-empty rows. Yates applies only to
    tables with one degree of freedom; Fisher only to 2x2 tables: a table with more than two
    levels gets Pearson's chi-square under every rule (what SPSS prints without the Exact Tests
    module), recorded in ``test_used``.

    Parameters
    ----------
    table : ndarray, shape (..., level, arm)
        Counts, arms (treated, control); e.g. (replicate, 2, 2) or (replicate, variable, r, 2).
    rule : str
        One of :data:`CATEGORICAL_RULES`.
    compiled : bool
        2x2 tables of non-negative counts go through
        :func:`analysis.comparisons.table_kernels.two_by_two` (default), one loop over the
        tables; False, or other tables: the numpy path (its oracle). The same statistics, test
        codes and statuses; Fisher's p-values to ~1e-15 relative (its ``exp`` and the order of
        its sums), the chi-square ones identical.

    Returns
    -------
    TestResult
        Shapes ``table.shape[:-2]``; constant tables p = 1.0 (NO_TEST), empty arms NaN.

    Raises
    ------
    ValueError
        For an unknown rule (the message lists the valid ones) or a badly shaped table.
    """
    if rule not in CATEGORICAL_RULES:
        raise ValueError(f"unknown rule {rule!r}; choose one of {sorted(CATEGORICAL_RULES)}")
    if compiled:
        table = np.asarray(table, dtype=float)
        if table.ndim >= 2 and table.shape[-2:] == (2, 2) and (table >= 0).all():
            return _two_by_two_compiled(table, rule)
    margins = _margins(table)
    requested = np.asarray(CATEGORICAL_RULES[rule](margins), dtype=np.int8)
    if margins.table.shape[-2] > 2:
        requested = np.where(requested == FISHER, PEARSON, requested)
    return _run_table_tests(margins, requested)


#: ``gammaln(n + 1)`` for n = 0, 1, ...: one table, grown as larger ones are needed (its
#: entries do not depend on its length), so Fisher's test does not call gammaln per batch.
_LOG_FACTORIAL = [np.zeros(1)]


def _log_factorial(largest):
    if _LOG_FACTORIAL[0].size <= largest:
        _LOG_FACTORIAL[0] = special.gammaln(np.arange(max(int(largest) + 1, 2 * _LOG_FACTORIAL[0].size),
                                                      dtype=float) + 1.0)
    return _LOG_FACTORIAL[0]


def _two_by_two_compiled(table, rule) -> TestResult:
    """:func:`categorical_test` of (..., 2, 2) tables of non-negative counts by
    :func:`analysis.comparisons.table_kernels.two_by_two`; the chi-square p-values by scipy's
    ``erfc``, as :func:`_chi2_survival` computes them."""
    shape = table.shape[:-2]
    tables = np.ascontiguousarray(table.reshape(-1, 2, 2))
    largest = np.rint(tables).sum(axis=(1, 2)).max(initial=0.0) if rule.startswith("fisher") else 0
    statistic, p_value, df, test_used, codes, chi_square = table_kernels.two_by_two(
        tables, table_kernels.RULE_CODES[rule], _log_factorial(largest))
    if chi_square.any():
        p_value[chi_square] = special.erfc(np.sqrt(np.maximum(statistic[chi_square], 0.0) / 2.0))
    return TestResult(statistic=statistic.reshape(shape), p_value=p_value.reshape(shape),
                      test_used=test_used.reshape(shape), status=codes.reshape(shape), df=df.reshape(shape))
