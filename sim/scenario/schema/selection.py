"""``[unmeasured]`` (an unmeasured binary confounder) and ``[selection]`` (selection mode's
logistic treatment model)."""

from __future__ import annotations

from typing import Annotated, Any, Iterable, Mapping

from pydantic import ConfigDict, Field

from sim.scenario.schema.common import POPULATION, Facts, FileTable, Issue, IntRange, KeyRules
from sim.scenario.schema.covariates import Coefficient, Probability, coefficient_issues
from sim.scenario.schema.study import MAX_PATIENTS, PATIENTS_WHY


class PrevalenceTable(FileTable):
    """``prevalence = { <arm> = p, <arm> = p }`` or, in selection mode, ``{ population = p }``."""

    model_config = ConfigDict(extra="allow")
    population: Probability | None = Field(
        None, description="the prevalence in the population (selection mode: U drawn before "
                          "treatment)")
    __pydantic_extra__: dict[str, Probability] = Field(init=False)

    @classmethod
    def key_rules(cls, data: Mapping[str, Any], facts: Facts) -> KeyRules:
        if facts.arms is None or facts.mode is None:
            return KeyRules(names=None)
        arms = {arm: "a probability in [0, 1]" for arm in facts.arms}
        if facts.mode == "table":
            return KeyRules(names=arms, misplaced={
                POPULATION: "table mode takes one prevalence per arm"})
        if POPULATION in data:
            return KeyRules(names={}, misplaced={
                arm: "give per-arm prevalences or a population one" for arm in arms})
        return KeyRules(names=arms)

    def by_key(self) -> dict[str, float]:
        """``{population: p}`` or ``{arm: p, arm: p}``."""
        if self.population is not None:
            return {POPULATION: self.population}
        return dict(self.__pydantic_extra__ or {})


class UnmeasuredTable(FileTable):
    """``[unmeasured]``: a binary U acting on all transitions, never in the PS model."""

    prevalence: PrevalenceTable = Field(
        description="{<arm> = p, ...} for both arms, or {population = p} in selection mode")
    log_hr: float = Field(description="the log-HR of U on all transitions")


class SelectionTable(FileTable):
    """``[selection]``: treatment ~ Bernoulli(expit(intercept + sum log_odds x
    [+ unmeasured_log_odds U]))."""

    patients: Annotated[int, IntRange(2, MAX_PATIENTS, why=PATIENTS_WHY)] = Field(
        description="the cohort size, an integer 2 to 1000000")
    intercept: float = Field(description="the treatment model's intercept")
    log_odds: dict[str, Coefficient] = Field(
        default_factory=dict, description="covariate -> log-odds of treatment (per unit; "
                                          "categorical: one per level, the first 0)")
    unmeasured_log_odds: float = Field(
        0.0, description="log-odds of U (needs [unmeasured] with a population prevalence)")

    @classmethod
    def key_rules(cls, data: Mapping[str, Any], facts: Facts) -> KeyRules:
        if facts.population_unmeasured is False:
            return KeyRules(misplaced={"unmeasured_log_odds": (
                "needs [unmeasured] with a population prevalence (U drawn before treatment)")})
        return KeyRules()

    def checks(self, facts: Facts) -> Iterable[Issue]:
        yield from coefficient_issues(self.log_odds, facts, "log-odds", ("log_odds",))
