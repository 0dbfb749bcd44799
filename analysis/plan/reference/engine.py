"""The reference engine: the analysis plan on one cohort, stage by stage (see the package
docstring)."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from analysis import status as st
from analysis.cohort import CohortBatch
from analysis.plan.analyse import COHORTS, ENDPOINTS, CohortDetails, EndpointAnalysis, PlanResult
from analysis.plan.options import Plan, PlanOptionError
from analysis.propensity.model import PropensityFit
from analysis.survival.kaplan_meier import MedianEstimate
from analysis.plan.reference.comparisons import compare_adverse_events_one, balance_one, baseline_tests_one, compare_responses_one
from analysis.plan.reference.libraries import statsmodels_classes
from analysis.plan.reference.propensity import caliper_of, controls_from_pairs, fit_propensity_one, match_result, MATCHERS, design_columns
from analysis.plan.reference.survival import cox_one, km_median_one, logrank_one

__all__ = ["analyse_cohort_reference"]




def analyse_cohort_reference(batch_of_one: CohortBatch, plan: Plan, *, pairs=None,
                             rng: np.random.Generator | None = None, details: bool = False) -> PlanResult:
    """Run ``plan`` on one cohort with lifelines/statsmodels/scipy (the reference engine).

    Parameters
    ----------
    batch_of_one : CohortBatch
        One replicate (arrays shaped (1, patient[, ...])), e.g. ``batch.replicate(i)``.
    plan : Plan
        The analysis plan (:func:`analysis.plan.options.make_plan`).
    pairs : MatchResult or array_like of int, optional
        Matched sets to use instead of matching again: a :class:`MatchResult` of one replicate
        (e.g. the batched engine's matching sliced to this replicate) or its ``control_of``
        shaped (patient, ratio) or (1, patient, ratio); -1 = no control. Needed to compare the
        SPSS matchers' downstream analysis with the batched engine (their random draws
        differ). The PS model, its status and the caliper are still computed here.
    rng : numpy.random.Generator, optional
        Required when matching here with an SPSS matcher or ``order="random"``.
    details : bool
        Also compute the per-covariate balance, baseline tests, response, AE and survival
        tables (:class:`analysis.plan.analyse.CohortDetails`), as the batched engine's ``details``.

    Returns
    -------
    PlanResult
        Same fields and shapes as :func:`analysis.plan.analyse.analyse_cohorts` with one replicate:
        (1, cohort, endpoint), (1, cohort) and (1,) arrays; ``propensity`` and ``matching``
        with replicate dimension 1.

    Raises
    ------
    ValueError
        If the batch holds more than one replicate or ``pairs`` is badly shaped.
    PlanOptionError
        If a PS covariate is not in the cohort, or the plan asks for an estimator other than
        matching or an SE other than model/robust (the reference covers the paper's kind of
        analysis; the other estimators have their own per-cohort reference tests).
    ImportError
        If statsmodels is not installed.
    """
    statsmodels_classes()
    if plan.estimator != "matching":
        raise PlanOptionError("estimator", f"the reference engine runs the matching estimator only, not "
                                           f"{plan.estimator!r}; use the batched engine")
    if plan.cox_se not in ("model", "robust"):
        raise PlanOptionError("cox_se", f"the reference engine reports model and robust SEs only, not "
                                        f"{plan.cox_se!r}; use the batched engine")
    if batch_of_one.n_replicates != 1:
        raise ValueError(f"the reference engine analyses one cohort; got {batch_of_one.n_replicates} replicates"
                         " (use batch.replicate(i))")
    batch = batch_of_one
    names = plan.ps_covariates or batch.covariate_names
    missing = [n for n in names if n not in batch.covariate_names]
    if missing:
        raise PlanOptionError("ps_covariates", f"not among the cohort's covariates: {', '.join(missing)}")
    treated = batch.treated[0].astype(bool)
    n = batch.n_patients

    design, ps_columns = design_columns(batch, names)
    ps_fit = fit_propensity_one(design, treated, plan.ps_algorithm)
    distance = ps_fit.ps if plan.distance == "ps" else ps_fit.logit
    usable = np.isfinite(distance)
    width = caliper_of(distance, usable, plan)
    limit = math.inf if math.isnan(width) else width
    if pairs is not None:
        controls = controls_from_pairs(pairs, n)
    else:
        if plan.matcher not in MATCHERS:
            raise ValueError(f"unknown matching method {plan.matcher!r}; valid methods: {', '.join(MATCHERS)}")
        controls = MATCHERS[plan.matcher](distance, treated, usable, limit, plan.ratio, plan.replace, plan.order, rng)
    matching = match_result(controls, treated, width, plan.ratio)

    ps_failed = ps_fit.status != st.OK and not (plan.separation == "proceed" and ps_fit.status == st.SEPARATION)
    matched_status = ps_fit.status if ps_failed else int(matching.status[0])
    ps_status = ps_fit.status if ps_fit.status != st.OK else int(matching.status[0])
    weights = {"full": np.ones(n), "matched": matching.weight[0] if matched_status == st.OK else np.zeros(n)}
    cohort_status = {"full": st.OK, "matched": matched_status}
    ps_covariates = batch.covariates[0][:, [batch.covariate_names.index(c) for c in names]]
    ps_kinds = tuple(batch.covariate_kinds[batch.covariate_names.index(c)] for c in names)
    z = float(stats.norm.ppf(0.5 + plan.level / 2.0))

    rows: dict[str, list] = {}
    cohort_details = {}
    for cohort in COHORTS:
        weight = weights[cohort]
        failed = cohort_status[cohort] != st.OK
        pair_ids = matching.pair_id[0] if cohort == "matched" else None
        survival, endpoint_rows = {}, []
        for endpoint in ENDPOINTS:
            time = (batch.pfs_months if endpoint == "pfs" else batch.os_months)[0].astype(float)
            event = (batch.pfs_event if endpoint == "pfs" else batch.os_event)[0].astype(bool)
            analysis = _analyse_endpoint(time, event, treated, weight, pair_ids, plan)
            survival[endpoint] = analysis
            endpoint_rows.append(_endpoint_row(analysis, event, treated, weight, plan, z, cohort_status[cohort]))
        for name in endpoint_rows[0]:
            rows.setdefault(name, []).append([row[name] for row in endpoint_rows])

        responses = compare_responses_one(batch.best_response[0], treated, weight, plan.test_rule)
        balance = balance_one(ps_covariates, ps_kinds, treated, weight, plan.smd_denominator)
        per_cohort = {
            "n_treated": float(np.rint(weight[treated].sum())),
            "n_control": float(np.rint(weight[~treated].sum())),
            "max_abs_smd": balance.max_abs_smd[0],
            "smd": balance.smd[0],
            "p_orr": responses.orr_p_value[0],
            "p_dcr": responses.dcr_p_value[0],
            "orr_treated": responses.orr_rate[0, 0],
            "orr_control": responses.orr_rate[0, 1],
            "dcr_treated": responses.dcr_rate[0, 0],
            "dcr_control": responses.dcr_rate[0, 1],
        }
        for name, value in per_cohort.items():
            keep_value = name in ("n_treated", "n_control") or not failed
            rows.setdefault(name, []).append(value if keep_value else np.full_like(value, math.nan))
        if details:
            cohort_details[cohort] = CohortDetails(
                weights=weight[None],
                balance=balance_one(batch.covariates[0], batch.covariate_kinds, treated, weight, plan.smd_denominator),
                baseline_tests=baseline_tests_one(batch, weight, plan),
                responses=responses,
                adverse_events=compare_adverse_events_one(batch.ae_grade[0], treated, weight, plan.test_rule),
                survival=survival,
            )

    arrays = {name: np.asarray(values)[None] for name, values in rows.items()}
    arrays["status"] = arrays["status"].astype(np.int8)
    propensity = PropensityFit(
        coef=ps_fit.coef[None], ps=ps_fit.ps[None], logit=ps_fit.logit[None],
        converged=np.array([ps_fit.converged]), separated=np.array([ps_fit.separated]),
        rank_deficient=np.array([ps_fit.rank_deficient]), n_iter=np.array([ps_fit.n_iter]),
        deviance=np.array([ps_fit.deviance]), status=np.array([ps_fit.status], np.int8),
        algorithm=plan.ps_algorithm,
    )
    return PlanResult(plan=plan, **arrays, n_pairs=matching.n_pairs, ps_status=np.array([ps_status], np.int8),
                      propensity=propensity, matching=matching, ps_columns=ps_columns,
                      balance_covariates=tuple(names), details=cohort_details)


def _analyse_endpoint(time, event, treated, weight, pair_ids, plan: Plan) -> EndpointAnalysis:
    strata = pair_ids if (plan.stratify_pairs and pair_ids is not None) else None
    cluster = None
    if plan.cox_se == "robust":
        cluster = pair_ids if pair_ids is not None else np.arange(len(time))
    cox = cox_one(time, event, treated, weight, ties=plan.ties, cluster=cluster, strata=strata, level=plan.level)
    logrank = logrank_one(time, event, treated, weight, strata)
    medians = []
    for arm in (treated, ~treated):
        median, lower, upper, se, code = km_median_one(time, event, np.where(arm, weight, 0.0),
                                                    ci=plan.median_ci, level=plan.level, rule=plan.median_rule)
        medians.append(MedianEstimate(median=np.array([median]), lower=np.array([lower]), upper=np.array([upper]),
                                      se=np.array([se]), status=np.array([code], np.int8)))
    return EndpointAnalysis(cox, logrank, medians[0], medians[1])


def _endpoint_row(analysis: EndpointAnalysis, event, treated, weight, plan: Plan, z, cohort_status) -> dict:
    cox = analysis.cox
    robust = plan.cox_se == "robust"
    code = cohort_status if cohort_status != st.OK else int(cox.status[0])
    failed = code != st.OK
    se = float((cox.robust_se if robust else cox.se)[0])
    log_hr = float(cox.log_hr[0])
    p_value = float((cox.p_value_robust if robust else cox.p_value_model)[0])

    def unless(value, broken):
        return math.nan if broken else float(value)

    cohort_failed = cohort_status != st.OK
    return {
        "log_hr": unless(log_hr, failed),
        "se": unless(se, failed),
        "ci_lower": unless(log_hr - z * se, failed),
        "ci_upper": unless(log_hr + z * se, failed),
        "p_value": unless(p_value, failed),
        "p_logrank": unless(analysis.logrank.p_value[0], cohort_failed),
        "median_treated": unless(analysis.median_treated.median[0], cohort_failed),
        "median_control": unless(analysis.median_control.median[0], cohort_failed),
        "median_treated_lower": unless(analysis.median_treated.lower[0], cohort_failed),
        "median_treated_upper": unless(analysis.median_treated.upper[0], cohort_failed),
        "median_control_lower": unless(analysis.median_control.lower[0], cohort_failed),
        "median_control_upper": unless(analysis.median_control.upper[0], cohort_failed),
        "events_treated": float(np.rint(weight[treated & event].sum())),
        "events_control": float(np.rint(weight[~treated & event].sum())),
        "status": code,
    }
