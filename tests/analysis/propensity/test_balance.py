"""Standardised differences against a per-replicate implementation and hand cases."""

import zlib

import numpy as np
import pytest

from analysis import status
from analysis.propensity.balance import ZERO_SD, standardised_differences, standardised_differences_by_cohort

KINDS = ("binary", "continuous", "categorical", "continuous", "binary")


def _variance(x, w, binary):
    """MatchIt's wvar written out: p(1-p), or cov.wt's reliability-weighted variance."""
    keep = w > 0
    x, w = x[keep], w[keep] / w[keep].sum()
    mean = np.sum(w * x)
    if binary:
        return mean * (1 - mean)
    return np.sum(w * (x - mean) ** 2) / (1 - np.sum(w**2))


def _mean(x, w):
    keep = w > 0
    return np.average(x[keep], weights=w[keep])


def _smd_one(x, binary, t, w, rw, denominator):
    difference = _mean(x[t], w[t]) - _mean(x[~t], w[~t])
    v1, v0 = _variance(x[t], rw[t], binary), _variance(x[~t], rw[~t], binary)
    sd = {"treated": np.sqrt(v1), "control": np.sqrt(v0), "pooled": np.sqrt((v1 + v0) / 2)}[
        denominator
    ]
    if not (sd >= ZERO_SD):
        sd = np.sqrt((v1 + v0) / 2)
    if sd < ZERO_SD:
        return 0.0 if abs(difference) <= ZERO_SD else np.sign(difference) * np.inf
    return difference / sd


def _reference(covariates, kinds, treated, weights, reference_weights, denominator):
    n_replicates, _, n_covariates = covariates.shape
    smd = np.empty((n_replicates, n_covariates))
    ratio = np.full((n_replicates, n_covariates), np.nan)
    for r in range(n_replicates):
        t, w, rw = treated[r], weights[r], reference_weights[r]
        for c, kind in enumerate(kinds):
            x = covariates[r, :, c]
            if kind == "categorical":
                levels = range(int(np.nanmax(x[(w > 0) | (rw > 0)])) + 1)
                values = [
                    _smd_one((x == k).astype(float), True, t, w, rw, denominator) for k in levels
                ]
                largest = max(abs(v) for v in values)
                smd[r, c] = next(v for v in values if abs(v) >= largest * (1 - 1e-12))
            else:
                smd[r, c] = _smd_one(x, kind == "binary", t, w, rw, denominator)
            if kind == "continuous":
                ratio[r, c] = _variance(x[t], w[t], False) / _variance(x[~t], w[~t], False)
    return smd, ratio


def _random_cohorts(rng, n_replicates=60, n_patients=50):
    treated = rng.random((n_replicates, n_patients)) < 0.4
    treated[:, :3] = True
    treated[:, 3:6] = False
    covariates = np.empty((n_replicates, n_patients, len(KINDS)))
    covariates[:, :, 0] = rng.random((n_replicates, n_patients)) < 0.3 + 0.2 * treated
    covariates[:, :, 1] = rng.normal(55 + 3 * treated, 10)
    covariates[:, :, 2] = rng.integers(0, 3, (n_replicates, n_patients)) + (
        treated & (rng.random((n_replicates, n_patients)) < 0.3)
    )
    covariates[:, :, 3] = np.round(rng.lognormal(3, 1, (n_replicates, n_patients)))  # ties
    covariates[:, :, 4] = rng.random((n_replicates, n_patients)) < 0.1
    return covariates, treated


@pytest.mark.parametrize("denominator", ["treated", "control", "pooled"])
@pytest.mark.parametrize("weighting", ["none", "mask", "matching", "matchit_reference"])
def test_matches_per_replicate_implementation(denominator, weighting):
    rng = np.random.default_rng(zlib.crc32(f"{denominator}-{weighting}".encode()))
    covariates, treated = _random_cohorts(rng)
    shape = treated.shape
    weights = {
        "none": np.ones(shape),
        "mask": (rng.random(shape) < 0.6).astype(float),
        "matching": rng.choice([0.0, 1.0, 0.5, 1 / 3], size=shape),
        "matchit_reference": (rng.random(shape) < 0.6).astype(float),
    }[weighting]
    weights[:, :6] = 1.0
    reference = np.ones(shape) if weighting == "matchit_reference" else weights
    if weighting != "matchit_reference":
        covariates[weights == 0, 1] = np.nan  # values outside the analysed cohort are unused
    kwargs = {"reference_weights": reference} if weighting == "matchit_reference" else {}
    balance = standardised_differences(
        covariates, KINDS, treated, weights=weights, denominator=denominator, **kwargs
    )
    expected_smd, expected_ratio = _reference(
        covariates, KINDS, treated, weights, reference, denominator
    )
    # atol: the SMD is a difference of two means of ~55 (rounding ~1e-14) divided by an SD ~10,
    # so near-zero SMDs carry ~1e-15 absolute error whatever the summation order
    np.testing.assert_allclose(balance.smd, expected_smd, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(balance.variance_ratio, expected_ratio, rtol=1e-12)
    np.testing.assert_allclose(
        balance.max_abs_smd, np.nanmax(np.abs(balance.smd), axis=1), rtol=0
    )
    assert (balance.status == status.OK).all()


@pytest.mark.parametrize("reference", ["full", "own"])
def test_by_cohort_equals_one_cohort_at_a_time(reference):
    """Several cohorts at once (shared centring) give each cohort's own numbers: bit for bit
    when every patient is in the reference sample, to rounding otherwise."""
    rng = np.random.default_rng(41)
    covariates, treated = _random_cohorts(rng)
    shape = treated.shape
    cohorts = [np.ones(shape), (rng.random(shape) < 0.5).astype(float), rng.choice([0.0, 1.0, 2.0], size=shape)]
    for weights in cohorts:
        weights[:, :6] = 1.0
    reference_weights = np.ones(shape) if reference == "full" else None
    together = standardised_differences_by_cohort(covariates, KINDS, treated, weights=cohorts,
                                                  denominator="pooled", reference_weights=reference_weights)
    assert len(together) == len(cohorts)
    for weights, balance in zip(cohorts, together):
        alone = standardised_differences(covariates, KINDS, treated, weights=weights, denominator="pooled",
                                         reference_weights=reference_weights)
        if reference == "full":
            for name in ("smd", "variance_ratio", "max_abs_smd", "status"):
                np.testing.assert_array_equal(getattr(balance, name), getattr(alone, name), err_msg=name)
        else:
            np.testing.assert_allclose(balance.smd, alone.smd, rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(balance.variance_ratio, alone.variance_ratio, rtol=1e-12)
            np.testing.assert_array_equal(balance.status, alone.status)


def test_matchit_convention_reuses_unmatched_sd():
    rng = np.random.default_rng(1)
    covariates, treated = _random_cohorts(rng, n_replicates=20)
    matched = (rng.random(treated.shape) < 0.5).astype(float)
    matched[:, :6] = 1.0
    kinds = ("binary", "continuous", "categorical", "continuous", "binary")
    before = standardised_differences(covariates, kinds, treated)
    after = standardised_differences(
        covariates, kinds, treated, weights=matched, reference_weights=np.ones(treated.shape)
    )
    for r in range(20):
        t, m = treated[r], matched[r] > 0
        x = covariates[r, :, 1]
        sd_unmatched = x[t].std(ddof=1)
        np.testing.assert_allclose(
            after.smd[r, 1], (x[t & m].mean() - x[~t & m].mean()) / sd_unmatched, rtol=1e-12
        )
        np.testing.assert_allclose(
            before.smd[r, 1], (x[t].mean() - x[~t].mean()) / sd_unmatched, rtol=1e-12
        )


def test_hand_cases_binary_and_continuous():
    treated = np.array([[True] * 4 + [False] * 4])
    binary = np.array([1, 1, 0, 0, 1, 0, 0, 0], dtype=float)
    continuous = np.array([1, 2, 3, 6, 0, 1, 1, 2], dtype=float)
    covariates = np.stack([binary, continuous], axis=-1)[None]
    kinds = ("binary", "continuous")
    # binary: p_T = 0.5, p_C = 0.25; var p(1-p): 0.25 and 0.1875 (no n-1)
    treated_sd = standardised_differences(covariates, kinds, treated, denominator="treated")
    pooled_sd = standardised_differences(covariates, kinds, treated, denominator="pooled")
    np.testing.assert_allclose(treated_sd.smd[0, 0], 0.25 / 0.5, rtol=1e-14)
    np.testing.assert_allclose(pooled_sd.smd[0, 0], 0.25 / np.sqrt((0.25 + 0.1875) / 2), rtol=1e-14)
    # continuous: means 3 and 1; var (n-1) 14/3 and 2/3 (cobalt/MatchIt unweighted = sd())
    np.testing.assert_allclose(treated_sd.smd[0, 1], 2 / np.sqrt(14 / 3), rtol=1e-14)
    np.testing.assert_allclose(pooled_sd.smd[0, 1], 2 / np.sqrt((14 / 3 + 2 / 3) / 2), rtol=1e-14)
    np.testing.assert_allclose(treated_sd.variance_ratio[0], [np.nan, 7.0], rtol=1e-14)
    np.testing.assert_allclose(treated_sd.max_abs_smd, [2 / np.sqrt(14 / 3)], rtol=1e-14)


def test_categorical_is_the_level_with_largest_abs_smd():
    rng = np.random.default_rng(2)
    covariates, treated = _random_cohorts(rng, n_replicates=30)
    level = covariates[:, :, 2:3]
    balance = standardised_differences(level, ("categorical",), treated, denominator="pooled")
    indicators = (level == np.arange(4)).astype(float)
    expanded = standardised_differences(indicators, ("binary",) * 4, treated, denominator="pooled")
    magnitude = np.abs(expanded.smd)
    pick = np.argmax(magnitude >= magnitude.max(axis=1, keepdims=True) * (1 - 1e-12), axis=1)
    np.testing.assert_array_equal(balance.smd[:, 0], expanded.smd[np.arange(30), pick])
    assert np.isnan(balance.variance_ratio).all()


@pytest.mark.filterwarnings("error")
def test_zero_sd_fallbacks():
    treated = np.array([[True] * 3 + [False] * 3] * 4)
    x = np.array(
        [
            [2.0, 2.0, 2.0, 1.0, 2.0, 3.0],  # treated constant: pooled SD sqrt((0 + 1)/2)
            [2.0, 2.0, 2.0, 2.0, 2.0, 2.0],  # both constant, equal means: 0
            [3.0, 3.0, 3.0, 2.0, 2.0, 2.0],  # both constant, different: +inf
            [1.0, 1.0, 1.0, 0.0, 0.0, 0.0],  # the same as binary
        ]
    )
    continuous = standardised_differences(x[:, :, None], ("continuous",), treated)
    np.testing.assert_allclose(continuous.smd[0, 0], 0.0 / np.sqrt(0.5))
    np.testing.assert_array_equal(continuous.smd[1:, 0], [0.0, np.inf, np.inf])
    assert np.isnan(continuous.variance_ratio[1, 0])
    x[0] = [2.0, 2.0, 2.0, 0.0, 1.0, 2.0]
    shifted = standardised_differences(x[:, :, None], ("continuous",), treated)
    np.testing.assert_allclose(shifted.smd[0, 0], 1.0 / np.sqrt(0.5), rtol=1e-14)
    binary = standardised_differences(x[3:, :, None], ("binary",), treated[3:])
    assert binary.smd[0, 0] == np.inf


@pytest.mark.filterwarnings("error")
def test_empty_arm_gives_nan_and_status():
    rng = np.random.default_rng(3)
    covariates, treated = _random_cohorts(rng, n_replicates=3)
    weights = np.ones(treated.shape)
    weights[0, treated[0]] = 0.0  # no treated patient analysed
    weights[1] = 0.0  # nobody analysed
    balance = standardised_differences(covariates, KINDS, treated, weights=weights)
    np.testing.assert_array_equal(balance.status, [status.EMPTY_ARM, status.EMPTY_ARM, status.OK])
    assert np.isnan(balance.smd[:2]).all() and np.isnan(balance.max_abs_smd[:2]).all()
    assert np.isfinite(balance.smd[2]).all()


def test_invalid_arguments():
    covariates = np.zeros((1, 4, 2))
    treated = np.array([[True, True, False, False]])
    with pytest.raises(ValueError, match="pooled"):
        standardised_differences(covariates, ("binary", "binary"), treated, denominator="sd")
    with pytest.raises(ValueError, match="ordinal"):
        standardised_differences(covariates, ("binary", "ordinal"), treated)
    with pytest.raises(ValueError, match="2 covariates"):
        standardised_differences(covariates, ("binary",), treated)
