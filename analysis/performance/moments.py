"""Sufficient statistics over replicates and their exact, order-free merge.

Every mean-type performance measure and its Monte Carlo SE (bias, MSE, ModSE, ...; see
:mod:`analysis.performance.measures`) needs three numbers per cell and nothing else: the count
``n`` of replicates used, their mean ``x̄`` and the sum of squared deviations
``M2 = Σ (x_i - x̄)²`` (:class:`Moments`). A proportion needs its count of hits and ``n``.
Quantiles of a small integer (the matched-pair count) come exactly from how often each value
occurs (:func:`quantiles_from_frequencies`).

:func:`moments_of` computes the statistics of one block in two passes (mean, then deviations
from it), the arithmetic the whole-array measures always used, so a single block reproduces
them bit for bit. :func:`merge_moments` combines two blocks by the pairwise update of Chan,
Golub & LeVeque (1983), written with means (``δ = x̄_B - x̄_A``)::

    n  = n_A + n_B
    x̄  = x̄_A + δ n_B / n
    M2 = M2_A + M2_B + δ² n_A n_B / n

It is exact in real arithmetic; in floating point it never subtracts large sums (unlike the
textbook ``Σx²  - n x̄²``), so merging blocks in any grouping or order agrees with the
whole-array two-pass result to a few units in the last place, whatever the mean. An empty
block (``n = 0``, mean NaN, ``M2 = 0``) is the identity of the merge.

References
----------
Chan TF, Golub GH, LeVeque RJ (1983). Algorithms for computing the sample variance: analysis
and recommendations. Am Stat 37:242-247. Welford BP (1962). Note on a method for calculating
corrected sums of squares and products. Technometrics 4:419-420. Hyndman RJ, Fan Y (1996).
Sample quantiles in statistical packages. Am Stat 50:361-365 (definition 7, NumPy's "linear").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Moments", "moments_of", "merge_moments", "quantiles_from_frequencies"]


@dataclass(frozen=True)
class Moments:
    """Count, mean and sum of squared deviations of a quantity, per cell.

    Attributes
    ----------
    count : ndarray of int64, shape (...)
        Replicates used.
    mean : ndarray of float, shape (...)
        Their mean; NaN where ``count == 0`` (and where a used value was NaN, e.g. an error
        against a NaN truth: the NaN propagates, as in the whole-array measures).
    m2 : ndarray of float, shape (...)
        ``Σ (x_i - mean)²``; 0 where ``count == 0``.
    """

    count: np.ndarray
    mean: np.ndarray
    m2: np.ndarray

    @property
    def variance(self) -> np.ndarray:
        """Sample variance ``M2 / (n - 1)``; NaN where ``n < 2``."""
        with np.errstate(invalid="ignore", divide="ignore"):
            variance = self.m2 / (self.count - 1)
        return np.where(self.count > 1, variance, np.nan)


def moments_of(values, used) -> Moments:
    """:class:`Moments` of ``values`` over the last axis, where ``used``.

    Parameters
    ----------
    values : array_like of float, shape (..., replicate)
        May hold NaN where ``used`` is True (a NaN truth): the NaN then propagates.
    used : array_like of bool, broadcastable to ``values``
        Which replicates enter.

    Returns
    -------
    Moments, fields shaped (...)
    """
    values, used = np.broadcast_arrays(np.asarray(values, dtype=float),
                                       np.asarray(used, dtype=bool))
    count = used.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(used, values, 0.0).sum(axis=-1) / count
        deviation = np.where(used, values - mean[..., np.newaxis], 0.0)
        m2 = (deviation**2).sum(axis=-1)
    mean = np.where(count > 0, mean, np.nan)
    return Moments(count=count.astype(np.int64), mean=mean, m2=m2)


def merge_moments(first: Moments, second: Moments) -> Moments:
    """The :class:`Moments` of two disjoint sets of replicates together (Chan et al. 1983).

    Parameters
    ----------
    first, second : Moments, fields of the same shape (...)

    Returns
    -------
    Moments, fields shaped (...)
    """
    n_first = np.asarray(first.count, dtype=np.int64)
    n_second = np.asarray(second.count, dtype=np.int64)
    count = n_first + n_second
    with np.errstate(invalid="ignore", divide="ignore"):
        delta = np.asarray(second.mean) - np.asarray(first.mean)
        share = n_second / count
        mean = first.mean + delta * share
        m2 = first.m2 + second.m2 + delta**2 * (n_first * share)
    # An empty side is the identity (its mean is NaN, so the formula cannot be used there).
    mean = np.where(n_first == 0, second.mean, np.where(n_second == 0, first.mean, mean))
    m2 = np.where(n_first == 0, second.m2, np.where(n_second == 0, first.m2, m2))
    return Moments(count=count, mean=mean, m2=m2)


def quantiles_from_frequencies(values, frequencies, levels) -> np.ndarray:
    """Sample quantiles of integer data given how often each value occurs.

    Identical to ``numpy.quantile(data, levels)`` (method "linear": Hyndman & Fan's definition
    7) on the data the frequencies describe, to the last bit: the two order statistics around
    ``h = (n - 1) q`` are read off the cumulative frequencies and interpolated by NumPy's
    formula.

    Parameters
    ----------
    values : array_like of float, shape (value,)
        The distinct values, increasing.
    frequencies : array_like of int, shape (..., value)
        How many replicates took each value.
    levels : sequence of float in [0, 1], length L

    Returns
    -------
    ndarray of float, shape (L, ...); NaN where the frequencies sum to 0.
    """
    values = np.asarray(values, dtype=float)
    frequencies = np.asarray(frequencies, dtype=np.int64)
    cumulative = np.cumsum(frequencies, axis=-1)
    count = cumulative[..., -1] if values.size else np.zeros(frequencies.shape[:-1], np.int64)
    results = []
    for level in np.atleast_1d(np.asarray(levels, dtype=np.float64)):
        position = (count - 1) * level
        below = np.floor(position)
        at_top = position >= count - 1
        gamma = np.where(at_top, position + 1.0, position - below)  # NumPy's gamma at the top
        lower_rank = np.where(at_top, count - 1, below).astype(np.int64)
        upper_rank = np.where(at_top, count - 1, below + 1).astype(np.int64)
        lower = _order_statistic(values, cumulative, lower_rank)
        upper = _order_statistic(values, cumulative, upper_rank)
        difference = upper - lower
        result = lower + difference * gamma
        result = np.where(gamma >= 0.5, upper - difference * (1.0 - gamma), result)
        results.append(np.where(count > 0, result, np.nan))
    return np.stack(results)


def _order_statistic(values: np.ndarray, cumulative: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """The ``rank``-th smallest (0-based) of the data with cumulative frequencies ``cumulative``."""
    if values.size == 0:
        return np.full(rank.shape, np.nan)
    index = (cumulative <= rank[..., np.newaxis]).sum(axis=-1)
    return values[np.minimum(index, values.size - 1)]
