"""The CLI end to end: cohort → analyse (tables and JSON), run → summarise, describe, and one
clear error line (exit code 2, no traceback) for bad input."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from sim.cli import main
from tests.sim.cli.helpers import assert_one_line_error, invoke

ROOT = Path(__file__).resolve().parents[3]
LIU2021 = ROOT / "scenarios" / "liu2021.toml"


@pytest.fixture(scope="module")
def cohort_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("cohort") / "cohort.csv"
    result = invoke("cohort", LIU2021, "--seed", 11, "--out", path)
    assert result.exit_code == 0, result.output
    return path


def test_cohort_csv_columns(cohort_csv):
    header = cohort_csv.read_text().splitlines()[0].split(",")
    assert header[:3] == ["patient_id", "treated", "age"]
    for column in ("entry_month", "pfs_months", "pfs_event", "os_months", "os_event", "best_response",
                   "ae_thrombocytopenia", "prior_tace"):
        assert column in header
    assert len(cohort_csv.read_text().splitlines()) == 101


def test_cohort_is_reproducible_and_never_overwritten(cohort_csv, tmp_path):
    again = tmp_path / "again.csv"
    assert invoke("cohort", LIU2021, "--seed", 11, "--out", again).exit_code == 0
    assert again.read_text() == cohort_csv.read_text()
    other = tmp_path / "other.csv"
    assert invoke("cohort", LIU2021, "--seed", 12, "--out", other).exit_code == 0
    assert other.read_text() != cohort_csv.read_text()
    before = again.read_text()
    assert_one_line_error(invoke("cohort", LIU2021, "--seed", 12, "--out", again), "file exists")
    assert again.read_text() == before


@pytest.mark.parametrize("preset", ["paper", "recommended"])
def test_analyse_prints_tables_and_writes_json(cohort_csv, tmp_path, preset):
    out = tmp_path / "result.json"
    result = invoke("analyse", cohort_csv, "--scenario", LIU2021, "--plan", preset, "--json", out)
    assert result.exit_code == 0, result.output
    for title in ("Table 1.", "Table 2.", "Table 3.", "Survival"):
        assert title in result.output
    data = json.loads(out.read_text())
    assert data["propensity"]["covariates"][:2] == ["age", "male"]
    assert len(data["propensity"]["coef"]) == 16  # intercept + 15 PS columns
    assert data["matching"]["method"] == ("spss_fuzzy_v1" if preset == "paper" else "matchit_nn")
    pairs = data["matching"]["pairs"]
    assert data["matching"]["n_pairs"] == len(pairs)
    treated_ids = [p[0] for p in pairs]
    control_ids = [p[1] for p in pairs]
    assert len(set(control_ids)) == len(control_ids)  # without replacement
    rows = {int(r.split(",")[0]): r.split(",") for r in cohort_csv.read_text().splitlines()[1:]}
    assert all(rows[t][1] == "1" for t in treated_ids) and all(rows[c][1] == "0" for c in control_ids)
    for cohort in ("full", "matched"):
        for endpoint in ("pfs", "os"):
            cell = data["survival"][cohort][endpoint]
            for key in ("hr", "hr_ci", "se_log_hr", "p_cox", "p_logrank", "median_treated",
                        "median_treated_ci", "median_control", "median_control_ci", "events_treated",
                        "events_control"):
                assert key in cell
        assert data["baseline_tests"][cohort]["age"]["test"] == "student_t"
        assert data["baseline_tests"][cohort]["tbil"]["test"] == "mann_whitney"
        assert set(data["balance"][cohort]) >= {"age", "tbil", "prior_tace"}
        assert 0 <= data["response"][cohort]["orr"]["p"] <= 1
    full = data["survival"]["full"]["pfs"]
    column = header_index(cohort_csv, "pfs_event")
    assert full["events_treated"] + full["events_control"] == sum(int(r[column]) for r in rows.values())
    if data["matching"]["caliper"] is not None:
        assert data["matching"]["caliper"] > 0


def header_index(path, name):
    return path.read_text().splitlines()[0].split(",").index(name)


def test_analyse_without_scenario_uses_every_covariate(cohort_csv, tmp_path):
    out = tmp_path / "plain.json"
    result = invoke("analyse", cohort_csv, "--json", out)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert "tbil" in data["propensity"]["covariates"]


BAD_CSV = {
    "missing column": ("patient_id,treated,pfs_months\n1,1,3\n", "missing column(s)"),
    "non-numeric": ("patient_id,treated,pfs_months,pfs_event,os_months,os_event\n1,1,3,1,5,1\n2,0,x,1,5,1\n",
                    "row 2, column pfs_months"),
    "negative time": ("patient_id,treated,pfs_months,pfs_event,os_months,os_event\n1,1,3,1,5,1\n2,0,-2,1,5,1\n",
                      "is negative"),
    "event not 0/1": ("patient_id,treated,pfs_months,pfs_event,os_months,os_event\n1,1,3,1,5,1\n2,0,2,3,5,1\n",
                      "column pfs_event: '3' must be 0 or 1"),
    "duplicate id": ("patient_id,treated,pfs_months,pfs_event,os_months,os_event\n1,1,3,1,5,1\n1,0,2,1,5,1\n",
                     "id 1 is repeated"),
    "single arm": ("patient_id,treated,pfs_months,pfs_event,os_months,os_event\n1,1,3,1,5,1\n2,1,2,1,5,1\n",
                   "both arms are needed"),
}


@pytest.mark.parametrize("case", sorted(BAD_CSV))
def test_analyse_bad_csv_gives_one_line(tmp_path, case):
    text, fragment = BAD_CSV[case]
    path = tmp_path / "bad.csv"
    path.write_text(text)
    json_out = tmp_path / "out.json"
    assert_one_line_error(invoke("analyse", path, "--json", json_out), fragment)
    assert not json_out.exists()


def test_analyse_missing_ps_covariate(tmp_path):
    path = tmp_path / "few.csv"
    path.write_text("patient_id,treated,age,pfs_months,pfs_event,os_months,os_event\n1,1,50,3,1,5,1\n2,0,60,2,1,5,1\n")
    assert_one_line_error(invoke("analyse", path, "--scenario", LIU2021), "missing PS covariate column(s) male")


@pytest.fixture(scope="module")
def iptw_scenario(tmp_path_factory):
    """liu2021 with its recommended method analysed by IPTW for the ATT."""
    text = LIU2021.read_text().replace(
        "[simulation]", '[analysis.recommended]\nestimator = "iptw"\nestimand = "att"\n\n[simulation]', 1)
    path = tmp_path_factory.mktemp("iptw") / "iptw.toml"
    path.write_text(text)
    return path


def test_analyse_with_a_weighting_estimator(cohort_csv, iptw_scenario, tmp_path):
    out = tmp_path / "iptw.json"
    result = invoke("analyse", cohort_csv, "--scenario", iptw_scenario, "--plan", "recommended", "--json", out)
    assert result.exit_code == 0, result.output
    assert "estimator iptw, estimand att" in result.output and "Effective sample size" in result.output
    payload = json.loads(out.read_text())
    assert payload["estimator"]["estimand"] == "att" and "matched" in payload["survival"]
    assert "matched" not in payload["baseline_tests"]


def test_analyse_refuses_an_estimator_the_engine_lacks_in_one_line(cohort_csv, iptw_scenario):
    assert_one_line_error(invoke("analyse", cohort_csv, "--scenario", iptw_scenario, "--plan", "recommended",
                                 "--engine", "reference"), "analysis option estimator")


def test_analyse_a_named_method(cohort_csv, tmp_path):
    """--method NAME runs a method of the scenario's [analysis.methods]: the same tables as the
    preset with its options as [analysis.<preset>] overrides."""
    method = '[analysis.methods.wide]\npreset = "recommended"\ncaliper = 0.5\n\n[simulation]'
    named, override = tmp_path / "named.toml", tmp_path / "override.toml"
    named.write_text(LIU2021.read_text().replace("[simulation]", method, 1))
    override.write_text(LIU2021.read_text().replace(
        "[simulation]", "[analysis.recommended]\ncaliper = 0.5\n\n[simulation]", 1))
    result = invoke("analyse", cohort_csv, "--scenario", named, "--method", "wide")
    assert result.exit_code == 0, result.output
    assert "Plan 'wide'" in result.output
    preset = invoke("analyse", cohort_csv, "--scenario", override, "--plan", "recommended")
    assert result.output.replace("Plan 'wide'", "Plan 'recommended'") == preset.output
    assert invoke("analyse", cohort_csv, "--scenario", named, "--method", "paper").output == invoke(
        "analyse", cohort_csv, "--scenario", named, "--plan", "paper").output
    assert_one_line_error(invoke("analyse", cohort_csv, "--scenario", named, "--method", "wid"),
                          "--method wid: 'wid' is not a method of scenario 'liu2021'; choose one of paper, "
                          "recommended, wide")
    assert_one_line_error(invoke("analyse", cohort_csv, "--method", "wide"), "--method wide: a named method "
                          "needs --scenario")
    assert_one_line_error(invoke("analyse", cohort_csv, "--scenario", named, "--method", "wide", "--plan",
                                 "paper"), "--method and --plan: give one")


def test_scenario_refuses_options_that_do_not_fit(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(LIU2021.read_text().replace(
        "[simulation]", '[analysis.recommended]\nestimator = "overlap"\nstabilize = true\n\n[simulation]', 1))
    assert_one_line_error(invoke("validate", path), "analysis.recommended.stabilize")


def test_bad_cli_input(tmp_path):
    assert_one_line_error(invoke("run", LIU2021, "--jobs", 0, "--out", tmp_path / "r"), "--jobs 0")
    assert_one_line_error(invoke("run", LIU2021, "--scheduler", "tcp://127.0.0.1:1", "--out", tmp_path / "r"),
                          "--scheduler")
    assert_one_line_error(invoke("summarise", tmp_path / "nothing"), "no replicates.nc")
    result = invoke("run", LIU2021, "--replicates", 0)
    assert result.exit_code == 2 and "Traceback" not in result.output


def strip_time(ds):
    ds = ds.copy()
    ds.attrs.pop("created_at")
    return ds


def test_run_and_summarise(tmp_path, liu2021_small_truth_path):
    scenario = liu2021_small_truth_path
    out = tmp_path / "run"
    result = invoke("run", scenario, "--replicates", 24, "--block-size", 8, "--jobs", 1, "--quiet", "--out", out)
    assert result.exit_code == 0, result.output
    assert "power LR" in result.output and "paper's pattern" in result.output
    ds = xr.load_dataset(out / "replicates.nc", engine="h5netcdf")
    assert dict(ds.sizes) == {"condition": 1, "replicate": 24, "method": 2, "cohort": 2, "endpoint": 2,
                              "covariate": 15, "estimand": 4}
    assert ds.analysis_estimand.values.tolist() == [[[0, 0]] * 24]  # both presets match: ATT
    assert ds.attrs["estimand_codes"] == '{"0": "att", "1": "ate", "2": "ato", "3": "conditional"}'
    assert ds.bootstrap_used.dims[-2:] == ("cohort", "endpoint") and int(ds.bootstrap_used.max()) == -1
    # the per-covariate SMDs are over the PS covariates, and max_abs_smd is their largest |SMD|
    assert ds.covariate.values.tolist()[:3] == ["age", "male", "hbv"]
    np.testing.assert_array_equal(np.abs(ds.smd).max("covariate", skipna=True).values, ds.max_abs_smd.values)
    assert ds.attrs["scenario_text"] == scenario.read_text()
    assert (out / "summary.csv").read_text().startswith("condition,")
    # the paired differences of summary.nc are in the CSV too, with the method they compare with
    table = pd.read_csv(out / "summary.csv")
    summary = xr.load_dataset(out / "summary.nc", engine="h5netcdf")
    row = table[(table.measure == "bias_difference") & (table.method == "recommended")
                & (table.cohort == "matched") & (table.endpoint == "pfs")]
    cell = summary.sel({"method": "recommended", "cohort": "matched", "endpoint": "pfs"}).isel(condition=0)
    assert row.paired_reference.item() == str(cell.paired_reference.values) == "paper"
    assert row.estimate.item() == pytest.approx(float(cell.bias_difference), rel=1e-12)
    assert row.mcse.item() == pytest.approx(float(cell.bias_difference_mcse), rel=1e-12)
    again = invoke("summarise", out)
    assert again.exit_code == 0 and "power LR" in again.output
    assert pd.read_csv(out / "summary.csv").equals(table)
    # the same command resumes (nothing to do) and gives the same data
    assert invoke("run", scenario, "--replicates", 24, "--block-size", 8, "--jobs", 1, "--quiet", "--out", out).exit_code == 0
    xr.testing.assert_identical(strip_time(ds), strip_time(xr.load_dataset(out / "replicates.nc", engine="h5netcdf")))
    # another identity in the same folder is refused and nothing is lost
    refused = invoke("run", scenario, "--replicates", 24, "--block-size", 8, "--seed", 5, "--quiet", "--out", out)
    assert_one_line_error(refused, "holds another run")
    assert (out / "replicates.nc").exists()


def test_run_killed_midway_then_resumed_is_identical(tmp_path, liu2021_small_truth_path):
    """Really kill a `psmsim run` subprocess with SIGKILL after a few of its 20 blocks, resume
    it, and compare with an uninterrupted run. (A block of liu2021 takes about 0.1 s, so 16 or
    more are still to do when the poll, every 0.05 s, sees the fourth.)"""
    args = ["run", str(liu2021_small_truth_path), "--replicates", "100", "--block-size", "5", "--jobs", "1", "--quiet"]
    command = [sys.executable, "-c", "from sim.cli import main; main()"]
    killed = tmp_path / "killed"
    process = subprocess.Popen(command + args + ["--out", str(killed)], env=os.environ.copy(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if len(list((killed / "blocks").glob("*.sha256"))) >= 4:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = len(list((killed / "blocks").glob("*.sha256")))
    assert 4 <= finished < 20 and not (killed / "replicates.nc").exists()
    resumed = subprocess.run(command + args + ["--out", str(killed)], env=os.environ.copy(), capture_output=True)
    assert resumed.returncode == 0, resumed.stderr.decode()
    fresh = subprocess.run(command + args + ["--out", str(tmp_path / "fresh"), "--jobs", "2"],
                           env=os.environ.copy(), capture_output=True)
    assert fresh.returncode == 0, fresh.stderr.decode()
    a = xr.load_dataset(killed / "replicates.nc", engine="h5netcdf")
    b = xr.load_dataset(tmp_path / "fresh" / "replicates.nc", engine="h5netcdf")
    xr.testing.assert_identical(strip_time(a), strip_time(b))
