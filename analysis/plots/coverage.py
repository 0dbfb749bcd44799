"""The zip plot of coverage (Morris, White & Crowther 2019, Figure 5; rsimsum's ``zip``).

Every replicate's confidence interval is a horizontal segment; the segments are stacked by the
fractional centile of |z|, z = (estimate − truth) / SE (the rank of their Wald p-value against
the true value), so the intervals that miss the truth gather at the top. The share that covers
is the coverage: it is drawn as a horizontal line with its 95% Monte Carlo band, beside the
nominal level. :func:`zip_data` computes the ranks and coverage; :func:`plot_zip` draws them.

References
----------
Morris TP, White IR, Crowther MJ (2019). Using simulation studies to evaluate statistical
methods. Stat Med 38:2074-2102 (zip plot, coverage and its Monte Carlo SE).
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr
from scipy import stats

from analysis.plots.style import (
    COHORT_NAMES, ENDPOINT_NAMES, OKABE_ITO, TRUTH_COLOUR, Z_95, axes_or_new, condition_text, hr_ticks,
    legend_below, select_condition, select_method,
)

__all__ = ["plot_zip", "zip_data"]

TRUTHS = {"marginal": "true_log_hr_marginal", "conditional": "true_log_hr_conditional"}


def zip_data(replicates: xr.Dataset, *, method: str | None = None, cohort: str = "matched",
             endpoint: str = "pfs", truth: str = "marginal", condition=None) -> xr.Dataset:
    """Ranked confidence intervals of one method, cohort and endpoint.

    Replicates whose estimate, SE or CI limits are not finite are left out (as in the summary's
    coverage).

    Returns
    -------
    xarray.Dataset
        Dim ``rank`` (the usable replicates sorted by |z|): ``log_hr``, ``ci_lower``,
        ``ci_upper``, ``z``, ``centile`` (rank of |z| / n, in (0, 1]; ties share their mean
        rank), ``covers`` (lower ≤ truth ≤ upper), ``replicate``. Attributes ``truth`` (log
        HR), ``truth_name``, ``coverage``, ``coverage_mcse`` (sqrt(C(1 − C)/n), Morris et al.
        2019 Table 6), ``n_used``, ``method``.
    """
    if truth not in TRUTHS:
        raise ValueError(f"truth {truth!r}: choose one of {', '.join(TRUTHS)}")
    data = select_condition(replicates, condition)
    data, name = select_method(data, method)
    cell = data.sel(cohort=cohort, endpoint=endpoint)
    theta = float(cell[TRUTHS[truth]])
    log_hr, se = cell.log_hr.values, cell.se.values
    lower, upper = cell.ci_lower.values, cell.ci_upper.values
    used = np.isfinite(log_hr) & np.isfinite(se) & np.isfinite(lower) & np.isfinite(upper) & (se > 0)
    z = (log_hr[used] - theta) / se[used]
    order = np.argsort(np.abs(z), kind="stable")
    centile = stats.rankdata(np.abs(z))[order] / max(z.size, 1)
    covers = (lower[used] <= theta) & (theta <= upper[used])
    n_used = int(used.sum())
    coverage = float(covers.mean()) if n_used else math.nan
    mcse = math.sqrt(coverage * (1.0 - coverage) / n_used) if n_used else math.nan
    replicate_index = (cell.replicate.values if "replicate" in cell.coords else np.arange(log_hr.size))[used]
    return xr.Dataset(
        {
            "log_hr": ("rank", log_hr[used][order]),
            "ci_lower": ("rank", lower[used][order]),
            "ci_upper": ("rank", upper[used][order]),
            "z": ("rank", z[order]),
            "centile": ("rank", centile),
            "covers": ("rank", covers[order]),
            "replicate": ("rank", replicate_index[order]),
        },
        attrs={"truth": theta, "truth_name": truth, "coverage": coverage, "coverage_mcse": mcse,
               "n_used": n_used, "method": name},
    )


def plot_zip(
    replicates: xr.Dataset,
    *,
    method: str | None = None,
    cohort: str = "matched",
    endpoint: str = "pfs",
    truth: str = "marginal",
    condition=None,
    ax=None,
    level: float = 0.95,
    zoom: float = 1.0,
):
    """Zip plot: every replicate's 95% CI for the HR, ranked by |z| against the true value.

    Parameters
    ----------
    replicates : xarray.Dataset
        ``log_hr``, ``se``, ``ci_lower``, ``ci_upper`` and the truths.
    method, cohort, endpoint, truth, condition : the cell (see :func:`zip_data`); ``truth``
        ``"marginal"`` (the matched analysis' estimand) or ``"conditional"``.
    ax : matplotlib Axes, optional
    level : nominal coverage of the intervals (the reference line).
    zoom : show only the top ``zoom`` share of the ranks (rsimsum's ``zoom``; 1 = all).

    Returns
    -------
    matplotlib.axes.Axes
        Two LineCollections of intervals, labelled "covers …" and "misses …"; a vertical line
        at the true HR; horizontal lines at the nominal level and at the coverage, with its
        ±1.96 MCSE band (a Polygon patch). The x axis is the HR on a log scale.
    """
    if not 0.0 < zoom <= 1.0:
        raise ValueError(f"zoom {zoom}: must lie in (0, 1]")
    data = zip_data(replicates, method=method, cohort=cohort, endpoint=endpoint, truth=truth, condition=condition)
    ax = axes_or_new(ax, figsize=(6.4, 5.0))
    coverage, mcse = data.attrs["coverage"], data.attrs["coverage_mcse"]
    misses = ~data.covers.values
    groups = ((~misses, OKABE_ITO["blue"], "covers the true HR"),
              (misses, OKABE_ITO["vermillion"], "misses the true HR"))
    linewidth = float(np.clip(300.0 / max(data.sizes["rank"], 1), 0.3, 2.0))
    for mask, colour, text in groups:
        count = int(mask.sum())
        ax.hlines(data.centile.values[mask], np.exp(data.ci_lower.values[mask]), np.exp(data.ci_upper.values[mask]),
                  color=colour, linewidth=linewidth, label=f"CI {text} ({count})")
    low, high = coverage - Z_95 * mcse, coverage + Z_95 * mcse
    ax.axhspan(low, high, color="#999999", alpha=0.45, linewidth=0, zorder=3,
               label=f"Coverage {100 * coverage:.1f}% with its 95% Monte Carlo band ({100 * low:.1f}–{100 * high:.1f}%)")
    ax.axhline(coverage, color="#333333", linewidth=1.2, label="_coverage", zorder=4)
    ax.axhline(level, color=TRUTH_COLOUR, linestyle="--", linewidth=1.2, label=f"Nominal {100 * level:g}%", zorder=4)
    ax.axvline(math.exp(data.attrs["truth"]), color=TRUTH_COLOUR, linewidth=1.2, zorder=4,
               label=f"True {data.attrs['truth_name']} HR {math.exp(data.attrs['truth']):.2f}")
    ax.set_xscale("log")
    if data.sizes["rank"]:
        hr_ticks(ax, float(np.exp(data.ci_lower.min())) / 1.05, float(np.exp(data.ci_upper.max())) * 1.05)
    ax.set_ylim(1.0 - zoom, 1.0)
    ax.set_ylabel("Fractional centile of |z| (z = (estimate − truth) / SE)")
    ax.set_xlabel(f"{ENDPOINT_NAMES[endpoint]} hazard ratio: 95% confidence interval per replicate (log scale)")
    selected = select_condition(replicates, condition)
    ax.set_title(f"Zip plot, {data.attrs['method']} plan, {ENDPOINT_NAMES[endpoint]} {COHORT_NAMES[cohort]} "
                 f"({data.attrs['n_used']} CIs{condition_text(selected)})", fontsize=10)
    legend = legend_below(ax, ncol=2, fontsize=7.5)
    for handle in legend.legend_handles:  # the intervals' hairlines would be invisible in the key
        if hasattr(handle, "set_linewidth"):
            handle.set_linewidth(max(float(np.max(handle.get_linewidth())), 2.0))
    return ax
