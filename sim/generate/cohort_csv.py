"""Cohort CSV files: one row per patient, the data dictionary of the README.

Columns, in this order when written:

``patient_id`` (integer, unique), ``treated`` (1 = experimental arm, 0 = control), the
covariates by name (binary 0/1, categorical level index 0..k−1, continuous in their own units),
``entry_month`` (months since the start of accrual; optional on reading), ``pfs_months``,
``pfs_event`` (1 = progression or death, 0 = censored), ``os_months``, ``os_event`` (1 = death),
``best_response`` (CR | PR | SD | PD; optional on reading, empty = not evaluable) and
``ae_<name>`` (maximum CTCAE grade 0–4; optional).

Reading validates everything once, here at the boundary: every problem raises one
:class:`sim.errors.CohortFileError` naming the row (1-based data row, as a spreadsheet shows
it after the header) and the column. Beyond the format (numbers, 0/1, unique ids, both arms)
it refuses what cannot be a cohort: times beyond :data:`MAX_MONTHS` (days or years entered as
months), covariate values beyond :data:`MAX_COVARIATE` (no double-precision analysis of such a
column is meaningful), an endpoint whose every time is 0, a death at the end of PFS with PFS
censored (PFS ends with progression or death, so it is an event wherever OS is), an ``ae_``
column without a name, and a file separated by semicolons or tabs (named as such, with a hint
about decimal commas).
"""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from analysis.cohort import RESPONSE_CODES, RESPONSE_LABELS, CohortBatch
from sim.errors import CohortFileError

REQUIRED = ("patient_id", "treated", "pfs_months", "pfs_event", "os_months", "os_event")
OPTIONAL = ("entry_month", "best_response")
AE_PREFIX = "ae_"
#: Value of ``best_response`` for a patient without an evaluable response.
NOT_EVALUABLE = -1
#: Longest time accepted, months (100 years): a longer one is days or a typo.
MAX_MONTHS = 1200.0
#: Largest covariate magnitude accepted: beyond it the PS model's and the tables' sums of
#: squares lose every significant digit of the other patients (double precision, ~16 digits).
MAX_COVARIATE = 1e12
#: A column read as continuous whose values are all 0/1 but at most this share of them is
#: reported as probably binary with a stray code (:func:`near_binary_warnings`).
NEAR_BINARY_SHARE = 0.05
_LIMIT_TEXT = f"{MAX_COVARIATE:.0e}".replace("e+", "e")
_DECIMAL_COMMA = re.compile(r"^[-+]?\d+,\d+$")
_SEPARATORS = {";": "semicolons (;)", "\t": "tabs"}


def cohort_to_csv(batch: CohortBatch, replicate: int = 0) -> str:
    """The CSV text of one replicate of ``batch`` (patients in their stored order)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header = ["patient_id", "treated", *batch.covariate_names, "entry_month", "pfs_months",
              "pfs_event", "os_months", "os_event", "best_response",
              *(AE_PREFIX + name for name in batch.ae_names)]
    writer.writerow(header)
    r = replicate
    for i in range(batch.n_patients):
        covariates = [_format_value(v, kind) for v, kind in
                      zip(batch.covariates[r, i], batch.covariate_kinds)]
        response = int(batch.best_response[r, i])
        writer.writerow([
            int(batch.patient_id[r, i]), int(batch.treated[r, i]), *covariates,
            f"{batch.entry_month[r, i]:.4f}", f"{batch.pfs_months[r, i]:.4f}",
            int(batch.pfs_event[r, i]), f"{batch.os_months[r, i]:.4f}", int(batch.os_event[r, i]),
            RESPONSE_LABELS[response] if response >= 0 else "",
            *(int(g) for g in batch.ae_grade[r, i]),
        ])
    return out.getvalue()


def _format_value(value: float, kind: str) -> str:
    return str(int(value)) if kind in ("binary", "categorical") else f"{value:.4f}"


def read_cohort_csv(
    path: Path | str,
    *,
    covariate_kinds: dict[str, str] | None = None,
) -> CohortBatch:
    """Read and validate a cohort CSV into a batch of one replicate.

    Parameters
    ----------
    path : the CSV file.
    covariate_kinds : kind per covariate column (``binary`` | ``categorical`` |
        ``continuous``), e.g. from a scenario. Columns not named here are ``binary`` when
        every value is 0 or 1 and ``continuous`` otherwise.

    Raises
    ------
    CohortFileError
        Missing file or columns, non-numeric or missing values, negative times, events not
        0/1, PFS longer than OS, duplicate ids, or a single arm.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CohortFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CohortFileError(f"{path}: cannot be read as UTF-8 text ({exc})") from None
    rows = list(csv.reader(io.StringIO(text)))
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise CohortFileError(f"{path}: empty file; expected a header row with {', '.join(REQUIRED)}")
    header = [cell.strip() for cell in rows[0]]
    body = rows[1:]
    _check_separator(path, header, text)
    _check_header(path, header)
    if not body:
        raise CohortFileError(f"{path}: no patient rows after the header")
    for number, row in enumerate(body, start=1):
        if len(row) != len(header):
            hint = ("; a decimal comma splits a number in two: write 5.3, not 5,3"
                    if len(row) > len(header) and re.search(r"\d,\d", ",".join(row)) else "")
            raise CohortFileError(
                f"{path}: row {number} has {len(row)} values but the header has {len(header)} columns{hint}"
            )
    columns = {name: [row[j].strip() for row in body] for j, name in enumerate(header)}
    ae_names = tuple(name[len(AE_PREFIX):] for name in header if name.startswith(AE_PREFIX))
    covariate_names = tuple(
        name for name in header
        if name not in REQUIRED and name not in OPTIONAL and not name.startswith(AE_PREFIX)
    )

    patient_id = _integers(path, "patient_id", columns["patient_id"])
    duplicated = _first_duplicate(patient_id)
    if duplicated is not None:
        raise CohortFileError(f"{path}: column patient_id: id {patient_id[duplicated]} is repeated (row {duplicated + 1}); ids must be unique")
    treated = _zero_one(path, "treated", columns["treated"])
    if treated.all() or not treated.any():
        arm = "treated (1)" if treated.all() else "control (0)"
        raise CohortFileError(f"{path}: column treated: every patient is {arm}; both arms are needed")
    pfs = _times(path, "pfs_months", columns["pfs_months"])
    os_ = _times(path, "os_months", columns["os_months"])
    pfs_event = _zero_one(path, "pfs_event", columns["pfs_event"])
    os_event = _zero_one(path, "os_event", columns["os_event"])
    longer = np.flatnonzero(pfs > os_ + 1e-9)
    if longer.size:
        i = longer[0]
        raise CohortFileError(
            f"{path}: row {i + 1}: pfs_months {pfs[i]:g} exceeds os_months {os_[i]:g}; PFS ends at "
            "progression or death, so it cannot be longer than OS"
        )
    censored_at_death = np.flatnonzero(os_event & ~pfs_event & (pfs >= os_ - 1e-9))
    if censored_at_death.size:
        i = censored_at_death[0]
        raise CohortFileError(
            f"{path}: row {i + 1}: death at {os_[i]:g} months (os_event 1) but PFS censored then "
            f"(pfs_event 0, pfs_months {pfs[i]:g}); PFS ends with progression or death, so it must end "
            "with an event where OS does: set pfs_event to 1"
        )
    entry = (_times(path, "entry_month", columns["entry_month"]) if "entry_month" in columns
             else np.full(len(body), np.nan))
    response = (_responses(path, columns["best_response"]) if "best_response" in columns
                else np.full(len(body), NOT_EVALUABLE, dtype=np.int8))
    ae = np.stack([_grades(path, AE_PREFIX + name, columns[AE_PREFIX + name]) for name in ae_names], axis=-1) \
        if ae_names else np.zeros((len(body), 0), dtype=np.int8)

    kinds_given = covariate_kinds or {}
    covariates = np.empty((len(body), len(covariate_names)))
    kinds = []
    for j, name in enumerate(covariate_names):
        values = _numbers(path, name, columns[name])
        huge = np.flatnonzero(np.abs(values) > MAX_COVARIATE)
        if huge.size:
            bad = int(huge[0])
            raise CohortFileError(
                f"{path}: row {bad + 1}, column {name}: {columns[name][bad]} is beyond ±{_LIMIT_TEXT}, too "
                "large to analyse; check the value, or rescale the column (e.g. log10, or other units)"
            )
        kind = kinds_given.get(name) or ("binary" if np.isin(values, (0.0, 1.0)).all() else "continuous")
        if kind == "binary" and not np.isin(values, (0.0, 1.0)).all():
            bad = int(np.flatnonzero(~np.isin(values, (0.0, 1.0)))[0])
            raise CohortFileError(f"{path}: row {bad + 1}, column {name}: {columns[name][bad]!r} is not 0 or 1 (binary covariate)")
        not_level = (np.mod(values, 1) != 0) | (values < 0)
        if kind == "categorical" and not_level.any():
            bad = int(np.flatnonzero(not_level)[0])
            raise CohortFileError(f"{path}: row {bad + 1}, column {name}: {columns[name][bad]!r} is not a level index 0, 1, 2, …")
        covariates[:, j] = values
        kinds.append(kind)

    return CohortBatch(
        treated=treated[np.newaxis],
        covariates=covariates[np.newaxis],
        covariate_names=covariate_names,
        covariate_kinds=tuple(kinds),
        entry_month=entry[np.newaxis],
        pfs_months=pfs[np.newaxis],
        pfs_event=pfs_event[np.newaxis],
        os_months=os_[np.newaxis],
        os_event=os_event[np.newaxis],
        best_response=response[np.newaxis],
        ae_grade=ae[np.newaxis],
        ae_names=ae_names,
        patient_id=patient_id[np.newaxis],
    )


def _check_header(path: Path, header: Sequence[str]) -> None:
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise CohortFileError(
            f"{path}: missing column(s) {', '.join(missing)}; the header must include "
            f"{', '.join(REQUIRED)} (see the data dictionary in README.md)"
        )
    seen = set()
    for j, name in enumerate(header):
        if not name:
            raise CohortFileError(f"{path}: column {j + 1} has an empty name in the header")
        if name in seen:
            raise CohortFileError(f"{path}: column {name} appears twice in the header")
        if name == AE_PREFIX:
            raise CohortFileError(f"{path}: column {AE_PREFIX} (column {j + 1}): an adverse-event column needs "
                                  f"the event's name after {AE_PREFIX}, e.g. {AE_PREFIX}rash")
        seen.add(name)


def _check_separator(path: Path, header: Sequence[str], text: str) -> None:
    """A header read as one column that holds ``;`` or tabs: the file is not comma-separated."""
    if len(header) != 1:
        return
    for separator, name in _SEPARATORS.items():
        if separator in header[0]:
            decimal = re.search(r"\d,\d", text) is not None
            hint = "; it also has decimal commas: write 5.3, not 5,3" if decimal else ""
            raise CohortFileError(
                f"{path}: the columns are separated by {name}, not commas; save it as comma-separated "
                f"CSV (in a spreadsheet: CSV, comma delimited){hint}"
            )


def _numbers(path: Path, column: str, cells: Sequence[str]) -> np.ndarray:
    values = np.empty(len(cells))
    for i, cell in enumerate(cells):
        try:
            value = float(cell)
        except ValueError:
            what = "is empty" if cell == "" else f"{cell!r} is not a number"
            if _DECIMAL_COMMA.match(cell):
                what += f" (a decimal comma? write {cell.replace(',', '.')})"
            raise CohortFileError(f"{path}: row {i + 1}, column {column}: {what}") from None
        if not math.isfinite(value):
            raise CohortFileError(f"{path}: row {i + 1}, column {column}: {cell!r} is not a finite number")
        values[i] = value
    return values


def _integers(path: Path, column: str, cells: Sequence[str]) -> np.ndarray:
    values = _numbers(path, column, cells)
    bad = np.flatnonzero(np.mod(values, 1) != 0)
    if bad.size:
        raise CohortFileError(f"{path}: row {bad[0] + 1}, column {column}: {cells[bad[0]]!r} is not a whole number")
    return values.astype(np.int64)


def _zero_one(path: Path, column: str, cells: Sequence[str]) -> np.ndarray:
    values = _numbers(path, column, cells)
    bad = np.flatnonzero(~np.isin(values, (0.0, 1.0)))
    if bad.size:
        raise CohortFileError(f"{path}: row {bad[0] + 1}, column {column}: {cells[bad[0]]!r} must be 0 or 1")
    return values.astype(bool)


def _times(path: Path, column: str, cells: Sequence[str]) -> np.ndarray:
    values = _numbers(path, column, cells)
    bad = np.flatnonzero(values < 0)
    if bad.size:
        raise CohortFileError(f"{path}: row {bad[0] + 1}, column {column}: {cells[bad[0]]} is negative; times are months >= 0")
    bad = np.flatnonzero(values > MAX_MONTHS)
    if bad.size:
        raise CohortFileError(
            f"{path}: row {bad[0] + 1}, column {column}: {cells[bad[0]]} months is over {MAX_MONTHS:g} (100 "
            "years); times are in months (days? divide by 30.4375)"
        )
    if column != "entry_month" and not values.any():
        raise CohortFileError(f"{path}: column {column}: every time is 0; times are months from the start of "
                              "treatment to the event or censoring")
    return values


def _responses(path: Path, cells: Sequence[str]) -> np.ndarray:
    codes = np.empty(len(cells), dtype=np.int8)
    for i, cell in enumerate(cells):
        label = cell.upper()
        if label == "":
            codes[i] = NOT_EVALUABLE
        elif label in RESPONSE_CODES:
            codes[i] = RESPONSE_CODES[label]
        else:
            raise CohortFileError(f"{path}: row {i + 1}, column best_response: {cell!r} is not one of CR, PR, SD, PD (or empty)")
    return codes


def _grades(path: Path, column: str, cells: Sequence[str]) -> np.ndarray:
    values = _integers(path, column, cells)
    bad = np.flatnonzero((values < 0) | (values > 4))
    if bad.size:
        raise CohortFileError(f"{path}: row {bad[0] + 1}, column {column}: grade {values[bad[0]]} is outside 0–4")
    return values.astype(np.int8)


def _first_duplicate(ids: np.ndarray) -> int | None:
    order = np.argsort(ids, kind="stable")
    repeated = np.flatnonzero(ids[order][1:] == ids[order][:-1])
    if repeated.size == 0:
        return None
    return int(np.sort(order[repeated + 1])[0])


def describe_covariate_kinds(batch: CohortBatch) -> str:
    """One line saying how each covariate column was read, e.g. ``covariates read as binary
    (0/1): male, hbv; continuous: age``."""
    groups: dict[str, list[str]] = {kind: [] for kind in ("binary", "categorical", "continuous")}
    for name, kind in zip(batch.covariate_names, batch.covariate_kinds):
        groups.setdefault(kind, []).append(name)
    groups = {kind: names for kind, names in groups.items() if names}
    labels = {"binary": "binary (0/1)", "categorical": "categorical (levels 0, 1, …)", "continuous": "continuous"}
    parts = [f"{labels.get(kind, kind)}: {', '.join(names)}" for kind, names in groups.items()]
    return "covariates read as " + "; ".join(parts) if parts else "no covariates"


def near_binary_warnings(batch: CohortBatch) -> list[str]:
    """``column <name>: …`` for each column read as continuous although all but a few of its
    values (at most :data:`NEAR_BINARY_SHARE`, at least one) are 0 or 1 and those few look like
    missing-value codes (negative, or 9 and above: −1, −9, 9, 99, …), which the analysis would
    otherwise treat as numbers."""
    notes = []
    for j, (name, kind) in enumerate(zip(batch.covariate_names, batch.covariate_kinds)):
        values = batch.covariates[0, :, j]
        other = np.flatnonzero(~np.isin(values, (0.0, 1.0)))
        if kind != "continuous" or other.size == 0 or other.size > max(1, NEAR_BINARY_SHARE * values.size):
            continue
        if not np.all((values[other] < 0) | (values[other] >= 9)):
            continue  # e.g. a rare level 2 of a categorical covariate, not a missing-value code
        shown = ", ".join(f"row {i + 1}: {values[i]:g}" for i in other[:3]) + (", …" if other.size > 3 else "")
        notes.append(f"column {name}: read as continuous, but all its values except {other.size} ({shown}) "
                     "are 0 or 1; if it is binary, fix those rows (a missing-value code?), or give its kind "
                     "with --scenario")
    return notes
