"""Tumour response and adverse events compared between arms, batched over replicates.

Objective response rate (ORR: CR or PR) and disease control rate (DCR: CR, PR or SD) per arm
(mRECIST best overall response), and for each adverse event the rate of any grade (>= 1) and
of grade 3-4 (>= 3, CTCAE), each compared between arms by a 2x2 contingency-table test chosen
by a named rule of :func:`analysis.comparisons.categorical.categorical_test` (``"paper"`` reproduces the
study paper's Tables 2 and 3).

Rates use the weighted counts as they are; the tables the tests see have their weighted cell
counts rounded to integers (SPSS CROSSTABS' default), which changes nothing for 0/1 weights.
Arms are ordered :data:`analysis.comparisons.group_tests.ARMS` = (treated, control).

References
----------
Lencioni R, Llovet JM (2010). Modified RECIST (mRECIST) assessment for hepatocellular
carcinoma. Semin Liver Dis 30:52-60. National Cancer Institute (2009). Common Terminology
Criteria for Adverse Events v4.0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis import status
from analysis.cohort import RESPONSE_CODES
from analysis.comparisons import table_kernels
from analysis.comparisons.categorical import categorical_test

#: Best-response codes counted as objective response and as disease control.
OBJECTIVE_RESPONSE_CODES = (RESPONSE_CODES["CR"], RESPONSE_CODES["PR"])
DISEASE_CONTROL_CODES = (RESPONSE_CODES["CR"], RESPONSE_CODES["PR"], RESPONSE_CODES["SD"])
#: Lowest CTCAE grade counted as "any grade" and as "grade 3-4".
ANY_GRADE = 1
SEVERE_GRADE = 3


@dataclass(frozen=True)
class ResponseComparison:
    """ORR and DCR per arm and their between-arm tests.

    Attributes
    ----------
    n_per_arm : ndarray of float, shape (replicate, arm)
        Weighted number of analysed patients, arms (treated, control).
    orr_rate, dcr_rate : ndarray of float, shape (replicate, arm)
        Weighted proportion with CR/PR, and with CR/PR/SD; NaN for an empty arm.
    orr_p_value, dcr_p_value : ndarray of float, shape (replicate,)
        Two-sided p-values by the rule; 1.0 when nobody (or everybody) responds.
    orr_test_used, dcr_test_used : ndarray of int8, shape (replicate,)
        Test codes (:data:`analysis.comparisons.group_tests.TEST_NAMES`).
    status : ndarray of int8, shape (replicate,)
        :data:`analysis.status.OK` or ``EMPTY_ARM``.
    """

    n_per_arm: np.ndarray
    orr_rate: np.ndarray
    dcr_rate: np.ndarray
    orr_p_value: np.ndarray
    dcr_p_value: np.ndarray
    orr_test_used: np.ndarray
    dcr_test_used: np.ndarray
    status: np.ndarray


@dataclass(frozen=True)
class AdverseEventComparison:
    """Adverse-event rates per arm (any grade, grade 3-4) and their between-arm tests.

    Attributes
    ----------
    n_per_arm : ndarray of float, shape (replicate, arm)
        Weighted number of analysed patients, arms (treated, control).
    any_grade_rate, grade3_4_rate : ndarray of float, shape (replicate, adverse_event, arm)
        Weighted proportion with grade >= 1, and with grade >= 3; NaN for an empty arm.
    any_grade_p_value, grade3_4_p_value : ndarray of float, shape (replicate, adverse_event)
        Two-sided p-values by the rule; 1.0 for an event nobody had.
    any_grade_test_used, grade3_4_test_used : ndarray of int8, shape (replicate, adverse_event)
        Test codes (:data:`analysis.comparisons.group_tests.TEST_NAMES`).
    status : ndarray of int8, shape (replicate,)
        :data:`analysis.status.OK` or ``EMPTY_ARM``.
    """

    n_per_arm: np.ndarray
    any_grade_rate: np.ndarray
    grade3_4_rate: np.ndarray
    any_grade_p_value: np.ndarray
    grade3_4_p_value: np.ndarray
    any_grade_test_used: np.ndarray
    grade3_4_test_used: np.ndarray
    status: np.ndarray


def compare_responses(best_response, treated, *, weights=None, rule="paper", compiled=True) -> ResponseComparison:
    """ORR and DCR per arm, each compared between arms by ``rule``.

    Parameters
    ----------
    best_response : ndarray of int8, shape (replicate, patient)
        Best overall response codes (:data:`analysis.cohort.RESPONSE_CODES`: CR=0, PR=1,
        SD=2, PD=3).
    treated : ndarray of bool, shape (replicate, patient)
    weights : ndarray of float, shape (replicate, patient), optional
        Weights of the analysed cohort (0 = not in it). Default: everybody weight 1.
    rule : str
        A rule of :data:`analysis.comparisons.categorical.CATEGORICAL_RULES`.
    compiled : bool
        The compiled counts and tests (default) or the numpy path (:func:`compare_binary`).

    Returns
    -------
    ResponseComparison
    """
    best_response = np.asarray(best_response)
    if compiled and best_response.dtype == np.int8:
        outcome = _RESPONSE_CODES_ACCEPTED  # the outcomes by code, counted by code_counts
    else:
        responded = _is_one_of(best_response, OBJECTIVE_RESPONSE_CODES)
        controlled = _is_one_of(best_response, DISEASE_CONTROL_CODES)
        outcome = np.stack([responded, controlled], axis=-1)  # (replicate, patient, endpoint)
    n_per_arm, rate, result = compare_binary(outcome, treated, weights, rule, compiled, codes=best_response)
    return ResponseComparison(
        n_per_arm=n_per_arm,
        orr_rate=rate[:, 0],
        dcr_rate=rate[:, 1],
        orr_p_value=result.p_value[:, 0],
        dcr_p_value=result.p_value[:, 1],
        orr_test_used=result.test_used[:, 0],
        dcr_test_used=result.test_used[:, 1],
        status=_arm_status(n_per_arm),
    )


def compare_adverse_events(
    ae_grade, treated, *, weights=None, rule="paper", compiled=True
) -> AdverseEventComparison:
    """Any-grade and grade 3-4 rates of each adverse event, compared between arms by ``rule``.

    Parameters
    ----------
    ae_grade : ndarray of int8, shape (replicate, patient, adverse_event)
        Maximum CTCAE grade 0-4 per adverse event.
    treated : ndarray of bool, shape (replicate, patient)
    weights : ndarray of float, shape (replicate, patient), optional
        Weights of the analysed cohort (0 = not in it). Default: everybody weight 1.
    rule : str
        A rule of :data:`analysis.comparisons.categorical.CATEGORICAL_RULES`.
    compiled : bool
        The compiled counts and tests (default) or the numpy path (:func:`compare_binary`).

    Returns
    -------
    AdverseEventComparison
    """
    ae_grade = np.asarray(ae_grade)
    if ae_grade.ndim != 3:
        raise ValueError(
            f"ae_grade must be shaped (replicate, patient, adverse_event); got {ae_grade.shape}"
        )
    n_events = ae_grade.shape[2]
    outcome = np.concatenate([ae_grade >= ANY_GRADE, ae_grade >= SEVERE_GRADE], axis=2)
    n_per_arm, rate, result = compare_binary(outcome, treated, weights, rule, compiled)
    return AdverseEventComparison(
        n_per_arm=n_per_arm,
        any_grade_rate=rate[:, :n_events],
        grade3_4_rate=rate[:, n_events:],
        any_grade_p_value=result.p_value[:, :n_events],
        grade3_4_p_value=result.p_value[:, n_events:],
        any_grade_test_used=result.test_used[:, :n_events],
        grade3_4_test_used=result.test_used[:, n_events:],
        status=_arm_status(n_per_arm),
    )


def compare_binary(outcome, treated, weights, rule, compiled=True, codes=None):
    """Rates and tests of binary outcomes (replicate, patient, endpoint) by ``rule``: what
    ORR/DCR and the AE rows use, for any other 0/1 outcome of a table row.

    Returns n_per_arm (replicate, arm), rate (replicate, endpoint, arm) and the TestResult of
    shape (replicate, endpoint). ``compiled`` counts with
    :func:`analysis.comparisons.table_kernels.arm_counts` (sums in vector lanes; with
    non-integer weights the numpy path's sums, which decide SPSS's rounded counts) and tests with the compiled 2x2 path of
    :func:`analysis.comparisons.categorical.categorical_test`; False: the numpy path (the
    oracle; the same counts for integer weights, to rounding otherwise). With ``codes``
    (int8, (replicate, patient)) ``outcome`` may instead be an (endpoint, code) bool table:
    patient p has outcome e when ``outcome[e, codes[p]]``
    (:func:`analysis.comparisons.table_kernels.code_counts`, compiled only).
    """
    treated = np.asarray(treated, dtype=bool)
    weight = _weight_array(treated, weights)
    by_code = codes is not None and np.ndim(outcome) == 2
    patients = np.shape(codes) if by_code else outcome.shape[:2]
    if patients != treated.shape:
        raise ValueError(
            "best_response/ae_grade, treated and weights must share (replicate, patient)"
            f" {treated.shape}; got {patients} and {weight.shape}"
        )
    integral = False
    if by_code:
        n_per_arm, events, integral = table_kernels.code_counts(np.ascontiguousarray(codes),
                                                                np.ascontiguousarray(treated), weight, outcome)
        if not integral:
            outcome = _outcomes_of_codes(np.asarray(codes), outcome)
    elif compiled:
        n_per_arm, events, integral = table_kernels.arm_counts(np.ascontiguousarray(outcome, dtype=bool),
                                                               np.ascontiguousarray(treated), weight)
    if not integral:  # the oracle's order of the sums (see table_kernels.arm_counts)
        arm_weight = np.stack([weight * treated, weight * ~treated], axis=-1)  # (R, P, arm)
        n_per_arm = arm_weight.sum(axis=1)
        events = np.matmul(outcome.astype(float).transpose(0, 2, 1), arm_weight)  # (R, E, arm)
    return _rates_and_tests(n_per_arm, events, rule, compiled)


def _outcomes_of_codes(codes, accepted):
    """(replicate, patient, endpoint) outcomes of ``codes`` by the (endpoint, code) table."""
    valid = (codes >= 0) & (codes < accepted.shape[1])
    return accepted.T[np.where(valid, codes, 0)] & valid[:, :, None]


def _weight_array(treated, weights):
    """``weights`` as a C-contiguous float array shaped like ``treated`` (ones when None)."""
    treated = np.asarray(treated)
    weight = np.ones(treated.shape) if weights is None else np.ascontiguousarray(weights, dtype=float)
    if weight.shape != treated.shape:
        raise ValueError(
            "best_response/ae_grade, treated and weights must share (replicate, patient)"
            f" {treated.shape}; got weights {weight.shape}"
        )
    return weight


def _rates_and_tests(n_per_arm, events, rule, compiled):
    """Rates (replicate, endpoint, arm) and the rule's tests of the rounded 2x2 tables."""
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = events / n_per_arm[:, None, :]
    # (R, E, level, arm) with level 0 = has the outcome; cell counts rounded as SPSS does
    table = np.rint(np.stack([events, n_per_arm[:, None, :] - events], axis=-2))
    return n_per_arm, rate, categorical_test(table, rule=rule, compiled=compiled)


#: (endpoint, code): ORR's and DCR's best-response codes (code_counts' outcome table).
_RESPONSE_CODES_ACCEPTED = np.zeros((2, max(RESPONSE_CODES.values()) + 1), dtype=bool)
_RESPONSE_CODES_ACCEPTED[0, list(OBJECTIVE_RESPONSE_CODES)] = True
_RESPONSE_CODES_ACCEPTED[1, list(DISEASE_CONTROL_CODES)] = True


def _is_one_of(codes, accepted):
    """``np.isin(codes, accepted)`` for a handful of accepted codes (a comparison each)."""
    found = np.zeros(codes.shape, bool)
    for code in accepted:
        found |= codes == code
    return found


def _arm_status(n_per_arm):
    return np.where((n_per_arm <= 0).any(axis=1), status.EMPTY_ARM, status.OK).astype(np.int8)
