"""The propensity score as an adjustment variable, batched over replicates: a restricted cubic
spline basis of it and its quantile strata.

* :func:`spline_knots` and :func:`restricted_cubic_spline`: Harrell's restricted (natural)
  cubic spline, linear beyond the outer knots, with k knots at the sample quantiles Harrell
  recommends (Regression Modeling Strategies, 2nd ed., section 2.4.6, Table 2.3): equally
  spaced probabilities from ``outer`` to ``1 - outer`` with outer = 0.10 for k = 3, 0.05 for
  k = 4-6 and 0.025 for k = 7 (type 7 quantiles), and, when fewer than 100 observations are
  used, the outer knots moved to the 5th smallest and 5th largest value: R Hmisc
  ``rcspline.eval(x, nk = k)``'s default placement. (Hmisc's extra rules for heavily tied
  outer values, ``fractied``, and for fewer unique values than knots are not applied: the
  logit of a fitted PS is continuous.) The basis is Hmisc's ``inclx = TRUE, norm = 2``:
  x and, for j = 1..k-2, ``(x - t_j)_+^3 - (x - t_{k-1})_+^3 (t_k - t_j) / (t_k - t_{k-1})
  + (x - t_k)_+^3 (t_{k-1} - t_j) / (t_k - t_{k-1})``, all divided by ``(t_k - t_1)^2``.
* :func:`quantile_strata`: the PS strata of Rosenbaum & Rubin (1984) (quintiles for
  ``n_strata = 5``): cut points at the type 7 sample quantiles ``j / n_strata`` of the pooled
  cohort, intervals closed on the right and the first one closed on both sides, as R
  ``cut(x, quantile(x, 0:5 / 5), include.lowest = TRUE)``.

Frequency counts (a bootstrap resample) place knots and cut points at the quantiles of the
expanded sample (:mod:`analysis.quantiles`).

References
----------
Harrell FE (2015). Regression Modeling Strategies, 2nd ed., Springer, section 2.4.5-2.4.6.
Stone CJ, Koo CY (1985). Additive splines in statistics. Proc Stat Comp Sect Am Stat Assoc
45-48. Rosenbaum PR, Rubin DB (1984). J Am Stat Assoc 79:516-524. Harrell FE, Hmisc
``rcspline.eval``.
"""

from __future__ import annotations

import numpy as np

from analysis.quantiles import frequency_order_statistics, frequency_quantiles

#: Knot counts Harrell tabulates, and the outer quantile of each.
SPLINE_OUTER = {3: 0.10, 4: 0.05, 5: 0.05, 6: 0.05, 7: 0.025}


def spline_knots(x, counts, n_knots: int = 4) -> np.ndarray:
    """Knots of a restricted cubic spline of ``x`` in each replicate (Hmisc's default placement).

    Parameters
    ----------
    x : array_like of float, shape (replicate, patient)
    counts : array_like, shape (replicate, patient)
        Frequency counts (0 = not in the sample; 0/1 for a cohort mask).
    n_knots : int in 3..7

    Returns
    -------
    ndarray of float, shape (replicate, n_knots)
        Increasing knots (NaN for an empty replicate).
    """
    if n_knots not in SPLINE_OUTER:
        raise ValueError(f"n_knots must be one of {', '.join(map(str, SPLINE_OUTER))}; got {n_knots}")
    x = np.asarray(x, dtype=float)
    counts = np.asarray(counts, dtype=float)
    outer = SPLINE_OUTER[n_knots]
    knots = frequency_quantiles(x, counts, np.linspace(outer, 1.0 - outer, n_knots))
    n = counts.sum(axis=1)
    small = n < 100
    if small.any():
        ends = frequency_order_statistics(x[small], counts[small], np.stack([np.full(small.sum(), 4.0), n[small] - 5.0], 1))
        knots[small, 0], knots[small, -1] = ends[:, 0], ends[:, 1]
    return knots


def restricted_cubic_spline(x, knots) -> np.ndarray:
    """Harrell's restricted cubic spline basis (``inclx = TRUE``, ``norm = 2``).

    Parameters
    ----------
    x : array_like of float, shape (replicate, patient)
    knots : array_like of float, shape (replicate, k)
        Increasing knots, e.g. from :func:`spline_knots`.

    Returns
    -------
    ndarray of float, shape (replicate, patient, k - 1)
        Column 0 is x, columns 1..k-2 the nonlinear terms.
    """
    x = np.asarray(x, dtype=float)
    knots = np.asarray(knots, dtype=float)
    first, second_last, last = knots[:, :1], knots[:, -2:-1], knots[:, -1:]
    norm = (last - first) ** 2

    def cube(t):
        return np.maximum(x - t, 0.0) ** 3

    columns = [x]
    for j in range(knots.shape[1] - 2):
        t = knots[:, j:j + 1]
        term = cube(t) + ((second_last - t) * cube(last) - (last - t) * cube(second_last)) / (last - second_last)
        columns.append(term / norm)
    return np.stack(columns, axis=2)


def quantile_strata(x, counts, n_strata: int = 5) -> np.ndarray:
    """Stratum 0..n_strata-1 of every patient by the sample quantiles of ``x``.

    Parameters
    ----------
    x : array_like of float, shape (replicate, patient)
    counts : array_like, shape (replicate, patient)
        Frequency counts (0 = not in the sample).
    n_strata : int >= 2

    Returns
    -------
    ndarray of int64, shape (replicate, patient)
        The number of inner cut points strictly below x (R ``cut(..., include.lowest =
        TRUE)``); -1 outside the sample.
    """
    if n_strata < 2:
        raise ValueError(f"n_strata must be at least 2; got {n_strata}")
    x = np.asarray(x, dtype=float)
    counts = np.asarray(counts, dtype=float)
    inner = frequency_quantiles(x, counts, np.arange(1, n_strata) / n_strata)
    stratum = (x[:, :, None] > inner[:, None, :]).sum(axis=2)
    return np.where(counts > 0, stratum, -1)
