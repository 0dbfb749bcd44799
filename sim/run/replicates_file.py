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
:class:`ReplicatesWriter` takes the blocks as a reader hands them over (a run feeds it from
the same read of each group of blocks that its summary accumulates, so every block is decoded
once); :func:`write_replicates_streamed` reads them itself.
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
from sim.run.atomic_files import new_file_mode

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


class ReplicatesWriter:
    """``replicates.nc`` filled one block (or group of consecutive blocks) at a time.

    Use as a context manager: the file is created under a temporary name on the first
    :meth:`write` (the skeleton, then every data variable of that block at its full shape,
    chunked ``chunk_replicates`` replicates per chunk) and moved into place when the ``with``
    block ends without an exception; an exception removes it. Arguments as
    :func:`write_replicates_streamed`.
    """

    def __init__(self, path: Path | str, *, replicates: int, truths: Sequence[Mapping[str, Sequence[float]]],
                 grid: Sequence[Mapping[str, Any]], attrs: Mapping[str, Any], chunk_replicates: int):
        self.path = Path(path)
        self._skeleton_args = dict(replicates=replicates, truths=truths, grid=grid, attrs=attrs)
        self._chunk = int(chunk_replicates)
        self._tmp: Path | None = None
        self._file = None
        self._template: xr.Dataset | None = None
        self._targets: dict = {}

    def __enter__(self) -> "ReplicatesWriter":
        return self

    def _open(self, template: xr.Dataset) -> None:
        skeleton = replicates_skeleton(template, **self._skeleton_args)
        try:
            handle, tmp_name = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        except OSError as err:
            raise OSError(err.errno, err.strerror, str(self.path)) from err
        os.close(handle)
        self._tmp = Path(tmp_name)
        skeleton.to_netcdf(self._tmp, engine="h5netcdf")
        import h5netcdf

        self._file = h5netcdf.File(self._tmp, "a")
        for name, variable in template.data_vars.items():
            encoded = conventions.encode_cf_variable(variable.variable, name=name)
            var_attrs = dict(encoded.attrs)
            fill = var_attrs.pop("_FillValue", None)
            shape = tuple(skeleton.sizes[d] for d in encoded.dims)
            chunks = tuple(min(self._chunk, n) if d == "replicate" else (1 if d == "condition" else n)
                           for d, n in zip(encoded.dims, shape))
            target = self._file.create_variable(name, dimensions=encoded.dims, dtype=encoded.dtype,
                                                fillvalue=fill, chunks=chunks if all(chunks) else None)
            for key, value in var_attrs.items():
                target.attrs[key] = value
            direct = encoded.dtype.kind in "biuf" and hasattr(target, "_h5ds")
            if direct:
                # the h5py dataset itself: h5netcdf's __setitem__ hands plain numbers to it as
                # they are, after checks (enum types, the legacy API) costing 0.4 of 0.6 ms a block
                target = target._h5ds
            # a variable xarray writes as it is (no fill to put in, no dtype to change: every
            # number of a run's blocks) is written without encoding each block again
            plain = encoded.values is variable.variable.values and not variable.attrs and not variable.encoding
            self._targets[name] = (target, encoded.dims, variable.dtype if plain else None, direct)
        self._template = template

    def write(self, block: xr.Dataset) -> None:
        """Write ``block`` (one condition, consecutive replicates, the run's labels) into its slice."""
        if self._template is None:
            self._open(block)
        _check_labels(block, self._template)
        condition, replicate = block.condition.values, block.replicate.values
        start = int(replicate[0]) if replicate.size else 0
        if condition.size != 1 or not np.array_equal(replicate, np.arange(start, start + replicate.size)):
            raise ValueError("a block of replicates.nc holds one condition and consecutive replicates")
        rows = slice(start, start + replicate.size)
        for name, (target, dims, plain, direct) in self._targets.items():
            variable = block.variables[name]
            if plain is not None and variable.dtype == plain and not variable.attrs and not variable.encoding:
                values = variable.values
            else:
                values = conventions.encode_cf_variable(variable, name=name).values
            if direct and values.dtype == target.dtype and values.flags.c_contiguous \
                    and dims[0] == "condition" and values.shape[0] == 1:
                _write_slab(target, values, tuple(int(condition[0]) if d == "condition" else start
                                                  if d == "replicate" else 0 for d in dims))
                continue
            index = tuple(int(condition[0]) if d == "condition" else rows if d == "replicate" else slice(None)
                          for d in dims)
            target[index] = values[0] if dims[0] == "condition" else values

    def __exit__(self, kind, error, traceback) -> bool:
        try:
            if self._file is not None:
                self._file.close()
                self._file = None
            if error is None:
                if self._tmp is None:
                    raise ValueError("keys: a run has at least one block")
                os.chmod(self._tmp, new_file_mode())
                os.replace(self._tmp, self.path)
                return False
        except BaseException as err:
            self._discard()
            named = _named(err, self.path)
            if named is err:
                raise
            raise named from err
        self._discard()
        named = _named(error, self.path)
        if named is not error:  # an OSError of the writing, named after the file
            raise named from error
        return False

    def _discard(self) -> None:
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)


def _write_slab(target, values: np.ndarray, start: tuple[int, ...]) -> None:
    """``values`` (C-ordered, of the dataset's dtype) into ``target`` from ``start`` on: the
    write ``target[...] = values`` makes (the same hyperslab, the same bytes), through h5py's
    low-level calls (its ``__setitem__`` parses the selection again each time: 1.3 of 3 ms per
    group of liu2021 variables)."""
    space = target.id.get_space()
    space.select_hyperslab(start, values.shape)
    from h5py import h5s

    target.id.write(h5s.create_simple(values.shape), space, values)


def _named(error: BaseException, path: Path) -> BaseException:
    """An OSError without a file name, as one naming ``path`` (the CLI prints it as one line)."""
    if isinstance(error, OSError) and error.errno is not None and error.filename is None:
        return OSError(error.errno, error.strerror, str(path))
    return error


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
    """Write every block of a run into ``path`` (netCDF4), one block in memory at a time
    (:class:`ReplicatesWriter`).

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
    keys = list(keys)
    if not keys:
        raise ValueError("keys: a run has at least one block")
    chunk_replicates = int(chunk_replicates or max(int(key.size) for key in keys))
    with ReplicatesWriter(path, replicates=replicates, truths=truths, grid=grid, attrs=attrs,
                          chunk_replicates=chunk_replicates) as writer:
        for key in keys:
            writer.write(read_block(key))
    return Path(path)
