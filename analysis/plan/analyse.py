"""The per-cohort analysis plan, run on a whole batch at once: PS → matching → balance →
survival, response and AE comparisons, on the full and the matched cohort.

``analyse_cohorts(batch, plan, rng=...)`` returns a :class:`PlanResult` whose arrays are the
variables of the replicate Dataset (``docs/results_schema.md``) and, with ``details=True``, the
per-covariate tables a single-cohort report prints. The plan options and presets are in
:mod:`analysis.plan.options`.

Separation of the PS model is recorded (``ps_status``) but, as R's ``glm`` and SPSS's LOGISTIC
REGRESSION do, the fitted scores are still used for matching: that is what a study does. The
scores are those of the iterations the plan's ``ps_algorithm`` imitates (R or SPSS), which
under separation decide the caliper and the pairs. With
``Plan.separation="fail"`` the matched analyses of separated replicates are NaN instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
from scipy import stats

from analysis import status as st
from analysis.propensity.balance import Balance, standardised_differences_by_cohort
from analysis.cohort import CohortBatch
from analysis.survival.cox import CoxResult, cox_from_table
from analysis.comparisons.categorical import categorical_test, contingency_table
from analysis.comparisons.continuous import continuous_test
from analysis.comparisons.group_tests import TestResult
from analysis.survival.kaplan_meier import MedianEstimate, kaplan_meier_from_table, km_median
from analysis.survival.logrank import LogrankResult, logrank_from_table
from analysis.survival.risk_sets import tabulate_risk_sets
from analysis.propensity.caliper import caliper_width
from analysis.propensity.matching import MatchResult, match_patients
from analysis.plan.options import PRESETS, Plan, PlanOptionError, make_plan
from analysis.propensity.design import design_matrix
from analysis.propensity.model import PropensityFit, fit_propensity
from analysis.comparisons.response import AdverseEventComparison, ResponseComparison, compare_adverse_events, compare_responses

COHORTS = ("full", "matched")
ENDPOINTS = ("pfs", "os")

__all__ = ["PRESETS", "Plan", "PlanOptionError", "PlanResult", "analyse_cohorts", "make_plan"]


@dataclass(frozen=True)
class EndpointAnalysis:
    """Survival analysis of one endpoint in one cohort (per replicate)."""

    cox: CoxResult
    logrank: LogrankResult
    median_treated: MedianEstimate
    median_control: MedianEstimate


@dataclass(frozen=True)
class CohortDetails:
    """Per-covariate and per-AE tables of one cohort (``details=True``); ``balance`` and
    ``baseline_tests`` cover every covariate of the batch, in its order."""

    weights: np.ndarray
    balance: Balance
    baseline_tests: Mapping[str, TestResult]
    responses: ResponseComparison
    adverse_events: AdverseEventComparison
    survival: Mapping[str, EndpointAnalysis]


@dataclass(frozen=True)
class PlanResult:
    """One plan on a batch of B replicates.

    Arrays shaped (replicate, cohort, endpoint) with cohort ∈ (full, matched) and endpoint ∈
    (pfs, os): ``log_hr``, ``se``, ``ci_lower``, ``ci_upper`` (log scale, Wald, from ``se``),
    ``p_value`` (Cox Wald), ``p_logrank``, ``median_treated``, ``median_control`` and their
    ``_lower``/``_upper`` CI limits (months), ``events_treated``, ``events_control``,
    ``status``. Shaped (replicate, cohort): ``n_treated``, ``n_control``, ``max_abs_smd``,
    ``p_orr``, ``p_dcr``, ``orr_treated``, ``orr_control``, ``dcr_treated``, ``dcr_control``.
    Shaped (replicate, cohort, covariate): ``smd``, the signed SMD (treated − control) of each
    PS covariate, in the order of ``balance_covariates``, with the plan's denominator
    (:mod:`analysis.propensity.balance`); NaN where the cohort's analysis failed, like
    ``max_abs_smd`` (which is its largest absolute value).
    Shaped (replicate,): ``n_pairs``, ``ps_status``. Plus the PS fit, the matching, the PS
    design column names and, with details, :class:`CohortDetails` per cohort.
    """

    plan: Plan
    log_hr: np.ndarray
    se: np.ndarray
    ci_lower: np.ndarray
    ci_upper: np.ndarray
    p_value: np.ndarray
    p_logrank: np.ndarray
    median_treated: np.ndarray
    median_control: np.ndarray
    median_treated_lower: np.ndarray
    median_treated_upper: np.ndarray
    median_control_lower: np.ndarray
    median_control_upper: np.ndarray
    events_treated: np.ndarray
    events_control: np.ndarray
    status: np.ndarray
    n_treated: np.ndarray
    n_control: np.ndarray
    max_abs_smd: np.ndarray
    smd: np.ndarray
    p_orr: np.ndarray
    p_dcr: np.ndarray
    orr_treated: np.ndarray
    orr_control: np.ndarray
    dcr_treated: np.ndarray
    dcr_control: np.ndarray
    n_pairs: np.ndarray
    ps_status: np.ndarray
    propensity: PropensityFit
    matching: MatchResult
    ps_columns: tuple[str, ...]
    balance_covariates: tuple[str, ...]
    details: Mapping[str, CohortDetails] = field(default_factory=dict)


def _ps_covariates(batch: CohortBatch, plan: Plan) -> tuple[np.ndarray, tuple[str, ...], tuple[str, ...]]:
    names = plan.ps_covariates or batch.covariate_names
    missing = [n for n in names if n not in batch.covariate_names]
    if missing:
        raise PlanOptionError("ps_covariates", f"not among the cohort's covariates: {', '.join(missing)}")
    index = [batch.covariate_names.index(n) for n in names]
    kinds = tuple(batch.covariate_kinds[i] for i in index)
    return np.take(batch.covariates, index, axis=2), tuple(names), kinds  # C-contiguous copy


def analyse_cohorts(batch: CohortBatch, plan: Plan, *, rng: np.random.Generator,
                    details: bool = False) -> PlanResult:
    """Run ``plan`` on every replicate of ``batch``, full and matched cohort.

    Parameters
    ----------
    batch : B cohorts of N patients.
    plan : the analysis plan (see :func:`analysis.plan.options.make_plan`).
    rng : drives the random parts (SPSS-style matching, random order).
    details : also compute the per-covariate baseline tests, balance and AE tables.

    Returns
    -------
    PlanResult
    """
    covariates, names, kinds = _ps_covariates(batch, plan)
    design = design_matrix(covariates, kinds, columns=names)
    propensity = fit_propensity(design.values, batch.treated, algorithm=plan.ps_algorithm)
    distance = propensity.ps if plan.distance == "ps" else propensity.logit
    usable = np.isfinite(distance)
    width = None
    if plan.caliper is not None:
        width = caliper_width(distance, usable, caliper=plan.caliper, scale=plan.caliper_scale)
    matching = match_patients(plan.matcher, distance, batch.treated, mask=usable, caliper=width,
                              ratio=plan.ratio, replace=plan.replace, order=plan.order, rng=rng)

    ps_failed = propensity.status != st.OK
    if plan.separation == "proceed":
        ps_failed &= propensity.status != st.SEPARATION
    matched_status = np.where(ps_failed, propensity.status, matching.status).astype(np.int8)
    ps_status = np.where(propensity.status != st.OK, propensity.status, matching.status).astype(np.int8)

    full_weights = np.ones(batch.treated.shape)
    matched_weights = np.where(matched_status[:, None] == st.OK, matching.weight, 0.0)
    cohort_weights = {"full": full_weights, "matched": matched_weights}
    cohort_status = {"full": np.zeros(batch.n_replicates, np.int8), "matched": matched_status}

    z = stats.norm.ppf(0.5 + plan.level / 2)
    weights_by_cohort = tuple(cohort_weights[cohort] for cohort in COHORTS)
    balances = dict(zip(COHORTS, standardised_differences_by_cohort(
        covariates, kinds, batch.treated, weights=weights_by_cohort, denominator=plan.smd_denominator,
        reference_weights=full_weights)))
    if details:
        detail_balances = dict(zip(COHORTS, standardised_differences_by_cohort(
            batch.covariates, batch.covariate_kinds, batch.treated, weights=weights_by_cohort,
            denominator=plan.smd_denominator, reference_weights=full_weights)))
    columns: dict[str, list] = {}
    cohort_details = {}
    for cohort in COHORTS:
        weights = cohort_weights[cohort]
        pairs = matching.pair_id if cohort == "matched" else None
        endpoint_rows = []
        survival = {}
        for endpoint in ENDPOINTS:
            time = batch.pfs_months if endpoint == "pfs" else batch.os_months
            event = batch.pfs_event if endpoint == "pfs" else batch.os_event
            analysis = _analyse_endpoint(time, event, batch.treated, weights, pairs, plan)
            survival[endpoint] = analysis
            endpoint_rows.append(_endpoint_columns(analysis, event, batch.treated, weights, plan, z,
                                                   cohort_status[cohort]))
        for name in endpoint_rows[0]:
            columns.setdefault(name, []).append(np.stack([row[name] for row in endpoint_rows], axis=-1))

        evaluable = weights * (batch.best_response >= 0)
        responses = compare_responses(batch.best_response, batch.treated, weights=evaluable, rule=plan.test_rule)
        balance = balances[cohort]
        failed = cohort_status[cohort] != st.OK
        per_cohort = {
            "n_treated": np.rint((weights * batch.treated).sum(axis=1)),
            "n_control": np.rint((weights * ~batch.treated).sum(axis=1)),
            "max_abs_smd": np.where(failed, np.nan, balance.max_abs_smd),
            "smd": np.where(failed[:, None], np.nan, balance.smd),
            "p_orr": np.where(failed, np.nan, responses.orr_p_value),
            "p_dcr": np.where(failed, np.nan, responses.dcr_p_value),
            "orr_treated": np.where(failed, np.nan, responses.orr_rate[:, 0]),
            "orr_control": np.where(failed, np.nan, responses.orr_rate[:, 1]),
            "dcr_treated": np.where(failed, np.nan, responses.dcr_rate[:, 0]),
            "dcr_control": np.where(failed, np.nan, responses.dcr_rate[:, 1]),
        }
        for name, value in per_cohort.items():
            columns.setdefault(name, []).append(value)
        if details:
            cohort_details[cohort] = CohortDetails(
                weights=weights,
                balance=detail_balances[cohort],
                baseline_tests=_baseline_tests(batch, weights, plan),
                responses=responses,
                adverse_events=compare_adverse_events(batch.ae_grade, batch.treated, weights=weights,
                                                      rule=plan.test_rule),
                survival=survival,
            )

    arrays = {name: np.stack(parts, axis=1) for name, parts in columns.items()}
    return PlanResult(plan=plan, **arrays, n_pairs=matching.n_pairs, ps_status=ps_status,
                      propensity=propensity, matching=matching, ps_columns=design.names,
                      balance_covariates=names, details=cohort_details)


def _analyse_endpoint(time, event, treated, weights, pairs, plan: Plan) -> EndpointAnalysis:
    """Cox, log-rank and both arms' medians of one endpoint from one risk-set table (two when
    the pair-stratified models need a stratified one: the Kaplan-Meier curves never are)."""
    mask = weights > 0
    stratified = plan.stratify_pairs and pairs is not None
    strata = pairs if stratified else None
    if plan.cox_se == "robust":
        cluster = pairs if pairs is not None else np.broadcast_to(np.arange(time.shape[1]), time.shape)
    else:
        cluster = None
    table = tabulate_risk_sets(time, event, treated, mask=mask, weights=weights, strata=strata)
    km_table = tabulate_risk_sets(time, event, treated, mask=mask, weights=weights) if stratified else table
    cox = cox_from_table(table, ties=plan.ties, cluster=cluster, level=plan.level)
    logrank = logrank_from_table(table)
    medians = [km_median(kaplan_meier_from_table(km_table, arm=arm), ci=plan.median_ci, level=plan.level,
                         median_rule=plan.median_rule) for arm in ("treated", "control")]
    return EndpointAnalysis(cox, logrank, *medians)


def _endpoint_columns(analysis: EndpointAnalysis, event, treated, weights, plan: Plan, z: float,
                      cohort_status) -> dict[str, np.ndarray]:
    cox = analysis.cox
    robust = plan.cox_se == "robust"
    se = cox.robust_se if robust else cox.se
    p_value = cox.p_value_robust if robust else cox.p_value_model
    code = np.where(cohort_status != st.OK, cohort_status, cox.status).astype(np.int8)
    failed = code != st.OK
    events = weights * event

    cohort_failed = cohort_status != st.OK

    def unless_failed(values, failure=failed):
        return np.where(failure, np.nan, values)

    medians = {"treated": analysis.median_treated, "control": analysis.median_control}
    columns = {
        "log_hr": unless_failed(cox.log_hr),
        "se": unless_failed(se),
        "ci_lower": unless_failed(cox.log_hr - z * se),
        "ci_upper": unless_failed(cox.log_hr + z * se),
        "p_value": unless_failed(p_value),
        "p_logrank": unless_failed(analysis.logrank.p_value, cohort_failed),
    }
    for arm, estimate in medians.items():
        columns[f"median_{arm}"] = unless_failed(estimate.median, cohort_failed)
        columns[f"median_{arm}_lower"] = unless_failed(estimate.lower, cohort_failed)
        columns[f"median_{arm}_upper"] = unless_failed(estimate.upper, cohort_failed)
    return columns | {
        "events_treated": np.rint((events * treated).sum(axis=1)),
        "events_control": np.rint((events * ~treated).sum(axis=1)),
        "status": code,
    }


def _baseline_tests(batch: CohortBatch, weights, plan: Plan) -> dict[str, TestResult]:
    """Every baseline covariate compared between arms as Table 1 does: Student's t (mean ±
    SD rows) or Mann–Whitney (median (IQR) rows) for continuous covariates, the plan's
    categorical rule for binary and categorical ones."""
    results = {}
    for j, (name, kind) in enumerate(zip(batch.covariate_names, batch.covariate_kinds)):
        values = batch.covariates[:, :, j]
        if kind == "continuous":
            rule = "mann_whitney" if name in plan.rank_test_covariates else "t"
            results[name] = continuous_test(values, batch.treated, weights=weights, rule=rule)
        else:
            n_levels = int(np.nanmax(values)) + 1 if kind == "categorical" else 2
            table = contingency_table(values.astype(int), batch.treated, n_levels=max(n_levels, 2), weights=weights)
            results[name] = categorical_test(table, rule=plan.test_rule)
    return results
