"""The compiled survival kernels against the numpy paths they replaced (their oracles).

Risk-set tables: ``tabulate_risk_sets(..., compiled=False)`` forms the table in numpy; the
kernel (:mod:`analysis.survival.risk_set_kernels`) must give every column bit for bit, with
the same dtypes.

Kaplan-Meier: ``km_median(table, arm=..., compiled=False)`` builds the curves
(:func:`analysis.survival.kaplan_meier.kaplan_meier_from_table`) and reads them in numpy; the
kernel (:mod:`analysis.survival.km_kernels`) must give the same medians, limits, SEs and
statuses bit for bit (they are observed times, midpoints of two, or the Collett formula of the
same curve values), for every interval and median rule, on both arms of two-arm tables and on
one-sample estimates from times.

Cox:
``cox_from_table(..., compiled=False)`` runs the numpy Cox fit of
:mod:`analysis.survival.cox_terms`/:mod:`analysis.survival.cox`. The kernel
(:mod:`analysis.survival.cox_kernels`) must give the same iteration counts, convergence flags
and statuses, and the same estimates up to rounding (sums in another order, the C library's
``exp``/``log``): estimates, SEs, p-values and limits to 1e-12 relative (:func:`assert_same_cox`; the one
exception, stratified models of non-integer weights, at :data:`RTOL_STRATIFIED_FRACTIONAL`).
Data: liu2021 cohorts from the generator (both endpoints, the full cohort and pair-like
strata/clusters), random padded cohorts with ties, masks, strata, clusters of 1-3, integer
and non-integer weights, and batches of degenerate cohorts (no events, empty arms, a single
patient, monotone likelihoods, tiny weights whose risk sets vanish, no patient columns).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from analysis import status
from analysis.survival.cox import cox_from_table, fit_cox
from analysis.survival.kaplan_meier import km_median
from analysis.survival.risk_sets import tabulate_risk_sets
from tests.analysis.survival.test_survival import random_cohorts

CI_METHODS = ("brookmeyer_crowley_log", "brookmeyer_crowley_loglog", "brookmeyer_crowley_plain", "spss_symmetric")
MEDIAN_FIELDS = ("median", "lower", "upper", "se", "status")
IDENTICAL = ("n_iter", "converged", "status")
#: Largest relative difference allowed between the kernel and the numpy path, and with
#: stratified models of non-integer weights (which no plan fits: the PS-stratified model's
#: weights are 1 or bootstrap counts), where the numpy path's within-stratum sums are
#: differences of cumulative sums over the whole row and cancel (measured: up to 4.4e-9 for
#: the robust SE of nearly diverging fits, |log HR| ~ 8-10, clusters of 12).
RTOL = 1e-12
RTOL_STRATIFIED_FRACTIONAL = 1e-8
DERIVED = {"z": 0.0, "p_value": 1e-15, "p_value_model": 1e-15, "p_value_robust": 1e-15, "ci_lower": 1e-13,
           "ci_upper": 1e-13}


def assert_same_cox(fast, slow, rtol=RTOL):
    """Identical flags; estimates to ``rtol`` (log-HRs also to 1e-13 absolute). A robust SE
    that is rounding noise (exactly 0 in exact arithmetic, e.g. one informative cluster) is
    compared to 1e-12 of the model SE, and the statistics computed from it not at all."""
    for field in IDENTICAL:
        np.testing.assert_array_equal(getattr(fast, field), getattr(slow, field), err_msg=field)
    for field in ("log_hr", "se", "robust_se", "n_events", *DERIVED):
        np.testing.assert_array_equal(np.isnan(getattr(fast, field)), np.isnan(getattr(slow, field)), err_msg=field)
    np.testing.assert_allclose(fast.log_hr, slow.log_hr, rtol=rtol, atol=1e-13, err_msg="log_hr")
    np.testing.assert_allclose(fast.se, slow.se, rtol=rtol, err_msg="se")
    np.testing.assert_allclose(fast.n_events, slow.n_events, rtol=1e-14, err_msg="n_events")
    gap = np.abs(fast.robust_se - slow.robust_se)
    assert not np.any(gap > rtol * np.abs(slow.robust_se) + 1e-12 * slow.se), "robust_se"
    noise = slow.robust_se < 1e-12 * slow.se
    for field, atol in DERIVED.items():
        a, b = getattr(fast, field), getattr(slow, field)
        np.testing.assert_allclose(a[~noise], b[~noise], rtol=rtol, atol=atol, err_msg=field)


def both_fits(table, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return cox_from_table(table, compiled=True, **options), cox_from_table(table, compiled=False, **options)


def weights_of(rng, shape, kind):
    if kind == "none":
        return None
    if kind == "counts":
        return rng.integers(0, 4, shape).astype(float)
    if kind == "fractional":
        return rng.gamma(0.7, 1.5, shape) * (rng.random(shape) < 0.9)
    # ATT-like odds e / (1 - e) spanning eight orders of magnitude (logit e ~ N(0, 3)).
    return np.exp(rng.normal(0.0, 3.0, shape)) * (rng.random(shape) < 0.95)


@pytest.fixture(scope="module")
def cohorts():
    return random_cohorts(np.random.default_rng(20261203), 300)


@pytest.mark.parametrize("ties", ["efron", "breslow"])
@pytest.mark.parametrize("weighting", ["none", "counts", "fractional", "odds"])
@pytest.mark.parametrize("stratified", [False, True])
def test_cox_kernel_equals_numpy_on_random_cohorts(cohorts, ties, weighting, stratified):
    rng = np.random.default_rng([len(ties), len(weighting), stratified])
    data = cohorts
    weights = weights_of(rng, data["time"].shape, weighting)
    strata = data["cluster"] if stratified else None
    table = tabulate_risk_sets(data["time"], data["event"], data["treated"], mask=data["mask"], weights=weights,
                               strata=strata)
    columns = np.broadcast_to(np.arange(data["time"].shape[1]), data["time"].shape)
    rtol = RTOL_STRATIFIED_FRACTIONAL if stratified and weighting in ("fractional", "odds") else RTOL
    fits = []
    # No clusters; clusters of 1-3 (summed by id); the same with large ids (sorted); clusters
    # of 12 (sorted: their sums are pairwise); every patient a cluster.
    for cluster in (None, data["cluster"], 1_000_003 * data["cluster"], columns // 12, columns):
        fast, slow = both_fits(table, ties=ties, cluster=cluster)
        assert_same_cox(fast, slow, rtol)
        fits.append(slow)
    # The batch covers fits that run and fits that stop before iterating.
    assert (fits[0].status == status.OK).sum() > 100
    if weighting == "none" and not stratified:
        assert (fits[0].n_iter > 3).any()


def test_cox_kernel_equals_numpy_on_degenerate_cohorts():
    time = np.tile([1.0, 2, 2, 4, 5, 6], (10, 1))
    event = np.array([
        [0, 0, 0, 0, 0, 0],  # no events
        [1, 0, 1, 0, 1, 0],  # events only in the treated arm
        [1, 1, 1, 1, 1, 1],  # empty control arm
        [1, 1, 1, 1, 1, 1],  # single patient (mask)
        [1, 1, 1, 1, 1, 1],  # control all die before any treated: beta -> -inf
        [1, 1, 1, 1, 1, 1],  # nobody in the cohort
        [1, 1, 0, 1, 1, 0],  # ordinary, with a tie
        [1, 1, 1, 1, 1, 1],  # every pair concordant the same way (stratified: monotone)
        [1, 1, 1, 1, 1, 1],  # everyone tied
        [1, 0, 1, 1, 0, 1],  # tiny weights on the controls
    ], bool)
    treated = np.array([
        [1, 0, 1, 0, 1, 0], [1, 0, 1, 0, 1, 0], [1, 1, 1, 1, 1, 1], [1, 0, 1, 0, 1, 0],
        [0, 0, 0, 1, 1, 1], [1, 0, 1, 0, 1, 0], [1, 0, 0, 1, 0, 1], [1, 0, 1, 0, 1, 0],
        [1, 0, 1, 0, 1, 0], [1, 0, 0, 1, 0, 1],
    ], bool)
    time[8] = 3.0
    mask = np.ones(time.shape, bool)
    mask[3, 1:] = False
    mask[5] = False
    weights = np.ones(time.shape)
    weights[9, ~treated[9]] = 1e-14
    pairs = np.tile([0, 0, 1, 1, 2, 2], (10, 1))
    for ties in ("efron", "breslow"):
        for strata in (None, pairs):
            table = tabulate_risk_sets(time, event, treated, mask=mask, weights=weights, strata=strata)
            for cluster in (None, pairs, np.tile(np.arange(6), (10, 1))):
                fast, slow = both_fits(table, ties=ties, cluster=cluster)
                assert_same_cox(fast, slow)
            assert set(slow.status) >= {status.OK, status.NO_EVENTS, status.EMPTY_ARM, status.NOT_CONVERGED}
        for columns in (0, 1):  # no patient columns; one
            table = tabulate_risk_sets(time[:, :columns], event[:, :columns], treated[:, :columns])
            assert_same_cox(*both_fits(table, ties=ties, cluster=np.zeros((10, columns), int)))


def test_fit_cox_passes_compiled_through(cohorts):
    args = (cohorts["time"], cohorts["event"], cohorts["treated"])
    fast = fit_cox(*args, mask=cohorts["mask"], cluster=cohorts["cluster"])
    slow = fit_cox(*args, mask=cohorts["mask"], cluster=cohorts["cluster"], compiled=False)
    assert_same_cox(fast, slow)


@pytest.fixture(scope="module")
def liu2021():
    """400 liu2021 cohorts from the generator, with pair-like ids (the matched cohort's strata
    and clusters: pairs of a treated and a control patient, the unmatched -1)."""
    from sim.calibrate.cache import calibrate_cached
    from sim.generate.cohorts import generate_cohorts
    from sim.scenario import load_scenario

    scenario = load_scenario("scenarios/liu2021.toml")
    batch = generate_cohorts(scenario, calibrate_cached(scenario), 400, rng=np.random.default_rng(29))
    rng = np.random.default_rng(31)
    pairs = np.full(batch.treated.shape, -1, np.int64)
    for r in range(batch.n_replicates):
        treated, control = np.flatnonzero(batch.treated[r]), rng.permutation(np.flatnonzero(~batch.treated[r]))
        n = min(treated.size, control.size, int(rng.integers(10, 40)))
        pairs[r, treated[:n]] = np.arange(n)
        pairs[r, control[:n]] = np.arange(n)
    return batch, pairs


@pytest.mark.parametrize("endpoint", ["pfs", "os"])
@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_cox_kernel_equals_numpy_on_liu2021(liu2021, endpoint, ties):
    batch, pairs = liu2021
    time, event = (batch.pfs_months, batch.pfs_event) if endpoint == "pfs" else (batch.os_months, batch.os_event)
    singletons = np.broadcast_to(np.arange(time.shape[1]), time.shape)
    full = tabulate_risk_sets(time, event, batch.treated)
    assert_same_cox(*both_fits(full, ties=ties, cluster=singletons))
    matched = pairs >= 0
    for strata in (None, pairs):
        table = tabulate_risk_sets(time, event, batch.treated, mask=matched, weights=matched * 1.0, strata=strata)
        fast, slow = both_fits(table, ties=ties, cluster=pairs)
        assert_same_cox(fast, slow)
        if strata is None:
            assert (slow.status == status.OK).mean() > 0.9


# --------------------------------------------------------------------------- Kaplan-Meier


def assert_same_medians(table_or_time, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fast = km_median(table_or_time, compiled=True, **options)
        slow = km_median(table_or_time, compiled=False, **options)
    for field in MEDIAN_FIELDS:
        np.testing.assert_array_equal(getattr(fast, field), getattr(slow, field), err_msg=field)
    return slow


@pytest.mark.parametrize("weighting", ["none", "counts", "fractional", "odds"])
def test_km_kernel_equals_numpy_on_random_cohorts(cohorts, weighting):
    rng = np.random.default_rng([7, len(weighting)])
    data = cohorts
    weights = weights_of(rng, data["time"].shape, weighting)
    table = tabulate_risk_sets(data["time"], data["event"], data["treated"], mask=data["mask"], weights=weights)
    for arm in ("treated", "control"):
        for ci in CI_METHODS:
            for rule in ("midpoint", "first"):
                slow = assert_same_medians(table, arm=arm, ci=ci, median_rule=rule, level=0.9 if rule == "first" else 0.95)
                # Medians reached and not, limits found and not.
                assert 0.05 < np.isnan(slow.median).mean() < 0.95 and 0.05 < np.isnan(slow.upper).mean() < 0.95
    one_arm = data["mask"] & data["treated"]
    assert_same_medians(data["time"], event=data["event"], mask=one_arm, weights=weights)


def test_km_kernel_equals_numpy_on_degenerate_cohorts():
    time = np.tile([1.0, 2, 2, 4, 5, 6], (8, 1))
    event = np.array([
        [0, 0, 0, 0, 0, 0],  # no events
        [1, 1, 1, 1, 1, 1],  # everyone dies (S reaches 0)
        [1, 1, 0, 0, 0, 0],  # S flat at exactly 1/2 to the end (treated arm)
        [1, 0, 1, 0, 1, 0],  # ordinary
        [1, 1, 1, 1, 1, 1],  # nobody in the cohort
        [1, 1, 1, 1, 1, 1],  # a single patient
        [0, 1, 1, 0, 1, 1],  # empty control arm
        [1, 1, 1, 1, 1, 1],  # tiny weights, the rounding guard "all left die"
    ], bool)
    treated = np.tile(np.array([1, 1, 1, 1, 0, 0], bool), (8, 1))
    treated[6] = True
    mask = np.ones(time.shape, bool)
    mask[4] = False
    mask[5, 1:] = False
    weights = np.ones(time.shape)
    weights[7] = [0.1, 0.2, 0.3, 1e-9, 0.7, 1e-12]
    table = tabulate_risk_sets(time, event, treated, mask=mask, weights=weights)
    for arm in ("treated", "control"):
        for ci in CI_METHODS:
            for rule in ("midpoint", "first"):
                slow = assert_same_medians(table, arm=arm, ci=ci, median_rule=rule)
        assert set(slow.status) == {status.OK, status.EMPTY_ARM}
    for columns in (0, 1):
        assert_same_medians(tabulate_risk_sets(time[:, :columns], event[:, :columns], treated[:, :columns]),
                            arm="treated")


def test_km_median_of_a_table_checks_its_arguments(cohorts):
    table = tabulate_risk_sets(cohorts["time"], cohorts["event"], cohorts["treated"], mask=cohorts["mask"])
    with pytest.raises(ValueError, match="arm must be one of treated, control"):
        km_median(table)
    with pytest.raises(ValueError, match="only with times"):
        km_median(table, arm="treated", mask=cohorts["mask"])
    with pytest.raises(ValueError, match="arm is for a risk-set table"):
        km_median(cohorts["time"], cohorts["event"], arm="treated")
    stratified = tabulate_risk_sets(cohorts["time"], cohorts["event"], cohorts["treated"], strata=cohorts["cluster"])
    for compiled in (True, False):
        with pytest.raises(ValueError, match="without strata"):
            km_median(stratified, arm="treated", compiled=compiled)


@pytest.mark.parametrize("endpoint", ["pfs", "os"])
def test_km_kernel_equals_numpy_on_liu2021(liu2021, endpoint):
    batch, pairs = liu2021
    time, event = (batch.pfs_months, batch.pfs_event) if endpoint == "pfs" else (batch.os_months, batch.os_event)
    matched = pairs >= 0
    for weights in (None, matched * 1.0):
        table = tabulate_risk_sets(time, event, batch.treated, weights=weights)
        for arm in ("treated", "control"):
            slow = assert_same_medians(table, arm=arm)
            assert np.isfinite(slow.median).mean() > 0.9


# --------------------------------------------------------------------------- risk-set tables


def assert_same_tables(*args, **options):
    fast = tabulate_risk_sets(*args, compiled=True, **options)
    slow = tabulate_risk_sets(*args, compiled=False, **options)
    for field in dataclasses.fields(slow):
        a, b = getattr(fast, field.name), getattr(slow, field.name)
        assert a.dtype == b.dtype, field.name
        np.testing.assert_array_equal(a, b, err_msg=field.name)
    return slow


@pytest.mark.parametrize("weighting", ["none", "counts", "fractional"])
def test_risk_set_kernel_equals_numpy_on_random_cohorts(cohorts, weighting):
    rng = np.random.default_rng([11, len(weighting)])
    data = cohorts
    weights = weights_of(rng, data["time"].shape, weighting)
    for strata in (None, data["cluster"], 1_000_003 * data["cluster"]):
        for treated in (data["treated"], None):
            table = assert_same_tables(data["time"], data["event"], treated, mask=data["mask"], weights=weights,
                                       strata=strata)
            assert (table.death_count > 1).any() and (table.tie_last > table.tie_first).any()  # ties


def test_risk_set_kernel_equals_numpy_on_degenerate_batches():
    time = np.array([[1.0, 1.0, 2.0], [3.0, np.nan, 3.0], [1.0, 2.0, 3.0]])
    event = np.array([[1, 1, 0], [1, 1, 1], [0, 0, 0]], bool)
    mask = np.array([[1, 1, 1], [1, 0, 1], [0, 0, 0]], bool)
    strata = np.array([[0, -1, 0], [2, 2, 2], [-1, -1, -1]])
    for columns in (0, 1, 3):
        for options in ({}, {"mask": mask[:, :columns]}, {"mask": mask[:, :columns], "strata": strata[:, :columns]}):
            assert_same_tables(time[:, :columns], event[:, :columns], event[:, :columns], **options)


def test_stable_order_is_numpys_stable_argsort():
    """The packed-key sort gives numpy's stable order exactly: ties by index, NaN last (any
    sign or payload), -0.0 tied with 0.0, infinities, negative times, and times that differ
    only in the low bits the patient index replaces (runs sorted again by the whole key)."""
    from analysis.survival.risk_set_kernels import stable_order

    rng = np.random.default_rng(20261203)
    tiny = np.finfo(float).eps
    for trial in range(240):
        shape = (int(rng.integers(1, 12)), int(rng.integers(0, 400)))
        kind = trial % 6
        time = rng.exponential(5.0, shape)
        if kind == 1:
            time = np.round(time, 1)  # many ties
        elif kind == 2:
            time = 1.0 + rng.integers(0, 60, shape) * tiny  # low-bit neighbours, long runs
        elif kind == 3:
            time = rng.normal(0.0, 1.0, shape)
            time[rng.random(shape) < 0.1] = -0.0
            time[rng.random(shape) < 0.1] = 0.0
        elif kind == 4:
            for value, share in ((np.nan, 0.1), (np.inf, 0.1), (-np.inf, 0.05), (-np.nan, 0.05)):
                time[rng.random(shape) < share] = value
            time[rng.random(shape) < 0.05] = np.frombuffer(np.uint64(0x7FF0000000000123).tobytes())[0]  # NaN payload
        elif kind == 5:
            time = np.nextafter(3.0, 4.0 * rng.integers(0, 2, shape))  # one ulp either side
        order = stable_order(time)
        assert order.dtype == np.int64
        np.testing.assert_array_equal(order, np.argsort(time, axis=1, kind="stable"), err_msg=f"case {kind}")
