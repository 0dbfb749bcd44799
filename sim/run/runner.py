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
from sim.run.store import BlockKey, RunFolder

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


def _run_loky(work: Callable, tasks: list[BlockTask], jobs: int) -> Iterator[tuple[BlockTask, xr.Dataset]]:
    from joblib import Parallel, delayed

    if jobs == 1:
        for task in tasks:
            yield _keyed(work, task)
        return
    parallel = Parallel(n_jobs=jobs, backend="loky", return_as="generator_unordered")
    yield from parallel(delayed(_keyed)(work, task) for task in tasks)


def _keyed(work: Callable, task: BlockTask) -> tuple[BlockTask, xr.Dataset]:
    try:
        return task, work(task)
    except Exception as exc:  # a bug in a whole block: report which block, keep the others
        raise BlockFailedError(
            f"block {task.key.block} of condition {task.key.condition} failed: "
            f"{type(exc).__name__}: {exc}. Finished blocks are kept; fix the cause and rerun "
            "the same command to resume"
        ) from exc


def _run_dask(
    work: Callable, tasks: list[BlockTask], jobs: int, scheduler: str | None
) -> Iterator[tuple[BlockTask, xr.Dataset]]:
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
        # lock to write netCDF in this process; blocks are written here, synchronously.
        import dask

        with client, dask.config.set(scheduler="synchronous"):
            futures = client.map(_keyed, [work] * len(tasks), tasks, pure=False)
            for future in as_completed(futures):
                yield future.result()
    finally:
        if cluster is not None:
            cluster.close()


def _progress(total: int, done: int, quiet: bool):
    from tqdm import tqdm

    disable = quiet or not sys.stderr.isatty()
    return tqdm(total=total, initial=done, unit="rep", desc="replicates", disable=disable,
                dynamic_ncols=True, smoothing=0.1)


def run_simulation(
    conditions: Sequence[Condition],
    calibrations: Sequence[Any],
    truths: Sequence[Mapping[str, Sequence[float]]],
    config: RunConfig,
    folder: RunFolder,
    *,
    attrs: Mapping[str, Any],
    work: Callable[[BlockTask], xr.Dataset] = simulate_block,
) -> xr.Dataset:
    """Compute every unfinished block, write each as it finishes, return all combined.

    Parameters
    ----------
    conditions, calibrations, truths : per grid point, the scenario, its calibration and its
        true estimands (see :mod:`sim.calibrate.targets`).
    folder : the run folder (already checked against the run identity).
    attrs : provenance attributes for the combined Dataset.
    work : the block function (replaced in tests).
    """
    keys = block_keys(len(conditions), config.replicates, config.block_size)
    pending = folder.pending(keys)
    tasks = [
        BlockTask(key, config.seed, conditions[key.condition].scenario,
                  calibrations[key.condition], tuple(config.methods))
        for key in pending
    ]
    total = len(conditions) * config.replicates
    done = total - sum(task.key.size for task in tasks)
    if config.backend == "dask":
        stream = _run_dask(work, tasks, config.jobs, config.scheduler)
    elif config.backend == "loky":
        stream = _run_loky(work, tasks, config.jobs)
    else:
        raise BackendError(f"--backend {config.backend!r}: not one of loky, dask")
    with _progress(total, done, config.quiet) as bar:
        for task, dataset in stream:
            folder.write_block(task.key, dataset)
            bar.update(task.key.size)
    blocks = [folder.read_block(key) for key in keys]
    grid = [dict(c.fields) for c in conditions]
    return combine_blocks(blocks, truths=truths, grid=grid, attrs=attrs)


def iter_conditions(scenarios: Iterable[Any], fields: Iterable[Mapping[str, Any]] | None = None) -> list[Condition]:
    """Number grid points 0..G−1 (a plain run: one scenario, no swept fields)."""
    scenarios = list(scenarios)
    fields = list(fields) if fields is not None else [{} for _ in scenarios]
    return [Condition(i, s, f) for i, (s, f) in enumerate(zip(scenarios, fields))]
