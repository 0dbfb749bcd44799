"""`psmsim analyse` on cohort CSVs that used to crash or be read silently wrong (issue 8 item
10): one error line naming the row and column, and without --scenario the kind each covariate
column was read as (with a warning for a 0/1 column holding a missing-value code)."""

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sim.cli import main
from tests.sim.cli.helpers import invoke

ROOT = Path(__file__).resolve().parents[3]
LIU2021 = ROOT / "scenarios" / "liu2021.toml"


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    path = tmp_path_factory.mktemp("csv") / "c1.csv"
    assert invoke("cohort", LIU2021, "--seed", 1, "--out", path).exit_code == 0
    with path.open() as stream:
        return list(csv.reader(stream))


def write(path, rows, delimiter=","):
    with path.open("w", newline="") as stream:
        csv.writer(stream, delimiter=delimiter).writerows(rows)
    return path


def one_error_line(result):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    return lines[0]


def test_a_huge_value_is_refused_not_a_linalg_error(rows, tmp_path):
    changed = [list(row) for row in rows]
    changed[3][rows[0].index("tbil")] = "1e308"
    path = write(tmp_path / "big.csv", changed)
    assert one_error_line(invoke("analyse", path)) == (
        f"error: {path}: row 3, column tbil: 1e308 is beyond ±1e12, too large to analyse; check the value, or "
        "rescale the column (e.g. log10, or other units)")


def test_a_file_without_covariates_is_refused_not_an_index_error(rows, tmp_path):
    keep = [rows[0].index(name) for name in ("patient_id", "treated", "pfs_months", "pfs_event", "os_months", "os_event")]
    path = write(tmp_path / "nocov.csv", [[row[j] for j in keep] for row in rows])
    assert one_error_line(invoke("analyse", path)) == (
        f"error: {path}: no covariate columns; the propensity model needs at least one (every column not in the "
        "data dictionary is a covariate, e.g. age)")


def test_a_semicolon_separated_file_is_named_as_such(rows, tmp_path):
    path = write(tmp_path / "semi.csv", rows, delimiter=";")
    assert "separated by semicolons (;), not commas" in one_error_line(invoke("analyse", path))


def test_without_a_scenario_the_kind_of_each_column_is_printed(rows, tmp_path):
    changed = [list(row) for row in rows]
    changed[5][rows[0].index("hbv")] = "-1"
    path = write(tmp_path / "minus.csv", changed)
    result = CliRunner().invoke(main, ["analyse", str(path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    first = result.stdout.splitlines()[0]
    assert first.startswith(f"{path}: 100 patients; covariates read as binary (0/1): male, cirrhosis, ")
    assert "; continuous: age, hbv, tbil, " in first
    assert ("warning: column hbv: read as continuous, but all its values except 1 (row 5: -1) are 0 or 1; if it "
            "is binary, fix those rows (a missing-value code?), or give its kind with --scenario") in result.stderr
    with_scenario = invoke("analyse", write(tmp_path / "c1.csv", rows), "--scenario", LIU2021,
                           "--json", tmp_path / "c1.json")
    assert with_scenario.exit_code == 0 and "covariates read as" not in with_scenario.output
    kinds = json.loads((tmp_path / "c1.json").read_text())["covariate_kinds"]
    assert kinds["age"] == "continuous" and kinds["hbv"] == "binary"
