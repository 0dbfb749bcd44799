"""The cohort batch: B replicate cohorts of N patients held as arrays.

This is the one data type that flows from the generator (:mod:`sim`) into the analysis
(:mod:`analysis`) and that a user's cohort CSV is read into (a batch of one replicate).
Shapes: ``(replicate, patient)`` and ``(replicate, patient, covariate)``; times in months.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

#: Best overall response codes stored in :attr:`CohortBatch.best_response`.
RESPONSE_CODES = {"CR": 0, "PR": 1, "SD": 2, "PD": 3}
RESPONSE_LABELS = ("CR", "PR", "SD", "PD")

#: Covariate kinds as the analysis sees them (normal/lognormal are both "continuous").
ANALYSIS_KINDS = ("binary", "categorical", "continuous")


@dataclass(frozen=True)
class CohortBatch:
    """B cohorts of N patients each.

    Attributes
    ----------
    treated : ndarray of bool, shape (replicate, patient)
        True for the experimental arm.
    covariates : ndarray of float, shape (replicate, patient, covariate)
        Baseline covariates in ``covariate_names`` order. Binary as 0/1, categorical as the
        level index 0..k-1, continuous in their own units.
    covariate_names : tuple of str
        Column names (as in the cohort CSV).
    covariate_kinds : tuple of str
        ``"binary"``, ``"categorical"`` or ``"continuous"`` per covariate.
    entry_month : ndarray of float, shape (replicate, patient)
        Calendar entry time, months since the start of accrual.
    pfs_months, os_months : ndarray of float, shape (replicate, patient)
        Observed (possibly censored) times, months from treatment start; PFS <= OS.
    pfs_event, os_event : ndarray of bool, shape (replicate, patient)
        True where the time is an event (progression/death; death), False where censored.
    best_response : ndarray of int8, shape (replicate, patient)
        Codes of :data:`RESPONSE_CODES` (CR=0, PR=1, SD=2, PD=3).
    ae_grade : ndarray of int8, shape (replicate, patient, adverse_event)
        Maximum CTCAE grade 0-4 per adverse event.
    ae_names : tuple of str
        Adverse-event names in ``ae_grade`` order (CSV columns are ``ae_<name>``).
    patient_id : ndarray of int64, shape (replicate, patient)
        Identifiers (1..N for synthetic cohorts; the CSV's ids for a user's cohort).
    """

    treated: np.ndarray
    covariates: np.ndarray
    covariate_names: tuple[str, ...]
    covariate_kinds: tuple[str, ...]
    entry_month: np.ndarray
    pfs_months: np.ndarray
    pfs_event: np.ndarray
    os_months: np.ndarray
    os_event: np.ndarray
    best_response: np.ndarray
    ae_grade: np.ndarray
    ae_names: tuple[str, ...]
    patient_id: np.ndarray

    @property
    def n_replicates(self) -> int:
        return self.treated.shape[0]

    @property
    def n_patients(self) -> int:
        return self.treated.shape[1]

    def replicate(self, index: int) -> "CohortBatch":
        """The batch of one replicate ``index`` (shape (1, patient, ...))."""
        pick = slice(index, index + 1)
        return CohortBatch(
            treated=self.treated[pick],
            covariates=self.covariates[pick],
            covariate_names=self.covariate_names,
            covariate_kinds=self.covariate_kinds,
            entry_month=self.entry_month[pick],
            pfs_months=self.pfs_months[pick],
            pfs_event=self.pfs_event[pick],
            os_months=self.os_months[pick],
            os_event=self.os_event[pick],
            best_response=self.best_response[pick],
            ae_grade=self.ae_grade[pick],
            ae_names=self.ae_names,
            patient_id=self.patient_id[pick],
        )


def segment_rows(sizes: Sequence[int]) -> list[slice]:
    """The rows of consecutive segments of ``sizes`` replicates (batches joined along the
    replicate axis): ``[slice(0, sizes[0]), slice(sizes[0], sizes[0] + sizes[1]), ...]``."""
    edges = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).tolist()
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]
