"""One call per CLI command: a whole run of a scenario, or the summary of a finished run.

``run_scenario`` calibrates (cached), computes the true estimands (cached), opens or resumes
the run folder, runs every block (every method of the scenario on the same cohorts) and reads
the finished blocks back once, a group of consecutive blocks at a time, as soon as a group's
blocks are all finished (:mod:`sim.run.readback`, beside the computation): each group is
written into ``replicates.nc`` and enters the summary's and the paired differences' statistics
(:class:`SummaryAccumulator`), and its four interval variables are kept in a temporary file
(:class:`sim.run.readback.GroupSpill`); after the last block a second, lighter pass reads
them back for the bias-eliminated coverage; then ``summary.nc`` and
``summary.csv``. Memory holds one group at a time, whatever the number of replicates.
``summarise_folder`` recomputes the summary of a run folder, reading ``replicates.nc`` in the
same groups.
"""

from __future__ import annotations

import hashlib
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy
import xarray as xr

from functools import cached_property, reduce
from typing import Callable, Iterable

from analysis.performance.accumulate import INTERVAL_VARIABLES, CentreCoverageState, SummaryState, check_replicates
from analysis.performance.paired import PairedState, paired_from_state
from analysis.performance.summary import summarise_state, summary_to_frame
from analysis.performance.text_report import format_summary
from sim.calibrate.cache import calibrate_cached, true_estimands_cached
from sim.errors import RunFolderError, ScenarioError
from sim.run.replicates_file import ReplicatesWriter, replicates_skeleton
from sim.run.identity import PSMSIM_VERSION
from sim.run.readback import GroupSpill, ReadBack
from sim.run.runner import RunConfig, run_keys, compute_blocks, iter_conditions, run_identity
from sim.run.folder_lock import FolderLock
from sim.run.store import GROUP_REPLICATES, REPLICATES_FILE, RunFolder, group_keys, open_replicates, write_summary
from sim.run.atomic_files import read_dataset
from sim.scenario.feasibility import run_block_size
from sim.scenario.model import Scenario
from sim.scenario.parser import parse_scenario
from sim.scenario.plans import paired_references, scenario_methods



#: What a run keeps besides its summary (``--keep``).
KEEP = ("replicates", "summary")


@dataclass(frozen=True)
class RunOutcome:
    """What a run or a summary wrote, and the printed report."""

    report: str
    replicates_path: Path | None
    summary_paths: tuple[Path, Path]
    summary: xr.Dataset | None = None

    @cached_property
    def replicates(self) -> xr.Dataset | None:
        """The run's ``replicates.nc``, read into memory on first access (None for a
        summary-only run); the run itself never holds it."""
        return None if self.replicates_path is None else read_dataset(self.replicates_path)


def run_scenario(
    scenario: Scenario,
    *,
    replicates: int | None = None,
    seed: int | None = None,
    block_size: int | None = None,
    methods: tuple[str, ...] | None = None,
    jobs: int = -1,
    backend: str = "loky",
    scheduler: str | None = None,
    out: Path,
    force: bool = False,
    quiet: bool = False,
    keep: str = "replicates",
) -> RunOutcome:
    """Run ``scenario`` (settings default to its ``[simulation]`` section) into ``out``;
    ``methods`` default to every method of the scenario (:func:`scenario_methods`).

    ``keep="replicates"`` writes ``replicates.nc`` beside the summary; ``keep="summary"``
    writes only the summary and removes the blocks once it is written (for huge runs; the
    run then cannot be resumed or re-summarised). The parent holds one block at a time either
    way; the returned outcome reads ``replicates.nc`` only if its ``replicates`` is used.
    """
    if keep not in KEEP:
        raise ValueError(f"keep: {keep!r} is not one of {', '.join(KEEP)}")
    settings = scenario.simulation
    config = RunConfig(
        replicates=replicates or settings.replicates,
        seed=settings.seed if seed is None else seed,
        block_size=run_block_size(scenario, block_size),
        methods=tuple(scenario_methods(scenario) if methods is None else methods),
        jobs=jobs,
        backend=backend,
        scheduler=scheduler,
        quiet=quiet,
        size_field=(f"--replicates {replicates}" if replicates
                    else f"simulation.replicates = {settings.replicates}"),
    )
    conditions = iter_conditions([scenario])
    identity = run_identity(conditions, config, PSMSIM_VERSION)
    with RunFolder(out, identity, force=force) as folder:  # locked until the results are written
        return _run_in(folder, conditions, config, scenario, keep)


def _run_in(folder: RunFolder, conditions, config: RunConfig, scenario: Scenario, keep: str) -> RunOutcome:
    calibrations = [calibrate_cached(c.scenario) for c in conditions]
    truths = [true_estimands_cached(c.scenario, cal).as_variables() for c, cal in zip(conditions, calibrations)]
    attrs = {
        "psmsim_version": PSMSIM_VERSION,
        "numpy_version": np.__version__,
        "scipy_version": scipy.__version__,
        "xarray_version": xr.__version__,
        "root_seed": config.seed,
        "block_size": config.block_size,
        "n_replicates": config.replicates,
        "scenario_name": scenario.name,
        "scenario_text": scenario.source_text,
        "scenario_sha256": hashlib.sha256(scenario.source_text.encode()).hexdigest(),
        "alpha": 0.05,
    }
    grid = [dict(c.fields) for c in conditions]
    # One group of consecutive blocks in memory at a time (store.GROUP_REPLICATES, so that
    # per-Dataset costs are paid per group, not per block), each read once, as soon as its
    # blocks are finished (sim.run.readback), for the summary's sufficient statistics and
    # replicates.nc (filled group by group, in chunks of one block); the second pass of the
    # summary reads the interval variables alone, after the last block.
    groups = group_keys(run_keys([config.replicates] * len(conditions), config.block_size))
    replicates_path = folder.path / REPLICATES_FILE if keep == "replicates" else None
    writer = (ReplicatesWriter(replicates_path, replicates=config.replicates, truths=truths, grid=grid,
                               attrs=attrs, chunk_replicates=config.block_size)
              if replicates_path is not None else nullcontext())
    # replicates.nc takes its name once the summary is computed too; the spill keeps the
    # interval variables of each group for the second pass (removed once the summary is made)
    with writer, GroupSpill(folder.path, INTERVAL_VARIABLES) as spill:
        def each(group: xr.Dataset) -> None:
            if replicates_path is not None:
                writer.write(group)
            spill.add(group)

        accumulator = SummaryAccumulator(paired_references(scenario), each=each,
                                         skeleton=lambda block: replicates_skeleton(
                                             block, replicates=config.replicates, truths=truths, grid=grid,
                                             attrs=attrs))
        read_back = ReadBack(folder, groups, accumulator.add)
        try:
            compute_blocks(conditions, calibrations, config, folder, on_finished=read_back.finished)
        except BaseException:
            read_back.abort()
            raise
        read_back.close()
        summary = accumulator.summary(spill.groups)
    paths = folder.write_summary(summary, summary_to_frame(summary).to_csv(index=False))
    if keep == "summary":
        folder.discard_blocks()
    return RunOutcome(format_summary(summary, observed_pairs=scenario.checks.pairs), replicates_path, paths,
                      summary=summary)


def summarise_folder(run_dir: Path) -> RunOutcome:
    """Summarise the finished run in ``run_dir`` (rewrites its summary files), reading
    ``replicates.nc`` one block of replicates at a time."""
    with open_replicates(run_dir, lazy=True) as dataset:
        if "n_replicates" in dataset.data_vars and dataset.n_replicates.dims == ("condition",):
            return _summarise_points(run_dir, dataset.load())
        try:
            check_replicates(dataset)
        except ValueError as exc:
            raise RunFolderError(f"{Path(run_dir) / REPLICATES_FILE}: {exc}") from None
        pairs = _reported_pairs(dataset)
        block_size = int(dataset.attrs.get("block_size", 0) or 0)
        # replicates read at a time: the run's block groups (store.group_keys), so the summary
        # merges the same states in the same order as the run's own
        step = block_size * max(1, GROUP_REPLICATES // block_size) if block_size else 1000
        n_replicates = dataset.sizes["replicate"]

        def blocks(names=None):
            source = dataset if names is None else dataset[list(names)]
            for start in range(0, n_replicates, step):
                yield source.isel(replicate=slice(start, start + step)).load()

        with FolderLock.acquire(run_dir, option="RUN_DIR", create=False):  # not while a run writes
            summary = summarise_with_differences(blocks, _stored_references(dataset), attrs=dict(dataset.attrs),
                                                 intervals=lambda: blocks(INTERVAL_VARIABLES))
            paths = write_summary(run_dir, summary, summary_to_frame(summary).to_csv(index=False))
    return RunOutcome(format_summary(summary, observed_pairs=pairs), None, paths, summary=summary)


def _summarise_points(run_dir: Path, dataset: xr.Dataset) -> RunOutcome:
    """A sweep's grid points (``psmsim sweep --mcse-target`` may give them different replicate
    counts, ``n_replicates``), each summarised on its own replicates."""
    from sim.run.sweep_run import point_summary

    references = _stored_references(dataset)
    summary = point_summary(dataset, dataset.n_replicates.values.tolist(),
                            {m: references.get(m, m) for m in map(str, dataset.method.values)})
    with FolderLock.acquire(run_dir, option="RUN_DIR", create=False):  # not while a run writes
        paths = write_summary(run_dir, summary, summary_to_frame(summary).to_csv(index=False))
    return RunOutcome(format_summary(summary), None, paths, summary=summary)


class SummaryAccumulator:
    """The run summary with the paired differences between its methods, accumulated block by
    block: :func:`analysis.performance.summary.summarise_blocks` fused with the paired
    differences (see :func:`summarise_with_differences`).

    Parameters
    ----------
    references : method -> the method it is compared with (a reference the run lacks compares
        the method with itself).
    truths : the truths, when the blocks do not hold them (a run's skeleton).
    attrs : the run's attributes for the summary (default: the truths' attributes).
    each : called with every block added, before its statistics (e.g.
        :meth:`sim.run.replicates_file.ReplicatesWriter.write`).
    skeleton : instead of ``truths``, made from the first block added (a run's read-back
        does not hold a block before its first group is finished).
    """

    def __init__(self, references: dict[str, str], *, truths: xr.Dataset | None = None, attrs: dict | None = None,
                 each: Callable[[xr.Dataset], None] | None = None,
                 skeleton: Callable[[xr.Dataset], xr.Dataset] | None = None):
        self._references, self._truths, self._attrs = references, truths, attrs
        self._each, self._skeleton = each, skeleton
        self._state = self._paired = None

    def add(self, block: xr.Dataset) -> None:
        """First pass: ``block`` into ``each``, the summary state and the paired state (merged
        after the blocks added before it, in that order)."""
        if self._each is not None:
            self._each(block)
        if self._state is None:
            methods = [str(m) for m in block.method.values]
            self._references = {m: self._references.get(m, m) if self._references.get(m, m) in methods else m
                                for m in methods}
            if self._skeleton is not None:
                self._truths = self._skeleton(block)
                self._attrs = dict(self._truths.attrs) if self._attrs is None else self._attrs
        block_state = SummaryState.from_block(block, truths=self._truths)
        block_paired = PairedState.of(block, reference=self._references)
        self._state = block_state if self._state is None else self._state.merge(block_state)
        self._paired = block_paired if self._paired is None else self._paired.merge(block_paired)

    def summary(self, intervals: Callable[[], Iterable[xr.Dataset]]) -> xr.Dataset:
        """The summary, after the second pass over ``intervals()``: the blocks added, in any
        grouping, with at least :data:`~analysis.performance.accumulate.INTERVAL_VARIABLES`."""
        if self._state is None:
            raise ValueError("blocks: none given; a summary needs at least one block")
        centres = self._state.centres()
        coverage = reduce(CentreCoverageState.merge,
                          (CentreCoverageState.from_block(block, centres) for block in intervals()))
        summary = summarise_state(self._state, coverage, attrs=self._attrs)
        paired = paired_from_state(self._paired.to_dataset()).transpose(*summary.power_logrank.dims)
        return xr.merge([summary, paired], compat="no_conflicts", join="exact", combine_attrs="override")


def summarise_with_differences(
    blocks: Callable[[], Iterable[xr.Dataset]],
    references: dict[str, str],
    *,
    truths: xr.Dataset | None = None,
    attrs: dict | None = None,
    each: Callable[[xr.Dataset], None] | None = None,
    intervals: Callable[[], Iterable[xr.Dataset]] | None = None,
) -> xr.Dataset:
    """The run summary of the replicates in ``blocks`` with the paired differences between its
    methods (each method against ``references[method]``; a reference the run lacks compares the
    method with itself), one block in memory at a time.

    :func:`analysis.performance.summary.summarise_blocks` fused with the paired differences
    (:class:`SummaryAccumulator`): ``blocks()`` is called once, and each block it yields enters
    the summary state, the paired state and ``each`` (e.g.
    :meth:`sim.run.replicates_file.ReplicatesWriter.write`); the second pass (the CIs
    containing each cell's mean estimate) iterates ``intervals()``, the same replicates in the
    same blocks with at least :data:`~analysis.performance.accumulate.INTERVAL_VARIABLES`
    (default: ``blocks()`` again). The states merge block after block in the order given, as
    ``summarise_blocks`` merges them, so the summary is the same to the last bit.
    """
    accumulator = SummaryAccumulator(references, truths=truths, attrs=attrs, each=each)
    for block in blocks():
        accumulator.add(block)
    return accumulator.summary(intervals or blocks)


def _reported_pairs(dataset: xr.Dataset) -> int | None:
    """The pairs the study reported (``[checks] pairs`` of the run's scenario), if any."""
    text = dataset.attrs.get("scenario_text", "")
    try:
        return parse_scenario(text).checks.pairs if text else None
    except ScenarioError:  # a run of an older scenario format: the summary still prints
        return None


def _stored_references(dataset: xr.Dataset) -> dict[str, str]:
    """The paired references of a stored run, from the scenario text it carries."""
    text = dataset.attrs.get("scenario_text", "")
    try:
        return paired_references(parse_scenario(text)) if text else {"recommended": "paper"}
    except ScenarioError:  # a run of an older scenario format: the presets' rule only
        return {"recommended": "paper"}
