"""Cox proportional-hazards model on the treatment indicator only, batched over replicates.

The partial likelihood is a sum of terms of the 2 x 2 risk-set tables
(:mod:`analysis.survival.cox_terms`, with the Breslow and Efron tie conventions); the Newton
iterations here then cost a few vectorised passes over those terms, for all replicates at once,
and the Lin-Wei robust variance sums the score residuals over clusters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from analysis import status as status_codes
from analysis.survival.cox_terms import (
    MAX_ABS_LOG_HR,
    TIES,
    Terms,
    evaluate,
    partial_likelihood_terms,
    score_residuals,
    terms_of_rows,
)
from analysis.survival.risk_sets import RiskSetTable, as_batch, tabulate_risk_sets, unique_negative_ids


@dataclass(frozen=True)
class CoxResult:
    """Cox model of time on treatment, one value per replicate (log-hazard-ratio scale).

    Attributes
    ----------
    log_hr : ndarray of float, shape (replicate,)
        Maximum partial likelihood estimate of the log hazard ratio, treated vs control.
    se : ndarray of float, shape (replicate,)
        Model-based standard error, I(beta)^(-1/2).
    robust_se : ndarray of float, shape (replicate,)
        Lin-Wei sandwich standard error clustered on ``cluster`` (NaN without ``cluster``).
    z : ndarray of float, shape (replicate,)
        Wald statistic log_hr / SE, with the robust SE when ``cluster`` was given (as R
        ``coxph`` reports it), else the model SE.
    p_value : ndarray of float, shape (replicate,)
        Two-sided Wald p-value from ``z``.
    p_value_model, p_value_robust : ndarray of float, shape (replicate,)
        Two-sided Wald p-values with the model and the robust SE (the latter NaN without
        ``cluster``).
    ci_lower, ci_upper : ndarray of float, shape (replicate,)
        Wald confidence limits of the log HR, log_hr -+ z_level * SE, with the same SE as ``z``.
    n_events : ndarray of float, shape (replicate,)
        Weighted number of events in the analysed cohort.
    n_iter : ndarray of int, shape (replicate,)
        Newton iterations used.
    converged : ndarray of bool, shape (replicate,)
        True where a finite maximum was found.
    status : ndarray of int8, shape (replicate,)
        EMPTY_ARM (an arm has nobody), NO_EVENTS (no events, or none in one arm: the
        likelihood is monotone), NOT_CONVERGED (other monotone likelihood, e.g. in a
        pair-stratified model, information 0, or no convergence), else OK. All estimates are
        NaN unless OK.
    """

    log_hr: np.ndarray
    se: np.ndarray
    robust_se: np.ndarray
    z: np.ndarray
    p_value: np.ndarray
    p_value_model: np.ndarray
    p_value_robust: np.ndarray
    ci_lower: np.ndarray
    ci_upper: np.ndarray
    n_events: np.ndarray
    n_iter: np.ndarray
    converged: np.ndarray
    status: np.ndarray


def _newton(terms: Terms, active, *, max_iter: int, tol: float):
    """Batched Newton-Raphson with step halving on the log partial likelihood, from beta = 0.

    Each iteration evaluates the replicates still iterating only (their terms are copied out
    when the set shrinks); every replicate's numbers are those of its own iterations.
    """
    n_replicates = active.shape[0]
    beta = np.zeros(n_replicates)
    n_iter = np.zeros(n_replicates, np.int64)
    converged = np.zeros(n_replicates, bool)
    active = active.copy()
    loglik, score, information = evaluate(terms, beta)
    working = None  # (rows, their terms), refreshed when the active set shrinks
    for _ in range(max_iter):
        if not active.any():
            break
        idx = np.flatnonzero(active)
        if working is None or working[0].size != idx.size:
            working = (idx, terms if idx.size == n_replicates else terms_of_rows(terms, idx))
        active_terms = working[1]
        beta_active, loglik_active = beta[idx], loglik[idx]
        with np.errstate(divide="ignore", invalid="ignore"):
            step = score[idx] / information[idx]
        step = np.where(np.isfinite(step), step, 0.0)
        trial = beta_active + step
        trial_values = evaluate(active_terms, trial)
        for _ in range(60):
            worse = ~(trial_values[0] >= loglik_active - 1e-13 * np.abs(loglik_active))
            if not worse.any():
                break
            step = np.where(worse, step / 2.0, step)
            trial = beta_active + step
            trial_values = evaluate(active_terms, trial)
        beta[idx] = trial
        loglik[idx], score[idx], information[idx] = trial_values
        n_iter[idx] += 1
        done = np.abs(step) <= tol * np.maximum(1.0, np.abs(trial))
        escaped = np.abs(trial) > MAX_ABS_LOG_HR
        converged[idx] |= done & ~escaped
        active[idx[done | escaped]] = False
    return beta, information, n_iter, converged


def cluster_sum_of_squares(values, cluster):
    """sum over clusters of (sum of ``values`` in the cluster)^2, per replicate; shape (replicate,).

    Clusters are summed in increasing id order, each cluster's values in row order.
    """
    n_replicates, n_patients = values.shape
    # A stable sort of small non-negative ids is a radix sort on int16 (same order, faster).
    small = cluster.size and cluster.min() >= 0 and cluster.max() < np.iinfo(np.int16).max
    order = np.argsort(cluster.astype(np.int16) if small else cluster, axis=1, kind="stable")
    sorted_cluster = np.take_along_axis(cluster, order, axis=1)
    sorted_values = np.take_along_axis(values, order, axis=1)
    new_cluster = np.ones(values.shape, bool)
    new_cluster[:, 1:] = sorted_cluster[:, 1:] != sorted_cluster[:, :-1]
    starts = np.flatnonzero(new_cluster.ravel())
    sums = np.add.reduceat(sorted_values.ravel(), starts)
    return np.bincount(starts // n_patients, weights=sums**2, minlength=n_replicates)


def singleton_sum_of_squares(values, order):
    """:func:`cluster_sum_of_squares` when every patient is a cluster of their own with the
    patient index as id: the squares summed in patient order. ``values`` are in the table's row
    order, ``order`` is :attr:`RiskSetTable.order`; shape (replicate,)."""
    n_replicates, n_patients = values.shape
    in_patient_order = np.empty_like(values)
    flat_order = (order + (np.arange(n_replicates, dtype=np.int64) * n_patients)[:, None]).ravel()
    in_patient_order.ravel()[flat_order] = values.ravel()
    squares = in_patient_order * in_patient_order
    # Sequential sums (np.cumsum), in the order np.bincount accumulates them.
    return np.cumsum(squares, axis=1)[:, -1] if n_patients else np.zeros(n_replicates)


def fit_cox(
    time,
    event,
    treated,
    *,
    mask=None,
    ties: str = "efron",
    cluster=None,
    strata=None,
    weights=None,
    level: float = 0.95,
    max_iter: int = 30,
    tol: float = 1e-9,
    compiled: bool = True,
) -> CoxResult:
    """Fit ``Surv(time, event) ~ treated`` by maximum partial likelihood, per replicate.

    Parameters
    ----------
    time : array_like of float, shape (replicate, patient)
        Observed times, months.
    event : array_like of bool, shape (replicate, patient)
        True for an event.
    treated : array_like of bool, shape (replicate, patient)
        Treatment indicator (the only covariate).
    mask : array_like of bool, shape (replicate, patient), optional
        Who is in the analysed cohort (default everyone).
    ties : {"efron", "breslow"}
        Handling of tied event times (Efron: R ``coxph``, lifelines; Breslow: SPSS COXREG).
    cluster : array_like of int, shape (replicate, patient), optional
        Cluster ids (e.g. matched-pair ids) for the Lin-Wei robust variance; a negative id is
        a cluster of its own.
    strata : array_like of int, shape (replicate, patient), optional
        Stratum ids for a stratified model (separate baseline hazard per stratum, e.g. per
        matched pair); a negative id is a stratum of one (it carries no information).
    weights : array_like of float, shape (replicate, patient), optional
        Non-negative case (frequency) weights, default 1.
    level : float
        Confidence level of ``ci_lower``/``ci_upper``.
    max_iter : int
        Newton iteration limit.
    tol : float
        Convergence when the Newton step is <= tol * max(1, |beta|).
    compiled : bool
        As in :func:`cox_from_table`.

    Returns
    -------
    CoxResult
        Arrays of shape (replicate,).

    Notes
    -----
    Monotone likelihood is detected exactly before iterating: a finite maximum exists iff
    U(-inf) > 0 > U(+inf), i.e. some treated event has a control at risk and some control
    event has a treated patient at risk (within a stratum). The robust variance is
    ``sum_g (sum_{i in g} w_i L_i / I)^2`` with the score residuals L_i of the chosen ties
    method (Efron-consistent for Efron, as R ``coxph(..., cluster=)``; statsmodels and
    lifelines use Breslow-form residuals, so they differ from R under Efron with ties).
    No small-sample factor is applied.

    References
    ----------
    Cox DR (1972). J R Stat Soc B 34:187-220. Breslow N (1974). Biometrics 30:89-99.
    Efron B (1977). J Am Stat Assoc 72:557-565. Lin DY, Wei LJ (1989). J Am Stat Assoc
    84:1074-1078. Therneau TM, Grambsch PM (2000). Modeling Survival Data, Springer.
    """
    if ties not in TIES:
        raise ValueError(f"unknown ties {ties!r}; choose one of {', '.join(TIES)}")
    table = tabulate_risk_sets(time, event, treated, mask=mask, weights=weights, strata=strata)
    return cox_from_table(table, ties=ties, cluster=cluster, level=level, max_iter=max_iter, tol=tol,
                          compiled=compiled)


def cox_from_table(
    table: RiskSetTable,
    *,
    ties: str = "efron",
    cluster=None,
    level: float = 0.95,
    max_iter: int = 30,
    tol: float = 1e-9,
    compiled: bool = True,
) -> CoxResult:
    """Fit the Cox model of :func:`fit_cox` from a risk-set table.

    Parameters
    ----------
    table : RiskSetTable
        From :func:`analysis.survival.risk_sets.tabulate_risk_sets` with the treatment indicator as
        ``treated`` (and the strata, mask and weights of the model), e.g. shared with
        :func:`analysis.survival.logrank.logrank_from_table`.
    ties, cluster, level, max_iter, tol
        As in :func:`fit_cox`; ``cluster`` is shaped (replicate, patient) in the patients'
        input order (not the table's sorted order).
    compiled : bool
        Fit each replicate in compiled code (:mod:`analysis.survival.cox_kernels`, the same
        numbers to ~1e-15 relative, identical iterations and statuses); False runs the numpy
        path below, the kernel's test oracle.

    Returns
    -------
    CoxResult
        Arrays of shape (replicate,); the same numbers as :func:`fit_cox` on the data the
        table was built from.
    """
    if ties not in TIES:
        raise ValueError(f"unknown ties {ties!r}; choose one of {', '.join(TIES)}")
    if compiled:
        return _cox_compiled(table, ties=ties, cluster=cluster, level=level, max_iter=max_iter, tol=tol)
    terms = partial_likelihood_terms(table, ties)
    n_replicates = table.time.shape[0]

    weight_treated = (table.weight * table.treated).sum(axis=1)
    weight_control = table.weight.sum(axis=1) - weight_treated
    events_total = (table.weight * table.event).sum(axis=1)
    events_control = events_total - terms.events_treated
    # Limits of the score: U(+inf) = d1 - sum_{b>0} c, U(-inf) = d1 - sum_{a=0} c.
    treated_at_risk_weight = (terms.weight * (terms.risk_treated > 0)).sum(axis=1)
    no_control_at_risk_weight = (terms.weight * (terms.risk_control == 0)).sum(axis=1)
    score_at_plus_inf = terms.events_treated - treated_at_risk_weight
    score_at_minus_inf = terms.events_treated - no_control_at_risk_weight
    margin = 1e-10 * np.maximum(events_total, 1.0)
    finite_maximum = (score_at_plus_inf < -margin) & (score_at_minus_inf > margin)

    status = np.full(n_replicates, status_codes.OK, np.int8)
    status[~finite_maximum] = status_codes.NOT_CONVERGED
    status[(terms.events_treated <= 0) | (events_control <= 0)] = status_codes.NO_EVENTS
    status[(weight_treated <= 0) | (weight_control <= 0)] = status_codes.EMPTY_ARM

    beta, information, n_iter, converged = _newton(
        terms, status == status_codes.OK, max_iter=max_iter, tol=tol
    )
    ok, converged, log_hr, se = _estimates(beta, information, converged, status)

    with np.errstate(divide="ignore", invalid="ignore"):
        if cluster is None:
            robust_se = np.full(n_replicates, np.nan)
        else:
            cluster_ids = _cluster_ids(cluster, table)
            residuals = score_residuals(table, terms, np.where(ok, beta, 0.0))
            dfbeta = np.where(table.weight > 0, table.weight * residuals, 0.0) * (se**2)[:, None]
            if _is_singleton(cluster_ids):
                sum_of_squares = singleton_sum_of_squares(dfbeta, table.order)
            else:
                cluster_sorted = np.take_along_axis(cluster_ids, table.order, axis=1)
                sum_of_squares = cluster_sum_of_squares(dfbeta, cluster_sorted)
            robust_se = np.where(ok, np.sqrt(sum_of_squares), np.nan)
    return _result(log_hr, se, robust_se, cluster is not None, level, events_total, n_iter, converged, status)


def _cluster_ids(cluster, table: RiskSetTable) -> np.ndarray:
    """Cluster ids as (replicate, patient) int64 in input order, negatives made unique."""
    cluster_ids = np.asarray(cluster, dtype=np.int64)
    if cluster_ids.size == 0:  # no patient columns (placeholder table)
        cluster_ids = np.zeros(table.time.shape, np.int64)
    return unique_negative_ids(as_batch("cluster", cluster_ids, table.time.shape, np.int64))


def _is_singleton(cluster_ids) -> bool:
    return np.array_equal(cluster_ids, np.broadcast_to(np.arange(cluster_ids.shape[1]), cluster_ids.shape))


def _cox_compiled(table: RiskSetTable, *, ties, cluster, level, max_iter, tol) -> CoxResult:
    """:func:`cox_from_table` by :func:`analysis.survival.cox_kernels.fit`."""
    from analysis.survival import cox_kernels

    cluster_rows, singleton = None, False
    if cluster is not None:
        cluster_ids = _cluster_ids(cluster, table)
        singleton = _is_singleton(cluster_ids)
        cluster_rows = cluster_ids if singleton else np.take_along_axis(cluster_ids, table.order, axis=1)
    fit = cox_kernels.fit_table(table, efron=ties == "efron", cluster_rows=cluster_rows, singleton=singleton,
                                max_iter=max_iter, tol=tol)
    return result_of_fit(*fit, clustered=cluster is not None, level=level)


def result_of_fit(beta, information, sum_of_squares, events_total, n_iter, converged, status, *, clustered: bool,
                  level: float) -> CoxResult:
    """The :class:`CoxResult` of a compiled fit (:func:`analysis.survival.cox_kernels.fit`'s
    outputs, each shape (replicate,); ``status`` int8, updated in place); ``clustered``: a
    robust SE was asked for."""
    ok, converged, log_hr, se = _estimates(beta, information, converged, status)
    with np.errstate(invalid="ignore"):
        robust_se = np.where(ok, np.sqrt(sum_of_squares), np.nan)
    return _result(log_hr, se, robust_se, clustered, level, events_total, n_iter, converged, status)


def _estimates(beta, information, converged, status):
    """Both paths' last step: a fit without positive information has not converged (status
    updated in place); returns ``ok`` (status OK), ``converged`` (and OK), the log HR and its
    model SE 1/sqrt(information), NaN where not OK; each shape (replicate,)."""
    converged = converged & (information > 0)
    status[(status == status_codes.OK) & ~converged] = status_codes.NOT_CONVERGED
    ok = status == status_codes.OK
    with np.errstate(divide="ignore", invalid="ignore"):
        return ok, converged & ok, np.where(ok, beta, np.nan), np.where(ok, 1.0 / np.sqrt(information), np.nan)


def _result(log_hr, se, robust_se, use_robust, level, events_total, n_iter, converged, status) -> CoxResult:
    """The Wald statistics, p-values and limits of a fit."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z_model = log_hr / se
        z_robust = log_hr / robust_se
    p_value_model = 2.0 * special.ndtr(-np.abs(z_model))
    p_value_robust = 2.0 * special.ndtr(-np.abs(z_robust))
    chosen_se = robust_se if use_robust else se
    critical = float(special.ndtri(1.0 - (1.0 - level) / 2.0))
    return CoxResult(
        log_hr=log_hr,
        se=se,
        robust_se=robust_se,
        z=z_robust if use_robust else z_model,
        p_value=p_value_robust if use_robust else p_value_model,
        p_value_model=p_value_model,
        p_value_robust=p_value_robust,
        ci_lower=log_hr - critical * chosen_se,
        ci_upper=log_hr + critical * chosen_se,
        n_events=events_total,
        n_iter=n_iter,
        converged=converged,
        status=status,
    )
