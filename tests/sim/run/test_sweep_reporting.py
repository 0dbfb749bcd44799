"""Figures and reports of sweep folders: every sweep figure kind, the refusals that name the
fix, and report.html / report.md of each design (valid, self-contained, every figure rendered by
headless Chromium for the unmeasured-confounder sweep), written with the umask's modes."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager

import pytest
from click.testing import CliRunner

from sim.cli import main
from sim.errors import PsmsimError
from sim.run.reporting import plot_run, write_report
from tests.analysis.plots.html_checks import check_self_contained, rendered_image_sizes


@contextmanager
def umask(mask: int):
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def test_the_cli_prints_one_line_for_a_kind_the_sweep_lacks(small_sweep):
    out, _ = small_sweep("unmeasured")
    result = CliRunner().invoke(main, ["plot", str(out), "--kind", "sobol"])
    assert result.exit_code == 2 and result.output.strip().splitlines() == [
        "error: --kind sobol: this is a factorial sweep; its sensitivity figure is --kind eta-squared"]


@pytest.mark.parametrize("kind, stem", [
    ("nested-loop", "nested-loop-bias_marginal-matched-pfs"), ("forest", "forest-bias_marginal-matched-pfs"),
    ("eta-squared", "eta-squared-power_logrank-paper-pfs"), ("bias-surface", "bias-surface-paper-pfs"),
])
def test_figures_of_a_factorial_sweep(small_sweep, kind, stem):
    out, _ = small_sweep("unmeasured")
    figure = plot_run(out, kind)
    assert figure.data.startswith(b"\x89PNG")
    assert figure.default_path == out / "figures" / f"{stem}.png"


def test_sweep_figure_options(small_sweep):
    out, _ = small_sweep("unmeasured")
    svg = plot_run(out, "nested-loop", measure="coverage_marginal", method="recommended", fmt="svg")
    assert b"<svg" in svg.data[:1000] and svg.default_path.name == "nested-loop-coverage_marginal-matched-pfs.svg"
    assert plot_run(out, "bias-surface", method="recommended", endpoint="os").default_path.name == \
        "bias-surface-recommended-os.png"


@pytest.mark.parametrize("kind, options, message", [
    ("tornado", {}, "this is a factorial sweep; its sensitivity figure is --kind eta-squared"),
    ("power", {}, "name the x axis with --factor (one of prevalence_difference, u_log_hr)"),
    ("power", {"factor": "u_log_hr"}, "other factors vary too (prevalence_difference)"),
    ("nested-loop", {"measure": "bias"}, "--measure bias: not in the sweep's summary; choose one of"),
    ("morris", {"method": "optimal"}, "--method optimal: not a method of this sweep; choose one of paper, recommended"),
    ("love", {}, "a factorial sweep (dims"),
])
def test_sweep_figures_that_do_not_fit_say_why(small_sweep, kind, options, message):
    out, _ = small_sweep("unmeasured")
    with pytest.raises(PsmsimError) as caught:
        plot_run(out, kind, **options)
    assert message in str(caught.value)


@pytest.mark.parametrize("design, kind", [("one_at_a_time", "tornado"), ("morris", "morris"), ("sobol", "sobol")])
def test_indices_figure_and_report_of_each_design(small_sweep, design, kind):
    out, _ = small_sweep(design)
    figure = plot_run(out, kind, measure="bias_marginal")
    assert figure.data.startswith(b"\x89PNG") and figure.default_path.name == f"{kind}-bias_marginal-paper-pfs.png"
    with pytest.raises(PsmsimError, match="no \\[sweep\\] surface"):
        plot_run(out, "bias-surface")
    html_path, md_path = write_report(out)
    markdown = md_path.read_text(encoding="utf-8")
    for heading in ("## Aims", "## Sweep factors", "## Data-generating mechanism", "## Performance across the grid",
                    "## Sensitivity indices"):
        assert heading in markdown
    assert "## Unmeasured confounder" not in markdown
    for measure in ("power_logrank", "bias_marginal", "coverage_marginal"):
        assert f"](report_figures/{kind}-{measure}.png)" in markdown
    if design == "one_at_a_time":
        assert "](report_figures/forest-power_logrank.png)" in markdown
    check_self_contained(html_path.read_text(encoding="utf-8"))


def test_report_of_the_unmeasured_confounder_sweep(small_sweep, tmp_path):
    source, _ = small_sweep("unmeasured")
    out = tmp_path / "copy"
    shutil.copytree(source, out)
    for name in ("sensitivity.nc", "bias_surface.nc", "report.html", "report.md"):
        (out / name).unlink(missing_ok=True)
    with umask(0o027):
        html_path, md_path = write_report(out)
    assert not (out / "sensitivity.nc").exists() and not (out / "bias_surface.nc").exists()  # computed, not written
    for path in (html_path, md_path, *sorted((out / "report_figures").glob("*.png"))):
        assert path.stat().st_mode & 0o777 == 0o640, path
    markdown = md_path.read_text(encoding="utf-8")
    headings = [line for line in markdown.splitlines() if line.startswith("## ")]
    assert headings == ["## Aims", "## Sweep factors", "## Data-generating mechanism", "## Performance across the grid",
                        "## Sensitivity indices", "## Unmeasured confounder"]
    assert "| `prevalence_difference` | `unmeasured.prevalence.combination`, `unmeasured.prevalence.sorafenib` | " \
           "0, 0.2, 0.4 | regenerates the cohorts |" in markdown
    assert "conditional hazard ratio 0.6" in markdown  # the sweep's [set] fields, not the base file's medians
    assert "prevalence combination 0.3, sorafenib 0.3" in markdown
    assert "| prevalence_difference × u_log_hr |" in markdown
    assert "its E-value (VanderWeele & Ding 2017, common outcome) is **2.63**" in markdown
    assert "| Macrovascular invasion |" in markdown
    expected = {f"nested-loop-{m}.png" for m in ("bias_marginal", "coverage_marginal", "power_logrank")} | {
        f"eta-squared-{m}.png" for m in ("bias_marginal", "coverage_marginal", "power_logrank")} | {
        "bias-surface-paper.png", "bias-surface-recommended.png"}
    figures = {p.name for p in (out / "report_figures").glob("*.png")}
    assert figures == expected
    page = html_path.read_text(encoding="utf-8")
    images = check_self_contained(page)
    assert len(images) == len(expected)
    sizes = rendered_image_sizes(page)
    assert len(sizes) == len(expected)
    assert all(loaded and w > 0 and h > 0 and dw > 0 and dh > 0 for loaded, w, h, dw, dh in sizes), sizes
