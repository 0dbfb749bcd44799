"""`psmsim samplesize`: a psm search on liu2021 end to end on small settings (n before matching,
mean pairs and events at the answer, the JSON keys, samplesize.nc), a target no n reaches
within --max-n (said so, no bound returned), and every impossible request refused in one
line with exit code 2 before anything is written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sim.cli import main
from sim.run.folder_lock import FolderLock
from sim.run.atomic_files import read_dataset
from tests.sim.cli.helpers import assert_one_line_error, invoke

ROOT = Path(__file__).resolve().parents[3]
LIU2021 = ROOT / "scenarios" / "liu2021.toml"
SMALL = ["--tolerance", "0.3", "--first-replicates", "30", "--candidates", "4",
         "--block-size", "30", "--jobs", "1", "--seed", "3", "--quiet"]


@pytest.fixture(scope="module")
def liu_fast(liu2021_small_truth_path) -> Path:
    """liu2021 with 20,000 truth patients (tests/sim/conftest.py; the calibration, keyed without
    them, is shared): the truths only feed the Schoenfeld and Freedman lines and the report,
    which these tests check for presence, not value."""
    return liu2021_small_truth_path


def test_psm_search_on_liu2021_reports_n_before_matching_pairs_and_events(liu_fast, tmp_path):
    out, json_path = tmp_path / "search", tmp_path / "answer.json"
    result = invoke("samplesize", liu_fast, "--endpoint", "pfs", "--target-power", "0.8",
                    "--design", "psm", *SMALL, "--out", out, "--json", json_path)
    assert result.exit_code == 0, result.output
    assert "n before matching:" in result.output and "matched pairs at the answer" in result.output
    assert "Schoenfeld:" in result.output and "Freedman:" in result.output
    payload = json.loads(json_path.read_text())
    for key in ("n", "n_ci", "events", "power_at_n", "schoenfeld_n", "freedman_n", "design",
                "endpoint", "target_power", "curve", "pairs_at_n", "other_power_at_n",
                "both_significant_at_n"):
        assert key in payload, key
    assert payload["design"] == "psm" and payload["endpoint"] == "pfs"
    assert payload["status"] == "converged"
    low, high = payload["n_ci"]
    assert low <= payload["n"] <= high
    # Matching keeps at most the treated (35%) as pairs; events are those of the matched cohort.
    assert 0 < payload["pairs_at_n"] <= 0.36 * payload["n"]
    assert 0 < payload["events"] <= 2 * payload["pairs_at_n"]
    assert payload["both_significant_at_n"] <= min(payload["power_at_n"], payload["other_power_at_n"])
    assert all({"n", "power", "mcse", "replicates"} <= set(row) for row in payload["curve"])
    saved = read_dataset(out / "samplesize.nc")
    assert saved.attrs["design"] == "psm" and int(saved.solution) == payload["n"]
    assert saved.point_replicates.sum() == payload["replicates"]
    assert (out / "samplesize.csv").read_text().startswith("n,")
    # The same command again replays the finished search (same answer, nothing recomputed).
    again = invoke("samplesize", liu_fast, "--endpoint", "pfs", "--target-power", "0.8",
                   "--design", "psm", *SMALL, "--out", out)
    assert again.exit_code == 0 and again.output.splitlines()[1] == result.output.splitlines()[1]


def test_a_target_beyond_max_n_is_said_so_without_a_root(liu_fast, tmp_path):
    json_path = tmp_path / "answer.json"
    result = invoke("samplesize", liu_fast, "--endpoint", "pfs", "--target-power", "0.8",
                    "--design", "psm", "--max-n", "24", *SMALL, "--out", tmp_path / "s",
                    "--json", json_path)
    assert result.exit_code == 0, result.output
    assert "no answer: power stays below 0.8 up to the bound 24" in result.output
    assert "best power reached" in result.output
    payload = json.loads(json_path.read_text())
    assert payload["status"] == "unreachable" and payload["n"] is None and payload["n_ci"] is None
    assert payload["best_power"] < 0.8


@pytest.mark.parametrize("options, fragment", [
    (["--target-power", "0.03"], "--target-power 0.03: must lie strictly between --alpha 0.05"),
    (["--target-power", "1"], "--target-power 1: must lie strictly between"),
    (["--target-power", "0.8", "--alpha", "0.7"], "--alpha 0.7: must lie strictly between 0 and 0.5"),
    (["--target-power", "0.8", "--max-n", "5"], "--max-n 5: must exceed"),
    (["--target-power", "0.8", "--design", "psm", "--allocation", "0.5"], "--allocation: only for --design rct"),
    (["--target-power", "0.8", "--allocation", "1.5"], "--allocation 1.5: must lie strictly between 0 and 1"),
    (["--target-power", "0.8", "--tolerance", "0.7"], "--tolerance 0.7: must lie strictly between 0 and 0.5"),
    (["--target-power", "0.8", "--method", "spss"], "--method 'spss': not a method of scenario"),
    (["--target-power", "0.8", "--n", "200"], "--n: only with --solve follow_up"),
    (["--target-power", "0.8", "--bounds", "1", "2"], "--bounds: only with --solve follow_up"),
    (["--target-power", "0.8", "--solve", "follow_up", "--max-n", "300"], "--max-n: only with --solve n"),
    (["--target-power", "0.8", "--solve", "follow_up", "--bounds", "5", "2"], "--bounds 5 2: need 0 < LOW < HIGH"),
    (["--target-power", "0.8", "--solve", "accrual_rate", "--n", "200", "--bounds", "1", "50"],
     "--bounds 1 50: accrual rate 1 patients/month"),
    (["--target-power", "0.8", "--budget", "10"], "--budget 10: must cover the first round"),
])
def test_impossible_requests_are_refused_in_one_line(options, fragment, tmp_path):
    out = tmp_path / "never"
    result = invoke("samplesize", LIU2021, "--endpoint", "pfs", *options, "--out", out)
    assert_one_line_error(result, fragment)
    assert not out.exists()


def test_another_search_in_the_folder_and_an_existing_json_are_refused(tmp_path):
    existing = tmp_path / "answer.json"
    existing.write_text("{}")
    assert_one_line_error(invoke("samplesize", LIU2021, "--endpoint", "pfs", "--target-power", "0.8",
                                 "--json", existing, "--out", tmp_path / "s"), "--json")
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    assert_one_line_error(invoke("samplesize", LIU2021, "--endpoint", "pfs", "--target-power", "0.8",
                                 "--design", "psm", *SMALL, "--out", folder), "is not a psmsim sample-size search")
    assert (folder / "notes.txt").read_text() == "mine"


def test_a_named_method_of_the_scenario_is_accepted():
    """`--method` takes any method the scenario defines ([analysis.methods.NAME])."""
    from sim.run.samplesize_setup import SampleSizeRequest, _check
    from sim.scenario import load_scenario

    scenario = load_scenario(ROOT / "scenarios" / "selection_example.toml")
    named = [name for name in scenario.analysis.method_names if name not in ("paper", "recommended")]
    assert named, "selection_example.toml ships named methods"
    _check(SampleSizeRequest(method=named[0], design="psm"), scenario)
    result = invoke("samplesize", ROOT / "scenarios" / "selection_example.toml", "--endpoint", "pfs",
                    "--target-power", "0.8", "--method", "nonexistent")
    assert_one_line_error(result, f"allowed: paper, recommended, {named[0]}")


def test_plot_and_report_of_a_search_folder(liu_fast, tmp_path):
    """`psmsim plot DIR --kind power` and `psmsim report DIR` on a finished search: the figure
    draws the stored points and the answer, the report names the answer and the formulas."""
    import matplotlib

    matplotlib.use("Agg")
    from analysis.plots.power import plot_samplesize_curve

    out = tmp_path / "search"
    assert invoke("samplesize", liu_fast, "--endpoint", "pfs", "--target-power", "0.8", "--design", "rct",
                  *SMALL, "--out", out).exit_code == 0
    saved = read_dataset(out / "samplesize.nc")
    ax = plot_samplesize_curve(saved)
    points = [c for c in ax.containers if hasattr(c, "lines")][0]
    x, y = points.lines[0].get_data()
    assert list(x) == sorted(saved.point.values.astype(float).tolist())
    assert list(y) == saved.point_power.sortby("point").values.tolist()
    solution = [line for line in ax.lines if line.get_gid() == "solution"][0]
    assert solution.get_xdata()[0] == float(saved.solution)
    assert any(line.get_gid() == "schoenfeld-n" for line in ax.lines)
    figure = tmp_path / "power.png"
    assert invoke("plot", out, "--kind", "power", "--out", figure).exit_code == 0 and figure.stat().st_size > 0
    assert_one_line_error(invoke("plot", out, "--kind", "love"), "its figure is --kind power")
    assert invoke("report", out).exit_code == 0
    html = (out / "report.html").read_text()
    assert f"{int(saved.solution):,}" in html and "Schoenfeld" in html and "data:image/png;base64," in html
    assert (out / "report_figures").is_dir() and any((out / "report_figures").glob("power-rct-pfs.png"))


def test_a_search_holds_the_folder_lock_and_is_refused_on_a_locked_folder(liu_fast, tmp_path, monkeypatch):
    """Like `psmsim run`: a folder another process writes is refused (one line, its PID, nothing
    written); while the search runs it holds run.lock, so a second writer and report/plot are
    refused; a lock file left alone (a search killed before its identity) is not foreign."""
    import sim.run.samplesize as search

    out = tmp_path / "search"
    args = ("samplesize", liu_fast, "--endpoint", "pfs", "--target-power", "0.8", "--design", "rct", *SMALL,
            "--out", out)
    with FolderLock.acquire(out):
        assert_one_line_error(invoke(*args), f"--out {out}: another psmsim run (PID {os.getpid()}) is writing "
                                             "to this folder; wait for it to finish or choose another folder")
    assert sorted(p.name for p in out.iterdir()) == ["run.lock"]
    seen = []
    real_round = search._run_round

    def observed_round(*a, **k):
        if not seen:
            assert (out / "run.lock").read_text().strip() == str(os.getpid())
            assert_one_line_error(invoke("report", out), "is writing this folder")
            assert_one_line_error(invoke("run", LIU2021, "--replicates", 2, "--quiet", "--force", "--out", out),
                                  "another psmsim run")
        seen.append(1)
        return real_round(*a, **k)

    monkeypatch.setattr(search, "_run_round", observed_round)
    assert invoke(*args).exit_code == 0 and seen
    assert invoke("report", out).exit_code == 0  # released when the search ended
