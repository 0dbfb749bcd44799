"""Several blocks of a run computed in one worker task: their cohorts analysed as one batch.

A block of a small cohort is cheap (liu2021: 100 replicates of 100 patients, about 25 ms for
both plans), and the analysis engine's per-call cost, about 1 ms of Python between compiled
kernels per plan whatever the number of replicates, is a tenth of it. So the runner hands a
worker a *group* of up to :func:`group_size` pending blocks of one grid point: each block's
cohorts are generated from its own stream as always, the cohorts of the group are analysed in
one call per plan, each block's draws still coming from its own generator
(:mod:`analysis.plan.segments`), and each block is written as its own file. The blocks, their
files and every number in them are exactly those of blocks computed one at a time (tested to
the byte): grouping is how work is handed out, like the number of workers, and is no part of a
run's identity. A plan with random parts beyond the matching, or blocks whose categorical PS
covariates show different levels, are analysed block by block inside the group.

The group is capped at :data:`GROUP_CELLS` (replicate, patient) values (its cohorts and
results stay a small part of a worker's memory), and at a share of the pending blocks so that
every worker still gets :data:`GROUPS_PER_WORKER` tasks or more (a short run is not left to one
worker).
"""

from __future__ import annotations

from itertools import groupby
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from analysis.cohort import segment_rows
from sim.run.results import BlockParts, block_parts
from sim.run.seeds import block_rng

#: Largest group: (replicate, patient) values of its cohorts (liu2021: 1,000 replicates).
GROUP_CELLS = 100_000
#: Fewest tasks per worker a grouping leaves (so the workers finish at about the same time).
GROUPS_PER_WORKER = 4


def group_size(block_size: int, patients: int, pending_blocks: int, jobs: int) -> int:
    """Blocks per task: as many as fit :data:`GROUP_CELLS` and leave every one of ``jobs``
    workers :data:`GROUPS_PER_WORKER` tasks of the ``pending_blocks``; at least 1.

    >>> group_size(100, 100, 10_000, 2)
    10
    >>> group_size(100, 100, 19, 2)
    2
    >>> group_size(100, 10_000, 10_000, 2)
    1
    """
    by_memory = GROUP_CELLS // max(1, int(block_size) * int(patients))
    by_balance = int(pending_blocks) // (GROUPS_PER_WORKER * max(1, int(jobs)))
    return max(1, min(by_memory, by_balance))


def grouped(tasks: Iterable[Any], size: int) -> Iterator[tuple[Any, ...]]:
    """Consecutive tasks (objects with a ``key.condition``) of one grid point, ``size`` at a
    time (fewer where the grid point changes or the tasks end), lazily."""
    for _, same in groupby(tasks, key=lambda task: task.key.condition):
        group: list = []
        for task in same:
            group.append(task)
            if len(group) == size:
                yield tuple(group)
                group = []
        if group:
            yield tuple(group)


class _Rows:
    """Rows ``rows`` (a slice along the replicate axis) of a plan result, as
    :func:`sim.run.results.block_parts` reads it: every array attribute sliced, the rest as is."""

    def __init__(self, result: Any, rows: slice):
        self._result, self._rows = result, rows

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._result, name)
        return value[self._rows] if isinstance(value, np.ndarray) and value.ndim else value


def simulate_group_parts(tasks: Sequence[Any]) -> list[BlockParts]:
    """Generate every block of ``tasks`` (:class:`sim.run.runner.BlockTask` of one grid
    point) from its own stream, analyse them together (module docstring) and return each
    block's parts, in order: those :func:`sim.run.runner.simulate_block_parts` gives each."""
    from analysis.plan.analyse import analyse_cohorts
    from analysis.plan.segments import SegmentStreams, concatenate_batches, same_design_levels, segments_allowed
    from sim.generate.cohorts import generate_cohorts
    from sim.scenario.plans import method_stream, scenario_plan

    first = tasks[0]
    if any(task.key.condition != first.key.condition for task in tasks):
        raise ValueError("tasks: a group holds blocks of one grid point")
    batches = [generate_cohorts(first.scenario, first.calibration, task.key.size,
                                rng=block_rng(task.root_seed, task.key, 0)) for task in tasks]
    sizes = tuple(task.key.size for task in tasks)
    rows = segment_rows(sizes)
    joined = None
    per_block: list[dict] = [{} for _ in tasks]
    for method in first.methods:
        plan = scenario_plan(first.scenario, method)
        stream = method_stream(first.scenario, method)
        rngs = [block_rng(task.root_seed, task.key, stream) for task in tasks]
        if len(tasks) > 1 and segments_allowed(plan) and same_design_levels(batches, plan):
            joined = concatenate_batches(batches) if joined is None else joined
            result = analyse_cohorts(joined, plan, rng=SegmentStreams(tuple(rngs), sizes))
            for results, part in zip(per_block, rows):
                results[method] = _Rows(result, part)
        else:
            for results, batch, rng in zip(per_block, batches, rngs):
                results[method] = analyse_cohorts(batch, plan, rng=rng)
    return [block_parts(results, condition=task.key.condition, start=task.key.start)
            for results, task in zip(per_block, tasks)]
