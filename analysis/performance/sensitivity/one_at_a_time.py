"""One-at-a-time (tornado) sensitivity: each factor moved alone from the base design, the
measure at its lowest and highest value, and the swing between them with its Monte Carlo SE.

A one-at-a-time design holds every factor at its base value but one (Saltelli et al. 2008,
§1.2.3: local, blind to interactions, but what a reader can check by hand). The tornado chart
sorts factors by the size of the swing ``|y(high) − y(low)|``. The swing's MCSE here is
``sqrt(s_low² + s_high²)`` (independent noise); with common random numbers the two points'
noise is positively correlated and the true MCSE is smaller, so this is conservative.

References
----------
Saltelli A et al. (2008). Global Sensitivity Analysis: The Primer. Wiley, §1.2.3 and §2.
Morris TP, White IR, Crowther MJ (2019). Stat Med 38:2074-2102 (MCSEs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

__all__ = ["Tornado", "tornado"]


@dataclass(frozen=True)
class Tornado:
    """Tornado data, one row per factor, sorted by decreasing ``|swing|`` (arrays (factor,)).

    Attributes
    ----------
    names : factor names.
    value_low, value_high : the factor's lowest and highest value in the design.
    estimate_low, estimate_high, mcse_low, mcse_high : the measure there and its MCSE.
    swing, swing_mcse : ``estimate_high − estimate_low`` and its (conservative) MCSE.
    base_estimate, base_mcse : the measure at the base point.
    """

    names: tuple[str, ...]
    value_low: np.ndarray
    value_high: np.ndarray
    estimate_low: np.ndarray
    estimate_high: np.ndarray
    mcse_low: np.ndarray
    mcse_high: np.ndarray
    swing: np.ndarray
    swing_mcse: np.ndarray
    base_estimate: float
    base_mcse: float


def tornado(estimate, mcse, *, varied: Sequence[str], values: Mapping[str, Sequence[float]],
            base_point: int) -> Tornado:
    """Tornado data of a one-at-a-time design.

    Parameters
    ----------
    estimate, mcse : array_like, shape (G,)
        The measure and its MCSE at each design point.
    varied : sequence of str, length G
        At each point, the factor moved away from the base (``""`` at the base point itself).
    values : mapping factor -> array_like, shape (G,)
        Each factor's numeric value at each point.
    base_point : int
        Index of the base point.

    Returns
    -------
    Tornado
    """
    y = np.asarray(estimate, dtype=float)
    s = np.asarray(mcse, dtype=float)
    varied = np.asarray(varied, dtype=object)
    names = [name for name in values if np.any(varied == name)]
    rows = []
    for name in names:
        x = np.asarray(values[name], dtype=float)
        points = np.flatnonzero(varied == name)
        points = np.append(points, base_point)
        low, high = points[np.argmin(x[points])], points[np.argmax(x[points])]
        rows.append((name, x[low], x[high], y[low], y[high], s[low], s[high]))
    rows.sort(key=lambda row: -abs(row[4] - row[3]) if np.isfinite(row[4] - row[3]) else 0.0)
    columns = list(zip(*rows)) if rows else [()] * 7
    estimate_low, estimate_high = np.array(columns[3], dtype=float), np.array(columns[4], dtype=float)
    mcse_low, mcse_high = np.array(columns[5], dtype=float), np.array(columns[6], dtype=float)
    return Tornado(
        names=tuple(columns[0]), value_low=np.array(columns[1], dtype=float),
        value_high=np.array(columns[2], dtype=float), estimate_low=estimate_low,
        estimate_high=estimate_high, mcse_low=mcse_low, mcse_high=mcse_high,
        swing=estimate_high - estimate_low, swing_mcse=np.sqrt(mcse_low**2 + mcse_high**2),
        base_estimate=float(y[base_point]), base_mcse=float(s[base_point]),
    )
