"""The partial likelihood of a Cox model on the treatment indicator, as terms of risk-set tables.

With one binary covariate the partial likelihood depends on the data only through the 2 x 2
risk-set tables of :func:`analysis.survival.risk_sets.tabulate_risk_sets`. Every event row
contributes a term ``c * log(a + b * exp(beta))`` to the log partial likelihood, where ``a`` and
``b`` are the (Efron-reduced) weighted numbers at risk in the control and treated arms and
``c`` the event's weight:

* Breslow ties: ``a = n0``, ``b = n1``, ``c = w_i`` for each event i at the time (SPSS
  COXREG, statsmodels ``PHReg(ties="breslow")``).
* Efron ties (R ``coxph`` default, lifelines): the k-th of the m tied events (k = 0..m-1)
  sees the risk set with the tied events down-weighted by k/m:
  ``a = n0 - (k/m) d0``, ``b = n1 - (k/m) d1``, ``c = (d0 + d1) / m`` (the mean event
  weight, as R ``coxph`` and lifelines do with case weights; with non-integer or unequal
  weights this is not the same as duplicating rows).

``log L(beta) = d1 beta - sum c log(a + b e^beta)``, score ``U = d1 - sum c p``,
information ``I = sum c p (1 - p)`` with ``p = b e^beta / (a + b e^beta)``
(Cox 1972; Efron 1977; Therneau & Grambsch 2000, ch. 3). The score residuals are those of
R ``residuals.coxph(type = "score")`` (Therneau & Grambsch 2000, sec. 4.6). The fit itself is
:mod:`analysis.survival.cox`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from analysis.survival.risk_sets import Packing, cumulative_sums

#: A fitted |log HR| beyond this is reported as not converged (practically infinite).
MAX_ABS_LOG_HR = 20.0


@dataclass(frozen=True)
class Terms:
    """Partial-likelihood terms, one per event row: a, b, c and the Efron fraction k/m.

    ``risk_control`` (a), ``risk_treated`` (b), ``weight`` (c) and ``fraction`` are in the row
    layout of the risk-set table (a = 1, b = c = 0 on other rows); ``compact_*`` hold the same
    terms packed to the left, shape (replicate, max events), for the Newton iterations.
    """

    risk_control: np.ndarray
    risk_treated: np.ndarray
    weight: np.ndarray
    fraction: np.ndarray
    compact_control: np.ndarray
    compact_treated: np.ndarray
    compact_weight: np.ndarray
    events_treated: np.ndarray  # (replicate,) weighted treated events, d1


def _breslow_ties(table):
    """Every tied event sees the full risk set; each event term weighs its own weight."""
    return np.zeros(table.time.shape), table.weight


def _efron_ties(table):
    """The k-th of m tied events sees the tied events down-weighted by k/m; each term weighs
    the mean weight of the tied events (R ``coxph``, lifelines)."""
    tied = np.maximum(table.death_count, 1)
    fraction = (np.maximum(table.death_rank, 0) / tied) * table.event  # 0 off the event rows
    return fraction, (table.events_treated + table.events_control) / tied


TIES = {"breslow": _breslow_ties, "efron": _efron_ties}


def partial_likelihood_terms(table, ties: str) -> Terms:
    is_term = table.event
    fraction, weight = TIES[ties](table)
    a = table.at_risk_control - fraction * table.events_control
    b = table.at_risk_treated - fraction * table.events_treated
    # Risk-set sums are differences of cumulative sums: clear rounding residue near 0.
    scale = 1e-12 * np.maximum(table.weight.sum(axis=1, keepdims=True), 1.0)
    # The same as np.where(is_term, np.where(a > scale, a, 0), 1) and np.where(is_term &
    # (b > scale), b, 0), by exact products with 0/1 masks (faster than np.where).
    a = np.maximum(a, 0.0) * (is_term & (a > scale)) + ~is_term
    b = np.maximum(b, 0.0) * (is_term & (b > scale))
    # An event whose whole risk set weighs less than the rounding scale (possible only with
    # tiny non-integer weights, e.g. ATT weights e/(1-e) of controls with e ~ 1e-13) carries no
    # information: its term is dropped (a = 1, weight 0) instead of giving log(0).
    dead = is_term & (a + b <= 0)
    a = a + dead
    weight = weight * (is_term & ~dead)

    compact = Packing(is_term)
    events_treated = (table.weight * (is_term & ~dead & table.treated)).sum(axis=1)
    return Terms(
        risk_control=a,
        risk_treated=b,
        weight=weight,
        fraction=fraction,
        compact_control=compact(a, 1.0),
        compact_treated=compact(b, 0.0),
        compact_weight=compact(weight, 0.0),
        events_treated=events_treated,
    )


def hazard_ratio(beta):
    """exp(beta), with beta clipped where a runaway Newton step would overflow."""
    return np.exp(np.clip(beta, -3 * MAX_ABS_LOG_HR, 3 * MAX_ABS_LOG_HR))


def evaluate(terms: Terms, beta):
    """Log partial likelihood, score and information at ``beta`` (each shape (replicate,))."""
    treated_risk = terms.compact_treated * hazard_ratio(beta)[:, None]
    denominator = terms.compact_control + treated_risk
    share = treated_risk / denominator
    weighted_share = terms.compact_weight * share
    loglik = terms.events_treated * beta - (terms.compact_weight * np.log(denominator)).sum(axis=1)
    score = terms.events_treated - weighted_share.sum(axis=1)
    information = (weighted_share * (1.0 - share)).sum(axis=1)
    return loglik, score, information


def terms_of_rows(terms: Terms, rows) -> Terms:
    """The compact terms of some replicates (the rows ``rows``), for :func:`evaluate`."""
    return replace(terms, compact_control=terms.compact_control[rows], compact_treated=terms.compact_treated[rows],
                   compact_weight=terms.compact_weight[rows], events_treated=terms.events_treated[rows])


def score_residuals(table, terms: Terms, beta):
    """Score residuals per row (Efron- or Breslow-consistent, as R ``residuals.coxph``).

    For row i in tie group j (stratum s):
    ``L_i = delta_i (x_i - xbar_j) - e^{beta x_i} sum_{events k up to j} r_ik (x_i - p_k) dLambda_k``
    with ``dLambda_k = c_k / (a_k + b_k e^beta)``, ``p_k`` the treated share of the k-th
    (Efron) risk set, ``xbar_j`` the mean of ``p_k`` over the events of group j, and
    ``r_ik = 1 - k/m`` when i is one of the tied events of group j (1 otherwise).
    """
    exp_beta = hazard_ratio(beta)[:, None]
    treated_risk = terms.risk_treated * exp_beta
    denominator = terms.risk_control + treated_risk
    share = treated_risk / denominator  # 0 on non-event rows
    hazard = terms.weight / denominator  # 0 on non-event rows
    kept = 1.0 - terms.fraction

    n_replicates, n_patients = table.time.shape
    row_offset = (np.arange(n_replicates, dtype=np.int64) * (n_patients + 1))[:, None]
    at_tie_first = table.tie_first + row_offset
    at_stratum_first = table.stratum_first + row_offset
    after_tie_last = table.tie_last + 1 + row_offset

    def earlier_and_own(values):
        """Sums of ``values`` over the earlier tie groups of the stratum, and over the own group."""
        cumulative = cumulative_sums(values).ravel()
        at_first = cumulative[at_tie_first]
        return at_first - cumulative[at_stratum_first], cumulative[after_tie_last] - at_first

    def own_group(values):
        cumulative = cumulative_sums(values).ravel()
        return cumulative[after_tie_last] - cumulative[at_tie_first]

    mean_share = own_group(share) / np.maximum(table.death_count, 1)
    hazard_earlier, hazard_own = earlier_and_own(hazard)
    # Selections by exact products with 0/1 masks (every value is finite and >= 0).
    event = table.event
    not_event = ~event
    cumulative_hazard = hazard_earlier + (own_group(hazard * kept) * event + hazard_own * not_event)
    hazard_share = hazard * share
    hazard_share_earlier, hazard_share_own = earlier_and_own(hazard_share)
    cumulative_hazard_x = hazard_share_earlier + (
        own_group(hazard_share * kept) * event + hazard_share_own * not_event
    )
    x = table.treated.astype(np.float64)
    risk = exp_beta * x + (1.0 - x)  # e^beta for the treated, 1 for the controls
    compensator = risk * (x * cumulative_hazard - cumulative_hazard_x)
    return np.where(event, x - mean_share, 0.0) - compensator
