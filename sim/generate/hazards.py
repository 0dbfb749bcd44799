"""Unit-scale baseline hazards of one transition and the inversions that draw times from them.

A transition's hazard is λ g(t) times patient multipliers; ``g`` is its unit baseline
(exponential: 1; Weibull PH form: ν t^(ν-1); piecewise-constant: the relative rates between the
breaks) and ``G`` its integral, so H0(t) = λ G(t). Times are drawn by inverse transform
(Bender, Augustin & Blettner 2005, Stat Med 24:1713-1723): T = G^{-1}(y) with y = E e^{-η} / λ,
E standard exponential; a treatment effect that starts after a delay, or multipliers that
change at fixed times (the early window of :mod:`sim.generate.outcomes`), make the cumulative
hazard piecewise in time and it is inverted piece by piece.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from sim.scenario.model import Transition


def unit_cumulative_hazard(transition: Transition, time_months: np.ndarray) -> np.ndarray:
    """Unit-scale cumulative baseline hazard G(t), so that H0(t) = λ G(t).

    exponential: G(t) = t; Weibull (PH form): G(t) = t^ν; piecewise-constant with breaks
    b_1 < ... < b_k and relative rates r_0..r_k: G(t) = sum_j r_j |[b_j, b_{j+1}) ∩ [0, t)|
    with b_0 = 0 and b_{k+1} = ∞.

    Parameters
    ----------
    transition : Transition
    time_months : ndarray, any shape, months (>= 0)

    Returns
    -------
    ndarray, same shape as ``time_months``
    """
    time_months = np.asarray(time_months, dtype=float)
    if transition.baseline == "exponential":
        return time_months.copy()
    if transition.baseline == "weibull":
        return time_months**transition.shape
    starts, rates, cumulative = _piecewise_table(transition)
    piece = np.searchsorted(starts, time_months, side="right") - 1
    return cumulative[piece] + rates[piece] * (time_months - starts[piece])


def inverse_unit_cumulative_hazard(transition: Transition, value: np.ndarray) -> np.ndarray:
    """Inverse of :func:`unit_cumulative_hazard`: the time t with G(t) = ``value``.

    Piecewise-constant baselines are inverted by locating ``value`` among the cumulative hazards
    at the breaks (``searchsorted``) and solving linearly within the piece; a zero rate in the
    last piece gives ``inf`` beyond its cumulative hazard.
    """
    value = np.asarray(value, dtype=float)
    if transition.baseline == "exponential":
        return value.copy()
    if transition.baseline == "weibull":
        return value ** (1.0 / transition.shape)
    starts, rates, cumulative = _piecewise_table(transition)
    # side="left": a value exactly at a break's cumulative hazard belongs to the earlier piece,
    # which also skips zero-rate pieces.
    piece = np.maximum(np.searchsorted(cumulative, value, side="left") - 1, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return starts[piece] + (value - cumulative[piece]) / rates[piece]


def _piecewise_table(transition: Transition) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Piece starts (0, b_1, ..., b_k), relative rates and the cumulative G at each start."""
    starts = np.concatenate([[0.0], np.asarray(transition.breaks, dtype=float)])
    rates = np.asarray(transition.relative_rates, dtype=float)
    cumulative = np.concatenate([[0.0], np.cumsum(rates[:-1] * np.diff(starts))])
    return starts, rates, cumulative


def same_baseline_shape(first: Transition, second: Transition) -> bool:
    """True where two transitions' unit baselines are proportional (then their ratio of hazards
    is constant in time): both exponential (or Weibull with shape 1), Weibull with the same
    shape, or piecewise with the same breaks and proportional relative rates."""

    def canonical(transition: Transition):
        if transition.baseline == "exponential" or (
            transition.baseline == "weibull" and transition.shape == 1.0
        ):
            return ("exponential",)
        if transition.baseline == "weibull":
            return ("weibull", float(transition.shape))
        rates = np.asarray(transition.relative_rates, dtype=float)
        if len(transition.breaks) == 0 or np.all(rates == rates[0]):
            return ("exponential",)
        return ("piecewise", tuple(transition.breaks), tuple(rates / rates[0]))

    return canonical(first) == canonical(second)


def invert_delayed_effect(
    transition: Transition,
    unit_exposure: np.ndarray,
    log_hr: np.ndarray | float,
    delay_months: float,
    *,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """Time at which the unit-scale cumulative hazard with a delayed multiplier reaches
    ``unit_exposure``.

    The hazard is g(t) before ``delay_months`` and g(t) exp(log_hr) after, so its cumulative
    hazard is G(min(t, d)) + exp(log_hr) (G(t) - G(d))_+ and its inverse at y is G^{-1}(y) for
    y <= G(d) and G^{-1}(G(d) + (y - G(d)) exp(-log_hr)) otherwise (d = 0: G^{-1}(y e^{-β})).

    Parameters
    ----------
    transition : Transition
    unit_exposure : ndarray, shape (...)
        E exp(-η) / λ with E standard exponential.
    log_hr : float or ndarray
        Log-HR after the delay (0 for untreated patients): broadcastable to ``unit_exposure``,
        or with ``rows`` a table of shape (row,).
    delay_months : float
    rows : ndarray of int, shape of ``unit_exposure``, optional
        Patient i's log-HR is ``log_hr[rows[i]]`` (e.g. the arm): exp is then taken once per
        row, not per patient (the same doubles).

    Returns
    -------
    ndarray, shape of ``unit_exposure``, months
    """
    unit_exposure = np.asarray(unit_exposure, dtype=float)
    at_delay = float(unit_cumulative_hazard(transition, np.asarray(delay_months)))
    factors = np.exp(-np.asarray(log_hr, dtype=float))
    if rows is None:
        factors = np.broadcast_to(factors, unit_exposure.shape).ravel()
        rows = np.arange(unit_exposure.size)
    value = np.empty(unit_exposure.shape)
    _delayed_values(unit_exposure.ravel(), at_delay, factors.ravel(),
                    np.asarray(rows, dtype=np.intp).ravel(), value.reshape(-1))
    return inverse_unit_cumulative_hazard(transition, value)


def invert_piecewise_multiplier(
    transition: Transition,
    unit_exposure: np.ndarray,
    breaks: tuple[float, ...],
    log_multipliers: np.ndarray,
    *,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """Time at which the unit-scale cumulative hazard with piecewise-constant multipliers
    reaches ``unit_exposure``.

    The hazard is g(t) exp(m_j) on [b_j, b_{j+1}) (b_0 = 0, b_{k+1} = ∞), so its cumulative
    hazard at the start of piece j is C_j = sum_{i<j} exp(m_i) (G(b_{i+1}) - G(b_i)) and the
    inverse at y in piece j (C_j < y <= C_{j+1}) is G^{-1}(G(b_j) + (y - C_j) exp(-m_j)).

    Parameters
    ----------
    transition : Transition
    unit_exposure : ndarray, shape (...)
        E exp(-η) / λ with E standard exponential.
    breaks : tuple of float
        Increasing positive months b_1 < ... < b_k.
    log_multipliers : ndarray, shape (..., k + 1)
        m_0..m_k per patient; with ``rows`` a table of shape (row, k + 1).
    rows : ndarray of int, shape of ``unit_exposure``, optional
        Patient i's multipliers are ``log_multipliers[rows[i]]`` (e.g. the arm): exp and the
        C_j are then computed once per row, not per patient (the same doubles).

    Returns
    -------
    ndarray, shape of ``unit_exposure``, months
    """
    unit_exposure = np.asarray(unit_exposure, dtype=float)
    edges = np.concatenate([[0.0], unit_cumulative_hazard(transition, np.asarray(breaks,
                                                                                 dtype=float))])
    multipliers = np.exp(np.asarray(log_multipliers, dtype=float))
    multipliers = multipliers.reshape(-1, multipliers.shape[-1])
    if rows is None:
        rows = np.arange(unit_exposure.size)
    value = np.empty(unit_exposure.shape)
    _piecewise_values(unit_exposure.ravel(), edges, multipliers,
                      np.asarray(rows, dtype=np.intp).ravel(), value.reshape(-1))
    return inverse_unit_cumulative_hazard(transition, value)


@njit(cache=True)
def _delayed_values(unit_exposure, at_delay, factors, rows, out):
    """``out[i]`` = y if y <= G(d) else G(d) + (y - G(d)) f, y = ``unit_exposure[i]``,
    f = ``factors[rows[i]]`` (= exp(-β)): the unit-scale value :func:`invert_delayed_effect`
    inverts, in numpy's order of operations (1-D arrays)."""
    for i in range(unit_exposure.size):
        value = unit_exposure[i]
        if value <= at_delay:
            out[i] = value
        else:
            out[i] = at_delay + (value - at_delay) * factors[rows[i]]


@njit(cache=True)
def _piecewise_values(unit_exposure, edges, multipliers, rows, out):
    """``out[i]`` = G(b_j) + (y - C_j) / exp(m_j) for y = ``unit_exposure[i]`` in piece j of
    row ``rows[i]`` of ``multipliers`` (exp(m), shape (row, k + 1)); ``edges`` = G(b_0..b_k).

    C_j is the running sum of exp(m_i) (G(b_{i+1}) - G(b_i)) (numpy's cumsum, in order) and j
    counts the C_1..C_k below y (as numpy's sum of the comparisons; a NaN y is in piece 0)."""
    n_rows, width = multipliers.shape
    starts = np.zeros((n_rows, width))
    for row in range(n_rows):
        for j in range(width - 1):
            piece = multipliers[row, j] * (edges[j + 1] - edges[j])
            starts[row, j + 1] = piece if j == 0 else starts[row, j] + piece
    for i in range(unit_exposure.size):
        row, value = rows[i], unit_exposure[i]
        piece = 0
        for j in range(1, width):
            if value > starts[row, j]:
                piece += 1
        out[i] = edges[piece] + (value - starts[row, piece]) / multipliers[row, piece]
