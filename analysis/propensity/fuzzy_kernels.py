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
  within the tolerance, or the exact ties), all found in one two-pointer sweep per replicate,
  and the drawn control is found in patient order through a square-root decomposition
  (blocks of ~sqrt(n) patients and sorted positions), O(sqrt n) per step.
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

    Returns ``control_of`` int32 (replicate, patient, ratio), the patient index of each case's
    controls (-1: none), as :func:`analysis.propensity.matched_sets.assemble_matched_sets`
    takes it.
    Steps run in FUZZY's order: case by case, each case's k draws, each draw over the
    replicates in order (numpy's order of ``rng.integers(0, counts)`` per step).
    """
    n_rep, n_pat = distance.shape
    control_of = np.full((n_rep, n_pat, ratio), -1, np.int32)
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
                if not replace:
                    free[chosen] = False
    return control_of


@numba.njit(cache=True, nogil=True)
def _pool_runs(sorted_distance, sorted_index, sequence, limit):
    """Each step's candidate runs of sorted positions, int32 (step, replicate, 4): the run
    ``[0]:[1]`` with ``|d_c - d_t| <= limit`` and the run ``[2]:[3]`` with ``d_c == d_t``.

    Both are runs around the case's own position (the rounded difference ``|d_c - d_t|`` is
    monotone in ``d_c`` on either side), and their ends move forward as the case's distance
    grows (monotone in ``d_t`` too), so one sweep over the sorted positions with two pointers
    finds them for every case of a replicate: O(patients) instead of a bisection per case,
    with the same comparisons at the ends. Availability does not enter: which controls of a
    run are still free is counted at the step.
    """
    n_rep, n_pat = sorted_distance.shape
    n_steps = sequence.shape[1]
    runs = np.zeros((n_steps, n_rep, 4), np.int32)
    step_of = np.empty(n_pat, np.int64)
    for r in range(n_rep):
        row = sorted_distance[r]
        width = limit[r]
        step_of[:] = -1
        for s in range(n_steps):
            if sequence[r, s] < 0:
                break
            step_of[sequence[r, s]] = s
        lo = 0           # first position within the width on the left
        hi = 0           # first position beyond it on the right
        tie_start = 0    # first position of the current run of equal distances
        tie_stop = 0     # first position after it
        for here in range(n_pat):
            if here > 0 and row[here] != row[here - 1]:
                tie_start = here
            s = step_of[sorted_index[r, here]]
            if s < 0:
                continue
            d_t = row[here]
            while lo < here and not abs(row[lo] - d_t) <= width:
                lo += 1
            hi = max(hi, here + 1)
            while hi < n_pat and abs(row[hi] - d_t) <= width:
                hi += 1
            tie_stop = max(tie_stop, here + 1)
            while tie_stop < hi and row[tie_stop] == d_t:
                tie_stop += 1
            runs[s, r, 0] = lo
            runs[s, r, 1] = hi
            runs[s, r, 2] = tie_start
            runs[s, r, 3] = tie_stop
    return runs


@numba.njit(cache=True, nogil=True)
def _block_shift(n_pat):
    """log2 of the block size: about the square root of the patient count (16 at least)."""
    shift = 4
    while (1 << (2 * shift + 1)) < n_pat:
        shift += 1
    return shift


@numba.njit(cache=True, nogil=True)
def random_within_match(rng, sorted_distance, sorted_index, available, sequence, limit, ratio, replace,
                        index_type):
    """A block's FUZZY < 2.0 matching through sorted runs and a block index (no exclusions:
    not 1:k with replacement), the same pairs and draws as :func:`fuzzy_match` with
    :data:`RANDOM_WITHIN`.

    Each step's pool is a run ``[a, b)`` of sorted positions (:func:`_pool_runs`: the exact
    ties if any of them is available, else the run within the tolerance), and the drawn
    control is the ``draw``-th available control of the run *in patient order*: a 2-d query
    (sorted position in a range, rank in patient order). It is answered by a square-root
    decomposition: patients and sorted positions cut into blocks of ~sqrt(n), and a table
    ``prefix[S, F]`` of the available controls of patient block F with a sorted position below
    block S. A run's members per patient block are two table rows apart plus its partial
    blocks at either end, counted one by one; the patient blocks are walked to the one holding
    the drawn member, and only that block is scanned. A step costs O(sqrt n) instead of a scan
    of every patient; a used control leaves its column of the table.

    Parameters
    ----------
    rng : numpy.random.Generator, the block's.
    sorted_distance : float64 (replicate, patient), the distance (NaN: ineligible) in the
        order of ``sorted_index``, its stable ascending argsort (ineligible last).
    available : bool (replicate, patient), eligible controls.
    sequence, limit, ratio, replace : as :func:`fuzzy_match`.
    index_type : an empty array whose dtype holds the patient count (int16 below 32,768
        patients, else int32): the working arrays' positions and counts are of that type, so
        a block of 100 replicates of 10,000 patients keeps ~9 MB hot instead of ~24 MB
        (the steps visit every replicate in turn).

    Returns ``control_of`` as :func:`fuzzy_match` (who uses whom is counted by the assembly).
    """
    n_rep, n_pat = sorted_distance.shape
    n_steps = sequence.shape[1]
    shift = _block_shift(n_pat)
    size = 1 << shift
    n_blocks = (n_pat + size - 1) >> shift
    control_of = np.full((n_rep, n_pat, ratio), -1, np.int32)
    runs = _pool_runs(sorted_distance, sorted_index, sequence, limit)
    # slot: a patient's sorted position while it is an available control, else n_pat (in no
    # run); free: the same by sorted position; block_of: the patient block of a position.
    slot = np.full((n_rep, n_pat), n_pat, index_type.dtype)
    free = np.zeros((n_rep, n_pat), np.uint8)
    block_of = np.empty((n_rep, n_pat), index_type.dtype)
    prefix = np.zeros((n_rep, n_blocks + 1, n_blocks), index_type.dtype)
    below = np.zeros((n_rep, n_blocks + 1), np.int32)  # available controls below a sorted block
    steps = np.empty((n_steps, n_rep), np.int64)
    for r in range(n_rep):
        for s in range(n_steps):
            steps[s, r] = sequence[r, s]
        for p in range(n_pat):
            i = sorted_index[r, p]
            block_of[r, p] = i >> shift
            if available[r, i]:
                slot[r, i] = p
                free[r, p] = 1
                prefix[r, (p >> shift) + 1, i >> shift] += 1
                below[r, (p >> shift) + 1] += 1
        for b in range(1, n_blocks + 1):
            below[r, b] += below[r, b - 1]
            for f in range(n_blocks):
                prefix[r, b, f] += prefix[r, b - 1, f]
    partial = np.zeros(n_blocks, np.int32)  # a run's members in its partial sorted blocks
    for s in range(n_steps):
        for k in range(ratio):
            for r in range(n_rep):
                t = steps[s, r]
                if t < 0:
                    continue
                free_r = free[r]
                block_r = block_of[r]
                start, stop = runs[s, r, 2], runs[s, r, 3]
                exact = 0
                for p in range(start, stop):
                    exact += free_r[p]
                if exact == 0:
                    start, stop = runs[s, r, 0], runs[s, r, 1]
                lo = (start + size - 1) >> shift  # the whole sorted blocks lo..hi-1 of the run
                hi = stop >> shift
                if lo < hi:
                    count = below[r, hi] - below[r, lo]
                    for p in range(start, lo << shift):
                        partial[block_r[p]] += free_r[p]
                        count += free_r[p]
                    for p in range(hi << shift, stop):
                        partial[block_r[p]] += free_r[p]
                        count += free_r[p]
                else:
                    lo = hi = 0  # no whole block: prefix rows 0 and 0 add nothing
                    count = 0
                    for p in range(start, stop):
                        partial[block_r[p]] += free_r[p]
                        count += free_r[p]
                draw = _draw(rng, count)
                if count == 0:
                    continue  # partial is all zero
                table = prefix[r]
                f = 0
                while True:
                    members = table[hi, f] - table[lo, f] + partial[f]
                    if draw < members:
                        break
                    draw -= members
                    f += 1
                partial[:] = 0
                span = np.uint32(stop - start)
                slot_r = slot[r]
                chosen = -1
                for i in range(f << shift, min(n_pat, (f + 1) << shift)):
                    if np.uint32(slot_r[i] - start) < span:
                        if draw == 0:
                            chosen = i
                            break
                        draw -= 1
                control_of[r, t, k] = chosen
                if not replace:
                    p = slot_r[chosen]
                    for b in range((p >> shift) + 1, n_blocks + 1):
                        table[b, f] -= 1
                        below[r, b] -= 1
                    free_r[p] = 0
                    slot_r[chosen] = n_pat
    return control_of


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
    for index_type in (np.int16, np.int32):
        random_within_match(rng, distance, order, control, sequence, limit, 1, False, np.empty(0, index_type))
    for kind in (RANDOM_WITHIN, CLOSEST_WITHIN):
        fuzzy_match(kind, rng, distance, sequence, control.copy(), limit, 1, False)
