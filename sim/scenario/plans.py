"""The analysis methods of a scenario and their plans.

A scenario runs the two presets of :mod:`analysis.plan.options` (``paper``, ``recommended``),
each with the scenario's overrides (``[analysis.paper]``, ``[analysis.recommended]``), and the
named methods of ``[analysis.methods.NAME]``: a preset as the scenario configures it, then the
method's own overrides and PS covariates. Every plan gets the scenario's PS covariates (unless
its method names its own) and the covariates Table 1 compares by Mann–Whitney (those printed as
median (IQR), i.e. the ``lognormal`` covariates).
"""

from __future__ import annotations

from dataclasses import replace

from analysis.plan.options import PRESETS, Plan, make_plan
from sim.errors import PsmsimError
from sim.scenario.model import AnalysisMethod, Scenario

__all__ = ["UnknownMethodError", "scenario_methods", "scenario_method", "scenario_plan",
           "paired_references", "method_stream"]


class UnknownMethodError(PsmsimError):
    """A method name (``--method``) the scenario does not define."""


def scenario_methods(scenario: Scenario) -> tuple[str, ...]:
    """Every method a run of ``scenario`` applies, in stream order (``paper``,
    ``recommended``, then the named methods in file order)."""
    return scenario.analysis.method_names


def scenario_method(scenario: Scenario, name: str) -> AnalysisMethod:
    """The method ``name`` as a preset plus overrides (a preset is itself with no overrides).

    Raises
    ------
    UnknownMethodError
        If the scenario has no method ``name`` (the message lists its methods).
    """
    if name in PRESETS:
        return AnalysisMethod(name=name, preset=name)
    for method in scenario.analysis.methods:
        if method.name == name:
            return method
    raise UnknownMethodError(f"{name!r} is not a method of scenario {scenario.name!r}; choose one "
                             f"of {', '.join(scenario_methods(scenario))}")


def scenario_plan(scenario: Scenario, name: str) -> Plan:
    """The plan of method ``name`` (a preset or a named method) as the scenario configures it
    (options were validated on load). The plan's ``name`` is the method's.

    Raises
    ------
    UnknownMethodError
        If the scenario has no method ``name``.
    """
    method = scenario_method(scenario, name)
    overrides = {**scenario.analysis.overrides.get(method.preset, {}), **method.overrides}
    ps_covariates = (scenario.analysis.ps_covariates if method.ps_covariates is None
                     else method.ps_covariates)
    plan = make_plan(
        method.preset,
        overrides,
        ps_covariates=tuple(ps_covariates),
        rank_test_covariates=tuple(c.name for c in scenario.covariates if c.kind == "lognormal"),
    )
    return plan if plan.name == name else replace(plan, name=name)


def paired_references(scenario: Scenario) -> dict[str, str]:
    """The method each method's paired differences are computed against: a named method
    against the preset it starts from (the difference is then exactly the effect of its
    options), ``recommended`` against ``paper``, ``paper`` against itself (no difference)."""
    references = {"paper": "paper", "recommended": "paper"}
    references.update({method.name: method.preset for method in scenario.analysis.methods})
    return references


def method_stream(scenario: Scenario, name: str) -> int:
    """The random stream of method ``name`` within a block: ``1 + m`` for the preset it
    starts from (``m`` = 0 for paper, 1 for recommended). A named method shares its preset's
    stream, so its random parts (SPSS-style random matching, bootstrap draws) are those of
    its preset: its paired difference from the preset is the effect of its options alone,
    and a method equals the same options written as the preset's overrides. Stream 0 draws
    the cohorts."""
    return 1 + tuple(PRESETS).index(scenario_method(scenario, name).preset)
