"""A plain randomised trial in table mode: no [covariates] at all (no dummy covariate)."""

from __future__ import annotations

import numpy as np

from analysis.plan.analyse import analyse_cohorts
from sim.calibrate.targets import calibrate
from sim.generate.cohorts import generate_cohorts
from sim.scenario import load_scenario
from sim.scenario.plans import scenario_plan

RANDOMISED = """
[study]
name = "plain_rct"
mode = "table"

[arms.experimental]
size = 40
treated = true

[arms.control]
size = 60
treated = false

[outcome]
control_pfs_median = 6.1
control_os_median = 9.6
death_before_progression = 0.15

[outcome.treatment]
mode = "hazard_ratio"
hazard_ratio = 0.6
death_after_hazard_ratio = 0.8

[censoring]
accrual_months = 24.0
cutoff_month = 27.0

[response.experimental]
probabilities = { CR = 0.02, PR = 0.1, SD = 0.55, PD = 0.33 }

[response.control]
probabilities = { CR = 0.02, PR = 0.1, SD = 0.55, PD = 0.33 }

[simulation]
calibration_patients = 20000
"""


def test_table_mode_without_covariates_generates_and_analyses(tmp_path):
    path = tmp_path / "plain_rct.toml"
    path.write_text(RANDOMISED)
    scenario = load_scenario(path)
    assert scenario.covariates == () and scenario.analysis.ps_covariates == ()
    calibration = calibrate(scenario, rng=np.random.default_rng(1))
    assert calibration.log_hr_pfs == calibration.log_hr_death_before == np.log(0.6)
    assert calibration.log_hr_os == np.log(0.8)
    batch = generate_cohorts(scenario, calibration, 20, rng=np.random.default_rng(2))
    assert batch.covariates.shape == (20, 100, 0)
    np.testing.assert_array_equal(batch.treated.sum(axis=1), 40)
    for method in ("paper", "recommended"):
        result = analyse_cohorts(batch, scenario_plan(scenario, method),
                                 rng=np.random.default_rng(3))
        # An intercept-only PS is the same for everybody: every treated patient is matched.
        np.testing.assert_array_equal(result.n_pairs, 40)
        np.testing.assert_array_equal(result.status, 0)
        assert np.all(np.isfinite(result.log_hr)) and np.all(np.isfinite(result.p_logrank))
        np.testing.assert_array_equal(result.n_treated[:, 0], 40)
        np.testing.assert_array_equal(result.n_control[:, 0], 60)
        assert result.smd.shape == (20, 2, 0) and np.all(np.isnan(result.max_abs_smd))
