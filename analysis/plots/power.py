"""Power against sample size (or any numeric swept factor), with Monte Carlo bands.

:func:`plot_power_curve` draws, per method, the simulated power of a test at each grid point
with its ±1.96 MCSE band, beside the Schoenfeld and Freedman powers at the simulated events
(the summary's ``schoenfeld_power``, ``freedman_power``), the target power and, when given, the
sample-size solution with its confidence interval. Input: a summary Dataset whose ``condition``
dim has a numeric coordinate (e.g. the patients per arm), or a one-dim factorial summary.
:func:`plot_samplesize_curve` draws the same for the answer of ``psmsim samplesize``
(``samplesize.nc``): every evaluated value with its MCSE, the fitted probit curve with its band,
Schoenfeld and Freedman at the simulated events and the answer with its CI.

References
----------
Schoenfeld DA (1983). Sample-size formula for the proportional-hazards regression model.
Biometrics 39:499-503. Freedman LS (1982). Tables of the number of patients required in
clinical trials using the logrank test. Stat Med 1:121-129. Morris TP, White IR, Crowther MJ
(2019). Stat Med 38:2074-2102 (the Monte Carlo SE of a rejection rate, sqrt(P(1 − P)/n)).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import xarray as xr

from analysis.performance.analytic_power import freedman_power, schoenfeld_power
from analysis.plots.grid import grid_conditions, short_names
from analysis.plots.style import (
    COHORT_NAMES, ENDPOINT_NAMES, METHOD_COLOURS, NOMINAL_COLOUR, TRUTH_COLOUR, Z_95, axes_or_new, legend_below,
    method_colour, select_method,
)

__all__ = ["TESTS", "plot_power_curve", "plot_samplesize_curve"]

#: Test name → summary variable.
TESTS = {"logrank": "power_logrank", "cox": "power_cox"}
_TEST_NAMES = {"logrank": "log-rank test", "cox": "Cox Wald test"}


def plot_power_curve(
    summary: xr.Dataset,
    *,
    x: str | None = None,
    cohort: str = "matched",
    endpoint: str = "pfs",
    test: str = "logrank",
    methods: Sequence[str] | None = None,
    target: float | None = 0.8,
    solution: tuple[float, float, float] | None = None,
    analytic: bool = True,
    x_label: str | None = None,
    ax=None,
):
    """Simulated power against a numeric factor, with MCSE bands and the analytic companions.

    Parameters
    ----------
    summary : xarray.Dataset
        Summary of a sweep over ``x`` (every other swept factor must be constant: select one
        level of each first).
    x : the numeric factor (a coordinate on ``condition`` or a factor dim); default the only
        swept factor.
    cohort, endpoint : the cell.
    test : ``"logrank"`` or ``"cox"`` (:data:`TESTS`).
    methods : default every method.
    target : the target power line (None: no line).
    solution : ``(estimate, lower, upper)`` of the required ``x`` (e.g. from the sample-size
        search): a vertical line at the estimate and a shaded band over its CI.
    analytic : draw the Schoenfeld and Freedman powers at the simulated events.
    x_label : axis label (default the factor's short name).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        Per method a line with markers labelled by its name (x = factor values in increasing
        order, y = power) and a ±1.96 MCSE band (PolyCollection); with ``analytic``, per
        method a dashed (Schoenfeld, ``gid`` ``"schoenfeld:<method>"``) and a dotted (Freedman,
        ``gid`` ``"freedman:<method>"``) line; the target as a horizontal line; the solution as
        a vertical line and a shaded span.
    """
    if test not in TESTS:
        raise ValueError(f"test {test!r}: choose one of {', '.join(TESTS)}")
    grid, factors = grid_conditions(summary)
    varying = [f for f in factors if np.unique(np.asarray(grid[f].values)).size > 1]
    if x is None:
        if len(varying) != 1:
            raise ValueError(f"x: name the factor on the x axis; the swept factors are {varying or 'none'}")
        x = varying[0]
    if x not in factors:
        raise ValueError(f"x {x!r}: not a swept factor; the factors are {factors or 'none'}")
    others = [f for f in varying if f != x]
    if others:
        raise ValueError(f"x {x!r}: other factors vary too ({', '.join(others)}); select one level of each first")
    try:
        x_values = np.asarray(grid[x].values, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"x {x!r}: not numeric ({grid[x].values[:3].tolist()}…)") from None
    order = np.argsort(x_values, kind="stable")
    grid = grid.isel(condition=order)
    x_values = x_values[order]
    cell = grid.sel(cohort=cohort, endpoint=endpoint)
    all_methods = grid.method.values.tolist()
    chosen = all_methods if methods is None else list(methods)
    for method in chosen:
        select_method(grid, method)
    ax = axes_or_new(ax)
    variable = TESTS[test]
    for method in chosen:
        colour = method_colour(all_methods, method)
        method_cell = cell.sel({"method": method})
        power = method_cell[variable].values.astype(float)
        half = Z_95 * method_cell[f"{variable}_mcse"].values.astype(float)
        ax.fill_between(x_values, power - half, power + half, color=colour, alpha=0.2, linewidth=0, label="_band")
        ax.plot(x_values, power, color=colour, marker="o", markersize=4, linewidth=1.8,
                label=f"{method} plan: simulated (band ±1.96 Monte Carlo SE)")
        if analytic:
            ax.plot(x_values, method_cell["schoenfeld_power"].values, color=colour, linestyle="--", linewidth=1.1,
                    gid=f"schoenfeld:{method}", label="_schoenfeld")
            ax.plot(x_values, method_cell["freedman_power"].values, color=colour, linestyle=":", linewidth=1.3,
                    gid=f"freedman:{method}", label="_freedman")
    if analytic:  # one key entry per formula, in neutral grey
        ax.plot([], [], color=NOMINAL_COLOUR, linestyle="--", linewidth=1.1,
                label="Schoenfeld at the simulated events")
        ax.plot([], [], color=NOMINAL_COLOUR, linestyle=":", linewidth=1.3, label="Freedman at the simulated events")
    if target is not None:
        ax.axhline(target, color=TRUTH_COLOUR, linestyle="-.", linewidth=1.0, label=f"target power {target:g}")
    name = x_label or short_names([x])[x]
    if solution is not None:
        estimate, lower, upper = (float(v) for v in solution)
        ax.axvspan(lower, upper, color="#999999", alpha=0.3, linewidth=0, label="_solution band")
        ax.axvline(estimate, color=TRUTH_COLOUR, linewidth=1.2,
                   label=f"solution: {name} {estimate:.0f} (95% CI {lower:.0f}–{upper:.0f})")
    alpha = float(summary.attrs.get("alpha", 0.05))
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel(name)
    ax.set_ylabel(f"Power: share of replicates with p < {alpha:g}")
    ax.set_title(f"Power of the {_TEST_NAMES[test]}, {ENDPOINT_NAMES[endpoint]} {COHORT_NAMES[cohort]}", fontsize=10)
    ax.grid(True, alpha=0.25, linewidth=0.6)
    legend_below(ax, ncol=2)
    return ax


_SOLVE_LABELS = {
    "n": "Patients n",
    "follow_up": "Follow-up after accrual (months)",
    "accrual_rate": "Accrual rate (patients per month)",
}


def plot_samplesize_curve(result: xr.Dataset, *, ax=None):
    """The power curve of a sample-size search (``samplesize.nc``, ``docs/results_schema.md``).

    Parameters
    ----------
    result : xarray.Dataset
        ``point`` (candidate values) with ``point_power``, ``point_power_mcse``,
        ``point_events``; ``curve_value`` with the fitted probit curve ``curve_power`` and its
        CI; scalars ``solution`` (+ ``_lower``, ``_upper``), ``true_hazard_ratio``,
        ``allocation``, ``schoenfeld_n``, ``freedman_n``; attributes ``target_power``,
        ``alpha``, ``solve``, ``design``, ``endpoint``, ``test``, ``method``.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        An errorbar container ``"simulated (±1.96 Monte Carlo SE)"`` (x = candidates, y =
        ``point_power``); the fitted curve (``gid`` ``"fit"``) and its band (``gid``
        ``"fit-band"``); Schoenfeld's and Freedman's powers at each candidate's simulated
        events (``gid`` ``"schoenfeld"``, ``"freedman"``); with ``solve = n`` their n as
        vertical marks (``gid`` ``"schoenfeld-n"``, ``"freedman-n"``); the target line; the
        solution as a vertical line (``gid`` ``"solution"``) over its CI (a span,
        ``gid`` ``"solution-band"``) or, without one, a note.
    """
    attrs = result.attrs
    alpha = float(attrs.get("alpha", 0.05))
    target = float(attrs.get("target_power", 0.8))
    solve = str(attrs.get("solve", "n"))
    ax = axes_or_new(ax)
    x = result.point.values.astype(float)
    order = np.argsort(x)
    x = x[order]
    power = result.point_power.values.astype(float)[order]
    half = Z_95 * result.point_power_mcse.values.astype(float)[order]
    colour = METHOD_COLOURS[0]
    if result.sizes.get("curve_value", 0):
        grid = result.curve_value.values.astype(float)
        ax.fill_between(grid, result.curve_power_lower.values, result.curve_power_upper.values, color=colour,
                        alpha=0.18, linewidth=0, gid="fit-band", label="_fit band")
        ax.plot(grid, result.curve_power.values, color=colour, linewidth=1.8, gid="fit",
                label="probit fit to every replicate (band: 95% CI)")
    ax.errorbar(x, power, yerr=half, fmt="o", color=colour, markersize=4.5, capsize=3, elinewidth=1.1,
                label="simulated at each candidate (±1.96 Monte Carlo SE)")
    hr = float(result.true_hazard_ratio)
    share = float(result.allocation) if "allocation" in result else 0.5
    events = result.point_events.values.astype(float)[order]
    ax.plot(x, schoenfeld_power(events, hr, allocation=share, alpha=alpha), color=NOMINAL_COLOUR, linestyle="--",
            linewidth=1.2, gid="schoenfeld", label="Schoenfeld at the simulated events")
    ax.plot(x, freedman_power(events, hr, ratio=share / (1.0 - share), alpha=alpha), color=NOMINAL_COLOUR,
            linestyle=":", linewidth=1.4, gid="freedman", label="Freedman at the simulated events")
    if solve == "n":
        for name, style in (("schoenfeld", "--"), ("freedman", ":")):
            value = float(result[f"{name}_n"])
            if np.isfinite(value):
                ax.axvline(value, ymax=0.06, color=NOMINAL_COLOUR, linestyle=style, linewidth=2.0, gid=f"{name}-n",
                           label=f"{name.capitalize()}'s n {value:.0f}")
    ax.axhline(target, color=TRUTH_COLOUR, linestyle="-.", linewidth=1.0, label=f"target power {target:g}")
    solution = float(result.solution)
    label = _SOLVE_LABELS.get(solve, solve)
    if np.isfinite(solution):
        lower, upper = float(result.solution_lower), float(result.solution_upper)
        ax.axvspan(lower, upper, color="#999999", alpha=0.3, linewidth=0, gid="solution-band", label="_solution band")
        digits = 0 if solve == "n" else 1
        ax.axvline(solution, color=TRUTH_COLOUR, linewidth=1.4, gid="solution",
                   label=f"answer: {solution:.{digits}f} (95% CI {lower:.{digits}f}–{upper:.{digits}f})")
    else:
        ax.text(0.02, 0.96, f"no value in the searched range reaches {100 * target:.0f}% power",
                transform=ax.transAxes, fontsize=8, va="top", gid="no-answer")
    ax.set_ylim(0.0, 1.0)
    design = {"rct": "randomised trial", "psm": "PSM study (n before matching)"}.get(str(attrs.get("design")), "")
    ax.set_xlabel(label + (f", {design}" if design and solve == "n" else ""))
    test = {"logrank": "log-rank test", "cox": "Cox Wald test"}.get(str(attrs.get("test", "logrank")), "test")
    ax.set_ylabel(f"Power of the {test} (p < {alpha:g})")
    endpoint = ENDPOINT_NAMES.get(str(attrs.get("endpoint", "pfs")), str(attrs.get("endpoint", "")))
    ax.set_title(f"Sample-size search: {endpoint}, {attrs.get('method', '')} plan, true HR {hr:.2f}", fontsize=10)
    ax.grid(True, alpha=0.25, linewidth=0.6)
    legend_below(ax, ncol=2)
    return ax
