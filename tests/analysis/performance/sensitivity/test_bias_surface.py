"""Bias surface contours on synthetic replicates whose crossings are known."""

import numpy as np
import pytest
import xarray as xr

from analysis.performance.sensitivity import bias_surface, first_crossing


def test_first_crossing_interpolates_linearly():
    assert first_crossing([0, 1, 2], [-1.0, -0.5, 0.5], 0.0) == pytest.approx(1.5)
    assert np.isnan(first_crossing([0, 1], [1.0, 2.0], 0.0))
    assert first_crossing([0, 1, 2], [np.nan, 1.0, -1.0], 0.0) == pytest.approx(1.5)


def synthetic(replicates=4000, seed=1):
    rng = np.random.default_rng(seed)
    x = np.linspace(0.0, 0.6, 7)            # prevalence difference
    y = np.array([0.0, 0.5, 1.0])           # U's log-HR
    truth = -0.7
    mean = truth + 2.0 * x[:, None] * y[None, :]   # bias = 2 x y
    shape = (7, 3, replicates, 1, 1, 1)
    log_hr = mean[:, :, None, None, None, None] + rng.normal(0, 0.3, size=shape)
    se = np.full(shape, 0.3)
    z = log_hr / se
    from scipy.stats import norm
    p = 2 * norm.sf(np.abs(z))
    dims = ("d", "u", "replicate", "method", "cohort", "endpoint")
    coords = {"d": x, "u": y, "replicate": np.arange(replicates), "method": ["paper"],
              "cohort": ["matched"], "endpoint": ["pfs"]}
    ds = xr.Dataset({"log_hr": (dims, log_hr), "ci_lower": (dims, log_hr - 1.96 * se),
                     "ci_upper": (dims, log_hr + 1.96 * se), "p_logrank": (dims, p)}, coords=coords)
    ds["true_log_hr_marginal"] = (("endpoint",), [truth])
    return ds, x, y


def test_contours_fall_where_the_bias_puts_them():
    ds, x, y = synthetic()
    surface = bias_surface(ds, x="d", y="u", method="paper")
    assert surface.attrs["ci_limit"] == "upper"
    assert surface.bias.sel(u=1.0).values == pytest.approx(2 * x, abs=0.03)
    # estimate reaches HR = 1 where 2 x y = 0.7: x = 0.35 at y = 1; never at y = 0 or 0.5 (x <= 0.6)
    crossing = surface.crossing.sel(contour="estimate_null")
    assert crossing.sel(u=1.0) == pytest.approx(0.35, abs=0.01)
    assert np.isnan(crossing.sel(u=0.0)) and np.isnan(crossing.sel(u=0.5))
    lower = surface.crossing_lower.sel(contour="estimate_null", u=1.0)
    upper = surface.crossing_upper.sel(contour="estimate_null", u=1.0)
    assert lower < 0.35 < upper and upper - lower < 0.05
    # the CI's upper limit reaches 0 first: -0.7 + 0.588 + 2 x = 0 -> x = 0.056 at y = 1
    assert surface.crossing.sel(contour="ci_null", u=1.0) == pytest.approx(0.056, abs=0.01)
    # power is monotone decreasing in x along y = 1 and starts near Phi(0.7/0.3 - 1.96)
    power = surface.power.sel(u=1.0).values
    assert np.all(np.diff(power[:4]) < 0) and power[0] == pytest.approx(0.64, abs=0.03)
    assert surface.z_score.dims == ("contour", "d", "u")
