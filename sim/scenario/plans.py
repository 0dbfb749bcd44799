"""The analysis plans of a scenario: a preset of :mod:`analysis.plan.options` with the
scenario's PS covariates, its per-preset overrides (``[analysis.paper]``,
``[analysis.recommended]``) and the covariates Table 1 compares by Mann–Whitney (those printed
as median (IQR), i.e. the ``lognormal`` covariates)."""

from __future__ import annotations

from analysis.plan.options import PRESETS, Plan, make_plan
from sim.scenario.model import Scenario


def scenario_plan(scenario: Scenario, preset: str) -> Plan:
    """The plan ``preset`` as the scenario configures it (options were validated on load)."""
    overrides = scenario.analysis.overrides.get(preset, {}) if preset in PRESETS else {}
    return make_plan(
        preset,
        overrides,
        ps_covariates=tuple(scenario.analysis.ps_covariates),
        rank_test_covariates=tuple(c.name for c in scenario.covariates if c.kind == "lognormal"),
    )
