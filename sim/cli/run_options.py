"""The options `psmsim run`, `psmsim sweep` and `psmsim samplesize` share, declared once, and
their checks: each out-of-range value is one line naming the option and its bounds (the same
bounds as the scenario's ``[simulation]``, :mod:`sim.scenario.schema.analysis`), and
``--jobs`` is capped at the cores.

:func:`run_options` puts the replicate, seed, block, worker and output options on `run` and
`sweep` (only the help of --replicates, --block-size and --out differs: a sweep's defaults come
from the sweep file); :func:`parallel_options` the worker options alone, for `samplesize`.
"""

from __future__ import annotations

from typing import Callable

import click

from sim.errors import PsmsimError

Decorator = Callable[[Callable], Callable]


def _apply(options: list[Decorator]) -> Decorator:
    """One decorator applying ``options`` so that they show in --help in the listed order."""
    def decorate(command: Callable) -> Callable:
        for option in reversed(options):
            command = option(command)
        return command
    return decorate


def _jobs() -> Decorator:
    return click.option("--jobs", type=int, default=-1, show_default=True,
                        help="Workers; -1 = all cores (at most the cores).")


def _backend() -> Decorator:
    return click.option("--backend", type=click.Choice(["loky", "dask"]), default="loky", show_default=True)


def _scheduler() -> Decorator:
    return click.option("--scheduler", help="Dask scheduler address (default: a LocalCluster on 127.0.0.1).")


def parallel_options() -> Decorator:
    """--jobs, --backend, --scheduler (checked by :func:`check_parallel`)."""
    return _apply([_jobs(), _backend(), _scheduler()])


def run_options(*, per_point: bool, defaults: str, out_default: str) -> Decorator:
    """--replicates, --seed, --jobs, --block-size, --backend, --scheduler, --out, --force and
    --quiet, in that order. ``per_point``: replicates per grid point (a sweep); ``defaults``
    names where --replicates and --block-size default from (e.g. "the scenario's");
    ``out_default`` the default run folder."""
    return _apply([
        click.option("--replicates", type=int,
                     help=f"Replicates{' per grid point' if per_point else ''}, 1 to 1000000 [default: {defaults}]."),
        click.option("--seed", type=int, help="Root seed, 0 to 2**63 - 1 [default: the scenario's]."),
        _jobs(),
        click.option("--block-size", type=int, help=f"Replicates per block, 1 to 10000 [default: {defaults}]."),
        _backend(),
        _scheduler(),
        click.option("--out", "out", type=click.Path(file_okay=False), help=f"Run folder [default: {out_default}]."),
        click.option("--force", is_flag=True, help="Replace another run in --out (only its psmsim files are removed)."),
        click.option("--quiet", is_flag=True, help="No progress bar."),
    ])


def check_parallel(jobs: int, backend: str, scheduler: str | None) -> None:
    """--jobs a positive count or -1; --scheduler only with --backend dask."""
    if jobs == 0 or jobs < -1:
        raise PsmsimError(f"--jobs {jobs}: must be a positive number of workers or -1 for all cores")
    if scheduler and backend != "dask":
        raise PsmsimError("--scheduler: only used with --backend dask")


def run_settings(replicates: int | None, seed: int | None, block_size: int | None, jobs: int,
                 backend: str, scheduler: str | None) -> int:
    """Check `run`/`sweep` options up front (one line naming the option) and return the
    workers to use: --jobs capped at the machine's cores, with a warning when capped."""
    from sim.run.workers import worker_count
    from sim.scenario.schema.analysis import MAX_BLOCK_SIZE, MAX_REPLICATES, MAX_SEED

    bounds = (
        ("--replicates", replicates, 1, MAX_REPLICATES,
         "a million replicates take about three minutes and 3.5 GB on 2 cores; run several seeds into separate folders for more"),
        ("--seed", seed, 0, MAX_SEED,
         "2**63 - 1: the seed must fit a signed 64-bit integer, for numpy's SeedSequence and the netCDF attribute"),
        ("--block-size", block_size, 1, MAX_BLOCK_SIZE, "a block is held in memory whole"),
    )
    for option, value, low, high, why in bounds:
        if value is not None and not low <= value <= high:
            raise PsmsimError(f"{option} {value}: must be {low} to {high} ({why})")
    check_parallel(jobs, backend, scheduler)
    if scheduler:  # a remote cluster has its own workers
        return jobs
    workers, note = worker_count(jobs)
    if note:
        click.echo(f"warning: {note}", err=True)
    return workers
