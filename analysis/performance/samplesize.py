"""Sample size by simulation: the rules of a stochastic root search over a power curve, and the
analytic companions (Schoenfeld, Freedman) printed beside its answer.

A search evaluates, round after round, several candidate values x of one design quantity (the
patients n, or the follow-up or the accrual rate at a fixed n), each with R replicate studies
that share their random numbers across the round's candidates; every replicate's outcome is
reject / not reject. :func:`next_step` is a pure function of the finished rounds: it fits the
probit curve of :mod:`analysis.performance.power_curve` to all outcomes so far, solves it for
the target power with Fieller's interval, and either stops or says which candidates to evaluate
next with how many replicates. Because it depends on nothing but the finished rounds, a search
that is killed and restarted proposes exactly the same rounds again.

The rules, in the order they are checked:

1. **Converged**: the root lies in ``[lower, upper]`` and both confidence limits are within
   ``tolerance * x*`` of it (default: the 95% CI narrower than ±2% of n).
2. **Unreachable**: the target is not met at the upper bound — the Wilson upper confidence limit
   of the power observed at ``upper`` is below the target, or the root's whole interval lies
   above ``upper``. The bound is never returned as if it were a root.
3. **Reached at the lower bound**: likewise, the power at ``lower`` is above the target.
4. **Budget spent**: the replicate budget or the round limit is used up; the current root and
   its (too wide) interval are reported as such.
5. Otherwise **evaluate** the next round. The first round spreads the candidates evenly in u
   over ``[guess / 2, 3 guess]`` (the guess is Schoenfeld's n for the design; a PSM design needs
   more because matching discards patients). Later rounds place them evenly in u over
   ``[x* / f, x* f]``, with f the ratio of the root's confidence limits to x* (between
   ``1 + 1.5 tolerance`` and 2), never further than four times beyond the values tried so far
   and always within the bounds (the bound itself is a candidate when the window reaches it).
   Without a usable curve (all rates below or above the target, or separation) the window moves
   up or down by up to a factor of four, or fills the gap where the observed rates cross the
   target. Replicates per candidate never decrease from one round to the next; the round's total
   is what shrinks the interval to the tolerance if its width falls as 1/sqrt(replicates),
   times 1.2, kept between a quarter of and four times the replicates spent so far.

References
----------
Wilson EB (1927). Probable inference, the law of succession, and statistical inference. JASA
22:209-212. Schoenfeld DA (1983). Biometrics 39:499-503. Freedman LS (1982). Stat Med
1:121-129. Chalmers RP (2024). Psychological Methods (SimSolve: a stochastic root-solving
approach). Finney DJ (1971). Probit Analysis, 3rd ed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Sequence

import numpy as np
from scipy.special import ndtri

from analysis.performance.analytic_power import freedman_events, schoenfeld_events
from analysis.performance.power_curve import (
    TRANSFORMS,
    PowerCurve,
    PowerRoot,
    fit_power_curve,
    solve_power,
)

__all__ = [
    "SearchSettings", "RoundResult", "PowerPoints", "SearchStep", "power_points",
    "pooled_observations", "next_step", "AnalyticSampleSize", "analytic_sample_size",
    "wilson_interval",
]

Action = Literal["evaluate", "converged", "unreachable", "reached_at_lower", "budget_spent"]

#: Limits of the window factor f around the current root (see the module docstring).
_MAX_WINDOW = 2.0
#: How far beyond the values tried so far a round may go (a factor on x).
_MAX_EXTRAPOLATION = 4.0


@dataclass(frozen=True)
class SearchSettings:
    """How a search runs.

    Attributes
    ----------
    target_power : float in (0, 1)
    lower, upper : float, > 0
        Bounds of the searched value (e.g. 4 and ``--max-n`` patients).
    integer : bool
        Candidates are whole numbers (patients).
    transform, link : str
        Of the power curve (:data:`analysis.performance.power_curve.TRANSFORMS`, ``LINKS``).
    tolerance : float in (0, 0.5)
        Stop when both confidence limits are within ``tolerance * x*`` of the root.
    level : float in (0, 1)
        Confidence level of the root's interval and of the bound checks.
    candidates : int >= 2
        Candidates per round.
    first_replicates : int >= 1
        Replicates per candidate in the first round.
    budget : int
        Replicates over all rounds (candidates × replicates summed).
    max_rounds : int
    """

    target_power: float
    lower: float
    upper: float
    integer: bool = True
    transform: str = "sqrt"
    link: str = "probit"
    tolerance: float = 0.02
    level: float = 0.95
    candidates: int = 8
    first_replicates: int = 100
    budget: int = 200_000
    max_rounds: int = 12

    def __post_init__(self):
        checks = [
            ("target_power", 0.0 < self.target_power < 1.0, "must lie in (0, 1)"),
            ("lower", self.lower > 0.0, "must be positive"),
            ("upper", self.upper > self.lower, "must exceed lower"),
            ("tolerance", 0.0 < self.tolerance < 0.5, "must lie in (0, 0.5)"),
            ("level", 0.0 < self.level < 1.0, "must lie in (0, 1)"),
            ("candidates", self.candidates >= 2, "must be at least 2"),
            ("first_replicates", self.first_replicates >= 1, "must be at least 1"),
            ("budget", self.budget >= self.candidates * self.first_replicates,
             "must cover the first round (candidates × first_replicates)"),
            ("max_rounds", self.max_rounds >= 1, "must be at least 1"),
            ("transform", self.transform in TRANSFORMS, f"not one of {', '.join(TRANSFORMS)}"),
        ]
        for name, ok, message in checks:
            if not ok:
                raise ValueError(f"{name} {getattr(self, name)!r}: {message}")


@dataclass(frozen=True)
class RoundResult:
    """The outcomes of one finished round.

    Attributes
    ----------
    values : ndarray of float, shape (candidate,)
        The candidates.
    rejected : ndarray of bool, shape (candidate, replicate)
        Column r holds replicate r at every candidate: they share random numbers (one cluster).
    """

    values: np.ndarray
    rejected: np.ndarray

    def __post_init__(self):
        values = np.asarray(self.values, dtype=float)
        rejected = np.asarray(self.rejected, dtype=bool)
        if rejected.ndim != 2 or rejected.shape[0] != values.shape[0]:
            raise ValueError(f"rejected {rejected.shape}: must be (candidate, replicate) with "
                             f"{values.shape[0]} candidates")
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "rejected", rejected)


@dataclass(frozen=True)
class PowerPoints:
    """Observed power at every distinct value evaluated, pooled over rounds.

    Attributes
    ----------
    values : ndarray of float, shape (point,), increasing
    replicates, rejections : ndarray of int64, shape (point,)
    power, mcse : ndarray of float, shape (point,)
        ``rejections / replicates`` and ``sqrt(P (1 - P) / replicates)`` (Morris et al. 2019).
    """

    values: np.ndarray
    replicates: np.ndarray
    rejections: np.ndarray
    power: np.ndarray
    mcse: np.ndarray


@dataclass(frozen=True)
class SearchStep:
    """What :func:`next_step` decided.

    Attributes
    ----------
    action : ``evaluate`` | ``converged`` | ``unreachable`` | ``reached_at_lower`` |
        ``budget_spent``.
    values : ndarray of float, shape (candidate,)
        Candidates of the next round (empty unless ``evaluate``).
    replicates : int
        Replicates per candidate of the next round (0 unless ``evaluate``).
    curve : PowerCurve or None
        The curve fitted to every round so far (None before the first round).
    root : PowerRoot or None
    reason : str
        One sentence for the user.
    """

    action: Action
    values: np.ndarray = field(default_factory=lambda: np.zeros(0))
    replicates: int = 0
    curve: PowerCurve | None = None
    root: PowerRoot | None = None
    reason: str = ""


def pooled_observations(rounds: Sequence[RoundResult]):
    """Every replicate outcome of every round, flat, with its cluster of shared random numbers.

    Returns
    -------
    value : ndarray of float, shape (observation,)
    rejected : ndarray of bool, shape (observation,)
    cluster : ndarray of int64, shape (observation,)
        One label per (round, replicate).
    """
    values, rejected, clusters, offset = [], [], [], 0
    for result in rounds:
        n_candidates, n_replicates = result.rejected.shape
        values.append(np.repeat(result.values, n_replicates))
        rejected.append(result.rejected.ravel())
        clusters.append(np.tile(np.arange(n_replicates), n_candidates) + offset)
        offset += n_replicates
    if not values:
        return np.zeros(0), np.zeros(0, bool), np.zeros(0, np.int64)
    return np.concatenate(values), np.concatenate(rejected), np.concatenate(clusters)


def power_points(rounds: Sequence[RoundResult]) -> PowerPoints:
    """Observed power and its Monte Carlo SE at every distinct value of ``rounds``."""
    value, rejected, _ = pooled_observations(rounds)
    levels, index = np.unique(value, return_inverse=True)
    replicates = np.bincount(index, minlength=levels.size).astype(np.int64)
    rejections = np.bincount(index, weights=rejected, minlength=levels.size).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        power = rejections / replicates
        mcse = np.sqrt(power * (1.0 - power) / replicates)
    return PowerPoints(levels, replicates, rejections, power, mcse)


def wilson_interval(successes, trials, *, level: float = 0.95):
    """Wilson's score interval of a binomial proportion (arrays broadcast).

    Returns
    -------
    lower, upper : ndarray of float
    """
    successes, trials = np.asarray(successes, float), np.asarray(trials, float)
    z = ndtri(0.5 + level / 2.0)
    p = successes / trials
    centre = (p + z**2 / (2 * trials)) / (1 + z**2 / trials)
    half = z * np.sqrt(p * (1 - p) / trials + z**2 / (4 * trials**2)) / (1 + z**2 / trials)
    return centre - half, centre + half


def _spread(low: float, high: float, settings: SearchSettings) -> np.ndarray:
    """``settings.candidates`` values evenly spaced in u over [low, high] (whole numbers when
    ``integer``; duplicates after rounding dropped)."""
    forward, inverse = TRANSFORMS[settings.transform]
    if high <= low:
        values = np.array([low])
    else:
        values = inverse(np.linspace(forward(low), forward(high), settings.candidates))
        values[0], values[-1] = low, high
    if settings.integer:
        values = np.round(values)
    values = np.clip(values, settings.lower, settings.upper)
    return np.unique(values)


def _first_round(guess: float, settings: SearchSettings) -> SearchStep:
    if not (np.isfinite(guess) and guess > 0):
        guess = math.sqrt(settings.lower * settings.upper)
    low = min(max(guess / 2.0, settings.lower), settings.upper)
    high = max(min(guess * 3.0, settings.upper), low)
    values = _spread(low, high, settings)
    return SearchStep("evaluate", values, settings.first_replicates,
                      reason=f"first round around the guess {guess:.4g}")


def _window(points: PowerPoints, root: PowerRoot | None, settings: SearchSettings):
    """[low, high] of the next round's candidates (see the module docstring)."""
    tried_low, tried_high = float(points.values[0]), float(points.values[-1])
    guard_low = max(settings.lower, tried_low / _MAX_EXTRAPOLATION)
    guard_high = min(settings.upper, tried_high * _MAX_EXTRAPOLATION)
    target = settings.target_power
    if root is None or not np.isfinite(root.value) or root.value <= 0:
        if np.all(points.power < target):
            return min(tried_high, guard_high), guard_high
        if np.all(points.power >= target):
            return guard_low, max(tried_low, guard_low)
        # The first crossing of the target by the observed rates, in increasing x.
        first_above = int(np.argmax(points.power >= target))
        low = float(points.values[first_above - 1]) if first_above > 0 else guard_low
        return low, float(points.values[first_above])
    factor = _MAX_WINDOW
    if root.bounded:
        ratios = [root.value / root.lower if root.lower > 0 else np.inf,
                  root.upper / root.value]
        factor = float(np.clip(max(ratios), 1.0 + 1.5 * settings.tolerance, _MAX_WINDOW))
    low, high = root.value / factor, root.value * factor
    if high < guard_low:
        return guard_low, max(guard_low, min(tried_low, guard_high))
    if low > guard_high:
        return min(max(tried_high, guard_low), guard_high), guard_high
    return max(low, guard_low), min(high, guard_high)


def _replicates(rounds: Sequence[RoundResult], root: PowerRoot | None, n_values: int,
                remaining: int, settings: SearchSettings) -> int:
    spent = sum(r.rejected.size for r in rounds)
    if root is not None and root.bounded and np.isfinite(root.value) and root.value > 0:
        ratio = root.half_width / (settings.tolerance * root.value)
        needed = 1.2 * spent * max(ratio**2 - 1.0, 0.0)
    else:
        needed = float(spent)
    floor = max(0.25 * spent, settings.candidates * settings.first_replicates)
    total = min(float(np.clip(needed, floor, 4.0 * spent)), float(remaining))
    per_candidate = max(int(math.ceil(total / n_values)), rounds[-1].rejected.shape[1])
    return max(min(per_candidate, remaining // n_values), 1)


def next_step(rounds: Sequence[RoundResult], settings: SearchSettings, *,
              guess: float) -> SearchStep:
    """Decide the next step of a search from its finished rounds (see the module docstring).

    Parameters
    ----------
    rounds : sequence of RoundResult
        Finished rounds, in order.
    settings : SearchSettings
    guess : float
        Where the first round is centred (Schoenfeld's n for the design); used only when
        ``rounds`` is empty.

    Returns
    -------
    SearchStep
    """
    if not rounds:
        return _first_round(guess, settings)
    value, rejected, cluster = pooled_observations(rounds)
    points = power_points(rounds)
    curve = fit_power_curve(value, rejected, cluster, transform=settings.transform,
                            link=settings.link)
    root = solve_power(curve, settings.target_power, level=settings.level) if curve.ok else None
    target, tolerance = settings.target_power, settings.tolerance
    if (root is not None and root.bounded and settings.lower <= root.value <= settings.upper
            and root.half_width <= tolerance * root.value):
        return SearchStep("converged", curve=curve, root=root, reason=(
            f"the {settings.level:.0%} interval of the root is within ±{tolerance:.1%} of it"))
    low_limit, high_limit = wilson_interval(points.rejections, points.replicates,
                                            level=settings.level)
    at_upper = points.values == settings.upper
    if (np.any(at_upper) and high_limit[at_upper][0] < target) or (
            root is not None and root.bounded and root.lower > settings.upper):
        return SearchStep("unreachable", curve=curve, root=root, reason=(
            f"power stays below {target:g} up to the bound {settings.upper:g}"))
    at_lower = points.values == settings.lower
    if (np.any(at_lower) and low_limit[at_lower][0] > target) or (
            root is not None and root.bounded and root.upper < settings.lower):
        return SearchStep("reached_at_lower", curve=curve, root=root, reason=(
            f"power exceeds {target:g} already at the lower bound {settings.lower:g}"))
    spent = int(rejected.size)
    remaining = settings.budget - spent
    if len(rounds) >= settings.max_rounds or remaining < settings.candidates:
        return SearchStep("budget_spent", curve=curve, root=root, reason=(
            f"budget spent ({spent} replicates in {len(rounds)} rounds) before the interval "
            f"reached ±{tolerance:.1%}"))
    low, high = _window(points, root, settings)
    values = _spread(low, high, settings)
    replicates = _replicates(rounds, root, values.size, remaining, settings)
    return SearchStep("evaluate", values, replicates, curve, root,
                      reason=f"next round over [{values[0]:.4g}, {values[-1]:.4g}]")


@dataclass(frozen=True)
class AnalyticSampleSize:
    """Events and patients the formulas ask for.

    Attributes
    ----------
    hazard_ratio, event_probability, allocation, alpha, power : float
        The inputs (allocation = share treated; event probability per patient).
    schoenfeld_events, freedman_events : float
        Unrounded events (Schoenfeld 1983; Freedman 1982).
    schoenfeld_n, freedman_n : float
        Unrounded patients, events / event probability (inf when the HR is 1).
    """

    hazard_ratio: float
    event_probability: float
    allocation: float
    alpha: float
    power: float
    schoenfeld_events: float
    schoenfeld_n: float
    freedman_events: float
    freedman_n: float


def analytic_sample_size(hazard_ratio: float, event_probability: float, *, power: float,
                         allocation: float, alpha: float) -> AnalyticSampleSize:
    """Schoenfeld's and Freedman's events, and patients ``n = d / P(event)``.

    Parameters
    ----------
    hazard_ratio : float, > 0
        The design's true marginal HR.
    event_probability : float in (0, 1]
        Probability that a patient's event is observed under the design's accrual and
        censoring (both arms together).
    power, allocation, alpha : float in (0, 1)

    Returns
    -------
    AnalyticSampleSize

    References
    ----------
    Schoenfeld (1983) Biometrics 39:499-503; Freedman (1982) Stat Med 1:121-129.
    """
    if not 0.0 < event_probability <= 1.0:
        raise ValueError(f"event_probability {event_probability!r}: must lie in (0, 1]")
    d_s = float(schoenfeld_events(hazard_ratio, power=power, allocation=allocation, alpha=alpha))
    ratio = allocation / (1.0 - allocation)
    d_f = float(freedman_events(hazard_ratio, power=power, ratio=ratio, alpha=alpha))
    return AnalyticSampleSize(float(hazard_ratio), float(event_probability), float(allocation),
                              float(alpha), float(power), d_s, d_s / event_probability,
                              d_f, d_f / event_probability)
