"""The batched plan (analysis.plan.analyse) against the reference engine (analysis.plan.reference).

The reference runs the same plan on one cohort at a time with lifelines, statsmodels and scipy
(see its module docstring); the batched engine runs once on a whole batch. Random cohorts of
four kinds are compared under both presets and a few option variants:

* ``ties``: 30 vs 30 patients, times rounded to 0.5 month (many tied event times);
* ``small_arms``: 8 vs 15 patients, three PS covariates, rounded times;
* ``heavy_censoring``: 25 vs 35 patients, 70-90 % censored, rounded times;
* ``continuous``: 35 vs 65 patients (the paper's arms), continuous times.

Compared, per cohort, full and matched: Cox log-HR, SE (model or robust, as the plan says),
Wald CI and p, log-rank p (rtol 1e-6); KM medians and their CIs (atol 1e-10); status codes,
numbers of patients, events and pairs (exactly); max |SMD| (rtol 1e-9); ORR/DCR p-values and
rates (rtol 1e-10); PS coefficients and scores (rtol 1e-6 and 1e-7) and matchit_nn pairs
(exactly), also for separated PS models: the reference's statsmodels IRLS stops where the
plan's software stops (R glm or SPSS), as the batched engine does. Two exceptions, where the
reference is given the batched engine's matched sets (``pairs=``) and everything downstream is
compared: the SPSS matchers draw at random, and an R-style separated fit that drives a linear
predictor beyond |eta| = 30 meets R's clamped logit link, which statsmodels does not copy
(see ``clamped``; the batched engine's clamp is checked against R itself in
tests/analysis/propensity/test_r_glm.py).

Default run: 6 cohorts per (kind, preset) = 48 cohorts, 3 per option variant (12), 8
hand-made degenerate cohorts under 6 plans, 6 cohorts with the detail tables (about 45 s on a
shared 2-core machine, 10 s of it the R check). ``@pytest.mark.slow``: 50 per (kind, preset) =
200 cohorts per preset (400 in all) and 30 per option variant (about 4 min).
A ``needs_r`` test checks the reference's own Cox robust SEs and median CIs against R survival;
the reference's MatchIt walk is checked against tests/analysis/reference_matchit.py.
"""

from __future__ import annotations

import json
import math
import sys
import shutil
import subprocess
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from analysis import status as st
from analysis.cohort import CohortBatch
from analysis.propensity.matching import MatchResult
from analysis.plan.analyse import analyse_cohorts
from analysis.plan.options import make_plan
from analysis.plan.reference import analyse_cohort_reference
from analysis.plan.reference.propensity import match_nearest_one
from analysis.plan.reference.survival import cox_one, km_median_one
from tests.analysis.propensity.reference_matchit import matchit_nearest

NAMES = ("age", "size", "male", "hbv", "macro", "ecog")
KINDS = ("continuous", "continuous", "binary", "binary", "binary", "categorical")

#: kind -> (n_treated, n_control, censoring share of PFS, rounding of times in months, PS covariates)
COHORT_KINDS = {
    "ties": (30, 30, 0.3, 0.5, ()),
    "small_arms": (8, 15, 0.4, 0.5, ("age", "size", "hbv")),
    "heavy_censoring": (25, 35, 0.8, 0.5, ()),
    "continuous": (35, 65, 0.3, None, ()),
}
PRESET_NAMES = ("paper", "recommended")
#: Option variants on top of a preset (weights from matching with replacement, pair strata,
#: other matchers, distances and CI methods).
VARIANTS = {
    "recommended_replace_ratio2": ("recommended", {"replace": True, "ratio": 2}),
    "recommended_stratified": ("recommended", {"stratify_pairs": True}),
    "paper_stratified_robust": ("paper", {"stratify_pairs": True, "cox_se": "robust"}),
    "paper_v2_logit_loglog": ("paper", {"matcher": "spss_fuzzy_v2", "distance": "logit", "caliper": 0.2,
                                        "caliper_scale": "sd", "median_ci": "brookmeyer_crowley_loglog",
                                        "smd_denominator": "treated", "test_rule": "fisher"}),
}

#: Fields compared and how: "exact" (equal, NaN where NaN), or (rtol, atol).
SURVIVAL_FIELDS = {
    "log_hr": (1e-6, 1e-12), "se": (1e-6, 0.0), "ci_lower": (1e-6, 1e-9), "ci_upper": (1e-6, 1e-9),
    "p_value": (1e-6, 0.0), "p_logrank": (1e-6, 0.0),
    "median_treated": (0.0, 1e-10), "median_control": (0.0, 1e-10),
    "median_treated_lower": (0.0, 1e-10), "median_treated_upper": (0.0, 1e-10),
    "median_control_lower": (0.0, 1e-10), "median_control_upper": (0.0, 1e-10),
    "events_treated": "exact", "events_control": "exact", "status": "exact",
}
COHORT_FIELDS = {
    "n_treated": "exact", "n_control": "exact", "max_abs_smd": (1e-9, 1e-12), "smd": (1e-9, 1e-12),
    "p_orr": (1e-10, 0.0), "p_dcr": (1e-10, 0.0),
    "orr_treated": (1e-12, 0.0), "orr_control": (1e-12, 0.0),
    "dcr_treated": (1e-12, 0.0), "dcr_control": (1e-12, 0.0),
}
REPLICATE_FIELDS = {"n_pairs": "exact", "ps_status": "exact"}


# --------------------------------------------------------------------------- random cohorts
def random_batch(rng, n_replicates, n_treated, n_control, *, censoring, round_to):
    """Cohorts with confounded arms, PFS <= OS and exponential censoring of about
    ``censoring`` of the PFS times (more of the OS times); patient order shuffled."""
    n = n_treated + n_control
    treated = np.argsort(rng.random((n_replicates, n)), axis=1) < n_treated
    shift = np.where(treated, 1.0, 0.0)
    age = rng.normal(58.0 + 4.0 * shift, 9.0)
    size = np.exp(rng.normal(1.8 + 0.3 * shift, 0.5))
    male = (rng.random((n_replicates, n)) < 0.8 - 0.1 * shift).astype(float)
    hbv = (rng.random((n_replicates, n)) < 0.5 + 0.2 * shift).astype(float)
    macro = (rng.random((n_replicates, n)) < 0.3).astype(float)
    ecog = rng.choice(3, size=(n_replicates, n), p=[0.45, 0.45, 0.10]).astype(float)
    covariates = np.stack([age, size, male, hbv, macro, ecog], axis=2)
    log_hazard = 0.02 * (age - 58) + 0.3 * np.log(size) + 0.4 * macro + 0.3 * ecog + rng.normal(-0.4, 0.3) * treated
    pfs_hazard = 0.1 * np.exp(log_hazard)
    pfs = rng.exponential(1.0, (n_replicates, n)) / pfs_hazard
    os_ = pfs + rng.exponential(1.0, (n_replicates, n)) / (0.15 * np.exp(log_hazard))
    censor_hazard = np.median(pfs_hazard) * censoring / (1.0 - censoring)
    censor_time = rng.exponential(1.0, (n_replicates, n)) / censor_hazard

    def observe(true_time):
        time = np.minimum(true_time, censor_time)
        if round_to:
            time = np.maximum(round_to, np.round(time / round_to) * round_to)
        return time, true_time <= censor_time

    pfs_months, pfs_event = observe(pfs)
    os_months, os_event = observe(os_)
    os_months = np.maximum(os_months, pfs_months)
    return CohortBatch(
        treated=treated, covariates=covariates, covariate_names=NAMES, covariate_kinds=KINDS,
        entry_month=rng.uniform(0, 24, (n_replicates, n)),
        pfs_months=pfs_months, pfs_event=pfs_event, os_months=os_months, os_event=os_event,
        best_response=rng.choice(4, size=(n_replicates, n), p=[0.05, 0.15, 0.45, 0.35]).astype(np.int8),
        ae_grade=rng.choice(5, size=(n_replicates, n, 2), p=[0.5, 0.2, 0.15, 0.1, 0.05]).astype(np.int8),
        ae_names=("rash", "diarrhoea"),
        patient_id=np.broadcast_to(np.arange(1, n + 1), (n_replicates, n)).copy(),
    )


def one_replicate(matching: MatchResult, r: int) -> MatchResult:
    return MatchResult(**{name: getattr(matching, name)[r:r + 1] for name in MatchResult.__dataclass_fields__})


# --------------------------------------------------------------------------- comparison
def _assert_field(name, batched, reference, rule, where):
    batched, reference = np.asarray(batched, float), np.asarray(reference, float)
    same_nans = np.array_equal(np.isnan(batched), np.isnan(reference))
    assert same_nans, f"{where} {name}: NaN pattern {batched} vs {reference}"
    if rule == "exact":
        assert np.array_equal(batched, reference, equal_nan=True), f"{where} {name}: {batched} vs {reference}"
    else:
        rtol, atol = rule
        np.testing.assert_allclose(batched, reference, rtol=rtol, atol=atol, equal_nan=True,
                                   err_msg=f"{where} {name}")


def compare_replicate(result, reference, r, where, *, pairs_given):
    """Assert that replicate ``r`` of the batched result equals the reference result."""
    for fields in (SURVIVAL_FIELDS, COHORT_FIELDS, REPLICATE_FIELDS):
        for name, rule in fields.items():
            _assert_field(name, getattr(result, name)[r], getattr(reference, name)[0], rule, where)
    if not pairs_given:
        assert np.array_equal(result.matching.pair_id[r], reference.matching.pair_id[0]), f"{where}: pairs differ"
    np.testing.assert_array_equal(result.matching.weight[r], reference.matching.weight[0], err_msg=where)
    if reference.propensity.status[0] in (st.OK, st.SEPARATION) and not clamped(result, r):
        batched_coef = dict(zip(("(intercept)",) + result.ps_columns, result.propensity.coef[r]))
        reference_coef = dict(zip(("(intercept)",) + reference.ps_columns, reference.propensity.coef[0]))
        for column, value in batched_coef.items():
            # A categorical level absent from this cohort is an all-zero column of the batch's
            # design: its minimum-norm coefficient is 0, and the reference has no such column.
            expected = reference_coef.get(column, 0.0)
            np.testing.assert_allclose(value, expected, rtol=1e-6, atol=1e-9, err_msg=f"{where} PS coef {column}")
        np.testing.assert_allclose(result.propensity.ps[r], reference.propensity.ps[0], rtol=1e-7, atol=1e-12,
                                   err_msg=f"{where} PS")


def clamped(result, r):
    """A separated R-style fit that pushed some linear predictor beyond |eta| = 30, where R's
    logit link clamps its inverse and derivative and statsmodels clips differently: the two
    iterations then differ in the last digits (about 1e-6 relative), so such replicates are
    compared downstream of the batched engine's pairs and without their coefficients."""
    return (result.plan.ps_algorithm == "r_glm" and result.propensity.status[r] == st.SEPARATION
            and np.nanmax(np.abs(result.propensity.logit[r])) > 30)


def run_equivalence(kind, plan, n_cohorts, seed):
    n_treated, n_control, censoring, round_to, ps_covariates = COHORT_KINDS[kind]
    plan = make_plan(plan[0], plan[1], ps_covariates=ps_covariates) if isinstance(plan, tuple) else \
        make_plan(plan, ps_covariates=ps_covariates)
    rng = np.random.default_rng(seed)
    batch = random_batch(rng, n_cohorts, n_treated, n_control, censoring=censoring, round_to=round_to)
    result = analyse_cohorts(batch, plan, rng=np.random.default_rng(seed + 1))
    for r in range(n_cohorts):
        random_matcher = plan.matcher != "matchit_nn"
        pairs = one_replicate(result.matching, r) if (random_matcher or clamped(result, r)) else None
        reference = analyse_cohort_reference(batch.replicate(r), plan, pairs=pairs)
        compare_replicate(result, reference, r, f"{kind}/{plan.name} cohort {r}", pairs_given=pairs is not None)
    return result


def _seed(*parts):
    """A fixed seed per test case (stable across runs and Python versions)."""
    return zlib.crc32(json.dumps(parts).encode())


@pytest.mark.parametrize("preset", PRESET_NAMES)
@pytest.mark.parametrize("kind", list(COHORT_KINDS))
def test_plan_equals_reference(kind, preset):
    run_equivalence(kind, preset, 6, _seed(kind, preset, "default"))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_plan_variant_equals_reference(variant):
    result = run_equivalence("ties", VARIANTS[variant], 3, _seed(variant, "default"))
    if VARIANTS[variant][1].get("replace"):
        assert (result.matching.weight > 1).any(), "the replacement variant should reuse some control"


@pytest.mark.slow
@pytest.mark.parametrize("preset", PRESET_NAMES)
@pytest.mark.parametrize("kind", list(COHORT_KINDS))
def test_plan_equals_reference_many(kind, preset):
    run_equivalence(kind, preset, 50, _seed(kind, preset, "slow"))


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_plan_variant_equals_reference_many(variant):
    run_equivalence("heavy_censoring", VARIANTS[variant], 30, _seed(variant, "slow"))


# --------------------------------------------------------------------------- degenerate cohorts
def degenerate_batch():
    """Hand-made cohorts of 6 treated and 6 controls (names in ``DEGENERATE``)."""
    rng = np.random.default_rng(7)
    n_rep, n = len(DEGENERATE), 12
    batch = random_batch(rng, n_rep, 6, 6, censoring=0.3, round_to=0.5)
    treated = np.tile(np.arange(n) % 2 == 0, (n_rep, 1))
    covariates = batch.covariates.copy()
    covariates[:, :, 0] = np.tile(np.linspace(40, 70, n), (n_rep, 1))  # age interleaved between arms
    times = np.tile(np.arange(1.0, n + 1), (n_rep, 1))
    pfs_months, pfs_event = batch.pfs_months.copy(), batch.pfs_event.copy()
    for r, name in enumerate(DEGENERATE):
        if name == "all_censored":
            pfs_event[r] = False
        elif name == "no_treated_events":
            pfs_event[r] = np.where(treated[r], False, True)
        elif name == "treated_die_last":  # monotone likelihood: no control at risk at treated events
            pfs_months[r] = np.where(treated[r], 20.0 + times[r], times[r])
            pfs_event[r] = True
        elif name == "arms_never_overlap":  # controls all die after the treated left: variance 0
            pfs_months[r] = np.where(treated[r], times[r], 30.0 + times[r])
            pfs_event[r] = ~treated[r]
        elif name == "separated":
            covariates[r, :, 0] = np.where(treated[r], 70.0, 40.0) + times[r]
        elif name == "no_treated":
            treated[r] = False
        elif name == "one_event_each":
            pfs_event[r] = False
            pfs_event[r, :2] = True
    os_months = np.maximum(batch.os_months, pfs_months)
    return CohortBatch(
        treated=treated, covariates=covariates, covariate_names=NAMES, covariate_kinds=KINDS,
        entry_month=batch.entry_month, pfs_months=pfs_months, pfs_event=pfs_event,
        os_months=os_months, os_event=batch.os_event, best_response=batch.best_response,
        ae_grade=batch.ae_grade, ae_names=batch.ae_names, patient_id=batch.patient_id,
    )


DEGENERATE = ("all_censored", "no_treated_events", "treated_die_last", "arms_never_overlap", "separated",
              "no_treated", "one_event_each", "ordinary")


@pytest.mark.parametrize("preset", PRESET_NAMES)
@pytest.mark.parametrize("overrides", [{}, {"caliper": 1e-12}, {"separation": "fail"}], ids=["plain", "tiny_caliper",
                                                                                              "separation_fail"])
def test_degenerate_cohorts_same_status(preset, overrides):
    batch = degenerate_batch()
    plan = make_plan(preset, overrides, ps_covariates=("age", "size"))
    result = analyse_cohorts(batch, plan, rng=np.random.default_rng(3))
    for r, name in enumerate(DEGENERATE):
        pairs = one_replicate(result.matching, r) if (plan.matcher != "matchit_nn" or clamped(result, r)) else None
        reference = analyse_cohort_reference(batch.replicate(r), plan, pairs=pairs)
        compare_replicate(result, reference, r, f"degenerate {name}/{preset}/{overrides}", pairs_given=pairs is not None)
    pfs = 0
    full, matched = 0, 1
    expected_full = {"all_censored": st.NO_EVENTS, "no_treated_events": st.NO_EVENTS,
                     "treated_die_last": st.NOT_CONVERGED, "no_treated": st.EMPTY_ARM}
    for name, code in expected_full.items():
        assert result.status[DEGENERATE.index(name), full, pfs] == code, name
    assert result.ps_status[DEGENERATE.index("separated")] == st.SEPARATION
    assert result.ps_status[DEGENERATE.index("no_treated")] == st.EMPTY_ARM
    assert math.isnan(result.p_logrank[DEGENERATE.index("arms_never_overlap"), full, pfs])
    if "caliper" in overrides:
        assert (result.status[DEGENERATE.index("ordinary"), matched] == st.NO_MATCHES).all()
    if "separation" in overrides:
        assert (result.status[DEGENERATE.index("separated"), matched] == st.SEPARATION).all()


# --------------------------------------------------------------------------- details
@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_details_equal_reference(preset):
    """Per-covariate SMDs, baseline tests, AE tests and both Cox SEs of the detail tables."""
    n_cohorts = 3
    rng = np.random.default_rng(_seed("details", preset))
    batch = random_batch(rng, n_cohorts, 30, 30, censoring=0.3, round_to=0.5)
    plan = make_plan(preset, rank_test_covariates=("size",))
    result = analyse_cohorts(batch, plan, rng=np.random.default_rng(1), details=True)
    for r in range(n_cohorts):
        reference = analyse_cohort_reference(batch.replicate(r), plan, pairs=one_replicate(result.matching, r),
                                             details=True)
        for cohort in ("full", "matched"):
            b, f = result.details[cohort], reference.details[cohort]
            where = f"details {preset} {cohort} cohort {r}"
            np.testing.assert_allclose(b.balance.smd[r], f.balance.smd[0], rtol=1e-9, atol=1e-12, err_msg=where)
            np.testing.assert_allclose(b.balance.variance_ratio[r], f.balance.variance_ratio[0], rtol=1e-9,
                                       err_msg=where)
            for name, test in b.baseline_tests.items():
                other = f.baseline_tests[name]
                assert test.test_used[r] == other.test_used[0], f"{where} {name}"
                np.testing.assert_allclose(test.p_value[r], other.p_value[0], rtol=1e-9, err_msg=f"{where} {name}")
                np.testing.assert_allclose(test.statistic[r], other.statistic[0], rtol=1e-9,
                                           err_msg=f"{where} {name}")
            for field in ("any_grade_p_value", "grade3_4_p_value", "any_grade_rate", "grade3_4_rate"):
                np.testing.assert_allclose(getattr(b.adverse_events, field)[r], getattr(f.adverse_events, field)[0],
                                           rtol=1e-10, err_msg=f"{where} {field}")
            for field in ("any_grade_test_used", "grade3_4_test_used"):
                np.testing.assert_array_equal(getattr(b.adverse_events, field)[r], getattr(f.adverse_events, field)[0])
            for endpoint in ("pfs", "os"):
                for field in ("se", "robust_se", "p_value_model", "p_value_robust"):
                    np.testing.assert_allclose(getattr(b.survival[endpoint].cox, field)[r],
                                               getattr(f.survival[endpoint].cox, field)[0], rtol=1e-6,
                                               err_msg=f"{where} {endpoint} {field}")
                for field in ("observed_treated", "expected_treated", "variance", "statistic"):
                    np.testing.assert_allclose(getattr(b.survival[endpoint].logrank, field)[r],
                                               getattr(f.survival[endpoint].logrank, field)[0], rtol=1e-9,
                                               err_msg=f"{where} {endpoint} {field}")
                for arm in ("median_treated", "median_control"):
                    np.testing.assert_allclose(getattr(b.survival[endpoint], arm).se[r],
                                               getattr(f.survival[endpoint], arm).se[0], rtol=1e-9,
                                               err_msg=f"{where} {endpoint} {arm} se")


def test_reference_rejects_a_batch_of_many():
    batch = random_batch(np.random.default_rng(0), 2, 5, 5, censoring=0.3, round_to=None)
    with pytest.raises(ValueError, match="one cohort"):
        analyse_cohort_reference(batch, make_plan("recommended"))


def test_reference_needs_rng_for_spss_matching():
    batch = random_batch(np.random.default_rng(0), 1, 5, 8, censoring=0.3, round_to=None)
    with pytest.raises(TypeError, match="rng"):
        analyse_cohort_reference(batch, make_plan("paper"))
    result = analyse_cohort_reference(batch, make_plan("paper"), rng=np.random.default_rng(1))
    controls = result.matching.control_of[0][result.matching.control_of[0] >= 0]
    ps = result.propensity.ps[0]
    treated_index = np.nonzero((result.matching.control_of[0] >= 0).any(axis=1))[0]
    assert len(set(controls)) == len(controls)
    assert np.all(np.abs(ps[treated_index] - ps[result.matching.control_of[0][treated_index, 0]]) <= 0.05)


# --------------------------------------------------------------------------- the reference's own parts
def test_reference_median_rules_by_hand():
    """S(t) = 1 until 3.5, where 1 of 2 at risk dies (S = 0.5), then flat to the last time 6.5:
    the first time with S <= 0.5 is 3.5; R's midpoint rule gives (3.5 + 6.5) / 2 = 5."""
    time = np.array([0.5, 0.5, 1.0, 2.0, 3.5, 6.5])
    event = np.array([False, False, False, False, True, False])
    weight = np.ones(6)
    first = km_median_one(time, event, weight, ci="brookmeyer_crowley_log", level=0.95, rule="first")
    midpoint = km_median_one(time, event, weight, ci="brookmeyer_crowley_log", level=0.95, rule="midpoint")
    assert first[0] == 3.5 and midpoint[0] == 5.0
    # Lower log band at 3.5: 0.5 exp(-1.96 sqrt(1 / (2 * 1))) < 0.5, so the lower limit is 3.5;
    # the upper band never falls to 0.5: not reached.
    assert midpoint[1] == 3.5 and math.isnan(midpoint[2])
    # Two events at 2 of 4 at risk: S = 0.5 from 2 on, below it (0.25) from 5: midpoint 3.5.
    time = np.array([2.0, 2.0, 5.0, 5.0])
    event = np.array([True, True, False, True])
    median = km_median_one(time, event, np.ones(4), ci="spss_symmetric", level=0.95, rule="midpoint")[0]
    assert median == 3.5


def test_reference_matching_equals_matchit_oracle():
    """The reference's MatchIt walk against the test oracle on cohorts with exact ties and
    gaps equal to the caliper (distances on a 1/8 grid), 1:1 and 1:2, with and without
    replacement."""
    rng = np.random.default_rng(11)
    for case in range(150):
        n = int(rng.integers(4, 30))
        distance = (rng.integers(0, 9, n) / 8.0) if case % 2 else rng.random(n)
        treated = rng.random(n) < rng.uniform(0.2, 0.6)
        usable = rng.random(n) < 0.95
        caliper = [None, 0.125, 0.25][case % 3]
        ratio, replace = int(rng.integers(1, 3)), bool(rng.integers(0, 2))
        limit = math.inf if caliper is None else caliper
        got = match_nearest_one(list(distance), list(treated), list(usable), limit, ratio, replace, "largest", None)
        want = matchit_nearest(list(distance), list(treated), list(usable), caliper=caliper, ratio=ratio,
                               replace=replace)["controls"]
        assert got == want, case


def test_reference_says_how_to_install_statsmodels(monkeypatch):
    for name in [m for m in sys.modules if m == "statsmodels" or m.startswith("statsmodels.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "statsmodels", None)
    batch = random_batch(np.random.default_rng(0), 1, 5, 5, censoring=0.3, round_to=None)
    with pytest.raises(ImportError, match="pip install statsmodels"):
        analyse_cohort_reference(batch, make_plan("recommended"))


# --------------------------------------------------------------------------- third route: R
R_SCRIPT = r"""
suppressWarnings(suppressMessages(library(survival)))
d <- read.csv(commandArgs(trailingOnly = TRUE)[1])
ctl <- coxph.control(eps = 1e-12, toler.chol = 1e-14, iter.max = 100)
est <- function(f) c(unname(coef(f)), sqrt(f$naive.var[1, 1]), sqrt(f$var[1, 1]))
q <- function(s, arm, ct) {
  r <- quantile(survfit(Surv(time, event) ~ 1, data = s[s$treated == arm, ], conf.type = ct), 0.5)
  c(unname(r$quantile), unname(r$lower), unname(r$upper))
}
out <- list()
for (k in sort(unique(d$case))) {
  s <- d[d$case == k, ]
  suppressWarnings(out[[length(out) + 1]] <- list(
    efron = est(coxph(Surv(time, event) ~ treated, data = s, cluster = pair, ties = "efron", control = ctl)),
    breslow = est(coxph(Surv(time, event) ~ treated, data = s, cluster = pair, ties = "breslow", control = ctl)),
    efron_strata = est(coxph(Surv(time, event) ~ treated + strata(pair), data = s, cluster = pair,
                             ties = "efron", control = ctl)),
    breslow_strata = est(coxph(Surv(time, event) ~ treated + strata(pair), data = s, cluster = pair,
                               ties = "breslow", control = ctl)),
    efron_weighted = est(coxph(Surv(time, event) ~ treated, data = s, cluster = pair, weights = weight,
                               ties = "efron", control = ctl)),
    breslow_weighted = est(coxph(Surv(time, event) ~ treated, data = s, cluster = pair, weights = weight,
                                 ties = "breslow", control = ctl)),
    log = c(q(s, 1, "log"), q(s, 0, "log")), loglog = c(q(s, 1, "log-log"), q(s, 0, "log-log"))))
}
cat(jsonlite::toJSON(out, digits = NA, na = "null"))
"""


def _r_available():
    if shutil.which("Rscript") is None:
        return False
    check = subprocess.run(["Rscript", "-e", "library(survival); library(jsonlite)"], capture_output=True)
    return check.returncode == 0


@pytest.mark.needs_r
def test_reference_cox_and_medians_equal_r():
    """The reference's own formulas (Efron-consistent score residuals, PHReg's residuals with
    repeated rows, median band inversion) against R survival: coxph(cluster=, weights=,
    strata()) coefficient, naive and robust SE; quantile.survfit with log and log-log bands."""
    if not _r_available():
        pytest.skip("Rscript with the survival and jsonlite packages is not installed")
    rng = np.random.default_rng(20240611)
    cases = []
    for case in range(8):
        n_pairs = int(rng.integers(6, 25))
        treated = np.tile([1, 0], n_pairs).astype(bool)
        pair = np.repeat(np.arange(n_pairs), 2)
        hazard = 0.1 * np.exp(np.where(treated, rng.normal(-0.3, 0.3), 0.0) + rng.normal(0, 0.3, n_pairs)[pair])
        true_time = rng.exponential(1.0, 2 * n_pairs) / hazard
        censor_time = rng.exponential(1.0, 2 * n_pairs) / (0.1 * rng.uniform(0.1, 2.0))
        time = np.maximum(0.5, np.round(np.minimum(true_time, censor_time) * 2) / 2)
        event = true_time <= censor_time
        weight = rng.integers(1, 4, 2 * n_pairs).astype(float)
        cases.append((time, event, treated, pair, weight))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cohorts.csv"
        rows = ["case,time,event,treated,pair,weight"]
        for k, (time, event, treated, pair, weight) in enumerate(cases):
            rows += [f"{k},{float(t)!r},{int(e)},{int(x)},{p},{w:g}"
                     for t, e, x, p, w in zip(time, event, treated, pair, weight)]
        path.write_text("\n".join(rows) + "\n")
        script = Path(folder) / "golden.R"
        script.write_text(R_SCRIPT)
        completed = subprocess.run(["Rscript", str(script), str(path)], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    golden = json.loads(completed.stdout)
    for (time, event, treated, pair, weight), expected in zip(cases, golden):
        ones = np.ones(len(time))
        fits = {
            "efron": cox_one(time, event, treated, ones, ties="efron", cluster=pair, strata=None, level=0.95),
            "breslow": cox_one(time, event, treated, ones, ties="breslow", cluster=pair, strata=None, level=0.95),
            "efron_strata": cox_one(time, event, treated, ones, ties="efron", cluster=pair, strata=pair, level=0.95),
            "breslow_strata": cox_one(time, event, treated, ones, ties="breslow", cluster=pair, strata=pair, level=0.95),
            "efron_weighted": cox_one(time, event, treated, weight, ties="efron", cluster=pair, strata=None, level=0.95),
            "breslow_weighted": cox_one(time, event, treated, weight, ties="breslow", cluster=pair, strata=None,
                                     level=0.95),
        }
        for name, fit in fits.items():
            want = np.array(expected[name], dtype=float)
            if fit.status[0] != st.OK:  # R warns and returns a huge coefficient for a monotone likelihood
                assert abs(want[0]) > 5 or name.endswith("strata"), name
                continue
            got = np.array([fit.log_hr[0], fit.se[0], fit.robust_se[0]])
            np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=name)
        for ci, method in (("log", "brookmeyer_crowley_log"), ("loglog", "brookmeyer_crowley_loglog")):
            want = np.array([np.nan if v is None else v for v in expected[ci]], dtype=float)
            got = []
            for arm in (treated, ~treated):
                median, lower, upper, _, _ = km_median_one(time, event, arm.astype(float), ci=method, level=0.95)
                got += [median, lower, upper]
            np.testing.assert_allclose(np.array(got), want, rtol=0, atol=1e-10, equal_nan=True, err_msg=ci)
