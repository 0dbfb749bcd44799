"""Batched propensity-score model: unpenalised logistic regression iterated as R or SPSS do.

All replicates of a block are fitted at once: the weighted normal equations are stacked as
``(replicate, p + 1)`` and ``(replicate, p + 1, p + 1)`` arrays and solved together, each
replicate stopping at its own iteration (a convergence mask). By default the same fit runs
compiled, one replicate at a time (:mod:`analysis.propensity.irls_kernels`: the design, rank
screen, start, iterations, scores and separation flag in one call); the numpy path
(``compiled=False``) is its test oracle. The two give the same iteration counts, flags and
statuses, and the same numbers to ~1e-14 for a finite estimate; under separation, where the
rounding of each step is amplified, to ~1e-8 (R's rule) and ~2e-7 (SPSS's) relative on
liu2021 cohorts (measured on 2,000; the matched pairs of both plans identical). Two iteration
rules are implemented, because under separation the fitted scores -- and so the caliper and
the pairs -- depend on where the iterations stop, not only on the data:

``r_glm``
    R's ``glm.fit`` (stats 4.2) for ``binomial()``/``quasibinomial()``, which MatchIt's
    ``distance = "glm"`` calls: start from ``mustart = (y + 0.5) / 2``; IRLS with working
    response ``z = eta + (y - mu) / mu.eta(eta)`` and weights ``mu.eta^2 / (mu (1 - mu))``;
    R's logit link in C (``family.c``), whose inverse and derivative are clamped at
    ``|eta| > 30`` (``mu`` = eps/(1+eps) or 1/(1+eps), ``mu.eta`` = eps, eps = 2^-52); stop
    when ``|dev - dev_old| / (|dev| + 0.1) < epsilon`` with ``epsilon = 1e-8``, or after
    ``maxit = 25`` iterations (``glm.control`` defaults). R halves a step only when the
    deviance is not finite or the fitted means leave (0, 1); with the clamped inverse link
    neither can happen for finite data, so no step of a binomial ``glm`` is ever halved
    (tested). An iteration whose coefficients are not finite stops the replicate unconverged
    (R: "non-finite coefficients", ``conv = FALSE``).
``spss_logistic``
    SPSS LOGISTIC REGRESSION (the ``/SAVE PRED`` of the SPSS 25 PSM dialog): Newton-Raphson
    from the constant-only model (intercept ``log(n1 / n0)``, slopes 0); stop when every
    parameter changes by less than ``BCON = 0.001`` or after ``ITERATE = 20`` iterations
    (``LCON = 0``: the log-likelihood criterion is off). These are the documented defaults of
    the CRITERIA subcommand; ``EPS(1e-8)`` is a redundancy check of the design, not a stopping
    rule. SPSS documents no step halving for this procedure and none is done. The change is
    taken as absolute (as GNU PSPP's clone of the procedure does); under separation the
    diverging coefficient grows by about one unit per iteration, so both readings run the 20
    iterations, and for a finite estimate the two differ by far less than BCON.

Each weighted least-squares step is solved from the normal equations with one step of
iterative refinement (the residual recomputed from the design, not from the Gram matrix), which
brings the coefficients to the accuracy of R's Householder QR also in separated fits, whose
weights span 15 orders of magnitude (tests: agreement with R to ~1e-9 relative).

A replicate whose data are separated, whose design is singular or whose iterations do not
converge is flagged with a status code from :mod:`analysis.status`; it never raises.

References
----------
Albert A, Anderson JA (1984). On the existence of maximum likelihood estimates in logistic
regression models. Biometrika 71:1-10 (complete and quasi-complete separation).
McCullagh P, Nelder JA (1989). Generalized Linear Models, 2nd ed., section 2.5 (IRLS).
R Core Team. R 4.2 ``stats::glm.fit``, ``glm.control``, ``binomial`` (src/library/stats/src/
family.c: ``logit_linkinv``, ``logit_mu_eta``, ``binomial_dev_resids``).
IBM SPSS Statistics Command Syntax Reference, LOGISTIC REGRESSION, CRITERIA subcommand
(https://www.ibm.com/docs/en/spss-statistics/31.0.0?topic=regression-criteria-subcommand-logistic-command).
Björck A (1996). Numerical Methods for Least Squares Problems. SIAM, section 2.9 (iterative
refinement of least-squares solutions).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from analysis import status
from analysis.propensity import irls_kernels
from analysis.propensity.irls_numpy import (
    exact_deviance,
    iterate_numpy,
    r_deviance,
    r_inverse_link,
)

#: A patient fitted within this of probability 0 or 1 whose linear predictor still moved by
#: more than :data:`DIVERGING_STEP` toward its own outcome in the last step shows separation.
EXTREME_PROBABILITY = 1e-5
#: See :data:`EXTREME_PROBABILITY`.
DIVERGING_STEP = 0.1


@dataclass(frozen=True)
class IterationRule:
    """How a statistics package iterates a logistic fit (see the module docstring).

    Attributes
    ----------
    name : ``"r_glm"`` or ``"spss_logistic"``.
    max_iter : iteration limit (R ``maxit`` 25; SPSS ``ITERATE`` 20).
    tolerance : R ``epsilon`` (1e-8) on the relative change of deviance; SPSS ``BCON``
        (0.001) on the largest absolute change of a coefficient.
    """

    name: str
    max_iter: int
    tolerance: float


#: The iteration rules by name; a plan's ``ps_algorithm`` names one.
ITERATION_RULES = {
    "r_glm": IterationRule("r_glm", max_iter=25, tolerance=1e-8),
    "spss_logistic": IterationRule("spss_logistic", max_iter=20, tolerance=1e-3),
}


@dataclass(frozen=True)
class PropensityFit:
    """Logistic propensity-score fits of a batch of replicates.

    Attributes
    ----------
    coef : ndarray of float, shape (replicate, p + 1)
        Coefficients, intercept first, then the design columns in order. NaN for a replicate
        with an empty arm. For a rank-deficient design the minimum-norm solution (see
        :func:`fit_propensity`).
    ps : ndarray of float, shape (replicate, patient)
        Fitted probability of treatment; NaN for patients outside ``mask``.
    logit : ndarray of float, shape (replicate, patient)
        Linear predictor ``x'beta`` (logit of ``ps``); NaN outside ``mask``.
    converged : ndarray of bool, shape (replicate,)
        The rule's convergence test was met within its iteration limit.
    separated : ndarray of bool, shape (replicate,)
        (Quasi-)complete separation detected: the maximum-likelihood estimate does not exist.
    rank_deficient : ndarray of bool, shape (replicate,)
        The in-model design ``[1, X]`` has rank below p + 1 (e.g. a covariate constant in
        this replicate); coefficients are then the minimum-norm solution.
    n_iter : ndarray of int, shape (replicate,)
        Iterations taken (R's ``iter``).
    deviance : ndarray of float, shape (replicate,)
        ``-2 log L`` at the returned coefficients (R's ``deviance``; SPSS's "-2 Log
        likelihood"); NaN for an unusable replicate.
    status : ndarray of int8, shape (replicate,)
        :data:`analysis.status.OK`, ``SEPARATION``, ``PS_NOT_CONVERGED``, ``EMPTY_ARM``
        or ``UNDEFINED`` (non-finite covariate of an in-model patient).
    algorithm : str
        Name of the :class:`IterationRule` that produced the fit.
    """

    coef: np.ndarray
    ps: np.ndarray
    logit: np.ndarray
    converged: np.ndarray
    separated: np.ndarray
    rank_deficient: np.ndarray
    n_iter: np.ndarray
    deviance: np.ndarray
    status: np.ndarray
    algorithm: str = "r_glm"


def _design_rank(design):
    """Rank of each replicate's design ``[1, X]``, int shape (replicate,).

    The rank is numpy's (``matrix_rank``): the number of singular values above
    ``s_max * max(patient, q) * eps``. The SVD is computed only for the replicates whose Gram
    matrix ``D'D`` does not show full rank by a wide margin: its smallest eigenvalue above
    ``1e-8`` times its largest means ``s_min > ~1e-4 s_max`` even after the rounding of the
    product and the eigensolver (both ``~1e-13 s_max^2``), so the SVD rank would be full.
    The compiled path shows that margin by a Cholesky factorisation instead of the eigenvalues
    (:func:`analysis.propensity.irls_linalg.clearly_full_rank`, a certificate: never wrong,
    slightly more often inconclusive); either way an inconclusive replicate gets the SVD rank
    (:func:`_svd_rank`) and a conclusive one would get full rank from it, so the ranks are the
    same.
    """
    gram = design.transpose(0, 2, 1) @ design
    eigenvalues = np.linalg.eigvalsh(gram)
    unclear = ~(eigenvalues[:, 0] > 1e-8 * eigenvalues[:, -1])
    rank = np.full(design.shape[0], design.shape[2])
    if unclear.any():
        rank[unclear] = _svd_rank(design[unclear])
    return rank


def _svd_rank(design):
    """numpy's ``matrix_rank`` of each replicate's design, int shape (replicate,)."""
    singular_values = np.linalg.svd(design, compute_uv=False)
    rank_tol = singular_values[:, :1] * max(design.shape[1:]) * np.finfo(float).eps
    return np.sum(singular_values > rank_tol, axis=1)


def _with_intercept(X, in_model, zero_outside):
    """The design ``[1, X]``, shape (replicate, patient, p + 1); rows of patients outside the
    model zero if ``zero_outside``."""
    design = np.empty(X.shape[:2] + (X.shape[2] + 1,))
    design[:, :, 0] = 1.0
    design[:, :, 1:] = X
    if zero_outside:
        design[~in_model] = 0.0
    return design


def _status(converged, separated, bad_data, empty_arm):
    """Status codes by the precedence of :func:`fit_propensity`'s notes."""
    code = np.full(converged.shape, status.OK, dtype=np.int8)
    code[~converged] = status.PS_NOT_CONVERGED
    code[separated] = status.SEPARATION
    code[bad_data] = status.UNDEFINED
    code[empty_arm] = status.EMPTY_ARM
    return code


def fit_propensity(X, treated, *, mask=None, weights=None, algorithm="r_glm", max_iter=None,
                   tol=None, compiled=True) -> PropensityFit:
    """Fit ``logit P(treated) = b0 + x'b`` by maximum likelihood, all replicates at once,
    iterating as R's ``glm`` or SPSS's LOGISTIC REGRESSION does (module docstring).

    Parameters
    ----------
    X : array_like of float, shape (replicate, patient, p)
        Design columns without the intercept (e.g. :attr:`analysis.propensity.design.DesignMatrix.values`).
    treated : array_like of bool, shape (replicate, patient)
        Outcome of the model: True for the treated arm.
    mask : array_like of bool, shape (replicate, patient), optional
        Patients in the model (default: all). Patients outside get NaN ``ps`` and ``logit``;
        their values (even NaN) are ignored.
    weights : array_like of float, shape (replicate, patient), optional
        Non-negative frequency weights (R ``glm``'s prior weights; e.g. the counts of a
        bootstrap resample: the maximum-likelihood fit is that of the patients repeated that
        often); weight 0 is the same as outside ``mask``.
    algorithm : {"r_glm", "spss_logistic"}
        The :data:`ITERATION_RULES` entry to follow.
    max_iter, tol : optional
        Override the rule's iteration limit and tolerance (R ``maxit``/``epsilon``; SPSS
        ``ITERATE``/``BCON``).
    compiled : bool
        Fit in :mod:`analysis.propensity.irls_kernels` (default), or in numpy (the kernel's
        test oracle). The two agree to rounding (module docstring).

    Returns
    -------
    PropensityFit
        ``ps`` is R's ``fitted.values`` (its clamped inverse link: every patient beyond
        ``|eta| > 30`` gets the same score, as MatchIt sees it) for ``r_glm`` and the exact
        inverse logit (SPSS's saved PRED) for ``spss_logistic``; ``logit`` is the linear
        predictor (MatchIt's ``link = "linear.logit"``).

    Notes
    -----
    *Separation* (Albert & Anderson 1984: no finite maximum-likelihood estimate). The
    iterates then diverge along a separating direction: the linear predictor of every
    perfectly predicted patient grows by about one unit per iteration while its fitted
    probability goes to 0 or 1, until the deviance stops changing (R: typically 14-20
    iterations, fitted probabilities of 1e-6 to 1e-9) or the iteration limit (SPSS: 20). A
    replicate is flagged ``separated`` when some in-model patient is fitted within
    ``EXTREME_PROBABILITY`` (1e-5) of its own outcome *and* the last step moved its linear
    predictor further toward it by more than ``DIVERGING_STEP`` (0.1). A finite estimate is
    reached with quadratically shrinking steps and is not flagged. The tests check the rule
    against the exact linear-programming criterion: every separated data set is flagged;
    rarely a data set whose finite estimate is so extreme that its likelihood is flat along a
    direction (the iterations still creeping when the rule stops them) is flagged too, which
    is the right call for a PS model. Separated replicates keep their coefficients and
    fitted probabilities where the rule stopped, as R's ``glm`` and SPSS do, and get status
    ``SEPARATION``; the caller decides whether to match on them.

    *Singular design.* When the in-model design ``[1, X]`` of a replicate has deficient rank
    (numpy's default SVD tolerance), each step takes the minimum-norm solution (the
    pseudo-inverse); the fitted values are R's (which drops the aliased columns and reports
    their coefficients as NA), the status stays ``OK`` and ``rank_deficient`` tells.

    *Empty arm.* A replicate with no treated or no control patient in the model (or no
    patient) gets NaN everywhere and status ``EMPTY_ARM``. A replicate with a non-finite
    covariate value for an in-model patient gets NaN everywhere and status ``UNDEFINED``.

    Status precedence: ``EMPTY_ARM`` > ``UNDEFINED`` > ``SEPARATION`` > ``PS_NOT_CONVERGED``
    > ``OK``.
    """
    if algorithm not in ITERATION_RULES:
        raise ValueError(f"unknown PS algorithm {algorithm!r}; valid: {', '.join(ITERATION_RULES)}")
    rule = ITERATION_RULES[algorithm]
    max_iter = rule.max_iter if max_iter is None else int(max_iter)
    tol = rule.tolerance if tol is None else float(tol)
    X = np.asarray(X, dtype=float)
    if X.ndim != 3:
        raise ValueError(f"X must be shaped (replicate, patient, p), got {X.shape}")
    n_rep, n_pat, _ = X.shape
    y_bool = np.asarray(treated, dtype=bool)
    in_model = np.ones((n_rep, n_pat), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if y_bool.shape != (n_rep, n_pat) or in_model.shape != (n_rep, n_pat):
        raise ValueError("treated and mask must be shaped (replicate, patient) like X")
    if weights is not None:
        weights = np.asarray(weights, dtype=float)
        if weights.shape != (n_rep, n_pat):
            raise ValueError("weights must be shaped (replicate, patient) like X")
        in_model = in_model & (weights > 0)
    weight = in_model.astype(float) if weights is None else np.where(in_model, weights, 0.0)
    n_in = weight.sum(axis=1)
    n_treated = (y_bool & in_model).sum(axis=1) if weights is None else (weight * y_bool).sum(axis=1)
    empty_arm = (n_treated == 0) | (n_treated == n_in)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(empty_arm, 0.5, n_treated / np.where(n_in > 0, n_in, 1.0))
    arguments = (X, y_bool, in_model, weight, weights is not None or mask is not None, empty_arm, share,
                 algorithm, max_iter, tol)
    return _fit_compiled(*arguments) if compiled else _fit_numpy(*arguments)


def _fit_numpy(X, y_bool, in_model, weight, masked, empty_arm, share, algorithm, max_iter, tol):
    """:func:`fit_propensity` in numpy (its arguments checked and prepared; ``masked``: a
    mask or weights were given)."""
    r_glm = algorithm == "r_glm"
    n_rep, n_pat, n_col = X.shape
    q = n_col + 1
    y = (y_bool & in_model).astype(float)
    design = _with_intercept(X, in_model, masked)
    bad_data = ~np.isfinite(design).all(axis=(1, 2)) & ~empty_arm
    unusable = empty_arm | bad_data
    weight = np.where(unusable[:, None], 0.0, weight)
    design[unusable] = 0.0
    rank = _design_rank(design)
    rank_deficient = (rank < q) & ~unusable
    sign = np.where(y > 0, 1.0, -1.0)

    beta = np.zeros((n_rep, q))
    if r_glm:
        # glm.fit: eta from mustart = (weights * y + 0.5) / (weights + 1), not from coefficients
        mu = (weight * y + 0.5) / (weight + 1.0)
        eta = np.log(mu / (1.0 - mu))
        deviance = r_deviance(y, mu, weight)
    else:
        beta[:, 0] = np.log(np.where(unusable, 0.5, share) / (1.0 - np.where(unusable, 0.5, share)))
        if rank_deficient.any():
            beta[rank_deficient] = _projected(design[rank_deficient], beta[rank_deficient])
        eta = (design @ beta[..., None])[..., 0]
        mu = expit(eta)
        deviance = exact_deviance(eta, sign, weight)

    beta, eta, mu, last_move, deviance, n_iter, converged = iterate_numpy(
        design, weight, y, sign, rank_deficient, beta, eta, mu, deviance, ~unusable, r_glm, max_iter, tol)

    prob = r_inverse_link(eta) if r_glm else expit(eta)
    extreme = in_model & (expit(-sign * eta) < EXTREME_PROBABILITY)  # P(the other outcome)
    diverging = extreme & (sign * last_move > DIVERGING_STEP)
    separated = diverging.any(axis=1) & ~unusable
    beta[unusable] = np.nan
    hide = ~in_model | unusable[:, None]
    return PropensityFit(
        coef=beta, ps=np.where(hide, np.nan, prob), logit=np.where(hide, np.nan, eta),
        converged=converged & ~unusable, separated=separated, rank_deficient=rank_deficient,
        n_iter=n_iter, deviance=np.where(unusable, np.nan, deviance),
        status=_status(converged, separated, bad_data, empty_arm), algorithm=algorithm)


def _projected(design, beta):
    """SPSS's start projected onto the row space of each (rank-deficient) design, so that
    minimum-norm steps keep the coefficients the minimum-norm solution."""
    return (np.linalg.pinv(design) @ (design @ beta[..., None]))[..., 0]


def _fit_compiled(X, y_bool, in_model, weight, masked, empty_arm, share, algorithm, max_iter, tol):
    """:func:`fit_propensity` in :func:`analysis.propensity.irls_kernels.fit` (arguments as
    :func:`_fit_numpy`'s). The kernel's first call fits every replicate whose rank its screen
    clears, with or without its all-zero columns (then rank-deficient, fitted on the other
    columns from SPSS's start unprojected: the intercept's direction is orthogonal to the zero
    columns, so the start is in the design's row space already; numpy's projection of it
    differs by rounding); those it hands back get numpy's SVD rank, and a second call fits
    those of full rank and those rank-deficient only through all-zero columns; any other
    rank-deficient replicate, and any meeting an exactly singular Gram matrix in the kernel,
    is fitted by :func:`_fit_numpy`, as ``compiled=False`` fits it."""
    r_glm = algorithm == "r_glm"
    n_rep, _, n_col = X.shape
    q = n_col + 1
    X = np.ascontiguousarray(X)
    y_bool, in_model = np.ascontiguousarray(y_bool), np.ascontiguousarray(in_model)
    keep = np.ones((n_rep, q), dtype=bool)
    start = np.zeros((n_rep, q))
    if not r_glm:
        start[:, 0] = np.log(share / (1.0 - share))
    beta, logit, ps, deviance, n_iter, converged, separated, bad_data, unclear, rank_deficient, singular = (
        irls_kernels.fit(X, y_bool, in_model, weight, keep, start, empty_arm, True, r_glm, max_iter, tol))
    refit = singular
    if unclear.any():
        again = np.flatnonzero(unclear)
        design = _with_intercept(X[again], in_model[again], True)
        rank = _svd_rank(design)
        deficient = rank < q
        rank_deficient[again] = deficient
        nonzero = (design != 0.0).any(axis=1)
        in_kernel = ~deficient | (nonzero.sum(axis=1) == rank)
        keep[again[deficient]] = nonzero[deficient]
        if not r_glm and deficient.any():
            start[again[deficient]] = _projected(design[deficient], start[again[deficient]])
        second = again[in_kernel]
        fitted = irls_kernels.fit(X[second], y_bool[second], in_model[second], weight[second], keep[second],
                                  start[second], np.zeros(second.size, dtype=bool), False, r_glm, max_iter, tol)
        for whole, part in zip((beta, logit, ps, deviance, n_iter, converged, separated), fitted):
            whole[second] = part
        refit = singular.copy()
        refit[second] = fitted[-1]
        refit[again[~in_kernel]] = True
    beta[empty_arm] = np.nan
    fit = PropensityFit(coef=beta, ps=ps, logit=logit, converged=converged, separated=separated,
                        rank_deficient=rank_deficient, n_iter=n_iter, deviance=deviance,
                        status=_status(converged, separated, bad_data, empty_arm), algorithm=algorithm)
    if refit.any():
        rows = np.flatnonzero(refit)
        numpy_fit = _fit_numpy(X[rows], y_bool[rows], in_model[rows], weight[rows], masked, empty_arm[rows],
                               share[rows], algorithm, max_iter, tol)
        for field in ("coef", "ps", "logit", "converged", "separated", "rank_deficient", "n_iter", "deviance",
                      "status"):
            getattr(fit, field)[rows] = getattr(numpy_fit, field)
    return fit
