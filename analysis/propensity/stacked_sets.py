"""Matched sets as stacked rows, and the Austin & Cafri (2020) variance for matching with
replacement, batched over replicates.

After matching with replacement a control can belong to several matched sets. MatchIt's
``get_matches()`` then gives one row per unit *per set*: the treated patient with weight 1 and
each of its m controls with weight 1/m, so a control used twice appears twice.
:func:`stack_matched_sets` builds those rows for a block of replicates from a
:class:`analysis.propensity.matched_sets.MatchResult`.

:func:`austin_cafri_cox` fits the Cox model of time on treatment to the stacked rows (Efron or
Breslow; with Efron the copies of a control are tied events, as in R on ``get_matches()``
data) and estimates the variance of the log hazard ratio by Austin & Cafri's two-way
clustering (Cameron, Gelbach & Miller 2011), as MatchIt's vignette "Estimating effects after
matching" computes it from three robust fits:

``V = ks/(ks - 1) V_set + ki/(ki - 1) V_patient - kc/(kc - 1) V_row``

with the Lin-Wei robust variances clustered by matched set, by patient and by row, and ks, ki,
kc the numbers of sets, distinct patients and rows. Austin & Cafri found that ignoring the
pairing (V_patient alone) suffices when fewer than about 30% of the patients are treated, and
that the two-way variance is needed above that. V can be negative in small samples; the SE is
then NaN with status ``UNDEFINED``.

References
----------
Austin PC, Cafri G (2020). Variance estimation when using propensity-score matching with
replacement with survival or time-to-event outcomes. Stat Med 39:1623-1640. Cameron AC,
Gelbach JB, Miller DL (2011). Robust inference with multiway clustering. J Bus Econ Stat
29:238-249. Greifer N, MatchIt vignette "estimating-effects" (MatchIt 4.x), ``get_matches()``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import special

from analysis import status as status_codes
from analysis.propensity.matched_sets import MatchResult
from analysis.survival.cox import CoxResult, cox_from_table
from analysis.survival.risk_sets import Packing, tabulate_risk_sets


@dataclass(frozen=True)
class StackedSets:
    """One row per patient per matched set, packed to the left, shape (replicate, row).

    Attributes
    ----------
    patient : ndarray of int64
        Patient index of the row (-1 on padding).
    matched_set : ndarray of int64
        Matched-set number of the row: the ``pair_id`` of the set's treated patient (-1 on
        padding).
    weight : ndarray of float
        1 for the treated patient, 1/m for each of the set's m controls (MatchIt
        ``get_matches()``); 0 on padding.
    valid : ndarray of bool
        Real rows.
    """

    patient: np.ndarray
    matched_set: np.ndarray
    weight: np.ndarray
    valid: np.ndarray

    def gather(self, values, fill=0):
        """``values`` (replicate, patient) read at each row's patient, ``fill`` on padding."""
        taken = np.take_along_axis(np.asarray(values), np.maximum(self.patient, 0), axis=1)
        return np.where(self.valid, taken, fill)


def stack_matched_sets(match: MatchResult) -> StackedSets:
    """The rows of MatchIt's ``get_matches()`` for every replicate (see :class:`StackedSets`)."""
    control_of = match.control_of
    n_rep, n_pat, ratio = control_of.shape
    patients = np.broadcast_to(np.arange(n_pat), (n_rep, n_pat))
    treated_matched = (control_of >= 0).any(axis=2)
    set_of_treated = np.where(treated_matched, match.pair_id, -1).astype(np.int64)
    n_controls = (control_of >= 0).sum(axis=2)
    with np.errstate(divide="ignore"):
        control_weight = np.where(n_controls > 0, 1.0 / np.maximum(n_controls, 1), 0.0)
    patient = np.concatenate([patients] + [control_of[:, :, j] for j in range(ratio)], axis=1).astype(np.int64)
    matched_set = np.concatenate([set_of_treated] * (1 + ratio), axis=1)
    weight = np.concatenate([treated_matched.astype(float)] + [control_weight] * ratio, axis=1)
    valid = np.concatenate([treated_matched] + [control_of[:, :, j] >= 0 for j in range(ratio)], axis=1)
    pack = Packing(valid)
    return StackedSets(patient=pack(patient, -1, np.int64), matched_set=pack(matched_set, -1, np.int64),
                       weight=pack(weight, 0.0), valid=pack.valid())


def austin_cafri_cox(time, event, treated, match: MatchResult, *, ties: str = "efron",
                     level: float = 0.95) -> CoxResult:
    """Cox model on the stacked matched rows with the Austin & Cafri (2020) two-way variance.

    Parameters
    ----------
    time, event, treated : array_like, shape (replicate, patient)
        Observed times (months), event indicators and arms of the patients.
    match : MatchResult
        Matched sets (typically of a matching with replacement; without replacement every
        patient has one row and the variance reduces to a combination of the set- and
        patient-clustered ones).
    ties : {"efron", "breslow"}
    level : float
        Confidence level of the Wald interval.

    Returns
    -------
    CoxResult
        ``log_hr`` and ``se`` (model-based) of the stacked fit; ``robust_se`` = sqrt(V) and the
        z, p-value and CI from it. Status as :func:`analysis.survival.cox.cox_from_table`,
        or ``NO_MATCHES`` where nobody was matched, or ``UNDEFINED`` where V <= 0.
    """
    stacked = stack_matched_sets(match)
    rows = stacked.valid
    table = tabulate_risk_sets(stacked.gather(time, 0.0), stacked.gather(event, False).astype(bool),
                               stacked.gather(treated, False).astype(bool), mask=rows, weights=stacked.weight)
    by_set = cox_from_table(table, ties=ties, cluster=np.where(rows, stacked.matched_set, -1), level=level)
    by_patient = cox_from_table(table, ties=ties, cluster=np.where(rows, stacked.patient, -1), level=level)
    by_row = cox_from_table(table, ties=ties, cluster=np.broadcast_to(np.arange(rows.shape[1]), rows.shape),
                            level=level)
    n_sets = match.n_pairs.astype(float)
    n_rows = rows.sum(axis=1).astype(float)
    ids = np.sort(np.where(rows, stacked.patient, -1), axis=1)
    n_patients = ((ids[:, 1:] != ids[:, :-1]) & (ids[:, 1:] >= 0)).sum(axis=1) + (ids[:, :1] >= 0).sum(axis=1)

    def corrected(k, robust_se):
        with np.errstate(divide="ignore", invalid="ignore"):
            return k / (k - 1.0) * robust_se**2

    with np.errstate(invalid="ignore"):
        variance = (corrected(n_sets, by_set.robust_se) + corrected(n_patients.astype(float), by_patient.robust_se)
                    - corrected(n_rows, by_row.robust_se))
    code = by_row.status.copy()
    code[match.n_pairs <= 0] = status_codes.NO_MATCHES
    code[(code == status_codes.OK) & ~(variance > 0)] = status_codes.UNDEFINED
    ok = code == status_codes.OK
    log_hr = np.where(ok, by_row.log_hr, np.nan)
    se = np.where(ok, by_row.se, np.nan)
    robust_se = np.where(ok, np.sqrt(np.where(ok, variance, 1.0)), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = log_hr / robust_se
        z_model = log_hr / se
    p_value = 2.0 * special.ndtr(-np.abs(z))
    critical = float(special.ndtri(1.0 - (1.0 - level) / 2.0))
    return replace(by_row, log_hr=log_hr, se=se, robust_se=robust_se, z=z, p_value=p_value,
                   p_value_model=2.0 * special.ndtr(-np.abs(z_model)), p_value_robust=p_value,
                   ci_lower=log_hr - critical * robust_se, ci_upper=log_hr + critical * robust_se,
                   converged=by_row.converged & ok, status=code)
