"""``[checks]``: published numbers a simulation is compared with, not calibrated to.

A paper prints more than a scenario is calibrated to: the matched-pair count, the after-matching
columns of its tables, the p-values of both columns. ``[checks]`` carries them so that ``psmsim
check`` can say where each falls in the simulated distribution (``docs/scenario_format.md``,
"Checks"). Nothing here changes what is generated.

``[checks.full]`` (before matching) and ``[checks.matched]`` (after) have the same tables:
``covariates.<name>`` (per-arm values as Table 1 prints them and ``p``), ``response`` (per-arm
counts of CR/PR/SD/PD and ``p`` per row), ``adverse_events.<name>`` and ``any_adverse_event``
(per-arm ``{any, grade34}`` counts, ``any_p``, ``grade34_p``) and ``survival.pfs`` /
``survival.os`` (per-arm Kaplan–Meier medians in months and ``p_logrank``). Every key is
optional. Counts are out of the arm sizes before matching and out of ``pairs`` after (1:1
matching: each matched arm has ``pairs`` patients). In table mode the per-arm values before
matching are the scenario's calibration targets and are checked from there; ``[checks.full]``
then takes p-values only (and the ``any_adverse_event`` row, which is not a target).
"""

from __future__ import annotations

from typing import Annotated, Any, Iterable, Mapping

from pydantic import ConfigDict, Field

from sim.scenario.messages import suggest
from sim.scenario.schema.common import (
    Facts,
    FileTable,
    IntRange,
    Issue,
    KeyRules,
    Range,
    one_group,
)
from sim.scenario.schema.covariates import Count, Positive, Probability, count_problem
from sim.scenario.schema.events import ResponseCounts

PValue = Annotated[float, Range(0.0, 1.0)]
#: What a per-arm value of each covariate kind may give.
_FORMS = {
    "binary": (("count",), ("proportion",)),
    "categorical": (("counts",), ("proportions",)),
    "normal": (("mean", "sd"), ("median", "q1", "q3")),
    "lognormal": (("mean", "sd"), ("median", "q1", "q3")),
}
_RESPONSE_ROWS = ("ORR", "DCR", "CR", "PR", "SD", "PD")


def _arm_key_issues(table: FileTable, facts: Facts, what: str) -> list[Issue]:
    """Keys of an arm-keyed table that are neither a field nor an arm name."""
    if facts.arms is None:
        return []
    allowed = list(type(table).model_fields) + list(facts.arms)
    return [Issue(f"unknown key{suggest(key, allowed)}(allowed: {', '.join(allowed)}; "
                  f"arm names give {what})", (key,))
            for key in (table.__pydantic_extra__ or {}) if key not in facts.arms]


class ArmCovariateValue(FileTable):
    """One arm's Table 1 cell: ``{count}`` or ``{proportion}`` (binary), ``{counts}`` or
    ``{proportions}`` (categorical, one per level), ``{mean, sd}`` or ``{median, q1, q3}``
    (continuous)."""

    count: Count | None = Field(None, description="patients with the value 1")
    proportion: Probability | None = Field(None, description="a proportion in [0, 1]")
    counts: list[Count] | None = Field(None, description="patients per level")
    proportions: list[Probability] | None = Field(None, description="one proportion per level")
    mean: float | None = Field(None, description="the mean")
    sd: Positive | None = Field(None, description="the SD, > 0")
    median: float | None = Field(None, description="the median")
    q1: float | None = Field(None, description="the lower quartile")
    q3: float | None = Field(None, description="the upper quartile")


class CovariateCheck(FileTable):
    """``[checks.<cohort>.covariates.<name>]``: ``<arm> = {...}`` per arm and ``p``."""

    model_config = ConfigDict(extra="allow")
    p: PValue | None = Field(None, description="the printed p-value, in [0, 1]")
    __pydantic_extra__: dict[str, ArmCovariateValue] = Field(init=False)

    @classmethod
    def key_rules(cls, data: Mapping[str, Any], facts: Facts) -> KeyRules:
        return KeyRules(names=None)

    def by_arm(self) -> dict[str, ArmCovariateValue]:
        return dict(self.__pydantic_extra__ or {})


class ArmResponseCheck(FileTable):
    """``[checks.<cohort>.response.<arm>]``: ``counts = { CR, PR, SD, PD }``."""

    counts: ResponseCounts = Field(description="patients per best response (CR, PR, SD, PD)")


class ResponsePValues(FileTable):
    """The printed p-value of each Table 2 row (any subset)."""

    ORR: PValue | None = Field(None, description="objective response (CR + PR)")
    DCR: PValue | None = Field(None, description="disease control (CR + PR + SD)")
    CR: PValue | None = Field(None, description="complete response")
    PR: PValue | None = Field(None, description="partial response")
    SD: PValue | None = Field(None, description="stable disease")
    PD: PValue | None = Field(None, description="progressive disease")


class ResponseCheck(FileTable):
    """``[checks.<cohort>.response]``: ``<arm> = { counts = {...} }`` and ``p = {...}``."""

    model_config = ConfigDict(extra="allow")
    p: ResponsePValues | None = Field(None, description="p-values by row (ORR, DCR, CR, ...)")
    __pydantic_extra__: dict[str, ArmResponseCheck] = Field(init=False)

    @classmethod
    def key_rules(cls, data: Mapping[str, Any], facts: Facts) -> KeyRules:
        return KeyRules(names=None)

    def by_arm(self) -> dict[str, ArmResponseCheck]:
        return dict(self.__pydantic_extra__ or {})


class ArmEventCounts(FileTable):
    """``{ any = 17, grade34 = 1 }``: patients with the AE at any grade and at grade 3-4."""

    any: Count = Field(description="the any-grade count")
    grade34: Count = Field(description="the grade 3-4 count")


class AdverseEventCheck(FileTable):
    """``[checks.<cohort>.adverse_events.<name>]`` or ``any_adverse_event``: per-arm counts,
    ``any_p`` and ``grade34_p``."""

    model_config = ConfigDict(extra="allow")
    any_p: PValue | None = Field(None, description="p-value of the any-grade row")
    grade34_p: PValue | None = Field(None, description="p-value of the grade 3-4 row")
    __pydantic_extra__: dict[str, ArmEventCounts] = Field(init=False)

    @classmethod
    def key_rules(cls, data: Mapping[str, Any], facts: Facts) -> KeyRules:
        return KeyRules(names=None)

    def by_arm(self) -> dict[str, ArmEventCounts]:
        return dict(self.__pydantic_extra__ or {})


class EndpointCheck(FileTable):
    """``[checks.<cohort>.survival.pfs]`` / ``.os``: per-arm median months, ``p_logrank``."""

    model_config = ConfigDict(extra="allow")
    p_logrank: PValue | None = Field(None, description="the log-rank p-value")
    __pydantic_extra__: dict[str, Positive] = Field(init=False)

    @classmethod
    def key_rules(cls, data: Mapping[str, Any], facts: Facts) -> KeyRules:
        return KeyRules(names=None)

    def by_arm(self) -> dict[str, float]:
        return dict(self.__pydantic_extra__ or {})


class SurvivalCheck(FileTable):
    """``[checks.<cohort>.survival]``."""

    pfs: EndpointCheck | None = Field(None, description="progression-free survival")
    os: EndpointCheck | None = Field(None, description="overall survival")


class CohortChecks(FileTable):
    """``[checks.full]`` or ``[checks.matched]``: the numbers of one column of the tables."""

    covariates: dict[str, CovariateCheck] = Field(
        default_factory=dict, description="Table 1 rows by covariate name")
    response: ResponseCheck | None = Field(None, description="Table 2")
    adverse_events: dict[str, AdverseEventCheck] = Field(
        default_factory=dict, description="Table 3 rows by adverse-event name")
    any_adverse_event: AdverseEventCheck | None = Field(
        None, description="Table 3's 'All' row: any of the adverse events")
    survival: SurvivalCheck | None = Field(None, description="medians and log-rank p-values")

    def arm_tables(self) -> list[tuple[tuple[Any, ...], FileTable, str]]:
        """Every arm-keyed table with its location and what its arm keys give."""
        tables = [(("covariates", name), table, "the arm's Table 1 cell")
                  for name, table in self.covariates.items()]
        if self.response is not None:
            tables.append((("response",), self.response, "the arm's response counts"))
        tables += [(("adverse_events", name), table, "the arm's {any, grade34} counts")
                   for name, table in self.adverse_events.items()]
        if self.any_adverse_event is not None:
            tables.append((("any_adverse_event",), self.any_adverse_event,
                           "the arm's {any, grade34} counts"))
        for endpoint in ("pfs", "os"):
            table = getattr(self.survival, endpoint, None) if self.survival else None
            if table is not None:
                tables.append((("survival", endpoint), table, "the arm's median in months"))
        return tables

    def issues(self, facts: Facts, size: Mapping[str, int | None], before: bool
               ) -> Iterable[Issue]:
        """Names, forms and counts, ``size`` being each arm's patients in this cohort."""
        for at, table, what in self.arm_tables():
            for issue in _arm_key_issues(table, facts, what):
                yield Issue(issue.message, at + issue.at)
            targets = before and facts.mode == "table" and at != ("any_adverse_event",)
            for arm in table.by_arm() if targets and facts.arms else ():
                yield Issue("not allowed here: before matching the arms' values are the "
                            "scenario's calibration targets and are checked from there (give "
                            "p-values only)", at + (arm,))
        yield from self._name_issues(facts)
        yield from self._covariate_issues(facts, size)
        yield from self._count_issues(size)

    def _name_issues(self, facts: Facts) -> Iterable[Issue]:
        for section, names in (("covariates", facts.covariate_names),
                               ("adverse_events", facts.adverse_event_names)):
            what = "covariate" if section == "covariates" else "adverse event"
            for name in getattr(self, section) if names is not None else ():
                if name not in names:
                    yield Issue(f"{name!r} is not a{'n' if what[0] == 'a' else ''} {what} of "
                                f"the scenario{suggest(name, names)}(allowed: "
                                f"{', '.join(names) or 'none'})", (section, name))

    def _covariate_issues(self, facts: Facts, size: Mapping[str, int | None]
                          ) -> Iterable[Issue]:
        for name, table in self.covariates.items():
            covariate = facts.covariates.get(name)
            if covariate is None:
                continue
            for arm, value in table.by_arm().items():
                at = ("covariates", name, arm)
                forms = _FORMS[covariate.kind]
                wrong = [key for key in value.given_keys()
                         if key not in {k for group in forms for k in group}]
                if wrong:
                    names = " or ".join("{" + ", ".join(group) + "}" for group in forms)
                    yield Issue(f"{wrong[0]!r} does not fit a {covariate.kind} covariate "
                                f"(allowed: {names})", at + (wrong[0],))
                    continue
                for issue in one_group(value, forms):
                    yield Issue(issue.message, at + issue.at)
                levels = len(covariate.levels)
                for key in ("counts", "proportions"):
                    items = getattr(value, key)
                    if items is not None and levels and len(items) != levels:
                        yield Issue(f"{len(items)} values given for {levels} levels "
                                    f"({', '.join(covariate.levels)})", at + (key,))
                if value.count is not None:
                    problem = count_problem(value.count, size.get(arm))
                    if problem:
                        yield Issue(problem, at + ("count",), value.count)
                if value.median is not None and value.q1 is not None and value.q3 is not None \
                        and not value.q1 <= value.median <= value.q3:
                    yield Issue(f"quartiles must satisfy q1 <= median <= q3, got q1 "
                                f"{value.q1:g}, median {value.median:g}, q3 {value.q3:g}", at)

    def _count_issues(self, size: Mapping[str, int | None]) -> Iterable[Issue]:
        if self.response is not None:
            for arm, check in self.response.by_arm().items():
                counts = [getattr(check.counts, c) for c in ("CR", "PR", "SD", "PD")]
                n = size.get(arm)
                if n is not None and sum(counts) != n:
                    yield Issue(f"{' + '.join(map(str, counts))} = {sum(counts)}, not the "
                                f"arm's {n} patients in this cohort", ("response", arm, "counts"))
        events = [(("adverse_events", name), table) for name, table in self.adverse_events.items()]
        if self.any_adverse_event is not None:
            events.append((("any_adverse_event",), self.any_adverse_event))
        for at, table in events:
            for arm, counts in table.by_arm().items():
                for key in ("any", "grade34"):
                    problem = count_problem(getattr(counts, key), size.get(arm))
                    if problem:
                        yield Issue(problem, at + (arm, key), getattr(counts, key))
                if counts.grade34 > counts.any:
                    yield Issue(f"{counts.grade34} exceeds any = {counts.any} (grade 3-4 "
                                f"events are among any-grade events)", at + (arm, "grade34"))


class ChecksTable(FileTable):
    """``[checks]``: published numbers ``psmsim check`` compares with the simulation."""

    pairs: Annotated[int, IntRange(0)] | None = Field(
        None, description="matched pairs the study reported (1:1 matching)")
    decimals: Annotated[int, IntRange(0, 6)] = Field(
        1, description="decimals the paper prints percentages, means, SDs, quartiles and "
                       "medians with (a simulated value that prints as the published one is a "
                       "tie)")
    p_decimals: Annotated[int, IntRange(1, 6)] = Field(
        3, description="decimals the paper prints p-values with")
    full: CohortChecks | None = Field(None, description="before matching (the whole cohort)")
    matched: CohortChecks | None = Field(None, description="after matching")

    def checks(self, facts: Facts) -> Iterable[Issue]:
        sizes = {name: (arm.size if facts.mode == "table" else None)
                 for name, arm in (facts.arms or {}).items()}
        if self.full is not None:
            for issue in self.full.issues(facts, sizes, before=True):
                yield Issue(issue.message, ("full",) + issue.at, issue.value)
        if self.matched is not None:
            counts_given = any(table.by_arm() for _, table, _ in self.matched.arm_tables()
                               if not isinstance(table, EndpointCheck))
            if counts_given and self.pairs is None:
                yield Issue("missing (required: the matched-pair count the after-matching "
                            "counts are out of)", ("pairs",))
            matched = {name: self.pairs for name in sizes}
            for issue in self.matched.issues(facts, matched, before=False):
                yield Issue(issue.message, ("matched",) + issue.at, issue.value)
