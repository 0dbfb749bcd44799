"""Adverse events: each patient's maximum CTCAE grade (0-4) per AE, per arm.

Papers report, per AE and arm, the share with any grade and with grade 3-4. For one AE of a
patient in arm a, with p_any = P(any grade), p34 = P(grade 3-4) <= p_any,
s2 = ``grade2_share`` (share of grade 2 among grade 1-2) and s4 = ``grade4_share`` (share of
grade 4 among grade 3-4), the maximum grade G has

    P(G = 4) = p34 s4,            P(G = 3) = p34 (1 - s4),
    P(G = 2) = (p_any - p34) s2,  P(G = 1) = (p_any - p34) (1 - s2),  P(G = 0) = 1 - p_any,

so grade 3-4 is nested in any grade (P(G >= 3 | G >= 1) = p34 / p_any). G is drawn by
inverse transform from one uniform. AEs are independent of each other and of the covariates
given the arm (an assumption: the paper gives no joint table; its "any AE" row is a derived
check, see :func:`any_adverse_event_probabilities`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sim.scenario.model import Scenario


def draw_adverse_events(
    scenario: "Scenario", treated: np.ndarray, *, rng: np.random.Generator
) -> np.ndarray:
    """Draw every patient's maximum grade of every adverse event of the scenario.

    Parameters
    ----------
    scenario : Scenario
    treated : ndarray of bool, shape (replicate, patient)
    rng : numpy.random.Generator
        One uniform per patient and AE.

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

    uniform = rng.random(treated.shape + (len(events),))
    grade = np.zeros(uniform.shape, dtype=np.int8)
    grade[uniform < p_any] = 1
    grade[uniform < p_high + (p_any - p_high) * grade2_share] = 2
    grade[uniform < p_high] = 3
    grade[uniform < p_high * grade4_share] = 4
    return grade


@dataclass(frozen=True)
class AnyAdverseEventProbabilities:
    """Implied probability, per arm, that a patient has at least one AE (any grade) and at
    least one grade 3-4 AE, under independence across AEs: 1 - prod_j (1 - p_j).

    Attributes
    ----------
    arm_names : tuple of str
    any_grade : ndarray of float, shape (arm,)
    grade34 : ndarray of float, shape (arm,)
    """

    arm_names: tuple[str, ...]
    any_grade: np.ndarray
    grade34: np.ndarray


def any_adverse_event_probabilities(scenario: "Scenario") -> AnyAdverseEventProbabilities:
    """The "any AE" rates implied by the scenario's AEs (to compare with a paper's "All" row,
    which the scenario does not generate as an AE of its own)."""
    names = tuple(arm.name for arm in scenario.arms)
    any_grade = [1.0 - np.prod([1.0 - e.any_grade[name] for e in scenario.adverse_events])
                 for name in names]
    grade34 = [1.0 - np.prod([1.0 - e.grade34[name] for e in scenario.adverse_events])
               for name in names]
    return AnyAdverseEventProbabilities(arm_names=names, any_grade=np.array(any_grade),
                                        grade34=np.array(grade34))
