"""Per-arm Table 1 cells, batched, against numpy on each replicate's arm."""

import numpy as np

from analysis.comparisons.arm_summaries import arm_mean_sd, arm_percentages, arm_quartiles


def test_arm_cells_equal_numpy_per_replicate_and_arm():
    rng = np.random.default_rng(3)
    values = rng.lognormal(3.0, 0.5, (6, 40))
    treated = rng.random((6, 40)) < 0.4
    weights = (rng.random((6, 40)) < 0.7).astype(float)
    weights[5] = np.where(treated[5], 0.0, weights[5])  # replicate 5: empty treated arm
    percent = arm_percentages(values > 20, weights, treated)
    mean, sd = arm_mean_sd(values, weights, treated)
    quartiles = arm_quartiles(values, weights, treated)
    for r in range(6):
        for a, in_arm in enumerate((treated[r], ~treated[r])):
            kept = values[r, in_arm & (weights[r] > 0)]
            if kept.size == 0:
                assert np.isnan(percent[r, a]) and np.isnan(mean[r, a]) and np.isnan(quartiles[r, a]).all()
                continue
            assert np.isclose(percent[r, a], 100 * np.mean(kept > 20))
            assert np.isclose(mean[r, a], kept.mean())
            assert np.isclose(sd[r, a], kept.std(ddof=1))
            assert np.allclose(quartiles[r, a], np.percentile(kept, [25, 50, 75]))
    assert np.isnan(percent[5, 0])
