"""PS design columns (analysis.propensity.design): categorical covariates as indicators."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.propensity.design import DesignMatrix, design_matrix


def test_design_matrix_expands_categorical_with_first_level_reference():
    x = np.array([[[1.0, 0, 2.5], [0, 2, -1.0], [1, 1, 0.0]],
                  [[0.0, 3, 1.0], [1, 0, 2.0], [0, np.nan, 3.0]]])
    dm = design_matrix(x, ("binary", "categorical", "continuous"), columns=("male", "region", "age"))
    assert isinstance(dm, DesignMatrix)
    assert dm.names == ("male", "region[1]", "region[2]", "region[3]", "age")
    assert dm.values.shape == (2, 3, 5)
    assert dm.values[0, 1].tolist() == [0, 0, 1, 0, -1]
    assert dm.values[1, 0].tolist() == [0, 0, 0, 1, 1]
    assert np.isnan(dm.values[1, 2, 1:4]).all() and dm.values[1, 2, 4] == 3
    # independent loop
    for r in range(2):
        for i in range(3):
            level = x[r, i, 1]
            if np.isfinite(level):
                assert dm.values[r, i, 1:4].tolist() == [float(level == k) for k in (1, 2, 3)]
    wider = design_matrix(x, ("binary", "categorical", "continuous"), n_levels=(None, 5, None))
    assert wider.names == ("x0", "x1[1]", "x1[2]", "x1[3]", "x1[4]", "x2")
    assert (np.nan_to_num(wider.values[..., 4]) == 0).all()  # level 4 never occurs


def test_design_matrix_rejects_bad_kinds():
    with pytest.raises(ValueError, match="continuous"):
        design_matrix(np.zeros((1, 2, 1)), ("normal",))
    with pytest.raises(ValueError, match="kinds"):
        design_matrix(np.zeros((1, 2, 2)), ("binary",))
