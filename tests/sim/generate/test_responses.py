"""Best overall response: per-arm rates, the cumulative-logit link, reproducibility."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import special

from analysis.cohort import RESPONSE_CODES
from sim.scenario import load_scenario
from sim.generate.responses import (
    ResponseThresholds,
    calibrate_pfs_response_thresholds,
    calibrate_response_thresholds,
    draw_best_response,
    target_thresholds,
)

N_PER_ARM = 100_000


@pytest.fixture(scope="module")
def liu2021_pfs(liu2021_path):
    """The shipped scenario: response from PFS (scans every 1.84 months, link 1)."""
    scenario = load_scenario(liu2021_path)
    assert scenario.response.model == "pfs"
    return scenario


@pytest.fixture(scope="module")
def liu2021(liu2021):
    """Table 2's rates with the covariate model (response apart from PFS, no link)."""
    return dataclasses.replace(liu2021, response=dataclasses.replace(
        liu2021.response, model="covariates", pfs_link=0.0))


def _big_treated(n_per_arm: int = N_PER_ARM) -> np.ndarray:
    return np.concatenate([np.ones(n_per_arm, bool), np.zeros(n_per_arm, bool)])[None, :]


def _assert_rates_within_4_mcse(codes, treated, scenario):
    for arm in scenario.arms:
        arm_codes = codes[treated == arm.treated]
        for category, code in RESPONSE_CODES.items():
            p = scenario.response.probabilities[arm.name][code]
            observed = (arm_codes == code).mean()
            if p == 0.0:
                assert observed == 0.0, (arm.name, category)
            else:
                mcse = math.sqrt(p * (1 - p) / arm_codes.size)
                assert abs(observed - p) <= 4 * mcse, (arm.name, category, observed, p)


def test_codes_follow_analysis_cohort():
    assert RESPONSE_CODES == {"CR": 0, "PR": 1, "SD": 2, "PD": 3}


def test_rates_without_link_match_table2(liu2021):
    treated = _big_treated()
    codes = draw_best_response(liu2021, treated, None, rng=np.random.default_rng(1))
    assert codes.shape == treated.shape and codes.dtype == np.int8
    _assert_rates_within_4_mcse(codes, treated, liu2021)


def test_without_link_prognosis_is_ignored(liu2021):
    treated = _big_treated(500)
    prognosis = np.random.default_rng(0).normal(size=treated.shape)
    first = draw_best_response(liu2021, treated, prognosis, rng=np.random.default_rng(3))
    second = draw_best_response(liu2021, treated, None, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(first, second)


def test_target_thresholds_are_logits_of_cumulative_rates(liu2021):
    thresholds = target_thresholds(liu2021)
    assert thresholds.arm_names == ("combination", "sorafenib")
    assert thresholds.thresholds.shape == (2, 3)
    assert thresholds.thresholds[0, 0] == -np.inf      # no CR in either arm
    np.testing.assert_allclose(special.expit(thresholds.thresholds[1, 1:]),
                               [2 / 65, 47 / 65], rtol=1e-12)


@pytest.fixture(scope="module")
def linked(liu2021):
    scenario = dataclasses.replace(liu2021, response=dataclasses.replace(
        liu2021.response, pfs_link=1.5))
    treated = _big_treated()
    rng = np.random.default_rng(21)
    # Arms differ in prognosis, as confounded arms do.
    prognosis = rng.normal(np.where(treated, -0.2, 0.1), 0.6)
    return scenario, treated, prognosis


def test_calibrated_thresholds_solve_the_marginal_equations(linked):
    scenario, treated, prognosis = linked
    thresholds = calibrate_response_thresholds(scenario, treated, prognosis)
    for row, arm in zip(thresholds.thresholds, scenario.arms):
        scores = 1.5 * prognosis[treated == arm.treated]
        cumulative = np.cumsum(scenario.response.probabilities[arm.name])[:3]
        for theta, target in zip(row, cumulative):
            assert special.expit(theta - scores).mean() == pytest.approx(target, abs=1e-10)
    assert np.all(np.diff(thresholds.thresholds[:, 1:], axis=1) > 0)


def test_linked_rates_match_targets_and_follow_prognosis(linked):
    scenario, treated, prognosis = linked
    thresholds = calibrate_response_thresholds(scenario, treated, prognosis)
    codes = draw_best_response(scenario, treated, prognosis, rng=np.random.default_rng(5),
                               thresholds=thresholds)
    _assert_rates_within_4_mcse(codes, treated, scenario)
    # Worse prognosis, worse response: P(PD | s) = 1 - expit(theta_SD - beta s) per bin.
    for arm_index, arm in enumerate(scenario.arms):
        s = prognosis[treated == arm.treated]
        pd = codes[treated == arm.treated] == RESPONSE_CODES["PD"]
        for low, high in ((-3.0, -0.5), (-0.5, 0.0), (0.0, 0.5), (0.5, 3.0)):
            inside = (s >= low) & (s < high)
            expected = 1 - special.expit(thresholds.thresholds[arm_index, 2] - 1.5 * s[inside])
            mcse = math.sqrt((expected * (1 - expected)).sum()) / inside.sum()
            assert abs(pd[inside].mean() - expected.mean()) <= 4 * mcse
        assert pd[s > 0.5].mean() > pd[s < -0.5].mean() + 0.1


def test_linked_without_thresholds_calibrates_on_the_batch(linked):
    scenario, treated, prognosis = linked
    codes = draw_best_response(scenario, treated, prognosis, rng=np.random.default_rng(5))
    expected = draw_best_response(
        scenario, treated, prognosis, rng=np.random.default_rng(5),
        thresholds=calibrate_response_thresholds(scenario, treated, prognosis))
    np.testing.assert_array_equal(codes, expected)


def test_link_needs_prognosis(linked):
    scenario, treated, _ = linked
    with pytest.raises(ValueError, match="prognosis is required"):
        draw_best_response(scenario, treated, None, rng=np.random.default_rng(0))


def test_selection_mode_uses_arm_probabilities(selection_example):
    treated = _big_treated(50_000)
    prognosis = np.random.default_rng(1).normal(0.0, 0.5, treated.shape)
    codes = draw_best_response(selection_example, treated, prognosis,
                               rng=np.random.default_rng(2))
    _assert_rates_within_4_mcse(codes, treated, selection_example)


def test_reproducible_batches(liu2021):
    treated = np.tile(np.arange(100) < 35, (8, 1))
    first = draw_best_response(liu2021, treated, None, rng=np.random.default_rng(4))
    second = draw_best_response(liu2021, treated, None, rng=np.random.default_rng(4))
    other = draw_best_response(liu2021, treated, None, rng=np.random.default_rng(5))
    assert first.shape == (8, 100)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)


def test_thresholds_dataclass_is_frozen(liu2021):
    thresholds = target_thresholds(liu2021)
    assert isinstance(thresholds, ResponseThresholds)
    with pytest.raises(dataclasses.FrozenInstanceError):
        thresholds.arm_names = ()


# ------------------------------------------------------------------------------------------
# Response from PFS


def _pfs_sample(scenario, n_per_arm=N_PER_ARM, seed=31):
    """Treated/control PFS times: exponential with rates that give about the paper's PD rates
    by the first scan, and spread (a frailty) so the link has something to follow."""
    rng = np.random.default_rng(seed)
    treated = _big_treated(n_per_arm)[0]
    rate = np.where(treated, 0.2, 0.18) * rng.lognormal(0.0, 0.5, treated.shape)
    return treated, rng.exponential(1.0 / rate)


def test_pfs_model_pd_exactly_when_pfs_ends_by_the_first_scan(liu2021_pfs):
    treated, pfs = _pfs_sample(liu2021_pfs)
    first_scan = liu2021_pfs.outcome.assessment.interval_months
    thresholds = calibrate_pfs_response_thresholds(liu2021_pfs, treated, pfs)
    codes = draw_best_response(liu2021_pfs, treated[None], None, rng=np.random.default_rng(2),
                               thresholds=thresholds, pfs_months=pfs[None])[0]
    np.testing.assert_array_equal(codes == RESPONSE_CODES["PD"], pfs <= first_scan)
    # Among the others the rates are the targets given non-PD, within 4 MC SEs.
    for arm in liu2021_pfs.arms:
        chosen = (treated == arm.treated) & (pfs > first_scan)
        probabilities = liu2021_pfs.response.probabilities[arm.name]
        for code in (0, 1, 2):
            p = probabilities[code] / (1 - probabilities[3])
            observed = np.mean(codes[chosen] == code)
            if p == 0:
                assert observed == 0
            else:
                assert abs(observed - p) <= 4 * math.sqrt(p * (1 - p) / chosen.sum()), (arm, code)


def test_pfs_model_thresholds_solve_the_equations_among_non_pd(liu2021_pfs):
    treated, pfs = _pfs_sample(liu2021_pfs, 20_000)
    first_scan = liu2021_pfs.outcome.assessment.interval_months
    scenario = dataclasses.replace(liu2021_pfs, response=dataclasses.replace(
        liu2021_pfs.response, pfs_link=0.7))
    thresholds = calibrate_pfs_response_thresholds(scenario, treated, pfs)
    for row, arm in zip(thresholds.thresholds, scenario.arms):
        times = pfs[(treated == arm.treated) & (pfs > first_scan)]
        probabilities = scenario.response.probabilities[arm.name]
        assert row[2] == np.inf
        for theta, target in zip(row[:2], np.cumsum(probabilities)[:2] / (1 - probabilities[3])):
            if target == 0:
                assert theta == -np.inf
            else:
                fitted = special.expit(theta + 0.7 * np.log(times / first_scan)).mean()
                assert fitted == pytest.approx(target, abs=1e-10)


@pytest.mark.parametrize("link", [0.0, 1.0])
def test_pfs_model_longer_pfs_better_response(liu2021_pfs, link):
    """P(PR | non-PD, T) = expit(theta_1 + link log(T / first scan)) in bins of T (the
    combination arm: CR 0, so PR is every better response); link 0: flat."""
    scenario = dataclasses.replace(liu2021_pfs, response=dataclasses.replace(
        liu2021_pfs.response, pfs_link=link))
    treated, pfs = _pfs_sample(scenario)
    first_scan = scenario.outcome.assessment.interval_months
    thresholds = calibrate_pfs_response_thresholds(scenario, treated, pfs)
    codes = draw_best_response(scenario, treated[None], None, rng=np.random.default_rng(8),
                               thresholds=thresholds, pfs_months=pfs[None])[0]
    chosen = treated & (pfs > first_scan)
    times, better = pfs[chosen], codes[chosen] <= RESPONSE_CODES["PR"]
    rates = []
    for low, high in ((first_scan, 4.0), (4.0, 8.0), (8.0, 16.0), (16.0, np.inf)):
        inside = (times > low) & (times <= high)
        expected = special.expit(thresholds.thresholds[0, 1] + link * np.log(
            times[inside] / first_scan))
        mcse = math.sqrt((expected * (1 - expected)).sum()) / inside.sum()
        assert abs(better[inside].mean() - expected.mean()) <= 4 * mcse
        rates.append(better[inside].mean())
    if link:
        assert rates[-1] > rates[0] + 0.1
    else:
        assert max(rates) - min(rates) < 0.03


def test_pfs_model_needs_pfs_times(liu2021_pfs):
    with pytest.raises(ValueError, match="pfs_months is required"):
        draw_best_response(liu2021_pfs, _big_treated(10), None, rng=np.random.default_rng(0))


@pytest.mark.parametrize("link", [0.0, 1.5])
def test_covariate_model_equals_the_former_numpy_arrays(liu2021, link):
    """The compiled categories equal numpy's (B, N, 3) expression bit for bit, and the same
    uniforms are drawn."""
    scenario = dataclasses.replace(liu2021, response=dataclasses.replace(
        liu2021.response, model="covariates", pfs_link=link))
    rng = np.random.default_rng(4)
    treated = rng.random((30, 100)) < 0.35
    prognosis = rng.normal(0.0, 0.7, treated.shape)
    thresholds = target_thresholds(scenario)
    rows = dict(zip(thresholds.arm_names, thresholds.thresholds))
    theta = np.where(treated[..., None], rows[scenario.treated_arm.name],
                     rows[scenario.control_arm.name])
    if link:
        theta = theta - link * prognosis[..., None]
    uniform = np.random.default_rng(9).random(treated.shape)
    expected = (uniform[..., None] >= special.expit(theta)).sum(axis=-1).astype(np.int8)
    drawn = draw_best_response(scenario, treated, prognosis, rng=np.random.default_rng(9),
                               thresholds=thresholds)
    assert drawn.dtype == np.int8
    assert np.array_equal(drawn, expected)


def test_pfs_model_equals_the_former_numpy_arrays(liu2021_pfs):
    """Response from PFS: the compiled categories equal numpy's expression bit for bit."""
    scenario = liu2021_pfs
    rng = np.random.default_rng(6)
    treated = rng.random((30, 100)) < 0.35
    pfs = rng.exponential(6.0, treated.shape)
    pfs[0, :2] = (np.nan, scenario.outcome.assessment.interval_months)
    thresholds = calibrate_pfs_response_thresholds(scenario, treated.ravel(), pfs.ravel() + 1.0)
    first_scan = scenario.outcome.assessment.interval_months
    rows = dict(zip(thresholds.arm_names, thresholds.thresholds))
    theta = np.where(treated[..., None], rows[scenario.treated_arm.name][:2],
                     rows[scenario.control_arm.name][:2])
    early = pfs <= first_scan
    score = float(scenario.response.pfs_link) * np.log(np.where(early, first_scan, pfs)
                                                       / first_scan)
    uniform = np.random.default_rng(2).random(treated.shape)
    better = (uniform[..., None] >= special.expit(theta + score[..., None])).sum(axis=-1)
    expected = np.where(early, 3, better).astype(np.int8)
    drawn = draw_best_response(scenario, treated, None, rng=np.random.default_rng(2),
                               thresholds=thresholds, pfs_months=pfs)
    assert np.array_equal(drawn, expected)
