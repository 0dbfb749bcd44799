"""Building blocks of the scenario file models.

:class:`FileTable` is the base of every TOML table: strict types (an integer field takes
``35``, not ``35.0`` or ``true``), no NaN or infinity unless a field allows it, and one
wrap validator that does what pydantic's ``extra="forbid"`` alone cannot word well:

- an unknown key is refused with the closest valid key suggested and the allowed keys listed
  (``censoring.dropuot_rate: unknown key; did you mean 'dropout_rate'? (allowed: ...)``);
- a key that belongs to another variant is refused with the reason
  (``outcome.progression.shape: not allowed here: only used with baseline 'weibull'``);
- tables keyed by the scenario's own names (one marginal per arm) accept exactly those names;
- a missing required key says what is required (the field's description);
- the checks across fields of a table (:meth:`FileTable.checks`) run once its fields are valid,
  and every problem of the table is reported, not only the first.

What a table needs to know about the rest of the file (the mode, the arms and their sizes, the
covariates and their kinds) it reads from :class:`Facts`, the validation context
(``model_validate(data, context=facts)``), gathered beforehand from the sections it depends on.
When a fact is unknown (that section is itself invalid) the checks needing it are skipped: the
section's own problems are reported instead.

:class:`Range` and :class:`IntRange` are number constraints whose message states the allowed
interval (``-4.6 is out of range (allowed: > 0)``) and which publish it in the JSON Schema.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable, Mapping, Sequence

from pydantic import (
    BaseModel,
    ConfigDict,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError, core_schema

from sim.scenario.messages import ISSUE, got, show, suggest

POPULATION = "population"
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
_NAME = re.compile(NAME_PATTERN)


@dataclass(frozen=True)
class ArmFacts:
    """An arm as the other sections need it: its size (0 in selection mode) and treatment."""

    size: int
    treated: bool


@dataclass(frozen=True)
class CovariateFacts:
    """A covariate as the other sections need it: its kind and levels (categorical)."""

    kind: str
    levels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Facts:
    """What the sections of a file need to know about each other (the validation context).

    ``mode`` is None when ``[study]`` is invalid; ``arms`` is None when ``[arms]`` is invalid
    (names and sizes then unknown); ``covariate_names`` holds every ``[covariates.<name>]`` key
    (None when ``covariates`` is not a table) and ``covariates`` the facts of each covariate
    whose table is valid.
    """

    mode: str | None = None
    arms: Mapping[str, ArmFacts] | None = None
    covariate_names: tuple[str, ...] | None = None
    covariates: Mapping[str, CovariateFacts] = field(default_factory=dict)
    #: Whether [unmeasured] gives a population prevalence (None: unknown).
    population_unmeasured: bool | None = None
    #: The ``[adverse_events.<name>]`` keys (None when that section is not a table).
    adverse_event_names: tuple[str, ...] | None = None

    def marginal_keys(self) -> tuple[str, ...] | None:
        """The keys of a covariate's marginals: the arm names, or ``population``."""
        if self.mode == "selection":
            return (POPULATION,)
        if self.mode == "table" and self.arms is not None:
            return tuple(self.arms)
        return None


def facts_of(info: ValidationInfo) -> Facts:
    return info.context if isinstance(info.context, Facts) else Facts()


@dataclass(frozen=True)
class Issue:
    """A problem found by a model: ``at`` is the location below the table (``("q3",)``,
    ``("sorafenib", "count")``; empty for the table itself)."""

    message: str
    at: tuple[str | int, ...] = ()
    value: Any = None


def invalid(message: str) -> PydanticCustomError:
    """An error carrying one of our messages, for ``raise`` in a validator (located at the
    value being validated)."""
    return PydanticCustomError(ISSUE, "{message}", {"message": message})


@dataclass(frozen=True)
class KeyRules:
    """Which keys a table takes beyond its fixed fields, decided from the facts.

    ``names``: keys named by the scenario (arm names), each required, mapped to what it holds;
    None when the names are unknown (any key is then accepted and validated).
    ``required``: optional fields that are required here, mapped to what they hold.
    ``misplaced``: keys of another variant, mapped to why they are not allowed here.
    ``refused``: keys refused with a message of their own (e.g. a key of an older format and
    where its content goes now).
    """

    names: Mapping[str, str] | None = field(default_factory=dict)
    required: Mapping[str, str] = field(default_factory=dict)
    misplaced: Mapping[str, str] = field(default_factory=dict)
    refused: Mapping[str, str] = field(default_factory=dict)


class FileTable(BaseModel):
    """A TOML table of the scenario file (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    #: The keys the file gave, in file order (set by the validator).
    _keys: list[str] = PrivateAttr(default_factory=list)

    @classmethod
    def key_rules(cls, data: Mapping[str, Any], facts: Facts) -> KeyRules:
        """The keys this table takes beyond its fields (override where they depend on facts)."""
        return KeyRules()

    def checks(self, facts: Facts) -> Iterable[Issue]:
        """Rules across the (valid) fields of this table; each problem as an :class:`Issue`."""
        return ()

    @model_validator(mode="wrap")
    @classmethod
    def _validate_table(cls, data: Any, handler: Any, info: ValidationInfo) -> Any:
        if isinstance(data, cls):
            return data
        if not isinstance(data, dict):
            raise invalid(f"expected a table, got {got(data)}")
        facts = facts_of(info)
        rules = cls.key_rules(data, facts)
        issues: list[Issue] = []
        known = [field.alias or name for name, field in cls.model_fields.items()
                 if name not in rules.misplaced]
        allowed = known + [name for name in (rules.names or {}) if name not in known]
        open_names = rules.names is None and cls.model_config.get("extra") == "allow"
        kept = {}
        for key, value in data.items():
            if key in rules.refused:
                issues.append(Issue(rules.refused[key], (key,), value))
            elif key in rules.misplaced:
                issues.append(Issue(f"not allowed here: {rules.misplaced[key]}", (key,), value))
            elif key in allowed or open_names:
                kept[key] = value
            else:
                issues.append(Issue(f"unknown key{suggest(key, allowed)}"
                                    f"(allowed: {', '.join(allowed) or 'none'})", (key,), value))
        for key, what in {**rules.required, **(rules.names or {})}.items():
            if key not in data:
                issues.append(Issue(f"missing (required: {what})", (key,)))
        errors: list[Any] = [_line_error(issue) for issue in issues]
        table = None
        try:
            table = handler(kept)
        except ValidationError as error:
            errors.extend(cls._reworded(error))
        if table is not None:
            table._keys = list(kept)
            errors.extend(_line_error(issue) for issue in table.checks(facts))
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return table

    @classmethod
    def _reworded(cls, error: ValidationError) -> list[Any]:
        """pydantic's errors, ready to raise again; a missing field says what it holds."""
        errors = []
        for detail in error.errors(include_url=False):
            loc, kind = detail["loc"], detail["type"]
            if kind == "missing" and len(loc) == 1 and loc[0] in cls.model_fields:
                description = cls.model_fields[loc[0]].description
                errors.append(_line_error(Issue(
                    f"missing (required: {description})" if description else "missing", loc)))
            elif kind == ISSUE:
                errors.append({"type": PydanticCustomError(ISSUE, "{message}", detail["ctx"]),
                               "loc": loc, "input": detail.get("input")})
            else:
                errors.append({"type": kind, "loc": loc, "input": detail.get("input"),
                               "ctx": detail.get("ctx") or {}})
        return errors

    def given(self, name: str) -> bool:
        """Whether the file sets ``name`` (not its default)."""
        return name in self._keys

    def given_keys(self) -> list[str]:
        """The keys the file sets, in file order."""
        return list(self._keys)


def _line_error(issue: Issue) -> dict[str, Any]:
    return {"type": PydanticCustomError(ISSUE, "{message}", {"message": issue.message}),
            "loc": issue.at, "input": issue.value}


def check_name(name: str, what: str) -> str | None:
    """The problem of a table name (arm, covariate, adverse event, method), or None."""
    if not _NAME.match(name):
        return (f"{name!r} is not a valid {what} name (allowed: letters, digits and "
                f"underscores, not starting with a digit)")
    return None


# --------------------------------------------------------------------------------------------
# Numbers with a stated range
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Range:
    """``Annotated[float, Range(...)]``: low <(=) x <(=) high (None = unbounded).

    The message states the interval (and ``unit``; ``why`` explains a bound set for
    feasibility; ``why_high`` one that explains only the upper bound), and the JSON Schema gets
    minimum/maximum.
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    unit: str = ""
    why: str = ""
    why_high: str = ""

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> Any:
        json_schema = handler(schema)
        if self.low is not None:
            json_schema["exclusiveMinimum" if self.low_open else "minimum"] = self.low
        if self.high is not None:
            json_schema["exclusiveMaximum" if self.high_open else "maximum"] = self.high
        return json_schema

    def contains(self, number: float) -> bool:
        too_low = self.low is not None and (number <= self.low if self.low_open
                                            else number < self.low)
        too_high = self.high is not None and (number >= self.high if self.high_open
                                              else number > self.high)
        return not (too_low or too_high)

    def text(self) -> str:
        """``[0, 1]``, ``> 0``, ``(-1, 1)`` ..."""
        low, high = self.low, self.high
        if high is None:
            return f"{'>' if self.low_open else '>='} {low:g}"
        if low is None:
            return f"{'<' if self.high_open else '<='} {high:g}"
        return (f"{'(' if self.low_open else '['}{low:g}, {high:g}"
                f"{')' if self.high_open else ']'}")

    def _check(self, number: float) -> float:
        if not self.contains(number):
            above = self.high is not None and number >= self.high
            why = self.why or (self.why_high if above else "")
            why = f"; {why}" if why else ""
            raise invalid(f"{show(number)} is out of range (allowed: {self.text()}"
                          f"{' ' + self.unit if self.unit else ''}{why})")
        return number


@dataclass(frozen=True)
class IntRange:
    """``Annotated[int, IntRange(low, high)]``: an integer low <= n <= high (high None =
    unbounded); ``why`` explains the upper bound."""

    low: int
    high: int | None = None
    why: str = ""

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> Any:
        json_schema = handler(schema)
        json_schema["minimum"] = self.low
        if self.high is not None:
            json_schema["maximum"] = self.high
        return json_schema

    def _check(self, number: int) -> int:
        allowed = (f"an integer >= {self.low}" if self.high is None
                   else f"an integer {self.low} to {self.high}")
        why = f"; {self.why}" if self.why else ""
        if number < self.low:
            raise invalid(f"{number} is too small (allowed: {allowed})")
        if self.high is not None and number > self.high:
            raise invalid(f"{number} is too large (allowed: {allowed}{why})")
        return number


def one_group(table: FileTable, groups: Sequence[Sequence[str]]) -> list[Issue]:
    """Problems of a table that takes exactly one of alternative key groups (``{count}`` or
    ``{proportion}``; ``{median, q1, q3}`` or ``{mean, sd}``), every key of the group chosen."""
    used = [keys for keys in groups if any(table.given(key) for key in keys)]
    names = " or ".join("{" + ", ".join(keys) + "}" for keys in groups)
    if not used:
        if len(groups) == 1:
            return [Issue(f"missing (required: {_description(table, key)})", (key,))
                    for key in groups[0]]
        return [Issue(f"missing values (give {names})")]
    if len(used) > 1:
        return [Issue(f"give either {used[0][0]!r} or {used[1][0]!r}, not both (allowed: "
                      f"{names})")]
    return [Issue(f"missing (required: {_description(table, key)})", (key,))
            for key in used[0] if not table.given(key)]


class Alternatives(FileTable):
    """A table written in one of alternative forms (:attr:`groups`, e.g. counts or
    proportions); the forms made of counts (:attr:`count_keys`) need a fixed arm size, so
    selection mode refuses them."""

    groups: ClassVar[tuple[tuple[str, ...], ...]] = ()
    count_keys: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def key_rules(cls, data: Mapping[str, Any], facts: Facts) -> KeyRules:
        if facts.mode == "selection":
            return KeyRules(misplaced={key: "counts need a fixed arm size; selection mode "
                                            "takes proportions" for key in cls.count_keys})
        return KeyRules()

    def form_issues(self, facts: Facts) -> list[Issue]:
        """Problems of the form: exactly one group, complete."""
        groups = [keys for keys in self.groups
                  if not (facts.mode == "selection" and set(keys) & set(self.count_keys))]
        return one_group(self, groups)

    def checks(self, facts: Facts) -> Iterable[Issue]:
        return self.form_issues(facts)


def _description(table: FileTable, key: str) -> str:
    return type(table).model_fields[key].description or key


def groups_schema(groups: Sequence[Sequence[str]]) -> dict[str, Any]:
    """The JSON Schema of :func:`one_group`: exactly one group, complete, no key of another."""
    branches = []
    for keys in groups:
        others = [key for group in groups if group is not keys for key in group]
        branch: dict[str, Any] = {"required": list(keys)}
        if others:
            branch["not"] = {"anyOf": [{"required": [key]} for key in others]}
        branches.append(branch)
    return {"oneOf": branches} if len(branches) > 1 else branches[0]


def check_length(items: list[Any], expected: int, what: str) -> str | None:
    """The problem of an array with the wrong number of items, or None."""
    if len(items) != expected:
        return f"{len(items)} values given for {expected} {what}"
    return None
