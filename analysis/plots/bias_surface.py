"""The unmeasured-confounder figures: the simulated bias surface with its contours, and the
E-value (tipping-point) curve of the paper's hazard ratio, each with the measured covariates of
Table 1 as benchmarks.

Both take the bias-surface Dataset ``psmsim sensitivity`` saves (``bias_surface.nc``;
``docs/results_schema.md``, "Bias surface"): per ``method`` and ``endpoint`` the mean estimated
log-HR over U's prevalence difference ``x`` × U's log-HR ``y``, the contours' crossings along
``x`` with their Monte Carlo bands, optionally ``lpk_mean_log_hr`` (the Lin–Psaty–Kronmal
prediction), the ``benchmark_*`` variables and the E-value attributes.

* :func:`plot_bias_surface` — the mean matched HR estimate as a colour map (blue: protective,
  red: harmful, white at HR = 1), the three contours (estimate reaches HR = 1, the mean CI
  limit nearer the null reaches 1, power falls to the target) as lines with their ±band·MCSE
  spans shaded, the LPK prediction of where the estimate reaches 1, and the benchmarks at
  (their prevalence difference between arms, their log-HR on the outcome).
* :func:`plot_e_value_curve` — the pairs (RR_EU, RR_UD) of confounder–treatment and
  confounder–outcome risk ratios whose bias factor ``RR_EU RR_UD / (RR_EU + RR_UD − 1)`` just
  explains away the observed HR (and its CI limit): the E-value is where the curve meets the
  diagonal (VanderWeele & Ding 2017). The benchmarks sit at their own strengths: ``RR_EU =
  max(p1/p0, (1 − p1)/(1 − p0))`` for a binary covariate (the bias factor's definition,
  maximised over its two levels) and ``RR_UD`` its HR converted to a risk ratio as the E-value
  was (common outcome, VanderWeele 2020), inverted when below 1.

References
----------
VanderWeele TJ, Ding P (2017). Sensitivity analysis in observational research: introducing the
E-value. Ann Intern Med 167:268-274. VanderWeele TJ (2020). Optimal approximate conversions of
odds ratios and hazard ratios to risk ratios. Biometrics 76:746-752. Lin DY, Psaty BM, Kronmal
RA (1998). Biometrics 54:948-963. Morris TP, White IR, Crowther MJ (2019). Stat Med
38:2074-2102 (Monte Carlo SEs).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import xarray as xr

from analysis.performance.sensitivity import first_crossing, hazard_ratio_to_risk_ratio
from analysis.plots.style import (
    ENDPOINT_NAMES, NOMINAL_COLOUR, OKABE_ITO, TRUTH_COLOUR, axes_or_new, new_figure, select_method,
)

__all__ = ["CONTOUR_STYLES", "benchmark_strengths", "bias_surface_figure", "e_value_curve", "plot_bias_surface",
           "plot_e_value_curve", "surface_axes"]

#: Contour → (legend label, colour, line style, hatch of its Monte Carlo band).
CONTOUR_STYLES = {
    "estimate_null": ("mean estimate reaches HR = 1", TRUTH_COLOUR, "-", None),
    "ci_null": ("mean CI limit nearer 1 reaches 1 (CI crosses 1)", OKABE_ITO["reddish_purple"], "--", None),
    "power": ("power crosses the target", OKABE_ITO["orange"], ":", None),
}
_BENCHMARK_STYLE = dict(marker="o", markersize=5.5, markerfacecolor="white", markeredgecolor=TRUTH_COLOUR,
                        markeredgewidth=1.2, linestyle="none")


def surface_axes(surface: xr.Dataset) -> tuple[str, str]:
    """The names of the prevalence-difference dim ``x`` and the U log-HR dim ``y``: ``y`` is the
    dim of ``crossing`` besides ``contour`` (and method, endpoint); ``x`` the other grid dim."""
    if "crossing" not in surface or "mean_log_hr" not in surface:
        raise ValueError("surface: not a bias-surface Dataset (no crossing / mean_log_hr); "
                         "it is written by `psmsim sensitivity` as bias_surface.nc")
    y = [d for d in surface.crossing.dims if d not in ("contour", "method", "endpoint")]
    x = [d for d in surface.mean_log_hr.dims if d not in ("method", "endpoint", *y)]
    if len(x) != 1 or len(y) != 1:
        raise ValueError(f"surface: expected one prevalence and one log-HR dim, found {x} and {y}")
    return x[0], y[0]


def _cell(surface: xr.Dataset, method: str | None, endpoint: str) -> tuple[xr.Dataset, str]:
    name = None
    if "method" in surface.dims:
        surface, name = select_method(surface, method)
    if "endpoint" in surface.dims:
        endpoints = surface.endpoint.values.tolist()
        if endpoint not in endpoints:
            raise ValueError(f"endpoint {endpoint!r}: not in the surface; choose one of {', '.join(endpoints)}")
        surface = surface.sel(endpoint=endpoint)
    return surface, name or str(surface.attrs.get("method", ""))


def _edges(values: np.ndarray) -> np.ndarray:
    """Cell edges half-way between grid values (a regular or irregular increasing grid)."""
    values = np.asarray(values, dtype=float)
    if values.size == 1:
        return np.array([values[0] - 0.5, values[0] + 0.5])
    middle = (values[1:] + values[:-1]) / 2
    return np.r_[2 * values[0] - middle[0], middle, 2 * values[-1] - middle[-1]]


def _white_outline(width: float = 3.0):
    from matplotlib import patheffects

    return [patheffects.Stroke(linewidth=width, foreground="white", alpha=0.85), patheffects.Normal()]


def _band(ax, ys, lower, upper, *, colour: str, gid: str):
    """A contour's Monte Carlo band: per row of the grid where it is defined, a rectangle from
    ``lower`` to ``upper`` as tall as the row (a PolyCollection; no interpolation between rows,
    whose bands are computed separately)."""
    from matplotlib.collections import PolyCollection

    edges = _edges(ys)
    boxes = [[(lo, edges[j]), (hi, edges[j]), (hi, edges[j + 1]), (lo, edges[j + 1])]
             for j, (lo, hi) in enumerate(zip(lower, upper)) if np.isfinite(lo) and np.isfinite(hi)]
    if boxes:
        ax.add_collection(PolyCollection(boxes, facecolors=colour, alpha=0.25, edgecolors="none", gid=gid,
                                         label="_band"), autolim=False)


def _spread_labels(ax, xs, ys, texts, *, fontsize: float = 6.5) -> None:
    """Label points in one column to the right of them all, in the order of their heights and
    spread so no two overlap (leader lines join label and point)."""
    if not len(texts):
        return
    xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    order = np.lexsort((xs, ys))
    low, high = ax.get_ylim()
    gap = (high - low) * 0.036 * fontsize / 6.5
    placed = ys[order].copy()
    placed[0] = max(placed[0], low + gap / 2)
    for k in range(1, placed.size):
        placed[k] = max(placed[k], placed[k - 1] + gap)
    placed += float(np.mean(ys) - np.mean(placed))  # the stack centred on the points
    placed += max(0.0, low + gap / 2 - placed[0])
    placed -= max(0.0, placed[-1] - (high - gap / 2))
    x_span = ax.get_xlim()[1] - ax.get_xlim()[0]
    column = float(xs.max()) + 0.06 * x_span
    for rank, k in enumerate(order):
        ax.annotate(texts[k], (xs[k], ys[k]), xytext=(column, placed[rank]), textcoords="data",
                    fontsize=fontsize, va="center", ha="left", color="#222222",
                    arrowprops=dict(arrowstyle="-", color="#666666", linewidth=0.5, shrinkA=0, shrinkB=3),
                    path_effects=_white_outline(2.0), gid="benchmark-label")


def _legend_under(ax, *, ncol: int):
    """The legend under the Axes' x label (these panels have a colour bar or a neighbour, so the
    figure-wide legend of :func:`analysis.plots.style.legend_below` would not fit)."""
    return ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=ncol, fontsize=7.5, frameon=False)


def plot_bias_surface(
    surface: xr.Dataset,
    *,
    method: str | None = None,
    endpoint: str = "pfs",
    labels: Mapping[str, str] | None = None,
    benchmarks: bool = True,
    ax=None,
):
    """The mean matched HR estimate over U's imbalance × U's effect, with the three contours.

    Parameters
    ----------
    surface : xarray.Dataset
        ``bias_surface.nc`` (see the module docstring); with ``method`` / ``endpoint`` dims or
        already at one cell.
    method : default the first of the ``method`` dim.
    endpoint : ``pfs`` or ``os``.
    labels : covariate name → label of its benchmark point (default the name).
    benchmarks : draw the measured covariates (``benchmark_*``) when present.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        A QuadMesh (``gid`` ``"surface"``) of exp(``mean_log_hr``) on cells centred on the grid
        points (x = prevalence difference, y = U's log-HR), colour-normalised on the log scale
        around HR = 1, with a colour bar; per contour found in the grid a line (label from
        :data:`CONTOUR_STYLES`, ``gid`` ``"contour:<name>"``, x = ``crossing``, y = U's
        log-HR) and its band (a PolyCollection, ``gid`` ``"band:<name>"``, from
        ``crossing_lower`` to ``crossing_upper``); the LPK prediction (``gid`` ``"lpk"``);
        the benchmarks as one marker line (``gid`` ``"benchmarks"``) with a label each.
    """
    from matplotlib.colors import Normalize

    x, y = surface_axes(surface)
    cell, name = _cell(surface, method, endpoint)
    xs, ys = cell[x].values.astype(float), cell[y].values.astype(float)
    ax = axes_or_new(ax, figsize=(6.6, 5.0))
    log_hr = cell.mean_log_hr.transpose(y, x).values.astype(float)
    limit = max(float(np.nanmax(np.abs(log_hr))) if np.isfinite(log_hr).any() else 1.0, np.log(1.25))
    norm = Normalize(vmin=-limit, vmax=limit)
    mesh = ax.pcolormesh(_edges(xs), _edges(ys), log_hr, cmap="RdBu_r", norm=norm, shading="flat", gid="surface",
                         alpha=0.85)
    colourbar = ax.figure.colorbar(mesh, ax=ax, shrink=0.9, pad=0.02)
    ticks = np.array([0.2, 0.25, 0.33, 0.5, 0.67, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0])
    ticks = ticks[np.abs(np.log(ticks)) <= limit + 1e-9]
    colourbar.set_ticks(np.log(ticks), labels=[f"{t:g}" for t in ticks])
    truth = float(np.exp(np.nanmean(cell.true_log_hr.values))) if "true_log_hr" in cell else float("nan")
    colourbar.set_label("Mean matched HR estimate" + (f" (true marginal HR ≈ {truth:.2f})" if np.isfinite(truth) else ""),
                        fontsize=8)
    colourbar.ax.tick_params(labelsize=7)

    band_sigma = float(surface.attrs.get("band", 2.0))
    target = float(surface.attrs.get("power_target", 0.8))
    for contour in cell.contour.values.tolist():
        label, colour, style, _ = CONTOUR_STYLES[contour]
        if contour == "power":
            label = f"power crosses {100 * target:.0f}%"
        row = cell.sel(contour=contour)
        centre = row.crossing.values.astype(float)
        lower, upper = row.crossing_lower.values.astype(float), row.crossing_upper.values.astype(float)
        _band(ax, ys, lower, upper, colour=colour, gid=f"band:{contour}")
        if np.isfinite(centre).any():
            ax.plot(centre, ys, color=colour, linestyle=style, linewidth=2.0, marker="o", markersize=3,
                    label=label, gid=f"contour:{contour}", path_effects=_white_outline(3.5))
        else:
            ax.plot([], [], color=colour, linestyle=style, linewidth=2.0, label=f"{label} (not in the grid)",
                    gid=f"contour:{contour}")
    if "lpk_mean_log_hr" in cell:
        lpk = cell.lpk_mean_log_hr.transpose(y, x).values.astype(float)
        crossings = np.array([first_crossing(xs, lpk[j], 0.0) for j in range(ys.size)])
        ax.plot(crossings, ys, color="#333333", linestyle="-.", linewidth=1.3, gid="lpk",
                label="Lin–Psaty–Kronmal prediction: HR reaches 1", path_effects=_white_outline(3.0))
    ax.fill_between([], [], [], color=NOMINAL_COLOUR, alpha=0.3, linewidth=0,
                    label=f"shaded: ±{band_sigma:g} Monte Carlo SE of a contour")

    x_low, x_high = _edges(xs)[[0, -1]]
    y_low, y_high = _edges(ys)[[0, -1]]
    drawn = benchmarks and "benchmark_prevalence_difference" in surface and surface.sizes.get("benchmark", 0)
    if drawn:
        bx = surface.benchmark_prevalence_difference.values.astype(float)
        by = surface.benchmark_log_hr.values.astype(float)
        x_low, x_high = min(x_low, bx.min() - 0.03), max(x_high, bx.max() + 0.03)
        ax.plot(bx, by, gid="benchmarks", label="measured covariates of Table 1 (benchmarks)", zorder=5,
                **_BENCHMARK_STYLE)
    ax.set_xlim(x_low, x_high)
    ax.set_ylim(y_low, y_high)
    if drawn:
        names = [str(b) for b in surface.benchmark.values]
        _spread_labels(ax, bx, by, [(labels or {}).get(b, b) for b in names])
    ax.axvline(0.0, color="#999999", linewidth=0.6, zorder=1, label="_zero")
    ax.set_yticks(ys, [f"{v:g} (HR {np.exp(v):.2g})" for v in ys], fontsize=7)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_xlabel("U's prevalence difference between arms (treated − control)", fontsize=9)
    ax.set_ylabel("U's log-HR on the outcome (its HR)", fontsize=9)
    where = ENDPOINT_NAMES.get(str(endpoint), str(endpoint))
    ax.set_title(f"Bias surface of the matched {where} estimate, {name} plan\n"
                 "(unmeasured binary confounder U, never in the PS model)", fontsize=9.5)
    _legend_under(ax, ncol=2)
    return ax


def e_value_curve(risk_ratio: float, rr_eu) -> np.ndarray:
    """RR_UD that, with RR_EU, just explains away ``risk_ratio``:
    ``RR* (RR_EU − 1) / (RR_EU − RR*)`` with ``RR* = max(RR, 1/RR)`` (NaN where RR_EU ≤ RR*,
    which no RR_UD can compensate) — the curve on which the bias factor equals RR*
    (VanderWeele & Ding 2017)."""
    rr = float(risk_ratio)
    star = 1.0 / rr if rr < 1.0 else rr
    eu = np.asarray(rr_eu, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ud = star * (eu - 1.0) / (eu - star)
    return np.where(eu > star, ud, np.nan)


def benchmark_strengths(surface: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(RR_EU, RR_UD) of each benchmark covariate, as defined in the module docstring."""
    p1 = surface.benchmark_prevalence_treated.values.astype(float)
    p0 = surface.benchmark_prevalence_control.values.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        rr_eu = np.fmax(p1 / p0, (1.0 - p1) / (1.0 - p0))
    rr = np.asarray(hazard_ratio_to_risk_ratio(np.exp(surface.benchmark_log_hr.values.astype(float)), rare=False))
    rr_ud = np.where(rr < 1.0, 1.0 / rr, rr)
    return rr_eu, rr_ud


def plot_e_value_curve(surface: xr.Dataset, *, labels: Mapping[str, str] | None = None, ax=None):
    """The E-value curve of the paper's HR (attributes ``implied_hr``, ``implied_hr_ci_lower``,
    ``implied_hr_ci_upper``, ``e_value_point``, ``e_value_ci``) with the benchmarks.

    Returns
    -------
    matplotlib.axes.Axes
        The point estimate's curve (``gid`` ``"curve:point"``; x = RR_EU, y = RR_UD from
        :func:`e_value_curve`), the CI limit's curve (``gid`` ``"curve:ci"``, when the CI
        excludes 1), the E-values as markers on the diagonal (``gid`` ``"e-value:point"``,
        ``"e-value:ci"``), the benchmarks (``gid`` ``"benchmarks"``, from
        :func:`benchmark_strengths`).
    """
    attrs = surface.attrs
    if "implied_hr" not in attrs:
        raise ValueError("surface: no implied_hr attribute (the sweep file gives no `reported` result); "
                         "the E-value needs the paper's HR")
    hr = float(attrs["implied_hr"])
    lower, upper = float(attrs.get("implied_hr_ci_lower", np.nan)), float(attrs.get("implied_hr_ci_upper", np.nan))
    point, ci = float(attrs["e_value_point"]), float(attrs.get("e_value_ci", np.nan))
    ax = axes_or_new(ax, figsize=(5.0, 5.0))
    top = max(2.2 * point, 3.0)
    has_benchmarks = "benchmark_prevalence_treated" in surface and surface.sizes.get("benchmark", 0)
    if has_benchmarks:
        rr_eu, rr_ud = benchmark_strengths(surface)
        top = max(top, 1.1 * float(np.nanmax(np.r_[rr_eu, rr_ud])))
    grid = np.linspace(1.0, top, 600)
    rr_point = float(hazard_ratio_to_risk_ratio(hr, rare=False))
    ax.plot(grid, e_value_curve(rr_point, grid), color=TRUTH_COLOUR, linewidth=2.0, gid="curve:point",
            label=f"explains away HR {hr:.2f} (E-value {point:.2f})")
    ax.plot([point], [point], marker="o", color=TRUTH_COLOUR, markersize=6, linestyle="none", gid="e-value:point",
            label="_e-value point")
    ax.annotate(f"E-value {point:.2f}", (point, point), xytext=(8, 6), textcoords="offset points", fontsize=8,
                path_effects=_white_outline(2.5))
    limit = upper if hr < 1.0 else lower
    if np.isfinite(ci) and ci > 1.0 and np.isfinite(limit):
        rr_limit = float(hazard_ratio_to_risk_ratio(limit, rare=False))
        colour = OKABE_ITO["reddish_purple"]
        ax.plot(grid, e_value_curve(rr_limit, grid), color=colour, linewidth=1.6, linestyle="--", gid="curve:ci",
                label=f"moves its CI limit {limit:.2f} to 1 (E-value {ci:.2f})")
        ax.plot([ci], [ci], marker="o", color=colour, markersize=5, linestyle="none", gid="e-value:ci",
                label="_e-value ci")
    ax.plot([1.0, top], [1.0, top], color="#bbbbbb", linewidth=0.8, label="_diagonal")
    ax.set_xlim(1.0, top)
    ax.set_ylim(1.0, top)
    if has_benchmarks:
        ax.plot(rr_eu, rr_ud, gid="benchmarks", label="measured covariates of Table 1", zorder=5, **_BENCHMARK_STYLE)
        with np.errstate(invalid="ignore"):
            factor = rr_eu * rr_ud / (rr_eu + rr_ud - 1.0)
        if np.isfinite(factor).any():  # the benchmark nearest the curves: the largest bias factor
            k = int(np.nanargmax(factor))
            name = str(surface.benchmark.values[k])
            ax.annotate(f"strongest: {(labels or {}).get(name, name)}\n(bias factor {factor[k]:.2f})",
                        (rr_eu[k], rr_ud[k]), xytext=(18, 22), textcoords="offset points", fontsize=7,
                        arrowprops=dict(arrowstyle="-", color="#666666", linewidth=0.6), gid="benchmark-label",
                        path_effects=_white_outline(2.0))
    ax.set_xlabel("RR_EU: how much more common U is in one arm (risk ratio)", fontsize=8.5)
    ax.set_ylabel("RR_UD: U's effect on the outcome (risk ratio)", fontsize=8.5)
    ax.set_title(f"E-value of the paper's HR {hr:.2f} (95% CI {lower:.2f}–{upper:.2f})\n"
                 "a confounder above a curve could explain it away", fontsize=9.5)
    ax.tick_params(labelsize=7)
    ax.grid(True, alpha=0.25, linewidth=0.6)
    _legend_under(ax, ncol=1)
    return ax


def bias_surface_figure(surface: xr.Dataset, *, method: str | None = None, endpoint: str = "pfs",
                        labels: Mapping[str, str] | None = None):
    """The bias surface and, beside it when the surface holds the paper's HR, its E-value
    curve: one Figure (``figure.axes``: the surface, its colour bar, the E-value panel)."""
    with_e_value = "implied_hr" in surface.attrs
    layout = dict(ncols=2, figsize=(12.0, 6.2), width_ratios=[1.5, 1.0]) if with_e_value else dict(figsize=(7.0, 6.2))
    figure, axes = new_figure(**layout)
    first = axes[0] if with_e_value else axes
    plot_bias_surface(surface, method=method, endpoint=endpoint, labels=labels, ax=first)
    if with_e_value:
        plot_e_value_curve(surface, labels=labels, ax=axes[1])
    return figure
