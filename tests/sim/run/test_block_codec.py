"""The block files' .npz encoding (sim/run/block_codec.py): a lossless round trip, and the fast
header parser agreeing with numpy's own reader on every layout it may meet."""

import io

import numpy as np
import pytest
import xarray as xr

from sim.run.block_codec import _npy_array, _npy_parts, dataset_from_npz_bytes, dataset_to_npz_bytes, encode_npz, npz_parts


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


LAYOUTS = [
    np.arange(12.0).reshape(3, 4),
    np.arange(6, dtype=np.int8),
    np.array(2.5),
    np.zeros((0, 3)),
    np.array([True, False]),
    np.array(["pfs", "os"]),
    np.asfortranarray(np.arange(12.0).reshape(3, 4)),  # numpy's reader (fortran_order True)
    np.arange(4, dtype=">f8"),
    np.arange(24.0).reshape(4, 6)[:, ::2],  # not contiguous
    np.arange(5, dtype=np.int32)[np.newaxis],
    np.array([b"ab", b"c"]),
    np.zeros(3, dtype=[("a", "<f8"), ("b", "i1")]),
    np.array(1 + 2j),
]


@pytest.mark.parametrize("array", LAYOUTS)
def test_member_reader_equals_numpys(array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    ours = _npy_array(buffer.getvalue())
    theirs = np.load(io.BytesIO(buffer.getvalue()), allow_pickle=False)
    np.testing.assert_array_equal(ours, theirs)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    assert ours.flags.writeable


@pytest.mark.parametrize("array", LAYOUTS)
def test_member_parts_are_the_bytes_numpy_saves(array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    parts = _npy_parts(array)
    assert b"".join(parts) == buffer.getvalue()
    assert len(parts) == (2 if array.flags.c_contiguous and array.dtype.fields is None else 1)
    with np.load(io.BytesIO(encode_npz({"x.npy": parts, "y.npy": buffer.getvalue()})), allow_pickle=False) as loaded:
        np.testing.assert_array_equal(loaded["x"], array)
        np.testing.assert_array_equal(loaded["y"], array)


def _savez_bytes(block: xr.Dataset) -> bytes:
    """The bytes psmsim wrote before it assembled the archive itself (numpy.savez)."""
    import json

    arrays, meta = {}, {"data_vars": {}, "coords": {}, "attrs": block.attrs}
    for group, items in (("data_vars", block.data_vars.items()), ("coords", block.coords.items())):
        for name, variable in items:
            key = f"a{len(arrays)}"
            arrays[key] = np.asarray(variable.values)
            meta[group][name] = [key, list(variable.dims)]
    arrays["__dataset__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_archive_is_what_numpy_and_zipfile_read_and_holds_numpys_members():
    import zipfile

    block = _block()
    ours, theirs = dataset_to_npz_bytes(block), _savez_bytes(block)
    with zipfile.ZipFile(io.BytesIO(ours)) as archive, zipfile.ZipFile(io.BytesIO(theirs)) as reference:
        assert archive.testzip() is None
        assert archive.namelist() == reference.namelist()
        for name in archive.namelist():
            assert archive.read(name) == reference.read(name), name
    with np.load(io.BytesIO(ours), allow_pickle=False) as loaded:
        np.testing.assert_array_equal(loaded["a0"], block.log_hr.values)


def test_blocks_numpy_wrote_read_back_identically():
    block = _block()
    xr.testing.assert_identical(dataset_from_npz_bytes(_savez_bytes(block)), block)


def test_selected_variables_are_read_with_every_coordinate():
    attrs, variables = npz_parts(dataset_to_npz_bytes(_block()), names=("status",))
    assert sorted(variables) == [("coords", "endpoint"), ("coords", "replicate"), ("data_vars", "status")]
    assert attrs["run_id"] == "abc"


def test_a_corrupt_member_is_refused():
    import zipfile

    data = bytearray(dataset_to_npz_bytes(_block()))
    data[200] ^= 0xFF  # inside the first member's data
    with pytest.raises(zipfile.BadZipFile, match="CRC"):
        npz_parts(bytes(data))


def test_a_truncated_member_goes_through_numpys_reader_and_fails():
    buffer = io.BytesIO()
    np.save(buffer, np.arange(10.0), allow_pickle=False)
    with pytest.raises(ValueError):
        _npy_array(buffer.getvalue()[:-8])


def test_views_instead_of_copies_hold_the_same_arrays():
    data = dataset_to_npz_bytes(_block())
    (_, copied), (_, viewed) = npz_parts(data), npz_parts(data, copy=False)
    assert list(copied) == list(viewed)
    for item, (dims, values) in copied.items():
        assert viewed[item][0] == dims
        np.testing.assert_array_equal(viewed[item][1], values)
        assert viewed[item][1].dtype == values.dtype and values.flags.writeable
    assert not viewed["data_vars", "log_hr"][1].flags.writeable  # a view of the bytes


def _blocks_alike(n: int) -> list[bytes]:
    """``n`` blocks of one layout: the same dims, dtypes and attributes, other values."""
    out = []
    for i in range(n):
        block = _block().assign(log_hr=lambda b: b.log_hr + i).assign_coords(replicate=np.arange(5) + 5 * i)
        out.append(dataset_to_npz_bytes(block))
    return out


def test_blocks_of_one_layout_are_read_stacked_as_each_is_read_alone():
    from sim.run.block_codec import BlockLayout

    blocks = _blocks_alike(3)
    layout = BlockLayout.of(blocks[0])
    assert layout.attrs == _block().attrs and layout.size == len(blocks[0])
    for names in (None, ("status",)):
        stacked = layout.stacked(np.stack([np.frombuffer(b, np.uint8) for b in blocks]), names)
        alone = [npz_parts(b, names)[1] for b in blocks]
        assert list(stacked) == list(alone[0])
        for item, (dims, values) in stacked.items():
            assert dims == alone[0][item][0] and values.dtype == alone[0][item][1].dtype
            np.testing.assert_array_equal(values, np.stack([parts[item][1] for parts in alone]))


def test_a_block_of_another_layout_or_a_corrupt_member_is_not_read_stacked():
    from sim.run.block_codec import BlockLayout

    blocks = _blocks_alike(2)
    layout = BlockLayout.of(blocks[0])
    rows = np.stack([np.frombuffer(b, np.uint8) for b in blocks])
    assert layout.stacked(rows) is not None
    corrupt = rows.copy()
    corrupt[1, 200] ^= 0xFF  # inside the first member's data
    assert layout.stacked(corrupt) is None
    other = dataset_to_npz_bytes(_block().assign_attrs(run_id="abd"))  # same length, other attributes
    assert len(other) == len(blocks[0])
    assert layout.stacked(np.stack([rows[0], np.frombuffer(other, np.uint8)])) is None
    assert layout.stacked(rows[:, :-1]) is None
    assert BlockLayout.of(_savez_bytes(_block())) is not None  # numpy's own archive too
