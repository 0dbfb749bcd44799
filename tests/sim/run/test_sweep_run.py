"""`psmsim sweep` end to end on small settings: a factorial sweep's dims, analysis variants on
identical cohorts, resume equals an uninterrupted run (the other three designs run in
test_sensitivity_run.py)."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from sim.cli import main

ROOT = Path(__file__).resolve().parents[3]
LIU2021 = ROOT / "scenarios" / "liu2021.toml"
SWEEPS = ROOT / "tests" / "data" / "sweeps"


def sweep(out, name, *extra):
    result = CliRunner().invoke(main, ["sweep", str(LIU2021), str(SWEEPS / f"{name}.toml"),
                                       "--jobs", "1", "--quiet", "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    return result


def load(out):
    return xr.load_dataset(out / "replicates.nc", engine="h5netcdf")


def strip_time(ds):
    ds = ds.copy()
    ds.attrs.pop("created_at", None)
    return ds


@pytest.fixture(scope="module")
def factorial(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "factorial"
    result = sweep(out, "small_factorial")
    return out, result.output


def test_factorial_sweep_has_one_dim_per_factor(factorial):
    out, output = factorial
    ds = load(out)
    assert ds.log_hr.dims[:2] == ("hr", "caliper")
    assert ds.hr.values.tolist() == [0.5, 1.0] and ds.caliper.values.tolist() == [0.02, 0.1]
    assert ds.sizes["replicate"] == 8 and ds.method.values.tolist() == ["paper", "recommended"]
    # liu2021's early PFS hazard (calibrated per arm to the PD rates) is not proportional given
    # the covariates: the conditional truth is the Cox(T ~ Z + η) limit, lower at HR 0.5
    conditional = ds.true_log_hr_conditional.sel(endpoint="pfs", caliper=0.1)
    assert float(conditional.sel(hr=0.5)) < float(conditional.sel(hr=1.0)) - 0.3
    xr.testing.assert_equal(ds.true_log_hr.sel(estimand="conditional", drop=True), ds.true_log_hr_conditional)
    summary = xr.load_dataset(out / "summary.nc", engine="h5netcdf")
    assert summary.power_logrank.dims[:2] == ("hr", "caliper")
    assert float(abs(summary.bias_difference.sel({"method": "paper"})).max()) == 0.0
    assert summary.bias_difference_mcse.dims == summary.power_logrank.dims
    assert "factor hr" in output and "factor caliper" in output and "paper power" in output
    assert ds.attrs["sweep_design"] == "factorial"


def test_analysis_variants_analyse_identical_cohorts(factorial):
    ds = load(factorial[0])
    paper = ds.sel({"method": "paper"})
    # only the paper preset's caliper differs: its full-cohort analysis and the recommended
    # method's results are identical, the matched paper cohorts are not
    full = paper.log_hr.sel(cohort="full")
    xr.testing.assert_identical(full.sel(caliper=0.02, drop=True), full.sel(caliper=0.1, drop=True))
    recommended = ds.sel({"method": "recommended"}).log_hr
    xr.testing.assert_identical(recommended.sel(caliper=0.02, drop=True), recommended.sel(caliper=0.1, drop=True))
    assert not paper.n_pairs.sel(caliper=0.02).equals(paper.n_pairs.sel(caliper=0.1))
    # common random numbers: the covariates (hence full-cohort SMDs) are the same at both HRs
    smd = ds.smd.sel({"cohort": "full", "method": "paper", "caliper": 0.1})
    xr.testing.assert_identical(smd.sel(hr=0.5, drop=True), smd.sel(hr=1.0, drop=True))
    assert not ds.log_hr.sel(hr=0.5).equals(ds.log_hr.sel(hr=1.0))


def test_sweep_killed_and_resumed_equals_an_uninterrupted_one(factorial, tmp_path):
    reference, _ = factorial
    killed = tmp_path / "killed"
    shutil.copytree(reference, killed)
    (killed / "replicates.nc").unlink()
    blocks = sorted((killed / "blocks").glob("*.npz"))
    for block in blocks[::2]:  # half the blocks never finished
        block.unlink()
        block.with_suffix(".sha256").unlink()
    sweep(killed, "small_factorial")
    xr.testing.assert_identical(strip_time(load(killed)), strip_time(load(reference)))


def test_a_bad_sweep_names_the_field(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[sweep]\nname = "x"\ndesign = "factorial"\n[factors.hr]\npath = "a.b"\n')
    result = CliRunner().invoke(main, ["sweep", str(LIU2021), str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: factors.hr: give exactly one of values, scale (multipliers) or range"]
