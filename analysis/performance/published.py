"""Where a published number falls in the simulated distribution of the same statistic.

For one published value x (printed to a precision: every value within ``half_width`` of x
prints as x) and the simulated values s_1..s_n over replicates (NaN = not computed, left out),

    percentile = 100 × (#{s_i < x − h} + ½ #{|s_i − x| ≤ h}) / n,

the mid-distribution function of the simulated distribution at x (Parzen 2004): a simulated
value that prints as the published one counts half, so a discrete statistic (a count, a p-value
of 1.000) that equals x in most replicates lands near 50, not at 0 or 100. The published number
is flagged when it falls outside the central ``level`` range (below 2.5 or above 97.5 for
0.95): under the model it would be that extreme in fewer than 5% of studies (two-sided).

The simulated median and the 2.5–97.5% range are order statistics (Hyndman & Fan 1996 type 1,
the inverse of the empirical distribution function), defined also where some values are
infinite (a Kaplan–Meier median not reached).

References
----------
Parzen E (2004). Quantile probability and statistical data modeling. Statist Sci 19:652-662.
Hyndman RJ, Fan Y (1996). Sample quantiles in statistical packages. Am Stat 50:361-365.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Slack on the half-width for floating-point representation (0.1 + 0.05 vs 0.15).
_SLACK = 1e-9


@dataclass(frozen=True)
class PublishedComparison:
    """Per published number (shape (row,)): the simulated ``median``, ``lower`` and ``upper``
    ends of the central range, the ``percentile`` of the published value (0–100; NaN without
    replicates), ``outside`` (True when it falls outside the central range) and ``n_used``,
    the replicates with a value."""

    median: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    percentile: np.ndarray
    outside: np.ndarray
    n_used: np.ndarray


def compare_published(simulated, published, half_width, *, level: float = 0.95) -> PublishedComparison:
    """The simulated distribution of each row and the percentile of its published value.

    Parameters
    ----------
    simulated : array_like of float, shape (replicate, row)
        One column per published number; NaN where a replicate has no value; ±inf allowed.
    published : array_like of float, shape (row,)
    half_width : array_like of float, shape (row,) or scalar
        Values within it of the published one print the same (0.0005 for three decimals).
    level : central range, in (0, 1).

    Returns
    -------
    PublishedComparison
    """
    simulated = np.asarray(simulated, dtype=float)
    if simulated.ndim != 2:
        raise ValueError(f"simulated must be shaped (replicate, row); got {simulated.shape}")
    published = np.broadcast_to(np.asarray(published, dtype=float), simulated.shape[1:])
    half = np.broadcast_to(np.asarray(half_width, dtype=float), simulated.shape[1:]) * (1 + _SLACK) + _SLACK
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level}")
    present = ~np.isnan(simulated)
    n_used = present.sum(axis=0)
    below = (present & (simulated < published - half)).sum(axis=0)
    tied = (present & (np.abs(simulated - published) <= half)).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        percentile = np.where(n_used > 0, 100.0 * (below + 0.5 * tied) / n_used, np.nan)
    tail = 100.0 * (1 - level) / 2
    outside = (n_used > 0) & ((percentile < tail) | (percentile > 100.0 - tail))
    probabilities = (0.5 - level / 2, 0.5, 0.5 + level / 2)
    quantiles = np.full((3, simulated.shape[1]), np.nan)
    some = n_used > 0
    if some.any():
        quantiles[:, some] = np.nanquantile(simulated[:, some], probabilities, axis=0, method="inverted_cdf")
    return PublishedComparison(median=quantiles[1], lower=quantiles[0], upper=quantiles[2],
                               percentile=percentile, outside=outside, n_used=n_used)
