"""A validated scenario file (:class:`sim.scenario.schema.ScenarioFile`) turned into the frozen
:class:`sim.scenario.model.Scenario` the rest of psmsim uses.

Here the printed numbers become distribution parameters (counts over the arm size, renormalised
probabilities, the truncated-normal and (split) lognormal fits of
:mod:`sim.generate.marginals`), the correlation pairs the full matrix, and every default is
filled in. Nothing here can fail on a valid file: each rule was checked by the schema.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from sim.generate.marginals import fit_lognormal_moments, fit_split_lognormal_quartiles
from sim.scenario.model import (
    RESPONSE_CATEGORIES,
    AdverseEvent,
    AdverseEventDependence,
    AnalysisMethod,
    AnalysisOptions,
    Arm,
    Assessment,
    Censoring,
    Covariate,
    Marginal,
    Outcome,
    Response,
    Scenario,
    Selection,
    SimulationSettings,
    Transition,
    TreatmentEffect,
    Unmeasured,
)
from sim.scenario.build_checks import build_checks
from sim.scenario.schema import ScenarioFile
from sim.scenario.schema.common import POPULATION
from sim.scenario.schema.covariates import (
    BinaryCovariate,
    CategoricalCovariate,
    LognormalCovariate,
    NormalCovariate,
    fitted_truncated_normal,
)
from sim.scenario.schema.events import AdverseEventDependenceTable, AdverseEventTable, ResponseTable
from sim.scenario.schema.outcome import OutcomeTable, TransitionTable, TreatmentTable


def build_scenario(document: ScenarioFile, *, source_text: str = "") -> Scenario:
    """The :class:`Scenario` of a valid file (``source_text``: the TOML it was read from).

    Raises
    ------
    ScenarioError
        ``adverse_event_dependence.<arm>.any``: a share with any AE no shared frailty reaches.
    """
    from sim.generate.adverse_events import frailty_correlations

    scenario = _build(document, source_text=source_text)
    frailty_correlations(scenario)  # an unreachable [adverse_event_dependence] target: one line now
    return scenario


def _build(document: ScenarioFile, *, source_text: str) -> Scenario:
    mode = document.study.mode
    arms = tuple(Arm(name=name, label=arm.label if arm.label is not None else name,
                     size=arm.size if mode == "table" else 0, treated=arm.treated)
                 for name, arm in document.arms.items())
    sizes = {arm.name: arm.size for arm in arms}
    keys = (POPULATION,) if mode == "selection" else tuple(sizes)
    covariates = tuple(_covariate(name, table, keys, sizes)
                       for name, table in document.covariates.items())
    names = tuple(c.name for c in covariates)
    levels = {c.name: c.levels for c in covariates if c.kind == "categorical"}
    if document.correlation is None:
        correlation = tuple(tuple(1.0 if i == j else 0.0 for j in range(len(names)))
                            for i in range(len(names)))
    else:
        correlation = document.correlation.full_matrix(names)
    analysis = document.analysis
    return Scenario(
        name=document.study.name,
        title=document.study.title if document.study.title is not None else document.study.name,
        mode=mode,
        arms=arms,
        covariates=covariates,
        correlation=correlation,
        outcome=_outcome(document.outcome, names, levels),
        censoring=Censoring(accrual_months=document.censoring.accrual_months,
                            cutoff_month=document.censoring.cutoff_month,
                            dropout_rate=document.censoring.dropout_rate),
        response=_response(document.response, sizes),
        adverse_events=tuple(_adverse_event(name, table, sizes)
                             for name, table in document.adverse_events.items()),
        adverse_event_dependence=(None if document.adverse_event_dependence is None
                                  else _adverse_event_dependence(document.adverse_event_dependence, sizes)),
        analysis=AnalysisOptions(
            plan=analysis.plan,
            ps_covariates=tuple(analysis.ps_covariates if analysis.ps_covariates is not None
                                else names),
            overrides={preset: options.overrides()
                       for preset in ("paper", "recommended")
                       if (options := getattr(analysis, preset)) is not None},
            methods=tuple(AnalysisMethod(
                name=name, preset=method.preset, overrides=method.overrides(),
                ps_covariates=None if method.ps_covariates is None else tuple(method.ps_covariates))
                for name, method in (analysis.methods or {}).items())),
        simulation=SimulationSettings(**document.simulation.model_dump()),
        selection=None if document.selection is None else Selection(
            patients=document.selection.patients,
            intercept=document.selection.intercept,
            log_odds=_coefficients(document.selection.log_odds, names, levels),
            unmeasured_log_odds=(document.selection.unmeasured_log_odds
                                 if _population_unmeasured(document) else 0.0)),
        unmeasured=None if document.unmeasured is None else Unmeasured(
            prevalence=_prevalence(document.unmeasured.prevalence.by_key(), sizes),
            log_hr=document.unmeasured.log_hr),
        source_text=source_text,
        checks=build_checks(document.published, sizes),
    )


def _population_unmeasured(document: ScenarioFile) -> bool:
    return document.unmeasured is not None and document.unmeasured.prevalence.population is not None


def _prevalence(by_key: Mapping[str, float], sizes: Mapping[str, int]) -> dict[str, float]:
    if POPULATION in by_key:
        return {POPULATION: by_key[POPULATION]}
    return {arm: by_key[arm] for arm in sizes}


# --------------------------------------------------------------------------------------------
# Covariates
# --------------------------------------------------------------------------------------------


def _covariate(name: str, table: Any, keys: tuple[str, ...], sizes: Mapping[str, int]
               ) -> Covariate:
    tables = table.marginals()
    if isinstance(table, BinaryCovariate):
        marginals = {key: _binary(tables[key], sizes.get(key)) for key in keys}
    elif isinstance(table, CategoricalCovariate):
        marginals = {key: _categorical(tables[key], sizes.get(key)) for key in keys}
    elif isinstance(table, NormalCovariate):
        lower, upper = table.bound_values()
        marginals = {key: _normal(tables[key], lower, upper) for key in keys}
    else:
        assert isinstance(table, LognormalCovariate)
        marginals = {key: _lognormal(tables[key]) for key in keys}
    return Covariate(name=name, label=table.label if table.label is not None else name,
                     kind=table.kind, marginals=marginals,
                     levels=tuple(getattr(table, "levels", ())))


def _binary(marginal: Any, size: int | None) -> Marginal:
    if marginal.count is not None:
        return Marginal(p=marginal.count / size, target={"count": marginal.count, "n": size})
    return Marginal(p=marginal.proportion, target={"proportion": marginal.proportion})


def _categorical(marginal: Any, size: int | None) -> Marginal:
    if marginal.counts is not None:
        counts = tuple(marginal.counts)
        return Marginal(probabilities=tuple(c / size for c in counts),
                        target={"counts": counts, "n": size})
    return Marginal(probabilities=_renormalised(marginal.probabilities),
                    target={"probabilities": tuple(marginal.probabilities)})


def _renormalised(values: list[float]) -> tuple[float, ...]:
    total = math.fsum(values)
    return tuple(v / total for v in values)


def _normal(marginal: Any, lower: float | None, upper: float | None) -> Marginal:
    fitted = fitted_truncated_normal(marginal.mean, marginal.sd, lower=lower, upper=upper)
    return Marginal(mean=fitted.mu, sd=fitted.sigma, lower=lower, upper=upper,
                    target={"mean": marginal.mean, "sd": marginal.sd})


def _lognormal(marginal: Any) -> Marginal:
    if marginal.median is not None:
        split = fit_split_lognormal_quartiles(marginal.median, marginal.q1, marginal.q3)
        return Marginal(mu=split.mu, sigma=split.sigma_lower, sigma_upper=split.sigma_upper,
                        target={"median": marginal.median, "q1": marginal.q1,
                                "q3": marginal.q3})
    fitted = fit_lognormal_moments(marginal.mean, marginal.sd)
    return Marginal(mu=fitted.mu, sigma=fitted.sigma,
                    target={"mean": marginal.mean, "sd": marginal.sd})


# --------------------------------------------------------------------------------------------
# Outcome, response, adverse events
# --------------------------------------------------------------------------------------------


def _coefficients(table: Mapping[str, Any], names: tuple[str, ...],
                  levels: Mapping[str, tuple[str, ...]]) -> dict[str, float | tuple[float, ...]]:
    """Covariate coefficients in covariate order (categorical: a tuple, one per level)."""
    return {name: tuple(table[name]) if name in levels else table[name]
            for name in names if name in table}


def _transition(table: TransitionTable) -> Transition:
    return Transition(baseline=table.baseline,
                      shape=table.shape if table.baseline == "weibull" else 1.0,
                      breaks=tuple(table.breaks) if table.baseline == "piecewise" else (),
                      relative_rates=(tuple(table.relative_rates)
                                      if table.baseline == "piecewise" else (1.0,)))


def _treatment(table: TreatmentTable) -> TreatmentEffect:
    return TreatmentEffect(mode=table.mode, pfs_median=table.pfs_median,
                           os_median=table.os_median, hazard_ratio=table.hazard_ratio,
                           delay_months=table.delay_months,
                           progression_hazard_ratio=table.progression_hazard_ratio,
                           death_before_hazard_ratio=table.death_before_hazard_ratio,
                           death_after_hazard_ratio=table.death_after_hazard_ratio)


def _outcome(table: OutcomeTable, names: tuple[str, ...],
             levels: Mapping[str, tuple[str, ...]]) -> Outcome:
    return Outcome(
        control_pfs_median=table.control_pfs_median,
        control_os_median=table.control_os_median,
        death_before_progression=table.death_before_progression,
        progression=_transition(table.progression),
        death_before=_transition(table.death_before),
        death_after=_transition(table.death_after),
        treatment=_treatment(table.treatment),
        covariate_log_hr=_coefficients(table.covariate_log_hr, names, levels),
        assessment=(None if table.assessment is None
                    else Assessment(interval_months=table.assessment.interval_months)),
    )


def _response(table: ResponseTable, sizes: Mapping[str, int]) -> Response:
    probabilities, target = {}, {}
    by_arm = table.by_arm()
    for arm, size in sizes.items():
        response = by_arm[arm]
        if response.counts is not None:
            counts = [getattr(response.counts, c) for c in RESPONSE_CATEGORIES]
            probabilities[arm] = tuple(c / size for c in counts)
            target[arm] = dict(zip(RESPONSE_CATEGORIES, counts)) | {"n": size}
        else:
            raw = [getattr(response.probabilities, c) for c in RESPONSE_CATEGORIES]
            probabilities[arm] = _renormalised(raw)
            target[arm] = dict(zip(RESPONSE_CATEGORIES, raw))
    return Response(probabilities=probabilities, pfs_link=table.pfs_link, target=target,
                    model=table.model)


def _adverse_event_dependence(table: AdverseEventDependenceTable, sizes: Mapping[str, int]
                              ) -> AdverseEventDependence:
    any_grade, correlation, target = {}, {}, {}
    for arm, given in table.by_arm().items():
        if given.any is not None:
            any_grade[arm] = given.any / sizes[arm]
            target[arm] = {"any": given.any, "n": sizes[arm]}
        elif given.any_proportion is not None:
            any_grade[arm] = given.any_proportion
            target[arm] = {"any_proportion": given.any_proportion}
        else:
            correlation[arm] = given.correlation
    return AdverseEventDependence(any_grade=any_grade, correlation=correlation, target=target)


def _adverse_event(name: str, table: AdverseEventTable, sizes: Mapping[str, int]
                   ) -> AdverseEvent:
    any_grade, grade34, target = {}, {}, {}
    by_arm = table.by_arm()
    for arm, size in sizes.items():
        rates = by_arm[arm]
        if rates.any is not None:
            any_grade[arm], grade34[arm] = rates.any / size, rates.grade34 / size
            target[arm] = {"any": rates.any, "grade34": rates.grade34, "n": size}
        else:
            any_grade[arm], grade34[arm] = rates.any_proportion, rates.grade34_proportion
            target[arm] = {"any_proportion": rates.any_proportion,
                           "grade34_proportion": rates.grade34_proportion}
    return AdverseEvent(name=name, label=table.label if table.label is not None else name,
                        any_grade=any_grade, grade34=grade34, grade2_share=table.grade2_share,
                        grade4_share=table.grade4_share, target=target)
