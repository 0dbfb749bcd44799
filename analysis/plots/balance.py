"""The love plot: covariate balance before and after matching, over replicates.

:func:`love_plot_data` reduces the per-covariate SMDs of the replicates Dataset (variable
``smd``, ``docs/results_schema.md``) to the median |SMD| and a spread (by default the 10th and
90th percentiles) per covariate and cohort; :func:`plot_love` draws them as a dot plot, the
covariates sorted by their imbalance before matching, with the 0.1 threshold. For one cohort
(a single replicate) the spread collapses onto the point.

References
----------
Ahmed A, Husain A, Love TE, et al. (2006). Heart failure, chronic diuretic use, and increase in
mortality and hospitalization. Eur Heart J 27:1431-1439 (the "Love plot"). Austin PC (2009).
Balance diagnostics for comparing the distribution of baseline covariates between treatment
groups in propensity-score matched samples. Stat Med 28:3083-3107 (|SMD| < 0.1).
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from analysis.plots.style import (
    COHORT_COLOURS, NOMINAL_COLOUR, axes_or_new, legend_below, select_condition, select_method,
)

__all__ = ["ADJUSTED_LABELS", "love_plot_data", "plot_love"]

#: The legend entry of the second cohort slot per estimator (``analysis/plan/options.py``): a
#: weighting estimator's SMDs are weighted ones (Austin & Stuart 2015), not "after matching".
ADJUSTED_LABELS = {
    "matching": "After matching",
    "iptw": "After IPTW weighting (weighted SMD)",
    "overlap": "After overlap weighting (weighted SMD)",
}


def love_plot_data(replicates: xr.Dataset, *, method: str | None = None, condition=None,
                   quantiles: tuple[float, float] = (0.1, 0.9)) -> xr.Dataset:
    """Median |SMD| and its spread over replicates, per covariate and cohort.

    Parameters
    ----------
    replicates : xarray.Dataset
        With ``smd`` over ``(replicate, cohort, covariate)`` (and ``condition``, ``method``,
        which are selected here).
    method : default the first of the ``method`` dim.
    condition : grid-point label; may be left out when there is one.
    quantiles : lower and upper quantile of |SMD| over replicates.

    Returns
    -------
    xarray.Dataset
        Dims ``(cohort, covariate)``: ``median``, ``lower``, ``upper`` of |SMD| over the
        replicates with a finite SMD, ``n_used`` (those replicates); covariates in the order
        of decreasing median before matching (the love plot's order, largest on top).
        Attributes ``method``, ``quantiles``.
    """
    data = select_condition(replicates, condition)
    data, name = select_method(data, method)
    magnitude = np.abs(data.smd)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a covariate NaN in every replicate
        summary = xr.Dataset({
            "median": magnitude.median("replicate"),
            "lower": magnitude.quantile(quantiles[0], dim="replicate").drop_vars("quantile"),
            "upper": magnitude.quantile(quantiles[1], dim="replicate").drop_vars("quantile"),
            "n_used": np.isfinite(magnitude).sum("replicate"),
        })
    before = summary["median"].sel(cohort="full").fillna(-np.inf).values
    order = np.argsort(-before, kind="stable")
    summary = summary.isel(covariate=order)
    summary.attrs = {"method": name, "quantiles": list(quantiles)}
    return summary


def plot_love(
    replicates: xr.Dataset,
    *,
    method: str | None = None,
    condition=None,
    ax=None,
    labels: dict[str, str] | None = None,
    threshold: float = 0.1,
    quantiles: tuple[float, float] = (0.1, 0.9),
    estimator: str = "matching",
):
    """|SMD| per covariate before and after matching (or weighting): median over replicates
    with its spread.

    Parameters
    ----------
    replicates : xarray.Dataset
        The replicates Dataset (``smd``), or that of one cohort (one replicate).
    method, condition, quantiles : see :func:`love_plot_data`.
    ax : matplotlib Axes, optional
    labels : covariate name → label on the axis (default the name).
    threshold : the vertical reference line (Austin 2009: 0.1).
    estimator : the method's estimator; names the adjusted cohort (:data:`ADJUSTED_LABELS`).
        The other estimators (outcome-model adjustment, PS strata) balance no sample.

    Returns
    -------
    matplotlib.axes.Axes
        One marker line per cohort (labelled by cohort, x = median |SMD|, y = covariate rows
        from the top) and, with more than one replicate, the spread as horizontal line
        segments (a LineCollection per cohort).
    """
    if estimator not in ADJUSTED_LABELS:
        raise ValueError(f"estimator {estimator!r}: has no balanced sample to draw; a love plot needs one of "
                         f"{', '.join(ADJUSTED_LABELS)}")
    data = love_plot_data(replicates, method=method, condition=condition, quantiles=quantiles)
    labels = labels or {}
    covariates = data.covariate.values.tolist()
    n_rows = len(covariates)
    ax = axes_or_new(ax, figsize=(6.4, 1.6 + 0.32 * n_rows))
    rows = np.arange(n_rows)[::-1]  # largest imbalance on top
    n_replicates = int(replicates.sizes.get("replicate", 1))
    offsets = {"full": 0.12, "matched": -0.12} if n_replicates > 1 else {"full": 0.0, "matched": 0.0}
    markers = {"full": "o", "matched": "D"}
    before = "Before matching" if estimator == "matching" else "Before weighting (unweighted SMD)"
    for cohort in ("full", "matched"):
        cell = data.sel(cohort=cohort)
        y = rows + offsets[cohort]
        colour = COHORT_COLOURS[cohort]
        if n_replicates > 1:
            ax.hlines(y, cell.lower.values, cell.upper.values, color=colour, linewidth=2.0, alpha=0.55,
                      label=f"_spread {cohort}")
        filled = cohort == "matched"
        ax.plot(cell["median"].values, y, linestyle="none", marker=markers[cohort], markersize=6,
                color=colour, markerfacecolor=colour if filled else "white", markeredgewidth=1.5,
                label=before if cohort == "full" else ADJUSTED_LABELS[estimator])
    ax.axvline(threshold, color=NOMINAL_COLOUR, linestyle="--", linewidth=1.0, label=f"|SMD| = {threshold:g} threshold")
    ax.set_yticks(rows, [labels.get(c, c) for c in covariates], fontsize=8)
    ax.set_ylim(-0.7, n_rows - 0.3)
    right = float(np.nanmax(np.r_[data.upper.values.ravel(), data["median"].values.ravel(), threshold]))
    ax.set_xlim(-0.02 * right, right * 1.05)
    low, high = (int(round(100 * q)) for q in quantiles)
    spread = (f"\nmarker: median over {n_replicates} replicates; bar: {low}th–{high}th percentile"
              if n_replicates > 1 else "")
    ax.set_xlabel(f"Absolute standardised mean difference |SMD|{spread}", fontsize=9)
    cohorts = f"{n_replicates} replicates" if n_replicates > 1 else "one cohort"
    ax.set_title(f"Covariate balance, {data.attrs['method']} plan ({cohorts})", fontsize=10)
    ax.grid(True, axis="x", alpha=0.25, linewidth=0.6)
    legend_below(ax, ncol=3)
    return ax
