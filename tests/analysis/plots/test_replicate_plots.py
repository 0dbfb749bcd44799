"""Figures over the replicates Dataset: love plot, HR distribution, matched pairs, zip plot.
Each test checks that the drawn data are the Dataset's numbers (computed here directly)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import ndtr

from analysis.performance.summary import summarise_run
from analysis.plots.balance import love_plot_data, plot_love
from analysis.plots.coverage import plot_zip, zip_data
from analysis.plots.estimates import hr_bins, pair_count_shares, plot_hr_distribution, plot_matched_pairs
from analysis.plots.style import figure_bytes, method_colour
from tests.analysis.plots.synthetic_grid import make_grid_replicates


@pytest.fixture(scope="module")
def replicates():
    """One grid point (a plain run): 300 replicates, two methods."""
    return make_grid_replicates(rng=np.random.default_rng(12), sizes=(60,), hazard_ratios=(0.7,), n_replicates=300)


# --------------------------------------------------------------------------- love plot
def test_love_plot_data_are_median_and_percentiles_over_replicates(replicates):
    data = love_plot_data(replicates, method="recommended")
    smd = np.abs(replicates.smd.isel(condition=0).sel({"method": "recommended"}))
    for cohort in ("full", "matched"):
        for covariate in data.covariate.values:
            values = smd.sel(cohort=cohort, covariate=covariate).values
            cell = data.sel(cohort=cohort, covariate=covariate)
            assert float(cell["median"]) == pytest.approx(np.median(values), rel=1e-12)
            assert float(cell.lower) == pytest.approx(np.quantile(values, 0.1), rel=1e-12)
            assert float(cell.upper) == pytest.approx(np.quantile(values, 0.9), rel=1e-12)
    before = data["median"].sel(cohort="full").values
    assert np.all(np.diff(before) <= 0), "covariates sorted by imbalance before matching"


def test_love_plot_draws_medians_spread_and_threshold(replicates):
    labels = {"age": "Age, years", "ecog": "ECOG 1", "tumour_size": "Tumour size, cm"}
    ax = plot_love(replicates, method="paper", labels=labels, threshold=0.1)
    data = love_plot_data(replicates, method="paper")
    lines = {line.get_label(): line for line in ax.get_lines()}
    rows = np.arange(data.sizes["covariate"])[::-1]
    for cohort, name in (("full", "Before matching"), ("matched", "After matching")):
        np.testing.assert_allclose(lines[name].get_xdata(), data["median"].sel(cohort=cohort).values)
        assert np.all(np.diff(lines[name].get_ydata()) < 0)
    spreads = [c for c in ax.collections if c.get_label().startswith("_spread")]
    assert len(spreads) == 2
    segments = spreads[1].get_segments()  # matched
    np.testing.assert_allclose([s[0][0] for s in segments], data.lower.sel(cohort="matched").values)
    np.testing.assert_allclose([s[1][0] for s in segments], data.upper.sel(cohort="matched").values)
    assert lines["|SMD| = 0.1 threshold"].get_xdata()[0] == 0.1
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert ticks == [labels[c] for c in data.covariate.values]
    np.testing.assert_array_equal(ax.get_yticks(), rows)
    assert "300 replicates" in ax.get_title() and "paper plan" in ax.get_title()


def test_love_plot_of_a_weighting_method_names_weighted_smds(replicates):
    ax = plot_love(replicates, method="recommended", estimator="iptw")
    labels = [line.get_label() for line in ax.get_lines()]
    assert "After IPTW weighting (weighted SMD)" in labels and "Before weighting (unweighted SMD)" in labels
    assert not any("matching" in label for label in labels)
    assert "Overlap" not in labels and "After overlap weighting (weighted SMD)" in [
        line.get_label() for line in plot_love(replicates, estimator="overlap").get_lines()]
    with pytest.raises(ValueError, match="estimator 'cox_adjusted': has no balanced sample"):
        plot_love(replicates, estimator="cox_adjusted")


def test_love_plot_of_one_cohort_has_no_spread(replicates):
    ax = plot_love(replicates.isel(replicate=[5]))
    assert not [c for c in ax.collections if c.get_label().startswith("_spread")]
    assert "one cohort" in ax.get_title()


def test_unknown_method_lists_the_choices(replicates):
    with pytest.raises(ValueError, match="choose one of paper, recommended"):
        plot_love(replicates, method="optimal")


# --------------------------------------------------------------------------- HR distribution
def test_hr_histograms_and_truth_lines(replicates):
    ax = plot_hr_distribution(replicates, method="paper", endpoint="pfs")
    cell = replicates.isel(condition=0).sel({"method": "paper", "endpoint": "pfs"})
    edges = hr_bins(cell.log_hr.values.ravel())
    steps = {patch.get_label(): patch for patch in ax.patches if not patch.get_label().startswith("_")}
    assert len(steps) == 2
    for cohort in ("full", "matched"):
        values = cell.log_hr.sel(cohort=cohort).values
        finite = values[np.isfinite(values)]
        label = next(name for name in steps if name.lower().startswith("before" if cohort == "full" else "after"))
        heights, drawn_edges, _ = steps[label].get_data()
        inside = finite[(finite >= edges[0]) & (finite <= edges[-1])]
        expected = np.histogram(inside, bins=edges)[0] / finite.size / (edges[1] - edges[0])
        np.testing.assert_allclose(heights, expected)
        np.testing.assert_allclose(drawn_edges, np.exp(edges))
        assert f"median HR {math.exp(np.median(finite)):.2f}, {finite.size} fits" in label
    lines = {line.get_label(): line for line in ax.get_lines()}
    marginal = math.exp(float(cell.true_log_hr_marginal))
    conditional = math.exp(float(cell.true_log_hr_conditional))
    assert lines[f"True marginal HR in the treated (ATT): {marginal:.2f}"].get_xdata()[0] == pytest.approx(marginal)
    assert lines[f"True conditional HR: {conditional:.2f}"].get_xdata()[0] == pytest.approx(conditional)
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel().startswith("Estimated PFS hazard ratio")


# --------------------------------------------------------------------------- matched pairs
def test_pair_counts_and_the_published_count(replicates):
    ax = plot_matched_pairs(replicates, observed=34, observed_label="Liu et al. 2021")
    shares = pair_count_shares(replicates)
    counts = replicates.n_pairs.isel(condition=0)
    methods = replicates.method.values.tolist()
    assert len(ax.containers) == 2
    for container, method in zip(ax.containers, methods):
        heights = [bar.get_height() for bar in container]
        values = counts.sel({"method": method}).values
        expected = [np.mean(values == level) for level in shares.n_pairs.values]
        np.testing.assert_allclose(heights, expected)
        assert container.get_label().startswith(f"{method} plan: mean {values.mean():.1f} pairs; "
                                                f"{100 * np.mean(values <= 34):.0f}% of replicates have ≤ 34")
        assert container.patches[0].get_facecolor()[:3] == pytest.approx(
            tuple(int(method_colour(methods, method)[i:i + 2], 16) / 255 for i in (1, 3, 5)))
    published = next(line for line in ax.get_lines() if line.get_label() == "Liu et al. 2021: 34 pairs")
    assert published.get_xdata()[0] == 34
    assert ax.get_xlabel().startswith("Matched pairs")


def test_pair_counts_skip_missing_counts(replicates):
    broken = replicates.copy(deep=True)
    broken["n_pairs"][0, :10, 0] = -1
    shares = pair_count_shares(broken)
    assert float(shares.sel({"method": "paper"}).sum()) == pytest.approx(1.0)


# --------------------------------------------------------------------------- zip plot
@pytest.mark.parametrize("truth", ["marginal", "conditional"])
def test_zip_data_coverage_equals_the_summary(replicates, truth):
    data = zip_data(replicates, method="paper", cohort="matched", endpoint="pfs", truth=truth)
    summary = summarise_run(replicates).isel(condition=0).sel({"method": "paper", "cohort": "matched",
                                                                "endpoint": "pfs"})
    assert data.attrs["coverage"] == pytest.approx(float(summary[f"coverage_{truth}"]), abs=1e-15)
    assert data.attrs["coverage_mcse"] == pytest.approx(float(summary[f"coverage_{truth}_mcse"]), rel=1e-12)
    assert data.attrs["n_used"] == int(summary.n_used)
    assert np.all(np.diff(np.abs(data.z.values)) >= 0)
    assert data.centile.values[-1] == 1.0
    # Wald intervals: every interval that misses the truth ranks above every one that covers it
    covers = data.covers.values
    assert data.centile.values[~covers].min() > data.centile.values[covers].max()
    p_value = 2 * ndtr(-np.abs(data.z.values))
    assert np.all(np.diff(p_value) <= 1e-15), "ranked by the p-value against the truth"


def test_zip_plot_draws_every_interval_and_the_coverage_band(replicates):
    ax = plot_zip(replicates, method="recommended", cohort="matched", endpoint="os")
    data = zip_data(replicates, method="recommended", cohort="matched", endpoint="os")
    groups = {c.get_label().split(" (")[0]: c for c in ax.collections if c.get_label().startswith("CI ")}
    covers, misses = groups["CI covers the true HR"], groups["CI misses the true HR"]
    assert len(covers.get_segments()) + len(misses.get_segments()) == data.attrs["n_used"]
    first = covers.get_segments()[0]
    np.testing.assert_allclose(first[:, 0], np.exp([data.ci_lower.values[0], data.ci_upper.values[0]]))
    assert first[0, 1] == data.centile.values[0]
    coverage, mcse = data.attrs["coverage"], data.attrs["coverage_mcse"]
    band = next(p for p in ax.patches if p.get_label().startswith("Coverage"))
    assert band.get_y() == pytest.approx(coverage - 1.959963984540054 * mcse)
    assert band.get_y() + band.get_height() == pytest.approx(coverage + 1.959963984540054 * mcse)
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert lines["Nominal 95%"].get_ydata()[0] == 0.95
    truth = math.exp(data.attrs["truth"])
    assert lines[f"True marginal HR {truth:.2f}"].get_xdata()[0] == pytest.approx(truth)
    assert ax.get_ylim() == (0.0, 1.0)
    zoomed = plot_zip(replicates, zoom=0.25)
    assert zoomed.get_ylim() == (0.75, 1.0)


def test_figures_render_to_png_and_svg(replicates):
    ax = plot_hr_distribution(replicates)
    assert figure_bytes(ax.figure).startswith(b"\x89PNG\r\n\x1a\n")
    assert b"<svg" in figure_bytes(ax.figure, fmt="svg")[:500]
    with pytest.raises(ValueError, match="png or svg"):
        figure_bytes(ax.figure, fmt="jpg")


def test_a_sweep_needs_its_grid_point_named():
    sweep = make_grid_replicates(rng=np.random.default_rng(3), sizes=(40, 80), hazard_ratios=(0.7,), n_replicates=50)
    with pytest.raises(ValueError, match="has 2 grid points"):
        plot_hr_distribution(sweep)
    ax = plot_hr_distribution(sweep, condition=1)
    assert "arms.combination.size = 80" in ax.get_title()
