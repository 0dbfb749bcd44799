"""Compiled iterations of the logistic propensity-score fit (numba), one replicate at a time.

:func:`analysis.propensity.model.fit_propensity` iterates every replicate of a block together
in numpy: per iteration a dozen calls over stacked arrays (the Gram matrices ``D'CD`` by
``matmul``, two LU solves, the iterative refinement, the link and deviance functions) and
fancy indexing of the active replicates. With 100 patients and 16 coefficients each call does
little arithmetic, so the calls' overhead, not the arithmetic, was the cost.
:func:`iterate` runs each replicate's whole loop in compiled code instead: the same start,
the same formulas (R's clamped logit link for ``r_glm``, scipy's ``expit``/``log_expit`` for
``spss_logistic``), the same stopping rules, the same handling of non-finite coefficients and
the same one step of iterative refinement, with the symmetric Gram matrix's upper triangle
formed once per iteration and no temporaries.

What is not the numpy path's arithmetic, and so differs in rounding only:

* sums over patients of products (the Gram matrix, ``D'u``, the refinement residual) are one
  loop the compiler may reassociate and vectorise (:func:`_dot`; BLAS's order is its own too);
* the linear predictor ``D b`` sums over the coefficients in column order;
* the LU factorisation (partial pivoting, as LAPACK's ``dgesv``) is written out here and is
  factored once per iteration for both solves;
* ``exp`` and ``log`` are the C library's, which differ from numpy's SIMD ones by one ulp in
  ~5% of arguments (``r_glm``; the ``spss_logistic`` formulas are scipy's, the same calls).

The deviance is summed in numpy's order (bit for bit given the same terms, up to 128
patients). A replicate whose in-model design is rank-deficient only through all-zero columns
(a binary covariate absent from the cohort: all of liu2021's rank-deficient cohorts) is fitted
on the other columns, the zero columns' coefficients kept at their start; that is the
minimum-norm solution numpy's pseudo-inverse gives (there the zero columns' coefficients are
zero up to rounding) and what R's ``glm`` computes (it drops the aliased column). A replicate
meeting an exactly singular Gram matrix (a zero pivot) is flagged, and the caller fits it with
the numpy path, as it does a replicate with any other rank deficiency. SPSS's rule does not
stop on the deviance, so its deviance is computed once, after the loop.

For a finite estimate the iterations converge quadratically and these roundings do not grow:
coefficients, scores and deviances equal the numpy path's to ~1e-14 relative (at most 6.8e-15
on 2,000 liu2021 cohorts). Under separation the Gram matrices' condition grows with every
iteration (weights spanning 15 orders of magnitude) and the roundings are amplified:
coefficients agree to 2.2e-7 relative (``spss_logistic``, 20 iterations) and 8.2e-9
(``r_glm``) on those cohorts, scores to 1e-14 absolute; iteration counts, convergence,
separation flags, statuses and both plans' matched pairs are identical. One case differs by
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

#: R's logit link in C clamps its inverse and derivative beyond this |eta| (family.c THRESH);
#: the same constant as :data:`analysis.propensity.irls_numpy.R_LOGIT_THRESHOLD`.
_THRESHOLD = 30.0
_EPS = float(np.finfo(float).eps)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _lane_sum(a, n):
    """``a[:n].sum()`` in eight interleaved partial sums: numpy's order (its pairwise
    summation's blocks) for n <= 128, so the deviance of up to 128 patients is numpy's bit for
    bit given the same terms; beyond, numpy splits the sum in halves first (not written out
    here: numba cannot cache a recursive function), which changes rounding only."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[i]
        return res
    r0, r1, r2, r3, r4, r5, r6, r7 = a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]
    i = 8
    stop = n - n % 8
    while i < stop:
        r0 += a[i]
        r1 += a[i + 1]
        r2 += a[i + 2]
        r3 += a[i + 3]
        r4 += a[i + 4]
        r5 += a[i + 5]
        r6 += a[i + 6]
        r7 += a[i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[i]
        i += 1
    return res


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _dot(a, rows, k, n):
    """``sum_i a[i] rows[k, i]`` over ``i < n``: a loop the compiler may reassociate, so that it
    vectorises it (partial sums of its choice, fused multiply-adds)."""
    res = 0.0
    for i in range(n):
        res += a[i] * rows[k, i]
    return res


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _gram_row(a, rows, j, m, n, out):
    """``out[j, k] = sum_i a[i] rows[k, i]`` for ``j <= k < m``, four ``k`` per pass over ``a``
    (each sum as :func:`_dot` computes it)."""
    k = j
    while k + 4 <= m:
        s0 = s1 = s2 = s3 = 0.0
        for i in range(n):
            ai = a[i]
            s0 += ai * rows[k, i]
            s1 += ai * rows[k + 1, i]
            s2 += ai * rows[k + 2, i]
            s3 += ai * rows[k + 3, i]
        out[j, k] = s0
        out[j, k + 1] = s1
        out[j, k + 2] = s2
        out[j, k + 3] = s3
        k += 4
    while k < m:
        out[j, k] = _dot(a, rows, k, n)
        k += 1


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _lu_factor(a, pivot, m):
    """LU factorisation with partial pivoting of ``a[:m, :m]`` in place (LAPACK ``dgetf2``'s
    algorithm: the largest |entry| of the column as pivot, first on a tie); False if a pivot
    is exactly zero (the matrix is singular; numpy's ``solve`` would raise)."""
    for k in range(m):
        p = k
        largest = abs(a[k, k])
        for i in range(k + 1, m):
            if abs(a[i, k]) > largest:
                largest = abs(a[i, k])
                p = i
        pivot[k] = p
        if largest == 0.0:
            return False
        if p != k:
            for j in range(m):
                t = a[k, j]
                a[k, j] = a[p, j]
                a[p, j] = t
        inverse = 1.0 / a[k, k]
        for i in range(k + 1, m):
            a[i, k] *= inverse
        for i in range(k + 1, m):
            f = a[i, k]
            if f != 0.0:
                for j in range(k + 1, m):
                    a[i, j] -= f * a[k, j]
    return True


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _lu_solve(a, pivot, m, b, x):
    """``x = A^-1 b`` from :func:`_lu_factor`'s factors of ``A`` (``b`` is kept)."""
    for i in range(m):
        x[i] = b[i]
    for k in range(m):
        p = pivot[k]
        if p != k:
            t = x[k]
            x[k] = x[p]
            x[p] = t
    for i in range(m):
        s = x[i]
        for j in range(i):
            s -= a[i, j] * x[j]
        x[i] = s
    for i in range(m - 1, -1, -1):
        s = x[i]
        for j in range(i + 1, m):
            s -= a[i, j] * x[j]
        x[i] = s / a[i, i]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _linear_predictor(dt, b, m, n, out):
    """``out[i] = sum_j b[j] dt[j, i]`` (``dt`` the design transposed, coefficients in order)."""
    for i in range(n):
        out[i] = 0.0
    for j in range(m):
        bj = b[j]
        for i in range(n):
            out[i] += bj * dt[j, i]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def clearly_full_rank(design):
    """Replicates whose design ``D`` (replicate, patient, q) certainly has full column rank,
    bool (replicate,): the smallest eigenvalue of ``G = D'D`` exceeds ``1e-8`` times its
    largest, shown by a Cholesky factorisation of ``G - tau I`` with ``tau = 2e-8 ||G||_F``
    (``||G||_F >= lambda_max``) that meets only positive pivots. The factorisation is backward
    stable (the error of ``G`` it is exact for is ~q eps ||G||, far below ``tau / 2``), so a
    True is never wrong; a False only means "not shown" (then ``lambda_min`` is below ~8e-8
    ``lambda_max``)."""
    n_rep, n_pat, q = design.shape
    dt = np.empty((q, n_pat))
    gram = np.empty((q, q))
    out = np.zeros(n_rep, np.bool_)
    for r in range(n_rep):
        for j in range(q):
            for i in range(n_pat):
                dt[j, i] = design[r, i, j]
        frobenius = 0.0
        for j in range(q):
            for k in range(j, q):
                g = _dot(dt[j], dt, k, n_pat)
                gram[j, k] = g
                frobenius += g * g if k == j else 2.0 * g * g
        tau = 2e-8 * math.sqrt(frobenius)
        positive = frobenius > 0.0
        for j in range(q):  # upper Cholesky factor R (G - tau I = R'R) in place, row by row
            if not positive:
                break
            d = gram[j, j] - tau
            for k in range(j):
                d -= gram[k, j] * gram[k, j]
            if not d > 0.0:
                positive = False
                break
            d = math.sqrt(d)
            gram[j, j] = d
            for k in range(j + 1, q):
                v = gram[j, k]
                for i in range(j):
                    v -= gram[i, j] * gram[i, k]
                gram[j, k] = v / d
        out[r] = positive
    return out


@numba.njit(cache=True, nogil=True, error_model="numpy")
def iterate(design, y, weight, keep, start_beta, start_eta, start_mu, start_deviance, active, r_glm, max_iter,
            tol):
    """Every active replicate's IRLS (``r_glm``) or Newton-Raphson (``spss_logistic``) loop.

    Parameters
    ----------
    design : float64 (replicate, patient, q), ``[1, X]`` with out-of-model rows zero.
    y, weight : float64 (replicate, patient), outcome 0/1 and frequency weight (0 outside the
        model).
    keep : bool (replicate, q), the columns fitted (False: an all-zero column, kept at its start).
    start_beta (replicate, q), start_eta, start_mu (replicate, patient), start_deviance
        (replicate,) : float64, the start of :func:`analysis.propensity.model.fit_propensity`.
    active : bool (replicate,), the replicates to fit; the others keep their start.
    r_glm : R's rule (True) or SPSS's; ``max_iter``, ``tol`` as in
        :class:`analysis.propensity.model.IterationRule`.

    Returns
    -------
    beta (replicate, q), eta, mu, last_move (replicate, patient), deviance (replicate,):
        float64, as the numpy loop leaves them; ``n_iter`` int64 (replicate,); ``converged``
        and ``singular`` bool (replicate,): ``singular`` where an iteration met an exactly
        singular Gram matrix (its other outputs are then meaningless: the caller refits it).
    """
    n_rep, n_pat, q = design.shape
    beta = start_beta.copy()
    eta = start_eta.copy()
    mu = start_mu.copy()
    deviance = start_deviance.copy()
    last_move = np.zeros((n_rep, n_pat))
    n_iter = np.zeros(n_rep, np.int64)
    converged = np.zeros(n_rep, np.bool_)
    singular = np.zeros(n_rep, np.bool_)

    dt = np.empty((q, n_pat))           # kept design columns, transposed
    weighted = np.empty(n_pat)          # one column times the curvature
    curvature = np.empty(n_pat)
    response = np.empty(n_pat)          # u: the right-hand side is D'u
    odds = np.empty(n_pat)              # exp(eta) of the current eta (r_glm)
    terms = np.empty(n_pat)
    fitted = np.empty(n_pat)
    new_eta = np.empty(n_pat)
    new_mu = np.empty(n_pat)
    gram = np.empty((q, q))
    pivot = np.empty(q, np.int64)
    rhs = np.empty(q)
    first = np.empty(q)
    second = np.empty(q)
    coef = np.empty(q)
    step = np.empty(q)
    columns = np.empty(q, np.int64)

    for r in range(n_rep):
        if not active[r]:
            continue
        m = 0
        for j in range(q):
            if keep[r, j]:
                columns[m] = j
                for i in range(n_pat):
                    dt[m, i] = design[r, i, j]
                m += 1
        w = weight[r]
        yy = y[r]
        e = eta[r]
        p = mu[r]
        if r_glm:
            for i in range(n_pat):
                odds[i] = math.exp(e[i]) if abs(e[i]) <= _THRESHOLD else 0.0
        moved = False
        for iteration in range(1, max_iter + 1):
            # curvature c and response u of this step
            if r_glm:
                for i in range(n_pat):
                    if abs(e[i]) <= _THRESHOLD:
                        t = 1.0 + odds[i]
                        derivative = odds[i] / (t * t)
                    else:
                        derivative = _EPS
                    c = w[i] * (derivative * derivative) / (p[i] * (1.0 - p[i]))
                    curvature[i] = c
                    response[i] = c * (e[i] + (yy[i] - p[i]) / derivative)
            else:
                for i in range(n_pat):
                    curvature[i] = w[i] * p[i] * (1.0 - p[i])
                    response[i] = w[i] * (yy[i] - p[i])
            # normal equations (upper triangle, mirrored) and the first solve
            for j in range(m):
                for i in range(n_pat):
                    weighted[i] = dt[j, i] * curvature[i]
                _gram_row(weighted, dt, j, m, n_pat, gram)
                rhs[j] = _dot(response, dt, j, n_pat)
            for j in range(m):
                for k in range(j):
                    gram[j, k] = gram[k, j]
            if not _lu_factor(gram, pivot, m):
                singular[r] = True
                break
            _lu_solve(gram, pivot, m, rhs, first)
            # one step of iterative refinement, the residual from the design
            _linear_predictor(dt, first, m, n_pat, fitted)
            for i in range(n_pat):
                fitted[i] = response[i] - curvature[i] * fitted[i]
            for j in range(m):
                rhs[j] = _dot(fitted, dt, j, n_pat)
            _lu_solve(gram, pivot, m, rhs, second)
            finite = True
            for j in range(m):
                solution = first[j] + second[j]
                b_old = beta[r, columns[j]]
                if r_glm:
                    coef[j] = solution
                    step[j] = solution - b_old
                else:
                    step[j] = solution
                    coef[j] = b_old + solution
                if not math.isfinite(coef[j]):
                    finite = False
            n_iter[r] = iteration
            if not finite:  # R: "non-finite coefficients"; the previous iterate is kept
                break
            _linear_predictor(dt, coef, m, n_pat, new_eta)
            if r_glm:
                for i in range(n_pat):
                    x = new_eta[i]
                    if x < -_THRESHOLD:
                        o = _EPS
                    elif x > _THRESHOLD:
                        o = 1.0 / _EPS
                    else:
                        o = math.exp(x)
                    new_mu[i] = o / (1.0 + o)
                    terms[i] = w[i] * math.log(new_mu[i] if yy[i] > 0 else 1.0 - new_mu[i])
                    odds[i] = o
                new_deviance = -2.0 * _lane_sum(terms, n_pat)
                done = abs(new_deviance - deviance[r]) / (abs(new_deviance) + 0.1) < tol
            else:
                for i in range(n_pat):
                    new_mu[i] = 1.0 / (1.0 + math.exp(-new_eta[i]))
                new_deviance = np.nan  # not a stopping rule here: computed once, after the loop
                largest = 0.0
                for j in range(m):
                    largest = max(largest, abs(step[j]))
                done = largest < tol
            for j in range(m):
                beta[r, columns[j]] = coef[j]
            for i in range(n_pat):
                last_move[r, i] = new_eta[i] - e[i]
                e[i] = new_eta[i]
                p[i] = new_mu[i]
            deviance[r] = new_deviance
            moved = True
            if done:
                converged[r] = True
                break
        if moved and not r_glm:  # scipy's log_expit(eta * sign), weighted, in numpy's sum
            for i in range(n_pat):
                x = e[i] if yy[i] > 0 else -e[i]
                log_p = x - math.log1p(math.exp(x)) if x < 0 else -math.log1p(math.exp(-x))
                terms[i] = w[i] * log_p
            deviance[r] = -2.0 * _lane_sum(terms, n_pat)
    return beta, eta, mu, last_move, deviance, n_iter, converged, singular


def warm_up() -> None:
    """Load (or compile, on the first use of an installation) :func:`iterate` and
    :func:`clearly_full_rank` for the argument types
    :func:`analysis.propensity.model.fit_propensity` passes, on a two-patient replicate, so that
    a caller timing a block does not time numba's loading (compiling: ~4.5 s once per
    installation; loading from the cache: ~0.4 s per process, both measured on the 2-core
    development machine)."""
    design = np.ones((1, 2, 1))
    clearly_full_rank(design)
    y = np.array([[1.0, 0.0]])
    weight = np.ones((1, 2))
    keep = np.ones((1, 1), dtype=bool)
    half = np.full((1, 2), 0.5)
    for r_glm in (True, False):
        iterate(design, y, weight, keep, np.zeros((1, 1)), np.zeros((1, 2)), half, np.zeros(1),
                np.ones(1, dtype=bool), r_glm, 1, 1e-8)
