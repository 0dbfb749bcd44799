"""Kaplan-Meier curves and median survival with confidence intervals, batched over replicates.

:func:`kaplan_meier` returns every replicate's step function in a padded layout (one row per
replicate, one column per distinct time, ``valid`` marking the real columns);
:func:`km_median` reads the median and its confidence interval off those curves.

Median rule (R ``quantile.survfit``, survival 3.x): the median is the first time at which
S(t) <= 0.5. If S(t) equals 0.5 (within ``sqrt(machine epsilon)``, R's tolerance) on an
interval, the median is the midpoint between the time S reaches 0.5 and the next time S
drops; if S stays at 0.5 until the end of follow-up, the midpoint between the time S reaches
0.5 and the largest observed time. ``median_rule="first"`` gives the first time with
S(t) <= 0.5 (+ tolerance) instead, as SPSS and lifelines report it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from analysis import status as status_codes
from analysis.survival.risk_sets import Packing, RiskSetTable, cumulative_sums, tabulate_risk_sets

#: Tolerance for "S(t) equals p" (R ``quantile.survfit``: ``sqrt(.Machine$double.eps)``).
SURVIVAL_TOLERANCE = float(np.sqrt(np.finfo(float).eps))


@dataclass(frozen=True)
class KaplanMeier:
    """Kaplan-Meier step functions of a block of replicates, padded to a common width.

    Column ``k`` of a row is the k-th distinct observed time (event or censoring) of that
    replicate's cohort; columns with ``valid`` False are padding (NaN times and values).

    Attributes
    ----------
    time : ndarray of float, shape (replicate, time)
        Distinct observed times in increasing order, months.
    n_at_risk, n_events, n_censored : ndarray of float, shape (replicate, time)
        Weighted numbers at risk just before, with an event at, and censored at each time.
    survival : ndarray of float, shape (replicate, time)
        S(t) = prod_{t_j <= t} (1 - d_j / n_j).
    greenwood_var_sum : ndarray of float, shape (replicate, time)
        Greenwood sum sum_{t_j <= t} d_j / (n_j (n_j - d_j)) = Var(log S(t)); ``inf`` from
        the time S reaches 0 (R ``survfit`` reports a NaN/Inf standard error there).
    valid : ndarray of bool, shape (replicate, time)
        True on real columns.
    last_time : ndarray of float, shape (replicate,)
        Largest observed time (NaN for an empty cohort).
    """

    time: np.ndarray
    n_at_risk: np.ndarray
    n_events: np.ndarray
    n_censored: np.ndarray
    survival: np.ndarray
    greenwood_var_sum: np.ndarray
    valid: np.ndarray
    last_time: np.ndarray

    @property
    def standard_error(self) -> np.ndarray:
        """Greenwood standard error of S(t), S(t) * sqrt(greenwood_var_sum); shape (replicate, time)."""
        with np.errstate(invalid="ignore"):
            return self.survival * np.sqrt(self.greenwood_var_sum)


def kaplan_meier(time, event, *, mask=None, weights=None) -> KaplanMeier:
    """Kaplan-Meier estimate with Greenwood variance for every replicate of a block.

    Parameters
    ----------
    time : array_like of float, shape (replicate, patient)
        Observed times, months.
    event : array_like of bool, shape (replicate, patient)
        True for an event, False for censored.
    mask : array_like of bool, shape (replicate, patient), optional
        Who is in the analysed cohort (default everyone); e.g. ``cohort & treated`` for one arm.
    weights : array_like of float, shape (replicate, patient), optional
        Non-negative frequency weights (default 1).

    Returns
    -------
    KaplanMeier
        Padded to the largest number of distinct times in the block.

    References
    ----------
    Kaplan EL, Meier P (1958). J Am Stat Assoc 53:457-481. Greenwood M (1926). Reports on
    Public Health and Medical Subjects 33.
    """
    table = tabulate_risk_sets(time, event, mask=mask, weights=weights)
    return kaplan_meier_from_table(table, arm="control")


def _arm_counts(table: RiskSetTable, arm: str):
    """(at risk, events, total weight of the tie group) of one arm, per row of the table."""
    if arm == "treated":
        at_risk, events = table.at_risk_treated, table.events_treated
        arm_weight = table.weight * table.treated
    else:
        at_risk, events = table.at_risk_control, table.events_control
        if not table.treated.any():  # one-sample table: the arm is everyone
            return at_risk, events, table.tie_weight
        arm_weight = table.weight - table.weight * table.treated  # as tabulate_risk_sets
    # Sums over the tie group of the arm's weights, as tabulate_risk_sets sums all weights.
    n_replicates, n_patients = table.time.shape
    row_offset = (np.arange(n_replicates, dtype=np.int64) * (n_patients + 1))[:, None]
    cumulative = cumulative_sums(arm_weight).ravel()
    tie_weight = cumulative[table.tie_last + 1 + row_offset] - cumulative[table.tie_first + row_offset]
    return at_risk, events, tie_weight


_ARMS = ("treated", "control")


def kaplan_meier_from_table(table: RiskSetTable, *, arm: str = "control") -> KaplanMeier:
    """Kaplan-Meier estimate of one arm from a two-arm (or one-sample) risk-set table.

    The risk sets of an arm are its own columns of the table (``at_risk_treated`` and
    ``events_treated`` for the treated arm), so one table sorted once serves both arms, the
    log-rank test and the Cox model. Without strata the result equals :func:`kaplan_meier`
    with ``mask = cohort & arm``.

    Parameters
    ----------
    table : RiskSetTable
        From :func:`analysis.survival.risk_sets.tabulate_risk_sets`, without ``strata``. A table built
        without ``treated`` is one sample: use ``arm="control"``.
    arm : {"treated", "control"}
        Whose curve.

    Returns
    -------
    KaplanMeier
    """
    if arm not in _ARMS:
        raise ValueError(f"unknown arm {arm!r}; choose one of {', '.join(_ARMS)}")
    if table.stratum_first.any():
        raise ValueError("kaplan_meier_from_table needs a table built without strata")
    at_risk, events, tie_weight = _arm_counts(table, arm)
    compact = Packing(table.is_tie_last & (tie_weight > 0))  # one column per distinct time
    valid = compact.valid()
    n_at_risk = compact(at_risk, 0.0)
    n_events = compact(events, 0.0)
    n_censored = compact(tie_weight - events, 0.0)
    times = compact(table.time, np.nan)
    # Non-integer weights: at-risk sums are differences of cumulative sums, so "everyone left
    # dies" can leave a rounding residue n - d ~ 1e-16 n; it is n - d = 0 (exact for integers).
    n_events = np.where((n_events > 0) & (n_events >= n_at_risk * (1.0 - 1e-12)), n_at_risk, n_events)

    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(valid, 1.0 - n_events / n_at_risk, 1.0)
        increment = np.where(
            n_events > 0,
            np.where(n_at_risk > n_events, n_events / (n_at_risk * (n_at_risk - n_events)), np.inf),
            0.0,
        )
    survival = np.where(valid, np.cumprod(factor, axis=1), np.nan)
    greenwood = np.where(valid, np.cumsum(increment, axis=1), np.nan)
    last_time = np.where(valid.any(axis=1), np.nanmax(np.where(valid, times, -np.inf), axis=1), np.nan)
    return KaplanMeier(
        time=times,
        n_at_risk=n_at_risk,
        n_events=n_events,
        n_censored=n_censored,
        survival=survival,
        greenwood_var_sum=greenwood,
        valid=valid,
        last_time=last_time,
    )


@dataclass(frozen=True)
class MedianEstimate:
    """Median survival time with a confidence interval, one value per replicate.

    Attributes
    ----------
    median : ndarray of float, shape (replicate,)
        Median survival, months (NaN when S(t) never reaches 0.5: "not reached").
    lower, upper : ndarray of float, shape (replicate,)
        Confidence limits, months (NaN when not reached / undefined).
    se : ndarray of float, shape (replicate,)
        Standard error of the median by the Collett (1994) density formula used for the SPSS
        symmetric interval (reported for every ``ci`` method; NaN where undefined).
    status : ndarray of int8, shape (replicate,)
        EMPTY_ARM when the cohort is empty, else OK (also when the median is not reached).
    """

    median: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    se: np.ndarray
    status: np.ndarray


def _first_crossing(times, level_curve, valid, last_time, *, probability=0.5, rule="midpoint"):
    """First time a step curve falls to ``probability``, with R's midpoint rule for a flat at it.

    ``level_curve`` is S(t) or a confidence band at the distinct times; NaN (band undefined,
    e.g. where S = 0) never counts as a crossing. Returns shape (replicate,).
    """
    tolerance = SURVIVAL_TOLERANCE
    index = np.arange(times.shape[1])
    with np.errstate(invalid="ignore"):
        reached = valid & (level_curve <= probability + tolerance)
        below = valid & (level_curve <= probability - tolerance)
    has_reached = reached.any(axis=1)
    first = np.argmax(reached, axis=1)
    time_first = np.take_along_axis(times, first[:, None], axis=1)[:, 0]
    if rule == "first":
        return np.where(has_reached, time_first, np.nan)
    below &= index >= first[:, None]
    has_below = below.any(axis=1)
    second = np.argmax(below, axis=1)
    time_second = np.take_along_axis(times, second[:, None], axis=1)[:, 0]
    # A flat at `probability` up to the end of the curve: midpoint with the last time, unless
    # the curve ends undefined (R returns NA then).
    last_column = np.maximum(valid.sum(axis=1) - 1, 0)
    last_level = np.take_along_axis(level_curve, last_column[:, None], axis=1)[:, 0]
    end_time = np.where(np.isnan(last_level), np.nan, last_time)
    return np.where(
        has_reached, (time_first + np.where(has_below, time_second, end_time)) / 2.0, np.nan
    )


def _log_band(survival, sigma, z):
    """R ``survfit`` ``conf.type="log"``: S exp(-+ z sigma), undefined at S = 0, upper capped at 1."""
    defined = survival > 0
    lower = np.where(defined, survival * np.exp(-z * sigma), np.nan)
    upper = np.where(defined, np.minimum(survival * np.exp(z * sigma), 1.0), np.nan)
    return lower, upper


def _loglog_band(survival, sigma, z):
    """``conf.type="log-log"`` (lifelines' exponential Greenwood): undefined at S = 0 and S = 1."""
    defined = (survival > 0) & (survival < 1)
    log_s = np.log(np.where(defined, survival, 0.5))
    shift = z * sigma / log_s
    lower = np.where(defined, np.exp(-np.exp(np.log(-log_s) - shift)), np.nan)
    upper = np.where(defined, np.exp(-np.exp(np.log(-log_s) + shift)), np.nan)
    return lower, upper


def _plain_band(survival, sigma, z):
    """``conf.type="plain"``: S -+ z S sigma, clipped to [0, 1]."""
    half_width = z * sigma * survival
    return np.maximum(survival - half_width, 0.0), np.minimum(survival + half_width, 1.0)


_BANDS = {
    "brookmeyer_crowley_log": _log_band,
    "brookmeyer_crowley_loglog": _loglog_band,
    "brookmeyer_crowley_plain": _plain_band,
}
_CI_METHODS = (*_BANDS, "spss_symmetric")
_MEDIAN_RULES = ("midpoint", "first")


def _collett_median_se(km: KaplanMeier, median_column, has_median):
    """Collett (1994) standard error of the median: SE_Greenwood(S(t50)) / f, with
    f = (S(u) - S(l)) / (l - u), u = last event time with S >= 0.55, l = first event time
    with S <= 0.45 (time 0 with S = 1 when no event time has S >= 0.55)."""
    tolerance = SURVIVAL_TOLERANCE
    is_event_time = km.valid & (km.n_events > 0)
    index = np.arange(km.time.shape[1])
    upper_side = is_event_time & (km.survival >= 0.55 - tolerance)
    has_upper = upper_side.any(axis=1)
    upper_column = np.max(np.where(upper_side, index, -1), axis=1)
    lower_side = is_event_time & (km.survival <= 0.45 + tolerance)
    has_lower = lower_side.any(axis=1)
    lower_column = np.argmax(lower_side, axis=1)

    def at(values, column):
        return np.take_along_axis(values, np.maximum(column, 0)[:, None], axis=1)[:, 0]

    time_u = np.where(has_upper, at(km.time, upper_column), 0.0)
    surv_u = np.where(has_upper, at(km.survival, upper_column), 1.0)
    time_l = at(km.time, lower_column)
    surv_l = at(km.survival, lower_column)
    with np.errstate(divide="ignore", invalid="ignore"):
        density = (surv_u - surv_l) / (time_l - time_u)
        se_survival = at(km.survival, median_column) * np.sqrt(at(km.greenwood_var_sum, median_column))
        se = se_survival / density
    return np.where(has_median & has_lower & np.isfinite(se), se, np.nan)


def km_median(
    km_or_time,
    event=None,
    *,
    mask=None,
    weights=None,
    ci: str = "brookmeyer_crowley_log",
    level: float = 0.95,
    median_rule: str = "midpoint",
    arm: str | None = None,
    compiled: bool = True,
) -> MedianEstimate:
    """Median survival time and its confidence interval for every replicate.

    Parameters
    ----------
    km_or_time : KaplanMeier, RiskSetTable or array_like of float, shape (replicate, patient)
        A :class:`KaplanMeier` result; a risk-set table without strata, whose ``arm``'s curve
        (:func:`kaplan_meier_from_table`) is read; or the times (months) to estimate one from
        with ``event``, ``mask`` and ``weights``.
    event, mask, weights : array_like, shape (replicate, patient), optional
        As in :func:`kaplan_meier` (only when ``km_or_time`` holds times).
    ci : {"brookmeyer_crowley_log", "brookmeyer_crowley_loglog", "brookmeyer_crowley_plain", \
"spss_symmetric"}
        Confidence interval. The Brookmeyer-Crowley methods invert the pointwise band of S(t)
        as R ``quantile.survfit`` does: lower limit = first time the *lower* band is <= 0.5,
        upper limit = first time the *upper* band is <= 0.5 (NaN if never), with the same
        midpoint rule as the median. Bands (sigma^2 = Greenwood sum): ``log`` S exp(+-z sigma)
        (R ``survfit`` default), ``loglog`` exp(-exp(log(-log S) -+ z sigma / log S))
        (lifelines, SAS), ``plain`` S(1 +- z sigma). ``spss_symmetric``: median +- z SE with
        the Collett SE (see ``se``); the 0.55/0.45 thresholds and the use of event times only
        are the textbook formula and are unverified against SPSS output; the lower limit may
        be negative.
    level : float
        Confidence level (z = Phi^-1(1 - (1 - level) / 2), 1.959964 for 0.95).
    median_rule : {"midpoint", "first"}
        R's midpoint rule for a flat at exactly 0.5 (default) or the first time with
        S(t) <= 0.5 (SPSS, lifelines).
    arm : {"treated", "control"}, optional
        Whose curve, with a risk-set table only (required then).
    compiled : bool
        With a table or times: read the median off the risk sets in compiled code
        (:mod:`analysis.survival.km_kernels`, the same numbers without building the curves);
        False builds the curves and reads them in numpy, the kernel's test oracle. A
        :class:`KaplanMeier` result is always read in numpy.

    Returns
    -------
    MedianEstimate
        Arrays of shape (replicate,).

    Notes
    -----
    A band that is not monotone (the upper log band can rise where few remain at risk) is
    read at its *first* crossing; R's ``approx``-based search reads it at the band value
    closest to 0.5 from below instead, which differs only in that case.

    References
    ----------
    Brookmeyer R, Crowley J (1982). Biometrics 38:29-41. Collett D (1994). Modelling Survival
    Data in Medical Research, Chapman & Hall, section 2.4. Therneau TM, survival package,
    ``quantile.survfit``.
    """
    if ci not in _CI_METHODS:
        raise ValueError(f"unknown ci {ci!r}; choose one of {', '.join(_CI_METHODS)}")
    if median_rule not in _MEDIAN_RULES:
        raise ValueError(f"unknown median_rule {median_rule!r}; choose one of {', '.join(_MEDIAN_RULES)}")
    z = float(special.ndtri(1.0 - (1.0 - level) / 2.0))
    if isinstance(km_or_time, (KaplanMeier, RiskSetTable)):
        if event is not None or mask is not None or weights is not None:
            raise ValueError("pass event/mask/weights only with times, not with a KaplanMeier result or a table")
    if isinstance(km_or_time, RiskSetTable):
        if arm not in _ARMS:
            raise ValueError(f"with a risk-set table, arm must be one of {', '.join(_ARMS)}; got {arm!r}")
        table = km_or_time
        if not compiled:
            km = kaplan_meier_from_table(table, arm=arm)
    elif arm is not None:
        raise ValueError("arm is for a risk-set table, not for a KaplanMeier result or times")
    elif isinstance(km_or_time, KaplanMeier):
        km, table = km_or_time, None
    else:
        if event is None:
            raise ValueError("event is required when km_or_time holds times")
        table = tabulate_risk_sets(km_or_time, event, mask=mask, weights=weights)
        arm = "control"  # a one-sample table
        if not compiled:
            km = kaplan_meier_from_table(table, arm=arm)
    if compiled and table is not None:
        from analysis.survival import km_kernels

        if table.stratum_first.any():
            raise ValueError("kaplan_meier_from_table needs a table built without strata")
        median, lower, upper, se, status = km_kernels.medians_of_table(table, arm=arm, ci=ci, z=z,
                                                                       midpoint=median_rule == "midpoint")
        return MedianEstimate(median=median, lower=lower, upper=upper, se=se, status=status)

    median = _first_crossing(km.time, km.survival, km.valid, km.last_time, rule=median_rule)
    with np.errstate(invalid="ignore"):
        reached = km.valid & (km.survival <= 0.5 + SURVIVAL_TOLERANCE)
    has_median = reached.any(axis=1)
    se = _collett_median_se(km, np.argmax(reached, axis=1), has_median)

    if ci == "spss_symmetric":
        lower, upper = median - z * se, median + z * se
    else:
        with np.errstate(invalid="ignore", over="ignore"):
            band_lower, band_upper = _BANDS[ci](km.survival, np.sqrt(km.greenwood_var_sum), z)
        lower = _first_crossing(km.time, band_lower, km.valid, km.last_time)
        upper = _first_crossing(km.time, band_upper, km.valid, km.last_time)

    status = np.where(km.valid.any(axis=1), status_codes.OK, status_codes.EMPTY_ARM).astype(np.int8)
    return MedianEstimate(median=median, lower=lower, upper=upper, se=se, status=status)
