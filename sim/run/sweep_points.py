"""From a sweep design's points to what the runner runs: conditions (distinct generated
cohorts), variants (analysis-only factor settings applied as methods to those cohorts), and
each point's validated scenario.

Factors whose paths all start with ``analysis.`` change only the analysis, so
:func:`sweep_layout` makes them *variants*: methods analysing the cohorts of a condition,
which need no regeneration and whose comparison is paired (the same cohorts). Points differing
only in such factors share a condition.

:func:`point_document` gives a point's scenario document and :func:`point_scenario` validates
it through :func:`sim.scenario.scenario_from_mapping`; an invalid value names the grid point
and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from sim.errors import Problem, ScenarioError
from sim.run.sweep_design import Factor, SweepDesign
from sim.run.sweep_fields import counts_as_proportions, resized_arms, set_fields

__all__ = ["SweepLayout", "sweep_layout", "point_document", "point_scenario"]


@dataclass(frozen=True)
class SweepLayout:
    """How a design's points map onto generated cohorts and analyses.

    Attributes
    ----------
    conditions : per condition (a distinct combination of the data factors' levels, in order
        of first appearance), that combination (factor name -> level).
    variants : per variant (a distinct combination of the analysis-only factors' levels),
        that combination; one empty variant when no factor is analysis-only.
    condition_variants : per condition, the variants analysed on its cohorts.
    cells : per design point, its ``(condition, variant)``.
    """

    conditions: tuple[Mapping[str, Any], ...]
    variants: tuple[Mapping[str, Any], ...]
    condition_variants: tuple[tuple[int, ...], ...]
    cells: tuple[tuple[int, int], ...] = field(default_factory=tuple)


def sweep_layout(design: SweepDesign) -> SweepLayout:
    """Split a design into conditions (new cohorts) and variants (methods on shared cohorts)."""
    data = [f for f in design.factors if not f.analysis_only]
    analysis = [f for f in design.factors if f.analysis_only]
    conditions: list[dict] = []
    variants: list[dict] = []
    index_of_condition: dict[str, int] = {}
    index_of_variant: dict[str, int] = {}
    cells = []
    for point in design.points:
        data_levels = {f.name: point.levels[f.name] for f in data}
        analysis_levels = {f.name: point.levels[f.name] for f in analysis}
        data_key = json.dumps(data_levels, sort_keys=True, default=repr)
        analysis_key = json.dumps(analysis_levels, sort_keys=True, default=repr)
        if data_key not in index_of_condition:
            index_of_condition[data_key] = len(conditions)
            conditions.append(data_levels)
        if analysis_key not in index_of_variant:
            index_of_variant[analysis_key] = len(variants)
            variants.append(analysis_levels)
        cells.append((index_of_condition[data_key], index_of_variant[analysis_key]))
    per_condition: list[list[int]] = [[] for _ in conditions]
    for condition, variant in cells:
        if variant not in per_condition[condition]:
            per_condition[condition].append(variant)
    return SweepLayout(tuple(conditions), tuple(variants),
                       tuple(tuple(v) for v in per_condition), tuple(cells))


def point_document(document: Mapping[str, Any], factors: Sequence[Factor],
                   levels: Mapping[str, Any]) -> dict[str, Any]:
    """The scenario document of a point: ``document`` with each factor's fields at its
    level (factors absent from ``levels`` keep the scenario's values). Arms whose size a
    factor sets keep their proportions (:func:`sim.run.sweep_fields.counts_as_proportions`)."""
    active = [f for f in factors if f.name in levels]
    base = dict(document)
    for arm in resized_arms(p for f in active for p in f.paths):
        base = counts_as_proportions(base, arm)
    fields: dict[str, Any] = {}
    for factor in active:
        fields.update(factor.fields(levels[factor.name], base))
    return set_fields(base, fields)


def point_scenario(document: Mapping[str, Any], factors: Sequence[Factor],
                   levels: Mapping[str, Any], *, index: int, source_text: str = ""):
    """Validate a point's scenario through :func:`sim.scenario.scenario_from_mapping`.

    ``source_text`` (the base file's text) is stored with a trailing comment that lists the
    point's fields, so a grid point's provenance says what was replaced.

    Raises
    ------
    ScenarioError
        ``grid point <index> (<factor> = <level>, ...): <field>: <problem>``.
    """
    from sim.scenario import scenario_from_mapping

    by_name = {f.name: f for f in factors}
    shown = ", ".join(f"{name} = {by_name[name].label(level)}" for name, level in levels.items())
    mapping = point_document(document, factors, levels)
    text = source_text
    if levels:
        text = f"{source_text.rstrip()}\n\n# sweep grid point {index}: {shown}\n"
    try:
        return scenario_from_mapping(mapping, source_text=text)
    except ScenarioError as err:
        raise ScenarioError.from_problems([
            Problem(f"grid point {index} ({shown}): {problem.field}".rstrip(": "), problem.message)
            for problem in err.problems]) from None
