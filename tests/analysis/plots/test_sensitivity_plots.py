"""Figures of sensitivity indices and of the unmeasured-confounder bias surface, on small
hand-made Datasets in the layout ``psmsim sensitivity`` saves: the artists carry the data."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr

from analysis.performance.sensitivity import e_value, e_values_hr, first_crossing, hazard_ratio_to_risk_ratio
from analysis.plots.bias_surface import (
    benchmark_strengths, bias_surface_figure, e_value_curve, plot_bias_surface, plot_e_value_curve,
)
from analysis.plots.sensitivity import plot_eta_squared, plot_morris, plot_sobol, plot_tornado

Z = 1.959963984540054
FACTORS = ["censoring.cutoff_month", "censoring.dropout_rate", "outcome.progression.shape"]


def _indices(design: str, variables: dict, *, last: str = "factor", labels=FACTORS) -> xr.Dataset:
    """Per-factor variables over (measure, method, endpoint, factor) = (1, 2, 1, F): the second
    method's values are the first's doubled (so selecting a method shows)."""
    data = {}
    for name, values in variables.items():
        values = np.asarray(values, dtype=float)
        stacked = np.stack([values, 2 * values])[None, :, None]
        dims = ("measure", "method", "endpoint") + ((last,) if values.ndim else ())
        data[name] = (dims, stacked)
    return xr.Dataset(data, coords={"measure": ["power_logrank"], "method": ["paper", "recommended"],
                                    "endpoint": ["pfs"], last: labels},
                      attrs={"sweep_design": design, "sweep_name": "toy"})


def test_tornado_bars_from_the_base_with_mcse_sorted_by_swing():
    data = _indices("one_at_a_time", {
        "value_low": [25.0, 0.0, 0.8], "value_high": [36.0, 0.05, 1.6],
        "estimate_low": [0.30, 0.40, 0.20], "estimate_high": [0.45, 0.38, 0.60],
        "mcse_low": [0.01, 0.02, 0.03], "mcse_high": [0.04, 0.05, 0.06],
        "swing": [0.15, -0.02, 0.40], "swing_mcse": [0.05, 0.05, 0.07],
        "base_estimate": 0.40, "base_mcse": 0.02})
    ax = plot_tornado(data, "power_logrank", method="paper")
    low, high = (c for c in ax.containers if c.get_label().startswith("at the factor"))
    assert low.get_label() == "at the factor's lowest value" and high.get_label() == "at the factor's highest value"
    order = [2, 0, 1]  # |swing| 0.40, 0.15, 0.02: shape on top
    rows = [2, 1, 0]
    for bars, estimates, shift in ((low, [0.30, 0.40, 0.20], 0.15), (high, [0.45, 0.38, 0.60], -0.15)):
        for bar, k, row in zip(bars, order, rows):
            assert bar.get_x() == pytest.approx(0.40)
            assert bar.get_x() + bar.get_width() == pytest.approx(estimates[k])
            assert bar.get_y() + bar.get_height() / 2 == pytest.approx(row + shift)
    low_errors, high_errors = (c for c in ax.containers if c.get_label() == "_mcse")
    # dropout's lowest level gives the base value (0.40): that end is the base point, without a bar
    for errors, mcse, shift in ((low_errors, [0.03, 0.01, None], 0.15), (high_errors, [0.06, 0.04, 0.05], -0.15)):
        segments = [seg for seg in errors.lines[2][0].get_segments() if len(seg)]
        drawn = [k for k, m in enumerate(mcse) if m is not None]
        assert len(segments) == len(drawn)
        np.testing.assert_allclose([seg[1][0] - seg[0][0] for seg in segments], 2 * Z * np.array([mcse[k] for k in drawn]))
        np.testing.assert_allclose([seg[0][1] for seg in segments], np.array(rows)[drawn] + shift)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["shape (0.8 → 1.6)", "cutoff_month (25 → 36)", "dropout_rate (0 → 0.05)"]
    base = next(line for line in ax.get_lines() if line.get_label().startswith("base"))
    assert base.get_xdata()[0] == 0.40 and base.get_label().startswith(f"base 0.4 ± {Z * 0.02:.2g}")
    assert "Power of the log-rank test" in ax.get_xlabel()
    assert not [t for t in ax.texts if t.get_gid() == "no-change"]
    flat = data.copy(deep=True)
    for name in ("estimate_low", "estimate_high"):
        flat[name].loc[{"factor": "censoring.cutoff_month"}] = 0.40
    texts = [t for t in plot_tornado(flat, method="paper").texts if t.get_gid() == "no-change"]
    assert len(texts) == 1 and texts[0].get_position()[1] == 1  # cutoff's row (second by |swing|)
    recommended = plot_tornado(data, method="recommended")
    first = next(c for c in recommended.containers if c.get_label() == "at the factor's highest value")
    assert first[0].get_x() + first[0].get_width() == pytest.approx(1.20)


def test_morris_points_ci_and_the_noise_point():
    data = _indices("morris", {"mu_star": [0.10, 0.02, 0.30], "sigma": [0.05, 0.01, 0.20],
                               "mu_star_conf": [0.03, 0.01, 0.05], "mu": [0.1, -0.02, 0.3],
                               "sigma_noise_share": [0.2, 1.0, 0.05], "mu_star_noise": 0.025, "ee_noise_sd": 0.031,
                               "noise_variance": 0.0004})
    ax = plot_morris(data, "power_logrank")
    container = next(c for c in ax.containers if c.get_label() == "factors (μ* ± 95% bootstrap CI)")
    np.testing.assert_allclose(container.lines[0].get_xdata(), [0.10, 0.02, 0.30])
    np.testing.assert_allclose(container.lines[0].get_ydata(), [0.05, 0.01, 0.20])
    widths = [seg[1][0] - seg[0][0] for seg in container.lines[2][0].get_segments()]
    np.testing.assert_allclose(widths, [0.06, 0.02, 0.10])
    noise = next(line for line in ax.get_lines() if line.get_gid() == "noise")
    assert (noise.get_xdata()[0], noise.get_ydata()[0]) == (0.025, 0.031)
    assert sorted(t.get_text() for t in ax.texts if t.get_gid() == "factor-label") == [
        "cutoff_month", "dropout_rate", "shape"]
    diagonal = next(line for line in ax.get_lines() if line.get_gid() == "sigma=mu*")
    np.testing.assert_array_equal(diagonal.get_xdata(), diagonal.get_ydata())
    assert ax.get_xlabel().startswith("μ*") and ax.get_ylabel().startswith("σ")


def test_morris_of_a_measure_no_factor_moves_is_a_unit_square():
    """Every elementary effect 0 (e.g. a measure constant over the sweep): the axes are
    [0, 1], not a degenerate [0, 0] (matplotlib's "identical low and high ylims" warning)."""
    zeros = [0.0, 0.0, 0.0]
    data = _indices("morris", {"mu_star": zeros, "sigma": zeros, "mu_star_conf": zeros, "mu": zeros,
                               "sigma_noise_share": zeros, "mu_star_noise": 0.0, "ee_noise_sd": 0.0,
                               "noise_variance": 0.0})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ax = plot_morris(data, "power_logrank")
    assert ax.get_xlim() == (0.0, 1.0) and ax.get_ylim() == (0.0, 1.0)


def test_sobol_bars_ci_corrected_and_noise_share():
    data = _indices("sobol", {"s1": [0.5, 0.1, 0.2], "s1_conf": [0.1, 0.05, 0.08], "st": [0.6, 0.15, 0.3],
                              "st_conf": [0.12, 0.06, 0.1], "s1_corrected": [0.55, 0.11, 0.22],
                              "st_corrected": [0.58, 0.12, 0.27], "noise_share": 0.1, "noise_variance": 0.001,
                              "output_variance": 0.01})
    ax = plot_sobol(data, "power_logrank")
    s1 = next(c for c in ax.containers if c.get_label() == "S1 (first order)")
    st = next(c for c in ax.containers if c.get_label() == "ST (total)")
    np.testing.assert_allclose([bar.get_height() for bar in s1], [0.5, 0.1, 0.2])
    np.testing.assert_allclose([bar.get_height() for bar in st], [0.6, 0.15, 0.3])
    np.testing.assert_allclose([bar.get_x() + bar.get_width() / 2 for bar in st], [0.18, 1.18, 2.18])
    errors = [c for c in ax.containers if c.get_label() == "_ci"]
    heights = [seg[1][1] - seg[0][1] for seg in errors[1].lines[2][0].get_segments()]
    np.testing.assert_allclose(heights, [0.24, 0.12, 0.2])
    corrected = {line.get_gid(): line for line in ax.get_lines()}
    np.testing.assert_allclose(corrected["corrected:st"].get_ydata(), [0.58, 0.12, 0.27])
    band = next(p for p in ax.patches if p.get_gid() == "noise-share")
    assert band.get_y() + band.get_height() == pytest.approx(0.1)
    assert any(line.get_label() == "Monte Carlo noise: 10% of the output variance" for line in ax.get_lines())
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cutoff_month", "dropout_rate", "shape"]


def test_eta_squared_bars_and_noise_marks():
    terms = ["hr", "caliper", "hr:caliper", "Residuals"]
    data = _indices("factorial", {"eta_squared": [0.2, 0.6, 0.05, 0.15], "eta_squared_noise": [0.01, 0.02, 0.03, 0.1]},
                    last="term", labels=terms)
    ax = plot_eta_squared(data, "power_logrank")
    bars = next(c for c in ax.containers if c.get_label() == "η² of the term")
    np.testing.assert_allclose([bar.get_width() for bar in bars], [0.6, 0.2, 0.05])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["caliper", "hr", "hr × caliper"]  # top down
    noise = next(line for line in ax.get_lines() if line.get_gid() == "noise")
    np.testing.assert_allclose(noise.get_xdata(), [0.02, 0.01, 0.03])


def test_a_figure_refuses_another_design_or_an_unknown_label():
    data = _indices("morris", {"mu_star": [0.1, 0.2, 0.3]})
    with pytest.raises(ValueError, match="indices of a morris design; this figure needs a sobol design"):
        plot_sobol(data)
    with pytest.raises(ValueError, match="method 'spss': not in the sensitivity indices; choose one of paper, recommended"):
        plot_morris(data, method="spss")


# --------------------------------------------------------------------------- bias surface
X, Y = "prevalence_difference", "u_log_hr"


@pytest.fixture(scope="module")
def surface() -> xr.Dataset:
    """3 prevalence differences × 2 U log-HRs, one method and endpoint; the estimate reaches 0
    at x = 0.15 in the second row only; the power contour is outside the grid."""
    xs, ys = np.array([0.0, 0.1, 0.2]), np.array([0.0, 1.0])
    mean = np.array([[-0.7, -0.6], [-0.65, -0.1], [-0.6, 0.1]])  # (x, y)
    lpk = mean + 0.05
    crossing = np.array([[np.nan, 0.15], [0.05, 0.02], [np.nan, np.nan]])
    lower, upper = crossing - 0.03, crossing + 0.04
    cells = ("method", "endpoint", X, Y)
    return xr.Dataset(
        {"mean_log_hr": (cells, mean[None, None]), "true_log_hr": (cells, np.full((1, 1, 3, 2), -0.6)),
         "lpk_mean_log_hr": (cells, lpk[None, None]),
         "crossing": (("method", "endpoint", "contour", Y), crossing[None, None]),
         "crossing_lower": (("method", "endpoint", "contour", Y), lower[None, None]),
         "crossing_upper": (("method", "endpoint", "contour", Y), upper[None, None]),
         "benchmark_prevalence_treated": ("benchmark", [0.3, 0.5]),
         "benchmark_prevalence_control": ("benchmark", [0.2, 0.55]),
         "benchmark_prevalence_difference": ("benchmark", [0.1, -0.05]),
         "benchmark_log_hr": ("benchmark", [0.4, -0.2])},
        coords={"method": ["paper"], "endpoint": ["pfs"], X: xs, Y: ys,
                "contour": ["estimate_null", "ci_null", "power"], "benchmark": ["ecog", "hbv"]},
        attrs={"band": 2.0, "power_target": 0.8, "implied_hr": 0.5, "implied_hr_ci_lower": 0.3,
               "implied_hr_ci_upper": 0.85, **_e_values(0.5, 0.3, 0.85)},
    )


def _e_values(hr, lower, upper):
    values = e_values_hr(hr, lower, upper, rare=False)
    return {"e_value_point": values.point, "e_value_ci": values.ci}


def test_bias_surface_mesh_contours_bands_lpk_and_benchmarks(surface):
    ax = plot_bias_surface(surface, labels={"ecog": "ECOG 1"})
    mesh = next(c for c in ax.collections if c.get_gid() == "surface")
    np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(2, 3),
                               surface.mean_log_hr.isel(method=0, endpoint=0).values.T)
    lines = {line.get_gid(): line for line in ax.get_lines()}
    estimate = lines["contour:estimate_null"]
    np.testing.assert_allclose(estimate.get_xdata(), [np.nan, 0.15])
    np.testing.assert_array_equal(estimate.get_ydata(), [0.0, 1.0])
    assert estimate.get_label() == "mean estimate reaches HR = 1"
    assert lines["contour:power"].get_label() == "power crosses 80% (not in the grid)"
    band = next(c for c in ax.collections if c.get_gid() == "band:ci_null")
    boxes = [path.vertices for path in band.get_paths()]
    assert len(boxes) == 2  # one per row, each as tall as its row (edges at -0.5, 0.5, 1.5)
    np.testing.assert_allclose([box[:, 0].min() for box in boxes], [0.02, -0.01])
    np.testing.assert_allclose([box[:, 0].max() for box in boxes], [0.09, 0.06])
    np.testing.assert_allclose([(box[:, 1].min(), box[:, 1].max()) for box in boxes], [(-0.5, 0.5), (0.5, 1.5)])
    lpk = surface.lpk_mean_log_hr.isel(method=0, endpoint=0).values
    np.testing.assert_allclose(lines["lpk"].get_xdata(), [first_crossing([0, 0.1, 0.2], lpk[:, j], 0.0)
                                                          for j in range(2)])
    np.testing.assert_allclose(lines["benchmarks"].get_xdata(), [0.1, -0.05])
    np.testing.assert_allclose(lines["benchmarks"].get_ydata(), [0.4, -0.2])
    assert sorted(t.get_text() for t in ax.texts if t.get_gid() == "benchmark-label") == ["ECOG 1", "hbv"]
    assert ax.get_xlim()[0] < -0.05 and ax.get_ylim() == (-0.5, 1.5)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0 (HR 1)", "1 (HR 2.7)"]
    assert "paper plan" in ax.get_title()
    colourbar = ax.figure.axes[1]
    assert colourbar.get_ylabel() == "Mean matched HR estimate (true marginal HR ≈ 0.55)"
    assert "1" in [t.get_text() for t in colourbar.get_yticklabels()]


def test_e_value_curve_meets_the_diagonal_at_the_e_value(surface):
    rr = float(hazard_ratio_to_risk_ratio(0.5, rare=False))
    point = float(e_value(rr))
    assert float(e_value_curve(rr, point)) == pytest.approx(point)
    assert np.isnan(e_value_curve(rr, 1.0 / rr - 0.01))  # RR_EU below RR*: nothing explains it away
    ax = plot_e_value_curve(surface)
    lines = {line.get_gid(): line for line in ax.get_lines()}
    assert (lines["e-value:point"].get_xdata()[0], lines["e-value:point"].get_ydata()[0]) == (point, point)
    curve = lines["curve:point"]
    x, y = curve.get_xdata(), curve.get_ydata()
    finite = np.isfinite(y)
    bias = x[finite] * y[finite] / (x[finite] + y[finite] - 1.0)
    np.testing.assert_allclose(bias, 1.0 / rr)  # the bias factor along the curve is the observed RR*
    ci = float(surface.attrs["e_value_ci"])
    assert lines["e-value:ci"].get_xdata()[0] == ci and "CI limit 0.85" in lines["curve:ci"].get_label()
    rr_eu, rr_ud = benchmark_strengths(surface)
    np.testing.assert_allclose(rr_eu, [0.3 / 0.2, 0.5 / 0.45])
    hbv = 1.0 / float(hazard_ratio_to_risk_ratio(np.exp(-0.2), rare=False))
    np.testing.assert_allclose(rr_ud, [float(hazard_ratio_to_risk_ratio(np.exp(0.4), rare=False)), hbv])
    np.testing.assert_allclose(lines["benchmarks"].get_xdata(), rr_eu)
    assert any(t.get_text().startswith("strongest: ecog") for t in ax.texts)
    assert "E-value of the paper's HR 0.50 (95% CI 0.30–0.85)" in ax.get_title()


def test_bias_surface_figure_has_both_panels_and_needs_no_e_value(surface):
    figure = bias_surface_figure(surface)
    assert len(figure.axes) == 3  # surface, its colour bar, the E-value panel
    bare = surface.copy()
    bare.attrs = {"band": 2.0}
    assert len(bias_surface_figure(bare).axes) == 2
    with pytest.raises(ValueError, match="no implied_hr attribute"):
        plot_e_value_curve(bare)
    with pytest.raises(ValueError, match="not a bias-surface Dataset"):
        plot_bias_surface(bare.drop_vars("crossing"))
