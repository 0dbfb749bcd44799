"""The linear algebra of the compiled PS fit (numba): weighted Gram matrices, products with the
design, and the factorisations of the small symmetric systems.

The design of one replicate is held transposed, ``dt`` shaped (rows, patient) with its rows
padded with zeros to a multiple of four (:data:`BLOCK`), so that every product below runs over
whole blocks of four rows and over contiguous patients (the loops the compiler vectorises).

* :func:`gram_upper`: the upper triangle of ``D' diag(c) D`` in 4x4 blocks of sixteen sums (ten
  in the blocks on the diagonal, :func:`_diagonal_block`: the six below it are mirrored), one
  pass over a chunk of patients per block (chunks of :data:`CHUNK` patients so that the rows
  read stay in the core's cache); each sum is over patients in an order of the compiler's
  choice (partial sums, fused multiply-adds: eight patients to a vector, then the patients
  left over one by one, which is why the caller pads its patients to whole vectors).
* :func:`transposed_products`: ``D' u``, four rows per pass.
* :func:`predict`: ``D b``, the coefficients four at a time.
* :func:`cholesky` / :func:`cholesky_solve`: ``G = L L'`` of a symmetric positive-definite
  matrix (Golub & Van Loan 2013, algorithm 4.2.2, row by row), refused (False) unless every
  pivot is positive and finite; :func:`lu_factor` / :func:`lu_solve`: LU with partial
  pivoting (LAPACK ``dgetf2``'s algorithm), for matrices Cholesky refuses.
* :func:`clearly_full_rank`: the rank screen's certificate on ``D'D``.

References
----------
Golub GH, Van Loan CF (2013). Matrix Computations, 4th ed. Johns Hopkins, sections 3.2 (LU with
partial pivoting) and 4.2 (Cholesky); Higham NJ (2002). Accuracy and Stability of Numerical
Algorithms, 2nd ed. SIAM, theorem 10.3 (backward error of Cholesky).
"""

from __future__ import annotations

import math

import numba

#: Rows of the design handled together: the padded row count is a multiple of it.
BLOCK = 4
#: Patients per pass of :func:`gram_upper`: sixteen rows of 2,048 doubles (256 KiB) stay in
#: the core's level-2 cache while the ten blocks of a 16-column Gram matrix read them.
CHUNK = 2048

_FAST = {"reassoc", "contract"}


@numba.njit(cache=True, nogil=True, error_model="numpy")
def padded_rows(q):
    """``q`` rounded up to a multiple of :data:`BLOCK`."""
    return (q + BLOCK - 1) // BLOCK * BLOCK


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_FAST)
def _block(c, dt, j, k, lo, hi, out):
    """``out[j + a, k + b] += sum_{lo <= i < hi} c[i] dt[j + a, i] dt[k + b, i]`` for a, b < 4.

    Row views taken first and a loop from 0, so the compiler sees unit-stride loads with
    non-negative indices (an index that could be negative makes it gather)."""
    n = hi - lo
    cc = c[lo:hi]
    a0r, a1r, a2r, a3r = dt[j, lo:hi], dt[j + 1, lo:hi], dt[j + 2, lo:hi], dt[j + 3, lo:hi]
    b0r, b1r, b2r, b3r = dt[k, lo:hi], dt[k + 1, lo:hi], dt[k + 2, lo:hi], dt[k + 3, lo:hi]
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = 0.0
    s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = 0.0
    for i in range(n):
        ci = cc[i]
        a0, a1, a2, a3 = ci * a0r[i], ci * a1r[i], ci * a2r[i], ci * a3r[i]
        b0, b1, b2, b3 = b0r[i], b1r[i], b2r[i], b3r[i]
        s00 += a0 * b0
        s01 += a0 * b1
        s02 += a0 * b2
        s03 += a0 * b3
        s10 += a1 * b0
        s11 += a1 * b1
        s12 += a1 * b2
        s13 += a1 * b3
        s20 += a2 * b0
        s21 += a2 * b1
        s22 += a2 * b2
        s23 += a2 * b3
        s30 += a3 * b0
        s31 += a3 * b1
        s32 += a3 * b2
        s33 += a3 * b3
    out[j, k] += s00
    out[j, k + 1] += s01
    out[j, k + 2] += s02
    out[j, k + 3] += s03
    out[j + 1, k] += s10
    out[j + 1, k + 1] += s11
    out[j + 1, k + 2] += s12
    out[j + 1, k + 3] += s13
    out[j + 2, k] += s20
    out[j + 2, k + 1] += s21
    out[j + 2, k + 2] += s22
    out[j + 2, k + 3] += s23
    out[j + 3, k] += s30
    out[j + 3, k + 1] += s31
    out[j + 3, k + 2] += s32
    out[j + 3, k + 3] += s33


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_FAST)
def _diagonal_block(c, dt, j, lo, hi, out):
    """:func:`_block` with ``k = j``, its ten sums on and above the diagonal only (the six
    below it are :func:`gram_upper`'s mirror of these): the same products, summed alike."""
    n = hi - lo
    cc = c[lo:hi]
    a0r, a1r, a2r, a3r = dt[j, lo:hi], dt[j + 1, lo:hi], dt[j + 2, lo:hi], dt[j + 3, lo:hi]
    s00 = s01 = s02 = s03 = s11 = s12 = s13 = s22 = s23 = s33 = 0.0
    for i in range(n):
        ci = cc[i]
        b0, b1, b2, b3 = a0r[i], a1r[i], a2r[i], a3r[i]
        a0, a1, a2, a3 = ci * b0, ci * b1, ci * b2, ci * b3
        s00 += a0 * b0
        s01 += a0 * b1
        s02 += a0 * b2
        s03 += a0 * b3
        s11 += a1 * b1
        s12 += a1 * b2
        s13 += a1 * b3
        s22 += a2 * b2
        s23 += a2 * b3
        s33 += a3 * b3
    out[j, j] += s00
    out[j, j + 1] += s01
    out[j, j + 2] += s02
    out[j, j + 3] += s03
    out[j + 1, j + 1] += s11
    out[j + 1, j + 2] += s12
    out[j + 1, j + 3] += s13
    out[j + 2, j + 2] += s22
    out[j + 2, j + 3] += s23
    out[j + 3, j + 3] += s33


@numba.njit(cache=True, nogil=True, error_model="numpy")
def gram_upper(c, dt, rows, n, out):
    """``out[j, k] = sum_i c[i] dt[j, i] dt[k, i]`` for ``j <= k < rows`` (``rows`` a multiple
    of :data:`BLOCK`; patients ``i < n``), the lower triangle mirrored from it. Computed in
    chunks of :data:`CHUNK` patients, 4x4 blocks per chunk."""
    for j in range(rows):
        for k in range(rows):
            out[j, k] = 0.0
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        for j in range(0, rows, BLOCK):
            _diagonal_block(c, dt, j, lo, hi, out)
            for k in range(j + BLOCK, rows, BLOCK):
                _block(c, dt, j, k, lo, hi, out)
    for j in range(rows):
        for k in range(j):
            out[j, k] = out[k, j]


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_FAST)
def transposed_products(u, dt, rows, n, out):
    """``out[j] = sum_{i < n} u[i] dt[j, i]`` for ``j < rows`` (a multiple of :data:`BLOCK`),
    four rows per pass (each sum in an order of the compiler's choice)."""
    uu = u[:n]
    for j in range(0, rows, BLOCK):
        r0, r1, r2, r3 = dt[j, :n], dt[j + 1, :n], dt[j + 2, :n], dt[j + 3, :n]
        s0 = s1 = s2 = s3 = 0.0
        for i in range(n):
            ui = uu[i]
            s0 += ui * r0[i]
            s1 += ui * r1[i]
            s2 += ui * r2[i]
            s3 += ui * r3[i]
        out[j] = s0
        out[j + 1] = s1
        out[j + 2] = s2
        out[j + 3] = s3


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def predict(dt, b, rows, n, out):
    """``out[i] = sum_j b[j] dt[j, i]`` for ``i < n`` (``b`` zero beyond the fitted rows), the
    coefficients four at a time in order: ``((b0 d0 + b1 d1) + (b2 d2 + b3 d3))`` added to the
    sum of the blocks before."""
    oo = out[:n]
    for j in range(0, rows, BLOCK):
        r0, r1, r2, r3 = dt[j, :n], dt[j + 1, :n], dt[j + 2, :n], dt[j + 3, :n]
        c0, c1, c2, c3 = b[j], b[j + 1], b[j + 2], b[j + 3]
        if j == 0:
            for i in range(n):
                oo[i] = (c0 * r0[i] + c1 * r1[i]) + (c2 * r2[i] + c3 * r3[i])
        else:
            for i in range(n):
                oo[i] += (c0 * r0[i] + c1 * r1[i]) + (c2 * r2[i] + c3 * r3[i])


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def cholesky(a, m, low, inverse_diagonal):
    """Lower Cholesky factor ``low`` of ``a[:m, :m]`` (``a`` symmetric; its upper triangle is
    read), row by row, each sum in order (short loops: reassociating them to vectorise costs
    more than it saves); ``inverse_diagonal`` gets ``1 / low[j, j]``. False (``low`` then
    meaningless) unless every pivot is positive and finite: the matrix is not numerically
    positive-definite, or it overflowed."""
    for i in range(m):
        li = low[i]
        for j in range(i + 1):
            lj = low[j]
            s = a[j, i]
            for k in range(j):
                s -= li[k] * lj[k]
            if j < i:
                li[j] = s * inverse_diagonal[j]
            else:
                if not (s > 0.0 and s < math.inf):
                    return False
                d = math.sqrt(s)
                li[i] = d
                inverse_diagonal[i] = 1.0 / d
    return True


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def cholesky_solve(low, inverse_diagonal, m, b, x):
    """``x = A^-1 b`` from :func:`cholesky`'s ``A = L L'`` (``b`` is kept): ``L y = b`` row by
    row, then ``L' x = y`` by columns."""
    for i in range(m):
        s = b[i]
        for k in range(i):
            s -= low[i, k] * x[k]
        x[i] = s * inverse_diagonal[i]
    for i in range(m - 1, -1, -1):
        xi = x[i] * inverse_diagonal[i]
        x[i] = xi
        for k in range(i):
            x[k] -= low[i, k] * xi


@numba.njit(cache=True, nogil=True, error_model="numpy")
def lu_factor(a, pivot, m):
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
def lu_solve(a, pivot, m, b, x):
    """``x = A^-1 b`` from :func:`lu_factor`'s factors of ``A`` (``b`` is kept)."""
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
def clearly_full_rank(gram, q, low, inverse_diagonal):
    """Whether ``G = D'D`` (``gram``, its upper triangle over ``q`` columns) certainly has full
    rank: its smallest eigenvalue exceeds ``1e-8`` times its largest, shown by a Cholesky
    factorisation of ``G - tau I`` with ``tau = 2e-8 ||G||_F`` (``||G||_F >= lambda_max``)
    that meets only positive pivots. Cholesky is backward stable (Higham 2002, theorem 10.3:
    the error of the ``G`` it is exact for is ~q eps ||G||, far below ``tau / 2``, in any
    order of its sums), and so is the rounding of the products, so a True is never wrong; a
    False only means "not shown" (then ``lambda_min`` is below ~8e-8 ``lambda_max``). ``gram``
    is overwritten on the diagonal."""
    frobenius = 0.0
    for j in range(q):
        for k in range(j, q):
            g = gram[j, k]
            frobenius += g * g if k == j else 2.0 * g * g
    if not (frobenius > 0.0 and frobenius < math.inf):
        return False
    tau = 2e-8 * math.sqrt(frobenius)
    for j in range(q):
        gram[j, j] -= tau
    return cholesky(gram, q, low, inverse_diagonal)
