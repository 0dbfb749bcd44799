"""The search rules on a known power curve: where rounds go, when they stop, the coverage of the
reported interval, bounds that are never returned as roots; the analytic companions against
lifelines and the published worked numbers."""

from __future__ import annotations

import numpy as np
import pytest
from lifelines.statistics import sample_size_necessary_under_cph
from scipy.special import ndtr

from analysis.performance.samplesize import (
    RoundResult,
    SearchSettings,
    analytic_sample_size,
    next_step,
    power_points,
    wilson_interval,
)
from tests.analysis.performance.test_power_curve import A, B, TRUE_ROOT, correlated_rejections


def run_search(settings, *, seed, rho=0.5, guess=150.0, power=None):
    """Drive :func:`next_step` to its end on Bernoulli outcomes of the known curve (or of
    ``power(x)``), with common random numbers within each round."""
    rng = np.random.default_rng(seed)
    rounds = []
    while True:
        step = next_step(rounds, settings, guess=guess)
        if step.action != "evaluate":
            return step, rounds
        if power is None:
            rejected = correlated_rejections(step.values, step.replicates, rho, rng=rng)
        else:
            rejected = rng.random((step.values.size, step.replicates)) < power(step.values)[:, None]
        rounds.append(RoundResult(step.values, rejected))


def settings(**changes):
    return SearchSettings(**{"target_power": 0.8, "lower": 4, "upper": 5000, **changes})


def test_first_round_spreads_whole_candidates_around_the_guess():
    step = next_step([], settings(), guess=150.0)
    assert step.action == "evaluate" and step.replicates == 100
    assert step.values[0] == 75 and step.values[-1] == 450
    assert np.all(step.values == np.round(step.values)) and np.all(np.diff(step.values) > 0)
    assert len(step.values) == 8
    clipped = next_step([], settings(upper=200), guess=150.0)
    assert clipped.values[-1] == 200 and clipped.values[0] == 75


def test_next_step_is_a_pure_function_of_the_rounds():
    step, rounds = run_search(settings(max_rounds=3), seed=4)
    again = next_step(rounds[:2], settings(max_rounds=3), guess=150.0)
    assert np.array_equal(again.values, rounds[2].values)
    assert again.replicates == rounds[2].rejected.shape[1]


def test_search_converges_near_the_true_root_with_growing_rounds():
    step, rounds = run_search(settings(), seed=1)
    assert step.action == "converged"
    assert step.root.half_width <= 0.02 * step.root.value
    assert abs(step.root.value - TRUE_ROOT) < 0.05 * TRUE_ROOT
    per_candidate = [r.rejected.shape[1] for r in rounds]
    assert per_candidate == sorted(per_candidate) and per_candidate[-1] > per_candidate[0]
    # Later rounds sit inside the previous round's range, around the root.
    assert rounds[-1].values.min() > rounds[0].values.min()
    assert rounds[-1].values.max() < rounds[0].values.max()


@pytest.mark.parametrize("n_searches, tolerance", [
    pytest.param(150, 0.05, id="reduced"),
    pytest.param(1000, 0.02, id="full", marks=pytest.mark.slow),
])
def test_reported_interval_covers_the_true_root(n_searches, tolerance):
    """Coverage of the 95% interval at the search's end, stopping rule included, within 3
    Monte Carlo SEs of 0.95."""
    hits = 0
    for seed in range(n_searches):
        step, _ = run_search(settings(tolerance=tolerance), seed=10_000 + seed)
        assert step.action == "converged"
        hits += step.root.lower <= TRUE_ROOT <= step.root.upper
    assert abs(hits / n_searches - 0.95) <= 3 * np.sqrt(0.95 * 0.05 / n_searches)


def test_guess_far_off_still_finds_the_root():
    for guess in (10.0, 3000.0):
        step, _ = run_search(settings(tolerance=0.05), seed=2, guess=guess)
        assert step.action == "converged"
        assert step.root.lower <= TRUE_ROOT * 1.1 and step.root.upper >= TRUE_ROOT * 0.9


def test_bound_below_the_root_is_reported_unreachable_not_as_a_root():
    step, rounds = run_search(settings(upper=120), seed=3)
    assert step.action == "unreachable"
    points = power_points(rounds)
    assert points.values[-1] == 120 and points.power[-1] < 0.8


def test_power_that_saturates_below_the_target_is_unreachable():
    def saturating(x):
        return 0.7 * ndtr(A + B * np.sqrt(x))
    step, rounds = run_search(settings(upper=2000), seed=5, power=saturating)
    assert step.action == "unreachable"
    assert power_points(rounds).values.max() == 2000


def test_target_met_at_the_lower_bound_is_said_so():
    step, _ = run_search(settings(lower=400), seed=6)
    assert step.action == "reached_at_lower"


def test_budget_spent_before_the_tolerance_is_said_so():
    step, rounds = run_search(settings(budget=2000, tolerance=0.005), seed=7)
    assert step.action == "budget_spent"
    assert sum(r.rejected.size for r in rounds) <= 2000
    assert step.root is not None and step.root.half_width > 0.005 * step.root.value


@pytest.mark.parametrize("field, value", [
    ("target_power", 1.0), ("target_power", 0.0), ("lower", 0.0), ("upper", 3.0),
    ("tolerance", 0.0), ("candidates", 1), ("budget", 10), ("transform", "cube"),
])
def test_settings_refuse_impossible_values(field, value):
    with pytest.raises(ValueError, match=field):
        settings(**{field: value})


def test_power_points_pool_rounds_by_value():
    rounds = [RoundResult([10, 20], [[True, False], [True, True]]),
              RoundResult([20, 30], [[False, True, True], [False, False, True]])]
    points = power_points(rounds)
    assert points.values.tolist() == [10, 20, 30]
    assert points.replicates.tolist() == [2, 5, 3]
    assert points.rejections.tolist() == [1, 4, 1]
    assert points.mcse[1] == pytest.approx(np.sqrt(0.8 * 0.2 / 5))


def test_wilson_interval_textbook_value():
    # Wilson (1927); e.g. Newcombe (1998) Stat Med 17:857, Table I: 81/263 -> 0.2553, 0.3662.
    lower, upper = wilson_interval(81, 263)
    assert lower == pytest.approx(0.2553, abs=1e-4) and upper == pytest.approx(0.3662, abs=1e-4)


def test_analytic_events_match_the_worked_numbers_and_lifelines():
    """Schoenfeld 246.8 and Freedman 252.0 events at HR 0.7, 80% power, 1:1, alpha 0.05
    (Schoenfeld 1983; Freedman 1982); Freedman's patients as lifelines computes them."""
    result = analytic_sample_size(0.7, 0.6, power=0.8, allocation=0.5, alpha=0.05)
    assert result.schoenfeld_events == pytest.approx(246.8, abs=0.05)
    assert result.freedman_events == pytest.approx(252.0, abs=0.05)
    assert result.schoenfeld_n == pytest.approx(result.schoenfeld_events / 0.6)
    for allocation in (0.5, 0.35, 2 / 3):
        ratio = allocation / (1 - allocation)
        result = analytic_sample_size(0.6, 0.45, power=0.9, allocation=allocation, alpha=0.05)
        n_exp, n_con = sample_size_necessary_under_cph(0.9, ratio, 0.45, 0.45, 0.6, alpha=0.05)
        assert n_exp + n_con == pytest.approx(result.freedman_n, abs=2.0)
    with pytest.raises(ValueError, match="event_probability"):
        analytic_sample_size(0.7, 0.0, power=0.8, allocation=0.5, alpha=0.05)
