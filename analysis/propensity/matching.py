"""Batched propensity-score matching: R MatchIt's nearest neighbour and SPSS FUZZY.

Every matcher works on a block of replicates at once. The treated patients are processed one
*step* at a time; the greedy matchers' step loops run compiled, a block per call
(:mod:`analysis.propensity.greedy_kernels`, :mod:`analysis.propensity.fuzzy_kernels`). The
numpy stepper (``_match(..., compiled=False)``: a Python loop over at most ``ratio *
n_treated`` steps, each vectorised over (replicate, patient) arrays) is their test oracle:
the same pairs from the same random numbers.

Methods (dispatch by name through :data:`MATCHERS` and :func:`match_patients`):

``matchit_nn``
    R MatchIt ``method="nearest"`` (v4.5.1 and later, distance given as a vector), pair for
    pair: Ho, Imai, King & Stuart (2011), J Stat Softw 42(8); the algorithm is the one of
    MatchIt's ``nn_matchC_vec`` (greedy, left-then-right search in the sorted distances).
``spss_fuzzy_v1``
    SPSS 25 "Propensity Score Matching" through the FUZZY extension before version 2.0:
    cases in file order, an exactly equal control first, otherwise a control drawn at random
    among *all* unused controls within the tolerance.
``spss_fuzzy_v2``
    FUZZY 2.0 (2023): the closest unused control within the tolerance, ties at random.
``optimal``
    Optimal 1:1 matching (minimum total distance within the caliper), in
    :mod:`analysis.propensity.optimal_matching`.

Conventions shared by all methods: a pair is allowed when ``|d_t - d_c| <= caliper``
(rejected only when strictly greater); patients outside ``mask`` or with a non-finite
distance are never matched; without replacement a control is used at most once.
"""

from __future__ import annotations

import numpy as np

from analysis.propensity import fuzzy_kernels, greedy_kernels
from analysis.propensity.matched_sets import MatchResult, assemble_matched_sets
from analysis.propensity.optimal_matching import match_optimal

__all__ = ["MATCHERS", "MatchResult", "match_matchit_nn", "match_patients", "match_spss_fuzzy_v1",
           "match_spss_fuzzy_v2", "match_optimal"]

#: From this many patients per cohort FUZZY < 2.0 (without exclusions) finds its pools as
#: sorted runs through a block index (fuzzy_kernels.random_within_match), below it by the
#: branch-free scans (fuzzy_kernels.fuzzy_match); both give the same pairs. Measured (whole
#: matching, ms per replicate, scans vs runs): 100 patients 0.019 vs 0.019, 1,000 0.39 vs
#: 0.28, 10,000 21 vs 4.2.
SORTED_RUNS_PATIENTS = 500
_ORDERS = ("largest", "smallest", "random", "data")


def _treated_order(distance, is_treated, order, rng):
    """Patient indices of the treated in processing order, shape (replicate, max treated).

    Rows are padded with -1 after a replicate's last treated patient. Sorting is stable, so
    ties keep data order (R's ``order()``, also with ``decreasing=TRUE``).
    """
    n_rep, n_pat = distance.shape
    if order == "data":
        key = ~is_treated  # a boolean key: numpy's stable sort of it is a radix sort
    else:
        if order == "largest":
            key = -distance
        elif order == "smallest":
            key = distance.copy()
        else:
            key = rng.random((n_rep, n_pat))
        key = np.where(is_treated, key, np.inf)
    sequence = np.argsort(key, axis=1, kind="stable")
    n_treated = is_treated.sum(axis=1)
    width = int(n_treated.max()) if n_rep else 0
    sequence = sequence[:, :width]
    sequence[np.arange(width)[None, :] >= n_treated[:, None]] = -1
    return sequence


def _pick_uniform(pool, rng):
    """A uniformly random True column of each row of ``pool`` (-1 for an empty row)."""
    count = pool.sum(axis=1)
    draw = rng.integers(0, np.maximum(count, 1))
    # The draw-th True cell of each row, read off the row-major list of True cells.
    true_cells = np.flatnonzero(pool)
    if true_cells.size == 0:
        return np.full(pool.shape[0], -1, dtype=np.int64)
    first = np.cumsum(count) - count  # position in true_cells of each row's first True cell
    chosen = true_cells[np.minimum(first + draw, true_cells.size - 1)] - np.arange(pool.shape[0]) * pool.shape[1]
    return np.where(count > 0, chosen, -1)


class _NearestLeftRight:
    """MatchIt's choice: nearest free control on each side in the sorted order, tie to the left."""

    def __init__(self, distance):
        n_pat = distance.shape[1]
        self.distance = distance
        self.sorted_index = np.argsort(np.where(np.isfinite(distance), distance, np.inf), axis=1, kind="stable")
        # Sorted positions are small integers: int16 (when they fit) halves the searches' cost.
        position_type = np.int16 if n_pat < np.iinfo(np.int16).max else np.int64
        self.position = np.empty(distance.shape, position_type)
        np.put_along_axis(self.position, self.sorted_index, np.arange(n_pat, dtype=position_type)[None, :], axis=1)
        # For the searches as products with 0/1 masks (cheaper than np.where): the nearest
        # position on the left is max(mask * (position + 1)) - 1 (-1: none), on the right
        # n - max(mask * (n - position)) (n: none).
        self.position_plus_one = self.position + 1
        self.position_from_end = n_pat - self.position

    def __call__(self, treated_index, candidates, width, rng):
        rows = np.arange(candidates.shape[0])
        n_pat = candidates.shape[1]
        d_t = self.distance[rows, treated_index]
        here = self.position[rows, treated_index][:, None]
        left = ((candidates & (self.position < here)) * self.position_plus_one).max(axis=1) - 1
        right = n_pat - ((candidates & (self.position > here)) * self.position_from_end).max(axis=1)
        left_index = self.sorted_index[rows, np.clip(left, 0, n_pat - 1)]
        right_index = self.sorted_index[rows, np.clip(right, 0, n_pat - 1)]
        gap_left = np.abs(self.distance[rows, left_index] - d_t)
        gap_right = np.abs(self.distance[rows, right_index] - d_t)
        left_ok = (left >= 0) & (gap_left <= width)
        right_ok = (right < n_pat) & (gap_right <= width)
        take_left = left_ok & (~right_ok | (gap_left <= gap_right))
        take_right = right_ok & ~take_left
        return np.where(take_left, left_index, np.where(take_right, right_index, -1))


class _RandomWithinTolerance:
    """FUZZY < 2.0: an exactly equal control if any, else a random one within the tolerance."""

    def __init__(self, distance):
        self.distance = distance

    def __call__(self, treated_index, candidates, width, rng):
        d_t = self.distance[np.arange(candidates.shape[0]), treated_index][:, None]
        within = candidates & (np.abs(self.distance - d_t) <= width[:, None])
        exact = within & (self.distance == d_t)
        pool = exact | (within & ~exact.any(axis=1)[:, None])  # exact ones if any, else all within
        return _pick_uniform(pool, rng)


class _ClosestWithinTolerance:
    """FUZZY 2.0: the closest control within the tolerance, ties at random."""

    def __init__(self, distance):
        self.distance = distance

    def __call__(self, treated_index, candidates, width, rng):
        d_t = self.distance[np.arange(candidates.shape[0]), treated_index][:, None]
        gap = np.abs(self.distance - d_t)
        within = candidates & (gap <= width[:, None])
        gap = np.where(within, gap, np.inf)
        pool = within & (gap == gap.min(axis=1)[:, None])
        return _pick_uniform(pool, rng)


def _match(chooser_type, rounds_first, distance, treated, mask, caliper, ratio, replace, order, rng, compiled=True):
    """Shared engine: process treated patients step by step, all replicates at once.

    ``rounds_first`` True gives MatchIt's schedule (every treated gets its first control
    before any gets a second); False gives FUZZY's (a case draws all its controls in turn).
    ``compiled`` (default) runs the steps in :mod:`analysis.propensity.greedy_kernels` and
    :mod:`analysis.propensity.fuzzy_kernels`; False runs the numpy stepper (the chooser classes
    above), which the tests keep as the kernels' independent implementation: both give the same
    pairs and consume the same random numbers.
    """
    d = np.asarray(distance, dtype=float)
    if d.ndim != 2:
        raise ValueError(f"distance must be shaped (replicate, patient), got {d.shape}")
    n_rep, n_pat = d.shape
    is_treated_all = np.asarray(treated, dtype=bool)
    eligible = np.isfinite(d) if mask is None else np.asarray(mask, dtype=bool) & np.isfinite(d)
    if is_treated_all.shape != d.shape or eligible.shape != d.shape:
        raise ValueError("treated and mask must be shaped (replicate, patient) like distance")
    ratio = int(ratio)
    if ratio < 1:
        raise ValueError(f"ratio must be an integer >= 1, got {ratio}")
    if order not in _ORDERS:
        raise ValueError(f"unknown order {order!r}; valid orders: {', '.join(_ORDERS)}")

    width = _caliper_array(caliper, n_rep)
    limit = np.where(np.isnan(width), np.inf, width)
    is_treated = eligible & is_treated_all
    is_control = eligible & ~is_treated_all
    d_work = np.where(eligible, d, np.nan)

    if compiled and (chooser_type is _NearestLeftRight or chooser_type in _POOL_KINDS):
        control_of = _match_compiled(chooser_type, d_work, is_treated, is_control, limit, ratio, replace, order, rng)
        return assemble_matched_sets(control_of, is_treated, width)

    sequence = _treated_order(d_work, is_treated, order, rng)
    rows = np.arange(n_rep)
    available = is_control.copy()
    control_of = np.full((n_rep, n_pat, ratio), -1, dtype=np.int32)
    uses = np.zeros((n_rep, n_pat), dtype=np.int64)
    n_steps = sequence.shape[1]
    if rounds_first:
        schedule = [(k, s) for k in range(ratio) for s in range(n_steps)]
    else:
        schedule = [(k, s) for s in range(n_steps) for k in range(ratio)]
    choose = chooser_type(d_work)
    for k, s in schedule:
        treated_index = sequence[:, s]
        present = treated_index >= 0
        if not present.any():
            continue
        t = np.where(present, treated_index, 0)
        candidates = available & present[:, None]
        if replace and k > 0:
            previous = control_of[rows, t, :k]
            hit_rows, hit_cols = np.nonzero(previous >= 0)
            candidates[hit_rows, previous[hit_rows, hit_cols]] = False
        chosen = choose(t, candidates, limit, rng)
        found = np.flatnonzero(chosen >= 0)
        control_of[found, t[found], k] = chosen[found]
        uses[found, chosen[found]] += 1
        if not replace:
            available[found, chosen[found]] = False

    return assemble_matched_sets(control_of, is_treated, width, uses=uses, compiled=False)


def _match_compiled(chooser_type, d_work, is_treated, is_control, limit, ratio, replace, order, rng):
    """:func:`_match`'s compiled path: ``control_of`` from the kernels, the processing order
    and sorted positions built as cheaply as the matcher allows."""
    n_rep, n_pat = d_work.shape
    kind = _POOL_KINDS.get(chooser_type)
    sorted_runs = (kind == fuzzy_kernels.RANDOM_WITHIN and n_pat >= SORTED_RUNS_PATIENTS
                   and not (replace and ratio > 1))
    if not (chooser_type is _NearestLeftRight or sorted_runs):  # the scans need no sorted positions
        sequence = _treated_order(d_work, is_treated, order, rng).astype(np.int64)
        return fuzzy_kernels.fuzzy_match(kind, rng, d_work, sequence, is_control.copy(), limit, ratio, bool(replace))
    # The stable ascending argsort (ineligible last) as numpy's SIMD argsort with its runs of
    # ties put in patient order (at 10,000 patients 0.1 instead of 0.64 ms per replicate), and
    # the processing order read off it, in one compiled pass.
    sorted_index = np.argsort(np.where(np.isfinite(d_work), d_work, np.inf), axis=1)
    n_steps = int(is_treated.sum(axis=1).max()) if n_rep else 0
    position, sorted_distance, sequence = greedy_kernels.sorted_positions(
        d_work, sorted_index, is_treated, greedy_kernels.ORDER_CODES.get(order, -1), n_steps)
    if order == "random":
        sequence = _treated_order(d_work, is_treated, order, rng).astype(np.int64)
    if chooser_type is _NearestLeftRight:
        control_of, _ = greedy_kernels.nearest_left_right(d_work, sorted_index, position, is_control, sequence, limit,
                                                          ratio, bool(replace))
        return control_of
    # The whole step loop in one kernel call, drawing from the block's generator exactly as the
    # numpy stepper's rng.integers(0, counts) per step (fuzzy_kernels explains how).
    index_type = np.empty(0, np.int16 if n_pat < 2**15 else np.int32)
    return fuzzy_kernels.random_within_match(rng, sorted_distance, sorted_index, is_control, sequence, limit, ratio,
                                             bool(replace), index_type)


#: The FUZZY choosers the compiled step kernels implement, by their pool kind.
_POOL_KINDS = {_RandomWithinTolerance: fuzzy_kernels.RANDOM_WITHIN,
               _ClosestWithinTolerance: fuzzy_kernels.CLOSEST_WITHIN}


def _caliper_array(caliper, n_rep):
    """Caliper per replicate (NaN = none) from None, a scalar or a (replicate,) array."""
    if caliper is None:
        return np.full(n_rep, np.nan)
    width = np.broadcast_to(np.asarray(caliper, dtype=float), (n_rep,)).copy()
    if np.any(width < 0):
        raise ValueError("caliper must be >= 0 (NaN means no caliper)")
    return width


def _require_rng(rng, reason):
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng (a numpy.random.Generator) is required {reason}")


def match_matchit_nn(distance, treated, *, mask=None, caliper=None, ratio=1, replace=False,
                     order=None, rng=None) -> MatchResult:
    """Greedy nearest-neighbour matching exactly as R MatchIt ``method="nearest"``.

    The algorithm (MatchIt >= 4.5.1, ``nn_matchC_vec``; see Ho et al. 2011 and the MatchIt
    maintainer's description in kosukeimai/MatchIt issue #180):

    1. Sort all eligible patients, treated and control, by distance ascending; the sort is
       stable (R ``sort.list``), so equal distances keep data order.
    2. Process the treated in ``order``: ``"largest"`` (default) = distance descending,
       ties in data order (R ``order(decreasing=TRUE)``); ``"smallest"`` ascending;
       ``"data"`` data order; ``"random"`` a random permutation from ``rng``.
    3. For a treated patient, the candidate on the left is the nearest control *in sorted
       position* below it that is still available (without replacement: not yet used; for
       the j-th control of a 1:k match: not already among its controls), and likewise on
       the right. A candidate farther than the caliper is dropped (the walk on that side
       stops at the first available control). If both remain, the one with the smaller
       ``|d_t - d_c|`` is taken, the left one on a tie.
    4. With ``ratio = k`` this is repeated in k rounds: every treated patient gets its first
       control before any gets its second. Treated patients without a control stay
       unmatched (dropped from the matched sample).

    Parameters
    ----------
    distance : array_like of float, shape (replicate, patient)
        Propensity score or its logit (the caller chooses); non-finite = ineligible.
    treated : array_like of bool, shape (replicate, patient)
    mask : array_like of bool, shape (replicate, patient), optional
        Eligible patients (default: all); the others are never matched.
    caliper : float, ndarray of shape (replicate,), or None
        Largest allowed ``|d_t - d_c|`` in distance units (see :func:`caliper_width`);
        None or NaN: no caliper.
    ratio : int
        Controls per treated patient (1:k).
    replace : bool
        Controls may be reused across treated patients (never twice for the same one).
    order : {"largest", "smallest", "data", "random"} or None
        Processing order of the treated; None means ``"largest"``.
    rng : numpy.random.Generator, optional
        Required only for ``order="random"``.

    Returns
    -------
    MatchResult

    Notes
    -----
    Debian's MatchIt 4.5.1 build (``r-cran-matchit``, bookworm) departs from this documented
    rule in three ways, all checked in ``tests/analysis/propensity/test_matching.py`` against its output:
    it compares gaps through an integer ``abs()``, so fractional gaps truncate to 0 (the
    left candidate always wins and fractional calipers are ignored; integer-valued
    distances are unaffected); for ratio > 1 it skips the unit *after* each of a treated
    unit's own controls in data order instead of those controls (a 0-/1-based slip, fixed
    in later MatchIt); and it numbers subclasses by the treated row index sorted as text.
    This function follows the documented rule (MatchIt 4.7).
    """
    order = "largest" if order is None else order
    if order == "random":
        _require_rng(rng, 'for order="random"')
    return _match(_NearestLeftRight, True, distance, treated, mask, caliper, ratio, replace, order, rng)


def match_spss_fuzzy_v1(distance, treated, *, mask=None, caliper=None, ratio=1, replace=False,
                        order=None, rng=None) -> MatchResult:
    """SPSS 25 PSM via FUZZY < 2.0: random control within an absolute tolerance.

    Cases (treated) are processed in file (data) order unless ``order`` says otherwise
    (SPSS's SHUFFLE option is ``order="random"``). For each case, if an unused control has
    exactly the same distance (EXACTPRIORITY=TRUE, the default) one of those is drawn;
    otherwise a control is drawn uniformly at random among *all* unused controls with
    ``|d_t - d_c| <= caliper``. No attempt is made to find the closest one (FUZZY help:
    "There is no attempt to get the closest fuzzy match"). With ``ratio = k`` a case draws
    its k controls in turn before the next case. Source: IBMPredictiveAnalytics/FUZZY
    (``FUZZY.py`` <= 1.3.1) and the SPSS PSM dialog (``STATS_PSM``); the tolerance is an
    absolute difference of propensity scores, so pass ``caliper`` in distance units.

    Parameters are as :func:`match_matchit_nn`, except: ``order`` None means ``"data"``;
    ``caliper`` None means no tolerance (every control eligible); ``rng`` is required.
    With ``replace=True`` a control may serve several cases but not the same case twice.

    Returns
    -------
    MatchResult
    """
    _require_rng(rng, "for the SPSS FUZZY matchers")
    order = "data" if order is None else order
    return _match(_RandomWithinTolerance, False, distance, treated, mask, caliper, ratio, replace, order, rng)


def match_spss_fuzzy_v2(distance, treated, *, mask=None, caliper=None, ratio=1, replace=False,
                        order=None, rng=None) -> MatchResult:
    """FUZZY 2.0 (2023): the closest unused control within the tolerance, ties at random.

    As :func:`match_spss_fuzzy_v1` (file order, absolute tolerance, a case draws its k
    controls in turn), but each draw takes the unused control with the smallest
    ``|d_t - d_c|`` within the tolerance, choosing uniformly at random among exactly equal
    differences. Note: FUZZY 2.0 ranks by ``BEST=PROPOR`` by default, the proportional
    difference ``|d_t - d_c| / (|d_t| + |d_c|)``; this function ranks by the absolute
    difference (``BEST=ABS``), which is what "closest" means on the PS scale.

    Returns
    -------
    MatchResult
    """
    _require_rng(rng, "for the SPSS FUZZY matchers")
    order = "data" if order is None else order
    return _match(_ClosestWithinTolerance, False, distance, treated, mask, caliper, ratio, replace, order, rng)


#: Matchers by name, as used in analysis plans and by :func:`match_patients`.
MATCHERS = {
    "matchit_nn": match_matchit_nn,
    "spss_fuzzy_v1": match_spss_fuzzy_v1,
    "spss_fuzzy_v2": match_spss_fuzzy_v2,
    "optimal": match_optimal,
}


def match_patients(method, distance, treated, *, mask=None, caliper=None, ratio=1, replace=False,
                   order=None, rng=None) -> MatchResult:
    """Match treated to control patients with the named method, all replicates at once.

    Parameters
    ----------
    method : {"matchit_nn", "spss_fuzzy_v1", "spss_fuzzy_v2", "optimal"}
        See the module docstring and the function of each method.
    distance : array_like of float, shape (replicate, patient)
        Propensity score or logit of it.
    treated : array_like of bool, shape (replicate, patient)
    mask : array_like of bool, shape (replicate, patient), optional
        Eligible patients (default: all).
    caliper : float, ndarray of shape (replicate,), or None
        Largest allowed ``|d_t - d_c|`` in distance units; use :func:`caliper_width` for an
        SD-scaled caliper. None (or NaN) = no caliper.
    ratio : int
        Controls per treated patient.
    replace : bool
        Matching with replacement.
    order : {"largest", "smallest", "random", "data"} or None
        Processing order of the treated (None: the method's default, "largest" for
        ``matchit_nn`` and "data" for the SPSS matchers).
    rng : numpy.random.Generator
        Required by the SPSS matchers and by ``order="random"``.

    Returns
    -------
    MatchResult
    """
    if method not in MATCHERS:
        raise ValueError(f"unknown matching method {method!r}; valid methods: {', '.join(MATCHERS)}")
    return MATCHERS[method](distance, treated, mask=mask, caliper=caliper, ratio=ratio,
                            replace=replace, order=order, rng=rng)
