"""Figures of a sweep's sensitivity indices: tornado bars, the Morris μ*–σ plane, Sobol bars and
η² bars, each with its Monte Carlo noise drawn.

Each takes the Dataset ``psmsim sensitivity`` saves (``sensitivity.nc``; ``docs/results_schema.md``,
"Sensitivity"; :func:`analysis.performance.sensitivity.of_sweep.sweep_sensitivity`) with dims
``measure``, ``method``, ``endpoint`` and ``factor`` (or ``term``), and one cell is chosen by
``measure``, ``method``, ``endpoint``.

* :func:`plot_tornado` (one-at-a-time design; Saltelli et al. 2008, §1.2.3): per factor a bar
  from the base value of the measure to its value at the factor's lowest and at its highest
  level, largest swing on top, ±1.96 MCSE at each end.
* :func:`plot_morris` (Morris 1991; Campolongo et al. 2007): μ* against σ of the elementary
  effects, μ* with SALib's bootstrap 95% CI, the point an inert factor reaches from Monte Carlo
  noise alone (``mu_star_noise``, ``ee_noise_sd``) and the σ = μ* line.
* :func:`plot_sobol` (Saltelli 2010 estimators, SALib): S1 and ST per factor with their 95%
  CIs, the noise-corrected indices as markers, and the share of the output variance that Monte
  Carlo noise explains (``noise_share``) as a band: an ST below it cannot be told from noise.
* :func:`plot_eta_squared` (factorial design; SimDesign's ``SimAnova``): η² per term beside
  the η² noise alone would give (``eta_squared_noise``).

References
----------
Saltelli A et al. (2008). Global Sensitivity Analysis: The Primer. Wiley. Morris MD (1991).
Technometrics 33:161-174. Campolongo F, Cariboni J, Saltelli A (2007). Environ Model Softw
22:1509-1518. Saltelli A et al. (2010). Comput Phys Commun 181:259-270. Herman J, Usher W
(2017). SALib. JOSS 2:97. Chalmers RP, Adkins MC (2020). Writing effective and reliable Monte
Carlo simulations with the SimDesign package. Quant Meth Psych 16:248-280.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from analysis.plots.grid import MEASURES, short_names
from analysis.plots.style import (
    ENDPOINT_NAMES, NOMINAL_COLOUR, OKABE_ITO, TRUTH_COLOUR, Z_95, axes_or_new, legend_below,
)

__all__ = ["measure_label", "plot_eta_squared", "plot_morris", "plot_sobol", "plot_tornado", "sensitivity_cell"]

_EXTRA_LABELS = {"n_pairs_mean": "Mean matched pairs"}


def measure_label(measure: str) -> str:
    """The axis label of a summary measure."""
    return _EXTRA_LABELS.get(measure) or MEASURES.get(measure, (measure,))[0]


def sensitivity_cell(sensitivity: xr.Dataset, *, design: str, measure: str, method: str | None,
                     endpoint: str) -> xr.Dataset:
    """The indices of one measure, method and endpoint, after checking the design.

    Raises
    ------
    ValueError
        Naming the choices when the design differs or a label is not in the Dataset.
    """
    found = sensitivity.attrs.get("sweep_design")
    if found != design:
        raise ValueError(f"sensitivity: indices of a {found} design; this figure needs a {design} design")
    for dim, value in (("measure", measure), ("method", method), ("endpoint", endpoint)):
        labels = [str(v) for v in sensitivity[dim].values]
        if value is not None and value not in labels:
            raise ValueError(f"{dim} {value!r}: not in the sensitivity indices; choose one of {', '.join(labels)}")
    method = method or str(sensitivity.method.values[0])
    cell = sensitivity.sel({"measure": measure, "method": method, "endpoint": endpoint})
    cell.attrs = {**sensitivity.attrs, "measure": measure, "method": method, "endpoint": endpoint}
    return cell


def _title(kind: str, cell: xr.Dataset) -> str:
    name = cell.attrs.get("sweep_name", "")
    where = ENDPOINT_NAMES.get(cell.attrs["endpoint"], cell.attrs["endpoint"])
    return (f"{kind}{f', sweep {name}' if name else ''}\n{measure_label(cell.attrs['measure'])}\n"
            f"{where} after matching, {cell.attrs['method']} plan")


def _value_text(value: float) -> str:
    return f"{value:g}" if np.isfinite(value) else "—"


def plot_tornado(sensitivity: xr.Dataset, measure: str = "power_logrank", *, method: str | None = None,
                 endpoint: str = "pfs", ax=None):
    """Tornado bars of a one-at-a-time sweep.

    Returns
    -------
    matplotlib.axes.Axes
        Two bar containers, ``"at the factor's lowest value"`` and ``"at the factor's highest
        value"`` (0.15 above and below the factor's row): per factor (rows 0..F−1 from the
        top in decreasing ``|swing|``) a bar from
        ``base_estimate`` to ``estimate_low`` / ``estimate_high``; error bars of ±1.96
        ``mcse_low`` / ``mcse_high`` at the bar ends (``gid`` ``"mcse:low"``, ``"mcse:high"``,
        when the Dataset has them, none at an end that is the base point); the base value as a
        vertical line and the measure's nominal value (bias 0, coverage 0.95) dashed; y tick labels
        ``"factor (low → high)"`` with the factor's two levels.
    """
    cell = sensitivity_cell(sensitivity, design="one_at_a_time", measure=measure, method=method, endpoint=endpoint)
    swing = cell.swing.values.astype(float)
    keep = np.flatnonzero(np.isfinite(swing))
    order = keep[np.argsort(-np.abs(swing[keep]), kind="stable")]
    factors = [str(f) for f in cell.factor.values[order]]
    names = short_names(factors)
    n = len(order)
    ax = axes_or_new(ax, figsize=(6.8, 2.2 + 0.5 * max(n, 1)))
    rows = np.arange(n)[::-1]
    base = float(cell.base_estimate)
    colours = {"low": OKABE_ITO["sky_blue"], "high": OKABE_ITO["vermillion"]}
    for end, text, shift in (("low", "lowest", 0.15), ("high", "highest", -0.15)):
        estimate = cell[f"estimate_{end}"].values.astype(float)[order]
        ax.barh(rows + shift, estimate - base, left=base, height=0.3, color=colours[end], alpha=0.9,
                label=f"at the factor's {text} value")
        if f"mcse_{end}" in cell:
            half = Z_95 * cell[f"mcse_{end}"].values.astype(float)[order]
            half = np.where(estimate == base, np.nan, half)  # that end is the base point itself: no bar
            ax.errorbar(estimate, rows + shift, xerr=half, fmt="none", ecolor=colours[end], elinewidth=1.0,
                        capsize=2.5, gid=f"mcse:{end}", label="_mcse", alpha=0.9)
    base_text = f"base {base:.3g}"
    if "base_mcse" in cell and np.isfinite(float(cell.base_mcse)):
        base_text += f" ± {Z_95 * float(cell.base_mcse):.2g}"
    ax.axvline(base, color=NOMINAL_COLOUR, linewidth=1.2, label=f"{base_text} (all factors at the scenario's values)")
    nominal = MEASURES.get(measure, (measure, None))[1]
    if nominal is not None:
        nominal = 0.95 if nominal == "level" else nominal
        ax.axvline(nominal, color=NOMINAL_COLOUR, linestyle="--", linewidth=1.0, label=f"nominal {nominal:g}")
    same = (cell.estimate_low.values.astype(float)[order] == base) & (cell.estimate_high.values.astype(float)[order] == base)
    for row in rows[same]:
        ax.text(base, row, "  same as the base at both levels", fontsize=7, va="center", color="#444444",
                gid="no-change")
    low, high = cell.value_low.values.astype(float)[order], cell.value_high.values.astype(float)[order]
    ax.set_yticks(rows, [f"{names[f]} ({_value_text(a)} → {_value_text(b)})" for f, a, b in zip(factors, low, high)],
                  fontsize=8)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xlabel(f"{measure_label(measure)} (bars: ±1.96 Monte Carlo SE)", fontsize=9)
    ax.set_title(_title("One-at-a-time sensitivity", cell), fontsize=9.5)
    ax.grid(True, axis="x", alpha=0.25, linewidth=0.6)
    legend_below(ax, ncol=2)
    return ax


def _label_points(ax, xs, ys, texts, *, span: float) -> None:
    """Label points above-right; a point close to one already labelled gets its label below."""
    done: list[tuple[float, float, bool]] = []
    for x, y, text in sorted(zip(xs, ys, texts), key=lambda item: (item[0], item[1])):
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        near = [above for px, py, above in done if abs(px - x) < 0.12 * span and abs(py - y) < 0.06 * span]
        above = not (near and near[-1])
        ax.annotate(text, (x, y), xytext=(5, 4 if above else -11), textcoords="offset points", fontsize=7.5,
                    color="#222222", gid="factor-label")
        done.append((x, y, above))


def plot_morris(sensitivity: xr.Dataset, measure: str = "power_logrank", *, method: str | None = None,
                endpoint: str = "pfs", ax=None):
    """The Morris μ*–σ plane of a Morris sweep.

    Returns
    -------
    matplotlib.axes.Axes
        One errorbar container ``"factors (μ* ± 95% CI)"`` (x = ``mu_star``, y = ``sigma``,
        x error ``mu_star_conf``), each point labelled with its factor; the noise-alone point
        (``gid`` ``"noise"``, at ``mu_star_noise``, ``ee_noise_sd``) and the region μ* below it
        shaded; the σ = μ* line (``gid`` ``"sigma=mu*"``).
    """
    cell = sensitivity_cell(sensitivity, design="morris", measure=measure, method=method, endpoint=endpoint)
    ax = axes_or_new(ax, figsize=(6.4, 4.8))
    mu_star, sigma = cell.mu_star.values.astype(float), cell.sigma.values.astype(float)
    conf = cell.mu_star_conf.values.astype(float)
    factors = [str(f) for f in cell.factor.values]
    names = short_names(factors)
    ax.errorbar(mu_star, sigma, xerr=conf, fmt="o", color=OKABE_ITO["blue"], markersize=6, capsize=3,
                elinewidth=1.2, label="factors (μ* ± 95% bootstrap CI)")
    noise_mu, noise_sd = float(cell.mu_star_noise), float(cell.ee_noise_sd)
    values = np.r_[mu_star + conf, sigma, noise_mu, noise_sd]
    largest = float(np.nanmax(values)) if np.isfinite(values).any() else 0.0
    top = 1.15 * largest if largest > 0.0 else 1.0  # every effect 0 (a constant measure): a unit square
    _label_points(ax, mu_star, sigma, [names[f] for f in factors], span=top)
    if np.isfinite(noise_mu):
        ax.axvspan(0.0, noise_mu, color="#999999", alpha=0.2, linewidth=0, label="_noise region", zorder=0)
        ax.plot([noise_mu], [noise_sd], marker="X", markersize=8, color=NOMINAL_COLOUR, linestyle="none", gid="noise",
                label=f"an inert factor, from Monte Carlo noise alone (μ* ≈ {noise_mu:.3g})")
    ax.plot([0.0, top], [0.0, top], color="#aaaaaa", linestyle="--", linewidth=0.9, gid="sigma=mu*",
            label="σ = μ*: above, the effect is non-linear or interacts")
    ax.set_xlim(0.0, top)
    ax.set_ylim(0.0, top)
    ax.set_xlabel("μ*: mean |elementary effect| (change in the measure over the factor's range)", fontsize=8.5)
    ax.set_ylabel("σ: SD of the elementary effects", fontsize=9)
    ax.set_title(_title("Morris screening", cell), fontsize=9.5)
    ax.grid(True, alpha=0.25, linewidth=0.6)
    legend_below(ax, ncol=1)
    return ax


def plot_sobol(sensitivity: xr.Dataset, measure: str = "power_logrank", *, method: str | None = None,
               endpoint: str = "pfs", ax=None):
    """Sobol first-order and total indices of a Sobol sweep.

    Returns
    -------
    matplotlib.axes.Axes
        Two bar containers ``"S1 (first order)"`` and ``"ST (total)"`` (x = factor positions
        ∓ 0.18, heights ``s1`` / ``st``) with ±``*_conf`` error bars (``gid`` ``"ci:s1"``,
        ``"ci:st"``); the noise-corrected indices as markers (``gid`` ``"corrected:s1"``,
        ``"corrected:st"``, where finite); the noise share as a horizontal band from 0
        (``gid`` ``"noise-share"``) and line.
    """
    cell = sensitivity_cell(sensitivity, design="sobol", measure=measure, method=method, endpoint=endpoint)
    factors = [str(f) for f in cell.factor.values]
    names = short_names(factors)
    x = np.arange(len(factors))
    ax = axes_or_new(ax, figsize=(max(5.6, 1.2 * len(factors) + 3.0), 4.6))
    colours = {"s1": OKABE_ITO["blue"], "st": OKABE_ITO["vermillion"]}
    values = []
    for key, shift, text in (("s1", -0.18, "S1 (first order)"), ("st", 0.18, "ST (total)")):
        estimate, conf = cell[key].values.astype(float), cell[f"{key}_conf"].values.astype(float)
        ax.bar(x + shift, estimate, width=0.36, color=colours[key], alpha=0.85, label=text)
        ax.errorbar(x + shift, estimate, yerr=conf, fmt="none", ecolor=TRUTH_COLOUR, elinewidth=1.0, capsize=3,
                    gid=f"ci:{key}", label="_ci")
        corrected = cell[f"{key}_corrected"].values.astype(float)
        if np.isfinite(corrected).any():
            ax.plot(x + shift, corrected, marker="D", markersize=5, linestyle="none", markerfacecolor="white",
                    markeredgecolor=TRUTH_COLOUR, gid=f"corrected:{key}",
                    label="noise-corrected" if key == "s1" else "_corrected")
        values += [estimate - conf, estimate + conf, corrected]
    share = float(cell.noise_share)
    if np.isfinite(share):
        ax.axhspan(0.0, share, color="#999999", alpha=0.25, linewidth=0, gid="noise-share", label="_noise band",
                   zorder=0)
        ax.axhline(share, color=NOMINAL_COLOUR, linestyle=":", linewidth=1.2,
                   label=f"Monte Carlo noise: {100 * share:.0f}% of the output variance")
    ax.axhline(0.0, color="#444444", linewidth=0.8, label="_zero")
    data = np.concatenate([np.ravel(v) for v in values] + [[0.0, 1.0]])
    data = data[np.isfinite(data)]
    ax.set_ylim(min(0.0, float(data.min())) - 0.05, max(1.05, float(data.max()) + 0.05))
    ax.set_xticks(x, [names[f] for f in factors], fontsize=8)
    ax.set_ylabel("Sobol index (bars: 95% bootstrap CI)", fontsize=9)
    ax.set_title(_title("Sobol indices", cell), fontsize=9.5)
    ax.grid(True, axis="y", alpha=0.25, linewidth=0.6)
    legend_below(ax, ncol=2)
    return ax


def plot_eta_squared(sensitivity: xr.Dataset, measure: str = "power_logrank", *, method: str | None = None,
                     endpoint: str = "pfs", ax=None):
    """η² per term of a factorial sweep beside the η² Monte Carlo noise alone would give.

    Returns
    -------
    matplotlib.axes.Axes
        A bar container ``"η² of the term"`` (rows from the top in decreasing η²; the
        ``Residuals`` term left out) and markers ``"η² from noise alone"`` (``gid``
        ``"noise"``, x = ``eta_squared_noise``).
    """
    cell = sensitivity_cell(sensitivity, design="factorial", measure=measure, method=method, endpoint=endpoint)
    terms = [str(t) for t in cell.term.values if str(t) != "Residuals"]
    cell = cell.sel(term=terms)
    eta = cell.eta_squared.values.astype(float)
    keep = np.flatnonzero(np.isfinite(eta))
    order = keep[np.argsort(-eta[keep], kind="stable")]
    n = len(order)
    ax = axes_or_new(ax, figsize=(6.8, 2.2 + 0.45 * max(n, 1)))
    rows = np.arange(n)[::-1]
    ax.barh(rows, eta[order], height=0.55, color=OKABE_ITO["blue"], alpha=0.85, label="η² of the term")
    noise = cell.eta_squared_noise.values.astype(float)[order]
    ax.plot(noise, rows, marker="|", markersize=14, markeredgewidth=2.0, color=OKABE_ITO["vermillion"],
            linestyle="none", gid="noise", label="η² from Monte Carlo noise alone")
    names = short_names(sorted({part for t in terms for part in t.split(":")}))
    ax.set_yticks(rows, [" × ".join(names.get(p, p) for p in terms[k].split(":")) for k in order], fontsize=8)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xlim(0.0, 1.0)
    scale = " (logit scale)" if "logit_scale" in cell and bool(cell.logit_scale) else ""
    ax.set_xlabel(f"η²: share of the variation across grid points{scale}", fontsize=9)
    ax.set_title(_title("η² (ANOVA)", cell), fontsize=9.5)
    ax.grid(True, axis="x", alpha=0.25, linewidth=0.6)
    legend_below(ax, ncol=2)
    return ax
