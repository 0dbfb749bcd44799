"""The block files' .npz encoding (sim/run/block_codec.py): a lossless round trip, and the fast
header parser agreeing with numpy's own reader on every layout it may meet."""

import io

import numpy as np
import pytest
import xarray as xr

from sim.run.block_codec import _npy_array, dataset_from_npz_bytes, dataset_to_npz_bytes


def _block() -> xr.Dataset:
    rng = np.random.default_rng(3)
    return xr.Dataset(
        {
            "log_hr": (("replicate", "endpoint"), rng.normal(size=(5, 2))),
            "status": (("replicate",), rng.integers(0, 7, 5).astype(np.int8)),
            "separated": (("replicate",), rng.random(5) < 0.5),
            "n_pairs": ((), np.int64(34)),
        },
        coords={"replicate": np.arange(100, 105), "endpoint": ["pfs", "os"]},
        attrs={"run_id": "abc", "block": 1, "estimand_codes": "att ate ato conditional"},
    )


def test_round_trip_keeps_values_dtypes_dims_and_attrs():
    block = _block()
    back = dataset_from_npz_bytes(dataset_to_npz_bytes(block))
    xr.testing.assert_identical(back, block)
    for name in block.variables:
        assert back[name].dtype == block[name].dtype, name
    assert list(back.data_vars) == list(block.data_vars)


@pytest.mark.parametrize("array", [
    np.arange(12.0).reshape(3, 4),
    np.arange(6, dtype=np.int8),
    np.array(2.5),
    np.zeros((0, 3)),
    np.array([True, False]),
    np.array(["pfs", "os"]),
    np.asfortranarray(np.arange(12.0).reshape(3, 4)),  # numpy's reader (fortran_order True)
    np.arange(4, dtype=">f8"),
])
def test_member_reader_equals_numpys(array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    ours = _npy_array(buffer.getvalue())
    theirs = np.load(io.BytesIO(buffer.getvalue()), allow_pickle=False)
    np.testing.assert_array_equal(ours, theirs)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    assert ours.flags.writeable
