"""Covariate generation: marginals, copula correlations, selection model, unmeasured confounder.

Statistical checks use 10^5 patients per arm (one replicate) with a fixed seed; proportions must
lie within 4 Monte Carlo SEs of their targets, means/SDs and the printed medians/quartiles within
2% (and within 4 MCSEs where the SE is simple), latent correlations within 0.02.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import optimize, special, stats

from sim.generate.covariates import DrawnCovariates, draw_covariates, latent_to_value
from sim.generate.marginals import (
    Z75,
    fit_split_lognormal_quartiles,
    implied_summary,
    split_lognormal_moments,
)
from sim.scenario import parse_scenario
from sim.scenario.model import Marginal, Scenario, Unmeasured

N_PER_ARM = 100_000


@pytest.fixture(scope="module")
def big_table(liu2021, with_arm_sizes) -> tuple[Scenario, DrawnCovariates]:
    scenario = with_arm_sizes(liu2021, N_PER_ARM)
    return scenario, draw_covariates(scenario, 1, rng=np.random.default_rng(20210430))


@pytest.fixture(scope="module")
def big_selection(selection_example) -> tuple[Scenario, DrawnCovariates]:
    scenario = dataclasses.replace(selection_example, selection=dataclasses.replace(
        selection_example.selection, patients=2 * N_PER_ARM))
    return scenario, draw_covariates(scenario, 1, rng=np.random.default_rng(7))


def _arm_values(scenario, drawn, arm_name, covariate_name):
    arm = next(a for a in scenario.arms if a.name == arm_name)
    index = scenario.covariate_names.index(covariate_name)
    return drawn.values[0, drawn.treated[0] == arm.treated, index]


def _covariate(scenario, name):
    return next(c for c in scenario.covariates if c.name == name)


# --------------------------------------------------------------------------------------------
# Shapes, order, reproducibility
# --------------------------------------------------------------------------------------------


def test_shapes_and_arm_order(liu2021):
    drawn = draw_covariates(liu2021, 4, rng=np.random.default_rng(1))
    assert drawn.values.shape == (4, 100, 22) and drawn.values.dtype == float
    assert drawn.treated.shape == (4, 100) and drawn.treated.dtype == bool
    assert drawn.treated[:, :35].all() and not drawn.treated[:, 35:].any()
    assert drawn.unmeasured.dtype == bool and not drawn.unmeasured.any()
    assert np.isnan(drawn.true_ps).all()
    assert drawn.names == liu2021.covariate_names
    assert drawn.kinds[:3] == ("continuous", "binary", "binary")
    assert set(drawn.kinds) == {"continuous", "binary"}
    binary = [i for i, kind in enumerate(drawn.kinds) if kind == "binary"]
    assert set(np.unique(drawn.values[..., binary])) <= {0.0, 1.0}


def test_same_seed_same_arrays_different_seed_different(liu2021, selection_example):
    for scenario in (liu2021, selection_example):
        first = draw_covariates(scenario, 3, rng=np.random.default_rng(11))
        second = draw_covariates(scenario, 3, rng=np.random.default_rng(11))
        other = draw_covariates(scenario, 3, rng=np.random.default_rng(12))
        for name in ("values", "treated", "unmeasured", "true_ps"):
            np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
        assert not np.array_equal(first.values, other.values)


def test_replicates_are_not_copies(liu2021):
    drawn = draw_covariates(liu2021, 2, rng=np.random.default_rng(3))
    assert not np.array_equal(drawn.values[0], drawn.values[1])


def test_n_replicates_must_be_positive(liu2021):
    with pytest.raises(ValueError, match="n_replicates"):
        draw_covariates(liu2021, 0, rng=np.random.default_rng(0))


# --------------------------------------------------------------------------------------------
# Marginals (table mode)
# --------------------------------------------------------------------------------------------


def test_binary_proportions_within_4_mcse(big_table):
    scenario, drawn = big_table
    for covariate in scenario.covariates:
        if covariate.kind != "binary":
            continue
        for arm in scenario.arms:
            p = covariate.marginals[arm.name].p
            observed = _arm_values(scenario, drawn, arm.name, covariate.name).mean()
            mcse = math.sqrt(p * (1 - p) / N_PER_ARM)
            assert abs(observed - p) <= 4 * mcse, (covariate.name, arm.name, observed, p)


def test_normal_means_and_sds_match_printed_values(big_table):
    scenario, drawn = big_table
    for name in ("age", "alb", "tumour_size"):
        for arm in scenario.arms:
            target = _covariate(scenario, name).marginals[arm.name].target
            values = _arm_values(scenario, drawn, arm.name, name)
            assert abs(values.mean() - target["mean"]) <= 4 * target["sd"] / math.sqrt(N_PER_ARM)
            assert values.mean() == pytest.approx(target["mean"], rel=0.02)
            assert values.std(ddof=1) == pytest.approx(target["sd"], rel=0.02)


def test_truncation_bounds_hold(big_table):
    scenario, drawn = big_table
    age = drawn.values[0, :, scenario.covariate_names.index("age")]
    size = drawn.values[0, :, scenario.covariate_names.index("tumour_size")]
    assert age.min() >= 18.0 and age.max() <= 90.0
    assert size.min() >= 0.5
    assert (size < 1.0).mean() > 0        # the bound is reached, not clipped away


def _quartile_checks(values: np.ndarray, marginal: Marginal, label) -> None:
    """The sample median and quartiles equal the printed ones within 2% and within 4 MC SEs.

    SE of the sample p-quantile: sqrt(p (1 - p) / n) / f(Q(p)) (Serfling 1980, §2.3). The
    two-piece lognormal's density at Q(p) = exp(mu + s z_p) is phi(z_p) / (s Q(p)), with s the
    scale of that side; at the median the density jumps, so the larger scale (the larger SE)
    is used."""
    target = marginal.target
    n = values.size
    q1, median, q3 = np.quantile(values, [0.25, 0.5, 0.75])
    scales = {"q1": (marginal.sigma,), "median": (marginal.sigma, marginal.sigma_upper),
              "q3": (marginal.sigma_upper,)}
    for level, observed, key in ((0.25, q1, "q1"), (0.5, median, "median"), (0.75, q3, "q3")):
        assert observed == pytest.approx(target[key], rel=0.02), (label, key)
        z = special.ndtri(level)
        density = stats.norm.pdf(z) / (max(scales[key]) * target[key])
        quantile_se = math.sqrt(level * (1 - level) / n) / density
        assert abs(observed - target[key]) <= 4 * quantile_se, (label, key, observed)


def test_lognormal_medians_and_quartiles_match_the_printed_values(big_table):
    scenario, drawn = big_table
    checked = 0
    for covariate in scenario.covariates:
        if covariate.kind != "lognormal":
            continue
        for arm in scenario.arms:
            marginal = covariate.marginals[arm.name]
            assert implied_summary("lognormal", marginal) == pytest.approx(marginal.target,
                                                                           rel=1e-12)
            values = _arm_values(scenario, drawn, arm.name, covariate.name)
            _quartile_checks(values, marginal, (covariate.name, arm.name))
            checked += 1
    assert checked == 12


def test_skewed_ast_row_is_reproduced(big_table):
    # 56.6 (44.8-98.2) in the combination arm: a two-parameter lognormal gives median 62.9.
    scenario, drawn = big_table
    values = _arm_values(scenario, drawn, "combination", "ast")
    assert np.median(values) == pytest.approx(56.6, rel=0.01)


def test_population_lognormal_quartiles(big_selection):
    scenario, drawn = big_selection
    marginal = _covariate(scenario, "ast").marginals["population"]
    values = drawn.values[0, :, scenario.covariate_names.index("ast")]
    _quartile_checks(values, marginal, "ast")


def test_split_lognormal_mean_and_sd_by_simulation(big_table):
    scenario, drawn = big_table
    for name in ("ast", "wbc", "tbil"):
        for arm in scenario.arms:
            marginal = _covariate(scenario, name).marginals[arm.name]
            mean, sd = split_lognormal_moments(marginal.mu, marginal.sigma, marginal.sigma_upper)
            values = _arm_values(scenario, drawn, arm.name, name)
            n = values.size
            assert abs(values.mean() - mean) <= 4 * sd / math.sqrt(n), (name, arm)
            # SE of the sample SD by the delta method: sqrt((m4 - s^4) / n) / (2 s).
            fourth = np.mean((values - values.mean()) ** 4)
            sd_se = math.sqrt((fourth - values.var() ** 2) / n) / (2 * values.std())
            assert abs(values.std(ddof=1) - sd) <= 4 * sd_se, (name, arm)


def test_lognormal_mean_sd_form(liu2021_path, with_arm_sizes):
    text = liu2021_path.read_text(encoding="utf-8").replace(
        "combination = { median = 20.0, q1 = 12.2, q3 = 29.7 }",
        "combination = { mean = 22.0, sd = 11.0 }")
    scenario = with_arm_sizes(parse_scenario(text), N_PER_ARM)
    drawn = draw_covariates(scenario, 1, rng=np.random.default_rng(5))
    values = _arm_values(scenario, drawn, "combination", "tbil")
    assert values.mean() == pytest.approx(22.0, rel=0.02)
    assert values.std(ddof=1) == pytest.approx(11.0, rel=0.02)


def test_categorical_and_binary_population_marginals(big_selection):
    scenario, drawn = big_selection
    n = drawn.values.shape[1]
    ecog = drawn.values[0, :, scenario.covariate_names.index("ecog")]
    for level, p in enumerate(_covariate(scenario, "ecog").marginals["population"].probabilities):
        assert abs((ecog == level).mean() - p) <= 4 * math.sqrt(p * (1 - p) / n)
    male = drawn.values[0, :, scenario.covariate_names.index("male")].mean()
    assert abs(male - 0.85) <= 4 * math.sqrt(0.85 * 0.15 / n)


# --------------------------------------------------------------------------------------------
# Latent maps against scipy
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mu, sigma, lower, upper", [
    (5.79, 4.32, 0.5, None), (53.0, 10.3, 18.0, 90.0), (0.0, 1.0, 2.0, 3.0),
    (0.0, 1.0, 10.0, 12.0), (0.0, 1.0, -12.0, -10.0), (1.0, 2.0, None, 0.0),
])
def test_truncated_normal_latent_map_equals_scipy_ppf(mu, sigma, lower, upper):
    latent = np.linspace(-6.0, 6.0, 241)
    values = latent_to_value(latent, "normal", Marginal(mean=mu, sd=sigma, lower=lower,
                                                        upper=upper))
    a = -np.inf if lower is None else (lower - mu) / sigma
    b = np.inf if upper is None else (upper - mu) / sigma
    expected = stats.truncnorm.ppf(special.ndtr(latent), a, b, loc=mu, scale=sigma)
    np.testing.assert_allclose(values, expected, rtol=1e-8, atol=1e-8 * sigma)
    assert np.all(np.diff(values) >= 0)


@pytest.mark.parametrize("median, q1, q3", [(56.6, 44.8, 98.2), (20.0, 12.2, 29.7),
                                            (12.0, 11.4, 12.8), (10.0, 5.0, 20.0)])
def test_split_lognormal_latent_map_equals_its_quantile_function(median, q1, q3):
    """X = F^-1(Phi(Z)) with F^-1 found by root finding on the CDF written from the
    definition, P(X <= x) = Phi((log x - mu) / s), s the scale of x's side of the median."""
    fitted = fit_split_lognormal_quartiles(median, q1, q3)
    marginal = Marginal(mu=fitted.mu, sigma=fitted.sigma_lower, sigma_upper=fitted.sigma_upper,
                        target={"median": median, "q1": q1, "q3": q3})
    latent = np.linspace(-5.0, 5.0, 101)
    values = latent_to_value(latent, "lognormal", marginal)

    def cdf(x: float) -> float:
        d = math.log(x) - fitted.mu
        return stats.norm.cdf(d / (fitted.sigma_lower if d < 0 else fitted.sigma_upper))

    expected = [optimize.brentq(lambda x: cdf(x) - stats.norm.cdf(z), 1e-6, 1e6, xtol=1e-14,
                                rtol=1e-13) for z in latent]
    np.testing.assert_allclose(values, expected, rtol=1e-10)
    assert np.all(np.diff(values) > 0)
    np.testing.assert_allclose(latent_to_value(np.array([-Z75, 0.0, Z75]), "lognormal",
                                               marginal), [q1, median, q3], rtol=1e-13)
    # Continuous at the median (the two halves meet).
    tiny = np.array([-1e-12, 1e-12])
    np.testing.assert_allclose(latent_to_value(tiny, "lognormal", marginal), median, rtol=1e-10)


def test_ordinary_lognormal_latent_map_equals_scipy():
    marginal = Marginal(mu=1.3, sigma=0.6)
    latent = np.linspace(-5.0, 5.0, 101)
    expected = stats.lognorm.ppf(special.ndtr(latent), s=0.6, scale=math.exp(1.3))
    np.testing.assert_allclose(latent_to_value(latent, "lognormal", marginal), expected,
                               rtol=1e-9)
    # sigma_upper == sigma is the same lognormal.
    same = Marginal(mu=1.3, sigma=0.6, sigma_upper=0.6)
    np.testing.assert_array_equal(latent_to_value(latent, "lognormal", same),
                                  latent_to_value(latent, "lognormal", marginal))


def test_categorical_and_binary_latent_maps():
    latent = np.linspace(-4.0, 4.0, 8001)
    probabilities = (0.2, 0.0, 0.5, 0.3)
    levels = latent_to_value(latent, "categorical", Marginal(probabilities=probabilities))
    expected = np.searchsorted(np.cumsum(probabilities)[:-1], special.ndtr(latent),
                               side="right")
    np.testing.assert_array_equal(levels, expected)
    binary = latent_to_value(latent, "binary", Marginal(p=0.3))
    np.testing.assert_array_equal(binary, special.ndtr(latent) > 0.7)
    assert latent_to_value(latent, "binary", Marginal(p=0.0)).sum() == 0
    assert latent_to_value(latent, "binary", Marginal(p=1.0)).sum() == latent.size


# --------------------------------------------------------------------------------------------
# Copula correlations
# --------------------------------------------------------------------------------------------


def _target_correlation(scenario, first, second):
    names = scenario.covariate_names
    return scenario.correlation[names.index(first)][names.index(second)]


def _tetrachoric(x: np.ndarray, y: np.ndarray) -> float:
    """Latent correlation of two 0/1 variables: solve P(X=1, Y=1) = Phi2(h, k; rho) with
    h = Phi^-1(P(X=1)), k = Phi^-1(P(Y=1)) (Pearson 1900)."""
    h, k = special.ndtri(x.mean()), special.ndtri(y.mean())
    both = (x * y).mean()

    def excess(rho: float) -> float:
        return stats.multivariate_normal.cdf([h, k], cov=[[1, rho], [rho, 1]]) - both

    return optimize.brentq(excess, -0.99, 0.99, xtol=1e-8)


@pytest.mark.parametrize("first, second", [
    ("ast", "alt"), ("plt", "wbc"), ("tbil", "alb"), ("child_pugh_b", "tbil"),
    ("cirrhosis", "plt"), ("age", "tbil"),
])
def test_continuous_pairs_latent_correlation_from_spearman(big_table, first, second):
    scenario, drawn = big_table
    target = _target_correlation(scenario, first, second)
    for arm in scenario.arms:
        x = _arm_values(scenario, drawn, arm.name, first)
        y = _arm_values(scenario, drawn, arm.name, second)
        if _covariate(scenario, first).kind == "binary":
            continue      # mixed pairs are checked below
        rho_s = stats.spearmanr(x, y).statistic
        assert 2 * math.sin(math.pi * rho_s / 6) == pytest.approx(target, abs=0.02)


@pytest.mark.parametrize("first, second", [
    ("bclc_c", "extrahepatic_metastasis"), ("bclc_c", "macrovascular_invasion"),
    ("bclc_c", "ecog"), ("hbv", "cirrhosis"), ("macrovascular_invasion", "afp_400"),
    ("male", "afp_400"),
])
def test_binary_pairs_tetrachoric_correlation(big_table, first, second):
    scenario, drawn = big_table
    target = _target_correlation(scenario, first, second)
    x = _arm_values(scenario, drawn, "sorafenib", first)
    y = _arm_values(scenario, drawn, "sorafenib", second)
    assert _tetrachoric(x, y) == pytest.approx(target, abs=0.02)


@pytest.mark.parametrize("binary, continuous", [
    ("child_pugh_b", "alb"), ("child_pugh_b", "tbil"), ("macrovascular_invasion", "tumour_size"),
    ("cirrhosis", "plt"), ("ecog", "age"),
])
def test_binary_continuous_pairs_biserial_correlation(big_table, binary, continuous):
    """With the continuous variable's latent score Z1 = Phi^-1(F(x)) recomputed from its
    marginal and X2 = 1{Z2 > t}, cov(Z1, X2) = rho phi(t) (biserial; Pearson 1909)."""
    scenario, drawn = big_table
    target = _target_correlation(scenario, binary, continuous)
    for arm in scenario.arms:
        marginal = _covariate(scenario, continuous).marginals[arm.name]
        values = _arm_values(scenario, drawn, arm.name, continuous)
        if _covariate(scenario, continuous).kind == "lognormal":
            log_distance = np.log(values) - marginal.mu
            upper = marginal.sigma if marginal.sigma_upper is None else marginal.sigma_upper
            latent = log_distance / np.where(log_distance < 0, marginal.sigma, upper)
        else:
            mean, sd = marginal.mean, marginal.sd
            a = -np.inf if marginal.lower is None else (marginal.lower - mean) / sd
            b = np.inf if marginal.upper is None else (marginal.upper - mean) / sd
            latent = special.ndtri(stats.truncnorm.cdf(values, a, b, loc=mean, scale=sd))
        indicator = _arm_values(scenario, drawn, arm.name, binary)
        threshold = -special.ndtri(_covariate(scenario, binary).marginals[arm.name].p)
        covariance = np.mean(latent * (indicator - indicator.mean()))
        assert covariance / stats.norm.pdf(threshold) == pytest.approx(target, abs=0.02)


# --------------------------------------------------------------------------------------------
# Selection mode
# --------------------------------------------------------------------------------------------


def _linear_predictor_loop(scenario, row):
    """The treatment model's linear predictor of one patient, term by term."""
    selection = scenario.selection
    total = selection.intercept
    for name, coefficient in selection.log_odds.items():
        x = row[scenario.covariate_names.index(name)]
        total += coefficient[int(x)] if isinstance(coefficient, tuple) else coefficient * x
    return total


def test_true_ps_equals_the_stated_logistic_model(selection_example):
    drawn = draw_covariates(selection_example, 3, rng=np.random.default_rng(2))
    assert drawn.values.shape == (3, 100, 6)
    for replicate in range(3):
        for patient in range(100):
            eta = _linear_predictor_loop(selection_example, drawn.values[replicate, patient])
            assert drawn.true_ps[replicate, patient] == pytest.approx(
                1 / (1 + math.exp(-eta)), rel=1e-12)


def test_logistic_regression_recovers_the_treatment_model(big_selection):
    scenario, drawn = big_selection
    names = scenario.covariate_names
    x = drawn.values[0]
    ecog = x[:, names.index("ecog")]
    columns = [x[:, names.index(n)] for n in ("age", "male")]
    columns += [(ecog == 1).astype(float), (ecog == 2).astype(float)]
    columns += [x[:, names.index(n)] for n in ("macrovascular_invasion", "ast", "tumour_size")]
    design = sm.add_constant(np.column_stack(columns))
    fit = sm.Logit(drawn.treated[0].astype(float), design).fit(disp=0)
    log_odds = scenario.selection.log_odds
    truth = [scenario.selection.intercept, log_odds["age"], log_odds["male"],
             log_odds["ecog"][1], log_odds["ecog"][2], log_odds["macrovascular_invasion"],
             log_odds["ast"], log_odds["tumour_size"]]
    assert np.all(np.abs(fit.params - truth) <= 4 * fit.bse), (fit.params, truth, fit.bse)


def test_treated_share_equals_mean_true_ps(big_selection):
    _, drawn = big_selection
    n = drawn.treated.size
    p = drawn.true_ps.mean()
    assert abs(drawn.treated.mean() - p) <= 4 * math.sqrt(p * (1 - p) / n)


# --------------------------------------------------------------------------------------------
# Unmeasured confounder
# --------------------------------------------------------------------------------------------


def test_unmeasured_per_arm_prevalence_independent_of_x(big_table):
    scenario, _ = big_table
    scenario = dataclasses.replace(scenario, unmeasured=Unmeasured(
        prevalence={"combination": 0.3, "sorafenib": 0.5}, log_hr=0.5))
    drawn = draw_covariates(scenario, 1, rng=np.random.default_rng(9))
    for arm, p in (("combination", 0.3), ("sorafenib", 0.5)):
        treated_flag = arm == "combination"
        u = drawn.unmeasured[0, drawn.treated[0] == treated_flag]
        assert abs(u.mean() - p) <= 4 * math.sqrt(p * (1 - p) / N_PER_ARM)
        for name in ("age", "macrovascular_invasion", "ast"):
            x = _arm_values(scenario, drawn, arm, name)
            assert abs(np.corrcoef(u, x)[0, 1]) <= 4 / math.sqrt(N_PER_ARM)


def test_unmeasured_population_prevalence_drives_treatment(selection_example):
    text = selection_example.source_text.replace(
        "intercept = 1.2", "intercept = 1.2\nunmeasured_log_odds = 0.8").replace(
        "patients = 100", f"patients = {2 * N_PER_ARM}")
    text += "\n[unmeasured]\nprevalence = { population = 0.3 }\nlog_hr = 0.5\n"
    scenario = parse_scenario(text)
    drawn = draw_covariates(scenario, 1, rng=np.random.default_rng(4))
    u, treated = drawn.unmeasured[0], drawn.treated[0]
    n = u.size
    assert abs(u.mean() - 0.3) <= 4 * math.sqrt(0.21 / n)
    eta = np.array([_linear_predictor_loop(scenario, row) for row in drawn.values[0, :2000]])
    expected_ps = 0.3 * special.expit(eta + 0.8) + 0.7 * special.expit(eta)
    np.testing.assert_allclose(drawn.true_ps[0, :2000], expected_ps, rtol=1e-12)
    # Treatment given U follows the model with U's log-odds.
    eta_all = np.zeros(n) + scenario.selection.intercept
    for name, coefficient in scenario.selection.log_odds.items():
        x = drawn.values[0, :, scenario.covariate_names.index(name)]
        eta_all += (np.asarray(coefficient)[x.astype(int)] if isinstance(coefficient, tuple)
                    else coefficient * x)
    for flag, shift in ((True, 0.8), (False, 0.0)):
        p = special.expit(eta_all[u == flag] + shift)
        observed = treated[u == flag].mean()
        assert abs(observed - p.mean()) <= 4 * math.sqrt((p * (1 - p)).sum()) / p.size
    assert abs(drawn.treated.mean() - drawn.true_ps.mean()) <= 4 * math.sqrt(0.25 / n)


def test_unmeasured_per_arm_prevalence_in_selection_mode(selection_example):
    text = selection_example.source_text.replace("patients = 100", f"patients = {N_PER_ARM}")
    text += "\n[unmeasured]\nprevalence = { experimental = 0.2, control = 0.6 }\nlog_hr = 0.5\n"
    scenario = parse_scenario(text)
    drawn = draw_covariates(scenario, 1, rng=np.random.default_rng(8))
    for flag, p in ((True, 0.2), (False, 0.6)):
        u = drawn.unmeasured[0, drawn.treated[0] == flag]
        assert abs(u.mean() - p) <= 4 * math.sqrt(p * (1 - p) / u.size)
    np.testing.assert_allclose(drawn.true_ps[0, :50], [
        special.expit(_linear_predictor_loop(scenario, row)) for row in drawn.values[0, :50]],
        rtol=1e-12)


def _numpy_truncated_normal(latent, mu, sigma, lower, upper):
    """The (truncated) normal map as numpy arrays computed it before the compiled kernel."""
    from scipy import special

    if lower is None and upper is None:
        return mu + sigma * latent
    a = -np.inf if lower is None else (lower - mu) / sigma
    b = np.inf if upper is None else (upper - mu) / sigma
    if a > 0:
        tail_a, tail_b = special.ndtr(-a), special.ndtr(-b)
        standard = -special.ndtri(tail_b + special.ndtr(-latent) * (tail_a - tail_b))
    else:
        cdf_a, cdf_b = special.ndtr(a), special.ndtr(b)
        standard = special.ndtri(cdf_a + special.ndtr(latent) * (cdf_b - cdf_a))
    return mu + sigma * np.clip(standard, a, b)


@pytest.mark.parametrize("lower, upper", [(None, None), (18.0, 90.0), (None, 60.0),
                                          (40.0, None), (70.0, 95.0), (53.0, 53.5)])
def test_normal_map_equals_the_former_numpy_arrays(lower, upper):
    """The compiled (truncated) normal values are numpy's and scipy's doubles bit for bit,
    also at infinite and NaN scores, through latent_to_value and through draw_covariates'
    column kernel."""
    from sim.generate.covariates import _normal_columns, _normal_parameters

    latent = np.random.default_rng(3).standard_normal((40, 30)) * 3.0
    latent[0, :5] = (np.inf, -np.inf, np.nan, 0.0, 40.0)
    expected = _numpy_truncated_normal(latent, 53.0, 10.3, lower, upper)
    marginal = Marginal(mean=53.0, sd=10.3, lower=lower, upper=upper)
    assert np.array_equal(latent_to_value(latent, "normal", marginal), expected, equal_nan=True)
    out = np.zeros((40, 30, 2))
    _normal_columns(np.stack([latent, latent], axis=-1), np.array([1], dtype=np.intp),
                    np.array([_normal_parameters(53.0, 10.3, lower, upper)]), out)
    assert np.array_equal(out[..., 1], expected, equal_nan=True)


def test_compiled_scipy_functions_equal_scipys_ufuncs():
    """sim.generate.scipy_kernels' ndtr and ndtri give scipy.special's doubles."""
    from numba import njit
    from scipy import special

    from sim.generate.scipy_kernels import ndtr, ndtri

    @njit
    def both(x, p, cdf, inverse):
        for i in range(x.size):
            cdf[i] = ndtr(x[i], 0)
        for i in range(p.size):
            inverse[i] = ndtri(p[i], 0)

    rng = np.random.default_rng(11)
    x = np.concatenate([rng.standard_normal(2_000_000) * 3.0, rng.standard_normal(500_000) * 12,
                        [np.inf, -np.inf, np.nan, 0.0, -0.0, 40.0, -40.0]])
    u = rng.random(2_000_000)
    p = np.concatenate([u, u * 1e-10, 1.0 - u * 1e-12, [0.0, 1.0, 1.5, -0.1, np.nan]])
    cdf, inverse = np.empty_like(x), np.empty_like(p)
    both(x, p, cdf, inverse)
    assert np.array_equal(cdf, special.ndtr(x), equal_nan=True)
    assert np.array_equal(inverse, special.ndtri(p), equal_nan=True)
