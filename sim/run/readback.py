"""A run's finished blocks read back while the rest of the run computes.

The parent of a run reads its blocks back a group of consecutive blocks at a time
(:func:`sim.run.store.group_keys`) to fill ``replicates.nc`` and accumulate the summary. It
need not wait for the last block: :class:`ReadBack` is told each block's key as the block
reaches the disk (:func:`sim.run.runner.compute_blocks`' ``on_finished``, from the parent's
main thread, which only hands the key over) and, in its own thread, reads and folds each group
as soon as all its blocks are there, in group order, so the fold sees the same groups in the
same order as a read-back after the computation and its results are identical to the last
bit. The main thread meanwhile keeps feeding the workers; on two cores the fold's CPU (about
0.007 ms per liu2021 replicate, replayed: 0.02 before a group's blocks were read at once,
:class:`sim.run.block_codec.BlockLayout`, and the paired differences folded in NumPy) is spent
beside theirs instead of after them.

The thread holds one group in memory at a time. An error in it (a block of another run, a
full disk) stops the folding and is raised by :meth:`ReadBack.close`, which also waits for
the thread, so nothing is left writing when the run's folder is unlocked.

:class:`GroupSpill` keeps a few variables of every group folded (the summary's interval
variables) in one temporary file, so the pass after the last block reads each group as one
small archive instead of decoding its hundred block files again.
"""

from __future__ import annotations

import os
import queue
import tempfile
import threading
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import xarray as xr

from sim.run.block_codec import dataset_from_npz_bytes, encode_block
from sim.run.store import BLOCK_FOLDER, BlockGroup, BlockKey, RunFolder


class ReadBack:
    """Folds the groups of a run, in order, as their blocks finish (see module).

    Parameters
    ----------
    folder : the run folder the blocks are read from.
    groups : every group of the run, in order (:func:`sim.run.store.group_keys`).
    fold : group Dataset -> None, called in the thread once per group, in order.
    """

    def __init__(self, folder: RunFolder, groups: Sequence[BlockGroup], fold: Callable[[xr.Dataset], None]):
        self._folder, self._groups, self._fold = folder, list(groups), fold
        self._keys: queue.SimpleQueue = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="psmsim-read-back", daemon=True)
        self._thread.start()

    def finished(self, key: BlockKey) -> None:
        """Block ``key`` is on disk (returns at once)."""
        self._keys.put(key)

    def close(self) -> None:
        """Wait until every group whose blocks finished is folded, then end the thread; raise
        its error, if any, or a ``RuntimeError`` if some group never completed."""
        self._keys.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        if self._next < len(self._groups):
            raise RuntimeError(f"read-back: group {self._next} of {len(self._groups)} never completed")

    def abort(self) -> None:
        """End the thread after the group it is folding, whatever is left (the run stopped)."""
        self._stop = True
        self._keys.put(None)
        self._thread.join()

    _next = 0
    _stop = False

    def _run(self) -> None:
        done: set[BlockKey] = set()
        while True:
            key = self._keys.get()
            if key is None or self._stop:
                return
            if self._error is not None:
                continue
            done.add(key)
            try:
                while (not self._stop and self._next < len(self._groups)
                       and all(k in done for k in self._groups[self._next].keys)):
                    group = self._groups[self._next]
                    self._fold(self._folder.read_blocks(group))
                    done.difference_update(group.keys)
                    self._next += 1
            except BaseException as exc:  # raised in the main thread by close()
                self._error = exc


class GroupSpill:
    """Variables ``names`` of each group added, with every coordinate and the attributes, kept
    in a temporary file of the run's ``blocks`` folder (removed by :meth:`close`; one a killed
    run left is removed when the folder is next opened) and read back, in the order added, by
    :meth:`groups`: each the Dataset ``RunFolder.read_blocks(group, names)`` gives, through the
    same codec (:mod:`sim.run.block_codec`), so a pass over them computes the same numbers.

    The summary's interval pass after the last block read every block file again for four of
    its 38 variables (~0.07 ms per liu2021 replicate, the run's serial tail); a group is now one
    read of 256 bytes per replicate. Memory holds one group at a time; disk holds these
    variables of every replicate (liu2021: 256 MB at a million replicates) until the summary is
    written.
    """

    def __init__(self, folder: Path | str, names: Iterable[str]):
        self._names = tuple(names)
        handle, name = tempfile.mkstemp(dir=Path(folder) / BLOCK_FOLDER, prefix=".spill.", suffix=".tmp")
        self._path = Path(name)
        self._file = os.fdopen(handle, "w+b")
        self._sizes: list[int] = []

    def add(self, group: xr.Dataset) -> None:
        """Append ``names`` of ``group`` (a Dataset of consecutive replicates)."""
        data = encode_block({name: (group[name].dims, group[name].values) for name in self._names},
                            {name: (v.dims, v.values) for name, v in group.coords.items()}, group.attrs)
        self._file.write(data)
        self._sizes.append(len(data))

    def groups(self) -> Iterator[xr.Dataset]:
        """The groups added, in order (one in memory at a time)."""
        self._file.flush()
        offset = 0
        for size in self._sizes:
            data = os.pread(self._file.fileno(), size, offset)
            if len(data) != size:
                raise OSError(f"{self._path}: {len(data)} of {size} bytes read back")
            offset += size
            yield dataset_from_npz_bytes(data)

    def close(self) -> None:
        """Remove the file (idempotent)."""
        if not self._file.closed:
            self._file.close()
        self._path.unlink(missing_ok=True)

    def __enter__(self) -> "GroupSpill":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
