"""Illness-death sampling (sim.generate.outcomes) against closed-form survival functions.

Statistical checks use fixed seeds (deterministic) with Monte Carlo error bounds: a wrong
hazard, scale or inversion moves the statistics far beyond them.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from sim.generate.outcomes import (
    IllnessDeathModel,
    covariate_centres,
    covariate_linear_predictor,
    draw_illness_death,
    draw_outcome_noise,
    illness_death_times,
)
from sim.generate.hazards import (
    inverse_unit_cumulative_hazard,
    invert_piecewise_multiplier,
    same_baseline_shape,
    unit_cumulative_hazard,
)
from sim.scenario.model import (
    AnalysisOptions,
    Arm,
    Censoring,
    Covariate,
    Marginal,
    Outcome,
    Response,
    Scenario,
    SimulationSettings,
    Transition,
    TreatmentEffect,
    Unmeasured,
)

EXPONENTIAL = Transition()
WEIBULL = Transition(baseline="weibull", shape=1.4)
PIECEWISE = Transition(baseline="piecewise", breaks=(2.0, 5.0, 9.0), relative_rates=(0.5, 1.0, 2.0, 0.7))


def model_of(progression=EXPONENTIAL, death_before=EXPONENTIAL, death_after=EXPONENTIAL, **values):
    settings = dict(
        progression_scale=0.1, death_before_scale=0.0, death_after_scale=0.2
    )
    settings.update(values)
    return IllnessDeathModel(progression, death_before, death_after, **settings)


def piecewise_hazard(transition, t):
    """Unit baseline hazard g(t) written straight from the definition."""
    if transition.baseline == "exponential":
        return np.ones_like(t)
    if transition.baseline == "weibull":
        return transition.shape * t ** (transition.shape - 1)
    edges = np.array(transition.breaks)
    return np.array(transition.relative_rates)[np.sum(t[..., None] >= edges, axis=-1)]


# ------------------------------------------------------------------------------------------
# Cumulative hazards and their inverses


@pytest.mark.parametrize("transition", [EXPONENTIAL, WEIBULL, PIECEWISE])
def test_unit_cumulative_hazard_is_the_integral_of_the_hazard(transition):
    points = np.array([0.0, 0.3, 1.9, 2.0, 2.1, 4.99, 5.0, 7.5, 9.0, 13.2, 40.0])
    expected = [
        integrate.quad(lambda u: float(piecewise_hazard(transition, np.array(u))), 0.0, t,
                       points=[b for b in transition.breaks if b < t] or None, limit=200)[0]
        for t in points
    ]
    np.testing.assert_allclose(unit_cumulative_hazard(transition, points), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("transition", [EXPONENTIAL, WEIBULL, PIECEWISE])
def test_inverse_cumulative_hazard_round_trips(transition):
    rng = np.random.default_rng(1)
    times = rng.exponential(6.0, size=(50, 40))
    back = inverse_unit_cumulative_hazard(transition, unit_cumulative_hazard(transition, times))
    np.testing.assert_allclose(back, times, rtol=1e-10)
    assert back.shape == times.shape


def test_piecewise_inverse_at_breaks_and_zero_rate_tail():
    transition = Transition(baseline="piecewise", breaks=(1.0, 3.0), relative_rates=(2.0, 0.0, 1.0))
    # G: 2t on [0,1); 2 on [1,3); 2 + (t-3) after.
    np.testing.assert_allclose(unit_cumulative_hazard(transition, np.array([0.5, 2.0, 4.0])), [1.0, 2.0, 3.0])
    np.testing.assert_allclose(inverse_unit_cumulative_hazard(transition, np.array([1.0, 2.0, 2.5])), [0.5, 1.0, 3.5])
    tail = Transition(baseline="piecewise", breaks=(1.0,), relative_rates=(1.0, 0.0))
    assert np.isinf(inverse_unit_cumulative_hazard(tail, np.array([1.5]))[0])


def test_same_baseline_shape():
    assert same_baseline_shape(EXPONENTIAL, Transition(baseline="weibull", shape=1.0))
    assert same_baseline_shape(WEIBULL, Transition(baseline="weibull", shape=1.4))
    assert not same_baseline_shape(WEIBULL, EXPONENTIAL)
    scaled = Transition(baseline="piecewise", breaks=PIECEWISE.breaks, relative_rates=(1.0, 2.0, 4.0, 1.4))
    assert same_baseline_shape(PIECEWISE, scaled)
    assert not same_baseline_shape(PIECEWISE, EXPONENTIAL)
    flat = Transition(baseline="piecewise", breaks=(3.0,), relative_rates=(2.0, 2.0))
    assert same_baseline_shape(flat, EXPONENTIAL)


# ------------------------------------------------------------------------------------------
# Inverse-transform sampling


@pytest.mark.parametrize("transition", [EXPONENTIAL, WEIBULL, PIECEWISE])
@pytest.mark.parametrize("eta", [0.0, 0.7])
def test_progression_times_follow_closed_form_survival(transition, eta):
    """No death before progression: PFS has S(t) = exp(-λ G(t) e^η); KS test and quantiles."""
    n = 20_000
    model = model_of(progression=transition, death_before=transition, progression_scale=0.13)
    times = draw_illness_death(np.full((4, n // 4), eta), np.zeros((4, n // 4), bool), model,
                               rng=np.random.default_rng(11))
    assert times.pfs_months.shape == (4, n // 4)
    assert np.all(times.progressed)

    def cdf(t):
        return 1.0 - np.exp(-0.13 * unit_cumulative_hazard(transition, np.asarray(t)) * np.exp(eta))

    assert stats.kstest(times.pfs_months.ravel(), cdf).pvalue > 1e-3
    # median within 4 MC SEs: SE = sqrt(p(1-p)/n) / f(m)
    probabilities = np.array([0.25, 0.5, 0.75])
    quantile_times = inverse_unit_cumulative_hazard(
        transition, -np.log1p(-probabilities) / (0.13 * np.exp(eta)))
    empirical_cdf = np.mean(times.pfs_months.ravel()[:, None] <= quantile_times, axis=0)
    assert np.all(np.abs(empirical_cdf - probabilities) < 4 * np.sqrt(probabilities * (1 - probabilities) / n))


def nelson_aalen(times, grid):
    """Nelson-Aalen cumulative hazard of uncensored times at ``grid`` and its variance."""
    ordered = np.sort(times)
    at_risk = ordered.size - np.arange(ordered.size)
    increments = np.cumsum(1.0 / at_risk)
    variance = np.cumsum(1.0 / at_risk**2)
    index = np.searchsorted(ordered, grid, side="right") - 1
    return np.where(index >= 0, increments[np.maximum(index, 0)], 0.0), np.where(index >= 0, variance[np.maximum(index, 0)], 0.0)


@pytest.mark.parametrize("transition", [EXPONENTIAL, WEIBULL, PIECEWISE])
def test_delayed_effect_has_piecewise_cumulative_hazard(transition):
    """Treated with delay d: H(t) = λ e^η [G(min(t,d)) + e^β (G(t) - G(d))_+]."""
    n, scale, beta, delay, eta = 40_000, 0.12, -0.8, 3.0, 0.3
    model = model_of(progression=transition, death_before=transition, progression_scale=scale,
                     log_hr_pfs=beta, delay_months=delay)
    times = draw_illness_death(np.full((1, n), eta), np.ones((1, n), bool), model,
                               rng=np.random.default_rng(5)).pfs_months.ravel()
    grid = np.array([1.0, 2.5, 3.0, 4.0, 6.0, 9.0, 12.0])
    g = unit_cumulative_hazard(transition, grid)
    g_delay = unit_cumulative_hazard(transition, np.array(delay))
    expected = scale * np.exp(eta) * (np.minimum(g, g_delay) + np.exp(beta) * np.maximum(g - g_delay, 0.0))
    estimate, variance = nelson_aalen(times, grid)
    assert np.all(np.abs(estimate - expected) < 4 * np.sqrt(variance)), (estimate, expected)
    # Control patients are unaffected by log_hr_pfs.
    control = draw_illness_death(np.full((1, n), eta), np.zeros((1, n), bool), model,
                                 rng=np.random.default_rng(5)).pfs_months.ravel()
    before = control <= delay
    np.testing.assert_array_equal(control[before], times[before])  # same draws, same times pre-delay
    assert np.all(times[~before] > control[~before])  # beta < 0 lengthens after the delay


@pytest.mark.parametrize("transition", [EXPONENTIAL, WEIBULL, PIECEWISE])
def test_piecewise_multiplier_inverts_its_cumulative_hazard(transition):
    """G_m(t) = sum_j e^{m_j} |G([b_j, b_{j+1}) ∩ [0, t))| computed by quadrature of the
    multiplied hazard; the inverse at G_m(t) gives t back, per patient multipliers."""
    rng = np.random.default_rng(4)
    breaks = (1.84, 4.0)
    log_multipliers = rng.normal(0.0, 0.8, size=(30, 3))
    times = rng.exponential(5.0, size=30)

    def multiplied(u, row):
        return float(piecewise_hazard(transition, np.array(u))) * np.exp(
            log_multipliers[row, np.searchsorted(breaks, u, side="right")])

    exposure = np.array([
        integrate.quad(multiplied, 0.0, t, args=(row,), limit=200,
                       points=[b for b in (*breaks, *transition.breaks) if b < t] or None)[0]
        for row, t in enumerate(times)])
    back = invert_piecewise_multiplier(transition, exposure, breaks, log_multipliers)
    np.testing.assert_allclose(back, times, rtol=1e-8)
    # One piece with multiplier 0 is the plain inverse.
    plain = invert_piecewise_multiplier(transition, exposure, (), np.zeros((30, 1)))
    np.testing.assert_allclose(plain, inverse_unit_cumulative_hazard(transition, exposure),
                               rtol=1e-12)


@pytest.mark.parametrize("delay", [0.0, 1.0, 3.0])
def test_early_window_has_piecewise_cumulative_hazard(delay):
    """Early window e = 1.84 with log multipliers α per arm: H(t) = λ e^η [e^α G(min(t, e)) +
    (G(t) - G(e))_+ · (1 before the delay, e^β after)] (Nelson–Aalen within 4 SEs); without
    death before progression."""
    n, scale, beta, eta, early = 40_000, 0.12, -0.8, 0.3, 1.84
    alpha = {False: 0.6, True: 0.9}
    model = model_of(progression=WEIBULL, death_before=WEIBULL, progression_scale=scale,
                     log_hr_pfs=beta, delay_months=delay, early_months=early,
                     control_early_log_hr=alpha[False], treated_early_log_hr=alpha[True])
    grid = np.array([0.5, 1.0, 1.84, 2.5, 3.0, 4.0, 6.0, 9.0])
    g = unit_cumulative_hazard(WEIBULL, grid)
    g_early = unit_cumulative_hazard(WEIBULL, np.array(early))
    g_start = unit_cumulative_hazard(WEIBULL, np.array(max(delay, early)))
    for arm in (False, True):
        times = draw_illness_death(np.full((1, n), eta), np.full((1, n), arm), model,
                                   rng=np.random.default_rng(6)).pfs_months.ravel()
        after = np.maximum(g - g_early, 0.0)
        if arm:
            after = np.minimum(after, g_start - g_early) + np.exp(beta) * np.maximum(
                g - np.maximum(g_start, g_early), 0.0)
        expected = scale * np.exp(eta) * (np.exp(alpha[arm]) * np.minimum(g, g_early) + after)
        estimate, variance = nelson_aalen(times, grid)
        assert np.all(np.abs(estimate - expected) < 4 * np.sqrt(variance)), (arm, estimate,
                                                                             expected)


def test_delay_zero_is_proportional_effect():
    noise = draw_outcome_noise((3, 500), rng=np.random.default_rng(2))
    eta = np.random.default_rng(3).normal(size=(3, 500))
    with_effect = illness_death_times(eta, np.ones((3, 500), bool),
                                      model_of(progression=WEIBULL, death_before=WEIBULL, log_hr_pfs=0.4), noise)
    shifted = illness_death_times(eta + 0.4, np.zeros((3, 500), bool),
                                  model_of(progression=WEIBULL, death_before=WEIBULL), noise)
    np.testing.assert_allclose(with_effect.pfs_months, shifted.pfs_months, rtol=1e-12)


@pytest.mark.parametrize("transition", [EXPONENTIAL, WEIBULL, PIECEWISE])
def test_competing_causes_share_shape(transition):
    """Shared shape: PFS ~ total hazard, cause independent with P(progression) = λ01/(λ01+λ02)."""
    n = 20_000
    model = model_of(progression=transition, death_before=transition,
                     progression_scale=0.09, death_before_scale=0.03)
    times = draw_illness_death(np.zeros((1, n)), np.zeros((1, n), bool), model,
                               rng=np.random.default_rng(8))
    pfs = times.pfs_months.ravel()
    cdf = lambda t: 1.0 - np.exp(-0.12 * unit_cumulative_hazard(transition, np.asarray(t)))
    assert stats.kstest(pfs, cdf).pvalue > 1e-3
    share = np.mean(times.progressed)
    assert abs(share - 0.75) < 4 * np.sqrt(0.75 * 0.25 / n)


def test_proportional_piecewise_shapes_use_matched_scale():
    """h02 with relative rates twice h01's: total hazard (λ01 + 2 λ02) g01."""
    doubled = Transition(baseline="piecewise", breaks=PIECEWISE.breaks,
                         relative_rates=tuple(2 * r for r in PIECEWISE.relative_rates))
    n = 20_000
    model = model_of(progression=PIECEWISE, death_before=doubled,
                     progression_scale=0.08, death_before_scale=0.02)
    times = draw_illness_death(np.zeros((1, n)), np.zeros((1, n), bool), model,
                               rng=np.random.default_rng(9))
    cdf = lambda t: 1.0 - np.exp(-0.12 * unit_cumulative_hazard(PIECEWISE, np.asarray(t)))
    assert stats.kstest(times.pfs_months.ravel(), cdf).pvalue > 1e-3
    assert abs(np.mean(times.progressed) - 0.08 / 0.12) < 4 * np.sqrt(2 / 9 / n)


def test_latent_competing_times_give_cause_specific_incidence():
    """Different shapes: cumulative incidence of progression F1(t) = ∫ h01 S."""
    n = 40_000
    progression, death_before = WEIBULL, PIECEWISE
    model = model_of(progression=progression, death_before=death_before,
                     progression_scale=0.07, death_before_scale=0.03)
    times = draw_illness_death(np.full((1, n), -0.2), np.zeros((1, n), bool), model,
                               rng=np.random.default_rng(12))
    multiplier = np.exp(-0.2)

    def survival(u):
        return np.exp(-multiplier * (0.07 * unit_cumulative_hazard(progression, np.asarray(u))
                                     + 0.03 * unit_cumulative_hazard(death_before, np.asarray(u))))

    for t in (2.0, 6.0, 15.0):
        incidence = integrate.quad(
            lambda u: 0.07 * multiplier * float(piecewise_hazard(progression, np.array(u))) * float(survival(u)),
            0.0, t, points=[b for b in death_before.breaks if b < t], limit=200)[0]
        observed = np.mean((times.pfs_months <= t) & times.progressed)
        assert abs(observed - incidence) < 4 * np.sqrt(incidence * (1 - incidence) / n)
        assert abs(np.mean(times.pfs_months <= t) - (1 - survival(t))) < 4 * np.sqrt(0.25 / n)


def test_os_is_exponential_when_death_hazard_ignores_progression():
    """Markov with h12 = h02 (exponential): the death hazard is μ in both states → OS ~ Exp(μ e^η)."""
    n = 20_000
    model = model_of(progression_scale=0.15, death_before_scale=0.05, death_after_scale=0.05,
                     log_hr_pfs=-0.3, log_hr_os=-0.3)
    times = draw_illness_death(np.full((1, n), 0.4), np.ones((1, n), bool), model,
                               rng=np.random.default_rng(13))
    rate = 0.05 * np.exp(0.4 - 0.3)
    assert stats.kstest(times.os_months.ravel(), stats.expon(scale=1 / rate).cdf).pvalue > 1e-3


def test_os_survival_matches_convolution_formula():
    """S_OS(t) = S_PFS(t) + ∫_0^t S_PFS(u) h01(u) S12(t - u) du (semi-Markov, Weibull h12)."""
    n = 40_000
    death_after = Transition(baseline="weibull", shape=0.8)
    model = model_of(progression=WEIBULL, death_before=WEIBULL, death_after=death_after,
                     progression_scale=0.06, death_before_scale=0.02, death_after_scale=0.15,
                     log_hr_pfs=-0.5, log_hr_os=0.2)
    times = draw_illness_death(np.zeros((1, n)), np.ones((1, n), bool), model,
                               rng=np.random.default_rng(14))
    pfs_rate, post_rate = 0.08 * np.exp(-0.5), 0.15 * np.exp(0.2)
    s_pfs = lambda u: np.exp(-pfs_rate * u**1.4)
    h01 = lambda u: 0.06 * np.exp(-0.5) * 1.4 * u**0.4
    s12 = lambda s: np.exp(-post_rate * s**0.8)
    for t in (3.0, 8.0, 20.0):
        expected = s_pfs(t) + integrate.quad(lambda u: s_pfs(u) * h01(u) * s12(t - u), 0.0, t, limit=200)[0]
        observed = np.mean(times.os_months > t)
        assert abs(observed - expected) < 4 * np.sqrt(expected * (1 - expected) / n)


def test_pfs_never_exceeds_os_and_progression_adds_time():
    rng = np.random.default_rng(15)
    eta = rng.normal(size=(20, 300))
    treated = rng.random((20, 300)) < 0.4
    for progression, death_before in [(WEIBULL, WEIBULL), (WEIBULL, PIECEWISE)]:
        model = model_of(progression=progression, death_before=death_before,
                         death_before_scale=0.05, log_hr_pfs=-0.4, log_hr_os=0.3, delay_months=2.0)
        times = draw_illness_death(eta, treated, model, rng=rng)
        assert np.all(times.pfs_months <= times.os_months)
        assert np.all(times.os_months[times.progressed] > times.pfs_months[times.progressed])
        np.testing.assert_array_equal(times.os_months[~times.progressed], times.pfs_months[~times.progressed])


def test_same_seed_same_times_different_seed_different():
    eta = np.zeros((5, 50))
    treated = np.zeros((5, 50), bool)
    model = model_of(death_before_scale=0.04)
    first = draw_illness_death(eta, treated, model, rng=np.random.default_rng(99))
    second = draw_illness_death(eta, treated, model, rng=np.random.default_rng(99))
    other = draw_illness_death(eta, treated, model, rng=np.random.default_rng(100))
    np.testing.assert_array_equal(first.os_months, second.os_months)
    np.testing.assert_array_equal(first.progressed, second.progressed)
    assert not np.array_equal(first.os_months, other.os_months)


# ------------------------------------------------------------------------------------------
# Linear predictor


def small_scenario(*, mode="table", unmeasured=None, outcome=None, censoring=None,
                   simulation=None, selection=None, covariate_log_hr=None):
    """A 7-patient (table) scenario with five covariates of every kind; fields replaceable."""
    arms = (Arm("combination", "C", 3, True), Arm("sorafenib", "S", 4, False))
    keys = ("population",) if mode == "selection" else ("combination", "sorafenib")
    covariates = (
        Covariate("male", "Male", "binary", {k: Marginal(p=0.8) for k in keys}),
        Covariate("bclc", "BCLC", "categorical",
                  {k: Marginal(probabilities=(0.2, 0.5, 0.3)) for k in keys}, levels=("A", "B", "C")),
        Covariate("age", "Age", "normal",
                  {"combination": Marginal(mean=50.0, sd=10.0, target={"mean": 50.0, "sd": 10.0}),
                   "sorafenib": Marginal(mean=54.0, sd=9.0, target={"mean": 55.0, "sd": 9.0}),
                   "population": Marginal(mean=52.0, sd=9.0)}),
        Covariate("afp", "AFP", "lognormal",
                  {"combination": Marginal(mu=5.0, sigma=1.0),
                   "sorafenib": Marginal(mu=np.log(300.0), sigma=1.2, target={"median": 320.0}),
                   "population": Marginal(mu=np.log(250.0), sigma=1.1)}),
        Covariate("ecog", "ECOG", "binary", {k: Marginal(p=0.4) for k in keys}),
    )
    outcome = outcome or Outcome(
        control_pfs_median=6.0, control_os_median=10.0, death_before_progression=0.2,
        progression=EXPONENTIAL, death_before=EXPONENTIAL, death_after=EXPONENTIAL,
        treatment=TreatmentEffect(mode="hazard_ratio", hazard_ratio=1.0),
        covariate_log_hr={"male": 0.2, "bclc": (0.0, 0.3, 0.9), "age": 0.01, "afp": 0.001}
        if covariate_log_hr is None else covariate_log_hr,
    )
    return Scenario(
        name="small", title="small", mode=mode, arms=arms, covariates=covariates,
        correlation=tuple(tuple(float(i == j) for j in range(5)) for i in range(5)),
        outcome=outcome, censoring=censoring or Censoring(accrual_months=24.0, cutoff_month=30.0),
        response=Response(probabilities={"combination": (0.1, 0.3, 0.4, 0.2),
                                         "sorafenib": (0.0, 0.1, 0.5, 0.4)}),
        adverse_events=(), analysis=AnalysisOptions(), simulation=simulation or SimulationSettings(),
        unmeasured=unmeasured, selection=selection,
    )


def test_covariate_centres_use_control_targets():
    np.testing.assert_allclose(covariate_centres(small_scenario()), [0, 0, 55.0, 320.0, 0])
    np.testing.assert_allclose(covariate_centres(small_scenario(mode="selection")), [0, 0, 52.0, 250.0, 0])


def test_covariate_linear_predictor_by_hand():
    scenario = small_scenario(unmeasured=Unmeasured(prevalence={"combination": 0.3, "sorafenib": 0.3}, log_hr=0.5))
    values = np.array([[[1, 2, 60.0, 420.0, 1], [0, 0, 55.0, 320.0, 0]],
                       [[0, 1, 45.0, 20.0, 1], [1, 1, 55.0, 320.0, 1]]])
    unmeasured = np.array([[True, False], [False, True]])
    expected = np.array([
        [0.2 + 0.9 + 0.01 * 5 + 0.001 * 100 + 0.5, 0.0],
        [0.3 + 0.01 * -10 + 0.001 * -300, 0.2 + 0.3 + 0.5],
    ])
    np.testing.assert_allclose(covariate_linear_predictor(scenario, values, unmeasured), expected, rtol=1e-12)
    # Without a confounder section U is ignored.
    np.testing.assert_allclose(covariate_linear_predictor(small_scenario(), values, unmeasured),
                               expected - 0.5 * unmeasured, rtol=1e-12)


def _numpy_piecewise(transition, unit_exposure, breaks, log_multipliers):
    """invert_piecewise_multiplier as numpy arrays computed it before the compiled kernel."""
    edges = np.concatenate([[0.0], unit_cumulative_hazard(transition, np.asarray(breaks, float))])
    multipliers = np.exp(log_multipliers)
    pieces = multipliers[..., :-1] * np.diff(edges)
    starts = np.concatenate([np.zeros(pieces.shape[:-1] + (1,)), np.cumsum(pieces, axis=-1)],
                            axis=-1)
    piece = np.sum(unit_exposure[..., None] > starts[..., 1:], axis=-1)
    start = np.take_along_axis(starts, piece[..., None], axis=-1)[..., 0]
    multiplier = np.take_along_axis(multipliers, piece[..., None], axis=-1)[..., 0]
    return inverse_unit_cumulative_hazard(
        transition, edges[piece] + (unit_exposure - start) / multiplier)


@pytest.mark.parametrize("transition", [
    Transition(baseline="weibull", shape=1.1),
    Transition(baseline="exponential"),
    Transition(baseline="piecewise", breaks=(2.0, 5.0), relative_rates=(1.0, 0.5, 2.0)),
])
def test_piecewise_and_delayed_inversions_equal_the_former_numpy_arrays(transition):
    """The compiled inversions give numpy's doubles bit for bit, per patient or per row
    (arm) of a table, including infinite and NaN exposures."""
    from sim.generate.hazards import invert_delayed_effect

    rng = np.random.default_rng(5)
    exposure = rng.standard_exponential((40, 25)) * rng.choice([0.1, 1.0, 10.0], (40, 25))
    exposure[0, :3] = (np.inf, np.nan, 0.0)
    arm = rng.random((40, 25)) < 0.4
    breaks = (1.84, 4.0)
    table = np.array([[0.3, 0.0, 0.0], [-0.2, -0.5, -0.5]])
    per_patient = table[arm.astype(int)]
    expected = _numpy_piecewise(transition, exposure, breaks, per_patient)
    assert np.array_equal(invert_piecewise_multiplier(transition, exposure, breaks, per_patient),
                          expected, equal_nan=True)
    assert np.array_equal(invert_piecewise_multiplier(transition, exposure, breaks, table,
                                                      rows=arm.astype(np.intp)),
                          expected, equal_nan=True)
    for delay in (0.0, 3.0):
        log_hr = np.where(arm, -0.4, 0.0)
        at_delay = float(unit_cumulative_hazard(transition, np.asarray(delay)))
        after = at_delay + (exposure - at_delay) * np.exp(-log_hr)
        expected = inverse_unit_cumulative_hazard(
            transition, np.where(exposure <= at_delay, exposure, after))
        assert np.array_equal(invert_delayed_effect(transition, exposure, log_hr, delay),
                              expected, equal_nan=True)
        assert np.array_equal(invert_delayed_effect(transition, exposure, np.array([0.0, -0.4]),
                                                    delay, rows=arm.astype(np.intp)),
                              expected, equal_nan=True)


def test_linear_predictor_equals_the_former_numpy_sum(selection_example):
    """The compiled η equals numpy's term-by-term sum bit for bit (continuous, binary,
    categorical terms and U)."""
    import dataclasses

    from sim.generate.covariates import draw_covariates

    scenario = dataclasses.replace(selection_example,
                                   unmeasured=Unmeasured(prevalence={"population": 0.3},
                                                         log_hr=0.7))
    drawn = draw_covariates(scenario, 30, rng=np.random.default_rng(8))
    assert any(c.kind == "categorical" and c.name in scenario.outcome.covariate_log_hr
               for c in scenario.covariates)
    centres = covariate_centres(scenario)
    expected = np.zeros(drawn.values.shape[:-1])
    for index, covariate in enumerate(scenario.covariates):
        effect = scenario.outcome.covariate_log_hr.get(covariate.name)
        if effect is None:
            continue
        column = drawn.values[..., index]
        if covariate.kind == "categorical":
            expected += np.asarray(effect, dtype=float)[column.astype(np.intp)]
        else:
            expected += float(effect) * (column - centres[index])
    without_u = expected.copy()
    expected += 0.7 * drawn.unmeasured.astype(float)
    assert np.array_equal(covariate_linear_predictor(scenario, drawn.values, drawn.unmeasured),
                          expected)
    assert np.array_equal(covariate_linear_predictor(scenario, drawn.values, None), without_u)
