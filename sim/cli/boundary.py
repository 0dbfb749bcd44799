"""The command line's error boundary: every problem a user can fix becomes one line
``error: …`` on stderr and exit code 2, never a traceback.

* :class:`sim.errors.PsmsimError` (bad scenario, CSV, option, run folder): its lines.
* :class:`analysis.plan.options.PlanOptionError` (an option an engine refuses).
* Any operating-system error — a full disk, no permission, a read-only or missing folder —
  found in the exception's chain of causes and contexts (also behind joblib's
  ``ShutdownExecutorError``): the path and the cause (:func:`sim.errors.describe_os_error`).
  Files are written atomically (:func:`sim.run.atomic_files.atomic_write_bytes`), so such a failure
  leaves no half-written file and the earlier version of the file, if any, intact.

The output checks here run before any computing, so a path that cannot be written is refused
at once rather than after the work: :func:`check_output_file` (``--out FILE``, ``--json``) and
:func:`check_output_folder` (``run --out DIR``).
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import warnings
from pathlib import Path

import click

from sim.errors import PsmsimError, describe_os_error, find_os_error

#: Exit code for input problems (the same code click uses for usage errors).
INPUT_ERROR_EXIT_CODE = 2


class Commands(click.Group):
    """A click group that prints every error of the module docstring as one line per problem
    on stderr with exit code 2."""

    def invoke(self, ctx: click.Context):
        from analysis.plan.options import PlanOptionError

        quiet_worker_shutdown_noise()
        try:
            return super().invoke(ctx)
        except PsmsimError as err:
            for line in err.lines():
                click.echo(f"error: {line}", err=True)
            ctx.exit(INPUT_ERROR_EXIT_CODE)
        except PlanOptionError as err:
            click.echo(f"error: analysis option {err.field}: {err}", err=True)
            ctx.exit(INPUT_ERROR_EXIT_CODE)
        except Exception as err:
            os_error = find_os_error(err)
            if os_error is None:
                raise
            if isinstance(os_error, BrokenPipeError):  # e.g. `psmsim analyse c.csv | head`: quiet
                _silence_stdout()
                ctx.exit(1)
            message = describe_os_error(os_error)
            del os_error
        gc.collect()  # the exception's frames are freed here: an abandoned worker pool shuts down now
        click.echo(f"error: {message}", err=True)
        ctx.exit(INPUT_ERROR_EXIT_CODE)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again (the
    Python documentation's advice for SIGPIPE)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real stdout (e.g. under a test runner)
        pass
    finally:
        os.close(devnull)


def quiet_worker_shutdown_noise() -> None:
    """Keep a failed parallel run's error to its one line: when a block cannot be written
    (e.g. a full disk) the abandoned loky pool logs an "exception calling callback" traceback
    (``ShutdownExecutorError``) per pending block and joblib warns that "N tasks have been
    successfully executed but not used"; both are consequences, never the cause."""
    logger = logging.getLogger("concurrent.futures")
    if _drop_shutdown_noise not in logger.filters:
        logger.addFilter(_drop_shutdown_noise)
    for message in (r"\d+ tasks have been successfully executed", r"\d+ tasks which were still being processed"):
        warnings.filterwarnings("ignore", message=message, category=UserWarning)


def _drop_shutdown_noise(record: logging.LogRecord) -> bool:
    error = record.exc_info[1] if record.exc_info else None
    return type(error).__name__ != "ShutdownExecutorError"


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def check_output_file(path: Path, option: str, *, force: bool = False) -> None:
    """Refuse, before any work, a file that exists (unless ``force``), is a folder, or whose
    folder is missing or not writable."""
    path = Path(path)
    if path.is_dir():
        raise PsmsimError(f"{option} {path}: is a folder; give a file name")
    if path.exists() and not force:
        raise PsmsimError(f"{option} {path}: file exists; choose another name or pass --force to replace it")
    folder = path.parent
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise PsmsimError(f"{option} {path}: the folder {folder} {what}; create it first or choose another path")
    if not _writable(folder):
        raise PsmsimError(f"{option} {path}: the folder {folder} is not writable (permission denied or "
                          "read-only); choose another path")


def check_output_folder(folder: Path, option: str) -> None:
    """Refuse, before any work, a folder that is a file or cannot be created or written (its
    nearest existing parent is checked when it does not exist yet)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise PsmsimError(f"{option} {folder}: exists and is not a folder; choose another path")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise PsmsimError(f"{option} {folder}: {existing} is a file, not a folder; choose another path")
    if not _writable(existing):
        where = "" if existing == folder else f" (its parent {existing})"
        raise PsmsimError(f"{option} {folder}: the folder{where} is not writable (permission denied or "
                          "read-only); choose another path")


def refuse_overwrite(path: Path, force: bool, option: str) -> None:
    """:func:`check_output_file` with ``force`` as a flag of the command."""
    check_output_file(path, option, force=force)


def make_output_folder(folder: Path, option: str) -> None:
    """Check ``folder`` like :func:`check_output_folder` and create it (with its parents)."""
    check_output_folder(folder, option)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise PsmsimError(f"{option} {folder}: cannot create the folder ({err.strerror})") from None
