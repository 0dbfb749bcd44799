"""`psmsim run` and `psmsim sweep` as processes: one writer per run folder, --force deleting
only psmsim's files, a longer run reusing a shorter one's blocks."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import xarray as xr

from sim.cli import main
from sim.run.folder_lock import FolderLock
from sim.run.workers import machine_cores
from tests.sim.processes import alive, children, needs_proc
from tests.sim.cli.helpers import invoke

ROOT = Path(__file__).resolve().parents[3]
LIU2021 = ROOT / "scenarios" / "liu2021.toml"
COMMAND = [sys.executable, "-c", "from sim.cli import main; main()"]


def one_line_error(output):
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in output, output
    return lines[0]


def strip_time(ds):
    ds = ds.copy()
    ds.attrs.pop("created_at")
    return ds


@needs_proc
def test_two_runs_on_one_folder_at_once_the_second_is_refused(tmp_path, liu2021_small_truth_path):
    """The first run is paused (SIGSTOP) once it holds the lock, so the second surely starts
    while the first is mid-run; it is then resumed (SIGCONT) and must finish intact, with its
    --jobs capped at the cores and no worker alive one second after it returns."""
    out = tmp_path / "F"
    args = ["run", str(liu2021_small_truth_path), "--replicates", "8", "--block-size", "2", "--quiet"]
    first = subprocess.Popen(COMMAND + args + ["--jobs", "1000", "--out", str(out)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and first.poll() is None:
        if (out / "run.lock").exists() and (out / "run.lock").read_text().strip() == str(first.pid):
            break
        time.sleep(0.01)
    first.send_signal(signal.SIGSTOP)
    # without --force it is refused too (tests/sim/run/test_store.py, in one process)
    second = subprocess.run(COMMAND + args + ["--jobs", "1", "--seed", "2", "--force", "--out", str(out)],
                            capture_output=True, timeout=60)
    assert second.returncode == 2
    assert one_line_error(second.stderr.decode()) == (
        f"error: --out {out}: another psmsim run (PID {first.pid}) is writing to this folder; "
        "wait for it to finish or choose another folder")
    assert first.poll() is None, "the first run ended before the second could be started"
    first.send_signal(signal.SIGCONT)
    workers, deadline = set(), time.monotonic() + 120
    while first.poll() is None and time.monotonic() < deadline:
        workers |= children(first.pid)
        time.sleep(0.05)
    _, err = first.communicate(timeout=10)
    assert first.returncode == 0, err.decode()
    cores = machine_cores()
    assert err.decode().splitlines()[0] == (
        f"warning: --jobs 1000: this machine has {cores} core{'s' if cores > 1 else ''}; using {cores} "
        f"worker{'s' if cores > 1 else ''}")
    assert workers or cores == 1, "no worker process was seen"
    time.sleep(1)
    assert alive(workers) == set(), "workers still alive one second after `psmsim run` returned"
    ds = xr.load_dataset(out / "replicates.nc", engine="h5netcdf")
    assert ds.attrs["root_seed"] == 20210430 and ds.sizes["replicate"] == 8
    identity = json.loads((out / "run.json").read_text())
    assert identity["root_seed"] == 20210430
    ids = {p.read_text().split()[1] for p in (out / "blocks").glob("*.sha256")}
    assert len(list((out / "blocks").glob("*.npz"))) == 4 and len(ids) == 1


def test_force_keeps_files_psmsim_did_not_write(tmp_path, liu2021_small_truth_path):
    out = tmp_path / "F"
    (out / "blocks").mkdir(parents=True)
    (out / "blocks" / "notes.txt").write_text("n\n")
    args = ["run", liu2021_small_truth_path, "--replicates", 10, "--block-size", 5, "--jobs", 1, "--quiet", "--out", out]
    assert one_line_error(invoke(*args).output) == (
        f"error: --out {out}: folder is not empty and is not a psmsim run (it holds blocks/notes.txt); "
        "choose an empty or new folder, or pass --force to use it (only psmsim's own files are ever removed)")
    assert invoke(*args, "--force").exit_code == 0
    assert (out / "blocks" / "notes.txt").read_text() == "n\n" and (out / "replicates.nc").exists()


def test_a_longer_run_after_a_comment_reuses_the_blocks_and_equals_a_fresh_run(tmp_path, liu2021_small_truth_path):
    scenario = liu2021_small_truth_path
    commented = tmp_path / "liu2021.toml"
    commented.write_text("# a comment added after the first run\n" + scenario.read_text())
    common = ["--block-size", 4, "--jobs", 1, "--quiet"]
    assert invoke("run", scenario, "--replicates", 8, *common, "--out", tmp_path / "r").exit_code == 0
    first_blocks = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "r" / "blocks").glob("*.npz")}
    assert invoke("run", commented, "--replicates", 12, *common, "--out", tmp_path / "r").exit_code == 0
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "r" / "blocks").glob("*.npz")}
    assert {name: after[name] for name in first_blocks} == first_blocks and len(after) == 3
    assert invoke("run", scenario, "--replicates", 12, *common, "--out", tmp_path / "fresh").exit_code == 0
    extended = xr.load_dataset(tmp_path / "r" / "replicates.nc", engine="h5netcdf")
    fresh = xr.load_dataset(tmp_path / "fresh" / "replicates.nc", engine="h5netcdf")
    for ds in (extended, fresh):  # provenance: the text and size of the latest run
        for name in ("scenario_text", "scenario_sha256"):
            ds.attrs.pop(name)
    xr.testing.assert_identical(strip_time(extended), strip_time(fresh))


def test_a_sweep_on_a_locked_folder_is_refused(tmp_path):
    out = tmp_path / "S"
    sweep = ROOT / "tests" / "data" / "sweeps" / "small_factorial.toml"
    with FolderLock.acquire(out):
        result = invoke("sweep", LIU2021, sweep, "--jobs", 1, "--quiet", "--force", "--out", out)
    assert result.exit_code == 2
    assert one_line_error(result.output) == (
        f"error: --out {out}: another psmsim run (PID {os.getpid()}) is writing to this folder; "
        "wait for it to finish or choose another folder")
    assert sorted(p.name for p in out.iterdir()) == ["run.lock"]
