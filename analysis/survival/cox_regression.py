"""Cox regression on the treatment and adjustment covariates, batched over replicates.

The covariate-adjusted analyses (Cox adjusted for the PS covariates, for the PS, for a spline
of the PS) need a Cox model with several covariates. :func:`fit_cox_regression` fits
``Surv(time, event) ~ treated + adjusters`` for a whole block by Newton-Raphson on
``(replicate, p)`` coefficient arrays, each replicate with its own convergence mask, step
halving and status, from one risk-set table (sort order, tie groups, strata, weights) of
:mod:`analysis.survival.risk_sets`.

For an event row k (the k-th of the m tied events of its time, k = 0..m-1; fraction f = k/m
for Efron, 0 for Breslow) with weighted risk ``r_i = w_i exp(x_i'beta)``:

``D0_k = sum_{risk set} r_i - f sum_{tied events} r_i``, ``D1_k`` the same sums of r_i x_i,
``log L = sum_events w_i x_i'beta - sum_k c_k log D0_k`` with ``c_k`` the event's weight
(Breslow) or the mean weight of the tied events (Efron, as R ``coxph`` and lifelines),
``U = sum_events w_i x_i - sum_k c_k D1_k / D0_k``,
``I = sum_i r_i H_i x_i x_i' - sum_k (c_k / D0_k^2) D1_k D1_k'`` where ``H_i = sum_k a_ik
c_k / D0_k`` over the risk sets holding i, with ``a_ik = 1 - f_k`` when i is one of the tied
events of k and 1 otherwise: two batched matrix products per iteration.

Score residuals (R ``residuals.coxph``, Efron- or Breslow-consistent):
``L_i = delta_i (x_i - xbar_j) - exp(x_i'beta) (x_i H_i - sum_k a_ik c_k D1_k / D0_k^2)``
with ``xbar_j`` the mean of D1_k / D0_k over the events of i's time; the robust variance is
``I^-1 (sum_g s_g s_g') I^-1`` with ``s_g = sum_{i in g} w_i L_i`` (Lin & Wei 1989).

Covariates are centred and scaled to unit SD in each replicate before the iterations (the
estimates are transformed back); a replicate whose centred design has deficient rank (e.g. a
covariate constant in it) is fitted with pseudo-inverse steps, which give the minimum-norm
maximiser: the treatment coefficient is the one R reports after dropping the aliased columns.

References
----------
Cox DR (1972). J R Stat Soc B 34:187-220. Breslow N (1974). Biometrics 30:89-99. Efron B
(1977). J Am Stat Assoc 72:557-565. Lin DY, Wei LJ (1989). J Am Stat Assoc 84:1074-1078.
Therneau TM, Grambsch PM (2000). Modeling Survival Data, Springer, sections 3.3 and 7.2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from analysis import status as status_codes
from analysis.survival.cox import MAX_ABS_LOG_HR, CoxResult
from analysis.survival.risk_set_sums import RiskSetSums
from analysis.survival.risk_sets import as_batch, tabulate_risk_sets, unique_negative_ids

_TIES = ("efron", "breslow")
#: Largest number of step halvings in one Newton iteration.
MAX_HALVINGS = 60
#: A coefficient whose information has fallen below this share of its value at beta = 0 is
#: running to infinity (the likelihood is flat in it).
FLAT_INFORMATION = 1e-6
#: Relative change of the log-likelihood below which (twice in a row) the iterations stop.
STALLED_LOGLIK = 1e-13


@dataclass(frozen=True)
class CoxRegression:
    """Cox model ``treated + adjusters`` of a block; column 0 of ``coef`` is the treatment.

    Attributes
    ----------
    coef : ndarray of float, shape (replicate, p)
        Log hazard ratios (treatment first, then the adjusters in order); NaN unless OK.
    covariance : ndarray of float, shape (replicate, p, p)
        Model-based covariance, the inverse information.
    robust_covariance : ndarray of float, shape (replicate, p, p)
        Lin-Wei sandwich covariance clustered on ``cluster`` (NaN without ``cluster``).
    loglik : ndarray of float, shape (replicate,)
        Log partial likelihood at ``coef``.
    n_events : ndarray of float, shape (replicate,)
        Weighted number of events.
    n_iter : ndarray of int, shape (replicate,)
    rank_deficient : ndarray of bool, shape (replicate,)
        The centred design had deficient rank (pseudo-inverse steps).
    infinite_adjuster : ndarray of bool, shape (replicate,)
        An adjuster's coefficient ran to infinity (e.g. a binary covariate whose carriers all
        have no event): the iterations stopped when the log-likelihood no longer moved and the
        treatment estimate is its limit, as R ``coxph`` reports it with the warning
        "coefficient may be infinite"; the fit counts as OK.
    status : ndarray of int8, shape (replicate,)
        EMPTY_ARM, NO_EVENTS (none in an arm), NOT_CONVERGED (no convergence within the
        iteration limit; the treatment coefficient running to infinity, detected as its
        information falling below ``FLAT_INFORMATION`` times its value at beta = 0 with
        covariates scaled to unit SD, or |treatment log HR| > 20), else OK (see
        ``infinite_adjuster``).
    treatment : CoxResult
        The treatment coefficient as :func:`analysis.survival.cox.fit_cox` reports it (z and
        p-value with the robust SE when ``cluster`` was given).
    """

    coef: np.ndarray
    covariance: np.ndarray
    robust_covariance: np.ndarray
    loglik: np.ndarray
    n_events: np.ndarray
    n_iter: np.ndarray
    rank_deficient: np.ndarray
    infinite_adjuster: np.ndarray
    status: np.ndarray
    treatment: CoxResult


@dataclass(frozen=True)
class _Rows:
    """The table's rows of some replicates: covariates, weights and tie/stratum bounds."""

    x: np.ndarray  # (R, N, p) standardised covariates in table order, 0 outside the cohort
    weight: np.ndarray  # (R, N)
    event: np.ndarray  # (R, N) bool
    fraction: np.ndarray  # (R, N) Efron fraction k/m on event rows, else 0
    term_weight: np.ndarray  # (R, N) c_k on event rows, else 0
    tie_first: np.ndarray
    tie_last: np.ndarray
    stratum_first: np.ndarray
    stratum_last: np.ndarray
    death_count: np.ndarray

    def take(self, rows):
        return _Rows(*(getattr(self, name)[rows] for name in self.__dataclass_fields__))


def _evaluate(rows: _Rows, beta, *, full: bool = False):
    """Log partial likelihood, score and information at ``beta`` (R, p); with ``full`` also
    the per-row quantities the score residuals need."""
    sums = RiskSetSums(rows)
    eta = np.einsum("rnp,rp->rn", rows.x, beta)
    in_cohort = rows.weight > 0
    shift = np.max(np.where(in_cohort, eta, -np.inf), axis=1, initial=-np.inf)
    shift = np.where(np.isfinite(shift), shift, 0.0)[:, None]
    risk = np.exp(np.minimum(eta - shift, 700.0)) * in_cohort
    weighted_risk = rows.weight * risk
    risk_x = weighted_risk[:, :, None] * rows.x
    tied = rows.event * weighted_risk
    term = rows.term_weight > 0
    denominator = sums.risk_set(weighted_risk) - rows.fraction * sums.own_group(tied)
    # A trial step so wild that a risk set underflows to 0 (or rounds below it) is no maximum:
    # its log-likelihood is -inf and the step is halved.
    wild = (term & ~(denominator > 0)).any(axis=1)
    denominator = np.where(term & (denominator > 0), denominator, 1.0)
    numerator = sums.risk_set(risk_x) - rows.fraction[:, :, None] * sums.own_group(tied[:, :, None] * rows.x)
    numerator = numerator * term[:, :, None]
    mean_x = numerator / denominator[:, :, None]
    log_denominator = np.log(denominator)
    event_weight = rows.weight * rows.event
    loglik = (event_weight * (eta - shift)).sum(axis=1) - (rows.term_weight * log_denominator).sum(axis=1)
    loglik = np.where(wild, -np.inf, loglik)
    score = np.einsum("rn,rnp->rp", event_weight, rows.x) - np.einsum("rn,rnp->rp", rows.term_weight, mean_x)
    hazard = rows.term_weight / denominator  # 0 off the event rows
    kept = 1.0 - rows.fraction
    cumulative_hazard = sums.up_to(hazard, hazard * kept)
    information = np.matmul(rows.x.transpose(0, 2, 1), rows.x * (weighted_risk * cumulative_hazard)[:, :, None])
    scaled = numerator * np.sqrt(rows.term_weight)[:, :, None] / denominator[:, :, None]
    information -= np.matmul(scaled.transpose(0, 2, 1), scaled)
    if not full:
        return loglik, score, information
    hazard_x = hazard[:, :, None] * mean_x
    cumulative_hazard_x = sums.up_to(hazard_x, hazard_x * kept[:, :, None])
    group_mean_x = sums.own_group(mean_x) / np.maximum(rows.death_count, 1)[:, :, None]
    residuals = (np.where(rows.event[:, :, None], rows.x - group_mean_x, 0.0)
                 - risk[:, :, None] * (rows.x * cumulative_hazard[:, :, None] - cumulative_hazard_x))
    return loglik, score, information, residuals


def _solve(information, score, deficient):
    """Newton steps ``I^-1 U`` (pseudo-inverse where ``deficient``), shape (R, p)."""
    step = np.zeros_like(score)
    regular = ~deficient
    if regular.any():
        try:
            step[regular] = np.linalg.solve(information[regular], score[regular][..., None])[..., 0]
        except np.linalg.LinAlgError:
            deficient = np.ones_like(deficient)
    if deficient.any():
        step[deficient] = (np.linalg.pinv(information[deficient], hermitian=True) @ score[deficient][..., None])[..., 0]
    return step


def _newton(rows: _Rows, active, deficient, scale, *, max_iter, tol):
    n_replicates, p = active.shape[0], rows.x.shape[2]
    beta = np.zeros((n_replicates, p))
    n_iter = np.zeros(n_replicates, np.int64)
    converged = np.zeros(n_replicates, bool)
    active = active.copy()
    loglik = np.zeros(n_replicates)
    score = np.zeros((n_replicates, p))
    information = np.zeros((n_replicates, p, p))
    idx = np.flatnonzero(active)
    if idx.size:
        loglik[idx], score[idx], information[idx] = _evaluate(rows.take(idx), beta[idx])
    initial_information = np.diagonal(information, axis1=1, axis2=2).copy()
    was_still = np.zeros(n_replicates, bool)
    working = None
    for _ in range(max_iter):
        if not active.any():
            break
        idx = np.flatnonzero(active)
        if working is None or working[0].size != idx.size:
            working = (idx, rows.take(idx))
        sub = working[1]
        step = _solve(information[idx], score[idx], deficient[idx])
        step = np.where(np.isfinite(step), step, 0.0)
        start, old = beta[idx], loglik[idx]
        trial = list(_evaluate(sub, start + step))
        for _ in range(MAX_HALVINGS):
            worse = np.flatnonzero(~(trial[0] >= old - 1e-12 * np.abs(old)))
            if not worse.size:
                break
            step[worse] /= 2.0  # halve (and re-evaluate) only the replicates that got worse
            values = _evaluate(sub.take(worse), start[worse] + step[worse])
            for part, value in zip(trial, values):
                part[worse] = value
        beta[idx] = start + step
        change = np.abs(trial[0] - old)
        loglik[idx], score[idx], information[idx] = trial
        n_iter[idx] += 1
        small_step = np.max(np.abs(step), axis=1) <= tol * np.maximum(1.0, np.max(np.abs(beta[idx]), axis=1))
        # The log-likelihood no longer moves (twice in a row) while the steps do not shrink:
        # some coefficient runs to infinity along a flat direction (R coxph stops here too,
        # with "Loglik converged before variable ...; coefficient may be infinite").
        still = change <= STALLED_LOGLIK * np.maximum(1.0, np.abs(old))
        stalled = still & was_still[idx]
        was_still[idx] = still
        escaped = np.abs(beta[idx, 0] / scale[idx, 0]) > MAX_ABS_LOG_HR
        done = small_step | stalled
        converged[idx] |= done & ~escaped
        active[idx[done | escaped]] = False
    diagonal = np.diagonal(information, axis1=1, axis2=2)
    with np.errstate(invalid="ignore"):
        flat = diagonal < FLAT_INFORMATION * initial_information
    # The treatment coefficient running to infinity: no finite maximum, not converged. An
    # adjuster's running away leaves the treatment estimate at its limit (as R reports it).
    converged &= ~flat[:, 0]
    return beta, converged, n_iter, flat[:, 1:].any(axis=1) & converged


def _cluster_cross_products(values, cluster):
    """sum over clusters g of s_g s_g' with s_g = sum of ``values`` (R, N, p) in g; (R, p, p)."""
    n_replicates, n_rows, p = values.shape
    order = np.argsort(cluster, axis=1, kind="stable")
    sorted_cluster = np.take_along_axis(cluster, order, axis=1)
    sorted_values = np.take_along_axis(values, order[:, :, None], axis=1)
    new = np.ones((n_replicates, n_rows), bool)
    new[:, 1:] = sorted_cluster[:, 1:] != sorted_cluster[:, :-1]
    starts = np.flatnonzero(new.ravel())
    sums = np.add.reduceat(sorted_values.reshape(-1, p), starts, axis=0)
    owner = starts // n_rows
    out = np.zeros((n_replicates, p, p))
    np.add.at(out, owner, sums[:, :, None] * sums[:, None, :])
    return out


def fit_cox_regression(time, event, treated, adjusters, *, mask=None, weights=None, strata=None, cluster=None,
                       ties: str = "efron", level: float = 0.95, max_iter: int = 50,
                       tol: float = 1e-9) -> CoxRegression:
    """Fit ``Surv(time, event) ~ treated + adjusters`` by maximum partial likelihood, per replicate.

    Parameters
    ----------
    time, event : array_like, shape (replicate, patient)
        Observed times (months) and event indicators.
    treated : array_like of bool, shape (replicate, patient)
        Treatment indicator (coefficient 0).
    adjusters : array_like of float, shape (replicate, patient, q)
        Further covariates (q may be 0). Values outside the cohort are ignored.
    mask, weights, strata : array_like, shape (replicate, patient), optional
        Cohort, non-negative case weights, stratum ids (as :func:`analysis.survival.cox.fit_cox`).
    cluster : array_like of int, shape (replicate, patient), optional
        Cluster ids for the robust covariance (negative = a cluster of one; pass the patient
        index for R's ``robust = TRUE`` without clusters).
    ties : {"efron", "breslow"}
    level : float
        Confidence level of the treatment CI.
    max_iter, tol
        Newton limit; convergence when max |step| <= tol * max(1, max |beta|) on the
        standardised scale.

    Returns
    -------
    CoxRegression
    """
    if ties not in _TIES:
        raise ValueError(f"unknown ties {ties!r}; choose one of {', '.join(_TIES)}")
    treated = np.asarray(treated, dtype=bool)
    adjusters = np.asarray(adjusters, dtype=float)
    if adjusters.ndim != 3 or adjusters.shape[:2] != treated.shape:
        raise ValueError(f"adjusters must be shaped (replicate, patient, q) like treated; got {adjusters.shape}")
    table = tabulate_risk_sets(time, event, treated, mask=mask, weights=weights, strata=strata)
    n_replicates, n_rows = table.time.shape
    covariates = np.concatenate([treated[:, :, None].astype(float), adjusters], axis=2)
    if covariates.shape[1] != n_rows:  # placeholder table of a batch without patients
        covariates = np.zeros((n_replicates, n_rows, covariates.shape[2]))
    x = np.take_along_axis(covariates, table.order[:, :, None], axis=1)
    in_cohort = table.weight > 0
    x = np.where(in_cohort[:, :, None], x, 0.0)
    total = table.weight.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.einsum("rn,rnp->rp", table.weight, x) / total[:, None]
        centred = np.where(in_cohort[:, :, None], x - mean[:, None, :], 0.0)
        sd = np.sqrt(np.einsum("rn,rnp->rp", table.weight, centred**2) / total[:, None])
    # A column constant in a replicate (up to the rounding of its mean) is exactly 0 there.
    varies = np.isfinite(sd) & (sd > 1e-12 * np.maximum(np.abs(mean), 1.0))
    scale = np.where(varies, sd, 1.0)
    x = centred * varies[:, None, :] / scale[:, None, :]

    if ties == "efron":
        tied = np.maximum(table.death_count, 1)
        fraction = np.maximum(table.death_rank, 0) / tied * table.event
        term_weight = (table.events_treated + table.events_control) / tied * table.event
    else:
        fraction = np.zeros(table.time.shape)
        term_weight = table.weight * table.event
    rows = _Rows(x=x, weight=table.weight, event=table.event, fraction=fraction, term_weight=term_weight,
                 tie_first=table.tie_first, tie_last=table.tie_last, stratum_first=table.stratum_first,
                 stratum_last=table.stratum_last, death_count=table.death_count)

    singular_values = np.linalg.svd(x, compute_uv=False)
    deficient = np.sum(singular_values > singular_values[:, :1] * max(n_rows, x.shape[2]) * 1e-10, axis=1) < x.shape[2]
    events_treated = (table.weight * table.event * table.treated).sum(axis=1)
    events_total = (table.weight * table.event).sum(axis=1)
    weight_treated = (table.weight * table.treated).sum(axis=1)
    code = np.full(n_replicates, status_codes.OK, np.int8)
    code[(events_treated <= 0) | (events_total - events_treated <= 0)] = status_codes.NO_EVENTS
    code[(weight_treated <= 0) | (total - weight_treated <= 0)] = status_codes.EMPTY_ARM

    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        beta, converged, n_iter, infinite_adjuster = _newton(rows, code == status_codes.OK, deficient, scale,
                                                             max_iter=max_iter, tol=tol)
    code[(code == status_codes.OK) & ~converged] = status_codes.NOT_CONVERGED
    ok = code == status_codes.OK
    p = x.shape[2]
    covariance = np.full((n_replicates, p, p), np.nan)
    robust = np.full((n_replicates, p, p), np.nan)
    loglik = np.full(n_replicates, np.nan)
    idx = np.flatnonzero(ok)
    if idx.size:
        sub = rows.take(idx)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            loglik[idx], _, information, residuals = _evaluate(sub, beta[idx], full=True)
        inverse = np.empty_like(information)
        eigenvalues = np.linalg.eigvalsh(information)
        regular = ~deficient[idx] & (eigenvalues[:, 0] > 1e-13 * np.abs(eigenvalues[:, -1]))
        if regular.any():
            inverse[regular] = np.linalg.inv(information[regular])
        if (~regular).any():  # aliased columns, or an adjuster run to infinity (information ~ 0)
            inverse[~regular] = np.linalg.pinv(information[~regular], hermitian=True)
        covariance[idx] = inverse
        if cluster is not None:
            ids = unique_negative_ids(as_batch("cluster", cluster, treated.shape, np.int64))
            contributions = sub.weight[:, :, None] * residuals
            if np.array_equal(ids, np.broadcast_to(np.arange(ids.shape[1]), ids.shape)):
                meat = np.matmul(contributions.transpose(0, 2, 1), contributions)  # every patient a cluster
            else:
                ids = np.take_along_axis(ids, table.order, axis=1)[idx] if ids.shape[1] == n_rows else np.zeros((idx.size, n_rows), np.int64)
                meat = _cluster_cross_products(contributions, ids)
            robust[idx] = inverse @ meat @ inverse
    unscale = 1.0 / scale
    coef = np.where(ok[:, None], beta * unscale, np.nan)
    covariance = covariance * unscale[:, :, None] * unscale[:, None, :]
    robust = robust * unscale[:, :, None] * unscale[:, None, :]
    bad_variance = ok & ~(covariance[:, 0, 0] > 0)
    code[bad_variance] = status_codes.NOT_CONVERGED
    ok &= ~bad_variance
    coef[~ok] = np.nan
    covariance[~ok] = np.nan
    robust[~ok] = np.nan
    treatment = _treatment_result(coef[:, 0], covariance[:, 0, 0], robust[:, 0, 0], cluster is not None,
                                  events_total, n_iter, ok, code, level)
    return CoxRegression(coef=coef, covariance=covariance, robust_covariance=robust, loglik=np.where(ok, loglik, np.nan),
                         n_events=events_total, n_iter=n_iter, rank_deficient=deficient,
                         infinite_adjuster=infinite_adjuster & ok, status=code,
                         treatment=treatment)


def _treatment_result(log_hr, variance, robust_variance, use_robust, n_events, n_iter, ok, code, level) -> CoxResult:
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt(variance)
        robust_se = np.sqrt(robust_variance)
        z_model, z_robust = log_hr / se, log_hr / robust_se
    p_model = 2.0 * special.ndtr(-np.abs(z_model))
    p_robust = 2.0 * special.ndtr(-np.abs(z_robust))
    chosen = robust_se if use_robust else se
    critical = float(special.ndtri(1.0 - (1.0 - level) / 2.0))
    return CoxResult(log_hr=log_hr, se=se, robust_se=robust_se, z=z_robust if use_robust else z_model,
                     p_value=p_robust if use_robust else p_model, p_value_model=p_model, p_value_robust=p_robust,
                     ci_lower=log_hr - critical * chosen, ci_upper=log_hr + critical * chosen, n_events=n_events,
                     n_iter=n_iter, converged=ok.copy(), status=code.copy())
