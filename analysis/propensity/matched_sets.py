"""The result of a matching: matched sets of treated and control patients, batched over
replicates, built the same way whichever matcher found them (:mod:`analysis.propensity.matching`,
:mod:`analysis.propensity.optimal_matching`)."""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from analysis import status


@dataclass(frozen=True)
class MatchResult:
    """Matched sets of a batch of replicates.

    Attributes
    ----------
    pair_id : ndarray of int32, shape (replicate, patient)
        Matched-set number 0..n_pairs-1, numbered in data order of the treated patients
        (MatchIt's ``subclass`` numbering, minus one); a treated patient and its controls
        share it. -1 for unmatched patients. With replacement a control serving several
        treated patients holds the smallest of their set numbers.
    weight : ndarray of float, shape (replicate, patient)
        1 for a matched treated patient; for a control the number of matched sets it belongs
        to (1 without replacement); 0 for unmatched patients. MatchIt's ATT weights differ
        when sets have unequal sizes or controls are reused: there a control gets
        ``sum over its sets of 1 / (controls in the set)``, and the control weights are then
        scaled to sum to the number of distinct matched controls. For 1:1 matching without
        replacement both are 1 for every matched patient.
    matched : ndarray of bool, shape (replicate, patient)
        Patient belongs to at least one matched set.
    n_pairs : ndarray of int, shape (replicate,)
        Number of matched treated patients (matched sets).
    control_of : ndarray of int32, shape (replicate, patient, ratio)
        For a treated patient, the patient index of its j-th control (in the order they were
        found), -1 where none; all -1 for controls.
    caliper : ndarray of float, shape (replicate,)
        Caliper (tolerance) used, in distance units; NaN when none.
    status : ndarray of int8, shape (replicate,)
        :data:`analysis.status.OK`, or ``NO_MATCHES`` when nobody was matched.
    """

    pair_id: np.ndarray
    weight: np.ndarray
    matched: np.ndarray
    n_pairs: np.ndarray
    control_of: np.ndarray
    caliper: np.ndarray
    status: np.ndarray



def assemble_matched_sets(control_of, is_treated, width, *, uses=None, compiled=True) -> MatchResult:
    """Pair ids, weights and counts from the controls found for each treated patient.

    Parameters
    ----------
    control_of : ndarray of int, shape (replicate, patient, ratio)
        The patient index of each treated patient's j-th control, -1 where none.
    is_treated : ndarray of bool, shape (replicate, patient)
        Treated patients eligible for matching.
    width : ndarray of float, shape (replicate,)
        Caliper used (NaN: none).
    uses : ndarray of int, shape (replicate, patient), optional
        How many matched sets each control belongs to, for the numpy path (counted from
        ``control_of`` when omitted; the compiled path always counts them).
    compiled : bool
        One compiled pass over the patients (default); False: the numpy operations, kept as
        its test oracle (the same arrays).

    Returns
    -------
    MatchResult
    """
    if compiled:
        control_of = np.ascontiguousarray(control_of)
        pair_id, weight, matched, n_pairs = _assemble(control_of, np.ascontiguousarray(is_treated, dtype=bool))
    else:
        pair_id, weight, matched, n_pairs = _assemble_numpy(control_of, is_treated, uses)
    code = np.where(n_pairs > 0, status.OK, status.NO_MATCHES).astype(np.int8)
    return MatchResult(
        pair_id=pair_id,
        weight=weight,
        matched=matched,
        n_pairs=n_pairs,
        control_of=control_of,
        caliper=width,
        status=code,
    )


def _assemble_numpy(control_of, is_treated, uses):
    n_rep, n_pat, ratio = control_of.shape
    if uses is None:
        uses = np.zeros((n_rep, n_pat), np.int64)
        rows, _, _ = np.nonzero(control_of >= 0)
        np.add.at(uses, (rows, control_of[control_of >= 0]), 1)
    treated_matched = is_treated & (control_of >= 0).any(axis=2)
    set_number = np.cumsum(treated_matched, axis=1) - 1
    pair_id = np.where(treated_matched, set_number, -1).astype(np.int32)

    rep_index, treated_index, _slot = np.nonzero(control_of >= 0)
    controls = control_of[control_of >= 0]
    flat = np.full(n_rep * n_pat, np.iinfo(np.int32).max, dtype=np.int64)
    np.minimum.at(flat, rep_index * n_pat + controls, set_number[rep_index, treated_index])
    flat = flat.reshape(n_rep, n_pat)
    pair_id = np.where(uses > 0, flat, pair_id).astype(np.int32)

    weight = np.where(treated_matched, 1.0, uses.astype(float))
    matched = treated_matched | (uses > 0)
    n_pairs = treated_matched.sum(axis=1)
    return pair_id, weight, matched, n_pairs


@numba.njit(cache=True, nogil=True)
def _assemble(control_of, is_treated):
    """:func:`_assemble_numpy` in one pass per replicate (numba, cached): matched sets are
    numbered in patient order of their treated patient; a control takes the smallest number
    of the sets it is in and a weight of their count."""
    n_rep, n_pat, ratio = control_of.shape
    pair_id = np.full((n_rep, n_pat), -1, np.int32)
    weight = np.zeros((n_rep, n_pat))
    matched = np.zeros((n_rep, n_pat), np.bool_)
    n_pairs = np.zeros(n_rep, np.int64)
    uses = np.zeros(n_pat, np.int64)
    smallest = np.empty(n_pat, np.int64)
    for r in range(n_rep):
        uses[:] = 0
        number = -1  # the set number of the last matched treated patient so far
        for i in range(n_pat):
            has_control = False
            for j in range(ratio):
                has_control |= control_of[r, i, j] >= 0
            if not has_control:
                continue
            if is_treated[r, i]:
                number += 1
                pair_id[r, i] = number
                weight[r, i] = 1.0
                matched[r, i] = True
            for j in range(ratio):
                c = control_of[r, i, j]
                if c >= 0:
                    if uses[c] == 0 or number < smallest[c]:
                        smallest[c] = number
                    uses[c] += 1
        n_pairs[r] = number + 1
        for c in range(n_pat):
            if uses[c] > 0:
                pair_id[r, c] = smallest[c]
                matched[r, c] = True
                if not (is_treated[r, c] and _has_control(control_of, r, c)):  # a matched treated keeps 1
                    weight[r, c] = uses[c]
    return pair_id, weight, matched, n_pairs


@numba.njit(cache=True, nogil=True)
def _has_control(control_of, r, i):
    for j in range(control_of.shape[2]):
        if control_of[r, i, j] >= 0:
            return True
    return False


def warm_up() -> None:
    """Load (or compile) :func:`_assemble` for the argument types the matchers pass."""
    _assemble(np.full((1, 2, 1), -1, np.int32), np.zeros((1, 2), bool))
