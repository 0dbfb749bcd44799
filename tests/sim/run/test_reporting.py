"""Reports and figures of a run folder: the scenario's ASSUMPTION comments, a replicate
regenerated exactly as the run drew it, and report.html / report.md on disk (valid, self-contained,
every figure rendered by headless Chromium)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from sim.errors import PsmsimError, RunFolderError
from sim.run.orchestrate import run_scenario
from sim.run.report_facts import scenario_assumptions, study_facts
from sim.run.reporting import plot_run, regenerate_replicate, write_report
from sim.scenario import load_scenario
from tests.analysis.plots.html_checks import check_self_contained, rendered_image_sizes

ROOT = Path(__file__).resolve().parents[3]
LIU2021 = ROOT / "scenarios" / "liu2021.toml"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, liu2021_small_truth_path):
    """A small run of the paper's scenario (its truths from 20,000 profiles): 24 replicates in
    blocks of 8."""
    out = tmp_path_factory.mktemp("report-run") / "run"
    run_scenario(load_scenario(liu2021_small_truth_path), replicates=24, block_size=8, jobs=1, out=out, quiet=True)
    return out


def test_assumptions_of_the_paper_scenario():
    text = LIU2021.read_text()
    found = scenario_assumptions(text)
    assert all("ASSUMPTION" in item for item in found)
    # every line of the file that says ASSUMPTION is in exactly one listed comment
    lines = [line.split("#", 1)[1].strip().lstrip("#").strip() for line in text.splitlines()
             if "ASSUMPTION" in line]
    for line in lines:
        matches = sum(line in item for item in found)
        assert matches == 1 or (line == "ASSUMPTION" and matches >= 1), line
    assert "[covariates.age] bounds = [18.0, 90.0] — inclusion: aged >= 18; upper bound 90 is an ASSUMPTION" in found
    assert ("[outcome.treatment] delay_months = 0.0 — ASSUMPTION: proportional from the start (vary for a delayed "
            "immunotherapy effect)") in found
    assert any(item.startswith("[correlation] Latent (Gaussian-copula) correlations.") for item in found)
    assert any(item.startswith("[analysis.paper] ASSUMPTION: the paper does not state") for item in found)
    assert any(item.startswith("[adverse_events] Table 3") for item in found)


def test_assumption_comments_inline_paragraph_and_continued():
    text = "\n".join([
        "# A header paragraph without the word.",
        "#",
        "# This paragraph states an ASSUMPTION",
        "# over two lines.",
        "[outcome]",
        'shape = 1.1   # ASSUMPTION: rising',
        "              # and continued here",
        'scale = 2.0   # printed in the paper',
        '# ---------------------------------',
        'label = "a # not a comment" # ASSUMPTION: quoted hash ignored',
    ])
    assert scenario_assumptions(text) == (
        "[outcome] This paragraph states an ASSUMPTION over two lines.",
        "[outcome] shape = 1.1 — ASSUMPTION: rising and continued here",
        '[outcome] label = "a # not a comment" — ASSUMPTION: quoted hash ignored',
    )


def test_study_facts_of_the_paper():
    facts = study_facts(load_scenario(LIU2021))
    design = dict(facts.design)
    assert design["Arms"] == "Camrelizumab + sorafenib: 35 (treated); Sorafenib: 65"
    assert design["Censoring"] == "uniform entry over 24 months, data cut-off at month 27, no dropout"
    rows = {row[0]: row for row in facts.covariates}
    assert rows["Sex, male"][2:] == ("32/35 (91.4%)", "54/65 (83.1%)", "0", "yes")
    assert rows["AST, IU/L"][2] == "median 56.6 (IQR 44.8–98.2)" and rows["AST, IU/L"][5] == "no"
    assert rows["Macrovascular invasion"][4] == "+0.4"
    assert facts.arm_labels == ("Camrelizumab + sorafenib", "Sorafenib")
    assert design["Assessments"].startswith("scans every 1.84 months: progression dated at the scan")
    assert len(facts.assumptions) == 15


def test_regenerated_replicate_equals_the_stored_one(run_dir, liu2021_small_truth_path):
    replicates = xr.load_dataset(run_dir / "replicates.nc", engine="h5netcdf")
    scenario = load_scenario(liu2021_small_truth_path)
    batch, results, index = regenerate_replicate(replicates, scenario, replicate=13)
    assert batch.n_replicates == 8 and index == 5  # block 1 holds replicates 8..15
    stored = replicates.sel(condition=0, replicate=13)
    for method, result in results.items():
        cell = stored.sel({"method": method})
        for name in ("log_hr", "se", "p_logrank", "median_treated", "smd"):
            np.testing.assert_array_equal(getattr(result, name)[index], cell[name].values)
        assert result.details, "regenerated with the detail tables (for the figures)"
    with pytest.raises(PsmsimError, match="replicates 0..23"):
        regenerate_replicate(replicates, scenario, replicate=24)
    tampered = replicates.copy(deep=True)
    tampered["log_hr"].loc[{"replicate": 13}] = 0.0
    with pytest.raises(RunFolderError, match="other results than the run stored"):
        regenerate_replicate(tampered, scenario, replicate=13)


@pytest.mark.parametrize("kind", ["hr-distribution", "pairs", "love", "zip", "km"])
def test_every_plot_kind_of_a_run(run_dir, kind):
    figure = plot_run(run_dir, kind, observed_pairs=34, replicate=3)
    assert figure.data.startswith(b"\x89PNG")
    assert figure.default_path.parent == run_dir / "figures" and figure.default_path.suffix == ".png"
    svg = plot_run(run_dir, kind, method="recommended", fmt="svg")
    assert b"<svg" in svg.data[:1000] and svg.default_path.suffix == ".svg"
    assert kind == "pairs" or "recommended" in svg.default_path.name  # pairs shows every method


def test_plot_options_that_do_not_fit_the_run(run_dir):
    with pytest.raises(PsmsimError, match="choose one of paper, recommended"):
        plot_run(run_dir, "love", method="optimal")
    with pytest.raises(PsmsimError, match="--condition 3"):
        plot_run(run_dir, "zip", condition=3)
    with pytest.raises(PsmsimError, match="--kind heat"):
        plot_run(run_dir, "heat")


def test_report_files_are_valid_self_contained_and_render(run_dir):
    previous = os.umask(0o002)
    try:
        html_path, md_path = write_report(run_dir, observed_pairs=34)
    finally:
        os.umask(previous)
    for path in (html_path, md_path, *(run_dir / "report_figures").glob("*.png")):
        assert path.stat().st_mode & 0o777 == 0o664, path  # the umask's mode, not mkstemp's 0600
    page = html_path.read_text(encoding="utf-8")
    images = check_self_contained(page)
    figures = sorted((run_dir / "report_figures").glob("*.png"))
    assert len(images) == len(figures) == 10
    markdown = md_path.read_text(encoding="utf-8")
    for figure in figures:
        assert f"](report_figures/{figure.name})" in markdown
    for heading in ("## Aims", "## Data-generating mechanism", "## Estimands", "## Methods",
                    "## Performance measures", "## Reading for a trial designer"):
        assert heading in markdown
    assert markdown.count("ASSUMPTION") >= 14
    assert "the study reported 34" in markdown
    sizes = rendered_image_sizes(page)
    assert len(sizes) == 10
    assert all(loaded and w > 0 and h > 0 and dw > 0 and dh > 0 for loaded, w, h, dw, dh in sizes), sizes
