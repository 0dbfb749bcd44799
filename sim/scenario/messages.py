"""Our one-line messages: values shown as the user wrote them in TOML, and pydantic's
validation errors turned into :class:`sim.errors.Problem` lines.

A problem names the dotted field (``covariates.hbv.combination.count``, array items as
``[i]``), the bad value and what is allowed. Messages written by the scenario models
(:mod:`sim.scenario.schema`) travel inside pydantic errors of type :data:`ISSUE` and are passed
through unchanged; pydantic's own errors (wrong TOML type, a value outside a ``Literal``) are
worded here in the same style, e.g. ``arms.sorafenib.size: expected an integer, got 65
(float)``.
"""

from __future__ import annotations

import difflib
import math
import re
from typing import Any, Sequence

from pydantic import ValidationError

from sim.errors import Problem

#: The pydantic error type of messages written by the scenario models; ``ctx["message"]``.
ISSUE = "scenario"

#: Sections whose items are a tagged union on ``kind``: pydantic puts the tag after the item's
#: name in an error location (``covariates.tbil.lognormal.q1``); it is not part of the field.
_TAGGED_SECTIONS = ("covariates",)

_TOML_TYPES = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array",
               dict: "table"}

_EXPECTED = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number",
    "bool_type": "true or false", "bool_parsing": "true or false",
    "string_type": "a string",
    "dict_type": "a table", "model_type": "a table", "model_attributes_type": "a table",
    "list_type": "an array", "tuple_type": "an array",
}


def show(value: Any) -> str:
    """A value as the user wrote it in TOML (``true``, ``'abc'``, ``0.05``, ``[1, 2]``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, float):
        return f"{value:g}" if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, (list, tuple)):
        text = "[" + ", ".join(show(item) for item in value) + "]"
        return text if len(text) <= 60 else text[:57] + "...]"
    return str(value)


def got(value: Any) -> str:
    """What the user gave, with its TOML type: ``65 (float)``, ``'yes' (string)``, ``a table``."""
    kind = _TOML_TYPES.get(type(value), type(value).__name__)
    return "a table" if isinstance(value, dict) else f"{show(value)} ({kind})"


def suggest(word: str, choices: Sequence[str]) -> str:
    """``"; did you mean 'x'? "`` for the closest choice (difflib ratio >= 0.6), else ``" "``:
    written between a problem and its ``(allowed: ...)``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}? " if close else " "


def not_one_of(value: str, choices: Sequence[str]) -> str:
    """``"'tabel' is not one of table, selection; did you mean 'table'?"``."""
    return f"{value!r} is not one of {', '.join(choices)}{suggest(value, choices)}".rstrip()


def dotted(loc: Sequence[str | int]) -> str:
    """A pydantic location as a dotted field: ``('correlation', 'pairs', 15, 2)`` ->
    ``correlation.pairs[15][2]``. The tag of a tagged union and pydantic's ``[key]`` marker
    (an invalid table key) are dropped."""
    parts = [part for part in loc if part != "[key]"]
    if len(parts) > 2 and parts[0] in _TAGGED_SECTIONS:
        del parts[2]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def problems_from(error: ValidationError) -> list[Problem]:
    """Every error of a validation as one problem line, in file order, without repeats."""
    problems: list[Problem] = []
    for detail in error.errors(include_url=False):
        field = dotted(detail["loc"])
        if detail["type"] in ("union_tag_invalid", "union_tag_not_found"):
            discriminator = (detail.get("ctx") or {}).get("discriminator", "").strip("'")
            field = f"{field}.{discriminator}" if field else discriminator
        problem = Problem(field, _message(detail))
        if problem not in problems:
            problems.append(problem)
    return problems


def _message(detail: dict[str, Any]) -> str:
    kind, value, context = detail["type"], detail.get("input"), detail.get("ctx") or {}
    if kind == ISSUE:
        return context["message"]
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {got(value)}"
    if kind == "finite_number":
        return f"expected a finite number, got {show(value)}"
    if kind == "missing":
        return "missing"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", context.get("expected", ""))
        if isinstance(value, str):
            return not_one_of(value, choices)
        return f"expected one of {', '.join(choices)}, got {got(value)}"
    if kind == "union_tag_invalid":
        choices = re.findall(r"'([^']*)'", context.get("expected_tags", ""))
        tag = context.get("tag")
        return not_one_of(tag, choices) if isinstance(tag, str) else (
            f"expected one of {', '.join(choices)}, got {got(tag)}")
    if kind == "union_tag_not_found":
        return "missing (required: one of the kinds of the table)"
    return f"{detail['msg']} (got {got(value)})"
