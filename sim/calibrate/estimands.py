"""True estimands of a calibrated scenario.

**True estimands** (:func:`true_estimands`). The conditional log-HRs are β_pfs (h01 and h02,
after any delay) and β_os (h12 only: OS itself does not have proportional hazards when
β_os ≠ β_pfs, or in general under an illness-death model, so β_os is the transition's log-HR).
The marginal log-HR in the treated (ATT) follows Austin (2013, Stat Med 32:2837-2849): draw
``simulation.truth_patients`` treated profiles (table mode: the treated arm's covariates;
selection mode: Z = 1 from the treatment model), both potential outcomes with common random
numbers, the design's censoring (one entry and dropout time per profile, used for both), stack
the 2N records and fit Cox(T ~ treatment) (Efron ties: with a delayed effect the potential
outcomes coincide before the delay). The marginal log-HR depends on the censoring pattern
because the marginal hazards are not proportional. True marginal medians (uncensored) are
reported per arm and for the treated population had it received control. With a scan schedule
(``outcome.assessment``) PFS is taken as the study records it (progression at the next scan,
censoring at the last scan; :func:`sim.generate.censoring.observe_outcomes`) in both the Cox
fit and the medians: that is what the analyses estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.calibrate.keys import truth_key
from sim.calibrate.profiles import draw_arm_profiles
from sim.calibrate.targets import Calibration
from sim.generate.censoring import draw_censoring, observe_outcomes, recorded_pfs
from sim.generate.outcomes import IllnessDeathModel, draw_outcome_noise, illness_death_times
from sim.scenario.model import Assessment, Censoring, Scenario


@dataclass(frozen=True)
class Truth:
    """True estimands of a scenario (log-HRs treated vs control; medians in months).

    Attributes
    ----------
    conditional_log_hr_pfs : float
        β_pfs, the conditional log-HR of PFS (after the delay, if any).
    conditional_log_hr_os : float
        β_os, the log-HR of the h12 transition. OS has no single conditional HR (it is not a
        proportional-hazards outcome in the illness-death model); this is what is reported.
    marginal_log_hr_pfs, marginal_log_hr_os : float
        Marginal log-HR in the treated (ATT) under the design's censoring (Austin 2013).
    pfs_median_treated, os_median_treated : float
        Marginal medians of the treated population under treatment.
    pfs_median_control, os_median_control : float
        Marginal medians of the control arm (selection mode: Z = 0) under control.
    pfs_median_treated_under_control, os_median_treated_under_control : float
        Marginal medians of the treated population had it received control (the target of the
        matched control group).
    n_patients : int
        Profiles per potential outcome.
    key : str
        Content key (:func:`truth_key`).
    """

    conditional_log_hr_pfs: float
    conditional_log_hr_os: float
    marginal_log_hr_pfs: float
    marginal_log_hr_os: float
    pfs_median_treated: float
    os_median_treated: float
    pfs_median_control: float
    os_median_control: float
    pfs_median_treated_under_control: float
    os_median_treated_under_control: float
    n_patients: int
    key: str

    def as_variables(self) -> dict[str, tuple[float, float]]:
        """The truths as the results Dataset stores them: name → (pfs, os)
        (see ``sim.run.results.TRUTH_VARIABLES``; medians per arm)."""
        return {
            "true_log_hr_conditional": (self.conditional_log_hr_pfs, self.conditional_log_hr_os),
            "true_log_hr_marginal": (self.marginal_log_hr_pfs, self.marginal_log_hr_os),
            "true_median_treated": (self.pfs_median_treated, self.os_median_treated),
            "true_median_control": (self.pfs_median_control, self.os_median_control),
        }


def marginal_log_hr(
    time_months: np.ndarray, event: np.ndarray, treated: np.ndarray
) -> float:
    """Cox(T ~ treatment) log-HR (Efron ties) of one large stacked sample.

    Parameters
    ----------
    time_months, event, treated : ndarray, shape (record,)

    Returns
    -------
    float
    """
    from analysis.survival import fit_cox

    fit = fit_cox(time_months[None, :], event[None, :], treated[None, :], ties="efron")
    return float(np.asarray(fit.log_hr)[0])


@dataclass(frozen=True)
class PotentialOutcomeEstimands:
    """ATT quantities from one sample of treated profiles (:func:`att_estimands`)."""

    marginal_log_hr_pfs: float
    marginal_log_hr_os: float
    pfs_median_treated: float
    os_median_treated: float
    pfs_median_under_control: float
    os_median_under_control: float


def att_estimands(
    model: IllnessDeathModel,
    treated_predictor: np.ndarray,
    censoring: Censoring,
    *,
    rng: np.random.Generator,
    assessment: Assessment | None = None,
) -> PotentialOutcomeEstimands:
    """Marginal log-HRs (PFS, OS) and medians in the treated by potential outcomes.

    For each treated profile both potential outcomes are drawn with the same random numbers
    and censored at the same censoring time (design's entry, cut-off and dropout); the 2N
    records are stacked and Cox(T ~ treatment) is fitted (Austin 2013, Stat Med 32:2837-2849).

    Parameters
    ----------
    model : IllnessDeathModel
    treated_predictor : ndarray of float, shape (patient,)
        Covariate log-hazards η of the treated population.
    censoring : Censoring
    rng : numpy.random.Generator
    assessment : Assessment or None
        The scan schedule: PFS is recorded as the study records it
        (:func:`sim.generate.censoring.observe_outcomes`), in the Cox fit and in the medians.

    Returns
    -------
    PotentialOutcomeEstimands
    """
    shape = treated_predictor.shape
    noise = draw_outcome_noise(shape, rng=rng)
    follow_up = draw_censoring(censoring, shape, rng=rng).censor_months
    under_treatment = illness_death_times(treated_predictor, np.ones(shape, bool), model, noise)
    under_control = illness_death_times(treated_predictor, np.zeros(shape, bool), model, noise)
    stacked_treated = np.concatenate([np.ones(shape, bool), np.zeros(shape, bool)])
    censor = np.concatenate([follow_up, follow_up])
    observed = observe_outcomes(
        np.concatenate([under_treatment.pfs_months, under_control.pfs_months]),
        np.concatenate([under_treatment.os_months, under_control.os_months]),
        np.concatenate([under_treatment.progressed, under_control.progressed]),
        censor,
        assessment,
    )
    return PotentialOutcomeEstimands(
        marginal_log_hr_pfs=marginal_log_hr(
            observed.pfs_months, observed.pfs_event, stacked_treated
        ),
        marginal_log_hr_os=marginal_log_hr(observed.os_months, observed.os_event, stacked_treated),
        pfs_median_treated=float(np.median(_recorded(under_treatment, assessment))),
        os_median_treated=float(np.median(under_treatment.os_months)),
        pfs_median_under_control=float(np.median(_recorded(under_control, assessment))),
        os_median_under_control=float(np.median(under_control.os_months)),
    )


def _recorded(times, assessment: Assessment | None) -> np.ndarray:
    """Uncensored PFS as recorded on the scan schedule (the latent PFS without one)."""
    return recorded_pfs(times.pfs_months, times.os_months, times.progressed, assessment)


def true_estimands(
    scenario: Scenario, calibration: Calibration, *, rng: np.random.Generator
) -> Truth:
    """True estimands of a calibrated scenario (see the module docstring).

    Draws ``simulation.truth_patients`` treated profiles for the ATT quantities
    (:func:`att_estimands`) and as many control profiles (table mode: control arm; selection
    mode: Z = 0) for the control arm's medians (:func:`draw_arm_profiles`).

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
    profiles = draw_arm_profiles(scenario, n_patients, rng=rng)
    att = att_estimands(model, profiles.treated, scenario.censoring, rng=rng,
                        assessment=scenario.outcome.assessment)
    control = profiles.control
    control_times = illness_death_times(
        control,
        np.zeros(control.shape, bool),
        model,
        draw_outcome_noise(control.shape, rng=rng),
    )
    return Truth(
        conditional_log_hr_pfs=calibration.log_hr_pfs,
        conditional_log_hr_os=calibration.log_hr_os,
        marginal_log_hr_pfs=att.marginal_log_hr_pfs,
        marginal_log_hr_os=att.marginal_log_hr_os,
        pfs_median_treated=att.pfs_median_treated,
        os_median_treated=att.os_median_treated,
        pfs_median_control=float(np.median(_recorded(control_times, scenario.outcome.assessment))),
        os_median_control=float(np.median(control_times.os_months)),
        pfs_median_treated_under_control=att.pfs_median_under_control,
        os_median_treated_under_control=att.os_median_under_control,
        n_patients=n_patients,
        key=truth_key(scenario),
    )
