"""Bootstrap standard errors of a whole block at once: multinomial resampling weights for every
replicate and draw, evaluated a chunk of (replicate, draw) rows at a time.

A bootstrap resample of n units (patients, or matched sets) drawn with replacement is the
sample with every unit weighted by how often it was drawn, a multinomial(n, 1/n) count.
:func:`draw_counts` draws these counts for all replicates and draws in one call;
:func:`bootstrap_standard_errors` hands them, as frequency weights, to an estimator that
analyses many cohorts at once (the batched engine), one chunk of rows at a time, and returns
the standard deviation of the estimates over the draws of each replicate (Efron & Tibshirani
1993, ch. 6).

* After matching, the units are the matched sets: the *pairs* (cluster) bootstrap keeps the
  matching and resamples sets (Austin & Small 2014; Abadie & Spiess 2022, who show it is
  valid for matching without replacement; MatchIt's "cluster bootstrap").
* For weighting and adjustment, the units are the patients and every resample is analysed
  from scratch: the PS model, the weights, knots and strata are re-estimated (Austin 2016
  recommends this bootstrap for IPTW survival analyses).

The counts come from ``rng`` in one array of uniforms shaped (replicate, draw, unit): unit
k of a replicate with n units is draw ``floor(n u_k)`` for k < n (the other columns are
unused), so a per-replicate loop given the same generator state reproduces every draw, and the
estimates do not depend on the chunk size. A draw whose estimate fails (e.g. no event in an
arm) is left out; the SE is the SD (n - 1 divisor) of the remaining ones, NaN with fewer than
two.

References
----------
Efron B, Tibshirani RJ (1993). An Introduction to the Bootstrap, Chapman & Hall. Austin PC,
Small DS (2014). The use of bootstrapping when using propensity-score matching without
replacement: a simulation study. Stat Med 33:4306-4319. Abadie A, Spiess J (2022). Robust
post-matching inference. J Am Stat Assoc 117:983-995. Austin PC (2016). Variance estimation
when using inverse probability of treatment weighting (IPTW) with survival analysis. Stat Med
35:5642-5655.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

#: (replicate, draw) rows analysed at once: bounds the memory of the resampled cohorts.
CHUNK_ROWS = 2000


@dataclass(frozen=True)
class BootstrapResult:
    """Bootstrap SEs of a block.

    Attributes
    ----------
    se : ndarray of float, shape (replicate, k)
        SD over the draws of each of the k estimates (e.g. one per endpoint).
    n_used : ndarray of int, shape (replicate, k)
        Draws with a finite estimate.
    """

    se: np.ndarray
    n_used: np.ndarray


def draw_counts(n_units, draws: int, width: int, *, rng: np.random.Generator) -> np.ndarray:
    """Multinomial resampling counts of every replicate's units, shape (replicate, draw, width).

    Parameters
    ----------
    n_units : array_like of int, shape (replicate,)
        Units of each replicate (<= width); counts of units beyond are 0.
    draws : int
    width : int
        Columns of the result (the largest number of units).
    rng : numpy.random.Generator
    """
    n_units = np.asarray(n_units, dtype=np.int64)
    n_rep = n_units.shape[0]
    uniforms = rng.random((n_rep, draws, width))
    unit = np.floor(uniforms * n_units[:, None, None]).astype(np.int64)
    drawn = np.broadcast_to(np.arange(width)[None, None, :] < n_units[:, None, None], unit.shape)
    cells = (np.arange(n_rep * draws, dtype=np.int64) * width).reshape(n_rep, draws, 1) + unit
    counts = np.bincount(cells[drawn], minlength=n_rep * draws * width)
    return counts.reshape(n_rep, draws, width).astype(float)


def bootstrap_standard_errors(estimate: Callable[[np.ndarray, np.ndarray], np.ndarray], n_units, *,
                              n_estimates: int, draws: int, rng: np.random.Generator,
                              chunk_rows: int = CHUNK_ROWS) -> BootstrapResult:
    """Bootstrap SEs of ``estimate`` for every replicate of a block.

    Parameters
    ----------
    estimate : callable (replicate_of_row, unit_counts) -> ndarray, shape (rows, k)
        Analyses resampled cohorts: row m is replicate ``replicate_of_row[m]`` with its units
        weighted by ``unit_counts[m]`` (shape (rows, width)); returns the k estimates of each
        row (NaN where the analysis fails).
    n_units : array_like of int, shape (replicate,)
        Units of each replicate (0: no bootstrap, NaN SE).
    n_estimates : int
        k, the number of estimates ``estimate`` returns per row.
    draws : int
        Resamples per replicate.
    rng : numpy.random.Generator
    chunk_rows : int
        Rows analysed per call of ``estimate`` (the result does not depend on it).

    Returns
    -------
    BootstrapResult
    """
    n_units = np.asarray(n_units, dtype=np.int64)
    n_rep = n_units.shape[0]
    width = max(int(n_units.max(initial=0)), 1)
    counts = draw_counts(n_units, draws, width, rng=rng).reshape(n_rep * draws, width)
    replicate_of_row = np.repeat(np.arange(n_rep), draws)
    wanted = np.repeat(n_units > 0, draws)
    rows = np.flatnonzero(wanted)
    estimates = np.full((n_rep * draws, n_estimates), np.nan)
    step = max(int(chunk_rows), 1)
    for start in range(0, rows.size, step):
        chunk = rows[start:start + step]
        estimates[chunk] = np.asarray(estimate(replicate_of_row[chunk], counts[chunk]), dtype=float)
    estimates = estimates.reshape(n_rep, draws, n_estimates)
    finite = np.isfinite(estimates)
    n_used = finite.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(finite, estimates, 0.0).sum(axis=1) / n_used
        squares = np.where(finite, (estimates - mean[:, None, :]) ** 2, 0.0).sum(axis=1)
        se = np.sqrt(squares / (n_used - 1))
    return BootstrapResult(se=np.where(n_used >= 2, se, np.nan), n_used=n_used)
