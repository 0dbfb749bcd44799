"""Sweep designs as pure functions: which grid points a sweep runs, and how they map onto
generated cohorts (conditions) and analysis methods on those cohorts (variants).

A sweep names scenario fields by dotted path (:mod:`sim.run.sweep_fields`) and gives each
*factor* its levels or range. Four designs:

* ``factorial``: every combination of the factors' levels (first factor slowest), optionally
  filtered by a ``subset`` expression (:mod:`sim.run.sweep_subset`), as SimDesign's
  ``createDesign``;
* ``one_at_a_time``: the base point (every factor at the scenario's own value), then each
  factor moved alone to each of its other levels (tornado data);
* ``morris``: SALib's Morris trajectories over the factors' ranges (Morris 1991; Campolongo et
  al. 2007), ``trajectories × (D + 1)`` points;
* ``sobol``: SALib's Saltelli/Sobol sample (Saltelli 2002, 2010), ``N × (D + 2)`` points
  (first-order and total indices).

A factor has one path, or several *linked* paths whose values move together (each level a
list, e.g. both arm sizes), or ``scale = true``: its levels multiply every number under each
path (all covariate log-HRs at once: "confounding strength"). Factors whose paths all start
with ``analysis.`` change only the analysis: :func:`sweep_layout` makes them *variants*
(methods analysing the same generated cohorts) instead of new conditions, so they need no
regeneration and their comparison is paired.

:func:`point_document` gives a point's scenario document and :func:`point_scenario` validates it
through :func:`sim.scenario.scenario_from_mapping`; an invalid value names the grid point and
the field.

References
----------
Chalmers RP, Adkins MC (2020). Quant Methods Psychol 16:248-280 (SimDesign designs). Morris MD
(1991). Technometrics 33:161-174. Campolongo F, Cariboni J, Saltelli A (2007). Environ Model
Softw 22:1509-1518. Saltelli A (2002). Comput Phys Commun 145:280-297. Saltelli A et al. (2010).
Comput Phys Commun 181:259-270.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from analysis.performance.sensitivity.global_indices import salib_problem, salib_seed
from sim.errors import ScenarioError
from sim.run.sweep_fields import (
    counts_as_proportions,
    get_field,
    is_analysis_path,
    resized_arms,
    scale_numbers,
    set_fields,
)
from sim.run.sweep_subset import compile_subset

__all__ = [
    "DESIGNS", "Factor", "DesignPoint", "SweepDesign", "SweepLayout",
    "factorial_design", "one_at_a_time_design", "morris_design", "sobol_design",
    "sweep_layout", "point_document", "point_scenario",
]

DesignKind = Literal["factorial", "one_at_a_time", "morris", "sobol"]
DESIGNS: tuple[str, ...] = ("factorial", "one_at_a_time", "morris", "sobol")


def _label(value: Any) -> Any:
    """A scalar coordinate value for a level (numbers and strings as they are, the rest as JSON)."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, separators=(",", ":"))


@dataclass(frozen=True)
class Factor:
    """One swept factor.

    Attributes
    ----------
    name : its name: a dim or coordinate of the results (default: its path).
    paths : the scenario field(s) it sets; several paths are *linked* (each level is a list of
        one value per path).
    levels : values for ``factorial`` / ``one_at_a_time`` (multipliers when ``scale``).
    labels : coordinate value of each level (default: the level, or its JSON text when it is
        not a number or string).
    scale : levels multiply every number under each path instead of replacing it.
    bounds : ``(low, high)`` range for ``morris`` / ``sobol``.
    integer : round sampled (or scaled) values to whole numbers (arm sizes, ratios).
    """

    name: str
    paths: tuple[str, ...]
    levels: tuple[Any, ...] = ()
    labels: tuple[Any, ...] = ()
    scale: bool = False
    bounds: tuple[float, float] | None = None
    integer: bool = False

    @property
    def analysis_only(self) -> bool:
        """True when every path only changes the analysis (``analysis.*``)."""
        return all(is_analysis_path(path) for path in self.paths)

    @property
    def linked(self) -> bool:
        return len(self.paths) > 1 and not self.scale

    def label(self, level: Any) -> Any:
        """The coordinate value of ``level``."""
        if self.labels and level in self.levels:
            return self.labels[self.levels.index(level)]
        return _label(level)

    def fields(self, level: Any, document: Mapping[str, Any]) -> dict[str, Any]:
        """``path -> value`` this factor sets at ``level`` (``document`` gives the base values
        a ``scale`` factor multiplies)."""
        if self.scale:
            out = {}
            for path in self.paths:
                value = scale_numbers(get_field(document, path), float(level))
                out[path] = _rounded(value) if self.integer else value
            return out
        if self.linked:
            return dict(zip(self.paths, level))
        value = level
        if self.integer and isinstance(value, float):
            value = int(round(value))
        return {self.paths[0]: value}

    def base_level(self, document: Mapping[str, Any]) -> Any:
        """The level equal to the scenario's own value (1.0 for a ``scale`` factor)."""
        if self.scale:
            return 1.0
        values = [get_field(document, path) for path in self.paths]
        missing = [path for path, value in zip(self.paths, values) if value is None]
        if missing:
            raise ScenarioError(f"factor {self.name!r}", f"the scenario has no value at "
                                f"{', '.join(missing)}, so a one-at-a-time design has no base "
                                "for it; set it in the scenario first")
        return list(values) if self.linked else values[0]


def _rounded(value: Any) -> Any:
    if isinstance(value, bool) or isinstance(value, str):
        return value
    if isinstance(value, float):
        return int(round(value))
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    return value


@dataclass(frozen=True)
class DesignPoint:
    """A grid point: its index, each factor's level, and (one-at-a-time) the factor moved
    away from the base (``""`` at the base point)."""

    index: int
    levels: Mapping[str, Any]
    varied: str = ""


@dataclass(frozen=True)
class SweepDesign:
    """A sweep's points.

    Attributes
    ----------
    kind : ``factorial`` | ``one_at_a_time`` | ``morris`` | ``sobol``.
    factors : the factors, in file order.
    points : the grid points, in design order (Morris and Sobol: SALib's row order, which
        their analyses need).
    sample : Morris/Sobol: SALib's sample, shape (point, factor), in the factors' units
        (before integer rounding); None otherwise.
    num_levels : Morris grid levels (None otherwise).
    base_samples : Sobol base sample size N (None otherwise).
    seed : seed of the Morris/Sobol sample.
    """

    kind: str
    factors: tuple[Factor, ...]
    points: tuple[DesignPoint, ...]
    sample: np.ndarray | None = None
    num_levels: int | None = None
    base_samples: int | None = None
    seed: int | None = None


def _check_factors(factors: Sequence[Factor], *, needs: str) -> None:
    names = [f.name for f in factors]
    if not factors:
        raise ScenarioError("factors", "a sweep needs at least one factor")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ScenarioError("factors", f"factor name(s) {', '.join(repeated)} used twice")
    paths = [p for f in factors for p in f.paths]
    doubled = sorted({p for p in paths if paths.count(p) > 1})
    if doubled:
        raise ScenarioError("factors", f"field(s) {', '.join(doubled)} set by two factors")
    for factor in factors:
        where = f"factors.{factor.name}"
        if needs == "levels":
            if not factor.levels:
                raise ScenarioError(f"{where}.values", "give at least one value")
            if factor.linked and any(not isinstance(level, (list, tuple)) or
                                     len(level) != len(factor.paths) for level in factor.levels):
                raise ScenarioError(f"{where}.values", f"each value of linked paths must be a "
                                    f"list of {len(factor.paths)} values, one per path")
            if factor.labels and len(factor.labels) != len(factor.levels):
                raise ScenarioError(f"{where}.labels", f"{len(factor.labels)} labels for "
                                    f"{len(factor.levels)} values")
            labels = [factor.label(level) for level in factor.levels]
            if len(set(map(repr, labels))) != len(labels):
                raise ScenarioError(f"{where}.values", "values repeat")
        else:
            if factor.bounds is None:
                raise ScenarioError(f"{where}.range", f"a {needs} design needs a range "
                                    "[low, high] for every factor")
            low, high = factor.bounds
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise ScenarioError(f"{where}.range", f"[{low}, {high}] must be finite with "
                                    "low < high")
            if factor.linked:
                raise ScenarioError(f"{where}.paths", f"a {needs} design samples one number per "
                                    "factor: use one path, or scale = true for several")


def factorial_design(factors: Sequence[Factor], *, subset: str | None = None) -> SweepDesign:
    """Every combination of the factors' levels (first factor slowest), kept where
    ``subset`` holds.

    Raises
    ------
    ScenarioError
        Bad factors or subset expression, or a subset that keeps no point.
    """
    factors = tuple(factors)
    _check_factors(factors, needs="levels")
    keep = None
    if subset is not None:
        names = {f.name for f in factors} | {f.paths[0] for f in factors if len(f.paths) == 1}
        keep = compile_subset(subset, names)
    points = []
    for combination in itertools.product(*(f.levels for f in factors)):
        levels = {f.name: level for f, level in zip(factors, combination)}
        if keep is not None:
            values = {f.name: f.label(level) for f, level in zip(factors, combination)}
            values.update({f.paths[0]: values[f.name] for f in factors if len(f.paths) == 1})
            if not keep(values):
                continue
        points.append(DesignPoint(len(points), levels))
    if not points:
        raise ScenarioError("subset", f"{subset!r} keeps none of the grid points")
    return SweepDesign("factorial", factors, tuple(points))


def one_at_a_time_design(factors: Sequence[Factor], document: Mapping[str, Any]) -> SweepDesign:
    """The base point (every factor at the scenario's value), then each factor alone at each
    of its other levels.

    Parameters
    ----------
    factors : factors with levels.
    document : the base scenario document (gives each factor's base value).
    """
    factors = tuple(factors)
    _check_factors(factors, needs="levels")
    base = {f.name: f.base_level(document) for f in factors}
    points = [DesignPoint(0, dict(base))]
    for factor in factors:
        for level in factor.levels:
            if _same(level, base[factor.name]):
                continue
            levels = dict(base)
            levels[factor.name] = level
            points.append(DesignPoint(len(points), levels, varied=factor.name))
    return SweepDesign("one_at_a_time", factors, tuple(points))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) == float(b)
    return a == b


def _problem(factors: Sequence[Factor]) -> dict:
    return salib_problem([f.name for f in factors], [f.bounds for f in factors])


def _sampled_points(factors: tuple[Factor, ...], sample: np.ndarray) -> tuple[DesignPoint, ...]:
    points = []
    for index, row in enumerate(sample):
        levels = {}
        for factor, value in zip(factors, row):
            value = float(value)
            levels[factor.name] = int(round(value)) if factor.integer and not factor.scale else value
        points.append(DesignPoint(index, levels))
    return tuple(points)


def morris_design(factors: Sequence[Factor], *, trajectories: int, num_levels: int = 4,
                  seed: int) -> SweepDesign:
    """Morris trajectories over the factors' ranges (SALib ``morris.sample``).

    Parameters
    ----------
    trajectories : int >= 2
        Number of trajectories r; the design has ``r (D + 1)`` points.
    num_levels : int, even >= 2
        Grid levels p of each factor's range.
    seed : int, keyword-only
        Seed of the sample (any int >= 0).
    """
    from SALib.sample import morris

    factors = tuple(factors)
    _check_factors(factors, needs="morris")
    if trajectories < 2:
        raise ScenarioError("design.trajectories", f"{trajectories}: needs at least 2")
    if num_levels < 2 or num_levels % 2:
        raise ScenarioError("design.levels", f"{num_levels}: must be an even number >= 2")
    sample = morris.sample(_problem(factors), int(trajectories), num_levels=int(num_levels),
                           seed=salib_seed(seed))
    return SweepDesign("morris", factors, _sampled_points(factors, sample), sample=sample,
                       num_levels=int(num_levels), seed=int(seed))


def sobol_design(factors: Sequence[Factor], *, base_samples: int, seed: int) -> SweepDesign:
    """Saltelli's sample for first-order and total Sobol indices (SALib ``sobol.sample``,
    scrambled Sobol' sequence, ``calc_second_order=False``): ``N (D + 2)`` points.

    Parameters
    ----------
    base_samples : int, a power of 2
        N.
    seed : int, keyword-only
        Seed of the scrambling.
    """
    from SALib.sample import sobol

    factors = tuple(factors)
    _check_factors(factors, needs="sobol")
    if base_samples < 2 or base_samples & (base_samples - 1):
        raise ScenarioError("design.base_samples", f"{base_samples}: must be a power of 2 "
                            "(the Sobol' sequence's balance properties need it)")
    sample = sobol.sample(_problem(factors), int(base_samples), calc_second_order=False,
                          scramble=True, seed=salib_seed(seed))
    return SweepDesign("sobol", factors, _sampled_points(factors, sample), sample=sample,
                       base_samples=int(base_samples), seed=int(seed))


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
        raise ScenarioError(f"grid point {index} ({shown})", str(err)) from None
