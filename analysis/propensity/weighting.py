"""Propensity-score weights, batched over replicates: IPTW for the ATE and the ATT, overlap
weights (ATO), stabilisation, truncation of large weights, effective sample sizes.

With e = P(treated | covariates) the fitted propensity score (Rosenbaum & Rubin 1983):

===========  ===================  ==================  ======================================
estimand     treated weight       control weight      target population
===========  ===================  ==================  ======================================
``"ate"``    1 / e                1 / (1 - e)         the whole cohort (Rosenbaum 1987)
``"att"``    1                    e / (1 - e)         the treated (Sato & Matsuyama 2003)
``"ato"``    1 - e                e                   the overlap population (Li, Morgan &
                                                      Zaslavsky 2018)
===========  ===================  ==================  ======================================

as WeightIt's ``get_w_from_ps`` computes them (Greifer, WeightIt 2.0).

* **Stabilisation** (ATE only, as WeightIt ``stabilize = TRUE``): each weight is multiplied by
  the share of the cohort in the patient's own arm, P(A = a) (Robins, Hernán & Brumback
  2000; Xu et al. 2010), so the weights of each arm sum to about its size.
* **Truncation** (``trim = q``, WeightIt's ``trim(w, at = q)``; "trimming" there means
  winsorising, nobody is dropped): the weights above their q-th sample quantile are set to that
  quantile (Hyndman & Fan type 3, as WeightIt 2.0). For the ATT only the control weights are
  truncated (the treated all weigh 1); for the ATE and ATO the weights of both arms, pooled.
  Stabilisation is applied first. Truncation trades bias for variance (Cole & Hernán 2008;
  Lee, Lessler & Stuart 2011) and changes the target population.
* **Effective sample size** of an arm (Kish 1965): (sum w)^2 / sum w^2 (WeightIt's ``ESS``).

Frequency counts (``counts``: a bootstrap resample) make every quantity that of the expanded
sample: the arm shares of stabilisation, the truncation quantile and the effective sizes.

References
----------
Rosenbaum PR, Rubin DB (1983). Biometrika 70:41-55. Rosenbaum PR (1987). J Am Stat Assoc
82:387-394. Sato T, Matsuyama Y (2003). Epidemiology 14:680-686. Li F, Morgan KL, Zaslavsky
AM (2018). J Am Stat Assoc 113:390-400. Robins JM, Hernán MA, Brumback B (2000). Epidemiology
11:550-560. Xu S et al. (2010). Value Health 13:273-277. Cole SR, Hernán MA (2008). Am J
Epidemiol 168:656-664. Lee BK, Lessler J, Stuart EA (2011). PLoS ONE 6:e18174. Kish L (1965).
Survey Sampling, Wiley. Greifer N, WeightIt 2.0.0, ``R/get_w_from_ps.R``, ``R/trim.R``,
``R/ESS.R``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis import status
from analysis.propensity import sample_sums
from analysis.quantiles import frequency_quantiles

ESTIMANDS = ("ate", "att", "ato")


@dataclass(frozen=True)
class PropensityWeights:
    """Weights of a batch of replicates.

    Attributes
    ----------
    weights : ndarray of float, shape (replicate, patient)
        The patient's weight (per copy: multiply by the counts for the analysis weight); 0
        outside the cohort and for every patient of a replicate whose status is not OK.
    ess_treated, ess_control : ndarray of float, shape (replicate,)
        Kish effective sample size of each arm, (sum c w)^2 / sum c w^2 with the counts c.
    n_truncated : ndarray of int, shape (replicate,)
        Patients whose weight was truncated (0 without ``trim``).
    truncation_weight : ndarray of float, shape (replicate,)
        The weight the large ones were set to (NaN without ``trim``).
    status : ndarray of int8, shape (replicate,)
        ``EMPTY_ARM`` (an arm has nobody), ``UNDEFINED`` (a propensity score of a patient in
        the cohort is not strictly between 0 and 1, so a weight would be infinite or 0/0),
        else ``OK``.
    """

    weights: np.ndarray
    ess_treated: np.ndarray
    ess_control: np.ndarray
    n_truncated: np.ndarray
    truncation_weight: np.ndarray
    status: np.ndarray


def _ate(ps, treated):
    return np.where(treated, 1.0 / ps, 1.0 / (1.0 - ps))


def _att(ps, treated):
    return np.where(treated, 1.0, ps / (1.0 - ps))


def _ato(ps, treated):
    return np.where(treated, 1.0 - ps, ps)


_WEIGHTS = {"ate": _ate, "att": _att, "ato": _ato}


def propensity_weights(ps, treated, *, estimand: str, mask=None, counts=None, stabilize: bool = False,
                       trim: float | None = None) -> PropensityWeights:
    """Propensity-score weights for ``estimand``, every replicate at once.

    Parameters
    ----------
    ps : array_like of float, shape (replicate, patient)
        Fitted propensity scores (NaN outside the cohort is fine).
    treated : array_like of bool, shape (replicate, patient)
    estimand : {"ate", "att", "ato"}
        See the module docstring.
    mask : array_like of bool, shape (replicate, patient), optional
        Who is in the cohort (default: everyone).
    counts : array_like, shape (replicate, patient), optional
        Frequency counts (a bootstrap resample; default 1); 0 = not in the sample.
    stabilize : bool
        Multiply by the share of the sample in the patient's arm (ATE only).
    trim : float in [0.5, 1), optional
        Truncate the weights above this sample quantile (module docstring).

    Returns
    -------
    PropensityWeights
    """
    if estimand not in _WEIGHTS:
        raise ValueError(f"unknown estimand {estimand!r}; choose one of {', '.join(ESTIMANDS)}")
    if stabilize and estimand != "ate":
        raise ValueError("stabilisation is defined for the ATE weights only (as in WeightIt)")
    if trim is not None and not 0.5 <= trim < 1.0:
        raise ValueError(f"trim must be a quantile in [0.5, 1); got {trim}")
    ps = np.asarray(ps, dtype=float)
    treated = np.asarray(treated, dtype=bool)
    if ps.ndim != 2 or treated.shape != ps.shape:
        raise ValueError(f"ps and treated must share shape (replicate, patient); got {ps.shape}, {treated.shape}")
    count = np.ones(ps.shape) if counts is None else np.asarray(counts, dtype=float)
    if mask is not None:
        count = np.where(np.asarray(mask, dtype=bool), count, 0.0)
    in_sample = count > 0

    n_treated = (count * treated).sum(axis=1)
    n_control = count.sum(axis=1) - n_treated
    defined = ~in_sample | ((ps > 0.0) & (ps < 1.0))
    code = np.full(ps.shape[0], status.OK, np.int8)
    code[~defined.all(axis=1)] = status.UNDEFINED
    code[(n_treated <= 0) | (n_control <= 0)] = status.EMPTY_ARM
    usable = (code == status.OK)[:, None] & in_sample

    safe_ps = np.where(usable, ps, 0.5)
    weights = _WEIGHTS[estimand](safe_ps, treated)
    if stabilize:
        with np.errstate(invalid="ignore", divide="ignore"):
            share_treated = n_treated / (n_treated + n_control)
        weights = weights * np.where(treated, share_treated[:, None], 1.0 - share_treated[:, None])
    weights = np.where(usable, weights, 0.0)

    n_truncated = np.zeros(ps.shape[0], np.int64)
    truncation_weight = np.full(ps.shape[0], np.nan)
    if trim is not None:
        trimmable = usable & ~treated if estimand == "att" else usable
        threshold = frequency_quantiles(weights, np.where(trimmable, count, 0.0), [trim],
                                        method="closest_observation")[:, 0]
        above = trimmable & (weights > threshold[:, None])
        weights = np.where(above, threshold[:, None], weights)
        n_truncated = above.sum(axis=1)
        truncation_weight = np.where(code == status.OK, threshold, np.nan)

    ess_treated, ess_control = effective_sample_sizes(weights, treated, count)
    return PropensityWeights(weights=weights, ess_treated=ess_treated, ess_control=ess_control,
                             n_truncated=n_truncated, truncation_weight=truncation_weight, status=code)


def effective_sample_sizes(weights, treated, counts=None, *, compiled: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Kish effective sample size of each arm, (sum c w)^2 / sum c w^2; shapes (replicate,).

    Parameters
    ----------
    weights : array_like of float, shape (replicate, patient)
        Weights (0 = not in the sample).
    treated : array_like of bool, shape (replicate, patient)
    counts : array_like, shape (replicate, patient), optional
        Frequency counts c (default 1): the size is that of the expanded sample.
    compiled : bool
        One compiled pass per replicate (:func:`analysis.propensity.sample_sums.kish_sizes`,
        default); False: the numpy operations, its test oracle (equal bit for bit).

    Returns
    -------
    ess_treated, ess_control : ndarray of float, shape (replicate,)
        NaN for an arm with zero total weight.
    """
    weights = np.ascontiguousarray(weights, dtype=float)
    treated = np.ascontiguousarray(treated, dtype=bool)
    count = np.ones(weights.shape) if counts is None else np.ascontiguousarray(counts, dtype=float)
    if compiled and weights.ndim == 2 and treated.shape == weights.shape == count.shape:
        with np.errstate(invalid="ignore", divide="ignore"):
            sizes = sample_sums.kish_sizes(weights, treated, count)
        return sizes[0], sizes[1]
    sizes = []
    for arm in (treated, ~treated):
        w = weights * arm * count
        with np.errstate(invalid="ignore", divide="ignore"):
            sizes.append(w.sum(axis=1) ** 2 / (w * weights).sum(axis=1))
    return sizes[0], sizes[1]
