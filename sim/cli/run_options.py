"""The options `psmsim run` and `psmsim sweep` share, checked up front: each out-of-range value
is one line naming the option and its bounds (the same bounds as the scenario's
``[simulation]``, :mod:`sim.scenario.schema.analysis`), and ``--jobs`` is capped at the cores.
"""

from __future__ import annotations

import click

from sim.errors import PsmsimError


def run_settings(replicates: int | None, seed: int | None, block_size: int | None, jobs: int,
                 backend: str, scheduler: str | None) -> int:
    """Check `run`/`sweep` options up front (one line naming the option) and return the
    workers to use: --jobs capped at the machine's cores, with a warning when capped."""
    from sim.run.workers import worker_count
    from sim.scenario.schema.analysis import MAX_BLOCK_SIZE, MAX_REPLICATES, MAX_SEED

    bounds = (
        ("--replicates", replicates, 1, MAX_REPLICATES,
         "a million replicates take hours and gigabytes; run several seeds into separate folders for more"),
        ("--seed", seed, 0, MAX_SEED,
         "2**63 - 1: the seed must fit a signed 64-bit integer, for numpy's SeedSequence and the netCDF attribute"),
        ("--block-size", block_size, 1, MAX_BLOCK_SIZE, "a block is held in memory whole"),
    )
    for option, value, low, high, why in bounds:
        if value is not None and not low <= value <= high:
            raise PsmsimError(f"{option} {value}: must be {low} to {high} ({why})")
    if jobs == 0 or jobs < -1:
        raise PsmsimError(f"--jobs {jobs}: must be a positive number of workers or -1 for all cores")
    if scheduler and backend != "dask":
        raise PsmsimError("--scheduler: only used with --backend dask")
    if scheduler:  # a remote cluster has its own workers
        return jobs
    workers, note = worker_count(jobs)
    if note:
        click.echo(f"warning: {note}", err=True)
    return workers
