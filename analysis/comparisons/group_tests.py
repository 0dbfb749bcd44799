"""Two-group tests as clinical papers run them, batched over replicates.

Continuous variables: Student's and Welch's t-tests and the Mann-Whitney U test (asymptotic,
as SPSS NPAR TESTS prints it). Categorical variables: Pearson's chi-square, Yates' continuity
corrected chi-square and Fisher's exact test on ``(level, arm)`` contingency tables, plus the
named *selection rules* a paper applies to pick one of them per table
(:func:`categorical_test`).

Conventions
-----------
* Arms are ordered :data:`ARMS` = ``("treated", "control")``: a contingency table is shaped
  ``(..., level, arm)`` with column 0 the treated arm, and the statistics of the continuous
  tests are "treated minus control" (t) or the U of the treated sample.
* ``weights`` (replicate, patient) are frequency weights: 0 leaves the patient out of the
  analysed cohort, 1 counts them once (matched samples use 0/1 matching weights). The value of a
  patient with weight 0 is never used (it may be NaN).
* Degenerate replicates never raise: an empty arm gives NaN with status
  :data:`analysis.status.EMPTY_ARM`; a statistic that is undefined for another reason (a
  constant continuous variable, an arm of one in Welch's test) gives NaN with
  :data:`analysis.status.UNDEFINED`. A contingency table whose outcome is constant (all
  patients in one level, e.g. "no complete response in either arm") gets p = 1.0 with status
  OK and ``test_used`` :data:`NO_TEST`: SPSS prints no chi-square for it ("no statistics are
  computed because ... is a constant") and papers print 1.000, which is also the exact
  conditional p-value (the hypergeometric support has a single point).

References
----------
Pearson K (1900). Phil Mag 50:157-175. Yates F (1934). Contingency tables involving small
numbers and the chi-square test. Suppl J R Stat Soc 1:217-235. Fisher RA (1935). The logic of
inductive inference. J R Stat Soc 98:39-82. Mann HB, Whitney DR (1947). Ann Math Stat 18:50-60.
Welch BL (1947). Biometrika 34:28-35. Cochran WG (1954). Some methods for strengthening the
common chi-square tests. Biometrics 10:417-451 (expected counts below 5).
IBM SPSS Statistics 25 Algorithms: CROSSTABS (continuity-adjusted chi-square only for 2x2
tables; cell counts of non-integer weights rounded by default), NPAR TESTS (Mann-Whitney
Z = (U - n1 n0 / 2) / sqrt(n1 n0 / (N (N - 1)) ((N^3 - N) / 12 - sum T)), T = (t^3 - t) / 12,
no continuity correction; an exact p is added only for N <= 40 cases).
R ``fisher.test`` (two-sided p sums the tables with probability <= the observed one times
1 + 1e-7).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from analysis import status

#: Arm order of every ``arm`` axis: column 0 of a contingency table is the treated arm.
ARMS = ("treated", "control")

#: Codes of ``TestResult.test_used``.
NO_TEST = -1
PEARSON = 0
YATES = 1
FISHER = 2
STUDENT_T = 3
WELCH_T = 4
MANN_WHITNEY = 5
#: Name of every test code.
TEST_NAMES = {
    NO_TEST: "none",
    PEARSON: "pearson_chi2",
    YATES: "yates_chi2",
    FISHER: "fisher_exact",
    STUDENT_T: "student_t",
    WELCH_T: "welch_t",
    MANN_WHITNEY: "mann_whitney",
}

#: Relative tolerance of "probability <= the observed one" in Fisher's test (R fisher.test).
FISHER_RELATIVE_TOLERANCE = 1e-7
#: Expected count below which the small-sample rules switch test (Cochran 1954).
MIN_EXPECTED_COUNT = 5.0
#: Observed count below which the ``paper`` rule also switches to Yates (see categorical_test).
PAPER_MIN_OBSERVED_COUNT = 3.0


@dataclass(frozen=True)
class TestResult:
    """Result of a batched two-group test.

    Attributes
    ----------
    statistic : ndarray of float, shape (...)
        Chi-square statistic (Pearson or Yates); sample odds ratio ``t00 t11 / (t01 t10)``
        (Fisher, as scipy; inf when ``t01 t10 = 0``); t (treated minus control); or U of the
        treated sample (Mann-Whitney, as scipy's ``mannwhitneyu(treated, control)``).
    p_value : ndarray of float, shape (...)
        Two-sided p-value; NaN where ``status`` is not OK.
    test_used : ndarray of int8, shape (...)
        Code of the test that produced the p-value (:data:`TEST_NAMES`); :data:`NO_TEST` for a
        constant contingency table or an empty arm.
    status : ndarray of int8, shape (...)
        :data:`analysis.status.OK`, ``EMPTY_ARM`` or ``UNDEFINED``.
    df : ndarray of float, shape (...)
        Degrees of freedom of the reference distribution (chi-square, t); NaN for Fisher and
        Mann-Whitney.
    """

    __test__ = False  # not a pytest test class

    statistic: np.ndarray
    p_value: np.ndarray
    test_used: np.ndarray
    status: np.ndarray
    df: np.ndarray


# --------------------------------------------------------------------------------------------
# Contingency tables
# --------------------------------------------------------------------------------------------


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
    weight = _weights_like(treated, weights)
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


def pearson_chi2(table) -> TestResult:
    """Pearson's chi-square test of independence of level and arm.

    ``X^2 = sum (O - E)^2 / E`` over the cells of the non-empty rows, ``E = row * column / N``,
    referred to chi-square with (non-empty rows - 1) degrees of freedom (empty rows are dropped
    as SPSS does; scipy's ``chi2_contingency`` refuses them). Equals
    ``scipy.stats.chi2_contingency(table, correction=False)``.

    Parameters
    ----------
    table : ndarray, shape (..., level, arm)
        Counts; ``arm`` has length 2 (treated, control).

    Returns
    -------
    TestResult
        Shapes ``table.shape[:-2]``. A constant table: statistic 0, p 1.0, NO_TEST; an empty
        arm: NaN, EMPTY_ARM.
    """
    return _run_table_tests(_margins(table), PEARSON)


def yates_chi2(table) -> TestResult:
    """Chi-square with Yates' continuity correction (for one degree of freedom).

    ``X^2_c = sum max(|O - E| - 0.5, 0)^2 / E``: for a 2x2 table this is SPSS CROSSTABS'
    "Continuity Correction" ``N (|ad - bc| - N/2)^2 / (r1 r2 c1 c2)`` (0 when
    ``|ad - bc| < N/2``) and ``scipy.stats.chi2_contingency(table, correction=True)``.
    Tables with more than two non-empty rows get the uncorrected Pearson statistic
    (``test_used`` PEARSON), as in SPSS and scipy.

    Parameters
    ----------
    table : ndarray, shape (..., level, arm)

    Returns
    -------
    TestResult
        Shapes ``table.shape[:-2]``; degenerate tables as :func:`pearson_chi2`.
    """
    return _run_table_tests(_margins(table), YATES)


def fisher_exact(table) -> TestResult:
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
    return _run_table_tests(_margins(np.rint(table)), FISHER)


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


def categorical_test(table, *, rule="paper") -> TestResult:
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
    margins = _margins(table)
    requested = np.asarray(CATEGORICAL_RULES[rule](margins), dtype=np.int8)
    if margins.table.shape[-2] > 2:
        requested = np.where(requested == FISHER, PEARSON, requested)
    return _run_table_tests(margins, requested)


# --------------------------------------------------------------------------------------------
# Continuous variables
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _GroupMoments:
    """Frequency-weighted size, mean and sum of squares per arm, shapes (replicate,)."""

    n_treated: np.ndarray
    n_control: np.ndarray
    mean_treated: np.ndarray
    mean_control: np.ndarray
    ss_treated: np.ndarray
    ss_control: np.ndarray


def _weights_like(group, weights):
    if weights is None:
        return np.ones(np.shape(group), dtype=float)
    weights = np.asarray(weights, dtype=float)
    if weights.shape != np.shape(group):
        raise ValueError(
            f"weights must be shaped like group (replicate, patient) {np.shape(group)};"
            f" got {weights.shape}"
        )
    return weights


def _moments(x, group, weights):
    group = np.asarray(group, dtype=bool)
    weight = _weights_like(group, weights)
    x = np.where(weight > 0, np.asarray(x, dtype=float), 0.0)
    w1 = weight * group
    w0 = weight * ~group
    n1 = w1.sum(axis=-1)
    n0 = w0.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        m1 = (w1 * x).sum(axis=-1) / n1
        m0 = (w0 * x).sum(axis=-1) / n0
        ss1 = (w1 * (x - m1[..., None]) ** 2).sum(axis=-1)
        ss0 = (w0 * (x - m0[..., None]) ** 2).sum(axis=-1)
    return _GroupMoments(n1, n0, m1, m0, ss1, ss0)


def _continuous_result(statistic, p_value, df, code, test_status):
    shape = np.shape(test_status)
    ok = test_status == status.OK
    return TestResult(
        statistic=np.where(ok, statistic, np.nan).astype(float).reshape(shape),
        p_value=np.where(ok, p_value, np.nan).astype(float).reshape(shape),
        test_used=np.where(ok, np.int8(code), np.int8(NO_TEST)).astype(np.int8),
        status=np.asarray(test_status, dtype=np.int8),
        df=np.where(ok, df, np.nan).astype(float).reshape(shape),
    )


def student_t(x, group, *, weights=None) -> TestResult:
    """Student's two-sample t-test with pooled variance (SPSS "equal variances assumed").

    ``t = (m1 - m0) / sqrt(s_p^2 (1/n1 + 1/n0))``, ``s_p^2 = (SS1 + SS0) / (n1 + n0 - 2)``,
    df = n1 + n0 - 2, with frequency-weighted n, means and sums of squares. Equals
    ``scipy.stats.ttest_ind(x_treated, x_control)``; unlike scipy an arm of one patient is
    allowed (its sum of squares is 0).

    Parameters
    ----------
    x : ndarray of float, shape (replicate, patient)
    group : ndarray of bool, shape (replicate, patient)
        True for the treated arm.
    weights : ndarray of float, shape (replicate, patient), optional
        Frequency weights; 0 = not in the analysed cohort. Default: everybody once.

    Returns
    -------
    TestResult
        Shapes (replicate,). Empty arm: EMPTY_ARM; df < 1, or both arms constant at the same
        value (t = 0/0): UNDEFINED. Both arms constant at different values: t = +-inf, p = 0.
    """
    mom = _moments(x, group, weights)
    df = mom.n_treated + mom.n_control - 2.0
    difference = mom.mean_treated - mom.mean_control
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled_var = (mom.ss_treated + mom.ss_control) / df
        t = difference / np.sqrt(pooled_var * (1.0 / mom.n_treated + 1.0 / mom.n_control))
        p_value = 2.0 * special.stdtr(df, -np.abs(t))
    test_status = _continuous_status(mom, df >= 1, t)
    return _continuous_result(t, p_value, df, STUDENT_T, test_status)


def welch_t(x, group, *, weights=None) -> TestResult:
    """Welch's unequal-variance t-test (SPSS "equal variances not assumed").

    ``t = (m1 - m0) / sqrt(v1/n1 + v0/n0)`` with Welch-Satterthwaite df
    ``(v1/n1 + v0/n0)^2 / ((v1/n1)^2/(n1-1) + (v0/n0)^2/(n0-1))``. Equals
    ``scipy.stats.ttest_ind(..., equal_var=False)`` (including its df = 1 when both variances
    are 0).

    Parameters
    ----------
    x, group, weights
        As :func:`student_t`.

    Returns
    -------
    TestResult
        Shapes (replicate,). Empty arm: EMPTY_ARM; an arm with n < 2 or t = 0/0: UNDEFINED.
    """
    mom = _moments(x, group, weights)
    with np.errstate(divide="ignore", invalid="ignore"):
        vn1 = mom.ss_treated / (mom.n_treated - 1.0) / mom.n_treated
        vn0 = mom.ss_control / (mom.n_control - 1.0) / mom.n_control
        df = (vn1 + vn0) ** 2 / (vn1**2 / (mom.n_treated - 1.0) + vn0**2 / (mom.n_control - 1.0))
        df = np.where(np.isnan(df), 1.0, df)
        t = (mom.mean_treated - mom.mean_control) / np.sqrt(vn1 + vn0)
        p_value = 2.0 * special.stdtr(df, -np.abs(t))
    enough = (mom.n_treated >= 2) & (mom.n_control >= 2)
    test_status = _continuous_status(mom, enough, t)
    return _continuous_result(t, p_value, df, WELCH_T, test_status)


def _continuous_status(mom, enough, statistic):
    empty = (mom.n_treated <= 0) | (mom.n_control <= 0)
    undefined = ~enough | np.isnan(statistic)
    return np.where(
        empty, status.EMPTY_ARM, np.where(undefined, status.UNDEFINED, status.OK)
    ).astype(np.int8)


def mann_whitney(x, group, *, weights=None, continuity=False) -> TestResult:
    """Mann-Whitney U test, normal approximation with tie correction (SPSS asymptotic sig.).

    Midranks over the analysed cohort (frequency weights: a patient of weight w counts as w
    tied copies), ``U1 = R1 - n1 (n1 + 1) / 2`` for the treated arm,
    ``z = (|U1 - n1 n0 / 2| - c) / sqrt(n1 n0 / 12 ((N + 1) - sum(t^3 - t) / (N (N - 1))))``,
    p = 2 (1 - Phi(z)) clipped to 1. SPSS NPAR TESTS reports this Z **without** continuity
    correction (``continuity=False``, c = 0, the default); R ``wilcox.test(exact=FALSE)``
    and scipy's default use c = 0.5. Equals ``scipy.stats.mannwhitneyu(treated, control,
    method="asymptotic", use_continuity=continuity)``. SPSS's exact p for N <= 40 is not
    computed.

    Parameters
    ----------
    x : ndarray of float, shape (replicate, patient)
    group : ndarray of bool, shape (replicate, patient)
    weights : ndarray of float, shape (replicate, patient), optional
        Frequency weights (0 = not analysed). Default: everybody once.
    continuity : bool
        Subtract 0.5 from ``|U1 - mu|`` (R, scipy default) or not (SPSS).

    Returns
    -------
    TestResult
        Shapes (replicate,); statistic = U of the treated arm. Empty arm: EMPTY_ARM; all values
        tied (variance 0): UNDEFINED.
    """
    group = np.asarray(group, dtype=bool)
    weight = _weights_like(group, weights)
    x = np.asarray(x, dtype=float)
    n_replicates, n_patients = weight.shape
    values = np.where(weight > 0, x, 0.0)
    order = np.argsort(values, axis=-1, kind="stable")
    sorted_values = np.take_along_axis(values, order, axis=-1)
    sorted_weight = np.take_along_axis(weight, order, axis=-1)
    sorted_group = np.take_along_axis(group, order, axis=-1)
    starts = np.ones_like(sorted_values, dtype=bool)
    starts[:, 1:] = sorted_values[:, 1:] != sorted_values[:, :-1]
    block = np.cumsum(starts, axis=-1) - 1
    flat_block = block + (np.arange(n_replicates) * n_patients)[:, None]
    block_weight = np.bincount(
        flat_block.ravel(), weights=sorted_weight.ravel(), minlength=n_replicates * n_patients
    ).reshape(n_replicates, n_patients)
    weight_before = np.cumsum(block_weight, axis=-1) - block_weight
    block_rank = weight_before + (block_weight + 1.0) / 2.0
    rank = np.take_along_axis(block_rank, block, axis=-1)
    n1 = (sorted_weight * sorted_group).sum(axis=-1)
    n0 = (sorted_weight * ~sorted_group).sum(axis=-1)
    n = n1 + n0
    rank_sum = (sorted_weight * sorted_group * rank).sum(axis=-1)
    u1 = rank_sum - n1 * (n1 + 1.0) / 2.0
    tie_term = (block_weight**3 - block_weight).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        sd = np.sqrt(n1 * n0 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0))))
        z = (np.abs(u1 - n1 * n0 / 2.0) - (0.5 if continuity else 0.0)) / sd
        p_value = np.minimum(2.0 * special.ndtr(-z), 1.0)
    empty = (n1 <= 0) | (n0 <= 0)
    undefined = ~(sd > 0)
    test_status = np.where(
        empty, status.EMPTY_ARM, np.where(undefined, status.UNDEFINED, status.OK)
    ).astype(np.int8)
    return _continuous_result(u1, p_value, np.nan, MANN_WHITNEY, test_status)


#: Tests of :func:`continuous_test`.
CONTINUOUS_RULES = {"t": student_t, "welch": welch_t, "mann_whitney": mann_whitney}


def continuous_test(x, group, *, weights=None, rule="t") -> TestResult:
    """Compare a continuous variable between arms with the named test.

    Parameters
    ----------
    x, group, weights
        As :func:`student_t`.
    rule : str
        ``"t"`` (Student, what papers reporting mean +- SD use), ``"welch"`` or
        ``"mann_whitney"`` (papers reporting median (IQR); SPSS asymptotic, no continuity
        correction).

    Returns
    -------
    TestResult
        Shapes (replicate,).

    Raises
    ------
    ValueError
        For an unknown rule (the message lists the valid ones).
    """
    if rule not in CONTINUOUS_RULES:
        raise ValueError(f"unknown rule {rule!r}; choose one of {sorted(CONTINUOUS_RULES)}")
    return CONTINUOUS_RULES[rule](x, group, weights=weights)
