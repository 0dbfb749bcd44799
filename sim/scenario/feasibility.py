"""What a well-formed scenario can still get wrong: numbers each legal on its own that together
can only fail (refused) or will mostly fail (warned about) once the simulation runs.

:func:`infeasibilities` lists the problems that make every replicate fail — the loader
(:mod:`sim.scenario.parser`) refuses a scenario that has any — and :func:`scenario_warnings`
the ones that are legal but hopeless, which ``psmsim validate`` and ``psmsim run`` print as
``warning: <field>: <message>`` before computing anything. Each names the field to change and
why, with the numbers behind it:

- a covariate (or treatment-model) coefficient whose effect between the covariate's 1st and
  99th percentile exceeds :data:`MAX_LOG_SPREAD` on the log scale (hazards or odds differing
  more than e^20 ~ 5e8-fold between patients: every event at time ~0, or no overlap); likewise
  the unmeasured confounder's log-HR and log-odds of treatment;
- fewer than one PFS event expected per cohort (a median far beyond the follow-up, or dropout
  censoring everybody first), or fewer than :data:`FEW_EVENTS` (warned);
- selection mode: fewer than one patient of an arm expected per cohort (the treatment model
  puts nearly everybody in one arm), or fewer than :data:`FEW_PATIENTS` (warned);
- a cohort no larger than the PS model's number of parameters (it always separates);
- a block of more than :data:`MAX_BLOCK_CELLS` (replicate, patient) cells (warned: memory);
  without ``simulation.block_size`` the block size is chosen so that it holds at most that
  many (:func:`run_block_size`).

The expected numbers are first-order: PFS as exponential with the stated median in each arm,
uniform entry, administrative cut-off and exponential dropout (Schoenfeld 1981's event
probability, Biometrika 68:316); the treated share of selection mode averaged over a fixed
sample of 20,000 patients drawn from the scenario's own covariate model.
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np
from scipy import special, stats

from sim.errors import Problem
from sim.generate.covariates import draw_covariates
from sim.scenario.model import Covariate, Marginal, Scenario

#: Largest effect (log scale) of one covariate between its 1st and 99th percentile.
MAX_LOG_SPREAD = 20.0
#: Expected PFS events per cohort below which most analyses fail (warning).
FEW_EVENTS = 10.0
#: Expected patients of an arm per cohort below which matching mostly fails (warning).
FEW_PATIENTS = 5.0
#: Largest block: replicates x patients per cohort (arrays shaped (replicate, patient[, k])).
#: Measured (``benchmarks/bench_engine.py --scaling``): a worker computing a block of 100
#: replicates of 10,000 patients (both plans) peaks at about 1.2 GiB.
MAX_BLOCK_CELLS = 1_000_000
#: Replicates per block when the scenario does not say and the cohort is small enough.
DEFAULT_BLOCK_SIZE = 100
_SAMPLE_PATIENTS = 20_000
_Z99 = float(special.ndtri(0.99))


def infeasibilities(scenario: Scenario) -> list[Problem]:
    """The problems that make every replicate of ``scenario`` fail (empty: it can run)."""
    return _review(scenario)[0]


def scenario_warnings(scenario: Scenario) -> list[Problem]:
    """What is legal in ``scenario`` but will make most replicates fail (empty: nothing)."""
    return _review(scenario)[1]


def _review(scenario: Scenario) -> tuple[list[Problem], list[Problem]]:
    problems = list(_spread_problems(scenario))
    problems += list(_ps_model_problems(scenario))
    share = treated_share(scenario)
    arm_problems, arm_warnings = _arm_counts(scenario, share)
    event_problems, event_warnings = _event_counts(scenario, share)
    if arm_problems:                    # the expected events mean nothing without both arms
        event_problems, event_warnings = [], []
    return (problems + arm_problems + event_problems,
            arm_warnings + event_warnings + list(_block_warnings(scenario)))


# --------------------------------------------------------------------------------------------
# Coefficients
# --------------------------------------------------------------------------------------------


def covariate_range(covariate: Covariate) -> float:
    """Width of a covariate's central range: 99th minus 1st percentile (over the arms), 1 for
    a binary covariate; categorical covariates take one coefficient per level instead."""
    if covariate.kind == "binary":
        return 1.0
    low, high = math.inf, -math.inf
    for marginal in covariate.marginals.values():
        q01, q99 = _percentiles(covariate.kind, marginal)
        low, high = min(low, q01), max(high, q99)
    return high - low


def _percentiles(kind: str, marginal: Marginal) -> tuple[float, float]:
    if kind == "normal":
        lower = -np.inf if marginal.lower is None else (marginal.lower - marginal.mean) / marginal.sd
        upper = np.inf if marginal.upper is None else (marginal.upper - marginal.mean) / marginal.sd
        q01, q99 = stats.truncnorm.ppf([0.01, 0.99], lower, upper, loc=marginal.mean,
                                       scale=marginal.sd)
        return float(q01), float(q99)
    upper_sigma = marginal.sigma if marginal.sigma_upper is None else marginal.sigma_upper
    with np.errstate(over="ignore"):                   # an absurd lognormal: width inf
        return (float(np.exp(marginal.mu - _Z99 * marginal.sigma)),
                float(np.exp(marginal.mu + _Z99 * upper_sigma)))


def _spread_problems(scenario: Scenario) -> Iterable[Problem]:
    by_name = {c.name: c for c in scenario.covariates}
    tables = [("outcome.covariate_log_hr", "log-HR", "hazards",
               scenario.outcome.covariate_log_hr)]
    if scenario.selection is not None:
        tables.append(("selection.log_odds", "log-odds", "odds of treatment",
                       scenario.selection.log_odds))
    for where, what, of, coefficients in tables:
        for name, value in coefficients.items():
            covariate = by_name[name]
            if isinstance(value, tuple):
                spread, per = max(value) - min(value), "between its levels"
            elif value == 0.0:
                continue
            else:
                width = covariate_range(covariate)
                spread = abs(value) * width
                per = ("between 0 and 1" if covariate.kind == "binary" else
                       f"between the 1st and 99th percentile of {name} ({width:.4g} units apart)")
            if spread > MAX_LOG_SPREAD:
                allowed = (f"|{what}| <= {MAX_LOG_SPREAD / width:.3g} per unit here"
                           if not isinstance(value, tuple) else
                           f"levels within {MAX_LOG_SPREAD:g} of each other")
                yield Problem(f"{where}.{name}", (
                    f"{_number(value)} makes the {of} differ e^{spread:.3g}-fold {per}: beyond "
                    f"e^{MAX_LOG_SPREAD:g} every replicate degenerates (allowed: {allowed})"))
    unmeasured = [("unmeasured.log_hr", "hazards", scenario.unmeasured.log_hr if scenario.unmeasured else 0.0)]
    if scenario.selection is not None:
        unmeasured.append(("selection.unmeasured_log_odds", "odds of treatment",
                           scenario.selection.unmeasured_log_odds))
    for where, of, value in unmeasured:  # the binary U: its coefficient is its whole spread
        if abs(value) > MAX_LOG_SPREAD:
            yield Problem(where, (f"{value:g} makes the {of} differ e^{abs(value):.3g}-fold between U = 0 and "
                                  f"U = 1: beyond e^{MAX_LOG_SPREAD:g} every replicate degenerates (allowed: "
                                  f"|{where.rsplit('.', 1)[1]}| <= {MAX_LOG_SPREAD:g})"))


def _number(value: float | tuple[float, ...]) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(f"{v:g}" for v in value) + "]"
    return f"{value:g}"


# --------------------------------------------------------------------------------------------
# Cohort sizes: the PS model, the arms of selection mode, the block
# --------------------------------------------------------------------------------------------


def cohort_patients(scenario: Scenario) -> int:
    """Patients per simulated cohort (selection mode: ``selection.patients``; else the arms' sizes)."""
    return _cohort_size(scenario)[0]


def _cohort_size(scenario: Scenario) -> tuple[int, str]:
    """Patients per cohort and the field that sets it."""
    if scenario.selection is not None:
        return scenario.selection.patients, "selection.patients"
    return sum(arm.size for arm in scenario.arms), "arms"


def _ps_model_problems(scenario: Scenario) -> Iterable[Problem]:
    by_name = {c.name: c for c in scenario.covariates}
    models = [("analysis.ps_covariates", scenario.analysis.ps_covariates)]
    models += [(f"analysis.methods.{method.name}.ps_covariates", method.ps_covariates)
               for method in scenario.analysis.methods if method.ps_covariates is not None]
    patients, where = _cohort_size(scenario)
    for field, names in models:
        parameters = 1 + sum(len(by_name[name].levels) - 1 if by_name[name].kind == "categorical"
                             else 1 for name in names)
        if patients <= parameters:
            yield Problem(where, (
                f"{patients} patients per cohort cannot fit the PS model's {parameters} "
                f"parameters (intercept and the terms of {field}): it separates in every "
                f"replicate (allowed: at least {parameters + 1} patients, or fewer PS "
                f"covariates)"))


def run_block_size(scenario: Scenario, requested: int | None = None, *,
                   patients: int | None = None) -> int:
    """Replicates per block of a run: ``requested`` (``--block-size``, a sweep's or search's
    own setting), else ``simulation.block_size``, else adapted to the cohort:
    ``min(DEFAULT_BLOCK_SIZE, MAX_BLOCK_CELLS // patients)`` (at least 1), so a worker's
    block of (replicate, patient) arrays stays within memory (about 1.2 GiB at the limit)
    whatever the cohort size. ``patients``: the largest cohort the run simulates (default:
    the scenario's). The block size is part of the run's identity and sets its random streams,
    so it depends on the scenario only, never on the machine or the workers.
    """
    if requested:
        return int(requested)
    if scenario.simulation.block_size is not None:
        return int(scenario.simulation.block_size)
    patients = _cohort_size(scenario)[0] if patients is None else int(patients)
    return max(1, min(DEFAULT_BLOCK_SIZE, MAX_BLOCK_CELLS // max(1, patients)))


def _block_warnings(scenario: Scenario) -> Iterable[Problem]:
    patients, _ = _cohort_size(scenario)
    block = scenario.simulation.block_size
    if block is not None and block * patients > MAX_BLOCK_CELLS:
        yield Problem("simulation.block_size", (
            f"{block} replicates x {patients} patients = {block * patients:,} values per "
            f"covariate and per array in one block, held in memory whole: a run may not fit; "
            f"at most {MAX_BLOCK_CELLS:,} (block_size <= "
            f"{max(1, MAX_BLOCK_CELLS // patients)} here) is safe"))


def treated_share(scenario: Scenario) -> float:
    """Selection mode: the mean true propensity score over 20,000 patients drawn from the
    scenario's covariate model (fixed seed); table mode: treated arm size / cohort size."""
    if scenario.selection is None:
        return scenario.treated_arm.size / sum(arm.size for arm in scenario.arms)
    replicates = max(1, math.ceil(_SAMPLE_PATIENTS / scenario.selection.patients))
    drawn = draw_covariates(scenario, replicates,
                            rng=np.random.default_rng(np.random.SeedSequence(0)))
    return float(np.mean(drawn.true_ps))


def _arm_counts(scenario: Scenario, share: float) -> tuple[list[Problem], list[Problem]]:
    """Selection mode: too few patients expected in an arm (problems, warnings)."""
    if scenario.selection is None:
        return [], []
    patients = scenario.selection.patients
    expected = {scenario.treated_arm.name: share * patients,
                scenario.control_arm.name: (1.0 - share) * patients}
    problems, warnings = [], []
    for arm, count in expected.items():
        message = (f"the treatment model (intercept {scenario.selection.intercept:g}, log-odds "
                   f"as given) puts {100 * share:.3g}% of patients in the treated arm: about "
                   f"{count:.3g} patients of arm {arm!r} expected per cohort of {patients}")
        if count < 1.0:
            problems.append(Problem("selection.intercept", (
                f"{message}, so nearly every replicate lacks that arm (allowed: a model "
                f"expecting at least 1 patient per arm)")))
        elif count < FEW_PATIENTS:
            warnings.append(Problem("selection.intercept", (
                f"{message}: most replicates will have too few to match or compare")))
    return problems, warnings


# --------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------


def event_probability(median_months: float, *, accrual_months: float, cutoff_month: float,
                      dropout_rate: float) -> float:
    """P(a patient's PFS event is observed) for exponential PFS with ``median_months``,
    entry uniform over [0, accrual], cut-off at ``cutoff_month`` and exponential dropout:
    lambda/(lambda + r) * (1 - E[exp(-(lambda + r) S)]), S ~ U[cutoff - accrual, cutoff] the
    follow-up (Schoenfeld 1981)."""
    rate = math.log(2.0) / median_months
    total = rate + dropout_rate
    longest, shortest = cutoff_month, cutoff_month - accrual_months
    if accrual_months > 0.0:
        unobserved = (math.exp(-total * shortest) - math.exp(-total * longest)) / (
            total * accrual_months)
    else:
        unobserved = math.exp(-total * longest)
    return rate / total * (1.0 - unobserved)


def _event_counts(scenario: Scenario, share: float) -> tuple[list[Problem], list[Problem]]:
    """Too few PFS events expected per cohort (problems, warnings)."""
    outcome, censoring = scenario.outcome, scenario.censoring
    control_median = outcome.control_pfs_median
    treatment = outcome.treatment
    if treatment.mode == "target_medians":
        treated_median = treatment.pfs_median
    else:
        treated_median = control_median / treatment.hazard_ratio
    patients, _ = _cohort_size(scenario)
    follow_up = dict(accrual_months=censoring.accrual_months,
                     cutoff_month=censoring.cutoff_month, dropout_rate=censoring.dropout_rate)
    events = patients * ((1.0 - share) * event_probability(control_median, **follow_up)
                         + share * event_probability(treated_median, **follow_up))
    message = (f"about {events:.2g} PFS events expected per cohort of {patients} (control "
               f"median {control_median:g}, treated median {treated_median:.4g} months against "
               f"{censoring.cutoff_month:g} months of follow-up at most"
               + (f", dropout {censoring.dropout_rate:g} per month"
                  if censoring.dropout_rate else "") + ")")
    dropout_dominates = censoring.dropout_rate > math.log(2.0) / control_median
    where = "censoring.dropout_rate" if dropout_dominates else "outcome.control_pfs_median"
    if events < 1.0:
        return [Problem(where, (
            f"{message}: no replicate could be analysed (allowed: a scenario expecting at "
            f"least 1 event; shorten the medians, lengthen censoring.cutoff_month or lower "
            f"censoring.dropout_rate)"))], []
    if events < FEW_EVENTS:
        return [], [Problem(where, (
            f"{message}: most replicates will have too few events to estimate a hazard "
            f"ratio"))]
    return [], []
