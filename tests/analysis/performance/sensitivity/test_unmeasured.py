"""E-value (VanderWeele & Ding 2017) and the Lin–Psaty–Kronmal / tipr bias factor."""

import math

import numpy as np
import pytest

from analysis.performance.sensitivity import (
    adjust_hr_with_binary,
    e_value,
    e_values_hr,
    hazard_ratio_to_risk_ratio,
    lpk_bias_factor,
    tipping_outcome_hr,
)


def published_e_value(rr):
    """VanderWeele & Ding (2017), Ann Intern Med 167:268: E = RR + sqrt(RR (RR - 1)) for RR > 1,
    RR < 1 inverted first."""
    rr = 1 / rr if rr < 1 else rr
    return rr + math.sqrt(rr * (rr - 1))


def published_common_outcome_rr(hr):
    """VanderWeele (2020) Biometrics 76:746: RR ≈ (1 - 0.5^sqrt(HR)) / (1 - 0.5^sqrt(1/HR))."""
    return (1 - 0.5 ** math.sqrt(hr)) / (1 - 0.5 ** math.sqrt(1 / hr))


def test_paper_hr_e_values_equal_the_published_formula():
    # Liu et al. 2021, matched cohort: PFS HR 0.5 (95% CI 0.30-0.85); PFS is a common outcome.
    values = e_values_hr(0.5, 0.30, 0.85, rare=False)
    assert values.point == pytest.approx(published_e_value(published_common_outcome_rr(0.5)), rel=1e-12)
    assert values.ci == pytest.approx(published_e_value(published_common_outcome_rr(0.85)), rel=1e-12)
    assert values.ci_limit == "upper"
    assert round(values.point, 2) == 2.61 and round(values.ci, 2) == 1.48
    rare = e_values_hr(0.5, 0.30, 0.85, rare=True)
    assert rare.point == pytest.approx(2 + math.sqrt(2), rel=1e-12)  # RR = HR = 0.5 -> 1/0.5 = 2
    assert rare.ci == pytest.approx(published_e_value(0.85), rel=1e-12)
    assert round(rare.point, 2) == 3.41


def test_ci_containing_the_null_has_e_value_one_and_harmful_effects_use_the_lower_limit():
    assert e_values_hr(0.8, 0.6, 1.1).ci == 1.0
    harmful = e_values_hr(1.9, 1.3, 2.8, rare=True)
    assert harmful.ci_limit == "lower"
    assert harmful.ci == pytest.approx(published_e_value(1.3))
    assert math.isnan(e_values_hr(0.7).ci)
    assert e_value(1.0) == 1.0 and hazard_ratio_to_risk_ratio(1.0, rare=False) == 1.0


def test_e_value_is_symmetric_in_direction_and_vectorised():
    rr = np.array([0.25, 0.5, 2.0, 4.0])
    values = e_value(rr)
    assert values[0] == pytest.approx(values[3]) and values[1] == pytest.approx(values[2])
    assert np.all(np.diff(e_value(np.array([1.0, 1.5, 2.0, 3.0]))) > 0)


def test_invalid_inputs_name_the_argument():
    with pytest.raises(ValueError, match="hazard_ratio"):
        e_values_hr(-0.5)
    with pytest.raises(ValueError, match="outside its CI"):
        e_values_hr(0.5, 0.6, 0.9)
    with pytest.raises(ValueError, match="prevalence_treated"):
        lpk_bias_factor(2.0, 1.2, 0.3)


def test_lpk_bias_factor_matches_the_published_formula_and_tipr_example():
    # tipr's documented example adjust_hr_with_binary(0.8, 0.1, 0.5, 1.8); Lin, Psaty & Kronmal
    # (1998): CF = (gamma p1 + 1 - p1) / (gamma p0 + 1 - p0).
    factor = (1.8 * 0.1 + 0.9) / (1.8 * 0.5 + 0.5)
    assert lpk_bias_factor(1.8, 0.1, 0.5) == pytest.approx(factor, rel=1e-14)
    assert adjust_hr_with_binary(0.8, 0.1, 0.5, 1.8) == pytest.approx(0.8 / factor, rel=1e-14)
    corrected = adjust_hr_with_binary(0.8, 0.1, 0.5, 1.8, hr_correction=True)
    rr, gamma = published_common_outcome_rr(0.8), published_common_outcome_rr(1.8)
    expected = rr / ((gamma * 0.1 + 0.9) / (gamma * 0.5 + 0.5))
    assert corrected == pytest.approx(expected, rel=1e-14)
    # No imbalance, or no effect of U: no bias.
    assert lpk_bias_factor(3.0, 0.4, 0.4) == pytest.approx(1.0) and lpk_bias_factor(1.0, 0.9, 0.1) == pytest.approx(1.0)


def test_tipping_outcome_hr_makes_the_adjusted_hr_one():
    # HR 0.5 explained away by U more common in the treated (p1 > p0) with a protective effect.
    gamma = tipping_outcome_hr(0.5, 0.7, 0.2)
    assert adjust_hr_with_binary(0.5, 0.7, 0.2, gamma) == pytest.approx(1.0, rel=1e-12)
    assert np.isnan(tipping_outcome_hr(0.5, 0.3, 0.3))  # no imbalance: nothing can tip it


def test_hazard_ratio_implied_by_the_papers_matched_pfs():
    from analysis.performance.sensitivity import hazard_ratio_from_medians

    # Liu et al. 2021 after PSM: PFS medians 9.5 vs 4.7 months, log-rank P = 0.043.
    implied = hazard_ratio_from_medians(9.5, 4.7, 0.043)
    assert implied.hazard_ratio == pytest.approx(4.7 / 9.5)
    z = 2.0240  # Phi^-1(1 - 0.0215)
    assert implied.se_log_hr == pytest.approx(abs(math.log(4.7 / 9.5)) / z, rel=1e-3)
    assert round(implied.ci_lower, 2) == 0.25 and round(implied.ci_upper, 2) == 0.98
