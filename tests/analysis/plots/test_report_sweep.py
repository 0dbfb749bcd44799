"""The sweep report's section builders on a synthetic two-factor sweep and hand-made indices:
the factor table, the grid figures (and the power curve only when one numeric factor varies),
the indices tables with their noise, the unmeasured-confounder crossings."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from analysis.plots.report import Figure, Table
from analysis.plots.report_sections import StudyFacts
from analysis.plots.report_sweep import SWEEP_SECTIONS, SweepContext, factor_label
from tests.analysis.plots.synthetic_grid import HAZARD_RATIO, SIZE, make_grid_summary

FACTORS = ({"name": SIZE, "paths": [SIZE], "labels": [40, 80], "bounds": None, "scale": False,
            "analysis_only": False},
           {"name": HAZARD_RATIO, "paths": [HAZARD_RATIO], "labels": [1.0, 0.7], "bounds": None, "scale": False,
            "analysis_only": False})
STUDY = StudyFacts(name="toy", title="A toy study", design=(("Arms", "A: 30; B: 50"),), covariates=(),
                   assumptions=("[outcome] shape = 1.1 — ASSUMPTION: rising hazard",))


@pytest.fixture(scope="module")
def summary():
    grid = make_grid_summary(rng=np.random.default_rng(3), sizes=(40, 80), hazard_ratios=(1.0, 0.7),
                             n_replicates=60)
    grid.attrs.update(sweep_name="toy_sweep", sweep_question="Does size matter?", root_seed=7)
    return grid


def _morris_indices() -> xr.Dataset:
    shape = (1, 2, 1, 2)
    dims = ("measure", "method", "endpoint", "factor")
    values = {"mu_star": [0.3, 0.05], "mu_star_conf": [0.04, 0.02], "sigma": [0.1, 0.02], "mu": [0.3, -0.01],
              "sigma_noise_share": [0.1, 0.9]}
    data = {k: (dims, np.broadcast_to(np.array(v), shape)) for k, v in values.items()}
    data.update(mu_star_noise=(dims[:3], np.full(shape[:3], 0.03)), ee_noise_sd=(dims[:3], np.full(shape[:3], 0.04)))
    return xr.Dataset(data, coords={"measure": ["power_logrank"], "method": ["paper", "recommended"],
                                    "endpoint": ["pfs"], "factor": [SIZE, HAZARD_RATIO]},
                      attrs={"sweep_design": "morris", "sweep_name": "toy_sweep"})


def _sections(context):
    return {s.title: s for builder in SWEEP_SECTIONS if (s := builder(context)) is not None}


def test_factorial_sections_factors_and_nested_loops(summary):
    context = SweepContext(summary=summary, study=STUDY, design="factorial", factors=FACTORS, primary_method="paper",
                           replicates_per_point=60)
    sections = _sections(context)
    assert list(sections) == ["Aims", "Sweep factors", "Data-generating mechanism", "Performance across the grid"]
    assert "**Does size matter?**" in sections["Aims"].blocks[0].text
    assert "4 grid points × 60 replicates" in sections["Aims"].blocks[1].text
    table = next(b for b in sections["Sweep factors"].blocks if isinstance(b, Table))
    assert table.rows[0] == (f"`{SIZE}`", f"`{SIZE}`", "40, 80", "regenerates the cohorts")
    figures = [b.name for b in sections["Performance across the grid"].blocks if isinstance(b, Figure)]
    assert figures == ["nested-loop-bias_marginal", "nested-loop-coverage_marginal", "nested-loop-power_logrank"]


def test_a_single_numeric_factor_adds_the_power_curve(summary):
    one = summary.where(summary[HAZARD_RATIO] == 0.7, drop=True)
    context = SweepContext(summary=one, study=STUDY, design="factorial", factors=FACTORS[:1], primary_method="paper",
                           replicates_per_point=60)
    figures = [b for b in _sections(context)["Performance across the grid"].blocks if isinstance(b, Figure)]
    assert figures[-1].name == "power-curve" and figures[-1].png.startswith(b"\x89PNG")
    assert factor_label(FACTORS, SIZE) == SIZE
    assert factor_label([{"name": "hr", "paths": ["outcome.treatment.hazard_ratio"]}], "hr") == \
        "hr (outcome.treatment.hazard_ratio)"


def test_morris_indices_table_with_the_noise(summary):
    context = SweepContext(summary=summary, study=STUDY, design="morris", factors=FACTORS, primary_method="recommended",
                           replicates_per_point=60, sensitivity=_morris_indices())
    sections = _sections(context)
    grid = sections["Performance across the grid"].blocks[0]
    assert isinstance(grid, Table) and grid.header[:3] == ("Method", "Measure", "Lowest")
    indices = sections["Sensitivity indices"]
    assert "`recommended` plan" in indices.blocks[0].text
    table = next(b for b in indices.blocks if isinstance(b, Table))
    assert table.rows[0] == (SIZE, "0.300 ± 0.040", "0.100", "+0.300", "10%")
    assert "Noise alone gives μ* ≈ 0.030." in table.note
    assert [b.name for b in indices.blocks if isinstance(b, Figure)] == ["morris-power_logrank"]
