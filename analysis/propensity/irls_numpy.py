"""The iterations of the batched propensity-score fit in numpy (:func:`iterate_numpy`), every
active replicate at once with a convergence mask, and R's logit-link arithmetic they use.

The production path is the compiled kernel :func:`analysis.propensity.irls_kernels.fit`
(:func:`analysis.propensity.model.fit_propensity`, ``compiled=True``); this module is its test
oracle and the fallback for the replicates the kernel hands back (rank deficiency other than
all-zero columns, an exactly singular Gram matrix). The iteration rules, R's clamped logit
link and the weighted least-squares step with one step of iterative refinement are described
in :mod:`analysis.propensity.model`.

References
----------
McCullagh P, Nelder JA (1989). Generalized Linear Models, 2nd ed., section 2.5 (IRLS).
R Core Team. R 4.2 ``stats::glm.fit``, ``binomial`` (src/library/stats/src/family.c:
``logit_linkinv``, ``logit_mu_eta``, ``binomial_dev_resids``).
Björck A (1996). Numerical Methods for Least Squares Problems. SIAM, section 2.9.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, log_expit

#: R's logit link in C clamps its inverse and derivative beyond this |eta| (family.c THRESH).
R_LOGIT_THRESHOLD = 30.0
_EPS = np.finfo(float).eps


#: Replicates per block when forming the normal equations: a block's design and its weighted
#: copy (64 x patients x q doubles each) stay in cache for the products reading them.
INFORMATION_BLOCK = 64


def normal_equations(design, response, curvature):
    """Right-hand side ``D' u`` and Gram matrix ``D' diag(c) D`` of each replicate.

    ``design`` (replicate, patient, q); ``response`` u and ``curvature`` c, both
    (replicate, patient). Returns shapes (replicate, q) and (replicate, q, q). Computed a
    block of replicates at a time (cache blocking); each replicate's numbers are the same
    products as over the whole batch.
    """
    n_rep, _, q = design.shape
    rhs = np.empty((n_rep, q))
    gram = np.empty((n_rep, q, q))
    for start in range(0, n_rep, INFORMATION_BLOCK):
        block = slice(start, start + INFORMATION_BLOCK)
        design_t = design[block].transpose(0, 2, 1)
        np.matmul(design_t, design[block] * curvature[block, :, None], out=gram[block])
        np.matmul(design_t, response[block, :, None], out=rhs[block, :, None])
    return rhs, gram


class Solver:
    """``gram @ b = rhs`` per replicate for the Gram matrices of one IRLS step, shape
    (replicate, q): LU (``numpy.linalg.solve``) for regular replicates; the pseudo-inverse
    (minimum-norm solution) for rank-deficient replicates and for any whose Gram matrix is
    exactly singular (weights underflowed to zero in a separated replicate).

    Both solves of a step (the first and the refinement) share the decision which replicates
    need the pseudo-inverse and the pseudo-inverse itself, computed once; the numbers are those
    of solving each system on its own.
    """

    def __init__(self, gram, use_pinv):
        self.gram = gram
        self.use_pinv = use_pinv
        self.pinv = None

    def __call__(self, rhs):
        gram, use_pinv = self.gram, self.use_pinv
        solution = np.zeros_like(rhs)
        regular = ~use_pinv
        if regular.any():
            try:
                solution[regular] = np.linalg.solve(gram[regular], rhs[regular][..., None])[..., 0]
            except np.linalg.LinAlgError:
                # Only the replicates whose LU meets an exact zero pivot (slogdet's sign 0)
                # change method, so a replicate's result never depends on the others of its block.
                use_pinv = use_pinv.copy()
                use_pinv[regular] = np.linalg.slogdet(gram[regular])[0] == 0
                self.use_pinv, self.pinv = use_pinv, None
                regular = ~use_pinv
                if regular.any():
                    solution[regular] = np.linalg.solve(gram[regular], rhs[regular][..., None])[..., 0]
        if use_pinv.any():
            if self.pinv is None:
                self.pinv = np.linalg.pinv(gram[use_pinv], hermitian=True)
            solution[use_pinv] = (self.pinv @ rhs[use_pinv][..., None])[..., 0]
        return solution


def weighted_least_squares(design, response, curvature, use_pinv):
    """Minimise ``sum_i c_i (u_i / c_i - d_i'b)^2`` (the weighted least-squares step of IRLS).

    Normal equations ``(D'CD) b = D'u`` plus one step of iterative refinement whose residual
    ``D'(u - C D b0)`` is recomputed from the design (Björck 1996, section 2.9): the first
    solve loses accuracy as ``cond(D'CD) eps``; the refinement recovers the accuracy of a QR
    solution (R's ``Cdqrls``) as long as that product is below one.
    """
    rhs, gram = normal_equations(design, response, curvature)
    solve = Solver(gram, use_pinv)
    first = solve(rhs)
    fitted = (design @ first[..., None])[..., 0]
    residual = (design.transpose(0, 2, 1) @ (response - curvature * fitted)[..., None])[..., 0]
    return first + solve(residual)


def r_inverse_link(eta):
    """R's ``binomial()$linkinv`` (C ``logit_linkinv``): exp(eta)/(1+exp(eta)) with exp(eta)
    replaced by eps beyond eta < -30 and by 1/eps beyond eta > 30."""
    with np.errstate(over="ignore"):
        odds = np.exp(eta)
    if (np.abs(eta) > R_LOGIT_THRESHOLD).any():  # the clamps (skipped, same numbers, when none applies)
        odds = np.where(eta < -R_LOGIT_THRESHOLD, _EPS, np.where(eta > R_LOGIT_THRESHOLD, 1.0 / _EPS, odds))
    return odds / (1.0 + odds)


def r_mu_eta(eta):
    """R's ``binomial()$mu.eta`` (C ``logit_mu_eta``): exp(eta)/(1+exp(eta))^2, eps beyond |eta| > 30."""
    inside = np.abs(eta) <= R_LOGIT_THRESHOLD
    if inside.all():
        odds = np.exp(eta)
        return odds / (1.0 + odds) ** 2
    odds = np.exp(np.where(inside, eta, 0.0))
    return np.where(inside, odds / (1.0 + odds) ** 2, _EPS)


def r_deviance(y, mu, weight):
    """Binomial deviance ``-2 sum w [y log mu + (1 - y) log(1 - mu)]`` per replicate, in R's
    arithmetic (``binomial_dev_resids`` on the clamped ``mu``; never infinite)."""
    terms = np.log(np.where(y > 0, mu, 1.0 - mu))
    return -2.0 * np.sum(weight * terms, axis=1)


def exact_deviance(eta, sign, weight):
    """``-2 log L`` per replicate from the linear predictor (accurate for |eta| large);
    ``sign`` is +1 for outcome 1 and -1 for outcome 0."""
    return -2.0 * np.sum(weight * log_expit(eta * sign), axis=1)


def iterate_numpy(design, weight, y, sign, rank_deficient, beta, eta, mu, deviance, active, r_glm, max_iter,
                   tol):
    """The iterations of :func:`fit_propensity` in numpy, every active replicate at once (each
    stopping at its own iteration: a convergence mask); the test oracle of the iterations of
    :func:`analysis.propensity.irls_kernels.fit` (``beta``, ``eta``, ``mu``, ``deviance`` are
    updated in place). A replicate's numbers do not
    depend on the other replicates of the batch."""
    n_rep, n_pat, _ = design.shape
    active = active.copy()
    converged = np.zeros(n_rep, dtype=bool)
    n_iter = np.zeros(n_rep, dtype=int)
    last_move = np.zeros((n_rep, n_pat))
    working = None  # active replicates' rows of design, weight, y: copied when the set shrinks
    for iteration in range(1, max_iter + 1):
        if not active.any():
            break
        idx = np.flatnonzero(active)
        if working is None or working[0].size != idx.size:  # the active set only ever shrinks
            working = ((idx, design, weight, y, sign) if idx.size == n_rep
                       else (idx, design[idx], weight[idx], y[idx], sign[idx]))
        _, d, w, yy, ss = working
        eta_now, mu_now = eta[idx], mu[idx]
        if r_glm:
            derivative = r_mu_eta(eta_now)
            curvature = w * derivative ** 2 / (mu_now * (1.0 - mu_now))
            working_response = eta_now + (yy - mu_now) / derivative
            coef = weighted_least_squares(d, curvature * working_response, curvature, rank_deficient[idx])
            step = coef - beta[idx]
        else:
            curvature = w * mu_now * (1.0 - mu_now)
            step = weighted_least_squares(d, w * (yy - mu_now), curvature, rank_deficient[idx])
            coef = beta[idx] + step
        finite = np.isfinite(coef).all(axis=1)
        coef = np.where(finite[:, None], coef, 0.0)
        new_eta = (d @ coef[..., None])[..., 0]
        if r_glm:
            new_mu = r_inverse_link(new_eta)
            new_deviance = r_deviance(yy, new_mu, w)
            done = np.abs(new_deviance - deviance[idx]) / (np.abs(new_deviance) + 0.1) < tol
        else:
            with np.errstate(over="ignore"):
                new_mu = expit(new_eta)
            new_deviance = exact_deviance(new_eta, ss, w)
            done = np.max(np.abs(np.where(finite[:, None], step, np.inf)), axis=1) < tol
        # R stops a replicate whose coefficients are not finite ("non-finite coefficients",
        # conv = FALSE) and keeps the previous iterate.
        done &= finite
        taken = idx[finite]
        beta[taken] = coef[finite]
        last_move[taken] = new_eta[finite] - eta_now[finite]
        eta[taken] = new_eta[finite]
        mu[taken] = new_mu[finite]
        deviance[taken] = new_deviance[finite]
        n_iter[idx] = iteration
        converged[idx[done]] = True
        active[idx[done | ~finite]] = False

    return beta, eta, mu, last_move, deviance, n_iter, converged
