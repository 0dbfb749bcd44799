"""Run a simulation: grid points × replicates in blocks, on joblib (loky) or a Dask cluster.

A run is G grid points (conditions) × R replicates, cut into blocks of B replicates. Block b of
condition c draws its randomness from ``SeedSequence(root_seed, spawn_key=(c, b, stream))``:
stream 0 generates the cohorts, stream 1 + m drives the random parts of analysis preset m
(e.g. SPSS-style random matching; a named method uses its preset's stream,
:func:`sim.scenario.plans.method_stream`). A block is therefore a pure function of (scenario, root
seed, block size, c, b), and results are bit-identical whatever the number of workers, the
backend, the order blocks finish in, or an interruption and resume (O'Neill 2015 PCG streams;
NumPy "Parallel random number generation" guide: spawn keys, never ``seed + i``).

Blocks are enumerated lazily and handed to the workers a few at a time, so no step holds a
list of a million tasks. A task is a group of up to ten pending blocks of one grid point
(:mod:`sim.run.block_groups`: for liu2021 about a tenth less CPU per replicate): each block
still draws from its own streams and is written as its own file, byte for byte what it is
computed alone, so grouping, like the number of workers, changes no result. The first pending
block is computed here, alone, then the next task, timed: a large run prints its estimated
time (at the second's speed: the first pays every first call), disk (and, where the blocks are
combined in memory, memory) before the rest starts, and one that cannot fit in memory is refused (:mod:`sim.run.scale`).
The pools themselves (loky, Dask; ``--jobs`` capped at the cores; workers that die with their
parent; shut down before returning) are :mod:`sim.run.workers`; :mod:`sim.run.store` owns the
disk.
"""

from __future__ import annotations

import hashlib
import pickle
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Literal, Mapping, Sequence


from sim.errors import PsmsimError
from sim.run import identity
from sim.run.block_groups import group_size, grouped, simulate_group_parts
from sim.run.results import BlockParts, block_parts, combine_blocks
from sim.run.scale import RunScale
from sim.run.seeds import block_rng
from sim.run.store import BlockKey, BlockWriter, RunFolder
from sim.run.workers import BackendError, keep_freed_memory, one_blas_thread, run_dask, run_loky, worker_count

if TYPE_CHECKING:  # imported where a Dataset is made: a worker writing blocks never needs xarray
    import xarray as xr

Backend = Literal["loky", "dask"]

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
    size_field: str = "replicates"


@dataclass(frozen=True)
class BlockTask:
    """Everything a worker needs for one block (picklable).

    Pickled, the scenario and calibration travel as the bytes :class:`_Shared` pickled once per
    (scenario, calibration) in this process, and a worker unpickles them once
    (:func:`_shared_objects`): pickling the ~64 kB pair for every task, and unpickling it in the
    worker, cost ~1 ms of parent time per block of 100 replicates."""

    key: BlockKey
    root_seed: int
    scenario: Any
    calibration: Any
    methods: tuple[str, ...]

    def __reduce__(self):
        shared = _Shared.of(self.scenario, self.calibration)
        if shared is None:  # not picklable by pickle itself: the dataclass's own reduction
            return (BlockTask, (self.key, self.root_seed, self.scenario, self.calibration, self.methods))
        return (_task_from_shared, (self.key, self.root_seed, shared, self.methods))


class _Shared:
    """A (scenario, calibration) pair pickled once: its bytes and their digest. Pickling it
    copies the bytes; unpickling it gives the pair, unpickled once per process and digest."""

    _made: "OrderedDict[tuple[int, int], tuple[Any, Any, _Shared]]" = OrderedDict()
    LIMIT = 64

    def __init__(self, blob: bytes):
        self.blob = blob
        self.digest = hashlib.sha256(blob).digest()

    @classmethod
    def of(cls, scenario: Any, calibration: Any) -> "_Shared | None":
        """The pickled pair, made once while both objects live (the last :attr:`LIMIT` pairs)."""
        key = (id(scenario), id(calibration))
        made = cls._made.get(key)
        if made is not None and made[0] is scenario and made[1] is calibration:
            cls._made.move_to_end(key)
            return made[2]
        try:
            shared = cls(pickle.dumps((scenario, calibration), protocol=pickle.HIGHEST_PROTOCOL))
        except (pickle.PicklingError, TypeError, AttributeError):
            return None
        cls._made[key] = (scenario, calibration, shared)
        while len(cls._made) > cls.LIMIT:
            cls._made.popitem(last=False)
        return shared

    def __reduce__(self):
        return (_shared_objects, (self.digest, self.blob))


#: A worker's unpickled (scenario, calibration) pairs, by digest of their bytes.
_UNPICKLED: "OrderedDict[bytes, tuple[Any, Any]]" = OrderedDict()


def _shared_objects(digest: bytes, blob: bytes) -> tuple[Any, Any]:
    pair = _UNPICKLED.get(digest)
    if pair is None:
        pair = _UNPICKLED[digest] = pickle.loads(blob)
        while len(_UNPICKLED) > _Shared.LIMIT:
            _UNPICKLED.popitem(last=False)
    return pair


def _task_from_shared(key: BlockKey, root_seed: int, pair: tuple[Any, Any], methods: tuple[str, ...]) -> BlockTask:
    return BlockTask(key, root_seed, pair[0], pair[1], methods)


def block_keys(n_conditions: int, replicates: int, block_size: int) -> Iterator[BlockKey]:
    """All blocks of a run, condition-major, lazily (a run never needs all its keys at once to
    compute them); the last block of a condition may be short."""
    for condition in range(n_conditions):
        for block, start in enumerate(range(0, replicates, block_size)):
            yield BlockKey(condition, block, start, min(block_size, replicates - start))


def simulate_block_parts(task: BlockTask) -> BlockParts:
    """Generate and analyse one block, as the arrays the block file stores; the default work of
    a worker (no xarray Dataset is built: :class:`sim.run.results.BlockParts`)."""
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
    return block_parts(results, condition=task.key.condition, start=task.key.start)


def simulate_block(task: BlockTask) -> xr.Dataset:
    """Generate and analyse one block: its Dataset (:func:`simulate_block_parts`)."""
    return simulate_block_parts(task).to_dataset()


def run_identity(conditions: Sequence[Condition], config: RunConfig, version: str) -> dict:
    """What names a run (:func:`sim.run.identity.run_identity`): the parsed scenarios, seed,
    block size, methods and grid, not the replicate count."""
    return identity.run_identity(conditions, seed=config.seed, block_size=config.block_size,
                                 methods=config.methods, version=version)


def _compute(work: Callable, task: BlockTask) -> "xr.Dataset | BlockParts":
    try:
        return work(task)
    except Exception as exc:  # a bug in a whole block: report which block, keep the others
        raise BlockFailedError(
            f"block {task.key.block} of condition {task.key.condition} failed: "
            f"{type(exc).__name__}: {exc}. Finished blocks are kept; fix the cause and rerun "
            "the same command to resume"
        ) from exc


def _computed(work: Callable, write: BlockWriter, task: BlockTask) -> tuple[BlockKey, ...]:
    """Compute one block and write it into the run folder, in the worker: only its key goes
    back to the parent, so neither it nor a Dask client ever holds a block's results."""
    write(task.key, _compute(work, task))  # an OSError (full disk, ...) propagates as itself
    return (task.key,)


def _computed_group(work: Callable, group_work: Callable, write: BlockWriter,
                    tasks: tuple[BlockTask, ...]) -> tuple[BlockKey, ...]:
    """Compute a group of blocks together (:mod:`sim.run.block_groups`) and write each; if the
    group raises, its blocks are computed one at a time, so the error names the block that
    fails and the blocks before it are kept."""
    if len(tasks) == 1:
        return _computed(work, write, tasks[0])
    try:
        parts = group_work(tasks)
    except Exception:
        return tuple(key for task in tasks for key in _computed(work, write, task))
    for task, block in zip(tasks, parts):
        write(task.key, block)
    return tuple(task.key for task in tasks)


def _warm_up(scenario, calibration) -> None:
    """Load every numba kernel a block runs (the generator's and the analysis engine's,
    :data:`analysis.compiled.KERNEL_MODULES`) before the first block is timed: numba's loading
    from its cache, about 0.2–0.6 s per module and process, is paid once per process, not per
    block, and must not enter the run's time estimate. The generator's only for a real
    scenario (tests run blocks of stand-ins)."""
    from analysis import compiled
    from sim.generate.cohorts import warm_up as warm_up_generator
    from sim.scenario.model import Scenario

    if isinstance(scenario, Scenario):
        warm_up_generator(scenario, calibration)
    compiled.warm_up()


def run_keys(counts: Sequence[int], block_size: int) -> Iterator[BlockKey]:
    """The blocks of conditions with ``counts`` replicates each, condition-major, lazily."""
    for condition, count in enumerate(counts):
        for key in block_keys(1, count, block_size):
            yield BlockKey(condition, key.block, key.start, key.size)


def _progress(total: int, quiet: bool):
    from tqdm import tqdm

    disable = quiet or not sys.stderr.isatty()
    return tqdm(total=total, unit="rep", desc="replicates", disable=disable,
                dynamic_ncols=True, smoothing=0.1)


def _pending(folder: RunFolder, keys: Iterable[BlockKey], bar, finished: Callable[[BlockKey], None]
             ) -> Iterator[BlockKey]:
    """The keys of unfinished blocks, lazily; finished ones advance the progress bar and go to
    ``finished``."""
    for key in keys:
        if folder.is_finished(key):
            bar.update(key.size)
            finished(key)
        else:
            yield key


def compute_blocks(
    conditions: Sequence[Condition],
    calibrations: Sequence[Any],
    config: RunConfig,
    folder: RunFolder,
    *,
    work: Callable[[BlockTask], "xr.Dataset | BlockParts"] = simulate_block_parts,
    in_memory: bool = False,
    replicates: Sequence[int] | None = None,
    on_finished: Callable[[BlockKey], None] | None = None,
) -> list[BlockKey]:
    """Compute every unfinished block of the run and write each as it finishes.

    The first pending block is computed in this process and timed (:class:`RunScale`): a
    large run prints its estimate on stderr before the rest starts; with ``in_memory`` (the
    caller combines every block in memory) a run too big for this machine's memory is
    refused, naming ``config.size_field``.

    Parameters
    ----------
    conditions, calibrations : per grid point, the scenario and its calibration.
    config : replicates, seed, block size, methods, workers, backend.
    folder : the run folder (already checked against the run identity).
    work : the block function: task -> the block's Dataset or :class:`BlockParts` (replaced in
        tests, sweeps and sample-size searches).
    replicates : per condition, its replicate count (default ``config.replicates`` each;
        ``psmsim sweep --mcse-target``).
    on_finished : called in this thread with the key of every block once it is on disk (a
        block found finished, in order, or one just written, in the order they finish); it
        should return at once (a run's read-back hands the key to its own thread).

    Returns
    -------
    list of BlockKey
        Every block of the run, condition-major (all finished now), for the caller to read
        one at a time.
    """
    if config.backend not in ("loky", "dask"):
        raise BackendError(f"--backend {config.backend!r}: not one of loky, dask")
    jobs, _ = worker_count(config.jobs)
    keep_freed_memory()  # this process computes the first block (all of them on one job) and reads them back
    counts = [config.replicates] * len(conditions) if replicates is None else list(replicates)
    total = sum(counts)
    to_do = max(0, total - folder.count_checksums())
    write = folder.block_writer()

    def task(key: BlockKey) -> BlockTask:
        return BlockTask(key, config.seed, conditions[key.condition].scenario,
                         calibrations[key.condition], tuple(config.methods))

    finished = on_finished or (lambda key: None)
    with _progress(total, config.quiet) as bar, one_blas_thread():  # the blocks computed here: as a worker does
        pending = _pending(folder, run_keys(counts, config.block_size), bar, finished)
        first = next(pending, None)
        scale = None
        if first is not None:  # computed here, alone, and timed before the rest starts
            _warm_up(conditions[first.condition].scenario, calibrations[first.condition])
            started = time.perf_counter()
            dataset = _compute(work, task(first))
            seconds = time.perf_counter() - started
            written = write(first, dataset)
            bar.update(first.size)
            finished(first)
            scale = RunScale(first.size, seconds, written, int(dataset.nbytes), max(to_do, first.size),
                             total, jobs, in_memory=in_memory)
            scale.check(config.size_field)
        tasks = (task(key) for key in pending)
        group_work = _GROUP_WORK.get(work)
        size = 1 if group_work is None else group_size(
            config.block_size, _largest_cohort(conditions), -(-max(0, to_do - config.block_size) // config.block_size),
            jobs)
        if size > 1:
            tasks = grouped(tasks, size)
            keyed = partial(_computed_group, work, group_work, write)
        else:
            keyed = partial(_computed, work, write)
        if scale is not None:
            # The first block pays every first call (fresh memory, caches, lazy imports: 3-5x a
            # later block's time); the time per replicate comes from the next task, computed
            # here too, as a worker computes its tasks.
            second = next(tasks, None)
            if second is not None:
                started = time.perf_counter()
                keys = keyed(second)
                scale = replace(scale, rate_size=sum(key.size for key in keys),
                                rate_seconds=time.perf_counter() - started)
                for done in keys:
                    bar.update(done.size)
                    finished(done)
            if scale.is_large:
                bar.write(f"note: {scale.describe()}", file=sys.stderr)
        if config.backend == "dask":
            stream = run_dask(keyed, tasks, jobs, config.scheduler)
        elif jobs == 1:
            stream = (keyed(t) for t in tasks)
        else:
            stream = run_loky(keyed, tasks, jobs)
        for keys in stream:
            for done in keys:
                bar.update(done.size)
                finished(done)
    return list(run_keys(counts, config.block_size))


def _largest_cohort(conditions: Sequence[Condition]) -> int:
    """Patients per cohort of the largest grid point (a stand-in scenario of the tests: 1)."""
    from sim.scenario.feasibility import cohort_patients
    from sim.scenario.model import Scenario

    return max((cohort_patients(c.scenario) for c in conditions if isinstance(c.scenario, Scenario)), default=1)


#: Block functions with a function computing several of their blocks in one task.
_GROUP_WORK: dict[Callable, Callable] = {simulate_block_parts: simulate_group_parts}


def run_simulation(
    conditions: Sequence[Condition],
    calibrations: Sequence[Any],
    truths: Sequence[Mapping[str, Sequence[float]]],
    config: RunConfig,
    folder: RunFolder,
    *,
    attrs: Mapping[str, Any],
    work: Callable[[BlockTask], "xr.Dataset | BlockParts"] = simulate_block_parts,
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
    keys = compute_blocks(conditions, calibrations, config, folder, work=work, in_memory=True,
                          replicates=replicates)
    blocks = [folder.read_block(key) for key in keys]
    grid = [dict(c.fields) for c in conditions]
    return combine_blocks(blocks, truths=truths, grid=grid, attrs=attrs)


def iter_conditions(scenarios: Iterable[Any], fields: Iterable[Mapping[str, Any]] | None = None) -> list[Condition]:
    """Number grid points 0..G−1 (a plain run: one scenario, no swept fields)."""
    scenarios = list(scenarios)
    fields = list(fields) if fields is not None else [{} for _ in scenarios]
    return [Condition(i, s, f) for i, (s, f) in enumerate(zip(scenarios, fields))]
