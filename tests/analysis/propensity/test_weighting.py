"""Propensity-score weights and frequency quantiles against hand computation, cohort by cohort."""

from __future__ import annotations

import numpy as np
import pytest

from analysis import status
from analysis.propensity.balance import standardised_differences
from analysis.propensity.weighting import ESTIMANDS, effective_sample_sizes, propensity_weights
from analysis.quantiles import frequency_quantiles

N_COHORTS = 200


def random_batch(rng, n_cohorts=N_COHORTS, n_max=90):
    """Padded cohorts of 10-90 patients, propensity scores in (0, 1), a mask."""
    shape = (n_cohorts, n_max)
    logit = rng.normal(0.0, rng.uniform(0.3, 2.5, (n_cohorts, 1)), shape) + rng.normal(0, 1, (n_cohorts, 1))
    ps = 1.0 / (1.0 + np.exp(-logit))
    treated = rng.random(shape) < ps
    mask = np.zeros(shape, bool)
    for b in range(n_cohorts):
        n = int(rng.integers(10, n_max + 1))
        mask[b, np.sort(rng.choice(n_max, n, replace=False))] = True
    ps = np.where(mask, ps, np.nan)  # outside the cohort: garbage that must be ignored
    return ps, treated, mask


def hand_weights(ps, treated, estimand, stabilize=False, trim=None):
    """One cohort's weights written out from the definitions (WeightIt get_w_from_ps, trim)."""
    if estimand == "ate":
        w = np.where(treated, 1 / ps, 1 / (1 - ps))
    elif estimand == "att":
        w = np.where(treated, 1.0, ps / (1 - ps))
    else:
        w = np.where(treated, 1 - ps, ps)
    if stabilize:
        share = treated.mean()
        w = w * np.where(treated, share, 1 - share)
    if trim is not None:
        trimmable = ~treated if estimand == "att" else np.ones(len(w), bool)
        threshold = np.quantile(w[trimmable], trim, method="closest_observation")  # R type 3
        w = np.where(trimmable & (w > threshold), threshold, w)
    return w


@pytest.fixture(scope="module")
def batch():
    return random_batch(np.random.default_rng(20240612))


@pytest.mark.parametrize("estimand", ESTIMANDS)
@pytest.mark.parametrize("trim", [None, 0.9, 0.99])
def test_weights_equal_hand_computation(batch, estimand, trim):
    ps, treated, mask = batch
    result = propensity_weights(ps, treated, estimand=estimand, mask=mask, trim=trim)
    ok = result.status == status.OK
    assert ok.sum() >= 0.95 * N_COHORTS
    for b in np.flatnonzero(ok):
        keep = mask[b]
        expected = hand_weights(ps[b, keep], treated[b, keep], estimand, trim=trim)
        np.testing.assert_allclose(result.weights[b, keep], expected, rtol=1e-14, atol=0)
        assert np.all(result.weights[b, ~keep] == 0)
        w, t = expected, treated[b, keep]
        assert result.ess_treated[b] == pytest.approx(w[t].sum() ** 2 / (w[t] ** 2).sum(), rel=1e-12)
        assert result.ess_control[b] == pytest.approx(w[~t].sum() ** 2 / (w[~t] ** 2).sum(), rel=1e-12)
        if trim is None:
            assert result.n_truncated[b] == 0 and np.isnan(result.truncation_weight[b])
        else:
            unclipped = hand_weights(ps[b, keep], t, estimand)
            assert result.n_truncated[b] == np.sum(unclipped > expected)


@pytest.mark.parametrize("trim", [None, 0.95])
def test_stabilised_ate_weights_equal_hand_computation(batch, trim):
    ps, treated, mask = batch
    result = propensity_weights(ps, treated, estimand="ate", mask=mask, stabilize=True, trim=trim)
    for b in np.flatnonzero(result.status == status.OK):
        keep = mask[b]
        expected = hand_weights(ps[b, keep], treated[b, keep], "ate", stabilize=True, trim=trim)
        np.testing.assert_allclose(result.weights[b, keep], expected, rtol=1e-14)


def test_stabilisation_only_for_the_ate_and_trim_range_checked(batch):
    ps, treated, mask = batch
    with pytest.raises(ValueError, match="ATE"):
        propensity_weights(ps, treated, estimand="att", mask=mask, stabilize=True)
    for bad in (0.3, 1.0):
        with pytest.raises(ValueError, match="quantile"):
            propensity_weights(ps, treated, estimand="ate", mask=mask, trim=bad)
    with pytest.raises(ValueError, match="choose one of"):
        propensity_weights(ps, treated, estimand="atc", mask=mask)


@pytest.mark.parametrize("estimand", ESTIMANDS)
def test_counts_give_the_weights_of_the_expanded_sample(batch, estimand):
    """A resample with counts c equals the cohort with every patient repeated c times:
    stabilisation shares, truncation quantile and effective sizes included."""
    ps, treated, mask = batch
    rng = np.random.default_rng(7)
    counts = rng.integers(0, 4, ps.shape) * mask
    stabilize = estimand == "ate"
    result = propensity_weights(ps, treated, estimand=estimand, counts=counts, stabilize=stabilize, trim=0.9)
    checked = 0
    for b in np.flatnonzero(result.status == status.OK)[:60]:
        repeat = counts[b]
        expanded_ps, expanded_t = np.repeat(ps[b], repeat), np.repeat(treated[b], repeat)
        expected = hand_weights(expanded_ps, expanded_t, estimand, stabilize=stabilize, trim=0.9)
        np.testing.assert_allclose(np.repeat(result.weights[b], repeat), expected, rtol=1e-14)
        t = expanded_t
        assert result.ess_treated[b] == pytest.approx(expected[t].sum() ** 2 / (expected[t] ** 2).sum(), rel=1e-12)
        assert result.ess_control[b] == pytest.approx(expected[~t].sum() ** 2 / (expected[~t] ** 2).sum(), rel=1e-12)
        checked += 1
    assert checked == 60


def test_degenerate_cohorts_get_a_status():
    ps = np.array([[0.2, 0.5, 0.7, 0.4], [0.2, 1.0, 0.5, 0.3], [0.2, 0.5, 0.7, 0.4]])
    treated = np.array([[True, False, True, False], [True, False, True, False], [True, True, True, True]])
    result = propensity_weights(ps, treated, estimand="ate")
    assert result.status.tolist() == [status.OK, status.UNDEFINED, status.EMPTY_ARM]
    assert np.all(result.weights[1:] == 0)
    # a propensity score of exactly 1 outside the mask does not matter
    masked = propensity_weights(ps, treated, estimand="ate", mask=ps < 1.0)
    assert masked.status[1] == status.OK


def test_weighted_balance_uses_the_weights(batch):
    """Weighted SMD (balance.py with the weights) against the weighted means written out."""
    ps, treated, mask = batch
    rng = np.random.default_rng(3)
    x = rng.normal(size=ps.shape + (1,)) + np.nan_to_num(ps)[:, :, None]
    weights = propensity_weights(ps, treated, estimand="ate", mask=mask)
    ones = mask.astype(float)
    balance = standardised_differences(x, ("continuous",), treated, weights=weights.weights, denominator="pooled",
                                       reference_weights=ones)
    for b in np.flatnonzero(weights.status == status.OK)[:40]:
        keep, t = mask[b], treated[b]
        v, w = x[b, :, 0], weights.weights[b]
        difference = np.average(v[keep & t], weights=w[keep & t]) - np.average(v[keep & ~t], weights=w[keep & ~t])
        sd = np.sqrt((np.var(v[keep & t], ddof=1) + np.var(v[keep & ~t], ddof=1)) / 2)
        assert balance.smd[b, 0] == pytest.approx(difference / sd, rel=1e-10)


def test_effective_sample_size_of_equal_weights_is_the_arm_size():
    treated = np.array([[True, True, False, False, False]])
    ess_t, ess_c = effective_sample_sizes(np.full((1, 5), 2.5), treated)
    assert ess_t[0] == pytest.approx(2.0) and ess_c[0] == pytest.approx(3.0)


# --------------------------------------------------------------------------- quantiles


@pytest.mark.parametrize("method", ["linear", "closest_observation"])
def test_frequency_quantiles_equal_numpy_on_the_expanded_sample(method):
    rng = np.random.default_rng(11)
    values = np.round(rng.normal(size=(300, 40)), 1)  # ties
    counts = rng.integers(0, 4, values.shape)
    counts[:5] = 1
    counts[5, :] = 0
    counts[6, :] = 0
    counts[6, 3] = 2
    probabilities = [0.0, 0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9, 0.975, 1.0]
    result = frequency_quantiles(values, counts, probabilities, method=method)
    for b in range(values.shape[0]):
        expanded = np.repeat(values[b], counts[b])
        if expanded.size == 0:
            assert np.all(np.isnan(result[b]))
            continue
        np.testing.assert_allclose(result[b], np.quantile(expanded, probabilities, method=method), rtol=0, atol=1e-15)
