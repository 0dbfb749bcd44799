"""The per-cohort analysis plan, run on a whole batch at once: PS → matching → balance →
survival, response and AE comparisons, on the full and the matched cohort.

``analyse_cohorts(batch, plan, rng=...)`` returns a :class:`PlanResult` whose arrays are the
variables of the replicate Dataset (``docs/results_schema.md``) and, with ``details=True``, the
per-covariate tables a single-cohort report prints. The plan options and presets are in
:mod:`analysis.plan.options`.

Beyond matching, ``Plan.estimator`` selects weighting (IPTW, overlap) or a covariate-/PS-
adjusted or PS-stratified Cox model for the second cohort slot (:mod:`analysis.plan.adjusted`);
``Plan.cox_se`` adds bootstrap and Austin-Cafri SEs (:mod:`analysis.plan.variance`).

Separation of the PS model is recorded (``ps_status``) but, as R's ``glm`` and SPSS's LOGISTIC
REGRESSION do, the fitted scores are still used for matching: that is what a study does. The
scores are those of the iterations the plan's ``ps_algorithm`` imitates (R or SPSS), which
under separation decide the caliper and the pairs. With
``Plan.separation="fail"`` the matched analyses of separated replicates are NaN instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import partial
from typing import Mapping

import numpy as np
from scipy import special

from analysis import status as st
from analysis.propensity.balance import Balance, standardised_differences_by_cohort
from analysis.cohort import CohortBatch
from analysis.survival.cox import CoxResult, cox_from_table
from analysis.survival.endpoint import analyse_endpoint
from analysis.survival.endpoint_kernels import event_counts
from analysis.comparisons.categorical import categorical_test, contingency_table
from analysis.comparisons.continuous import continuous_test
from analysis.comparisons.group_tests import TestResult
from analysis.survival.kaplan_meier import MedianEstimate, km_median
from analysis.survival.logrank import LogrankResult, logrank_from_table
from analysis.survival.risk_sets import tabulate_risk_sets
from analysis.propensity.caliper import caliper_width
from analysis.propensity.matching import MatchResult, match_patients
from analysis.propensity.stacked_sets import austin_cafri_cox
from analysis.propensity.sample_sums import arm_totals
from analysis.propensity.weighting import effective_sample_sizes
from analysis.plan.adjusted import WEIGHTING, EstimatorInputs, analyse_adjusted
from analysis.plan.segments import SegmentStreams, match_by_segment, segments_allowed
from analysis.plan.options import PRESETS, Plan, PlanOptionError, make_plan, plan_estimand
from analysis.plan.variance import pairs_bootstrap, patients_bootstrap, with_standard_error
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

    The "matched" cohort slot is the plan's adjusted analysis: the matched sample for
    ``estimator = "matching"``, else the weighted or covariate-/PS-adjusted analysis of the
    whole cohort (:mod:`analysis.plan.adjusted`; ``n_pairs`` is -1 and ``matching`` empty then;
    which variables each estimator fills is tabulated in ``docs/results_schema.md``). Also:
    ``estimand`` (:func:`analysis.plan.options.plan_estimand`), ``ess_treated`` and
    ``ess_control`` (Kish effective sample sizes, shaped (replicate, cohort)) and
    ``bootstrap_used`` (draws with a finite estimate, (replicate, cohort, endpoint); None
    without ``cox_se = "bootstrap"``).
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
    estimand: str = "att"
    ess_treated: np.ndarray | None = None
    ess_control: np.ndarray | None = None
    bootstrap_used: np.ndarray | None = None


def _ps_covariates(batch: CohortBatch, plan: Plan) -> tuple[np.ndarray, tuple[str, ...], tuple[str, ...]]:
    names = plan.ps_covariates or batch.covariate_names
    missing = [n for n in names if n not in batch.covariate_names]
    if missing:
        raise PlanOptionError("ps_covariates", f"not among the cohort's covariates: {', '.join(missing)}")
    index = [batch.covariate_names.index(n) for n in names]
    kinds = tuple(batch.covariate_kinds[i] for i in index)
    return np.take(batch.covariates, index, axis=2), tuple(names), kinds  # C-contiguous copy


def analyse_cohorts(batch: CohortBatch, plan: Plan, *, rng: np.random.Generator | SegmentStreams,
                    details: bool = False) -> PlanResult:
    """Run ``plan`` on every replicate of ``batch``, full and matched cohort.

    Parameters
    ----------
    batch : B cohorts of N patients.
    plan : the analysis plan (see :func:`analysis.plan.options.make_plan`).
    rng : drives the random parts (SPSS-style matching, random order); or, for a batch of
        consecutive segments (several runner blocks analysed as one), each segment's own
        generator (:class:`analysis.plan.segments.SegmentStreams`; a plan whose only random
        part is the matching, :func:`analysis.plan.segments.segments_allowed`).
    details : also compute the per-covariate baseline tests, balance and AE tables.

    Returns
    -------
    PlanResult
    """
    if isinstance(rng, SegmentStreams):
        if not segments_allowed(plan) or sum(rng.sizes) != batch.n_replicates:
            raise ValueError("rng: segment streams need a plan whose only random part is the matching "
                             "and segments covering the batch; analyse each segment alone")
        match = partial(match_by_segment, partial(match_patients, plan.matcher), rng)
        segments = rng.sizes
    else:
        match = partial(match_patients, plan.matcher, rng=rng)
        segments = None
    covariates, names, kinds = _ps_covariates(batch, plan)
    design = design_matrix(covariates, kinds, columns=names, copy=False)  # covariates: our own copy, read only
    propensity = fit_propensity(design.values, batch.treated, algorithm=plan.ps_algorithm)
    endpoints = tuple(_endpoint_data(batch, endpoint) for endpoint in ENDPOINTS)
    full_weights = np.ones(batch.treated.shape)
    adjusted = None
    if plan.estimator == "matching":
        distance = propensity.ps if plan.distance == "ps" else propensity.logit
        usable = np.isfinite(distance)
        width = None
        if plan.caliper is not None:
            width = caliper_width(distance, usable, caliper=plan.caliper, scale=plan.caliper_scale)
        matching = match(distance, batch.treated, mask=usable, caliper=width,
                         ratio=plan.ratio, replace=plan.replace, order=plan.order)

        ps_failed = propensity.status != st.OK
        if plan.separation == "proceed":
            ps_failed &= propensity.status != st.SEPARATION
        matched_status = np.where(ps_failed, propensity.status, matching.status).astype(np.int8)
        ps_status = np.where(propensity.status != st.OK, propensity.status, matching.status).astype(np.int8)
        matched_weights = np.where(matched_status[:, None] == st.OK, matching.weight, 0.0)
        count_weights = matched_weights
    else:
        matching = _no_matching(batch.treated.shape)
        inputs = EstimatorInputs(batch.treated, endpoints, design.values)
        adjusted = analyse_adjusted(inputs, plan, propensity, rng=rng)
        matched_status, matched_weights = adjusted.fit.status, adjusted.fit.weights
        ps_status = propensity.status.astype(np.int8)
        count_weights = (matched_weights > 0).astype(float)  # patients, not weights, are counted
    treated = np.ascontiguousarray(batch.treated, dtype=bool)
    cohort_weights = {"full": full_weights, "matched": matched_weights}
    cohort_status = {"full": np.zeros(batch.n_replicates, np.int8), "matched": matched_status}
    cohort_counts = {"full": full_weights, "matched": count_weights}
    # Balance and responses of the adjusted slot: the matched or weighted sample; not defined
    # for the covariate-, PS-adjusted and stratified models.
    has_sample = plan.estimator == "matching" or plan.estimator in WEIGHTING

    z = float(special.ndtri(0.5 + plan.level / 2))  # stats.norm.ppf's value, without its ~0.1 ms of checks
    weights_by_cohort = tuple(cohort_weights[cohort] for cohort in COHORTS)
    balances = dict(zip(COHORTS, standardised_differences_by_cohort(
        covariates, kinds, batch.treated, weights=weights_by_cohort, denominator=plan.smd_denominator,
        reference_weights=full_weights)))
    if details:
        detail_balances = dict(zip(COHORTS, standardised_differences_by_cohort(
            batch.covariates, batch.covariate_kinds, batch.treated, weights=weights_by_cohort,
            denominator=plan.smd_denominator, reference_weights=full_weights)))
    columns: dict[str, np.ndarray] = {}  # (replicate, cohort[, endpoint or covariate]), filled per cohort
    evaluable = batch.best_response >= 0
    cohort_details = {}
    bootstrap_used = {}
    for c, cohort in enumerate(COHORTS):
        weights = cohort_weights[cohort]
        counts = cohort_counts[cohort]
        pairs = matching.pair_id if cohort == "matched" else None
        is_adjusted = cohort == "matched" and adjusted is not None
        survival = {}
        for index, endpoint in enumerate(ENDPOINTS):
            if is_adjusted:
                survival[endpoint] = EndpointAnalysis(adjusted.cox[index], adjusted.logrank[index],
                                                      adjusted.median_treated[index], adjusted.median_control[index])
            else:
                time, event = endpoints[index]
                survival[endpoint] = _analyse_endpoint(time, event, batch.treated, weights, pairs, plan, segments)
        if is_adjusted:
            bootstrap_used[cohort] = adjusted.bootstrap_used
        else:
            survival, bootstrap_used[cohort] = _replace_standard_errors(survival, cohort, endpoints, batch.treated,
                                                                        weights, matching, matched_status, plan, rng)
        endpoint_rows = [_endpoint_columns(survival[endpoint], endpoints[index][1], batch.treated, counts, plan, z,
                                           cohort_status[cohort]) for index, endpoint in enumerate(ENDPOINTS)]
        for name in endpoint_rows[0]:
            for e, row in enumerate(endpoint_rows):
                _column(columns, name, row[name], len(COHORTS), len(ENDPOINTS))[:, c, e] = row[name]

        responses = compare_responses(batch.best_response, batch.treated, weights=weights * evaluable,
                                      rule=plan.test_rule)
        balance = balances[cohort]
        failed = cohort_status[cohort] != st.OK
        no_sample = failed | (cohort == "matched" and not has_sample)
        # Tests of weighted counts are not valid for non-integer weights: rates only.
        no_test = no_sample | (cohort == "matched" and plan.estimator in WEIGHTING)
        heads = arm_totals(np.ascontiguousarray(counts, dtype=float), treated)  # (counts * treated).sum(1), ~treated
        per_cohort = {
            "n_treated": np.rint(heads[0]),
            "n_control": np.rint(heads[1]),
            "max_abs_smd": np.where(no_sample, np.nan, balance.max_abs_smd),
            "smd": np.where(no_sample[:, None], np.nan, balance.smd),
            "p_orr": np.where(no_test, np.nan, responses.orr_p_value),
            "p_dcr": np.where(no_test, np.nan, responses.dcr_p_value),
            "orr_treated": np.where(no_sample, np.nan, responses.orr_rate[:, 0]),
            "orr_control": np.where(no_sample, np.nan, responses.orr_rate[:, 1]),
            "dcr_treated": np.where(no_sample, np.nan, responses.dcr_rate[:, 0]),
            "dcr_control": np.where(no_sample, np.nan, responses.dcr_rate[:, 1]),
        }
        for name, value in per_cohort.items():
            _column(columns, name, value, len(COHORTS))[:, c] = value
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

    ess = {cohort: effective_sample_sizes(cohort_weights[cohort], batch.treated) for cohort in COHORTS}
    used = None
    if any(value is not None for value in bootstrap_used.values()):
        used = np.stack([bootstrap_used[cohort] for cohort in COHORTS], axis=1)
    return PlanResult(plan=plan, **columns, n_pairs=matching.n_pairs, ps_status=ps_status,
                      propensity=propensity, matching=matching, ps_columns=design.names,
                      balance_covariates=names, details=cohort_details, estimand=plan_estimand(plan),
                      ess_treated=np.stack([ess[c][0] for c in COHORTS], axis=1),
                      ess_control=np.stack([ess[c][1] for c in COHORTS], axis=1), bootstrap_used=used)


def _column(columns: dict, name: str, value: np.ndarray, n_cohorts: int, n_endpoints: int | None = None):
    """The result array of ``name``, allocated at its first part with ``value``'s
    dtype: shape (replicate, cohort, endpoint) for an endpoint's variable (``n_endpoints``),
    else (replicate, cohort) + ``value.shape[1:]``; what ``np.stack`` of the parts gave, written
    in place."""
    if name not in columns:
        shape = (value.shape[0], n_cohorts) + ((n_endpoints,) if n_endpoints is not None else value.shape[1:])
        columns[name] = np.empty(shape, dtype=value.dtype)
    return columns[name]


def _endpoint_data(batch: CohortBatch, endpoint: str):
    if endpoint == "pfs":
        return batch.pfs_months, batch.pfs_event
    return batch.os_months, batch.os_event


def _no_matching(shape) -> MatchResult:
    """The matching slot of a plan whose estimator does not match: nobody matched, n_pairs -1
    (not applicable; summaries read negative counts as missing)."""
    n_rep, n_pat = shape
    return MatchResult(pair_id=np.full(shape, -1, np.int32), weight=np.zeros(shape), matched=np.zeros(shape, bool),
                       n_pairs=np.full(n_rep, -1, np.int64), control_of=np.full((n_rep, n_pat, 1), -1, np.int32),
                       caliper=np.full(n_rep, np.nan), status=np.zeros(n_rep, np.int8))


def _replace_standard_errors(survival, cohort, endpoints, treated, weights, matching, matched_status, plan: Plan, rng):
    """The plan's bootstrap or Austin-Cafri SE in place of the fitted Cox results of a cohort
    (full cohort: patients bootstrap, robust SE for ``austin_cafri``; matched: pairs bootstrap
    or the Austin & Cafri fit on the stacked matched sets). Returns (survival, draws used)."""
    if plan.cox_se == "bootstrap":
        if cohort == "full":
            boot = patients_bootstrap(endpoints, treated, weights, plan, rng=rng)
        else:
            boot = pairs_bootstrap(endpoints, treated, matching, matched_status == st.OK, plan, rng=rng)
        return {endpoint: replace(analysis, cox=with_standard_error(analysis.cox, boot.se[:, index], level=plan.level))
                for index, (endpoint, analysis) in enumerate(survival.items())}, boot.n_used
    if plan.cox_se == "austin_cafri" and cohort == "matched":
        return {endpoint: replace(analysis, cox=austin_cafri_cox(*endpoints[index], treated, matching, ties=plan.ties,
                                                                 level=plan.level))
                for index, (endpoint, analysis) in enumerate(survival.items())}, None
    return survival, None


def _analyse_endpoint(time, event, treated, weights, pairs, plan: Plan, segments=None) -> EndpointAnalysis:
    """Cox, log-rank and both arms' medians of one endpoint: one compiled pass per replicate
    (:func:`analysis.survival.endpoint.analyse_endpoint`, the numbers of one risk-set table),
    or, for the pair-stratified models (never on ``segments``, the sizes of joined batches:
    :func:`analysis.plan.segments.segments_allowed`), a stratified table for the Cox model and log-rank test
    and one without strata for the Kaplan-Meier curves (which never are)."""
    if plan.cox_se in ("robust", "austin_cafri"):  # austin_cafri: robust in the full cohort
        cluster = pairs if pairs is not None else "patient"
    else:
        cluster = None
    if not (plan.stratify_pairs and pairs is not None):
        survival = analyse_endpoint(time, event, treated, weights=weights, cluster=cluster, ties=plan.ties,
                                    median_ci=plan.median_ci, median_rule=plan.median_rule, level=plan.level,
                                    segments=segments)
        return EndpointAnalysis(survival.cox, survival.logrank, survival.median_treated, survival.median_control)
    mask = weights > 0
    table = tabulate_risk_sets(time, event, treated, mask=mask, weights=weights, strata=pairs)
    km_table = tabulate_risk_sets(time, event, treated, mask=mask, weights=weights)
    cox = cox_from_table(table, ties=plan.ties, cluster=cluster, level=plan.level)
    logrank = logrank_from_table(table)
    medians = [km_median(km_table, arm=arm, ci=plan.median_ci, level=plan.level, median_rule=plan.median_rule)
               for arm in ("treated", "control")]
    return EndpointAnalysis(cox, logrank, *medians)


def _endpoint_columns(analysis: EndpointAnalysis, event, treated, weights, plan: Plan, z: float,
                      cohort_status) -> dict[str, np.ndarray]:
    """The replicate Dataset's variables of one endpoint in one cohort, shape (replicate,): the
    Cox estimates (NaN where the cohort or the fit failed), the log-rank p-value and medians
    (NaN where the cohort failed), the weighted event counts of each arm (``weights * event``
    summed as numpy sums it, compiled: :func:`analysis.survival.endpoint_kernels.event_counts`)
    and the status."""
    cox = analysis.cox
    robust = plan.cox_se != "model"  # robust, bootstrap and Austin-Cafri SEs are all in robust_se
    se = cox.robust_se if robust else cox.se
    p_value = cox.p_value_robust if robust else cox.p_value_model
    cohort_failed = cohort_status != st.OK
    code = np.where(cohort_failed, cohort_status, cox.status).astype(np.int8)
    failed = code != st.OK
    log_hr = np.where(failed, np.nan, cox.log_hr)
    se = np.where(failed, np.nan, se)
    columns = {
        "log_hr": log_hr,
        "se": se,
        "ci_lower": log_hr - z * se,
        "ci_upper": log_hr + z * se,
        "p_value": np.where(failed, np.nan, p_value),
        "p_logrank": np.where(cohort_failed, np.nan, analysis.logrank.p_value),
    }
    for arm, estimate in (("treated", analysis.median_treated), ("control", analysis.median_control)):
        columns[f"median_{arm}"] = np.where(cohort_failed, np.nan, estimate.median)
        columns[f"median_{arm}_lower"] = np.where(cohort_failed, np.nan, estimate.lower)
        columns[f"median_{arm}_upper"] = np.where(cohort_failed, np.nan, estimate.upper)
    events = event_counts(np.ascontiguousarray(weights, dtype=np.float64), np.ascontiguousarray(event, dtype=bool),
                          np.ascontiguousarray(treated, dtype=bool))
    columns["events_treated"], columns["events_control"] = np.rint(events)
    columns["status"] = code
    return columns


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
