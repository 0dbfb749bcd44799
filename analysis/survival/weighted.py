"""Survival statistics for non-integer (e.g. inverse-probability) weights, batched over
replicates: the robust score ("weighted log-rank") test and the infinitesimal-jackknife
variance of the Kaplan-Meier curve.

With case weights that are not frequencies, counts such as "weighted number at risk" are no
longer counts, and the hypergeometric variance of the log-rank test and Greenwood's variance
of the Kaplan-Meier estimate do not apply. Both are replaced by sandwich (infinitesimal
jackknife) variances built from each patient's influence, as R ``survival`` does by default
when weights are not integers:

* :func:`robust_score_test` is the score test of ``treated`` at beta = 0 in the weighted Cox
  model with the Lin-Wei robust variance of the score: ``U(0)^2 / sum_g (sum_{i in g} w_i
  L_i(0))^2`` with the score residuals L_i(0) (Efron- or Breslow-consistent), summed within
  clusters g (each patient a cluster unless given). R ``coxph(..., weights = w, robust =
  TRUE)$rscore`` ("Robust score test"); at beta = 0 its numerator is the weighted log-rank
  O - E. It is the weighted log-rank test of Xie & Liu (2005) with a sandwich variance.
* :func:`robust_kaplan_meier` is the Kaplan-Meier curve of one arm with Var(log S(t)) =
  sum_i (w_i dlog S(t) / dw_i)^2, R ``survfit(..., weights = w)`` with its default
  ``robust = TRUE`` for non-integer weights (``survfitkm.c``; R reports SE(S) = S sqrt(Var)).
  For patient i with time in column m_i, ``dlog S(t_k)/dw_i = C(min(k, m_i)) - delta_i
  [m_i <= k] / (n_{m_i} - d_{m_i})`` with the Greenwood sum ``C(k) = sum_{j <= k} d_j /
  (n_j (n_j - d_j))``, so the variance is a cumulative sum over the distinct times.

References
----------
Lin DY, Wei LJ (1989). The robust inference for the Cox proportional hazards model. J Am Stat
Assoc 84:1074-1078. Xie J, Liu C (2005). Adjusted Kaplan-Meier estimator and log-rank test
with inverse probability of treatment weighting for survival data. Stat Med 24:3089-3110.
Therneau TM, survival package (``coxph`` robust score test; ``survfitkm.c``, robust variance).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import special

from analysis import status as status_codes
from analysis.survival.cox import cluster_sum_of_squares, singleton_sum_of_squares
from analysis.survival.cox_terms import TIES, evaluate, partial_likelihood_terms, score_residuals
from analysis.survival.kaplan_meier import KaplanMeier, _arm_counts, kaplan_meier_from_table
from analysis.survival.logrank import LogrankResult
from analysis.survival.risk_sets import Packing, RiskSetTable, as_batch, cumulative_sums, unique_negative_ids


def robust_score_test(table: RiskSetTable, *, ties: str = "efron", cluster=None) -> LogrankResult:
    """Score test of the treatment at beta = 0 with the robust (sandwich) variance.

    Parameters
    ----------
    table : RiskSetTable
        From :func:`analysis.survival.risk_sets.tabulate_risk_sets` with the arm as
        ``treated`` and the analysis weights (and strata, if any).
    ties : {"efron", "breslow"}
        Ties method of the score and its residuals.
    cluster : array_like of int, shape (replicate, patient), optional
        Cluster ids in the patients' input order (negative = a cluster of one); default:
        every patient a cluster of their own (R ``robust = TRUE`` without ``cluster``).

    Returns
    -------
    LogrankResult
        ``observed_treated`` = weighted treated events, ``expected_treated`` = O - U(0),
        ``variance`` = the robust variance of U(0), ``statistic`` = U(0)^2 / variance (chi-square
        on 1 df). Status EMPTY_ARM, NO_EVENTS (no event), UNDEFINED (variance 0), else OK.
    """
    if ties not in TIES:
        raise ValueError(f"unknown ties {ties!r}; choose one of {', '.join(TIES)}")
    terms = partial_likelihood_terms(table, ties)
    n_replicates = table.time.shape[0]
    zero = np.zeros(n_replicates)
    _, score, _ = evaluate(terms, zero)
    contribution = np.where(table.weight > 0, table.weight * score_residuals(table, terms, zero), 0.0)
    if cluster is None:
        variance = singleton_sum_of_squares(contribution, table.order)
    else:
        ids = unique_negative_ids(as_batch("cluster", cluster, table.time.shape, np.int64))
        variance = cluster_sum_of_squares(contribution, np.take_along_axis(ids, table.order, axis=1))

    weight_treated = (table.weight * table.treated).sum(axis=1)
    weight_control = table.weight.sum(axis=1) - weight_treated
    events = (table.weight * table.event).sum(axis=1)
    code = np.full(n_replicates, status_codes.OK, np.int8)
    code[~(variance > 1e-300)] = status_codes.UNDEFINED
    code[events <= 0] = status_codes.NO_EVENTS
    code[(weight_treated <= 0) | (weight_control <= 0)] = status_codes.EMPTY_ARM
    ok = code == status_codes.OK
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = np.where(ok, score**2 / variance, np.nan)
    p_value = np.where(ok, special.chdtrc(1.0, np.where(ok, statistic, 0.0)), np.nan)
    return LogrankResult(statistic=statistic, p_value=p_value, observed_treated=terms.events_treated,
                         expected_treated=terms.events_treated - score, variance=variance, status=code)


def robust_kaplan_meier(table: RiskSetTable, *, arm: str = "control") -> KaplanMeier:
    """Kaplan-Meier curve of one arm with the infinitesimal-jackknife variance of log S(t).

    Parameters
    ----------
    table : RiskSetTable
        As for :func:`analysis.survival.kaplan_meier.kaplan_meier_from_table` (no strata).
    arm : {"treated", "control"}

    Returns
    -------
    KaplanMeier
        The curve of ``kaplan_meier_from_table(table, arm=arm)`` with ``greenwood_var_sum``
        replaced by the robust Var(log S(t)) (module docstring); ``inf`` from the time S
        reaches 0, as there. Every patient is a cluster of their own (R's default).
    """
    km = kaplan_meier_from_table(table, arm=arm)
    _, _, tie_weight = _arm_counts(table, arm)
    compact = Packing(table.is_tie_last & (tie_weight > 0))  # the columns of `km`
    in_arm = table.treated if arm == "treated" else ~table.treated
    squared = table.weight * table.weight * in_arm
    n_replicates, n_patients = table.time.shape
    row_offset = (np.arange(n_replicates, dtype=np.int64) * (n_patients + 1))[:, None]

    def group_sum(values):
        cumulative = cumulative_sums(values).ravel()
        return cumulative[table.tie_last + 1 + row_offset] - cumulative[table.tie_first + row_offset]

    squares_all = compact(group_sum(squared), 0.0)  # sum of w^2 of the arm at each time
    squares_events = compact(group_sum(squared * table.event), 0.0)

    n, d = km.n_at_risk, km.n_events
    with np.errstate(divide="ignore", invalid="ignore"):
        surviving = np.where(km.valid & (d > 0), n - d, 1.0)
        greenwood_step = np.where(km.valid & (d > 0), d / (n * surviving), 0.0)
        own_event = np.where(km.valid & (d > 0), 1.0 / surviving, 0.0)
    greenwood = np.cumsum(greenwood_step, axis=1)
    # Patients leaving at column j contribute w^2 (C(j) - delta e_j)^2 from then on; those
    # still at risk after column k contribute w^2 C(k)^2.
    total = squares_all.sum(axis=1, keepdims=True)
    still_at_risk = total - np.cumsum(squares_all, axis=1)
    with np.errstate(invalid="ignore"):  # inf * 0 from the time S reaches 0 (replaced below)
        leaving = (greenwood**2 * squares_all - 2.0 * greenwood * own_event * squares_events
                   + own_event**2 * squares_events)
        variance = greenwood**2 * np.maximum(still_at_risk, 0.0) + np.cumsum(leaving, axis=1)
    variance = np.where(np.isfinite(km.greenwood_var_sum), np.maximum(variance, 0.0), km.greenwood_var_sum)
    return replace(km, greenwood_var_sum=np.where(km.valid, variance, np.nan))
