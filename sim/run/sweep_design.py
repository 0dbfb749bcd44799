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
with ``analysis.`` change only the analysis: :mod:`sim.run.sweep_points` makes them *variants*
(methods analysing the same generated cohorts) instead of new conditions, and turns a point
into a validated scenario.

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
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from analysis.performance.sensitivity.global_indices import salib_problem, salib_seed
from sim.errors import ScenarioError
from sim.run.sweep_fields import get_field, is_analysis_path, scale_numbers
from sim.run.sweep_subset import compile_subset

__all__ = [
    "DESIGNS", "Factor", "DesignPoint", "SweepDesign",
    "factorial_design", "one_at_a_time_design", "morris_design", "sobol_design",
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
