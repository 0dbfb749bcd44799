"""``[outcome]``: the illness-death model of PFS and OS — the control arm's calibration
targets, the three transition hazards, the treatment effect and the covariate log-HRs."""

from __future__ import annotations

from typing import Annotated, Any, Iterable, Literal, Mapping

from pydantic import Field

from sim.scenario.messages import show
from sim.scenario.schema.common import Facts, FileTable, Issue, KeyRules, Range
from sim.scenario.schema.covariates import Coefficient, Positive, coefficient_issues

PositiveMonths = Annotated[float, Range(0.0, None, low_open=True, unit="months")]
NonNegative = Annotated[float, Range(0.0, None)]
#: Shapes beyond these make the hazard degenerate: nearly every event at one instant (and the
#: baseline hazard's power t^(shape - 1) overflows), or no events after the first days.
WeibullShape = Annotated[float, Range(0.05, 20.0, why=(
    "beyond, the hazard is degenerate (every event at one instant, or overflow)"))]
#: A hazard ratio beyond 1000-fold puts every treated event before the first control event
#: (or after the last): the estimates diverge in every replicate.
HazardRatio = Annotated[float, Range(1e-3, 1e3, why=(
    "beyond 1000-fold one arm's events all come before the other's and every estimate "
    "diverges"))]


class TransitionTable(FileTable):
    """``[outcome.progression]``, ``[outcome.death_before]``, ``[outcome.death_after]``: the
    baseline shape of one transition hazard (its scale is set by calibration)."""

    baseline: Literal["exponential", "weibull", "piecewise"] = Field(
        "exponential", description="exponential, weibull or piecewise")
    shape: WeibullShape | None = Field(
        None, description="the Weibull shape, in [0.05, 20] (weibull only)")
    breaks: list[PositiveMonths] | None = Field(
        None, description="increasing positive months (piecewise only)")
    relative_rates: list[Positive] | None = Field(
        None, description="one positive rate per interval, len(breaks) + 1 (piecewise only)")

    @classmethod
    def key_rules(cls, data: Mapping[str, Any], facts: Facts) -> KeyRules:
        baseline = data.get("baseline", "exponential")
        if baseline not in ("exponential", "weibull", "piecewise"):
            return KeyRules()
        required, misplaced = {}, {}
        if baseline == "weibull":
            required["shape"] = "the Weibull shape, in [0.05, 20]"
        else:
            misplaced["shape"] = f"only used with baseline 'weibull' (baseline is {baseline!r})"
        for key, what in (("breaks", "increasing positive months"),
                          ("relative_rates", "one positive rate per interval "
                                             "(len(breaks) + 1)")):
            if baseline == "piecewise":
                required[key] = what
            else:
                misplaced[key] = (f"only used with baseline 'piecewise' (baseline is "
                                  f"{baseline!r})")
        return KeyRules(required=required, misplaced=misplaced)

    def checks(self, facts: Facts) -> Iterable[Issue]:
        if self.breaks is None or self.relative_rates is None:
            return
        if not self.breaks:
            yield Issue("empty (give at least one break, or use baseline 'exponential')",
                        ("breaks",))
        elif any(b <= a for a, b in zip(self.breaks, self.breaks[1:])):
            yield Issue(f"{show(self.breaks)} is not strictly increasing", ("breaks",))
        elif len(self.relative_rates) != len(self.breaks) + 1:
            yield Issue(f"{len(self.relative_rates)} rates given for {len(self.breaks)} breaks "
                        f"(need len(breaks) + 1 = {len(self.breaks) + 1})", ("relative_rates",))


class TreatmentTable(FileTable):
    """``[outcome.treatment]``: how the experimental arm differs."""

    mode: Literal["target_medians", "hazard_ratio"] = Field(
        description="one of target_medians, hazard_ratio")
    pfs_median: PositiveMonths | None = Field(
        None, description="the treated arm's median PFS in months, > 0 (target_medians)")
    os_median: PositiveMonths | None = Field(
        None, description="the treated arm's median OS in months, > 0 (target_medians)")
    hazard_ratio: HazardRatio | None = Field(
        None, description="the conditional hazard ratio, in [0.001, 1000] (1 = null; "
                          "hazard_ratio mode)")
    delay_months: NonNegative = Field(
        0.0, description="months before the effect on the PFS transitions starts, >= 0")
    progression_hazard_ratio: HazardRatio | None = Field(
        None, description="the HR on progression h01, in [0.001, 1000] (hazard_ratio mode; "
                          "default hazard_ratio)")
    death_before_hazard_ratio: HazardRatio | None = Field(
        None, description="the HR on death before progression h02, in [0.001, 1000] (default: "
                          "hazard_ratio, or in target_medians mode the calibrated PFS HR)")
    death_after_hazard_ratio: HazardRatio | None = Field(
        None, description="the HR on death after progression h12, in [0.001, 1000] "
                          "(hazard_ratio mode; default hazard_ratio)")

    @classmethod
    def key_rules(cls, data: Mapping[str, Any], facts: Facts) -> KeyRules:
        mode = data.get("mode")
        if mode == "target_medians":
            calibrated = ("only used with mode 'hazard_ratio' (in target_medians mode it is "
                          "calibrated to the medians)")
            return KeyRules(
                required={"pfs_median": "the treated arm's median PFS in months, > 0",
                          "os_median": "the treated arm's median OS in months, > 0"},
                misplaced={"hazard_ratio": "only used with mode 'hazard_ratio'",
                           "progression_hazard_ratio": calibrated,
                           "death_after_hazard_ratio": calibrated})
        if mode == "hazard_ratio":
            return KeyRules(
                required={"hazard_ratio": "the conditional hazard ratio, in [0.001, 1000] "
                                          "(1 = null)"},
                misplaced={key: "only used with mode 'target_medians'"
                           for key in ("pfs_median", "os_median")})
        return KeyRules()

    def checks(self, facts: Facts) -> Iterable[Issue]:
        if self.pfs_median is not None and self.os_median is not None and (
                self.os_median <= self.pfs_median):
            yield Issue(f"{self.os_median:g} must exceed pfs_median {self.pfs_median:g} "
                        f"(PFS <= OS)", ("os_median",), self.os_median)


class AssessmentTable(FileTable):
    """``[outcome.assessment]``: the scan schedule on which progression is seen."""

    interval_months: Annotated[float, Range(0.0, None, low_open=True, unit="months")] = Field(
        description="months between scans, > 0 (the first scan at one interval; 8 weeks = "
                    "1.84 months)")


class OutcomeTable(FileTable):
    """``[outcome]``: illness-death model (Meller, Beyersmann & Rufibach 2019)."""

    control_pfs_median: PositiveMonths = Field(
        description="the control arm's median PFS in months, > 0")
    control_os_median: PositiveMonths = Field(
        description="the control arm's median OS in months, > 0")
    death_before_progression: Annotated[float, Range(0.0, 1.0, high_open=True)] = Field(
        description="the share of control PFS events that are deaths, in [0, 1)")
    progression: TransitionTable = Field(
        default_factory=TransitionTable, description="the progression hazard h01")
    death_before: TransitionTable = Field(
        default_factory=TransitionTable, description="the hazard h02 of death before progression")
    death_after: TransitionTable = Field(
        default_factory=TransitionTable, description="the hazard h12 of death after progression")
    treatment: TreatmentTable = Field(description="an [outcome.treatment] table")
    covariate_log_hr: dict[str, Coefficient] = Field(
        default_factory=dict, description="covariate -> log-HR on all three transitions (per "
                                          "unit; categorical: one per level, the first 0)")
    assessment: AssessmentTable | None = Field(
        None, description="the scan schedule (absent: progression seen when it happens)")

    def checks(self, facts: Facts) -> Iterable[Issue]:
        if self.control_os_median <= self.control_pfs_median:
            yield Issue(f"{self.control_os_median:g} must exceed control_pfs_median "
                        f"{self.control_pfs_median:g} (PFS <= OS)", ("control_os_median",),
                        self.control_os_median)
        yield from coefficient_issues(self.covariate_log_hr, facts, "log-HR",
                                      ("covariate_log_hr",))
