"""``[analysis]`` (the default plan, the PS covariates, option overrides per preset, the named
methods of ``[analysis.methods.NAME]``) and ``[simulation]`` (replicates, seed, block size,
calibration and truth sample sizes).

The values an analysis option takes are decided by :mod:`analysis.plan.options` (the plan's
own checks, also used by the CLI): each option is checked with ``check_option`` first and the
options of a table together with ``check_combination``, so the messages are the plan's; the
types below mirror it for the JSON Schema.
"""

from __future__ import annotations

from typing import Annotated, Any, Iterable, Literal, Mapping

from pydantic import Field, field_validator

from analysis.comparisons.categorical import CATEGORICAL_RULES
from analysis.plan.options import (
    CALIPER_SCALES,
    COX_SE,
    DISTANCES,
    ESTIMANDS,
    ESTIMATORS,
    MATCHERS,
    MEDIAN_CI,
    MEDIAN_RULES,
    OVERRIDABLE,
    ORDERS,
    PRESETS,
    PS_ALGORITHMS,
    PS_ADJUSTMENTS,
    SEPARATION,
    SMD_DENOMINATORS,
    SPLINE_KNOTS,
    TIES,
    PlanOptionError,
    check_combination,
    check_option,
    make_plan,
)
from sim.scenario.messages import not_one_of
from sim.scenario.schema.common import (
    NAME_PATTERN,
    Facts,
    FileTable,
    IntRange,
    Issue,
    KeyRules,
    invalid,
)
from sim.scenario.schema.correlation import covariate_reference_issues

#: Plan options whose value may be None, written as the string "none" (TOML has no null).
NULLABLE_OPTIONS = ("caliper", "order", "estimand", "weight_trim")
NONE = Literal["none"]


class PlanOptions(FileTable):
    """Option overrides of an analysis preset: fields of :class:`analysis.plan.options.Plan`
    (its docstring explains each)."""

    distance: Literal[DISTANCES] | None = Field(None, description="ps or logit")
    matcher: Literal[MATCHERS] | None = Field(None, description="the matching algorithm")
    caliper: Annotated[float, Field(gt=0)] | NONE | None = Field(
        None, description="caliper width (> 0), or 'none' for no caliper")
    caliper_scale: Literal[CALIPER_SCALES] | None = Field(
        None, description="sd: in SDs of the distance; absolute: in distance units")
    ratio: Annotated[int, Field(ge=1)] | None = Field(None, description="1:k matching, k >= 1")
    replace: bool | None = Field(None, description="match with replacement")
    order: Literal[ORDERS] | NONE | None = Field(
        None, description="treated processing order, or 'none' for the matcher's default")
    ties: Literal[TIES] | None = Field(None, description="Cox ties: breslow or efron")
    cox_se: Literal[COX_SE] | None = Field(
        None, description="Cox SE: model, robust, bootstrap or austin_cafri (matching)")
    stratify_pairs: bool | None = Field(
        None, description="matched cohort: stratify log-rank and Cox by pair")
    median_rule: Literal[MEDIAN_RULES] | None = Field(None, description="KM median rule")
    median_ci: Literal[MEDIAN_CI] | None = Field(None, description="KM median CI method")
    test_rule: Literal[tuple(CATEGORICAL_RULES)] | None = Field(
        None, description="categorical test selection rule")
    smd_denominator: Literal[SMD_DENOMINATORS] | None = Field(
        None, description="pooled or treated SD in the SMD")
    level: Annotated[float, Field(gt=0, lt=1)] | None = Field(
        None, description="confidence level, in (0, 1)")
    separation: Literal[SEPARATION] | None = Field(
        None, description="what a separated PS model does: proceed or fail")
    ps_algorithm: Literal[PS_ALGORITHMS] | None = Field(
        None, description="whose iterations the PS fit follows: r_glm (R glm) or spss_logistic "
                          "(SPSS LOGISTIC REGRESSION)")
    estimator: Literal[ESTIMATORS] | None = Field(
        None, description="how the second cohort slot is analysed (matching, weighting, adjustment)")
    estimand: Literal[ESTIMANDS] | NONE | None = Field(
        None, description="att, ate, ato or conditional, or 'none' for the estimator's own")
    stabilize: bool | None = Field(None, description="stabilised IPTW-ATE weights")
    weight_trim: Annotated[float, Field(ge=0.5, lt=1)] | NONE | None = Field(
        None, description="truncate IPTW/overlap weights above this quantile (0.5-1), or 'none'")
    ps_adjustment: Literal[PS_ADJUSTMENTS] | None = Field(
        None, description="ps_adjusted: linear in the logit PS or a spline of it")
    spline_knots: Literal[SPLINE_KNOTS] | None = Field(None, description="knots of the PS spline, 3-7")
    ps_strata: Annotated[int, Field(ge=2, le=20)] | None = Field(
        None, description="ps_stratified: number of PS quantile strata")
    bootstrap_draws: Annotated[int, Field(ge=10)] | None = Field(
        None, description="resamples of the bootstrap SE, >= 10")

    @field_validator(*OVERRIDABLE, mode="before")
    @classmethod
    def _check_with_the_plan(cls, value: Any, info: Any) -> Any:
        option = None if info.field_name in NULLABLE_OPTIONS and value == "none" else value
        try:
            check_option(info.field_name, option)
        except PlanOptionError as err:
            raise invalid(str(err)) from None
        return value

    def checks(self, facts: Facts) -> Iterable[Issue]:
        try:
            check_combination(self.overrides())
        except PlanOptionError as err:
            yield Issue(str(err), (err.field,))

    def overrides(self) -> dict[str, object]:
        """The options the file sets, as :func:`make_plan` takes them ("none" read as None)."""
        return {name: None if name in NULLABLE_OPTIONS and getattr(self, name) == "none"
                else getattr(self, name) for name in self.given_keys()}


def ps_covariate_issues(names: list[str], facts: Facts, at: tuple[str, ...]) -> Iterable[Issue]:
    """Problems of a list of PS covariates at ``at``: unknown names, empty, repeated."""
    yield from covariate_reference_issues(names, facts, at)
    if not names:
        yield Issue("empty (the PS model needs at least one covariate)", at)
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        yield Issue(f"{', '.join(repeated)} listed more than once", at)


class _MethodBase(FileTable):
    """The keys of a method table before the plan options (so they are listed first)."""

    preset: Literal[tuple(PRESETS)] = Field(
        description="the preset it starts from (paper or recommended), with the scenario's "
                    "[analysis.<preset>] overrides")
    ps_covariates: list[str] | None = Field(
        None, description="covariate names of this method's PS model (default: the "
                          "scenario's analysis.ps_covariates)")


class MethodTable(PlanOptions, _MethodBase):
    """``[analysis.methods.NAME]``: a named method, the preset ``preset`` as the scenario
    configures it (``[analysis.<preset>]`` applied) with these option overrides and, if given,
    its own PS covariates."""

    def checks(self, facts: Facts) -> Iterable[Issue]:
        # the combination of options is checked with the preset's table, by AnalysisTable
        if self.ps_covariates is not None:
            yield from ps_covariate_issues(self.ps_covariates, facts, ("ps_covariates",))

    def overrides(self) -> dict[str, object]:
        return {name: value for name, value in super().overrides().items()
                if name not in ("preset", "ps_covariates")}


#: A method may not take a preset's name: the preset's table changes the preset itself.
_METHOD_NAMES = {"propertyNames": {"pattern": NAME_PATTERN, "not": {"enum": list(PRESETS)}}}
_PRESET_TABLES = " or ".join(f"[analysis.{preset}]" for preset in PRESETS)


class AnalysisTable(FileTable):
    """``[analysis]``: the default plan, the PS model's covariates, overrides per preset."""

    plan: str = Field(
        "paper", description="the method psmsim analyse uses by default and reports put "
                             "first: paper, recommended or a method of [analysis.methods]")
    ps_covariates: list[str] | None = Field(
        None, description="covariate names of the PS model (default: all, file order)")
    paper: PlanOptions | None = Field(
        None, description="option overrides of the paper preset")
    recommended: PlanOptions | None = Field(
        None, description="option overrides of the recommended preset")
    methods: dict[str, MethodTable] | None = Field(
        None, description="named analysis methods, [analysis.methods.<name>] tables: each a "
                          "preset plus option overrides, run beside paper and recommended on "
                          "the same cohorts", json_schema_extra=_METHOD_NAMES)

    @classmethod
    def key_rules(cls, data: Mapping[str, Any], facts: Facts) -> KeyRules:
        refused = {key: f"analysis options go in a table per preset: move it under "
                        f"{_PRESET_TABLES}" for key in data if key in OVERRIDABLE}
        refused["overrides"] = (f"the flat overrides table is no longer read: move its options "
                                f"under {_PRESET_TABLES} (the preset they change)")
        return KeyRules(refused=refused)

    def checks(self, facts: Facts) -> Iterable[Issue]:
        if self.ps_covariates is not None:
            yield from ps_covariate_issues(self.ps_covariates, facts, ("ps_covariates",))
        methods = self.methods or {}
        choices = [*PRESETS, *(name for name in methods if name not in PRESETS)]
        if self.plan not in choices:
            yield Issue(not_one_of(self.plan, choices), ("plan",), self.plan)
        for name, method in methods.items():
            yield from self._method_issues(name, method)

    def _method_issues(self, name: str, method: MethodTable) -> Iterable[Issue]:
        """The method's options with its preset's: checked together, as the run applies them
        (a problem of the preset's own options is reported at its table only)."""
        table = getattr(self, method.preset)
        preset_overrides = table.overrides() if table is not None else {}
        try:
            make_plan(method.preset, preset_overrides)
        except PlanOptionError:
            return
        try:
            make_plan(method.preset, {**preset_overrides, **method.overrides()})
        except PlanOptionError as err:
            yield Issue(f"{err} (with preset {method.preset!r} as this scenario configures it)",
                        ("methods", name, err.field))


#: The largest seed: it must fit numpy's SeedSequence and the run's netCDF attribute, a signed
#: 64-bit integer.
MAX_SEED = 2**63 - 1
#: The most replicates of one run (per grid point of a sweep) and per block.
MAX_REPLICATES, MAX_BLOCK_SIZE = 1_000_000, 10_000


class SimulationTable(FileTable):
    """``[simulation]``: run settings, bounded to what can finish (the paper's scenario runs
    about 6,000 replicates per second on 2 cores; calibration takes about 20 microseconds and
    the true estimands about 20 microseconds per patient)."""

    replicates: Annotated[int, IntRange(1, MAX_REPLICATES, why=(
        "a million replicates of the paper's scenario take about three minutes and 3.5 GB on 2 cores; "
        "run several seeds for more"))] = Field(1000, description="replicates, 1 to 1000000")
    seed: Annotated[int, IntRange(0, MAX_SEED, why=(
        "the seed must fit a signed 64-bit integer (numpy's SeedSequence and the netCDF "
        "attribute)"))] = Field(
        1, description="root seed of the run's SeedSequence, 0 to 2**63 - 1")
    block_size: Annotated[int, IntRange(1, MAX_BLOCK_SIZE, why=(
        "a block is held in memory whole"))] | None = Field(
        None, description=("replicates per block, 1 to 10000 (part of the run's identity); "
                           "default 100, fewer for cohorts of more than 10000 patients (at most "
                           "1000000 patient values per block)"))
    calibration_patients: Annotated[int, IntRange(1000, 10_000_000, why=(
        "10 million patients already take minutes"))] = Field(
        200_000, description="sample size of the calibration, 1000 to 10000000")
    truth_patients: Annotated[int, IntRange(1000, 100_000_000, why=(
        "100 million patients already take half an hour"))] = Field(
        1_000_000, description="sample size for the true estimands, 1000 to 100000000")
