"""The adjusted analysis of the plan's second cohort slot for the estimators beyond matching,
batched over replicates.

====================  =========================================================  ============
estimator             analysis of the whole cohort                               estimand
====================  =========================================================  ============
``iptw``              Cox on treatment weighted by IPTW weights (ATE: 1/e,       ATE or ATT
                      1/(1 - e); ATT: 1, e/(1 - e)); Austin 2013, 2016
``overlap``           the same with overlap weights (1 - e, e); Li et al. 2018    ATO
``cox_adjusted``      Cox on treatment and the PS covariates (the PS model's      conditional
                      design columns)
``ps_adjusted``       Cox on treatment and the logit PS, linear or a restricted   conditional
                      cubic spline (``spline_knots`` knots); Rosenbaum & Rubin
                      1983, Austin 2013
``ps_stratified``     Cox on treatment stratified on PS quantile strata           conditional
                      (``ps_strata``, quintiles); Rosenbaum & Rubin 1984
====================  =========================================================  ============

Weights, the Cox fit and the SE follow the plan: ``cox_se = "model"`` (inverse information),
``"robust"`` (Lin-Wei sandwich with every patient a cluster of their own, R ``coxph(...,
weights =, robust = TRUE)``) or ``"bootstrap"`` (patients resampled and the whole analysis,
PS model included, redone: :mod:`analysis.plan.bootstrap`). The weighting estimators also give
weighted Kaplan-Meier medians with the infinitesimal-jackknife variance and the robust score
("weighted log-rank") test (:mod:`analysis.survival.weighted`), weighted balance and effective
sample sizes; ``ps_stratified`` gives the stratified log-rank test. Where an estimator has no
such companion (medians of the covariate- or PS-adjusted model) the value is NaN.

A PS model that failed (see ``Plan.separation``) fails the PS-based estimators of that
replicate, as it fails the matched analysis; ``cox_adjusted`` does not use the PS.

References
----------
Rosenbaum PR, Rubin DB (1983). Biometrika 70:41-55; (1984). J Am Stat Assoc 79:516-524.
Austin PC (2013). Stat Med 32:2837-2849. Austin PC (2016). Stat Med 35:5642-5655. Li F,
Morgan KL, Zaslavsky AM (2018). J Am Stat Assoc 113:390-400.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis import status as st
from analysis.plan.bootstrap import bootstrap_standard_errors
from analysis.plan.options import Plan, plan_estimand
from analysis.plan.variance import with_standard_error
from analysis.propensity.model import PropensityFit, fit_propensity
from analysis.propensity.ps_terms import quantile_strata, restricted_cubic_spline, spline_knots
from analysis.propensity.weighting import propensity_weights
from analysis.survival.cox import cox_from_table
from analysis.survival.cox_regression import fit_cox_regression
from analysis.survival.kaplan_meier import MedianEstimate, km_median
from analysis.survival.logrank import LogrankResult, logrank_from_table
from analysis.survival.risk_sets import tabulate_risk_sets
from analysis.survival.weighted import robust_kaplan_meier, robust_score_test

WEIGHTING = ("iptw", "overlap")


@dataclass(frozen=True)
class EstimatorInputs:
    """What the estimators read from a batch: the arms, each endpoint's (time, event) and the PS
    design columns (the PS model's covariates, also the adjusters of ``cox_adjusted``)."""

    treated: np.ndarray
    endpoints: tuple[tuple[np.ndarray, np.ndarray], ...]
    design: np.ndarray

    def take(self, rows) -> "EstimatorInputs":
        return EstimatorInputs(self.treated[rows], tuple((t[rows], e[rows]) for t, e in self.endpoints),
                               self.design[rows])


@dataclass(frozen=True)
class AdjustedFit:
    """The Cox fits of one estimator on (resampled) cohorts.

    Attributes
    ----------
    weights : ndarray of float, shape (rows, patient)
        Analysis weights: counts times the PS weights (weighting) or the counts (others);
        0 for every patient of a failed row.
    status : ndarray of int8, shape (rows,)
        The cohort's status (PS failure, undefined weights), OK otherwise.
    cox : tuple of CoxResult, one per endpoint
    tables : tuple of RiskSetTable or None, one per endpoint
        The risk-set tables of the treatment-only fits (weighting, stratified), for the
        log-rank tests and Kaplan-Meier curves; None for the regression fits.
    ess_treated, ess_control : ndarray of float, shape (rows,)
        Kish effective sample sizes of the weighted arms (the arm sizes without weights).
    """

    weights: np.ndarray
    status: np.ndarray
    cox: tuple
    tables: tuple
    ess_treated: np.ndarray
    ess_control: np.ndarray


def ps_failure(propensity: PropensityFit, plan: Plan) -> np.ndarray:
    """The PS status where it fails the PS-based analyses (separation only with
    ``separation = "fail"``), OK elsewhere; shape (replicate,)."""
    failed = propensity.status != st.OK
    if plan.separation == "proceed":
        failed &= propensity.status != st.SEPARATION
    return np.where(failed, propensity.status, st.OK).astype(np.int8)


def fit_adjusted(inputs: EstimatorInputs, plan: Plan, counts, *, propensity: PropensityFit | None = None,
                 robust: bool = False) -> AdjustedFit:
    """Run ``plan.estimator`` on cohorts whose patients carry frequency ``counts``.

    Parameters
    ----------
    inputs : EstimatorInputs
    plan : Plan
    counts : ndarray of float, shape (rows, patient)
        1 for the analysed cohort; bootstrap counts for a resample.
    propensity : PropensityFit, optional
        The PS fit of the cohort (fitted here with ``counts`` when omitted).
    robust : bool
        Also compute the robust SE, every patient a cluster of their own.
    """
    estimator = plan.estimator
    treated = inputs.treated
    n_rows, n_pat = treated.shape
    code = np.zeros(n_rows, np.int8)
    weights = np.asarray(counts, dtype=float)
    strata = adjusters = None
    if estimator != "cox_adjusted":
        if propensity is None:
            propensity = fit_propensity(inputs.design, treated, weights=counts, algorithm=plan.ps_algorithm)
        code = ps_failure(propensity, plan)
        usable = (code == st.OK)[:, None] & (weights > 0)
    if estimator in WEIGHTING:
        fitted = propensity_weights(propensity.ps, treated, estimand=plan_estimand(plan), mask=usable, counts=weights,
                                    stabilize=plan.stabilize, trim=plan.weight_trim)
        code = np.where(code != st.OK, code, fitted.status).astype(np.int8)
        weights = weights * fitted.weights
    elif estimator == "cox_adjusted":
        adjusters = inputs.design
    elif estimator == "ps_adjusted":
        logit = np.where(usable, propensity.logit, 0.0)
        if plan.ps_adjustment == "linear":
            adjusters = logit[:, :, None]
        else:
            knots = spline_knots(logit, weights * usable, plan.spline_knots)
            adjusters = np.nan_to_num(restricted_cubic_spline(logit, knots))
    else:  # ps_stratified
        strata = quantile_strata(np.where(usable, propensity.ps, 0.0), weights * usable, plan.ps_strata)
    weights = np.where((code == st.OK)[:, None], weights, 0.0)

    cluster = np.broadcast_to(np.arange(n_pat), (n_rows, n_pat)) if robust else None
    cox, tables = [], []
    for time, event in inputs.endpoints:
        if adjusters is None:
            table = tabulate_risk_sets(time, event, treated, weights=weights, strata=strata)
            cox.append(cox_from_table(table, ties=plan.ties, cluster=cluster, level=plan.level))
            tables.append(table)
        else:
            fit = fit_cox_regression(time, event, treated, adjusters, weights=weights, ties=plan.ties,
                                     cluster=cluster, level=plan.level)
            cox.append(fit.treatment)
            tables.append(None)
    arm_weight = weights * treated
    with np.errstate(invalid="ignore", divide="ignore"):
        ess_treated = arm_weight.sum(axis=1) ** 2 / (arm_weight**2 / np.where(counts > 0, counts, 1.0)).sum(axis=1)
        control_weight = weights - arm_weight
        ess_control = control_weight.sum(axis=1) ** 2 / (control_weight**2 / np.where(counts > 0, counts, 1.0)).sum(axis=1)
    return AdjustedFit(weights=weights, status=code, cox=tuple(cox), tables=tuple(tables),
                       ess_treated=ess_treated, ess_control=ess_control)


def adjusted_log_hrs(inputs: EstimatorInputs, plan: Plan, rows, counts) -> np.ndarray:
    """Log HR of every endpoint of resampled cohorts (the bootstrap's estimator), shape
    (rows, endpoint); NaN where the analysis fails."""
    fit = fit_adjusted(inputs.take(rows), plan, counts)
    ok = fit.status == st.OK
    return np.stack([np.where(ok & (cox.status == st.OK), cox.log_hr, np.nan) for cox in fit.cox], axis=1)


@dataclass(frozen=True)
class AdjustedAnalysis:
    """The adjusted cohort slot of a plan: per endpoint (Cox, log-rank, medians) and the fit."""

    fit: AdjustedFit
    cox: tuple
    logrank: tuple
    median_treated: tuple
    median_control: tuple
    bootstrap_used: np.ndarray | None


def _not_estimated_logrank(n_rows) -> LogrankResult:
    nan = np.full(n_rows, np.nan)
    return LogrankResult(statistic=nan, p_value=nan, observed_treated=nan, expected_treated=nan, variance=nan,
                         status=np.full(n_rows, st.UNDEFINED, np.int8))


def _not_estimated_median(n_rows) -> MedianEstimate:
    nan = np.full(n_rows, np.nan)
    return MedianEstimate(median=nan, lower=nan, upper=nan, se=nan, status=np.full(n_rows, st.UNDEFINED, np.int8))


def analyse_adjusted(inputs: EstimatorInputs, plan: Plan, propensity: PropensityFit, *,
                     rng: np.random.Generator) -> AdjustedAnalysis:
    """The plan's estimator on every replicate's whole cohort, with its companions (module docstring)."""
    n_rows = inputs.treated.shape[0]
    ones = np.ones(inputs.treated.shape)
    fit = fit_adjusted(inputs, plan, ones, propensity=propensity, robust=plan.cox_se == "robust")
    cox = list(fit.cox)
    bootstrap_used = None
    if plan.cox_se == "bootstrap":
        boot = bootstrap_standard_errors(lambda rows, counts: adjusted_log_hrs(inputs, plan, rows, counts),
                                         np.where(fit.status == st.OK, inputs.treated.shape[1], 0),
                                         n_estimates=len(cox), draws=plan.bootstrap_draws, rng=rng)
        cox = [with_standard_error(c, boot.se[:, e], level=plan.level) for e, c in enumerate(cox)]
        bootstrap_used = boot.n_used
    logrank, medians_t, medians_c = [], [], []
    for table in fit.tables:
        if plan.estimator in WEIGHTING:
            logrank.append(robust_score_test(table, ties=plan.ties))
            medians = [km_median(robust_kaplan_meier(table, arm=arm), ci=plan.median_ci, level=plan.level,
                                 median_rule=plan.median_rule) for arm in ("treated", "control")]
        elif plan.estimator == "ps_stratified":
            logrank.append(logrank_from_table(table))
            medians = [_not_estimated_median(n_rows)] * 2
        else:
            logrank.append(_not_estimated_logrank(n_rows))
            medians = [_not_estimated_median(n_rows)] * 2
        medians_t.append(medians[0])
        medians_c.append(medians[1])
    return AdjustedAnalysis(fit=fit, cox=tuple(cox), logrank=tuple(logrank), median_treated=tuple(medians_t),
                            median_control=tuple(medians_c), bootstrap_used=bootstrap_used)
