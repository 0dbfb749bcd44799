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
from scipy.optimize import brentq
from scipy.special import ndtr, ndtri

from sim.errors import ScenarioError

if TYPE_CHECKING:
    from sim.scenario.model import Scenario

#: Largest latent correlation (at 1 every type would follow one uniform per patient).
MAX_CORRELATION = 0.99


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
    events = scenario.adverse_events
    treated_name, control_name = scenario.treated_arm.name, scenario.control_arm.name

    def per_arm(values_of: dict[str, tuple[float, ...]]) -> np.ndarray:
        return np.where(treated[..., None], np.array(values_of[treated_name], dtype=float),
                        np.array(values_of[control_name], dtype=float))

    p_any = per_arm({name: tuple(e.any_grade[name] for e in events)
                     for name in (treated_name, control_name)})
    p_high = per_arm({name: tuple(e.grade34[name] for e in events)
                      for name in (treated_name, control_name)})
    grade2_share = np.array([e.grade2_share for e in events], dtype=float)
    grade4_share = np.array([e.grade4_share for e in events], dtype=float)

    correlations = frailty_correlations(scenario) if events else {}
    if not any(correlations.values()):
        uniform = rng.random(treated.shape + (len(events),))
    else:
        rho = np.where(treated, correlations[treated_name], correlations[control_name])[..., None]
        frailty = rng.standard_normal(treated.shape)[..., None]
        own = rng.standard_normal(treated.shape + (len(events),))
        uniform = ndtr(np.sqrt(rho) * frailty + np.sqrt(1.0 - rho) * own)
    grade = np.zeros(uniform.shape, dtype=np.int8)
    grade[uniform < p_any] = 1
    grade[uniform < p_high + (p_any - p_high) * grade2_share] = 2
    grade[uniform < p_high] = 3
    grade[uniform < p_high * grade4_share] = 4
    return grade


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
