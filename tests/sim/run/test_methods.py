"""Named analysis methods ([analysis.methods.NAME]) on the runner: they join the method dim,
analyse the very cohorts the presets analyse (adding methods changes no generated data and no
preset's result), equal the same options written as the preset's overrides, get paired
differences against their preset, and can be swept as analysis-only factors."""

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from sim.calibrate.keys import calibration_key, truth_key
from sim.cli import main
from sim.run.orchestrate import run_scenario
from sim.scenario import parse_scenario

ROOT = Path(__file__).resolve().parents[3]
SELECTION = ROOT / "scenarios" / "selection_example.toml"
SWEEPS = ROOT / "tests" / "data" / "sweeps"
PRESETS = ["paper", "recommended"]

#: The shipped example without its method tables, at small calibration and truth sizes.
_TEXT = SELECTION.read_text()
BASE = (_TEXT[:_TEXT.index("# Named methods")] + _TEXT[_TEXT.index("[simulation]"):]).replace(
    "block_size = 100", "block_size = 100\ncalibration_patients = 20000\ntruth_patients = 20000")
METHODS = '''
[analysis.methods.no_lab]
preset = "recommended"
ps_covariates = ["age", "male", "ecog", "macrovascular_invasion", "tumour_size"]

[analysis.methods.one_to_two]
preset = "recommended"
ratio = 2

[analysis.methods.wide]
preset = "paper"
caliper = 0.1
'''


def _run(text, out):
    scenario = parse_scenario(text)
    return scenario, run_scenario(scenario, replicates=12, block_size=6, jobs=1, out=out, quiet=True)


def _data(dataset):
    """The arrays of a run, without its provenance (scenario text, time) and covariate dim."""
    dataset = dataset.drop_vars("covariate", errors="ignore")
    dataset.attrs = {}
    return dataset


def _results(outcome, method):
    return _data(outcome.replicates.sel({"method": method}, drop=True))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("methods")
    return {name: _run(text, folder / name) for name, text in {
        "presets": BASE,
        "methods": BASE + METHODS,
        "as_overrides": BASE + "\n[analysis.recommended]\nratio = 2\n\n[analysis.paper]\ncaliper = 0.1\n",
    }.items()}


def test_methods_join_the_method_dim_after_the_presets(runs):
    scenario, outcome = runs["methods"]
    assert scenario.analysis.method_names == ("paper", "recommended", "no_lab", "one_to_two", "wide")
    assert outcome.replicates.method.values.tolist() == list(scenario.analysis.method_names)
    assert outcome.summary.paired_reference.values.tolist() == [
        "paper", "paper", "recommended", "recommended", "paper"]


def test_adding_methods_changes_no_generated_data_and_no_preset_result(runs):
    (plain, without), (named, with_methods) = runs["presets"], runs["methods"]
    assert calibration_key(plain) == calibration_key(named) and truth_key(plain) == truth_key(named)
    presets = [v for v in without.replicates.data_vars]
    xr.testing.assert_identical(_data(with_methods.replicates[presets].sel({"method": PRESETS})),
                                _data(without.replicates[presets]))
    # the full cohort depends on the data and on options no method here changes
    for method, preset in (("no_lab", "recommended"), ("one_to_two", "recommended"), ("wide", "paper")):
        full = with_methods.replicates.sel({"method": [method, preset], "cohort": "full"})
        np.testing.assert_array_equal(full.log_hr.values[:, :, 0], full.log_hr.values[:, :, 1])
    # a method's own options do change its matched analysis
    matched = with_methods.replicates.sel(cohort="matched")
    assert not np.array_equal(matched.n_pairs.sel({"method": "wide"}), matched.n_pairs.sel({"method": "paper"}))
    assert np.isnan(with_methods.replicates.smd.sel({"method": "no_lab", "covariate": "ast"})).all()


def test_a_method_equals_its_options_written_as_preset_overrides(runs):
    _, with_methods = runs["methods"]
    _, as_overrides = runs["as_overrides"]
    # SPSS-style random matching (paper) too: a method shares its preset's random stream
    for method, preset in (("one_to_two", "recommended"), ("wide", "paper")):
        xr.testing.assert_identical(_results(with_methods, method), _results(as_overrides, preset))


def test_summary_and_report_give_paired_differences(runs):
    _, outcome = runs["methods"]
    ds, summary = outcome.replicates, outcome.summary
    difference = (ds.log_hr.sel({"method": "no_lab"}) - ds.log_hr.sel({"method": "recommended"})).sel(
        condition=0, cohort="matched", endpoint="pfs").values
    difference = difference[np.isfinite(difference)]
    cell = summary.sel({"condition": 0, "method": "no_lab", "cohort": "matched", "endpoint": "pfs"})
    assert float(cell.bias_difference) == pytest.approx(difference.mean(), rel=1e-12)
    assert float(cell.bias_difference_mcse) == pytest.approx(difference.std(ddof=1) / np.sqrt(difference.size))
    assert float(abs(summary.bias_difference.sel({"method": "paper"})).max()) == 0.0
    assert "no_lab - recommended" in outcome.report and "wide - paper" in outcome.report
    assert "paper - paper" not in outcome.report


def test_a_sweep_factor_on_a_method_option_is_analysis_only(tmp_path):
    scenario = tmp_path / "scenario.toml"
    scenario.write_text(BASE + METHODS)
    out = tmp_path / "sweep"
    result = CliRunner().invoke(main, ["sweep", str(scenario), str(SWEEPS / "small_method_factor.toml"),
                                       "--jobs", "1", "--quiet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    ds = xr.load_dataset(out / "replicates.nc", engine="h5netcdf")
    assert ds.method.values.tolist() == ["paper", "recommended", "no_lab", "one_to_two", "wide"]
    assert ds.ratio.values.tolist() == [2, 3]
    # one set of cohorts: every method but one_to_two is identical at both ratios
    for method in ("paper", "recommended", "no_lab", "wide"):
        cell = ds.log_hr.sel({"method": method})
        xr.testing.assert_identical(cell.sel(ratio=2, drop=True), cell.sel(ratio=3, drop=True))
    pairs = ds.n_pairs.sel({"method": "one_to_two"})
    assert not pairs.sel(ratio=2).equals(pairs.sel(ratio=3))
    summary = xr.load_dataset(out / "summary.nc", engine="h5netcdf")
    assert summary.paired_reference.values.tolist() == ["paper", "paper", "recommended", "recommended", "paper"]
