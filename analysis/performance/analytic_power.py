"""Analytic power and required events for the two-arm log-rank / Cox test.

The large-sample companions printed beside simulated power: Schoenfeld (1981, 1983), which
works on the log hazard ratio, and Freedman (1982), which works on the hazard ratio itself and
is slightly more conservative. Both are functions of the number of *events* only (the study's
accrual, follow-up and censoring enter through how many events it yields).

Notation: ``alpha`` two-sided significance level, ``z_q`` the standard normal q-quantile,
``d`` total events, ``p`` the proportion allocated to treatment (``p = n_T / (n_T + n_C)``),
``r = n_T / n_C = p / (1 - p)`` the allocation ratio, HR the treated-vs-control hazard ratio.

* Schoenfeld: ``power = Phi(sqrt(d p (1 - p)) |log HR| - z_{1-alpha/2})``,
  ``d = (z_{1-alpha/2} + z_{power})**2 / (p (1 - p) (log HR)**2)``.
* Freedman: ``power = Phi(sqrt(r d) |HR - 1| / (r HR + 1) - z_{1-alpha/2})``,
  ``d = (z_{1-alpha/2} + z_{power})**2 (1 + r HR)**2 / (r (1 - HR)**2)``.

Both power formulas count only the rejection tail on the side of the effect (the usual
convention), so at HR = 1 they return ``alpha / 2`` rather than ``alpha``; at HR = 1 the
required events are infinite. Events are returned unrounded: round up (``numpy.ceil``) to
plan a study.

Every function is vectorised: arguments broadcast against each other (NumPy rules) and the
result has the broadcast shape (a NumPy scalar for scalar inputs). NaN inputs give NaN;
finite out-of-range inputs raise ``ValueError`` naming the argument.

References
----------
Schoenfeld D (1981). The asymptotic properties of nonparametric tests for comparing survival
distributions. Biometrika 68:316-319. Schoenfeld DA (1983). Sample-size formula for the
proportional-hazards regression model. Biometrics 39:499-503. Freedman LS (1982). Tables of
the number of patients required in clinical trials using the logrank test. Stat Med 1:121-129.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr, ndtri

__all__ = ["schoenfeld_power", "schoenfeld_events", "freedman_power", "freedman_events"]


def _checked(name: str, value, *, low: float, high: float, closed_low: bool = False):
    """``value`` as a float array; NaN allowed, finite values must lie in the stated range."""
    array = np.asarray(value, dtype=float)
    finite = array[~np.isnan(array)]
    too_low = finite < low if closed_low else finite <= low
    if np.any(too_low) or np.any(finite >= high):
        bracket = "[" if closed_low else "("
        raise ValueError(
            f"{name}: every value must lie in {bracket}{low:g}, {high:g}); got "
            f"{finite[too_low | (finite >= high)][:3].tolist()}"
        )
    return array


def _two_sided_critical(alpha) -> np.ndarray:
    """``z_{1 - alpha/2}`` for a two-sided test at level ``alpha``."""
    return ndtri(1.0 - _checked("alpha", alpha, low=0.0, high=1.0) / 2.0)


def _scalar_or_array(result: np.ndarray):
    return result[()]


def schoenfeld_power(events, hazard_ratio, *, allocation=0.5, alpha=0.05):
    """Power of the two-sided log-rank / Cox test by Schoenfeld's formula.

    ``power = Phi(sqrt(d p (1 - p)) |log HR| - z_{1 - alpha/2})``.

    Parameters
    ----------
    events : array_like, events (>= 0)
        Total number of events ``d`` in both arms (need not be an integer, e.g. a mean).
    hazard_ratio : array_like, > 0
        Treated-vs-control hazard ratio.
    allocation : array_like, in (0, 1)
        Proportion ``p`` of patients in the treated arm (0.5 for 1:1).
    alpha : array_like, in (0, 1)
        Two-sided significance level.

    Returns
    -------
    ndarray or NumPy scalar, broadcast shape of the inputs
        Power in [0, 1]; ``alpha / 2`` at HR = 1.

    References
    ----------
    Schoenfeld (1981) Biometrika 68:316-319; Schoenfeld (1983) Biometrics 39:499-503.
    """
    events = _checked("events", events, low=0.0, high=np.inf, closed_low=True)
    hazard_ratio = _checked("hazard_ratio", hazard_ratio, low=0.0, high=np.inf)
    allocation = _checked("allocation", allocation, low=0.0, high=1.0)
    drift = np.sqrt(events * allocation * (1.0 - allocation)) * np.abs(np.log(hazard_ratio))
    return _scalar_or_array(ndtr(drift - _two_sided_critical(alpha)))


def schoenfeld_events(hazard_ratio, *, power=0.8, allocation=0.5, alpha=0.05):
    """Events needed for a given power of the two-sided log-rank / Cox test (Schoenfeld).

    ``d = (z_{1 - alpha/2} + z_{power})**2 / (p (1 - p) (log HR)**2)``; for 1:1 allocation
    ``d = 4 (z_{1 - alpha/2} + z_{power})**2 / (log HR)**2``.

    Parameters
    ----------
    hazard_ratio : array_like, > 0
        Treated-vs-control hazard ratio.
    power : array_like, in (0, 1)
        Target power.
    allocation : array_like, in (0, 1)
        Proportion ``p`` of patients in the treated arm.
    alpha : array_like, in (0, 1)
        Two-sided significance level.

    Returns
    -------
    ndarray or NumPy scalar, events
        Unrounded total events (``inf`` at HR = 1); round up to plan.

    References
    ----------
    Schoenfeld (1983) Biometrics 39:499-503.
    """
    hazard_ratio = _checked("hazard_ratio", hazard_ratio, low=0.0, high=np.inf)
    power = _checked("power", power, low=0.0, high=1.0)
    allocation = _checked("allocation", allocation, low=0.0, high=1.0)
    z_sum = _two_sided_critical(alpha) + ndtri(power)
    with np.errstate(divide="ignore"):
        events = z_sum**2 / (allocation * (1.0 - allocation) * np.log(hazard_ratio) ** 2)
    return _scalar_or_array(np.asarray(events))


def freedman_power(events, hazard_ratio, *, ratio=1.0, alpha=0.05):
    """Power of the two-sided log-rank test by Freedman's formula.

    ``power = Phi(sqrt(r d) |HR - 1| / (r HR + 1) - z_{1 - alpha/2})``, the same as
    ``lifelines.statistics.power_under_cph`` and R powerSurvEpi ``powerCT.default`` with the
    expected events ``d = n_T p_T + n_C p_C``.

    Parameters
    ----------
    events : array_like, events (>= 0)
        Total number of events ``d``.
    hazard_ratio : array_like, > 0
        Treated-vs-control hazard ratio.
    ratio : array_like, > 0
        Allocation ratio ``r = n_T / n_C`` (1 for 1:1).
    alpha : array_like, in (0, 1)
        Two-sided significance level.

    Returns
    -------
    ndarray or NumPy scalar, broadcast shape of the inputs
        Power in [0, 1]; ``alpha / 2`` at HR = 1.

    References
    ----------
    Freedman (1982) Stat Med 1:121-129; Rosner (2006) Fundamentals of Biostatistics §14.12.
    """
    events = _checked("events", events, low=0.0, high=np.inf, closed_low=True)
    hazard_ratio = _checked("hazard_ratio", hazard_ratio, low=0.0, high=np.inf)
    ratio = _checked("ratio", ratio, low=0.0, high=np.inf)
    drift = np.sqrt(ratio * events) * np.abs(hazard_ratio - 1.0) / (ratio * hazard_ratio + 1.0)
    return _scalar_or_array(ndtr(drift - _two_sided_critical(alpha)))


def freedman_events(hazard_ratio, *, power=0.8, ratio=1.0, alpha=0.05):
    """Events needed for a given power of the two-sided log-rank test (Freedman).

    ``d = (z_{1 - alpha/2} + z_{power})**2 (1 + r HR)**2 / (r (1 - HR)**2)``; the ``m`` of
    ``lifelines.statistics.sample_size_necessary_under_cph`` before it is split into arms.

    Parameters
    ----------
    hazard_ratio : array_like, > 0
        Treated-vs-control hazard ratio.
    power : array_like, in (0, 1)
        Target power.
    ratio : array_like, > 0
        Allocation ratio ``r = n_T / n_C``.
    alpha : array_like, in (0, 1)
        Two-sided significance level.

    Returns
    -------
    ndarray or NumPy scalar, events
        Unrounded total events (``inf`` at HR = 1); round up to plan.

    References
    ----------
    Freedman (1982) Stat Med 1:121-129.
    """
    hazard_ratio = _checked("hazard_ratio", hazard_ratio, low=0.0, high=np.inf)
    power = _checked("power", power, low=0.0, high=1.0)
    ratio = _checked("ratio", ratio, low=0.0, high=np.inf)
    z_sum = _two_sided_critical(alpha) + ndtri(power)
    with np.errstate(divide="ignore"):
        events = z_sum**2 * (1.0 + ratio * hazard_ratio) ** 2 / (ratio * (1.0 - hazard_ratio) ** 2)
    return _scalar_or_array(np.asarray(events))
