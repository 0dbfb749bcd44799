"""Run a simulation: grid points × replicates in blocks, on joblib (loky) or a Dask cluster.

A run is G grid points (conditions) × R replicates, cut into blocks of B replicates. Block b of
condition c draws its randomness from ``SeedSequence(root_seed, spawn_key=(c, b, stream))``:
stream 0 generates the cohorts, stream 1 + m drives the random parts of analysis preset m
(e.g. SPSS-style random matching; a named method uses its preset's stream,
:func:`sim.scenario.plans.method_stream`). A block is therefore a pure function of (scenario, root
seed, block size, c, b), and results are bit-identical whatever the number of workers, the
backend, the order blocks finish in, or an interruption and resume (O'Neill 2015 PCG streams;
NumPy "Parallel random number generation" guide: spawn keys, never ``seed + i``).

Only this module knows about workers and progress; :mod:`sim.run.store` owns the disk.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Literal, Mapping, Sequence

import numpy as np
import xarray as xr

from sim.errors import PsmsimError
from sim.run import identity
from sim.run.results import block_dataset, combine_blocks
from sim.run.store import BlockKey, BlockWriter, RunFolder

Backend = Literal["loky", "dask"]


class BackendError(PsmsimError):
    """The parallel backend cannot be used (e.g. dask not installed, scheduler unreachable)."""


class BlockFailedError(PsmsimError):
    """A whole block raised: a bug, not a degenerate replicate (those are data)."""


@dataclass(frozen=True)
class Condition:
    """One grid point: its index, the scenario with the swept fields replaced, and those
    fields (dotted path → value; empty for a plain run)."""

    index: int
    scenario: Any
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunConfig:
    """How to run: replicates per condition, root seed, block size (part of the run's
    identity), analysis methods, workers and backend."""

    replicates: int
    seed: int
    block_size: int
    methods: tuple[str, ...] = ("paper", "recommended")
    jobs: int = -1
    backend: Backend = "loky"
    scheduler: str | None = None
    quiet: bool = False


@dataclass(frozen=True)
class BlockTask:
    """Everything a worker needs for one block (small and picklable)."""

    key: BlockKey
    root_seed: int
    scenario: Any
    calibration: Any
    methods: tuple[str, ...]


def block_keys(n_conditions: int, replicates: int, block_size: int) -> list[BlockKey]:
    """All blocks of a run, condition-major; the last block of a condition may be short."""
    keys = []
    for condition in range(n_conditions):
        for block, start in enumerate(range(0, replicates, block_size)):
            keys.append(BlockKey(condition, block, start, min(block_size, replicates - start)))
    return keys


def block_rng(root_seed: int, key: BlockKey, stream: int) -> np.random.Generator:
    """The generator of ``stream`` in block ``key`` (see the module docstring)."""
    sequence = np.random.SeedSequence(root_seed, spawn_key=(key.condition, key.block, stream))
    return np.random.default_rng(sequence)


def simulate_block(task: BlockTask) -> xr.Dataset:
    """Generate and analyse one block; the default work of a worker."""
    from analysis.plan.analyse import analyse_cohorts
    from sim.generate.cohorts import generate_cohorts
    from sim.scenario.plans import method_stream, scenario_plan

    batch = generate_cohorts(
        task.scenario, task.calibration, task.key.size, rng=block_rng(task.root_seed, task.key, 0)
    )
    results = {}
    for method in task.methods:
        plan = scenario_plan(task.scenario, method)
        rng = block_rng(task.root_seed, task.key, method_stream(task.scenario, method))
        results[method] = analyse_cohorts(batch, plan, rng=rng)
    return block_dataset(results, condition=task.key.condition, start=task.key.start)


def run_identity(conditions: Sequence[Condition], config: RunConfig, version: str) -> dict:
    """What names a run (:func:`sim.run.identity.run_identity`): the parsed scenarios, seed,
    block size, methods and grid, not the replicate count."""
    return identity.run_identity(conditions, seed=config.seed, block_size=config.block_size,
                                 methods=config.methods, version=version)


def _run_loky(work: Callable, tasks: list[BlockTask], jobs: int, write: BlockWriter) -> Iterator[BlockTask]:
    from joblib import Parallel, delayed

    if jobs == 1:
        for task in tasks:
            yield _computed(work, task, write)
        return
    parallel = Parallel(n_jobs=jobs, backend="loky", return_as="generator_unordered")
    yield from parallel(delayed(_computed)(work, task, write) for task in tasks)


def _computed(work: Callable, task: BlockTask, write: BlockWriter) -> BlockTask:
    """Compute one block and write it into the run folder, in the worker: only the task goes
    back to the parent, so neither it nor a Dask client ever holds a block's results."""
    try:
        dataset = work(task)
    except Exception as exc:  # a bug in a whole block: report which block, keep the others
        raise BlockFailedError(
            f"block {task.key.block} of condition {task.key.condition} failed: "
            f"{type(exc).__name__}: {exc}. Finished blocks are kept; fix the cause and rerun "
            "the same command to resume"
        ) from exc
    write(task.key, dataset)  # an OSError (full disk, ...) propagates as itself
    return task


def _run_dask(
    work: Callable, tasks: list[BlockTask], jobs: int, scheduler: str | None, write: BlockWriter
) -> Iterator[BlockTask]:
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise BackendError(
            "--backend dask: dask.distributed is not installed; install it with "
            "`pip install 'psmsim[dask]'` or use --backend loky"
        ) from None
    cluster = None
    try:
        if scheduler:
            try:
                client = Client(scheduler, timeout="10s")
            except (OSError, TimeoutError) as exc:
                raise BackendError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
        else:
            workers = jobs if jobs > 0 else None
            cluster = LocalCluster(
                host="127.0.0.1", n_workers=workers, threads_per_worker=1,
                processes=True, dashboard_address=None,
            )
            client = Client(cluster)
        # While a distributed client is the default scheduler, xarray would take a cluster-wide
        # lock to write netCDF in this process (the combined files): synchronously instead.
        import dask

        with client, dask.config.set(scheduler="synchronous"):
            # Workers write their blocks into the run folder (on a cluster: a folder every
            # worker and this client see) and return only the task; each future is released
            # as soon as it is done.
            futures = client.map(_computed, [work] * len(tasks), tasks, [write] * len(tasks), pure=False)
            for future in as_completed(futures):
                task = future.result()
                future.release()
                yield task
    finally:
        if cluster is not None:
            cluster.close()


def _progress(total: int, done: int, quiet: bool):
    from tqdm import tqdm

    disable = quiet or not sys.stderr.isatty()
    return tqdm(total=total, initial=done, unit="rep", desc="replicates", disable=disable,
                dynamic_ncols=True, smoothing=0.1)


def compute_blocks(
    conditions: Sequence[Condition],
    calibrations: Sequence[Any],
    config: RunConfig,
    folder: RunFolder,
    *,
    work: Callable[[BlockTask], xr.Dataset] = simulate_block,
    replicates: Sequence[int] | None = None,
) -> list[BlockKey]:
    """Compute every unfinished block of the run and write each as it finishes.

    Parameters
    ----------
    conditions, calibrations : per grid point, the scenario and its calibration.
    config : replicates, seed, block size, methods, workers, backend.
    folder : the run folder (already checked against the run identity).
    work : the block function (replaced in tests).
    replicates : per condition, its replicate count (default ``config.replicates`` each;
        ``psmsim sweep --mcse-target``).

    Returns
    -------
    list of BlockKey
        Every block of the run, condition-major (all finished now), for the caller to read
        one at a time.
    """
    counts = [config.replicates] * len(conditions) if replicates is None else list(replicates)
    keys = [BlockKey(condition, key.block, key.start, key.size)
            for condition, count in enumerate(counts) for key in block_keys(1, count, config.block_size)]
    pending = folder.pending(keys)
    tasks = [
        BlockTask(key, config.seed, conditions[key.condition].scenario,
                  calibrations[key.condition], tuple(config.methods))
        for key in pending
    ]
    total = sum(counts)
    done = total - sum(task.key.size for task in tasks)
    write = folder.block_writer()
    if config.backend == "dask":
        stream = _run_dask(work, tasks, config.jobs, config.scheduler, write)
    elif config.backend == "loky":
        stream = _run_loky(work, tasks, config.jobs, write)
    else:
        raise BackendError(f"--backend {config.backend!r}: not one of loky, dask")
    with _progress(total, done, config.quiet) as bar:
        for task in stream:
            bar.update(task.key.size)
    return keys


def run_simulation(
    conditions: Sequence[Condition],
    calibrations: Sequence[Any],
    truths: Sequence[Mapping[str, Sequence[float]]],
    config: RunConfig,
    folder: RunFolder,
    *,
    attrs: Mapping[str, Any],
    work: Callable[[BlockTask], xr.Dataset] = simulate_block,
    replicates: Sequence[int] | None = None,
) -> xr.Dataset:
    """:func:`compute_blocks`, then every block combined in memory (for sweeps, whose
    reshaping needs the whole Dataset; a plain run streams its blocks instead, see
    :func:`sim.run.orchestrate.run_scenario`).

    truths : per grid point, its true estimands (see :mod:`sim.calibrate.estimands`).
    attrs : provenance attributes for the combined Dataset.
    replicates : per condition, its replicate count (:func:`compute_blocks`); a condition with
        fewer replicates than others is padded (:func:`sim.run.results.combine_blocks`).
    """
    keys = compute_blocks(conditions, calibrations, config, folder, work=work, replicates=replicates)
    blocks = [folder.read_block(key) for key in keys]
    grid = [dict(c.fields) for c in conditions]
    return combine_blocks(blocks, truths=truths, grid=grid, attrs=attrs)


def iter_conditions(scenarios: Iterable[Any], fields: Iterable[Mapping[str, Any]] | None = None) -> list[Condition]:
    """Number grid points 0..G−1 (a plain run: one scenario, no swept fields)."""
    scenarios = list(scenarios)
    fields = list(fields) if fields is not None else [{} for _ in scenarios]
    return [Condition(i, s, f) for i, (s, f) in enumerate(zip(scenarios, fields))]
