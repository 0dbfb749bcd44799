"""Kaplan–Meier step functions of one analysed cohort, as a Dataset a figure can draw.

:func:`kaplan_meier_curves` takes a batch, the plan's result on it (``analyse_cohorts(...,
details=True)``, whose per-cohort weights say who is in the matched cohort) and one replicate,
and returns every arm's curve for both cohorts and both endpoints, with the plan's medians,
log-rank p-value and Cox HR beside them. :func:`numbers_at_risk` reads the numbers at risk at
chosen times off those curves (the table under a Kaplan–Meier figure). No plotting here.

The curves are those of :func:`analysis.survival.kaplan_meier.kaplan_meier` (weighted: a control
used twice in a matching with replacement counts twice), computed in one batched call over the
eight (cohort, endpoint, arm) combinations.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from analysis.cohort import CohortBatch
from analysis.plan.analyse import COHORTS, ENDPOINTS, PlanResult
from analysis.survival.kaplan_meier import kaplan_meier

ARMS = ("treated", "control")

__all__ = ["ARMS", "kaplan_meier_curves", "numbers_at_risk"]


def kaplan_meier_curves(batch: CohortBatch, result: PlanResult, *, replicate: int = 0) -> xr.Dataset:
    """The Kaplan–Meier curves of replicate ``replicate``, per cohort, endpoint and arm.

    Parameters
    ----------
    batch : the analysed batch.
    result : ``analyse_cohorts(batch, plan, rng=..., details=True)`` (the details hold the
        weights of each cohort: 1 in the full cohort, matching weights in the matched one).
    replicate : which cohort of the batch.

    Returns
    -------
    xarray.Dataset
        Dims ``(cohort, endpoint, arm, step)`` with cohort ∈ (full, matched), endpoint ∈ (pfs,
        os), arm ∈ (treated, control); ``step`` k is the arm's k-th distinct observed time,
        padded with NaN (``valid`` False) to the longest curve. Variables: ``time`` (months),
        ``survival`` (S(t) just after the time), ``n_at_risk``, ``n_events``, ``n_censored``
        (weighted counts), ``valid``; over ``(cohort, arm)``: ``n_patients`` (weighted);
        over ``(cohort, endpoint)`` the plan's ``log_hr``, ``ci_lower``, ``ci_upper``,
        ``p_logrank``, ``median_treated``, ``median_control`` and ``status``. Attributes
        ``plan`` (its name), ``n_pairs`` and ``replicate``.

    Raises
    ------
    ValueError
        If ``result`` was computed without ``details=True`` or ``replicate`` is out of range.
    """
    if not result.details:
        raise ValueError("kaplan_meier_curves needs the plan's details: analyse_cohorts(..., details=True)")
    if not 0 <= replicate < batch.n_replicates:
        raise ValueError(f"replicate {replicate}: the batch has replicates 0..{batch.n_replicates - 1}")
    r = replicate
    treated = batch.treated[r]
    times, events, weights = [], [], []
    for cohort in COHORTS:
        weight = result.details[cohort].weights[r]
        for endpoint in ENDPOINTS:
            time = (batch.pfs_months if endpoint == "pfs" else batch.os_months)[r]
            event = (batch.pfs_event if endpoint == "pfs" else batch.os_event)[r]
            for arm in ARMS:
                in_arm = treated if arm == "treated" else ~treated
                times.append(time)
                events.append(event)
                weights.append(np.where(in_arm, weight, 0.0))
    weights = np.array(weights)
    km = kaplan_meier(np.array(times), np.array(events), mask=weights > 0, weights=weights)
    shape = (len(COHORTS), len(ENDPOINTS), len(ARMS), km.time.shape[1])
    curve_dims = ("cohort", "endpoint", "arm", "step")

    def curve(values):
        return curve_dims, np.asarray(values).reshape(shape)

    cell_dims = ("cohort", "endpoint")

    def cell(name):
        return cell_dims, np.asarray(getattr(result, name))[r]

    n_patients = weights.reshape(shape[:3] + (-1,))[:, 0].sum(axis=-1)
    return xr.Dataset(
        {
            "time": curve(km.time),
            "survival": curve(km.survival),
            "n_at_risk": curve(km.n_at_risk),
            "n_events": curve(km.n_events),
            "n_censored": curve(km.n_censored),
            "valid": curve(km.valid),
            "n_patients": (("cohort", "arm"), n_patients),
            **{name: cell(name) for name in ("log_hr", "ci_lower", "ci_upper", "p_logrank",
                                             "median_treated", "median_control", "status")},
        },
        coords={"cohort": list(COHORTS), "endpoint": list(ENDPOINTS), "arm": list(ARMS)},
        attrs={"plan": result.plan.name, "n_pairs": int(result.n_pairs[r]), "replicate": int(r)},
    )


def numbers_at_risk(curves: xr.Dataset, times) -> xr.DataArray:
    """Weighted numbers at risk at ``times`` (months): patients whose observed time is >= t.

    Parameters
    ----------
    curves : from :func:`kaplan_meier_curves` (any selection that keeps the ``step`` dim).
    times : 1-d array_like of float, months.

    Returns
    -------
    xarray.DataArray
        The curves' other dims plus ``time`` (coordinate ``times``): the number at risk at the
        first step at or after t (0 after the last observed time). At t = 0 it is the arm's size.
    """
    times = np.asarray(times, dtype=float)
    step_time = curves.time.where(curves.valid)
    at_or_after = step_time >= xr.DataArray(times, dims="time", coords={"time": times})
    first = at_or_after.argmax("step")  # first step with time >= t (0 when none: masked below)
    counts = curves.n_at_risk.isel(step=first)
    return counts.where(at_or_after.any("step"), 0.0)
