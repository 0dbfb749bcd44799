"""Reading and validating scenario TOML files into the dataclasses of :mod:`sim.scenario.model`.

:func:`load_scenario` (a file), :func:`parse_scenario` (TOML text) and
:func:`scenario_from_mapping` (an already-parsed document, e.g. a sweep's modified copy) return a
:class:`sim.scenario.model.Scenario`; every invalid input raises one :class:`sim.errors.ScenarioError`
naming the dotted field, its value and what is allowed. The format is documented in
``docs/scenario_format.md``. The three functions are re-exported by :mod:`sim.scenario.model`.

Each section of the file has one reader below. A reader gets the raw TOML value and its dotted
field name, converts it into dataclasses and raises ScenarioError(field, message) on the first
problem. :class:`_Table` tracks the keys a reader asked for, so any other key is reported as
unknown, with the closest allowed key suggested (a typo must never pass silently).
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from analysis.plan.options import OVERRIDABLE, PRESETS, PlanOptionError, make_plan
from sim.generate.marginals import (
    fit_lognormal_moments,
    fit_split_lognormal_quartiles,
    fit_truncated_normal,
)
from sim.errors import ScenarioError
from sim.scenario.model import (
    RESPONSE_CATEGORIES,
    AdverseEvent,
    AnalysisOptions,
    Arm,
    Censoring,
    Covariate,
    Marginal,
    Outcome,
    Response,
    Scenario,
    Selection,
    SimulationSettings,
    Transition,
    TreatmentEffect,
    Unmeasured,
)

_MODES = ("table", "selection")
_KINDS = ("binary", "categorical", "normal", "lognormal")
_BASELINES = ("exponential", "weibull", "piecewise")
_EFFECT_MODES = ("target_medians", "hazard_ratio")
_PLANS = tuple(PRESETS)
_POPULATION = "population"
_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_STUDY_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
#: Column names of the cohort CSV that a covariate must not take.
_RESERVED_COLUMNS = frozenset({
    "patient_id", "treated", "entry_month", "pfs_months", "pfs_event", "os_months",
    "os_event", "best_response",
})
_SECTIONS = ("study", "arms", "covariates", "correlation", "outcome", "censoring", "response",
             "adverse_events", "unmeasured", "selection", "analysis", "simulation")
_MARGINAL_KEYS = {
    "binary": ("count", "proportion"),
    "categorical": ("counts", "probabilities"),
    "normal": ("mean", "sd"),
    "lognormal": ("median", "q1", "q3", "mean", "sd"),
}
_SUM_TOLERANCE = 1e-6
_MIN_EIGENVALUE = 1e-10
_MISSING = object()


def load_scenario(path: str | os.PathLike[str]) -> Scenario:
    """Read and validate a scenario TOML file.

    Parameters
    ----------
    path : str or path-like
        The ``.toml`` file (UTF-8).

    Returns
    -------
    Scenario
        With ``source_text`` set to the file's text.

    Raises
    ------
    ScenarioError
        One line naming the file (missing, unreadable, invalid TOML with line and column) or the
        dotted field, its value and what is allowed.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(str(path), "no such scenario file") from None
    except IsADirectoryError:
        raise ScenarioError(str(path), "is a directory, not a scenario file") from None
    except UnicodeDecodeError as err:
        raise ScenarioError(str(path), f"not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise ScenarioError(str(path), f"cannot be read ({err.strerror})") from None
    return parse_scenario(text, source=str(path))


def parse_scenario(text: str, *, source: str = "<string>") -> Scenario:
    """Validate scenario TOML ``text`` (``source`` names it in TOML syntax errors).

    Returns
    -------
    Scenario
        With ``source_text = text``.

    Raises
    ------
    ScenarioError
        See :func:`load_scenario`.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ScenarioError(source, f"invalid TOML: {err}") from None
    return scenario_from_mapping(data, source_text=text)


def scenario_from_mapping(data: Mapping[str, Any], *, source_text: str = "") -> Scenario:
    """Validate an already-parsed TOML document (nested dicts and lists, as :mod:`tomllib`
    returns it) — e.g. a scenario with fields replaced by a sweep — into a :class:`Scenario`.

    Raises
    ------
    ScenarioError
        The first invalid field.
    """
    root = _Table(_read_table(data, ""), "", _SECTIONS)
    name, title, mode = root.required("study", _read_study, "a [study] table with name")
    arms = root.required("arms", lambda value, where: _read_arms(value, where, mode),
                         "an [arms.<name>] table for each of the 2 arms")
    covariates = root.required(
        "covariates", lambda value, where: _read_covariates(value, where, arms, mode),
        "a [covariates.<name>] table for each covariate")
    correlation = root.optional(
        "correlation", lambda value, where: _read_correlation(value, where, covariates), None)
    if correlation is None:
        correlation = tuple(tuple(1.0 if i == j else 0.0 for j in range(len(covariates)))
                            for i in range(len(covariates)))
    outcome = root.required(
        "outcome", lambda value, where: _read_outcome(value, where, covariates),
        "an [outcome] table")
    censoring = root.required("censoring", _read_censoring, "a [censoring] table")
    response = root.required(
        "response", lambda value, where: _read_response(value, where, arms, mode),
        "a [response] table with one response table per arm")
    adverse_events = root.optional(
        "adverse_events", lambda value, where: _read_adverse_events(value, where, arms, mode), ())
    unmeasured = root.optional(
        "unmeasured", lambda value, where: _read_unmeasured(value, where, arms, mode), None)
    if mode == "selection":
        selection = root.required(
            "selection",
            lambda value, where: _read_selection(value, where, covariates, unmeasured),
            "a [selection] table (study.mode is 'selection')")
    else:
        root.forbid("selection", "only used when study.mode = 'selection' (mode is 'table')")
        selection = None
    analysis = root.optional(
        "analysis", lambda value, where: _read_analysis(value, where, covariates),
        AnalysisOptions(plan="paper", ps_covariates=tuple(c.name for c in covariates)))
    simulation = root.optional("simulation", _read_simulation, SimulationSettings())
    root.close()
    return Scenario(
        name=name, title=title, mode=mode, arms=arms, covariates=covariates,
        correlation=correlation, outcome=outcome, censoring=censoring, response=response,
        adverse_events=adverse_events, analysis=analysis, simulation=simulation,
        selection=selection, unmeasured=unmeasured, source_text=source_text,
    )


# --------------------------------------------------------------------------------------------
# Generic readers
# --------------------------------------------------------------------------------------------


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _show(value: Any) -> str:
    """A value as the user wrote it in TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, float):
        return f"{value:g}" if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        text = "[" + ", ".join(_show(item) for item in value) + "]"
        return text if len(text) <= 60 else text[:57] + "...]"
    return str(value)


_TOML_TYPES = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array",
               dict: "table"}


def _got(value: Any) -> str:
    kind = _TOML_TYPES.get(type(value), type(value).__name__)
    return "a table" if isinstance(value, dict) else f"{_show(value)} ({kind})"


def _fail(where: str, message: str) -> None:
    raise ScenarioError(where, message)


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


class _Table:
    """A TOML table being read.

    ``allowed`` lists every key the table may ever hold: any other key is reported as unknown
    at once (before a required key is reported missing, so ``sise = 35`` gives "did you mean
    'size'?", not "size: missing"), with the closest allowed key suggested. Keys allowed only
    in some variants are refused by :meth:`forbid` with the reason, and :meth:`close` reports
    any key the reader never asked for."""

    def __init__(self, data: Mapping[str, Any], path: str, allowed: Sequence[str]):
        self.data = data
        self.path = path
        self.known: list[str] = []
        for key in data:
            if key not in allowed:
                _fail(_join(path, key), f"unknown key; {_suggest(key, allowed)}"
                                        f"(allowed: {', '.join(allowed)})")

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def _know(self, key: str) -> None:
        if key not in self.known:
            self.known.append(key)

    def required(self, key: str, read: Callable[[Any, str], Any], what: str) -> Any:
        self._know(key)
        where = _join(self.path, key)
        if key not in self.data:
            _fail(where, f"missing (required: {what})")
        return read(self.data[key], where)

    def optional(self, key: str, read: Callable[[Any, str], Any], default: Any) -> Any:
        self._know(key)
        if key not in self.data:
            return default
        return read(self.data[key], _join(self.path, key))

    def forbid(self, key: str, reason: str) -> None:
        self._know(key)
        if key in self.data:
            _fail(_join(self.path, key), f"not allowed here: {reason}")

    def close(self) -> None:
        for key in self.data:
            if key not in self.known:
                allowed = ", ".join(self.known) if self.known else "none"
                _fail(_join(self.path, key),
                      f"unknown key; {_suggest(key, self.known)}(allowed: {allowed})")


def _read_table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        _fail(where, f"expected a table, got {_got(value)}")
    return value


def _read_array(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        _fail(where, f"expected an array, got {_got(value)}")
    return value


def _read_string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        _fail(where, f"expected a string, got {_got(value)}")
    return value


def _read_bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        _fail(where, f"expected true or false, got {_got(value)}")
    return value


def _read_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(where, f"expected an integer, got {_got(value)}")
    return value


def _read_number(value: Any, where: str, *, allow_infinite: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(where, f"expected a number, got {_got(value)}")
    number = float(value)
    if math.isnan(number) or (not allow_infinite and math.isinf(number)):
        _fail(where, f"expected a finite number, got {_show(value)}")
    return number


def _choice(choices: Sequence[str]) -> Callable[[Any, str], str]:
    def read(value: Any, where: str) -> str:
        text = _read_string(value, where)
        if text not in choices:
            _fail(where, f"{text!r} is not one of {', '.join(choices)}; "
                         f"{_suggest(text, choices)}".rstrip("; "))
        return text
    return read


def _number_in(low: float | None, high: float | None, *, low_open: bool = False,
               high_open: bool = False, unit: str = "") -> Callable[[Any, str], float]:
    """A number reader checking low <=/< x <=/< high (None = unbounded)."""
    def read(value: Any, where: str) -> float:
        number = _read_number(value, where)
        too_low = low is not None and (number <= low if low_open else number < low)
        too_high = high is not None and (number >= high if high_open else number > high)
        if too_low or too_high:
            allowed = _range_text(low, high, low_open, high_open)
            _fail(where, f"{_show(value)} is out of range (allowed: {allowed}{unit})")
        return number
    return read


def _range_text(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if high is None:
        return f"{'>' if low_open else '>='} {low:g}"
    if low is None:
        return f"{'<' if high_open else '<='} {high:g}"
    return f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def _int_at_least(low: int) -> Callable[[Any, str], int]:
    def read(value: Any, where: str) -> int:
        number = _read_int(value, where)
        if number < low:
            _fail(where, f"{number} is too small (allowed: an integer >= {low})")
        return number
    return read


_positive = _number_in(0.0, None, low_open=True)
_non_negative = _number_in(0.0, None)
_probability = _number_in(0.0, 1.0)
_positive_months = _number_in(0.0, None, low_open=True, unit=" months")


def _read_identifier(name: str, where: str, what: str) -> str:
    if not _NAME_PATTERN.match(name):
        _fail(where, f"{name!r} is not a valid {what} name (allowed: letters, digits and "
                     f"underscores, not starting with a digit)")
    return name


def _read_covariate_reference(names: Sequence[str]) -> Callable[[Any, str], str]:
    def read(value: Any, where: str) -> str:
        text = _read_string(value, where)
        if text not in names:
            _fail(where, f"{text!r} is not a covariate; {_suggest(text, names)}"
                         f"(covariates: {', '.join(names)})")
        return text
    return read


# --------------------------------------------------------------------------------------------
# [study], [arms]
# --------------------------------------------------------------------------------------------


def _read_study(value: Any, where: str) -> tuple[str, str, str]:
    table = _Table(_read_table(value, where), where, ("name", "title", "mode"))
    name = table.required("name", _read_string, "a short name, e.g. 'liu2021'")
    if not _STUDY_NAME_PATTERN.match(name):
        _fail(_join(where, "name"), f"{name!r} is not a valid name (allowed: letters, digits, "
                                    f"'_', '-', '.')")
    title = table.optional("title", _read_string, name)
    mode = table.optional("mode", _choice(_MODES), "table")
    table.close()
    return name, title, mode


def _read_arms(value: Any, where: str, mode: str) -> tuple[Arm, ...]:
    arms_table = _read_table(value, where)
    if len(arms_table) != 2:
        _fail(where, f"{len(arms_table)} arm(s) given ({', '.join(arms_table) or 'none'}); "
                     f"exactly 2 are needed (one treated, one control)")
    arms = []
    for name, arm_value in arms_table.items():
        arm_where = _join(where, name)
        _read_identifier(name, arm_where, "arm")
        if name == _POPULATION:
            _fail(arm_where, f"'{_POPULATION}' is reserved for selection-mode marginals")
        table = _Table(_read_table(arm_value, arm_where), arm_where,
                       ("label", "size", "treated"))
        label = table.optional("label", _read_string, name)
        if mode == "table":
            size = table.required("size", _int_at_least(1), "the number of patients, >= 1")
        else:
            table.forbid("size", "in selection mode arm sizes are random; give "
                                 "selection.patients")
            size = 0
        treated = table.required("treated", _read_bool,
                                 "true for the experimental arm, false for the control")
        table.close()
        arms.append(Arm(name=name, label=label, size=size, treated=treated))
    n_treated = sum(arm.treated for arm in arms)
    if n_treated != 1:
        _fail(where, f"{n_treated} arms have treated = true; exactly one must (the experimental "
                     f"arm)")
    return tuple(arms)


def _marginal_keys(arms: tuple[Arm, ...], mode: str) -> tuple[str, ...]:
    return (_POPULATION,) if mode == "selection" else tuple(arm.name for arm in arms)


def _forbid_other_marginal_keys(table: _Table, arms: tuple[Arm, ...], mode: str) -> None:
    if mode == "selection":
        for arm in arms:
            table.forbid(arm.name, "selection mode takes one 'population' marginal, not one "
                                   "per arm")
    else:
        table.forbid(_POPULATION, "table mode takes one marginal per arm "
                                  f"({', '.join(arm.name for arm in arms)})")


# --------------------------------------------------------------------------------------------
# [covariates.<name>]
# --------------------------------------------------------------------------------------------


def _read_covariates(value: Any, where: str, arms: tuple[Arm, ...], mode: str
                     ) -> tuple[Covariate, ...]:
    table = _read_table(value, where)
    if not table:
        _fail(where, "no covariates given (at least one [covariates.<name>] table is needed)")
    covariates = []
    for name, covariate_value in table.items():
        covariate_where = _join(where, name)
        _read_identifier(name, covariate_where, "covariate")
        if name in _RESERVED_COLUMNS or name.startswith("ae_"):
            _fail(covariate_where, f"{name!r} is a reserved cohort column name (reserved: "
                                   f"{', '.join(sorted(_RESERVED_COLUMNS))} and ae_*)")
        covariates.append(_read_covariate(name, covariate_value, covariate_where, arms, mode))
    return tuple(covariates)


def _read_covariate(name: str, value: Any, where: str, arms: tuple[Arm, ...], mode: str
                    ) -> Covariate:
    table = _Table(_read_table(value, where), where, (
        "kind", "label", "levels", "bounds", _POPULATION, *(arm.name for arm in arms)))
    kind = table.required("kind", _choice(_KINDS), f"one of {', '.join(_KINDS)}")
    label = table.optional("label", _read_string, name)
    if kind == "categorical":
        levels = table.required("levels", _read_levels, "an array of >= 2 level names")
    else:
        table.forbid("levels", f"only categorical covariates have levels (kind is {kind!r})")
        levels = ()
    if kind == "normal":
        lower, upper = table.optional("bounds", _read_bounds, (None, None))
    else:
        table.forbid("bounds", f"only normal covariates take bounds (kind is {kind!r})")
        lower = upper = None
    _forbid_other_marginal_keys(table, arms, mode)
    sizes = {arm.name: arm.size for arm in arms}
    marginals = {}
    for key in _marginal_keys(arms, mode):
        size = sizes.get(key)
        what = (f"the {kind} marginal in arm {key!r}" if mode == "table"
                else f"the {kind} marginal of the population")
        marginals[key] = table.required(
            key, lambda marginal_value, marginal_where: _read_marginal(
                marginal_value, marginal_where, kind, levels, lower, upper, size), what)
    table.close()
    return Covariate(name=name, label=label, kind=kind, marginals=marginals, levels=levels)


def _read_levels(value: Any, where: str) -> tuple[str, ...]:
    items = _read_array(value, where)
    levels = tuple(_read_string(item, f"{where}[{i}]") for i, item in enumerate(items))
    if len(levels) < 2:
        _fail(where, f"{len(levels)} level(s) given; a categorical covariate needs >= 2")
    if len(set(levels)) != len(levels):
        _fail(where, f"level names repeat in {_show(items)}")
    return levels


def _read_bounds(value: Any, where: str) -> tuple[float | None, float | None]:
    items = _read_array(value, where)
    if len(items) != 2:
        _fail(where, f"expected [lower, upper] (use -inf/inf for no bound), got {_show(items)}")
    lower = _read_number(items[0], f"{where}[0]", allow_infinite=True)
    upper = _read_number(items[1], f"{where}[1]", allow_infinite=True)
    if not lower < upper:
        _fail(where, f"lower {lower:g} must be < upper {upper:g}")
    if lower == math.inf or upper == -math.inf:
        _fail(where, f"{_show(items)} leaves no values")
    return (None if lower == -math.inf else lower), (None if upper == math.inf else upper)


def _read_marginal(value: Any, where: str, kind: str, levels: tuple[str, ...],
                   lower: float | None, upper: float | None, size: int | None) -> Marginal:
    table = _Table(_read_table(value, where), where, _MARGINAL_KEYS[kind])
    readers = {
        "binary": _read_binary_marginal,
        "categorical": _read_categorical_marginal,
        "normal": _read_normal_marginal,
        "lognormal": _read_lognormal_marginal,
    }
    marginal = readers[kind](table, where, levels=levels, lower=lower, upper=upper, size=size)
    table.close()
    return marginal


def _one_of(table: _Table, where: str, options: Sequence[Sequence[str]]) -> int:
    """Which of the alternative key groups the table uses (exactly one)."""
    used = [index for index, keys in enumerate(options) if any(key in table for key in keys)]
    names = " or ".join("{" + ", ".join(keys) + "}" for keys in options)
    if not used:
        for keys in options:
            for key in keys:
                table._know(key)
        table.close()
        _fail(where, f"missing values (give {names})")
    if len(used) > 1:
        first, second = (options[i][0] for i in used[:2])
        _fail(where, f"give either {first!r} or {second!r}, not both (allowed: {names})")
    return used[0]


def _count_reader(size: int, what: str = "count") -> Callable[[Any, str], int]:
    def read(value: Any, where: str) -> int:
        count = _read_int(value, where)
        if count < 0:
            _fail(where, f"{what} {count} is negative (allowed: an integer 0 to {size})")
        if count > size:
            _fail(where, f"{what} {count} exceeds arm size {size} (allowed: an integer 0 to "
                         f"{size})")
        return count
    return read


def _no_counts_in_selection(table: _Table, where: str, keys: Sequence[str]) -> None:
    for key in keys:
        table.forbid(key, "counts need a fixed arm size; selection mode takes proportions")


def _read_binary_marginal(table: _Table, where: str, *, size: int | None, **_: Any) -> Marginal:
    if size is None:
        _no_counts_in_selection(table, where, ["count"])
        proportion = table.required("proportion", _probability, "a probability in [0, 1]")
        return Marginal(p=proportion, target={"proportion": proportion})
    if _one_of(table, where, [["count"], ["proportion"]]) == 0:
        count = table.required("count", _count_reader(size), "")
        table.forbid("proportion", "give count or proportion")
        return Marginal(p=count / size, target={"count": count, "n": size})
    table.forbid("count", "give count or proportion")
    proportion = table.required("proportion", _probability, "")
    return Marginal(p=proportion, target={"proportion": proportion})


def _read_categorical_marginal(table: _Table, where: str, *, levels: tuple[str, ...],
                               size: int | None, **_: Any) -> Marginal:
    if size is None:
        _no_counts_in_selection(table, where, ["counts"])
        choice = 1
    else:
        choice = _one_of(table, where, [["counts"], ["probabilities"]])
    n_levels = len(levels)
    if choice == 0:
        table.forbid("probabilities", "give counts or probabilities")
        counts = table.required("counts", _read_array, "")
        _check_length(counts, n_levels, _join(where, "counts"), "levels")
        counts = tuple(_count_reader(size)(item, f"{where}.counts[{i}]")
                       for i, item in enumerate(counts))
        if sum(counts) != size:
            _fail(_join(where, "counts"), f"{_show(list(counts))} sums to {sum(counts)}, not "
                                          f"the arm size {size}")
        return Marginal(probabilities=tuple(c / size for c in counts),
                        target={"counts": counts, "n": size})
    if size is not None:
        table.forbid("counts", "give counts or probabilities")
    probabilities = table.required("probabilities", _read_array, "one probability per level")
    _check_length(probabilities, n_levels, _join(where, "probabilities"), "levels")
    return Marginal(probabilities=_read_probability_vector(
        probabilities, _join(where, "probabilities")),
        target={"probabilities": tuple(float(p) for p in probabilities)})


def _check_length(items: list[Any], expected: int, where: str, what: str) -> None:
    if len(items) != expected:
        _fail(where, f"{len(items)} values given for {expected} {what}")


def _read_probability_vector(items: Sequence[Any], where: str) -> tuple[float, ...]:
    """Probabilities in [0, 1] summing to 1 within 1e-6; returned renormalised to sum to 1."""
    values = [_probability(item, f"{where}[{i}]") for i, item in enumerate(items)]
    total = math.fsum(values)
    if abs(total - 1.0) > _SUM_TOLERANCE:
        _fail(where, f"{_show(list(items))} sums to {total:.6g}, not 1 (tolerance "
                     f"{_SUM_TOLERANCE:g})")
    return tuple(v / total for v in values)


def _read_normal_marginal(table: _Table, where: str, *, lower: float | None,
                          upper: float | None, **_: Any) -> Marginal:
    mean = table.required("mean", _read_number, "the mean (as printed)")
    sd = table.required("sd", _positive, "the SD, > 0")
    if (lower is not None and mean <= lower) or (upper is not None and mean >= upper):
        _fail(_join(where, "mean"), f"{mean:g} is not inside the covariate's bounds "
                                    f"[{_bound(lower)}, {_bound(upper)}]")
    try:
        fitted = fit_truncated_normal(mean, sd, lower=lower, upper=upper)
    except ValueError as err:
        raise ScenarioError(where, str(err)) from None
    return Marginal(mean=fitted.mu, sd=fitted.sigma, lower=lower, upper=upper,
                    target={"mean": mean, "sd": sd})


def _bound(value: float | None) -> str:
    return "unbounded" if value is None else f"{value:g}"


def _read_lognormal_marginal(table: _Table, where: str, **_: Any) -> Marginal:
    if _one_of(table, where, [["median", "q1", "q3"], ["mean", "sd"]]) == 0:
        median = table.required("median", _positive, "the median, > 0")
        q1 = table.required("q1", _positive, "the lower quartile, > 0")
        q3 = table.required("q3", _positive, "the upper quartile, > 0")
        table.forbid("mean", "give median/q1/q3 or mean/sd")
        table.forbid("sd", "give median/q1/q3 or mean/sd")
        if not q1 < median < q3:
            _fail(where, f"quartiles must satisfy q1 < median < q3, got q1 {q1:g}, median "
                         f"{median:g}, q3 {q3:g}")
        split = fit_split_lognormal_quartiles(median, q1, q3)
        return Marginal(mu=split.mu, sigma=split.sigma_lower, sigma_upper=split.sigma_upper,
                        target={"median": median, "q1": q1, "q3": q3})
    mean = table.required("mean", _positive, "the mean, > 0")
    sd = table.required("sd", _positive, "the SD, > 0")
    for key in ("median", "q1", "q3"):
        table.forbid(key, "give median/q1/q3 or mean/sd")
    fitted = fit_lognormal_moments(mean, sd)
    return Marginal(mu=fitted.mu, sigma=fitted.sigma, target={"mean": mean, "sd": sd})


# --------------------------------------------------------------------------------------------
# [correlation]
# --------------------------------------------------------------------------------------------


def _read_correlation(value: Any, where: str, covariates: tuple[Covariate, ...]
                      ) -> tuple[tuple[float, ...], ...]:
    table = _Table(_read_table(value, where), where, ("pairs", "matrix"))
    names = [c.name for c in covariates]
    index = {name: i for i, name in enumerate(names)}
    matrix = np.eye(len(names))
    if "pairs" in table and "matrix" in table:
        _fail(where, "give either 'pairs' or 'matrix', not both")
    if "matrix" in table:
        table.forbid("pairs", "give pairs or matrix")
        sub_names, values = table.required("matrix", lambda v, w: _read_correlation_matrix(
            v, w, names), "")
        positions = [index[name] for name in sub_names]
        matrix[np.ix_(positions, positions)] = values
    else:
        table.forbid("matrix", "give pairs or matrix")
        pairs = table.optional("pairs", _read_array, [])
        seen: dict[tuple[int, int], str] = {}
        reference = _read_covariate_reference(names)
        for i, pair in enumerate(pairs):
            pair_where = f"{where}.pairs[{i}]"
            items = _read_array(pair, pair_where)
            if len(items) != 3:
                _fail(pair_where, f"expected [name, name, correlation], got {_show(items)}")
            first = reference(items[0], f"{pair_where}[0]")
            second = reference(items[1], f"{pair_where}[1]")
            if first == second:
                _fail(pair_where, f"pairs {first!r} with itself")
            rho = _number_in(-1.0, 1.0, low_open=True, high_open=True)(items[2],
                                                                         f"{pair_where}[2]")
            key = tuple(sorted((index[first], index[second])))
            if key in seen:
                _fail(pair_where, f"the pair ({first}, {second}) is already given at {seen[key]}")
            seen[key] = pair_where
            matrix[key[0], key[1]] = matrix[key[1], key[0]] = rho
    table.close()
    smallest = float(np.linalg.eigvalsh(matrix).min())
    if smallest <= _MIN_EIGENVALUE:
        _fail(where, f"the latent correlation matrix is not positive definite (smallest "
                     f"eigenvalue {smallest:.3g}); weaken some correlations")
    return tuple(tuple(float(x) for x in row) for row in matrix)


def _read_correlation_matrix(value: Any, where: str, names: Sequence[str]
                             ) -> tuple[list[str], np.ndarray]:
    table = _Table(_read_table(value, where), where, ("names", "values"))
    reference = _read_covariate_reference(names)
    sub_names = [reference(item, f"{where}.names[{i}]") for i, item in enumerate(
        table.required("names", _read_array, "the covariate names of the rows/columns"))]
    if len(set(sub_names)) != len(sub_names):
        _fail(_join(where, "names"), f"names repeat in {_show(sub_names)}")
    rows = table.required("values", _read_array, "a square array of correlations")
    table.close()
    k = len(sub_names)
    _check_length(rows, k, _join(where, "values"), "names (rows)")
    values = np.empty((k, k))
    for i, row in enumerate(rows):
        row_where = f"{where}.values[{i}]"
        _check_length(_read_array(row, row_where), k, row_where, "names (columns)")
        for j, item in enumerate(row):
            values[i, j] = _read_number(item, f"{row_where}[{j}]")
    for i in range(k):
        if values[i, i] != 1.0:
            _fail(f"{where}.values[{i}][{i}]", f"diagonal is {values[i, i]:g}, must be 1")
        for j in range(i + 1, k):
            if abs(values[i, j] - values[j, i]) > 1e-12:
                _fail(f"{where}.values[{i}][{j}]", f"{values[i, j]:g} differs from "
                                                   f"values[{j}][{i}] = {values[j, i]:g} (the "
                                                   f"matrix must be symmetric)")
            if not -1.0 < values[i, j] < 1.0:
                _fail(f"{where}.values[{i}][{j}]", f"{values[i, j]:g} is out of range "
                                                   f"(allowed: (-1, 1))")
    return sub_names, values


# --------------------------------------------------------------------------------------------
# [outcome]
# --------------------------------------------------------------------------------------------


def _read_outcome(value: Any, where: str, covariates: tuple[Covariate, ...]) -> Outcome:
    table = _Table(_read_table(value, where), where, (
        "control_pfs_median", "control_os_median", "death_before_progression", "progression",
        "death_before", "death_after", "treatment", "covariate_log_hr"))
    pfs = table.required("control_pfs_median", _positive_months,
                         "the control arm's median PFS in months, > 0")
    os_median = table.required("control_os_median", _positive_months,
                               "the control arm's median OS in months, > 0")
    if os_median <= pfs:
        _fail(_join(where, "control_os_median"), f"{os_median:g} must exceed "
                                                 f"control_pfs_median {pfs:g} (PFS <= OS)")
    death_share = table.required(
        "death_before_progression", _number_in(0.0, 1.0, high_open=True),
        "the share of control PFS events that are deaths, in [0, 1)")
    default = Transition()
    progression = table.optional("progression", _read_transition, default)
    death_before = table.optional("death_before", _read_transition, default)
    death_after = table.optional("death_after", _read_transition, default)
    treatment = table.required("treatment", _read_treatment, "an [outcome.treatment] table")
    log_hr = table.optional(
        "covariate_log_hr", lambda v, w: _read_covariate_coefficients(v, w, covariates, "log-HR"),
        {})
    table.close()
    return Outcome(control_pfs_median=pfs, control_os_median=os_median,
                   death_before_progression=death_share, progression=progression,
                   death_before=death_before, death_after=death_after, treatment=treatment,
                   covariate_log_hr=log_hr)


def _read_transition(value: Any, where: str) -> Transition:
    table = _Table(_read_table(value, where), where,
                   ("baseline", "shape", "breaks", "relative_rates"))
    baseline = table.optional("baseline", _choice(_BASELINES), "exponential")
    shape, breaks, rates = 1.0, (), (1.0,)
    if baseline == "weibull":
        shape = table.required("shape", _positive, "the Weibull shape, > 0")
    else:
        table.forbid("shape", f"only used with baseline 'weibull' (baseline is {baseline!r})")
    if baseline == "piecewise":
        breaks = table.required("breaks", _read_breaks, "increasing positive months")
        rates_where = _join(where, "relative_rates")
        rates = table.required("relative_rates", _read_array,
                               "one positive rate per interval (len(breaks) + 1)")
        if len(rates) != len(breaks) + 1:
            _fail(rates_where, f"{len(rates)} rates given for {len(breaks)} breaks (need "
                               f"len(breaks) + 1 = {len(breaks) + 1})")
        rates = tuple(_positive(item, f"{rates_where}[{i}]") for i, item in enumerate(rates))
    else:
        for key in ("breaks", "relative_rates"):
            table.forbid(key, f"only used with baseline 'piecewise' (baseline is {baseline!r})")
    table.close()
    return Transition(baseline=baseline, shape=shape, breaks=breaks, relative_rates=rates)


def _read_breaks(value: Any, where: str) -> tuple[float, ...]:
    items = _read_array(value, where)
    if not items:
        _fail(where, "empty (give at least one break, or use baseline 'exponential')")
    breaks = tuple(_positive_months(item, f"{where}[{i}]") for i, item in enumerate(items))
    if any(b <= a for a, b in zip(breaks, breaks[1:])):
        _fail(where, f"{_show(items)} is not strictly increasing")
    return breaks


def _read_treatment(value: Any, where: str) -> TreatmentEffect:
    table = _Table(_read_table(value, where), where, (
        "mode", "pfs_median", "os_median", "hazard_ratio", "delay_months"))
    mode = table.required("mode", _choice(_EFFECT_MODES), f"one of {', '.join(_EFFECT_MODES)}")
    pfs = os_median = hazard_ratio = None
    if mode == "target_medians":
        pfs = table.required("pfs_median", _positive_months,
                             "the treated arm's median PFS in months, > 0")
        os_median = table.required("os_median", _positive_months,
                                   "the treated arm's median OS in months, > 0")
        if os_median <= pfs:
            _fail(_join(where, "os_median"), f"{os_median:g} must exceed pfs_median {pfs:g} "
                                             f"(PFS <= OS)")
        table.forbid("hazard_ratio", "only used with mode 'hazard_ratio'")
    else:
        hazard_ratio = table.required("hazard_ratio", _positive,
                                      "the conditional hazard ratio, > 0 (1 = null)")
        for key in ("pfs_median", "os_median"):
            table.forbid(key, "only used with mode 'target_medians'")
    delay = table.optional("delay_months", _non_negative, 0.0)
    table.close()
    return TreatmentEffect(mode=mode, pfs_median=pfs, os_median=os_median,
                           hazard_ratio=hazard_ratio, delay_months=delay)


def _read_covariate_coefficients(value: Any, where: str, covariates: tuple[Covariate, ...],
                                 what: str) -> dict[str, float | tuple[float, ...]]:
    """A table covariate name -> coefficient (a number; categorical: one per level, level 0
    is 0). Kept in covariate order."""
    table = _read_table(value, where)
    by_name = {c.name: c for c in covariates}
    names = list(by_name)
    for key in table:
        if key not in by_name:
            _fail(_join(where, key), f"{key!r} is not a covariate; {_suggest(key, names)}"
                                     f"(covariates: {', '.join(names)})")
    coefficients: dict[str, float | tuple[float, ...]] = {}
    for covariate in covariates:
        if covariate.name not in table:
            continue
        item_where = _join(where, covariate.name)
        item = table[covariate.name]
        if covariate.kind == "categorical":
            items = _read_array(item, item_where)
            _check_length(items, len(covariate.levels), item_where,
                          f"levels ({', '.join(covariate.levels)}); one {what} per level")
            levels = tuple(_read_number(x, f"{item_where}[{i}]") for i, x in enumerate(items))
            if levels[0] != 0.0:
                _fail(f"{item_where}[0]", f"{levels[0]:g}: the first level "
                                          f"({covariate.levels[0]!r}) is the reference, its "
                                          f"{what} must be 0")
            coefficients[covariate.name] = levels
        else:
            coefficients[covariate.name] = _read_number(item, item_where)
    return coefficients


# --------------------------------------------------------------------------------------------
# [censoring], [response], [adverse_events]
# --------------------------------------------------------------------------------------------


def _read_censoring(value: Any, where: str) -> Censoring:
    table = _Table(_read_table(value, where), where,
                   ("accrual_months", "cutoff_month", "dropout_rate"))
    accrual = table.required("accrual_months", _number_in(0.0, None, unit=" months"),
                             "the accrual window in months, >= 0")
    cutoff = table.required("cutoff_month", _positive_months,
                            "the data cut-off in months after the first entry, > 0")
    if cutoff <= accrual:
        _fail(_join(where, "cutoff_month"), f"{cutoff:g} must exceed accrual_months "
                                            f"{accrual:g} (every patient needs follow-up)")
    dropout = table.optional("dropout_rate", _number_in(0.0, None, unit=" per month"), 0.0)
    table.close()
    return Censoring(accrual_months=accrual, cutoff_month=cutoff, dropout_rate=dropout)


def _read_response(value: Any, where: str, arms: tuple[Arm, ...], mode: str) -> Response:
    table = _Table(_read_table(value, where), where,
                   ("pfs_link", *(arm.name for arm in arms)))
    link = table.optional("pfs_link", _read_number, 0.0)
    probabilities, target = {}, {}
    for arm in arms:
        probabilities[arm.name], target[arm.name] = table.required(
            arm.name, lambda v, w: _read_arm_response(v, w, arm, mode),
            f"the response counts or probabilities of arm {arm.name!r}")
    table.close()
    return Response(probabilities=probabilities, pfs_link=link, target=target)


def _read_arm_response(value: Any, where: str, arm: Arm, mode: str
                       ) -> tuple[tuple[float, float, float, float], dict[str, float]]:
    table = _Table(_read_table(value, where), where, ("counts", "probabilities"))
    if mode == "selection":
        _no_counts_in_selection(table, where, ["counts"])
        choice = 1
    else:
        choice = _one_of(table, where, [["counts"], ["probabilities"]])
    if choice == 0:
        table.forbid("probabilities", "give counts or probabilities")
        counts_where = _join(where, "counts")
        counts = _read_category_table(table.required("counts", _read_table, ""), counts_where,
                                      _count_reader(arm.size))
        total = sum(counts)
        if total != arm.size:
            _fail(counts_where, f"{' + '.join(str(c) for c in counts)} = {total}, not the arm "
                                f"size {arm.size}")
        result = tuple(c / arm.size for c in counts)
        target = dict(zip(RESPONSE_CATEGORIES, counts)) | {"n": arm.size}
    else:
        if mode == "table":
            table.forbid("counts", "give counts or probabilities")
        probabilities_where = _join(where, "probabilities")
        raw = _read_category_table(table.required("probabilities", _read_table, ""),
                                   probabilities_where, _probability)
        result = _read_probability_vector(raw, probabilities_where)
        target = dict(zip(RESPONSE_CATEGORIES, raw))
    table.close()
    return result, target


def _read_category_table(value: dict[str, Any], where: str, read: Callable[[Any, str], Any]
                         ) -> tuple[Any, ...]:
    table = _Table(value, where, RESPONSE_CATEGORIES)
    items = tuple(table.required(category, read, f"one value for each of "
                                                 f"{', '.join(RESPONSE_CATEGORIES)}")
                  for category in RESPONSE_CATEGORIES)
    table.close()
    return items


def _read_adverse_events(value: Any, where: str, arms: tuple[Arm, ...], mode: str
                         ) -> tuple[AdverseEvent, ...]:
    events = []
    for name, event_value in _read_table(value, where).items():
        event_where = _join(where, name)
        _read_identifier(name, event_where, "adverse-event")
        table = _Table(_read_table(event_value, event_where), event_where, (
            "label", "grade2_share", "grade4_share", *(arm.name for arm in arms)))
        label = table.optional("label", _read_string, name)
        grade2_share = table.optional("grade2_share", _probability, 0.4)
        grade4_share = table.optional("grade4_share", _probability, 0.1)
        any_grade, grade34, target = {}, {}, {}
        for arm in arms:
            any_grade[arm.name], grade34[arm.name], target[arm.name] = table.required(
                arm.name, lambda v, w: _read_arm_adverse_event(v, w, arm, mode),
                f"the AE rates of arm {arm.name!r}: {{any, grade34}} counts or "
                f"{{any_proportion, grade34_proportion}}")
        table.close()
        events.append(AdverseEvent(name=name, label=label, any_grade=any_grade,
                                   grade34=grade34, grade2_share=grade2_share,
                                   grade4_share=grade4_share, target=target))
    return tuple(events)


def _read_arm_adverse_event(value: Any, where: str, arm: Arm, mode: str
                            ) -> tuple[float, float, dict[str, float]]:
    table = _Table(_read_table(value, where), where, (
        "any", "grade34", "any_proportion", "grade34_proportion"))
    count_keys, proportion_keys = ["any", "grade34"], ["any_proportion", "grade34_proportion"]
    if mode == "selection":
        _no_counts_in_selection(table, where, count_keys)
        choice = 1
    else:
        choice = _one_of(table, where, [count_keys, proportion_keys])
    if choice == 0:
        any_count = table.required("any", _count_reader(arm.size), "the any-grade count")
        grade34_count = table.required("grade34", _count_reader(arm.size),
                                       "the grade 3-4 count")
        for key in proportion_keys:
            table.forbid(key, "give counts (any, grade34) or proportions, not both")
        if grade34_count > any_count:
            _fail(_join(where, "grade34"), f"{grade34_count} exceeds any = {any_count} "
                                           f"(grade 3-4 events are among any-grade events)")
        table.close()
        return (any_count / arm.size, grade34_count / arm.size,
                {"any": any_count, "grade34": grade34_count, "n": arm.size})
    any_p = table.required("any_proportion", _probability, "a probability in [0, 1]")
    grade34_p = table.required("grade34_proportion", _probability, "a probability in [0, 1]")
    if mode == "table":
        for key in count_keys:
            table.forbid(key, "give counts or proportions (any_proportion, "
                              "grade34_proportion), not both")
    if grade34_p > any_p:
        _fail(_join(where, "grade34_proportion"), f"{grade34_p:g} exceeds any_proportion "
                                                  f"{any_p:g}")
    table.close()
    return any_p, grade34_p, {"any_proportion": any_p, "grade34_proportion": grade34_p}


# --------------------------------------------------------------------------------------------
# [unmeasured], [selection], [analysis], [simulation]
# --------------------------------------------------------------------------------------------


def _read_unmeasured(value: Any, where: str, arms: tuple[Arm, ...], mode: str) -> Unmeasured:
    table = _Table(_read_table(value, where), where, ("prevalence", "log_hr"))
    prevalence_where = _join(where, "prevalence")
    raw = table.required("prevalence", _read_table,
                         "{<arm> = p, ...} for both arms"
                         + (" or {population = p}" if mode == "selection" else ""))
    prevalence_table = _Table(raw, prevalence_where,
                              (*(arm.name for arm in arms), _POPULATION))
    arm_names = [arm.name for arm in arms]
    if mode == "selection" and _POPULATION in raw:
        prevalence = {_POPULATION: prevalence_table.required(_POPULATION, _probability, "")}
        for name in arm_names:
            prevalence_table.forbid(name, "give per-arm prevalences or a population one")
    else:
        prevalence = {name: prevalence_table.required(name, _probability,
                                                      "a probability in [0, 1]")
                      for name in arm_names}
        if mode == "table":
            prevalence_table.forbid(_POPULATION, "table mode takes one prevalence per arm")
    prevalence_table.close()
    log_hr = table.required("log_hr", _read_number, "the log-HR of U on all transitions")
    table.close()
    return Unmeasured(prevalence=prevalence, log_hr=log_hr)


def _read_selection(value: Any, where: str, covariates: tuple[Covariate, ...],
                    unmeasured: Unmeasured | None) -> Selection:
    table = _Table(_read_table(value, where), where, (
        "patients", "intercept", "log_odds", "unmeasured_log_odds"))
    patients = table.required("patients", _int_at_least(2), "the cohort size, an integer >= 2")
    intercept = table.required("intercept", _read_number, "the treatment model's intercept")
    log_odds = table.optional(
        "log_odds", lambda v, w: _read_covariate_coefficients(v, w, covariates, "log-odds"), {})
    population_u = unmeasured is not None and _POPULATION in unmeasured.prevalence
    if population_u:
        u_log_odds = table.optional("unmeasured_log_odds", _read_number, 0.0)
    else:
        table.forbid("unmeasured_log_odds", "needs [unmeasured] with a population prevalence "
                                            "(U drawn before treatment)")
        u_log_odds = 0.0
    table.close()
    return Selection(patients=patients, intercept=intercept, log_odds=log_odds,
                     unmeasured_log_odds=u_log_odds)


def _read_analysis(value: Any, where: str, covariates: tuple[Covariate, ...]
                   ) -> AnalysisOptions:
    raw = _read_table(value, where)
    preset_tables = " or ".join(f"[{_join(where, preset)}]" for preset in _PLANS)
    if "overrides" in raw:
        _fail(_join(where, "overrides"), f"the flat overrides table is no longer read: move its "
                                         f"options under {preset_tables} (the preset they "
                                         f"change)")
    for key in raw:
        if key in OVERRIDABLE:
            _fail(_join(where, key), f"analysis options go in a table per preset: move it "
                                     f"under {preset_tables}")
    table = _Table(raw, where, ("plan", "ps_covariates", *_PLANS))
    names = [c.name for c in covariates]
    plan = table.optional("plan", _choice(_PLANS), "paper")
    reference = _read_covariate_reference(names)
    ps_where = _join(where, "ps_covariates")
    items = table.optional("ps_covariates", _read_array, names)
    ps_covariates = tuple(reference(item, f"{ps_where}[{i}]") for i, item in enumerate(items))
    if not ps_covariates:
        _fail(ps_where, "empty (the PS model needs at least one covariate)")
    repeated = sorted({name for name in ps_covariates if ps_covariates.count(name) > 1})
    if repeated:
        _fail(ps_where, f"{', '.join(repeated)} listed more than once")
    overrides = {}
    for preset in _PLANS:
        options = table.optional(
            preset, lambda v, w, preset=preset: _read_plan_options(v, w, preset), None)
        if options is not None:
            overrides[preset] = options
    table.close()
    return AnalysisOptions(plan=plan, ps_covariates=ps_covariates, overrides=overrides)


#: Plan options whose value may be None (no caliper; the matcher's default order), written
#: as the string "none" (TOML has no null).
_NULLABLE_OPTIONS = ("caliper", "order")


def _read_plan_options(value: Any, where: str, preset: str) -> dict[str, object]:
    """``[analysis.<preset>]``: option overrides of one preset, checked by
    :func:`analysis.plan.options.make_plan` (its PlanOptionError becomes a ScenarioError on
    ``analysis.<preset>.<option>``). Unknown option names are refused first, with the closest
    name suggested."""
    raw = _read_table(value, where)
    _Table(raw, where, OVERRIDABLE)           # refuses unknown option names
    options = {key: None if key in _NULLABLE_OPTIONS and item == "none" else item
               for key, item in raw.items()}
    try:
        make_plan(preset, options)
    except PlanOptionError as err:
        raise ScenarioError(_join(where, err.field), str(err)) from None
    return options


def _read_simulation(value: Any, where: str) -> SimulationSettings:
    table = _Table(_read_table(value, where), where, (
        "replicates", "seed", "block_size", "calibration_patients", "truth_patients"))
    defaults = SimulationSettings()
    settings = SimulationSettings(
        replicates=table.optional("replicates", _int_at_least(1), defaults.replicates),
        seed=table.optional("seed", _int_at_least(0), defaults.seed),
        block_size=table.optional("block_size", _int_at_least(1), defaults.block_size),
        calibration_patients=table.optional("calibration_patients", _int_at_least(1000),
                                            defaults.calibration_patients),
        truth_patients=table.optional("truth_patients", _int_at_least(1000),
                                      defaults.truth_patients),
    )
    table.close()
    return settings
