"""Sweep files (``scenarios/sweeps/*.toml``): reading and validating them into a design.

A sweep file names scenario fields by dotted path and gives their values; the scenario itself
is a separate argument (``psmsim sweep SCENARIO SWEEP``), so one sweep runs on any scenario
that has the fields. The format is documented in ``docs/sweep_format.md`` and published as a
JSON Schema in ``docs/sweep.schema.json`` (generated from the models below; a test keeps them
equal)::

    [sweep]
    name = "hazard_ratio"
    question = "Type-I error and power of the matched log-rank test as the true HR varies"
    design = "factorial"          # factorial | one_at_a_time | morris | sobol
    replicates = 200              # per grid point (the CLI's --replicates overrides)

    unset = ["outcome.treatment.pfs_median", "outcome.treatment.os_median"]

    [set]                         # fields fixed at every grid point (merged into the scenario)
    outcome.treatment = { mode = "hazard_ratio", hazard_ratio = 0.6 }

    [factors.hr]                  # a factor: its name is the table key
    path = "outcome.treatment.hazard_ratio"
    values = [1.0, 0.8, 0.6, 0.5]

An invalid file gives one :class:`sim.errors.ScenarioError` with every problem, each naming
the dotted field (``factors.hr.values``) and what is allowed, worded as the scenario reader
words them (:mod:`sim.scenario.messages`).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from sim.errors import ScenarioError
from sim.scenario.messages import ISSUE, problems_from
from sim.scenario.schema.analysis import MAX_BLOCK_SIZE, MAX_REPLICATES, MAX_SEED
from sim.scenario.schema.common import IntRange
from sim.run.sweep_design import (
    Factor,
    SweepDesign,
    factorial_design,
    morris_design,
    one_at_a_time_design,
    sobol_design,
)
from sim.run.sweep_fields import parse_path, remove_fields

__all__ = ["SweepFile", "load_sweep", "parse_sweep", "sweep_factors", "build_design",
           "merge_fixed", "base_document", "sweep_json_schema"]

_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
Scalar = bool | int | float | str


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _issue(message: str) -> PydanticCustomError:
    """A problem worded as the scenario reader words them (``field: message``)."""
    return PydanticCustomError(ISSUE, "{message}", {"message": message})


class SweepSettings(_Table):
    """``[sweep]``: what the sweep is and how its points are chosen."""

    name: str = Field(pattern=_IDENTIFIER, description="identifier of the sweep (default run folder name)")
    title: str = Field("", description="one-line title")
    question: str = Field("", description="the question the sweep answers (printed in reports)")
    design: Literal["factorial", "one_at_a_time", "morris", "sobol"] = Field(
        description="factorial | one_at_a_time | morris | sobol")
    subset: str | None = Field(None, description="factorial only: keep the grid points where "
                               "this expression is true (factor names, literals, arithmetic, "
                               "comparisons, and/or/not)")
    common_random_numbers: bool = Field(True, description="every grid point uses the same block "
                                        "seeds, so differences between points are paired")
    replicates: Annotated[int, IntRange(1, MAX_REPLICATES, why="as [simulation] replicates")] | None = Field(
        None, description="replicates per grid point, 1 to 1000000 (default: the scenario's)")
    block_size: Annotated[int, IntRange(1, MAX_BLOCK_SIZE, why="a block is held in memory whole")] | None = Field(
        None, description="replicates per block, 1 to 10000 (default: the scenario's)")
    trajectories: Annotated[int, IntRange(2)] | None = Field(None, description="morris: number of trajectories")
    levels: Annotated[int, IntRange(2)] = Field(4, description="morris: grid levels of each range (even)")
    base_samples: Annotated[int, IntRange(2)] | None = Field(None, description="sobol: base sample size N "
                                     "(a power of 2); N (D + 2) points")
    seed: Annotated[int, IntRange(0, MAX_SEED, why="as [simulation] seed")] = Field(
        1, description="morris/sobol: seed of the sample, 0 to 2**63 - 1")
    surface: list[str] | None = Field(None, min_length=2, max_length=2, description="factorial "
                                      "unmeasured-confounder sweep: the factors of U's prevalence "
                                      "difference and U's log-HR, for the bias surface")
    reported: dict[str, float] | None = Field(None, description="what the paper printed for "
                                              "the matched PFS comparison: median_treated, "
                                              "median_control (months) and p_value (log-rank), "
                                              "for the E-value of its implied HR")
    unset: list[str] = Field(default_factory=list, description="scenario fields removed before "
                             "[set] is merged (e.g. the target medians when [set] switches the "
                             "treatment effect to a hazard ratio)")

    @model_validator(mode="after")
    def _design_options(self):
        if self.design == "morris" and self.trajectories is None:
            raise _issue("design 'morris' needs trajectories (>= 2)")
        if self.design == "sobol" and self.base_samples is None:
            raise _issue("design 'sobol' needs base_samples (a power of 2)")
        if self.subset is not None and self.design != "factorial":
            raise _issue("subset only filters a factorial design")
        if self.surface is not None and self.design != "factorial":
            raise _issue("surface needs a factorial design")
        if self.reported is not None and set(self.reported) != {"median_treated", "median_control", "p_value"}:
            raise _issue("reported needs exactly median_treated, median_control and p_value")
        return self


class FactorTable(_Table):
    """``[factors.<name>]``: one factor."""

    path: str | None = Field(None, description="the scenario field it sets (dotted path)")
    paths: list[str] | None = Field(None, min_length=1, description="several fields set together "
                                    "(each value a list, one per path) or scaled together")
    values: list[Any] | None = Field(None, min_length=1, description="factorial/one_at_a_time: "
                                     "the values (one list per value for linked paths)")
    scale: list[float] | None = Field(None, min_length=1, description="multipliers of every "
                                      "number under the path(s), instead of values")
    labels: list[Scalar] | None = Field(None, description="coordinate label of each value")
    range: list[float] | None = Field(None, min_length=2, max_length=2, description="morris/sobol: "
                                      "[low, high] (a multiplier range with scale_range)")
    scale_range: bool = Field(False, description="morris/sobol: the range multiplies every "
                              "number under the path(s)")
    integer: bool = Field(False, description="round values to whole numbers (sizes, ratios)")

    @model_validator(mode="after")
    def _one_source(self):
        if (self.path is None) == (self.paths is None):
            raise _issue("give path or paths (one of them)")
        for path in [self.path] if self.path is not None else self.paths:
            try:
                parse_path(path)
            except ScenarioError as err:
                raise _issue(str(err)) from None
        given = [key for key in ("values", "scale", "range") if getattr(self, key) is not None]
        if len(given) != 1:
            raise _issue("give exactly one of values, scale (multipliers) or range")
        if self.scale_range and self.range is None:
            raise _issue("scale_range needs a range")
        return self


class SweepFile(_Table):
    """A whole sweep file."""

    sweep: SweepSettings
    set: dict[str, Any] = Field(default_factory=dict, description="fields fixed at every grid "
                                "point, as scenario tables (merged into the scenario)")
    factors: dict[str, FactorTable] = Field(min_length=1, description="the factors, by name")

    @model_validator(mode="after")
    def _factor_names(self):
        import re

        for name in self.factors:
            if not re.match(_IDENTIFIER, name):
                raise _issue(f"factor name {name!r} must be an identifier (letters, digits, _)")
        continuous = self.sweep.design in ("morris", "sobol")
        for name in self.sweep.surface or ():
            if name not in self.factors:
                raise _issue(f"sweep.surface: {name!r} is not a factor (factors: "
                                 f"{', '.join(self.factors)})")
        for name, table in self.factors.items():
            if continuous and table.range is None:
                raise _issue(f"factors.{name}: design {self.sweep.design!r} needs a range "
                                 "[low, high] for every factor")
            if self.sweep.surface and name in self.sweep.surface and table.values is None:
                raise _issue(f"factors.{name}: a surface factor needs values")
            if not continuous and table.range is not None:
                raise _issue(f"factors.{name}: range is for morris/sobol designs; give "
                                 "values (or scale)")
        return self


def parse_sweep(text: str, *, source: str = "<string>") -> SweepFile:
    """Validate sweep TOML ``text``.

    Raises
    ------
    ScenarioError
        Invalid TOML (``source`` named), or every invalid field (one problem each).
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ScenarioError(source, f"invalid TOML: {err}") from None
    try:
        return SweepFile.model_validate(data)
    except ValidationError as err:
        raise ScenarioError.from_problems(problems_from(err)) from None


def load_sweep(path: str | os.PathLike[str]) -> SweepFile:
    """Read and validate a sweep file (one-line :class:`ScenarioError` on any problem)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(str(path), "no such sweep file") from None
    except IsADirectoryError:
        raise ScenarioError(str(path), "is a directory, not a sweep file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ScenarioError(str(path), f"cannot be read ({err})") from None
    return parse_sweep(text, source=str(path))


def sweep_factors(sweep: SweepFile) -> tuple[Factor, ...]:
    """The file's factors as :class:`sim.run.sweep_design.Factor` objects, in file order."""
    factors = []
    for name, table in sweep.factors.items():
        paths = (table.path,) if table.path is not None else tuple(table.paths)
        levels = tuple(table.scale if table.scale is not None else (table.values or ()))
        factors.append(Factor(
            name=name, paths=paths, levels=levels, labels=tuple(table.labels or ()),
            scale=table.scale is not None or table.scale_range,
            bounds=tuple(table.range) if table.range is not None else None,
            integer=table.integer,
        ))
    return tuple(factors)


def base_document(sweep: SweepFile, document: dict[str, Any]) -> dict[str, Any]:
    """The scenario ``document`` as every grid point starts from: ``[sweep] unset`` fields
    removed, then ``[set]`` merged in."""
    return merge_fixed(remove_fields(document, sweep.sweep.unset), sweep.set)


def merge_fixed(document: dict[str, Any], fixed: dict[str, Any]) -> dict[str, Any]:
    """``document`` with the ``[set]`` tables merged in (tables recursively, other values
    replaced); a new dict, the inputs untouched."""
    merged = dict(document)
    for key, value in fixed.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_fixed(merged[key], value)
        else:
            merged[key] = value
    return merged


def build_design(sweep: SweepFile, document: dict[str, Any]) -> SweepDesign:
    """The design of ``sweep`` on the scenario ``document`` (with ``[set]`` merged)."""
    factors = sweep_factors(sweep)
    settings = sweep.sweep
    if settings.design == "factorial":
        return factorial_design(factors, subset=settings.subset)
    if settings.design == "one_at_a_time":
        return one_at_a_time_design(factors, document)
    if settings.design == "morris":
        return morris_design(factors, trajectories=settings.trajectories,
                             num_levels=settings.levels, seed=settings.seed)
    return sobol_design(factors, base_samples=settings.base_samples, seed=settings.seed)


def sweep_json_schema() -> dict:
    """The JSON Schema of sweep files (``docs/sweep.schema.json``)."""
    schema = SweepFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "psmsim sweep file"
    return schema
