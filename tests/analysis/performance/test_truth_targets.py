"""The truth each cohort slot of a replicate is measured against (analysis/performance/truth_targets.py)."""

from __future__ import annotations

import numpy as np

from analysis.performance.truth_targets import slot_targets


def test_adjusted_slot_takes_the_methods_estimand_crude_slot_the_crude_truth():
    # 2 conditions x (att, ate, ato, conditional) x 2 endpoints; distinct values everywhere.
    table = np.arange(16, dtype=float).reshape(2, 4, 2)
    crude = np.array([[100.0, 101.0], [200.0, 201.0]])
    codes = np.array([[[0, 1], [2, 3]], [[1, -1], [0, 2]]])  # (condition, replicate, method)
    got = slot_targets(codes, table, crude, ["full", "matched"])
    assert got.shape == (2, 2, 2, 2, 2)  # (condition, replicate, method, cohort, endpoint)
    for c in range(2):
        for r in range(2):
            for m in range(2):
                np.testing.assert_array_equal(got[c, r, m, 0], crude[c])
                code = codes[c, r, m]
                expected = table[c, code] if code >= 0 else [np.nan, np.nan]
                np.testing.assert_array_equal(got[c, r, m, 1], expected)
    # the cohort order follows the labels
    swapped = slot_targets(codes, table, crude, ["matched", "full"])
    np.testing.assert_array_equal(swapped[:, :, :, ::-1], got)
