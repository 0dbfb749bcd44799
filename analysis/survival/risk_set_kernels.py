"""Compiled risk-set tables (numba): the columns of a sorted replicate in one pass.

:func:`analysis.survival.risk_sets.tabulate_risk_sets` sorts each replicate by (stratum, time)
with numpy's stable ``argsort`` and then, with ``compiled=False``, forms the table in numpy:
five gathers into sorted order, the run bounds of the tie groups and strata by running
maxima and minima, and six cumulative sums with their gathers. With 100 patients per
replicate those calls, not the arithmetic, were the cost. :func:`tabulate` forms the same
columns from the same sort order in one pass per replicate: the same cumulative sums in the
same (sequential) order and the same differences of them, the same integer counts, so every
column equals the numpy path's bit for bit (tests/analysis/survival/test_survival_kernels.py).

The time order itself (:func:`packed_keys`, :func:`unpack_order`) is numpy's stable
``argsort`` order by another route: each time's bits as an order-preserving unsigned key, the
low bits replaced by the patient index, sorted by numpy's ``np.sort`` of unsigned integers (a
SIMD quicksort, 10-35 times faster than the stable ``argsort`` of doubles at 100-10,000
patients) and read back as indices; runs whose keys share the high bits but whose times differ
(times closer than ~2**-38 relative at 10,000 patients) are then sorted by their whole key,
stably. The result is the stable order exactly (ties by index, NaN last, -0.0 tied with 0.0).

Compiled on first use and cached on disk (``cache=True``); see :func:`warm_up`.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, error_model="numpy")
def tabulate_replicate(order, sort_time, weight, event, treated, stratum_ids, has_strata, positive_only,
                       cumulative, deaths,
                       time_out, event_out, weight_out, treated_out, stratum_out, tie_first, tie_last,
                       stratum_first, stratum_last, at_risk_treated, at_risk_control, events_treated,
                       events_control, tie_weight, death_count, death_rank, is_tie_last, group_rows):
    """The columns of one replicate's table, each a shape (patient,) array of the table's order.

    ``order``, ``sort_time``, ``weight``, ``event``, ``treated`` and ``stratum_ids`` are one
    replicate's rows of :func:`tabulate`'s arguments. A patient without a positive weight is
    read as outside the cohort: time ``inf`` and no event, as :func:`tabulate`'s caller already
    passes them (so the same numbers whether or not the caller masked them); with
    ``positive_only`` their weight is 0 too (a ``mask = weight > 0``), else it is kept. ``cumulative``
    (shape (5, patient + 1)) and ``deaths`` (int64, shape (patient + 1,)) are scratch.
    ``stratum_out``, ``stratum_first`` and ``stratum_last`` are written only with strata
    (the caller holds 0, 0 and patient - 1 there otherwise). Returns the number of tie groups,
    whose last rows are written, in order, at the start of ``group_rows`` (int64, shape
    (patient,)).
    """
    n_pat = order.shape[0]
    # Cumulative sums with a leading 0 (as risk_sets.cumulative_sums): weights of the treated,
    # of the controls, of all, events' weights of the treated and of the controls, event counts.
    # Running sums from -0.0 (-0.0 + v is v for every v: np.cumsum's first value itself).
    # Selections (not branches) throughout: arms, events and ties are in random order.
    c0 = c1 = c2 = c3 = c4 = -0.0
    for q in range(5):
        cumulative[q, 0] = 0.0
    deaths[0] = 0
    count = 0
    for i in range(n_pat):
        p = order[i]
        w = weight[p]
        in_cohort = w > 0
        t = sort_time[p]
        time_out[i] = t if in_cohort else np.inf
        e = event[p] & in_cohort
        x = treated[p]
        w = w if in_cohort | (not positive_only) else 0.0
        weight_out[i] = w
        event_out[i] = e
        treated_out[i] = x
        if has_strata:
            stratum_out[i] = stratum_ids[p]
        w_treated = w * x
        w_control = w - w_treated
        c0 += w_treated
        c1 += w_control
        c2 += w
        c3 += w_treated * e
        c4 += w_control * e
        cumulative[0, i + 1] = c0
        cumulative[1, i + 1] = c1
        cumulative[2, i + 1] = c2
        cumulative[3, i + 1] = c3
        cumulative[4, i + 1] = c4
        count += e
        deaths[i + 1] = count
    if n_pat == 0:
        return 0
    # Run bounds of the tie groups (same stratum and time) and of the strata.
    tie_first[0] = 0
    n_groups = 0
    for i in range(1, n_pat):
        new_stratum = has_strata & (stratum_out[i] != stratum_out[i - 1])
        new_tie = new_stratum | (time_out[i] != time_out[i - 1])
        tie_first[i] = i if new_tie else tie_first[i - 1]
        group_rows[n_groups] = i - 1
        n_groups += new_tie
        if has_strata:
            stratum_first[i] = i if new_stratum else stratum_first[i - 1]
    group_rows[n_groups] = n_pat - 1
    n_groups += 1
    following = n_pat - 1  # tie_last of row i + 1
    for i in range(n_pat - 1, -1, -1):
        if i == n_pat - 1:
            last_of_tie = True
            tie_last[i] = i
        else:
            last_of_stratum = has_strata & (stratum_out[i + 1] != stratum_out[i])
            last_of_tie = last_of_stratum | (time_out[i + 1] != time_out[i])
            following = i if last_of_tie else following
            tie_last[i] = following
            if has_strata:
                stratum_last[i] = i if last_of_stratum else stratum_last[i + 1]
        first = tie_first[i]
        after = tie_last[i] + 1
        end = stratum_last[i] + 1
        at_risk_treated[i] = cumulative[0, end] - cumulative[0, first]
        at_risk_control[i] = cumulative[1, end] - cumulative[1, first]
        tie_weight[i] = cumulative[2, after] - cumulative[2, first]
        events_treated[i] = cumulative[3, after] - cumulative[3, first]
        events_control[i] = cumulative[4, after] - cumulative[4, first]
        before = deaths[first]
        death_count[i] = deaths[after] - before
        death_rank[i] = (deaths[i + 1] - before - 1) if event_out[i] else -1.0
        is_tie_last[i] = last_of_tie
    return n_groups


@numba.njit(cache=True, nogil=True, error_model="numpy")
def tabulate(order, sort_time, weight, event, treated, stratum_ids, has_strata):
    """The columns of :class:`analysis.survival.risk_sets.RiskSetTable` from the sort order.

    Parameters
    ----------
    order : ndarray of int64, shape (replicate, patient)
        Row i of a replicate's table is its patient ``order[r, i]``.
    sort_time : ndarray of float, shape (replicate, patient)
        Times with ``inf`` outside the cohort, months (input order).
    weight : ndarray of float, shape (replicate, patient)
        Frequency weights, 0 outside the cohort (input order).
    event, treated : ndarray of bool, shape (replicate, patient)
        ``event`` already False outside the cohort (input order).
    stratum_ids : ndarray of int64, shape (replicate, patient)
        Non-negative stratum ids (input order); ignored unless ``has_strata``.
    has_strata : bool

    Returns
    -------
    tuple of ndarray, shape (replicate, patient)
        time, event, weight, treated, stratum, tie_first, tie_last, stratum_first,
        stratum_last, at_risk_treated, at_risk_control, events_treated, events_control,
        tie_weight, death_count, death_rank, is_tie_last (the table's order).
    """
    n_rep, n_pat = order.shape
    time_out = np.empty((n_rep, n_pat))
    event_out = np.empty((n_rep, n_pat), np.bool_)
    weight_out = np.empty((n_rep, n_pat))
    treated_out = np.empty((n_rep, n_pat), np.bool_)
    stratum_out = np.zeros((n_rep, n_pat), np.int64)
    tie_first = np.empty((n_rep, n_pat), np.int64)
    tie_last = np.empty((n_rep, n_pat), np.int64)
    stratum_first = np.zeros((n_rep, n_pat), np.int64)
    stratum_last = np.full((n_rep, n_pat), n_pat - 1, np.int64)
    at_risk_treated = np.empty((n_rep, n_pat))
    at_risk_control = np.empty((n_rep, n_pat))
    events_treated = np.empty((n_rep, n_pat))
    events_control = np.empty((n_rep, n_pat))
    tie_weight = np.empty((n_rep, n_pat))
    death_count = np.empty((n_rep, n_pat))
    death_rank = np.empty((n_rep, n_pat))
    is_tie_last = np.empty((n_rep, n_pat), np.bool_)
    cumulative = np.zeros((5, n_pat + 1))
    deaths = np.zeros(n_pat + 1, np.int64)
    group_rows = np.empty(n_pat, np.int64)
    for r in range(n_rep):
        tabulate_replicate(order[r], sort_time[r], weight[r], event[r], treated[r], stratum_ids[r % stratum_ids.shape[0]],
                           has_strata, False, cumulative, deaths, time_out[r], event_out[r], weight_out[r], treated_out[r],
                           stratum_out[r], tie_first[r], tie_last[r], stratum_first[r], stratum_last[r],
                           at_risk_treated[r], at_risk_control[r], events_treated[r], events_control[r],
                           tie_weight[r], death_count[r], death_rank[r], is_tie_last[r], group_rows)
    return (time_out, event_out, weight_out, treated_out, stratum_out, tie_first, tie_last, stratum_first,
            stratum_last, at_risk_treated, at_risk_control, events_treated, events_control, tie_weight,
            death_count, death_rank, is_tie_last)

_SIGN = np.uint64(1 << 63)
#: The key of every NaN (numpy sorts NaN after +inf, ties by index) and of +inf.
_NAN_KEY = np.uint64(0x7FF8000000000000) | _SIGN
_INF_KEY = np.uint64(0x7FF0000000000000) | _SIGN


@numba.njit(cache=True, nogil=True, inline="always")
def time_key(t, raw, weight, masked):
    """Order-preserving unsigned key of time ``t`` (bits ``raw``): keys compare as the times
    do (negative times too; every NaN one key above +inf; -0.0 as 0.0). With ``masked``, a
    patient without a positive ``weight`` is outside the cohort and has the key of +inf."""
    if masked and not weight > 0:
        return _INF_KEY
    if t != t:
        return _NAN_KEY
    if t == 0.0:
        return _SIGN
    return ~raw if raw & _SIGN else raw | _SIGN


@numba.njit(cache=True, nogil=True)
def packed_keys(sort_time, raw, weight, masked, bits, packed):
    """Write into ``packed`` (uint64, shape (replicate, patient)) each patient's
    :func:`time_key` with its low ``bits`` bits replaced by the patient index.

    ``sort_time`` (float), ``raw`` (its bits, ``.view(np.uint64)``) and ``weight`` are shaped
    (replicate, patient); ``weight`` is read only with ``masked``; 2**bits >= patients.
    """
    n_rep, n_pat = packed.shape
    shift = np.uint64(bits)
    for r in range(n_rep):
        for i in range(n_pat):
            k = time_key(sort_time[r, i], raw[r, i], weight[r, i] if masked else 1.0, masked)
            packed[r, i] = ((k >> shift) << shift) | np.uint64(i)


@numba.njit(cache=True, nogil=True)
def unpack_replicate(packed, sort_time, raw, weight, masked, bits, order, run_keys, run_index):
    """One replicate's stable order (into ``order``, int64) from its row of :func:`packed_keys`
    sorted; the other arguments are the replicate's rows of :func:`packed_keys`'s, and
    ``run_keys``/``run_index`` scratch (shape (patient,)).

    Within a run of equal high bits the indices are increasing; a run whose whole keys are not
    non-decreasing in that order is sorted by them with a stable merge sort, so ties keep the
    index order.
    """
    n_pat = packed.shape[0]
    shift = np.uint64(bits)
    low = (np.uint64(1) << shift) - np.uint64(1)
    for i in range(n_pat):
        order[i] = np.int64(packed[i] & low)
    i = 0
    while i < n_pat:
        high = packed[i] >> shift
        j = i + 1
        if j < n_pat and (packed[j] >> shift) == high:  # a run: are its whole keys in order?
            p = order[i]
            previous = time_key(sort_time[p], raw[p], weight[p] if masked else 1.0, masked)
            in_order = True
            while j < n_pat and (packed[j] >> shift) == high:
                p = order[j]
                key = time_key(sort_time[p], raw[p], weight[p] if masked else 1.0, masked)
                in_order &= key >= previous
                previous = key
                j += 1
            if not in_order:
                m = j - i
                for q in range(m):
                    p = order[i + q]
                    run_index[q] = p
                    run_keys[q] = time_key(sort_time[p], raw[p], weight[p] if masked else 1.0, masked)
                by_key = np.argsort(run_keys[:m], kind="mergesort")
                for q in range(m):
                    order[i + q] = run_index[by_key[q]]
        i = j


@numba.njit(cache=True, nogil=True)
def unpack_order(packed, sort_time, raw, bits):
    """:func:`unpack_replicate` of every replicate (unmasked): int64, shape (replicate, patient)."""
    n_rep, n_pat = packed.shape
    order = np.empty((n_rep, n_pat), np.int64)
    run_keys = np.empty(n_pat, np.uint64)
    run_index = np.empty(n_pat, np.int64)
    for r in range(n_rep):
        unpack_replicate(packed[r], sort_time[r], raw[r], sort_time[r], False, bits, order[r], run_keys, run_index)
    return order


def index_bits(n_patients: int) -> int:
    """Bits of a patient index in :func:`packed_keys` (at least 1)."""
    return max(1, (n_patients - 1).bit_length())


def stable_order(sort_time) -> np.ndarray:
    """``np.argsort(sort_time, axis=1, kind="stable")``, exactly, by :func:`packed_keys` and
    :func:`unpack_order`. ``sort_time``: float64, shape (replicate, patient)."""
    sort_time = np.ascontiguousarray(sort_time, dtype=np.float64)
    if sort_time.shape[1] == 0:
        return np.zeros(sort_time.shape, np.int64)
    bits = index_bits(sort_time.shape[1])
    raw = sort_time.view(np.uint64)
    packed = np.empty(sort_time.shape, np.uint64)
    packed_keys(sort_time, raw, sort_time, False, bits, packed)
    packed.sort(axis=1)
    return unpack_order(packed, sort_time, raw, bits)
