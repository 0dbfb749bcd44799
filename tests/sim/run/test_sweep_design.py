"""Sweep designs: factorial (+ subset), one-at-a-time, Morris, Sobol; conditions vs analysis
variants; grid points validated through the scenario reader with the point named."""

import tomllib

import numpy as np
import pytest

from sim.errors import ScenarioError
from sim.run.sweep_design import (
    Factor,
    factorial_design,
    morris_design,
    one_at_a_time_design,
    sobol_design,
)
from sim.run.sweep_points import point_document, point_scenario, sweep_layout
from tests.sim.conftest import LIU2021

HR = Factor("hr", ("outcome.treatment.hazard_ratio",), levels=(1.0, 0.7, 0.5))
DELAY = Factor("delay", ("outcome.treatment.delay_months",), levels=(0.0, 3.0))
CALIPER = Factor("caliper", ("analysis.paper.caliper",), levels=(0.02, 0.05, 0.1))


def hr_document():
    document = tomllib.loads(LIU2021.read_text())
    document["outcome"]["treatment"] = {"mode": "hazard_ratio", "hazard_ratio": 0.7, "delay_months": 0.0}
    return document


def test_factorial_crosses_levels_first_factor_slowest_and_subset_filters():
    design = factorial_design([HR, DELAY])
    assert [tuple(p.levels.values()) for p in design.points] == [
        (1.0, 0.0), (1.0, 3.0), (0.7, 0.0), (0.7, 3.0), (0.5, 0.0), (0.5, 3.0)]
    kept = factorial_design([HR, DELAY], subset="not (hr == 1 and delay > 0)")
    assert len(kept.points) == 5 and [p.index for p in kept.points] == list(range(5))
    dotted = factorial_design([HR, DELAY], subset="outcome.treatment.hazard_ratio < 1")
    assert len(dotted.points) == 4
    with pytest.raises(ScenarioError, match="keeps none"):
        factorial_design([HR], subset="hr > 2")


def test_factor_errors_name_the_factor():
    with pytest.raises(ScenarioError, match="used twice"):
        factorial_design([HR, Factor("hr", ("outcome.treatment.delay_months",), levels=(1.0,))])
    with pytest.raises(ScenarioError, match="set by two factors"):
        factorial_design([HR, Factor("hr2", HR.paths, levels=(1.0,))])
    with pytest.raises(ScenarioError, match="factors.sizes.values: each value of linked paths"):
        factorial_design([Factor("sizes", ("arms.combination.size", "arms.sorafenib.size"), levels=(35,))])
    with pytest.raises(ScenarioError, match="factors.hr.range"):
        morris_design([HR], trajectories=4, seed=1)
    with pytest.raises(ScenarioError, match="power of 2"):
        sobol_design([Factor("hr", HR.paths, bounds=(0.4, 1.0))], base_samples=12, seed=1)


def test_one_at_a_time_starts_at_the_base_and_moves_one_factor():
    design = one_at_a_time_design([HR, DELAY], hr_document())
    assert design.points[0].levels == {"hr": 0.7, "delay": 0.0} and design.points[0].varied == ""
    moved = [(p.varied, p.levels["hr"], p.levels["delay"]) for p in design.points[1:]]
    assert moved == [("hr", 1.0, 0.0), ("hr", 0.5, 0.0), ("delay", 0.7, 3.0)]
    with pytest.raises(ScenarioError, match="no value at unmeasured.log_hr"):
        one_at_a_time_design([Factor("u", ("unmeasured.log_hr",), levels=(0.5,))], hr_document())


def test_morris_and_sobol_samples_have_salib_sizes_bounds_and_seeds():
    factors = [Factor("hr", HR.paths, bounds=(0.4, 1.0)),
               Factor("n", ("arms.combination.size",), bounds=(20, 80), integer=True),
               Factor("delay", DELAY.paths, bounds=(0.0, 6.0))]
    morris = morris_design(factors, trajectories=5, num_levels=4, seed=0)
    assert len(morris.points) == 5 * 4 and morris.sample.shape == (20, 3)
    assert all(isinstance(p.levels["n"], int) and 20 <= p.levels["n"] <= 80 for p in morris.points)
    assert all(0.4 <= p.levels["hr"] <= 1.0 for p in morris.points)
    again = morris_design(factors, trajectories=5, num_levels=4, seed=0)
    assert np.array_equal(morris.sample, again.sample)
    assert not np.array_equal(morris.sample, morris_design(factors, trajectories=5, seed=1).sample)
    sobol = sobol_design(factors, base_samples=8, seed=3)
    assert len(sobol.points) == 8 * (3 + 2) and sobol.base_samples == 8
    assert np.array_equal(sobol.sample, sobol_design(factors, base_samples=8, seed=3).sample)


def test_analysis_only_factors_become_variants_on_shared_conditions():
    design = factorial_design([HR, CALIPER])
    layout = sweep_layout(design)
    assert len(layout.conditions) == 3 and len(layout.variants) == 3
    assert layout.condition_variants == ((0, 1, 2),) * 3
    assert layout.cells[4] == (1, 1)
    plain = sweep_layout(factorial_design([HR]))
    assert plain.variants == ({},) and plain.condition_variants == ((0,),) * 3


def test_grid_points_validate_and_errors_name_the_point_and_field():
    document = hr_document()
    design = factorial_design([HR, CALIPER])
    point = design.points[5]
    scenario = point_scenario(document, design.factors, point.levels, index=point.index,
                              source_text="# base\n")
    assert scenario.outcome.treatment.hazard_ratio == 0.7
    assert scenario.analysis.overrides["paper"]["caliper"] == 0.1
    assert scenario.source_text.endswith("# sweep grid point 5: hr = 0.7, caliper = 0.1\n")
    bad = Factor("hr", HR.paths, levels=(-1.0,))
    with pytest.raises(ScenarioError, match=r"grid point 0 \(hr = -1.0\): outcome.treatment.hazard_ratio"):
        point_scenario(document, (bad,), {"hr": -1.0}, index=0)


def test_scale_linked_and_resizing_factors(liu2021):
    document = tomllib.loads(LIU2021.read_text())
    strength = Factor("confounding", ("outcome.covariate_log_hr",), levels=(0.0, 2.0), scale=True)
    doubled = point_scenario(document, (strength,), {"confounding": 2.0}, index=0)
    assert doubled.outcome.covariate_log_hr["ecog"] == pytest.approx(0.6)
    sizes = Factor("sizes", ("arms.combination.size", "arms.sorafenib.size"), levels=([70, 130],),
                   labels=("70/130",))
    assert sizes.label([70, 130]) == "70/130"
    bigger = point_scenario(document, (sizes,), {"sizes": [70, 130]}, index=0)
    assert [a.size for a in bigger.arms] == [70, 130]
    assert bigger.covariates[1].marginals["combination"].p == pytest.approx(32 / 35)
    scaled = Factor("n_scale", ("arms.combination.size", "arms.sorafenib.size"), levels=(1.5,),
                    scale=True, integer=True)
    fields = point_document(document, (scaled,), {"n_scale": 1.5})["arms"]
    assert fields["combination"]["size"] == 52 and fields["sorafenib"]["size"] == 98
