"""`psmsim validate`: valid files print a summary; a malformed file gives one line per problem
on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from sim.cli import main
from sim.errors import ScenarioError
from sim.scenario import parse_scenario


def _run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_validate_liu2021(liu2021_path):
    result = _run("validate", str(liu2021_path))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("liu2021: valid (table mode; combination 35 (treated), "
                                    "sorafenib 65; 22 covariates; 15 adverse events;")


def test_validate_selection_example(selection_example_path):
    result = _run("validate", str(selection_example_path))
    assert result.exit_code == 0, result.output
    assert "selection_example: valid (selection mode; 100 patients" in result.output
    assert "hazard ratio 0.7" in result.output
    assert "methods paper, recommended, no_lab, one_to_two;" in result.output


def test_help_options():
    for flag in ("-h", "--help"):
        result = _run(flag)
        assert result.exit_code == 0 and "validate" in result.output
        result = _run("validate", flag)
        assert result.exit_code == 0 and "SCENARIO" in result.output


def test_missing_file(tmp_path):
    result = _run("validate", str(tmp_path / "absent.toml"))
    assert result.exit_code == 2
    assert result.stderr == f"error: {tmp_path / 'absent.toml'}: no such scenario file\n"
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_directory_instead_of_file(tmp_path):
    result = _run("validate", str(tmp_path))
    assert result.exit_code == 2
    assert "is a directory" in result.stderr


def test_missing_argument_is_a_usage_error():
    result = _run("validate")
    assert result.exit_code == 2
    assert "Missing argument 'SCENARIO'" in result.output


def test_malformed_file_exits_2_with_one_line_per_problem(malformed, tmp_path):
    path = tmp_path / f"{malformed.id}.toml"
    path.write_text(malformed.apply(), encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(malformed.apply(), source=str(path))
    result = _run("validate", str(path))
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines == [f"error: {line}" for line in caught.value.lines()]
    assert any(malformed.expected in line for line in lines), result.stderr
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


def test_every_problem_of_a_file_is_printed_one_per_line(liu2021_path, tmp_path):
    text = liu2021_path.read_text(encoding="utf-8")
    for old, new in (("label = \"Liver cirrhosis\"", "label = 3"),
                     ("combination = { count = 33 }\nsorafenib = { count = 52 }",
                      "combination = { count = 36 }\nsorafenib = { count = 52 }"),
                     ("mean = 38.9, sd = 4.6", "mean = 38.9, sd = -4.6"),
                     ('["ast", "alt", 0.7]', '["ast", "alt_x", 0.7]'),
                     ("dropout_rate = 0.0", "dropuot_rate = 0.0"),
                     ("caliper = 0.3\n", 'caliper = 0.05\nmatcher = "spss"\n'),
                     ("replicates = 2000", "replicates = 0")):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / "broken.toml"
    path.write_text(text, encoding="utf-8")
    result = _run("validate", str(path))
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: covariates.hbv.combination.count: count 36 exceeds arm size 35 (allowed: an "
        "integer 0 to 35)",
        "error: covariates.cirrhosis.label: expected a string, got 3 (integer)",
        "error: covariates.alb.combination.sd: -4.6 is out of range (allowed: > 0)",
        "error: correlation.pairs[15][1]: 'alt_x' is not a covariate; did you mean 'alt'? "
        "(covariates: age, male, hbv, cirrhosis, ecog, child_pugh_b, bclc_c, afp_400, tbil, "
        "alb, ast, alt, plt, wbc, pt, tumour_size, tumour_multiple, macrovascular_invasion, "
        "extrahepatic_metastasis, prior_surgery, prior_ablation, prior_tace)",
        "error: censoring.dropuot_rate: unknown key; did you mean 'dropout_rate'? (allowed: "
        "accrual_months, cutoff_month, dropout_rate)",
        "error: analysis.paper.matcher: 'spss' is not one of matchit_nn, spss_fuzzy_v1, "
        "spss_fuzzy_v2, optimal",
        "error: simulation.replicates: 0 is too small (allowed: an integer 1 to 1000000)",
    ]
