"""The whole scenario file (:class:`ScenarioFile`) and :func:`validate_document`.

The sections depend on each other: the mode decides which keys the arms and marginals take,
the arm names key the marginals, responses and AE rates, the arm sizes bound the counts, and
the covariate names and kinds are what correlations, log-HRs, log-odds and PS covariates refer
to. :func:`gather_facts` validates those sections first (each arm and covariate on its own, so
one bad covariate does not hide the others) and passes what it learnt to the validation of the
whole file as its context; the problems reported are those of that one validation, every one
of them.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from analysis.plan.options import PRESETS
from sim.errors import Problem, ScenarioError
from sim.scenario.model import RESPONSE_CATEGORIES
from sim.scenario.messages import dotted, problems_from
from sim.scenario.schema.analysis import AnalysisTable, SimulationTable
from sim.scenario.schema.checks import ChecksTable
from sim.scenario.schema.common import (
    NAME_PATTERN,
    POPULATION,
    ArmFacts,
    CovariateFacts,
    Facts,
    FileTable,
    Issue,
    KeyRules,
    check_name,
    invalid,
)
from sim.scenario.schema.correlation import CorrelationTable
from sim.scenario.schema.covariates import Covariate
from sim.scenario.schema.events import (
    AdverseEventDependenceTable, AdverseEventTable, CensoringTable, ResponseTable,
)
from sim.scenario.schema.outcome import OutcomeTable
from sim.scenario.schema.selection import SelectionTable, UnmeasuredTable
from sim.scenario.schema.study import Arm, Study

#: Column names of the cohort CSV that a covariate must not take.
RESERVED_COLUMNS = frozenset({
    "patient_id", "treated", "entry_month", "pfs_months", "pfs_event", "os_months",
    "os_event", "best_response",
})
_NAMES = {"propertyNames": {"pattern": NAME_PATTERN}}


class ScenarioFile(FileTable):
    """A psmsim scenario: one study, read from TOML (``docs/scenario_format.md``)."""

    model_config = ConfigDict(title="psmsim scenario")
    study: Study = Field(description="a [study] table with name")
    arms: dict[str, Arm] = Field(description="an [arms.<name>] table for each of the 2 arms",
                                 json_schema_extra=_NAMES | {"minProperties": 2,
                                                             "maxProperties": 2})
    covariates: dict[str, Covariate] = Field(
        default_factory=dict,
        description="a [covariates.<name>] table for each covariate (default: none, a plain "
                    "randomised trial)",
        json_schema_extra=_NAMES)
    correlation: CorrelationTable | None = Field(
        None, description="latent correlations of the covariates (default: independent)")
    outcome: OutcomeTable = Field(description="an [outcome] table")
    censoring: CensoringTable = Field(description="a [censoring] table")
    response: ResponseTable = Field(
        description="a [response] table with one response table per arm")
    adverse_events: dict[str, AdverseEventTable] = Field(
        default_factory=dict, description="[adverse_events.<name>] tables (default: none)",
        json_schema_extra=_NAMES)
    adverse_event_dependence: AdverseEventDependenceTable | None = Field(
        None, description="a shared frailty making AEs cluster in the same patients, per arm "
                          "calibrated to the share with any AE or given as a correlation "
                          "(default: independent AE types)")
    unmeasured: UnmeasuredTable | None = Field(
        None, description="an unmeasured binary confounder (default: none)")
    selection: SelectionTable | None = Field(
        None, description="the treatment model (selection mode only)")
    analysis: AnalysisTable = Field(default_factory=AnalysisTable,
                                    description="the analysis plan")
    simulation: SimulationTable = Field(default_factory=SimulationTable,
                                        description="the run settings")
    # ``checks`` is FileTable's method: the field takes the TOML key through its alias.
    published: ChecksTable | None = Field(
        None, alias="checks",
        description="published numbers psmsim check compares with (default: none)")

    @classmethod
    def key_rules(cls, data: Mapping[str, Any], facts: Facts) -> KeyRules:
        if facts.mode == "selection":
            return KeyRules(required={"selection": "a [selection] table (study.mode is "
                                                   "'selection')"})
        if facts.mode == "table":
            return KeyRules(misplaced={"selection": "only used when study.mode = 'selection' "
                                                    "(mode is 'table')"})
        return KeyRules()

    def checks(self, facts: Facts) -> Iterable[Issue]:
        if self.response.model != "pfs":
            return
        if self.outcome.assessment is None:
            yield Issue("'pfs' needs a scan schedule: add [outcome.assessment] interval_months "
                        "(PD is a PFS event by the first scan)", ("response", "model"), "pfs")
        for arm, response in self.response.by_arm().items():
            form = "counts" if response.counts is not None else "probabilities"
            rates = getattr(response, form)
            values = [getattr(rates, c) for c in RESPONSE_CATEGORIES]
            if values[3] <= 0 or values[3] >= sum(values):
                yield Issue(f"{values[3]:g}: with response model 'pfs' the PD rate must be "
                            f"between 0 and 1 (it sets the PFS hazard before the first scan)",
                            ("response", arm, form, "PD"), values[3])

    @field_validator("arms")
    @classmethod
    def _two_arms_one_treated(cls, arms: dict[str, Arm]) -> dict[str, Arm]:
        if len(arms) != 2:
            raise invalid(f"{len(arms)} arm(s) given ({', '.join(arms) or 'none'}); exactly 2 "
                          f"are needed (one treated, one control)")
        n_treated = sum(arm.treated for arm in arms.values())
        if n_treated != 1:
            raise invalid(f"{n_treated} arms have treated = true; exactly one must (the "
                          f"experimental arm)")
        return arms


def _name_issues(data: Mapping[str, Any]) -> list[Issue]:
    """Problems of the names of arms, covariates, adverse events and analysis methods (table
    keys)."""
    issues = []
    for section, what in (("arms", "arm"), ("covariates", "covariate"),
                          ("adverse_events", "adverse-event")):
        table = data.get(section)
        for name in table if isinstance(table, dict) else ():
            problem = check_name(name, what)
            if problem is None and section == "arms" and name == POPULATION:
                problem = f"'{POPULATION}' is reserved for selection-mode marginals"
            if problem is None and section == "covariates" and (
                    name in RESERVED_COLUMNS or name.startswith("ae_")):
                problem = (f"{name!r} is a reserved cohort column name (reserved: "
                           f"{', '.join(sorted(RESERVED_COLUMNS))} and ae_*)")
            if problem:
                issues.append(Issue(problem, (section, name)))
    analysis = data.get("analysis")
    methods = analysis.get("methods") if isinstance(analysis, dict) else None
    for name in methods if isinstance(methods, dict) else ():
        problem = check_name(name, "method")
        if problem is None and name in PRESETS:
            problem = (f"{name!r} is a preset's name: change the preset itself in "
                       f"[analysis.{name}], or give the method another name")
        if problem:
            issues.append(Issue(problem, ("analysis", "methods", name)))
    return issues


_COVARIATE = TypeAdapter(Covariate)


def gather_facts(data: Mapping[str, Any]) -> Facts:
    """What the sections need to know about each other, from the sections that are valid."""
    try:
        mode = Study.model_validate(data.get("study")).mode
    except ValidationError:
        mode = None
    arms = _valid_items(data.get("arms"), lambda value: Arm.model_validate(
        value, context=Facts(mode=mode)))
    arm_facts = None
    if arms is not None and all(arm is not None for arm in arms.values()) and len(arms) == 2 \
            and sum(arm.treated for arm in arms.values()) == 1:
        arm_facts = {name: ArmFacts(size=arm.size or 0, treated=arm.treated)
                     for name, arm in arms.items()}
    unmeasured = data.get("unmeasured")
    prevalence = unmeasured.get("prevalence") if isinstance(unmeasured, dict) else None
    events = data.get("adverse_events", {})
    facts = Facts(mode=mode, arms=arm_facts,
                  population_unmeasured=isinstance(prevalence, dict) and POPULATION in prevalence,
                  adverse_event_names=tuple(events) if isinstance(events, dict) else None)
    covariates = _valid_items(data.get("covariates"), lambda value: _COVARIATE.validate_python(
        value, context=facts))
    if covariates is None:
        return facts
    return Facts(mode=mode, arms=arm_facts, covariate_names=tuple(covariates),
                 covariates={name: CovariateFacts(kind=covariate.kind,
                                                  levels=tuple(getattr(covariate, "levels", ())))
                             for name, covariate in covariates.items() if covariate is not None},
                 population_unmeasured=facts.population_unmeasured,
                 adverse_event_names=facts.adverse_event_names)


def _valid_items(table: Any, validate: Any) -> dict[str, Any] | None:
    """Each item of a table validated (None where invalid); None if it is not a table."""
    if not isinstance(table, dict):
        return None
    items = {}
    for name, value in table.items():
        try:
            items[name] = validate(value)
        except ValidationError:
            items[name] = None
    return items


def validate_document(data: Mapping[str, Any]) -> tuple[ScenarioFile, Facts]:
    """Validate a parsed TOML document (nested dicts and lists, as :mod:`tomllib` returns).

    Returns
    -------
    (ScenarioFile, Facts)
        The validated file and the facts its sections were checked with.

    Raises
    ------
    ScenarioError
        Every problem of the file, one :class:`sim.errors.Problem` each, in file order.
    """
    facts = gather_facts(data) if isinstance(data, dict) else Facts()
    problems = []
    try:
        document = ScenarioFile.model_validate(data, context=facts)
    except ValidationError as error:
        problems = problems_from(error)
        document = None
    names = [Problem(dotted(issue.at), issue.message)
             for issue in (_name_issues(data) if isinstance(data, dict) else ())]
    problems = names + [problem for problem in problems if problem not in names]
    if problems:
        raise ScenarioError.from_problems(problems)
    return document, facts
