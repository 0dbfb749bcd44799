"""The estimators as plan options: ``analyse_cohorts`` with each ``estimator`` gives the numbers of
its building blocks (each checked against lifelines/statsmodels/R in its own tests), the full
cohort is the same whatever the estimator, and the plan refuses option combinations that do
not make sense."""

from __future__ import annotations

import numpy as np
import pytest

from analysis import status
from analysis.plan.analyse import analyse_cohorts
from analysis.plan.options import PlanOptionError, make_plan, plan_estimand
from analysis.plan.reference import analyse_cohort_reference
from analysis.propensity.balance import standardised_differences
from analysis.propensity.design import design_matrix
from analysis.propensity.model import fit_propensity
from analysis.propensity.ps_terms import quantile_strata, restricted_cubic_spline, spline_knots
from analysis.propensity.weighting import propensity_weights
from analysis.survival import fit_cox, km_median, logrank_test, tabulate_risk_sets
from analysis.survival.cox_regression import fit_cox_regression
from analysis.survival.weighted import robust_kaplan_meier, robust_score_test
from tests.analysis.plan.synthetic_cohorts import synthetic_batch

ENDPOINTS = ("pfs", "os")


@pytest.fixture(scope="module")
def batch():
    return synthetic_batch(60, rng=np.random.default_rng(20240614), log_hr=-0.4, confounding=0.8, ties=True)


def endpoint(batch, name):
    return (batch.pfs_months, batch.pfs_event) if name == "pfs" else (batch.os_months, batch.os_event)


def ps_fit(batch):
    design = design_matrix(batch.covariates, batch.covariate_kinds, columns=batch.covariate_names)
    return design, fit_propensity(design.values, batch.treated)


def patients(batch):
    return np.broadcast_to(np.arange(batch.n_patients), batch.treated.shape)


def close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14, equal_nan=True)


@pytest.mark.parametrize("overrides", [
    {"estimator": "iptw"},
    {"estimator": "iptw", "estimand": "att"},
    {"estimator": "iptw", "stabilize": True, "weight_trim": 0.95},
    {"estimator": "overlap", "ties": "breslow", "cox_se": "model"},
])
def test_weighting_plan_equals_its_building_blocks(batch, overrides):
    plan = make_plan("recommended", overrides)
    result = analyse_cohorts(batch, plan, rng=np.random.default_rng(1))
    _, fit = ps_fit(batch)
    weights = propensity_weights(fit.ps, batch.treated, estimand=plan_estimand(plan), stabilize=plan.stabilize,
                                 trim=plan.weight_trim)
    w = weights.weights
    robust = plan.cox_se == "robust"
    for e, name in enumerate(ENDPOINTS):
        time, event = endpoint(batch, name)
        cox = fit_cox(time, event, batch.treated, weights=w, ties=plan.ties, cluster=patients(batch) if robust else None)
        close(result.log_hr[:, 1, e], cox.log_hr)
        close(result.se[:, 1, e], cox.robust_se if robust else cox.se)
        close(result.p_value[:, 1, e], cox.p_value)
        table = tabulate_risk_sets(time, event, batch.treated, weights=w)
        close(result.p_logrank[:, 1, e], robust_score_test(table, ties=plan.ties).p_value)
        for arm in ("treated", "control"):
            median = km_median(robust_kaplan_meier(table, arm=arm), ci=plan.median_ci, median_rule=plan.median_rule)
            close(getattr(result, f"median_{arm}")[:, 1, e], median.median)
            close(getattr(result, f"median_{arm}_upper")[:, 1, e], median.upper)
        assert np.all(result.events_treated[:, 1, e] == (event & batch.treated).sum(axis=1))
    balance = standardised_differences(batch.covariates, batch.covariate_kinds, batch.treated, weights=w,
                                       denominator=plan.smd_denominator, reference_weights=np.ones(w.shape))
    close(result.max_abs_smd[:, 1], balance.max_abs_smd)
    close(result.ess_treated[:, 1], weights.ess_treated)
    close(result.ess_control[:, 1], weights.ess_control)
    assert np.all(result.n_treated[:, 1] == batch.treated.sum(axis=1))
    assert np.all(np.isnan(result.p_orr[:, 1])) and np.all(np.isfinite(result.orr_treated[:, 1]))
    assert np.all(result.n_pairs == -1)
    assert result.estimand == plan_estimand(plan)


@pytest.mark.parametrize("overrides", [
    {"estimator": "cox_adjusted"},
    {"estimator": "ps_adjusted"},
    {"estimator": "ps_adjusted", "ps_adjustment": "spline", "spline_knots": 5, "ties": "breslow"},
])
def test_adjusted_cox_plans_equal_their_building_blocks(batch, overrides):
    plan = make_plan("recommended", overrides)
    result = analyse_cohorts(batch, plan, rng=np.random.default_rng(1))
    design, fit = ps_fit(batch)
    if plan.estimator == "cox_adjusted":
        adjusters = design.values
    elif plan.ps_adjustment == "linear":
        adjusters = fit.logit[:, :, None]
    else:
        adjusters = restricted_cubic_spline(fit.logit, spline_knots(fit.logit, np.ones(fit.logit.shape),
                                                                    plan.spline_knots))
    for e, name in enumerate(ENDPOINTS):
        time, event = endpoint(batch, name)
        cox = fit_cox_regression(time, event, batch.treated, adjusters, ties=plan.ties, cluster=patients(batch))
        ok = cox.status == status.OK
        assert ok.mean() > 0.9
        close(result.log_hr[:, 1, e], np.where(ok, cox.treatment.log_hr, np.nan))
        close(result.se[:, 1, e], np.where(ok, cox.treatment.robust_se, np.nan))
        assert np.all(np.isnan(result.p_logrank[:, 1, e])) and np.all(np.isnan(result.median_treated[:, 1, e]))
    assert np.all(np.isnan(result.max_abs_smd[:, 1])) and np.all(np.isnan(result.orr_treated[:, 1]))
    assert result.estimand == "conditional"


def test_ps_stratified_plan_equals_its_building_blocks(batch):
    plan = make_plan("paper", {"estimator": "ps_stratified", "ps_strata": 4})
    result = analyse_cohorts(batch, plan, rng=np.random.default_rng(1))
    _, fit = ps_fit(batch)
    strata = quantile_strata(fit.ps, np.ones(fit.ps.shape), 4)
    for e, name in enumerate(ENDPOINTS):
        time, event = endpoint(batch, name)
        cox = fit_cox(time, event, batch.treated, strata=strata, ties=plan.ties)
        close(result.log_hr[:, 1, e], cox.log_hr)
        close(result.se[:, 1, e], cox.se)
        close(result.p_logrank[:, 1, e], logrank_test(time, event, batch.treated, strata=strata).p_value)


def test_full_cohort_does_not_depend_on_the_estimator(batch):
    reference = analyse_cohorts(batch, make_plan("recommended"), rng=np.random.default_rng(1))
    for estimator in ("iptw", "overlap", "cox_adjusted", "ps_adjusted", "ps_stratified"):
        other = analyse_cohorts(batch, make_plan("recommended", {"estimator": estimator}), rng=np.random.default_rng(1))
        for name in ("log_hr", "se", "p_logrank", "median_treated", "status"):
            np.testing.assert_array_equal(getattr(other, name)[:, 0], getattr(reference, name)[:, 0])
        for name in ("n_treated", "max_abs_smd", "p_orr"):
            np.testing.assert_array_equal(getattr(other, name)[:, 0], getattr(reference, name)[:, 0])


def test_a_failed_ps_model_fails_the_ps_estimators_but_not_cox_adjusted(batch):
    broken = synthetic_batch(4, rng=np.random.default_rng(3))
    covariates = broken.covariates.copy()
    covariates[0, :, 0] = np.where(broken.treated[0], 5.0, -5.0)  # perfect separation in replicate 0
    from dataclasses import replace

    broken = replace(broken, covariates=covariates)
    for estimator in ("iptw", "ps_adjusted", "ps_stratified", "cox_adjusted"):
        plan = make_plan("recommended", {"estimator": estimator, "separation": "fail"})
        result = analyse_cohorts(broken, plan, rng=np.random.default_rng(1))
        assert result.ps_status[0] == status.SEPARATION
        expected = status.OK if estimator == "cox_adjusted" else status.SEPARATION
        assert result.status[0, 1, 0] in ((expected,) if expected == status.SEPARATION else (status.OK, status.NOT_CONVERGED))
        assert np.all(result.status[1:, 1, 0] == status.OK)


def test_matched_variance_options(batch):
    rng = np.random.default_rng(1)
    plan = make_plan("recommended", {"replace": True, "cox_se": "austin_cafri"})
    result = analyse_cohorts(batch, plan, rng=rng)
    from analysis.propensity.stacked_sets import austin_cafri_cox

    for e, name in enumerate(ENDPOINTS):
        time, event = endpoint(batch, name)
        cox = austin_cafri_cox(time, event, batch.treated, result.matching, ties=plan.ties)
        close(result.log_hr[:, 1, e], cox.log_hr)
        close(result.se[:, 1, e], cox.robust_se)
        # the full cohort reports the robust SE (Austin-Cafri needs matched sets)
        full = fit_cox(time, event, batch.treated, ties=plan.ties, cluster=patients(batch))
        close(result.se[:, 0, e], full.robust_se)
    optimal = analyse_cohorts(batch, make_plan("recommended", {"matcher": "optimal"}), rng=rng)
    assert np.all(optimal.n_pairs > 0) and np.all(optimal.status[:, 1] == status.OK)


@pytest.mark.parametrize("overrides, field", [
    ({"estimator": "overlap", "estimand": "ate"}, "estimand"),
    ({"estimator": "matching", "estimand": "ate"}, "estimand"),
    ({"stabilize": True}, "stabilize"),
    ({"estimator": "iptw", "estimand": "att", "stabilize": True}, "stabilize"),
    ({"weight_trim": 0.9}, "weight_trim"),
    ({"estimator": "iptw", "weight_trim": 1.2}, "weight_trim"),
    ({"estimator": "iptw", "cox_se": "austin_cafri"}, "cox_se"),
    ({"cox_se": "bootstrap", "stratify_pairs": True}, "cox_se"),
    ({"matcher": "optimal", "ratio": 2}, "matcher"),
    ({"estimator": "weighting"}, "estimator"),
    ({"spline_knots": 9}, "spline_knots"),
    ({"bootstrap_draws": 3}, "bootstrap_draws"),
    ({"ps_strata": 1}, "ps_strata"),
])
def test_plan_refuses_combinations_that_do_not_make_sense(overrides, field):
    with pytest.raises(PlanOptionError) as error:
        make_plan("recommended", overrides)
    assert error.value.field == field


def test_reference_engine_refuses_other_estimators(batch):
    for overrides, field in (({"estimator": "iptw"}, "estimator"), ({"cox_se": "bootstrap"}, "cox_se")):
        with pytest.raises(PlanOptionError) as error:
            analyse_cohort_reference(batch.replicate(0), make_plan("recommended", overrides))
        assert error.value.field == field
