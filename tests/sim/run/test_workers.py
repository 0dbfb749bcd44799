"""Worker pools: --jobs capped at the cores, no worker outliving a SIGKILLed parent (none alive
one second after `psmsim run` returns: tests/sim/cli/test_run_folders.py)."""

import signal
import subprocess
import sys
import time

import pytest

from sim.run.workers import machine_cores, worker_count
from tests.sim.processes import alive, children, needs_proc

COMMAND = [sys.executable, "-c", "from sim.cli import main; main()"]


def test_jobs_are_capped_at_the_cores():
    cores = machine_cores()
    assert worker_count(-1) == (cores, None)
    assert worker_count(1) == (1, None)
    workers, note = worker_count(1000)
    assert workers == cores
    assert note == f"--jobs 1000: this machine has {cores} core{'s' if cores > 1 else ''}; using {cores} worker{'s' if cores > 1 else ''}"


@needs_proc
@pytest.mark.skipif(machine_cores() < 2, reason="needs two cores for a worker pool")
def test_no_worker_outlives_a_killed_parent(tmp_path, liu2021_small_truth_path):
    out = tmp_path / "k"
    process = subprocess.Popen(COMMAND + ["run", str(liu2021_small_truth_path), "--replicates", "400", "--block-size", "2",
                                          "--jobs", "2", "--quiet", "--out", str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen, deadline = set(), time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        seen |= children(process.pid)
        if len(alive(seen)) >= 2 and len(list((out / "blocks").glob("*.sha256"))) >= 3:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 5
    while alive(seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alive(seen) == set(), f"still alive 5 s after the parent was killed: {sorted(alive(seen))}"


def _faults_of_reused_arrays(_=None) -> int:
    """Minor page faults of 50 rounds of allocating, filling and freeing eight 1 MiB arrays (as a
    block's arrays are), after one first round: glibc's defaults give the freed 8 MiB back to the
    kernel (the heap is trimmed past 2 MiB free) and fault its 2,048 pages in again every round."""
    import resource

    import numpy as np

    def one_round():
        arrays = [np.ones(1 << 17) for _ in range(8)]
        return sum(float(a.sum()) for a in arrays)

    one_round()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(50):
        one_round()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_block_processes_keep_freed_memory():
    """A loky worker of a run, and a process after keep_freed_memory(), reuse freed arrays
    without faulting their pages in again (glibc's defaults: ~2,048 faults per round)."""
    from sim.run.workers import keep_freed_memory, run_loky

    code = ("from tests.sim.run.test_workers import _faults_of_reused_arrays as f; "
            "from sim.run.workers import keep_freed_memory as k; "
            "print(f(), k(), f())")
    untuned, tuned_ok, tuned = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                              check=True).stdout.split()
    assert int(untuned) > 50 * 1000 and tuned_ok == "True" and int(tuned) < 200
    assert keep_freed_memory()
    faults = list(run_loky(_faults_of_reused_arrays, range(2), 2))
    assert max(faults) < 200


def test_a_worker_computing_and_writing_blocks_never_imports_xarray(tmp_path):
    """xarray and pandas cost a worker ~0.7 s of CPU to import; the block path (runner, store,
    codec, results' BlockParts, the engine and the generator) does not need them."""
    (tmp_path / "blocks").mkdir()
    code = f"""
import sys
import numpy as np
import analysis.plan.analyse, sim.generate.cohorts, sim.scenario.plans
from sim.run.runner import BlockTask, _computed, simulate_block_parts
from sim.run.results import BlockParts
from sim.run.store import BlockKey, BlockWriter
parts = BlockParts({{"log_hr": (("condition", "replicate"), np.zeros((1, 3)))}},
                   {{"replicate": (("replicate",), np.arange(3))}})
BlockWriter({str(tmp_path)!r}, "abc")(BlockKey(0, 0, 0, 3), parts)
print("xarray" in sys.modules, "pandas" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]
    assert (tmp_path / "blocks" / "c0000_b000000.npz").exists()


def test_one_blas_thread_limits_this_process_and_restores():
    """Blocks computed in the run's own process use one BLAS thread, as a worker's do; the
    process's pools are as before afterwards."""
    from threadpoolctl import threadpool_info

    from sim.run.workers import one_blas_thread

    blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert blas, "numpy's BLAS is not visible to threadpoolctl"
    before = [pool["num_threads"] for pool in blas]
    with one_blas_thread():
        assert all(pool["num_threads"] == 1 for pool in threadpool_info() if pool["user_api"] == "blas")
    assert [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"] == before
