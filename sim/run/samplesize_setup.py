"""What a sample-size search needs before its first round: the request checked (one clear line
per impossible option), the design at any value, the calibration of the scenario it came from,
the design's true marginal HR and event probability, Schoenfeld's and Freedman's answers, and
the search settings bracketed from Schoenfeld's n.

The event probability (both arms, the searched endpoint, under the design's accrual, cut-off
and dropout; the whole cohort before any matching) and the share treated are estimated from
one large cohort of :data:`PILOT_PATIENTS` patients drawn with a fixed seed, so the formulas'
answers are a property of the design, not of ``--seed`` (binomial SE at most 0.0035). The true
marginal HR is the design's (:func:`sim.calibrate.cache.true_estimands_cached`: Austin 2013,
potential outcomes of the design's treated population — the whole population for ``rct``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analysis.performance.samplesize import AnalyticSampleSize, SearchSettings, analytic_sample_size
from analysis.plan.options import Plan
from sim.errors import PsmsimError
from sim.scenario.designs import DESIGNS, QUANTITIES, DesignError, design_scenario, split_patients, treated_share
from sim.scenario.feasibility import run_block_size
from sim.scenario.model import Scenario

__all__ = ["SampleSizeError", "SampleSizeRequest", "SearchSetup", "prepare_search",
           "study_size", "PILOT_PATIENTS"]

ENDPOINTS = ("pfs", "os")
TESTS = ("logrank", "cox")
#: Patients of the fixed-seed cohort that estimates the design's event probability.
PILOT_PATIENTS = 20_000
_PILOT_ENTROPY = 0x5A3B_17E1
#: Default upper bound of n (--max-n).
DEFAULT_MAX_N = 10_000
#: Default bounds of the other quantities: months of follow-up; accrual rate as multiples of
#: the slowest possible rate n / cutoff.
DEFAULT_FOLLOW_UP = (0.5, 240.0)
DEFAULT_RATE_FACTORS = (1.01, 100.0)
#: Smallest arm of a candidate design.
MIN_ARM = 3


class SampleSizeError(PsmsimError):
    """A sample-size request that cannot be searched (names the option and the fix)."""


@dataclass(frozen=True)
class SampleSizeRequest:
    """What the user asks (the CLI's options; ``None``: the default described there)."""

    endpoint: str = "pfs"
    target_power: float = 0.8
    design: str = "rct"
    method: str | None = None
    test: str = "logrank"
    alpha: float = 0.05
    solve: str = "n"
    allocation: float | None = None
    n: int | None = None
    max_n: int | None = None
    bounds: tuple[float, float] | None = None
    tolerance: float = 0.02
    seed: int | None = None
    block_size: int | None = None
    candidates: int = 8
    first_replicates: int = 100
    budget: int = 100_000
    max_rounds: int = 12


@dataclass(frozen=True)
class SearchSetup:
    """A checked request with everything its rounds and its answer need."""

    scenario: Scenario
    request: SampleSizeRequest
    method: str
    plan: Plan
    stream: int
    cohort: str
    other_endpoint: str
    seed: int
    block_size: int
    fixed_n: int | None
    reference_value: float
    guess: float
    settings: SearchSettings
    calibration: Any
    truth: Any
    hazard_ratio: float
    event_probability: float
    allocation: float
    analytic: AnalyticSampleSize
    unit: str = field(default="patients")

    def design_at(self, value: float) -> Scenario:
        """The design scenario at ``value`` of the searched quantity."""
        return _design(self.scenario, self.request, value, self.fixed_n)


def study_size(scenario: Scenario) -> int:
    """Patients of the scenario's own study (arms summed, or ``selection.patients``)."""
    if scenario.mode == "table":
        return int(sum(arm.size for arm in scenario.arms))
    return int(scenario.selection.patients)


def _design(scenario: Scenario, request: SampleSizeRequest, value: float, fixed_n: int | None) -> Scenario:
    kwargs = {"design": request.design, "allocation": request.allocation}
    if request.solve == "n":
        return design_scenario(scenario, patients=int(round(value)), **kwargs)
    if request.solve == "follow_up":
        return design_scenario(scenario, patients=fixed_n, follow_up_months=value, **kwargs)
    return design_scenario(scenario, patients=fixed_n, accrual_rate=value, **kwargs)


def _methods(scenario: Scenario) -> list[str]:
    """paper, recommended and the scenario's named methods (``[analysis.methods.NAME]``)."""
    return list(scenario.analysis.method_names)


def _smallest_n(scenario: Scenario, request: SampleSizeRequest) -> int:
    """The smallest n whose design has at least :data:`MIN_ARM` patients in each arm."""
    if request.design == "psm" and scenario.mode == "selection":
        return 4 * MIN_ARM
    share = request.allocation if request.design == "rct" else treated_share(scenario)
    share = 0.5 if share is None else share
    n = 2 * MIN_ARM
    while min(split_patients(n, share)) < MIN_ARM:
        n += 1
    return n


def _check(request: SampleSizeRequest, scenario: Scenario) -> None:
    choices = (("--endpoint", request.endpoint, ENDPOINTS), ("--test", request.test, TESTS),
               ("--design", request.design, DESIGNS), ("--solve", request.solve, tuple(QUANTITIES)))
    for option, value, allowed in choices:
        if value not in allowed:
            raise SampleSizeError(f"{option} {value!r}: not one of {', '.join(allowed)}")
    if not 0.0 < request.alpha < 0.5:
        raise SampleSizeError(f"--alpha {request.alpha:g}: must lie strictly between 0 and 0.5")
    if not request.alpha < request.target_power < 1.0:
        raise SampleSizeError(
            f"--target-power {request.target_power:g}: must lie strictly between --alpha "
            f"{request.alpha:g} (what a test rejects with even without an effect) and 1")
    if not 0.0 < request.tolerance < 0.5:
        raise SampleSizeError(f"--tolerance {request.tolerance:g}: must lie strictly between 0 "
                              "and 0.5 (a share of the answer, e.g. 0.02 for ±2%)")
    if request.allocation is not None:
        if request.design != "rct":
            raise SampleSizeError("--allocation: only for --design rct (a psm design keeps the "
                                  "scenario's arm proportions)")
        if not 0.0 < request.allocation < 1.0:
            raise SampleSizeError(f"--allocation {request.allocation:g}: must lie strictly "
                                  "between 0 and 1 (the share treated)")
    method = request.method or scenario.analysis.plan
    if method not in _methods(scenario):
        raise SampleSizeError(f"--method {method!r}: not a method of scenario {scenario.name!r} "
                              f"(allowed: {', '.join(_methods(scenario))})")
    if request.solve == "n":
        if request.n is not None:
            raise SampleSizeError("--n: only with --solve follow_up or --solve accrual_rate "
                                  "(the n at which they are solved)")
        if request.bounds is not None:
            raise SampleSizeError("--bounds: only with --solve follow_up or accrual_rate; "
                                  "bound n with --max-n")
    elif request.max_n is not None:
        raise SampleSizeError(f"--max-n: only with --solve n; bound {request.solve} with --bounds LOW HIGH")


def _bounds(scenario: Scenario, request: SampleSizeRequest, fixed_n: int | None) -> tuple[float, float]:
    if request.solve == "n":
        lower = _smallest_n(scenario, request)
        upper = DEFAULT_MAX_N if request.max_n is None else int(request.max_n)
        if upper <= lower:
            raise SampleSizeError(f"--max-n {upper}: must exceed {lower}, the smallest {request.design} "
                                  f"design with {MIN_ARM} patients in each arm")
        return float(lower), float(upper)
    if request.bounds is not None:
        lower, upper = (float(v) for v in request.bounds)
        if not (math.isfinite(lower) and math.isfinite(upper) and 0.0 < lower < upper):
            raise SampleSizeError(f"--bounds {lower:g} {upper:g}: need 0 < LOW < HIGH")
    elif request.solve == "follow_up":
        lower, upper = DEFAULT_FOLLOW_UP
    else:
        slowest = fixed_n / scenario.censoring.cutoff_month
        lower, upper = (factor * slowest for factor in DEFAULT_RATE_FACTORS)
    for bound in (lower, upper):
        try:
            _design(scenario, request, bound, fixed_n)
        except DesignError as err:
            raise SampleSizeError(f"--bounds {lower:g} {upper:g}: {err}") from None
    return lower, upper


def _reference_value(scenario: Scenario, request: SampleSizeRequest, fixed_n: int | None) -> float:
    """Where the truth and the event probability are computed (module docstring)."""
    censoring = scenario.censoring
    if request.solve == "n":
        return float(study_size(scenario))
    if request.solve == "follow_up":
        return float(censoring.cutoff_month - censoring.accrual_months)
    return float(fixed_n / censoring.accrual_months)


def _pilot(scenario: Scenario, request: SampleSizeRequest, calibration, reference: float,
           fixed_n: int | None) -> tuple[float, float]:
    """(event probability of the endpoint, share treated) of a fixed-seed large cohort."""
    from sim.generate.cohorts import generate_cohorts

    if request.solve == "n":
        design, replicates = _design(scenario, request, PILOT_PATIENTS, None), 1
    else:
        design = _design(scenario, request, reference, fixed_n)
        replicates = max(1, math.ceil(PILOT_PATIENTS / fixed_n))
    batch = generate_cohorts(design, calibration, replicates,
                             rng=np.random.default_rng(np.random.SeedSequence(_PILOT_ENTROPY)))
    event = getattr(batch, f"{request.endpoint}_event")
    return float(np.mean(event)), float(np.mean(batch.treated))


def prepare_search(scenario: Scenario, request: SampleSizeRequest) -> SearchSetup:
    """Check ``request`` against ``scenario`` and compute what the search needs.

    Raises
    ------
    SampleSizeError, DesignError
        One line naming the option and the fix; nothing is written.
    """
    from sim.calibrate.cache import calibrate_cached, true_estimands_cached
    from sim.scenario.plans import method_stream, scenario_plan

    _check(request, scenario)
    method = request.method or scenario.analysis.plan
    fixed_n = None
    if request.solve != "n":
        fixed_n = study_size(scenario) if request.n is None else int(request.n)
        if fixed_n < _smallest_n(scenario, request):
            raise SampleSizeError(f"--n {fixed_n}: too few patients; the smallest {request.design} "
                                  f"design has {_smallest_n(scenario, request)}")
    lower, upper = _bounds(scenario, request, fixed_n)
    try:
        settings = SearchSettings(
            target_power=request.target_power, lower=lower, upper=upper,
            integer=request.solve == "n", transform="sqrt" if request.solve == "n" else "log",
            tolerance=request.tolerance, candidates=request.candidates,
            first_replicates=request.first_replicates, budget=request.budget,
            max_rounds=request.max_rounds)
    except ValueError as err:
        option = str(err).split(" ", 1)[0].replace("_", "-")
        raise SampleSizeError(f"--{option} {str(err).split(' ', 1)[1]}") from None
    reference = _reference_value(scenario, request, fixed_n)
    reference_design = _design(scenario, request, reference, fixed_n)
    calibration = calibrate_cached(scenario)
    truth = true_estimands_cached(reference_design, calibration)
    log_hr = float(getattr(truth, f"marginal_log_hr_{request.endpoint}"))
    if not abs(log_hr) > 1e-3:
        raise SampleSizeError(
            f"--endpoint {request.endpoint}: the {request.design} design has no treatment effect "
            f"(true marginal HR {math.exp(log_hr):.4f}), so no design reaches power "
            f"{request.target_power:g}; choose a scenario with an effect")
    event_probability, allocation = _pilot(scenario, request, calibration, reference, fixed_n)
    if request.design == "rct":
        allocation = 0.5 if request.allocation is None else float(request.allocation)
    analytic = analytic_sample_size(math.exp(log_hr), event_probability, power=request.target_power,
                                    allocation=allocation, alpha=request.alpha)
    guess = analytic.schoenfeld_n if request.solve == "n" else reference
    if 2.0 * lower < upper / 3.0:  # so the first round, [guess / 2, 3 guess], lies in the bounds
        guess = min(max(guess, 2.0 * lower), upper / 3.0)
    settings_seed = scenario.simulation.seed if request.seed is None else int(request.seed)
    return SearchSetup(
        scenario=scenario, request=request, method=method, plan=scenario_plan(scenario, method),
        stream=method_stream(scenario, method),
        cohort="full" if request.design == "rct" else "matched",
        other_endpoint="os" if request.endpoint == "pfs" else "pfs",
        seed=settings_seed,
        block_size=run_block_size(scenario, request.block_size,
                                  patients=int(round(upper)) if request.solve == "n" else fixed_n),
        fixed_n=fixed_n, reference_value=reference, guess=float(guess), settings=settings,
        calibration=calibration, truth=truth, hazard_ratio=math.exp(log_hr),
        event_probability=event_probability, allocation=allocation, analytic=analytic,
        unit=QUANTITIES[request.solve])
