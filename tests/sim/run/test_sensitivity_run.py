"""`psmsim sensitivity` on finished sweeps: indices saved as netCDF + CSV for every design, and
the unmeasured-confounder bias surface, monotone where theory says so."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from click.testing import CliRunner

from analysis.performance.sensitivity import e_values_hr, hazard_ratio_from_medians
from sim.cli import main

ROOT = Path(__file__).resolve().parents[3]
LIU2021 = ROOT / "scenarios" / "liu2021.toml"
SWEEPS = ROOT / "tests" / "data" / "sweeps"


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def unmeasured(small_sweep):
    return small_sweep("unmeasured")


def test_bias_surface_is_monotone_where_theory_says(unmeasured):
    out, _ = unmeasured
    replicates = xr.load_dataset(out / "replicates.nc", engine="h5netcdf")
    surface = xr.load_dataset(out / "bias_surface.nc", engine="h5netcdf")
    for method in ("paper", "recommended"):
        log_hr = replicates.log_hr.sel({"method": method, "cohort": "matched", "endpoint": "pfs"})
        # A harmful U (log-HR 0.7) more common among the treated biases the protective estimate
        # upwards, more so the larger the imbalance (Lin, Psaty & Kronmal 1998): paired (common
        # random numbers) differences between successive prevalence differences are positive.
        harmful = log_hr.sel(u_log_hr=0.7)
        for low, high in ((0.0, 0.2), (0.2, 0.4)):
            difference = (harmful.sel(prevalence_difference=high) - harmful.sel(prevalence_difference=low)).values
            difference = difference[np.isfinite(difference)]
            assert difference.mean() > 2 * difference.std(ddof=1) / math.sqrt(difference.size), (method, low)
        # An inert U (log-HR 0) changes nothing whatever its imbalance: the same cohorts' outcomes.
        inert = surface.mean_log_hr.sel({"method": method, "endpoint": "pfs", "u_log_hr": 0.0})
        assert np.ptp(inert.values) == pytest.approx(0.0, abs=1e-12)
        # The larger U's effect at a given imbalance, the larger the bias.
        at_04 = surface.bias.sel({"method": method, "endpoint": "pfs", "prevalence_difference": 0.4})
        assert float(at_04.sel(u_log_hr=0.7)) > float(at_04.sel(u_log_hr=0.0))
    assert set(surface.contour.values) == {"estimate_null", "ci_null", "power"}
    assert surface.crossing.dims == ("method", "endpoint", "contour", "u_log_hr")
    assert "lpk_mean_log_hr" in surface and "benchmark_log_hr" in surface


def test_report_prints_the_e_value_and_benchmarks(unmeasured):
    _, output = unmeasured
    implied = hazard_ratio_from_medians(9.5, 4.7, 0.043)
    evalues = e_values_hr(implied.hazard_ratio, implied.ci_lower, implied.ci_upper)
    assert f"{evalues.point:.2f} for the estimate, {evalues.ci:.2f} for the CI limit" in output
    assert "macrovascular_invasion" in output and "HR reaches 1" in output
    assert "prevalence_difference:u_log_hr" in output  # the eta² table of the factorial design


@pytest.mark.parametrize("design, points, columns", [
    ("one_at_a_time", 5, {"swing", "swing_mcse", "estimate_low"}),
    ("morris", 6, {"mu_star", "mu_star_conf", "sigma_noise_share"}),
    ("sobol", 8, {"s1", "st", "st_corrected"}),
])
def test_other_designs_run_on_condition_and_save_their_indices(design, points, columns, small_sweep):
    out, output = small_sweep(design)
    replicates = xr.load_dataset(out / "replicates.nc", engine="h5netcdf")
    assert replicates.sizes["condition"] == points and replicates.log_hr.dims[0] == "condition"
    assert {"hr", "dropout"} <= set(replicates.coords)
    if design == "one_at_a_time":
        assert replicates.varied.values.tolist() == ["", "hr", "hr", "dropout", "ratio"]
    else:
        assert replicates.attrs["sweep_sample"].startswith("[[")
    frame = pd.read_csv(out / "sensitivity.csv")
    assert columns <= set(frame.columns) and set(frame.factor) >= {"hr", "dropout"}
    dataset = xr.load_dataset(out / "sensitivity.nc", engine="h5netcdf")
    assert dataset.attrs["sweep_design"] == design
    assert "power_logrank" in output


def test_plain_run_folders_are_refused(tmp_path):
    result = invoke("sensitivity", tmp_path / "none")
    assert result.exit_code == 2 and "no summary.nc" in result.output
