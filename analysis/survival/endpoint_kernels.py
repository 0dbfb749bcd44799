"""One compiled pass per replicate for the survival analysis of an endpoint (numba).

The analysis plan analyses each endpoint of each cohort the same way: a risk-set table
(:func:`analysis.survival.risk_sets.tabulate_risk_sets`), the log-rank test of it
(:func:`analysis.survival.logrank.logrank_from_table`), both arms' Kaplan-Meier medians
(:func:`analysis.survival.kaplan_meier.km_median`) and the Cox fit
(:func:`analysis.survival.cox.cox_from_table`). Through those functions every stage writes or
reads some twenty (replicate, patient) arrays; with 10,000 patients a block's tables are tens
of megabytes of fresh memory per endpoint, and reading and faulting them in cost more than the
arithmetic. :func:`analyse_chunk` runs the stages one replicate at a time on work arrays of
one replicate (a few hundred kilobytes at most, reused): the replicate's order from its sorted
packed keys (:func:`analysis.survival.risk_set_kernels.unpack_replicate`), its table
(:func:`analysis.survival.risk_set_kernels.tabulate_replicate`), the log-rank sums, both arms'
medians (:func:`analysis.survival.km_kernels.arm_median`) and the Cox fit
(:func:`analysis.survival.cox_kernels.fit_replicate`), and writes only per-replicate numbers.

These are the kernels the table functions run, on the same rows in the same order, so every
number equals theirs bit for bit: the log-rank sums are formed as
:func:`analysis.survival.logrank.logrank_from_table` forms them (the same products, numpy's
pairwise sums over the patient axis, :func:`analysis.pairwise.pairwise_sum`); the
Cox Newton sums have the batch's width as there; clusters with negative ids are clusters of
one after every other cluster, in patient order, as ``risk_sets.unique_negative_ids`` numbers
them (tests/analysis/survival/test_endpoint.py compares every field).

Compiled on first use and cached on disk (``cache=True``); see :func:`warm_up`.
"""

from __future__ import annotations

import numba
import numpy as np

from analysis.survival.cox_kernels import fit_replicate, fit_scratch
from analysis.pairwise import pairwise_sum
from analysis.survival.km_kernels import arm_median, median_scratch
from analysis.survival.risk_set_kernels import tabulate_replicate, unpack_replicate

#: Rows of :func:`analyse_chunk`'s float output.
FLOAT_ROWS = ("beta", "information", "sum_of_squares", "events_total", "observed", "expected", "variance",
              "weight_treated", "weight_control", "max_deaths",
              "median_treated", "lower_treated", "upper_treated", "se_treated",
              "median_control", "lower_control", "upper_control", "se_control")
#: Rows of :func:`analyse_chunk`'s integer output.
INT_ROWS = ("n_iter", "converged", "status", "status_treated", "status_control")
#: Cluster modes of :func:`analyse_chunk`.
NO_CLUSTERS, PATIENT_CLUSTERS, CLUSTER_IDS = 0, 1, 2


@numba.njit(cache=True, nogil=True)
def event_width(event, weight):
    """The most events (with positive weight) of a replicate, at least 1: the width of the
    packed Cox terms of :func:`analysis.survival.cox_kernels.fit`."""
    n_rep, n_pat = event.shape
    width = 1
    for r in range(n_rep):
        count = 0
        for i in range(n_pat):
            count += event[r, i] and weight[r, i] > 0
        width = max(width, count)
    return width


@numba.njit(cache=True, nogil=True, error_model="numpy")
def analyse_chunk(start, packed, time, raw, weight, event, treated, cluster, cluster_mode, id_offset, n_ids, bits,
                  efron, max_iter, tol, width, ci, z, midpoint, floats, ints):
    """Log-rank sums, both arms' medians and the Cox fit of replicates ``start`` to
    ``start + len(packed)``.

    Parameters
    ----------
    start : int
        First replicate of the chunk.
    packed : ndarray of uint64, shape (chunk, patient)
        The chunk's :func:`analysis.survival.risk_set_kernels.packed_keys` (masked by
        ``weight``), sorted along patients.
    time, raw, weight : ndarray, shape (replicate, patient)
        Times (months), their bits (``time.view(np.uint64)``) and frequency weights (a
        patient without a positive weight is outside the cohort).
    event, treated : ndarray of bool, shape (replicate, patient)
    cluster : ndarray of int64, shape (replicate, patient)
        Cluster ids of the robust variance with ``cluster_mode`` CLUSTER_IDS (a negative id is
        a cluster of one, numbered ``id_offset`` + patient index); else not read.
    cluster_mode : int
        NO_CLUSTERS (no robust variance), PATIENT_CLUSTERS (every patient a cluster) or
        CLUSTER_IDS.
    id_offset, n_ids : int
        Above every non-negative id; ``n_ids`` > every id (0: clusters sorted per replicate).
    bits : int
        Index bits of the packed keys.
    efron : bool
        Efron ties (else Breslow).
    max_iter, tol
        Newton iteration limit and tolerance.
    width : int
        :func:`event_width` of the whole batch.
    ci : int
        :data:`analysis.survival.km_kernels.CI_CODES` of the median's interval.
    z : float
        Normal quantile of the level.
    midpoint : bool
        R's midpoint rule for the median.
    floats : ndarray of float, shape (len(FLOAT_ROWS), replicate)
    ints : ndarray of int64, shape (len(INT_ROWS), replicate)
        Written at the chunk's replicates, rows named by :data:`FLOAT_ROWS` and :data:`INT_ROWS`.
    """
    n_chunk, n_pat = packed.shape
    order = np.empty(n_pat, np.int64)
    run_keys = np.empty(n_pat, np.uint64)
    run_index = np.empty(n_pat, np.int64)
    cumulative = np.zeros((5, n_pat + 1))
    deaths = np.zeros(n_pat + 1, np.int64)
    no_strata = np.zeros(1, np.int64)
    time_s = np.empty(n_pat)
    event_s = np.empty(n_pat, np.bool_)
    weight_s = np.empty(n_pat)
    treated_s = np.empty(n_pat, np.bool_)
    stratum_s = np.zeros(n_pat, np.int64)
    tie_first = np.empty(n_pat, np.int64)
    tie_last = np.empty(n_pat, np.int64)
    stratum_first = np.zeros(n_pat, np.int64)
    stratum_last = np.full(n_pat, n_pat - 1, np.int64)
    at_risk_treated = np.empty(n_pat)
    at_risk_control = np.empty(n_pat)
    events_treated = np.empty(n_pat)
    events_control = np.empty(n_pat)
    tie_weight = np.empty(n_pat)
    death_count = np.empty(n_pat)
    death_rank = np.empty(n_pat)
    is_tie_last = np.empty(n_pat, np.bool_)
    cluster_rows = np.zeros(n_pat, np.int64)
    group_rows = np.empty(n_pat, np.int64)
    summands = np.empty((4, n_pat))
    stack = np.empty((64, 3), np.int64)
    partial = np.empty(64)
    km = median_scratch(n_pat)
    cox = fit_scratch(n_pat, width, n_ids)
    for q in range(n_chunk):
        r = start + q
        unpack_replicate(packed[q], time[r], raw[r], weight[r], True, bits, order, run_keys, run_index)
        n_groups = tabulate_replicate(order, time[r], weight[r], event[r], treated[r], no_strata, False, True,
                                      cumulative, deaths, time_s, event_s, weight_s, treated_s, stratum_s, tie_first,
                                      tie_last, stratum_first, stratum_last, at_risk_treated, at_risk_control,
                                      events_treated, events_control, tie_weight, death_count, death_rank,
                                      is_tie_last, group_rows)

        # Log-rank sums, as logrank_from_table forms them (products with 0/1 factors): on the
        # rows that are not the last of their tie group the factors are 0 and the summands
        # (signed) zeros, written without the divisions; the groups' last rows in full.
        for i in range(n_pat):
            summands[0, i] = 0.0
            summands[1, i] = 0.0 * ((at_risk_treated[i] + at_risk_control[i] - (events_treated[i] + events_control[i]))
                                    * 0.0)
            summands[2, i] = events_treated[i] * 0.0
            summands[3, i] = weight_s[i] * treated_s[i]
        max_deaths = 0.0
        for g in range(n_groups):
            i = group_rows[g]
            at_risk = at_risk_treated[i] + at_risk_control[i]
            d = events_treated[i] + events_control[i]
            term = 1.0 if d > 0 else 0.0
            share = at_risk_treated[i] / (at_risk + (1.0 - term)) * term
            with_ties = 1.0 if (term > 0) & (at_risk > 1) else 0.0
            ties_factor = (at_risk - d) / ((at_risk - 1.0) * with_ties + (1.0 - with_ties)) * with_ties
            summands[0, i] = d * share
            summands[1, i] = d * share * (1.0 - share) * ties_factor
            summands[2, i] = events_treated[i]
            max_deaths = d if d > max_deaths else max_deaths
        floats[5, r] = pairwise_sum(summands[0], 0, n_pat, stack, partial)
        floats[6, r] = pairwise_sum(summands[1], 0, n_pat, stack, partial)
        floats[4, r] = pairwise_sum(summands[2], 0, n_pat, stack, partial)
        weight_treated = pairwise_sum(summands[3], 0, n_pat, stack, partial)
        floats[7, r] = weight_treated
        floats[8, r] = pairwise_sum(weight_s, 0, n_pat, stack, partial) - weight_treated
        floats[9, r] = max_deaths

        # Both arms' medians (a two-arm table: each arm's weights summed per tie group).
        # (tabulate_replicate's cumulative sums of each arm's weights are the arm's: its weights
        # are positive or +0.0, so its running sums from -0.0 are those from 0.)
        median, lower, upper, se, status = arm_median(time_s, tie_first, at_risk_treated, events_treated, tie_weight,
                                                      cumulative[0], False, group_rows, n_groups, ci, z, midpoint, km)
        floats[10, r], floats[11, r], floats[12, r], floats[13, r], ints[3, r] = median, lower, upper, se, status
        median, lower, upper, se, status = arm_median(time_s, tie_first, at_risk_control, events_control, tie_weight,
                                                      cumulative[1], False, group_rows, n_groups, ci, z, midpoint, km)
        floats[14, r], floats[15, r], floats[16, r], floats[17, r], ints[4, r] = median, lower, upper, se, status

        # The Cox fit, clusters in the table's row order.
        if cluster_mode == CLUSTER_IDS:
            for i in range(n_pat):
                p = order[i]
                g = cluster[r, p]
                cluster_rows[i] = g if g >= 0 else id_offset + p
        beta, information, sum_of_squares, events_total, n_iter, converged, status = fit_replicate(
            event_s, weight_s, treated_s, tie_first, tie_last, stratum_first, at_risk_treated, at_risk_control,
            events_treated, events_control, death_count, death_rank, efron, cluster_rows, n_ids, order,
            cluster_mode == PATIENT_CLUSTERS, cluster_mode != NO_CLUSTERS, max_iter, tol, width, cox)
        floats[0, r], floats[1, r], floats[2, r], floats[3, r] = beta, information, sum_of_squares, events_total
        ints[0, r], ints[1, r], ints[2, r] = n_iter, converged, status


@numba.njit(cache=True, nogil=True)
def event_counts(weight, event, treated):
    """Weighted events of each arm per replicate, ``((weight * event) * treated).sum(axis=1)``
    and the same with ``~treated``, summed as numpy sums them (pairwise, patient order);
    shape (2, replicate)."""
    n_rep, n_pat = weight.shape
    out = np.empty((2, n_rep))
    summands = np.empty((2, n_pat))
    stack = np.empty((64, 3), np.int64)
    partial = np.empty(64)
    for r in range(n_rep):
        for i in range(n_pat):
            events = weight[r, i] * (1.0 if event[r, i] else 0.0)
            x = 1.0 if treated[r, i] else 0.0
            summands[0, i] = events * x
            summands[1, i] = events * (1.0 - x)
        out[0, r] = pairwise_sum(summands[0], 0, n_pat, stack, partial)
        out[1, r] = pairwise_sum(summands[1], 0, n_pat, stack, partial)
    return out
