"""Tornado data of a one-at-a-time design."""

import numpy as np
import pytest

from analysis.performance.sensitivity import tornado


def test_tornado_sorts_by_swing_and_includes_the_base_point():
    # base (a=1, b=10); a moved to 0 and 2, b moved to 5 and 20
    estimate = np.array([0.5, 0.4, 0.7, 0.48, 0.55])
    mcse = np.full(5, 0.01)
    varied = ["", "a", "a", "b", "b"]
    values = {"a": [1, 0, 2, 1, 1], "b": [10, 10, 10, 5, 20]}
    result = tornado(estimate, mcse, varied=varied, values=values, base_point=0)
    assert result.names == ("a", "b")
    assert result.value_low.tolist() == [0, 5] and result.value_high.tolist() == [2, 20]
    assert result.swing == pytest.approx([0.3, 0.07])
    assert result.swing_mcse == pytest.approx([np.sqrt(2) * 0.01] * 2)
    assert result.base_estimate == 0.5


def test_one_sided_factor_uses_the_base_as_its_other_end():
    result = tornado([0.5, 0.6], [0.01, 0.01], varied=["", "a"], values={"a": [1, 3]}, base_point=0)
    assert result.value_low.tolist() == [1] and result.estimate_low.tolist() == [0.5]
