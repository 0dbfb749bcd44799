"""The lock of a run folder: ``DIR/run.lock``, an ``fcntl.flock`` held exclusively by the one
process writing the folder (``psmsim run``, ``sweep``, ``samplesize``, ``summarise``; the file
holds its PID) and shared by the commands that only read a finished folder (``psmsim report``,
``plot``, ``sensitivity``), so a reader never sees a half-written run and a writer never starts
under a reader. Used by :class:`sim.run.store.RunFolder`.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path
from typing import IO

from sim.errors import RunFolderError

__all__ = ["LOCK_FILE", "FolderLock"]

LOCK_FILE = "run.lock"
_BUSY = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)


class FolderLock:
    """An exclusive ``fcntl.flock`` on ``DIR/run.lock``, which holds the holder's PID.

    The lock belongs to the open file, not to the file name: the kernel drops it when the
    holder closes it or ends in any way (SIGKILL included), so there is never a stale lock to
    remove by hand. The descriptor is not inherited by workers (PEP 446), so a worker that
    outlives its parent cannot keep the folder locked. Commands that only read a folder take
    the same lock shared (:meth:`shared`).
    """

    def __init__(self, path: Path, stream: IO[str] | None):
        self.path = path
        self._stream: IO[str] | None = stream

    @classmethod
    def acquire(cls, folder: Path | str, *, option: str = "--out", create: bool = True) -> "FolderLock":
        """Lock ``folder`` (created first when ``create``), or :class:`RunFolderError` naming
        the folder and the PID of the process holding it."""
        folder = Path(folder)
        try:
            if create:
                folder.mkdir(parents=True, exist_ok=True)
            stream = open(folder / LOCK_FILE, "a+", encoding="ascii")
        except OSError as err:
            raise RunFolderError(
                f"{option} {folder}: cannot create the run folder or its lock file "
                f"({err.strerror}); choose a folder you can write to"
            ) from None
        try:
            fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            stream.seek(0)
            holder = stream.read().strip() or "unknown"
            readers_only = _readers_only(stream)
            stream.close()
            if err.errno not in _BUSY:
                raise RunFolderError(f"{option} {folder}: cannot lock {LOCK_FILE} ({err.strerror})") from None
            if readers_only:
                raise RunFolderError(
                    f"{option} {folder}: psmsim report, plot or sensitivity is reading this folder; "
                    "wait for it to finish, then rerun this command"
                ) from None
            raise RunFolderError(
                f"{option} {folder}: another psmsim run (PID {holder}) is writing to this "
                "folder; wait for it to finish or choose another folder"
            ) from None
        stream.seek(0)
        stream.truncate()
        stream.write(f"{os.getpid()}\n")
        stream.flush()
        return cls(folder / LOCK_FILE, stream)

    @classmethod
    def refuse_if_held(cls, folder: Path | str, *, option: str = "--out") -> None:
        """:class:`RunFolderError` (as :meth:`acquire` gives) when another process holds
        ``folder``'s lock; creates nothing. For a writer that checks before a long setup and
        takes the lock after it."""
        if (Path(folder) / LOCK_FILE).is_file():
            cls.acquire(folder, option=option, create=False).release()

    @classmethod
    def shared(cls, folder: Path | str, *, command: str, option: str = "RUN_DIR") -> "FolderLock":
        """A shared ``flock`` on ``DIR/run.lock`` for a command that reads a finished run
        (``psmsim report``, ``plot``, ``sensitivity``), held while it reads: refused, with
        :class:`RunFolderError` naming the folder and the writer's PID, while a run, sweep,
        sample-size search or summarise holds the exclusive lock; and while it is held a
        writer is refused in turn, so the reader never sees a half-written folder. Readers do
        not exclude one another. A folder without ``run.lock`` (never written by a psmsim run,
        or missing) is not locked and nothing is created in it."""
        path = Path(folder) / LOCK_FILE
        try:
            stream = open(path, "r", encoding="ascii")
        except OSError:
            return cls(path, None)
        try:
            fcntl.flock(stream.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as err:
            holder = stream.read().strip() or "unknown"
            stream.close()
            if err.errno not in _BUSY:
                raise RunFolderError(f"{option} {folder}: cannot lock {LOCK_FILE} ({err.strerror})") from None
            raise RunFolderError(
                f"{option} {folder}: a psmsim run (PID {holder}) is writing this folder; wait for "
                f"it to finish (or stop it), then rerun {command}"
            ) from None
        return cls(path, stream)

    def release(self) -> None:
        if self._stream is not None:
            self._stream.close()  # closing the file drops the flock
            self._stream = None

    def __enter__(self) -> "FolderLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _readers_only(stream: IO[str]) -> bool:
    """True when the lock on ``stream``'s file is held only shared (by readers): a shared
    lock is then granted (and dropped again at once)."""
    try:
        fcntl.flock(stream.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return False
    fcntl.flock(stream.fileno(), fcntl.LOCK_UN)
    return True
