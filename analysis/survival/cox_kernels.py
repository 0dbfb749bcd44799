"""Compiled Cox fit on the treatment indicator (numba), one replicate at a time.

:func:`analysis.survival.cox.cox_from_table` with ``compiled=False`` fits every replicate of a
block together in numpy: the partial-likelihood terms (:mod:`analysis.survival.cox_terms`)
packed to the left, a dozen calls per Newton evaluation, and for the robust variance ten
cumulative sums and their gathers (the score residuals) and a sort by cluster. With 100
patients per replicate each call does little arithmetic, so the calls, not the arithmetic,
were the cost. :func:`fit` runs each replicate's whole fit in one pass of compiled code: the
same terms, the same status rules, the same Newton-Raphson iterations with step halving, the
same score residuals and cluster sums.

The sums over a replicate's rows and event terms are numpy's pairwise sums, in numpy's order
(:func:`_sum`; over the packed width of the numpy path for the Newton evaluations), the score
residuals differences of sequential cumulative sums as there, each cluster's sum of ``w L / I``
``np.add.reduceat``'s and the squares added in increasing cluster id (each patient's own
square in patient order when every patient is a cluster). What is not the numpy path's
arithmetic, and so differs in rounding only: ``exp`` and ``log`` are the C library's, which
differ from numpy's SIMD ones by one ulp in a few percent of arguments.

Measured against the numpy path on 3,000 random cohorts with ties, masks and clusters of 1-3
(tests/analysis/survival/test_survival_kernels.py has the cases): without strata, with no,
count, gamma or odds ``e^N(0, 2)`` weights, log-HRs agree to 3e-14 absolute and model and
robust SEs to 2e-14 relative; with strata, log-HRs and SEs to 1.1e-13 and robust SEs to 2e-12,
except for non-integer weights (which no plan fits stratified), where the numpy path's
within-stratum sums are differences of cumulative sums over the whole row and cancel: robust
SEs up to 4.4e-9 on nearly diverging fits (|log HR| ~ 8-10); and a robust SE that is 0 in exact arithmetic
is rounding noise (~1e-15) in both. Iteration counts, convergence and statuses are identical
throughout; on liu2021 cohorts everything agrees to ~1e-15.

Compiled on first use and cached on disk (``cache=True``); see :func:`warm_up`.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from analysis import status as status_codes
from analysis.survival.cox_terms import MAX_ABS_LOG_HR

#: The numpy path's constants (|log HR| of a divergent fit, and hazard_ratio's clip).
_MAX_ABS_LOG_HR = MAX_ABS_LOG_HR
_CLIP = 3 * MAX_ABS_LOG_HR
_OK = status_codes.OK
_EMPTY_ARM = status_codes.EMPTY_ARM
_NO_EVENTS = status_codes.NO_EVENTS
_NOT_CONVERGED = status_codes.NOT_CONVERGED


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _hazard_ratio(beta):
    return math.exp(min(max(beta, -_CLIP), _CLIP))


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _block_sum(a, start, n):
    """numpy's pairwise sum of ``a[start:start + n]`` for ``n <= 128``: sequential below 8
    terms, else eight interleaved partial sums combined pairwise, then the rest in order."""
    if n < 8:
        res = 0.0
        for i in range(start, start + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[start], a[start + 1], a[start + 2], a[start + 3]
    r4, r5, r6, r7 = a[start + 4], a[start + 5], a[start + 6], a[start + 7]
    i = start + 8
    stop = start + n - n % 8
    while i < stop:
        r0 += a[i]
        r1 += a[i + 1]
        r2 += a[i + 2]
        r3 += a[i + 3]
        r4 += a[i + 4]
        r5 += a[i + 5]
        r6 += a[i + 6]
        r7 += a[i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < start + n:
        res += a[i]
        i += 1
    return res


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _sum(a, start, n, stack, partial):
    """``a[start:start + n].sum()`` in numpy's order (``pairwise_sum``: blocks of up to 128
    terms, larger ranges halved at a multiple of 8), bit for bit; without recursion (numba
    cannot cache a recursive function): the halvings are walked with an explicit ``stack``
    (int64, shape (64, 3): start, length, stage) and ``partial`` (float, shape (64,): the left
    halves' sums)."""
    if n <= 128:
        return _block_sum(a, start, n)
    top = 0
    stack[0, 0], stack[0, 1], stack[0, 2] = start, n, 0
    value = 0.0
    while top >= 0:
        s, m, stage = stack[top, 0], stack[top, 1], stack[top, 2]
        if m <= 128 or stage == 2:
            value = _block_sum(a, s, m) if m <= 128 else partial[top] + value
            top -= 1
            continue  # `value` goes to the parent (stage 1: its left half; 2: its right half)
        half = m // 2
        half -= half % 8
        if stage == 0:
            stack[top, 2] = 1
            top += 1
            stack[top, 0], stack[top, 1], stack[top, 2] = s, half, 0
        else:  # the left half's sum is in `value`
            partial[top] = value
            stack[top, 2] = 2
            top += 1
            stack[top, 0], stack[top, 1], stack[top, 2] = s + half, m - half, 0
    return value


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _evaluate(a, b, c, n, width, d1, beta, work, stack, partial, out):
    """Log partial likelihood, score and information at ``beta`` from the ``n`` terms into
    ``out``, each sum over ``width`` terms (zeros beyond ``n``: numpy's packed layout) in
    numpy's order (``work``: shape (3, width) or more)."""
    hr = _hazard_ratio(beta)
    for k in range(n):
        treated_risk = b[k] * hr
        denominator = a[k] + treated_risk
        share = treated_risk / denominator
        weighted_share = c[k] * share
        work[0, k] = c[k] * math.log(denominator)
        work[1, k] = weighted_share
        work[2, k] = weighted_share * (1.0 - share)
    out[0] = d1 * beta - _sum(work[0], 0, width, stack, partial)
    out[1] = d1 - _sum(work[1], 0, width, stack, partial)
    out[2] = _sum(work[2], 0, width, stack, partial)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _cluster_sums_by_id(ids, values, first, rest, size):
    """Each cluster's first value (in row order) and the sum of its others, sequential from 0
    (``np.add.reduceat``'s order for up to 8 members), in arrays indexed by cluster id; False
    (nothing usable) if a cluster has more than 8 members (the others' sum would be pairwise)."""
    size[:] = 0
    for i in range(ids.size):
        g = ids[i]
        if size[g] == 0:
            first[g] = values[i]
            rest[g] = 0.0
        else:
            rest[g] += values[i]
        size[g] += 1
        if size[g] > 8:
            return False
    return True


@numba.njit(cache=True, nogil=True, error_model="numpy")
def fit(event, weight, treated, tie_first, tie_last, stratum_first, at_risk_treated, at_risk_control,
        events_treated, events_control, death_count, death_rank, efron, cluster_rows, n_ids, order, singleton,
        robust, max_iter, tol):
    """The Cox fit of :func:`analysis.survival.cox.cox_from_table` for every replicate.

    Parameters
    ----------
    event, weight, treated, tie_first, tie_last, stratum_first, at_risk_treated,
    at_risk_control, events_treated, events_control, death_count, death_rank : ndarray, shape (replicate, patient)
        The columns of the :class:`analysis.survival.risk_sets.RiskSetTable`.
    efron : bool
        Efron ties (else Breslow).
    cluster_rows : ndarray of int64, shape (replicate, patient)
        Cluster ids (non-negative) in the table's row order; ignored unless ``robust`` and not
        ``singleton``.
    n_ids : int
        One more than the largest cluster id when the clusters are summed by id (small ids,
        e.g. pair ids), else 0 (they are sorted per replicate).
    order : ndarray of int64, shape (replicate, patient)
        The table's sort order (row i is patient ``order[r, i]``).
    singleton : bool
        Every patient a cluster of their own (the squares are summed in patient order).
    robust : bool
        Compute the Lin-Wei robust variance.
    max_iter : int
    tol : float

    Returns
    -------
    beta, information, sum_of_squares, events_total : ndarray of float, shape (replicate,)
        Estimate, information at it, the robust variance (NaN unless ``robust`` and OK) and the
        weighted number of events.
    n_iter : ndarray of int64, shape (replicate,)
    converged : ndarray of bool, shape (replicate,)
        Before the check of the information and the status (as ``_newton`` returns it).
    status : ndarray of int8, shape (replicate,)
        The status before the Newton iterations (OK where they ran).
    """
    n_rep, n_pat = event.shape
    beta_out = np.zeros(n_rep)
    information_out = np.zeros(n_rep)
    sum_sq_out = np.full(n_rep, np.nan)
    events_total_out = np.zeros(n_rep)
    n_iter_out = np.zeros(n_rep, np.int64)
    converged_out = np.zeros(n_rep, np.bool_)
    status_out = np.zeros(n_rep, np.int8)

    a = np.empty(n_pat)  # per row (1, 0, 0 off the event rows)
    b = np.empty(n_pat)
    c = np.empty(n_pat)
    fraction = np.empty(n_pat)
    ca = np.empty(n_pat)  # the terms packed
    cb = np.empty(n_pat)
    cc = np.empty(n_pat)
    values = np.empty(3)
    trial_values = np.empty(3)
    cumulative = np.empty((5, n_pat + 1))
    contribution = np.empty(n_pat)
    residual = np.empty(n_pat)
    rows = np.zeros((6, n_pat))  # the summands of the per-replicate totals, in row layout
    stack = np.empty((64, 3), np.int64)
    partial = np.empty(64)
    cluster_first = np.empty(max(n_ids, 1))
    cluster_rest = np.empty(max(n_ids, 1))
    cluster_size = np.zeros(max(n_ids, 1), np.int64)
    width = 1  # numpy's packed terms: as many columns as the most events of a replicate
    for r in range(n_rep):
        count = 0
        for i in range(n_pat):
            count += event[r, i]
        width = max(width, count)
    work = np.zeros((3, width))
    for r in range(n_rep):
        for i in range(n_pat):
            w = weight[r, i]
            rows[0, i] = w
            rows[1, i] = w if treated[r, i] else 0.0
            rows[2, i] = w if event[r, i] else 0.0
        weight_total = _sum(rows[0], 0, n_pat, stack, partial)
        weight_treated = _sum(rows[1], 0, n_pat, stack, partial)
        events_total = _sum(rows[2], 0, n_pat, stack, partial)
        weight_control = weight_total - weight_treated
        scale = 1e-12 * max(weight_total, 1.0)

        # Terms (cox_terms.partial_likelihood_terms).
        n_terms = 0
        for i in range(n_pat):
            rows[3, i] = 0.0
            rows[4, i] = 0.0
            rows[5, i] = 0.0
            if not event[r, i]:
                a[i] = 1.0
                b[i] = 0.0
                c[i] = 0.0
                fraction[i] = 0.0
                continue
            if efron:
                tied = max(death_count[r, i], 1.0)
                f = max(death_rank[r, i], 0.0) / tied
                ci = (events_treated[r, i] + events_control[r, i]) / tied
            else:
                f = 0.0
                ci = weight[r, i]
            ai = at_risk_control[r, i] - f * events_control[r, i]
            bi = at_risk_treated[r, i] - f * events_treated[r, i]
            ai = max(ai, 0.0) if ai > scale else 0.0
            bi = max(bi, 0.0) if bi > scale else 0.0
            if ai + bi <= 0:  # dead term: no information
                ai = ai + 1.0
                ci = 0.0
            elif treated[r, i]:
                rows[3, i] = weight[r, i]
            a[i] = ai
            b[i] = bi
            c[i] = ci
            fraction[i] = f
            ca[n_terms] = ai
            cb[n_terms] = bi
            cc[n_terms] = ci
            n_terms += 1
            if bi > 0:
                rows[4, i] = ci
            if ai == 0:
                rows[5, i] = ci
        d1 = _sum(rows[3], 0, n_pat, stack, partial)
        treated_at_risk_weight = _sum(rows[4], 0, n_pat, stack, partial)
        no_control_at_risk_weight = _sum(rows[5], 0, n_pat, stack, partial)
        for k in range(n_terms, width):
            for q in range(3):
                work[q, k] = 0.0
        events_total_out[r] = events_total

        # Status (cox_from_table), the later rules overriding the earlier ones.
        events_control_total = events_total - d1
        margin = 1e-10 * max(events_total, 1.0)
        finite_maximum = (d1 - treated_at_risk_weight < -margin) and (d1 - no_control_at_risk_weight > margin)
        status = _OK if finite_maximum else _NOT_CONVERGED
        if d1 <= 0 or events_control_total <= 0:
            status = _NO_EVENTS
        if weight_treated <= 0 or weight_control <= 0:
            status = _EMPTY_ARM
        status_out[r] = status

        # Newton-Raphson with step halving from beta = 0 (cox._newton).
        beta = 0.0
        _evaluate(ca, cb, cc, n_terms, width, d1, beta, work, stack, partial, values)
        n_iter = 0
        converged = False
        if status == _OK:
            for _ in range(max_iter):
                step = values[1] / values[2]
                if not math.isfinite(step):
                    step = 0.0
                trial = beta + step
                _evaluate(ca, cb, cc, n_terms, width, d1, trial, work, stack, partial, trial_values)
                for _ in range(60):
                    if trial_values[0] >= values[0] - 1e-13 * abs(values[0]):
                        break
                    step = step / 2.0
                    trial = beta + step
                    _evaluate(ca, cb, cc, n_terms, width, d1, trial, work, stack, partial, trial_values)
                beta = trial
                values[0] = trial_values[0]
                values[1] = trial_values[1]
                values[2] = trial_values[2]
                n_iter += 1
                done = abs(step) <= tol * max(1.0, abs(trial))
                escaped = abs(trial) > _MAX_ABS_LOG_HR
                if done and not escaped:
                    converged = True
                if done or escaped:
                    break
        beta_out[r] = beta
        information_out[r] = values[2]
        n_iter_out[r] = n_iter
        converged_out[r] = converged
        if not (robust and status == _OK and converged and values[2] > 0):
            continue

        # Score residuals (cox_terms.score_residuals), from differences of cumulative sums.
        exp_beta = _hazard_ratio(beta)
        for q in range(5):
            cumulative[q, 0] = 0.0
        for i in range(n_pat):
            treated_risk = b[i] * exp_beta
            denominator = a[i] + treated_risk
            share = treated_risk / denominator
            hazard = c[i] / denominator
            kept = 1.0 - fraction[i]
            hazard_share = hazard * share
            cumulative[0, i + 1] = cumulative[0, i] + share
            cumulative[1, i + 1] = cumulative[1, i] + hazard
            cumulative[2, i + 1] = cumulative[2, i] + hazard * kept
            cumulative[3, i + 1] = cumulative[3, i] + hazard_share
            cumulative[4, i + 1] = cumulative[4, i] + hazard_share * kept
        se = 1.0 / math.sqrt(values[2])
        variance_factor = se * se
        for i in range(n_pat):
            first = tie_first[r, i]
            after = tie_last[r, i] + 1
            start = stratum_first[r, i]
            mean_share = (cumulative[0, after] - cumulative[0, first]) / max(death_count[r, i], 1.0)
            hazard_earlier = cumulative[1, first] - cumulative[1, start]
            hazard_share_earlier = cumulative[3, first] - cumulative[3, start]
            if event[r, i]:
                cumulative_hazard = hazard_earlier + (cumulative[2, after] - cumulative[2, first])
                cumulative_hazard_x = hazard_share_earlier + (cumulative[4, after] - cumulative[4, first])
            else:
                cumulative_hazard = hazard_earlier + (cumulative[1, after] - cumulative[1, first])
                cumulative_hazard_x = hazard_share_earlier + (cumulative[3, after] - cumulative[3, first])
            if treated[r, i]:
                compensator = exp_beta * (cumulative_hazard - cumulative_hazard_x)
                own = 1.0 - mean_share
            else:
                compensator = 1.0 * (0.0 * cumulative_hazard - cumulative_hazard_x)
                own = 0.0 - mean_share
            residual[i] = (own if event[r, i] else 0.0) - compensator
            w = weight[r, i]
            contribution[i] = (w * residual[i] if w > 0 else 0.0) * variance_factor

        # Sum over clusters of (sum in the cluster)^2 (cox.cluster_sum_of_squares).
        total = 0.0
        if singleton:
            for i in range(n_pat):  # into patient order
                residual[order[r, i]] = contribution[i]
            for i in range(n_pat):
                total += residual[i] * residual[i]
        elif n_ids > 0 and _cluster_sums_by_id(cluster_rows[r], contribution, cluster_first, cluster_rest,
                                               cluster_size):
            for g in range(n_ids):  # increasing id, as np.bincount adds them
                if cluster_size[g] > 0:
                    cluster_sum = cluster_first[g] + cluster_rest[g]
                    total += cluster_sum * cluster_sum
        else:
            by_cluster = np.argsort(cluster_rows[r], kind="mergesort")
            for i in range(n_pat):
                residual[i] = contribution[by_cluster[i]]
            i = 0
            while i < n_pat:  # np.add.reduceat's order: the first value + the others' pairwise sum
                cluster = cluster_rows[r, by_cluster[i]]
                first = i
                i += 1
                while i < n_pat and cluster_rows[r, by_cluster[i]] == cluster:
                    i += 1
                cluster_sum = residual[first] + _sum(residual, first + 1, i - first - 1, stack, partial)
                total += cluster_sum * cluster_sum
        sum_sq_out[r] = total
    return beta_out, information_out, sum_sq_out, events_total_out, n_iter_out, converged_out, status_out


def fit_table(table, *, efron: bool, cluster_rows, singleton: bool, max_iter: int, tol: float):
    """:func:`fit` on a :class:`analysis.survival.risk_sets.RiskSetTable` (``cluster_rows`` None:
    no robust variance)."""
    robust = cluster_rows is not None
    rows = cluster_rows if robust and not singleton else np.zeros((1, 1), np.int64)
    n_ids = int(rows.max(initial=0)) + 1
    if n_ids > 4 * rows.shape[1] + 64:  # large ids: sorted per replicate instead
        n_ids = 0
    return fit(table.event, table.weight, table.treated, table.tie_first, table.tie_last, table.stratum_first,
               table.at_risk_treated, table.at_risk_control, table.events_treated, table.events_control,
               table.death_count, table.death_rank, efron, np.ascontiguousarray(rows, dtype=np.int64), n_ids,
               np.ascontiguousarray(table.order, dtype=np.int64), singleton, robust, int(max_iter), float(tol))


def warm_up() -> None:
    """Load (or compile, on an installation's first use) :func:`fit` for the argument types
    :func:`analysis.survival.cox.cox_from_table` passes, on a two-patient replicate."""
    from analysis.survival.risk_sets import tabulate_risk_sets

    table = tabulate_risk_sets(np.array([[1.0, 2.0]]), np.array([[True, True]]), np.array([[True, False]]))
    for singleton in (True, False):
        fit_table(table, efron=True, cluster_rows=np.zeros((1, 2), np.int64), singleton=singleton,
                  max_iter=1, tol=1e-9)
