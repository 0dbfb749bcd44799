"""Tests of analysis/performance/moments.py: two-pass Moments, Chan et al.'s merge, exact
quantiles from frequencies — against NumPy on the whole data."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.performance.moments import (
    Moments,
    merge_moments,
    moments_of,
    quantiles_from_frequencies,
)


def split_points(rng, n, n_parts):
    return np.sort(rng.choice(np.arange(1, n), size=n_parts - 1, replace=False)) if n_parts > 1 else []


def test_moments_of_matches_numpy_with_missing_values():
    rng = np.random.default_rng(1)
    values = rng.normal(0.3, 0.2, (4, 3, 50))
    used = rng.random(values.shape) < 0.8
    used[0, 0] = False  # no replicate used
    used[0, 1] = False
    used[0, 1, 7] = True  # exactly one
    moments = moments_of(values, used)
    for index in np.ndindex(values.shape[:-1]):
        x = values[index][used[index]]
        assert moments.count[index] == x.size
        if x.size == 0:
            assert np.isnan(moments.mean[index]) and moments.m2[index] == 0.0
            continue
        assert moments.mean[index] == pytest.approx(x.mean(), rel=1e-14)
        assert moments.m2[index] == pytest.approx(np.sum((x - x.mean()) ** 2), rel=1e-12, abs=0)
        if x.size > 1:
            assert moments.variance[index] == pytest.approx(x.var(ddof=1), rel=1e-12)
        else:
            assert np.isnan(moments.variance[index])
    assert moments.count.dtype == np.int64


def test_a_nan_among_used_values_propagates():
    moments = moments_of([[1.0, np.nan, 3.0]], [[True, True, True]])
    assert moments.count[0] == 3 and np.isnan(moments.mean[0]) and np.isnan(moments.m2[0])


@pytest.mark.parametrize("offset", [0.0, 0.3, 25.0])
def test_merging_any_partition_in_any_order_equals_the_whole(offset):
    rng = np.random.default_rng(2)
    for _ in range(30):
        n = int(rng.integers(2, 400))
        values = offset + rng.normal(0.0, rng.uniform(0.01, 3.0), (3, n))
        used = rng.random(values.shape) < 0.9
        whole = moments_of(values, used)
        edges = [0, *split_points(rng, n, int(rng.integers(1, min(n, 20) + 1))), n]
        parts = [moments_of(values[:, a:b], used[:, a:b]) for a, b in zip(edges[:-1], edges[1:])]
        while len(parts) > 1:  # random merge tree
            i = int(rng.integers(len(parts) - 1))
            left, right = parts.pop(i), parts.pop(i)
            parts.insert(i, merge_moments(*((left, right) if rng.random() < 0.5 else (right, left))))
        merged = parts[0]
        np.testing.assert_array_equal(merged.count, whole.count)
        np.testing.assert_allclose(merged.mean, whole.mean, rtol=1e-12)
        np.testing.assert_allclose(merged.m2, whole.m2, rtol=1e-12)


def test_an_empty_side_is_the_identity():
    part = moments_of(np.array([[0.5, 0.7, 0.9]]), np.array([[True, True, True]]))
    empty = moments_of(np.zeros((1, 0)), np.zeros((1, 0), bool))
    for merged in (merge_moments(part, empty), merge_moments(empty, part)):
        assert merged.count[0] == 3
        assert merged.mean[0] == part.mean[0] and merged.m2[0] == part.m2[0]
    both = merge_moments(empty, empty)
    assert both.count[0] == 0 and np.isnan(both.mean[0]) and both.m2[0] == 0.0


def test_merge_keeps_a_nan_mean():
    nan_part = Moments(np.array([2]), np.array([np.nan]), np.array([np.nan]))
    part = moments_of(np.array([[1.0, 2.0]]), np.array([[True, True]]))
    merged = merge_moments(part, nan_part)
    assert merged.count[0] == 4 and np.isnan(merged.mean[0]) and np.isnan(merged.m2[0])


def test_quantiles_from_frequencies_equal_numpy_bit_for_bit():
    rng = np.random.default_rng(3)
    levels = [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]
    for _ in range(200):
        n = int(rng.integers(1, 60))
        data = rng.integers(0, 12, n)
        values, frequency = np.unique(data, return_counts=True)
        got = quantiles_from_frequencies(values.astype(float), frequency[np.newaxis], levels)[:, 0]
        expected = np.quantile(data.astype(float), levels)
        np.testing.assert_array_equal(got, expected)


def test_quantiles_from_frequencies_per_cell_and_empty():
    values = np.array([2.0, 3.0, 7.0])
    frequencies = np.array([[1, 0, 3], [0, 0, 0], [0, 2, 0]])
    got = quantiles_from_frequencies(values, frequencies, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(got[:, 0], np.quantile([2.0, 7, 7, 7], [0.0, 0.5, 1.0]))
    assert np.isnan(got[:, 1]).all()
    np.testing.assert_array_equal(got[:, 2], [3.0, 3.0, 3.0])
    nothing = quantiles_from_frequencies(np.zeros(0), np.zeros((2, 0), np.int64), [0.5])
    assert nothing.shape == (1, 2) and np.isnan(nothing).all()
