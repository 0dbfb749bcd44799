"""Figures and the report of a sweep folder (``psmsim plot RUN_DIR --kind nested-loop|forest|
power|eta-squared|tornado|morris|sobol|bias-surface``, ``psmsim report RUN_DIR``).

A sweep folder holds ``summary.nc`` with the ``sweep_*`` attributes (``docs/results_schema.md``,
"Sweeps") and, once ``psmsim sensitivity`` ran, ``sensitivity.nc`` and (unmeasured-confounder
sweeps) ``bias_surface.nc``. Where those two are missing they are computed here in memory, by
the same functions and seed ``psmsim sensitivity`` uses, and not written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import xarray as xr

from analysis.plots.report import Report
from analysis.plots.report_sweep import SWEEP_SECTIONS, SweepContext
from sim.errors import PsmsimError, RunFolderError
from sim.run.report_facts import study_facts
from sim.run.store import SUMMARY_NC
from sim.run.atomic_files import NETCDF_ENGINE, read_dataset
from sim.scenario import Scenario, parse_scenario

__all__ = ["SWEEP_PLOT_KINDS", "SweepData", "build_sweep_report", "is_sweep_folder", "load_sweep", "sweep_figure"]

#: Figures of a sweep folder; the sensitivity ones need their design.
SWEEP_PLOT_KINDS = ("nested-loop", "forest", "power", "eta-squared", "tornado", "morris", "sobol", "bias-surface")
_KIND_OF_DESIGN = {"factorial": "eta-squared", "one_at_a_time": "tornado", "morris": "morris", "sobol": "sobol"}
_DEFAULT_MEASURE = {"nested-loop": "bias_marginal", "forest": "bias_marginal"}


class SweepPlotError(PsmsimError):
    """A figure that does not fit the sweep (another design, a missing surface, a bad option)."""


@dataclass(frozen=True)
class SweepData:
    """What a sweep folder holds for figures and the report."""

    run_dir: Path
    summary: xr.Dataset
    scenario: Scenario
    design: str
    factors: tuple[dict, ...]
    primary_method: str


def is_sweep_folder(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a sweep's summary (``sweep_design`` attribute)."""
    path = Path(run_dir) / SUMMARY_NC
    if not path.exists():
        return False
    try:
        with xr.open_dataset(path, engine=NETCDF_ENGINE) as dataset:  # the attributes only
            return "sweep_design" in dataset.attrs
    except (OSError, ValueError):
        return False


def sweep_base_scenario(summary: xr.Dataset, *, source: str) -> Scenario:
    """The scenario every grid point starts from: the base file (attribute ``scenario_text``)
    with the sweep's ``unset`` fields removed and its ``[set]`` merged in (attribute
    ``sweep_text``), as ``psmsim sweep`` built it."""
    import tomllib

    from sim.run.sweep_file import base_document, parse_sweep
    from sim.scenario import scenario_from_mapping

    text = summary.attrs["scenario_text"]
    if not summary.attrs.get("sweep_text"):
        return parse_scenario(text, source=f"{source} (scenario_text)")
    sweep = parse_sweep(summary.attrs["sweep_text"], source=f"{source} (sweep_text)")
    return scenario_from_mapping(base_document(sweep, tomllib.loads(text)), source_text=text)


def load_sweep(run_dir: Path) -> SweepData:
    run_dir = Path(run_dir)
    path = run_dir / SUMMARY_NC
    if not path.exists():
        raise RunFolderError(f"{run_dir}: no {SUMMARY_NC} here; run `psmsim sweep SCENARIO SWEEP --out {run_dir}` first")
    try:
        summary = read_dataset(path)
    except (OSError, ValueError) as exc:
        raise RunFolderError(f"{path}: cannot be read as netCDF ({exc})") from None
    if "sweep_design" not in summary.attrs:
        raise RunFolderError(f"{run_dir}: holds a plain run, not a sweep")
    scenario = sweep_base_scenario(summary, source=f"{path}")
    methods = [str(m) for m in summary.method.values]
    primary = scenario.analysis.plan if scenario.analysis.plan in methods else methods[0]
    return SweepData(run_dir, summary, scenario, str(summary.attrs["sweep_design"]),
                     tuple(json.loads(summary.attrs["sweep_factors"])), primary)


def sweep_sensitivity_data(sweep: SweepData) -> xr.Dataset:
    """``sensitivity.nc``, or the same indices computed now (not written)."""
    from sim.run.sensitivity_run import SENSITIVITY_NC

    path = sweep.run_dir / SENSITIVITY_NC
    if path.exists():
        return read_dataset(path)
    from analysis.performance.sensitivity.of_sweep import sweep_sensitivity

    return sweep_sensitivity(sweep.summary, seed=int(sweep.summary.attrs.get("root_seed", 1)))


def sweep_surface_data(sweep: SweepData) -> xr.Dataset | None:
    """``bias_surface.nc`` of an unmeasured-confounder sweep (computed now if missing), else None."""
    from sim.run.unmeasured import BIAS_SURFACE_NC, unmeasured_dataset

    surface = json.loads(sweep.summary.attrs.get("sweep_surface", "null") or "null")
    if not surface:
        return None
    path = sweep.run_dir / BIAS_SURFACE_NC
    if path.exists():
        return read_dataset(path)
    dataset, _ = unmeasured_dataset(sweep.run_dir, sweep.summary, x=surface[0], y=surface[1])
    return dataset


def _check(sweep: SweepData, *, method: str | None, measure: str | None) -> None:
    methods = [str(m) for m in sweep.summary.method.values]
    if method is not None and method not in methods:
        raise SweepPlotError(f"--method {method}: not a method of this sweep; choose one of {', '.join(methods)}")
    if measure is not None and measure not in sweep.summary:
        choices = sorted(n for n in sweep.summary.data_vars if f"{n}_mcse" in sweep.summary)
        raise SweepPlotError(f"--measure {measure}: not in the sweep's summary; choose one of {', '.join(choices)}")


def sweep_figure(run_dir: Path, kind: str, *, measure: str | None = None, method: str | None = None,
                 endpoint: str = "pfs", cohort: str = "matched", factor: str | None = None):
    """One figure of a sweep folder and its file stem.

    Parameters
    ----------
    kind : one of :data:`SWEEP_PLOT_KINDS`.
    measure : summary measure (nested-loop, forest: default ``bias_marginal``; the indices'
        figures: default ``power_logrank``).
    method : nested-loop, forest, power: only this method (default every method, as colours);
        the indices and the surface: this method (default the scenario's plan).
    factor : the x axis of ``power`` (default the only swept factor).
    """
    from analysis.plots import sensitivity as indices
    from analysis.plots.grid import plot_forest, plot_nested_loop
    from analysis.plots.power import plot_power_curve

    if kind not in SWEEP_PLOT_KINDS:
        raise SweepPlotError(f"--kind {kind}: choose one of {', '.join(SWEEP_PLOT_KINDS)}")
    sweep = load_sweep(run_dir)
    _check(sweep, method=method, measure=measure)
    summary = sweep.summary.drop_vars("varied") if "varied" in sweep.summary.coords else sweep.summary
    methods = [method] if method else None
    try:
        if kind in ("nested-loop", "forest"):
            chosen = measure or _DEFAULT_MEASURE[kind]
            options = dict(cohort=cohort, endpoint=endpoint, methods=methods)
            if kind == "forest" and sweep.design == "one_at_a_time":
                from analysis.plots.report_sweep import one_at_a_time_rows

                conditions, labels = one_at_a_time_rows(sweep.summary)
                options.update(conditions=conditions, row_labels=labels)
            draw = plot_nested_loop if kind == "nested-loop" else plot_forest
            axes = draw(summary, chosen, **options)
            return axes.figure, f"{kind}-{chosen}-{cohort}-{endpoint}"
        if kind == "power":
            if factor is None and len(sweep.factors) != 1:
                raise SweepPlotError(f"--kind power: name the x axis with --factor (one of "
                                     f"{', '.join(f['name'] for f in sweep.factors)}); every other factor must "
                                     "have a single level in the sweep")
            from analysis.plots.report_sweep import factor_label

            x = factor or sweep.factors[0]["name"]
            axes = plot_power_curve(summary, x=x, cohort=cohort, endpoint=endpoint, methods=methods,
                                    x_label=factor_label(sweep.factors, x))
            return axes.figure, f"power-{x}-{cohort}-{endpoint}"
        name = method or sweep.primary_method
        if kind == "bias-surface":
            from analysis.plots.bias_surface import bias_surface_figure

            surface = sweep_surface_data(sweep)
            if surface is None:
                raise SweepPlotError(f"--kind bias-surface: sweep {sweep.summary.attrs.get('sweep_name', '')} has no "
                                     "[sweep] surface (only an unmeasured-confounder sweep draws one)")
            labels = {c.name: c.label for c in sweep.scenario.covariates}
            return (bias_surface_figure(surface, method=name, endpoint=endpoint, labels=labels),
                    f"bias-surface-{name}-{endpoint}")
        wanted = _KIND_OF_DESIGN[sweep.design]
        if kind != wanted:
            raise SweepPlotError(f"--kind {kind}: this is a {sweep.design} sweep; its sensitivity figure is "
                                 f"--kind {wanted}")
        chosen = measure or "power_logrank"
        draw = {"eta-squared": indices.plot_eta_squared, "tornado": indices.plot_tornado,
                "morris": indices.plot_morris, "sobol": indices.plot_sobol}[kind]
        axes = draw(sweep_sensitivity_data(sweep), chosen, method=name, endpoint=endpoint)
        return axes.figure, f"{kind}-{chosen}-{name}-{endpoint}"
    except ValueError as exc:  # a figure's own check (an ambiguous x, a measure without indices)
        raise SweepPlotError(f"--kind {kind}: {exc}") from None


def _replicates_text(summary: xr.Dataset) -> str:
    """``"200"``, or ``"200–800"`` when ``--mcse-target`` gave the points different counts."""
    if "n_replicates" not in summary.data_vars:
        return str(int(summary.attrs.get("n_replicates", 0)))
    low, high = int(summary.n_replicates.min()), int(summary.n_replicates.max())
    return str(low) if low == high else f"{low}–{high}"


def build_sweep_report(run_dir: Path) -> Report:
    """The report of a sweep folder: every builder of :data:`SWEEP_SECTIONS`."""
    sweep = load_sweep(run_dir)
    attrs = sweep.summary.attrs
    context = SweepContext(
        summary=sweep.summary, study=study_facts(sweep.scenario), design=sweep.design, factors=sweep.factors,
        primary_method=sweep.primary_method, replicates_per_point=_replicates_text(sweep.summary),
        sensitivity=sweep_sensitivity_data(sweep), surface=sweep_surface_data(sweep),
    )
    sections = tuple(section for builder in SWEEP_SECTIONS if (section := builder(context)) is not None)
    return Report(
        title=f"psmsim sweep report: {attrs.get('sweep_name', '')}",
        subtitle=f"{attrs.get('sweep_question', '')} — scenario {sweep.scenario.name}, {sweep.design.replace('_', '-')} design",
        sections=sections,
        footer=f"Generated by psmsim {attrs.get('psmsim_version', '?')} from the sweep created "
               f"{attrs.get('source_created_at', attrs.get('created_at', '?'))} (scenario sha256 "
               f"{str(attrs.get('scenario_sha256', '?'))[:12]}…, root seed {attrs.get('root_seed', '?')}).",
    )
