"""Kaplan–Meier figures of one cohort: the paper's Figure 1 for a synthetic or a user's cohort.

:func:`plot_kaplan_meier` draws one panel (one cohort, one endpoint): both arms' step functions
with censoring marks, the numbers at risk under the time axis, and the plan's medians, log-rank
p-value and Cox HR under its title. :func:`kaplan_meier_figure` puts the four panels (PFS and OS,
before and after matching) on one figure, as Liu et al. (2021) Figure 1 does. Input: the
Dataset of :func:`analysis.plan.survival_curves.kaplan_meier_curves`.

References
----------
Kaplan EL, Meier P (1958). J Am Stat Assoc 53:457-481. Pocock SJ, Clayton TC, Altman DG (2002).
Survival plots of time-to-event outcomes in clinical trials: good practice and pitfalls.
Lancet 359:1686-1689 (numbers at risk under the axis, censoring marks, follow-up cut where few
remain at risk).
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from analysis.plan.survival_curves import ARMS, numbers_at_risk
from analysis.plots.style import ARM_COLOURS, COHORT_NAMES, ENDPOINT_LONG_NAMES, ENDPOINT_NAMES, new_figure

__all__ = ["kaplan_meier_figure", "plot_kaplan_meier", "risk_table_times"]

DEFAULT_ARM_LABELS = {"treated": "Treated", "control": "Control"}


def risk_table_times(max_time: float) -> np.ndarray:
    """Times (months) of the numbers-at-risk table: every 3, 6 or 12 months up to ``max_time``."""
    step = 3.0 if max_time <= 24 else 6.0 if max_time <= 60 else 12.0
    return np.arange(0.0, max_time + 1e-9, step)


def _format_p(p: float) -> str:
    if not math.isfinite(p):
        return "NA"
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"


def _summary_text(cell: xr.Dataset) -> str:
    def months(value):
        value = float(value)
        return "not reached" if not math.isfinite(value) else f"{value:.1f}"

    text = (f"median {months(cell.median_treated)} vs {months(cell.median_control)} months; "
            f"log-rank p {_format_p(float(cell.p_logrank))}")
    log_hr = float(cell.log_hr)
    if math.isfinite(log_hr):
        text += (f"\nHR {math.exp(log_hr):.2f} (95% CI {math.exp(float(cell.ci_lower)):.2f}–"
                 f"{math.exp(float(cell.ci_upper)):.2f})")
    return text


def plot_kaplan_meier(
    curves: xr.Dataset,
    *,
    cohort: str = "full",
    endpoint: str = "pfs",
    ax=None,
    risk_ax=None,
    arm_labels: dict[str, str] | None = None,
    risk_times=None,
    title: str | None = None,
):
    """Kaplan–Meier curves of both arms of one cohort and endpoint, with numbers at risk.

    Parameters
    ----------
    curves : xarray.Dataset
        From :func:`analysis.plan.survival_curves.kaplan_meier_curves`.
    cohort : ``"full"`` (before matching) or ``"matched"``.
    endpoint : ``"pfs"`` or ``"os"``.
    ax : matplotlib Axes, optional
        The curves are drawn here (default: a new figure with a risk-table panel below).
    risk_ax : matplotlib Axes, optional
        The numbers-at-risk table is drawn here (one row per arm, at ``risk_times``). Default:
        the new figure's panel when ``ax`` is None, else an inset axes just under ``ax``
        (leave room for it below the axis label).
    arm_labels : mapping ``treated``/``control`` → legend label.
    risk_times : times (months) of the numbers-at-risk table; default
        :func:`risk_table_times` of the longest follow-up.
    title : first title line, default "<endpoint>, <cohort> (n = …)"; the second line is the
        medians and the log-rank p-value, the third the HR with its 95% CI.

    Returns
    -------
    matplotlib.axes.Axes
        The curves' Axes: lines labelled by arm, censoring marks as marker-only lines labelled
        ``_censored``; the title's second and third lines give the medians, log-rank p and HR. The risk table's numbers are texts with ``gid``
        ``"at_risk:<arm>:<time>"`` on the risk axes (``ax.risk_table_axes``).
    """
    if ax is None:
        figure, (ax, risk_ax) = new_figure(nrows=2, figsize=(6.4, 5.2), height_ratios=(4.2, 1.0))
    elif risk_ax is None:
        risk_ax = ax.inset_axes((0.0, -0.42, 1.0, 0.16))
    labels = {**DEFAULT_ARM_LABELS, **(arm_labels or {})}
    cell = curves.sel(cohort=cohort, endpoint=endpoint)
    max_time = float(np.nanmax(cell.time.where(cell.valid).values)) if bool(cell.valid.any()) else 1.0
    times = risk_table_times(max_time) if risk_times is None else np.asarray(risk_times, dtype=float)
    for arm in ARMS:
        arm_curve = cell.sel(arm=arm)
        valid = arm_curve.valid.values
        t = arm_curve.time.values[valid]
        s = arm_curve.survival.values[valid]
        colour = ARM_COLOURS[arm]
        n = float(cell.n_patients.sel(arm=arm))
        ax.step(np.r_[0.0, t], np.r_[1.0, s], where="post", color=colour, linewidth=1.8,
                label=f"{labels[arm]} (n = {n:.0f})")
        censored = arm_curve.n_censored.values[valid] > 0
        ax.plot(t[censored], s[censored], linestyle="none", marker="|", markersize=7,
                markeredgewidth=1.3, color=colour, label="_censored")
    x_max = max(max_time, float(times[-1]) if times.size else 0.0) * 1.03
    ax.set_xlim(0.0, x_max)
    ax.set_ylim(0.0, 1.03)
    ax.set_xticks(times)
    ax.set_xlabel("Months since start of treatment")
    ax.set_ylabel(f"{ENDPOINT_LONG_NAMES[endpoint].capitalize()} probability")
    n_total = float(cell.n_patients.sum())
    pairs = f", {curves.attrs['n_pairs']} pairs" if cohort == "matched" and "n_pairs" in curves.attrs else ""
    # the medians, log-rank p and HR under the title (two lines), where they never hide a curve
    heading = title or f"{ENDPOINT_NAMES[endpoint]}, {COHORT_NAMES[cohort]} (n = {n_total:.0f}{pairs})"
    ax.set_title(f"{heading}\n{_summary_text(cell)}", fontsize=8.5)
    ax.grid(True, alpha=0.25, linewidth=0.6)
    ax.legend(loc="best", fontsize=8, framealpha=0.9, title="| = censored", title_fontsize=7, handlelength=1.6)
    _draw_risk_table(risk_ax, cell, times, labels, x_max)
    ax.risk_table_axes = risk_ax
    return ax


def _draw_risk_table(risk_ax, cell: xr.Dataset, times: np.ndarray, labels: dict[str, str], x_max: float) -> None:
    """Numbers at risk, one row per arm (treated on top), at ``times``; arm names as y labels."""
    at_risk = numbers_at_risk(cell, times)
    risk_ax.set_xlim(0.0, x_max)
    risk_ax.set_ylim(-0.6, len(ARMS) - 0.4)
    rows = {arm: len(ARMS) - 1 - k for k, arm in enumerate(ARMS)}
    for arm, row in rows.items():
        for t, count in zip(times, at_risk.sel(arm=arm).values):
            risk_ax.text(t, row, f"{count:.0f}", fontsize=8, ha="center", va="center",
                         color=ARM_COLOURS[arm], gid=f"at_risk:{arm}:{t:g}")
    risk_ax.set_yticks(list(rows.values()), [labels[arm] for arm in rows])
    for tick, arm in zip(risk_ax.get_yticklabels(), rows):
        tick.set_color(ARM_COLOURS[arm])
        tick.set_fontsize(8)
    risk_ax.set_xticks([])
    risk_ax.tick_params(axis="y", length=0, pad=14)
    for spine in risk_ax.spines.values():
        spine.set_visible(False)
    risk_ax.set_title("Number at risk", fontsize=8, loc="left", fontweight="bold")


def kaplan_meier_figure(curves: xr.Dataset, *, arm_labels: dict[str, str] | None = None,
                        title: str | None = None):
    """The four panels PFS/OS × before/after matching (Liu et al. 2021, Figure 1) on one figure,
    each with its numbers-at-risk table.

    Returns
    -------
    matplotlib.figure.Figure
        Curve axes in reading order: PFS before, OS before, PFS after, OS after matching
        (``figure.axes[0]``, ``[2]``, ``[4]``, ``[6]`` when read row by row; risk tables between).
    """
    figure, axes = new_figure(nrows=4, ncols=2, figsize=(11.0, 10.5), height_ratios=(4.2, 1.0, 4.2, 1.0))
    for block, cohort in enumerate(("full", "matched")):
        for column, endpoint in enumerate(("pfs", "os")):
            plot_kaplan_meier(curves, cohort=cohort, endpoint=endpoint, ax=axes[2 * block, column],
                              risk_ax=axes[2 * block + 1, column], arm_labels=arm_labels)
    if title:
        figure.suptitle(title, fontsize=11)
    return figure
