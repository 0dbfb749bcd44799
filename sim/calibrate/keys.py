"""Content keys of a scenario's calibration and truth: what the cached numbers depend on.

A key is the sha256 of a canonical JSON form of exactly the scenario parts a result depends on
plus :data:`CALIBRATION_VERSION`, so renaming a scenario or changing its analysis options reuses
the cache while any change to the data-generating model does not.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields, is_dataclass
from typing import Mapping

import numpy as np

from sim.scenario.model import Scenario

#: Version of the calibration/truth code: part of the cache key; bump it whenever a change
#: alters the numbers.
CALIBRATION_VERSION = 1
#: Version of the truth code alone (part of :func:`truth_key`, not of the calibration's key):
#: 2 = per-estimand truths (ATT, ATE, ATO, conditional) with their MC SEs from 20 groups.
TRUTH_VERSION = 2


def _canonical(value):
    """JSON-ready canonical form of scenario parts (dataclasses, mappings, tuples, numbers)."""
    if is_dataclass(value):
        return {f.name: _canonical(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _canonical(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, (tuple, list)):
        return [_canonical(v) for v in value]
    if isinstance(value, (bool, str)) or value is None:
        return value
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    raise TypeError(f"cannot key a {type(value).__name__}")


def _digest(content: dict) -> str:
    text = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _calibration_content(scenario: Scenario) -> dict:
    return {
        "version": CALIBRATION_VERSION,
        "mode": scenario.mode,
        "arms": _canonical(scenario.arms),
        "covariates": _canonical(scenario.covariates),
        "correlation": _canonical(scenario.correlation),
        "outcome": _canonical(scenario.outcome),
        "selection": _canonical(scenario.selection),
        "unmeasured": _canonical(scenario.unmeasured),
        "response": _canonical(scenario.response),
        "calibration_patients": scenario.simulation.calibration_patients,
    }


def calibration_key(scenario: Scenario) -> str:
    """sha256 of the canonical content the calibration depends on: mode, arms, covariates and
    their correlation, outcome model, selection model, unmeasured confounder, response model,
    calibration sample size and :data:`CALIBRATION_VERSION` (not the name, censoring, AEs,
    analysis or the other run settings)."""
    return _digest(_calibration_content(scenario))


def truth_key(scenario: Scenario) -> str:
    """:func:`calibration_key`'s content plus censoring, the truth sample size, the PS model's
    covariates (table mode's overlap population, :mod:`sim.calibrate.populations`) and
    :data:`TRUTH_VERSION`."""
    content = _calibration_content(scenario)
    content["censoring"] = _canonical(scenario.censoring)
    content["truth_patients"] = scenario.simulation.truth_patients
    content["ps_covariates"] = _canonical(scenario.analysis.ps_covariates)
    content["truth_version"] = TRUTH_VERSION
    return _digest(content)
