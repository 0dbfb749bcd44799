"""A single cohort's analysis as the paper's tables (text) and as JSON-ready data.

Input: a batch of one replicate and the :class:`analysis.plan.analyse.PlanResult` of
``analyse_cohorts(..., details=True)``. Output: :func:`cohort_tables` (Table 1 baseline with
p-values and SMDs before/after matching, Table 2 response, Table 3 adverse events, the survival
table) and :func:`cohort_json` (the keys ``psmsim analyse --json`` promises, see README).
Pure formatting: no statistics are computed here.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from analysis.cohort import RESPONSE_LABELS, CohortBatch
from analysis.comparisons.group_tests import TEST_NAMES
from analysis.plan.analyse import COHORTS, ENDPOINTS, PlanResult
from analysis.status import STATUS_NAMES


def _number(value: Any) -> float | None:
    """A JSON number: NaN and infinities become null."""
    value = float(value)
    return value if math.isfinite(value) else None


def matched_pairs(result: PlanResult, batch: CohortBatch) -> list[list[int]]:
    """[treated patient_id, control patient_id] for every matched control, in data order of the
    treated patients."""
    control_of = result.matching.control_of[0]
    ids = batch.patient_id[0]
    pairs = []
    for i in np.flatnonzero(batch.treated[0]):
        for j in control_of[i]:
            if j >= 0:
                pairs.append([int(ids[i]), int(ids[j])])
    return pairs


def cohort_json(result: PlanResult, batch: CohortBatch) -> dict[str, Any]:
    """The analysis of one cohort as nested dicts/lists of plain numbers (NaN → None)."""
    plan = result.plan
    names = batch.covariate_names
    ps_names = plan.ps_covariates or names
    coef = result.propensity.coef[0]
    out: dict[str, Any] = {
        "plan": {key: (list(value) if isinstance(value, tuple) else value)
                 for key, value in plan.__dict__.items()},
        "covariate_kinds": dict(zip(names, batch.covariate_kinds)),
        "propensity": {
            "covariates": list(ps_names),
            "design_columns": list(result.ps_columns),
            "coef": {name: _number(c) for name, c in zip(("(intercept)",) + tuple(result.ps_columns), coef)},
            "status": STATUS_NAMES[int(result.propensity.status[0])],
        },
        "matching": {
            "method": plan.matcher,
            "distance": plan.distance,
            "caliper": _number(result.matching.caliper[0]),
            "caliper_rule": f"{plan.caliper} × SD of the {plan.distance}" if plan.caliper_scale == "sd"
            and plan.caliper is not None else ("none" if plan.caliper is None else "absolute"),
            "n_pairs": int(result.n_pairs[0]),
            "pairs": matched_pairs(result, batch),
            "status": STATUS_NAMES[int(result.ps_status[0])],
        },
        "survival": {},
        "baseline_tests": {},
        "balance": {},
        "response": {},
        "adverse_events": {},
    }
    if plan.estimator != "matching":
        out["estimator"] = {"name": plan.estimator, "estimand": result.estimand,
                            "ess": [_number(result.ess_treated[0, 1]), _number(result.ess_control[0, 1])],
                            "max_abs_smd": _number(result.max_abs_smd[0, 1])}
    for c, cohort in enumerate(COHORTS):
        details = result.details[cohort]
        out["survival"][cohort] = {}
        for e, endpoint in enumerate(ENDPOINTS):
            def at(name):
                return getattr(result, name)[0, c, e]
            log_hr = at("log_hr")
            out["survival"][cohort][endpoint] = {
                "hr": _number(np.exp(log_hr)),
                "hr_ci": [_number(np.exp(at("ci_lower"))), _number(np.exp(at("ci_upper")))],
                "log_hr": _number(log_hr),
                "se_log_hr": _number(at("se")),
                "se_kind": plan.cox_se,
                "p_cox": _number(at("p_value")),
                "p_logrank": _number(at("p_logrank")),
                "median_treated": _number(at("median_treated")),
                "median_treated_ci": [_number(at("median_treated_lower")), _number(at("median_treated_upper"))],
                "median_control": _number(at("median_control")),
                "median_control_ci": [_number(at("median_control_lower")), _number(at("median_control_upper"))],
                "events_treated": int(at("events_treated")),
                "events_control": int(at("events_control")),
                "status": STATUS_NAMES[int(at("status"))],
            }
        if cohort != "full" and plan.estimator != "matching":
            continue  # the tables of a matched sample; tests of weighted counts are not valid
        out["baseline_tests"][cohort] = {
            name: {"test": TEST_NAMES[int(test.test_used[0])], "p": _number(test.p_value[0])}
            for name, test in details.baseline_tests.items()
        }
        out["balance"][cohort] = {name: _number(details.balance.smd[0, j]) for j, name in enumerate(names)}
        responses = details.responses
        out["response"][cohort] = {
            "orr": {"treated": _number(responses.orr_rate[0, 0]), "control": _number(responses.orr_rate[0, 1]),
                    "p": _number(responses.orr_p_value[0]), "test": TEST_NAMES[int(responses.orr_test_used[0])]},
            "dcr": {"treated": _number(responses.dcr_rate[0, 0]), "control": _number(responses.dcr_rate[0, 1]),
                    "p": _number(responses.dcr_p_value[0]), "test": TEST_NAMES[int(responses.dcr_test_used[0])]},
        }
        aes = details.adverse_events
        out["adverse_events"][cohort] = {
            name: {"any_grade": [_number(aes.any_grade_rate[0, k, 0]), _number(aes.any_grade_rate[0, k, 1])],
                   "any_grade_p": _number(aes.any_grade_p_value[0, k]),
                   "grade3_4": [_number(aes.grade3_4_rate[0, k, 0]), _number(aes.grade3_4_rate[0, k, 1])],
                   "grade3_4_p": _number(aes.grade3_4_p_value[0, k])}
            for k, name in enumerate(batch.ae_names)
        }
    return out


def _percent(count: float, total: float) -> str:
    return f"{count:.0f} ({100 * count / total:.1f}%)" if total > 0 else f"{count:.0f}"


def _fmt_p(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "NA"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _fmt(value: float | None, digits: int = 1, missing: str = "NR") -> str:
    return missing if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _covariate_cells(values, weights, kind, rank, n_levels) -> list[str] | str:
    """Summary of one arm: n (%) for binary, per level for categorical, mean ± SD or median (IQR)."""
    w = weights
    total = w.sum()
    if total == 0:
        return "—"
    if kind == "binary":
        return _percent((w * (values == 1)).sum(), total)
    if kind == "categorical":
        return [_percent((w * (values == level)).sum(), total) for level in range(n_levels)]
    present = values[w > 0]
    if rank:
        q1, median, q3 = np.percentile(present, [25, 50, 75])
        return f"{median:.1f} ({q1:.1f}–{q3:.1f})"
    mean = np.average(values, weights=w)
    sd = math.sqrt(np.average((values - mean) ** 2, weights=w) * total / max(total - 1, 1))
    return f"{mean:.1f} ± {sd:.1f}"


def cohort_tables(result: PlanResult, batch: CohortBatch, *, labels: dict[str, str] | None = None,
                  arm_names: tuple[str, str] = ("Treated", "Control")) -> str:
    """The paper's tables for one cohort, before (full) and after (matched) PS matching; for an
    estimator other than matching, its survival analyses beside the crude ones."""
    labels = labels or {}
    plan = result.plan
    if plan.estimator != "matching":
        return _adjusted_tables(result, arm_names)
    treated = batch.treated[0]
    lines: list[str] = []
    full_w, matched_w = (result.details[c].weights[0] for c in COHORTS)
    n = {c: (int(round((w * treated).sum())), int(round((w * ~treated).sum())))
         for c, w in (("full", full_w), ("matched", matched_w))}
    caliper = result.matching.caliper[0]
    lines.append(f"Plan '{plan.name}': PS by logistic regression on {len(result.ps_columns)} columns; "
                 f"{plan.matcher} on the {plan.distance}, caliper "
                 f"{'none' if not math.isfinite(caliper) else f'{caliper:.4g} ({plan.distance} units)'}; "
                 f"{int(result.n_pairs[0])} pairs (PS model: {STATUS_NAMES[int(result.propensity.status[0])]}).")
    lines.append("")

    header = (f"{'Variable':<34}{arm_names[0] + ' n=' + str(n['full'][0]):>20}{arm_names[1] + ' n=' + str(n['full'][1]):>20}"
              f"{'P':>8}{'SMD':>7}   {arm_names[0] + ' n=' + str(n['matched'][0]):>20}"
              f"{arm_names[1] + ' n=' + str(n['matched'][1]):>20}{'P':>8}{'SMD':>7}")
    lines += ["Table 1. Baseline characteristics, before PSM | after PSM", header, "-" * len(header)]
    for j, (name, kind) in enumerate(zip(batch.covariate_names, batch.covariate_kinds)):
        values = batch.covariates[0, :, j]
        rank = name in plan.rank_test_covariates
        n_levels = int(np.nanmax(values)) + 1 if kind == "categorical" else 2
        cells, stats_cells = [], []
        for cohort in COHORTS:
            w = result.details[cohort].weights[0]
            cells.append((_covariate_cells(values, w * treated, kind, rank, n_levels),
                          _covariate_cells(values, w * ~treated, kind, rank, n_levels)))
            test = result.details[cohort].baseline_tests[name]
            smd = result.details[cohort].balance.smd[0, j]
            stats_cells.append((_fmt_p(float(test.p_value[0])), _fmt(float(smd), 2)))
        label = labels.get(name, name)
        if kind == "categorical":
            lines.append(f"{label:<34}{'':>40}{stats_cells[0][0]:>8}{stats_cells[0][1]:>7}   {'':>40}"
                         f"{stats_cells[1][0]:>8}{stats_cells[1][1]:>7}")
            for level in range(n_levels):
                lines.append(f"{'  level ' + str(level):<34}{cells[0][0][level]:>20}{cells[0][1][level]:>20}{'':>15}   "
                             f"{cells[1][0][level]:>20}{cells[1][1][level]:>20}")
        else:
            lines.append(f"{label:<34}{cells[0][0]:>20}{cells[0][1]:>20}{stats_cells[0][0]:>8}{stats_cells[0][1]:>7}   "
                         f"{cells[1][0]:>20}{cells[1][1]:>20}{stats_cells[1][0]:>8}{stats_cells[1][1]:>7}")
    lines.append(f"Continuous: mean ± SD (Student's t) or median (IQR) (Mann–Whitney); categorical: n (%) "
                 f"(rule '{plan.test_rule}'). SMD: {plan.smd_denominator} SD of the full cohort.")
    lines.append("")

    lines += ["Table 2. Best response, before PSM | after PSM"]
    for cohort in COHORTS:
        w = result.details[cohort].weights[0]
        responses = batch.best_response[0]
        evaluable = w * (responses >= 0)
        r = result.details[cohort].responses
        row = [f"  {cohort + ':':<9}"]
        for code, label in enumerate(RESPONSE_LABELS):
            row.append(f"{label} {_percent((evaluable * treated * (responses == code)).sum(), (evaluable * treated).sum())}"
                       f" vs {_percent((evaluable * ~treated * (responses == code)).sum(), (evaluable * ~treated).sum())}")
        lines.append(row[0] + "; ".join(row[1:]))
        lines.append(f"  {'':<8}ORR {100 * r.orr_rate[0, 0]:.1f}% vs {100 * r.orr_rate[0, 1]:.1f}%, P = {_fmt_p(float(r.orr_p_value[0]))}"
                     f" ({TEST_NAMES[int(r.orr_test_used[0])]}); DCR {100 * r.dcr_rate[0, 0]:.1f}% vs "
                     f"{100 * r.dcr_rate[0, 1]:.1f}%, P = {_fmt_p(float(r.dcr_p_value[0]))} ({TEST_NAMES[int(r.dcr_test_used[0])]})")
    lines.append("")

    if batch.ae_names:
        head = f"{'Adverse event':<26}" + "".join(
            f"{cohort + ': any ' + arm_names[0][:4] + '/' + arm_names[1][:4]:>30}{'P':>7}{'3-4':>16}{'P':>7}" for cohort in COHORTS)
        lines += ["Table 3. Adverse events (% of patients), before PSM | after PSM", head]
        for k, name in enumerate(batch.ae_names):
            row = f"{name:<26}"
            for cohort in COHORTS:
                a = result.details[cohort].adverse_events
                row += (f"{100 * a.any_grade_rate[0, k, 0]:>22.1f} /{100 * a.any_grade_rate[0, k, 1]:>5.1f}"
                        f"{_fmt_p(float(a.any_grade_p_value[0, k])):>8}"
                        f"{100 * a.grade3_4_rate[0, k, 0]:>9.1f} /{100 * a.grade3_4_rate[0, k, 1]:>5.1f}"
                        f"{_fmt_p(float(a.grade3_4_p_value[0, k])):>7}")
            lines.append(row)
        lines.append("")

    lines += _survival_table(result, arm_names, COHORTS)
    return "\n".join(lines)


def _survival_table(result: PlanResult, arm_names: tuple[str, str], cohort_labels) -> list[str]:
    """Medians, log-rank, Cox per cohort and endpoint (``cohort_labels`` name the two slots)."""
    plan = result.plan
    lines: list[str] = []
    lines.append(f"Survival (Kaplan–Meier medians in months with {int(100 * plan.level)}% CI by {plan.median_ci}; "
                 f"Cox {plan.ties} ties, {plan.cox_se} SE)")
    head = f"{'cohort':<9}{'endpoint':<9}{'median ' + arm_names[0]:>24}{'median ' + arm_names[1]:>24}{'log-rank P':>12}{'HR (95% CI)':>22}{'Cox P':>8}{'events':>10}  status"
    lines += [head, "-" * len(head)]
    for c, cohort in enumerate(cohort_labels):
        for e, endpoint in enumerate(ENDPOINTS):
            def at(name):
                return float(getattr(result, name)[0, c, e])
            mt = (f"{_fmt(at('median_treated'))} ({_fmt(at('median_treated_lower'), missing='NA')}–"
                  f"{_fmt(at('median_treated_upper'), missing='NA')})")
            mc = (f"{_fmt(at('median_control'))} ({_fmt(at('median_control_lower'), missing='NA')}–"
                  f"{_fmt(at('median_control_upper'), missing='NA')})")
            hr = (f"{math.exp(at('log_hr')):.2f} ({math.exp(at('ci_lower')):.2f}–{math.exp(at('ci_upper')):.2f})"
                  if math.isfinite(at("log_hr")) else "NA")
            events = f"{int(at('events_treated'))}/{int(at('events_control'))}"
            lines.append(f"{cohort:<9}{endpoint.upper():<9}{mt:>24}{mc:>24}{_fmt_p(at('p_logrank')):>12}{hr:>22}"
                         f"{_fmt_p(at('p_value')):>8}{events:>10}  {STATUS_NAMES[int(at('status'))]}")
    lines.append("NR = median not reached; NA = CI limit or estimate not defined (see status).")
    return lines


def _adjusted_tables(result: PlanResult, arm_names: tuple[str, str]) -> str:
    """One cohort analysed by an estimator other than matching: the unadjusted and the adjusted
    survival analyses (the paper's before/after-matching Tables 1-3 do not apply)."""
    plan = result.plan
    lines = [f"Plan '{plan.name}': PS by logistic regression on {len(result.ps_columns)} columns "
             f"(PS model: {STATUS_NAMES[int(result.propensity.status[0])]}); estimator {plan.estimator}, "
             f"estimand {result.estimand}, on the whole cohort (docs/results_schema.md, 'Estimators').",
             f"Effective sample size (Kish), treated / control: {result.ess_treated[0, 1]:.1f} / "
             f"{result.ess_control[0, 1]:.1f}; max |SMD| {_fmt(float(result.max_abs_smd[0, 1]), 2, 'NA')} "
             f"(unadjusted {_fmt(float(result.max_abs_smd[0, 0]), 2, 'NA')}).", ""]
    lines += _survival_table(result, arm_names, ("crude", plan.estimator))
    return "\n".join(lines)
