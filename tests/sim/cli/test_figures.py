"""The figure and report commands end to end: ``psmsim plot``, ``psmsim report`` and
``psmsim analyse --plot``, with one clear error line for what does not fit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sim.cli import main
from sim.cli.figures import _PLOT_KINDS
from sim.run.reporting import PLOT_KINDS
from sim.run.folder_lock import FolderLock
from sim.run.sweep_reporting import SWEEP_PLOT_KINDS
from tests.analysis.plots.html_checks import check_self_contained
from tests.sim.cli.helpers import assert_one_line_error, invoke

ROOT = Path(__file__).resolve().parents[3]
LIU2021 = ROOT / "scenarios" / "liu2021.toml"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, liu2021_small_truth_path):
    out = tmp_path_factory.mktemp("cli-plot") / "run"
    result = invoke("run", liu2021_small_truth_path, "--replicates", 16, "--block-size", 8, "--jobs", 1, "--quiet", "--out", out)
    assert result.exit_code == 0, result.output
    return out


def test_the_cli_offers_every_kind():
    assert _PLOT_KINDS == PLOT_KINDS + SWEEP_PLOT_KINDS


def test_a_sweep_figure_of_a_plain_run_says_so(run_dir):
    assert_one_line_error(invoke("plot", run_dir, "--kind", "nested-loop"), "holds a plain run, not a sweep")


def test_plot_writes_the_default_file(run_dir):
    result = invoke("plot", run_dir, "--kind", "pairs", "--observed-pairs", 34)
    assert result.exit_code == 0, result.output
    path = run_dir / "figures" / "pairs.png"
    assert result.output.strip() == f"wrote {path}"
    assert path.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("args,name", [
    (("--kind", "hr-distribution", "--endpoint", "os"), "hr-distribution"),
    (("--kind", "love",), "love"),
    (("--kind", "zip", "--cohort", "full"), "zip"),
])
def test_plot_every_other_kind(run_dir, tmp_path, args, name):
    out = tmp_path / f"{name}.png"
    result = invoke("plot", run_dir, *args, "--out", out)
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"\x89PNG")


def test_plot_km_of_a_replicate_as_svg_and_no_overwrite(run_dir, tmp_path):
    out = tmp_path / "km.svg"
    result = invoke("plot", run_dir, "--kind", "km", "--replicate", 9, "--method", "recommended", "--out", out)
    assert result.exit_code == 0, result.output
    assert b"<svg" in out.read_bytes()[:1000]
    before = out.read_bytes()
    assert_one_line_error(invoke("plot", run_dir, "--kind", "zip", "--out", out), "file exists")
    assert out.read_bytes() == before
    assert invoke("plot", run_dir, "--kind", "zip", "--out", out, "--force").exit_code == 0
    assert out.read_bytes() != before


@pytest.mark.parametrize("args,fragment", [
    (("--kind", "love", "--method", "optimal"), "--method optimal: not a method of this run; choose one of paper"),
    (("--kind", "km", "--replicate", 16), "--replicate 16: the run has replicates 0..15"),
    (("--kind", "zip", "--out", "figure.pdf"), "--out figure.pdf: the file must end in .png or .svg"),
    (("--kind", "zip", "--condition", 2), "--condition 2: the run has conditions 0..0"),
])
def test_plot_options_that_do_not_fit(run_dir, args, fragment):
    assert_one_line_error(invoke("plot", run_dir, *args), fragment)


def test_plot_of_a_folder_without_a_run(tmp_path):
    assert_one_line_error(invoke("plot", tmp_path, "--kind", "pairs"), "no replicates.nc")


def test_report_writes_html_and_markdown(run_dir):
    result = invoke("report", run_dir, "--observed-pairs", 34)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"wrote {run_dir / 'report.html'} and {run_dir / 'report.md'}"
    check_self_contained((run_dir / "report.html").read_text(encoding="utf-8"))
    assert (run_dir / "report.md").read_text(encoding="utf-8").startswith("# psmsim report: liu2021")


def test_analyse_plot_writes_km_and_love(tmp_path):
    cohort = tmp_path / "cohort.csv"
    assert invoke("cohort", LIU2021, "--seed", 3, "--out", cohort).exit_code == 0
    figures = tmp_path / "figures"
    result = invoke("analyse", cohort, "--scenario", LIU2021, "--plot", figures)
    assert result.exit_code == 0, result.output
    assert "Table 1" in result.output and f"wrote {figures / 'km.png'}, {figures / 'love.png'}" in result.output
    for name in ("km.png", "love.png"):
        assert (figures / name).read_bytes().startswith(b"\x89PNG")
    assert_one_line_error(invoke("analyse", cohort, "--plot", figures), "--plot")
    assert invoke("analyse", cohort, "--plot", figures, "--force").exit_code == 0
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    assert_one_line_error(invoke("analyse", cohort, "--plot", not_a_folder), "is not a folder")


@pytest.mark.parametrize("command", [("report",), ("plot", "--kind", "pairs")])
def test_report_and_plot_refuse_a_folder_a_run_is_writing(run_dir, command):
    """While a run holds run.lock (here: this process, as `psmsim run --out RUN_DIR` would)
    report and plot read nothing and say who writes and what to do; afterwards they work."""
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file() and p.name != "run.lock"}
    with FolderLock.acquire(run_dir, option="--out"):
        assert_one_line_error(invoke(*command[:1], run_dir, *command[1:]),
                              f"RUN_DIR {run_dir}: a psmsim run (PID {os.getpid()}) is writing this folder; "
                              f"wait for it to finish (or stop it), then rerun psmsim {command[0]}")
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert invoke(*command[:1], run_dir, *command[1:]).exit_code == 0
