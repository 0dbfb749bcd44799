"""Distributions over replicates: the estimated hazard ratios and the matched-pair counts.

:func:`plot_hr_distribution` shows the Cox HR estimates of one method and endpoint before and
after matching (histograms on a log axis) against the true marginal HR in the treated (the
estimand of a matched analysis) and the true conditional HR of the data-generating model;
:func:`plot_matched_pairs` shows how many pairs matching found, with the number a study
reported marked and the share of replicates at or below it. Input: the replicates Dataset
(``docs/results_schema.md``).

References
----------
Austin PC (2013). The performance of different propensity score methods for estimating
marginal hazard ratios. Stat Med 32:2837-2849 (marginal vs conditional HR after matching).
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from analysis.plots.style import (
    COHORT_COLOURS, COHORT_NAMES, ENDPOINT_NAMES, TRUTH_COLOUR, axes_or_new, condition_text, hr_ticks,
    legend_below, method_colour, select_condition, select_method,
)

__all__ = ["hr_bins", "pair_count_shares", "plot_hr_distribution", "plot_matched_pairs"]


def hr_bins(log_hr: np.ndarray, *, n_bins: int = 40) -> np.ndarray:
    """Histogram edges on the log-HR scale covering the 0.5th–99.5th percentiles of the
    finite estimates (a few wild estimates of tiny matched samples would squash the rest)."""
    finite = log_hr[np.isfinite(log_hr)]
    if finite.size == 0:
        return np.linspace(-1.0, 1.0, n_bins + 1)
    low, high = np.percentile(finite, [0.5, 99.5])
    if high - low < 1e-6:
        low, high = low - 0.5, high + 0.5
    return np.linspace(low, high, n_bins + 1)


def plot_hr_distribution(
    replicates: xr.Dataset,
    *,
    method: str | None = None,
    endpoint: str = "pfs",
    condition=None,
    ax=None,
    n_bins: int = 40,
):
    """Histograms of the estimated HR before and after matching, with the true HRs.

    Parameters
    ----------
    replicates : xarray.Dataset
        ``log_hr`` over ``(replicate, method, cohort, endpoint)`` (and ``condition``), the
        truths ``true_log_hr_marginal`` and ``true_log_hr_conditional``.
    method : default the first of the ``method`` dim.
    endpoint : ``"pfs"`` or ``"os"``.
    condition : grid-point label; may be left out when there is one.
    ax : matplotlib Axes, optional
    n_bins : histogram bins (shared by both cohorts, :func:`hr_bins`).

    Returns
    -------
    matplotlib.axes.Axes
        A log-scaled x axis (HR); one histogram (a Polygon patch) per cohort, labelled with its
        median HR and usable fits; vertical lines labelled "True marginal HR …" and "True
        conditional HR …" (for OS the data-generating log-HR of death after progression, see
        ``docs/results_schema.md``). Estimates outside the bins are counted in the legend, not drawn.
    """
    data = select_condition(replicates, condition)
    data, name = select_method(data, method)
    data = data.sel(endpoint=endpoint)
    ax = axes_or_new(ax)
    log_hr = data.log_hr
    edges = hr_bins(log_hr.values.ravel(), n_bins=n_bins)
    width = edges[1] - edges[0]
    for cohort in ("full", "matched"):
        values = log_hr.sel(cohort=cohort).values
        finite = values[np.isfinite(values)]
        inside = finite[(finite >= edges[0]) & (finite <= edges[-1])]
        density = np.histogram(inside, bins=edges)[0] / max(finite.size, 1) / width
        outside = finite.size - inside.size
        median = math.exp(float(np.median(finite))) if finite.size else math.nan
        label = f"{COHORT_NAMES[cohort].capitalize()}: median HR {median:.2f}, {finite.size} fits"
        if outside:
            label += f" ({outside} off scale)"
        if cohort == "matched":  # filled; the full cohort as an outline on top, so both stay visible
            ax.stairs(density, np.exp(edges), fill=True, alpha=0.3, color=COHORT_COLOURS[cohort], label="_fill")
        ax.stairs(density, np.exp(edges), color=COHORT_COLOURS[cohort], linewidth=1.6 if cohort == "full" else 1.2,
                  label=label, zorder=3 if cohort == "full" else 2)
    conditional = "True conditional HR" + (" (of death after progression)" if endpoint == "os" else "")
    truths = (("true_log_hr_marginal", "-", "True marginal HR in the treated (ATT)"),
              ("true_log_hr_conditional", "--", conditional))
    for variable, style, text in truths:
        value = math.exp(float(data[variable]))
        ax.axvline(value, color=TRUTH_COLOUR, linestyle=style, linewidth=1.4, label=f"{text}: {value:.2f}",
                   zorder=4)
    ax.set_xscale("log")
    hr_ticks(ax, float(np.exp(edges[0])), float(np.exp(edges[-1])))
    ax.set_xlabel(f"Estimated {ENDPOINT_NAMES[endpoint]} hazard ratio (treated vs control, log scale)")
    ax.set_ylabel("Density of replicates (per unit log HR)")
    n = int(data.sizes.get("replicate", 0))
    ax.set_title(f"{ENDPOINT_NAMES[endpoint]} HR estimates, {name} plan ({n} replicates"
                 f"{condition_text(data)})", fontsize=10)
    ax.set_ylim(bottom=0.0)
    legend_below(ax)
    return ax


def pair_count_shares(replicates: xr.Dataset, *, condition=None) -> xr.DataArray:
    """Share of replicates with each matched-pair count, per method.

    Returns
    -------
    xarray.DataArray
        Dims ``(method, n_pairs)``: the share of replicates (with a non-negative count) having
        exactly that many pairs; ``n_pairs`` runs from the smallest to the largest count seen.
    """
    data = select_condition(replicates, condition)
    counts = data.n_pairs.values  # (replicate, method) after the selection
    counts = np.moveaxis(counts, data.n_pairs.dims.index("method"), 0)
    valid = counts >= 0
    if not valid.any():
        raise ValueError("n_pairs: no replicate has a pair count")
    levels = np.arange(counts[valid].min(), counts[valid].max() + 1)
    shares = np.array([[np.mean(row[ok] == level) if ok.any() else np.nan for level in levels]
                       for row, ok in zip(counts, valid)])
    return xr.DataArray(shares, dims=("method", "n_pairs"),
                        coords={"method": data.method.values, "n_pairs": levels})


def plot_matched_pairs(replicates: xr.Dataset, *, condition=None, ax=None, observed: int | None = None,
                       observed_label: str = "published"):
    """Distribution of the number of matched pairs per method, with a published count marked.

    Parameters
    ----------
    replicates : xarray.Dataset
        ``n_pairs`` over ``(replicate, method)`` (and ``condition``).
    condition : grid-point label; may be left out when there is one.
    ax : matplotlib Axes, optional
    observed : the count a study reported (e.g. 34 pairs in Liu et al. 2021), drawn as a
        vertical line with, per method, the share of replicates with at most that many pairs.
    observed_label : who reported it (legend text).

    Returns
    -------
    matplotlib.axes.Axes
        One bar container per method (labelled by method; bars side by side at each count)
        and, with ``observed``, a vertical line labelled with the count.
    """
    shares = pair_count_shares(replicates, condition=condition)
    ax = axes_or_new(ax)
    methods = shares.method.values.tolist()
    levels = shares.n_pairs.values
    width = 0.8 / len(methods)
    counts = select_condition(replicates, condition).n_pairs
    for k, method in enumerate(methods):
        method_counts = counts.sel({"method": method}).values
        method_counts = method_counts[method_counts >= 0]
        label = f"{method} plan: mean {method_counts.mean():.1f} pairs"
        if observed is not None:
            label += f"; {100 * np.mean(method_counts <= observed):.0f}% of replicates have ≤ {observed}"
        ax.bar(levels + (k - (len(methods) - 1) / 2) * width, shares.sel({"method": method}).values,
               width=width, color=method_colour(methods, method), alpha=0.85, label=label)
    if observed is not None:
        ax.axvline(observed, color=TRUTH_COLOUR, linestyle="--", linewidth=1.4,
                   label=f"{observed_label}: {observed} pairs")
    ax.set_xlabel("Matched pairs (treated patients matched)")
    ax.set_ylabel("Share of replicates")
    n = int(counts.sizes.get("replicate", 0))
    ax.set_title(f"Matched pairs over {n} replicates{condition_text(select_condition(replicates, condition))}",
                 fontsize=10)
    ax.legend(fontsize=8, frameon=False, loc="upper left")
    ax.set_ylim(0.0, ax.get_ylim()[1] * 1.3)
    ax.xaxis.get_major_locator().set_params(integer=True)
    return ax
