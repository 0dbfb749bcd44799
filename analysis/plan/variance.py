"""Standard errors of the plan's Cox estimate beyond the model-based and robust ones: the
bootstrap (patients, or matched sets after matching) and the Austin & Cafri (2020) variance,
each for a whole block.

The plan's SE is carried in the ``robust_se`` field of a :class:`analysis.survival.cox.CoxResult`
(with the z statistic, p-value and Wald CI recomputed from it by :func:`with_standard_error`),
so :mod:`analysis.plan.analyse` reports every non-model SE the same way.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import special

from analysis import status as st
from analysis.plan.bootstrap import BootstrapResult, bootstrap_standard_errors
from analysis.plan.options import Plan
from analysis.propensity.matched_sets import MatchResult
from analysis.survival.cox import CoxResult, fit_cox
from analysis.survival.risk_sets import Packing


def with_standard_error(cox: CoxResult, se, *, level: float) -> CoxResult:
    """``cox`` with ``se`` (shape (replicate,)) as its reported SE: ``robust_se``, ``z``,
    ``p_value``, ``p_value_robust`` and the CI from it; status ``UNDEFINED`` where the fit is
    OK but ``se`` is not finite and positive (e.g. fewer than two usable bootstrap draws)."""
    se = np.asarray(se, dtype=float)
    code = cox.status.copy()
    code[(code == st.OK) & ~(np.isfinite(se) & (se > 0))] = st.UNDEFINED
    ok = code == st.OK
    log_hr = np.where(ok, cox.log_hr, np.nan)
    se = np.where(ok, se, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = log_hr / se
    p_value = 2.0 * special.ndtr(-np.abs(z))
    critical = float(special.ndtri(1.0 - (1.0 - level) / 2.0))
    return replace(cox, log_hr=log_hr, se=np.where(ok, cox.se, np.nan), robust_se=se, z=z, p_value=p_value,
                   p_value_robust=p_value, ci_lower=log_hr - critical * se, ci_upper=log_hr + critical * se,
                   converged=cox.converged & ok, status=code)


def _log_hrs(endpoints, treated, weights, plan: Plan) -> np.ndarray:
    """Unadjusted Cox log HR of every endpoint, shape (rows, endpoint); NaN where it fails."""
    columns = []
    for time, event in endpoints:
        cox = fit_cox(time, event, treated, weights=weights, ties=plan.ties)
        columns.append(np.where(cox.status == st.OK, cox.log_hr, np.nan))
    return np.stack(columns, axis=1)


def patients_bootstrap(endpoints, treated, weights, plan: Plan, *, rng: np.random.Generator) -> BootstrapResult:
    """Bootstrap SE of the unadjusted Cox estimate, resampling the patients with positive weight.

    Parameters
    ----------
    endpoints : sequence of (time, event), each shaped (replicate, patient)
    treated : ndarray of bool, shape (replicate, patient)
    weights : ndarray of float, shape (replicate, patient)
        The cohort's analysis weights (0 = not in it); a resampled patient's weight is
        multiplied by how often it was drawn.
    plan : Plan
        Ties and ``bootstrap_draws``.
    rng : numpy.random.Generator
    """
    members = Packing(weights > 0)
    patients = members(np.broadcast_to(np.arange(weights.shape[1]), weights.shape), 0, np.int64)
    n_units = (weights > 0).sum(axis=1)

    n_pat = weights.shape[1]

    def estimate(rows, unit_counts):
        cells = np.arange(rows.size)[:, None] * n_pat + patients[rows]
        counts = np.bincount(cells.ravel(), weights=unit_counts[:, :patients.shape[1]].ravel(),
                             minlength=rows.size * n_pat).reshape(rows.size, n_pat)
        return _log_hrs([(t[rows], e[rows]) for t, e in endpoints], treated[rows], weights[rows] * counts, plan)

    return bootstrap_standard_errors(estimate, n_units, n_estimates=len(endpoints), draws=plan.bootstrap_draws,
                                     rng=rng)


def pairs_bootstrap(endpoints, treated, matching: MatchResult, usable, plan: Plan, *,
                    rng: np.random.Generator) -> BootstrapResult:
    """Bootstrap SE of the matched-cohort Cox estimate, resampling matched sets (the matching
    is kept): a patient's weight is the sum of the draw counts of the sets it belongs to (its
    matching weight when every set is drawn once; with replacement a control counts once per set).

    Parameters
    ----------
    endpoints : sequence of (time, event), each shaped (replicate, patient)
    treated : ndarray of bool, shape (replicate, patient)
    matching : MatchResult
    usable : ndarray of bool, shape (replicate,)
        Replicates whose matched analysis is not failed (the others get NaN).
    plan : Plan
    rng : numpy.random.Generator
    """
    control_of = matching.control_of
    n_rep, n_pat, ratio = control_of.shape
    has_set = (control_of >= 0).any(axis=2)
    set_of = np.where(has_set, matching.pair_id, 0).astype(np.int64)  # the set of each treated patient
    n_units = np.where(usable, matching.n_pairs, 0)

    def estimate(rows, set_counts):
        offset = np.arange(rows.size)[:, None] * n_pat
        own = np.take_along_axis(set_counts, set_of[rows], axis=1) * has_set[rows]  # each treated's set
        counts = own.ravel().copy()
        for slot in range(ratio):
            control = control_of[rows, :, slot]
            found = control >= 0
            counts += np.bincount((offset + control)[found], weights=own[found], minlength=rows.size * n_pat)
        counts = counts.reshape(rows.size, n_pat)
        return _log_hrs([(t[rows], e[rows]) for t, e in endpoints], treated[rows], counts, plan)

    return bootstrap_standard_errors(estimate, n_units, n_estimates=len(endpoints), draws=plan.bootstrap_draws,
                                     rng=rng)
