"""Reference Kaplan-Meier medians with their CIs, log-rank and Cox on one cohort.

lifelines ``KaplanMeierFitter`` and ``logrank_test``, statsmodels ``PHReg`` (Breslow) and
lifelines ``CoxPHFitter`` (Efron); Greenwood sums, Brookmeyer-Crowley band inversion
(Brookmeyer & Crowley 1982, Biometrics 38:29-41), the SPSS symmetric interval (Collett 1994,
section 2.4) and Efron-consistent score residuals for the Lin-Wei robust SE (Lin & Wei 1989,
JASA 84:1074-1078; Therneau & Grambsch 2000) written out here.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats

from analysis import status as st
from analysis.plan.reference.libraries import statsmodels_classes
from analysis.survival.cox import CoxResult
from analysis.survival.logrank import LogrankResult

#: "S(t) equals p" tolerance of the median rules (R ``quantile.survfit``).
_TOLERANCE = math.sqrt(np.finfo(float).eps)
#: A fitted |log HR| beyond this counts as not converged (as the batched engine).
_MAX_ABS_LOG_HR = 20.0




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


def km_median_one(time, event, weight, *, ci, level, rule="midpoint") -> tuple[float, float, float, float, int]:
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


def logrank_one(time, event, treated, weight, strata) -> LogrankResult:
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
    *_, PHReg = statsmodels_classes()
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


def cox_one(time, event, treated, weight, *, ties, cluster, strata, level) -> CoxResult:
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
