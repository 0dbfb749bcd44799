"""Compiled risk-set tables (numba): the columns of a sorted replicate in one pass.

:func:`analysis.survival.risk_sets.tabulate_risk_sets` sorts each replicate by (stratum, time)
with numpy's stable ``argsort`` and then, with ``compiled=False``, forms the table in numpy:
five gathers into sorted order, the run bounds of the tie groups and strata by running
maxima and minima, and six cumulative sums with their gathers. With 100 patients per
replicate those calls, not the arithmetic, were the cost. :func:`tabulate` forms the same
columns from the same sort order in one pass per replicate: the same cumulative sums in the
same (sequential) order and the same differences of them, the same integer counts, so every
column equals the numpy path's bit for bit (tests/analysis/survival/test_survival_kernels.py).

Compiled on first use and cached on disk (``cache=True``).
"""

from __future__ import annotations

import numba
import numpy as np


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
    # Cumulative sums with a leading 0 (as risk_sets.cumulative_sums): weights of the treated,
    # of the controls, of all, events' weights of the treated and of the controls, event counts.
    cumulative = np.zeros((5, n_pat + 1))
    deaths = np.zeros(n_pat + 1, np.int64)
    for r in range(n_rep):
        for i in range(n_pat):
            p = order[r, i]
            t = sort_time[r, p]
            w = weight[r, p]
            e = event[r, p]
            x = treated[r, p]
            time_out[r, i] = t
            weight_out[r, i] = w
            event_out[r, i] = e
            treated_out[r, i] = x
            if has_strata:
                stratum_out[r, i] = stratum_ids[r, p]
            w_treated = w * x
            w_control = w - w_treated
            values = (w_treated, w_control, w, w_treated * e, w_control * e)
            for q in range(5):
                # np.cumsum: the first value itself, then running sums.
                cumulative[q, i + 1] = values[q] if i == 0 else cumulative[q, i] + values[q]
            deaths[i + 1] = deaths[i] + e
        # Run bounds of the tie groups (same stratum and time) and of the strata.
        for i in range(n_pat):
            new_stratum = i == 0 or (has_strata and stratum_out[r, i] != stratum_out[r, i - 1])
            new_tie = new_stratum or time_out[r, i] != time_out[r, i - 1]
            tie_first[r, i] = i if new_tie else tie_first[r, i - 1]
            if has_strata:
                stratum_first[r, i] = i if new_stratum else stratum_first[r, i - 1]
        for i in range(n_pat - 1, -1, -1):
            last_of_stratum = i == n_pat - 1 or (has_strata and stratum_out[r, i + 1] != stratum_out[r, i])
            last_of_tie = last_of_stratum or time_out[r, i + 1] != time_out[r, i]
            tie_last[r, i] = i if last_of_tie else tie_last[r, i + 1]
            if has_strata:
                stratum_last[r, i] = i if last_of_stratum else stratum_last[r, i + 1]
        for i in range(n_pat):
            first = tie_first[r, i]
            after = tie_last[r, i] + 1
            end = stratum_last[r, i] + 1
            at_risk_treated[r, i] = cumulative[0, end] - cumulative[0, first]
            at_risk_control[r, i] = cumulative[1, end] - cumulative[1, first]
            tie_weight[r, i] = cumulative[2, after] - cumulative[2, first]
            events_treated[r, i] = cumulative[3, after] - cumulative[3, first]
            events_control[r, i] = cumulative[4, after] - cumulative[4, first]
            before = deaths[first]
            death_count[r, i] = deaths[after] - before
            death_rank[r, i] = (deaths[i + 1] - before - 1) if event_out[r, i] else -1.0
            is_tie_last[r, i] = after - 1 == i
    return (time_out, event_out, weight_out, treated_out, stratum_out, tie_first, tie_last, stratum_first,
            stratum_last, at_risk_treated, at_risk_control, events_treated, events_control, tie_weight,
            death_count, death_rank, is_tie_last)
