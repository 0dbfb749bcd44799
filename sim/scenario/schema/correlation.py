"""``[correlation]``: the latent (Gaussian-copula) correlations of the covariates, as pairs or
as a matrix over some covariates; unlisted pairs are 0 and the full matrix over all covariates
must be positive definite."""

from __future__ import annotations

from typing import Annotated, Any, Iterable, Sequence

import numpy as np
from pydantic import BeforeValidator, ConfigDict, Field, Strict

from sim.scenario.messages import show, suggest
from sim.scenario.schema.common import (
    Facts,
    FileTable,
    Issue,
    Range,
    check_length,
    invalid,
)

#: The full matrix must have its smallest eigenvalue above this.
MIN_EIGENVALUE = 1e-10
Correlation = Annotated[float, Range(-1.0, 1.0, low_open=True, high_open=True)]


def _three_items(value: Any) -> Any:
    if isinstance(value, list) and len(value) != 3:
        raise invalid(f"expected [name, name, correlation], got {show(value)}")
    return value


Pair = Annotated[tuple[str, str, Correlation], Strict(False), BeforeValidator(_three_items)]


class CorrelationMatrix(FileTable):
    """``matrix = { names = [..], values = [[..], ..] }``: a square symmetric block with unit
    diagonal over the named covariates."""

    names: list[str] = Field(description="the covariate names of the rows/columns")
    values: list[list[float]] = Field(description="a square array of correlations")

    def checks(self, facts: Facts) -> Iterable[Issue]:
        yield from covariate_reference_issues(self.names, facts, ("names",))
        if len(set(self.names)) != len(self.names):
            yield Issue(f"names repeat in {show(self.names)}", ("names",))
        k = len(self.names)
        problem = check_length(self.values, k, "names (rows)")
        if problem:
            yield Issue(problem, ("values",))
            return
        for i, row in enumerate(self.values):
            problem = check_length(row, k, "names (columns)")
            if problem:
                yield Issue(problem, ("values", i))
                return
        values = self.values
        for i in range(k):
            if values[i][i] != 1.0:
                yield Issue(f"diagonal is {values[i][i]:g}, must be 1", ("values", i, i))
            for j in range(i + 1, k):
                if abs(values[i][j] - values[j][i]) > 1e-12:
                    yield Issue(f"{values[i][j]:g} differs from values[{j}][{i}] = "
                                f"{values[j][i]:g} (the matrix must be symmetric)",
                                ("values", i, j))
                elif not -1.0 < values[i][j] < 1.0:
                    yield Issue(f"{values[i][j]:g} is out of range (allowed: (-1, 1))",
                                ("values", i, j))


_FORMS = (("pairs",), ("matrix",))


class CorrelationTable(FileTable):
    """``[correlation]``: ``pairs`` or ``matrix`` (or neither: independence)."""

    model_config = ConfigDict(json_schema_extra={"not": {"required": ["pairs", "matrix"]}})
    pairs: list[Pair] | None = Field(
        None, description="[[name, name, correlation], ...]: latent correlations in (-1, 1)")
    matrix: CorrelationMatrix | None = Field(
        None, description="{ names = [..], values = [[..], ..] }: a block of the matrix")

    def checks(self, facts: Facts) -> Iterable[Issue]:
        if self.pairs is not None and self.matrix is not None:
            yield Issue("give either 'pairs' or 'matrix', not both")
            return
        issues = list(self._pair_issues(facts))
        yield from issues
        if issues or facts.covariate_names is None:
            return
        if self.matrix is not None and not all(
                name in facts.covariate_names for name in self.matrix.names):
            return
        smallest = float(np.linalg.eigvalsh(np.array(self.full_matrix(
            facts.covariate_names))).min())
        if smallest <= MIN_EIGENVALUE:
            yield Issue(f"the latent correlation matrix is not positive definite (smallest "
                        f"eigenvalue {smallest:.3g}); weaken some correlations")

    def _pair_issues(self, facts: Facts) -> Iterable[Issue]:
        seen: dict[tuple[str, str], str] = {}
        for i, (first, second, _) in enumerate(self.pairs or ()):
            at = ("pairs", i)
            references = list(covariate_reference_issues([first, second], facts, at))
            yield from references
            if references:
                continue
            if first == second:
                yield Issue(f"pairs {first!r} with itself", at)
                continue
            key = tuple(sorted((first, second)))
            if key in seen:
                yield Issue(f"the pair ({first}, {second}) is already given at {seen[key]}", at)
            seen.setdefault(key, f"correlation.pairs[{i}]")

    def full_matrix(self, names: Sequence[str]) -> tuple[tuple[float, ...], ...]:
        """The K x K latent correlation matrix over all covariates ``names`` (file order)."""
        index = {name: i for i, name in enumerate(names)}
        matrix = np.eye(len(names))
        if self.matrix is not None:
            positions = [index[name] for name in self.matrix.names]
            matrix[np.ix_(positions, positions)] = np.array(self.matrix.values, dtype=float)
        for first, second, rho in self.pairs or ():
            i, j = index[first], index[second]
            matrix[i, j] = matrix[j, i] = rho
        return tuple(tuple(float(x) for x in row) for row in matrix)


def covariate_reference_issues(names: Sequence[Any], facts: Facts, at: tuple[Any, ...]
                               ) -> Iterable[Issue]:
    """Problems of covariate names in an array at ``at`` (item ``i`` at ``(*at, i)``)."""
    if facts.covariate_names is None:
        return
    for i, name in enumerate(names):
        if name not in facts.covariate_names:
            yield Issue(f"{name!r} is not a covariate{suggest(name, facts.covariate_names)}"
                        f"(covariates: {', '.join(facts.covariate_names)})", (*at, i), name)
