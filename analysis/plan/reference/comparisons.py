"""Reference group comparisons on one cohort: categorical and continuous tests by the plan's
rule (scipy ``chi2_contingency``, ``fisher_exact``, ``ttest_ind``, ``mannwhitneyu``), ORR/DCR and
AE comparisons, and balance (SMDs, variance ratios) written out from their definitions.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats

from analysis import status as st
from analysis.comparisons.group_tests import FISHER, MANN_WHITNEY, NO_TEST, PEARSON, STUDENT_T, YATES, TestResult
from analysis.comparisons.response import AdverseEventComparison, ResponseComparison
from analysis.propensity.balance import Balance

#: "SD is zero" tolerance of the SMD (as the batched engine).
_TOLERANCE = math.sqrt(np.finfo(float).eps)
#: Expected and observed counts of the categorical test rules (Cochran 1954; the paper rule).
_MIN_EXPECTED = 5.0
_PAPER_MIN_OBSERVED = 3.0
_OBJECTIVE_RESPONSE = (0, 1)  # CR, PR
_DISEASE_CONTROL = (0, 1, 2)  # CR, PR, SD




def _table_test(table, rule) -> tuple[float, float, int, int, float]:
    """(statistic, p, test code, status, df) of a (level, arm) table by the plan's rule."""
    table = np.rint(np.asarray(table, float))
    if (table.sum(axis=0) <= 0).any():
        return math.nan, math.nan, NO_TEST, st.EMPTY_ARM, math.nan
    rows = table[table.sum(axis=1) > 0]
    expected = np.outer(rows.sum(axis=1), rows.sum(axis=0)) / rows.sum()
    small_expected = expected.min() < _MIN_EXPECTED
    choice = {
        "paper": YATES if small_expected or rows.min() < _PAPER_MIN_OBSERVED else PEARSON,
        "pearson": PEARSON,
        "yates": YATES,
        "fisher": FISHER,
        "fisher_if_expected_lt5": FISHER if small_expected else PEARSON,
        "yates_if_expected_lt5": YATES if small_expected else PEARSON,
    }
    if rule not in choice:
        raise ValueError(f"unknown rule {rule!r}; choose one of {sorted(choice)}")
    test = choice[rule]
    if len(rows) < 2:  # constant outcome: no test, p = 1 (the exact conditional p)
        return (math.nan if test == FISHER else 0.0), 1.0, NO_TEST, st.OK, math.nan
    if test == FISHER and len(table) > 2:  # Fisher only for 2-level variables (as SPSS without Exact Tests)
        test = PEARSON
    if test == YATES and len(rows) > 2:
        test = PEARSON
    if test == FISHER:
        result = stats.fisher_exact(rows)
        return float(result.statistic), float(result.pvalue), FISHER, st.OK, math.nan
    result = stats.chi2_contingency(rows, correction=(test == YATES))
    return float(result.statistic), float(result.pvalue), test, st.OK, float(result.dof)


def _test_result(values) -> TestResult:
    statistic, p_value, code, status_code, df = values
    return TestResult(statistic=np.array([statistic]), p_value=np.array([p_value]),
                      test_used=np.array([code], np.int8), status=np.array([status_code], np.int8),
                      df=np.array([df]))


def _binary_table(outcome, treated, weight):
    return np.array([[weight[treated & ~outcome].sum(), weight[~treated & ~outcome].sum()],
                     [weight[treated & outcome].sum(), weight[~treated & outcome].sum()]])


def _rate(outcome, arm, weight):
    total = weight[arm].sum()
    return weight[arm & outcome].sum() / total if total > 0 else math.nan


def compare_responses_one(best_response, treated, weight, rule) -> ResponseComparison:
    evaluable = weight * (best_response >= 0)
    responded = np.isin(best_response, _OBJECTIVE_RESPONSE)
    controlled = np.isin(best_response, _DISEASE_CONTROL)
    orr = _table_test(_binary_table(responded, treated, evaluable), rule)
    dcr = _table_test(_binary_table(controlled, treated, evaluable), rule)
    n_per_arm = np.array([[evaluable[treated].sum(), evaluable[~treated].sum()]])
    return ResponseComparison(
        n_per_arm=n_per_arm,
        orr_rate=np.array([[_rate(responded, treated, evaluable), _rate(responded, ~treated, evaluable)]]),
        dcr_rate=np.array([[_rate(controlled, treated, evaluable), _rate(controlled, ~treated, evaluable)]]),
        orr_p_value=np.array([orr[1]]), dcr_p_value=np.array([dcr[1]]),
        orr_test_used=np.array([orr[2]], np.int8), dcr_test_used=np.array([dcr[2]], np.int8),
        status=np.array([st.EMPTY_ARM if (n_per_arm <= 0).any() else st.OK], np.int8),
    )


def compare_adverse_events_one(ae_grade, treated, weight, rule) -> AdverseEventComparison:
    n_events = ae_grade.shape[1]
    any_grade = [_table_test(_binary_table(ae_grade[:, e] >= 1, treated, weight), rule) for e in range(n_events)]
    severe = [_table_test(_binary_table(ae_grade[:, e] >= 3, treated, weight), rule) for e in range(n_events)]
    n_per_arm = np.array([[weight[treated].sum(), weight[~treated].sum()]])

    def rates(threshold):
        return np.array([[[_rate(ae_grade[:, e] >= threshold, arm, weight) for arm in (treated, ~treated)]
                          for e in range(n_events)]]).reshape(1, n_events, 2)

    return AdverseEventComparison(
        n_per_arm=n_per_arm,
        any_grade_rate=rates(1), grade3_4_rate=rates(3),
        any_grade_p_value=np.array([[r[1] for r in any_grade]]).reshape(1, n_events),
        grade3_4_p_value=np.array([[r[1] for r in severe]]).reshape(1, n_events),
        any_grade_test_used=np.array([[r[2] for r in any_grade]], np.int8).reshape(1, n_events),
        grade3_4_test_used=np.array([[r[2] for r in severe]], np.int8).reshape(1, n_events),
        status=np.array([st.EMPTY_ARM if (n_per_arm <= 0).any() else st.OK], np.int8),
    )


def _continuous_test(x, treated, weight, rank) -> TestResult:
    repeats = np.rint(weight).astype(int)
    x_treated = np.repeat(x[treated], repeats[treated])
    x_control = np.repeat(x[~treated], repeats[~treated])
    if x_treated.size == 0 or x_control.size == 0:
        return _test_result((math.nan, math.nan, NO_TEST, st.EMPTY_ARM, math.nan))
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        if rank:
            if np.ptp(np.concatenate([x_treated, x_control])) == 0:
                return _test_result((math.nan, math.nan, NO_TEST, st.UNDEFINED, math.nan))
            result = stats.mannwhitneyu(x_treated, x_control, method="asymptotic", use_continuity=False)
            return _test_result((float(result.statistic), float(result.pvalue), MANN_WHITNEY, st.OK, math.nan))
        df = x_treated.size + x_control.size - 2
        if df < 1:
            return _test_result((math.nan, math.nan, NO_TEST, st.UNDEFINED, math.nan))
        if min(x_treated.size, x_control.size) >= 2:
            result = stats.ttest_ind(x_treated, x_control)
            t, p = float(result.statistic), float(result.pvalue)
        else:  # scipy refuses an arm of one; the pooled formula does not need its variance
            pooled = (np.sum((x_treated - x_treated.mean()) ** 2) + np.sum((x_control - x_control.mean()) ** 2)) / df
            t = (x_treated.mean() - x_control.mean()) / math.sqrt(pooled * (1 / x_treated.size + 1 / x_control.size))
            p = float(2.0 * stats.t.sf(abs(t), df))
    if math.isnan(t):
        return _test_result((math.nan, math.nan, NO_TEST, st.UNDEFINED, math.nan))
    return _test_result((t, p, STUDENT_T, st.OK, float(df)))


def baseline_tests_one(batch, weight, plan) -> dict[str, TestResult]:
    treated = batch.treated[0]
    results = {}
    for j, (name, kind) in enumerate(zip(batch.covariate_names, batch.covariate_kinds)):
        values = batch.covariates[0, :, j]
        if kind == "continuous":
            results[name] = _continuous_test(values, treated, weight, name in plan.rank_test_covariates)
            continue
        n_levels = max(int(np.nanmax(values)) + 1 if kind == "categorical" else 2, 2)
        levels = values.astype(int)
        table = np.array([[weight[treated & (levels == k)].sum(), weight[~treated & (levels == k)].sum()]
                          for k in range(n_levels)])
        results[name] = _test_result(_table_test(table, plan.test_rule))
    return results


def _smd_one(x, binary, treated, weight, denominator):
    """SMD of one 0/1 or continuous column: weighted means in the cohort, SDs in the full cohort
    (binary p(1-p), continuous n-1 variance), fallbacks as MatchIt (see analysis.propensity.balance)."""
    def mean(arm, w):
        return float(np.sum(w[arm] * x[arm]) / np.sum(w[arm]))

    def variance(arm):
        values = x[arm]
        if binary:
            p = values.mean()
            return p * (1.0 - p)
        return float(np.var(values, ddof=1)) if values.size > 1 else math.nan

    difference = mean(treated, weight) - mean(~treated, weight)
    var_treated, var_control = variance(treated), variance(~treated)
    pooled = math.sqrt((var_treated + var_control) / 2.0) if not math.isnan(var_treated + var_control) else math.nan
    sd = {"treated": math.sqrt(var_treated) if var_treated >= 0 else math.nan,
          "control": math.sqrt(var_control) if var_control >= 0 else math.nan,
          "pooled": pooled}[denominator]
    if not (math.isfinite(sd) and sd >= _TOLERANCE):
        sd = pooled
    if math.isfinite(sd) and sd < _TOLERANCE:
        return 0.0 if abs(difference) <= _TOLERANCE else math.copysign(math.inf, difference)
    return difference / sd


def balance_one(covariates, kinds, treated, weight, denominator) -> Balance:
    n_covariates = covariates.shape[1]
    smd = np.full(n_covariates, np.nan)
    ratio = np.full(n_covariates, np.nan)
    empty = weight[treated].sum() <= 0 or weight[~treated].sum() <= 0 or treated.all() or not treated.any()
    if not empty:
        with np.errstate(all="ignore"):
            for j, kind in enumerate(kinds):
                x = covariates[:, j].astype(float)
                if kind == "categorical":
                    level_smds = [_smd_one((x == level).astype(float), True, treated, weight, denominator)
                                  for level in range(int(np.nanmax(x)) + 1)]
                    # the level with the largest |SMD|; levels within a relative 1e-12 of it tie
                    # and the lowest wins (two levels of a two-level variable: exactly +-same)
                    magnitudes = [-1.0 if math.isnan(v) else abs(v) for v in level_smds]
                    largest = max(magnitudes)
                    smd[j] = next(v for v, m in zip(level_smds, magnitudes) if m >= largest * (1.0 - 1e-12))
                else:
                    smd[j] = _smd_one(x, kind == "binary", treated, weight, denominator)
                if kind == "continuous":
                    ratio[j] = _weighted_variance(x, weight * treated) / _weighted_variance(x, weight * ~treated)
    finite = smd[~np.isnan(smd)]
    max_abs = float(np.max(np.abs(finite))) if finite.size else math.nan
    return Balance(smd=smd[None], variance_ratio=ratio[None], max_abs_smd=np.array([max_abs]),
                   status=np.array([st.EMPTY_ARM if empty else st.OK], np.int8))


def _weighted_variance(x, w):
    """Reliability-weighted variance (R cov.wt): sum w (x - m)^2 / (W - sum w^2 / W)."""
    total = w.sum()
    m = np.sum(w * x) / total
    return np.sum(w * (x - m) ** 2) / (total - np.sum(w**2) / total)
