"""Censoring: staggered uniform entry, an administrative data cut-off and optional dropout.

Patient i enters at E_i ~ U(0, A) (calendar months since the start of accrual, A =
``accrual_months``) and is followed until the cut-off, so the administrative censoring time is
C_admin,i = τ - E_i with τ = ``cutoff_month``; optional loss to follow-up C_drop,i ~ Exp(δ)
with δ = ``dropout_rate`` per month. One censoring time C_i = min(C_admin,i, C_drop,i) applies to
both PFS and OS of a patient, so the observed PFS never exceeds the observed OS and no event is
recorded after the cut-off (Y = min(T, C), event = 1{T <= C}).
Patients entering after the cut-off (only possible if τ < A) have zero follow-up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.scenario.model import Censoring


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
