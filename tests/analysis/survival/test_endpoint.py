"""The fused endpoint pass (:func:`analysis.survival.endpoint.analyse_endpoint`) against the
table functions it replaces in the analysis plan.

Compiled, it must give the numbers of the table functions' compiled paths (one risk-set table,
``cox_from_table``, ``logrank_from_table``, both arms' ``km_median``) bit for bit: every field
of every result, NaNs in the same places, the same dtypes. Against the numpy oracle
(``compiled=False``) the Cox fit agrees to the kernels' tolerance
(:func:`tests.analysis.survival.test_survival_kernels.assert_same_cox`) and everything else is
identical. Data: random padded cohorts with ties, masks and garbage outside the cohort,
clusters of 1-3 with negative ids, large ids, clusters of 12; four weightings; every median
interval and rule; liu2021 cohorts with pair-like clusters; cohorts of 1,500 patients in
several chunks (pairwise sums over more than 128 terms); and degenerate batches.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from analysis import status
from analysis.survival import endpoint as endpoint_module
from analysis.survival.endpoint import analyse_endpoint
from tests.analysis.survival.test_survival import random_cohorts
from tests.analysis.survival.test_survival_kernels import CI_METHODS, assert_same_cox, liu2021, weights_of  # noqa: F401

RESULTS = ("cox", "logrank", "median_treated", "median_control")


def assert_identical(fast, slow, *, skip_cox=False):
    for name in RESULTS:
        if skip_cox and name == "cox":
            continue
        a, b = getattr(fast, name), getattr(slow, name)
        for field in dataclasses.fields(b):
            x, y = getattr(a, field.name), getattr(b, field.name)
            assert x.dtype == y.dtype and x.shape == y.shape, f"{name}.{field.name}"
            np.testing.assert_array_equal(x, y, err_msg=f"{name}.{field.name}")


DEFAULTS = dict(ties="efron", median_ci="brookmeyer_crowley_log", median_rule="midpoint", level=0.95, max_iter=30,
                tol=1e-9)


def check(time, event, treated, *, weights=None, cluster=None, **options):
    """Fused == the table functions compiled, bit for bit; == the numpy oracle but for the Cox
    fit's rounding."""
    options = DEFAULTS | options
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fused = analyse_endpoint(time, event, treated, weights=weights, cluster=cluster, **options)
        oracle = analyse_endpoint(time, event, treated, weights=weights, cluster=cluster, compiled=False, **options)
        weight = np.ones(np.shape(time)) if weights is None else np.asarray(weights, float)
        table = endpoint_module._from_table(np.asarray(time, float), np.asarray(event, bool),
                                            np.asarray(treated, bool), weight, cluster, compiled=True, **options)
    assert_identical(fused, table)
    assert_identical(fused, oracle, skip_cox=True)
    assert_same_cox(fused.cox, oracle.cox)
    return fused


@pytest.fixture(scope="module")
def cohorts():
    return random_cohorts(np.random.default_rng(20261204), 300)


@pytest.mark.parametrize("ties", ["efron", "breslow"])
@pytest.mark.parametrize("weighting", ["none", "counts", "fractional", "odds"])
def test_fused_pass_equals_the_table_functions_on_random_cohorts(cohorts, ties, weighting):
    rng = np.random.default_rng([len(ties), len(weighting), 5])
    data = cohorts
    weights = weights_of(rng, data["time"].shape, weighting)
    weights = np.where(data["mask"], 1.0 if weights is None else weights, 0.0)
    columns = np.broadcast_to(np.arange(data["time"].shape[1]), data["time"].shape)
    for index, cluster in enumerate((None, "patient", data["cluster"], 1_000_003 * data["cluster"], columns // 12)):
        ci, rule = CI_METHODS[index % 4], ("midpoint", "first")[index % 2]
        result = check(data["time"], data["event"], data["treated"], weights=weights, cluster=cluster, ties=ties,
                       median_ci=ci, median_rule=rule, level=0.9 if index == 3 else 0.95)
        assert (result.cox.status == status.OK).sum() > 100 and (result.logrank.status == status.OK).sum() > 100
        assert 0.05 < np.isnan(result.median_treated.median).mean() < 0.95


def test_fused_pass_reads_weights_without_a_positive_value_as_outside_the_cohort(cohorts):
    data = cohorts
    rng = np.random.default_rng(8)
    weights = np.where(data["mask"], rng.integers(1, 3, data["time"].shape), 0.0)
    weights[rng.random(weights.shape) < 0.05] = -1.0
    weights[rng.random(weights.shape) < 0.05] = np.nan
    check(data["time"], data["event"], data["treated"], weights=weights, cluster=data["cluster"])


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_fused_pass_equals_the_table_functions_on_liu2021(liu2021, ties):
    batch, pairs = liu2021
    matched = (pairs >= 0) * 1.0
    for time, event in ((batch.pfs_months, batch.pfs_event), (batch.os_months, batch.os_event)):
        full = check(time, event, batch.treated, cluster="patient", ties=ties)
        check(time, event, batch.treated, weights=matched, cluster=pairs, ties=ties, median_ci="spss_symmetric",
              median_rule="first")
        assert (full.cox.status == status.OK).mean() > 0.9


def test_fused_pass_equals_the_table_functions_in_chunks_of_large_cohorts(monkeypatch):
    """1,500 patients (sums over more than 128 terms are pairwise halvings), ties, pairs with
    unmatched patients, chunks of three replicates (and a last chunk of one)."""
    rng = np.random.default_rng(12)
    shape = (7, 1500)
    time = np.round(rng.exponential(10.0, shape), 1)
    event = rng.random(shape) < 0.7
    treated = rng.random(shape) < 0.4
    pairs = np.where(rng.random(shape) < 0.6, rng.integers(0, 400, shape), -1)
    weights = (pairs >= 0) * rng.integers(1, 3, shape).astype(float)
    monkeypatch.setattr(endpoint_module, "CHUNK_CELLS", 3 * shape[1] + 7)
    check(time, event, treated, cluster="patient")
    check(time, event, treated, weights=weights, cluster=pairs, ties="breslow", median_ci="spss_symmetric")


def test_fused_pass_equals_the_table_functions_on_degenerate_cohorts():
    time = np.tile([1.0, 2, 2, 4, 5, 6], (9, 1))
    event = np.array([
        [0, 0, 0, 0, 0, 0],  # no events
        [1, 0, 1, 0, 1, 0],  # events only in the treated arm
        [1, 1, 1, 1, 1, 1],  # empty control arm
        [1, 1, 1, 1, 1, 1],  # single patient
        [1, 1, 1, 1, 1, 1],  # control all die before any treated: beta -> -inf
        [1, 1, 1, 1, 1, 1],  # nobody in the cohort
        [1, 1, 0, 1, 1, 0],  # ordinary, with a tie
        [1, 1, 1, 1, 1, 1],  # everyone tied
        [1, 1, 0, 0, 0, 0],  # S flat at exactly 1/2 (treated arm)
    ], bool)
    treated = np.array([
        [1, 0, 1, 0, 1, 0], [1, 0, 1, 0, 1, 0], [1, 1, 1, 1, 1, 1], [1, 0, 1, 0, 1, 0], [0, 0, 0, 1, 1, 1],
        [1, 0, 1, 0, 1, 0], [1, 0, 0, 1, 0, 1], [1, 0, 1, 0, 1, 0], [1, 1, 1, 1, 0, 0],
    ], bool)
    time[7] = 3.0
    weights = np.ones(time.shape)
    weights[3, 1:] = 0.0
    weights[5] = 0.0
    pairs = np.tile([0, 0, 1, 1, -1, 2], (9, 1))
    for ties in ("efron", "breslow"):
        for cluster in (None, "patient", pairs):
            for ci in CI_METHODS:
                result = check(time, event, treated, weights=weights, cluster=cluster, ties=ties, median_ci=ci)
            assert set(result.cox.status) >= {status.OK, status.NO_EVENTS, status.EMPTY_ARM, status.NOT_CONVERGED}
            assert set(result.logrank.status) >= {status.OK, status.NO_EVENTS, status.EMPTY_ARM}
    for columns in (0, 1):  # no patient columns (the tables' placeholder); one
        check(time[:, :columns], event[:, :columns], treated[:, :columns], cluster=pairs[:, :columns])


def test_analyse_endpoint_checks_its_options(cohorts):
    args = (cohorts["time"], cohorts["event"], cohorts["treated"])
    for option, message in (({"ties": "exact"}, "unknown ties"), ({"median_ci": "wald"}, "unknown median_ci"),
                            ({"median_rule": "last"}, "unknown median_rule"), ({"cluster": "pair"}, "cluster must be")):
        with pytest.raises(ValueError, match=message):
            analyse_endpoint(*args, **option)
    with pytest.raises(ValueError, match="weights has shape"):
        analyse_endpoint(*args, weights=np.ones((2, 2)))
