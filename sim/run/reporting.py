"""Figures and the report of a run folder, and the figures of one analysed cohort: one call per
CLI command (``psmsim plot``, ``psmsim report``, ``psmsim analyse --plot``).

The statistics and the drawing are in :mod:`analysis.plots`; this module finds what they need in
a run folder: the replicates (and summary), the scenario text and root seed its attributes hold,
and — for a Kaplan–Meier figure of one replicate — that replicate's cohort, regenerated from the
run's seed exactly as the runner drew it (block ``r // block_size``, stream 0; each method
analysed with its stream, :func:`sim.scenario.plans.method_stream`) and checked against the
stored results before it is drawn.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import xarray as xr

from analysis.cohort import CohortBatch
from analysis.plan.analyse import PlanResult, analyse_cohorts
from analysis.plan.survival_curves import kaplan_meier_curves
from analysis.plots.report import Report, render_html, render_markdown
from analysis.plots.report_sections import RUN_SECTIONS, ReportContext, StudyFacts
from analysis.plots.style import figure_bytes
from sim.errors import PsmsimError, RunFolderError
from sim.run.report_facts import study_facts
from sim.run.folder_lock import FolderLock
from sim.run.store import SUMMARY_NC, BlockKey, open_replicates
from sim.run.atomic_files import atomic_write_bytes, read_dataset
from sim.scenario import Scenario, parse_scenario

__all__ = ["PLOT_KINDS", "PlotOptionError", "RunFigure", "cohort_figures", "plot_run", "regenerate_replicate",
           "write_report"]

#: Figures ``psmsim plot`` draws from a plain run folder.
PLOT_KINDS = ("hr-distribution", "pairs", "love", "zip", "km")
FIGURE_FOLDER = "figures"
REPORT_HTML, REPORT_MD, REPORT_FIGURES = "report.html", "report.md", "report_figures"


class PlotOptionError(PsmsimError):
    """An option of ``psmsim plot`` does not fit the run (unknown method, replicate out of range)."""


@dataclass(frozen=True)
class RunFigure:
    """A rendered figure and where it goes by default (``RUN_DIR/figures/<name>.<format>``)."""

    data: bytes
    default_path: Path


@dataclass(frozen=True)
class RunData:
    """What a run folder holds for plots: replicates, summary, scenario, methods."""

    replicates: xr.Dataset
    summary: xr.Dataset
    scenario: Scenario
    primary_method: str


def load_run(run_dir: Path) -> RunData:
    """The replicates, summary (``summary.nc``, else computed) and scenario of a run folder."""
    replicates = open_replicates(run_dir)
    if "condition" not in replicates.dims:
        from sim.run.sweep_reporting import SWEEP_PLOT_KINDS

        raise PlotOptionError(f"{run_dir}: a factorial sweep (dims {', '.join(map(str, replicates.dims))}): the "
                              f"figures of one grid point need a plain run; a sweep's are --kind "
                              f"{', '.join(SWEEP_PLOT_KINDS)}")
    text = replicates.attrs.get("scenario_text")
    if not text:
        raise RunFolderError(f"{run_dir}: replicates.nc holds no scenario_text attribute; rerun the scenario")
    scenario = parse_scenario(text, source=f"{run_dir}/replicates.nc (scenario_text)")
    summary_path = Path(run_dir) / SUMMARY_NC
    if summary_path.exists():
        summary = read_dataset(summary_path)
    else:
        from analysis.performance.summary import summarise_run

        summary = summarise_run(replicates)
    methods = replicates.method.values.tolist()
    primary = scenario.analysis.plan if scenario.analysis.plan in methods else methods[0]
    return RunData(replicates, summary, scenario, primary)


def _check_method(run: RunData, method: str | None) -> str:
    methods = run.replicates.method.values.tolist()
    name = run.primary_method if method is None else method
    if name not in methods:
        raise PlotOptionError(f"--method {name}: not a method of this run; choose one of {', '.join(methods)}")
    return name


def _check_condition(run: RunData, condition: int) -> None:
    labels = run.replicates.condition.values.tolist()
    if condition not in labels:
        raise PlotOptionError(f"--condition {condition}: the run has conditions {labels[0]}..{labels[-1]}")


def regenerate_replicate(replicates: xr.Dataset, scenario: Scenario, *, condition: int = 0,
                         replicate: int = 0) -> tuple[CohortBatch, Mapping[str, PlanResult], int]:
    """The block of cohorts holding ``replicate`` as the run drew it, analysed by every method
    with details, and the replicate's index in the block.

    Raises
    ------
    PlotOptionError
        For a replicate out of range or a sweep's grid point (not supported yet).
    RunFolderError
        If the regenerated analyses differ from the stored ones (another psmsim version).
    """
    from sim.calibrate.cache import calibrate_cached
    from sim.generate.cohorts import generate_cohorts
    from sim.run.runner import block_rng
    from sim.scenario.plans import method_stream, scenario_plan

    attrs = replicates.attrs
    grid = json.loads(attrs.get("grid", "[]") or "[]")
    if grid and condition < len(grid) and grid[condition]:
        raise PlotOptionError(f"--condition {condition}: a Kaplan–Meier figure of a sweep's grid point is not "
                              "supported yet; run that point's scenario on its own")
    n_replicates = int(attrs.get("n_replicates", replicates.sizes["replicate"]))
    if not 0 <= replicate < n_replicates:
        raise PlotOptionError(f"--replicate {replicate}: the run has replicates 0..{n_replicates - 1}")
    block_size = int(attrs["block_size"])
    block = replicate // block_size
    start = block * block_size
    key = BlockKey(condition, block, start, min(block_size, n_replicates - start))
    root_seed = int(attrs["root_seed"])
    batch = generate_cohorts(scenario, calibrate_cached(scenario), key.size, rng=block_rng(root_seed, key, 0))
    methods = replicates.method.values.tolist()
    results = {method: analyse_cohorts(batch, scenario_plan(scenario, method),
                                       rng=block_rng(root_seed, key, method_stream(scenario, method)), details=True)
               for method in methods}
    index = replicate - start
    stored = replicates.sel(condition=condition, replicate=replicate)
    for method, result in results.items():
        same = np.array_equal(stored.log_hr.sel({"method": method}).values, result.log_hr[index], equal_nan=True)
        if not same or int(stored.n_pairs.sel({"method": method})) != int(result.n_pairs[index]):
            raise RunFolderError(
                f"replicate {replicate}: regenerating it gives other results than the run stored (method "
                f"{method}); the run was made by psmsim {attrs.get('psmsim_version', '?')}: redraw it with that "
                "version, or rerun the scenario")
    return batch, results, index


def _km_figure(run: RunData, *, method: str, condition: int, replicate: int):
    from analysis.plots.survival import kaplan_meier_figure

    batch, results, index = regenerate_replicate(run.replicates, run.scenario, condition=condition,
                                                 replicate=replicate)
    curves = kaplan_meier_curves(batch, results[method], replicate=index)
    labels = {"treated": run.scenario.treated_arm.label, "control": run.scenario.control_arm.label}
    return kaplan_meier_figure(curves, arm_labels=labels,
                               title=f"{run.scenario.name}: replicate {replicate}, {method} plan")


def plot_run(run_dir: Path, kind: str, *, method: str | None = None, endpoint: str = "pfs", cohort: str = "matched",
             condition: int = 0, replicate: int = 0, observed_pairs: int | None = None,
             measure: str | None = None, factor: str | None = None, fmt: str = "png") -> RunFigure:
    """One figure of a run or sweep folder, rendered as PNG or SVG bytes.

    Parameters
    ----------
    kind : one of :data:`PLOT_KINDS` (a run, or one grid point of a sweep with a condition
        dim), ``power`` for a sample-size folder (its ``samplesize.nc``), or of
        :data:`sim.run.sweep_reporting.SWEEP_PLOT_KINDS` (a sweep folder; with
        ``measure`` and, for ``power``, ``factor``: :func:`~sim.run.sweep_reporting.sweep_figure`).
    method : analysis method (default the scenario's plan).
    endpoint, cohort : the cell of ``hr-distribution`` and ``zip``.
    condition : grid point.
    replicate : the replicate of ``km``.
    observed_pairs : the published number of pairs marked on ``pairs``.
    fmt : ``png`` or ``svg``.

    Refused (:class:`RunFolderError`, one line with the writer's PID) while a run, sweep or
    sample-size search is writing ``run_dir``; the folder is locked shared while it is read
    (:meth:`sim.run.store.FolderLock.shared`).
    """
    with FolderLock.shared(run_dir, command="psmsim plot"):
        return _plot_run(run_dir, kind, method=method, endpoint=endpoint, cohort=cohort, condition=condition,
                         replicate=replicate, observed_pairs=observed_pairs, measure=measure, factor=factor,
                         fmt=fmt)


def _plot_run(run_dir: Path, kind: str, *, method: str | None, endpoint: str, cohort: str, condition: int,
              replicate: int, observed_pairs: int | None, measure: str | None, factor: str | None,
              fmt: str) -> RunFigure:
    from sim.run.samplesize_reporting import is_samplesize_folder, samplesize_figure
    from sim.run.sweep_reporting import SWEEP_PLOT_KINDS, sweep_figure

    if is_samplesize_folder(run_dir):
        if kind != "power":
            raise PlotOptionError(f"--kind {kind}: {run_dir} is a sample-size search; its figure is --kind power")
        figure, stem = samplesize_figure(run_dir)
        return RunFigure(figure_bytes(figure, fmt=fmt), Path(run_dir) / FIGURE_FOLDER / f"{stem}.{fmt}")
    if kind in SWEEP_PLOT_KINDS:
        figure, stem = sweep_figure(run_dir, kind, measure=measure, method=method, endpoint=endpoint, cohort=cohort,
                                    factor=factor)
        return RunFigure(figure_bytes(figure, fmt=fmt), Path(run_dir) / FIGURE_FOLDER / f"{stem}.{fmt}")
    if kind not in PLOT_KINDS:
        raise PlotOptionError(f"--kind {kind}: choose one of {', '.join(PLOT_KINDS + SWEEP_PLOT_KINDS)}")
    run = load_run(run_dir)
    _check_condition(run, condition)
    name = _check_method(run, method)
    data = run.replicates
    labels = {c.name: c.label for c in run.scenario.covariates}
    if kind == "hr-distribution":
        from analysis.plots.estimates import plot_hr_distribution

        drawn = plot_hr_distribution(data, method=name, endpoint=endpoint, condition=condition)
        stem = f"{kind}-{name}-{endpoint}"
    elif kind == "pairs":
        from analysis.plots.estimates import plot_matched_pairs

        drawn, stem = plot_matched_pairs(data, condition=condition, observed=observed_pairs), kind
    elif kind == "love":
        from analysis.plots.balance import plot_love

        if "smd" not in data:
            raise RunFolderError(f"{run_dir}: the run stores no per-covariate SMDs (made by an older psmsim); "
                                 "rerun it with --force to get them")
        if not data["smd"].size:
            raise PlotOptionError(f"--kind love: {run_dir}'s scenario has no covariates, so there is no "
                                  "balance to plot; choose another --kind")
        from sim.scenario.plans import scenario_plan

        estimator = scenario_plan(run.scenario, name).estimator
        try:
            drawn = plot_love(data, method=name, condition=condition, labels=labels, estimator=estimator)
        except ValueError as exc:
            raise PlotOptionError(f"--kind love --method {name}: {exc}") from None
        stem = f"{kind}-{name}"
    elif kind == "zip":
        from analysis.plots.coverage import plot_zip

        drawn = plot_zip(data, method=name, cohort=cohort, endpoint=endpoint, condition=condition)
        stem = f"{kind}-{name}-{cohort}-{endpoint}"
    else:
        drawn, stem = _km_figure(run, method=name, condition=condition, replicate=replicate), f"km-{name}-r{replicate}"
    figure = getattr(drawn, "figure", drawn)
    if data.sizes["condition"] > 1:
        stem += f"-c{condition}"
    return RunFigure(figure_bytes(figure, fmt=fmt), Path(run_dir) / FIGURE_FOLDER / f"{stem}.{fmt}")


def build_report(run: RunData, *, observed_pairs: int | None = None, km_replicate: int = 0) -> Report:
    """The report of a plain run (its first grid point): every builder of :data:`RUN_SECTIONS`."""
    from sim.scenario.plans import scenario_plan

    condition = int(run.replicates.condition.values[0])
    replicates = run.replicates.sel(condition=condition)
    summary = run.summary.sel(condition=condition)
    methods = run.replicates.method.values.tolist()
    batch, results, index = regenerate_replicate(run.replicates, run.scenario, condition=condition,
                                                 replicate=km_replicate)
    curves = kaplan_meier_curves(batch, results[run.primary_method], replicate=index)
    facts: StudyFacts = study_facts(run.scenario)
    context = ReportContext(
        replicates=replicates, summary=summary, study=facts,
        plans={m: scenario_plan(run.scenario, m) for m in methods}, primary_method=run.primary_method,
        km_curves=curves, km_replicate=km_replicate, observed_pairs=observed_pairs,
    )
    sections = tuple(section for builder in RUN_SECTIONS if (section := builder(context)) is not None)
    attrs = run.replicates.attrs
    return Report(
        title=f"psmsim report: {run.scenario.name}",
        subtitle=f"{run.scenario.title} — {int(run.replicates.sizes['replicate'])} replicates, "
                 f"methods {', '.join(methods)}",
        sections=sections,
        footer=f"Generated by psmsim {attrs.get('psmsim_version', '?')} from the run created "
               f"{attrs.get('created_at', '?')} (scenario sha256 {str(attrs.get('scenario_sha256', '?'))[:12]}…, "
               f"root seed {attrs.get('root_seed', '?')}). Structure: ADEMP (Morris, White & Crowther 2019, "
               "Stat Med 38:2074-2102).",
    )


def write_report(run_dir: Path, *, observed_pairs: int | None = None) -> tuple[Path, Path]:
    """Write ``report.html`` (self-contained) and ``report.md`` (figures in ``report_figures/``)
    into a run or sweep folder; derived files, rewritten on every call, with the modes the
    umask gives. Returns their paths. ``observed_pairs`` (a plain run) defaults to the
    scenario's ``[checks] pairs``. Refused while a run is writing ``run_dir``, which is locked
    shared while the report is read and written (:meth:`sim.run.store.FolderLock.shared`)."""
    run_dir = Path(run_dir)
    with FolderLock.shared(run_dir, command="psmsim report"):
        return _write_report(run_dir, observed_pairs=observed_pairs)


def _write_report(run_dir: Path, *, observed_pairs: int | None) -> tuple[Path, Path]:
    from sim.run.samplesize_reporting import build_samplesize_report, is_samplesize_folder
    from sim.run.sweep_reporting import build_sweep_report, is_sweep_folder

    if is_samplesize_folder(run_dir):
        report = build_samplesize_report(run_dir)
    elif is_sweep_folder(run_dir):
        report = build_sweep_report(run_dir)
    else:
        run = load_run(run_dir)
        if run.replicates.sizes["condition"] > 1:
            raise PlotOptionError(f"{run_dir}: {run.replicates.sizes['condition']} grid points and no sweep summary "
                                  "(summary.nc with sweep_* attributes); a report covers a plain run or a "
                                  "`psmsim sweep` folder")
        if observed_pairs is None:
            observed_pairs = run.scenario.checks.pairs  # the scenario's [checks] pairs, if given
        report = build_report(run, observed_pairs=observed_pairs)
    figures_dir = run_dir / REPORT_FIGURES
    figures_dir.mkdir(exist_ok=True)
    for figure in report.figures:
        atomic_write_bytes(figures_dir / f"{figure.name}.png", figure.png)
    current = {f"{figure.name}.png" for figure in report.figures}
    for stale in figures_dir.glob("*.png"):  # figures of an earlier report (another psmsim version)
        if stale.name not in current:
            stale.unlink(missing_ok=True)
    markdown = render_markdown(report, figure_path=lambda f: f"{REPORT_FIGURES}/{f.name}.png")
    atomic_write_bytes(run_dir / REPORT_MD, markdown.encode("utf-8"))
    atomic_write_bytes(run_dir / REPORT_HTML, render_html(report).encode("utf-8"))
    return run_dir / REPORT_HTML, run_dir / REPORT_MD


def cohort_figures(batch: CohortBatch, result: PlanResult, *, labels: Mapping[str, str] | None = None,
                   arm_labels: tuple[str, str] = ("Treated", "Control"), fmt: str = "png") -> dict[str, bytes]:
    """The Kaplan–Meier figure (PFS/OS before/after matching) and, when the estimator balances a
    sample (matching, weighting), the love plot of one analysed cohort
    (``analyse_cohorts(..., details=True)`` on a batch of one), as ``{file name: bytes}``."""
    from analysis.plots.balance import ADJUSTED_LABELS, plot_love
    from analysis.plots.survival import kaplan_meier_figure

    curves = kaplan_meier_curves(batch, result, replicate=0)
    km = kaplan_meier_figure(curves, arm_labels=dict(zip(("treated", "control"), arm_labels)),
                             title=f"Kaplan–Meier curves, {result.plan.name} plan")
    balance = xr.Dataset(
        {"smd": (("method", "replicate", "cohort", "covariate"), result.smd[None, :1])},
        coords={"method": [result.plan.name], "replicate": [0], "cohort": ["full", "matched"],
                "covariate": list(result.balance_covariates)},
    )
    figures = {f"km.{fmt}": figure_bytes(km, fmt=fmt)}
    # Outcome-model and PS-strata estimators balance no sample; without covariates nothing is balanced.
    if result.plan.estimator in ADJUSTED_LABELS and result.balance_covariates:
        love = plot_love(balance, method=result.plan.name, labels=dict(labels or {}), estimator=result.plan.estimator)
        figures[f"love.{fmt}"] = figure_bytes(love.figure, fmt=fmt)
    return figures
