"""On-disk cache of calibrations and true estimands, keyed by scenario content.

Calibrating a scenario and computing its truths take seconds to a minute; a sweep or a repeated
``psmsim describe`` needs them again and again. Results are stored as small JSON files named by
the sha256 of the scenario's relevant content (:func:`sim.calibrate.keys.calibration_key`,
:func:`sim.calibrate.keys.truth_key`, which include the code's ``CALIBRATION_VERSION``) in
``cache_dir`` (default: the environment variable ``PSMSIM_CACHE_DIR``, else
``~/.cache/psmsim``). Files are written atomically (temporary file in the same folder, then
``os.replace``); an unreadable or inconsistent file is recomputed and overwritten; an
unwritable folder only disables caching.

Reproducibility: the generators come from a fixed entropy, ``SeedSequence(CACHE_ENTROPY,
spawn_key=(0,))`` for calibration and ``spawn_key=(1,)`` for the truths, not from the run's
seed, so a cache hit and a recomputation give the same numbers and the truth is a property of
the scenario alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from sim.calibrate.estimands import Truth, true_estimands
from sim.calibrate.keys import calibration_key, truth_key
from sim.calibrate.calibration import Calibration
from sim.calibrate.targets import calibrate
from sim.scenario.model import Scenario

#: Fixed entropy of the calibration and truth generators (any constant would do; it is part
#: of what the cached numbers mean, like CALIBRATION_VERSION).
CACHE_ENTROPY = 0x5F3A_9C21_7E44_B0D8


def default_cache_dir() -> Path:
    """``$PSMSIM_CACHE_DIR`` if set, else ``~/.cache/psmsim``."""
    configured = os.environ.get("PSMSIM_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "psmsim"


def calibration_rng() -> np.random.Generator:
    """The generator :func:`calibrate_cached` passes to :func:`sim.calibrate.targets.calibrate`."""
    return np.random.default_rng(np.random.SeedSequence(CACHE_ENTROPY, spawn_key=(0,)))


def truth_rng() -> np.random.Generator:
    """The generator :func:`true_estimands_cached` passes to
    :func:`sim.calibrate.estimands.true_estimands`."""
    return np.random.default_rng(np.random.SeedSequence(CACHE_ENTROPY, spawn_key=(1,)))


def calibrate_cached(scenario: Scenario, *, cache_dir: str | Path | None = None) -> Calibration:
    """:func:`sim.calibrate.targets.calibrate` with :func:`calibration_rng`, cached on disk.

    Parameters
    ----------
    scenario : Scenario
    cache_dir : path, optional
        Default :func:`default_cache_dir`.

    Returns
    -------
    Calibration
    """
    key = calibration_key(scenario)
    path = _folder(cache_dir) / f"calibration-{key}.json"
    cached = _load(path, Calibration, key)
    if cached is not None:
        return cached
    result = calibrate(scenario, rng=calibration_rng())
    _store(path, result)
    return result


def true_estimands_cached(
    scenario: Scenario,
    calibration: Calibration | None = None,
    *,
    cache_dir: str | Path | None = None,
) -> Truth:
    """:func:`sim.calibrate.estimands.true_estimands` with :func:`truth_rng`, cached on disk.

    Parameters
    ----------
    scenario : Scenario
    calibration : Calibration, optional
        Default :func:`calibrate_cached` of the scenario. Its values are part of the key.
    cache_dir : path, optional

    Returns
    -------
    Truth
    """
    if calibration is None:
        calibration = calibrate_cached(scenario, cache_dir=cache_dir)
    key = truth_key(scenario)
    calibration_text = json.dumps(dataclasses.asdict(calibration), sort_keys=True)
    file_key = hashlib.sha256(f"{key}\n{calibration_text}".encode()).hexdigest()
    path = _folder(cache_dir) / f"truth-{file_key}.json"
    cached = _load(path, Truth, key)
    if cached is not None:
        return cached
    result = true_estimands(scenario, calibration, rng=truth_rng())
    _store(path, result)
    return result


#: Python types accepted for each annotated field type of the cached dataclasses.
_FIELD_TYPES = {"float": (int, float), "int": int, "str": str}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _folder(cache_dir: str | Path | None) -> Path:
    return Path(cache_dir) if cache_dir is not None else default_cache_dir()


def _load(path: Path, kind: type, key: str):
    """The cached dataclass, or None if absent, unreadable, of another key or another shape."""
    try:
        content = json.loads(path.read_text())
        value = kind(**content)
    except (OSError, ValueError, TypeError):
        return None
    for field in dataclasses.fields(kind):
        entry = getattr(value, field.name)
        if field.type == "tuple[tuple[float, ...], ...]":  # JSON lists back to tuples
            if not isinstance(entry, list) or not all(
                isinstance(row, list) and all(_is_number(v) for v in row) for row in entry
            ):
                return None
            value = dataclasses.replace(
                value, **{field.name: tuple(tuple(float(v) for v in row) for row in entry)}
            )
        elif isinstance(entry, bool) or not isinstance(entry, _FIELD_TYPES[field.type]):
            return None
    if getattr(value, "key", None) != key:
        return None
    return value


def _store(path: Path, value) -> None:
    """Write ``value`` (a dataclass) as JSON atomically; ignore an unwritable folder."""
    text = json.dumps(dataclasses.asdict(value), sort_keys=True, indent=1)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(handle, "w") as stream:
                stream.write(text)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError:
        return
