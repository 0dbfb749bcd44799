"""R's binomial deviance in the compiled PS fit, and a cheap bracket of it that spares the C
library's ``log`` in iterations that certainly do not converge (numba).

R's rule stops when ``|dev - dev_old| / (|dev| + 0.1) < epsilon`` (1e-8). The deviance
``-2 sum w log(a)`` (``a`` the fitted probability of the patient's own outcome) takes one
``log`` per patient and iteration: with 100 patients about a third of an iteration's time. In
the early iterations the deviance changes by far more than ``epsilon``: there
:func:`approximate_deviance` (a vectorised logarithm, exponent and ``atanh`` series) gives the
deviance to ``bound``, and where the relative change is above ``epsilon`` even at the ends of
both brackets (:func:`surely_not_converged`), the iteration continues without the exact
deviance. Otherwise, and after the last iteration, :func:`exact_deviance` computes it as before
(``log`` of the C library, summed in numpy's order), so iteration counts, convergence and the
returned deviance are those of computing the exact deviance every iteration.

The bracket: ``a`` is a normal number in ``[eps / (1 + eps), 1]`` (R's clamped link), so
``a = 2^e m`` with ``-53 <= e <= 0`` and, after moving ``m`` into ``[sqrt(1/2), sqrt(2))``,
``log m = 2 atanh(t)``, ``t = (m - 1) / (m + 1)``, ``|t| <= 0.1716``; ten terms of the series
leave a remainder below ``1e-17``; the roundings of ``e ln 2`` (``|e| <= 54``) and of the
series are below ``2e-14``; the C library's ``log`` is within one ulp (below ``1e-14`` for
``|log a| <= 37``). So each term of the approximate sum is within ``1e-12 w`` (a hundredfold
margin) of the exact one, and the two sums' own roundings are within ``n eps`` of their
magnitude each: ``bound = 2e-12 sum w + 3 n eps (|approximate| + 1)``.

References
----------
R Core Team. R 4.2 ``stats::glm.fit`` (its convergence test), ``binomial_dev_resids``;
Muller J-M (2016). Elementary Functions, 3rd ed. Birkhauser, chapter 11 (logarithm by
argument reduction and the ``atanh`` series).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from analysis.pairwise import block_sum

_EPS = float(np.finfo(float).eps)
_LN2 = math.log(2.0)
_SQRT2 = math.sqrt(2.0)
_MANTISSA = 0x000FFFFFFFFFFFFF
_ONE = 0x3FF0000000000000
#: ``2 / (2k + 1)``, k = 9 .. 1: the ``atanh`` series of ``log m`` in powers of ``t^2``.
_C9, _C8, _C7, _C6, _C5 = 2 / 19, 2 / 17, 2 / 15, 2 / 13, 2 / 11
_C4, _C3, _C2, _C1 = 2 / 9, 2 / 7, 2 / 5, 2 / 3


@numba.njit(cache=True, nogil=True, error_model="numpy")
def exact_deviance(a, w, n, terms):
    """``-2 sum_i w_i log(a_i)`` over ``i < n`` with the C library's ``log`` (a term of weight
    0 is -0.0, as ``0 * log(a)``), summed in numpy's order (:func:`analysis.pairwise.block_sum`)."""
    for i in range(n):
        terms[i] = w[i] * math.log(a[i]) if w[i] > 0.0 else -0.0
    return -2.0 * block_sum(terms, 0, n)


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "contract"})
def approximate_deviance(a, w, n, exponent, mantissa_bits):
    """``(approximate, bound)``: :func:`exact_deviance` is within ``bound`` of ``approximate``
    (module docstring); ``exponent`` (float64) and ``mantissa_bits`` (int64) are work arrays
    of ``n``. Every ``a_i`` of positive weight must be a normal number in (0, 1]."""
    bits = a[:n].view(np.int64)
    ex = exponent[:n]
    mb = mantissa_bits[:n]
    for i in range(n):
        b = bits[i]
        ex[i] = float((b >> 52) - 1023)
        mb[i] = (b & _MANTISSA) | _ONE
    mantissa = mb.view(np.float64)
    ww = w[:n]
    total = 0.0
    weights = 0.0
    for i in range(n):
        m = mantissa[i]
        e = ex[i]
        big = m > _SQRT2
        m = 0.5 * m if big else m
        e = e + 1.0 if big else e
        t = (m - 1.0) / (m + 1.0)
        t2 = t * t
        series = _C9
        series = series * t2 + _C8
        series = series * t2 + _C7
        series = series * t2 + _C6
        series = series * t2 + _C5
        series = series * t2 + _C4
        series = series * t2 + _C3
        series = series * t2 + _C2
        series = series * t2 + _C1
        series = series * t2 + 2.0
        total += ww[i] * (e * _LN2 + t * series)
        weights += ww[i]
    approximate = -2.0 * total
    return approximate, 2e-12 * weights + 3.0 * n * _EPS * (abs(approximate) + 1.0)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def surely_not_converged(new, new_bound, old, old_bound, tol):
    """Whether R's test ``|new - old| / (|new| + 0.1) < tol`` fails for every pair of
    deviances within the bounds of ``new`` and ``old`` (with a margin for the test's own
    rounding)."""
    change = abs(new - old) - new_bound - old_bound
    return change > tol * (abs(new) + new_bound + 0.1) * (1.0 + 1e-6)
