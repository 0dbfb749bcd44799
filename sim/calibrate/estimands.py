"""True estimands of a calibrated scenario, per estimand, with their Monte Carlo error.

**Marginal log-HRs** (ATT, ATE, ATO) by potential outcomes (Austin 2013, Stat Med
32:2837-2849): ``simulation.truth_patients`` profiles of each arm are drawn with their
propensity scores (:mod:`sim.calibrate.populations`), each gets both potential outcomes from
the same random numbers and the design's censoring (one entry and dropout time per profile,
used for both), and the 4N records are stacked. Each estimand's target population is a
weighting of these profiles (populations module): ATT weight 1 on treated profiles (0 on
control ones), ATE weight π / 1 − π on treated / control profiles (the study's population),
ATO that weight times e (1 − e) (the overlap population of Li, Morgan & Zaslavsky 2018, J Am
Stat Assoc 113:390-400). The truth is the weighted Cox(T ~ treatment) log-HR of the stacked
records (Efron ties: with a delayed effect or a scan schedule the potential outcomes
coincide or tie). It depends on the censoring pattern because the marginal hazards are not
proportional. With a scan schedule (``outcome.assessment``) PFS is taken as the study records
it (progression at the next scan, censoring at the last scan;
:func:`sim.generate.censoring.observe_outcomes`), in the Cox fits and in the medians.

**Marginal medians** (uncensored) of each estimand's population under treatment and under
control (weighted medians); and, as before, the control arm's median under control.

**Conditional log-HR** (what the Cox model adjusted for the confounders estimates). Where the
endpoint's hazard is proportional in treatment given the covariate log-hazard η
(:func:`proportional_given_predictor`: PFS without a delayed effect, without an early window
whose treatment log-multiplier differs from β_pfs, with the same β on h01 and h02 and without
a scan schedule), it is β_pfs. Otherwise — liu2021's PD-calibrated early hazard, a delay, a
scan schedule, and OS always (an illness-death model's OS has no proportional hazards unless
treatment acts on no transition, when it is 0) — it is the large-sample limit of
Cox(T ~ Z + η) fitted to the study's population as observed (each profile's own arm's
outcome, weighted π / 1 − π, the design's censoring), which is what a correctly specified
adjusted analysis converges to.

**Monte Carlo error** (issue 9 item 7). The profiles are split into :data:`TRUTH_GROUPS` (20)
independent groups of N/20 per arm; every truth is computed in each group (the batched Cox
fits take the groups as replicates) and reported as the mean of the 20, with MC SE =
SD / sqrt(20). The summary folds it into the bias MCSE (``docs/results_schema.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.plan.options import ESTIMANDS  # the rows of the truth tables, in this order
from sim.calibrate.keys import truth_key
from sim.calibrate.populations import TruthPopulation, draw_truth_population
from sim.calibrate.calibration import Calibration
from sim.generate.censoring import draw_censoring, observe_outcomes, recorded_pfs
from sim.generate.outcomes import IllnessDeathModel, draw_outcome_noise, illness_death_times
from sim.scenario.model import Assessment, Censoring, Scenario

#: Marginal estimands (rows with a target population and medians).
MARGINAL_ESTIMANDS = ("att", "ate", "ato")
#: Independent groups of the truth sample: a truth's MC SE is SD(group values) / sqrt(groups).
TRUTH_GROUPS = 20
ENDPOINTS = ("pfs", "os")


@dataclass(frozen=True)
class Truth:
    """True estimands of a scenario (log-HRs treated vs control; medians in months), each with
    its Monte Carlo SE.

    Tables are tuples of rows, one per estimand of :data:`ESTIMANDS` (the median tables: of
    :data:`MARGINAL_ESTIMANDS`), each row (pfs, os).

    Attributes
    ----------
    log_hr, log_hr_mcse : tuple of tuple of float
        True log-HR per estimand (ATT, ATE, ATO marginal; the conditional one last) and its
        MC SE (0 where the conditional truth is β).
    median_treated, median_treated_mcse : tuple of tuple of float
        Median of the estimand's population under treatment (ATT, ATE, ATO).
    median_control, median_control_mcse : tuple of tuple of float
        Median of the estimand's population under control (ATT: the treated had they received
        control, the target of a matched control group).
    pfs_median_control, os_median_control, pfs_median_control_mcse, os_median_control_mcse :
        Median of the control arm (selection mode: Z = 0) under control.
    data_generating_log_hr_pfs, data_generating_log_hr_os : float
        β_pfs (h01/h02 after any delay) and β_os (h12) of the model.
    conditional_source_pfs, conditional_source_os : str
        ``"beta"`` (proportional hazards given η: the conditional truth is β) or
        ``"cox_eta_limit"`` (large-sample Cox(T ~ Z + η)).
    treated_share : float
        π of the ATE and ATO populations.
    n_patients : int
        Profiles per arm. ``groups``: the independent groups behind the MC SEs.
    key : str
        Content key (:func:`truth_key`).
    """

    log_hr: tuple[tuple[float, ...], ...]
    log_hr_mcse: tuple[tuple[float, ...], ...]
    median_treated: tuple[tuple[float, ...], ...]
    median_treated_mcse: tuple[tuple[float, ...], ...]
    median_control: tuple[tuple[float, ...], ...]
    median_control_mcse: tuple[tuple[float, ...], ...]
    pfs_median_control: float
    os_median_control: float
    pfs_median_control_mcse: float
    os_median_control_mcse: float
    data_generating_log_hr_pfs: float
    data_generating_log_hr_os: float
    conditional_source_pfs: str
    conditional_source_os: str
    treated_share: float
    n_patients: int
    groups: int
    key: str

    def value(self, table: str, estimand: str, endpoint: str) -> float:
        """One entry of a table (``"log_hr"``, ``"median_treated"``, … or their ``_mcse``);
        NaN for a median of the conditional estimand (it has no population)."""
        rows = ESTIMANDS if table.startswith("log_hr") else MARGINAL_ESTIMANDS
        if estimand not in rows:
            return float("nan")
        return float(getattr(self, table)[rows.index(estimand)][ENDPOINTS.index(endpoint)])

    # The quantities the summary has always reported, by their old names.
    @property
    def conditional_log_hr_pfs(self) -> float:
        return self.value("log_hr", "conditional", "pfs")

    @property
    def conditional_log_hr_os(self) -> float:
        return self.value("log_hr", "conditional", "os")

    @property
    def marginal_log_hr_pfs(self) -> float:
        return self.value("log_hr", "att", "pfs")

    @property
    def marginal_log_hr_os(self) -> float:
        return self.value("log_hr", "att", "os")

    @property
    def pfs_median_treated(self) -> float:
        return self.value("median_treated", "att", "pfs")

    @property
    def os_median_treated(self) -> float:
        return self.value("median_treated", "att", "os")

    @property
    def pfs_median_treated_under_control(self) -> float:
        return self.value("median_control", "att", "pfs")

    @property
    def os_median_treated_under_control(self) -> float:
        return self.value("median_control", "att", "os")

    def as_variables(self) -> dict[str, object]:
        """The truths as the results Dataset stores them (``sim.run.results``): name → (pfs,
        os) for the variables over (condition, endpoint), name → rows per estimand of (pfs,
        os) for those over (condition, estimand, endpoint)."""
        def column(table: str, estimand: str) -> tuple[float, float]:
            return tuple(self.value(table, estimand, e) for e in ENDPOINTS)

        def rows(table: str) -> tuple[tuple[float, float], ...]:
            return tuple(column(table, estimand) for estimand in ESTIMANDS)

        return {
            "true_log_hr_conditional": column("log_hr", "conditional"),
            "true_log_hr_marginal": column("log_hr", "att"),
            "true_median_treated": column("median_treated", "att"),
            "true_median_control": (self.pfs_median_control, self.os_median_control),
            "true_median_treated_mcse": column("median_treated_mcse", "att"),
            "true_median_control_mcse": (self.pfs_median_control_mcse, self.os_median_control_mcse),
            "true_log_hr": self.log_hr,
            "true_log_hr_mcse": self.log_hr_mcse,
            "true_median_under_treatment": rows("median_treated"),
            "true_median_under_treatment_mcse": rows("median_treated_mcse"),
            "true_median_under_control": rows("median_control"),
            "true_median_under_control_mcse": rows("median_control_mcse"),
        }


def proportional_given_predictor(model: IllnessDeathModel, endpoint: str,
                                 assessment: Assessment | None) -> bool:
    """Whether the endpoint's hazard is proportional in treatment given η (module docstring).

    PFS: h01 + h02 given η is e^(zβ) (λ01 g01 + λ02 g02) e^η when β acts on both transitions
    from time 0 — no delay, the same β on h02, no early window with another treatment
    log-multiplier — and the event time is not grouped on a scan schedule. OS: only when
    treatment acts on no transition (every log-HR 0, equal early multipliers).
    """
    death_before = model.log_hr_pfs if model.log_hr_death_before is None else model.log_hr_death_before
    early_effect = model.treated_early_log_hr - model.control_early_log_hr
    if endpoint == "os":
        return (model.log_hr_pfs == 0.0 and death_before == 0.0 and model.log_hr_os == 0.0
                and (not model.has_early_hazard or early_effect == 0.0))
    return (assessment is None and model.delay_months == 0.0 and death_before == model.log_hr_pfs
            and (not model.has_early_hazard or early_effect == model.log_hr_pfs))


def weighted_median(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted median of each row: the smallest value whose cumulative weight reaches half
    the row's total (the lower median of the weighted empirical distribution).

    Parameters
    ----------
    values, weights : ndarray of float, shape (group, patient)

    Returns
    -------
    ndarray of float, shape (group,)
    """
    order = np.argsort(values, axis=1, kind="stable")
    sorted_values = np.take_along_axis(values, order, axis=1)
    cumulative = np.cumsum(np.take_along_axis(weights, order, axis=1), axis=1)
    half = 0.5 * cumulative[:, -1:]
    index = np.argmax(cumulative >= half * (1 - 1e-12), axis=1)
    return sorted_values[np.arange(values.shape[0]), index]


def _cox_log_hr(time, event, treated, weights=None) -> np.ndarray:
    from analysis.survival import fit_cox

    return np.asarray(fit_cox(time, event, treated, weights=weights, ties="efron").log_hr, float)


def _adjusted_log_hr(time, event, treated, predictor, weights) -> np.ndarray:
    from analysis.survival.cox_regression import fit_cox_regression

    fit = fit_cox_regression(time, event, treated, predictor[..., None], weights=weights, ties="efron")
    return np.asarray(fit.coef[:, 0], float)


@dataclass(frozen=True)
class GroupTruths:
    """Every truth per group (:func:`group_truths`), arrays shaped (estimand, endpoint, group)
    for ``log_hr`` (:data:`ESTIMANDS`), ``median_treated``, ``median_control``
    (:data:`MARGINAL_ESTIMANDS`); (endpoint, group) for ``arm_median_control``."""

    log_hr: np.ndarray
    median_treated: np.ndarray
    median_control: np.ndarray
    arm_median_control: np.ndarray


def group_truths(
    model: IllnessDeathModel,
    population: TruthPopulation,
    censoring: Censoring,
    *,
    groups: int,
    rng: np.random.Generator,
    assessment: Assessment | None = None,
    conditional: tuple[float | None, float | None] = (None, None),
    marginal: tuple[str, ...] = MARGINAL_ESTIMANDS,
) -> GroupTruths:
    """Every truth in each of ``groups`` independent groups of the population (module docstring).

    Parameters
    ----------
    model : IllnessDeathModel
    population : TruthPopulation
        N profiles per arm; the first ``groups * (N // groups)`` of each are used.
    censoring : Censoring
    groups : int
    rng : numpy.random.Generator
    assessment : Assessment or None
    conditional : per endpoint (pfs, os), the conditional truth when known (β, or 0) or None
        to compute the Cox(T ~ Z + η) limit.
    marginal : the marginal estimands to compute (the others' rows are NaN).

    Returns
    -------
    GroupTruths
    """
    m = min(population.treated_predictor.size, population.control_predictor.size) // groups
    if m < 1:
        raise ValueError(f"truth sample: {groups} groups need at least {groups} profiles per arm")

    def by_group(treated: np.ndarray, control: np.ndarray) -> np.ndarray:
        return np.concatenate([treated[:groups * m].reshape(groups, m),
                               control[:groups * m].reshape(groups, m)], axis=1)

    predictor = by_group(population.treated_predictor, population.control_predictor)
    ps = by_group(population.treated_ps, population.control_ps)
    shape = predictor.shape  # (group, 2m): m treated-arm profiles, then m control-arm ones
    arm = np.zeros(shape, bool)
    arm[:, :m] = True
    noise = draw_outcome_noise(shape, rng=rng)
    follow_up = draw_censoring(censoring, shape, rng=rng).censor_months
    under = {z: illness_death_times(predictor, np.full(shape, z), model, noise) for z in (True, False)}
    observed = observe_outcomes(
        np.concatenate([under[True].pfs_months, under[False].pfs_months], axis=1),
        np.concatenate([under[True].os_months, under[False].os_months], axis=1),
        np.concatenate([under[True].progressed, under[False].progressed], axis=1),
        np.concatenate([follow_up, follow_up], axis=1),
        assessment,
    )
    record_treated = np.zeros((groups, 4 * m), bool)
    record_treated[:, :2 * m] = True
    share = population.treated_share
    arm_weight = np.where(arm, share, 1.0 - share)
    profile_weights = {"att": arm.astype(float), "ate": arm_weight, "ato": arm_weight * ps * (1.0 - ps)}
    treated_profiles = np.r_[0:m, 2 * m:3 * m]  # records of the treated-arm profiles
    as_observed = np.r_[0:m, 3 * m:4 * m]  # each profile's own arm's outcome
    outcomes = {"pfs": (observed.pfs_months, observed.pfs_event),
                "os": (observed.os_months, observed.os_event)}
    log_hr = np.full((len(ESTIMANDS), len(ENDPOINTS), groups), np.nan)
    for j, endpoint in enumerate(ENDPOINTS):
        time, event = outcomes[endpoint]
        if "att" in marginal:
            log_hr[0, j] = _cox_log_hr(time[:, treated_profiles], event[:, treated_profiles],
                                       record_treated[:, treated_profiles])
        for i, estimand in ((1, "ate"), (2, "ato")):
            if estimand not in marginal:
                continue
            weights = np.concatenate([profile_weights[estimand]] * 2, axis=1)
            log_hr[i, j] = _cox_log_hr(time, event, record_treated, weights)
        if conditional[j] is not None:
            log_hr[3, j] = conditional[j]
        else:
            log_hr[3, j] = _adjusted_log_hr(
                time[:, as_observed], event[:, as_observed], record_treated[:, as_observed],
                np.concatenate([predictor[:, :m], predictor[:, m:]], axis=1), arm_weight)
    uncensored = {z: {"pfs": recorded_pfs(t.pfs_months, t.os_months, t.progressed, assessment),
                      "os": t.os_months} for z, t in under.items()}
    medians = {z: np.full((len(MARGINAL_ESTIMANDS), len(ENDPOINTS), groups), np.nan) for z in (True, False)}
    for i, estimand in enumerate(MARGINAL_ESTIMANDS):
        if estimand not in marginal:
            continue
        for j, endpoint in enumerate(ENDPOINTS):
            for z in (True, False):
                medians[z][i, j] = weighted_median(uncensored[z][endpoint], profile_weights[estimand])
    arm_median_control = np.stack([weighted_median(uncensored[False][e], (~arm).astype(float))
                                   for e in ENDPOINTS])
    return GroupTruths(log_hr=log_hr, median_treated=medians[True], median_control=medians[False],
                       arm_median_control=arm_median_control)


def _mean_and_mcse(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over the last axis and its MC SE, SD / sqrt(n) (0 where all values agree)."""
    n = values.shape[-1]
    return values.mean(axis=-1), values.std(axis=-1, ddof=1) / np.sqrt(n)


def _table(values: np.ndarray) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(v) for v in row) for row in values)


def true_estimands(
    scenario: Scenario, calibration: Calibration, *, rng: np.random.Generator
) -> Truth:
    """True estimands of a calibrated scenario with their MC SEs (see the module docstring).

    Parameters
    ----------
    scenario : Scenario
    calibration : Calibration
    rng : numpy.random.Generator

    Returns
    -------
    Truth
    """
    n_patients = scenario.simulation.truth_patients
    model = calibration.illness_death_model(scenario.outcome)
    assessment = scenario.outcome.assessment
    population = draw_truth_population(scenario, n_patients, rng=rng)
    beta = {"pfs": model.log_hr_pfs, "os": 0.0}
    ph = {e: proportional_given_predictor(model, e, assessment) for e in ENDPOINTS}
    per_group = group_truths(model, population, scenario.censoring, groups=TRUTH_GROUPS, rng=rng,
                             assessment=assessment,
                             conditional=tuple(beta[e] if ph[e] else None for e in ENDPOINTS))
    log_hr, log_hr_mcse = _mean_and_mcse(per_group.log_hr)
    for j, endpoint in enumerate(ENDPOINTS):
        if ph[endpoint]:  # exactly β (the mean of 20 copies may round)
            log_hr[-1, j], log_hr_mcse[-1, j] = beta[endpoint], 0.0
    treated, treated_mcse = _mean_and_mcse(per_group.median_treated)
    control, control_mcse = _mean_and_mcse(per_group.median_control)
    arm_control, arm_control_mcse = _mean_and_mcse(per_group.arm_median_control)
    return Truth(
        log_hr=_table(log_hr), log_hr_mcse=_table(log_hr_mcse),
        median_treated=_table(treated), median_treated_mcse=_table(treated_mcse),
        median_control=_table(control), median_control_mcse=_table(control_mcse),
        pfs_median_control=float(arm_control[0]), os_median_control=float(arm_control[1]),
        pfs_median_control_mcse=float(arm_control_mcse[0]),
        os_median_control_mcse=float(arm_control_mcse[1]),
        data_generating_log_hr_pfs=float(calibration.log_hr_pfs),
        data_generating_log_hr_os=float(calibration.log_hr_os),
        conditional_source_pfs="beta" if ph["pfs"] else "cox_eta_limit",
        conditional_source_os="beta" if ph["os"] else "cox_eta_limit",
        treated_share=population.treated_share,
        n_patients=n_patients,
        groups=TRUTH_GROUPS,
        key=truth_key(scenario),
    )
