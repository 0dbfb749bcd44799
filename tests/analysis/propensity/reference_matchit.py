"""Oracle for the matcher tests: straightforward one-cohort matchers in plain Python.

``matchit_nearest`` is a literal transcription of R MatchIt's documented nearest-neighbour
algorithm (distance given as a vector, v4.5.1+): a walk outward over the sorted array, one
unit at a time, for one cohort. It shares no code with :mod:`analysis.propensity.matching` (which
vectorises the same rule across replicates) and is deliberately slow and obvious.
"""

from __future__ import annotations

import math


def stable_ascending(values):
    """Indices that sort ``values`` ascending, ties in original order (R ``order()``)."""
    return sorted(range(len(values)), key=lambda i: values[i])


def stable_descending(values):
    """Indices that sort ``values`` descending, ties in original order (R radix order)."""
    return sorted(range(len(values)), key=lambda i: -values[i])


def matchit_nearest(distance, treated, eligible=None, *, caliper=None, ratio=1, replace=False,
                    order="largest", permutation=None, emulate_451_round_bug=False):
    """One cohort's MatchIt nearest-neighbour match.

    Parameters
    ----------
    distance : list of float
    treated : list of bool
    eligible : list of bool or None
        Units that take part (ineligible units are skipped wherever they sit).
    caliper : float or None
        In distance units; a pair needs ``abs(d_t - d_c) <= caliper``.
    ratio, replace, order
        As MatchIt. ``order="random"`` needs ``permutation``: the treated patient indices in
        processing order.

    Returns
    -------
    dict
        ``controls``: {treated index: [control indices in the order found]} for every
        eligible treated unit (empty list if unmatched); ``subclass``: {unit: set number}
        for units in a set (numbered 0.. in data order of the matched treated; a reused
        control keeps its smallest number); ``uses``: {control: times used}.
    """
    n = len(distance)
    if eligible is None:
        eligible = [True] * n
    units = [i for i in range(n) if eligible[i]]
    # 1. the sorted array of all eligible units (treated and control together)
    sorted_units = [units[j] for j in stable_ascending([distance[i] for i in units])]
    where = {unit: p for p, unit in enumerate(sorted_units)}
    treated_units = [i for i in units if treated[i]]
    # 2. processing order of the treated
    if order == "largest":
        sequence = [treated_units[j] for j in stable_descending([distance[i] for i in treated_units])]
    elif order == "smallest":
        sequence = [treated_units[j] for j in stable_ascending([distance[i] for i in treated_units])]
    elif order == "data":
        sequence = list(treated_units)
    elif order == "random":
        sequence = list(permutation)
    else:
        raise ValueError(order)

    used = {i: 0 for i in units if not treated[i]}
    controls = {t: [] for t in treated_units}
    limit = math.inf if caliper is None or math.isnan(caliper) else caliper

    def free(unit, t):
        if treated[unit]:
            return False
        if emulate_451_round_bug:
            if controls[t] and unit in [c + 1 for c in controls[t]]:
                return False
        elif unit in controls[t]:
            return False
        return replace or used[unit] == 0

    # 3.-4. rounds: everybody's first control before anybody's second
    for _round in range(ratio):
        for t in sequence:
            here = where[t]
            left = None
            p = here - 1
            while p >= 0:
                unit = sorted_units[p]
                if free(unit, t):
                    if abs(distance[t] - distance[unit]) <= limit:
                        left = unit
                    break  # the side stops at its first free control, in or out of the caliper
                p -= 1
            right = None
            p = here + 1
            while p < len(sorted_units):
                unit = sorted_units[p]
                if free(unit, t):
                    if abs(distance[unit] - distance[t]) <= limit:
                        right = unit
                    break
                p += 1
            if left is not None and right is not None:
                if abs(distance[left] - distance[t]) <= abs(distance[right] - distance[t]):
                    pick = left
                else:
                    pick = right
            elif left is not None:
                pick = left
            elif right is not None:
                pick = right
            else:
                continue
            controls[t].append(pick)
            used[pick] += 1

    subclass = {}
    number = 0
    for t in treated_units:  # data order
        if controls[t]:
            subclass[t] = number
            for c in controls[t]:
                subclass[c] = min(subclass.get(c, number), number)
            number += 1
    uses = {c: k for c, k in used.items() if k > 0}
    return {"controls": controls, "subclass": subclass, "uses": uses}
