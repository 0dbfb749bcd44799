"""The few exception types psmsim raises at its boundaries.

Each carries one line that names the field (or file row/column) and how to fix it; the CLI
prints that line and exits with code 2. A scenario file may have several problems: a
:class:`ScenarioError` then carries them all (:attr:`ScenarioError.problems`) and the CLI prints
one line each. Inner code trusts its typed inputs and raises nothing of these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


class PsmsimError(Exception):
    """Base class: an input problem the user can fix; ``str(err)`` is the one-line message."""

    def lines(self) -> list[str]:
        """The message as the lines the CLI prints after ``error: `` (one here)."""
        return [str(self)]


@dataclass(frozen=True)
class Problem:
    """One problem of a scenario file: the dotted ``field`` (``covariates.hbv.combination.count``;
    array items as ``[i]``; empty for the whole file) and what is wrong and allowed."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class ScenarioError(PsmsimError):
    """A scenario or sweep file is malformed: ``field: problem (allowed: ...)``.

    ``ScenarioError(field, message)`` is one problem; :meth:`from_problems` makes one error of
    several. ``field`` and ``message`` are the first problem's; ``str(err)`` joins all problems
    with ``"; "`` (one line) and :meth:`lines` gives one line per problem.
    """

    def __init__(self, field: str, message: str):
        self.problems: tuple[Problem, ...] = (Problem(field, message),)
        self.field = field
        self.message = message
        super().__init__(str(self.problems[0]))

    @classmethod
    def from_problems(cls, problems: Sequence[Problem]) -> "ScenarioError":
        """One error carrying every problem (at least one), in file order."""
        if not problems:
            raise ValueError("a ScenarioError needs at least one problem")
        error = cls(problems[0].field, problems[0].message)
        error.problems = tuple(problems)
        error.args = ("; ".join(str(problem) for problem in problems),)
        return error

    def lines(self) -> list[str]:
        return [str(problem) for problem in self.problems]


class CohortFileError(PsmsimError):
    """A cohort CSV is malformed: names the row and/or column."""


class RunFolderError(PsmsimError):
    """A run folder cannot be used as asked (foreign identity without --force, corrupt files)."""


# --------------------------------------------------------------------------------------------
# Operating-system errors (full disk, no permission, missing folder) as one line


def find_os_error(error: BaseException) -> OSError | None:
    """The operating-system error behind ``error``: ``error`` itself, or the first
    ``OSError`` in its chain of causes and contexts (e.g. joblib's
    ``ShutdownExecutorError`` raised while a full disk's ``OSError`` was being handled).
    ``None`` when there is none."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError) and current.errno is not None:
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


#: errno name → (cause, fix) of the errors a user can do something about.
_OS_CAUSES = {
    "ENOSPC": ("no space left on the device", "free some space or write to another folder (a run resumes "
                                             "from its finished blocks with the same command)"),
    "EDQUOT": ("disk quota exceeded", "free some space or write to another folder"),
    "EFBIG": ("file too large for this file system", "write to another folder"),
    "EACCES": ("permission denied", "choose a folder you can write to"),
    "EPERM": ("operation not permitted", "choose a folder you can write to"),
    "EROFS": ("read-only file system", "choose a writable folder"),
    "ENOENT": ("no such file or folder", "check the path; the folder of a file to write must exist"),
    "ENOTDIR": ("a part of the path is a file, not a folder", "choose another path"),
    "EISDIR": ("is a folder, not a file", "choose a file name"),
    "EEXIST": ("already exists", "choose another path"),
    "ENAMETOOLONG": ("file name too long", "choose a shorter path"),
    "EMFILE": ("too many open files", "raise the limit (ulimit -n) or use fewer --jobs"),
    "ENFILE": ("too many open files in the system", "use fewer --jobs"),
    "EIO": ("input/output error of the device", "check the disk, or write to another folder"),
    "ENOMEM": ("out of memory", "use fewer --jobs or a smaller block size"),
}


def describe_os_error(error: OSError) -> str:
    """One line naming the path (both paths of a rename) and the cause, and what to do:
    ``/results/run/summary.nc: no space left on the device (ENOSPC); free some space or ...``."""
    import errno as errno_codes

    name = errno_codes.errorcode.get(error.errno, f"errno {error.errno}")
    cause, fix = _OS_CAUSES.get(name, ((error.strerror or str(error)).rstrip(".").lower(), ""))
    paths = [str(p) for p in (error.filename, error.filename2) if p not in (None, "")]
    where = " → ".join(paths) + ": " if paths else ""
    return f"{where}{cause} ({name})" + (f"; {fix}" if fix else "")
