"""Censoring: staggered uniform entry, an administrative data cut-off and optional dropout.

Patient i enters at E_i ~ U(0, A) (calendar months since the start of accrual, A =
``accrual_months``) and is followed until the cut-off, so the administrative censoring time is
C_admin,i = τ - E_i with τ = ``cutoff_month``; optional loss to follow-up C_drop,i ~ Exp(δ)
with δ = ``dropout_rate`` per month. One censoring time C_i = min(C_admin,i, C_drop,i) applies to
both PFS and OS of a patient, so the observed PFS never exceeds the observed OS and no event is
recorded after the cut-off (Y = min(T, C), event = 1{T <= C}).
Patients entering after the cut-off (only possible if τ < A) have zero follow-up.

**Assessment schedule** (``outcome.assessment``, :func:`observe_outcomes`). With scans every Δ
months from treatment start (the first at Δ), progression is only seen at a scan: a latent
progression at T_p is recorded at the first scan at or after it, ⌈T_p / Δ⌉ Δ, unless the
patient dies before that scan, when the PFS event is the death at its exact time; a death
before progression is recorded at its exact time. The recorded (uncensored) PFS time is
therefore R = min(⌈T_p/Δ⌉ Δ, T_D) after a progression and T_D otherwise, and the PFS event is
observed when R <= C. Otherwise PFS is censored at the last scan done, ⌊C/Δ⌋ Δ (0 for a patient
with no scan before C), at which the patient was seen progression-free. A progression whose
scan would fall after the cut-off (or the dropout) is therefore not seen; it is censored at the
last scan, as in the PFS conventions of the FDA (2007, *Clinical Trial Endpoints for the
Approval of Cancer Drugs and Biologics*, Guidance for Industry, Appendix 3, Table A):
progression dated at the assessment that first notes it, no progression censored at the last
radiological assessment, death before the first assessment or between adequate assessments
dated at the death. OS keeps exact times: Y = min(T_D, C). Recorded PFS <= observed OS still
holds for every patient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.scenario.model import Assessment, Censoring


@dataclass(frozen=True)
class CensoringTimes:
    """Entry and censoring times.

    Attributes
    ----------
    entry_month : ndarray of float, shape (...)
        Calendar entry, months since the start of accrual.
    censor_months : ndarray of float, shape (...)
        Follow-up available from treatment start: min(cutoff - entry, dropout) >= 0, months.
    """

    entry_month: np.ndarray
    censor_months: np.ndarray


@dataclass(frozen=True)
class ObservedOutcomes:
    """Censored PFS and OS.

    Attributes
    ----------
    pfs_months, os_months : ndarray of float, shape (...)
        min(T, C); ``pfs_months <= os_months``.
    pfs_event, os_event : ndarray of bool, shape (...)
        1{T <= C}.
    """

    pfs_months: np.ndarray
    pfs_event: np.ndarray
    os_months: np.ndarray
    os_event: np.ndarray


def draw_censoring(
    censoring: Censoring, shape: tuple[int, ...], *, rng: np.random.Generator
) -> CensoringTimes:
    """Draw entry times and censoring times.

    Draws the entry uniforms first and then, always, the dropout exponentials (so the stream
    does not depend on whether dropout is switched on).

    Parameters
    ----------
    censoring : Censoring
    shape : tuple of int, e.g. (replicate, patient)
    rng : numpy.random.Generator

    Returns
    -------
    CensoringTimes
    """
    entry = censoring.accrual_months * rng.random(shape)
    dropout_exposure = rng.standard_exponential(shape)
    administrative = np.maximum(censoring.cutoff_month - entry, 0.0)
    if censoring.dropout_rate > 0:
        censor = np.minimum(administrative, dropout_exposure / censoring.dropout_rate)
    else:
        censor = administrative
    return CensoringTimes(entry_month=entry, censor_months=censor)


def apply_censoring(
    pfs_months: np.ndarray, os_months: np.ndarray, censor_months: np.ndarray
) -> ObservedOutcomes:
    """Censor PFS and OS at the patient's one censoring time.

    Parameters
    ----------
    pfs_months, os_months : ndarray of float, shape (...)
        Uncensored times (PFS <= OS).
    censor_months : ndarray of float, shape (...)

    Returns
    -------
    ObservedOutcomes
    """
    return ObservedOutcomes(
        pfs_months=np.minimum(pfs_months, censor_months),
        pfs_event=pfs_months <= censor_months,
        os_months=np.minimum(os_months, censor_months),
        os_event=os_months <= censor_months,
    )


def next_scan(time_months: np.ndarray, interval_months: float) -> np.ndarray:
    """The first scan at or after ``time_months``: ⌈t / Δ⌉ Δ (a time on the grid stays)."""
    return np.ceil(np.asarray(time_months, dtype=float) / interval_months) * interval_months


def last_scan(time_months: np.ndarray, interval_months: float) -> np.ndarray:
    """The last scan at or before ``time_months``: ⌊t / Δ⌋ Δ (0 before the first scan)."""
    return np.floor(np.asarray(time_months, dtype=float) / interval_months) * interval_months


def recorded_pfs(
    pfs_months: np.ndarray,
    os_months: np.ndarray,
    progressed: np.ndarray,
    assessment: Assessment | None,
) -> np.ndarray:
    """Uncensored PFS as a study records it (see the module docstring).

    Parameters
    ----------
    pfs_months, os_months : ndarray of float, shape (...)
        Latent times of leaving the progression-free state and of death (months).
    progressed : ndarray of bool, shape (...)
        True where the PFS event is a progression.
    assessment : Assessment or None
        None: progression seen when it happens (the latent time is returned).

    Returns
    -------
    ndarray of float, shape (...)
        min(⌈T_p/Δ⌉ Δ, T_D) after a progression, T_D after a death without progression.
    """
    pfs_months = np.asarray(pfs_months, dtype=float)
    if assessment is None:
        return pfs_months
    seen = np.minimum(next_scan(pfs_months, assessment.interval_months), os_months)
    return np.where(progressed, seen, pfs_months)


def observe_outcomes(
    pfs_months: np.ndarray,
    os_months: np.ndarray,
    progressed: np.ndarray,
    censor_months: np.ndarray,
    assessment: Assessment | None,
) -> ObservedOutcomes:
    """Censored PFS and OS as a study records them, with or without a scan schedule.

    Without an assessment schedule this is :func:`apply_censoring`. With one, the PFS event
    time is :func:`recorded_pfs` and a censored PFS time is the last scan at or before the
    censoring time (module docstring); OS is censored as without a schedule.

    Parameters
    ----------
    pfs_months, os_months : ndarray of float, shape (...)
        Latent times (PFS <= OS).
    progressed : ndarray of bool, shape (...)
    censor_months : ndarray of float, shape (...)
    assessment : Assessment or None

    Returns
    -------
    ObservedOutcomes
    """
    if assessment is None:
        return apply_censoring(pfs_months, os_months, censor_months)
    recorded = recorded_pfs(pfs_months, os_months, progressed, assessment)
    pfs_event = recorded <= censor_months
    return ObservedOutcomes(
        pfs_months=np.where(pfs_event, recorded,
                            last_scan(censor_months, assessment.interval_months)),
        pfs_event=pfs_event,
        os_months=np.minimum(os_months, censor_months),
        os_event=os_months <= censor_months,
    )
