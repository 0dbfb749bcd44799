"""What a finished sample-size search reports at its answer: the power of other outcomes of the
same replicates there (the other endpoint, both endpoints significant), the mean of a count
(events, matched pairs) there, and the fitted power curve as a table.

A search (:mod:`analysis.performance.samplesize`) solves the power curve of one test for the
target; every replicate also records other 0/1 outcomes (the other endpoint's test, both tests
significant) and counts (events, matched pairs). Their values at the answer x* are estimated
the same way as the primary curve, not read off the nearest candidate:

* a 0/1 outcome: the probit (or logit) curve of :func:`fit_power_curve` fitted to its own
  per-replicate outcomes with the same clusters of common random numbers, evaluated at x*,
  with the pointwise Wald band of its linear predictor (cluster-robust covariance; Liang &
  Zeger 1986);
* a count: linear interpolation of its mean over the evaluated values (the mean events of a
  design with a fixed accrual window and cut-off grow in proportion to n; matched pairs nearly
  so), NaN outside the evaluated range rather than extrapolated.

References
----------
Liang KY, Zeger SL (1986). Biometrika 73:13-22. Morris TP, White IR, Crowther MJ (2019).
Using simulation studies to evaluate statistical methods. Stat Med 38:2074-2102 (MCSE of a
mean: SD / sqrt(replicates)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.performance.power_curve import TRANSFORMS, PowerCurve, fit_power_curve

__all__ = ["PowerAt", "power_at", "mean_at", "point_means", "curve_table"]


@dataclass(frozen=True)
class PowerAt:
    """A fitted power at one value, with its pointwise band.

    Attributes
    ----------
    power, lower, upper : float
        NaN when the curve could not be fitted (``status`` says why).
    status : str
        The fit's status (:data:`analysis.performance.power_curve.FIT_STATUSES`).
    """

    power: float
    lower: float
    upper: float
    status: str


def power_at(value, rejected, cluster, at: float, *, transform: str = "sqrt",
             link: str = "probit", level: float = 0.95) -> PowerAt:
    """The fitted power of a 0/1 outcome at ``at`` (see the module docstring).

    Parameters
    ----------
    value, rejected, cluster : array_like, shape (observation,)
        As :func:`analysis.performance.power_curve.fit_power_curve`.
    at : float
        Where the curve is evaluated (the search's answer).

    Returns
    -------
    PowerAt
    """
    curve = fit_power_curve(value, rejected, cluster, transform=transform, link=link)
    if not curve.ok or not np.isfinite(at):
        return PowerAt(np.nan, np.nan, np.nan, curve.status if not curve.ok else "no_answer")
    lower, upper = curve.power_band(at, level=level)
    return PowerAt(float(curve.power(at)), float(lower), float(upper), curve.status)


def point_means(value, count) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean of ``count`` at every distinct ``value``, with its Monte Carlo SE.

    Parameters
    ----------
    value : array_like of float, shape (observation,)
    count : array_like of float, shape (observation,)
        NaN entries (e.g. pairs of a design without matching) are left out.

    Returns
    -------
    levels, mean, mcse : ndarray of float, shape (point,)
        ``mcse = SD / sqrt(k)`` over the k non-NaN observations at the value (NaN for k < 2).
    """
    value = np.asarray(value, dtype=float).ravel()
    count = np.asarray(count, dtype=float).ravel()
    levels, index = np.unique(value, return_inverse=True)
    finite = np.isfinite(count)
    k = np.bincount(index[finite], minlength=levels.size).astype(float)
    total = np.bincount(index[finite], weights=count[finite], minlength=levels.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / k
        deviation = np.where(finite, count - mean[index], 0.0)
        squares = np.bincount(index, weights=deviation**2, minlength=levels.size)
        mcse = np.where(k >= 2, np.sqrt(squares / np.maximum(k - 1, 1) / k), np.nan)
    return levels, np.where(k > 0, mean, np.nan), mcse


def mean_at(levels, means, at: float) -> float:
    """Linear interpolation of ``means`` (at increasing ``levels``) at ``at``; NaN outside the
    evaluated range or where a neighbouring mean is NaN."""
    levels, means = np.asarray(levels, dtype=float), np.asarray(means, dtype=float)
    usable = np.isfinite(means)
    levels, means = levels[usable], means[usable]
    if levels.size == 0 or not np.isfinite(at) or at < levels[0] or at > levels[-1]:
        return float("nan")
    return float(np.interp(at, levels, means))


def curve_table(curve: PowerCurve, low: float, high: float, *, size: int = 101,
                level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The fitted curve on ``size`` values evenly spaced in u(x) over ``[low, high]``.

    Returns
    -------
    value, power, lower, upper : ndarray of float, shape (size,)
        NaN powers when the curve was not fitted.
    """
    forward, inverse = TRANSFORMS[curve.transform]
    value = inverse(np.linspace(forward(low), forward(high), size))
    if not curve.ok:
        nan = np.full(size, np.nan)
        return value, nan, nan.copy(), nan.copy()
    lower, upper = curve.power_band(value, level=level)
    return value, curve.power(value), lower, upper
