"""Root finding for calibration: a bracketed Brent root of a monotone objective, and two
coupled parameters solved in turn."""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.optimize import brentq

from sim.errors import ScenarioError


def solve_monotone(
    objective: Callable[[float], float], guess: float, *, field: str, problem: str
) -> float:
    """Root of a monotone ``objective`` by brentq after expanding a bracket around ``guess``
    (steps 1, 2, 4, ... on each side); ScenarioError(field, problem) when none is found."""
    step = 1.0
    low, high = guess - step, guess + step
    value_low, value_high = objective(low), objective(high)
    while np.sign(value_low) == np.sign(value_high) and value_low != 0:
        if step > 64:
            raise ScenarioError(field, problem)
        step *= 2.0
        low, high = guess - step, guess + step
        value_low, value_high = objective(low), objective(high)
    if value_low == 0:
        return low
    return float(brentq(objective, low, high, xtol=1e-12, rtol=1e-13, maxiter=500))


#: Rounds of solving coupled parameters in turn, and the change (log scale) that ends them.
_MAX_ROUNDS = 100
_ROUND_TOLERANCE = 1e-9


def solve_in_turn(
    solve_first: Callable[[float], float],
    solve_second: Callable[[float], float],
    second: float,
    *,
    coupled: bool,
    field: str,
) -> tuple[float, float]:
    """Solve two parameters each given the other (block Gauss–Seidel): ``first =
    solve_first(second)``, ``second = solve_second(first)``, repeated while ``coupled`` until
    neither moves by more than :data:`_ROUND_TOLERANCE`; ScenarioError(field) when they do not
    settle."""
    first = solve_first(second)
    second = solve_second(first)
    if not coupled:
        return first, second
    for _ in range(_MAX_ROUNDS):
        new_first = solve_first(second)
        new_second = solve_second(new_first)
        if abs(new_first - first) <= _ROUND_TOLERANCE and abs(new_second - second) <= (
                _ROUND_TOLERANCE):
            return new_first, new_second
        first, second = new_first, new_second
    raise ScenarioError(field, f"the PFS and OS targets do not settle after {_MAX_ROUNDS} "
                               "rounds of calibration")


def log_ratio(value: float, target: float) -> float:
    """log(value / target), clipped to ±50 so infinite medians keep brentq finite."""
    with np.errstate(divide="ignore"):
        return float(np.clip(np.log(value / target), -50.0, 50.0))
