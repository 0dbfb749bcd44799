"""Morris and Sobol on the toy model (power depends on the first factor only), with noise."""

import numpy as np
import pytest
from SALib.sample import morris as morris_sample
from SALib.sample import sobol as sobol_sample

from analysis.performance.sensitivity import morris_indices, salib_problem, sobol_indices
from tests.analysis.performance.sensitivity.toy_model import simulated_power

PROBLEM = salib_problem(["effect", "inert_1", "inert_2"], [[0, 1]] * 3)


@pytest.mark.parametrize("crn", [False, True])
def test_sobol_ranks_the_one_active_factor_first_and_reports_the_noise(crn):
    rng = np.random.default_rng(7)
    x = sobol_sample.sample(PROBLEM, 256, calc_second_order=False, seed=3)
    estimate, mcse = simulated_power(x, 500, rng=rng, common_random_numbers=crn)
    result = sobol_indices(PROBLEM, estimate, mcse=mcse, seed=1)
    assert result.names == ("effect", "inert_1", "inert_2")
    assert np.argmax(result.st) == 0 and np.argmax(result.s1) == 0
    assert result.st[0] > 0.9 and result.s1[0] > 0.8
    assert np.all(result.st[1:] < 0.05)
    # noise share = mean MCSE² / output variance, reported beside the indices
    assert result.noise_share == pytest.approx(np.mean(mcse**2) / result.output_variance)
    assert 0 < result.noise_share < 0.05
    # noise-corrected total indices of the inert factors are within their CI of 0
    assert np.all(np.abs(result.st_corrected[1:]) < result.st_conf[1:] + 0.01)
    if not crn:  # independent noise inflates the inert ST by about the noise share
        assert np.all(result.st[1:] > 0.3 * result.noise_share)


def test_morris_ranks_the_active_factor_first_and_inert_ones_look_like_noise():
    rng = np.random.default_rng(8)
    x = morris_sample.sample(PROBLEM, 40, num_levels=4, seed=4)
    estimate, mcse = simulated_power(x, 500, rng=rng)
    result = morris_indices(PROBLEM, x, estimate, mcse=mcse, num_levels=4, seed=2)
    assert np.argmax(result.mu_star) == 0
    assert result.mu_star[0] > 10 * result.mu_star_noise
    assert np.all(result.mu_star[1:] < 2.0 * result.mu_star_noise)
    assert np.all(result.sigma_noise_share[1:] > 0.3)
    assert result.ee_noise_sd == pytest.approx(np.sqrt(2 * np.mean(mcse**2)) / (4 / 6))


def test_rows_must_all_be_finite():
    x = sobol_sample.sample(PROBLEM, 8, calc_second_order=False, seed=1)
    y = np.ones(len(x))
    y[3] = np.nan
    with pytest.raises(ValueError, match="finite"):
        sobol_indices(PROBLEM, y, seed=1)
    constant = sobol_indices(PROBLEM, np.ones(len(x)), seed=1)
    assert np.all(np.isnan(constant.s1))
