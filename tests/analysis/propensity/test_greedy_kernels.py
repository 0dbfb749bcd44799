"""The compiled greedy matchers (analysis.propensity.greedy_kernels) against the numpy stepper.

The kernels replace a step-by-step numpy walk over the treated patients; they must give the
same pairs, weights and counts for every matcher, ratio, replacement, order and caliper, on
cohorts with exact ties, ineligible patients, empty arms and gaps exactly at the caliper, and
(FUZZY) consume the block's random numbers identically, so the generator is in the same state
afterwards.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

from analysis.propensity import fuzzy_kernels, greedy_kernels, matching
from analysis.propensity.matched_sets import assemble_matched_sets
from analysis.propensity.matching import _match

CHOOSERS = {
    "matchit_nn": (matching._NearestLeftRight, True),
    "spss_fuzzy_v1": (matching._RandomWithinTolerance, False),
    "spss_fuzzy_v2": (matching._ClosestWithinTolerance, False),
}


def _cohorts(seed, n_rep=40, n_pat=60):
    rng = np.random.default_rng(seed)
    # Coarse grids make exact ties and gaps exactly at the caliper common.
    distance = rng.integers(0, 25, (n_rep, n_pat)) / 8.0
    distance[rng.random((n_rep, n_pat)) < 0.05] = np.nan
    share = rng.uniform(0.1, 0.9, (n_rep, 1))
    treated = rng.random((n_rep, n_pat)) < share
    treated[0] = True            # no control at all
    treated[1, :] = False        # no treated
    treated[2, :3] = True        # tiny arms
    treated[2, 3:] = False
    mask = rng.random((n_rep, n_pat)) > 0.1
    caliper = np.where(rng.random(n_rep) < 0.2, np.nan, rng.choice([0.0, 0.125, 0.25, 1.0], n_rep))
    return distance, treated, mask, caliper


@pytest.mark.parametrize("method,runs", [("matchit_nn", False), ("spss_fuzzy_v1", False), ("spss_fuzzy_v1", True),
                                         ("spss_fuzzy_v2", False)])
@pytest.mark.parametrize("ratio,replace", [(1, False), (2, False), (3, True), (1, True)])
@pytest.mark.parametrize("order", ["largest", "data", "random"])
def test_kernels_equal_numpy_stepper(method, runs, ratio, replace, order, monkeypatch):
    """``runs``: FUZZY < 2.0 through its sorted runs and block index (used from
    ``matching.SORTED_RUNS_PATIENTS`` patients, here forced) instead of the scans."""
    monkeypatch.setattr(matching, "SORTED_RUNS_PATIENTS", 0 if runs else 10**9)
    chooser, rounds_first = CHOOSERS[method]
    for seed in range(3):
        distance, treated, mask, caliper = _cohorts(seed)
        rng_a, rng_b = np.random.default_rng(seed + 100), np.random.default_rng(seed + 100)
        fast = _match(chooser, rounds_first, distance, treated, mask, caliper, ratio, replace, order, rng_a)
        slow = _match(chooser, rounds_first, distance, treated, mask, caliper, ratio, replace, order, rng_b,
                      compiled=False)
        for field in ("pair_id", "weight", "matched", "n_pairs", "control_of", "status"):
            np.testing.assert_array_equal(getattr(fast, field), getattr(slow, field), err_msg=field)
        assert rng_a.random() == rng_b.random()  # the same random numbers were consumed


def test_nearest_kernel_on_continuous_scores_without_mask():
    rng = np.random.default_rng(7)
    distance = rng.normal(size=(30, 500))
    treated = rng.random((30, 500)) < 0.35
    caliper = np.full(30, 0.05)
    fast = _match(matching._NearestLeftRight, True, distance, treated, None, caliper, 1, False, "largest", None)
    slow = _match(matching._NearestLeftRight, True, distance, treated, None, caliper, 1, False, "largest", None,
                  compiled=False)
    np.testing.assert_array_equal(fast.control_of, slow.control_of)
    assert (fast.n_pairs > 0).all()


def _state(rng):
    """A generator's full state (buffered 32-bit half included) as comparable lists."""
    def plain(value):
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        return value.tolist() if isinstance(value, np.ndarray) else value
    return plain(rng.bit_generator.state)


@numba.njit(cache=False)
def _kernel_draws(rng, counts):
    out = np.empty(counts.shape[0], np.int64)
    for i in range(counts.shape[0]):
        out[i] = fuzzy_kernels._draw(rng, counts[i])
    return out


@pytest.mark.parametrize("bit_generator", [np.random.PCG64, np.random.Philox, np.random.MT19937, np.random.SFC64])
def test_kernel_draws_equal_numpy_integers(bit_generator):
    """The FUZZY kernels draw inside numba (fuzzy_kernels._draw): per pool size, the number
    numpy's ``rng.integers(0, np.maximum(counts, 1))`` gives for that element, consuming the
    same words (none for pools of 0 and 1; pool sizes at and beyond 2**32 take numpy's 64-bit
    path), so the generator ends in the same state."""
    sizes = np.random.default_rng(3)
    for seed in range(5):
        numpy_rng, kernel_rng = np.random.Generator(bit_generator(seed)), np.random.Generator(bit_generator(seed))
        for step in range(40):
            counts = sizes.integers(0, 4000, 31)
            counts[sizes.random(31) < 0.3] = sizes.choice([0, 1, 2])
            if step % 8 == 0:
                counts[:7] = [2**31, 2**32 - 1, 2**32, 2**32 + 1, 3 * 2**31 + 5, 2**40 + 3, 2**63 - 1]
            expected = numpy_rng.integers(0, np.maximum(counts, 1))
            np.testing.assert_array_equal(_kernel_draws(kernel_rng, counts), expected)
        assert _state(numpy_rng) == _state(kernel_rng)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("ratio,replace", [(1, False), (2, False), (1, True)])
def test_fuzzy_v1_sorted_runs_equal_numpy_stepper_on_many_cohorts(ties, ratio, replace, monkeypatch):
    """FUZZY < 2.0's sorted-run kernel (random_within_match) on 60 random cohorts of 300
    patients (19 blocks of 16, the last one partial) with continuous scores or, with ``ties``,
    scores on a coarse grid (many exact ties between cases and controls, runs of ties longer
    than a block, gaps exactly at the tolerance), against the numpy stepper: the same pairs,
    and the generator in the same state."""
    monkeypatch.setattr(matching, "SORTED_RUNS_PATIENTS", 0)
    rng = np.random.default_rng(11 + ties)
    n_rep, n_pat = 60, 300
    distance = np.round(rng.beta(2, 3, (n_rep, n_pat)) * 40) / 40 if ties else rng.beta(2, 3, (n_rep, n_pat))
    distance[rng.random((n_rep, n_pat)) < 0.02] = np.nan
    treated = rng.random((n_rep, n_pat)) < rng.uniform(0.2, 0.6, (n_rep, 1))
    caliper = rng.choice([0.0, 0.025, 0.05, 0.2, np.nan], n_rep)
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    fast = _match(matching._RandomWithinTolerance, False, distance, treated, None, caliper, ratio, replace, "data",
                  rng_a)
    slow = _match(matching._RandomWithinTolerance, False, distance, treated, None, caliper, ratio, replace, "data",
                  rng_b, compiled=False)
    np.testing.assert_array_equal(fast.control_of, slow.control_of)
    np.testing.assert_array_equal(fast.pair_id, slow.pair_id)
    np.testing.assert_array_equal(fast.weight, slow.weight)
    assert _state(rng_a) == _state(rng_b)
    assert (fast.n_pairs > 0).sum() > n_rep // 2


def test_fuzzy_v1_sorted_runs_equal_numpy_stepper_on_large_cohorts():
    """The block index at its real sizes: 3 cohorts of 5,000 patients (blocks of 64 patients
    and sorted positions), PS-like scores, 35% treated, a tolerance of 0.05, 1 in 50
    patients masked, the PS rounded to 3 decimals in one cohort (long runs of ties)."""
    rng = np.random.default_rng(17)
    distance = rng.beta(2, 3, (3, 5000))
    distance[2] = np.round(distance[2], 3)
    treated = rng.random((3, 5000)) < 0.35
    mask = rng.random((3, 5000)) > 0.02
    rng_a, rng_b = np.random.default_rng(8), np.random.default_rng(8)
    fast = _match(matching._RandomWithinTolerance, False, distance, treated, mask, 0.05, 1, False, "data", rng_a)
    slow = _match(matching._RandomWithinTolerance, False, distance, treated, mask, 0.05, 1, False, "data", rng_b,
                  compiled=False)
    np.testing.assert_array_equal(fast.control_of, slow.control_of)
    assert _state(rng_a) == _state(rng_b)
    assert fast.n_pairs.min() > 1500


def test_sorted_positions_give_the_stable_argsort_and_the_processing_orders():
    """The compiled path's sort (numpy's SIMD argsort, then greedy_kernels.sorted_positions)
    equals the stable argsort, on keys with many ties, long runs of ineligible patients (NaN,
    sorted last) and both signed zeros; its inverse and sorted distances are right, and the
    processing orders read off it equal _treated_order's."""
    rng = np.random.default_rng(4)
    for n_pat in (1, 7, 300, 3000):
        distance = rng.integers(-20, 20, (25, n_pat)) / 4.0
        distance[rng.random(distance.shape) < 0.1] = np.nan
        distance[rng.random(distance.shape) < 0.05] = -0.0
        distance[3] = np.nan
        distance[4] = rng.random(n_pat)
        key = np.where(np.isfinite(distance), distance, np.inf)
        treated = (rng.random(distance.shape) < 0.4) & np.isfinite(distance)
        width = int(treated.sum(axis=1).max())
        stable = np.argsort(key, axis=1, kind="stable")
        for name, code in [("none", -1), *greedy_kernels.ORDER_CODES.items()]:
            order = np.argsort(key, axis=1)
            position, sorted_distance, sequence = greedy_kernels.sorted_positions(distance, order, treated, code, width)
            np.testing.assert_array_equal(order, stable)
            np.testing.assert_array_equal(np.take_along_axis(position, order, axis=1),
                                          np.broadcast_to(np.arange(n_pat), order.shape))
            np.testing.assert_array_equal(sorted_distance, np.take_along_axis(distance, order, axis=1))
            expected = np.full_like(sequence, -1) if code < 0 else matching._treated_order(distance, treated, name, None)
            np.testing.assert_array_equal(sequence, expected, err_msg=name)


@pytest.mark.parametrize("method", sorted(matching.MATCHERS))
@pytest.mark.parametrize("ratio,replace", [(1, False), (2, False), (3, True)])
def test_compiled_matched_sets_equal_numpy(method, ratio, replace):
    """assemble_matched_sets' compiled pass against its numpy operations, on every matcher's
    pairs (controls reused with replacement, sets of unequal size, unmatched treated) and on
    arbitrary control_of arrays (a control in several sets, controls listed for non-treated
    rows, int64 indices)."""
    distance, treated, mask, caliper = _cohorts(5)
    if method == "optimal" and (ratio > 1 or replace):
        pytest.skip("optimal matching is 1:1 without replacement")
    result = matching.match_patients(method, distance, treated, mask=mask, caliper=np.nan_to_num(caliper, nan=0.5),
                                     ratio=ratio, replace=replace, rng=np.random.default_rng(0))
    cases = [(result.control_of, treated & mask)]
    rng = np.random.default_rng(ratio)
    arbitrary = rng.integers(-3, 60, (40, 60, ratio)).clip(-1)
    cases.append((arbitrary, rng.random((40, 60)) < 0.5))
    for control_of, is_treated in cases:
        width = np.full(control_of.shape[0], 0.1)
        fast = assemble_matched_sets(control_of, is_treated, width)
        slow = assemble_matched_sets(control_of, is_treated, width, compiled=False)
        for field in ("pair_id", "weight", "matched", "n_pairs", "status"):
            np.testing.assert_array_equal(getattr(fast, field), getattr(slow, field), err_msg=field)
            assert getattr(fast, field).dtype == getattr(slow, field).dtype, field


def test_sorted_runs_kernel_is_the_same_with_int32_positions():
    """random_within_match keeps positions and counts as int16 below 32,768 patients and as
    int32 from there; both give the same pairs and draws (here both on 2,000 patients)."""
    rng = np.random.default_rng(23)
    distance = np.round(rng.beta(2, 3, (6, 2000)), 3)
    treated = rng.random((6, 2000)) < 0.35
    sorted_index = np.argsort(distance, axis=1, kind="stable")
    sorted_distance = np.take_along_axis(distance, sorted_index, axis=1)
    sequence = matching._treated_order(distance, treated, "data", None).astype(np.int64)
    limit = np.full(6, 0.05)
    results = []
    for index_type in (np.int16, np.int32):
        draws = np.random.default_rng(2)
        control_of = fuzzy_kernels.random_within_match(draws, sorted_distance, sorted_index, ~treated, sequence,
                                                       limit, 1, False, np.empty(0, index_type))
        results.append((control_of, _state(draws)))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    assert results[0][1] == results[1][1]
    assert (results[0][0] >= 0).sum() > 6 * 600
