"""Study designs built from a scenario: the randomised trial or the larger PSM study a sample-size
search evaluates, at a given number of patients, follow-up or accrual rate.

Every design is a new scenario document (the parsed TOML mapping, changed) validated by
:func:`sim.scenario.scenario_from_mapping`, so it obeys every rule of a scenario file, and its
text (``Scenario.source_text``) is a TOML file a user can run with ``psmsim run``. The outcome
model is *not* recalibrated: a design keeps the fitted hazards and treatment effect of the
scenario it came from (the caller passes the original calibration to the runner), because a
design changes who is enrolled and how treatment is assigned, not the disease or the drug.

``rct`` — a randomised trial from the scenario's population, with no confounding:
  * both arms draw their covariates from one population: a selection-mode scenario's
    ``population`` marginals, or, for a table-mode scenario, **the pooled arms** (the study's
    patients taken together, in the study's arm proportions): binary and categorical
    probabilities pooled exactly; a normal (truncated to the same bounds) with the pooled mean
    and SD; a lognormal given by median (IQR) through the pooled distribution's median and
    quartiles (computed from the two arms' fitted two-piece lognormals); a lognormal given by
    mean ± SD with the pooled mean and SD. The covariates keep the scenario's latent
    correlation. An unmeasured confounder keeps its log-HR and gets the pooled prevalence in both
    arms (so it is prognostic but not a confounder);
  * fixed allocation: ``round(allocation * n)`` treated and the rest control (what permuted-block
    randomisation gives), default 1:1;
  * the arms keep their own response and adverse-event rates (treatment effects, not
    confounding), and the scenario's accrual window, cut-off, dropout and analysis.
``psm`` — the scenario's own observational design at n patients before matching: a table-mode
  scenario's arms scaled to n in its arm proportions (counts become proportions), a
  selection-mode scenario's ``selection.patients = n`` (same treatment model, same confounding).

Other design quantities (at a fixed n):
  * ``follow_up`` (months of follow-up after accrual ends): ``cutoff_month = accrual_months +
    follow_up``, the accrual window unchanged;
  * ``accrual_rate`` (patients per month): ``accrual_months = n / rate`` with the data cut-off
    unchanged (the calendar time of the analysis is fixed; faster accrual gives more follow-up).
    The rate must exceed ``n / cutoff_month``, so that the last patient enters before the cut-off.
With a fixed accrual window and cut-off the probability that a patient's event is observed does
not depend on n, so the events grow in proportion to the patients, as Schoenfeld's and
Freedman's ``n = d / P(event)`` assume.
"""

from __future__ import annotations

import copy
import math
import tomllib
from typing import Any, Mapping

import numpy as np
import tomli_w
from scipy import optimize, special

from sim.errors import PsmsimError
from sim.scenario.model import Marginal, Scenario
from sim.scenario.parser import scenario_from_mapping

DESIGNS = ("rct", "psm")
#: The design quantities a search can solve for, with their units.
QUANTITIES = {"n": "patients", "follow_up": "months", "accrual_rate": "patients per month"}


class DesignError(PsmsimError):
    """A design cannot be built from this scenario as asked (names the option and the fix)."""


def scenario_document(scenario: Scenario) -> dict[str, Any]:
    """The scenario's TOML text parsed into nested dicts and lists."""
    return tomllib.loads(scenario.source_text)


def arm_shares(scenario: Scenario) -> dict[str, float]:
    """Share of the patients in each arm: table mode, the arm sizes; selection mode, NaN (random)."""
    if scenario.mode != "table":
        return {arm.name: math.nan for arm in scenario.arms}
    total = sum(arm.size for arm in scenario.arms)
    return {arm.name: arm.size / total for arm in scenario.arms}


def treated_share(scenario: Scenario) -> float:
    """The share treated of a table-mode scenario (NaN in selection mode)."""
    return arm_shares(scenario)[scenario.treated_arm.name]


def split_patients(patients: int, allocation: float) -> tuple[int, int]:
    """(treated, control) sizes for ``patients`` with a share ``allocation`` treated:
    ``floor(allocation * n + 1/2)`` treated."""
    treated = int(math.floor(allocation * patients + 0.5))
    return treated, patients - treated


def design_scenario(
    scenario: Scenario,
    *,
    design: str,
    patients: int,
    allocation: float | None = None,
    follow_up_months: float | None = None,
    accrual_rate: float | None = None,
) -> Scenario:
    """The scenario of ``design`` with ``patients`` patients (see the module docstring).

    Parameters
    ----------
    scenario : Scenario
        Read from a file (its ``source_text`` is parsed again).
    design : {"rct", "psm"}
    patients : int
        Total patients (before matching).
    allocation : float in (0, 1), optional
        Share treated of the ``rct`` design (default 0.5); refused for ``psm``, which keeps the
        scenario's arm proportions.
    follow_up_months : float, optional
        Months of follow-up after accrual ends (``cutoff_month = accrual_months + follow_up``).
    accrual_rate : float, optional
        Patients per month (``accrual_months = patients / rate``; cut-off unchanged).

    Returns
    -------
    Scenario
        Validated; ``source_text`` is its TOML text.

    Raises
    ------
    DesignError
        The design cannot be built (one line naming the option).
    """
    if design not in DESIGNS:
        raise DesignError(f"--design {design!r}: not one of {', '.join(DESIGNS)}")
    if design == "psm" and allocation is not None:
        raise DesignError("--allocation: only for --design rct (a psm design keeps the "
                          "scenario's arm proportions)")
    if follow_up_months is not None and accrual_rate is not None:
        raise DesignError("give either a follow-up or an accrual rate, not both")
    allocation = 0.5 if allocation is None else float(allocation)
    if not 0.0 < allocation < 1.0:
        raise DesignError(f"--allocation {allocation:g}: must lie strictly between 0 and 1")
    document = scenario_document(scenario)
    if design == "rct":
        document = _randomised(document, scenario, patients, allocation)
    else:
        document = _observational(document, scenario, patients)
    if follow_up_months is not None:
        document = _with_follow_up(document, follow_up_months)
    if accrual_rate is not None:
        document = _with_accrual_rate(document, patients, accrual_rate)
    text = f"# {design} design of scenario {scenario.name!r} (psmsim samplesize)\n"
    text += tomli_w.dumps(document)
    return scenario_from_mapping(tomllib.loads(text), source_text=text)


def _check_sizes(sizes: Mapping[str, int], patients: int) -> None:
    if min(sizes.values()) < 1:
        raise DesignError(f"--n {patients}: too few patients for two arms (sizes "
                          f"{dict(sizes)}); give more patients")


def _observational(document: dict, scenario: Scenario, patients: int) -> dict:
    document = copy.deepcopy(document)
    if scenario.mode == "selection":
        if patients < 2:
            raise DesignError(f"--n {patients}: a cohort needs at least 2 patients")
        document["selection"]["patients"] = int(patients)
        return document
    treated, control = split_patients(patients, treated_share(scenario))
    sizes = {scenario.treated_arm.name: treated, scenario.control_arm.name: control}
    _check_sizes(sizes, patients)
    for name, size in sizes.items():
        document["arms"][name]["size"] = size
    _counts_to_proportions(document, scenario)
    return document


def _randomised(document: dict, scenario: Scenario, patients: int, allocation: float) -> dict:
    document = copy.deepcopy(document)
    treated, control = split_patients(patients, allocation)
    sizes = {scenario.treated_arm.name: treated, scenario.control_arm.name: control}
    _check_sizes(sizes, patients)
    document["study"]["mode"] = "table"
    document["study"]["title"] = f"Randomised trial from {scenario.title}"
    for name, size in sizes.items():
        document["arms"][name]["size"] = size
    weights = _population_weights(scenario)
    for covariate in scenario.covariates:
        table = document["covariates"][covariate.name]
        if scenario.mode == "selection":
            entry = table.pop("population")
        else:
            entry = _pooled_marginal(covariate.kind, covariate.marginals, weights)
        for arm in scenario.arms:
            table[arm.name] = copy.deepcopy(entry)
    document.pop("selection", None)
    if scenario.unmeasured is not None:
        prevalence = scenario.unmeasured.prevalence
        if "population" in prevalence:
            pooled = float(prevalence["population"])
        elif scenario.mode == "table":
            pooled = math.fsum(weights[name] * float(prevalence[name]) for name in weights)
        else:
            raise DesignError(
                "--design rct: the unmeasured confounder's prevalence is given per arm of a "
                "selection-mode scenario, so the population's is unknown; give [unmeasured] "
                "prevalence = { population = p } to design a randomised trial")
        document["unmeasured"]["prevalence"] = {arm.name: pooled for arm in scenario.arms}
    _counts_to_proportions(document, scenario)
    return document


def _population_weights(scenario: Scenario) -> dict[str, float]:
    """Weight of each arm in the RCT's population: the arm shares (table mode), or the single
    ``population`` (selection mode)."""
    if scenario.mode == "selection":
        return {"population": 1.0}
    return arm_shares(scenario)


def _pooled_marginal(kind: str, marginals: Mapping[str, Marginal],
                     weights: Mapping[str, float]) -> dict[str, Any]:
    """The marginal entry (as written in a scenario file) of the mixture of ``marginals`` with
    ``weights`` (see the module docstring)."""
    parts = [(weights[key], marginals[key]) for key in weights]
    if kind == "binary":
        return {"proportion": math.fsum(w * m.p for w, m in parts)}
    if kind == "categorical":
        probabilities = np.sum([w * np.asarray(m.probabilities) for w, m in parts], axis=0)
        return {"probabilities": [float(p) for p in probabilities / probabilities.sum()]}
    if kind == "normal" or (kind == "lognormal" and "mean" in parts[0][1].target):
        means = np.array([float(m.target["mean"]) for _, m in parts])
        sds = np.array([float(m.target["sd"]) for _, m in parts])
        w = np.array([w for w, _ in parts])
        mean = float(np.sum(w * means))
        sd = math.sqrt(max(float(np.sum(w * (sds**2 + means**2))) - mean**2, 0.0))
        return {"mean": mean, "sd": sd}
    return dict(zip(("q1", "median", "q3"), _mixture_quartiles(parts)))


def _mixture_quartiles(parts) -> list[float]:
    """Quartiles of a mixture of two-piece lognormals (weight, Marginal with mu, sigma,
    sigma_upper), by root finding on the mixture CDF in log x."""

    def cdf(log_x: float) -> float:
        total = 0.0
        for weight, marginal in parts:
            upper = marginal.sigma if marginal.sigma_upper is None else marginal.sigma_upper
            scale = marginal.sigma if log_x < marginal.mu else upper
            total += weight * special.ndtr((log_x - marginal.mu) / scale)
        return total

    low = min(m.mu - 10 * max(m.sigma, m.sigma_upper or 0.0) for _, m in parts)
    high = max(m.mu + 10 * max(m.sigma, m.sigma_upper or 0.0) for _, m in parts)
    return [float(math.exp(optimize.brentq(lambda v: cdf(v) - q, low, high, xtol=1e-12)))
            for q in (0.25, 0.5, 0.75)]


def _counts_to_proportions(document: dict, scenario: Scenario) -> None:
    """Replace every count of a table-mode document (covariates, response, adverse events and
    the share with any AE of ``[adverse_event_dependence]``) by
    the proportion it stands for, so the arm sizes can change; the published numbers of
    ``[checks]`` are of the study as published, not of a resized design: dropped. In place."""
    document.pop("checks", None)
    if scenario.mode != "table":
        return
    for covariate in scenario.covariates:
        table = document["covariates"][covariate.name]
        for arm in scenario.arms:
            entry = table.get(arm.name)
            if not isinstance(entry, dict):
                continue
            marginal = covariate.marginals[arm.name]
            if "count" in entry:
                table[arm.name] = {"proportion": float(marginal.p)}
            elif "counts" in entry:
                table[arm.name] = {"probabilities": [float(p) for p in marginal.probabilities]}
    for arm in scenario.arms:
        entry = document["response"][arm.name]
        if "counts" in entry:
            probabilities = scenario.response.probabilities[arm.name]
            entry.pop("counts")
            entry["probabilities"] = dict(zip(("CR", "PR", "SD", "PD"),
                                              (float(p) for p in probabilities)))
    for event in scenario.adverse_events:
        table = document["adverse_events"][event.name]
        for arm in scenario.arms:
            entry = table[arm.name]
            if "any" in entry:
                table[arm.name] = {"any_proportion": float(event.any_grade[arm.name]),
                                   "grade34_proportion": float(event.grade34[arm.name])}
    dependence = scenario.adverse_event_dependence
    for arm, share in ({} if dependence is None else dependence.any_grade).items():
        document["adverse_event_dependence"][arm] = {"any_proportion": float(share)}


def _with_follow_up(document: dict, months: float) -> dict:
    if not (math.isfinite(months) and months > 0.0):
        raise DesignError(f"follow-up {months:g} months: must be a positive number of months")
    document = copy.deepcopy(document)
    censoring = document["censoring"]
    censoring["cutoff_month"] = float(censoring["accrual_months"]) + float(months)
    return document


def _with_accrual_rate(document: dict, patients: int, rate: float) -> dict:
    document = copy.deepcopy(document)
    censoring = document["censoring"]
    cutoff = float(censoring["cutoff_month"])
    if not (math.isfinite(rate) and rate > patients / cutoff):
        raise DesignError(
            f"accrual rate {rate:g} patients/month: {patients} patients need more than "
            f"{patients / cutoff:.4g} per month to all enter before the cut-off at month "
            f"{cutoff:g}")
    censoring["accrual_months"] = patients / float(rate)
    return document
