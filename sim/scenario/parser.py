"""Reading a scenario: a TOML file, TOML text or an already-parsed document into a
:class:`sim.scenario.model.Scenario`.

:func:`load_scenario` (a file), :func:`parse_scenario` (TOML text) and
:func:`scenario_from_mapping` (an already-parsed document, e.g. a sweep's modified copy) validate
the document against the file format (:mod:`sim.scenario.schema`, pydantic models), build the
scenario from it (:mod:`sim.scenario.build`) and refuse a scenario whose every replicate would
fail (:mod:`sim.scenario.feasibility`). An invalid input raises one
:class:`sim.errors.ScenarioError` carrying every problem of the file, each naming the dotted
field, its value and what is allowed. The format is documented in ``docs/scenario_format.md``;
the three functions are re-exported by :mod:`sim.scenario`.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Mapping

from sim.errors import ScenarioError
from sim.scenario.build import build_scenario
from sim.scenario.feasibility import infeasibilities
from sim.scenario.model import Scenario
from sim.scenario.schema import validate_document


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
        The file is missing or unreadable, or invalid TOML (with line and column), or every
        invalid field: its dotted name, its value and what is allowed.
    """
    return parse_scenario(read_scenario_text(path), source=str(path))


def read_scenario_text(path: str | os.PathLike[str]) -> str:
    """The text of a scenario file; a missing or unreadable file is a ScenarioError."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(str(path), "no such scenario file") from None
    except IsADirectoryError:
        raise ScenarioError(str(path), "is a directory, not a scenario file") from None
    except UnicodeDecodeError as err:
        raise ScenarioError(str(path), f"not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise ScenarioError(str(path), f"cannot be read ({err.strerror})") from None


def parse_toml(text: str, *, source: str = "<string>") -> dict[str, Any]:
    """TOML ``text`` as nested dicts; a syntax error is a ScenarioError naming ``source``."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ScenarioError(source, f"invalid TOML: {err}") from None


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
    return scenario_from_mapping(parse_toml(text, source=source), source_text=text)


def scenario_from_mapping(data: Mapping[str, Any], *, source_text: str = "") -> Scenario:
    """Validate an already-parsed TOML document (nested dicts and lists, as :mod:`tomllib`
    returns it) — e.g. a scenario with fields replaced by a sweep — into a :class:`Scenario`.

    Raises
    ------
    ScenarioError
        Every invalid field.
    """
    document, _ = validate_document(data)
    scenario = build_scenario(document, source_text=source_text)
    problems = infeasibilities(scenario)
    if problems:
        raise ScenarioError.from_problems(problems)
    return scenario
