"""Compiled logistic propensity-score fit (numba), one replicate at a time.

:func:`fit` runs each replicate's whole fit in compiled code: the design ``[1, X]`` (out-of-model
patients zeroed) transposed into a work array, the check for non-finite covariates, the rank
screen, R's or SPSS's start, the iterations, the scores, linear predictors, deviance and the
separation flag. The numpy path (:mod:`analysis.propensity.irls_numpy`, ``fit_propensity(...,
compiled=False)``) is its test oracle and the fallback for the replicates the kernel hands back.
Same start, same formulas (R's clamped logit link for ``r_glm``, scipy's ``expit`` /
``log_expit`` for ``spss_logistic``), same stopping rules, the same handling of non-finite
coefficients and the same one step of iterative refinement
(:func:`analysis.propensity.irls_numpy.weighted_least_squares`).

What is not the numpy path's arithmetic, and so differs in rounding only:

* sums over patients of products (the Gram matrices, ``D'u``, the refinement's residual
  products) are loops the compiler reassociates and vectorises, in 4x4 blocks over chunks of
  patients (:mod:`analysis.propensity.irls_linalg`; BLAS's order is its own too), over the
  patients padded with zero columns of the design to a multiple of :data:`LANES` (whole
  vectors: the compiler's loops add the patients left over one by one, a quarter of a Gram
  block's time with 100 patients);
* the linear predictor ``D b`` sums the coefficients four at a time
  (:func:`analysis.propensity.irls_linalg.predict`);
* each system is solved by Cholesky (the Gram matrix is symmetric positive-definite); where
  Cholesky meets a pivot that is not positive and finite (Gram matrices of separated fits
  that are singular in floating point, or that overflowed), by LU with partial pivoting, as
  numpy's ``solve``; either is factored once per iteration for both solves;
* ``log`` and ``exp`` are the C library's (which differ from numpy's SIMD ones by one ulp in
  ~5% of arguments) in ``r_glm``'s start and its scores when nothing moved, except the
  iterations' ``exp`` (both rules' links): :func:`analysis.propensity.irls_exp.exp_into`, a
  vectorised one within 0.87 ulp of the exact value, one ulp from the C library's in 5.9% of
  arguments (it replaced the C library's there, ~11% of the kernel's time on liu2021); the
  ``spss_logistic`` formulas are scipy's.

The deviance is summed in numpy's order (bit for bit given the same terms, up to 128
patients). R's rule computes it exactly only in an iteration whose test it could meet and
after the last: an iteration whose deviance changes by more than ``epsilon`` even at the ends
of a cheap bracket of both deviances (:mod:`analysis.propensity.irls_deviance`) continues
without it, so the iterations and the returned deviance are those of computing it every time. The rank screen is :func:`analysis.propensity.irls_linalg.clearly_full_rank` on
``D'D``; where it fails, on ``D'D`` without the design's all-zero columns (a binary covariate
absent from the cohort: all of liu2021's rank-deficient cohorts), whose rank is then the
number of the other columns (the zero columns add zero singular values, and the screen's
margin is far above numpy's rank tolerance); a replicate neither clears is handed back
(``unclear``) for numpy's SVD rank. A replicate rank-deficient only through all-zero columns
is fitted on the other columns (in the first call, or in the caller's second with ``keep``),
the zero columns' coefficients kept at their start; that is the minimum-norm solution numpy's
pseudo-inverse gives (there the zero columns' coefficients are zero up to rounding) and what
R's ``glm`` computes (it drops the aliased column). A replicate meeting an exactly singular Gram matrix (a zero pivot of the LU)
is flagged ``singular``, and the caller fits it with the numpy path, as it does a replicate
with any other rank deficiency. SPSS's rule does not stop on the deviance, so its deviance is
computed once, after the loop.

For a finite estimate the iterations converge quadratically and these roundings do not grow:
coefficients, scores and deviances equal the numpy path's to ~1e-14 relative (at most 6.7e-15
on 2,000 liu2021 cohorts). Under separation the Gram matrices' condition grows with every
iteration (weights spanning 15 orders of magnitude) and the roundings are amplified:
coefficients agree to 1.9e-7 relative (``spss_logistic``, 20 iterations) and 1.1e-8
(``r_glm``) on those cohorts, scores to 1e-14 absolute; iteration counts, convergence,
separation flags, statuses and both plans' matched pairs are identical. The vectorised
``exp`` and then the padding moved the kernel's own results by rounding only; on 2,000 liu2021
cohorts of both plans (seed 7), against the kernel before both: coefficients by at most 8.0e-15
relative where finite and 8.3e-9 (``spss_logistic``) and 5.9e-10 (``r_glm``) under separation,
scores by 6.7e-15 absolute, deviances by 1.3e-15 relative; against the numpy path: 7.0e-15,
2.3e-7 and 8.1e-9 (before: 7.7e-15, 2.3e-7, 8.2e-9 on these cohorts); iteration counts, flags,
statuses, matched pairs and the plans' survival results are unchanged. One case differs by
more than rounding: a separated fit of a design with an all-zero column, where numpy's
pseudo-inverse drops the eigenvalues below 1e-15 of the largest that separation produces and
the kernel does not; on nine such random data sets R 4.2's linear predictors equal the
kernel's to 1e-7 and are 1 to 143 away from the numpy path's (on liu2021 the truncation does
not bite: those cohorts are within the bounds above). Tests:
tests/analysis/propensity/test_irls_kernels.py.

Compiled on first use and cached on disk (``cache=True``, as
:mod:`analysis.propensity.greedy_kernels`); see :func:`warm_up`.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from analysis.pairwise import block_sum
from analysis.propensity.irls_exp import exp_into
from analysis.propensity.irls_deviance import approximate_deviance, exact_deviance, surely_not_converged
from analysis.propensity.irls_linalg import (
    cholesky,
    cholesky_solve,
    clearly_full_rank,
    gram_upper,
    lu_factor,
    lu_solve,
    padded_rows,
    predict,
    transposed_products,
)

#: R's logit link in C clamps its inverse and derivative beyond this |eta| (family.c THRESH);
#: the same constant as :data:`analysis.propensity.irls_numpy.R_LOGIT_THRESHOLD`.
_THRESHOLD = 30.0
_EPS = float(np.finfo(float).eps)
#: The separation rule's thresholds (:data:`analysis.propensity.model.EXTREME_PROBABILITY`,
#: ``DIVERGING_STEP``), and a linear predictor below which ``expit(-x)`` is certainly above
#: the first (``1 / (1 + exp(11)) = 1.7e-5``), so that ``exp`` is called only beyond it.
_EXTREME_PROBABILITY = 1e-5
_DIVERGING_STEP = 0.1
_SURELY_NOT_EXTREME = 11.0
#: Patients per vector of the sums over patients (eight doubles: one AVX-512 register).
LANES = 8


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _solve(gram, low, inverse_diagonal, lu, pivot, use_lu, m, b, x):
    """``x = G^-1 b`` from the factors of this iteration (``use_lu[0]`` says which)."""
    if use_lu[0]:
        lu_solve(lu, pivot, m, b, x)
    else:
        cholesky_solve(low, inverse_diagonal, m, b, x)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _factor(gram, low, inverse_diagonal, lu, pivot, use_lu, m):
    """Cholesky of ``gram[:m, :m]``, else LU (``use_lu[0]`` set); False if LU meets an exactly
    zero pivot."""
    if cholesky(gram, m, low, inverse_diagonal):
        use_lu[0] = False
        return True
    use_lu[0] = True
    for j in range(m):
        for k in range(m):
            lu[j, k] = gram[j, k]
    return lu_factor(lu, pivot, m)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def fit(X, treated, in_model, weight, keep, start_beta, skip, screen, r_glm, max_iter, tol):
    """Every replicate's fit, as :func:`analysis.propensity.model.fit_propensity` describes it.

    Parameters
    ----------
    X : float64 (replicate, patient, p), the design columns without the intercept.
    treated, in_model : bool (replicate, patient); weight : float64 (replicate, patient), the
        frequency weight (0 outside the model).
    keep : bool (replicate, p + 1), the columns fitted (False: an all-zero column, kept at its
        start). start_beta : float64 (replicate, p + 1), SPSS's start (R's is computed here,
        from ``mustart``).
    skip : bool (replicate,), replicates left out (an empty arm): their outputs stay NaN.
    screen : hand back (``unclear``) the replicates whose rank the screen does not clear, unless
        the screen clears the design without its all-zero columns (``zero_columns``).
    r_glm : R's rule (True) or SPSS's; ``max_iter``, ``tol`` as in
        :class:`analysis.propensity.model.IterationRule`.

    Returns
    -------
    beta (replicate, p + 1), logit, ps (replicate, patient), deviance (replicate,): float64,
        NaN for a replicate not fitted and (``logit``, ``ps``) outside the model;
    n_iter : int64 (replicate,);
    converged, separated, not_finite, unclear, zero_columns, singular : bool (replicate,).
        ``not_finite``: a non-finite covariate of an in-model patient (nothing fitted);
        ``unclear``: handed back by the screen; ``zero_columns``: rank-deficient through
        all-zero columns only (the screen cleared the others), fitted on the others;
        ``singular``: an iteration met an exactly singular Gram matrix (the other outputs are
        then meaningless: the caller refits it).
    """
    n_rep, n_pat, p = X.shape
    q = p + 1
    beta = start_beta.copy()
    logit = np.full((n_rep, n_pat), np.nan)
    ps = np.full((n_rep, n_pat), np.nan)
    deviance = np.full(n_rep, np.nan)
    n_iter = np.zeros(n_rep, np.int64)
    converged = np.zeros(n_rep, np.bool_)
    separated = np.zeros(n_rep, np.bool_)
    not_finite = np.zeros(n_rep, np.bool_)
    unclear = np.zeros(n_rep, np.bool_)
    zero_columns = np.zeros(n_rep, np.bool_)
    singular = np.zeros(n_rep, np.bool_)

    size = padded_rows(q)
    # the sums over patients run over n_sum = n_pat rounded up to a multiple of LANES, the
    # patients beyond with zero design and weights: whole vectors, no scalar remainder
    n_sum = (n_pat + LANES - 1) // LANES * LANES
    dt = np.zeros((size, n_sum))        # kept design columns, transposed, rows padded with zeros
    ones = np.zeros(n_sum)
    ones[:n_pat] = 1.0
    y = np.empty(n_pat)
    curvature = np.zeros(n_sum)
    response = np.zeros(n_sum)          # u: the right-hand side is D'u
    residual = np.zeros(n_sum)
    odds = np.empty(n_pat)              # exp(eta) of the current eta (r_glm)
    terms = np.empty(n_pat)
    eta, new_eta, old_eta = np.empty(n_pat), np.empty(n_pat), np.zeros(n_pat)
    mu, new_mu = np.empty(n_pat), np.empty(n_pat)
    own, new_own = np.empty(n_pat), np.empty(n_pat)  # fitted probability of the own outcome (r_glm)
    exponent = np.empty(n_pat)
    mantissa_bits = np.empty(n_pat, np.int64)
    gram = np.empty((size, size))
    low = np.empty((size, size))
    lu = np.empty((size, size))
    inverse_diagonal = np.empty(size)
    pivot = np.empty(size, np.int64)
    use_lu = np.zeros(1, np.bool_)
    rhs = np.empty(size)
    first = np.zeros(size)
    second = np.empty(size)
    coef = np.zeros(size)
    step = np.empty(size)
    columns = np.empty(q, np.int64)
    cached_w = np.empty(2)              # r_glm's start for the last weight of each outcome
    cached = np.empty((2, 4))

    for r in range(n_rep):
        if skip[r]:
            continue
        m = 0
        for j in range(q):
            if keep[r, j]:
                columns[m] = j
                m += 1
        rows = padded_rows(m)
        w = weight[r]
        poison = 0.0                    # NaN once a non-finite in-model value is multiplied in
        for i in range(n_pat):
            inside = in_model[r, i]
            y[i] = 1.0 if inside and treated[r, i] else 0.0
            if not inside:
                for jj in range(rows):
                    dt[jj, i] = 0.0
            elif m == q:
                dt[0, i] = 1.0
                for j in range(p):
                    v = X[r, i, j]
                    poison += 0.0 * v
                    dt[j + 1, i] = v
            else:
                for jj in range(m):
                    j = columns[jj]
                    v = 1.0 if j == 0 else X[r, i, j - 1]
                    poison += 0.0 * v
                    dt[jj, i] = v
        for jj in range(m, rows):
            for i in range(n_pat):
                dt[jj, i] = 0.0
        if poison != 0.0:
            not_finite[r] = True
            for j in range(q):
                beta[r, j] = np.nan
            continue
        if screen:
            gram_upper(ones, dt, rows, n_sum, gram)
            if not clearly_full_rank(gram, m, low, inverse_diagonal):
                # rank-deficient only through all-zero columns? then screen the others
                kept = 0
                for jj in range(m):
                    nonzero = False
                    for i in range(n_pat):
                        if dt[jj, i] != 0.0:
                            nonzero = True
                            break
                    if nonzero:
                        columns[kept] = columns[jj]
                        for i in range(n_pat):
                            dt[kept, i] = dt[jj, i]
                        kept += 1
                for jj in range(kept, rows):
                    for i in range(n_pat):
                        dt[jj, i] = 0.0
                if kept == m:
                    unclear[r] = True
                    continue
                m, rows = kept, padded_rows(kept)
                gram_upper(ones, dt, rows, n_sum, gram)
                if not clearly_full_rank(gram, m, low, inverse_diagonal):
                    unclear[r] = True
                    continue
                zero_columns[r] = True

        # the start: R's from mustart = (w y + 0.5) / (w + 1); SPSS's from start_beta
        if r_glm:
            cached_w[0] = cached_w[1] = np.nan
            for i in range(n_pat):
                k = 1 if y[i] > 0 else 0
                if w[i] != cached_w[k]:
                    start_mu = (w[i] * y[i] + 0.5) / (w[i] + 1.0)
                    start_eta = math.log(start_mu / (1.0 - start_mu))
                    cached[k, 0] = start_mu
                    cached[k, 1] = start_eta
                    cached[k, 2] = w[i] * math.log(start_mu if k == 1 else 1.0 - start_mu)
                    cached[k, 3] = math.exp(start_eta) if abs(start_eta) <= _THRESHOLD else 0.0
                    cached_w[k] = w[i]
                mu[i] = cached[k, 0]
                eta[i] = cached[k, 1]
                terms[i] = cached[k, 2]
                odds[i] = cached[k, 3]
            current_deviance = -2.0 * block_sum(terms, 0, n_pat)
            current_bound = 0.0
        else:
            for jj in range(rows):
                coef[jj] = beta[r, columns[jj]] if jj < m else 0.0
            predict(dt, coef, rows, n_pat, eta)
            last_x, last_mu = np.nan, np.nan
            for i in range(n_pat):
                if eta[i] != last_x:
                    last_x, last_mu = eta[i], 1.0 / (1.0 + math.exp(-eta[i]))
                mu[i] = last_mu
            current_deviance, current_bound = np.nan, 0.0
        moved = False

        for iteration in range(1, max_iter + 1):
            # curvature c and response u of this step
            if r_glm:
                for i in range(n_pat):  # branch-free, so that it vectorises (odds is finite)
                    e, pr = eta[i], mu[i]
                    t = 1.0 + odds[i]
                    derivative = odds[i] / (t * t) if abs(e) <= _THRESHOLD else _EPS
                    c = w[i] * (derivative * derivative) / (pr * (1.0 - pr))
                    curvature[i] = c
                    response[i] = c * (e + (y[i] - pr) / derivative)
            else:
                for i in range(n_pat):
                    curvature[i] = w[i] * mu[i] * (1.0 - mu[i])
                    response[i] = w[i] * (y[i] - mu[i])
            # normal equations, the first solve and one step of iterative refinement
            gram_upper(curvature, dt, rows, n_sum, gram)
            transposed_products(response, dt, rows, n_sum, rhs)
            if not _factor(gram, low, inverse_diagonal, lu, pivot, use_lu, m):
                singular[r] = True
                break
            _solve(gram, low, inverse_diagonal, lu, pivot, use_lu, m, rhs, first)
            predict(dt, first, rows, n_pat, residual)
            for i in range(n_pat):
                residual[i] = response[i] - curvature[i] * residual[i]
            transposed_products(residual, dt, rows, n_sum, rhs)
            _solve(gram, low, inverse_diagonal, lu, pivot, use_lu, m, rhs, second)
            finite = True
            for jj in range(m):
                solution = first[jj] + second[jj]
                b_old = beta[r, columns[jj]]
                if r_glm:
                    coef[jj] = solution
                    step[jj] = solution - b_old
                else:
                    step[jj] = solution
                    coef[jj] = b_old + solution
                if not math.isfinite(coef[jj]):
                    finite = False
            n_iter[r] = iteration
            if not finite:  # R: "non-finite coefficients"; the previous iterate is kept
                break
            predict(dt, coef, rows, n_pat, new_eta)
            if r_glm:
                exp_into(new_eta, 1.0, n_pat, odds, exponent)
                for i in range(n_pat):  # branch-free, so that it vectorises
                    x = new_eta[i]
                    o = _EPS if x < -_THRESHOLD else (1.0 / _EPS if x > _THRESHOLD else odds[i])
                    fitted = o / (1.0 + o)
                    inside = w[i] > 0.0  # else outside the model: a zero row, so eta = 0
                    new_own[i] = (fitted if y[i] > 0 else 1.0 - fitted) if inside else 1.0
                    new_mu[i] = fitted if inside else 0.5
                    odds[i] = o if inside else 1.0
                # the exact deviance only where R's test could be met (irls_deviance)
                new_deviance, new_bound = approximate_deviance(new_own, w, n_pat, exponent, mantissa_bits)
                if surely_not_converged(new_deviance, new_bound, current_deviance, current_bound, tol):
                    done = False
                else:
                    new_deviance, new_bound = exact_deviance(new_own, w, n_pat, terms), 0.0
                    if current_bound > 0.0:
                        current_deviance = exact_deviance(own, w, n_pat, terms)
                    done = abs(new_deviance - current_deviance) / (abs(new_deviance) + 0.1) < tol
            else:
                exp_into(new_eta, -1.0, n_pat, new_mu, exponent)
                for i in range(n_pat):
                    new_mu[i] = 1.0 / (1.0 + new_mu[i]) if w[i] > 0.0 else 0.5
                new_deviance = np.nan  # not a stopping rule here: computed once, after the loop
                largest = 0.0
                for jj in range(m):
                    largest = max(largest, abs(step[jj]))
                done = largest < tol
            for jj in range(m):
                beta[r, columns[jj]] = coef[jj]
            old_eta, eta, new_eta = eta, new_eta, old_eta
            mu, new_mu = new_mu, mu
            own, new_own = new_own, own
            current_deviance, current_bound = new_deviance, new_bound
            moved = True
            if done:
                converged[r] = True
                break
        if singular[r]:
            continue

        # outputs: scores, linear predictors, the separation rule, SPSS's deviance
        for i in range(n_pat):
            if not in_model[r, i]:
                continue
            e = eta[i]
            logit[r, i] = e
            if r_glm and not moved:  # mustart is not linkinv(eta)
                o = _EPS if e < -_THRESHOLD else (1.0 / _EPS if e > _THRESHOLD else math.exp(e))
                ps[r, i] = o / (1.0 + o)
            else:
                ps[r, i] = mu[i]
            signed = e if y[i] > 0 else -e
            if moved and signed > _SURELY_NOT_EXTREME:
                move = eta[i] - old_eta[i]
                if (1.0 / (1.0 + math.exp(signed)) < _EXTREME_PROBABILITY
                        and (move if y[i] > 0 else -move) > _DIVERGING_STEP):
                    separated[r] = True
        if r_glm and current_bound > 0.0:
            current_deviance = exact_deviance(own, w, n_pat, terms)
        if not r_glm:  # scipy's log_expit(eta * sign), weighted, in numpy's sum
            for i in range(n_pat):
                x = eta[i] if y[i] > 0 else -eta[i]
                log_p = x - math.log1p(math.exp(x)) if x < 0 else -math.log1p(math.exp(-x))
                terms[i] = w[i] * log_p
            current_deviance = -2.0 * block_sum(terms, 0, n_pat)
        deviance[r] = current_deviance
    return beta, logit, ps, deviance, n_iter, converged, separated, not_finite, unclear, zero_columns, singular


def warm_up() -> None:
    """Load (or compile, on the first use of an installation) :func:`fit` for the argument
    types :func:`analysis.propensity.model.fit_propensity` passes, on a two-patient replicate,
    so that a caller timing a block does not time numba's loading (compiling: ~24 s once per
    installation, loading from the cache: ~0.6 s per process, both measured on the loaded
    2-core development machine)."""
    x = np.array([[[0.0], [1.0]]])
    treated = np.array([[True, False]])
    in_model = np.ones((1, 2), dtype=bool)
    weight = np.ones((1, 2))
    keep = np.ones((1, 2), dtype=bool)
    skip = np.zeros(1, dtype=bool)
    for r_glm in (True, False):
        fit(x, treated, in_model, weight, keep, np.zeros((1, 2)), skip, True, r_glm, 1, 1e-8)
