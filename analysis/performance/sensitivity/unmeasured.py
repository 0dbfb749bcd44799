"""Analytic answers to "how strong would an unmeasured confounder have to be?" for a hazard ratio.

Two formulas a reader of an observational survival study knows, printed beside psmsim's
simulated bias surface (the matched pipeline under a simulated unmeasured confounder U):

* **E-value** (VanderWeele & Ding 2017): the minimum strength of association, on the risk-ratio
  scale, that U would need with both treatment and outcome to explain away the observed
  association: ``E = RR + sqrt(RR (RR - 1))`` for ``RR >= 1`` (``RR < 1`` is inverted first).
  For a hazard ratio the paper gives two conversions to a risk ratio: for a rare outcome
  (< 15% by the end of follow-up) ``RR ≈ HR``; for a common outcome
  ``RR ≈ (1 - 0.5**sqrt(HR)) / (1 - 0.5**sqrt(1/HR))`` (VanderWeele 2020). The E-value of a
  confidence interval uses the limit closer to the null and is 1 when the interval contains
  the null — as the R package EValue's ``evalues.HR`` reports.
* **Lin–Psaty–Kronmal bias factor** (Lin, Psaty & Kronmal 1998, their eq. for a binary U; the
  "Miettinen" factor R's tipr uses in ``adjust_hr_with_binary``): with U's prevalence ``p1``
  among the treated and ``p0`` among the controls and U's hazard ratio ``gamma`` on the
  outcome, ``CF = (gamma p1 + 1 - p1) / (gamma p0 + 1 - p0)`` and the U-adjusted hazard ratio is
  ``HR_obs / CF``. tipr's ``hr_correction = TRUE`` first maps both ``HR_obs`` and ``gamma``
  through the common-outcome conversion above (the adjusted value is then a risk ratio).
  :func:`tipping_outcome_hr` solves ``CF = HR_obs`` for ``gamma`` (tipr's ``tip_gamma``).

All functions are vectorised (NumPy broadcasting) and return floats or float arrays; invalid
inputs (non-positive ratios, prevalences outside [0, 1]) raise ``ValueError`` naming the
argument.

References
----------
VanderWeele TJ, Ding P (2017). Sensitivity analysis in observational research: introducing
the E-value. Ann Intern Med 167:268-274. VanderWeele TJ (2020). Optimal approximate
conversions of odds ratios and hazard ratios to risk ratios. Biometrics 76:746-752.
Lin DY, Psaty BM, Kronmal RA (1998). Assessing the sensitivity of regression results to
unmeasured confounders in observational studies. Biometrics 54:948-963.
D'Agostino McGowan L (2022). Sensitivity analyses for unmeasured confounders. Curr Epidemiol
Rep 9:361-375 (the R package tipr). Mathur MB, Ding P, Riddell CA, VanderWeele TJ (2018).
Web site and R package for computing E-values. Epidemiology 29:e45-e47 (the R package EValue).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "EValues",
    "hazard_ratio_to_risk_ratio",
    "e_value",
    "e_values_hr",
    "lpk_bias_factor",
    "adjust_hr_with_binary",
    "tipping_outcome_hr",
    "ImpliedHazardRatio",
    "hazard_ratio_from_medians",
]


def _positive(name: str, value) -> np.ndarray:
    array = np.asarray(value, dtype=float)
    if np.any(array[~np.isnan(array)] <= 0):
        raise ValueError(f"{name}: a ratio must be positive; got {value!r}")
    return array


def _prevalence(name: str, value) -> np.ndarray:
    array = np.asarray(value, dtype=float)
    finite = array[~np.isnan(array)]
    if np.any((finite < 0) | (finite > 1)):
        raise ValueError(f"{name}: a prevalence must lie in [0, 1]; got {value!r}")
    return array


def hazard_ratio_to_risk_ratio(hazard_ratio, *, rare: bool):
    """The risk ratio a hazard ratio stands for (VanderWeele 2020).

    Parameters
    ----------
    hazard_ratio : array_like, positive
    rare : bool
        True when the outcome is rare (< 15% by the end of follow-up): the HR is used as is.
        False (PFS and OS in advanced cancer): ``(1 - 0.5**sqrt(HR)) / (1 - 0.5**sqrt(1/HR))``.

    Returns
    -------
    float or ndarray
    """
    hr = _positive("hazard_ratio", hazard_ratio)
    if rare:
        return hr[()] if hr.ndim == 0 else hr
    with np.errstate(invalid="ignore"):
        rr = (1.0 - 0.5 ** np.sqrt(hr)) / (1.0 - 0.5 ** np.sqrt(1.0 / hr))
    rr = np.where(hr == 1.0, 1.0, rr)
    return rr[()] if rr.ndim == 0 else rr


def e_value(risk_ratio):
    """E-value of a risk ratio: ``RR* + sqrt(RR* (RR* - 1))`` with ``RR* = max(RR, 1/RR)``.

    Parameters
    ----------
    risk_ratio : array_like, positive

    Returns
    -------
    float or ndarray, >= 1 (1 at RR = 1)

    References
    ----------
    VanderWeele & Ding (2017), Ann Intern Med 167:268, eq. in the box "E-value".
    """
    rr = _positive("risk_ratio", risk_ratio)
    away = np.where(rr < 1.0, 1.0 / rr, rr)
    value = away + np.sqrt(away * (away - 1.0))
    return value[()] if value.ndim == 0 else value


@dataclass(frozen=True)
class EValues:
    """E-values of a hazard ratio and its confidence interval.

    Attributes
    ----------
    hazard_ratio, ci_lower, ci_upper : the observed HR and its CI limits.
    risk_ratio : the HR converted to a risk ratio (equal to the HR when ``rare``).
    point : E-value of the estimate.
    ci : E-value of the CI limit closer to the null (1 when the CI contains 1; NaN when no CI
        was given).
    ci_limit : which limit that is: ``"upper"`` for HR < 1, ``"lower"`` for HR > 1.
    rare : the outcome assumption used.
    """

    hazard_ratio: float
    ci_lower: float
    ci_upper: float
    risk_ratio: float
    point: float
    ci: float
    ci_limit: str
    rare: bool


def e_values_hr(hazard_ratio: float, ci_lower: float = float("nan"),
                ci_upper: float = float("nan"), *, rare: bool = False) -> EValues:
    """E-values of an observed hazard ratio and of its CI limit closer to the null.

    Parameters
    ----------
    hazard_ratio : float, positive
        The observed HR (treated vs control).
    ci_lower, ci_upper : float
        Its confidence limits (NaN: none given).
    rare : bool, keyword-only
        The rare-outcome assumption (see :func:`hazard_ratio_to_risk_ratio`); False for
        common outcomes such as PFS and OS in advanced cancer.

    Returns
    -------
    EValues

    Examples
    --------
    Liu et al. 2021 report PFS HR 0.5 (0.30-0.85) after matching: common outcome, E-value
    2.61 for the estimate and 1.48 for the upper limit (rare outcome: 3.41 and 1.63).

    References
    ----------
    VanderWeele & Ding (2017); VanderWeele (2020) Biometrics 76:746 (the HR conversion).
    """
    hr = float(_positive("hazard_ratio", hazard_ratio))
    lower, upper = float(ci_lower), float(ci_upper)
    if not (np.isnan(lower) or np.isnan(upper)) and lower > upper:
        raise ValueError(f"ci_lower {lower:g} exceeds ci_upper {upper:g}")
    if (not np.isnan(lower) and hr < lower) or (not np.isnan(upper) and hr > upper):
        raise ValueError(f"hazard_ratio {hr:g} lies outside its CI ({lower:g}, {upper:g})")
    rr = float(hazard_ratio_to_risk_ratio(hr, rare=rare))
    limit_name = "upper" if hr < 1.0 else "lower"
    limit = upper if hr < 1.0 else lower
    if np.isnan(limit):
        ci = float("nan")
    elif (hr < 1.0 and limit >= 1.0) or (hr > 1.0 and limit <= 1.0) or hr == 1.0:
        ci = 1.0
    else:
        ci = float(e_value(hazard_ratio_to_risk_ratio(float(_positive("ci limit", limit)), rare=rare)))
    return EValues(hazard_ratio=hr, ci_lower=lower, ci_upper=upper, risk_ratio=rr,
                   point=float(e_value(rr)), ci=ci, ci_limit=limit_name, rare=rare)


def lpk_bias_factor(outcome_hr, prevalence_treated, prevalence_control):
    """Lin–Psaty–Kronmal bias factor of a binary unmeasured confounder.

    ``CF = (gamma p1 + 1 - p1) / (gamma p0 + 1 - p0)``: the factor by which leaving U out
    multiplies the treatment hazard ratio (Lin et al. derive it for a proportional-hazards
    model; it holds approximately when the outcome is rare and U is independent of the
    measured covariates within arms).

    Parameters
    ----------
    outcome_hr : array_like, positive
        ``gamma``, U's hazard ratio on the outcome (exp of U's log-HR).
    prevalence_treated, prevalence_control : array_like in [0, 1]
        ``p1``, ``p0``: U's prevalence among the treated and the controls.

    Returns
    -------
    float or ndarray (broadcast shape)

    References
    ----------
    Lin, Psaty & Kronmal (1998) Biometrics 54:948-963 (binary U); tipr's
    ``adjust_hr_with_binary``.
    """
    gamma = _positive("outcome_hr", outcome_hr)
    p1 = _prevalence("prevalence_treated", prevalence_treated)
    p0 = _prevalence("prevalence_control", prevalence_control)
    factor = (gamma * p1 + 1.0 - p1) / (gamma * p0 + 1.0 - p0)
    return factor[()] if factor.ndim == 0 else factor


def adjust_hr_with_binary(observed_hr, prevalence_treated, prevalence_control, outcome_hr, *,
                          hr_correction: bool = False):
    """The hazard ratio adjusted for a binary unmeasured confounder, as tipr computes it.

    ``observed_hr / CF`` with ``CF`` from :func:`lpk_bias_factor`. With ``hr_correction``
    (tipr's option for a common outcome, > 15%) both ``observed_hr`` and ``outcome_hr`` are
    first converted by :func:`hazard_ratio_to_risk_ratio` (``rare=False``) and the result is a
    risk ratio.

    Returns
    -------
    float or ndarray
    """
    hr = _positive("observed_hr", observed_hr)
    gamma = _positive("outcome_hr", outcome_hr)
    if hr_correction:
        hr = hazard_ratio_to_risk_ratio(hr, rare=False)
        gamma = hazard_ratio_to_risk_ratio(gamma, rare=False)
    adjusted = np.asarray(hr / lpk_bias_factor(gamma, prevalence_treated, prevalence_control))
    return adjusted[()] if adjusted.ndim == 0 else adjusted


def tipping_outcome_hr(observed_hr, prevalence_treated, prevalence_control):
    """U's outcome hazard ratio ``gamma`` that makes the adjusted HR exactly 1 (tipr's
    ``tip_gamma``): the solution of ``CF(gamma, p1, p0) = HR_obs``,
    ``gamma = ((1 - p1) + HR (p0 - 1)) / (HR p0 - p1)``.

    Returns
    -------
    float or ndarray
        NaN where no positive ``gamma`` tips the estimate (the prevalence difference is too
        small or points the wrong way).
    """
    hr = _positive("observed_hr", observed_hr)
    p1 = _prevalence("prevalence_treated", prevalence_treated)
    p0 = _prevalence("prevalence_control", prevalence_control)
    with np.errstate(divide="ignore", invalid="ignore"):
        gamma = ((1.0 - p1) + hr * (p0 - 1.0)) / (hr * p0 - p1)
    gamma = np.where(np.isfinite(gamma) & (gamma > 0), gamma, np.nan)
    return gamma[()] if gamma.ndim == 0 else gamma


@dataclass(frozen=True)
class ImpliedHazardRatio:
    """A hazard ratio recovered from a paper that prints none (see
    :func:`hazard_ratio_from_medians`)."""

    hazard_ratio: float
    ci_lower: float
    ci_upper: float
    se_log_hr: float


def hazard_ratio_from_medians(median_treated: float, median_control: float, p_value: float,
                              *, level: float = 0.95) -> ImpliedHazardRatio:
    """The HR implied by two medians (exponential survival: ``HR = m_control / m_treated``)
    with the CI implied by the two-sided log-rank p-value (``SE = |log HR| / z_{1-p/2}``).

    Liu et al. 2021 print no hazard ratio; after matching they give PFS medians 9.5 vs 4.7
    months and log-rank P = 0.043, which imply HR 0.49 (95% CI 0.25-0.98).

    References
    ----------
    Parmar MKB, Torri V, Stewart L (1998). Extracting summary statistics to perform
    meta-analyses of the published literature for survival endpoints. Stat Med 17:2815-2834
    (the HR from medians under exponential survival and the variance from a p-value).
    """
    from scipy.special import ndtri

    for name, value in (("median_treated", median_treated), ("median_control", median_control)):
        if not value > 0:
            raise ValueError(f"{name}: must be a positive number of months; got {value!r}")
    if not 0 < p_value < 1:
        raise ValueError(f"p_value: must lie in (0, 1); got {p_value!r}")
    log_hr = float(np.log(median_control / median_treated))
    se = abs(log_hr) / float(ndtri(1 - p_value / 2))
    z = float(ndtri(0.5 + level / 2))
    return ImpliedHazardRatio(float(np.exp(log_hr)), float(np.exp(log_hr - z * se)),
                              float(np.exp(log_hr + z * se)), se)
