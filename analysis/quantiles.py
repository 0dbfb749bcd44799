"""Sample quantiles of each replicate with frequency weights, batched over replicates.

The propensity-score methods need quantiles of a per-patient quantity in every replicate: the
weight at which IPTW weights are truncated, the PS quintiles of a stratified analysis, the
knots of a spline in the PS. In a bootstrap resample a patient drawn k times counts k times,
so the quantile must be that of the *expanded* sample; :func:`frequency_quantiles` computes it
from the patients and their integer counts without expanding them (the analysed cohort is the
case of counts 0/1).

Definitions (Hyndman & Fan 1996, on the expanded sample of size n, order statistics
x_(1) <= ... <= x_(n)):

* ``"linear"`` (type 7, R's and numpy's default): h = (n - 1) p, Q = x_(floor h + 1) +
  (h - floor h) (x_(floor h + 2) - x_(floor h + 1)).
* ``"closest_observation"`` (type 3, SAS's "nearest even order statistic", used by WeightIt's
  ``trim()``): j = floor(n p - 1/2), g = n p - 1/2 - j; Q = x_(j) if g = 0 and j is even,
  else x_(j + 1) (indices clipped to 1..n). numpy calls it ``"closest_observation"``.

References
----------
Hyndman RJ, Fan Y (1996). Sample quantiles in statistical packages. Am Stat 50:361-365.
"""

from __future__ import annotations

import numpy as np

QUANTILE_METHODS = ("linear", "closest_observation")


def frequency_quantiles(values, counts, probabilities, *, method: str = "linear") -> np.ndarray:
    """Quantiles of each replicate's sample with every patient repeated ``counts`` times.

    Parameters
    ----------
    values : array_like of float, shape (replicate, patient)
        The quantity; values of patients with count 0 are ignored (may be NaN).
    counts : array_like, shape (replicate, patient)
        Non-negative whole numbers (frequency weights; 0/1 for a cohort mask).
    probabilities : sequence of float in [0, 1]
    method : {"linear", "closest_observation"}
        Hyndman & Fan type 7 or type 3 (module docstring).

    Returns
    -------
    ndarray of float, shape (replicate, len(probabilities))
        NaN for a replicate whose counts are all 0.
    """
    if method not in QUANTILE_METHODS:
        raise ValueError(f"unknown quantile method {method!r}; choose one of {', '.join(QUANTILE_METHODS)}")
    values = np.asarray(values, dtype=float)
    counts = np.asarray(counts, dtype=float)
    if values.ndim != 2 or counts.shape != values.shape:
        raise ValueError(f"values and counts must share shape (replicate, patient); got {values.shape}, {counts.shape}")
    probabilities = np.asarray(probabilities, dtype=float).reshape(-1)
    if np.any((probabilities < 0) | (probabilities > 1)):
        raise ValueError("probabilities must lie in [0, 1]")
    order_statistic = _OrderStatistics(values, counts)
    n = order_statistic.n
    if method == "linear":
        h = (n[:, None] - 1.0) * probabilities[None, :]
        low = np.floor(h)
        lower, upper = order_statistic(low), order_statistic(low + 1.0)
        fraction = h - low
        result = lower + fraction * (upper - lower)
        result = np.where(fraction == 0, lower, result)  # exact order statistic (also +-inf)
    else:
        position = n[:, None] * probabilities[None, :] - 0.5
        j = np.floor(position)
        at_even = (position == j) & (np.mod(j, 2) == 0)
        one_based = np.where(at_even, j, j + 1.0)
        result = order_statistic(np.clip(one_based, 1.0, np.maximum(n, 1.0)[:, None]) - 1.0)
    return np.where((n > 0)[:, None], result, np.nan)


class _OrderStatistics:
    """Order statistics of each replicate's expanded sample (patients repeated ``counts`` times)."""

    def __init__(self, values, counts):
        used = counts > 0
        order = np.argsort(np.where(used, values, np.inf), axis=1, kind="stable")
        self.sorted_values = np.take_along_axis(values, order, axis=1)
        self.cumulative = np.cumsum(np.take_along_axis(np.where(used, counts, 0.0), order, axis=1), axis=1)
        self.n = self.cumulative[:, -1] if values.shape[1] else np.zeros(values.shape[0])

    def __call__(self, rank):
        """x_(rank + 1) for 0-based ranks shaped (replicate, q), clipped to 0..n-1."""
        rank = np.clip(rank, 0, np.maximum(self.n - 1, 0)[:, None])
        # First sorted position whose cumulative count exceeds the rank.
        position = (self.cumulative[:, None, :] > rank[:, :, None]).argmax(axis=2)
        return np.take_along_axis(self.sorted_values, position, axis=1)


def frequency_order_statistics(values, counts, ranks) -> np.ndarray:
    """The order statistics x_(rank + 1) (0-based ``ranks``, shape (replicate, q) or (q,)) of
    each replicate's expanded sample; ranks are clipped to 0..n-1; NaN where n = 0."""
    values = np.asarray(values, dtype=float)
    counts = np.asarray(counts, dtype=float)
    statistics = _OrderStatistics(values, counts)
    ranks = np.broadcast_to(np.asarray(ranks, dtype=float), (values.shape[0], np.shape(ranks)[-1]))
    return np.where((statistics.n > 0)[:, None], statistics(ranks), np.nan)
