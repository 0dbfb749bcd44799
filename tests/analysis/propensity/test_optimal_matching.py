"""Optimal pair matching against a brute-force search (small cohorts) and scipy's assignment
solver (larger ones). R's optmatch (MatchIt method="optimal") is not installed here."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from analysis import status
from analysis.propensity.matching import match_patients
from analysis.propensity.optimal_matching import match_optimal


def brute_force(t_values, c_values, caliper):
    """(pairs, total distance) of the best matching: most pairs within the caliper, then the
    least total distance; an exhaustive search over every partial injective map of treated to
    controls (memoised on the set of controls used, so every matching is considered)."""
    from functools import lru_cache

    n_t, n_c = len(t_values), len(c_values)

    @lru_cache(maxsize=None)
    def best(i, used):
        if i == n_t:
            return (0, 0.0)
        pairs, total = best(i + 1, used)  # treated i unmatched
        options = [(pairs, -total)]
        for c in range(n_c):
            gap = abs(t_values[i] - c_values[c])
            if not used >> c & 1 and gap <= caliper:
                pairs, total = best(i + 1, used | 1 << c)
                options.append((pairs + 1, -(total + gap)))
        pairs, negative_total = max(options)
        return (pairs, -negative_total)

    return best(0, 0)


def small_batch(rng, n_rep, n_max=12, integer=False):
    distance = rng.normal(size=(n_rep, n_max))
    if integer:
        distance = np.round(distance * 3)  # ties
    treated = rng.random((n_rep, n_max)) < 0.45
    mask = rng.random((n_rep, n_max)) < 0.85
    return distance, treated, mask


def summary(result, distance, treated, mask, caliper):
    """Per replicate: (pairs, total distance); checks the matching's invariants on the way."""
    out = []
    for r in range(distance.shape[0]):
        controls = result.control_of[r, :, 0]
        pairs = [(t, c) for t, c in enumerate(controls) if c >= 0]
        assert all(treated[r, t] and mask[r, t] and not treated[r, c] and mask[r, c] for t, c in pairs)
        assert len({c for _, c in pairs}) == len(pairs)
        gaps = [abs(distance[r, t] - distance[r, c]) for t, c in pairs]
        assert all(g <= caliper[r] for g in gaps)
        assert result.n_pairs[r] == len(pairs)
        out.append((len(pairs), sum(gaps)))
    return out


@pytest.mark.parametrize("integer", [False, True])
@pytest.mark.parametrize("caliper_sd", [None, 0.25, 0.6])
def test_total_distance_equals_brute_force(integer, caliper_sd):
    rng = np.random.default_rng([int(integer), 0 if caliper_sd is None else int(caliper_sd * 100)])
    distance, treated, mask = small_batch(rng, 200, integer=integer)
    caliper = np.full(200, np.inf if caliper_sd is None else caliper_sd * (3.0 if integer else 1.0))
    result = match_optimal(distance, treated, mask=mask, caliper=None if caliper_sd is None else caliper)
    found = summary(result, distance, treated, mask, caliper)
    for r in range(200):
        t_values = distance[r, treated[r] & mask[r]]
        c_values = distance[r, ~treated[r] & mask[r]]
        expected = brute_force(list(t_values), list(c_values), caliper[r])
        assert found[r][0] == expected[0]
        assert found[r][1] == pytest.approx(expected[1], rel=1e-12, abs=1e-12)
        assert result.status[r] == (status.OK if expected[0] > 0 else status.NO_MATCHES)


@pytest.mark.parametrize("caliper_sd", [None, 0.1, 0.2])
def test_total_distance_equals_scipy_assignment_on_paper_sized_cohorts(caliper_sd):
    rng = np.random.default_rng(35 if caliper_sd is None else int(caliper_sd * 1000))
    n_rep, n_pat = 60, 100
    logit = rng.normal(size=(n_rep, n_pat)) + 0.8 * (rng.random((n_rep, n_pat)) < 0.35)
    treated = rng.random((n_rep, n_pat)) < 0.35
    sd = logit.std(axis=1, ddof=1)
    caliper = np.full(n_rep, np.inf) if caliper_sd is None else caliper_sd * sd
    result = match_optimal(logit, treated, caliper=None if caliper_sd is None else caliper)
    found = summary(result, logit, treated, np.ones_like(treated), caliper)
    for r in range(n_rep):
        t_values, c_values = logit[r, treated[r]], logit[r, ~treated[r]]
        gap = np.abs(t_values[:, None] - c_values[None, :])
        allowed = gap <= caliper[r]
        big = 1.0 + gap[allowed].sum() if allowed.any() else 1.0
        cost = np.where(allowed, gap, big)  # forbidden pairs cost more than any allowed matching
        rows, cols = linear_sum_assignment(cost)
        keep = allowed[rows, cols]
        assert found[r][0] == keep.sum()
        assert found[r][1] == pytest.approx(gap[rows, cols][keep].sum(), rel=1e-10)


def test_optimal_total_is_never_above_greedy_nearest_neighbour():
    rng = np.random.default_rng(8)
    logit = rng.normal(size=(200, 60))
    treated = rng.random((200, 60)) < 0.3
    optimal = match_patients("optimal", logit, treated)
    greedy = match_patients("matchit_nn", logit, treated)

    def totals(result):
        rows, treated_index = np.nonzero(result.control_of[:, :, 0] >= 0)
        controls = result.control_of[rows, treated_index, 0]
        return np.bincount(rows, np.abs(logit[rows, treated_index] - logit[rows, controls]), minlength=200)

    np.testing.assert_array_equal(optimal.n_pairs, greedy.n_pairs)
    assert np.all(totals(optimal) <= totals(greedy) + 1e-12)
    assert np.mean(totals(optimal) < totals(greedy) - 1e-9) > 0.5


def test_pairs_numbered_in_data_order_and_options_checked():
    distance = np.array([[0.1, 0.5, 0.9, 0.12, 0.48, 0.95]])
    treated = np.array([[True, True, True, False, False, False]])
    result = match_optimal(distance, treated)
    assert result.control_of[0, :3, 0].tolist() == [3, 4, 5]
    assert result.pair_id[0].tolist() == [0, 1, 2, 0, 1, 2]
    assert result.weight[0].tolist() == [1.0] * 6
    with pytest.raises(ValueError, match="1:1"):
        match_optimal(distance, treated, ratio=2)
    with pytest.raises(ValueError, match="1:1"):
        match_optimal(distance, treated, replace=True)
