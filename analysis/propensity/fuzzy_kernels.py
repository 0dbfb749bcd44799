"""Compiled SPSS FUZZY matchers (numba): a whole block's matching in one call, random draws included.

FUZZY processes the cases (treated) one *step* at a time: each step sizes every replicate's
pool of eligible controls, draws a uniform index into it from the block's
``numpy.random.Generator`` and takes that member (in patient order). The steps used to be a
Python loop around two kernels and a numpy draw per step (at 10,000 patients 3,500 steps, ~6 ms
per replicate of call overhead alone); here the loop runs in the kernel.

The random numbers stay the same. The draws cannot be made up front: a step's bounds are the
pool sizes after the earlier steps' picks, and how many 32-bit words a draw consumes depends
on its bound (none for a pool of 0 or 1, one otherwise, more after a Lemire rejection).
Instead the kernel draws exactly as the numpy stepper did, step by step and replicate by
replicate in the same order, through numba's support for ``numpy.random.Generator``: numba
calls the generator's own bit generator through its ``ctypes`` interface (``next_uint32``,
the same state) and implements ``integers`` with NumPy's algorithm (Lemire's bounded
integers with rejection, ``random_bounded_uint64_fill``; Lemire 2019, ACM TOMACS 29:3), so
``rng.integers(0, count)`` in the kernel gives what numpy's ``rng.integers(0, counts)`` gave
for that element, and leaves the generator in the same state (tested for PCG64, Philox,
MT19937 and SFC64 with bounds below and above 2**32). A pool of at most one member draws
nothing, as numpy's ``integers(0, 1)`` does not. numba does not take the bit generator's lock:
no other thread may use the generator during the call (a block's generator is its own).

* :func:`fuzzy_match` -- the pools by a fused branch-free pass over the patients per step,
  for every FUZZY variant (exact ties first or closest, with or without replacement, 1:k).
* :func:`random_within_match` -- FUZZY < 2.0 without exclusions (not 1:k with replacement)
  on large cohorts: each step's pool is a run of sorted positions (the available controls
  within the tolerance, or the exact ties), found by bisection and sized from a Fenwick tree
  in O(log n) (Fenwick 1994, Softw Pract Exper 24:327-336); the drawn control is then found
  in patient order.
"""

from __future__ import annotations

import numba
import numpy as np

#: Pool kinds of :func:`fuzzy_match`.
RANDOM_WITHIN = 0   # FUZZY < 2.0: an exactly equal control if any, else any within the tolerance
CLOSEST_WITHIN = 1  # FUZZY 2.0: the closest within the tolerance (ties: any of them)


@numba.njit(cache=True, nogil=True)
def _draw(rng, count):
    """The index into a pool of ``count`` members that numpy's ``rng.integers(0, max(count, 1))``
    gives: no random number is consumed for a pool of 0 or 1."""
    if count > 1:
        return rng.integers(0, count)
    return 0


@numba.njit(cache=True, nogil=True)
def _pool_size(kind, row, free, d_t, width, own, k, exclude):
    """Pool size of one replicate's FUZZY step and the ``best`` :func:`_take` needs.

    ``kind`` :data:`RANDOM_WITHIN` (pool: the available controls with ``d_c == d_t`` if any,
    else all with ``|d_t - d_c| <= width``; ``best`` 1.0 where the pool is the exact ties,
    else 0.0) or :data:`CLOSEST_WITHIN` (those within the width at the smallest gap, ``best``).
    ``own`` the case's controls so far; with ``exclude`` (replacement, k > 0) its first ``k``
    are not in its pool. The counting loops have no branches, so they vectorise.
    """
    n_pat = row.shape[0]
    if kind == RANDOM_WITHIN:
        within = 0
        exact = 0
        for i in range(n_pat):
            inside = free[i] & (abs(row[i] - d_t) <= width)
            within += inside
            exact += inside & (row[i] == d_t)
        if exclude:  # the case's own earlier controls are not in its pool
            for j in range(k):
                c = own[j]
                if c >= 0 and free[c] and abs(row[c] - d_t) <= width:
                    within -= 1
                    exact -= row[c] == d_t
        if exact > 0:
            return exact, 1.0
        return within, 0.0
    smallest = np.inf
    for i in range(n_pat):
        gap = abs(row[i] - d_t)
        if free[i] and gap <= width and gap < smallest:
            if not (exclude and _is_own(own, k, i)):
                smallest = gap
    ties = 0
    for i in range(n_pat):
        ties += free[i] & (abs(row[i] - d_t) == smallest)
    if exclude:
        for j in range(k):
            c = own[j]
            if c >= 0 and free[c] and abs(row[c] - d_t) == smallest:
                ties -= 1
    return ties, smallest


@numba.njit(cache=True, nogil=True)
def _is_own(own, k, patient):
    for j in range(k):
        if own[j] == patient:
            return True
    return False


@numba.njit(cache=True, nogil=True)
def _pool_member(kind, value, d_t, width, best):
    if kind == RANDOM_WITHIN:
        return (abs(value - d_t) <= width) & ((best == 0.0) | (value == d_t))
    return abs(value - d_t) == best


#: Patients counted at a time, without branches, before the member is looked for in a chunk.
_CHUNK = 64


@numba.njit(cache=True, nogil=True)
def _take(kind, row, free, d_t, width, own, k, exclude, best, draw):
    """The ``draw``-th member (in patient order) of the pool :func:`_pool_size` sized (its
    ``best``). The members are counted a chunk at a time without branches; only the chunk
    holding the drawn one is walked."""
    n_pat = row.shape[0]
    left = draw
    start = 0
    if not exclude:
        while start < n_pat:
            stop = min(start + _CHUNK, n_pat)
            members = 0
            for i in range(start, stop):
                members += free[i] & _pool_member(kind, row[i], d_t, width, best)
            if left < members:
                break
            left -= members
            start = stop
    for i in range(start, n_pat):
        if not (free[i] and _pool_member(kind, row[i], d_t, width, best)):
            continue
        if exclude and _is_own(own, k, i):
            continue
        if left == 0:
            return i
        left -= 1
    return -1


@numba.njit(cache=True, nogil=True)
def fuzzy_match(kind, rng, distance, sequence, available, limit, ratio, replace):
    """A block's FUZZY matching by scans over the patients.

    Parameters
    ----------
    kind : :data:`RANDOM_WITHIN` (FUZZY < 2.0) or :data:`CLOSEST_WITHIN` (FUZZY 2.0).
    rng : numpy.random.Generator, the block's (its state advances as numpy's draws would).
    distance : float64 (replicate, patient), NaN for ineligible patients.
    sequence : int64 (replicate, steps), the treated in processing order, -1 padded.
    available : bool (replicate, patient), eligible controls; used up (without replacement).
    limit : float64 (replicate,), the tolerance (inf: none).
    ratio, replace : controls per case (a case draws its k controls in turn before the next
        case) and matching with replacement (never the same control twice for one case).

    Returns ``control_of`` int32 (replicate, patient, ratio) and ``uses`` int64 (replicate,
    patient), as :func:`analysis.propensity.matched_sets.assemble_matched_sets` takes them.
    Steps run in FUZZY's order: case by case, each case's k draws, each draw over the
    replicates in order (numpy's order of ``rng.integers(0, counts)`` per step).
    """
    n_rep, n_pat = distance.shape
    control_of = np.full((n_rep, n_pat, ratio), -1, np.int32)
    uses = np.zeros((n_rep, n_pat), np.int64)
    for s in range(sequence.shape[1]):
        for k in range(ratio):
            exclude = replace and k > 0
            for r in range(n_rep):
                t = sequence[r, s]
                if t < 0:
                    continue
                row = distance[r]
                free = available[r]
                own = control_of[r, t]
                d_t = row[t]
                count, best = _pool_size(kind, row, free, d_t, limit[r], own, k, exclude)
                draw = _draw(rng, count)
                if count == 0:
                    continue
                chosen = _take(kind, row, free, d_t, limit[r], own, k, exclude, best, draw)
                control_of[r, t, k] = chosen
                uses[r, chosen] += 1
                if not replace:
                    free[chosen] = False
    return control_of, uses


@numba.njit(cache=True, nogil=True)
def _fenwick_add(tree, position, amount):
    i = position + 1
    while i < tree.shape[0]:
        tree[i] += amount
        i += i & -i


@numba.njit(cache=True, nogil=True)
def _fenwick_prefix(tree, stop):
    """Sum of the entries at sorted positions ``[0, stop)``."""
    total = 0
    i = stop
    while i > 0:
        total += tree[i]
        i -= i & -i
    return total


@numba.njit(cache=True, nogil=True)
def _first_within(row, d_t, width, lo, hi):
    """First position in ``[lo, hi)`` of the sorted ``row`` with ``|row - d_t| <= width``,
    where that holds on a suffix (left of the case); ``hi`` if none."""
    while lo < hi:
        mid = (lo + hi) // 2
        if abs(row[mid] - d_t) <= width:
            hi = mid
        else:
            lo = mid + 1
    return lo


@numba.njit(cache=True, nogil=True)
def _first_beyond(row, d_t, width, lo, hi):
    """First position in ``[lo, hi)`` with ``|row - d_t| > width``, where that holds on a
    suffix (right of the case); ``hi`` if none."""
    while lo < hi:
        mid = (lo + hi) // 2
        if abs(row[mid] - d_t) <= width:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True, nogil=True)
def _pool_run(row, here, width, tree):
    """The pool of FUZZY < 2.0 as a run ``[start, stop)`` of sorted positions and its size:
    ``|d_c - d_t| <= width`` and ``d_c == d_t`` each hold on one run of sorted positions
    around the case's own ``here`` (the floating-point difference is monotone in ``d_c``),
    found by bisection on the same comparisons; the available controls in a run are counted
    from the Fenwick tree. The exact ties if any are available, else the run within."""
    d_t = row[here]
    within_start = _first_within(row, d_t, width, 0, here)
    within_stop = _first_beyond(row, d_t, width, here + 1, row.shape[0])
    exact_start = _first_within(row, d_t, 0.0, within_start, here)
    exact_stop = _first_beyond(row, d_t, 0.0, here + 1, within_stop)
    exact = _fenwick_prefix(tree, exact_stop) - _fenwick_prefix(tree, exact_start)
    if exact > 0:
        return exact_start, exact_stop, exact
    within = _fenwick_prefix(tree, within_stop) - _fenwick_prefix(tree, within_start)
    return within_start, within_stop, within


#: Patients counted at a time by :func:`_take_in_run`.
_TAKE_CHUNK = 256


@numba.njit(cache=True, nogil=True)
def _take_in_run(slot, first, stop, draw):
    """The ``draw``-th patient (in patient order) whose ``slot`` lies in ``[first, stop)``.
    ``slot`` is a patient's sorted position if it is an available control, else the patient
    count (in no run), so a member is one unsigned comparison: the chunks are counted at a
    fraction of a nanosecond per patient."""
    n_pat = slot.shape[0]
    span = np.uint32(stop - first)
    left = draw
    start = 0
    while start < n_pat:
        end = min(start + _TAKE_CHUNK, n_pat)
        members = 0
        for i in range(start, end):
            members += np.uint32(slot[i] - first) < span
        if left < members:
            break
        left -= members
        start = end
    for i in range(start, n_pat):
        if np.uint32(slot[i] - first) < span:
            if left == 0:
                return i
            left -= 1
    return -1


@numba.njit(cache=True, nogil=True)
def random_within_match(rng, sorted_distance, sorted_index, position, available, sequence, limit, ratio,
                        replace):
    """A block's FUZZY < 2.0 matching through sorted runs (no exclusions: not 1:k with
    replacement), the same pairs and draws as :func:`fuzzy_match` with :data:`RANDOM_WITHIN`.

    Parameters
    ----------
    rng : numpy.random.Generator, the block's.
    sorted_distance : float64 (replicate, patient), the distance (NaN: ineligible) in the
        order of ``sorted_index``, its stable ascending argsort (ineligible last); ``position``
        the inverse permutation.
    available : bool (replicate, patient), eligible controls.
    sequence, limit, ratio, replace : as :func:`fuzzy_match`.

    Returns ``control_of`` and ``uses`` as :func:`fuzzy_match`.
    """
    n_rep, n_pat = sorted_distance.shape
    control_of = np.full((n_rep, n_pat, ratio), -1, np.int32)
    uses = np.zeros((n_rep, n_pat), np.int64)
    tree = np.zeros((n_rep, n_pat + 1), np.int32)
    slot = np.full((n_rep, n_pat), n_pat, np.int32)
    for r in range(n_rep):
        for p in range(n_pat):
            if available[r, sorted_index[r, p]]:
                tree[r, p + 1] += 1
                slot[r, sorted_index[r, p]] = p
        for i in range(1, n_pat + 1):
            parent = i + (i & -i)
            if parent <= n_pat:
                tree[r, parent] += tree[r, i]
    for s in range(sequence.shape[1]):
        for k in range(ratio):
            for r in range(n_rep):
                t = sequence[r, s]
                if t < 0:
                    continue
                start, stop, count = _pool_run(sorted_distance[r], position[r, t], limit[r], tree[r])
                draw = _draw(rng, count)
                if count == 0:
                    continue
                chosen = _take_in_run(slot[r], start, stop, draw)
                control_of[r, t, k] = chosen
                uses[r, chosen] += 1
                if not replace:
                    _fenwick_add(tree[r], slot[r, chosen], -1)
                    slot[r, chosen] = n_pat
    return control_of, uses


def warm_up() -> None:
    """Load (or compile, on the first use of an installation) every kernel of this module for
    the argument types the matchers pass, on a two-patient cohort (see
    :func:`analysis.propensity.greedy_kernels.warm_up`, which calls this)."""
    rng = np.random.default_rng(0)
    distance = np.array([[0.0, 1.0]])
    order = np.array([[0, 1]], dtype=np.int64)
    control = np.array([[False, True]])
    sequence = np.array([[0]], dtype=np.int64)
    limit = np.array([np.inf])
    random_within_match(rng, distance, order, order, control, sequence, limit, 1, False)
    for kind in (RANDOM_WITHIN, CLOSEST_WITHIN):
        fuzzy_match(kind, rng, distance, sequence, control.copy(), limit, 1, False)
