"""The run folder: one writer at a time (an OS lock), blocks of another run never merged,
--force removing only psmsim's own files, a run extended to more replicates reusing its blocks."""

import os
import shutil

import numpy as np
import pytest
import xarray as xr

from sim.errors import RunFolderError
from sim.run.runner import RunConfig, iter_conditions, run_simulation
from sim.run.folder_lock import LOCK_FILE, FolderLock
from sim.run.store import RunFolder, foreign_files, own_files
from tests.sim.fake_blocks import fake_work

TRUTH = {"true_log_hr_conditional": [-0.5, -0.4], "true_log_hr_marginal": [-0.45, -0.35],
         "true_median_treated": [10.2, 14.1], "true_median_control": [6.1, 9.6]}
COMPUTED = []


def counting_work(task):
    COMPUTED.append((task.key.condition, task.key.block, task.key.size))
    return fake_work(task)


def run(path, *, replicates=10, seed=7, block_size=4, force=False, work=counting_work):
    config = RunConfig(replicates=replicates, seed=seed, block_size=block_size, jobs=1, quiet=True)
    with RunFolder(path, {"seed": seed, "block_size": block_size}, force=force) as folder:
        return run_simulation(iter_conditions(["s"]), [None], [TRUTH], config, folder,
                              attrs={"root_seed": seed}, work=work)


def strip_time(ds):
    ds = ds.copy()
    ds.attrs.pop("created_at")
    return ds


def test_a_locked_folder_is_refused_with_the_holders_pid_even_with_force(tmp_path):
    folder = tmp_path / "f"
    with RunFolder(folder, {"seed": 1}):
        for force in (False, True):
            with pytest.raises(RunFolderError) as err:
                RunFolder(folder, {"seed": 2}, force=force)
            assert str(err.value) == (f"--out {folder}: another psmsim run (PID {os.getpid()}) is writing "
                                      "to this folder; wait for it to finish or choose another folder")
        assert (folder / "run.json").exists() and '"seed": 1' in (folder / "run.json").read_text()
    with RunFolder(folder, {"seed": 1}):  # released on close; the same run opens again
        pass
    with FolderLock.acquire(folder):  # e.g. `psmsim summarise` while a run writes
        with pytest.raises(RunFolderError, match="another psmsim run"):
            RunFolder(folder, {"seed": 1})


def test_readers_share_the_lock_and_exclude_writers_and_are_excluded_by_them(tmp_path):
    """`psmsim report`/`plot`/`sensitivity` hold run.lock shared: refused (the writer's PID)
    while a run holds it; several readers at once; a writer refused while one reads."""
    folder = tmp_path / "f"
    with RunFolder(folder, {"seed": 1}):
        with pytest.raises(RunFolderError) as err:
            FolderLock.shared(folder, command="psmsim report")
        assert str(err.value) == (f"RUN_DIR {folder}: a psmsim run (PID {os.getpid()}) is writing this folder; "
                                  "wait for it to finish (or stop it), then rerun psmsim report")
    with FolderLock.shared(folder, command="psmsim report"), FolderLock.shared(folder, command="psmsim plot"):
        for writer in (lambda: RunFolder(folder, {"seed": 1}), lambda: FolderLock.acquire(folder, option="RUN_DIR")):
            with pytest.raises(RunFolderError) as err:
                writer()
            assert "psmsim report, plot or sensitivity is reading this folder; wait for it to finish" in str(err.value)
    with RunFolder(folder, {"seed": 1}):  # the readers are gone: a run opens it again
        pass


def test_a_reader_is_refused_by_a_writer_in_another_process(tmp_path):
    import subprocess
    import sys

    folder = tmp_path / "f"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from sim.run.folder_lock import FolderLock; "
         f"lock = FolderLock.acquire({str(folder)!r}); print('locked', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderError, match=f"a psmsim run \\(PID {holder.pid}\\) is writing this folder"):
            FolderLock.shared(folder, command="psmsim plot")
    finally:
        holder.communicate("", timeout=30)
    with FolderLock.shared(folder, command="psmsim plot"):  # released when the writer ended
        pass


def test_a_reader_of_a_folder_without_a_lock_file_creates_nothing(tmp_path):
    with FolderLock.shared(tmp_path, command="psmsim report"):
        pass
    with FolderLock.shared(tmp_path / "missing", command="psmsim report"):
        pass
    assert list(tmp_path.iterdir()) == []


def test_refuse_if_held_creates_nothing_and_refuses_a_held_folder(tmp_path):
    FolderLock.refuse_if_held(tmp_path / "new")
    assert not (tmp_path / "new").exists()
    with FolderLock.acquire(tmp_path / "held"):
        with pytest.raises(RunFolderError, match="another psmsim run"):
            FolderLock.refuse_if_held(tmp_path / "held")
    FolderLock.refuse_if_held(tmp_path / "held")


def test_a_block_of_another_run_is_recomputed_never_merged(tmp_path):
    mine, other = run(tmp_path / "mine"), run(tmp_path / "other", seed=8)
    assert not mine.log_hr.equals(other.log_hr)
    for suffix in (".npz", ".sha256"):  # a block of the seed-8 run lands in the seed-7 folder
        shutil.copy(tmp_path / "other" / "blocks" / f"c0000_b000001{suffix}",
                    tmp_path / "mine" / "blocks" / f"c0000_b000001{suffix}")
    COMPUTED.clear()
    again = run(tmp_path / "mine")
    assert COMPUTED == [(0, 1, 4)]
    xr.testing.assert_identical(strip_time(again), strip_time(mine))
    with RunFolder(tmp_path / "mine", {"seed": 7, "block_size": 4}) as folder:
        from sim.run.store import BlockKey
        shutil.copy(tmp_path / "other" / "blocks" / "c0000_b000001.npz", folder.path / "blocks")
        with pytest.raises(RunFolderError, match="belongs to another run"):
            folder.read_block(BlockKey(0, 1, 4, 4))


def test_force_removes_only_what_psmsim_wrote(tmp_path):
    folder = tmp_path / "F"
    (folder / "blocks").mkdir(parents=True)
    (folder / "blocks" / "notes.txt").write_text("n")
    with pytest.raises(RunFolderError, match=r"not a psmsim run \(it holds blocks/notes.txt\)"):
        run(folder)
    assert sorted(p.name for p in folder.rglob("*")) == ["blocks", "notes.txt"]  # nothing written
    run(folder, force=True)
    (folder / "mine.csv").write_text("x")
    (folder / "figures").mkdir()
    (folder / "figures" / "pairs.png").write_bytes(b"png")
    (folder / "figures" / "holiday.jpg").write_bytes(b"jpg")
    (folder / "replicates.nc").write_bytes(b"old results")
    forced = run(folder, seed=9, force=True)  # replaces the seed-7 run, keeps the user's files
    assert forced.attrs["root_seed"] == 9
    assert (folder / "blocks" / "notes.txt").read_text() == "n" and (folder / "mine.csv").read_text() == "x"
    assert (folder / "figures" / "holiday.jpg").exists() and not (folder / "figures" / "pairs.png").exists()
    assert not (folder / "replicates.nc").exists()
    assert sorted(p.name for p in foreign_files(folder)) == ["holiday.jpg", "mine.csv", "notes.txt"]
    assert {p.name for p in own_files(folder)} == {"run.json", LOCK_FILE} | {
        f"c0000_b00000{b}.{ext}" for b in range(3) for ext in ("npz", "sha256")}


def test_a_longer_run_reuses_the_finished_blocks_and_equals_a_fresh_one(tmp_path):
    COMPUTED.clear()
    run(tmp_path / "r", replicates=10)  # blocks of 4, 4, 2
    COMPUTED.clear()
    extended = run(tmp_path / "r", replicates=20)
    assert COMPUTED == [(0, 2, 4), (0, 3, 4), (0, 4, 4)]  # the short block is recomputed
    xr.testing.assert_identical(strip_time(extended), strip_time(run(tmp_path / "fresh", replicates=20)))
    COMPUTED.clear()
    shorter = run(tmp_path / "r", replicates=8)
    assert COMPUTED == [] and shorter.sizes["replicate"] == 8


def test_a_block_written_from_its_parts_is_the_block_written_from_its_dataset(tmp_path):
    from sim.run.results import block_parts
    from sim.run.store import BlockKey, BlockWriter
    from tests.sim.fake_blocks import fake_result

    rng = np.random.default_rng(5)
    results = {m: fake_result(4, rng) for m in ("paper", "recommended")}
    parts = block_parts(results, condition=0, start=8)
    for name in ("a", "b"):
        (tmp_path / name / "blocks").mkdir(parents=True)
    key = BlockKey(0, 2, 8, 4)
    BlockWriter(str(tmp_path / "a"), "id")(key, parts)
    BlockWriter(str(tmp_path / "b"), "id")(key, parts.to_dataset())
    assert ((tmp_path / "a" / "blocks" / "c0000_b000002.npz").read_bytes()
            == (tmp_path / "b" / "blocks" / "c0000_b000002.npz").read_bytes())
    assert parts.nbytes == parts.to_dataset().nbytes


def test_a_group_read_at_once_is_the_group_read_block_by_block_and_refuses_the_same_blocks(tmp_path):
    import zipfile

    from sim.run.runner import run_keys
    from sim.run.store import group_keys

    run(tmp_path / "mine", replicates=14)  # blocks of 4, 4, 4, 2
    run(tmp_path / "other", replicates=14, seed=8)
    with RunFolder(tmp_path / "mine", {"seed": 7, "block_size": 4}) as folder:
        (group,) = group_keys(run_keys([14], 4))
        whole = group_keys(run_keys([12], 4))[0]  # blocks of one layout
        for names in (None, ("log_hr",)):
            for g in (group, whole):
                fast = folder.read_blocks(g, names)
                folder._read_stacked = lambda *args: None  # block by block
                slow = folder.read_blocks(g, names)
                del folder._read_stacked
                xr.testing.assert_identical(fast, slow)
        assert folder._read_stacked(whole, None) is not None and folder._read_stacked(group, None) is None
        blocks = folder.path / "blocks"
        own = (blocks / "c0000_b000001.npz").read_bytes()
        shutil.copy(tmp_path / "other" / "blocks" / "c0000_b000001.npz", blocks)
        with pytest.raises(RunFolderError, match="c0000_b000001.npz: belongs to another run"):
            folder.read_blocks(whole)
        (blocks / "c0000_b000001.npz").write_bytes(own)
        data = bytearray((blocks / "c0000_b000002.npz").read_bytes())
        data[200] ^= 0xFF  # inside the first member's data
        (blocks / "c0000_b000002.npz").write_bytes(bytes(data))
        with pytest.raises(zipfile.BadZipFile, match="CRC"):
            folder.read_blocks(whole)


def test_a_block_missing_either_file_or_failing_its_checksum_is_unfinished_and_removed(tmp_path):
    from sim.run.store import BlockKey

    run(tmp_path / "r", replicates=12)
    blocks = tmp_path / "r" / "blocks"
    with RunFolder(tmp_path / "r", {"seed": 7, "block_size": 4}) as folder:
        keys = [BlockKey(0, b, 4 * b, 4) for b in range(4)]
        assert [folder.is_finished(k) for k in keys] == [True, True, True, False]
        (blocks / "c0000_b000000.sha256").unlink()  # data without checksum
        (blocks / "c0000_b000001.npz").unlink()  # checksum without data
        (blocks / "c0000_b000002.sha256").write_text("0" * 64 + f" {folder.run_id} 4\n")  # wrong checksum
        assert [folder.is_finished(k) for k in keys[:3]] == [False, False, False]
        assert not list(blocks.glob("c*"))
