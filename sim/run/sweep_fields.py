"""Scenario fields named by dotted path: read, replace and scale them in a parsed scenario
document (the nested dicts and lists :mod:`tomllib` returns), never in the frozen model.

A path names tables by key and arrays by ``[index]``: ``outcome.treatment.hazard_ratio``,
``arms.combination.size``, ``correlation.pairs[3][2]``, ``analysis.paper.caliper``. Setting a
path creates missing tables on the way (the scenario validator then names anything that is
still missing or misspelt); an index must exist.

Changing an arm's ``size`` in table mode keeps that arm's published *proportions*: every count
the arm's marginals, response and adverse events are given by (``count``, ``counts``,
``any``/``grade34``) is first rewritten as the proportion of the file's arm size
(:func:`counts_as_proportions`), so a sample-size sweep changes n and nothing else.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Iterable, Mapping

from sim.errors import ScenarioError

__all__ = ["parse_path", "get_field", "set_fields", "remove_fields", "scale_numbers", "counts_as_proportions",
           "resized_arms", "is_analysis_path"]

_SEGMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*)((?:\[\d+\])*)")
_INDEX = re.compile(r"\[(\d+)\]")


def parse_path(path: str) -> tuple[str | int, ...]:
    """The keys and indexes of a dotted path (``"a.b[2].c"`` -> ``("a", "b", 2, "c")``).

    Raises
    ------
    ScenarioError
        The path is not ``key(.key|[index])*``.
    """
    if not isinstance(path, str) or not path:
        raise ScenarioError(str(path), "a field path must be a non-empty string such as "
                                       "'outcome.treatment.hazard_ratio'")
    parts: list[str | int] = []
    for segment in path.split("."):
        match = _SEGMENT.fullmatch(segment)
        if match is None:
            raise ScenarioError(path, f"{segment!r} is not a key, optionally followed by "
                                      "[index] (e.g. 'correlation.pairs[3][2]')")
        parts.append(match.group(1))
        parts.extend(int(i) for i in _INDEX.findall(match.group(2)))
    return tuple(parts)


def is_analysis_path(path: str) -> bool:
    """True when the field only changes the analysis (``analysis.*``), not the generated data."""
    return parse_path(path)[0] == "analysis"


def get_field(document: Mapping[str, Any], path: str, default: Any = None) -> Any:
    """The value at ``path`` (``default`` when a table key is absent)."""
    node: Any = document
    for part in parse_path(path):
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                raise ScenarioError(path, f"index [{part}] does not exist")
            node = node[part]
        elif isinstance(node, Mapping):
            if part not in node:
                return default
            node = node[part]
        else:
            return default
    return node


def set_fields(document: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``document`` with each ``path -> value`` of ``fields`` set.

    Raises
    ------
    ScenarioError
        A path runs through a value that is not a table or array, or indexes past an array.
    """
    result = copy.deepcopy(dict(document))
    for path, value in fields.items():
        parts = parse_path(path)
        node: Any = result
        for depth, part in enumerate(parts[:-1]):
            following = parts[depth + 1]
            if isinstance(part, int):
                if not isinstance(node, list) or part >= len(node):
                    raise ScenarioError(path, f"index [{part}] does not exist")
                node = node[part]
                continue
            if not isinstance(node, dict):
                raise ScenarioError(path, f"{'.'.join(map(str, parts[:depth]))} is not a table")
            if part not in node:
                node[part] = [] if isinstance(following, int) else {}
            node = node[part]
        last = parts[-1]
        if isinstance(last, int):
            if not isinstance(node, list) or last >= len(node):
                raise ScenarioError(path, f"index [{last}] does not exist")
            node[last] = copy.deepcopy(value)
        elif isinstance(node, dict):
            node[last] = copy.deepcopy(value)
        else:
            raise ScenarioError(path, "its parent is not a table")
    return result


def remove_fields(document: Mapping[str, Any], paths) -> dict[str, Any]:
    """A deep copy of ``document`` without the table keys ``paths`` (absent keys are fine:
    removing a field the scenario does not have changes nothing)."""
    result = copy.deepcopy(dict(document))
    for path in paths:
        parts = parse_path(path)
        if isinstance(parts[-1], int):
            raise ScenarioError(path, "only table keys can be removed, not array items")
        parent = get_field(result, ".".join(str(p) for p in parts[:-1])) if len(parts) > 1 else result
        if isinstance(parent, dict):
            parent.pop(parts[-1], None)
    return result


def scale_numbers(value: Any, factor: float) -> Any:
    """``value`` with every number in it (recursively through tables and arrays; booleans
    and strings untouched) multiplied by ``factor``: scales all covariate log-HRs of a table,
    or every correlation of ``correlation.pairs`` (``[name, name, r]`` entries)."""
    if isinstance(value, bool) or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return value * factor
    if isinstance(value, Mapping):
        return {key: scale_numbers(item, factor) for key, item in value.items()}
    if isinstance(value, list):
        return [scale_numbers(item, factor) for item in value]
    return value


def resized_arms(paths: Iterable[str]) -> tuple[str, ...]:
    """Arm names whose ``arms.<arm>.size`` is among ``paths``."""
    arms = []
    for path in paths:
        parts = parse_path(path)
        if len(parts) == 3 and parts[0] == "arms" and parts[2] == "size" and parts[1] not in arms:
            arms.append(str(parts[1]))
    return tuple(arms)


def counts_as_proportions(document: Mapping[str, Any], arm: str) -> dict[str, Any]:
    """A copy of a table-mode scenario document with every count of ``arm`` rewritten as the
    proportion of the arm's size in the file (binary ``count`` -> ``proportion``, categorical
    ``counts`` -> ``probabilities``, response ``counts`` -> ``probabilities``, adverse events
    ``any``/``grade34`` -> ``any_proportion``/``grade34_proportion``, the share with any AE of
    ``[adverse_event_dependence]`` ``any`` -> ``any_proportion``). Values the validator
    would refuse are left as they are, for it to name. ``[checks]`` is dropped: its published
    numbers are of the study at its published size."""
    result = copy.deepcopy(dict(document))
    result.pop("checks", None)
    size = get_field(result, f"arms.{arm}.size")
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        return result

    def share(count):
        return count / size if isinstance(count, (int, float)) and not isinstance(count, bool) else count

    for covariate in (result.get("covariates") or {}).values():
        marginal = covariate.get(arm) if isinstance(covariate, dict) else None
        if not isinstance(marginal, dict):
            continue
        if "count" in marginal:
            marginal["proportion"] = share(marginal.pop("count"))
        if "counts" in marginal and isinstance(marginal["counts"], list):
            marginal["probabilities"] = [share(c) for c in marginal.pop("counts")]
    response = (result.get("response") or {}).get(arm)
    if isinstance(response, dict) and isinstance(response.get("counts"), dict):
        response["probabilities"] = {k: share(c) for k, c in response.pop("counts").items()}
    for event in (result.get("adverse_events") or {}).values():
        rates = event.get(arm) if isinstance(event, dict) else None
        if not isinstance(rates, dict):
            continue
        for key in ("any", "grade34"):
            if key in rates:
                rates[f"{key}_proportion"] = share(rates.pop(key))
    dependence = (result.get("adverse_event_dependence") or {}).get(arm)
    if isinstance(dependence, dict) and "any" in dependence:
        dependence["any_proportion"] = share(dependence.pop("any"))
    return result
