"""Compiled weighted moments of the balance table (numba), one replicate at a time.

:func:`analysis.propensity.balance.standardised_differences_by_cohort` needs, for every cohort
and every covariate column, the weighted mean and MatchIt ``wvar`` variance in four weightings
(the cohort's weights and the reference weights, times each arm). The numpy path
(:func:`analysis.propensity.balance._moments_by_cohort`, the oracle) stacks those weightings
into (replicate, patient, 4) arrays per cohort, expands categorical covariates into indicator
columns, centres every column into a (replicate, patient, column) copy and its square, and
multiplies by ``matmul``: at 100 patients the calls and the batched small products, at 10,000
the copies, were the cost. :func:`cohort_moments` reads each patient's row once per pass
instead, with the same centring, and accumulates the sums of every *distinct* weight array
(the analysis passes the full cohort's ones both as a cohort and as the reference: one array)
in the patient's own arm only (the other arm's weight is 0 in the numpy products).

The formulas are the oracle's: the shift is the plain mean of each column over the patients
with a positive weight in some weighting (others count as 0, so a NaN there is never read),
then ``mean = shift + S1/W``, ``sum of squares = max(S2 - S1 * S1/W, 0)``, the reliability
variance ``SS / W / (1 - Q/W^2)`` and ``m (1 - m)`` for binary columns, with ``W = sum w``,
``Q = sum w^2``, ``S1 = sum w (x - shift)``, ``S2 = sum w (x - shift)^2`` (binary variances
at least 0). What differs is the
order of the sums over patients (one running sum per weighting here, BLAS's blocking there), so
means and variances agree to rounding (~1e-15 relative; SMDs to 1e-12, test:
tests/analysis/propensity/test_balance_kernels.py on random cohorts with categorical levels,
fractional and zero weights and NaN values outside the cohorts). The weight totals, which
decide the empty-arm status, are sums of non-negative weights: zero exactly when every weight
is, in any order.

Compiled on first use and cached on disk (``cache=True``); see :func:`warm_up`.
"""

from __future__ import annotations

import numba
import numpy as np

#: ``level`` of a column that is the covariate's own value (not a categorical level indicator).
RAW = -1.0


#: Patients per block of :func:`cohort_moments`: a block's centred columns (column x block
#: doubles) stay in the first-level cache while every weighting's sums read them.
BLOCK = 128
#: Reassociation lets the compiler split each sum over a block's patients into vector lanes
#: (partial sums added at the end: the order of the additions changes, nothing else).
_LANES = {"reassoc", "contract"}


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _value(values, r, p, source, level):
    """Column value of patient p: the covariate, or the 0/1 indicator of ``level``."""
    x = values[r, p, source]
    if level == RAW:
        return x
    return 1.0 if x == level else 0.0


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_LANES)
def _weight_sums(weight, arm, n):
    """Sum of the weights and of their squares in each arm (arm 1.0 treated, 0.0 control)."""
    total_t = squares_t = total_c = squares_c = 0.0
    for i in range(n):
        w_t = weight[i] * arm[i]
        w_c = weight[i] - w_t  # exact: w or 0
        total_t += w_t
        squares_t += w_t * w_t
        total_c += w_c
        squares_c += w_c * w_c
    return total_t, squares_t, total_c, squares_c


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_LANES)
def _column_sums(centred, weight, arm, n):
    """``sum w x`` and ``sum w x^2`` of one centred column in each arm."""
    first_t = second_t = first_c = second_c = 0.0
    for i in range(n):
        x = centred[i]
        w_t = weight[i] * arm[i]
        wx_t = w_t * x
        wx_c = (weight[i] - w_t) * x  # w - w_t is exact (w or 0), fused or not
        first_t += wx_t
        second_t += wx_t * x
        first_c += wx_c
        second_c += wx_c * x
    return first_t, second_t, first_c, second_c


@numba.njit(cache=True, nogil=True, error_model="numpy")
def cohort_moments(values, treated, weights, source, level, binary, slots):
    """Weighted means and ``wvar`` variances of every column in every cohort's four weightings.

    Per replicate: one pass for the shift (the plain mean of each column over the patients
    with a positive weight somewhere), then blocks of :data:`BLOCK` patients, each centred
    into a (column, block) scratch, and every weight array's sums of the block in both arms.

    Parameters
    ----------
    values : ndarray of float64, shape (replicate, patient, covariate)
    treated : ndarray of bool, shape (replicate, patient)
    weights : tuple of ndarray of float64, each shape (replicate, patient)
        The distinct weight arrays (non-negative).
    source : ndarray of int64, shape (column,)
        The covariate each column reads.
    level : ndarray of float64, shape (column,)
        :data:`RAW` for the covariate's value, else the categorical level the column indicates.
    binary : ndarray of bool, shape (column,)
        ``m (1 - m)`` variances for these columns, the reliability-weighted one otherwise.
    slots : ndarray of int64, shape (cohort, 4)
        Each cohort's four weightings as ``2 * k + arm`` (weight array k; arm 0 treated,
        1 control), in the order (weight x treated, weight x control, reference x treated,
        reference x control).

    Returns
    -------
    mean, variance : ndarray of float64, shape (cohort, replicate, column, 4)
        NaN where a weighting's total weight is zero (as the oracle).
    total : ndarray of float64, shape (cohort, replicate, 4)
        Total weight of each weighting.
    """
    n_rep, n_pat, _ = values.shape
    n_col = source.shape[0]
    n_weights = len(weights)
    n_cohorts = slots.shape[0]
    mean = np.empty((n_cohorts, n_rep, n_col, 4))
    variance = np.empty((n_cohorts, n_rep, n_col, 4))
    total = np.empty((n_cohorts, n_rep, 4))
    raw = True  # every column is its covariate's value, in order
    for c in range(n_col):
        raw = raw and level[c] == RAW and source[c] == c
    shift = np.empty(n_col)
    centred = np.empty((n_col, BLOCK))
    block_weights = np.empty((n_weights, BLOCK))
    arm = np.empty(BLOCK)
    first = np.empty((2 * n_weights, n_col))
    second = np.empty((2 * n_weights, n_col))
    sums = np.empty(2 * n_weights)
    squares = np.empty(2 * n_weights)
    present = np.empty(n_pat, dtype=np.bool_)
    for r in range(n_rep):
        count = 0
        shift[:] = 0.0
        for p in range(n_pat):
            used = False
            for k in range(n_weights):
                used = used or weights[k][r, p] > 0.0
            present[p] = used
            if used:
                count += 1
                if raw:  # the patient's row as a view: unit-stride loads (~10% of the kernel)
                    row = values[r, p]
                    for c in range(n_col):
                        shift[c] += row[c]
                else:
                    for c in range(n_col):
                        shift[c] += _value(values, r, p, source[c], level[c])
        for c in range(n_col):
            shift[c] /= max(count, 1)
        first[:, :] = 0.0
        second[:, :] = 0.0
        sums[:] = 0.0
        squares[:] = 0.0
        for start in range(0, n_pat, BLOCK):
            n = min(BLOCK, n_pat - start)
            for i in range(n):
                p = start + i
                arm[i] = 1.0 if treated[r, p] else 0.0
                for k in range(n_weights):
                    block_weights[k, i] = weights[k][r, p]
                if not present[p]:  # weight 0 everywhere; its value (maybe NaN) counts as 0
                    for c in range(n_col):
                        centred[c, i] = -shift[c]
                elif raw:
                    row = values[r, p]
                    for c in range(n_col):
                        centred[c, i] = row[c] - shift[c]
                else:
                    for c in range(n_col):
                        centred[c, i] = _value(values, r, p, source[c], level[c]) - shift[c]
            for k in range(n_weights):
                t, c = 2 * k, 2 * k + 1
                total_t, squares_t, total_c, squares_c = _weight_sums(block_weights[k], arm, n)
                sums[t] += total_t
                squares[t] += squares_t
                sums[c] += total_c
                squares[c] += squares_c
                for j in range(n_col):
                    first_t, second_t, first_c, second_c = _column_sums(centred[j], block_weights[k], arm, n)
                    first[t, j] += first_t
                    second[t, j] += second_t
                    first[c, j] += first_c
                    second[c, j] += second_c
        for g in range(n_cohorts):
            for q in range(4):
                j = slots[g, q]
                t = sums[j]
                total[g, r, q] = t
                for c in range(n_col):
                    centred_mean = first[j, c] / t
                    m = shift[c] + centred_mean
                    mean[g, r, c, q] = m
                    if binary[c]:
                        variance[g, r, c, q] = max(m * (1.0 - m), 0.0)
                    else:
                        sum_of_squares = max(second[j, c] - first[j, c] * centred_mean, 0.0)
                        variance[g, r, c, q] = sum_of_squares / t / (1.0 - squares[j] / (t * t))
    return mean, variance, total


#: Denominator codes of :func:`standardised_table` (the names of
#: :data:`analysis.propensity.balance.SMD_DENOMINATORS`).
DENOMINATOR_CODES = {"treated": 0, "control": 1, "pooled": 2}


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _standardise(difference, var_treated, var_control, denominator, zero_sd):
    """One SMD as :func:`analysis.propensity.balance._standardise` computes it."""
    pooled = np.sqrt((var_treated + var_control) / 2.0)
    if denominator == 0:
        sd = np.sqrt(var_treated)
    elif denominator == 1:
        sd = np.sqrt(var_control)
    else:
        sd = pooled
    if not (np.isfinite(sd) and sd >= zero_sd):
        sd = pooled
    if np.isfinite(sd) and sd < zero_sd:  # both arms constant
        if np.isnan(difference):
            return np.nan
        if abs(difference) <= zero_sd:
            return 0.0
        return np.inf if difference > 0 else -np.inf
    return difference / sd


@numba.njit(cache=True, nogil=True, error_model="numpy")
def standardised_table(mean, variance, total, owner, categorical, continuous, denominator, zero_sd, tie):
    """SMDs, variance ratios, max |SMD| and empty-arm flags from :func:`cohort_moments`' output.

    The rules of :func:`analysis.propensity.balance.standardised_differences_by_cohort`
    (its numpy post-processing is the oracle): the denominator with its pooled fallback and
    the zero-SD cases, a categorical covariate's level with the largest |SMD| (ties within
    ``tie`` relative to the lowest level), NaN for a cohort replicate with an empty arm.

    Parameters
    ----------
    mean, variance : ndarray of float64, shape (cohort, replicate, column, 4)
    total : ndarray of float64, shape (cohort, replicate, 4)
    owner : ndarray of int64, shape (column,)
        The covariate of each column (a categorical covariate's levels are consecutive).
    categorical : ndarray of bool, shape (covariate,)
    continuous : ndarray of bool, shape (column,)
        Columns with a variance ratio.
    denominator : int
        A code of :data:`DENOMINATOR_CODES`.
    zero_sd, tie : float
        :data:`analysis.propensity.balance.ZERO_SD` and ``LEVEL_TIE_TOLERANCE``.

    Returns
    -------
    smd, variance_ratio : ndarray of float64, shape (cohort, replicate, covariate)
    max_abs : ndarray of float64, shape (cohort, replicate)
    empty : ndarray of bool, shape (cohort, replicate)
    """
    n_cohorts, n_rep, n_col, _ = mean.shape
    n_cov = categorical.shape[0]
    smd = np.full((n_cohorts, n_rep, n_cov), np.nan)
    ratio = np.full((n_cohorts, n_rep, n_cov), np.nan)
    max_abs = np.empty((n_cohorts, n_rep))
    empty = np.empty((n_cohorts, n_rep), dtype=np.bool_)
    column = np.empty(n_col)
    for g in range(n_cohorts):
        for r in range(n_rep):
            none = False
            for q in range(4):
                none = none or total[g, r, q] <= 0.0
            empty[g, r] = none
            for c in range(n_col):
                column[c] = _standardise(mean[g, r, c, 0] - mean[g, r, c, 1], variance[g, r, c, 2],
                                         variance[g, r, c, 3], denominator, zero_sd)
            c = 0
            while c < n_col:
                j = owner[c]
                if not categorical[j]:
                    smd[g, r, j] = column[c]
                    if continuous[c]:
                        ratio[g, r, j] = variance[g, r, c, 0] / variance[g, r, c, 1]
                    c += 1
                    continue
                end = c
                largest = -np.inf
                while end < n_col and owner[end] == j:
                    largest = max(largest, -1.0 if np.isnan(column[end]) else abs(column[end]))
                    end += 1
                pick = c  # as argmax: the first level within the tie, else the first level
                for k in range(c, end):
                    magnitude = -1.0 if np.isnan(column[k]) else abs(column[k])
                    if magnitude >= largest * (1.0 - tie):
                        pick = k
                        break
                smd[g, r, j] = column[pick]
                c = end
            largest = -np.inf
            for j in range(n_cov):
                if none:
                    smd[g, r, j] = np.nan
                    ratio[g, r, j] = np.nan
                elif not np.isnan(smd[g, r, j]):
                    largest = max(largest, abs(smd[g, r, j]))
            max_abs[g, r] = np.nan if largest == -np.inf else largest
    return smd, ratio, max_abs, empty


def warm_up() -> None:
    """Load (or compile, on an installation's first use) :func:`cohort_moments` for the
    argument types :func:`analysis.propensity.balance.standardised_differences_by_cohort`
    passes (one and two distinct weight arrays), on a two-patient replicate."""
    values = np.zeros((1, 2, 1))
    treated = np.array([[True, False]])
    ones = np.ones((1, 2))
    columns = (np.zeros(1, np.int64), np.full(1, RAW), np.zeros(1, bool))
    for weights in ((ones,), (ones, ones), (ones, ones, ones)):
        mean, variance, total = cohort_moments(values, treated, weights, *columns, np.zeros((1, 4), np.int64))
    standardised_table(mean, variance, total, columns[0], np.zeros(1, bool), np.ones(1, bool), 0, 1e-8, 1e-12)
