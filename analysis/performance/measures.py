"""Performance of the analyses over simulated replicates, each with its Monte Carlo SE.

Array functions (``bias``, ``empirical_se``, ``coverage``, ``rejection_rate`` ...) take
per-replicate arrays whose replicate axis is ``axis`` (default the last) and reduce it; every
other axis is kept, so one call summarises every condition × method × cohort × endpoint at
once. Each returns a :class:`PerformanceMeasure` (estimate, Monte Carlo SE, replicates used).

Every formula is written once, on sufficient statistics (``*_from_moments``,
:func:`proportion_from_counts`: counts and :class:`~analysis.performance.moments.Moments`);
the array functions compute those statistics from the replicates and call them, and so does
the blockwise summary (:mod:`analysis.performance.accumulate`), which merges the statistics of
many blocks first. (One concept — Table 6 of Morris et al. — with its two entry points and
their docstrings: hence a little over 400 lines.)

Missing values: a replicate enters a measure only where every input of that measure is finite
(NaN estimates of failed analyses are skipped, never imputed), and ``n_used`` says how many
did. With no usable replicate the measure is NaN; with one, a spread-based MCSE is NaN.

Formulas (Morris, White & Crowther 2019, Table 6; identical to rsimsum ``performance.R``), with
``n`` replicates used, ``θ`` the truth, ``θ̂_i`` the estimates, ``θ̄`` their mean, ``s_i`` the
model SEs and ``sd``/``var`` with divisor ``n - 1``:

=========================  ==========================================  =================================================
measure                    estimate                                    Monte Carlo SE
=========================  ==========================================  =================================================
bias                       mean(θ̂_i - θ)                              sd(θ̂_i) / sqrt(n)
relative bias              mean((θ̂_i - θ) / θ)  (NaN when θ = 0)      sd((θ̂_i - θ) / θ) / sqrt(n)
empirical SE (EmpSE)       sd(θ̂_i)                                    EmpSE / sqrt(2 (n - 1))
model SE (ModSE)           sqrt(mean(s_i²))                            sqrt(var(s_i²) / (4 n ModSE²))
relative % error in ModSE  100 (ModSE / EmpSE - 1)                     100 (ModSE/EmpSE) sqrt(var(s_i²)/(4 n ModSE⁴) + 1/(2(n-1)))
MSE                        mean((θ̂_i - θ)²)                           sqrt(Σ((θ̂_i - θ)² - MSE)² / (n (n - 1)))
RMSE                       sqrt(MSE)                                   MCSE(MSE) / (2 RMSE)   (delta method)
mean absolute error        mean(|θ̂_i - θ|)                            sd(|θ̂_i - θ|) / sqrt(n)
coverage                   mean(lower_i <= θ <= upper_i)               sqrt(C (1 - C) / n)
bias-eliminated coverage   mean(lower_i <= θ̄ <= upper_i)              sqrt(C (1 - C) / n)
rejection rate             mean(p_i < alpha)                           sqrt(P (1 - P) / n)
=========================  ==========================================  =================================================

The RMSE MCSE is not in Morris et al.; it is the delta method applied to MSE's MCSE
(``d sqrt(m) / dm = 1 / (2 sqrt(m))``). The mean-absolute-error MCSE is the MCSE of a mean.
Bias-eliminated coverage treats ``θ̄`` as fixed, as Morris et al. and rsimsum do. Rejection
counts ``p < alpha`` (the convention of "significant at 5%"; identical to ``p <= alpha`` for
continuous p-values).

References
----------
Morris TP, White IR, Crowther MJ (2019). Using simulation studies to evaluate statistical
methods. Stat Med 38:2074-2102. White IR (2010). simsum: Analyses of simulation studies
including Monte Carlo error. Stata J 10:369-385. Gasparini A (2018). rsimsum. JOSS 3:739.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.performance.moments import Moments, moments_of

__all__ = [
    "PerformanceMeasure",
    "bias",
    "relative_bias",
    "empirical_se",
    "model_se",
    "relative_error_model_se",
    "mse",
    "rmse",
    "mean_absolute_error",
    "coverage",
    "bias_eliminated_coverage",
    "rejection_rate",
    "proportion",
    "monte_carlo_mean",
    "mean_from_moments",
    "proportion_from_counts",
    "empirical_se_from_moments",
    "model_se_from_moments",
    "relative_error_model_se_from_moments",
    "rmse_from_moments",
]


@dataclass(frozen=True)
class PerformanceMeasure:
    """A performance measure over replicates, with its Monte Carlo standard error.

    Attributes
    ----------
    estimate : ndarray of float, shape (...)
        The measure; the input shape without the replicate axis.
    mcse : ndarray of float, shape (...)
        Its Monte Carlo standard error (Morris et al. 2019, Table 6).
    n_used : ndarray of int64, shape (...)
        Replicates that entered the measure (those where every input was finite).
    """

    estimate: np.ndarray
    mcse: np.ndarray
    n_used: np.ndarray


# --------------------------------------------------------------------------- from statistics
# The formulas, once: the array functions below and the blockwise summary
# (analysis.performance.accumulate) both call these on counts and Moments.


def mean_from_moments(moments: Moments) -> PerformanceMeasure:
    """A mean over replicates, MCSE ``sd / sqrt(n)`` (bias, MSE, mean absolute error, ...).

    Parameters
    ----------
    moments : Moments, fields shaped (...)
        Of the per-replicate quantity averaged (e.g. ``θ̂_i - θ`` for the bias).

    Returns
    -------
    PerformanceMeasure, fields shaped (...)
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        mcse = np.sqrt(moments.variance / moments.count)
    return PerformanceMeasure(estimate=moments.mean, mcse=mcse, n_used=moments.count)


def proportion_from_counts(hits, count, *, undefined=False) -> PerformanceMeasure:
    """Share ``hits / count``, MCSE ``sqrt(P (1 - P) / n)`` (coverage, rejection rate, ...).

    Parameters
    ----------
    hits, count : array_like of int, shape (...)
    undefined : array_like of bool, broadcastable to (...)
        Where the share is NaN whatever the counts (e.g. coverage of a NaN truth).

    Returns
    -------
    PerformanceMeasure, fields shaped (...)
    """
    count = np.asarray(count, dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.asarray(hits) / count
        share = np.where((count > 0) & ~np.asarray(undefined), share, np.nan)
        mcse = np.sqrt(share * (1.0 - share) / count)
    return PerformanceMeasure(estimate=share, mcse=mcse, n_used=np.broadcast_to(count, share.shape))


def empirical_se_from_moments(estimate: Moments) -> PerformanceMeasure:
    """EmpSE ``sd(θ̂_i)`` from the Moments of the estimates, MCSE ``EmpSE / sqrt(2 (n - 1))``."""
    empse = np.sqrt(estimate.variance)
    with np.errstate(invalid="ignore", divide="ignore"):
        mcse = empse / np.sqrt(2.0 * (estimate.count - 1))
    return PerformanceMeasure(estimate=empse, mcse=mcse, n_used=estimate.count)


def model_se_from_moments(model_variance: Moments) -> PerformanceMeasure:
    """ModSE ``sqrt(mean(s_i²))`` from the Moments of ``s_i²``, MCSE ``sqrt(var(s_i²) / (4 n ModSE²))``."""
    modse = np.sqrt(model_variance.mean)
    with np.errstate(invalid="ignore", divide="ignore"):
        mcse = np.sqrt(model_variance.variance / (4.0 * model_variance.count * modse**2))
    return PerformanceMeasure(estimate=modse, mcse=mcse, n_used=model_variance.count)


def relative_error_model_se_from_moments(estimate: Moments, model_variance: Moments) -> PerformanceMeasure:
    """Relative % error in ModSE from the Moments of ``θ̂_i`` and of ``s_i²`` (same replicates).

    ``100 (ModSE / EmpSE - 1)``, MCSE
    ``100 (ModSE/EmpSE) sqrt(var(s_i²) / (4 n ModSE⁴) + 1 / (2 (n - 1)))``.
    """
    n_used = estimate.count
    empse = np.sqrt(estimate.variance)
    modse = np.sqrt(model_variance.mean)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = modse / empse
        mcse = 100.0 * ratio * np.sqrt(
            model_variance.variance / (4.0 * n_used * modse**4) + 1.0 / (2.0 * (n_used - 1))
        )
    return PerformanceMeasure(estimate=100.0 * (ratio - 1.0), mcse=mcse, n_used=n_used)


def rmse_from_moments(squared_error: Moments) -> PerformanceMeasure:
    """RMSE ``sqrt(MSE)`` from the Moments of ``(θ̂_i - θ)²``, MCSE ``MCSE(MSE) / (2 RMSE)``."""
    squared = mean_from_moments(squared_error)
    root = np.sqrt(squared.estimate)
    with np.errstate(invalid="ignore", divide="ignore"):
        mcse = squared.mcse / (2.0 * root)
    return PerformanceMeasure(estimate=root, mcse=mcse, n_used=squared.n_used)


# --------------------------------------------------------------------------- from replicates


def _replicates_last(values, axis: int) -> np.ndarray:
    """``values`` as float with the replicate axis moved last."""
    return np.moveaxis(np.asarray(values, dtype=float), axis, -1)


def _truth_column(truth) -> np.ndarray:
    """The truth, shape (...) broadcastable to the input without its replicate axis, as (..., 1)."""
    return np.asarray(truth, dtype=float)[..., np.newaxis]


def _mean_measure(values: np.ndarray, used: np.ndarray) -> PerformanceMeasure:
    return mean_from_moments(moments_of(values, used))


def _proportion_measure(hits: np.ndarray, used: np.ndarray, undefined=False) -> PerformanceMeasure:
    hits, used = np.broadcast_arrays(hits, used)
    return proportion_from_counts((hits & used).sum(axis=-1), used.sum(axis=-1), undefined=undefined)


def monte_carlo_mean(values, *, axis: int = -1) -> PerformanceMeasure:
    """Mean of finite values over replicates, with MCSE ``sd / sqrt(n)``.

    Parameters
    ----------
    values : array_like, shape (..., replicate) with the replicate axis at ``axis``
        Any per-replicate quantity (e.g. events); NaN/inf entries are skipped.
    axis : int
        The replicate axis.

    Returns
    -------
    PerformanceMeasure, fields shaped (...)
    """
    values = _replicates_last(values, axis)
    return _mean_measure(values, np.isfinite(values))


def bias(estimate, truth, *, axis: int = -1) -> PerformanceMeasure:
    """Bias ``mean(θ̂_i - θ)``, MCSE ``sd(θ̂_i) / sqrt(n)``.

    Parameters
    ----------
    estimate : array_like, shape (..., replicate) with the replicate axis at ``axis``
        Per-replicate estimates (e.g. log HR); NaN = failed replicate, skipped.
    truth : array_like, broadcastable to shape (...)
        True value of the estimand.
    axis : int
        The replicate axis of ``estimate``.

    Returns
    -------
    PerformanceMeasure, fields shaped (...)

    References
    ----------
    Morris et al. (2019) Stat Med 38:2074-2102, Table 6.
    """
    estimate = _replicates_last(estimate, axis)
    return _mean_measure(estimate - _truth_column(truth), np.isfinite(estimate))


def relative_bias(estimate, truth, *, axis: int = -1) -> PerformanceMeasure:
    """Relative bias ``mean((θ̂_i - θ) / θ)`` (a fraction), MCSE ``sd((θ̂_i - θ)/θ) / sqrt(n)``.

    NaN where ``θ = 0`` (undefined). Shapes as in :func:`bias`.

    References
    ----------
    Morris et al. (2019), Table 6; rsimsum ``rbias``.
    """
    estimate = _replicates_last(estimate, axis)
    truth = _truth_column(truth)
    with np.errstate(invalid="ignore", divide="ignore"):
        relative_error = np.where(truth == 0.0, np.nan, (estimate - truth) / truth)
    return _mean_measure(relative_error, np.isfinite(estimate))


def empirical_se(estimate, *, axis: int = -1) -> PerformanceMeasure:
    """Empirical SE ``sd(θ̂_i)`` (divisor n - 1), MCSE ``EmpSE / sqrt(2 (n - 1))``.

    Parameters
    ----------
    estimate : array_like, shape (..., replicate) with the replicate axis at ``axis``
    axis : int

    Returns
    -------
    PerformanceMeasure, fields shaped (...)

    References
    ----------
    Morris et al. (2019), Table 6.
    """
    estimate = _replicates_last(estimate, axis)
    return empirical_se_from_moments(moments_of(estimate, np.isfinite(estimate)))


def model_se(se, *, axis: int = -1) -> PerformanceMeasure:
    """Model-based SE ``ModSE = sqrt(mean(s_i²))``, MCSE ``sqrt(var(s_i²) / (4 n ModSE²))``.

    Parameters
    ----------
    se : array_like, shape (..., replicate) with the replicate axis at ``axis``
        Per-replicate model SEs ``s_i`` of the estimate.
    axis : int

    Returns
    -------
    PerformanceMeasure, fields shaped (...)

    Notes
    -----
    The root of the mean *variance*, not the mean SE (Morris et al. 2019, Table 6); the MCSE is
    the delta method with ``ModSE²`` in the denominator (rsimsum's code; its vignette's printed
    ``ModSE`` is a typo).
    """
    se = _replicates_last(se, axis)
    return model_se_from_moments(moments_of(se**2, np.isfinite(se)))


def relative_error_model_se(estimate, se, *, axis: int = -1) -> PerformanceMeasure:
    """Relative % error in ModSE ``100 (ModSE / EmpSE - 1)`` with its MCSE.

    MCSE ``100 (ModSE/EmpSE) sqrt(var(s_i²) / (4 n ModSE⁴) + 1 / (2 (n - 1)))``. Uses the
    replicates where both the estimate and its SE are finite.

    Parameters
    ----------
    estimate, se : array_like, shape (..., replicate) with the replicate axis at ``axis``
    axis : int

    Returns
    -------
    PerformanceMeasure, fields shaped (...), estimate in percent

    References
    ----------
    Morris et al. (2019), Table 6 (rsimsum#45 fixed a parenthesis in its code).
    """
    estimate = _replicates_last(estimate, axis)
    se = _replicates_last(se, axis)
    used = np.isfinite(estimate) & np.isfinite(se)
    return relative_error_model_se_from_moments(moments_of(estimate, used), moments_of(se**2, used))


def mse(estimate, truth, *, axis: int = -1) -> PerformanceMeasure:
    """Mean squared error ``mean((θ̂_i - θ)²)``, MCSE ``sqrt(Σ((θ̂_i-θ)² - MSE)² / (n(n-1)))``.

    Shapes as in :func:`bias`.

    References
    ----------
    Morris et al. (2019), Table 6.
    """
    estimate = _replicates_last(estimate, axis)
    return _mean_measure((estimate - _truth_column(truth)) ** 2, np.isfinite(estimate))


def rmse(estimate, truth, *, axis: int = -1) -> PerformanceMeasure:
    """Root mean squared error ``sqrt(MSE)``, MCSE ``MCSE(MSE) / (2 RMSE)`` (delta method).

    Shapes as in :func:`bias`.
    """
    estimate = _replicates_last(estimate, axis)
    squared_error = (estimate - _truth_column(truth)) ** 2
    return rmse_from_moments(moments_of(squared_error, np.isfinite(estimate)))


def mean_absolute_error(estimate, truth, *, axis: int = -1) -> PerformanceMeasure:
    """Mean absolute error ``mean(|θ̂_i - θ|)``, MCSE ``sd(|θ̂_i - θ|) / sqrt(n)``.

    Shapes as in :func:`bias`. (Requested of rsimsum in its issue #59.)
    """
    estimate = _replicates_last(estimate, axis)
    return _mean_measure(np.abs(estimate - _truth_column(truth)), np.isfinite(estimate))


def coverage(lower, upper, truth, *, axis: int = -1) -> PerformanceMeasure:
    """Coverage ``mean(lower_i <= θ <= upper_i)`` of an interval, MCSE ``sqrt(C(1-C)/n)``.

    Parameters
    ----------
    lower, upper : array_like, shape (..., replicate) with the replicate axis at ``axis``
        Interval limits per replicate (e.g. the Wald 95% CI of the log HR).
    truth : array_like, broadcastable to shape (...)
    axis : int

    Returns
    -------
    PerformanceMeasure, fields shaped (...); NaN where the truth is NaN.

    References
    ----------
    Morris et al. (2019), Table 6 (limits inclusive, as rsimsum).
    """
    lower = _replicates_last(lower, axis)
    upper = _replicates_last(upper, axis)
    truth = _truth_column(truth)
    used = np.isfinite(lower) & np.isfinite(upper)
    hits = (lower <= truth) & (truth <= upper)
    return _proportion_measure(hits, used, undefined=np.isnan(truth[..., 0]))


def bias_eliminated_coverage(estimate, lower, upper, *, axis: int = -1) -> PerformanceMeasure:
    """Bias-eliminated coverage ``mean(lower_i <= θ̄ <= upper_i)``, MCSE ``sqrt(C(1-C)/n)``.

    ``θ̄`` is the mean estimate over the replicates used (all of estimate, lower and upper
    finite). Does not depend on the truth.

    Parameters
    ----------
    estimate, lower, upper : array_like, shape (..., replicate) with the replicate axis at ``axis``
    axis : int

    Returns
    -------
    PerformanceMeasure, fields shaped (...)

    References
    ----------
    Morris et al. (2019), Table 6; rsimsum ``becover``.
    """
    estimate = _replicates_last(estimate, axis)
    lower = _replicates_last(lower, axis)
    upper = _replicates_last(upper, axis)
    used = np.isfinite(estimate) & np.isfinite(lower) & np.isfinite(upper)
    centre = moments_of(estimate, used).mean[..., np.newaxis]
    return _proportion_measure((lower <= centre) & (centre <= upper), used)


def rejection_rate(p_value, *, alpha: float = 0.05, axis: int = -1) -> PerformanceMeasure:
    """Rejection rate ``mean(p_i < alpha)`` (power, or type-I error under a null truth).

    Parameters
    ----------
    p_value : array_like, shape (..., replicate) with the replicate axis at ``axis``
        Per-replicate p-values of a test (log-rank, Cox Wald); NaN = test not done, skipped.
    alpha : float, in (0, 1)
        Significance level.
    axis : int

    Returns
    -------
    PerformanceMeasure, fields shaped (...); MCSE ``sqrt(P (1 - P) / n)``.

    References
    ----------
    Morris et al. (2019), Table 6; simhelpers ``calc_rejection``.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha: must lie in (0, 1); got {alpha!r}")
    p_value = _replicates_last(p_value, axis)
    return _proportion_measure(p_value < alpha, np.isfinite(p_value))


def proportion(hits, used=None, *, axis: int = -1) -> PerformanceMeasure:
    """Share of replicates where ``hits`` holds, MCSE ``sqrt(P (1 - P) / n)``.

    Parameters
    ----------
    hits : array_like of bool, shape (..., replicate) with the replicate axis at ``axis``
    used : array_like of bool, same shape, optional
        Which replicates count (default all).
    axis : int

    Returns
    -------
    PerformanceMeasure, fields shaped (...)
    """
    hits = np.moveaxis(np.asarray(hits, dtype=bool), axis, -1)
    used = (
        np.ones_like(hits)
        if used is None
        else np.moveaxis(np.asarray(used, dtype=bool), axis, -1)
    )
    return _proportion_measure(hits, used)
