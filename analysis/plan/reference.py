"""Reference analysis path: the analysis plan on one cohort with lifelines, statsmodels and scipy.

:func:`analyse_cohort_reference` runs the same plan as :func:`analysis.plan.analyse.analyse_cohorts`
(:mod:`analysis.plan.options`: PS model, caliper, matching, balance, Kaplan-Meier medians,
log-rank, Cox, ORR/DCR and AE tests, on the full and the matched cohort), for a batch of *one*
replicate, written patient by patient with the established libraries and without any code of
the batched engine. It is the oracle of the equivalence tests and the engine behind
``psmsim analyse --engine reference``. It returns a :class:`analysis.plan.analyse.PlanResult` with
the same fields and shapes (replicate dimension 1), so callers can swap engines.

Routes (each a straightforward per-cohort computation):

* PS: statsmodels ``GLM(Binomial)`` by IRLS (least-squares steps by pseudo-inverse, so a
  rank-deficient design gives the minimum-norm solution); (quasi-)separation by the exact
  linear-programming criterion of Albert & Anderson (1984) (scipy ``linprog``).
* Caliper: ``caliper * sd(distance)`` (n - 1 denominator, both arms pooled) or absolute.
* Matching: MatchIt's nearest-neighbour walk over the sorted distances, and SPSS FUZZY's
  random / closest control within the tolerance, one treated patient at a time. The random
  choices of the SPSS matchers cannot reproduce the batched engine's draws: pass ``pairs``
  (e.g. the batched engine's matching) to analyse given matched sets instead.
* Kaplan-Meier: lifelines ``KaplanMeierFitter`` (S(t), numbers at risk and events); Greenwood
  sums, the median (first time S(t) <= 0.5, or R's midpoint rule where S(t) = 0.5 on an
  interval), Brookmeyer-Crowley band inversion and the SPSS-style symmetric interval written
  out here from their definitions.
* Log-rank: lifelines ``logrank_test``; the pair-stratified test and the variance (for the
  status) summed stratum by stratum here.
* Cox: Breslow ties by statsmodels ``PHReg(ties="breslow")`` (rows repeated by their integer
  weights), Efron ties by lifelines ``CoxPHFitter`` (case weights, tight convergence); robust
  SE clustered on pairs: for Breslow from PHReg's score residuals, for Efron from the
  Efron-consistent score residuals of R ``residuals.coxph`` written out here (lifelines'
  residuals ignore ties). Sandwich ``I^-2 sum_g (sum_{i in g} w_i L_i)^2`` (Lin & Wei 1989),
  no small-sample factor, as R ``coxph(..., cluster=)``.
* ORR/DCR, AEs and categorical baseline rows: scipy ``chi2_contingency`` (with and without
  Yates' correction) and ``fisher_exact``, picked by the plan's rule; continuous baseline rows
  scipy ``ttest_ind`` / ``mannwhitneyu`` (asymptotic, no continuity correction).

statsmodels is a test extra of psmsim, not a main dependency: without it this module raises
``ImportError`` when called.

References
----------
Albert A, Anderson JA (1984). Biometrika 71:1-10. Austin PC (2011). Pharm Stat 10:150-161.
Brookmeyer R, Crowley J (1982). Biometrics 38:29-41. Collett D (1994). Modelling Survival Data
in Medical Research, section 2.4. Lin DY, Wei LJ (1989). J Am Stat Assoc 84:1074-1078.
Therneau TM, Grambsch PM (2000). Modeling Survival Data, Springer (score residuals).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats

from analysis import status as st
from analysis.propensity.balance import Balance
from analysis.cohort import CohortBatch
from analysis.survival.cox import CoxResult
from analysis.comparisons.group_tests import FISHER, MANN_WHITNEY, NO_TEST, PEARSON, STUDENT_T, YATES, TestResult
from analysis.survival.kaplan_meier import MedianEstimate
from analysis.survival.logrank import LogrankResult
from analysis.propensity.matching import MatchResult
from analysis.plan.analyse import COHORTS, ENDPOINTS, CohortDetails, EndpointAnalysis, PlanResult
from analysis.plan.options import Plan, PlanOptionError
from analysis.propensity.model import PropensityFit
from analysis.comparisons.response import AdverseEventComparison, ResponseComparison

__all__ = ["analyse_cohort_reference"]

#: "S(t) equals p" tolerance of the median rules (R ``quantile.survfit``).
_TOLERANCE = math.sqrt(np.finfo(float).eps)
#: A fitted |log HR| beyond this counts as not converged (as the batched engine).
_MAX_ABS_LOG_HR = 20.0
#: LP optimum above this (columns scaled to max |x| = 1, coefficients in [-1, 1]) = separation.
_SEPARATION_MARGIN = 1e-6
#: Expected and observed counts of the categorical test rules (Cochran 1954; the paper rule).
_MIN_EXPECTED = 5.0
_PAPER_MIN_OBSERVED = 3.0
_OBJECTIVE_RESPONSE = (0, 1)  # CR, PR
_DISEASE_CONTROL = (0, 1, 2)  # CR, PR, SD


def _statsmodels():
    try:
        from statsmodels.duration.hazard_regression import PHReg
        from statsmodels.genmod import families
        from statsmodels.genmod.generalized_linear_model import GLM
    except ImportError as error:
        raise ImportError("the reference engine needs statsmodels: pip install statsmodels") from error
    return GLM, families.Binomial, PHReg


# ---------------------------------------------------------------------------------------------
# Propensity score
# ---------------------------------------------------------------------------------------------


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


def _design(batch: CohortBatch, names):
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


def _fit_propensity(values, treated) -> _PropensityOne:
    GLM, Binomial, _ = _statsmodels()
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
        fit = GLM(treated.astype(float), design, family=Binomial()).fit(
            method="IRLS", tol=1e-14, maxiter=100, wls_method="pinv"
        )
    coef = np.asarray(fit.params, dtype=float)
    logit = design @ coef
    ps = special.expit(logit)
    converged = bool(fit.converged)
    code = st.SEPARATION if separated else (st.OK if converged else st.PS_NOT_CONVERGED)
    return _PropensityOne(coef, ps, logit, converged, separated, bool(rank_deficient),
                          int(fit.fit_history["iteration"]), code)


def _caliper(distance, usable, plan: Plan) -> float:
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


def _match_nearest(distance, treated, usable, limit, ratio, replace, order, rng):
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


_MATCHERS = {
    "matchit_nn": _match_nearest,
    "spss_fuzzy_v1": _match_fuzzy(_fuzzy_choice(closest=False)),
    "spss_fuzzy_v2": _match_fuzzy(_fuzzy_choice(closest=True)),
}


def _controls_from(pairs, n_patients):
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


def _match_result(controls, treated, width, ratio) -> MatchResult:
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


# ---------------------------------------------------------------------------------------------
# Kaplan-Meier median and its confidence interval
# ---------------------------------------------------------------------------------------------


def _crossing(times, curve, last_time, probability=0.5, rule="midpoint"):
    """First time the step curve is <= p (+ tol). Rule ``midpoint`` (R quantile.survfit): if
    the curve sits at p (within tol) there, the midpoint with the next time it is below p
    (- tol), or with the last observed time if it never is (NaN if the curve ends undefined).
    Rule ``first`` (SPSS, lifelines): that first time. NaN values never count."""
    first = next((k for k, v in enumerate(curve) if v <= probability + _TOLERANCE), None)
    if first is None:
        return math.nan
    if rule == "first":
        return float(times[first])
    for k in range(first, len(curve)):
        if curve[k] <= probability - _TOLERANCE:
            return (times[first] + times[k]) / 2.0
    if math.isnan(curve[-1]):
        return math.nan
    return (times[first] + last_time) / 2.0


def _band(survival, greenwood, z, method):
    lower, upper = [], []
    for s, v in zip(survival, greenwood):
        sigma = math.sqrt(v) if v < math.inf else math.inf
        if method == "brookmeyer_crowley_log":
            if s > 0:
                lower.append(s * math.exp(-z * sigma))
                upper.append(min(s * math.exp(z * sigma), 1.0))
            else:
                lower.append(math.nan)
                upper.append(math.nan)
        else:  # log-log: log(-log S) +- z sigma / |log S|
            if 0 < s < 1:
                centre, half = math.log(-math.log(s)), z * sigma / abs(math.log(s))
                lower.append(math.exp(-math.exp(centre + half)))
                upper.append(math.exp(-math.exp(centre - half)))
            else:
                lower.append(math.nan)
                upper.append(math.nan)
    return lower, upper


def _collett_se(times, survival, greenwood, n_events):
    """Collett (1994): SE(S(t50)) / f with f = (S(u) - S(l)) / (l - u), u = last event time with
    S >= 0.55 (time 0, S = 1 if none), l = first event time with S <= 0.45."""
    median_k = next((k for k, s in enumerate(survival) if s <= 0.5 + _TOLERANCE), None)
    if median_k is None:
        return math.nan
    events = [k for k in range(len(times)) if n_events[k] > 0]
    upper = [k for k in events if survival[k] >= 0.55 - _TOLERANCE]
    lower = [k for k in events if survival[k] <= 0.45 + _TOLERANCE]
    if not lower:
        return math.nan
    time_u, surv_u = (times[upper[-1]], survival[upper[-1]]) if upper else (0.0, 1.0)
    time_l, surv_l = times[lower[0]], survival[lower[0]]
    with np.errstate(divide="ignore", invalid="ignore"):
        density = np.float64(surv_u - surv_l) / np.float64(time_l - time_u)
        se = survival[median_k] * np.sqrt(np.float64(greenwood[median_k])) / density
    return float(se) if np.isfinite(se) else math.nan


def _km_median(time, event, weight, *, ci, level, rule="midpoint") -> tuple[float, float, float, float, int]:
    """(median, lower, upper, se, status) of one arm by lifelines' Kaplan-Meier."""
    from lifelines import KaplanMeierFitter

    keep = weight > 0
    if not keep.any():
        return math.nan, math.nan, math.nan, math.nan, st.EMPTY_ARM
    fitter = KaplanMeierFitter().fit(time[keep], event[keep], weights=weight[keep])
    table = fitter.event_table
    observed_rows = table["removed"].to_numpy() > 0
    times = table.index.to_numpy(dtype=float)[observed_rows]
    at_risk = table["at_risk"].to_numpy(dtype=float)[observed_rows]
    deaths = table["observed"].to_numpy(dtype=float)[observed_rows]
    survival = fitter.survival_function_.iloc[:, 0].loc[times].to_numpy(dtype=float)
    greenwood, total = [], 0.0
    for n_k, d_k in zip(at_risk, deaths):
        if d_k > 0:
            total += d_k / (n_k * (n_k - d_k)) if n_k > d_k else math.inf
        greenwood.append(total)
    last_time = float(time[keep].max())
    z = float(stats.norm.ppf(0.5 + level / 2.0))

    median = _crossing(times, survival, last_time, rule=rule)
    se = _collett_se(times, survival, greenwood, deaths)
    if ci == "spss_symmetric":
        lower, upper = median - z * se, median + z * se
    else:
        band_lower, band_upper = _band(survival, greenwood, z, ci)
        lower = _crossing(times, band_lower, last_time)
        upper = _crossing(times, band_upper, last_time)
    return median, lower, upper, se, st.OK


# ---------------------------------------------------------------------------------------------
# Log-rank and Cox
# ---------------------------------------------------------------------------------------------


def _strata_of(ids, n):
    """Stratum or cluster labels, negative ids replaced by labels of their own."""
    if ids is None:
        return np.zeros(n, np.int64)
    ids = np.asarray(ids, np.int64)
    own = ids.max(initial=0) + 1 + np.arange(n)
    return np.where(ids < 0, own, ids)


def _logrank_sums(time, event, treated, weight, strata):
    """O - E (treated) and the hypergeometric variance, summed over strata and event times."""
    observed = expected = variance = 0.0
    for stratum in np.unique(strata):
        members = strata == stratum
        for t in np.unique(time[members & event]):
            at_risk = members & (time >= t)
            dying = members & event & (time == t)
            n_all, n_treated = weight[at_risk].sum(), weight[at_risk & treated].sum()
            d_all, d_treated = weight[dying].sum(), weight[dying & treated].sum()
            share = n_treated / n_all
            observed += d_treated
            expected += d_all * share
            if n_all > 1:
                variance += d_all * share * (1.0 - share) * (n_all - d_all) / (n_all - 1.0)
    return observed, expected, variance


def _logrank(time, event, treated, weight, strata) -> LogrankResult:
    from lifelines.statistics import logrank_test

    keep = weight > 0
    time, event, treated, weight = time[keep], event[keep], treated[keep], weight[keep]
    code = st.OK
    if weight[treated].sum() <= 0 or weight[~treated].sum() <= 0:
        code = st.EMPTY_ARM
    elif not event.any():
        code = st.NO_EVENTS
    observed, expected, variance = (math.nan,) * 3
    if code == st.OK:
        observed, expected, variance = _logrank_sums(time, event, treated, weight,
                                                     _strata_of(None if strata is None else strata[keep], len(time)))
        if not variance > 0:
            code = st.UNDEFINED
    statistic = p_value = math.nan
    if code == st.OK:
        if strata is None:
            result = logrank_test(time[treated], time[~treated], event[treated], event[~treated],
                                  weights_A=weight[treated], weights_B=weight[~treated])
            statistic, p_value = float(result.test_statistic), float(result.p_value)
        else:
            statistic = (observed - expected) ** 2 / variance
            p_value = float(stats.chi2.sf(statistic, 1))
    return LogrankResult(statistic=np.array([statistic]), p_value=np.array([p_value]),
                         observed_treated=np.array([observed]), expected_treated=np.array([expected]),
                         variance=np.array([variance]), status=np.array([code], np.int8))


def _has_finite_maximum(time, event, treated, weight, strata) -> bool:
    """U(+inf) < 0 < U(-inf): some treated event has a control at risk in its stratum and some
    control event a treated patient at risk."""
    treated_event_vs_control = control_event_vs_treated = False
    for i in np.flatnonzero(event & (weight > 0)):
        at_risk = (strata == strata[i]) & (time >= time[i]) & (weight > 0)
        if treated[i] and (at_risk & ~treated).any():
            treated_event_vs_control = True
        if not treated[i] and (at_risk & treated).any():
            control_event_vs_treated = True
    return treated_event_vs_control and control_event_vs_treated


def _score_residuals(time, event, x, weight, strata, beta, ties):
    """Score residuals L_i of R ``residuals.coxph(type="score")`` for Breslow or Efron ties.

    At each distinct event time of a stratum with m tied events D and risk set R, Efron's k-th
    (k = 0..m-1) partial risk set has denominator sum_R w r - (k/m) sum_D w r and covariate
    mean xbar_k, hazard increment c / denominator with c the mean event weight; an event i in
    D gets x_i - mean_k(xbar_k) and every i in R loses r_i sum_k f_ik haz_k (x_i - xbar_k),
    f_ik = 1 - k/m for i in D, 1 otherwise. Breslow: m treated as 1 with c = sum_D w.
    """
    risk = np.exp(beta * x)
    residual = np.zeros(len(time))
    for stratum in np.unique(strata):
        members = strata == stratum
        for t in np.unique(time[members & event]):
            in_risk = members & (time >= t)
            dying = members & event & (time == t)
            wr, wrx = weight * risk, weight * risk * x
            total, total_x = wr[in_risk].sum(), wrx[in_risk].sum()
            tied, tied_x = wr[dying].sum(), wrx[dying].sum()
            if ties == "efron":
                m = int(dying.sum())
                fractions = np.arange(m) / m
                c = weight[dying].sum() / m
            else:
                fractions = np.zeros(1)
                c = weight[dying].sum()
            denominators = total - fractions * tied
            means = (total_x - fractions * tied_x) / denominators
            hazards = c / denominators
            for i in np.flatnonzero(in_risk):
                kept = (1.0 - fractions) if (dying[i] and ties == "efron") else np.ones_like(fractions)
                residual[i] -= risk[i] * np.sum(kept * hazards * (x[i] - means))
                if dying[i]:
                    residual[i] += x[i] - means.mean()
    return residual


def _robust_se(residuals, weight, clusters, variance):
    sums = {}
    for value, cluster in zip(weight * residuals, clusters):
        sums[cluster] = sums.get(cluster, 0.0) + value
    return math.sqrt(variance**2 * sum(v * v for v in sums.values()))


def _fit_breslow(time, event, x, weight, strata):
    """statsmodels PHReg with Breslow ties on rows repeated by their (integer) weights.
    Returns (beta, model variance, score residuals per original row)."""
    *_, PHReg = _statsmodels()
    repeats = np.rint(weight).astype(int)
    if np.any(np.abs(repeats - weight) > 1e-12):
        raise ValueError("the reference Breslow fit needs integer (frequency) weights")
    rows = np.repeat(np.arange(len(time)), repeats)
    model = PHReg(time[rows], x[rows, None].astype(float), status=event[rows].astype(float),
                  strata=None if strata is None else strata[rows], ties="breslow")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit(method="newton", maxiter=200, tol=1e-13)
    beta = float(fit.params[0])
    variance = float(np.asarray(fit.cov_params())[0, 0])
    # PHReg gives NaN to rows never at risk at an event time (their residual is 0).
    expanded = np.nan_to_num(model.score_residuals(fit.params)[:, 0], nan=0.0)
    residuals = np.zeros(len(time))
    np.add.at(residuals, rows, expanded / repeats[rows])
    return beta, variance, residuals


def _fit_efron(time, event, x, weight, strata):
    """lifelines CoxPHFitter (Efron ties, case weights) with tight convergence.
    Returns (beta, model variance, Efron score residuals)."""
    import pandas as pd
    from lifelines import CoxPHFitter

    frame = pd.DataFrame({"time": time, "event": event.astype(int), "treated": x.astype(float), "weight": weight})
    if strata is not None:
        frame["stratum"] = strata
    fitter = CoxPHFitter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitter.fit(frame, "time", "event", weights_col="weight", strata=None if strata is None else ["stratum"],
                   fit_options={"precision": 1e-30, "r_precision": 1e-15, "step_size": 1.0, "max_steps": 500})
    beta = float(fitter.params_.iloc[0])
    variance = float(fitter.variance_matrix_.iloc[0, 0])
    residuals = _score_residuals(time, event, x, weight, _strata_of(strata, len(time)), beta, "efron")
    return beta, variance, residuals


_COX_FITS = {"breslow": _fit_breslow, "efron": _fit_efron}


def _cox(time, event, treated, weight, *, ties, cluster, strata, level) -> CoxResult:
    keep = weight > 0
    time, event, treated, weight = time[keep], event[keep], treated[keep], weight[keep]
    strata_kept = None if strata is None else _strata_of(strata[keep], len(time))
    n_events = float(weight[event].sum())
    code = st.OK
    if weight[treated].sum() <= 0 or weight[~treated].sum() <= 0:
        code = st.EMPTY_ARM
    elif weight[event & treated].sum() <= 0 or weight[event & ~treated].sum() <= 0:
        code = st.NO_EVENTS
    elif not _has_finite_maximum(time, event, treated, weight, _strata_of(strata_kept, len(time))):
        code = st.NOT_CONVERGED
    beta = se = robust_se = math.nan
    if code == st.OK:
        beta, variance, residuals = _COX_FITS[ties](time, event, treated, weight, strata_kept)
        if not (abs(beta) <= _MAX_ABS_LOG_HR and variance > 0):
            code = st.NOT_CONVERGED
            beta = math.nan
        else:
            se = math.sqrt(variance)
            if cluster is not None:
                robust_se = _robust_se(residuals, weight, _strata_of(cluster[keep], len(time)), variance)
    z_critical = float(stats.norm.ppf(0.5 + level / 2.0))
    p_model = 2.0 * stats.norm.sf(abs(beta / se)) if code == st.OK else math.nan
    p_robust = 2.0 * stats.norm.sf(abs(beta / robust_se)) if code == st.OK and cluster is not None else math.nan
    chosen = robust_se if cluster is not None else se
    return CoxResult(
        log_hr=np.array([beta]), se=np.array([se]), robust_se=np.array([robust_se]),
        z=np.array([beta / chosen if code == st.OK else math.nan]),
        p_value=np.array([p_robust if cluster is not None else p_model]),
        p_value_model=np.array([p_model]), p_value_robust=np.array([p_robust]),
        ci_lower=np.array([beta - z_critical * chosen]), ci_upper=np.array([beta + z_critical * chosen]),
        n_events=np.array([n_events]), n_iter=np.array([0]), converged=np.array([code == st.OK]),
        status=np.array([code], np.int8),
    )


# ---------------------------------------------------------------------------------------------
# Group comparisons
# ---------------------------------------------------------------------------------------------


def _table_test(table, rule) -> tuple[float, float, int, int, float]:
    """(statistic, p, test code, status, df) of a (level, arm) table by the plan's rule."""
    table = np.rint(np.asarray(table, float))
    if (table.sum(axis=0) <= 0).any():
        return math.nan, math.nan, NO_TEST, st.EMPTY_ARM, math.nan
    rows = table[table.sum(axis=1) > 0]
    expected = np.outer(rows.sum(axis=1), rows.sum(axis=0)) / rows.sum()
    small_expected = expected.min() < _MIN_EXPECTED
    choice = {
        "paper": YATES if small_expected or rows.min() < _PAPER_MIN_OBSERVED else PEARSON,
        "pearson": PEARSON,
        "yates": YATES,
        "fisher": FISHER,
        "fisher_if_expected_lt5": FISHER if small_expected else PEARSON,
        "yates_if_expected_lt5": YATES if small_expected else PEARSON,
    }
    if rule not in choice:
        raise ValueError(f"unknown rule {rule!r}; choose one of {sorted(choice)}")
    test = choice[rule]
    if len(rows) < 2:  # constant outcome: no test, p = 1 (the exact conditional p)
        return (math.nan if test == FISHER else 0.0), 1.0, NO_TEST, st.OK, math.nan
    if test == FISHER and len(table) > 2:  # Fisher only for 2-level variables (as SPSS without Exact Tests)
        test = PEARSON
    if test == YATES and len(rows) > 2:
        test = PEARSON
    if test == FISHER:
        result = stats.fisher_exact(rows)
        return float(result.statistic), float(result.pvalue), FISHER, st.OK, math.nan
    result = stats.chi2_contingency(rows, correction=(test == YATES))
    return float(result.statistic), float(result.pvalue), test, st.OK, float(result.dof)


def _test_result(values) -> TestResult:
    statistic, p_value, code, status_code, df = values
    return TestResult(statistic=np.array([statistic]), p_value=np.array([p_value]),
                      test_used=np.array([code], np.int8), status=np.array([status_code], np.int8),
                      df=np.array([df]))


def _binary_table(outcome, treated, weight):
    return np.array([[weight[treated & ~outcome].sum(), weight[~treated & ~outcome].sum()],
                     [weight[treated & outcome].sum(), weight[~treated & outcome].sum()]])


def _rate(outcome, arm, weight):
    total = weight[arm].sum()
    return weight[arm & outcome].sum() / total if total > 0 else math.nan


def _responses(best_response, treated, weight, rule) -> ResponseComparison:
    evaluable = weight * (best_response >= 0)
    responded = np.isin(best_response, _OBJECTIVE_RESPONSE)
    controlled = np.isin(best_response, _DISEASE_CONTROL)
    orr = _table_test(_binary_table(responded, treated, evaluable), rule)
    dcr = _table_test(_binary_table(controlled, treated, evaluable), rule)
    n_per_arm = np.array([[evaluable[treated].sum(), evaluable[~treated].sum()]])
    return ResponseComparison(
        n_per_arm=n_per_arm,
        orr_rate=np.array([[_rate(responded, treated, evaluable), _rate(responded, ~treated, evaluable)]]),
        dcr_rate=np.array([[_rate(controlled, treated, evaluable), _rate(controlled, ~treated, evaluable)]]),
        orr_p_value=np.array([orr[1]]), dcr_p_value=np.array([dcr[1]]),
        orr_test_used=np.array([orr[2]], np.int8), dcr_test_used=np.array([dcr[2]], np.int8),
        status=np.array([st.EMPTY_ARM if (n_per_arm <= 0).any() else st.OK], np.int8),
    )


def _adverse_events(ae_grade, treated, weight, rule) -> AdverseEventComparison:
    n_events = ae_grade.shape[1]
    any_grade = [_table_test(_binary_table(ae_grade[:, e] >= 1, treated, weight), rule) for e in range(n_events)]
    severe = [_table_test(_binary_table(ae_grade[:, e] >= 3, treated, weight), rule) for e in range(n_events)]
    n_per_arm = np.array([[weight[treated].sum(), weight[~treated].sum()]])

    def rates(threshold):
        return np.array([[[_rate(ae_grade[:, e] >= threshold, arm, weight) for arm in (treated, ~treated)]
                          for e in range(n_events)]]).reshape(1, n_events, 2)

    return AdverseEventComparison(
        n_per_arm=n_per_arm,
        any_grade_rate=rates(1), grade3_4_rate=rates(3),
        any_grade_p_value=np.array([[r[1] for r in any_grade]]).reshape(1, n_events),
        grade3_4_p_value=np.array([[r[1] for r in severe]]).reshape(1, n_events),
        any_grade_test_used=np.array([[r[2] for r in any_grade]], np.int8).reshape(1, n_events),
        grade3_4_test_used=np.array([[r[2] for r in severe]], np.int8).reshape(1, n_events),
        status=np.array([st.EMPTY_ARM if (n_per_arm <= 0).any() else st.OK], np.int8),
    )


def _continuous_test(x, treated, weight, rank) -> TestResult:
    repeats = np.rint(weight).astype(int)
    x_treated = np.repeat(x[treated], repeats[treated])
    x_control = np.repeat(x[~treated], repeats[~treated])
    if x_treated.size == 0 or x_control.size == 0:
        return _test_result((math.nan, math.nan, NO_TEST, st.EMPTY_ARM, math.nan))
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        if rank:
            if np.ptp(np.concatenate([x_treated, x_control])) == 0:
                return _test_result((math.nan, math.nan, NO_TEST, st.UNDEFINED, math.nan))
            result = stats.mannwhitneyu(x_treated, x_control, method="asymptotic", use_continuity=False)
            return _test_result((float(result.statistic), float(result.pvalue), MANN_WHITNEY, st.OK, math.nan))
        df = x_treated.size + x_control.size - 2
        if df < 1:
            return _test_result((math.nan, math.nan, NO_TEST, st.UNDEFINED, math.nan))
        if min(x_treated.size, x_control.size) >= 2:
            result = stats.ttest_ind(x_treated, x_control)
            t, p = float(result.statistic), float(result.pvalue)
        else:  # scipy refuses an arm of one; the pooled formula does not need its variance
            pooled = (np.sum((x_treated - x_treated.mean()) ** 2) + np.sum((x_control - x_control.mean()) ** 2)) / df
            t = (x_treated.mean() - x_control.mean()) / math.sqrt(pooled * (1 / x_treated.size + 1 / x_control.size))
            p = float(2.0 * stats.t.sf(abs(t), df))
    if math.isnan(t):
        return _test_result((math.nan, math.nan, NO_TEST, st.UNDEFINED, math.nan))
    return _test_result((t, p, STUDENT_T, st.OK, float(df)))


def _baseline_tests(batch, weight, plan) -> dict[str, TestResult]:
    treated = batch.treated[0]
    results = {}
    for j, (name, kind) in enumerate(zip(batch.covariate_names, batch.covariate_kinds)):
        values = batch.covariates[0, :, j]
        if kind == "continuous":
            results[name] = _continuous_test(values, treated, weight, name in plan.rank_test_covariates)
            continue
        n_levels = max(int(np.nanmax(values)) + 1 if kind == "categorical" else 2, 2)
        levels = values.astype(int)
        table = np.array([[weight[treated & (levels == k)].sum(), weight[~treated & (levels == k)].sum()]
                          for k in range(n_levels)])
        results[name] = _test_result(_table_test(table, plan.test_rule))
    return results


def _smd_one(x, binary, treated, weight, denominator):
    """SMD of one 0/1 or continuous column: weighted means in the cohort, SDs in the full cohort
    (binary p(1-p), continuous n-1 variance), fallbacks as MatchIt (see analysis.propensity.balance)."""
    def mean(arm, w):
        return float(np.sum(w[arm] * x[arm]) / np.sum(w[arm]))

    def variance(arm):
        values = x[arm]
        if binary:
            p = values.mean()
            return p * (1.0 - p)
        return float(np.var(values, ddof=1)) if values.size > 1 else math.nan

    difference = mean(treated, weight) - mean(~treated, weight)
    var_treated, var_control = variance(treated), variance(~treated)
    pooled = math.sqrt((var_treated + var_control) / 2.0) if not math.isnan(var_treated + var_control) else math.nan
    sd = {"treated": math.sqrt(var_treated) if var_treated >= 0 else math.nan,
          "control": math.sqrt(var_control) if var_control >= 0 else math.nan,
          "pooled": pooled}[denominator]
    if not (math.isfinite(sd) and sd >= _TOLERANCE):
        sd = pooled
    if math.isfinite(sd) and sd < _TOLERANCE:
        return 0.0 if abs(difference) <= _TOLERANCE else math.copysign(math.inf, difference)
    return difference / sd


def _balance(covariates, kinds, treated, weight, denominator) -> Balance:
    n_covariates = covariates.shape[1]
    smd = np.full(n_covariates, np.nan)
    ratio = np.full(n_covariates, np.nan)
    empty = weight[treated].sum() <= 0 or weight[~treated].sum() <= 0 or treated.all() or not treated.any()
    if not empty:
        with np.errstate(all="ignore"):
            for j, kind in enumerate(kinds):
                x = covariates[:, j].astype(float)
                if kind == "categorical":
                    level_smds = [_smd_one((x == level).astype(float), True, treated, weight, denominator)
                                  for level in range(int(np.nanmax(x)) + 1)]
                    smd[j] = max(level_smds, key=lambda v: -1.0 if math.isnan(v) else abs(v))
                else:
                    smd[j] = _smd_one(x, kind == "binary", treated, weight, denominator)
                if kind == "continuous":
                    ratio[j] = _weighted_variance(x, weight * treated) / _weighted_variance(x, weight * ~treated)
    finite = smd[~np.isnan(smd)]
    max_abs = float(np.max(np.abs(finite))) if finite.size else math.nan
    return Balance(smd=smd[None], variance_ratio=ratio[None], max_abs_smd=np.array([max_abs]),
                   status=np.array([st.EMPTY_ARM if empty else st.OK], np.int8))


def _weighted_variance(x, w):
    """Reliability-weighted variance (R cov.wt): sum w (x - m)^2 / (W - sum w^2 / W)."""
    total = w.sum()
    m = np.sum(w * x) / total
    return np.sum(w * (x - m) ** 2) / (total - np.sum(w**2) / total)


# ---------------------------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------------------------


def analyse_cohort_reference(batch_of_one: CohortBatch, plan: Plan, *, pairs=None,
                             rng: np.random.Generator | None = None, details: bool = False) -> PlanResult:
    """Run ``plan`` on one cohort with lifelines/statsmodels/scipy (the reference engine).

    Parameters
    ----------
    batch_of_one : CohortBatch
        One replicate (arrays shaped (1, patient[, ...])), e.g. ``batch.replicate(i)``.
    plan : Plan
        The analysis plan (:func:`analysis.plan.options.make_plan`).
    pairs : MatchResult or array_like of int, optional
        Matched sets to use instead of matching again: a :class:`MatchResult` of one replicate
        (e.g. the batched engine's matching sliced to this replicate) or its ``control_of``
        shaped (patient, ratio) or (1, patient, ratio); -1 = no control. Needed to compare the
        SPSS matchers' downstream analysis with the batched engine (their random draws
        differ). The PS model, its status and the caliper are still computed here.
    rng : numpy.random.Generator, optional
        Required when matching here with an SPSS matcher or ``order="random"``.
    details : bool
        Also compute the per-covariate balance, baseline tests, response, AE and survival
        tables (:class:`analysis.plan.analyse.CohortDetails`), as the batched engine's ``details``.

    Returns
    -------
    PlanResult
        Same fields and shapes as :func:`analysis.plan.analyse.analyse_cohorts` with one replicate:
        (1, cohort, endpoint), (1, cohort) and (1,) arrays; ``propensity`` and ``matching``
        with replicate dimension 1.

    Raises
    ------
    ValueError
        If the batch holds more than one replicate or ``pairs`` is badly shaped.
    PlanOptionError
        If a PS covariate is not in the cohort.
    ImportError
        If statsmodels is not installed.
    """
    _statsmodels()
    if batch_of_one.n_replicates != 1:
        raise ValueError(f"the reference engine analyses one cohort; got {batch_of_one.n_replicates} replicates"
                         " (use batch.replicate(i))")
    batch = batch_of_one
    names = plan.ps_covariates or batch.covariate_names
    missing = [n for n in names if n not in batch.covariate_names]
    if missing:
        raise PlanOptionError("ps_covariates", f"not among the cohort's covariates: {', '.join(missing)}")
    treated = batch.treated[0].astype(bool)
    n = batch.n_patients

    design, ps_columns = _design(batch, names)
    ps_fit = _fit_propensity(design, treated)
    distance = ps_fit.ps if plan.distance == "ps" else ps_fit.logit
    usable = np.isfinite(distance)
    width = _caliper(distance, usable, plan)
    limit = math.inf if math.isnan(width) else width
    if pairs is not None:
        controls = _controls_from(pairs, n)
    else:
        if plan.matcher not in _MATCHERS:
            raise ValueError(f"unknown matching method {plan.matcher!r}; valid methods: {', '.join(_MATCHERS)}")
        controls = _MATCHERS[plan.matcher](distance, treated, usable, limit, plan.ratio, plan.replace, plan.order, rng)
    matching = _match_result(controls, treated, width, plan.ratio)

    ps_failed = ps_fit.status != st.OK and not (plan.separation == "proceed" and ps_fit.status == st.SEPARATION)
    matched_status = ps_fit.status if ps_failed else int(matching.status[0])
    ps_status = ps_fit.status if ps_fit.status != st.OK else int(matching.status[0])
    weights = {"full": np.ones(n), "matched": matching.weight[0] if matched_status == st.OK else np.zeros(n)}
    cohort_status = {"full": st.OK, "matched": matched_status}
    ps_covariates = batch.covariates[0][:, [batch.covariate_names.index(c) for c in names]]
    ps_kinds = tuple(batch.covariate_kinds[batch.covariate_names.index(c)] for c in names)
    z = float(stats.norm.ppf(0.5 + plan.level / 2.0))

    rows: dict[str, list] = {}
    cohort_details = {}
    for cohort in COHORTS:
        weight = weights[cohort]
        failed = cohort_status[cohort] != st.OK
        pair_ids = matching.pair_id[0] if cohort == "matched" else None
        survival, endpoint_rows = {}, []
        for endpoint in ENDPOINTS:
            time = (batch.pfs_months if endpoint == "pfs" else batch.os_months)[0].astype(float)
            event = (batch.pfs_event if endpoint == "pfs" else batch.os_event)[0].astype(bool)
            analysis = _analyse_endpoint(time, event, treated, weight, pair_ids, plan)
            survival[endpoint] = analysis
            endpoint_rows.append(_endpoint_row(analysis, event, treated, weight, plan, z, cohort_status[cohort]))
        for name in endpoint_rows[0]:
            rows.setdefault(name, []).append([row[name] for row in endpoint_rows])

        responses = _responses(batch.best_response[0], treated, weight, plan.test_rule)
        balance = _balance(ps_covariates, ps_kinds, treated, weight, plan.smd_denominator)
        per_cohort = {
            "n_treated": float(np.rint(weight[treated].sum())),
            "n_control": float(np.rint(weight[~treated].sum())),
            "max_abs_smd": balance.max_abs_smd[0],
            "p_orr": responses.orr_p_value[0],
            "p_dcr": responses.dcr_p_value[0],
            "orr_treated": responses.orr_rate[0, 0],
            "orr_control": responses.orr_rate[0, 1],
            "dcr_treated": responses.dcr_rate[0, 0],
            "dcr_control": responses.dcr_rate[0, 1],
        }
        for name, value in per_cohort.items():
            keep_value = name in ("n_treated", "n_control") or not failed
            rows.setdefault(name, []).append(value if keep_value else math.nan)
        if details:
            cohort_details[cohort] = CohortDetails(
                weights=weight[None],
                balance=_balance(batch.covariates[0], batch.covariate_kinds, treated, weight, plan.smd_denominator),
                baseline_tests=_baseline_tests(batch, weight, plan),
                responses=responses,
                adverse_events=_adverse_events(batch.ae_grade[0], treated, weight, plan.test_rule),
                survival=survival,
            )

    arrays = {name: np.asarray(values)[None] for name, values in rows.items()}
    arrays["status"] = arrays["status"].astype(np.int8)
    propensity = PropensityFit(
        coef=ps_fit.coef[None], ps=ps_fit.ps[None], logit=ps_fit.logit[None],
        converged=np.array([ps_fit.converged]), separated=np.array([ps_fit.separated]),
        rank_deficient=np.array([ps_fit.rank_deficient]), n_iter=np.array([ps_fit.n_iter]),
        status=np.array([ps_fit.status], np.int8),
    )
    return PlanResult(plan=plan, **arrays, n_pairs=matching.n_pairs, ps_status=np.array([ps_status], np.int8),
                      propensity=propensity, matching=matching, ps_columns=ps_columns, details=cohort_details)


def _analyse_endpoint(time, event, treated, weight, pair_ids, plan: Plan) -> EndpointAnalysis:
    strata = pair_ids if (plan.stratify_pairs and pair_ids is not None) else None
    cluster = None
    if plan.cox_se == "robust":
        cluster = pair_ids if pair_ids is not None else np.arange(len(time))
    cox = _cox(time, event, treated, weight, ties=plan.ties, cluster=cluster, strata=strata, level=plan.level)
    logrank = _logrank(time, event, treated, weight, strata)
    medians = []
    for arm in (treated, ~treated):
        median, lower, upper, se, code = _km_median(time, event, np.where(arm, weight, 0.0),
                                                    ci=plan.median_ci, level=plan.level, rule=plan.median_rule)
        medians.append(MedianEstimate(median=np.array([median]), lower=np.array([lower]), upper=np.array([upper]),
                                      se=np.array([se]), status=np.array([code], np.int8)))
    return EndpointAnalysis(cox, logrank, medians[0], medians[1])


def _endpoint_row(analysis: EndpointAnalysis, event, treated, weight, plan: Plan, z, cohort_status) -> dict:
    cox = analysis.cox
    robust = plan.cox_se == "robust"
    code = cohort_status if cohort_status != st.OK else int(cox.status[0])
    failed = code != st.OK
    se = float((cox.robust_se if robust else cox.se)[0])
    log_hr = float(cox.log_hr[0])
    p_value = float((cox.p_value_robust if robust else cox.p_value_model)[0])

    def unless(value, broken):
        return math.nan if broken else float(value)

    cohort_failed = cohort_status != st.OK
    return {
        "log_hr": unless(log_hr, failed),
        "se": unless(se, failed),
        "ci_lower": unless(log_hr - z * se, failed),
        "ci_upper": unless(log_hr + z * se, failed),
        "p_value": unless(p_value, failed),
        "p_logrank": unless(analysis.logrank.p_value[0], cohort_failed),
        "median_treated": unless(analysis.median_treated.median[0], cohort_failed),
        "median_control": unless(analysis.median_control.median[0], cohort_failed),
        "median_treated_lower": unless(analysis.median_treated.lower[0], cohort_failed),
        "median_treated_upper": unless(analysis.median_treated.upper[0], cohort_failed),
        "median_control_lower": unless(analysis.median_control.lower[0], cohort_failed),
        "median_control_upper": unless(analysis.median_control.upper[0], cohort_failed),
        "events_treated": float(np.rint(weight[treated & event].sum())),
        "events_control": float(np.rint(weight[~treated & event].sum())),
        "status": code,
    }
