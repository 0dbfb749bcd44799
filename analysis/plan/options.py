"""Analysis plans: the options a study's analysis fixes, and the two presets.

``paper`` is what the study did in SPSS 25 (Liu et al. 2021): logistic PS on the probability
scale iterated as SPSS LOGISTIC REGRESSION does (its default CRITERIA), FUZZY-style matching of cases in file order to a random control within an absolute PS
tolerance, Kaplan–Meier with SPSS's symmetric median CI, log-rank, Cox with Breslow ties and a
model-based SE, chi-square/Fisher by the paper's rule.
``recommended`` is Austin's: greedy nearest-neighbour matching on the logit of the PS within
0.2 SD of the logit (Austin 2011, Pharm Stat 10:150), the PS fitted as R's ``glm`` (so also a
separated model gives MatchIt's scores, caliper and pairs), MatchIt's algorithm, Cox with Efron ties
and a robust SE clustered on matched pairs (Austin 2013, Stat Med 32:2837; Lin & Wei 1989),
Brookmeyer–Crowley median CIs (log band, as R survfit).
Both are applied to the full and the matched cohort.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

DISTANCES = ("ps", "logit")
MATCHERS = ("matchit_nn", "spss_fuzzy_v1", "spss_fuzzy_v2")
CALIPER_SCALES = ("sd", "absolute")
ORDERS = ("largest", "smallest", "random", "data")
TIES = ("breslow", "efron")
COX_SE = ("model", "robust")
MEDIAN_RULES = ("first", "midpoint")
MEDIAN_CI = ("spss_symmetric", "brookmeyer_crowley_log", "brookmeyer_crowley_loglog")
SMD_DENOMINATORS = ("pooled", "treated")
SEPARATION = ("proceed", "fail")
PS_ALGORITHMS = ("r_glm", "spss_logistic")


@dataclass(frozen=True)
class Plan:
    """One analysis plan.

    Attributes
    ----------
    name : preset name it came from.
    ps_covariates : covariate names in the PS model (empty: every covariate).
    rank_test_covariates : continuous covariates compared by Mann–Whitney (the paper's
        median (IQR) rows); other continuous covariates by Student's t.
    distance : ``ps`` (probability) or ``logit`` (linear predictor) for matching.
    matcher : ``matchit_nn`` | ``spss_fuzzy_v1`` | ``spss_fuzzy_v2``.
    caliper : width, in SDs of the distance (``caliper_scale="sd"``) or in distance units
        (``"absolute"``); ``None`` for no caliper.
    ratio, replace, order : 1:k matching, with replacement, treated processing order
        (``None``: the matcher's default).
    ties : Cox ties, ``breslow`` (SPSS) or ``efron`` (R).
    cox_se : ``model`` or ``robust`` (sandwich; clustered on pairs in the matched cohort).
    stratify_pairs : matched cohort: log-rank stratified by pair and pair-stratified Cox.
    median_rule : ``first`` time with S(t) <= 0.5 (SPSS, lifelines) or R's ``midpoint`` rule
        where S(t) equals 0.5 over an interval.
    median_ci : method of the KM median CI.
    test_rule : categorical test selection rule (see :mod:`analysis.comparisons.categorical`).
    smd_denominator : ``pooled`` or ``treated`` SD in the SMD.
    level : confidence level of every interval.
    separation : ``proceed`` (use the fitted scores of a separated PS model for matching, as
        R glm and SPSS do; the replicate's ``ps_status`` records it) or ``fail`` (matched
        analyses of such replicates are NaN with status ``separation``).
    ps_algorithm : whose iterations the logistic PS fit follows: ``r_glm`` (R ``glm.fit``:
        epsilon 1e-8 on the relative deviance change, 25 iterations) or ``spss_logistic``
        (SPSS LOGISTIC REGRESSION: BCON 0.001, ITERATE 20); see
        :mod:`analysis.propensity.model`. It decides the scores of a separated model.
    """

    name: str
    ps_covariates: tuple[str, ...] = ()
    rank_test_covariates: tuple[str, ...] = ()
    distance: str = "ps"
    matcher: str = "spss_fuzzy_v1"
    caliper: float | None = 0.05
    caliper_scale: str = "absolute"
    ratio: int = 1
    replace: bool = False
    order: str | None = None
    ties: str = "breslow"
    cox_se: str = "model"
    stratify_pairs: bool = False
    median_rule: str = "first"
    median_ci: str = "spss_symmetric"
    test_rule: str = "paper"
    smd_denominator: str = "pooled"
    level: float = 0.95
    separation: str = "proceed"
    ps_algorithm: str = "spss_logistic"


PRESETS: dict[str, Plan] = {
    "paper": Plan(name="paper"),
    "recommended": Plan(
        name="recommended",
        ps_algorithm="r_glm",
        distance="logit",
        matcher="matchit_nn",
        caliper=0.2,
        caliper_scale="sd",
        order="largest",
        ties="efron",
        cox_se="robust",
        median_rule="midpoint",
        median_ci="brookmeyer_crowley_log",
        test_rule="fisher_if_expected_lt5",
    ),
}

_CHOICES = {
    "ps_algorithm": PS_ALGORITHMS,
    "distance": DISTANCES,
    "matcher": MATCHERS,
    "caliper_scale": CALIPER_SCALES,
    "order": ORDERS,
    "ties": TIES,
    "cox_se": COX_SE,
    "median_rule": MEDIAN_RULES,
    "median_ci": MEDIAN_CI,
    "smd_denominator": SMD_DENOMINATORS,
    "separation": SEPARATION,
}
#: Options a scenario or the CLI may override (everything but the name and covariate lists).
OVERRIDABLE = tuple(f.name for f in fields(Plan) if f.name not in ("name", "ps_covariates", "rank_test_covariates"))


class PlanOptionError(ValueError):
    """An override names an unknown option or gives a value it cannot take; ``field`` names it."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


def make_plan(
    preset: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    ps_covariates: tuple[str, ...] = (),
    rank_test_covariates: tuple[str, ...] = (),
) -> Plan:
    """The preset ``preset`` with ``overrides`` applied and checked.

    Raises
    ------
    PlanOptionError
        Unknown preset or option, or a value outside what the option allows (the message
        lists the choices).
    """
    if preset not in PRESETS:
        raise PlanOptionError("plan", f"{preset!r} is not one of {', '.join(PRESETS)}")
    overrides = dict(overrides or {})
    for key, value in overrides.items():
        _check_option(key, value)
    if "caliper" in overrides and overrides["caliper"] is not None:
        overrides["caliper"] = float(overrides["caliper"])
    return replace(PRESETS[preset], ps_covariates=tuple(ps_covariates),
                   rank_test_covariates=tuple(rank_test_covariates), **overrides)


def _check_option(key: str, value: Any) -> None:
    if key not in OVERRIDABLE:
        raise PlanOptionError(key, f"unknown analysis option; allowed: {', '.join(OVERRIDABLE)}")
    if key in _CHOICES:
        if not (key == "order" and value is None) and value not in _CHOICES[key]:
            raise PlanOptionError(key, f"{value!r} is not one of {', '.join(_CHOICES[key])}")
    elif key == "caliper":
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise PlanOptionError(key, f"{value!r} must be a positive number (or absent for no caliper)")
    elif key == "ratio":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PlanOptionError(key, f"{value!r} must be a whole number >= 1")
    elif key in ("replace", "stratify_pairs"):
        if not isinstance(value, bool):
            raise PlanOptionError(key, f"{value!r} must be true or false")
    elif key == "level":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
            raise PlanOptionError(key, f"{value!r} must be between 0 and 1")
    elif key == "test_rule":
        if not isinstance(value, str):
            raise PlanOptionError(key, f"{value!r} must be a rule name")
