"""analysis/propensity/sample_sums.py: the caliper's pooled SD and Kish's effective sizes,
compiled, equal to the numpy expressions they replace bit for bit."""

import numpy as np
import pytest

from analysis.propensity.caliper import _sd_caliper, _sd_caliper_numpy, caliper_width
from analysis.propensity.weighting import effective_sample_sizes


def _random_case(rng, n_rep, n_pat):
    distance = rng.normal(0.0, 2.0, (n_rep, n_pat))
    eligible = rng.random((n_rep, n_pat)) < rng.uniform(0.0, 1.0, (n_rep, 1))
    eligible[0] = False  # nobody eligible
    if n_pat > 1:
        eligible[1] = False
        eligible[1, 0] = True  # one eligible: NaN
    distance[~eligible & (rng.random((n_rep, n_pat)) < 0.3)] = np.nan  # non-finite only where not eligible
    return distance, eligible


@pytest.mark.parametrize("n_pat", [1, 7, 100, 129, 300, 2049])
def test_pooled_sd_caliper_equals_numpy_bit_for_bit(n_pat):
    rng = np.random.default_rng(n_pat)
    distance, eligible = _random_case(rng, 40, n_pat)
    compiled = _sd_caliper(distance, eligible, 0.2)
    expected = _sd_caliper_numpy(distance, eligible, 0.2)
    np.testing.assert_array_equal(compiled, expected)
    assert np.isnan(compiled[0]) and np.isnan(compiled[1])
    assert np.isfinite(compiled[2:][eligible[2:].sum(axis=1) >= 2]).all()


def test_pooled_sd_is_the_sample_sd():
    rng = np.random.default_rng(5)
    distance = rng.normal(size=(3, 50))
    mask = rng.random((3, 50)) < 0.7
    width = caliper_width(distance, mask, caliper=0.2)
    for r in range(3):
        assert width[r] == pytest.approx(0.2 * np.std(distance[r][mask[r]], ddof=1), rel=1e-14)


@pytest.mark.parametrize("n_pat", [1, 5, 100, 200, 1000])
def test_kish_sizes_equal_numpy_bit_for_bit(n_pat):
    rng = np.random.default_rng(100 + n_pat)
    n_rep = 30
    weights = rng.gamma(0.7, 2.0, (n_rep, n_pat)) * (rng.random((n_rep, n_pat)) < 0.8)
    weights[0] = 0.0  # an empty sample: NaN both arms
    treated = rng.random((n_rep, n_pat)) < 0.4
    counts = rng.poisson(1.0, (n_rep, n_pat)).astype(float)
    for c in (None, counts):
        compiled = effective_sample_sizes(weights, treated, c)
        expected = effective_sample_sizes(weights, treated, c, compiled=False)
        for a, b in zip(compiled, expected):
            np.testing.assert_array_equal(a, b)
        assert np.isnan(compiled[0][0]) and np.isnan(compiled[1][0])


def test_kish_size_of_equal_weights_is_the_count():
    treated = np.array([[True, True, False, False, False]])
    ess_t, ess_c = effective_sample_sizes(np.full((1, 5), 2.5), treated)
    assert ess_t[0] == 2.0 and ess_c[0] == 3.0


@pytest.mark.parametrize("n_pat", [1, 9, 100, 300])
def test_arm_totals_equal_numpy_bit_for_bit(n_pat):
    from analysis.propensity.sample_sums import arm_totals

    rng = np.random.default_rng(200 + n_pat)
    counts = rng.poisson(1.3, (25, n_pat)) * rng.uniform(0.5, 2.0, (25, n_pat))
    treated = rng.random((25, n_pat)) < 0.5
    totals = arm_totals(counts, treated)
    np.testing.assert_array_equal(totals[0], (counts * treated).sum(axis=1))
    np.testing.assert_array_equal(totals[1], (counts * ~treated).sum(axis=1))
