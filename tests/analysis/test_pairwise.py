"""analysis/pairwise.py: numpy's pairwise summation, compiled, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.pairwise import block_sum, pairwise_sum


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 100, 127, 128, 129, 255, 256, 257, 1000, 4099, 10_000])
def test_sums_equal_numpys_bit_for_bit(n):
    rng = np.random.default_rng(n)
    stack, partial = np.empty((64, 3), np.int64), np.empty(64)
    for scale in (1.0, 1e8):
        values = rng.normal(size=n + 5) * scale ** rng.uniform(size=n + 5)  # magnitudes spread: order matters
        for start in (0, 3):
            expected = values[start:start + n].sum()
            assert pairwise_sum(values, start, n, stack, partial) == expected
            if n <= 128:
                assert block_sum(values, start, n) == expected
