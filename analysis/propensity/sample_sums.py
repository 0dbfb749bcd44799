"""Per-replicate sums of the matched or weighted sample, compiled (numba): the caliper's pooled
SD of the distance, each arm's effective sample size and head count, one pass per replicate.

Each replaces two to six numpy operations on (replicate, patient) arrays (a temporary each,
~10-20 us on 200 replicates of 100 patients) by one loop writing per-replicate numbers. The
sums are numpy's pairwise sums in numpy's order (:func:`analysis.pairwise.pairwise_sum`) of the
same summands, formed by the same products, so both functions equal the numpy expressions they
replace bit for bit (tests/analysis/propensity/test_sample_sums.py):

* :func:`pooled_sd`: ``count = eligible.sum(1)``; ``mean = where(eligible, d, 0).sum(1) /
  count``; ``sqrt(where(eligible, (d - mean)**2, 0).sum(1) / (count - 1))`` -- the sample SD
  (n - 1 denominator) of the distance over the eligible patients of both arms pooled, as
  MatchIt's ``std.caliper = TRUE`` computes it (``sd(distance[!discarded])``; Austin 2011,
  Pharm Stat 10:150-161);
* :func:`arm_sums`, each arm's ``w = weights * arm * count`` summed and ``w * weights``
  summed, from which :func:`kish_sizes`: ``w.sum(1)**2 / (w * weights).sum(1)``
  for each arm, Kish's (1965) effective sample size (sum w)^2 / sum w^2 of the expanded
  sample (frequency counts ``count``);
* :func:`arm_totals` (the sums of ``counts`` with unit counts): ``(counts * treated).sum(1)``
  and ``(counts * ~treated).sum(1)``, the patients counted in each arm of an analysed cohort.

Compiled on first use and cached on disk (``cache=True``); see :func:`warm_up`.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from analysis.pairwise import pairwise_sum


@numba.njit(cache=True, nogil=True, error_model="numpy")
def pooled_sd(distance, eligible):
    """Sample SD (ddof 1) of ``distance`` over the ``eligible`` patients of each replicate, and
    their count.

    Parameters
    ----------
    distance : float64 (replicate, patient)
        The matching distance (non-finite values only where not eligible).
    eligible : bool (replicate, patient)

    Returns
    -------
    sd : float64 (replicate,)
        NaN (or inf) where fewer than two are eligible, as numpy's 0/0 and x/0 give.
    count : int64 (replicate,)
    """
    n_rep, n_pat = distance.shape
    sd = np.empty(n_rep)
    count = np.zeros(n_rep, np.int64)
    terms = np.empty(n_pat)
    stack = np.empty((64, 3), np.int64)
    partial = np.empty(64)
    for r in range(n_rep):
        k = 0
        for i in range(n_pat):
            inside = eligible[r, i]
            k += inside
            terms[i] = distance[r, i] if inside else 0.0
        mean = pairwise_sum(terms, 0, n_pat, stack, partial) / k
        for i in range(n_pat):
            deviation = distance[r, i] - mean
            terms[i] = deviation * deviation if eligible[r, i] else 0.0
        sd[r] = math.sqrt(pairwise_sum(terms, 0, n_pat, stack, partial) / (k - 1))
        count[r] = k
    return sd, count


@numba.njit(cache=True, nogil=True, error_model="numpy")
def arm_sums(weights, treated, counts):
    """Each arm's ``(weights * arm * counts).sum(1)`` and ``(weights * arm * counts *
    weights).sum(1)``, summed as numpy sums them.

    Parameters
    ----------
    weights, counts : float64 (replicate, patient)
        Weights (0: not in the sample) and frequency counts.
    treated : bool (replicate, patient)

    Returns
    -------
    float64 (2, 2, replicate): [arm, sum] with arm 0 treated, 1 control and sum 0 the total
    ``sum c w``, 1 ``sum c w^2``.
    """
    n_rep, n_pat = weights.shape
    out = np.empty((2, 2, n_rep))
    first = np.empty(n_pat)
    second = np.empty(n_pat)
    stack = np.empty((64, 3), np.int64)
    partial = np.empty(64)
    for r in range(n_rep):
        for arm in range(2):
            for i in range(n_pat):
                in_arm = 1.0 if treated[r, i] == (arm == 0) else 0.0
                w = weights[r, i] * in_arm * counts[r, i]
                first[i] = w
                second[i] = w * weights[r, i]
            out[arm, 0, r] = pairwise_sum(first, 0, n_pat, stack, partial)
            out[arm, 1, r] = pairwise_sum(second, 0, n_pat, stack, partial)
    return out


def kish_sizes(weights, treated, counts):
    """Kish effective sample size of each arm (:func:`analysis.propensity.weighting.effective_sample_sizes`),
    (sum c w)^2 / sum c w^2 from :func:`arm_sums` (the same arguments); float64 (2,
    replicate), the treated arm's sizes, then the control arm's (NaN for an arm of zero total
    weight)."""
    sums = arm_sums(weights, treated, counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums[:, 0] ** 2 / sums[:, 1]


def arm_totals(counts, treated):
    """``(counts * treated).sum(1)`` and ``(counts * ~treated).sum(1)``, summed as numpy sums
    them (:func:`arm_sums` of ``counts`` with unit counts: ``counts * 1.0`` is ``counts``);
    float64 (2, replicate).

    Parameters
    ----------
    counts : float64 (replicate, patient); treated : bool (replicate, patient)
    """
    return arm_sums(counts, treated, np.ones(counts.shape))[:, 0]


def warm_up() -> None:
    """Load (or compile, on an installation's first use) the kernels for the argument types
    :func:`analysis.propensity.caliper.caliper_width` and
    :func:`analysis.propensity.weighting.effective_sample_sizes` pass."""
    distance, eligible = np.array([[0.0, 1.0]]), np.ones((1, 2), bool)
    pooled_sd(distance, eligible)
    arm_sums(np.ones((1, 2)), np.array([[True, False]]), np.ones((1, 2)))
