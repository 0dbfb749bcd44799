"""The published JSON Schema of the scenario format: current, valid, accepts every shipped
scenario and refuses what the format refuses."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import jsonschema
import pytest

from sim.scenario.json_schema import DRAFT_7, main, schema_text

ROOT = Path(__file__).resolve().parents[3]
SCHEMA_FILE = ROOT / "docs" / "scenario.schema.json"
SCENARIO_FILES = sorted((ROOT / "scenarios").glob("*.toml"))


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def _as_json(path: Path) -> dict:
    """The TOML document as JSON would carry it (TOML inf becomes JSON's Infinity)."""
    return json.loads(json.dumps(tomllib.loads(path.read_text(encoding="utf-8"))))


def test_committed_schema_is_current():
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text(), (
        "docs/scenario.schema.json is stale: run `python -m sim.scenario.json_schema`")


def test_schema_command_check_and_write(tmp_path, capsys):
    out = tmp_path / "schema.json"
    assert main(["--check", "--out", str(out)]) == 1
    assert "is stale" in capsys.readouterr().err
    assert main(["--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == schema_text()
    assert main(["--check", "--out", str(out)]) == 0


def test_schema_is_draft_7_without_null():
    text = schema_text()
    schema = json.loads(text)
    assert schema["$schema"] == DRAFT_7
    assert '"$defs"' not in text and "prefixItems" not in text
    assert '"null"' not in text          # TOML has no null: optional keys are just optional


def test_scenario_files_are_found():
    assert {path.name for path in SCENARIO_FILES} >= {"liu2021.toml", "selection_example.toml"}


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=[path.name for path in SCENARIO_FILES])
def test_every_shipped_scenario_is_valid_against_the_schema(path, validator):
    errors = [f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
              for error in validator.iter_errors(_as_json(path))]
    assert errors == []


@pytest.mark.parametrize("change, where", [
    (lambda d: d["censoring"].update(dropuot_rate=0.0), "censoring"),
    (lambda d: d.update(simulations={}), ""),
    (lambda d: d["arms"]["combination"].update(sise=35), "arms/combination"),
    (lambda d: d["covariates"]["male"]["combination"].update(proportion=0.9),
     "covariates/male"),                                       # count and proportion
    (lambda d: d["covariates"]["age"].update(levels=["a", "b"]), "covariates/age"),
    (lambda d: d["covariates"]["tbil"].update(kind="log-normal"), "covariates/tbil"),
    (lambda d: d["analysis"]["paper"].update(calipr=0.05), "analysis/paper"),
    (lambda d: d["analysis"]["paper"].update(matcher="spss"), "analysis/paper/matcher"),
    (lambda d: d["outcome"]["treatment"].update(mode="medians"), "outcome/treatment/mode"),
    (lambda d: d["simulation"].update(replicates=0), "simulation/replicates"),
    (lambda d: d["correlation"]["pairs"][0].append(0.1), "correlation/pairs/0"),
], ids=["unknown-key", "unknown-section", "arm-key-typo", "count-and-proportion",
        "levels-on-normal", "unknown-kind", "unknown-option", "bad-matcher", "bad-effect-mode",
        "replicates-zero", "four-item-pair"])
def test_the_schema_refuses_what_the_format_refuses(change, where, validator, liu2021_path):
    data = _as_json(liu2021_path)
    change(data)
    errors = list(validator.iter_errors(data))
    assert errors, "the schema accepted an invalid file"
    assert any("/".join(map(str, error.absolute_path)).startswith(where) for error in errors), (
        [("/".join(map(str, e.absolute_path)), e.message) for e in errors])


def test_unknown_key_is_named_by_the_schema(validator, liu2021_path):
    data = _as_json(liu2021_path)
    data["censoring"]["dropuot_rate"] = 0.0
    (error,) = validator.iter_errors(data)
    assert "'dropuot_rate' was unexpected" in error.message
    assert list(error.absolute_path) == ["censoring"]


def test_taplo_configuration_points_editors_at_the_schema():
    # Taplo (Even Better TOML) reads taplo.toml at the workspace root; a rule's schema path is
    # relative to that file and its include globs select the scenario files.
    config = tomllib.loads((ROOT / "taplo.toml").read_text(encoding="utf-8"))
    (rule,) = [rule for rule in config["rule"] if "schema" in rule]
    assert (ROOT / rule["schema"]["path"]).resolve() == SCHEMA_FILE
    assert rule["include"] == ["scenarios/*.toml"]
