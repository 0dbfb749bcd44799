"""``psmsim describe``: target vs simulated for every published number of a scenario.

Draws one large cohort (``patients`` per arm in table mode; ``2 × patients`` in selection
mode), then tabulates per arm every baseline row (proportions; mean ± SD; median (IQR)), the
Kaplan–Meier medians of PFS and OS, the best-response and adverse-event rates, next to what
the scenario asked for; then the calibrated parameters and the true estimands. The rows are
returned as data (:class:`DescriptionRow`) so tests can check them, and as text.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from analysis.cohort import RESPONSE_LABELS, CohortBatch
from analysis.survival.kaplan_meier import kaplan_meier, km_median
from sim.calibrate.estimands import Truth
from sim.calibrate.calibration import Calibration
from sim.generate.cohorts import generate_cohorts
from sim.scenario.model import Scenario

POPULATION = "population"


@dataclass(frozen=True)
class DescriptionRow:
    """One compared number: section, row label, arm, what was asked, what was drawn, and how
    to print them (``kind``: ``percent``, ``mean_sd``, ``median_iqr``, ``months``)."""

    section: str
    label: str
    arm: str
    target: tuple[float, ...]
    simulated: tuple[float, ...]
    kind: str


def _large_scenario(scenario: Scenario, patients: int) -> Scenario:
    if scenario.mode == "selection":
        return dataclasses.replace(scenario, selection=dataclasses.replace(scenario.selection, patients=2 * patients))
    arms = tuple(dataclasses.replace(arm, size=patients) for arm in scenario.arms)
    return dataclasses.replace(scenario, arms=arms)


def describe_rows(
    scenario: Scenario, calibration: Calibration, truth: Truth, *, patients: int, rng: np.random.Generator
) -> list[DescriptionRow]:
    """Every target-vs-simulated row for one large cohort of ``patients`` per arm."""
    batch = generate_cohorts(_large_scenario(scenario, patients), calibration, 1, rng=rng)
    arms = [(scenario.treated_arm, batch.treated[0]), (scenario.control_arm, ~batch.treated[0])]
    rows: list[DescriptionRow] = []
    for j, covariate in enumerate(scenario.covariates):
        if POPULATION in covariate.marginals:  # selection mode: the target is the population's
            rows.extend(_covariate_rows(covariate, covariate.marginals[POPULATION], "all patients",
                                        batch.covariates[0, :, j]))
            continue
        for arm, in_arm in arms:
            rows.extend(_covariate_rows(covariate, covariate.marginals[arm.name], arm.label,
                                        batch.covariates[0, in_arm, j]))
    rows.extend(_survival_rows(scenario, truth, batch, arms))
    for arm, in_arm in arms:
        probabilities = scenario.response.probabilities.get(arm.name) or scenario.response.probabilities.get(POPULATION)
        observed = batch.best_response[0, in_arm]
        for code, label in enumerate(RESPONSE_LABELS):
            rows.append(DescriptionRow("Best response", label, arm.label, (100 * probabilities[code],),
                                       (100 * np.mean(observed == code),), "percent"))
    for k, ae in enumerate(scenario.adverse_events):
        for arm, in_arm in arms:
            grades = batch.ae_grade[0, in_arm, k]
            any_p = ae.any_grade.get(arm.name, ae.any_grade.get(POPULATION))
            g34_p = ae.grade34.get(arm.name, ae.grade34.get(POPULATION))
            rows.append(DescriptionRow("Adverse events", f"{ae.label}, any grade", arm.label,
                                       (100 * any_p,), (100 * np.mean(grades >= 1),), "percent"))
            rows.append(DescriptionRow("Adverse events", f"{ae.label}, grade 3-4", arm.label,
                                       (100 * g34_p,), (100 * np.mean(grades >= 3),), "percent"))
    if scenario.adverse_events:
        from sim.generate.adverse_events import any_adverse_event_probabilities

        implied = any_adverse_event_probabilities(scenario)  # = the published share where calibrated
        for arm, in_arm in arms:
            share = implied.any_grade[implied.arm_names.index(arm.name)]
            worst = batch.ae_grade[0, in_arm].max(axis=1)
            rows.append(DescriptionRow("Adverse events", "Any adverse event (All), any grade", arm.label,
                                       (100 * share,), (100 * np.mean(worst >= 1),), "percent"))
    return rows


def _covariate_rows(covariate, marginal, arm_label, values) -> list[DescriptionRow]:
    section = "Baseline"
    if covariate.kind == "binary":
        return [DescriptionRow(section, covariate.label, arm_label, (100 * marginal.p,),
                               (100 * values.mean(),), "percent")]
    if covariate.kind == "categorical":
        levels = covariate.levels or tuple(str(i) for i in range(len(marginal.probabilities)))
        return [DescriptionRow(section, f"{covariate.label}: {level}", arm_label, (100 * p,),
                               (100 * np.mean(values == i),), "percent")
                for i, (level, p) in enumerate(zip(levels, marginal.probabilities))]
    target = marginal.target
    if "median" in target:
        q1, median, q3 = np.percentile(values, [25, 50, 75])
        return [DescriptionRow(section, covariate.label, arm_label,
                               (target["median"], target["q1"], target["q3"]), (median, q1, q3), "median_iqr")]
    mean = target.get("mean", marginal.mean)
    sd = target.get("sd", marginal.sd)
    return [DescriptionRow(section, covariate.label, arm_label, (mean, sd),
                           (values.mean(), values.std(ddof=1)), "mean_sd")]


def _survival_rows(scenario: Scenario, truth: Truth, batch: CohortBatch, arms) -> list[DescriptionRow]:
    outcome = scenario.outcome
    treated_targets = {"pfs": truth.pfs_median_treated, "os": truth.os_median_treated}
    if outcome.treatment.mode == "target_medians":
        treated_targets = {"pfs": outcome.treatment.pfs_median, "os": outcome.treatment.os_median}
    control_targets = {"pfs": outcome.control_pfs_median, "os": outcome.control_os_median}
    if scenario.mode == "selection":
        # The calibration targets are medians of the whole population under control; the
        # selected control arm's true medians come from the truth computation.
        control_targets = {"pfs": truth.pfs_median_control, "os": truth.os_median_control}
    rows = []
    for endpoint, time, event in (("pfs", batch.pfs_months, batch.pfs_event), ("os", batch.os_months, batch.os_event)):
        for (arm, in_arm), target in zip(arms, (treated_targets[endpoint], control_targets[endpoint])):
            estimate = km_median(time, event, mask=in_arm[np.newaxis], ci="brookmeyer_crowley_log")
            rows.append(DescriptionRow("Survival (Kaplan-Meier median)", endpoint.upper(), arm.label,
                                       (target,), (float(estimate.median[0]),), "months"))
    if outcome.assessment is not None:
        # On a scan schedule the KM median of PFS jumps between scans (the curve falls only by
        # deaths there); what calibration fixes is the curve's height at the target median.
        for (arm, in_arm), target in zip(arms, (treated_targets["pfs"], control_targets["pfs"])):
            rows.append(DescriptionRow(
                "Survival (Kaplan-Meier median)", f"PFS at {target:g} months (target median)",
                arm.label, (50.0,), (100 * _km_survival_at(batch, in_arm, target),), "percent"))
    if scenario.response.model == "pfs":
        # Best response PD is a PFS event by the first scan: the early PFS hazard's target.
        first_scan = outcome.assessment.interval_months
        for arm, in_arm in arms:
            target = scenario.response.probabilities.get(
                arm.name, scenario.response.probabilities.get(POPULATION))[3]
            rows.append(DescriptionRow(
                "Survival (Kaplan-Meier median)", f"PFS event by the first scan ({first_scan:g} mo) = PD",
                arm.label, (100 * target,), (100 * (1 - _km_survival_at(batch, in_arm, first_scan)),),
                "percent"))
    return rows


def _km_survival_at(batch: CohortBatch, in_arm: np.ndarray, time_months: float) -> float:
    """Kaplan–Meier PFS survival of one arm of replicate 0 at ``time_months``."""
    curve = kaplan_meier(batch.pfs_months[:1], batch.pfs_event[:1], mask=in_arm[np.newaxis])
    times = curve.time[0, curve.valid[0]]
    before = np.searchsorted(times, time_months, side="right") - 1
    return 1.0 if before < 0 else float(curve.survival[0, curve.valid[0]][before])


def _format_numbers(values: tuple[float, ...], kind: str) -> str:
    if kind == "percent":
        return f"{values[0]:6.1f}%"
    if kind == "mean_sd":
        return f"{values[0]:.1f} ± {values[1]:.1f}"
    if kind == "median_iqr":
        return f"{values[0]:.1f} ({values[1]:.1f}–{values[2]:.1f})"
    return f"{values[0]:.2f} mo"


def format_description(
    scenario: Scenario, calibration: Calibration, truth: Truth, rows: list[DescriptionRow], *, patients: int
) -> str:
    """The describe report as text: the rows by section, then calibration and truth."""
    per_arm = "per arm" if scenario.mode == "table" else "in all (selection mode)"
    lines = [f"{scenario.title}", f"Simulated: one cohort of {patients:,} patients {per_arm}.", ""]
    section = None
    width = max(len(r.label) for r in rows) + 2
    arm_width = max(len(r.arm) for r in rows) + 2
    for row in rows:
        if row.section != section:
            section = row.section
            lines += ["", section, f"  {'row':<{width}}{'arm':<{arm_width}}{'target':>22}{'simulated':>22}"]
        lines.append(f"  {row.label:<{width}}{row.arm:<{arm_width}}"
                     f"{_format_numbers(row.target, row.kind):>22}{_format_numbers(row.simulated, row.kind):>22}")
    lines += [
        "",
        "Calibrated parameters (illness-death model; scales λ of the baseline hazards)",
        f"  progression λ01 = {calibration.progression_scale:.5g}   death before progression λ02 = "
        f"{calibration.death_before_scale:.5g}   death after progression λ12 = {calibration.death_after_scale:.5g}",
        (f"  treatment log-HR on PFS transitions = {calibration.log_hr_pfs:+.4f} (HR {np.exp(calibration.log_hr_pfs):.3f})"
         if calibration.log_hr_death_before == calibration.log_hr_pfs else
         f"  treatment log-HR on progression = {calibration.log_hr_pfs:+.4f} (HR {np.exp(calibration.log_hr_pfs):.3f})"
         f"   on death before progression = {calibration.log_hr_death_before:+.4f} "
         f"(HR {np.exp(calibration.log_hr_death_before):.3f})")
        + f"   on death after progression = {calibration.log_hr_os:+.4f} (HR {np.exp(calibration.log_hr_os):.3f})",
        *([f"  early PFS hazard up to the first scan ({calibration.early_months:g} mo): log multiplier "
           f"control {calibration.control_early_log_hr:+.4f}, treated {calibration.treated_early_log_hr:+.4f} "
           f"(early treatment HR {np.exp(calibration.treated_early_log_hr - calibration.control_early_log_hr):.3f}); "
           f"PFS events by then {100 * calibration.control_early_pfs_rate:.1f}% vs "
           f"{100 * calibration.treated_early_pfs_rate:.1f}% (control vs treated)"]
          if calibration.early_months else []),
        *_frailty_lines(scenario),
        "",
        *truth_lines(truth),
    ]
    return "\n".join(lines)


def _frailty_lines(scenario) -> list[str]:
    """The AE frailty's latent correlation per arm, where ``[adverse_event_dependence]`` sets one."""
    if scenario.adverse_event_dependence is None or not scenario.adverse_events:
        return []
    from sim.generate.adverse_events import any_adverse_event_probabilities

    implied = any_adverse_event_probabilities(scenario)
    parts = [f"{arm.label} {implied.correlation[implied.arm_names.index(arm.name)]:.3f}"
             for arm in (scenario.treated_arm, scenario.control_arm)]
    return [f"  AE frailty (latent correlation of the AE types; 0 = independent): {', '.join(parts)}"]


#: How the truth table names each estimand's row.
_ESTIMAND_LABELS = {
    "att": "marginal, in the treated (ATT)",
    "ate": "marginal, whole population (ATE)",
    "ato": "marginal, overlap population (ATO)",
    "conditional": "conditional on the covariates",
}


def truth_lines(truth: Truth) -> list[str]:
    """The true estimands as text: log-HR ± MC SE per estimand and endpoint, the medians of
    each estimand's population under treatment and control, and how each was computed."""
    from sim.calibrate.estimands import ESTIMANDS, MARGINAL_ESTIMANDS

    def log_hr(estimand: str, endpoint: str) -> str:
        value = truth.value("log_hr", estimand, endpoint)
        mcse = truth.value("log_hr_mcse", estimand, endpoint)
        error = f" ± {mcse:.4f}" if mcse > 0 else " (exact)"
        return f"{value:+.4f}{error} (HR {np.exp(value):.3f})"

    lines = ["True estimands (treated vs control; ± Monte Carlo SE of the truth)",
             f"  {'log-HR':<38}{'PFS':>30}{'OS':>30}"]
    for estimand in ESTIMANDS:
        lines.append(f"  {_ESTIMAND_LABELS[estimand]:<38}{log_hr(estimand, 'pfs'):>30}{log_hr(estimand, 'os'):>30}")
    lines.append(f"  {'true marginal medians, treated vs control (mo)':<38}")
    for estimand in MARGINAL_ESTIMANDS:
        cells = []
        for endpoint in ("pfs", "os"):
            treated = truth.value("median_treated", estimand, endpoint)
            control = truth.value("median_control", estimand, endpoint)
            cells.append(f"{treated:.2f} vs {control:.2f}")
        lines.append(f"  {'  ' + estimand.upper() + ' population':<38}{cells[0]:>30}{cells[1]:>30}")
    lines.append(f"  {'  control arm under control':<38}{truth.pfs_median_control:>30.2f}"
                 f"{truth.os_median_control:>30.2f}")
    sources = {"beta": "β of the model (proportional hazards given the covariates)",
               "cox_eta_limit": "large-sample Cox(T ~ Z + η), hazards not proportional"}
    lines += [
        f"  conditional PFS: {sources[truth.conditional_source_pfs]}; OS: {sources[truth.conditional_source_os]}",
        f"  data-generating log-HR  PFS transitions {truth.data_generating_log_hr_pfs:+.4f}   "
        f"death after progression {truth.data_generating_log_hr_os:+.4f}",
        f"  (potential outcomes of {truth.n_patients:,} profiles per arm in {truth.groups} groups; "
        f"ATE/ATO population with {100 * truth.treated_share:.0f}% treated)",
    ]
    return lines
