"""``replicates.nc`` written block by block: the parent holds one block, never the whole run.

The file is the netCDF4 file ``xarray.Dataset.to_netcdf(engine="h5netcdf")`` writes for all
blocks combined (:func:`sim.run.results.combine_blocks`), but it is filled in place: first the
coordinates, the true estimands, the grid and the attributes (written by xarray), then every
data variable is created at its full shape — chunked one block of replicates per chunk — and
each block is written into its slice as it is read. Each variable is encoded as xarray
encodes it (:func:`xarray.conventions.encode_cf_variable`: NaN fill values, dtypes), so
``xarray.open_dataset`` gives a Dataset identical to the combined one (tested), and opened
with ``chunks={}`` it is read lazily, chunk by chunk.

The file is written under a temporary name and moved into place at the end (``os.replace``),
so an interrupted write leaves the previous file or none, never a partial one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import xarray as xr
from xarray import conventions

from sim.run.results import annotate_replicates
from sim.run.store import new_file_mode

#: Dims a block holds in full (every block has the same labels along them).
_LABEL_DIMS = ("method", "cohort", "endpoint", "covariate")


def replicates_skeleton(
    template: xr.Dataset,
    *,
    replicates: int,
    truths: Sequence[Mapping[str, Sequence[float]]],
    grid: Sequence[Mapping[str, Any]],
    attrs: Mapping[str, Any],
) -> xr.Dataset:
    """The combined Dataset of a run without its per-replicate variables: the coordinates
    (labels from ``template``, a block of the run), the truths, the grid and the attributes —
    what a summary needs besides the blocks. Arguments as :func:`write_replicates_streamed`."""
    coords = {"condition": np.arange(len(truths)), "replicate": np.arange(replicates)}
    for dim in _LABEL_DIMS:
        if dim in template.coords:
            coords[dim] = template.coords[dim].values
    return annotate_replicates(xr.Dataset(coords=coords), truths=truths, grid=grid, attrs=attrs)


def _check_labels(block: xr.Dataset, template: xr.Dataset) -> None:
    for dim in _LABEL_DIMS:
        if dim in template.coords and not np.array_equal(block.coords[dim].values, template.coords[dim].values):
            raise ValueError(f"block labels along {dim!r} differ from the first block's; blocks cannot be combined")


def write_replicates_streamed(
    path: Path | str,
    keys: Sequence[Any],
    read_block: Callable[[Any], xr.Dataset],
    *,
    replicates: int,
    truths: Sequence[Mapping[str, Sequence[float]]],
    grid: Sequence[Mapping[str, Any]],
    attrs: Mapping[str, Any],
    chunk_replicates: int | None = None,
) -> Path:
    """Write every block of a run into ``path`` (netCDF4), one block in memory at a time.

    Parameters
    ----------
    path : the file to write (replaced atomically at the end).
    keys : the run's blocks (:class:`sim.run.store.BlockKey`: ``condition``, ``start``,
        ``size``), covering replicates ``0..replicates-1`` of every condition.
    read_block : key → the block's Dataset (dims ``condition`` of length 1, ``replicate`` of
        length ``key.size``, then ``method``, ``cohort``, ``endpoint``, ``covariate``).
    replicates : replicates per condition.
    truths, grid, attrs : as :func:`sim.run.results.combine_blocks`.
    chunk_replicates : replicates per netCDF chunk (default: the largest key's size; the run's
        block size when ``keys`` are :class:`sim.run.store.BlockGroup` s of several blocks).

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    keys = list(keys)
    if not keys:
        raise ValueError("keys: a run has at least one block")
    template = read_block(keys[0])
    chunk_replicates = int(chunk_replicates or max(int(key.size) for key in keys))
    skeleton = replicates_skeleton(template, replicates=replicates, truths=truths, grid=grid, attrs=attrs)
    try:
        handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise OSError(err.errno, err.strerror, str(path)) from err
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        skeleton.to_netcdf(tmp, engine="h5netcdf")
        import h5netcdf

        with h5netcdf.File(tmp, "a") as file:
            targets = {}
            for name, variable in template.data_vars.items():
                encoded = conventions.encode_cf_variable(variable.variable, name=name)
                var_attrs = dict(encoded.attrs)
                fill = var_attrs.pop("_FillValue", None)
                shape = tuple(skeleton.sizes[d] for d in encoded.dims)
                chunks = tuple(min(chunk_replicates, n) if d == "replicate" else (1 if d == "condition" else n)
                               for d, n in zip(encoded.dims, shape))
                target = file.create_variable(name, dimensions=encoded.dims, dtype=encoded.dtype,
                                              fillvalue=fill, chunks=chunks if all(chunks) else None)
                for key, value in var_attrs.items():
                    target.attrs[key] = value
                targets[name] = (target, encoded.dims)
            for key in keys:
                block = template if key is keys[0] else read_block(key)
                _check_labels(block, template)
                rows = slice(int(key.start), int(key.start) + int(key.size))
                for name, (target, dims) in targets.items():
                    values = conventions.encode_cf_variable(block[name].variable, name=name).values
                    index = tuple(int(key.condition) if d == "condition" else rows if d == "replicate" else slice(None)
                                  for d in dims)
                    target[index] = values[0] if dims[0] == "condition" else values
                del block
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno is not None and err.filename is None:
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise
    return path
