"""Best overall response (CR/PR/SD/PD) per patient, per arm, optionally linked to prognosis.

Model (cumulative logit, McCullagh 1980): with the codes of ``analysis.cohort.RESPONSE_CODES``
ordered best to worst (CR=0, PR=1, SD=2, PD=3), a patient of arm a with prognostic score s
(the centred PFS log-hazard contribution of the covariates; higher = worse) has

    P(Y <= k | s) = expit(theta_{a,k} - beta * s),   k = 0, 1, 2,

with beta = ``response.pfs_link``. beta = 0 makes response independent of the covariates and
theta_{a,k} = logit of the arm's cumulative target probabilities, so the arm's rates equal the
targets exactly in expectation. With beta != 0 the thresholds are calibrated so the arm's
*marginal* rates, averaged over the distribution of s in that arm, still equal the targets:
mean_i expit(theta_{a,k} - beta s_i) = F_{a,k}, solved by Brent's method per threshold.

**Response from PFS** (``response.model = "pfs"``, with a scan schedule). Best overall response
is read at the scans (mRECIST; Lencioni & Llovet 2010, Semin Liver Dis 30:52-60): progression
(or death) by the first scan at Δ leaves no better response than PD, and a patient without a
PFS event by then has had a scan showing CR, PR or SD. So, with T the patient's (latent) PFS
time, Y = PD exactly when T <= Δ; the arm's PD rate is then P(T <= Δ), which calibration makes
equal the published one (the early PFS hazard, :mod:`sim.calibrate.targets`). Among patients
with T > Δ the better responses go more often to those whose disease is controlled longer, as
objective response goes with longer survival in advanced HCC (Lencioni, Montal, Torres et al.
2017, J Hepatol 66:1166-1172): a cumulative logit on the patient's own log PFS time,

    P(Y <= k | T > Δ, T) = expit(theta_{a,k} + gamma log(T / Δ)),   k = 0 (CR), 1 (CR or PR),

with gamma = ``response.pfs_link`` (the log-odds of a better response per unit of log PFS time;
0 = CR/PR/SD independent of T given T > Δ) and theta_{a,k} calibrated on the calibration
sample so the arm's rates among non-PD patients are CR / (1 - PD) and (CR + PR) / (1 - PD).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numba import njit
from scipy import optimize, special

from sim.generate.memo import memo_by_identity

if TYPE_CHECKING:
    from sim.scenario.model import Scenario

#: Number of thresholds between the four ordered categories.
_N_THRESHOLDS = 3


@dataclass(frozen=True)
class ResponseThresholds:
    """Cumulative-logit thresholds per arm.

    Attributes
    ----------
    arm_names : tuple of str
        Scenario arm names, in ``thresholds`` row order.
    thresholds : ndarray of float, shape (arm, 3)
        theta_{a,k}, non-decreasing in k; -inf/+inf where a cumulative target is 0/1.
    """

    arm_names: tuple[str, ...]
    thresholds: np.ndarray


def target_thresholds(scenario: "Scenario") -> ResponseThresholds:
    """Thresholds without a prognosis link: theta_{a,k} = logit(F_{a,k}), F the arm's
    cumulative target probabilities of CR, CR+PR, CR+PR+SD."""
    rows = [_logit_cumulative(scenario.response.probabilities[arm.name])
            for arm in scenario.arms]
    return ResponseThresholds(arm_names=tuple(arm.name for arm in scenario.arms),
                              thresholds=np.array(rows))


def calibrate_response_thresholds(
    scenario: "Scenario", treated: np.ndarray, prognosis: np.ndarray
) -> ResponseThresholds:
    """Thresholds whose arm-marginal response rates equal the targets, for ``response.pfs_link``.

    Solves mean over the arm's patients of expit(theta_{a,k} - beta s_i) = F_{a,k} for each arm
    and k (the mean is increasing in theta; the root lies in [logit F + min(beta s),
    logit F + max(beta s)]). Call it once on a large calibration sample (e.g. the calibration
    cohort of :mod:`sim.calibrate.targets`) and pass the result to :func:`draw_best_response`.

    Parameters
    ----------
    scenario : Scenario
    treated : ndarray of bool, shape (replicate, patient)
    prognosis : ndarray of float, shape (replicate, patient)
        Centred PFS log-hazard contribution of each patient's covariates.

    Returns
    -------
    ResponseThresholds
    """
    link = float(scenario.response.pfs_link)
    if link == 0.0:
        return target_thresholds(scenario)
    rows = []
    for arm in scenario.arms:
        scores = link * np.asarray(prognosis, dtype=float)[treated == arm.treated]
        if scores.size == 0:
            raise ValueError(f"no patients of arm {arm.name!r} to calibrate the response on")
        cumulative = np.cumsum(scenario.response.probabilities[arm.name])[:_N_THRESHOLDS]
        rows.append([_solve_threshold(float(target), scores) for target in cumulative])
    return ResponseThresholds(arm_names=tuple(arm.name for arm in scenario.arms),
                              thresholds=np.array(rows))


def calibrate_pfs_response_thresholds(
    scenario: "Scenario", treated: np.ndarray, pfs_months: np.ndarray
) -> ResponseThresholds:
    """Thresholds of the response-from-PFS model (module docstring) on a large sample.

    Solves, per arm and k = 0, 1, mean over the arm's patients with T > Δ of
    expit(theta_{a,k} + gamma log(T / Δ)) = F_{a,k} / (1 - PD_a); the third threshold (SD vs
    PD) is +inf (PD is decided by T).

    Parameters
    ----------
    scenario : Scenario
        With ``response.model = "pfs"`` and ``outcome.assessment``.
    treated : ndarray of bool, shape (patient,)
    pfs_months : ndarray of float, shape (patient,)
        Latent PFS times (months) of the calibrated model.

    Returns
    -------
    ResponseThresholds
    """
    first_scan = scenario.outcome.assessment.interval_months
    link = float(scenario.response.pfs_link)
    rows = []
    for arm in scenario.arms:
        times = np.asarray(pfs_months, dtype=float)[(treated == arm.treated)
                                                     & (pfs_months > first_scan)]
        if times.size == 0:
            raise ValueError(f"no patients of arm {arm.name!r} progression-free at the first "
                             "scan to calibrate the response on")
        probabilities = scenario.response.probabilities[arm.name]
        cumulative = np.cumsum(probabilities)[:2] / (1.0 - probabilities[3])
        scores = -link * np.log(times / first_scan)
        rows.append([_solve_threshold(float(min(target, 1.0)), scores) for target in cumulative]
                    + [np.inf])
    return ResponseThresholds(arm_names=tuple(arm.name for arm in scenario.arms),
                              thresholds=np.array(rows))


def draw_best_response(
    scenario: "Scenario",
    treated: np.ndarray,
    prognosis: np.ndarray | None,
    *,
    rng: np.random.Generator,
    thresholds: ResponseThresholds | None = None,
    pfs_months: np.ndarray | None = None,
) -> np.ndarray:
    """Draw each patient's best overall response.

    Parameters
    ----------
    scenario : Scenario
    treated : ndarray of bool, shape (replicate, patient)
    prognosis : ndarray of float, shape (replicate, patient), or None
        Centred PFS log-hazard contribution of each patient's covariates (higher = worse).
        Ignored (may be None) when ``response.pfs_link`` is 0.
    rng : numpy.random.Generator
        One uniform per patient is drawn, whatever the link.
    thresholds : ResponseThresholds, optional
        From :func:`calibrate_response_thresholds` on a large sample. If omitted and the link
        is non-zero, the thresholds are calibrated on this batch's own prognosis (exact for the
        batch's pooled patients; a small approximation to the population calibration for a
        small batch).
    pfs_months : ndarray of float, shape (replicate, patient), optional
        Latent PFS times; required by ``response.model = "pfs"`` (PD exactly when PFS ends by
        the first scan; then ``prognosis`` is ignored).

    Returns
    -------
    ndarray of int8, shape (replicate, patient)
        CR=0, PR=1, SD=2, PD=3 (``analysis.cohort.RESPONSE_CODES``): the number of thresholds
        k with U >= P(Y <= k | s), U ~ Uniform(0, 1).
    """
    treated = np.asarray(treated, dtype=bool)
    link = float(scenario.response.pfs_link)
    if scenario.response.model == "pfs":
        return _draw_from_pfs(scenario, treated, pfs_months, rng=rng, thresholds=thresholds)
    if link != 0.0 and prognosis is None:
        raise ValueError("prognosis is required when response.pfs_link is non-zero")
    if thresholds is None:
        thresholds = (target_thresholds(scenario) if link == 0.0
                      else calibrate_response_thresholds(scenario, treated, prognosis))
    theta = _arm_rows(scenario, thresholds)
    arm = treated.astype(np.intp).ravel()
    cumulative = np.empty(treated.shape + (theta.shape[1],))
    if link != 0.0:
        score = link * np.asarray(prognosis, dtype=float)  # theta - beta s, numpy's order
        _shifted_thresholds(theta, arm, np.broadcast_to(score, treated.shape).ravel(), -1.0,
                            cumulative.reshape(arm.size, -1))
    else:
        _shifted_thresholds(theta, arm, np.zeros(0), 0.0, cumulative.reshape(arm.size, -1))
    special.expit(cumulative, out=cumulative)
    uniform = rng.random(treated.shape)
    response = np.empty(treated.shape, dtype=np.int8)
    _categories(uniform.ravel(), cumulative.reshape(arm.size, -1), np.zeros(0), 0.0,
                response.reshape(-1))
    return response


def _draw_from_pfs(scenario, treated, pfs_months, *, rng, thresholds):
    """Best response of the response-from-PFS model (module docstring)."""
    if pfs_months is None:
        raise ValueError("pfs_months is required when response.model is 'pfs'")
    pfs_months = np.asarray(pfs_months, dtype=float)
    first_scan = scenario.outcome.assessment.interval_months
    if thresholds is None:
        thresholds = calibrate_pfs_response_thresholds(scenario, treated.ravel(),
                                                       pfs_months.ravel())
    theta = _arm_rows(scenario, thresholds)[:, :2]
    arm = treated.astype(np.intp).ravel()
    times = pfs_months.ravel()
    # gamma log(T / Δ), with T = Δ (score 0) for the patients who are PD anyway.
    score = np.empty(times.shape)
    _scan_ratio(times, first_scan, score)
    np.log(score, out=score)
    score = float(scenario.response.pfs_link) * score
    cumulative = np.empty(treated.shape + (2,))
    _shifted_thresholds(theta, arm, score, 1.0, cumulative.reshape(arm.size, 2))
    special.expit(cumulative, out=cumulative)
    uniform = rng.random(treated.shape)
    response = np.empty(treated.shape, dtype=np.int8)
    _categories(uniform.ravel(), cumulative.reshape(arm.size, 2), times, first_scan,
                response.reshape(-1))
    return response


@memo_by_identity
def _arm_rows(scenario: "Scenario", thresholds: ResponseThresholds) -> np.ndarray:
    """The thresholds of the control arm (row 0) and the treated arm (row 1), shape (2, 3),
    once per (scenario, thresholds) pair of objects (read-only)."""
    rows = {name: row for name, row in zip(thresholds.arm_names, thresholds.thresholds)}
    theta = np.stack([rows[scenario.control_arm.name], rows[scenario.treated_arm.name]])
    theta = np.asarray(theta, dtype=float)
    theta.flags.writeable = False
    return theta


@njit(cache=True)
def _scan_ratio(pfs_months, first_scan, out):
    """``out[i]`` = T_i / Δ, or Δ / Δ where T_i <= Δ (numpy's ``where(T <= Δ, Δ, T) / Δ``)."""
    for i in range(pfs_months.size):
        value = pfs_months[i]
        out[i] = (first_scan if value <= first_scan else value) / first_scan


@njit(cache=True)
def _shifted_thresholds(theta, arm, score, sign, out):
    """``out[i, k]`` = theta[arm[i], k] + score[i] (sign 1), theta[arm[i], k] - score[i]
    (sign -1), or theta[arm[i], k] (sign 0; ``score`` unused): the logits before expit."""
    for i in range(arm.size):
        for k in range(theta.shape[1]):
            if sign > 0.0:
                out[i, k] = theta[arm[i], k] + score[i]
            elif sign < 0.0:
                out[i, k] = theta[arm[i], k] - score[i]
            else:
                out[i, k] = theta[arm[i], k]


@njit(cache=True)
def _categories(uniform, cumulative, pfs_months, first_scan, out):
    """``out[i]`` = the number of k with U_i >= cumulative[i, k] (CR 0 .. PD 3), or 3 (PD)
    where ``pfs_months`` is given (non-empty) and T_i <= Δ = ``first_scan``."""
    from_pfs = pfs_months.size > 0
    for i in range(uniform.size):
        if from_pfs and pfs_months[i] <= first_scan:
            out[i] = 3
            continue
        count = 0
        for k in range(cumulative.shape[1]):
            if uniform[i] >= cumulative[i, k]:
                count += 1
        out[i] = count


def _logit_cumulative(probabilities: tuple[float, ...]) -> list[float]:
    cumulative = np.cumsum(probabilities)[:_N_THRESHOLDS]
    return [_logit(float(f)) for f in cumulative]


def _logit(probability: float) -> float:
    if probability <= 0.0:
        return -np.inf
    if probability >= 1.0:
        return np.inf
    return float(special.logit(probability))


def _solve_threshold(target: float, scores: np.ndarray) -> float:
    if target <= 0.0:
        return -np.inf
    if target >= 1.0:
        return np.inf
    base = float(special.logit(target))
    low, high = base + float(scores.min()), base + float(scores.max())
    if low == high:
        return low

    def excess(theta: float) -> float:
        return float(special.expit(theta - scores).mean()) - target

    return float(optimize.brentq(excess, low, high, xtol=1e-13, rtol=1e-13))
