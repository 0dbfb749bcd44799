"""Marginal distributions fitted to what a paper prints.

Turns a printed summary into distribution parameters — a normal truncated to bounds whose
*truncated* mean and SD equal the printed ones, a two-piece (split) lognormal through the printed
median and quartiles, a lognormal from mean ± SD by moments; all exact — and
:func:`implied_summary`, the fitted distribution's value of every printed statistic, so the fit
error can be reported, and :func:`marginal_mean`, its mean. The scenario reader
(:mod:`sim.scenario.schema` checks, :mod:`sim.scenario.build` converts) calls the fitting
functions; :mod:`sim.generate.covariates` draws
from the fitted marginals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np
from scipy import optimize, special, stats

if TYPE_CHECKING:
    from sim.scenario.model import Marginal

#: Standard normal 75th percentile: the quartiles of N(mu, sigma^2) are mu -/+ Z75 * sigma.
Z75 = float(special.ndtri(0.75))

#: The covariate kinds of a scenario.
KINDS = ("binary", "categorical", "normal", "lognormal")

#: Relative tolerance on the truncated-normal moment match.
_TRUNCATED_FIT_TOLERANCE = 1e-9



@dataclass(frozen=True)
class NormalParameters:
    """Parameters ``mu``, ``sigma`` of the untruncated normal behind a (truncated) normal."""

    mu: float
    sigma: float


@dataclass(frozen=True)
class LognormalParameters:
    """Parameters of log X ~ N(``mu``, ``sigma``^2)."""

    mu: float
    sigma: float


@dataclass(frozen=True)
class SplitLognormalParameters:
    """Parameters of a two-piece (split) lognormal: log X = ``mu`` + ``sigma_lower`` Z for
    Z < 0 and ``mu`` + ``sigma_upper`` Z for Z >= 0, Z ~ N(0, 1); the median is exp(mu)."""

    mu: float
    sigma_lower: float
    sigma_upper: float


def truncated_normal_moments(
    mu: float, sigma: float, *, lower: float | None, upper: float | None
) -> tuple[float, float]:
    """Mean and SD of N(mu, sigma^2) truncated to [lower, upper] (``None`` = unbounded).

    Computed by :func:`scipy.stats.truncnorm` (Johnson, Kotz & Balakrishnan 1994, §10.1).
    """
    a = -np.inf if lower is None else (lower - mu) / sigma
    b = np.inf if upper is None else (upper - mu) / sigma
    mean, var = stats.truncnorm.stats(a, b, loc=mu, scale=sigma, moments="mv")
    return float(mean), float(np.sqrt(var))


def fit_truncated_normal(
    mean: float, sd: float, *, lower: float | None, upper: float | None
) -> NormalParameters:
    """Untruncated (mu, sigma) whose truncation to [lower, upper] has the given mean and SD.

    Papers print the mean ± SD of the observed (bounded) values; drawing N(mean, sd^2) and
    clipping would shift both. This solves the two moment equations
    E[X | lower <= X <= upper] = mean, SD[X | lower <= X <= upper] = sd for (mu, log sigma)
    by Powell's hybrid method started at (mean, log sd), with a least-squares fallback.

    Feasibility is checked first: for a given mean, the SD of a truncated normal grows with
    sigma towards the SD of the exponential-family limit (sigma -> infinity): ``mean - lower``
    with a lower bound only, ``upper - mean`` with an upper bound only, and the SD of the
    truncated exponential with that mean on [lower, upper] with both bounds (the uniform's
    (upper - lower)/sqrt(12) at the midpoint). See :func:`largest_truncated_normal_sd`.

    Raises
    ------
    ValueError
        If no truncated normal has these moments.
    """
    if lower is None and upper is None:
        return NormalParameters(mu=float(mean), sigma=float(sd))
    interval = f"[{_bound_text(lower)}, {_bound_text(upper)}]"
    largest = largest_truncated_normal_sd(mean, lower=lower, upper=upper)
    if not sd < largest:
        raise ValueError(
            f"no normal truncated to {interval} has mean {mean:g} and SD {sd:g} (for this mean "
            f"the SD must be < {largest:.4g})")

    def residual(params: np.ndarray) -> np.ndarray:
        mu, log_sigma = params
        sigma = float(np.exp(np.clip(log_sigma, -50.0, 50.0)))
        fitted_mean, fitted_sd = truncated_normal_moments(mu, sigma, lower=lower, upper=upper)
        return np.array([(fitted_mean - mean) / sd, (fitted_sd - sd) / sd])

    start = np.array([mean, np.log(sd)])
    with np.errstate(all="ignore"):
        candidate = optimize.root(residual, start, method="hybr", options={"xtol": 1e-13}).x
        if not _fits(residual, candidate):
            candidate = optimize.least_squares(
                residual, start, xtol=1e-15, ftol=1e-15, gtol=1e-15).x
    if not _fits(residual, candidate):
        raise ValueError(
            f"could not fit a normal truncated to {interval} with mean {mean:g} and SD {sd:g} "
            f"(too close to the largest possible SD {largest:.4g})")
    return NormalParameters(mu=float(candidate[0]), sigma=float(np.exp(candidate[1])))


def largest_truncated_normal_sd(mean: float, *, lower: float | None, upper: float | None
                                ) -> float:
    """Supremum of the SD of normals truncated to [lower, upper] with the given mean.

    It is the SD of the limit sigma -> infinity, an exponential-family density
    proportional to exp(c x / w) on the interval of width w = upper - lower, with c set so the
    mean matches: on [0, w] the mean is w (1/(1 - e^-c) - 1/c) and the variance
    w^2 (1/c^2 - 1/(4 sinh^2(c/2))) (0.5 w and w^2/12 at c = 0, the uniform). With one bound the
    limit is the exponential distribution, whose SD equals its mean's distance to the bound.
    """
    if lower is None and upper is None:
        return np.inf
    if upper is None:
        return float(mean - lower)
    if lower is None:
        return float(upper - mean)
    width = upper - lower
    fraction = (mean - lower) / width

    def mean_fraction(c: float) -> float:
        if abs(c) < 1e-6:
            return 0.5 + c / 12.0
        with np.errstate(over="ignore"):
            return float(1.0 / -np.expm1(-c) - 1.0 / c)

    c = optimize.brentq(lambda x: mean_fraction(x) - fraction, -1e4, 1e4, xtol=1e-14)
    if abs(c) < 1e-4:
        variance = 1.0 / 12.0 - c**2 / 240.0
    else:
        with np.errstate(over="ignore"):
            variance = 1.0 / c**2 - 1.0 / (4.0 * np.sinh(c / 2.0) ** 2)
    return float(width * np.sqrt(variance))


def _fits(residual: Callable[[np.ndarray], np.ndarray], candidate: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(candidate))
                and np.all(np.abs(residual(candidate)) < _TRUNCATED_FIT_TOLERANCE))


def fit_split_lognormal_quartiles(median: float, q1: float, q3: float
                                  ) -> SplitLognormalParameters:
    """Two-piece (split) lognormal through a printed median (IQR), exactly.

    On the log scale the distribution is a two-piece (split) normal: log X = mu + sigma_lower Z
    for Z < 0 and mu + sigma_upper Z for Z >= 0 with Z ~ N(0, 1) — two half-normals of
    different scales joined at their common mode and median mu (John 1982, Commun Stat Theory
    Methods 11:879-885; Wallis 2014, Stat Sci 29:106-112). Its quantile function
    Q(u) = exp(mu + s(u) Phi^-1(u)), s = sigma_lower below u = 1/2 and sigma_upper above, is
    continuous and increasing, so

        mu = log median,
        sigma_lower = (log median - log q1) / Z75,
        sigma_upper = (log q3 - log median) / Z75   (Z75 = Phi^-1(0.75))

    reproduce all three printed quantiles exactly. A two-parameter lognormal cannot when the
    IQR is not symmetric on the log scale (AST in the combination arm of Liu et al. 2021,
    56.6 (44.8-98.2): the least-squares lognormal has median 62.9); with a log-symmetric IQR
    both scales are equal and this is the lognormal. In the Gaussian copula Z is the latent
    score, so X stays a non-decreasing function of it.

    Parameters
    ----------
    median, q1, q3 : float
        The printed quantiles, 0 < q1 < median < q3.

    Returns
    -------
    SplitLognormalParameters
    """
    log_q1, log_median, log_q3 = np.log([q1, median, q3])
    return SplitLognormalParameters(
        mu=float(log_median),
        sigma_lower=float((log_median - log_q1) / Z75),
        sigma_upper=float((log_q3 - log_median) / Z75),
    )


def split_lognormal_moments(mu: float, sigma_lower: float, sigma_upper: float
                            ) -> tuple[float, float]:
    """Mean and SD of the two-piece lognormal of :func:`fit_split_lognormal_quartiles`.

    With Z ~ N(0, 1), E[exp(k s Z); Z < 0] = exp(k^2 s^2 / 2) Phi(-k s) and
    E[exp(k s Z); Z >= 0] = exp(k^2 s^2 / 2) Phi(k s) (complete the square), so the k-th raw
    moment is exp(k mu) [exp(k^2 sl^2 / 2) Phi(-k sl) + exp(k^2 su^2 / 2) Phi(k su)]
    (sl, su the lower and upper scales); k = 1, 2 give the mean and the variance. With
    sl = su = sigma: exp(mu + sigma^2 / 2), the lognormal mean.
    """

    def raw_moment(k: int) -> float:
        lower, upper = k * sigma_lower, k * sigma_upper
        return float(np.exp(k * mu) * (np.exp(lower**2 / 2.0) * special.ndtr(-lower)
                                       + np.exp(upper**2 / 2.0) * special.ndtr(upper)))

    mean = raw_moment(1)
    return mean, float(np.sqrt(max(raw_moment(2) - mean**2, 0.0)))


def fit_lognormal_moments(mean: float, sd: float) -> LognormalParameters:
    """Lognormal with the given mean and SD (exact): sigma^2 = log(1 + sd^2/mean^2),
    mu = log(mean) - sigma^2 / 2."""
    sigma2 = float(np.log1p((sd / mean) ** 2))
    return LognormalParameters(mu=float(np.log(mean) - sigma2 / 2.0), sigma=float(np.sqrt(sigma2)))


def implied_summary(kind: str, marginal: "Marginal") -> dict[str, float | tuple[float, ...]]:
    """The fitted distribution's value of each statistic the paper printed.

    Returns a dict keyed like the statistics in ``marginal.target``: ``proportion`` (binary),
    ``probabilities`` (categorical), ``mean``/``sd`` (normal, of the truncated distribution),
    ``median``/``q1``/``q3`` or ``mean``/``sd`` (lognormal, whichever was printed). Comparing it
    with ``marginal.target`` gives the fit error: zero up to rounding for every form (the
    truncated normal to the solver's 1e-9 tolerance; the quartiles exactly, by the two-piece
    lognormal).
    """
    if kind == "binary":
        return {"proportion": float(marginal.p)}
    if kind == "categorical":
        return {"probabilities": tuple(float(p) for p in marginal.probabilities)}
    if kind == "normal":
        mean, sd = truncated_normal_moments(
            marginal.mean, marginal.sd, lower=marginal.lower, upper=marginal.upper)
        return {"mean": mean, "sd": sd}
    if kind == "lognormal":
        if "median" in marginal.target:
            return {
                "median": float(np.exp(marginal.mu)),
                "q1": float(np.exp(marginal.mu - Z75 * marginal.sigma)),
                "q3": float(np.exp(marginal.mu + Z75 * _upper_sigma(marginal))),
            }
        mean, sd = _lognormal_moments(marginal)
        return {"mean": mean, "sd": sd}
    raise ValueError(f"unknown covariate kind {kind!r}; valid: {', '.join(KINDS)}")


def marginal_mean(kind: str, marginal: "Marginal") -> float:
    """The mean of a covariate's fitted marginal distribution.

    binary: ``p``; normal: the truncated normal's mean (Johnson, Kotz & Balakrishnan 1994,
    §10.1); lognormal: exp(mu + sigma^2 / 2), or for the two-piece lognormal fitted to a median
    (IQR) the closed form of :func:`split_lognormal_moments`. Categorical covariates have no
    mean (their values are level indices): ValueError.
    """
    if kind == "binary":
        return float(marginal.p)
    if kind == "normal":
        return truncated_normal_moments(
            marginal.mean, marginal.sd, lower=marginal.lower, upper=marginal.upper)[0]
    if kind == "lognormal":
        return _lognormal_moments(marginal)[0]
    if kind == "categorical":
        raise ValueError("a categorical covariate has no mean (its values are level indices)")
    raise ValueError(f"unknown covariate kind {kind!r}; valid: {', '.join(KINDS)}")


def _lognormal_moments(marginal: "Marginal") -> tuple[float, float]:
    """Mean and SD of a lognormal marginal: the two-piece closed form, or for an ordinary
    lognormal exp(mu + sigma^2 / 2) and mean * sqrt(exp(sigma^2) - 1) (no cancellation)."""
    if marginal.sigma_upper is not None:
        return split_lognormal_moments(marginal.mu, marginal.sigma, marginal.sigma_upper)
    mean = float(np.exp(marginal.mu + marginal.sigma**2 / 2.0))
    return mean, float(mean * np.sqrt(np.expm1(marginal.sigma**2)))


def _upper_sigma(marginal: "Marginal") -> float:
    """The log-scale SD above the median: ``sigma_upper`` of a two-piece lognormal, else
    ``sigma``."""
    return marginal.sigma if marginal.sigma_upper is None else marginal.sigma_upper


def _bound_text(bound: float | None) -> str:
    return "unbounded" if bound is None else f"{bound:g}"
