"""The identity of a run: exactly what its blocks depend on, as canonical JSON and a short id.

Block b of grid point c is a pure function of the *parsed* scenario of c (its data-generating
model and analysis options), the root seed, the block size, the analysis methods and (c, b)
(see :mod:`sim.run.runner`). The identity is therefore built from those and nothing else:

- the scenario as parsed, not its text, so a comment or a reformatting keeps a run folder
  usable;
- not the replicate count (nor the ``[simulation]`` fields the run settings override: seed
  and block size enter as the values actually used), so a run of 2,000 replicates extended to
  4,000 reuses its 20 finished blocks of 100 and equals a fresh run of 4,000 — only a short
  last block, whose size changes, is recomputed.

``run_id`` (16 hex digits of the identity's sha256) is written into every block, and a block
of another id is recomputed, never merged (:class:`sim.run.store.RunFolder`).
"""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import fields, is_dataclass
from pathlib import PurePath
from typing import Any, Mapping, Sequence

import numpy as np

from sim.scenario.model import Scenario, SimulationSettings

try:
    from importlib.metadata import version as _package_version

    #: The installed psmsim's version: part of a run's identity and of its results' attributes.
    PSMSIM_VERSION = _package_version("psmsim")
except Exception:  # not installed (running from a source tree)
    PSMSIM_VERSION = "0+unknown"

#: Version of the run folder layout and identity; part of the identity (bump it whenever a
#: change alters what a block holds). 1: identity of the scenario text and replicate count;
#: 2: before the per-method estimand, effective sample sizes and bootstrap counts were stored.
FORMAT_VERSION = 3

#: Fields left out of the identity: the text a scenario was read from, and the run settings
#: that either do not change a block (replicates) or enter as the values actually used.
_EXCLUDED = {Scenario: {"source_text"}, SimulationSettings: {"replicates", "seed", "block_size"}}


def canonical(value: Any) -> Any:
    """JSON-ready canonical form of parsed inputs (dataclasses in field order, mappings by
    sorted key, tuples as lists; ints stay exact), without the fields of :data:`_EXCLUDED`."""
    if is_dataclass(value) and not isinstance(value, type):
        skip = next((names for kind, names in _EXCLUDED.items() if isinstance(value, kind)), set())
        return {f.name: canonical(getattr(value, f.name)) for f in fields(value) if f.name not in skip}
    if isinstance(value, Mapping):
        return {str(k): canonical(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, (tuple, list)):
        return [canonical(v) for v in value]
    if isinstance(value, np.ndarray):
        return [canonical(v) for v in value.tolist()]
    if isinstance(value, enum.Enum):
        return canonical(value.value)
    if isinstance(value, (bool, str)) or value is None:
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, PurePath):
        return str(value)
    raise TypeError(f"cannot put a {type(value).__name__} into a run identity")


def digest(content: Any) -> str:
    """sha256 of the canonical JSON of ``content``."""
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def run_identity(
    conditions: Sequence[Any],
    *,
    seed: int,
    block_size: int,
    methods: Sequence[str],
    version: str,
) -> dict:
    """What names a run (equal identity → resume; otherwise refuse unless ``--force``).

    Parameters
    ----------
    conditions : the grid points (:class:`sim.run.runner.Condition`); each one's ``scenario``
        (a :class:`Scenario`, or any dataclass holding one, such as a sweep cell with its
        plans) and swept ``fields`` enter through their canonical form.
    seed, block_size, methods : the run settings actually used.
    version : the psmsim version.
    """
    return {
        "format": FORMAT_VERSION,
        "psmsim_version": version,
        "scenario_sha256": digest([canonical(c.scenario) for c in conditions]),
        "root_seed": int(seed),
        "block_size": int(block_size),
        "methods": list(methods),
        "grid": [canonical(dict(c.fields)) for c in conditions],
    }


def run_id(identity: Mapping[str, Any]) -> str:
    """The short id every block of a run records: 16 hex digits of the identity's sha256."""
    return digest(dict(identity))[:16]


#: How :func:`difference` names each identity key to a user.
_WORDS = {
    "format": "folder format (written by another psmsim version)",
    "psmsim_version": "psmsim version",
    "scenario_sha256": "scenario",
    "root_seed": "seed",
    "block_size": "block size",
    "methods": "methods",
    "grid": "grid",
    "kind": "kind of run",
    "plans": "analysis variants",
    "common_random_numbers": "common_random_numbers",
}


def difference(existing: Mapping[str, Any] | None, identity: Mapping[str, Any]) -> str:
    """The keys in which two identities differ, in words (``"seed, block size"``)."""
    if not isinstance(existing, Mapping):
        return "identity file unreadable"
    keys = sorted(k for k in set(existing) | set(identity) if existing.get(k) != identity.get(k))
    return ", ".join(_WORDS.get(k, k) for k in keys) if keys else "identity"
