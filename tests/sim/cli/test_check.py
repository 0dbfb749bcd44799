"""`psmsim check` end to end on a few replicates, and the published numbers' simulated columns
against the plan's own arrays."""

from pathlib import Path

import numpy as np
from click.testing import CliRunner

from analysis.plan.analyse import analyse_cohorts
from sim.calibrate.cache import calibrate_cached
from sim.cli import main
from sim.generate.cohorts import generate_cohorts
from sim.run.check_rows import published_numbers, simulated_values
from sim.run.check_run import run_check
from sim.scenario import load_scenario
from sim.scenario.plans import scenario_plan

ROOT = Path(__file__).resolve().parents[3]
LIU2021 = ROOT / "scenarios" / "liu2021.toml"
SELECTION = ROOT / "scenarios" / "selection_example.toml"


def test_check_prints_every_published_number_before_and_after_matching():
    result = CliRunner().invoke(main, ["check", str(LIU2021), "--replicates", "8", "--block-size", "4"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = result.output
    for heading in ("Table 1 (baseline), before matching", "Table 1 (baseline), after matching",
                    "Table 2 (best response), after matching", "Table 3 (adverse events), after matching",
                    "Survival (Kaplan-Meier), after matching", "Matched pairs, after matching"):
        assert heading in out
    pairs = next(line for line in out.splitlines() if line.strip().startswith("matched pairs (1:1)"))
    tokens = pairs.split()
    n_used = tokens[-2] if tokens[-1] in ("<<", ">>") else tokens[-1]
    assert " 34 " in pairs and n_used == "8"  # published 34; 8 replicates with a value
    scenario = load_scenario(LIU2021)
    assert f"of {len(published_numbers(scenario))} published numbers fall outside" in out


def test_check_of_an_unknown_method_is_one_line_error():
    result = CliRunner().invoke(main, ["check", str(LIU2021), "--replicates", "2", "--method", "papr"],
                                catch_exceptions=False)
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "'papr' is not a method of scenario 'liu2021'" in lines[0]


def test_check_without_numbers_is_one_line_error():
    result = CliRunner().invoke(main, ["check", str(SELECTION), "--replicates", "2"], catch_exceptions=False)
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "nothing to check" in lines[0]


def test_simulated_columns_are_the_plans_numbers():
    scenario = load_scenario(LIU2021)
    numbers = published_numbers(scenario)
    batch = generate_cohorts(scenario, calibrate_cached(scenario), 6, rng=np.random.default_rng(5))
    result = analyse_cohorts(batch, scenario_plan(scenario, "paper"), rng=np.random.default_rng(6), details=True)
    values = simulated_values(numbers, scenario, batch, result)

    def column(cohort, table, item, statistic, arm=None):
        index = next(i for i, n in enumerate(numbers) if (n.number.cohort, n.number.table, n.number.item,
                                                          n.number.statistic, n.number.arm)
                     == (cohort, table, item, statistic, arm))
        return values[:, index]

    assert np.array_equal(column("matched", "pairs", "", "pairs"), result.n_pairs)
    assert np.allclose(column("matched", "survival", "pfs", "p_logrank"), result.p_logrank[:, 1, 0], equal_nan=True)
    weights = result.details["matched"].weights
    j = batch.covariate_names.index("hbv")
    treated = batch.treated & (weights > 0)
    for r in range(6):
        if treated[r].any():
            expected = 100 * batch.covariates[r, treated[r], j].mean()
            assert np.isclose(column("matched", "baseline", "hbv", "percent", "combination")[r], expected)
    assert np.allclose(column("full", "baseline", "age", "p"),
                       result.details["full"].baseline_tests["age"].p_value)
    orr = result.details["matched"].responses.orr_p_value
    assert np.allclose(column("matched", "response", "ORR", "p"), orr, equal_nan=True)


def test_check_replicates_are_those_of_a_run_with_the_same_seed():
    scenario = load_scenario(LIU2021)
    whole = run_check(scenario, replicates=6, block_size=3)
    part = run_check(scenario, replicates=3, block_size=3)
    assert np.array_equal(whole.simulated[:3], part.simulated, equal_nan=True)
