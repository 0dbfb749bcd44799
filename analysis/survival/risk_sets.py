"""Risk-set tables, batched over replicates.

The log-rank test, the Kaplan-Meier estimator and the Cox partial likelihood all rest on the
same 2 x 2 table at each distinct time: who is at risk and who has the event, per arm. This
module builds those tables for a whole block of replicates with one sort per call
(:func:`tabulate_risk_sets`, used by :mod:`analysis.survival.kaplan_meier` and :mod:`analysis.survival.cox`);
:mod:`analysis.survival.logrank` computes the log-rank test from them.

Conventions
-----------
* Arrays are shaped ``(replicate, patient)``; times are in months.
* ``mask`` marks who is in the analysed cohort; patients outside it are ignored.
* ``weights`` are finite non-negative frequency weights (e.g. how often a control is used in a
  matching with replacement): a patient with weight ``w`` counts as ``w`` patients in every
  risk set and event count. Weight 0 is the same as being outside the cohort.
* Tied times are times that are exactly equal (R's ``timefix`` merging of times that differ
  by rounding error is not applied).
* ``strata`` are integer ids; risk sets are formed within a stratum. A negative id (e.g. -1,
  "not in a matched pair") makes the patient a stratum of their own.
"""


from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RiskSetTable:
    """Patients of each replicate sorted by (stratum, time), with the risk set of their time.

    Every row is one patient in sorted order; the risk-set columns hold the value of the row's
    *tie group* (same stratum and same time), so all members of a tie group carry the same
    numbers. Patients outside the cohort are sorted last with weight 0 and time ``inf``.

    Attributes
    ----------
    order : ndarray of int, shape (replicate, patient)
        Sort order: row ``i`` of the table is patient ``order[:, i]`` of the input.
    time : ndarray of float, shape (replicate, patient)
        Sorted times, months (``inf`` outside the cohort).
    event : ndarray of bool, shape (replicate, patient)
        Event indicator of the row (False outside the cohort).
    weight : ndarray of float, shape (replicate, patient)
        Frequency weight of the row (0 outside the cohort).
    treated : ndarray of bool, shape (replicate, patient)
        Arm of the row (all False when no grouping was given).
    stratum : ndarray of int, shape (replicate, patient)
        Stratum id of the row (negative input ids replaced by unique ids).
    tie_first, tie_last : ndarray of int, shape (replicate, patient)
        Row index of the first and last member of the row's tie group.
    stratum_first, stratum_last : ndarray of int, shape (replicate, patient)
        Row index of the first and last member of the row's stratum.
    at_risk_treated, at_risk_control : ndarray of float, shape (replicate, patient)
        Weighted number at risk in each arm at the row's time (time >= it, same stratum).
    events_treated, events_control : ndarray of float, shape (replicate, patient)
        Weighted number of events in each arm in the row's tie group.
    tie_weight : ndarray of float, shape (replicate, patient)
        Total weight of the row's tie group (events and censorings).
    death_count : ndarray of int, shape (replicate, patient)
        Unweighted number of events (with positive weight) in the row's tie group.
    death_rank : ndarray of int, shape (replicate, patient)
        0-based rank of an event row among the events of its tie group; -1 for other rows.
    is_tie_last : ndarray of bool, shape (replicate, patient)
        True on the last row of each tie group (one row per distinct time and stratum).
    """

    order: np.ndarray
    time: np.ndarray
    event: np.ndarray
    weight: np.ndarray
    treated: np.ndarray
    stratum: np.ndarray
    tie_first: np.ndarray
    tie_last: np.ndarray
    stratum_first: np.ndarray
    stratum_last: np.ndarray
    at_risk_treated: np.ndarray
    at_risk_control: np.ndarray
    events_treated: np.ndarray
    events_control: np.ndarray
    tie_weight: np.ndarray
    death_count: np.ndarray
    death_rank: np.ndarray
    is_tie_last: np.ndarray


def as_batch(name: str, values, shape: tuple[int, int] | None, dtype) -> np.ndarray:
    array = np.asarray(values, dtype=dtype)
    if array.ndim != 2:
        raise ValueError(f"{name} must have shape (replicate, patient); got shape {array.shape}")
    if shape is not None and array.shape != shape:
        raise ValueError(f"{name} has shape {array.shape}; expected {shape} like `time`")
    return array


def unique_negative_ids(ids: np.ndarray) -> np.ndarray:
    """Replace negative ids by ids no other patient has (singleton strata or clusters)."""
    if not (ids < 0).any():
        return ids
    start = (ids.max(initial=0) + 1) if ids.size else 1
    patient_index = np.broadcast_to(np.arange(ids.shape[1], dtype=np.int64), ids.shape)
    return np.where(ids < 0, start + patient_index, ids)


def run_bounds(is_new_run: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last row index of the run (consecutive block) each row belongs to."""
    n_patients = is_new_run.shape[1]
    index = np.arange(n_patients)
    # Products with the 0/1 masks select the indices (exact integers; faster than np.where).
    first = np.maximum.accumulate(index * is_new_run, axis=1)
    is_last = np.empty_like(is_new_run)
    is_last[:, :-1] = is_new_run[:, 1:]
    is_last[:, -1] = True
    last_or_end = (index - (n_patients - 1)) * is_last + (n_patients - 1)
    last = np.minimum.accumulate(last_or_end[:, ::-1], axis=1)[:, ::-1]
    return first, last


def cumulative_sums(values: np.ndarray) -> np.ndarray:
    """Cumulative sum along patients with a leading 0: ``out[:, i]`` = sum of ``values[:, :i]``."""
    out = np.zeros((values.shape[0], values.shape[1] + 1), dtype=np.result_type(values, np.float64))
    np.cumsum(values, axis=1, out=out[:, 1:])
    return out


class Packing:
    """Moves the True cells of each row of a (replicate, patient) mask to the left of a
    (replicate, width) array, in order (width = the largest count of a row, at least 1)."""

    def __init__(self, keep: np.ndarray):
        n_rows, n_columns = keep.shape
        self.source = np.flatnonzero(keep)
        counts = keep.sum(axis=1)
        self.shape = (n_rows, max(1, int(counts.max(initial=0))))
        rows = self.source // max(n_columns, 1)
        first = np.cumsum(counts) - counts  # position in `source` of each row's first cell
        self.destination = rows * self.shape[1] + (np.arange(self.source.size) - first[rows])

    def __call__(self, values: np.ndarray, fill, dtype=np.float64) -> np.ndarray:
        """``values`` (replicate, patient) packed; ``fill`` in the cells left over."""
        out = np.full(self.shape[0] * self.shape[1], fill, dtype=dtype)
        out[self.destination] = np.ravel(values)[self.source]
        return out.reshape(self.shape)

    def valid(self) -> np.ndarray:
        """True on the packed cells, shape (replicate, width)."""
        out = np.zeros(self.shape[0] * self.shape[1], bool)
        out[self.destination] = True
        return out.reshape(self.shape)


def tabulate_risk_sets(
    time, event, treated=None, *, mask=None, weights=None, strata=None, compiled: bool = True
) -> RiskSetTable:
    """Sort each replicate by (stratum, time) and tabulate the risk set of every tie group.

    One stable ``argsort`` along the patient axis (two when ``strata`` is given) and cumulative
    sums; no loop over replicates or patients. Compiled, the time order is
    :func:`analysis.survival.risk_set_kernels.stable_order` (the same order).

    Parameters
    ----------
    time : array_like of float, shape (replicate, patient)
        Observed times, months.
    event : array_like of bool, shape (replicate, patient)
        True for an event, False for a censored time.
    treated : array_like of bool, shape (replicate, patient), optional
        Arm indicator; all control when omitted (one-sample tables for Kaplan-Meier).
    mask : array_like of bool, shape (replicate, patient), optional
        Who is in the analysed cohort (default everyone).
    weights : array_like of float, shape (replicate, patient), optional
        Non-negative frequency weights (default 1).
    strata : array_like of int, shape (replicate, patient), optional
        Stratum ids (negative = a stratum of one); one stratum when omitted.
    compiled : bool
        Sort and form the table from the sort order in compiled code
        (:mod:`analysis.survival.risk_set_kernels`, the same table bit for bit); False sorts with
        numpy's stable ``argsort`` and forms the table in numpy, the kernels' test oracle.

    Returns
    -------
    RiskSetTable
    """
    time = as_batch("time", time, None, np.float64)
    shape = time.shape
    event = as_batch("event", event, shape, bool)
    treated = np.zeros(shape, bool) if treated is None else as_batch("treated", treated, shape, bool)
    weight = np.ones(shape) if weights is None else as_batch("weights", weights, shape, np.float64)
    if mask is not None:
        weight = np.where(as_batch("mask", mask, shape, bool), weight, 0.0)
    if shape[1] == 0:  # no patient columns at all: one placeholder outside the cohort
        shape = (shape[0], 1)
        time, weight = np.zeros(shape), np.zeros(shape)
        event, treated = np.zeros(shape, bool), np.zeros(shape, bool)
        strata = None
    in_cohort = weight > 0
    sort_time = time if in_cohort.all() else np.where(in_cohort, time, np.inf)

    if compiled:
        from analysis.survival import risk_set_kernels

        order = risk_set_kernels.stable_order(sort_time)  # the same order, faster
    else:
        order = np.argsort(sort_time, axis=1, kind="stable")
    if strata is not None:
        stratum_ids = unique_negative_ids(as_batch("strata", strata, shape, np.int64))
        stratum_in_time_order = np.take_along_axis(stratum_ids, order, axis=1)
        if stratum_ids.size and stratum_ids.min() >= 0 and stratum_ids.max() < np.iinfo(np.int16).max:
            stratum_in_time_order = stratum_in_time_order.astype(np.int16)  # radix sort, same order
        by_stratum = np.argsort(stratum_in_time_order, axis=1, kind="stable")
        order = np.take_along_axis(order, by_stratum, axis=1)
    if compiled:
        ids = np.ascontiguousarray(stratum_ids) if strata is not None else np.zeros((1, 1), np.int64)
        columns = risk_set_kernels.tabulate(np.ascontiguousarray(order, dtype=np.int64),
                                            np.ascontiguousarray(sort_time), np.ascontiguousarray(weight),
                                            np.ascontiguousarray(event & in_cohort), np.ascontiguousarray(treated),
                                            ids, strata is not None)
        return RiskSetTable(order, *columns)
    flat_order = (order + (np.arange(shape[0], dtype=np.int64) * shape[1])[:, None]).ravel()

    def sort_rows(values):
        return values.ravel()[flat_order].reshape(shape)

    sorted_time = sort_rows(sort_time)
    sorted_weight = sort_rows(weight)
    sorted_event = sort_rows(event & in_cohort)
    sorted_treated = sort_rows(treated)

    new_tie = np.ones(shape, bool)
    new_tie[:, 1:] = sorted_time[:, 1:] != sorted_time[:, :-1]
    if strata is None:  # one stratum: every row's stratum is the whole row
        stratum = np.zeros(shape, np.int64)
        stratum_first = np.zeros(shape, np.int64)
        stratum_last = np.full(shape, shape[1] - 1, np.int64)
    else:
        stratum = sort_rows(stratum_ids)
        new_stratum = np.ones(shape, bool)
        new_stratum[:, 1:] = stratum[:, 1:] != stratum[:, :-1]
        new_tie |= new_stratum
        stratum_first, stratum_last = run_bounds(new_stratum)
    tie_first, tie_last = run_bounds(new_tie)

    # Gathers from the (replicate, patient + 1) cumulative sums by flat index (much faster
    # than take_along_axis on this hot path).
    row_offset = (np.arange(shape[0], dtype=np.int64) * (shape[1] + 1))[:, None]
    at_tie_first = tie_first + row_offset
    after_tie_last = tie_last + 1 + row_offset
    after_stratum_last = stratum_last + 1 + row_offset

    def group_sum(values, upto):
        cumulative = cumulative_sums(values).ravel()
        return cumulative[upto] - cumulative[at_tie_first]

    # Weights are finite: multiplying by a 0/1 mask selects them exactly (faster than np.where).
    weight_treated = sorted_weight * sorted_treated
    weight_control = sorted_weight - weight_treated
    at_risk_treated = group_sum(weight_treated, after_stratum_last)
    at_risk_control = group_sum(weight_control, after_stratum_last)
    tie_weight = group_sum(sorted_weight, after_tie_last)
    events_treated = group_sum(weight_treated * sorted_event, after_tie_last)
    events_control = group_sum(weight_control * sorted_event, after_tie_last)
    # Event counts: exact small integers, summed in int16 when they fit (faster), as float64.
    count_type = np.int16 if shape[1] < np.iinfo(np.int16).max else np.int64
    cum_deaths = np.zeros((shape[0], shape[1] + 1), count_type)
    np.cumsum(sorted_event, axis=1, dtype=count_type, out=cum_deaths[:, 1:])
    flat_deaths = cum_deaths.ravel()
    events_before_group = flat_deaths[at_tie_first]
    death_count = (flat_deaths[after_tie_last] - events_before_group).astype(np.float64)
    death_rank = ((cum_deaths[:, 1:] - events_before_group) * sorted_event - 1).astype(np.float64)
    is_tie_last = tie_last == np.arange(shape[1])

    return RiskSetTable(
        order=order,
        time=sorted_time,
        event=sorted_event,
        weight=sorted_weight,
        treated=sorted_treated,
        stratum=stratum,
        tie_first=tie_first,
        tie_last=tie_last,
        stratum_first=stratum_first,
        stratum_last=stratum_last,
        at_risk_treated=at_risk_treated,
        at_risk_control=at_risk_control,
        events_treated=events_treated,
        events_control=events_control,
        tie_weight=tie_weight,
        death_count=death_count,
        death_rank=death_rank,
        is_tie_last=is_tie_last,
    )


def warm_up() -> None:
    """Load (or compile, on an installation's first use) the kernels of
    :mod:`analysis.survival.risk_set_kernels` for the argument types :func:`tabulate_risk_sets`
    passes (here, so that the kernel module does not import its caller)."""
    tabulate_risk_sets(np.array([[2.0, 1.0]]), np.array([[True, False]]), np.array([[True, False]]))
