"""Optimal pair matching on a scalar distance, batched over replicates.

Optimal (pair) matching chooses the set of 1:1 pairs that minimises the *total* distance
``sum |d_t - d_c|`` over the pairs (Rosenbaum 1989; Gu & Rosenbaum 1993; R optmatch
``pairmatch`` and MatchIt ``method = "optimal"``), instead of taking the nearest control of
one treated patient after the other. With a caliper only pairs with ``|d_t - d_c| <=
caliper`` are allowed and not every treated patient may find a control: the matching then
pairs as many treated patients as any caliper-respecting matching can, and among those
matchings takes one of minimum total distance (without a caliper and with at least as many
controls as treated, every treated patient is paired, as ``pairmatch`` does).

Why no assignment solver: for a scalar distance the cost ``|d_t - d_c|`` has the Monge
property on the sorted values, so some optimal matching never *crosses* (if t1 <= t2 are
paired with c1, c2, then c1 <= c2), and two allowed crossing pairs uncross into two allowed
pairs (if ``|t1 - c2|`` and ``|t2 - c1|`` are within the caliper, so are ``|t1 - c1|`` and
``|t2 - c2|``) of no larger total. The optimum is therefore a monotone alignment of the sorted
treated and sorted controls, found by dynamic programming: with the first i treated and the
first j controls,

``f(i, j) = min(f(i, j - 1), f(i - 1, j) + M, f(i - 1, j - 1) + |t_i - c_j|)``

(control j unused; treated i unmatched at a penalty M larger than any matching's total
distance, so fewer pairs never pay; or the pair (i, j) if allowed). Each row i is a prefix
minimum over j (``numpy.minimum.accumulate``), so the recursion is a loop over the treated
(at most n_treated steps) vectorised over replicates and controls, with no loop over
replicates, as the rest of the engine; a general assignment solver
(``scipy.optimize.linear_sum_assignment``) would need one call per replicate. The tests check
the total distance against a brute-force search on small cohorts and against
``linear_sum_assignment`` on larger ones.

R's ``optmatch`` is not installed here (it is not packaged for Debian), so the pairs are not
compared with MatchIt ``method = "optimal"``; optmatch also scales distances to integers
before solving, so its optimum is approximate to its tolerance.

References
----------
Rosenbaum PR (1989). Optimal matching for observational studies. J Am Stat Assoc
84:1024-1032. Gu XS, Rosenbaum PR (1993). Comparison of multivariate matching methods:
structures, distances, and algorithms. J Comput Graph Stat 2:405-420. Hansen BB, Klopfer SO
(2006). Optimal full matching and related designs via network flows. J Comput Graph Stat
15:609-627. Burkard RE, Klinz B, Rudolf R (1996). Perspectives of Monge properties in
optimization. Discrete Appl Math 70:95-161.
"""

from __future__ import annotations

import numpy as np

from analysis.propensity.matched_sets import MatchResult, assemble_matched_sets


def _sorted_arm(distance, in_arm):
    """Patient indices of an arm sorted by distance (stable), padded with -1; and the values."""
    key = np.where(in_arm, distance, np.inf)
    order = np.argsort(key, axis=1, kind="stable")
    count = in_arm.sum(axis=1)
    width = max(int(count.max(initial=0)), 1)
    order = order[:, :width]
    present = np.arange(width)[None, :] < count[:, None]
    values = np.where(present, np.take_along_axis(key, order, axis=1), np.inf)
    return np.where(present, order, -1), values, count


def match_optimal(distance, treated, *, mask=None, caliper=None, ratio=1, replace=False, order=None,
                  rng=None) -> MatchResult:
    """Optimal 1:1 matching without replacement (minimum total ``|d_t - d_c|``), every replicate.

    Parameters
    ----------
    distance : array_like of float, shape (replicate, patient)
        Propensity score or its logit; non-finite = ineligible.
    treated : array_like of bool, shape (replicate, patient)
    mask : array_like of bool, shape (replicate, patient), optional
        Eligible patients (default: all).
    caliper : float, ndarray of shape (replicate,), or None
        Largest allowed ``|d_t - d_c|`` (distance units); None or NaN: none.
    ratio, replace, order, rng
        Accepted for the common matcher signature: only ``ratio = 1``, ``replace = False`` are
        defined (ValueError otherwise); ``order`` and ``rng`` are unused (the result does not
        depend on any processing order).

    Returns
    -------
    MatchResult
        Pairs numbered in data order of the treated, as the other matchers. Among several
        optimal matchings the one found by the backtracking below (unused controls skipped
        first, from the largest distances down) is returned.
    """
    if int(ratio) != 1 or replace:
        raise ValueError("optimal matching is defined here for 1:1 matching without replacement")
    d = np.asarray(distance, dtype=float)
    if d.ndim != 2:
        raise ValueError(f"distance must be shaped (replicate, patient), got {d.shape}")
    is_treated_all = np.asarray(treated, dtype=bool)
    eligible = np.isfinite(d) if mask is None else np.asarray(mask, dtype=bool) & np.isfinite(d)
    if is_treated_all.shape != d.shape or eligible.shape != d.shape:
        raise ValueError("treated and mask must be shaped (replicate, patient) like distance")
    n_rep, n_pat = d.shape
    width = np.full(n_rep, np.nan) if caliper is None else np.broadcast_to(np.asarray(caliper, float), (n_rep,)).copy()
    if np.any(width < 0):
        raise ValueError("caliper must be >= 0 (NaN means no caliper)")
    limit = np.where(np.isnan(width), np.inf, width)
    is_treated = eligible & is_treated_all
    treated_index, t_values, n_treated = _sorted_arm(d, is_treated)
    control_index, c_values, n_control = _sorted_arm(d, eligible & ~is_treated_all)

    finite = np.where(eligible, d, np.nan)
    with np.errstate(invalid="ignore"):
        spread = np.nanmax(finite, axis=1, initial=-np.inf) - np.nanmin(finite, axis=1, initial=np.inf)
    spread = np.where(np.isfinite(spread), spread, 0.0)
    penalty = (n_treated + 1.0) * (spread + 1.0)  # > any matching's total distance

    n_t, n_c = t_values.shape[1], c_values.shape[1]
    rows = np.arange(n_rep)
    cost_table = np.zeros((n_t + 1, n_rep, n_c + 1))  # f(i, j), j = 0..n_c
    previous = cost_table[0]
    for i in range(1, n_t + 1):
        with np.errstate(invalid="ignore"):  # inf - inf in the padding: NaN, never allowed
            gap = np.abs(t_values[:, i - 1, None] - c_values)  # (R, n_c)
        allowed = gap <= limit[:, None]
        pair = np.where(allowed, previous[:, :-1] + gap, np.inf)
        candidates = previous + penalty[:, None]
        candidates[:, 1:] = np.minimum(candidates[:, 1:], pair)
        current = np.minimum.accumulate(candidates, axis=1)
        current = np.where((i <= n_treated)[:, None], current, previous)
        cost_table[i] = current
        previous = current

    control_of = np.full((n_rep, n_pat, 1), -1, dtype=np.int32)
    i, j = n_treated.copy(), n_control.copy()
    for _ in range(n_t + n_c):
        active = i > 0
        if not active.any():
            break
        here = cost_table[i, rows, j]
        skip_control = active & (j > 0) & (here == cost_table[i, rows, np.maximum(j - 1, 0)])
        t_here = t_values[rows, np.maximum(i - 1, 0)]
        c_here = c_values[rows, np.maximum(j - 1, 0)]
        with np.errstate(invalid="ignore"):
            gap = np.abs(t_here - c_here)
        paired = (active & ~skip_control & (j > 0) & (gap <= limit)
                  & (here == cost_table[np.maximum(i - 1, 0), rows, np.maximum(j - 1, 0)] + gap))
        hit = np.flatnonzero(paired)
        control_of[hit, treated_index[hit, i[hit] - 1], 0] = control_index[hit, j[hit] - 1]
        j = j - (skip_control | paired)
        i = i - (active & ~skip_control)
    return assemble_matched_sets(control_of, is_treated, width)
