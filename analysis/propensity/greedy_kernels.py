"""Compiled kernels of the greedy matchers (numba), for the loops numpy cannot vectorise.

Greedy matching is sequential within a replicate: whom the next treated patient gets depends
on whom the earlier ones took. :mod:`analysis.propensity.matching` therefore used to step
through the treated patients in Python, each step vectorised over the replicates but scanning
every patient of the cohort: O(treated x patients) per replicate, quadratic in the cohort
size. These kernels do the same choices, comparison for comparison on the same doubles, so
their pairs are identical (tested against the numpy stepper):

* :func:`nearest_left_right` -- MatchIt's nearest neighbour, the whole matching of a block in
  one call. The nearest available control on each side in the sorted order is found through
  two disjoint-set forests over sorted positions ("next free slot to the left/right", path
  compression; Tarjan 1975, J ACM 22:215-225), so a replicate costs the sort plus nearly O(1)
  per treated patient.
* The SPSS FUZZY matchers' kernels are in :mod:`analysis.propensity.fuzzy_kernels`.

Compiled on first use and cached on disk (``cache=True``: numba writes the machine code next
to this file, in ``__pycache__``, or in its user cache directory when that is not writable),
so a process pays the compilation once per installation, later processes only the loading
(measured in the README's Speed section).
"""

from __future__ import annotations

import numba
import numpy as np

from analysis.propensity import fuzzy_kernels, matched_sets


@numba.njit(cache=True, nogil=True)
def _find(parent, i):
    """Root of ``i`` in the forest ``parent`` (a root is its own parent), with path compression."""
    root = i
    while parent[root] != root:
        root = parent[root]
    while parent[i] != root:
        following = parent[i]
        parent[i] = root
        i = following
    return root


@numba.njit(cache=True, nogil=True)
def _is_own_control(control_of, r, t, k, patient):
    for j in range(k):
        if control_of[r, t, j] == patient:
            return True
    return False


@numba.njit(cache=True, nogil=True)
def nearest_left_right(distance, sorted_index, position, is_control, sequence, limit, ratio, replace):
    """MatchIt ``nn_matchC_vec`` for every replicate of a block.

    Parameters
    ----------
    distance : float64 (replicate, patient), NaN for ineligible patients.
    sorted_index : int64 (replicate, patient), the stable ascending argsort of ``distance``
        (ineligible last); ``position`` its inverse permutation.
    is_control : bool (replicate, patient), eligible controls.
    sequence : int64 (replicate, steps), the treated in processing order, -1 padded.
    limit : float64 (replicate,), the caliper (inf: none).
    ratio, replace : controls per treated patient (rounds: every treated gets its j-th control
        before any gets its (j+1)-th) and matching with replacement.

    Returns ``control_of`` int32 (replicate, patient, ratio) and ``uses`` int64 (replicate,
    patient), as :func:`analysis.propensity.matched_sets.assemble_matched_sets` takes them.

    For each treated patient the candidate on each side is the nearest available control in
    sorted position (for the j-th control with replacement: not already one of its own); a
    candidate farther than the caliper is dropped; of two, the smaller ``|d_t - d_c|`` wins,
    the left one on a tie. ``left[p + 1]`` is a forest whose roots are the free positions
    (slot 0: none on the left), ``right[p]`` likewise (slot n: none on the right).
    """
    n_rep, n_pat = distance.shape
    n_steps = sequence.shape[1]
    control_of = np.full((n_rep, n_pat, ratio), -1, np.int32)
    uses = np.zeros((n_rep, n_pat), np.int64)
    left = np.empty(n_pat + 1, np.int64)
    right = np.empty(n_pat + 1, np.int64)
    for r in range(n_rep):
        left[0] = 0
        right[n_pat] = n_pat
        for p in range(n_pat):
            if is_control[r, sorted_index[r, p]]:
                left[p + 1] = p + 1
                right[p] = p
            else:
                left[p + 1] = p
                right[p] = p + 1
        width = limit[r]
        for k in range(ratio):
            for s in range(n_steps):
                t = sequence[r, s]
                if t < 0:
                    break
                here = position[r, t]
                d_t = distance[r, t]
                lo = _find(left, here) - 1
                hi = _find(right, here + 1)
                if replace and k > 0:
                    while lo >= 0 and _is_own_control(control_of, r, t, k, sorted_index[r, lo]):
                        lo = _find(left, lo) - 1
                    while hi < n_pat and _is_own_control(control_of, r, t, k, sorted_index[r, hi]):
                        hi = _find(right, hi + 1)
                left_ok = False
                right_ok = False
                gap_left = 0.0
                gap_right = 0.0
                if lo >= 0:
                    gap_left = abs(distance[r, sorted_index[r, lo]] - d_t)
                    left_ok = gap_left <= width
                if hi < n_pat:
                    gap_right = abs(distance[r, sorted_index[r, hi]] - d_t)
                    right_ok = gap_right <= width
                if left_ok and (not right_ok or gap_left <= gap_right):
                    chosen = sorted_index[r, lo]
                elif right_ok:
                    chosen = sorted_index[r, hi]
                else:
                    continue
                control_of[r, t, k] = chosen
                uses[r, chosen] += 1
                if not replace:
                    p = position[r, chosen]
                    left[p + 1] = p
                    right[p] = p + 1
    return control_of, uses


#: Processing orders :func:`sorted_positions` builds (``random`` stays a numpy argsort of the
#: generator's keys, ``matching._treated_order``).
ORDER_CODES = {"data": 0, "smallest": 1, "largest": 2}


@numba.njit(cache=True, nogil=True)
def _sort_key(value):
    """The distance as the matchers sort it: non-finite (ineligible) last, as +inf."""
    return value if np.isfinite(value) else np.inf


@numba.njit(cache=True, nogil=True)
def sorted_positions(distance, order, is_treated, order_code, width):
    """The sorted positions of a block, from numpy's (SIMD, not stable) ascending argsort.

    Parameters
    ----------
    distance : float64 (replicate, patient), NaN for ineligible patients.
    order : int64 (replicate, patient), ``np.argsort`` of the distance with non-finite values
        as +inf; made stable in place: each run of equal keys (``==``, as the sort compares)
        is put in ascending patient order, which is what ``kind="stable"`` gives, at a
        fraction of its cost (one pass, the runs being short).
    is_treated : bool (replicate, patient), the eligible treated.
    order_code : :data:`ORDER_CODES` value of the processing order, or -1 (none built).
    width : int, the largest number of treated in a replicate.

    Returns
    -------
    position : int64 (replicate, patient), the inverse permutation of ``order``.
    sorted_distance : float64 (replicate, patient), the distance in sorted order (NaN kept).
    sequence : int64 (replicate, width), the treated in processing order, -1 padded, as
        ``matching._treated_order`` gives it (all -1 for ``order_code`` -1): ``data`` in patient
        order; ``smallest`` in sorted order; ``largest`` the runs of equal distances from the
        top, each in ascending patient order (R's ``order(decreasing=TRUE)``: ties in data
        order).
    """
    n_rep, n_pat = distance.shape
    position = np.empty((n_rep, n_pat), np.int64)
    sorted_distance = np.empty((n_rep, n_pat))
    sequence = np.full((n_rep, width), -1, np.int64)
    for r in range(n_rep):
        start = 0
        while start < n_pat:
            value = _sort_key(distance[r, order[r, start]])
            stop = start + 1
            while stop < n_pat and _sort_key(distance[r, order[r, stop]]) == value:
                stop += 1
            if stop - start > 1:
                order[r, start:stop] = np.sort(order[r, start:stop])
            start = stop
        for p in range(n_pat):
            i = order[r, p]
            position[r, i] = p
            sorted_distance[r, p] = distance[r, i]
        j = 0
        if order_code == 0:
            for i in range(n_pat):
                if is_treated[r, i]:
                    sequence[r, j] = i
                    j += 1
        elif order_code == 1:
            for p in range(n_pat):
                if is_treated[r, order[r, p]]:
                    sequence[r, j] = order[r, p]
                    j += 1
        elif order_code == 2:
            stop = n_pat
            while stop > 0:
                start = stop - 1
                value = _sort_key(sorted_distance[r, stop - 1])
                while start > 0 and _sort_key(sorted_distance[r, start - 1]) == value:
                    start -= 1
                for p in range(start, stop):
                    if is_treated[r, order[r, p]]:
                        sequence[r, j] = order[r, p]
                        j += 1
                stop = start
    return position, sorted_distance, sequence


def warm_up() -> None:
    """Load (or compile, on the first use of an installation) every matching kernel, this
    module's, :mod:`analysis.propensity.fuzzy_kernels`' and the matched sets' assembly
    (:mod:`analysis.propensity.matched_sets`), for the argument types the
    matchers pass, on a two-patient cohort: a caller that times a block calls this first, so
    the timing is the block's, not numba's loading (~0.5 s per process)."""
    distance = np.array([[0.0, 1.0]])
    order = np.array([[0, 1]], dtype=np.int64)
    control = np.array([[False, True]])
    nearest_left_right(distance, order, order, control, np.array([[0]], dtype=np.int64), np.array([np.inf]), 1,
                       False)
    for code in (-1, *ORDER_CODES.values()):
        sorted_positions(distance, order.copy(), ~control, code, 1)
    fuzzy_kernels.warm_up()
    matched_sets.warm_up()
