"""Scenario loading and validation: the paper's numbers, the fits, and malformed files."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
import tomllib

import numpy as np
import pytest
from scipy import integrate, optimize, stats

import sim.scenario.parser
from analysis.plan.options import OVERRIDABLE, PRESETS, make_plan
from sim.generate.marginals import (
    fit_lognormal_moments,
    fit_split_lognormal_quartiles,
    fit_truncated_normal,
    implied_summary,
    largest_truncated_normal_sd,
    marginal_mean,
    split_lognormal_moments,
)
from sim.errors import PsmsimError, ScenarioError
from sim.scenario import load_scenario, parse_scenario, scenario_from_mapping
from sim.scenario.model import RESPONSE_CATEGORIES, Marginal, Scenario

# Table 1 of Liu et al. (2021) before PSM: binary rows as (combination, sorafenib) counts.
TABLE1_COUNTS = {
    "male": (32, 54), "hbv": (33, 52), "cirrhosis": (20, 41), "ecog": (28, 50),
    "child_pugh_b": (33, 57), "bclc_c": (24, 50), "afp_400": (18, 33),
    "tumour_multiple": (23, 36), "macrovascular_invasion": (15, 33),
    "extrahepatic_metastasis": (22, 40), "prior_surgery": (11, 11), "prior_ablation": (1, 2),
    "prior_tace": (18, 33),
}
TABLE1_MEAN_SD = {"age": ((53.0, 10.3), (53.2, 11.6)), "alb": ((38.9, 4.6), (39.1, 5.4)),
                  "tumour_size": ((6.7, 3.6), (7.5, 4.1))}
TABLE1_MEDIAN_IQR = {
    "tbil": ((20.0, 12.2, 29.7), (19.2, 13.5, 31.1)),
    "ast": ((56.6, 44.8, 98.2), (74.1, 47.9, 105.6)),
    "alt": ((52.5, 40.7, 65.2), (48.8, 36.4, 66.9)),
    "plt": ((127.0, 81.0, 181.0), (145.0, 86.0, 200.0)),
    "wbc": ((5.5, 4.4, 8.4), (6.0, 4.3, 7.5)),
    "pt": ((12.0, 11.4, 12.8), (12.0, 11.3, 12.7)),
}
# Table 3: (any, grade 3-4) per arm.
TABLE3 = {
    "hand_foot_syndrome": ((21, 2), (34, 4)), "hypertension": ((3, 0), (8, 2)),
    "diarrhoea": ((10, 4), (23, 2)), "rash": ((8, 1), (7, 1)), "fatigue": ((8, 0), (18, 0)),
    "abdominal_pain": ((4, 0), (12, 3)), "nausea_vomiting": ((3, 0), (5, 0)),
    "fever": ((2, 1), (4, 0)), "cough": ((2, 0), (3, 0)),
    "gingival_haemorrhage": ((3, 0), (2, 0)), "elevated_transaminase": ((11, 5), (13, 8)),
    "hyperbilirubinaemia": ((14, 4), (19, 7)), "leukopenia": ((8, 1), (8, 1)),
    "thrombocytopenia": ((17, 1), (14, 2)), "anaemia": ((13, 0), (12, 3)),
}
ARMS = ("combination", "sorafenib")
SIZES = {"combination": 35, "sorafenib": 65}


# --------------------------------------------------------------------------------------------
# The paper scenario
# --------------------------------------------------------------------------------------------


def test_liu2021_arms_and_covariate_order(liu2021: Scenario, liu2021_path):
    assert liu2021.name == "liu2021" and liu2021.mode == "table"
    assert [(a.name, a.size, a.treated) for a in liu2021.arms] == [
        ("combination", 35, True), ("sorafenib", 65, False)]
    assert liu2021.treated_arm.name == "combination"
    assert liu2021.covariate_names == (
        "age", "male", "hbv", "cirrhosis", "ecog", "child_pugh_b", "bclc_c", "afp_400",
        "tbil", "alb", "ast", "alt", "plt", "wbc", "pt", "tumour_size", "tumour_multiple",
        "macrovascular_invasion", "extrahepatic_metastasis", "prior_surgery", "prior_ablation",
        "prior_tace")
    assert liu2021.source_text == liu2021_path.read_text(encoding="utf-8")


def test_liu2021_binary_rows_equal_table1_counts(liu2021: Scenario):
    by_name = {c.name: c for c in liu2021.covariates}
    for name, counts in TABLE1_COUNTS.items():
        assert by_name[name].kind == "binary"
        for arm, count in zip(ARMS, counts):
            marginal = by_name[name].marginals[arm]
            assert marginal.target == {"count": count, "n": SIZES[arm]}
            assert marginal.p == count / SIZES[arm]
    # Inconsistency resolved toward the count: TACE 18/35 (printed 47.4%).
    assert by_name["prior_tace"].marginals["combination"].p == pytest.approx(0.514, abs=5e-4)


def test_liu2021_continuous_rows_equal_table1(liu2021: Scenario):
    by_name = {c.name: c for c in liu2021.covariates}
    for name, rows in TABLE1_MEAN_SD.items():
        assert by_name[name].kind == "normal"
        for arm, (mean, sd) in zip(ARMS, rows):
            marginal = by_name[name].marginals[arm]
            assert marginal.target == {"mean": mean, "sd": sd}
            fitted = implied_summary("normal", marginal)
            assert fitted["mean"] == pytest.approx(mean, rel=1e-8)
            assert fitted["sd"] == pytest.approx(sd, rel=1e-8)
    for name, rows in TABLE1_MEDIAN_IQR.items():
        assert by_name[name].kind == "lognormal"
        for arm, (median, q1, q3) in zip(ARMS, rows):
            marginal = by_name[name].marginals[arm]
            assert marginal.target == {"median": median, "q1": q1, "q3": q3}
            expected = fit_split_lognormal_quartiles(median, q1, q3)
            assert (marginal.mu, marginal.sigma, marginal.sigma_upper) == (
                expected.mu, expected.sigma_lower, expected.sigma_upper)
            # The printed median and quartiles are reproduced exactly (no fit error).
            fitted = implied_summary("lognormal", marginal)
            assert fitted == pytest.approx(marginal.target, rel=1e-12)
    assert by_name["tumour_size"].marginals["combination"].lower == 0.5
    assert by_name["tumour_size"].marginals["combination"].upper is None
    assert by_name["age"].marginals["sorafenib"].lower == 18.0


def test_liu2021_outcome_censoring_response_and_aes(liu2021: Scenario):
    outcome = liu2021.outcome
    assert (outcome.control_pfs_median, outcome.control_os_median) == (6.1, 9.6)
    assert outcome.treatment.mode == "target_medians"
    assert (outcome.treatment.pfs_median, outcome.treatment.os_median) == (10.2, 14.1)
    assert outcome.treatment.hazard_ratio is None
    assert outcome.progression.baseline == "weibull" and outcome.progression.shape == 1.1
    assert outcome.covariate_log_hr["macrovascular_invasion"] == 0.4
    assert "age" not in outcome.covariate_log_hr
    assert (liu2021.censoring.accrual_months, liu2021.censoring.cutoff_month) == (24.0, 27.0)
    assert liu2021.response.probabilities["combination"] == pytest.approx(
        (0 / 35, 6 / 35, 18 / 35, 11 / 35), abs=1e-15)
    assert liu2021.response.probabilities["sorafenib"] == pytest.approx(
        (0 / 65, 2 / 65, 45 / 65, 18 / 65), abs=1e-15)
    assert liu2021.response.target["sorafenib"] == {"CR": 0, "PR": 2, "SD": 45, "PD": 18,
                                                    "n": 65}
    assert [e.name for e in liu2021.adverse_events] == list(TABLE3)
    for event in liu2021.adverse_events:
        for arm, (any_count, high_count) in zip(ARMS, TABLE3[event.name]):
            assert event.any_grade[arm] == any_count / SIZES[arm]
            assert event.grade34[arm] == high_count / SIZES[arm]
    assert liu2021.unmeasured is None and liu2021.selection is None


def test_liu2021_analysis_and_simulation(liu2021: Scenario):
    assert liu2021.analysis.plan == "paper"
    assert len(liu2021.analysis.ps_covariates) == 15
    assert set(liu2021.analysis.ps_covariates) <= set(liu2021.covariate_names)
    assert not {"tbil", "alb", "ast", "alt", "plt", "wbc", "pt"} & set(
        liu2021.analysis.ps_covariates)
    assert liu2021.analysis.overrides == {"paper": {"caliper": 0.3}}
    assert make_plan("paper", liu2021.analysis.overrides["paper"]).caliper == 0.3
    simulation = liu2021.simulation
    assert (simulation.replicates, simulation.seed, simulation.block_size) == (2000, 20210430,
                                                                               100)


def test_liu2021_correlation_matrix(liu2021: Scenario, liu2021_path):
    matrix = np.array(liu2021.correlation)
    names = liu2021.covariate_names
    k = len(names)
    assert matrix.shape == (k, k)
    np.testing.assert_array_equal(matrix, matrix.T)
    np.testing.assert_array_equal(np.diag(matrix), np.ones(k))
    assert np.linalg.eigvalsh(matrix).min() > 0
    pairs = tomllib.loads(liu2021_path.read_text(encoding="utf-8"))["correlation"]["pairs"]
    expected = np.eye(k)
    for first, second, rho in pairs:
        i, j = names.index(first), names.index(second)
        expected[i, j] = expected[j, i] = rho
    np.testing.assert_array_equal(matrix, expected)
    assert matrix[names.index("age"), names.index("male")] == 0.0


def test_selection_example_loads(selection_example: Scenario):
    assert selection_example.mode == "selection"
    assert all(arm.size == 0 for arm in selection_example.arms)
    assert selection_example.selection.patients == 100
    assert selection_example.selection.log_odds["ecog"] == (0.0, -0.4, -0.8)
    ecog = next(c for c in selection_example.covariates if c.name == "ecog")
    assert ecog.levels == ("0", "1", "2")
    assert ecog.marginals["population"].probabilities == pytest.approx((0.3, 0.6, 0.1))
    assert set(ecog.marginals) == {"population"}
    assert selection_example.outcome.treatment.hazard_ratio == 0.7
    assert selection_example.response.pfs_link == 0.5
    assert selection_example.analysis.plan == "recommended"
    assert selection_example.analysis.overrides == {}


def test_defaults_when_optional_sections_are_absent(liu2021_path):
    data = tomllib.loads(liu2021_path.read_text(encoding="utf-8"))
    for section in ("correlation", "analysis", "simulation", "adverse_events", "adverse_event_dependence", "checks"):
        del data[section]
    for transition in ("progression", "death_before", "death_after"):
        del data["outcome"][transition]
    scenario = scenario_from_mapping(data)
    assert scenario.correlation == tuple(
        tuple(1.0 if i == j else 0.0 for j in range(22)) for i in range(22))
    assert scenario.analysis.ps_covariates == scenario.covariate_names
    assert (scenario.analysis.plan, scenario.analysis.overrides) == ("paper", {})
    assert scenario.simulation.replicates == 1000
    assert scenario.adverse_events == () and scenario.adverse_event_dependence is None
    assert scenario.checks.numbers == () and scenario.checks.pairs is None
    assert scenario.outcome.progression.baseline == "exponential"


def test_correlation_matrix_form_equals_pairs_form(liu2021_path):
    text = liu2021_path.read_text(encoding="utf-8")
    data = tomllib.loads(text)
    names = ["ast", "alt", "plt"]
    data["correlation"] = {"matrix": {"names": names, "values": [
        [1.0, 0.7, 0.1], [0.7, 1.0, -0.2], [0.1, -0.2, 1.0]]}}
    matrix = np.array(scenario_from_mapping(data).correlation)
    data["correlation"] = {"pairs": [["ast", "alt", 0.7], ["plt", "ast", 0.1],
                                     ["alt", "plt", -0.2]]}
    np.testing.assert_array_equal(matrix, np.array(scenario_from_mapping(data).correlation))


def test_proportion_and_probability_forms(liu2021_path):
    text = liu2021_path.read_text(encoding="utf-8")  # first occurrences: not in [checks]
    text = text.replace("combination = { count = 32 }", "combination = { proportion = 0.9 }", 1)
    text = text.replace("counts = { CR = 0, PR = 6, SD = 18, PD = 11 }",
                        "probabilities = { CR = 0.1, PR = 0.2, SD = 0.3, PD = 0.4 }", 1)
    text = text.replace("combination = { any = 17, grade34 = 1 }",
                        "combination = { any_proportion = 0.5, grade34_proportion = 0.1 }", 1)
    text = text.replace("combination = { median = 20.0, q1 = 12.2, q3 = 29.7 }",
                        "combination = { mean = 22.0, sd = 11.0 }", 1)
    scenario = parse_scenario(text)
    male = next(c for c in scenario.covariates if c.name == "male")
    assert male.marginals["combination"].p == 0.9
    assert scenario.response.probabilities["combination"] == pytest.approx((0.1, 0.2, 0.3, 0.4))
    thrombocytopenia = scenario.adverse_events[-2]
    assert (thrombocytopenia.any_grade["combination"],
            thrombocytopenia.grade34["combination"]) == (0.5, 0.1)
    tbil = next(c for c in scenario.covariates if c.name == "tbil").marginals["combination"]
    assert tbil.sigma_upper is None                    # an ordinary lognormal
    distribution = stats.lognorm(s=tbil.sigma, scale=math.exp(tbil.mu))
    assert distribution.mean() == pytest.approx(22.0, rel=1e-12)
    assert distribution.std() == pytest.approx(11.0, rel=1e-12)


# --------------------------------------------------------------------------------------------
# Fits
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mean, sd, lower, upper", [
    (6.7, 3.6, 0.5, None), (7.5, 4.1, 0.5, None), (53.0, 10.3, 18.0, 90.0),
    (2.0, 1.5, 0.0, None), (5.0, 2.0, None, 8.0), (0.5, 0.25, 0.0, 1.0), (0.9, 0.08, 0.0, 1.0),
    (10.0, 0.9, 9.0, None), (5.0, 0.9, None, 6.0),
])
def test_truncated_normal_fit_reproduces_moments_by_quadrature(mean, sd, lower, upper):
    fitted = fit_truncated_normal(mean, sd, lower=lower, upper=upper)
    low = -np.inf if lower is None else lower
    high = np.inf if upper is None else upper
    density = stats.norm(fitted.mu, fitted.sigma)
    mass = density.cdf(high) - density.cdf(low)
    first = integrate.quad(lambda x: x * density.pdf(x), low, high, epsabs=1e-13)[0] / mass
    second = integrate.quad(lambda x: (x - first) ** 2 * density.pdf(x), low, high,
                            epsabs=1e-13)[0] / mass
    assert first == pytest.approx(mean, rel=1e-7)
    assert math.sqrt(second) == pytest.approx(sd, rel=1e-7)


@pytest.mark.parametrize("mean, sd, lower, upper", [
    (6.7, 6.3, 0.5, None),        # SD must be < mean - lower = 6.2
    (5.0, 1.5, None, 6.0),        # SD must be < upper - mean = 1
    (0.5, 0.3, 0.0, 1.0),         # SD above the uniform's 0.289
])
def test_truncated_normal_fit_impossible_raises(mean, sd, lower, upper):
    with pytest.raises(ValueError, match="no normal truncated to"):
        fit_truncated_normal(mean, sd, lower=lower, upper=upper)


def _split_lognormal_cdf(x: float, mu: float, lower: float, upper: float) -> float:
    """CDF of the two-piece lognormal written from its definition: P(X <= x) = Phi(z) with
    z = (log x - mu) / (lower if log x < mu else upper)."""
    d = math.log(x) - mu
    return stats.norm.cdf(d / (lower if d < 0 else upper))


@pytest.mark.parametrize("median, q1, q3", [v for rows in TABLE1_MEDIAN_IQR.values()
                                            for v in rows])
def test_split_lognormal_reproduces_the_printed_quartiles(median, q1, q3):
    fitted = fit_split_lognormal_quartiles(median, q1, q3)
    for quantile, level in ((q1, 0.25), (median, 0.5), (q3, 0.75)):
        assert _split_lognormal_cdf(quantile, fitted.mu, fitted.sigma_lower,
                                    fitted.sigma_upper) == pytest.approx(level, rel=1e-12)
    # The quantile function by root finding on that CDF agrees with implied_summary.
    implied = implied_summary("lognormal", Marginal(
        mu=fitted.mu, sigma=fitted.sigma_lower, sigma_upper=fitted.sigma_upper,
        target={"median": median, "q1": q1, "q3": q3}))
    for key, level in (("q1", 0.25), ("median", 0.5), ("q3", 0.75)):
        root = optimize.brentq(lambda x: _split_lognormal_cdf(
            x, fitted.mu, fitted.sigma_lower, fitted.sigma_upper) - level, 1e-3, 1e4,
            xtol=1e-13, rtol=1e-14)
        assert implied[key] == pytest.approx(root, rel=1e-10)
        assert implied[key] == pytest.approx({"q1": q1, "median": median, "q3": q3}[key],
                                             rel=1e-12)


def test_split_lognormal_hand_computed_case():
    # 10 (5-40): log-scale half-widths log 2 and log 4.
    fitted = fit_split_lognormal_quartiles(10.0, 5.0, 40.0)
    assert fitted.mu == pytest.approx(math.log(10.0), rel=1e-15)
    assert fitted.sigma_lower == pytest.approx(math.log(2.0) / 0.6744897501960817, rel=1e-13)
    assert fitted.sigma_upper == pytest.approx(math.log(4.0) / 0.6744897501960817, rel=1e-13)


def test_log_symmetric_iqr_gives_the_ordinary_lognormal():
    fitted = fit_split_lognormal_quartiles(10.0, 5.0, 20.0)
    assert fitted.sigma_lower == pytest.approx(fitted.sigma_upper, rel=1e-14)
    distribution = stats.lognorm(s=fitted.sigma_lower, scale=math.exp(fitted.mu))
    assert (distribution.ppf(0.25), distribution.ppf(0.75)) == pytest.approx((5.0, 20.0),
                                                                             rel=1e-12)
    assert split_lognormal_moments(fitted.mu, fitted.sigma_lower, fitted.sigma_upper) == (
        pytest.approx((distribution.mean(), distribution.std()), rel=1e-12))


def test_a_two_parameter_lognormal_cannot_fit_the_skewed_ast_row():
    # AST, combination arm: 56.6 (44.8-98.2). The least-squares lognormal on the log scale
    # (mu = mean of the three logs) has median 62.9, 11% off; the split lognormal is exact.
    least_squares_median = math.exp(np.mean(np.log([44.8, 56.6, 98.2])))
    assert least_squares_median / 56.6 - 1 == pytest.approx(0.1115, abs=5e-4)
    fitted = fit_split_lognormal_quartiles(56.6, 44.8, 98.2)
    assert math.exp(fitted.mu) == pytest.approx(56.6, rel=1e-14)
    assert fitted.sigma_upper > 2 * fitted.sigma_lower


@pytest.mark.parametrize("median, q1, q3", [v for rows in TABLE1_MEDIAN_IQR.values()
                                            for v in rows] + [(10.0, 9.0, 30.0)])
def test_split_lognormal_mean_and_sd_by_quadrature(median, q1, q3):
    fitted = fit_split_lognormal_quartiles(median, q1, q3)
    mu, lower, upper = fitted.mu, fitted.sigma_lower, fitted.sigma_upper

    def moment(k: int) -> float:
        """E[X^k] = integral of exp(k (mu + s(z) z)) phi(z) dz, split at z = 0."""
        def integrand(z: float, scale: float) -> float:
            return math.exp(k * (mu + scale * z) - z * z / 2.0) / math.sqrt(2.0 * math.pi)

        below = integrate.quad(integrand, -np.inf, 0.0, args=(lower,), epsabs=0,
                               epsrel=1e-13)[0]
        above = integrate.quad(integrand, 0.0, np.inf, args=(upper,), epsabs=0,
                               epsrel=1e-13)[0]
        return below + above

    mean, sd = split_lognormal_moments(mu, lower, upper)
    assert mean == pytest.approx(moment(1), rel=1e-10)
    assert sd == pytest.approx(math.sqrt(moment(2) - moment(1) ** 2), rel=1e-8)
    marginal = Marginal(mu=mu, sigma=lower, sigma_upper=upper,
                        target={"median": median, "q1": q1, "q3": q3})
    assert marginal_mean("lognormal", marginal) == mean


def test_marginal_mean_of_every_kind():
    assert marginal_mean("binary", Marginal(p=0.3)) == 0.3
    fitted = fit_truncated_normal(6.7, 3.6, lower=0.5, upper=None)
    truncated = Marginal(mean=fitted.mu, sd=fitted.sigma, lower=0.5)
    assert marginal_mean("normal", truncated) == pytest.approx(6.7, rel=1e-9)
    moments = fit_lognormal_moments(22.0, 11.0)
    plain = Marginal(mu=moments.mu, sigma=moments.sigma, target={"mean": 22.0, "sd": 11.0})
    assert marginal_mean("lognormal", plain) == pytest.approx(22.0, rel=1e-12)
    assert implied_summary("lognormal", plain) == pytest.approx({"mean": 22.0, "sd": 11.0},
                                                                rel=1e-12)
    with pytest.raises(ValueError, match="categorical"):
        marginal_mean("categorical", Marginal(probabilities=(0.5, 0.5)))
    with pytest.raises(ValueError, match="unknown covariate kind"):
        marginal_mean("gamma", plain)


def test_lognormal_moment_fit_is_exact():
    fitted = fit_lognormal_moments(22.0, 11.0)
    distribution = stats.lognorm(s=fitted.sigma, scale=math.exp(fitted.mu))
    assert (distribution.mean(), distribution.std()) == pytest.approx((22.0, 11.0), rel=1e-12)


# --------------------------------------------------------------------------------------------
# Analysis options per preset
# --------------------------------------------------------------------------------------------


def _with_analysis(liu2021_path, analysis_text: str) -> str:
    """liu2021 with its [analysis] section (up to [simulation]) replaced."""
    text = liu2021_path.read_text(encoding="utf-8")
    start, end = text.index("[analysis]\n"), text.index("[simulation]\n")
    return text[:start] + analysis_text + "\n" + text[end:]


def test_overrides_per_preset(liu2021_path):
    scenario = parse_scenario(_with_analysis(liu2021_path, """[analysis]
plan = "recommended"
ps_covariates = ["age", "ecog"]

[analysis.paper]
matcher = "spss_fuzzy_v2"
caliper = 0.02

[analysis.recommended]
caliper = "none"
ratio = 2
order = "none"
ties = "breslow"
"""))
    analysis = scenario.analysis
    assert analysis.plan == "recommended" and analysis.ps_covariates == ("age", "ecog")
    assert analysis.overrides == {
        "paper": {"matcher": "spss_fuzzy_v2", "caliper": 0.02},
        "recommended": {"caliper": None, "ratio": 2, "order": None, "ties": "breslow"},
    }
    paper = make_plan("paper", analysis.overrides["paper"])
    assert (paper.matcher, paper.caliper, paper.ties) == ("spss_fuzzy_v2", 0.02, "breslow")
    recommended = make_plan("recommended", analysis.overrides["recommended"])
    assert (recommended.caliper, recommended.ratio, recommended.order,
            recommended.ties) == (None, 2, None, "breslow")
    assert recommended.matcher == PRESETS["recommended"].matcher


def test_empty_preset_table_and_every_overridable_option(liu2021_path):
    scenario = parse_scenario(_with_analysis(liu2021_path, "[analysis]\n[analysis.paper]\n"))
    assert scenario.analysis.overrides == {"paper": {}}
    # Every option of the plan can be overridden (the loader takes OVERRIDABLE from the plan).
    values = {name: getattr(PRESETS["paper"], name) for name in OVERRIDABLE}
    values = {name: ("none" if value is None else value) for name, value in values.items()}
    lines = "\n".join(f"{name} = {_toml(value)}" for name, value in values.items())
    scenario = parse_scenario(_with_analysis(liu2021_path, f"[analysis.recommended]\n{lines}"))
    assert make_plan("recommended", scenario.analysis.overrides["recommended"]) == (
        dataclasses.replace(PRESETS["paper"], name="recommended"))


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def test_old_flat_overrides_are_refused_with_a_clear_message(liu2021_path):
    text = _with_analysis(liu2021_path, '[analysis]\noverrides = { caliper = 0.05 }\n')
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text)
    assert caught.value.field == "analysis.overrides"
    assert str(caught.value) == (
        "analysis.overrides: the flat overrides table is no longer read: move its options "
        "under [analysis.paper] or [analysis.recommended] (the preset they change)")


def test_documented_analysis_example_and_option_list_are_current(liu2021_path):
    documentation = (liu2021_path.parents[1] / "docs" / "scenario_format.md").read_text(
        encoding="utf-8")
    section = documentation.split("### `[analysis]`")[1].split("### `[simulation]`")[0]
    example = section.split("```toml\n")[1].split("```")[0]
    scenario = parse_scenario(_with_analysis(liu2021_path, example))
    assert scenario.analysis.overrides == {"paper": {"caliper": 0.05},
                                           "recommended": {"caliper": 0.1, "ratio": 2}}
    listed = section.split("(the `Plan` docstring explains\neach), e.g.")[1].split(
        " with the values")[0]
    names = listed.replace("\n", " ").split("`")[1::2]
    assert len(names) >= 10 and set(names) <= set(OVERRIDABLE)


# --------------------------------------------------------------------------------------------
# Package layout: dataclasses in sim.scenario.model, reading in sim.scenario.parser
# --------------------------------------------------------------------------------------------


def test_reexported_loaders_equal_the_parser(liu2021_path):
    text = liu2021_path.read_text(encoding="utf-8")
    assert load_scenario(liu2021_path) == sim.scenario.parser.load_scenario(liu2021_path)
    assert parse_scenario(text, source="x") == sim.scenario.parser.parse_scenario(text)
    data = tomllib.loads(text)
    assert scenario_from_mapping(data, source_text=text) == (
        sim.scenario.parser.scenario_from_mapping(data, source_text=text))


@pytest.mark.parametrize("first", ["sim.scenario.parser", "sim.scenario.model",
                                   "sim.scenario.schema", "sim.scenario.build",
                                   "sim.scenario.json_schema", "sim.scenario.messages",
                                   "sim.generate.marginals", "sim.generate.covariates"])
def test_any_module_imports_first_without_a_cycle(first, liu2021_path):
    code = (f"import {first}\nfrom sim.scenario import load_scenario\n"
            f"print(load_scenario({str(liu2021_path)!r}).name)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "liu2021\n"


# --------------------------------------------------------------------------------------------
# Malformed files (the cases live in conftest.py; the CLI runs them too)
# --------------------------------------------------------------------------------------------


def test_enough_malformed_cases(malformed_cases):
    assert len(malformed_cases) >= 30
    assert len({case.id for case in malformed_cases}) == len(malformed_cases)


def test_malformed_scenario_gives_one_clear_line(malformed):
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(malformed.apply(), source="case.toml")
    message = str(caught.value)
    assert malformed.expected in message
    assert "\n" not in message
    assert isinstance(caught.value, PsmsimError)


def test_every_problem_is_reported_in_file_order(liu2021_path):
    text = liu2021_path.read_text(encoding="utf-8")
    for old, new in (('mode = "table"', 'mode = "tabel"'), ("dropout_rate = 0.0", "dropout_rate = -1.0"),
                     ("replicates = 2000", "replicates = 2000.0")):
        text = text.replace(old, new)
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text)
    error = caught.value
    assert [problem.field for problem in error.problems] == [
        "study.mode", "censoring.dropout_rate", "simulation.replicates"]
    assert (error.field, error.message) == (
        "study.mode", "'tabel' is not one of table, selection; did you mean 'table'?")
    assert error.lines() == [str(problem) for problem in error.problems]
    assert str(error) == "; ".join(error.lines())
    assert error.problems[1].message == "-1 is out of range (allowed: [0, 10] per month)"


def test_unknown_key_without_a_close_match_lists_allowed_keys(liu2021_path):
    text = liu2021_path.read_text(encoding="utf-8").replace("dropout_rate = 0.0", "zzz = 0.0")
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text)
    assert str(caught.value) == ("censoring.zzz: unknown key (allowed: accrual_months, "
                                 "cutoff_month, dropout_rate)")


def test_plan_option_tables_take_every_overridable_option():
    # A new option of analysis.plan.options.Plan must be added to the file format too.
    from sim.scenario.schema.analysis import AnalysisTable, PlanOptions
    assert tuple(PlanOptions.model_fields) == OVERRIDABLE
    assert set(PRESETS) <= set(AnalysisTable.model_fields)


def test_unknown_test_rule_is_refused(liu2021_path):
    text = liu2021_path.read_text(encoding="utf-8").replace(
        "caliper = 0.3\n", 'caliper = 0.05\ntest_rule = "chisq"\n')
    with pytest.raises(ScenarioError, match="analysis.paper.test_rule: 'chisq' is not one of "
                                            "paper, pearson, yates, fisher"):
        parse_scenario(text)


def test_unknown_key_lists_allowed_keys(liu2021_path):
    text = liu2021_path.read_text(encoding="utf-8").replace("dropout_rate = 0.0",
                                                            "dropuot_rate = 0.0")
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text)
    assert caught.value.field == "censoring.dropuot_rate"
    assert str(caught.value) == (
        "censoring.dropuot_rate: unknown key; did you mean 'dropout_rate'? (allowed: "
        "accrual_months, cutoff_month, dropout_rate)")


def test_bad_toml_names_line_and_column(liu2021_path):
    text = liu2021_path.read_text(encoding="utf-8").replace("size = 65", "size = [65")
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, source="scenarios/bad.toml")
    message = str(caught.value)
    assert message.startswith("scenarios/bad.toml: invalid TOML: ")
    line = next(i for i, row in enumerate(text.splitlines(), 1) if row.startswith("size = [65"))
    assert f"line {line}" in message or f"line {line + 1}" in message


def test_missing_file(tmp_path):
    with pytest.raises(ScenarioError, match="no such scenario file"):
        load_scenario(tmp_path / "absent.toml")


def test_load_equals_parse(tmp_path, selection_example_path):
    path = tmp_path / "copy.toml"
    path.write_text(selection_example_path.read_text(encoding="utf-8"), encoding="utf-8")
    assert load_scenario(path) == parse_scenario(path.read_text(encoding="utf-8"))


def test_response_categories_order():
    assert RESPONSE_CATEGORIES == ("CR", "PR", "SD", "PD")


def test_largest_truncated_normal_sd_bounds_every_truncated_normal():
    assert largest_truncated_normal_sd(0.5, lower=0.0, upper=1.0) == pytest.approx(
        1 / math.sqrt(12), rel=1e-12)
    ratios = []
    for mu in np.linspace(-3.0, 4.0, 15):
        for sigma in np.exp(np.linspace(-3.0, 3.0, 13)):
            mean, variance = stats.truncnorm.stats(-mu / sigma, (1 - mu) / sigma, loc=mu,
                                                   scale=sigma, moments="mv")
            ratios.append(math.sqrt(variance) / largest_truncated_normal_sd(
                float(mean), lower=0.0, upper=1.0))
    assert max(ratios) < 1.0
    assert max(ratios) > 0.999          # the limit sigma -> infinity is approached


def test_minimal_example_of_the_format_documentation_loads(liu2021_path):
    documentation = (liu2021_path.parents[1] / "docs" / "scenario_format.md").read_text(
        encoding="utf-8")
    example = documentation.split("## Minimal example (table mode)")[1]
    example = example.split("```toml\n")[1].split("```")[0]
    scenario = parse_scenario(example)
    assert scenario.name == "tiny" and scenario.mode == "table"
    assert scenario.outcome.treatment.hazard_ratio == 1.0
    assert scenario.analysis.ps_covariates == ("age",)
    assert scenario.correlation == ((1.0,),)
