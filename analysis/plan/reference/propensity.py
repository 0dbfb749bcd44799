"""Reference PS model and matching, one cohort and one treated patient at a time.

PS by statsmodels ``GLM(Binomial)`` (IRLS, pseudo-inverse steps) told to stop where the plan's
software stops: R ``glm.fit`` (start ``mu = (y + 0.5) / 2``, statsmodels' own start; deviance
criterion ``|dev_old - dev| <= 1e-9 + 1e-8 |dev|``, which is R's ``< 1e-8 (|dev| + 0.1)``; 25
iterations) or SPSS LOGISTIC REGRESSION (start at the constant-only model; every coefficient
changing by at most 0.001; 20 iterations). (Quasi-)separation by the linear-programming
criterion of Albert & Anderson (1984, Biometrika 71:1-10); the caliper and
MatchIt's nearest-neighbour walk and SPSS FUZZY's random / closest control written out from
their definitions (Austin 2011, Pharm Stat 10:150-161).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from analysis import status as st
from analysis.cohort import CohortBatch
from analysis.plan.options import Plan
from analysis.plan.reference.libraries import statsmodels_classes
from analysis.propensity.matching import MatchResult

#: LP optimum above this (columns scaled to max |x| = 1, coefficients in [-1, 1]) = separation.
_SEPARATION_MARGIN = 1e-6




@dataclass(frozen=True)
class _PropensityOne:
    coef: np.ndarray  # (q,)
    ps: np.ndarray  # (patient,)
    logit: np.ndarray
    converged: bool
    separated: bool
    rank_deficient: bool
    n_iter: int
    status: int
    deviance: float = math.nan


def design_columns(batch: CohortBatch, names):
    """PS design columns of the one cohort: (patient, p) values and column names."""
    columns, column_names = [], []
    for name in names:
        j = batch.covariate_names.index(name)
        values = batch.covariates[0, :, j].astype(float)
        if batch.covariate_kinds[j] != "categorical":
            columns.append(values)
            column_names.append(name)
            continue
        finite = values[np.isfinite(values)]
        n_levels = int(finite.max()) + 1 if finite.size else 1
        for level in range(1, n_levels):
            indicator = (values == level).astype(float)
            indicator[np.isnan(values)] = np.nan
            columns.append(indicator)
            column_names.append(f"{name}[{level}]")
    n = batch.n_patients
    values = np.column_stack(columns) if columns else np.zeros((n, 0))
    return values, tuple(column_names)


def _is_separated(design, treated) -> bool:
    """Exact criterion: some b has s_i x_i'b >= 0 for every patient and > 0 for one.

    Maximises sum_i s_i x_i'b (s_i = +1 treated, -1 control) over b in [-1, 1]^q subject to
    s_i x_i'b >= 0; the optimum is 0 exactly when the MLE exists (Albert & Anderson 1984).
    Columns are scaled to max |x| = 1 first (separation is invariant to column scaling).
    """
    scale = np.abs(design).max(axis=0)
    scaled = design / np.where(scale > 0, scale, 1.0)
    signed = np.where(treated, 1.0, -1.0)[:, None] * scaled
    result = optimize.linprog(
        -signed.sum(axis=0), A_ub=-signed, b_ub=np.zeros(len(signed)),
        bounds=[(-1.0, 1.0)] * design.shape[1], method="highs",
    )
    return bool(result.status == 0 and -result.fun > _SEPARATION_MARGIN)


def _r_fitted_values(logit):
    """R's ``binomial()$linkinv`` (its C code clamps exp(eta) to eps / 1/eps beyond |eta| > 30)."""
    eps = np.finfo(float).eps
    return np.where(logit < -30, eps / (1 + eps), np.where(logit > 30, 1 / (1 + eps), special.expit(logit)))


#: statsmodels ``GLM.fit`` settings that stop where each package's iterations stop.
_STOPPING = {
    "r_glm": dict(maxiter=25, tol_criterion="deviance", atol=1e-9, rtol=1e-8),
    "spss_logistic": dict(maxiter=20, tol_criterion="params", atol=1e-3, rtol=0.0),
}


def fit_propensity_one(values, treated, algorithm="r_glm") -> _PropensityOne:
    GLM, Binomial, _ = statsmodels_classes()
    n, p = values.shape
    q = p + 1
    nan_patients = np.full(n, np.nan)
    if treated.all() or not treated.any():
        return _PropensityOne(np.full(q, np.nan), nan_patients, nan_patients, False, False, False, 0, st.EMPTY_ARM)
    design = np.column_stack([np.ones(n), values])
    if not np.isfinite(design).all():
        return _PropensityOne(np.full(q, np.nan), nan_patients, nan_patients, False, False, False, 0, st.UNDEFINED)
    rank_deficient = np.linalg.matrix_rank(design) < q
    separated = _is_separated(design, treated)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = None
        if algorithm == "spss_logistic":
            share = treated.mean()
            start = np.zeros(q)
            start[0] = math.log(share / (1 - share))
        fit = GLM(treated.astype(float), design, family=Binomial()).fit(
            method="IRLS", start_params=start, wls_method="pinv", **_STOPPING[algorithm]
        )
    coef = np.asarray(fit.params, dtype=float)
    logit = design @ coef
    ps = _r_fitted_values(logit) if algorithm == "r_glm" else special.expit(logit)
    converged = bool(fit.converged)
    code = st.SEPARATION if separated else (st.OK if converged else st.PS_NOT_CONVERGED)
    return _PropensityOne(coef, ps, logit, converged, separated, bool(rank_deficient),
                          int(fit.fit_history["iteration"]), code, float(fit.deviance))


def caliper_of(distance, usable, plan: Plan) -> float:
    """Caliper in distance units (NaN = none): SD (ddof = 1) of the pooled distance, or absolute."""
    if plan.caliper is None:
        return math.nan
    if plan.caliper_scale == "absolute":
        return float(plan.caliper)
    values = distance[usable]
    if values.size < 2:
        return math.nan
    return float(plan.caliper * np.std(values, ddof=1))


# ---------------------------------------------------------------------------------------------
# Matching (one cohort, one treated patient at a time)
# ---------------------------------------------------------------------------------------------


def _require_rng(rng, why):
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng (a numpy.random.Generator) is required {why}")


def _processing_order(distance, treated_units, order, rng):
    if order == "largest":
        return sorted(treated_units, key=lambda i: -distance[i])
    if order == "smallest":
        return sorted(treated_units, key=lambda i: distance[i])
    if order == "data":
        return list(treated_units)
    _require_rng(rng, 'for order="random"')
    return [treated_units[k] for k in rng.permutation(len(treated_units))]


def match_nearest_one(distance, treated, usable, limit, ratio, replace, order, rng):
    """MatchIt ``method="nearest"``: in rounds, each treated patient takes the nearer of the
    first free control to its left and to its right in the sorted distances (left on a tie),
    a side counting only if within the caliper."""
    units = [i for i in range(len(distance)) if usable[i]]
    line = sorted(units, key=lambda i: distance[i])
    place = {unit: k for k, unit in enumerate(line)}
    sequence = _processing_order(distance, [i for i in units if treated[i]], order or "largest", rng)
    controls = {t: [] for t in sequence}
    uses = {}

    def first_free(t, step):
        k = place[t] + step
        while 0 <= k < len(line):
            unit = line[k]
            if not treated[unit] and unit not in controls[t] and (replace or unit not in uses):
                return unit if abs(distance[unit] - distance[t]) <= limit else None
            k += step
        return None

    for _ in range(ratio):
        for t in sequence:
            left, right = first_free(t, -1), first_free(t, +1)
            if left is None and right is None:
                continue
            if right is None or (left is not None and
                                 abs(distance[left] - distance[t]) <= abs(distance[right] - distance[t])):
                pick = left
            else:
                pick = right
            controls[t].append(pick)
            uses[pick] = uses.get(pick, 0) + 1
    return controls


def _fuzzy_choice(closest):
    def choose(distance, t, candidates, rng):
        if closest:
            gaps = [abs(distance[c] - distance[t]) for c in candidates]
            pool = [c for c, gap in zip(candidates, gaps) if gap == min(gaps)]
        else:
            exact = [c for c in candidates if distance[c] == distance[t]]
            pool = exact or candidates
        return pool[int(rng.integers(len(pool)))]
    return choose


def _match_fuzzy(choose):
    """SPSS FUZZY: each case in turn draws its controls among the unused ones within the
    tolerance (v1: an exactly equal one if any, else any at random; v2: the closest)."""
    def match(distance, treated, usable, limit, ratio, replace, order, rng):
        _require_rng(rng, "for the SPSS FUZZY matchers")
        units = [i for i in range(len(distance)) if usable[i]]
        sequence = _processing_order(distance, [i for i in units if treated[i]], order or "data", rng)
        controls = {t: [] for t in sequence}
        used = set()
        for t in sequence:
            for _ in range(ratio):
                candidates = [c for c in units if not treated[c] and c not in controls[t]
                              and (replace or c not in used)
                              and abs(distance[c] - distance[t]) <= limit]
                if not candidates:
                    break
                pick = choose(distance, t, candidates, rng)
                controls[t].append(pick)
                used.add(pick)
        return controls
    return match


def match_optimal_one(distance, treated, usable, limit, ratio, replace, order, rng):
    """Optimal 1:1 matching by scipy's assignment solver: forbidden pairs (beyond the caliper)
    cost more than any caliper-respecting matching, so the solver pairs as many treated as
    possible and then minimises the total distance; pairs it had to make beyond the caliper are
    dropped."""
    from scipy.optimize import linear_sum_assignment

    if ratio != 1 or replace:
        raise ValueError("optimal matching is defined for 1:1 matching without replacement")
    cases = [i for i in range(len(distance)) if usable[i] and treated[i]]
    pool = [i for i in range(len(distance)) if usable[i] and not treated[i]]
    if not cases or not pool:
        return {}
    gap = np.abs(np.asarray(distance)[cases][:, None] - np.asarray(distance)[pool][None, :])
    allowed = gap <= limit
    cost = np.where(allowed, gap, 1.0 + gap[allowed].sum() if allowed.any() else 1.0)
    rows, cols = linear_sum_assignment(cost)
    return {cases[r]: [pool[c]] for r, c in zip(rows, cols) if allowed[r, c]}


MATCHERS = {
    "matchit_nn": match_nearest_one,
    "spss_fuzzy_v1": _match_fuzzy(_fuzzy_choice(closest=False)),
    "spss_fuzzy_v2": _match_fuzzy(_fuzzy_choice(closest=True)),
    "optimal": match_optimal_one,
}


def controls_from_pairs(pairs, n_patients):
    """{treated index: [control indices]} from a MatchResult of one replicate or a control_of
    array shaped (patient, ratio) or (1, patient, ratio)."""
    control_of = np.asarray(pairs.control_of if isinstance(pairs, MatchResult) else pairs)
    if control_of.ndim == 3:
        if control_of.shape[0] != 1:
            raise ValueError(f"pairs must hold one replicate; got control_of shaped {control_of.shape}")
        control_of = control_of[0]
    if control_of.ndim != 2 or control_of.shape[0] != n_patients:
        raise ValueError(f"control_of must be shaped (patient, ratio) with {n_patients} patients; "
                         f"got {control_of.shape}")
    return {t: [int(c) for c in row if c >= 0] for t, row in enumerate(control_of) if (row >= 0).any()}


def match_result(controls, treated, width, ratio) -> MatchResult:
    """Set numbers (data order of the matched treated; a reused control keeps its smallest),
    weights (1 per matched treated, number of sets for a control) and counts."""
    n = len(treated)
    pair_id = np.full(n, -1, np.int32)
    weight = np.zeros(n)
    control_of = np.full((n, max(ratio, max((len(c) for c in controls.values()), default=0))), -1, np.int32)
    number = 0
    for t in range(n):
        found = controls.get(t, [])
        if not treated[t] or not found:
            continue
        pair_id[t] = number
        weight[t] = 1.0
        for k, c in enumerate(found):
            control_of[t, k] = c
            weight[c] += 1.0
            pair_id[c] = number if pair_id[c] < 0 else min(pair_id[c], number)
        number += 1
    return MatchResult(
        pair_id=pair_id[None],
        weight=weight[None],
        matched=(weight > 0)[None],
        n_pairs=np.array([number]),
        control_of=control_of[None],
        caliper=np.array([width]),
        status=np.array([st.OK if number > 0 else st.NO_MATCHES], np.int8),
    )
