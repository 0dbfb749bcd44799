"""The subset filter language: what it evaluates and what it refuses (it never runs code)."""

import pytest

from sim.errors import ScenarioError
from sim.run.sweep_subset import compile_subset

NAMES = {"hr", "caliper", "scale", "arms.combination.size"}


@pytest.mark.parametrize("expression, values, expected", [
    ("hr < 1", {"hr": 0.7}, True),
    ("not (scale == 'absolute' and caliper > 0.1)", {"scale": "absolute", "caliper": 0.2}, False),
    ("0.1 <= caliper <= 0.3 or scale in ['sd']", {"caliper": 0.05, "scale": "sd"}, True),
    ("arms.combination.size * 2 >= 70", {"arms.combination.size": 35}, True),
    ("caliper != 0.2 and true", {"caliper": 0.2}, False),
    ("-hr ** 2 < -0.25", {"hr": 0.7}, True),
])
def test_expressions_evaluate(expression, values, expected):
    assert compile_subset(expression, NAMES)(values) is expected


@pytest.mark.parametrize("expression, message", [
    ("__import__('os').system('echo hi')", "Call is not allowed"),
    ("hr.__class__", "unknown name 'hr.__class__'"),
    ("(lambda: 1)()", "not allowed"),
    ("[x for x in [1]]", "not allowed"),
    ("hazard < 1", "unknown name 'hazard'"),
    ("hr <", "not a valid expression"),
    ("caliper[0] > 1", "Subscript is not allowed"),
    ("", "non-empty"),
])
def test_everything_else_is_refused(expression, message):
    with pytest.raises(ScenarioError, match=message):
        compile_subset(expression, NAMES)


def test_failures_on_values_name_the_grid_point_and_huge_powers_are_refused():
    keep = compile_subset("hr < 'a'", NAMES)
    with pytest.raises(ScenarioError, match="fails at the grid point hr = 0.7"):
        keep({"hr": 0.7})
    with pytest.raises(ScenarioError, match="exponent"):
        compile_subset("10 ** 10 ** 10 > hr", NAMES)({"hr": 1})
