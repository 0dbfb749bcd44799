"""Worker pools of a run: how many workers, loky processes that die with their parent, a Dask
cluster, and nothing left running when the run ends.

- :func:`worker_count` caps ``--jobs`` at the machine's cores (more processes than cores only
  add memory and contention: ``--jobs 1000`` on 2 cores had not finished 10 replicates in two
  minutes), with a note saying so.
- :func:`run_loky` submits blocks to a fresh loky executor a few at a time (the tasks are an
  iterator, never a list: a million blocks are never all in memory) and shuts it down —
  workers joined — before returning, or kills its workers if the run stops early.
- Every worker ends when its parent does (:func:`die_with_parent`): on Linux the kernel sends
  it SIGKILL when the parent dies (``prctl(PR_SET_PDEATHSIG)``, man 2 prctl), elsewhere a
  watchdog thread polls the parent's PID. So ``kill -KILL`` of ``psmsim run`` leaves no
  ~180 MB worker behind.
- Every process that computes blocks keeps the memory it frees for its next block
  (:func:`keep_freed_memory`), instead of glibc's default of handing it back to the kernel and
  faulting it in again, zeroed, a page at a time (about 1,300 page faults per liu2021 block,
  a third of a run's system time).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, wait
from typing import Any, Callable, Iterable, Iterator

from sim.errors import PsmsimError

#: Blocks in flight per worker: enough to keep every worker busy, few enough to hold little.
IN_FLIGHT_PER_WORKER = 2
_PR_SET_PDEATHSIG = 1

#: glibc ``mallopt`` parameters (malloc.h) and the values :func:`keep_freed_memory` sets:
#: allocations up to 32 MiB come from the heap (glibc's own dynamic threshold stops at 32 MiB
#: too), freed memory at the top of the heap is given back only past 256 MiB, and the heap grows
#: 16 MiB at a time.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
MALLOC_SETTINGS = ((_M_MMAP_THRESHOLD, 32 << 20), (_M_TRIM_THRESHOLD, 256 << 20), (_M_TOP_PAD, 16 << 20))


class BackendError(PsmsimError):
    """The parallel backend cannot be used (e.g. dask not installed, scheduler unreachable)."""


def machine_cores() -> int:
    """Cores this process may use (CPU affinity and cgroup quotas included; joblib's count)."""
    from joblib import cpu_count

    return max(1, int(cpu_count()))


def worker_count(jobs: int) -> tuple[int, str | None]:
    """The workers to start for ``--jobs jobs`` (-1 = all cores), and a note when capped.

    >>> worker_count(1)
    (1, None)
    """
    cores = machine_cores()
    if jobs == -1:
        return cores, None
    if jobs > cores:
        return cores, (f"--jobs {jobs}: this machine has {cores} core{'s' if cores > 1 else ''}; "
                       f"using {cores} worker{'s' if cores > 1 else ''}")
    return jobs, None


def die_with_parent(parent_pid: int, *, exit_if_orphaned: bool = True, watchdog: bool = False) -> None:
    """Worker initializer: end this process when ``parent_pid`` (its parent) ends.

    On Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel kills the worker when the
    thread that started it ends (the run's calling thread, or loky's manager thread when it
    replaces a worker: both outlive the pool, which is shut down at the end of each run).
    Elsewhere, or if prctl is unavailable, a daemon thread checks the parent's PID every
    0.2 s. If the parent died before this ran, the worker exits at once (unless
    ``exit_if_orphaned`` is false: then a process whose parent is not ``parent_pid`` is left
    alone, e.g. a Dask worker started by another process). ``watchdog`` starts the thread
    even where prctl worked (for a Dask worker, where this runs in one of the worker's threads,
    whose parent-death setting would end with it).
    """
    if os.getppid() != parent_pid and not exit_if_orphaned:
        return
    armed = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != parent_pid:
        os._exit(1)
    if watchdog or not armed:
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True,
                         name="psmsim-parent-watchdog").start()


def keep_freed_memory() -> bool:
    """Let this process's C allocator keep the memory it frees for reuse (glibc only; elsewhere
    nothing is done and False is returned).

    A block allocates and frees the same arrays each time (liu2021: ~10,000 values, 80 kB, per
    (replicate, patient) array). With glibc's defaults, arrays above 128 kB are mmapped and
    unmapped on every use, and the heap is trimmed whenever 128 kB at its top are free, so each
    block faulted ~1,300 fresh zeroed pages in (measured: 1,290 -> 28 page faults per block, system
    time 0.035 -> 0.011 ms per replicate). Arrays past 32 MiB (a 10,000-patient block's
    (replicate, patient, covariate) values) are still mapped and unmapped, so a worker's peak
    memory stays that of its largest block. Numbers are unchanged: only where memory comes from.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return all(mallopt(option, value) == 1 for option, value in MALLOC_SETTINGS)


def start_worker(parent_pid: int) -> None:
    """Initializer of a loky worker: :func:`die_with_parent`, then :func:`keep_freed_memory`."""
    die_with_parent(parent_pid)
    keep_freed_memory()


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(0.2)
    os._exit(1)


#: The workers' environment: one BLAS/OpenMP thread each. The workers already use every core;
#: a BLAS that also threads its larger products (the PS model's Gram matrices of a 10,000-patient
#: cohort) puts 2 x cores threads on the cores, and its spinning threads then slowed a block up to
#: eightfold on a shared machine. The numbers do not change (the BLAS splits a product by output
#: blocks, each computed the same way; the run's results are tested identical across --jobs).
ONE_BLAS_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def one_blas_thread():
    """A context in which this process's BLAS and OpenMP pools run one thread (threadpoolctl),
    as :data:`ONE_BLAS_THREAD` makes the workers' (whose environment is set before numpy
    loads its BLAS; this process's BLAS is loaded already). The blocks this process computes
    -- the timed first block of every run, all of them with ``--jobs 1`` -- are then computed
    as a worker computes them: with two BLAS threads, the generator's (10,000, 22) @ (22, 22)
    copula product of a 100-replicate block took 4.0 ms instead of 0.37 ms on the 2-core
    development machine (OpenBLAS threads a product that small and waits on its threads), and
    ``--jobs 1`` ran 10,000 liu2021 replicates at 0.26 ms each of generation instead of 0.09."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def run_loky(keyed: Callable[[Any], Any], tasks: Iterable[Any], jobs: int) -> Iterator[Any]:
    """``keyed(task)`` for every task on ``jobs`` loky worker processes, yielded as they
    finish (any order); the pool is shut down (workers joined) before the last result is
    returned, and its workers are killed if the caller stops early or a task raises."""
    from joblib.externals.loky import get_reusable_executor

    executor = get_reusable_executor(max_workers=jobs, reuse=False, timeout=300, env=ONE_BLAS_THREAD,
                                     initializer=start_worker, initargs=(os.getpid(),))
    limit = IN_FLIGHT_PER_WORKER * jobs
    in_flight: set = set()
    finished = False
    try:
        for task in tasks:
            in_flight.add(executor.submit(keyed, task))
            if len(in_flight) >= limit:
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        while in_flight:
            done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
        finished = True
    finally:
        if finished:
            executor.shutdown(wait=True)
        else:
            executor.shutdown(wait=True, kill_workers=True)


def run_dask(keyed: Callable[[Any], Any], tasks: Iterable[Any], jobs: int,
             scheduler: str | None) -> Iterator[Any]:
    """The same on a Dask cluster: ``scheduler``'s, or a LocalCluster of ``jobs`` worker
    processes on 127.0.0.1 (closed at the end; its workers die with this process too)."""
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
            cluster = LocalCluster(
                host="127.0.0.1", n_workers=jobs, threads_per_worker=1,
                processes=True, dashboard_address=None,
            )
            client = Client(cluster)
            client.run(die_with_parent, os.getpid(), exit_if_orphaned=False, watchdog=True)
            client.run(keep_freed_memory)
        # While a distributed client is the default scheduler, xarray would take a cluster-wide
        # lock to write netCDF in this process; blocks are written here, synchronously.
        import dask

        with client, dask.config.set(scheduler="synchronous"):
            pending = as_completed()
            iterator = iter(tasks)
            limit = IN_FLIGHT_PER_WORKER * max(1, len(client.scheduler_info()["workers"]))
            for task in iterator:
                pending.add(client.submit(keyed, task, pure=False))
                if pending.count() >= limit:
                    break
            for future in pending:
                result = future.result()
                future.release()  # the client keeps nothing of a finished block
                yield result
                task = next(iterator, None)
                if task is not None:
                    pending.add(client.submit(keyed, task, pure=False))
    finally:
        if cluster is not None:
            cluster.close()
