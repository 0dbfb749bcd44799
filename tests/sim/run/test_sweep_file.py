"""Sweep files: validation with the field named, the published JSON Schema, [set]/unset."""

import json
import tomllib
from pathlib import Path

import pytest

from sim.errors import ScenarioError
from sim.run.sweep_file import base_document, build_design, load_sweep, parse_sweep, sweep_json_schema

ROOT = Path(__file__).resolve().parents[3]

VALID = '''
[sweep]
name = "hr"
design = "factorial"
[factors.hr]
path = "outcome.treatment.hazard_ratio"
values = [1.0, 0.5]
'''


@pytest.mark.parametrize("text, message", [
    ("[sweep]\nname = 'x'\n", "sweep.design: missing"),
    (VALID.replace('design = "factorial"', 'design = "grid"'), "sweep.design: 'grid' is not one of factorial, one_at_a_time, morris, sobol"),
    (VALID.replace("[factors.hr]", "[factors.hr]\nvalues2 = [1]"), "factors.hr.values2: unknown key"),
    (VALID.replace('values = [1.0, 0.5]', ''), "factors.hr: give exactly one of values"),
    (VALID.replace('path = "outcome.treatment.hazard_ratio"', 'path = "outcome..x"'), "factors.hr: outcome..x"),
    (VALID.replace('design = "factorial"', 'design = "morris"'), "needs trajectories"),
    (VALID.replace('design = "factorial"', 'design = "sobol"\nbase_samples = 4'), "factors.hr: design 'sobol' needs a range"),
    (VALID.replace('name = "hr"', 'name = "hr"\nreplicates = 0'), "sweep.replicates: 0 is too small (allowed: an integer 1 to 1000000)"),
    (VALID.replace("[factors.hr]", '[factors."bad name"]'), "must be an identifier"),
    ("[sweep\n", "invalid TOML"),
])
def test_invalid_sweeps_name_the_field(text, message):
    with pytest.raises(ScenarioError) as err:
        parse_sweep(text)
    assert message in str(err.value)


def test_published_json_schema_is_the_models_schema():
    published = json.loads((ROOT / "docs" / "sweep.schema.json").read_text())
    assert published == json.loads(json.dumps(sweep_json_schema(), sort_keys=True))


def test_unset_then_set_builds_the_base_of_every_point():
    sweep = load_sweep(ROOT / "tests" / "data" / "sweeps" / "small_factorial.toml")
    document = tomllib.loads((ROOT / "scenarios" / "liu2021.toml").read_text())
    base = base_document(sweep, document)
    assert base["outcome"]["treatment"] == {"mode": "hazard_ratio", "hazard_ratio": 0.6, "delay_months": 0.0}
    assert base["simulation"]["seed"] == document["simulation"]["seed"]  # merged, not replaced
    assert len(build_design(sweep, base).points) == 4
    with pytest.raises(ScenarioError, match="no such sweep file"):
        load_sweep(ROOT / "missing.toml")
