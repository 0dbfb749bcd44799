"""Calibration of the illness-death model to the published medians.

**Calibration** (:func:`calibrate`). The baseline scales λ01, λ02, λ12 are set so that the
control arm's marginal (uncensored, averaged over the control arm's covariates including the
unmeasured U) PFS and OS medians equal ``outcome.control_pfs_median`` and
``outcome.control_os_median``; then the treatment log-HRs either follow the stated HR
(``mode="hazard_ratio"``: β_pfs = β_os = log HR exactly, so HR = 1 is exactly the null) or are
set so that the treated arm's marginal medians (over the treated arm's covariates) equal
``treatment.pfs_median`` and ``treatment.os_median`` (``mode="target_medians"``; β_pfs on h01
and h02 first, then β_os on h12). Each quantity is a root of "sample median − target" found by
``scipy.optimize.brentq`` (on the log scale for the scales) on one large simulated sample
(``simulation.calibration_patients`` per arm) whose random numbers are drawn once (common random
numbers), so the sample medians are continuous monotone functions of the parameter and the
result is deterministic for a given generator. With a scan schedule (``outcome.assessment``)
the PFS medians are those of PFS as the study records it (progression at the next scan,
:func:`sim.generate.censoring.recorded_pfs`): the published medians are Kaplan–Meier medians of
scan-dated progressions. Between two scans the recorded survival curve falls only by deaths, so
there its median moves far for a small change in the curve (on a fresh sample of 10^5 patients
by half a month): the PFS root is therefore the parameter at which the recorded PFS's survival
at the target median is 1/2 (a proportion, precise to sqrt(1/4n)), which puts the median at the
target on the calibration sample.

The ratio λ02/λ01 comes from ``outcome.death_before_progression`` = π, the share of the control
arm's PFS events that are deaths: λ02 G02(m) = π / (1 − π) · λ01 G01(m) with m the control PFS
target median and G the unit cumulative baselines. With equal shapes (the usual case) this makes
h02/h01 = π / (1 − π) at all times and for every patient, so the share is exactly π. With
different shapes the share changes with time; the rule then fixes the share of the cumulative
PFS hazard accumulated up to the control median, and the achieved share of deaths is reported
(:attr:`Calibration.control_death_share`).

**Early window** (``response.model = "pfs"``: best response PD exactly when PFS ends by the
first scan at Δ). A constant-ish hazard cannot give liu2021 both its PFS medians and its PD rates
(an exponential PFS with medians 10.2 and 6.1 months ends by 8 weeks in 12% and 19%; the paper
has 31% and 28% PD), so the PFS hazards h01 and h02 carry a multiplier e^{α_a} on [0, Δ] per arm
(:mod:`sim.generate.outcomes`). With κ_a = log λ01 + α_a the share with a PFS event by Δ depends
on κ_a alone, so each κ is solved first (a root of "share − PD rate", one per arm), then the
scales and effects as above with κ held: the window is calibrated to the early rate and the rest
of the curve to the median. In ``hazard_ratio`` mode only the control arm's κ is calibrated and
the conditional HR acts in the window too (κ_treated = κ_control + log HR), so HR = 1 stays the
null and the treated arm's PD rate follows from the HR.

Selection mode: the targets refer to the whole population had everyone received control
(control targets) or the experimental treatment (treated targets), so both calibrations average
over the population's covariates.

The true estimands of a calibrated scenario are :mod:`sim.calibrate.estimands`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
import numpy as np

from sim.calibrate.calibration import Calibration
from sim.calibrate.keys import calibration_key
from sim.calibrate.profiles import draw_arm_profiles, draw_population_profiles
from sim.calibrate.roots import log_ratio, solve_in_turn, solve_monotone
from sim.generate.censoring import recorded_pfs
from sim.generate.outcomes import (
    IllnessDeathModel,
    OutcomeNoise,
    draw_outcome_noise,
    illness_death_times,
)
from sim.generate.hazards import unit_cumulative_hazard
from sim.scenario.model import Outcome, Scenario


@dataclass(frozen=True)
class EarlyWindow:
    """Targets of the early PFS hazard: the share of each arm with a PFS event by
    ``months`` (the first scan; the published PD rates when best response comes from PFS),
    and the scenario fields to name when one cannot be reached."""

    months: float
    control_rate: float
    treated_rate: float
    control_field: str = "response"
    treated_field: str = "response"


def calibrate_profiles(
    outcome: Outcome,
    control_predictor: np.ndarray,
    treated_predictor: np.ndarray,
    *,
    rng: np.random.Generator,
    key: str = "",
    early: EarlyWindow | None = None,
) -> Calibration:
    """Calibrate the outcome model on given covariate log-hazards.

    Parameters
    ----------
    outcome : Outcome
        The scenario's outcome section (targets, shapes, treatment effect).
    control_predictor, treated_predictor : ndarray of float, shape (patient,)
        Covariate log-hazards η of the control and treated calibration samples (same size).
    rng : numpy.random.Generator
        Draws the outcome random numbers once (common random numbers for all root searches).
    key : str
        Stored as :attr:`Calibration.key`.
    early : EarlyWindow, optional
        Calibrate the early window of the PFS hazards to these rates (module docstring).

    Returns
    -------
    Calibration

    Raises
    ------
    ScenarioError
        A target cannot be reached (e.g. an OS median not above the PFS median), naming the
        field.
    """
    control_noise = draw_outcome_noise(control_predictor.shape, rng=rng)
    treated_noise = draw_outcome_noise(treated_predictor.shape, rng=rng)
    untreated = np.zeros(control_predictor.shape, dtype=bool)
    treated = np.ones(treated_predictor.shape, dtype=bool)
    share = outcome.death_before_progression
    pfs_target, os_target = outcome.control_pfs_median, outcome.control_os_median
    # λ02 = ratio λ01 so the death share of the cumulative PFS hazard up to the target median is π.
    ratio = (
        share
        / (1.0 - share)
        * float(unit_cumulative_hazard(outcome.progression, pfs_target))
        / float(unit_cumulative_hazard(outcome.death_before, pfs_target))
    )

    effect = outcome.treatment
    # A fixed HR on death before progression (None: h02 shares the PFS log-HR of h01).
    fixed_death_before = (None if effect.death_before_hazard_ratio is None
                          else math.log(effect.death_before_hazard_ratio))
    # κ = log λ01 + α per arm: the early window's log scale (what the early rate depends on).
    kappa = {"control": 0.0, "treated": 0.0}

    def model(log_scale01: float, log_scale12: float, beta_pfs: float, beta_os: float):
        scale01 = math.exp(log_scale01)
        window = {} if early is None else dict(
            early_months=early.months,
            control_early_log_hr=kappa["control"] - log_scale01,
            treated_early_log_hr=kappa["treated"] - log_scale01)
        return IllnessDeathModel(
            progression=outcome.progression,
            death_before=outcome.death_before,
            death_after=outcome.death_after,
            progression_scale=scale01,
            death_before_scale=ratio * scale01,
            death_after_scale=math.exp(log_scale12),
            log_hr_pfs=beta_pfs,
            log_hr_os=beta_os,
            delay_months=outcome.treatment.delay_months,
            log_hr_death_before=beta_pfs if fixed_death_before is None else fixed_death_before,
            **window,
        )

    def early_rate(candidate: IllnessDeathModel, predictor, arm, noise: OutcomeNoise) -> float:
        times = illness_death_times(predictor, arm, candidate, noise)
        return float(np.mean(times.pfs_months <= early.months))

    def solve_kappa(group: str, target: float, field: str, predictor, arm, noise) -> float:
        """κ of one arm: its early rate depends on κ alone (not on λ01 or the effects)."""

        def gap(value: float) -> float:
            kappa[group] = value
            return early_rate(model(guess01, guess12, 0.0, 0.0), predictor, arm, noise) - target

        guess = math.log(-math.log1p(-target)
                         / float(unit_cumulative_hazard(outcome.progression, early.months))
                         / (1.0 + share / (1.0 - share))
                         / float(np.mean(np.exp(predictor))))
        value = solve_monotone(gap, guess, field=field, problem=(
            f"a PFS event by month {early.months:g} in {100 * target:.1f}% cannot be reached by "
            "the early PFS hazard"))
        kappa[group] = value
        return value

    def medians(candidate: IllnessDeathModel, predictor, arm, noise: OutcomeNoise):
        times = illness_death_times(predictor, arm, candidate, noise)
        pfs = recorded_pfs(times.pfs_months, times.os_months, times.progressed,
                           outcome.assessment)
        return float(np.median(pfs)), float(np.median(times.os_months)), times

    def pfs_gap(candidate: IllnessDeathModel, predictor, arm, noise: OutcomeNoise,
                target: float) -> float:
        """Increasing in the PFS hazard, 0 at the target: -log(median / target) for continuous
        PFS; on a scan schedule 1/2 - S(target), S the recorded PFS's survival."""
        if outcome.assessment is None:
            return -log_ratio(medians(candidate, predictor, arm, noise)[0], target)
        times = illness_death_times(predictor, arm, candidate, noise)
        pfs = recorded_pfs(times.pfs_months, times.os_months, times.progressed,
                           outcome.assessment)
        return 0.5 - float(np.mean(pfs > target))

    gap = max(os_target - pfs_target, 0.1 * os_target)
    guess12 = math.log(
        math.log(2.0) / float(unit_cumulative_hazard(outcome.death_after, gap))
    )
    guess01 = math.log(
        math.log(2.0)
        / float(unit_cumulative_hazard(outcome.progression, pfs_target))
        / (1.0 + share / (1.0 - share))
    )
    # On a scan schedule the recorded PFS depends on the death-after-progression hazard (a
    # death before the next scan dates the PFS event), so the PFS and OS parameters are solved
    # in turn until they stop changing; without one, one pass is exact.
    coupled = outcome.assessment is not None

    def solve_scale01(log_scale12: float) -> float:
        return solve_monotone(
            lambda x: pfs_gap(model(x, log_scale12, 0.0, 0.0), control_predictor, untreated,
                              control_noise, pfs_target),
            guess01,
            field="outcome.control_pfs_median",
            problem=f"{pfs_target} months cannot be reached by scaling the progression hazard"
                    + ("" if early is None else
                       f" with {100 * early.control_rate:.1f}% of PFS events by month "
                       f"{early.months:g} (the PD rate)"),
        )

    def solve_scale12(log_scale01: float) -> float:
        return solve_monotone(
            lambda x: -log_ratio(
                medians(model(log_scale01, x, 0.0, 0.0), control_predictor, untreated,
                        control_noise)[1],
                os_target,
            ),
            guess12,
            field="outcome.control_os_median",
            problem=(
                f"{os_target} months cannot be reached: the control OS median must exceed the "
                f"PFS median ({pfs_target}) and be reachable given death_before_progression"
            ),
        )

    if early is not None:
        solve_kappa("control", early.control_rate, early.control_field, control_predictor,
                    untreated, control_noise)
    log_scale01, log_scale12 = solve_in_turn(
        solve_scale01, solve_scale12, guess12 if coupled else 0.0, coupled=coupled,
        field="outcome.control_pfs_median")
    if effect.mode == "hazard_ratio":
        beta_pfs = math.log(effect.progression_hazard_ratio or effect.hazard_ratio)
        beta_os = math.log(effect.death_after_hazard_ratio or effect.hazard_ratio)
        if fixed_death_before is None:
            fixed_death_before = math.log(effect.hazard_ratio)
        # The conditional HR acts in the early window too (HR 1 stays exactly the null).
        kappa["treated"] = kappa["control"] + beta_pfs
    else:
        if early is not None:
            solve_kappa("treated", early.treated_rate, early.treated_field, treated_predictor,
                        treated, treated_noise)

        def solve_beta_pfs(beta_os: float) -> float:
            return solve_monotone(
                lambda b: pfs_gap(model(log_scale01, log_scale12, b, beta_os),
                                  treated_predictor, treated, treated_noise, effect.pfs_median),
                0.0,
                field="outcome.treatment.pfs_median",
                problem=(
                    f"{effect.pfs_median} months cannot be reached by a log-HR on h01/h02 "
                    f"(delay {effect.delay_months} months)"
                ),
            )

        def solve_beta_os(beta_pfs: float) -> float:
            return solve_monotone(
                lambda b: -log_ratio(
                    medians(model(log_scale01, log_scale12, beta_pfs, b), treated_predictor,
                            treated, treated_noise)[1],
                    effect.os_median,
                ),
                0.0,
                field="outcome.treatment.os_median",
                problem=(
                    f"{effect.os_median} months cannot be reached by a log-HR on h12: it must "
                    f"exceed the treated PFS median ({effect.pfs_median})"
                ),
            )

        beta_pfs, beta_os = solve_in_turn(solve_beta_pfs, solve_beta_os, 0.0, coupled=coupled,
                                     field="outcome.treatment.pfs_median")
    final = model(log_scale01, log_scale12, beta_pfs, beta_os)
    control_pfs, control_os, control_times = medians(
        final, control_predictor, untreated, control_noise
    )
    treated_pfs, treated_os, _ = medians(final, treated_predictor, treated, treated_noise)
    window = {} if early is None else dict(
        early_months=final.early_months,
        control_early_log_hr=final.control_early_log_hr,
        treated_early_log_hr=final.treated_early_log_hr,
        control_early_pfs_rate=early_rate(final, control_predictor, untreated, control_noise),
        treated_early_pfs_rate=early_rate(final, treated_predictor, treated, treated_noise))
    return Calibration(
        progression_scale=final.progression_scale,
        death_before_scale=final.death_before_scale,
        death_after_scale=final.death_after_scale,
        log_hr_pfs=float(beta_pfs),
        log_hr_os=float(beta_os),
        delay_months=float(effect.delay_months),
        control_pfs_median=control_pfs,
        control_os_median=control_os,
        treated_pfs_median=treated_pfs,
        treated_os_median=treated_os,
        control_death_share=float(np.mean(~control_times.progressed)),
        control_mean_linear_predictor=float(np.mean(control_predictor)),
        treated_mean_linear_predictor=float(np.mean(treated_predictor)),
        n_patients=int(control_predictor.shape[0]),
        key=key,
        log_hr_death_before=float(final.log_hr_death_before),
        **window,
    )


def calibrate(scenario: Scenario, *, rng: np.random.Generator) -> Calibration:
    """Calibrate a scenario's illness-death model (see the module docstring).

    Draws ``simulation.calibration_patients`` control and treated profiles (selection mode: one
    population sample used for both), then the outcome random numbers, and solves for the
    scales and log-HRs by :func:`calibrate_profiles`. The arms' mean covariate log-hazards and
    the response thresholds (:func:`sim.generate.responses.calibrate_response_thresholds`, on the
    prognosis η minus its arm mean) come from the same profiles. With ``response.model =
    "pfs"`` the early window of the PFS hazards is calibrated to the arms' PD rates and the
    thresholds (:func:`sim.generate.responses.calibrate_pfs_response_thresholds`) come from
    the calibrated model's PFS times on the same profiles.

    Parameters
    ----------
    scenario : Scenario
    rng : numpy.random.Generator
        :func:`sim.calibrate.cache.calibrate_cached` passes one from a fixed entropy so results are
        reproducible and cacheable.

    Returns
    -------
    Calibration
    """
    from sim.generate.responses import (
        calibrate_pfs_response_thresholds,
        calibrate_response_thresholds,
    )

    n_patients = scenario.simulation.calibration_patients
    if scenario.mode == "selection":
        population = draw_population_profiles(scenario, n_patients, rng=rng)
        control = treated = population.linear_predictor
        arm_predictor, arm_treated = population.linear_predictor, population.treated
    else:
        profiles = draw_arm_profiles(scenario, n_patients, rng=rng)
        control, treated = profiles.control, profiles.treated
        arm_predictor = np.concatenate([control, treated])
        arm_treated = np.concatenate([np.zeros(control.shape, bool), np.ones(treated.shape, bool)])
    arm_means = (
        float(np.mean(arm_predictor[~arm_treated])),
        float(np.mean(arm_predictor[arm_treated])),
    )
    from_pfs = scenario.response.model == "pfs"
    if from_pfs:
        pd = scenario.response.probabilities
        early = EarlyWindow(
            months=scenario.outcome.assessment.interval_months,
            control_rate=pd[scenario.control_arm.name][3],
            treated_rate=pd[scenario.treated_arm.name][3],
            control_field=f"response.{scenario.control_arm.name}",
            treated_field=f"response.{scenario.treated_arm.name}")
    else:
        prognosis = arm_predictor - np.where(arm_treated, arm_means[1], arm_means[0])
        thresholds = calibrate_response_thresholds(scenario, arm_treated[None], prognosis[None])
    result = calibrate_profiles(
        scenario.outcome, control, treated, rng=rng, key=calibration_key(scenario),
        early=early if from_pfs else None,
    )
    if from_pfs:
        # Thresholds among non-PD patients on the calibrated model's PFS times (fresh noise).
        times = illness_death_times(
            arm_predictor, arm_treated, result.illness_death_model(scenario.outcome),
            draw_outcome_noise(arm_predictor.shape, rng=rng))
        thresholds = calibrate_pfs_response_thresholds(scenario, arm_treated, times.pfs_months)
    by_arm = dict(zip(thresholds.arm_names, thresholds.thresholds))
    return replace(
        result,
        control_mean_linear_predictor=arm_means[0],
        treated_mean_linear_predictor=arm_means[1],
        response_thresholds=tuple(
            tuple(float(v) for v in by_arm[arm.name]) for arm in scenario.arms
        ),
    )
