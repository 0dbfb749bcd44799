"""The vectorised exp of the compiled PS fit (analysis.propensity.irls_exp) against exact values.

Exact: numpy's ``exp`` in 80-bit long double (64-bit significand: its own error, ~1e-19
relative, is ~0.001 ulp of a double). The bound asserted is the module docstring's measured
0.87 ulp rounded up to 0.9 (the C library's own is 0.51); arguments beyond ``LIMIT``, NaN and
infinities must be the C library's exactly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.propensity.irls_exp import LIMIT, exp_into

pytestmark = pytest.mark.skipif(np.finfo(np.longdouble).nmant < 63, reason="needs 80-bit long double")


def _exp(x, sign=1.0):
    out, work = np.empty_like(x), np.empty_like(x)
    exp_into(x, sign, x.size, out, work)
    return out


def ulp_errors(x, sign=1.0):
    value = _exp(x, sign)
    exact = np.exp(sign * x.astype(np.longdouble))
    return np.abs((value.astype(np.longdouble) - exact) / np.spacing(np.abs(value))).astype(float)


def test_within_an_ulp_over_the_fits_range():
    rng = np.random.default_rng(20261203)
    x = np.concatenate([rng.uniform(-30.0, 30.0, 4_000_000), rng.uniform(-1.0, 1.0, 3_000_000),
                        rng.uniform(-LIMIT, LIMIT, 2_000_000), np.linspace(-30.0, 30.0, 1_000_001)])
    errors = ulp_errors(x)
    assert errors.max() < 0.9
    assert errors.max() > 0.6  # the measurement sees the polynomial's rounding at all
    libm = np.array([math.exp(v) for v in x[:200_000]])
    differ = _exp(x[:200_000]) != libm
    assert 0.0 < differ.mean() < 0.1  # one ulp apart where they differ
    assert np.all(np.abs(_exp(x[:200_000]) - libm) <= np.spacing(libm))


def test_sign_and_exact_points():
    x = np.array([0.0, -0.0, 1.0, -1.0, math.log(2.0), 10.0, -30.0, 30.0, LIMIT, -LIMIT])
    np.testing.assert_array_equal(_exp(x, -1.0), _exp(-x))
    assert _exp(np.zeros(3)).tolist() == [1.0, 1.0, 1.0]
    assert ulp_errors(x).max() < 0.9


def test_outside_the_range_is_the_c_library():
    x = np.array([LIMIT + 1e-9, -709.5, 709.7, 710.0, -745.0, -800.0, 1e300, -np.inf, np.inf, np.nan, 3.0])
    expected = np.array([math.exp(v) if v < 709.8 else math.inf for v in x])
    expected[-2] = np.nan
    np.testing.assert_array_equal(_exp(x), expected)
    expected = np.array([math.exp(-v) if -v < 709.8 else math.inf for v in x])
    expected[-2] = np.nan
    np.testing.assert_array_equal(_exp(x, -1.0), expected)
