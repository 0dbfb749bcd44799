"""The sections of a sweep's report: its aims and factors, the scenario it varies, performance
across the grid (nested-loop or forest plots with Monte Carlo ribbons, a power curve over a
single numeric factor), the sensitivity indices of its design with their noise, and — for an
unmeasured-confounder sweep — the bias surface beside the E-value.

Each builder takes a :class:`SweepContext` (filled by :mod:`sim.run.sweep_reporting`, which
knows the folder and the scenario) and returns a :class:`analysis.plots.report.Section` or
None; :data:`SWEEP_SECTIONS` lists them in reading order.

References
----------
Morris TP, White IR, Crowther MJ (2019). Stat Med 38:2074-2102 (ADEMP, Monte Carlo SEs).
Rücker G, Schwarzer G (2014). BMC Med Res Methodol 14:129 (nested-loop plots). Saltelli A et
al. (2008). Global Sensitivity Analysis: The Primer. Wiley. VanderWeele TJ, Ding P (2017). Ann
Intern Med 167:268-274 (E-value).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import xarray as xr

from analysis.plots.grid import grid_conditions, measure_nominal
from analysis.plots.report import Paragraph, Section, Table
from analysis.plots.report_sections import StudyFacts, _number, _png, _pm, study_blocks
from analysis.plots.sensitivity import measure_label

__all__ = ["SWEEP_SECTIONS", "SweepContext", "factor_label", "grid_measures", "one_at_a_time_rows"]

#: Measures drawn across the grid (matched cohort, PFS).
GRID_MEASURES = ("bias_marginal", "coverage_marginal", "power_logrank")
#: Measures whose sensitivity indices are tabled and drawn.
INDEX_MEASURES = ("power_logrank", "bias_marginal", "coverage_marginal")
_DESIGN_TEXT = {
    "factorial": "full factorial (every combination of the levels)",
    "one_at_a_time": "one at a time (each factor moved alone from the scenario's own value)",
    "morris": "Morris screening (elementary effects along random trajectories)",
    "sobol": "Sobol variance decomposition (Saltelli sample)",
}
_MAX_NESTED = 400


@dataclass(frozen=True)
class SweepContext:
    """Everything the sweep builders read.

    ``summary``: the sweep's ``summary.nc`` (one dim per factor for a factorial design, else a
    ``condition`` dim with the factors as coordinates); ``factors``: the ``sweep_factors``
    entries (name, paths, labels, bounds, analysis_only); ``sensitivity``: ``sensitivity.nc``
    (or None); ``surface``: ``bias_surface.nc`` of an unmeasured-confounder sweep (or None);
    ``study``: the base scenario's facts; ``primary_method``: the scenario's own plan.
    """

    summary: xr.Dataset
    study: StudyFacts
    design: str
    factors: tuple[Mapping, ...]
    primary_method: str
    replicates_per_point: int | str
    sensitivity: xr.Dataset | None = None
    surface: xr.Dataset | None = None


def factor_label(factors: Sequence[Mapping], name: str) -> str:
    """An axis label for a factor: its name and the scenario field(s) it sets."""
    paths = next((f["paths"] for f in factors if f["name"] == name), [])
    return f"{name} ({', '.join(paths)})" if paths and paths != [name] else name


def grid_measures(summary: xr.Dataset) -> tuple[str, ...]:
    return tuple(m for m in GRID_MEASURES if m in summary)


def _methods(context: SweepContext) -> list[str]:
    return [str(m) for m in context.summary.method.values]


def _n_points(context: SweepContext) -> int:
    grid, _ = grid_conditions(context.summary)
    return int(grid.sizes["condition"])


# --------------------------------------------------------------------------- aims, factors
def sweep_aims_section(context: SweepContext) -> Section:
    attrs = context.summary.attrs
    question = attrs.get("sweep_question") or "How do the performance measures change over the sweep's factors?"
    crn = "with common random numbers (every grid point draws from the same seeds, so differences between points " \
          "are paired)" if str(attrs.get("common_random_numbers", "1")) in ("1", "True") else "with independent seeds"
    methods = ", ".join(f"`{m}`" for m in _methods(context))
    return Section("Aims", (
        Paragraph(f"**{question}**"),
        Paragraph(f"Sweep `{attrs.get('sweep_name', '')}` of scenario `{context.study.name}` ({context.study.title}): "
                  f"{_DESIGN_TEXT.get(context.design, context.design)} design, {_n_points(context)} grid points × "
                  f"{context.replicates_per_point} replicates, {crn}; root seed {attrs.get('root_seed', '?')}, "
                  f"psmsim {attrs.get('psmsim_version', '?')}. Methods compared on the same cohorts: {methods}. "
                  "Every measure is given with its Monte Carlo standard error (± MCSE)."),
    ))


def _levels_text(factor: Mapping) -> str:
    if factor.get("bounds"):
        low, high = factor["bounds"]
        text = f"range {low:g} – {high:g}"
        return text + (" (multiplier)" if factor.get("scale") else "")
    labels = factor.get("labels") or factor.get("levels") or []
    text = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in labels)
    return text + (" (multipliers)" if factor.get("scale") else "")


def sweep_factors_section(context: SweepContext) -> Section:
    rows = tuple((f"`{f['name']}`", ", ".join(f"`{p}`" for p in f["paths"]), _levels_text(f),
                  "analysis only (same cohorts)" if f.get("analysis_only") else "regenerates the cohorts")
                 for f in context.factors)
    return Section("Sweep factors", (
        Table("The factors varied", ("Factor", "Scenario fields", "Levels", "Changes"), rows,
              note="Every other field keeps the scenario's value (data-generating mechanism below). A factor that "
                   "only changes the analysis is applied to the same generated cohorts."),
    ))


def sweep_dgm_section(context: SweepContext) -> Section:
    blocks = study_blocks(context.study)
    blocks.insert(1, Paragraph("The scenario every grid point starts from (the base file with the sweep's fixed "
                               "`[set]` fields), before its factors change the fields above:"))
    return Section("Data-generating mechanism", tuple(blocks))


# --------------------------------------------------------------------------- across the grid
def one_at_a_time_rows(summary: xr.Dataset) -> tuple[list, list[str]]:
    """The ``condition`` labels of a one-at-a-time sweep in design order and a row label for
    each: the base point, or the one factor moved and its level."""
    varied = [str(v) for v in summary.varied.values]
    rows, labels = [], []
    for k, name in enumerate(varied):
        rows.append(summary.condition.values[k].item())
        if not name:
            labels.append("base (the scenario's values)")
        else:
            value = summary[name].values[k]
            labels.append(f"{name} = {value:g}" if isinstance(value, (float, np.floating)) else f"{name} = {value}")
    return rows, labels


def _numeric_single_factor(summary: xr.Dataset) -> str | None:
    grid, factors = grid_conditions(summary)
    varying = [f for f in factors if np.unique(np.asarray(grid[f].values)).size > 1]
    if len(varying) != 1:
        return None
    try:
        np.asarray(grid[varying[0]].values, dtype=float)
    except (TypeError, ValueError):
        return None
    return varying[0]


def grid_section(context: SweepContext) -> Section | None:
    from analysis.plots.grid import plot_forest, plot_nested_loop
    from analysis.plots.power import plot_power_curve

    summary = context.summary
    measures = grid_measures(summary)
    blocks: list = []
    plot_summary = summary.drop_vars("varied") if "varied" in summary.coords else summary
    n = _n_points(context)
    if context.design == "one_at_a_time":
        conditions, labels = one_at_a_time_rows(summary)
        blocks.append(Paragraph("Each row is a grid point: the scenario itself (base) or one factor moved alone. "
                                "Bars are ±1.96 Monte Carlo SE; the dashed line is the nominal value."))
        for measure in measures:
            blocks.append(_png(f"forest-{measure}", f"{measure_label(measure)} at each grid point (matched cohort, "
                                                    "PFS), methods as colours.",
                               plot_forest(plot_summary, measure, conditions=conditions, row_labels=labels)))
    elif context.design == "factorial" and 1 < n <= _MAX_NESTED:
        blocks.append(Paragraph(
            f"Nested-loop plots (Rücker & Schwarzer 2014): the {n} grid points side by side, ordered by the factors "
            "(the first varies slowest; the grey steps under the data show each factor's level), each method a "
            "coloured line with its ±1.96 Monte Carlo SE ribbon, the nominal value dashed."))
        for measure in measures:
            nominal = measure_nominal(summary, measure)
            caption = f"{measure_label(measure)} across the grid (matched cohort, PFS)" + (
                f"; nominal {nominal:g}" if nominal is not None else "") + "."
            blocks.append(_png(f"nested-loop-{measure}", caption, plot_nested_loop(plot_summary, measure)))
        single = _numeric_single_factor(plot_summary)
        if single is not None and "power_logrank" in summary:
            blocks.append(_png("power-curve", f"Power of the matched log-rank test against `{single}`, with the "
                                              "Schoenfeld and Freedman powers at the simulated events.",
                               plot_power_curve(plot_summary, x=single, x_label=factor_label(context.factors, single))))
    else:
        return _ranges_section(context)
    return Section("Performance across the grid", tuple(blocks))


def _ranges_section(context: SweepContext) -> Section:
    """Morris and Sobol points are a random sample of the ranges: the spread of each measure."""
    grid, _ = grid_conditions(context.summary.drop_vars("varied", errors="ignore"))
    rows = []
    for method in _methods(context):
        for measure in grid_measures(grid):
            values = grid[measure].sel({"method": method, "cohort": "matched", "endpoint": "pfs"}).values
            mcse = grid[f"{measure}_mcse"].sel({"method": method, "cohort": "matched", "endpoint": "pfs"}).values
            finite = np.isfinite(values)
            if not finite.any():
                continue
            low, median, high = np.percentile(values[finite], [0, 50, 100])
            rows.append((method, measure_label(measure), _number(low), _number(median), _number(high),
                         _number(float(np.sqrt(np.nanmean(mcse**2))))))
    return Section("Performance across the grid", (
        Table(f"The measures over the {grid.sizes['condition']} sampled points (matched cohort, PFS)",
              ("Method", "Measure", "Lowest", "Median", "Highest", "Typical MCSE"), tuple(rows), numeric=True,
              note="The points sample the factors' ranges; which factor moves a measure is in the next section."),
    ))


# --------------------------------------------------------------------------- sensitivity
def _p_value(value) -> str:
    value = float(value)
    return "NA" if not math.isfinite(value) else ("< 0.001" if value < 0.001 else f"{value:.3f}")


def _index_rows(cell: xr.Dataset, design: str) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    if design == "factorial":
        header = ("Term", "η²", "η² from noise alone", "P(noise alone)")
        rows = [(str(t).replace(":", " × "), _number(cell.eta_squared.sel(term=t)),
                 _number(cell.eta_squared_noise.sel(term=t)), _p_value(cell.noise_p_value.sel(term=t)))
                for t in cell.term.values if str(t) != "Residuals"]
    elif design == "one_at_a_time":
        header = ("Factor", "Lowest level", "Highest level", "Measure there", "Swing ± MCSE")
        order = np.argsort(-np.abs(np.nan_to_num(cell.swing.values)))
        rows = [(str(cell.factor.values[i]), _number(cell.value_low[i], 3), _number(cell.value_high[i], 3),
                 f"{_number(cell.estimate_low[i])} → {_number(cell.estimate_high[i])}",
                 _pm(cell.swing[i], cell.swing_mcse[i], signed=True)) for i in order]
    elif design == "morris":
        header = ("Factor", "μ* ± 95% CI", "σ", "μ", "Share of σ² from noise")
        rows = [(str(f), f"{_number(cell.mu_star.sel(factor=f))} ± {_number(cell.mu_star_conf.sel(factor=f))}",
                 _number(cell.sigma.sel(factor=f)), _number(cell.mu.sel(factor=f), signed=True),
                 f"{100 * float(cell.sigma_noise_share.sel(factor=f)):.0f}%") for f in cell.factor.values]
    else:
        header = ("Factor", "S1 ± 95% CI", "ST ± 95% CI", "S1 noise-corrected", "ST noise-corrected")
        rows = [(str(f), f"{_number(cell.s1.sel(factor=f))} ± {_number(cell.s1_conf.sel(factor=f))}",
                 f"{_number(cell.st.sel(factor=f))} ± {_number(cell.st_conf.sel(factor=f))}",
                 _number(cell.s1_corrected.sel(factor=f)), _number(cell.st_corrected.sel(factor=f)))
                for f in cell.factor.values]
    return header, rows


_INDEX_NOTES = {
    "factorial": "η²: share of the variation of the measure across grid points explained by the term (rates on the "
                 "logit scale, as SimDesign's SimAnova); a term whose η² is near its noise-alone value cannot be "
                 "told from Monte Carlo error.",
    "one_at_a_time": "Swing: the measure at the factor's highest level minus at its lowest, everything else at the "
                     "scenario's values; local and blind to interactions. The MCSE ignores the positive correlation "
                     "common random numbers induce, so it is conservative.",
    "morris": "μ*: mean |elementary effect| (importance); σ: their SD (non-linearity or interactions). A factor whose "
              "μ* is near the noise-alone value (drawn in the figure) is not distinguishable from Monte Carlo noise.",
    "sobol": "S1: share of the output variance due to the factor alone; ST: including its interactions. Monte Carlo "
             "noise shrinks S1 and inflates ST; the corrected columns remove its expected effect (NA when the noise "
             "exceeds the signal).",
}
_CAPTIONS = {
    "factorial": "η² of each term (bars) beside the η² Monte Carlo noise alone would give (marks).",
    "one_at_a_time": "the measure with each factor at its lowest and highest level, the others at the scenario's "
                     "values; error bars ±1.96 Monte Carlo SE.",
    "morris": "importance (μ*, with its 95% bootstrap CI) against non-linearity or interaction (σ); the cross marks "
              "an inert factor's position from Monte Carlo noise alone.",
    "sobol": "first-order and total Sobol indices with 95% bootstrap CIs; the grey band is the share of the output "
             "variance Monte Carlo noise explains.",
}
_FIGURE_STEMS = {"factorial": "eta-squared", "one_at_a_time": "tornado", "morris": "morris", "sobol": "sobol"}
_INDEX_FIGURES = {"factorial": "plot_eta_squared", "one_at_a_time": "plot_tornado", "morris": "plot_morris",
                  "sobol": "plot_sobol"}


def sensitivity_section(context: SweepContext) -> Section | None:
    from analysis.plots import sensitivity as figures

    data = context.sensitivity
    if data is None:
        return None
    design = data.attrs.get("sweep_design", context.design)
    if design == "factorial" and len([t for t in data.term.values if str(t) != "Residuals"]) < 2:
        return None
    method = context.primary_method if context.primary_method in data.method.values else str(data.method.values[0])
    draw = getattr(figures, _INDEX_FIGURES[design])
    blocks: list = [Paragraph(f"Sensitivity indices of the `{method}` plan's matched PFS analysis "
                              f"({_DESIGN_TEXT.get(design, design)}); `psmsim sensitivity` saves every measure, "
                              "method and endpoint in `sensitivity.nc` / `sensitivity.csv`.")]
    for measure in INDEX_MEASURES:
        if measure not in data.measure.values:
            continue
        cell = figures.sensitivity_cell(data, design=design, measure=measure, method=method, endpoint="pfs")
        header, rows = _index_rows(cell, design)
        note = _INDEX_NOTES[design]
        if design == "morris":
            note += f" Noise alone gives μ* ≈ {_number(cell.mu_star_noise)}."
        if design == "sobol":
            note += f" Monte Carlo noise is {100 * float(cell.noise_share):.0f}% of the output variance."
        blocks.append(Table(f"{measure_label(measure)}", header, tuple(rows), note=note, numeric=True))
        blocks.append(_png(f"{_FIGURE_STEMS[design]}-{measure}", f"{measure_label(measure)}: {_CAPTIONS[design]}",
                           draw(data, measure, method=method, endpoint="pfs")))
    return Section("Sensitivity indices", tuple(blocks))


# --------------------------------------------------------------------------- unmeasured confounder
def unmeasured_section(context: SweepContext) -> Section | None:
    from analysis.plots.bias_surface import bias_surface_figure, surface_axes

    surface = context.surface
    if surface is None:
        return None
    x, y = surface_axes(surface)
    labels = dict(context.study.covariate_labels)
    attrs = surface.attrs
    blocks: list = [Paragraph(
        "A binary confounder U, never in the PS model, is simulated with a prevalence difference between the arms "
        f"(`{x}`) and an effect on the outcome (`{y}`, its log-HR). The figure colours the mean matched PFS HR "
        "estimate at each grid point and draws where it reaches 1, where the mean CI limit nearer 1 reaches 1 and "
        "where power falls to 80%, each with its ±2 Monte Carlo SE band; the measured binary covariates of the "
        "study sit at their own imbalance and effect as benchmarks.")]
    if "implied_hr" in attrs:
        blocks.append(Paragraph(
            f"The paper's matched PFS result implies HR {float(attrs['implied_hr']):.2f} (95% CI "
            f"{float(attrs['implied_hr_ci_lower']):.2f}–{float(attrs['implied_hr_ci_upper']):.2f}); its E-value "
            f"(VanderWeele & Ding 2017, common outcome) is **{float(attrs['e_value_point']):.2f}** for the estimate "
            f"and **{float(attrs['e_value_ci']):.2f}** for the CI limit: an unmeasured confounder associated with "
            "both treatment and outcome by risk ratios of that size each could explain it away."))
    for method in [str(m) for m in surface.method.values]:
        blocks.append(_png(f"bias-surface-{method}", f"Bias surface of the `{method}` plan's matched PFS estimate "
                                                     "and, beside it, the E-value curve of the paper's HR.",
                           bias_surface_figure(surface, method=method, endpoint="pfs", labels=labels)))
        cell = surface.sel({"method": method, "endpoint": "pfs"})
        rows = []
        for value in cell[y].values:
            row = cell.sel({y: value})
            parts = []
            for contour in ("estimate_null", "ci_null", "power"):
                c, lo, hi = (float(row[v].sel(contour=contour)) for v in ("crossing", "crossing_lower", "crossing_upper"))
                parts.append(f"{c:.2f} ({lo:.2f}–{hi:.2f})" if math.isfinite(c) else "not in the grid")
            rows.append((f"{float(value):g} (HR {math.exp(float(value)):.2g})", *parts))
        blocks.append(Table(f"Where the `{method}` plan's contours cross, as U's prevalence difference",
                            (f"U's log-HR ({y})", "Estimate reaches HR 1", "CI crosses 1", "Power crosses 80%"),
                            tuple(rows), numeric=True,
                            note="Linear interpolation between grid points; in brackets the band of ±2 Monte Carlo "
                                 "SE."))
    if surface.sizes.get("benchmark", 0):
        rows = tuple((labels.get(str(b), str(b)), _number(surface.benchmark_prevalence_difference.sel(benchmark=b),
                                                           signed=True),
                      _number(surface.benchmark_log_hr.sel(benchmark=b), 2, signed=True),
                      _number(surface.benchmark_lpk_factor.sel(benchmark=b)))
                     for b in surface.benchmark.values)
        blocks.append(Table("Measured covariates as benchmarks", ("Covariate", "Prevalence difference",
                                                                  "log-HR on the outcome",
                                                                  "LPK bias factor if unmeasured"), rows, numeric=True,
                            note="Lin–Psaty–Kronmal (1998) factor by which leaving the covariate out would "
                                 "multiply the HR."))
    return Section("Unmeasured confounder", tuple(blocks))


SweepSectionBuilder = Callable[[SweepContext], "Section | None"]

#: The sections of a sweep's report, in order.
SWEEP_SECTIONS: Sequence[SweepSectionBuilder] = (
    sweep_aims_section, sweep_factors_section, sweep_dgm_section, grid_section, sensitivity_section,
    unmeasured_section,
)
