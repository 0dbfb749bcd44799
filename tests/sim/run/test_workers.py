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
