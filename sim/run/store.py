"""The run folder on disk: identity, block files, resume, the combined Dataset.

Layout (schema: ``docs/results_schema.md``)::

    DIR/run.json                      identity of the run (written first; checked on resume)
    DIR/blocks/c0000_b000000.npz      one finished block (NumPy .npz of the block Dataset: a
                                      hundred times faster to write and read than netCDF for
                                      blocks this small, and no pickles)
    DIR/blocks/c0000_b000000.sha256   its checksum, written after the block: a block counts as
                                      finished only when both exist and agree
    DIR/replicates.nc                 all blocks combined
    DIR/summary.nc, DIR/summary.csv   performance measures

    DIR/run.lock                      held (fcntl.flock) by the one process writing the folder;
                                      holds its PID; commands that only read a finished
                                      folder hold it shared (:meth:`FolderLock.shared`)

Every file is written to a temporary name in the same folder and moved into place with
``os.replace`` (atomic on POSIX), so a killed run leaves either a whole file or none. A block
whose checksum is missing or wrong, that does not open, or that records another run's id or
size, is deleted and recomputed — never merged. A folder holding another run (different
identity) is refused unless ``force``; ``force`` removes only the files psmsim writes
(:func:`own_files`). One process at a time writes a folder (:class:`sim.run.folder_lock.FolderLock`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping

import numpy as np

from sim.errors import RunFolderError
from sim.run.block_codec import dataset_from_parts, encode_block, npz_parts
from sim.run.atomic_files import NETCDF_ENGINE, atomic_write_bytes, read_dataset, write_dataset
from sim.run.folder_lock import LOCK_FILE, FolderLock
from sim.run.group_files import read_stacked
from sim.run.identity import difference, run_id

if TYPE_CHECKING:
    import xarray as xr

    from sim.run.results import BlockParts

IDENTITY_FILE = "run.json"
BLOCK_FOLDER = "blocks"
REPLICATES_FILE = "replicates.nc"
SUMMARY_NC = "summary.nc"
SUMMARY_CSV = "summary.csv"
#: Derived files other commands write into a run folder (psmsim sensitivity, report, plot).
DERIVED_FILES = ("sensitivity.nc", "sensitivity.csv", "report.html", "report.md")
REPORT_FIGURES, FIGURE_FOLDER = "report_figures", "figures"
_OWN_TOP = {IDENTITY_FILE, LOCK_FILE, REPLICATES_FILE, SUMMARY_NC, SUMMARY_CSV, *DERIVED_FILES}
_OWN_IN = {
    BLOCK_FOLDER: re.compile(r"c\d{4,}_b\d{6,}\.(npz|sha256)|\..+\.tmp"),
    REPORT_FIGURES: re.compile(r"[\w-]+\.png|\..+\.tmp"),
    FIGURE_FOLDER: re.compile(r"(hr-distribution|pairs|love|zip|km)[\w.-]*\.(png|svg)|\..+\.tmp"),
}
_TMP = re.compile(r"\..+\.tmp")


@dataclass(frozen=True)
class BlockKey:
    """A block: replicates ``[start, start + size)`` of grid point ``condition``."""

    condition: int
    block: int
    start: int
    size: int

    @property
    def stem(self) -> str:
        return f"c{self.condition:04d}_b{self.block:06d}"


@dataclass(frozen=True)
class BlockGroup:
    """Consecutive blocks of one grid point, read as one Dataset (:meth:`RunFolder.read_blocks`):
    replicates ``[start, start + size)`` of ``condition``."""

    condition: int
    start: int
    size: int
    keys: tuple[BlockKey, ...]


#: Replicates per :class:`BlockGroup` when the parent reads a finished run (summaries,
#: ``replicates.nc``): per-Dataset costs (decoding into xarray, the summary states, h5py
#: writes) are paid per group, not per block; a group of liu2021 results is ~15 MiB.
GROUP_REPLICATES = 10_000


def group_keys(keys: Iterable[BlockKey], replicates: int = GROUP_REPLICATES) -> list[BlockGroup]:
    """``keys`` (in order) cut into groups of consecutive blocks of one condition holding at
    most ``replicates`` replicates each (at least one block)."""
    groups: list[BlockGroup] = []
    current: list[BlockKey] = []

    def close():
        if current:
            groups.append(BlockGroup(current[0].condition, current[0].start,
                                     sum(k.size for k in current), tuple(current)))
            current.clear()

    for key in keys:
        if current and (key.condition != current[0].condition or key.start != current[-1].start + current[-1].size
                        or sum(k.size for k in current) + key.size > replicates):
            close()
        current.append(key)
    close()
    return groups


def _walk(folder: Path) -> Iterator[tuple[Path, bool]]:
    """Every entry of a run folder as (path, written by psmsim); psmsim's sub-folders are
    looked into, any other folder is one foreign entry."""
    for entry in sorted(folder.iterdir()):
        name = entry.name
        if entry.is_dir() and not entry.is_symlink() and name in _OWN_IN:
            pattern = _OWN_IN[name]
            for inner in sorted(entry.iterdir()):
                own = inner.is_file() and not inner.is_symlink() and bool(pattern.fullmatch(inner.name))
                yield inner, own
        else:
            own = entry.is_file() and not entry.is_symlink() and (name in _OWN_TOP or bool(_TMP.fullmatch(name)))
            yield entry, own


def own_files(folder: Path) -> list[Path]:
    """The files of ``folder`` that psmsim writes (by name: ``run.json``, ``run.lock``,
    ``blocks/c*_b*.npz|.sha256``, results, summaries, reports, default figures, temporary
    files of an interrupted write)."""
    return [path for path, own in _walk(Path(folder)) if own] if Path(folder).is_dir() else []


def foreign_files(folder: Path) -> list[Path]:
    """The entries of ``folder`` that psmsim did not write (never removed by psmsim)."""
    return [path for path, own in _walk(Path(folder)) if not own] if Path(folder).is_dir() else []


def _listing(folder: Path, paths: list[Path], shown: int = 3) -> str:
    names = [str(path.relative_to(folder)) for path in paths[:shown]]
    more = f" and {len(paths) - shown} more" if len(paths) > shown else ""
    return ", ".join(names) + more


def _unlink(path: str) -> None:
    """Remove ``path`` if it exists."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _block_paths(folder: Path | str, key: BlockKey) -> tuple[Path, Path]:
    blocks = Path(folder) / BLOCK_FOLDER
    return blocks / f"{key.stem}.npz", blocks / f"{key.stem}.sha256"


@dataclass(frozen=True)
class BlockWriter:
    """Writes finished blocks of one run into its folder: data first, then the checksum line
    ``<sha256> <run id> <replicates>`` (which marks the block done). The block's attributes
    record the run id. Only the process holding the folder's lock hands one out
    (:meth:`RunFolder.block_writer`). A block is a Dataset or its
    :class:`sim.run.results.BlockParts`, encoded alike (:func:`sim.run.block_codec.encode_block`).
    Neither file is flushed to disk before it takes its name (``durable=False``): a block
    counts as finished only while its bytes match its checksum line (:meth:`RunFolder.is_finished`),
    so one a power cut tore is recomputed."""

    folder: str
    run_id: str

    def __call__(self, key: BlockKey, block: "xr.Dataset | BlockParts") -> int:
        data_path, sum_path = _block_paths(self.folder, key)
        from sim.run.results import BlockParts

        if isinstance(block, BlockParts):
            data_vars, coords = block.data_vars, block.coords
        else:  # a Dataset
            data_vars = {name: (v.dims, v.values) for name, v in block.data_vars.items()}
            coords = {name: (v.dims, v.values) for name, v in block.coords.items()}
        data = encode_block(data_vars, coords, {**block.attrs, "run_id": self.run_id})
        atomic_write_bytes(data_path, data, durable=False)
        checksum = f"{hashlib.sha256(data).hexdigest()} {self.run_id} {key.size}\n".encode()
        atomic_write_bytes(sum_path, checksum, durable=False)
        return len(data)


class RunFolder:
    """A run folder, locked for one writer: create or resume it, write and check blocks.

    Parameters
    ----------
    path : folder of the run (created if absent).
    identity : JSON-serialisable mapping that names the run (:mod:`sim.run.identity`). Equal
        identity → resume; another identity → :class:`RunFolderError` unless ``force``.
    force : start over in a folder that holds another run, or use a folder that holds files
        psmsim did not write. Only psmsim's own files (:func:`own_files`) are removed; every
        other file is left as it is.

    The folder is locked (``fcntl.flock`` on ``run.lock``, which holds the writer's PID) from
    the start until :meth:`close` — use it as a context manager. The kernel releases the lock
    when the process ends, however it ends, so a killed run never blocks its resume; a second
    run on a locked folder is refused, with or without ``force``.
    """

    def __init__(self, path: Path | str, identity: Mapping[str, Any], *, force: bool = False):
        self.path = Path(path)
        self.identity = json.loads(json.dumps(identity, sort_keys=True))
        self.run_id = run_id(self.identity)
        self._lock: FolderLock | None = None
        self._open(force=force)

    def __enter__(self) -> "RunFolder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Remove the block writers' temporary files, then release the folder's lock
        (idempotent): a run stopped by an error kills its workers, and one killed mid-write
        leaves its ``.*.tmp`` behind (nothing else writes here while the lock is held)."""
        if self._lock is not None:
            self._remove_temporaries()
            self._lock.release()
            self._lock = None

    def _remove_temporaries(self) -> None:
        for stale in (self.path / BLOCK_FOLDER).glob(".*.tmp"):
            stale.unlink(missing_ok=True)

    # -- identity -------------------------------------------------------------------------
    def _open(self, *, force: bool) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise RunFolderError(f"--out {self.path}: exists and is not a folder; choose another path")
        identity_path = self.path / IDENTITY_FILE
        if self.path.is_dir() and not identity_path.exists():
            foreign = foreign_files(self.path)
            if foreign and not force:
                raise RunFolderError(
                    f"--out {self.path}: folder is not empty and is not a psmsim run (it holds "
                    f"{_listing(self.path, foreign)}); choose an empty or new folder, or pass "
                    "--force to use it (only psmsim's own files are ever removed)"
                )
        self._lock = FolderLock.acquire(self.path)
        try:
            self._check_identity(identity_path, force=force)
        except BaseException:
            self.close()
            raise

    def _check_identity(self, identity_path: Path, *, force: bool) -> None:
        if identity_path.exists():
            try:
                existing = json.loads(identity_path.read_text())
            except (OSError, ValueError):
                existing = None
            if existing != self.identity:
                if not force:
                    raise RunFolderError(
                        f"--out {self.path}: holds another run (different "
                        f"{difference(existing, self.identity)}); choose a new folder or pass "
                        "--force to replace it"
                    )
                self._clear()
        elif force:
            self._clear()
        (self.path / BLOCK_FOLDER).mkdir(exist_ok=True)
        self._remove_temporaries()  # left by a run killed outright
        if not identity_path.exists():
            data = json.dumps(self.identity, indent=2, sort_keys=True).encode()
            atomic_write_bytes(identity_path, data)

    def _clear(self) -> None:
        """Remove this folder's psmsim files (blocks, identity, results, reports) before
        starting over; files psmsim did not write stay."""
        for path in own_files(self.path):
            if path.name != LOCK_FILE:
                path.unlink(missing_ok=True)
        for name in (REPORT_FIGURES, FIGURE_FOLDER):
            folder = self.path / name
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()

    # -- blocks ---------------------------------------------------------------------------
    def _block_paths(self, key: BlockKey) -> tuple[Path, Path]:
        return _block_paths(self.path, key)

    def write_block(self, key: BlockKey, dataset: xr.Dataset) -> int:
        """Write one finished block (:class:`BlockWriter`); returns the bytes written."""
        if self._lock is None:
            raise RunFolderError(f"{self.path}: the run folder was closed; open it again to write")
        return self.block_writer()(key, dataset)

    def block_writer(self) -> "BlockWriter":
        """A small picklable writer of this run's blocks, for workers that write their own
        blocks into the (shared) run folder while this process holds the lock."""
        return BlockWriter(str(self.path), self.run_id)

    def is_finished(self, key: BlockKey) -> bool:
        """True when the block's data and checksum exist and agree, and the block belongs to
        this run (same run id, same number of replicates); any other block is deleted so it is
        recomputed, never merged. (A fresh run asks this of each of its blocks: a missing one
        costs one failed open and one failed unlink, without pathlib: 45 -> 9 us.)"""
        blocks = os.path.join(self.path, BLOCK_FOLDER)
        data_path, sum_path = os.path.join(blocks, f"{key.stem}.npz"), os.path.join(blocks, f"{key.stem}.sha256")
        try:
            with open(sum_path) as stream:
                checksum = stream.read()
        except FileNotFoundError:
            _unlink(data_path)
            return False
        try:
            with open(data_path, "rb") as stream:
                data = stream.read()
        except FileNotFoundError:
            _unlink(sum_path)
            return False
        if checksum.strip() != f"{hashlib.sha256(data).hexdigest()} {self.run_id} {key.size}":
            self._discard(key)
            return False
        return True

    def _discard(self, key: BlockKey) -> None:
        for path in self._block_paths(key):
            path.unlink(missing_ok=True)

    def _read_parts(self, key: BlockKey, names: Iterable[str] | None = None, *, copy: bool = True
                    ) -> tuple[dict, dict]:
        data_path, _ = self._block_paths(key)
        attrs, variables = npz_parts(data_path.read_bytes(), names, copy=copy)
        replicates = variables[("coords", "replicate")][1]
        if attrs.pop("run_id", None) != self.run_id or len(replicates) != key.size or int(replicates[0]) != key.start:
            raise RunFolderError(
                f"{data_path}: belongs to another run; delete it and rerun the same command to "
                "recompute it"
            )
        return attrs, variables

    def read_block(self, key: BlockKey) -> xr.Dataset:
        """A finished block; :class:`RunFolderError` if it is not this run's (never merged)."""
        return dataset_from_parts(*self._read_parts(key))

    def read_blocks(self, group: BlockGroup, names: Iterable[str] | None = None) -> xr.Dataset:
        """The blocks of ``group`` as one Dataset: every variable with a ``replicate`` dim
        concatenated along it (numpy, in block order), the others and the attributes from the
        first block -- the Dataset :func:`sim.run.results.combine_blocks` gives for them.
        ``names``: only these data variables (and every coordinate) are read."""
        return dataset_from_parts(*self.read_blocks_parts(group, names))

    def read_blocks_parts(self, group: BlockGroup, names: Iterable[str] | None = None) -> tuple[dict, dict]:
        """:meth:`read_blocks` as the attributes and variables ((group, name) -> (dims, array),
        as :func:`sim.run.block_codec.npz_parts` gives them) of its Dataset, without building it.

        Blocks of one layout (every full block of a run: :class:`~sim.run.block_codec.BlockLayout`)
        are read into one buffer and each variable taken from it in one copy; a group holding
        any other block, or one failing a check, is read block by block, so its errors are the
        same (a block of another run, a bad CRC-32)."""
        names = None if names is None else tuple(names)
        stacked = self._read_stacked(group, names)
        if stacked is not None:
            return stacked
        if len(group.keys) == 1:
            return self._read_parts(group.keys[0], names)
        # views of the files' bytes (no copy per block): the concatenation is the one copy
        parts = [self._read_parts(key, names, copy=False) for key in group.keys]
        attrs, first = parts[0]
        variables = {}
        for item, (dims, values) in first.items():
            if "replicate" in dims:
                values = np.concatenate([part[1][item][1] for part in parts], axis=dims.index("replicate"))
            else:
                values = values.copy()
            variables[item] = (dims, values)
        return attrs, variables

    def _read_stacked(self, group: BlockGroup, names: tuple[str, ...] | None) -> tuple[dict, dict] | None:
        """:meth:`read_blocks_parts` of a group whose blocks all have the layout of its first,
        or None (:func:`sim.run.group_files.read_stacked`)."""
        return read_stacked(os.path.join(self.path, BLOCK_FOLDER), self.run_id, group.keys, names)

    def pending(self, keys: Iterable[BlockKey]) -> Iterator[BlockKey]:
        """The blocks still to compute (missing, failing their checksum or of another run),
        lazily in the order of ``keys``."""
        return (key for key in keys if not self.is_finished(key))

    def count_checksums(self) -> int:
        """Replicates in the blocks that have a checksum file (unverified: an estimate of the
        work already done, for the run's time estimate)."""
        total = 0
        for path in (self.path / BLOCK_FOLDER).glob("*.sha256"):
            try:
                parts = path.read_text().split()
                total += int(parts[2]) if len(parts) == 3 and parts[1] == self.run_id else 0
            except (OSError, ValueError):
                continue
        return total

    def discard_blocks(self) -> None:
        """Remove the block files (a summary-only run, once its summary is written); the
        ``blocks`` folder goes too unless it holds files psmsim did not write."""
        blocks = self.path / BLOCK_FOLDER
        for path in own_files(self.path):
            if path.parent == blocks:
                path.unlink(missing_ok=True)
        if blocks.is_dir() and not any(blocks.iterdir()):
            blocks.rmdir()

    # -- results --------------------------------------------------------------------------
    def write_replicates(self, dataset: xr.Dataset) -> Path:
        path = self.path / REPLICATES_FILE
        write_dataset(path, dataset)
        return path

    def write_summary(self, summary: xr.Dataset, csv_text: str) -> tuple[Path, Path]:
        return write_summary(self.path, summary, csv_text)


def write_summary(run_dir: Path | str, summary: xr.Dataset, csv_text: str) -> tuple[Path, Path]:
    """Write ``summary.nc`` and ``summary.csv`` of a run folder (derived files: rewritten)."""
    nc_path, csv_path = Path(run_dir) / SUMMARY_NC, Path(run_dir) / SUMMARY_CSV
    write_dataset(nc_path, summary)
    atomic_write_bytes(csv_path, csv_text.encode())
    return nc_path, csv_path


def open_replicates(run_dir: Path | str, *, lazy: bool = False) -> xr.Dataset:
    """Load ``replicates.nc`` of a finished run; a clear error when it is not one.

    ``lazy=True`` opens it without reading the arrays (each read on access; close the
    Dataset when done), for passes over a file larger than memory."""
    path = Path(run_dir) / REPLICATES_FILE
    if not path.exists():
        raise RunFolderError(
            f"{run_dir}: no {REPLICATES_FILE} here; run `psmsim run SCENARIO --out {run_dir}` "
            "first (an interrupted run resumes with the same command)"
        )
    try:
        import xarray as xr

        return xr.open_dataset(path, engine=NETCDF_ENGINE) if lazy else read_dataset(path)
    except (OSError, ValueError) as exc:
        raise RunFolderError(f"{path}: cannot be read as netCDF ({exc}); rerun to rebuild it") from None
