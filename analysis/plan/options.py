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

Beyond matching (issue 14), ``estimator`` selects how the second cohort slot ("matched") is
analysed: ``matching`` (the matched sample), ``iptw`` and ``overlap`` (the whole cohort
weighted by propensity-score weights), ``cox_adjusted`` (Cox model of the treatment and the
PS covariates), ``ps_adjusted`` (Cox model of the treatment and the logit PS, linear or as a
restricted cubic spline) and ``ps_stratified`` (Cox model stratified on PS quantile strata).
Each estimator has an estimand (:data:`ESTIMANDS_OF`): the ATT for matching, the ATE or ATT
for IPTW, the ATO for overlap weights and a conditional hazard ratio for the adjusted and
stratified models; ``cox_se`` adds the pairs/patients bootstrap and, for matching, the Austin &
Cafri (2020) variance. See :mod:`analysis.plan.adjusted` and ``docs/results_schema.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

DISTANCES = ("ps", "logit")
MATCHERS = ("matchit_nn", "spss_fuzzy_v1", "spss_fuzzy_v2", "optimal")
CALIPER_SCALES = ("sd", "absolute")
ORDERS = ("largest", "smallest", "random", "data")
TIES = ("breslow", "efron")
COX_SE = ("model", "robust", "bootstrap", "austin_cafri")
ESTIMATORS = ("matching", "iptw", "overlap", "cox_adjusted", "ps_adjusted", "ps_stratified")
#: The estimands each estimator can target; the first is its default.
ESTIMANDS_OF = {
    "matching": ("att",),
    "iptw": ("ate", "att"),
    "overlap": ("ato",),
    "cox_adjusted": ("conditional",),
    "ps_adjusted": ("conditional",),
    "ps_stratified": ("conditional",),
}
ESTIMANDS = ("att", "ate", "ato", "conditional")
PS_ADJUSTMENTS = ("linear", "spline")
SPLINE_KNOTS = (3, 4, 5, 6, 7)
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
    estimator : how the second cohort slot is analysed (module docstring; default
        ``matching``).
    estimand : ``att`` | ``ate`` | ``ato`` | ``conditional``, or ``None`` for the estimator's
        own (:data:`ESTIMANDS_OF`); see :func:`plan_estimand`.
    stabilize : IPTW-ATE weights multiplied by the arm shares (WeightIt ``stabilize``).
    weight_trim : truncate IPTW/overlap weights above this quantile (0.5-1; WeightIt
        ``trim(at=)``); ``None``: no truncation.
    ps_adjustment : ``ps_adjusted``: ``linear`` in the logit PS or a restricted cubic
        ``spline`` of it with ``spline_knots`` knots (Harrell's quantiles).
    ps_strata : number of PS quantile strata of ``ps_stratified`` (5: quintiles).
    bootstrap_draws : resamples of ``cox_se = "bootstrap"`` (pairs after matching, patients
        otherwise).
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
    estimator: str = "matching"
    estimand: str | None = None
    stabilize: bool = False
    weight_trim: float | None = None
    ps_adjustment: str = "linear"
    spline_knots: int = 4
    ps_strata: int = 5
    bootstrap_draws: int = 200


def plan_estimand(plan: Plan) -> str:
    """The estimand the plan's adjusted analysis targets: ``plan.estimand`` or its estimator's
    default (:data:`ESTIMANDS_OF`)."""
    return plan.estimand or ESTIMANDS_OF[plan.estimator][0]


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
    "estimator": ESTIMATORS,
    "estimand": ESTIMANDS,
    "ps_adjustment": PS_ADJUSTMENTS,
    "spline_knots": SPLINE_KNOTS,
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
    for key in ("caliper", "weight_trim"):
        if key in overrides and overrides[key] is not None:
            overrides[key] = float(overrides[key])
    plan = replace(PRESETS[preset], ps_covariates=tuple(ps_covariates),
                   rank_test_covariates=tuple(rank_test_covariates), **overrides)
    _check_combination(plan)
    return plan


def _check_combination(plan: Plan) -> None:
    """Options that only make sense together (each error names the option to change)."""
    estimator = plan.estimator
    if plan.estimand is not None and plan.estimand not in ESTIMANDS_OF[estimator]:
        raise PlanOptionError("estimand", f"{plan.estimand!r} is not an estimand of estimator {estimator!r}; "
                                          f"choose {' or '.join(ESTIMANDS_OF[estimator])}")
    if plan.stabilize and not (estimator == "iptw" and plan_estimand(plan) == "ate"):
        raise PlanOptionError("stabilize", "stabilisation is defined for estimator 'iptw' with estimand 'ate' only")
    if plan.weight_trim is not None and estimator not in ("iptw", "overlap"):
        raise PlanOptionError("weight_trim", "weight truncation applies to estimators 'iptw' and 'overlap' only")
    if plan.cox_se == "austin_cafri" and estimator != "matching":
        raise PlanOptionError("cox_se", "'austin_cafri' is a variance for matching (with replacement) only")
    if plan.cox_se == "bootstrap" and plan.stratify_pairs:
        raise PlanOptionError("cox_se", "the bootstrap SE is not defined for the pair-stratified Cox model; "
                                        "set stratify_pairs = false")
    if plan.matcher == "optimal" and (plan.ratio != 1 or plan.replace):
        raise PlanOptionError("matcher", "'optimal' matching is 1:1 without replacement: set ratio = 1, "
                                         "replace = false")


def check_option(key: str, value: Any) -> None:
    """Check one option's value on its own (:func:`make_plan` also checks the combination).

    Raises
    ------
    PlanOptionError
        Unknown option, or a value the option cannot take.
    """
    _check_option(key, value)


def check_combination(overrides: Mapping[str, Any]) -> None:
    """Check that options (each valid on its own) fit together with the presets' other options
    (the presets agree on every option a combination rule reads).

    Raises
    ------
    PlanOptionError
        Naming the option to change.
    """
    options = dict(overrides)
    for key in ("caliper", "weight_trim"):
        if options.get(key) is not None:
            options[key] = float(options[key])
    _check_combination(replace(PRESETS["paper"], **options))


def _check_option(key: str, value: Any) -> None:
    if key not in OVERRIDABLE:
        raise PlanOptionError(key, f"unknown analysis option; allowed: {', '.join(OVERRIDABLE)}")
    if key in _CHOICES:
        if not (key in ("order", "estimand") and value is None) and (
                isinstance(value, bool) or value not in _CHOICES[key]):
            raise PlanOptionError(key, f"{value!r} is not one of {', '.join(map(str, _CHOICES[key]))}")
    elif key == "caliper":
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise PlanOptionError(key, f"{value!r} must be a positive number (or absent for no caliper)")
    elif key == "ratio":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PlanOptionError(key, f"{value!r} must be a whole number >= 1")
    elif key in ("replace", "stratify_pairs", "stabilize"):
        if not isinstance(value, bool):
            raise PlanOptionError(key, f"{value!r} must be true or false")
    elif key == "weight_trim":
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not 0.5 <= value < 1):
            raise PlanOptionError(key, f"{value!r} must be a quantile in [0.5, 1) (or absent for no truncation)")
    elif key == "ps_strata":
        if isinstance(value, bool) or not isinstance(value, int) or not 2 <= value <= 20:
            raise PlanOptionError(key, f"{value!r} must be a whole number from 2 to 20")
    elif key == "bootstrap_draws":
        if isinstance(value, bool) or not isinstance(value, int) or value < 10:
            raise PlanOptionError(key, f"{value!r} must be a whole number >= 10")
    elif key == "level":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
            raise PlanOptionError(key, f"{value!r} must be between 0 and 1")
    elif key == "test_rule":
        if not isinstance(value, str):
            raise PlanOptionError(key, f"{value!r} must be a rule name")
