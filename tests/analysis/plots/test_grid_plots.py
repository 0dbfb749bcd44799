"""Figures over the summary of a sweep: nested-loop plot, forest plot and power curve, on
synthetic multi-condition summaries (``condition`` with the swept fields as coordinates, and the
same grid as one dim per factor)."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.plots.grid import condition_labels, grid_conditions, plot_forest, plot_nested_loop, short_names
from analysis.plots.power import plot_power_curve
from tests.analysis.plots.synthetic_grid import HAZARD_RATIO, SIZE, make_grid_summary

Z = 1.959963984540054


@pytest.fixture(scope="module")
def summary():
    """3 sizes × 2 hazard ratios, listed hazard ratio first (so sorting has work to do)."""
    grid = make_grid_summary(rng=np.random.default_rng(5), sizes=(160, 40, 80), hazard_ratios=(1.0, 0.7),
                             n_replicates=200)
    return grid


def test_grid_conditions_sort_by_the_factors(summary):
    grid, factors = grid_conditions(summary)
    assert factors == [SIZE, HAZARD_RATIO]
    assert grid[SIZE].values.tolist() == [40, 40, 80, 80, 160, 160]
    assert grid[HAZARD_RATIO].values.tolist() == [0.7, 1.0] * 3
    inner_first, _ = grid_conditions(summary, [HAZARD_RATIO, SIZE])
    assert inner_first[HAZARD_RATIO].values.tolist() == [0.7] * 3 + [1.0] * 3
    with pytest.raises(ValueError, match="not swept here"):
        grid_conditions(summary, ["caliper"])


def test_factorial_dims_give_the_same_grid(summary):
    """A factorial sweep stores one dim per factor: stacked, it is the same grid."""
    factorial = summary.set_index(condition=[SIZE, HAZARD_RATIO]).unstack("condition")
    assert SIZE in factorial.dims and "condition" not in factorial.dims
    stacked, factors = grid_conditions(factorial)
    grid, _ = grid_conditions(summary)
    assert factors == [SIZE, HAZARD_RATIO]
    np.testing.assert_array_equal(stacked.power_logrank.transpose("condition", ...).values,
                                  grid.power_logrank.transpose("condition", ...).values)


def test_short_names_and_labels(summary):
    assert short_names(["outcome.treatment.hazard_ratio", "arms.a.size", "arms.b.size"]) == {
        "outcome.treatment.hazard_ratio": "hazard_ratio", "arms.a.size": "a.size", "arms.b.size": "b.size"}
    grid, factors = grid_conditions(summary)
    assert condition_labels(grid, factors)[:2] == ["size = 40, hazard_ratio = 0.7", "size = 40, hazard_ratio = 1"]


@pytest.mark.parametrize("measure,nominal", [("bias_marginal", 0.0), ("coverage_marginal", 0.95),
                                             ("rel_error_mod_se", 0.0)])
def test_nested_loop_lines_ribbons_and_factor_steps(summary, measure, nominal):
    ax = plot_nested_loop(summary, measure, cohort="matched", endpoint="pfs")
    grid, _ = grid_conditions(summary)
    cell = grid.sel(cohort="matched", endpoint="pfs")
    lines = {line.get_label(): line for line in ax.get_lines()}
    for method in ("paper", "recommended"):
        y = cell[measure].sel({"method": method}).values
        np.testing.assert_allclose(lines[method].get_ydata(), y)
        np.testing.assert_array_equal(lines[method].get_xdata(), np.arange(6))
        assert lines[method].get_drawstyle() == "steps-mid"
    ribbons = [c for c in ax.collections if c.get_label() == "_band"]
    assert len(ribbons) == 2
    vertices = ribbons[1].get_paths()[0].vertices
    half = Z * cell[f"{measure}_mcse"].sel({"method": "recommended"}).values
    y = cell[measure].sel({"method": "recommended"}).values
    assert vertices[:, 1].max() == pytest.approx(np.max(y + half))
    assert vertices[:, 1].min() == pytest.approx(np.min(y - half))
    assert lines[f"nominal {nominal:g}"].get_ydata()[0] == nominal
    steps = {line.get_gid(): line for line in ax.get_lines() if (line.get_gid() or "").startswith("factor:")}
    assert set(steps) == {f"factor:{SIZE}", f"factor:{HAZARD_RATIO}"}
    size_step = steps[f"factor:{SIZE}"].get_ydata()
    assert np.all(np.diff(size_step) >= 0) and len(np.unique(size_step)) == 3  # outermost: 3 levels, rising
    hr_step = steps[f"factor:{HAZARD_RATIO}"].get_ydata()
    assert len(np.unique(hr_step)) == 2 and np.sum(np.diff(hr_step) != 0) == 5  # innermost: alternates
    texts = [t.get_text() for t in ax.texts]
    assert "size: 40, 80, 160" in texts and "hazard_ratio: 0.7, 1" in texts
    assert ax.get_xlabel() == "6 scenarios, nested by size ▸ hazard_ratio"
    data_low = min(np.nanmin(cell[measure].values - Z * cell[f"{measure}_mcse"].values), nominal)
    assert min(ax.get_yticks()) >= data_low - 0.03 * (ax.get_ylim()[1] - data_low), "no ticks in the factor band"


def test_nested_loop_with_one_method_and_unknown_measure(summary):
    ax = plot_nested_loop(summary, "power_logrank", methods=["recommended"])
    assert [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")] == ["recommended"]
    with pytest.raises(ValueError, match="not in the summary; choose one of"):
        plot_nested_loop(summary, "bias")


def test_forest_rows_estimates_and_intervals(summary):
    conditions = [5, 0, 2]
    ax = plot_forest(summary, "coverage_marginal", conditions=conditions)
    cell = summary.sel(condition=conditions, cohort="matched", endpoint="pfs")
    assert len(ax.containers) == 2
    for container, method in zip(ax.containers, ("paper", "recommended")):
        assert container.get_label() == method
        data_line = container.lines[0]
        np.testing.assert_allclose(data_line.get_xdata(), cell.coverage_marginal.sel({"method": method}).values)
        bars = container.lines[2][0].get_segments()
        half = Z * cell.coverage_marginal_mcse.sel({"method": method}).values
        np.testing.assert_allclose([b[1][0] - b[0][0] for b in bars], 2 * half)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    expected = [f"size = {int(summary[SIZE].sel(condition=c))}, hazard_ratio = "
                f"{float(summary[HAZARD_RATIO].sel(condition=c)):g}" for c in conditions]
    assert labels == expected
    nominal = next(line for line in ax.get_lines() if line.get_label() == "nominal 0.95")
    assert nominal.get_xdata()[0] == 0.95
    with pytest.raises(ValueError, match="not in the summary"):
        plot_forest(summary, conditions=[99])


def test_power_curve_simulated_analytic_target_and_solution(summary):
    effect = summary.where(summary[HAZARD_RATIO] == 0.7, drop=True)
    ax = plot_power_curve(effect, x=SIZE, cohort="matched", endpoint="pfs", target=0.8,
                          solution=(95.0, 84.0, 108.0), x_label="Patients in the treated arm")
    order = np.argsort(effect[SIZE].values)
    cell = effect.isel(condition=order).sel(cohort="matched", endpoint="pfs")
    lines = {line.get_label(): line for line in ax.get_lines()}
    for method in ("paper", "recommended"):
        line = lines[f"{method} plan: simulated (band ±1.96 Monte Carlo SE)"]
        np.testing.assert_array_equal(line.get_xdata(), [40.0, 80.0, 160.0])
        np.testing.assert_allclose(line.get_ydata(), cell.power_logrank.sel({"method": method}).values)
        by_gid = {l.get_gid(): l for l in ax.get_lines()}
        np.testing.assert_allclose(by_gid[f"schoenfeld:{method}"].get_ydata(),
                                   cell.schoenfeld_power.sel({"method": method}).values)
        np.testing.assert_allclose(by_gid[f"freedman:{method}"].get_ydata(),
                                   cell.freedman_power.sel({"method": method}).values)
    assert lines["target power 0.8"].get_ydata()[0] == 0.8
    solution = lines["solution: Patients in the treated arm 95 (95% CI 84–108)"]
    assert solution.get_xdata()[0] == 95.0
    span = next(p for p in ax.patches if p.get_label() == "_solution band")
    assert (span.get_x(), span.get_x() + span.get_width()) == (84.0, 108.0)
    bands = [c for c in ax.collections if c.get_label() == "_band"]
    half = Z * cell.power_logrank_mcse.sel({"method": "paper"}).values
    top = bands[0].get_paths()[0].vertices[:, 1].max()
    assert top == pytest.approx(np.max(cell.power_logrank.sel({"method": "paper"}).values + half))
    assert ax.get_ylim() == (0.0, 1.0)
    assert ax.get_xlabel() == "Patients in the treated arm"
    assert ax.get_ylabel() == "Power: share of replicates with p < 0.05"


def test_power_curve_refuses_ambiguous_or_non_numeric_x(summary):
    with pytest.raises(ValueError, match="other factors vary too"):
        plot_power_curve(summary, x=SIZE)
    with pytest.raises(ValueError, match="name the factor"):
        plot_power_curve(summary)
    null = summary.isel(condition=[0, 2, 4]).drop_vars(SIZE)  # the three sizes at HR 1, unlabelled
    labelled = null.assign_coords(matcher=("condition", ["matchit_nn", "spss_fuzzy_v1", "spss_fuzzy_v2"]))
    with pytest.raises(ValueError, match="not numeric"):
        plot_power_curve(labelled, x="matcher")
    with pytest.raises(ValueError, match="choose one of logrank, cox"):
        plot_power_curve(summary, x=SIZE, test="wald")
