"""The compiled balance moments (analysis.propensity.balance_kernels) against the numpy path."""

import numpy as np
import pytest

from analysis.propensity import balance_kernels
from analysis.propensity.balance import (LEVEL_TIE_TOLERANCE, SMD_DENOMINATORS, ZERO_SD, _standardised_table,
                                         standardised_differences_by_cohort)

KINDS = ("binary", "continuous", "categorical", "continuous", "binary", "categorical")


def _cohorts(rng, n_replicates, n_patients):
    treated = rng.random((n_replicates, n_patients)) < rng.uniform(0.2, 0.6)
    covariates = np.empty((n_replicates, n_patients, len(KINDS)))
    covariates[:, :, 0] = rng.random((n_replicates, n_patients)) < 0.3 + 0.2 * treated
    covariates[:, :, 1] = rng.normal(55 + 3 * treated, 10)
    covariates[:, :, 2] = rng.integers(0, rng.integers(1, 5), (n_replicates, n_patients))
    covariates[:, :, 3] = np.round(rng.lognormal(3, 1.5, (n_replicates, n_patients))) + 1e6  # far from 0
    covariates[:, :, 4] = rng.random((n_replicates, n_patients)) < 0.03  # often absent
    covariates[:, :, 5] = rng.integers(0, 2, (n_replicates, n_patients))
    return covariates, treated


def _weights(rng, kind, shape):
    if kind == "ones":
        return np.ones(shape)
    if kind == "mask":
        return (rng.random(shape) < 0.5).astype(float)
    return rng.choice([0.0, 1.0, 0.5, 1 / 3, 2.0], size=shape)


@pytest.mark.parametrize("seed", range(12))
def test_compiled_equals_numpy_on_random_cohorts(seed):
    """Means and variances differ in the order of their sums only: SMDs and variance ratios to
    1e-12 relative (1e-14 absolute near zero), max |SMD| likewise, statuses identical; with
    categorical levels, fractional and zero weights, empty arms, NaN values outside every
    cohort, one to three cohorts, a shared or each cohort's own reference sample."""
    rng = np.random.default_rng(seed)
    n_replicates, n_patients = int(rng.integers(1, 40)), int(rng.integers(2, 700))
    covariates, treated = _cohorts(rng, n_replicates, n_patients)
    shape = treated.shape
    cohorts = [_weights(rng, kind, shape) for kind in rng.choice(["ones", "mask", "fractional"],
                                                               size=int(rng.integers(1, 4)))]
    cohorts[-1][0] = 0.0  # nobody in the first replicate
    if n_replicates > 1:
        cohorts[-1][1, treated[1]] = 0.0  # no treated patient
    reference = [None, np.ones(shape), _weights(rng, "mask", shape)][seed % 3]
    outside = (np.stack(cohorts) == 0).all(axis=0) & ((reference == 0) if reference is not None else True)
    covariates[outside] = np.nan
    for denominator in ("treated", "control", "pooled"):
        compiled = standardised_differences_by_cohort(covariates, KINDS, treated, weights=cohorts,
                                                      denominator=denominator, reference_weights=reference)
        numpy = standardised_differences_by_cohort(covariates, KINDS, treated, weights=cohorts,
                                                   denominator=denominator, reference_weights=reference,
                                                   compiled=False)
        for fast, oracle in zip(compiled, numpy, strict=True):
            np.testing.assert_array_equal(fast.status, oracle.status)
            np.testing.assert_allclose(fast.smd, oracle.smd, rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(fast.variance_ratio, oracle.variance_ratio, rtol=1e-12)
            np.testing.assert_allclose(fast.max_abs_smd, oracle.max_abs_smd, rtol=1e-12, atol=1e-14)


def test_moments_of_hand_cohort():
    """Two cohorts, three distinct weight arrays: means and wvar variances written out."""
    values = np.array([[[1.0], [2.0], [4.0], [0.0], [3.0], [np.nan]]])
    treated = np.array([[True, True, True, False, False, False]])
    ones = np.ones((1, 6))
    ones[0, 5] = 0.0
    half = np.array([[1.0, 0.5, 0.0, 1.0, 1.0, 0.0]])
    slots = np.array([[0, 1, 0, 1], [2, 3, 0, 1]], dtype=np.int64)
    mean, variance, total = balance_kernels.cohort_moments(
        values, treated, (ones, half), np.zeros(1, np.int64), np.full(1, balance_kernels.RAW),
        np.zeros(1, bool), slots)
    np.testing.assert_allclose(mean[0, 0, 0], [7 / 3, 1.5, 7 / 3, 1.5], rtol=1e-15)
    np.testing.assert_allclose(variance[0, 0, 0], [7 / 3, 4.5, 7 / 3, 4.5], rtol=1e-14)
    np.testing.assert_allclose(total[:, 0], [[3, 2, 3, 2], [1.5, 2, 3, 2]])
    # weights 1, 1/2 -> normalised 2/3, 1/3: mean 4/3, reliability sum w (x - m)^2 / (1 - sum w^2)
    np.testing.assert_allclose(mean[1, 0, 0, 0], 4 / 3, rtol=1e-15)
    np.testing.assert_allclose(variance[1, 0, 0, 0], (2 / 3 * (1 / 3) ** 2 + 1 / 3 * (2 / 3) ** 2) / (1 - 5 / 9),
                               rtol=1e-14)


@pytest.mark.parametrize("denominator", sorted(balance_kernels.DENOMINATOR_CODES))
def test_standardised_table_equals_numpy_rules(denominator):
    """Given the same moments the compiled SMD rules are the numpy ones bit for bit: zero and
    NaN variances (both fallbacks), equal and unequal means of constant arms, categorical levels
    tied within the tolerance or all NaN, empty weightings."""
    rng = np.random.default_rng(sorted(balance_kernels.DENOMINATOR_CODES).index(denominator))
    owner = np.array([0, 1, 1, 1, 2, 3, 3, 4], dtype=np.int64)
    categorical = np.array([False, True, False, True, False])
    continuous = np.array([True, False, False, False, True, False, False, False])
    shape = (3, 400, owner.size, 4)
    mean = rng.choice([0.0, 0.25, 0.5, 1.0, 3.0, np.nan], size=shape) + rng.choice([0.0, 1e-9, 0.3], size=shape)
    variance = rng.choice([0.0, 1e-17, 0.1875, 0.25, 2.0, np.nan], size=shape)
    mean[:, :50, 1:4, 0] = mean[:, :50, 1:4, 0] + np.array([0.0, 0.0, 1e-13])  # tied levels
    total = rng.choice([0.0, 1.0, 7.5], p=[0.05, 0.5, 0.45], size=shape[:2] + (4,))
    fast = balance_kernels.standardised_table(mean, variance, total, owner, categorical, continuous,
                                              balance_kernels.DENOMINATOR_CODES[denominator], ZERO_SD,
                                              LEVEL_TIE_TOLERANCE)
    oracle = _standardised_table(mean, variance, (total <= 0).any(axis=2), owner.astype(np.intp), categorical,
                                 continuous, SMD_DENOMINATORS[denominator])
    for name, a, b in zip(("smd", "variance_ratio", "max_abs", "empty"), fast, oracle, strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)
