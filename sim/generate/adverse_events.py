"""Adverse events: each patient's maximum CTCAE grade (0-4) per AE, per arm.

Papers report, per AE and arm, the share with any grade and with grade 3-4. For one AE of a
patient in arm a, with p_any = P(any grade), p34 = P(grade 3-4) <= p_any,
s2 = ``grade2_share`` (share of grade 2 among grade 1-2) and s4 = ``grade4_share`` (share of
grade 4 among grade 3-4), the maximum grade G has

    P(G = 4) = p34 s4,            P(G = 3) = p34 (1 - s4),
    P(G = 2) = (p_any - p34) s2,  P(G = 1) = (p_any - p34) (1 - s2),  P(G = 0) = 1 - p_any,

so grade 3-4 is nested in any grade (P(G >= 3 | G >= 1) = p34 / p_any). G is drawn by
inverse transform from one uniform U_j per patient and AE (a small U_j means a severe AE).

**Dependence between AE types** (``[adverse_event_dependence]``). Independent AE types make
"any AE" nearly certain when there are many types (liu2021: 1 - prod(1 - p_j) = 99.0% and
96.4% against the printed 94.3% and 90.8%), while in real patients AEs cluster: the frail get
several. A shared patient-level frailty Z ~ N(0, 1) makes them cluster: for arm a with latent
correlation rho_a,

    U_j = Phi(sqrt(rho_a) Z + sqrt(1 - rho_a) e_j),   e_j ~ N(0, 1) independent,

a one-factor Gaussian copula (a probit model per AE type with a shared random intercept: AE j
of any grade iff sqrt(rho) Z + sqrt(1 - rho) e_j < Phi^-1(p_j)). Each U_j is still Uniform(0, 1),
so every per-type rate (any grade and grade 3-4, and the grade split) stays exactly on its
target, while

    P(any AE) = 1 - E_Z prod_j [1 - Phi((Phi^-1(p_j) - sqrt(rho) Z) / sqrt(1 - rho))]

falls from the independent value (rho = 0) towards max_j p_j (rho -> 1). Given an arm's
published share with any AE, rho_a is the root of that equation (quadrature over Z, exact to
1e-12, no random numbers); or rho_a is given directly. An arm without either keeps independent types and draws exactly the uniforms it drew
before this model existed. The same rho also lowers P(any grade 3-4 AE), which is not
calibrated (one parameter per arm) and stays a check. The copula is the usual latent-variable
model for correlated binary outcomes (Emrich & Piedmonte 1991, Am Stat 45:302-304; a shared
frailty per patient as in multivariate probit models, Ashford & Sowden 1970, Biometrics
26:535-546).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from numba import njit
from scipy.optimize import brentq
from scipy.special import ndtr, ndtri

from sim.errors import ScenarioError
from sim.generate.memo import memo_by_identity
from sim.generate.normal_draws import standard_normal
from sim.generate.scipy_kernels import ndtr as scipy_ndtr

if TYPE_CHECKING:
    from sim.scenario.model import Scenario

#: Largest latent correlation (at 1 every type would follow one uniform per patient).
MAX_CORRELATION = 0.99

# scipy's double ndtr, callable from the compiled grade kernel.
_ndtr = scipy_ndtr


def _frailty_nodes() -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of E over Z ~ N(0, 1): composite Gauss-Legendre, 80 panels of 10
    nodes on [-10, 10] (the mass beyond is 1.5e-23). Gauss-Hermite converges slowly here, since
    the integrand is nearly a step when rho is close to 1 (80 Hermite nodes err by 1e-4)."""
    x, w = np.polynomial.legendre.leggauss(10)
    edges = np.linspace(-10.0, 10.0, 81)
    half, middle = np.diff(edges) / 2.0, (edges[:-1] + edges[1:]) / 2.0
    nodes = (middle[:, None] + half[:, None] * x[None, :]).ravel()
    weights = (half[:, None] * w[None, :]).ravel() * np.exp(-0.5 * nodes**2) / np.sqrt(2.0 * np.pi)
    return nodes, weights


_NODES, _WEIGHTS = _frailty_nodes()


def any_event_probability(probabilities: np.ndarray, correlation: float) -> float:
    """P(at least one of the AE types) under the shared frailty (formula: module docstring).

    Parameters
    ----------
    probabilities : ndarray, shape (adverse_event,)
        P(AE j) per type, each in [0, 1].
    correlation : float
        Latent correlation rho in [0, MAX_CORRELATION].
    """
    p = np.asarray(probabilities, dtype=float)
    if correlation == 0.0:
        return float(1.0 - np.prod(1.0 - p))
    threshold = ndtri(p)[None, :]  # -inf for p = 0, +inf for p = 1
    shifted = (threshold - np.sqrt(correlation) * _NODES[:, None]) / np.sqrt(1.0 - correlation)
    none_given_z = np.prod(1.0 - ndtr(shifted), axis=1)
    return float(1.0 - _WEIGHTS @ none_given_z)


def solve_correlation(probabilities: np.ndarray, target: float, *, field: str) -> float:
    """The latent correlation rho with :func:`any_event_probability` = ``target``.

    Raises
    ------
    ScenarioError
        ``field``: the target is not between the comonotone value max_j p_j (rho -> 1) and the
        independent value 1 - prod(1 - p_j) (rho = 0), the only values a positive correlation
        can give.
    """
    independent = any_event_probability(probabilities, 0.0)
    strongest = any_event_probability(probabilities, MAX_CORRELATION)
    if np.isclose(target, independent, rtol=0.0, atol=1e-12):
        return 0.0
    if not strongest <= target <= independent:
        raise ScenarioError(field, (
            f"{target:.4g} of patients with any AE cannot be reached: independent AE types give "
            f"{independent:.4g} and the most clustered ({MAX_CORRELATION:g}) {strongest:.4g}; a shared "
            "frailty only lowers the share, so give a value in that range (or leave the arm out "
            "for independent types)"))
    return float(brentq(lambda rho: any_event_probability(probabilities, rho) - target, 0.0, MAX_CORRELATION,
                        xtol=1e-12, rtol=1e-12))


def frailty_correlations(scenario: "Scenario") -> dict[str, float]:
    """The latent correlation of each arm (0 = independent AE types): given, or calibrated so
    that P(any AE) is the arm's published share (``[adverse_event_dependence]``)."""
    dependence = scenario.adverse_event_dependence
    correlations = {arm.name: 0.0 for arm in scenario.arms}
    if dependence is None:
        return correlations
    if not scenario.adverse_events:
        raise ScenarioError("adverse_event_dependence", "given without [adverse_events.<name>] tables; "
                                                        "remove it or add the AEs it makes cluster")
    correlations.update({arm: float(rho) for arm, rho in dependence.correlation.items()})
    for arm, target in dependence.any_grade.items():
        rates = tuple(float(e.any_grade[arm]) for e in scenario.adverse_events)
        key = "any" if "any" in dependence.target.get(arm, {}) else "any_proportion"
        correlations[arm] = _solved(rates, float(target), f"adverse_event_dependence.{arm}.{key}")
    return correlations


@lru_cache(maxsize=256)
def _solved(rates: tuple[float, ...], target: float, field: str) -> float:
    return solve_correlation(np.array(rates), target, field=field)


def draw_adverse_events(
    scenario: "Scenario", treated: np.ndarray, *, rng: np.random.Generator
) -> np.ndarray:
    """Draw every patient's maximum grade of every adverse event of the scenario.

    Parameters
    ----------
    scenario : Scenario
    treated : ndarray of bool, shape (replicate, patient)
    rng : numpy.random.Generator
        One uniform per patient and AE when both arms' types are independent; otherwise one
        normal per patient (the frailty Z) and one per patient and AE (module docstring).

    Returns
    -------
    ndarray of int8, shape (replicate, patient, adverse_event)
        Maximum CTCAE grade 0-4, AEs in scenario order (``ae_names``); shape (B, N, 0) when
        the scenario has no AEs.
    """
    treated = np.asarray(treated, dtype=bool)
    plan = _grade_plan(scenario)
    grade = np.empty(treated.shape + (plan.n_events,), dtype=np.int8)
    if plan.loadings is None:
        uniform = rng.random(treated.shape + (plan.n_events,))
        _uniform_grades(uniform, treated, plan.thresholds, grade)
    else:
        # rng.standard_normal, compiled: the frailty Z of every patient, then every patient's
        # own e_j, in one call (the stream of two calls).
        normals = standard_normal(rng, (treated.size * (1 + plan.n_events),))
        frailty = normals[:treated.size].reshape(treated.shape)
        own = normals[treated.size:].reshape(grade.shape)
        _frailty_grades(frailty, own, treated, plan.loadings, plan.thresholds, plan.sure_below,
                        plan.sure_above, grade)
    return grade


@dataclass(frozen=True)
class _GradePlan:
    """What :func:`draw_adverse_events` derives from a scenario alone (:func:`_grade_plan`).

    Attributes
    ----------
    n_events : int
    thresholds : ndarray, shape (arm, adverse_event, 4)
        :func:`_grade_thresholds`, row 0 the control arm, 1 the treated arm.
    loadings : ndarray, shape (arm, 2), or None
        (sqrt(rho), sqrt(1 - rho)) per arm; None when both arms' types are independent.
    sure_below, sure_above : ndarray, shape of ``thresholds``, or None
        :func:`_latent_bounds` of the thresholds (None when independent).
    """

    n_events: int
    thresholds: np.ndarray
    loadings: np.ndarray | None
    sure_below: np.ndarray | None
    sure_above: np.ndarray | None


@memo_by_identity
def _grade_plan(scenario: "Scenario") -> _GradePlan:
    """The grade thresholds, frailty loadings and latent bounds of ``scenario``'s AEs, once
    per scenario object (:mod:`sim.generate.memo`)."""
    events = scenario.adverse_events
    arms = (scenario.control_arm.name, scenario.treated_arm.name)  # row 0 control, 1 treated
    correlations = frailty_correlations(scenario) if events else {}
    thresholds = _grade_thresholds(events, arms)
    thresholds.flags.writeable = False
    if not any(correlations.values()):
        return _GradePlan(len(events), thresholds, None, None, None)
    rho = np.array([correlations[name] for name in arms], dtype=float)
    loadings = np.stack([np.sqrt(rho), np.sqrt(1.0 - rho)], axis=-1)
    loadings.flags.writeable = False
    sure_below, sure_above = _latent_bounds(thresholds.tobytes(), thresholds.shape)
    return _GradePlan(len(events), thresholds, loadings, sure_below, sure_above)


def _grade_thresholds(events, arms: tuple[str, str]) -> np.ndarray:
    """Upper bounds of U for grade >= 1, 2, 3, 4 per arm and AE, shape (arm, adverse_event, 4)
    (rows ``arms``): p_any, p34 + (p_any - p34) s2, p34 and p34 s4 (module docstring), each
    the same double as the per-patient arrays these were once computed on."""
    thresholds = np.empty((len(arms), len(events), 4))
    grade2_share = np.array([e.grade2_share for e in events], dtype=float)
    grade4_share = np.array([e.grade4_share for e in events], dtype=float)
    for row, name in enumerate(arms):
        p_any = np.array([e.any_grade[name] for e in events], dtype=float)
        p_high = np.array([e.grade34[name] for e in events], dtype=float)
        thresholds[row, :, 0] = p_any
        thresholds[row, :, 1] = p_high + (p_any - p_high) * grade2_share
        thresholds[row, :, 2] = p_high
        thresholds[row, :, 3] = p_high * grade4_share
    return thresholds


@njit(cache=True)
def _grade_of(uniform, bounds):
    """The largest g in 1..4 with ``uniform < bounds[g - 1]``, else 0: the grade the masked
    assignments ``grade[u < bound_g] = g`` (g = 1, 2, 3, 4 in turn, each overwriting) gave,
    whatever the bounds' order."""
    for level in range(3, -1, -1):
        if uniform < bounds[level]:
            return level + 1
    return 0


@njit(cache=True)
def _uniform_grades(uniform, treated, thresholds, grade):
    """Independent AE types: ``grade[b, i, j]`` from ``uniform[b, i, j]`` and the bounds of
    the patient's arm (``thresholds[treated[b, i]]``), in place."""
    n_replicates, n_patients, n_events = uniform.shape
    for b in range(n_replicates):
        for i in range(n_patients):
            arm = 1 if treated[b, i] else 0
            for j in range(n_events):
                grade[b, i, j] = _grade_of(uniform[b, i, j], thresholds[arm, j])


#: Relative error bound assumed of scipy's ``ndtr`` on doubles (cephes/xsf: a few 1e-16 in
#: the normal range; bounded 100-fold here). :func:`_latent_bounds` relies on it.
NDTR_RELATIVE_ERROR = 1e-14


@lru_cache(maxsize=64)
def _latent_bounds(thresholds_bytes: bytes, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Where Phi need not be evaluated: per bound t (shape of the thresholds), latent values
    ``sure_below`` and ``sure_above`` with x < sure_below => ndtr(x) < t and x >= sure_above
    => ndtr(x) >= t for scipy's computed ndtr, whatever x; NaN where no such value is used
    (every x there is decided by computing ndtr(x)).

    With e = :data:`NDTR_RELATIVE_ERROR` and Phi increasing, x < lo gives
    ndtr(x) <= (1 + e) Phi(lo) <= (1 + e) ndtr(lo) / (1 - e), so ``ndtr(lo) (1 + 4e) < t``
    suffices (the factor covers the rounding of the product too); likewise
    ``ndtr(hi) (1 - 4e) >= t`` for hi. Starting from ndtri(t) -/+ 1e-9 (1 + |ndtri(t)|), the
    distance is doubled until the condition holds (at most 60 times; near t = 1, where ndtr's
    doubles are 1.1e-16 apart, the upper one may never hold: NaN). t = 0 is never exceeded
    (ndtr >= 0: sure_above = -inf); t > 1 always is (sure_below = +inf); 0 < t < 1e-290,
    where ndtr's results are subnormal, is always computed."""
    t = np.frombuffer(thresholds_bytes, dtype=float).reshape(shape)
    below, above = np.full(shape, np.nan), np.full(shape, np.nan)
    interior = (t >= 1e-290) & (t <= 1.0)
    centre = np.where(t < 1.0, ndtri(np.where(interior & (t < 1.0), t, 0.5)), 8.0)  # Phi(8) = 1 - 6e-16
    step = 1e-9 * (1.0 + np.abs(centre))
    margin = 4.0 * NDTR_RELATIVE_ERROR
    for _ in range(60):
        lo, hi = centre - step, centre + step
        take_lo = interior & np.isnan(below) & (ndtr(lo) * (1.0 + margin) < t)
        take_hi = interior & (t < 1.0) & np.isnan(above) & (ndtr(hi) * (1.0 - margin) >= t)
        below[take_lo], above[take_hi] = lo[take_lo], hi[take_hi]
        step = 2.0 * step
    below[t > 1.0] = np.inf
    above[t == 0.0] = -np.inf
    below.flags.writeable = above.flags.writeable = False
    return below, above


@njit(cache=True)
def _frailty_grades(frailty, own, treated, loadings, thresholds, sure_below, sure_above, grade):
    """Shared frailty: U = Phi(sqrt(rho) Z + sqrt(1 - rho) e) per patient and AE, then the
    grade as :func:`_uniform_grades`, in place, without the (B, N, AE) temporaries.
    ``loadings[arm]`` = (sqrt(rho), sqrt(1 - rho)); the latent x = sqrt(rho) Z + sqrt(1 - rho) e
    is the numpy expression's, in its order (no fused multiply-add: numba does not contract
    without fastmath). Each comparison U < t is decided from x where x is clearly on one side
    (:func:`_latent_bounds`), else from U = scipy's own ``ndtr`` (:data:`_ndtr`), computed at
    most once per patient and AE: the same grade as comparing U itself.

    Where an AE's bounds fall with the grade (t_1 >= t_2 >= t_3 >= t_4, the usual case), the
    levels with U < t_l are 1..G, so G is their count: a branch-free pass over a patient's AEs
    (bounds laid out level-major, so it vectorises) counts the levels decided below and checks
    that every level was decided from x; any AE left undecided (x within ~1e-9 of a bound), or
    with unordered bounds, is then graded by :func:`_frailty_grade_of`."""
    n_replicates, n_patients, n_events = own.shape
    below = np.empty((2, 4, n_events))
    above = np.empty((2, 4, n_events))
    for arm in range(2):
        for j in range(n_events):
            t = thresholds[arm, j]
            ordered = t[0] >= t[1] and t[1] >= t[2] and t[2] >= t[3]
            for level in range(4):
                below[arm, level, j] = sure_below[arm, j, level]
                # Unordered bounds: never "decided", so graded one by one.
                above[arm, level, j] = sure_above[arm, j, level] if ordered else np.nan
    for b in range(n_replicates):
        for i in range(n_patients):
            arm = 1 if treated[b, i] else 0
            shared = loadings[arm, 0] * frailty[b, i]
            specific = loadings[arm, 1]
            low, high, row, out = below[arm], above[arm], own[b, i], grade[b, i]
            undecided = 0
            for j in range(n_events):
                latent = shared + specific * row[j]
                b1, b2 = latent < low[0, j], latent < low[1, j]
                b3, b4 = latent < low[2, j], latent < low[3, j]
                out[j] = np.int8(b1) + np.int8(b2) + np.int8(b3) + np.int8(b4)
                decided = ((b1 | (latent >= high[0, j])) & (b2 | (latent >= high[1, j]))
                           & (b3 | (latent >= high[2, j])) & (b4 | (latent >= high[3, j])))
                undecided += 1 - np.int64(decided)
            if undecided:
                for j in range(n_events):
                    latent = shared + specific * row[j]
                    if not _all_decided(latent, low[:, j], high[:, j]):
                        out[j] = _frailty_grade_of(latent, thresholds[arm, j],
                                                   sure_below[arm, j], sure_above[arm, j])


@njit(cache=True)
def _all_decided(latent, low, high):
    """True where every level's U < t is decided from the latent x alone (x below ``low`` or
    at or above ``high``), as the counting pass of :func:`_frailty_grades` checks it."""
    for level in range(4):
        if not (latent < low[level] or latent >= high[level]):
            return False
    return True


@njit(cache=True)
def _frailty_grade_of(latent, bounds, sure_below, sure_above):
    """The grade of one patient and AE from its latent x: the largest g in 1..4 with
    U < ``bounds[g - 1]`` (U = Phi(x)), else 0, each comparison decided from x where x is
    clearly on one side of the bound, else from scipy's ndtr (computed at most once)."""
    uniform = -1.0  # not computed yet (ndtr >= 0)
    level = 4
    while level > 0:
        if latent < sure_below[level - 1]:
            break
        if not latent >= sure_above[level - 1]:
            if uniform < 0.0:
                uniform = _ndtr(latent, 0)
            if uniform < bounds[level - 1]:
                break
        level -= 1
    return level


@dataclass(frozen=True)
class AnyAdverseEventProbabilities:
    """Probability, per arm, that a patient has at least one AE (any grade) and at least one
    grade 3-4 AE, under the scenario's dependence (:func:`any_event_probability` with the arm's
    latent correlation; 1 - prod_j (1 - p_j) for independent types).

    Attributes
    ----------
    arm_names : tuple of str
    any_grade : ndarray of float, shape (arm,)
    grade34 : ndarray of float, shape (arm,)
    correlation : ndarray of float, shape (arm,)
        The latent correlation of the AE types (0 = independent).
    """

    arm_names: tuple[str, ...]
    any_grade: np.ndarray
    grade34: np.ndarray
    correlation: np.ndarray


def any_adverse_event_probabilities(scenario: "Scenario") -> AnyAdverseEventProbabilities:
    """The "any AE" rates the scenario's AEs imply (to compare with a paper's "All" row, which
    the scenario does not generate as an AE of its own)."""
    names = tuple(arm.name for arm in scenario.arms)
    correlations = frailty_correlations(scenario) if scenario.adverse_events else dict.fromkeys(names, 0.0)
    any_grade = [any_event_probability(np.array([e.any_grade[n] for e in scenario.adverse_events]), correlations[n])
                 for n in names]
    grade34 = [any_event_probability(np.array([e.grade34[n] for e in scenario.adverse_events]), correlations[n])
               for n in names]
    return AnyAdverseEventProbabilities(arm_names=names, any_grade=np.array(any_grade),
                                        grade34=np.array(grade34),
                                        correlation=np.array([correlations[n] for n in names]))
