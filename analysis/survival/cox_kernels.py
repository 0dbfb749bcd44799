"""Compiled Cox fit on the treatment indicator (numba), one replicate at a time.

:func:`analysis.survival.cox.cox_from_table` with ``compiled=False`` fits every replicate of a
block together in numpy: the partial-likelihood terms (:mod:`analysis.survival.cox_terms`)
packed to the left, a dozen calls per Newton evaluation, and for the robust variance ten
cumulative sums and their gathers (the score residuals) and a sort by cluster. With 100
patients per replicate each call does little arithmetic, so the calls, not the arithmetic,
were the cost. :func:`fit` runs each replicate's whole fit in one pass of compiled code: the
same terms, the same status rules, the same Newton-Raphson iterations with step halving, the
same score residuals and cluster sums. :func:`fit_replicate` is one replicate's fit (also run
by :mod:`analysis.survival.endpoint_kernels`). The log partial likelihood, a log per term, is
computed only for the step tests the score does not decide (:func:`_not_worse`: where the
likelihood is concave, a trial whose score has the step's sign is not worse), about one
Newton step in seven on liu2021 cohorts; the tests' outcomes, so the iterations, are those of
the numpy path's comparison of computed likelihoods.

The sums over a replicate's rows and event terms are numpy's pairwise sums, in numpy's order
(:func:`analysis.pairwise.pairwise_sum`; over the packed width of the numpy path for
the Newton evaluations), the score
residuals differences of sequential cumulative sums as there (run over the event terms only:
the other rows add +0.0 to them, :func:`fit_replicate`), each cluster's sum of ``w L / I``
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

The Newton evaluations and their sums (:func:`row_sum`) are compiled into their callers
(numba's IR inlining, ``inline="always"``): a call with arrays costs their reference counts
(atomic), as much as a 60-term evaluation; ~10% of the fused pass; the same operations. The
sums run once per replicate stay calls (inlined: 12 s more compiling for < 1%).

Compiled on first use and cached on disk (``cache=True``); see :func:`warm_up`.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from analysis import status as status_codes
from analysis.survival.cox_terms import MAX_ABS_LOG_HR
from analysis.pairwise import block_sum, pairwise_sum

#: The numpy path's constants (|log HR| of a divergent fit, and hazard_ratio's clip).
_MAX_ABS_LOG_HR = MAX_ABS_LOG_HR
_CLIP = 3 * MAX_ABS_LOG_HR
_OK = status_codes.OK
_EMPTY_ARM = status_codes.EMPTY_ARM
_NO_EVENTS = status_codes.NO_EVENTS
_NOT_CONVERGED = status_codes.NOT_CONVERGED


#: analysis.pairwise.block_sum compiled into its callers (the same function, IR-inlined).
_block_sum = numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")(block_sum.py_func)


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def row_sum(a, start, n, stack, partial):
    """:func:`analysis.pairwise.pairwise_sum`, inlined in its callers up to 128 terms."""
    return _block_sum(a, start, n) if n <= 128 else pairwise_sum(a, start, n, stack, partial)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _hazard_ratio(beta):
    return math.exp(min(max(beta, -_CLIP), _CLIP))


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _score_information(a, b, c, n, width, d1, beta, work, stack, partial, out):
    """Score and information at ``beta`` from the ``n`` terms into ``out[1]`` and ``out[2]``,
    each sum over ``width`` terms (zeros beyond ``n``: numpy's packed layout) in numpy's order
    (``work``: shape (3, width) or more)."""
    hr = _hazard_ratio(beta)
    for k in range(n):
        treated_risk = b[k] * hr
        share = treated_risk / (a[k] + treated_risk)
        weighted_share = c[k] * share
        work[1, k] = weighted_share
        work[2, k] = weighted_share * (1.0 - share)
    out[1] = d1 - row_sum(work[1], 0, width, stack, partial)
    out[2] = row_sum(work[2], 0, width, stack, partial)


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _log_likelihood(a, b, c, n, width, d1, beta, work, stack, partial):
    """Log partial likelihood at ``beta``, summed as :func:`_score_information` sums."""
    hr = _hazard_ratio(beta)
    for k in range(n):
        work[0, k] = c[k] * math.log(a[k] + b[k] * hr)
    return d1 * beta - row_sum(work[0], 0, width, stack, partial)


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _not_worse(a, b, c, n, width, d1, beta, trial, step, trial_score, loglik, work, stack, partial):
    """``cox._newton``'s test of a trial step, log L(trial) >= log L(beta) - 1e-13 |log L(beta)|;
    returns (passed, log L(beta), log L(trial)), the likelihoods NaN where not computed
    (``loglik``: log L(beta) if known, else NaN).

    The log partial likelihood is concave in beta where exp(beta) is not clipped
    (|beta| <= 3 * MAX_ABS_LOG_HR), so log L(trial) >= log L(beta) + U(trial) (trial - beta):
    a trial whose score has the sign of the step is not worse, and the likelihood (a log per
    term) is computed only for the other trials, then compared as ``cox._newton`` compares it.
    The sums being accurate to far less than the 1e-13 margin, the decisions are those of the
    comparison of the computed likelihoods.
    """
    if trial_score * step >= 0 and abs(beta) <= _CLIP and abs(trial) <= _CLIP:
        return True, loglik, np.nan
    if math.isnan(loglik):
        loglik = _log_likelihood(a, b, c, n, width, d1, beta, work, stack, partial)
    trial_loglik = _log_likelihood(a, b, c, n, width, d1, trial, work, stack, partial)
    return trial_loglik >= loglik - 1e-13 * abs(loglik), loglik, trial_loglik


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _cluster_sums_by_id(ids, values, first, rest, size):
    """Each cluster's first value (in row order) and the sum of its others, sequential from 0
    (``np.add.reduceat``'s order for up to 8 members), in arrays indexed by cluster id; False
    (nothing usable) if a cluster has more than 8 members (the others' sum would be pairwise)."""
    size[:] = 0
    for i in range(ids.size):
        g = ids[i]
        members = size[g]
        value = values[i]
        # Selections, not branches (whether a member is its cluster's first is random).
        earlier_first = first[g]
        later = rest[g] + value
        first[g] = value if members == 0 else earlier_first
        rest[g] = 0.0 if members == 0 else later
        size[g] = members + 1
        if members >= 8:
            return False
    return True


@numba.njit(cache=True, nogil=True, error_model="numpy")
def weight_totals(weight, treated, rows, stack, partial):
    """A replicate's total weight and the treated arm's (rows' ``weight``, ``treated``: shape
    (patient,)), summed as numpy sums them (``rows``: scratch, shape (2, patient) or more)."""
    n_pat = weight.shape[0]
    for i in range(n_pat):
        w = weight[i]
        rows[0, i] = w
        rows[1, i] = w if treated[i] else 0.0
    return pairwise_sum(rows[0], 0, n_pat, stack, partial), pairwise_sum(rows[1], 0, n_pat, stack, partial)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def fit_scratch(n_pat, width, n_ids):
    """Work arrays of :func:`fit_replicate` for replicates of ``n_pat`` patients, Newton sums
    over ``width`` terms and ``n_ids`` cluster ids (0: clusters sorted)."""
    return (np.empty(n_pat + 1, np.int64),  # terms before each row
            np.empty(n_pat), np.empty(n_pat), np.empty(n_pat), np.empty(n_pat),  # the terms packed
            np.empty(3), np.empty(3), np.empty((5, n_pat + 1)), np.empty(n_pat), np.empty(n_pat),
            np.zeros((6, n_pat)),  # the summands of the per-replicate totals, in row layout
            np.empty((64, 3), np.int64), np.empty(64),
            np.empty(max(n_ids, 1)), np.empty(max(n_ids, 1)), np.zeros(max(n_ids, 1), np.int64),
            np.zeros((3, width)))


@numba.njit(cache=True, nogil=True, error_model="numpy")
def fit_replicate(event, weight, treated, tie_first, tie_last, stratum_first, at_risk_treated, at_risk_control,
                  events_treated, events_control, death_count, death_rank, efron, cluster_rows, n_ids, order,
                  singleton, robust, max_iter, tol, width, weight_total, weight_treated, scratch):
    """The Cox fit of one replicate: its rows of :func:`fit`'s columns (shape (patient,)),
    ``cluster_rows`` and ``order`` likewise, the options of :func:`fit`, ``width`` (the Newton
    sums' width, as :func:`fit` finds it), the replicate's :func:`weight_totals` and
    ``scratch`` (:func:`fit_scratch`).

    The score residuals' cumulative sums run over the event terms (``terms_before[i]``: event
    rows before row i): the other rows add +0.0 to sums from +0.0 (never -0.0), the same sums.

    Returns (beta, information, sum_of_squares, events_total, n_iter, converged, status),
    as one replicate of :func:`fit`.
    """
    (terms_before, ca, cb, cc, cf, values, trial_values, cumulative, contribution, residual, rows, stack,
     partial, cluster_first, cluster_rest, cluster_size, work) = scratch
    n_pat = event.shape[0]
    sum_of_squares = np.nan
    for i in range(n_pat):
        rows[2, i] = weight[i] if event[i] else 0.0
    events_total = pairwise_sum(rows[2], 0, n_pat, stack, partial)
    weight_control = weight_total - weight_treated
    scale = 1e-12 * max(weight_total, 1.0)

    # Terms (cox_terms.partial_likelihood_terms), computed on every row and kept on the event
    # rows (selections, not branches: events and arms are in random order).
    n_terms = 0
    for i in range(n_pat):
        is_event = event[i]
        if efron:
            tied = max(death_count[i], 1.0)
            f = max(death_rank[i], 0.0) / tied
            ci = (events_treated[i] + events_control[i]) / tied
        else:
            f = 0.0
            ci = weight[i]
        ai = at_risk_control[i] - f * events_control[i]
        bi = at_risk_treated[i] - f * events_treated[i]
        ai = max(ai, 0.0) if ai > scale else 0.0
        bi = max(bi, 0.0) if bi > scale else 0.0
        dead = ai + bi <= 0  # dead term: no information
        ai = ai + 1.0 if dead else ai
        ci = 0.0 if dead else ci
        w = weight[i]
        rows[3, i] = w if is_event & (not dead) & treated[i] else 0.0
        rows[4, i] = ci if is_event & (bi > 0) else 0.0
        rows[5, i] = ci if is_event & (ai == 0) else 0.0
        terms_before[i] = n_terms
        ca[n_terms] = ai
        cb[n_terms] = bi
        cc[n_terms] = ci
        cf[n_terms] = f
        n_terms += is_event
    terms_before[n_pat] = n_terms
    d1 = pairwise_sum(rows[3], 0, n_pat, stack, partial)
    treated_at_risk_weight = pairwise_sum(rows[4], 0, n_pat, stack, partial)
    no_control_at_risk_weight = pairwise_sum(rows[5], 0, n_pat, stack, partial)
    for k in range(n_terms, width):
        for q in range(3):
            work[q, k] = 0.0

    # Status (cox_from_table), the later rules overriding the earlier ones.
    events_control_total = events_total - d1
    margin = 1e-10 * max(events_total, 1.0)
    finite_maximum = (d1 - treated_at_risk_weight < -margin) and (d1 - no_control_at_risk_weight > margin)
    status = _OK if finite_maximum else _NOT_CONVERGED
    if d1 <= 0 or events_control_total <= 0:
        status = _NO_EVENTS
    if weight_treated <= 0 or weight_control <= 0:
        status = _EMPTY_ARM

    # Newton-Raphson with step halving from beta = 0 (cox._newton); the likelihood only where
    # a step's test needs it (_not_worse).
    beta = 0.0
    _score_information(ca, cb, cc, n_terms, width, d1, beta, work, stack, partial, values)
    n_iter = 0
    converged = False
    if status == _OK:
        loglik = np.nan
        for _ in range(max_iter):
            step = values[1] / values[2]
            if not math.isfinite(step):
                step = 0.0
            trial = beta + step
            _score_information(ca, cb, cc, n_terms, width, d1, trial, work, stack, partial, trial_values)
            trial_loglik = np.nan
            for halvings in range(61):
                if halvings == 60:  # cox._newton takes the 60th halving untested
                    break
                accept, loglik, trial_loglik = _not_worse(ca, cb, cc, n_terms, width, d1, beta, trial, step,
                                                          trial_values[1], loglik, work, stack, partial)
                if accept:
                    break
                step = step / 2.0
                trial = beta + step
                trial_loglik = np.nan
                _score_information(ca, cb, cc, n_terms, width, d1, trial, work, stack, partial, trial_values)
            beta = trial
            loglik = trial_loglik
            values[1] = trial_values[1]
            values[2] = trial_values[2]
            n_iter += 1
            done = abs(step) <= tol * max(1.0, abs(trial))
            escaped = abs(trial) > _MAX_ABS_LOG_HR
            if done and not escaped:
                converged = True
            if done or escaped:
                break
    information = values[2]
    if not (robust and status == _OK and converged and information > 0):
        return beta, information, sum_of_squares, events_total, n_iter, converged, status

    # Score residuals (cox_terms.score_residuals), from differences of cumulative sums (over
    # the event terms: a row without an event adds +0.0 there, share 0 / 1 and hazard 0 / 1).
    exp_beta = _hazard_ratio(beta)
    for q in range(5):
        cumulative[q, 0] = 0.0
    for k in range(n_terms):
        treated_risk = cb[k] * exp_beta
        denominator = ca[k] + treated_risk
        share = treated_risk / denominator
        hazard = cc[k] / denominator
        kept = 1.0 - cf[k]
        hazard_share = hazard * share
        cumulative[0, k + 1] = cumulative[0, k] + share
        cumulative[1, k + 1] = cumulative[1, k] + hazard
        cumulative[2, k + 1] = cumulative[2, k] + hazard * kept
        cumulative[3, k + 1] = cumulative[3, k] + hazard_share
        cumulative[4, k + 1] = cumulative[4, k] + hazard_share * kept
    se = 1.0 / math.sqrt(values[2])
    variance_factor = se * se
    for i in range(n_pat):
        w = weight[i]
        if not w > 0:  # outside the cohort (the trailing rows of a matched cohort)
            contribution[i] = 0.0 * variance_factor
            continue
        first = terms_before[tie_first[i]]
        after = terms_before[tie_last[i] + 1]
        start = terms_before[stratum_first[i]]
        mean_share = (cumulative[0, after] - cumulative[0, first]) / max(death_count[i], 1.0)
        hazard_earlier = cumulative[1, first] - cumulative[1, start]
        hazard_share_earlier = cumulative[3, first] - cumulative[3, start]
        # Both cases computed, one kept (selections: events and arms are in random order).
        is_event = event[i]
        own_hazard_event = cumulative[2, after] - cumulative[2, first]
        own_hazard_other = cumulative[1, after] - cumulative[1, first]
        own_hazard_x_event = cumulative[4, after] - cumulative[4, first]
        own_hazard_x_other = cumulative[3, after] - cumulative[3, first]
        own_hazard = own_hazard_event if is_event else own_hazard_other
        own_hazard_x = own_hazard_x_event if is_event else own_hazard_x_other
        cumulative_hazard = hazard_earlier + own_hazard
        cumulative_hazard_x = hazard_share_earlier + own_hazard_x
        compensator_treated = exp_beta * (cumulative_hazard - cumulative_hazard_x)
        compensator_control = 1.0 * (0.0 * cumulative_hazard - cumulative_hazard_x)
        is_treated = treated[i]
        compensator = compensator_treated if is_treated else compensator_control
        own_treated = 1.0 - mean_share
        own_control = 0.0 - mean_share
        own = own_treated if is_treated else own_control
        value = (own if is_event else 0.0) - compensator
        contribution[i] = (w * value) * variance_factor

    # Sum over clusters of (sum in the cluster)^2 (cox.cluster_sum_of_squares).
    total = 0.0
    if singleton:
        for i in range(n_pat):  # into patient order
            residual[order[i]] = contribution[i]
        for i in range(n_pat):
            total += residual[i] * residual[i]
    elif n_ids > 0 and _cluster_sums_by_id(cluster_rows, contribution, cluster_first, cluster_rest,
                                           cluster_size):
        for g in range(n_ids):  # increasing id, as np.bincount adds them
            cluster_sum = cluster_first[g] + cluster_rest[g]
            added = total + cluster_sum * cluster_sum
            total = added if cluster_size[g] > 0 else total
    else:
        by_cluster = np.argsort(cluster_rows, kind="mergesort")
        for i in range(n_pat):
            residual[i] = contribution[by_cluster[i]]
        i = 0
        while i < n_pat:  # np.add.reduceat's order: the first value + the others' pairwise sum
            cluster = cluster_rows[by_cluster[i]]
            first = i
            i += 1
            while i < n_pat and cluster_rows[by_cluster[i]] == cluster:
                i += 1
            cluster_sum = residual[first] + pairwise_sum(residual, first + 1, i - first - 1, stack, partial)
            total += cluster_sum * cluster_sum
    return beta, information, total, events_total, n_iter, converged, status


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
    width = 1  # numpy's packed terms: as many columns as the most events of a replicate
    for r in range(n_rep):
        count = 0
        for i in range(n_pat):
            count += event[r, i]
        width = max(width, count)
    scratch = fit_scratch(n_pat, width, n_ids)
    rows, stack, partial = scratch[10], scratch[11], scratch[12]
    for r in range(n_rep):
        weight_total, weight_treated = weight_totals(weight[r], treated[r], rows, stack, partial)
        (beta_out[r], information_out[r], sum_sq_out[r], events_total_out[r], n_iter_out[r], converged_out[r],
         status_out[r]) = fit_replicate(
            event[r], weight[r], treated[r], tie_first[r], tie_last[r], stratum_first[r], at_risk_treated[r],
            at_risk_control[r], events_treated[r], events_control[r], death_count[r], death_rank[r], efron,
            cluster_rows[r % cluster_rows.shape[0]], n_ids, order[r], singleton, robust, max_iter, tol, width,
            weight_total, weight_treated, scratch)
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
    :func:`analysis.survival.cox.cox_from_table` passes, on a two-patient replicate (the
    plan's fused pass, which runs this module's fit too, is loaded by
    :func:`analysis.survival.endpoint.warm_up`)."""
    from analysis.survival.risk_sets import tabulate_risk_sets

    table = tabulate_risk_sets(np.array([[1.0, 2.0]]), np.array([[True, True]]), np.array([[True, False]]))
    for singleton in (True, False):
        fit_table(table, efron=True, cluster_rows=np.zeros((1, 2), np.int64), singleton=singleton,
                  max_iter=1, tol=1e-9)
