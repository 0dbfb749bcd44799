"""The report document, its HTML and Markdown renderings and the ADEMP section builders, on a
synthetic run: sections in order, tables holding the summary's numbers, figures embedded."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.performance.summary import summarise_run
from analysis.plan.analyse import analyse_cohorts
from analysis.plan.options import PRESETS, make_plan
from analysis.plan.survival_curves import kaplan_meier_curves
from analysis.plots.report import BulletList, Figure, Paragraph, Report, Section, Table, render_html, render_markdown
from analysis.plots.report_sections import RUN_SECTIONS, ReportContext, StudyFacts
from tests.analysis.plots.cohorts import random_batch
from tests.analysis.plots.html_checks import check_self_contained, rendered_image_sizes
from tests.analysis.plots.synthetic_grid import make_grid_replicates

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16


@pytest.fixture(scope="module")
def context():
    replicates = make_grid_replicates(rng=np.random.default_rng(8), sizes=(60,), hazard_ratios=(0.7,),
                                      n_replicates=150)
    summary = summarise_run(replicates)
    batch = random_batch(np.random.default_rng(2), n_replicates=1)
    result = analyse_cohorts(batch, make_plan("paper"), rng=np.random.default_rng(3), details=True)
    facts = StudyFacts(
        name="toy", title="A toy study", design=(("Arms", "A: 30 (treated); B: 50"), ("Censoring", "uniform")),
        covariates=(("Age, years", "normal", "mean 56 ± SD 9", "mean 60 ± SD 9", "+0.02", "yes"),),
        assumptions=("[outcome] shape = 1.1 — ASSUMPTION: rising hazard", "[correlation] every value is an ASSUMPTION"),
        covariate_labels={"age": "Age, years"}, arm_labels=("Drug A", "Drug B"), truth_patients=1000,
    )
    return ReportContext(
        replicates=replicates.isel(condition=0), summary=summary.isel(condition=0), study=facts,
        plans=dict(PRESETS), primary_method="paper", km_curves=kaplan_meier_curves(batch, result), km_replicate=0,
        observed_pairs=34,
    )


@pytest.fixture(scope="module")
def report(context):
    sections = tuple(s for builder in RUN_SECTIONS if (s := builder(context)) is not None)
    return Report(title="psmsim report: toy", subtitle="A toy study", sections=sections, footer="made in a test")


def _table(section: Section, caption: str) -> Table:
    return next(b for b in section.blocks if isinstance(b, Table) and b.caption.startswith(caption))


def test_sections_follow_ademp(report):
    assert [s.title for s in report.sections] == [
        "Aims", "Data-generating mechanism", "Estimands", "Methods", "Performance measures",
        "Reading for a trial designer"]
    names = [f.name for f in report.figures]
    assert names == ["km", "love-paper", "love-recommended", "pairs", "hr-paper-pfs", "hr-paper-os", "zip-paper-pfs",
                     "hr-recommended-pfs", "hr-recommended-os", "zip-recommended-pfs"]
    assert all(f.png.startswith(b"\x89PNG") for f in report.figures)


def test_assumptions_are_listed(report):
    dgm = report.sections[1]
    bullets = next(b for b in dgm.blocks if isinstance(b, BulletList))
    assert bullets.items == ("`outcome`: shape = 1.1 — ASSUMPTION: rising hazard",
                             "`correlation`: every value is an ASSUMPTION")
    assert any("(2):" in b.text for b in dgm.blocks if isinstance(b, Paragraph))


def test_estimands_are_the_true_values(report, context):
    table = _table(report.sections[2], "True values")
    pfs = context.replicates.sel(endpoint="pfs")
    assert table.rows[0][0] == "PFS"
    assert table.rows[0][1] == f"{math.exp(float(pfs.true_log_hr_marginal)):.3f} (log {float(pfs.true_log_hr_marginal):+.3f})"
    assert table.header[3] == "Median, Drug A (months)"


def test_methods_table_describes_each_plan(report):
    table = _table(report.sections[3], "Analysis methods")
    assert table.header == ("Option", "paper", "recommended")
    rows = dict((row[0], row[1:]) for row in table.rows)
    assert rows["Caliper"] == ("0.05 (ps units)", "0.2 SD of the logit")
    assert rows["PS model"] == ("logistic, all covariates, fitted as SPSS LOGISTIC REGRESSION",
                                "logistic, all covariates, fitted as R glm.fit")
    assert rows["Cox model"][1] == "efron ties, robust SE (clustered on pairs)"


def test_performance_tables_hold_the_summary_with_mcse(report, context):
    section = report.sections[4]
    power = _table(section, "Power of the tests")
    cell = context.summary.sel({"method": "recommended", "cohort": "matched", "endpoint": "os"})
    row = next(r for r in power.rows if r[:3] == ("recommended", "matched", "OS"))
    assert row[3] == f"{100 * float(cell.power_logrank):.1f}% ± {100 * float(cell.power_logrank_mcse):.1f}"
    assert row[5] == f"{float(cell.mean_events):.1f}"
    estimate = _table(section, "The log-HR estimate")
    row = next(r for r in estimate.rows if r[:3] == ("recommended", "matched", "OS"))
    assert row[3] == f"{float(cell.bias_marginal):+.3f} ± {float(cell.bias_marginal_mcse):.3f}"
    assert row[4] == f"{100 * float(cell.coverage_marginal):.1f}% ± {100 * float(cell.coverage_marginal_mcse):.1f}"
    assert len(power.rows) == len(estimate.rows) == 8
    failures = _table(section, "Failures and flags")
    assert any(r[1] == "PS model / matching" for r in failures.rows)
    pairs = _table(section, "Matching, balance")
    counts = context.replicates.n_pairs.sel({"method": "paper"}).values
    assert pairs.rows[0][3] == f"{100 * np.mean(counts <= 34):.1f}%"


def test_reading_states_power_pairs_and_planning(report, context):
    items = report.sections[5].blocks[0].items
    cell = context.summary.sel({"method": "paper", "cohort": "matched", "endpoint": "pfs"})
    assert f"**{100 * float(cell.power_logrank):.0f}%** power" in items[0]
    assert "the study reported 34" in items[2]
    assert items[3].startswith("**Planning a trial**") and "Schoenfeld" in items[3]


def test_html_is_self_contained_and_valid(report):
    page = render_html(report)
    images = check_self_contained(page)
    assert len(images) == len(report.figures)
    assert page.count("<section") == len(report.sections)
    assert 'href="#performance-measures"' in page


def test_html_escapes_text_and_renders_markup():
    report = Report(title="a <b> & c", subtitle="**bold** and `code`", sections=(
        Section("One", (Paragraph("x < y & `z`"), Table("t", ("a|b",), (("<i>",),)))),))
    page = render_html(report)
    check_self_contained(page)
    assert "<title>a &lt;b&gt; &amp; c</title>" in page
    assert "<strong>bold</strong> and <code>code</code>" in page
    assert "x &lt; y &amp; <code>z</code>" in page and "<td>&lt;i&gt;</td>" in page


def test_markdown_refers_to_the_figure_files(report):
    text = render_markdown(report, figure_path=lambda f: f"report_figures/{f.name}.png")
    for figure in report.figures:
        assert f"](report_figures/{figure.name}.png)" in text
    assert text.startswith("# psmsim report: toy\n")
    assert "## Performance measures" in text and "| Method | Cohort | Endpoint |" in text


def test_repeated_figure_names_are_refused():
    figure = Figure("same", "a", PNG)
    with pytest.raises(ValueError, match="names repeated"):
        Report("t", "s", (Section("A", (figure,)), Section("B", (figure,))))


def test_every_figure_renders_in_chromium(report):
    sizes = rendered_image_sizes(render_html(report))
    assert len(sizes) == len(report.figures)
    for loaded, natural_width, natural_height, width, height in sizes:
        assert loaded and natural_width > 0 and natural_height > 0 and width > 0 and height > 0
