"""The cells of a baseline table per arm, batched over replicates: percentages, mean ± SD and
median (IQR) of a covariate in each arm of the analysed cohort.

These are the numbers Table 1 of a PSM paper prints beside the p-values of
:mod:`analysis.comparisons.continuous` and :mod:`analysis.comparisons.categorical`, computed
with the same conventions: ``weights`` (replicate, patient) are frequency weights (0 = not in
the cohort, 1 = once; a matched sample's 0/1 weights), the SD has divisor n − 1, quartiles
are Hyndman & Fan (1996) type 7 (numpy's and R's default) of the arm's patients
(:func:`analysis.quantiles.frequency_quantiles`). Arms are ordered (treated, control). An
empty arm gives NaN.

References
----------
Hyndman RJ, Fan Y (1996). Sample quantiles in statistical packages. Am Stat 50:361-365.
"""

from __future__ import annotations

import numpy as np

from analysis.quantiles import frequency_quantiles


def _arm_weights(weights, treated) -> np.ndarray:
    """(arm, replicate, patient): the cohort weights of the treated, then the control arm."""
    treated = np.asarray(treated, dtype=bool)
    weights = np.asarray(weights, dtype=float)
    return np.stack([weights * treated, weights * ~treated])


def arm_percentages(indicator, weights, treated) -> np.ndarray:
    """Percentage of each arm with ``indicator`` true.

    Parameters
    ----------
    indicator : array_like of bool, shape (replicate, patient)
    weights, treated : shape (replicate, patient)

    Returns
    -------
    ndarray of float, shape (replicate, arm): 100 × weighted share, NaN for an empty arm.
    """
    arm = _arm_weights(weights, treated)
    hits = (arm * np.asarray(indicator, dtype=float)).sum(axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (100.0 * hits / arm.sum(axis=2)).T


def arm_mean_sd(values, weights, treated) -> tuple[np.ndarray, np.ndarray]:
    """Mean and SD (divisor n − 1) of ``values`` in each arm.

    Returns
    -------
    (mean, sd) : ndarrays of float, shape (replicate, arm); SD NaN for an arm of fewer than 2.
    """
    arm = _arm_weights(weights, treated)
    values = np.where(arm > 0, np.asarray(values, dtype=float)[np.newaxis], 0.0)
    n = arm.sum(axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = (arm * values).sum(axis=2) / n
        squares = (arm * (values - mean[..., np.newaxis]) ** 2).sum(axis=2)
        sd = np.sqrt(np.where(n > 1, squares / (n - 1), np.nan))
    return mean.T, sd.T


def arm_quartiles(values, weights, treated) -> np.ndarray:
    """First quartile, median and third quartile of ``values`` in each arm (type 7).

    Returns
    -------
    ndarray of float, shape (replicate, arm, 3): (q1, median, q3).
    """
    arm = _arm_weights(weights, treated)
    values = np.asarray(values, dtype=float)
    return np.stack([frequency_quantiles(values, arm[a], (0.25, 0.5, 0.75)) for a in range(2)], axis=1)
