"""replicates.nc written block by block equals the combined Dataset written whole."""

import numpy as np
import pytest
import xarray as xr

from sim.run.replicates_file import write_replicates_streamed
from sim.run.results import combine_blocks
from sim.run.runner import BlockTask, block_keys
from tests.sim.fake_blocks import fake_work


def _blocks(n_conditions, replicates, block_size, *, seed=7):
    keys = list(block_keys(n_conditions, replicates, block_size))
    blocks = {}
    for key in keys:
        block = fake_work(BlockTask(key, seed, None, None, ("paper", "recommended")))
        # NaNs and failed replicates, as degenerate analyses leave them.
        rng = np.random.default_rng([seed, key.condition, key.block])
        hole = rng.random(block.log_hr.shape) < 0.2
        block["log_hr"] = block.log_hr.where(~hole)
        block["smd"] = block.smd.where(rng.random(block.smd.shape) < 0.8)
        blocks[key] = block
    return keys, blocks


def _truths(n_conditions):
    return [{"true_log_hr_conditional": [-0.5 - c, -0.3], "true_log_hr_marginal": [-0.4, -0.2 - c],
             "true_median_treated": [10.2, np.nan], "true_median_control": [6.1, 9.6]}
            for c in range(n_conditions)]


def _strip_time(ds):
    ds = ds.copy()
    ds.attrs.pop("created_at", None)
    return ds


@pytest.mark.parametrize("n_conditions, replicates, block_size", [(1, 23, 5), (3, 10, 4), (2, 6, 6)])
def test_streamed_file_equals_the_combined_dataset(tmp_path, n_conditions, replicates, block_size):
    keys, blocks = _blocks(n_conditions, replicates, block_size)
    truths = _truths(n_conditions)
    grid = [{"outcome.hr": 0.5 + 0.1 * c} for c in range(n_conditions)] if n_conditions > 1 else [{}]
    attrs = {"root_seed": 7, "scenario_name": "toy", "n_replicates": replicates}
    whole = combine_blocks(list(blocks.values()), truths=truths, grid=grid, attrs=attrs)
    whole.to_netcdf(tmp_path / "whole.nc", engine="h5netcdf")

    reads = []

    def read(key):
        reads.append(key)
        return blocks[key]

    path = write_replicates_streamed(tmp_path / "replicates.nc", keys[::-1], read, replicates=replicates,
                                     truths=truths, grid=grid, attrs=attrs)
    assert sorted(reads, key=lambda k: (k.condition, k.block)) == keys  # each block read once
    with xr.open_dataset(tmp_path / "whole.nc", engine="h5netcdf") as a, xr.open_dataset(path, engine="h5netcdf") as b:
        xr.testing.assert_identical(_strip_time(a.load()), _strip_time(b.load()))
        assert b.log_hr.isnull().any()  # the NaNs survived as NaN, not as a fill number
    assert not list(tmp_path.glob(".*.tmp"))


def test_lazily_opened_file_reads_chunk_by_chunk(tmp_path):
    keys, blocks = _blocks(1, 12, 4)
    path = write_replicates_streamed(tmp_path / "r.nc", keys, blocks.__getitem__, replicates=12,
                                     truths=_truths(1), grid=[{}], attrs={})
    with xr.open_dataset(path, engine="h5netcdf", chunks={}) as lazy:
        assert lazy.log_hr.chunks is not None
        assert lazy.log_hr.chunks[1] == (4, 4, 4)  # one chunk per block of replicates


def test_an_interrupted_write_leaves_the_previous_file(tmp_path):
    keys, blocks = _blocks(1, 12, 4)
    target = tmp_path / "replicates.nc"
    target.write_bytes(b"previous")

    def read(key):
        if key.block == 2:
            raise OSError(28, "No space left on device")
        return blocks[key]

    with pytest.raises(OSError):
        write_replicates_streamed(target, keys, read, replicates=12, truths=_truths(1), grid=[{}], attrs={})
    assert target.read_bytes() == b"previous"
    assert not list(tmp_path.glob(".*.tmp"))


def test_blocks_with_other_labels_are_refused(tmp_path):
    keys, blocks = _blocks(1, 8, 4)
    blocks[keys[1]] = blocks[keys[1]].assign_coords(method=["paper", "other"])
    with pytest.raises(ValueError, match="method"):
        write_replicates_streamed(tmp_path / "r.nc", keys, blocks.__getitem__, replicates=8,
                                  truths=_truths(1), grid=[{}], attrs={})


def test_blocks_that_need_encoding_are_encoded_as_xarray_encodes_them(tmp_path):
    # a bool variable (xarray writes int8) and a block whose float variable came as float32:
    # those go through xarray's encoding, the rest is written as it is
    keys, blocks = _blocks(1, 12, 4)
    for i, key in enumerate(keys):
        blocks[key]["separated"] = blocks[key].log_hr > 0
        if i == 1:
            blocks[key]["se"] = blocks[key].se.astype(np.float32)
    truths, attrs = _truths(1), {"root_seed": 7}
    whole = combine_blocks([blocks[k].assign(se=blocks[k].se.astype(float)) for k in keys], truths=truths,
                           grid=[{}], attrs=attrs)
    whole.to_netcdf(tmp_path / "whole.nc", engine="h5netcdf")
    path = write_replicates_streamed(tmp_path / "replicates.nc", keys, blocks.__getitem__, replicates=12,
                                     truths=truths, grid=[{}], attrs=attrs)
    with xr.open_dataset(tmp_path / "whole.nc", engine="h5netcdf") as a, xr.open_dataset(path, engine="h5netcdf") as b:
        xr.testing.assert_identical(_strip_time(a.load()), _strip_time(b.load()))
