"""``[censoring]``, ``[response]``, ``[adverse_events.<name>]`` and
``[adverse_event_dependence]``: follow-up, best overall response per arm, adverse-event rates
per arm and how AEs cluster in the same patients."""

from __future__ import annotations

from typing import Annotated, Any, Iterable, Literal, Mapping

from pydantic import ConfigDict, Field, create_model

from sim.scenario.model import RESPONSE_CATEGORIES
from sim.scenario.schema.common import (
    Alternatives,
    Facts,
    FileTable,
    Issue,
    KeyRules,
    Range,
    groups_schema,
)
from sim.scenario.schema.covariates import (
    Count,
    Probability,
    count_problem,
    probability_sum_problem,
)
from sim.scenario.schema.outcome import PositiveMonths


class CensoringTable(FileTable):
    """``[censoring]``: uniform staggered entry, administrative cut-off, exponential dropout."""

    accrual_months: Annotated[float, Range(0.0, None, unit="months")] = Field(
        description="the accrual window in months, >= 0")
    cutoff_month: PositiveMonths = Field(
        description="the data cut-off in months after the first entry, > 0")
    dropout_rate: Annotated[float, Range(0.0, 10.0, unit="per month", why_high=(
        "above 10 per month half the patients are lost within 2 days and no events remain"))] \
        = Field(0.0, description="exponential dropout rate per month, in [0, 10]")

    def checks(self, facts: Facts) -> Iterable[Issue]:
        if self.cutoff_month <= self.accrual_months:
            yield Issue(f"{self.cutoff_month:g} must exceed accrual_months "
                        f"{self.accrual_months:g} (every patient needs follow-up)",
                        ("cutoff_month",), self.cutoff_month)


def _categories(name: str, value_type: Any, what: str) -> type[FileTable]:
    """A table with one ``value_type`` per response category (CR, PR, SD, PD)."""
    fields = {category: (value_type, Field(description=f"{what} of {category}"))
              for category in RESPONSE_CATEGORIES}
    return create_model(name, __base__=FileTable, __doc__=f"{what.capitalize()} of each "
                        f"best overall response", **fields)


ResponseCounts = _categories("ResponseCounts", Count, "the count")
ResponseProbabilities = _categories("ResponseProbabilities", Probability, "the probability")


_RESPONSE_FORMS = (("counts",), ("probabilities",))


class ArmResponse(Alternatives):
    """``[response.<arm>]``: ``counts = { CR, PR, SD, PD }`` (table mode, summing to the arm
    size) or ``probabilities = { CR, PR, SD, PD }`` (summing to 1)."""

    model_config = ConfigDict(json_schema_extra=groups_schema(_RESPONSE_FORMS))
    groups = _RESPONSE_FORMS
    count_keys = ("counts",)
    counts: ResponseCounts | None = Field(None, description="patients per category")
    probabilities: ResponseProbabilities | None = Field(
        None, description="probability per category, summing to 1")

    def checks(self, facts: Facts) -> Iterable[Issue]:
        issues = self.form_issues(facts)
        if not issues and self.probabilities is not None:
            values = [getattr(self.probabilities, c) for c in RESPONSE_CATEGORIES]
            problem = probability_sum_problem(values)
            if problem:
                issues.append(Issue(problem, ("probabilities",)))
        return issues


class ResponseTable(FileTable):
    """``[response]``: ``pfs_link`` and one ``[response.<arm>]`` table per arm."""

    model_config = ConfigDict(extra="allow")
    model: Literal["covariates", "pfs"] = Field(
        "covariates", description="covariates (response apart from PFS, linked to the "
                                  "covariates' prognosis) or pfs (PD = a PFS event by the first "
                                  "scan; needs [outcome.assessment])")
    pfs_link: float = Field(0.0, description="slope of the cumulative-logit link of response "
                                             "to prognosis (model covariates; 0 = independent) "
                                             "or to log PFS time among non-PD (model pfs)")
    __pydantic_extra__: dict[str, ArmResponse] = Field(init=False)

    @classmethod
    def key_rules(cls, data: Mapping[str, Any], facts: Facts) -> KeyRules:
        if facts.arms is None:
            return KeyRules(names=None)
        return KeyRules(names={arm: f"the response counts or probabilities of arm {arm!r}"
                               for arm in facts.arms})

    def by_arm(self) -> dict[str, ArmResponse]:
        return dict(self.__pydantic_extra__ or {})

    def checks(self, facts: Facts) -> Iterable[Issue]:
        for arm, response in self.by_arm().items():
            size = _size(arm, facts)
            if response.counts is None or size is None:
                continue
            counts = [getattr(response.counts, c) for c in RESPONSE_CATEGORIES]
            bad = False
            for category, count in zip(RESPONSE_CATEGORIES, counts):
                problem = count_problem(count, size)
                if problem:
                    bad = True
                    yield Issue(problem, (arm, "counts", category), count)
            if not bad and sum(counts) != size:
                yield Issue(f"{' + '.join(str(c) for c in counts)} = {sum(counts)}, not the "
                            f"arm size {size}", (arm, "counts"))


def _size(arm: str, facts: Facts) -> int | None:
    facts_of_arm = (facts.arms or {}).get(arm)
    return facts_of_arm.size if facts_of_arm is not None and facts.mode == "table" else None


_AE_FORMS = (("any", "grade34"), ("any_proportion", "grade34_proportion"))


class ArmAdverseEvent(Alternatives):
    """``{ any = 17, grade34 = 1 }`` (counts, table mode) or ``{ any_proportion = 0.49,
    grade34_proportion = 0.03 }``; grade 3-4 events are among any-grade events."""

    model_config = ConfigDict(json_schema_extra=groups_schema(_AE_FORMS))
    groups = _AE_FORMS
    count_keys = ("any", "grade34")
    any: Count | None = Field(None, description="the any-grade count")
    grade34: Count | None = Field(None, description="the grade 3-4 count")
    any_proportion: Probability | None = Field(None, description="a probability in [0, 1]")
    grade34_proportion: Probability | None = Field(None, description="a probability in [0, 1]")

    def checks(self, facts: Facts) -> Iterable[Issue]:
        issues = self.form_issues(facts)
        if issues:
            return issues
        if self.any is not None and self.grade34 is not None and self.grade34 > self.any:
            issues.append(Issue(f"{self.grade34} exceeds any = {self.any} (grade 3-4 events "
                                f"are among any-grade events)", ("grade34",), self.grade34))
        if self.any_proportion is not None and self.grade34_proportion is not None and (
                self.grade34_proportion > self.any_proportion):
            issues.append(Issue(f"{self.grade34_proportion:g} exceeds any_proportion "
                                f"{self.any_proportion:g}", ("grade34_proportion",)))
        return issues


class AdverseEventTable(FileTable):
    """``[adverse_events.<name>]``: one AE, its rates per arm."""

    model_config = ConfigDict(extra="allow")
    label: str | None = Field(None, description="the paper's row label (default: the name)")
    grade2_share: Probability = Field(
        0.4, description="share of grade 2 among grade 1-2 events, in [0, 1]")
    grade4_share: Probability = Field(
        0.1, description="share of grade 4 among grade 3-4 events, in [0, 1]")
    __pydantic_extra__: dict[str, ArmAdverseEvent] = Field(init=False)

    @classmethod
    def key_rules(cls, data: Mapping[str, Any], facts: Facts) -> KeyRules:
        if facts.arms is None:
            return KeyRules(names=None)
        return KeyRules(names={arm: f"the AE rates of arm {arm!r}: {{any, grade34}} counts or "
                                    f"{{any_proportion, grade34_proportion}}"
                               for arm in facts.arms})

    def by_arm(self) -> dict[str, ArmAdverseEvent]:
        return dict(self.__pydantic_extra__ or {})

    def checks(self, facts: Facts) -> Iterable[Issue]:
        for arm, rates in self.by_arm().items():
            size = _size(arm, facts)
            for key in ("any", "grade34"):
                count = getattr(rates, key)
                problem = None if count is None else count_problem(count, size)
                if problem:
                    yield Issue(problem, (arm, key), count)


_DEPENDENCE_FORMS = (("any",), ("any_proportion",), ("correlation",))


class ArmDependence(Alternatives):
    """``{ any = 33 }`` (patients with at least one AE, table mode), ``{ any_proportion =
    0.943 }`` (the share of such patients) to calibrate the frailty's correlation to, or
    ``{ correlation = 0.3 }`` (the correlation itself)."""

    model_config = ConfigDict(json_schema_extra=groups_schema(_DEPENDENCE_FORMS))
    groups = _DEPENDENCE_FORMS
    count_keys = ("any",)
    any: Count | None = Field(None, description="patients with at least one AE of any grade (the paper's 'All' row)")
    any_proportion: Probability | None = Field(None, description="the share of patients with at least one AE")
    correlation: Annotated[float, Range(0.0, 0.99, why_high=(
        "at 1 every AE type would follow one uniform per patient and the types could not differ"))] | None = Field(
        None, description="latent correlation of the AE types, in [0, 0.99] (0 = independent)")


class AdverseEventDependenceTable(FileTable):
    """``[adverse_event_dependence]``: per arm, the share with any AE that a shared
    patient-level frailty is calibrated to, or its latent correlation (one-factor Gaussian
    copula over the AE types: :mod:`sim.generate.adverse_events`)."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, ArmDependence] = Field(init=False)

    @classmethod
    def key_rules(cls, data: Mapping[str, Any], facts: Facts) -> KeyRules:
        if facts.arms is None:
            return KeyRules(names=None)
        return KeyRules(names={arm: f"the AE dependence of arm {arm!r}: {{any}} count, "
                                    f"{{any_proportion}} or {{correlation}}"
                               for arm in facts.arms})

    def by_arm(self) -> dict[str, ArmDependence]:
        return dict(self.__pydantic_extra__ or {})

    def checks(self, facts: Facts) -> Iterable[Issue]:
        for arm, dependence in self.by_arm().items():
            size = _size(arm, facts)
            problem = None if dependence.any is None else count_problem(dependence.any, size)
            if problem:
                yield Issue(problem, (arm, "any"), dependence.any)
