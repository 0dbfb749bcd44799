"""What a report says about a scenario: its data-generating mechanism as table rows, and every
``ASSUMPTION`` comment of its TOML text.

:func:`study_facts` turns a :class:`sim.scenario.model.Scenario` into the plain
:class:`analysis.plots.report_sections.StudyFacts` the report's section builders read (the
analysis side never sees a scenario). :func:`scenario_assumptions` reads the comments of the
scenario text: an inline comment belongs to its key (and its table), a comment paragraph to the
table it precedes; each comment that says ``ASSUMPTION`` is listed once, with continuation
lines joined.
"""

from __future__ import annotations

import re

from analysis.plots.report_sections import StudyFacts
from sim.scenario.model import Covariate, Scenario, Transition

__all__ = ["scenario_assumptions", "study_facts"]

_TABLE = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_RULER = re.compile(r"^[-=#\s]*$")


def _comment_start(line: str) -> int:
    """Index of the ``#`` that starts a comment (outside strings), or -1."""
    quote = None
    for k, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char == "#":
            return k
    return -1


def scenario_assumptions(text: str) -> tuple[str, ...]:
    """Every comment of a scenario's TOML text that contains ``ASSUMPTION``, in file order.

    Returns
    -------
    tuple of str
        ``"[table] key = value — comment"`` for an inline comment (and the comment lines that
        continue it), ``"[table] comment paragraph"`` for a paragraph of whole-line comments
        (paragraphs are separated by empty comment lines, rulers and TOML lines; the table is
        the next one the paragraph precedes, or the current one).
    """
    lines = text.splitlines()
    found: list[str] = []
    table = ""
    paragraph: list[str] = []

    def next_table(start: int) -> str:
        """The table a paragraph introduces: the next header (its top-level name when the
        paragraph opens a new top-level section), or the current table."""
        for later in lines[start:]:
            match = _TABLE.match(later)
            if match:
                name = match.group(1)
                top = name.split(".")[0]
                return top if top != table.split(".")[0] else name
            if later.strip() and not later.lstrip().startswith("#"):
                return table
        return table

    def flush(index: int) -> None:
        if paragraph and any("ASSUMPTION" in part for part in paragraph):
            where = next_table(index)
            found.append((f"[{where}] " if where else "") + " ".join(paragraph))
        paragraph.clear()

    k = 0
    while k < len(lines):
        line = lines[k]
        stripped = line.strip()
        if stripped.startswith("#"):
            body = stripped.lstrip("#").strip()
            if not body or _RULER.match(body):
                flush(k + 1)
            else:
                paragraph.append(body)
            k += 1
            continue
        flush(k)
        match = _TABLE.match(line)
        if match:
            table = match.group(1)
        start = _comment_start(line)
        if start >= 0:
            comment = [line[start + 1:].strip()]
            column = start
            while k + 1 < len(lines) and lines[k + 1].strip().startswith("#") and \
                    lines[k + 1].index("#") >= column > 0:  # aligned continuation of the inline comment
                comment.append(lines[k + 1].strip().lstrip("#").strip())
                k += 1
            text_of_comment = " ".join(comment)
            if "ASSUMPTION" in text_of_comment:
                code = line[:start].strip()
                found.append((f"[{table}] " if table else "") + (f"{code} — " if code else "") + text_of_comment)
        k += 1
    flush(len(lines))
    return tuple(found)


def _transition_text(name: str, transition: Transition) -> str:
    if transition.baseline == "weibull":
        return f"{name}: Weibull, shape {transition.shape:g}"
    if transition.baseline == "piecewise":
        return (f"{name}: piecewise constant, breaks {list(transition.breaks)} months, relative rates "
                f"{list(transition.relative_rates)}")
    return f"{name}: exponential"


def _marginal_text(covariate: Covariate, arm: str) -> str:
    marginal = covariate.marginals.get(arm) or covariate.marginals.get("population")
    if marginal is None:
        return "—"
    target = dict(marginal.target)
    if covariate.kind == "binary":
        if "count" in target:
            return f"{target['count']:g}/{target['n']:g} ({100 * marginal.p:.1f}%)"
        return f"{100 * marginal.p:.1f}%"
    if covariate.kind == "categorical":
        return ", ".join(f"{level} {100 * p:.0f}%" for level, p in zip(covariate.levels, marginal.probabilities))
    if "median" in target:
        return f"median {target['median']:g} (IQR {target['q1']:g}–{target['q3']:g})"
    return f"mean {target.get('mean', marginal.mean):g} ± SD {target.get('sd', marginal.sd):g}"


def study_facts(scenario: Scenario) -> StudyFacts:
    """The scenario as the report's Data-generating-mechanism rows and covariate table."""
    treated, control = scenario.treated_arm, scenario.control_arm
    outcome, effect, censoring = scenario.outcome, scenario.outcome.treatment, scenario.censoring
    if scenario.mode == "table":
        arms = f"{treated.label}: {treated.size} (treated); {control.label}: {control.size}"
    else:
        arms = (f"{scenario.selection.patients} patients from one population; treatment from a logistic model "
                f"(intercept {scenario.selection.intercept:g})")
    if effect.mode == "target_medians":
        effect_text = (f"calibrated so the treated arm's marginal medians are PFS {effect.pfs_median:g} and OS "
                       f"{effect.os_median:g} months")
    else:
        per_transition = [(name, value) for name, value in (
            ("progression", effect.progression_hazard_ratio),
            ("death before progression", effect.death_before_hazard_ratio),
            ("death after progression", effect.death_after_hazard_ratio)) if value is not None]
        effect_text = (f"conditional hazard ratio {effect.hazard_ratio:g} on every transition"
                       if not per_transition else
                       f"conditional hazard ratio {effect.hazard_ratio:g}, except "
                       + ", ".join(f"{value:g} on {name}" for name, value in per_transition))
    if effect.mode == "target_medians" and effect.death_before_hazard_ratio is not None:
        effect_text += f"; hazard ratio {effect.death_before_hazard_ratio:g} on death before progression"
    if effect.delay_months:
        effect_text += f"; the effect on progression starts after {effect.delay_months:g} months"
    design = [
        ("Study", f"{scenario.title} ({scenario.mode} mode)"),
        ("Arms", arms),
        ("Covariates", f"{len(scenario.covariates)}, drawn per arm from the published marginals through a Gaussian "
                       "copula with the listed latent correlations" if scenario.mode == "table" else
                       f"{len(scenario.covariates)}, from one population through a Gaussian copula"),
        ("Outcomes", "PFS and OS from an illness-death model (progression, death before and after progression); "
                     + "; ".join(_transition_text(n, t) for n, t in (("progression", outcome.progression),
                                                                    ("death before progression", outcome.death_before),
                                                                    ("death after progression", outcome.death_after)))),
        ("Control arm calibration", f"marginal medians PFS {outcome.control_pfs_median:g} and OS "
                                    f"{outcome.control_os_median:g} months; {100 * outcome.death_before_progression:g}% "
                                    "of PFS events are deaths"),
        ("Treatment effect", effect_text),
        ("Censoring", f"uniform entry over {censoring.accrual_months:g} months, data cut-off at month "
                      f"{censoring.cutoff_month:g}" + (f", dropout {censoring.dropout_rate:g}/month"
                                                       if censoring.dropout_rate else ", no dropout")),
        ("Assessments", "progression seen when it happens (continuous PFS)" if outcome.assessment is None
         else f"scans every {outcome.assessment.interval_months:g} months: progression dated at the scan that "
              "sees it, deaths exactly, PFS censored at the last scan"),
        ("Best response", "CR/PR/SD/PD per arm from the published counts"
         + (f"; PD exactly when PFS ends by the first scan (the early PFS hazard calibrated to the PD rates), "
            f"CR/PR more likely for a longer PFS (slope {scenario.response.pfs_link:g} per log month)"
            if scenario.response.model == "pfs" else
            f", linked to prognosis (slope {scenario.response.pfs_link:g})" if scenario.response.pfs_link else "")),
        ("Adverse events", f"{len(scenario.adverse_events)} per arm (any grade, grade 3–4)"),
        ("Unmeasured confounder", "none" if scenario.unmeasured is None else
         "prevalence " + ", ".join(f"{arm} {p:g}" for arm, p in scenario.unmeasured.prevalence.items())
         + f", log-HR {scenario.unmeasured.log_hr:g} (not in the PS model)"),
    ]
    ps = set(scenario.analysis.ps_covariates)
    rows = []
    for covariate in scenario.covariates:
        log_hr = outcome.covariate_log_hr.get(covariate.name, 0.0)
        log_hr_text = (", ".join(f"{v:g}" for v in log_hr) if isinstance(log_hr, tuple) else
                       ("0" if log_hr == 0 else f"{log_hr:+g}"))
        rows.append((covariate.label, covariate.kind, _marginal_text(covariate, treated.name),
                     _marginal_text(covariate, control.name), log_hr_text,
                     "yes" if covariate.name in ps or not ps else "no"))
    return StudyFacts(
        name=scenario.name,
        title=scenario.title,
        design=tuple(design),
        covariates=tuple(rows),
        assumptions=scenario_assumptions(scenario.source_text),
        covariate_labels={c.name: c.label for c in scenario.covariates},
        arm_labels=(treated.label, control.label),
        truth_patients=scenario.simulation.truth_patients,
    )
