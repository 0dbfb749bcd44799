"""Baseline covariates of B cohorts drawn through a Gaussian copula.

:func:`draw_covariates`: a latent multivariate normal with the scenario's correlation matrix,
pushed through each marginal's inverse CDF (Gaussian copula; Nelsen 2006, ch. 2). Table mode
draws each arm from its own marginals; selection mode draws one population and assigns
treatment from the stated logistic model. The marginals were fitted to the printed summaries
by :mod:`sim.generate.marginals` when the scenario was read.

The latent correlation is the correlation of the normal scores, not of the observed values:
for a binary or categorical covariate it is the tetrachoric/polychoric correlation, for a
continuous pair it relates to Spearman's rho by rho_latent = 2 sin(pi rho_s / 6)
(Pearson 1907; Kruskal 1958).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Mapping

import numpy as np
from numba import njit
from scipy import special

from sim.generate.memo import memo_by_identity
from sim.generate.normal_draws import standard_normal
from sim.generate.scipy_kernels import ndtr as scipy_ndtr
from sim.generate.scipy_kernels import ndtri as scipy_ndtri

if TYPE_CHECKING:
    from sim.scenario.model import Covariate, Marginal, Scenario

#: Covariate kinds as the analysis sees them (``analysis.cohort.ANALYSIS_KINDS``).
_ANALYSIS_KIND = {
    "binary": "binary",
    "categorical": "categorical",
    "normal": "continuous",
    "lognormal": "continuous",
}


@dataclass(frozen=True)
class DrawnCovariates:
    """Baseline data of B replicate cohorts of N patients.

    Attributes
    ----------
    values : ndarray of float, shape (replicate, patient, covariate)
        Covariates in scenario order: binary 0/1, categorical level index 0..k-1, continuous in
        their own units.
    treated : ndarray of bool, shape (replicate, patient)
        True for the experimental arm. Table mode: arms in file order, fixed sizes. Selection
        mode: drawn from the logistic treatment model.
    unmeasured : ndarray of bool, shape (replicate, patient)
        The unmeasured binary confounder U (all False when the scenario has none).
    true_ps : ndarray of float, shape (replicate, patient)
        Selection mode: the true propensity score P(treated | X) (marginal over U). Table mode:
        NaN (arm sizes are fixed; there is no individual treatment model).
    names : tuple of str
        Covariate names (CSV columns) in ``values`` order.
    kinds : tuple of str
        ``"binary"``, ``"categorical"`` or ``"continuous"`` per covariate.
    """

    values: np.ndarray
    treated: np.ndarray
    unmeasured: np.ndarray
    true_ps: np.ndarray
    names: tuple[str, ...]
    kinds: tuple[str, ...]


def draw_covariates(
    scenario: "Scenario", n_replicates: int, *, rng: np.random.Generator
) -> DrawnCovariates:
    """Draw the baseline covariates, arm and unmeasured confounder of ``n_replicates`` cohorts.

    Table mode: each arm's ``size`` patients (arms in file order, so N = sum of arm sizes) are
    drawn from that arm's marginals. Selection mode: ``selection.patients`` patients from the
    population marginals, then treated ~ Bernoulli(expit(intercept + sum_c log_odds_c x_c
    [+ unmeasured_log_odds U])). In both modes the covariates share one Gaussian copula: latent
    Z ~ N(0, R) with R = ``scenario.correlation``, then X_c = F_c^{-1}(Phi(Z_c)) — binary
    X = 1{Z > Phi^{-1}(1 - p)}, categorical by cut points at Phi^{-1} of the cumulative
    probabilities, truncated normal by its inverse CDF, lognormal exp(mu + sigma Z) (two-piece
    lognormal: sigma below Z = 0, sigma_upper above).

    U ~ Bernoulli(prevalence of the patient's arm), independent of X given the arm (table mode,
    and selection mode with per-arm prevalences, drawn after treatment); selection mode with a
    ``population`` prevalence draws U first, independent of X, and lets it enter the treatment
    model through ``selection.unmeasured_log_odds``.

    Random numbers are consumed in a fixed order (latent normals, then U uniforms, then treatment
    uniforms), whether or not the scenario has an unmeasured confounder.

    Parameters
    ----------
    scenario : Scenario
    n_replicates : int
        B, the number of cohorts.
    rng : numpy.random.Generator

    Returns
    -------
    DrawnCovariates
        Arrays shaped (B, N[, covariate]).
    """
    if n_replicates < 1:
        raise ValueError(f"n_replicates must be >= 1, got {n_replicates}")
    constants = _constants(scenario)
    k = len(scenario.covariates)
    names, kinds = constants.names, constants.kinds

    if scenario.mode == "table":
        n_patients = sum(arm.size for arm in scenario.arms)
        values = np.empty((n_replicates, n_patients, k))
        treated = np.empty((n_replicates, n_patients), dtype=bool)
        # Each arm's (B, size, K) normals in turn, in one call: the stream of one call per arm.
        standard = standard_normal(rng, (n_replicates * n_patients * k,))
        start = 0
        for arm in scenario.arms:
            drawn = standard[n_replicates * start * k:n_replicates * (start + arm.size) * k]
            _draw_values(constants.cholesky_t, constants.marginals[arm.name],
                         drawn.reshape(n_replicates, arm.size, k),
                         values[:, start:start + arm.size])
            treated[:, start:start + arm.size] = arm.treated
            start += arm.size
        unmeasured_uniform = rng.random(treated.shape)
        unmeasured = _draw_unmeasured_given_arm(scenario, treated, unmeasured_uniform)
        true_ps = np.full(treated.shape, np.nan)
        return DrawnCovariates(values=values, treated=treated, unmeasured=unmeasured,
                               true_ps=true_ps, names=names, kinds=kinds)

    selection = scenario.selection
    shape = (n_replicates, selection.patients)
    values = np.empty(shape + (k,))
    _draw_values(constants.cholesky_t, constants.marginals["population"],
                 standard_normal(rng, values.shape), values)
    unmeasured_uniform = rng.random(shape)
    treatment_uniform = rng.random(shape)
    linear_predictor = np.full(shape, float(selection.intercept))
    for index, covariate in enumerate(scenario.covariates):
        coefficient = selection.log_odds.get(covariate.name)
        if coefficient is None:
            continue
        linear_predictor += _covariate_effect(values[..., index], coefficient)

    unmeasured_log_odds = float(getattr(selection, "unmeasured_log_odds", 0.0))
    population_prevalence = None
    if scenario.unmeasured is not None and "population" in scenario.unmeasured.prevalence:
        population_prevalence = float(scenario.unmeasured.prevalence["population"])
    if population_prevalence is not None:
        unmeasured = unmeasured_uniform < population_prevalence
        treated = treatment_uniform < special.expit(
            linear_predictor + unmeasured_log_odds * unmeasured)
        true_ps = (population_prevalence * special.expit(linear_predictor + unmeasured_log_odds)
                   + (1.0 - population_prevalence) * special.expit(linear_predictor))
    else:
        true_ps = special.expit(linear_predictor)
        treated = treatment_uniform < true_ps
        unmeasured = _draw_unmeasured_given_arm(scenario, treated, unmeasured_uniform)
    return DrawnCovariates(values=values, treated=treated, unmeasured=unmeasured,
                           true_ps=true_ps, names=names, kinds=kinds)


def latent_to_value(latent: np.ndarray, kind: str, marginal: "Marginal") -> np.ndarray:
    """Map standard-normal latent scores to covariate values through one marginal.

    ``latent`` is any-shaped float array of N(0, 1) scores; returns the same shape (float).
    The map is non-decreasing, so the copula's dependence is kept. Lognormal:
    exp(mu + sigma Z), or for the two-piece lognormal exp(mu + sigma Z) for Z < 0 and
    exp(mu + sigma_upper Z) for Z >= 0 (continuous at Z = 0, the median).
    """
    if kind == "binary":
        return (latent > -special.ndtri(marginal.p)).astype(float)
    if kind == "categorical":
        cumulative = np.cumsum(marginal.probabilities)[:-1]
        cut_points = special.ndtri(np.clip(cumulative, 0.0, 1.0))
        level = np.zeros(latent.shape)
        for cut in cut_points:
            level += latent > cut
        return level
    if kind == "normal":
        return _truncated_normal_from_latent(
            latent, marginal.mean, marginal.sd, marginal.lower, marginal.upper)
    if kind == "lognormal":
        if marginal.sigma_upper is None:
            return np.exp(marginal.mu + marginal.sigma * latent)
        scale = np.where(latent < 0.0, marginal.sigma, marginal.sigma_upper)
        return np.exp(marginal.mu + scale * latent)
    raise ValueError(f"unknown covariate kind {kind!r}; valid: {', '.join(_ANALYSIS_KIND)}")


#: Patients per chunk of the latent-to-value arithmetic of :func:`_draw_values` (~1.4 MiB of
#: latent scores with liu2021's 22 covariates): temporaries that stay in cache and are reused,
#: not fresh arrays of the whole block (at 10,000 patients x 100 replicates each was 60-180 MB,
#: paid again in page faults on every use).
_CHUNK_PATIENTS = 8192


@dataclass(frozen=True)
class _MarginalTable:
    """One key's marginals (an arm, or ``"population"``) as arrays for :func:`_apply_marginals`.

    Attributes
    ----------
    binary : ndarray of intp, shape (binary,)
        Columns of the binary covariates; ``cut`` their latent cut points -Phi^{-1}(p).
    lognormal : ndarray of intp, shape (lognormal,)
        Columns of the lognormal covariates; ``mu``, ``sigma`` and ``upper`` (sigma above the
        median: ``sigma_upper``, or ``sigma`` for a plain lognormal) their parameters.
    normal : ndarray of intp, shape (normal,)
        Columns of the (truncated) normal covariates; ``normal_parameters`` their rows of
        :func:`_normal_parameters`, shape (normal, 7).
    others : tuple of (int, str, Marginal)
        Column, kind and marginal of every other covariate (categorical), mapped by
        :func:`latent_to_value`.
    """

    binary: np.ndarray
    cut: np.ndarray
    lognormal: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray
    upper: np.ndarray
    normal: np.ndarray
    normal_parameters: np.ndarray
    others: tuple


@dataclass(frozen=True)
class _Constants:
    """What :func:`draw_covariates` derives from a scenario alone (:func:`_constants`).

    Attributes
    ----------
    cholesky_t : ndarray, shape (covariate, covariate)
        L^T, L the lower Cholesky factor of the latent correlation (the transposed view of
        the C-ordered factor, as numpy's ``cholesky(R).T``).
    marginals : dict of str to _MarginalTable
        Per arm (table mode) or ``"population"`` (selection mode).
    names, kinds : tuple of str
        As :class:`DrawnCovariates`.
    """

    cholesky_t: np.ndarray
    marginals: dict
    names: tuple[str, ...]
    kinds: tuple[str, ...]


def _marginal_table(covariates: tuple["Covariate", ...], key: str) -> _MarginalTable:
    binary = np.array([i for i, c in enumerate(covariates) if c.kind == "binary"], dtype=np.intp)
    lognormal = np.array([i for i, c in enumerate(covariates) if c.kind == "lognormal"],
                         dtype=np.intp)
    cut = np.array([-special.ndtri(covariates[i].marginals[key].p) for i in binary], dtype=float)
    marginals = [covariates[i].marginals[key] for i in lognormal]
    table = _MarginalTable(
        binary=binary, cut=cut, lognormal=lognormal,
        mu=np.array([m.mu for m in marginals], dtype=float),
        sigma=np.array([m.sigma for m in marginals], dtype=float),
        upper=np.array([m.sigma if m.sigma_upper is None else m.sigma_upper for m in marginals],
                       dtype=float),
        normal=np.array([i for i, c in enumerate(covariates) if c.kind == "normal"],
                        dtype=np.intp),
        normal_parameters=np.array(
            [_normal_parameters(m.mean, m.sd, m.lower, m.upper)
             for m in (c.marginals[key] for c in covariates if c.kind == "normal")],
            dtype=float).reshape(-1, 7),
        others=tuple((index, c.kind, c.marginals[key]) for index, c in enumerate(covariates)
                     if c.kind not in ("binary", "lognormal", "normal")))
    for array in (table.binary, table.cut, table.lognormal, table.mu, table.sigma, table.upper,
                  table.normal, table.normal_parameters):
        array.flags.writeable = False
    return table


@memo_by_identity
def _constants(scenario: "Scenario") -> _Constants:
    """The Cholesky factor and marginal tables of ``scenario``, computed once per scenario
    object (:mod:`sim.generate.memo`)."""
    k = len(scenario.covariates)
    correlation = np.asarray(scenario.correlation, dtype=float).reshape(k, k)
    cholesky = np.linalg.cholesky(correlation) if k else correlation  # none: a (0, 0) factor
    cholesky.flags.writeable = False
    keys = ([arm.name for arm in scenario.arms] if scenario.mode == "table" else ["population"])
    return _Constants(
        cholesky_t=cholesky.T,
        marginals={key: _marginal_table(scenario.covariates, key) for key in keys},
        names=scenario.covariate_names,
        kinds=tuple(_ANALYSIS_KIND[c.kind] for c in scenario.covariates))


def _draw_values(cholesky_t: np.ndarray, table: _MarginalTable, standard: np.ndarray,
                 out: np.ndarray) -> None:
    """From the standard normals E shaped ``out.shape`` (replicate, patient, K), write the
    covariate values into ``out``: latent Z = E L^T (``cholesky_t`` = L^T, L the Cholesky
    factor of R) through the marginals ``table`` (:func:`_apply_marginals`).

    The arithmetic runs over chunks of whole replicates (:data:`_CHUNK_PATIENTS` patients;
    one chunk for blocks up to that size), each as one (rows, K) @ (K, K) product. A row's
    product does not depend on how many rows are multiplied with it (BLAS's order per row;
    checked equal to numpy's stacked (B, N, K) @ (K, K), the former code, for 1 to 350,000
    rows), and the marginals are elementwise, so the values are those of the whole block at
    once."""
    n_replicates, n_patients, k = out.shape
    step = max(1, _CHUNK_PATIENTS // max(n_patients, 1))
    for first in range(0, n_replicates, step):
        part = standard[first:first + step]
        latent = (part.reshape(part.shape[0] * n_patients, k) @ cholesky_t).reshape(part.shape)
        _apply_marginals(latent, table, out=out[first:first + step])


def _apply_marginals(latent: np.ndarray, table: _MarginalTable, *, out: np.ndarray) -> None:
    """:func:`latent_to_value` of every column (one key's marginals, ``table``) into ``out``
    (the shape of ``latent``).

    The binary and lognormal columns (liu2021: 13 and 7 of 22) are mapped in one compiled pass
    (:func:`_binary_and_log_scale`) and one numpy ``exp`` over all lognormal exponents, instead
    of a dozen numpy calls per column, and the normal columns in another
    (:func:`_normal_columns`); each element gets the same operations on the same doubles as
    :func:`latent_to_value` gives it, so the values are identical. Categorical columns go
    column by column."""
    exponent = np.empty(latent.shape[:-1] + (table.lognormal.size,))
    _binary_and_log_scale(latent, table.binary, table.cut, table.lognormal, table.mu,
                          table.sigma, table.upper, out, exponent)
    if table.lognormal.size:
        np.exp(exponent, out=exponent)  # numpy's exp, as latent_to_value: the same doubles
        _scatter_columns(exponent, table.lognormal, out)
    if table.normal.size:
        _normal_columns(latent, table.normal, table.normal_parameters, out)
    for index, kind, marginal in table.others:
        out[..., index] = latent_to_value(latent[..., index], kind, marginal)


@njit(cache=True)
def _binary_and_log_scale(latent, binary, cut, lognormal, mu, sigma, upper, out, exponent):
    """One pass over (replicate, patient): ``out[..., binary[q]]`` = 1.0 where
    latent > cut[q] (else 0.0, as ``(latent > cut).astype(float)``), and
    ``exponent[..., q]`` = mu[q] + s latent at ``lognormal[q]``, s = sigma[q] below 0 and
    upper[q] from 0 (NaN: upper, as ``np.where(latent < 0, ...)``), the operations of
    :func:`latent_to_value` in its order; its exp is taken by numpy."""
    n_replicates, n_patients = latent.shape[:2]
    for b in range(n_replicates):
        for i in range(n_patients):
            for q in range(binary.size):
                out[b, i, binary[q]] = 1.0 if latent[b, i, binary[q]] > cut[q] else 0.0
            for q in range(lognormal.size):
                value = latent[b, i, lognormal[q]]
                scale = sigma[q] if value < 0.0 else upper[q]
                exponent[b, i, q] = mu[q] + scale * value


@njit(cache=True)
def _scatter_columns(columns, index, out):
    """``out[..., index[q]] = columns[..., q]`` over (replicate, patient)."""
    n_replicates, n_patients = columns.shape[:2]
    for b in range(n_replicates):
        for i in range(n_patients):
            for q in range(index.size):
                out[b, i, index[q]] = columns[b, i, q]


def _truncated_normal_from_latent(
    latent: np.ndarray, mu: float, sigma: float, lower: float | None, upper: float | None
) -> np.ndarray:
    """Inverse-CDF transform of latent N(0,1) scores into N(mu, sigma^2) truncated to
    [lower, upper]: X = mu + sigma Phi^{-1}(Phi(a) + Phi(Z) (Phi(b) - Phi(a))). When the
    interval lies in the upper tail (a > 0) the mirror image is used, so no precision is lost
    to Phi close to 1. Compiled (:func:`_normal_value`), any shape."""
    latent = np.asarray(latent, dtype=float)
    out = np.empty(latent.shape)
    _normal_flat(latent.ravel(), np.array(_normal_parameters(mu, sigma, lower, upper)),
                 out.reshape(-1))
    return out


@lru_cache(maxsize=1024)
def _normal_parameters(mu: float, sigma: float, lower: float | None,
                       upper: float | None) -> tuple[float, ...]:
    """(form, mu, sigma, a, b, p, q) of :func:`_normal_value`: form 0 untruncated; form 1
    p = Phi(a), q = Phi(b) - Phi(a); form 2 (a > 0, the mirror image) p = Phi(-b),
    q = Phi(-a) - Phi(-b); a, b the standardised bounds (-inf/inf where absent). The
    constants are scipy's doubles, as the former per-call numpy code computed them."""
    if lower is None and upper is None:
        return (0.0, mu, sigma, -np.inf, np.inf, 0.0, 0.0)
    a = -np.inf if lower is None else (lower - mu) / sigma
    b = np.inf if upper is None else (upper - mu) / sigma
    if a > 0:
        tail_a, tail_b = special.ndtr(-a), special.ndtr(-b)
        return (2.0, mu, sigma, a, b, float(tail_b), float(tail_a - tail_b))
    cdf_a, cdf_b = special.ndtr(a), special.ndtr(b)
    return (1.0, mu, sigma, a, b, float(cdf_a), float(cdf_b - cdf_a))


@njit(cache=True)
def _normal_value(z, parameters):
    """One latent score's (truncated) normal value, ``parameters`` from
    :func:`_normal_parameters`: mu + sigma z (form 0), else mu + sigma clip(s, a, b) with
    s = Phi^{-1}(p + Phi(z) q) (form 1) or -Phi^{-1}(p + Phi(-z) q) (form 2), scipy's ndtr
    and ndtri (:mod:`sim.generate.scipy_kernels`) and numpy's order of operations; the clip
    is numpy's (max then min, NaN kept)."""
    form, mu, sigma = parameters[0], parameters[1], parameters[2]
    if form == 0.0:
        return mu + sigma * z
    a, b, p, q = parameters[3], parameters[4], parameters[5], parameters[6]
    if form == 1.0:
        standard = scipy_ndtri(p + scipy_ndtr(z, 0) * q, 0)
    else:
        standard = -scipy_ndtri(p + scipy_ndtr(-z, 0) * q, 0)
    if standard == standard:  # not NaN
        standard = standard if standard > a else a
        standard = standard if standard < b else b
    return mu + sigma * standard


@njit(cache=True)
def _normal_flat(latent, parameters, out):
    """``out[i]`` = :func:`_normal_value` of ``latent[i]`` (1-D arrays)."""
    for i in range(latent.size):
        out[i] = _normal_value(latent[i], parameters)


@njit(cache=True)
def _normal_columns(latent, columns, parameters, out):
    """``out[..., columns[q]]`` = :func:`_normal_value` of ``latent[..., columns[q]]`` with
    ``parameters[q]``, over (replicate, patient)."""
    n_replicates, n_patients = latent.shape[:2]
    for b in range(n_replicates):
        for i in range(n_patients):
            for q in range(columns.size):
                column = columns[q]
                out[b, i, column] = _normal_value(latent[b, i, column], parameters[q])


def _covariate_effect(column: np.ndarray, coefficient: float | tuple[float, ...]) -> np.ndarray:
    """Linear-predictor contribution of one covariate: coefficient * x, or the per-level
    coefficient of a categorical covariate's level index."""
    if isinstance(coefficient, tuple):
        return np.asarray(coefficient, dtype=float)[column.astype(np.intp)]
    return coefficient * column


def _draw_unmeasured_given_arm(
    scenario: "Scenario", treated: np.ndarray, uniform: np.ndarray
) -> np.ndarray:
    if scenario.unmeasured is None:
        return np.zeros(treated.shape, dtype=bool)
    prevalence: Mapping[str, float] = scenario.unmeasured.prevalence
    prevalence_treated = prevalence[scenario.treated_arm.name]
    prevalence_control = prevalence[scenario.control_arm.name]
    return uniform < np.where(treated, prevalence_treated, prevalence_control)
