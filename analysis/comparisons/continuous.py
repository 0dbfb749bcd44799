"""Continuous two-group tests, batched over replicates: Student's and Welch's t-tests and the
Mann-Whitney U test (asymptotic, as SPSS NPAR TESTS prints it), and :func:`continuous_test`
choosing one by name. Conventions and references: :mod:`analysis.comparisons.group_tests`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from analysis import status
from analysis.comparisons.group_tests import MANN_WHITNEY, NO_TEST, STUDENT_T, WELCH_T, TestResult, frequency_weights


@dataclass(frozen=True)
class _GroupMoments:
    """Frequency-weighted size, mean and sum of squares per arm, shapes (replicate,)."""

    n_treated: np.ndarray
    n_control: np.ndarray
    mean_treated: np.ndarray
    mean_control: np.ndarray
    ss_treated: np.ndarray
    ss_control: np.ndarray


def _moments(x, group, weights):
    group = np.asarray(group, dtype=bool)
    weight = frequency_weights(group, weights)
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
    weight = frequency_weights(group, weights)
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
