"""The survival analysis of one endpoint, batched over replicates: Cox, log-rank and both
arms' Kaplan-Meier medians in one call.

:func:`analyse_endpoint` gives the numbers of the table functions on one risk-set table
(:func:`analysis.survival.risk_sets.tabulate_risk_sets` and its ``mask = weights > 0``, then
:func:`analysis.survival.cox.cox_from_table`,
:func:`analysis.survival.logrank.logrank_from_table` and
:func:`analysis.survival.kaplan_meier.km_median` of each arm), compiled in one pass per
replicate (:mod:`analysis.survival.endpoint_kernels`) without forming the table: the same
numbers bit for bit. ``compiled=False`` runs the table functions in numpy, the oracle.
Conventions as in :mod:`analysis.survival.risk_sets` (shapes (replicate, patient), months,
frequency weights).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import special

from analysis.cohort import segment_rows
from analysis.survival.cox import CoxResult, cox_from_table, result_of_fit
from analysis.survival.cox_terms import TIES
from analysis.survival.kaplan_meier import _CI_METHODS, _MEDIAN_RULES, MedianEstimate, km_median
from analysis.survival.logrank import LogrankResult, logrank_from_sums, logrank_from_table
from analysis.survival.risk_sets import as_batch, tabulate_risk_sets

#: Patients per chunk of replicates whose packed sort keys are formed and sorted together
#: (512 KiB of keys: the buffer is reused, not faulted in again per chunk).
CHUNK_CELLS = 1 << 16


@dataclass(frozen=True)
class EndpointSurvival:
    """Survival analysis of one endpoint, treated vs control, one value per replicate in each
    result (shapes (replicate,))."""

    cox: CoxResult
    logrank: LogrankResult
    median_treated: MedianEstimate
    median_control: MedianEstimate


def analyse_endpoint(time, event, treated, *, weights=None, cluster=None, ties: str = "efron",
                     median_ci: str = "brookmeyer_crowley_log", median_rule: str = "midpoint", level: float = 0.95,
                     max_iter: int = 30, tol: float = 1e-9, compiled: bool = True,
                     segments: Sequence[int] | None = None) -> EndpointSurvival:
    """Cox model (with a robust SE clustered on ``cluster``), log-rank test and both arms'
    median survival with its confidence interval, for every replicate.

    Parameters
    ----------
    time : array_like of float, shape (replicate, patient)
        Observed times, months.
    event, treated : array_like of bool, shape (replicate, patient)
        Event indicator; treatment arm.
    weights : array_like of float, shape (replicate, patient), optional
        Frequency weights (default 1); a patient without a positive weight is outside the
        analysed cohort (``mask = weights > 0``).
    cluster : None, "patient" or array_like of int, shape (replicate, patient)
        Clusters of the Cox model's Lin-Wei robust SE: none (``robust_se`` NaN), every patient
        a cluster, or cluster ids (a negative id is a cluster of one).
    ties : {"efron", "breslow"}
        Cox ties (:func:`analysis.survival.cox.fit_cox`).
    median_ci, median_rule, level
        As in :func:`analysis.survival.kaplan_meier.km_median`; ``level`` is also the Cox
        limits'.
    max_iter, tol
        Newton iterations of the Cox fit (:func:`analysis.survival.cox.fit_cox`).
    compiled : bool
        One compiled pass per replicate (:mod:`analysis.survival.endpoint_kernels`); False:
        the table functions' numpy paths (the oracle). The same numbers either way up to the
        Cox fit's rounding (:mod:`analysis.survival.cox_kernels`), and bit for bit those of
        the table functions' compiled paths.
    segments : sizes of consecutive batches joined into this one (summing to the replicates),
        compiled path only: each segment's Cox Newton sums get the width its batch alone
        gives them (:func:`analysis.survival.endpoint_kernels.event_width`), so every number
        is the one each batch gives alone. Default: one batch.

    Returns
    -------
    EndpointSurvival
    """
    if ties not in TIES:
        raise ValueError(f"unknown ties {ties!r}; choose one of {', '.join(TIES)}")
    if median_ci not in _CI_METHODS:
        raise ValueError(f"unknown median_ci {median_ci!r}; choose one of {', '.join(_CI_METHODS)}")
    if median_rule not in _MEDIAN_RULES:
        raise ValueError(f"unknown median_rule {median_rule!r}; choose one of {', '.join(_MEDIAN_RULES)}")
    time = np.ascontiguousarray(as_batch("time", time, None, np.float64))
    shape = time.shape
    event = np.ascontiguousarray(as_batch("event", event, shape, bool))
    treated = np.ascontiguousarray(as_batch("treated", treated, shape, bool))
    weight = np.ones(shape) if weights is None else np.ascontiguousarray(as_batch("weights", weights, shape, np.float64))
    if isinstance(cluster, str):
        if cluster != "patient":
            raise ValueError(f"cluster must be None, 'patient' or an array of ids; got {cluster!r}")
    elif cluster is not None:
        cluster = np.ascontiguousarray(as_batch("cluster", cluster, shape, np.int64))
    options = dict(ties=ties, median_ci=median_ci, median_rule=median_rule, level=level, max_iter=max_iter, tol=tol)
    sizes = (shape[0],) if segments is None else tuple(int(n) for n in segments)
    if segments is not None and (sum(sizes) != shape[0] or min(sizes) < 1 or not compiled):
        raise ValueError(f"segments {sizes}: positive sizes summing to the {shape[0]} replicates, compiled path only")
    if not compiled or shape[1] == 0:  # no patient columns: the tables' placeholder patient
        return _from_table(time, event, treated, weight, cluster, compiled=compiled, **options)
    return _compiled(time, event, treated, weight, cluster, sizes=sizes, **options)


def _from_table(time, event, treated, weight, cluster, *, compiled, ties, median_ci, median_rule, level, max_iter,
                tol) -> EndpointSurvival:
    """The table functions on one table (the analysis plan's path before the fused kernel)."""
    table = tabulate_risk_sets(time, event, treated, mask=weight > 0, weights=weight, compiled=compiled)
    if isinstance(cluster, str):
        cluster = np.broadcast_to(np.arange(time.shape[1]), time.shape)
    cox = cox_from_table(table, ties=ties, cluster=cluster, level=level, max_iter=max_iter, tol=tol,
                         compiled=compiled)
    medians = [km_median(table, arm=arm, ci=median_ci, level=level, median_rule=median_rule, compiled=compiled)
               for arm in ("treated", "control")]
    return EndpointSurvival(cox, logrank_from_table(table), *medians)


def _compiled(time, event, treated, weight, cluster, *, sizes, ties, median_ci, median_rule, level, max_iter,
              tol) -> EndpointSurvival:
    from analysis.survival import endpoint_kernels as kernels
    from analysis.survival.km_kernels import CI_CODES
    from analysis.survival.risk_set_kernels import index_bits, packed_keys

    n_rep, n_pat = time.shape
    if cluster is None:
        mode, ids, id_offset, n_ids = kernels.NO_CLUSTERS, np.zeros((1, 1), np.int64), 0, 0
    elif isinstance(cluster, str):
        mode, ids, id_offset, n_ids = kernels.PATIENT_CLUSTERS, np.zeros((1, 1), np.int64), 0, 0
    else:
        # Negative ids: clusters of one after the others (risk_sets.unique_negative_ids).
        mode, ids = kernels.CLUSTER_IDS, cluster
        id_offset = int(max(cluster.max(initial=0), 0)) + 1
        n_ids = id_offset + n_pat
        if n_ids > 4 * n_pat + 64:  # large ids: sorted per replicate instead (cox_kernels.fit_table)
            n_ids = 0
    raw = time.view(np.uint64)
    bits = index_bits(n_pat)
    if len(sizes) == 1:
        widths = np.full(n_rep, kernels.event_width(event, weight), np.int64)
    else:  # each segment's own width (the batch it was alone)
        widths = np.repeat([kernels.event_width(event[rows], weight[rows]) for rows in segment_rows(sizes)],
                           sizes).astype(np.int64)
    z = float(special.ndtri(1.0 - (1.0 - level) / 2.0))
    floats = np.empty((len(kernels.FLOAT_ROWS), n_rep))
    ints = np.empty((len(kernels.INT_ROWS), n_rep), np.int64)
    chunk = max(1, CHUNK_CELLS // n_pat)
    packed = np.empty((min(chunk, n_rep), n_pat), np.uint64)
    for start in range(0, n_rep, chunk):  # chunks of replicates: bounded sort buffers
        stop = min(start + chunk, n_rep)
        keys = packed[: stop - start]
        packed_keys(time[start:stop], raw[start:stop], weight[start:stop], True, bits, keys)
        keys.sort(axis=1)
        kernels.analyse_chunk(start, keys, time, raw, weight, event, treated, ids, mode, id_offset, n_ids, bits,
                              ties == "efron", int(max_iter), float(tol), widths, CI_CODES[median_ci], z,
                              median_rule == "midpoint", floats, ints)
    value = dict(zip(kernels.FLOAT_ROWS, floats))
    count = dict(zip(kernels.INT_ROWS, ints))
    cox = result_of_fit(value["beta"], value["information"], value["sum_of_squares"], value["events_total"],
                        count["n_iter"], count["converged"].astype(bool), count["status"].astype(np.int8),
                        clustered=cluster is not None, level=level)
    logrank = logrank_from_sums(value["observed"], value["expected"], value["variance"], value["weight_treated"],
                                value["weight_control"], value["max_deaths"])
    medians = [MedianEstimate(median=value[f"median_{arm}"], lower=value[f"lower_{arm}"],
                              upper=value[f"upper_{arm}"], se=value[f"se_{arm}"],
                              status=count[f"status_{arm}"].astype(np.int8))
               for arm in ("treated", "control")]
    return EndpointSurvival(cox, logrank, *medians)


def warm_up() -> None:
    """Load (or compile, on an installation's first use) the kernels of
    :mod:`analysis.survival.endpoint_kernels` for the argument types :func:`analyse_endpoint`
    passes, on a two-patient replicate (here, so that the kernel module does not import its
    caller)."""
    from analysis.survival import endpoint_kernels

    time, event, treated = np.array([[1.0, 2.0]]), np.array([[True, True]]), np.array([[True, False]])
    for cluster in (None, "patient", np.zeros((1, 2), np.int64)):
        analyse_endpoint(time, event, treated, cluster=cluster, max_iter=1)
    endpoint_kernels.event_counts(np.ones((1, 2)), event, treated)
