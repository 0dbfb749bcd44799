"""Scenarios whose numbers are each legal but can only fail are refused with the field and
the reason; legal but hopeless ones are warned about before anything runs (issue 8, items 4,
7 and 8: each case validated and then failed or crashed after all the computing)."""

from __future__ import annotations

import math

import pytest
from click.testing import CliRunner

import sim.run.orchestrate
from sim.cli import main
from sim.errors import PsmsimError, ScenarioError
from sim.scenario import parse_scenario
from sim.scenario.feasibility import (
    DEFAULT_BLOCK_SIZE,
    MAX_BLOCK_CELLS,
    cohort_patients,
    event_probability,
    infeasibilities,
    run_block_size,
    scenario_warnings,
    treated_share,
)


def _mutated(path, *replacements: tuple[str, str]) -> str:
    text = path.read_text(encoding="utf-8")
    for old, new in replacements:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def _refusal(text: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text)
    return caught.value


REFUSED = [
    # (id, base, replacements, field, words of the reason)
    ("hazard-ratio-1e300", "selection", [("hazard_ratio = 0.7", "hazard_ratio = 1e300")],
     "outcome.treatment.hazard_ratio", "(allowed: [0.001, 1000]; beyond 1000-fold"),
    ("hazard-ratio-1e-300", "selection", [("hazard_ratio = 0.7", "hazard_ratio = 1e-300")],
     "outcome.treatment.hazard_ratio", "(allowed: [0.001, 1000]"),
    ("dropout-1e6", "liu2021", [("dropout_rate = 0.0", "dropout_rate = 1e6")],
     "censoring.dropout_rate", "(allowed: [0, 10] per month; above 10 per month half the "
                               "patients are lost within 2 days"),
    ("dropout-10", "liu2021", [("dropout_rate = 0.0", "dropout_rate = 10.0")],
     "censoring.dropout_rate", "PFS events expected per cohort of 100"),
    ("pfs-median-100x-follow-up", "liu2021", [
        ("control_pfs_median = 6.1", "control_pfs_median = 2700.0"),
        ("control_os_median = 9.6", "control_os_median = 5000.0"),
        ("pfs_median = 10.2", "pfs_median = 4000.0"), ("os_median = 14.1", "os_median = 8000.0")],
     "outcome.control_pfs_median", "no replicate could be analysed"),
    ("covariate-log-hr-50-binary", "liu2021", [("afp_400 = 0.3", "afp_400 = 50.0")],
     "outcome.covariate_log_hr.afp_400", "differ e^50-fold between 0 and 1"),
    ("covariate-log-hr-50-per-year", "liu2021", [("afp_400 = 0.3", "afp_400 = 0.3\nage = 50.0")],
     "outcome.covariate_log_hr.age", "(allowed: |log-HR| <= 0.373 per unit here)"),
    ("categorical-log-odds-spread", "selection", [("ecog = [0.0, -0.4, -0.8]",
                                                   "ecog = [0.0, -0.4, -30.0]")],
     "selection.log_odds.ecog", "between its levels"),
    ("unmeasured-log-hr-1e300", "selection", [("[analysis]", "[unmeasured]\nprevalence = { population = 0.3 }\n"
                                                             "log_hr = 1e300\n\n[analysis]")],
     "unmeasured.log_hr", "1e+300 makes the hazards differ e^1e+300-fold between U = 0 and U = 1"),
    ("unmeasured-log-odds-50", "selection", [
        ("[analysis]", "[unmeasured]\nprevalence = { population = 0.3 }\nlog_hr = 0.5\n\n[analysis]"),
        ("intercept = 1.2", "intercept = 1.2\nunmeasured_log_odds = -50.0")],
     "selection.unmeasured_log_odds", "(allowed: |unmeasured_log_odds| <= 20)"),
    ("weibull-shape-1e6", "liu2021", [("shape = 1.1", "shape = 1e6")],
     "outcome.progression.shape", "(allowed: [0.05, 20]; beyond, the hazard is degenerate"),
    ("selection-intercept-50", "selection", [("intercept = 1.2", "intercept = 50.0")],
     "selection.intercept", "about 0 patients of arm 'control' expected per cohort of 100"),
    ("two-patients-per-cohort", "selection", [("patients = 100", "patients = 2")],
     "selection.patients", "2 patients per cohort cannot fit the PS model's 8 parameters"),
    ("replicates-1e12", "liu2021", [("replicates = 2000", "replicates = 1000000000000")],
     "simulation.replicates", "is too large (allowed: an integer 1 to 1000000;"),
    ("truth-patients-1e11", "liu2021", [("truth_patients = 1000000",
                                         "truth_patients = 100000000000")],
     "simulation.truth_patients", "is too large (allowed: an integer 1000 to 100000000;"),
    ("calibration-patients-1e11", "liu2021", [("calibration_patients = 200000",
                                               "calibration_patients = 100000000000")],
     "simulation.calibration_patients", "(allowed: an integer 1000 to 10000000;"),
    ("block-size-1e9", "liu2021", [("block_size = 100", "block_size = 1000000000")],
     "simulation.block_size", "(allowed: an integer 1 to 10000; a block is held in memory"),
    ("seed-2-to-the-64", "liu2021", [("seed = 20210430", "seed = 18446744073709551616")],
     "simulation.seed", "is too large (allowed: an integer 0 to 9223372036854775807; the seed "
                        "must fit a signed 64-bit integer"),
    ("arm-size-1e9", "liu2021", [("size = 65", "size = 1000000000")],
     "arms.sorafenib.size", "(allowed: an integer 1 to 1000000;"),
]


@pytest.mark.parametrize("case", REFUSED, ids=[case[0] for case in REFUSED])
def test_what_can_only_fail_is_refused_naming_the_field_and_why(
        case, liu2021_path, selection_example_path):
    _, base, replacements, field, reason = case
    path = liu2021_path if base == "liu2021" else selection_example_path
    error = _refusal(_mutated(path, *replacements))
    matching = [problem for problem in error.problems if problem.field == field]
    assert matching, error.lines()
    assert reason in matching[0].message, matching[0].message


def test_two_patients_in_table_mode_are_refused(liu2021_path):
    documentation = (liu2021_path.parents[1] / "docs" / "scenario_format.md").read_text(
        encoding="utf-8")
    example = documentation.split("## Minimal example (table mode)")[1]
    example = example.split("```toml\n")[1].split("```")[0]
    assert parse_scenario(example).analysis.ps_covariates == ("age",)
    error = _refusal(example.replace("size = 20", "size = 1").replace("size = 30", "size = 1"))
    assert error.field == "arms"
    assert error.message.startswith("2 patients per cohort cannot fit the PS model's 2 "
                                    "parameters")


def test_the_largest_seed_is_accepted(liu2021_path):
    scenario = parse_scenario(_mutated(liu2021_path, ("seed = 20210430",
                                                      f"seed = {2**63 - 1}")))
    assert scenario.simulation.seed == 2**63 - 1


def test_shipped_scenarios_have_no_warnings(liu2021, selection_example):
    for scenario in (liu2021, selection_example):
        assert infeasibilities(scenario) == [] and scenario_warnings(scenario) == []


@pytest.mark.parametrize("replacements, field, words", [
    ([("dropout_rate = 0.0", "dropout_rate = 1.0")], "censoring.dropout_rate",
     "about 8.8 PFS events expected per cohort of 100"),
    ([("control_pfs_median = 6.1", "control_pfs_median = 200.0"),
      ("control_os_median = 9.6", "control_os_median = 500.0"),
      ("pfs_median = 10.2", "pfs_median = 300.0"), ("os_median = 14.1", "os_median = 800.0")],
     "outcome.control_pfs_median", "too few events to estimate a hazard ratio"),
], ids=["heavy-dropout", "medians-far-beyond-follow-up"])
def test_hopeless_but_legal_settings_are_warned_about(replacements, field, words,
                                                      liu2021_path):
    scenario = parse_scenario(_mutated(liu2021_path, *replacements))
    (warning,) = scenario_warnings(scenario)
    assert warning.field == field and words in warning.message


def test_a_block_too_large_for_memory_is_warned_about(selection_example_path):
    scenario = parse_scenario(_mutated(selection_example_path,
                                       ("block_size = 100", "block_size = 10000"),
                                       ("patients = 100", "patients = 1000")))
    (warning,) = scenario_warnings(scenario)
    assert warning.field == "simulation.block_size"
    assert "10,000,000 values per covariate" in warning.message
    assert "(block_size <= 1000 here) is safe" in warning.message


def test_few_patients_of_an_arm_is_warned_about(selection_example_path):
    scenario = parse_scenario(_mutated(selection_example_path,
                                       ("intercept = 1.2", "intercept = 5.5")))
    (warning,) = scenario_warnings(scenario)
    assert warning.field == "selection.intercept"
    assert "patients of arm 'control' expected per cohort of 100" in warning.message


def test_treated_share_is_the_mean_true_propensity(selection_example):
    # Reduced form of a Monte Carlo check: the fixed 20,000-patient sample estimates the
    # treated share with SE sqrt(p(1-p)/20000) < 0.0035; the randomised scenarios have 0.5.
    share = treated_share(selection_example)
    assert 0.25 < share < 0.45


def test_event_probability_against_direct_integration():
    # Exponential PFS (median 6.1), entry U[0, 24], cut-off 27, dropout 0.05: the probability
    # by numerical integration over the follow-up S ~ U[3, 27].
    from scipy import integrate

    rate, dropout = math.log(2) / 6.1, 0.05

    def observed(follow_up: float) -> float:
        return rate / (rate + dropout) * (1 - math.exp(-(rate + dropout) * follow_up))

    direct = integrate.quad(observed, 3.0, 27.0)[0] / 24.0
    assert event_probability(6.1, accrual_months=24.0, cutoff_month=27.0,
                             dropout_rate=dropout) == pytest.approx(direct, rel=1e-12)
    assert event_probability(6.1, accrual_months=0.0, cutoff_month=27.0,
                             dropout_rate=dropout) == pytest.approx(observed(27.0), rel=1e-12)


def test_validate_prints_warnings_before_the_summary(liu2021_path, tmp_path):
    path = tmp_path / "heavy_dropout.toml"
    path.write_text(_mutated(liu2021_path, ("dropout_rate = 0.0", "dropout_rate = 1.0")),
                    encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("warning: censoring.dropout_rate: about 8.8 PFS events")
    assert len(result.stderr.splitlines()) == 1
    assert result.stdout.startswith("liu2021: valid")


def test_run_prints_warnings_before_computing(liu2021_path, tmp_path, monkeypatch):
    path = tmp_path / "heavy_dropout.toml"
    path.write_text(_mutated(liu2021_path, ("dropout_rate = 0.0", "dropout_rate = 1.0")),
                    encoding="utf-8")

    def stop(*args, **kwargs):
        raise PsmsimError("stopped before computing")

    monkeypatch.setattr(sim.run.orchestrate, "run_scenario", stop)
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        result.stderr.splitlines()[0], "error: stopped before computing"]
    assert result.stderr.startswith("warning: censoring.dropout_rate: about 8.8 PFS events")


def test_validate_refuses_an_infeasible_file_with_exit_2(liu2021_path, tmp_path):
    path = tmp_path / "huge_hr.toml"
    path.write_text(_mutated(liu2021_path, ("afp_400 = 0.3", "afp_400 = 50.0")),
                    encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("error: outcome.covariate_log_hr.afp_400: 50 makes the "
                                    "hazards differ e^50-fold")


def test_the_block_size_adapts_to_the_cohort_unless_set(selection_example_path):
    """Without ``simulation.block_size``: 100 replicates up to 10,000 patients, then as many
    as keep a block within MAX_BLOCK_CELLS (replicate, patient) values; a size the scenario,
    the command line or a search sets is used as it is."""
    text = _mutated(selection_example_path, ("block_size = 100\n", ""))
    scenario = parse_scenario(text)
    assert scenario.simulation.block_size is None
    assert run_block_size(scenario) == DEFAULT_BLOCK_SIZE == 100  # 100 patients
    for patients, expected in ((10_000, 100), (10_001, 99), (20_000, 50), (30_000, 33),
                               (1_000_000, 1), (5_000_000, 1)):
        assert run_block_size(scenario, patients=patients) == expected
        assert expected * patients <= MAX_BLOCK_CELLS or expected == 1
    large = parse_scenario(text.replace("patients = 100\n", "patients = 25000\n"))
    assert cohort_patients(large) == 25_000 and run_block_size(large) == 40
    assert not scenario_warnings(large)  # adapted: no memory warning
    assert run_block_size(large, 7) == 7  # --block-size
    explicit = parse_scenario(_mutated(selection_example_path, ("patients = 100", "patients = 25000")))
    assert run_block_size(explicit) == 100  # the scenario's own setting, warned about
    assert [w.field for w in scenario_warnings(explicit)] == ["simulation.block_size"]


def test_a_run_records_the_adapted_block_size(selection_example_path, tmp_path, monkeypatch):
    """``psmsim run`` of a scenario without a block size uses (and records in run.json) the
    size chosen from its cohort: 40 for 25,000 patients. The blocks are not computed here:
    the run stops where the first block would start."""
    import json
    from types import SimpleNamespace

    text = _mutated(selection_example_path, ("block_size = 100\n", ""),
                    ("patients = 100\n", "patients = 25000\n"))
    path = tmp_path / "large.toml"
    path.write_text(text)
    seen = {}

    def stop(conditions, calibrations, config, folder, **options):
        seen["block_size"] = config.block_size
        raise PsmsimError("stopped before computing")

    monkeypatch.setattr(sim.run.orchestrate, "compute_blocks", stop)
    monkeypatch.setattr(sim.run.orchestrate, "calibrate_cached", lambda scenario: None)
    monkeypatch.setattr(sim.run.orchestrate, "true_estimands_cached",
                        lambda scenario, calibration: SimpleNamespace(as_variables=dict))
    result = CliRunner().invoke(main, ["run", str(path), "--replicates", "100", "--out", str(tmp_path / "out")])
    assert "stopped before computing" in result.output, result.output
    assert seen == {"block_size": 40}
    assert json.loads((tmp_path / "out" / "run.json").read_text())["block_size"] == 40
