"""Run a sweep on the runner: every condition's cohorts generated once per block, every
variant × method analysed on them, then the per-point Dataset (one dim per factor for a
factorial sweep, ``condition`` with the factors as coordinates otherwise).

Seeds. Block b of condition c draws from ``SeedSequence(root_seed, spawn_key=(k, b, stream))``
with ``k = 0`` under common random numbers (the default: every grid point gets the same block
seeds, so the cohorts of two points differ only by the swept fields and comparisons between
points are paired) and ``k = c`` otherwise. ``k = 0`` is exactly a plain run's key, so a grid
point equal to the base scenario reproduces ``psmsim run``'s cohorts. Stream 0 generates the
cohorts; stream ``1 + m`` drives the random parts of preset ``m`` (paper, recommended) and of
the scenario's named methods starting from it (:func:`sim.scenario.plans.method_stream`) in
every variant, so variants of a method share their random draws too. The methods are the
scenario's (:func:`sim.scenario.plans.scenario_methods`: the presets and ``[analysis.methods]``).

The summary adds paired differences of every method against its reference on the same cohorts
(:func:`sim.scenario.plans.paired_references`: a named method against its preset,
``recommended`` against ``paper``; :func:`analysis.performance.paired.paired_differences`:
bias and power differences with the MCSE of the per-replicate difference).

Only :func:`simulate_sweep_block` runs in workers; :func:`run_sweep` (one call per CLI command)
validates every grid point up front, opens the run folder under the same identity and resume
rules as ``psmsim run`` (:class:`sim.run.store.RunFolder`) and writes the results.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import xarray as xr

from analysis.plan.options import Plan
from sim.errors import ScenarioError
from sim.run.sweep_precision import McseTargetError
from sim.run.results import block_dataset
from sim.run.runner import BlockTask, RunConfig, block_rng, iter_conditions, run_identity, run_simulation
from sim.run.scale import RunScaleError
from sim.run.store import BlockKey, RunFolder
from sim.run.sweep_design import SweepDesign
from sim.run.sweep_file import SweepFile, base_document, build_design, load_sweep
from sim.run.sweep_points import SweepLayout, point_scenario, sweep_layout

__all__ = ["SweepCell", "SweepRun", "simulate_sweep_block", "prepare_sweep", "point_dataset",
           "crossed", "run_sweep", "point_summary"]

#: The most cohorts (conditions × replicates per condition) one sweep may draw.
MAX_SWEEP_REPLICATES = 10_000_000


@dataclass(frozen=True)
class SweepCell:
    """What a worker needs for one condition: its scenario (data fields of the grid point),
    the plans to analyse its cohorts with (label, plan) and each plan's analysis stream."""

    scenario: Any
    plans: tuple[tuple[str, Plan], ...]
    streams: tuple[int, ...]
    common_random_numbers: bool

    @property
    def source_text(self) -> str:
        return self.scenario.source_text


def _seed_key(key: BlockKey, common_random_numbers: bool) -> BlockKey:
    return BlockKey(0 if common_random_numbers else key.condition, key.block, key.start, key.size)


def simulate_sweep_block(task: BlockTask) -> xr.Dataset:
    """Generate one block of a condition's cohorts and analyse it with every plan of its cell."""
    from analysis.plan.analyse import analyse_cohorts
    from sim.generate.cohorts import generate_cohorts

    cell: SweepCell = task.scenario
    seed_key = _seed_key(task.key, cell.common_random_numbers)
    batch = generate_cohorts(cell.scenario, task.calibration, task.key.size,
                             rng=block_rng(task.root_seed, seed_key, 0))
    results = {label: analyse_cohorts(batch, plan, rng=block_rng(task.root_seed, seed_key, stream))
               for (label, plan), stream in zip(cell.plans, cell.streams)}
    return block_dataset(results, condition=task.key.condition, start=task.key.start)


@dataclass(frozen=True)
class SweepRun:
    """A sweep ready to run: the design, its layout, one cell per condition, which method
    labels of a condition belong to each point, and the methods (as the results name them)."""

    sweep: SweepFile
    sweep_text: str
    design: SweepDesign
    layout: SweepLayout
    cells: tuple[SweepCell, ...]
    point_labels: tuple[tuple[str, ...], ...]
    base_text: str
    methods: tuple[str, ...] = ("paper", "recommended")


def _label(method: str, variant: int, shared: bool) -> str:
    return f"{method}|v{variant}" if shared else method


def prepare_sweep(scenario_path: Path, sweep_path: Path) -> SweepRun:
    """Read the scenario and the sweep, build the design and validate every grid point.

    Raises
    ------
    ScenarioError
        An invalid scenario or sweep file, or a grid point whose scenario is invalid (named).
    """
    from sim.scenario import load_scenario
    from sim.scenario.plans import method_stream, scenario_methods, scenario_plan

    base = load_scenario(scenario_path)  # one clear error for a bad base file
    base_text = base.source_text
    sweep = load_sweep(sweep_path)
    sweep_text = Path(sweep_path).read_text(encoding="utf-8")
    document = base_document(sweep, tomllib.loads(base_text))
    design = build_design(sweep, document)
    layout = sweep_layout(design)
    shared = design.kind in ("factorial", "one_at_a_time") and len(layout.variants) > 1
    first_point = {}
    for point, (condition, variant) in zip(design.points, layout.cells):
        first_point.setdefault((condition, None), point.index)
        first_point.setdefault((condition, variant), point.index)
    crn = sweep.sweep.common_random_numbers
    cells = []
    methods: tuple[str, ...] = ()
    for condition, levels in enumerate(layout.conditions):
        scenario = point_scenario(document, design.factors, levels,
                                  index=first_point[(condition, None)], source_text=base_text)
        methods = methods or scenario_methods(scenario)
        variants = range(len(layout.variants)) if shared else layout.condition_variants[condition]
        plans, streams = [], []
        for variant in variants:
            variant_levels = layout.variants[variant]
            analysed = scenario if not variant_levels else point_scenario(
                document, design.factors, {**levels, **variant_levels},
                index=first_point.get((condition, variant), first_point[(condition, None)]),
                source_text=base_text)
            for method in methods:
                plans.append((_label(method, variant, shared), scenario_plan(analysed, method)))
                streams.append(method_stream(analysed, method))
        cells.append(SweepCell(scenario, tuple(plans), tuple(streams), crn))
    point_labels = tuple(tuple(_label(m, variant, shared) for m in methods)
                         for _, variant in layout.cells)
    return SweepRun(sweep, sweep_text, design, layout, tuple(cells), point_labels, base_text,
                    methods)


def _coordinate(values: list) -> np.ndarray:
    kinds = {type(v) for v in values}
    if kinds <= {int, float} and kinds != {int, float}:
        return np.asarray(values)
    if kinds <= {int, float}:
        return np.asarray(values, dtype=float)
    return np.asarray([str(v) for v in values])


def point_dataset(dataset: xr.Dataset, run: SweepRun) -> xr.Dataset:
    """The run's Dataset per design point: ``condition`` = point (0 … P−1), ``method`` = the
    scenario's methods, each factor's label as a coordinate on ``condition`` (and ``varied`` for a
    one-at-a-time design)."""
    parts = []
    for point, (condition, _), labels in zip(run.design.points, run.layout.cells, run.point_labels):
        part = dataset.isel(condition=[condition]).sel({"method": list(labels)})
        parts.append(part.assign_coords(method=list(run.methods), condition=[point.index]))
    long = xr.concat(parts, dim="condition", join="exact")
    long = long.drop_vars([name for name, coord in long.coords.items()
                           if name not in long.dims and set(coord.dims) == {"condition"}])
    by_name = {f.name: f for f in run.design.factors}
    for name, factor in by_name.items():
        values = [factor.label(point.levels[name]) for point in run.design.points]
        long = long.assign_coords({name: ("condition", _coordinate(values))})
    if run.design.kind == "one_at_a_time":
        long = long.assign_coords(varied=("condition", np.asarray([p.varied for p in run.design.points])))
    return long


def crossed(long: xr.Dataset, factor_names: list[str]) -> xr.Dataset:
    """A factorial sweep's per-point Dataset with one dim per factor (excluded combinations of
    a ``subset`` are NaN)."""
    if len(factor_names) == 1:
        crossed = long.swap_dims(condition=factor_names[0]).drop_vars("condition")
    else:
        crossed = long.set_index(condition=factor_names).unstack("condition")
    return crossed.transpose(*factor_names, ...)


def _design_attrs(run: SweepRun) -> dict[str, Any]:
    design = run.design
    factors = [{"name": f.name, "paths": list(f.paths), "labels": [f.label(l) for l in f.levels],
                "levels": [list(l) if isinstance(l, tuple) else l for l in f.levels],
                "bounds": list(f.bounds) if f.bounds else None, "scale": f.scale,
                "analysis_only": f.analysis_only} for f in design.factors]
    attrs = {
        "sweep_name": run.sweep.sweep.name,
        "sweep_question": run.sweep.sweep.question,
        "sweep_design": design.kind,
        "sweep_factors": json.dumps(factors),
        "sweep_text": run.sweep_text,
        "common_random_numbers": int(run.sweep.sweep.common_random_numbers),
    }
    if run.sweep.sweep.surface:
        attrs["sweep_surface"] = json.dumps(run.sweep.sweep.surface)
    if run.sweep.sweep.reported:
        attrs["sweep_reported"] = json.dumps(run.sweep.sweep.reported)
    if design.sample is not None:
        attrs["sweep_sample"] = json.dumps(np.asarray(design.sample).tolist())
    if design.num_levels is not None:
        attrs["sweep_num_levels"] = design.num_levels
    if design.base_samples is not None:
        attrs["sweep_base_samples"] = design.base_samples
    return attrs


@dataclass(frozen=True)
class SweepOutcome:
    """What a sweep wrote and its printed report."""

    report: str
    replicates_path: Path
    summary_paths: tuple[Path, Path]
    replicates: xr.Dataset
    summary: xr.Dataset
    long_replicates: xr.Dataset


def run_sweep(
    scenario_path: Path,
    sweep_path: Path,
    *,
    replicates: int | None = None,
    seed: int | None = None,
    block_size: int | None = None,
    jobs: int = -1,
    backend: str = "loky",
    scheduler: str | None = None,
    out: Path | None = None,
    force: bool = False,
    quiet: bool = False,
    mcse_targets: Sequence[str] = (),
    max_replicates: int | None = None,
) -> SweepOutcome:
    """Run a sweep into ``out`` (default ``results/<scenario>-<sweep>``); resumable, and
    locked and identified like ``psmsim run`` (the identity is the parsed grid points' scenarios
    and plans, not the files' text nor the replicate count). With ``mcse_targets``
    (``["power=0.005"]``, :mod:`sim.run.sweep_precision`) the replicates are the first pass,
    then blocks are added to the points that miss a target, up to ``max_replicates`` (default
    10 × the first pass) per point."""
    from sim.run.identity import PSMSIM_VERSION
    from sim.run.sweep_precision import check_first_pass, parse_targets
    from sim.scenario.feasibility import cohort_patients, run_block_size

    targets = parse_targets(mcse_targets)
    if max_replicates is not None and not targets:
        raise McseTargetError("--max-replicates: only used with --mcse-target")

    run = prepare_sweep(Path(scenario_path), Path(sweep_path))
    base = run.cells[0].scenario
    settings = base.simulation
    per_point = replicates or run.sweep.sweep.replicates or settings.replicates
    field = (f"--replicates {replicates}" if replicates else f"sweep.replicates = {per_point}"
             if run.sweep.sweep.replicates else f"simulation.replicates = {per_point}")
    n = len(run.cells)
    if n * per_point > MAX_SWEEP_REPLICATES:
        raise RunScaleError(
            f"{field}: {n} condition{'s' if n > 1 else ''} × {per_point} replicates = "
            f"{n * per_point:,} cohorts, more than the {MAX_SWEEP_REPLICATES:,} a sweep can finish "
            "(about an hour at 3,000 per second); use fewer replicates or grid points")
    config = RunConfig(
        replicates=per_point,
        seed=settings.seed if seed is None else seed,
        block_size=run_block_size(base, block_size or run.sweep.sweep.block_size,
                                  patients=max(cohort_patients(cell.scenario) for cell in run.cells)),
        methods=tuple(label for label, _ in run.cells[0].plans),
        jobs=jobs, backend=backend, scheduler=scheduler, quiet=quiet, size_field=field,
    )
    cap = max_replicates or 10 * config.replicates
    if targets:
        check_first_pass(config.replicates, config.block_size, cap)
    fields = [dict(levels) for levels in run.layout.conditions]
    conditions = iter_conditions(run.cells, [{} for _ in fields])
    identity = run_identity(conditions, config, PSMSIM_VERSION)
    identity.update(kind="sweep", plans=[[label for label, _ in cell.plans] for cell in run.cells])
    if out is None:
        out = Path("results") / f"{base.name}-{run.sweep.sweep.name}"
    with RunFolder(out, identity, force=force) as folder:  # locked until the results are written
        return _sweep_in(folder, run, conditions, config, targets, cap)


def point_summary(long: xr.Dataset, counts: Sequence[int], references) -> xr.Dataset:
    """The summary per grid point on its own replicates (``counts[point]``: a point with fewer
    replicates than others is padded in ``long``), with the paired differences."""
    from analysis.performance.paired import paired_differences
    from analysis.performance.summary import summarise_run

    if len(set(counts)) == 1:
        summary = summarise_run(long)
    else:
        parts = [summarise_run(long.isel(condition=[i], replicate=slice(0, count)))
                 for i, count in enumerate(counts)]
        summary = xr.concat(parts, dim="condition", join="exact", combine_attrs="override")
    summary["n_replicates"] = ("condition", np.asarray(counts, dtype=np.int64))
    paired = paired_differences(long, reference=references)  # padded replicates are NaN: unused
    return xr.merge([summary, paired.transpose(*summary.power_logrank.dims)], compat="no_conflicts",
                    join="exact", combine_attrs="override")


def _sweep_in(folder: RunFolder, run: SweepRun, conditions, config: RunConfig, targets, cap) -> SweepOutcome:
    from analysis.performance.summary import summary_to_frame
    from sim.calibrate.cache import calibrate_cached, true_estimands_cached
    from sim.run.identity import PSMSIM_VERSION
    from sim.run.sweep_precision import format_precision, run_rounds
    from sim.run.sweep_report import format_sweep
    from sim.scenario.plans import paired_references

    base = run.cells[0].scenario
    calibrations = [calibrate_cached(cell.scenario) for cell in run.cells]
    truths = [true_estimands_cached(cell.scenario, cal).as_variables()
              for cell, cal in zip(run.cells, calibrations)]
    attrs = {
        "psmsim_version": PSMSIM_VERSION, "numpy_version": np.__version__,
        "xarray_version": xr.__version__, "root_seed": config.seed, "block_size": config.block_size,
        "n_replicates": config.replicates, "scenario_name": base.name,
        "scenario_text": run.base_text,
        "scenario_sha256": hashlib.sha256(run.base_text.encode()).hexdigest(), "alpha": 0.05,
        **_design_attrs(run),
    }
    if targets:
        attrs["mcse_targets"] = " ".join(t.text for t in targets)
        attrs["max_replicates"] = cap
    references = paired_references(base)
    references = {m: references[m] for m in run.methods}
    point_conditions = [condition for condition, _ in run.layout.cells]

    def run_once(counts):
        dataset = run_simulation(conditions, calibrations, truths, config, folder, attrs=attrs,
                                 work=simulate_sweep_block, replicates=counts)
        long = point_dataset(dataset, run)
        long.attrs = dataset.attrs
        per_point = [counts[c] for c in point_conditions]
        long["n_replicates"] = ("condition", np.asarray(per_point, dtype=np.int64))
        return long, point_summary(long, per_point, references)

    long, summary, counts = run_rounds(run_once, [config.replicates] * len(conditions), point_conditions,
                                       targets, block_size=config.block_size, max_replicates=cap)
    csv_text = summary_to_frame(summary).to_csv(index=False)
    names = [f.name for f in run.design.factors]
    if run.design.kind == "factorial":
        stored, stored_summary = crossed(long, names), crossed(summary, names)
        stored.attrs, stored_summary.attrs = long.attrs, summary.attrs
    else:
        stored, stored_summary = long, summary
    replicates_path = folder.write_replicates(stored)
    paths = folder.write_summary(stored_summary, csv_text)
    per_point = [counts[c] for c in point_conditions]
    shown = (str(per_point[0]) if len(set(per_point)) == 1 else f"{min(per_point)}–{max(per_point)}")
    report = format_sweep(summary, run.design, replicates_per_point=shown)
    if targets:
        by_name = {f.name: f for f in run.design.factors}
        labels = [", ".join(f"{name} = {by_name[name].label(level)}" for name, level in point.levels.items())
                  for point in run.design.points]
        report += "\n\n" + format_precision(summary, targets, per_point, labels, max_replicates=cap)
    return SweepOutcome(report, replicates_path, paths, stored, stored_summary, long)
