"""Covariate balance between arms: standardised mean differences and variance ratios.

Batched over replicates. The standardised mean difference (SMD) of a covariate is

    SMD = (mean_T - mean_C) / s

with means weighted by ``weights`` (the analysed cohort: 1/0 for the full cohort, matching
weights for a matched one) and the standard deviation ``s`` computed from
``reference_weights``. Two habits exist, and the caller picks one:

* MatchIt / cobalt / Stuart (2010): ``s`` comes from the **unmatched** sample and is reused
  after matching, so the SMDs before and after matching share a denominator and only the
  means move. Pass ``reference_weights`` = the full-cohort weights (ones) for both calls.
* Clinical papers (SPSS users; Austin 2009): ``s`` is recomputed in the sample itself, so
  after matching it is the SD of the matched sample. Leave ``reference_weights`` unset
  (it defaults to ``weights``).

Variances (as MatchIt's ``wvar`` and cobalt's ``col_w_sd``):

* binary covariates: ``p (1 - p)`` with the weighted proportion p (no n - 1 correction), at
  least 0: p is computed as a shift plus a centred mean, which for an arm where the covariate
  is constant can round a hair outside [0, 1] (its variance then counts as zero, not as a
  negative number whose square root would make the SMD NaN);
* continuous covariates: reliability-weighted ``sum w (x - m)^2 / (1 - sum w^2)`` with w
  normalised to sum to 1 in the arm (R ``cov.wt``; the usual n - 1 variance when unweighted).

Denominators: ``"treated"`` ``s = sqrt(v_T)`` (MatchIt's default for the ATT), ``"control"``
``s = sqrt(v_C)`` and ``"pooled"`` ``s = sqrt((v_T + v_C) / 2)`` (Austin 2009, equal
contribution of the arms). If ``s`` is below sqrt(machine epsilon) or not finite it falls back
to the pooled ``sqrt((v_T + v_C) / 2)`` (MatchIt falls back to a sample-size weighted pooled
SD; both are positive whenever either arm varies). If that is still below sqrt(eps) (both arms
constant) the SMD is 0 where the means agree to sqrt(eps) and +-inf where they differ (the
covariate separates the arms).

Categorical covariates (kind ``"categorical"``, levels 0..k-1) are summarised by one number:
the signed SMD of the level indicator with the largest |SMD|, each indicator treated as binary
(ties, e.g. the two levels of a two-level variable, go to the lowest level).
Callers wanting one row per level (cobalt's display) expand the covariate into indicator
columns of kind ``"binary"`` beforehand (e.g. the PS model's design expansion plus the
reference level).

References
----------
Austin PC (2009). Balance diagnostics for comparing the distribution of baseline covariates
between treatment groups in propensity-score matched samples. Stat Med 28:3083-3107.
Stuart EA (2010). Matching methods for causal inference: a review and a look forward. Stat Sci
25:1-21. MatchIt 4.x ``R/match.qoi.R`` (``bal1var``) and ``R/utils.R`` (``wvar``); cobalt 4.x
``col_w_smd``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis import status
from analysis.propensity import balance_kernels
from analysis.cohort import ANALYSIS_KINDS

#: Standard deviations (and mean differences) below this count as zero (MatchIt's threshold).
ZERO_SD = float(np.sqrt(np.finfo(float).eps))
#: Level indicators whose |SMD| agree to this relative tolerance tie; the lowest level wins.
LEVEL_TIE_TOLERANCE = 1e-12


@dataclass(frozen=True)
class Balance:
    """Balance of the covariates between arms, per replicate.

    Attributes
    ----------
    smd : ndarray of float, shape (replicate, covariate)
        Standardised mean difference, treated minus control (see the module docstring for the
        denominator, zero-SD and categorical conventions). NaN where an arm is empty.
    variance_ratio : ndarray of float, shape (replicate, covariate)
        Weighted variance ratio treated / control for continuous covariates (with ``weights``,
        not the reference weights); NaN for binary and categorical ones; inf when only the
        control arm is constant, NaN when both are.
    max_abs_smd : ndarray of float, shape (replicate,)
        Largest |SMD| over the covariates (NaN only if every SMD is NaN).
    status : ndarray of int8, shape (replicate,)
        :data:`analysis.status.OK`, or ``EMPTY_ARM`` when an arm has zero total weight under
        ``weights`` or ``reference_weights``.
    """

    smd: np.ndarray
    variance_ratio: np.ndarray
    max_abs_smd: np.ndarray
    status: np.ndarray


def _sd_treated(var_treated, var_control):
    return np.sqrt(var_treated)


def _sd_control(var_treated, var_control):
    return np.sqrt(var_control)


def _sd_pooled(var_treated, var_control):
    return np.sqrt((var_treated + var_control) / 2.0)


#: SMD denominators: name -> function(var_treated, var_control) -> s.
SMD_DENOMINATORS = {"treated": _sd_treated, "control": _sd_control, "pooled": _sd_pooled}


def standardised_differences(
    covariates,
    kinds,
    treated,
    *,
    weights=None,
    denominator="treated",
    reference_weights=None,
) -> Balance:
    """Standardised mean differences, variance ratios and max |SMD| of a batch.

    Parameters
    ----------
    covariates : ndarray of float, shape (replicate, patient, covariate)
        Binary as 0/1, categorical as level index 0..k-1, continuous in their units. Values of
        patients with zero weight are never used (they may be NaN).
    kinds : sequence of str, length covariate
        ``"binary"``, ``"categorical"`` or ``"continuous"`` per covariate.
    treated : ndarray of bool, shape (replicate, patient)
    weights : ndarray of float, shape (replicate, patient), optional
        Weights of the analysed cohort (0 = not in it; matched samples: matching weights).
        Default: everybody weight 1.
    denominator : str
        ``"treated"``, ``"control"`` or ``"pooled"`` (:data:`SMD_DENOMINATORS`).
    reference_weights : ndarray of float, shape (replicate, patient), optional
        Weights of the sample the SD is computed in. Default: ``weights`` (clinical habit);
        pass the unmatched cohort's weights to follow MatchIt/Stuart.

    Returns
    -------
    Balance

    Raises
    ------
    ValueError
        For an unknown denominator or kind, or inconsistent shapes.
    """
    (balance,) = standardised_differences_by_cohort(
        covariates, kinds, treated, weights=(weights,), denominator=denominator,
        reference_weights=reference_weights,
    )
    return balance


def standardised_differences_by_cohort(
    covariates,
    kinds,
    treated,
    *,
    weights,
    denominator="treated",
    reference_weights=None,
    compiled=True,
) -> tuple[Balance, ...]:
    """:func:`standardised_differences` of several cohorts of the same patients at once.

    The covariate columns are centred once for all cohorts (at their plain mean over the
    patients in any of the cohorts or the reference sample), then each cohort's weighted
    moments are taken: e.g. the full and the matched cohort of a batch with the full cohort as
    the reference sample. Each result equals :func:`standardised_differences` of that cohort
    (to rounding: the centring is a numerical device that cancels out).

    Parameters
    ----------
    covariates, kinds, treated, denominator, reference_weights
        As in :func:`standardised_differences` (one reference sample for every cohort;
        default: each cohort's own weights).
    weights : sequence of (ndarray of float, shape (replicate, patient), or None)
        Weights of each cohort (None: everybody weight 1).
    compiled : bool
        Take the moments with :func:`analysis.propensity.balance_kernels.cohort_moments`
        (default), one pass over each replicate's rows for all cohorts, and the SMDs with
        ``standardised_table``; False: the numpy path (:func:`_moments_by_cohort` and the
        array rules below it, the kernels' oracle). The two differ in the order of the sums
        over patients only (SMDs equal to ~1e-12 relative, statuses identical).

    Returns
    -------
    tuple of Balance
        One per cohort, in the order of ``weights``.
    """
    if denominator not in SMD_DENOMINATORS:
        raise ValueError(
            f"unknown denominator {denominator!r}; choose one of {sorted(SMD_DENOMINATORS)}"
        )
    covariates = np.asarray(covariates, dtype=float)
    treated = np.asarray(treated, dtype=bool)
    kinds = tuple(kinds)
    if covariates.ndim != 3 or covariates.shape[:2] != treated.shape:
        raise ValueError(
            "covariates must be shaped (replicate, patient, covariate) matching treated"
            f" {treated.shape}; got {covariates.shape}"
        )
    if len(kinds) != covariates.shape[2]:
        raise ValueError(f"got {len(kinds)} kinds for {covariates.shape[2]} covariates")
    unknown = sorted(set(kinds) - set(ANALYSIS_KINDS))
    if unknown:
        raise ValueError(f"unknown covariate kinds {unknown}; valid: {list(ANALYSIS_KINDS)}")
    ones = []  # every None weighting is the same array of ones (one weight array in the kernel)
    cohort_weights = [_as_weights(w, treated.shape, "weights", ones) for w in weights]
    if not cohort_weights:
        raise ValueError("weights must hold at least one cohort's weights")
    if reference_weights is None:
        references = cohort_weights
    else:
        references = [_as_weights(reference_weights, treated.shape, "reference_weights", ones)] * len(cohort_weights)
    sd_of = SMD_DENOMINATORS[denominator]

    kinds_array = np.array(kinds)
    categorical = kinds_array == "categorical"
    present = None
    if categorical.any() or not compiled:
        present = references[0] > 0
        for weight, reference in zip(cohort_weights, references):
            present = present | (weight > 0) | (reference > 0)
    # One column per binary/continuous covariate and one 0/1 indicator per categorical level.
    source, level, binary = [], [], []
    for index, kind in enumerate(kinds):
        if kind == "categorical":
            n_levels = int(np.nanmax(np.where(present, covariates[:, :, index], 0.0), initial=0.0)) + 1
            source.extend([index] * n_levels)
            level.extend(range(n_levels))
            binary.extend([True] * n_levels)
        else:
            source.append(index)
            level.append(balance_kernels.RAW)
            binary.append(kind == "binary")
    binary = np.array(binary, dtype=bool)
    owner = np.array(source, dtype=np.intp)  # typed: no covariates gives empty index arrays
    plain = ~categorical[owner]
    continuous = plain & ~binary
    if compiled:
        mean, variance, total = _moments_compiled(covariates, treated, cohort_weights, references, owner, level,
                                                  binary)
        return _balances(*balance_kernels.standardised_table(
            mean, variance, total, owner.astype(np.int64), categorical, continuous,
            balance_kernels.DENOMINATOR_CODES[denominator], ZERO_SD, LEVEL_TIE_TOLERANCE))
    # Without categorical covariates the columns are the covariates themselves.
    values = np.ascontiguousarray(covariates) if plain.all() else np.stack(
        [covariates[:, :, j] if lv == balance_kernels.RAW else (covariates[:, :, j] == lv).astype(float)
         for j, lv in zip(source, level)], axis=-1)
    all_arm_weights = [
        np.stack([weight * treated, weight * ~treated, reference * treated, reference * ~treated], axis=-1)
        for weight, reference in zip(cohort_weights, references)
    ]
    moments = _moments_by_cohort(values, present, binary, all_arm_weights)
    mean, variance = (np.stack(parts) for parts in zip(*moments))
    empty = np.stack([_empty_arm(weight, treated) | _empty_arm(reference, treated)
                      for weight, reference in zip(cohort_weights, references)])
    return _balances(*_standardised_table(mean, variance, empty, owner, categorical, continuous, sd_of))


def _standardised_table(mean, variance, empty, owner, categorical, continuous, sd_of):
    """SMDs, variance ratios and max |SMD| of every cohort at once, from the moments shaped
    (cohort, replicate, column, 4) (the numpy oracle of
    :func:`analysis.propensity.balance_kernels.standardised_table`); returns them with
    ``empty`` (cohort, replicate)."""
    plain = ~categorical[owner]
    difference = mean[..., 0] - mean[..., 1]
    column_smd = _standardise(difference, variance[..., 2], variance[..., 3], sd_of)
    smd = np.full(empty.shape + categorical.shape, np.nan)
    smd[:, :, owner[plain]] = column_smd[:, :, plain]
    for index in np.flatnonzero(categorical):
        level_smd = column_smd[:, :, owner == index]
        magnitude = np.where(np.isnan(level_smd), -1.0, np.abs(level_smd))
        largest = magnitude.max(axis=2, keepdims=True)
        pick = np.argmax(magnitude >= largest * (1.0 - LEVEL_TIE_TOLERANCE), axis=2)
        smd[:, :, index] = np.take_along_axis(level_smd, pick[:, :, None], axis=2)[:, :, 0]
    variance_ratio = np.full(smd.shape, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        variance_ratio[:, :, owner[continuous]] = variance[:, :, continuous, 0] / variance[:, :, continuous, 1]
    smd[empty] = np.nan
    variance_ratio[empty] = np.nan
    magnitude = np.where(np.isnan(smd), -np.inf, np.abs(smd))
    max_abs = magnitude.max(axis=2, initial=-np.inf)
    max_abs = np.where(np.isneginf(max_abs), np.nan, max_abs)
    return smd, variance_ratio, max_abs, empty


def _balances(smd, variance_ratio, max_abs, empty):
    """One :class:`Balance` per cohort from arrays with a leading cohort axis."""
    codes = np.where(empty, status.EMPTY_ARM, status.OK).astype(np.int8)
    return tuple(Balance(smd=smd[g], variance_ratio=variance_ratio[g], max_abs_smd=max_abs[g], status=codes[g])
                 for g in range(len(smd)))


def _as_weights(weights, shape, name, ones):
    """``weights`` as floats of ``shape``; None is the one array of ones kept in ``ones``."""
    if weights is None:
        if not ones:
            ones.append(np.ones(shape, dtype=float))
        return ones[0]
    weights = np.asarray(weights, dtype=float)
    if weights.shape != shape:
        raise ValueError(f"{name} must be shaped (replicate, patient) {shape}; got {weights.shape}")
    return weights


def _moments_compiled(covariates, treated, cohort_weights, references, source, level, binary):
    """Mean and variance (cohort, replicate, column, 4) and the weightings' totals (cohort,
    replicate, 4) by :func:`analysis.propensity.balance_kernels.cohort_moments`: the distinct
    weight arrays (by identity) once each, the weightings in :func:`_moments_by_cohort`'s order."""
    distinct, slots = [], []
    for weight, reference in zip(cohort_weights, references):
        ks = []
        for array in (weight, reference):
            k = next((i for i, seen in enumerate(distinct) if seen is array), len(distinct))
            if k == len(distinct):
                distinct.append(array)
            ks.append(k)
        slots.append([2 * ks[0], 2 * ks[0] + 1, 2 * ks[1], 2 * ks[1] + 1])
    return balance_kernels.cohort_moments(
        np.ascontiguousarray(covariates), np.ascontiguousarray(treated),
        tuple(np.ascontiguousarray(w) for w in distinct), np.asarray(source, dtype=np.int64),
        np.asarray(level, dtype=float), binary, np.array(slots, dtype=np.int64))


def _empty_arm(weight, treated):
    return ((weight * treated).sum(axis=1) <= 0) | ((weight * ~treated).sum(axis=1) <= 0)


#: Replicates per block in :func:`_moments_by_cohort`: a block's centred columns and their
#: squares (64 x patients x columns doubles each) stay in cache for every cohort's products.
MOMENTS_BLOCK = 64


def _moments_by_cohort(values, present, binary, all_arm_weights):
    """:func:`_arm_moments` of every cohort's weightings, a block of replicates at a time.

    Parameters
    ----------
    values : ndarray of float, shape (replicate, patient, column)
    present : ndarray of bool, shape (replicate, patient)
        Patients with a positive weight in some weighting.
    binary : ndarray of bool, shape (column,)
    all_arm_weights : list of ndarray of float, shape (replicate, patient, weighting)

    Returns
    -------
    list of (mean, variance), each shaped (replicate, column, weighting)
        One per entry of ``all_arm_weights``; every replicate's numbers are those of the
        whole-batch computation (cache blocking only).
    """
    n_rep, _, n_columns = values.shape
    moments = [(np.empty((n_rep, n_columns, w.shape[2])), np.empty((n_rep, n_columns, w.shape[2])))
               for w in all_arm_weights]
    for start in range(0, n_rep, MOMENTS_BLOCK):
        block = slice(start, start + MOMENTS_BLOCK)
        shift, centred, centred_squared = _centred_columns(values[block], present[block])
        for arm_weights, (mean, variance) in zip(all_arm_weights, moments):
            mean[block], variance[block] = _arm_moments(shift, centred, centred_squared, binary, arm_weights[block])
    return moments


def _centred_columns(values, present):
    """Columns centred at their plain mean over the patients in use, and their squares.

    Centring makes the one-pass sum of squares ``sum w x^2 - (sum w x)^2 / sum w`` of
    :func:`_arm_moments` immune to cancellation; patients not in use (``present`` False, their
    values may be NaN) are set to 0 first and carry weight 0 in every weighting.

    Parameters
    ----------
    values : ndarray of float, shape (replicate, patient, column)
    present : ndarray of bool, shape (replicate, patient)

    Returns
    -------
    shift : ndarray of float, shape (replicate, column)
    centred, centred_squared : ndarray of float, shape (replicate, patient, column)
    """
    clean = values if present.all() else np.where(present[:, :, None], values, 0.0)
    shift = clean.sum(axis=1) / np.maximum(present.sum(axis=1), 1)[:, None]
    centred = clean - shift[:, None, :]
    return shift, centred, centred * centred


def _arm_moments(shift, centred, centred_squared, binary, arm_weights):
    """Weighted means and MatchIt ``wvar`` variances of each column under several weightings.

    Parameters
    ----------
    shift, centred, centred_squared
        From :func:`_centred_columns` (every patient with a positive weight in use).
    binary : ndarray of bool, shape (column,)
        p(1-p) for these columns, the reliability-weighted variance for the others.
    arm_weights : ndarray of float, shape (replicate, patient, weighting)

    Returns
    -------
    mean, variance : ndarray of float, shape (replicate, column, weighting)
        NaN where a weighting has zero total weight.
    """
    weights_first = np.ascontiguousarray(arm_weights.transpose(0, 2, 1))  # (R, K, P)
    total = weights_first.sum(axis=2)[:, None, :]
    first = np.matmul(weights_first, centred).transpose(0, 2, 1)
    second = np.matmul(weights_first, centred_squared).transpose(0, 2, 1)
    squared_weights = (weights_first * weights_first).sum(axis=2)[:, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        centred_mean = first / total
        sum_of_squares = np.maximum(second - first * centred_mean, 0.0)
        reliability = sum_of_squares / total / (1.0 - squared_weights / total**2)
    mean = shift[:, :, None] + centred_mean
    variance = np.where(binary[None, :, None], np.maximum(mean * (1.0 - mean), 0.0), reliability)
    return mean, variance


def _standardise(difference, var_treated, var_control, sd_of):
    """SMD from mean differences and reference variances, all shaped (replicate, column)."""
    with np.errstate(invalid="ignore"):
        sd = sd_of(var_treated, var_control)
        fallback = _sd_pooled(var_treated, var_control)
        sd = np.where(np.isfinite(sd) & (sd >= ZERO_SD), sd, fallback)
        zero_sd = np.isfinite(sd) & (sd < ZERO_SD)
        with np.errstate(divide="ignore"):
            standardised = difference / sd
        degenerate = np.where(np.abs(difference) <= ZERO_SD, 0.0, np.sign(difference) * np.inf)
    return np.where(zero_sd, np.where(np.isnan(difference), np.nan, degenerate), standardised)
