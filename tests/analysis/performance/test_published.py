"""The percentile of a published number in its simulated distribution, against a hand count."""

import numpy as np
import pytest

from analysis.performance.published import compare_published


def test_percentile_counts_values_below_and_half_the_ties_by_hand():
    # Ten replicates of a p-value printed to 3 decimals; published 0.200 (half-width 0.0005).
    simulated = np.array([[0.05], [0.10], [0.1996], [0.2000], [0.2004], [0.2006], [0.30], [0.50], [0.90], [np.nan]])
    result = compare_published(simulated, [0.200], [0.0005])
    # Below 0.1995: 0.05, 0.10 -> 2. Printing as 0.200: 0.1996, 0.2000, 0.2004 -> 3 ties.
    # 9 replicates with a value: 100 * (2 + 1.5) / 9 = 38.888...
    assert result.n_used[0] == 9
    assert result.percentile[0] == pytest.approx(100 * 3.5 / 9)
    assert not result.outside[0]
    # Type 1 quantiles of the 9 sorted values: ceil(9 p)-th order statistic.
    ordered = np.sort(simulated[:9, 0])
    assert result.median[0] == ordered[4]
    assert result.lower[0] == ordered[0] and result.upper[0] == ordered[8]


def test_flags_published_values_in_either_tail_and_handles_point_masses():
    counts = np.repeat(np.arange(20, 30, dtype=float), 10)[:, None]  # 20..29, ten each
    simulated = np.hstack([counts, counts, counts, np.ones_like(counts), np.full_like(counts, np.inf)])
    result = compare_published(simulated, [34, 20, 25, 1.0, 5.0], [0, 0, 0, 0.0005, 0.05])
    # 34 above every value: 100; 20 ties the lowest ten: 100 * 5 / 100 = 5; 25: (50 + 5) / 100.
    assert result.percentile[:3].tolist() == [100.0, 5.0, 55.0]
    assert result.outside[:3].tolist() == [True, False, False]
    # Every replicate prints as the published 1.000: the middle, not a tail.
    assert result.percentile[3] == 50.0 and not result.outside[3]
    # Medians not reached (+inf) are above a published 5.0 months.
    assert result.percentile[4] == 0.0 and result.outside[4] and np.isinf(result.median[4])


def test_no_replicate_with_a_value_gives_nan_and_no_flag():
    result = compare_published(np.full((4, 1), np.nan), [0.5], [0.0])
    assert np.isnan(result.percentile[0]) and np.isnan(result.median[0]) and not result.outside[0]
    assert result.n_used[0] == 0
