"""The few exception types psmsim raises at its boundaries.

Each carries one line that names the field (or file row/column) and how to fix it; the CLI
prints that line and exits with code 2. Inner code trusts its typed inputs and raises nothing
of these.
"""


class PsmsimError(Exception):
    """Base class: an input problem the user can fix; ``str(err)`` is the one-line message."""


class ScenarioError(PsmsimError):
    """A scenario or sweep file is malformed: ``field: problem (allowed: ...)``."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class CohortFileError(PsmsimError):
    """A cohort CSV is malformed: names the row and/or column."""


class RunFolderError(PsmsimError):
    """A run folder cannot be used as asked (foreign identity without --force, corrupt files)."""
