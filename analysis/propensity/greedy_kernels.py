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
* :func:`fuzzy_pool_sizes` and :func:`fuzzy_take` -- one step of the SPSS FUZZY matchers: the
  size of each replicate's pool of eligible controls and, once the caller has drawn a uniform
  index into it with the block's numpy ``Generator`` (the same call as before, so the random
  stream and the pairs are unchanged), the drawn control (the draw-th member of the pool in
  patient order). One fused pass over the patients per step instead of a dozen numpy passes
  with (replicate, patient) temporaries.

Compiled on first use and cached on disk (``cache=True``: numba writes the machine code next
to this file, in ``__pycache__``, or in its user cache directory when that is not writable),
so a process pays the compilation once per installation, later processes only the loading
(measured in the README's Speed section).
"""

from __future__ import annotations

import numba
import numpy as np

#: Pool kinds of :func:`fuzzy_pool_sizes`.
RANDOM_WITHIN = 0   # FUZZY < 2.0: an exactly equal control if any, else any within the tolerance
CLOSEST_WITHIN = 1  # FUZZY 2.0: the closest within the tolerance (ties: any of them)


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


@numba.njit(cache=True, nogil=True)
def fuzzy_pool_sizes(kind, distance, t, present, available, limit, control_of, k, replace, best):
    """Pool size of one FUZZY step per replicate, int64 (replicate,).

    ``kind`` :data:`RANDOM_WITHIN` (pool: the available controls with ``d_c == d_t`` if any,
    else all with ``|d_t - d_c| <= limit``) or :data:`CLOSEST_WITHIN` (those within the limit
    at the smallest ``|d_t - d_c|``). ``t`` (replicate,) the step's treated patient, used where
    ``present``; with ``replace`` and ``k > 0`` its own earlier controls are excluded.
    ``best`` (replicate,) float64 is filled with what :func:`fuzzy_take` needs to recognise
    the pool: 1.0 where the pool is the exact ties (RANDOM_WITHIN), else 0.0; the smallest gap
    (CLOSEST_WITHIN). The counting loops have no branches, so they vectorise.
    """
    n_rep, n_pat = distance.shape
    count = np.zeros(n_rep, np.int64)
    for r in range(n_rep):
        best[r] = 0.0 if kind == RANDOM_WITHIN else np.inf
        if not present[r]:
            continue
        tr = t[r]
        d_t = distance[r, tr]
        width = limit[r]
        row = distance[r]
        free = available[r]
        if kind == RANDOM_WITHIN:
            within = 0
            exact = 0
            for i in range(n_pat):
                inside = free[i] & (abs(row[i] - d_t) <= width)
                within += inside
                exact += inside & (row[i] == d_t)
            if replace and k > 0:  # the case's own earlier controls are not in its pool
                for j in range(k):
                    c = control_of[r, tr, j]
                    if c >= 0 and free[c] and abs(row[c] - d_t) <= width:
                        within -= 1
                        exact -= row[c] == d_t
            if exact > 0:
                count[r] = exact
                best[r] = 1.0
            else:
                count[r] = within
        else:
            smallest = np.inf
            for i in range(n_pat):
                gap = abs(row[i] - d_t)
                if free[i] and gap <= width and gap < smallest:
                    if not (replace and k > 0 and _is_own_control(control_of, r, tr, k, i)):
                        smallest = gap
            ties = 0
            for i in range(n_pat):
                ties += free[i] & (abs(row[i] - d_t) == smallest)
            if replace and k > 0:
                for j in range(k):
                    c = control_of[r, tr, j]
                    if c >= 0 and free[c] and abs(row[c] - d_t) == smallest:
                        ties -= 1
            count[r] = ties
            best[r] = smallest
    return count


@numba.njit(cache=True, nogil=True)
def _pool_member(kind, value, d_t, width, best):
    if kind == RANDOM_WITHIN:
        return (abs(value - d_t) <= width) & ((best == 0.0) | (value == d_t))
    return abs(value - d_t) == best


#: Patients counted at a time, without branches, before the member is looked for in a chunk.
_CHUNK = 64


@numba.njit(cache=True, nogil=True)
def fuzzy_take(kind, distance, t, present, available, limit, control_of, uses, k, replace, best, draw):
    """Take the ``draw``-th member (in patient order) of each replicate's pool as found by
    :func:`fuzzy_pool_sizes` (same arguments, its ``best``), recording it in ``control_of``
    and ``uses`` and, without replacement, making it unavailable. Replicates with an empty
    pool take nobody. The members are counted a chunk at a time without branches; only the
    chunk holding the drawn one is walked."""
    n_rep, n_pat = distance.shape
    exclude = replace and k > 0
    for r in range(n_rep):
        if not present[r]:
            continue
        tr = t[r]
        d_t = distance[r, tr]
        width = limit[r]
        row = distance[r]
        free = available[r]
        left = draw[r]
        start = 0
        if not exclude:
            while start < n_pat:
                stop = min(start + _CHUNK, n_pat)
                members = 0
                for i in range(start, stop):
                    members += free[i] & _pool_member(kind, row[i], d_t, width, best[r])
                if left < members:
                    break
                left -= members
                start = stop
        for i in range(start, n_pat):
            if not (free[i] and _pool_member(kind, row[i], d_t, width, best[r])):
                continue
            if exclude and _is_own_control(control_of, r, tr, k, i):
                continue
            if left == 0:
                control_of[r, tr, k] = i
                uses[r, i] += 1
                if not replace:
                    free[i] = False
                break
            left -= 1


@numba.njit(cache=True, nogil=True)
def _fenwick_add(tree, r, position, amount):
    i = position + 1
    while i < tree.shape[1]:
        tree[r, i] += amount
        i += i & -i


@numba.njit(cache=True, nogil=True)
def _fenwick_prefix(tree, r, stop):
    """Sum of the entries at sorted positions ``[0, stop)``."""
    total = 0
    i = stop
    while i > 0:
        total += tree[r, i]
        i -= i & -i
    return total


@numba.njit(cache=True, nogil=True)
def random_within_index(sorted_index, available):
    """Fenwick trees (Fenwick 1994, Softw Pract Exper 24:327-336) over each replicate's sorted
    positions counting its available controls, int32 (replicate, patient + 1), for
    :func:`random_within_sizes` and :func:`random_within_take`."""
    n_rep, n_pat = sorted_index.shape
    tree = np.zeros((n_rep, n_pat + 1), np.int32)
    for r in range(n_rep):
        for p in range(n_pat):
            if available[r, sorted_index[r, p]]:
                tree[r, p + 1] += 1
        for i in range(1, n_pat + 1):
            parent = i + (i & -i)
            if parent <= n_pat:
                tree[r, parent] += tree[r, i]
    return tree


@numba.njit(cache=True, nogil=True)
def random_within_sizes(sorted_distance, position, t, present, limit, tree, ranges):
    """FUZZY < 2.0's pool size per replicate, int64 (replicate,), as :func:`fuzzy_pool_sizes`
    with :data:`RANDOM_WITHIN` (no exclusions), in O(log n): ``|d_c - d_t| <= limit`` and
    ``d_c == d_t`` each hold on one run of sorted positions around the treated patient's own
    (the floating-point difference is monotone in ``d_c``), found by bisection on the same
    comparisons, and the available controls in a run are counted from the Fenwick tree.
    ``ranges`` (replicate, 2) is filled with the pool's run ``[start, stop)``."""
    n_rep, n_pat = sorted_distance.shape
    count = np.zeros(n_rep, np.int64)
    for r in range(n_rep):
        ranges[r, 0] = 0
        ranges[r, 1] = 0
        if not present[r]:
            continue
        row = sorted_distance[r]
        here = position[r, t[r]]
        d_t = row[here]
        width = limit[r]
        lo, hi = 0, here  # first position on the left within the limit
        while lo < hi:
            mid = (lo + hi) // 2
            if abs(row[mid] - d_t) <= width:
                hi = mid
            else:
                lo = mid + 1
        within_start = lo
        lo, hi = here + 1, n_pat  # first position on the right beyond it
        while lo < hi:
            mid = (lo + hi) // 2
            if abs(row[mid] - d_t) <= width:
                lo = mid + 1
            else:
                hi = mid
        within_stop = lo
        lo, hi = within_start, here  # the exact ties lie inside the run within the limit
        while lo < hi:
            mid = (lo + hi) // 2
            if row[mid] == d_t:
                hi = mid
            else:
                lo = mid + 1
        exact_start = lo
        lo, hi = here + 1, within_stop
        while lo < hi:
            mid = (lo + hi) // 2
            if row[mid] == d_t:
                lo = mid + 1
            else:
                hi = mid
        exact_stop = lo
        exact = _fenwick_prefix(tree, r, exact_stop) - _fenwick_prefix(tree, r, exact_start)
        if exact > 0:
            count[r] = exact
            ranges[r, 0] = exact_start
            ranges[r, 1] = exact_stop
        else:
            count[r] = _fenwick_prefix(tree, r, within_stop) - _fenwick_prefix(tree, r, within_start)
            ranges[r, 0] = within_start
            ranges[r, 1] = within_stop
    return count


@numba.njit(cache=True, nogil=True)
def random_within_take(slot, t, present, tree, ranges, control_of, uses, k, replace, draw):
    """Take the ``draw``-th available control (in patient order) whose sorted position lies in
    the pool's run (:func:`random_within_sizes`), as :func:`fuzzy_take`; without replacement
    it leaves the pool and the Fenwick tree. ``slot`` int32 (replicate, patient) is a patient's
    sorted position if it is an available control, else the patient count (in no run), so a
    member is one unsigned comparison: the chunks are counted at a fraction of a nanosecond
    per patient."""
    n_rep, n_pat = slot.shape
    for r in range(n_rep):
        if not present[r] or ranges[r, 1] <= ranges[r, 0]:
            continue
        first = ranges[r, 0]
        span = np.uint32(ranges[r, 1] - first)
        row = slot[r]
        left = draw[r]
        start = 0
        while start < n_pat:
            stop = min(start + _TAKE_CHUNK, n_pat)
            members = 0
            for i in range(start, stop):
                members += np.uint32(row[i] - first) < span
            if left < members:
                break
            left -= members
            start = stop
        for i in range(start, n_pat):
            if np.uint32(row[i] - first) < span:
                if left == 0:
                    control_of[r, t[r], k] = i
                    uses[r, i] += 1
                    if not replace:
                        _fenwick_add(tree, r, row[i], -1)
                        row[i] = n_pat
                    break
                left -= 1


#: Patients counted at a time by :func:`random_within_take`.
_TAKE_CHUNK = 256


def warm_up() -> None:
    """Load (or compile, on the first use of an installation) every kernel for the argument
    types the matchers pass, on a two-patient cohort: a caller that times a block calls this
    first, so the timing is the block's, not numba's loading (~0.5 s per process)."""
    distance = np.array([[0.0, 1.0]])
    order = np.array([[0, 1]], dtype=np.int64)
    control = np.array([[False, True]])
    limit = np.array([np.inf])
    control_of, uses = nearest_left_right(distance, order, order, control, np.array([[0]], dtype=np.int64),
                                          limit, 1, False)
    t, present, best = np.zeros(1, dtype=np.int64), np.ones(1, dtype=bool), np.empty(1)
    tree = random_within_index(order, control)
    ranges = np.zeros((1, 2), dtype=np.int64)
    count = random_within_sizes(distance, order, t, present, limit, tree, ranges)
    random_within_take(np.array([[2, 1]], dtype=np.int32), t, present, tree, ranges, control_of, uses, 0, False,
                       np.zeros_like(count))
    for kind in (RANDOM_WITHIN, CLOSEST_WITHIN):
        count = fuzzy_pool_sizes(kind, distance, t, present, control.copy(), limit, control_of, 0, False, best)
        fuzzy_take(kind, distance, t, present, control.copy(), limit, control_of, uses, 0, False, best,
                   np.zeros_like(count))
