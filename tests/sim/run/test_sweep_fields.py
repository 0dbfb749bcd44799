"""Dotted scenario paths: read, replace (on a copy), scale; resized arms keep proportions."""

import tomllib

import pytest

from sim.errors import ScenarioError
from sim.run.sweep_fields import (
    counts_as_proportions,
    get_field,
    is_analysis_path,
    parse_path,
    resized_arms,
    scale_numbers,
    set_fields,
)
from sim.scenario import scenario_from_mapping
from tests.sim.conftest import LIU2021


def liu_document():
    return tomllib.loads(LIU2021.read_text())


def test_parse_path_splits_keys_and_indexes():
    assert parse_path("correlation.pairs[3][2]") == ("correlation", "pairs", 3, 2)
    assert parse_path("analysis.methods.no-labs.caliper") == ("analysis", "methods", "no-labs", "caliper")
    for bad in ("", "a..b", "a.[1]", "a.b[x]", "1a"):
        with pytest.raises(ScenarioError):
            parse_path(bad)
    assert is_analysis_path("analysis.paper.caliper") and not is_analysis_path("arms.combination.size")


def test_set_fields_copies_and_creates_tables():
    document = liu_document()
    changed = set_fields(document, {"outcome.treatment.delay_months": 3.0,
                                    "correlation.pairs[0][2]": 0.1,
                                    "unmeasured.log_hr": 0.5})
    assert get_field(changed, "outcome.treatment.delay_months") == 3.0
    assert get_field(changed, "correlation.pairs[0][2]") == 0.1
    assert changed["unmeasured"] == {"log_hr": 0.5}
    assert get_field(document, "correlation.pairs[0][2]") == 0.5  # the original is untouched
    assert "unmeasured" not in document
    with pytest.raises(ScenarioError, match=r"index \[99\]"):
        set_fields(document, {"correlation.pairs[99][2]": 0.1})
    with pytest.raises(ScenarioError, match="not a table"):
        set_fields(document, {"study.name.first": "x"})


def test_scale_numbers_leaves_names_and_flags():
    assert scale_numbers([["a", "b", 0.5], ["c", "d", -0.2]], 2.0) == [["a", "b", 1.0], ["c", "d", -0.4]]
    assert scale_numbers({"x": 0.3, "y": [0.0, 0.2], "flag": True}, 0.5) == {"x": 0.15, "y": [0.0, 0.1], "flag": True}


def test_resized_arm_keeps_its_published_proportions(liu2021):
    document = counts_as_proportions(liu_document(), "combination")
    document = set_fields(document, {"arms.combination.size": 70})
    resized = scenario_from_mapping(document)
    assert resized.treated_arm.size == 70
    for before, after in zip(liu2021.covariates, resized.covariates):
        assert after.marginals["combination"].p == pytest.approx(before.marginals["combination"].p)
        assert after.marginals["sorafenib"] == before.marginals["sorafenib"]
    assert resized.response.probabilities["combination"] == pytest.approx(
        liu2021.response.probabilities["combination"])
    for before, after in zip(liu2021.adverse_events, resized.adverse_events):
        assert after.any_grade["combination"] == pytest.approx(before.any_grade["combination"])
        assert after.grade34["combination"] == pytest.approx(before.grade34["combination"])
    assert resized.adverse_event_dependence.any_grade == pytest.approx(liu2021.adverse_event_dependence.any_grade)
    assert resized_arms(["arms.combination.size", "outcome.x", "arms.sorafenib.size"]) == (
        "combination", "sorafenib")
