"""The caliper of a matching, in distance units, per replicate: a multiple of the pooled SD of
the distance (MatchIt ``std.caliper=TRUE``; Austin 2011) or an absolute tolerance (SPSS FUZZY).
"""

from __future__ import annotations

import numpy as np

from analysis.propensity import sample_sums


def _sd_caliper(distance, eligible, caliper):
    """Caliper times the SD (ddof=1) of the distance over all eligible units, pooled (one
    compiled pass per replicate: :func:`analysis.propensity.sample_sums.pooled_sd`, equal to
    :func:`_sd_caliper_numpy` bit for bit)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        sd, count = sample_sums.pooled_sd(np.ascontiguousarray(distance), np.ascontiguousarray(eligible))
        return np.where(count >= 2, caliper * sd, np.nan)


def _sd_caliper_numpy(distance, eligible, caliper):
    """:func:`_sd_caliper` in numpy operations (its test oracle)."""
    count = eligible.sum(axis=1)
    values = np.where(eligible, distance, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = values.sum(axis=1) / count
        squares = np.where(eligible, (distance - mean[:, None]) ** 2, 0.0).sum(axis=1)
        sd = np.sqrt(squares / (count - 1))
    return np.where(count >= 2, caliper * sd, np.nan)


def _absolute_caliper(distance, eligible, caliper):
    """The caliper as given, for every replicate."""
    return np.full(distance.shape[0], float(caliper))


_CALIPER_SCALES = {"sd": _sd_caliper, "absolute": _absolute_caliper}


def caliper_width(distance, mask=None, *, caliper, scale="sd") -> np.ndarray:
    """Caliper in distance units, per replicate.

    Parameters
    ----------
    distance : array_like of float, shape (replicate, patient)
        Matching distance (propensity score or its logit).
    mask : array_like of bool, shape (replicate, patient), optional
        Eligible patients (default: all); non-finite distances are left out too.
    caliper : float
        Width: in SDs of the distance (``scale="sd"``) or in distance units ("absolute").
    scale : {"sd", "absolute"}
        ``"sd"``: ``caliper * SD`` where SD is the sample standard deviation (n-1
        denominator) of the distance over all eligible patients of both arms pooled into one
        sample, as MatchIt's ``std.caliper=TRUE`` (``sd(distance[!discarded])``); Austin
        (2011, Pharm Stat 10:150-161) recommends 0.2 SD of the logit of the PS.
        ``"absolute"``: ``caliper`` itself (SPSS FUZZY's tolerance).

    Returns
    -------
    ndarray of float, shape (replicate,)
        NaN where fewer than two patients are eligible (``"sd"``).
    """
    if scale not in _CALIPER_SCALES:
        raise ValueError(f"unknown caliper scale {scale!r}; valid scales: {', '.join(_CALIPER_SCALES)}")
    if caliper < 0:
        raise ValueError(f"caliper must be >= 0, got {caliper}")
    d = np.asarray(distance, dtype=float)
    eligible = np.isfinite(d) if mask is None else np.asarray(mask, dtype=bool) & np.isfinite(d)
    return _CALIPER_SCALES[scale](d, eligible, caliper)
