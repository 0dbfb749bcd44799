"""Runner: seeding by (condition, block), identical results for any jobs/backend, resume."""

import numpy as np
import pytest
import xarray as xr

from sim.errors import RunFolderError
from sim.run.runner import BlockFailedError, RunConfig, block_keys, block_rng, iter_conditions, run_simulation
from sim.run.store import BlockKey, RunFolder
from tests.sim.fake_blocks import failing_work, fake_work

TRUTH = {
    "true_log_hr_conditional": [-0.5, -0.4],
    "true_log_hr_marginal": [-0.45, -0.35],
    "true_median_treated": [10.2, 14.1],
    "true_median_control": [6.1, 9.6],
}


def run(tmp_path, name, *, jobs=1, backend="loky", replicates=23, block_size=5, work=fake_work,
        force=False, seed=7, conditions=2):
    config = RunConfig(replicates=replicates, seed=seed, block_size=block_size, jobs=jobs,
                       backend=backend, quiet=True, methods=("paper", "recommended"))
    conds = iter_conditions(["s"] * conditions, [{"outcome.treatment.hazard_ratio": hr} for hr in (1.0, 0.7)][:conditions])
    identity = {"seed": seed, "block_size": block_size}
    with RunFolder(tmp_path / name, identity, force=force) as folder:
        return run_simulation(conds, [None] * conditions, [TRUTH] * conditions, config, folder,
                              attrs={"root_seed": seed}, work=work)


def strip_time(ds):
    ds = ds.copy()
    ds.attrs.pop("created_at")
    return ds


def test_block_keys_cover_every_replicate_once():
    keys = list(block_keys(2, 23, 5))
    assert [k.size for k in keys if k.condition == 0] == [5, 5, 5, 5, 3]
    starts = sorted((k.condition, s) for k in keys for s in range(k.start, k.start + k.size))
    assert starts == [(c, r) for c in range(2) for r in range(23)]


def test_block_streams_are_distinct_and_reproducible():
    a = block_rng(1, BlockKey(0, 0, 0, 5), 0).random(4)
    assert np.array_equal(a, block_rng(1, BlockKey(0, 0, 0, 5), 0).random(4))
    others = [block_rng(1, BlockKey(0, 1, 5, 5), 0), block_rng(1, BlockKey(1, 0, 0, 5), 0),
              block_rng(1, BlockKey(0, 0, 0, 5), 1), block_rng(2, BlockKey(0, 0, 0, 5), 0)]
    for rng in others:
        assert not np.array_equal(a, rng.random(4))


def test_dataset_shape_and_truth(tmp_path):
    ds = run(tmp_path, "a")
    assert dict(ds.sizes) == {"condition": 2, "replicate": 23, "method": 2, "cohort": 2, "endpoint": 2,
                              "covariate": 3}
    assert ds.smd.dims == ("condition", "replicate", "method", "cohort", "covariate")
    assert list(ds.replicate.values) == list(range(23))
    assert ds.true_median_control.sel(endpoint="os").values.tolist() == [9.6, 9.6]
    assert ds["outcome.treatment.hazard_ratio"].values.tolist() == [1.0, 0.7]
    assert ds.status.dtype == np.int8


def test_jobs_and_backends_give_identical_results(tmp_path):
    one = run(tmp_path, "one", jobs=1)
    two = run(tmp_path, "two", jobs=2)
    xr.testing.assert_identical(strip_time(one), strip_time(two))


def test_dask_local_cluster_gives_identical_results(tmp_path):
    pytest.importorskip("dask.distributed")
    one = run(tmp_path, "one", jobs=1)
    dask = run(tmp_path, "dask", jobs=2, backend="dask")
    xr.testing.assert_identical(strip_time(one), strip_time(dask))


def test_resume_after_a_failed_block_keeps_finished_blocks(tmp_path):
    with pytest.raises(BlockFailedError, match="block 1 of condition 0"):
        run(tmp_path, "r", work=failing_work)
    finished = sorted(p.name for p in (tmp_path / "r" / "blocks").glob("*.npz"))
    assert "c0000_b000000.npz" in finished and "c0000_b000001.npz" not in finished
    resumed = run(tmp_path, "r")
    xr.testing.assert_identical(strip_time(resumed), strip_time(run(tmp_path, "fresh")))


def test_corrupt_block_is_recomputed_not_merged(tmp_path):
    reference = run(tmp_path, "c")
    block = tmp_path / "c" / "blocks" / "c0001_b000002.npz"
    data = bytearray(block.read_bytes())
    data[len(data) // 2] ^= 0xFF
    block.write_bytes(bytes(data))
    (tmp_path / "c" / "blocks" / "c0000_b000003.sha256").unlink()  # block without checksum
    stale = tmp_path / "c" / "blocks" / ".c0000_b000004.npz.abc.tmp"  # a write cut short
    stale.write_bytes(b"partial")
    again = run(tmp_path, "c")
    assert not stale.exists()
    xr.testing.assert_identical(strip_time(reference), strip_time(again))


def test_foreign_run_folder_is_refused_unless_forced(tmp_path):
    run(tmp_path, "f", seed=7)
    with pytest.raises(RunFolderError, match="holds another run .*seed.*--force"):
        run(tmp_path, "f", seed=8)
    assert (tmp_path / "f" / "blocks" / "c0000_b000000.npz").exists()  # nothing lost
    forced = run(tmp_path, "f", seed=8, force=True)
    assert forced.attrs["root_seed"] == 8


def test_non_run_folder_is_refused(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    with pytest.raises(RunFolderError, match="not a psmsim run"):
        run(tmp_path, "x")
    assert (tmp_path / "x" / "notes.txt").read_text() == "mine"


def test_a_pickled_task_carries_its_scenario_once_per_process():
    import pickle

    from sim.run.runner import BlockTask

    scenario, calibration = {"name": "s", "hr": [0.7, 0.8]}, {"beta": np.arange(3.0)}
    tasks = [BlockTask(BlockKey(0, b, 5 * b, 5), 7, scenario, calibration, ("paper",)) for b in range(2)]
    first, second = (pickle.loads(pickle.dumps(task)) for task in tasks)
    assert first.key == tasks[0].key and first.root_seed == 7 and first.methods == ("paper",)
    assert first.scenario == scenario and np.array_equal(first.calibration["beta"], calibration["beta"])
    assert second.scenario is first.scenario and second.calibration is first.calibration  # unpickled once
    other = pickle.loads(pickle.dumps(BlockTask(BlockKey(0, 0, 0, 5), 7, {"name": "t"}, calibration, ("paper",))))
    assert other.scenario == {"name": "t"}
