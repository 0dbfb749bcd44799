"""Performance across grid points: the nested-loop plot and a forest plot, with Monte Carlo errors.

Both take a summary Dataset (:func:`analysis.performance.summary.summarise_run`) of a sweep:
either a ``condition`` dim whose coordinates are the swept fields (``hazard_ratio(condition)``),
or — for a factorial grid — one dim per factor. :func:`grid_conditions` brings both to one
``condition`` dim ordered lexicographically by the factors (the first factor varies slowest).

* :func:`plot_nested_loop` (Rücker & Schwarzer 2014): the grid points side by side on the x axis
  in that order, a measure per method as a step line with its ±1.96 MCSE ribbon, the nominal
  value as a line, and under the data one step line per factor showing its level — so every
  scenario of a multi-factor design is on one panel. rsimsum's vignette calls Monte Carlo errors
  on a nested-loop plot "cumbersome"; here they are the ribbon.
* :func:`plot_forest`: a few grid points as rows, each method's estimate with its 95% Monte
  Carlo interval, and the nominal value.

References
----------
Rücker G, Schwarzer G (2014). Presenting simulation results in a nested loop plot. BMC Med Res
Methodol 14:129. Morris TP, White IR, Crowther MJ (2019). Using simulation studies to evaluate
statistical methods. Stat Med 38:2074-2102 (performance measures and their Monte Carlo SEs).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import xarray as xr

from analysis.plots.style import (
    COHORT_NAMES, ENDPOINT_NAMES, NOMINAL_COLOUR, Z_95, axes_or_new, legend_below, method_colour, select_method,
)

__all__ = ["MEASURES", "condition_labels", "grid_conditions", "measure_nominal", "plot_forest", "plot_nested_loop",
           "short_names"]

#: Dims of a summary that are not grid factors.
RESERVED_DIMS = ("condition", "method", "cohort", "endpoint", "estimand", "status", "criterion", "replicate")

#: Measure → (axis label, nominal value; "level" = 1 − alpha, None = no reference line).
MEASURES = {
    "bias_marginal": ("Bias of the log HR (vs true marginal HR)", 0.0),
    "bias_conditional": ("Bias of the log HR (vs true conditional HR)", 0.0),
    "relative_bias_marginal": ("Relative bias of the log HR (vs true marginal)", 0.0),
    "coverage_marginal": ("Coverage of the 95% CI (true marginal HR)", "level"),
    "coverage_conditional": ("Coverage of the 95% CI (true conditional HR)", "level"),
    "bias_eliminated_coverage": ("Bias-eliminated coverage of the 95% CI", "level"),
    "rel_error_mod_se": ("Relative error of the model SE (%)", 0.0),
    "emp_se": ("Empirical SE of the log HR", None),
    "mod_se": ("Model SE of the log HR", None),
    "rmse_marginal": ("Root mean squared error (vs true marginal)", None),
    "power_logrank": ("Power of the log-rank test", None),
    "power_cox": ("Power of the Cox Wald test", None),
    "balance_rate": ("Share of replicates with max |SMD| < 0.1", None),
}


def measure_nominal(summary: xr.Dataset, measure: str) -> float | None:
    """The reference value of ``measure``: 0 for biases and SE errors, 1 − alpha for coverage."""
    nominal = MEASURES.get(measure, (measure, None))[1]
    if nominal == "level":
        return 1.0 - float(summary.attrs.get("alpha", 0.05))
    return nominal


def grid_conditions(summary: xr.Dataset, factors: Sequence[str] | None = None) -> tuple[xr.Dataset, list[str]]:
    """The summary with one ``condition`` dim, ordered by the factors, and the factor names.

    Parameters
    ----------
    summary : a summary Dataset with a ``condition`` dim (factors as its coordinates) or one
        dim per factor (a factorial grid; stacked into ``condition`` here).
    factors : the factors in nesting order (outermost first); default the coordinates on
        ``condition`` (or the factor dims) in the Dataset's order.

    Returns
    -------
    (xarray.Dataset, list of str)
        ``condition`` sorted lexicographically by ``factors`` (first slowest); each factor a
        coordinate on ``condition``.
    """
    factor_dims = [d for d in summary.dims if d not in RESERVED_DIMS]
    if factor_dims:
        if "condition" in summary.dims:
            raise ValueError(f"summary: has both a condition dim and factor dims {factor_dims}")
        stacked = summary.stack(condition=factor_dims).reset_index("condition")
        stacked = stacked.assign_coords(condition=np.arange(stacked.sizes["condition"]))
        found = list(factor_dims)
    elif "condition" in summary.dims:
        stacked = summary
        found = [name for name, coord in summary.coords.items() if coord.dims == ("condition",) and name != "condition"]
    else:
        stacked = summary.expand_dims("condition")
        found = []
    chosen = found if factors is None else list(factors)
    unknown = [f for f in chosen if f not in found]
    if unknown:
        raise ValueError(f"factors {unknown}: not swept here; the factors are {found or 'none'}")
    if chosen:
        order = np.lexsort([np.asarray(stacked[f].values) for f in reversed(chosen)])
        stacked = stacked.isel(condition=order)
    return stacked, chosen


def short_names(factors: Sequence[str]) -> dict[str, str]:
    """The shortest dotted suffix that tells each factor apart (``outcome.treatment.hazard_ratio``
    → ``hazard_ratio``; ``arms.a.size`` and ``arms.b.size`` → ``a.size``, ``b.size``)."""
    parts = {f: f.split(".") for f in factors}
    names = {}
    for factor, pieces in parts.items():
        for k in range(1, len(pieces) + 1):
            suffix = ".".join(pieces[-k:])
            if sum(".".join(p[-k:]) == suffix for p in parts.values()) == 1:
                names[factor] = suffix
                break
        else:
            names[factor] = factor
    return names


def _level_text(value) -> str:
    value = value.item() if hasattr(value, "item") else value
    return f"{value:g}" if isinstance(value, float) else str(value)


def condition_labels(grid: xr.Dataset, factors: Sequence[str]) -> list[str]:
    """"factor = level, …" per condition of ``grid`` (the condition index when no factors)."""
    names = short_names(factors)
    if not factors:
        return [f"condition {c}" for c in grid.condition.values.tolist()]
    return [", ".join(f"{names[f]} = {_level_text(grid[f].values[i])}" for f in factors)
            for i in range(grid.sizes["condition"])]


def _cell(grid: xr.Dataset, measure: str, cohort: str | None, endpoint: str | None) -> xr.Dataset:
    if measure not in grid:
        raise ValueError(f"measure {measure!r}: not in the summary; choose one of "
                         f"{', '.join(sorted(n for n in grid.data_vars if not n.endswith('_mcse')))}")
    keep = [measure] + ([f"{measure}_mcse"] if f"{measure}_mcse" in grid else [])
    cell = grid[keep]
    if "cohort" in cell.dims:
        cell = cell.sel(cohort=cohort)
    if "endpoint" in cell.dims:
        cell = cell.sel(endpoint=endpoint)
    return cell


def _methods(grid: xr.Dataset, methods: Sequence[str] | None) -> list[str]:
    available = grid.method.values.tolist()
    chosen = available if methods is None else list(methods)
    for method in chosen:
        select_method(grid, method)  # an unknown name lists the choices
    return chosen


def plot_nested_loop(
    summary: xr.Dataset,
    measure: str = "bias_marginal",
    *,
    cohort: str = "matched",
    endpoint: str = "pfs",
    methods: Sequence[str] | None = None,
    factors: Sequence[str] | None = None,
    ax=None,
):
    """Nested-loop plot of one performance measure over every grid point, methods as colours.

    Parameters
    ----------
    summary : summary Dataset of a sweep (see :func:`grid_conditions`).
    measure : a variable of the summary (its ``_mcse`` gives the ribbon); :data:`MEASURES`
        names the usual ones and their nominal values.
    cohort, endpoint : the cell, where the measure has those dims.
    methods : default every method of the summary.
    factors : nesting order, outermost first (default the summary's order).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        Per method a step line labelled by its name (x = grid-point position 0..G−1) and a
        ribbon of ±1.96 MCSE (a PolyCollection); the nominal value as a line labelled
        "nominal …"; one grey step line per varying factor (``gid`` ``"factor:<name>"``) in the
        band under the data, labelled with its levels.
    """
    from matplotlib.transforms import blended_transform_factory

    grid, factors = grid_conditions(summary, factors)
    cell = _cell(grid, measure, cohort, endpoint)
    chosen = _methods(grid, methods)
    all_methods = grid.method.values.tolist()
    n = grid.sizes["condition"]
    x = np.arange(n)
    ax = axes_or_new(ax, figsize=(max(6.4, 0.12 * n + 4.0), 4.6))
    nominal = measure_nominal(summary, measure)
    has_mcse = f"{measure}_mcse" in cell
    values = []
    for method in chosen:
        colour = method_colour(all_methods, method)
        y = cell[measure].sel({"method": method}).values.astype(float)
        ax.step(x, y, where="mid", color=colour, linewidth=1.6, label=f"{method}")
        values.append(y)
        if has_mcse:
            half = Z_95 * cell[f"{measure}_mcse"].sel({"method": method}).values.astype(float)
            ax.fill_between(x, y - half, y + half, step="mid", color=colour, alpha=0.22, linewidth=0,
                            label="_band")
            values += [y - half, y + half]
    if nominal is not None:
        ax.axhline(nominal, color=NOMINAL_COLOUR, linestyle="--", linewidth=1.0, label=f"nominal {nominal:g}")
        values.append(np.array([nominal]))
    data = np.concatenate([np.ravel(v) for v in values])
    data = data[np.isfinite(data)]
    low, high = (float(data.min()), float(data.max())) if data.size else (0.0, 1.0)
    span = high - low if high > low else max(abs(high), 1.0) * 0.1

    varying = [f for f in factors if np.unique(np.asarray(grid[f].values)).size > 1]
    band = min(0.1 * len(varying), 0.4)  # share of the axes height under the data for the factors
    top = high + 0.08 * span
    bottom = low - 0.05 * span
    if band:
        bottom -= (top - bottom) * band / (1.0 - band)
    ax.set_ylim(bottom, top)
    ax.set_xlim(-0.5, n - 0.5)
    below = blended_transform_factory(ax.transData, ax.transAxes)
    names = short_names(varying)
    for k, factor in enumerate(varying):
        levels = np.unique(np.asarray(grid[factor].values))
        position = np.searchsorted(levels, np.asarray(grid[factor].values))
        height = band / len(varying)
        row_bottom = band - (k + 1) * height
        y = row_bottom + height * (0.15 + 0.45 * position / max(len(levels) - 1, 1))
        grey = ("#444444", "#777777", "#999999", "#bbbbbb")[k % 4]
        ax.step(x, y, where="mid", transform=below, color=grey, linewidth=1.2, gid=f"factor:{factor}",
                label="_factor")
        ax.text(-0.45, row_bottom + height * 0.95, f"{names[factor]}: {', '.join(_level_text(v) for v in levels)}",
                transform=below, fontsize=7, va="top", ha="left", color="#333333")
    if band:
        ax.axhline(low - 0.025 * span, color="#cccccc", linewidth=0.8, label="_separator")
        ax.set_yticks([t for t in ax.get_yticks() if low - 0.03 * span <= t <= top])
    ax.set_xticks([])
    order = " ▸ ".join(names.get(f, f) for f in varying) if varying else "condition"
    ax.set_xlabel(f"{n} scenarios, nested by {order}")
    ax.set_ylabel(MEASURES.get(measure, (measure,))[0], fontsize=9)
    where = []
    if "endpoint" in grid[measure].dims:
        where.append(ENDPOINT_NAMES[endpoint])
    if "cohort" in grid[measure].dims:
        where.append(COHORT_NAMES[cohort])
    ax.set_title("Nested-loop plot" + (f", {' '.join(where)}" if where else ""), fontsize=10)
    if has_mcse:
        ax.fill_between([], [], [], color=NOMINAL_COLOUR, alpha=0.3, linewidth=0, label="±1.96 Monte Carlo SE")
    legend_below(ax, ncol=4)
    return ax


def plot_forest(
    summary: xr.Dataset,
    measure: str = "bias_marginal",
    *,
    cohort: str = "matched",
    endpoint: str = "pfs",
    conditions: Sequence | None = None,
    methods: Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
    ax=None,
):
    """Forest-style plot: a few grid points as rows, each method's estimate ± 1.96 MCSE.

    Parameters
    ----------
    summary : summary Dataset (one or more grid points).
    measure, cohort, endpoint, methods : see :func:`plot_nested_loop`.
    conditions : labels of the ``condition`` coordinate to show, top to bottom (default all,
        in factor order).
    row_labels : the y tick labels, one per row (default "factor = level, …").
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        One errorbar container per method (labelled by its name; y = row positions from the
        top, x = the estimates); y tick labels "factor = level, …"; the nominal value as a
        vertical line.
    """
    grid, factors = grid_conditions(summary)
    if conditions is not None:
        available = grid.condition.values.tolist()
        missing = [c for c in conditions if c not in available]
        if missing:
            raise ValueError(f"conditions {missing}: not in the summary (conditions {available[:10]}…)")
        grid = grid.sel(condition=list(conditions))
    cell = _cell(grid, measure, cohort, endpoint)
    chosen = _methods(grid, methods)
    all_methods = grid.method.values.tolist()
    n = grid.sizes["condition"]
    ax = axes_or_new(ax, figsize=(6.4, 1.4 + 0.45 * n * max(1, len(chosen)) ** 0.5))
    rows = np.arange(n)[::-1]
    step = 0.6 / max(len(chosen), 1)
    has_mcse = f"{measure}_mcse" in cell
    for k, method in enumerate(chosen):
        y = rows + 0.3 - step * (k + 0.5)
        estimate = cell[measure].sel({"method": method}).values.astype(float)
        error = Z_95 * cell[f"{measure}_mcse"].sel({"method": method}).values.astype(float) if has_mcse else None
        ax.errorbar(estimate, y, xerr=error, fmt="o", markersize=5, capsize=3, linewidth=1.4,
                    color=method_colour(all_methods, method), label=method)
    nominal = measure_nominal(summary, measure)
    if nominal is not None:
        ax.axvline(nominal, color=NOMINAL_COLOUR, linestyle="--", linewidth=1.0, label=f"nominal {nominal:g}")
    if row_labels is not None and len(row_labels) != n:
        raise ValueError(f"row_labels: {len(row_labels)} labels for {n} rows")
    ax.set_yticks(rows, list(row_labels) if row_labels is not None else condition_labels(grid, factors), fontsize=8)
    ax.set_ylim(-0.6, n - 0.4)
    ax.set_xlabel(MEASURES.get(measure, (measure,))[0] + ("\n(bars: ±1.96 Monte Carlo SE)" if has_mcse else ""),
                  fontsize=9)
    where = [ENDPOINT_NAMES[endpoint]] if "endpoint" in grid[measure].dims else []
    if "cohort" in grid[measure].dims:
        where.append(COHORT_NAMES[cohort])
    ax.set_title(" ".join(where) if where else measure, fontsize=10)
    ax.grid(True, axis="x", alpha=0.25, linewidth=0.6)
    legend_below(ax, ncol=4)
    return ax
