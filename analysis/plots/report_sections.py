"""The sections of a run's report, organised by ADEMP (Morris, White & Crowther 2019).

Each *section builder* takes a :class:`ReportContext` and returns a
:class:`analysis.plots.report.Section` (or None when it has nothing to say); :data:`RUN_SECTIONS`
lists the builders of a plain run in reading order: Aims, Data-generating mechanism, Estimands,
Methods, Performance measures, and a plain-language reading for a trial designer. Sweep,
sample-size and sensitivity sections are further builders appended to that list. The builders
draw their own figures from the context's Datasets; the context is filled by the caller (for a
run folder: :mod:`sim.run.reporting`), which knows the scenario.

References
----------
Morris TP, White IR, Crowther MJ (2019). Using simulation studies to evaluate statistical
methods. Stat Med 38:2074-2102 (ADEMP; performance measures and their Monte Carlo SEs).
Schoenfeld DA (1983). Biometrics 39:499-503; Freedman LS (1982). Stat Med 1:121-129.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
import xarray as xr

from analysis.performance.analytic_power import freedman_events, schoenfeld_events
from analysis.plan.options import Plan
from analysis.plots.report import BulletList, Figure, Paragraph, Section, Table
from analysis.plots.style import COHORT_NAMES, ENDPOINT_NAMES, figure_bytes

__all__ = ["RUN_SECTIONS", "ReportContext", "StudyFacts", "study_blocks"]

REPORT_DPI = 110


@dataclass(frozen=True)
class StudyFacts:
    """What the report says about the study and its data-generating mechanism (filled from the
    scenario by the caller): ``design`` rows (item, description), ``covariates`` rows (label,
    kind, treated arm, control arm, log-HR on the outcomes, in the PS model), every
    ``ASSUMPTION`` comment of the scenario text, covariate labels and the arms' labels."""

    name: str
    title: str
    design: tuple[tuple[str, str], ...]
    covariates: tuple[tuple[str, ...], ...]
    assumptions: tuple[str, ...]
    covariate_labels: Mapping[str, str] = field(default_factory=dict)
    arm_labels: tuple[str, str] = ("Treated", "Control")
    truth_patients: int | None = None


@dataclass(frozen=True)
class ReportContext:
    """Everything the section builders read.

    ``replicates`` and ``summary``: the run's Datasets (``docs/results_schema.md``), at one grid
    point for these sections; ``plans``: method name → its :class:`Plan`; ``primary_method``:
    the scenario's own plan (what the study did); ``km_curves``: one replicate's curves
    (:func:`analysis.plan.survival_curves.kaplan_meier_curves`) and ``km_replicate`` its index;
    ``observed_pairs``: the matched pairs the study reported, if known.
    """

    replicates: xr.Dataset
    summary: xr.Dataset
    study: StudyFacts
    plans: Mapping[str, Plan]
    primary_method: str
    km_curves: xr.Dataset | None = None
    km_replicate: int = 0
    observed_pairs: int | None = None
    target_power: float = 0.8


def _png(name: str, caption: str, axes_or_figure, alt: str = "") -> Figure:
    figure = getattr(axes_or_figure, "figure", axes_or_figure)
    return Figure(name=name, caption=caption, png=figure_bytes(figure, dpi=REPORT_DPI), alt=alt or caption)


def _number(value, digits: int = 3, *, signed: bool = False) -> str:
    value = float(value)
    if not math.isfinite(value):
        return "NA"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _pm(value, mcse, digits: int = 3, *, signed: bool = False) -> str:
    """"estimate ± MCSE"; an MCSE too small for ``digits`` decimals keeps one significant digit;
    "estimate ± —" where it is undefined (NaN) or degenerate (0: every replicate agrees)."""
    text = _number(value, digits, signed=signed)
    mcse = float(mcse)
    if text == "NA":
        return text
    if math.isnan(mcse) or mcse == 0.0:
        return f"{text} ± —"
    if not math.isfinite(mcse):
        return text
    error = f"{mcse:.1g}" if 0 < mcse < 0.5 * 10.0 ** -digits else _number(mcse, digits)
    return f"{text} ± {error}"


def _percent(value, mcse=None, digits: int = 1) -> str:
    value = float(value)
    if not math.isfinite(value):
        return "NA"
    if mcse is None:
        return f"{100 * value:.{digits}f}%"
    if math.isnan(float(mcse)) or float(mcse) == 0.0:
        return f"{100 * value:.{digits}f}% ± —"
    if not math.isfinite(float(mcse)):
        return f"{100 * value:.{digits}f}%"
    return f"{100 * value:.{digits}f}% ± {100 * float(mcse):.{digits}f}"


def _cells(summary: xr.Dataset):
    for method in summary.method.values.tolist():
        for cohort in summary.cohort.values.tolist():
            for endpoint in summary.endpoint.values.tolist():
                yield method, cohort, endpoint, summary.sel({"method": method, "cohort": cohort, "endpoint": endpoint})


# --------------------------------------------------------------------------- A
def aims_section(context: ReportContext) -> Section:
    attrs = context.summary.attrs
    methods = ", ".join(f"`{m}`" for m in context.plans)
    n = int(context.replicates.sizes["replicate"])
    return Section("Aims", (
        Paragraph(f"To find out, under a data-generating mechanism that reproduces the published tables of "
                  f"**{context.study.title}**, how much power the study's analysis had, and how biased and how "
                  f"well calibrated its hazard-ratio estimates are before and after propensity-score matching — "
                  f"for the analysis as the study did it (`{context.primary_method}`) and as recommended. "
                  f"Methods compared on the same cohorts: {methods}."),
        Paragraph(f"{n} replicates, root seed {attrs.get('root_seed', '?')}, blocks of {attrs.get('block_size', '?')} "
                  f"(results do not depend on the number of workers); psmsim {attrs.get('psmsim_version', '?')}, run "
                  f"created {attrs.get('source_created_at', '?')}. Every performance measure is given with its Monte "
                  "Carlo standard error (± MCSE): the uncertainty due to the finite number of replicates."),
    ))


# --------------------------------------------------------------------------- D
def study_blocks(study: StudyFacts) -> list:
    """The data-generating mechanism of a scenario as report blocks: the design and covariate
    tables and every ASSUMPTION (shared by the run and the sweep reports)."""
    return [
        Paragraph(f"Scenario `{study.name}`. Each replicate is a new synthetic cohort drawn from the model below; "
                  "covariates are drawn per arm from the published marginals, so confounding arises because the "
                  "covariates also drive the outcomes."),
        Table("The data-generating mechanism", ("Part", "As simulated"), study.design),
        Table("Covariates", ("Covariate", "Kind", study.arm_labels[0], study.arm_labels[1],
                             "log-HR on PFS/OS transitions", "In PS model"), study.covariates,
              note="Arm columns: the published summary each arm is drawn from."),
        Paragraph(f"**Assumptions.** Everything the publication does not state is marked `ASSUMPTION` in the "
                  f"scenario file; these are the numbers to vary in a sensitivity analysis ({len(study.assumptions)}):"),
        BulletList(tuple(re.sub(r"^\[([^\]]+)\] ", r"`\1`: ", item) for item in study.assumptions))
        if study.assumptions else Paragraph("None are marked."),
    ]


def data_generating_section(context: ReportContext) -> Section:
    study = context.study
    blocks = study_blocks(study)
    if context.km_curves is not None:
        from analysis.plots.survival import kaplan_meier_figure

        labels = dict(zip(("treated", "control"), study.arm_labels))
        plan = context.km_curves.attrs.get("plan", context.primary_method)
        figure = kaplan_meier_figure(context.km_curves, arm_labels=labels,
                                     title=f"One synthetic cohort (replicate {context.km_replicate}), {plan} plan")
        blocks.append(_png("km", f"Kaplan–Meier curves of one simulated cohort (replicate {context.km_replicate}) "
                                 f"before and after matching with the `{plan}` plan — what the study's Figure 1 "
                                 "would look like for a cohort drawn from this model.", figure))
    return Section("Data-generating mechanism", tuple(blocks))


def _plan_estimand(plan) -> str:
    from analysis.plan.options import plan_estimand

    try:
        return plan_estimand(plan)
    except (AttributeError, KeyError):
        return "att"


# --------------------------------------------------------------------------- E
def estimands_section(context: ReportContext) -> Section:
    truth = context.replicates
    rows = []
    for endpoint in truth.endpoint.values.tolist():
        cell = truth.sel(endpoint=endpoint)
        marginal, conditional = float(cell.true_log_hr_marginal), float(cell.true_log_hr_conditional)
        rows.append((ENDPOINT_NAMES[endpoint], f"{math.exp(marginal):.3f} (log {marginal:+.3f})",
                     f"{math.exp(conditional):.3f} (log {conditional:+.3f})",
                     f"{float(cell.true_median_treated):.1f}", f"{float(cell.true_median_control):.1f}"))
    patients = f"{context.study.truth_patients:,} " if context.study.truth_patients else ""
    blocks = [
        Paragraph("The matched Cox model estimates a **marginal** hazard ratio in the treated (the ATT); the "
                  "data-generating model has a **conditional** one (given the covariates), and the two differ "
                  "because the hazard ratio is not collapsible. Bias and coverage below are against the marginal "
                  f"HR, computed by Austin's potential-outcomes method on {patients}simulated patients per arm "
                  "with the design's censoring (Austin 2013); a method that targets another estimand (IPTW: "
                  "the ATE, overlap weights: the ATO, a covariate- or PS-adjusted Cox model: the conditional "
                  "HR) is measured against that estimand's truth in its adjusted (matched-slot) rows."),
        Table("True values", ("Endpoint", "Marginal HR in the treated (ATT)", "Conditional HR",
                              f"Median, {context.study.arm_labels[0]} (months)",
                              f"Median, {context.study.arm_labels[1]} (months)"), tuple(rows),
              note="The conditional HR is β where the endpoint's hazards are proportional given the "
                   "covariates, else the large-sample limit of the Cox model adjusted for the covariates' "
                   "log-hazard (OS always: the treatment acts on OS mostly through PFS)."),
    ]
    if "true_log_hr" in truth and "estimand" in truth.dims:
        by_estimand = []
        for estimand in truth.estimand.values.tolist():
            cells = []
            for endpoint in truth.endpoint.values.tolist():
                value = float(truth.true_log_hr.sel(estimand=estimand, endpoint=endpoint))
                mcse = float(truth.true_log_hr_mcse.sel(estimand=estimand, endpoint=endpoint))
                cells.append(f"{math.exp(value):.3f} (log {value:+.4f} ± {mcse:.4f})")
            by_estimand.append((ESTIMAND_NAMES.get(estimand, estimand), *cells))
        blocks.append(Table("True hazard ratio per estimand (± Monte Carlo SE of the truth)",
                            ("Estimand", *(ENDPOINT_NAMES[e] for e in truth.endpoint.values.tolist())),
                            tuple(by_estimand),
                            note="ATT: the treated; ATE: the whole study population; ATO: the overlap "
                                 "population, weighted by e(1 − e) (Li, Morgan & Zaslavsky 2018). The MC SE "
                                 "is the SD over 20 independent groups of the truth sample / √20; it is "
                                 "included in the bias MCSE."))
    return Section("Estimands", tuple(blocks))


#: How the report names each estimand.
ESTIMAND_NAMES = {"att": "ATT (in the treated)", "ate": "ATE (whole population)",
                  "ato": "ATO (overlap population)", "conditional": "conditional (given the covariates)"}


# --------------------------------------------------------------------------- M
def _caliper_text(plan: Plan) -> str:
    if plan.caliper is None:
        return "none"
    if plan.caliper_scale == "sd":
        return f"{plan.caliper:g} SD of the {plan.distance}"
    return f"{plan.caliper:g} ({plan.distance} units)"


def methods_section(context: ReportContext) -> Section:
    from analysis.plots.balance import ADJUSTED_LABELS, plot_love
    from analysis.plots.estimates import plot_matched_pairs

    plans = context.plans
    names = list(plans)
    options = (
        ("PS model", lambda p: f"logistic, {len(p.ps_covariates) or 'all'} covariates"
         + {"r_glm": ", fitted as R glm.fit", "spss_logistic": ", fitted as SPSS LOGISTIC REGRESSION"}.get(
             getattr(p, "ps_algorithm", ""), "")),
        ("Matching", lambda p: f"{p.matcher} on the {p.distance}, 1:{p.ratio}, "
                               f"{'with' if p.replace else 'without'} replacement"),
        ("Caliper", _caliper_text),
        ("Cox model", lambda p: f"{p.ties} ties, {p.cox_se} SE" + (" (clustered on pairs)" if p.cox_se == "robust" else "")
         + (", stratified by pair" if p.stratify_pairs else "")),
        ("Median CI", lambda p: p.median_ci.replace("_", " ")),
        ("Baseline tests", lambda p: f"rule {p.test_rule}"),
        ("SMD denominator", lambda p: f"{p.smd_denominator} SD of the full cohort"),
        ("Estimator (estimand)", lambda p: f"{getattr(p, 'estimator', 'matching')} "
                                           f"({_plan_estimand(p)})"),
    )
    rows = tuple((label, *(describe(plans[m]) for m in names)) for label, describe in options)
    blocks: list = [
        Paragraph(f"Every replicate is analysed by every method, on the full cohort (all patients) and on the "
                  f"matched cohort, for PFS and OS: Kaplan–Meier medians, log-rank test, Cox model. "
                  f"`{context.primary_method}` "
                  "is what the study did; the comparison between methods is paired (same cohorts)."),
        Table("Analysis methods", ("Option", *names), rows),
    ]
    labels = context.study.covariate_labels
    for method in names:
        estimator = getattr(plans[method], "estimator", "matching")
        # A scenario without covariates (a plain randomised trial) has no balance to plot.
        if "smd" in context.replicates and context.replicates["smd"].size and (
                estimator in ADJUSTED_LABELS):
            how = {"matching": "matching", "iptw": "IPTW weighting (weighted SMDs)",
                   "overlap": "overlap weighting (weighted SMDs)"}[estimator]
            blocks.append(_png(f"love-{method}", f"Balance of the PS covariates before and after {how}, `{method}` "
                                                 "plan: median |SMD| over replicates with its 10th–90th percentile.",
                               plot_love(context.replicates, method=method, labels=labels, estimator=estimator)))
    blocks.append(_png("pairs", "Matched pairs per replicate" + (
        f", with the {context.observed_pairs} pairs the study reported" if context.observed_pairs else "") + ".",
        plot_matched_pairs(context.replicates, observed=context.observed_pairs, observed_label="study")))
    return Section("Methods", tuple(blocks))


# --------------------------------------------------------------------------- P
def performance_section(context: ReportContext) -> Section:
    from analysis.plots.coverage import plot_zip
    from analysis.plots.estimates import plot_hr_distribution

    summary = context.summary
    tests, estimates = [], []
    for method, cohort, endpoint, cell in _cells(summary):
        label = (method, cohort, ENDPOINT_NAMES[endpoint] + (" (null)" if bool(cell.null_truth) else ""))
        tests.append((*label, _percent(cell.power_logrank, cell.power_logrank_mcse),
                      _percent(cell.power_cox, cell.power_cox_mcse), _number(cell.mean_events, 1),
                      _percent(cell.schoenfeld_power), _percent(cell.freedman_power),
                      _percent(1.0 - float(cell.status_rate.sel(status="ok")))))
        estimates.append((*label, _pm(cell.bias_marginal, cell.bias_marginal_mcse, signed=True),
                          _percent(cell.coverage_marginal, cell.coverage_marginal_mcse),
                          _pm(cell.emp_se, cell.emp_se_mcse), _pm(cell.mod_se, cell.mod_se_mcse),
                          _pm(cell.rel_error_mod_se, cell.rel_error_mod_se_mcse, 1, signed=True),
                          _pm(cell.bias_conditional, cell.bias_conditional_mcse, signed=True)))
    power_table = Table(
        "Power of the tests (± Monte Carlo SE)",
        ("Method", "Cohort", "Endpoint", "Log-rank", "Cox Wald", "Events", "Schoenfeld", "Freedman", "Failed"),
        tuple(tests), numeric=True,
        note="Power = share of replicates with p < alpha (the type-I error rate where the truth is null). Events = "
             "mean events in the analysed cohort; Schoenfeld/Freedman = analytic power at those events and the true "
             "marginal HR. Failed = share of replicates whose analysis gave no estimate (kept, never redrawn).")
    estimate_table = Table(
        "The log-HR estimate (± Monte Carlo SE)",
        ("Method", "Cohort", "Endpoint", "Bias", "Coverage", "EmpSE", "ModSE", "ModSE error (%)",
         "Bias vs conditional"), tuple(estimates), numeric=True,
        note="Bias and coverage of the 95% CI against the true marginal HR in the treated; the last column against "
             "the conditional HR. EmpSE = SD of the estimates; ModSE = root mean squared reported SE; ModSE error = "
             "100 (ModSE/EmpSE − 1): negative means the reported SEs are too small.")
    failures = []
    for method, cohort, endpoint, cell in _cells(summary):
        rates = cell.status_rate
        parts = [f"{name.replace('_', ' ')} {_percent(rates.sel(status=name))}" for name in rates.status.values.tolist()
                 if name != "ok" and float(rates.sel(status=name)) > 0]
        if parts:
            failures.append((method, cohort, ENDPOINT_NAMES[endpoint], "; ".join(parts)))
    for method in summary.method.values.tolist():
        rates = summary.ps_status_rate.sel({"method": method})
        parts = [f"{name.replace('_', ' ')} {_percent(rates.sel(status=name))}" for name in rates.status.values.tolist()
                 if name != "ok" and float(rates.sel(status=name)) > 0]
        failures.append((method, "PS model / matching", "", "; ".join(parts) or "all ok"))
    pairs_rows = []
    for method in summary.method.values.tolist():
        cell = summary.sel({"method": method})
        pairs = context.replicates.n_pairs.sel({"method": method}).values
        pairs = pairs[pairs >= 0]
        below = (f"{100 * np.mean(pairs <= context.observed_pairs):.1f}%" if context.observed_pairs and pairs.size
                 else "—")
        pairs_rows.append((
            method, _pm(cell.n_pairs_mean, cell.n_pairs_mean_mcse, 1),
            f"{_number(cell.n_pairs_median, 0)} ({_number(cell.n_pairs_q1, 0)}–{_number(cell.n_pairs_q3, 0)})",
            below,
            *(_percent(cell.balance_rate.sel(cohort=c), cell.balance_rate_mcse.sel(cohort=c)) for c in ("full", "matched")),
            _percent(cell.paper_pattern_rate, cell.paper_pattern_rate_mcse),
        ))
    blocks: list = [
        power_table,
        estimate_table,
        Table("Failures and flags (share of replicates)", ("Method", "Cohort", "Endpoint", "Status"), tuple(failures),
              note="Separation: some covariate value occurs in one arm only, so the PS model's coefficient "
                   "diverges. It is a flag, not a failure: matching proceeds on the fitted scores, as R and SPSS do."),
        Table("Matching, balance and the paper's pattern", (
            "Method", "Pairs, mean", "Pairs, median (IQR)",
            f"Replicates with ≤ {context.observed_pairs} pairs" if context.observed_pairs else "≤ published pairs",
            "Max |SMD| < 0.1 before", "… after", "Paper's pattern"), tuple(pairs_rows), numeric=True,
            note="Paper's pattern: in the matched cohort PFS log-rank p < 0.05, OS p ≥ 0.05, ORR p < 0.05 and "
                 "DCR p ≥ 0.05 at once, as the study reported."),
    ]
    for method in summary.method.values.tolist():
        for endpoint in summary.endpoint.values.tolist():
            blocks.append(_png(f"hr-{method}-{endpoint}",
                               f"{ENDPOINT_NAMES[endpoint]} hazard-ratio estimates of the `{method}` plan before and "
                               "after matching, against the true marginal (ATT) and conditional HRs.",
                               plot_hr_distribution(context.replicates, method=method, endpoint=endpoint)))
        blocks.append(_png(f"zip-{method}-pfs",
                           f"Zip plot of the `{method}` plan's 95% CIs for the PFS HR after matching: intervals "
                           "ranked by |z| against the true marginal HR; those missing it gather at the top, and the "
                           "grey band is the coverage with its Monte Carlo 95% interval.",
                           plot_zip(context.replicates, method=method, cohort="matched", endpoint="pfs")))
    return Section("Performance measures", tuple(blocks))


# --------------------------------------------------------------------------- reading
def reading_section(context: ReportContext) -> Section:
    summary, method = context.summary, context.primary_method
    items = []
    for endpoint in summary.endpoint.values.tolist():
        cell = summary.sel({"method": method, "cohort": "matched", "endpoint": endpoint})
        full = summary.sel({"method": method, "cohort": "full", "endpoint": endpoint})
        hr = math.exp(float(context.replicates.true_log_hr_marginal.sel(endpoint=endpoint)))
        what = "type-I error" if bool(cell.null_truth) else "power"
        items.append(
            f"**{ENDPOINT_NAMES[endpoint]}**: with the true HR {hr:.2f}, the study's matched analysis had about "
            f"**{100 * float(cell.power_logrank):.0f}%** {what} (log-rank, ± {100 * float(cell.power_logrank_mcse):.1f} "
            f"points Monte Carlo error) with {float(cell.mean_events):.0f} events on average. Its 95% CIs covered "
            f"the true HR in {100 * float(cell.coverage_marginal):.0f}% of replicates. Analysing all patients "
            f"without matching (about {float(full.mean_events):.0f} events) would have given "
            f"{100 * float(full.power_logrank):.0f}%, at the price of a log-HR bias of "
            f"{float(full.bias_marginal):+.3f} from confounding.")
    pairs = summary.sel({"method": method})
    text = f"Matching kept {float(pairs.n_pairs_mean):.1f} pairs on average"
    if context.observed_pairs:
        text += f" (the study reported {context.observed_pairs})"
    items.append(text + f"; the study's whole pattern of p-values after matching appeared in "
                 f"{100 * float(pairs.paper_pattern_rate):.0f}% of replicates.")
    pfs = "pfs" if "pfs" in summary.endpoint.values else summary.endpoint.values[0]
    hr = math.exp(float(context.replicates.true_log_hr_marginal.sel(endpoint=pfs)))
    if abs(math.log(hr)) > 1e-8:
        target = context.target_power
        schoenfeld = float(schoenfeld_events(hr, power=target))
        freedman = float(freedman_events(hr, power=target))
        full = context.replicates.sel({"method": method, "cohort": "full"})
        patients = float((full.n_treated + full.n_control).mean())
        share = float(summary.sel({"method": method, "cohort": "full", "endpoint": pfs}).mean_events) / patients
        items.append(
            f"**Planning a trial**: a 1:1 randomised trial needs about {math.ceil(schoenfeld)} {ENDPOINT_NAMES[pfs]} "
            f"events (Schoenfeld; Freedman {math.ceil(freedman)}) for {100 * target:.0f}% power at HR {hr:.2f}. With "
            f"the follow-up of this study {100 * share:.0f}% of patients had an event, so that is roughly "
            f"{math.ceil(schoenfeld / share)} patients. This is a formula-based first guess: it assumes proportional "
            "hazards and no losses to matching; a simulation-based sample size of the design will say how far off it is.")
    return Section("Reading for a trial designer", (BulletList(tuple(items)),))


SectionBuilder = Callable[[ReportContext], "Section | None"]

#: The sections of a plain run's report, in order (ADEMP, then the plain-language reading).
RUN_SECTIONS: Sequence[SectionBuilder] = (
    aims_section, data_generating_section, estimands_section, methods_section, performance_section,
    reading_section,
)
