"""A block Dataset as NumPy ``.npz`` bytes and back (the block files of a run folder).

Every variable and coordinate is one ``.npy`` member; their dims and the Dataset's attributes
are one JSON member (``__dataset__``), so nothing is pickled. For blocks this small this is about
a hundred times faster to write and read than netCDF (:mod:`sim.run.store` holds the folder
around these bytes).
"""

from __future__ import annotations

import io
import json
import re
import zipfile

import numpy as np
import xarray as xr

_META = "__dataset__"


def dataset_to_npz_bytes(dataset: xr.Dataset) -> bytes:
    """A Dataset of plain numeric/string arrays as ``.npz`` bytes: every variable and
    coordinate as an array, their dims and the attributes as JSON (no pickling)."""
    arrays, meta = {}, {"data_vars": {}, "coords": {}, "attrs": dataset.attrs}
    for group, items in (("data_vars", dataset.data_vars.items()), ("coords", dataset.coords.items())):
        for name, variable in items:
            key = f"a{len(arrays)}"
            arrays[key] = np.asarray(variable.values)
            meta[group][name] = [key, list(variable.dims)]
    arrays[_META] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


#: The header ``numpy.save`` writes for a C-ordered array of a plain dtype (format 1.0).
_NPY_HEADER = re.compile(rb"\{'descr': '([<>|][a-zA-Z]\d+)', 'fortran_order': False, 'shape': \(([\d, ]*)\), \}\s*")


def _npy_array(raw: bytes) -> np.ndarray:
    """The array of one ``.npy`` member: its header parsed by a regular expression and its data
    copied out of the bytes (``numpy.lib.format.read_array`` spends most of a block's reading time
    evaluating the header as Python literals: 7.6 -> 3.3 ms per liu2021 block); anything but the
    plain format-1.0 header that :func:`dataset_to_npz_bytes` writes goes through numpy's reader."""
    if raw[:8] == b"\x93NUMPY\x01\x00":
        length = int.from_bytes(raw[8:10], "little")
        match = _NPY_HEADER.fullmatch(raw[10:10 + length])
        if match is not None and match.group(1)[1:2] not in (b"O", b"V"):
            shape = tuple(int(n) for n in match.group(2).split(b",") if n.strip())
            values = np.frombuffer(raw, dtype=np.dtype(match.group(1).decode()), offset=10 + length)
            return values.reshape(shape).copy()  # writable, as numpy's reader gives it
    return np.lib.format.read_array(io.BytesIO(raw), allow_pickle=False)


def npz_parts(data: bytes) -> tuple[dict, dict[str, tuple[list[str], np.ndarray]]]:
    """The attributes and the variables (name -> (dims, array); data variables first, then
    coordinates, as written) of :func:`dataset_to_npz_bytes`'s bytes, without building a Dataset."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        arrays = {name[:-4]: _npy_array(archive.read(name)) for name in archive.namelist() if name.endswith(".npy")}
    meta = json.loads(arrays[_META].tobytes().decode())
    variables = {(group, name): (dims, arrays[key])
                 for group in ("data_vars", "coords") for name, (key, dims) in meta[group].items()}
    return meta["attrs"], variables


def dataset_from_parts(attrs: dict, variables: dict) -> xr.Dataset:
    """The Dataset of :func:`npz_parts`' attributes and variables."""
    data_vars = {name: value for (group, name), value in variables.items() if group == "data_vars"}
    coords = {name: value for (group, name), value in variables.items() if group == "coords"}
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def dataset_from_npz_bytes(data: bytes) -> xr.Dataset:
    """Inverse of :func:`dataset_to_npz_bytes`."""
    return dataset_from_parts(*npz_parts(data))
