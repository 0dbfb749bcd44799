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
packed keys (:func:`analysis.survival.risk_set_kernels.unpack_replicate`), the columns of its
table that the stages read, one tie group at a time, with the log-rank summands
(:func:`analysis.survival.risk_set_kernels.tabulate_replicate`'s sums and differences without
strata, in this function: the columns nothing reads, a call with twenty arrays and the
per-row selections of the strata are gone, 10-15% of the pass), both arms' medians
(:func:`analysis.survival.km_kernels.arm_median`) and the Cox fit
(:func:`analysis.survival.cox_kernels.fit_replicate`, given the weight totals the log-rank
sums already formed), and writes only per-replicate numbers.

These are the kernels the table functions run, on the same rows in the same order, so every
number equals theirs bit for bit: the log-rank sums are formed as
:func:`analysis.survival.logrank.logrank_from_table` forms them (the same products, numpy's
pairwise sums over the patient axis, :func:`analysis.pairwise.pairwise_sum`); the
Cox Newton sums have the batch's width as there (each segment's, for batches joined into one); clusters with negative ids are clusters of
one after every other cluster, in patient order, as ``risk_sets.unique_negative_ids`` numbers
them (tests/analysis/survival/test_endpoint.py compares every field).

Compiled on first use and cached on disk (``cache=True``); see :func:`warm_up`.
"""

from __future__ import annotations

import numba
import numpy as np

from analysis.survival.cox_kernels import fit_replicate, fit_scratch, weight_totals
from analysis.pairwise import pairwise_sum
from analysis.survival.km_kernels import arm_median, median_scratch
from analysis.survival.risk_set_kernels import unpack_replicate

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
                  efron, max_iter, tol, widths, ci, z, midpoint, floats, ints):
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
    widths : ndarray of int64, shape (replicate,)
        Each replicate's Newton-sum width: :func:`event_width` of its batch (of the segment
        it belongs to, where batches were joined).
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
    time_s = np.empty(n_pat)
    event_s = np.empty(n_pat, np.bool_)
    weight_s = np.empty(n_pat)
    treated_s = np.empty(n_pat, np.bool_)
    tie_first = np.empty(n_pat, np.int64)
    tie_last = np.empty(n_pat, np.int64)
    stratum_first = np.zeros(n_pat, np.int64)
    at_risk_treated = np.empty(n_pat)
    at_risk_control = np.empty(n_pat)
    events_treated = np.empty(n_pat)
    events_control = np.empty(n_pat)
    death_count = np.empty(n_pat)
    death_rank = np.empty(n_pat)
    cluster_rows = np.zeros(n_pat, np.int64)
    group_rows = np.empty(n_pat, np.int64)
    summands = np.empty((4, n_pat))
    stack = np.empty((64, 3), np.int64)
    partial = np.empty(64)
    km = median_scratch(n_pat)
    width = 1
    for q in range(n_chunk):
        width = max(width, widths[start + q])
    cox = fit_scratch(n_pat, width, n_ids)
    for q in range(n_chunk):
        r = start + q
        unpack_replicate(packed[q], time[r], raw[r], weight[r], True, bits, order, run_keys, run_index)

        # The table's columns that the stages read (tabulate_replicate's, without strata, with
        # mask = weight > 0: the same sums and differences): cumulative sums of the arms'
        # weights and events' weights from -0.0 (cumulative[2], all weights, is not needed).
        c0 = c1 = c3 = c4 = -0.0
        count = 0
        unbounded = False
        for i in range(n_pat):
            p = order[i]
            w = weight[r, p]
            in_cohort = w > 0
            time_s[i] = time[r, p] if in_cohort else np.inf
            e = event[r, p] & in_cohort
            x = treated[r, p]
            w = w if in_cohort else 0.0
            weight_s[i] = w
            unbounded |= w == np.inf
            event_s[i] = e
            treated_s[i] = x
            w_treated = w * x
            summands[3, i] = w_treated
            w_control = w - w_treated
            c0 += w_treated
            c1 += w_control
            c3 += w_treated * e
            c4 += w_control * e
            cumulative[0, i + 1] = c0
            cumulative[1, i + 1] = c1
            cumulative[3, i + 1] = c3
            cumulative[4, i + 1] = c4
            count += e
            deaths[i + 1] = count
        # One tie group (rows first to i) at a time: its counts on each of its rows, and the
        # log-rank summands as logrank_from_table forms them (products with 0/1 factors): on
        # the rows that are not the last of their group the factors are 0 and the summands
        # (signed) zeros, written without the divisions; the group's last row in full.
        n_groups = 0
        first = 0
        max_deaths = 0.0
        for i in range(n_pat):
            if i + 1 < n_pat and time_s[i + 1] == time_s[i]:
                continue
            after = i + 1
            treated_at_risk = c0 - cumulative[0, first]
            control_at_risk = c1 - cumulative[1, first]
            treated_events = cumulative[3, after] - cumulative[3, first]
            control_events = cumulative[4, after] - cumulative[4, first]
            before = deaths[first]
            tied = deaths[after] - before
            at_risk = treated_at_risk + control_at_risk
            d = treated_events + control_events
            not_last = 0.0 * ((at_risk - d) * 0.0)
            treated_zero = treated_events * 0.0
            for j in range(first, after):
                tie_first[j] = first
                tie_last[j] = i
                at_risk_treated[j] = treated_at_risk
                at_risk_control[j] = control_at_risk
                events_treated[j] = treated_events
                events_control[j] = control_events
                death_count[j] = tied
                death_rank[j] = (deaths[j + 1] - before - 1) if event_s[j] else -1.0
                summands[0, j] = 0.0
                summands[1, j] = not_last
                summands[2, j] = treated_zero
            term = 1.0 if d > 0 else 0.0
            share = treated_at_risk / (at_risk + (1.0 - term)) * term
            with_ties = 1.0 if (term > 0) & (at_risk > 1) else 0.0
            ties_factor = (at_risk - d) / ((at_risk - 1.0) * with_ties + (1.0 - with_ties)) * with_ties
            summands[0, i] = d * share
            summands[1, i] = d * share * (1.0 - share) * ties_factor
            summands[2, i] = treated_events
            max_deaths = d if d > max_deaths else max_deaths
            group_rows[n_groups] = i
            n_groups += 1
            first = after
        floats[5, r] = pairwise_sum(summands[0], 0, n_pat, stack, partial)
        floats[6, r] = pairwise_sum(summands[1], 0, n_pat, stack, partial)
        floats[4, r] = pairwise_sum(summands[2], 0, n_pat, stack, partial)
        weight_treated = pairwise_sum(summands[3], 0, n_pat, stack, partial)
        weight_total = pairwise_sum(weight_s, 0, n_pat, stack, partial)
        floats[7, r] = weight_treated
        floats[8, r] = weight_total - weight_treated
        floats[9, r] = max_deaths

        # Both arms' medians (a two-arm table: each arm's weights summed per tie group).
        # (tabulate_replicate's cumulative sums of each arm's weights are the arm's: its weights
        # are positive or +0.0, so its running sums from -0.0 are those from 0.)
        median, lower, upper, se, status = arm_median(time_s, tie_first, at_risk_treated, events_treated, time_s,
                                                      cumulative[0], False, group_rows, n_groups, ci, z, midpoint, km)
        floats[10, r], floats[11, r], floats[12, r], floats[13, r], ints[3, r] = median, lower, upper, se, status
        median, lower, upper, se, status = arm_median(time_s, tie_first, at_risk_control, events_control, time_s,
                                                      cumulative[1], False, group_rows, n_groups, ci, z, midpoint, km)
        floats[14, r], floats[15, r], floats[16, r], floats[17, r], ints[4, r] = median, lower, upper, se, status

        # The Cox fit, clusters in the table's row order. Its weight of the treated sums w if
        # treated else 0, the log-rank's w * treated: the same but for an infinite weight.
        if unbounded:
            weight_total, weight_treated = weight_totals(weight_s, treated_s, summands, stack, partial)
        if cluster_mode == CLUSTER_IDS:
            for i in range(n_pat):
                p = order[i]
                g = cluster[r, p]
                cluster_rows[i] = g if g >= 0 else id_offset + p
        beta, information, sum_of_squares, events_total, n_iter, converged, status = fit_replicate(
            event_s, weight_s, treated_s, tie_first, tie_last, stratum_first, at_risk_treated, at_risk_control,
            events_treated, events_control, death_count, death_rank, efron, cluster_rows, n_ids, order,
            cluster_mode == PATIENT_CLUSTERS, cluster_mode != NO_CLUSTERS, max_iter, tol, widths[r], weight_total,
            weight_treated, cox)
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
