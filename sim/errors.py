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
