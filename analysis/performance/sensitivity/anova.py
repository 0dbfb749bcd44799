"""Which design factors move a performance measure: an ANOVA decomposition with η², beside the
share of each term that Monte Carlo noise alone would produce.

SimDesign's ``SimAnova`` (Chalmers & Adkins 2020) fits a linear model of a performance measure
(one value per grid point of a factorial design) on the design factors and reports each term's
sum of squares as a share of the total, η² = SS_term / SS_total, and partial
η² = SS_term / (SS_term + SS_residual); rates (power, coverage) go on the logit scale first.
This module does the same, with two additions a stochastic simulator needs:

* **Noise.** Each grid point's value is an estimate with Monte Carlo SE ``s_g``. Under the
  null that a term has no effect, its sum of squares is the quadratic form ``e' P e`` of the
  noise ``e`` (``P`` = the term's projection, below), with expectation
  ``sum_g P_gg s_g²`` (independent noise). That expected noise SS, its share of the term's SS
  and of the total, and the probability that noise alone gives a SS this large
  (Satterthwaite's scaled χ² for the weighted sum of χ²₁ variables) are reported for every
  term. With common random numbers across grid points the noise is positively correlated and
  cancels in contrasts, so the independent-noise figures are upper bounds.
* **Logit scale** for rates: ``logit(p̂)`` with ``p̂`` moved into ``[1/(2n), 1 - 1/(2n)]``
  (``n`` replicates used) so 0 and 1 stay finite, and the delta-method SE
  ``1 / sqrt(n p̂ (1 - p̂))``.

Sums of squares are SimDesign's (after ``lsr::etaSquared``, "type II"): a term's SS is the
drop in the residual SS when the term is added to the model holding every term that does not
contain it. ``P`` is the difference of the two models' hat matrices. For a balanced full
factorial these are the classical orthogonal sums of squares. Factors are treated as discrete
(one level per distinct value, treatment-coded); terms are all main effects and interactions
up to ``order``; the residual is everything else (it is zero when ``order`` equals the number of
factors in a full factorial).

References
----------
Chalmers RP, Adkins MC (2020). Writing effective and reliable Monte Carlo simulations with the
SimDesign package. Quant Methods Psychol 16:248-280 (``SimAnova``). Satterthwaite FE (1946). An
approximate distribution of estimates of variance components. Biometrics Bull 2:110-114.
Box GEP (1954). Some theorems on quadratic forms applied in the study of analysis of variance
problems. Ann Math Stat 25:290-302 (the moments of ``e' P e``).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Mapping, Sequence

import numpy as np
from scipy import stats

__all__ = ["EtaSquared", "eta_squared", "logit_with_mcse"]

RESIDUAL = "Residuals"


@dataclass(frozen=True)
class EtaSquared:
    """ANOVA decomposition of one measure over the design factors.

    Every array has shape (term,), the terms in :attr:`terms` order; the last term is
    ``"Residuals"`` (its η² is the share no term explains; its partial η² and noise p-value
    are NaN).

    Attributes
    ----------
    terms : term labels: factor names, interactions joined by ``":"``, then ``"Residuals"``.
    df : degrees of freedom.
    sum_of_squares : SS of each term (SimDesign's type II).
    eta_squared : SS / SS_total.
    partial_eta_squared : SS / (SS + SS_residual) (NaN for the residual and when both are 0).
    noise_sum_of_squares : expected SS from Monte Carlo noise alone (independent noise;
        NaN when no MCSEs were given).
    eta_squared_noise : noise SS / SS_total: the η² an inert term would show on average.
    noise_share : noise SS / SS: the share of the term's SS that noise would explain
        (values near or above 1: the term is indistinguishable from noise).
    noise_p_value : probability that noise alone gives a SS at least this large.
    total_sum_of_squares : SS of the measure around its mean (0 when the measure is constant
        over the grid, e.g. a method no factor changes: every η² is then NaN).
    n_points : grid points used (those with a finite value and, if given, a finite MCSE).
    scale : ``"identity"`` or ``"logit"``.
    """

    terms: tuple[str, ...]
    df: np.ndarray
    sum_of_squares: np.ndarray
    eta_squared: np.ndarray
    partial_eta_squared: np.ndarray
    noise_sum_of_squares: np.ndarray
    eta_squared_noise: np.ndarray
    noise_share: np.ndarray
    noise_p_value: np.ndarray
    total_sum_of_squares: float
    n_points: int
    scale: str


def logit_with_mcse(rate, n_used):
    """Logit of a rate and its delta-method Monte Carlo SE.

    Parameters
    ----------
    rate : array_like in [0, 1], shape (G,)
        A proportion of replicates (power, coverage, ...).
    n_used : array_like, shape (G,)
        Replicates it is a proportion of.

    Returns
    -------
    (logit, mcse) : ndarrays, shape (G,)
        ``logit(p̃)`` and ``1 / sqrt(n p̃ (1 - p̃))`` with ``p̃`` the rate moved into
        ``[1/(2n), 1 - 1/(2n)]``; NaN where ``n < 1`` or the rate is NaN.
    """
    rate = np.asarray(rate, dtype=float)
    n = np.asarray(n_used, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        edge = 0.5 / n
        p = np.clip(rate, edge, 1.0 - edge)
        p = np.where(n >= 1, p, np.nan)
        return np.log(p / (1.0 - p)), 1.0 / np.sqrt(n * p * (1.0 - p))


def _levels(values: np.ndarray) -> np.ndarray:
    """Level index of each point (distinct values in sorted order; strings allowed)."""
    _, index = np.unique(np.asarray(values), return_inverse=True)
    return index.reshape(-1)


def _term_columns(codes: Sequence[np.ndarray], term: tuple[int, ...]) -> np.ndarray:
    """Treatment-coded columns of an interaction term (products of its factors' dummies)."""
    columns = np.ones((codes[0].size, 1))
    for factor in term:
        levels = codes[factor].max() + 1
        dummies = (codes[factor][:, None] == np.arange(1, levels)[None, :]).astype(float)
        columns = (columns[:, :, None] * dummies[:, None, :]).reshape(codes[0].size, -1)
    return columns


def _hat(matrix: np.ndarray) -> np.ndarray:
    return matrix @ np.linalg.pinv(matrix)


def _noise_p_value(statistic: float, projection: np.ndarray, noise_variance: np.ndarray) -> float:
    """P(e' P e >= statistic) for e ~ N(0, diag(noise_variance)), by Satterthwaite's scaled χ²."""
    weighted = projection * noise_variance[None, :]
    mean = np.trace(weighted)
    variance = 2.0 * np.sum(weighted * weighted.T)
    if not np.isfinite(mean) or mean <= 0 or variance <= 0:
        return float("nan")
    scale, dof = variance / (2.0 * mean), 2.0 * mean**2 / variance
    return float(stats.chi2.sf(statistic / scale, dof))


def eta_squared(
    response,
    factors: Mapping[str, Sequence],
    *,
    mcse=None,
    order: int = 2,
    logit: bool = False,
    n_used=None,
) -> EtaSquared:
    """ANOVA decomposition (η², partial η²) of a measure over discrete design factors, with
    the Monte Carlo noise share of every term.

    Parameters
    ----------
    response : array_like, shape (G,)
        The measure at each grid point (e.g. power of the log-rank test).
    factors : mapping name -> array_like, shape (G,)
        Each factor's value at each grid point (numbers or strings; every distinct value is
        a level).
    mcse : array_like, shape (G,), optional
        Monte Carlo SE of ``response`` at each point (ignored when ``logit``: the logit-scale
        SE comes from ``n_used``).
    order : int, keyword-only
        Highest interaction order in the model (1: main effects only; default 2).
    logit : bool, keyword-only
        Analyse ``logit(response)`` (for rates, as SimDesign's ``SimAnova(rates=TRUE)``);
        needs ``n_used``.
    n_used : array_like, shape (G,), optional
        Replicates behind each rate (for ``logit``).

    Returns
    -------
    EtaSquared

    Raises
    ------
    ValueError
        No factor, mismatched lengths, ``logit`` without ``n_used``, fewer than two usable
        points.

    References
    ----------
    Chalmers & Adkins (2020), ``SimAnova``; Satterthwaite (1946) for the noise p-value.
    """
    if not factors:
        raise ValueError("factors: name at least one design factor")
    y = np.asarray(response, dtype=float).reshape(-1)
    names = list(factors)
    values = [np.asarray(factors[name]).reshape(-1) for name in names]
    for name, column in zip(names, values):
        if column.size != y.size:
            raise ValueError(f"factors[{name!r}]: {column.size} values for {y.size} grid points")
    if logit:
        if n_used is None:
            raise ValueError("logit=True needs n_used (the replicates behind each rate)")
        y, noise_sd = logit_with_mcse(y, n_used)
    else:
        noise_sd = np.full(y.size, np.nan) if mcse is None else np.asarray(mcse, dtype=float).reshape(-1)
    have_noise = mcse is not None or logit
    keep = np.isfinite(y) & (np.isfinite(noise_sd) if have_noise else True)
    if keep.sum() < 2:
        raise ValueError("response: fewer than two grid points with a finite value")
    y, noise_variance = y[keep], noise_sd[keep] ** 2
    codes = [_levels(column[keep]) for column in values]
    order = max(1, min(int(order), len(names)))
    terms = [term for k in range(1, order + 1) for term in combinations(range(len(names)), k)]
    blocks = {term: _term_columns(codes, term) for term in terms}
    intercept = np.ones((y.size, 1))

    def model(included):
        return np.hstack([intercept, *(blocks[t] for t in terms if t in included)])

    full_hat = _hat(model(set(terms)))
    residual_projection = np.eye(y.size) - full_hat
    rows = []
    for term in terms:
        containing = {t for t in terms if set(term) <= set(t)}
        without = _hat(model(set(terms) - containing))
        with_term = _hat(model((set(terms) - containing) | {term}))
        projection = with_term - without
        rows.append((":".join(names[i] for i in term), projection))
    rows.append((RESIDUAL, residual_projection))

    centred = y - y.mean()
    total = float(centred @ centred)
    if np.ptp(y) <= 1e-12 * max(1.0, float(np.max(np.abs(y)))):
        total = 0.0  # the measure does not vary over the grid: nothing to decompose
    labels, dfs, ss, noise_ss, p_values = [], [], [], [], []
    for label, projection in rows:
        labels.append(label)
        dfs.append(round(float(np.trace(projection))))
        ss.append(max(float(y @ projection @ y), 0.0) if total > 0 else 0.0)
        if have_noise:
            noise_ss.append(max(float(np.diag(projection) @ noise_variance), 0.0))
            p_values.append(float("nan") if label == RESIDUAL
                            else _noise_p_value(ss[-1], projection, noise_variance))
        else:
            noise_ss.append(float("nan"))
            p_values.append(float("nan"))
    ss_arr, noise_arr = np.array(ss), np.array(noise_ss)
    residual_ss = ss_arr[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        eta = ss_arr / total if total > 0 else np.full(len(ss), np.nan)
        partial = ss_arr / (ss_arr + residual_ss)
        partial[-1] = np.nan
        eta_noise = noise_arr / total if total > 0 else np.full(len(ss), np.nan)
        share = np.where(ss_arr > 0, noise_arr / np.where(ss_arr > 0, ss_arr, 1.0), np.nan)
    return EtaSquared(
        terms=tuple(labels), df=np.array(dfs), sum_of_squares=ss_arr, eta_squared=eta,
        partial_eta_squared=partial, noise_sum_of_squares=noise_arr,
        eta_squared_noise=eta_noise, noise_share=share, noise_p_value=np.array(p_values),
        total_sum_of_squares=total, n_points=int(y.size), scale="logit" if logit else "identity",
    )
