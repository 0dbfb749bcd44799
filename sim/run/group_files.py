"""A group of block files read as one: the blocks of a run share one layout (the same zip
records, ``.npy`` headers and JSON member but for their data), so the group is read into one
buffer and each variable taken from it in one copy (:meth:`sim.run.store.RunFolder.read_blocks`)."""

from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np

from sim.run.block_codec import BlockLayout


def read_stacked(blocks: str, run_id: str, keys: Sequence, names: tuple[str, ...] | None) -> tuple[dict, dict] | None:
    """The attributes and variables ((group, name) -> (dims, array)) of the blocks ``keys``
    (:class:`sim.run.store.BlockKey`, in the folder ``blocks``) as one Dataset's, every
    variable with a ``replicate`` dim concatenated along it, when every block has the layout
    of the first and is run ``run_id``'s (one read of each file into one buffer, no parsing
    per block: :class:`sim.run.block_codec.BlockLayout`); None for any other group (the caller
    reads it block by block). ``names``: only these data variables."""
    paths = [os.path.join(blocks, f"{key.stem}.npz") for key in keys]  # (pathlib: 1.3 ms a group)
    try:
        with open(paths[0], "rb") as stream:
            layout = BlockLayout.of(stream.read())
    except OSError:
        return None
    if layout is None or layout.attrs.get("run_id") != run_id:
        return None
    buffer = np.empty((len(paths), layout.size), dtype=np.uint8)
    for row, path in zip(buffer, paths):
        try:
            with open(path, "rb", buffering=0) as stream:
                if os.fstat(stream.fileno()).st_size != layout.size or stream.readinto(row) != layout.size:
                    return None
        except OSError:
            return None
    stacked = layout.stacked(buffer, names)
    if stacked is None:
        return None
    replicates = stacked[("coords", "replicate")][1]
    if (replicates.shape[1] != np.array([key.size for key in keys])).any() \
            or (replicates[:, 0] != np.array([key.start for key in keys])).any():
        return None
    variables = {}
    for item, (dims, values) in stacked.items():
        if "replicate" not in dims:
            values = values[0].copy()
        else:
            axis = dims.index("replicate")
            shape = values.shape[1:]
            if math.prod(shape[:axis]) == 1:  # blocks lie one after another in memory
                values = values.reshape(*shape[:axis], len(values) * shape[axis], *shape[axis + 1:])
            else:
                values = np.concatenate(list(values), axis=axis)
        variables[item] = (dims, values)
    attrs = dict(layout.attrs)
    attrs.pop("run_id")
    return attrs, variables
