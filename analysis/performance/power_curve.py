"""A smooth power curve fitted to per-replicate rejections, and the value where it meets a target.

Sample size by simulation is stochastic root finding: each simulated study at a candidate value
x (patients, months of follow-up, patients per month) either rejects the null or not, and the
value x* where the power P(x) equals the target is wanted with a confidence interval. Here the
curve is a binomial GLM fitted by maximum likelihood to every replicate's 0/1 outcome,

    link(P(x)) = a + b u(x),    link = probit (default) or logit,  u = sqrt(x), log(x) or x,

and x* solves a + b u(x*) = link(target).

Why this model. Under Schoenfeld's approximation the power of the log-rank test is exactly a
probit line in the square root of the events, ``Phi^{-1}(P) = sqrt(d p (1 - p)) |log HR| -
z_{1-alpha/2}``, and with a fixed accrual window and cut-off the events are proportional to the
patients (``d = n P(event)``): the probit-on-sqrt(n) curve holds the formula as a special case
and lets the data move its intercept and slope (matching losses, ties, non-proportional hazards,
small samples). ``log`` suits knobs with no such argument (follow-up, accrual rate). The fit is
a two-parameter GLM on at most a few dozen distinct x, so it is computed on the binomial counts
per x by Fisher scoring (IRLS, as R's ``glm.fit``), a dozen lines that also give the score
contributions the robust variance needs; it is checked against statsmodels' GLM in the tests.
Under complete or quasi-complete separation (all failures below some x, all successes above)
the maximum-likelihood estimate does not exist (Albert & Anderson 1984): that is detected
before fitting and reported as a status, never fitted.

Common random numbers. The candidates of one round of a search share their replicates' random
numbers, so the outcomes of replicate r at different x are dependent. The point estimate of the
independence GLM stays consistent (an unbiased estimating equation), but its model-based
variance is wrong; the covariance used here is the cluster-robust sandwich ``J^{-1} (sum_g U_g
U_g^T) J^{-1} G / (G - 1)`` with U_g the summed scores of cluster g (one per set of replicates
that share random numbers) and J the observed information (Liang & Zeger 1986; the G/(G-1)
factor and the observed-information bread as in statsmodels' GLM). With one observation per
cluster it is the usual robust (Huber-White) variance and agrees with the model-based one for a
well-specified curve.

The interval of the root is Fieller's (1954): the set of u with ``|a + b u - link(target)| <=
z sqrt(Var(a + b u))``, i.e. the values whose pointwise confidence band contains the target —
the "fiducial limits" of probit analysis for the dose with a given response (Finney 1971,
§4.5), and the interval SimDesign's ``SimSolve`` reports by inverting its prediction band. It is
bounded only when the slope is significantly positive (``b^2 > z^2 Var(b)``); otherwise it is
reported as unbounded rather than replaced by a delta-method interval, which is symmetric and
under-covers when the slope is imprecise.

References
----------
Schoenfeld DA (1983). Biometrics 39:499-503. Albert A, Anderson JA (1984). On the existence of
maximum likelihood estimates in logistic regression models. Biometrika 71:1-10. Liang KY,
Zeger SL (1986). Longitudinal data analysis using generalized linear models. Biometrika
73:13-22. Fieller EC (1954). Some problems in interval estimation. JRSS B 16:175-185. Finney DJ
(1971). Probit Analysis, 3rd ed. Cambridge University Press. McCullagh P, Nelder JA (1989).
Generalized Linear Models, 2nd ed., §2.5 (IRLS). Chalmers RP (2024). Solving variables with
Monte Carlo simulation experiments: a stochastic root-solving approach. Psychological Methods
(SimSolve, ProBABLI).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, logit, ndtr, ndtri

__all__ = ["TRANSFORMS", "LINKS", "PowerCurve", "PowerRoot", "fit_power_curve", "solve_power"]

#: u(x) and its inverse for each transform of the searched value.
TRANSFORMS = {
    "sqrt": (np.sqrt, lambda u: np.square(np.maximum(u, 0.0))),
    "log": (np.log, np.exp),
    "identity": (lambda x: x, lambda u: u),
}


def _probit_derivative(eta):
    return np.exp(-0.5 * eta**2) / np.sqrt(2.0 * np.pi)


def _probit_second_derivative(eta):
    return -eta * _probit_derivative(eta)


def _logit_derivative(eta):
    mu = expit(eta)
    return mu * (1.0 - mu)


def _logit_second_derivative(eta):
    mu = expit(eta)
    return mu * (1.0 - mu) * (1.0 - 2.0 * mu)


#: link -> (link function, inverse link, d mu / d eta, d^2 mu / d eta^2).
LINKS = {
    "probit": (ndtri, ndtr, _probit_derivative, _probit_second_derivative),
    "logit": (logit, expit, _logit_derivative, _logit_second_derivative),
}

#: Status of a fit; only "ok" has estimates.
FIT_STATUSES = ("ok", "too_few_values", "no_variation", "separated", "not_converged")

_MAX_ITERATIONS = 100
_TOLERANCE = 1e-12
_MU_EPSILON = 1e-12


@dataclass(frozen=True)
class PowerCurve:
    """A fitted power curve ``link(P(x)) = intercept + slope * u(x)``.

    Attributes
    ----------
    intercept, slope : float
        Maximum-likelihood estimates (NaN unless ``status == "ok"``).
    covariance : ndarray of float, shape (2, 2)
        Cluster-robust (sandwich) covariance of (intercept, slope); used for every interval.
    model_covariance : ndarray of float, shape (2, 2)
        Inverse Fisher information (right only when all outcomes are independent).
    transform, link : str
        Keys of :data:`TRANSFORMS` and :data:`LINKS`.
    n_observations, n_clusters, n_values : int
        Replicate outcomes, clusters of shared random numbers, distinct x.
    iterations : int
        Fisher-scoring iterations.
    status : str
        One of ``ok``, ``too_few_values`` (fewer than two distinct x), ``no_variation`` (all
        outcomes equal), ``separated`` (the MLE does not exist), ``not_converged``.
    """

    intercept: float
    slope: float
    covariance: np.ndarray
    model_covariance: np.ndarray
    transform: str
    link: str
    n_observations: int
    n_clusters: int
    n_values: int
    iterations: int
    status: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def linear_predictor(self, value) -> np.ndarray:
        """``a + b u(x)`` at ``value`` (array_like, any shape)."""
        u = TRANSFORMS[self.transform][0](np.asarray(value, dtype=float))
        return self.intercept + self.slope * u

    def power(self, value) -> np.ndarray:
        """Fitted power at ``value`` (array_like, any shape)."""
        return LINKS[self.link][1](self.linear_predictor(value))

    def power_band(self, value, *, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise ``level`` confidence band of the fitted power at ``value``: the Wald
        interval of the linear predictor (robust covariance) mapped through the inverse link.

        Returns
        -------
        lower, upper : ndarray of float, the shape of ``value``
        """
        u = TRANSFORMS[self.transform][0](np.asarray(value, dtype=float))
        eta = self.intercept + self.slope * u
        c = self.covariance
        se = np.sqrt(np.maximum(c[0, 0] + 2.0 * u * c[0, 1] + u**2 * c[1, 1], 0.0))
        z = ndtri(0.5 + level / 2.0)
        inverse = LINKS[self.link][1]
        return inverse(eta - z * se), inverse(eta + z * se)


@dataclass(frozen=True)
class PowerRoot:
    """The value where the fitted power equals the target, with Fieller's interval.

    Attributes
    ----------
    value : float
        x* (NaN when the curve is not increasing or was not fitted).
    lower, upper : float
        Confidence limits on the x scale; ``0`` / ``inf`` where the interval is unbounded.
    bounded : bool
        True when the slope is significantly positive at ``level`` (a finite interval).
    target, level : float
    """

    value: float
    lower: float
    upper: float
    bounded: bool
    target: float
    level: float

    @property
    def half_width(self) -> float:
        """The larger distance from x* to a confidence limit (inf when unbounded)."""
        if not self.bounded:
            return float("inf")
        return float(max(self.value - self.lower, self.upper - self.value))


def _aggregate(value: np.ndarray, rejected: np.ndarray):
    levels, index = np.unique(value, return_inverse=True)
    trials = np.bincount(index, minlength=levels.size).astype(float)
    successes = np.bincount(index, weights=rejected.astype(float), minlength=levels.size)
    return levels, index, trials, successes


def _separated(rates: np.ndarray) -> bool:
    """Complete or quasi-complete separation of binomial rates sorted by x (Albert & Anderson
    1984): all 0 then all 1 (or the reverse), with at most one mixed value between."""
    for ordered in (rates, rates[::-1]):
        mixed = np.flatnonzero((ordered > 0.0) & (ordered < 1.0))
        if mixed.size > 1:
            continue
        if mixed.size == 1:
            below, above = ordered[:mixed[0]], ordered[mixed[0] + 1:]
        else:
            first_success = int(np.argmax(ordered > 0.0))
            below, above = ordered[:first_success], ordered[first_success:]
        if np.all(below == 0.0) and np.all(above == 1.0):
            return True
    return False


def _failed(status: str, transform: str, link: str, n_obs: int, n_clusters: int,
            n_values: int, iterations: int = 0) -> PowerCurve:
    nan2 = np.full((2, 2), np.nan)
    return PowerCurve(np.nan, np.nan, nan2, nan2.copy(), transform, link, n_obs, n_clusters,
                      n_values, iterations, status)


def fit_power_curve(
    value,
    rejected,
    cluster=None,
    *,
    transform: str = "sqrt",
    link: str = "probit",
) -> PowerCurve:
    """Fit ``link(P(x)) = a + b u(x)`` to per-replicate rejections by maximum likelihood.

    Parameters
    ----------
    value : array_like of float, shape (observation,)
        The searched value x of each replicate outcome (> 0 for the sqrt and log transforms).
    rejected : array_like of bool, shape (observation,)
        Whether that replicate rejected the null.
    cluster : array_like of int, shape (observation,), optional
        Label of the set of replicates sharing random numbers (common random numbers across
        the candidates of a round: one label per (round, replicate)). Default: every
        observation its own cluster.
    transform : {"sqrt", "log", "identity"}
    link : {"probit", "logit"}

    Returns
    -------
    PowerCurve
        With the cluster-robust covariance (see the module docstring); a ``status`` other than
        ``ok`` when there is nothing to fit or the MLE does not exist.

    References
    ----------
    McCullagh & Nelder (1989) §2.5; Albert & Anderson (1984); Liang & Zeger (1986).
    """
    if transform not in TRANSFORMS:
        raise ValueError(f"transform {transform!r}: not one of {', '.join(TRANSFORMS)}")
    if link not in LINKS:
        raise ValueError(f"link {link!r}: not one of {', '.join(LINKS)}")
    value = np.asarray(value, dtype=float).ravel()
    rejected = np.asarray(rejected, dtype=bool).ravel()
    if value.shape != rejected.shape:
        raise ValueError(f"value {value.shape} and rejected {rejected.shape} differ in shape")
    if cluster is None:
        cluster = np.arange(value.size)
    cluster = np.unique(np.asarray(cluster).ravel(), return_inverse=True)[1]
    if cluster.shape != value.shape:
        raise ValueError(f"cluster {cluster.shape} and value {value.shape} differ in shape")
    forward = TRANSFORMS[transform][0]
    with np.errstate(divide="ignore", invalid="ignore"):
        u_all = forward(value)
    if not np.all(np.isfinite(u_all)):
        raise ValueError(f"value: every value must be finite and in the domain of {transform}")
    n_obs, n_clusters = value.size, int(cluster.max()) + 1 if value.size else 0
    levels, index, trials, successes = _aggregate(value, rejected)
    if levels.size < 2:
        return _failed("too_few_values", transform, link, n_obs, n_clusters, levels.size)
    rates = successes / trials
    if np.all(rates == 0.0) or np.all(rates == 1.0):
        return _failed("no_variation", transform, link, n_obs, n_clusters, levels.size)
    if _separated(rates):
        return _failed("separated", transform, link, n_obs, n_clusters, levels.size)

    link_function, inverse, derivative, second_derivative = LINKS[link]
    design = np.column_stack([np.ones(levels.size), forward(levels)])
    eta = link_function((successes + 0.5) / (trials + 1.0))  # glm.fit's mustart
    deviance_old, converged, iteration = np.inf, False, 0
    for iteration in range(1, _MAX_ITERATIONS + 1):
        mu = np.clip(inverse(eta), _MU_EPSILON, 1.0 - _MU_EPSILON)
        slope_mu = np.maximum(derivative(eta), 1e-300)
        weight = trials * slope_mu**2 / (mu * (1.0 - mu))
        working = eta + (rates - mu) / slope_mu
        information = design.T @ (weight[:, None] * design)
        beta = np.linalg.solve(information, design.T @ (weight * working))
        eta = design @ beta
        deviance = _binomial_deviance(successes, trials, inverse(eta))
        if abs(deviance - deviance_old) <= _TOLERANCE * (abs(deviance) + 0.1):
            converged = True
            break
        deviance_old = deviance
    if not converged or not np.all(np.isfinite(beta)):
        return _failed("not_converged", transform, link, n_obs, n_clusters, levels.size,
                       iteration)

    mu = np.clip(inverse(eta), _MU_EPSILON, 1.0 - _MU_EPSILON)
    slope_mu, variance = derivative(eta), mu * (1.0 - mu)
    expected = design.T @ ((trials * slope_mu**2 / variance)[:, None] * design)
    # The score of one outcome is (y - mu) h(eta) (1, u) with h = mu' / (mu (1 - mu)); the
    # observed information adds -(y - mu) h'(eta) (zero for the canonical logit link).
    h = slope_mu / variance
    h_prime = second_derivative(eta) / variance - slope_mu**2 * (1.0 - 2.0 * mu) / variance**2
    observed_weight = trials * slope_mu * h - (successes - trials * mu) * h_prime
    observed = design.T @ (observed_weight[:, None] * design)
    bread = np.linalg.inv(observed)
    # Score contribution of each replicate outcome, summed within its cluster.
    factor = (rejected - mu[index]) * h[index]
    scores = np.column_stack([
        np.bincount(cluster, weights=factor, minlength=n_clusters),
        np.bincount(cluster, weights=factor * design[index, 1], minlength=n_clusters),
    ])
    meat = scores.T @ scores
    correction = n_clusters / (n_clusters - 1.0) if n_clusters > 1 else np.nan
    robust = correction * bread @ meat @ bread
    return PowerCurve(float(beta[0]), float(beta[1]), robust, np.linalg.inv(expected),
                      transform, link, n_obs,
                      n_clusters, levels.size, iteration, "ok")


def _binomial_deviance(successes, trials, mu) -> float:
    mu = np.clip(mu, _MU_EPSILON, 1.0 - _MU_EPSILON)
    with np.errstate(divide="ignore", invalid="ignore"):
        fitted = trials * mu
        term_s = np.where(successes > 0, successes * np.log(successes / fitted), 0.0)
        failures = trials - successes
        term_f = np.where(failures > 0, failures * np.log(failures / (trials - fitted)), 0.0)
    return float(2.0 * np.sum(term_s + term_f))


def solve_power(curve: PowerCurve, target: float, *, level: float = 0.95) -> PowerRoot:
    """The value x* where the fitted power equals ``target``, with Fieller's interval.

    Solves ``(a + b u - eta_t)^2 <= z^2 (V_aa + 2 u V_ab + u^2 V_bb)`` for u, with
    ``eta_t = link(target)``, z the normal ``(1 + level) / 2`` quantile and V the curve's robust
    covariance: a quadratic ``A u^2 + B u + C <= 0`` with ``A = b^2 - z^2 V_bb``. When A > 0 its
    two roots are the limits; otherwise the set is unbounded (reported as 0 and inf on the x
    scale). Limits are mapped back to x through the inverse transform (sqrt: u < 0 is x = 0).

    Parameters
    ----------
    curve : PowerCurve
    target : float in (0, 1)
    level : float in (0, 1)

    Returns
    -------
    PowerRoot
        ``value`` NaN (and the interval unbounded) when the curve is not ``ok`` or its slope
        is not positive: power that does not increase with x has no root to report.

    References
    ----------
    Fieller (1954) JRSS B 16:175-185; Finney (1971) Probit Analysis §4.5.
    """
    if not 0.0 < target < 1.0:
        raise ValueError(f"target {target!r}: must lie in (0, 1)")
    if not curve.ok or not curve.slope > 0.0:
        return PowerRoot(np.nan, 0.0, np.inf, False, float(target), float(level))
    inverse = TRANSFORMS[curve.transform][1]
    a, b = curve.intercept, curve.slope
    v = curve.covariance
    eta_t = float(LINKS[curve.link][0](target))
    q = float(ndtri(0.5 + level / 2.0)) ** 2
    u_root = (eta_t - a) / b
    value = float(inverse(u_root))
    quad_a = b**2 - q * v[1, 1]
    if not quad_a > 0.0:
        return PowerRoot(value, 0.0, np.inf, False, float(target), float(level))
    quad_b = 2.0 * (b * (a - eta_t) - q * v[0, 1])
    quad_c = (a - eta_t) ** 2 - q * v[0, 0]
    discriminant = max(quad_b**2 - 4.0 * quad_a * quad_c, 0.0)
    root = np.sqrt(discriminant)
    u_lower = (-quad_b - root) / (2.0 * quad_a)
    u_upper = (-quad_b + root) / (2.0 * quad_a)
    return PowerRoot(value, float(inverse(u_lower)), float(inverse(u_upper)), True,
                     float(target), float(level))
