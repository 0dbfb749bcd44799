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

Every file is written to a temporary name in the same folder and moved into place with
``os.replace`` (atomic on POSIX), so a killed run leaves either a whole file or none. A block
whose checksum is missing or wrong, or that does not open, is deleted and recomputed — never
merged. A folder holding another run (different identity) is refused unless ``force``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import xarray as xr

from sim.errors import RunFolderError

IDENTITY_FILE = "run.json"
BLOCK_FOLDER = "blocks"
REPLICATES_FILE = "replicates.nc"
SUMMARY_NC = "summary.nc"
SUMMARY_CSV = "summary.csv"
NETCDF_ENGINE = "h5netcdf"


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


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``.

    The file gets the permissions a plain ``open(path, "w")`` would (0666 less the umask), not
    the temporary file's 0600. An operating-system error (no space, no permission, no such
    folder) leaves no temporary file and is re-raised as an ``OSError`` naming ``path`` itself
    (not the temporary name), which the CLI prints as one line.
    """
    path = Path(path)
    try:
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise OSError(err.errno, err.strerror, str(path)) from err
    try:
        with os.fdopen(handle, "wb") as stream:
            os.fchmod(stream.fileno(), 0o666 & ~_umask())
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno is not None:
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise


def _umask() -> int:
    """The process's umask (read without changing it where /proc allows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def dataset_to_bytes(dataset: xr.Dataset) -> bytes:
    """The netCDF4 (HDF5) bytes of ``dataset``."""
    return bytes(dataset.to_netcdf(path=None, engine=NETCDF_ENGINE))


def write_dataset(path: Path, dataset: xr.Dataset) -> str:
    """Write ``dataset`` atomically to ``path``; return the sha256 of the bytes written."""
    data = dataset_to_bytes(dataset)
    atomic_write_bytes(Path(path), data)
    return hashlib.sha256(data).hexdigest()


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


def dataset_from_npz_bytes(data: bytes) -> xr.Dataset:
    """Inverse of :func:`dataset_to_npz_bytes`."""
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        meta = json.loads(archive[_META].tobytes().decode())
        data_vars = {name: (dims, archive[key]) for name, (key, dims) in meta["data_vars"].items()}
        coords = {name: (dims, archive[key]) for name, (key, dims) in meta["coords"].items()}
    return xr.Dataset(data_vars, coords=coords, attrs=meta["attrs"])


def read_dataset(path: Path) -> xr.Dataset:
    """Load a whole netCDF file into memory (no file handle stays open)."""
    return xr.load_dataset(path, engine=NETCDF_ENGINE)


class RunFolder:
    """A run folder: create or resume it, write and list blocks, combine them.

    Parameters
    ----------
    path : folder of the run (created if absent).
    identity : JSON-serialisable mapping that names the run (scenario hash, seed, block
        size, replicates, methods, grid, format version). Equal identity → resume; another
        identity → :class:`RunFolderError` unless ``force``.
    force : start over in a folder that holds another run (its blocks and results are
        removed; nothing outside the run's own files is touched).
    """

    def __init__(self, path: Path | str, identity: Mapping[str, Any], *, force: bool = False):
        self.path = Path(path)
        self.identity = json.loads(json.dumps(identity, sort_keys=True))
        self._open(force=force)

    # -- identity -------------------------------------------------------------------------
    def _open(self, *, force: bool) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise RunFolderError(f"--out {self.path}: exists and is not a folder; choose another path")
        identity_path = self.path / IDENTITY_FILE
        if identity_path.exists():
            try:
                existing = json.loads(identity_path.read_text())
            except (OSError, json.JSONDecodeError):
                existing = None
            if existing != self.identity:
                if not force:
                    raise RunFolderError(
                        f"--out {self.path}: holds another run (different "
                        f"{self._difference(existing)}); choose a new folder or pass --force "
                        "to replace it"
                    )
                self._clear()
        elif self.path.exists() and any(self.path.iterdir()):
            if not force:
                raise RunFolderError(
                    f"--out {self.path}: folder is not empty and is not a psmsim run; choose an "
                    "empty or new folder, or pass --force to use it"
                )
            self._clear()
        (self.path / BLOCK_FOLDER).mkdir(parents=True, exist_ok=True)
        for stale in (self.path / BLOCK_FOLDER).glob(".*.tmp"):  # left by a killed run
            stale.unlink(missing_ok=True)
        if not identity_path.exists():
            data = json.dumps(self.identity, indent=2, sort_keys=True).encode()
            atomic_write_bytes(identity_path, data)

    def _difference(self, existing: Mapping[str, Any] | None) -> str:
        if not isinstance(existing, dict):
            return "identity file unreadable"
        keys = sorted(k for k in set(existing) | set(self.identity) if existing.get(k) != self.identity.get(k))
        return ", ".join(keys) if keys else "identity"

    def _clear(self) -> None:
        """Remove this run's own files (blocks, identity, results) before starting over."""
        shutil.rmtree(self.path / BLOCK_FOLDER, ignore_errors=True)
        for name in (IDENTITY_FILE, REPLICATES_FILE, SUMMARY_NC, SUMMARY_CSV):
            (self.path / name).unlink(missing_ok=True)

    # -- blocks ---------------------------------------------------------------------------
    def _block_paths(self, key: BlockKey) -> tuple[Path, Path]:
        folder = self.path / BLOCK_FOLDER
        return folder / f"{key.stem}.npz", folder / f"{key.stem}.sha256"

    def write_block(self, key: BlockKey, dataset: xr.Dataset) -> None:
        """Write one finished block: data first, then its checksum (which marks it done)."""
        data_path, sum_path = self._block_paths(key)
        data = dataset_to_npz_bytes(dataset)
        atomic_write_bytes(data_path, data)
        atomic_write_bytes(sum_path, hashlib.sha256(data).hexdigest().encode())

    def is_finished(self, key: BlockKey) -> bool:
        """True when the block's data and checksum exist and agree; a block that fails the
        check is deleted so it is recomputed."""
        data_path, sum_path = self._block_paths(key)
        if not (data_path.exists() and sum_path.exists()):
            self._discard(key)
            return False
        digest = hashlib.sha256(data_path.read_bytes()).hexdigest()
        if digest != sum_path.read_text().strip():
            self._discard(key)
            return False
        return True

    def _discard(self, key: BlockKey) -> None:
        for path in self._block_paths(key):
            path.unlink(missing_ok=True)

    def read_block(self, key: BlockKey) -> xr.Dataset:
        data_path, _ = self._block_paths(key)
        return dataset_from_npz_bytes(data_path.read_bytes())

    def pending(self, keys: Iterable[BlockKey]) -> list[BlockKey]:
        """The blocks still to compute (missing or failing their checksum)."""
        return [key for key in keys if not self.is_finished(key)]

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


def open_replicates(run_dir: Path | str) -> xr.Dataset:
    """Load ``replicates.nc`` of a finished run; a clear error when it is not one."""
    path = Path(run_dir) / REPLICATES_FILE
    if not path.exists():
        raise RunFolderError(
            f"{run_dir}: no {REPLICATES_FILE} here; run `psmsim run SCENARIO --out {run_dir}` "
            "first (an interrupted run resumes with the same command)"
        )
    try:
        return read_dataset(path)
    except (OSError, ValueError) as exc:
        raise RunFolderError(f"{path}: cannot be read as netCDF ({exc}); rerun to rebuild it") from None
