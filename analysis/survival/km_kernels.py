"""Compiled Kaplan-Meier medians and their confidence intervals (numba), one replicate at a time.

:func:`analysis.survival.kaplan_meier.km_median` of
:func:`analysis.survival.kaplan_meier.kaplan_meier_from_table` builds every replicate's step
function in a padded (replicate, time) layout, then reads the median, the Brookmeyer-Crowley
limits and the Collett SE off it with some forty numpy calls; with 100 patients per replicate
the calls, not the arithmetic, were the cost. :func:`medians` reads the same numbers off the
risk-set table in one pass per replicate, without building the curves: the same columns (one
per distinct time with some of the arm's weight), the same counts, the same rounding guard,
the same products and sums in the same order (the survival curve is a running product and the
Greenwood sum a running sum, as ``np.cumprod``/``np.cumsum`` form them), the same crossing
rules.

What is not the numpy path's arithmetic: the bands' ``exp`` and ``log`` are the C library's,
which differ from numpy's SIMD ones by one ulp in a few percent of arguments. The medians,
limits and SEs are observed times, midpoints of two of them or the Collett formula of the
curve's values, so they are the numpy path's bit for bit unless a band value lies within an
ulp of 1/2 +- the survival tolerance; on 4,000 liu2021 curves and the random cohorts of
tests/analysis/survival/test_survival_kernels.py (ties, weights, empty arms, no events) every
median, limit and SE is identical.

Compiled on first use and cached on disk (``cache=True``); see :func:`warm_up`.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from analysis import status as status_codes

#: Tolerance for "S(t) equals p" (as analysis.survival.kaplan_meier.SURVIVAL_TOLERANCE).
_TOLERANCE = float(np.sqrt(np.finfo(float).eps))
#: Confidence-interval codes of :func:`medians`.
CI_CODES = {"brookmeyer_crowley_log": 0, "brookmeyer_crowley_loglog": 1, "brookmeyer_crowley_plain": 2,
            "spss_symmetric": 3}
_OK = status_codes.OK
_EMPTY_ARM = status_codes.EMPTY_ARM


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _first_crossing(times, curve, k, last_time, midpoint):
    """kaplan_meier._first_crossing on the ``k`` columns of one replicate (p = 1/2)."""
    first = -1
    for j in range(k):
        if curve[j] <= 0.5 + _TOLERANCE:  # False for NaN
            first = j
            break
    if first < 0:
        return np.nan
    if not midpoint:
        return times[first]
    second = -1
    for j in range(first, k):
        if curve[j] <= 0.5 - _TOLERANCE:
            second = j
            break
    if second >= 0:
        other = times[second]
    else:  # a flat at 1/2 to the end: the last time, unless the curve ends undefined
        other = np.nan if math.isnan(curve[k - 1]) else last_time
    return (times[first] + other) / 2.0


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _band(survival, sigma, z, ci, lower, upper, k):
    """The pointwise band of kaplan_meier._BANDS[ci] on ``k`` columns."""
    for j in range(k):
        s = survival[j]
        if ci == 0:  # log
            if s > 0:
                lower[j] = s * math.exp(-z * sigma[j])
                upper[j] = min(s * math.exp(z * sigma[j]), 1.0)
            else:
                lower[j] = np.nan
                upper[j] = np.nan
        elif ci == 1:  # log-log
            if s > 0 and s < 1:
                log_s = math.log(s)
                shift = z * sigma[j] / log_s
                lower[j] = math.exp(-math.exp(math.log(-log_s) - shift))
                upper[j] = math.exp(-math.exp(math.log(-log_s) + shift))
            else:
                lower[j] = np.nan
                upper[j] = np.nan
        else:  # plain (NaN stays NaN, as np.maximum/np.minimum propagate it)
            half_width = z * sigma[j] * s
            low = s - half_width
            high = s + half_width
            lower[j] = low if (math.isnan(low) or low > 0.0) else 0.0
            upper[j] = high if (math.isnan(high) or high < 1.0) else 1.0


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _log_band_not_below(s, sigma, z, sign, threshold):
    """True if the log band S exp(sign z sigma) (the upper one capped at 1) at S = ``s``,
    sigma = ``sigma``, is surely above ``threshold`` without computing it: exp(x) >= 1 + x
    bounds it below by s (1 + sign z sigma), with a margin of 1e-12 relative for rounding."""
    return s * (1.0 + sign * (z * sigma)) > threshold * (1.0 + 1e-12)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _log_band_crossing(times, survival, greenwood, k, last_time, z, sign, start):
    """``_first_crossing`` (midpoint rule) of the log band ``_band`` computes, lower
    (``sign`` -1) or upper (+1), on the ``k`` columns, computing the band (an ``exp`` each)
    only at columns from ``start`` on where it may be at or below the thresholds
    (:func:`_log_band_not_below`): the same band values where they are computed, so the same
    crossing. The upper band is >= S, so it cannot cross before S does (``start``)."""
    first = -1
    for j in range(start, k):
        s = survival[j]
        if not s > 0:  # undefined
            continue
        sigma = math.sqrt(greenwood[j])
        if _log_band_not_below(s, sigma, z, sign, 0.5 + _TOLERANCE):
            continue
        value = s * math.exp(-z * sigma) if sign < 0 else min(s * math.exp(z * sigma), 1.0)
        if value <= 0.5 + _TOLERANCE:
            first = j
            break
    if first < 0:
        return np.nan
    for j in range(first, k):
        s = survival[j]
        if not s > 0:
            continue
        sigma = math.sqrt(greenwood[j])
        if _log_band_not_below(s, sigma, z, sign, 0.5 - _TOLERANCE):
            continue
        value = s * math.exp(-z * sigma) if sign < 0 else min(s * math.exp(z * sigma), 1.0)
        if value <= 0.5 - _TOLERANCE:
            return (times[first] + times[j]) / 2.0
    # A flat at 1/2 to the end: the last time, unless the band ends undefined (S = 0).
    other = last_time if survival[k - 1] > 0 else np.nan
    return (times[first] + other) / 2.0


@numba.njit(cache=True, nogil=True, error_model="numpy")
def median_scratch(n_pat):
    """Work arrays of :func:`arm_median` for replicates of ``n_pat`` patients."""
    return (np.empty(n_pat + 1), np.empty(n_pat), np.empty(n_pat), np.empty(n_pat), np.empty(n_pat),
            np.empty(n_pat), np.empty(n_pat), np.empty(n_pat))


@numba.njit(cache=True, nogil=True, error_model="numpy")
def arm_median(time, tie_first, at_risk, events, tie_weight, arm_cumulative, use_tie_weight, group_rows, n_groups,
               ci, z, midpoint, scratch):
    """Median, confidence limits, Collett SE and status of one arm's curve in one replicate.

    ``time``, ``tie_first``, ``at_risk``, ``events`` and ``tie_weight`` are one replicate's
    rows of :func:`medians`'s (shape (patient,)); ``arm_cumulative`` (shape (patient + 1,))
    the cumulative sums of the arm's weights over the rows from 0, or, with
    ``use_tie_weight``, not read (the tie groups' weights are the arm's); ``group_rows`` the
    last rows of the ``n_groups`` tie groups in order; the options as :func:`medians`'s;
    ``scratch`` :func:`median_scratch`. Returns (median, lower, upper, se, status).
    """
    cumulative, times, n_events, survival, greenwood, sigma, band_lower, band_upper = scratch
    # The curve, one column per distinct time with some of the arm's weight: every tie group
    # is computed and kept where it is a column (selections, not branches: which groups are
    # columns is random), the same operations on the columns.
    k = 0
    product = 1.0
    running = 0.0
    for g in range(n_groups):
        i = group_rows[g]
        group_weight = tie_weight[i] if use_tie_weight else arm_cumulative[i + 1] - arm_cumulative[tie_first[i]]
        column = group_weight > 0
        n = at_risk[i]
        d = events[i]
        d = n if (d > 0) & (d >= n * (1.0 - 1e-12)) else d  # rounding residue of "all left die"
        next_product = product * (1.0 - d / n)
        increment = d / (n * (n - d))
        increment = increment if n > d else np.inf
        next_running = running + (increment if d > 0 else 0.0)
        times[k] = time[i]
        n_events[k] = d
        survival[k] = next_product
        greenwood[k] = next_running
        product = next_product if column else product
        running = next_running if column else running
        k += column
    if k == 0:
        return np.nan, np.nan, np.nan, np.nan, _EMPTY_ARM
    last_time = times[0]
    for j in range(1, k):
        last_time = max(last_time, times[j])
    median = _first_crossing(times, survival, k, last_time, midpoint)

    # The Collett SE (kaplan_meier._collett_median_se).
    median_column = -1
    for j in range(k):
        if survival[j] <= 0.5 + _TOLERANCE:
            median_column = j
            break
    upper_column = -1
    lower_column = -1
    for j in range(k):
        if n_events[j] > 0:
            if survival[j] >= 0.55 - _TOLERANCE:
                upper_column = j
            if lower_column < 0 and survival[j] <= 0.45 + _TOLERANCE:
                lower_column = j
    se = np.nan
    if median_column >= 0 and lower_column >= 0:
        time_u = times[upper_column] if upper_column >= 0 else 0.0
        surv_u = survival[upper_column] if upper_column >= 0 else 1.0
        density = (surv_u - survival[lower_column]) / (times[lower_column] - time_u)
        se_survival = survival[median_column] * math.sqrt(greenwood[median_column])
        se = se_survival / density
        if not math.isfinite(se):
            se = np.nan

    if ci == 3:  # SPSS's symmetric interval
        return median, median - z * se, median + z * se, se, _OK
    if ci == 0:  # the log band, computed where a crossing may be
        start = median_column if median_column >= 0 else k
        lower = _log_band_crossing(times, survival, greenwood, k, last_time, z, -1.0, 0)
        upper = _log_band_crossing(times, survival, greenwood, k, last_time, z, 1.0, start)
        return median, lower, upper, se, _OK
    for j in range(k):
        sigma[j] = math.sqrt(greenwood[j])
    _band(survival, sigma, z, ci, band_lower, band_upper, k)
    lower = _first_crossing(times, band_lower, k, last_time, True)
    upper = _first_crossing(times, band_upper, k, last_time, True)
    return median, lower, upper, se, _OK


@numba.njit(cache=True, nogil=True, error_model="numpy")
def medians(weight, treated, time, tie_first, tie_last, at_risk, events, tie_weight, use_tie_weight,
            arm_treated, ci, z, midpoint):
    """Median, confidence limits, Collett SE and status of one arm's curve, per replicate.

    Parameters
    ----------
    weight, treated, time, tie_first, tie_last : ndarray, shape (replicate, patient)
        Columns of the :class:`analysis.survival.risk_sets.RiskSetTable` (built without strata).
    at_risk, events : ndarray of float, shape (replicate, patient)
        The arm's columns (``at_risk_treated``/``events_treated`` or the control ones).
    tie_weight : ndarray of float, shape (replicate, patient)
        The table's ``tie_weight``, used as the arm's when ``use_tie_weight`` (a one-sample
        table); otherwise the arm's tie-group weights are summed here as numpy sums them.
    arm_treated : bool
    ci : int
        :data:`CI_CODES` of the interval.
    z : float
        Normal quantile of the level.
    midpoint : bool
        R's midpoint rule for the median (else the first time with S <= 1/2).

    Returns
    -------
    median, lower, upper, se : ndarray of float, shape (replicate,)
        As :class:`analysis.survival.kaplan_meier.MedianEstimate`.
    status : ndarray of int8, shape (replicate,)
    """
    n_rep, n_pat = weight.shape
    median_out = np.empty(n_rep)
    lower_out = np.empty(n_rep)
    upper_out = np.empty(n_rep)
    se_out = np.empty(n_rep)
    status_out = np.empty(n_rep, np.int8)
    scratch = median_scratch(n_pat)
    arm_cumulative = scratch[0]
    group_rows = np.empty(n_pat, np.int64)
    for r in range(n_rep):
        if not use_tie_weight:  # the arm's weight per tie group, from cumulative sums
            arm_cumulative[0] = 0.0
            for i in range(n_pat):
                w = weight[r, i]
                arm_weight = w * treated[r, i] if arm_treated else w - w * treated[r, i]
                arm_cumulative[i + 1] = arm_cumulative[i] + arm_weight
        n_groups = 0
        for i in range(n_pat):
            group_rows[n_groups] = i
            n_groups += tie_last[r, i] == i
        median_out[r], lower_out[r], upper_out[r], se_out[r], status_out[r] = arm_median(
            time[r], tie_first[r], at_risk[r], events[r], tie_weight[r], arm_cumulative, use_tie_weight, group_rows,
            n_groups, ci, z, midpoint, scratch)
    return median_out, lower_out, upper_out, se_out, status_out

def medians_of_table(table, *, arm: str, ci: str, z: float, midpoint: bool):
    """:func:`medians` of one arm of a :class:`analysis.survival.risk_sets.RiskSetTable`."""
    if arm == "treated":
        at_risk, events, one_sample = table.at_risk_treated, table.events_treated, False
    else:
        at_risk, events = table.at_risk_control, table.events_control
        one_sample = not table.treated.any()  # the arm is everyone (as kaplan_meier._arm_counts)
    return medians(table.weight, table.treated, table.time, table.tie_first, table.tie_last, at_risk, events,
                   table.tie_weight, one_sample, arm == "treated", CI_CODES[ci], float(z), midpoint)


def warm_up() -> None:
    """Load (or compile, on an installation's first use) :func:`medians` for the argument
    types :func:`analysis.survival.kaplan_meier.km_median` passes, on a two-patient replicate."""
    from analysis.survival.risk_sets import tabulate_risk_sets

    table = tabulate_risk_sets(np.array([[1.0, 2.0]]), np.array([[True, True]]), np.array([[True, False]]))
    medians_of_table(table, arm="treated", ci="brookmeyer_crowley_log", z=1.96, midpoint=True)
