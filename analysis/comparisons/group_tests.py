"""Two-group tests as clinical papers run them, batched over replicates: their shared result
type and codes. The tests are :mod:`analysis.comparisons.categorical` and
:mod:`analysis.comparisons.continuous`.

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


def frequency_weights(group, weights):
    """``weights`` as floats shaped like ``group`` (replicate, patient); all ones when None."""
    if weights is None:
        return np.ones(np.shape(group), dtype=float)
    weights = np.asarray(weights, dtype=float)
    if weights.shape != np.shape(group):
        raise ValueError(
            f"weights must be shaped like group (replicate, patient) {np.shape(group)};"
            f" got {weights.shape}"
        )
    return weights
