"""The compiled greedy matchers (analysis.propensity.greedy_kernels) against the numpy stepper.

The kernels replace a step-by-step numpy walk over the treated patients; they must give the
same pairs, weights and counts for every matcher, ratio, replacement, order and caliper, on
cohorts with exact ties, ineligible patients, empty arms and gaps exactly at the caliper, and
(FUZZY) consume the block's random numbers identically, so the generator is in the same state
afterwards.
"""

from __future__ import annotations

import numpy as np
import pytest

from analysis.propensity import matching
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


@pytest.mark.parametrize("method,fenwick", [("matchit_nn", False), ("spss_fuzzy_v1", False), ("spss_fuzzy_v1", True),
                                            ("spss_fuzzy_v2", False)])
@pytest.mark.parametrize("ratio,replace", [(1, False), (2, False), (3, True), (1, True)])
@pytest.mark.parametrize("order", ["largest", "data", "random"])
def test_kernels_equal_numpy_stepper(method, fenwick, ratio, replace, order, monkeypatch):
    """``fenwick``: FUZZY < 2.0 through its Fenwick-tree kernels (used from
    ``matching.FENWICK_PATIENTS`` patients, here forced) instead of the scans."""
    monkeypatch.setattr(matching, "FENWICK_PATIENTS", 0 if fenwick else 10**9)
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
