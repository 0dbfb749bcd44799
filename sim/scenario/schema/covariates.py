"""``[covariates.<name>]``: a covariate's kind, label, levels or bounds and one marginal per arm
(table mode) or one ``population`` marginal (selection mode); and the covariate coefficient
tables of other sections (``outcome.covariate_log_hr``, ``selection.log_odds``).

A covariate is a tagged union on ``kind``: each kind has its own keys and marginal forms, so
the JSON Schema tells an editor which marginal a ``binary`` covariate takes.
"""

from __future__ import annotations

import functools
import math
from typing import Annotated, Any, Iterable, Literal, Mapping, Union, get_args

from pydantic import BeforeValidator, ConfigDict, Field, WithJsonSchema

from sim.generate.marginals import fit_truncated_normal
from sim.scenario.messages import got, show, suggest
from sim.scenario.schema.common import (
    POPULATION,
    Alternatives,
    Facts,
    FileTable,
    Issue,
    KeyRules,
    Range,
    check_length,
    groups_schema,
    invalid,
)

Probability = Annotated[float, Range(0.0, 1.0)]
Positive = Annotated[float, Range(0.0, None, low_open=True)]
#: Probabilities of a categorical covariate must sum to 1 within this.
SUM_TOLERANCE = 1e-6

#: A count: checked against the arm size by the covariate (the message names both).
Count = Annotated[int, WithJsonSchema({"type": "integer", "minimum": 0})]
#: :func:`sim.generate.marginals.fit_truncated_normal`, remembered: the fit (a root search) is
#: both the feasibility check of a normal marginal and its parameters in the built scenario.
fitted_truncated_normal = functools.lru_cache(maxsize=1024)(fit_truncated_normal)


def count_problem(count: int, size: int | None, what: str = "count") -> str | None:
    """The problem of a count in an arm of ``size`` patients (None: size unknown), or None."""
    allowed = f"an integer 0 to {size}" if size else "an integer >= 0"
    if count < 0:
        return f"{what} {count} is negative (allowed: {allowed})"
    if size is not None and count > size:
        return f"{what} {count} exceeds arm size {size} (allowed: {allowed})"
    return None


def probability_sum_problem(values: list[float]) -> str | None:
    """The problem of probabilities that do not sum to 1 within :data:`SUM_TOLERANCE`."""
    total = math.fsum(values)
    if abs(total - 1.0) > SUM_TOLERANCE:
        return f"{show(values)} sums to {total:.6g}, not 1 (tolerance {SUM_TOLERANCE:g})"
    return None


# --------------------------------------------------------------------------------------------
# Marginals
# --------------------------------------------------------------------------------------------


_BINARY = (("count",), ("proportion",))
_CATEGORICAL = (("counts",), ("probabilities",))
_LOGNORMAL = (("median", "q1", "q3"), ("mean", "sd"))


class BinaryMarginal(Alternatives):
    """``{ count = 32 }`` (table mode) or ``{ proportion = 0.91 }``."""

    model_config = ConfigDict(json_schema_extra=groups_schema(_BINARY))
    groups = _BINARY
    count_keys = ("count",)
    count: Count | None = Field(None, description="patients with the value 1, 0 to the arm "
                                                  "size")
    proportion: Probability | None = Field(None, description="a probability in [0, 1]")


class CategoricalMarginal(Alternatives):
    """``{ counts = [..] }`` (table mode) or ``{ probabilities = [..] }``, one per level."""

    model_config = ConfigDict(json_schema_extra=groups_schema(_CATEGORICAL))
    groups = _CATEGORICAL
    count_keys = ("counts",)
    counts: list[Count] | None = Field(
        None, description="patients per level, summing to the arm size")
    probabilities: list[Probability] | None = Field(
        None, description="one probability per level, summing to 1")

    def checks(self, facts: Facts) -> Iterable[Issue]:
        issues = list(super().checks(facts))
        if self.probabilities is not None and not issues:
            problem = probability_sum_problem(self.probabilities)
            if problem:
                issues.append(Issue(problem, ("probabilities",)))
        return issues


class NormalMarginal(FileTable):
    """``{ mean = 53.0, sd = 10.3 }``: the printed mean and SD (of the bounded values)."""

    mean: float = Field(description="the mean (as printed)")
    sd: Positive = Field(description="the SD, > 0")


class LognormalMarginal(Alternatives):
    """``{ median = 20.0, q1 = 12.2, q3 = 29.7 }`` or ``{ mean = 22.0, sd = 11.0 }``."""

    model_config = ConfigDict(json_schema_extra=groups_schema(_LOGNORMAL))
    groups = _LOGNORMAL
    median: Positive | None = Field(None, description="the median, > 0")
    q1: Positive | None = Field(None, description="the lower quartile, > 0")
    q3: Positive | None = Field(None, description="the upper quartile, > 0")
    mean: Positive | None = Field(None, description="the mean, > 0")
    sd: Positive | None = Field(None, description="the SD, > 0")

    def checks(self, facts: Facts) -> Iterable[Issue]:
        issues = list(super().checks(facts))
        if not issues and self.median is not None and not self.q1 < self.median < self.q3:
            issues.append(Issue(f"quartiles must satisfy q1 < median < q3, got q1 {self.q1:g}, "
                                f"median {self.median:g}, q3 {self.q3:g}"))
        return issues


# --------------------------------------------------------------------------------------------
# Covariates
# --------------------------------------------------------------------------------------------


#: Keys only some kinds take, and why.
_KIND_KEYS = {"levels": "only categorical covariates have levels",
              "bounds": "only normal covariates take bounds"}


class _Covariate(FileTable):
    """The keys every kind has; the marginals are the extra keys (arm names or population)."""

    model_config = ConfigDict(extra="allow")
    kind: str = Field(description="binary, categorical, normal or lognormal")
    label: str | None = Field(None, description="the paper's row label (default: the name)")

    @classmethod
    def key_rules(cls, data: Mapping[str, Any], facts: Facts) -> KeyRules:
        kind = get_args(cls.model_fields["kind"].annotation)[0]
        misplaced = {key: f"{reason} (kind is {kind!r})"
                     for key, reason in _KIND_KEYS.items() if key not in cls.model_fields}
        keys = facts.marginal_keys()
        if keys is None:
            return KeyRules(names=None, misplaced=misplaced)
        if facts.mode == "selection":
            names = {POPULATION: f"the {kind} marginal of the population"}
            misplaced |= {arm: "selection mode takes one 'population' marginal, not one per arm"
                          for arm in facts.arms or {}}
        else:
            names = {arm: f"the {kind} marginal in arm {arm!r}" for arm in keys}
            misplaced[POPULATION] = (f"table mode takes one marginal per arm "
                                     f"({', '.join(keys)})")
        return KeyRules(names=names, misplaced=misplaced)

    def marginals(self) -> dict[str, Any]:
        """The marginal tables by arm name (or ``population``), in file order."""
        return dict(self.__pydantic_extra__ or {})

    def size_of(self, key: str, facts: Facts) -> int | None:
        arm = (facts.arms or {}).get(key)
        return arm.size if arm is not None and facts.mode == "table" else None


class BinaryCovariate(_Covariate):
    """A 0/1 covariate."""

    kind: Literal["binary"] = Field(description="binary: 0/1")
    __pydantic_extra__: dict[str, BinaryMarginal] = Field(init=False)

    def checks(self, facts: Facts) -> Iterable[Issue]:
        for key, marginal in self.marginals().items():
            if marginal.count is not None:
                problem = count_problem(marginal.count, self.size_of(key, facts))
                if problem:
                    yield Issue(problem, (key, "count"), marginal.count)


class CategoricalCovariate(_Covariate):
    """A covariate with named levels, stored as the level index 0..k-1."""

    kind: Literal["categorical"] = Field(description="categorical: named levels")
    levels: list[str] = Field(description="an array of >= 2 level names")
    __pydantic_extra__: dict[str, CategoricalMarginal] = Field(init=False)

    def checks(self, facts: Facts) -> Iterable[Issue]:
        if len(self.levels) < 2:
            yield Issue(f"{len(self.levels)} level(s) given; a categorical covariate needs >= 2",
                        ("levels",))
            return
        if len(set(self.levels)) != len(self.levels):
            yield Issue(f"level names repeat in {show(self.levels)}", ("levels",))
            return
        for key, marginal in self.marginals().items():
            for name, values in (("counts", marginal.counts),
                                 ("probabilities", marginal.probabilities)):
                if values is None:
                    continue
                problem = check_length(values, len(self.levels), "levels")
                if problem:
                    yield Issue(problem, (key, name))
                elif name == "counts":
                    yield from self._count_issues(key, values, self.size_of(key, facts))

    @staticmethod
    def _count_issues(key: str, counts: list[int], size: int | None) -> Iterable[Issue]:
        problems = [(i, count_problem(count, size)) for i, count in enumerate(counts)]
        bad = [(i, problem) for i, problem in problems if problem]
        for i, problem in bad:
            yield Issue(problem, (key, "counts", i), counts[i])
        if not bad and size is not None and sum(counts) != size:
            yield Issue(f"{show(counts)} sums to {sum(counts)}, not the arm size {size}",
                        (key, "counts"))


Bound = Annotated[float, Field(allow_inf_nan=True)]


class NormalCovariate(_Covariate):
    """A normal covariate, truncated to ``bounds`` if given."""

    kind: Literal["normal"] = Field(description="normal: mean and SD")
    bounds: list[Bound] | None = Field(
        None, description="[lower, upper]: truncation bounds, -inf/inf for no bound",
        json_schema_extra={"minItems": 2, "maxItems": 2})
    __pydantic_extra__: dict[str, NormalMarginal] = Field(init=False)

    def bound_values(self) -> tuple[float | None, float | None]:
        """(lower, upper), None for no bound."""
        if self.bounds is None:
            return None, None
        lower, upper = self.bounds
        return (None if lower == -math.inf else lower), (None if upper == math.inf else upper)

    def checks(self, facts: Facts) -> Iterable[Issue]:
        if self.bounds is not None:
            problem = _bounds_problem(self.bounds)
            if problem:
                yield Issue(problem, ("bounds",), self.bounds)
                return
        lower, upper = self.bound_values()
        if lower is None and upper is None:
            return
        for key, marginal in self.marginals().items():
            if (lower is not None and marginal.mean <= lower) or (
                    upper is not None and marginal.mean >= upper):
                yield Issue(f"{marginal.mean:g} is not inside the covariate's bounds "
                            f"[{_bound(lower)}, {_bound(upper)}]", (key, "mean"), marginal.mean)
                continue
            try:
                fitted_truncated_normal(marginal.mean, marginal.sd, lower=lower, upper=upper)
            except ValueError as err:
                yield Issue(str(err), (key,))


def _bounds_problem(bounds: list[float]) -> str | None:
    if len(bounds) != 2 or any(math.isnan(b) for b in bounds):
        return f"expected [lower, upper] (use -inf/inf for no bound), got {show(bounds)}"
    lower, upper = bounds
    if not lower < upper:
        return f"lower {lower:g} must be < upper {upper:g}"
    if lower == math.inf or upper == -math.inf:
        return f"{show(bounds)} leaves no values"
    return None


def _bound(value: float | None) -> str:
    return "unbounded" if value is None else f"{value:g}"


class LognormalCovariate(_Covariate):
    """A positive, right-skewed covariate (a paper's median (IQR) or mean ± SD row)."""

    kind: Literal["lognormal"] = Field(description="lognormal: median (IQR) or mean and SD")
    __pydantic_extra__: dict[str, LognormalMarginal] = Field(init=False)


Covariate = Annotated[Union[BinaryCovariate, CategoricalCovariate, NormalCovariate,
                            LognormalCovariate], Field(discriminator="kind")]


# --------------------------------------------------------------------------------------------
# Coefficient tables: covariate name -> number (categorical: one per level)
# --------------------------------------------------------------------------------------------


def _number_or_numbers(value: Any) -> Any:
    """A coefficient: a number, or an array of numbers (one per level of a categorical)."""
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            raise invalid(f"expected a number{' array' if isinstance(value, list) else ''}, "
                          f"got {got(value)}")
        if not math.isfinite(item):
            raise invalid(f"expected a finite number, got {show(item)}")
    return [float(item) for item in value] if isinstance(value, list) else float(value)


Coefficient = Annotated[Any, BeforeValidator(_number_or_numbers), WithJsonSchema({
    "oneOf": [{"type": "number"}, {"type": "array", "items": {"type": "number"}}]})]


def coefficient_issues(coefficients: Mapping[str, Any], facts: Facts, what: str,
                       at: tuple[str, ...]) -> Iterable[Issue]:
    """Problems of a table covariate name -> coefficient located at ``at``: unknown names
    (closest suggested), and a categorical covariate's array (one per level, level 0 is the
    reference with coefficient 0)."""
    names = facts.covariate_names
    if names is None:
        return
    for name, value in coefficients.items():
        where = (*at, name)
        if name not in names:
            yield Issue(f"{name!r} is not a covariate{suggest(name, names)}"
                        f"(covariates: {', '.join(names)})", where, value)
            continue
        covariate = facts.covariates.get(name)
        if covariate is None:
            continue
        if covariate.kind != "categorical":
            if isinstance(value, list):
                yield Issue(f"expected a number, got {got(value)}", where, value)
            continue
        if not isinstance(value, list):
            yield Issue(f"expected an array, got {got(value)}", where, value)
            continue
        problem = check_length(value, len(covariate.levels),
                               f"levels ({', '.join(covariate.levels)}); one {what} per level")
        if problem:
            yield Issue(problem, where, value)
        elif value[0] != 0.0:
            yield Issue(f"{value[0]:g}: the first level ({covariate.levels[0]!r}) is the "
                        f"reference, its {what} must be 0", (*where, 0), value[0])
